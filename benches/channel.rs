//! Message channel benchmark: `channel::run()` prints a markdown table.
//!
//! Throughput: a child (the fixture) sends messages over `channel::pipe()`
//! and this process receives them with `recv_bytes`, against a raw floor on
//! the same kind of socket pair (the child `write`s prepared frames, this
//! process `read`s into a 64 KiB buffer). Latency: 64-byte round trips to an
//! echoing child, against the same round trip between two Python processes
//! over `multiprocessing.Pipe()`. Each figure is the median of several runs.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::Instant;

use duet::channel::{self, CHANNEL_FD_ENV, Connection};

const FIXTURE: &str = env!("CARGO_BIN_EXE_duet-fixture");
const RUNS: usize = 7;

/// Starts the fixture in `mode` with the channel's other end.
fn start(args: &[&str]) -> (Child, Connection) {
    let (parent, end) = channel::pipe().expect("socketpair");
    let end: OwnedFd = end.into_owned_fd().expect("an open end");
    let raw = end.as_raw_fd();
    let mut cmd = Command::new(FIXTURE);
    cmd.args(args).env(CHANNEL_FD_ENV, raw.to_string());
    // SAFETY: runs between fork and exec; fcntl is async-signal-safe and
    // does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::fcntl(raw, nix::libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn the fixture");
    drop(end);
    (child, parent)
}

fn stop(mut child: Child, mut conn: Connection) {
    conn.close();
    let status = child.wait().expect("wait");
    assert!(status.success(), "fixture exited with {status}");
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Messages per second received with `recv_bytes`, median of `RUNS`.
fn channel_rate(size: usize, count: usize) -> f64 {
    let (n, s) = (count.to_string(), size.to_string());
    let (child, mut conn) = start(&["channel-send", &n, &s]);
    let mut rates = Vec::new();
    for run in 0..=RUNS {
        conn.send_bytes(b"go").unwrap();
        let t = Instant::now();
        for _ in 0..count {
            let msg = conn.recv_bytes().unwrap();
            assert_eq!(msg.len(), size);
        }
        if run > 0 {
            rates.push(count as f64 / t.elapsed().as_secs_f64());
        }
    }
    stop(child, conn);
    median(rates)
}

/// Messages per second moved with plain `write`/`read`, median of `RUNS`.
fn raw_rate(size: usize, count: usize) -> f64 {
    let (n, s) = (count.to_string(), size.to_string());
    let (child, mut conn) = start(&["channel-raw-send", &n, &s]);
    let mut buf = vec![0u8; 64 * 1024];
    let total = count * (size + 4);
    let mut rates = Vec::new();
    for run in 0..=RUNS {
        conn.send_bytes(b"go").unwrap();
        let t = Instant::now();
        let mut got = 0;
        while got < total {
            let want = buf.len().min(total - got);
            match nix::unistd::read(&conn, &mut buf[..want]) {
                Ok(0) => panic!("the fixture closed early"),
                Ok(n) => got += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        if run > 0 {
            rates.push(count as f64 / t.elapsed().as_secs_f64());
        }
    }
    stop(child, conn);
    median(rates)
}

/// Seconds per 64-byte round trip to the echoing fixture, median of `RUNS`.
fn channel_round_trip(count: usize) -> f64 {
    let (child, mut conn) = start(&["channel-echo"]);
    let msg = [b'r'; 64];
    let mut times = Vec::new();
    for run in 0..=RUNS {
        let t = Instant::now();
        for _ in 0..count {
            conn.send_bytes(&msg).unwrap();
            conn.recv_bytes().unwrap();
        }
        if run > 0 {
            times.push(t.elapsed().as_secs_f64() / count as f64);
        }
    }
    stop(child, conn);
    median(times)
}

const PYTHON_ROUND_TRIP: &str = r#"
import os, sys, time
from multiprocessing import Pipe
count, runs = int(sys.argv[1]), int(sys.argv[2])
a, b = Pipe()
pid = os.fork()
if pid == 0:
    a.close()
    try:
        while True:
            b.send_bytes(b.recv_bytes())
    except EOFError:
        os._exit(0)
b.close()
msg = b"r" * 64
times = []
for run in range(runs + 1):
    t = time.perf_counter()
    for _ in range(count):
        a.send_bytes(msg)
        a.recv_bytes()
    if run:
        times.append((time.perf_counter() - t) / count)
a.close()
os.waitpid(pid, 0)
times.sort()
print(times[len(times) // 2])
"#;

/// Seconds per 64-byte round trip between two Python processes.
fn python_round_trip(count: usize) -> Option<f64> {
    let out = Command::new("python3")
        .args(["-c", PYTHON_ROUND_TRIP, &count.to_string(), &RUNS.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Runs the channel benchmark and prints its markdown table.
pub fn run() {
    println!("### Message channel (`duet::channel`)\n");
    println!("| benchmark | duet | reference | ratio |");
    println!("|---|---|---|---|");
    for (size, count, label) in [(64, 200_000, "64 B"), (64 * 1024, 4_000, "64 KiB")] {
        let ours = channel_rate(size, count);
        let raw = raw_rate(size, count);
        let mb = |rate: f64| rate * size as f64 / 1e6;
        println!(
            "| {label} messages, child → parent | {:.0} msg/s, {:.0} MB/s | raw write/read {:.0} msg/s, {:.0} MB/s | {:.2}× raw (target ≥ 0.85×) |",
            ours,
            mb(ours),
            raw,
            mb(raw),
            ours / raw
        );
    }
    let count = 20_000;
    let ours = channel_round_trip(count);
    match python_round_trip(count) {
        Some(py) => println!(
            "| 64 B round trip | {:.1} µs | Python `multiprocessing.Pipe` {:.1} µs | {:.2}× faster (target ≥ 5×) |",
            ours * 1e6,
            py * 1e6,
            py / ours
        ),
        None => println!(
            "| 64 B round trip | {:.1} µs | Python not available | – |",
            ours * 1e6
        ),
    }
    println!("\nMedians of {RUNS} runs after one warm-up run; MB/s counts payload bytes (1 MB = 10^6 B).");
}
