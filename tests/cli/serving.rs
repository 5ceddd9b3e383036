//! `duet serve` and `duet ask` with real programs: framings kept by serve,
//! several requests per ask, late replies, a program that stops answering,
//! and a program that dies while serve starts.

use super::{
    FIXTURE, duet, duet_in, duet_python, finish, read_until, serve_daemon, start, stop, unique_path,
};

#[test]
fn a_timed_out_ask_never_hands_its_late_reply_to_the_next_ask() {
    // The late reply to `first` comes 1.5 s after it was sent, within the
    // settle time that ends the dropping of its output; the next ask used
    // to print it and exit 0.
    let dir = unique_path("late");
    let d = dir.to_str().unwrap();
    duet(&[
        "serve", "--daemon", d, "--settle", "3s", "--", FIXTURE, "slow", "1500",
    ])
    .expect_code(0);
    duet(&["ask", d, "first", "--timeout", "300ms"])
        .expect_code(124)
        .expect_stderr_has("timed out after 300ms waiting for a reply line");
    duet(&["ask", d, "second", "--timeout", "10s"])
        .expect_code(0)
        .expect_stdout("second\n");
    duet(&["status", d])
        .expect_code(0)
        .expect_stdout_has("answering: yes");
    stop(&dir);
}

#[test]
fn under_a_prompt_a_late_reply_within_the_settle_time_ends_at_its_prompt_and_reaches_nobody() {
    // The fixture answers 1.5 s late, then shows `> `. serve takes --settle
    // with --prompt for the quiet after a timeout.
    let dir = unique_path("late-prompt");
    let d = dir.to_str().unwrap();
    duet(&[
        "serve",
        "--daemon",
        d,
        "--prompt",
        "^> ",
        "--settle",
        "3s",
        "--",
        FIXTURE,
        "slow-prompt",
        "1500",
    ])
    .expect_code(0);
    duet(&["ask", d, "first", "--timeout", "300ms"]).expect_code(124);
    duet(&["ask", d, "second", "--timeout", "10s"])
        .expect_code(0)
        .expect_stdout("second\n");
    stop(&dir);
}

#[test]
fn serve_restarts_a_prog_that_never_finishes_a_timed_out_reply() {
    let dir = unique_path("hang");
    let d = dir.to_str().unwrap();
    let prog = "while read l; do [ \"$l\" = hang ] && exec sleep 1000; echo \"$l\"; done";
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
    duet(&["ask", d, "hang", "--timeout", "300ms"]).expect_code(124);
    // The next request costs its own timeout: two in a row without a reply
    // make PROG not answering, and it is restarted.
    duet(&["ask", d, "hello", "--timeout", "300ms"]).expect_code(124);
    duet(&["ask", d, "hello", "--timeout", "10s"])
        .expect_code(0)
        .expect_stdout("hello\n");
    duet(&["status", d])
        .expect_code(0)
        .expect_stdout_has("restarts: 1")
        .expect_stdout_has("answering: yes");
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    assert!(
        log.contains("sh is not answering: \"hello\" timed out right after \"hang\" did"),
        "{log}"
    );
    stop(&dir);
}

#[test]
fn serve_says_when_prog_is_not_answering_and_each_ask_costs_only_its_own_timeout() {
    let dir = unique_path("stuck");
    let d = dir.to_str().unwrap().to_string();
    let mut serve = start(&["serve", &d, "--", FIXTURE, "hold"]);
    read_until(&mut serve, |l| l == d);
    duet(&["ask", &d, "anyone?", "--timeout", "300ms"])
        .expect_code(124)
        .expect_stderr_has("timed out after 300ms waiting for a reply line");
    duet(&["ask", &d, "next", "--timeout", "300ms"])
        .expect_code(124)
        .expect_stderr_has("timed out after 300ms waiting for a reply line");
    read_until(&mut serve, |l| {
        l.contains("is not answering: \"next\" timed out right after \"anyone?\" did")
    });
    duet(&["status", &d])
        .expect_code(0)
        .expect_stdout_has("answering: no (");
    stop(&dir);
    let (code, _) = finish(serve);
    assert_eq!(code, Some(0), "a stopped serve exits 0");
}

