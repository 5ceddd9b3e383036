//! Integration tests: every test drives real processes (the fixture,
//! `sh`, `cat`, `bc`, `python3`). Topics live in modules; names read as a
//! specification.

mod util;

mod channel;
mod cli;
mod conversation;
mod faults;
mod fifo;
mod lifecycle;
mod output;
mod pty;
mod script;
mod spawn;
mod supervise;
mod watches;
