//! One output stream's bytes: what arrived and was not consumed, split into
//! lines on demand.
//!
//! Bytes go in through [`Inbox::receive`], which hands the driver the
//! storage to append to (a read into spare capacity: nothing is zeroed or
//! copied first), and come out as lines ([`Inbox::take_line`]) or through a
//! pattern's match ([`Inbox::consume`]). The inbox knows nothing of
//! descriptors: the fuzz target and the unit tests feed it byte slices.

use std::io;

/// The smallest read offered to the driver.
const MIN_READ: usize = 4 * 1024;

/// The largest read offered while output keeps filling what is offered.
const MAX_READ: usize = 1 << 20;

/// A drained buffer keeps at most this much capacity: an idle child costs
/// its parent a few KiB, not the largest burst it ever wrote.
const KEEP_CAPACITY: usize = 8 * 1024;

/// A line taken from the inbox, or the news that one was too long.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its `\n` or `\r\n`.
    Complete(Vec<u8>),
    /// A line over the limit was discarded (wholly, up to its newline).
    TooLong,
}

/// One stream's bytes as they arrived, framed into lines.
///
/// Lines longer than `max_line` are discarded whole (up to their newline)
/// and reported as [`Line::TooLong`]; the line after one is never lost.
///
/// ```
/// use duet_core::{Inbox, Line};
/// let mut inbox = Inbox::new(8);
/// inbox.extend(b"ok\r\nmuch too long\nnext\npart");
/// assert_eq!(inbox.take_line(), Some(Line::Complete(b"ok".to_vec())));
/// assert_eq!(inbox.take_line(), Some(Line::TooLong));
/// assert_eq!(inbox.take_line(), Some(Line::Complete(b"next".to_vec())));
/// assert_eq!(inbox.take_line(), None);
/// assert_eq!(inbox.pending(), b"part");
/// ```
#[derive(Debug)]
pub struct Inbox {
    /// `data[start..]` is pending; `data[..start]` was consumed and is kept
    /// only until the next compaction.
    data: Vec<u8>,
    start: usize,
    /// Bytes consumed before `start`, over the stream's whole life: with
    /// `start` it turns a position in `data` into a position in the stream.
    base: u64,
    /// Where the newline search resumes (no `\n` in `start..scanned`).
    scanned: usize,
    max_line: usize,
    /// Discarding the rest of an over-long line: bytes are dropped as they
    /// arrive, up to and including the next newline.
    skipping: bool,
    eof: bool,
    /// How much the next read is offered; doubles while reads fill it.
    read_size: usize,
    /// Consumed bytes from this stream position on stay in storage (for
    /// watches that look back), at most `max_line` of them; `u64::MAX`:
    /// none.
    keep_from: u64,
}

impl Inbox {
    /// An empty inbox for lines of at most `max_line` bytes.
    pub fn new(max_line: usize) -> Inbox {
        Inbox {
            data: Vec::new(),
            start: 0,
            base: 0,
            scanned: 0,
            max_line,
            skipping: false,
            eof: false,
            read_size: MIN_READ,
            keep_from: u64::MAX,
        }
    }

    /// Keeps consumed bytes from stream position `from` on (see `keep_from`).
    pub fn keep_from(&mut self, from: u64) {
        self.keep_from = from;
    }

    /// The storage index before which consumed bytes may be dropped.
    fn droppable(&self) -> usize {
        let kept = self.keep_from.saturating_sub(self.base);
        let limit = self.start.saturating_sub(self.max_line) as u64;
        kept.max(limit).min(self.start as u64) as usize
    }

