//! Sending, reading lines, expecting patterns, and the errors on the way.

use std::io::ErrorKind;
use std::time::Duration;

use duet::{Command, Error, Pattern, Stdio};

use crate::drive::{Conv, Start, both};
use crate::util::fixture;

async fn ask_sends_a_line_and_returns_the_reply<C: Conv>() {
    let mut calc = fixture("calc", &[]).start::<C>().unwrap();
    assert_eq!(calc.ask("2 + 3").await.unwrap(), "5");
    assert_eq!(calc.ask("6 * 7").await.unwrap(), "42");
    assert!(calc.ask("6 ? 7").await.unwrap().starts_with("ERR"));
}

async fn bc_answers_line_by_line<C: Conv>() {
    let mut bc = Command::new("bc").arg("-q").start::<C>().unwrap();
    assert_eq!(bc.ask("2+2").await.unwrap(), "4");
    assert_eq!(bc.ask("3*3").await.unwrap(), "9");
}

async fn expect_matches_a_prompt_without_newline<C: Conv>() {
    let mut child = fixture("prompt", &["calc> "]).start::<C>().unwrap();
    let m = child.expect(Pattern::exact("calc> ")).await.unwrap();
    assert_eq!(m.before(), "");
    child.send_line("hello").await.unwrap();
    let m = child.expect("calc> ").await.unwrap();
    assert_eq!(m.before(), "hello\n");
}

async fn expect_regex_gives_groups_and_line_anchors<C: Conv>() {
    let mut child = fixture("echo", &[]).start::<C>().unwrap();
    child.send_line("noise 12").await.unwrap();
    child.send_line("value=42").await.unwrap();
    let m = child
        .expect(Pattern::regex(r"^value=(\d+)$").unwrap())
        .await
        .unwrap();
    assert_eq!(m.group(1), Some("42"));
    assert_eq!(m.as_str(), "value=42");
    assert_eq!(m.before(), "noise 12\n");
}

async fn expect_any_returns_the_earliest_match_and_its_index<C: Conv>() {
    let mut child = fixture("echo", &[]).start::<C>().unwrap();
    child.send_line("first ERR then OK").await.unwrap();
    let patterns = [Pattern::exact("OK"), Pattern::regex("ERR").unwrap()];
    let (i, m) = child.expect_any(&patterns).await.unwrap();
    assert_eq!((i, m.as_str(), m.before()), (1, "ERR", "first "));
}

