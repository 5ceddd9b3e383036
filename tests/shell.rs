//! `duet::Shell`: hundreds of commands in a row, in sync whatever they print.

use std::time::Duration;

use duet::{Command, Shell, ShellOutput};

use duet_testkit::sshd::sshd;

/// Command `i` of a long run and what it must produce: prompt-like output,
/// no trailing newline, stderr, exit codes, text shaped like a sentinel,
/// several lines.
fn case(i: usize) -> (String, ShellOutput) {
    let out = |stdout: &str, stderr: &str, code: i32| ShellOutput {
        stdout: stdout.to_string(),
        stderr: stderr.to_string(),
        code,
    };
    match i % 7 {
        0 => ("printf '$ '".into(), out("$ ", "", 0)),
        1 => (
            format!("printf 'line {i}'"),
            out(&format!("line {i}"), "", 0),
        ),
        2 => (
            "echo '>>> '; printf 'PS1> ' >&2".into(),
            out(">>> \n", "PS1> ", 0),
        ),
        3 => (format!("(exit {})", i % 256), out("", "", (i % 256) as i32)),
        4 => (
            format!("printf 'DUET%sS%d_\\n' x {i}; echo \"E{i}_0\""),
            out(&format!("DUETxS{i}_\nE{i}_0\n"), "", 0),
        ),
        5 => (
            "echo; echo a\necho 'b\nc'".into(),
            out("\na\nb\nc\n", "", 0),
        ),
        _ => (
            "ls /duet-nope 2>&1 >/dev/null | wc -l".into(),
            out("1\n", "", 0),
        ),
    }
}

fn five_hundred(mut sh: Shell) {
    for i in 0..500 {
        let (command, expected) = case(i);
        let got = sh.run(&command).unwrap();
        assert_eq!(got, expected, "command {i}: {command:?}");
    }
    assert!(sh.close().unwrap().success());
}

/// An interactive bash on pipes: prompts on stderr, PROMPT_COMMAND writing
/// prompt-like text to stdout before every command.
fn bash_with_prompt_command(mut cmd: Command) -> Command {
    cmd.args(["--norc", "--noprofile", "-i"])
        .env("PS1", "$ ")
        .env("PROMPT_COMMAND", "printf 'PROMPT> '; echo '$ '")
        .timeout(Duration::from_secs(20));
    cmd
}

#[test]
fn shell_runs_500_commands_in_sync_with_sh() {
    let mut cmd = Command::new("sh");
    cmd.timeout(Duration::from_secs(20));
    five_hundred(Shell::spawn(cmd).unwrap());
}

#[test]
fn shell_runs_500_commands_in_sync_with_bash_and_prompt_command() {
    five_hundred(Shell::spawn(bash_with_prompt_command(Command::new("bash"))).unwrap());
}

#[test]
fn shell_runs_500_commands_in_sync_over_ssh() {
    five_hundred(Shell::spawn(bash_with_prompt_command(sshd().command("bash"))).unwrap());
}

