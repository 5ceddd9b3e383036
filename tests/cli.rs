//! The `duet` command line, driven as a real process against the fixture,
//! `bc`, `cat` and `sh`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const DUET: &str = env!("CARGO_BIN_EXE_duet");
const FIXTURE: &str = env!("CARGO_BIN_EXE_duet-fixture");

/// A path under the temp dir that no other test uses; nothing is created.
fn unique_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("duet-cli-{tag}-{}-{n}", std::process::id()))
}

/// A finished `duet` run.
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Fails with a framed report of the run unless it exited with `code`.
    fn expect_code(&self, code: i32) -> &Run {
        if self.code != Some(code) {
            panic!("{}", self.report(&format!("expected exit code {code}")));
        }
        self
    }

    fn expect_stdout(&self, stdout: &str) -> &Run {
        if self.stdout != stdout {
            panic!("{}", self.report(&format!("expected stdout {stdout:?}")));
        }
        self
    }

    fn expect_stderr_has(&self, text: &str) -> &Run {
        if !self.stderr.contains(text) {
            panic!("{}", self.report(&format!("expected stderr to contain {text:?}")));
        }
        self
    }

    fn report(&self, what: &str) -> String {
        format!(
            "\n===== {what}\n----- command\nduet {}\n----- exit code\n{:?}\n----- stdout\n{}\n----- stderr\n{}\n=====\n",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `duet ARGS` with `stdin`, capturing everything.
fn duet_in(args: &[&str], stdin: &[u8]) -> Run {
    let out = duct::cmd(DUET, args)
        .stdin_bytes(stdin.to_vec())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .expect("run duet");
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn duet(args: &[&str]) -> Run {
    duet_in(args, b"")
}

fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

/// `duet ARGS` started, its stdout and stderr readable line by line; the
/// handle (`get_ref()`) gives its pid and kills it.
fn start(args: &[&str]) -> BufReader<duct::ReaderHandle> {
    let handle = duct::cmd(DUET, args)
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
    let out = r.get_ref().try_wait().expect("wait").expect("exited after end of output");
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
    duet_in(&["chat", "--lines", "2", "--", "sh", "-c", twice], b"a\nb\n")
        .expect_code(0)
        .expect_stdout("a\na\nb\nb\n");
}

#[test]
fn chat_until_includes_the_matching_line() {
    let prog = "while read l; do echo \"$l\"; echo more; echo END; done";
    duet_in(&["chat", "--until", "^END$", "--", "sh", "-c", prog], b"x\ny\n")
        .expect_code(0)
        .expect_stdout("x\nmore\nEND\ny\nmore\nEND\n");
}

#[test]
fn chat_quiet_collects_everything_until_silence() {
    duet_in(&["chat", "--quiet", "300ms", "--", FIXTURE, "flood", "3"], b"go\n")
        .expect_code(0)
        .expect_stderr_has("")
        .expect_stdout(&format!(
            "{}go\n",
            (0..3)
                .map(|i| format!("flood line {i:08} ........................................\n"))
                .collect::<String>()
        ));
}

#[test]
fn chat_timeout_exits_124_and_says_what_it_waited_for() {
    duet_in(&["chat", "--timeout", "300ms", "--", FIXTURE, "hold"], b"hello\n")
        .expect_code(124)
        .expect_stderr_has("timed out after 300ms waiting for a reply line to \"hello\"");
}

#[test]
fn chat_ends_with_prog_status_when_prog_quits() {
    duet_in(&["chat", "--", "sh", "-c", "read l; echo bye; exit 5"], b"quit\nnever sent\n")
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
    assert!(top.stdout.contains("Example:"), "{}", top.report("an example"));
    for sub in ["run", "chat", "script", "serve", "ask", "send", "recv", "status", "stop"] {
        let help = duet(&[sub, "--help"]);
        help.expect_code(0);
        assert!(help.stdout.contains("Example: "), "{}", help.report("an example"));
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
        vec!["run", "--transcript", transcript.to_str().unwrap(), "--", FIXTURE, "cat"],
    ] {
        let out = duct::cmd(DUET, &args)
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
        &["run", "--transcript", transcript.to_str().unwrap(), "--", "cat"],
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
        let caps = record.captures(line).unwrap_or_else(|| panic!("bad record {line:?} in\n{text}"));
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
    assert!(run.stdout.contains("stdin=true stdout=true"), "{}", run.report("a tty"));
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
    assert_eq!(code, Some(143), "PROG died of the forwarded TERM; output {rest:?}");
}

#[test]
fn run_forwards_usr1_without_stopping() {
    // `wait` returns as soon as the trapped signal arrives; --group lets the
    // signal end the `sleep` too.
    let prog = "trap 'exit 9' USR1; echo ready; while :; do sleep 10 & wait $!; done";
    let mut live = start(&["run", "--group", "--", "sh", "-c", prog]);
    read_until(&mut live, |l| l == "ready");
    let pid = live.get_ref().pids()[0];
    kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).unwrap();
    let (code, rest) = finish(live);
    assert_eq!(code, Some(9), "output {rest:?}");
}

#[test]
fn run_kills_prog_that_ignores_term_after_grace() {
    let mut live = start(&["run", "--grace", "300ms", "--group", "--", FIXTURE, "ignore-term"]);
    read_until(&mut live, |l| l == "ready");
    let pid = live.get_ref().pids()[0];
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let (code, rest) = finish(live);
    assert_eq!(code, Some(137), "KILL after the grace period; output {rest:?}");
}

#[test]
fn run_restarts_a_crashing_prog_on_failure_up_to_the_limit() {
    let run = duet_in(
        &["run", "--restart", "on-failure", "--max-restarts", "2", "--", FIXTURE, "crash"],
        b"one\n",
    );
    run.expect_code(137);
    assert_eq!(run.stdout.matches("half a rep").count(), 3, "{}", run.report("3 runs"));
}

#[test]
fn run_restart_policies() {
    let count = |restart: &str, code: i32| {
        let prog = format!("echo run; exit {code}");
        let run = duet(&["run", "--restart", restart, "--max-restarts", "2", "--", "sh", "-c", &prog]);
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
    let grandchild: u32 = read_until(&mut live, |l| l.parse::<u32>().is_ok()).parse().unwrap();
    read_until(&mut live, |l| l == "ready");
    let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let duet_pid = live.get_ref().pids()[0];
    assert_eq!(fields[1], duet_pid.to_string(), "the orphan's parent is duet");
    kill(Pid::from_raw(grandchild as i32), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(duet_pid as i32), Signal::SIGTERM).unwrap();
    let (code, rest) = finish(live);
    assert_eq!(code, Some(143), "output {rest:?}");
}

// ---- script ------------------------------------------------------------------

fn script_file(text: &str) -> PathBuf {
    let path = unique_path("script");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn script_success_runs_every_step() {
    let file = script_file(
        "# calc\ntimeout 5s\nsendline 2 + 2\nexpect ^4$\nsend 10 / 2\\n\nexpect-exact 5\nsendline x\nexpect ^ERR\n",
    );
    duet(&["script", file.to_str().unwrap(), "--", FIXTURE, "calc"])
        .expect_code(0)
        .expect_stdout("");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn script_expect_eof_and_exit_status() {
    let file = script_file("expect bye\nexpect-eof\nexit-status 4\n");
    duet(&["script", file.to_str().unwrap(), "--", "sh", "-c", "echo bye; exit 4"]).expect_code(0);
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn script_timeout_names_line_expectation_and_last_output() {
    let file = script_file("sendline 1 + 1\nexpect ^2$\ntimeout 300ms\nsendline 2 + 2\nexpect ^5$\n");
    duet(&["script", file.to_str().unwrap(), "--", FIXTURE, "calc"])
        .expect_code(1)
        .expect_stderr_has(&format!("{}:5: step `expect ^5$` failed: timed out after 300ms", file.display()))
        .expect_stderr_has("expected: output matching \"^5$\"")
        .expect_stderr_has("    | 2\n    | 4");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn script_eof_failure_says_the_program_ended() {
    let file = script_file("expect two\n");
    duet(&["script", file.to_str().unwrap(), "--", "sh", "-c", "echo one"])
        .expect_code(1)
        .expect_stderr_has(":1: step `expect two` failed: the program closed its output")
        .expect_stderr_has("    | one");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn script_wrong_exit_status_fails() {
    let file = script_file("exit-status 0\n");
    duet(&["script", file.to_str().unwrap(), "--", "sh", "-c", "exit 4"])
        .expect_code(1)
        .expect_stderr_has(":1: step `exit-status 0` failed: the program exited with code 4");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn script_expect_exact_and_eof_failures() {
    let file = script_file("timeout 300ms\nexpect-exact [ok]\n");
    duet(&["script", file.to_str().unwrap(), "--", FIXTURE, "hold"])
        .expect_code(1)
        .expect_stderr_has("expected: the text \"[ok]\"")
        .expect_stderr_has("last output: (nothing)");
    let file2 = script_file("timeout 300ms\nexpect-eof\n");
    duet(&["script", file2.to_str().unwrap(), "--", FIXTURE, "hold"])
        .expect_code(1)
        .expect_stderr_has(":2: step `expect-eof` failed: timed out");
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(&file2).unwrap();
}

#[test]
fn script_parse_errors_list_every_line_and_run_nothing() {
    let marker = unique_path("marker");
    let file = script_file("sendline ok\nfrobnicate\nexpect (\nsend\n");
    let prog = format!("touch {}", marker.display());
    duet(&["script", file.to_str().unwrap(), "--", "sh", "-c", &prog])
        .expect_code(1)
        .expect_stderr_has("3 error(s); nothing was run")
        .expect_stderr_has(&format!("{}:line 2: unknown step `frobnicate`", file.display()))
        .expect_stderr_has(":line 3: bad regex")
        .expect_stderr_has(":line 4: `send` needs TEXT");
    assert!(!marker.exists(), "the program must not run");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn script_transcript_records_both_directions() {
    let transcript = unique_path("script.transcript");
    let file = script_file("sendline 6 * 7\nexpect ^42$\n");
    duet(&[
        "script",
        file.to_str().unwrap(),
        "--transcript",
        transcript.to_str().unwrap(),
        "--",
        FIXTURE,
        "calc",
    ])
    .expect_code(0);
    let text = std::fs::read_to_string(&transcript).unwrap();
    assert!(text.contains(r" > 6 * 7\n"), "{text}");
    assert!(text.contains(r" < 42\n"), "{text}");
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(&transcript).unwrap();
}

#[test]
fn script_failure_mentions_the_transcript() {
    let transcript = unique_path("fail.transcript");
    let file = script_file("timeout 200ms\nexpect never\n");
    duet(&[
        "script",
        file.to_str().unwrap(),
        "--transcript",
        transcript.to_str().unwrap(),
        "--",
        FIXTURE,
        "hold",
    ])
    .expect_code(1)
    .expect_stderr_has(&format!("transcript: {}", transcript.display()));
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(&transcript).unwrap();
}
