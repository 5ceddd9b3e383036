//! Process creation and the child's path from creation to `execve`.
//!
//! # Why this code is so restricted
//!
//! The child runs either in a copy of a possibly multi-threaded parent
//! (`fork`) or *inside the parent's memory* while the parent thread waits
//! (`clone(CLONE_VM | CLONE_VFORK)`). In both cases another thread may have
//! held the allocator's lock, the logger's lock or any other lock at the
//! moment of creation, and in the vfork case every write lands in the
//! parent's memory. So between creation and `execve` the child:
//!
//! - calls only async-signal-safe functions (`sigaction`, `sigprocmask`,
//!   `fcntl`, `dup2`, `close_range`/`close`, `setgroups`, `setgid`,
//!   `setuid`, `prlimit`, `umask`, `setsid`, `setpgid`, `ioctl`, `chdir`,
//!   `getpid`, `execve`, `write`, `_exit`);
//! - changes credentials with the raw system calls, never libc's
//!   wrappers: POSIX wants `setuid`, `setgid` and `setgroups` to switch
//!   every thread of a process, so glibc's wrappers take its thread-list
//!   lock and signal each thread it knows of. Those threads are the
//!   parent's (the child shares or copies its memory), and the lock may
//!   have been held by one of them when the child was created. The raw
//!   call changes this one task, which is all the child is;
//! - allocates nothing, formats nothing, logs nothing, panics never, and
//!   never returns into caller code: it execs or `_exit`s;
//! - reads only the [`ChildPlan`] that the parent prepared before creation.
//!
//! A failure is reported to the parent as an 8-byte frame on a close-on-exec
//! pipe (`errno`, step, candidate index); end-of-file on that pipe means the
//! exec succeeded.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::libc::{self, c_char, c_int, c_void};

/// The most digits a pid has (`pid_t` is a positive `i32`): the room the
/// parent leaves in [`ChildPlan::pid_slot`].
pub(crate) const PID_DIGITS: usize = 10;

/// What the child does, as plain integers and pointers into memory the
/// parent owns for the whole creation. `Copy`, so nothing is dropped in the
/// child.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChildPlan {
    /// Null-terminated array of program paths to try in order (PATH search).
    pub candidates: *const *const c_char,
    pub argv: *const *const c_char,
    pub envp: *const *const c_char,
    /// Directory to change to, or null.
    pub cwd: *const c_char,
    /// Descriptor moves, done in order: `n_moves` of them.
    pub moves: *const Move,
    pub n_moves: usize,
    /// Room for `n_moves` descriptor numbers (the sources as moved out of
    /// the way), written by the child.
    pub sources: *mut RawFd,
    /// The descriptors the child keeps, ascending, no duplicates: 0, 1, 2
    /// and every target. Every other one is closed, except the error pipe.
    pub keep: *const RawFd,
    pub n_keep: usize,
    /// Above the highest descriptor kept: where copies made out of the
    /// way go.
    pub first_free: RawFd,
    pub err_fd: RawFd,
    /// The error pipe's number is a target: move it out of the way first.
    pub lift_err: bool,
    /// After the moves, make 2 a duplicate of 1 (`2>&1`), whatever 1 is.
    pub stderr_to_stdout: bool,
    /// Where the child writes its own pid in decimal, NUL-terminated, into
    /// the value of an environment entry (room for `PID_DIGITS` digits and
    /// the NUL); null for none. In the vfork case this is the parent's
    /// buffer, which it does not read while the child runs.
    pub pid_slot: *mut u8,
    /// Upper bound for the close loop when `close_range` is unavailable.
    pub max_fds: RawFd,
    /// Close with the loop even where `close_range` works (duet's own
    /// tests of that fallback).
    pub close_by_loop: bool,
    /// Supplementary groups to set (`n_groups` of them), when `set_groups`.
    pub groups: *const libc::gid_t,
    pub n_groups: usize,
    pub set_groups: bool,
    /// Clear the supplementary groups if privileged (a uid is set and the
    /// groups are not): as std does, so root's groups do not outlive the
    /// change of user.
    pub drop_groups: bool,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
    /// Resource limits, `n_rlimits` of them.
    pub rlimits: *const Rlimit,
    pub n_rlimits: usize,
    pub umask: Option<libc::mode_t>,
    /// Start a new session (implies a new process group).
    pub setsid: bool,
    /// After `setsid`, make descriptor 0 the controlling terminal.
    pub controlling_tty: bool,
    /// Start a new process group.
    pub process_group: bool,
}

