//! `make stress` (`cargo bench --bench stress`): duet under load, as one
//! markdown table of figures, each checked against its requirement.
//! Exits 1 when any requirement fails. A few minutes in all.
//!
//! 1. **cycles**: 20,000 sequential spawn/ask/wait cycles with the fixture in
//!    echo mode. Open descriptors (`/proc/self/fd`), threads
//!    (`/proc/self/task`) and child processes (`/proc/self/task/*/children`)
//!    are equal before and after; resident memory (`VmRSS`) grows less than
//!    1 MiB. RSS is measured from after a warm-up of a few hundred cycles,
//!    so the allocator's and the kernel's first-use growth is not counted.
//!    Then 2,800 cycles of the other set-ups and endings in turn (a pty, a
//!    piped stderr, the message channel, a failed spawn, a child dropped
//!    while running, kill after a timeout, `output()`), under the same
//!    checks.
//! 2. **crowd**: 500 children alive at once (fixture in calc mode), each
//!    asked distinct questions and every reply checked, first all from one
//!    thread, then split over 16 threads; all reaped afterwards. The
//!    descriptor limit is raised to its hard limit first.
//! 3. **serve**: the real `duet serve` wrapping the fixture in calc mode,
//!    under 50 concurrent `duet ask` clients (one process per request) for
//!    60 s: requests, errors (every reply checked), p50/p99 latency of one
//!    `duet ask`; then `duet stop`, and nothing is left (no directory, no
//!    FIFO, no process).
//! 4. **storm**: a thread sends SIGCHLD, SIGUSR1 and SIGWINCH as fast as it
//!    can, to the process and to each conversation thread, while those run
//!    conversations (ask, read_line, expect, timeouts, large writes,
//!    communicate, a pty). The three signals have a handler installed
//!    without `SA_RESTART`, so every blocking call is interrupted with
//!    `EINTR`. No error may reach the caller and every byte is compared.
//!
//! It runs only when given `--bench`, as `cargo bench` does: under
//! `cargo test --all-targets` it says so and exits at once.
//!
//! Arguments after `--` (or environment variables) shorten a run:
//! case names (`cycles`, `crowd`, `serve`, `storm`) select cases;
//! `--cycles N` (`DUET_STRESS_CYCLES`), `--serve-secs S`
//! (`DUET_STRESS_SERVE_SECS`), `--storm-secs S` (`DUET_STRESS_STORM_SECS`).
//! For example `cargo bench --bench stress -- --serve-secs 5 --storm-secs 3`.
//!
//! The fixture and `duet` are this package's binaries, found through
//! `CARGO_BIN_EXE_*` or next to the bench executable (like `benches/bench.rs`).

mod binaries;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use duet::{Command, Error, Pattern, Stdio};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Returns an error made of a format string.
macro_rules! fail {
    ($($arg:tt)*) => { return Err(format!($($arg)*).into()) };
}

// ---- sizes -----------------------------------------------------------------

/// Sequential cycles measured (case 1).
const CYCLES: u64 = 20_000;
/// Cycles run before the RSS baseline is taken.
const WARM_UP: u64 = 500;
/// Allowed RSS growth over the measured cycles.
const RSS_LIMIT_KIB: u64 = 1024;
/// Mixed cycles (case 1b), over all kinds.
const MIXED: u64 = 2_800;
/// Children alive at once (case 2).
const CROWD: usize = 500;
/// Threads sharing the crowd in its second run.
const CROWD_THREADS: usize = 16;
/// Concurrent `duet ask` clients (case 3).
const CLIENTS: usize = 50;
/// How long the clients ask, by default.
const SERVE_SECS: u64 = 60;
/// The longest serve run: the fixture's safety alarm ends it after 300 s.
const MAX_SERVE_SECS: u64 = 280;
/// How long the signal storm lasts, by default.
const STORM_SECS: u64 = 20;
/// Threads running conversations during the storm (the main thread is one).
const STORM_WORKERS: usize = 2;

fn main() {
    // `cargo test --all-targets` (and so `make test`) builds and runs every
    // bench target in test mode, `test = false` or not, without `--bench`:
    // minutes of load have no place there.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("stress: skipped (run it with `make stress` or `cargo bench --bench stress`)");
        return;
    }
    let config = Config::from_args();
    println!("{}\n", machine());
    let fixture = binaries::fixture();
    let mut table = Table::default();
    if config.wanted("cycles") {
        cycles(&config, &fixture, &mut table);
        mixed_cycles(&fixture, &mut table);
    }
    if config.wanted("crowd") {
        crowd(&fixture, &mut table);
    }
    if config.wanted("serve") {
        let duet = binaries::duet();
        serve(&config, &duet, &fixture, &mut table);
    }
    if config.wanted("storm") {
        storm(&config, &fixture, &mut table);
    }
    println!("{}", table.markdown());
    let failed = table.failed();
    if failed > 0 {
        println!("{failed} requirement(s) FAILED");
        std::process::exit(1);
    }
    println!("all requirements met");
}

// ---- configuration ---------------------------------------------------------

struct Config {
    only: Vec<String>,
    cycles: u64,
    serve: Duration,
    storm: Duration,
}

