//! The message channel for tokio: the blocking connection's frame codec
//! (`channel::frame`), fed from a descriptor registered with the reactor.

use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use ::tokio::io::Interest;
use ::tokio::runtime::Handle;
use nix::errno::Errno;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::io::{Registered, Timer};
use crate::driver::{Outgoing, write_once};
use crate::{Error, Result, sys};
use duet_core::frame::{self, Fill, Header, Reader, Source};

/// One end of a message channel, for tokio: the frames of
/// [`duet::channel::Connection`](crate::channel::Connection) (Python's
/// `multiprocessing.connection`), with `async` sends and receives.
///
/// Made from a blocking connection with `From` (what it had received and
/// not returned yet is kept), or taken from an async child with
/// [`Child::take_channel`](super::Child::take_channel). The descriptor is
/// registered on first use with the runtime it is used in, so the
/// conversion itself works anywhere, and moves to another runtime when it
/// is used there.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> duet::Result<()> {
/// let (a, b) = duet::channel::pipe()?;
/// let (mut a, mut b) = (duet::tokio::Connection::from(a), duet::tokio::Connection::from(b));
/// a.send(&("ping", 1)).await?;
/// assert_eq!(b.recv::<(String, u32)>().await?, ("ping".to_string(), 1));
/// drop(a);
/// assert!(b.recv_bytes().await.unwrap_err().is_eof());
/// # Ok(())
/// # }
/// ```
///
/// # Cancel safety
///
/// Receives and `poll` are cancel-safe: the part of a message that arrived
/// stays in the connection and the next receive continues with it. A send
/// dropped before it wrote anything sends nothing; once part of a frame is
/// written, its rest is kept and written before anything else (by the next
/// send, or while the next receive or poll waits), so the stream of frames
/// stays whole.
pub struct Connection {
    fd: Fd,
    reader: Reader,
    /// The unwritten rest of a frame whose send was dropped.
    outbox: Vec<u8>,
    outbox_done: usize,
    timer: Timer,
}

/// The descriptor, registered with the reactor on first use.
enum Fd {
    Unregistered(OwnedFd),
    Registered(Registered<OwnedFd>),
    Closed,
}

fn closed() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection is closed",
    ))
}

impl Connection {
    pub(crate) fn from_fd(fd: OwnedFd) -> Connection {
        Connection {
            fd: Fd::Unregistered(fd),
            reader: Reader::new(),
            outbox: Vec::new(),
            outbox_done: 0,
            timer: Timer::default(),
        }
    }

    /// The registered descriptor, registering it now if needed.
    fn register(&mut self) -> Result<()> {
        if let Fd::Registered(fd) = &mut self.fd {
            // Used from another runtime than last time: move there, with a
            // new timer (a timer belongs to its runtime too).
            if let Ok(here) = Handle::try_current() {
                let moved = fd.runtime() != Some(here.id());
                fd.follow(here.id())?;
                if moved {
                    self.timer = Timer::default();
                }
            }
        }
        if let Fd::Unregistered(_) = self.fd {
            if Handle::try_current().is_err() {
                return Err(Error::Io(io::Error::other(
                    "a duet::tokio::Connection is used outside a tokio runtime",
                )));
            }
            let Fd::Unregistered(fd) = std::mem::replace(&mut self.fd, Fd::Closed) else {
                unreachable!("checked above");
            };
            sys::set_nonblocking(fd.as_fd())?;
            match Registered::new(fd, Interest::READABLE | Interest::WRITABLE) {
                Ok(registered) => self.fd = Fd::Registered(registered),
                Err((fd, e)) => {
                    self.fd = Fd::Unregistered(fd);
                    return Err(e.into());
                }
            }
        }
        match self.fd {
            Fd::Registered(_) => Ok(()),
            _ => Err(closed()),
        }
    }

