//! `duet script`: an expect/send script, parsed whole before anything runs,
//! then run against its program; the language is in the README ("Scripts")
//! and in `script/syntax.rs`, the running in `script/runner.rs`.
//!
//! ```text
//! # a comment (only at the start of a line)
//! spawn bc -q              # the program, split like a shell, no expansion
//! timeout 2s               # the limit for each later step (default: --timeout)
//! sendline 2+2             # TEXT, then the newline
//! expect-line ^4$          # the next complete line matches
//! close-stdin              # end of input
//! expect-eof               # the program closes its output
//! exit-status 0            # and exits with code 0
//! ```
//!
//! A failure prints `FILE:LINE: ...`, what was expected and the last output,
//! and exits 1; so does a script with errors, all of them listed and nothing
//! run. A program that cannot be started exits 127 (not found) or 126.

pub mod cast;
pub mod report;
mod runner;
pub mod syntax;

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use super::Failure;
use super::duration;
pub use report::Case;
pub use runner::{Config, Failed, PTY_TERM};

/// Run an expect/send script against its program (for CI).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: duet script ci/bc.duet --junit report.xml\n         \
    printf 'sendline 2+2\\nexpect-line ^4$\\n' | duet script - -- bc -q"
)]
pub struct ScriptArgs {
    /// The script file, or `-` to read it from stdin.
    file: PathBuf,
    /// The limit for each step until a `timeout` line changes it.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = super::parse_duration)]
    timeout: Duration,
    /// Write every byte both ways to FILE, tagged with direction and time.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
    /// Run PROG on a pseudo-terminal (as `pty on` in the script).
    #[arg(long)]
    pty: bool,
    /// Print the result as TAP version 13 on stdout.
    #[arg(long)]
    tap: bool,
    /// Write the result as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Record the session as an asciicast v2 file (`asciinema play FILE`).
    #[arg(long, value_name = "FILE")]
    cast: Option<PathBuf>,
    /// Where the program runs: here, or on another host (`spawn` too).
    #[command(flatten)]
    remote: super::Remote,
    /// The program and its arguments, overriding the script's `spawn`.
    #[arg(last = true, value_name = "PROG ARGS")]
    program: Vec<OsString>,
}

/// Runs `duet script`.
pub fn run(args: ScriptArgs) -> Result<ExitCode, Failure> {
    let started = SystemTime::now();
    let config = Config {
        file: display_name(&args.file),
        program: args.program,
        remote: args.remote,
        timeout: args.timeout,
        pty: args.pty,
        transcript: args.transcript,
        cast: args.cast,
    };
    let case = run_file(&args.file, &config);
    let cases = [case];
    if args.tap {
        let mut stdout = io::stdout().lock();
        stdout
            .write_all(report::tap(&cases).as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(Failure::stdout)?;
    }
    if let Some(path) = &args.junit {
        write_junit(path, &cases, started)?;
    }
    let [case] = cases;
    match case.failure {
        None => Ok(ExitCode::SUCCESS),
        Some(f) => Err(Failure::new(f.code, f.report(&case.file))),
    }
}

/// The name of a script file in messages.
pub fn display_name(file: &Path) -> String {
    if file.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        file.display().to_string()
    }
}

/// Reads, parses and runs one script; `config.file` names it.
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

/// Writes the JUnit report for `cases`.
pub fn write_junit(path: &Path, cases: &[Case], started: SystemTime) -> Result<(), Failure> {
    std::fs::write(path, report::junit(cases, "duet", started)).map_err(|e| {
        Failure::internal(format!(
            "cannot write the JUnit report {}: {e}",
            path.display()
        ))
    })
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