impl Config {
    /// `cargo bench` passes `--bench`; other arguments are case names or
    /// `--name value` pairs; the environment gives the defaults.
    fn from_args() -> Config {
        let env = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .map(|v| v.parse().unwrap_or_else(|_| usage(&format!("{name}={v}"))))
                .unwrap_or(default)
        };
        let mut config = Config {
            only: Vec::new(),
            cycles: env("DUET_STRESS_CYCLES", CYCLES),
            serve: Duration::from_secs(env("DUET_STRESS_SERVE_SECS", SERVE_SECS)),
            storm: Duration::from_secs(env("DUET_STRESS_STORM_SECS", STORM_SECS)),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut number = || {
                let value = args.next().unwrap_or_default();
                value
                    .parse::<u64>()
                    .unwrap_or_else(|_| usage(&format!("{arg} {value}")))
            };
            match arg.as_str() {
                "--bench" => {}
                "--cycles" => config.cycles = number(),
                "--serve-secs" => config.serve = Duration::from_secs(number()),
                "--storm-secs" => config.storm = Duration::from_secs(number()),
                a if a.starts_with("--") => usage(a),
                _ => config.only.push(arg),
            }
        }
        // PROG is the fixture, whose safety alarm ends it after 300 s.
        if config.serve > Duration::from_secs(MAX_SERVE_SECS) {
            usage(&format!(
                "--serve-secs {} (at most {MAX_SERVE_SECS}: the fixture ends itself after 300 s)",
                config.serve.as_secs()
            ));
        }
        config
    }

    fn wanted(&self, case: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| case.contains(o.as_str()))
    }
}

fn usage(bad: &str) -> ! {
    eprintln!(
        "stress: cannot use `{bad}`\nusage: cargo bench --bench stress -- \
         [cycles|crowd|serve|storm]... [--cycles N] [--serve-secs S] [--storm-secs S]"
    );
    std::process::exit(2)
}

/// One line about the machine the figures come from.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "stress run: {cpus} CPU(s), {model}, Linux {}",
        kernel.trim()
    )
}

// ---- the table -------------------------------------------------------------

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

struct Row {
    case: String,
    figure: String,
    measured: String,
    requirement: String,
    /// `None`: a figure without a requirement.
    pass: Option<bool>,
}

impl Table {
    /// A figure without a requirement.
    fn info(&mut self, case: &str, figure: &str, measured: String) {
        self.push(case, figure, measured, "", None);
    }

    /// A figure checked against `requirement`.
    fn check(&mut self, case: &str, figure: &str, measured: String, requirement: &str, pass: bool) {
        self.push(case, figure, measured, requirement, Some(pass));
    }

    fn push(
        &mut self,
        case: &str,
        figure: &str,
        measured: String,
        requirement: &str,
        pass: Option<bool>,
    ) {
        let mark = match pass {
            Some(true) => "pass",
            Some(false) => "FAIL",
            None => "",
        };
        eprintln!("  {figure}: {measured} {mark}");
        self.rows.push(Row {
            case: case.into(),
            figure: figure.into(),
            measured,
            requirement: requirement.into(),
            pass,
        });
    }

    fn failed(&self) -> usize {
        self.rows.iter().filter(|r| r.pass == Some(false)).count()
    }

    fn markdown(&self) -> String {
        let mut out =
            String::from("| case | figure | measured | requirement | |\n|---|---|---|---|---|\n");
        let mut last = "";
        for row in &self.rows {
            let case = if row.case == last { "" } else { &row.case };
            last = &row.case;
            let mark = match row.pass {
                Some(true) => "pass",
                Some(false) => "**FAIL**",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {case} | {} | {} | {} | {mark} |",
                row.figure, row.measured, row.requirement
            );
        }
        out
    }
}

/// Errors of one case: how many, and the first few in full (also printed
/// to stderr as they happen).
#[derive(Default)]
struct Errors {
    count: u64,
    first: Vec<String>,
}

impl Errors {
    const KEEP: usize = 3;

    fn note(&mut self, result: Res<()>) {
        if let Err(e) = result {
            self.add(e.to_string());
        }
    }

    fn add(&mut self, message: String) {
        self.count += 1;
        if self.first.len() < Self::KEEP {
            eprintln!("  error: {message}");
            self.first.push(message);
        }
    }

    fn merge(&mut self, other: Errors) {
        self.count += other.count;
        for message in other.first {
            if self.first.len() < Self::KEEP {
                self.first.push(message);
            }
        }
    }

    /// `0`, or the count and the first message.
    fn summary(&self) -> String {
        match self.first.first() {
            None => self.count.to_string(),
            Some(first) => format!("{} (first: {})", self.count, first.replace('|', "/")),
        }
    }
}

// ---- what this process holds ----------------------------------------------

/// Descriptors, threads and children of this process.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Census {
    fds: usize,
    threads: usize,
    children: BTreeSet<u32>,
}

fn census() -> Census {
    // The directory listing holds one descriptor of its own while it runs.
    let fds = count_entries("/proc/self/fd") - 1;
    let threads = count_entries("/proc/self/task");
    Census {
        fds,
        threads,
        children: children(),
    }
}

fn count_entries(dir: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .count()
}

/// The pids of this process's children, over all its threads.
fn children() -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    for task in std::fs::read_dir("/proc/self/task").expect("list /proc/self/task") {
        let Ok(task) = task else { continue };
        // A thread that has just exited has no file any more: skip it.
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids
}