    /// Splits the connection for a poll: the descriptor and the rest.
    fn parts(&mut self) -> Result<Parts<'_>> {
        self.register()?;
        let Fd::Registered(fd) = &self.fd else {
            return Err(closed());
        };
        Ok(Parts {
            fd,
            reader: &mut self.reader,
            outbox: &mut self.outbox,
            outbox_done: &mut self.outbox_done,
            timer: &mut self.timer,
        })
    }

    /// Sends `buf` as one message. While the socket buffer is full, what
    /// the peer sends meanwhile is read into the receive buffer, so two
    /// peers sending large messages to each other cannot block each other.
    ///
    /// # Errors
    ///
    /// `Error::Io`: `EPIPE` when the peer is gone (never SIGPIPE), or the
    /// connection was closed.
    ///
    /// # Cancel safety
    ///
    /// See the type's "Cancel safety": a dropped send has sent nothing, or
    /// its whole frame goes out with the next operation.
    pub async fn send_bytes(&mut self, buf: &[u8]) -> Result<()> {
        let header = Header::new(buf.len() as u64);
        let parts = [header.as_bytes(), buf];
        let out = Outgoing::Plain(&parts);
        let mut p = self.parts()?;
        let mut written = 0;
        let mut staged = false;
        poll_fn(|cx| p.poll_send(cx, &out, &mut written, &mut staged)).await
    }

    /// Sends `value` as one JSON message (what Python reads with
    /// `json.loads(conn.recv_bytes())`).
    ///
    /// # Errors
    ///
    /// `Error::Json` when `value` cannot be serialised; otherwise as
    /// [`send_bytes`](Self::send_bytes).
    ///
    /// # Cancel safety
    ///
    /// As [`send_bytes`](Self::send_bytes).
    pub fn send<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> impl Future<Output = Result<()>> + Send + '_ {
        // Encoded before the future exists, so it does not hold `value`.
        let bytes = serde_json::to_vec(value);
        async move { self.send_bytes(&bytes?).await }
    }

    /// Receives the next message, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// `Error::Eof` when the peer closed its end after its last whole
    /// message; `Error::Truncated` when it closed in the middle of one;
    /// `Error::Io` otherwise.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: what arrived of the message stays for the next receive.
    pub async fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        let mut p = self.parts()?;
        poll_fn(|cx| p.poll_recv(cx, |reader, src| reader.recv(src, None))).await
    }

    /// Receives the next message if it is at most `limit` bytes long; a
    /// longer one is refused with `Error::MessageTooLong` before its
    /// payload is read, and skipped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`recv_bytes`](Self::recv_bytes).
    pub async fn recv_bytes_max(&mut self, limit: usize) -> Result<Vec<u8>> {
        let mut p = self.parts()?;
        poll_fn(|cx| p.poll_recv(cx, |reader, src| reader.recv(src, Some(limit)))).await
    }

    /// Receives the next message into `buf` and returns its length;
    /// `Error::BufferTooShort` leaves a longer message in place.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a message that had started to arrive is kept in the
    /// connection (not in `buf`) for the next receive.
    pub async fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut p = self.parts()?;
        poll_fn(|cx| p.poll_recv(cx, |reader, src| reader.recv_into(src, buf))).await
    }

    /// Receives the next message and decodes it from JSON.
    ///
    /// # Errors
    ///
    /// `Error::Json` when the message is not `T` in JSON (the message is
    /// consumed); otherwise as [`recv_bytes`](Self::recv_bytes).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`recv_bytes`](Self::recv_bytes).
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        let bytes = self.recv_bytes().await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Waits at most `timeout` (`None`: as long as it takes) until a message
    /// starts arriving or the peer closes its end, and says whether one of
    /// these happened, as [`channel::Connection::poll`](crate::channel::Connection::poll).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut p = self.parts()?;
        poll_fn(|cx| {
            let _ = p.poll_flush(cx)?;
            let mut src = ReadySource::new(p.fd, cx);
            if p.reader.poll(&mut src)? == Some(true) {
                return Poll::Ready(Ok(true));
            }
            ready!(p.timer.poll_until(cx, deadline));
            // The last look, whatever the reactor has seen.
            let mut src = ReadySource::direct(p.fd, cx);
            Poll::Ready(Ok(p.reader.poll(&mut src)? == Some(true)))
        })
        .await
    }

    /// Closes the connection; calling it again does nothing. Every later
    /// send or receive fails with `Error::Io` (`NotConnected`).
    pub fn close(&mut self) {
        self.fd = Fd::Closed;
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        matches!(self.fd, Fd::Closed)
    }

    /// Bytes that arrived and were not returned yet.
    pub fn buffered(&self) -> usize {
        self.reader.buffered()
    }
}

impl From<crate::channel::Connection> for Connection {
    /// Takes over a blocking connection, with whatever it had received and
    /// not returned yet. Its descriptor becomes non-blocking.
    fn from(conn: crate::channel::Connection) -> Connection {
        let (fd, reader) = conn.into_parts();
        Connection {
            fd: fd.map_or(Fd::Closed, Fd::Unregistered),
            reader,
            outbox: Vec::new(),
            outbox_done: 0,
            timer: Timer::default(),
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fd: Option<RawFd> = match &self.fd {
            Fd::Unregistered(fd) => Some(fd.as_raw_fd()),
            Fd::Registered(fd) => Some(fd.get_ref().as_raw_fd()),
            Fd::Closed => None,
        };
        f.debug_struct("Connection")
            .field("fd", &fd)
            .field("buffered", &self.reader.buffered())
            .finish()
    }
}

/// A connection split for one poll.
struct Parts<'a> {
    fd: &'a Registered<OwnedFd>,
    reader: &'a mut Reader,
    outbox: &'a mut Vec<u8>,
    outbox_done: &'a mut usize,
    timer: &'a mut Timer,
}

