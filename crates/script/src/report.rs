//! Reports that CI systems read: TAP version 13 and JUnit XML.
//!
//! TAP: the plan, one `ok`/`not ok` line per script in the order given,
//! with a YAML block under each failure (`message` is `FILE:LINE: ...`,
//! then `file`, `line`, `expected`, the last `output`), and a closing
//! comment `# N passed, N failed`. JUnit: one `<testsuite>` in
//! `<testsuites>`, a `<testcase>` per script (`name`, `classname` the
//! script's directory, `file`, `time` in seconds) and for a failure a
//! `<failure>` whose `message` is `FILE:LINE: ...` and whose text is the
//! whole report.

use std::fmt::{self, Write as _};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::runner::{Change, Failed};

/// How a script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every step passed (perhaps after retries: see [`Outcome::flaky`]).
    Passed,
    /// A step failed; or a script marked `xfail` passed.
    Failed,
    /// Not run: `skip REASON`, or a program of `require` is not installed.
    Skipped(String),
    /// Failed, as its `xfail REASON` header expects.
    XFailed(String),
    /// Could not run: an unreadable file, a parse error, a program that
    /// cannot be started (without `require`), a record that cannot be written.
    Error,
}

/// One script's result.
///
/// `Display` writes the report: the result line, then for a failure or an
/// error where and why, what was expected and the last output, then each
/// rewrite `--update` made.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The name shown for it (the file name without `.duet`).
    pub name: String,
    /// The script's path as given.
    pub file: String,
    /// How long it ran, all runs together.
    pub elapsed: Duration,
    /// Passed, failed, skipped, failed as expected, or could not run.
    pub status: Status,
    /// Why it failed or could not run; for an expected failure, how.
    pub failure: Option<Failed>,
    /// How many times it ran (more than 1 after retries; 0 when skipped).
    pub runs: u32,
    /// The lines `--update` rewrote.
    pub changes: Vec<Change>,
}

/// The record of one script in the reports (the name of earlier releases).
pub type Case = Outcome;

impl Outcome {
    /// The name a script is shown by: its file name without the extension.
    pub fn name_of(file: &str) -> String {
        if file == "-" || file == "<stdin>" {
            return "stdin".into();
        }
        Path::new(file)
            .file_stem()
            .map_or_else(|| file.to_string(), |s| s.to_string_lossy().into_owned())
    }

    /// True when the script did what it says: every step passed, or it
    /// failed as its `xfail` header expects.
    pub fn passed(&self) -> bool {
        matches!(self.status, Status::Passed | Status::XFailed(_))
    }

    /// True when it was not run (`skip`, or `require` found a program missing).
    pub fn skipped(&self) -> bool {
        matches!(self.status, Status::Skipped(_))
    }

    /// True when it failed or could not run: what makes a suite fail.
    pub fn failed(&self) -> bool {
        matches!(self.status, Status::Failed | Status::Error)
    }

    /// True when it passed only after failing: retries hid a failure.
    pub fn flaky(&self) -> bool {
        self.status == Status::Passed && self.runs > 1
    }

    /// `ok NAME (0.31s)`, `FAIL NAME: FILE:LINE: ...`, `skip NAME: REASON`,
    /// `xfail NAME: REASON`, `ERROR NAME: FILE:LINE: ...`; a flaky pass
    /// says so.
    pub fn line(&self) -> String {
        let headline = || {
            self.failure
                .as_ref()
                .map_or_else(String::new, |f| f.headline(&self.file))
        };
        match &self.status {
            Status::Passed if self.flaky() => format!(
                "ok {} ({:.2}s; flaky: passed on run {})",
                self.name,
                self.elapsed.as_secs_f64(),
                self.runs
            ),
            Status::Passed if !self.changes.is_empty() => format!(
                "ok {} ({:.2}s; updated {} line{})",
                self.name,
                self.elapsed.as_secs_f64(),
                self.changes.len(),
                if self.changes.len() == 1 { "" } else { "s" }
            ),
            Status::Passed => format!("ok {} ({:.2}s)", self.name, self.elapsed.as_secs_f64()),
            Status::Failed => format!("FAIL {}: {}", self.name, headline()),
            Status::Skipped(reason) => format!("skip {}: {reason}", self.name),
            Status::XFailed(reason) => format!("xfail {}: {reason}", self.name),
            Status::Error => format!("ERROR {}: {}", self.name, headline()),
        }
    }

