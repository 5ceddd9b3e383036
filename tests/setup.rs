//! What a child is given before it runs: passed descriptors, credentials,
//! resource limits, a mask, a session, its own name.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

use duet::{Command, Error, Limit, SpawnFailure, UNLIMITED};

use crate::util::fixture;

fn failure(err: &Error) -> &SpawnFailure {
    let Error::Spawn { source, .. } = err else {
        panic!("expected Error::Spawn, got {err:?}");
    };
    source
        .get_ref()
        .and_then(|e| e.downcast_ref::<SpawnFailure>())
        .expect("a SpawnFailure inside")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `(soft, hard)` of a row of `/proc/self/limits` as the child saw it.
fn limit_row(limits: &str, name: &str) -> (String, String) {
    let row = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} in {limits}"));
    let mut fields = row[name.len()..].split_whitespace();
    (
        fields.next().unwrap().to_string(),
        fields.next().unwrap().to_string(),
    )
}

#[test]
fn a_passed_descriptor_is_found_at_its_target_with_both_methods() {
    for fork in [false, true] {
        let (mut reader, writer) = std::io::pipe().unwrap();
        Command::new("sh")
            .args(["-c", "echo through fd 7 >&7"])
            .pass_fd(OwnedFd::from(writer), 7)
            .use_fork(fork)
            .output()
            .unwrap();
        // The temporary Command is gone, and the child: end-of-file.
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through fd 7\n", "fork: {fork}");
    }
}

#[test]
fn passed_descriptors_land_right_whatever_numbers_they_and_their_targets_have() {
    // Targets 3..=22, each the number of some descriptor of this process
    // at the time (the pipes' own ends among them), so the plan must move
    // sources out of the way of earlier moves.
    let pipes: Vec<_> = (0..20).map(|_| std::io::pipe().unwrap()).collect();
    // bash: dash's redirections stop at descriptor 9.
    let mut cmd = Command::new("bash");
    let mut script = String::new();
    for (i, (_, writer)) in pipes.iter().enumerate() {
        let target = 3 + i as i32;
        script.push_str(&format!("echo {target} >&{target}; "));
        cmd.pass_fd(writer.try_clone().unwrap(), target);
    }
    let mut readers = Vec::new();
    for (reader, writer) in pipes {
        drop(writer);
        readers.push(reader);
    }
    cmd.args(["-c", &script]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    drop(cmd);
    for (i, mut reader) in readers.into_iter().enumerate() {
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, format!("{}\n", 3 + i), "the pipe passed as {}", 3 + i);
    }
}

#[test]
fn a_child_keeps_its_passed_descriptors_and_nothing_in_the_gaps() {
    let (_reader, writer) = std::io::pipe().unwrap();
    let (_reader2, writer2) = std::io::pipe().unwrap();
    // Gaps below, between and above the targets are all closed.
    let out = fixture("fds", &[])
        .pass_fd(OwnedFd::from(writer), 9)
        .pass_fd(OwnedFd::from(writer2), 200)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "0\n1\n2\n9\n200\n");
}

#[test]
fn the_same_command_passes_its_descriptor_to_every_spawn() {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo once more >&4"])
        .pass_fd(OwnedFd::from(writer), 4);
    cmd.output().unwrap();
    cmd.output().unwrap();
    drop(cmd);
    let mut got = String::new();
    reader.read_to_string(&mut got).unwrap();
    assert_eq!(got, "once more\nonce more\n");
}

#[test]
fn a_second_descriptor_for_the_same_target_replaces_the_first() {
    let (mut first_r, first_w) = std::io::pipe().unwrap();
    let (mut second_r, second_w) = std::io::pipe().unwrap();
    Command::new("sh")
        .args(["-c", "echo to 6 >&6"])
        .pass_fd(OwnedFd::from(first_w), 6)
        .pass_fd(OwnedFd::from(second_w), 6)
        .output()
        .unwrap();
    let (mut first, mut second) = (String::new(), String::new());
    first_r.read_to_string(&mut first).unwrap();
    second_r.read_to_string(&mut second).unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("", "to 6\n"));
}

#[test]
fn a_passed_descriptor_reaches_a_pty_child_and_one_with_a_channel() {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let (mut reader2, writer2) = std::io::pipe().unwrap();
    let mut on_pty = Command::new("sh")
        .args(["-c", "echo from the pty child >&4; echo done"])
        .pass_fd(OwnedFd::from(writer), 4)
        .pty(true)
        .spawn()
        .unwrap();
    assert_eq!(on_pty.read_line().unwrap(), "done");
    assert!(on_pty.wait().unwrap().success());
    drop(on_pty);
    let out = Command::new("sh")
        .args(["-c", "echo $DUET_CHANNEL_FD >&4"])
        .channel()
        .pass_fd(OwnedFd::from(writer2), 4)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (mut got, mut got2) = (String::new(), String::new());
    reader.read_to_string(&mut got).unwrap();
    reader2.read_to_string(&mut got2).unwrap();
    assert_eq!(
        (got.as_str(), got2.as_str()),
        ("from the pty child\n", "3\n")
    );
}

