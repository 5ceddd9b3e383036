//! The descriptor side: reads and writes with deadlines, and the public
//! connection types.

use std::fmt;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, UnixAddr, sendmsg};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};
use duet_core::frame::{self, Fill, Header, Reader, Source};

/// Waits until `fd` reports one of `events` (or an error or hang-up, which
/// `poll(2)` always reports). `None` when `deadline` passed first.
///
/// The timeout given to `poll` is what is left of the deadline, rounded up
/// to the millisecond, recomputed after every wake-up.
fn wait(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> Result<Option<PollFlags>> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let ms = left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(fd, events)];
        match poll(&mut fds, timeout) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(None);
                }
            }
            Ok(_) => return Ok(Some(fds[0].revents().unwrap_or(PollFlags::empty()))),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A descriptor as a [`Source`]: blocking reads, or reads that give up at
/// a deadline.
struct FdSource<'a> {
    fd: BorrowedFd<'a>,
    deadline: Option<Instant>,
}

impl FdSource<'_> {
    /// Runs the read `op` once data is there (or at once without a
    /// deadline), retrying on `EINTR` and waiting out `EAGAIN`.
    fn read_with(&self, mut op: impl FnMut() -> nix::Result<usize>) -> Result<Fill> {
        loop {
            if self.deadline.is_some() && wait(self.fd, PollFlags::POLLIN, self.deadline)?.is_none()
            {
                return Ok(Fill::TimedOut);
            }
            match op() {
                Ok(0) => return Ok(Fill::Eof),
                Ok(n) => return Ok(Fill::Data(n)),
                Err(Errno::EINTR) => {}
                // A descriptor someone made non-blocking: wait for it.
                Err(Errno::EAGAIN) => {
                    if self.deadline.is_none() {
                        wait(self.fd, PollFlags::POLLIN, None)?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Source for FdSource<'_> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<Fill, frame::Error> {
        let fd = self.fd;
        self.read_with(|| nix::unistd::read(fd, buf))
            .map_err(Error::into_frame)
    }

    fn fill_split(
        &mut self,
        msg: &mut Vec<u8>,
        want: usize,
        ahead: &mut [u8],
    ) -> Result<Fill, frame::Error> {
        let fd = self.fd;
        self.read_with(|| crate::sys::read_split(fd, msg, want, ahead))
            .map_err(Error::into_frame)
    }
}

/// Waits until `fd` takes more bytes. Meanwhile, when `peer_writes`,
/// reads what the peer sends into the receive buffer; returns false once
/// the peer has closed its sending side.
fn wait_writable(fd: BorrowedFd<'_>, reader: &mut Reader, peer_writes: bool) -> Result<bool> {
    let mut events = PollFlags::POLLOUT;
    if peer_writes {
        events |= PollFlags::POLLIN;
    }
    let revents = wait(fd, events, None)?.unwrap_or(PollFlags::empty());
    if peer_writes && revents.contains(PollFlags::POLLIN) {
        let mut src = FdSource {
            fd,
            deadline: Some(Instant::now()),
        };
        if reader.fill_buf(&mut src)? == Fill::Eof {
            return Ok(false);
        }
    }
    Ok(peer_writes)
}

/// Frames up to this size (header included) are copied into one buffer
/// and written with one `send`, like Python does up to 16 KiB: cheaper than
/// a gathered `sendmsg` of two pieces. Larger ones go out with `sendmsg`
/// from the caller's buffer, uncopied.
const SMALL_FRAME: usize = 4 * 1024;

/// How writes go out on this descriptor, learnt on the first write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Not written to yet: write as to a socket; `ENOTSOCK` says otherwise.
    Unknown,
    /// `send`/`sendmsg` with `MSG_NOSIGNAL | MSG_DONTWAIT`: no SIGPIPE, and
    /// a full socket buffer hands control back so that incoming data can be
    /// read meanwhile.
    Socket,
    /// Anything else (a pipe, a FIFO): blocking `write`/`writev`.
    Other,
}

/// What the three public types share: the descriptor, how to write to it
/// and the receive state.
struct Endpoint {
    fd: Option<OwnedFd>,
    kind: Kind,
    reader: Reader,
    /// Where small frames are assembled (kept between sends).
    scratch: Vec<u8>,
}

fn closed() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection is closed",
    ))
}