/// Resident memory in KiB (`VmRSS` of `/proc/self/status`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn before_after(before: usize, after: usize) -> String {
    format!("{before} → {after}")
}

// ---- 1. sequential cycles --------------------------------------------------

fn cycles(config: &Config, fixture: &Path, table: &mut Table) {
    let case = "1. sequential spawn/ask/wait (fixture echo)";
    eprintln!("{case}: {} warm-up + {} cycles …", WARM_UP, config.cycles);
    let before = census();
    let mut errors = Errors::default();
    for i in 0..WARM_UP {
        errors.note(cycle(fixture, i));
    }
    let rss_before = rss_kib();
    let start = Instant::now();
    for i in 0..config.cycles {
        errors.note(cycle(fixture, WARM_UP + i));
        if (i + 1) % 5000 == 0 {
            eprintln!("  {} cycles", i + 1);
        }
    }
    let elapsed = start.elapsed();
    let rss_after = rss_kib();
    let after = census();

    table.info(
        case,
        "cycles measured (after warm-up)",
        format!(
            "{} in {:.1} s: {:.0} cycles/s",
            config.cycles,
            elapsed.as_secs_f64(),
            config.cycles as f64 / elapsed.as_secs_f64()
        ),
    );
    table.check(
        case,
        "errors (every reply checked)",
        errors.summary(),
        "0",
        errors.count == 0,
    );
    table.check(
        case,
        "open descriptors before → after",
        before_after(before.fds, after.fds),
        "equal",
        before.fds == after.fds,
    );
    table.check(
        case,
        "threads before → after",
        before_after(before.threads, after.threads),
        "equal",
        before.threads == after.threads,
    );
    table.check(
        case,
        "child processes before → after",
        before_after(before.children.len(), after.children.len()),
        "equal",
        before.children == after.children,
    );
    let growth = rss_after as i64 - rss_before as i64;
    table.check(
        case,
        &format!("RSS growth after a {WARM_UP}-cycle warm-up"),
        format!("{growth:+} KiB ({rss_before} → {rss_after} KiB)"),
        "< 1 MiB",
        growth < RSS_LIMIT_KIB as i64,
    );
}

/// Cycles of the other ways a child is set up or ends, in turn (case 1b):
/// none may leave a descriptor, thread, child or memory behind either.
fn mixed_cycles(fixture: &Path, table: &mut Table) {
    let case = "1b. mixed cycles (pty, stderr, channel, spawn error, drop, kill, output)";
    let kinds = MIXED_KINDS.len() as u64;
    eprintln!("{case}: {} warm-up + {MIXED} cycles …", 20 * kinds);
    let before = census();
    let mut errors = Errors::default();
    for i in 0..20 * kinds {
        errors.note(mixed_cycle(fixture, i));
    }
    let rss_before = rss_kib();
    let start = Instant::now();
    for i in 0..MIXED {
        errors.note(mixed_cycle(fixture, i));
    }
    let elapsed = start.elapsed();
    let rss_after = rss_kib();
    let after = census();
    table.check(
        case,
        "errors (every reply checked)",
        format!(
            "{} in {MIXED} cycles ({:.0} cycles/s)",
            errors.summary(),
            MIXED as f64 / elapsed.as_secs_f64()
        ),
        "0",
        errors.count == 0,
    );
    table.check(
        case,
        "descriptors, threads, children before → after",
        format!(
            "{}, {}, {}",
            before_after(before.fds, after.fds),
            before_after(before.threads, after.threads),
            before_after(before.children.len(), after.children.len())
        ),
        "equal",
        before == after,
    );
    let growth = rss_after as i64 - rss_before as i64;
    table.check(
        case,
        &format!("RSS growth after a {}-cycle warm-up", 20 * kinds),
        format!("{growth:+} KiB ({rss_before} → {rss_after} KiB)"),
        "< 1 MiB",
        growth < RSS_LIMIT_KIB as i64,
    );
}

/// The kinds of mixed cycle, taken in turn.
const MIXED_KINDS: [&str; 7] = [
    "pty",
    "stderr",
    "channel",
    "spawn-error",
    "drop",
    "kill",
    "output",
];

