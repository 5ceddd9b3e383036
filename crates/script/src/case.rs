//! One script from file to outcome: read and parse it, honour its header
//! (`skip`, `require`, `retries`, `xfail`), run it, and in update mode
//! write the rewrites back into the file.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::report::{Outcome, Status};
use crate::runner::{self, Change, Config, FAILED, Failed};
use crate::syntax::{self, Script};

/// The name of a script file in messages: its path, or `<stdin>` for `-`.
pub fn display_name(file: &Path) -> String {
    if file.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        file.display().to_string()
    }
}

/// A script read and parsed, or why it cannot run (an error outcome).
#[derive(Debug)]
pub struct Loaded {
    /// The file as given.
    pub path: std::path::PathBuf,
    /// The script, or the failure that makes it an error.
    pub script: Result<Script, Box<Failed>>,
}

impl Loaded {
    /// Reads and parses `path` (`-` reads stdin).
    pub fn read(path: &Path) -> Loaded {
        let script = read(path).and_then(|text| {
            syntax::parse(&text)
                .map_err(|errors| Box::new(parse_failure(&display_name(path), &errors)))
        });
        Loaded {
            path: path.to_path_buf(),
            script,
        }
    }

    /// The script's `tags` (none when it cannot be read).
    pub fn tags(&self) -> &[String] {
        match &self.script {
            Ok(s) => &s.header.tags,
            Err(_) => &[],
        }
    }

    /// Runs it: skipped, run (again on failure, up to its retries), and
    /// judged against `xfail`; rewrites written back in update mode.
    pub fn run(&self, config: &Config) -> Outcome {
        let mut outcome = Outcome {
            name: Outcome::name_of(&config.file),
            file: config.file.clone(),
            elapsed: Duration::ZERO,
            status: Status::Passed,
            failure: None,
            runs: 0,
            changes: Vec::new(),
        };
        let script = match &self.script {
            Ok(script) => script,
            Err(f) => {
                outcome.status = Status::Error;
                outcome.failure = Some((**f).clone());
                return outcome;
            }
        };
        let header = &script.header;
        if let Some(reason) = &header.skip {
            outcome.status = Status::Skipped(reason.clone());
            return outcome;
        }
        if config.remote.ssh.is_none() && config.program.is_empty() {
            let missing: Vec<&str> = header
                .require
                .iter()
                .map(String::as_str)
                .filter(|p| !installed(p))
                .collect();
            if !missing.is_empty() {
                outcome.status = Status::Skipped(format!("not installed: {}", missing.join(", ")));
                return outcome;
            }
        }
        // A rewritten file is not the script in memory: update runs once.
        let runs = if config.update {
            1
        } else {
            header.retries.unwrap_or(config.retries).saturating_add(1)
        };
        let start = Instant::now();
        let mut last = None;
        for run in 1..=runs {
            outcome.runs = run;
            let ran = runner::run(script, config);
            outcome.changes = ran.changes;
            let could_not_run = ran.failure.as_ref().is_some_and(|f| f.cannot_run);
            last = ran.failure;
            if last.is_none() || could_not_run {
                break;
            }
            log::info!("{}: run {run} of {runs} failed", config.file);
        }
        outcome.elapsed = start.elapsed();
        if !outcome.changes.is_empty()
            && let Err(e) = write_changes(&self.path, &outcome.changes)
        {
            let what = format!("cannot write the rewrites: {e}");
            match &mut last {
                Some(f) => f.notes.push(what),
                None => last = Some(Failed::cannot_run(0, what, runner::exit::INTERNAL)),
            }
        }
        outcome.status = match (&last, &header.xfail) {
            (Some(f), _) if f.cannot_run => Status::Error,
            (Some(_), Some(reason)) => Status::XFailed(reason.clone()),
            (Some(_), None) => Status::Failed,
            (None, Some(reason)) => {
                last = Some(Failed::at(
                    0,
                    format!(
                        "passed, but its header says `xfail {reason}`: remove that line if it \
                         is fixed"
                    ),
                ));
                Status::Failed
            }
            (None, None) => Status::Passed,
        };
        outcome.failure = last;
        outcome
    }
}

/// True when `program` can be run: a path that is an executable file, or
/// a name found in `PATH` as `execvp` looks.
fn installed(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).any(|dir| executable(&dir.join(program)))
}

