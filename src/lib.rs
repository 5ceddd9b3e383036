//! duet drives child processes that speak line protocols.
#![deny(unsafe_op_in_unsafe_fn, missing_docs, missing_debug_implementations)]

pub mod channel;
mod error;
mod status;
mod text;

pub use error::{Error, Result, SpawnFailure};
pub use status::ExitStatus;
