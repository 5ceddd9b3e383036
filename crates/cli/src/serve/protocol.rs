//! What travels between `serve` and its clients (`ask`, `send`, `recv`,
//! `status`, `stop`): the layout of a served directory and the names of its
//! FIFOs, the request and reply lines, the pid (state) and stop files, the
//! liveness and `ask` locks, and the waits on the FIFOs both sides use.
//!
//! ```text
//! DIR/            mode 0700 (or an existing private directory)
//!   in            FIFO: raw lines for PROG (`echo 2+2 > DIR/in`)
//!   out           FIFO: PROG's output that no `ask` claimed (`read x < DIR/out`)
//!   ctl           FIFO: `ask` requests, one JSON line each
//!   reply.PID     FIFO: one `ask` client's reply (made by the client)
//!   lock          `ask` and `send` hold an exclusive flock on it
//!   pid           serve's pid on the first line, then the state as JSON
//!   stop          written by `stop`: the grace period to use
//!   log           serve's and PROG's stderr
//! ```
//!
//! # Liveness
//!
//! `serve` holds an exclusive `flock` on the directory itself for as long
//! as it runs. A client tells a live service from a stale directory (left by
//! a serve that crashed) by trying a shared lock: no pid file guesswork, no
//! recycled pid mistaken for a server.
//!
//! # Why ask never gets another client's reply
//!
//! 1. *Concurrent asks.* `ask` holds an exclusive lock on `lock` from before
//!    it sends until it has its reply (its replies, for `ask -`), so
//!    requests never interleave. On top of that, `serve` itself handles one
//!    request at a time and frames each reply (by `--lines`, `--until`,
//!    `--quiet` or `--prompt`) on the server side.
//! 2. *A client killed mid-request.* Its reply must not reach the next
//!    client. Replies therefore never go through `out`: each `ask` makes a
//!    private FIFO `reply.PID`, names it and a unique request id in its
//!    request, and reads the reply there. `serve` collects the whole reply
//!    for a request even when its client is gone (so the late output is
//!    consumed by the request it belongs to, not left for the next one),
//!    then writes it to that FIFO: with no reader the open fails with ENXIO
//!    and the reply is dropped. A client also ignores a reply whose id is
//!    not its own (a recycled pid could meet a dead client's reply).
//!
//! 3. *A late reply.* A request that times out is answered with the
//!    timeout at once, but stays the active request: `serve` keeps framing
//!    its reply and drops it when it is complete, and sends the next
//!    request only then. The next client waits meanwhile, under its own
//!    timeout (counted from when `serve` received its request). If the late
//!    reply has not ended after the request's timeout once more, PROG is
//!    reported as not answering (in the log and in `duet status`), and with
//!    a restart policy other than `never` it is stopped and restarted.
//!
//! Output that arrives when no request is active goes to `out`; `serve`
//! reads all pending output before it sends the next request.
//!
//! Plain writers to `in` are forwarded only between requests (whole chunks
//! as they come, so write whole lines); `duet send` takes the lock too. With
//! `serve --prompt`, the next request waits for the prompt that follows
//! raw input; without it, serve cannot tell when the raw input's output
//! has ended.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use duet::fifo::FifoDir;
use duet_script::duration;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::poll::{PollFd, PollFlags, poll};
use serde::{Deserialize, Serialize};

use crate::exit::Failure;
use crate::framing::Framing;

/// Raw input FIFO.
pub const IN: &str = "in";
/// Raw output FIFO.
pub const OUT: &str = "out";
/// Request FIFO.
pub const CTL: &str = "ctl";
/// The lock file of `ask` and `send`.
pub const LOCK: &str = "lock";
/// The pid and state file.
pub const PID: &str = "pid";
/// The stop request file.
pub const STOP: &str = "stop";
/// The log file.
pub const LOG: &str = "log";
/// Prefix of reply FIFOs.
pub const REPLY_PREFIX: &str = "reply.";

