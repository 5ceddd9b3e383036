//! Where a reply ends: after N lines, after a line matching a regex, or when
//! the program has been quiet for a while. Shared by `chat` (reading a
//! child) and `serve` (reading bytes for an `ask`).

use std::time::Duration;

use clap::Args;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::parse_duration;

/// `--lines N | --until REGEX | --quiet D`.
#[derive(Debug, Args)]
pub struct FramingArgs {
    /// The reply is N lines (default 1).
    #[arg(long, value_name = "N", group = "framing")]
    pub lines: Option<usize>,
    /// The reply ends with the first line matching REGEX (included).
    #[arg(long, value_name = "REGEX", group = "framing")]
    pub until: Option<String>,
    /// The reply ends when PROG has written nothing for D (e.g. 200ms).
    #[arg(long, value_name = "D", group = "framing", value_parser = parse_duration)]
    pub quiet: Option<Duration>,
}

/// A validated reply framing, also the form `ask` sends to `serve`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// This many lines.
    Lines(usize),
    /// Up to and including the first line matching this regex.
    Until(String),
    /// Until no output for this many milliseconds.
    QuietMs(u64),
}

impl FramingArgs {
    /// Checks the options (a regex that compiles, at least one line).
    pub fn framing(&self) -> Result<Framing, String> {
        if let Some(re) = &self.until {
            Regex::new(re).map_err(|e| format!("--until: bad regex {re:?}: {e}"))?;
            return Ok(Framing::Until(re.clone()));
        }
        if let Some(quiet) = self.quiet {
            if quiet.is_zero() {
                return Err("--quiet must be longer than 0ms".into());
            }
            return Ok(Framing::QuietMs(
                quiet.as_millis().min(u64::MAX as u128) as u64
            ));
        }
        match self.lines {
            Some(0) => Err("--lines must be at least 1".into()),
            Some(n) => Ok(Framing::Lines(n)),
            None => Ok(Framing::Lines(1)),
        }
    }
}

impl Framing {
    /// A phrase for messages: `1 line`, `a line matching "^END$"`, `quiet for 200ms`.
    pub fn describe(&self) -> String {
        match self {
            Framing::Lines(1) => "a reply line".into(),
            Framing::Lines(n) => format!("{n} reply lines"),
            Framing::Until(re) => format!("a line matching {re:?}"),
            Framing::QuietMs(ms) => format!("output followed by {ms}ms of quiet"),
        }
    }
}

/// Collects a reply from bytes as they arrive (for `serve`).
#[derive(Debug)]
pub struct Collector {
    framing: Framing,
    regex: Option<Regex>,
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned for line ends.
    scanned: usize,
    /// Complete lines seen so far.
    lines: usize,
}

impl Collector {
    /// A collector for `framing` (whose regex has been checked).
    pub fn new(framing: Framing) -> Result<Collector, regex::Error> {
        let regex = match &framing {
            Framing::Until(re) => Some(Regex::new(re)?),
            _ => None,
        };
        Ok(Collector {
            framing,
            regex,
            buf: Vec::new(),
            scanned: 0,
            lines: 0,
        })
    }

    /// Adds output. Returns `Some(rest)` once the reply is complete, with the
    /// bytes that came after it (which belong to no request); the reply is
    /// then [`Collector::reply`].
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.buf.extend_from_slice(bytes);
        if matches!(self.framing, Framing::QuietMs(_)) {
            return None;
        }
        while let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            let start = self.scanned;
            let end = start + pos;
            self.scanned = end + 1;
            self.lines += 1;
            let done = match &self.framing {
                Framing::Lines(n) => self.lines >= *n,
                Framing::Until(_) => {
                    let line = trim_cr(&self.buf[start..end]);
                    let text = String::from_utf8_lossy(line);
                    self.regex.as_ref().is_some_and(|re| re.is_match(&text))
                }
                Framing::QuietMs(_) => false,
            };
            if done {
                return Some(self.buf.split_off(self.scanned));
            }
        }
        None
    }

    /// Everything collected (the reply, once `feed` said it is complete).
    pub fn reply(&self) -> &[u8] {
        &self.buf
    }
}

/// A line without a trailing `\r` (output from a pty ends lines with `\r\n`).
pub fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_framing_splits_off_the_rest() {
        let mut c = Collector::new(Framing::Lines(2)).unwrap();
        assert_eq!(c.feed(b"a\nb"), None);
        assert_eq!(c.feed(b"\nc\n"), Some(b"c\n".to_vec()));
        assert_eq!(c.reply(), b"a\nb\n");
    }

    #[test]
    fn until_framing_includes_the_matching_line() {
        let mut c = Collector::new(Framing::Until("^END$".into())).unwrap();
        assert_eq!(c.feed(b"x\nEND\r\n"), Some(Vec::new()));
        assert_eq!(c.reply(), b"x\nEND\r\n");
    }

    #[test]
    fn quiet_framing_never_completes_on_bytes() {
        let mut c = Collector::new(Framing::QuietMs(10)).unwrap();
        assert_eq!(c.feed(b"a\nb\n"), None);
        assert_eq!(c.reply(), b"a\nb\n");
    }
}
