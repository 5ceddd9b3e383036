//! `make bench` (`cargo bench --bench bench`): duet side by side with
//! `std::process`, duct and a raw read/write floor, as one markdown table.
//!
//! Every row is the median of many samples, and every comparison is measured
//! in one run, its variants taking turns (see `harness`), so the ratios hold
//! even on a machine that is busy with other work. The whole run takes
//! under half a minute and needs 2 GiB of free memory.
//!
//! 1. spawn + wait of `/bin/true` with the parent at ~10 MiB and at 2 GiB
//!    resident: duet vs std vs duct, plus duet with `use_fork(true)` to show
//!    what the default vfork-class clone saves.
//! 2. round trip of one short line with the fixture in echo mode: duet
//!    `ask` vs std + `BufReader::read_line` vs a raw `write`/`read` loop on
//!    the same kind of pipes (the floor), plus the floor with a `poll` on a
//!    10 s timeout before each read (what any deadline costs). Parent and
//!    children are pinned to one CPU for this case.
//! 3. streaming 100-byte lines through `cat`: duet on one thread vs std with
//!    a writer thread vs the raw floor (writer thread + `read` loop).
//! 4. the command line: a line through `duet chat`, and through `duet serve`
//!    with `duet ask` and with the raw FIFOs (see `cli`).
//! 5. programs through ssh to 127.0.0.1, the first spawn vs later ones on
//!    the multiplexed connection vs local, and `Shell::run("true")` (see
//!    `remote`; the bench starts its own sshd as the tests do).
//! 6. the async driver (feature `tokio`, which `make bench` turns on): its
//!    round trip vs the blocking one on one CPU, and 1,000 children on one
//!    current-thread runtime vs 1,000 blocking children on 1,000 threads
//!    (see `asynchronous`), with every CPU and on one pinned CPU.
//! 7. a clean build of the library alone, against the package before the
//!    workspace split (see `build`).
//! 8. `duet test` against cram and bats on the same tiny tests, per test
//!    and against a floor, and its linearity from 1,000 to 2,000 scripts
//!    (see `scripts`).
//!
//! The fixture is the package's `duet-fixture` binary. Cargo builds it with
//! the benches and passes its path as `CARGO_BIN_EXE_duet-fixture`; when
//! that is missing it is looked up next to the bench executable's
//! directory (`target/release/deps/bench-*` → `target/release/duet-fixture`).

#[cfg(feature = "tokio")]
mod asynchronous;
mod binaries;
mod build;
mod channel;
mod cli;
mod conversation;
mod harness;
mod remote;
mod scripts;
mod serve_load;

use binaries::fixture;

use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::{Row, Target, Unit, Variant, compare, rows, timed};

// ---- targets -------------------------------------------------------------

/// spawn + wait: duet at most 1.10× std's time, at both sizes.
const SPAWN_TARGET: Target = Target::AtMost(1.10);
/// round trip: duet at most 1.05× the floor plus a deadline's `poll` (what
/// honouring a timeout costs any implementation).
const ROUND_TRIP_TARGET: Target = Target::AtMost(1.05);
/// streaming: duet (no thread of its own) at least 0.9× std with a writer thread.
const STREAM_TARGET: Target = Target::AtLeast(0.90);

// ---- sizes -----------------------------------------------------------------

const MIB: usize = 1 << 20;
/// The small parent.
const SMALL_RSS: usize = 10 * MIB;
/// The big parent: fork copies the page tables of all of it.
const BIG_RSS: usize = 2048 * MIB;

/// Spawns per sample (vfork-class paths, and fork in a small parent).
const SPAWNS: u64 = 20;
/// Round trips per sample.
const ROUND_TRIPS: u64 = 2000;
/// Streaming: 100-byte lines, written in chunks of 640 lines (64,000 bytes,
/// under one default pipe's 64 KiB), 782 chunks: 50 MB per sample.
const LINE_LEN: usize = 100;
const LINES_PER_CHUNK: usize = 640;
const CHUNKS: usize = 782;
const STREAM_BYTES: u64 = (LINE_LEN * LINES_PER_CHUNK * CHUNKS) as u64;

