//! The crate's one error type.
//!
//! Every error carries what a person needs to act on it: the program, what was
//! expected, what arrived, how long duet waited and, when the child has died,
//! its exit status.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::status::{ExitStatus, Output};

/// Errors returned by duet.
///
/// `Display` gives a one-line explanation meant for people; the fields give
/// the same facts to programs.
///
/// ```
/// use duet::{Command, Error, Pattern};
/// use std::time::Duration;
/// let mut sh = Command::new("sh").args(["-c", "printf 'half a rep'; exec sleep 5"])
///     .timeout(Duration::from_millis(100))
///     .spawn()?;
/// match sh.expect(Pattern::exact("done")) {
///     Err(Error::Timeout { waited, expected, partial, .. }) => {
///         assert!(waited >= Duration::from_millis(100));
///         assert_eq!(expected, r#"exact "done""#);
///         assert_eq!(partial, "half a rep");   // still buffered, not lost
///     }
///     other => panic!("{other:?}"),
/// }
/// let err = Command::new("duet-no-such-program").spawn().unwrap_err();
/// assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::NotFound);
/// # Ok::<(), duet::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The program could not be started: not found, not executable, a bad
    /// working directory, an argument with an interior NUL byte.
    ///
    /// `source` keeps the OS error's kind; its message names the step that
    /// failed (`exec`, `chdir`, …) and the path involved. The step is also
    /// available as a [`SpawnFailure`] through `source.get_ref()`.
    Spawn {
        /// The program as it was given to [`Command::new`](crate::Command::new).
        program: String,
        /// What went wrong, with the failing step in its message.
        source: io::Error,
    },
    /// Nothing matched before the deadline. Every byte that arrived is still
    /// buffered for the next read.
    Timeout {
        /// How long duet waited.
        waited: Duration,
        /// What was expected, for example `a line` or `regex "^\d+$"`.
        expected: String,
        /// What arrived and was not consumed (lossily decoded, truncated for display).
        partial: String,
        /// The last lines the child wrote to a piped stderr, if any.
        stderr: String,
        /// Set when the child had already exited: its output was still open,
        /// held by a descendant that inherited it.
        status: Option<ExitStatus>,
        /// For [`Child::communicate`](crate::Child::communicate) and
        /// [`Command::output`](crate::Command::output): every byte captured
        /// until the timeout (see [`Error::output`]).
        output: Option<Box<Output>>,
    },
    /// The child closed its output before the expected data arrived.
    Eof {
        /// What arrived after the last complete read and was not consumed.
        partial: String,
        /// The child's exit status when it has already exited.
        status: Option<ExitStatus>,
        /// The last lines the child wrote to a piped stderr, if any.
        stderr: String,
    },
    /// A [`fail_on`](crate::Child::fail_on) watch matched the child's
    /// output. The output stays unconsumed: the next read or expect sees it.
    FailOn {
        /// The watch's pattern as it was written.
        pattern: String,
        /// The text it matched.
        matched: String,
        /// What was pending on that stream when it matched (lossily
        /// decoded, truncated for display).
        partial: String,
    },
    /// A line was longer than the limit (`Command::max_line`, default 1 MiB).
    /// The line is discarded; the next read returns the line after it.
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The child's output held `limit` unread bytes (`Command::max_buffer`,
    /// default 1 GiB) and the read or expect still waited: duet stopped
    /// reading it (the child blocks), nothing was dropped, and reading
    /// what is held makes room again.
    BufferFull {
        /// The limit in bytes.
        limit: usize,
    },
    /// A line was not valid UTF-8. The raw bytes are kept here; use
    /// `read_line_bytes` to read such lines without an error.
    InvalidUtf8 {
        /// The line's bytes without the line end.
        bytes: Vec<u8>,
    },
    /// A message was longer than the limit given to `recv_bytes_max`. Its
    /// payload was skipped: the next receive reads the next message.
    MessageTooLong {
        /// The message's length in bytes.
        len: u64,
        /// The limit that was given.
        limit: usize,
    },
    /// `recv_bytes_into` got a buffer shorter than the message. The message
    /// stays readable with a bigger buffer.
    BufferTooShort {
        /// The buffer size the message needs.
        needed: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    Truncated {
        /// Bytes the frame announced (header included when the header itself was cut).
        expected: u64,
        /// Bytes that arrived before the end.
        got: u64,
    },
    /// A message could not be encoded or decoded as JSON.
    Json(serde_json::Error),
    /// A pattern could not be compiled.
    Pattern(regex::Error),
    /// Anything else from the operating system, such as writing to a child
    /// that is gone (`EPIPE`; duet never lets SIGPIPE kill the caller).
    Io(io::Error),
}

