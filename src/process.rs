//! The process handle: waiting, signalling and the cached exit status.
//!
//! The child's identity is the pidfd it was created with. Waiting polls it
//! and reaps with `waitid(P_PIDFD)`: no busy polling, no process-wide
//! SIGCHLD handler that would fight other libraries, and never a wait by
//! pid. Signals go through the pidfd too (a group's as well, where the
//! kernel allows), so they can never reach a recycled pid. The one loop
//! that looks instead of waiting is `terminate`'s wait for a group to
//! empty, for want of any event that says so.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::{ExitStatus, sys};

#[derive(Debug)]
pub(crate) struct Process {
    /// For `id()` and messages. Never waited for or signalled by number,
    /// except as the group id described in `signal`.
    pid: Pid,
    /// The child's identity and what signals it, shared with every
    /// [`Killer`] handed out.
    shared: Arc<Shared>,
    /// Whether the child leads its own process group (signals go to the group).
    group: bool,
    /// Take the code paths for kernels that lack newer pidfd features
    /// (duet's own tests of those paths).
    legacy: bool,
    /// Set once the child is reaped; from then on every wait returns it and
    /// every signal is a no-op.
    status: Option<ExitStatus>,
}

/// What a [`Process`] shares with its [`Killer`]s: the pidfd, and the lock
/// that a reap and a signal each hold while they touch the process.
#[derive(Debug)]
struct Shared {
    pid: Pid,
    /// The child's identity, from its creation (`CLONE_PIDFD`).
    pidfd: OwnedFd,
    group: bool,
    legacy: bool,
    /// True once the child is reaped. Held by the reap for its `waitid`
    /// and by a signal while it is sent, so that no signal can be sent by
    /// number (the legacy group path) after the number was freed.
    reaped: Mutex<bool>,
    /// For a program run through ssh: the remote process, which gets the
    /// signals (see [`Remote`]).
    remote: Mutex<Option<Box<dyn Remote>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data are a flag and a handle, valid whatever a panicking holder
    // was doing.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// See [`Process::signal`]; a no-op once reaped.
    fn signal(&self, signal: Signal) -> io::Result<()> {
        if *lock(&self.reaped) {
            return Ok(());
        }
        // Outside the reap lock: a remote delivery may wait for the local
        // ssh to end, which its reap must not be kept from seeing. The
        // remote end checks the program's start time before it signals.
        if lock(&self.remote)
            .as_ref()
            .is_some_and(|r| r.deliver(signal, self.pidfd.as_fd()))
        {
            return Ok(());
        }
        let reaped = lock(&self.reaped);
        if *reaped {
            return Ok(());
        }
        let sent = if self.group {
            self.signal_group(signal)
        } else {
            sys::pidfd_send_signal(self.pidfd.as_fd(), signal)
        };
        drop(reaped);
        match sent {
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => Ok(()),
            other => other,
        }
    }

    /// Signals the group the child leads, never a group that merely reuses
    /// its number.
    ///
    /// Linux 6.9 resolves the group through the pidfd
    /// (`PIDFD_SIGNAL_PROCESS_GROUP`), which is exact whatever happened to
    /// the leader. Older kernels only take a number: it is used only while
    /// the leader is an unreaped child of ours, whose zombie keeps the
    /// number from being reused (the caller holds the reap lock, so duet
    /// cannot reap it meanwhile). Once someone else reaped it (SIGCHLD
    /// ignored, a `waitpid` elsewhere) the group can no longer be named
    /// safely and this is a no-op.
    fn signal_group(&self, signal: Signal) -> io::Result<()> {
        if !self.legacy
            && let Some(sent) = sys::pidfd_signal_group(self.pidfd.as_fd(), Some(signal))
        {
            return sent;
        }
        if sys::unreaped(self.pidfd.as_fd()) {
            sys::signal_group(self.pid, signal)
        } else {
            Ok(())
        }
    }
}

