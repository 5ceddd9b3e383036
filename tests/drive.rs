//! One behaviour suite through both drivers.
//!
//! A test written with [`both!`] is an `async fn` generic over [`Conv`],
//! the conversation and lifecycle methods the blocking [`duet::Child`] and
//! the async [`duet::tokio::Child`] share. It runs twice: as `blocking`,
//! driving the blocking child (its futures are ready at their first poll:
//! every call blocks inside), and, with the `tokio` feature, as `tokio`,
//! on a current-thread runtime. The two drivers cannot drift apart without
//! one of the pair failing.

#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use duet::{Command, ExitStatus, Match, Output, Pattern, Result, Signal, WatchId};

/// Runs a future whose every step is ready at once (the blocking driver's).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a blocking call returned Pending"),
    }
}

/// A current-thread runtime with IO and time, as the async tests use.
#[cfg(feature = "tokio")]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// What both children can do, with the blocking child's names.
pub trait Conv: Sized {
    fn start(cmd: &mut Command) -> Result<Self>;
    async fn output(cmd: &mut Command) -> Result<Output>;

    fn id(&self) -> u32;
    fn try_wait(&mut self) -> Result<Option<ExitStatus>>;
    fn signal(&mut self, signal: Signal) -> Result<()>;
    fn kill(&mut self) -> Result<()>;
    fn killer(&self) -> duet::Killer;
    fn set_timeout(&mut self, timeout: Duration);
    fn set_transcript(&mut self, out: impl std::io::Write + Send + 'static);
    fn set_window_size(&mut self, rows: u16, cols: u16) -> Result<()>;
    fn set_observer(&mut self, observer: impl FnMut(duet::Observed<'_>) + Send + 'static);
    fn fail_on(&mut self, pattern: Pattern) -> WatchId;
    fn respond(&mut self, pattern: Pattern, reply: &str) -> WatchId;
    fn unwatch(&mut self, id: WatchId);

    async fn send(&mut self, text: &str) -> Result<()>;
    async fn send_line(&mut self, line: &str) -> Result<()>;
    async fn send_bytes(&mut self, bytes: &[u8]) -> Result<()>;
    async fn send_secret(&mut self, text: &str) -> Result<()>;
    async fn send_slow(&mut self, text: &str, per_char: Duration) -> Result<()>;
    async fn send_control(&mut self, c: char) -> Result<()>;
    async fn send_intr(&mut self) -> Result<()>;
    async fn send_eof(&mut self) -> Result<()>;
    async fn close_stdin(&mut self) -> Result<()>;

    async fn read_line(&mut self) -> Result<String>;
    async fn read_line_timeout(&mut self, timeout: Duration) -> Result<String>;
    async fn read_line_bytes(&mut self) -> Result<Vec<u8>>;
    async fn ask(&mut self, line: &str) -> Result<String>;
    async fn read_stderr_line(&mut self) -> Result<String>;
    async fn read_stderr_line_timeout(&mut self, timeout: Duration) -> Result<String>;
    async fn read_available(&mut self, timeout: Duration) -> Result<Vec<u8>>;
    async fn read_stderr_available(&mut self, timeout: Duration) -> Result<Vec<u8>>;
    async fn stays_quiet(&mut self, quiet: Duration) -> Result<bool>;
    async fn stderr_stays_quiet(&mut self, quiet: Duration) -> Result<bool>;
    /// The lines until end-of-file (`lines()` collected).
    async fn lines_to_end(&mut self) -> Result<Vec<String>>;

    async fn expect(&mut self, pattern: impl Into<Pattern>) -> Result<Match>;
    async fn expect_timeout(&mut self, pattern: impl Into<Pattern>, t: Duration) -> Result<Match>;
    async fn expect_any(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)>;
    async fn expect_any_timeout(&mut self, p: &[Pattern], t: Duration) -> Result<(usize, Match)>;
    async fn expect_stderr(&mut self, pattern: impl Into<Pattern>) -> Result<Match>;
    async fn expect_any_stderr(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)>;

    async fn communicate(&mut self, input: &[u8], timeout: Option<Duration>) -> Result<Output>;
    async fn wait(&mut self) -> Result<ExitStatus>;
    async fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>>;
    async fn terminate(&mut self, grace: Duration) -> Result<ExitStatus>;
}

/// `cmd.start::<C>()` spawns with either driver.
pub trait Start {
    fn start<C: Conv>(&mut self) -> Result<C>;
    async fn output_with<C: Conv>(&mut self) -> Result<Output>;
}

impl Start for Command {
    fn start<C: Conv>(&mut self) -> Result<C> {
        C::start(self)
    }
    async fn output_with<C: Conv>(&mut self) -> Result<Output> {
        C::output(self).await
    }
}

/// The methods both children have under the same name, forwarded; `$await`
/// is `.await` for the async child and nothing for the blocking one.
macro_rules! forward {
    ($($await:tt)*) => {
        fn id(&self) -> u32 { Self::id(self) }
        fn try_wait(&mut self) -> Result<Option<ExitStatus>> { Self::try_wait(self) }
        fn signal(&mut self, signal: Signal) -> Result<()> { Self::signal(self, signal) }
        fn kill(&mut self) -> Result<()> { Self::kill(self) }
        fn killer(&self) -> duet::Killer { Self::killer(self) }
        fn set_timeout(&mut self, timeout: Duration) { Self::set_timeout(self, timeout) }
        fn set_transcript(&mut self, out: impl std::io::Write + Send + 'static) {
            Self::set_transcript(self, out)
        }
        fn set_window_size(&mut self, rows: u16, cols: u16) -> Result<()> {
            Self::set_window_size(self, rows, cols)
        }
        fn set_observer(&mut self, observer: impl FnMut(duet::Observed<'_>) + Send + 'static) {
            Self::set_observer(self, observer)
        }
        fn fail_on(&mut self, pattern: Pattern) -> WatchId { Self::fail_on(self, pattern) }
        fn respond(&mut self, pattern: Pattern, reply: &str) -> WatchId {
            Self::respond(self, pattern, reply)
        }
        fn unwatch(&mut self, id: WatchId) { Self::unwatch(self, id) }

        async fn send(&mut self, text: &str) -> Result<()> { Self::send(self, text)$($await)* }
        async fn send_line(&mut self, line: &str) -> Result<()> {
            Self::send_line(self, line)$($await)*
        }
        async fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
            Self::send_bytes(self, bytes)$($await)*
        }
        async fn send_secret(&mut self, text: &str) -> Result<()> {
            Self::send_secret(self, text)$($await)*
        }
        async fn send_slow(&mut self, text: &str, per_char: Duration) -> Result<()> {
            Self::send_slow(self, text, per_char)$($await)*
        }
        async fn send_control(&mut self, c: char) -> Result<()> {
            Self::send_control(self, c)$($await)*
        }
        async fn send_intr(&mut self) -> Result<()> { Self::send_intr(self)$($await)* }
        async fn send_eof(&mut self) -> Result<()> { Self::send_eof(self)$($await)* }
        async fn close_stdin(&mut self) -> Result<()> { Self::close_stdin(self)$($await)* }

        async fn read_line(&mut self) -> Result<String> { Self::read_line(self)$($await)* }
        async fn read_line_timeout(&mut self, timeout: Duration) -> Result<String> {
            Self::read_line_timeout(self, timeout)$($await)*
        }
        async fn read_line_bytes(&mut self) -> Result<Vec<u8>> {
            Self::read_line_bytes(self)$($await)*
        }
        async fn ask(&mut self, line: &str) -> Result<String> { Self::ask(self, line)$($await)* }
        async fn read_stderr_line(&mut self) -> Result<String> {
            Self::read_stderr_line(self)$($await)*
        }
        async fn read_stderr_line_timeout(&mut self, timeout: Duration) -> Result<String> {
            Self::read_stderr_line_timeout(self, timeout)$($await)*
        }
        async fn read_available(&mut self, timeout: Duration) -> Result<Vec<u8>> {
            Self::read_available(self, timeout)$($await)*
        }
        async fn read_stderr_available(&mut self, timeout: Duration) -> Result<Vec<u8>> {
            Self::read_stderr_available(self, timeout)$($await)*
        }
        async fn stays_quiet(&mut self, quiet: Duration) -> Result<bool> {
            Self::stays_quiet(self, quiet)$($await)*
        }
        async fn stderr_stays_quiet(&mut self, quiet: Duration) -> Result<bool> {
            Self::stderr_stays_quiet(self, quiet)$($await)*
        }

        async fn expect(&mut self, pattern: impl Into<Pattern>) -> Result<Match> {
            Self::expect(self, pattern)$($await)*
        }
        async fn expect_timeout(&mut self, pattern: impl Into<Pattern>, t: Duration) -> Result<Match> {
            Self::expect_timeout(self, pattern, t)$($await)*
        }
        async fn expect_any(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)> {
            Self::expect_any(self, patterns)$($await)*
        }
        async fn expect_any_timeout(&mut self, p: &[Pattern], t: Duration) -> Result<(usize, Match)> {
            Self::expect_any_timeout(self, p, t)$($await)*
        }
        async fn expect_stderr(&mut self, pattern: impl Into<Pattern>) -> Result<Match> {
            Self::expect_stderr(self, pattern)$($await)*
        }
        async fn expect_any_stderr(&mut self, patterns: &[Pattern]) -> Result<(usize, Match)> {
            Self::expect_any_stderr(self, patterns)$($await)*
        }

        async fn communicate(&mut self, input: &[u8], timeout: Option<Duration>) -> Result<Output> {
            Self::communicate(self, input, timeout)$($await)*
        }
        async fn wait(&mut self) -> Result<ExitStatus> { Self::wait(self)$($await)* }
        async fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
            Self::wait_timeout(self, timeout)$($await)*
        }
        async fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
            Self::terminate(self, grace)$($await)*
        }
    };
}

