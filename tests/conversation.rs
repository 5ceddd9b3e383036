//! Sending, reading lines, expecting patterns, and the errors on the way.

use std::io::ErrorKind;
use std::time::Duration;

use duet::{Command, Error, Pattern, Stdio};

use crate::util::fixture;

#[test]
fn ask_sends_a_line_and_returns_the_reply() {
    let mut calc = fixture("calc", &[]).spawn().unwrap();
    assert_eq!(calc.ask("2 + 3").unwrap(), "5");
    assert_eq!(calc.ask("6 * 7").unwrap(), "42");
    assert!(calc.ask("6 ? 7").unwrap().starts_with("ERR"));
}

#[test]
fn bc_answers_line_by_line() {
    let mut bc = Command::new("bc").arg("-q").spawn().unwrap();
    assert_eq!(bc.ask("2+2").unwrap(), "4");
    assert_eq!(bc.ask("3*3").unwrap(), "9");
}

#[test]
fn expect_matches_a_prompt_without_newline() {
    let mut child = fixture("prompt", &["calc> "]).spawn().unwrap();
    let m = child.expect(Pattern::exact("calc> ")).unwrap();
    assert_eq!(m.before(), "");
    child.send_line("hello").unwrap();
    let m = child.expect("calc> ").unwrap();
    assert_eq!(m.before(), "hello\n");
}

#[test]
fn expect_regex_gives_groups_and_line_anchors() {
    let mut child = fixture("echo", &[]).spawn().unwrap();
    child.send_line("noise 12").unwrap();
    child.send_line("value=42").unwrap();
    let m = child
        .expect(Pattern::regex(r"^value=(\d+)$").unwrap())
        .unwrap();
    assert_eq!(m.group(1), Some("42"));
    assert_eq!(m.as_str(), "value=42");
    assert_eq!(m.before(), "noise 12\n");
}

#[test]
fn expect_any_returns_the_earliest_match_and_its_index() {
    let mut child = fixture("echo", &[]).spawn().unwrap();
    child.send_line("first ERR then OK").unwrap();
    let patterns = [Pattern::exact("OK"), Pattern::regex("ERR").unwrap()];
    let (i, m) = child.expect_any(&patterns).unwrap();
    assert_eq!((i, m.as_str(), m.before()), (1, "ERR", "first "));
}

#[test]
fn pattern_timeout_in_the_list_is_an_outcome_and_keeps_the_buffer() {
    let mut child = fixture("prompt", &["? "]).spawn().unwrap();
    let patterns = [Pattern::exact("never"), Pattern::Timeout];
    let (i, _) = child
        .expect_any_timeout(&patterns, Duration::from_millis(50))
        .unwrap();
    assert_eq!(i, 1);
    assert_eq!(child.expect("? ").unwrap().as_str(), "? ");
}

#[test]
fn pattern_eof_matches_the_end_with_the_rest_before_it() {
    let mut child = Command::new("sh")
        .args(["-c", "printf 'last words'"])
        .spawn()
        .unwrap();
    let (i, m) = child
        .expect_any(&[Pattern::exact("never"), Pattern::Eof])
        .unwrap();
    assert_eq!(i, 1);
    assert_eq!(m.before(), "last words");
}

#[test]
fn timeout_keeps_every_unread_byte_and_explains_itself() {
    let mut child = fixture("prompt", &["name? "]).spawn().unwrap();
    let err = child
        .read_line_timeout(Duration::from_millis(50))
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
        .unwrap_err();
    assert!(err.to_string().contains("exact \"nope\""), "{err}");
    // Nothing was lost.
    child.send_line("bob").unwrap();
    assert_eq!(child.read_line().unwrap(), "name? bob");
}

#[test]
fn line_too_long_is_an_error_and_the_next_line_follows() {
    let mut child = fixture("line", &["5000"]).max_line(1000).spawn().unwrap();
    let err = child.read_line().unwrap_err();
    assert!(matches!(err, Error::LineTooLong { limit: 1000 }), "{err:?}");
    assert_eq!(child.ask("next").unwrap(), "next");
}

#[test]
fn invalid_utf8_is_an_error_carrying_the_bytes() {
    let mut child = Command::new("sh")
        .args(["-c", r"printf 'ok\n\377\376\nbytes\n'"])
        .spawn()
        .unwrap();
    assert_eq!(child.read_line().unwrap(), "ok");
    let err = child.read_line().unwrap_err();
    let Error::InvalidUtf8 { bytes } = err else {
        panic!("{err:?}")
    };
    assert_eq!(bytes, b"\xff\xfe");
    assert_eq!(child.read_line_bytes().unwrap(), b"bytes");
}

#[test]
fn crlf_line_ends_are_accepted() {
    let mut child = Command::new("sh")
        .args(["-c", r"printf 'a\r\nb\n'"])
        .spawn()
        .unwrap();
    assert_eq!(child.read_line().unwrap(), "a");
    assert_eq!(child.read_line().unwrap(), "b");
}

#[test]
fn child_that_dies_mid_reply_is_eof_with_partial_and_status() {
    let mut child = fixture("crash", &[]).spawn().unwrap();
    let err = child.ask("go").unwrap_err();
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
    assert_eq!(child.read_available(Duration::ZERO).unwrap(), b"half a rep");
}

