//! A conversation over descriptors: the send, read and expect methods of
//! a [`Child`](crate::Child), on any pair of descriptors or on a child's
//! pipes.
//!
//! A [`Child`](crate::Child) is a session plus a process: its conversation
//! methods are this type's, and the process behind it only adds its exit
//! status to the errors (and SIGINT for `send_intr` on pipes).

use std::io::Write;
use std::os::fd::OwnedFd;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::driver::errors::{self, EOF_STATUS_GRACE};
use crate::driver::{Input, Streams, Transcript, Written};
use crate::process::Process;
use crate::{
    DEFAULT_MAX_BUFFER, DEFAULT_MAX_LINE, DEFAULT_TIMEOUT, Error, Observed, Pattern, Result,
    Signal, sys,
};
use duet_core::Match;
use duet_core::{Action, WatchId};
use duet_core::{Halt, Stream};

/// A conversation over descriptors you already have, with no process: a
/// serial port, a socket, a FIFO pair, a pty you opened (pexpect's
/// `fdspawn`). It has the conversation methods of [`Child`](crate::Child)
/// (send…, read…, ask, expect…, watches) with the same meanings, driven by
/// the same core, and no process methods.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use duet::{Pattern, Session};
/// let (ours, theirs) = UnixStream::pair()?;
/// let mut peer = Session::new(theirs.try_clone()?.into(), theirs.into());
/// let mut dev = Session::new(ours.try_clone()?.into(), ours.into());
/// peer.send("login: ")?;
/// dev.expect(Pattern::exact("login: "))?;
/// dev.send_line("root")?;
/// assert_eq!(peer.read_line()?, "root");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Both descriptors are put in non-blocking mode (the flag belongs to the
/// open file, so other handles to it see it too); both are closed when the
/// session is dropped. A socket's write side is shut down by
/// [`close_stdin`](Self::close_stdin), so the peer reads end-of-file even
/// when the same socket is the read side. On a pty master the writes go
/// through the same encoding as [`Command::pty`](crate::Command::pty)
/// (every byte of a line arrives literally); on anything else the bytes go
/// as they are. Errors that would name a child's exit status have none.
#[derive(Debug)]
pub struct Session {
    pub(crate) streams: Streams,
    pub(crate) timeout: Duration,
    /// The child behind the conversation, when it is a `Child`'s.
    pub(crate) process: Option<Process>,
}

impl Session {
    /// A session reading `read` and writing `write` (they may be the same
    /// socket, as two descriptors), with the default timeout (10 s) and
    /// line limit (1 MiB).
    pub fn new(read: OwnedFd, write: OwnedFd) -> Session {
        let input = if sys::is_pty_master(std::os::fd::AsFd::as_fd(&write)) {
            Input::pty(write)
        } else {
            Input::pipe(write)
        };
        let streams = input
            .and_then(|input| {
                Streams::new(
                    Some(input),
                    Some(read),
                    None,
                    DEFAULT_MAX_LINE,
                    DEFAULT_MAX_BUFFER,
                )
            })
            .expect("O_NONBLOCK can be set on any open descriptor");
        Session::from_streams(streams, DEFAULT_TIMEOUT, None)
    }

    /// Reads output until `deadline`, or until the child (if any) exits.
    /// `Ok(false)`: the deadline passed.
    pub(crate) fn drain_until_exit(&mut self, deadline: Option<Instant>) -> std::io::Result<bool> {
        let exit = self.process.as_ref().map(Process::pidfd);
        self.streams.drain(deadline, exit)
    }

    pub(crate) fn from_streams(
        streams: Streams,
        timeout: Duration,
        process: Option<Process>,
    ) -> Session {
        Session {
            streams,
            timeout,
            process,
        }
    }

    /// The default timeout of reads, expects and writes.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets the default timeout for later reads, expects and writes.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Records every byte sent and received from now on (see
    /// [`Child::set_transcript`](crate::Child::set_transcript)).
    pub fn set_transcript(&mut self, out: impl Write + Send + 'static) {
        Transcript::set_text(&mut self.streams.transcript, Box::new(out));
    }

