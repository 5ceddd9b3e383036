//! Patterns for `expect` and watches, and what a match returns: values
//! only. How a pattern is searched for in a growing stream is `search`,
//! which builds on this module.
//!
//! A pattern is a value: cheap to clone (the compiled parts are shared), so
//! it can be kept in a list and used for every expect of a conversation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use regex::bytes::{Regex as BytesRegex, RegexBuilder};
use regex_automata::MatchKind;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::prefilter::Prefilter;
use regex_automata::util::syntax;

/// What `Child::expect` waits for.
///
/// A pattern searches everything that arrived and was not consumed yet, so
/// prompts such as `(gdb) ` or `>>> ` that have no newline can be expected.
///
/// ```
/// use duet::Pattern;
/// let prompt = Pattern::exact("> ");
/// let number = Pattern::regex(r"^\d+$")?;     // ^ and $ match at line boundaries
/// let reply = Pattern::line(r"^= (\d+)$")?;   // a whole line, never a partial one
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # The partial-line trap
///
/// A regex is searched in what has arrived *so far*, and `$` also matches
/// at its end. `Pattern::regex(r"^\.(\d+)$")` can therefore match `.33`
/// while bc is still writing `.3333`: the match happens between two reads.
/// When the reply is a line, use [`Pattern::line`], which only looks at
/// lines whose newline has arrived.
#[derive(Clone)]
#[non_exhaustive]
pub enum Pattern {
    /// This exact text ([`Pattern::exact`]).
    Exact(Exact),
    /// A regular expression searched across lines ([`Pattern::regex`]).
    Regex(Regex),
    /// The first complete line that matches ([`Pattern::line`]).
    Line(Line),
    /// The child closed its output. The match's `before()` is everything
    /// that was left.
    Eof,
    /// The timeout passed. In an `expect_any` list this makes a timeout an
    /// outcome instead of an error (like pexpect's `TIMEOUT`); the buffer is
    /// left as it was.
    Timeout,
}

/// Every compiled pattern gets a number, shared by its clones: a
/// conversation that expects the same pattern again resumes its search
/// instead of starting over.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A literal pattern (see [`Pattern::exact`]).
#[derive(Clone)]
pub struct Exact(Arc<ExactInner>);

struct ExactInner {
    id: u64,
    text: String,
    finder: memchr::memmem::Finder<'static>,
}

/// A compiled regular expression (see [`Pattern::regex`]).
#[derive(Clone)]
pub struct Regex(Arc<RegexInner>);

struct RegexInner {
    id: u64,
    /// What the user wrote.
    source: String,
    regex: BytesRegex,
    /// The lazy DFA that detects a match in new bytes; `None` when it could
    /// not be built (then every search runs the full regex).
    dfa: Option<DFA>,
    /// Finds where a match can begin (a literal prefix), so the DFA skips
    /// ahead instead of stepping through every byte.
    prefilter: Option<Prefilter>,
    /// DFA caches of finished searches, for the next one.
    caches: Mutex<Vec<Cache>>,
    names: Arc<[Option<String>]>,
}

/// A pattern for one complete line (see [`Pattern::line`]).
#[derive(Clone)]
pub struct Line(Arc<LineInner>);

struct LineInner {
    id: u64,
    source: String,
    regex: BytesRegex,
    names: Arc<[Option<String>]>,
}