#[test]
fn eof_after_exit_carries_the_exit_status() {
    let mut child = fixture("exit", &["3"]).spawn().unwrap();
    let err = child.read_line().unwrap_err();
    assert_eq!(err.status().and_then(|s| s.code()), Some(3));
}

#[test]
fn writing_to_a_dead_child_is_an_io_error_not_sigpipe() {
    let mut child = fixture("exit", &["0"]).spawn().unwrap();
    child.wait().unwrap();
    let err = child.send_line("anyone?").unwrap_err();
    let Error::Io(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);

    let mut child = fixture("close-stdout", &[])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(child.send_line("x").is_err());
}

#[test]
fn a_host_that_does_not_ignore_sigpipe_still_gets_epipe_not_death() {
    // The fixture restores SIGPIPE's default action before writing to a
    // child that is gone: a SIGPIPE would kill it.
    let out = fixture("sigpipe-default", &[]).output().unwrap();
    assert_eq!(out.status.signal(), None, "killed: {}", out.status);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "BrokenPipe\n");
}

#[test]
fn writing_after_the_child_exits_without_reading_is_epipe() {
    let mut child = Command::new("sh")
        .args(["-c", "exec 0<&-; echo bye"])
        .spawn()
        .unwrap();
    assert_eq!(child.read_line().unwrap(), "bye");
    child.wait_timeout(Duration::from_secs(20)).unwrap();
    let big = vec![b'x'; 1 << 20];
    let err = child.send_bytes(&big).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::BrokenPipe),
        "{err:?}"
    );
}

#[test]
fn child_that_writes_10_mb_before_reading_does_not_deadlock_send() {
    // 10 MB of flood lines before the fixture reads anything.
    let mut child = fixture("flood", &["160000"]).spawn().unwrap();
    child.send_line("after the flood").unwrap();
    let mut count = 0;
    loop {
        let line = child.read_line().unwrap();
        if line == "after the flood" {
            break;
        }
        count += 1;
    }
    assert_eq!(count, 160000);
}

#[test]
fn stderr_flood_is_drained_and_readable() {
    let mut child = fixture("flood", &["160000", "err"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(child.ask("still talking").unwrap(), "still talking");
    assert!(
        child
            .read_stderr_line()
            .unwrap()
            .starts_with("flood line 00000000")
    );
}

#[test]
fn stderr_lines_are_read_and_expected_separately() {
    let mut child = fixture("stderr", &["Password:"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(
        child.expect_stderr("Password:").unwrap().as_str(),
        "Password:"
    );
    assert_eq!(child.ask("out").unwrap(), "out");
}

#[test]
fn errors_include_the_tail_of_captured_stderr() {
    let mut child = Command::new("sh")
        .args(["-c", "echo 'fatal: config missing' >&2; exit 1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.read_line().unwrap_err();
    let Error::Eof { stderr, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(stderr, "fatal: config missing");
    assert!(err.to_string().contains("fatal: config missing"));
}

#[test]
fn merge_stderr_sends_it_to_stdout() {
    let mut child = fixture("stderr", &["to stderr"])
        .merge_stderr(true)
        .spawn()
        .unwrap();
    assert_eq!(child.read_line().unwrap(), "to stderr");
}

#[test]
fn lines_iterates_until_end_of_output() {
    let mut child = Command::new("sh")
        .args(["-c", "printf 'a\\nb\\nc'"])
        .spawn()
        .unwrap();
    let lines: Vec<String> = child.lines().collect::<Result<_, _>>().unwrap();
    assert_eq!(lines, ["a", "b", "c"]);
}

#[test]
fn close_stdin_gives_the_child_end_of_file() {
    let mut child = fixture("count", &[]).spawn().unwrap();
    child.send("abc\ndef").unwrap();
    child.close_stdin().unwrap();
    assert_eq!(child.read_line().unwrap(), "7 bytes 1 lines");
}

#[test]
fn send_without_newline_and_send_bytes_are_exact() {
    let mut child = fixture("cat", &[]).spawn().unwrap();
    child.send("no newline|").unwrap();
    child.send_bytes(b"\x00\x01binary\n").unwrap();
    assert_eq!(
        child.read_line_bytes().unwrap(),
        b"no newline|\x00\x01binary"
    );
}

#[test]
fn read_available_returns_what_arrived() {
    let mut child = fixture("prompt", &["> "]).spawn().unwrap();
    let mut got = Vec::new();
    while got != b"> " {
        got.extend(child.read_available(Duration::from_secs(20)).unwrap());
    }
    assert!(
        child
            .read_available(Duration::from_millis(10))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn send_times_out_when_the_child_never_reads() {
    let mut child = fixture("hold", &[]).spawn().unwrap();
    child.signal(duet::Signal::SIGSTOP).unwrap();
    child.set_timeout(Duration::from_millis(100));
    let err = child.send_bytes(&vec![b'x'; 4 << 20]).unwrap_err();
    let Error::Timeout { expected, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(expected.contains("read its input"), "{expected}");
    child.kill().unwrap();
}

#[test]
fn transcript_records_both_directions() {
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
    let mut child = fixture("upper", &[]).spawn().unwrap();
    child.set_transcript(log.clone());
    assert_eq!(child.ask("hi").unwrap(), "HI");
    child.close_stdin().unwrap();
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let tags: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(tags, [">", "<", "#"]);
    assert!(text.contains("> hi\\n"), "{text}");
    assert!(text.contains("< HI\\n"), "{text}");
}