fn mixed_cycle(fixture: &Path, i: u64) -> Res<()> {
    let kind = MIXED_KINDS[(i % MIXED_KINDS.len() as u64) as usize];
    let question = format!("{kind} {i}");
    let check = |got: String, want: &str| -> Res<()> {
        if got != want {
            fail!("{kind} cycle {i}: expected {want:?}, got {got:?}");
        }
        Ok(())
    };
    match kind {
        "pty" => {
            let mut child = Command::new(fixture).arg("echo").pty(true).spawn()?;
            check(child.ask(&question)?, &question)?;
            child.close_stdin()?;
            child.wait()?;
        }
        "stderr" => {
            let mut child = Command::new(fixture)
                .args(["stderr", "to stderr"])
                .stderr(Stdio::piped())
                .spawn()?;
            check(child.read_stderr_line()?, "to stderr")?;
            check(child.ask(&question)?, &question)?;
            child.close_stdin()?;
            child.wait()?;
        }
        "channel" => {
            let mut child = Command::new(fixture)
                .arg("channel-echo")
                .channel()
                .stdin(Stdio::null())
                .spawn()?;
            let mut conn = child.take_channel().ok_or("no channel")?;
            conn.send_bytes(question.as_bytes())?;
            check(String::from_utf8(conn.recv_bytes()?)?, &question)?;
            drop(conn);
            child.wait()?;
        }
        "spawn-error" => match Command::new("/nonexistent/duet-stress").spawn() {
            Err(Error::Spawn { .. }) => {}
            Err(e) => return Err(e.into()),
            Ok(_) => fail!("a missing program was spawned"),
        },
        "drop" => {
            // Dropped while running: terminated and reaped by Drop.
            let mut child = Command::new(fixture).arg("echo").spawn()?;
            check(child.ask(&question)?, &question)?;
        }
        "kill" => {
            let mut child = Command::new(fixture).arg("echo").spawn()?;
            match child.read_line_timeout(Duration::from_millis(1)) {
                Err(Error::Timeout { .. }) => {}
                other => fail!("kill cycle {i}: expected a timeout, got {other:?}"),
            }
            child.kill()?;
            let status = child.wait()?;
            if status.signal() != Some(Signal::SIGKILL as i32) {
                fail!("kill cycle {i}: the child ended with {status}");
            }
        }
        _ => {
            let out = Command::new(fixture).args(["flood", "100"]).output()?;
            if out.stdout.iter().filter(|&&b| b == b'\n').count() != 100 {
                fail!("output cycle {i}: {} bytes", out.stdout.len());
            }
        }
    }
    Ok(())
}

/// Spawn the echo fixture, ask one line, close its input, reap it.
fn cycle(fixture: &Path, i: u64) -> Res<()> {
    let mut child = Command::new(fixture).arg("echo").spawn()?;
    let question = format!("cycle {i}");
    let reply = child.ask(&question)?;
    if reply != question {
        fail!("cycle {i}: asked {question:?}, got {reply:?}");
    }
    child.close_stdin()?;
    let status = child.wait()?;
    if !status.success() {
        fail!("cycle {i}: the fixture ended with {status}");
    }
    Ok(())
}

// ---- 2. many children at once ----------------------------------------------

