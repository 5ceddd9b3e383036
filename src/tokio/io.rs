//! The async driver's descriptors: the same pipes (or pty master) as the
//! blocking driver's, registered with the tokio reactor, and the same
//! conversation core.
//!
//! Everything a wait learns goes into [`Io`] at once (bytes into the core,
//! the unwritten rest of a send into the outbox), never into a future's
//! own state: a future dropped between two polls loses nothing, and the
//! next call sees every byte. Reads wait for readiness first (an `EAGAIN`
//! read per round trip would cost a system call the blocking driver does
//! not make); writes try first and wait only when the pipe is full.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use ::tokio::io::Interest;
use ::tokio::io::unix::{AsyncFd, AsyncFdReadyGuard, AsyncFdReadyMutGuard};
use ::tokio::runtime::{Handle, Id};
use ::tokio::time::Sleep;

use crate::driver::{Input, Outgoing, Streams, Transcript, Written, receive, write_once};
use crate::sys;
use duet_core::{Conversation, Halt, Stream};

/// How a wait for an event of the core ended.
#[derive(Debug)]
pub(crate) enum Waited<T> {
    /// The core answered.
    Done(T),
    /// The core halted (end-of-file, a watch, a line too long).
    Halted(Halt),
    /// The deadline passed; the wait began at this instant.
    TimedOut(Instant),
}

/// Which output streams a read round got bytes (or the end) on, by [`Stream`].
pub(crate) type Progress = [bool; 2];

/// What [`Io::poll_drain`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// Output (or end-of-file) arrived.
    Read,
    /// The deadline passed.
    TimedOut,
}

/// A deadline's timer, kept between calls so that a round trip reuses one
/// registration instead of allocating a new one.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timer {
    /// Ready once `deadline` has passed; never without one.
    ///
    /// A round trip moves the deadline a little later each time (now plus
    /// the timeout). Moving the timer's entry in the runtime's wheel on
    /// every call would cost the most of a thousand children talking at
    /// once, so a timer already set for a time before `deadline` (and
    /// still to come) is left alone: when it goes off early, the timer
    /// moves to the deadline then.
    pub(crate) fn poll_until(
        &mut self,
        cx: &mut Context<'_>,
        deadline: Option<Instant>,
    ) -> Poll<()> {
        let Some(deadline) = deadline else {
            return Poll::Pending;
        };
        let now = Instant::now();
        if deadline <= now {
            return Poll::Ready(());
        }
        let at = ::tokio::time::Instant::from_std(deadline);
        let now = ::tokio::time::Instant::from_std(now);
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                let set = sleep.deadline();
                if set > at || set <= now {
                    sleep.as_mut().reset(at);
                }
                sleep
            }
            none => none.insert(Box::pin(::tokio::time::sleep_until(at))),
        };
        loop {
            ready!(sleep.as_mut().poll(cx));
            // Gone off: for this deadline, or early, for an earlier one.
            if sleep.deadline() >= at {
                return Poll::Ready(());
            }
            sleep.as_mut().reset(at);
        }
    }
}

/// A descriptor registered with the reactor of one runtime, which moves
/// to another runtime when it is used there ([`follow`](Self::follow)).
///
/// A registration belongs to the runtime that made it: its readiness comes
/// from that runtime's reactor, which only turns while that runtime runs,
/// and which is gone once that runtime is dropped (tokio then answers "A
/// Tokio 1.x context was found, but it is being shutdown", naming neither
/// runtime). So a child awaited from another runtime takes its descriptors
/// along, as `tokio::process` lets a child be awaited anywhere.
#[derive(Debug)]
pub(crate) struct Registered<T: sys::OwnsFd> {
    state: State<T>,
    interest: Interest,
}

#[derive(Debug)]
enum State<T: sys::OwnsFd> {
    /// Registered with the runtime `runtime`.
    On { fd: AsyncFd<T>, runtime: Id },
    /// A move to another runtime failed: kept, unregistered, so that
    /// nothing is lost and a later `follow` may try again.
    Off(T),
    /// Only inside `follow`, between the two registrations.
    Moving,
}

impl<T: sys::OwnsFd> Registered<T> {
    /// Registers `inner` with the current runtime for `interest`; `inner`
    /// comes back with the error.
    pub(crate) fn new(inner: T, interest: Interest) -> Result<Self, (T, io::Error)> {
        let runtime = Handle::current().id();
        let fd = sys::register(inner, interest)?;
        Ok(Registered {
            state: State::On { fd, runtime },
            interest,
        })
    }

