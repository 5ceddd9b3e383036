//! The message channel: round trips, errors, and Python interop both ways.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Command;
use std::thread;
use std::time::Duration;

use duet::Error;
use duet::channel::{self, CHANNEL_FD_ENV, Connection};
use serde::{Deserialize, Serialize};

/// A generous bound for waits that should end at once; never asserted on.
const PATIENCE: Duration = Duration::from_secs(30);

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Writes raw bytes to a descriptor (to forge frames).
fn write_raw(fd: impl AsFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = nix::unistd::write(&fd, bytes).expect("write");
        bytes = &bytes[n..];
    }
}

/// Starts the fixture in `mode` with a channel (`Command::channel`);
/// returns the child and the parent's end.
fn fixture(args: &[&str]) -> (duet::Child, Connection) {
    let mut child = crate::util::fixture(args[0], &args[1..])
        .channel()
        .spawn()
        .unwrap();
    let conn = child.take_channel().expect("a channel was asked for");
    (child, conn)
}

fn finish(mut child: duet::Child, mut conn: Connection) {
    conn.close();
    let status = child.wait().unwrap();
    assert!(status.success(), "child exited with {status}");
}

#[test]
fn round_trip_empty_1_byte_64_kib_16_mib_through_a_child() {
    let (child, mut conn) = fixture(&["channel-echo"]);
    for (i, len) in [0, 1, 64 * 1024, 16 * 1024 * 1024].into_iter().enumerate() {
        let msg = pattern(len, i as u8);
        conn.send_bytes(&msg).unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), msg, "length {len}");
    }
    finish(child, conn);
}

#[test]
fn round_trip_between_threads() {
    let (mut a, mut b) = channel::pipe().unwrap();
    let sizes = [0, 1, 64 * 1024, 16 * 1024 * 1024];
    let echo = thread::spawn(move || {
        for _ in sizes {
            let msg = b.recv_bytes().unwrap();
            b.send_bytes(&msg).unwrap();
        }
    });
    for (i, len) in sizes.into_iter().enumerate() {
        let msg = pattern(len, i as u8);
        a.send_bytes(&msg).unwrap();
        assert_eq!(a.recv_bytes().unwrap(), msg);
    }
    echo.join().unwrap();
}

#[test]
fn many_messages_in_flight_come_back_in_order() {
    // 20 MB go out before anything is read back: the echo's replies fill
    // our socket buffer meanwhile, and sending must not deadlock on that.
    let (child, mut conn) = fixture(&["channel-echo"]);
    let count = 5000;
    for i in 0..count {
        conn.send_bytes(&pattern(i % 8000, i as u8)).unwrap();
    }
    for i in 0..count {
        assert_eq!(
            conn.recv_bytes().unwrap(),
            pattern(i % 8000, i as u8),
            "message {i}"
        );
    }
    finish(child, conn);
}

#[test]
fn two_peers_sending_large_messages_at_once_do_not_deadlock() {
    let (mut a, mut b) = channel::pipe().unwrap();
    let big = pattern(8 * 1024 * 1024, 1);
    let big2 = big.clone();
    let other = thread::spawn(move || {
        b.send_bytes(&big2).unwrap();
        b.recv_bytes().unwrap()
    });
    a.send_bytes(&big).unwrap();
    assert_eq!(a.recv_bytes().unwrap(), big);
    assert_eq!(other.join().unwrap(), big);
}

#[test]
fn poll_without_data_is_false_and_with_data_true() {
    let (mut a, mut b) = channel::pipe().unwrap();
    assert!(!a.poll(Some(Duration::ZERO)).unwrap());
    assert!(!a.poll(Some(Duration::from_millis(20))).unwrap());
    b.send_bytes(b"x").unwrap();
    assert!(a.poll(Some(PATIENCE)).unwrap());
    assert!(a.poll(None).unwrap());
    assert_eq!(a.recv_bytes().unwrap(), b"x");
    assert!(!a.poll(Some(Duration::ZERO)).unwrap());
    drop(b);
    assert!(
        a.poll(Some(PATIENCE)).unwrap(),
        "end of file makes poll true"
    );
    assert!(a.recv_bytes().unwrap_err().is_eof());
}

#[test]
fn poll_waits_for_a_message_from_another_process() {
    let (child, mut conn) = fixture(&["channel-echo"]);
    conn.send_bytes(b"late").unwrap();
    assert!(conn.poll(None).unwrap());
    assert_eq!(conn.recv_bytes().unwrap(), b"late");
    finish(child, conn);
}

