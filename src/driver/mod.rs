//! The blocking driver's descriptors: non-blocking pipes (or a pty master)
//! waited on with `poll(2)` against a deadline, with no thread per child.
//!
//! [`Streams`] owns the parent's ends (stdin writer, stdout and stderr
//! readers) and the [`Conversation`] core the bytes go into. Whenever it
//! waits, for output or for room to write, it reads every readable stream,
//! so a child that writes a lot before it reads can never deadlock the
//! conversation. Nothing here knows how the descriptors were made: pipes, a
//! pty and FIFOs all work.

pub(crate) mod errors;
pub(crate) mod pty;
mod transcript;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use nix::poll::PollFlags;

use crate::sys;
use duet_core::{Conversation, Stream};
pub use transcript::Observed;
pub(crate) use transcript::{Direction, Transcript};

/// The writable stream to the child.
#[derive(Debug)]
pub(crate) struct Input {
    fd: OwnedFd,
    /// Set when the stream is a pty master: writes go through the terminal
    /// encoder (see `pty`).
    pty: Option<pty::Encoder>,
}

impl Input {
    pub(crate) fn pipe(fd: OwnedFd) -> io::Result<Input> {
        sys::set_nonblocking(fd.as_fd())?;
        Ok(Input { fd, pty: None })
    }

    pub(crate) fn pty(master: OwnedFd) -> io::Result<Input> {
        sys::set_nonblocking(master.as_fd())?;
        Ok(Input {
            fd: master,
            pty: Some(pty::Encoder::default()),
        })
    }

    /// The descriptor, for an outside `poll`.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// True when this is a pty master.
    pub(crate) fn is_pty(&self) -> bool {
        self.pty.is_some()
    }

    /// Records `parts` in the transcript and encodes them for the terminal
    /// on a pty: the bytes to write, as they go to the descriptor.
    pub(crate) fn outgoing<'a>(
        &mut self,
        transcript: &mut Option<Transcript>,
        parts: &'a [&'a [u8]],
        secret: bool,
    ) -> Outgoing<'a> {
        if let Some(t) = transcript.as_mut() {
            if secret {
                let len: usize = parts.iter().map(|p| p.len()).sum();
                t.record_event(&format!("sent a secret ({len} bytes, not recorded)"));
            } else {
                t.record(Direction::Sent, &parts.concat());
            }
        }
        match self.pty.as_mut() {
            Some(encoder) => Outgoing::Encoded(encoder.encode(self.fd.as_fd(), parts)),
            None => Outgoing::Plain(parts),
        }
    }

    /// Records a control character about to be written raw: the terminal
    /// acts on it, so the line being typed starts over.
    pub(crate) fn control(&mut self, transcript: &mut Option<Transcript>, bytes: &[u8]) {
        if let Some(encoder) = self.pty.as_mut() {
            encoder.control_written();
        }
        if let Some(t) = transcript.as_mut() {
            t.record(Direction::Sent, bytes);
        }
    }

    /// On a pty, the bytes that make the child read end-of-file (the
    /// terminal's end-of-file character, twice after a partial line);
    /// `None` on a pipe, where end-of-file is a close.
    pub(crate) fn end_of_file(&mut self) -> Option<Vec<u8>> {
        let encoder = self.pty.as_mut()?;
        Some(encoder.end_of_file(self.fd.as_fd()))
    }
}

impl std::os::fd::AsRawFd for Input {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }
}

/// An `Input` keeps the one descriptor it was made with until it is
/// dropped, so tokio may register it (see `sys::OwnsFd`).
#[cfg(feature = "tokio")]
impl sys::OwnsFd for Input {}

/// Bytes on their way to the child's stdin: the caller's parts, or their
/// encoding for a terminal.
#[derive(Debug)]
pub(crate) enum Outgoing<'a> {
    Plain(&'a [&'a [u8]]),
    Encoded(Vec<u8>),
}

