//! The conversation core: everything a conversation knows, as plain data.
//!
//! [`Conversation`] holds what arrived on the child's stdout and stderr,
//! frames it into lines, searches it for patterns and runs the watches. It
//! owns no descriptor, reads no clock and makes no system call: a driver
//! feeds it bytes ([`Conversation::receive`]) and asks it for the next
//! event ([`Conversation::poll_line`], [`Conversation::poll_expect`], …),
//! which is either ready or needs more input. Waiting (with `poll(2)` in
//! the blocking `duet::Child`, with readiness in the async one),
//! deadlines and the errors that name a process are the driver's.
//!
//! Because every driver asks the same questions of the same core, framing,
//! `max_line`, patterns, watches and their errors cannot drift apart.

use crate::ansi;

use std::collections::VecDeque;
use std::io;
use std::task::Poll;

use crate::inbox::{Inbox, Line};
use crate::pattern::{Match, Pattern};
use crate::search::{Hay, Scan};
use crate::text::preview;
use crate::watch::{Action, WatchId, Watches};

/// One of the child's output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The child's standard output (on a pty: the terminal's output).
    Stdout = 0,
    /// The child's standard error, when piped.
    Stderr = 1,
}

impl Stream {
    /// `"stdout"` or `"stderr"`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Why a read or expect ended without its result.
#[derive(Debug)]
pub enum Halt {
    /// The stream reached end-of-file first. The driver makes the error:
    /// it knows the process and its status.
    Eof,
    /// Anything else: a watch failed it, a line was too long.
    Failed(Failure),
}

/// What ended a read or expect other than end of file. The drivers turn
/// it into their error type (`duet::Failure::FailOn`, `duet::Failure::LineTooLong`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A [`Action::FailOn`] watch matched. The output stays unconsumed.
    FailOn {
        /// The watch's pattern as it was written.
        pattern: String,
        /// The text it matched.
        matched: String,
        /// What was pending on that stream when it matched (lossily
        /// decoded, truncated for display).
        partial: String,
    },
    /// A line was longer than the limit; it was discarded and the next
    /// read returns the line after it.
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The stream holds `limit` unread bytes (see
    /// [`Conversation::set_max_buffer`]) and the read or expect still
    /// waits: the driver stops reading it (the child blocks when its pipe
    /// fills), and nothing is lost: consuming what is held makes room.
    BufferFull {
        /// The limit in bytes.
        limit: usize,
    },
}

/// An expect in progress: the search state of each of its patterns, kept
/// between calls so that expecting the same patterns again (after a
/// timeout, or from a future that was dropped) resumes instead of starting
/// over. Valid while nothing of the stream is consumed.
#[derive(Debug)]
struct Search {
    stream: Stream,
    /// The stream position the search started at (the pending bytes' start).
    position: u64,
    patterns: Vec<Pattern>,
    scans: Vec<Scan>,
}

impl Search {
    /// Whether this is the search of `patterns` on `s` from `position`.
    fn is_for(&self, s: Stream, position: u64, patterns: &[Pattern]) -> bool {
        self.stream == s
            && self.position == position
            && self
                .patterns
                .iter()
                .map(Pattern::id)
                .eq(patterns.iter().map(Pattern::id))
    }

    /// Gives the regex caches back for the next search.
    fn finish(self) {
        for (scan, pattern) in self.scans.into_iter().zip(&self.patterns) {
            if let (Scan::Regex(scan), Pattern::Regex(r)) = (scan, pattern) {
                scan.finish(r);
            }
        }
    }
}

/// The state of one conversation (see the module docs).
#[derive(Debug)]
pub struct Conversation {
    inboxes: [Option<Inbox>; 2],
    /// Per stream, with [`set_strip_ansi`](Self::set_strip_ansi): the
    /// escape-sequence filter that bytes pass as they arrive.
    filters: [Option<ansi::Filter>; 2],
    search: Option<Search>,
    watches: Watches,
    /// Answers of `respond` watches, not written yet.
    replies: VecDeque<Vec<u8>>,
    /// Matches of `fail_on` watches, not reported yet.
    failures: VecDeque<Failure>,
    /// Bytes looked at by every search so far (the linearity test reads it).
    examined: u64,
    /// Most unread bytes held per stream (see [`Conversation::set_max_buffer`]).
    max_buffer: usize,
}

impl Conversation {
    /// A conversation reading the streams that are piped, with lines of at
    /// most `max_line` bytes.
    pub fn new(stdout: bool, stderr: bool, max_line: usize) -> Conversation {
        let inbox = |piped: bool| piped.then(|| Inbox::new(max_line));
        Conversation {
            inboxes: [inbox(stdout), inbox(stderr)],
            filters: [None, None],
            search: None,
            watches: Watches::default(),
            replies: VecDeque::new(),
            failures: VecDeque::new(),
            examined: 0,
            max_buffer: usize::MAX,
        }
    }