fn crowd(fixture: &Path, table: &mut Table) {
    let case = "2. 500 children at once (fixture calc)";
    // Each child costs this process 3 descriptors (stdin, stdout, pidfd).
    let needed = CROWD as u64 * 3 + 64;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let raised = soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok();
    let (soft_now, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    table.check(
        case,
        "RLIMIT_NOFILE soft limit",
        if raised {
            format!("{soft_now} (raised from {soft} to the hard limit)")
        } else {
            format!("{soft_now} (hard {hard}; not raised)")
        },
        &format!("≥ {needed}"),
        soft_now >= needed,
    );

    for threads in [1, CROWD_THREADS] {
        eprintln!("{case}: {CROWD} children from {threads} thread(s) …");
        let before = census();
        let barrier = Barrier::new(threads);
        let alive = AtomicUsize::new(0);
        let start = Instant::now();
        let results: Vec<Res<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    // Thread t takes ids t, t + threads, t + 2 * threads, …
                    let ids: Vec<usize> = (t..CROWD).step_by(threads).collect();
                    let (barrier, alive, before) = (&barrier, &alive, &before);
                    s.spawn(move || {
                        crowd_part(fixture, &ids, barrier, || {
                            let now = children().len() - before.children.len();
                            alive.store(now, Ordering::SeqCst);
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
                .collect()
        });
        let elapsed = start.elapsed();
        let after = census();
        let mut errors = Errors::default();
        let mut checked = 0;
        for result in results {
            match result {
                Ok(n) => checked += n,
                Err(e) => errors.add(e.to_string()),
            }
        }
        let from = if threads == 1 {
            "from 1 thread".to_string()
        } else {
            format!("from {threads} threads")
        };
        let alive = alive.load(Ordering::SeqCst);
        table.check(
            case,
            &format!("children alive at once, {from}"),
            alive.to_string(),
            &format!("{CROWD}"),
            alive == CROWD,
        );
        table.check(
            case,
            &format!("replies correct, {from} (errors)"),
            format!(
                "{checked} of {} ({}); {:.2} s for spawn + talk + reap",
                CROWD * 2,
                errors.summary(),
                elapsed.as_secs_f64()
            ),
            "all, 0 errors",
            checked == CROWD as u64 * 2 && errors.count == 0,
        );
        table.check(
            case,
            &format!("children left after, {from}"),
            format!(
                "{} (before {})",
                after.children.len(),
                before.children.len()
            ),
            "as before",
            after.children == before.children,
        );
    }
}

/// One thread's share of the crowd: spawn all of `ids`, meet the other
/// threads (the last to arrive runs `all_alive`, then everyone goes on),
/// then two rounds of questions and a reap. Returns the replies checked.
fn crowd_part(
    fixture: &Path,
    ids: &[usize],
    barrier: &Barrier,
    all_alive: impl FnOnce(),
) -> Res<u64> {
    let mut spawned = Vec::with_capacity(ids.len());
    let mut spawn_error = None;
    for &id in ids {
        match Command::new(fixture).arg("calc").spawn() {
            Ok(child) => spawned.push((id as i64, child)),
            Err(e) => {
                spawn_error = Some(format!("spawning child {id}: {e}"));
                break;
            }
        }
    }
    // Every thread reaches both meetings, even after a failure.
    if barrier.wait().is_leader() {
        all_alive();
    }
    barrier.wait();
    if let Some(e) = spawn_error {
        return Err(e.into());
    }

    let mut checked = 0;
    // Round 1, pipelined: every child gets its question before any reply is read.
    for (id, child) in &mut spawned {
        child.send_line(&format!("{id} * 1000003"))?;
    }
    for (id, child) in &mut spawned {
        let reply = child.read_line()?;
        if reply != (*id * 1_000_003).to_string() {
            fail!("child {id}: asked {id} * 1000003, got {reply:?}");
        }
        checked += 1;
    }
    // Round 2, one at a time.
    for (id, child) in &mut spawned {
        let reply = child.ask(&format!("{id} - 500000"))?;
        if reply != (*id - 500_000).to_string() {
            fail!("child {id}: asked {id} - 500000, got {reply:?}");
        }
        checked += 1;
    }
    for (_, child) in &mut spawned {
        child.close_stdin()?;
    }
    for (id, child) in &mut spawned {
        let status = child.wait()?;
        if !status.success() {
            fail!("child {id} ended with {status}");
        }
    }
    Ok(checked)
}

// ---- 3. serve under concurrent asks ----------------------------------------

fn serve(config: &Config, duet: &Path, fixture: &Path, table: &mut Table) {
    let case = "3. `duet serve` + 50 `duet ask` clients";
    let secs = config.serve.as_secs();
    eprintln!("{case}: {secs} s …");
    let dir = std::env::temp_dir().join(format!("duet-stress-serve-{}", std::process::id()));
    let before = census();
    let mut errors = Errors::default();
    let result = serve_run(config, duet, fixture, &dir);
    let after = census();
    let (latencies, leftovers, served_for) = match result {
        Ok(run) => {
            errors.merge(run.errors);
            (run.latencies, run.leftovers, run.elapsed)
        }
        Err(e) => {
            errors.add(e.to_string());
            (Vec::new(), vec![format!("run failed: {e}")], config.serve)
        }
    };
    let mut leftovers = leftovers;
    if dir.exists() {
        leftovers.push(format!("{} still exists", dir.display()));
    }
    if after.children != before.children {
        leftovers.push(format!(
            "children {} → {}",
            before.children.len(),
            after.children.len()
        ));
    }

    let mut sorted = latencies;
    sorted.sort();
    let pick = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .map_or_else(
                || "–".to_string(),
                |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
            )
    };
    table.check(
        case,
        &format!("requests answered in {secs} s ({CLIENTS} clients)"),
        format!(
            "{} ({:.0}/s)",
            sorted.len(),
            sorted.len() as f64 / served_for.as_secs_f64()
        ),
        "> 0",
        !sorted.is_empty(),
    );
    table.check(
        case,
        "errors (every reply checked)",
        errors.summary(),
        "0",
        errors.count == 0,
    );
    table.info(case, "latency of one `duet ask`, p50", pick(0.5));
    table.info(case, "latency of one `duet ask`, p99", pick(0.99));
    table.info(case, "latency of one `duet ask`, max", pick(1.0));
    table.check(
        case,
        "left after `duet stop` (FIFOs, DIR, serve, PROG)",
        if leftovers.is_empty() {
            "nothing".into()
        } else {
            leftovers.join("; ")
        },
        "nothing",
        leftovers.is_empty(),
    );
}

struct ServeRun {
    latencies: Vec<Duration>,
    errors: Errors,
    leftovers: Vec<String>,
    elapsed: Duration,
}

fn serve_run(config: &Config, duet: &Path, fixture: &Path, dir: &Path) -> Res<ServeRun> {
    // serve in the foreground, as our child: it prints DIR when ready.
    let mut serve = Command::new(duet)
        .arg("serve")
        .arg(dir)
        .arg("--")
        .arg(fixture)
        .arg("calc")
        .stdin(Stdio::null())
        .timeout(Duration::from_secs(10))
        .spawn()?;
    let ready = serve.read_line()?;
    if Path::new(&ready) != dir {
        fail!("duet serve printed {ready:?}, not {}", dir.display());
    }
    // The pid file: serve's pid, then a JSON line with PROG's pid.
    let pid_file = std::fs::read_to_string(dir.join("pid"))?;
    let state: serde_json::Value = serde_json::from_str(pid_file.lines().nth(1).unwrap_or(""))?;
    let Some(prog) = state["child"].as_u64() else {
        fail!("no PROG pid in {}: {pid_file:?}", dir.join("pid").display());
    };

    let start = Instant::now();
    let deadline = start + config.serve;
    let results: Vec<(Vec<Duration>, Errors)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|client| s.spawn(move || asker(duet, dir, client, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    let mut errors = Errors::default();
    for (l, e) in results {
        latencies.extend(l);
        errors.merge(e);
    }

    let mut leftovers = Vec::new();
    let stop = std::process::Command::new(duet)
        .arg("stop")
        .arg(dir)
        .output()?;
    if !stop.status.success() {
        leftovers.push(format!(
            "duet stop failed ({}): {}",
            stop.status,
            String::from_utf8_lossy(&stop.stderr).trim()
        ));
    }
    match serve.wait_timeout(Duration::from_secs(20))? {
        Some(status) if status.success() => {}
        Some(status) => leftovers.push(format!("duet serve ended with {status}")),
        None => leftovers.push("duet serve still running 20 s after stop".into()),
    }
    // serve reaps PROG before it exits: PROG must be gone by now.
    if Path::new(&format!("/proc/{prog}")).exists() {
        leftovers.push(format!("PROG (pid {prog}) still exists"));
    }
    Ok(ServeRun {
        latencies,
        errors,
        leftovers,
        elapsed,
    })
}

/// One client: `duet ask` after `duet ask` until `deadline`, each with a
/// question no other client asks, each reply checked.
fn asker(duet: &Path, dir: &Path, client: usize, deadline: Instant) -> (Vec<Duration>, Errors) {
    let mut latencies = Vec::new();
    let mut errors = Errors::default();
    let base = (client as i64 + 1) * 1_000_000_000;
    let mut seq = 0i64;
    while Instant::now() < deadline {
        let line = format!("{base} + {seq}");
        let want = format!("{}\n", base + seq);
        seq += 1;
        let start = Instant::now();
        let out = std::process::Command::new(duet)
            .arg("ask")
            .arg(dir)
            .arg(&line)
            .output();
        let took = start.elapsed();
        match out {
            Ok(out) if out.status.success() && out.stdout == want.as_bytes() => {
                latencies.push(took)
            }
            Ok(out) => errors.add(format!(
                "client {client}: duet ask {line:?} ({}): stdout {:?}, stderr {:?}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => errors.add(format!("client {client}: cannot run duet ask: {e}")),
        }
    }
    (latencies, errors)
}

// ---- 4. signal storm -------------------------------------------------------

/// The storm's signals. Each gets [`note_signal`] as its handler.
const STORM: [Signal; 3] = [Signal::SIGCHLD, Signal::SIGUSR1, Signal::SIGWINCH];

/// Signals handled, over all threads.
static HANDLED: AtomicU64 = AtomicU64::new(0);

extern "C" fn note_signal(_: nix::libc::c_int) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

/// Installs [`note_signal`] for the storm's signals without `SA_RESTART`
/// (so they interrupt blocking calls with `EINTR`), or puts the defaults back.
fn storm_handlers(install: bool) {
    let handler = if install {
        SigHandler::Handler(note_signal)
    } else {
        SigHandler::SigDfl
    };
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    for signal in STORM {
        // SAFETY: the handler only increments an atomic, which is
        // async-signal-safe; SIG_DFL is always valid.
        unsafe { sigaction(signal, &action) }.expect("sigaction");
    }
}

/// Sends `signal` to thread `tid` of process `pid` (`tgkill(2)`); true if sent.
fn tgkill(pid: nix::unistd::Pid, tid: nix::unistd::Pid, signal: Signal) -> bool {
    use nix::libc;
    // SAFETY: tgkill takes plain integers; a thread that is gone is ESRCH.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            pid.as_raw(),
            tid.as_raw(),
            signal as libc::c_int,
        ) == 0
    }
}

/// Totals of the storm's conversations.
#[derive(Default)]
struct StormWork {
    conversations: u64,
    bytes_checked: u64,
    errors: Errors,
    eintr: u64,
}

fn storm(config: &Config, fixture: &Path, table: &mut Table) {
    let case = "4. signal storm (SIGCHLD, SIGUSR1, SIGWINCH)";
    eprintln!("{case}: {} s …", config.storm.as_secs());
    storm_handlers(true);
    let handled_before = HANDLED.load(Ordering::Relaxed);
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let workers: Mutex<Vec<nix::unistd::Pid>> = Mutex::new(Vec::new());
    let deadline = Instant::now() + config.storm;
    let start = Instant::now();

    let talk = |w: usize| {
        let me = nix::unistd::gettid();
        workers.lock().expect("workers").push(me);
        let work = storm_worker(fixture, w, deadline);
        workers.lock().expect("workers").retain(|&t| t != me);
        work
    };
    let talk = &talk;
    let work = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            // The sender blocks the storm itself, so the signals land on
            // the threads that are talking to children.
            let mut storm = SigSet::empty();
            STORM.iter().for_each(|&sig| storm.add(sig));
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&storm), None)
                .expect("block the storm in the sender");
            let me = nix::unistd::Pid::this();
            let mut count = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for sig in STORM {
                    // To the process (the kernel picks a thread) …
                    if nix::sys::signal::kill(me, sig).is_ok() {
                        count += 1;
                    }
                    // … and to each conversation thread. The lock is held
                    // while signalling: a worker leaves the list (under the
                    // lock) before it exits, so no id here is stale.
                    for &t in workers.lock().expect("workers").iter() {
                        if tgkill(me, t, sig) {
                            count += 1;
                        }
                    }
                }
            }
            sent.store(count, Ordering::Relaxed);
        });
        let helpers: Vec<_> = (1..STORM_WORKERS)
            .map(|w| s.spawn(move || talk(w)))
            .collect();
        let mut total = talk(0);
        for helper in helpers {
            let part = helper.join().expect("a storm worker panicked");
            total.conversations += part.conversations;
            total.bytes_checked += part.bytes_checked;
            total.eintr += part.eintr;
            total.errors.merge(part.errors);
        }
        // The workers are done: no more signals to threads that may exit.
        stop.store(true, Ordering::Relaxed);
        sender.join().expect("the sender panicked");
        total
    });
    let elapsed = start.elapsed();
    let handled = HANDLED.load(Ordering::Relaxed) - handled_before;
    storm_handlers(false);

    let sent = sent.load(Ordering::Relaxed);
    table.info(
        case,
        "signals sent / handled",
        format!(
            "{sent} sent ({:.0}/s), {handled} handled (pending signals coalesce)",
            sent as f64 / elapsed.as_secs_f64()
        ),
    );
    table.check(
        case,
        &format!("conversations done on {STORM_WORKERS} threads"),
        format!(
            "{} in {:.1} s, {:.1} MiB compared byte for byte",
            work.conversations,
            elapsed.as_secs_f64(),
            work.bytes_checked as f64 / (1 << 20) as f64
        ),
        "> 0, signals handled > 0",
        work.conversations > 0 && handled > 0,
    );
    table.check(
        case,
        "errors reaching the caller (EINTR among them)",
        format!("{} ({} EINTR)", work.errors.summary(), work.eintr),
        "0",
        work.errors.count == 0,
    );
}