#[test]
fn targets_that_collide_with_the_streams_or_the_channel_are_refused() {
    let fd = || OwnedFd::from(std::io::pipe().unwrap().1);
    for target in [0, 1, 2, -1] {
        let err = Command::new("true")
            .pass_fd(fd(), target)
            .spawn()
            .unwrap_err();
        assert_eq!(failure(&err).step, "pass a descriptor as", "{err}");
        assert!(err.to_string().contains(&target.to_string()), "{err}");
    }
    let err = Command::new("true")
        .channel()
        .pass_fd(fd(), 3)
        .spawn()
        .unwrap_err();
    assert!(err.to_string().contains("channel"), "{err}");
    let err = Command::new("true")
        .pass_fd(fd(), 1 << 30)
        .spawn()
        .unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn root_runs_a_child_as_another_user_with_exactly_the_groups_given() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "id -u; id -g; id -G"])
        .uid(65534)
        .gid(65534)
        .groups(&[65534, 100]);
    if !is_root() {
        // Without privilege the first step, setgroups, is refused by name.
        let err = cmd.spawn().unwrap_err();
        assert_eq!(failure(&err).step, "set the supplementary groups to");
        return;
    }
    let out = stdout_of(&mut cmd);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["65534", "65534"]);
    let mut groups: Vec<&str> = lines[2].split(' ').collect();
    groups.sort_unstable();
    assert_eq!(groups, ["100", "65534"]);
}

#[test]
fn a_new_user_without_groups_keeps_none_of_roots() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "grep -E '^(Uid|Gid|Groups):' /proc/self/status"])
        .uid(65534)
        .gid(65534)
        .use_fork(true);
    if !is_root() {
        let err = cmd.spawn().unwrap_err();
        assert_eq!(failure(&err).step, "set the group id to", "{err}");
        return;
    }
    let status = stdout_of(&mut cmd);
    assert!(
        status.contains("Uid:\t65534\t65534\t65534\t65534"),
        "{status}"
    );
    assert!(
        status.contains("Gid:\t65534\t65534\t65534\t65534"),
        "{status}"
    );
    // No supplementary group left (root's 0 among them).
    assert!(
        status.lines().any(|l| l.trim_end() == "Groups:"),
        "{status}"
    );
}

