//! Where a reply ends: after N lines, after a line matching a regex, when
//! the program has been quiet for a while, or where its next prompt
//! appears. One sans-IO [`Collector`] frames replies for both `chat`
//! (reading a child) and `serve` (reading bytes for an `ask`), so the two
//! agree byte for byte; [`Printer`] writes replies the same way for `chat`
//! and `ask`.

use std::io::{self, Write};
use std::time::Duration;

use clap::Args;
use duet_script::duration;
use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::args::parse_duration;

/// `--lines N | --until REGEX | --quiet D | --prompt REGEX`.
#[derive(Debug, Clone, Default, Args)]
pub struct FramingArgs {
    /// The reply is N lines (the default is 1 line).
    #[arg(long, value_name = "N", group = "framing")]
    pub lines: Option<usize>,
    /// The reply ends with the first line matching REGEX (included).
    #[arg(long, value_name = "REGEX", group = "framing")]
    pub until: Option<String>,
    /// The reply ends when PROG has written nothing for D (e.g. 200ms); a
    /// request that gets no output has an empty reply.
    #[arg(long, value_name = "D", group = "framing", value_parser = parse_duration)]
    pub quiet: Option<Duration>,
    /// The reply ends where PROG's next prompt matches REGEX (also a partial
    /// line such as `>>> `); the prompt is not part of the reply.
    #[arg(long, value_name = "REGEX", group = "framing")]
    pub prompt: Option<String>,
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
    /// Up to the next match of this regex (the prompt, left out).
    Prompt(String),
}

impl FramingArgs {
    /// The framing given on the command line, checked; `None` when none was.
    pub fn given(&self) -> Result<Option<Framing>, String> {
        if let Some(re) = &self.until {
            compile("--until", re)?;
            return Ok(Some(Framing::Until(re.clone())));
        }
        if let Some(re) = &self.prompt {
            let regex = compile("--prompt", re)?;
            if regex.is_match(b"") {
                return Err(format!(
                    "--prompt: {re:?} matches the empty text, so it would end every reply \
                     before it begins; match the prompt's own characters (e.g. '^> ')"
                ));
            }
            return Ok(Some(Framing::Prompt(re.clone())));
        }
        if let Some(quiet) = self.quiet {
            if quiet.is_zero() {
                return Err("--quiet must be longer than 0ms".into());
            }
            return Ok(Some(Framing::QuietMs(
                quiet.as_millis().min(u64::MAX as u128) as u64,
            )));
        }
        match self.lines {
            Some(0) => Err("--lines must be at least 1".into()),
            Some(n) => Ok(Some(Framing::Lines(n))),
            None => Ok(None),
        }
    }

    /// The framing given, or one line.
    pub fn framing(&self) -> Result<Framing, String> {
        Ok(self.given()?.unwrap_or(Framing::Lines(1)))
    }
}

/// Compiles a REGEX option the way patterns work everywhere in duet:
/// multi-line (`^` and `$` at line boundaries, `$` also before `\r\n`).
/// The error quotes the regex as the user wrote it.
pub fn compile(option: &str, re: &str) -> Result<Regex, String> {
    RegexBuilder::new(re)
        .multi_line(true)
        .crlf(true)
        .build()
        .map_err(|e| {
            let detail = match &e {
                regex::Error::Syntax(text) => text
                    .strip_prefix("regex parse error:")
                    .unwrap_or(text)
                    .trim_start_matches('\n')
                    .to_string(),
                other => other.to_string(),
            };
            format!("{option}: bad regex {re:?}:\n{detail}")
        })
}

impl Framing {
    /// A phrase for messages: `a reply line`, `a line matching "^END$"`, ...
    pub fn describe(&self) -> String {
        match self {
            Framing::Lines(1) => "a reply line".into(),
            Framing::Lines(n) => format!("{n} reply lines"),
            Framing::Until(re) => format!("a line matching {re:?}"),
            Framing::QuietMs(ms) => format!(
                "the reply to end with {} of quiet",
                duration::show(Duration::from_millis(*ms))
            ),
            Framing::Prompt(re) => format!("the prompt {re:?}"),
        }
    }

    /// The quiet time that ends a reply, for `--quiet`.
    pub fn quiet(&self) -> Option<Duration> {
        match self {
            Framing::QuietMs(ms) => Some(Duration::from_millis(*ms)),
            _ => None,
        }
    }

    /// True when replies are lines (printed with `\n` line ends, an
    /// unfinished last line completed); `--quiet` replies are copied as they
    /// came.
    pub fn is_lines(&self) -> bool {
        !matches!(self, Framing::QuietMs(_))
    }
}

/// Frames one reply from bytes as they arrive. It holds no descriptor and
/// reads no clock: the caller feeds it output and, for `--quiet`, decides
/// when the quiet time has passed.
#[derive(Debug)]
pub struct Collector {
    framing: Framing,
    regex: Option<Regex>,
    /// `--prompt`: the library's incremental search over `held`, so a
    /// reply that arrives in many reads is searched once, not once a read.
    prompt: Option<duet::Searcher>,
    /// Output not yet given out as part of the reply: the unfinished line
    /// (line framings), or everything since the reply began (`--prompt`).
    held: Vec<u8>,
    /// Complete lines given out so far.
    lines: usize,
}

