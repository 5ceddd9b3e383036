//! The line buffer: bytes read from a child, split into lines.
//!
//! It knows nothing of processes: bytes go in (`read_from` or `extend`),
//! lines come out (`take_line`), and patterns look at what is pending. So it
//! is tested on byte slices, and serves pipes, ptys and FIFOs alike.

use std::io;
use std::os::fd::BorrowedFd;

/// How much room is made for one `read(2)`.
const READ_CHUNK: usize = 64 * 1024;

/// A line taken from the buffer, or the news that one was too long.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line without its `\n` or `\r\n`.
    Complete(Vec<u8>),
    /// A line over the limit was discarded (wholly, up to its newline).
    TooLong,
}

#[derive(Debug)]
pub(crate) struct LineBuffer {
    /// Storage; bytes `start..end` are pending. Kept at its full length so a
    /// read writes into initialised memory without zeroing it each time.
    data: Vec<u8>,
    start: usize,
    end: usize,
    /// Where the newline search resumes (no `\n` in `start..scanned`).
    scanned: usize,
    max_line: usize,
    /// Discarding the rest of an over-long line up to its newline.
    skipping: bool,
}

impl LineBuffer {
    pub(crate) fn new(max_line: usize) -> LineBuffer {
        LineBuffer {
            data: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
            max_line,
            skipping: false,
        }
    }

    /// The longest line accepted.
    pub(crate) fn max_line(&self) -> usize {
        self.max_line
    }

