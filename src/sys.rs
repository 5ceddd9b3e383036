//! The parent-side syscall layer: thin, typed wrappers over the system calls
//! duet needs. Together with `spawn::after_fork` this is the only place with
//! `unsafe`; everything above it is safe code.
//!
//! Every descriptor created here is close-on-exec from birth and owned
//! (`OwnedFd`), so no other thread's fork can inherit it by accident.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::unistd::Pid;

use crate::ExitStatus;

/// A pipe whose both ends are close-on-exec: `(read end, write end)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// Opens `/dev/null` for reading and writing, close-on-exec.
pub(crate) fn dev_null() -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    Ok(file.into())
}

/// Puts `fd` in non-blocking mode (the conversation waits with `poll`).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Sets a pipe's capacity (`F_SETPIPE_SZ`); the kernel rounds it up to a
/// power of two pages and refuses sizes over `/proc/sys/fs/pipe-max-size`.
pub(crate) fn set_pipe_size(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let bytes = i32::try_from(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    fcntl(fd, FcntlArg::F_SETPIPE_SZ(bytes))?;
    Ok(())
}

/// Duplicates `fd` (close-on-exec).
pub(crate) fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

/// `read(2)`, retried on `EINTR`. `WouldBlock` comes back as an error.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => continue,
            // A pty master reads EIO once every slave descriptor is closed:
            // for a reader that is the end of the stream.
            Err(Errno::EIO) => return Ok(0),
            other => return Ok(other?),
        }
    }
}

/// `write(2)`, retried on `EINTR`. Writing to a closed pipe is `EPIPE`,
/// never SIGPIPE: see [`write_vectored`].
pub(crate) fn write(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    write_vectored(fd, &[io::IoSlice::new(data)])
}

/// Up to this many bytes, [`write2`] copies its two slices into one buffer:
/// a single-segment write is cheaper than a two-segment one.
const WRITE2_COPY: usize = 512;

/// Writes two slices (a line and its newline) in one system call, so the
/// line reaches the pipe in one piece.
pub(crate) fn write2(fd: BorrowedFd<'_>, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let len = a.len() + b.len();
    if len <= WRITE2_COPY {
        let mut joined = [0u8; WRITE2_COPY];
        joined[..a.len()].copy_from_slice(a);
        joined[a.len()..len].copy_from_slice(b);
        return write(fd, &joined[..len]);
    }
    write_vectored(fd, &[io::IoSlice::new(a), io::IoSlice::new(b)])
}

/// `pwritev2`'s flag "never raise SIGPIPE" (Linux 6.18): a closed pipe is
/// just `EPIPE`, in the same single system call.
const RWF_NOSIGNAL: libc::c_int = 0x100;

/// Whether the kernel takes [`RWF_NOSIGNAL`]: 0 not known yet, 1 yes, 2 no.
static NOSIGNAL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// One vectored write, retried on `EINTR`, that never raises SIGPIPE.
///
/// Where the kernel has `RWF_NOSIGNAL` this is a single `pwritev2(2)`.
/// Elsewhere it is `writev(2)` inside a [`SigpipeGuard`], which costs a
/// `sigaction` query per write (and, only when the host program does not
/// ignore SIGPIPE, a block/consume/restore of the signal).
fn write_vectored(fd: BorrowedFd<'_>, iov: &[io::IoSlice<'_>]) -> io::Result<usize> {
    use std::sync::atomic::Ordering;
    if NOSIGNAL.load(Ordering::Relaxed) != 2 {
        loop {
            // SAFETY: IoSlice is ABI-compatible with iovec; the slices are
            // borrowed for the call and the kernel only reads them. Offset
            // -1 means "the current position", as write(2) does.
            let rc = unsafe {
                libc::pwritev2(
                    fd.as_raw_fd(),
                    iov.as_ptr().cast(),
                    iov.len() as libc::c_int,
                    -1,
                    RWF_NOSIGNAL,
                )
            };
            if rc >= 0 {
                NOSIGNAL.store(1, Ordering::Relaxed);
                return Ok(rc as usize);
            }
            match Errno::last() {
                Errno::EINTR => continue,
                // An older kernel refuses the flag: remember, fall back.
                Errno::EOPNOTSUPP | Errno::EINVAL | Errno::ENOSYS
                    if NOSIGNAL.load(Ordering::Relaxed) == 0 =>
                {
                    NOSIGNAL.store(2, Ordering::Relaxed);
                    break;
                }
                Errno::EOPNOTSUPP => break,
                e => return Err(e.into()),
            }
        }
    }
    write_guarded(fd, iov)
}

