//! Searching a stream that grows: each call resumes where the last one
//! stopped, so the total work for a pattern is linear in the bytes that
//! arrive, however they are chunked.
//!
//! - A literal is found with `memchr::memmem`; a failed search resumes
//!   `len - 1` bytes before the end (a match may straddle the boundary).
//! - A regex is first *detected* by stepping regex-automata's lazy DFA over
//!   the new bytes only, carrying its state from call to call (the
//!   end-of-input transition is tried on a copy, so `$` matches at the end
//!   of what has arrived, as a search of the whole buffer would). Only when
//!   the DFA says a match exists does the full regex run once, from the
//!   search's origin, to find the match and its groups; that match is
//!   consumed (an expect) or becomes the next origin (a watch), so every
//!   byte is examined a bounded number of times.
//! - A line pattern tests each complete line once.
//!
//! Positions are stream positions (`u64`): a haystack is handed in with the
//! position of its first byte, so a search survives the storage moving.

use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::{Input, Span};

use crate::pattern::{Found, Line as LinePattern, Pattern, Regex as RegexPattern};

/// A haystack: bytes and the stream position of the first one.
#[derive(Clone, Copy)]
pub struct Hay<'a> {
    pub bytes: &'a [u8],
    pub base: u64,
}

impl<'a> Hay<'a> {
    fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// The index of stream position `at` (which must be in the haystack
    /// or at its end).
    fn index(&self, at: u64) -> usize {
        debug_assert!(at >= self.base && at <= self.end());
        (at - self.base) as usize
    }
}

/// The state of one pattern's search over one stream.
#[derive(Debug)]
pub enum Scan {
    /// No match starts before `from`.
    Exact {
        from: u64,
    },
    Regex(RegexScan),
    /// `at` is the start of the next line to test; no newline is in
    /// `at..scanned`.
    Line {
        at: u64,
        scanned: u64,
    },
    /// `Pattern::Eof`, `Pattern::Timeout`: never found in the data.
    Never,
}

impl Scan {
    /// A search for `pattern` whose matches start at `origin` or later.
    pub fn new(pattern: &Pattern, origin: u64) -> Scan {
        match pattern {
            Pattern::Exact(_) => Scan::Exact { from: origin },
            Pattern::Regex(r) => Scan::Regex(RegexScan::new(r, origin)),
            Pattern::Line(_) => Scan::Line {
                at: origin,
                scanned: origin,
            },
            Pattern::Eof | Pattern::Timeout => Scan::Never,
        }
    }

    /// Where the search could still find a match that starts earliest.
    fn origin(&self) -> u64 {
        match self {
            Scan::Exact { from } => *from,
            Scan::Regex(r) => r.origin,
            Scan::Line { at, .. } => *at,
            Scan::Never => u64::MAX,
        }
    }

    /// The bytes from here on must stay in the haystack: from the origin,
    /// and for a regex the few bytes before it that `^`, `$` and `\b` look
    /// back at (a character: at most 4 bytes).
    pub fn needs_from(&self) -> u64 {
        match self {
            Scan::Regex(r) => r.origin.saturating_sub(4),
            other => other.origin(),
        }
    }

    /// The first match in `hay` that starts at or after the search's
    /// origin, looking only at bytes not examined before (`hay` must hold
    /// everything from the origin on, and may only have grown since the
    /// last call). `examined` counts the bytes looked at.
    pub fn find(&mut self, pattern: &Pattern, hay: Hay<'_>, examined: &mut u64) -> Option<Found> {
        if self.origin() > hay.end() {
            // Nothing arrived yet where a match may start (after an empty
            // match at the very end).
            return None;
        }
        match (self, pattern) {
            (Scan::Exact { from }, Pattern::Exact(e)) => {
                let needle = e.text().as_bytes();
                let at = hay.index((*from).max(hay.base));
                let rest = &hay.bytes[at..];
                *examined += rest.len() as u64;
                match e.finder().find(rest) {
                    Some(i) => {
                        let start = hay.base + (at + i) as u64;
                        let end = start + needle.len() as u64;
                        Some(Found {
                            start,
                            end,
                            through: end,
                            groups: Vec::new(),
                        })
                    }
                    None => {
                        let keep = needle.len().saturating_sub(1).min(rest.len());
                        *from = hay.end() - keep as u64;
                        None
                    }
                }
            }
            (Scan::Regex(scan), Pattern::Regex(r)) => scan.find(r, hay, examined),
            (Scan::Line { at, scanned }, Pattern::Line(l)) => {
                find_line(l, at, scanned, hay, examined)
            }
            _ => None,
        }
    }

