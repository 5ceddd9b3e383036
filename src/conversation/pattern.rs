//! Patterns for `expect`, and what a match returns.

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};

/// What [`Child::expect`](crate::Child::expect) waits for.
///
/// A pattern matches data that has no newline yet, so prompts such as
/// `(gdb) ` or `> ` can be expected.
///
/// ```
/// use duet::Pattern;
/// let prompt = Pattern::exact("> ");
/// let number = Pattern::regex(r"^\d+$")?;   // ^ and $ match at line boundaries
/// # Ok::<(), duet::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum Pattern {
    /// This exact text.
    Exact(Exact),
    /// A regular expression (the `regex` crate's syntax) in multi-line mode:
    /// `^` and `$` match at line boundaries, `$` also before `\r\n`.
    Regex(Regex),
    /// The child closed its output. The match's `before()` is everything
    /// that was left.
    Eof,
    /// The timeout passed. In an `expect_any` list this makes a timeout an
    /// outcome instead of an error (like pexpect's `TIMEOUT`); the buffer is
    /// left as it was.
    Timeout,
}

/// A literal pattern (see [`Pattern::exact`]).
#[derive(Clone, Debug)]
pub struct Exact {
    text: String,
    finder: Regex,
}

impl Pattern {
    /// A pattern matching `text` exactly.
    pub fn exact(text: impl Into<String>) -> Pattern {
        let text = text.into();
        let finder =
            Regex::new(&regex::escape(&text)).expect("an escaped literal is a valid regex");
        Pattern::Exact(Exact { text, finder })
    }

    /// A regular expression in multi-line mode.
    ///
    /// # Errors
    /// [`Error::Pattern`](crate::Error::Pattern) when `re` does not compile.
    pub fn regex(re: &str) -> crate::Result<Pattern> {
        let regex = RegexBuilder::new(re).multi_line(true).crlf(true).build()?;
        Ok(Pattern::Regex(regex))
    }

    /// Finds the first match in `haystack`: `(start, end, groups)`.
    pub(crate) fn find(&self, haystack: &[u8]) -> Option<Found> {
        let regex = match self {
            Pattern::Exact(e) => &e.finder,
            Pattern::Regex(r) => r,
            Pattern::Eof | Pattern::Timeout => return None,
        };
        if regex.captures_len() == 1 {
            let m = regex.find(haystack)?;
            return Some(Found {
                start: m.start(),
                end: m.end(),
                groups: Vec::new(),
            });
        }
        let caps = regex.captures(haystack)?;
        let whole = caps.get(0).expect("group 0 always matches");
        Some(Found {
            start: whole.start(),
            end: whole.end(),
            groups: caps
                .iter()
                .map(|g| g.map(|g| (g.start(), g.end())))
                .collect(),
        })
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(e) => write!(f, "exact {:?}", e.text),
            Pattern::Regex(r) => write!(f, "regex {:?}", r.as_str()),
            Pattern::Eof => write!(f, "end of output"),
            Pattern::Timeout => write!(f, "timeout"),
        }
    }
}

impl From<&str> for Pattern {
    /// A `&str` is an exact pattern.
    fn from(text: &str) -> Pattern {
        Pattern::exact(text)
    }
}

/// Where a pattern matched in the buffer.
#[derive(Debug)]
pub(crate) struct Found {
    pub start: usize,
    pub end: usize,
    pub groups: Vec<Option<(usize, usize)>>,
}

/// A successful `expect`: the text before the match, the match, its groups.
///
/// Text is decoded lossily: invalid UTF-8 becomes U+FFFD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    before: String,
    matched: String,
    groups: Vec<Option<String>>,
}

impl Match {
    pub(crate) fn new(buf: &[u8], found: &Found) -> Match {
        let text = |a: usize, b: usize| String::from_utf8_lossy(&buf[a..b]).into_owned();
        Match {
            before: text(0, found.start),
            matched: text(found.start, found.end),
            groups: found
                .groups
                .iter()
                .map(|g| g.map(|(a, b)| text(a, b)))
                .collect(),
        }
    }

    /// A match with no matched text (end of output, timeout).
    pub(crate) fn empty(before: &[u8]) -> Match {
        Match {
            before: String::from_utf8_lossy(before).into_owned(),
            matched: String::new(),
            groups: Vec::new(),
        }
    }

    /// Everything that arrived before the match (consumed with it).
    pub fn before(&self) -> &str {
        &self.before
    }

    /// The matched text.
    pub fn as_str(&self) -> &str {
        &self.matched
    }

    /// Capture group `i` (0 is the whole match), if it took part.
    pub fn group(&self, i: usize) -> Option<&str> {
        if i == 0 {
            return Some(&self.matched);
        }
        self.groups.get(i)?.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_anchors_match_at_line_boundaries_and_before_crlf() {
        let p = Pattern::regex(r"^(\d+)$").unwrap();
        let buf = b"x\r\n42\r\nrest";
        let found = p.find(buf).unwrap();
        let m = Match::new(buf, &found);
        assert_eq!(m.before(), "x\r\n");
        assert_eq!(m.as_str(), "42");
        assert_eq!(m.group(1), Some("42"));
        assert_eq!(m.group(2), None);
    }

    #[test]
    fn exact_matches_a_prompt_without_newline() {
        let p = Pattern::exact("(gdb) ");
        let found = p.find(b"GNU gdb\n(gdb) ").unwrap();
        assert_eq!((found.start, found.end), (8, 14));
        assert!(Pattern::exact("a.b").find(b"axb").is_none());
    }
}
