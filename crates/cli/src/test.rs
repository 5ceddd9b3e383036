//! `duet test`: many scripts at once, each naming its own program with
//! `spawn`, reported as CI systems read them.
//!
//! The scripts are chosen, in this order: the files and directories given
//! (a directory stands for its `*.duet` files), `--rerun-failed` (those
//! that failed in the previous run from this directory, as recorded in
//! `.duet/last-run`), `--filter REGEX` (searched in each script's name and
//! path), `--partition K/N` (the K-th shard by a stable hash of the path),
//! `--tag TAG` (any of the script's `tags`; a script that cannot be parsed
//! is always kept, so that its error shows).
//!
//! Up to `-j N` scripts run at the same time (default: the number of
//! CPUs), each on a thread of its own. Results are printed in the order the
//! files were given, each as soon as it and those before it are done:
//! `ok NAME (0.31s)`, `FAIL NAME: FILE:LINE: ...`, `skip NAME: REASON`,
//! `xfail NAME: REASON` or `ERROR NAME: ...`, and last `N passed, N failed`
//! (`, N skipped` when there are skips); the full report of each failure
//! goes to stderr. `--tap` prints TAP version 13 instead; `--junit FILE`
//! writes JUnit XML as well. `--cast DIR` records each script as
//! `DIR/NAME.cast`; `--cast FILE` records them all in one file, one session
//! after the other. `--fail-fast` starts no script after the first failure.
//! `--update` rewrites each failing `expect-line` and `exit-status` to what
//! came and prints each change. Exit 0 only when no script failed or could
//! not run, else 1.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::exit::Failure;
use duet_script::{self as script, Case, Config, Loaded, cast, report};

/// Run many scripts in parallel, each naming its program with `spawn`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples: duet test -j 4 --junit report.xml --cast casts/ ci/\n          \
    duet test --update ci/             # accept what came instead\n          \
    duet test --partition 2/4 ci/      # the second of four CI machines\n\n\
    The language is the manual page duet-script(5) (`duet man --out-dir DIR`)."
)]
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
    /// Rewrite each failing `expect-line` (to the line that came) and
    /// `exit-status` (to the status that came) in its file, and say so.
    #[arg(long)]
    update: bool,
    /// Run a failing script again, up to N times (a script's `retries`
    /// header wins); a later pass counts, reported as flaky.
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,
    /// Only the scripts whose name or path REGEX matches.
    #[arg(long, value_name = "REGEX")]
    filter: Option<regex::Regex>,
    /// Only the scripts with this tag (`tags` header); repeat for any of several.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Start no script after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Only the scripts that failed in the previous run from this directory.
    #[arg(long)]
    rerun_failed: bool,
    /// Only the K-th of N shards (1 <= K <= N), by a stable hash of each
    /// script's path: a CI matrix of N machines runs the suite once.
    #[arg(long, value_name = "K/N", value_parser = parse_partition)]
    partition: Option<(u64, u64)>,
    /// The scripts; a directory stands for the `*.duet` files in it.
    #[arg(required = true, value_name = "FILE|DIR")]
    files: Vec<PathBuf>,
}

/// Where `--rerun-failed` finds the failures of the previous run, relative
/// to the current directory.
pub const LAST_RUN: &str = ".duet/last-run";

/// `K/N` with 1 <= K <= N.
fn parse_partition(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("{text:?} is not K/N (e.g. 2/4: the second of four shards)");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (u64, u64) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || k == 0 || k > n {
        return Err(format!("{text:?}: K must be from 1 to N, and N at least 1"));
    }
    Ok((k, n))
}