    /// After a watch's hit ending at `end`: the next occurrence starts there.
    pub fn restart(&mut self, pattern: &Pattern, end: u64) {
        *self = Scan::new(pattern, end);
    }
}

fn find_line(
    l: &LinePattern,
    at: &mut u64,
    scanned: &mut u64,
    hay: Hay<'_>,
    examined: &mut u64,
) -> Option<Found> {
    loop {
        let from = hay.index((*scanned).max(*at).max(hay.base));
        let Some(nl) = memchr::memchr(b'\n', &hay.bytes[from..]).map(|i| from + i) else {
            *examined += (hay.bytes.len() - from) as u64;
            *scanned = hay.end();
            return None;
        };
        *examined += (nl + 1 - from) as u64;
        let start = hay.index((*at).max(hay.base));
        let mut text = &hay.bytes[start..nl];
        *examined += text.len() as u64;
        while let Some(stripped) = text.strip_suffix(b"\r") {
            text = stripped;
        }
        let line_start = hay.base + start as u64;
        *at = hay.base + nl as u64 + 1;
        *scanned = *at;
        if let Some(caps) = l.regex().captures(text) {
            return Some(Found {
                start: line_start,
                end: line_start + text.len() as u64,
                through: *at,
                groups: groups_of(&caps, line_start),
            });
        }
    }
}

fn groups_of(caps: &regex::bytes::Captures<'_>, base: u64) -> Vec<Option<(u64, u64)>> {
    caps.iter()
        .skip(1)
        .map(|g| g.map(|g| (base + g.start() as u64, base + g.end() as u64)))
        .collect()
}

/// A regex search: the lazy DFA's state carried across calls.
#[derive(Debug)]
pub struct RegexScan {
    /// Matches start here or later.
    origin: u64,
    /// Boxed: a cache is large, and most scans are of literals.
    dfa: Option<Box<DfaState>>,
    /// The DFA cannot decide this input (a Unicode word boundary next to a
    /// non-ASCII byte): every call searches with the full regex instead.
    undecidable: bool,
}

#[derive(Debug)]
struct DfaState {
    cache: Cache,
    /// The state after the bytes before `at`; `None` until the first call.
    sid: Option<LazyStateID>,
    at: u64,
    /// The cache's clear count when `sid` was valid: a clear invalidates it.
    clears: usize,
}

/// The lazy DFA could not go on (a quit byte, or it gave up).
struct Undecidable;

impl RegexScan {
    fn new(r: &RegexPattern, origin: u64) -> RegexScan {
        RegexScan {
            origin,
            dfa: r.dfa().map(|dfa| {
                Box::new(DfaState {
                    cache: r.take_cache(dfa),
                    sid: None,
                    at: origin,
                    clears: 0,
                })
            }),
            undecidable: false,
        }
    }