#[test]
fn shell_on_a_pty_ignores_echo_and_bracketed_paste() {
    let dir = std::env::temp_dir().join(format!("duet-shell-pty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inputrc = dir.join("inputrc");
    std::fs::write(&inputrc, "set enable-bracketed-paste on\n").unwrap();
    let mut cmd = bash_with_prompt_command(Command::new("bash"));
    // readline echoes every command line and switches bracketed paste on
    // and off around each prompt.
    cmd.pty(true).env("INPUTRC", &inputrc).env("TERM", "xterm");
    let mut sh = Shell::spawn(cmd).unwrap();
    for i in 0..100 {
        let (command, expected) = case(i);
        let got = sh.run(&command).unwrap();
        // One terminal: stderr arrives with stdout, line ends as "\r\n".
        let want = if i % 7 == 2 {
            ">>> \r\nPS1> ".to_string()
        } else {
            expected.stdout.replace('\n', "\r\n")
        };
        assert_eq!(got.stdout, want, "command {i}: {command:?}");
        assert_eq!(got.code, expected.code, "command {i}: {command:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shell_timeout_leaves_the_session_usable() {
    let mut sh = Shell::spawn(Command::new("sh")).unwrap();
    let err = sh
        .run_timeout(
            "echo started; sleep 2; echo late",
            Duration::from_millis(200),
        )
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let r = sh.run("echo next").unwrap();
    assert_eq!(r.stdout, "next\n");
}

#[test]
fn shell_exit_ends_the_session_with_eof() {
    let mut sh = Shell::spawn(Command::new("sh")).unwrap();
    let err = sh.run("exit 4").unwrap_err();
    assert!(err.is_eof(), "{err}");
    assert_eq!(err.status().and_then(|s| s.code()), Some(4));
}

#[test]
fn shell_commands_with_syntax_errors_report_a_code_and_keep_going() {
    let mut sh = Shell::spawn(Command::new("sh")).unwrap();
    let r = sh.run("echo 'unterminated").unwrap();
    assert_ne!(r.code, 0);
    assert!(!r.stderr.is_empty());
    assert_eq!(sh.run("echo fine").unwrap().stdout, "fine\n");
}

#[test]
fn shell_interrupts_a_command_that_times_out_so_the_next_run_answers() {
    for shell in ["sh", "bash"] {
        let mut cmd = Command::new(shell);
        // The next run must answer well within this, not after `sleep`.
        cmd.timeout(Duration::from_secs(30));
        let mut sh = Shell::spawn(cmd).unwrap();
        sh.run("cd /tmp; kept=yes").unwrap();
        let err = sh
            .run_timeout("echo started; sleep 1000", Duration::from_millis(200))
            .unwrap_err();
        assert!(err.is_timeout(), "{shell}: {err}");
        let r = sh.run("echo next; pwd; echo $kept").unwrap();
        assert_eq!(r.stdout, "next\n/tmp\nyes\n", "{shell}");
        // The sleep is gone: nothing of the shell's group but the shell.
        let r = sh.run("ps -o comm= -g $$ | grep -c sleep").unwrap();
        assert_eq!(r.stdout, "0\n", "{shell}");
    }
}

#[test]
fn shell_timeout_error_names_the_command_and_what_arrived_not_the_markers() {
    let mut sh = Shell::spawn(Command::new("sh")).unwrap();
    let err = sh
        .run_timeout(
            "echo started; echo oops >&2; sleep 1000",
            Duration::from_millis(200),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`echo started; echo oops >&2; sleep 1000`"),
        "{text}"
    );
    assert!(!text.contains("DUET"), "{text}");
    match err {
        duet::Error::Timeout {
            expected,
            partial,
            stderr,
            ..
        } => {
            assert!(expected.contains("SIGINT"), "{expected}");
            assert_eq!(partial, "started\n");
            assert_eq!(stderr, "oops");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn shell_restarts_when_a_timed_out_command_ignores_sigint() {
    let mut sh = Shell::spawn(Command::new("sh")).unwrap();
    let old = sh.child().id();
    // A loop of the shell itself: SIGINT only runs the trap.
    let err = sh
        .run_timeout("while :; do :; done", Duration::from_millis(200))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("restarted"), "{err}");
    assert_ne!(sh.child().id(), old);
    assert!(!crate::util::alive(old));
    assert_eq!(sh.run("echo fresh").unwrap().stdout, "fresh\n");
}

#[test]
fn shell_eof_error_does_not_quote_the_markers() {
    let mut sh = Shell::spawn(Command::new("sh")).unwrap();
    let err = sh.run("echo bye; echo gone >&2; exit 4").unwrap_err();
    assert!(err.is_eof(), "{err}");
    assert!(!format!("{err} {err:?}").contains("DUET"), "{err:?}");
}

#[test]
fn shell_interrupts_a_job_of_an_interactive_bash_on_a_pty_and_keeps_its_state() {
    // `bash -i` on a terminal runs each command as a job in a process
    // group of its own: only the terminal's ^C reaches it.
    let mut cmd = Command::new("bash");
    cmd.args(["--norc", "--noprofile", "-i"])
        .pty(true)
        .timeout(Duration::from_secs(30));
    let mut sh = Shell::spawn(cmd).unwrap();
    let pid = sh.child().id();
    sh.run("cd /tmp; kept=yes").unwrap();
    let err = sh
        .run_timeout("sleep 1000", Duration::from_millis(200))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(!err.to_string().contains("restarted"), "{err}");
    assert_eq!(sh.child().id(), pid, "the same shell, not a new one");
    let r = sh.run("pwd; echo $kept").unwrap();
    assert_eq!(r.stdout, "/tmp\r\nyes\r\n");
}

#[test]
fn shell_over_ssh_interrupts_a_command_that_times_out() {
    let mut cmd = sshd().command("sh");
    cmd.timeout(Duration::from_secs(30));
    let mut sh = Shell::spawn(cmd).unwrap();
    sh.run("cd /tmp; kept=yes").unwrap();
    let err = sh
        .run_timeout("echo started; sleep 1000", Duration::from_millis(300))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(!err.to_string().contains("restarted"), "{err}");
    let r = sh.run("pwd; echo $kept").unwrap();
    assert_eq!(r.stdout, "/tmp\nyes\n");
}
