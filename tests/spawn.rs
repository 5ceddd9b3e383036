//! Starting programs, and every way that can fail.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;

use duet::{Command, Error, SpawnFailure};

use crate::util::{FIXTURE, fixture};

/// Runs `configure` with both spawn methods and checks they agree.
fn both_methods(configure: impl Fn(&mut Command)) -> [Error; 2] {
    [false, true].map(|fork| {
        let mut cmd = Command::new(FIXTURE);
        configure(&mut cmd);
        cmd.use_fork(fork);
        cmd.spawn().expect_err("spawn must fail")
    })
}

fn step_of(err: &Error) -> &'static str {
    let Error::Spawn { source, .. } = err else {
        panic!("expected Error::Spawn, got {err:?}");
    };
    source
        .get_ref()
        .and_then(|e| e.downcast_ref::<SpawnFailure>())
        .expect("a SpawnFailure inside")
        .step
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("duet-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn missing_program_is_a_spawn_error_naming_it_not_exit_127() {
    let err = Command::new("duet-no-such-program").spawn().unwrap_err();
    let Error::Spawn { program, source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(program, "duet-no-such-program");
    assert_eq!(source.kind(), ErrorKind::NotFound);
    let text = err.to_string();
    assert!(text.contains("duet-no-such-program"), "{text}");
    assert!(text.contains("PATH"), "{text}");
}

#[test]
fn missing_program_by_path_fails_at_exec_with_both_methods() {
    let errs = both_methods(|c| {
        *c = Command::new("/nonexistent/duet-prog");
    });
    for err in &errs {
        assert_eq!(step_of(err), "exec");
        assert!(err.to_string().contains("/nonexistent/duet-prog"), "{err}");
        assert!(err.to_string().contains("os error 2"), "{err}");
    }
    assert_eq!(errs[0].to_string(), errs[1].to_string());
}

#[test]
fn not_executable_is_permission_denied_with_both_methods() {
    let dir = scratch_dir("noexec");
    let path = dir.join("script");
    std::fs::write(&path, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let errs = both_methods(|c| {
        *c = Command::new(&path);
    });
    for err in &errs {
        let Error::Spawn { source, .. } = err else {
            panic!()
        };
        assert_eq!(source.kind(), ErrorKind::PermissionDenied, "{err}");
        assert_eq!(step_of(err), "exec");
    }
    assert_eq!(errs[0].to_string(), errs[1].to_string());
}

#[test]
fn bad_directory_names_chdir_and_the_directory_with_both_methods() {
    let errs = both_methods(|c| {
        c.arg("echo").current_dir("/nonexistent/duet-dir");
    });
    for err in &errs {
        assert_eq!(step_of(err), "chdir to");
        assert!(err.to_string().contains("/nonexistent/duet-dir"), "{err}");
    }
    assert_eq!(errs[0].to_string(), errs[1].to_string());
}

#[test]
fn interior_nul_in_an_argument_is_refused_before_spawning() {
    let err = fixture("echo", &["a\0b"]).spawn().unwrap_err();
    let Error::Spawn { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(source.kind(), ErrorKind::InvalidInput);
    assert_eq!(step_of(&err), "argument");
}

#[test]
fn both_methods_run_the_child_the_same_way() {
    for fork in [false, true] {
        let mut child = fixture("args", &["one", "two words"])
            .use_fork(fork)
            .spawn()
            .unwrap();
        assert_eq!(child.read_line().unwrap(), "one\0");
        assert_eq!(child.read_line().unwrap(), "two words\0");
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn arguments_reach_the_child_byte_exact_without_a_shell() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tricky: [&[u8]; 6] = [
        b"with space",
        b"'quote\"",
        b"$HOME",
        b"a;b",
        b"new\nline",
        b"\xff\xfe",
    ];
    let mut cmd = fixture("args", &[]);
    for a in tricky {
        cmd.arg(OsStr::from_bytes(a));
    }
    let out = cmd.output().unwrap();
    let expected: Vec<u8> = tricky.iter().flat_map(|a| [*a, b"\0\n"].concat()).collect();
    assert_eq!(out.stdout, expected);
}

#[test]
fn program_is_found_on_the_childs_path() {
    let dir = scratch_dir("path");
    std::os::unix::fs::symlink(FIXTURE, dir.join("duet-fixture-on-path")).unwrap();
    let mut child = Command::new("duet-fixture-on-path")
        .arg("upper")
        .env("PATH", &dir)
        .spawn()
        .unwrap();
    assert_eq!(child.ask("hi").unwrap(), "HI");
}

#[test]
fn environment_is_exactly_as_configured() {
    let out = fixture("env", &[])
        .env_clear()
        .env("ONLY", "this")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "ONLY=this\n");

    let out = fixture("env", &[])
        .env("ADDED", "1")
        .env_remove("HOME")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l == "ADDED=1"));
    assert!(!text.lines().any(|l| l.starts_with("HOME=")));
}

#[test]
fn current_dir_sets_the_childs_directory() {
    let out = fixture("cwd", &[]).current_dir("/tmp").output().unwrap();
    assert_eq!(out.stdout, b"/tmp\n");
}

#[test]
fn child_gets_only_its_standard_descriptors() {
    // A descriptor opened without close-on-exec by "some other library".
    let leaky = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    for fork in [false, true] {
        let out = fixture("fds", &[]).use_fork(fork).output().unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "0\n1\n2\n",
            "fork={fork}"
        );
    }
    let mut on_pty = fixture("fds", &[]).pty(true).spawn().unwrap();
    let lines: Vec<String> = on_pty.lines().collect::<Result<_, _>>().unwrap();
    assert_eq!(lines, ["0", "1", "2"]);
    drop(leaky);
}

