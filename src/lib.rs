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

pub mod fifo;
pub mod supervise;
