//! The async driver, for tokio (feature `tokio`, off by default).
//!
//! [`Command::spawn_async`](crate::Command::spawn_async) returns a
//! [`Child`] with the conversation and lifecycle of the blocking
//! [`duet::Child`](crate::Child): the same method names, arguments, return
//! types and meanings, `async` where they wait. Both drive one conversation
//! core, so framing, `max_line`, patterns, watches and errors cannot differ
//! between them; only the waiting does.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> duet::Result<()> {
//! use duet::{Command, Output, Pattern};
//! use std::time::Duration;
//!
//! let mut bc = Command::new("bc").arg("-q").spawn_async()?;
//! assert_eq!(bc.ask("2+2").await?, "4");
//! bc.send_line("3*3").await?;
//! let (i, m) = bc.expect_any(&[Pattern::exact("9"), Pattern::Timeout]).await?;
//! assert_eq!((i, m.as_str()), (0, "9"));
//! let status = bc.terminate(Duration::from_secs(1)).await?;
//! assert_eq!(status.signal(), Some(15));
//!
//! let out: Output = Command::new("echo").arg("hi").output_async().await?;
//! assert_eq!(out.stdout, b"hi\n");
//! # Ok(())
//! # }
//! ```
//!
//! # What it costs
//!
//! No thread per child, and none of duet's own: the pipes (or the pty
//! master) and each child's pidfd are registered with the runtime's
//! reactor, so output, room to write and the child's exit are readiness
//! events. No SIGCHLD handler is installed and nothing runs in
//! `spawn_blocking`. The spawn itself runs inline in `spawn_async`: the
//! vfork-class spawn suspends only the calling thread, for the time the
//! child takes to reach `exec`, whatever the parent's size. The runtime
//! needs its IO and time drivers (`Builder::enable_all`).
//!
//! # Cancel safety
//!
//! Reads, expects and waits are cancel-safe: a future dropped before it
//! completes (by `tokio::select!`, `tokio::time::timeout`, an aborted task)
//! consumes nothing, and the next call sees every byte. The state of an
//! expect's search is kept in the child, so a repeated expect resumes. A
//! dropped send is never left half-written: it sent nothing, or its rest
//! goes out before anything else. Each method's docs say more.
//!
//! # Drop
//!
//! Dropping a running [`Child`] never blocks the thread: its
//! [`OnDrop`](crate::OnDrop) policy is carried out by a task on its
//! runtime, driven by the pidfd. A child dropped just before the runtime
//! shuts down is still reaped: killed and reaped at once when the runtime
//! drops that task.

mod child;
mod connection;
mod group;
mod io;
mod process;

pub use child::{Child, Lines};
pub use connection::Connection;
pub use group::{expect_any_child, expect_any_child_timeout};
