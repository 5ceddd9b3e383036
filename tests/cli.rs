//! The `duet` command line, driven as a real process against the fixture,
//! `bc`, `cat`, `sh`, `python3` on a pty, `gdb --interpreter=mi2`, under
//! `strace` and as PID 1 of a PID namespace (`unshare`). Topics that grew
//! have modules of their own in `cli/`, sharing the helpers here.

mod chat;
mod messages;
mod readiness;
mod serving;
mod supervision;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub(crate) use crate::util::{Run, duet, duet_bin, duet_in};
const FIXTURE: &str = env!("CARGO_BIN_EXE_duet-fixture");

/// A path under the temp dir that no other test uses; nothing is created.
fn unique_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("duet-cli-{tag}-{}-{n}", std::process::id()))
}

/// The same for a python3 REPL kept plain: no startup file, its own
/// buffering, a dumb terminal (no escape sequences from readline).
fn duet_python(args: &[&str], stdin: &[u8]) -> Run {
    let cmd = duct::cmd(duet_bin(), args)
        .env_remove("PYTHONSTARTUP")
        .env_remove("PYTHONUNBUFFERED")
        .env("TERM", "dumb")
        .stdin_bytes(stdin.to_vec());
    Run::of(args, cmd)
}

/// True while `pid` runs (a zombie waiting for init counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// `duet ARGS` started, its stdout and stderr readable line by line; the
/// handle (`get_ref()`) gives its pid and kills it.
fn start(args: &[&str]) -> BufReader<duct::ReaderHandle> {
    let handle = duct::cmd(duet_bin(), args)
        .stdin_null()
        .stderr_to_stdout()
        .unchecked()
        .reader()
        .expect("start duet");
    BufReader::new(handle)
}

/// Reads lines until one satisfies `want`; panics when the output ends first.
fn read_until(r: &mut impl BufRead, want: impl Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).expect("read duet's output") == 0 {
            panic!("output ended before the expected line; got:\n{seen}");
        }
        seen.push_str(&line);
        if want(line.trim_end()) {
            return line.trim_end().to_string();
        }
    }
}

/// Reads the rest of the output and returns it with the exit code.
fn finish(mut r: BufReader<duct::ReaderHandle>) -> (Option<i32>, String) {
    let mut rest = String::new();
    r.read_to_string(&mut rest).expect("read the rest");
    let out = r
        .get_ref()
        .try_wait()
        .expect("wait")
        .expect("exited after end of output");
    (out.status.code(), rest)
}

// ---- chat ------------------------------------------------------------------

#[test]
fn chat_with_bc_prints_each_answer() {
    duet_in(&["chat", "--", "bc", "-q"], b"2+2\n3*3\n")
        .expect_code(0)
        .expect_stdout("4\n9\n");
}

#[test]
fn chat_reads_n_lines_per_request() {
    let twice = "while read l; do echo \"$l\"; echo \"$l\"; done";
    duet_in(
        &["chat", "--lines", "2", "--", "sh", "-c", twice],
        b"a\nb\n",
    )
    .expect_code(0)
    .expect_stdout("a\na\nb\nb\n");
}

#[test]
fn chat_until_includes_the_matching_line() {
    let prog = "while read l; do echo \"$l\"; echo more; echo END; done";
    duet_in(
        &["chat", "--until", "^END$", "--", "sh", "-c", prog],
        b"x\ny\n",
    )
    .expect_code(0)
    .expect_stdout("x\nmore\nEND\ny\nmore\nEND\n");
}

#[test]
fn chat_quiet_collects_everything_until_silence() {
    // One write of three lines, so the test does not depend on timing.
    let prog = "while read l; do printf '%s\\nmore\\nEND\\n' \"$l\"; done";
    duet_in(
        &["chat", "--quiet", "300ms", "--", "sh", "-c", prog],
        b"a\nb\n",
    )
    .expect_code(0)
    .expect_stdout("a\nmore\nEND\nb\nmore\nEND\n");
}

#[test]
fn chat_copies_lines_that_are_not_utf8() {
    let out = duct::cmd(duet_bin(), ["chat", "--", FIXTURE, "cat"])
        .stdin_bytes(b"caf\xe9\nok\n".to_vec())
        .stdout_capture()
        .run()
        .unwrap();
    assert_eq!(out.stdout, b"caf\xe9\nok\n");
}

