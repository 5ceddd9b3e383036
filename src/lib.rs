//! duet drives child processes that speak line protocols: the Rust
//! counterpart of Python's `subprocess.Popen` + `pexpect`.
//!
//! # Quick start
//!
//! ```
//! use duet::{Command, Pattern};
//! use std::time::Duration;
//!
//! let mut bc = Command::new("bc")
//!     .arg("-q")
//!     .timeout(Duration::from_secs(5))   // every read, expect and write
//!     .spawn()?;                          // Error::Spawn if it cannot run
//! assert_eq!(bc.ask("2+2")?, "4");       // send a line, read the reply
//! bc.send_line("scale=3; sqrt(2)")?;
//! let m = bc.expect(Pattern::line(r"^(\d+)\.(\d+)$")?)?;   // a whole line
//! assert_eq!((m.group(1), m.group(2)), (Some("1"), Some("414")));
//! bc.close_stdin()?;
//! assert!(bc.wait()?.success());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [`Command`] describes the child; [`Command::spawn`] starts it on
//! pipes (or a pseudo-terminal with [`Command::pty`]) and returns a
//! [`Child`], which holds the conversation ([`Child::send_line`],
//! [`Child::read_line`], [`Child::ask`], [`Child::expect`]) and the
//! process ([`Child::wait`], [`Child::terminate`]).
//!
//! # Deadlocks and caveats
//!
//! Pipes have a fixed capacity (64 KiB by default). The classic deadlock is
//! a parent blocked writing to a child that is itself blocked writing output
//! nobody reads. duet avoids it by design:
//!
//! - Every wait is a `poll(2)` on non-blocking descriptors against a
//!   deadline, and while duet waits for room to write it reads the child's
//!   stdout and stderr into memory. A child that writes a lot before reading
//!   therefore costs memory, never a hang. [`Child::wait`] reads output too.
//! - A piped stderr is drained in the same loop as stdout; it is never
//!   "forgotten" until full.
//! - Every wait has a timeout (10 s by default). A timeout loses nothing:
//!   unread bytes stay buffered, and the error says what was expected, what
//!   arrived and how long duet waited.
//! - [`Child::communicate`] and [`Command::output`] stop reading shortly
//!   ([`DRAIN_GRACE`]) after the child exits even if a grandchild still holds
//!   the pipes, and say so in [`Output::still_open`].
//!
//! What duet cannot fix for you:
//!
//! - **Output buffering in the child.** Many programs (C stdio, Python)
//!   buffer their output when it is a pipe, so a reply only arrives when the
//!   buffer fills or the program exits, and `read_line` times out. Use the
//!   program's own switch (`python3 -u`, `grep --line-buffered`), or run it
//!   on a pty: [`Command::pty`] or [`Command::pty_stdout`].
//! - **Memory.** Output that is never read is kept. A child that floods
//!   forever while you only write will grow the buffer until you read.
//! - **Signals.** duet installs no signal handler. Writing to a child that is
//!   gone returns `BrokenPipe` rather than raising SIGPIPE.
//! - **Linux only.** Waiting uses pidfds (Linux 5.3 or later).
//!
//! # Threads and fork
//!
//! Spawning is safe from many threads at once, while others allocate: the
//! child runs only async-signal-safe code prepared before it exists, and
//! every descriptor duet creates is close-on-exec, so one thread's child
//! never inherits another's pipes.
#![deny(unsafe_op_in_unsafe_fn, missing_docs, missing_debug_implementations)]

mod child;
mod command;
mod conversation;
mod driver;
mod error;
mod process;
mod spawn;
mod status;
mod sys;
mod text;

pub use child::{Child, DRAIN_GRACE, Lines, Output};
pub use command::{Command, DEFAULT_MAX_LINE, DEFAULT_TIMEOUT, OnDrop, Stdio};
pub use conversation::pattern::{Exact, Match, Pattern};
pub use conversation::watch::WatchId;
pub use error::{Error, Result, SpawnFailure};
pub use nix::sys::signal::Signal;
pub use status::ExitStatus;