fn main() {
    // `cargo test --all-targets` (and so `make test`) runs bench targets in
    // test mode, without `--bench`: the benchmark has no place there.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("bench: skipped (run it with `make bench`)");
        return;
    }
    // `cargo bench` passes `--bench`; any other argument selects the
    // comparisons whose name contains it (spawn, round, stream, cli, ssh,
    // shell, channel), for profiling.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));

    println!("{}\n", machine());
    let mut table: Vec<Row> = Vec::new();
    let mut flood_note: Option<String> = None;

    // First, while the allocator holds no memory freed by other cases.
    let idle = wanted("memory").then(conversation::idle_memory);
    // A parent at ~10 MiB resident, whatever the harness itself uses.
    let small = ballast(SMALL_RSS.saturating_sub(rss()));
    if wanted("spawn") {
        table.extend(spawn_rows(SPAWNS, 31));
        let big = ballast(BIG_RSS);
        table.extend(spawn_rows(2, 13));
        drop(big);
    }
    if wanted("round") {
        table.extend(round_trip_rows(&fixture()));
    }
    if wanted("stream") {
        table.extend(stream_rows());
    }
    if wanted("cli") {
        table.extend(cli::rows_for(&fixture()));
    }
    if wanted("serve-load") {
        table.extend(serve_load::rows_for(&fixture()));
    }
    if wanted("flood") {
        flood_note = Some(serve_load::flood_memory());
    }
    if wanted("ssh") {
        table.extend(remote::ssh_rows(&fixture()));
    }
    if wanted("shell") {
        table.extend(remote::shell_rows());
    }
    if wanted("expect") {
        table.extend(conversation::expect_rows());
    }
    if wanted("communicate") {
        table.extend(conversation::communicate_rows());
    }
    let mut notes: Vec<String> = Vec::new();
    notes.extend(flood_note.take());
    if wanted("scripts") {
        let (rows, more) = scripts::rows_for(&binaries::duet());
        table.extend(rows);
        notes.extend(more);
    }
    if wanted("build") {
        match build::rows_for() {
            Ok(rows) => table.extend(rows),
            Err(why) => notes.push(format!("No build rows: {why}.")),
        }
    }
    #[cfg(feature = "tokio")]
    if wanted("async") {
        table.extend(asynchronous::round_trip_rows(&fixture()));
        for one_cpu in [false, true] {
            let (rows, note) = asynchronous::many_children_rows(&fixture(), one_cpu);
            table.extend(rows);
            notes.push(note);
        }
        notes.push(
            "Why the 1,000-children target can miss: set the parent's CPU \
             time per ask (above) against the time per ask, and most of the \
             difference is the children's. A blocking thread hands its CPU straight to its \
             child and back (a sync wakeup; the pipe and the child still hot), \
             while the one loop thread mostly writes to many children before \
             any of them runs, so each runs cold, often on the other CPU, and a \
             cross-CPU wakeup is dear (in a VM most of all)."
                .to_string(),
        );
    }
    #[cfg(not(feature = "tokio"))]
    if wanted("async") {
        notes.push("The async rows need `--features tokio` (`make bench` passes it).".to_string());
    }
    drop(small);

    println!("{}", harness::table(&table));
    println!(
        "Times are medians per operation, rates medians of 50 MB samples; spread is \
         half the interquartile range. The variants of one case run in turns, one \
         sample each per round; a ratio is the median over rounds of the row's \
         time ÷ the reference's time in the same round (rate ÷ rate for rates), \
         so load that changes between rounds cancels out."
    );
    if let Some(idle) = idle {
        println!("\n{idle}");
    }
    for note in notes {
        println!("\n{note}");
    }
    if wanted("channel") {
        println!();
        channel::run();
    }
}

// ---- 1. spawn + wait -------------------------------------------------------