/// Runs the storm's conversations in turn until `deadline`.
fn storm_worker(fixture: &Path, worker: usize, deadline: Instant) -> StormWork {
    let mut work = StormWork::default();
    let mut round = 0u64;
    while Instant::now() < deadline {
        let kind = round % STORM_CONVERSATIONS.len() as u64;
        let (name, run) = STORM_CONVERSATIONS[kind as usize];
        match run(fixture, worker as u64 * 1_000_000 + round) {
            Ok(bytes) => {
                work.conversations += 1;
                work.bytes_checked += bytes;
            }
            Err(e) => {
                if e.downcast_ref::<Error>().is_some_and(is_eintr)
                    || e.downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::Interrupted)
                {
                    work.eintr += 1;
                }
                work.errors.add(format!("{name} #{round}: {e}"));
            }
        }
        round += 1;
    }
    work
}

fn is_eintr(e: &Error) -> bool {
    match e {
        Error::Io(io) => io.kind() == std::io::ErrorKind::Interrupted,
        Error::Spawn { source, .. } => source.kind() == std::io::ErrorKind::Interrupted,
        _ => false,
    }
}

/// A storm conversation: returns the bytes it compared.
type Conversation = fn(&Path, u64) -> Res<u64>;

const STORM_CONVERSATIONS: [(&str, Conversation); 7] = [
    ("ask/read_line/expect", talk_lines),
    ("communicate 4 MiB through cat", communicate_large),
    ("send_bytes 1 MiB, read it back", send_large),
    ("a 300,000-byte line", long_line),
    ("timeouts on a slow child", slow_and_timeouts),
    ("output() of 20,000 lines and a pty", output_and_pty),
    ("spawn error, terminate, message channel", lifecycle),
];