/// What `serve` publishes about itself in `pid`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The serve process.
    pub pid: u32,
    /// PROG's current pid, if it is running.
    pub child: Option<u32>,
    /// PROG's argv, for people.
    pub program: Vec<String>,
    /// When serve started (seconds since the Unix epoch).
    pub started: u64,
    /// How many times PROG was restarted.
    pub restarts: u32,
    /// Whether duet created DIR (then `stop` removes it).
    pub created_dir: bool,
    /// Why PROG is reported as not answering, while it is.
    #[serde(default)]
    pub not_answering: Option<String>,
    /// serve ended because PROG stopped for good: why (DIR, its log and
    /// this file stay for `duet status`; `duet stop` or a new `duet serve`
    /// clears them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// An `ask` request, one JSON line in `ctl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Unique per request; echoed in the reply.
    pub id: String,
    /// The line to send (without its newline).
    pub line: String,
    /// Where the reply ends (`None`: serve's own framing).
    #[serde(default)]
    pub framing: Option<Framing>,
    /// How long the client waits, from when serve receives the request.
    pub timeout_ms: u64,
    /// The client's reply FIFO, a name in DIR.
    pub reply: String,
    /// The client reuses the reply FIFO for more requests and removes it
    /// itself (`ask -`, several LINEs).
    #[serde(default)]
    pub keep_fifo: bool,
    /// The line's exact bytes when they are not UTF-8 (`line` is then
    /// their lossy decoding, for the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
    /// `duet send`: the line (it may be several) is raw input, not a
    /// request: no reply is framed (PROG's output goes to `out`), and the
    /// empty reply says it was written to PROG.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
}

impl Request {
    /// The line as PROG gets it, byte for byte.
    pub fn line_bytes(&self) -> &[u8] {
        self.bytes.as_deref().unwrap_or(self.line.as_bytes())
    }

    /// Sets the line from its bytes, exact whether or not they are UTF-8.
    pub fn set_line(&mut self, line: &[u8]) {
        match std::str::from_utf8(line) {
            Ok(text) => {
                self.line = text.to_string();
                self.bytes = None;
            }
            Err(_) => {
                self.line = String::from_utf8_lossy(line).into_owned();
                self.bytes = Some(line.to_vec());
            }
        }
    }
}

/// The answer to a [`Request`], one JSON line in the reply FIFO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's id.
    pub id: String,
    /// The reply (lossily decoded as UTF-8), or what arrived before the error.
    pub output: String,
    /// `None` on success, else [`TIMED_OUT`], [`ENDED`] or [`BAD_REQUEST`].
    pub error: Option<String>,
    /// A message for people when `error` is set.
    pub message: String,
    /// The framing serve used (how the client prints the reply).
    #[serde(default)]
    pub framing: Option<Framing>,
    /// The output's exact bytes when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
}

impl Reply {
    /// A reply whose output is `output`, kept exact whether or not it is
    /// UTF-8.
    pub fn new(
        id: String,
        output: Vec<u8>,
        error: Option<String>,
        message: String,
        framing: Framing,
    ) -> Reply {
        let (output, bytes) = match String::from_utf8(output) {
            Ok(text) => (text, None),
            Err(e) => (
                String::from_utf8_lossy(e.as_bytes()).into_owned(),
                Some(e.into_bytes()),
            ),
        };
        Reply {
            id,
            output,
            error,
            message,
            framing: Some(framing),
            bytes,
        }
    }

    /// The output, byte for byte.
    pub fn output_bytes(&self) -> &[u8] {
        self.bytes.as_deref().unwrap_or(self.output.as_bytes())
    }
}

/// [`Reply::error`]: the request timed out (waiting for its reply, or for
/// its turn).
pub const TIMED_OUT: &str = "timeout";
/// [`Reply::error`]: PROG ended (or closed its output) before the reply
/// was complete.
pub const ENDED: &str = "eof";
/// [`Reply::error`]: the request cannot be carried out (its framing).
pub const BAD_REQUEST: &str = "bad-request";
/// [`Reply::error`]: the reply passed the most serve holds
/// (`duet::DEFAULT_MAX_BUFFER`) before its framing ended.
pub const TOO_LONG: &str = "too-long";

