//! The running child: its streams, the conversation API and its lifecycle.

use std::io::Write;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::conversation::buffer::Line;
use crate::conversation::pattern::Match;
use crate::conversation::{Streams, Transcript, Which, Written};
use crate::process::Process;
use crate::text::{last_lines, preview};
use crate::{Error, ExitStatus, OnDrop, Pattern, Result, Signal, sys};

/// How long an `Error::Eof` waits for the exit status of a child that has
/// just closed its output (so the error can say how it ended).
const EOF_STATUS_GRACE: Duration = Duration::from_millis(200);

/// How long `communicate` keeps reading after the child exited while a
/// descendant still holds its output pipes open.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// How many lines of a piped stderr an error shows.
const STDERR_TAIL_LINES: usize = 5;

/// What a finished child produced ([`Command::output`](crate::Command::output),
/// [`Child::communicate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// How the child ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to a piped stderr.
    pub stderr: Vec<u8>,
    /// True when the child had exited but its output pipes were still open
    /// (held by a descendant) after [`DRAIN_GRACE`]: duet stopped reading
    /// instead of hanging, and `stdout`/`stderr` hold what arrived until then.
    pub still_open: bool,
}

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
    // Declared before `process`: the pipes close before the process is handled.
    streams: Streams,
    channel: Option<OwnedFd>,
    process: Process,
    program: String,
    timeout: Duration,
    on_drop: OnDrop,
}

impl Child {
    pub(crate) fn new(
        streams: Streams,
        process: Process,
        program: String,
        timeout: Duration,
        on_drop: OnDrop,
        channel: Option<OwnedFd>,
    ) -> Child {
        Child {
            streams,
            channel,
            process,
            program,
            timeout,
            on_drop,
        }
    }

    /// The process handle (for `remote` to attach the remote pid).
    pub(crate) fn process_mut(&mut self) -> &mut Process {
        &mut self.process
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
    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// The default timeout of this child's reads, expects and writes.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets the default timeout for later reads, expects and writes.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Records every byte sent and received from now on: one line per line
    /// of data, with a relative timestamp and a direction tag (`>` sent,
    /// `<` stdout, `!` stderr, `#` events). A failing transcript writer is
    /// logged and dropped; it never breaks the conversation.
    pub fn set_transcript(&mut self, out: impl Write + Send + 'static) {
        self.streams.transcript = Some(Transcript::new(Box::new(out)));
    }

    // ---- event loops -----------------------------------------------------

    /// The descriptor the child's stdout arrives on (a pipe or the pty
    /// master), for a caller's own `poll` loop that also waits on other
    /// descriptors. Read from the child with
    /// [`read_available(Duration::ZERO)`](Self::read_available) only: it
    /// returns buffered output first, so poll this descriptor only after
    /// that call came back empty. `None` when stdout is not piped.
    pub fn stdout_fd(&self) -> Option<BorrowedFd<'_>> {
        self.streams.stdout.as_ref().map(|r| r.fd())
    }