    /// Holds at most `limit` unread bytes per stream (no limit by
    /// default): once a stream holds that many, [`Conversation::is_full`]
    /// tells the driver to stop reading it, and a read or expect that still
    /// waits on it is [`Failure::BufferFull`]. Nothing is dropped.
    pub fn set_max_buffer(&mut self, limit: usize) {
        self.max_buffer = limit.max(1);
    }

    /// The limit of [`Conversation::set_max_buffer`].
    pub fn max_buffer(&self) -> usize {
        self.max_buffer
    }

    /// True when `s` holds [`Conversation::max_buffer`] unread bytes or
    /// more: the driver must not read it until some are consumed.
    pub fn is_full(&self, s: Stream) -> bool {
        self.inbox(s)
            .is_some_and(|inbox| inbox.pending().len() >= self.max_buffer)
    }

    /// Pending on `s` with a full buffer is [`Failure::BufferFull`]: the
    /// driver will not read more, so waiting would never end.
    fn pending_or_full<T>(&self, s: Stream) -> Poll<Result<T, Halt>> {
        if self.is_full(s) {
            Poll::Ready(Err(Halt::Failed(Failure::BufferFull {
                limit: self.max_buffer,
            })))
        } else {
            Poll::Pending
        }
    }

    /// Removes terminal escape sequences from everything that arrives from
    /// now on (see [`ansi`]), before lines, patterns and watches see it.
    pub fn set_strip_ansi(&mut self, on: bool) {
        self.filters = std::array::from_fn(|_| on.then(ansi::Filter::default));
    }

    /// The inbox of `s`, when that stream is piped.
    pub fn inbox(&self, s: Stream) -> Option<&Inbox> {
        self.inboxes[s as usize].as_ref()
    }

    fn inbox_mut(&mut self, s: Stream) -> &mut Inbox {
        self.inboxes[s as usize]
            .as_mut()
            .expect("the driver reads only piped streams")
    }

    /// The bytes of `s` not consumed yet (empty when not piped).
    pub fn pending(&self, s: Stream) -> &[u8] {
        self.inbox(s).map_or(&[], Inbox::pending)
    }

    /// True when `s` reached end-of-file (or is not piped).
    pub fn is_eof(&self, s: Stream) -> bool {
        self.inbox(s).is_none_or(Inbox::is_eof)
    }

    /// True when every piped stream reached end-of-file.
    pub fn all_eof(&self) -> bool {
        self.is_eof(Stream::Stdout) && self.is_eof(Stream::Stderr)
    }

    /// Marks `s` as ended (tests).
    #[cfg(test)]
    pub fn set_eof(&mut self, s: Stream) {
        if let Some(inbox) = self.inboxes[s as usize].as_mut() {
            inbox.set_eof();
        }
    }

    /// Consumes the first `n` pending bytes of `s` and returns them.
    pub fn take_first(&mut self, s: Stream, n: usize) -> Vec<u8> {
        let watched = !self.watches.is_empty();
        let inbox = self.inbox_mut(s);
        if watched {
            // Watches may look back into consumed bytes: keep them in place.
            let taken = inbox.pending()[..n].to_vec();
            inbox.consume(n);
            taken
        } else {
            inbox.take(n)
        }
    }

    /// Takes every pending byte of `s`.
    pub fn take_all(&mut self, s: Stream) -> Vec<u8> {
        self.inboxes[s as usize]
            .as_mut()
            .map(Inbox::take_all)
            .unwrap_or_default()
    }

    /// Total bytes the searches have looked at.
    #[cfg(test)]
    pub fn examined(&self) -> u64 {
        self.examined
    }

    // ---- input -----------------------------------------------------------

