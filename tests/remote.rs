//! Programs on another host through OpenSSH, against a real sshd on
//! 127.0.0.1 (the "remote" processes are visible here, so the tests can
//! check what runs there).

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use duet::{Command, Error, Signal, SpawnFailure, Stdio};

use crate::util::{FIXTURE, alive};
use duet_testkit::sshd::{HOST, sshd};

fn remote(program: &str) -> Command {
    let mut cmd = sshd().command(program);
    cmd.timeout(Duration::from_secs(20));
    cmd
}

/// A remote shell that prints its pid, then becomes `program`.
fn remote_with_pid(program: &str, args: &[&str]) -> (duet::Child, u32) {
    let mut cmd = remote("sh");
    cmd.args(["-c", "echo $$; exec \"$@\"", "sh", program])
        .args(args);
    let mut child = cmd.spawn().unwrap();
    let pid: u32 = child.read_line().unwrap().parse().unwrap();
    (child, pid)
}

/// The error of a spawn that must fail (a `Child` has no useful `Debug`).
fn spawn_error(cmd: &mut Command) -> Error {
    match cmd.spawn() {
        Ok(_) => panic!("the spawn succeeded"),
        Err(e) => e,
    }
}

fn failure(err: &Error) -> &SpawnFailure {
    let Error::Spawn { source, .. } = err else {
        panic!("expected Error::Spawn, got {err:?}");
    };
    source
        .get_ref()
        .and_then(|e| e.downcast_ref::<SpawnFailure>())
        .expect("a SpawnFailure inside")
}

#[test]
fn remote_arguments_arrive_byte_exact() {
    let args: Vec<&[u8]> = vec![
        b"two words",
        b"it's \"quoted\"",
        b"$HOME $(id) `id`",
        b"a;b && c | d > /tmp/duet-x",
        b"line one\nline two",
        b"back\\slash \\' \\\\",
        "non-ASCII: é ü 字".as_bytes(),
        b"",
        b"*",
        b"-n",
        b"\xff\xfe not UTF-8",
    ];
    let mut cmd = remote(FIXTURE);
    cmd.arg("args");
    for a in &args {
        cmd.arg(OsStr::from_bytes(a));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let got: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == 0)
        .map(|a| a.strip_prefix(b"\n").unwrap_or(a))
        .collect();
    assert_eq!(&got[..args.len()], &args[..]);
}

#[test]
fn remote_env_and_current_dir_apply_on_the_host() {
    let dir = std::env::temp_dir().join(format!("duet-remote-cwd {}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = remote(FIXTURE);
    cmd.arg("cwd").current_dir(&dir);
    let out = cmd.output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        dir.display().to_string()
    );
    let _ = std::fs::remove_dir(&dir);

    let mut cmd = remote(FIXTURE);
    cmd.arg("env")
        .env("DUET_SPACES", "a b;$c 'd'\nnext")
        .env("DUET_GONE", "set first")
        .env_remove("DUET_GONE")
        .env_remove("SSH_CLIENT");
    let text = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    assert!(text.contains("DUET_SPACES=a b;$c 'd'\nnext\n"), "{text}");
    assert!(!text.contains("DUET_GONE"), "{text}");
    assert!(!text.contains("SSH_CLIENT="), "{text}");
    assert!(
        text.contains("SSH_CONNECTION="),
        "the remote env is kept: {text}"
    );
}

#[test]
fn remote_env_clear_leaves_only_what_env_adds() {
    let mut cmd = remote(FIXTURE);
    cmd.arg("env").env_clear().env("ONLY", "this");
    let text = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| *k != "PWD")
        .collect();
    assert_eq!(names, ["ONLY"], "{text}");
}

