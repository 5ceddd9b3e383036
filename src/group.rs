//! Waiting on several children at once: the first whose output matches
//! (Tcl Expect's `expect -i` spawn lists, pexpect#50), in one `poll` over
//! every child's descriptors, each child's bytes going into its own
//! conversation core.

use std::io;
use std::task::Poll;
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

use crate::driver::errors;
use crate::{Child, Error, Match, Pattern, Result, sys};
use duet_core::{Halt, Stream};

/// Waits until the output of one of `children` matches one of `patterns`,
/// for the longest of the children's timeouts, and returns the index of
/// that child, the index of the pattern and the match (consumed from that
/// child's stdout, as [`Child::expect_any`] consumes it; the other
/// children lose nothing).
///
/// All children are waited on in one `poll(2)`, with no thread and no busy
/// loop; while it waits, duet reads every child's stdout and piped stderr
/// (no child blocks on a full pipe), and each child's watches act on its
/// own output ([`Child::respond`] answers, [`Child::fail_on`] ends the
/// wait with [`Error::FailOn`]).
///
/// When several children have a match ready, the first in the slice wins;
/// call again for the others. [`Pattern::Eof`] matches a child whose
/// output has ended (with what it left unread as the match's `before()`).
/// Without it in the list, a child whose output ended is left out of the
/// wait, and the call ends with [`Error::Eof`] only when every child's
/// output has ended.
///
/// ```
/// use duet::{Command, Pattern};
/// let mut a = Command::new("sh").args(["-c", "read go; echo ready"]).spawn()?;
/// let mut b = Command::new("sh").args(["-c", "echo ready; exec cat"]).spawn()?;
/// let pats = [Pattern::exact("ready"), Pattern::Eof];
/// let (c, i, _) = duet::expect_any_child(&mut [&mut a, &mut b], &pats)?;
/// assert_eq!((c, i), (1, 0));            // b was ready first; a is still waiting
/// a.send_line("go")?;
/// let (c, i, _) = duet::expect_any_child(&mut [&mut a, &mut b], &pats)?;
/// assert_eq!((c, i), (0, 0));
/// let (c, i, _) = duet::expect_any_child(&mut [&mut a, &mut b], &pats)?;
/// assert_eq!((c, i), (0, 1));            // a's output ended
/// # Ok::<(), duet::Error>(())
/// ```
///
/// # Errors
/// [`Error::Timeout`] when nothing matched in time (its `partial` shows
/// what each child left unread); [`Error::FailOn`] from a child's watch;
/// [`Error::Eof`] as above; `Error::Io` with `InvalidInput` for an empty
/// list of children, a child whose stdout is not piped, or
/// [`Pattern::Timeout`] in the list (which child would it name?).
pub fn expect_any_child(
    children: &mut [&mut Child],
    patterns: &[Pattern],
) -> Result<(usize, usize, Match)> {
    let timeout = children.iter().map(|c| c.timeout()).max();
    expect_any_child_timeout(children, patterns, timeout.unwrap_or_default())
}

/// [`expect_any_child`] with its own timeout.
///
/// ```
/// use duet::{Command, Pattern};
/// use std::time::Duration;
/// let mut a = Command::new("cat").spawn()?;
/// let mut b = Command::new("cat").spawn()?;
/// let err = duet::expect_any_child_timeout(
///     &mut [&mut a, &mut b],
///     &[Pattern::exact("never")],
///     Duration::from_millis(50),
/// )
/// .unwrap_err();
/// assert!(err.is_timeout());
/// # Ok::<(), duet::Error>(())
/// ```
///
/// # Errors
/// As [`expect_any_child`].
pub fn expect_any_child_timeout(
    children: &mut [&mut Child],
    patterns: &[Pattern],
    timeout: Duration,
) -> Result<(usize, usize, Match)> {
    check(children, patterns)?;
    let start = Instant::now();
    let deadline = start.checked_add(timeout);
    // (child, stream) of each descriptor in the poll set, reused.
    let mut slots: Vec<(usize, Stream)> = Vec::with_capacity(children.len() * 2);
    loop {
        let mut waiting = false;
        for (c, child) in children.iter_mut().enumerate() {
            let session = child.session_mut();
            session.streams.flush_replies(deadline)?;
            match session.streams.core.poll_expect(Stream::Stdout, patterns) {
                Poll::Ready(Ok((i, m))) => return Ok((c, i, m)),
                Poll::Ready(Err(Halt::Eof)) => {}
                Poll::Ready(Err(halt)) => return Err(session.halted(Stream::Stdout, halt)),
                Poll::Pending => waiting = true,
            }
        }
        if !waiting {
            // Every child's output ended, and no pattern is `Eof`.
            let session = children[0].session_mut();
            return Err(session.halted(Stream::Stdout, Halt::Eof));
        }
        slots.clear();
        let ready: Vec<bool> = {
            let mut fds = Vec::with_capacity(children.len() * 2);
            for (c, child) in children.iter().enumerate() {
                let streams = &child.session().streams;
                for s in [Stream::Stdout, Stream::Stderr] {
                    if let Some(fd) = streams.output_fd(s)
                        && !streams.core.is_eof(s)
                    {
                        fds.push(sys::poll_fd(fd, PollFlags::POLLIN));
                        slots.push((c, s));
                    }
                }
            }
            if sys::poll(&mut fds, deadline)? == 0 {
                if deadline.is_some_and(|d| Instant::now() < d) {
                    continue;
                }
                return Err(timeout_error(children, patterns, start.elapsed()));
            }
            fds.iter().map(|fd| fd.any().unwrap_or(true)).collect()
        };
        for (&(c, s), _) in slots.iter().zip(&ready).filter(|(_, r)| **r) {
            children[c].session_mut().streams.read_stream(s)?;
        }
    }
}

fn check(children: &[&mut Child], patterns: &[Pattern]) -> Result<()> {
    let invalid = |what: &str| {
        Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            what.to_string(),
        )))
    };
    if children.is_empty() {
        return invalid("expect_any_child needs at least one child");
    }
    if patterns.iter().any(|p| matches!(p, Pattern::Timeout)) {
        return invalid("expect_any_child takes no Pattern::Timeout (a timeout is Error::Timeout)");
    }
    if let Some(c) = children
        .iter()
        .position(|c| c.session().streams.core.inbox(Stream::Stdout).is_none())
    {
        return invalid(&format!(
            "child {c} of expect_any_child has no piped stdout"
        ));
    }
    Ok(())
}

fn timeout_error(children: &[&mut Child], patterns: &[Pattern], waited: Duration) -> Error {
    let unread: Vec<&[u8]> = children
        .iter()
        .map(|c| c.session().streams.core.pending(Stream::Stdout))
        .collect();
    errors::group_timeout(&unread, patterns, waited)
}
