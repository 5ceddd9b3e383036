//! Message channel benchmark: `channel::run()` prints a markdown table.
//!
//! Throughput: a child (the fixture) sends messages over `channel::pipe()`
//! and this process receives them with `recv_bytes`, against a raw floor on
//! the same kind of socket pair (the child `write`s prepared frames, this
//! process `read`s into a 64 KiB buffer). Latency: 64-byte round trips to an
//! echoing child, against the same round trip between two Python processes
//! over `multiprocessing.Pipe()` and against raw `write`/`read` of the same
//! frame (the floor: two system calls and a context switch each way), with
//! every process pinned to one CPU. Each figure is the median of several
//! runs, duet and its reference taking turns.

use std::process::Command;
use std::time::Instant;

use crate::binaries::fixture;
use duet::Child;
use duet::channel::Connection;

const RUNS: usize = 11;

/// Starts the fixture in `mode` with a channel (`Command::channel`).
fn start(args: &[&str]) -> (Child, Connection) {
    let mut child = duet::Command::new(fixture())
        .args(args)
        .channel()
        .spawn()
        .expect("spawn the fixture");
    let conn = child.take_channel().expect("a channel was asked for");
    (child, conn)
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

/// Seconds to receive `count` messages of `size` bytes with `recv_bytes`
/// from a `channel-send` child.
fn channel_once(conn: &mut Connection, size: usize, count: usize) -> f64 {
    conn.send_bytes(b"go").unwrap();
    let t = Instant::now();
    for _ in 0..count {
        let msg = conn.recv_bytes().unwrap();
        assert_eq!(msg.len(), size);
    }
    t.elapsed().as_secs_f64()
}

/// Seconds to move the same frames from a `channel-raw-send` child with
/// plain `read` into a 64 KiB buffer.
fn raw_once(conn: &mut Connection, size: usize, count: usize, buf: &mut [u8]) -> f64 {
    conn.send_bytes(b"go").unwrap();
    let t = Instant::now();
    let total = count * (size + 4);
    let mut got = 0;
    while got < total {
        let want = buf.len().min(total - got);
        match nix::unistd::read(&*conn, &mut buf[..want]) {
            Ok(0) => panic!("the fixture closed early"),
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    t.elapsed().as_secs_f64()
}

/// Messages per second for duet and for the raw floor, and the median of
/// the per-run ratios. Runs alternate between the two so that both see the
/// same machine (other processes on two cores move every figure).
fn throughput(size: usize, count: usize) -> (f64, f64, f64) {
    let (n, s) = (count.to_string(), size.to_string());
    let (ours_child, mut ours) = start(&["channel-send", &n, &s]);
    let (raw_child, mut raw) = start(&["channel-raw-send", &n, &s]);
    let mut buf = vec![0u8; 64 * 1024];
    channel_once(&mut ours, size, count);
    raw_once(&mut raw, size, count, &mut buf);
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let (x, y) = if run % 2 == 0 {
            let x = channel_once(&mut ours, size, count);
            (x, raw_once(&mut raw, size, count, &mut buf))
        } else {
            let y = raw_once(&mut raw, size, count, &mut buf);
            (channel_once(&mut ours, size, count), y)
        };
        a.push(count as f64 / x);
        b.push(count as f64 / y);
        ratios.push(y / x);
    }
    stop(ours_child, ours);
    stop(raw_child, raw);
    (median(a), median(b), median(ratios))
}

/// Seconds per 64-byte round trip to an echoing child.
fn round_trip_once(conn: &mut Connection, count: usize) -> f64 {
    let msg = [b'r'; 64];
    let t = Instant::now();
    for _ in 0..count {
        conn.send_bytes(&msg).unwrap();
        conn.recv_bytes().unwrap();
    }
    t.elapsed().as_secs_f64() / count as f64
}

const PYTHON_ROUND_TRIP: &str = r#"
import os, sys, time
from multiprocessing import Pipe
count = int(sys.argv[1])
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
for _ in range(count // 10):
    a.send_bytes(msg)
    a.recv_bytes()
t = time.perf_counter()
for _ in range(count):
    a.send_bytes(msg)
    a.recv_bytes()
elapsed = time.perf_counter() - t
a.close()
os.waitpid(pid, 0)
print(elapsed / count)
"#;

/// Seconds per 64-byte round trip between two Python processes.
fn python_round_trip(count: usize) -> Option<f64> {
    let out = Command::new("python3")
        .args([
            "-c",
            PYTHON_ROUND_TRIP,
            &count.to_string(),
            &RUNS.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Seconds per round trip of `size` bytes with plain write/read to a
/// `channel-raw-echo` child.
fn raw_round_trip_once(conn: &Connection, size: usize, count: usize) -> f64 {
    let msg = vec![b'r'; size];
    let mut buf = vec![0u8; size];
    let t = Instant::now();
    for _ in 0..count {
        let mut at = 0;
        while at < size {
            at += nix::unistd::write(conn, &msg[at..]).expect("write");
        }
        let mut got = 0;
        while got < size {
            match nix::unistd::read(conn, &mut buf[got..]) {
                Ok(0) => panic!("the fixture closed early"),
                Ok(n) => got += n,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
    t.elapsed().as_secs_f64() / count as f64
}

/// Runs `f` with this process, and the children it starts meanwhile, on
/// one CPU: a round trip then measures the software path and the context
/// switch, not how soon the hypervisor wakes an idle virtual CPU (which
/// varies several-fold from run to run on a small VM).
fn on_one_cpu<T>(f: impl FnOnce() -> T) -> T {
    use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
    use nix::unistd::Pid;
    let before = sched_getaffinity(Pid::from_raw(0)).ok();
    let first =
        before.and_then(|set| (0..CpuSet::count()).find(|&i| set.is_set(i).unwrap_or(false)));
    if let Some(cpu) = first {
        let mut one = CpuSet::new();
        if one.set(cpu).is_ok() {
            let _ = sched_setaffinity(Pid::from_raw(0), &one);
        }
    }
    let result = f();
    if let Some(set) = before {
        let _ = sched_setaffinity(Pid::from_raw(0), &set);
    }
    result
}

/// Round trip seconds for duet and Python, and the median of per-run
/// speed-ups (runs alternate); `None` for Python when python3 fails.
fn round_trips(count: usize) -> (f64, (f64, f64), Option<(f64, f64)>) {
    let (child, mut conn) = start(&["channel-echo"]);
    let (raw_child, raw_conn) = start(&["channel-raw-echo", "68"]);
    round_trip_once(&mut conn, count / 10);
    raw_round_trip_once(&raw_conn, 68, count / 10);
    let (mut ours, mut raw, mut raw_ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut py, mut ratios) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let x = round_trip_once(&mut conn, count);
        ours.push(x);
        let r = raw_round_trip_once(&raw_conn, 68, count);
        raw.push(r);
        raw_ratios.push(r / x);
        if let Some(y) = python_round_trip(count) {
            py.push(y);
            ratios.push(y / x);
        }
    }
    stop(child, conn);
    stop(raw_child, raw_conn);
    let python = (!py.is_empty()).then(|| (median(py), median(ratios)));
    (median(ours), (median(raw), median(raw_ratios)), python)
}

/// Runs the channel benchmark and prints its markdown table.
pub fn run() {
    println!("### Message channel (`duet::channel`)\n");
    println!("| benchmark | duet | reference | ratio |");
    println!("|---|---|---|---|");
    for (size, count, label) in [(64, 200_000, "64 B"), (64 * 1024, 4_000, "64 KiB")] {
        let (ours, raw, ratio) = throughput(size, count);
        let mb = |rate: f64| rate * size as f64 / 1e6;
        println!(
            "| {label} messages, child → parent | {:.0} msg/s, {:.0} MB/s | raw write/read {:.0} msg/s, {:.0} MB/s | {ratio:.2}× raw (target ≥ 0.85×) |",
            ours,
            mb(ours),
            raw,
            mb(raw),
        );
    }
    let (ours, (raw, raw_ratio), python) = on_one_cpu(|| round_trips(20_000));
    match python {
        Some((py, ratio)) => println!(
            "| 64 B round trip | {:.1} µs | Python `multiprocessing.Pipe` {:.1} µs | {ratio:.2}× faster (target ≥ 5×) |",
            ours * 1e6,
            py * 1e6,
        ),
        None => println!(
            "| 64 B round trip | {:.1} µs | Python not available | – |",
            ours * 1e6
        ),
    }
    println!(
        "| 64 B round trip, raw floor | {:.1} µs | raw write/read of the same 68 bytes {:.1} µs | {raw_ratio:.2}× raw |",
        ours * 1e6,
        raw * 1e6,
    );
    println!(
        "\nMedians of {RUNS} runs after a warm-up; duet and the reference alternate run by run and \
         the ratio is the median of the per-run ratios. MB/s counts payload bytes (1 MB = 10^6 B). \
         Round trips run with parent and child pinned to one CPU."
    );
}
