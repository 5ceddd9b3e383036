//! The shell user's day under load:
//!
//! 1. a wedge attempt: the `duet ask` right after an ask that got no reply
//!    (bc's `x=6` under `--lines 1`, timed out after 100ms) against a plain
//!    ask; the target is to be answered within the settle time (200ms) of
//!    the plain ask, never "waiting for its turn" for good;
//! 2. 50 `duet ask` processes started at once against one served fixture:
//!    the p50 and p99 of their latencies (start to exit) in each round;
//!    target p99 ≤ 2.5× p50 (nobody starves);
//! 3. the peak resident memory of `duet chat` left waiting on `yes` for
//!    10 s (a note, not a row): bounded by the documented limit (1 GiB).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::binaries::duet;
use crate::harness::{Row, Target, Unit, Variant, compare, rows, timed};

/// Concurrent clients of the load row.
const CLIENTS: usize = 50;
/// Rounds of the load row.
const LOAD_ROUNDS: usize = 9;
/// How long `chat` waits on `yes` before its memory is read.
const FLOOD_WAIT: Duration = Duration::from_secs(10);

/// `duet serve --daemon DIR -- PROG...` in a directory named after `tag`.
fn serve(tag: &str, prog: &[&std::ffi::OsStr]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("duet-bench-{tag}-{}", std::process::id()));
    let status = Command::new(duet())
        .args(["serve", "--daemon"])
        .arg(&dir)
        .arg("--")
        .args(prog)
        .stdout(Stdio::null())
        .status()
        .expect("start duet serve");
    assert!(status.success(), "duet serve --daemon failed");
    dir
}

fn stop(dir: &Path) {
    let stopped = Command::new(duet())
        .arg("stop")
        .arg(dir)
        .status()
        .expect("run duet stop");
    assert!(stopped.success(), "duet stop failed");
}

/// `duet ask DIR ARGS...`: its stdout, asserting its exit code.
fn ask(dir: &Path, args: &[&str], code: i32) -> Vec<u8> {
    let out = Command::new(duet())
        .arg("ask")
        .arg(dir)
        .args(args)
        .output()
        .expect("run duet ask");
    assert_eq!(out.status.code(), Some(code), "duet ask {args:?}: {out:?}");
    out.stdout
}

/// Both rows.
pub fn rows_for(fixture: &Path) -> Vec<Row> {
    let mut table = wedge_rows();
    table.extend(load_rows(fixture));
    table
}

fn wedge_rows() -> Vec<Row> {
    let case = "`duet ask` after an unanswered request (bc, settle 200ms)";
    eprintln!("measuring {case} …");
    let dir = serve("wedge", &["bc".as_ref(), "-q".as_ref()]);
    let plain = || timed(|| assert_eq!(ask(&dir, &["2+2"], 0), b"4\n"));
    let after_wedge = || {
        // Not timed: the ask that gets no reply line and times out.
        ask(&dir, &["--timeout", "100ms", "x=6"], 124);
        timed(|| assert_eq!(ask(&dir, &["x*7"], 0), b"42\n"))
    };
    let mut variants = [
        Variant::new("plain ask", 1, plain),
        Variant::new("the ask after a timed-out one", 1, after_wedge),
    ];
    let samples = compare(1, 11, &mut variants);
    drop(variants);
    stop(&dir);
    rows(case, Unit::Time, &samples, 0)
}

/// The `q` quantile of sorted `v` (nearest rank).
fn nearest_rank(v: &[f64], q: f64) -> f64 {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn load_rows(fixture: &Path) -> Vec<Row> {
    let case = "50 concurrent `duet ask` (fixture echo): latency";
    eprintln!("measuring {case} …");
    let dir = serve("load", &[fixture.as_os_str(), "echo".as_ref()]);
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for round in 0..=LOAD_ROUNDS {
        // One thread per client, released together: each measures its own
        // client from spawn to exit.
        let gate = std::sync::Barrier::new(CLIENTS);
        let mut latencies: Vec<f64> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    let (gate, dir) = (&gate, &dir);
                    scope.spawn(move || {
                        gate.wait();
                        let start = Instant::now();
                        let out = Command::new(duet())
                            .arg("ask")
                            .arg(dir)
                            .arg(format!("client {i}"))
                            .args(["--timeout", "60s"])
                            .output()
                            .expect("run duet ask");
                        let elapsed = start.elapsed().as_secs_f64();
                        assert!(out.status.success(), "client {i}: {out:?}");
                        assert_eq!(
                            out.stdout,
                            format!("client {i}\n").into_bytes(),
                            "each gets its own reply"
                        );
                        elapsed
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a client thread"))
                .collect()
        });
        if round == 0 {
            continue; // warm-up
        }
        latencies.sort_by(f64::total_cmp);
        p50s.push(nearest_rank(&latencies, 0.5));
        p99s.push(nearest_rank(&latencies, 0.99));
    }
    stop(&dir);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let spread = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        (v[v.len() * 3 / 4] - v[v.len() / 4]) / 2.0 / median(&v)
    };
    let ratios: Vec<f64> = p99s.iter().zip(&p50s).map(|(a, b)| a / b).collect();
    vec![
        Row {
            case: case.to_string(),
            variant: "p50".to_string(),
            unit: Unit::Time,
            median: median(&p50s),
            spread: spread(&p50s),
            reference: None,
            time_ratio: 1.0,
            target: None,
        },
        Row {
            case: case.to_string(),
            variant: "p99".to_string(),
            unit: Unit::Time,
            median: median(&p99s),
            spread: spread(&p99s),
            reference: Some("p50"),
            time_ratio: median(&ratios),
            target: Some(Target::AtMost(2.5)),
        },
    ]
}

/// The peak resident memory of `duet chat` waiting on `yes`, under a
/// prompt that never comes (the reply is held) and under a settle time that
/// never passes (the greeting is dropped as it comes).
pub fn flood_memory() -> String {
    eprintln!("measuring chat's memory on a flood …");
    let peak = |framing: &[&str]| -> usize {
        let mut chat = Command::new(duet())
            .arg("chat")
            .args(framing)
            .args(["--timeout", "60s", "--", "yes"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run duet chat");
        // Read as it goes: a chat that gives up at the limit is gone by the end.
        let start = Instant::now();
        let mut hwm = 0;
        while start.elapsed() < FLOOD_WAIT {
            let status = std::fs::read_to_string(format!("/proc/{}/status", chat.id()));
            let now: Option<usize> = status.ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            });
            hwm = hwm.max(now.unwrap_or(0));
            if chat.try_wait().expect("try_wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = chat.kill();
        let _ = chat.wait();
        hwm
    };
    let prompt = peak(&["--prompt", "^never"]);
    let settle = peak(&["--until", "^never"]);
    let limit = duet::DEFAULT_MAX_BUFFER / 1024;
    format!(
        "Peak resident memory of `duet chat` after {} s on `yes`: {} MiB under a prompt \
         that never comes (the reply is held), {} MiB while the greeting never settles; \
         the documented limit is {} MiB: {}",
        FLOOD_WAIT.as_secs(),
        prompt / 1024,
        settle / 1024,
        limit / 1024,
        if prompt.max(settle) <= limit + 64 * 1024 {
            "bounded"
        } else {
            "**over it**"
        }
    )
}
