//! Supervision: restart policies with backoff, graceful stop, signal
//! forwarding and zombie reaping, for a program that must keep running.
//!
//! The pieces work on their own and together:
//!
//! - [`Restart`] and [`Backoff`] decide whether and when an exited child is
//!   started again ([`Policy`] bundles them with the grace period).
//! - [`SignalWatch`] turns signals into readable bytes on a descriptor
//!   (signal-hook's self-pipe), so one `poll` waits for signals, child exits
//!   and I/O at once: no thread, no sleep.
//! - [`forward`] passes a signal to a child or its process group;
//!   [`reap_orphans`] collects orphaned grandchildren when this process is a
//!   subreaper ([`set_subreaper`]) without stealing the status of the child a
//!   [`Child`] owns.
//!
//! # Signals and the process
//!
//! A [`SignalWatch`] installs handlers for its signals for as long as it
//! lives: while it exists, SIGINT or SIGTERM no longer kill this process,
//! they are reported instead. Handlers are process-wide; children get the
//! default dispositions back when they exec.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::status::ExitStatus;
use crate::{Child, Command};

/// The signals `duet run` passes on to its child: INT, TERM, HUP, QUIT,
/// USR1, USR2 and WINCH.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// When an exited child is started again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Restart {
    /// Never: the child's exit ends supervision.
    #[default]
    Never,
    /// When the child failed: a non-zero code or death by a signal.
    OnFailure,
    /// Whatever the status.
    Always,
}

impl Restart {
    /// Whether a child that ended with `status` should be started again
    /// (before counting restarts or honouring a stop request).
    pub fn wants(self, status: ExitStatus) -> bool {
        match self {
            Restart::Never => false,
            Restart::OnFailure => !status.success(),
            Restart::Always => true,
        }
    }
}

impl FromStr for Restart {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "never" => Ok(Restart::Never),
            "on-failure" => Ok(Restart::OnFailure),
            "always" => Ok(Restart::Always),
            _ => Err(format!(
                "{s:?} is not a restart policy; use never, on-failure or always"
            )),
        }
    }
}

