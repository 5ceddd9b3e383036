//! Shell sessions: one long-lived `sh` or `bash` (here or through
//! [`Command::ssh`]) that runs command after command and returns each one's
//! stdout, stderr and exit code.

use std::time::{Duration, Instant};

use crate::{Child, Command, Error, ExitStatus, Pattern, Result, Stdio};

/// How long a timed-out command has, after SIGINT, to end before the shell
/// is restarted (see [`Shell::run_timeout`]).
const INTERRUPT_GRACE: Duration = Duration::from_secs(1);

/// How far one `run` got: what a later attempt to read the rest (after an
/// interrupt) must not wait for again.
#[derive(Debug, Default)]
struct Progress {
    /// The start marker on stdout was read.
    started: bool,
    /// The command's stdout and code, once the end marker was read.
    stdout: Option<(String, i32)>,
    /// The start marker on stderr was read.
    err_started: bool,
}

/// What one command of a [`Shell`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellOutput {
    /// Everything the command wrote to stdout, exactly (a last line without
    /// newline stays so).
    pub stdout: String,
    /// Everything it wrote to stderr (empty when the shell's stderr is not
    /// separate, as on a pty without a piped stderr).
    pub stderr: String,
    /// Its exit status, as the shell's `$?` (128+N after signal N).
    pub code: i32,
}

impl ShellOutput {
    /// True when [`code`](Self::code) is 0.
    ///
    /// ```
    /// let mut sh = duet::Shell::spawn(duet::Command::new("sh"))?;
    /// assert!(sh.run("true")?.success());
    /// assert!(!sh.run("false")?.success());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// A shell session that stays in sync, command after command.
///
/// Each [`run`](Self::run) sends one line: a start sentinel on stdout and
/// stderr, the command through `command eval` (its stdin is `/dev/null`),
/// then an end sentinel carrying `$?`. Sentinels hold a random nonce and a
/// sequence number, and are printed by `printf` from two separate words, so
/// neither output that looks like a prompt, nor a last line without
/// newline, nor `PROMPT_COMMAND`, prompts, bracketed-paste sequences or the
/// terminal's echo of the command line (with `bash -i` or on a pty) can
/// pass for one: only what comes between the start and end sentinels is
/// the command's output.
///
/// A command that times out is interrupted: SIGINT goes to the shell's
/// process group (the shell runs in a group of its own and traps SIGINT),
/// so the next `run` starts at once; a command that does not end at SIGINT
/// gets the shell restarted (see [`run_timeout`](Self::run_timeout)).
/// Errors speak of the command, never of the markers: a timeout's
/// `expected` names the command, its `partial` and `stderr` are what the
/// command wrote.
///
/// The shell must be a POSIX shell (`sh`, `dash`, `bash`, `ksh`, `zsh` in
/// sh mode). A command that runs `exit` ends the session (`Error::Eof`).
///
/// ```
/// use duet::{Command, Shell};
/// let mut sh = Shell::spawn(Command::new("sh"))?;
/// let r = sh.run("echo hello; ls /nope")?;
/// assert_eq!(r.stdout, "hello\n");
/// assert!(r.stderr.contains("/nope"));
/// assert_ne!(r.code, 0);
/// sh.run("cd /tmp && x=42")?;                  // state persists
/// assert_eq!(sh.run("pwd; echo $x")?.stdout, "/tmp\n42\n");
/// # Ok::<(), duet::Error>(())
/// ```
#[derive(Debug)]
pub struct Shell {
    child: Child,
    nonce: String,
    seq: u64,
    /// `DUET<nonce>S<seq>_`, the start sentinel on both streams.
    start: Pattern,
    /// `DUET<nonce>E<seq>_<code>`, the end of stdout.
    out_end: Pattern,
    /// `DUET<nonce>E<seq>_`, the end of stderr.
    err_end: Pattern,
    /// Whether stderr is a separate pipe with its own sentinels.
    stderr: bool,
    /// What started the shell, to start it again when a command cannot
    /// be interrupted.
    cmd: Command,
}

impl Shell {
    /// Starts the shell `cmd` describes (`Command::new("bash")`, `sh`, with
    /// [`ssh`](Command::ssh) for a remote one) and waits until it answers.
    /// stdin and stdout are piped and stderr is piped separately, unless
    /// the command puts the shell on a [`pty`](Command::pty) (then stderr
    /// stays on the terminal unless set with [`Command::stderr`]). The
    /// timeout of `cmd` is the default for every [`run`](Self::run). The
    /// shell runs in a process group of its own
    /// ([`Command::process_group`]), so that a command that times out can
    /// be interrupted without a signal to anyone else.
    ///
    /// # Errors
    /// `Error::Spawn` when the shell cannot be started; `Error::Timeout` or
    /// `Error::Eof` when it does not answer.
    ///
    /// ```
    /// use duet::{Command, Shell};
    /// use std::time::Duration;
    /// let mut bash = Command::new("bash");
    /// bash.arg("--norc").timeout(Duration::from_secs(5));   // the default for every run
    /// let mut sh = Shell::spawn(bash)?;
    /// assert_eq!(sh.run("echo $BASH_VERSION | cut -c1")?.stdout.len(), 2);
    /// assert!(Shell::spawn(Command::new("duet-no-such-shell")).is_err());
    /// // Remote: let mut cmd = Command::new("bash"); cmd.ssh("host"); Shell::spawn(cmd)
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn spawn(mut cmd: Command) -> Result<Shell> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let stderr = if cmd.pty {
            matches!(cmd.stderr, Some(Stdio(crate::command::StdioKind::Piped)))
        } else {
            cmd.stderr(Stdio::piped());
            cmd.merge_stderr(false);
            true
        };
        // Its own process group, so that a timed-out command can be
        // interrupted (and the shell, if it must, ended) without a signal
        // to anyone else.
        cmd.process_group(true);
        let child = cmd.spawn()?;
        let nonce = nonce();
        let mut shell = Shell {
            child,
            seq: 0,
            start: Pattern::regex(&format!(r"DUET{nonce}S(\d+)_\r?\n"))?,
            out_end: Pattern::regex(&format!(r"DUET{nonce}E(\d+)_(\d+)\r?\n"))?,
            err_end: Pattern::regex(&format!(r"DUET{nonce}E(\d+)_\r?\n"))?,
            nonce,
            stderr,
            cmd,
        };
        // A variable holding a newline, so that a command's own newlines
        // never make the shell read our line as several (no PS2 prompts);
        // and a trap, so that SIGINT ends a timed-out command, not the shell.
        shell.child.send("__duet_nl='\n'; trap : INT\n")?;
        shell.run("")?;
        Ok(shell)
    }