impl Collector {
    /// A collector for `framing` (whose regex has been checked).
    pub fn new(framing: &Framing) -> Result<Collector, String> {
        let regex = match framing {
            Framing::Until(re) => Some(compile("--until", re)?),
            Framing::Prompt(re) => Some(compile("--prompt", re)?),
            _ => None,
        };
        let prompt = match framing {
            // Checked by `compile` above: the same syntax and modes.
            Framing::Prompt(re) => Some(
                duet::Pattern::regex(re)
                    .map_err(|e| e.to_string())?
                    .searcher(),
            ),
            _ => None,
        };
        Ok(Collector {
            framing: framing.clone(),
            regex,
            prompt,
            held: Vec::new(),
            lines: 0,
        })
    }

    /// Adds output. Appends to `reply` what is now known to belong to the
    /// reply; returns `Some(rest)` once the reply is complete, with the bytes
    /// that came after it (for the next reply, or nobody's).
    ///
    /// Line framings give out each complete line as soon as it arrives;
    /// `--prompt` gives out the reply when the prompt has matched (a prompt
    /// may span lines); `--quiet` gives out everything at once.
    pub fn feed(&mut self, bytes: &[u8], reply: &mut Vec<u8>) -> Option<Vec<u8>> {
        match &self.framing {
            Framing::QuietMs(_) => {
                reply.extend_from_slice(bytes);
                None
            }
            Framing::Prompt(_) => {
                self.held.extend_from_slice(bytes);
                let prompt = self.prompt.as_mut().expect("a prompt has a searcher");
                let found = prompt.find(&self.held)?;
                prompt.reset();
                reply.extend_from_slice(&self.held[..found.start]);
                let rest = self.held.split_off(found.end);
                self.held.clear();
                Some(rest)
            }
            Framing::Lines(_) | Framing::Until(_) => {
                let mut from = 0;
                let mut scan = self.held.len();
                self.held.extend_from_slice(bytes);
                while let Some(pos) = self.held[scan..].iter().position(|&b| b == b'\n') {
                    let end = scan + pos + 1;
                    let line = &self.held[from..end];
                    reply.extend_from_slice(line);
                    self.lines += 1;
                    let done = match &self.framing {
                        Framing::Lines(n) => self.lines >= *n,
                        _ => self
                            .regex
                            .as_ref()
                            .is_some_and(|re| re.is_match(line_text(line))),
                    };
                    from = end;
                    scan = end;
                    if done {
                        let rest = self.held.split_off(end);
                        self.held.clear();
                        return Some(rest);
                    }
                }
                self.held.drain(..from);
                None
            }
        }
    }

    /// Ends the reply before its framing completed (the quiet time passed,
    /// PROG closed its output, the time ran out): appends what was held back.
    pub fn flush(&mut self, reply: &mut Vec<u8>) {
        reply.append(&mut self.held);
        if let Some(prompt) = self.prompt.as_mut() {
            prompt.reset();
        }
    }

    /// Output held back (not yet known to be part of the reply).
    pub fn held(&self) -> &[u8] {
        &self.held
    }

    /// Complete lines given out so far.
    pub fn lines(&self) -> usize {
        self.lines
    }
}