    /// The descriptor to the child's stdin (a pipe or the pty master), to
    /// poll for `POLLOUT` before a send that should not wait. `None` when
    /// stdin is not piped or was closed.
    pub fn stdin_fd(&self) -> Option<BorrowedFd<'_>> {
        self.streams.stdin.as_ref().map(|i| i.fd())
    }

    /// Sets the window size of the child's pty (with
    /// [`Command::pty`](crate::Command::pty) the kernel then sends SIGWINCH
    /// to the child's foreground process group).
    ///
    /// # Errors
    /// `Error::Io` when the child is not on a pty.
    pub fn set_window_size(&mut self, rows: u16, cols: u16) -> Result<()> {
        let fd = match (&self.streams.stdin, &self.streams.stdout) {
            (Some(input), _) if input.is_pty() => input.fd(),
            (_, Some(reader)) => reader.fd(),
            _ => {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the child is not on a pty",
                )));
            }
        };
        Ok(sys::set_window_size(fd, rows, cols)?)
    }

    // ---- lifecycle -------------------------------------------------------

    /// Returns the exit status if the child has exited, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.process.try_wait()?)
    }

    /// Closes the child's stdin and waits for it to exit. While waiting,
    /// its output is read into the buffers (still readable afterwards), so
    /// a child blocked on a full pipe cannot deadlock the wait. Calling it
    /// again returns the same status.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        Ok(self
            .wait_deadline(None)?
            .expect("a wait without deadline returns a status"))
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`: `Ok(None)` then.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.wait_deadline(sys::deadline_after(timeout))
    }

    /// Like [`wait`](Self::wait), giving up at `deadline` (`None`: never).
    pub fn wait_deadline(&mut self, deadline: Option<Instant>) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.process.try_wait()? {
            return Ok(Some(status));
        }
        let _ = self.streams.close_stdin(deadline);
        loop {
            if let Some(status) = self.process.try_wait()? {
                return Ok(Some(status));
            }
            if !self.streams.drain(deadline, Some(self.process.pidfd()))? {
                return Ok(None);
            }
        }
    }

    /// Sends `signal` to the child (to its process group with
    /// [`Command::process_group`](crate::Command::process_group) or a pty).
    /// A no-op once the child has been reaped: never a signal to a recycled pid.
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        Ok(self.process.signal(signal)?)
    }

    /// Sends SIGKILL (see [`signal`](Self::signal)). Does not wait.
    pub fn kill(&mut self) -> Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// Stops the child gracefully: SIGTERM, up to `grace` for it to exit,
    /// then SIGKILL; reaps it and returns its status. With a process group
    /// every member that is left gets the SIGKILL.
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        Ok(self.process.terminate(grace)?)
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
    pub fn send(&mut self, text: &str) -> Result<()> {
        self.send_parts(&[text.as_bytes()], false)
    }

    /// Sends `line` followed by `\n`, in one write.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        self.send_parts(&[line.as_bytes(), b"\n"], false)
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.send_parts(&[bytes], false)
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
        self.send_parts(&[text.as_bytes()], true)
    }

    fn send_parts(&mut self, parts: &[&[u8]], secret: bool) -> Result<()> {
        // One clock read serves as the start and, with the timeout, the deadline.
        let start = Instant::now();
        match self
            .streams
            .write(parts, start.checked_add(self.timeout), secret)?
        {
            Written::All => Ok(()),
            Written::TimedOut(n) => {
                let total: usize = parts.iter().map(|p| p.len()).sum();
                Err(self.timeout_error(
                    Which::Stdout,
                    start,
                    format!("the child to read its input ({n} of {total} bytes written)"),
                ))
            }
        }
    }

    /// Closes the child's stdin: it reads end-of-file. On a pty this sends
    /// the terminal's end-of-file character instead.
    pub fn close_stdin(&mut self) -> Result<()> {
        let start = Instant::now();
        match self.streams.close_stdin(start.checked_add(self.timeout))? {
            Written::All => Ok(()),
            Written::TimedOut(_) => Err(self.timeout_error(
                Which::Stdout,
                start,
                "room to send end-of-file".to_string(),
            )),
        }
    }

    // ---- reading lines ---------------------------------------------------

    /// Reads one line from stdout, without its `\n` or `\r\n`.
    ///
    /// # Errors
    /// `Error::Timeout` (the partial line stays buffered), `Error::Eof` when
    /// the child closed its output, `Error::LineTooLong` (the line is
    /// skipped), `Error::InvalidUtf8` (with the raw bytes).
    pub fn read_line(&mut self) -> Result<String> {
        self.read_line_timeout(self.timeout)
    }

    /// [`read_line`](Self::read_line) with its own timeout.
    pub fn read_line_timeout(&mut self, timeout: Duration) -> Result<String> {
        let bytes = self.line_from(Which::Stdout, timeout, false)?;
        String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
            bytes: e.into_bytes(),
        })
    }

    /// Reads one line from stdout as bytes, whatever they are.
    pub fn read_line_bytes(&mut self) -> Result<Vec<u8>> {
        self.line_from(Which::Stdout, self.timeout, false)
    }

    /// Sends `line` and reads one reply line.
    ///
    /// ```
    /// let mut bc = duet::Command::new("bc").arg("-q").spawn()?;
    /// assert_eq!(bc.ask("6*7")?, "42");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn ask(&mut self, line: &str) -> Result<String> {
        self.send_line(line)?;
        self.read_line()
    }

    /// The stdout lines until end-of-file, each read with the default
    /// timeout. The iterator ends at end-of-file (yielding a last line that
    /// has no newline, as `std::io::BufRead::lines` does); other errors are
    /// items.
    pub fn lines(&mut self) -> Lines<'_> {
        Lines { child: self }
    }

    /// Reads one line from a piped stderr.
    pub fn read_stderr_line(&mut self) -> Result<String> {
        self.read_stderr_line_timeout(self.timeout)
    }

    /// [`read_stderr_line`](Self::read_stderr_line) with its own timeout.
    pub fn read_stderr_line_timeout(&mut self, timeout: Duration) -> Result<String> {
        let bytes = self.line_from(Which::Stderr, timeout, false)?;
        String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
            bytes: e.into_bytes(),
        })
    }

    /// Returns output that has arrived on stdout: what is buffered, or else
    /// whatever comes within `timeout` (empty when nothing did).
    ///
    /// # Errors
    /// `Error::Eof` once everything has been read and the child closed stdout.
    pub fn read_available(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let deadline = sys::deadline_after(timeout);
        let reader = self.reader(Which::Stdout)?;
        if reader.buf.pending().is_empty() {
            if reader.eof {
                return Err(self.eof_error(Which::Stdout));
            }
            self.streams.fill(Which::Stdout, deadline)?;
        }
        Ok(self.reader(Which::Stdout)?.buf.take_all())
    }

    fn reader(&mut self, which: Which) -> Result<&mut crate::conversation::Reader> {
        let name = match which {
            Which::Stdout => "stdout",
            Which::Stderr => "stderr",
        };
        self.streams.reader(which).ok_or_else(|| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the child's {name} is not piped"),
            ))
        })
    }

    /// Reads a line. At end-of-file an unterminated last line is returned
    /// only when `unterminated_ok` (the `lines()` iterator, like std's);
    /// `read_line` reports it as `Error::Eof` with the text in `partial`,
    /// since a reply cut short usually means the child died mid-reply.
    fn line_from(
        &mut self,
        which: Which,
        timeout: Duration,
        unterminated_ok: bool,
    ) -> Result<Vec<u8>> {
        let mut clock = Clock::new(timeout);
        loop {
            let reader = self.reader(which)?;
            let line = match reader.buf.take_line() {
                Some(line) => Some(line),
                None if reader.eof && unterminated_ok => match reader.buf.take_unterminated() {
                    Some(line) => Some(line),
                    None => return Err(self.eof_error(which)),
                },
                None if reader.eof => return Err(self.eof_error(which)),
                None => None,
            };
            match line {
                Some(Line::Complete(bytes)) => return Ok(bytes),
                Some(Line::TooLong) => {
                    return Err(Error::LineTooLong {
                        limit: self.reader(which)?.buf.max_line(),
                    });
                }
                None => {}
            }
            if !self.streams.fill(which, clock.deadline())? {
                return Err(self.timeout_error(which, clock.start(), "a line".to_string()));
            }
        }
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
    pub fn expect(&mut self, pattern: impl Into<Pattern>) -> Result<Match> {
        self.expect_timeout(pattern, self.timeout)
    }

    /// [`expect`](Self::expect) with its own timeout.
    pub fn expect_timeout(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<Match> {
        let pattern = pattern.into();
        let (_, m) = self.expect_in(Which::Stdout, std::slice::from_ref(&pattern), timeout)?;
        Ok(m)
    }

    /// Waits until one of `patterns` matches: returns its index and the match.
    /// The earliest match in the output wins (the first listed on a tie).
    /// `Pattern::Eof` and `Pattern::Timeout` in the list turn those
    /// outcomes into matches instead of errors.
    pub fn expect_any(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)> {
        self.expect_any_timeout(patterns, self.timeout)
    }

    /// [`expect_any`](Self::expect_any) with its own timeout.
    pub fn expect_any_timeout(
        &mut self,
        patterns: &[Pattern],
        timeout: Duration,
    ) -> Result<(usize, Match)> {
        self.expect_in(Which::Stdout, patterns, timeout)
    }

    /// Waits until `pattern` matches a piped stderr (some programs prompt there).
    pub fn expect_stderr(&mut self, pattern: impl Into<Pattern>) -> Result<Match> {
        let pattern = pattern.into();
        let (_, m) = self.expect_in(Which::Stderr, std::slice::from_ref(&pattern), self.timeout)?;
        Ok(m)
    }

    fn expect_in(
        &mut self,
        which: Which,
        patterns: &[Pattern],
        timeout: Duration,
    ) -> Result<(usize, Match)> {
        let mut clock = Clock::new(timeout);
        let position = |wanted: fn(&Pattern) -> bool| patterns.iter().position(wanted);
        loop {
            let reader = self.reader(which)?;
            let pending = reader.buf.pending();
            let best = patterns
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.find(pending).map(|f| (i, f)))
                .min_by_key(|(i, f)| (f.start, *i));
            if let Some((i, found)) = best {
                let m = Match::new(pending, &found);
                reader.buf.consume(found.end);
                return Ok((i, m));
            }
            if reader.eof {
                if let Some(i) = position(|p| matches!(p, Pattern::Eof)) {
                    return Ok((i, Match::empty(&reader.buf.take_all())));
                }
                return Err(self.eof_error(which));
            }
            if !self.streams.fill(which, clock.deadline())? {
                if let Some(i) = position(|p| matches!(p, Pattern::Timeout)) {
                    return Ok((i, Match::empty(self.reader(which)?.buf.pending())));
                }
                let expected = describe(patterns);
                return Err(self.timeout_error(which, clock.start(), expected));
            }
        }
    }

    // ---- whole runs ------------------------------------------------------

    /// Writes all of `input`, closes stdin and reads stdout and stderr to
    /// the end, then reaps the child. No deadlock however much both sides
    /// write. Output already buffered by earlier reads is included.
    ///
    /// When the child has exited but a descendant still holds its output
    /// pipes, reading stops after [`DRAIN_GRACE`] and `Output::still_open`
    /// says so, instead of hanging until the descendant exits.
    ///
    /// # Errors
    /// `Error::Timeout` when `timeout` passes first; its `partial` holds the
    /// output so far.
    pub fn communicate(&mut self, input: &[u8], timeout: Option<Duration>) -> Result<Output> {
        let start = Instant::now();
        let deadline = timeout.and_then(sys::deadline_after);
        if !input.is_empty() {
            match self.streams.write(&[input], deadline, false) {
                Ok(Written::All) => {}
                Ok(Written::TimedOut(_)) => {
                    return Err(self.timeout_error(
                        Which::Stdout,
                        start,
                        "the child to read its input".into(),
                    ));
                }
                // The child exited without reading everything: not an error
                // here, its output and status tell the story.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
        let _ = self.streams.close_stdin(deadline);
        let mut still_open = false;
        loop {
            if self.streams.all_eof() {
                break;
            }
            if self.process.try_wait()?.is_some() {
                let grace = sys::deadline_after(DRAIN_GRACE);
                let drain_deadline = match (deadline, grace) {
                    (Some(d), Some(g)) => Some(d.min(g)),
                    (d, g) => d.or(g),
                };
                while !self.streams.all_eof() {
                    if !self.streams.drain(drain_deadline, None)? {
                        still_open = !self.streams.all_eof();
                        break;
                    }
                }
                break;
            }
            if !self.streams.drain(deadline, Some(self.process.pidfd()))? {
                return Err(self.timeout_error(Which::Stdout, start, "the child to finish".into()));
            }
        }
        if still_open && deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(self.timeout_error(
                Which::Stdout,
                start,
                "the child's output to end".into(),
            ));
        }
        if still_open {
            log::warn!(
                "`{}` exited but its output pipes are still open (a descendant holds them); stopped reading after {:?}",
                self.program,
                DRAIN_GRACE
            );
        }
        let status = match self.process.wait_deadline(deadline)? {
            Some(status) => status,
            None => {
                return Err(self.timeout_error(Which::Stdout, start, "the child to exit".into()));
            }
        };
        let take = |r: Option<&mut crate::conversation::Reader>| {
            r.map(|r| r.buf.take_all()).unwrap_or_default()
        };
        Ok(Output {
            status,
            stdout: take(self.streams.stdout.as_mut()),
            stderr: take(self.streams.stderr.as_mut()),
            still_open,
        })
    }

    // ---- errors ----------------------------------------------------------

    fn stderr_tail(&self) -> String {
        self.streams
            .stderr
            .as_ref()
            .map(|r| last_lines(r.buf.pending(), STDERR_TAIL_LINES))
            .unwrap_or_default()
    }

    /// A timeout error. When the child has exited meanwhile, the error says
    /// so: a descendant holds its output open (the hang of tokio#2363 and
    /// Python's subprocess), and waiting longer would not help.
    fn timeout_error(&mut self, which: Which, start: Instant, expected: String) -> Error {
        let status = self.process.try_wait().ok().flatten();
        let pending = match which {
            Which::Stdout => self.streams.stdout.as_ref(),
            Which::Stderr => self.streams.stderr.as_ref(),
        }
        .map(|r| preview(r.buf.pending()))
        .unwrap_or_default();
        Error::Timeout {
            waited: start.elapsed(),
            expected,
            partial: pending,
            stderr: self.stderr_tail(),
            status,
        }
    }

    fn eof_error(&mut self, which: Which) -> Error {
        let status = self
            .process
            .wait_deadline(sys::deadline_after(EOF_STATUS_GRACE))
            .ok()
            .flatten();
        let partial = self
            .streams
            .reader(which)
            .map(|r| preview(r.buf.pending()))
            .unwrap_or_default();
        Error::Eof {
            partial,
            status,
            stderr: self.stderr_tail(),
        }
    }
}

/// The clock of one read that may have to wait. It is read only when the
/// call first has to wait: a line that is already buffered costs no clock
/// read (streaming many short lines spent a fifth of its time in
/// `clock_gettime` before). The timeout runs from that first wait; the time
/// spent before it is only a scan of the buffer.
struct Clock {
    timeout: Duration,
    started: Option<(Instant, Option<Instant>)>,
}

impl Clock {
    fn new(timeout: Duration) -> Clock {
        Clock {
            timeout,
            started: None,
        }
    }

    fn started(&mut self) -> (Instant, Option<Instant>) {
        let timeout = self.timeout;
        *self.started.get_or_insert_with(|| {
            let now = Instant::now();
            (now, now.checked_add(timeout))
        })
    }

    /// When the wait must end (`None`: never); starts the clock.
    fn deadline(&mut self) -> Option<Instant> {
        self.started().1
    }

    /// When the first wait began.
    fn start(&mut self) -> Instant {
        self.started().0
    }
}

fn describe(patterns: &[Pattern]) -> String {
    let wanted: Vec<String> = patterns
        .iter()
        .filter(|p| !matches!(p, Pattern::Timeout))
        .map(|p| p.to_string())
        .collect();
    match wanted.len() {
        0 => "nothing".to_string(),
        1 => wanted[0].clone(),
        _ => format!("one of [{}]", wanted.join(", ")),
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Close our ends first: many children exit on end-of-file alone.
        self.streams.close_all();
        if self.process.status().is_some() {
            return;
        }
        let outcome = match self.on_drop {
            OnDrop::Detach => return,
            OnDrop::Wait => self.process.wait_deadline(None).map(|_| ()),
            OnDrop::Terminate(grace) => self.process.terminate(grace).map(|_| ()),
        };
        if let Err(e) = outcome {
            log::warn!("dropping child `{}` (pid {}): {e}", self.program, self.id());
        }
    }
}

/// Iterator over a child's stdout lines; see [`Child::lines`].
#[derive(Debug)]
pub struct Lines<'a> {
    child: &'a mut Child,
}

impl Iterator for Lines<'_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        let timeout = self.child.timeout;
        match self.child.line_from(Which::Stdout, timeout, true) {
            Err(Error::Eof { .. }) => None,
            Err(e) => Some(Err(e)),
            Ok(bytes) => Some(String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
                bytes: e.into_bytes(),
            })),
        }
    }
}
