//! The conversation core's rows of `make bench`:
//!
//! 1. expect a literal and a regex at the end of 100 MB of output (`cat` of
//!    a file in the page cache): duet vs std's `read_to_end` of the same
//!    output (the floor: reading it at all) vs pexpect's `PopenSpawn`
//!    (installed for python3 when missing) at its best settings:
//!    `maxread=65536`, and for the regex `searchwindowsize=200` (without
//!    a window pexpect searches its whole buffer after every read, and did
//!    not finish the 100 MB within 120 s here);
//! 2. linearity: duet's regex expect per MB at the end of 1 GB vs 10 MB;
//! 3. `communicate` of 100 MB through `cat` vs std with a writer thread and
//!    `read_to_end`;
//! 4. the parent's memory per idle child after one `ask` (500 `cat`s).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{Row, Target, Unit, Variant, compare, rows, timed};

const MB: u64 = 1_000_000;
/// The last line of every stream: what the expects look for.
const MARKER: &str = "DONE 42";
const REGEX: &str = r"^DONE (\d+)$";

/// expect at the end of 100 MB: at most 1.5× the floor's time (the rows
/// are rates: at least 1/1.5 of the floor's).
const EXPECT_TARGET: Target = Target::AtLeast(1.0 / 1.5);
/// ... and at least 3× faster than pexpect (pexpect's rate at most a third
/// of duet's).
const PEXPECT_TARGET: Target = Target::AtMost(1.0 / 3.0);
/// Per MB at 1 GB within 1.3× of per MB at 10 MB (as a rate: ≥ 1/1.3).
const LINEAR_TARGET: Target = Target::AtLeast(1.0 / 1.3);
/// communicate: at least std with a writer thread.
const COMMUNICATE_TARGET: Target = Target::AtLeast(1.0);
/// Parent memory per idle child, in bytes.
const IDLE_TARGET: usize = 16 * 1024;