    fn find(&mut self, r: &RegexPattern, hay: Hay<'_>, examined: &mut u64) -> Option<Found> {
        if !self.undecidable
            && let (Some(dfa), Some(state)) = (r.dfa(), self.dfa.as_mut())
        {
            match state.detect(r, dfa, hay, self.origin, examined) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(Undecidable) => self.undecidable = true,
            }
        }
        // A match exists (or the DFA cannot tell): the regex finds it.
        let from = hay.index(self.origin.max(hay.base));
        let found = if r.has_groups() {
            let caps = r.regex().captures_at(hay.bytes, from)?;
            let whole = caps.get(0).expect("group 0 always matches");
            *examined += (whole.end() - from) as u64;
            Found {
                start: hay.base + whole.start() as u64,
                end: hay.base + whole.end() as u64,
                through: hay.base + whole.end() as u64,
                groups: groups_of(&caps, hay.base),
            }
        } else {
            let m = r.regex().find_at(hay.bytes, from);
            *examined += (m.map_or(hay.bytes.len(), |m| m.end()) - from) as u64;
            let m = m?;
            Found {
                start: hay.base + m.start() as u64,
                end: hay.base + m.end() as u64,
                through: hay.base + m.end() as u64,
                groups: Vec::new(),
            }
        };
        Some(found)
    }

    /// Gives the DFA cache back to the pattern for the next search.
    pub fn finish(self, r: &RegexPattern) {
        if let Some(state) = self.dfa {
            r.give_cache(state.cache);
        }
    }
}

impl DfaState {
    /// Steps the DFA over the bytes that arrived since the last call; true
    /// when `hay` (ending where it ends now) holds a match.
    fn detect(
        &mut self,
        r: &RegexPattern,
        dfa: &DFA,
        hay: Hay<'_>,
        origin: u64,
        examined: &mut u64,
    ) -> Result<bool, Undecidable> {
        let cache = &mut self.cache;
        let bytes = hay.bytes;
        let start_at = |cache: &mut Cache, at: usize| {
            dfa.start_state_forward(cache, &Input::new(bytes).range(at..))
                .map_err(|_| Undecidable)
        };
        let mut sid = match self.sid {
            Some(sid) if cache.clear_count() == self.clears => sid,
            _ => {
                // First call, or the cache was cleared under a state we
                // kept: start (again) at the origin.
                let from = hay.index(origin.max(hay.base));
                self.at = hay.base + from as u64;
                start_at(cache, from)?
            }
        };
        if sid.is_match() {
            // Found before and nothing was consumed since.
            self.sid = Some(sid);
            self.clears = cache.clear_count();
            return Ok(true);
        }
        let prefilter = r.prefilter();
        let start = hay.index(self.at);
        let mut at = start;
        // Where the prefilter found nothing this call: step from there on.
        let mut prefilter_done = false;
        while at < bytes.len() && !sid.is_dead() {
            if sid.is_start()
                && !prefilter_done
                && let Some(pre) = prefilter
            {
                // No match is in progress: skip to where one can begin.
                // When no candidate is left, one may still be arriving in
                // the last bytes: step through those.
                let to = match pre.find(bytes, Span::from(at..bytes.len())) {
                    Some(span) => span.start,
                    None => {
                        prefilter_done = true;
                        let tail = pre.max_needle_len().saturating_sub(1);
                        bytes.len().saturating_sub(tail).max(at)
                    }
                };
                if to > at {
                    *examined += (to - at) as u64;
                    at = to;
                    sid = start_at(cache, at)?;
                    if at == bytes.len() {
                        break;
                    }
                }
            }
            let b = bytes[at];
            let next = match (!sid.is_tagged()).then(|| dfa.next_state_untagged(cache, sid, b)) {
                Some(next) if !next.is_unknown() => next,
                _ => dfa.next_state(cache, sid, b).map_err(|_| Undecidable)?,
            };
            *examined += 1;
            at += 1;
            sid = next;
            if sid.is_match() {
                break;
            }
            if sid.is_quit() {
                return Err(Undecidable);
            }
        }
        self.at = hay.base + at as u64;
        self.sid = Some(sid);
        self.clears = cache.clear_count();
        if sid.is_match() {
            return Ok(true);
        }
        if sid.is_dead() || at < bytes.len() {
            return Ok(false);
        }
        // The end of what has arrived, tried on a copy of the state: more
        // bytes continue from `sid`.
        let eoi = dfa.next_eoi_state(cache, sid).map_err(|_| Undecidable)?;
        if cache.clear_count() != self.clears {
            self.sid = None;
        }
        Ok(eoi.is_match())
    }
}

