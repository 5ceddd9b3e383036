//! Children that misbehave: every fault ends in a clear error, in bounded
//! time, with nothing lost and nothing left behind.

use std::io::ErrorKind;
use std::time::Duration;

use duet::{Command, Error, Stdio};

use crate::util::fixture;

#[test]
fn child_killed_with_sigkill_mid_reply_is_eof_with_the_partial_reply() {
    let mut child = fixture("slow", &["100000"]).spawn().unwrap();
    child.send_line("question").unwrap();
    child.kill().unwrap();
    let err = child.read_line().unwrap_err();
    let Error::Eof { status, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(status.and_then(|s| s.signal()), Some(9));
}

#[test]
fn child_that_closes_stdout_but_keeps_running_is_eof_without_status() {
    let mut child = fixture("close-stdout", &[]).spawn().unwrap();
    let err = child.read_line().unwrap_err();
    let Error::Eof { status, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, None, "it is still running");
    // It still reads its input, and ends at end of input.
    child.send_line("still there?").unwrap();
    child.close_stdin().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn child_that_exits_while_duet_writes_a_large_input_is_broken_pipe() {
    let mut child = Command::new("sh")
        .args(["-c", "head -c 1000 >/dev/null; exit 3"])
        .spawn()
        .unwrap();
    let big = vec![b'x'; 64 << 20];
    let err = child.send_bytes(&big).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::BrokenPipe),
        "{err:?}"
    );
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

#[test]
fn grandchild_holding_stdout_makes_reads_time_out_saying_the_child_exited() {
    let mut child = fixture("grandchild", &[])
        .process_group(true)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let grandchild = child.read_line().unwrap();
    // wait() returns although the grandchild keeps the pipe open.
    assert!(child.wait().unwrap().success());
    let err = child
        .read_line_timeout(Duration::from_millis(100))
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
    assert!(child.read_line().unwrap_err().is_eof());
}

#[test]
fn a_transcript_on_a_full_disk_stops_without_breaking_the_conversation() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = fixture("echo", &[]).spawn().unwrap();
    child.set_transcript(full);
    assert_eq!(child.ask("one").unwrap(), "one");
    assert_eq!(child.ask("two").unwrap(), "two");
    child.close_stdin().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_secret_never_reaches_the_transcript() {
    let path = std::env::temp_dir().join(format!("duet-test-{}-secret", std::process::id()));
    let mut child = fixture("echo", &[]).spawn().unwrap();
    child.set_transcript(std::fs::File::create(&path).unwrap());
    child.send_secret("hunter2\n").unwrap();
    assert_eq!(child.read_line().unwrap(), "hunter2");
    child.send_line("public").unwrap();
    assert_eq!(child.read_line().unwrap(), "public");
    child.close_stdin().unwrap();
    child.wait().unwrap();
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

#[test]
fn an_environment_cleared_child_sees_no_inherited_variable() {
    assert!(std::env::vars_os().count() > 0);
    let out = fixture("env", &[]).env_clear().output().unwrap();
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn no_descriptor_leaks_with_piped_stderr_merge_and_pipe_size() {
    let mut child = fixture("fds", &[])
        .stderr(Stdio::piped())
        .pipe_size(1 << 20)
        .use_fork(true)
        .spawn()
        .unwrap();
    let lines: Vec<String> = child.lines().collect::<Result<_, _>>().unwrap();
    assert_eq!(lines, ["0", "1", "2"]);
    let out = fixture("fds", &[])
        .merge_stderr(true)
        .pty_stdout(true)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "0\n1\n2\n");
}