/// Exponential backoff between restarts: `initial`, then doubling, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first restart.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 30 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before restart number `restarts + 1` (so `delay(0)` is `initial`).
    pub fn delay(&self, restarts: u32) -> Duration {
        let factor = 2u32.checked_pow(restarts.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// How a child is supervised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// When to start the child again.
    pub restart: Restart,
    /// At most this many restarts (`None`: no limit).
    pub max_restarts: Option<u32>,
    /// The wait before each restart.
    pub backoff: Backoff,
    /// How long a stop waits after SIGTERM before SIGKILL.
    pub grace: Duration,
    /// Signals go to the child's process group (the child must lead one:
    /// `Command::process_group(true)`).
    pub group: bool,
}

impl Default for Policy {
    /// Never restart, 10 s grace, signals to the child only.
    fn default() -> Self {
        Policy {
            restart: Restart::Never,
            max_restarts: None,
            backoff: Backoff::default(),
            grace: Duration::from_secs(10),
            group: false,
        }
    }
}

impl Policy {
    /// Whether a child that ended with `status` after `restarts` restarts
    /// should be started again.
    pub fn should_restart(&self, status: ExitStatus, restarts: u32) -> bool {
        self.restart.wants(status) && self.max_restarts.is_none_or(|max| restarts < max)
    }
}

/// Signals delivered as bytes on a descriptor, for `poll`.
///
/// Each watched signal sets a flag and writes a byte to a self-pipe (a Unix
/// socket pair, non-blocking) from its handler. Poll [`SignalWatch::as_fd`]
/// for readability, then call [`SignalWatch::take`]. Several deliveries of
/// one signal between two `take`s are reported once, as the kernel does.
/// Dropping the watch unregisters its handlers; once no watch is left, the
/// signals act as by default again (terminate, ignore, ...), even one that
/// was ignored before the first watch (as under `nohup`).
#[derive(Debug)]
pub struct SignalWatch {
    read: UnixStream,
    /// Per signal, who sent it since the last take (`sys::SENT_BY_*` bits).
    flags: Vec<(Signal, Arc<AtomicU8>)>,
    ids: Vec<signal_hook::SigId>,
}

impl SignalWatch {
    /// Starts watching `signals`.
    ///
    /// # Errors
    ///
    /// The socket pair cannot be made, or a signal cannot be handled
    /// (SIGKILL and SIGSTOP never can).
    pub fn new(signals: &[Signal]) -> Result<SignalWatch> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let mut watch = SignalWatch {
            read,
            flags: Vec::new(),
            ids: Vec::new(),
        };
        for &sig in signals {
            fallback::watch(sig)?;
            let flag = Arc::new(AtomicU8::new(0));
            // Pushed before anything can fail, so that Drop undoes it.
            watch.flags.push((sig, Arc::clone(&flag)));
            watch.ids.push(crate::sys::flag_signal_senders(sig, flag)?);
            let wake = signal_hook::low_level::pipe::register(sig as i32, write.try_clone()?)?;
            watch.ids.push(wake);
        }
        Ok(watch)
    }

    /// The signals that arrived since the last call, in the order they were
    /// given to [`SignalWatch::new`]. Never blocks.
    pub fn take(&self) -> Vec<Signal> {
        self.take_arrivals().into_iter().map(|a| a.signal).collect()
    }

    /// The same, with who sent each signal: the kernel (a terminal's ^C
    /// goes to its whole foreground process group), another process, or
    /// both (deliveries between two takes are merged).
    ///
    /// ```
    /// use duet::supervise::SignalWatch;
    /// use duet::Signal;
    /// let watch = SignalWatch::new(&[Signal::SIGUSR2])?;
    /// nix::sys::signal::raise(Signal::SIGUSR2)?;
    /// let arrivals = watch.take_arrivals();
    /// assert_eq!(arrivals[0].signal, Signal::SIGUSR2);
    /// assert!(arrivals[0].by_process && !arrivals[0].by_kernel);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_arrivals(&self) -> Vec<Arrival> {
        let mut buf = [0u8; 64];
        loop {
            match (&self.read).read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        self.flags
            .iter()
            .filter_map(|(sig, flag)| {
                let senders = flag.swap(0, Ordering::SeqCst);
                (senders != 0).then_some(Arrival {
                    signal: *sig,
                    by_kernel: senders & crate::sys::SENT_BY_KERNEL != 0,
                    by_process: senders & crate::sys::SENT_BY_PROCESS != 0,
                })
            })
            .collect()
    }
}

/// A signal [`SignalWatch::take_arrivals`] reports, and who sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Arrival {
    /// The signal.
    pub signal: Signal,
    /// The kernel sent it (`SI_KERNEL`): a terminal sends ^C's SIGINT, ^\'s
    /// SIGQUIT, SIGWINCH on a resize and SIGHUP on a hangup so, to every
    /// process of its foreground process group at once.
    pub by_kernel: bool,
    /// A process sent it (`kill`, `sigqueue`, a pidfd, ...).
    pub by_process: bool,
}

impl AsFd for SignalWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        for (sig, _) in self.flags.drain(..) {
            fallback::unwatch(sig);
        }
    }
}

/// What a signal does when no [`SignalWatch`] watches it any more.
///
/// signal-hook cannot uninstall its process-wide handler, so without this a
/// process that once supervised a child would ignore SIGTERM and SIGINT for
/// the rest of its life. The first watch of a signal registers, once and for
/// good, an action that emulates the default disposition (terminate, stop,
/// ignore, ...) whenever no watch is live.
mod fallback {
    use std::collections::HashMap;
    use std::collections::hash_map::Entry;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    use nix::sys::signal::Signal;

    /// Per signal: the "act as by default" switch and the number of live watches.
    type Table = HashMap<i32, (Arc<AtomicBool>, usize)>;