impl Pattern {
    /// An incremental search of this pattern over a buffer of your own
    /// that only grows: each [`Searcher::find`] looks only at the bytes
    /// added since the last call, so feeding a reply a few bytes at a time
    /// costs a constant per byte, as an `expect`
    /// does. For a loop that reads its own descriptors.
    ///
    /// ```
    /// use duet::Pattern;
    /// let mut prompt = Pattern::regex(r"\(gdb\) $")?.searcher();
    /// let mut buffer = b"GNU gdb 13\n(gd".to_vec();
    /// assert_eq!(prompt.find(&buffer), None);
    /// buffer.extend_from_slice(b"b) ");
    /// assert_eq!(prompt.find(&buffer), Some(11..17));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn searcher(&self) -> Searcher {
        Searcher {
            scan: Scan::new(self, 0),
            pattern: self.clone(),
        }
    }
}

/// The search of [`Pattern::searcher`]: a pattern's search state over a
/// growing buffer.
#[derive(Debug)]
pub struct Searcher {
    pattern: Pattern,
    scan: Scan,
}

impl Searcher {
    /// The first match in `haystack` as a range of it, looking only at
    /// what was added since the last call. `haystack` must begin with what
    /// the earlier calls were given (append only); after consuming from
    /// its front, start over with [`reset`](Self::reset). For a
    /// [`Pattern::line`] the range is the line without its line end.
    pub fn find(&mut self, haystack: &[u8]) -> Option<std::ops::Range<usize>> {
        let hay = Hay {
            bytes: haystack,
            base: 0,
        };
        let found = self.scan.find(&self.pattern, hay, &mut 0)?;
        Some(found.start as usize..found.end as usize)
    }

