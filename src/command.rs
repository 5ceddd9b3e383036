//! The `Command` builder: plain data describing a child to start.
//!
//! Data and builder only: how a command starts (`spawn`, `output`,
//! `spawn_async`, `output_async`) is the spawn stack's business, in
//! `launch`, so this module imports nothing of the crate.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The default timeout of every read, expect and write on a child.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default longest line, in bytes (`Command::max_line`).
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// The default most unread output held per stream, in bytes
/// (`Command::max_buffer`): 1 GiB.
pub const DEFAULT_MAX_BUFFER: usize = 1 << 30;

/// Where one of the child's standard streams goes.
///
/// ```
/// use duet::{Command, Stdio};
/// let out = Command::new("sh").args(["-c", "echo hi; echo oops >&2"])
///     .stderr(Stdio::null())
///     .output()?;
/// assert_eq!(out.stdout, b"hi\n");
/// assert!(out.stderr.is_empty());
/// # Ok::<(), duet::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Stdio(pub(crate) StdioKind);

#[derive(Clone, Debug)]
pub(crate) enum StdioKind {
    Piped,
    Inherit,
    Null,
    Fd(Arc<OwnedFd>),
}

impl Stdio {
    /// A pipe to the parent: the conversation API reads and writes it.
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// let mut sh = Command::new("sh").args(["-c", "echo oops >&2"])
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// assert_eq!(sh.read_stderr_line()?, "oops");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn piped() -> Stdio {
        Stdio(StdioKind::Piped)
    }

    /// The parent's own stream (the default for stderr).
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// // The child writes straight to this process's stdout; nothing is captured.
    /// let out = Command::new("true").stdout(Stdio::inherit()).output()?;
    /// assert!(out.stdout.is_empty() && out.status.success());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Inherit)
    }

    /// `/dev/null`.
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// let out = Command::new("echo").arg("gone").stdout(Stdio::null()).output()?;
    /// assert!(out.stdout.is_empty());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn null() -> Stdio {
        Stdio(StdioKind::Null)
    }
}

impl From<OwnedFd> for Stdio {
    /// The child gets a duplicate of this descriptor (a FIFO, a file, a socket).
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(StdioKind::Fd(Arc::new(fd)))
    }
}

impl From<File> for Stdio {
    fn from(file: File) -> Stdio {
        Stdio::from(OwnedFd::from(file))
    }
}

/// What dropping a [`Child`](crate::Child) that is still running does.
///
/// The default is `Terminate(Duration::from_secs(1))`: no child outlives its
/// handle by accident and no zombie is left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDrop {
    /// Close the pipes, then wait for the child to exit however long it takes.
    Wait,
    /// Close the pipes, send SIGTERM, wait up to the grace period, then
    /// SIGKILL, and reap.
    Terminate(Duration),
    /// Close the pipes and leave the child running. It is not reaped: it stays
    /// a zombie after it exits until this process exits (or reaps it).
    Detach,
}

impl Default for OnDrop {
    fn default() -> Self {
        OnDrop::Terminate(Duration::from_secs(1))
    }
}

/// A child process to start, configured in the manner of
/// [`std::process::Command`]: setters take `&mut self` and return
/// `&mut Self`, and one command can be spawned many times.
///
/// Unlike std, stdin and stdout are piped by default (that is what a
/// conversation needs) and stderr is inherited.
///
/// ```
/// use duet::Command;
/// let mut bc = Command::new("bc").arg("-q").spawn()?;
/// assert_eq!(bc.ask("2+2")?, "4");
/// # Ok::<(), duet::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Command {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env_clear: bool,
    /// Changes to the environment in order; `None` removes the variable.
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Option<Stdio>,
    pub(crate) merge_stderr: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_line: usize,
    pub(crate) max_buffer: usize,
    pub(crate) strip_ansi: bool,
    pub(crate) pty: bool,
    pub(crate) pty_stdout: bool,
    pub(crate) pty_echo: bool,
    pub(crate) pty_size: (u16, u16),
    pub(crate) process_group: bool,
    pub(crate) pipe_size: Option<usize>,
    pub(crate) on_drop: OnDrop,
    pub(crate) use_fork: bool,
    pub(crate) channel: bool,
    /// The host to run on through OpenSSH (`None`: here).
    pub(crate) ssh_host: Option<OsString>,
    /// `-o` options for that `ssh`, in order.
    pub(crate) ssh_options: Vec<OsString>,
    pub(crate) legacy_kernel: bool,
    /// Descriptors the child finds at the given numbers ([`Command::pass_fd`]).
    pub(crate) passed_fds: Vec<(i32, Arc<OwnedFd>)>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) groups: Option<Vec<u32>>,
    pub(crate) umask: Option<u32>,
    /// `None`: unset (a pty child still starts a session).
    pub(crate) setsid: Option<bool>,
    pub(crate) arg0: Option<OsString>,
    /// One entry per resource, the last setting wins.
    pub(crate) rlimits: Vec<(Limit, u64, u64)>,
}

