//! The duet script language: expect/send sessions as files, for CI.
//!
//! A script names its program, then talks to it one step per line:
//!
//! ```text
//! spawn bc -q              # the program, split like a shell, no expansion
//! timeout 2s               # the limit for each later step
//! sendline 2+2             # TEXT, then the newline
//! expect-line ^4$          # the next complete line matches
//! close-stdin              # end of input
//! expect-eof               # the program closes its output
//! exit-status 0            # and exits with code 0
//! ```
//!
//! The language reference is `docs/script.md` in the repository (and the
//! `duet-script(5)` manual page). This crate is the language as a library:
//! [`syntax::parse`] checks a whole file before anything runs, [`run_file`]
//! runs one against its program through the `duet` library, and
//! [`report`] writes the results as text, TAP and JUnit; [`cast`] records
//! a session as asciicast v2. The `duet script`, `duet test` and `duet
//! record` commands are thin layers over it.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("duet-script-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let file = dir.join("sh.duet");
//! std::fs::write(&file, "spawn sh -c 'echo hello; exit 3'\nexpect-line ^hello$\nexit-status 3\n")?;
//! let config = duet_script::Config::new(&file);
//! let case = duet_script::run_file(&file, &config);
//! assert!(case.failure.is_none(), "{}", case.failure.unwrap().report(&case.file));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code, missing_docs, missing_debug_implementations)]

pub mod cast;
pub mod duration;
pub mod report;
mod runner;
pub mod syntax;

use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

pub use report::Case;
pub use runner::{Config, FAILED, Failed, Outcome, PTY_TERM, Remote, exit};

impl Config {
    /// The defaults for `file`: its own `spawn`, here, a 10 s timeout per
    /// step, no pty, no transcript, no recording.
    pub fn new(file: &Path) -> Config {
        Config {
            file: display_name(file),
            program: Vec::new(),
            remote: Remote::default(),
            timeout: Duration::from_secs(10),
            pty: false,
            transcript: None,
            cast: None,
        }
    }
}

/// The name of a script file in messages: its path, or `<stdin>` for `-`.
pub fn display_name(file: &Path) -> String {
    if file.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        file.display().to_string()
    }
}

/// Reads, parses and runs one script (`-` reads it from stdin);
/// `config.file` names it in messages. A script with errors runs nothing:
/// its case fails with every error listed.
pub fn run_file(file: &Path, config: &Config) -> Case {
    let name = Case::name_of(&config.file);
    let case = |failure, elapsed| Case {
        name: name.clone(),
        file: config.file.clone(),
        elapsed,
        failure,
    };
    let text = match read(file) {
        Ok(text) => text,
        Err(f) => return case(Some(*f), Duration::ZERO),
    };
    let script = match syntax::parse(&text) {
        Ok(script) => script,
        Err(errors) => return case(Some(parse_failure(&config.file, &errors)), Duration::ZERO),
    };
    let outcome = runner::run(&script, config);
    case(outcome.failure, outcome.elapsed)
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
    read.map_err(|e| Failed::at(0, format!("cannot read the script {name}: {e}")))?;
    // A byte order mark, as some editors write, is not part of line 1.
    if bytes.starts_with("\u{feff}".as_bytes()) {
        bytes.drain(..3);
    }
    Ok(String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        Failed::at(
            line,
            "this line is not UTF-8 text; write other bytes as \\xHH",
        )
    })?)
}

/// Every parse error as one failure: the first is the headline, the others
/// follow, each `FILE:LINE: ...`.
fn parse_failure(file: &str, errors: &[syntax::ParseError]) -> Failed {
    let first = &errors[0];
    let mut failed = Failed::at(first.line, first.message.clone());
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

/// Writes the JUnit report for `cases` to `path`.
///
/// # Errors
/// The file cannot be written; the message names it.
pub fn write_junit(
    path: &Path,
    cases: &[Case],
    started: std::time::SystemTime,
) -> Result<(), String> {
    std::fs::write(path, report::junit(cases, "duet", started))
        .map_err(|e| format!("cannot write the JUnit report {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