/// Reads one request line from `ctl`. The error says why it is ignored:
/// malformed, or naming a reply FIFO that is not a `reply.*` entry of DIR
/// (serve writes only there).
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let request = serde_json::from_slice::<Request>(line)
        .map_err(|e| format!("ignoring a malformed request ({e})"))?;
    if request.reply.starts_with(REPLY_PREFIX) && !request.reply.contains('/') {
        Ok(request)
    } else {
        Err(format!(
            "ignoring a request with reply FIFO {:?}",
            request.reply
        ))
    }
}

/// Asks the serve of `dir` to stop with `grace` (`stop` writes it, then
/// sends TERM; serve reads it when the signal arrives).
pub fn request_stop(dir: &FifoDir, grace: Duration) -> Result<(), Failure> {
    let mut file = dir
        .open_file(STOP, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC)
        .map_err(Failure::internal)?;
    writeln!(file, "{}", grace.as_millis())
        .map_err(|e| Failure::internal(format!("cannot write {STOP}: {e}")))
}

/// The grace period `duet stop` asked for, if it wrote one.
pub fn stop_requested(dir: &FifoDir) -> Option<Duration> {
    let mut text = String::new();
    dir.open_file(STOP, OFlag::O_RDONLY)
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_millis)
}

/// The error for a FIFO of DIR that nobody reads (or that is missing).
pub fn not_served(dir: &Path, e: duet::Error) -> Failure {
    Failure::new(
        1,
        format!(
            "nobody serves {} ({e}); start it with `duet serve {} -- PROG`",
            dir.display(),
            dir.display()
        ),
    )
}

/// A client's `failure` explained when DIR is no longer served: `duet
/// stop` ran (its stop file is there, or DIR and its FIFOs are gone) while
/// the client waited. Exit 1 naming the stop, not duet's own failure.
pub fn explain_stop(dir: &FifoDir, path: &Path, failure: Failure) -> Failure {
    if stop_requested(dir).is_some() {
        return Failure::new(
            1,
            format!(
                "{} was stopped (duet stop) while this request waited",
                path.display()
            ),
        );
    }
    if let Some(why) = read_state(dir).ok().and_then(|s| s.ended) {
        return Failure::new(1, format!("{} is no longer served: {why}", path.display()));
    }
    if !dir.path().exists() || dir.existing_fifo(CTL).is_err() {
        return Failure::new(
            1,
            format!(
                "{} is no longer served: it was stopped (duet stop) or its program ended while \
                 this request waited; see `duet status {}`",
                path.display(),
                path.display()
            ),
        );
    }
    failure
}

/// Opens a served directory as a client, with the same safety checks as
/// `serve` (private, owned by the user, no symlinks).
pub fn open_dir(path: &Path) -> Result<FifoDir, Failure> {
    FifoDir::open(path).map_err(|e| match &e {
        _ if is_shared(path) => shared_dir(path),
        duet::Error::Io(io) if io.kind() == io::ErrorKind::NotFound => Failure::new(
            1,
            format!(
                "{} does not exist; start a service with `duet serve {} -- PROG`",
                path.display(),
                path.display()
            ),
        ),
        _ => Failure::internal(e),
    })
}

/// Writes the state atomically (a new file renamed over `pid`).
pub fn write_state(dir: &FifoDir, state: &State) -> Result<(), Failure> {
    let tmp = format!("{PID}.new");
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
    let mut file = dir.open_file(&tmp, flags).map_err(Failure::internal)?;
    let json = serde_json::to_string(state).map_err(Failure::internal)?;
    writeln!(file, "{}\n{json}", state.pid)
        .map_err(|e| Failure::internal(format!("cannot write the pid file: {e}")))?;
    nix::fcntl::renameat(dir.as_fd(), tmp.as_str(), dir.as_fd(), PID)
        .map_err(|e| Failure::internal(format!("cannot rename the pid file: {e}")))?;
    Ok(())
}

/// Reads the state from `pid`.
pub fn read_state(dir: &FifoDir) -> Result<State, Failure> {
    let mut text = String::new();
    dir.open_file(PID, OFlag::O_RDONLY)
        .map_err(|e| Failure::new(1, format!("{e}; is this a served directory?")))?
        .read_to_string(&mut text)
        .map_err(|e| Failure::internal(format!("cannot read the pid file: {e}")))?;
    let json = text.lines().nth(1).unwrap_or("");
    serde_json::from_str(json).map_err(|e| {
        Failure::internal(format!(
            "the pid file in {} is damaged ({e}); remove the directory if no serve runs",
            dir.path().display()
        ))
    })
}

