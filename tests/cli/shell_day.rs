//! The shell user's day with real programs: `serve`/`ask` that never wedge,
//! `send` that says whether its line arrived, programs on a pty (sqlite3,
//! lua5.4, units, gp, python3), exact bytes and `--json` replies, a
//! service that outlives its program's end, and messages that teach.

use std::os::unix::fs::PermissionsExt;

use super::{
    FIXTURE, Run, duet, duet_bin, duet_in, duet_python, read_until, serve_daemon, start, stop,
    unique_path,
};

/// `duet ARGS` with `stdin`, under `TERM=xterm` as in a terminal emulator.
fn duet_xterm(args: &[&str], stdin: &[u8]) -> Run {
    let cmd = duct::cmd(duet_bin(), args)
        .env("TERM", "xterm")
        .stdin_bytes(stdin.to_vec());
    Run::of(args, cmd)
}

// ---- 1. one request without a reply wedges nothing ------------------------------

#[test]
fn bc_x_equals_6_times_out_alone_and_x_times_7_is_42() {
    // The README's flow: every later ask used to exit 124 "waiting for its
    // turn", for good.
    let dir = unique_path("wedge-bc");
    serve_daemon(&dir, &["bc", "-q"]);
    let d = dir.to_str().unwrap();
    duet(&["ask", "--timeout", "500ms", d, "x=6", "x*7"])
        .expect_code(124)
        .expect_stderr_has("timed out after 500ms waiting for a reply line");
    duet(&["ask", d, "x*7"])
        .expect_code(0)
        .expect_stdout("42\n");
    // A wrong framing costs its own ask, too.
    duet(&["ask", "--timeout", "500ms", "--lines", "2", d, "2+2"]).expect_code(124);
    duet(&["ask", d, "3*3"]).expect_code(0).expect_stdout("9\n");
    duet(&["status", d])
        .expect_code(0)
        .expect_stdout_has("answering: yes");
    stop(&dir);
}

#[test]
fn python_on_a_pty_left_at_its_continuation_prompt_serves_the_next_ask() {
    // `... ` never matches '^>>> ': the ask times out, and the next one
    // (the empty line that ends the block) is served.
    let dir = unique_path("wedge-py");
    let d = dir.to_str().unwrap();
    duet_python(
        &[
            "serve", "--daemon", d, "--pty", "--prompt", "^>>> ", "--", "python3", "-q",
        ],
        b"",
    )
    .expect_code(0);
    duet(&[
        "ask",
        "--timeout",
        "500ms",
        d,
        "for i in range(2): print(i)",
    ])
    .expect_code(124)
    .expect_stderr_has("waiting for the prompt");
    duet(&["ask", d, ""]).expect_code(0).expect_stdout("0\n1\n");
    duet(&["ask", d, "6*7"])
        .expect_code(0)
        .expect_stdout("42\n");
    stop(&dir);
}

#[test]
fn a_reply_framed_wrong_costs_its_own_ask_and_the_fixture_answers_the_next() {
    let dir = unique_path("wedge-fixture");
    let d = dir.to_str().unwrap();
    // `calc` answers each line with one line: two never come.
    serve_daemon(&dir, &[FIXTURE, "calc"]);
    duet(&["ask", "--timeout", "300ms", "--lines", "2", d, "1 + 1"]).expect_code(124);
    duet(&["ask", d, "6 * 7"])
        .expect_code(0)
        .expect_stdout("42\n");
    stop(&dir);
}

// ---- 2. send says whether its line arrived ---------------------------------------

#[test]
fn send_after_an_unanswered_request_reaches_prog() {
    let dir = unique_path("send-bc");
    serve_daemon(&dir, &["bc", "-q"]);
    let d = dir.to_str().unwrap();
    duet(&["ask", "--timeout", "300ms", d, "y=1"]).expect_code(124);
    duet(&["send", d, "y=3"]).expect_code(0);
    duet(&["ask", d, "y"]).expect_code(0).expect_stdout("3\n");
    stop(&dir);
}