    /// The bytes not consumed yet.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Marks the first `n` pending bytes as consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        self.scanned = self.scanned.max(self.start);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
        }
    }

    /// Takes every pending byte.
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let all = self.pending().to_vec();
        self.consume(all.len());
        all
    }

    /// Appends bytes (tests and the fuzz targets).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.data[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// Reads once from `fd` into the buffer. `Ok(0)` is end-of-file.
    pub(crate) fn read_from(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.reserve(READ_CHUNK / 4);
        let n = crate::sys::read(fd, &mut self.data[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// The bytes most recently appended by `read_from`, for transcripts.
    pub(crate) fn last(&self, n: usize) -> &[u8] {
        &self.data[self.end - n..self.end]
    }

    /// Makes room for at least `more` bytes after `end`.
    fn reserve(&mut self, more: usize) {
        if self.data.len() - self.end >= more {
            return;
        }
        // Move pending bytes to the front when that frees enough room.
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < more {
            let want = (self.end + more.max(READ_CHUNK)).next_power_of_two();
            self.data.resize(want, 0);
        }
    }

    /// Takes the next line, if a whole one is pending.
    pub(crate) fn take_line(&mut self) -> Option<Line> {
        loop {
            let newline =
                find_newline(&self.data[self.scanned..self.end]).map(|i| self.scanned + i);
            let Some(nl) = newline else {
                self.scanned = self.end;
                if self.skipping {
                    self.consume(self.end - self.start);
                    return None;
                }
                // A trailing `\r` may be the first half of a `\r\n`, which
                // is not part of the line: it cannot make the line too long.
                let pending = self.pending();
                let len = pending.len() - usize::from(pending.last() == Some(&b'\r'));
                if len > self.max_line {
                    self.consume(self.end - self.start);
                    self.skipping = true;
                    return Some(Line::TooLong);
                }
                return None;
            };
            let line_start = self.start;
            self.consume(nl + 1 - line_start);
            if self.skipping {
                self.skipping = false;
                continue;
            }
            let mut line = &self.data[line_start..nl];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if line.len() > self.max_line {
                return Some(Line::TooLong);
            }
            return Some(Line::Complete(line.to_vec()));
        }
    }

    /// At end-of-file: the last line when it has no newline.
    pub(crate) fn take_unterminated(&mut self) -> Option<Line> {
        if self.skipping {
            self.skipping = false;
            self.consume(self.end - self.start);
            return None;
        }
        if self.start == self.end {
            return None;
        }
        let all = self.take_all();
        Some(if all.len() > self.max_line {
            Line::TooLong
        } else {
            Line::Complete(all)
        })
    }
}

/// The index of the first `\n` in `bytes`.
///
/// `BufRead::skip_until` on a byte slice is std's word-at-a-time `memchr`
/// (no copy, no dependency); a byte-by-byte `position` was a tenth of the
/// time of streaming 100-byte lines.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    use std::io::BufRead;
    let mut rest = bytes;
    let skipped = rest
        .skip_until(b'\n')
        .expect("reading a byte slice cannot fail");
    // Without a newline, everything is skipped and the last byte is not one.
    (skipped > 0 && bytes[skipped - 1] == b'\n').then(|| skipped - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]], max: usize) -> Vec<Line> {
        let mut buf = LineBuffer::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend(chunk);
            while let Some(line) = buf.take_line() {
                out.push(line);
            }
        }
        out.extend(buf.take_unterminated());
        out
    }

    fn complete(s: &str) -> Line {
        Line::Complete(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_on_newline_and_crlf_across_chunks() {
        let lines = lines_of(&[b"ab", b"c\r", b"\nde\n", b"f"], 100);
        assert_eq!(lines, vec![complete("abc"), complete("de"), complete("f")]);
    }

    #[test]
    fn too_long_line_is_skipped_and_the_next_line_survives() {
        let lines = lines_of(&[b"0123456789", b"abcdef\nok\n"], 8);
        assert_eq!(lines, vec![Line::TooLong, complete("ok")]);
        let lines = lines_of(&[b"0123456789\nok\n"], 8);
        assert_eq!(lines, vec![Line::TooLong, complete("ok")]);
    }

    #[test]
    fn every_chunking_gives_the_same_lines() {
        let text: &[u8] = b"one\ntwo\r\n\nthree is longer than ten\nfour";
        let whole = lines_of(&[text], 10);
        for split in 0..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(lines_of(&[a, b], 10), whole, "split at {split}");
        }
    }

    /// What the buffer must give: the input split on `\n`, one `\r`
    /// stripped before each `\n`, lines over `max` too long; the last line
    /// without a newline as it is. (The fuzz target `line_buffer` checks
    /// the same on arbitrary input.)
    fn reference(text: &[u8], max: usize) -> Vec<Line> {
        let mut parts: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        let last = parts.pop().filter(|l| !l.is_empty());
        let parts = parts
            .into_iter()
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        parts
            .chain(last)
            .map(|l| {
                if l.len() > max {
                    Line::TooLong
                } else {
                    Line::Complete(l.to_vec())
                }
            })
            .collect()
    }

    /// Every input of up to 5 bytes from `a`, `\r` and `\n`, cut at every
    /// set of points, for limits 0 to 2: small enough to try them all, and
    /// every line end torn every way. A loop over all of them beats random
    /// sampling (proptest) here: no dependency, no luck, and the same
    /// cases on every run.
    #[test]
    fn every_small_input_in_every_chunking_matches_the_reference() {
        let mut texts: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = texts
                .iter()
                .filter(|t| t.len() == texts.last().map_or(0, Vec::len))
                .flat_map(|t| b"a\r\n".iter().map(move |&c| [t.as_slice(), &[c]].concat()))
                .collect();
            texts.extend(longer);
        }
        for text in &texts {
            let gaps = text.len().saturating_sub(1);
            for cuts in 0u32..1 << gaps {
                let mut chunks = Vec::new();
                let mut at = 0;
                for gap in 0..gaps {
                    if cuts & (1 << gap) != 0 {
                        chunks.push(&text[at..=gap]);
                        at = gap + 1;
                    }
                }
                chunks.push(&text[at..]);
                for max in 0..3 {
                    assert_eq!(
                        lines_of(&chunks, max),
                        reference(text, max),
                        "{chunks:?} with max_line {max}"
                    );
                }
            }
        }
    }

    #[test]
    fn crlf_torn_after_the_cr_at_the_limit_is_not_too_long() {
        // "abc" is 3 bytes: the `\r` of its `\r\n` does not count, even
        // when the `\n` has not arrived yet.
        assert_eq!(lines_of(&[b"abc\r", b"\n"], 3), vec![complete("abc")]);
        assert_eq!(lines_of(&[b"abc\r", b"x\n"], 3), vec![Line::TooLong]);
        assert_eq!(lines_of(&[b"abc\r"], 3), vec![Line::TooLong]);
    }

    #[test]
    fn find_newline_finds_the_first_one() {
        assert_eq!(find_newline(b""), None);
        assert_eq!(find_newline(b"abc"), None);
        assert_eq!(find_newline(b"\n"), Some(0));
        assert_eq!(find_newline(b"ab\ncd\n"), Some(2));
        let long = [b"x".repeat(1000), b"\n".to_vec()].concat();
        assert_eq!(find_newline(&long), Some(1000));
    }

    #[test]
    fn pending_and_consume_keep_order() {
        let mut buf = LineBuffer::new(100);
        buf.extend(b"hello> ");
        assert_eq!(buf.pending(), b"hello> ");
        buf.consume(5);
        assert_eq!(buf.pending(), b"> ");
        buf.extend(b"x\n");
        assert_eq!(buf.take_line(), Some(complete("> x")));
        assert!(buf.pending().is_empty());
    }
}