    fn table() -> &'static Mutex<Table> {
        static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
        TABLE.get_or_init(|| Mutex::new(HashMap::new()))
    }

    pub(super) fn watch(sig: Signal) -> std::io::Result<()> {
        let mut table = table().lock().unwrap_or_else(|e| e.into_inner());
        let entry = match table.entry(sig as i32) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(slot) => {
                let default = Arc::new(AtomicBool::new(false));
                signal_hook::flag::register_conditional_default(sig as i32, Arc::clone(&default))?;
                slot.insert((default, 0))
            }
        };
        entry.1 += 1;
        entry.0.store(false, Ordering::SeqCst);
        Ok(())
    }

    pub(super) fn unwatch(sig: Signal) {
        let mut table = table().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = table.get_mut(&(sig as i32)) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                entry.0.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// A process that is not a child of ours (a `duet serve` found through its
/// directory, say), held by a pidfd: what is sent through it reaches that
/// process and no other, even once its pid is reused, and
/// [`wait_for_exit`](Self::wait_for_exit) waits for that process.
///
/// Opening it by pid is the one moment a pid is trusted: check that the
/// process is still the one meant (its lock still held, its pid file
/// unchanged) after [`open`](Self::open), and from then on the handle is
/// its identity.
///
/// ```
/// use duet::supervise::Process;
/// use duet::Signal;
/// let mut sleep = duet::Command::new("sleep").arg("60").spawn()?;
/// let other = Process::open(sleep.id())?.expect("it runs");
/// other.signal(Signal::SIGTERM)?;
/// assert_eq!(sleep.wait()?.signal(), Some(15));
/// assert!(other.wait_for_exit(std::time::Duration::from_secs(5))?);
/// # Ok::<(), duet::Error>(())
/// ```
#[derive(Debug)]
pub struct Process {
    pidfd: std::os::fd::OwnedFd,
}

impl Process {
    /// The process `pid` now, or `None` when there is none.
    ///
    /// # Errors
    /// An OS error other than `ESRCH`, such as a kernel without pidfds.
    pub fn open(pid: u32) -> Result<Option<Process>> {
        match crate::sys::pidfd_open(Pid::from_raw(pid as i32)) {
            Ok(pidfd) => Ok(Some(Process { pidfd })),
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => Ok(None),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// Sends `sig`. A process that has exited meanwhile is not an error.
    ///
    /// # Errors
    /// An OS error other than `ESRCH`, such as `EPERM`.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        match crate::sys::pidfd_send_signal(self.pidfd.as_fd(), sig) {
            Err(e) if e.raw_os_error() != Some(nix::libc::ESRCH) => Err(Error::Io(e)),
            _ => Ok(()),
        }
    }

    /// Sends `sig` to the process group this process leads: through the
    /// pidfd where the kernel can (Linux 6.9), else by the group's number
    /// while the leader is seen alive (a group outlives a dead leader only
    /// until it is reaped, so the number is checked first, never trusted
    /// blindly).
    ///
    /// # Errors
    /// An OS error other than `ESRCH`, such as `EPERM`.
    pub fn signal_group(&self, sig: Signal) -> Result<()> {
        let sent = match crate::sys::pidfd_signal_group(self.pidfd.as_fd(), Some(sig)) {
            Some(sent) => sent,
            None => match crate::sys::pidfd_pid(self.pidfd.as_fd()) {
                Some(pid) => crate::sys::signal_group(pid, sig),
                None => return Ok(()),
            },
        };
        match sent {
            Err(e) if e.raw_os_error() != Some(nix::libc::ESRCH) => Err(Error::Io(e)),
            _ => Ok(()),
        }
    }

    /// Waits up to `timeout` until the process has exited: `Ok(true)` once
    /// it has, `Ok(false)` when it still runs at the deadline. Neither polls
    /// in a loop nor reaps.
    ///
    /// # Errors
    /// An OS error from `poll(2)`.
    pub fn wait_for_exit(&self, timeout: Duration) -> Result<bool> {
        let mut fds = [crate::sys::poll_fd(self.pidfd.as_fd(), PollFlags::POLLIN)];
        Ok(crate::sys::poll(&mut fds, crate::sys::deadline_after(timeout))? > 0)
    }
}

/// Sends `sig` to the process `pid`, or to the process group it leads when
/// `group` is true, through a pidfd opened for it (see [`Process`]: the pid
/// is trusted only at that moment). A process that is already gone is not
/// an error.
///
/// # Errors
///
/// An OS error other than `ESRCH`, such as `EPERM`.
pub fn forward(pid: u32, sig: Signal, group: bool) -> Result<()> {
    match Process::open(pid)? {
        Some(process) if group => process.signal_group(sig),
        Some(process) => process.signal(sig),
        None => Ok(()),
    }
}

/// Waits up to `timeout` until the process `pid` — any process, not only a
/// child — has exited. `Ok(true)` once it has (or no longer exists),
/// `Ok(false)` when it still runs at the deadline. Uses a pidfd, so it
/// neither polls nor reaps.
///
/// # Errors
///
/// An OS error other than `ESRCH`, such as a kernel without pidfds.
pub fn wait_for_exit(pid: u32, timeout: Duration) -> Result<bool> {
    match Process::open(pid)? {
        Some(process) => process.wait_for_exit(timeout),
        None => Ok(true),
    }
}

/// Makes this process a subreaper (Linux): orphaned descendants are
/// re-parented to it instead of to init, so it can reap them.
///
/// # Errors
///
/// The OS refused (`prctl(PR_SET_CHILD_SUBREAPER)`).
pub fn set_subreaper() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(Error::from)
}