#[test]
fn send_fails_when_prog_does_not_take_its_lines() {
    // `sleep` never reads: 300 KB cannot all be written to its pipe. send
    // used to exit 0 as soon as DIR/in had the bytes.
    let dir = unique_path("send-sleep");
    serve_daemon(&dir, &["sleep", "1000"]);
    let d = dir.to_str().unwrap();
    let line = "x".repeat(100_000);
    duet(&["send", "--timeout", "500ms", d, &line, &line, &line])
        .expect_code(124)
        .expect_stderr_has("the lines were not delivered: timed out after 500ms");
    stop(&dir);
}

// ---- 3, 4. programs on a pty ------------------------------------------------------

#[test]
fn serve_pty_gives_prog_the_terminal_as_stderr_so_a_traceback_is_the_reply() {
    let dir = unique_path("pty-stderr");
    let d = dir.to_str().unwrap();
    duet_python(
        &[
            "serve", "--daemon", d, "--pty", "--prompt", "^>>> ", "--", "python3", "-q",
        ],
        b"",
    )
    .expect_code(0);
    duet(&["ask", d, "1/0"])
        .expect_code(0)
        .expect_stdout_has("ZeroDivisionError: division by zero");
    stop(&dir);
}

#[test]
fn sqlite3_on_a_pty_gets_term_dumb_and_its_prompt_matches() {
    // Under TERM=xterm readline's ESC[?2004h came before every prompt.
    duet_xterm(
        &["chat", "--pty", "--prompt", "^sqlite> ", "--", "sqlite3"],
        b"select 6*7;\nselect 'a' || 'b';\n",
    )
    .expect_code(0)
    .expect_stdout_has("42\nab\n");
}

#[test]
fn lua_and_units_on_a_pty_answer_under_their_prompts() {
    duet_xterm(
        &["chat", "--pty", "--prompt", "^> ", "--", "lua5.4", "-i"],
        b"x = 6\nprint(x * 7)\n",
    )
    .expect_code(0)
    .expect_stdout_has("42\n");
    duet_xterm(
        &[
            "chat",
            "--pty",
            "--prompt",
            "^You (have|want): ",
            "--",
            "units",
        ],
        b"1 inch\ncm\n",
    )
    .expect_code(0)
    .expect_stdout_has("\t* 2.54\n");
}

#[test]
fn serve_sqlite3_on_a_pty_under_term_xterm() {
    let dir = unique_path("pty-sqlite");
    let d = dir.to_str().unwrap();
    duet_xterm(
        &[
            "serve",
            "--daemon",
            d,
            "--pty",
            "--prompt",
            "^sqlite> ",
            "--",
            "sqlite3",
        ],
        b"",
    )
    .expect_code(0);
    duet(&["ask", d, "select 6*7;"])
        .expect_code(0)
        .expect_stdout("42\n");
    stop(&dir);
}

#[test]
fn strip_ansi_takes_gps_colours_out_of_its_replies() {
    // gp colours its prompt and results whatever TERM says.
    duet_xterm(
        &[
            "chat",
            "--pty",
            "--strip-ansi",
            "--prompt",
            r"^\? ",
            "--",
            "gp",
            "-q",
        ],
        b"6*7\n",
    )
    .expect_code(0)
    .expect_stdout_has("42\n");
    let run = duet_xterm(
        &[
            "chat",
            "--pty",
            "--strip-ansi",
            "--prompt",
            r"^\? ",
            "--",
            "gp",
            "-q",
        ],
        b"6*7\n",
    );
    assert!(!run.stdout.contains('\x1b'), "{}", run.report("no escape"));
}