impl Outgoing<'_> {
    /// Bytes in all.
    pub(crate) fn len(&self) -> usize {
        match self {
            Outgoing::Plain(parts) => parts.iter().map(|p| p.len()).sum(),
            Outgoing::Encoded(bytes) => bytes.len(),
        }
    }

    /// What is left after `written` bytes, as at most two slices.
    pub(crate) fn rest(&self, written: usize) -> (&[u8], Option<&[u8]>) {
        match self {
            Outgoing::Plain(parts) => remaining(parts, written),
            Outgoing::Encoded(bytes) => (&bytes[written..], None),
        }
    }
}

/// One non-blocking write of what is left of `out` after `written` bytes
/// (`WouldBlock` when the child's input is full).
pub(crate) fn write_once(
    fd: BorrowedFd<'_>,
    out: &Outgoing<'_>,
    written: usize,
) -> io::Result<usize> {
    match out.rest(written) {
        (a, Some(b)) => sys::write2(fd, a, b),
        (a, None) => sys::write(fd, a),
    }
}

/// What one read into the core gave (the blocking driver only needs to
/// know that the read did not block).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) struct Received {
    /// Bytes that arrived; 0 is end-of-file.
    pub(crate) n: usize,
    /// The read returned less than it asked for: the descriptor was empty
    /// afterwards (an edge-triggered waiter may wait for the next edge).
    pub(crate) drained: bool,
}

/// Reads once from `fd` into the core's inbox of `s`, recording what
/// arrived in the transcript. `WouldBlock` when nothing is there.
pub(crate) fn receive(
    core: &mut Conversation,
    transcript: &mut Option<Transcript>,
    fd: BorrowedFd<'_>,
    s: Stream,
) -> io::Result<Received> {
    let mut asked = 0;
    let n = core.receive(s, |data, max| {
        asked = max;
        let n = sys::read_append(fd, data, max)?;
        if n > 0
            && let Some(t) = transcript.as_mut()
        {
            let dir = match s {
                Stream::Stdout => Direction::Stdout,
                Stream::Stderr => Direction::Stderr,
            };
            t.record(dir, &data[data.len() - n..]);
        }
        Ok(n)
    })?;
    Ok(Received {
        n,
        drained: n < asked,
    })
}

/// How a write ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    All,
    /// The deadline passed with this many bytes written.
    TimedOut(usize),
}

/// The parent's ends of the child's standard streams, and the conversation.
#[derive(Debug)]
pub(crate) struct Streams {
    pub(crate) stdin: Option<Input>,
    /// The read ends of stdout and stderr, by [`Stream`], non-blocking.
    outputs: [Option<OwnedFd>; 2],
    pub(crate) core: Conversation,
    pub(crate) transcript: Option<Transcript>,
}

impl Streams {
    /// The streams over these descriptors, with lines of at most
    /// `max_line` bytes and at most `max_buffer` unread bytes per stream.
    pub(crate) fn new(
        stdin: Option<Input>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        max_line: usize,
        max_buffer: usize,
    ) -> io::Result<Streams> {
        for fd in [&stdout, &stderr].into_iter().flatten() {
            sys::set_nonblocking(fd.as_fd())?;
        }
        let mut core = Conversation::new(stdout.is_some(), stderr.is_some(), max_line);
        core.set_max_buffer(max_buffer);
        Ok(Streams {
            core,
            stdin,
            outputs: [stdout, stderr],
            transcript: None,
        })
    }