    /// Lets `read` append bytes of `s` to its storage (see
    /// [`Inbox::receive`]); the escape-sequence filter (if any) and then the
    /// watches see them at once. Returns how many bytes `read` read (0:
    /// end-of-file), however many the filter kept.
    pub fn receive<F>(&mut self, s: Stream, read: F) -> io::Result<usize>
    where
        F: FnOnce(&mut Vec<u8>, usize) -> io::Result<usize>,
    {
        let filter = &mut self.filters[s as usize];
        let inbox = self.inboxes[s as usize]
            .as_mut()
            .expect("the driver reads only piped streams");
        // Never more than the buffer has room for (a full one is not read).
        let room = self.max_buffer.saturating_sub(inbox.pending().len()).max(1);
        let mut raw = 0;
        let range = inbox.receive(|data, max| {
            let before = data.len();
            raw = read(data, max.min(room))?;
            if let Some(f) = filter {
                if raw == 0 {
                    f.finish(data);
                } else {
                    f.strip_from(data, before);
                }
            }
            Ok(raw)
        })?;
        if !range.is_empty() && !self.watches.is_empty() {
            self.run_watches(s);
        }
        self.inbox_mut(s).skip_arrived();
        Ok(raw)
    }

    /// Appends `bytes` to stream `s`: what a driver read, given as a slice
    /// (drivers that read into the core's own buffer use [`receive`](Self::receive)).
    pub fn feed(&mut self, s: Stream, bytes: &[u8]) {
        self.receive(s, |data, _| {
            data.extend_from_slice(bytes);
            Ok(bytes.len())
        })
        .expect("appending to memory cannot fail");
    }

    /// Tells the inbox of `s` which consumed bytes the watches may still
    /// look back at (a longer match than `max_line` is reported shortened).
    fn keep_for_watches(&mut self, s: Stream) {
        let from = self.watches.needs_from(s as usize).unwrap_or(u64::MAX);
        if let Some(inbox) = self.inboxes[s as usize].as_mut() {
            inbox.keep_from(from);
        }
    }

    fn run_watches(&mut self, s: Stream) {
        let inbox = self.inboxes[s as usize].as_ref().expect("piped");
        let hay = Hay {
            bytes: inbox.stored(),
            base: inbox.stored_base(),
        };
        for watch in self.watches.iter_mut() {
            while let Some(found) =
                watch.scans[s as usize].find(&watch.pattern, hay, &mut self.examined)
            {
                match &watch.action {
                    Action::Respond(reply) => self.replies.push_back(reply.clone()),
                    Action::FailOn => {
                        let text = |a: u64, b: u64| {
                            let a = (a.max(hay.base) - hay.base) as usize;
                            let b = (b - hay.base) as usize;
                            String::from_utf8_lossy(&hay.bytes[a..b]).into_owned()
                        };
                        self.failures.push_back(Failure::FailOn {
                            pattern: source(&watch.pattern),
                            matched: text(found.start, found.end),
                            partial: preview(inbox.pending()),
                        });
                    }
                }
                watch.advance(s as usize, &found);
            }
        }
        self.keep_for_watches(s);
    }

    // ---- watches ---------------------------------------------------------

    /// Adds a watch over every stream, from the bytes not consumed yet on.
    pub fn watch(&mut self, pattern: Pattern, action: Action) -> WatchId {
        let origin = |s: Stream| self.inbox(s).map_or(0, Inbox::position);
        let origins = [origin(Stream::Stdout), origin(Stream::Stderr)];
        let id = self.watches.add(pattern, action, origins);
        for s in [Stream::Stdout, Stream::Stderr] {
            if self.inbox(s).is_some() {
                self.run_watches(s);
            }
        }
        id
    }

    /// Removes a watch; its matches already found stay reported.
    pub fn unwatch(&mut self, id: WatchId) {
        self.watches.remove(id);
        self.keep_for_watches(Stream::Stdout);
        self.keep_for_watches(Stream::Stderr);
    }

    /// The next failure a `fail_on` watch found, not reported yet.
    pub fn take_failure(&mut self) -> Option<Failure> {
        self.failures.pop_front()
    }

    /// True when a `fail_on` watch matched and no read reported it yet.
    pub fn has_failure(&self) -> bool {
        !self.failures.is_empty()
    }

    /// The next answer a `respond` watch wants written.
    pub fn take_reply(&mut self) -> Option<Vec<u8>> {
        self.replies.pop_front()
    }

    // ---- events ----------------------------------------------------------