/// spawn + wait of `/bin/true` at the parent's current size. `fork_spawns`:
/// spawns per sample for the `use_fork(true)` row (fork is slow in a big parent).
fn spawn_rows(fork_spawns: u64, rounds: usize) -> Vec<Row> {
    let case = format!("spawn+wait /bin/true, parent {}", human(rss()));
    eprintln!("measuring {case} …");
    let duet_true = |fork: bool| {
        move || {
            let status = duet::Command::new("/bin/true")
                .stdin(duet::Stdio::null())
                .stdout(duet::Stdio::null())
                .use_fork(fork)
                .spawn()
                .expect("duet spawns /bin/true")
                .wait()
                .expect("duet waits");
            assert!(status.success());
        }
    };
    let std_true = || {
        let status = std::process::Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("std spawns /bin/true")
            .wait()
            .expect("std waits");
        assert!(status.success());
    };
    // duct with the same null stdin/stdout as the others (run() checks the status).
    let duct_true = || {
        duct::cmd!("/bin/true")
            .stdin_null()
            .stdout_null()
            .run()
            .expect("duct runs /bin/true");
    };
    let mut variants = [
        Variant::new("std", SPAWNS, || timed(|| repeat(SPAWNS, std_true))),
        Variant::new("duet", SPAWNS, || {
            timed(|| repeat(SPAWNS, duet_true(false)))
        })
        .target(SPAWN_TARGET),
        Variant::new("duct", SPAWNS, || timed(|| repeat(SPAWNS, duct_true))),
        Variant::new("duet use_fork(true)", fork_spawns, || {
            timed(|| repeat(fork_spawns, duet_true(true)))
        }),
    ];
    let samples = compare(1, rounds, &mut variants);
    rows(&case, Unit::Time, &samples, 0)
}

fn repeat(n: u64, f: impl Fn()) {
    (0..n).for_each(|_| f());
}

// ---- 2. round trip ---------------------------------------------------------

fn round_trip_rows(fixture: &PathBuf) -> Vec<Row> {
    let case = "round trip of one short line (fixture echo, one CPU)";
    eprintln!("measuring {case} …");
    // Parent and fixtures share one CPU (children inherit the affinity).
    // Unpinned, the scheduler sometimes puts the fixture on the other CPU and
    // a round trip then costs a cross-CPU wakeup (3-4x longer in this VM),
    // which made the samples bimodal (spreads of ±80%). Pinned, a round trip
    // is two context switches plus the system calls: the most stable setting,
    // and the strictest one for a ratio of overheads.
    let _pinned = PinnedToOneCpu::new();
    let std_echo = || {
        std::process::Command::new(fixture)
            .arg("echo")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the fixture")
    };

    // The floor: the raw pipes std made, blocking `write` and `read` calls.
    let mut floor_child = std_echo();
    let mut floor_in = File::from(OwnedFd::from(floor_child.stdin.take().expect("piped")));
    let mut floor_out = File::from(OwnedFd::from(floor_child.stdout.take().expect("piped")));
    let floor = || {
        timed(|| {
            let mut buf = [0u8; 64];
            for _ in 0..ROUND_TRIPS {
                floor_in.write_all(b"ping\n").expect("write");
                let mut got = 0;
                while got == 0 || buf[got - 1] != b'\n' {
                    let n = floor_out.read(&mut buf[got..]).expect("read");
                    assert!(n > 0, "the fixture closed its output");
                    got += n;
                }
                assert_eq!(&buf[..got], b"ping\n");
            }
        })
    };

    // The floor plus what any deadline costs: `poll` with a timeout (the
    // default 10 s) before each `read`. Not a target row: it shows
    // how much of duet's overhead is the price of timeouts.
    let mut timed_child = std_echo();
    let mut timed_in = File::from(OwnedFd::from(timed_child.stdin.take().expect("piped")));
    let timed_out = File::from(OwnedFd::from(timed_child.stdout.take().expect("piped")));
    let floor_with_deadline = || {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let ten_seconds = PollTimeout::try_from(10_000).expect("fits");
        timed(|| {
            let mut buf = [0u8; 64];
            for _ in 0..ROUND_TRIPS {
                timed_in.write_all(b"ping\n").expect("write");
                let mut got = 0;
                while got == 0 || buf[got - 1] != b'\n' {
                    let mut fds = [PollFd::new(timed_out.as_fd(), PollFlags::POLLIN)];
                    assert_eq!(poll(&mut fds, ten_seconds).expect("poll"), 1);
                    let n = (&timed_out).read(&mut buf[got..]).expect("read");
                    assert!(n > 0, "the fixture closed its output");
                    got += n;
                }
                assert_eq!(&buf[..got], b"ping\n");
            }
        })
    };

    let mut std_child = std_echo();
    let mut std_in = std_child.stdin.take().expect("piped");
    let mut std_out = BufReader::new(std_child.stdout.take().expect("piped"));
    let std = || {
        timed(|| {
            let mut line = String::new();
            for _ in 0..ROUND_TRIPS {
                std_in.write_all(b"ping\n").expect("write");
                line.clear();
                std_out.read_line(&mut line).expect("read_line");
                assert_eq!(line, "ping\n");
            }
        })
    };

    let mut duet_child = duet::Command::new(fixture)
        .arg("echo")
        .spawn()
        .expect("spawn the fixture");
    let duet = || {
        timed(|| {
            for _ in 0..ROUND_TRIPS {
                assert_eq!(duet_child.ask("ping").expect("ask"), "ping");
            }
        })
    };

    let mut variants = [
        Variant::new("raw write/read (floor)", ROUND_TRIPS, floor),
        Variant::new(
            "raw write, poll(10 s), read",
            ROUND_TRIPS,
            floor_with_deadline,
        ),
        Variant::new("std + BufReader::read_line", ROUND_TRIPS, std),
        Variant::new("duet ask", ROUND_TRIPS, duet)
            .against(1)
            .target(ROUND_TRIP_TARGET),
    ];
    let samples = compare(1, 15, &mut variants);
    drop(variants);

    drop((floor_in, floor_out, timed_in, timed_out, std_in, std_out));
    for mut c in [floor_child, timed_child, std_child] {
        c.wait().expect("the fixture exits at end of input");
    }
    assert!(duet_child.wait().expect("wait").success());
    rows(case, Unit::Time, &samples, 0)
}

