//! Every deadline serve keeps, as values: the time always comes in as an
//! argument (`now`), never from the clock, so the rules are tested without
//! waiting.
//!
//! - [`Quiet`]: a time that output pushes back: the settle time that ends
//!   PROG's greeting, and `--quiet D`, which ends a reply;
//! - [`ReplyTimer`]: the life of the request being answered: its client's
//!   deadline, then the time its late reply has to end before PROG counts
//!   as not answering;
//! - [`earliest`]: when the loop must wake up at the latest;
//! - [`restart_policy`]: how PROG is restarted, and the backoff between
//!   restarts (the library's, kept by the supervisor whose deadline joins
//!   the others in the loop).

use std::time::{Duration, Instant};

use duet::supervise::{Backoff, Policy, Restart};

/// Due once nothing has arrived for its period; each arrival restarts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    period: Duration,
    until: Instant,
}

impl Quiet {
    /// A quiet time of `period`, starting at `now`.
    pub fn start(period: Duration, now: Instant) -> Quiet {
        Quiet {
            period,
            until: now + period,
        }
    }

    /// Something arrived at `now`: the quiet starts again.
    pub fn touch(&mut self, now: Instant) {
        self.until = now + self.period;
    }

    /// When it is due, unless something arrives before.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// True when nothing arrived for the whole period up to `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.until
    }
}

/// What a [`ReplyTimer`] found when it was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The client's deadline passed: tell it that it timed out. The reply
    /// is still read to its end (and dropped).
    TimedOut,
    /// The late reply has not ended the request's timeout after the client
    /// was told: PROG is not answering.
    NotAnswering,
}

/// The timer of the request being answered.
///
/// Each alarm rings once: first [`Expiry::TimedOut`] at the client's
/// deadline, then [`Expiry::NotAnswering`] the request's timeout later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTimer {
    /// When the client gives up: its timeout from when serve received it.
    deadline: Instant,
    /// The request's own timeout.
    timeout: Duration,
    /// When the client was told that it timed out.
    abandoned: Option<Instant>,
    /// PROG was reported as not answering.
    reported: bool,
}

impl ReplyTimer {
    /// A timer for a request whose client waits until `deadline`, with
    /// `timeout` as its own timeout.
    pub fn new(deadline: Instant, timeout: Duration) -> ReplyTimer {
        ReplyTimer {
            deadline,
            timeout,
            abandoned: None,
            reported: false,
        }
    }

    /// The client's deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The request's own timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True once the client was told it timed out: the rest of the reply
    /// is late, read and dropped.
    pub fn is_late(&self) -> bool {
        self.abandoned.is_some()
    }

    /// True once PROG was reported as not answering.
    pub fn reported(&self) -> bool {
        self.reported
    }

    /// The next alarm, if one is left.
    pub fn next(&self) -> Option<Instant> {
        match self.abandoned {
            None => Some(self.deadline),
            Some(at) if !self.reported => Some(at + self.timeout),
            Some(_) => None,
        }
    }

    /// Rings the alarm that is due at `now`, if any (each rings once).
    pub fn expire(&mut self, now: Instant) -> Option<Expiry> {
        match self.abandoned {
            None if now >= self.deadline => {
                self.abandoned = Some(now);
                Some(Expiry::TimedOut)
            }
            Some(at) if !self.reported && now >= at + self.timeout => {
                self.reported = true;
                Some(Expiry::NotAnswering)
            }
            _ => None,
        }
    }
}

/// The earliest of `times`, if any.
pub fn earliest(times: impl IntoIterator<Item = Instant>) -> Option<Instant> {
    times.into_iter().min()
}

/// How serve restarts PROG: `--restart`, `--max-restarts`, the grace of a
/// stop, and the library's default backoff between restarts. serve never
/// signals a process group: PROG's own children are its business.
pub fn restart_policy(restart: Restart, max_restarts: Option<u32>, grace: Duration) -> Policy {
    Policy {
        restart,
        max_restarts,
        backoff: Backoff::default(),
        grace,
        group: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn quiet_is_pushed_back_by_every_arrival() {
        let t0 = Instant::now();
        let mut quiet = Quiet::start(100 * MS, t0);
        assert!(!quiet.is_due(t0 + 99 * MS));
        quiet.touch(t0 + 50 * MS);
        assert_eq!(quiet.until(), t0 + 150 * MS);
        assert!(!quiet.is_due(t0 + 100 * MS), "the arrival restarted it");
        assert!(quiet.is_due(t0 + 150 * MS));
    }

    #[test]
    fn a_reply_timer_times_out_then_reports_not_answering_once_each() {
        let t0 = Instant::now();
        let mut timer = ReplyTimer::new(t0 + 10 * MS, 10 * MS);
        assert_eq!(timer.next(), Some(t0 + 10 * MS));
        assert_eq!(timer.expire(t0 + 9 * MS), None);
        assert_eq!(timer.expire(t0 + 12 * MS), Some(Expiry::TimedOut));
        assert!(timer.is_late());
        assert_eq!(
            timer.next(),
            Some(t0 + 22 * MS),
            "the timeout once more, from when the client was told"
        );
        assert_eq!(timer.expire(t0 + 21 * MS), None);
        assert_eq!(timer.expire(t0 + 22 * MS), Some(Expiry::NotAnswering));
        assert!(timer.reported());
        assert_eq!(timer.next(), None, "no alarm is left");
        assert_eq!(timer.expire(t0 + 1000 * MS), None);
    }

    #[test]
    fn earliest_of_nothing_is_none() {
        let t0 = Instant::now();
        assert_eq!(earliest([]), None);
        assert_eq!(earliest([t0 + MS, t0, t0 + 2 * MS]), Some(t0));
    }
}
