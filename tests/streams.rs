//! What arrives on each stream before a read sees it: escape sequences
//! stripped, an observer of the raw bytes, stderr read as stdout is, and
//! silence asserted without consuming anything.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use duet::{Command, Observed, Pattern, Stdio};

use crate::drive::{Conv, Start, both};

async fn strip_ansi_removes_colours_before_reads_patterns_and_watches<C: Conv>() {
    let mut grep = Command::new("grep")
        .args(["--color=always", "b"])
        .pty(true)
        .strip_ansi(true)
        .start::<C>()
        .unwrap();
    grep.fail_on(Pattern::exact("abc-fatal"));
    grep.send_line("abc").await.unwrap();
    assert_eq!(
        grep.expect(Pattern::line("^abc$").unwrap())
            .await
            .unwrap()
            .as_str(),
        "abc"
    );
    // The watch sees the text without the sequences grep puts around `b`.
    grep.send_line("abc-fatal").await.unwrap();
    assert!(matches!(
        grep.read_line().await,
        Err(duet::Error::FailOn { .. })
    ));
    assert_eq!(grep.read_line().await.unwrap(), "abc-fatal");
}

async fn strip_ansi_removes_a_sequence_cut_between_two_writes<C: Conv>() {
    // Half a sequence arrives with `x`; the rest only after the child's
    // next line of input.
    let mut sh = Command::new("sh")
        .args([
            "-c",
            r"printf 'x\033[1;3'; read go; printf '1my\033(B\033=\n'",
        ])
        .strip_ansi(true)
        .start::<C>()
        .unwrap();
    sh.expect("x").await.unwrap();
    sh.send_line("go").await.unwrap();
    assert_eq!(sh.read_line().await.unwrap(), "y");
}

async fn without_strip_ansi_the_sequences_arrive<C: Conv>() {
    let mut sh = Command::new("printf")
        .arg(r"\033[1mbold\033[0m\n")
        .start::<C>()
        .unwrap();
    assert_eq!(sh.read_line().await.unwrap(), "\x1b[1mbold\x1b[0m");
}

/// An observer that keeps what it sees, per kind.
fn keep_observed<C: Conv>(child: &mut C) -> Arc<Mutex<[Vec<u8>; 3]>> {
    let seen = Arc::new(Mutex::new([Vec::new(), Vec::new(), Vec::new()]));
    let keep = Arc::clone(&seen);
    child.set_observer(move |chunk| {
        let mut seen = keep.lock().unwrap();
        match chunk {
            Observed::Stdout(b) => seen[0].extend_from_slice(b),
            Observed::Stderr(b) => seen[1].extend_from_slice(b),
            Observed::Sent(b) => seen[2].extend_from_slice(b),
            _ => {}
        }
    });
    seen
}

async fn an_observer_sees_raw_output_of_both_streams_and_what_was_sent_but_no_secret<C: Conv>() {
    let mut sh = Command::new("sh")
        .args([
            "-c",
            r"read pw; read go; printf '\033[1mout\033[0m\n'; echo err >&2",
        ])
        .stderr(Stdio::piped())
        .strip_ansi(true)
        .start::<C>()
        .unwrap();
    let seen = keep_observed(&mut sh);
    sh.send_secret("hunter2\n").await.unwrap();
    sh.send_line("go").await.unwrap();
    assert_eq!(sh.read_line().await.unwrap(), "out");
    assert_eq!(sh.read_stderr_line().await.unwrap(), "err");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], b"\x1b[1mout\x1b[0m\n");
    assert_eq!(seen[1], b"err\n");
    assert_eq!(seen[2], b"go\n");
}

async fn an_observer_and_a_transcript_record_side_by_side<C: Conv>() {
    // One file per driver: both run at once.
    let driver = std::any::type_name::<C>().replace("::", "-");
    let path = std::env::temp_dir().join(format!("duet-observer-{}-{driver}", std::process::id()));
    let mut cat = Command::new("cat").start::<C>().unwrap();
    let seen = keep_observed(&mut cat);
    cat.set_transcript(std::fs::File::create(&path).unwrap());
    assert_eq!(cat.ask("hello").await.unwrap(), "hello");
    cat.send_control('d').await.unwrap();
    drop(cat);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        text.contains(" > hello\\n") && text.contains(" < hello\\n"),
        "{text}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(
        (&seen[0][..], &seen[2][..]),
        (&b"hello\n"[..], &b"hello\n\x04"[..])
    );
}

