//! A framed, duplex message channel, byte-compatible with Python's
//! `multiprocessing.connection`.
//!
//! Lines suit legacy programs; programs we control want whole messages.
//! [`pipe`] makes two connected [`Connection`]s (a Unix stream socket pair),
//! [`simplex`] a one-way [`Receiver`] and [`Sender`] (a pipe). Each message
//! arrives whole, in order, however the bytes were cut on the way.
//!
//! ```
//! use duet::channel;
//!
//! let (mut parent, mut child) = channel::pipe()?;
//! parent.send_bytes(b"ping")?;
//! assert_eq!(child.recv_bytes()?, b"ping");
//! child.send(&("pong", 2))?;
//! assert_eq!(parent.recv::<(String, u32)>()?, ("pong".to_string(), 2));
//! drop(child);
//! assert!(parent.recv_bytes().unwrap_err().is_eof());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Wire format
//!
//! Exactly what Python's `Connection.send_bytes` writes and `recv_bytes`
//! reads: a 4-byte big-endian signed length, then the payload; a payload
//! longer than 2 GiB - 1 bytes is announced by `-1` (`ff ff ff ff`) and an
//! 8-byte big-endian length. A frame of up to 4 KiB is assembled in one
//! buffer and goes out in one `send`; a larger one goes out with one
//! `sendmsg` that gathers the header and the caller's payload without
//! copying it. (Python writes header and payload in one `write` up to
//! 16 KiB and in two beyond; either way the bytes on the wire are the same,
//! and a reader never depends on how they were cut.)
//!
//! [`Connection::send`] and [`Connection::recv`] carry serde values as JSON
//! (not pickle), so the Python side pairs them with
//! `conn.send_bytes(json.dumps(value).encode())` and
//! `json.loads(conn.recv_bytes())`.
//!
//! # Children
//!
//! A child started with [`Command::channel`](crate::Command::channel) finds
//! its end with [`from_env`], which reads the descriptor number from
//! [`CHANNEL_FD_ENV`] (`DUET_CHANNEL_FD`) and checks that
//! [`CHANNEL_PID_ENV`] (`DUET_CHANNEL_PID`) is its own pid, so that its
//! children, which inherit the variables, never take an unrelated
//! descriptor 3 for the channel; the parent takes its own end with
//! [`Child::take_channel`](crate::Child::take_channel). A Python child
//! opens its end with
//! `multiprocessing.connection.Connection(int(os.environ["DUET_CHANNEL_FD"]))`.
//! Any connected stream socket also becomes a `Connection` through
//! `From<OwnedFd>`, and gives its descriptor back with
//! [`Connection::into_owned_fd`].
//!
//! # Where this differs from Python (for the better)
//!
//! - A message over [`Connection::recv_bytes_max`]'s limit is refused with
//!   [`Error::MessageTooLong`] before its payload is read, and its payload
//!   is skipped: the next receive returns the next message (Python's
//!   connection becomes unusable).
//! - [`Connection::recv_bytes_into`] with a short buffer fails with
//!   [`Error::BufferTooShort`] and leaves the message in place for a bigger
//!   buffer.
//! - The peer closing at a message boundary is [`Error::Eof`]; closing in the
//!   middle of a frame is [`Error::Truncated`], never a short message.
//! - [`Connection::recv_bytes_timeout`] gives up at a deadline and keeps the
//!   part of a message that arrived, for the next receive.
//! - Writing to a peer that is gone is `Error::Io` with `EPIPE`, never
//!   SIGPIPE (`MSG_NOSIGNAL`).
//!
//! # Deadlocks and caveats
//!
//! - **Two peers sending large messages at once.** A socket buffer holds a
//!   few hundred KiB. With plain blocking writes, two processes that each
//!   send a message larger than that before receiving would both wait for
//!   the other to read, forever. [`Connection::send_bytes`] does not block
//!   that way: while its socket buffer is full it reads whatever the peer
//!   sends into its own receive buffer (where later receives find it). The
//!   price is memory: a peer that keeps sending while we send is buffered
//!   without limit.
//! - **One-way pipes cannot do that.** A [`Sender`] blocks while the pipe is
//!   full. Two processes joined by two [`simplex`] channels that both send
//!   more than a pipe holds (64 KiB by default on Linux) before receiving
//!   deadlock; use one duplex [`pipe`] instead, or receive on a separate
//!   thread.
//! - **Waiting for a reply from a peer that waits for you.** A protocol
//!   where both sides receive first hangs like any such protocol; use
//!   [`Connection::recv_bytes_timeout`] or [`Connection::poll`] with a
//!   timeout where a peer may misbehave.
//! - **`poll` says a message has *started* to arrive**, not that it is
//!   whole; a blocking receive after it may still wait for the rest.
//! - **Limits.** [`Connection::recv_bytes`] trusts the length the peer
//!   announces (memory grows as the bytes arrive, not up front); use
//!   [`Connection::recv_bytes_max`] with peers you do not trust.
//! - **SIGPIPE on pipes.** A [`Sender`] writes with `writev`, which raises
//!   SIGPIPE when the reader is gone. The Rust runtime ignores SIGPIPE, so
//!   this is an `EPIPE` error, unless the program restored the default
//!   disposition.
//! - **Threads.** Every method takes `&mut self`; one connection is used by
//!   one thread at a time. To receive and send on different threads, give
//!   each direction its own channel.
//! - **Descriptors** are close-on-exec from birth; a child gets one only
//!   through [`Command::channel`](crate::Command::channel).

mod connection;

use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::stat::{SFlag, fstat};

pub use connection::{Connection, Receiver, Sender};