impl Pattern {
    /// A pattern matching `text` exactly, of any length. It never fails
    /// and never panics.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut sh = Command::new("sh").args(["-c", "printf 'a.b*c (gdb) '"]).spawn()?;
    /// let m = sh.expect(Pattern::exact("(gdb) "))?;      // no regex escaping needed
    /// assert_eq!(m.before(), "a.b*c ");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exact(text: impl Into<String>) -> Pattern {
        let text = text.into();
        let finder = memchr::memmem::Finder::new(text.as_bytes()).into_owned();
        Pattern::Exact(Exact(Arc::new(ExactInner {
            id: next_id(),
            text,
            finder,
        })))
    }

    /// A regular expression (the `regex` crate's syntax) in multi-line
    /// mode: `^` and `$` match at line boundaries, `$` also before `\r\n`
    /// and at the end of what has arrived (see "The partial-line trap").
    ///
    /// # Errors
    /// The `regex` crate's error when `re` does not compile; `?` turns it
    /// into a `duet::Error::Pattern`.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut sh = Command::new("sh").args(["-c", "echo 'version 1.2.3'"]).spawn()?;
    /// let m = sh.expect(Pattern::regex(r"(\d+)\.(\d+)")?)?;
    /// assert_eq!((m.group(1), m.group(2)), (Some("1"), Some("2")));
    /// assert!(Pattern::regex("(unclosed").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn regex(re: &str) -> Result<Pattern, regex::Error> {
        let regex = RegexBuilder::new(re).multi_line(true).crlf(true).build()?;
        let syntax = syntax::Config::new()
            .multi_line(true)
            .crlf(true)
            .utf8(false);
        let prefilter = syntax::parse_with(re, &syntax)
            .ok()
            .and_then(|hir| Prefilter::from_hir_prefix(MatchKind::LeftmostFirst, &hir))
            .filter(Prefilter::is_fast);
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .unicode_word_boundary(true)
                    // Start states tagged, so the search sees where the
                    // prefilter may skip (only with one: tagging costs).
                    .specialize_start_states(prefilter.is_some()),
            )
            .syntax(syntax)
            .thompson(regex_automata::nfa::thompson::Config::new().utf8(false))
            .build(re)
            .ok();
        Ok(Pattern::Regex(Regex(Arc::new(RegexInner {
            id: next_id(),
            source: re.to_string(),
            names: names_of(&regex),
            regex,
            dfa,
            prefilter,
            caches: Mutex::new(Vec::new()),
        }))))
    }

    /// The first complete line (its newline has arrived) in which `re`
    /// matches, searched within the line. The match's
    /// [`as_str`](Match::as_str) is the whole line without its line end
    /// (every trailing `\r` is removed too, so `\r\n` from a pty and
    /// `\r\r\n` both end a line), [`before`](Match::before) the lines
    /// skipped, and groups are those of `re` within the line.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut bc = Command::new("bc").arg("-q").spawn()?;
    /// bc.send_line("scale=4; 1/3")?;
    /// let m = bc.expect(Pattern::line(r"^\.(\d+)$")?)?;
    /// assert_eq!(m.group(1), Some("3333"));   // never a number half-written
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The `regex` crate's error when `re` does not compile; `?` turns it
    /// into a `duet::Error::Pattern`.
    pub fn line(re: &str) -> Result<Pattern, regex::Error> {
        let regex = BytesRegex::new(re)?;
        Ok(Pattern::Line(Line(Arc::new(LineInner {
            id: next_id(),
            source: re.to_string(),
            names: names_of(&regex),
            regex,
        }))))
    }

    /// The number shared by this pattern's clones (0 for `Eof`/`Timeout`).
    pub(crate) fn id(&self) -> u64 {
        match self {
            Pattern::Exact(e) => e.0.id,
            Pattern::Regex(r) => r.0.id,
            Pattern::Line(l) => l.0.id,
            Pattern::Eof | Pattern::Timeout => 0,
        }
    }

    /// The names of the capture groups, by group number.
    pub(crate) fn names(&self) -> Option<&Arc<[Option<String>]>> {
        match self {
            Pattern::Regex(r) => Some(&r.0.names),
            Pattern::Line(l) => Some(&l.0.names),
            _ => None,
        }
    }
}

fn names_of(regex: &BytesRegex) -> Arc<[Option<String>]> {
    regex
        .capture_names()
        .map(|n| n.map(str::to_string))
        .collect()
}

impl Exact {
    /// The literal text.
    ///
    /// ```
    /// use duet::Pattern;
    /// let Pattern::Exact(e) = Pattern::exact(">>> ") else { unreachable!() };
    /// assert_eq!(e.text(), ">>> ");
    /// ```
    pub fn text(&self) -> &str {
        &self.0.text
    }

    pub(crate) fn finder(&self) -> &memchr::memmem::Finder<'static> {
        &self.0.finder
    }
}

