//! Integration tests: every test drives real processes (the fixture,
//! `sh`, `cat`, `bc`, `python3`). Topics live in modules; names read as a
//! specification.

mod drive;
mod util;

#[cfg(feature = "tokio")]
mod asynchronous;
mod channel;
mod cli;
mod cli_ssh;
mod conversation;
mod docs;
mod faults;
mod fifo;
mod generated;
mod group;
mod interact;
mod layers;
mod lifecycle;
mod output;
mod pacing;
mod pty;
mod remote;
mod script;
mod script_ci;
mod session;
mod sessions;
mod setup;
mod shell;
mod spawn;
mod streams;
mod supervise;
mod watches;
