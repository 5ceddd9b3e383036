//! The command line's round trips: what `duet chat` and
//! `duet serve` + `duet ask` add to a line that goes to PROG and back.
//!
//! 1. one line through `duet chat -- duet-fixture echo` (a long-running
//!    chat fed line by line) vs the same line straight through the fixture's
//!    pipes (std + `BufReader::read_line`).
//! 2. one `duet ask` (a new process per request: spawn, lock, reply FIFO,
//!    request, reply) vs a raw line through the served FIFOs (`DIR/in`,
//!    `DIR/out`, opened once) vs the line straight through the fixture.
//!
//! 3. `duet chat --prompt` (the reply ends at the fixture's `> ` prompt) vs
//!    `duet chat --lines 1`, a round trip each.
//! 4. 1,000 requests through `duet ask DIR -` (one process, one lock) vs
//!    1,000 `duet ask` processes: requests per second.
//!
//! No targets: these rows show what the CLI costs, process start included.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::binaries::duet;
use crate::harness::{Row, Unit, Variant, compare, rows, timed};

/// Round trips per sample through chat and the direct pipes.
const CHAT_TRIPS: u64 = 500;
/// `duet ask` processes per sample.
const ASKS: u64 = 20;
/// Requests per sample of the `ask DIR -` comparison.
const BATCH: u64 = 1000;

/// A child with piped stdin/stdout, and a line reader on its stdout.
fn piped(cmd: &mut Command) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = BufReader::new(child.stdout.take().expect("piped"));
    (child, out)
}

/// `n` round trips of `ping` through a writer and a line reader.
fn trips(n: u64, input: &mut impl Write, output: &mut impl BufRead) {
    let mut line = String::new();
    for _ in 0..n {
        input.write_all(b"ping\n").expect("write");
        input.flush().expect("flush");
        line.clear();
        output.read_line(&mut line).expect("read_line");
        assert_eq!(line, "ping\n");
    }
}

/// The rows of both comparisons.
pub fn rows_for(fixture: &Path) -> Vec<Row> {
    let mut table = chat_rows(fixture);
    table.extend(prompt_rows(fixture));
    table.extend(serve_rows(fixture));
    table.extend(batch_rows(fixture));
    table
}

/// A long-running `duet chat ARGS -- FIXTURE MODE`.
fn chat(
    args: &[&str],
    fixture: &Path,
    mode: &str,
) -> (
    Child,
    std::process::ChildStdin,
    BufReader<std::process::ChildStdout>,
) {
    let (mut child, out) = piped(
        Command::new(duet())
            .arg("chat")
            .args(args)
            .arg("--")
            .arg(fixture)
            .arg(mode),
    );
    let input = child.stdin.take().expect("piped");
    (child, input, out)
}

fn prompt_rows(fixture: &Path) -> Vec<Row> {
    let case = "round trip of one line through `duet chat`: --prompt vs --lines 1";
    eprintln!("measuring {case} …");
    let (mut lines, mut lines_in, mut lines_out) = chat(&["--lines", "1"], fixture, "echo");
    let (mut prompt, mut prompt_in, mut prompt_out) = chat(&["--prompt", "^> "], fixture, "prompt");
    let mut variants = [
        Variant::new("duet chat --lines 1 (fixture echo)", CHAT_TRIPS, || {
            timed(|| trips(CHAT_TRIPS, &mut lines_in, &mut lines_out))
        }),
        Variant::new(
            "duet chat --prompt '^> ' (fixture prompt)",
            CHAT_TRIPS,
            || timed(|| trips(CHAT_TRIPS, &mut prompt_in, &mut prompt_out)),
        ),
    ];
    let samples = compare(1, 11, &mut variants);
    drop(variants);
    drop((lines_in, prompt_in));
    lines.wait().expect("duet chat exits at end of input");
    prompt.wait().expect("duet chat exits at end of input");
    rows(case, Unit::Time, &samples, 0)
}

/// Starts `duet serve --daemon` of the fixture in echo mode in a
/// directory named after `tag`; returns the directory.
fn serve_echo(fixture: &Path, tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("duet-bench-{tag}-{}", std::process::id()));
    let status = Command::new(duet())
        .args(["serve", "--daemon"])
        .arg(&dir)
        .arg("--")
        .arg(fixture)
        .arg("echo")
        .stdout(Stdio::null())
        .status()
        .expect("start duet serve");
    assert!(status.success(), "duet serve --daemon failed");
    dir
}