impl Parts<'_> {
    /// Writes the rest of a frame whose send was dropped. Ready once it is
    /// all written.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        while *self.outbox_done < self.outbox.len() {
            let rest = [&self.outbox[*self.outbox_done..]];
            match write_once(self.fd.get_ref().as_fd(), &Outgoing::Plain(&rest), 0) {
                Ok(n) => *self.outbox_done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut guard = ready!(self.fd.poll_write_ready(cx))?;
                    guard.clear_ready();
                }
                Err(e) => {
                    self.outbox.clear();
                    *self.outbox_done = 0;
                    return Poll::Ready(Err(e.into()));
                }
            }
        }
        self.outbox.clear();
        *self.outbox_done = 0;
        Poll::Ready(Ok(()))
    }

    /// Receives with `op` (one of the frame reader's receives), reading
    /// from the descriptor as it becomes readable.
    fn poll_recv<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut Reader, &mut ReadySource<'_, '_>) -> Result<Option<T>, frame::Error>,
    ) -> Poll<Result<T>> {
        // A frame left half-sent would leave the peer waiting for it.
        if let Poll::Ready(Err(e)) = self.poll_flush(cx) {
            return Poll::Ready(Err(e));
        }
        let mut src = ReadySource::new(self.fd, cx);
        match op(self.reader, &mut src)? {
            Some(v) => Poll::Ready(Ok(v)),
            None => Poll::Pending,
        }
    }

    /// One poll of a send of `out`: see [`Connection::send_bytes`].
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        out: &Outgoing<'_>,
        written: &mut usize,
        staged: &mut bool,
    ) -> Poll<Result<()>> {
        loop {
            if *staged || (*written == 0 && *self.outbox_done < self.outbox.len()) {
                match self.poll_flush(cx) {
                    Poll::Ready(Ok(())) if *staged => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            } else if *written == out.len() {
                return Poll::Ready(Ok(()));
            } else {
                match write_once(self.fd.get_ref().as_fd(), out, *written) {
                    Ok(n) => {
                        *written += n;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        match self.fd.poll_write_ready(cx) {
                            Poll::Ready(Ok(mut guard)) => {
                                guard.clear_ready();
                                continue;
                            }
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                            Poll::Pending if *written > 0 => {
                                let (a, b) = out.rest(*written);
                                self.outbox.clear();
                                self.outbox.extend_from_slice(a);
                                self.outbox.extend_from_slice(b.unwrap_or_default());
                                *self.outbox_done = 0;
                                *staged = true;
                            }
                            Poll::Pending => {}
                        }
                    }
                    Err(e) => return Poll::Ready(Err(e.into())),
                }
            }
            // The buffer is full: read what the peer sends meanwhile.
            loop {
                let mut src = ReadySource::new(self.fd, cx);
                match self.reader.fill_buf(&mut src)? {
                    Fill::Data(_) => {}
                    Fill::Eof | Fill::TimedOut => break,
                }
            }
            return Poll::Pending;
        }
    }
}

/// The registered descriptor as a frame [`Source`]: a read happens when
/// the reactor says the descriptor is readable, and "not now" is reported
/// as the source's timeout (`Fill::TimedOut`), which the frame reader
/// survives with every byte kept. `direct` reads whatever the reactor says.
struct ReadySource<'a, 'b> {
    fd: &'a Registered<OwnedFd>,
    cx: &'a mut Context<'b>,
    direct: bool,
}

impl<'a, 'b> ReadySource<'a, 'b> {
    fn new(fd: &'a Registered<OwnedFd>, cx: &'a mut Context<'b>) -> Self {
        ReadySource {
            fd,
            cx,
            direct: false,
        }
    }

    fn direct(fd: &'a Registered<OwnedFd>, cx: &'a mut Context<'b>) -> Self {
        ReadySource {
            fd,
            cx,
            direct: true,
        }
    }

    /// Runs the read `op` (asking for `want` bytes) once the descriptor is
    /// readable.
    fn read_with(
        &mut self,
        want: usize,
        mut op: impl FnMut(std::os::fd::BorrowedFd<'_>) -> nix::Result<usize>,
    ) -> Result<Fill> {
        let fd = self.fd.get_ref().as_fd();
        if self.direct {
            return loop {
                match op(fd) {
                    Ok(0) => break Ok(Fill::Eof),
                    Ok(n) => break Ok(Fill::Data(n)),
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => break Ok(Fill::TimedOut),
                    Err(e) => break Err(e.into()),
                }
            };
        }
        loop {
            let mut guard = match self.fd.poll_read_ready(self.cx) {
                Poll::Ready(guard) => guard?,
                Poll::Pending => return Ok(Fill::TimedOut),
            };
            match op(fd) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(n) => {
                    if n < want {
                        guard.clear_ready();
                    }
                    return Ok(Fill::Data(n));
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Source for ReadySource<'_, '_> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<Fill, frame::Error> {
        let want = buf.len();
        self.read_with(want, |fd| nix::unistd::read(fd, buf))
            .map_err(Error::into_frame)
    }

    fn fill_split(
        &mut self,
        msg: &mut Vec<u8>,
        want: usize,
        ahead: &mut [u8],
    ) -> Result<Fill, frame::Error> {
        let total = want + ahead.len();
        self.read_with(total, |fd| sys::read_split(fd, msg, want, ahead))
            .map_err(Error::into_frame)
    }
}