#[test]
fn merge_stderr_sees_a_prompt_and_errors_written_to_stderr() {
    // python3 -i on pipes prompts on stderr, and a traceback goes there too.
    duet_python(
        &[
            "chat",
            "--merge-stderr",
            "--prompt",
            "^>>> ",
            "--",
            "python3",
            "-i",
            "-q",
        ],
        b"6*7\n1/0\n",
    )
    .expect_code(0)
    .expect_stdout_has("42\n")
    .expect_stdout_has("ZeroDivisionError");
}

#[test]
fn env_sets_progs_variables_and_term_on_a_pty_for_run_chat_and_serve() {
    let show = "while read l; do eval echo \"\\$$l\"; done";
    duet_in(
        &["chat", "--env", "GREETING=hi there", "--", "sh", "-c", show],
        b"GREETING\n",
    )
    .expect_code(0)
    .expect_stdout("hi there\n");
    duet_xterm(&["chat", "--pty", "--", "sh", "-c", show], b"TERM\n")
        .expect_code(0)
        .expect_stdout("dumb\n");
    duet_xterm(
        &[
            "chat",
            "--pty",
            "--env",
            "TERM=vt100",
            "--",
            "sh",
            "-c",
            show,
        ],
        b"TERM\n",
    )
    .expect_code(0)
    .expect_stdout("vt100\n");
    duet(&["run", "--env", "A=1=2", "--", "sh", "-c", "echo $A"])
        .expect_code(0)
        .expect_stdout("1=2\n");
    duet(&["run", "--env", "=x", "--", "true"])
        .expect_code(2)
        .expect_stderr_has("is not NAME=VALUE");
    let dir = unique_path("env");
    let d = dir.to_str().unwrap();
    duet(&[
        "serve", "--daemon", d, "--env", "N=7", "--", "sh", "-c", show,
    ])
    .expect_code(0);
    duet(&["ask", d, "N"]).expect_code(0).expect_stdout("7\n");
    stop(&dir);
}

// ---- 5, 8. ask: exact bytes, --json ----------------------------------------------

#[test]
fn ask_passes_bytes_that_are_not_utf8_exactly_both_ways() {
    use std::os::unix::ffi::OsStrExt;
    let dir = unique_path("bytes");
    serve_daemon(&dir, &["cat"]);
    let arg = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let out = duct::cmd!(duet_bin(), "ask", &dir, arg)
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"caf\xe9\n");
    let out = duct::cmd!(duet_bin(), "ask", &dir, "-")
        .stdin_bytes(b"\xff\xfe\n".to_vec())
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    assert_eq!(out.stdout, b"\xff\xfe\n");
    stop(&dir);
}

#[test]
fn ask_json_pairs_every_request_with_its_reply_empty_ones_and_failures_too() {
    let dir = unique_path("json");
    let d = dir.to_str().unwrap();
    duet(&["serve", "--daemon", d, "--quiet", "200ms", "--", "bc", "-q"]).expect_code(0);
    duet(&["ask", "--json", d, "x=5", "x", "y=1", "y"])
        .expect_code(0)
        .expect_stdout(
            "{\"request\":\"x=5\",\"reply\":\"\",\"ok\":true}\n\
             {\"request\":\"x\",\"reply\":\"5\",\"ok\":true}\n\
             {\"request\":\"y=1\",\"reply\":\"\",\"ok\":true}\n\
             {\"request\":\"y\",\"reply\":\"1\",\"ok\":true}\n",
        );
    // A failure is a line too, and the requests after it are still sent.
    duet(&[
        "ask",
        "--json",
        "--lines",
        "1",
        "--timeout",
        "300ms",
        d,
        "z=2",
        "z",
    ])
    .expect_code(124)
    .expect_stdout(
        "{\"request\":\"z=2\",\"ok\":false,\"error\":\"timed out after 300ms waiting for \
             a reply line\",\"partial\":\"\"}\n\
             {\"request\":\"z\",\"reply\":\"2\",\"ok\":true}\n",
    );
    stop(&dir);
}