/// Reaps every exited child except `keep` (the pid a [`Child`]
/// owns, whose status must stay for it to collect). Returns the reaped pids
/// and their statuses. Never blocks.
///
/// It peeks with `waitid(WNOWAIT)` before reaping, so the kept child's
/// status is never consumed here; while the kept child is an unreaped
/// zombie, others wait for the next call after it has been collected.
pub fn reap_orphans(keep: Option<u32>) -> Vec<(u32, ExitStatus)> {
    let mut reaped = Vec::new();
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let pid = match waitid(Id::All, flags) {
            Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)) => pid,
            _ => break,
        };
        if Some(pid.as_raw() as u32) == keep {
            break;
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                reaped.push((pid.as_raw() as u32, ExitStatus::from_code(code)));
            }
            Ok(WaitStatus::Signaled(pid, sig, core)) => {
                reaped.push((
                    pid.as_raw() as u32,
                    ExitStatus::from_signal(sig as i32, core),
                ));
            }
            _ => break,
        }
    }
    reaped
}

/// What [`Supervisor::step`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The child is running, or a restart is waiting for its backoff.
    Running,
    /// The backoff has passed: spawn the child again and give it to
    /// [`Supervisor::start`].
    Restart,
    /// Supervision is over: the child's last status.
    Done(ExitStatus),
}

#[derive(Debug)]
enum State {
    /// No child yet.
    Idle,
    Running,
    /// The child exited; a restart is due at `until`.
    Backoff {
        until: Instant,
        status: ExitStatus,
    },
    Done(ExitStatus),
}