/// Signals a child from any thread: made by
/// [`Child::killer`](crate::Child::killer) (and the async child's
/// `killer`), it is `Clone`, `Send` and `Sync`, and outlives the child.
///
/// It signals through the child's pidfd, never its number, and holds the
/// lock the child's reap takes, so a signal and a reap in two threads never
/// meet a recycled pid: once the child is reaped every call is a no-op
/// returning `Ok(())`. A child started with
/// [`process_group`](crate::Command::process_group) or on a pty gets the
/// signals as its group, as with [`Child::signal`](crate::Child::signal); a
/// child on another host ([`ssh`](crate::Command::ssh)) gets them there.
///
/// ```
/// use std::time::Duration;
/// let mut child = duet::Command::new("sleep").arg("60").spawn()?;
/// let killer: duet::Killer = child.killer();
/// // A watchdog in another thread, while this one waits.
/// let watchdog = std::thread::spawn(move || killer.kill());
/// let status = child.wait()?;
/// watchdog.join().unwrap()?;
/// assert_eq!(status.signal(), Some(9));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Killer {
    shared: Arc<Shared>,
}

impl Killer {
    /// Sends `signal` to the child (to its group when it leads one). Does
    /// not wait. A no-op once the child has been reaped.
    ///
    /// # Errors
    /// `Error::Io` when the kernel refuses the signal (a child running as
    /// another user that this process may not signal).
    ///
    /// ```
    /// use duet::Signal;
    /// let mut child = duet::Command::new("sleep").arg("60").spawn()?;
    /// let killer = child.killer();
    /// killer.signal(Signal::SIGTERM)?;
    /// assert_eq!(child.wait()?.signal(), Some(15));
    /// killer.signal(Signal::SIGTERM)?;       // reaped: nothing is sent
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn signal(&self, signal: Signal) -> crate::Result<()> {
        Ok(self.shared.signal(signal)?)
    }

    /// Sends SIGKILL (see [`signal`](Self::signal)).
    ///
    /// ```
    /// let mut child = duet::Command::new("sleep").arg("60").spawn()?;
    /// child.killer().kill()?;
    /// assert_eq!(child.wait()?.signal(), Some(9));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn kill(&self) -> crate::Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// The child's process id, for messages (never signalled by number).
    ///
    /// ```
    /// let mut child = duet::Command::new("sleep").arg("60").spawn()?;
    /// let killer = child.killer();
    /// assert_eq!(killer.id(), child.id());
    /// # child.kill()?;
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn id(&self) -> u32 {
        self.shared.pid.as_raw() as u32
    }
}

/// The far end of a child that runs on another host: the program a local
/// `ssh` process started there. It takes the signals meant for the
/// program, and hears when the local process has been reaped.
///
/// A seam, as tokio's process module has `Kill` and `Wait`: the process
/// handle calls up through it without importing the layer that spawns
/// `ssh` (`remote::Target` implements it), so signalling and dropping a
/// child never run back through the spawn stack at the module level.
pub(crate) trait Remote: fmt::Debug + Send {
    /// Delivers `signal` to the remote program. True when nothing more is
    /// to be done locally; false when the local process (`local`, its
    /// pidfd) should get the signal too.
    fn deliver(&self, signal: Signal, local: BorrowedFd<'_>) -> bool;

    /// Called once, when the local process has been reaped.
    fn reaped(&mut self);
}

impl Process {
    pub(crate) fn new(pid: Pid, pidfd: OwnedFd, group: bool, legacy: bool) -> Process {
        Process {
            pid,
            shared: Arc::new(Shared {
                pid,
                pidfd,
                group,
                legacy,
                reaped: Mutex::new(false),
                remote: Mutex::new(None),
            }),
            group,
            legacy,
            status: None,
        }
    }

    /// Makes `remote` the receiver of this process's signals.
    pub(crate) fn set_remote(&mut self, remote: impl Remote + 'static) {
        *lock(&self.shared.remote) = Some(Box::new(remote));
    }

    /// A handle that signals this process from any thread.
    pub(crate) fn killer(&self) -> Killer {
        Killer {
            shared: Arc::clone(&self.shared),
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Readable once the child has exited.
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.shared.pidfd.as_fd()
    }

    pub(crate) fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.reap(false)?;
            if self.status.is_some()
                && let Some(remote) = lock(&self.shared.remote).as_mut()
            {
                remote.reaped();
            }
        }
        Ok(self.status)
    }