/// `merge_stderr` is `2>&1`: stderr goes wherever stdout goes, a file or
/// the parent's own stdout, never to the parent's stderr.
#[test]
fn merged_stderr_follows_a_stdout_that_is_a_file_or_inherited() {
    let dir = scratch_dir("merged");
    let path = dir.join("out");
    let file = std::fs::File::create(&path).unwrap();
    let out = fixture("stderr", &["to the file"])
        .stdin(duet::Stdio::null())
        .stdout(duet::Stdio::from(file))
        .merge_stderr(true)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "to the file\n");

    let out = fixture("merged-inherit", &[]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "written to stderr\nexited with code 0\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// A spawn needs only the descriptors it keeps (three pipes and a pidfd):
/// with 8 free below the limit it works with both methods, and when the
/// parent itself runs out, the error says it was the parent's step.
#[test]
fn spawning_with_few_free_descriptors_works_and_says_whose_step_failed() {
    let out = fixture("few-fds", &["8"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fork=false: spawned\nfork=true: spawned\n"
    );
    let out = fixture("few-fds", &["3"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    for line in text.lines() {
        assert!(
            line.contains("open descriptors for the child failed") && line.contains("os error 24"),
            "{line}"
        );
    }
}

/// Where `close_range` is missing, a loop closes the descriptors; it must
/// not miss one, whatever numbers duet's own descriptors take.
#[test]
fn the_close_loop_without_close_range_leaks_no_descriptor() {
    let out = fixture("close-loop-probe", &[]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "16 layouts, no descriptor leaked\n"
    );
    let out = fixture("fds", &[])
        .emulate_old_kernel(true)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "0\n1\n2\n");
}

#[test]
fn a_channel_is_the_only_extra_descriptor_the_child_gets() {
    let mut child = fixture("fds", &[]).channel().spawn().unwrap();
    let lines: Vec<String> = child.lines().collect::<Result<_, _>>().unwrap();
    assert_eq!(lines, ["0", "1", "2", "3"]);
    assert!(child.take_channel().is_some());
    assert!(child.take_channel().is_none());
}

#[test]
fn command_channel_reaches_a_rust_child_through_from_env() {
    let mut child = fixture("channel-echo", &[]).channel().spawn().unwrap();
    let mut conn = child.take_channel().unwrap();
    conn.send_bytes(b"ping").unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"ping");
    conn.close();
    assert!(child.wait().unwrap().success());
}

/// `DUET_CHANNEL_PID` names the child given the channel, with either spawn
/// method; the child's own children inherit the variables but not the
/// descriptor, and `from_env` refuses the unrelated descriptor 3 they have.
#[test]
fn a_grandchild_never_takes_an_unrelated_descriptor_for_the_channel() {
    for fork in [false, true] {
        let mut child = fixture("env", &[])
            .channel()
            .use_fork(fork)
            .spawn()
            .unwrap();
        let env: Vec<String> = child.lines().collect::<Result<_, _>>().unwrap();
        let expected = format!("DUET_CHANNEL_PID={}", child.id());
        assert!(env.contains(&expected), "fork={fork}: {env:?}");
        assert!(env.contains(&"DUET_CHANNEL_FD=3".to_string()), "{env:?}");
    }

    let mut child = fixture("channel-grandchild", &[])
        .channel()
        .spawn()
        .unwrap();
    let mut conn = child.take_channel().unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"taken by the child");
    let verdict = child.read_line().unwrap();
    assert!(
        verdict.starts_with("refused: DUET_CHANNEL_FD is meant for process"),
        "{verdict}"
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn spawning_from_many_threads_while_others_allocate_works() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let allocators: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let v: Vec<u8> = vec![n as u8; 1 + n % 8192];
                    n = n.wrapping_add(v.len());
                }
            })
        })
        .collect();
    let spawners: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..25 {
                    let mut child = fixture("echo", &[]).use_fork(i % 5 == 0).spawn().unwrap();
                    let msg = format!("thread {t} round {i}");
                    assert_eq!(child.ask(&msg).unwrap(), msg);
                    child.close_stdin().unwrap();
                    assert!(child.wait().unwrap().success());
                }
            })
        })
        .collect();
    for s in spawners {
        s.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for a in allocators {
        a.join().unwrap();
    }
}
