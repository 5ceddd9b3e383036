//! `--ssh HOST` and `--ssh-option OPT` on run, chat, script and serve,
//! against the test sshd on 127.0.0.1.

use std::io::{BufRead, BufReader, Read};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{FIXTURE, alive};
use duet_testkit::sshd::{HOST, sshd};

use crate::util::duet_bin;

/// `duet SUBCOMMAND --ssh 127.0.0.1 --ssh-option ...` followed by `rest`.
fn args(subcommand: &str, rest: &[&str]) -> Vec<String> {
    let mut v = vec![subcommand.to_string(), "--ssh".into(), HOST.into()];
    for opt in sshd().options() {
        v.push("--ssh-option".into());
        v.push(opt);
    }
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// Runs duet to the end: exit code, stdout, stderr.
fn duet(args: &[String], stdin: &[u8]) -> (Option<i32>, Vec<u8>, String) {
    let out = duct::cmd(duet_bin(), args)
        .stdin_bytes(stdin.to_vec())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .expect("run duet");
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("duet-cli-ssh-{tag}-{}", std::process::id()))
}

#[test]
fn run_ssh_passes_arguments_byte_exact_and_exits_with_the_remote_code() {
    let words = [
        "two words",
        "it's",
        "$HOME;`id`",
        "a\nb",
        "back\\slash",
        "é",
    ];
    let mut rest = vec!["--", FIXTURE, "args"];
    rest.extend(words);
    let (code, stdout, stderr) = duet(&args("run", &rest), b"");
    assert_eq!(code, Some(0), "{stderr}");
    let expected: Vec<u8> = words
        .iter()
        .flat_map(|w| [w.as_bytes(), b"\0\n"].concat())
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&expected)
    );

    let (code, _, stderr) = duet(&args("run", &["--", "sh", "-c", "exit 3"]), b"");
    assert_eq!(code, Some(3), "{stderr}");
}

#[test]
fn run_ssh_forwards_term_to_the_remote_program() {
    let prog = format!("echo $$; exec {FIXTURE} hold");
    let handle = duct::cmd(duet_bin(), args("run", &["--", "sh", "-c", &prog]))
        .stdin_null()
        .stderr_to_stdout()
        .unchecked()
        .reader()
        .expect("start duet");
    let mut out = BufReader::new(handle);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let remote: u32 = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
    assert!(alive(remote));
    let pid = out.get_ref().pids()[0];
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(!alive(remote), "remote pid {remote} still runs; {rest}");
}

#[test]
fn chat_ssh_talks_to_a_remote_program() {
    let (code, stdout, stderr) = duet(&args("chat", &["--", FIXTURE, "calc"]), b"2 + 2\n6 * 7\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&stdout), "4\n42\n");
}

#[test]
fn script_ssh_runs_the_script_against_a_remote_program() {
    let path = scratch("script");
    let script = path.to_str().unwrap();
    std::fs::write(&path, "sendline 2 + 3\nexpect ^5\n").unwrap();
    let (code, _, stderr) = duet(&args("script", &[script, "--", FIXTURE, "calc"]), b"");
    assert_eq!(code, Some(0), "{stderr}");
    // A wrong expectation fails naming the remote program's real reply.
    std::fs::write(&path, "timeout 2s\nsendline 1 + 1\nexpect ^3\n").unwrap();
    let (code, _, stderr) = duet(&args("script", &[script, "--", FIXTURE, "calc"]), b"");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(":3:") && stderr.contains('2'), "{stderr}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn serve_ssh_keeps_a_remote_program_behind_the_fifos() {
    let dir = scratch("serve");
    let d = dir.to_str().unwrap();
    let (code, _, stderr) = duet(&args("serve", &["--daemon", d, "--", FIXTURE, "calc"]), b"");
    assert_eq!(code, Some(0), "{stderr}");
    let ask = |q: &str| duet(&["ask".into(), d.into(), q.into()], b"");
    let (code, stdout, stderr) = ask("20 + 22");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, b"42\n");
    let (code, _, stderr) = duet(&["stop".into(), d.into()], b"");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!dir.exists());
}

#[test]
fn ssh_option_without_ssh_is_a_usage_error() {
    let (code, _, stderr) = duet(
        &[
            "run".into(),
            "--ssh-option".into(),
            "Port=2".into(),
            "--".into(),
            "true".into(),
        ],
        b"",
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--ssh"), "{stderr}");
}

#[test]
fn run_ssh_missing_remote_program_exits_127_naming_it() {
    let (code, _, stderr) = duet(&args("run", &["--", "duet-no-such-program"]), b"");
    assert_eq!(code, Some(127), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:duet-no-such-program"),
        "{stderr}"
    );
}