    /// Runs `command` in the shell and returns its output and exit code.
    /// Shell state (directory, variables, functions) carries over to the
    /// next command. Waits at most the session's timeout.
    ///
    /// # Errors
    /// `Error::Timeout` when the command does not finish in time (the
    /// session stays usable); `Error::Eof` when the shell exited;
    /// `Error::Io` for a command with a NUL byte.
    ///
    /// ```
    /// use duet::{Command, Shell};
    /// let mut sh = Shell::spawn(Command::new("sh"))?;
    /// let r = sh.run("printf '$ looks like a prompt'; echo oops >&2; exit_code() { return 3; }; exit_code")?;
    /// assert_eq!(r.stdout, "$ looks like a prompt");
    /// assert_eq!(r.stderr, "oops\n");
    /// assert_eq!(r.code, 3);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn run(&mut self, command: &str) -> Result<ShellOutput> {
        let timeout = self.child.timeout();
        self.run_timeout(command, timeout)
    }

    /// [`run`](Self::run) with its own timeout.
    ///
    /// When the timeout passes, the command is interrupted: SIGINT to the
    /// shell's process group, which ends the command's processes (the shell
    /// itself traps it), then up to a second more to read what the command
    /// wrote. A command that does not end at SIGINT (one that ignores it,
    /// or a loop of the shell itself) gets the whole group terminated
    /// (SIGTERM, then SIGKILL) and a fresh shell started from the same
    /// `Command`: the session's state (directory, variables) is then lost,
    /// and the error says so. Either way the next `run` starts at once.
    ///
    /// # Errors
    /// `Error::Timeout` whose `expected` names the command and how it was
    /// stopped, `partial` is what it wrote to stdout and `stderr` the end of
    /// what it wrote there.
    ///
    /// ```
    /// use duet::{Command, Shell};
    /// use std::time::Duration;
    /// let mut sh = Shell::spawn(Command::new("sh"))?;
    /// let err = sh.run_timeout("echo working; sleep 1000", Duration::from_millis(50)).unwrap_err();
    /// assert!(err.is_timeout());
    /// assert!(err.to_string().contains("`echo working; sleep 1000` to finish"));
    /// assert_eq!(sh.run("echo still in sync")?.stdout, "still in sync\n");   // at once
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn run_timeout(&mut self, command: &str, timeout: Duration) -> Result<ShellOutput> {
        if command.contains('\0') {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a shell command cannot contain a NUL byte",
            )));
        }
        self.seq += 1;
        let line = self.line(command);
        self.child.send(&line)?;
        let started = Instant::now();
        let mut progress = Progress::default();
        match self.collect(&mut progress, started + timeout) {
            Ok(out) => Ok(out),
            Err(e) if e.is_timeout() => Err(self.interrupt(command, &mut progress, started, e)),
            Err(e) => Err(self.about(command, e)),
        }
    }

    /// Reads the output of the command numbered `self.seq`, going on from
    /// where `progress` says an earlier attempt stopped.
    fn collect(&mut self, progress: &mut Progress, deadline: Instant) -> Result<ShellOutput> {
        let left = || deadline.saturating_duration_since(Instant::now());
        let seq = self.seq.to_string();
        // What is left of a command that timed out carries older numbers.
        let ours = |m: &crate::Match| m.group(1) == Some(seq.as_str());
        if !progress.started {
            while !ours(&self.child.expect_timeout(self.start.clone(), left())?) {}
            progress.started = true;
        }
        if progress.stdout.is_none() {
            let out = self.child.expect_timeout(self.out_end.clone(), left())?;
            let code = out.group(2).unwrap_or_default();
            let code: i32 = code.parse().map_err(|_| {
                Error::Io(std::io::Error::other(format!(
                    "the shell's end marker carried {code:?}, not an exit status"
                )))
            })?;
            progress.stdout = Some((out.before().to_string(), code));
        }
        let stderr = if self.stderr {
            let old = self.child.timeout();
            self.child.set_timeout(left());
            let got = self.stderr_part(progress, &ours);
            self.child.set_timeout(old);
            got?
        } else {
            String::new()
        };
        let (stdout, code) = progress.stdout.clone().unwrap_or_default();
        Ok(ShellOutput {
            stdout,
            stderr,
            code,
        })
    }

    fn stderr_part(
        &mut self,
        progress: &mut Progress,
        ours: &dyn Fn(&crate::Match) -> bool,
    ) -> Result<String> {
        while !progress.err_started {
            progress.err_started = ours(&self.child.expect_stderr(self.start.clone())?);
        }
        Ok(self
            .child
            .expect_stderr(self.err_end.clone())?
            .before()
            .to_string())
    }

    /// The command timed out (`timeout`, the error): interrupts it so the
    /// next `run` starts at once, and returns the timeout as the command's.
    ///
    /// SIGINT goes to the shell's process group (on a pty, the terminal's
    /// `^C` to its foreground group, the command's own job under job
    /// control): the command's processes die of it (or handle it), the
    /// shell itself survives through its `trap : INT`, and prints the end
    /// markers. When they do not come
    /// within [`INTERRUPT_GRACE`] (the command ignores SIGINT, or it is a
    /// loop of the shell itself), the shell and everything in its group are
    /// terminated and a fresh shell is started from the same `Command`:
    /// the session's state (directory, variables) is lost, and the error
    /// says so.
    fn interrupt(
        &mut self,
        command: &str,
        progress: &mut Progress,
        started: Instant,
        timeout: Error,
    ) -> Error {
        let waited = started.elapsed();
        let status = timeout.status();
        // What arrived before the deadline, in case nothing more does.
        let (mut partial, mut stderr) = match timeout {
            Error::Timeout {
                partial, stderr, ..
            } => (
                self.without_markers(partial.as_bytes()),
                self.without_markers(stderr.as_bytes()),
            ),
            _ => (String::new(), String::new()),
        };
        if let Some((out, _)) = &progress.stdout {
            partial = out.clone();
        }
        let mut how = "interrupted with SIGINT".to_string();
        // On a pty, the terminal's ^C: it reaches the foreground group,
        // which is the command's own under job control (`bash -i`). Not
        // both: the terminal delivers its ^C later, and a second SIGINT
        // must not reach the next command.
        let sent = if self.cmd.pty {
            self.child.send_intr()
        } else {
            self.child.signal(crate::Signal::SIGINT)
        };
        let recovered = match sent {
            Ok(()) => self.collect(progress, Instant::now() + INTERRUPT_GRACE),
            Err(e) => Err(e),
        };
        match recovered {
            Ok(out) => {
                partial = out.stdout;
                stderr = out.stderr;
            }
            Err(e) => {
                log::warn!(
                    "`{command}` timed out and did not end at SIGINT ({e}); restarting the shell"
                );
                how = match self.restart() {
                    Ok(()) => "it did not end at SIGINT: the shell was restarted, \
                               its state (directory, variables) is lost"
                        .to_string(),
                    Err(e) => {
                        format!("it did not end at SIGINT, and restarting the shell failed: {e}")
                    }
                };
            }
        }
        Error::Timeout {
            waited,
            expected: format!("`{command}` to finish ({how})"),
            partial: crate::text::preview(partial.as_bytes()),
            stderr: crate::text::last_lines(stderr.as_bytes(), 5),
            status,
            output: None,
        }
    }

    /// Ends the shell and its process group, and starts a new one from the
    /// same `Command`.
    fn restart(&mut self) -> Result<()> {
        self.child.terminate(INTERRUPT_GRACE)?;
        let cmd = std::mem::replace(&mut self.cmd, Command::new("sh"));
        *self = Shell::spawn(cmd)?;
        Ok(())
    }

    /// An error of the command, with the shell's markers taken out of what
    /// it quotes.
    fn about(&self, command: &str, e: Error) -> Error {
        match e {
            Error::Eof {
                partial,
                status,
                stderr,
            } => {
                log::debug!("the shell ended while running `{command}`");
                Error::Eof {
                    partial: self.without_markers(partial.as_bytes()),
                    status,
                    stderr: self.without_markers(stderr.as_bytes()),
                }
            }
            Error::Timeout {
                waited,
                partial,
                stderr,
                status,
                output,
                ..
            } => Error::Timeout {
                waited,
                expected: format!("`{command}` to finish"),
                partial: self.without_markers(partial.as_bytes()),
                stderr: self.without_markers(stderr.as_bytes()),
                status,
                output,
            },
            other => other,
        }
    }

    /// `text` without the lines that hold one of this session's markers.
    fn without_markers(&self, text: &[u8]) -> String {
        let text = String::from_utf8_lossy(text);
        let marker = format!("DUET{}", self.nonce);
        let mut kept = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            if !line.contains(&marker) {
                kept.push_str(line);
            }
        }
        kept
    }

    /// The underlying child, for what `run` does not cover (signals,
    /// [`Child::id`]).
    ///
    /// ```
    /// let mut sh = duet::Shell::spawn(duet::Command::new("sh"))?;
    /// let pid = sh.run("echo $$")?.stdout;
    /// assert_eq!(pid.trim(), sh.child().id().to_string());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Ends the session: closes the shell's stdin and waits for it to exit.
    ///
    /// ```
    /// let mut sh = duet::Shell::spawn(duet::Command::new("bash"))?;
    /// sh.run("cd /")?;
    /// assert!(sh.close()?.success());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn close(mut self) -> Result<ExitStatus> {
        self.child.close_stdin()?;
        self.child.wait()
    }

    /// The line that runs `command` between sentinels. Each sentinel is
    /// printed from two words, `DUET<nonce>` and `<kind><seq>`: the text
    /// sent never contains it whole.
    fn line(&self, command: &str) -> String {
        let head = format!("DUET{}", self.nonce);
        let start = format!("S{}_", self.seq);
        let end = format!("E{}_", self.seq);
        let mut quoted = String::with_capacity(command.len() + 2);
        quoted.push('\'');
        for c in command.chars() {
            match c {
                '\'' => quoted.push_str("'\\''"),
                '\n' => quoted.push_str("'\"$__duet_nl\"'"),
                c => quoted.push(c),
            }
        }
        quoted.push('\'');
        let err = if self.stderr {
            format!("printf '%s%s\\n' {head} {start} >&2; ")
        } else {
            String::new()
        };
        let err_end = if self.stderr {
            format!("; printf '%s%s\\n' {head} {end} >&2")
        } else {
            String::new()
        };
        format!(
            "printf '%s%s\\n' {head} {start}; {err}command eval {quoted} </dev/null; \
             printf '%s%s%d\\n' {head} {end} \"$?\"{err_end}\n"
        )
    }
}

fn nonce() -> String {
    let mut bytes = [0u8; 6];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        bytes[..4].copy_from_slice(&t.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