/// `writev(2)` inside a [`SigpipeGuard`]: the path for kernels without
/// `RWF_NOSIGNAL`.
fn write_guarded(fd: BorrowedFd<'_>, iov: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let _guard = SigpipeGuard::new();
    loop {
        match nix::sys::uio::writev(fd, iov) {
            Err(Errno::EINTR) => continue,
            other => return Ok(other?),
        }
    }
}

/// While alive, SIGPIPE is blocked for this thread when its disposition is
/// not "ignore"; on drop a SIGPIPE raised by our write is consumed and the
/// mask restored. The Rust runtime ignores SIGPIPE, so in the common case
/// this costs one `sigaction` query and nothing else.
struct SigpipeGuard {
    restore: Option<SigSet>,
}

impl SigpipeGuard {
    fn new() -> Self {
        if sigpipe_ignored() {
            return SigpipeGuard { restore: None };
        }
        let mut only_pipe = SigSet::empty();
        only_pipe.add(Signal::SIGPIPE);
        let mut old = SigSet::empty();
        if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&only_pipe), Some(&mut old)).is_err() {
            return SigpipeGuard { restore: None };
        }
        // A SIGPIPE already pending before our write is not ours to consume.
        if old.contains(Signal::SIGPIPE) || pending_sigpipe() {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            return SigpipeGuard { restore: None };
        }
        SigpipeGuard { restore: Some(old) }
    }
}