    /// The next line of `s`. At end-of-file a last line without newline is
    /// a line only when `unterminated_ok`.
    pub fn poll_line(&mut self, s: Stream, unterminated_ok: bool) -> Poll<Result<Vec<u8>, Halt>> {
        if let Some(e) = self.failures.pop_front() {
            return Poll::Ready(Err(Halt::Failed(e)));
        }
        let inbox = self.inbox_mut(s);
        let line = match inbox.take_line() {
            Some(line) => line,
            None if !inbox.is_eof() => return self.pending_or_full(s),
            None if unterminated_ok => match inbox.take_unterminated() {
                Some(line) => line,
                None => return Poll::Ready(Err(Halt::Eof)),
            },
            None => return Poll::Ready(Err(Halt::Eof)),
        };
        Poll::Ready(match line {
            Line::Complete(bytes) => Ok(bytes),
            Line::TooLong => Err(Halt::Failed(Failure::LineTooLong {
                limit: inbox.max_line(),
            })),
        })
    }

    /// The earliest match of any of `patterns` in `s` (the first listed on
    /// a tie); consumes through it. `Pattern::Eof` in the list makes
    /// end-of-file a match of everything left.
    pub fn poll_expect(
        &mut self,
        s: Stream,
        patterns: &[Pattern],
    ) -> Poll<Result<(usize, Match), Halt>> {
        if let Some(e) = self.failures.pop_front() {
            return Poll::Ready(Err(Halt::Failed(e)));
        }
        let position = self.inbox_mut(s).position();
        let mut search = match self.search.take() {
            Some(search) if search.is_for(s, position, patterns) => search,
            other => {
                if let Some(old) = other {
                    old.finish();
                }
                Search {
                    stream: s,
                    position,
                    patterns: patterns.to_vec(),
                    scans: patterns.iter().map(|p| Scan::new(p, position)).collect(),
                }
            }
        };
        let inbox = self.inboxes[s as usize].as_mut().expect("piped");
        let hay = Hay {
            bytes: inbox.pending(),
            base: position,
        };
        let mut best: Option<(usize, crate::pattern::Found)> = None;
        for (i, (scan, pattern)) in search.scans.iter_mut().zip(patterns).enumerate() {
            if let Some(found) = scan.find(pattern, hay, &mut self.examined)
                && best.as_ref().is_none_or(|(_, b)| found.start < b.start)
            {
                best = Some((i, found));
            }
        }
        if let Some((i, found)) = best {
            search.finish();
            let taken = self.take_first(s, (found.through - position) as usize);
            return Poll::Ready(Ok((
                i,
                Match::new(taken, position, &found, patterns[i].names()),
            )));
        }
        if inbox.is_eof() {
            search.finish();
            return Poll::Ready(
                match patterns.iter().position(|p| matches!(p, Pattern::Eof)) {
                    Some(i) => Ok((i, Match::empty(inbox.take_all()))),
                    None => Err(Halt::Eof),
                },
            );
        }
        self.search = Some(search);
        self.pending_or_full(s)
    }

    /// What an expect of `patterns` returns when its time is up:
    /// `Pattern::Timeout`'s match (consuming nothing) if it is listed.
    pub fn timed_out(&mut self, s: Stream, patterns: &[Pattern]) -> Option<(usize, Match)> {
        let i = patterns
            .iter()
            .position(|p| matches!(p, Pattern::Timeout))?;
        Some((i, Match::empty(self.pending(s).to_vec())))
    }