    /// Forgets what was searched: the next [`find`](Self::find) starts at
    /// the beginning of the haystack it is given.
    pub fn reset(&mut self) {
        self.scan.restart(&self.pattern, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` in chunks of `chunk` bytes, searching after each with
    /// one resumed search; returns the first match and the bytes examined.
    fn search_chunked(pattern: &Pattern, text: &[u8], chunk: usize) -> (Option<Found>, u64) {
        let mut scan = Scan::new(pattern, 0);
        let mut examined = 0;
        for end in chunk_ends(text.len(), chunk) {
            let hay = Hay {
                bytes: &text[..end],
                base: 0,
            };
            if let Some(found) = scan.find(pattern, hay, &mut examined) {
                return (Some(found), examined);
            }
        }
        (None, examined)
    }

    /// The same with a new search at each chunk: what resuming must equal.
    fn search_afresh(pattern: &Pattern, text: &[u8], chunk: usize) -> Option<Found> {
        chunk_ends(text.len(), chunk).find_map(|end| {
            let hay = Hay {
                bytes: &text[..end],
                base: 0,
            };
            Scan::new(pattern, 0).find(pattern, hay, &mut 0)
        })
    }

    fn chunk_ends(len: usize, chunk: usize) -> impl Iterator<Item = usize> {
        (1..=len.div_ceil(chunk)).map(move |i| (i * chunk).min(len))
    }

    fn span(found: &Option<Found>) -> Option<(u64, u64)> {
        found.as_ref().map(|f| (f.start, f.end))
    }

    /// The acceptance criterion of linear matching: a pattern at the end of
    /// a long stream fed a few bytes at a time costs a constant times the
    /// input, not the square of it. (A literal re-examines at most its
    /// length less one byte per read, where a match may straddle.)
    #[test]
    fn a_match_at_the_end_of_a_long_stream_fed_in_small_chunks_examines_each_byte_a_few_times() {
        let mut text = b"0123456789 lorem ipsum dolor\n".repeat(20_000);
        text.extend_from_slice(b"result: 42\nDONE");
        let n = text.len() as u64;
        let patterns = [
            (Pattern::exact("DONE"), 4),
            (Pattern::regex(r"^DONE$").unwrap(), 3),
            (Pattern::regex(r"result: (\d+)").unwrap(), 3),
            (Pattern::regex(r"(?s)lorem.*DONE").unwrap(), 3),
            (Pattern::line(r"^result: (\d+)$").unwrap(), 3),
        ];
        for (p, times) in &patterns {
            for chunk in [1, 7, 64, 4096] {
                let (found, examined) = search_chunked(p, &text, chunk);
                assert!(found.is_some(), "{p} in chunks of {chunk}");
                assert!(
                    examined <= times * n,
                    "{p} in chunks of {chunk}: examined {examined} bytes of {n}"
                );
            }
        }
    }

    #[test]
    fn a_resumed_search_finds_what_a_new_search_at_each_read_finds() {
        let text = b"ab\r\nfoo 12\nbar> 345 baz\n> ";
        let patterns = [
            Pattern::exact("> "),
            Pattern::exact("12\nbar"),
            Pattern::regex(r"\d+").unwrap(),
            Pattern::regex(r"^bar").unwrap(),
            Pattern::regex(r"(\d+) baz$").unwrap(),
            Pattern::regex(r"> $").unwrap(),
            Pattern::regex(r"^$").unwrap(),
            Pattern::regex(r"\bbaz\b").unwrap(),
            Pattern::line(r"^\w+$").unwrap(),
            Pattern::line(r"\d").unwrap(),
        ];
        for p in &patterns {
            for end in 0..=text.len() {
                let prefix = &text[..end];
                for chunk in 1..=end.max(1) {
                    let got = search_chunked(p, prefix, chunk).0;
                    let fresh = search_afresh(p, prefix, chunk);
                    assert_eq!(got, fresh, "{p} over {prefix:?} in chunks of {chunk}");
                }
            }
        }
    }

    /// The reference for regexes: the regex crate searching each prefix the
    /// chunks make, as a whole.
    #[test]
    fn regex_search_agrees_with_the_regex_crate_at_every_read() {
        let text = "x=1\r\ny = 22\nname: Ada\n(gdb) ";
        let res = [
            r"(?P<k>\w+) ?= ?(?P<v>\d+)",
            r"\(gdb\) $",
            r"^\w+: (.*)$",
            r"\d+$",
        ];
        for re in res {
            let p = Pattern::regex(re).unwrap();
            let reference = regex::bytes::RegexBuilder::new(re)
                .multi_line(true)
                .crlf(true)
                .build()
                .unwrap();
            for chunk in [1, 3, 100] {
                let expected = chunk_ends(text.len(), chunk).find_map(|end| {
                    let m = reference.find(&text.as_bytes()[..end])?;
                    Some((m.start() as u64, m.end() as u64))
                });
                let got = span(&search_chunked(&p, text.as_bytes(), chunk).0);
                assert_eq!(got, expected, "{re} in chunks of {chunk}");
            }
        }
    }

    #[test]
    fn a_unicode_word_boundary_next_to_non_ascii_still_matches() {
        let p = Pattern::regex(r"\bmot\b").unwrap();
        let text = "é mot é".as_bytes();
        let (found, _) = search_chunked(&p, text, 1);
        assert_eq!(span(&found), Some((3, 6)));
    }

    #[test]
    fn line_patterns_see_only_complete_lines_without_their_carriage_returns() {
        let p = Pattern::line(r"^(\d+)$").unwrap();
        assert_eq!(search_chunked(&p, b"12", 1).0, None);
        let (found, _) = search_chunked(&p, b"x\r\n12\r\r\n", 2);
        let found = found.unwrap();
        assert_eq!((found.start, found.end, found.through), (3, 5, 8));
        assert_eq!(found.groups, vec![Some((3, 5))]);
    }

    #[test]
    fn a_search_resumes_in_a_haystack_whose_storage_moved() {
        let p = Pattern::regex(r"ab+c").unwrap();
        let mut scan = Scan::new(&p, 10);
        let mut examined = 0;
        let stream = b"0123456789xxabbb";
        let hay = Hay {
            bytes: &stream[..],
            base: 0,
        };
        assert_eq!(scan.find(&p, hay, &mut examined), None);
        // The first 8 bytes were dropped from storage; "bc" arrived.
        let moved = b"89xxabbbc";
        let hay = Hay {
            bytes: &moved[..],
            base: 8,
        };
        let found = scan.find(&p, hay, &mut examined).unwrap();
        assert_eq!((found.start, found.end), (12, 17));
    }
}
