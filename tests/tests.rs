//! Integration tests: every test drives real processes (the fixture,
//! `sh`, `cat`, `bc`, `python3`). Topics live in modules; names read as a
//! specification.

mod util;

mod conversation;
mod lifecycle;
mod output;
mod pty;
mod spawn;