    /// Whatever `s` holds, once it holds something.
    pub fn poll_available(&mut self, s: Stream) -> Poll<Result<Vec<u8>, Halt>> {
        if let Some(e) = self.failures.pop_front() {
            return Poll::Ready(Err(Halt::Failed(e)));
        }
        let inbox = self.inbox_mut(s);
        if !inbox.pending().is_empty() {
            return Poll::Ready(Ok(inbox.take_all()));
        }
        if inbox.is_eof() {
            return Poll::Ready(Err(Halt::Eof));
        }
        Poll::Pending
    }
}

/// The pattern as the user wrote it, for `Failure::FailOn`.
fn source(pattern: &Pattern) -> String {
    match pattern {
        Pattern::Exact(e) => e.text().to_string(),
        Pattern::Regex(r) => r.as_str().to_string(),
        Pattern::Line(l) => l.as_str().to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core() -> Conversation {
        Conversation::new(true, true, 1 << 20)
    }

    #[test]
    fn a_full_buffer_ends_a_wait_keeps_every_byte_and_reads_no_more_than_its_room() {
        let mut c = core();
        c.set_max_buffer(8);
        c.receive(Stream::Stdout, |data, max| {
            assert!(max <= 8, "asked for {max} bytes with room for 8");
            data.extend_from_slice(b"abcdef");
            Ok(6)
        })
        .unwrap();
        assert!(!c.is_full(Stream::Stdout));
        assert!(matches!(c.poll_line(Stream::Stdout, false), Poll::Pending));
        c.receive(Stream::Stdout, |data, max| {
            assert_eq!(max, 2, "only the room left");
            data.extend_from_slice(b"gh");
            Ok(2)
        })
        .unwrap();
        assert!(c.is_full(Stream::Stdout));
        assert!(!c.is_full(Stream::Stderr), "per stream");
        assert!(matches!(
            c.poll_line(Stream::Stdout, false),
            Poll::Ready(Err(Halt::Failed(Failure::BufferFull { limit: 8 })))
        ));
        assert!(matches!(
            c.poll_expect(Stream::Stdout, &[Pattern::exact("z")]),
            Poll::Ready(Err(Halt::Failed(Failure::BufferFull { limit: 8 })))
        ));
        assert_eq!(
            expect(&mut c, &[Pattern::exact("cd")]),
            Some((0, "ab".into(), "cd".into())),
            "what was held is all there"
        );
        assert!(!c.is_full(Stream::Stdout), "consuming made room");
        assert_eq!(c.pending(Stream::Stdout), b"efgh");
    }

    fn expect(c: &mut Conversation, patterns: &[Pattern]) -> Option<(usize, String, String)> {
        match c.poll_expect(Stream::Stdout, patterns) {
            Poll::Ready(Ok((i, m))) => Some((i, m.before().to_string(), m.as_str().to_string())),
            Poll::Ready(Err(e)) => panic!("{e:?}"),
            Poll::Pending => None,
        }
    }

    #[test]
    fn expecting_the_same_patterns_again_resumes_the_search() {
        let mut c = core();
        let p = [Pattern::regex(r"^DONE$").unwrap()];
        let line = b"some output that is not it\n";
        for _ in 0..2000 {
            c.feed(Stream::Stdout, line);
            assert_eq!(expect(&mut c, &p), None);
        }
        c.feed(Stream::Stdout, b"DONE\n");
        let (_, before, matched) = expect(&mut c, &p).unwrap();
        assert_eq!(
            (before.len(), matched.as_str()),
            (2000 * line.len(), "DONE")
        );
        let total = 2000 * line.len() as u64 + 5;
        assert!(
            c.examined() <= 3 * total,
            "examined {} of {total}",
            c.examined()
        );
    }

    #[test]
    fn the_earliest_match_wins_and_the_first_listed_on_a_tie() {
        let mut c = core();
        c.feed(Stream::Stdout, b"first ERR then OK");
        let p = [Pattern::exact("OK"), Pattern::regex("ERR").unwrap()];
        assert_eq!(expect(&mut c, &p), Some((1, "first ".into(), "ERR".into())));
        let p = [Pattern::exact(" then"), Pattern::regex(" t").unwrap()];
        assert_eq!(expect(&mut c, &p), Some((0, "".into(), " then".into())));
    }

    #[test]
    fn a_watch_in_the_same_read_as_the_expected_text_fails_the_expect_and_keeps_it() {
        let mut c = core();
        c.watch(Pattern::exact("Traceback"), Action::FailOn);
        c.feed(Stream::Stdout, b"OK\nTraceback (most recent call last)");
        let p = [Pattern::exact("OK")];
        match c.poll_expect(Stream::Stdout, &p) {
            Poll::Ready(Err(Halt::Failed(Failure::FailOn {
                pattern, matched, ..
            }))) => {
                assert_eq!(
                    (pattern.as_str(), matched.as_str()),
                    ("Traceback", "Traceback")
                );
            }
            other => panic!("{other:?}"),
        }
        // Reported once; the expected text is still there.
        assert_eq!(expect(&mut c, &p), Some((0, "".into(), "OK".into())));
    }

    #[test]
    fn a_watch_sees_stderr_and_text_split_across_reads_once_per_occurrence() {
        let mut c = core();
        let id = c.watch(
            Pattern::regex(r"\[y/N\] ").unwrap(),
            Action::Respond(b"y\n".to_vec()),
        );
        c.feed(Stream::Stderr, b"sure? [y");
        assert_eq!(c.take_reply(), None);
        c.feed(Stream::Stderr, b"/N] again? [y/N] ");
        assert_eq!(c.take_reply(), Some(b"y\n".to_vec()));
        assert_eq!(c.take_reply(), Some(b"y\n".to_vec()));
        assert_eq!(c.take_reply(), None);
        c.unwatch(id);
        c.feed(Stream::Stderr, b"[y/N] ");
        assert_eq!(c.take_reply(), None);
    }

    #[test]
    fn a_watch_looks_back_into_text_an_expect_consumed() {
        let mut c = core();
        c.watch(Pattern::regex(r"Err\w+").unwrap(), Action::FailOn);
        c.feed(Stream::Stdout, b"Err");
        assert!(expect(&mut c, &[Pattern::exact("Er")]).is_some());
        c.feed(Stream::Stdout, b"or!");
        match c.poll_line(Stream::Stdout, false) {
            Poll::Ready(Err(Halt::Failed(Failure::FailOn { matched, .. }))) => {
                assert_eq!(matched, "Error")
            }
            other => panic!("{other:?}"),
        }
    }

    fn failures(c: &mut Conversation) -> Vec<String> {
        std::iter::from_fn(|| c.failures.pop_front())
            .map(|e| match e {
                Failure::FailOn { matched, .. } => matched,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// Found by the `search` fuzz target: a drained buffer was released
    /// while a watch's line had begun in it.
    #[test]
    fn a_watch_keeps_a_line_it_began_when_the_caller_consumed_it() {
        let mut c = core();
        c.watch(Pattern::line(r"\d").unwrap(), Action::FailOn);
        c.feed(Stream::Stdout, b"x1");
        let _ = c.take_first(Stream::Stdout, 2);
        c.feed(Stream::Stdout, b"\n");
        assert_eq!(failures(&mut c), ["x1"]);
    }

    /// Found by the `search` fuzz target: a regex watch lost the byte
    /// before its origin, so `^` matched where the stream had no line start.
    #[test]
    fn a_regex_watch_still_sees_the_byte_before_where_it_resumes() {
        let mut c = core();
        c.watch(Pattern::regex(r"^x").unwrap(), Action::FailOn);
        c.feed(Stream::Stdout, b"ax");
        assert_eq!(failures(&mut c), Vec::<String>::new());
        let _ = c.take_first(Stream::Stdout, 2);
        c.feed(Stream::Stdout, b"x\nx");
        assert_eq!(failures(&mut c), ["x"]);
    }

    #[test]
    fn a_watch_sees_output_buffered_before_it_was_set() {
        let mut c = core();
        c.feed(Stream::Stdout, b"fatal: no\n");
        c.watch(Pattern::exact("fatal"), Action::FailOn);
        assert!(matches!(
            c.poll_line(Stream::Stdout, false),
            Poll::Ready(Err(Halt::Failed(_)))
        ));
        assert_eq!(
            c.poll_line(Stream::Stdout, false),
            Poll::Ready(Ok(b"fatal: no".to_vec()))
        );
    }

    #[test]
    fn escape_sequences_are_gone_before_watches_and_patterns_see_the_output() {
        let mut c = core();
        c.set_strip_ansi(true);
        c.watch(Pattern::exact("red alert"), Action::FailOn);
        // The colour sequence is cut between two reads.
        c.feed(Stream::Stdout, b"\x1b[1;31mred\x1b[");
        c.feed(Stream::Stdout, b"0m alert\n\x1b[");
        assert_eq!(failures(&mut c), ["red alert"]);
        assert_eq!(
            c.poll_line(Stream::Stdout, false),
            Poll::Ready(Ok(b"red alert".to_vec()))
        );
        // What is held back at the end passes at end-of-file.
        assert_eq!(c.pending(Stream::Stdout), b"");
        c.receive(Stream::Stdout, |_, _| Ok(0)).unwrap();
        assert_eq!(c.pending(Stream::Stdout), b"\x1b[");
    }

    #[test]
    fn end_of_file_is_a_match_only_when_listed() {
        let mut c = core();
        c.feed(Stream::Stdout, b"last words");
        c.set_eof(Stream::Stdout);
        assert!(matches!(
            c.poll_expect(Stream::Stdout, &[Pattern::exact("x")]),
            Poll::Ready(Err(Halt::Eof))
        ));
        assert_eq!(
            expect(&mut c, &[Pattern::exact("x"), Pattern::Eof]),
            Some((1, "last words".into(), "".into()))
        );
    }

    impl PartialEq for Halt {
        fn eq(&self, other: &Halt) -> bool {
            matches!((self, other), (Halt::Eof, Halt::Eof))
        }
    }
}