impl Conv for duet::Child {
    fn start(cmd: &mut Command) -> Result<Self> {
        cmd.spawn()
    }
    async fn output(cmd: &mut Command) -> Result<Output> {
        cmd.output()
    }
    async fn lines_to_end(&mut self) -> Result<Vec<String>> {
        self.lines().collect()
    }
    forward!();
}

#[cfg(feature = "tokio")]
impl Conv for duet::tokio::Child {
    fn start(cmd: &mut Command) -> Result<Self> {
        cmd.spawn_async()
    }
    async fn output(cmd: &mut Command) -> Result<Output> {
        cmd.output_async().await
    }
    async fn lines_to_end(&mut self) -> Result<Vec<String>> {
        let mut lines = self.lines();
        let mut all = Vec::new();
        while let Some(line) = lines.next_line().await? {
            all.push(line);
        }
        Ok(all)
    }
    forward!(.await);
}

/// `both!(name, ...)`: for each generic `async fn name<C: Conv>()`, the
/// tests `name::blocking` and, with the feature, `name::tokio`. A test fn
/// left out of the list is dead code, which the lints refuse.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn blocking() {
                    crate::drive::block_on(super::$name::<duet::Child>())
                }

                #[cfg(feature = "tokio")]
                #[test]
                fn tokio() {
                    crate::drive::runtime().block_on(super::$name::<duet::tokio::Child>())
                }
            }
        )*
    };
}
pub(crate) use both;