#[test]
fn changing_the_childs_user_leaves_every_thread_of_the_parent_as_it_was() {
    if !is_root() {
        return assert!(Command::new("true").uid(65534).spawn().is_err());
    }
    let ids = || -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .map(|t| {
                let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
                status
                    .lines()
                    .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    // Another thread that stays alive while the child changes its user.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || stopped.recv());
    let before = ids();
    for fork in [false, true] {
        let out = Command::new("id")
            .arg("-u")
            .uid(65534)
            .gid(65534)
            .use_fork(fork)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"65534\n");
    }
    let after = ids();
    stop.send(()).unwrap();
    other.join().unwrap().unwrap();
    assert!(
        before.iter().all(|t| t.contains("Uid:\t0\t0\t0\t0")),
        "{before:?}"
    );
    assert!(
        after.iter().all(|t| t.contains("Uid:\t0\t0\t0\t0")),
        "{after:?}"
    );
    assert!(
        after.iter().all(|t| t.contains("Gid:\t0\t0\t0\t0")),
        "{after:?}"
    );
}

#[test]
fn a_user_id_that_cannot_be_taken_is_a_spawn_error_naming_the_step() {
    // As root any id can be taken; as anyone else, root's cannot.
    let target = if is_root() { None } else { Some(0) };
    if let Some(uid) = target {
        let err = Command::new("true").uid(uid).spawn().unwrap_err();
        assert_eq!(failure(&err).step, "set the user id to");
        assert!(err.to_string().contains("\"0\""), "{err}");
    } else {
        // Root: a user id the kernel refuses (-1 is "no change" for
        // setresuid and invalid for setuid).
        let err = Command::new("true").uid(u32::MAX).spawn().unwrap_err();
        assert_eq!(failure(&err).step, "set the user id to", "{err}");
        assert!(err.to_string().contains(&u32::MAX.to_string()), "{err}");
    }
}

#[test]
fn resource_limits_reach_the_child() {
    let limits = stdout_of(
        Command::new("cat")
            .arg("/proc/self/limits")
            .rlimit(Limit::Cpu, 10, 20)
            .rlimit(Limit::FileSize, 1 << 20, 2 << 20)
            .rlimit(Limit::NoFile, 64, 128)
            .rlimit(Limit::AddressSpace, 1 << 32, UNLIMITED)
            .rlimit(Limit::Core, 0, 0)
            .rlimit(Limit::NProc, 100, 200)
            .rlimit(Limit::NProc, 300, 400), // the last setting wins
    );
    let row = |name| limit_row(&limits, name);
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(row("Max cpu time"), pair("10", "20"));
    assert_eq!(row("Max file size"), pair("1048576", "2097152"));
    assert_eq!(row("Max open files"), pair("64", "128"));
    assert_eq!(row("Max address space"), pair("4294967296", "unlimited"));
    assert_eq!(row("Max core file size"), pair("0", "0"));
    assert_eq!(row("Max processes"), pair("300", "400"));
}

#[test]
fn a_file_size_limit_stops_a_child_that_writes_past_it() {
    let dir = crate::util::unique_temp("fsize");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("big");
    let out = Command::new("sh")
        .args(["-c", "head -c 100000 /dev/zero > \"$0\"; echo $?"])
        .arg(&file)
        .rlimit(Limit::FileSize, 4096, 4096)
        .output()
        .unwrap();
    // head died of SIGXFSZ (128 + 25) after 4096 bytes.
    assert_eq!(out.stdout, b"153\n");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 4096);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn limits_the_kernel_or_the_caller_cannot_have_are_clear_errors() {
    // Soft above hard: refused before any process exists.
    let err = Command::new("true")
        .rlimit(Limit::Cpu, 20, 10)
        .spawn()
        .unwrap_err();
    assert_eq!(failure(&err).step, "set the limit on");
    assert!(err.to_string().contains("above the hard limit"), "{err}");
    // No open-file limit can be unlimited (fs.nr_open caps it): the
    // kernel refuses in the child, and the error names the limit.
    let err = Command::new("true")
        .rlimit(Limit::Core, 0, 0)
        .rlimit(Limit::NoFile, UNLIMITED, UNLIMITED)
        .spawn()
        .unwrap_err();
    assert_eq!(failure(&err).step, "set the limit on");
    assert!(err.to_string().contains("open files"), "{err}");
}

#[test]
fn umask_reaches_the_child_and_shapes_the_files_it_creates() {
    let dir = crate::util::unique_temp("umask");
    std::fs::create_dir_all(&dir).unwrap();
    let out = stdout_of(
        Command::new("sh")
            .args(["-c", "umask; touch \"$0/f\""])
            .arg(&dir)
            .umask(0o077),
    );
    assert_eq!(out, "0077\n");
    let mode = std::fs::metadata(dir.join("f")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::remove_dir_all(&dir).unwrap();
    let err = Command::new("true").umask(0o1777).spawn().unwrap_err();
    assert!(err.to_string().contains("\"0o1777\""), "{err}");
}

/// The session id of the child's shell, from `/proc/$$/stat`.
const SESSION: &str = "read -r pid comm state ppid pgrp sid rest < /proc/$$/stat; echo $sid";

#[test]
fn setsid_makes_the_child_lead_a_new_session() {
    for fork in [false, true] {
        let mut child = Command::new("sh")
            .args(["-c", SESSION])
            .setsid(true)
            .use_fork(fork)
            .spawn()
            .unwrap();
        assert_eq!(child.read_line().unwrap(), child.id().to_string());
        assert!(child.wait().unwrap().success());
    }
    let mut same = Command::new("sh").args(["-c", SESSION]).spawn().unwrap();
    assert_ne!(same.read_line().unwrap(), same.id().to_string());
}

#[test]
fn setsid_false_on_a_pty_is_refused_and_true_changes_nothing() {
    let err = Command::new("true")
        .pty(true)
        .setsid(false)
        .spawn()
        .unwrap_err();
    assert!(err.to_string().contains("pty"), "{err}");
    let mut child = Command::new("sh")
        .args(["-c", SESSION])
        .pty(true)
        .setsid(true)
        .spawn()
        .unwrap();
    assert_eq!(child.read_line().unwrap(), child.id().to_string());
}

#[test]
fn arg0_is_the_name_the_child_sees_while_the_program_is_found_as_before() {
    for fork in [false, true] {
        let out = Command::new("cat")
            .arg("/proc/self/cmdline")
            .arg0("-renamed")
            .use_fork(fork)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"-renamed\0/proc/self/cmdline\0");
    }
}

/// One setting of a `Command`, for tables of cases.
type Setting = fn(&mut Command);

#[test]
fn what_cannot_cross_to_another_host_is_refused_before_connecting() {
    let attempts: [(&str, Setting); 6] = [
        ("descriptor", |c| {
            c.pass_fd(OwnedFd::from(std::io::pipe().unwrap().1), 5);
        }),
        ("credentials", |c| {
            c.uid(1000);
        }),
        ("credentials", |c| {
            c.groups(&[]);
        }),
        ("limits", |c| {
            c.rlimit(Limit::Core, 0, 0);
        }),
        ("session", |c| {
            c.setsid(true);
        }),
        ("argv[0]", |c| {
            c.arg0("x");
        }),
    ];
    for (what, configure) in attempts {
        let mut cmd = Command::new("true");
        cmd.ssh("duet-test.invalid");
        configure(&mut cmd);
        let err = cmd.spawn().unwrap_err();
        assert_eq!(
            failure(&err).os.kind(),
            std::io::ErrorKind::Unsupported,
            "{err}"
        );
        assert!(
            err.to_string().contains("duet-test.invalid"),
            "{what}: {err}"
        );
    }
}