    /// The read end of `s`, for an outside `poll`.
    pub(crate) fn output_fd(&self, s: Stream) -> Option<BorrowedFd<'_>> {
        self.outputs[s as usize].as_ref().map(|fd| fd.as_fd())
    }

    /// Waits until `s` has new bytes or reaches end-of-file, reading the
    /// other output stream meanwhile and writing what `respond` watches
    /// answered. `Ok(false)`: the deadline passed.
    pub(crate) fn fill(&mut self, s: Stream, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            self.flush_replies(deadline)?;
            // A watch that matched on the other stream ends the wait too:
            // the caller's next look at the core reports it at once.
            if self.core.is_eof(s) || self.core.has_failure() {
                return Ok(true);
            }
            match self.poll_once(deadline, Also::Nothing)? {
                None => return Ok(false),
                Some(ready) if ready.progress(s) => return Ok(true),
                Some(_) => {}
            }
        }
    }

    /// Writes the answers of `respond` watches. A child whose input is gone
    /// can no longer be answered: its output still tells what happened.
    pub(crate) fn flush_replies(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        while let Some(reply) = self.core.take_reply() {
            match self.write(&[&reply], deadline, false) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The one wait of the conversation: polls every output stream that has
    /// not ended, plus what `also` names, until `deadline`; then reads once
    /// from each output stream that is ready. `None`: the deadline passed.
    ///
    /// The poll set lives on the stack: this runs once per line read, and
    /// allocating it each time showed in profiles.
    fn poll_once(
        &mut self,
        deadline: Option<Instant>,
        also: Also<'_>,
    ) -> io::Result<Option<Ready>> {
        let ready = {
            let live = |s: Stream| {
                let fd = self.outputs[s as usize].as_ref()?;
                // A full stream is not read: the child blocks (max_buffer).
                (!self.core.is_eof(s) && !self.core.is_full(s))
                    .then(|| (fd.as_fd(), PollFlags::POLLIN))
            };
            let extra = match also {
                Also::Nothing => None,
                Also::Room => self
                    .stdin
                    .as_ref()
                    .map(|i| (i.fd.as_fd(), PollFlags::POLLOUT)),
                Also::Exit(fd) => Some((fd, PollFlags::POLLIN)),
            };
            let wanted = [live(Stream::Stdout), live(Stream::Stderr), extra];
            let Some(&(any_fd, _)) = wanted.iter().flatten().next() else {
                return Ok(Some(Ready::default()));
            };
            let mut fds: [_; 3] = std::array::from_fn(|_| sys::poll_fd(any_fd, PollFlags::empty()));
            let mut slot_of = [0usize; 3];
            let mut n = 0;
            for (slot, (fd, events)) in wanted
                .iter()
                .enumerate()
                .filter_map(|(i, w)| Some((i, (*w)?)))
            {
                fds[n] = sys::poll_fd(fd, events);
                slot_of[n] = slot;
                n += 1;
            }
            if sys::poll(&mut fds[..n], deadline)? == 0 {
                return Ok(None);
            }
            let mut ready = [false; 3];
            for (fd, &slot) in fds[..n].iter().zip(&slot_of) {
                ready[slot] = fd.any().unwrap_or(true);
            }
            ready
        };
        Ok(Some(Ready {
            stdout: ready[0] && self.read_stream(Stream::Stdout)?,
            stderr: ready[1] && self.read_stream(Stream::Stderr)?,
            also: ready[2],
        }))
    }

    /// Reads once from `s` into the core; true when bytes arrived or
    /// end-of-file was reached.
    pub(crate) fn read_stream(&mut self, s: Stream) -> io::Result<bool> {
        let Some(fd) = self.outputs[s as usize].as_ref() else {
            return Ok(false);
        };
        match receive(&mut self.core, &mut self.transcript, fd.as_fd(), s) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes `parts` in order before `deadline`, reading the output
    /// streams while the child's input is full. A `secret` write appears in
    /// the transcript as its length only.
    pub(crate) fn write(
        &mut self,
        parts: &[&[u8]],
        deadline: Option<Instant>,
        secret: bool,
    ) -> io::Result<Written> {
        let Some(input) = self.stdin.as_mut() else {
            return Err(stdin_closed());
        };
        let out = input.outgoing(&mut self.transcript, parts, secret);
        self.write_out(&out, deadline)
    }

    /// Writes `bytes` as they are, even on a pty (control characters that
    /// the terminal should act on).
    pub(crate) fn write_control(
        &mut self,
        bytes: &[u8],
        deadline: Option<Instant>,
    ) -> io::Result<Written> {
        let Some(input) = self.stdin.as_mut() else {
            return Err(stdin_closed());
        };
        input.control(&mut self.transcript, bytes);
        self.write_raw(&[bytes], deadline)
    }

    fn write_raw(&mut self, parts: &[&[u8]], deadline: Option<Instant>) -> io::Result<Written> {
        self.write_out(&Outgoing::Plain(parts), deadline)
    }

    fn write_out(&mut self, out: &Outgoing<'_>, deadline: Option<Instant>) -> io::Result<Written> {
        let total = out.len();
        let mut written = 0;
        while written < total {
            let fd = self
                .stdin
                .as_ref()
                .expect("stdin checked by write")
                .fd
                .as_fd();
            match write_once(fd, out, written) {
                Ok(n) => {
                    written += n;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !self.wait_writable(deadline)? {
                return Ok(Written::TimedOut(written));
            }
        }
        Ok(Written::All)
    }

    /// Waits for room in stdin, reading the child's output meanwhile.
    /// `Ok(false)`: the deadline passed.
    fn wait_writable(&mut self, deadline: Option<Instant>) -> io::Result<bool> {
        loop {
            match self.poll_once(deadline, Also::Room)? {
                None => return Ok(false),
                Some(ready) if ready.also => return Ok(true),
                Some(_) => {}
            }
        }
    }

    /// Reads whatever arrives on any output stream until `deadline`, or until
    /// `exit_fd` (a pidfd) becomes readable. `Ok(false)`: the deadline passed.
    pub(crate) fn drain(
        &mut self,
        deadline: Option<Instant>,
        exit_fd: Option<BorrowedFd<'_>>,
    ) -> io::Result<bool> {
        let also = exit_fd.map_or(Also::Nothing, Also::Exit);
        Ok(self.poll_once(deadline, also)?.is_some())
    }

    /// Takes the descriptors, the core and the transcript (for the async
    /// driver, which waits on the same descriptors differently).
    #[cfg(feature = "tokio")]
    pub(crate) fn into_parts(
        self,
    ) -> (
        Option<Input>,
        [Option<OwnedFd>; 2],
        Conversation,
        Option<Transcript>,
    ) {
        (self.stdin, self.outputs, self.core, self.transcript)
    }

    /// Widens every pipe of the child for bulk input (see [`widen`]).
    pub(crate) fn widen_pipes(&self) {
        let stdin = self.stdin.as_ref().filter(|i| !i.is_pty()).map(Input::fd);
        let outputs = self.outputs.iter().flatten().map(|fd| fd.as_fd());
        widen(stdin.into_iter().chain(outputs));
    }

    /// Closes every descriptor to the child.
    pub(crate) fn close_all(&mut self) {
        self.stdin = None;
        self.outputs = [None, None];
    }

    /// Sends end-of-file without closing: the terminal's end-of-file
    /// character on a pty (twice after a partial line), a close on a pipe.
    pub(crate) fn send_eof(&mut self, deadline: Option<Instant>) -> io::Result<Written> {
        let Some(input) = self.stdin.as_mut() else {
            return Err(stdin_closed());
        };
        let Some(eof) = input.end_of_file() else {
            return self.close_stdin(deadline);
        };
        if let Some(t) = self.transcript.as_mut() {
            t.record_event("sent end-of-file");
        }
        self.write_raw(&[&eof], deadline)
    }

    /// Closes the child's stdin so it reads end-of-file. On a pty this sends
    /// the terminal's end-of-file character (twice after a partial line).
    pub(crate) fn close_stdin(&mut self, deadline: Option<Instant>) -> io::Result<Written> {
        let Some(input) = self.stdin.as_mut() else {
            return Ok(Written::All);
        };
        if let Some(eof) = input.end_of_file() {
            let outcome = self.write_raw(&[&eof], deadline)?;
            if outcome != Written::All {
                return Ok(outcome);
            }
        }
        if let Some(t) = self.transcript.as_mut() {
            t.record_event("stdin closed");
        }
        if let Some(input) = self.stdin.take() {
            // A socket may also be the read side (a `Session`): closing this
            // descriptor alone would not tell the peer.
            sys::shutdown_write(input.fd());
        }
        Ok(Written::All)
    }
}

pub(crate) fn stdin_closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the child's stdin is closed or not piped",
    )
}

/// From this much input on, `communicate` widens the pipes to
/// [`BULK_PIPE`]: one thread pumping both ways then switches between
/// writing and reading 16× less often (with 64 KiB pipes it ran at 0.95×
/// std's writer thread, with 1 MiB ones at 1.2–1.3×).
pub(crate) const BULK_INPUT: usize = 1 << 20;
const BULK_PIPE: usize = 1 << 20;

/// Once the child has exited, how long `communicate` goes on reading: up
/// to [`DRAIN_GRACE`](crate::DRAIN_GRACE) more, never past `deadline`.
pub(crate) fn drain_deadline(deadline: Option<Instant>) -> Option<Instant> {
    let grace = sys::deadline_after(crate::DRAIN_GRACE);
    match (deadline, grace) {
        (Some(d), Some(g)) => Some(d.min(g)),
        (d, g) => d.or(g),
    }
}

/// `communicate` stopped reading while a descendant still holds the
/// child's output open: past `deadline` that is the timeout to report
/// (what was waited for), otherwise it is logged and the output returned.
pub(crate) fn output_left_open(
    program: &str,
    deadline: Option<Instant>,
) -> Result<(), &'static str> {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Err("the child's output to end");
    }
    log::warn!(
        "`{program}` exited but its output pipes are still open (a descendant holds them); stopped reading after {}",
        crate::text::duration(crate::DRAIN_GRACE)
    );
    Ok(())
}