fn batch_rows(fixture: &Path) -> Vec<Row> {
    let case = "1,000 requests to `duet serve` (fixture echo)";
    eprintln!("measuring {case} …");
    let dir = serve_echo(fixture, "batch");
    let requests: Vec<u8> = (0..BATCH).flat_map(|_| *b"ping\n").collect();
    let expected = requests.clone();
    let one_process = || {
        timed(|| {
            let mut ask = Command::new(duet())
                .arg("ask")
                .arg(&dir)
                .arg("-")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("run duet ask -");
            let mut input = ask.stdin.take().expect("piped");
            input.write_all(&requests).expect("write the requests");
            drop(input);
            let out = ask.wait_with_output().expect("wait for duet ask -");
            assert!(out.stdout == expected, "duet ask - answered {out:?}");
        })
    };
    let processes = || {
        timed(|| {
            for _ in 0..BATCH {
                let out = Command::new(duet())
                    .arg("ask")
                    .arg(&dir)
                    .arg("ping")
                    .output()
                    .expect("run duet ask");
                assert_eq!(out.stdout, b"ping\n", "duet ask: {out:?}");
            }
        })
    };
    let mut variants = [
        Variant::new("1,000 `duet ask` processes", BATCH, processes),
        Variant::new("one `duet ask DIR -`", BATCH, one_process),
    ];
    let samples = compare(1, 5, &mut variants);
    drop(variants);
    let stopped = Command::new(duet())
        .arg("stop")
        .arg(&dir)
        .status()
        .expect("run duet stop");
    assert!(stopped.success(), "duet stop failed");
    rows(case, Unit::PerSecond, &samples, 0)
}

fn chat_rows(fixture: &Path) -> Vec<Row> {
    let case = "round trip of one line through `duet chat` (fixture echo)";
    eprintln!("measuring {case} …");
    let (mut direct, mut direct_out) = piped(Command::new(fixture).arg("echo"));
    let mut direct_in = direct.stdin.take().expect("piped");
    let (mut chat, mut chat_out) = piped(
        Command::new(duet())
            .args(["chat", "--"])
            .arg(fixture)
            .arg("echo"),
    );
    let mut chat_in = chat.stdin.take().expect("piped");
    let mut variants = [
        Variant::new("fixture directly (std pipes)", CHAT_TRIPS, || {
            timed(|| trips(CHAT_TRIPS, &mut direct_in, &mut direct_out))
        }),
        Variant::new("duet chat", CHAT_TRIPS, || {
            timed(|| trips(CHAT_TRIPS, &mut chat_in, &mut chat_out))
        }),
    ];
    let samples = compare(1, 11, &mut variants);
    drop(variants);
    drop((direct_in, chat_in));
    direct.wait().expect("the fixture exits at end of input");
    chat.wait().expect("duet chat exits at end of input");
    rows(case, Unit::Time, &samples, 0)
}

fn serve_rows(fixture: &Path) -> Vec<Row> {
    let case = "round trip of one line through `duet serve` (fixture echo)";
    eprintln!("measuring {case} …");
    let dir = serve_echo(fixture, "serve");

    let (mut direct, mut direct_out) = piped(Command::new(fixture).arg("echo"));
    let mut direct_in = direct.stdin.take().expect("piped");
    let mut fifo_in = OpenOptions::new()
        .write(true)
        .open(dir.join("in"))
        .expect("open DIR/in");
    let mut fifo_out = BufReader::new(File::open(dir.join("out")).expect("open DIR/out"));
    let ask = || {
        timed(|| {
            for _ in 0..ASKS {
                let out = Command::new(duet())
                    .arg("ask")
                    .arg(&dir)
                    .arg("ping")
                    .output()
                    .expect("run duet ask");
                assert_eq!(out.stdout, b"ping\n", "duet ask: {out:?}");
            }
        })
    };
    let mut variants = [
        Variant::new("fixture directly (std pipes)", ASKS, || {
            timed(|| trips(ASKS, &mut direct_in, &mut direct_out))
        }),
        Variant::new("raw line via DIR/in and DIR/out", ASKS, || {
            timed(|| trips(ASKS, &mut fifo_in, &mut fifo_out))
        }),
        Variant::new("duet ask (a process per request)", ASKS, ask),
    ];
    let samples = compare(1, 11, &mut variants);
    drop(variants);
    drop((direct_in, fifo_in, fifo_out));
    direct.wait().expect("the fixture exits at end of input");
    let stopped = Command::new(duet())
        .arg("stop")
        .arg(&dir)
        .status()
        .expect("run duet stop");
    assert!(stopped.success(), "duet stop failed");
    rows(case, Unit::Time, &samples, 0)
}
