//! The conversation core's searches and watches against references built
//! on the `regex` crate and plain slices.
//!
//! - An expect over a stream that arrives in arbitrary chunks (its search
//!   resumed after each) must return what a new search of everything that
//!   arrived finds, at the first chunk where one finds anything.
//! - A `fail_on` watch must report, after each chunk, the matches a plain
//!   loop finds from where the last one ended (one byte on after an empty
//!   match), whatever the caller consumed in between.
#![no_main]

use duet_core::{Action, Conversation, Failure, Pattern, Stream};
use libfuzzer_sys::{arbitrary, fuzz_target};
use regex::bytes::{Regex, RegexBuilder};
use std::task::Poll;

/// A pattern from the fuzzer: 0 exact, 1 regex, 2 line; `None` when the
/// regex does not compile.
fn pattern(kind: u8, text: &str) -> Option<Pattern> {
    match kind % 3 {
        0 => Some(Pattern::exact(text)),
        1 => Pattern::regex(text).ok(),
        _ => Pattern::line(text).ok(),
    }
}

/// One expect over a stream that arrives in chunks: the conversation core,
/// searching again after each chunk.
struct Expect {
    core: Conversation,
    pattern: Pattern,
}

impl Expect {
    fn new(pattern: Pattern) -> Expect {
        Expect {
            core: Conversation::new(true, false, 1 << 20),
            pattern,
        }
    }

    /// Appends `bytes`; the match as `(before, matched)` once there is one.
    fn feed(&mut self, bytes: &[u8]) -> Option<(String, String)> {
        self.core.feed(Stream::Stdout, bytes);
        let patterns = std::slice::from_ref(&self.pattern);
        match self.core.poll_expect(Stream::Stdout, patterns) {
            Poll::Ready(Ok((_, m))) => Some((m.before().to_string(), m.as_str().to_string())),
            _ => None,
        }
    }
}

/// A `fail_on` watch over a stream that arrives in chunks.
struct Watch {
    core: Conversation,
}

impl Watch {
    fn new(pattern: Pattern) -> Watch {
        let mut core = Conversation::new(true, false, 1 << 20);
        core.watch(pattern, Action::FailOn);
        Watch { core }
    }

    /// Appends `bytes`, consuming `consume` of the pending bytes first;
    /// returns the texts the watch matched.
    fn feed(&mut self, consume: usize, bytes: &[u8]) -> Vec<String> {
        let n = consume.min(self.core.pending(Stream::Stdout).len());
        let _ = self.core.take_first(Stream::Stdout, n);
        self.core.feed(Stream::Stdout, bytes);
        std::iter::from_fn(|| self.core.take_failure())
            .map(|f| match f {
                Failure::FailOn { matched, .. } => matched,
                other => panic!("a watch reported {other:?}"),
            })
            .collect()
    }
}

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    kind: u8,
    pattern: String,
    /// Each chunk, and how many pending bytes the caller consumes before it
    /// arrives (for the watch).
    chunks: Vec<(Vec<u8>, u8)>,
}

/// A pattern's reference: the first match at or after `from` in `hay` as
/// (start, end, through), where `through` is where the match consumes to.
enum Reference {
    Exact(Vec<u8>),
    Regex(Regex),
    Line(Regex),
}

impl Reference {
    fn new(kind: u8, text: &str) -> Reference {
        match kind % 3 {
            0 => Reference::Exact(text.as_bytes().to_vec()),
            1 => Reference::Regex(RegexBuilder::new(text).multi_line(true).crlf(true).build().unwrap()),
            _ => Reference::Line(Regex::new(text).unwrap()),
        }
    }

    fn find(&self, hay: &[u8], from: usize) -> Option<(usize, usize, usize)> {
        match self {
            Reference::Exact(needle) => (from..=hay.len().checked_sub(needle.len())?)
                .find(|&i| hay[i..].starts_with(needle))
                .map(|i| (i, i + needle.len(), i + needle.len())),
            Reference::Regex(re) => re.find_at(hay, from).map(|m| (m.start(), m.end(), m.end())),
            Reference::Line(re) => {
                let mut start = from;
                while let Some(nl) = hay[start..].iter().position(|&b| b == b'\n') {
                    let mut text = &hay[start..start + nl];
                    while let Some(t) = text.strip_suffix(b"\r") {
                        text = t;
                    }
                    if re.is_match(text) {
                        return Some((start, start + text.len(), start + nl + 1));
                    }
                    start += nl + 1;
                }
                None
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fuzz_target!(|input: Input| {
    if input.pattern.len() > 24 {
        return;
    }
    let Some(p) = pattern(input.kind, &input.pattern) else {
        return;
    };
    let reference = Reference::new(input.kind, &input.pattern);

    // The expect.
    let mut expect = Expect::new(p.clone());
    let mut all = Vec::new();
    let mut expected = None;
    let mut got = None;
    for (chunk, _) in &input.chunks {
        all.extend_from_slice(chunk);
        got = expect.feed(chunk);
        if let Some((start, end, _)) = reference.find(&all, 0) {
            expected = Some((text(&all[..start]), text(&all[start..end])));
        }
        if got.is_some() || expected.is_some() {
            break;
        }
    }
    assert_eq!(got, expected, "expect over {all:?}");

    // The watch: the caller consumes bytes between chunks. It also looks
    // at what is there when it is set (nothing here, where only a pattern
    // that matches the empty string finds something).
    let mut watch = Watch::new(p);
    let mut all = Vec::new();
    let mut origin = 0;
    let mut position = 0;
    let mut expected = Vec::new();
    let mut matches = |all: &[u8], expected: &mut Vec<String>| {
        while origin <= all.len() {
            let Some((start, end, through)) = reference.find(all, origin) else {
                break;
            };
            expected.push(text(&all[start..end]));
            origin = if end > start { through } else { through + 1 };
        }
    };
    matches(&all, &mut expected);
    for (chunk, consume) in &input.chunks {
        let consume = usize::from(*consume).min(all.len() - position);
        position += consume;
        all.extend_from_slice(chunk);
        let got = watch.feed(consume, chunk);
        matches(&all, &mut expected);
        assert_eq!(got, expected, "watch over {all:?}");
        expected.clear();
    }
});
