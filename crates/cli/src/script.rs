//! `duet script`: an expect/send script, parsed whole before anything runs,
//! then run against its program. The language and its runner are the
//! `duet_script` crate; this is the command line over them.
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
//! run. A program that cannot be started exits 127 (not found) or 126. A
//! skipped script (`skip`, `require`) and one that fails as its `xfail`
//! says exit 0, saying so on stderr.
//!
//! The language's reference is the `duet-script(5)` manual page (`duet man`).

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use duet_script::{Config, Loaded, Status, report};

use crate::exit::Failure;

/// Run an expect/send script against its program (for CI).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: duet script ci/bc.duet --junit report.xml\n         \
    printf 'sendline 2+2\\nexpect-line ^4$\\n' | duet script - -- bc -q\n\n\
    The language (spawn, sendline, expect-line, ...) is the manual page duet-script(5): \
    `duet man --out-dir DIR` writes it, `man -l DIR/duet-script.5` shows it."
)]
pub struct ScriptArgs {
    /// The script file, or `-` to read it from stdin.
    file: PathBuf,
    /// The limit for each step until a `timeout` line changes it.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = crate::args::parse_duration)]
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
    remote: crate::args::Remote,
    /// The program and its arguments, overriding the script's `spawn`.
    #[arg(last = true, value_name = "PROG ARGS")]
    program: Vec<OsString>,
}

/// Runs `duet script`.
pub fn run(args: ScriptArgs) -> Result<ExitCode, Failure> {
    let started = SystemTime::now();
    let mut config = Config::new(&args.file);
    config.program = args.program;
    config.remote = args.remote.into();
    config.timeout = args.timeout;
    config.pty = args.pty;
    config.transcript = args.transcript;
    config.cast = args.cast;
    let case = Loaded::read(&args.file).run(&config);
    let cases = [case];
    if args.tap {
        let mut stdout = io::stdout().lock();
        stdout
            .write_all(report::tap(&cases).as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(Failure::stdout)?;
    }
    if let Some(path) = &args.junit {
        duet_script::write_junit(path, &cases, started).map_err(Failure::internal)?;
    }
    let [case] = cases;
    match (&case.status, case.failure) {
        (Status::Failed | Status::Error, Some(f)) => {
            Err(Failure::new(f.code, f.report(&case.file)))
        }
        (Status::Skipped(reason), _) => {
            eprintln!("{}: skipped: {reason}", case.file);
            Ok(ExitCode::SUCCESS)
        }
        (Status::XFailed(reason), _) => {
            eprintln!("{}: failed as expected (xfail {reason})", case.file);
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}