/// Checks `got == want`, naming `what`.
fn same(what: &str, got: &str, want: &str) -> Res<u64> {
    if got != want {
        fail!("{what}: expected {want:?}, got {got:?}");
    }
    Ok(got.len() as u64 + 1)
}

fn talk_lines(fixture: &Path, tag: u64) -> Res<u64> {
    let mut child = Command::new(fixture).arg("echo").spawn()?;
    let mut bytes = 0;
    for i in 0..100 {
        let line = format!("{tag} line {i}");
        bytes += same("ask", &child.ask(&line)?, &line)?;
    }
    for i in 0..20 {
        let line = format!("{tag} read {i}");
        child.send_line(&line)?;
        bytes += same("read_line", &child.read_line()?, &line)?;
        child.send_line(&format!("value {i} end"))?;
        // expect consumes through the match: the newline too, so the
        // next read_line starts at the next line.
        let m = child.expect(Pattern::regex(r"value (\d+) end\n")?)?;
        bytes += same("expect", m.group(1).unwrap_or(""), &i.to_string())?;
    }
    child.close_stdin()?;
    let status = child.wait()?;
    if !status.success() {
        fail!("echo ended with {status}");
    }
    Ok(bytes)
}

/// Deterministic text of `len` bytes in lines of varying length.
fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = if x % 61 == 0 {
            b'\n'
        } else {
            b'!' + (x % 90) as u8
        };
        out.push(b);
    }
    if let Some(last) = out.last_mut() {
        *last = b'\n';
    }
    out
}

fn communicate_large(_fixture: &Path, tag: u64) -> Res<u64> {
    let input = text(4 << 20, tag);
    let mut child = Command::new("cat").spawn()?;
    let out = child.communicate(&input, Some(Duration::from_secs(60)))?;
    if !out.status.success() || out.still_open {
        fail!(
            "cat ended with {} (still open: {})",
            out.status,
            out.still_open
        );
    }
    if out.stdout != input {
        fail!(
            "cat returned {} bytes, not the {} sent (first difference at {:?})",
            out.stdout.len(),
            input.len(),
            out.stdout.iter().zip(&input).position(|(a, b)| a != b)
        );
    }
    Ok(input.len() as u64)
}