    /// The failure's report alone (for `Failed` and `Error`; else empty).
    pub fn failure_report(&self) -> String {
        match (&self.failure, self.failed()) {
            (Some(f), true) => f.report(&self.file),
            _ => String::new(),
        }
    }

    /// `FILE:LINE: `OLD` -> `NEW`` for each rewrite.
    pub fn change_lines(&self) -> Vec<String> {
        self.changes
            .iter()
            .map(|c| format!("{}:{}: `{}` -> `{}`", self.file, c.line, c.old, c.new))
            .collect()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())?;
        if self.failed()
            && let Some(failed) = &self.failure
        {
            write!(f, "\n{}", failed.report(&self.file))?;
        }
        for line in self.change_lines() {
            write!(f, "\nupdated {line}")?;
        }
        Ok(())
    }
}

/// The counts of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Passed, or failed as expected.
    pub passed: usize,
    /// Failed, or could not run.
    pub failed: usize,
    /// Not run.
    pub skipped: usize,
}

impl Counts {
    /// Counts `outcomes`.
    pub fn of(outcomes: &[Outcome]) -> Counts {
        let mut c = Counts::default();
        for o in outcomes {
            if o.skipped() {
                c.skipped += 1;
            } else if o.failed() {
                c.failed += 1;
            } else {
                c.passed += 1;
            }
        }
        c
    }
}

/// `N passed, N failed`, with `, N skipped` when there are skips.
pub fn summary(cases: &[Outcome]) -> String {
    let c = Counts::of(cases);
    let mut out = format!("{} passed, {} failed", c.passed, c.failed);
    if c.skipped > 0 {
        let _ = write!(out, ", {} skipped", c.skipped);
    }
    out
}

/// The cases as TAP version 13: a skip is `ok N - NAME # SKIP reason`, an
/// expected failure `not ok N - NAME # TODO reason`.
pub fn tap(cases: &[Outcome]) -> String {
    let mut out = format!("TAP version 13\n1..{}\n", cases.len());
    for (i, case) in cases.iter().enumerate() {
        let n = i + 1;
        // `#` would start a directive (SKIP, TODO).
        let name = case.name.replace('#', "\\#");
        let directive = |reason: &str| one_line(reason).replace('#', "\\#");
        match &case.status {
            Status::Passed => {
                let _ = writeln!(out, "ok {n} - {name}");
                if case.flaky() {
                    let _ = writeln!(out, "# {name}: flaky, passed on run {}", case.runs);
                }
            }
            Status::Skipped(reason) => {
                let _ = writeln!(out, "ok {n} - {name} # SKIP {}", directive(reason));
            }
            Status::XFailed(reason) => {
                let _ = writeln!(out, "not ok {n} - {name} # TODO {}", directive(reason));
            }
            Status::Failed | Status::Error => {
                let _ = writeln!(out, "not ok {n} - {name}");
                out.push_str("  ---\n");
                let f = case.failure.as_ref();
                let headline = f.map_or_else(String::new, |f| f.headline(&case.file));
                yaml(&mut out, "message", &headline);
                let severity = if case.status == Status::Error {
                    "error"
                } else {
                    "fail"
                };
                let _ = writeln!(out, "  severity: {severity}");
                yaml(&mut out, "file", &case.file);
                if let Some(f) = f {
                    let _ = writeln!(out, "  line: {}", f.line);
                    if !f.step.is_empty() {
                        yaml(&mut out, "step", &f.step);
                    }
                    if !f.expected.is_empty() {
                        yaml(&mut out, "expected", &f.expected);
                    }
                    if !f.output.is_empty() {
                        let _ = writeln!(out, "  output:");
                        for line in &f.output {
                            let _ = writeln!(out, "    - {}", json(line));
                        }
                    }
                }
                let _ = writeln!(out, "  duration_ms: {}", case.elapsed.as_millis());
                out.push_str("  ...\n");
            }
        }
    }
    let _ = writeln!(out, "# {}", summary(cases));
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn yaml(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "  {key}: {}", json(value));
}