#[test]
fn serve_daemon_exits_with_prog_status_and_stderr_when_prog_dies_while_starting() {
    // It used to print DIR and exit 0, then remove DIR with the log.
    let dir = unique_path("dying");
    let d = dir.to_str().unwrap();
    duet(&[
        "serve",
        "--daemon",
        d,
        "--",
        "sh",
        "-c",
        "echo dying >&2; exit 3",
    ])
    .expect_code(3)
    .expect_stdout("")
    .expect_stderr_has("sh exited with code 3 while serve was starting")
    .expect_stderr_has("\n    dying");
    assert!(!dir.exists(), "what explains the failure was shown");
}

#[test]
fn serve_keeps_the_log_when_prog_wrote_more_than_the_message_shows() {
    let dir = unique_path("dying-long");
    let d = dir.to_str().unwrap();
    let prog = "for i in $(seq 1 30); do echo \"line $i\" >&2; done; kill -9 $$";
    duet(&["serve", "--daemon", d, "--", "sh", "-c", prog])
        .expect_code(137)
        .expect_stderr_has("sh was killed by signal 9 (SIGKILL) while serve was starting")
        .expect_stderr_has("    line 30")
        .expect_stderr_has("(all 30 lines are in");
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    assert!(log.starts_with("line 1\n"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serve_is_ready_only_after_progs_greeting() {
    let dir = unique_path("greeting");
    let prog = "sleep 0.3; echo banner; while read l; do echo \"r $l\"; done";
    let d = dir.to_str().unwrap();
    duet(&[
        "serve", "--daemon", d, "--settle", "1s", "--", "sh", "-c", prog,
    ])
    .expect_code(0);
    duet(&["ask", d, "a"]).expect_code(0).expect_stdout("r a\n");
    stop(&dir);
}

#[test]
fn serve_framing_is_the_default_for_its_asks() {
    let dir = unique_path("default-framing");
    let d = dir.to_str().unwrap();
    let prog = "while read l; do printf '%s\\nmore\\nEND\\n' \"$l\"; done";
    duet(&[
        "serve", "--daemon", d, "--until", "^END$", "--", "sh", "-c", prog,
    ])
    .expect_code(0);
    duet(&["ask", d, "a"])
        .expect_code(0)
        .expect_stdout("a\nmore\nEND\n");
    duet(&["ask", d, "b", "--lines", "3"])
        .expect_code(0)
        .expect_stdout("b\nmore\nEND\n");
    stop(&dir);
}

#[test]
fn ask_sends_several_lines_and_stdin_lines_in_order_in_one_process() {
    let dir = unique_path("many");
    serve_daemon(&dir, &[FIXTURE, "calc"]);
    let d = dir.to_str().unwrap();
    duet(&["ask", d, "1 + 1", "2 * 3", "7 - 10"])
        .expect_code(0)
        .expect_stdout("2\n6\n-3\n");
    let lines: String = (1..=50).map(|i| format!("{i} * {i}\n")).collect();
    let squares: String = (1..=50).map(|i| format!("{}\n", i * i)).collect();
    duet_in(&["ask", d, "-"], lines.as_bytes())
        .expect_code(0)
        .expect_stdout(&squares);
    duet(&["ask", d, "a", "-"])
        .expect_code(2)
        .expect_stderr_has("must be the only LINE");
    stop(&dir);
}

#[test]
fn ask_stops_at_the_first_request_that_fails() {
    let dir = unique_path("stops");
    let d = dir.to_str().unwrap();
    let prog = "while read l; do [ \"$l\" = quit ] && exit 0; echo \"$l\"; done";
    duet(&["serve", "--daemon", d, "--", "sh", "-c", prog]).expect_code(0);
    duet_in(&["ask", d, "-"], b"one\nquit\nnever sent\n")
        .expect_code(1)
        .expect_stdout("one\n")
        .expect_stderr_has("the program exited with code 0 before the reply was complete");
}

#[test]
fn serve_quiet_gives_an_empty_reply_to_a_request_that_gets_no_output() {
    let dir = unique_path("quiet-empty");
    let d = dir.to_str().unwrap();
    duet(&["serve", "--daemon", d, "--quiet", "300ms", "--", "bc", "-q"]).expect_code(0);
    duet(&["ask", d, "x=5"]).expect_code(0).expect_stdout("");
    duet(&["ask", d, "x*2"])
        .expect_code(0)
        .expect_stdout("10\n");
    stop(&dir);
}

#[test]
fn serve_prompt_with_python3_on_a_pty() {
    let dir = unique_path("python");
    let d = dir.to_str().unwrap();
    duet_python(
        &[
            "serve",
            "--daemon",
            d,
            "--pty",
            "--prompt",
            "^>>> ",
            "--",
            "/usr/bin/python3",
            "-q",
        ],
        b"",
    )
    .expect_code(0);
    duet(&["ask", d, "1+1", "x=5", "print(x)"])
        .expect_code(0)
        .expect_stdout("2\n5\n");
    duet(&["ask", d, "print('a'); print('b')"])
        .expect_code(0)
        .expect_stdout("a\nb\n");
    stop(&dir);
}

#[test]
fn serve_prompt_with_gdb_mi() {
    let dir = unique_path("gdb");
    let d = dir.to_str().unwrap();
    duet(&[
        "serve",
        "--daemon",
        d,
        "--prompt",
        r"^\(gdb\) \r?\n",
        "--",
        "gdb",
        "-q",
        "-nx",
        "--interpreter=mi2",
    ])
    .expect_code(0);
    duet(&["ask", d, "--", "-data-evaluate-expression 6*7"])
        .expect_code(0)
        .expect_stdout("^done,value=\"42\"\n");
    duet(&[
        "ask",
        d,
        "--",
        "-gdb-set confirm off",
        "-data-evaluate-expression 1<2",
    ])
    .expect_code(0)
    .expect_stdout("^done\n^done,value=\"1\"\n");
    stop(&dir);
}

#[test]
fn serve_prompt_waits_for_the_prompt_after_raw_input() {
    let dir = unique_path("raw-prompt");
    let d = dir.to_str().unwrap();
    duet(&[
        "serve",
        "--daemon",
        d,
        "--prompt",
        "^> ",
        "--",
        FIXTURE,
        "slow-prompt",
        "300",
    ])
    .expect_code(0);
    duet(&["send", d, "raw"]).expect_code(0);
    duet(&["ask", d, "asked"])
        .expect_code(0)
        .expect_stdout("asked\n");
    duet(&["recv", d]).expect_code(0).expect_stdout("raw\n");
    stop(&dir);
}

#[test]
fn ask_prompt_bad_regex_is_quoted_as_written() {
    let dir = unique_path("badprompt");
    let run = duet(&["ask", dir.to_str().unwrap(), "x", "--prompt", "("]);
    run.expect_code(2)
        .expect_stderr_has("--prompt: bad regex \"(\"");
    assert!(!run.stderr.contains("(?m)"), "{}", run.report("no (?m)"));
}

#[test]
fn serve_and_ask_help_show_the_new_options_with_examples() {
    let serve = duet(&["serve", "--help"]);
    for text in [
        "--prompt <REGEX>",
        "--settle <D>",
        "--prompt '^>>> '",
        "on-failure",
    ] {
        assert!(serve.stdout.contains(text), "{}", serve.report(text));
    }
    let ask = duet(&["ask", "--help"]);
    for text in ["--prompt <REGEX>", "| duet ask /tmp/calc -", "'x=6' 'x*7'"] {
        assert!(ask.stdout.contains(text), "{}", ask.report(text));
    }
}

#[test]
fn serve_gives_up_on_a_first_prompt_that_never_comes() {
    let dir = unique_path("no-prompt");
    let d = dir.to_str().unwrap();
    duet(&[
        "serve",
        "--daemon",
        d,
        "--prompt",
        "^> ",
        "--timeout",
        "300ms",
        "--",
        "sh",
        "-c",
        "echo loading; exec cat",
    ])
    .expect_code(124)
    .expect_stdout("")
    .expect_stderr_has("sh did not show its first prompt (the prompt \"^> \") within 300ms")
    .expect_stderr_has("it wrote \"loading\\n\"");
    assert!(!dir.exists(), "nothing is left behind");
}