fn send_large(fixture: &Path, tag: u64) -> Res<u64> {
    let input = text(1 << 20, tag);
    let mut child = Command::new(fixture).arg("cat").spawn()?;
    // More than a pipe holds: duet reads cat's output while it waits to write.
    child.send_bytes(&input)?;
    let mut bytes = 0;
    for want in input.split_inclusive(|&b| b == b'\n') {
        let got = child.read_line_bytes()?;
        let want = want.strip_suffix(b"\n").unwrap_or(want);
        if got != want {
            fail!(
                "line at byte {bytes} differs: {} bytes back, {} sent",
                got.len(),
                want.len()
            );
        }
        bytes += want.len() as u64 + 1;
    }
    child.close_stdin()?;
    let status = child.wait()?;
    if !status.success() {
        fail!("cat ended with {status}");
    }
    Ok(bytes)
}

fn long_line(fixture: &Path, tag: u64) -> Res<u64> {
    const LEN: usize = 300_000;
    let mut child = Command::new(fixture)
        .args(["line", &LEN.to_string()])
        .spawn()?;
    let line = child.read_line()?;
    if line.len() != LEN || line.bytes().any(|b| b != b'x') {
        fail!("the long line came back as {} bytes", line.len());
    }
    let after = format!("after {tag}");
    let bytes = LEN as u64 + 1 + same("ask", &child.ask(&after)?, &after)?;
    child.close_stdin()?;
    child.wait()?;
    Ok(bytes)
}

fn slow_and_timeouts(fixture: &Path, tag: u64) -> Res<u64> {
    let mut child = Command::new(fixture).args(["slow", "20"]).spawn()?;
    let mut bytes = 0;
    for i in 0..5 {
        let line = format!("{tag} slow {i}");
        bytes += same("ask", &child.ask(&line)?, &line)?;
    }
    // Nothing comes: the timeout must be a timeout, no sooner and not EINTR.
    let wait = Duration::from_millis(30);
    let start = Instant::now();
    match child.read_line_timeout(wait) {
        Err(Error::Timeout { .. }) if start.elapsed() >= wait => {}
        Err(Error::Timeout { .. }) => fail!("a {wait:?} timeout ended after {:?}", start.elapsed()),
        Err(e) => return Err(e.into()),
        Ok(line) => fail!("a silent child answered {line:?}"),
    }
    // The line sent now arrives after the 20 ms delay, well within 5 s.
    let line = format!("{tag} late");
    child.send_line(&line)?;
    bytes += same(
        "read_line_timeout",
        &child.read_line_timeout(Duration::from_secs(5))?,
        &line,
    )?;
    child.close_stdin()?;
    if child.wait_timeout(Duration::from_secs(5))?.is_none() {
        fail!("the slow fixture did not exit within 5 s of end of input");
    }
    Ok(bytes)
}

fn output_and_pty(fixture: &Path, tag: u64) -> Res<u64> {
    const LINES: usize = 20_000;
    let out = Command::new(fixture)
        .args(["flood", &LINES.to_string()])
        .output()?;
    let want: String = (0..LINES)
        .map(|i| format!("flood line {i:08} ........................................\n"))
        .collect();
    if !out.status.success() || out.stdout != want.as_bytes() {
        fail!(
            "flood: {} ({} bytes, {} expected)",
            out.status,
            out.stdout.len(),
            want.len()
        );
    }
    let mut bytes = want.len() as u64;
    let mut child = Command::new(fixture).arg("upper").pty(true).spawn()?;
    for i in 0..20 {
        let line = format!("pty {tag} {i}");
        bytes += same("pty ask", &child.ask(&line)?, &line.to_uppercase())?;
    }
    child.close_stdin()?;
    child.wait()?;
    Ok(bytes)
}

fn lifecycle(fixture: &Path, tag: u64) -> Res<u64> {
    // A failed exec is reported through a pipe the parent reads: the
    // error must be "not found", never EINTR.
    match Command::new("/nonexistent/duet-stress").spawn() {
        Err(Error::Spawn { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
        Ok(_) => fail!("a missing program was spawned"),
    }
    // terminate: TERM is ignored, so the grace period passes and KILL ends it.
    let mut stubborn = Command::new(fixture).arg("ignore-term").spawn()?;
    let mut bytes = same("ignore-term", &stubborn.read_line()?, "ready")?;
    let status = stubborn.terminate(Duration::from_millis(50))?;
    if status.signal() != Some(Signal::SIGKILL as i32) {
        fail!("terminate of a TERM-ignoring child gave {status}");
    }
    // The message channel: 1 MiB messages there and back.
    let mut child = Command::new(fixture)
        .arg("channel-echo")
        .channel()
        .stdin(Stdio::null())
        .spawn()?;
    let Some(mut conn) = child.take_channel() else {
        fail!("no channel on a child spawned with channel()");
    };
    for i in 0..4 {
        let message = text(1 << 20, tag * 4 + i);
        conn.send_bytes(&message)?;
        let back = conn.recv_bytes()?;
        if back != message {
            fail!(
                "channel message {i}: {} bytes back, {} sent",
                back.len(),
                message.len()
            );
        }
        bytes += message.len() as u64;
    }
    drop(conn);
    let status = child.wait()?;
    if !status.success() {
        fail!("channel-echo ended with {status}");
    }
    Ok(bytes)
}