async fn pattern_timeout_in_the_list_is_an_outcome_and_keeps_the_buffer<C: Conv>() {
    let mut child = fixture("prompt", &["? "]).start::<C>().unwrap();
    let patterns = [Pattern::exact("never"), Pattern::Timeout];
    let (i, _) = child
        .expect_any_timeout(&patterns, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(i, 1);
    assert_eq!(child.expect("? ").await.unwrap().as_str(), "? ");
}

async fn pattern_eof_matches_the_end_with_the_rest_before_it<C: Conv>() {
    let mut child = Command::new("sh")
        .args(["-c", "printf 'last words'"])
        .start::<C>()
        .unwrap();
    let (i, m) = child
        .expect_any(&[Pattern::exact("never"), Pattern::Eof])
        .await
        .unwrap();
    assert_eq!(i, 1);
    assert_eq!(m.before(), "last words");
}

async fn timeout_keeps_every_unread_byte_and_explains_itself<C: Conv>() {
    let mut child = fixture("prompt", &["name? "]).start::<C>().unwrap();
    let err = child
        .read_line_timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    let Error::Timeout {
        expected, partial, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(expected, "a line");
    assert_eq!(partial, "name? ");
    assert!(err.to_string().contains("name? "), "{err}");
    let err = child
        .expect_timeout(Pattern::exact("nope"), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exact \"nope\""), "{err}");
    // Nothing was lost.
    child.send_line("bob").await.unwrap();
    assert_eq!(child.read_line().await.unwrap(), "name? bob");
}

async fn line_too_long_is_an_error_and_the_next_line_follows<C: Conv>() {
    let mut child = fixture("line", &["5000"])
        .max_line(1000)
        .start::<C>()
        .unwrap();
    let err = child.read_line().await.unwrap_err();
    assert!(matches!(err, Error::LineTooLong { limit: 1000 }), "{err:?}");
    assert_eq!(child.ask("next").await.unwrap(), "next");
}

async fn a_flood_stops_at_max_buffer_and_not_one_line_is_lost<C: Conv>() {
    // An expect of an absent pattern on a flood used to grow the parent
    // without bound (yes: gigabytes in seconds).
    let mut seq = Command::new("seq")
        .args(["1", "200000"])
        .max_buffer(64 << 10)
        .start::<C>()
        .unwrap();
    let err = seq.expect(Pattern::exact("never")).await.unwrap_err();
    assert!(matches!(err, Error::BufferFull { limit: 65536 }), "{err:?}");
    assert!(err.to_string().contains("max_buffer"), "{err}");
    for n in 1..=200_000 {
        assert_eq!(seq.read_line().await.unwrap(), n.to_string());
    }
    assert!(matches!(seq.read_line().await, Err(Error::Eof { .. })));
}

async fn communicate_and_output_are_not_bounded_by_max_buffer<C: Conv>() {
    let out = C::output(Command::new("seq").args(["1", "200000"]).max_buffer(1024))
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 1_288_895);
    let mut child = Command::new("seq")
        .args(["1", "200000"])
        .max_buffer(1024)
        .start::<C>()
        .unwrap();
    let out = child.communicate(b"", None).await.unwrap();
    assert!(out.stdout.ends_with(b"199999\n200000\n"));
    assert_eq!(out.stdout.len(), 1_288_895);
}

async fn invalid_utf8_is_an_error_carrying_the_bytes<C: Conv>() {
    let mut child = Command::new("sh")
        .args(["-c", r"printf 'ok\n\377\376\nbytes\n'"])
        .start::<C>()
        .unwrap();
    assert_eq!(child.read_line().await.unwrap(), "ok");
    let err = child.read_line().await.unwrap_err();
    let Error::InvalidUtf8 { bytes } = err else {
        panic!("{err:?}")
    };
    assert_eq!(bytes, b"\xff\xfe");
    assert_eq!(child.read_line_bytes().await.unwrap(), b"bytes");
}

async fn crlf_line_ends_are_accepted<C: Conv>() {
    let mut child = Command::new("sh")
        .args(["-c", r"printf 'a\r\nb\n'"])
        .start::<C>()
        .unwrap();
    assert_eq!(child.read_line().await.unwrap(), "a");
    assert_eq!(child.read_line().await.unwrap(), "b");
}

async fn child_that_dies_mid_reply_is_eof_with_partial_and_status<C: Conv>() {
    let mut child = fixture("crash", &[]).start::<C>().unwrap();
    let err = child.ask("go").await.unwrap_err();
    let Error::Eof {
        partial, status, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(partial, "half a rep");
    assert_eq!(status.and_then(|s| s.signal()), Some(9));
    assert!(err.to_string().contains("killed by signal 9"), "{err}");
    // The partial reply is not lost.
    assert_eq!(
        child.read_available(Duration::ZERO).await.unwrap(),
        b"half a rep"
    );
}

async fn eof_after_exit_carries_the_exit_status<C: Conv>() {
    let mut child = fixture("exit", &["3"]).start::<C>().unwrap();
    let err = child.read_line().await.unwrap_err();
    assert_eq!(err.status().and_then(|s| s.code()), Some(3));
}

async fn writing_to_a_dead_child_is_an_io_error_not_sigpipe<C: Conv>() {
    let mut child = fixture("exit", &["0"]).start::<C>().unwrap();
    child.wait().await.unwrap();
    let err = child.send_line("anyone?").await.unwrap_err();
    let Error::Io(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);

    let mut child = fixture("close-stdout", &[])
        .stdin(Stdio::null())
        .start::<C>()
        .unwrap();
    assert!(child.send_line("x").await.is_err());
}

async fn a_host_that_does_not_ignore_sigpipe_still_gets_epipe_not_death<C: Conv>() {
    // The fixture restores SIGPIPE's default action before writing to a
    // child that is gone: a SIGPIPE would kill it.
    let out = fixture("sigpipe-default", &[])
        .output_with::<C>()
        .await
        .unwrap();
    assert_eq!(out.status.signal(), None, "killed: {}", out.status);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "BrokenPipe\n");
}

