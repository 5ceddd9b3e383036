//! Waiting, signalling, terminating and dropping children.

use std::time::Duration;

use duet::{OnDrop, Signal, Stdio};

use crate::drive::{Conv, Start, both};
use crate::util::{FIXTURE, alive, fixture};

async fn wait_twice_returns_the_cached_status<C: Conv>() {
    let mut child = fixture("exit", &["7"]).start::<C>().unwrap();
    let first = child.wait().await.unwrap();
    assert_eq!(first.code(), Some(7));
    assert_eq!(child.wait().await.unwrap(), first);
    assert_eq!(child.try_wait().unwrap(), Some(first));
    assert_eq!(first.to_string(), "exited with code 7");
}

async fn kill_after_wait_is_a_no_op<C: Conv>() {
    let mut child = fixture("exit", &["0"]).start::<C>().unwrap();
    let status = child.wait().await.unwrap();
    child.kill().unwrap();
    child.signal(Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().await.unwrap(), status);
}

async fn wait_timeout_returns_none_while_running_then_the_status<C: Conv>() {
    let mut child = fixture("hold", &[]).start::<C>().unwrap();
    assert_eq!(
        child.wait_timeout(Duration::from_millis(20)).await.unwrap(),
        None
    );
    child.kill().unwrap();
    let status = child
        .wait_timeout(Duration::from_secs(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.signal(), Some(9));
    assert_eq!(status.to_string(), "killed by signal 9 (SIGKILL)");
}

async fn signal_death_is_reported_with_the_signal<C: Conv>() {
    let mut child = fixture("signal", &["15"]).start::<C>().unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(15));
    assert!(!status.success());
    assert_eq!(status.code(), None);
}

async fn terminate_stops_a_child_with_sigterm<C: Conv>() {
    let mut child = fixture("hold", &[]).start::<C>().unwrap();
    let status = child.terminate(Duration::from_secs(20)).await.unwrap();
    assert_eq!(status.signal(), Some(15));
}

async fn terminate_escalates_to_sigkill_when_sigterm_is_ignored<C: Conv>() {
    let mut child = fixture("ignore-term", &[]).start::<C>().unwrap();
    assert_eq!(child.read_line().await.unwrap(), "ready");
    let status = child.terminate(Duration::from_millis(100)).await.unwrap();
    assert_eq!(status.signal(), Some(9));
}

async fn terminate_works_on_a_stopped_child<C: Conv>() {
    let mut child = fixture("hold", &[]).start::<C>().unwrap();
    child.signal(Signal::SIGSTOP).unwrap();
    wait_until_stopped(child.id());
    // SIGCONT after SIGTERM: the SIGTERM ends it, no SIGKILL needed.
    let status = child.terminate(Duration::from_secs(20)).await.unwrap();
    assert_eq!(status.signal(), Some(15));
}

/// Blocks until the child `pid` of this process is stopped, without
/// reaping it or consuming the report (`WNOWAIT`). By number, in a test
/// only: the child is ours and unreaped, so the number cannot be reused.
fn wait_until_stopped(pid: u32) {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    let flags = WaitPidFlag::WSTOPPED | WaitPidFlag::WNOWAIT;
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    match waitid(Id::Pid(pid), flags) {
        Ok(WaitStatus::Stopped(..)) => {}
        other => panic!("pid {pid} did not stop: {other:?}"),
    }
}

/// A shell that stops itself, with a SIGTERM handler that says so.
const STOPS_ITSELF: &str =
    "trap 'echo cleaned up; exit 3' TERM; echo stopping; kill -STOP $$; echo resumed without TERM";

async fn terminate_lets_a_stopped_child_run_its_handler_within_the_grace<C: Conv>() {
    for group in [false, true] {
        let mut child = duet::Command::new("sh")
            .args(["-c", STOPS_ITSELF])
            .process_group(group)
            .timeout(Duration::from_secs(20))
            .start::<C>()
            .unwrap();
        assert_eq!(child.read_line().await.unwrap(), "stopping");
        wait_until_stopped(child.id());
        // Without SIGCONT it would sit stopped for the whole grace, then
        // die of SIGKILL without running its handler.
        let status = child.terminate(Duration::from_secs(60)).await.unwrap();
        assert_eq!(status.code(), Some(3), "group: {group}");
        assert_eq!(child.read_line().await.unwrap(), "cleaned up");
    }
}

async fn a_killer_signals_from_another_thread_while_this_one_reads<C: Conv>() {
    let mut child = fixture("echo", &[]).start::<C>().unwrap();
    assert_eq!(child.ask("hi").await.unwrap(), "hi");
    let killer = child.killer();
    let copy = killer.clone();
    assert_eq!(killer.id(), child.id());
    let watchdog = std::thread::spawn(move || copy.signal(Signal::SIGTERM));
    // Blocked in a read that only the watchdog's signal ends.
    let err = child.read_line().await.unwrap_err();
    assert!(err.is_eof(), "{err}");
    watchdog.join().unwrap().unwrap();
    assert_eq!(child.wait().await.unwrap().signal(), Some(15));
    // Reaped: a no-op from now on, also after the child is gone.
    killer.kill().unwrap();
    drop(child);
    killer.kill().unwrap();
}