impl Drop for SigpipeGuard {
    fn drop(&mut self) {
        if let Some(old) = self.restore.take() {
            if pending_sigpipe() {
                let mut only_pipe = SigSet::empty();
                only_pipe.add(Signal::SIGPIPE);
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: the set and timespec are valid for the call; a null
                // siginfo pointer is allowed.
                unsafe { libc::sigtimedwait(only_pipe.as_ref(), std::ptr::null_mut(), &zero) };
            }
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
    }
}

fn sigpipe_ignored() -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: a null new action only queries; `old` is written on success.
    let rc = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: sigaction returned 0, so it initialised `old`.
    rc == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

fn pending_sigpipe() -> bool {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set it is given.
    if unsafe { libc::sigpending(set.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: initialised by the successful sigpending above.
    unsafe { libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1 }
}

/// Milliseconds left until `deadline` for `poll(2)`, rounded *up* so that a
/// wait never ends just before its deadline and spins.
pub(crate) fn poll_timeout(deadline: Option<Instant>) -> PollTimeout {
    let Some(deadline) = deadline else {
        return PollTimeout::NONE;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = left.as_nanos().div_ceil(1_000_000);
    PollTimeout::try_from(ms.min(i32::MAX as u128)).unwrap_or(PollTimeout::MAX)
}

/// `poll(2)` until `deadline` (`None`: forever), retried on `EINTR` with the
/// time that is left. Returns the number of ready descriptors (0: deadline).
pub(crate) fn poll(fds: &mut [PollFd<'_>], deadline: Option<Instant>) -> io::Result<usize> {
    loop {
        match nix::poll::poll(fds, poll_timeout(deadline)) {
            Ok(n) => return Ok(n as usize),
            Err(Errno::EINTR) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(0);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A `PollFd` for `fd` waiting for `events`.
pub(crate) fn poll_fd(fd: BorrowedFd<'_>, events: PollFlags) -> PollFd<'_> {
    PollFd::new(fd, events)
}

/// A deadline `d` from now; `None` when the addition overflows (wait forever).
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// `pidfd_open(2)`: a descriptor that becomes readable when the process
/// exits, and that signals exactly this process even after its pid is reused.
pub(crate) fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor (close-on-exec) that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)` with `flags`; `None` sends no signal and only
/// checks that the target exists.
fn pidfd_send(pidfd: BorrowedFd<'_>, signal: Option<Signal>, flags: u32) -> io::Result<()> {
    let signal = signal.map_or(0, |s| s as libc::c_int);
    // SAFETY: plain system call; a null siginfo means "as kill(2) would".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Signals exactly the process behind `pidfd`, never a recycled pid.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> io::Result<()> {
    pidfd_send(pidfd, Some(signal), 0)
}

/// `PIDFD_SIGNAL_PROCESS_GROUP` (Linux 6.9).
const PIDFD_SIGNAL_PROCESS_GROUP: u32 = 4;

/// Whether the kernel takes [`PIDFD_SIGNAL_PROCESS_GROUP`]: 0 not known
/// yet, 1 yes, 2 no.
static GROUP_BY_PIDFD: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Signals the process group whose id is the pid of the process behind
/// `pidfd` (`None`: only checks that the group has a member).
///
/// The kernel resolves the group through the pidfd's `struct pid`, not
/// through a number: this reaches exactly the group that process led, even
/// after the leader was reaped and its number reused, and fails with
/// `ESRCH` once the group is empty (a zombie member still counts). `None`
/// when the kernel is older than 6.9 and cannot do it.
pub(crate) fn pidfd_signal_group(
    pidfd: BorrowedFd<'_>,
    signal: Option<Signal>,
) -> Option<io::Result<()>> {
    use std::sync::atomic::Ordering;
    if GROUP_BY_PIDFD.load(Ordering::Relaxed) == 2 {
        return None;
    }
    match pidfd_send(pidfd, signal, PIDFD_SIGNAL_PROCESS_GROUP) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // The only invalid argument here is a flag the kernel lacks.
            GROUP_BY_PIDFD.store(2, Ordering::Relaxed);
            None
        }
        other => {
            GROUP_BY_PIDFD.store(1, Ordering::Relaxed);
            Some(other)
        }
    }
}

/// The pid of the process behind `pidfd` while it has not exited (the
/// `Pid:` line of its fdinfo; the kernel writes -1 once the process is
/// gone), `None` otherwise.
pub(crate) fn pidfd_pid(pidfd: BorrowedFd<'_>) -> Option<Pid> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    let pid: i32 = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))?
        .trim()
        .parse()
        .ok()?;
    (pid > 0).then(|| Pid::from_raw(pid))
}

/// `kill(-pgid, signal)`: signals a whole process group by number. Only
/// for kernels without [`pidfd_signal_group`], and only while the group's
/// leader is an unreaped child of ours, whose zombie keeps the number from
/// being reused.
pub(crate) fn signal_group(pgid: Pid, signal: Signal) -> io::Result<()> {
    Ok(nix::sys::signal::killpg(pgid, signal)?)
}

/// `waitid(P_PIDFD, ...)` with `flags`; `Ok(None)` when the child has not
/// exited (only with `WNOHANG`).
fn waitid_pidfd(pidfd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid value; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain system call; `info` outlives it.
        let rc = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                flags | libc::WEXITED,
            )
        };
        if rc < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e.into()),
            }
        }
        // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zeroed,
        // si_pid 0, when nothing has exited yet under WNOHANG).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        return Ok(Some(match info.si_code {
            libc::CLD_EXITED => ExitStatus::from_code(status),
            code => ExitStatus::from_signal(status, code == libc::CLD_DUMPED),
        }));
    }
}

/// Reaps the child behind `pidfd` if it has exited (`block == false`), or
/// waits until it does. Waits through the pidfd, never by pid, so a pid
/// that was reaped elsewhere and reused can never yield a stranger's
/// status. `ECHILD` when the child was reaped elsewhere (SIGCHLD ignored,
/// or another `waitpid` in the program): see [`pidfd_exit_status`].
pub(crate) fn wait_pidfd(pidfd: BorrowedFd<'_>, block: bool) -> io::Result<Option<ExitStatus>> {
    waitid_pidfd(pidfd, if block { 0 } else { libc::WNOHANG })
}

/// True while the child behind `pidfd` is ours and not reaped (running, or
/// a zombie): its pid, and the group id it leads, cannot be reused.
pub(crate) fn unreaped(pidfd: BorrowedFd<'_>) -> bool {
    waitid_pidfd(pidfd, libc::WNOHANG | libc::WNOWAIT).is_ok()
}

/// `struct pidfd_info` up to `exit_code` (`PIDFD_INFO_SIZE_VER0`).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    ids: [u32; 11],
    exit_code: i32,
}
const _: () = assert!(std::mem::size_of::<PidfdInfo>() == 64);

/// `PIDFD_GET_INFO`: `_IOWR(0xFF, 11, struct pidfd_info)` for 64 bytes.
const PIDFD_GET_INFO: libc::c_ulong = 0xC040_FF0B;
const PIDFD_INFO_EXIT: u64 = 1 << 3;

/// The exit status the kernel keeps for a pidfd once its process has been
/// reaped, by anyone (Linux 6.15); `None` before that or on older kernels.
pub(crate) fn pidfd_exit_status(pidfd: BorrowedFd<'_>) -> Option<ExitStatus> {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_EXIT,
        ..PidfdInfo::default()
    };
    // SAFETY: PIDFD_GET_INFO reads and writes a pidfd_info of the size its
    // number encodes (64 bytes, the layout above); `info` outlives the call.
    let rc = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_INFO, &mut info) };
    (rc == 0 && info.mask & PIDFD_INFO_EXIT != 0)
        .then(|| ExitStatus::from_wait_status(info.exit_code))
}

/// Blocks every signal for this thread; returns the mask to restore. Used
/// around process creation so that no signal handler of the parent can run
/// in the child before it has reset its dispositions.
pub(crate) fn block_all_signals() -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    Ok(old)
}

/// Restores a mask saved by [`block_all_signals`].
pub(crate) fn restore_signals(old: &SigSet) {
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(old), None);
}

/// Bits of the word [`flag_signal_senders`] sets: the kernel sent the
/// signal (`SI_KERNEL`: a terminal's ^C, ^\\, resize or hangup, sent to its
/// whole foreground process group).
pub(crate) const SENT_BY_KERNEL: u8 = 1;
/// The same: a process sent it (`kill`, `sigqueue`, a pidfd, ...).
pub(crate) const SENT_BY_PROCESS: u8 = 2;

/// Installs a handler for `signal` that ORs into `senders` who sent each
/// delivery ([`SENT_BY_KERNEL`] or [`SENT_BY_PROCESS`]), read from the
/// delivery's `si_code`. The handler does nothing else; unregister it with
/// `signal_hook::low_level::unregister`.
pub(crate) fn flag_signal_senders(
    signal: Signal,
    senders: std::sync::Arc<std::sync::atomic::AtomicU8>,
) -> io::Result<signal_hook::SigId> {
    let action = move |info: &libc::siginfo_t| {
        let bit = if info.si_code == libc::SI_KERNEL {
            SENT_BY_KERNEL
        } else {
            SENT_BY_PROCESS
        };
        senders.fetch_or(bit, std::sync::atomic::Ordering::SeqCst);
    };
    // SAFETY: the action only reads the siginfo it is given and does one
    // atomic read-modify-write: no allocation, no lock, no panic, so it is
    // async-signal-safe. The handler stays valid for as long as it is
    // registered (the registry owns the closure and its Arc).
    unsafe { signal_hook_registry::register_sigaction(signal as libc::c_int, action) }
}

/// The soft limit on open descriptors, for the after-fork close loop used
/// when `close_range(2)` is missing.
pub(crate) fn max_fds() -> RawFd {
    use nix::sys::resource::{Resource, getrlimit};
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft.min(1 << 20) as RawFd)
        .unwrap_or(1024)
}

/// Opens a pseudo-terminal pair: `(master, slave)`, both close-on-exec.
/// The slave is opened through the master (`TIOCGPTPEER`), so no path is
/// looked up and no other process can slip in between.
pub(crate) fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::pty::{grantpt, posix_openpt, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags as its argument and returns a new fd.
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: PtyMaster owned this descriptor; into_raw_fd gave up that ownership.
    let master = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    // SAFETY: the ioctl returned a new descriptor that we own.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    Ok((master, slave))
}

/// True when `fd` is the master side of a pseudo-terminal (`TIOCGPTN`
/// answers only there; a serial port or a pty's slave refuses it).
pub(crate) fn is_pty_master(fd: BorrowedFd<'_>) -> bool {
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int that outlives the call.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut number) == 0 }
}

/// Shuts down the writing side of `fd` when it is a socket (the peer reads
/// end-of-file even while another descriptor of the socket stays open);
/// nothing otherwise.
pub(crate) fn shutdown_write(fd: BorrowedFd<'_>) {
    let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Write);
}

/// Sets a terminal's window size (`TIOCSWINSZ`).
pub(crate) fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that outlives the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads a terminal's window size (`TIOCGWINSZ`): `(rows, cols)`.
pub(crate) fn window_size(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct that outlives the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((size.ws_row, size.ws_col))
}

/// A connected pair of Unix stream sockets, both close-on-exec.
pub(crate) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// One `read(2)` of at most `max` bytes appended to `data`, into its
/// spare capacity (reserved by the caller; never zeroed first), retried on
/// `EINTR`. `WouldBlock` comes back as an error; `Ok(0)` is end-of-file
/// (also a pty master's `EIO` once the child side is closed).
///
/// # Panics
///
/// When `max` is more than `data`'s spare capacity.
pub(crate) fn read_append(fd: BorrowedFd<'_>, data: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let spare = &mut data.spare_capacity_mut()[..max];
    loop {
        // SAFETY: `spare` is memory this function borrows exclusively, valid
        // for writes of `spare.len()` bytes; the kernel writes at most that.
        let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        if n >= 0 {
            // SAFETY: read(2) initialised the first `n` bytes of the spare
            // capacity, which directly follow the vector's length.
            unsafe { data.set_len(data.len() + n as usize) };
            return Ok(n as usize);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::EIO => return Ok(0),
            e => return Err(e.into()),
        }
    }
}

/// One `readv(2)`: at most `want` bytes appended to `msg` (into its spare
/// capacity, which need not be initialised: a large message is never
/// zeroed first), then into `ahead`. Returns the total read.
///
/// # Panics
///
/// When `want` is more than `msg`'s spare capacity.
pub(crate) fn read_split(
    fd: BorrowedFd<'_>,
    msg: &mut Vec<u8>,
    want: usize,
    ahead: &mut [u8],
) -> nix::Result<usize> {
    let spare = &mut msg.spare_capacity_mut()[..want];
    let iov = [
        nix::libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        },
        nix::libc::iovec {
            iov_base: ahead.as_mut_ptr().cast(),
            iov_len: ahead.len(),
        },
    ];
    let count = if ahead.is_empty() { 1 } else { 2 };
    // SAFETY: each iovec describes memory this function borrows exclusively
    // (`spare` and `ahead`) and is valid for writes of its length; the
    // kernel writes at most that much and does not keep the pointers.
    let n = unsafe { nix::libc::readv(fd.as_raw_fd(), iov.as_ptr(), count) };
    let n = Errno::result(n)? as usize;
    let into_msg = n.min(want);
    // SAFETY: readv fills the iovecs in order, so the first `into_msg` bytes
    // of the spare capacity were written by the kernel.
    unsafe { msg.set_len(msg.len() + into_msg) };
    Ok(n)
}

/// Takes ownership of a descriptor this process inherited by number (the
/// channel's `DUET_CHANNEL_FD`). Fails with `EBADF` when it is not open.
///
/// The caller must take each inherited number once and only when nothing
/// else in the process owns it: `channel::from_env` guards that.
pub(crate) fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD reads a flag of a descriptor number and touches no
    // memory; on a number that is not open it fails with EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open, and by this function's contract no
    // other owner exists in this process.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The descriptor-owning types whose [`AsRawFd::as_raw_fd`] always names
/// the same open descriptor, owned by the value for as long as it lives:
/// what tokio's `AsyncFd::register` requires. The whole list: `OwnedFd`
/// (here), a child's stdin (`driver::Input`) and a child's pidfd
/// (`process::Process`), each implemented next to its type, which keeps its
/// one descriptor from creation to drop. A new implementation is a promise
/// that [`register`] relies on: make it only for a type that keeps that
/// promise, next to the type, and add it to this list.
#[cfg(feature = "tokio")]
pub(crate) trait OwnsFd: AsRawFd {}

#[cfg(feature = "tokio")]
impl OwnsFd for OwnedFd {}

/// Registers `inner`'s descriptor with the current tokio runtime's reactor
/// for `interest`. On failure `inner` comes back with the error.
///
/// # Panics
///
/// Outside a runtime, or in one built without IO: callers check
/// `Handle::try_current` first.
#[cfg(feature = "tokio")]
pub(crate) fn register<T: OwnsFd>(
    inner: T,
    interest: ::tokio::io::Interest,
) -> Result<::tokio::io::unix::AsyncFd<T>, (T, io::Error)> {
    // SAFETY: `T: OwnsFd` owns its descriptor, open and unchanged until it
    // is dropped, which `AsyncFd` does only after it deregistered it.
    unsafe { ::tokio::io::unix::AsyncFd::register_with_interest(inner, interest) }
        .map_err(|e| e.into_parts())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    static TARGET_TID: AtomicI64 = AtomicI64::new(-1);
    static HITS: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn count_sigpipe(_: libc::c_int) {
        // SAFETY: gettid is async-signal-safe and takes no arguments.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        if tid == TARGET_TID.load(Ordering::SeqCst) {
            HITS.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn set_sigpipe(handler: libc::sighandler_t) {
        // SAFETY: a zeroed sigaction with a valid handler and empty mask;
        // the old action is not needed.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGPIPE, &action, std::ptr::null_mut());
        }
    }

    /// The fallback path for kernels without RWF_NOSIGNAL, with a host that
    /// does not ignore SIGPIPE: the write is EPIPE and the SIGPIPE it raised
    /// is consumed, never delivered (a handler that counts only this
    /// thread's SIGPIPEs stands in for the default action, which would kill
    /// the test run).
    #[test]
    fn guarded_write_to_a_closed_pipe_is_epipe_and_its_signal_never_arrives() {
        let (r, w) = pipe().unwrap();
        drop(r);
        // SAFETY: gettid takes no arguments.
        TARGET_TID.store(unsafe { libc::syscall(libc::SYS_gettid) }, Ordering::SeqCst);
        set_sigpipe(count_sigpipe as *const () as libc::sighandler_t);
        let result = write_guarded(w.as_fd(), &[io::IoSlice::new(b"x")]);
        set_sigpipe(libc::SIG_IGN);
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EPIPE));
        assert_eq!(HITS.load(Ordering::SeqCst), 0, "SIGPIPE reached the thread");
    }

    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn write2_sends_both_slices_whole_on_either_side_of_the_copy_limit() {
        for len in [0, 1, WRITE2_COPY - 2, WRITE2_COPY - 1, WRITE2_COPY, 4000] {
            let (r, w) = pipe().unwrap();
            let line = vec![b'a'; len];
            assert_eq!(write2(w.as_fd(), &line, b"\n").unwrap(), len + 1);
            let mut got = vec![0; len + 2];
            let n = read(r.as_fd(), &mut got).unwrap();
            assert_eq!(got[..n], [&line[..], b"\n"].concat()[..], "length {len}");
        }
    }
}