impl Endpoint {
    fn new(fd: OwnedFd) -> Endpoint {
        Endpoint {
            fd: Some(fd),
            kind: Kind::Unknown,
            reader: Reader::new(),
            scratch: Vec::new(),
        }
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd
            .as_ref()
            .expect("as_fd on a closed channel connection")
            .as_fd()
    }

    fn close(&mut self) {
        self.fd = None;
    }

    fn into_owned_fd(mut self) -> Result<OwnedFd> {
        self.fd.take().ok_or_else(closed)
    }

    /// Writes one frame. With `duplex`, whatever the peer sends while the
    /// socket buffer is full is read into the receive buffer, so two peers
    /// sending large messages to each other cannot block each other.
    fn send_bytes(&mut self, payload: &[u8], duplex: bool) -> Result<()> {
        let header = Header::new(payload.len() as u64);
        let header = header.as_bytes();
        if header.len() + payload.len() > SMALL_FRAME {
            return self.write_parts(header, payload, duplex);
        }
        let mut frame = std::mem::take(&mut self.scratch);
        frame.clear();
        frame.extend_from_slice(header);
        frame.extend_from_slice(payload);
        let result = self.write_parts(&frame, &[], duplex);
        self.scratch = frame;
        result
    }

    /// Writes `first` then `second`, whatever it takes.
    fn write_parts(&mut self, first: &[u8], second: &[u8], duplex: bool) -> Result<()> {
        let fd = self.fd.as_ref().ok_or_else(closed)?.as_fd();
        let total = first.len() + second.len();
        let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
        let mut sent = 0;
        let mut peer_writes = duplex;
        // After a short write to a socket its buffer is full: wait before
        // trying again rather than collecting an EAGAIN first.
        let mut full = false;
        while sent < total {
            if full {
                full = false;
                peer_writes = wait_writable(fd, &mut self.reader, peer_writes)?;
            }
            let (a, b) = if sent < first.len() {
                (&first[sent..], second)
            } else {
                (&second[sent - first.len()..], &[][..])
            };
            let written = match (self.kind, b.is_empty()) {
                (Kind::Other, true) => nix::unistd::write(fd, a),
                (Kind::Other, false) => {
                    nix::sys::uio::writev(fd, &[IoSlice::new(a), IoSlice::new(b)])
                }
                (_, true) => nix::sys::socket::send(fd.as_raw_fd(), a, flags),
                (_, false) => sendmsg::<UnixAddr>(
                    fd.as_raw_fd(),
                    &[IoSlice::new(a), IoSlice::new(b)],
                    &[],
                    flags,
                    None,
                ),
            };
            match written {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => {
                    if self.kind == Kind::Unknown {
                        self.kind = Kind::Socket;
                    }
                    full = self.kind == Kind::Socket && n < a.len() + b.len();
                    sent += n;
                }
                Err(Errno::EINTR) => {}
                Err(Errno::ENOTSOCK) if self.kind == Kind::Unknown => self.kind = Kind::Other,
                Err(Errno::EAGAIN) => {
                    if self.kind == Kind::Unknown {
                        self.kind = Kind::Socket;
                    }
                    full = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn recv(&mut self, limit: Option<usize>, timeout: Option<Duration>) -> Result<Vec<u8>> {
        let start = Instant::now();
        let fd = self.fd.as_ref().ok_or_else(closed)?.as_fd();
        let mut src = FdSource {
            fd,
            deadline: timeout.and_then(|t| start.checked_add(t)),
        };
        match self.reader.recv(&mut src, limit)? {
            Some(msg) => Ok(msg),
            None => Err(Error::Timeout {
                waited: start.elapsed(),
                expected: "a message".to_string(),
                partial: duet_core::text::preview(self.reader.partial()),
                stderr: String::new(),
                status: None,
                output: None,
            }),
        }
    }

    fn recv_into(&mut self, out: &mut [u8]) -> Result<usize> {
        let fd = self.fd.as_ref().ok_or_else(closed)?.as_fd();
        let mut src = FdSource { fd, deadline: None };
        let got = self.reader.recv_into(&mut src, out)?;
        Ok(got.expect("a read without a deadline does not time out"))
    }

    fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let fd = self.fd.as_ref().ok_or_else(closed)?.as_fd();
        let mut src = FdSource {
            fd,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
        };
        Ok(self.reader.poll(&mut src)?.unwrap_or(false))
    }
}

fn range(buf: &[u8], offset: usize, len: usize) -> Result<&[u8]> {
    offset
        .checked_add(len)
        .and_then(|end| buf.get(offset..end))
        .ok_or_else(|| {
            Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "range {offset}..{offset}+{len} is outside a buffer of {} bytes",
                    buf.len()
                ),
            ))
        })
}