/// A descriptor of the directory itself, for the liveness lock.
fn dir_handle(dir: &FifoDir) -> Result<OwnedFd, Failure> {
    nix::fcntl::openat(
        dir.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Failure::internal(format!("cannot open {}: {e}", dir.path().display())))
}

/// Takes the liveness lock for a serve: `None` when another serve holds it.
pub fn claim(dir: &FifoDir) -> Result<Option<Flock<OwnedFd>>, Failure> {
    match Flock::lock(dir_handle(dir)?, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(Failure::internal(format!(
            "cannot lock {}: {e}",
            dir.path().display()
        ))),
    }
}

/// True when a serve holds `dir`.
pub fn is_alive(dir: &FifoDir) -> Result<bool, Failure> {
    match Flock::lock(dir_handle(dir)?, FlockArg::LockSharedNonblock) {
        Ok(_) => Ok(false),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, e)) => Err(Failure::internal(format!(
            "cannot lock {}: {e}",
            dir.path().display()
        ))),
    }
}

/// Waits up to `timeout` for the serve holding `dir` to exit. True when it did.
pub fn wait_gone(dir: &FifoDir, timeout: Duration) -> Result<bool, Failure> {
    let fd = dir_handle(dir)?;
    Ok(lock_within(
        move || Flock::lock(fd, FlockArg::LockShared).map_err(|(_, e)| e),
        timeout,
    )?
    .is_some())
}

/// Takes the exclusive `ask` lock, waiting up to `timeout`.
pub fn lock_asks(dir: &FifoDir, timeout: Duration) -> Result<Flock<File>, Failure> {
    let file = dir
        .open_file(LOCK, OFlag::O_RDWR | OFlag::O_CREAT)
        .map_err(Failure::internal)?;
    lock_within(
        move || Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e),
        timeout,
    )?
    .ok_or_else(|| {
        Failure::new(
            crate::exit::TIMEOUT,
            format!(
                "waited {} for the lock of {}: another client holds it",
                duration::show(timeout),
                dir.path().display()
            ),
        )
    })
}

/// Runs a blocking lock on a helper thread so that the wait can end at a
/// deadline: `flock` itself has no timeout. A lock obtained after the
/// deadline is dropped (released) by the thread.
fn lock_within<T: Send + 'static>(
    lock: impl FnOnce() -> nix::Result<T> + Send + 'static,
    timeout: Duration,
) -> Result<Option<T>, Failure> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(lock());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(held)) => Ok(Some(held)),
        Ok(Err(e)) => Err(Failure::internal(format!("cannot lock: {e}"))),
        Err(_) => Ok(None),
    }
}

/// Writes all of `bytes` to a non-blocking descriptor, waiting for room up
/// to `deadline`.
pub fn write_all_until(file: &mut File, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_for(file, PollFlags::POLLOUT, deadline)? {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no room to write"));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until `file` polls ready for `flags` or `deadline` passes.
pub fn wait_for(file: &File, flags: PollFlags, deadline: Instant) -> io::Result<bool> {
    loop {
        let mut fds = [PollFd::new(file.as_fd(), flags)];
        match poll(&mut fds, duet::supervise::poll_timeout(Some(deadline))) {
            Ok(0) => {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
            }
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// True when `path` is a directory that others may write to (`/tmp`, a
/// group-writable directory): never a served directory.
pub fn is_shared(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o022 != 0)
}

/// The refusal of a shared directory: a served directory is private to
/// its user, so the advice is another path, not a `chmod` of, say, /tmp.
pub fn shared_dir(path: &Path) -> Failure {
    let example = Path::new("/tmp").join(format!("calc-{}", nix::unistd::getuid()));
    Failure::new(
        1,
        format!(
            "{} is shared (others may write to it): a served directory must be private; choose \
             a path of its own, such as {} (`duet serve` creates it, mode 0700)",
            path.display(),
            example.display()
        ),
    )
}
