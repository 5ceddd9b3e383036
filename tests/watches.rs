//! The second release's conversation names against real processes: line
//! patterns, named groups, watches, control characters, end-of-file, and
//! the output kept by a timeout.

use std::time::Duration;

use duet::{Command, Error, Pattern, Stdio};

use crate::drive::{Conv, Start, both};
use crate::util::fixture;

const SHORT: Duration = Duration::from_millis(200);

/// The partial-line trap: a regex searches what has arrived, so `$` can
/// match before the line is complete; a line pattern waits for the newline.
async fn a_line_pattern_waits_for_the_newline_where_a_regex_matches_half_a_number<C: Conv>() {
    let script = "printf '.33'; read x; echo 33; printf '.33'; read x; echo 33";
    let mut sh = Command::new("sh")
        .args(["-c", script])
        .start::<C>()
        .unwrap();
    let m = sh
        .expect(Pattern::regex(r"^\.(\d+)$").unwrap())
        .await
        .unwrap();
    assert_eq!(
        m.group(1),
        Some("33"),
        "the regex matched the number so far"
    );
    sh.send_line("go").await.unwrap();
    sh.expect(Pattern::line("^33$").unwrap()).await.unwrap();

    let line = Pattern::line(r"^\.(\d+)$").unwrap();
    let (i, _) = sh
        .expect_any_timeout(&[line.clone(), Pattern::Timeout], SHORT)
        .await
        .unwrap();
    assert_eq!(i, 1, "no complete line yet");
    sh.send_line("go").await.unwrap();
    let m = sh.expect(line).await.unwrap();
    assert_eq!((m.as_str(), m.group(1)), (".3333", Some("3333")));
}

async fn bc_replies_are_whole_lines_with_a_line_pattern<C: Conv>() {
    let mut bc = Command::new("bc").arg("-q").start::<C>().unwrap();
    bc.send_line("scale=20; 1/3").await.unwrap();
    let m = bc
        .expect(Pattern::line(r"^\.(\d+)$").unwrap())
        .await
        .unwrap();
    assert_eq!(m.group(1), Some("33333333333333333333"));
}

async fn a_line_pattern_skips_lines_and_strips_carriage_returns_on_a_pty<C: Conv>() {
    let mut sh = Command::new("sh")
        .args(["-c", "echo one; echo two; echo 'result 7'"])
        .pty(true)
        .start::<C>()
        .unwrap();
    let m = sh
        .expect(Pattern::line(r"^result (\d)$").unwrap())
        .await
        .unwrap();
    assert_eq!(m.before(), "one\r\ntwo\r\n");
    assert_eq!((m.as_str(), m.group(1)), ("result 7", Some("7")));
}

async fn named_groups_are_found_by_name<C: Conv>() {
    let mut child = fixture("echo", &[]).start::<C>().unwrap();
    child.send_line("move e2e4 score 31").await.unwrap();
    let m = child
        .expect(Pattern::regex(r"move (?P<mv>\S+) score (?P<cp>-?\d+)").unwrap())
        .await
        .unwrap();
    assert_eq!((m.name("mv"), m.name("cp")), (Some("e2e4"), Some("31")));
    assert_eq!(m.name("nope"), None);
}

async fn fail_on_text_in_the_same_read_as_the_expected_text_fails_the_expect<C: Conv>() {
    let mut child = fixture("echo", &[]).start::<C>().unwrap();
    let watch = child.fail_on(Pattern::exact("Traceback"));
    child
        .send_line("OK Traceback (most recent call last)")
        .await
        .unwrap();
    match child.expect("OK").await.unwrap_err() {
        Error::FailOn {
            pattern, matched, ..
        } => assert_eq!(
            (pattern.as_str(), matched.as_str()),
            ("Traceback", "Traceback")
        ),
        other => panic!("{other}"),
    }
    // Nothing was consumed, and each occurrence fails once.
    assert_eq!(child.expect("OK").await.unwrap().before(), "");
    child.unwatch(watch);
    child.send_line("Traceback again").await.unwrap();
    assert_eq!(
        child.read_line().await.unwrap(),
        " Traceback (most recent call last)"
    );
    assert_eq!(child.read_line().await.unwrap(), "Traceback again");
}

