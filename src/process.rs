//! The process handle: waiting, signalling and the cached exit status.
//!
//! Waiting uses a pidfd with `poll(2)`: no busy polling and no process-wide
//! SIGCHLD handler that would fight other libraries. Signals go through the
//! pidfd too, so they can never reach a recycled pid.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
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
    /// The child's identity, from its creation (`CLONE_PIDFD`).
    pidfd: OwnedFd,
    /// Whether the child leads its own process group (signals go to the group).
    group: bool,
    /// Take the code paths for kernels that lack newer pidfd features
    /// (duet's own tests of those paths).
    legacy: bool,
    /// Set once the child is reaped; from then on every wait returns it and
    /// every signal is a no-op.
    status: Option<ExitStatus>,
}

impl Process {
    pub(crate) fn new(pid: Pid, pidfd: OwnedFd, group: bool, legacy: bool) -> Process {
        Process {
            pid,
            pidfd,
            group,
            legacy,
            status: None,
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Readable once the child has exited.
    pub(crate) fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    pub(crate) fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.reap(false)?;
        }
        Ok(self.status)
    }

    /// Reaps through the pidfd. When someone else reaped the child first
    /// (SIGCHLD ignored makes the kernel do it; or a `waitpid` elsewhere in
    /// the program), its status is the one the kernel keeps for the pidfd
    /// (Linux 6.15), else unknown: never an error that would lose the
    /// output captured so far, and never a stranger's status.
    fn reap(&self, block: bool) -> io::Result<Option<ExitStatus>> {
        match sys::wait_pidfd(self.pidfd.as_fd(), block) {
            Err(e) if e.raw_os_error() == Some(nix::libc::ECHILD) => {
                let kept = match self.legacy {
                    false => sys::pidfd_exit_status(self.pidfd.as_fd()),
                    true => None,
                };
                log::debug!(
                    "pid {} was reaped outside duet; its status is {}",
                    self.pid,
                    if kept.is_some() { "known" } else { "lost" }
                );
                Ok(Some(kept.unwrap_or_else(ExitStatus::unknown)))
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
        let mut fds = [sys::poll_fd(self.pidfd.as_fd(), PollFlags::POLLIN)];
        Ok(sys::poll(&mut fds, deadline)? > 0)
    }

    /// Sends `signal` to the child (to its group when it leads one). A no-op
    /// once the child has been reaped.
    pub(crate) fn signal(&mut self, signal: Signal) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        let sent = if self.group {
            self.signal_group(signal)
        } else {
            sys::pidfd_send_signal(self.pidfd.as_fd(), signal)
        };
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
    /// number from being reused. Once someone else reaped it (SIGCHLD
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

    /// SIGTERM, wait up to `grace`, then SIGKILL; reaps and returns the status.
    ///
    /// With a process group the whole group gets SIGTERM and then SIGKILL,
    /// even when the leader has already exited: until this reaps it, the
    /// leader's zombie keeps the group id from being reused, so no
    /// descendant that outlived it or ignored SIGTERM survives.
    pub(crate) fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        if !self.group
            && let Some(status) = self.try_wait()?
        {
            return Ok(status);
        }
        self.signal(Signal::SIGTERM)?;
        let exited = self.exited_by(sys::deadline_after(grace))?;
        if !exited || self.group {
            self.signal(Signal::SIGKILL)?;
        }
        Ok(self
            .wait_deadline(None)?
            .expect("a wait without deadline returns a status"))
    }
}