#[test]
fn eof_at_a_frame_boundary_after_the_last_message() {
    let (mut a, mut b) = channel::pipe().unwrap();
    a.send_bytes(b"one").unwrap();
    a.send_bytes(b"").unwrap();
    a.close();
    assert_eq!(b.recv_bytes().unwrap(), b"one");
    assert_eq!(b.recv_bytes().unwrap(), b"");
    let err = b.recv_bytes().unwrap_err();
    assert!(matches!(err, Error::Eof { status: None, .. }), "{err:?}");
    assert!(b.recv_bytes().unwrap_err().is_eof(), "end of file stays");
    let mut buf = [0u8; 4];
    assert!(b.recv_bytes_into(&mut buf).unwrap_err().is_eof());
}

#[test]
fn close_in_the_middle_of_a_frame_is_truncated() {
    let (mut a, b) = channel::pipe().unwrap();
    let mut frame = 100u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[7; 30]);
    write_raw(&b, &frame);
    drop(b);
    let err = a.recv_bytes().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Truncated {
                expected: 100,
                got: 30
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("30 of 100"), "{err}");
    assert!(a.recv_bytes().unwrap_err().is_eof());
}

#[test]
fn close_in_the_middle_of_a_header_is_truncated() {
    let (mut a, b) = channel::pipe().unwrap();
    write_raw(&b, &[0, 0]);
    drop(b);
    let err = a.recv_bytes().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Truncated {
                expected: 4,
                got: 2
            }
        ),
        "{err:?}"
    );
}

#[test]
fn message_too_long_is_skipped_and_the_next_one_arrives() {
    let (mut a, mut b) = channel::pipe().unwrap();
    a.send_bytes(&[1; 100]).unwrap();
    a.send_bytes(b"next").unwrap();
    let err = b.recv_bytes_max(10).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MessageTooLong {
                len: 100,
                limit: 10
            }
        ),
        "{err:?}"
    );
    assert_eq!(b.recv_bytes_max(10).unwrap(), b"next");
    assert_eq!(b.buffered(), 0);
}

#[test]
fn message_too_long_larger_than_the_socket_buffer_is_skipped() {
    let (child, mut conn) = fixture(&["channel-echo"]);
    let big = pattern(4 * 1024 * 1024, 3);
    conn.send_bytes(&big).unwrap();
    conn.send_bytes(b"after").unwrap();
    let err = conn.recv_bytes_max(1024).unwrap_err();
    assert!(matches!(err, Error::MessageTooLong { len, .. } if len == big.len() as u64));
    assert_eq!(conn.recv_bytes_max(1024).unwrap(), b"after");
    finish(child, conn);
}

#[test]
fn buffer_too_short_keeps_the_message_for_a_bigger_buffer() {
    let (mut a, mut b) = channel::pipe().unwrap();
    let msg = pattern(300, 4);
    a.send_bytes(&msg).unwrap();
    a.send_bytes(b"then").unwrap();
    let mut small = [0u8; 299];
    let err = b.recv_bytes_into(&mut small).unwrap_err();
    assert!(
        matches!(err, Error::BufferTooShort { needed: 300 }),
        "{err:?}"
    );
    let mut buf = vec![0u8; 1000];
    assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 300);
    assert_eq!(&buf[..300], &msg[..]);
    assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"then");
}

#[test]
fn recv_bytes_into_a_large_message_through_a_child() {
    let (child, mut conn) = fixture(&["channel-echo"]);
    let msg = pattern(3 * 1024 * 1024, 5);
    conn.send_bytes(&msg).unwrap();
    let mut small = vec![0u8; 1024];
    assert!(matches!(
        conn.recv_bytes_into(&mut small),
        Err(Error::BufferTooShort { needed }) if needed == msg.len()
    ));
    let mut buf = vec![0u8; msg.len()];
    assert_eq!(conn.recv_bytes_into(&mut buf).unwrap(), msg.len());
    assert!(buf == msg);
    finish(child, conn);
}