async fn fail_on_sees_a_python_traceback_on_stderr_while_stdout_is_read<C: Conv>() {
    let mut py = Command::new("/usr/bin/python3")
        .args(["-c", "print('working', flush=True); input(); 1/0"])
        .env_remove("PYTHONUNBUFFERED")
        .stderr(Stdio::piped())
        .start::<C>()
        .unwrap();
    py.fail_on(Pattern::regex(r"(\w+Error): (.*)").unwrap());
    assert_eq!(py.read_line().await.unwrap(), "working");
    py.send_line("").await.unwrap();
    let err = py.read_line().await.unwrap_err();
    let Error::FailOn { matched, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(matched, "ZeroDivisionError: division by zero");
    assert!(err.to_string().contains("ZeroDivisionError"), "{err}");
}

async fn respond_answers_every_prompt_while_the_caller_waits_for_the_end<C: Conv>() {
    let script = r#"for i in 1 2 3; do printf 'delete %s? [y/N] ' $i; read a; echo "answer $a"; done; echo done"#;
    let mut sh = Command::new("sh")
        .args(["-c", script])
        .start::<C>()
        .unwrap();
    sh.respond(Pattern::exact("[y/N] "), "y\n");
    let m = sh.expect(Pattern::line("^done$").unwrap()).await.unwrap();
    assert_eq!(m.before().matches("answer y").count(), 3, "{}", m.before());
}

async fn send_control_writes_the_raw_byte_for_letters_and_symbols<C: Conv>() {
    let mut od = Command::new("od")
        .args(["-An", "-tx1"])
        .start::<C>()
        .unwrap();
    for c in ['c', 'C', '[', '?', '@', '\\', 'z'] {
        od.send_control(c).await.unwrap();
    }
    od.close_stdin().await.unwrap();
    let bytes: Vec<String> = od
        .lines_to_end()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert_eq!(bytes, ["03", "03", "1b", "7f", "00", "1c", "1a"]);
    let err = fixture("echo", &[])
        .start::<C>()
        .unwrap()
        .send_control('1')
        .await
        .unwrap_err();
    assert!(err.to_string().contains("'1'"), "{err}");
}

async fn send_control_c_on_a_pty_interrupts_python<C: Conv>() {
    let mut py = Command::new("/usr/bin/python3")
        .args(["-c", "import time\ntry:\n  print('ready', flush=True); time.sleep(30)\nexcept KeyboardInterrupt:\n  print('interrupted', flush=True)"])
        .env_remove("PYTHONUNBUFFERED")
        .pty(true)
        .start::<C>()
        .unwrap();
    py.expect("ready").await.unwrap();
    py.send_control('c').await.unwrap();
    py.expect("interrupted").await.unwrap();
    assert!(py.wait().await.unwrap().success());
}

async fn send_intr_interrupts_on_a_pty_and_signals_on_pipes<C: Conv>() {
    for pty in [true, false] {
        let mut sh = Command::new("sh")
            .args([
                "-c",
                "trap 'echo interrupted; exit 3' INT; echo ready; while :; do read x; done",
            ])
            .pty(pty)
            .start::<C>()
            .unwrap();
        sh.expect("ready").await.unwrap();
        sh.send_intr().await.unwrap();
        sh.expect("interrupted").await.unwrap();
        assert_eq!(sh.wait().await.unwrap().code(), Some(3), "pty {pty}");
    }
}

async fn send_eof_on_a_pty_ends_input_and_keeps_the_terminal<C: Conv>() {
    let mut sh = Command::new("sh")
        .args(["-c", "cat; echo after-eof; read x; echo got $x"])
        .pty(true)
        .start::<C>()
        .unwrap();
    sh.send_line("first").await.unwrap();
    sh.expect(Pattern::line("^first$").unwrap()).await.unwrap();
    sh.send("partial").await.unwrap();
    sh.send_eof().await.unwrap();
    sh.expect(Pattern::line("after-eof$").unwrap())
        .await
        .unwrap();
    sh.send_line("more").await.unwrap();
    sh.expect(Pattern::line("^got more$").unwrap())
        .await
        .unwrap();
}

async fn send_eof_on_a_pipe_closes_stdin<C: Conv>() {
    let mut sort = Command::new("sort").start::<C>().unwrap();
    sort.send("b\na\n").await.unwrap();
    sort.send_eof().await.unwrap();
    assert_eq!(sort.read_line().await.unwrap(), "a");
    assert_eq!(sort.read_line().await.unwrap(), "b");
    assert!(sort.send_line("c").await.is_err(), "stdin is closed");
}

/// `Command::output()` used to keep about 512 bytes of a timed-out run.
async fn a_timed_out_output_keeps_every_byte_captured<C: Conv>() {
    let err = Command::new("sh")
        .args([
            "-c",
            "head -c 300000 /dev/zero | tr '\\0' x; echo; echo oops >&2; echo end; exec sleep 30",
        ])
        .timeout(Duration::from_millis(1500))
        .output_with::<C>()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let out = err
        .output()
        .expect("a timeout of output() carries the output");
    assert_eq!(out.stdout.len(), 300_000 + 1 + 4);
    assert!(out.stdout.ends_with(b"x\nend\n"));
    assert_eq!(out.stderr, b"oops\n");
    assert_eq!(out.status.code(), None);
}

async fn a_timed_out_communicate_keeps_the_output_for_a_second_try<C: Conv>() {
    let mut sh = Command::new("sh")
        .args(["-c", "echo first; sleep 30"])
        .start::<C>()
        .unwrap();
    let err = sh.communicate(b"", Some(SHORT)).await.unwrap_err();
    assert_eq!(err.output().unwrap().stdout, b"first\n");
    // The buffers still hold it.
    assert_eq!(sh.read_line().await.unwrap(), "first");
}

/// A `wait_timeout` that expired used to close stdin, ending the
/// conversation.
async fn an_expired_wait_timeout_leaves_the_conversation_open<C: Conv>() {
    let mut cat = Command::new("cat").start::<C>().unwrap();
    assert_eq!(cat.wait_timeout(SHORT).await.unwrap(), None);
    assert_eq!(cat.ask("still there").await.unwrap(), "still there");
    cat.close_stdin().await.unwrap();
    assert!(cat.wait().await.unwrap().success());
}

/// `Pattern::exact` used to panic on a 1 MiB literal (the regex size limit).
async fn an_exact_pattern_of_a_mebibyte_is_found_in_the_output<C: Conv>() {
    let literal = "ab".repeat(1 << 19);
    let mut cat = Command::new("cat").start::<C>().unwrap();
    cat.send_line(&format!("before {literal} after"))
        .await
        .unwrap();
    let m = cat.expect(Pattern::exact(literal.clone())).await.unwrap();
    assert_eq!((m.before(), m.as_str().len()), ("before ", 1 << 20));
    assert_eq!(cat.read_line().await.unwrap(), " after");
}

/// After a line over `max_line`, an expect that consumed through the long
/// line's newline used to leave the skipping state behind, and the next
/// complete line vanished.
async fn an_expect_after_a_too_long_line_does_not_swallow_the_next_line<C: Conv>() {
    let script = "printf 0123456789; read x; printf 'tail\\n'; read x; echo next";
    let mut sh = Command::new("sh")
        .args(["-c", script])
        .max_line(4)
        .start::<C>()
        .unwrap();
    assert!(matches!(
        sh.read_line().await,
        Err(Error::LineTooLong { limit: 4 })
    ));
    sh.send_line("go").await.unwrap();
    // The rest of the long line is skipped as it arrives: the expect finds
    // nothing of it (the old code matched it and kept skipping).
    let (i, _) = sh
        .expect_any_timeout(&[Pattern::exact("\n"), Pattern::Timeout], SHORT)
        .await
        .unwrap();
    assert_eq!(i, 1);
    sh.send_line("go").await.unwrap();
    assert_eq!(sh.read_line().await.unwrap(), "next");
}

async fn an_expect_repeated_after_timeouts_resumes_and_finds_the_end<C: Conv>() {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; read x; echo FINISHED",
        ])
        .start::<C>()
        .unwrap();
    let p = [Pattern::regex(r"^FINISHED$").unwrap(), Pattern::Timeout];
    let (i, _) = child.expect_any_timeout(&p, SHORT).await.unwrap();
    assert_eq!(i, 1);
    child.send_line("go").await.unwrap();
    let (i, m) = child.expect_any(&p).await.unwrap();
    assert_eq!(i, 0);
    assert!(m.before().starts_with("line 0\n") && m.before().ends_with("line 199\n"));
}

