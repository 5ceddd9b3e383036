//! The async `Child`: the blocking `Child`'s conversation and lifecycle,
//! waiting on the runtime's reactor instead of `poll(2)`.

use std::future::poll_fn;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::task::Poll;
use std::time::{Duration, Instant};

use ::tokio::runtime::Handle;

use super::io::{Drained, Io, Waited};
use super::process::{Pidfd, Reaper};
use crate::driver::errors::{self, EOF_STATUS_GRACE};
use crate::driver::{Observed, Outgoing, Transcript, Written};
use crate::spawn::Spawned;
use crate::{Command, Error, ExitStatus, OnDrop, Output, Pattern, Result, Signal};
use duet_core::Match;
use duet_core::{Action, WatchId};
use duet_core::{Halt, Stream};

/// A running child process and the conversation with it, for tokio.
///
/// Made by [`Command::spawn_async`]. It has the methods of the blocking
/// [`Child`](crate::Child), with the same names, arguments, return types
/// and meanings; those that wait are `async`. The conversation core is the
/// same one (framing, `max_line`, patterns, watches and errors are one
/// implementation): only the waiting differs.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> duet::Result<()> {
/// use duet::{Command, Pattern};
/// let mut bc = Command::new("bc").arg("-q").spawn_async()?;
/// assert_eq!(bc.ask("2+2").await?, "4");
/// bc.send_line("scale=3; 1/3").await?;
/// let m = bc.expect(Pattern::line(r"^\.(\d+)$")?).await?;
/// assert_eq!(m.group(1), Some("333"));
/// bc.close_stdin().await?;
/// assert!(bc.wait().await?.success());
/// # Ok(())
/// # }
/// ```
///
/// # How it waits
///
/// The pipes (or the pty master) and the child's pidfd are registered with
/// the runtime's reactor (`tokio::io::unix::AsyncFd`): output arriving,
/// room to write and the child's exit are readiness events. duet starts no
/// thread, installs no SIGCHLD handler and uses no `spawn_blocking`;
/// thousands of children run on one `current_thread` runtime. The runtime
/// needs its IO and time drivers (`enable_all`).
///
/// # Cancel safety
///
/// Every read, expect and wait keeps its state in the `Child`, never in
/// its future: whatever arrived while a future was pending is in the
/// buffers, and an expect dropped mid-way resumes its search when it is
/// repeated. A future dropped before it completes consumes nothing, so
/// these methods can be raced in `tokio::select!` and wrapped in
/// `tokio::time::timeout`. Sends say per method what a dropped future may
/// already have written; in short, a send is never left half-written for
/// the next one to continue.
///
/// # Runtimes
///
/// A child belongs to no runtime in particular: spawned on one, it can be
/// awaited on another, also once the first is gone, as `tokio::process`
/// allows. The first wait on another runtime moves the child's
/// registrations (pipes, pty, pidfd) and its timer there, once; waiting
/// outside any tokio runtime is an error that says so.
///
/// # Drop
///
/// Dropping a `Child` never blocks the thread. It closes the pipes and
/// hands the [`OnDrop`] policy (default: SIGTERM, 1 s grace, SIGKILL,
/// reap) to a task on the runtime that drops it (outside any runtime: the
/// one it was last used on), which waits
/// on the pidfd; no zombie remains once the runtime has run it. If that
/// runtime shuts down first, or is gone already, the child is killed
/// (SIGKILL) and reaped on the spot by the thread that drops the task,
/// which SIGKILL makes prompt; with [`OnDrop::Wait`] that thread waits for
/// the child to exit instead, as a blocking `Child` would.
#[derive(Debug)]
pub struct Child {
    // Declared before `process`: the pipes close before the process is handled.
    io: Io,
    channel: Option<OwnedFd>,
    /// `None` only while being dropped.
    process: Option<Pidfd>,
    program: String,
    timeout: Duration,
    on_drop: OnDrop,
    runtime: Handle,
}

/// The error for a runtime-less `spawn_async`.
fn no_runtime() -> Error {
    Error::Io(std::io::Error::other(
        "Command::spawn_async needs a tokio runtime: call it from a task, \
         inside Runtime::block_on, or after Runtime::enter",
    ))
}