/// While alive, this thread (and every child it spawns) runs on the CPU it
/// was on; the previous affinity comes back on drop.
struct PinnedToOneCpu {
    previous: Option<nix::sched::CpuSet>,
}

impl PinnedToOneCpu {
    fn new() -> PinnedToOneCpu {
        use nix::sched::{CpuSet, sched_getaffinity, sched_getcpu, sched_setaffinity};
        use nix::unistd::Pid;
        let me = Pid::from_raw(0);
        let previous = sched_getaffinity(me).ok();
        let mut one = CpuSet::new();
        let pinned = sched_getcpu()
            .and_then(|cpu| one.set(cpu))
            .and_then(|()| sched_setaffinity(me, &one));
        if let Err(e) = pinned {
            eprintln!("could not pin to one CPU ({e}); measuring unpinned");
        }
        PinnedToOneCpu { previous }
    }
}

impl Drop for PinnedToOneCpu {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), previous);
        }
    }
}

// ---- 3. streaming ----------------------------------------------------------

fn stream_rows() -> Vec<Row> {
    let case = "stream 100-byte lines through cat";
    eprintln!("measuring {case} …");
    let chunk = chunk();
    let mut variants = [
        Variant::new(
            "std, writer thread + BufReader::lines",
            STREAM_BYTES,
            || std_stream(&chunk),
        ),
        Variant::new("raw, writer thread + read (floor)", STREAM_BYTES, || {
            floor_stream(&chunk)
        }),
        Variant::new("duet, one thread", STREAM_BYTES, || {
            duet_stream(&chunk, None)
        })
        .target(STREAM_TARGET),
        Variant::new("duet, one thread, pipe_size(1 MiB)", STREAM_BYTES, || {
            duet_stream(&chunk, Some(MIB))
        })
        .target(STREAM_TARGET),
    ];
    let samples = compare(1, 11, &mut variants);
    rows(case, Unit::Rate, &samples, 0)
}

/// `LINES_PER_CHUNK` lines of `LINE_LEN` bytes, newline included.
fn chunk() -> Vec<u8> {
    let mut line: Vec<u8> = (0..LINE_LEN - 1).map(|i| b'a' + (i % 26) as u8).collect();
    line.push(b'\n');
    line.repeat(LINES_PER_CHUNK)
}

fn std_cat() -> std::process::Child {
    std::process::Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn cat")
}