/// Asks for pipes of [`BULK_PIPE`] capacity (best effort: a socket or
/// the system's limit keep their size).
pub(crate) fn widen<'a>(fds: impl IntoIterator<Item = BorrowedFd<'a>>) {
    for fd in fds {
        let _ = sys::set_pipe_size(fd, BULK_PIPE);
    }
}

/// What [`Streams::poll_once`] waits for besides the output streams.
#[derive(Clone, Copy)]
enum Also<'a> {
    Nothing,
    /// Room to write to the child's stdin.
    Room,
    /// A descriptor becoming readable (a pidfd: the child exited).
    Exit(BorrowedFd<'a>),
}

/// What one [`Streams::poll_once`] found.
#[derive(Clone, Copy, Debug, Default)]
struct Ready {
    /// Bytes or end-of-file arrived on stdout.
    stdout: bool,
    /// Bytes or end-of-file arrived on stderr.
    stderr: bool,
    /// The `Also` descriptor is ready.
    also: bool,
}

impl Ready {
    fn progress(self, s: Stream) -> bool {
        match s {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }
}

/// The unwritten rest of `parts` after `written` bytes, as at most two slices.
fn remaining<'a>(parts: &[&'a [u8]], mut written: usize) -> (&'a [u8], Option<&'a [u8]>) {
    let mut i = 0;
    while i < parts.len() && written >= parts[i].len() {
        written -= parts[i].len();
        i += 1;
    }
    match parts.get(i) {
        Some(part) => (&part[written..], parts.get(i + 1).copied()),
        None => (&[], None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_skips_written_bytes_across_parts() {
        let parts: [&[u8]; 2] = [b"abc", b"\n"];
        assert_eq!(remaining(&parts, 0), (&b"abc"[..], Some(&b"\n"[..])));
        assert_eq!(remaining(&parts, 2), (&b"c"[..], Some(&b"\n"[..])));
        assert_eq!(remaining(&parts, 3), (&b"\n"[..], None));
    }
}