/// Supervises one child at a time: forwards signals to it, stops it
/// gracefully, restarts it per its [`Policy`], reaps orphans as a subreaper.
///
/// It is a state machine for the caller's own event loop, so the caller can
/// pump the child's I/O in the same `poll`:
///
/// 1. poll [`Supervisor::as_fd`] (plus your own descriptors) until
///    [`Supervisor::deadline`];
/// 2. call [`Supervisor::step`]; on [`Step::Restart`] spawn the child again
///    and pass it to [`Supervisor::start`]; on [`Step::Done`] you are done.
///
/// [`Supervisor::run`] is that loop for a child whose I/O needs no pumping.
///
/// Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH
/// are forwarded to the child ([`Child::signal`]: to its process group when
/// it leads one), each exactly once per delivery. SIGTERM also starts a
/// graceful stop: after the policy's grace the child gets SIGKILL (the
/// forwarded SIGTERM is the stop's only one; see
/// [`Supervisor::stop_on_signal`] for INT, HUP and QUIT). After SIGINT,
/// SIGTERM, SIGHUP or SIGQUIT the child is not restarted: someone asked it
/// to end.
///
/// ```no_run
/// use duet::supervise::{Policy, Restart, Supervisor};
/// let policy = Policy { restart: Restart::OnFailure, max_restarts: Some(3), ..Policy::default() };
/// let mut sup = Supervisor::new(policy)?;
/// let status = sup.run(&mut duet::Command::new("my-server"))?;
/// println!("{status} after {} restarts", sup.restarts());
/// # Ok::<(), duet::Error>(())
/// ```
#[derive(Debug)]
pub struct Supervisor {
    policy: Policy,
    watch: SignalWatch,
    child: Option<Child>,
    state: State,
    restarts: u32,
    /// Set once a stop was asked for: no more restarts.
    stopping: bool,
    /// When the child gets SIGKILL after a SIGTERM.
    kill_at: Option<Instant>,
    subreaper: bool,
    received: Vec<Signal>,
    /// Signals that are watched and reported but not passed on.
    kept: Vec<Signal>,
    /// Signals that, besides SIGTERM, start a graceful stop.
    stop_on: Vec<Signal>,
    last_status: Option<ExitStatus>,
    /// The child is in this process's group: a terminal's signals reach it
    /// without us.
    shares_group: bool,
    /// Forwarded signals rewritten: `(received, sent)`.
    map: Vec<(Signal, Signal)>,
    /// The last exit would have been restarted but for `max_restarts`.
    gave_up: bool,
}

impl Supervisor {
    /// A supervisor with `policy`; it starts watching signals now (see the
    /// module docs: they no longer end this process while it lives).
    ///
    /// # Errors
    ///
    /// The signal handlers cannot be installed.
    pub fn new(policy: Policy) -> Result<Supervisor> {
        let mut signals = FORWARDED.to_vec();
        signals.push(Signal::SIGCHLD);
        Ok(Supervisor {
            policy,
            watch: SignalWatch::new(&signals)?,
            child: None,
            state: State::Idle,
            restarts: 0,
            stopping: false,
            kill_at: None,
            subreaper: false,
            received: Vec::new(),
            kept: Vec::new(),
            stop_on: Vec::new(),
            last_status: None,
            shares_group: false,
            map: Vec::new(),
            gave_up: false,
        })
    }

    /// Makes this process a subreaper and reaps orphaned descendants in
    /// [`Supervisor::step`].
    ///
    /// # Errors
    ///
    /// As for [`set_subreaper`].
    pub fn set_subreaper(&mut self) -> Result<()> {
        set_subreaper()?;
        self.subreaper = true;
        Ok(())
    }

    /// Keeps `sig` for the caller (`forward: false`) or hands it back to
    /// the supervisor (`true`). A kept signal is only reported by
    /// [`Supervisor::received`]: it is not passed on and does not act (a
    /// kept SIGTERM starts no stop). A wrapper that puts the child on a pty
    /// keeps SIGWINCH and resizes the pty, so the kernel signals the child
    /// after the size changed; a server keeps SIGTERM to stop in its own way.
    pub fn forward_signal(&mut self, sig: Signal, forward: bool) {
        self.kept.retain(|&s| s != sig);
        if !forward {
            self.kept.push(sig);
        }
    }

    /// Says that the child is in this process's process group (it was
    /// spawned without `process_group(true)` and not on a pty), so the
    /// signals a terminal sends to its foreground group reach the child
    /// directly. A signal that only the kernel sent (^C's SIGINT, ^\\'s
    /// SIGQUIT, SIGWINCH on a resize, SIGHUP on a hangup: see
    /// [`Arrival::by_kernel`]) is then not forwarded, so that one ^C is one
    /// SIGINT to the child, as when it runs without a supervisor; it still
    /// counts as a request to stop. The same signal sent by a process
    /// (`kill`) is forwarded as always.
    pub fn set_shares_group(&mut self, shares: bool) {
        self.shares_group = shares;
    }

