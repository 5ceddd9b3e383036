//! Remote programs and shell sessions.
//!
//! 1. spawn + `ask` + end of the fixture in echo mode through ssh to
//!    127.0.0.1 (the bench starts its own sshd, like the tests): the first
//!    spawn to a host (a new connection: TCP, key exchange, the master
//!    forked) vs a later one on the multiplexed connection, both vs the
//!    same cycle locally.
//! 2. `Shell::run("true")` on a local `sh` vs one line through `sh` on
//!    std's pipes (`true; echo done`, read with `BufReader::read_line`):
//!    what the sentinels, `eval` and the stderr bookkeeping cost.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Row, Unit, Variant, compare, rows, timed};
use duet_testkit::sshd::{HOST, sshd};

/// Shell round trips per sample.
const SHELL_TRIPS: u64 = 500;
/// Local and multiplexed spawns per sample.
const SPAWNS: u64 = 10;

/// One cycle: spawn the fixture in echo mode, one `ask`, end of input, wait.
fn cycle(mut cmd: duet::Command) {
    let mut child = cmd.timeout(Duration::from_secs(30)).spawn().expect("spawn");
    assert_eq!(child.ask("ping").expect("ask"), "ping");
    child.close_stdin().expect("close stdin");
    assert!(child.wait().expect("wait").success());
}

/// Tells the master connection on `control_path` to exit.
fn close_master(control_path: &str) {
    let mut cmd = std::process::Command::new("ssh");
    cmd.args(["-o", control_path, "-O", "exit"]);
    for opt in sshd().options() {
        cmd.args(["-o", &opt]);
    }
    let _ = cmd
        .arg(HOST)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn ssh_rows(fixture: &Path) -> Vec<Row> {
    let case = "spawn + ask + wait, fixture echo, ssh to 127.0.0.1";
    eprintln!("measuring {case} …");
    let server = sshd();
    let remote = || {
        let mut cmd = server.command(fixture);
        cmd.arg("echo");
        cmd
    };
    // The first spawn of each sample gets a control path no master uses yet.
    let dir: PathBuf = server.dir.join("bench-masters");
    std::fs::create_dir_all(&dir).expect("bench control directory");
    let mut n = 0;
    let first = || {
        n += 1;
        let path = format!("ControlPath={}/{n}-%C", dir.display());
        let mut cmd = remote();
        cmd.ssh_option(&path);
        let took = timed(|| cycle(cmd));
        close_master(&path);
        took
    };
    let mut variants = [
        Variant::new("local", SPAWNS, || {
            timed(|| {
                for _ in 0..SPAWNS {
                    let mut cmd = duet::Command::new(fixture);
                    cmd.arg("echo");
                    cycle(cmd);
                }
            })
        }),
        Variant::new("ssh, later spawn (multiplexed)", SPAWNS, || {
            timed(|| (0..SPAWNS).for_each(|_| cycle(remote())))
        }),
        Variant::new("ssh, first spawn (new connection)", 1, first),
    ];
    let samples = compare(1, 11, &mut variants);
    let mut table = rows(case, Unit::Time, &samples, 0);
    // The ratio the issue asks for: a later spawn against the first.
    table.extend(
        rows(case, Unit::Time, &samples[1..], 1)
            .into_iter()
            .filter(|r| r.reference.is_some()),
    );
    table
}

pub fn shell_rows() -> Vec<Row> {
    let case = "round trip of `true` in a local sh";
    eprintln!("measuring {case} …");
    let mut sh = duet::Shell::spawn(duet::Command::new("sh")).expect("start sh");
    let shell = || {
        timed(|| {
            for _ in 0..SHELL_TRIPS {
                assert_eq!(sh.run("true").expect("run").code, 0);
            }
        })
    };
    let mut raw = std::process::Command::new("sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start sh");
    let mut raw_in = raw.stdin.take().expect("piped");
    let mut raw_out = BufReader::new(raw.stdout.take().expect("piped"));
    let std = || {
        timed(|| {
            let mut line = String::new();
            for _ in 0..SHELL_TRIPS {
                raw_in.write_all(b"true; echo done\n").expect("write");
                line.clear();
                raw_out.read_line(&mut line).expect("read_line");
                assert_eq!(line, "done\n");
            }
        })
    };
    let mut variants = [
        Variant::new("sh on std pipes: `true; echo done`", SHELL_TRIPS, std),
        Variant::new("duet Shell::run(\"true\")", SHELL_TRIPS, shell),
    ];
    let samples = compare(1, 15, &mut variants);
    drop(variants);
    drop(raw_in);
    let _ = raw.wait();
    rows(case, Unit::Time, &samples, 0)
}
