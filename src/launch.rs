//! Starting a [`Command`]: the top of the spawn stack.
//!
//! `command.rs` is the data; the engine (`spawn`) starts a process on this
//! host and hands over its parts; `child` (blocking) and `tokio` (async)
//! assemble a child from them; `remote` starts the program through `ssh`.
//! The methods here pick among those, so they sit above all of them, and
//! nothing below imports this module.

use crate::command::Command;
use crate::error::SpawnFailure;
use crate::{Child, Output, Result, remote, spawn};

impl Command {
    /// Starts the child.
    ///
    /// # Errors
    /// [`Error::Spawn`](crate::Error::Spawn) when the program cannot be run:
    /// its message names the program, the failing step (`exec`, `chdir`, …),
    /// the path and the OS error. A missing program is this error, never a
    /// child that exits 127.
    ///
    /// ```
    /// use duet::{Command, Error};
    /// let mut cat = Command::new("cat").spawn()?;
    /// assert_eq!(cat.ask("hi")?, "hi");
    /// let err = Command::new("duet-no-such-program").spawn().unwrap_err();
    /// assert!(matches!(err, Error::Spawn { .. }));
    /// assert!(err.to_string().contains("duet-no-such-program"));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn spawn(&mut self) -> Result<Child> {
        if self.ssh_host.is_some() {
            remote::spawn(self)
        } else if let Some(opt) = self.ssh_options.first() {
            Err(SpawnFailure {
                step: "use ssh option",
                path: Some(opt.to_string_lossy().into_owned()),
                os: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "ssh_option needs ssh(host)",
                ),
            }
            .into_error(&self.program_name()))
        } else {
            spawn::spawn(self).map(Child::from_spawned)
        }
    }

    /// Runs the child to completion and captures stdout and stderr (stdin
    /// is `/dev/null` unless set otherwise). Waits without a time limit
    /// unless [`timeout`](Self::timeout) was set.
    ///
    /// ```
    /// let out = duet::Command::new("echo").arg("hello").output()?;
    /// assert_eq!(out.stdout, b"hello\n");
    /// assert!(out.status.success());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn output(&mut self) -> Result<Output> {
        let mut child = self.for_output().spawn()?;
        child.communicate(b"", self.timeout)
    }

    /// Starts the child for tokio (feature `tokio`): a
    /// [`duet::tokio::Child`](crate::tokio::Child), whose methods are the
    /// blocking [`Child`]'s, `async` where they wait.
    ///
    /// A plain `fn`, called inside a runtime: the spawn runs inline (the
    /// vfork-class spawn costs the same at any parent size, and suspends
    /// only this thread until the child reaches `exec`), and the child's
    /// pipes and pidfd are registered with the current runtime, which
    /// needs its IO and time drivers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> duet::Result<()> {
    /// let mut bc = duet::Command::new("bc").arg("-q").spawn_async()?;
    /// assert_eq!(bc.ask("6*7").await?, "42");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn); and `Error::Io` (no process is started)
    /// when called outside a tokio runtime.
    #[cfg(feature = "tokio")]
    pub fn spawn_async(&mut self) -> Result<crate::tokio::Child> {
        crate::tokio::Child::spawn(self)
    }

    /// [`output`](Self::output) for tokio (feature `tokio`): runs the child
    /// to completion and captures stdout and stderr without blocking the
    /// thread.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> duet::Result<()> {
    /// let out = duet::Command::new("echo").arg("hello").output_async().await?;
    /// assert_eq!(out.stdout, b"hello\n");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`output`](Self::output) and [`spawn_async`](Self::spawn_async).
    #[cfg(feature = "tokio")]
    pub async fn output_async(&mut self) -> Result<Output> {
        let mut child = self.for_output().spawn_async()?;
        child.communicate(b"", self.timeout).await
    }
}