/// One `dup2(source, target)` of the child's descriptor plan.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Move {
    pub source: RawFd,
    pub target: RawFd,
    /// An earlier move's target is this source's number: copy the source
    /// above every target before any move, or that move would clobber it.
    pub lift: bool,
}

/// One resource limit for `prlimit`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rlimit {
    pub resource: c_int,
    pub limit: libc::rlimit64,
}

/// Plans `(source, target)` moves done in this order: marks the sources an
/// earlier move would clobber. Only those are copied out of the way in the
/// child, since each copy needs a free descriptor (with few left below the
/// limit, copying every source failed with `EMFILE`).
pub(crate) fn plan_moves(pairs: &[(RawFd, RawFd)]) -> Vec<Move> {
    pairs
        .iter()
        .enumerate()
        .map(|(i, &(source, target))| Move {
            source,
            target,
            lift: pairs[..i].iter().any(|&(_, earlier)| earlier == source),
        })
        .collect()
}

/// The descriptors a child keeps, ascending and without duplicates: 0, 1
/// and 2 (inherited when not set) and every target.
pub(crate) fn plan_keep(pairs: &[(RawFd, RawFd)]) -> Vec<RawFd> {
    let mut keep: Vec<RawFd> = [0, 1, 2]
        .into_iter()
        .chain(pairs.iter().map(|&(_, t)| t))
        .collect();
    keep.sort_unstable();
    keep.dedup();
    keep
}

/// The steps the child reports, by number, in its error frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum Step {
    Fds = 1,
    Session = 2,
    Chdir = 3,
    Exec = 4,
    Signals = 5,
    Groups = 6,
    Gid = 7,
    Uid = 8,
    /// The index is the limit's, in the plan's order.
    Rlimit = 9,
}

impl Step {
    pub(crate) fn from_code(code: u16) -> Option<Step> {
        Some(match code {
            1 => Step::Fds,
            2 => Step::Session,
            3 => Step::Chdir,
            4 => Step::Exec,
            5 => Step::Signals,
            6 => Step::Groups,
            7 => Step::Gid,
            8 => Step::Uid,
            9 => Step::Rlimit,
            _ => return None,
        })
    }
}

/// How to create the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// `clone(CLONE_VM | CLONE_VFORK)`: no page tables are copied, so the
    /// cost does not grow with the parent's memory.
    Vfork,
    /// A copy of the parent, as `fork` makes: `clone3` without `CLONE_VM`,
    /// or `clone` where `clone3` is refused (kernels before 5.3, container
    /// seccomp profiles that answer `ENOSYS`).
    Fork,
}

const CHILD_STACK: usize = 64 * 1024;

/// Signals are numbered 1 to 64 on Linux.
const NSIG: c_int = 65;