/// A resource limit of the child, set with [`Command::rlimit`]
/// (`setrlimit(2)`).
///
/// ```
/// use duet::{Command, Limit};
/// let out = Command::new("sh").args(["-c", "ulimit -n"])
///     .rlimit(Limit::NoFile, 64, 64)
///     .output()?;
/// assert_eq!(out.stdout, b"64\n");
/// # Ok::<(), duet::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// CPU time in seconds (`RLIMIT_CPU`): SIGXCPU at the soft limit,
    /// SIGKILL at the hard one.
    Cpu,
    /// The largest file the child may write, in bytes (`RLIMIT_FSIZE`):
    /// beyond it, SIGXFSZ.
    FileSize,
    /// One more than the highest descriptor number the child may open
    /// (`RLIMIT_NOFILE`).
    NoFile,
    /// The size of the child's address space, in bytes (`RLIMIT_AS`).
    AddressSpace,
    /// The largest core dump, in bytes (`RLIMIT_CORE`); 0 for none.
    Core,
    /// How many processes the child's real user may have
    /// (`RLIMIT_NPROC`); not enforced for root.
    NProc,
}

impl Limit {
    /// The limit's name in `/proc/PID/limits` terms, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Limit::Cpu => "cpu time",
            Limit::FileSize => "file size",
            Limit::NoFile => "open files",
            Limit::AddressSpace => "address space",
            Limit::Core => "core file size",
            Limit::NProc => "processes",
        }
    }
}

/// The value of a [`Command::rlimit`] that means no limit
/// (`RLIM_INFINITY`).
///
/// ```
/// use duet::{Command, Limit, UNLIMITED};
/// let out = Command::new("sh").args(["-c", "ulimit -f"])
///     .rlimit(Limit::FileSize, UNLIMITED, UNLIMITED)   // files of any size
///     .output()?;
/// assert_eq!(out.stdout, b"unlimited\n");
/// # Ok::<(), duet::Error>(())
/// ```
pub const UNLIMITED: u64 = u64::MAX;