    /// Reaps through the pidfd. When someone else reaped the child first
    /// (SIGCHLD ignored makes the kernel do it; or a `waitpid` elsewhere in
    /// the program), its status is the one the kernel keeps for the pidfd
    /// (Linux 6.15), else unknown: never an error that would lose the
    /// output captured so far, and never a stranger's status.
    ///
    /// It holds the lock a [`Killer`] takes to signal, so it never waits
    /// (`block` is false while anyone else may hold a `Killer`).
    fn reap(&self, block: bool) -> io::Result<Option<ExitStatus>> {
        let mut reaped = lock(&self.shared.reaped);
        let status = self.reap_locked(block);
        if let Ok(Some(_)) = status {
            *reaped = true;
        }
        status
    }

    fn reap_locked(&self, block: bool) -> io::Result<Option<ExitStatus>> {
        match sys::wait_pidfd(self.pidfd(), block) {
            Err(e) if e.raw_os_error() == Some(nix::libc::ECHILD) => {
                let kept = match self.legacy {
                    false => sys::pidfd_exit_status(self.pidfd()),
                    true => None,
                };
                log::debug!(
                    "pid {} was reaped outside duet; its status is {}",
                    self.pid,
                    if kept.is_some() { "known" } else { "lost" }
                );
                Ok(Some(kept.unwrap_or_else(ExitStatus::discarded)))
            }
            other => other,
        }
    }

    /// Waits until the child exits or `deadline` passes (`None`: forever).
    pub(crate) fn wait_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if !self.exited_by(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Waits, without reaping, until the child has exited or `deadline`
    /// passes. True when it has exited.
    fn exited_by(&self, deadline: Option<Instant>) -> io::Result<bool> {
        let mut fds = [sys::poll_fd(self.pidfd(), PollFlags::POLLIN)];
        Ok(sys::poll(&mut fds, deadline)? > 0)
    }

    /// Sends `signal` to the child (to its group when it leads one). A no-op
    /// once the child has been reaped.
    pub(crate) fn signal(&mut self, signal: Signal) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        self.shared.signal(signal)
    }

    /// See [`Shared::signal_group`]; under the reap lock.
    fn signal_group(&self, signal: Signal) -> io::Result<()> {
        let _reaped = lock(&self.shared.reaped);
        self.shared.signal_group(signal)
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; reaps and returns the status.
    ///
    /// With a process group every member gets SIGTERM and the whole grace
    /// period, as systemd's `KillMode=control-group` and supervisord's
    /// `killasgroup` do: a `sh -c` wrapper that dies at once does not cut
    /// short the cleanup of the server it started. SIGKILL goes to what
    /// remains of the group at the deadline, also when the leader has
    /// already exited; the group is left alone as soon as it is empty.
    pub(crate) fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        let deadline = match self.start_terminate(grace)? {
            Terminating::Done(status) => return Ok(status),
            Terminating::Signalled { deadline } => deadline,
        };
        let exited = self.exited_by(deadline)?;
        if let Some(mut group) = self.after_grace(exited, deadline)? {
            while let Some(pause) = self.group_grace_step(&mut group) {
                std::thread::sleep(pause);
            }
        }
        Ok(self
            .wait_deadline(None)?
            .expect("a wait without deadline returns a status"))
    }

    /// The first step of [`terminate`](Self::terminate), shared by the
    /// drivers: the status when there is nothing left to stop, else SIGTERM
    /// sent and the grace period's deadline.
    pub(crate) fn start_terminate(&mut self, grace: Duration) -> io::Result<Terminating> {
        if let Some(status) = self.status {
            return Ok(Terminating::Done(status));
        }
        if !self.group
            && let Some(status) = self.try_wait()?
        {
            return Ok(Terminating::Done(status));
        }
        let deadline = sys::deadline_after(grace);
        self.signal(Signal::SIGTERM)?;
        // A stopped child would only see SIGTERM once continued: without
        // SIGCONT it would sit out the grace period and get SIGKILL without
        // running its handler (systemd sends SIGCONT after SIGTERM for the
        // same reason). After SIGTERM, so that the pending SIGTERM is what
        // it handles first when it resumes.
        self.signal(Signal::SIGCONT)?;
        Ok(Terminating::Signalled { deadline })
    }