    /// Calls `observer` with every chunk of bytes received and sent from
    /// now on (see [`Child::set_observer`](crate::Child::set_observer)).
    pub fn set_observer(&mut self, observer: impl FnMut(Observed<'_>) + Send + 'static) {
        Transcript::set_observer(&mut self.streams.transcript, Box::new(observer));
    }

    /// Sends `text` as it is (no newline added); see [`Child::send`](crate::Child::send).
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

    /// Sends `text` like [`send`](Self::send); a transcript records only its
    /// length.
    pub fn send_secret(&mut self, text: &str) -> Result<()> {
        self.send_parts(&[text.as_bytes()], true)
    }

    /// Sends `text` one character at a time, `per_char` apart (pexpect's
    /// `delaybeforesend`, Tcl's `send -s`), for programs and devices that
    /// drop input that arrives too fast; see [`Child::send_slow`](crate::Child::send_slow).
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// let (ours, theirs) = UnixStream::pair()?;
    /// let mut console = duet::Session::new(ours.try_clone()?.into(), ours.into());
    /// let mut device = duet::Session::new(theirs.try_clone()?.into(), theirs.into());
    /// console.send_slow("AT\r\n", Duration::from_millis(2))?;   // a modem that drops fast input
    /// assert_eq!(device.read_line()?, "AT");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_slow(&mut self, text: &str, per_char: Duration) -> Result<()> {
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            self.send(&text[at..at + c.len_utf8()])?;
            if chars.peek().is_some() {
                self.pause(per_char)?;
            }
        }
        Ok(())
    }

    /// Lets `pause` pass, reading the child's output meanwhile (so a child
    /// that answers each character never blocks on a full pipe).
    fn pause(&mut self, pause: Duration) -> Result<()> {
        let Some(until) = sys::deadline_after(pause) else {
            std::thread::sleep(pause);
            return Ok(());
        };
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            if self.streams.core.all_eof() {
                // Nothing left to read: only the time to let pass.
                std::thread::sleep(until - now);
                return Ok(());
            }
            self.streams.drain(Some(until), None)?;
        }
    }

    fn send_parts(&mut self, parts: &[&[u8]], secret: bool) -> Result<()> {
        // One clock read serves as the start and, with the timeout, the deadline.
        let start = Instant::now();
        let outcome = self
            .streams
            .write(parts, start.checked_add(self.timeout), secret)?;
        self.written(outcome, start, || {
            let total: usize = parts.iter().map(|p| p.len()).sum();
            format!("the child to read its input ({total} bytes to write)")
        })
    }

    pub(crate) fn written(
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

    /// Sends the control character `^c` raw (see [`Child::send_control`](crate::Child::send_control)).
    pub fn send_control(&mut self, c: char) -> Result<()> {
        let byte = errors::control_byte(c)?;
        let start = Instant::now();
        let outcome = self
            .streams
            .write_control(&[byte], start.checked_add(self.timeout))?;
        self.written(outcome, start, || {
            format!("room to send ^{}", c.to_ascii_uppercase())
        })
    }

    /// Sends the interrupt character: the terminal's on a pty master, `^C`
    /// otherwise.
    pub fn send_intr(&mut self) -> Result<()> {
        match self.streams.stdin.as_ref() {
            Some(input) if input.is_pty() => {
                let intr = crate::driver::pty::interrupt_char(input.fd());
                let start = Instant::now();
                let outcome = self
                    .streams
                    .write_control(&[intr], start.checked_add(self.timeout))?;
                self.written(outcome, start, || "room to send ^C".to_string())
            }
            _ => match self.process.as_mut() {
                Some(process) => Ok(process.signal(Signal::SIGINT)?),
                // No process to signal: the byte ^C, for whoever reads it
                // (a serial console's getty, a remote shell).
                None => self.send_control('c'),
            },
        }
    }

    /// Sends end-of-file: on a pty master the terminal's end-of-file character
    /// (the terminal stays open); otherwise the write side is closed (shut down
    /// for a socket).
    pub fn send_eof(&mut self) -> Result<()> {
        let start = Instant::now();
        let outcome = self.streams.send_eof(start.checked_add(self.timeout))?;
        self.written(outcome, start, || "room to send end-of-file".to_string())
    }

    /// Closes the write side (shut down for a socket, so the peer reads end-of-
    /// file even while this side still reads); on a pty master it sends the
    /// end-of-file character first.
    pub fn close_stdin(&mut self) -> Result<()> {
        let start = Instant::now();
        let outcome = self.streams.close_stdin(start.checked_add(self.timeout))?;
        self.written(outcome, start, || "room to send end-of-file".to_string())
    }

    /// Fails the next read or expect with [`Error::FailOn`] each time `pattern`
    /// appears (see [`Child::fail_on`](crate::Child::fail_on)).
    pub fn fail_on(&mut self, pattern: Pattern) -> WatchId {
        self.streams.core.watch(pattern, Action::FailOn)
    }

    /// Answers `reply` each time `pattern` appears (see [`Child::respond`](crate::Child::respond)).
    pub fn respond(&mut self, pattern: Pattern, reply: impl AsRef<[u8]>) -> WatchId {
        let reply = reply.as_ref().to_vec();
        self.streams.core.watch(pattern, Action::Respond(reply))
    }

    /// Removes a watch set by [`fail_on`](Self::fail_on) or
    /// [`respond`](Self::respond).
    pub fn unwatch(&mut self, id: WatchId) {
        self.streams.core.unwatch(id);
    }

    /// Reads one line, without its `\n` or `\r\n` (see [`Child::read_line`](crate::Child::read_line)).
    pub fn read_line(&mut self) -> Result<String> {
        self.read_line_timeout(self.timeout)
    }

    /// [`read_line`](Self::read_line) with its own timeout.
    pub fn read_line_timeout(&mut self, timeout: Duration) -> Result<String> {
        let bytes = self.line_from(Stream::Stdout, timeout, false)?;
        String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
            bytes: e.into_bytes(),
        })
    }

    /// Reads one line as bytes, whatever they are.
    pub fn read_line_bytes(&mut self) -> Result<Vec<u8>> {
        self.line_from(Stream::Stdout, self.timeout, false)
    }

    /// Sends `line` and reads one reply line.
    pub fn ask(&mut self, line: &str) -> Result<String> {
        self.send_line(line)?;
        self.read_line()
    }

    /// The lines until end-of-file (see [`Child::lines`](crate::Child::lines)).
    pub fn lines(&mut self) -> Lines<'_> {
        Lines { session: self }
    }

    /// Reads one line of a piped stderr (a `Child`'s; a session has none).
    pub fn read_stderr_line(&mut self) -> Result<String> {
        self.read_stderr_line_timeout(self.timeout)
    }

    /// [`read_stderr_line`](Self::read_stderr_line) with its own timeout.
    pub fn read_stderr_line_timeout(&mut self, timeout: Duration) -> Result<String> {
        let bytes = self.line_from(Stream::Stderr, timeout, false)?;
        String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
            bytes: e.into_bytes(),
        })
    }

    /// Returns what has arrived: what is buffered, or else whatever comes
    /// within `timeout` (empty when nothing did).
    pub fn read_available(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.available_from(Stream::Stdout, timeout)
    }

    /// [`read_available`](Self::read_available) for a piped stderr (a `Child`'s).
    pub fn read_stderr_available(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.available_from(Stream::Stderr, timeout)
    }

    fn available_from(&mut self, s: Stream, timeout: Duration) -> Result<Vec<u8>> {
        self.piped(s)?;
        let deadline = sys::deadline_after(timeout);
        let mut waited = false;
        loop {
            match self.streams.core.poll_available(s) {
                Poll::Ready(Ok(bytes)) => return Ok(bytes),
                Poll::Ready(Err(halt)) => return Err(self.halted(s, halt)),
                Poll::Pending if waited => return Ok(Vec::new()),
                Poll::Pending => {}
            }
            waited = !self.streams.fill(s, deadline)?;
        }
    }

    /// True when no byte arrives on stdout for `quiet`; false as soon as
    /// one does (see [`Child::stays_quiet`](crate::Child::stays_quiet)).
    pub fn stays_quiet(&mut self, quiet: Duration) -> Result<bool> {
        self.quiet_on(Stream::Stdout, quiet)
    }

    /// [`stays_quiet`](Self::stays_quiet) for a piped stderr (a `Child`'s).
    pub fn stderr_stays_quiet(&mut self, quiet: Duration) -> Result<bool> {
        self.quiet_on(Stream::Stderr, quiet)
    }

    fn quiet_on(&mut self, s: Stream, quiet: Duration) -> Result<bool> {
        self.piped(s)?;
        let deadline = sys::deadline_after(quiet);
        let mut arrived = false;
        loop {
            // A watch's match first, as every read reports it.
            if let Some(e) = self.streams.core.take_failure() {
                return Err(e.into());
            }
            if self.streams.core.is_eof(s) {
                return Err(self.eof_error(s));
            }
            if arrived {
                return Ok(false);
            }
            // True: bytes of `s` arrived (or its end, or a watch matched).
            arrived = self.streams.fill(s, deadline)?;
            if !arrived {
                return Ok(true);
            }
        }
    }

    /// An error unless `s` is piped.
    fn piped(&self, s: Stream) -> Result<()> {
        match self.streams.core.inbox(s) {
            Some(_) => Ok(()),
            None => Err(errors::not_piped(s)),
        }
    }

    /// Reads a line. At end-of-file an unterminated last line is returned
    /// only when `unterminated_ok` (the `lines()` iterator, like std's);
    /// `read_line` reports it as `Error::Eof` with the text in `partial`,
    /// since a reply cut short usually means the child died mid-reply.
    fn line_from(
        &mut self,
        s: Stream,
        timeout: Duration,
        unterminated_ok: bool,
    ) -> Result<Vec<u8>> {
        self.piped(s)?;
        let mut clock = Clock::new(timeout);
        loop {
            match self.streams.core.poll_line(s, unterminated_ok) {
                Poll::Ready(Ok(line)) => return Ok(line),
                Poll::Ready(Err(halt)) => return Err(self.halted(s, halt)),
                Poll::Pending => {}
            }
            if !self.streams.fill(s, clock.deadline())? {
                return Err(self.timeout_error(s, clock.start(), "a line".to_string()));
            }
        }
    }

    /// Waits until `pattern` matches; consumes through the match (see
    /// [`Child::expect`](crate::Child::expect)).
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
        let (_, m) = self.expect_in(Stream::Stdout, std::slice::from_ref(&pattern), timeout)?;
        Ok(m)
    }

    /// Waits until one of `patterns` matches: its index and the match (see
    /// [`Child::expect_any`](crate::Child::expect_any)).
    pub fn expect_any(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)> {
        self.expect_any_timeout(patterns, self.timeout)
    }

    /// [`expect_any`](Self::expect_any) with its own timeout.
    pub fn expect_any_timeout(
        &mut self,
        patterns: &[Pattern],
        timeout: Duration,
    ) -> Result<(usize, Match)> {
        self.expect_in(Stream::Stdout, patterns, timeout)
    }

    /// Waits until `pattern` matches a piped stderr (a `Child`'s).
    pub fn expect_stderr(&mut self, pattern: impl Into<Pattern>) -> Result<Match> {
        let pattern = pattern.into();
        let (_, m) =
            self.expect_in(Stream::Stderr, std::slice::from_ref(&pattern), self.timeout)?;
        Ok(m)
    }

    /// [`expect_any`](Self::expect_any) on a piped stderr (a `Child`'s).
    pub fn expect_any_stderr(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)> {
        self.expect_in(Stream::Stderr, patterns, self.timeout)
    }

    fn expect_in(
        &mut self,
        s: Stream,
        patterns: &[Pattern],
        timeout: Duration,
    ) -> Result<(usize, Match)> {
        self.piped(s)?;
        let mut clock = Clock::new(timeout);
        loop {
            match self.streams.core.poll_expect(s, patterns) {
                Poll::Ready(Ok(found)) => return Ok(found),
                Poll::Ready(Err(halt)) => return Err(self.halted(s, halt)),
                Poll::Pending => {}
            }
            if !self.streams.fill(s, clock.deadline())? {
                if let Some(found) = self.streams.core.timed_out(s, patterns) {
                    return Ok(found);
                }
                return Err(self.timeout_error(s, clock.start(), errors::describe(patterns)));
            }
        }
    }

    // ---- errors ----------------------------------------------------------

    /// The error for a read or expect that the core halted.
    pub(crate) fn halted(&mut self, s: Stream, halt: Halt) -> Error {
        match halt {
            Halt::Eof => self.eof_error(s),
            Halt::Failed(e) => e.into(),
        }
    }

    /// A timeout error. When the child has exited meanwhile, the error says
    /// so: a descendant holds its output open (the hang of tokio#2363 and
    /// Python's subprocess), and waiting longer would not help.
    fn timeout_error(&mut self, s: Stream, start: Instant, expected: String) -> Error {
        let status = self
            .process
            .as_mut()
            .and_then(|p| p.try_wait().ok().flatten());
        errors::timeout(&self.streams.core, s, start.elapsed(), expected, status)
    }

    fn eof_error(&mut self, s: Stream) -> Error {
        let status = self.process.as_mut().and_then(|p| {
            p.wait_deadline(sys::deadline_after(EOF_STATUS_GRACE))
                .ok()
                .flatten()
        });
        errors::eof(&self.streams.core, s, status)
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

/// Iterator over the lines of a session or child; see [`Child::lines`](crate::Child::lines).
#[derive(Debug)]
pub struct Lines<'a> {
    session: &'a mut Session,
}

impl Iterator for Lines<'_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        let timeout = self.session.timeout;
        match self.session.line_from(Stream::Stdout, timeout, true) {
            Err(Error::Eof { .. }) => None,
            Err(e) => Some(Err(e)),
            Ok(bytes) => Some(String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
                bytes: e.into_bytes(),
            })),
        }
    }
}