/// std as its documentation suggests: a writer thread, lines on this one.
fn std_stream(chunk: &[u8]) -> Duration {
    let mut cat = std_cat();
    let mut stdin = cat.stdin.take().expect("piped");
    let stdout = BufReader::new(cat.stdout.take().expect("piped"));
    let start = Instant::now();
    let (lines, bytes) = std::thread::scope(|s| {
        s.spawn(move || {
            for _ in 0..CHUNKS {
                stdin.write_all(chunk).expect("write to cat");
            }
        });
        let mut lines = 0;
        let mut bytes = 0;
        for line in stdout.lines() {
            bytes += line.expect("a line from cat").len() + 1;
            lines += 1;
        }
        (lines, bytes)
    });
    let elapsed = start.elapsed();
    assert_eq!(
        (lines, bytes as u64),
        (LINES_PER_CHUNK * CHUNKS, STREAM_BYTES)
    );
    assert!(cat.wait().expect("wait").success());
    elapsed
}

/// The floor: a writer thread and a plain `read` loop on the raw pipes.
fn floor_stream(chunk: &[u8]) -> Duration {
    let mut cat = std_cat();
    let mut stdin = File::from(OwnedFd::from(cat.stdin.take().expect("piped")));
    let mut stdout = File::from(OwnedFd::from(cat.stdout.take().expect("piped")));
    let start = Instant::now();
    let bytes = std::thread::scope(|s| {
        s.spawn(move || {
            for _ in 0..CHUNKS {
                stdin.write_all(chunk).expect("write to cat");
            }
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut bytes = 0u64;
        loop {
            match stdout.read(&mut buf).expect("read from cat") {
                0 => break bytes,
                n => bytes += black_box(n) as u64,
            }
        }
    });
    let elapsed = start.elapsed();
    assert_eq!(bytes, STREAM_BYTES);
    assert!(cat.wait().expect("wait").success());
    elapsed
}

/// duet on one thread: send a chunk, then read the previous chunk's lines.
/// `send_bytes` keeps reading cat's output into duet's buffer while cat's
/// input is full, so this cannot deadlock.
fn duet_stream(chunk: &[u8], pipe_size: Option<usize>) -> Duration {
    let mut cmd = duet::Command::new("cat");
    if let Some(size) = pipe_size {
        cmd.pipe_size(size);
    }
    let mut cat = cmd.spawn().expect("spawn cat");
    let start = Instant::now();
    let mut lines = 0;
    let mut bytes = 0;
    let mut read_lines = |cat: &mut duet::Child| {
        for _ in 0..LINES_PER_CHUNK {
            bytes += cat.read_line_bytes().expect("a line from cat").len() + 1;
            lines += 1;
        }
    };
    for k in 0..CHUNKS {
        cat.send_bytes(chunk).expect("send to cat");
        if k > 0 {
            read_lines(&mut cat);
        }
    }
    cat.close_stdin().expect("close cat's stdin");
    read_lines(&mut cat);
    let elapsed = start.elapsed();
    assert!(matches!(
        cat.read_line_bytes(),
        Err(duet::Error::Eof { .. })
    ));
    assert_eq!(
        (lines, bytes as u64),
        (LINES_PER_CHUNK * CHUNKS, STREAM_BYTES)
    );
    assert!(cat.wait().expect("wait").success());
    elapsed
}

// ---- the machine and the parent's size -------------------------------------

/// `date, kernel, CPU` header line.
fn machine() -> String {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = read_trimmed("/proc/sys/kernel/osrelease");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let thp = read_trimmed("/sys/kernel/mm/transparent_hugepage/enabled");
    let load = read_trimmed("/proc/loadavg");
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "duet benchmark — {date} — Linux {kernel} — {cpu}, {cores} cores — \
         THP {thp} — load {}",
        load.join(" ")
    )
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "?".to_string(), |s| s.trim().to_string())
}

/// This process's resident size in bytes (`VmRSS`).
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// `bytes` of memory, every 4 KiB page written so it is resident.
fn ballast(bytes: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes];
    for i in (0..bytes).step_by(4096) {
        v[i] = 1;
    }
    black_box(v)
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", bytes as f64 / MIB as f64)
    }
}
