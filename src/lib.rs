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
//! # Which API for which job
//!
//! | job | API |
//! |---|---|
//! | run a program to the end, capture its output | [`Command::output`], [`Child::communicate`] |
//! | one request line, one reply line | [`Child::ask`], [`Child::send_line`] + [`Child::read_line_timeout`] |
//! | wait for a prompt without newline (`(gdb) `, `>>> `) | [`Child::expect`] with [`Pattern::exact`] |
//! | a reply line that must be whole | [`Pattern::line`] |
//! | several possible outcomes, end of output or timeout among them | [`Child::expect_any`] with [`Pattern::Eof`], [`Pattern::Timeout`] |
//! | fail on an error text wherever it shows up; answer `[y/N]` prompts | [`Child::fail_on`], [`Child::respond`] |
//! | a program that buffers its output on pipes | [`Command::pty`], [`Command::pty_stdout`] |
//! | prompts or errors on stderr | [`Command::stderr`]`(`[`Stdio::piped`]`)`, [`Child::read_stderr_line`], [`Child::expect_stderr`], [`Child::expect_any_stderr`] |
//! | assert that a program holds its output (buffering), or is done | [`Child::stays_quiet`], [`Child::stderr_stays_quiet`] |
//! | colours and cursor motion out of the way of patterns | [`Command::strip_ansi`] |
//! | a live view or a recording of the raw traffic, with times | [`Child::set_observer`], [`Child::set_transcript`] |
//! | ^C, ^D, ^Z to a program on a pty | [`Child::send_intr`], [`Child::send_eof`], [`Child::send_control`] |
//! | stop it, with its descendants | [`Child::terminate`], [`Command::process_group`], [`Command::on_drop`] |
//! | stop it from another thread (a watchdog) while one reads | [`Child::killer`], [`Killer`] |
//! | give it a descriptor, another user, limits, a mask, a session, a name | [`Command::pass_fd`], [`Command::uid`], [`Command::gid`], [`Command::groups`], [`Command::rlimit`], [`Command::umask`], [`Command::setsid`], [`Command::arg0`] |
//! | the same program on another host | [`Command::ssh`], [`Command::ssh_option`] |
//! | many shell commands, each with stdout, stderr and `$?` | [`Shell`] (local or with [`Command::ssh`]) |
//! | whole messages instead of lines (Python's `multiprocessing.Pipe`) | [`channel::pipe`], [`Command::channel`], [`Child::take_channel`] |
//! | named pipes for unrelated processes | [`fifo::FifoDir`], [`fifo::Fifo`] |
//! | keep a program running: restarts, signal forwarding, reaping | [`supervise::Supervisor`] |
//! | children driven from async code, thousands on one thread, cancel-safe reads | `Command::spawn_async`, `duet::tokio` (feature `tokio`) |
//! | the first of several children to answer (Tcl's `expect -i`) | [`expect_any_child`], [`expect_any_child_timeout`] |
//! | programs or devices that drop fast input | [`Child::send_slow`] |
//! | automate a login, then give the terminal to the user | [`Child::interact`] |
//! | your own `poll` loop over children and other descriptors | [`Child::stdout_fd`], [`Child::read_available`], [`Child::stderr_fd`], [`Child::read_stderr_available`] |
//!
//! # Programs on other hosts
//!
//! [`Command::ssh`] runs the program through OpenSSH: the arguments arrive
//! byte for byte, [`env`](Command::env) and [`current_dir`](Command::current_dir)
//! apply on the host, a program missing there is [`Error::Spawn`], and
//! signals, [`Child::terminate`] and dropping the child reach the remote
//! program. Spawns to one host share one connection.
//!
//! ```no_run
//! let mut bc = duet::Command::new("bc").arg("-q").ssh("calc.example.org").spawn()?;
//! assert_eq!(bc.ask("2+2")?, "4");
//! # Ok::<(), duet::Error>(())
//! ```
//!
//! # Shell sessions
//!
//! A [`Shell`] keeps one `sh` or `bash` running and returns each command's
//! stdout, stderr and exit code; prompts, `PROMPT_COMMAND`, echo and output
//! without a final newline cannot desynchronise it.
//!
//! ```
//! let mut sh = duet::Shell::spawn(duet::Command::new("sh"))?;
//! let r = sh.run("cd /; pwd; ls /nope")?;
//! assert_eq!(r.stdout, "/\n");
//! assert!(!r.stderr.is_empty() && r.code != 0);
//! # Ok::<(), duet::Error>(())
//! ```
//!
//! # Feature flags
//!
//! - `tokio` (off by default): `duet::tokio`, the async [`Child`] and
//!   message channel for tokio, with `Command::spawn_async` and
//!   `Command::output_async`: the same conversation core, waiting on the
//!   runtime's reactor.
//!
//! The blocking API needs no feature. The `duet` command is the
//! `duet-cli` package, so a library user compiles none of its
//! dependencies.
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
//! - **Signals.** Spawning, waiting and the conversation install no signal
//!   handler: waits use pidfds, not SIGCHLD. Writing to a child that is gone
//!   returns `BrokenPipe` rather than raising SIGPIPE. The APIs that do
//!   install handlers, process-wide and only while they live, are
//!   [`supervise::SignalWatch`] and [`supervise::Supervisor`] (which holds
//!   one): while one exists, the signals it watches (for the supervisor
//!   SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH and
//!   SIGCHLD) are reported instead of acting. [`Command::ssh`] children
//!   need no handler either; a thread is started only to copy a remote
//!   stdout that is not piped.
//! - **Linux only.** Waiting uses pidfds and `waitid(P_PIDFD)` (Linux 5.4 or later).
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
mod driver;
mod error;
mod group;
mod interact;
mod launch;
mod process;
mod remote;
mod session;
mod shell;
mod spawn;
mod status;
mod sys;
mod text;