    /// The longest line accepted.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The bytes not consumed yet.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.start..]
    }

    /// All bytes still in storage: consumed ones kept until compaction,
    /// then the pending ones. Watches look back into it.
    pub fn stored(&self) -> &[u8] {
        &self.data
    }

    /// The stream position of `stored()[0]`.
    pub fn stored_base(&self) -> u64 {
        self.base
    }

    /// The stream position of `pending()[0]`.
    pub fn position(&self) -> u64 {
        self.base + self.start as u64
    }

    /// The stream position just past the last byte received.
    #[cfg(test)]
    pub fn received(&self) -> u64 {
        self.base + self.data.len() as u64
    }

    /// True once the stream reached end-of-file.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Marks the stream as ended (tests).
    #[cfg(test)]
    pub fn set_eof(&mut self) {
        self.eof = true;
    }

    /// Marks the first `n` pending bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.data.len() - self.start);
        self.start += n;
        self.scanned = self.scanned.max(self.start);
        if self.start == self.data.len() && self.droppable() == self.start {
            self.release();
        }
    }

    /// Takes the first `n` pending bytes. A large prefix at the start of
    /// the storage is handed over as it is and the (usually short) rest is
    /// moved instead: an expect at the end of 100 MB costs no copy of them.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.data.len() - self.start - n;
        if self.start > 0 || n < rest || n < KEEP_CAPACITY || self.keep_from != u64::MAX {
            let taken = self.pending()[..n].to_vec();
            self.consume(n);
            return taken;
        }
        let rest = self.data[n..].to_vec();
        let mut taken = std::mem::replace(&mut self.data, rest);
        taken.truncate(n);
        self.base += n as u64;
        self.scanned = self.scanned.saturating_sub(n);
        if self.data.is_empty() {
            self.release();
        }
        taken
    }

    /// Takes every pending byte.
    pub fn take_all(&mut self) -> Vec<u8> {
        let all = if self.start == 0 {
            // Hand over the storage itself: `communicate` takes hundreds of
            // MB this way without a copy.
            let all = std::mem::take(&mut self.data);
            self.base += all.len() as u64;
            all
        } else {
            self.pending().to_vec()
        };
        self.consume(self.data.len() - self.start);
        all
    }

    /// Everything is consumed: forget the storage's offsets, and give back
    /// memory beyond a small buffer.
    fn release(&mut self) {
        self.base += self.data.len() as u64;
        self.data.clear();
        self.start = 0;
        self.scanned = 0;
        if self.data.capacity() > KEEP_CAPACITY {
            self.data = Vec::new();
            self.read_size = MIN_READ;
        }
    }

    /// Appends bytes that arrived, as a slice.
    pub fn extend(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let received = self.receive(|data, _| {
            data.extend_from_slice(bytes);
            Ok(bytes.len())
        });
        debug_assert!(received.is_ok());
    }

    /// Lets `read` append to the storage: it gets the storage and how many
    /// bytes it should read at most, and returns how many it read (0 is
    /// end-of-file). It must not touch what is there; what it appends may
    /// differ from what it read (a filter may remove or hold back bytes).
    /// Returns the new bytes' range in `stored()`.
    pub fn receive<F>(&mut self, read: F) -> io::Result<std::ops::Range<usize>>
    where
        F: FnOnce(&mut Vec<u8>, usize) -> io::Result<usize>,
    {
        let want = self.read_size;
        self.make_room(want);
        let before = self.data.len();
        let n = read(&mut self.data, want)?;
        debug_assert!(self.data.len() >= before);
        if n == 0 {
            self.eof = true;
        } else if n == want {
            // Bulk output: offer more next time (fewer, larger reads).
            self.read_size = (want * 2).min(MAX_READ);
        }
        Ok(before..self.data.len())
    }

    /// Drops what arrived of an over-long line that is being skipped. Call
    /// after every `receive`, once watches have seen the bytes.
    pub fn skip_arrived(&mut self) {
        if !self.skipping {
            return;
        }
        debug_assert_eq!(self.start, self.scanned.min(self.start));
        match memchr::memchr(b'\n', self.pending()) {
            Some(i) => {
                self.skipping = false;
                self.consume(i + 1);
            }
            None => self.consume(self.data.len() - self.start),
        }
    }

    /// Makes room for `more` bytes without moving more than what is pending
    /// (and what is kept for watches).
    fn make_room(&mut self, more: usize) {
        if self.data.capacity() - self.data.len() >= more {
            return;
        }
        let from = self.droppable();
        // Move to the front when that frees at least half of the storage:
        // each byte is moved a bounded number of times.
        if from > 0 && from >= self.data.len() / 2 {
            self.data.drain(..from);
            self.base += from as u64;
            self.start -= from;
            self.scanned -= from;
        }
        self.data.reserve(more);
    }

    /// Takes the next line, if a whole one is pending.
    pub fn take_line(&mut self) -> Option<Line> {
        let newline = memchr::memchr(b'\n', &self.data[self.scanned..]).map(|i| self.scanned + i);
        let Some(nl) = newline else {
            self.scanned = self.data.len();
            // A trailing `\r` may be the first half of a `\r\n`, which is
            // not part of the line: it cannot make the line too long.
            let pending = self.pending();
            let len = pending.len() - usize::from(pending.last() == Some(&b'\r'));
            if len > self.max_line {
                self.consume(self.data.len() - self.start);
                self.skipping = true;
                return Some(Line::TooLong);
            }
            return None;
        };
        let line_start = self.start;
        let mut line = &self.data[line_start..nl];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        let line = if line.len() > self.max_line {
            Line::TooLong
        } else {
            Line::Complete(line.to_vec())
        };
        self.consume(nl + 1 - line_start);
        Some(line)
    }

    /// At end-of-file: the last line when it has no newline.
    pub fn take_unterminated(&mut self) -> Option<Line> {
        if self.start == self.data.len() {
            return None;
        }
        let all = self.take_all();
        Some(if all.len() > self.max_line {
            Line::TooLong
        } else {
            Line::Complete(all)
        })
    }

    /// The capacity held, for the idle-memory test.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]], max: usize) -> Vec<Line> {
        let mut buf = Inbox::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend(chunk);
            buf.skip_arrived();
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

    /// An over-long line's rest is dropped as it arrives, so a consumer
    /// other than `take_line` (an expect) in between cannot leave the
    /// skipping state behind to eat the next whole line.
    #[test]
    fn consuming_after_a_too_long_line_does_not_swallow_the_next_line() {
        let mut buf = Inbox::new(4);
        buf.extend(b"0123456789");
        assert_eq!(buf.take_line(), Some(Line::TooLong));
        buf.extend(b"rest of it\nab");
        buf.skip_arrived();
        assert_eq!(buf.pending(), b"ab");
        buf.consume(2);
        buf.extend(b"\nnext\n");
        buf.skip_arrived();
        assert_eq!(buf.take_line(), Some(complete("")));
        assert_eq!(buf.take_line(), Some(complete("next")));
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

    /// What the inbox must give: the input split on `\n`, one `\r`
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
    /// every line end torn every way.
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
        assert_eq!(lines_of(&[b"abc\r", b"\n"], 3), vec![complete("abc")]);
        assert_eq!(lines_of(&[b"abc\r", b"x\n"], 3), vec![Line::TooLong]);
        assert_eq!(lines_of(&[b"abc\r"], 3), vec![Line::TooLong]);
    }

    #[test]
    fn pending_and_consume_keep_order_and_positions() {
        let mut buf = Inbox::new(100);
        buf.extend(b"hello> ");
        assert_eq!(buf.pending(), b"hello> ");
        buf.consume(5);
        assert_eq!((buf.pending(), buf.position()), (&b"> "[..], 5));
        buf.extend(b"x\n");
        assert_eq!(buf.take_line(), Some(complete("> x")));
        assert!(buf.pending().is_empty());
        assert_eq!((buf.position(), buf.received()), (9, 9));
    }

    #[test]
    fn a_drained_inbox_gives_back_a_large_buffer() {
        let mut buf = Inbox::new(usize::MAX);
        buf.extend(&vec![b'x'; 1 << 20]);
        assert!(buf.capacity() >= 1 << 20);
        buf.consume(1 << 20);
        assert!(buf.capacity() <= KEEP_CAPACITY, "{}", buf.capacity());
    }

    #[test]
    fn take_all_hands_over_the_storage_and_keeps_positions() {
        let mut buf = Inbox::new(100);
        buf.extend(b"abc");
        assert_eq!(buf.take_all(), b"abc");
        buf.extend(b"de");
        buf.consume(1);
        assert_eq!(buf.take_all(), b"e");
        assert_eq!(buf.position(), 5);
    }

    #[test]
    fn reads_grow_while_they_fill_what_is_offered() {
        let mut buf = Inbox::new(usize::MAX);
        let mut offered = Vec::new();
        for _ in 0..12 {
            buf.receive(|data, max| {
                offered.push(max);
                data.resize(data.len() + max, b'x');
                Ok(max)
            })
            .unwrap();
        }
        assert_eq!(offered[0], MIN_READ);
        assert_eq!(*offered.last().unwrap(), MAX_READ);
        assert!(offered.windows(2).all(|w| w[1] >= w[0]));
    }
}