async fn a_killer_that_outlives_its_child_never_signals_a_stranger<C: Conv>() {
    let mut child = fixture("exit", &["0"]).start::<C>().unwrap();
    let pid = child.id();
    let killer = child.killer();
    child.wait().await.unwrap();
    drop(child);
    let Some(mut stranger) = crate::util::stranger_with_pid(pid) else {
        // The system did not let the test give the pid away: the reaped
        // child is still a no-op target.
        return killer.kill().unwrap();
    };
    killer.kill().unwrap();
    killer.signal(Signal::SIGTERM).unwrap();
    // The stranger still waits for its line, then exits 42 as it meant to.
    use std::io::Write;
    stranger.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert_eq!(stranger.wait().unwrap().code(), Some(42));
}

#[test]
fn a_killer_is_clone_send_and_sync() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<duet::Killer>();
}

async fn killers_racing_the_reap_never_fail<C: Conv>() {
    // Each child is killed from another thread while this one reaps it:
    // whichever comes first, the signal is delivered or a no-op.
    // Alone, as a group, and as a group on the path for kernels before
    // 6.9, where the group is signalled by number under the reap lock.
    for (group, legacy) in [(false, false), (true, false), (true, true)]
        .into_iter()
        .cycle()
        .take(30)
    {
        let mut child = fixture("hold", &[])
            .process_group(group)
            .emulate_old_kernel(legacy)
            .start::<C>()
            .unwrap();
        let killers: Vec<_> = (0..3)
            .map(|_| {
                let k = child.killer();
                std::thread::spawn(move || k.kill())
            })
            .collect();
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9));
        for k in killers {
            k.join().unwrap().unwrap();
        }
    }
}