/// A line without its `\n` or `\r\n`.
fn line_text(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A line without a trailing `\r` (output from a pty ends lines with `\r\n`).
pub fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes replies to stdout: `\r\n` line ends (a pty's) become `\n`; a line
/// reply whose last line is unfinished gets its `\n`; `--quiet` replies are
/// otherwise copied as they came. Replies can be written in pieces as they
/// arrive.
#[derive(Debug)]
pub struct Printer<W: Write> {
    out: W,
    /// A `\r` held back until the next byte shows whether a `\n` follows.
    cr: bool,
    /// The last byte written was a line end (or nothing was written).
    line_start: bool,
}

impl<W: Write> Printer<W> {
    /// A printer writing to `out`.
    pub fn new(out: W) -> Printer<W> {
        Printer {
            out,
            cr: false,
            line_start: true,
        }
    }

    /// Writes part of a reply.
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.cr {
            self.cr = false;
            if bytes[0] != b'\n' {
                self.out.write_all(b"\r")?;
                self.line_start = false;
            }
        }
        while let Some(pos) = bytes.iter().position(|&b| b == b'\r') {
            self.out.write_all(&bytes[..pos])?;
            if pos > 0 {
                self.line_start = bytes[pos - 1] == b'\n';
            }
            match bytes.get(pos + 1) {
                Some(b'\n') => {}
                Some(_) => {
                    self.out.write_all(b"\r")?;
                    self.line_start = false;
                }
                None => {
                    self.cr = true;
                    return Ok(());
                }
            }
            bytes = &bytes[pos + 1..];
        }
        self.out.write_all(bytes)?;
        if let Some(&last) = bytes.last() {
            self.line_start = last == b'\n';
        }
        Ok(())
    }

    /// The writer, after [`Printer::end`].
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Ends a reply: a line reply's unfinished last line gets its `\n`;
    /// everything is flushed.
    pub fn end(&mut self, lines: bool) -> io::Result<()> {
        if self.cr {
            self.cr = false;
            self.out.write_all(b"\r")?;
            self.line_start = false;
        }
        if lines && !self.line_start {
            self.out.write_all(b"\n")?;
            self.line_start = true;
        }
        self.out.flush()
    }
}

/// The advice after a timeout with nothing received from a live PROG on
/// pipes: it may be holding its output in a buffer.
pub fn buffering_hint(program: &str) -> String {
    format!(
        "; {program} may be buffering its output on a pipe: run it on a terminal with --pty, \
         or line-buffered with `stdbuf -oL {program}`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(framing: Framing, chunks: &[&[u8]]) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut c = Collector::new(&framing).unwrap();
        let mut reply = Vec::new();
        for chunk in chunks {
            if let Some(rest) = c.feed(chunk, &mut reply) {
                return (reply, Some(rest));
            }
        }
        (reply, None)
    }

    #[test]
    fn lines_framing_gives_out_lines_and_splits_off_the_rest() {
        let mut c = Collector::new(&Framing::Lines(2)).unwrap();
        let mut reply = Vec::new();
        assert_eq!(c.feed(b"a\nb", &mut reply), None);
        assert_eq!(reply, b"a\n", "a complete line is given out at once");
        assert_eq!(c.held(), b"b");
        assert_eq!(c.feed(b"\nc\n", &mut reply), Some(b"c\n".to_vec()));
        assert_eq!(reply, b"a\nb\n");
    }

    #[test]
    fn until_framing_includes_the_matching_line() {
        let (reply, rest) = collect(Framing::Until("^END$".into()), &[b"x\nEN", b"D\r\nz"]);
        assert_eq!(reply, b"x\nEND\r\n");
        assert_eq!(rest, Some(b"z".to_vec()));
    }

    #[test]
    fn prompt_framing_ends_at_a_partial_line_and_drops_the_prompt() {
        let (reply, rest) = collect(Framing::Prompt("^>>> ".into()), &[b"2\r\n>", b">> "]);
        assert_eq!(reply, b"2\r\n");
        assert_eq!(rest, Some(Vec::new()));
        let (reply, rest) = collect(Framing::Prompt(r"\(gdb\) \n".into()), &[b"(gdb) \n"]);
        assert_eq!(
            (reply, rest),
            (Vec::new(), Some(Vec::new())),
            "an empty reply"
        );
    }

    #[test]
    fn a_long_reply_fed_a_byte_at_a_time_ends_at_the_prompt() {
        let mut text = b"row\n".repeat(50_000);
        text.extend_from_slice(b"(gdb) rest");
        let mut c = Collector::new(&Framing::Prompt(r"\(gdb\) ".into())).unwrap();
        let mut reply = Vec::new();
        let fed = text
            .chunks(1)
            .position(|byte| c.feed(byte, &mut reply).is_some());
        assert_eq!(
            fed,
            Some(200_000 + "(gdb) ".len() - 1),
            "the reply ended at the prompt"
        );
        assert_eq!(reply.len(), 200_000);
    }

    #[test]
    fn quiet_framing_never_completes_on_bytes() {
        let (reply, rest) = collect(Framing::QuietMs(10), &[b"a\nb\n", b"c"]);
        assert_eq!(reply, b"a\nb\nc");
        assert_eq!(rest, None);
    }

    #[test]
    fn a_prompt_that_matches_nothing_is_refused() {
        let args = FramingArgs {
            prompt: Some("x*".into()),
            ..FramingArgs::default()
        };
        assert!(args.given().unwrap_err().contains("matches the empty text"));
    }

    #[test]
    fn a_bad_regex_is_quoted_as_written() {
        let err = compile("--prompt", "(").unwrap_err();
        assert!(err.starts_with("--prompt: bad regex \"(\":"), "{err}");
        assert!(!err.contains("(?m)"), "{err}");
        assert!(err.contains("unclosed group"), "{err}");
    }

    #[test]
    fn printer_turns_crlf_into_lf_across_pieces() {
        let mut p = Printer::new(Vec::new());
        for piece in [&b"a\r"[..], b"\nb\rc\r", b"\r\n", b"d"] {
            p.write(piece).unwrap();
        }
        p.end(true).unwrap();
        assert_eq!(p.out, b"a\nb\rc\r\nd\n");
        let mut quiet = Printer::new(Vec::new());
        quiet.write(b"no newline\r").unwrap();
        quiet.end(false).unwrap();
        assert_eq!(quiet.out, b"no newline\r");
    }
}
