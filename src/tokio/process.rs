//! The child's pidfd on the reactor: its exit is a readiness event, so
//! waiting costs no thread, no SIGCHLD handler and no polling; and the
//! reaper that carries out a dropped child's `OnDrop` without blocking.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ::tokio::io::Interest;
use ::tokio::runtime::Id;

use super::io::Registered;
use crate::process::{Process, Terminating};
use crate::{ExitStatus, OnDrop};

/// A [`Process`] whose pidfd is registered with the runtime (and follows
/// the child to another runtime, see [`Registered`]).
#[derive(Debug)]
pub(crate) struct Pidfd(Registered<Process>);

impl Pidfd {
    /// Registers the pidfd with the current runtime; the process comes
    /// back with the error.
    pub(crate) fn new(process: Process) -> Result<Pidfd, (Process, io::Error)> {
        Registered::new(process, Interest::READABLE).map(Pidfd)
    }

    /// Moves the pidfd's registration to the runtime `here`.
    pub(crate) fn follow(&mut self, here: Id) -> io::Result<()> {
        self.0.follow(here)
    }

    pub(crate) fn get(&self) -> &Process {
        self.0.get_ref()
    }

    pub(crate) fn get_mut(&mut self) -> &mut Process {
        self.0.get_mut()
    }

    /// Ready with the status once the child has exited and is reaped.
    pub(crate) fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        if let Some(status) = self.get().status() {
            return Poll::Ready(Ok(status));
        }
        loop {
            let mut guard = match self.0.poll_read_ready_mut(cx) {
                Poll::Ready(guard) => guard?,
                Poll::Pending => return Poll::Pending,
            };
            // The pidfd stays readable once the child has exited: no need
            // to clear it after a reap.
            match guard.get_inner_mut().try_wait()? {
                Some(status) => return Poll::Ready(Ok(status)),
                None => guard.clear_ready(),
            }
        }
    }

    /// Ready once the child has exited, without reaping it: a legacy
    /// group's leader must stay a zombie through the grace period, to pin
    /// the group's number (see `Process::signal_group`).
    fn poll_exited(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.get().status().is_some() {
            return Poll::Ready(Ok(()));
        }
        // A pidfd is readable exactly when the child has exited, and stays so.
        self.0
            .poll_read_ready(cx)
            .map_ok(|mut guard| guard.retain_ready())
    }

    /// Waits for the child to exit and reaps it.
    pub(crate) async fn exit(&mut self) -> io::Result<ExitStatus> {
        poll_fn(|cx| self.poll_exit(cx)).await
    }

    /// Waits for the child to exit until `deadline` (`None`: forever).
    pub(crate) async fn exit_by(
        &mut self,
        deadline: Option<Instant>,
    ) -> io::Result<Option<ExitStatus>> {
        match deadline {
            None => self.exit().await.map(Some),
            Some(d) => {
                let d = ::tokio::time::Instant::from_std(d);
                match ::tokio::time::timeout_at(d, self.exit()).await {
                    Ok(status) => status.map(Some),
                    Err(_) => self.get_mut().try_wait(),
                }
            }
        }
    }

    /// SIGTERM, up to `grace`, SIGKILL; reaps. The steps are the blocking
    /// driver's (`Process::terminate`); only the waiting is the runtime's.
    pub(crate) async fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        let deadline = match self.get_mut().start_terminate(grace)? {
            Terminating::Done(status) => return Ok(status),
            Terminating::Signalled { deadline } => deadline,
        };
        let exited = match deadline {
            None => true,
            Some(d) => {
                let d = ::tokio::time::Instant::from_std(d);
                let exited = poll_fn(|cx| self.poll_exited(cx));
                ::tokio::time::timeout_at(d, exited).await.is_ok()
            }
        };
        if let Some(mut group) = self.get_mut().after_grace(exited, deadline)? {
            while let Some(pause) = self.get_mut().group_grace_step(&mut group) {
                ::tokio::time::sleep(pause).await;
            }
        }
        self.exit().await
    }
}

/// Carries out a dropped child's [`OnDrop`] on the runtime.
///
/// If the runtime drops the task before it finished (it shuts down, or it
/// was already gone when the child was dropped), `Drop` finishes the job
/// on the spot: `Terminate` becomes SIGKILL and a reap, which SIGKILL makes
/// prompt; `Wait` waits, blocking, as the blocking `Child` would.
#[derive(Debug)]
pub(crate) struct Reaper {
    pidfd: Option<Pidfd>,
    policy: OnDrop,
    program: String,
}

impl Reaper {
    pub(crate) fn new(pidfd: Pidfd, policy: OnDrop, program: String) -> Reaper {
        Reaper {
            pidfd: Some(pidfd),
            policy,
            program,
        }
    }

    pub(crate) async fn run(mut self) {
        let Some(pidfd) = self.pidfd.as_mut() else {
            return;
        };
        // The child may have been used from another runtime than this one.
        if let Err(e) = pidfd.follow(::tokio::runtime::Handle::current().id()) {
            // Drop carries out the policy without the runtime.
            log::warn!("dropping child `{}`: {e}", self.program);
            return;
        }
        let outcome = match self.policy {
            OnDrop::Detach => return,
            OnDrop::Wait => pidfd.exit().await,
            OnDrop::Terminate(grace) => pidfd.terminate(grace).await,
        };
        if let Err(e) = outcome {
            log::warn!(
                "dropping child `{}` (pid {}): {e}",
                self.program,
                pidfd.get().id()
            );
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let Some(mut pidfd) = self.pidfd.take() else {
            return;
        };
        let process = pidfd.get_mut();
        if process.status().is_some() {
            return;
        }
        let outcome = match self.policy {
            OnDrop::Detach => return,
            OnDrop::Wait => process.wait_deadline(None).map(|_| ()),
            OnDrop::Terminate(_) => process.kill_and_reap().map(|_| ()),
        };
        if let Err(e) = outcome {
            log::warn!(
                "dropping child `{}` (pid {}): {e}",
                self.program,
                process.id()
            );
        }
    }
}
