//! What only the async driver has: cancellation, concurrency on one
//! thread, `Send` futures, a drop that never blocks, and the async message
//! channel. (The conversation itself runs through both drivers in the
//! other modules.)

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use duet::{Command, Error, OnDrop, Pattern, Stdio};
use tokio::sync::Notify;

use crate::drive::runtime;
use crate::util::{alive, fixture};

/// A transcript writer the test can await: it says when a given text has
/// been *read from the child* (the transcript records bytes as they leave
/// the pipe), which tells that a read, expect or wait has pulled them in
/// before it is cancelled.
#[derive(Clone, Default)]
struct Tap {
    text: Arc<Mutex<Vec<u8>>>,
    changed: Arc<Notify>,
}

impl Write for Tap {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.text.lock().unwrap().extend_from_slice(b);
        self.changed.notify_one();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Tap {
    /// Resolves once the transcript shows `text` received from the child
    /// (`< text`, escaped as the transcript writes it).
    async fn received(&self, text: &str) {
        let wanted = format!("< {}", text.escape_default());
        loop {
            let seen = String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned();
            if seen.lines().any(|l| l.contains(&wanted)) {
                return;
            }
            self.changed.notified().await;
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// A pipe (read end, write end), both close-on-exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
}

#[test]
fn a_read_dropped_by_select_loses_nothing() {
    block_on(async {
        let mut child = fixture("prompt", &["name? "]).spawn_async().unwrap();
        let tap = Tap::default();
        child.set_transcript(tap.clone());
        tokio::select! {
            biased;
            line = child.read_line() => panic!("no line was complete: {line:?}"),
            () = tap.received("name? ") => {}
        }
        // The dropped read had taken the prompt from the pipe; it is still
        // the start of the next line.
        child.send_line("bob").await.unwrap();
        assert_eq!(child.read_line().await.unwrap(), "name? bob");
    });
}

#[test]
fn an_expect_dropped_by_select_resumes_and_loses_nothing() {
    block_on(async {
        let mut child = Command::new("sh")
            .args(["-c", "echo one; echo two; read x; echo DONE"])
            .spawn_async()
            .unwrap();
        let tap = Tap::default();
        child.set_transcript(tap.clone());
        let done = Pattern::line("^DONE$").unwrap();
        tokio::select! {
            biased;
            m = child.expect(done.clone()) => panic!("DONE came early: {m:?}"),
            () = tap.received("two\n") => {}
        }
        child.send_line("go").await.unwrap();
        let m = child.expect(done).await.unwrap();
        assert_eq!((m.before(), m.as_str()), ("one\ntwo\n", "DONE"));
    });
}

#[test]
fn a_wait_dropped_by_select_loses_nothing() {
    block_on(async {
        let mut child = Command::new("sh")
            .args(["-c", "echo bye; read x; exit 4"])
            .spawn_async()
            .unwrap();
        let tap = Tap::default();
        child.set_transcript(tap.clone());
        tokio::select! {
            biased;
            status = child.wait_timeout(Duration::from_secs(60)) => {
                panic!("the child waits for a line: {status:?}")
            }
            () = tap.received("bye\n") => {}
        }
        // The output the wait read is kept, and a later wait reaps.
        assert_eq!(child.read_line().await.unwrap(), "bye");
        child.send_line("x").await.unwrap();
        assert_eq!(child.wait().await.unwrap().code(), Some(4));
    });
}

#[test]
fn a_send_dropped_mid_write_is_finished_before_the_next_send() {
    block_on(async {
        let mut cat = fixture("cat", &[]).spawn_async().unwrap();
        // Stopped, the child reads nothing: the send fills the pipe and waits.
        cat.signal(duet::Signal::SIGSTOP).unwrap();
        let line = format!("{}\n", "x".repeat(99));
        let payload = line.repeat(40_000);
        tokio::select! {
            biased;
            sent = cat.send(&payload) => panic!("4 MB went into a stopped child: {sent:?}"),
            () = std::future::ready(()) => {}
        }
        cat.signal(duet::Signal::SIGCONT).unwrap();
        cat.send_line("after").await.unwrap();
        let mut lines = 0;
        loop {
            let got = cat.read_line().await.unwrap();
            if got == "after" {
                break;
            }
            assert_eq!(got.len(), 99, "line {lines} was cut: {got:?}");
            lines += 1;
        }
        assert_eq!(lines, 40_000);
    });
}

#[test]
fn terminate_with_a_long_grace_does_not_stall_other_tasks() {
    block_on(async {
        // Ignores SIGTERM; exits 7 once a line arrives on a pipe the test holds.
        let (release_r, release_w) = pipe();
        let mut stubborn = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; read x; exit 7"])
            .stdin(Stdio::from(release_r))
            .spawn_async()
            .unwrap();
        assert_eq!(stubborn.read_line().await.unwrap(), "ready");
        let mut echo = fixture("echo", &[]).spawn_async().unwrap();
        let (status, asked) = tokio::join!(stubborn.terminate(Duration::from_secs(60)), async {
            for i in 0..100 {
                assert_eq!(echo.ask(&i.to_string()).await.unwrap(), i.to_string());
            }
            // Only a task that ran during the grace period can let it go.
            std::fs::File::from(release_w).write_all(b"go\n").unwrap();
            100
        });
        assert_eq!(asked, 100);
        let status = status.unwrap();
        assert_eq!(
            status.code(),
            Some(7),
            "{status}: the grace period was not waited out"
        );
    });
}

#[test]
fn dropping_a_stubborn_child_does_not_stall_other_tasks() {
    let rt = runtime();
    let pid = rt.block_on(async {
        let (release_r, release_w) = pipe();
        let mut stubborn = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; read x; exit 7"])
            .stdin(Stdio::from(release_r))
            .on_drop(OnDrop::Terminate(Duration::from_secs(60)))
            .spawn_async()
            .unwrap();
        assert_eq!(stubborn.read_line().await.unwrap(), "ready");
        let pid = stubborn.id();
        drop(stubborn);
        // A drop that waited out the grace period would have killed it.
        assert!(alive(pid), "the drop blocked for the grace period");
        let mut echo = fixture("echo", &[]).spawn_async().unwrap();
        assert_eq!(echo.ask("meanwhile").await.unwrap(), "meanwhile");
        std::fs::File::from(release_w).write_all(b"go\n").unwrap();
        pid
    });
    drop(rt);
    assert!(!alive(pid), "pid {pid} was left behind");
}

/// The reaper runs `OnDrop` on the runtime: SIGTERM and the whole grace
/// period reach every member of the group (a blocking drop in the manner
/// of the blocking `Child`, or a SIGKILL, would show otherwise).
#[test]
fn a_dropped_group_child_gets_its_grace_period_from_the_runtime() {
    let dir = std::env::temp_dir().join(format!("duet-test-{}-async-grace", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cleanup");
    let rt = runtime();
    let pid = rt.block_on(async {
        // The server holds this pipe's write end: end-of-file on it means
        // the server has exited.
        let (gone_r, gone_w) = pipe();
        let script = r#""$0" "$@" & wait"#;
        let mut child = Command::new("sh")
            .args(["-c", script, crate::util::FIXTURE, "term-cleanup", "300"])
            .arg(&file)
            .process_group(true)
            .stdin(Stdio::null())
            .stderr(Stdio::from(gone_w))
            .on_drop(OnDrop::Terminate(Duration::from_secs(20)))
            .spawn_async()
            .unwrap();
        assert_eq!(child.read_line().await.unwrap(), "ready");
        let pid = child.id();
        drop(child);
        let mut gone = tokio::net::unix::pipe::Receiver::from_owned_fd(gone_r).unwrap();
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut gone, &mut rest)
            .await
            .unwrap();
        pid
    });
    drop(rt);
    let written = std::fs::read_to_string(&file);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(written.unwrap(), "cleaned up\n");
    assert!(!alive(pid));
}

#[test]
fn a_child_dropped_just_before_the_runtime_shuts_down_is_reaped() {
    for policy in [
        OnDrop::Terminate(Duration::from_secs(60)),
        OnDrop::default(),
    ] {
        let rt = runtime();
        let pid = rt.block_on(async {
            let mut child = fixture("ignore-term", &[])
                .on_drop(policy)
                .spawn_async()
                .unwrap();
            assert_eq!(child.read_line().await.unwrap(), "ready");
            child.id()
        });
        // The child was dropped with the block_on future; its reaper is a
        // task the shutdown drops.
        drop(rt);
        assert!(!alive(pid), "{policy:?}: pid {pid} was left behind");
    }
}

#[test]
fn a_child_dropped_without_a_runtime_is_reaped() {
    let rt = runtime();
    let child = rt.block_on(async { fixture("ignore-term", &[]).spawn_async().unwrap() });
    drop(rt);
    let pid = child.id();
    drop(child);
    assert!(!alive(pid), "pid {pid} was left behind");
}

/// A child spawned on a runtime that is gone now, after a first exchange.
fn orphaned_child(cmd: &mut Command) -> duet::tokio::Child {
    let first = runtime();
    let child = first.block_on(async {
        let mut child = cmd.spawn_async().unwrap();
        assert_eq!(child.ask("on the first").await.unwrap(), "on the first");
        child
    });
    drop(first);
    child
}

#[test]
fn a_child_is_awaited_on_another_runtime_once_the_first_is_gone() {
    let mut child = orphaned_child(&mut fixture("echo", &[]));
    runtime().block_on(async {
        // Reads, writes, a timer, an expect and the exit: every wait.
        assert_eq!(child.ask("on the second").await.unwrap(), "on the second");
        let err = child
            .read_line_timeout(Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        child.send_line("ok then").await.unwrap();
        child.expect(Pattern::exact("ok")).await.unwrap();
        let status = child.terminate(Duration::from_secs(20)).await.unwrap();
        assert_eq!(status.signal(), Some(15));
    });
}

#[test]
fn a_child_moves_between_two_live_runtimes_and_back() {
    // The first runtime stays alive but idle: its reactor does not turn
    // while the second one awaits, so the child must wait on the second's.
    let first = runtime();
    let second = runtime();
    let mut child = first.block_on(async { fixture("echo", &[]).spawn_async().unwrap() });
    for round in 0..3 {
        let rt = if round % 2 == 0 { &second } else { &first };
        rt.block_on(async {
            let line = format!("round {round}");
            assert_eq!(child.ask(&line).await.unwrap(), line);
        });
    }
    second.block_on(async {
        child.close_stdin().await.unwrap();
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn a_child_dropped_on_another_runtime_gets_its_grace_period_there() {
    let dir = crate::util::unique_temp("cross-runtime-grace");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cleanup");
    // The child holds this pipe's write end: end-of-file on it means the
    // child has exited.
    let (gone_r, gone_w) = pipe();
    // The child answers the first exchange, then waits for SIGTERM.
    let script = r#"read line; echo "$line"; exec "$0" term-cleanup 0 "$1""#;
    let child = orphaned_child(
        Command::new("sh")
            .args(["-c", script, crate::util::FIXTURE])
            .arg(&file)
            .stderr(Stdio::from(gone_w))
            .on_drop(OnDrop::Terminate(Duration::from_secs(60))),
    );
    runtime().block_on(async move {
        let mut child = child;
        assert_eq!(child.read_line().await.unwrap(), "ready");
        // The reaper is a task of this runtime, waiting on the pidfd;
        // a reaper sent to the dead first runtime would SIGKILL at once.
        drop(child);
        let mut gone = tokio::net::unix::pipe::Receiver::from_owned_fd(gone_r).unwrap();
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut gone, &mut rest)
            .await
            .unwrap();
    });
    let written = std::fs::read_to_string(&file);
    std::fs::remove_dir_all(&dir).unwrap();
    // SIGTERM reached it and it cleaned up.
    assert_eq!(written.unwrap(), "cleaned up\n");
}

#[test]
fn spawn_async_outside_a_runtime_is_an_error_and_starts_nothing() {
    let err = fixture("echo", &[]).spawn_async().unwrap_err();
    let Error::Io(e) = &err else {
        panic!("{err:?}")
    };
    assert!(e.to_string().contains("tokio runtime"), "{e}");
}

#[test]
fn output_async_captures_both_streams() {
    block_on(async {
        let out = Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output_async()
            .await
            .unwrap();
        assert_eq!(
            (out.stdout, out.stderr),
            (b"out\n".to_vec(), b"err\n".to_vec())
        );
        assert_eq!(out.status.code(), Some(3));
    });
}

/// Every method's future is `Send` (checked by the compiler).
#[test]
fn every_future_is_send() {
    fn send<T: Send>(_: T) {}
    let _child = |c: &mut duet::tokio::Child| {
        send(c.send(""));
        send(c.send_line(""));
        send(c.send_bytes(b""));
        send(c.send_secret(""));
        send(c.send_control('c'));
        send(c.send_intr());
        send(c.send_eof());
        send(c.close_stdin());
        send(c.read_line());
        send(c.read_line_bytes());
        send(c.read_line_timeout(Duration::ZERO));
        send(c.ask(""));
        send(c.expect("x"));
        send(c.expect_timeout("x", Duration::ZERO));
        send(c.expect_any(&[]));
        send(c.expect_any_timeout(&[], Duration::ZERO));
        send(c.read_stderr_line());
        send(c.read_stderr_line_timeout(Duration::ZERO));
        send(c.expect_stderr("x"));
        send(c.read_available(Duration::ZERO));
        send(c.communicate(b"", None));
        send(c.wait());
        send(c.wait_timeout(Duration::ZERO));
        send(c.terminate(Duration::ZERO));
        send(c.lines().next_line());
    };
    let _connection = |c: &mut duet::tokio::Connection| {
        send(c.send_bytes(b""));
        send(c.send(&1));
        send(c.recv_bytes());
        send(c.recv_bytes_max(1));
        send(c.recv_bytes_into(&mut [0; 4]));
        send(c.recv::<u32>());
        send(c.poll(None));
    };
    let _command = |c: &mut Command| send(c.output_async());
}

/// Children, their futures and connections move between the threads of a
/// multi-thread runtime.
#[test]
fn children_and_their_futures_are_send() {
    fn send<T: Send>(t: T) -> T {
        t
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..8 {
            set.spawn(async move {
                let mut bc = Command::new("bc").arg("-q").spawn_async().unwrap();
                let answer = send(bc.ask(&format!("{i}*{i}"))).await.unwrap();
                send(bc.expect_any(&[Pattern::Timeout])).await.unwrap();
                send(bc.expect_timeout("x", Duration::ZERO))
                    .await
                    .unwrap_err();
                send(bc.read_line_timeout(Duration::ZERO))
                    .await
                    .unwrap_err();
                send(bc.send_control('j')).await.unwrap();
                send(bc.wait()).await.unwrap();
                answer.parse::<u32>().unwrap()
            });
        }
        let mut squares: Vec<u32> = set.join_all().await;
        squares.sort();
        assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);

        let (a, b) = duet::channel::pipe().unwrap();
        let (mut a, mut b) = (
            duet::tokio::Connection::from(a),
            duet::tokio::Connection::from(b),
        );
        let peer = tokio::spawn(async move {
            let msg = send(b.recv_bytes()).await.unwrap();
            send(b.send_bytes(&msg)).await.unwrap();
        });
        send(a.send(&[1, 2, 3])).await.unwrap();
        assert_eq!(send(a.recv::<Vec<u8>>()).await.unwrap(), [1, 2, 3]);
        peer.await.unwrap();
    });
}

// ---- the message channel -----------------------------------------------

#[test]
fn take_channel_gives_an_async_connection_to_a_python_child() {
    block_on(async {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import os, multiprocessing.connection as mc\n\
                 c = mc.Connection(int(os.environ['DUET_CHANNEL_FD']))\n\
                 while True:\n    c.send_bytes(c.recv_bytes().upper())",
            ])
            .channel()
            .spawn_async()
            .unwrap();
        let mut conn = child.take_channel().unwrap();
        for word in ["hello", "world"] {
            conn.send_bytes(word.as_bytes()).await.unwrap();
            assert_eq!(
                conn.recv_bytes().await.unwrap(),
                word.to_uppercase().as_bytes()
            );
        }
        let big = vec![b'a'; 5 << 20];
        conn.send_bytes(&big).await.unwrap();
        assert_eq!(
            conn.recv_bytes_max(5 << 20).await.unwrap(),
            vec![b'A'; 5 << 20]
        );
        assert!(child.take_channel().is_none());
    });
}

#[test]
fn a_converted_connection_keeps_what_the_blocking_one_had_buffered() {
    let (mut a, mut b) = duet::channel::pipe().unwrap();
    a.send_bytes(b"first").unwrap();
    a.send_bytes(b"second").unwrap();
    // The blocking receive reads both frames at once; the second stays buffered.
    assert_eq!(b.recv_bytes().unwrap(), b"first");
    assert!(b.buffered() > 0);
    let mut b = duet::tokio::Connection::from(b);
    block_on(async {
        assert_eq!(b.recv_bytes().await.unwrap(), b"second");
        drop(a);
        assert!(b.recv_bytes().await.unwrap_err().is_eof());
    });
}

#[test]
fn a_connection_is_used_on_another_runtime_once_the_first_is_gone() {
    let (a, b) = duet::channel::pipe().unwrap();
    let (mut a, mut b) = (
        duet::tokio::Connection::from(a),
        duet::tokio::Connection::from(b),
    );
    let first = runtime();
    first.block_on(async {
        a.send_bytes(b"on the first").await.unwrap();
        assert_eq!(b.recv_bytes().await.unwrap(), b"on the first");
        // A poll that times out sets a timer of this runtime.
        assert!(!b.poll(Some(Duration::from_millis(1))).await.unwrap());
    });
    drop(first);
    runtime().block_on(async {
        // Nothing there yet: the receive waits on this runtime's reactor.
        let (got, ()) = tokio::join!(b.recv_bytes(), async {
            tokio::task::yield_now().await;
            a.send_bytes(b"on the second").await.unwrap();
        });
        assert_eq!(got.unwrap(), b"on the second");
        assert!(!b.poll(Some(Duration::from_millis(1))).await.unwrap());
    });
}

#[test]
fn a_child_awaited_outside_any_runtime_is_a_clear_error() {
    let mut child = orphaned_child(&mut fixture("echo", &[]));
    // Another executor: no tokio runtime to wait on.
    let err = crate::drive::block_on(child.read_line()).unwrap_err();
    assert!(err.to_string().contains("outside a tokio runtime"), "{err}");
    // The child is still whole: on a runtime, the conversation goes on.
    runtime().block_on(async {
        assert_eq!(child.ask("still here").await.unwrap(), "still here");
    });
}

#[test]
fn a_receive_dropped_mid_message_loses_nothing() {
    block_on(async {
        let (a, b) = duet::channel::pipe().unwrap();
        let mut a = duet::tokio::Connection::from(a);
        let mut b = duet::tokio::Connection::from(b);
        // Two peers sending 8 MB each at once, in pieces the other side
        // receives in between: neither blocks the other.
        let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        let (sent, got) = tokio::join!(a.send_bytes(&big), async {
            // Cancel receives over and over while the message arrives.
            let mut cancelled = 0;
            let msg = loop {
                tokio::select! {
                    biased;
                    msg = b.recv_bytes() => break msg.unwrap(),
                    () = tokio::task::yield_now() => cancelled += 1,
                }
            };
            (msg, cancelled)
        });
        sent.unwrap();
        assert!(got.0 == big, "the message arrived changed");
        assert!(got.1 > 0, "no receive was cancelled");
    });
}

#[test]
fn poll_waits_for_a_message_or_times_out() {
    block_on(async {
        let (a, b) = duet::channel::pipe().unwrap();
        let (mut a, mut b) = (
            duet::tokio::Connection::from(a),
            duet::tokio::Connection::from(b),
        );
        assert!(!b.poll(Some(Duration::ZERO)).await.unwrap());
        assert!(!b.poll(Some(Duration::from_millis(20))).await.unwrap());
        a.send(&"hi").await.unwrap();
        assert!(b.poll(None).await.unwrap());
        assert_eq!(b.recv::<String>().await.unwrap(), "hi");
        b.close();
        assert!(b.recv_bytes().await.is_err());
    });
}