    /// Forwards `to` where `from` was received (`from` is one of
    /// [`FORWARDED`]), as dumb-init's `-r`: a program that stops gracefully
    /// on SIGQUIT gets SIGQUIT for SIGTERM. What `from` means to the
    /// supervisor stays: a received SIGTERM still starts a graceful stop,
    /// and the stop's own signal ([`Supervisor::stop`],
    /// [`Supervisor::recycle`]) is what SIGTERM maps to. A later mapping of
    /// the same `from` replaces an earlier one. A signal the terminal
    /// already gave a child in this process's group
    /// ([`Supervisor::set_shares_group`]) is not sent again, mapped or not.
    pub fn map_signal(&mut self, from: Signal, to: Signal) {
        self.map.retain(|&(f, _)| f != from);
        self.map.push((from, to));
    }

    /// What the child gets for `sig`.
    fn mapped(&self, sig: Signal) -> Signal {
        self.map
            .iter()
            .find(|&&(from, _)| from == sig)
            .map_or(sig, |&(_, to)| to)
    }

    /// When the waiting restart is due, while the child has exited and its
    /// restart waits for the backoff; `None` otherwise.
    pub fn restart_at(&self) -> Option<Instant> {
        match self.state {
            State::Backoff { until, .. } if !self.stopping => Some(until),
            _ => None,
        }
    }

    /// True once supervision ended because the policy would have restarted
    /// the child but `max_restarts` restarts were used up.
    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Supervises `child` (the first one, or the one spawned for
    /// [`Step::Restart`]).
    pub fn start(&mut self, child: Child) {
        log::debug!("supervising pid {}", child.id());
        self.child = Some(child);
        self.state = State::Running;
    }

    /// The current child, while one is running or unreaped.
    pub fn child(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// True while a child is running (not exited, not waiting for a restart).
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running) && self.child.is_some()
    }

    /// The current child, for polling its descriptors.
    pub fn child_ref(&self) -> Option<&Child> {
        self.child.as_ref()
    }

    /// Takes the current child out (for example to drain its output after
    /// [`Step::Done`]).
    pub fn take_child(&mut self) -> Option<Child> {
        self.child.take()
    }

    /// How many times the child has been restarted.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The signals the last [`Supervisor::step`] received (already forwarded).
    pub fn received(&self) -> &[Signal] {
        &self.received
    }

