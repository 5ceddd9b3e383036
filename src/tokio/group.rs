//! Waiting on several async children at once: the futures of each child's
//! `expect_any`, raced in one task. Reads are cancel-safe, so the children
//! that lose the race lose nothing.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::Child;
use crate::driver::errors;
use crate::{Error, Match, Pattern, Result};

/// The async [`duet::expect_any_child`](crate::expect_any_child): waits
/// until the output of one of `children` matches one of `patterns`, for
/// the longest of the children's timeouts, and returns the child's index,
/// the pattern's index and the match, with the same rules (the first
/// child in the slice wins a tie, [`Pattern::Eof`] matches a child whose
/// output ended, a child that ended is otherwise left out, a timeout is
/// [`Error::Timeout`]).
///
/// It polls each child's [`expect_any`](Child::expect_any) in turn inside
/// one future (no task, no thread per child), each waiting on the
/// runtime's reactor; the children whose waits are dropped when another
/// wins consume nothing. With a few children, `tokio::select!` over their
/// `expect` calls does the same.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// use duet::{Command, Pattern};
/// let mut a = Command::new("sh").args(["-c", "read go; echo ready"]).spawn_async()?;
/// let mut b = Command::new("sh").args(["-c", "echo ready; exec cat"]).spawn_async()?;
/// let pats = [Pattern::exact("ready")];
/// let (c, i, _) = duet::tokio::expect_any_child(&mut [&mut a, &mut b], &pats).await?;
/// assert_eq!((c, i), (1, 0));
/// # Ok::<(), duet::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`duet::expect_any_child`](crate::expect_any_child).
///
/// # Cancel safety
///
/// Cancel-safe: a dropped wait consumes nothing from any child.
pub async fn expect_any_child(
    children: &mut [&mut Child],
    patterns: &[Pattern],
) -> Result<(usize, usize, Match)> {
    let timeout = children.iter().map(|c| c.timeout()).max();
    expect_any_child_timeout(children, patterns, timeout.unwrap_or_default()).await
}

/// [`expect_any_child`] with its own timeout.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// use duet::{Command, Pattern};
/// use std::time::Duration;
/// let mut a = Command::new("cat").spawn_async()?;
/// let mut b = Command::new("cat").spawn_async()?;
/// let pats = [Pattern::exact("never")];
/// let err = duet::tokio::expect_any_child_timeout(&mut [&mut a, &mut b], &pats, Duration::from_millis(50))
///     .await
///     .unwrap_err();
/// assert!(err.is_timeout());
/// # Ok::<(), duet::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`duet::expect_any_child`](crate::expect_any_child).
///
/// # Cancel safety
///
/// Cancel-safe, as [`expect_any_child`].
pub async fn expect_any_child_timeout(
    children: &mut [&mut Child],
    patterns: &[Pattern],
    timeout: Duration,
) -> Result<(usize, usize, Match)> {
    check(children, patterns)?;
    let start = Instant::now();
    let raced = {
        // Each child's own wait has no deadline: the race has one.
        type Wait<'a> = Pin<Box<dyn Future<Output = Result<(usize, Match)>> + Send + 'a>>;
        let mut waits: Vec<Option<Wait<'_>>> = children
            .iter_mut()
            .map(|c| Some(Box::pin(c.expect_any_timeout(patterns, Duration::MAX)) as Wait<'_>))
            .collect();
        let mut ended: Option<Error> = None;
        let race = poll_fn(|cx| {
            let mut waiting = false;
            for (c, slot) in waits.iter_mut().enumerate() {
                let Some(wait) = slot.as_mut() else {
                    continue;
                };
                match wait.as_mut().poll(cx) {
                    Poll::Ready(Ok((i, m))) => return Poll::Ready(Ok((c, i, m))),
                    Poll::Ready(Err(e)) if e.is_eof() => {
                        *slot = None;
                        ended.get_or_insert(e);
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => waiting = true,
                }
            }
            if waiting {
                Poll::Pending
            } else {
                Poll::Ready(Err(ended.take().expect("a child ended")))
            }
        });
        match deadline(start, timeout) {
            Some(at) => ::tokio::time::timeout_at(at.into(), race).await.ok(),
            None => Some(race.await),
        }
    };
    match raced {
        Some(found) => found,
        None => Err(timeout_error(children, patterns, start.elapsed())),
    }
}

fn deadline(start: Instant, timeout: Duration) -> Option<Instant> {
    start.checked_add(timeout)
}

fn check(children: &[&mut Child], patterns: &[Pattern]) -> Result<()> {
    let invalid = |what: String| Err(Error::Io(io::Error::new(io::ErrorKind::InvalidInput, what)));
    if children.is_empty() {
        return invalid("expect_any_child needs at least one child".to_string());
    }
    if patterns.iter().any(|p| matches!(p, Pattern::Timeout)) {
        return invalid(
            "expect_any_child takes no Pattern::Timeout (a timeout is Error::Timeout)".to_string(),
        );
    }
    if let Some(c) = children.iter().position(|c| !c.stdout_piped()) {
        return invalid(format!("child {c} of expect_any_child has no piped stdout"));
    }
    Ok(())
}

fn timeout_error(children: &[&mut Child], patterns: &[Pattern], waited: Duration) -> Error {
    let unread: Vec<&[u8]> = children.iter().map(|c| c.unread()).collect();
    errors::group_timeout(&unread, patterns, waited)
}
