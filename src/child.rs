//! The running child: its streams, the conversation API and its lifecycle.

use std::io::Write;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::command::Command;
use crate::driver::Written;
use crate::driver::errors;
use crate::process::Process;
use crate::session::{Lines, Session};
use crate::spawn::Spawned;
use crate::{Error, ExitStatus, Observed, OnDrop, Output, Pattern, Result, Signal, sys};
use duet_core::Match;
use duet_core::Stream;
use duet_core::WatchId;

/// A running child process and the conversation with it.
///
/// Every read, expect and write waits at most the timeout (set with
/// [`Command::timeout`](crate::Command::timeout) or [`set_timeout`](Self::set_timeout),
/// 10 s by default); the `_timeout` variants take their own. A timeout
/// loses nothing: unread output stays buffered for the next call.
///
/// # Drop
///
/// Dropping a `Child` closes its pipes, then applies its
/// [`OnDrop`] policy (default: SIGTERM, 1 s grace, SIGKILL, reap), so no
/// zombie and no forgotten child is left behind.
#[derive(Debug)]
pub struct Child {
    /// The conversation and the process behind it (always there).
    session: Session,
    channel: Option<OwnedFd>,
    program: String,
    on_drop: OnDrop,
}

impl Child {
    /// The conversation (for the group waits of `expect_any_child`).
    pub(crate) fn session(&self) -> &Session {
        &self.session
    }

    /// The conversation, to drive it from outside (the group waits of
    /// `expect_any_child`, `interact`).
    pub(crate) fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The blocking child over the parts the spawn engine started.
    pub(crate) fn from_spawned(spawned: Spawned) -> Child {
        let Spawned {
            streams,
            process,
            program,
            timeout,
            on_drop,
            channel,
        } = spawned;
        Child {
            session: Session::from_streams(streams, timeout, Some(process)),
            channel,
            program,
            on_drop,
        }
    }

    /// Runs `cmd` on this host to completion and captures its output, as
    /// `Command::output` does for a command without `ssh`: for `remote`,
    /// which runs its own `ssh` commands below the layer that chooses
    /// between here and there.
    pub(crate) fn output_here(cmd: &Command) -> Result<Output> {
        let mut child = Child::from_spawned(crate::spawn::spawn(&cmd.for_output())?);
        child.communicate(b"", cmd.timeout)
    }

    /// The process handle (for `remote` to attach the remote pid).
    pub(crate) fn process_mut(&mut self) -> &mut Process {
        self.session
            .process
            .as_mut()
            .expect("a child's session has its process")
    }

    fn process(&self) -> &Process {
        self.session
            .process
            .as_ref()
            .expect("a child's session has its process")
    }

