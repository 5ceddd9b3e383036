//! Recordings in asciicast v2, the format `asciinema play` shows: a JSON
//! header line, then one JSON array per event, `[seconds, "o", data]` for
//! output and `[seconds, "i", data]` for input.
//!
//! Output from pipes has bare `\n` line ends, which a terminal would show
//! as a staircase; they are written as `\r\n`, as a terminal's driver would
//! (output from a pty already has them). Data is UTF-8: a character cut
//! between two reads is joined, bytes that are not UTF-8 become U+FFFD.
//! A secret (`send-secret`) is not recorded.
//!
//! `asciinema play` does not display `"i"` events, so a recording of a
//! failure would hide the request that failed: unless a terminal echoes the
//! input (`pty-echo on`), each `"i"` event is followed by an `"o"` event at
//! the same time that shows the sent text in bold cyan
//! ([`INPUT_STYLE`]), newlines as line ends and other control
//! characters as `^X` (`close-stdin` shows as `^D`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// Where an event's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The program's stdout.
    Stdout,
    /// The program's stderr.
    Stderr,
    /// What was sent to the program.
    Input,
}

/// What the header describes.
#[derive(Debug)]
pub struct Screen<'a> {
    /// Terminal size.
    pub rows: u16,
    /// Terminal size.
    pub cols: u16,
    /// The program and its arguments.
    pub command: &'a str,
    /// A title: the script's name.
    pub title: &'a str,
    /// The program's `TERM`, if it has one.
    pub term: Option<&'a str>,
    /// True when output comes from pipes (bare `\n` line ends).
    pub pipes: bool,
    /// Show what is sent as output too (when no terminal echoes it).
    pub show_input: bool,
}

/// A recording being written.
#[derive(Debug)]
pub struct Cast {
    out: BufWriter<File>,
    path: PathBuf,
    start: Instant,
    last: f64,
    pipes: bool,
    show_input: bool,
    /// Per source: an unfinished UTF-8 character, and whether the last byte was `\r`.
    carry: [(Vec<u8>, bool); 3],
    error: Option<io::Error>,
}