#[test]
fn recv_timeout_keeps_a_partial_frame_for_the_next_call() {
    let (mut a, b) = channel::pipe().unwrap();
    let msg = pattern(100, 6);
    let mut frame = 100u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&msg);
    write_raw(&b, &frame[..50]);
    let err = a.recv_bytes_timeout(Duration::from_millis(20)).unwrap_err();
    let Error::Timeout {
        expected, partial, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(expected, "a message");
    assert_eq!(
        partial.as_bytes(),
        String::from_utf8_lossy(&msg[..46]).as_bytes()
    );
    assert!(err.is_timeout());
    write_raw(&b, &frame[50..]);
    assert_eq!(a.recv_bytes_timeout(PATIENCE).unwrap(), msg);
}

#[test]
fn recv_timeout_with_nothing_sent_times_out_and_then_receives() {
    let (mut a, mut b) = channel::pipe().unwrap();
    let err = a.recv_bytes_timeout(Duration::ZERO).unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { partial, .. } if partial.is_empty()),
        "{err:?}"
    );
    assert!(err.to_string().contains("nothing arrived"), "{err}");
    b.send(&42).unwrap();
    assert_eq!(a.recv_timeout::<i32>(PATIENCE).unwrap(), 42);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u32,
    name: String,
    tags: Vec<String>,
}

#[test]
fn json_values_round_trip_and_bad_json_is_an_error() {
    let (mut a, mut b) = channel::pipe().unwrap();
    let job = Job {
        id: 7,
        name: "résumé".into(),
        tags: vec!["a".into(), "b".into()],
    };
    a.send(&job).unwrap();
    assert_eq!(b.recv::<Job>().unwrap(), job);
    a.send_bytes(b"not json").unwrap();
    assert!(matches!(b.recv::<Job>(), Err(Error::Json(_))));
    a.send(&1).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 1, "a bad message is consumed");
}

#[test]
fn json_through_a_rust_child() {
    let (child, mut conn) = fixture(&["channel-json"]);
    conn.send(&serde_json::json!({"n": [1, 2]})).unwrap();
    let reply: serde_json::Value = conn.recv().unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"got": {"n": [1, 2]}, "from": "rust"})
    );
    finish(child, conn);
}

#[test]
fn sending_to_a_closed_peer_is_epipe() {
    let (mut a, b) = channel::pipe().unwrap();
    drop(b);
    let err = a.send_bytes(b"anyone?").unwrap_err();
    let Error::Io(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn close_is_idempotent_and_later_calls_fail() {
    let (mut a, _b) = channel::pipe().unwrap();
    a.close();
    a.close();
    assert!(a.is_closed());
    for err in [
        a.send_bytes(b"x").unwrap_err(),
        a.recv_bytes().unwrap_err(),
        a.poll(Some(Duration::ZERO)).unwrap_err(),
    ] {
        let Error::Io(e) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
    }
    assert!(a.into_owned_fd().is_err());
}

#[test]
fn send_bytes_range_sends_the_slice_and_checks_bounds() {
    let (mut a, mut b) = channel::pipe().unwrap();
    a.send_bytes_range(b"0123456789", 2, 5).unwrap();
    a.send_bytes_range(b"0123456789", 10, 0).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"23456");
    assert_eq!(b.recv_bytes().unwrap(), b"");
    for (offset, len) in [(8, 5), (11, 0), (usize::MAX, 2)] {
        let err = a.send_bytes_range(b"0123456789", offset, len).unwrap_err();
        assert!(matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::InvalidInput));
    }
}

#[test]
fn simplex_carries_messages_one_way() {
    let (mut rx, mut tx) = channel::simplex().unwrap();
    tx.send_bytes(b"one").unwrap();
    tx.send(&[1, 2]).unwrap();
    assert!(rx.poll(Some(PATIENCE)).unwrap());
    assert_eq!(rx.recv_bytes().unwrap(), b"one");
    assert_eq!(rx.recv::<Vec<u8>>().unwrap(), [1, 2]);
    let big = pattern(1024 * 1024, 9);
    let big2 = big.clone();
    let writer = thread::spawn(move || {
        tx.send_bytes(&big2).unwrap();
        tx
    });
    assert_eq!(rx.recv_bytes().unwrap(), big);
    drop(writer.join().unwrap());
    assert!(rx.recv_bytes().unwrap_err().is_eof());
}

#[test]
fn simplex_sender_to_a_closed_pipe_is_epipe() {
    let (rx, mut tx) = channel::simplex().unwrap();
    drop(rx);
    let err = tx.send_bytes(b"x").unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::BrokenPipe),
        "{err:?}"
    );
}

