//! Whole runs: `communicate` and `Command::output`.

use std::time::Duration;

use duet::{Command, Error, Stdio};

use crate::drive::{Conv, Start, both};
use crate::util::fixture;

async fn output_captures_both_streams_and_the_status<C: Conv>() {
    let out = Command::new("sh")
        .args(["-c", "echo out; echo err >&2; exit 3"])
        .output_with::<C>()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(!out.still_open);
}

async fn communicate_moves_100_mb_each_way_without_deadlock<C: Conv>() {
    let input = vec![b'z'; 100 << 20];
    let mut child = fixture("cat", &[])
        .stderr(Stdio::piped())
        .start::<C>()
        .unwrap();
    let out = child.communicate(&input, None).await.unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), input.len());
    assert!(out.stdout == input);
}

async fn communicate_with_big_pipes_is_byte_exact<C: Conv>() {
    let input: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut child = fixture("cat", &[]).pipe_size(1 << 20).start::<C>().unwrap();
    let out = child.communicate(&input, None).await.unwrap();
    assert!(out.stdout == input);
}

async fn communicate_timeout_returns_the_partial_output<C: Conv>() {
    let mut child = Command::new("sh")
        .args(["-c", "echo started; exec sleep 1000"])
        .start::<C>()
        .unwrap();
    let err = child
        .communicate(b"", Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    let Error::Timeout { partial, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(partial, "started\n");
}

async fn communicate_returns_when_a_grandchild_holds_the_pipe_and_says_so<C: Conv>() {
    let mut child = fixture("grandchild", &[])
        .process_group(true)
        .start::<C>()
        .unwrap();
    let out = child.communicate(b"", None).await.unwrap();
    assert!(out.status.success());
    assert!(out.still_open, "the grandchild still holds stdout");
    let grandchild: i32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(-(child.id() as i32)),
        duet::Signal::SIGKILL,
    )
    .or_else(|_| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(grandchild),
            duet::Signal::SIGKILL,
        )
    })
    .unwrap();
}

async fn output_with_stdin_from_a_file<C: Conv>() {
    let path = crate::util::unique_temp("input");
    std::fs::write(&path, "from a file\n").unwrap();
    let out = fixture("upper", &[])
        .stdin(Stdio::from(std::fs::File::open(&path).unwrap()))
        .output_with::<C>()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"FROM A FILE\n");
}

both!(
    output_captures_both_streams_and_the_status,
    communicate_moves_100_mb_each_way_without_deadlock,
    communicate_with_big_pipes_is_byte_exact,
    communicate_timeout_returns_the_partial_output,
    communicate_returns_when_a_grandchild_holds_the_pipe_and_says_so,
    output_with_stdin_from_a_file,
);