/// Convenience alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The exit status of the child, when the error happened after it exited
    /// ([`Error::Eof`], or [`Error::Timeout`] while a descendant held the
    /// output open).
    ///
    /// ```
    /// use duet::Command;
    /// let mut sh = Command::new("sh").args(["-c", "echo partial; exit 3"]).spawn()?;
    /// assert_eq!(sh.read_line()?, "partial");
    /// let err = sh.read_line().unwrap_err();              // closed: Error::Eof
    /// assert_eq!(err.status().and_then(|s| s.code()), Some(3));
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn status(&self) -> Option<ExitStatus> {
        match self {
            Error::Eof { status, .. } | Error::Timeout { status, .. } => *status,
            _ => None,
        }
    }

    /// Everything a [`Child::communicate`](crate::Child::communicate) or
    /// [`Command::output`](crate::Command::output) that timed out had
    /// captured: every byte of stdout and stderr, nothing truncated (its
    /// `status` is the child's status if it had exited, else a placeholder
    /// that [`ExitStatus::code`] and [`ExitStatus::signal`] both show as
    /// `None`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = duet::Command::new("sh")
    ///     .args(["-c", "echo started; sleep 10"])
    ///     .timeout(Duration::from_millis(300))
    ///     .output()
    ///     .unwrap_err();
    /// assert!(err.is_timeout());
    /// assert_eq!(err.output().unwrap().stdout, b"started\n");
    /// ```
    pub fn output(&self) -> Option<&Output> {
        match self {
            Error::Timeout { output, .. } => output.as_deref(),
            _ => None,
        }
    }

    /// True for [`Error::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut cat = duet::Command::new("cat").spawn()?;
    /// let err = cat.read_line_timeout(Duration::from_millis(20)).unwrap_err();
    /// assert!(err.is_timeout() && !err.is_eof());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// True for [`Error::Eof`].
    ///
    /// ```
    /// let mut t = duet::Command::new("true").spawn()?;
    /// let err = t.read_line().unwrap_err();
    /// assert!(err.is_eof() && !err.is_timeout());
    /// # Ok::<(), duet::Error>(())
    /// ```
    pub fn is_eof(&self) -> bool {
        matches!(self, Error::Eof { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spawn { program, source } => write!(f, "cannot run `{program}`: {source}"),
            Error::Timeout {
                waited,
                expected,
                partial,
                stderr,
                status,
                ..
            } => {
                write!(
                    f,
                    "timed out after {} waiting for {expected}; ",
                    crate::text::duration(*waited)
                )?;
                if partial.is_empty() {
                    write!(f, "nothing arrived")?;
                } else {
                    write!(f, "received {partial:?}")?;
                }
                if let Some(status) = status {
                    write!(
                        f,
                        "; the child {} but its output is still open (held by a process it started)",
                        ended(status)
                    )?;
                }
                write_stderr_tail(f, stderr)
            }
            Error::Eof {
                partial,
                status,
                stderr,
            } => {
                write!(f, "the child closed its output")?;
                if let Some(status) = status {
                    write!(f, " and {}", ended(status))?;
                }
                if !partial.is_empty() {
                    write!(f, "; unread output {partial:?}")?;
                }
                write_stderr_tail(f, stderr)
            }
            Error::FailOn {
                pattern,
                matched,
                partial,
            } => {
                write!(
                    f,
                    "the output matched the failure pattern {pattern:?}: {matched:?}"
                )?;
                if !partial.is_empty() {
                    write!(f, "; unread output {partial:?}")?;
                }
                Ok(())
            }
            Error::LineTooLong { limit } => {
                write!(
                    f,
                    "a line was longer than the limit of {limit} bytes and was skipped"
                )
            }
            Error::BufferFull { limit } => write!(
                f,
                "the child's unread output reached the limit of {limit} bytes (max_buffer); \
                 duet stopped reading it until some is consumed"
            ),
            Error::InvalidUtf8 { bytes } => write!(
                f,
                "a line of {} bytes is not valid UTF-8 (use read_line_bytes): {:?}",
                bytes.len(),
                duet_core::text::preview(bytes)
            ),
            Error::MessageTooLong { len, limit } => write!(
                f,
                "a message of {len} bytes is over the limit of {limit} bytes and was skipped"
            ),
            Error::BufferTooShort { needed } => write!(
                f,
                "the buffer is too short: the message needs {needed} bytes and is still readable"
            ),
            Error::Truncated { expected, got } => write!(
                f,
                "the peer closed the connection in the middle of a frame ({got} of {expected} bytes)"
            ),
            Error::Json(e) => write!(f, "JSON message: {e}"),
            Error::Pattern(e) => write!(f, "bad pattern: {e}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

/// How a child ended, as the end of a sentence whose subject is the child.
fn ended(status: &ExitStatus) -> String {
    if status.signal().is_some() {
        format!("was {status}")
    } else {
        status.to_string()
    }
}

fn write_stderr_tail(f: &mut fmt::Formatter<'_>, stderr: &str) -> fmt::Result {
    if stderr.is_empty() {
        Ok(())
    } else {
        write!(f, "; stderr ended with {stderr:?}")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } => Some(source),
            Error::Io(e) => Some(e),
            Error::Json(e) => Some(e),
            Error::Pattern(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Io(io::Error::from(e))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

impl From<regex::Error> for Error {
    fn from(e: regex::Error) -> Self {
        Error::Pattern(e)
    }
}

impl From<duet_core::Failure> for Error {
    fn from(f: duet_core::Failure) -> Self {
        match f {
            duet_core::Failure::FailOn {
                pattern,
                matched,
                partial,
            } => Error::FailOn {
                pattern,
                matched,
                partial,
            },
            duet_core::Failure::LineTooLong { limit } => Error::LineTooLong { limit },
            duet_core::Failure::BufferFull { limit } => Error::BufferFull { limit },
        }
    }
}

impl Error {
    /// A descriptor's read error as the frame codec's source reports it.
    pub(crate) fn into_frame(self) -> duet_core::frame::Error {
        match self {
            Error::Io(e) => duet_core::frame::Error::Io(e),
            e => duet_core::frame::Error::Io(io::Error::from(e)),
        }
    }
}

impl From<duet_core::frame::Error> for Error {
    fn from(e: duet_core::frame::Error) -> Self {
        use duet_core::frame::Error as Frame;
        match e {
            Frame::Eof => Error::Eof {
                partial: String::new(),
                status: None,
                stderr: String::new(),
            },
            Frame::Truncated { expected, got } => Error::Truncated { expected, got },
            Frame::MessageTooLong { len, limit } => Error::MessageTooLong { len, limit },
            Frame::BufferTooShort { needed } => Error::BufferTooShort { needed },
            Frame::Io(e) => Error::Io(e),
            _ => Error::Io(io::Error::other(e)),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Io(inner) => return io::Error::new(inner.kind(), e),
            Error::Spawn { source, .. } => source.kind(),
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Eof { .. } | Error::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            Error::InvalidUtf8 { .. } | Error::Json(_) => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

/// The step of starting a program that failed, carried inside
/// [`Error::Spawn`]'s `source`.
///
/// ```
/// use duet::{Command, Error, SpawnFailure};
/// let err = Command::new("true").current_dir("/no/such/dir").spawn().unwrap_err();
/// let Error::Spawn { source, .. } = &err else { panic!() };
/// let failure = source.get_ref().unwrap().downcast_ref::<SpawnFailure>().unwrap();
/// assert_eq!(failure.step, "chdir to");
/// assert!(err.to_string().contains("/no/such/dir"));
/// ```
#[derive(Debug)]
pub struct SpawnFailure {
    /// `exec`, `chdir to`, `search PATH for`, `argument`, `environment`,
    /// `pass a descriptor as`, `set the user id to`, `set the limit on`, …
    pub step: &'static str,
    /// The path involved (the program or the directory), when there is one.
    pub path: Option<String>,
    /// The OS error.
    pub os: io::Error,
}

impl SpawnFailure {
    pub(crate) fn into_error(self, program: &str) -> Error {
        let kind = self.os.kind();
        Error::Spawn {
            program: program.to_string(),
            source: io::Error::new(kind, self),
        }
    }
}

impl fmt::Display for SpawnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{} {path:?} failed: {}", self.step, self.os),
            None => write!(f, "{} failed: {}", self.step, self.os),
        }
    }
}

impl std::error::Error for SpawnFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.os)
    }
}