async fn stays_quiet_counts_only_new_bytes_and_consumes_nothing<C: Conv>() {
    let mut sh = Command::new("sh")
        .args(["-c", "echo early; read x; echo late"])
        .start::<C>()
        .unwrap();
    // `early` arrives: not quiet. Buffered, it no longer counts.
    assert!(!sh.stays_quiet(Duration::from_secs(20)).await.unwrap());
    assert!(sh.stays_quiet(Duration::from_millis(50)).await.unwrap());
    sh.send_line("x").await.unwrap();
    assert!(!sh.stays_quiet(Duration::from_secs(20)).await.unwrap());
    // Then stdout ends: nothing more can arrive.
    let err = sh.stays_quiet(Duration::from_secs(20)).await.unwrap_err();
    assert!(err.is_eof(), "{err}");
    assert_eq!(sh.read_line().await.unwrap(), "early");
    assert_eq!(sh.read_line().await.unwrap(), "late");
}

async fn stays_quiet_on_stdout_reports_a_watch_that_matched_on_stderr<C: Conv>() {
    let mut sh = Command::new("sh")
        .args([
            "-c",
            "read x; echo 'Traceback (most recent call last)' >&2; read y",
        ])
        .stderr(Stdio::piped())
        .start::<C>()
        .unwrap();
    sh.fail_on(Pattern::exact("Traceback"));
    sh.send_line("x").await.unwrap();
    match sh.stays_quiet(Duration::from_secs(60)).await {
        Err(duet::Error::FailOn { matched, .. }) => assert_eq!(matched, "Traceback"),
        other => panic!("{other:?}"),
    }
    assert!(
        sh.stderr_stays_quiet(Duration::from_millis(50))
            .await
            .unwrap()
    );
    assert_eq!(
        sh.read_stderr_line().await.unwrap(),
        "Traceback (most recent call last)"
    );
}

async fn python_prompts_and_errors_on_stderr_meet_expect_any_stderr<C: Conv>() {
    let mut py = Command::new("/usr/bin/python3")
        .args(["-i", "-q"])
        .env_remove("PYTHONUNBUFFERED")
        .env_remove("PYTHONSTARTUP")
        .stderr(Stdio::piped())
        .start::<C>()
        .unwrap();
    let prompt = [Pattern::exact(">>> "), Pattern::Eof];
    assert_eq!(py.expect_any_stderr(&prompt).await.unwrap().0, 0);
    py.send_line("1/0").await.unwrap();
    let error = [Pattern::line(r"^(\w+Error): (.*)$").unwrap(), Pattern::Eof];
    let (i, m) = py.expect_any_stderr(&error).await.unwrap();
    assert_eq!(
        (i, m.group(1), m.group(2)),
        (0, Some("ZeroDivisionError"), Some("division by zero"))
    );
    assert!(m.before().contains("Traceback"), "{}", m.before());
    py.close_stdin().await.unwrap();
    // The last prompt, then the end of stderr.
    let (i, m) = py.expect_any_stderr(&[Pattern::Eof]).await.unwrap();
    assert_eq!((i, m.before()), (0, ">>> \n"));
    assert!(
        py.read_stderr_available(Duration::ZERO)
            .await
            .unwrap_err()
            .is_eof()
    );
}

both!(
    strip_ansi_removes_colours_before_reads_patterns_and_watches,
    strip_ansi_removes_a_sequence_cut_between_two_writes,
    without_strip_ansi_the_sequences_arrive,
    an_observer_sees_raw_output_of_both_streams_and_what_was_sent_but_no_secret,
    an_observer_and_a_transcript_record_side_by_side,
    stays_quiet_counts_only_new_bytes_and_consumes_nothing,
    stays_quiet_on_stdout_reports_a_watch_that_matched_on_stderr,
    python_prompts_and_errors_on_stderr_meet_expect_any_stderr,
);