/// A stable hash of a path (64-bit FNV-1a of its bytes): the same on every
/// machine and every run.
fn shard_hash(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// The scripts to run, chosen as the module says.
fn select(args: &TestArgs) -> Result<Vec<Loaded>, Failure> {
    let mut files = expand(&args.files)?;
    if args.rerun_failed {
        match std::fs::read_to_string(LAST_RUN) {
            Ok(text) => {
                let failed: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .collect();
                files.retain(|f| failed.contains(&script::display_name(f).as_str()));
                if files.is_empty() {
                    eprintln!("duet test: no script failed in the previous run ({LAST_RUN})");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                eprintln!("duet test: no previous run here ({LAST_RUN}): running every script");
            }
            Err(e) => return Err(Failure::new(1, format!("cannot read {LAST_RUN}: {e}"))),
        }
    }
    if let Some(re) = &args.filter {
        files.retain(|f| {
            let shown = script::display_name(f);
            re.is_match(&Case::name_of(&shown)) || re.is_match(&shown)
        });
    }
    if let Some((k, n)) = args.partition {
        files.retain(|f| shard_hash(f) % n == k - 1);
    }
    let mut loaded: Vec<Loaded> = files.iter().map(|f| Loaded::read(f)).collect();
    if !args.tags.is_empty() {
        loaded.retain(|l| l.script.is_err() || l.tags().iter().any(|t| args.tags.contains(t)));
    }
    Ok(loaded)
}

/// Writes the failures of this run for the next `--rerun-failed`.
fn record_failures(cases: &[Case]) -> io::Result<()> {
    let dir = Path::new(LAST_RUN).parent().expect("a directory");
    std::fs::create_dir_all(dir)?;
    // As pytest's cache does: the directory never shows in `git status`.
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(ignore, "# written by duet test\n*\n")?;
    }
    let mut text = String::from("# the scripts that failed in the last `duet test` here\n");
    for case in cases.iter().filter(|c| c.failed()) {
        text.push_str(&case.file);
        text.push('\n');
    }
    // Whole or not at all, even with another `duet test` running here.
    let tmp = format!("{LAST_RUN}.{}", std::process::id());
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, LAST_RUN).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Runs `duet test`.
pub fn run(args: TestArgs) -> Result<ExitCode, Failure> {
    let started = SystemTime::now();
    let loaded = select(&args)?;
    let files: Vec<PathBuf> = loaded.iter().map(|l| l.path.clone()).collect();
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
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, Case)>();
    let mut cases: Vec<Option<Case>> = files.iter().map(|_| None).collect();
    let mut stdout = io::stdout().lock();
    let mut printed = 0;
    std::thread::scope(|scope| -> Result<(), Failure> {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, stop, loaded, casts, args) = (&next, &stop, &loaded, &casts, &args);
            scope.spawn(move || {
                loop {
                    // Taken in order: the scripts run are always a prefix.
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(script) = loaded.get(i) else { return };
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let mut config = Config::new(&script.path);
                    config.timeout = args.timeout;
                    config.cast = casts[i].clone();
                    config.update = args.update;
                    config.retries = args.retries;
                    let outcome = script.run(&config);
                    if args.fail_fast && outcome.failed() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    if tx.send((i, outcome)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut show = |case: &Case| -> Result<(), Failure> {
            if !args.tap {
                writeln!(stdout, "{}", case.line())
                    .and_then(|()| stdout.flush())
                    .map_err(Failure::stdout)?;
            }
            for line in case.change_lines() {
                // With --tap, stdout is TAP's: the changes go to stderr.
                if args.tap {
                    eprintln!("updated {line}");
                } else {
                    writeln!(stdout, "updated {line}").map_err(Failure::stdout)?;
                }
            }
            Ok(())
        };
        for (i, case) in rx {
            cases[i] = Some(case);
            while let Some(Some(case)) = cases.get(printed) {
                show(case)?;
                printed += 1;
            }
        }
        // After --fail-fast, a script taken but not started leaves a gap
        // that later ones may have passed.
        for case in cases[printed..].iter().flatten() {
            show(case)?;
        }
        Ok(())
    })?;
    // After --fail-fast, the scripts not started have no outcome.
    let not_run = cases.iter().filter(|c| c.is_none()).count();
    let mut cases: Vec<Case> = cases.into_iter().flatten().collect();
    if not_run > 0 {
        eprintln!("duet test: --fail-fast: {not_run} script(s) not run after the first failure");
    }
    if let (Some(file), Some(dir)) = (combined, &cast_dir) {
        let parts: Vec<(String, PathBuf)> = cases
            .iter()
            .zip(&casts)
            .filter_map(|(case, path)| {
                let verdict = if case.failed() { "FAIL" } else { "ok" };
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
        for case in cases.iter().filter(|c| c.failed()) {
            let _ = writeln!(stderr, "\n{}", case.failure_report());
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
    if let Err(e) = record_failures(&cases) {
        log::warn!("cannot record the failures in {LAST_RUN}: {e}");
    }
    Ok(if cases.iter().any(|c| c.failed()) {
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