async fn process_group_kill_reaches_the_grandchild<C: Conv>() {
    let mut child = fixture("grandchild", &[])
        .process_group(true)
        .stdin(Stdio::null())
        .start::<C>()
        .unwrap();
    let grandchild: u32 = child.read_line().await.unwrap().parse().unwrap();
    assert!(alive(grandchild));
    // The fixture exits after printing; the grandchild holds on.
    child.terminate(Duration::from_secs(20)).await.unwrap();
    // The grandchild held our stdout pipe: end-of-file means it is gone.
    let err = child
        .read_line_timeout(Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(
        err.is_eof(),
        "grandchild {grandchild} survived the group kill: {err}"
    );
}

/// `sh -c 'server & wait'` in its own group: the wrapper dies at once on
/// SIGTERM, the server it started needs a while to clean up.
fn wrapped_server(server: &[&str], legacy: bool) -> duet::Command {
    let mut cmd = duet::Command::new("sh");
    cmd.args(["-c", r#""$0" "$@" & wait"#, FIXTURE])
        .args(server)
        .process_group(true)
        .stdin(Stdio::null())
        .timeout(Duration::from_secs(20))
        .emulate_old_kernel(legacy);
    cmd
}

async fn terminate_gives_every_member_of_the_group_the_grace_period<C: Conv>() {
    for legacy in [false, true] {
        let mut child = wrapped_server(&["term-cleanup", "300"], legacy)
            .start::<C>()
            .unwrap();
        assert_eq!(child.read_line().await.unwrap(), "ready");
        let status = child.terminate(Duration::from_secs(20)).await.unwrap();
        assert_eq!(status.signal(), Some(15), "the wrapper dies of SIGTERM");
        // The server was not killed mid-cleanup: its last words arrived.
        let rest = child.read_line().await;
        assert_eq!(rest.unwrap(), "cleaned up", "legacy={legacy}");
    }
}

async fn terminate_kills_what_is_left_of_the_group_at_the_deadline<C: Conv>() {
    for legacy in [false, true] {
        let mut child = wrapped_server(&["ignore-term"], legacy)
            .start::<C>()
            .unwrap();
        assert_eq!(child.read_line().await.unwrap(), "ready");
        let status = child.terminate(Duration::from_millis(200)).await.unwrap();
        assert_eq!(status.signal(), Some(15), "the wrapper dies of SIGTERM");
        // The member that ignores SIGTERM held our stdout: end-of-file
        // means the SIGKILL at the deadline reached it.
        let err = child.read_line().await.unwrap_err();
        assert!(err.is_eof(), "legacy={legacy}: {err}");
    }
}

#[test]
fn dropping_a_group_child_gives_its_members_the_grace_period() {
    let dir = std::env::temp_dir().join(format!("duet-test-{}-drop-grace", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cleanup");
    let mut child = wrapped_server(&["term-cleanup", "300", file.to_str().unwrap()], false)
        .on_drop(OnDrop::Terminate(Duration::from_secs(20)))
        .spawn()
        .unwrap();
    assert_eq!(child.read_line().unwrap(), "ready");
    drop(child);
    let written = std::fs::read_to_string(&file);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(written.unwrap(), "cleaned up\n");
}

#[test]
fn drop_terminates_and_reaps_a_running_child() {
    let child = fixture("ignore-term", &[])
        .on_drop(OnDrop::Terminate(Duration::from_millis(50)))
        .spawn()
        .unwrap();
    let pid = child.id();
    drop(child);
    assert!(!alive(pid), "pid {pid} still exists after drop");
}

#[test]
fn drop_with_wait_policy_lets_the_child_finish_on_eof() {
    let child = fixture("echo", &[]).on_drop(OnDrop::Wait).spawn().unwrap();
    let pid = child.id();
    drop(child);
    assert!(!alive(pid));
}

#[test]
fn drop_with_detach_leaves_the_child_running() {
    let child = fixture("hold", &[])
        .stdin(Stdio::null())
        .on_drop(OnDrop::Detach)
        .spawn()
        .unwrap();
    let pid = child.id();
    drop(child);
    assert!(alive(pid));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None).unwrap();
}

async fn wait_drains_output_so_a_chatty_child_cannot_block_it<C: Conv>() {
    let mut child = fixture("flood", &["100000"])
        .stdin(Stdio::null())
        .start::<C>()
        .unwrap();
    assert!(child.wait().await.unwrap().success());
    assert!(
        child
            .read_line()
            .await
            .unwrap()
            .starts_with("flood line 00000000")
    );
}

/// With SIGCHLD ignored the kernel reaps every child at once. Spawning
/// must still work every time (the pidfd comes from the creation, not from
/// a pid that may be gone), and waiting must give the output and a status
/// that is right or, where the kernel keeps none, unknown. Runs in a
/// fixture, since ignoring SIGCHLD here would disturb other tests.
async fn spawning_with_sigchld_ignored_never_fails_and_keeps_the_output<C: Conv>() {
    let out = fixture("sigchld-ignored", &["240"])
        .output_with::<C>()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("240 spawns, 0 failed,"), "{text}");

    // Where the kernel keeps no status for pidfds, every status is unknown
    // and the output is still all there.
    let out = fixture("sigchld-ignored", &["40", "legacy"])
        .output_with::<C>()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, "40 spawns, 0 failed, 40 statuses unknown\n");
}

/// Another part of the program reaps the child behind duet's back and its
/// pid goes to a new child of ours, which leads a group of that number.
/// duet must neither signal that stranger (or its group) nor take its
/// status: the wait gives the child's own status (the kernel keeps it for
/// the pidfd) or, on kernels that keep none, an unknown status.
async fn a_child_reaped_elsewhere_never_yields_or_signals_a_stranger<C: Conv>() {
    use nix::sys::wait::{WaitStatus, waitpid};
    use std::io::Write;
    for legacy in [false, true] {
        let mut child = fixture("exit", &["7"])
            .stdin(Stdio::null())
            .process_group(true)
            .emulate_old_kernel(legacy)
            .start::<C>()
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 7));
        let stranger = crate::util::stranger_with_pid(child.id());

        child.signal(Signal::SIGTERM).unwrap();
        child.kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(
            status.code() == Some(7) || status.is_unknown(),
            "legacy={legacy}: {status}"
        );
        assert_eq!(child.wait().await.unwrap(), status);
        assert_eq!(
            child.terminate(Duration::from_secs(1)).await.unwrap(),
            status
        );

        if let Some(mut stranger) = stranger {
            stranger.stdin.take().unwrap().write_all(b"bye\n").unwrap();
            let theirs = stranger.wait().unwrap();
            assert_eq!(theirs.code(), Some(42), "legacy={legacy}: {theirs}");
        }
    }
}

both!(
    wait_twice_returns_the_cached_status,
    kill_after_wait_is_a_no_op,
    wait_timeout_returns_none_while_running_then_the_status,
    signal_death_is_reported_with_the_signal,
    terminate_stops_a_child_with_sigterm,
    terminate_escalates_to_sigkill_when_sigterm_is_ignored,
    terminate_works_on_a_stopped_child,
    process_group_kill_reaches_the_grandchild,
    terminate_gives_every_member_of_the_group_the_grace_period,
    terminate_kills_what_is_left_of_the_group_at_the_deadline,
    wait_drains_output_so_a_chatty_child_cannot_block_it,
    spawning_with_sigchld_ignored_never_fails_and_keeps_the_output,
    a_child_reaped_elsewhere_never_yields_or_signals_a_stranger,
    terminate_lets_a_stopped_child_run_its_handler_within_the_grace,
    a_killer_signals_from_another_thread_while_this_one_reads,
    a_killer_that_outlives_its_child_never_signals_a_stranger,
    killers_racing_the_reap_never_fail,
);
