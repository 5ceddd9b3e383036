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

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::runner::Failed;

/// One script's result.
#[derive(Debug)]
pub struct Case {
    /// The name shown for it (the file name without `.duet`).
    pub name: String,
    /// The script's path as given.
    pub file: String,
    /// How long it ran.
    pub elapsed: Duration,
    /// Why it failed, if it did.
    pub failure: Option<Failed>,
}

impl Case {
    /// The name a script is shown by: its file name without the extension.
    pub fn name_of(file: &str) -> String {
        if file == "-" || file == "<stdin>" {
            return "stdin".into();
        }
        Path::new(file)
            .file_stem()
            .map_or_else(|| file.to_string(), |s| s.to_string_lossy().into_owned())
    }

    /// `ok NAME (0.31s)` or `FAIL NAME: FILE:LINE: ...`.
    pub fn line(&self) -> String {
        match &self.failure {
            None => format!("ok {} ({:.2}s)", self.name, self.elapsed.as_secs_f64()),
            Some(f) => format!("FAIL {}: {}", self.name, f.headline(&self.file)),
        }
    }
}

/// `N passed, N failed`.
pub fn summary(cases: &[Case]) -> String {
    let failed = cases.iter().filter(|c| c.failure.is_some()).count();
    format!("{} passed, {failed} failed", cases.len() - failed)
}

/// The cases as TAP version 13.
pub fn tap(cases: &[Case]) -> String {
    let mut out = format!("TAP version 13\n1..{}\n", cases.len());
    for (i, case) in cases.iter().enumerate() {
        let n = i + 1;
        // `#` would start a directive (SKIP, TODO).
        let name = case.name.replace('#', "\\#");
        match &case.failure {
            None => {
                let _ = writeln!(out, "ok {n} - {name}");
            }
            Some(f) => {
                let _ = writeln!(out, "not ok {n} - {name}");
                out.push_str("  ---\n");
                yaml(&mut out, "message", &f.headline(&case.file));
                out.push_str("  severity: fail\n");
                yaml(&mut out, "file", &case.file);
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
                let _ = writeln!(out, "  duration_ms: {}", case.elapsed.as_millis());
                out.push_str("  ...\n");
            }
        }
    }
    let _ = writeln!(out, "# {}", summary(cases));
    out
}

fn yaml(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "  {key}: {}", json(value));
}

/// A JSON string, which YAML reads as a string too.
fn json(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// The cases as JUnit XML, one suite named `suite`.
pub fn junit(cases: &[Case], suite: &str, started: SystemTime) -> String {
    let failed = cases.iter().filter(|c| c.failure.is_some()).count();
    let total: f64 = cases.iter().map(|c| c.elapsed.as_secs_f64()).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" time=\"{total:.3}\">",
        xml(suite),
        cases.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\" \
         time=\"{total:.3}\" timestamp=\"{}\">",
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
        match &case.failure {
            None => out.push_str("/>\n"),
            Some(f) => {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                    xml(&f.headline(&case.file)),
                    if f.step.is_empty() { "error" } else { "step" },
                    xml(&f.report(&case.file))
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
        assert_eq!(Case::name_of("ci/bc.duet"), "bc");
        assert_eq!(Case::name_of("-"), "stdin");
    }
}