#[test]
fn chat_timeout_exits_124_and_says_what_it_waited_for() {
    duet_in(
        &["chat", "--timeout", "300ms", "--", FIXTURE, "hold"],
        b"hello\n",
    )
    .expect_code(124)
    .expect_stderr_has("timed out after 300ms waiting for a reply line to \"hello\"");
}

#[test]
fn chat_ends_with_prog_status_when_prog_quits() {
    duet_in(
        &["chat", "--", "sh", "-c", "read l; echo bye; exit 5"],
        b"quit\nnever sent\n",
    )
    .expect_code(5)
    .expect_stdout("bye\n");
}

#[test]
fn chat_options_are_exclusive_and_checked() {
    duet(&["chat", "--lines", "2", "--quiet", "1s", "--", "cat"]).expect_code(2);
    duet(&["chat", "--lines", "0", "--", "cat"]).expect_code(2);
    duet(&["chat", "--until", "(", "--", "cat"])
        .expect_code(2)
        .expect_stderr_has("bad regex");
    duet(&["chat", "--timeout", "5 parsecs", "--", "cat"])
        .expect_code(2)
        .expect_stderr_has("unknown unit");
}

// ---- run: exit codes ---------------------------------------------------------

#[test]
fn run_exits_with_prog_code() {
    duet(&["run", "--", "sh", "-c", "exit 7"]).expect_code(7);
    duet(&["run", "--", FIXTURE, "exit", "0"]).expect_code(0);
}

#[test]
fn run_exits_128_plus_signal() {
    duet(&["run", "--", FIXTURE, "signal", "9"]).expect_code(137);
    duet(&["run", "--", FIXTURE, "signal", "15"]).expect_code(143);
}