impl Cast {
    /// Creates (truncates) `path` and writes the header; event times count
    /// from `start`.
    pub fn create(path: &Path, start: Instant, screen: &Screen<'_>) -> io::Result<Cast> {
        let mut out = BufWriter::new(File::create(path)?);
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut env = serde_json::Map::new();
        if let Some(term) = screen.term {
            env.insert("TERM".into(), term.into());
        }
        let header = serde_json::json!({
            "version": 2,
            "width": screen.cols,
            "height": screen.rows,
            "timestamp": timestamp,
            "command": screen.command,
            "title": screen.title,
            "env": env,
        });
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        Ok(Cast {
            out,
            path: path.to_path_buf(),
            start,
            last: 0.0,
            pipes: screen.pipes,
            show_input: screen.show_input,
            carry: Default::default(),
            error: None,
        })
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records bytes from `source` that arrived (or were sent) at `at`.
    pub fn event(&mut self, source: Source, at: Instant, bytes: &[u8]) {
        if self.error.is_some() || bytes.is_empty() {
            return;
        }
        let slot = source as usize;
        let (carry, after_cr) = &mut self.carry[slot];
        carry.extend_from_slice(bytes);
        let (mut text, rest) = decode(carry);
        *carry = rest;
        if self.pipes && source != Source::Input {
            let mut translated = String::with_capacity(text.len() + 16);
            for c in text.chars() {
                if c == '\n' && !*after_cr {
                    translated.push('\r');
                }
                *after_cr = c == '\r';
                translated.push(c);
            }
            text = translated;
        }
        if text.is_empty() {
            return;
        }
        // Events in order of time, even when a read is handed over late.
        let t = (at.saturating_duration_since(self.start).as_secs_f64() * 1e6).round() / 1e6;
        let t = t.max(self.last);
        self.last = t;
        let kind = if source == Source::Input { "i" } else { "o" };
        let mut written = serde_json::to_writer(&mut self.out, &(t, kind, &text))
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        // `asciinema play` does not show "i" events: what was sent is
        // shown as output too, in bold cyan, when no terminal echoes it.
        if source == Source::Input && self.show_input && written.is_ok() {
            written = serde_json::to_writer(&mut self.out, &(t, "o", shown_input(&text)))
                .map_err(io::Error::from)
                .and_then(|()| self.out.write_all(b"\n"));
        }
        if let Err(e) = written {
            self.error = Some(e);
        }
    }

    /// Writes what is left and reports the first write error.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

/// Joins recordings into one, each after the one before and headed by
/// its title (`duet test --cast FILE`): the terminal is as large as the
/// largest, and a second passes between two sessions.
pub fn concat(out: &Path, command: &str, parts: &[(String, PathBuf)]) -> io::Result<()> {
    let mut sessions = Vec::new();
    let (mut width, mut height) = (1u64, 1u64);
    for (title, path) in parts {
        let text = std::fs::read_to_string(path)?;
        let mut lines = text.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap_or("{}"))?;
        width = width.max(header["width"].as_u64().unwrap_or(80));
        height = height.max(header["height"].as_u64().unwrap_or(24));
        let events = lines
            .map(|l| serde_json::from_str::<(f64, String, String)>(l).map_err(io::Error::from))
            .collect::<io::Result<Vec<_>>>()?;
        sessions.push((title, events));
    }
    let mut w = BufWriter::new(File::create(out)?);
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = serde_json::json!({
        "version": 2,
        "width": width,
        "height": height,
        "timestamp": timestamp,
        "command": command,
        "title": command,
    });
    serde_json::to_writer(&mut w, &header)?;
    w.write_all(b"\n")?;
    let mut offset = 0.0f64;
    for (title, events) in sessions {
        let banner = format!("\r\n== {title} ==\r\n");
        serde_json::to_writer(&mut w, &(offset, "o", banner))?;
        w.write_all(b"\n")?;
        let start = offset + 0.5;
        let mut last = start;
        for (t, kind, data) in events {
            last = start + t;
            serde_json::to_writer(&mut w, &(((last) * 1e6).round() / 1e6, kind, data))?;
            w.write_all(b"\n")?;
        }
        offset = last + 1.0;
    }
    w.flush()
}

/// Sent text as the recording shows it: bold cyan, a newline as a
/// terminal's line end, other control characters as `^X`.
pub fn shown_input(text: &str) -> String {
    let mut out = String::from(INPUT_STYLE);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\r\n"),
            '\t' => out.push('\t'),
            '\x7f' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(c as u8 + b'@'));
            }
            c => out.push(c),
        }
    }
    out.push_str("\x1b[0m");
    out
}

/// How sent text starts in a recording's output (bold cyan).
pub const INPUT_STYLE: &str = "\x1b[1;36m";

/// Decodes as much of `bytes` as is UTF-8 (U+FFFD for invalid bytes);
/// returns the text and an unfinished character at the end.
fn decode(bytes: &[u8]) -> (String, Vec<u8>) {
    let mut text = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                text.push_str(s);
                return (text, Vec::new());
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                text.push_str(std::str::from_utf8(good).expect("checked as UTF-8"));
                match e.error_len() {
                    Some(n) => {
                        text.push('\u{fffd}');
                        rest = &bad[n..];
                    }
                    None => return (text, bad.to_vec()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_joins_characters_cut_between_reads() {
        let e = "é".as_bytes();
        assert_eq!(decode(&e[..1]), (String::new(), e[..1].to_vec()));
        assert_eq!(decode(e), ("é".to_string(), Vec::new()));
        assert_eq!(decode(b"a\xffb"), ("a\u{fffd}b".to_string(), Vec::new()));
    }
}