/// A watch that matches on stderr while a read waits for stdout ends the
/// wait at once (it used to be reported only when stdout said something or
/// the read timed out).
async fn a_failure_on_stderr_ends_a_wait_for_stdout_at_once<C: Conv>() {
    let mut sh = Command::new("sh")
        .args(["-c", "echo 'fatal: no such table' >&2; exec sleep 30"])
        .stderr(Stdio::piped())
        .timeout(Duration::from_secs(30))
        .start::<C>()
        .unwrap();
    sh.fail_on(Pattern::exact("fatal"));
    let err = sh.read_line().await.unwrap_err();
    assert!(matches!(err, Error::FailOn { .. }), "{err}");
}

/// An answer goes to the child as a send would: through the pty's encoding
/// (a ^U in it arrives instead of erasing the line) and into the transcript.
async fn a_respond_answer_is_encoded_on_a_pty_and_recorded<C: Conv>() {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Log {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut sh = Command::new("sh")
        .args([
            "-c",
            r#"printf 'sure? [y/N] '; read a; echo "got $a" | od -c"#,
        ])
        .pty(true)
        .start::<C>()
        .unwrap();
    sh.set_transcript(Log(log.clone()));
    sh.respond(Pattern::exact("[y/N] "), "\x15ok\n");
    let m = sh
        .expect(Pattern::regex(r"g +o +t +025 +o +k").unwrap())
        .await;
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    assert!(m.is_ok(), "{m:?}\n{text}");
    assert!(text.contains("> \\x15ok\\n"), "{text}");
}

both!(
    a_respond_answer_is_encoded_on_a_pty_and_recorded,
    a_line_pattern_waits_for_the_newline_where_a_regex_matches_half_a_number,
    bc_replies_are_whole_lines_with_a_line_pattern,
    a_line_pattern_skips_lines_and_strips_carriage_returns_on_a_pty,
    named_groups_are_found_by_name,
    fail_on_text_in_the_same_read_as_the_expected_text_fails_the_expect,
    fail_on_sees_a_python_traceback_on_stderr_while_stdout_is_read,
    respond_answers_every_prompt_while_the_caller_waits_for_the_end,
    send_control_writes_the_raw_byte_for_letters_and_symbols,
    send_control_c_on_a_pty_interrupts_python,
    send_intr_interrupts_on_a_pty_and_signals_on_pipes,
    send_eof_on_a_pty_ends_input_and_keeps_the_terminal,
    send_eof_on_a_pipe_closes_stdin,
    a_timed_out_output_keeps_every_byte_captured,
    a_timed_out_communicate_keeps_the_output_for_a_second_try,
    an_expired_wait_timeout_leaves_the_conversation_open,
    an_exact_pattern_of_a_mebibyte_is_found_in_the_output,
    an_expect_after_a_too_long_line_does_not_swallow_the_next_line,
    an_expect_repeated_after_timeouts_resumes_and_finds_the_end,
    a_failure_on_stderr_ends_a_wait_for_stdout_at_once,
);