pub use child::Child;
pub use command::{
    Command, DEFAULT_MAX_BUFFER, DEFAULT_MAX_LINE, DEFAULT_TIMEOUT, Limit, OnDrop, Stdio, UNLIMITED,
};
pub use driver::Observed;
pub use duet_core::{Exact, Match, Pattern, Searcher, WatchId};
pub use error::{Error, Result, SpawnFailure};
pub use group::{expect_any_child, expect_any_child_timeout};
pub use nix::sys::signal::Signal;
pub use process::Killer;
pub use session::{Lines, Session};
pub use shell::{Shell, ShellOutput};
pub use status::{DRAIN_GRACE, ExitStatus, Output};

/// The window size `(rows, cols)` of the terminal on `fd`, or `None` when
/// `fd` is not a terminal. With [`Child::set_window_size`] a wrapper makes a
/// child's pty follow its own terminal.
pub fn terminal_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u16, u16)> {
    sys::window_size(fd).ok()
}

pub mod channel;
pub mod fifo;
pub mod supervise;
#[cfg(feature = "tokio")]
pub mod tokio;

// The examples of the README and of the library's pages in docs/ are
// doctests: `cargo test --doc` compiles and runs them, so they cannot drift
// from the API. (The shell examples run in tests/docs.rs.)
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/library.md")]
pub struct LibraryDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/design.md")]
pub struct DesignDoctests;

// Every example on this page needs the feature.
#[cfg(all(doctest, feature = "tokio"))]
#[doc = include_str!("../docs/async.md")]
pub struct AsyncDoctests;

/// The compiled forms inside a [`Pattern`]: [`Pattern::Exact`] holds an
/// [`Exact`], [`Pattern::Regex`] a [`Regex`](pattern::Regex),
/// [`Pattern::Line`] a [`Line`](pattern::Line).
pub mod pattern {
    pub use duet_core::patterns::{Exact, Line, Regex};
}