#[test]
fn connection_from_and_into_owned_fd() {
    let (a, mut b) = channel::pipe().unwrap();
    let fd: OwnedFd = a.into_owned_fd().unwrap();
    let mut a = Connection::from(fd);
    a.send_bytes(b"still works").unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"still works");
    assert!(format!("{a:?}").contains("Connection"));
}

#[test]
fn descriptors_are_close_on_exec() {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let (a, b) = channel::pipe().unwrap();
    let (rx, tx) = channel::simplex().unwrap();
    for fd in [a.as_fd(), b.as_fd(), rx.as_fd(), tx.as_fd()] {
        let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD).unwrap());
        assert!(flags.contains(FdFlag::FD_CLOEXEC));
    }
}

#[test]
fn from_env_rejects_a_bad_variable_and_a_descriptor_that_is_no_channel() {
    for (value, needle) in [
        ("seven", "is not a descriptor number"),
        ("0", "is not a socket or a pipe"),
        ("999", "DUET_CHANNEL_FD=999"),
    ] {
        let out = crate::util::fixture("channel-echo", &[])
            .env(CHANNEL_FD_ENV, value)
            .stdin(duet::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{value}: {stderr}");
        assert!(stderr.contains(needle), "{value}: {stderr}");
    }
    let out = crate::util::fixture("channel-echo", &[])
        .env_remove(CHANNEL_FD_ENV)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("DUET_CHANNEL_FD is not set"));
}

#[test]
fn from_env_takes_the_descriptor_once_and_makes_it_close_on_exec() {
    let (mut child, conn) = fixture(&["channel-env-check"]);
    assert_eq!(child.read_line().unwrap(), "cloexec=true");
    let second = child.read_line().unwrap();
    assert!(second.contains("was already taken"), "{second}");
    finish(child, conn);
}

/// Runs `python3 -c script`, with `args`; returns its stdout, panicking
/// with a framed report when it fails.
fn python(script: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "\n--- python3 -c ---\n{script}\n--- status ---\n{}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}\n",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const PYTHON_PARENT: &str = r#"
import json, subprocess, sys
from multiprocessing import Pipe

fixture = sys.argv[1]

def run(mode, check):
    mine, theirs = Pipe()
    fd = theirs.fileno()
    child = subprocess.Popen([fixture, mode, str(fd)], pass_fds=(fd,))
    theirs.close()
    check(mine)
    mine.close()
    assert child.wait() == 0, child.returncode

def echo(conn):
    for n in (0, 1, 100, 16384, 16385, 70000, 3 * 1024 * 1024):
        msg = bytes(i * 7 % 251 for i in range(n))
        conn.send_bytes(msg)
        assert conn.recv_bytes() == msg, n
    conn.send_bytes(b"..range..", 2, 5)
    assert conn.recv_bytes() == b"range"
    buf = bytearray(10)
    conn.send_bytes(b"into")
    assert conn.recv_bytes_into(buf) == 4 and bytes(buf[:4]) == b"into"

def js(conn):
    conn.send_bytes(json.dumps({"py": [1, "two", None]}).encode())
    reply = json.loads(conn.recv_bytes())
    assert reply == {"got": {"py": [1, "two", None]}, "from": "rust"}, reply

run("channel-echo", echo)
run("channel-json", js)
print("ok")
"#;

#[test]
fn python_parent_with_a_rust_child_bytes_and_json() {
    let out = python(
        PYTHON_PARENT,
        Command::new("python3").args(["-c", PYTHON_PARENT, crate::util::FIXTURE]),
    );
    assert_eq!(out, "ok\n");
}

const PYTHON_CHILD: &str = r#"
import json, os
from multiprocessing.connection import Connection

conn = Connection(int(os.environ["DUET_CHANNEL_FD"]))
conn.send_bytes(b"hello from python")
conn.send_bytes(b"x" * 100000)
count = 0
while True:
    try:
        msg = conn.recv_bytes()
    except EOFError:
        break
    count += 1
    if msg.startswith(b"json:"):
        value = json.loads(msg[5:])
        conn.send_bytes(json.dumps({"got": value, "from": "python"}).encode())
    elif msg.startswith(b"{"):
        conn.send_bytes(json.dumps({"keys": sorted(json.loads(msg))}).encode())
    else:
        conn.send_bytes(msg)
print(count)
"#;

#[test]
fn rust_parent_with_a_python_child_bytes_and_json() {
    let mut child = duet::Command::new("python3")
        .args(["-c", PYTHON_CHILD])
        .channel()
        .timeout(Duration::from_secs(20))
        .spawn()
        .unwrap();
    let mut conn = child.take_channel().unwrap();

    assert_eq!(conn.recv_bytes().unwrap(), b"hello from python");
    assert_eq!(conn.recv_bytes().unwrap(), vec![b'x'; 100000]);
    let mut sent = 0;
    for (i, len) in [0, 1, 16384, 16385, 64 * 1024, 16 * 1024 * 1024]
        .into_iter()
        .enumerate()
    {
        let msg = pattern(len, i as u8);
        conn.send_bytes(&msg).unwrap();
        sent += 1;
        assert_eq!(conn.recv_bytes().unwrap(), msg, "length {len}");
    }
    let job = Job {
        id: 1,
        name: "py".into(),
        tags: vec![],
    };
    conn.send(&job).unwrap();
    sent += 1;
    let reply: serde_json::Value = conn.recv().unwrap();
    assert_eq!(reply, serde_json::json!({"keys": ["id", "name", "tags"]}));
    conn.send_bytes(b"json:[1, 2.5, \"three\"]").unwrap();
    sent += 1;
    let reply: serde_json::Value = conn.recv().unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"got": [1, 2.5, "three"], "from": "python"})
    );

    conn.close();
    assert_eq!(child.read_line().unwrap(), sent.to_string());
    let status = child.wait().unwrap();
    assert!(status.success(), "python exited with {status}");
}

