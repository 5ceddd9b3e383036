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
//! runs one against its program through the `duet` library, [`Suite`] runs
//! a directory of them as one `cargo test`, and [`report`] writes the
//! results as text, TAP and JUnit; [`cast`] records a session as
//! asciicast v2. The `duet script`, `duet test` and `duet record` commands
//! are thin layers over it.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("duet-script-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let file = dir.join("sh.duet");
//! std::fs::write(&file, "spawn sh -c 'echo hello; exit 3'\nexpect-line ^hello$\nexit-status 3\n")?;
//! let outcome = duet_script::run_file(&file)?;
//! assert!(outcome.passed(), "{outcome}");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In a crate's tests, every script of a directory as one test:
//!
//! ```no_run
//! #[test]
//! fn sessions() {
//!     duet_script::Suite::new().case("tests/sessions/*.duet").run();
//! }
//! ```
#![deny(unsafe_code, missing_docs, missing_debug_implementations)]

mod case;
pub mod cast;
pub mod duration;
pub mod report;
mod runner;
mod suite;
pub mod syntax;

use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use case::{Loaded, display_name};
pub use report::{Case, Outcome, Status};
pub use runner::{Change, Config, FAILED, Failed, PTY_TERM, Remote, exit};
pub use suite::Suite;

impl Config {
    /// The defaults for `file`: its own `spawn`, here, a 10 s timeout per
    /// step, no pty, no transcript, no recording, no update, no retries.
    pub fn new(file: &Path) -> Config {
        Config {
            file: display_name(file),
            program: Vec::new(),
            remote: Remote::default(),
            timeout: Duration::from_secs(10),
            pty: false,
            transcript: None,
            cast: None,
            update: false,
            retries: 0,
        }
    }
}

/// A script that could not run: unreadable, with parse errors, or whose
/// program cannot be started. `Display` is the report (`FILE:LINE: ...`).
#[derive(Debug)]
pub struct Error(Box<Outcome>);

impl Error {
    /// The outcome, whose status is [`Status::Error`].
    pub fn outcome(&self) -> &Outcome {
        &self.0
    }

    /// The exit code `duet script` gives it: 127 for a program not found,
    /// 126 for one that cannot be run, 125 for a record duet could not
    /// write, 1 for a script it could not read or parse.
    pub fn code(&self) -> u8 {
        self.0.failure.as_ref().map_or(FAILED, |f| f.code)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.failure_report())
    }
}

impl std::error::Error for Error {}

/// Reads, parses and runs one script with the defaults of
/// [`Config::new`]; `DUET_UPDATE=1` in the environment rewrites a failing
/// `expect-line` or `exit-status` in the file, as `duet test --update`.
///
/// # Errors
/// The script could not run: see [`Error`]. A script that ran and failed is
/// `Ok`, with an outcome that is not [`passed`](Outcome::passed).
pub fn run_file(path: impl AsRef<Path>) -> Result<Outcome, Error> {
    let path = path.as_ref();
    let mut config = Config::new(path);
    config.update = std::env::var_os("DUET_UPDATE").is_some_and(|v| !v.is_empty() && v != "0");
    run_with(path, &config)
}

/// [`run_file`] with a configuration of one's own (`-` reads the script
/// from stdin; `config.file` names it in messages).
///
/// # Errors
/// As [`run_file`].
pub fn run_with(path: &Path, config: &Config) -> Result<Outcome, Error> {
    let outcome = Loaded::read(path).run(config);
    if outcome.status == Status::Error {
        Err(Error(Box::new(outcome)))
    } else {
        Ok(outcome)
    }
}

/// Writes the JUnit report for `cases` to `path`.
///
/// # Errors
/// The file cannot be written; the message names it.
pub fn write_junit(
    path: &Path,
    cases: &[Outcome],
    started: std::time::SystemTime,
) -> Result<(), String> {
    std::fs::write(path, report::junit(cases, "duet", started))
        .map_err(|e| format!("cannot write the JUnit report {}: {e}", path.display()))
}
