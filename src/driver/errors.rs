//! The errors of a conversation, built alike by every driver.
//!
//! What a timeout or an end-of-file reports (what was expected, what
//! arrived, the tail of a piped stderr, the exit status) depends only on
//! the conversation core and on what the driver knows about the process,
//! never on how the driver waited. The blocking [`Child`](crate::Child)
//! and the async one both build their errors here, so the two cannot word
//! the same failure differently.

use std::io;
use std::time::Duration;

use crate::text::{last_lines, preview};
use crate::{Error, ExitStatus, Output, Pattern};
use duet_core::{Conversation, Stream};

/// How long an `Error::Eof` waits for the exit status of a child that has
/// just closed its output (so the error can say how it ended).
pub(crate) const EOF_STATUS_GRACE: Duration = Duration::from_millis(200);

/// How many lines of a piped stderr an error shows.
const STDERR_TAIL_LINES: usize = 5;

/// The last lines of a piped stderr that were not consumed.
fn stderr_tail(core: &Conversation) -> String {
    last_lines(core.pending(Stream::Stderr), STDERR_TAIL_LINES)
}

/// A timeout while waiting for `expected` on `s`. `status` is set when the
/// child has exited meanwhile: a descendant holds its output open, and
/// waiting longer would not help (the error says so).
pub(crate) fn timeout(
    core: &Conversation,
    s: Stream,
    waited: Duration,
    expected: String,
    status: Option<ExitStatus>,
) -> Error {
    Error::Timeout {
        waited,
        expected,
        partial: preview(core.pending(s)),
        stderr: stderr_tail(core),
        status,
        output: None,
    }
}

/// A timeout of `communicate`, carrying a copy of everything captured.
pub(crate) fn communicate_timeout(
    core: &Conversation,
    waited: Duration,
    expected: &str,
    status: Option<ExitStatus>,
) -> Error {
    let output = Output {
        status: status.unwrap_or_else(ExitStatus::unknown),
        stdout: core.pending(Stream::Stdout).to_vec(),
        stderr: core.pending(Stream::Stderr).to_vec(),
        still_open: false,
    };
    let mut err = timeout(core, Stream::Stdout, waited, expected.to_string(), status);
    if let Error::Timeout { output: slot, .. } = &mut err {
        *slot = Some(Box::new(output));
    }
    err
}

/// A timeout of a wait on several children (`expect_any_child`):
/// `unread` is what each child's stdout holds.
pub(crate) fn group_timeout(unread: &[&[u8]], patterns: &[Pattern], waited: Duration) -> Error {
    let partial = unread
        .iter()
        .enumerate()
        .map(|(c, bytes)| format!("[{c}] {}", preview(bytes)))
        .collect::<Vec<_>>()
        .join("; ");
    Error::Timeout {
        waited,
        expected: format!(
            "{} from one of {} children",
            describe(patterns),
            unread.len()
        ),
        partial,
        stderr: String::new(),
        status: None,
        output: None,
    }
}

/// The end of `s` came before what a read or expect waited for.
pub(crate) fn eof(core: &Conversation, s: Stream, status: Option<ExitStatus>) -> Error {
    Error::Eof {
        partial: preview(core.pending(s)),
        status,
        stderr: stderr_tail(core),
    }
}

/// What a write that ran out of time was waiting for.
pub(crate) fn unwritten(what: &str, written: usize) -> String {
    format!("{what} ({written} written)")
}

/// What an expect of `patterns` waited for, for its timeout error.
pub(crate) fn describe(patterns: &[Pattern]) -> String {
    let wanted: Vec<String> = patterns
        .iter()
        .filter(|p| !matches!(p, Pattern::Timeout))
        .map(|p| p.to_string())
        .collect();
    match wanted.len() {
        0 => "nothing".to_string(),
        1 => wanted[0].clone(),
        _ => format!("one of [{}]", wanted.join(", ")),
    }
}

/// The byte of the control character `^c`: a letter in either case or one
/// of `@ [ \ ] ^ _ ?`, as pexpect's `sendcontrol`.
pub(crate) fn control_byte(c: char) -> Result<u8, Error> {
    match c {
        'a'..='z' | 'A'..='Z' => Ok(c.to_ascii_uppercase() as u8 - b'@'),
        '@' | '[' | '\\' | ']' | '^' | '_' => Ok(c as u8 - b'@'),
        '?' => Ok(0x7f),
        _ => Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{c:?} has no control character (a letter or one of @ [ \\ ] ^ _ ?)"),
        ))),
    }
}

/// The error for reading a stream that is not piped.
pub(crate) fn not_piped(s: Stream) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("the child's {} is not piped", s.name()),
    ))
}

/// The error for `set_window_size` on a child without a pty.
pub(crate) fn not_a_pty() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::InvalidInput,
        "the child is not on a pty",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_follow_pexpect() {
        let bytes: Vec<u8> = ['c', 'C', '[', '?', '@', '\\', 'z']
            .into_iter()
            .map(|c| control_byte(c).unwrap())
            .collect();
        assert_eq!(bytes, [0x03, 0x03, 0x1b, 0x7f, 0x00, 0x1c, 0x1a]);
        assert!(control_byte('1').unwrap_err().to_string().contains("'1'"));
    }
}
