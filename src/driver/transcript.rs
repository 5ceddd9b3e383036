//! A record of every byte exchanged with a child.
//!
//! One line per chunk of a line: a timestamp relative to the start, a
//! direction tag and the bytes escaped so that the file is readable and
//! binary-safe (`\n`, `\r`, `\t`, `\xNN`):
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

pub(crate) struct Transcript {
    out: Box<dyn Write + Send>,
    start: Instant,
    failed: bool,
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcript")
            .field("start", &self.start)
            .finish()
    }
}

impl Transcript {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Transcript {
        Transcript {
            out,
            start: Instant::now(),
            failed: false,
        }
    }

    /// Records `bytes`, one transcript line per line of input.
    pub(crate) fn record(&mut self, dir: Direction, bytes: &[u8]) {
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

    /// Records something that is not data, such as "stdin closed".
    pub(crate) fn record_event(&mut self, what: &str) {
        self.line('#', what);
    }

    fn line(&mut self, tag: char, text: &str) {
        if self.failed {
            return;
        }
        let t = self.start.elapsed().as_secs_f64();
        if writeln!(self.out, "{t:9.3} {tag} {text}")
            .and_then(|_| self.out.flush())
            .is_err()
        {
            // A transcript must never break the conversation it records.
            log::warn!("transcript write failed; transcript stopped");
            self.failed = true;
        }
    }
}