/// `struct clone_args` up to `tls` (`CLONE_ARGS_SIZE_VER0`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Creates the child, which runs `plan` and execs. Returns its pid and its
/// pidfd.
///
/// The pidfd comes from the creation itself (`CLONE_PIDFD`), never from
/// opening the pid afterwards: by then the child may have exited and been
/// reaped (SIGCHLD ignored), and the pid may name another process. It is
/// close-on-exec, and the child, whose descriptor table was copied before
/// the pidfd existed, does not have it.
///
/// All signals are blocked in the calling thread while the child is
/// created, so no parent handler runs in the child; the child resets
/// dispositions and unblocks before it execs. `legacy` makes the fork path
/// skip `clone3` (duet's own tests of that fallback).
pub(crate) fn create(
    plan: &ChildPlan,
    method: Method,
    legacy: bool,
) -> io::Result<(libc::pid_t, OwnedFd)> {
    // Allocated before creation: the child runs on it, except on the
    // clone3 path, where it continues on (a copy of) this thread's stack.
    let mut stack = vec![0u8; CHILD_STACK];
    // The stack grows down; keep the top 16-byte aligned.
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK) & !15;
    let mut pidfd: c_int = -1;
    let old = crate::sys::block_all_signals()?;
    let with_stack = |flags: c_int, pidfd: &mut c_int| {
        // SAFETY: `child_entry` only performs the async-signal-safe steps
        // described above on `plan`, which outlives the call: with
        // CLONE_VFORK this thread is suspended until the child execs or
        // exits, and without CLONE_VM the child has its own copy. The stack
        // is ours and unused by anyone else. With CLONE_PIDFD the kernel
        // stores the new pidfd through the parent_tid pointer; the TLS and
        // child_tid arguments are unused without their flags.
        unsafe {
            libc::clone(
                child_entry,
                top as *mut c_void,
                flags | libc::CLONE_PIDFD | libc::SIGCHLD,
                plan as *const ChildPlan as *mut c_void,
                pidfd as *mut c_int,
                std::ptr::null_mut::<c_void>(),
                std::ptr::null_mut::<c_int>(),
            )
        }
    };
    let pid = match method {
        Method::Vfork => with_stack(libc::CLONE_VM | libc::CLONE_VFORK, &mut pidfd),
        Method::Fork => {
            let args = CloneArgs {
                flags: libc::CLONE_PIDFD as u64,
                pidfd: &mut pidfd as *mut c_int as u64,
                exit_signal: libc::SIGCHLD as u64,
                ..CloneArgs::default()
            };
            let pid = if legacy {
                -1
            } else {
                // SAFETY: clone3 without CLONE_VM makes a copy of this
                // process, like fork. In the child (0) we call only `run`,
                // which never returns and is async-signal-safe (no atfork
                // handlers ran, so nothing relies on libc state such as
                // its cached thread id). `args` outlives the call.
                match unsafe {
                    libc::syscall(
                        libc::SYS_clone3,
                        &args as *const CloneArgs,
                        std::mem::size_of::<CloneArgs>(),
                    )
                } {
                    // SAFETY: this is the new child, on its own copy of
                    // memory; `run` never returns.
                    0 => unsafe { run(plan) },
                    pid => pid as libc::pid_t,
                }
            };
            let refused = || {
                matches!(
                    io::Error::last_os_error().raw_os_error(),
                    Some(libc::ENOSYS | libc::EPERM)
                )
            };
            if pid < 0 && (legacy || refused()) {
                with_stack(0, &mut pidfd)
            } else {
                pid
            }
        }
    };
    let err = io::Error::last_os_error();
    crate::sys::restore_signals(&old);
    drop(stack);
    if pid < 0 {
        return Err(err);
    }
    // SAFETY: CLONE_PIDFD made the kernel store a new descriptor, which
    // nobody else owns, before the call returned.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

extern "C" fn child_entry(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `&ChildPlan` passed by `create`, alive while the
    // parent thread is suspended.
    unsafe { run(&*(arg as *const ChildPlan)) }
}