/// One end of a duplex message channel, made by [`pipe`](super::pipe), taken
/// from the environment by [`from_env`](super::from_env), or wrapped around
/// any stream descriptor with `From<OwnedFd>`.
///
/// Each message arrives whole and in order. Dropping the connection closes
/// it: the peer's next receive returns [`Error::Eof`] once it has read every
/// message sent before.
pub struct Connection {
    end: Endpoint,
}

impl Connection {
    /// Sends `buf` as one message.
    ///
    /// When the socket buffer is full, this reads what the peer sends
    /// meanwhile into the receive buffer (see the module's "Deadlocks and
    /// caveats"), so it returns once the whole message is handed to the
    /// kernel.
    ///
    /// # Errors
    ///
    /// `Error::Io`: `EPIPE` when the peer is gone (never SIGPIPE), or the
    /// connection was closed.
    ///
    /// ```
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// a.send_bytes(b"one message")?;
    /// assert_eq!(b.recv_bytes()?, b"one message");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send_bytes(&mut self, buf: &[u8]) -> Result<()> {
        self.end.send_bytes(buf, true)
    }

    /// Sends `buf[offset..offset + len]` as one message.
    ///
    /// # Errors
    ///
    /// `Error::Io` (`InvalidInput`) when the range is outside `buf`; otherwise as
    /// [`send_bytes`](Self::send_bytes).
    ///
    /// ```
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// a.send_bytes_range(b"0123456789", 2, 3)?;   // bytes 2..5
    /// assert_eq!(b.recv_bytes()?, b"234");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send_bytes_range(&mut self, buf: &[u8], offset: usize, len: usize) -> Result<()> {
        self.end.send_bytes(range(buf, offset, len)?, true)
    }

    /// Sends `value` as one JSON message (what Python reads with
    /// `json.loads(conn.recv_bytes())`).
    ///
    /// # Errors
    ///
    /// `Error::Json` when `value` cannot be serialised; otherwise as
    /// [`send_bytes`](Self::send_bytes).
    ///
    /// ```
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// a.send(&serde_json::json!({"op": "add", "args": [2, 2]}))?;
    /// let v: serde_json::Value = b.recv()?;
    /// assert_eq!(v["args"][1], 2);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.end.send_bytes(&bytes, true)
    }

    /// Receives the next message, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// `Error::Eof` when the peer closed its end after its last whole
    /// message; `Error::Truncated` when it closed in the middle of one;
    /// `Error::Io` otherwise.
    ///
    /// ```
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// a.send_bytes(b"first")?;
    /// a.send_bytes(b"")?;                          // an empty message is a message
    /// drop(a);
    /// assert_eq!(b.recv_bytes()?, b"first");
    /// assert_eq!(b.recv_bytes()?, b"");
    /// assert!(b.recv_bytes().unwrap_err().is_eof());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.end.recv(None, None)
    }

    /// Receives the next message if it is at most `limit` bytes long.
    ///
    /// A longer message is refused with `Error::MessageTooLong` *before* its
    /// payload is read; the payload is then skipped as it arrives and the
    /// next receive returns the message after it.
    ///
    /// # Errors
    ///
    /// `Error::MessageTooLong`, or as [`recv_bytes`](Self::recv_bytes).
    ///
    /// ```
    /// use duet::Error;
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// a.send_bytes(&[0u8; 100])?;
    /// a.send_bytes(b"small")?;
    /// assert!(matches!(b.recv_bytes_max(10), Err(Error::MessageTooLong { len: 100, limit: 10 })));
    /// assert_eq!(b.recv_bytes_max(10)?, b"small");   // the big one was skipped
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv_bytes_max(&mut self, limit: usize) -> Result<Vec<u8>> {
        self.end.recv(Some(limit), None)
    }

    /// Receives the next message into `buf` and returns its length.
    ///
    /// # Errors
    ///
    /// `Error::BufferTooShort { needed }` when the message is longer than
    /// `buf`; it is not consumed, so the next receive (with a big enough
    /// buffer) returns it. Otherwise as [`recv_bytes`](Self::recv_bytes).
    ///
    /// ```
    /// use duet::Error;
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// a.send_bytes(b"twelve bytes")?;
    /// let mut small = [0u8; 4];
    /// assert!(matches!(b.recv_bytes_into(&mut small), Err(Error::BufferTooShort { needed: 12 })));
    /// let mut buf = [0u8; 64];
    /// let n = b.recv_bytes_into(&mut buf)?;          // still there
    /// assert_eq!(&buf[..n], b"twelve bytes");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.end.recv_into(buf)
    }

    /// Receives the next message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `Error::Timeout` when the message has not arrived in full by then;
    /// whatever part of it arrived stays buffered, and the next receive
    /// continues with it. Otherwise as [`recv_bytes`](Self::recv_bytes).
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// assert!(b.recv_bytes_timeout(Duration::from_millis(20)).unwrap_err().is_timeout());
    /// a.send_bytes(b"late")?;
    /// assert_eq!(b.recv_bytes_timeout(Duration::from_secs(5))?, b"late");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.end.recv(None, Some(timeout))
    }

    /// Receives the next message and decodes it from JSON.
    ///
    /// # Errors
    ///
    /// `Error::Json` when the message is not `T` in JSON (the message is
    /// consumed); otherwise as [`recv_bytes`](Self::recv_bytes).
    ///
    /// ```
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// a.send(&vec![1, 2, 3])?;
    /// assert_eq!(b.recv::<Vec<u32>>()?, [1, 2, 3]);
    /// a.send_bytes(b"not json")?;
    /// assert!(matches!(b.recv::<u32>(), Err(duet::Error::Json(_))));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        Ok(serde_json::from_slice(&self.recv_bytes()?)?)
    }

    /// Receives the next message within `timeout` and decodes it from JSON.
    ///
    /// # Errors
    ///
    /// As [`recv_bytes_timeout`](Self::recv_bytes_timeout) and
    /// [`recv`](Self::recv).
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// assert!(b.recv_timeout::<String>(Duration::from_millis(20)).unwrap_err().is_timeout());
    /// a.send("hello")?;
    /// assert_eq!(b.recv_timeout::<String>(Duration::from_secs(5))?, "hello");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T> {
        Ok(serde_json::from_slice(&self.recv_bytes_timeout(timeout)?)?)
    }

    /// Waits at most `timeout` (`None`: as long as it takes) until a message
    /// starts arriving or the peer closes its end, and says whether one of
    /// these happened. `Some(Duration::ZERO)` only looks.
    ///
    /// `true` does not promise a *whole* message: a receive may still wait
    /// for the rest of it. Use [`recv_bytes_timeout`](Self::recv_bytes_timeout)
    /// when that matters. After the peer closed, `true` means the next
    /// receive returns `Error::Eof` (or `Error::Truncated`).
    ///
    /// # Errors
    ///
    /// `Error::Io`, including the connection being closed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// assert!(!b.poll(Some(Duration::ZERO))?);      // nothing yet
    /// a.send_bytes(b"x")?;
    /// assert!(b.poll(Some(Duration::from_secs(5)))?);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        self.end.poll(timeout)
    }

    /// Closes the connection; calling it again does nothing. Messages that
    /// arrived and were not received are dropped. Every later send or
    /// receive fails with `Error::Io` (`NotConnected`).
    ///
    /// ```
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// a.close();
    /// a.close();                                    // again: nothing happens
    /// assert!(a.send_bytes(b"x").is_err());
    /// assert!(b.recv_bytes().unwrap_err().is_eof());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn close(&mut self) {
        self.end.close()
    }

    /// True once [`close`](Self::close) was called.
    ///
    /// ```
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// assert!(!a.is_closed());
    /// a.close();
    /// assert!(a.is_closed());
    /// # drop(b);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.end.fd.is_none()
    }

    /// Gives up the descriptor, for example to hand it to a child.
    /// Anything received and not yet returned is dropped.
    ///
    /// # Errors
    ///
    /// `Error::Io` (`NotConnected`) when the connection was closed.
    ///
    /// ```
    /// use duet::channel::Connection;
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// let fd = a.into_owned_fd()?;                  // e.g. to pass to a child
    /// let mut a = Connection::from(fd);             // and back
    /// a.send_bytes(b"still connected")?;
    /// assert_eq!(b.recv_bytes()?, b"still connected");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn into_owned_fd(self) -> Result<OwnedFd> {
        self.end.into_owned_fd()
    }

    /// Bytes that arrived and were not returned yet.
    ///
    /// ```
    /// let (mut a, mut b) = duet::channel::pipe()?;
    /// a.send_bytes(b"one")?;
    /// a.send_bytes(b"two")?;
    /// assert_eq!(b.recv_bytes()?, b"one");
    /// // The second frame may have arrived with the first: it waits in the buffer.
    /// assert!(b.buffered() <= 4 + 3);
    /// # let _ = b.recv_bytes()?;
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn buffered(&self) -> usize {
        self.end.reader.buffered()
    }

    /// The descriptor (`None` once closed) and what was received and not
    /// returned yet, for the async connection that takes this one over.
    #[cfg(feature = "tokio")]
    pub(crate) fn into_parts(self) -> (Option<OwnedFd>, Reader) {
        (self.end.fd, self.end.reader)
    }
}