use crate::{Error, Result};

/// The environment variable through which a child learns the descriptor of
/// its end of the channel (a decimal number).
pub const CHANNEL_FD_ENV: &str = "DUET_CHANNEL_FD";

/// The environment variable that says which process [`CHANNEL_FD_ENV`] is
/// meant for: the pid of the child given the channel (a decimal number),
/// as systemd's `LISTEN_PID` guards `LISTEN_FDS`. The child's own children
/// inherit both variables but not the descriptor, and may have an
/// unrelated descriptor under that number; [`from_env`] refuses it there.
pub const CHANNEL_PID_ENV: &str = "DUET_CHANNEL_PID";

/// Makes a duplex channel: two connected [`Connection`]s, the Rust
/// counterpart of Python's `multiprocessing.Pipe()`.
///
/// Both descriptors are close-on-exec.
///
/// ```
/// let (mut a, mut b) = duet::channel::pipe()?;
/// a.send_bytes(b"hello")?;
/// b.send_bytes(b"world")?;
/// assert_eq!(b.recv_bytes()?, b"hello");
/// assert_eq!(a.recv_bytes()?, b"world");
/// assert!(!a.poll(Some(std::time::Duration::ZERO))?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// `Error::Io` when the system is out of descriptors.
pub fn pipe() -> Result<(Connection, Connection)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Connection::from(a), Connection::from(b)))
}

/// Makes a one-way channel: the receiving end first, as in Python's
/// `multiprocessing.Pipe(duplex=False)`.
///
/// Both descriptors are close-on-exec.
///
/// ```
/// let (mut rx, mut tx) = duet::channel::simplex()?;
/// tx.send(&[1, 2, 3])?;
/// assert_eq!(rx.recv::<Vec<i32>>()?, [1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// `Error::Io` when the system is out of descriptors.
pub fn simplex() -> Result<(Receiver, Sender)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((Receiver::from(r), Sender::from(w)))
}

/// Set once the descriptor named by `DUET_CHANNEL_FD` has an owner.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Returns the channel a parent handed to this process: the descriptor named
/// by [`CHANNEL_FD_ENV`] (`DUET_CHANNEL_FD`), provided [`CHANNEL_PID_ENV`]
/// (`DUET_CHANNEL_PID`) names this process.
///
/// The pid check keeps a grandchild, which inherits the variables but not
/// the descriptor, from taking an unrelated descriptor that happens to have
/// that number. A parent other than duet may set only `DUET_CHANNEL_FD`:
/// without `DUET_CHANNEL_PID` the descriptor is taken as before.
///
/// The descriptor becomes close-on-exec, so this process's own children do
/// not inherit it. It can be taken once per process.
///
/// ```no_run
/// // In a child started with duet::Command::channel():
/// let mut parent = duet::channel::from_env()?;
/// while let Ok(msg) = parent.recv_bytes() {
///     parent.send_bytes(&msg)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// `Error::Io`: `NotFound` when the variable is not set or
/// `DUET_CHANNEL_PID` names another process (the variables were inherited
/// from an ancestor), `InvalidInput` when either is not a number, `EBADF` when that descriptor is not
/// open, `InvalidInput` when it is not a socket or a pipe, `AlreadyExists`
/// when an earlier call took it.
pub fn from_env() -> Result<Connection> {
    let value = std::env::var(CHANNEL_FD_ENV).map_err(|_| {
        invalid(
            io::ErrorKind::NotFound,
            format!("{CHANNEL_FD_ENV} is not set: this process was not given a channel"),
        )
    })?;
    if let Ok(meant_for) = std::env::var(CHANNEL_PID_ENV) {
        let meant_for: u32 = meant_for.trim().parse().map_err(|_| {
            invalid(
                io::ErrorKind::InvalidInput,
                format!("{CHANNEL_PID_ENV}={meant_for:?} is not a process id"),
            )
        })?;
        let me = std::process::id();
        if meant_for != me {
            return Err(invalid(
                io::ErrorKind::NotFound,
                format!(
                    "{CHANNEL_FD_ENV} is meant for process {meant_for}, not this one ({me}): \
                     the variables were inherited from an ancestor, not given with a channel"
                ),
            ));
        }
    }
    let fd: RawFd = value
        .trim()
        .parse()
        .ok()
        .filter(|&fd| fd >= 0)
        .ok_or_else(|| {
            invalid(
                io::ErrorKind::InvalidInput,
                format!("{CHANNEL_FD_ENV}={value:?} is not a descriptor number"),
            )
        })?;
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(invalid(
            io::ErrorKind::AlreadyExists,
            format!("the channel in {CHANNEL_FD_ENV}={fd} was already taken"),
        ));
    }
    let owned = match crate::sys::adopt_inherited_fd(fd) {
        Ok(owned) => owned,
        Err(e) => {
            TAKEN.store(false, Ordering::SeqCst);
            return Err(invalid(e.kind(), format!("{CHANNEL_FD_ENV}={fd}: {e}")));
        }
    };
    let kind = fstat(&owned).map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT);
    if !matches!(kind, Ok(SFlag::S_IFSOCK | SFlag::S_IFIFO)) {
        // Not ours to close: give the number back untouched.
        let _ = owned.into_raw_fd();
        TAKEN.store(false, Ordering::SeqCst);
        return Err(invalid(
            io::ErrorKind::InvalidInput,
            format!("{CHANNEL_FD_ENV}={fd} is not a socket or a pipe"),
        ));
    }
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(Connection::from(owned))
}

fn invalid(kind: io::ErrorKind, msg: String) -> Error {
    Error::Io(io::Error::new(kind, msg))
}
