//! How duet ends: its exit codes, and [`Failure`], the error every
//! subcommand returns when duet exits with a code other than PROG's.
//!
//! Exit codes (coreutils `timeout`/`env` conventions):
//!
//! | code | meaning |
//! |------|---------|
//! | PROG's | PROG's own exit code |
//! | 128+N | PROG died of signal N |
//! | 1 | a script step failed (also parse errors), a `test` script failed, `ask`/`recv` got no reply |
//! | 2 | bad usage (clap) |
//! | 124 | a timeout |
//! | 125 | duet itself failed |
//! | 126 | PROG was found but cannot be run |
//! | 127 | PROG was not found |

use std::fmt;
use std::io;
use std::process::ExitCode;

use duet_script::duration;

/// Why duet stops with an exit code other than PROG's.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// What failed and what to do; empty for a quiet exit.
    pub message: String,
}

/// Exit code for a timeout.
pub const TIMEOUT: u8 = 124;
/// Exit code for duet's own failure.
pub const INTERNAL: u8 = 125;
/// Exit code for a program that cannot be run.
pub const NOT_EXECUTABLE: u8 = 126;
/// Exit code for a program that is not found.
pub const NOT_FOUND: u8 = 127;

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: u8, message: impl fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }

    /// duet's own failure (125).
    pub fn internal(message: impl fmt::Display) -> Failure {
        Failure::new(INTERNAL, message)
    }

    /// A quiet exit with `code`: the reason has been shown or needs no words
    /// (stdout was closed by its reader).
    pub fn quiet(code: u8) -> Failure {
        Failure {
            code,
            message: String::new(),
        }
    }

    /// Shows the message on stderr (`duet: ...`, nothing for a quiet exit)
    /// and gives the exit code: how `main` ends on a failure.
    pub fn report(self) -> ExitCode {
        if !self.message.is_empty() {
            eprintln!("duet: {}", self.message);
        }
        ExitCode::from(self.code)
    }

    /// A library error, with the exit code its kind calls for.
    pub fn from_error(err: duet::Error) -> Failure {
        match &err {
            duet::Error::Spawn { source, .. } => {
                let (code, hint) = match source.kind() {
                    io::ErrorKind::NotFound => (NOT_FOUND, "check the name and PATH"),
                    io::ErrorKind::PermissionDenied => {
                        (NOT_EXECUTABLE, "check that it is an executable file")
                    }
                    _ => (NOT_EXECUTABLE, "check the program and its directory"),
                };
                Failure::new(code, format!("{err}; {hint}"))
            }
            duet::Error::Timeout {
                waited,
                expected,
                partial,
                ..
            } => {
                let arrived = if partial.is_empty() {
                    "nothing arrived".to_string()
                } else {
                    format!("received {partial:?}")
                };
                Failure::new(
                    TIMEOUT,
                    format!(
                        "timed out after {} waiting for {expected}; {arrived}",
                        duration::show(*waited)
                    ),
                )
            }
            _ => Failure::internal(err),
        }
    }

    /// An error writing duet's own stdout: a closed pipe is a quiet exit 0
    /// (the reader has what it wanted, as with `| head`).
    pub fn stdout(err: io::Error) -> Failure {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Failure::quiet(0)
        } else {
            Failure::internal(format!("cannot write to stdout: {err}"))
        }
    }
}

impl From<duet::Error> for Failure {
    fn from(err: duet::Error) -> Failure {
        Failure::from_error(err)
    }
}

/// How PROG ended, as the end of a sentence whose subject is PROG:
/// `exited with code 3`, `was killed by signal 9 (SIGKILL)`.
pub fn ended(status: duet::ExitStatus) -> String {
    if status.signal().is_some() {
        format!("was {status}")
    } else {
        status.to_string()
    }
}

/// PROG's status as duet's exit code: its code, or 128+N for signal N.
pub fn exit_code(status: duet::ExitStatus) -> ExitCode {
    ExitCode::from(status.shell_code().clamp(0, 255) as u8)
}