impl From<OwnedFd> for Connection {
    /// Wraps a connected stream socket (or any descriptor that reads and
    /// writes a byte stream, such as a pseudo-terminal in raw mode) whose
    /// peer speaks the same frames.
    ///
    /// On a descriptor that is not a socket, sends are plain blocking
    /// writes: they do not read the peer's messages while they wait, so the
    /// two-large-senders deadlock of the module docs is possible there.
    fn from(fd: OwnedFd) -> Connection {
        Connection {
            end: Endpoint::new(fd),
        }
    }
}

impl AsFd for Connection {
    /// # Panics
    ///
    /// When the connection was closed.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.end.as_fd()
    }
}

impl AsRawFd for Connection {
    /// # Panics
    ///
    /// When the connection was closed.
    fn as_raw_fd(&self) -> RawFd {
        self.end.as_fd().as_raw_fd()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.end.fd.as_ref().map(|fd| fd.as_raw_fd()))
            .field("buffered", &self.end.reader.buffered())
            .finish()
    }
}

/// The receiving end of a one-way channel made by [`simplex`](super::simplex)
/// (Python's `Pipe(duplex=False)[0]`).
///
/// It receives like a [`Connection`]; it cannot send.
pub struct Receiver {
    end: Endpoint,
}

impl Receiver {
    /// As [`Connection::recv_bytes`].
    ///
    /// # Errors
    ///
    /// As [`Connection::recv_bytes`].
    ///
    /// ```
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// tx.send_bytes(b"one way")?;
    /// assert_eq!(rx.recv_bytes()?, b"one way");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.end.recv(None, None)
    }

    /// As [`Connection::recv_bytes_max`].
    ///
    /// # Errors
    ///
    /// As [`Connection::recv_bytes_max`].
    ///
    /// ```
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// tx.send_bytes(b"too long")?;
    /// assert!(rx.recv_bytes_max(3).is_err());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv_bytes_max(&mut self, limit: usize) -> Result<Vec<u8>> {
        self.end.recv(Some(limit), None)
    }

    /// As [`Connection::recv_bytes_into`].
    ///
    /// # Errors
    ///
    /// As [`Connection::recv_bytes_into`].
    ///
    /// ```
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// tx.send_bytes(b"abc")?;
    /// let mut buf = [0u8; 8];
    /// let n = rx.recv_bytes_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"abc");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.end.recv_into(buf)
    }

    /// As [`Connection::recv_bytes_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Connection::recv_bytes_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// assert!(rx.recv_bytes_timeout(Duration::from_millis(20)).unwrap_err().is_timeout());
    /// # drop(tx);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        self.end.recv(None, Some(timeout))
    }

    /// As [`Connection::recv`].
    ///
    /// # Errors
    ///
    /// As [`Connection::recv`].
    ///
    /// ```
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// tx.send(&(1, "one"))?;
    /// assert_eq!(rx.recv::<(u8, String)>()?, (1, "one".to_string()));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        Ok(serde_json::from_slice(&self.recv_bytes()?)?)
    }

    /// As [`Connection::recv_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Connection::recv_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// tx.send(&true)?;
    /// assert!(rx.recv_timeout::<bool>(Duration::from_secs(5))?);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn recv_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T> {
        Ok(serde_json::from_slice(&self.recv_bytes_timeout(timeout)?)?)
    }

    /// As [`Connection::poll`].
    ///
    /// # Errors
    ///
    /// As [`Connection::poll`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// drop(tx);
    /// assert!(rx.poll(Some(Duration::from_secs(5)))?);   // ready: the end of the channel
    /// assert!(rx.recv_bytes().unwrap_err().is_eof());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        self.end.poll(timeout)
    }

    /// As [`Connection::close`].
    ///
    /// ```
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// rx.close();
    /// assert!(tx.send_bytes(b"x").is_err());        // nobody reads any more
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn close(&mut self) {
        self.end.close()
    }

    /// As [`Connection::into_owned_fd`].
    ///
    /// # Errors
    ///
    /// As [`Connection::into_owned_fd`].
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// let fd = rx.into_owned_fd()?;
    /// assert!(fd.as_raw_fd() >= 0);
    /// # drop(tx);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn into_owned_fd(self) -> Result<OwnedFd> {
        self.end.into_owned_fd()
    }
}