impl Child {
    /// Starts `cmd` and registers its descriptors with the current runtime.
    pub(crate) fn spawn(cmd: &Command) -> Result<Child> {
        let runtime = Handle::try_current().map_err(|_| no_runtime())?;
        let Spawned {
            streams,
            process,
            program,
            timeout,
            on_drop,
            channel,
        } = crate::spawn::spawn(cmd)?;
        let register = |what: &str, e: std::io::Error| Error::Spawn {
            program: program.clone(),
            source: std::io::Error::new(
                e.kind(),
                format!("register {what} with the tokio runtime: {e}"),
            ),
        };
        let mut process = match Pidfd::new(process) {
            Ok(pidfd) => pidfd,
            Err((mut process, e)) => {
                let _ = process.kill_and_reap();
                return Err(register("the pidfd", e));
            }
        };
        let io = match Io::new(streams) {
            Ok(io) => io,
            Err(e) => {
                let _ = process.get_mut().kill_and_reap();
                return Err(register("the pipes", e));
            }
        };
        Ok(Child {
            io,
            channel,
            process: Some(process),
            program,
            timeout,
            on_drop,
            runtime,
        })
    }

    /// Moves the child to the runtime it is used from, when that is not
    /// the one it was last used from (see `Registered` in `tokio::io`):
    /// its descriptors' registrations, and its timer. Called first by every
    /// method that waits.
    ///
    /// # Errors
    /// Outside any runtime (another executor): the child's readiness and
    /// timers come from a tokio runtime's drivers.
    fn follow(&mut self) -> Result<()> {
        let Ok(here) = Handle::try_current() else {
            return Err(Error::Io(std::io::Error::other(format!(
                "child `{}` (pid {}) is awaited outside a tokio runtime: await it \
                 in a task, inside Runtime::block_on, or after Runtime::enter",
                self.program,
                self.id()
            ))));
        };
        let id = here.id();
        if self.runtime.id() == id {
            return Ok(());
        }
        let (program, pid) = (&self.program, self.id());
        let moved = |e: std::io::Error| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!(
                    "move child `{program}` (pid {pid}) to the tokio runtime it is awaited from: {e}"
                ),
            ))
        };
        self.io.follow(id).map_err(moved)?;
        let process = self
            .process
            .as_mut()
            .expect("the process is there until drop");
        process.follow(id).map_err(moved)?;
        self.runtime = here;
        Ok(())
    }

    fn process(&mut self) -> &mut Pidfd {
        self.process
            .as_mut()
            .expect("the process is there until drop")
    }

    /// Takes the parent's end of the channel given to the child with
    /// [`Command::channel`](crate::Command::channel), as an async
    /// [`Connection`](super::Connection); `None` without one or when taken
    /// already.
    pub fn take_channel(&mut self) -> Option<super::Connection> {
        self.channel.take().map(super::Connection::from_fd)
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.process.as_ref().map_or(0, |p| p.get().id())
    }

    /// The default timeout of this child's reads, expects and writes.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets the default timeout for later reads, expects and writes.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Records every byte sent and received from now on, as
    /// [`Child::set_transcript`](crate::Child::set_transcript) does. The
    /// writer is called on the runtime's thread: give it something that
    /// does not block for long (a file, a `Vec`).
    pub fn set_transcript(&mut self, out: impl Write + Send + 'static) {
        Transcript::set_text(&mut self.io.transcript, Box::new(out));
    }

    /// Calls `observer` with every chunk of bytes received and sent from
    /// now on, as [`Child::set_observer`](crate::Child::set_observer). It
    /// runs on the runtime's thread, inside the read or send that moved the
    /// bytes: keep it short.
    pub fn set_observer(&mut self, observer: impl FnMut(Observed<'_>) + Send + 'static) {
        Transcript::set_observer(&mut self.io.transcript, Box::new(observer));
    }

    /// Sets the window size of the child's pty, as
    /// [`Child::set_window_size`](crate::Child::set_window_size).
    ///
    /// # Errors
    /// `Error::Io` when the child is not on a pty.
    pub fn set_window_size(&mut self, rows: u16, cols: u16) -> Result<()> {
        let fd = match (self.io.stdin(), self.io.output_fd(Stream::Stdout)) {
            (Some(input), _) if input.is_pty() => input.fd(),
            (_, Some(fd)) => fd,
            _ => return Err(errors::not_a_pty()),
        };
        Ok(crate::sys::set_window_size(fd, rows, cols)?)
    }

    // ---- lifecycle -------------------------------------------------------

    /// Returns the exit status if the child has exited, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.process().get_mut().try_wait()?)
    }

    /// Closes the child's stdin and waits for it to exit, reading its
    /// output into the buffers meanwhile (still readable afterwards).
    /// Calling it again returns the same status.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped `wait` has closed stdin (that is its first
    /// step) and kept every byte it read; the child is reaped by the next
    /// wait that sees it exit.
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        self.follow()?;
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        let _ = self.io.close_stdin(None).await;
        Ok(self
            .wait_until(None)
            .await?
            .expect("a wait without deadline returns a status"))
    }

    /// Waits up to `timeout` for the child to exit: `Ok(None)` when it is
    /// still running. Like [`Child::wait_timeout`](crate::Child::wait_timeout)
    /// it leaves stdin open; output is read into the buffers meanwhile.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: nothing is consumed, and a later wait sees the exit.
    pub async fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.wait_until(Instant::now().checked_add(timeout)).await
    }

    async fn wait_until(&mut self, deadline: Option<Instant>) -> Result<Option<ExitStatus>> {
        self.follow()?;
        if let Some(status) = self.try_wait()? {
            return Ok(Some(status));
        }
        loop {
            match self.drain(deadline, true).await? {
                Step::Exited(status) => return Ok(Some(status)),
                Step::Read => {}
                // The last look: the reactor may not have seen the exit yet.
                Step::TimedOut => return self.try_wait(),
            }
        }
    }

    /// Reads output until something arrives, the child exits (when
    /// `exit`) or `deadline` passes.
    async fn drain(&mut self, deadline: Option<Instant>, exit: bool) -> Result<Step> {
        let process = self
            .process
            .as_mut()
            .expect("the process is there until drop");
        let io = &mut self.io;
        poll_fn(|cx| {
            if exit && let Poll::Ready(status) = process.poll_exit(cx) {
                return Poll::Ready(status.map(Step::Exited));
            }
            io.poll_drain(cx, deadline).map_ok(|d| match d {
                Drained::Read => Step::Read,
                Drained::TimedOut => Step::TimedOut,
            })
        })
        .await
        .map_err(Error::from)
    }

    /// Sends `signal` to the child (to its process group with
    /// [`Command::process_group`](crate::Command::process_group) or a pty).
    /// A no-op once the child has been reaped.
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        Ok(self.process().get_mut().signal(signal)?)
    }

    /// Sends SIGKILL (see [`signal`](Self::signal)). Does not wait.
    pub fn kill(&mut self) -> Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// A handle that signals this child from any thread or task, while
    /// this one awaits a read or the exit: the blocking
    /// [`Killer`](crate::Killer), since a signal never waits (a plain
    /// `fn`, like [`signal`](Self::signal); for a child on another host it
    /// runs `ssh` to deliver, as `signal` does). A no-op once the child is
    /// reaped, even if the handle outlives the `Child`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> duet::Result<()> {
    /// let mut child = duet::Command::new("sleep").arg("60").spawn_async()?;
    /// let killer = child.killer();
    /// tokio::spawn(async move { killer.kill() });
    /// assert_eq!(child.wait().await?.signal(), Some(9));
    /// # Ok(())
    /// # }
    /// ```
    pub fn killer(&self) -> crate::Killer {
        self.process
            .as_ref()
            .expect("the process is there until drop")
            .get()
            .killer()
    }

    /// Stops the child gracefully: SIGTERM, up to `grace` for it to exit,
    /// then SIGKILL; reaps it and returns its status, as
    /// [`Child::terminate`](crate::Child::terminate). The grace period is a
    /// timer on the runtime: other tasks on the same thread run meanwhile.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after SIGTERM went out leaves the child
    /// signalled (and, past the grace period, maybe killed) but not
    /// reaped; a later `wait` or `terminate` reaps it, and dropping the
    /// `Child` applies its [`OnDrop`] policy.
    pub async fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        self.follow()?;
        Ok(self.process().terminate(grace).await?)
    }

    // ---- writing ---------------------------------------------------------

    /// Sends `text` as it is (no newline added). While the child's stdin is
    /// full, its output is read into the buffers, so a child that writes
    /// before it reads never deadlocks the send.
    ///
    /// # Errors
    /// `Error::Io` with `BrokenPipe` when the child is gone or its stdin is
    /// closed; `Error::Timeout` when it does not read its input in time.
    ///
    /// # Cancel safety
    ///
    /// A send dropped before any byte was written sends nothing. Once part
    /// of it is written, the rest is kept in the `Child` and written before
    /// anything else goes to the child's stdin (by the next send, by any
    /// read or expect, or by `close_stdin`): the child never sees half a
    /// message continued by the next one. The transcript records the
    /// message when the send starts.
    pub async fn send(&mut self, text: &str) -> Result<()> {
        self.send_parts(&[text.as_bytes()], false).await
    }

    /// Sends `line` followed by `\n`, in one write.
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_line(&mut self, line: &str) -> Result<()> {
        self.send_parts(&[line.as_bytes(), b"\n"], false).await
    }

    /// Sends raw bytes; on a pty they arrive as they are (see
    /// [`Child::send_bytes`](crate::Child::send_bytes)).
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.send_parts(&[bytes], false).await
    }

    /// Sends `text` one character at a time (a UTF-8 character), `per_char`
    /// apart, as [`Child::send_slow`](crate::Child::send_slow). The pauses
    /// are the runtime's timer (`tokio::time::sleep`): the thread serves
    /// other tasks meanwhile. Output is not read during a pause; it waits in
    /// the pipe (or is read by a send that finds the child's input full) for
    /// the next read.
    ///
    /// # Cancel safety
    ///
    /// Dropped part-way, the characters sent so far stay sent (each one is
    /// a [`send`](Self::send)); the rest is not sent.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// use std::time::Duration;
    /// let mut cat = duet::Command::new("cat").spawn_async()?;
    /// cat.send_slow("héllo\n", Duration::from_millis(5)).await?;
    /// assert_eq!(cat.read_line().await?, "héllo");
    /// # Ok::<(), duet::Error>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn send_slow(&mut self, text: &str, per_char: Duration) -> Result<()> {
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            self.send(&text[at..at + c.len_utf8()]).await?;
            if chars.peek().is_some() {
                ::tokio::time::sleep(per_char).await;
            }
        }
        Ok(())
    }

    /// What stdout holds unread (for the timeout of a group wait).
    pub(super) fn unread(&self) -> &[u8] {
        self.io.core.pending(Stream::Stdout)
    }

    /// True when stdout is piped.
    pub(super) fn stdout_piped(&self) -> bool {
        self.io.core.inbox(Stream::Stdout).is_some()
    }

    /// Sends `text` as it is, like [`send`](Self::send), but a transcript
    /// records only that a secret of that many bytes was sent.
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_secret(&mut self, text: &str) -> Result<()> {
        self.send_parts(&[text.as_bytes()], true).await
    }

    async fn send_parts(&mut self, parts: &[&[u8]], secret: bool) -> Result<()> {
        self.follow()?;
        let start = Instant::now();
        let (input, transcript) = self.io.input_mut()?;
        let out = input.outgoing(transcript, parts, secret);
        let outcome = self.io.write(&out, start.checked_add(self.timeout)).await?;
        self.written(outcome, start, || {
            let total: usize = parts.iter().map(|p| p.len()).sum();
            format!("the child to read its input ({total} bytes to write)")
        })
    }

    fn written(
        &mut self,
        outcome: Written,
        start: Instant,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        match outcome {
            Written::All => Ok(()),
            Written::TimedOut(n) => {
                let expected = errors::unwritten(&what(), n);
                Err(self.timeout_error(Stream::Stdout, start, expected))
            }
        }
    }

    async fn send_raw(&mut self, byte: u8, what: impl FnOnce() -> String) -> Result<()> {
        self.follow()?;
        let start = Instant::now();
        let (input, transcript) = self.io.input_mut()?;
        input.control(transcript, &[byte]);
        let outcome = self
            .io
            .write(
                &Outgoing::Plain(&[&[byte]]),
                start.checked_add(self.timeout),
            )
            .await?;
        self.written(outcome, start, what)
    }

    /// Sends the control character `^c` raw: never escaped, so on a pty the
    /// terminal acts on it (`'c'` interrupts, `'z'` suspends, `'d'` ends
    /// input). `c` is a letter in either case or one of `@ [ \ ] ^ _ ?`
    /// (`'['` is ESC, `'?'` DEL), as pexpect's `sendcontrol`.
    ///
    /// On a pty, `^C` (and `^\`, `^Z`) also makes the kernel discard output
    /// the child wrote that was not read yet, along with the SIGINT: a
    /// line printed just before the interrupt can be lost.
    ///
    /// `async` because a full pipe can make it wait.
    ///
    /// # Errors
    /// `Error::Io` with `InvalidInput` for any other character; as
    /// [`send`](Self::send) otherwise.
    ///
    /// # Cancel safety
    ///
    /// One byte: a dropped future has sent it or not (anything a dropped
    /// send left in the `Child` goes first).
    pub async fn send_control(&mut self, c: char) -> Result<()> {
        let byte = errors::control_byte(c)?;
        self.send_raw(byte, || format!("room to send ^{}", c.to_ascii_uppercase()))
            .await
    }

    /// Interrupts the child as ^C at a terminal would: on a pty, the
    /// terminal's interrupt character (the kernel sends SIGINT to the
    /// child's foreground process group, and discards output not read yet:
    /// a line printed just before can be lost); on pipes, SIGINT itself (to
    /// the group with [`Command::process_group`](crate::Command::process_group)).
    ///
    /// # Cancel safety
    ///
    /// As [`send_control`](Self::send_control).
    pub async fn send_intr(&mut self) -> Result<()> {
        match self.io.stdin() {
            Some(input) if input.is_pty() => {
                let intr = crate::driver::pty::interrupt_char(input.fd());
                self.send_raw(intr, || "room to send ^C".to_string()).await
            }
            _ => self.signal(Signal::SIGINT),
        }
    }

    /// Sends end-of-file: on a pty the terminal's end-of-file character
    /// (twice after a partial line), after which the terminal stays open
    /// for more input; on a pipe it closes stdin
    /// ([`close_stdin`](Self::close_stdin)).
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send) on a pty; as
    /// [`close_stdin`](Self::close_stdin) on a pipe.
    pub async fn send_eof(&mut self) -> Result<()> {
        self.follow()?;
        let start = Instant::now();
        let outcome = self.io.send_eof(start.checked_add(self.timeout)).await?;
        self.written(outcome, start, || "room to send end-of-file".to_string())
    }

    /// Closes the child's stdin: it reads end-of-file. On a pty this sends
    /// the terminal's end-of-file character instead, and no more input can
    /// be sent.
    ///
    /// # Cancel safety
    ///
    /// Whatever an earlier dropped send left is written first; a
    /// `close_stdin` dropped before it finished leaves stdin open (on a pty
    /// the end-of-file character may have gone out).
    pub async fn close_stdin(&mut self) -> Result<()> {
        self.follow()?;
        let start = Instant::now();
        let outcome = self.io.close_stdin(start.checked_add(self.timeout)).await?;
        self.written(outcome, start, || "room to send end-of-file".to_string())
    }

    // ---- watches ---------------------------------------------------------

    /// Watches the child's output for `pattern`: from now on, each time it
    /// appears, the next read or expect returns [`Error::FailOn`], as
    /// [`Child::fail_on`](crate::Child::fail_on).
    pub fn fail_on(&mut self, pattern: Pattern) -> WatchId {
        self.io.core.watch(pattern, Action::FailOn)
    }

    /// Answers `reply` each time `pattern` appears in the child's output,
    /// as [`Child::respond`](crate::Child::respond). The answer is written
    /// while a read or expect waits, never in the middle of a send.
    pub fn respond(&mut self, pattern: Pattern, reply: impl AsRef<[u8]>) -> WatchId {
        let reply = reply.as_ref().to_vec();
        self.io.core.watch(pattern, Action::Respond(reply))
    }

    /// Removes a watch set by [`fail_on`](Self::fail_on) or
    /// [`respond`](Self::respond). Removing one that is gone does nothing.
    pub fn unwatch(&mut self, id: WatchId) {
        self.io.core.unwatch(id);
    }

    // ---- reading lines ---------------------------------------------------

    /// Reads one line from stdout, without its `\n` or `\r\n`.
    ///
    /// # Errors
    /// As [`Child::read_line`](crate::Child::read_line).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped `read_line` consumes nothing; the line and
    /// everything after it stay for the next read.
    pub async fn read_line(&mut self) -> Result<String> {
        self.read_line_timeout(self.timeout).await
    }

    /// [`read_line`](Self::read_line) with its own timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`read_line`](Self::read_line).
    pub async fn read_line_timeout(&mut self, timeout: Duration) -> Result<String> {
        let bytes = self.line_from(Stream::Stdout, timeout, false).await?;
        utf8(bytes)
    }

    /// Reads one line from stdout as bytes, whatever they are.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`read_line`](Self::read_line).
    pub async fn read_line_bytes(&mut self) -> Result<Vec<u8>> {
        self.line_from(Stream::Stdout, self.timeout, false).await
    }

    /// Sends `line` and reads one reply line.
    ///
    /// # Cancel safety
    ///
    /// Once the line is sent, as [`read_line`](Self::read_line): a reply
    /// that arrives after the future was dropped is read by the next read.
    /// Before that, as [`send`](Self::send).
    pub async fn ask(&mut self, line: &str) -> Result<String> {
        self.send_line(line).await?;
        self.read_line().await
    }

    /// The stdout lines until end-of-file, each read with the default
    /// timeout; see [`Lines::next_line`].
    pub fn lines(&mut self) -> Lines<'_> {
        Lines { child: self }
    }

    /// Reads one line from a piped stderr.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`read_line`](Self::read_line).
    pub async fn read_stderr_line(&mut self) -> Result<String> {
        self.read_stderr_line_timeout(self.timeout).await
    }

    /// [`read_stderr_line`](Self::read_stderr_line) with its own timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`read_line`](Self::read_line).
    pub async fn read_stderr_line_timeout(&mut self, timeout: Duration) -> Result<String> {
        let bytes = self.line_from(Stream::Stderr, timeout, false).await?;
        utf8(bytes)
    }

    /// Returns output that has arrived on stdout: what is buffered, or else
    /// whatever comes within `timeout` (empty when nothing did).
    ///
    /// # Errors
    /// `Error::Eof` once everything has been read and the child closed stdout.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: what arrived while it waited stays buffered.
    pub async fn read_available(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.available_from(Stream::Stdout, timeout).await
    }

    /// [`read_available`](Self::read_available) for a piped stderr.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`read_available`](Self::read_available).
    pub async fn read_stderr_available(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.available_from(Stream::Stderr, timeout).await
    }

    async fn available_from(&mut self, s: Stream, timeout: Duration) -> Result<Vec<u8>> {
        self.follow()?;
        self.piped(s)?;
        match self
            .io
            .until(timeout, |core| core.poll_available(s))
            .await?
        {
            Waited::Done(bytes) => Ok(bytes),
            Waited::Halted(halt) => Err(self.halted(s, halt).await),
            Waited::TimedOut(_) => Ok(Vec::new()),
        }
    }

    /// True when no byte arrives on stdout for `quiet`; false as soon as
    /// one does. Consumes nothing, as
    /// [`Child::stays_quiet`](crate::Child::stays_quiet).
    ///
    /// # Errors
    /// `Error::Eof` at the end of stdout; `Error::FailOn` when a watch
    /// matched.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it consumes nothing.
    pub async fn stays_quiet(&mut self, quiet: Duration) -> Result<bool> {
        self.quiet_on(Stream::Stdout, quiet).await
    }

    /// [`stays_quiet`](Self::stays_quiet) for a piped stderr.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it consumes nothing.
    pub async fn stderr_stays_quiet(&mut self, quiet: Duration) -> Result<bool> {
        self.quiet_on(Stream::Stderr, quiet).await
    }

    async fn quiet_on(&mut self, s: Stream, quiet: Duration) -> Result<bool> {
        self.follow()?;
        self.piped(s)?;
        match self.io.quiet(s, quiet).await? {
            Ok(quiet) => Ok(quiet),
            Err(halt) => Err(self.halted(s, halt).await),
        }
    }

    fn piped(&self, s: Stream) -> Result<()> {
        match self.io.core.inbox(s) {
            Some(_) => Ok(()),
            None => Err(errors::not_piped(s)),
        }
    }

    async fn line_from(
        &mut self,
        s: Stream,
        timeout: Duration,
        unterminated_ok: bool,
    ) -> Result<Vec<u8>> {
        self.follow()?;
        self.piped(s)?;
        match self
            .io
            .until(timeout, |core| core.poll_line(s, unterminated_ok))
            .await?
        {
            Waited::Done(line) => Ok(line),
            Waited::Halted(halt) => Err(self.halted(s, halt).await),
            Waited::TimedOut(start) => Err(self.timeout_error(s, start, "a line".to_string())),
        }
    }

    // ---- expect ----------------------------------------------------------

    /// Waits until `pattern` matches stdout; consumes through the match.
    /// The search is linear, as [`Child::expect`](crate::Child::expect)'s.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped expect consumes nothing, and expecting the
    /// same pattern again resumes the search where it stopped.
    pub async fn expect(&mut self, pattern: impl Into<Pattern>) -> Result<Match> {
        self.expect_timeout(pattern, self.timeout).await
    }

    /// [`expect`](Self::expect) with its own timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`expect`](Self::expect).
    pub async fn expect_timeout(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<Match> {
        let pattern = pattern.into();
        let (_, m) = self
            .expect_in(Stream::Stdout, std::slice::from_ref(&pattern), timeout)
            .await?;
        Ok(m)
    }

    /// Waits until one of `patterns` matches: its index and the match. The
    /// earliest match wins (the first listed on a tie); `Pattern::Eof` and
    /// `Pattern::Timeout` in the list make those outcomes matches.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`expect`](Self::expect).
    pub async fn expect_any(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)> {
        self.expect_any_timeout(patterns, self.timeout).await
    }

    /// [`expect_any`](Self::expect_any) with its own timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`expect`](Self::expect).
    pub async fn expect_any_timeout(
        &mut self,
        patterns: &[Pattern],
        timeout: Duration,
    ) -> Result<(usize, Match)> {
        self.expect_in(Stream::Stdout, patterns, timeout).await
    }

    /// [`expect_any`](Self::expect_any) on a piped stderr.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`expect`](Self::expect).
    pub async fn expect_any_stderr(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)> {
        let timeout = self.timeout;
        self.expect_in(Stream::Stderr, patterns, timeout).await
    }

    /// Waits until `pattern` matches a piped stderr.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`expect`](Self::expect).
    pub async fn expect_stderr(&mut self, pattern: impl Into<Pattern>) -> Result<Match> {
        let pattern = pattern.into();
        let timeout = self.timeout;
        let (_, m) = self
            .expect_in(Stream::Stderr, std::slice::from_ref(&pattern), timeout)
            .await?;
        Ok(m)
    }

    async fn expect_in(
        &mut self,
        s: Stream,
        patterns: &[Pattern],
        timeout: Duration,
    ) -> Result<(usize, Match)> {
        self.follow()?;
        self.piped(s)?;
        match self
            .io
            .until(timeout, |core| core.poll_expect(s, patterns))
            .await?
        {
            Waited::Done(found) => Ok(found),
            Waited::Halted(halt) => Err(self.halted(s, halt).await),
            Waited::TimedOut(start) => match self.io.core.timed_out(s, patterns) {
                Some(found) => Ok(found),
                None => Err(self.timeout_error(s, start, errors::describe(patterns))),
            },
        }
    }

    // ---- whole runs ------------------------------------------------------

    /// Writes all of `input`, closes stdin and reads stdout and stderr to
    /// the end, then reaps the child, as
    /// [`Child::communicate`](crate::Child::communicate): no deadlock
    /// however much both sides write; output already buffered is included;
    /// reading stops [`DRAIN_GRACE`](crate::DRAIN_GRACE) after the child
    /// exited when a descendant holds its pipes (`Output::still_open`).
    ///
    /// # Errors
    /// `Error::Timeout` when `timeout` passes first; [`Error::output`]
    /// then holds every byte captured so far, and the buffers keep them.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe as a whole: a dropped `communicate` may have written
    /// part of `input` (the rest is then written before anything else) and
    /// closed stdin. The output it read stays in the buffers.
    pub async fn communicate(&mut self, input: &[u8], timeout: Option<Duration>) -> Result<Output> {
        self.follow()?;
        let start = Instant::now();
        // It collects everything: not bounded by max_buffer.
        self.io.core.set_max_buffer(usize::MAX);
        let deadline = timeout.and_then(|t| start.checked_add(t));
        if input.len() >= crate::driver::BULK_INPUT {
            self.io.widen_pipes();
        }
        if !input.is_empty() {
            let parts = [input];
            let written = match self.io.input_mut() {
                Ok((input_end, transcript)) => {
                    let out = input_end.outgoing(transcript, &parts, false);
                    self.io.write(&out, deadline).await
                }
                Err(e) => Err(e),
            };
            match written {
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
        let _ = self.io.close_stdin(deadline).await;
        let mut still_open = false;
        loop {
            if self.io.core.all_eof() {
                break;
            }
            if self.try_wait()?.is_some() {
                let drain_deadline = crate::driver::drain_deadline(deadline);
                while !self.io.core.all_eof() {
                    if self.drain(drain_deadline, false).await? == Step::TimedOut {
                        still_open = !self.io.core.all_eof();
                        break;
                    }
                }
                break;
            }
            if self.drain(deadline, true).await? == Step::TimedOut {
                return Err(self.communicate_timeout(start, "the child to finish"));
            }
        }
        if still_open
            && let Err(expected) = crate::driver::output_left_open(&self.program, deadline)
        {
            return Err(self.communicate_timeout(start, expected));
        }
        let status = match self.process().exit_by(deadline).await? {
            Some(status) => status,
            None => return Err(self.communicate_timeout(start, "the child to exit")),
        };
        Ok(Output {
            status,
            stdout: self.io.core.take_all(Stream::Stdout),
            stderr: self.io.core.take_all(Stream::Stderr),
            still_open,
        })
    }

    fn communicate_timeout(&mut self, start: Instant, expected: &str) -> Error {
        let status = self.try_wait().ok().flatten();
        errors::communicate_timeout(&self.io.core, start.elapsed(), expected, status)
    }

    // ---- errors ----------------------------------------------------------

    async fn halted(&mut self, s: Stream, halt: Halt) -> Error {
        match halt {
            Halt::Eof => self.eof_error(s).await,
            Halt::Failed(e) => e.into(),
        }
    }

    fn timeout_error(&mut self, s: Stream, start: Instant, expected: String) -> Error {
        let status = self.try_wait().ok().flatten();
        errors::timeout(&self.io.core, s, start.elapsed(), expected, status)
    }

    async fn eof_error(&mut self, s: Stream) -> Error {
        let deadline = Instant::now().checked_add(EOF_STATUS_GRACE);
        let status = self.process().exit_by(deadline).await.ok().flatten();
        errors::eof(&self.io.core, s, status)
    }
}

/// What one step of [`Child::drain`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Read,
    Exited(ExitStatus),
    TimedOut,
}

fn utf8(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        bytes: e.into_bytes(),
    })
}