/// A file of `bytes` of text lines ending in the marker line, made once.
fn stream_file(dir: &Path, bytes: u64) -> PathBuf {
    let path = dir.join(format!("stream-{bytes}.txt"));
    if path.exists() {
        return path;
    }
    let line = b"0123456789 lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do\n";
    let mut out = BufWriter::new(std::fs::File::create(&path).expect("create the stream file"));
    let mut written = 0;
    while written + (line.len() as u64) < bytes {
        out.write_all(line).expect("write the stream file");
        written += line.len() as u64;
    }
    writeln!(out, "{MARKER}").expect("write the stream file");
    out.flush().expect("write the stream file");
    path
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("duet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// std reading all of `cat FILE`: the floor.
fn floor(file: &Path) -> Duration {
    let start = Instant::now();
    let mut cat = std::process::Command::new("cat")
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn cat");
    let mut all = Vec::new();
    cat.stdout
        .take()
        .expect("piped")
        .read_to_end(&mut all)
        .expect("read cat's output");
    assert!(all.ends_with(b"DONE 42\n"));
    assert!(cat.wait().expect("wait").success());
    start.elapsed()
}

fn duet_expect(file: &Path, pattern: &duet::Pattern) -> Duration {
    let start = Instant::now();
    let mut cat = duet::Command::new("cat")
        .arg(file)
        .timeout(Duration::from_secs(120))
        .spawn()
        .expect("spawn cat");
    let m = cat.expect(pattern.clone()).expect("the marker");
    assert!(m.as_str().starts_with("DONE"));
    assert!(cat.wait().expect("wait").success());
    start.elapsed()
}

const PEXPECT: &str = r#"
import sys, time
from pexpect.popen_spawn import PopenSpawn
path, kind = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if kind == 'exact':
    p = PopenSpawn(['cat', path], maxread=65536, timeout=120)
    p.expect_exact(b'DONE 42')
else:
    p = PopenSpawn(['cat', path], maxread=65536, timeout=120, searchwindowsize=200)
    p.expect(rb'(?m)^DONE (\d+)$')
p.wait()
print(time.perf_counter() - start)
"#;

/// pexpect, timed inside Python (its interpreter's start is not counted).
fn pexpect(file: &Path, kind: &str) -> Duration {
    let out = std::process::Command::new("python3")
        .args(["-c", PEXPECT])
        .arg(file)
        .arg(kind)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "pexpect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("pexpect's time");
    Duration::from_secs_f64(secs)
}

fn have_pexpect() -> bool {
    let ok = |args: &[&str]| {
        std::process::Command::new("python3")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok(&["-c", "import pexpect"])
        || (ok(&["-m", "pip", "install", "--quiet", "pexpect"]) && ok(&["-c", "import pexpect"]))
}

pub fn expect_rows() -> Vec<Row> {
    let dir = scratch();
    let big = stream_file(&dir, 100 * MB);
    let exact = duet::Pattern::exact(MARKER);
    let regex = duet::Pattern::regex(REGEX).expect("the regex");
    let with_pexpect = have_pexpect();
    if !with_pexpect {
        eprintln!("pexpect could not be installed: its rows are left out");
    }

    let mut table = Vec::new();
    for (kind, pattern) in [("exact", &exact), ("regex", &regex)] {
        let case = format!("expect {kind} at the end of 100 MB (cat of a cached file)");
        eprintln!("measuring {case} …");
        let mut variants = vec![
            Variant::new("std read_to_end (floor)", 100 * MB, || floor(&big)),
            Variant::new("duet expect", 100 * MB, || duet_expect(&big, pattern))
                .target(EXPECT_TARGET),
        ];
        if with_pexpect {
            variants.push(
                Variant::new("pexpect PopenSpawn", 100 * MB, || pexpect(&big, kind))
                    .against(1)
                    .target(PEXPECT_TARGET),
            );
        }
        let samples = compare(1, 5, &mut variants);
        drop(variants);
        table.extend(rows(&case, Unit::Rate, &samples, 0));
    }

    // Reading a 1 GB buffer costs more per MB than a 10 MB one whatever
    // reads it (page faults on fresh memory; at 10 MB the allocator reuses
    // what the last run freed): the floor's rows show how much.
    let case = "linearity: regex expect at the end of 1 GB vs 10 MB";
    eprintln!("measuring {case} …");
    let small = stream_file(&dir, 10 * MB);
    let huge = stream_file(&dir, 1000 * MB);
    let ten = |f: &dyn Fn() -> Duration| (0..10).map(|_| f()).sum::<Duration>() / 10;
    let mut variants = [
        Variant::new("duet, 10 MB", 10 * MB, || {
            ten(&|| duet_expect(&small, &regex))
        }),
        Variant::new("duet, 1 GB", 1000 * MB, || duet_expect(&huge, &regex)).target(LINEAR_TARGET),
        Variant::new("floor, 10 MB", 10 * MB, || ten(&|| floor(&small))),
        Variant::new("floor, 1 GB", 1000 * MB, || floor(&huge)).against(2),
    ];
    let samples = compare(1, 3, &mut variants);
    drop(variants);
    table.extend(rows(case, Unit::Rate, &samples, 0));
    let _ = std::fs::remove_dir_all(&dir);
    table
}

pub fn communicate_rows() -> Vec<Row> {
    let case = "communicate 100 MB through cat";
    eprintln!("measuring {case} …");
    let input: Vec<u8> = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
        .iter()
        .copied()
        .cycle()
        .take(100 * MB as usize)
        .collect();
    let input = &input;
    let std_run = || {
        timed(|| {
            let mut cat = std::process::Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn cat");
            let mut stdin = cat.stdin.take().expect("piped");
            let mut stdout = cat.stdout.take().expect("piped");
            let out = std::thread::scope(|s| {
                s.spawn(move || stdin.write_all(input).expect("write to cat"));
                let mut out = Vec::new();
                stdout.read_to_end(&mut out).expect("read cat's output");
                out
            });
            assert_eq!(out.len(), input.len());
            assert!(cat.wait().expect("wait").success());
        })
    };
    let duet_run = || {
        timed(|| {
            let mut cat = duet::Command::new("cat").spawn().expect("spawn cat");
            let out = cat.communicate(input, None).expect("communicate");
            assert_eq!(out.stdout.len(), input.len());
            assert!(out.status.success());
        })
    };
    let mut variants = [
        Variant::new("std, writer thread + read_to_end", 100 * MB, std_run),
        Variant::new("duet communicate, one thread", 100 * MB, duet_run).target(COMMUNICATE_TARGET),
    ];
    let samples = compare(1, 7, &mut variants);
    drop(variants);
    rows(case, Unit::Rate, &samples, 0)
}

/// The parent's resident memory per idle child after one `ask`, as a line
/// of text for the report.
pub fn idle_memory() -> String {
    const CHILDREN: usize = 500;
    eprintln!("measuring memory per idle child …");
    // Warm up the allocator and the code paths first.
    let warm: Vec<duet::Child> = (0..20).map(|_| asked_cat()).collect();
    drop(warm);
    let before = crate::rss();
    let children: Vec<duet::Child> = (0..CHILDREN).map(|_| asked_cat()).collect();
    let after = crate::rss();
    drop(children);
    let per_child = after.saturating_sub(before) / CHILDREN;
    format!(
        "Parent memory per idle child after one `ask` ({CHILDREN} `cat`s): {:.1} KiB \
         (RSS {} → {} KiB; target ≤ {} KiB: {})",
        per_child as f64 / 1024.0,
        before / 1024,
        after / 1024,
        IDLE_TARGET / 1024,
        if per_child <= IDLE_TARGET {
            "met"
        } else {
            "**not met**"
        }
    )
}

fn asked_cat() -> duet::Child {
    let mut cat = duet::Command::new("cat").spawn().expect("spawn cat");
    assert_eq!(cat.ask("ping").expect("ask"), "ping");
    cat
}
