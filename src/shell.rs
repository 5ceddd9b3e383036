//! Shell sessions: one long-lived `sh` or `bash` (here or through
//! [`Command::ssh`]) that runs command after command and returns each one's
//! stdout, stderr and exit code.

use std::time::Duration;

use crate::{Child, Command, Error, ExitStatus, Pattern, Result, Stdio};

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
/// the command's output. A command that times out leaves the session
/// usable: the next `run` skips what is left of it.
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
}

impl Shell {
    /// Starts the shell `cmd` describes (`Command::new("bash")`, `sh`, with
    /// [`ssh`](Command::ssh) for a remote one) and waits until it answers.
    /// stdin and stdout are piped and stderr is piped separately, unless
    /// the command puts the shell on a [`pty`](Command::pty) (then stderr
    /// stays on the terminal unless set with [`Command::stderr`]). The
    /// timeout of `cmd` is the default for every [`run`](Self::run).
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
        };
        // A variable holding a newline, so that a command's own newlines
        // never make the shell read our line as several (no PS2 prompts).
        shell.child.send("__duet_nl='\n'\n")?;
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
    /// ```
    /// use duet::{Command, Shell};
    /// use std::time::Duration;
    /// let mut sh = Shell::spawn(Command::new("sh"))?;
    /// let err = sh.run_timeout("sleep 1", Duration::from_millis(50)).unwrap_err();
    /// assert!(err.is_timeout());
    /// assert_eq!(sh.run("echo still in sync")?.stdout, "still in sync\n");
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
        let seq = self.seq.to_string();
        let line = self.line(command);
        self.child.send(&line)?;
        let deadline = std::time::Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(std::time::Instant::now());

        // What is left of a command that timed out carries older numbers.
        let ours = |m: &crate::Match| m.group(1) == Some(seq.as_str());
        while !ours(&self.child.expect_timeout(self.start.clone(), left())?) {}
        let out = self.child.expect_timeout(self.out_end.clone(), left())?;
        let code = out.group(2).unwrap_or_default();
        let code: i32 = code.parse().map_err(|_| {
            Error::Io(std::io::Error::other(format!(
                "the shell's end sentinel carried {code:?}, not an exit status"
            )))
        })?;
        let stderr = if self.stderr {
            let old = self.child.timeout();
            self.child.set_timeout(left());
            let mut got = Ok(());
            while got.is_ok() {
                match self.child.expect_stderr(self.start.clone()) {
                    Ok(m) if ours(&m) => break,
                    Ok(_) => {}
                    Err(e) => got = Err(e),
                }
            }
            let got = got.and_then(|()| self.child.expect_stderr(self.err_end.clone()));
            self.child.set_timeout(old);
            got?.before().to_string()
        } else {
            String::new()
        };
        let stdout = out.before().to_string();
        Ok(ShellOutput {
            stdout,
            stderr,
            code,
        })
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
