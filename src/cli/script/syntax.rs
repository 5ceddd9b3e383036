//! The script's syntax: text in, steps (or every error) out.
//!
//! Pure: no processes, no files, no clap. The CLI reaches it as
//! `script::parse`; the fuzz target (`fuzz/fuzz_targets/script.rs`)
//! includes this file and `src/cli/duration.rs` by path, so it names
//! nothing of the CLI but `super::duration` (here, `script.rs`'s import).

use std::fmt;
use std::time::Duration;

use regex::Regex;

use super::duration;

/// What one step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Write the text as is.
    Send(String),
    /// Write the text and a newline.
    SendLine(String),
    /// Write the text as is, keeping it out of the transcript.
    SendSecret(String),
    /// Wait for output matching the regex.
    Expect(Regex),
    /// Wait for output containing the text.
    ExpectExact(String),
    /// Wait for the program to close its output.
    ExpectEof,
    /// Set the limit for the following expectations.
    Timeout(Duration),
    /// Wait for the program to exit and check its code.
    ExitStatus(i32),
}

/// A step and where it came from.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based line number in the script.
    pub line: usize,
    /// The line as written (without its line end), for messages.
    pub source: String,
    /// What to do.
    pub action: Action,
}

/// A problem in a script, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and how to write it instead.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses a whole script. Every line is checked; all problems are returned
/// together, in line order, so one run shows them all.
pub fn parse(text: &str) -> Result<Vec<Step>, Vec<ParseError>> {
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let source = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = source.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(trimmed) {
            Ok(action) => steps.push(Step {
                line,
                source: source.to_string(),
                action,
            }),
            Err(message) => errors.push(ParseError { line, message }),
        }
    }
    if errors.is_empty() {
        Ok(steps)
    } else {
        Err(errors)
    }
}

const KEYWORDS: &str =
    "send, send-secret, sendline, expect, expect-exact, expect-eof, timeout, exit-status";

fn parse_line(line: &str) -> Result<Action, String> {
    let (keyword, arg) = match line.find(char::is_whitespace) {
        Some(i) => {
            let rest = &line[i..];
            // Drop exactly one separating whitespace character; keep the rest.
            let sep = rest.chars().next().map_or(0, char::len_utf8);
            (&line[..i], &rest[sep..])
        }
        None => (line, ""),
    };
    let needs = |what: &str| -> Result<(), String> {
        if arg.is_empty() {
            Err(format!(
                "`{keyword}` needs {what}, e.g. `{keyword} {}`",
                example(keyword)
            ))
        } else {
            Ok(())
        }
    };
    let none = || -> Result<(), String> {
        if arg.trim().is_empty() {
            Ok(())
        } else {
            Err(format!("`{keyword}` takes no argument, found {arg:?}"))
        }
    };
    Ok(match keyword {
        "send" => {
            needs("TEXT")?;
            Action::Send(unescape(arg)?)
        }
        "sendline" => Action::SendLine(unescape(arg)?),
        "send-secret" => {
            needs("TEXT")?;
            Action::SendSecret(unescape(arg)?)
        }
        "expect" => {
            needs("a REGEX")?;
            // Multi-line mode, so that `^` and `$` match at line ends in
            // whatever has arrived; `as_str()` keeps the flag for the engine.
            Action::Expect(
                Regex::new(&format!("(?m){arg}"))
                    .map_err(|e| format!("bad regex {arg:?}: {}", one_line(&e.to_string())))?,
            )
        }
        "expect-exact" => {
            needs("TEXT")?;
            Action::ExpectExact(unescape(arg)?)
        }
        "expect-eof" => {
            none()?;
            Action::ExpectEof
        }
        "timeout" => {
            needs("a duration")?;
            Action::Timeout(duration::parse(arg)?)
        }
        "exit-status" => {
            needs("a code")?;
            let code = arg
                .trim()
                .parse::<u8>()
                .map_err(|_| format!("exit-status needs a code from 0 to 255, found {arg:?}"))?;
            Action::ExitStatus(i32::from(code))
        }
        other => {
            return Err(format!(
                "unknown step `{other}`; the steps are {KEYWORDS}, and # comments"
            ));
        }
    })
}

fn example(keyword: &str) -> &'static str {
    match keyword {
        "expect" => "^ready$",
        "timeout" => "5s",
        "exit-status" => "0",
        _ => "hello",
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes `\n`, `\t` and `\\`; anything else after a backslash is an error.
pub fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                return Err(format!(
                    "unknown escape `\\{other}`; the escapes are \\n, \\t and \\\\"
                ));
            }
            None => return Err("a lone `\\` at the end; write `\\\\` for a backslash".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_step_with_its_line() {
        let text = "# calc\n\ntimeout 2s\nsendline 2 + 2\nexpect ^4$\nsend quit\\n\n  expect-exact a\\tb\nexpect-eof\nexit-status 3\n";
        let steps = parse(text).unwrap();
        let lines: Vec<usize> = steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9]);
        assert!(matches!(steps[0].action, Action::Timeout(d) if d == Duration::from_secs(2)));
        assert!(matches!(&steps[1].action, Action::SendLine(t) if t == "2 + 2"));
        assert!(matches!(&steps[2].action, Action::Expect(r) if r.is_match("x\n4\n")));
        assert!(matches!(&steps[3].action, Action::Send(t) if t == "quit\n"));
        assert!(matches!(&steps[4].action, Action::ExpectExact(t) if t == "a\tb"));
        assert!(matches!(steps[5].action, Action::ExpectEof));
        assert!(matches!(steps[6].action, Action::ExitStatus(3)));
    }

    #[test]
    fn keeps_arguments_as_written() {
        let steps = parse("sendline   two spaces  \nsendline\nsendline #1\r\n").unwrap();
        assert!(matches!(&steps[0].action, Action::SendLine(t) if t == "  two spaces  "));
        assert!(matches!(&steps[1].action, Action::SendLine(t) if t.is_empty()));
        assert!(matches!(&steps[2].action, Action::SendLine(t) if t == "#1"));
    }

    #[test]
    fn regexes_are_not_unescaped() {
        let steps = parse(r"expect ^\d+\\$").unwrap();
        assert!(matches!(&steps[0].action, Action::Expect(r) if r.is_match(r"42\")));
    }

    #[test]
    fn reports_every_error_with_its_line() {
        let text = "sendline ok\nfrobnicate\nexpect (\ntimeout soon\nsend\nexit-status 300\nsend bad\\q\nexpect-eof now\n";
        let errors = parse(text).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8]);
        assert!(errors[0].message.contains("unknown step `frobnicate`"));
        assert!(errors[1].message.contains("bad regex"));
        assert!(errors[2].message.contains("\"soon\""));
        assert!(errors[3].message.contains("`send` needs TEXT"));
        assert!(errors[4].message.contains("0 to 255"));
        assert!(errors[5].message.contains("unknown escape `\\q`"));
        assert!(errors[6].message.contains("takes no argument"));
        assert_eq!(
            errors[0].to_string(),
            format!("line 2: {}", errors[0].message)
        );
    }

    #[test]
    fn unescape_decodes_the_three_escapes() {
        assert_eq!(unescape(r"a\nb\tc\\d").unwrap(), "a\nb\tc\\d");
        assert!(unescape("end\\").unwrap_err().contains("lone"));
    }
}