async fn writing_after_the_child_exits_without_reading_is_epipe<C: Conv>() {
    let mut child = Command::new("sh")
        .args(["-c", "exec 0<&-; echo bye"])
        .start::<C>()
        .unwrap();
    assert_eq!(child.read_line().await.unwrap(), "bye");
    child.wait_timeout(Duration::from_secs(20)).await.unwrap();
    let big = vec![b'x'; 1 << 20];
    let err = child.send_bytes(&big).await.unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::BrokenPipe),
        "{err:?}"
    );
}

async fn child_that_writes_10_mb_before_reading_does_not_deadlock_send<C: Conv>() {
    // 10 MB of flood lines before the fixture reads anything.
    let mut child = fixture("flood", &["160000"]).start::<C>().unwrap();
    child.send_line("after the flood").await.unwrap();
    let mut count = 0;
    loop {
        let line = child.read_line().await.unwrap();
        if line == "after the flood" {
            break;
        }
        count += 1;
    }
    assert_eq!(count, 160000);
}

async fn stderr_flood_is_drained_and_readable<C: Conv>() {
    let mut child = fixture("flood", &["160000", "err"])
        .stderr(Stdio::piped())
        .start::<C>()
        .unwrap();
    assert_eq!(child.ask("still talking").await.unwrap(), "still talking");
    assert!(
        child
            .read_stderr_line()
            .await
            .unwrap()
            .starts_with("flood line 00000000")
    );
}

async fn stderr_lines_are_read_and_expected_separately<C: Conv>() {
    let mut child = fixture("stderr", &["Password:"])
        .stderr(Stdio::piped())
        .start::<C>()
        .unwrap();
    assert_eq!(
        child.expect_stderr("Password:").await.unwrap().as_str(),
        "Password:"
    );
    assert_eq!(child.ask("out").await.unwrap(), "out");
}

