//! Children that misbehave: every fault ends in a clear error, in bounded
//! time, with nothing lost and nothing left behind.

use std::io::ErrorKind;
use std::time::Duration;

use duet::{Command, Error, Stdio};

use crate::drive::{Conv, Start, both};
use crate::util::fixture;

async fn child_killed_with_sigkill_mid_reply_is_eof_with_the_partial_reply<C: Conv>() {
    let mut child = fixture("slow", &["100000"]).start::<C>().unwrap();
    child.send_line("question").await.unwrap();
    child.kill().unwrap();
    let err = child.read_line().await.unwrap_err();
    let Error::Eof { status, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(status.and_then(|s| s.signal()), Some(9));
}

async fn child_that_closes_stdout_but_keeps_running_is_eof_without_status<C: Conv>() {
    let mut child = fixture("close-stdout", &[]).start::<C>().unwrap();
    let err = child.read_line().await.unwrap_err();
    let Error::Eof { status, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, None, "it is still running");
    // It still reads its input, and ends at end of input.
    child.send_line("still there?").await.unwrap();
    child.close_stdin().await.unwrap();
    assert!(child.wait().await.unwrap().success());
}

async fn child_that_exits_while_duet_writes_a_large_input_is_broken_pipe<C: Conv>() {
    let mut child = Command::new("sh")
        .args(["-c", "head -c 1000 >/dev/null; exit 3"])
        .start::<C>()
        .unwrap();
    let big = vec![b'x'; 64 << 20];
    let err = child.send_bytes(&big).await.unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::BrokenPipe),
        "{err:?}"
    );
    assert_eq!(child.wait().await.unwrap().code(), Some(3));
}

async fn grandchild_holding_stdout_makes_reads_time_out_saying_the_child_exited<C: Conv>() {
    let mut child = fixture("grandchild", &[])
        .process_group(true)
        .stdin(Stdio::null())
        .start::<C>()
        .unwrap();
    let grandchild = child.read_line().await.unwrap();
    // wait() returns although the grandchild keeps the pipe open.
    assert!(child.wait().await.unwrap().success());
    let err = child
        .read_line_timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    let Error::Timeout { status, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(err.to_string().contains("still open"), "{err}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(grandchild.parse().unwrap()),
        duet::Signal::SIGKILL,
    )
    .unwrap();
    // With the grandchild gone the stream ends.
    assert!(child.read_line().await.unwrap_err().is_eof());
}

async fn a_transcript_on_a_full_disk_stops_without_breaking_the_conversation<C: Conv>() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = fixture("echo", &[]).start::<C>().unwrap();
    child.set_transcript(full);
    assert_eq!(child.ask("one").await.unwrap(), "one");
    assert_eq!(child.ask("two").await.unwrap(), "two");
    child.close_stdin().await.unwrap();
    assert!(child.wait().await.unwrap().success());
}

async fn a_secret_never_reaches_the_transcript<C: Conv>() {
    let path = crate::util::unique_temp("secret");
    let mut child = fixture("echo", &[]).start::<C>().unwrap();
    child.set_transcript(std::fs::File::create(&path).unwrap());
    child.send_secret("hunter2\n").await.unwrap();
    assert_eq!(child.read_line().await.unwrap(), "hunter2");
    child.send_line("public").await.unwrap();
    assert_eq!(child.read_line().await.unwrap(), "public");
    child.close_stdin().await.unwrap();
    child.wait().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let sent: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" > ") || l.contains(" # "))
        .collect();
    assert!(sent.iter().any(|l| l.contains("secret (8 bytes")), "{text}");
    assert!(sent.iter().any(|l| l.contains("> public")), "{text}");
    // The echo comes back from the child, but nothing duet sent shows it.
    assert!(!sent.iter().any(|l| l.contains("hunter2")), "{text}");
}

async fn an_environment_cleared_child_sees_no_inherited_variable<C: Conv>() {
    assert!(std::env::vars_os().count() > 0);
    let out = fixture("env", &[])
        .env_clear()
        .output_with::<C>()
        .await
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

async fn no_descriptor_leaks_with_piped_stderr_merge_and_pipe_size<C: Conv>() {
    let mut child = fixture("fds", &[])
        .stderr(Stdio::piped())
        .pipe_size(1 << 20)
        .use_fork(true)
        .start::<C>()
        .unwrap();
    let lines: Vec<String> = child.lines_to_end().await.unwrap();
    assert_eq!(lines, ["0", "1", "2"]);
    let out = fixture("fds", &[])
        .merge_stderr(true)
        .pty_stdout(true)
        .output_with::<C>()
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "0\n1\n2\n");
}

both!(
    child_killed_with_sigkill_mid_reply_is_eof_with_the_partial_reply,
    child_that_closes_stdout_but_keeps_running_is_eof_without_status,
    child_that_exits_while_duet_writes_a_large_input_is_broken_pipe,
    grandchild_holding_stdout_makes_reads_time_out_saying_the_child_exited,
    a_transcript_on_a_full_disk_stops_without_breaking_the_conversation,
    a_secret_never_reaches_the_transcript,
    an_environment_cleared_child_sees_no_inherited_variable,
    no_descriptor_leaks_with_piped_stderr_merge_and_pipe_size,
);