impl Regex {
    /// The regular expression as it was written.
    ///
    /// ```
    /// use duet::Pattern;
    /// let Pattern::Regex(r) = Pattern::regex(r"^\d+$")? else { unreachable!() };
    /// assert_eq!(r.as_str(), r"^\d+$");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0.source
    }

    pub(crate) fn regex(&self) -> &BytesRegex {
        &self.0.regex
    }

    pub(crate) fn dfa(&self) -> Option<&DFA> {
        self.0.dfa.as_ref()
    }

    pub(crate) fn prefilter(&self) -> Option<&Prefilter> {
        self.0.prefilter.as_ref()
    }

    pub(crate) fn has_groups(&self) -> bool {
        self.0.regex.captures_len() > 1
    }

    /// A DFA cache for a new search: a finished search's, or a new one.
    pub(crate) fn take_cache(&self, dfa: &DFA) -> Cache {
        let pooled = self.0.caches.lock().ok().and_then(|mut c| c.pop());
        pooled.unwrap_or_else(|| dfa.create_cache())
    }

    /// Returns a finished search's cache (a few are kept).
    pub(crate) fn give_cache(&self, cache: Cache) {
        if let Ok(mut caches) = self.0.caches.lock()
            && caches.len() < 4
        {
            caches.push(cache);
        }
    }
}

impl Line {
    /// The regular expression as it was written.
    ///
    /// ```
    /// use duet::Pattern;
    /// let Pattern::Line(l) = Pattern::line(r"^ok")? else { unreachable!() };
    /// assert_eq!(l.as_str(), "^ok");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0.source
    }

    pub(crate) fn regex(&self) -> &BytesRegex {
        &self.0.regex
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Pattern {
    /// How errors name the pattern: `exact "> "`, `regex "^\d+$"`,
    /// `line "^ok$"`, `end of output`, `timeout`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(e) => write!(f, "exact {:?}", e.text()),
            Pattern::Regex(r) => write!(f, "regex {:?}", r.as_str()),
            Pattern::Line(l) => write!(f, "line {:?}", l.as_str()),
            Pattern::Eof => write!(f, "end of output"),
            Pattern::Timeout => write!(f, "timeout"),
        }
    }
}

macro_rules! debug_as_pattern {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($t)).field(&self.as_str()).finish()
            }
        }
    )*};
}
debug_as_pattern!(Regex, Line);

impl fmt::Debug for Exact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Exact").field(&self.text()).finish()
    }
}

impl From<&str> for Pattern {
    /// A `&str` is an exact pattern.
    fn from(text: &str) -> Pattern {
        Pattern::exact(text)
    }
}

impl From<String> for Pattern {
    /// A `String` is an exact pattern.
    fn from(text: String) -> Pattern {
        Pattern::exact(text)
    }
}

/// Where a pattern matched, in stream positions (see `search`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub start: u64,
    pub end: u64,
    /// Up to where the match consumes (past `end` for a line: its newline).
    pub through: u64,
    /// Capture groups 1.. (group 0 is `start..end`).
    pub groups: Vec<Option<(u64, u64)>>,
}

/// A successful `expect`: the text before the match, the match, its groups.
///
/// Text is decoded lossily: invalid UTF-8 becomes U+FFFD.
///
/// ```
/// use duet::{Command, Pattern};
/// let mut sh = Command::new("sh").spawn()?;
/// sh.send_line("echo 'noise'; echo 'x = 42'")?;
/// let m = sh.expect(Pattern::regex(r"(?P<name>\w+) = (?P<value>\d+)")?)?;
/// assert_eq!(m.before(), "noise\n");
/// assert_eq!(m.as_str(), "x = 42");
/// assert_eq!(m.group(2), Some("42"));
/// assert_eq!(m.name("name"), Some("x"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    before: String,
    matched: String,
    groups: Vec<Option<String>>,
    names: Option<Arc<[Option<String>]>>,
}

