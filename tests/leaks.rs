//! Resource accounting: these tests count this process's descriptors and
//! children, so they live in their own test binary where no other test
//! spawns at the same time, and take a lock against each other.

mod accounting;

use std::sync::Mutex;
use std::time::Duration;

use accounting::{children, open_fds};

static SERIAL: Mutex<()> = Mutex::new(());

const FIXTURE: &str = env!("CARGO_BIN_EXE_duet-fixture");

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_thousand_spawns_leave_descriptors_and_children_unchanged() {
    let _serial = lock();
    let fds = open_fds();
    let kids = children();
    for i in 0..1000 {
        let mut cmd = duet::Command::new(FIXTURE);
        cmd.arg("echo").timeout(Duration::from_secs(20));
        match i % 4 {
            0 => {
                let mut child = cmd.spawn().unwrap();
                assert_eq!(child.ask("x").unwrap(), "x");
                child.wait().unwrap();
            }
            1 => {
                cmd.stderr(duet::Stdio::piped()).use_fork(true);
                let child = cmd.spawn().unwrap();
                drop(child);
            }
            2 => {
                let mut child = cmd.pty(true).spawn().unwrap();
                assert_eq!(child.ask("y").unwrap(), "y");
            }
            _ => {
                let err = duet::Command::new("/nonexistent/prog").spawn().unwrap_err();
                assert!(matches!(err, duet::Error::Spawn { .. }));
            }
        }
    }
    assert_eq!(open_fds(), fds, "descriptors leaked");
    assert_eq!(children(), kids, "children left behind");
}

#[test]
fn output_and_exec_failures_leave_nothing_behind() {
    let _serial = lock();
    let fds = open_fds();
    let kids = children();
    for _ in 0..200 {
        let out = duet::Command::new(FIXTURE)
            .arg("exit")
            .arg("4")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4));
        let err = duet::Command::new(FIXTURE)
            .current_dir("/nonexistent")
            .spawn()
            .unwrap_err();
        assert!(err.to_string().contains("chdir"));
    }
    assert_eq!(open_fds(), fds, "descriptors leaked");
    assert_eq!(children(), kids, "children left behind");
}

/// Async children waited for, dropped running, on a pty, with a channel:
/// once the runtime is gone, every descriptor is closed (the runtime's own
/// too) and every child reaped.
#[cfg(feature = "tokio")]
#[test]
fn async_children_leave_descriptors_and_children_unchanged() {
    let _serial = lock();
    let fds = open_fds();
    let kids = children();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..300 {
            let mut cmd = duet::Command::new(FIXTURE);
            cmd.arg("echo").timeout(Duration::from_secs(20));
            match i % 4 {
                0 => {
                    let mut child = cmd.spawn_async().unwrap();
                    assert_eq!(child.ask("x").await.unwrap(), "x");
                    child.wait().await.unwrap();
                }
                1 => {
                    let mut child = cmd
                        .arg("running")
                        .stderr(duet::Stdio::piped())
                        .spawn_async()
                        .unwrap();
                    assert_eq!(child.ask("y").await.unwrap(), "y");
                    drop(child);
                }
                2 => {
                    let mut child = cmd.pty(true).spawn_async().unwrap();
                    assert_eq!(child.ask("z").await.unwrap(), "z");
                }
                _ => {
                    let mut child = cmd.channel().spawn_async().unwrap();
                    let conn = child.take_channel().unwrap();
                    assert_eq!(child.ask("w").await.unwrap(), "w");
                    drop(conn);
                }
            }
        }
    });
    drop(rt);
    assert_eq!(open_fds(), fds, "descriptors leaked");
    assert_eq!(children(), kids, "children left behind");
}