/// A JSON string, which YAML reads as a string too.
fn json(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// The cases as JUnit XML, one suite named `suite`: `tests`, `failures`,
/// `errors` and `skipped` count the outcomes; a skip is `<skipped
/// message=.../>`, an error `<error message=...>`, an expected failure a
/// passing testcase whose `<system-out>` says how it failed.
pub fn junit(cases: &[Outcome], suite: &str, started: SystemTime) -> String {
    let count = |s: fn(&Status) -> bool| cases.iter().filter(|c| s(&c.status)).count();
    let failed = count(|s| *s == Status::Failed);
    let errors = count(|s| *s == Status::Error);
    let skipped = count(|s| matches!(s, Status::Skipped(_)));
    let total: f64 = cases.iter().map(|c| c.elapsed.as_secs_f64()).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"{errors}\" time=\"{total:.3}\">",
        xml(suite),
        cases.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"{errors}\" \
         skipped=\"{skipped}\" time=\"{total:.3}\" timestamp=\"{}\">",
        xml(suite),
        cases.len(),
        iso8601(started)
    );
    for case in cases {
        let class = Path::new(&case.file)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| suite.to_string());
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" time=\"{:.3}\"",
            xml(&case.name),
            xml(&class),
            xml(&case.file),
            case.elapsed.as_secs_f64()
        );
        let headline = case
            .failure
            .as_ref()
            .map_or_else(String::new, |f| f.headline(&case.file));
        let report = case
            .failure
            .as_ref()
            .map_or_else(String::new, |f| f.report(&case.file));
        match &case.status {
            Status::Passed if case.flaky() => {
                let _ = writeln!(
                    out,
                    ">\n      <system-out>flaky: passed on run {}</system-out>\n    </testcase>",
                    case.runs
                );
            }
            Status::Passed => out.push_str("/>\n"),
            Status::Skipped(reason) => {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    xml(reason)
                );
            }
            Status::XFailed(reason) => {
                let _ = writeln!(
                    out,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    xml(&format!("expected failure ({reason}): {report}"))
                );
            }
            Status::Failed | Status::Error => {
                let tag = if case.status == Status::Error {
                    "error"
                } else {
                    "failure"
                };
                let kind = match &case.failure {
                    Some(f) if !f.step.is_empty() => "step",
                    _ if case.status == Status::Error => "error",
                    _ => "script",
                };
                let _ = writeln!(
                    out,
                    ">\n      <{tag} message=\"{}\" type=\"{kind}\">{}</{tag}>\n    </testcase>",
                    xml(&headline),
                    xml(&report)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Text for XML content and attribute values: the five special characters
/// as entities, line ends as character references (attributes keep them),
/// and characters XML 1.0 cannot hold as `\xHH`.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-22T10:04:05` (UTC), as JUnit's `timestamp`.
fn iso8601(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_civil_dates() {
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(iso8601(at(0)), "1970-01-01T00:00:00");
        assert_eq!(iso8601(at(951_782_400)), "2000-02-29T00:00:00");
        assert_eq!(iso8601(at(1_700_000_000)), "2023-11-14T22:13:20");
    }

    #[test]
    fn xml_text_is_escaped_and_valid() {
        assert_eq!(
            xml("a<b>&\"'\n\x1b"),
            "a&lt;b&gt;&amp;&quot;&apos;&#10;\\x1b"
        );
    }

    #[test]
    fn names_drop_directory_and_extension() {
        assert_eq!(Outcome::name_of("ci/bc.duet"), "bc");
        assert_eq!(Outcome::name_of("-"), "stdin");
    }
}