    /// The step of [`terminate`](Self::terminate) after the grace period:
    /// SIGKILL unless the child `exited` within it; for a group whose
    /// leader exited, the wait for the rest of the group to go (see
    /// [`group_grace_step`](Self::group_grace_step)), to be carried out by the
    /// caller.
    pub(crate) fn after_grace(
        &mut self,
        exited: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<GroupGrace>> {
        if !exited {
            self.signal(Signal::SIGKILL)?;
            return Ok(None);
        }
        if !self.group {
            return Ok(None);
        }
        let exact = !self.legacy && sys::pidfd_signal_group(self.pidfd(), None).is_some();
        if exact {
            self.try_wait()?;
        }
        Ok(Some(GroupGrace {
            exact,
            deadline,
            pause: Duration::from_millis(1),
        }))
    }

    /// Kills the child (its group too) and reaps it: the last resort of a
    /// drop that cannot wait, such as an async child's reaper cut short by
    /// its runtime shutting down. SIGKILL makes the reap prompt.
    #[cfg(feature = "tokio")]
    pub(crate) fn kill_and_reap(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        self.signal(Signal::SIGKILL)?;
        Ok(self
            .wait_deadline(None)?
            .expect("a wait without deadline returns a status"))
    }

    /// The leader has exited within the grace period: one look at the rest
    /// of its group. `None` when the wait is over (the group is gone, or
    /// what was left got SIGKILL at the deadline); else how long to pause
    /// before the next look (the blocking driver sleeps, the async one
    /// awaits a timer).
    ///
    /// Nothing signals that a group has emptied: its members are not our
    /// children (no SIGCHLD, no `waitid`), the kernel has no notification
    /// for it (only cgroups do, and duet owns none), and a pidfd per member
    /// would need a list of members that `/proc` cannot give atomically. So
    /// this looks, at 1 ms doubling to 50 ms, and never past the deadline.
    ///
    /// How it looks depends on the kernel. The leader's zombie counts as a
    /// member for every group-wide system call (measured: `kill(-pgid, 0)`
    /// succeeds on a group whose only member is an unreaped zombie), so
    /// the leader must be reaped before any such call can see an empty
    /// group; and once it is reaped, only a pidfd names the group safely.
    /// - Linux 6.9 and later: reap the leader, then ask the pidfd
    ///   (`PIDFD_SIGNAL_PROCESS_GROUP` with signal 0) until it answers
    ///   `ESRCH`. This is exact, for that very group, but it counts zombies
    ///   too: a member that died and whose new parent is slow to reap it
    ///   (an init that reaps lazily, a pid 1 that never does) would hold
    ///   the wait to its deadline. So the `/proc` scan below also ends the
    ///   wait when it sees only zombies.
    /// - Older kernels: keep the leader's zombie, which pins the group id
    ///   for `killpg`, and scan `/proc` for a member that is not a zombie.
    ///
    /// A scan counts only if no process was created while it ran (the last
    /// pid in `/proc/loadavg` did not move), so a member that forks
    /// mid-scan is not missed, and only if `/proc` is this process's pid
    /// namespace; otherwise the group counts as not empty and the grace is
    /// waited out.
    pub(crate) fn group_grace_step(&mut self, g: &mut GroupGrace) -> Option<Duration> {
        let empty = g.exact
            && matches!(
                sys::pidfd_signal_group(self.pidfd(), None),
                Some(Err(e)) if e.raw_os_error() == Some(nix::libc::ESRCH)
            );
        if empty || !live_members(self.pid, self.pid) {
            return None;
        }
        let now = Instant::now();
        if g.deadline.is_some_and(|d| now >= d) {
            // A group that emptied meanwhile is ESRCH: nothing to do.
            let _ = match g.exact {
                true => {
                    sys::pidfd_signal_group(self.pidfd(), Some(Signal::SIGKILL)).unwrap_or(Ok(()))
                }
                false => self.signal_group(Signal::SIGKILL),
            };
            return None;
        }
        let left = g.deadline.map_or(g.pause, |d| d - now);
        let pause = g.pause.min(left);
        g.pause = (g.pause * 2).min(GROUP_POLL_MAX);
        Some(pause)
    }
}

impl std::os::fd::AsRawFd for Process {
    /// The pidfd: readable once the child has exited.
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.shared.pidfd)
    }
}

/// A `Process` keeps its pidfd from creation to drop, so tokio may register
/// it (see `sys::OwnsFd`).
#[cfg(feature = "tokio")]
impl sys::OwnsFd for Process {}

