//! The conversation's line buffer against a reference splitter.
//!
//! Arbitrary bytes, cut into arbitrary chunks, with lines taken after some
//! chunks and not others, must give the lines of the whole input split on
//! `\n` with one trailing `\r` stripped; a line over `max_line` is reported
//! once as too long and skipped wholly; the last line without a newline is
//! kept as is. Between chunks nothing but an unfinished line is pending.
#![no_main]

use duet_core::{Inbox, Line};
use libfuzzer_sys::{arbitrary, fuzz_target};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    max_line: u8,
    /// Each chunk is appended, then (if the flag says so) every whole line
    /// is taken.
    chunks: Vec<(Vec<u8>, bool)>,
}

fn reference(data: &[u8], max_line: usize) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut rest = data;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        lines.push(if line.len() > max_line {
            Line::TooLong
        } else {
            Line::Complete(line.to_vec())
        });
        rest = &rest[nl + 1..];
    }
    if !rest.is_empty() {
        lines.push(if rest.len() > max_line {
            Line::TooLong
        } else {
            Line::Complete(rest.to_vec())
        });
    }
    lines
}

fuzz_target!(|input: Input| {
    let max_line = usize::from(input.max_line);
    let mut buf = Inbox::new(max_line);
    let mut got = Vec::new();
    let mut all = Vec::new();
    for (chunk, take) in &input.chunks {
        buf.extend(chunk);
        buf.skip_arrived();
        all.extend_from_slice(chunk);
        if *take {
            while let Some(line) = buf.take_line() {
                got.push(line);
            }
            let pending = buf.pending();
            assert!(!pending.contains(&b'\n'), "a whole line was left pending");
            // An unfinished line is dropped as soon as it is too long (a
            // trailing `\r` may still be the start of a `\r\n`).
            assert!(
                pending.len() <= max_line + 1,
                "{} bytes pending with max_line {max_line}",
                pending.len()
            );
        }
    }
    while let Some(line) = buf.take_line() {
        got.push(line);
    }
    got.extend(buf.take_unterminated());
    assert!(buf.pending().is_empty());
    assert_eq!(got, reference(&all, max_line), "input {all:?}");
});
