//! Every deadline serve keeps, as values: the time always comes in as an
//! argument (`now`), never from the clock, so the rules are tested without
//! waiting.
//!
//! - [`Quiet`]: a time that output pushes back: the settle time that ends
//!   PROG's greeting, and `--quiet D`, which ends a reply;
//! - [`ReplyTimer`]: the request being answered: its client's deadline;
//! - [`after`]: a deadline from a client's timeout, however large;
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

/// The timer of the request being answered: its client's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTimer {
    /// When the client gives up: its timeout from when serve received it.
    deadline: Instant,
    /// The request's own timeout.
    timeout: Duration,
}

impl ReplyTimer {
    /// A timer for a request whose client waits until `deadline`, with
    /// `timeout` as its own timeout.
    pub fn new(deadline: Instant, timeout: Duration) -> ReplyTimer {
        ReplyTimer { deadline, timeout }
    }

    /// The client's deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The request's own timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True once the client's deadline has come at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.deadline
    }
}

/// The longest time serve counts with: a request's timeout beyond it is
/// taken as this (about 30 years: "never", without overflowing a clock).
pub const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `now + d`, with `d` capped at [`FOREVER`]: a huge timeout from a client
/// is a long wait, never a panic.
pub fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(FOREVER))
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
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
    fn a_reply_timer_is_due_at_its_clients_deadline() {
        let t0 = Instant::now();
        let timer = ReplyTimer::new(t0 + 10 * MS, 10 * MS);
        assert!(!timer.is_due(t0 + 9 * MS));
        assert!(timer.is_due(t0 + 10 * MS));
        assert_eq!(timer.timeout(), 10 * MS);
    }

    #[test]
    fn a_huge_timeout_is_a_long_wait_not_a_panic() {
        let t0 = Instant::now();
        assert_eq!(after(t0, Duration::MAX), t0 + FOREVER);
        assert_eq!(after(t0, 5 * MS), t0 + 5 * MS);
    }

    #[test]
    fn earliest_of_nothing_is_none() {
        let t0 = Instant::now();
        assert_eq!(earliest([]), None);
        assert_eq!(earliest([t0 + MS, t0, t0 + 2 * MS]), Some(t0));
    }
}
