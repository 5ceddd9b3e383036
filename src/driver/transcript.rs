//! A record of every byte exchanged with a child: a text transcript, an
//! observer the caller gave, or both.
//!
//! The transcript has one line per chunk of a line: a timestamp relative
//! to the start, a direction tag and the bytes escaped so that the file is
//! readable and binary-safe (`\n`, `\r`, `\t`, `\xNN`):
//!
//! ```text
//!    0.000 > 2+2\n
//!    0.003 < 4\n
//!    0.004 ! warning: something\n
//!    0.010 # stdin closed
//! ```
//!
//! `>` is what was sent, `<` stdout, `!` stderr, `#` an event.

use std::io::Write;
use std::time::Instant;

/// Which way bytes went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Sent,
    Stdout,
    Stderr,
}

/// Bytes passing between duet and the child, as an observer set with
/// [`Child::set_observer`](crate::Child::set_observer) sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observed<'a> {
    /// Bytes that arrived on stdout, as read: before
    /// [`Command::strip_ansi`](crate::Command::strip_ansi) and before any
    /// read or expect took them.
    Stdout(&'a [u8]),
    /// Bytes that arrived on a piped stderr, as read.
    Stderr(&'a [u8]),
    /// Bytes written to the child's stdin: what was sent (before a pty's
    /// encoding), control characters, `respond` answers. A
    /// [`send_secret`](crate::Child::send_secret) is never shown.
    Sent(&'a [u8]),
}

/// The caller's observer.
type Observer = Box<dyn FnMut(Observed<'_>) + Send>;

pub(crate) struct Transcript {
    out: Option<Box<dyn Write + Send>>,
    observer: Option<Observer>,
    start: Instant,
    failed: bool,
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcript")
            .field("start", &self.start)
            .field("text", &self.out.is_some())
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl Transcript {
    /// A text transcript written to `out`.
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Transcript {
        Transcript {
            out: Some(out),
            observer: None,
            start: Instant::now(),
            failed: false,
        }
    }

    /// Writes the text transcript to `out` from now on (its times count
    /// from now); an observer stays.
    pub(crate) fn set_text(slot: &mut Option<Transcript>, out: Box<dyn Write + Send>) {
        let observer = slot.take().and_then(|t| t.observer);
        *slot = Some(Transcript {
            observer,
            ..Transcript::new(out)
        });
    }

    /// Calls `observer` with every chunk from now on; a text transcript
    /// stays.
    pub(crate) fn set_observer(slot: &mut Option<Transcript>, observer: Observer) {
        match slot {
            Some(t) => t.observer = Some(observer),
            None => {
                *slot = Some(Transcript {
                    out: None,
                    observer: Some(observer),
                    start: Instant::now(),
                    failed: false,
                })
            }
        }
    }

    /// Records `bytes`: the observer sees them as one chunk, the text
    /// transcript gets one line per line of input.
    pub(crate) fn record(&mut self, dir: Direction, bytes: &[u8]) {
        if let Some(observe) = self.observer.as_mut() {
            observe(match dir {
                Direction::Sent => Observed::Sent(bytes),
                Direction::Stdout => Observed::Stdout(bytes),
                Direction::Stderr => Observed::Stderr(bytes),
            });
        }
        if self.out.is_none() {
            return;
        }
        let tag = match dir {
            Direction::Sent => '>',
            Direction::Stdout => '<',
            Direction::Stderr => '!',
        };
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let text = piece.escape_ascii().to_string();
            self.line(tag, &text);
        }
    }

    /// Records something that is not data, such as "stdin closed" (in the
    /// text transcript only).
    pub(crate) fn record_event(&mut self, what: &str) {
        self.line('#', what);
    }

    fn line(&mut self, tag: char, text: &str) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        if self.failed {
            return;
        }
        let t = self.start.elapsed().as_secs_f64();
        if writeln!(out, "{t:9.3} {tag} {text}")
            .and_then(|_| out.flush())
            .is_err()
        {
            // A transcript must never break the conversation it records.
            log::warn!("transcript write failed; transcript stopped");
            self.failed = true;
        }
    }
}
