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
    pid: Pid,
    pidfd: OwnedFd,
    /// Whether the child leads its own process group (signals go to the group).
    group: bool,
    /// Set once the child is reaped; from then on every wait returns it and
    /// every signal is a no-op.
    status: Option<ExitStatus>,
    /// For a program run through ssh: the remote process, which gets the
    /// signals (see `remote::Target::deliver`).
    remote: Option<crate::remote::Target>,
}

impl Process {
    pub(crate) fn new(pid: Pid, group: bool) -> io::Result<Process> {
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                // Without a pidfd we cannot wait properly; do not leave a zombie.
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                let _ = sys::reap(pid, true);
                return Err(e);
            }
        };
        Ok(Process {
            pid,
            pidfd,
            group,
            status: None,
            remote: None,
        })
    }

    pub(crate) fn set_remote(&mut self, target: crate::remote::Target) {
        self.remote = Some(target);
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
            self.status = sys::reap(self.pid, false)?;
            if let (Some(_), Some(remote)) = (self.status, &mut self.remote) {
                remote.reaped();
            }
        }
        Ok(self.status)
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
        if self
            .remote
            .as_ref()
            .is_some_and(|r| r.deliver(signal, self.pidfd.as_fd()))
        {
            return Ok(());
        }
        let sent = if self.group {
            // The leader is not reaped yet, so its pid still names the group.
            sys::signal_group(self.pid, signal)
        } else {
            sys::pidfd_send_signal(self.pidfd.as_fd(), signal)
        };
        match sent {
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => Ok(()),
            other => other,
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
