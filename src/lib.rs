//! duet drives child processes that speak line protocols.
#![deny(unsafe_op_in_unsafe_fn, missing_docs, missing_debug_implementations)]

mod child;
mod command;
mod conversation;
mod error;
mod process;
mod spawn;
mod status;
mod sys;
mod text;

pub use child::{Child, DRAIN_GRACE, Lines, Output};
pub use command::{Command, DEFAULT_MAX_LINE, DEFAULT_TIMEOUT, OnDrop, Stdio};
pub use conversation::pattern::{Exact, Match, Pattern};
pub use error::{Error, Result, SpawnFailure};
pub use nix::sys::signal::Signal;
pub use status::ExitStatus;

/// The window size `(rows, cols)` of the terminal on `fd`, or `None` when
/// `fd` is not a terminal. With [`Child::set_window_size`] a wrapper makes a
/// child's pty follow its own terminal.
pub fn terminal_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u16, u16)> {
    sys::window_size(fd).ok()
}

pub mod fifo;
pub mod supervise;