#[test]
fn remote_conversation_and_exit_code_come_back() {
    let mut child = remote(FIXTURE).arg("calc").spawn().unwrap();
    assert_eq!(child.ask("2 + 2").unwrap(), "4");
    assert_eq!(child.ask("6 * 7").unwrap(), "42");
    child.close_stdin().unwrap();
    assert!(child.wait().unwrap().success());

    let mut child = remote(FIXTURE).args(["exit", "7"]).spawn().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

#[test]
fn remote_stderr_is_piped_separately() {
    let out = remote("sh")
        .args(["-c", "echo out; echo err >&2"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
}

#[test]
fn remote_terminate_reaches_the_remote_program() {
    // `hold` survives the end of its stdin: only a signal ends it.
    let (mut child, pid) = remote_with_pid(FIXTURE, &["hold"]);
    assert!(alive(pid));
    child.terminate(Duration::from_secs(20)).unwrap();
    assert!(!alive(pid), "remote pid {pid} still runs");
}

#[test]
fn remote_terminate_escalates_to_sigkill() {
    let (mut child, pid) = remote_with_pid(FIXTURE, &["ignore-term"]);
    assert_eq!(child.read_line().unwrap(), "ready");
    let status = child.terminate(Duration::from_millis(300)).unwrap();
    // The local ssh is killed too, unless it saw its session end first
    // (then it reports the remote death by signal as 255).
    assert!(
        status.signal() == Some(9) || status.code() == Some(255),
        "{status}"
    );
    assert!(!alive(pid), "remote pid {pid} still runs");
}

#[test]
fn remote_signal_reaches_the_remote_program() {
    let mut child = remote("sh")
        .args([
            "-c",
            "trap 'echo got USR1' USR1; echo ready; while :; do sleep 1 & wait $!; done",
        ])
        .spawn()
        .unwrap();
    assert_eq!(child.read_line().unwrap(), "ready");
    child.signal(Signal::SIGUSR1).unwrap();
    assert_eq!(child.read_line().unwrap(), "got USR1");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.signal() == Some(9) || status.code() == Some(255),
        "{status}"
    );
}

#[test]
fn a_killer_in_another_thread_reaches_the_remote_program() {
    let (mut child, pid) = remote_with_pid(FIXTURE, &["hold"]);
    let killer = child.killer();
    let watchdog = std::thread::spawn(move || killer.signal(Signal::SIGTERM));
    // Only the watchdog's signal ends the remote program, and with it ssh.
    let err = child.read_line().unwrap_err();
    assert!(err.is_eof(), "{err}");
    watchdog.join().unwrap().unwrap();
    child.wait().unwrap();
    assert!(!alive(pid), "remote pid {pid} still runs");
}

#[test]
fn a_stopped_remote_program_runs_its_handler_when_terminated() {
    let mut child = remote("sh")
        .args([
            "-c",
            "trap 'echo cleaned up; exit 3' TERM; echo $$; kill -STOP $$; echo resumed",
        ])
        .spawn()
        .unwrap();
    let pid: u32 = child.read_line().unwrap().parse().unwrap();
    // The remote program is a process of this host, but not our child (no
    // waitid): look at its state until it has stopped (or is gone, which
    // the assertions below then report).
    let stopped_or_gone = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(") ").next().is_some_and(|s| s.starts_with('T')),
        Err(_) => true,
    };
    while !stopped_or_gone() {
        std::thread::yield_now();
    }
    let status = child.terminate(Duration::from_secs(60)).unwrap();
    assert_eq!(status.code(), Some(3), "{status}");
    assert_eq!(child.read_line().unwrap(), "cleaned up");
}

#[test]
fn umask_applies_on_the_remote_host() {
    let out = remote("sh")
        .args(["-c", "umask"])
        .umask(0o027)
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"0027\n");
}

#[test]
fn nothing_is_left_running_remotely_after_drop() {
    let (child, pid) = remote_with_pid(FIXTURE, &["hold"]);
    assert!(alive(pid));
    drop(child);
    assert!(!alive(pid), "remote pid {pid} still runs");
}

#[test]
fn remote_missing_program_is_a_spawn_error_naming_it() {
    let err = spawn_error(&mut remote("duet-no-such-program"));
    let Error::Spawn { program, source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(program, "duet-no-such-program");
    assert_eq!(source.kind(), ErrorKind::NotFound);
    assert_eq!(failure(&err).step, "search PATH for");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:duet-no-such-program"), "{text}");

    let err = spawn_error(&mut remote("/nonexistent/duet-prog"));
    assert_eq!(failure(&err).step, "exec");
    assert!(err.to_string().contains("/nonexistent/duet-prog"), "{err}");

    let plain = std::env::temp_dir().join(format!("duet-remote-plain-{}", std::process::id()));
    std::fs::write(&plain, "not a program").unwrap();
    let err = spawn_error(&mut remote(plain.to_str().unwrap()));
    let _ = std::fs::remove_file(&plain);
    let Error::Spawn { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(source.kind(), ErrorKind::PermissionDenied, "{err}");
}

#[test]
fn remote_missing_directory_is_a_spawn_error_naming_it() {
    let err = spawn_error(remote("true").current_dir("/no/such/duet-dir"));
    assert_eq!(failure(&err).step, "chdir to");
    assert!(err.to_string().contains("/no/such/duet-dir"), "{err}");
}

#[test]
fn unreachable_host_is_a_spawn_error_with_what_ssh_said() {
    let mut cmd = Command::new("true");
    // Port 1 on 127.0.0.1: nothing listens there.
    cmd.ssh(HOST)
        .ssh_option("Port=1")
        .ssh_option("ControlMaster=no")
        .ssh_option("ControlPath=none");
    let err = spawn_error(&mut cmd);
    assert_eq!(failure(&err).step, "connect through ssh to");
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

#[test]
fn ssh_option_without_a_host_is_an_error() {
    let err = spawn_error(Command::new("true").ssh_option("Port=2222"));
    assert!(err.to_string().contains("ssh(host)"), "{err}");
}

#[test]
fn spawns_to_one_host_share_one_connection() {
    // A remote shell's parent is the sshd process of its connection.
    let parent = || {
        let out = remote("sh").args(["-c", "echo $PPID"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let first = parent();
    assert!(!first.trim().is_empty());
    assert_eq!(parent(), first);
}

#[test]
fn remote_stdout_to_a_file_gets_the_program_output_only() {
    let path = std::env::temp_dir().join(format!("duet-remote-out-{}", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let mut child = remote("printf")
        .args(["%s\\n", "first", "second"])
        .stdout(Stdio::from(file))
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn remote_pty_answers_line_by_line_and_takes_control_characters() {
    let mut child = remote("cat").pty(true).spawn().unwrap();
    assert_eq!(child.ask("over a remote pty").unwrap(), "over a remote pty");
    child.send_bytes(b"\x03").unwrap();
    assert_eq!(
        child.wait().unwrap().code(),
        Some(255),
        "killed by SIGINT there"
    );
}