    /// Takes the parent's end of the channel given to the child with
    /// [`Command::channel`](crate::Command::channel); `None` without one or
    /// when taken already.
    ///
    /// ```
    /// let mut child = duet::Command::new("python3")
    ///     .args(["-c", "import os, multiprocessing.connection as mc\n\
    ///         c = mc.Connection(int(os.environ['DUET_CHANNEL_FD']))\n\
    ///         c.send_bytes(c.recv_bytes().upper())"])
    ///     .channel()
    ///     .spawn()?;
    /// let mut conn = child.take_channel().expect("a channel was asked for");
    /// conn.send_bytes(b"hello")?;
    /// assert_eq!(conn.recv_bytes()?, b"HELLO");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn take_channel(&mut self) -> Option<crate::channel::Connection> {
        self.channel.take().map(crate::channel::Connection::from)
    }

    /// The child's process id.
    ///
    /// ```
    /// let mut sh = duet::Command::new("sh").args(["-c", "echo $$"]).spawn()?;
    /// assert_eq!(sh.read_line()?, sh.id().to_string());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn id(&self) -> u32 {
        self.process().id()
    }

    /// The default timeout of this child's reads, expects and writes.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cat = duet::Command::new("cat").timeout(Duration::from_secs(3)).spawn()?;
    /// assert_eq!(cat.timeout(), Duration::from_secs(3));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn timeout(&self) -> Duration {
        self.session.timeout()
    }

    /// Sets the default timeout for later reads, expects and writes.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut cat = duet::Command::new("cat").spawn()?;
    /// cat.set_timeout(Duration::from_millis(50));
    /// assert!(cat.read_line().unwrap_err().is_timeout());   // cat said nothing
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.session.set_timeout(timeout)
    }

    /// Records every byte sent and received from now on: one line per line
    /// of data, with a relative timestamp and a direction tag (`>` sent,
    /// `<` stdout, `!` stderr, `#` events). A failing transcript writer is
    /// logged and dropped; it never breaks the conversation.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("duet-doc-transcript-{}", std::process::id()));
    /// let mut cat = duet::Command::new("cat").spawn()?;
    /// cat.set_transcript(std::fs::File::create(&path)?);
    /// cat.ask("hello")?;
    /// drop(cat);
    /// let text = std::fs::read_to_string(&path)?;
    /// assert!(text.contains(" > hello"), "{text}");
    /// assert!(text.contains(" < hello"), "{text}");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_transcript(&mut self, out: impl Write + Send + 'static) {
        self.session.set_transcript(out)
    }

    /// Calls `observer` with every chunk of bytes from now on, at the
    /// moment it passes: each read from stdout or a piped stderr as it came
    /// (escape sequences included, before any read or expect takes it),
    /// each write to stdin. For a live view, a recording with times, or
    /// counting: the observer runs inside duet's reads and writes, so it
    /// should be quick; it cannot change what the conversation sees. A
    /// [`send_secret`](Self::send_secret) is never shown to it. Replaces an
    /// earlier observer; a transcript ([`set_transcript`](Self::set_transcript))
    /// keeps going beside it.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use duet::Observed;
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let mut bc = duet::Command::new("bc").arg("-q").spawn()?;
    /// let seen = Arc::clone(&log);
    /// bc.set_observer(move |chunk| {
    ///     let (tag, bytes) = match chunk {
    ///         Observed::Sent(b) => ("sent", b),
    ///         Observed::Stdout(b) => ("stdout", b),
    ///         Observed::Stderr(b) => ("stderr", b),
    ///         _ => return,
    ///     };
    ///     seen.lock().unwrap().push(format!("{tag} {}", String::from_utf8_lossy(bytes)));
    /// });
    /// assert_eq!(bc.ask("6*7")?, "42");
    /// assert_eq!(*log.lock().unwrap(), ["sent 6*7\n", "stdout 42\n"]);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn set_observer(&mut self, observer: impl FnMut(Observed<'_>) + Send + 'static) {
        self.session.set_observer(observer)
    }

    // ---- event loops -----------------------------------------------------

    /// The descriptor the child's stdout arrives on (a pipe or the pty
    /// master), for a caller's own `poll` loop that also waits on other
    /// descriptors. Read from the child with
    /// [`read_available(Duration::ZERO)`](Self::read_available) only: it
    /// returns buffered output first, so poll this descriptor only after
    /// that call came back empty. `None` when stdout is not piped.
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// let cat = Command::new("cat").spawn()?;
    /// assert!(cat.stdout_fd().is_some());     // poll it in your own loop
    /// let quiet = Command::new("true").stdout(Stdio::null()).spawn()?;
    /// assert!(quiet.stdout_fd().is_none());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn stdout_fd(&self) -> Option<BorrowedFd<'_>> {
        self.session.streams.output_fd(Stream::Stdout)
    }

    /// The descriptor a piped stderr arrives on, for a caller's own `poll`
    /// loop; read it with
    /// [`read_stderr_available(Duration::ZERO)`](Self::read_stderr_available).
    /// `None` when stderr is not piped.
    ///
    /// Polling both descriptors, mind that a read of either stream also
    /// takes what is waiting on the other into that one's buffer (so that
    /// the child never blocks on a full pipe), where its descriptor no
    /// longer shows it. Poll again only after a round of both reads in
    /// which nothing arrived at all: an observer
    /// ([`set_observer`](Self::set_observer)) sees every arrival,
    /// whichever call read it.
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// let sh = Command::new("sh").stderr(Stdio::piped()).spawn()?;
    /// assert!(sh.stderr_fd().is_some());
    /// assert!(Command::new("cat").spawn()?.stderr_fd().is_none());   // inherited
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn stderr_fd(&self) -> Option<BorrowedFd<'_>> {
        self.session.streams.output_fd(Stream::Stderr)
    }

    /// The descriptor to the child's stdin (a pipe or the pty master), to
    /// poll for `POLLOUT` before a send that should not wait. `None` when
    /// stdin is not piped or was closed.
    ///
    /// ```
    /// let mut cat = duet::Command::new("cat").spawn()?;
    /// assert!(cat.stdin_fd().is_some());
    /// cat.close_stdin()?;
    /// assert!(cat.stdin_fd().is_none());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn stdin_fd(&self) -> Option<BorrowedFd<'_>> {
        self.session.streams.stdin.as_ref().map(|i| i.fd())
    }

    /// Sets the window size of the child's pty (with
    /// [`Command::pty`](crate::Command::pty) the kernel then sends SIGWINCH
    /// to the child's foreground process group).
    ///
    /// # Errors
    /// `Error::Io` when the child is not on a pty.
    ///
    /// ```
    /// let mut sh = duet::Command::new("sh").args(["-c", "read go; stty size"]).pty(true).spawn()?;
    /// sh.set_window_size(40, 120)?;
    /// sh.send_line("")?;
    /// assert_eq!(sh.read_line()?, "40 120");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn set_window_size(&mut self, rows: u16, cols: u16) -> Result<()> {
        let fd = match (
            &self.session.streams.stdin,
            self.session.streams.output_fd(Stream::Stdout),
        ) {
            (Some(input), _) if input.is_pty() => input.fd(),
            (_, Some(fd)) => fd,
            _ => return Err(errors::not_a_pty()),
        };
        Ok(sys::set_window_size(fd, rows, cols)?)
    }

    /// Hands the session to the person at duet's own stdin and stdout
    /// (pexpect's and Tcl Expect's `interact`): what they type goes to the
    /// child, what the child writes comes to them, until the child exits
    /// (`Some(status)`) or they type `^]` (`None`; the child keeps running
    /// and the conversation can go on). The classic use: automate a login,
    /// then give the terminal to the user.
    ///
    /// - Output already received and not consumed is shown first; a piped
    ///   stderr goes to duet's stderr.
    /// - Watches keep acting: [`respond`](Self::respond) answers,
    ///   [`fail_on`](Self::fail_on) ends the hand-over with its error.
    /// - On a terminal, duet's stdin is in raw mode for the while (keys go
    ///   one by one, `^C` and `^Z` included, to the child, whose own pty
    ///   acts on them; for a child on pipes output processing is kept, so
    ///   its lines still start at the left), and the settings are restored
    ///   on every way out: `^]`, the child's exit, an error, a panic
    ///   unwinding through (an observer's).
    /// - When the child is on a [`pty`](crate::Command::pty) and duet on a
    ///   terminal, the child's window takes the terminal's size, and
    ///   follows it on SIGWINCH (a handler installed for the while).
    /// - On pipes it works too: the end of duet's stdin closes the child's
    ///   (end-of-file on a pty), and the hand-over lasts until it exits.
    /// - There is no timeout: a person drives. A write of what was typed
    ///   still has the child's timeout.
    ///
    /// # Errors
    /// [`Error::FailOn`](crate::Error::FailOn) from a watch;
    /// `Error::Timeout` when the child does not read what was typed;
    /// `Error::Io` when duet's own stdin or stdout fails.
    ///
    /// ```no_run
    /// use duet::{Command, Pattern};
    /// let mut ssh = Command::new("ssh").arg("host").pty(true).spawn()?;
    /// ssh.expect(Pattern::exact("password: "))?;
    /// ssh.send_line("secret")?;
    /// ssh.respond(Pattern::exact("[y/N] "), "y\n");    // keeps answering meanwhile
    /// match ssh.interact()? {
    ///     Some(status) => println!("ssh ended: {status}"),
    ///     None => println!("^] typed: back to the script"),
    /// }
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn interact(&mut self) -> Result<Option<ExitStatus>> {
        self.session.interact()
    }

    // ---- lifecycle -------------------------------------------------------

    /// Returns the exit status if the child has exited, without waiting.
    ///
    /// ```
    /// let mut sh = duet::Command::new("sh").args(["-c", "read x; exit 4"]).spawn()?;
    /// assert_eq!(sh.try_wait()?, None);        // waiting for its line
    /// sh.send_line("go")?;
    /// let status = sh.wait()?;
    /// assert_eq!(sh.try_wait()?, Some(status));
    /// assert_eq!(status.code(), Some(4));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.process_mut().try_wait()?)
    }

    /// Closes the child's stdin and waits for it to exit. While waiting,
    /// its output is read into the buffers (still readable afterwards), so
    /// a child blocked on a full pipe cannot deadlock the wait. Calling it
    /// again returns the same status.
    ///
    /// ```
    /// let mut sh = duet::Command::new("sh").args(["-c", "echo bye; exit 3"]).spawn()?;
    /// let status = sh.wait()?;
    /// assert_eq!(status.code(), Some(3));
    /// assert_eq!(sh.read_line()?, "bye");      // output read while waiting stays readable
    /// assert_eq!(sh.wait()?, status);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.process_mut().try_wait()? {
            return Ok(status);
        }
        let _ = self.session.streams.close_stdin(None);
        Ok(self
            .wait_until(None)?
            .expect("a wait without deadline returns a status"))
    }

    /// Waits up to `timeout` for the child to exit: `Ok(None)` when it is
    /// still running. Unlike [`wait`](Self::wait) it leaves stdin open, so
    /// the conversation can go on after a wait that expired (a child that
    /// exits only at end-of-file needs [`close_stdin`](Self::close_stdin)
    /// first). Output is read into the buffers meanwhile.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut cat = duet::Command::new("cat").spawn()?;
    /// assert_eq!(cat.wait_timeout(Duration::from_millis(50))?, None);
    /// assert_eq!(cat.ask("still there")?, "still there");
    /// cat.close_stdin()?;
    /// assert!(cat.wait_timeout(Duration::from_secs(5))?.unwrap().success());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.wait_until(sys::deadline_after(timeout))
    }

    /// Like [`wait_timeout`](Self::wait_timeout), giving up at `deadline`
    /// (`None`: never). Leaves stdin open.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let mut cat = duet::Command::new("cat").spawn()?;
    /// let soon = Instant::now() + Duration::from_millis(50);
    /// assert_eq!(cat.wait_deadline(Some(soon))?, None);
    /// cat.close_stdin()?;
    /// assert!(cat.wait_deadline(None)?.unwrap().success());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn wait_deadline(&mut self, deadline: Option<Instant>) -> Result<Option<ExitStatus>> {
        self.wait_until(deadline)
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.process_mut().try_wait()? {
                return Ok(Some(status));
            }
            if !self.session.drain_until_exit(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Sends `signal` to the child (to its process group with
    /// [`Command::process_group`](crate::Command::process_group) or a pty).
    /// A no-op once the child has been reaped: never a signal to a recycled pid.
    ///
    /// ```
    /// use duet::{Command, Signal};
    /// let mut sleep = Command::new("sleep").arg("60").spawn()?;
    /// sleep.signal(Signal::SIGINT)?;
    /// assert_eq!(sleep.wait()?.signal(), Some(2));
    /// sleep.signal(Signal::SIGINT)?;           // after the reap: a no-op
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        Ok(self.process_mut().signal(signal)?)
    }

    /// Sends SIGKILL (see [`signal`](Self::signal)). Does not wait.
    ///
    /// ```
    /// let mut sleep = duet::Command::new("sleep").arg("60").spawn()?;
    /// sleep.kill()?;
    /// assert_eq!(sleep.wait()?.to_string(), "killed by signal 9 (SIGKILL)");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn kill(&mut self) -> Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// A handle that signals this child from any thread, while this
    /// thread reads from it or waits for it: see [`Killer`](crate::Killer).
    /// A no-op once the child is reaped, even if the handle outlives the
    /// `Child`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut child = duet::Command::new("sh").args(["-c", "echo started; exec sleep 60"]).spawn()?;
    /// let killer = child.killer();
    /// assert_eq!(child.read_line()?, "started");
    /// std::thread::spawn(move || killer.kill());      // a watchdog
    /// assert!(child.read_line().unwrap_err().is_eof());
    /// assert_eq!(child.wait()?.signal(), Some(9));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn killer(&self) -> crate::Killer {
        self.process().killer()
    }

    /// Stops the child gracefully: SIGTERM, up to `grace` for it to exit,
    /// then SIGKILL; reaps it and returns its status. With a process group
    /// every member gets SIGTERM and the whole grace, and what is left of
    /// the group at the deadline gets the SIGKILL. SIGCONT follows the
    /// SIGTERM, so a stopped child (`^Z`, SIGSTOP) runs its handler within
    /// the grace instead of waiting, stopped, for the SIGKILL.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut sleep = duet::Command::new("sleep").arg("60").spawn()?;
    /// let status = sleep.terminate(Duration::from_secs(2))?;
    /// assert_eq!(status.signal(), Some(15));   // SIGTERM was enough
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        Ok(self.process_mut().terminate(grace)?)
    }

    // ---- writing ---------------------------------------------------------

    /// Sends `text` as it is (no newline added).
    ///
    /// While the child's stdin is full, its output is read into the buffers,
    /// so a child that writes before it reads never deadlocks the send.
    ///
    /// # Errors
    /// `Error::Io` with `BrokenPipe` when the child is gone or its stdin is
    /// closed; `Error::Timeout` when it does not read its input in time.
    ///
    /// ```
    /// let mut cat = duet::Command::new("cat").spawn()?;
    /// cat.send("no newline, ")?;
    /// cat.send("then one\n")?;
    /// assert_eq!(cat.read_line()?, "no newline, then one");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send(&mut self, text: &str) -> Result<()> {
        self.session.send(text)
    }

    /// Sends `line` followed by `\n`, in one write.
    ///
    /// ```
    /// let mut bc = duet::Command::new("bc").arg("-q").spawn()?;
    /// bc.send_line("2^10")?;
    /// assert_eq!(bc.read_line()?, "1024");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        self.session.send_line(line)
    }

    /// Sends raw bytes. On a pty they arrive as they are: the terminal does
    /// not act on control characters in them (use
    /// [`send_control`](Self::send_control) for that).
    ///
    /// ```
    /// let mut cat = duet::Command::new("cat").spawn()?;
    /// cat.send_bytes(b"\xff\xfe\n")?;
    /// assert_eq!(cat.read_line_bytes()?, b"\xff\xfe");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.session.send_bytes(bytes)
    }

    /// Sends `text` one character at a time (a UTF-8 character, never half
    /// of one), `per_char` apart: pexpect's `delaybeforesend`, Tcl's
    /// `send -s`, for programs and devices that drop input arriving too fast
    /// (serial consoles, some password prompts). Output is read while the
    /// pauses pass, so watches keep seeing it and a child that answers each
    /// character never blocks. Each character's write has the child's
    /// timeout; the whole call takes at least `per_char` × (characters − 1).
    ///
    /// # Errors
    /// As [`send`](Self::send); the characters before the failing one were sent.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut cat = duet::Command::new("cat").spawn()?;
    /// cat.send_slow("héllo\n", Duration::from_millis(5))?;
    /// assert_eq!(cat.read_line()?, "héllo");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send_slow(&mut self, text: &str, per_char: Duration) -> Result<()> {
        self.session.send_slow(text, per_char)
    }

    /// Sends `text` as it is, like [`send`](Self::send), but a transcript
    /// records only that a secret of that many bytes was sent (for
    /// passwords and tokens). Add `\n` to send it as a line.
    ///
    /// ```
    /// let mut child = duet::Command::new("cat").spawn()?;
    /// child.set_transcript(std::io::sink());
    /// child.send_secret("hunter2\n")?;
    /// assert_eq!(child.read_line()?, "hunter2");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send_secret(&mut self, text: &str) -> Result<()> {
        self.session.send_secret(text)
    }

    /// Sends the control character `^c` raw: never escaped, so on a pty the
    /// terminal acts on it (`'c'` interrupts, `'z'` suspends, `'d'` ends
    /// input). `c` is a letter in either case or one of `@ [ \ ] ^ _ ?`
    /// (`'['` is ESC, `'?'` DEL), as pexpect's `sendcontrol`.
    ///
    /// On a pty, `^C` (and `^\`, `^Z`) also makes the kernel discard output
    /// the child wrote that was not read yet: a line printed just before
    /// the interrupt can be lost.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut sh = Command::new("sh").pty(true).spawn()?;
    /// sh.send_line("trap 'echo interrupted' INT; echo ready; sleep 5 & wait")?;
    /// sh.expect("ready")?;
    /// sh.send_control('c')?;
    /// sh.expect("interrupted")?;
    /// # Ok::<(), duet::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Error::Io` with `InvalidInput` for any other character; as
    /// [`send`](Self::send) otherwise.
    pub fn send_control(&mut self, c: char) -> Result<()> {
        self.session.send_control(c)
    }

    /// Interrupts the child as ^C at a terminal would: on a pty, the
    /// terminal's interrupt character (the kernel sends SIGINT to the
    /// child's foreground process group, and discards output not read yet:
    /// see [`send_control`](Self::send_control)); on pipes, where no
    /// terminal turns a byte into a signal, SIGINT itself (to the group with
    /// [`Command::process_group`](crate::Command::process_group)).
    ///
    /// ```
    /// let mut sleep = duet::Command::new("sleep").arg("60").pty(true).spawn()?;
    /// sleep.send_intr()?;                       // ^C: the terminal sends SIGINT
    /// assert_eq!(sleep.wait()?.signal(), Some(2));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send_intr(&mut self) -> Result<()> {
        self.session.send_intr()
    }

    /// Sends end-of-file: on a pty the terminal's end-of-file character
    /// (twice after a partial line, as a person would type it), after which
    /// the terminal stays open for more input; on a pipe it closes stdin
    /// ([`close_stdin`](Self::close_stdin)).
    ///
    /// ```
    /// let mut sort = duet::Command::new("sort").spawn()?;
    /// sort.send("b\na\n")?;
    /// sort.send_eof()?;
    /// assert_eq!(sort.read_line()?, "a");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send_eof(&mut self) -> Result<()> {
        self.session.send_eof()
    }

    /// Closes the child's stdin: it reads end-of-file. On a pty this sends
    /// the terminal's end-of-file character instead, and no more input can
    /// be sent.
    ///
    /// ```
    /// let mut wc = duet::Command::new("wc").arg("-l").spawn()?;
    /// wc.send("a\nb\nc\n")?;
    /// wc.close_stdin()?;                        // wc counts at end-of-file
    /// assert_eq!(wc.read_line()?.trim(), "3");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn close_stdin(&mut self) -> Result<()> {
        self.session.close_stdin()
    }

    // ---- watches ---------------------------------------------------------

    /// Watches the child's output (stdout and a piped stderr) for
    /// `pattern`: from now on, each time it appears, the next read or
    /// expect returns [`Error::FailOn`] instead of its result. The watch
    /// consumes nothing, and it sees the same read as the caller's own
    /// pattern: a failure text that arrives together with the expected text
    /// still fails the expect, which can be repeated to get the text.
    /// Output buffered but not consumed yet is watched too.
    ///
    /// ```
    /// use duet::{Command, Error, Pattern};
    /// let mut py = Command::new("python3").args(["-u", "-c", "print(1/0)"])
    ///     .merge_stderr(true)
    ///     .spawn()?;
    /// py.fail_on(Pattern::exact("Traceback"));
    /// let err = py.expect(Pattern::exact("done")).unwrap_err();
    /// assert!(matches!(err, Error::FailOn { .. }));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn fail_on(&mut self, pattern: Pattern) -> WatchId {
        self.session.fail_on(pattern)
    }

    /// Answers `reply` each time `pattern` appears in the child's output
    /// (stdout and a piped stderr), as pexpect users answer `[y/N]`
    /// prompts in a loop. The answer is written while duet waits for
    /// output (during any read or expect), and never in the middle of
    /// another send; the output is not consumed.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut sh = Command::new("sh").spawn()?;
    /// sh.respond(Pattern::exact("[y/N] "), "y\n");
    /// sh.send_line("printf 'sure? [y/N] '; read a; echo \"got $a\"")?;
    /// let m = sh.expect(Pattern::line("got (.)$")?)?;
    /// assert_eq!(m.as_str(), "sure? [y/N] got y");   // the prompt and the answer
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn respond(&mut self, pattern: Pattern, reply: impl AsRef<[u8]>) -> WatchId {
        self.session.respond(pattern, reply)
    }

    /// Removes a watch set by [`fail_on`](Self::fail_on) or
    /// [`respond`](Self::respond). Removing one that is gone does nothing.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut cat = Command::new("cat").spawn()?;
    /// let watch = cat.fail_on(Pattern::exact("error"));
    /// cat.unwatch(watch);
    /// assert_eq!(cat.ask("no error here")?, "no error here");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn unwatch(&mut self, id: WatchId) {
        self.session.unwatch(id)
    }

    // ---- reading lines ---------------------------------------------------

    /// Reads one line from stdout, without its `\n` or `\r\n`.
    ///
    /// # Errors
    /// `Error::Timeout` (the partial line stays buffered), `Error::Eof` when
    /// the child closed its output, `Error::LineTooLong` (the line is
    /// skipped), `Error::InvalidUtf8` (with the raw bytes), `Error::FailOn`
    /// when a watch matched.
    ///
    /// ```
    /// let mut sh = duet::Command::new("sh").args(["-c", "printf 'one\\r\\ntwo\\nthree'"]).spawn()?;
    /// assert_eq!(sh.read_line()?, "one");       // without "\r\n"
    /// assert_eq!(sh.read_line()?, "two");
    /// let err = sh.read_line().unwrap_err();     // "three" has no newline
    /// assert!(err.is_eof() && err.to_string().contains("three"), "{err}");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn read_line(&mut self) -> Result<String> {
        self.session.read_line()
    }

    /// [`read_line`](Self::read_line) with its own timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut sh = duet::Command::new("sh").args(["-c", "printf 'par'; read x; echo 'tial'"]).spawn()?;
    /// assert!(sh.read_line_timeout(Duration::from_millis(50)).unwrap_err().is_timeout());
    /// sh.send_line("go")?;
    /// assert_eq!(sh.read_line()?, "partial");    // the timeout lost nothing
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn read_line_timeout(&mut self, timeout: Duration) -> Result<String> {
        self.session.read_line_timeout(timeout)
    }

    /// Reads one line from stdout as bytes, whatever they are.
    ///
    /// ```
    /// let mut sh = duet::Command::new("printf").arg("caf\\351\\n").spawn()?;
    /// assert_eq!(sh.read_line_bytes()?, b"caf\xe9");   // Latin-1, not UTF-8
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn read_line_bytes(&mut self) -> Result<Vec<u8>> {
        self.session.read_line_bytes()
    }

    /// Sends `line` and reads one reply line.
    ///
    /// ```
    /// let mut bc = duet::Command::new("bc").arg("-q").spawn()?;
    /// assert_eq!(bc.ask("6*7")?, "42");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn ask(&mut self, line: &str) -> Result<String> {
        self.session.ask(line)
    }

    /// The stdout lines until end-of-file, each read with the default
    /// timeout. The iterator ends at end-of-file (yielding a last line that
    /// has no newline, as `std::io::BufRead::lines` does); other errors are
    /// items.
    ///
    /// ```
    /// let mut sh = duet::Command::new("printf").arg("a\\nb\\nc").spawn()?;
    /// let lines: Vec<String> = sh.lines().collect::<Result<_, _>>()?;
    /// assert_eq!(lines, ["a", "b", "c"]);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn lines(&mut self) -> Lines<'_> {
        self.session.lines()
    }

    /// Reads one line from a piped stderr.
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// let mut sh = Command::new("sh").args(["-c", "echo out; echo warning >&2"])
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// assert_eq!(sh.read_stderr_line()?, "warning");
    /// assert_eq!(sh.read_line()?, "out");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn read_stderr_line(&mut self) -> Result<String> {
        self.session.read_stderr_line()
    }

    /// [`read_stderr_line`](Self::read_stderr_line) with its own timeout.
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// use std::time::Duration;
    /// let mut cat = Command::new("cat").stderr(Stdio::piped()).spawn()?;
    /// let err = cat.read_stderr_line_timeout(Duration::from_millis(50)).unwrap_err();
    /// assert!(err.is_timeout());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn read_stderr_line_timeout(&mut self, timeout: Duration) -> Result<String> {
        self.session.read_stderr_line_timeout(timeout)
    }

    /// Returns output that has arrived on stdout: what is buffered, or else
    /// whatever comes within `timeout` (empty when nothing did).
    ///
    /// # Errors
    /// `Error::Eof` once everything has been read and the child closed stdout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut sh = duet::Command::new("sh").args(["-c", "printf 'login: '; read user"]).spawn()?;
    /// let mut got = Vec::new();
    /// while got != b"login: " {
    ///     got.extend(sh.read_available(Duration::from_secs(5))?);
    /// }
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn read_available(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.session.read_available(timeout)
    }

    /// [`read_available`](Self::read_available) for a piped stderr: what is
    /// buffered, or else whatever comes within `timeout`.
    ///
    /// # Errors
    /// `Error::Eof` once everything has been read and the child closed
    /// stderr; `Error::Io` when stderr is not piped.
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// use std::time::Duration;
    /// let mut sh = Command::new("sh").args(["-c", "printf 'Password: ' >&2; read p"])
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// let mut got = Vec::new();
    /// while got != b"Password: " {
    ///     got.extend(sh.read_stderr_available(Duration::from_secs(5))?);
    /// }
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn read_stderr_available(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.session.read_stderr_available(timeout)
    }

    /// True when no byte at all arrives on stdout for `quiet`; false as
    /// soon as one does. Nothing is consumed: output that was already
    /// buffered does not count and stays there for the next read, as does
    /// what arrived. This is how a test asserts that a program holds its
    /// output (buffering on a pipe) or has nothing more to say. Bytes count
    /// as they come, before [`Command::strip_ansi`](crate::Command::strip_ansi).
    /// Output on a piped stderr is read meanwhile and meets the watches.
    ///
    /// # Errors
    /// `Error::Eof` when stdout has ended (before or during the wait):
    /// nothing more can arrive. `Error::FailOn` when a
    /// [`fail_on`](Self::fail_on) watch matched, as for any read.
    ///
    /// ```
    /// use duet::Command;
    /// use std::time::Duration;
    /// let mut tr = Command::new("tr").args(["a-z", "A-Z"]).spawn()?;
    /// tr.send_line("hello")?;
    /// assert!(tr.stays_quiet(Duration::from_millis(200))?);   // tr buffers on a pipe
    /// tr.close_stdin()?;
    /// assert_eq!(tr.read_line()?, "HELLO");
    ///
    /// let mut tr = Command::new("tr").args(["a-z", "A-Z"]).pty(true).spawn()?;
    /// tr.send_line("hello")?;
    /// assert!(!tr.stays_quiet(Duration::from_secs(10))?);     // not on a terminal: false at once
    /// assert_eq!(tr.read_line()?, "HELLO");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn stays_quiet(&mut self, quiet: Duration) -> Result<bool> {
        self.session.stays_quiet(quiet)
    }

    /// [`stays_quiet`](Self::stays_quiet) for a piped stderr.
    ///
    /// ```
    /// use duet::{Command, Stdio};
    /// use std::time::Duration;
    /// let mut sh = Command::new("sh").args(["-c", "read x; echo oops >&2; read y"])
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// assert!(sh.stderr_stays_quiet(Duration::from_millis(50))?);
    /// sh.send_line("go")?;
    /// assert!(!sh.stderr_stays_quiet(Duration::from_secs(10))?);
    /// assert_eq!(sh.read_stderr_line()?, "oops");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn stderr_stays_quiet(&mut self, quiet: Duration) -> Result<bool> {
        self.session.stderr_stays_quiet(quiet)
    }

    // ---- expect ----------------------------------------------------------

    /// Waits until `pattern` matches stdout; consumes through the match.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut sh = Command::new("sh").spawn()?;
    /// sh.send_line("printf 'ready> '")?;
    /// let m = sh.expect(Pattern::exact("> "))?;
    /// assert_eq!(m.before(), "ready");
    /// # Ok::<(), duet::Error>(())
    /// ```
    ///
    /// The search is linear: however the output arrives, each byte is
    /// examined a bounded number of times, and an expect that timed out
    /// resumes where it stopped when it is repeated with the same pattern.
    pub fn expect(&mut self, pattern: impl Into<Pattern>) -> Result<Match> {
        self.session.expect(pattern)
    }

    /// [`expect`](Self::expect) with its own timeout.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// use std::time::Duration;
    /// let mut sh = Command::new("sh").args(["-c", "printf 'Loading'; exec sleep 5"]).spawn()?;
    /// let err = sh.expect_timeout(Pattern::exact("ready"), Duration::from_millis(100)).unwrap_err();
    /// // The error says what was expected and what arrived.
    /// assert!(err.is_timeout() && err.to_string().contains("Loading"), "{err}");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn expect_timeout(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<Match> {
        self.session.expect_timeout(pattern, timeout)
    }

    /// Waits until one of `patterns` matches: returns its index and the match.
    /// The earliest match in the output wins (the first listed on a tie).
    /// `Pattern::Eof` and `Pattern::Timeout` in the list turn those
    /// outcomes into matches instead of errors.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// use std::time::Duration;
    /// let mut sh = Command::new("sh").spawn()?;
    /// sh.send_line("echo 'ERR disk full'; exit 1")?;
    /// let outcomes = [Pattern::exact("OK"), Pattern::regex(r"ERR (.*)")?, Pattern::Eof, Pattern::Timeout];
    /// let (i, m) = sh.expect_any_timeout(&outcomes, Duration::from_secs(5))?;
    /// assert_eq!((i, m.group(1)), (1, Some("disk full")));
    /// let (i, _) = sh.expect_any(&outcomes)?;
    /// assert_eq!(i, 2);   // end of output: the shell exited
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn expect_any(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)> {
        self.session.expect_any(patterns)
    }

    /// [`expect_any`](Self::expect_any) with its own timeout.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// use std::time::Duration;
    /// let mut cat = Command::new("cat").spawn()?;
    /// let (i, _) = cat.expect_any_timeout(
    ///     &[Pattern::exact("never"), Pattern::Timeout],  // a timeout is an outcome
    ///     Duration::from_millis(50),
    /// )?;
    /// assert_eq!(i, 1);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn expect_any_timeout(
        &mut self,
        patterns: &[Pattern],
        timeout: Duration,
    ) -> Result<(usize, Match)> {
        self.session.expect_any_timeout(patterns, timeout)
    }

    /// Waits until `pattern` matches a piped stderr (some programs prompt there).
    ///
    /// ```
    /// use duet::{Command, Pattern, Stdio};
    /// let mut sh = Command::new("sh")
    ///     .args(["-c", "printf 'Password: ' >&2; read p; echo \"got $p\""])
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// sh.expect_stderr(Pattern::exact("Password: "))?;
    /// sh.send_secret("hunter2\n")?;
    /// assert_eq!(sh.read_line()?, "got hunter2");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn expect_stderr(&mut self, pattern: impl Into<Pattern>) -> Result<Match> {
        self.session.expect_stderr(pattern)
    }

    /// [`expect_any`](Self::expect_any) on a piped stderr: the earliest
    /// match of any of `patterns` (the first listed on a tie);
    /// `Pattern::Eof` and `Pattern::Timeout` make those outcomes matches.
    ///
    /// ```
    /// use duet::{Command, Pattern, Stdio};
    /// let mut sh = Command::new("sh").args(["-c", "echo 'Error: no such table' >&2"])
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// let outcomes = [Pattern::line("^ok$")?, Pattern::line("^Error: (.*)$")?, Pattern::Eof];
    /// let (i, m) = sh.expect_any_stderr(&outcomes)?;
    /// assert_eq!((i, m.group(1)), (1, Some("no such table")));
    /// assert_eq!(sh.expect_any_stderr(&outcomes)?.0, 2);   // then stderr ended
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn expect_any_stderr(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)> {
        self.session.expect_any_stderr(patterns)
    }

    // ---- whole runs ------------------------------------------------------

    /// Writes all of `input`, closes stdin and reads stdout and stderr to
    /// the end, then reaps the child. No deadlock however much both sides
    /// write. Output already buffered by earlier reads is included.
    ///
    /// When the child has exited but a descendant still holds its output
    /// pipes, reading stops after [`DRAIN_GRACE`](crate::DRAIN_GRACE) and
    /// `Output::still_open` says so, instead of hanging until the
    /// descendant exits.
    ///
    /// ```
    /// let mut tr = duet::Command::new("tr").args(["a-z", "A-Z"]).spawn()?;
    /// let out = tr.communicate(b"hello\n", None)?;
    /// assert_eq!(out.stdout, b"HELLO\n");
    /// assert!(out.status.success());
    /// # Ok::<(), duet::Error>(())
    /// ```
    ///
    /// # Errors
    /// `Error::Timeout` when `timeout` passes first; [`Error::output`]
    /// then holds every byte captured so far, and the buffers keep them.
    pub fn communicate(&mut self, input: &[u8], timeout: Option<Duration>) -> Result<Output> {
        let start = Instant::now();
        // It collects everything: not bounded by max_buffer.
        self.session.streams.core.set_max_buffer(usize::MAX);
        let deadline = timeout.and_then(sys::deadline_after);
        if input.len() >= crate::driver::BULK_INPUT {
            self.session.streams.widen_pipes();
        }
        if !input.is_empty() {
            match self.session.streams.write(&[input], deadline, false) {
                Ok(Written::All) => {}
                Ok(Written::TimedOut(_)) => {
                    return Err(self.communicate_timeout(start, "the child to read its input"));
                }
                // The child exited without reading everything: not an error
                // here, its output and status tell the story.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
        let _ = self.session.streams.close_stdin(deadline);
        let mut still_open = false;
        loop {
            if self.session.streams.core.all_eof() {
                break;
            }
            if self.process_mut().try_wait()?.is_some() {
                let drain_deadline = crate::driver::drain_deadline(deadline);
                while !self.session.streams.core.all_eof() {
                    if !self.session.streams.drain(drain_deadline, None)? {
                        still_open = !self.session.streams.core.all_eof();
                        break;
                    }
                }
                break;
            }
            if !self.session.drain_until_exit(deadline)? {
                return Err(self.communicate_timeout(start, "the child to finish"));
            }
        }
        if still_open
            && let Err(expected) = crate::driver::output_left_open(&self.program, deadline)
        {
            return Err(self.communicate_timeout(start, expected));
        }
        let status = match self.process_mut().wait_deadline(deadline)? {
            Some(status) => status,
            None => return Err(self.communicate_timeout(start, "the child to exit")),
        };
        Ok(Output {
            status,
            stdout: self.session.streams.core.take_all(Stream::Stdout),
            stderr: self.session.streams.core.take_all(Stream::Stderr),
            still_open,
        })
    }

    /// A timeout of `communicate`, carrying a copy of everything captured.
    fn communicate_timeout(&mut self, start: Instant, expected: &str) -> Error {
        let status = self.process_mut().try_wait().ok().flatten();
        errors::communicate_timeout(
            &self.session.streams.core,
            start.elapsed(),
            expected,
            status,
        )
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Close our ends first: many children exit on end-of-file alone.
        self.session.streams.close_all();
        if self.process().status().is_some() {
            return;
        }
        let outcome = match self.on_drop {
            OnDrop::Detach => return,
            OnDrop::Wait => self.process_mut().wait_deadline(None).map(|_| ()),
            OnDrop::Terminate(grace) => self.process_mut().terminate(grace).map(|_| ()),
        };
        if let Err(e) = outcome {
            log::warn!("dropping child `{}` (pid {}): {e}", self.program, self.id());
        }
    }
}