#[test]
fn a_huge_timeout_is_a_long_wait_not_a_panic() {
    let dir = unique_path("huge");
    serve_daemon(&dir, &["bc", "-q"]);
    let d = dir.to_str().unwrap();
    duet(&["ask", d, "1+1", "--timeout", "18446744073709551615s"])
        .expect_code(0)
        .expect_stdout("2\n");
    stop(&dir);
}

// ---- 6, 7. lifecycle ------------------------------------------------------------

#[test]
fn an_ask_waiting_when_stop_runs_exits_1_naming_the_stop() {
    let dir = unique_path("stopping");
    let d = dir.to_str().unwrap().to_string();
    let mut serve = start(&["-vv", "serve", &d, "--", FIXTURE, "hold"]);
    read_until(&mut serve, |l| l == d);
    let waiting = duct::cmd(duet_bin(), ["ask", &d, "anyone?", "--timeout", "60s"])
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .unwrap();
    read_until(&mut serve, |l| l.contains("to the program"));
    stop(&dir);
    let out = waiting.wait().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stopped (duet stop)"), "{stderr}");
}

#[test]
fn status_on_a_shared_directory_says_to_choose_a_private_one() {
    duet(&["status", "/tmp"])
        .expect_code(1)
        .expect_stderr_has("is shared")
        .expect_stderr_has("choose a path of its own");
    let run = duet(&["status", "/tmp"]);
    assert!(
        !run.stderr.contains("chmod"),
        "{}",
        run.report("no chmod of /tmp")
    );
}

// ---- 9, 10. messages that teach ----------------------------------------------------

#[test]
fn a_program_that_buffers_on_pipes_gets_a_hint_and_its_output_at_exit_is_shown() {
    duet_in(
        &["chat", "--timeout", "500ms", "--", "tr", "a", "b"],
        b"abc\n",
    )
    .expect_code(124)
    .expect_stderr_has("tr may be buffering its output on a pipe")
    .expect_stderr_has("--pty")
    .expect_stderr_has("stdbuf -oL tr")
    .expect_stdout("bbc\n");
    duet_in(&["chat", "--", "stdbuf", "-oL", "tr", "a", "b"], b"abc\n")
        .expect_code(0)
        .expect_stdout("bbc\n");
    let dir = unique_path("buffering");
    serve_daemon(&dir, &["tr", "a", "b"]);
    duet(&["ask", "--timeout", "300ms", dir.to_str().unwrap(), "abc"])
        .expect_code(124)
        .expect_stderr_has("tr may be buffering its output on a pipe");
    stop(&dir);
}

#[test]
fn chat_says_which_request_a_program_that_died_did_not_answer() {
    let prog = "while read l; do [ \"$l\" = boom ] && kill -9 $$; echo \"$l\"; done";
    duet_in(&["chat", "--", "sh", "-c", prog], b"one\nboom\nthree\n")
        .expect_code(137)
        .expect_stdout("one\n")
        .expect_stderr("duet: sh was killed by signal 9 (SIGKILL) without answering \"boom\"\n");
}

// ---- 11. bounded memory -------------------------------------------------------------

#[test]
fn chat_on_a_flood_that_never_settles_times_out_without_holding_it() {
    // The greeting of `yes` never ends; chat used to keep all of it.
    duet_in(&["chat", "--timeout", "1s", "--", "yes"], b"x\n")
        .expect_code(124)
        .expect_stderr_has("still writing its greeting");
}

// ---- --help -------------------------------------------------------------------------

#[test]
fn the_new_options_are_in_help_with_examples() {
    for (cmd, options) in [
        ("chat", &["--merge-stderr", "--strip-ansi", "--env"][..]),
        ("serve", &["--merge-stderr", "--strip-ansi", "--env"][..]),
        ("run", &["--env"][..]),
        ("ask", &["--json"][..]),
    ] {
        let run = duet(&[cmd, "--help"]);
        run.expect_code(0);
        let (options_part, examples) = run
            .stdout
            .split_once("Example")
            .unwrap_or_else(|| panic!("{}", run.report("examples")));
        for option in options {
            assert!(options_part.contains(option), "{}", run.report(option));
            assert!(examples.contains(option), "{}", run.report(option));
        }
    }
}