#[test]
fn missing_program_exits_127_and_unrunnable_126() {
    duet(&["run", "--", "duet-no-such-program"])
        .expect_code(127)
        .expect_stderr_has("duet-no-such-program");
    let file = unique_path("noexec");
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    duet(&["run", "--", file.to_str().unwrap()])
        .expect_code(126)
        .expect_stderr_has("executable");
    duet(&["chat", "--", "duet-no-such-program"]).expect_code(127);
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn usage_errors_exit_2() {
    duet(&["run"]).expect_code(2);
    duet(&["run", "cat"]).expect_code(2);
    duet(&["frobnicate"]).expect_code(2);
    duet(&["run", "--restart", "sometimes", "--", "true"])
        .expect_code(2)
        .expect_stderr_has("on-failure");
}

#[test]
fn every_help_has_an_example() {
    let top = duet(&["--help"]);
    top.expect_code(0).expect_stdout(&top.stdout);
    assert!(
        top.stdout.contains("Example:"),
        "{}",
        top.report("an example")
    );
    for sub in [
        "run", "chat", "script", "serve", "ask", "send", "recv", "status", "stop", "test", "record",
    ] {
        let help = duet(&[sub, "--help"]);
        help.expect_code(0);
        assert!(
            help.stdout.contains(&format!("duet {sub} ")) && help.stdout.contains("Example"),
            "{}",
            help.report("an example")
        );
    }
}

// ---- run: byte-exact I/O, transcript, pty --------------------------------------

fn binary_input() -> Vec<u8> {
    (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn run_passes_bytes_exactly_with_and_without_pumping() {
    let input = binary_input();
    let transcript = unique_path("exact.transcript");
    for args in [
        vec!["run", "--", FIXTURE, "cat"],
        vec![
            "run",
            "--transcript",
            transcript.to_str().unwrap(),
            "--",
            FIXTURE,
            "cat",
        ],
    ] {
        let out = duct::cmd(duet_bin(), &args)
            .stdin_bytes(input.clone())
            .stdout_capture()
            .run()
            .expect("run duet");
        assert!(out.stdout == input, "duet {args:?} changed the bytes");
    }
    std::fs::remove_file(&transcript).unwrap();
}

#[test]
fn run_transcript_tags_direction_and_time() {
    let transcript = unique_path("format.transcript");
    duet_in(
        &[
            "run",
            "--transcript",
            transcript.to_str().unwrap(),
            "--",
            "cat",
        ],
        b"hello\tworld\nsecond\n",
    )
    .expect_code(0)
    .expect_stdout("hello\tworld\nsecond\n");
    let text = std::fs::read_to_string(&transcript).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# duet transcript: cat", "{text}");
    let record = regex::Regex::new(r"^ *\d+\.\d{3} ([<>#]) (.*)$").unwrap();
    let mut sent = Vec::new();
    let mut received = Vec::new();
    for line in &lines[1..] {
        let caps = record
            .captures(line)
            .unwrap_or_else(|| panic!("bad record {line:?} in\n{text}"));
        match &caps[1] {
            ">" => sent.push(caps[2].to_string()),
            "<" => received.push(caps[2].to_string()),
            _ => {}
        }
    }
    assert_eq!(sent.concat(), r"hello\tworld\nsecond\n", "{text}");
    assert_eq!(received.concat(), r"hello\tworld\nsecond\n", "{text}");
    std::fs::remove_file(&transcript).unwrap();
}

#[test]
fn run_pty_puts_prog_on_a_terminal() {
    let run = duet(&["run", "--pty", "--", FIXTURE, "tty"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("stdin=true stdout=true"),
        "{}",
        run.report("a tty")
    );
}

// ---- run: signals and supervision ----------------------------------------------

#[test]
fn run_forwards_term_and_exits_with_prog_status() {
    let prog = format!("echo ready; exec {FIXTURE} hold");
    let mut live = start(&["run", "--", "sh", "-c", &prog]);
    read_until(&mut live, |l| l == "ready");
    let pid = live.get_ref().pids()[0];
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let (code, rest) = finish(live);
    assert_eq!(
        code,
        Some(143),
        "PROG died of the forwarded TERM; output {rest:?}"
    );
}

#[test]
fn run_forwards_usr1_and_hup() {
    for (sig, code) in [(Signal::SIGUSR1, 138), (Signal::SIGHUP, 129)] {
        let prog = format!("echo ready; exec {FIXTURE} hold");
        let mut live = start(&["run", "--", "sh", "-c", &prog]);
        read_until(&mut live, |l| l == "ready");
        let pid = live.get_ref().pids()[0];
        kill(Pid::from_raw(pid as i32), sig).unwrap();
        let (status, rest) = finish(live);
        assert_eq!(
            status,
            Some(code),
            "PROG died of the forwarded {sig}; output {rest:?}"
        );
    }
}

#[test]
fn run_kills_prog_that_ignores_term_after_grace() {
    let mut live = start(&[
        "run",
        "--grace",
        "300ms",
        "--group",
        "--",
        FIXTURE,
        "ignore-term",
    ]);
    read_until(&mut live, |l| l == "ready");
    let pid = live.get_ref().pids()[0];
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let (code, rest) = finish(live);
    assert_eq!(
        code,
        Some(137),
        "KILL after the grace period; output {rest:?}"
    );
}

#[test]
fn run_restarts_a_crashing_prog_on_failure_up_to_the_limit() {
    let run = duet_in(
        &[
            "run",
            "--restart",
            "on-failure",
            "--max-restarts",
            "2",
            "--",
            FIXTURE,
            "crash",
        ],
        b"one\n",
    );
    run.expect_code(137);
    assert_eq!(
        run.stdout.matches("half a rep").count(),
        3,
        "{}",
        run.report("3 runs")
    );
}

#[test]
fn run_restarts_with_pumped_io() {
    let transcript = unique_path("restart.transcript");
    let prog = "read l; echo \"got $l\"; exit 3";
    let run = duet_in(
        &[
            "run",
            "--transcript",
            transcript.to_str().unwrap(),
            "--restart",
            "on-failure",
            "--max-restarts",
            "1",
            "--",
            "sh",
            "-c",
            prog,
        ],
        b"a\n",
    );
    run.expect_code(3);
    assert_eq!(
        run.stdout.matches("got").count(),
        2,
        "{}",
        run.report("2 runs")
    );
    assert!(
        run.stdout.starts_with("got a\n"),
        "{}",
        run.report("the input")
    );
    std::fs::remove_file(&transcript).unwrap();
}

#[test]
fn run_restart_policies() {
    let count = |restart: &str, code: i32| {
        let prog = format!("echo run; exit {code}");
        let run = duet(&[
            "run",
            "--restart",
            restart,
            "--max-restarts",
            "2",
            "--",
            "sh",
            "-c",
            &prog,
        ]);
        run.expect_code(code);
        run.stdout.matches("run").count()
    };
    assert_eq!(count("never", 3), 1);
    assert_eq!(count("on-failure", 0), 1);
    assert_eq!(count("on-failure", 3), 3);
    assert_eq!(count("always", 0), 3);
}

#[test]
fn run_subreaper_adopts_orphaned_grandchildren() {
    // The fixture starts a grandchild and exits; PROG (sh) lives on. With
    // --subreaper the orphan is re-parented to duet, which reaps it.
    let prog = format!("{FIXTURE} grandchild; echo ready; exec {FIXTURE} hold");
    let mut live = start(&["run", "--subreaper", "--", "sh", "-c", &prog]);
    let grandchild: u32 = read_until(&mut live, |l| l.parse::<u32>().is_ok())
        .parse()
        .unwrap();
    read_until(&mut live, |l| l == "ready");
    let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let duet_pid = live.get_ref().pids()[0];
    assert_eq!(
        fields[1],
        duet_pid.to_string(),
        "the orphan's parent is duet"
    );
    kill(Pid::from_raw(grandchild as i32), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(duet_pid as i32), Signal::SIGTERM).unwrap();
    let (code, rest) = finish(live);
    assert_eq!(code, Some(143), "output {rest:?}");
}

// ---- serve and its clients -----------------------------------------------------

/// `duet serve --daemon DIR -- PROG`, checked to be ready.
fn serve_daemon(dir: &Path, prog: &[&str]) {
    let mut args = vec!["serve", "--daemon", dir.to_str().unwrap()];
    args.extend_from_slice(&["--"]);
    args.extend_from_slice(prog);
    duet(&args)
        .expect_code(0)
        .expect_stdout(&format!("{}\n", dir.display()));
}

/// The pid of PROG as `duet status` reports it.
fn served_child(dir: &Path) -> u32 {
    let status = duet(&["status", dir.to_str().unwrap()]);
    status.expect_code(0).expect_stderr_has("");
    let line = status
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("child: "))
        .unwrap_or_else(|| panic!("{}", status.report("a child line")));
    line.parse().unwrap()
}

fn stop(dir: &Path) {
    duet(&["stop", dir.to_str().unwrap(), "--grace", "2s"]).expect_code(0);
}

#[test]
fn serve_daemon_is_ready_when_it_returns_and_stop_cleans_everything() {
    let dir = unique_path("serve");
    serve_daemon(&dir, &["bc", "-q"]);
    let d = dir.to_str().unwrap();
    for name in ["in", "out"] {
        let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
        assert!(meta.file_type().is_fifo(), "{name} is a FIFO");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    duet(&["ask", d, "2+2"]).expect_code(0).expect_stdout("4\n");
    duet(&["ask", d, "3*3"]).expect_code(0).expect_stdout("9\n");
    let status = duet(&["status", d]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("running: yes"),
        "{}",
        status.report("running")
    );
    assert!(
        status.stdout.contains("restarts: 0"),
        "{}",
        status.report("restarts")
    );
    let child = served_child(&dir);
    let serve_pid: u32 = std::fs::read_to_string(dir.join("pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    stop(&dir);
    assert!(!dir.exists(), "stop removes the directory duet created");
    assert!(!alive(child), "PROG is gone");
    assert!(!alive(serve_pid), "serve is gone");
    duet(&["status", d])
        .expect_code(1)
        .expect_stderr_has("does not exist");
}

#[test]
fn twenty_concurrent_asks_each_get_their_own_answer_100_times_in_a_row() {
    let dir = unique_path("concurrent");
    serve_daemon(&dir, &[FIXTURE, "calc"]);
    let d = dir.to_str().unwrap().to_string();
    for round in 0..100 {
        let clients: Vec<_> = (0..20)
            .map(|i| {
                let d = d.clone();
                std::thread::spawn(move || {
                    let n = round * 100 + i;
                    let run = duet(&["ask", &d, &format!("{n} * 7")]);
                    run.expect_code(0).expect_stdout(&format!("{}\n", n * 7));
                })
            })
            .collect();
        for client in clients {
            client.join().expect("a client got someone else's answer");
        }
    }
    stop(&dir);
    assert!(!dir.exists());
}

#[test]
fn a_client_killed_mid_request_does_not_hand_its_reply_to_the_next() {
    let dir = unique_path("killed");
    let d = dir.to_str().unwrap().to_string();
    // serve in the foreground, logging requests, so the test knows when
    // the first request has reached it.
    let mut serve = start(&["-vv", "serve", &d, "--", FIXTURE, "slow", "400"]);
    read_until(&mut serve, |l| l == d);
    let first = duct::cmd(duet_bin(), ["ask", &d, "first"])
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .unwrap();
    read_until(&mut serve, |l| {
        l.contains("serve: request") && l.contains("\"first\"")
    });
    first.kill().unwrap();
    duet(&["ask", &d, "second"])
        .expect_code(0)
        .expect_stdout("second\n");
    duet(&["ask", &d, "third"])
        .expect_code(0)
        .expect_stdout("third\n");
    stop(&dir);
    let (code, _) = finish(serve);
    assert_eq!(code, Some(0), "a stopped serve exits 0");
    assert!(!dir.exists());
}

#[test]
fn plain_shell_tools_can_use_the_fifos() {
    let dir = unique_path("plain");
    serve_daemon(&dir, &[FIXTURE, "calc"]);
    let script = format!(
        "echo '20 + 22' > {d}/in; read answer < {d}/out; echo \"got $answer\"",
        d = dir.display()
    );
    let out = duct::cmd("timeout", ["10", "sh", "-c", &script])
        .read()
        .unwrap();
    assert_eq!(out, "got 42");
    let d = dir.to_str().unwrap();
    duet(&["send", d, "1 + 1", "2 + 2"]).expect_code(0);
    duet(&["recv", d]).expect_code(0).expect_stdout("2\n");
    duet(&["recv", d]).expect_code(0).expect_stdout("4\n");
    duet(&["recv", d, "--timeout", "200ms"])
        .expect_code(124)
        .expect_stderr_has("nothing arrived");
    stop(&dir);
}

#[test]
fn ask_timeout_exits_124_and_the_service_survives() {
    let dir = unique_path("asktimeout");
    serve_daemon(&dir, &[FIXTURE, "slow", "2000"]);
    let d = dir.to_str().unwrap();
    duet(&["ask", d, "late", "--timeout", "200ms"])
        .expect_code(124)
        .expect_stderr_has("timed out after 200ms waiting for a reply line");
    let status = duet(&["status", d]);
    status.expect_code(0);
    stop(&dir);
}

#[test]
fn ask_framing_options_work_through_serve() {
    let dir = unique_path("framing");
    // One write per reply, so --quiet does not depend on timing.
    let prog = "while read l; do printf '%s\\nmore\\nEND\\n' \"$l\"; done";
    serve_daemon(&dir, &["sh", "-c", prog]);
    let d = dir.to_str().unwrap();
    duet(&["ask", d, "a", "--until", "^END$"])
        .expect_code(0)
        .expect_stdout("a\nmore\nEND\n");
    duet(&["ask", d, "b", "--lines", "3"])
        .expect_code(0)
        .expect_stdout("b\nmore\nEND\n");
    duet(&["ask", d, "c", "--quiet", "300ms"])
        .expect_code(0)
        .expect_stdout("c\nmore\nEND\n");
    stop(&dir);
}

#[test]
fn serve_restarts_prog_and_counts_restarts() {
    let dir = unique_path("restart");
    let prog = "while read l; do [ \"$l\" = die ] && exit 3; echo \"$l\"; done";
    let d = dir.to_str().unwrap();
    duet(&[
        "serve",
        "--daemon",
        d,
        "--restart",
        "on-failure",
        "--",
        "sh",
        "-c",
        prog,
    ])
    .expect_code(0);
    let first = served_child(&dir);
    duet(&["ask", d, "die"])
        .expect_code(1)
        .expect_stderr_has("the program exited with code 3 before the reply was complete");
    duet(&["ask", d, "hello"])
        .expect_code(0)
        .expect_stdout("hello\n");
    let status = duet(&["status", d]);
    assert!(
        status.stdout.contains("restarts: 1"),
        "{}",
        status.report("one restart")
    );
    assert_ne!(served_child(&dir), first);
    stop(&dir);
    assert!(!dir.exists());
}

#[test]
fn serve_ends_and_cleans_up_when_prog_exits_without_restart() {
    let dir = unique_path("ends");
    let d = dir.to_str().unwrap().to_string();
    let mut serve = start(&["serve", &d, "--", "sh", "-c", "read l; exit 6"]);
    read_until(&mut serve, |l| l == d);
    duet(&["send", &d, "bye"]).expect_code(0);
    let (code, rest) = finish(serve);
    assert_eq!(
        code,
        Some(6),
        "serve exits with PROG's status; output {rest:?}"
    );
    assert!(!dir.exists());
}

#[test]
fn stop_kills_a_prog_that_ignores_term() {
    let dir = unique_path("stubborn");
    serve_daemon(&dir, &[FIXTURE, "ignore-term"]);
    let child = served_child(&dir);
    duet(&["stop", dir.to_str().unwrap(), "--grace", "300ms"]).expect_code(0);
    assert!(!alive(child));
    assert!(!dir.exists());
}

#[test]
fn a_second_serve_on_the_same_dir_is_refused() {
    let dir = unique_path("twice");
    serve_daemon(&dir, &["cat"]);
    duet(&["serve", dir.to_str().unwrap(), "--", "cat"])
        .expect_code(125)
        .expect_stderr_has("is already served");
    stop(&dir);
}

#[test]
fn a_stale_dir_from_a_killed_serve_is_reclaimed() {
    let dir = unique_path("stale");
    let d = dir.to_str().unwrap().to_string();
    let mut serve = start(&["serve", &d, "--", FIXTURE, "calc"]);
    read_until(&mut serve, |l| l == d);
    let pid = serve.get_ref().pids()[0];
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let (code, _) = finish(serve);
    assert_eq!(code, None, "serve died of SIGKILL");
    assert!(dir.join("in").exists(), "a crashed serve leaves its FIFOs");
    let status = duet(&["status", &d]);
    status.expect_code(1);
    assert!(
        status.stdout.contains("stale"),
        "{}",
        status.report("stale")
    );
    duet(&["ask", &d, "1 + 1", "--timeout", "1s"])
        .expect_code(1)
        .expect_stderr_has("nobody serves");
    serve_daemon(&dir, &[FIXTURE, "calc"]);
    duet(&["ask", &d, "1 + 1"])
        .expect_code(0)
        .expect_stdout("2\n");
    stop(&dir);
    assert!(
        !dir.exists(),
        "the reclaiming serve inherits the right to remove DIR"
    );
}

#[test]
fn stop_on_a_stale_dir_removes_the_leftovers() {
    let dir = unique_path("stalestop");
    let d = dir.to_str().unwrap().to_string();
    let mut serve = start(&["serve", &d, "--", "cat"]);
    read_until(&mut serve, |l| l == d);
    serve.get_ref().kill().unwrap();
    let _ = finish(serve);
    duet(&["stop", &d])
        .expect_code(0)
        .expect_stderr_has("was not running");
    assert!(!dir.exists());
}

#[test]
fn serve_refuses_an_unsafe_dir() {
    let open = unique_path("worldwritable");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    duet(&["serve", open.to_str().unwrap(), "--", "cat"])
        .expect_code(125)
        .expect_stderr_has("writable by group or others");
    std::fs::remove_dir(&open).unwrap();

    let target = unique_path("target");
    std::fs::create_dir(&target).unwrap();
    let link = unique_path("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    duet(&["serve", link.to_str().unwrap(), "--", "cat"])
        .expect_code(125)
        .expect_stderr_has("symlink");
    std::fs::remove_file(&link).unwrap();

    // A regular file or a symlink where a FIFO belongs: refused, untouched.
    let victim = unique_path("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(target.join("in"), "not a fifo").unwrap();
    duet(&["serve", target.to_str().unwrap(), "--", "cat"])
        .expect_code(125)
        .expect_stderr_has("regular file");
    assert_eq!(
        std::fs::read_to_string(target.join("in")).unwrap(),
        "not a fifo"
    );
    std::fs::remove_file(target.join("in")).unwrap();
    std::os::unix::fs::symlink(&victim, target.join("out")).unwrap();
    duet(&["serve", target.to_str().unwrap(), "--", "cat"])
        .expect_code(125)
        .expect_stderr_has("symlink");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        !target.join("in").exists(),
        "a refused serve removes the FIFOs it made"
    );
    std::fs::remove_file(target.join("out")).unwrap();
    let _ = std::fs::remove_file(target.join("log"));
    let _ = std::fs::remove_file(target.join("lock"));
    std::fs::remove_dir(&target).unwrap();
    std::fs::remove_file(&victim).unwrap();
}

#[test]
fn serve_daemon_reports_a_missing_program() {
    let dir = unique_path("missing");
    duet(&[
        "serve",
        "--daemon",
        dir.to_str().unwrap(),
        "--",
        "duet-no-such-program",
    ])
    .expect_code(127)
    .expect_stderr_has("duet-no-such-program");
    assert!(!dir.exists(), "nothing is left behind");
}

#[test]
fn clients_of_a_missing_dir_say_so() {
    let dir = unique_path("nowhere");
    let d = dir.to_str().unwrap();
    for args in [
        vec!["ask", d, "x"],
        vec!["send", d, "x"],
        vec!["recv", d],
        vec!["status", d],
        vec!["stop", d],
    ] {
        duet(&args)
            .expect_code(1)
            .expect_stderr_has("does not exist");
    }
}

// ---- pseudo-terminals ----------------------------------------------------------

#[test]
fn chat_pty_gets_answers_from_a_program_that_buffers_on_pipes() {
    duet_in(&["chat", "--pty", "--", FIXTURE, "no-flush"], b"one\ntwo\n")
        .expect_code(0)
        .expect_stdout("one\ntwo\n");
}

#[test]
fn serve_pty_gets_answers_from_a_program_that_buffers_on_pipes() {
    let dir = unique_path("pty");
    let d = dir.to_str().unwrap();
    duet(&["serve", "--daemon", "--pty", d, "--", FIXTURE, "no-flush"]).expect_code(0);
    duet(&["ask", d, "hello"])
        .expect_code(0)
        .expect_stdout("hello\n");
    stop(&dir);
    assert!(!dir.exists());
}

// ---- stdout closed early -------------------------------------------------------

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    let transcript = unique_path("epipe.transcript");
    let script = format!(
        "exec 3>&1; {duet} run --transcript {t} -- {FIXTURE} flood 100000 </dev/null 2>&3 | head -n1; echo \"duet=${{PIPESTATUS[0]}}\"",
        duet = duet_bin(),
        t = transcript.display()
    );
    let out = duct::cmd("bash", ["-c", &script]).read().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one line through head, then duet's code, nothing on stderr: {out:?}"
    );
    assert!(lines[0].starts_with("flood line 00000000"), "{out:?}");
    assert_eq!(lines[1], "duet=0", "{out:?}");
    std::fs::remove_file(&transcript).unwrap();
}

#[test]
fn serve_in_an_existing_dir_leaves_the_dir_and_the_users_files() {
    let dir = unique_path("existing");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("notes"), "mine").unwrap();
    serve_daemon(&dir, &["cat"]);
    duet(&["ask", dir.to_str().unwrap(), "echo"])
        .expect_code(0)
        .expect_stdout("echo\n");
    stop(&dir);
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["log", "notes"],
        "only the user's file and serve's log remain"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serve_and_stop_never_take_over_files_they_did_not_make() {
    let dir = unique_path("foreign");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("lock"), "mine").unwrap();
    std::fs::write(dir.join("pid"), "not a pid file").unwrap();
    duet(&["serve", dir.to_str().unwrap(), "--", "cat"])
        .expect_code(125)
        .expect_stderr_has("that no duet serve made");
    duet(&["stop", dir.to_str().unwrap()])
        .expect_code(1)
        .expect_stderr_has("nothing removed");
    assert_eq!(std::fs::read_to_string(dir.join("lock")).unwrap(), "mine");
    assert_eq!(
        std::fs::read_to_string(dir.join("pid")).unwrap(),
        "not a pid file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_pty_follows_the_size_of_duets_terminal() {
    // duet itself on a 30x100 pty (the library's), PROG on duet's pty.
    let prog = "import os, signal, sys\n\
                def size():\n    s = os.get_terminal_size(0)\n    return f'{s.lines} {s.columns}'\n\
                signal.signal(signal.SIGWINCH, lambda *a: (print('resized', size(), flush=True), sys.exit(0)))\n\
                print('ready', size(), flush=True)\n\
                signal.pause()\n";
    let mut duet = duet::Command::new(duet_bin())
        .args(["run", "--pty", "--", "python3", "-c", prog])
        .pty(true)
        .pty_size(30, 100)
        .timeout(std::time::Duration::from_secs(20))
        .spawn()
        .unwrap();
    let ready = duet
        .expect(duet::Pattern::regex(r"ready \d+ \d+").unwrap())
        .unwrap();
    assert_eq!(ready.as_str(), "ready 30 100");
    duet.set_window_size(40, 120).unwrap();
    let resized = duet
        .expect(duet::Pattern::regex(r"resized \d+ \d+").unwrap())
        .unwrap();
    assert_eq!(resized.as_str(), "resized 40 120");
    assert_eq!(duet.wait().unwrap().code(), Some(0));
}

#[test]
fn serve_stops_cleanly_on_term_int_and_hup() {
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let dir = unique_path("signalled");
        let d = dir.to_str().unwrap().to_string();
        let mut serve = start(&["serve", &d, "--", FIXTURE, "calc"]);
        read_until(&mut serve, |l| l == d);
        let child = served_child(&dir);
        let pid = serve.get_ref().pids()[0];
        kill(Pid::from_raw(pid as i32), sig).unwrap();
        let (code, rest) = finish(serve);
        assert_eq!(
            code,
            Some(0),
            "{sig}: a stopped serve exits 0; output {rest:?}"
        );
        assert!(!dir.exists(), "{sig}: DIR removed");
        assert!(!alive(child), "{sig}: PROG stopped");
    }
}

#[test]
fn run_group_gives_prog_the_terminal() {
    // duet on a terminal (the library's pty); with --group PROG leads its own
    // group, which must become the foreground one for PROG to read.
    let mut duet = duet::Command::new(duet_bin())
        .args([
            "run",
            "--group",
            "--",
            "sh",
            "-c",
            "read x; echo \"got $x\"",
        ])
        .pty(true)
        .timeout(std::time::Duration::from_secs(20))
        .spawn()
        .unwrap();
    duet.send_line("hi").unwrap();
    duet.expect(duet::Pattern::exact("got hi")).unwrap();
    assert_eq!(duet.wait().unwrap().code(), Some(0));
}

// ---- faults and hostile input --------------------------------------------------

#[test]
fn serve_stops_prog_and_ends_when_its_dir_is_deleted() {
    let dir = unique_path("deleted");
    let d = dir.to_str().unwrap().to_string();
    let mut serve = start(&["serve", &d, "--", FIXTURE, "calc"]);
    read_until(&mut serve, |l| l == d);
    let child = served_child(&dir);
    duet(&["ask", &d, "1 + 1"])
        .expect_code(0)
        .expect_stdout("2\n");
    std::fs::remove_dir_all(&dir).unwrap();
    let (code, rest) = finish(serve);
    assert_eq!(code, Some(125), "output {rest:?}");
    assert!(rest.contains("removed"), "says why: {rest:?}");
    assert!(!alive(child), "PROG stopped");
}

#[test]
fn serve_refuses_a_dir_owned_by_another_user() {
    // As root, a fresh directory given to `nobody`; otherwise `/`, which
    // belongs to root. Either way the owner is not the user running duet.
    let foreign = if nix::unistd::geteuid().is_root() {
        let dir = unique_path("foreign");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        dir
    } else {
        PathBuf::from("/")
    };
    duet(&["serve", foreign.to_str().unwrap(), "--", "cat"])
        .expect_code(125)
        .expect_stderr_has("owned by");
    assert!(!foreign.join("in").exists(), "nothing was created");
    if foreign != Path::new("/") {
        std::fs::remove_dir(&foreign).unwrap();
    }
}

#[test]
fn an_unwritable_transcript_path_is_a_clear_error_before_prog_runs() {
    let marker = unique_path("never-created");
    let missing = "/nonexistent-duet-dir/transcript";
    duet(&[
        "run",
        "--transcript",
        missing,
        "--",
        "sh",
        "-c",
        &format!("touch {}", marker.display()),
    ])
    .expect_code(125)
    .expect_stderr_has(missing);
    assert!(!marker.exists(), "PROG did not run");
}

#[test]
fn arguments_reach_prog_byte_exact_through_duet_without_a_shell() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let tricky: [&[u8]; 7] = [
        b"with space",
        b"'single' \"double\"",
        b"$HOME `id`",
        b"a;b|c&d",
        b"new\nline",
        b"*",
        b"\xff\xfe",
    ];
    let mut args: Vec<OsString> = ["run", "--", FIXTURE, "args"].map(OsString::from).to_vec();
    args.extend(tricky.iter().map(|a| OsString::from_vec(a.to_vec())));
    let out = duct::cmd(duet_bin(), &args).stdout_capture().run().unwrap();
    let expected: Vec<u8> = tricky.iter().flat_map(|a| [*a, b"\0\n"].concat()).collect();
    assert_eq!(out.stdout, expected);
}

#[test]
fn a_transcript_on_a_full_disk_is_a_clear_error() {
    duet_in(
        &["run", "--transcript", "/dev/full", "--", FIXTURE, "echo"],
        b"hello\n",
    )
    .expect_code(125)
    .expect_stderr_has("No space left on device");
}
