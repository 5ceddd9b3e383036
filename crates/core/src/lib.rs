//! The sans-IO conversation core of [duet](https://docs.rs/duet-process):
//! everything a conversation with a line-protocol program knows, as plain
//! data.
//!
//! This crate contains no process, pipe or terminal code. It holds no file
//! descriptor, reads no clock and makes no system call; its only
//! dependencies are matching crates (`memchr`, `regex`, `regex-automata`),
//! and `#![forbid(unsafe_code)]` holds. A driver owns the descriptors, the
//! clock and the waiting: it feeds the bytes it read into a
//! [`Conversation`] and asks for the next event (a line, a match, a watch
//! that fired, a line too long, end of file), which is either ready or
//! needs more input. The `duet` library has two such drivers, one blocking
//! on `poll(2)` and one on tokio's readiness; both ask the same questions
//! of the same core, so framing, patterns, watches and their errors cannot
//! drift apart.
//!
//! What is here:
//! - [`Conversation`]: per stream an inbox that frames lines (with a
//!   `max_line` limit that loses nothing after a too-long line), searches
//!   that resume across reads in linear time, and watches
//!   ([`Action::FailOn`], [`Action::Respond`]) that see every byte once;
//! - [`Pattern`], [`Match`] and [`Searcher`]: exact, regex and line
//!   patterns, and an incremental search for buffers of your own;
//! - [`ansi::Filter`]: terminal escape sequences removed as bytes arrive;
//! - [`frame`]: the length-prefixed frames of Python's
//!   `multiprocessing.connection`, encoded and decoded on byte buffers.
//!
//! ```
//! use duet_core::{Conversation, Pattern, Stream};
//! use std::task::Poll;
//!
//! let mut core = Conversation::new(true, false, 1 << 20);
//! let prompt = [Pattern::exact("(gdb) ")];
//! core.feed(Stream::Stdout, b"GNU gdb 13.1\n(gd");
//! assert!(core.poll_expect(Stream::Stdout, &prompt).is_pending());
//! core.feed(Stream::Stdout, b"b) ");
//! let Poll::Ready(Ok((0, m))) = core.poll_expect(Stream::Stdout, &prompt) else { panic!() };
//! assert_eq!(m.before(), "GNU gdb 13.1\n");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

pub mod ansi;
mod conversation;
pub mod frame;
mod inbox;
mod pattern;
mod search;
pub mod text;
mod watch;

pub use conversation::{Conversation, Failure, Halt, Stream};
pub use inbox::{Inbox, Line};
pub use pattern::{Exact, Match, Pattern};
pub use search::Searcher;
pub use watch::{Action, WatchId};

/// The compiled forms inside a [`Pattern`]: [`Pattern::Exact`] holds an
/// [`Exact`], [`Pattern::Regex`] a [`Regex`](pattern::Regex),
/// [`Pattern::Line`] a [`Line`](pattern::Line).
pub mod patterns {
    pub use crate::pattern::{Exact, Line, Regex};
}