#[test]
fn a_private_empty_directory_made_by_the_user_is_served() {
    let dir = unique_path("mine");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    serve_daemon(&dir, &["bc", "-q"]);
    duet(&["ask", dir.to_str().unwrap(), "2^10"])
        .expect_code(0)
        .expect_stdout("1024\n");
    stop(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serve_daemon_returns_when_serve_writes_more_than_a_pipe_of_stderr_before_ready() {
    // `-v` logs the greeting (its last 64 KiB) before serve is ready:
    // more than a pipe holds. --daemon used to read serve's stdout to its
    // end before stderr, and both waited forever.
    let dir = unique_path("loud");
    let d = dir.to_str().unwrap();
    let prog = "head -c 200000 /dev/zero | tr '\\0' x; echo; exec cat";
    let run = duet(&["-v", "serve", "--daemon", d, "--", "sh", "-c", prog]);
    run.expect_code(0).expect_stdout(&format!("{d}\n"));
    assert!(run.stderr.len() > 65_536, "{} bytes", run.stderr.len());
    duet(&["ask", d, "hi"]).expect_code(0).expect_stdout("hi\n");
    stop(&dir);
}

#[test]
fn serve_merge_stderr_and_strip_ansi_shape_the_replies_of_asks() {
    // python3 -i on pipes prompts on stderr and writes tracebacks there.
    let dir = unique_path("serve-merge");
    let d = dir.to_str().unwrap();
    duet_python(
        &[
            "serve",
            "--daemon",
            d,
            "--merge-stderr",
            "--prompt",
            "^>>> ",
            "--",
            "python3",
            "-i",
            "-q",
        ],
        b"",
    )
    .expect_code(0);
    duet(&["ask", d, "6*7"])
        .expect_code(0)
        .expect_stdout("42\n");
    duet(&["ask", d, "1/0"])
        .expect_code(0)
        .expect_stdout_has("ZeroDivisionError");
    stop(&dir);
    // gp colours its results whatever TERM says.
    let dir = unique_path("serve-ansi");
    let d = dir.to_str().unwrap();
    duet_xterm(
        &[
            "serve",
            "--daemon",
            d,
            "--pty",
            "--strip-ansi",
            "--prompt",
            r"^\? ",
            "--",
            "gp",
            "-q",
        ],
        b"",
    )
    .expect_code(0);
    let run = duet(&["ask", d, "6*7"]);
    run.expect_code(0).expect_stdout_has("42\n");
    assert!(!run.stdout.contains('\x1b'), "{}", run.report("no escape"));
    stop(&dir);
}

#[test]
fn a_raw_line_that_gets_no_prompt_does_not_wedge_the_asks_after_it() {
    // Under --prompt, raw input made PROG busy until its next `>>> `; a
    // block left open (`... `) held every later ask for good. Now it holds
    // them until PROG has been quiet for serve's --timeout.
    let dir = unique_path("raw-open");
    let d = dir.to_str().unwrap();
    duet_python(
        &[
            "serve",
            "--daemon",
            d,
            "--pty",
            "--timeout",
            "1s",
            "--prompt",
            "^>>> ",
            "--",
            "python3",
            "-q",
        ],
        b"",
    )
    .expect_code(0);
    duet(&["send", d, "for i in range(2): print(i)"]).expect_code(0);
    duet(&["ask", d, ""]).expect_code(0).expect_stdout("0\n1\n");
    duet(&["ask", d, "6*7"])
        .expect_code(0)
        .expect_stdout("42\n");
    stop(&dir);
}
