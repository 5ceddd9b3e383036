//! `duet test` beside the test runners CI engineers already use for
//! command-line programs: cram (Python, from PyPI) and bats (Bash).
//!
//! Each runner gets the same N tiny tests, each one session with `cat`:
//! send a line, read it back, end the input, see the end of output and
//! exit status 0. For duet that is N scripts (`spawn cat`, `sendline`,
//! `expect-line`, `close-stdin`, `expect-eof`, `exit-status 0`) run by
//! `duet test -j 2`; for cram N `.t` files (`$ echo hello | cat`, whose
//! output and status cram checks); for bats one file of N `@test`s (`run
//! cat <<< hello`, then status and output checked). The floor is the same
//! session N times from Rust with `std::process` (spawn, write, read,
//! wait), one at a time and two at a time (as `-j 2`): what the tests cost
//! without any runner. A row's time is per test; the overhead of a runner
//! per test is its time less the floor's at the same parallelism (printed
//! under the table; cram and bats run one test at a time).
//!
//! 1. N = 300 for all (three rounds: bats needs about a minute a round);
//!    target: duet at most 0.1× cram's time per test (10× faster).
//! 2. Linearity: `duet test -j 2` on 2,000 scripts against 1,000 (the
//!    total times); target at most 2.2×.
//!
//! cram is looked up as `$CRAM`, then in the virtualenv `make bench`
//! makes (`target/bench-venv/bin/cram`), then on `PATH`; bats on `PATH`
//! (`make bench` installs the Debian package). A runner that is missing
//! leaves its row out, with a note.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{Row, Target, Unit, Variant, compare, rows, timed};

/// The index of cram's variant, when it is there.
const CRAM: usize = 4;
/// Tests per sample in the comparison of runners.
const N: usize = 300;
/// duet at most this multiple of cram's time per test.
const CRAM_TARGET: Target = Target::AtMost(0.10);
/// 2,000 scripts at most this multiple of 1,000's time.
const LINEAR_TARGET: Target = Target::AtMost(2.2);

const SCRIPT: &str =
    "spawn cat\nsendline hello\nexpect-line ^hello$\nclose-stdin\nexpect-eof\nexit-status 0\n";
const CRAM_TEST: &str = "  $ echo hello | cat\n  hello\n";

/// A directory of its own under the temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("duet-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` duet scripts in a directory.
fn duet_suite(n: usize) -> Scratch {
    let dir = Scratch::new(&format!("duet{n}"));
    for i in 0..n {
        std::fs::write(dir.0.join(format!("t{i:04}.duet")), SCRIPT).expect("write");
    }
    dir
}

/// Runs `cmd` to the end with its output discarded; it must succeed.
fn succeeds(cmd: &mut Command) {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?}: {status}");
}

/// cram, if it can be found.
fn cram() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CRAM") {
        return Some(PathBuf::from(path));
    }
    let venv = std::env::current_exe()
        .ok()?
        .parent()?
        .parent()?
        .parent()?
        .join("bench-venv/bin/cram");
    if venv.is_file() {
        return Some(venv);
    }
    on_path("cram")
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The session of one test, straight from Rust: the floor.
fn floor_once() {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cat");
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(b"hello\n").expect("write");
    drop(stdin);
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .expect("read");
    assert_eq!(out, "hello\n");
    assert!(child.wait().expect("wait").success());
}

/// The rows, and notes for what is missing and the overheads.
pub fn rows_for(duet: &Path) -> (Vec<Row>, Vec<String>) {
    let mut notes = Vec::new();
    let mut table = Vec::new();
    let scripts = duet_suite(N);
    let cram_dir = Scratch::new("cram");
    for i in 0..N {
        std::fs::write(cram_dir.0.join(format!("t{i:04}.t")), CRAM_TEST).expect("write");
    }
    let bats_dir = Scratch::new("bats");
    let bats_file = bats_dir.0.join("suite.bats");
    let mut bats_text = String::new();
    for i in 0..N {
        bats_text.push_str(&format!(
            "@test \"t{i:04}\" {{\n  run cat <<< hello\n  [ \"$status\" -eq 0 ]\n  [ \"$output\" = hello ]\n}}\n\n"
        ));
    }
    std::fs::write(&bats_file, bats_text).expect("write");

    let cram = cram();
    let bats = on_path("bats");
    let n = N as u64;
    let duet_test = Variant::new("duet test -j 2", n, || {
        timed(|| succeeds(Command::new(duet).args(["test", "-j", "2"]).arg(&scripts.0)))
    });
    let mut variants = vec![
        Variant::new("floor: the sessions from Rust, one at a time", n, || {
            timed(|| (0..N).for_each(|_| floor_once()))
        }),
        Variant::new("floor: the sessions from Rust, two at a time", n, || {
            timed(|| {
                std::thread::scope(|s| {
                    for half in 0..2 {
                        s.spawn(move || (half..N).step_by(2).for_each(|_| floor_once()));
                    }
                })
            })
        }),
        Variant::new("duet test -j 1", n, || {
            timed(|| succeeds(Command::new(duet).args(["test", "-j", "1"]).arg(&scripts.0)))
        }),
        match cram {
            // Compared with cram, the runner it replaces.
            Some(_) => duet_test.against(CRAM).target(CRAM_TARGET),
            None => duet_test.against(1),
        },
    ];
    match &cram {
        Some(cram) => variants.push(Variant::new("cram", n, move || {
            timed(|| {
                succeeds(
                    Command::new(cram)
                        .args(["-q", "--shell=/bin/sh"])
                        .arg(&cram_dir.0)
                        .current_dir(&cram_dir.0),
                )
            })
        })),
        None => notes.push(
            "No cram row: cram is not installed (`make bench` installs it into target/bench-venv)."
                .into(),
        ),
    }
    match &bats {
        Some(bats) => variants.push(Variant::new("bats", n, move || {
            timed(|| succeeds(Command::new(bats).arg(&bats_file)))
        })),
        None => notes.push("No bats row: bats is not installed (Debian package `bats`).".into()),
    }
    let samples = compare(0, 3, &mut variants);
    drop(variants);
    let case = format!("{N} tiny tests through a test runner (per test)");
    let found = rows(&case, Unit::Time, &samples, 0);
    for (i, row) in found.iter().enumerate().skip(2) {
        // `-j 2` against the floor two at a time; the others run one
        // test at a time.
        let floor = &found[usize::from(i == 3)];
        notes.push(format!(
            "{}: {:.2} ms per test, of which {:.2} ms is the runner's overhead over the floor ({}).",
            row.variant,
            row.median * 1e3,
            (row.median - floor.median) * 1e3,
            floor.variant.trim_start_matches("floor: ")
        ));
    }
    table.extend(found);

    // Linearity: the same script, 1,000 and 2,000 of them.
    let thousand = duet_suite(1000);
    let two_thousand = duet_suite(2000);
    let mut variants = vec![
        Variant::new("duet test -j 2, 1,000 scripts (total)", 1, || {
            timed(|| {
                succeeds(
                    Command::new(duet)
                        .args(["test", "-j", "2"])
                        .arg(&thousand.0),
                )
            })
        }),
        Variant::new("duet test -j 2, 2,000 scripts (total)", 1, || {
            timed(|| {
                succeeds(
                    Command::new(duet)
                        .args(["test", "-j", "2"])
                        .arg(&two_thousand.0),
                )
            })
        })
        .target(LINEAR_TARGET),
    ];
    let samples = compare(1, 7, &mut variants);
    table.extend(rows("linearity of duet test", Unit::Time, &samples, 0));
    (table, notes)
}