async fn errors_include_the_tail_of_captured_stderr<C: Conv>() {
    let mut child = Command::new("sh")
        .args(["-c", "echo 'fatal: config missing' >&2; exit 1"])
        .stderr(Stdio::piped())
        .start::<C>()
        .unwrap();
    let err = child.read_line().await.unwrap_err();
    let Error::Eof { stderr, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(stderr, "fatal: config missing");
    assert!(err.to_string().contains("fatal: config missing"));
}

async fn merge_stderr_sends_it_to_stdout<C: Conv>() {
    let mut child = fixture("stderr", &["to stderr"])
        .merge_stderr(true)
        .start::<C>()
        .unwrap();
    assert_eq!(child.read_line().await.unwrap(), "to stderr");
}

async fn lines_iterates_until_end_of_output<C: Conv>() {
    let mut child = Command::new("sh")
        .args(["-c", "printf 'a\\nb\\nc'"])
        .start::<C>()
        .unwrap();
    let lines: Vec<String> = child.lines_to_end().await.unwrap();
    assert_eq!(lines, ["a", "b", "c"]);
}

async fn close_stdin_gives_the_child_end_of_file<C: Conv>() {
    let mut child = fixture("count", &[]).start::<C>().unwrap();
    child.send("abc\ndef").await.unwrap();
    child.close_stdin().await.unwrap();
    assert_eq!(child.read_line().await.unwrap(), "7 bytes 1 lines");
}

async fn send_without_newline_and_send_bytes_are_exact<C: Conv>() {
    let mut child = fixture("cat", &[]).start::<C>().unwrap();
    child.send("no newline|").await.unwrap();
    child.send_bytes(b"\x00\x01binary\n").await.unwrap();
    assert_eq!(
        child.read_line_bytes().await.unwrap(),
        b"no newline|\x00\x01binary"
    );
}

async fn read_available_returns_what_arrived<C: Conv>() {
    let mut child = fixture("prompt", &["> "]).start::<C>().unwrap();
    let mut got = Vec::new();
    while got != b"> " {
        got.extend(child.read_available(Duration::from_secs(20)).await.unwrap());
    }
    assert!(
        child
            .read_available(Duration::from_millis(10))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn send_times_out_when_the_child_never_reads<C: Conv>() {
    let mut child = fixture("hold", &[]).start::<C>().unwrap();
    child.signal(duet::Signal::SIGSTOP).unwrap();
    child.set_timeout(Duration::from_millis(100));
    let err = child.send_bytes(&vec![b'x'; 4 << 20]).await.unwrap_err();
    let Error::Timeout { expected, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(expected.contains("read its input"), "{expected}");
    child.kill().unwrap();
}

async fn transcript_records_both_directions<C: Conv>() {
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Shared::default();
    let mut child = fixture("upper", &[]).start::<C>().unwrap();
    child.set_transcript(log.clone());
    assert_eq!(child.ask("hi").await.unwrap(), "HI");
    child.close_stdin().await.unwrap();
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let tags: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(tags, [">", "<", "#"]);
    assert!(text.contains("> hi\\n"), "{text}");
    assert!(text.contains("< HI\\n"), "{text}");
}

/// The async driver keeps one timer per child and lets a timer set for an
/// earlier deadline go off early instead of moving it every call; going
/// off early must not end a wait whose own deadline is later.
async fn a_short_timeout_before_a_long_one_does_not_cut_the_long_one_short<C: Conv>() {
    let mut sh = Command::new("sh")
        .args(["-c", "echo first; read x; sleep 1; echo second"])
        .start::<C>()
        .unwrap();
    assert_eq!(
        sh.read_line_timeout(Duration::from_millis(300))
            .await
            .unwrap(),
        "first"
    );
    sh.send_line("go").await.unwrap();
    assert_eq!(
        sh.read_line_timeout(Duration::from_secs(20)).await.unwrap(),
        "second"
    );
}

both!(
    a_short_timeout_before_a_long_one_does_not_cut_the_long_one_short,
    ask_sends_a_line_and_returns_the_reply,
    bc_answers_line_by_line,
    expect_matches_a_prompt_without_newline,
    expect_regex_gives_groups_and_line_anchors,
    expect_any_returns_the_earliest_match_and_its_index,
    pattern_timeout_in_the_list_is_an_outcome_and_keeps_the_buffer,
    pattern_eof_matches_the_end_with_the_rest_before_it,
    timeout_keeps_every_unread_byte_and_explains_itself,
    line_too_long_is_an_error_and_the_next_line_follows,
    a_flood_stops_at_max_buffer_and_not_one_line_is_lost,
    communicate_and_output_are_not_bounded_by_max_buffer,
    invalid_utf8_is_an_error_carrying_the_bytes,
    crlf_line_ends_are_accepted,
    child_that_dies_mid_reply_is_eof_with_partial_and_status,
    eof_after_exit_carries_the_exit_status,
    writing_to_a_dead_child_is_an_io_error_not_sigpipe,
    a_host_that_does_not_ignore_sigpipe_still_gets_epipe_not_death,
    writing_after_the_child_exits_without_reading_is_epipe,
    child_that_writes_10_mb_before_reading_does_not_deadlock_send,
    stderr_flood_is_drained_and_readable,
    stderr_lines_are_read_and_expected_separately,
    errors_include_the_tail_of_captured_stderr,
    merge_stderr_sends_it_to_stdout,
    lines_iterates_until_end_of_output,
    close_stdin_gives_the_child_end_of_file,
    send_without_newline_and_send_bytes_are_exact,
    read_available_returns_what_arrived,
    send_times_out_when_the_child_never_reads,
    transcript_records_both_directions,
);