#[test]
fn recv_timeout_keeps_a_partial_large_message() {
    use std::sync::mpsc;
    let (mut a, b) = channel::pipe().unwrap();
    let msg = pattern(1024 * 1024, 2);
    let mut frame = (msg.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&msg);
    let (done_tx, done) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let writer = thread::spawn(move || {
        write_raw(&b, &frame[..300_000]);
        done_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        write_raw(&b, &frame[300_000..]);
    });
    // Receive with timeouts (more than a socket buffer must be read while
    // the writer is still writing) until a timeout that began after the
    // writer had written everything: then all of it is buffered here.
    let mut written = false;
    loop {
        let started_after_writing = written;
        match a.recv_bytes_timeout(Duration::from_millis(10)) {
            Err(e) if e.is_timeout() && started_after_writing => break,
            Err(e) if e.is_timeout() => written = done.try_recv().is_ok(),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(a.buffered(), 300_000 - 4);
    go.send(()).unwrap();
    assert_eq!(a.recv_bytes_timeout(PATIENCE).unwrap(), msg);
    writer.join().unwrap();
    assert!(a.recv_bytes().unwrap_err().is_eof());
}

#[test]
fn long_header_frames_are_read_from_a_descriptor() {
    let (mut a, b) = channel::pipe().unwrap();
    let mut frame = (-1i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&5u64.to_be_bytes());
    frame.extend_from_slice(b"hello");
    write_raw(&b, &frame);
    assert_eq!(a.recv_bytes().unwrap(), b"hello");
}

#[test]
fn a_header_announcing_3_gib_is_refused_without_reading_or_allocating_it() {
    let (mut a, b) = channel::pipe().unwrap();
    let mut frame = (-1i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&(3u64 << 30).to_be_bytes());
    frame.extend_from_slice(&[0; 1000]);
    write_raw(&b, &frame);
    let err = a.recv_bytes_max(1 << 20).unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLong { len, limit: 1048576 } if len == 3 << 30),
        "{err:?}"
    );
    drop(b);
    let err = a.recv_bytes().unwrap_err();
    assert!(
        matches!(err, Error::Truncated { expected, got: 1000 } if expected == 3 << 30),
        "{err:?}"
    );
}

#[test]
fn a_lying_header_without_a_limit_is_truncated_not_a_huge_allocation() {
    let (mut a, b) = channel::pipe().unwrap();
    let mut frame = (-1i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&(1u64 << 40).to_be_bytes());
    frame.extend_from_slice(b"tiny");
    write_raw(&b, &frame);
    drop(b);
    let err = a.recv_bytes().unwrap_err();
    assert!(
        matches!(err, Error::Truncated { expected, got: 4 } if expected == 1 << 40),
        "{err:?}"
    );
}