impl Drop for Child {
    fn drop(&mut self) {
        // Close our ends first: many children exit on end-of-file alone.
        self.io.close_all();
        let Some(pidfd) = self.process.take() else {
            return;
        };
        if pidfd.get().status().is_some() || self.on_drop == OnDrop::Detach {
            return;
        }
        let reaper = Reaper::new(pidfd, self.on_drop, std::mem::take(&mut self.program));
        // The runtime dropping the child, if any, else the one it was last
        // used from. On a runtime that is shutting down or gone, the task
        // is dropped at once and the reaper's own Drop kills and reaps.
        let runtime = Handle::try_current().unwrap_or_else(|_| self.runtime.clone());
        drop(runtime.spawn(reaper.run()));
    }
}

/// The stdout lines of an async [`Child`]; see [`Child::lines`].
#[derive(Debug)]
pub struct Lines<'a> {
    child: &'a mut Child,
}

impl Lines<'_> {
    /// The next line; `Ok(None)` at end-of-file (a last line without a
    /// newline is still a line, as in `std::io::BufRead::lines`), like
    /// tokio's `Lines::next_line`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`Child::read_line`].
    pub async fn next_line(&mut self) -> Result<Option<String>> {
        let timeout = self.child.timeout;
        match self.child.line_from(Stream::Stdout, timeout, true).await {
            Err(Error::Eof { .. }) => Ok(None),
            Err(e) => Err(e),
            Ok(bytes) => utf8(bytes).map(Some),
        }
    }
}