/// The script's text: from the file, or stdin for `-`. It must be UTF-8.
fn read(file: &Path) -> Result<String, Box<Failed>> {
    let name = display_name(file);
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        io::stdin().lock().read_to_end(&mut bytes).map(drop)
    } else {
        std::fs::read(file).map(|b| bytes = b)
    };
    read.map_err(|e| Failed::cannot_run(0, format!("cannot read the script {name}: {e}"), FAILED))?;
    // A byte order mark, as some editors write, is not part of line 1.
    if bytes.starts_with("\u{feff}".as_bytes()) {
        bytes.drain(..3);
    }
    Ok(String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        Failed::cannot_run(
            line,
            "this line is not UTF-8 text; write other bytes as \\xHH",
            FAILED,
        )
    })?)
}

/// Every parse error as one failure: the first is the headline, the others
/// follow, each `FILE:LINE: ...`.
pub(crate) fn parse_failure(file: &str, errors: &[syntax::ParseError]) -> Failed {
    let first = &errors[0];
    let mut failed = Failed::cannot_run(first.line, first.message.clone(), FAILED);
    for e in &errors[1..] {
        failed
            .notes
            .push(format!("{file}:{}: {}", e.line, e.message));
    }
    failed.notes.push(match errors.len() {
        1 => "(1 error; nothing was run)".to_string(),
        n => format!("({n} errors; nothing was run)"),
    });
    failed
}

/// Why rewrites could not be written.
#[derive(Debug)]
struct WriteError(String);

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Writes `changes` into the script at `path`: each changed line keeps its
/// indentation and line end; every other byte stays as it was. The file is
/// replaced whole (written beside it, then renamed).
fn write_changes(path: &Path, changes: &[Change]) -> Result<(), WriteError> {
    if path.as_os_str() == "-" {
        return Err(WriteError("the script came from stdin".into()));
    }
    let text = std::fs::read(path)
        .map_err(|e| WriteError(format!("cannot read {}: {e}", path.display())))?;
    let rewritten = rewrite(&text, changes)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".duet-update");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, rewritten)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            WriteError(format!("cannot write {}: {e}", path.display()))
        })
}

/// The text with `changes` applied (see [`write_changes`]).
fn rewrite(text: &[u8], changes: &[Change]) -> Result<Vec<u8>, WriteError> {
    let mut out = Vec::with_capacity(text.len() + 64);
    // A byte order mark stays, and is not part of line 1.
    let (bom, body) = match text.strip_prefix("\u{feff}".as_bytes()) {
        Some(rest) => (&text[..3], rest),
        None => (&text[..0], text),
    };
    out.extend_from_slice(bom);
    for (i, line) in body.split_inclusive(|&b| b == b'\n').enumerate() {
        let Some(change) = changes.iter().find(|c| c.line == i + 1) else {
            out.extend_from_slice(line);
            continue;
        };
        let end = line
            .iter()
            .rposition(|&b| b != b'\n' && b != b'\r')
            .map_or(0, |p| p + 1);
        let (content, ending) = line.split_at(end);
        let indent = content.len() - content.trim_ascii_start().len();
        if content.trim_ascii() != change.old.as_bytes() {
            return Err(WriteError(format!(
                "line {} changed while the script ran; nothing was rewritten",
                change.line
            )));
        }
        out.extend_from_slice(&content[..indent]);
        out.extend_from_slice(change.new.as_bytes());
        out.extend_from_slice(ending);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_keeps_every_other_byte() {
        let text = b"# keep\r\nspawn x\n  expect-line ^4$\r\n\n\texit-status 0";
        let changes = [
            Change {
                line: 3,
                old: "expect-line ^4$".into(),
                new: "expect-line ^5$".into(),
            },
            Change {
                line: 5,
                old: "exit-status 0".into(),
                new: "exit-status 2".into(),
            },
        ];
        assert_eq!(
            rewrite(text, &changes).unwrap(),
            b"# keep\r\nspawn x\n  expect-line ^5$\r\n\n\texit-status 2"
        );
        let stale = [Change {
            line: 1,
            old: "spawn y".into(),
            new: "spawn z".into(),
        }];
        assert!(rewrite(text, &stale).is_err());
    }

    #[test]
    fn a_parse_failure_lists_every_error_with_file_and_line() {
        let errors = syntax::parse("frobnicate\nexpect (\n").unwrap_err();
        let f = parse_failure("x.duet", &errors);
        let report = f.report("x.duet");
        assert!(report.starts_with("x.duet:1: unknown keyword"), "{report}");
        assert!(report.contains("\n  x.duet:2: bad regex"), "{report}");
        assert!(report.contains("2 errors; nothing was run"), "{report}");
    }
}