/// Where [`Process::terminate`] stands after its first step.
#[derive(Debug)]
pub(crate) enum Terminating {
    /// The child had been reaped already, or had exited (not a group).
    Done(ExitStatus),
    /// SIGTERM went out; the grace period ends at `deadline`.
    Signalled { deadline: Option<Instant> },
}

/// The wait for a group to empty after its leader exited, between two
/// looks ([`Process::group_grace_step`]).
#[derive(Debug)]
pub(crate) struct GroupGrace {
    /// The kernel names the group through the pidfd (Linux 6.9).
    exact: bool,
    deadline: Option<Instant>,
    /// The next pause: 1 ms doubling to [`GROUP_POLL_MAX`].
    pause: Duration,
}

/// The longest pause between two looks at a group in [`Process::group_grace`].
const GROUP_POLL_MAX: Duration = Duration::from_millis(50);

/// Whether the process group `pgid` has a member other than `leader` that
/// is not a zombie, as `/proc` shows it (kernels before 6.9). True when
/// unsure.
fn live_members(pgid: Pid, leader: Pid) -> bool {
    let last_pid = || {
        let text = std::fs::read_to_string("/proc/loadavg").ok()?;
        text.split_whitespace().nth(4).map(str::to_owned)
    };
    for _ in 0..4 {
        let before = last_pid();
        match scan_group(pgid.as_raw(), leader.as_raw()) {
            Some(false) if before.is_some() && last_pid() == before => return false,
            Some(false) => continue,
            _ => return true,
        }
    }
    true
}

/// One pass over `/proc`: `Some(true)` when a live member other than
/// `leader` was seen, `None` when `/proc` cannot be read.
fn scan_group(pgid: i32, leader: i32) -> Option<bool> {
    // A /proc of another pid namespace would show none of our processes.
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    if me.split(' ').next()? != std::process::id().to_string() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()? {
        let Some(pid) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == leader {
            continue;
        }
        // A process that exited meanwhile has no stat to read: not a member.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may contain anything, `)` too.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut fields = stat[close + 1..].split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
        if pgrp == Some(pgid) && !matches!(state, Some("Z" | "X")) {
            return Some(true);
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// A remote end that records what reaches it and answers as told.
    #[derive(Debug, Clone, Default)]
    struct Recorder {
        signals: Arc<Mutex<Vec<Signal>>>,
        reaped: Arc<AtomicUsize>,
        /// What `deliver` answers: true when the remote end took the signal.
        takes_it: Arc<AtomicBool>,
    }

    impl Remote for Recorder {
        fn deliver(&self, signal: Signal, _local: BorrowedFd<'_>) -> bool {
            self.signals.lock().unwrap().push(signal);
            self.takes_it.load(Ordering::SeqCst)
        }

        fn reaped(&mut self) {
            self.reaped.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_remote_end_takes_the_signals_and_hears_the_reap_once() {
        let mut cmd = crate::Command::new("sleep");
        cmd.arg("30");
        let mut process = crate::spawn::spawn(&cmd).expect("sleep runs").process;
        let remote = Recorder::default();
        process.set_remote(remote.clone());

        // Taken by the remote end: the local process never sees it.
        remote.takes_it.store(true, Ordering::SeqCst);
        process.signal(Signal::SIGTERM).unwrap();
        // Not taken (the host could not be reached): the local process
        // gets it too.
        remote.takes_it.store(false, Ordering::SeqCst);
        process.signal(Signal::SIGKILL).unwrap();
        let status = process.wait_deadline(None).unwrap().unwrap();
        // A SIGTERM that had reached `sleep` would have ended it first.
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        assert_eq!(
            *remote.signals.lock().unwrap(),
            [Signal::SIGTERM, Signal::SIGKILL]
        );
        assert_eq!(remote.reaped.load(Ordering::SeqCst), 1);

        // Reaped: later waits and signals reach nobody, the remote end
        // included.
        assert_eq!(process.try_wait().unwrap(), Some(status));
        process.signal(Signal::SIGTERM).unwrap();
        assert_eq!(remote.signals.lock().unwrap().len(), 2);
        assert_eq!(remote.reaped.load(Ordering::SeqCst), 1);
    }
}
