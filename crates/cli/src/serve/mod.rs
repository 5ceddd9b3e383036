//! `duet serve`: keep PROG running behind named pipes in DIR.
//!
//! - [`protocol`]: what travels between the clients and the daemon.

pub mod lifecycle;
pub mod protocol;

pub use lifecycle::{ServeArgs, run};