/// The child's whole life before exec.
///
/// # Safety
/// Must only be called in a freshly created child, with a plan whose
/// pointers are valid. Never returns.
unsafe fn run(plan: &ChildPlan) -> ! {
    // SAFETY (whole function): only async-signal-safe libc calls on the
    // plan's plain data; every path ends in execve or _exit.
    unsafe {
        // 1. Signals: handlers of the parent must never run here; SIGPIPE
        //    goes back to its default (Rust ignores it, and an ignored
        //    disposition would survive exec); then unblock everything.
        for sig in 1..NSIG {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let handled = old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN;
            if handled || sig == libc::SIGPIPE {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            fail(plan.err_fd, Step::Signals, 0);
        }

        // 2. Descriptors. First copy out of the way, above every target,
        //    the error pipe and each source whose number an earlier move
        //    targets (a source may itself be 0, 1 or 2); nothing else, since
        //    every copy takes a free descriptor. Then the moves, in order.
        let mut err_fd = plan.err_fd;
        if plan.lift_err {
            err_fd = libc::fcntl(plan.err_fd, libc::F_DUPFD_CLOEXEC, plan.first_free);
            if err_fd < 0 {
                fail(plan.err_fd, Step::Fds, 0);
            }
        }
        // Slices over the parent's arrays: no allocation, and iterators
        // (no indexing) leave no panic path in the child.
        let moves = || std::slice::from_raw_parts(plan.moves, plan.n_moves).iter();
        let sources = std::slice::from_raw_parts_mut(plan.sources, plan.n_moves);
        for (source, m) in sources.iter_mut().zip(moves()) {
            *source = m.source;
            if m.lift {
                *source = libc::fcntl(m.source, libc::F_DUPFD_CLOEXEC, plan.first_free);
                if *source < 0 {
                    fail(err_fd, Step::Fds, 0);
                }
            }
        }
        for (&source, m) in sources.iter().zip(moves()) {
            let moved = if source == m.target {
                // dup2 onto itself would keep close-on-exec: clear it.
                libc::fcntl(source, libc::F_SETFD, 0)
            } else {
                // dup2 clears close-on-exec on the target.
                libc::dup2(source, m.target)
            };
            if moved < 0 {
                fail(err_fd, Step::Fds, 0);
            }
        }
        if plan.stderr_to_stdout && libc::dup2(1, 2) < 0 {
            fail(err_fd, Step::Fds, 0);
        }
        // Every descriptor but those kept and the error pipe: the gaps
        // between kept numbers, then everything above them.
        let mut lo: RawFd = 0;
        for &kept in std::slice::from_raw_parts(plan.keep, plan.n_keep) {
            close_range(lo, kept - 1, err_fd, plan.max_fds, plan.close_by_loop);
            lo = kept + 1;
        }
        close_range(lo, RawFd::MAX, err_fd, plan.max_fds, plan.close_by_loop);

        // 3. Credentials: groups, then the group id, then the user id
        //    (which gives up the privilege the other two need). Raw
        //    system calls: see the module's documentation.
        if plan.set_groups && libc::syscall(libc::SYS_setgroups, plan.n_groups, plan.groups) != 0 {
            fail(err_fd, Step::Groups, 0);
        }
        if plan.drop_groups
            && libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0
            && *libc::__errno_location() != libc::EPERM
        {
            fail(err_fd, Step::Groups, 0);
        }
        if let Some(gid) = plan.gid
            && libc::syscall(libc::SYS_setgid, gid) != 0
        {
            fail(err_fd, Step::Gid, 0);
        }
        if let Some(uid) = plan.uid
            && libc::syscall(libc::SYS_setuid, uid) != 0
        {
            fail(err_fd, Step::Uid, 0);
        }

        // 4. Resource limits, for this process only (pid 0).
        let rlimits = std::slice::from_raw_parts(plan.rlimits, plan.n_rlimits);
        for (i, r) in rlimits.iter().enumerate() {
            if libc::syscall(
                libc::SYS_prlimit64,
                0,
                r.resource,
                &r.limit as *const libc::rlimit64,
                std::ptr::null_mut::<libc::rlimit64>(),
            ) != 0
            {
                fail(err_fd, Step::Rlimit, i as u16);
            }
        }

        // 5. The file mode creation mask (cannot fail).
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        }

        // 6. Session or process group.
        if plan.setsid {
            if libc::setsid() < 0 {
                fail(err_fd, Step::Session, 0);
            }
            if plan.controlling_tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                fail(err_fd, Step::Session, 0);
            }
        } else if plan.process_group && libc::setpgid(0, 0) < 0 {
            fail(err_fd, Step::Session, 0);
        }

        // 7. Directory.
        if !plan.cwd.is_null() && libc::chdir(plan.cwd) < 0 {
            fail(err_fd, Step::Chdir, 0);
        }

        // 8. The channel's pid guard: this process's pid, by hand (no
        //    formatting machinery), most significant digit first.
        if !plan.pid_slot.is_null() {
            let pid = libc::syscall(libc::SYS_getpid) as u32;
            let mut digits = 1;
            let mut left = pid / 10;
            while left > 0 && digits < PID_DIGITS {
                digits += 1;
                left /= 10;
            }
            let mut rest = pid;
            for i in (0..digits).rev() {
                *plan.pid_slot.add(i) = b'0'.wrapping_add((rest % 10) as u8);
                rest /= 10;
            }
            *plan.pid_slot.add(digits) = 0;
        }

        // 9. Exec: try each candidate like execvp does. Remember the first
        //    "permission denied" (a better report than a later "not found").
        let mut denied: Option<u16> = None;
        let mut last = (libc::ENOENT, 0u16);
        let mut i = 0;
        loop {
            let path = *plan.candidates.add(i);
            if path.is_null() {
                break;
            }
            libc::execve(path, plan.argv, plan.envp);
            let errno = *libc::__errno_location();
            last = (errno, i as u16);
            if errno == libc::EACCES && denied.is_none() {
                denied = Some(i as u16);
            }
            if !matches!(errno, libc::ENOENT | libc::ENOTDIR | libc::EACCES) {
                break;
            }
            i += 1;
        }
        let (errno, index) = match denied {
            Some(index) if last.0 != libc::ENOEXEC => (libc::EACCES, index),
            _ => last,
        };
        *libc::__errno_location() = errno;
        fail(err_fd, Step::Exec, index)
    }
}