    /// Moves the registration to `here` (the current runtime) unless it is
    /// there already.
    ///
    /// # Errors
    /// When the new runtime's reactor refuses the descriptor; it stays
    /// unregistered (every wait on it fails) until a later `follow`
    /// succeeds.
    pub(crate) fn follow(&mut self, here: Id) -> io::Result<()> {
        if matches!(&self.state, State::On { runtime, .. } if *runtime == here) {
            return Ok(());
        }
        // The old reactor (alive or not) forgets the descriptor first.
        let inner = match std::mem::replace(&mut self.state, State::Moving) {
            State::On { fd, .. } => fd.into_inner(),
            State::Off(inner) => inner,
            State::Moving => unreachable!("only follow moves a registration"),
        };
        match sys::register(inner, self.interest) {
            Ok(fd) => {
                self.state = State::On { fd, runtime: here };
                Ok(())
            }
            Err((inner, e)) => {
                self.state = State::Off(inner);
                Err(e)
            }
        }
    }

    /// The runtime it is registered with, if any.
    pub(crate) fn runtime(&self) -> Option<Id> {
        match &self.state {
            State::On { runtime, .. } => Some(*runtime),
            _ => None,
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        match &self.state {
            State::On { fd, .. } => fd.get_ref(),
            State::Off(inner) => inner,
            State::Moving => unreachable!("only follow moves a registration"),
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        match &mut self.state {
            State::On { fd, .. } => fd.get_mut(),
            State::Off(inner) => inner,
            State::Moving => unreachable!("only follow moves a registration"),
        }
    }

    fn registered(&self) -> io::Result<&AsyncFd<T>> {
        match &self.state {
            State::On { fd, .. } => Ok(fd),
            _ => Err(unregistered()),
        }
    }

    pub(crate) fn poll_read_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'a, T>>> {
        match self.registered() {
            Ok(fd) => fd.poll_read_ready(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    pub(crate) fn poll_read_ready_mut<'a>(
        &'a mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyMutGuard<'a, T>>> {
        match &mut self.state {
            State::On { fd, .. } => fd.poll_read_ready_mut(cx),
            _ => Poll::Ready(Err(unregistered())),
        }
    }

    pub(crate) fn poll_write_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'a, T>>> {
        match self.registered() {
            Ok(fd) => fd.poll_write_ready(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

fn unregistered() -> io::Error {
    io::Error::other(
        "the child's descriptors could not be registered with this tokio runtime \
         (an earlier move from the runtime that spawned it failed)",
    )
}

/// The parent's ends of the child's streams, registered with the runtime,
/// and the conversation.
#[derive(Debug)]
pub(crate) struct Io {
    stdin: Option<Registered<Input>>,
    /// The read ends of stdout and stderr, by [`Stream`].
    outputs: [Option<Registered<OwnedFd>>; 2],
    pub(crate) core: Conversation,
    pub(crate) transcript: Option<Transcript>,
    /// Bytes accepted for the child's stdin and not written yet: the rest
    /// of a send whose future was dropped mid-way, or an answer of a
    /// `respond` watch. They go out before anything else is written.
    outbox: Vec<u8>,
    /// How much of `outbox` is written.
    outbox_done: usize,
    pub(crate) timer: Timer,
    /// The runtime every registration (and the timer) belongs to.
    runtime: Id,
}

impl Io {
    /// Registers the descriptors of `streams` with the current runtime.
    pub(crate) fn new(streams: Streams) -> io::Result<Io> {
        let (stdin, outputs, core, transcript) = streams.into_parts();
        let stdin = match stdin {
            Some(input) => Some(Registered::new(input, Interest::WRITABLE).map_err(|(_, e)| e)?),
            None => None,
        };
        let mut registered = [None, None];
        for (slot, fd) in registered.iter_mut().zip(outputs) {
            if let Some(fd) = fd {
                *slot = Some(Registered::new(fd, Interest::READABLE).map_err(|(_, e)| e)?);
            }
        }
        Ok(Io {
            stdin,
            outputs: registered,
            core,
            transcript,
            outbox: Vec::new(),
            outbox_done: 0,
            timer: Timer::default(),
            runtime: Handle::current().id(),
        })
    }

    /// Moves every descriptor's registration to the runtime `here`, and
    /// drops a timer of another runtime (see [`Registered`]).
    pub(crate) fn follow(&mut self, here: Id) -> io::Result<()> {
        if self.runtime == here {
            return Ok(());
        }
        self.timer = Timer::default();
        let mut outcome = Ok(());
        if let Some(stdin) = self.stdin.as_mut() {
            outcome = outcome.and(stdin.follow(here));
        }
        for fd in self.outputs.iter_mut().flatten() {
            outcome = outcome.and(fd.follow(here));
        }
        if outcome.is_ok() {
            self.runtime = here;
        }
        outcome
    }

    pub(crate) fn stdin(&self) -> Option<&Input> {
        self.stdin.as_ref().map(Registered::get_ref)
    }

    /// The child's stdin and the transcript, to prepare a write.
    pub(crate) fn input_mut(&mut self) -> io::Result<(&mut Input, &mut Option<Transcript>)> {
        match self.stdin.as_mut() {
            Some(fd) => Ok((fd.get_mut(), &mut self.transcript)),
            None => Err(crate::driver::stdin_closed()),
        }
    }

    pub(crate) fn output_fd(&self, s: Stream) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.outputs[s as usize]
            .as_ref()
            .map(|fd| fd.get_ref().as_fd())
    }

    /// Widens every pipe of the child for bulk input (see
    /// [`driver::widen`](crate::driver::widen)).
    pub(crate) fn widen_pipes(&self) {
        let stdin = self.stdin().filter(|i| !i.is_pty()).map(Input::fd);
        let outputs = [Stream::Stdout, Stream::Stderr].map(|s| self.output_fd(s));
        crate::driver::widen(stdin.into_iter().chain(outputs.into_iter().flatten()));
    }

    /// Closes every descriptor to the child.
    pub(crate) fn close_all(&mut self) {
        self.stdin = None;
        self.outputs = [None, None];
    }

    // ---- reading ---------------------------------------------------------

    /// Reads once from every output stream that is ready and has not
    /// ended. Ready when bytes or end-of-file arrived on any of them (which
    /// ones, by [`Stream`]); Pending (the waker registered with each) when
    /// none was ready.
    pub(crate) fn poll_reads(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Progress>> {
        let mut progress = [false; 2];
        for s in [Stream::Stdout, Stream::Stderr] {
            // A full stream is not read: the child blocks (max_buffer).
            if self.core.is_eof(s) || self.core.is_full(s) {
                continue;
            }
            let Some(fd) = self.outputs[s as usize].as_ref() else {
                continue;
            };
            while let Poll::Ready(guard) = fd.poll_read_ready(cx) {
                let mut guard = guard?;
                match receive(
                    &mut self.core,
                    &mut self.transcript,
                    fd.get_ref().as_fd(),
                    s,
                ) {
                    Ok(got) => {
                        // A short read emptied the pipe: the next bytes
                        // are a new edge, so wait for it instead of
                        // paying for a read that would say EAGAIN.
                        if got.n > 0 && got.drained {
                            guard.clear_ready();
                        }
                        progress[s as usize] = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        if progress.contains(&true) {
            Poll::Ready(Ok(progress))
        } else {
            Poll::Pending
        }
    }

    /// Reads what every live output stream holds right now, whatever the
    /// reactor has seen so far: the last look before a deadline is
    /// declared passed. Which streams got bytes or their end.
    fn read_now(&mut self) -> io::Result<Progress> {
        let mut progress = [false; 2];
        for s in [Stream::Stdout, Stream::Stderr] {
            // A full stream is not read: the child blocks (max_buffer).
            if self.core.is_eof(s) || self.core.is_full(s) {
                continue;
            }
            let Some(fd) = self.outputs[s as usize].as_ref() else {
                continue;
            };
            match receive(
                &mut self.core,
                &mut self.transcript,
                fd.get_ref().as_fd(),
                s,
            ) {
                Ok(_) => progress[s as usize] = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(progress)
    }

    /// What a read or expect waits on: the answers of `respond` watches
    /// written, then the output streams read. Ready when something arrived.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Progress>> {
        // A reply that cannot be written now waits for room; the reads
        // go on meanwhile.
        if let Poll::Ready(Err(e)) = self.poll_flush(cx, true) {
            return Poll::Ready(Err(e));
        }
        self.poll_reads(cx)
    }

    /// Waits until `step` answers from the core, reading the child's output
    /// (and writing replies) meanwhile, for at most `timeout` from the
    /// first time it has to wait: an answer already buffered costs no clock
    /// read and no timer.
    pub(crate) async fn until<T>(
        &mut self,
        timeout: Duration,
        mut step: impl FnMut(&mut Conversation) -> Poll<Result<T, Halt>>,
    ) -> io::Result<Waited<T>> {
        let mut clock: Option<(Instant, Option<Instant>)> = None;
        poll_fn(|cx| {
            loop {
                match step(&mut self.core) {
                    Poll::Ready(Ok(v)) => return Poll::Ready(Ok(Waited::Done(v))),
                    Poll::Ready(Err(halt)) => return Poll::Ready(Ok(Waited::Halted(halt))),
                    Poll::Pending => {}
                }
                match self.poll_fill(cx) {
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
                let (start, deadline) = *clock.get_or_insert_with(|| {
                    let now = Instant::now();
                    (now, now.checked_add(timeout))
                });
                ready!(self.timer.poll_until(cx, deadline));
                match self.read_now() {
                    Ok(got) if got.contains(&true) => continue,
                    Ok(_) => return Poll::Ready(Ok(Waited::TimedOut(start))),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        })
        .await
    }

    /// Whether the child stays quiet on `s` for `quiet`: `Ok(true)` when no
    /// byte of it arrives in that time, `Ok(false)` as soon as one does,
    /// `Halt` at its end or when a watch matched (on any stream). Nothing
    /// is consumed.
    pub(crate) async fn quiet(
        &mut self,
        s: Stream,
        quiet: Duration,
    ) -> io::Result<Result<bool, Halt>> {
        let deadline = Instant::now().checked_add(quiet);
        let mut arrived = false;
        poll_fn(|cx| {
            loop {
                // A watch's match first, as every read reports it.
                if let Some(e) = self.core.take_failure() {
                    return Poll::Ready(Ok(Err(Halt::Failed(e))));
                }
                if self.core.is_eof(s) {
                    return Poll::Ready(Ok(Err(Halt::Eof)));
                }
                if arrived {
                    return Poll::Ready(Ok(Ok(false)));
                }
                match self.poll_fill(cx) {
                    Poll::Ready(Ok(got)) => {
                        arrived = got[s as usize];
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
                ready!(self.timer.poll_until(cx, deadline));
                match self.read_now() {
                    Ok(got) if got.contains(&true) => arrived = got[s as usize],
                    Ok(_) => return Poll::Ready(Ok(Ok(true))),
                    Err(e) => return Poll::Ready(Err(e)),
                }
                if !arrived && !self.core.is_eof(s) && !self.core.has_failure() {
                    return Poll::Ready(Ok(Ok(true)));
                }
            }
        })
        .await
    }

    /// One step of a wait that only collects output (`wait`,
    /// `communicate`): reads what arrived into the buffers. Ready with
    /// `Drained::Read` when something did, `Drained::TimedOut` once
    /// `deadline` passed, Pending otherwise.
    pub(crate) fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        deadline: Option<Instant>,
    ) -> Poll<io::Result<Drained>> {
        match self.poll_reads(cx) {
            Poll::Ready(Ok(_)) => return Poll::Ready(Ok(Drained::Read)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        ready!(self.timer.poll_until(cx, deadline));
        Poll::Ready(Ok(match self.read_now()?.contains(&true) {
            true => Drained::Read,
            false => Drained::TimedOut,
        }))
    }

    // ---- writing ---------------------------------------------------------

    /// Writes the outbox; with `replies`, then the answers of `respond`
    /// watches. Ready once all is written; Pending while stdin is full.
    /// Bytes that can no longer be delivered (stdin closed, the child gone)
    /// are dropped; with `replies` that is not an error (the output tells
    /// what happened), else it is the send's error.
    fn poll_flush(&mut self, cx: &mut Context<'_>, replies: bool) -> Poll<io::Result<()>> {
        loop {
            if self.outbox_done == self.outbox.len() {
                self.outbox.clear();
                self.outbox_done = 0;
                let Some(reply) = replies.then(|| self.core.take_reply()).flatten() else {
                    return Poll::Ready(Ok(()));
                };
                // Recorded and encoded (on a pty) as any send is.
                if let Some(stdin) = self.stdin.as_mut() {
                    let parts = [&reply[..]];
                    match stdin
                        .get_mut()
                        .outgoing(&mut self.transcript, &parts, false)
                    {
                        Outgoing::Plain(_) => self.outbox = reply,
                        Outgoing::Encoded(bytes) => self.outbox = bytes,
                    }
                }
            }
            let written = match self.stdin.as_ref() {
                None => Err(crate::driver::stdin_closed()),
                Some(fd) => {
                    let rest = [&self.outbox[self.outbox_done..]];
                    match write_once(fd.get_ref().fd(), &Outgoing::Plain(&rest), 0) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            let mut guard = ready!(fd.poll_write_ready(cx))?;
                            guard.clear_ready();
                            continue;
                        }
                        other => other,
                    }
                }
            };
            match written {
                Ok(n) => self.outbox_done += n,
                Err(e) => {
                    self.outbox.clear();
                    self.outbox_done = 0;
                    // Replies to a child that is gone are not an error of
                    // the read that writes them; a send's rest is.
                    if !(replies && e.kind() == io::ErrorKind::BrokenPipe) {
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
    }

    /// Writes `out` to the child's stdin before `deadline`, after whatever
    /// the outbox holds, reading the output streams while stdin is full (so
    /// a child that writes before it reads cannot deadlock the send).
    ///
    /// At every point where the future can be dropped, either nothing of
    /// `out` is written or its unwritten rest is in the outbox: a dropped
    /// send never leaves half a line behind for the next one to continue.
    pub(crate) async fn write(
        &mut self,
        out: &Outgoing<'_>,
        deadline: Option<Instant>,
    ) -> io::Result<Written> {
        let total = out.len();
        let mut written = 0;
        // Set once the rest of `out` moved to the outbox.
        let mut staged: Option<usize> = None;
        poll_fn(|cx| {
            loop {
                if let Some(at) = staged {
                    // `at` bytes went out directly; the rest is in the outbox.
                    match self.poll_flush(cx, false) {
                        Poll::Ready(Ok(())) => return Poll::Ready(Ok(Written::All)),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => written = at + self.outbox_done,
                    }
                } else if written == 0 && self.outbox_done < self.outbox.len() {
                    match self.poll_flush(cx, false) {
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                } else if written == total {
                    return Poll::Ready(Ok(Written::All));
                } else {
                    let Some(fd) = self.stdin.as_ref() else {
                        return Poll::Ready(Err(crate::driver::stdin_closed()));
                    };
                    match write_once(fd.get_ref().fd(), out, written) {
                        Ok(n) => {
                            written += n;
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            match fd.poll_write_ready(cx) {
                                Poll::Ready(Ok(mut guard)) => {
                                    guard.clear_ready();
                                    continue;
                                }
                                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                                Poll::Pending => {
                                    if written > 0 {
                                        let (a, b) = out.rest(written);
                                        self.outbox.clear();
                                        self.outbox.extend_from_slice(a);
                                        self.outbox.extend_from_slice(b.unwrap_or_default());
                                        self.outbox_done = 0;
                                        staged = Some(written);
                                    }
                                }
                            }
                        }
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                // Stdin is full: read the child's output meanwhile.
                loop {
                    match self.poll_reads(cx) {
                        Poll::Ready(Ok(_)) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => break,
                    }
                }
                ready!(self.timer.poll_until(cx, deadline));
                // Out of time: what was not written is not sent later
                // either (as in the blocking driver).
                if staged.is_some() {
                    self.outbox.clear();
                    self.outbox_done = 0;
                }
                return Poll::Ready(Ok(Written::TimedOut(written)));
            }
        })
        .await
    }

    /// Closes the child's stdin after writing the outbox; on a pty sends
    /// the terminal's end-of-file character first.
    pub(crate) async fn close_stdin(&mut self, deadline: Option<Instant>) -> io::Result<Written> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(Written::All);
        };
        let eof = stdin.get_mut().end_of_file();
        let eof = eof.unwrap_or_default();
        let outcome = self.write(&Outgoing::Plain(&[&eof]), deadline).await?;
        if outcome != Written::All {
            return Ok(outcome);
        }
        if let Some(t) = self.transcript.as_mut() {
            t.record_event("stdin closed");
        }
        self.stdin = None;
        Ok(Written::All)
    }

    /// Sends end-of-file without closing on a pty; closes stdin on a pipe.
    pub(crate) async fn send_eof(&mut self, deadline: Option<Instant>) -> io::Result<Written> {
        let (input, transcript) = self.input_mut()?;
        let Some(eof) = input.end_of_file() else {
            return self.close_stdin(deadline).await;
        };
        if let Some(t) = transcript.as_mut() {
            t.record_event("sent end-of-file");
        }
        self.write(&Outgoing::Plain(&[&eof]), deadline).await
    }
}