impl From<OwnedFd> for Receiver {
    /// Wraps the read end of a pipe (or any readable byte stream).
    fn from(fd: OwnedFd) -> Receiver {
        Receiver {
            end: Endpoint::new(fd),
        }
    }
}

impl AsFd for Receiver {
    /// # Panics
    ///
    /// When the receiver was closed.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.end.as_fd()
    }
}

impl AsRawFd for Receiver {
    /// # Panics
    ///
    /// When the receiver was closed.
    fn as_raw_fd(&self) -> RawFd {
        self.end.as_fd().as_raw_fd()
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("fd", &self.end.fd.as_ref().map(|fd| fd.as_raw_fd()))
            .field("buffered", &self.end.reader.buffered())
            .finish()
    }
}

/// The sending end of a one-way channel made by [`simplex`](super::simplex)
/// (Python's `Pipe(duplex=False)[1]`).
///
/// Writes to a pipe whose reader is gone fail with `EPIPE` only because the
/// Rust runtime ignores SIGPIPE; a program that restores the default
/// disposition dies of SIGPIPE there instead (sockets, and so
/// [`Connection`], never raise it).
pub struct Sender {
    end: Endpoint,
}

impl Sender {
    /// As [`Connection::send_bytes`]; a full pipe blocks until the reader
    /// makes room.
    ///
    /// # Errors
    ///
    /// As [`Connection::send_bytes`].
    ///
    /// ```
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// tx.send_bytes(b"ping")?;
    /// assert_eq!(rx.recv_bytes()?, b"ping");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send_bytes(&mut self, buf: &[u8]) -> Result<()> {
        self.end.send_bytes(buf, false)
    }

    /// As [`Connection::send_bytes_range`].
    ///
    /// # Errors
    ///
    /// As [`Connection::send_bytes_range`].
    ///
    /// ```
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// tx.send_bytes_range(b"hello world", 6, 5)?;
    /// assert_eq!(rx.recv_bytes()?, b"world");
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send_bytes_range(&mut self, buf: &[u8], offset: usize, len: usize) -> Result<()> {
        self.end.send_bytes(range(buf, offset, len)?, false)
    }

    /// As [`Connection::send`].
    ///
    /// # Errors
    ///
    /// As [`Connection::send`].
    ///
    /// ```
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// tx.send(&[1.5, 2.5])?;
    /// assert_eq!(rx.recv::<Vec<f64>>()?, [1.5, 2.5]);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.end.send_bytes(&bytes, false)
    }

    /// As [`Connection::close`].
    ///
    /// ```
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// tx.close();
    /// assert!(rx.recv_bytes().unwrap_err().is_eof());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn close(&mut self) {
        self.end.close()
    }

    /// As [`Connection::into_owned_fd`].
    ///
    /// # Errors
    ///
    /// As [`Connection::into_owned_fd`].
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let (mut rx, mut tx) = duet::channel::simplex()?;
    /// let fd = tx.into_owned_fd()?;
    /// assert!(fd.as_raw_fd() >= 0);
    /// # drop(rx);
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn into_owned_fd(self) -> Result<OwnedFd> {
        self.end.into_owned_fd()
    }
}

impl From<OwnedFd> for Sender {
    /// Wraps the write end of a pipe (or any writable byte stream).
    fn from(fd: OwnedFd) -> Sender {
        Sender {
            end: Endpoint::new(fd),
        }
    }
}

impl AsFd for Sender {
    /// # Panics
    ///
    /// When the sender was closed.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.end.as_fd()
    }
}

impl AsRawFd for Sender {
    /// # Panics
    ///
    /// When the sender was closed.
    fn as_raw_fd(&self) -> RawFd {
        self.end.as_fd().as_raw_fd()
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("fd", &self.end.fd.as_ref().map(|fd| fd.as_raw_fd()))
            .finish()
    }
}