/// The window size `(rows, cols)` of the terminal on `fd`, or `None` when
/// `fd` is not a terminal. With [`Child::set_window_size`] a wrapper makes a
/// child's pty follow its own terminal.
pub fn terminal_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u16, u16)> {
    sys::window_size(fd).ok()
}

pub mod channel;
pub mod fifo;
pub mod supervise;

/// The compiled forms inside a [`Pattern`]: [`Pattern::Exact`] holds an
/// [`Exact`](pattern::Exact), [`Pattern::Regex`] a [`Regex`](pattern::Regex),
/// [`Pattern::Line`] a [`Line`](pattern::Line).
pub mod pattern {
    pub use crate::conversation::pattern::{Exact, Line, Regex};
}

/// Thin wrappers over crate-private parsers for the fuzz targets in `fuzz/`.
/// Only with the `fuzzing` feature; not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    use crate::channel::frame;
    use crate::conversation::inbox;

    /// A line from [`LineBuffer`].
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Line {
        /// A whole line without its `\n` or `\r\n`.
        Complete(Vec<u8>),
        /// A line over the limit, discarded.
        TooLong,
    }

    fn line(line: inbox::Line) -> Line {
        match line {
            inbox::Line::Complete(bytes) => Line::Complete(bytes),
            inbox::Line::TooLong => Line::TooLong,
        }
    }

    /// The conversation's line buffer, fed from byte slices.
    #[derive(Debug)]
    pub struct LineBuffer(inbox::Inbox);

    impl LineBuffer {
        /// An empty buffer accepting lines up to `max_line` bytes.
        pub fn new(max_line: usize) -> LineBuffer {
            LineBuffer(inbox::Inbox::new(max_line))
        }
        /// Appends bytes as a read would.
        pub fn extend(&mut self, bytes: &[u8]) {
            self.0.extend(bytes);
            self.0.skip_arrived();
        }
        /// The next whole line, if one is pending.
        pub fn take_line(&mut self) -> Option<Line> {
            self.0.take_line().map(line)
        }
        /// At end of file: the last line without a newline.
        pub fn take_unterminated(&mut self) -> Option<Line> {
            self.0.take_unterminated().map(line)
        }
        /// The bytes not consumed yet.
        pub fn pending(&self) -> &[u8] {
            self.0.pending()
        }
    }

    /// The frame header announcing `payload_len` bytes, as sent.
    pub fn frame_header(payload_len: u64) -> Vec<u8> {
        frame::Header::new(payload_len).as_bytes().to_vec()
    }

    /// The message channel's frame decoder reading from a list of chunks:
    /// `None` is a timeout, the end of the list is end of file.
    #[derive(Debug)]
    pub struct FrameReader {
        reader: frame::Reader,
        src: frame::Chunks,
    }

    impl FrameReader {
        /// A decoder with the real sizes, or with `(read_ahead,
        /// first_allocation)` so that small frames take the large-frame paths.
        pub fn new(chunks: Vec<Option<Vec<u8>>>, sizes: Option<(usize, u64)>) -> FrameReader {
            let reader = match sizes {
                Some((read_ahead, first)) => frame::Reader::with_sizes(read_ahead, first),
                None => frame::Reader::new(),
            };
            FrameReader {
                reader,
                src: frame::Chunks::new(chunks),
            }
        }
        /// Receives the next message; `Ok(None)` is a timeout.
        pub fn recv(&mut self, limit: Option<usize>) -> crate::Result<Option<Vec<u8>>> {
            self.reader.recv(&mut self.src, limit)
        }
        /// Receives the next message into `out`; `Ok(None)` is a timeout.
        pub fn recv_into(&mut self, out: &mut [u8]) -> crate::Result<Option<usize>> {
            self.reader.recv_into(&mut self.src, out)
        }
        /// Waits for data or end of file; `Ok(None)` never happens.
        pub fn poll(&mut self) -> crate::Result<Option<bool>> {
            self.reader.poll(&mut self.src)
        }
        /// Bytes received and not handed out.
        pub fn buffered(&self) -> usize {
            self.reader.buffered()
        }
        /// What arrived of the next message.
        pub fn partial(&self) -> &[u8] {
            self.reader.partial()
        }
    }
}