    /// When [`Supervisor::step`] must be called even if nothing is readable:
    /// the end of a backoff or of a grace period.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Backoff { until, .. } => Some(until),
            _ => self.kill_at,
        }
    }

    /// Asks for a graceful stop: SIGTERM now, SIGKILL after `grace`, no
    /// restarts. During a backoff, supervision ends at the next step.
    ///
    /// # Errors
    ///
    /// The signal cannot be sent.
    pub fn stop(&mut self, grace: Duration) -> Result<()> {
        let term = self.mapped(Signal::SIGTERM);
        if let (State::Running, Some(child)) = (&self.state, self.child.as_mut()) {
            child.signal(term)?;
        }
        self.stop_after_signal(grace);
        Ok(())
    }

    /// A graceful stop whose signal the child already got: SIGKILL after
    /// `grace`, no restarts.
    fn stop_after_signal(&mut self, grace: Duration) {
        self.stopping = true;
        self.kill_after(grace);
    }

    /// Arms the SIGKILL `grace` from now (an earlier one stays).
    fn kill_after(&mut self, grace: Duration) {
        if let (State::Running, Some(_)) = (&self.state, self.child.as_ref()) {
            let kill_at = Instant::now() + grace;
            self.kill_at = Some(self.kill_at.map_or(kill_at, |k| k.min(kill_at)));
        }
    }

    /// Stops the current child gracefully (SIGTERM now, SIGKILL after
    /// `grace`) *without* ending supervision: its exit is handled like any
    /// other, so the policy decides whether it is restarted. For a child
    /// that no longer does its job (a server that stopped answering).
    ///
    /// # Errors
    ///
    /// The signal cannot be sent.
    pub fn recycle(&mut self, grace: Duration) -> Result<()> {
        let term = self.mapped(Signal::SIGTERM);
        if let (State::Running, Some(child)) = (&self.state, self.child.as_mut()) {
            child.signal(term)?;
            self.kill_after(grace);
        }
        Ok(())
    }

    /// Makes `sig` (SIGINT, SIGHUP or SIGQUIT) a graceful stop as SIGTERM
    /// is: after forwarding it, the child gets SIGKILL if it still runs
    /// after the grace period. A process that is PID 1 (a container's init)
    /// wants this: the kernel gives it no default action for these signals,
    /// so they are the only way to stop it.
    pub fn stop_on_signal(&mut self, sig: Signal) {
        if !self.stop_on.contains(&sig) {
            self.stop_on.push(sig);
        }
    }

    /// The status of the child's last exit, if it has exited (also while a
    /// restart waits for its backoff).
    pub fn last_status(&self) -> Option<ExitStatus> {
        self.last_status
    }

    /// Handles whatever happened: signals (forwarded), the child's exit
    /// (restart or finish), the end of a grace period (SIGKILL) or of a
    /// backoff. Never blocks.
    ///
    /// # Errors
    ///
    /// Waiting for or signalling the child failed.
    pub fn step(&mut self) -> Result<Step> {
        let arrivals = self.watch.take_arrivals();
        self.received = arrivals.iter().map(|a| a.signal).collect();
        for arrival in arrivals {
            let sig = arrival.signal;
            if sig == Signal::SIGCHLD {
                continue;
            }
            if self.kept.contains(&sig) {
                continue;
            }
            // The terminal sent it to our whole group, the child included.
            let reached = self.shares_group && arrival.by_kernel && !arrival.by_process;
            let to = self.mapped(sig);
            if let (State::Running, Some(child), false) =
                (&self.state, self.child.as_mut(), reached)
            {
                log::debug!(
                    "forwarding {} to pid {} as {}",
                    sig.as_str(),
                    child.id(),
                    to.as_str()
                );
                child.signal(to)?;
            }
            match sig {
                // The forward above was this stop's SIGTERM: a second one
                // would reach a child that is cleaning up after the first
                // (many programs take a second TERM as "exit now").
                Signal::SIGTERM => self.stop_after_signal(self.policy.grace),
                Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT => {
                    self.stopping = true;
                    if self.stop_on.contains(&sig) {
                        self.stop_after_signal(self.policy.grace);
                    }
                }
                _ => {}
            }
        }
        let now = Instant::now();
        if let (State::Running, Some(child)) = (&self.state, self.child.as_mut()) {
            match child.try_wait()? {
                Some(status) => self.exited(status, now),
                None => {
                    if self.kill_at.is_some_and(|k| now >= k) {
                        log::info!(
                            "pid {} still running after the grace period; sending SIGKILL",
                            child.id()
                        );
                        child.kill()?;
                        self.kill_at = None;
                    }
                }
            }
        }
        if self.subreaper {
            let keep = self.child.as_ref().map(Child::id);
            for (pid, status) in reap_orphans(keep) {
                log::debug!("reaped orphan {pid}: {status}");
            }
        }
        Ok(match self.state {
            State::Idle | State::Running => Step::Running,
            State::Done(status) => Step::Done(status),
            State::Backoff { status, .. } if self.stopping => {
                self.state = State::Done(status);
                Step::Done(status)
            }
            State::Backoff { until, .. } if now >= until => {
                self.restarts += 1;
                self.state = State::Idle;
                Step::Restart
            }
            State::Backoff { .. } => Step::Running,
        })
    }

    fn exited(&mut self, status: ExitStatus, now: Instant) {
        self.kill_at = None;
        self.last_status = Some(status);
        if !self.stopping && self.policy.should_restart(status, self.restarts) {
            let delay = self.policy.backoff.delay(self.restarts);
            log::info!(
                "the child {}; restart {} in {delay:?}",
                ended(status),
                self.restarts + 1
            );
            self.state = State::Backoff {
                until: now + delay,
                status,
            };
        } else {
            log::info!("the child {}; not restarting", ended(status));
            self.gave_up = !self.stopping && self.policy.restart.wants(status);
            self.state = State::Done(status);
        }
    }

    /// Runs `cmd` under supervision until it is over: spawns it, forwards
    /// signals, restarts it per the policy. Returns the last status. A
    /// child that stays in this process's group (no
    /// [`Command::process_group`], no [`Command::pty`], not remote) gets a
    /// terminal's signals from the terminal only: see
    /// [`Supervisor::set_shares_group`].
    ///
    /// # Errors
    ///
    /// The first spawn fails (later failed spawns end supervision with the
    /// error too), or waiting fails.
    pub fn run(&mut self, cmd: &mut Command) -> Result<ExitStatus> {
        // A local child without a group or a terminal of its own is in
        // ours: see `set_shares_group`.
        self.set_shares_group(!cmd.process_group && !cmd.pty && cmd.ssh_host.is_none());
        self.start(cmd.spawn()?);
        loop {
            self.wait_event(None)?;
            match self.step()? {
                Step::Running => {}
                Step::Restart => self.start(cmd.spawn()?),
                Step::Done(status) => return Ok(status),
            }
        }
    }

    /// Waits until a signal arrives, the supervisor's deadline passes or
    /// `extra` passes, whichever is first.
    fn wait_event(&self, extra: Option<Instant>) -> Result<()> {
        let deadline = match (self.deadline(), extra) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut fds = [PollFd::new(self.watch.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, poll_timeout(deadline)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(Error::from(e)),
        }
    }
}

