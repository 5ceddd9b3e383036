//! `duet test`: many scripts at once, each naming its own program with
//! `spawn`, reported as CI systems read them.
//!
//! Up to `-j N` scripts run at the same time (default: the number of
//! CPUs), each on a thread of its own. Results are printed in the order the
//! files were given, each as soon as it and those before it are done:
//! `ok NAME (0.31s)` or `FAIL NAME: FILE:LINE: ...`, and last `N passed,
//! N failed`; the full report of each failure goes to stderr. `--tap` prints TAP version 13
//! instead; `--junit FILE` writes JUnit XML as well. `--cast DIR` records
//! each script as `DIR/NAME.cast`; `--cast FILE` records them all in one
//! file, one session after the other. Exit 0 only when no script failed,
//! else 1.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::exit::Failure;
use duet_script::{self as script, Case, Config, cast, report};

/// Run many scripts in parallel, each naming its program with `spawn`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: duet test -j 4 --junit report.xml --cast casts/ ci/")]
pub struct TestArgs {
    /// Run up to N scripts at once (default: the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Print TAP version 13 on stdout instead of one line per script.
    #[arg(long)]
    tap: bool,
    /// Write JUnit XML to FILE (a testcase per script).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Record the sessions (asciicast v2): an existing directory or a path
    /// ending in `/` gets DIR/NAME.cast per script, any other path one file
    /// of them all.
    #[arg(long, value_name = "FILE|DIR")]
    cast: Option<PathBuf>,
    /// The limit for each step until a script's `timeout` line changes it.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = crate::args::parse_duration)]
    timeout: Duration,
    /// The scripts; a directory stands for the `*.duet` files in it.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Runs `duet test`.
pub fn run(args: TestArgs) -> Result<ExitCode, Failure> {
    let started = SystemTime::now();
    let files = expand(&args.files)?;
    // `--cast DIR` (a directory, or a path ending in `/`): a recording per
    // script; `--cast FILE`: one recording of them all, made from those.
    let combined = args
        .cast
        .as_ref()
        .filter(|p| !p.is_dir() && !p.as_os_str().to_string_lossy().ends_with('/'));
    let cast_dir = match (&args.cast, combined) {
        (Some(dir), None) => Some(dir.clone()),
        (Some(_), Some(_)) => {
            Some(std::env::temp_dir().join(format!("duet-test-casts-{}", std::process::id())))
        }
        (None, _) => None,
    };
    if let Some(dir) = &cast_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::internal(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let casts = cast_paths(&files, cast_dir.as_deref());
    let jobs = match args.jobs {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
    .min(files.len());
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Case)>();
    let mut cases: Vec<Option<Case>> = files.iter().map(|_| None).collect();
    let mut stdout = io::stdout().lock();
    let mut printed = 0;
    std::thread::scope(|scope| -> Result<(), Failure> {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, files, casts, timeout) = (&next, &files, &casts, args.timeout);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { return };
                    let config = Config {
                        file: script::display_name(file),
                        program: Vec::new(),
                        remote: duet_script::Remote::default(),
                        timeout,
                        pty: false,
                        transcript: None,
                        cast: casts[i].clone(),
                    };
                    if tx.send((i, script::run_file(file, &config))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for (i, case) in rx {
            cases[i] = Some(case);
            while let Some(Some(case)) = cases.get(printed) {
                if !args.tap {
                    writeln!(stdout, "{}", case.line())
                        .and_then(|()| stdout.flush())
                        .map_err(Failure::stdout)?;
                }
                printed += 1;
            }
        }
        Ok(())
    })?;
    let mut cases: Vec<Case> = cases
        .into_iter()
        .map(|c| c.expect("every script reports"))
        .collect();
    if let (Some(file), Some(dir)) = (combined, &cast_dir) {
        let parts: Vec<(String, PathBuf)> = cases
            .iter()
            .zip(&casts)
            .filter_map(|(case, path)| {
                let verdict = if case.failure.is_some() { "FAIL" } else { "ok" };
                let path = path.clone().filter(|p| p.exists())?;
                Some((format!("{} ({verdict})", case.name), path))
            })
            .collect();
        let joined = cast::concat(file, "duet test", &parts);
        let _ = std::fs::remove_dir_all(dir);
        joined.map_err(|e| {
            Failure::internal(format!(
                "cannot write the recording {}: {e}",
                file.display()
            ))
        })?;
        // The failures name the recording that stays.
        for case in &mut cases {
            if let Some(f) = &mut case.failure {
                for note in &mut f.notes {
                    if note.starts_with("recording: ") {
                        *note = format!("recording: {} (session {})", file.display(), case.name);
                    }
                }
            }
        }
    }
    // stdout: a line per script and the count (or TAP); the reports of the
    // failures go to stderr.
    let text = if args.tap {
        report::tap(&cases)
    } else {
        format!("{}\n", report::summary(&cases))
    };
    if !args.tap {
        let mut stderr = io::stderr().lock();
        for case in &cases {
            if let Some(f) = &case.failure {
                let _ = writeln!(stderr, "\n{}", f.report(&case.file));
            }
        }
        let _ = stderr.flush();
    }
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Failure::stdout)?;
    if let Some(path) = &args.junit {
        script::write_junit(path, &cases, started).map_err(Failure::internal)?;
    }
    Ok(if cases.iter().any(|c| c.failure.is_some()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The files to run: each argument, a directory as its `*.duet` files in
/// name order.
fn expand(args: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for arg in args {
        if !arg.is_dir() {
            files.push(arg.clone());
            continue;
        }
        let entries = std::fs::read_dir(arg).map_err(|e| {
            Failure::new(
                1,
                format!("cannot read the directory {}: {e}", arg.display()),
            )
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "duet") && p.is_file())
            .collect();
        if found.is_empty() {
            return Err(Failure::new(
                1,
                format!("{} holds no *.duet scripts", arg.display()),
            ));
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// `DIR/NAME.cast` for each file; a name used twice gets `-2`, `-3`, ...
fn cast_paths(files: &[PathBuf], dir: Option<&Path>) -> Vec<Option<PathBuf>> {
    let Some(dir) = dir else {
        return files.iter().map(|_| None).collect();
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    files
        .iter()
        .map(|f| {
            let name = Case::name_of(&script::display_name(f));
            let n = seen.entry(name.clone()).or_insert(0);
            *n += 1;
            let file = if *n == 1 {
                format!("{name}.cast")
            } else {
                format!("{name}-{n}.cast")
            };
            Some(dir.join(file))
        })
        .collect()
}