/// Closes every descriptor from `first` to `last` (both included), except
/// `keep`.
///
/// Where `close_range(2)` is missing (kernels before 5.9, seccomp profiles
/// that answer `ENOSYS`) each number below `max_fds`, the limit on open
/// descriptors, is closed one by one.
///
/// # Safety
/// Async-signal-safe; only for the child.
unsafe fn close_range(first: RawFd, last: RawFd, keep: RawFd, max_fds: RawFd, by_loop: bool) {
    // SAFETY: close_range and close on integer descriptors.
    unsafe {
        let ranges = [(first, last.min(keep - 1)), (first.max(keep + 1), last)];
        for (lo, hi) in ranges {
            if lo > hi {
                continue;
            }
            if by_loop || libc::syscall(libc::SYS_close_range, lo as u32, hi as u32, 0) != 0 {
                // Both ends are included, as in close_range.
                for fd in lo..=hi.min(max_fds - 1) {
                    libc::close(fd);
                }
            }
        }
    }
}

/// Reports `errno` and `step` on the error pipe and exits.
///
/// # Safety
/// Async-signal-safe; only for the child.
unsafe fn fail(err_fd: RawFd, step: Step, index: u16) -> ! {
    // SAFETY: write and _exit are async-signal-safe; the frame is on the stack.
    unsafe {
        let errno = *libc::__errno_location();
        let mut frame = [0u8; 8];
        frame[..4].copy_from_slice(&errno.to_ne_bytes());
        frame[4..6].copy_from_slice(&(step as u16).to_ne_bytes());
        frame[6..].copy_from_slice(&index.to_ne_bytes());
        libc::write(err_fd, frame.as_ptr() as *const c_void, frame.len());
        libc::_exit(127)
    }
}

/// Decodes the child's error frame: `(errno, step, candidate index)`.
pub(crate) fn decode_failure(frame: &[u8; 8]) -> (i32, Option<Step>, usize) {
    let errno = i32::from_ne_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let step = Step::from_code(u16::from_ne_bytes([frame[4], frame[5]]));
    let index = u16::from_ne_bytes([frame[6], frame[7]]) as usize;
    (errno, step, index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sources_an_earlier_move_clobbers_are_lifted() {
        let lifts = |pairs: &[(RawFd, RawFd)]| -> Vec<bool> {
            plan_moves(pairs).iter().map(|m| m.lift).collect()
        };
        // The usual case: pipes far above 0, 1 and 2 need no copy.
        assert_eq!(lifts(&[(7, 0), (9, 1), (10, 2)]), [false; 3]);
        // Swapped standard descriptors: the second source is gone by then.
        assert_eq!(lifts(&[(1, 0), (0, 1)]), [false, true]);
        // A source that is its own target is not clobbered by itself.
        assert_eq!(lifts(&[(0, 0), (5, 1)]), [false, false]);
    }

    #[test]
    fn passed_descriptors_that_swap_numbers_are_lifted_and_every_target_kept() {
        let pairs = [(7, 0), (8, 1), (9, 12), (12, 9), (20, 3)];
        let lifts: Vec<bool> = plan_moves(&pairs).iter().map(|m| m.lift).collect();
        // 9 goes onto 12 first, so the source 12 is copied away before.
        assert_eq!(lifts, [false, false, false, true, false]);
        // 2 is kept though not a target: an inherited stderr.
        assert_eq!(plan_keep(&pairs), [0, 1, 2, 3, 9, 12]);
    }
}