impl Match {
    /// A match of `found` in `taken`: the consumed bytes, whose first one is
    /// at stream position `base` (so `before` is everything up to the match).
    /// The bytes become `before` without a copy.
    pub(crate) fn new(
        mut taken: Vec<u8>,
        base: u64,
        found: &Found,
        names: Option<&Arc<[Option<String>]>>,
    ) -> Match {
        let text = |a: u64, b: u64| {
            String::from_utf8_lossy(&taken[(a - base) as usize..(b - base) as usize]).into_owned()
        };
        let matched = text(found.start, found.end);
        let groups = found
            .groups
            .iter()
            .map(|g| g.map(|(a, b)| text(a, b)))
            .collect();
        taken.truncate((found.start - base) as usize);
        Match {
            before: decode(taken),
            matched,
            groups,
            names: names.cloned(),
        }
    }

    /// A match with no matched text (end of output, timeout).
    pub(crate) fn empty(before: Vec<u8>) -> Match {
        Match {
            before: decode(before),
            matched: String::new(),
            groups: Vec::new(),
            names: None,
        }
    }

    /// Everything that arrived before the match (consumed with it).
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut sh = Command::new("sh").args(["-c", "echo booting; printf 'login: '"]).spawn()?;
    /// let m = sh.expect(Pattern::exact("login: "))?;
    /// assert_eq!(m.before(), "booting\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn before(&self) -> &str {
        &self.before
    }

    /// The matched text (for [`Pattern::line`], the whole line).
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut sh = Command::new("sh").args(["-c", "echo 'took 42 ms'"]).spawn()?;
    /// assert_eq!(sh.expect(Pattern::regex(r"\d+ ms")?)?.as_str(), "42 ms");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.matched
    }

    /// Capture group `i` (0 is the whole match), if it took part.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut sh = Command::new("sh").args(["-c", "echo 'x=3 y='"]).spawn()?;
    /// let m = sh.expect(Pattern::regex(r"x=(\d+) y=(\d+)?")?)?;
    /// assert_eq!(m.group(0), Some("x=3 y="));
    /// assert_eq!(m.group(1), Some("3"));
    /// assert_eq!(m.group(2), None);                  // did not take part
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group(&self, i: usize) -> Option<&str> {
        if i == 0 {
            return Some(&self.matched);
        }
        self.groups.get(i - 1)?.as_deref()
    }

    /// The capture group named `name` (`(?P<name>...)`), if the pattern has
    /// one and it took part.
    ///
    /// ```
    /// use duet::{Command, Pattern};
    /// let mut sh = Command::new("sh").args(["-c", "echo 'HTTP/1.1 404 Not Found'"]).spawn()?;
    /// let m = sh.expect(Pattern::line(r"^HTTP/\S+ (?P<code>\d+) (?P<reason>.*)$")?)?;
    /// assert_eq!(m.name("code"), Some("404"));
    /// assert_eq!(m.name("reason"), Some("Not Found"));
    /// assert_eq!(m.name("nope"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self, name: &str) -> Option<&str> {
        let names = self.names.as_ref()?;
        let i = names.iter().position(|n| n.as_deref() == Some(name))?;
        self.group(i)
    }
}

/// Text from bytes without a copy when they are UTF-8 (the usual case, and
/// a fast check); lossily otherwise.
fn decode(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_pattern_of_a_mebibyte_compiles_without_panicking() {
        let text = "x".repeat(1 << 20);
        let p = Pattern::exact(text.clone());
        assert!(matches!(&p, Pattern::Exact(e) if e.text() == text));
    }

    #[test]
    fn display_shows_what_the_user_wrote() {
        assert_eq!(
            Pattern::regex(r"^\d+$").unwrap().to_string(),
            r#"regex "^\\d+$""#
        );
        assert_eq!(Pattern::line("ok").unwrap().to_string(), r#"line "ok""#);
        assert_eq!(Pattern::exact("> ").to_string(), r#"exact "> ""#);
    }

    #[test]
    fn clones_share_an_id_and_new_patterns_get_new_ones() {
        let a = Pattern::exact("a");
        assert_eq!(a.id(), a.clone().id());
        assert_ne!(a.id(), Pattern::exact("a").id());
    }
}