/// How a child ended, after "the child": `exited with code 3`, `was killed by ...`.
fn ended(status: ExitStatus) -> String {
    if status.signal().is_some() {
        format!("was {status}")
    } else {
        status.to_string()
    }
}

impl AsFd for Supervisor {
    /// Readable when a signal (including SIGCHLD) has arrived.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.watch.as_fd()
    }
}

/// A `poll` timeout for `deadline`, rounded up to the millisecond so that a
/// wake-up is never early (`None`: wait forever).
pub fn poll_timeout(deadline: Option<Instant>) -> PollTimeout {
    match deadline {
        None => PollTimeout::NONE,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_nanos().div_ceil(1_000_000);
            PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<u128> = (0..6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn policy_counts_restarts() {
        let failed = ExitStatus::from_code(1);
        let ok = ExitStatus::from_code(0);
        let killed = ExitStatus::from_signal(9, false);
        let p = Policy {
            restart: Restart::OnFailure,
            max_restarts: Some(2),
            ..Policy::default()
        };
        assert!(p.should_restart(failed, 0));
        assert!(p.should_restart(killed, 1));
        assert!(!p.should_restart(failed, 2));
        assert!(!p.should_restart(ok, 0));
        assert!(Restart::Always.wants(ok));
        assert!(!Restart::Never.wants(failed));
    }

    #[test]
    fn restart_reads_its_names() {
        assert_eq!("on-failure".parse(), Ok(Restart::OnFailure));
        assert_eq!("always".parse(), Ok(Restart::Always));
        assert_eq!("never".parse(), Ok(Restart::Never));
        assert!(
            "sometimes"
                .parse::<Restart>()
                .unwrap_err()
                .contains("on-failure")
        );
    }

    #[test]
    fn signal_watch_reports_a_raised_signal() {
        let watch = SignalWatch::new(&[Signal::SIGUSR2]).unwrap();
        nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
        let mut fds = [nix::poll::PollFd::new(
            watch.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16)).unwrap();
        assert_eq!(watch.take(), [Signal::SIGUSR2]);
        assert_eq!(watch.take(), []);
    }
}