impl Command {
    /// A command that runs `program`, looked up on `PATH` like `execvp`
    /// when it contains no `/` (the child's `PATH` when [`env`](Self::env)
    /// changes it).
    ///
    /// ```
    /// let mut echo = duet::Command::new("echo");   // found on PATH
    /// echo.arg("hello");
    /// assert_eq!(echo.output()?.stdout, b"hello\n");
    /// assert_eq!(echo.output()?.stdout, b"hello\n");   // a command runs again
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env_clear: false,
            env: Vec::new(),
            cwd: None,
            stdin: Stdio::piped(),
            stdout: Stdio::piped(),
            stderr: None,
            merge_stderr: false,
            timeout: None,
            max_line: DEFAULT_MAX_LINE,
            max_buffer: DEFAULT_MAX_BUFFER,
            strip_ansi: false,
            pty: false,
            pty_stdout: false,
            pty_echo: false,
            pty_size: (24, 80),
            process_group: false,
            pipe_size: None,
            on_drop: OnDrop::default(),
            use_fork: false,
            channel: false,
            ssh_host: None,
            ssh_options: Vec::new(),
            legacy_kernel: false,
            passed_fds: Vec::new(),
            uid: None,
            gid: None,
            groups: None,
            umask: None,
            setsid: None,
            arg0: None,
            rlimits: Vec::new(),
        }
    }

    /// Adds one argument. It reaches the child byte for byte: no shell is
    /// involved.
    ///
    /// ```
    /// let out = duet::Command::new("printf").arg("%s|").arg("one word; $NOT expanded").output()?;
    /// assert_eq!(out.stdout, b"one word; $NOT expanded|");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds several arguments.
    ///
    /// ```
    /// let out = duet::Command::new("printf").args(["%s|", "a", "b c"]).output()?;
    /// assert_eq!(out.stdout, b"a|b c|");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    ///
    /// ```
    /// let out = duet::Command::new("sh").args(["-c", "echo $GREETING"])
    ///     .env("GREETING", "hi")
    ///     .output()?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Sets several environment variables.
    ///
    /// ```
    /// let out = duet::Command::new("sh").args(["-c", "echo $A$B"])
    ///     .envs([("A", "1"), ("B", "2")])
    ///     .output()?;
    /// assert_eq!(out.stdout, b"12\n");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Removes an environment variable from the child's environment.
    ///
    /// ```
    /// let out = duet::Command::new("sh").args(["-c", "echo ${DUET_X-unset}"])
    ///     .env("DUET_X", "set")
    ///     .env_remove("DUET_X")                  // the last change wins
    ///     .output()?;
    /// assert_eq!(out.stdout, b"unset\n");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the child with an empty environment plus what
    /// [`env`](Self::env) adds afterwards.
    ///
    /// ```
    /// let out = duet::Command::new("/usr/bin/env").env_clear().env("ONLY", "this").output()?;
    /// assert_eq!(out.stdout, b"ONLY=this\n");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn env_clear(&mut self) -> &mut Self {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// The child's working directory. A directory that does not exist is an
    /// [`Error::Spawn`](crate::Error::Spawn) naming it.
    ///
    /// ```
    /// use duet::{Command, Error};
    /// let out = Command::new("pwd").current_dir("/").output()?;
    /// assert_eq!(out.stdout, b"/\n");
    /// let err = Command::new("pwd").current_dir("/no/such/dir").spawn().unwrap_err();
    /// assert!(matches!(err, Error::Spawn { .. }) && err.to_string().contains("/no/such/dir"));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Where the child's stdin comes from (default: piped).
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// let path = std::env::temp_dir().join(format!("duet-doc-stdin-{}", std::process::id()));
    /// std::fs::write(&path, "from a file\n")?;
    /// let out = Command::new("cat").stdin(Stdio::from(std::fs::File::open(&path)?)).output()?;
    /// assert_eq!(out.stdout, b"from a file\n");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stdin(&mut self, stdio: Stdio) -> &mut Self {
        self.stdin = stdio;
        self
    }

    /// Where the child's stdout goes (default: piped).
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// let path = std::env::temp_dir().join(format!("duet-doc-stdout-{}", std::process::id()));
    /// let file = std::fs::File::create(&path)?;
    /// Command::new("echo").arg("to a file").stdout(Stdio::from(file)).spawn()?.wait()?;
    /// assert_eq!(std::fs::read_to_string(&path)?, "to a file\n");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stdout(&mut self, stdio: Stdio) -> &mut Self {
        self.stdout = stdio;
        self
    }

    /// Where the child's stderr goes (default: inherited; on a pty, the pty).
    /// When piped, it is drained in the same poll loop as stdout, so a child
    /// that fills stderr never blocks, and errors show its last lines.
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// let out = Command::new("sh").args(["-c", "echo out; echo err >&2"])
    ///     .stderr(Stdio::piped())
    ///     .output()?;
    /// assert_eq!((out.stdout, out.stderr), (b"out\n".to_vec(), b"err\n".to_vec()));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn stderr(&mut self, stdio: Stdio) -> &mut Self {
        self.stderr = Some(stdio);
        self
    }

    /// Sends stderr wherever stdout goes (`2>&1`): the same pipe or pty, the
    /// same file, or the parent's own stdout when stdout is inherited. The
    /// child's descriptor 2 is a duplicate of its descriptor 1, as in a
    /// shell and in Python's `stderr=STDOUT`.
    ///
    /// ```
    /// let out = duet::Command::new("sh").args(["-c", "echo out; echo err >&2"])
    ///     .merge_stderr(true)
    ///     .output()?;
    /// assert_eq!(out.stdout, b"out\nerr\n");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn merge_stderr(&mut self, merge: bool) -> &mut Self {
        self.merge_stderr = merge;
        self
    }

    /// The default timeout for every read, expect and write (10 s if unset).
    /// [`output`](Self::output) waits without a limit unless this is set.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut child = duet::Command::new("sleep").arg("5")
    ///     .timeout(Duration::from_millis(100))
    ///     .spawn()?;
    /// let err = child.read_line().unwrap_err();       // nothing within 100 ms
    /// assert!(err.is_timeout(), "{err}");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// The longest line `read_line` accepts, in bytes (default 1 MiB).
    /// A longer line is [`Error::LineTooLong`](crate::Error::LineTooLong) and
    /// is skipped; the next read returns the line after it.
    ///
    /// ```
    /// use duet::{Command, Error};
    /// let mut child = Command::new("sh").args(["-c", "printf '%0100d\\nok\\n' 0"])
    ///     .max_line(10)
    ///     .spawn()?;
    /// assert!(matches!(child.read_line(), Err(Error::LineTooLong { limit: 10 })));
    /// assert_eq!(child.read_line()?, "ok");           // nothing after it is lost
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn max_line(&mut self, bytes: usize) -> &mut Self {
        self.max_line = bytes.max(1);
        self
    }

    /// The most unread output duet holds per stream, in bytes (default
    /// 1 GiB, [`DEFAULT_MAX_BUFFER`]). A child that floods its output
    /// while a read or expect waits for something else cannot grow the
    /// parent without bound: once a stream holds this much, duet stops
    /// reading it (the child blocks on its full pipe; nothing is lost) and
    /// the wait returns [`Error::BufferFull`](crate::Error::BufferFull).
    /// Reading what is held (`read_line`, an expect that matches) makes
    /// room again. [`Child::communicate`](crate::Child::communicate) and
    /// [`output`](Self::output) collect everything and are not bounded by
    /// it.
    ///
    /// ```
    /// use duet::{Command, Error, Pattern};
    /// let mut yes = Command::new("yes").max_buffer(64 << 10).spawn()?;
    /// let err = yes.expect(Pattern::exact("never")).unwrap_err();
    /// assert!(matches!(err, Error::BufferFull { limit: 65536 }), "{err}");
    /// assert_eq!(yes.read_line()?, "y");               // what was held is still there
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn max_buffer(&mut self, bytes: usize) -> &mut Self {
        self.max_buffer = bytes.max(1);
        self
    }

    /// Removes terminal escape sequences from the child's output as it
    /// arrives, before reads, expects and watches see it: CSI sequences
    /// (colours, cursor motion, `ESC[?2004h`), the charset switches
    /// `ESC(X` and `ESC)X`, and the keypad modes `ESC=` and `ESC>`. Other
    /// escapes and malformed sequences stay. A sequence cut between two
    /// reads is still removed: its start is held back (at most 256 bytes)
    /// until the rest arrives, and passes as it is at end-of-file. Off by
    /// default.
    ///
    /// Everything read through the conversation is filtered, including
    /// [`communicate`](crate::Child::communicate) and [`output`](Self::output);
    /// a transcript ([`Child::set_transcript`](crate::Child::set_transcript))
    /// and an observer ([`Child::set_observer`](crate::Child::set_observer))
    /// get the bytes as they came, escapes included.
    ///
    /// ```
    /// let mut grep = duet::Command::new("grep").args(["--color=always", "b"])
    ///     .pty(true)
    ///     .strip_ansi(true)
    ///     .spawn()?;
    /// grep.send_line("abc")?;
    /// assert_eq!(grep.read_line()?, "abc");   // not "a\x1b[01;31m\x1b[Kb\x1b[m\x1b[Kc"
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn strip_ansi(&mut self, on: bool) -> &mut Self {
        self.strip_ansi = on;
        self
    }

    /// Runs the child on a pseudo-terminal: a new session with the pty as its
    /// controlling terminal on 0, 1 and 2 (stderr too, unless set with
    /// [`stderr`](Self::stderr)). Programs that buffer their output on pipes
    /// then answer line by line. Echo is off unless
    /// [`pty_echo`](Self::pty_echo). Lines of any length arrive whole in both
    /// directions, and `close_stdin` delivers end-of-file.
    ///
    /// ```
    /// let mut child = duet::Command::new("sh").args(["-c", "[ -t 0 ] && [ -t 1 ] && echo terminal"])
    ///     .pty(true)
    ///     .spawn()?;
    /// assert_eq!(child.read_line()?, "terminal");     // "\r\n" is removed too
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn pty(&mut self, pty: bool) -> &mut Self {
        self.pty = pty;
        self
    }

    /// Puts only stdout on a pseudo-terminal; stdin and stderr stay pipes.
    /// Output is unbuffered as on a terminal, while stderr stays separate and
    /// input is never echoed. The terminal does no output processing, so the
    /// bytes arrive exactly as written.
    ///
    /// ```
    /// let mut child = duet::Command::new("sh")
    ///     .args(["-c", "[ -t 1 ] && [ ! -t 0 ] && echo 'stdout only'"])
    ///     .pty_stdout(true)
    ///     .spawn()?;
    /// assert_eq!(child.read_line()?, "stdout only");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn pty_stdout(&mut self, pty: bool) -> &mut Self {
        self.pty_stdout = pty;
        self
    }

    /// Turns the pty's echo on (off by default, so replies are not mixed
    /// with what was sent).
    ///
    /// ```
    /// let mut cat = duet::Command::new("cat").pty(true).pty_echo(true).spawn()?;
    /// cat.send_line("hi")?;
    /// assert_eq!(cat.read_line()?, "hi");   // the terminal's echo
    /// assert_eq!(cat.read_line()?, "hi");   // cat's copy
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn pty_echo(&mut self, echo: bool) -> &mut Self {
        self.pty_echo = echo;
        self
    }

    /// The pty's window size (default 24 rows, 80 columns).
    ///
    /// ```
    /// let mut stty = duet::Command::new("stty").arg("size").pty(true).pty_size(30, 100).spawn()?;
    /// assert_eq!(stty.read_line()?, "30 100");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn pty_size(&mut self, rows: u16, cols: u16) -> &mut Self {
        self.pty_size = (rows, cols);
        self
    }

    /// Starts the child in a new process group, so that
    /// [`Child::kill`](crate::Child::kill), [`Child::signal`](crate::Child::signal)
    /// and [`Child::terminate`](crate::Child::terminate) reach its
    /// descendants too. (A pty child always has its own session and group.)
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut sh = duet::Command::new("sh").args(["-c", "sleep 60 & echo started; wait"])
    ///     .process_group(true)
    ///     .spawn()?;
    /// assert_eq!(sh.read_line()?, "started");
    /// let status = sh.terminate(Duration::from_secs(1))?;  // the sleep goes too
    /// assert_eq!(status.signal(), Some(15));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn process_group(&mut self, group: bool) -> &mut Self {
        self.process_group = group;
        self
    }

    /// Sets the capacity of the pipes duet creates (`F_SETPIPE_SZ`). Large
    /// pipes (1 MiB) speed up bulk streams; the kernel caps the size at
    /// `/proc/sys/fs/pipe-max-size` for unprivileged users.
    ///
    /// ```
    /// let mut cat = duet::Command::new("cat").pipe_size(1 << 20).spawn()?;
    /// let big = "x".repeat(500_000);
    /// cat.send_line(&big)?;                 // fits in the pipe at once
    /// assert_eq!(cat.read_line()?.len(), big.len());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn pipe_size(&mut self, bytes: usize) -> &mut Self {
        self.pipe_size = Some(bytes);
        self
    }

    /// What dropping the [`Child`](crate::Child) does while it runs
    /// (default: terminate with a 1 s grace and reap).
    ///
    /// ```
    /// use duet::{Command, OnDrop};
    /// let path = std::env::temp_dir().join(format!("duet-doc-ondrop-{}", std::process::id()));
    /// let child = Command::new("sh")
    ///     .args(["-c", "read x; echo finished > \"$0\""]).arg(&path)
    ///     .on_drop(OnDrop::Wait)
    ///     .spawn()?;
    /// drop(child);          // closes stdin, then waits: the script runs to its end
    /// assert_eq!(std::fs::read_to_string(&path)?, "finished\n");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_drop(&mut self, policy: OnDrop) -> &mut Self {
        self.on_drop = policy;
        self
    }

    /// Starts the child as a copy of the parent, as `fork` does (`clone3`,
    /// or `clone` where `clone3` is refused), instead of the default
    /// vfork-class `clone(CLONE_VM | CLONE_VFORK)`. Both behave identically;
    /// the default costs the same whatever the parent's size, while a copy
    /// duplicates the parent's page tables. Useful to rule out the spawn
    /// method when investigating a problem.
    ///
    /// ```
    /// let out = duet::Command::new("echo").arg("forked").use_fork(true).output()?;
    /// assert_eq!(out.stdout, b"forked\n");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn use_fork(&mut self, fork: bool) -> &mut Self {
        self.use_fork = fork;
        self
    }

    /// Gives the child one end of a [`channel::pipe`](crate::channel::pipe)
    /// as descriptor 3 and sets `DUET_CHANNEL_FD=3` and `DUET_CHANNEL_PID`
    /// to the child's pid (written by the child itself before it execs);
    /// inside the child, [`channel::from_env`](crate::channel::from_env)
    /// returns it, and in the child's own children it refuses. The parent
    /// takes its end with [`Child::take_channel`](crate::Child::take_channel).
    ///
    /// ```
    /// let out = duet::Command::new("sh").args(["-c", "echo $DUET_CHANNEL_FD"]).channel().output()?;
    /// assert_eq!(out.stdout, b"3\n");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn channel(&mut self) -> &mut Self {
        self.channel = true;
        self
    }

    /// Runs the program on `host` (`[user@]host`, or a `Host` of your
    /// `~/.ssh/config`) through OpenSSH's `ssh` instead of here. Every
    /// [`Child`](crate::Child) method works on it; what changes:
    ///
    /// - **Arguments** arrive byte for byte: duet quotes each word for the
    ///   remote shell (which must be a POSIX shell: sh, bash, dash, ksh,
    ///   zsh), so spaces, quotes, `$`, `;` and newlines are never re-split.
    ///   [`env`](Self::env), [`env_remove`](Self::env_remove),
    ///   [`env_clear`](Self::env_clear) (then only what `env` adds, and
    ///   `PATH` is the remote `sh`'s default) and
    ///   [`current_dir`](Self::current_dir) (relative to the remote home)
    ///   apply on the remote side; the remote `env_remove` takes shell
    ///   identifiers only.
    /// - **Errors**: a program that is missing or not executable there, or
    ///   a directory that is missing, is [`Error::Spawn`](crate::Error::Spawn)
    ///   whose path reads `host:program`; a host that cannot be reached is
    ///   `Error::Spawn` with the step `connect through ssh to` and what ssh
    ///   said. `ssh` never prompts (`BatchMode=yes`): use keys or an agent.
    /// - **Signals**: [`Child::signal`](crate::Child::signal),
    ///   [`kill`](crate::Child::kill), [`terminate`](crate::Child::terminate)
    ///   and dropping the child reach the remote program (duet runs `kill`
    ///   on the host), so nothing is left running there. With
    ///   [`process_group`](Self::process_group) they reach its process group.
    ///   [`Child::id`](crate::Child::id) is the local `ssh`'s pid.
    /// - **Status**: the remote exit code. OpenSSH does not pass on a
    ///   remote death by signal: it shows as exit code 255, as from `ssh`.
    /// - **Connections**: one master connection per host (`ControlMaster`,
    ///   its socket in `$TMPDIR/duet-ssh-UID`, created 0700 and refused if
    ///   anyone else could write it; `ControlPersist=60`), so a second spawn
    ///   to a host costs a fraction of the first, from any process of this
    ///   user.
    /// - **pty**: [`pty`](Self::pty) puts the remote program on a remote
    ///   pseudo-terminal (`ssh -tt`), with echo, size and `^C` as locally;
    ///   [`pty_stdout`](Self::pty_stdout) only changes the local side.
    ///   [`channel`](Self::channel) cannot cross hosts (an error).
    /// - **stdout** that is not piped is read up to the remote program's
    ///   start, then copied to its destination by a thread.
    ///
    /// ```no_run
    /// let mut bc = duet::Command::new("bc").arg("-q")
    ///     .ssh("user@calc.example.org")
    ///     .ssh_option("Port=2222")
    ///     .spawn()?;
    /// assert_eq!(bc.ask("2+2")?, "4");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn ssh(&mut self, host: impl AsRef<OsStr>) -> &mut Self {
        self.ssh_host = Some(host.as_ref().to_owned());
        self
    }

    /// Passes `-o OPTION` to `ssh` (for example `Port=2222`,
    /// `IdentityFile=~/.ssh/ci`). The options come before duet's own, and
    /// ssh keeps the first value it sees, so they can override duet's
    /// defaults (`BatchMode=yes`, `ControlMaster=auto`, `ControlPath`,
    /// `ControlPersist=60`, `LogLevel=ERROR`). Only with [`ssh`](Self::ssh):
    /// without a host, spawning is an error.
    ///
    /// ```no_run
    /// let out = duet::Command::new("uname")
    ///     .ssh("build-host")
    ///     .ssh_option("ConnectTimeout=5")
    ///     .ssh_option("ControlPersist=no")
    ///     .output()?;
    /// println!("{}", String::from_utf8_lossy(&out.stdout));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn ssh_option(&mut self, option: impl AsRef<OsStr>) -> &mut Self {
        self.ssh_options.push(option.as_ref().to_owned());
        self
    }

    /// Gives the child `fd` as descriptor number `target`, as Python's
    /// `pass_fds` and the `command-fds` crate do: a socket, one end of a
    /// pipe, a file, a `memfd`. Every other descriptor above 2 is still
    /// closed in the child. The child's copy is not close-on-exec; the
    /// parent's stays close-on-exec.
    ///
    /// The `Command` keeps `fd` (so that it can spawn again) and each child
    /// gets a duplicate: the parent's copy closes when the `Command` is
    /// dropped (drop it when, say, the reader of a pipe should see
    /// end-of-file once the child closes its end). Targets may be any
    /// number from 3 up, in any order, and may equal the number of a
    /// descriptor being passed: the moves are planned before the child
    /// exists, as std's engine plans its `dup2`s, so no move clobbers a
    /// descriptor still to be moved. Passing a second descriptor to the
    /// same target replaces the first.
    ///
    /// # Errors
    /// Spawning fails with [`Error::Spawn`](crate::Error::Spawn) when
    /// `target` is 0, 1 or 2 (use [`stdin`](Self::stdin),
    /// [`stdout`](Self::stdout), [`stderr`](Self::stderr) with
    /// [`Stdio::from`]), is negative, is 3 with a [`channel`](Self::channel),
    /// or is not below the child's limit on descriptors; and with
    /// [`ssh`](Self::ssh) (a descriptor cannot cross hosts).
    ///
    /// ```
    /// use std::io::Read;
    /// use std::os::fd::OwnedFd;
    /// let (mut reader, writer) = std::io::pipe()?;
    /// duet::Command::new("sh").args(["-c", "echo through fd 5 >&5"])
    ///     .pass_fd(OwnedFd::from(writer), 5)
    ///     .output()?;                 // the temporary Command, and its copy, are gone
    /// let mut got = String::new();
    /// reader.read_to_string(&mut got)?;
    /// assert_eq!(got, "through fd 5\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pass_fd(&mut self, fd: impl Into<OwnedFd>, target: std::os::fd::RawFd) -> &mut Self {
        self.passed_fds.retain(|(t, _)| *t != target);
        self.passed_fds.push((target, Arc::new(fd.into())));
        self
    }

    /// Runs the child as user `uid` (`setuid(2)`, after
    /// [`groups`](Self::groups) and [`gid`](Self::gid)), as std's
    /// `CommandExt::uid` and Python's `user=`. Without
    /// [`groups`](Self::groups), the supplementary groups are cleared when
    /// the parent may do so (as std does), so a child started by root keeps
    /// none of root's groups. Changing to another user needs privilege
    /// (`CAP_SETUID`); without it, spawning is an
    /// [`Error::Spawn`](crate::Error::Spawn) whose step names the user id.
    /// Not with [`ssh`](Self::ssh): log in as that user instead.
    ///
    /// ```
    /// use std::os::unix::fs::MetadataExt;
    /// let me = std::fs::metadata("/proc/self")?.uid();   // any user may keep its own id
    /// let out = duet::Command::new("id").arg("-u").uid(me).output()?;
    /// assert_eq!(String::from_utf8(out.stdout)?.trim(), me.to_string());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn uid(&mut self, uid: u32) -> &mut Self {
        self.uid = Some(uid);
        self
    }

    /// Runs the child with group `gid` (`setgid(2)`, before
    /// [`uid`](Self::uid) drops the privilege to do so), as std's
    /// `CommandExt::gid` and Python's `group=`. Not with [`ssh`](Self::ssh).
    ///
    /// ```
    /// use std::os::unix::fs::MetadataExt;
    /// let mine = std::fs::metadata("/proc/self")?.gid();
    /// let out = duet::Command::new("id").arg("-g").gid(mine).output()?;
    /// assert_eq!(String::from_utf8(out.stdout)?.trim(), mine.to_string());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn gid(&mut self, gid: u32) -> &mut Self {
        self.gid = Some(gid);
        self
    }

    /// The child's supplementary groups (`setgroups(2)`, the first of the
    /// credential steps), as std's `CommandExt::groups` and Python's
    /// `extra_groups=`; an empty list clears them. Needs privilege
    /// (`CAP_SETGID`) even to keep the present list. Not with
    /// [`ssh`](Self::ssh).
    ///
    /// ```no_run
    /// // As root: a service account with one extra group.
    /// let out = duet::Command::new("id").uid(1000).gid(1000).groups(&[1000, 27]).output()?;
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn groups(&mut self, groups: &[u32]) -> &mut Self {
        self.groups = Some(groups.to_vec());
        self
    }

    /// The child's file mode creation mask (`umask(2)`), as Python's
    /// `umask=`: `0o077` makes files the child creates private. Only the
    /// permission bits count (a mask above `0o777` is an error). With
    /// [`ssh`](Self::ssh) it applies on the remote host (the remote shell
    /// runs `umask` before the program).
    ///
    /// ```
    /// let out = duet::Command::new("sh").args(["-c", "umask"]).umask(0o027).output()?;
    /// assert_eq!(out.stdout, b"0027\n");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn umask(&mut self, mask: u32) -> &mut Self {
        self.umask = Some(mask);
        self
    }

    /// Starts the child in a new session (`setsid(2)`), as Python's
    /// `start_new_session=` and std's unstable `CommandExt::setsid`: it
    /// leads a new session and a new process group, and has no controlling
    /// terminal, so a `^C` at the parent's terminal does not reach it and
    /// it cannot open `/dev/tty`.
    ///
    /// Signals from [`Child::kill`](crate::Child::kill) and
    /// [`terminate`](crate::Child::terminate) still go to the child alone;
    /// add [`process_group`](Self::process_group) to have them reach the
    /// group the session starts. A [`pty`](Self::pty) child always starts
    /// a session (the pty becomes its controlling terminal), so
    /// `setsid(false)` with `pty(true)` is an error, and `setsid(true)`
    /// changes nothing there. Not with [`ssh`](Self::ssh) (the remote
    /// program's session is sshd's business).
    ///
    /// ```
    /// // A session leader's session id is its own pid.
    /// let mut child = duet::Command::new("sh").args(["-c", "ps -o sid= -p $$"])
    ///     .setsid(true)
    ///     .spawn()?;
    /// let sid = child.read_line()?;
    /// assert_eq!(sid.trim(), child.id().to_string());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn setsid(&mut self, new_session: bool) -> &mut Self {
        self.setsid = Some(new_session);
        self
    }

    /// The child's `argv[0]`, the name it sees for itself (std's
    /// `CommandExt::arg0`): login shells are started as `-bash`, multi-call
    /// binaries pick their behaviour by it. The program run is still the
    /// one given to [`new`](Self::new), found as before. Not with
    /// [`ssh`](Self::ssh).
    ///
    /// ```
    /// let out = duet::Command::new("cat").arg("/proc/self/cmdline").arg0("renamed").output()?;
    /// assert!(out.stdout.starts_with(b"renamed\0"));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut Self {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// Sets the child's `resource` limit to `soft` (what the kernel
    /// enforces) and `hard` (the ceiling the child may raise `soft` to),
    /// with `setrlimit(2)` after the credentials and before
    /// [`umask`](Self::umask) and [`setsid`](Self::setsid). [`UNLIMITED`](crate::UNLIMITED)
    /// (`u64::MAX`) means no limit. The last setting of a resource wins.
    ///
    /// Lowering is always allowed; raising a hard limit needs privilege
    /// (`CAP_SYS_RESOURCE`), which a child whose [`uid`](Self::uid) was
    /// changed from root no longer has at this step. A `soft` above `hard`
    /// is refused before the child exists; a refusal by the kernel is an
    /// [`Error::Spawn`](crate::Error::Spawn) naming the limit. Not with
    /// [`ssh`](Self::ssh).
    ///
    /// ```
    /// use duet::{Command, Limit};
    /// let mut sh = Command::new("sh")
    ///     .arg("-c").arg("ulimit -S -t; ulimit -H -t")
    ///     .rlimit(Limit::Cpu, 10, 20)
    ///     .spawn()?;
    /// assert_eq!((sh.read_line()?, sh.read_line()?), ("10".to_string(), "20".to_string()));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn rlimit(&mut self, resource: Limit, soft: u64, hard: u64) -> &mut Self {
        self.rlimits.retain(|(r, _, _)| *r != resource);
        self.rlimits.push((resource, soft, hard));
        self
    }

    /// For duet's own tests: takes the code paths meant for kernels that
    /// lack a newer feature (`close_range`, `clone3`,
    /// `PIDFD_SIGNAL_PROCESS_GROUP`, the exit status kept for pidfds), so
    /// that those paths are tested on any kernel. Not part of the API.
    #[doc(hidden)]
    pub fn emulate_old_kernel(&mut self, on: bool) -> &mut Self {
        self.legacy_kernel = on;
        self
    }

    /// What [`output`](Self::output) runs: stdin from `/dev/null` unless
    /// set otherwise, stderr piped unless set or merged.
    pub(crate) fn for_output(&self) -> Command {
        let mut cmd = self.clone();
        if matches!(cmd.stdin.0, StdioKind::Piped) {
            cmd.stdin = Stdio::null();
        }
        if !cmd.merge_stderr && cmd.stderr.is_none() {
            cmd.stderr = Some(Stdio::piped());
        }
        cmd
    }

    /// The program as given to [`new`](Self::new), for messages.
    pub(crate) fn program_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}
