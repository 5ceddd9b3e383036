//! `duet run` as a supervisor: one TERM, the terminal under `--group`,
//! restarts on stderr, and duet as PID 1 of a PID namespace.

use std::io::BufReader;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{FIXTURE, duet, duet_bin, read_until, unique_path};

/// The pids of `pid`'s children (Linux: `/proc/PID/task/PID/children`).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn run_forwards_one_term_exactly_once() {
    // strace shows every signal duet sends. It used to send PROG two
    // SIGTERMs for one (the forward, then the graceful stop's own), which
    // kill a program that is cleaning up after the first.
    let log = unique_path("strace.log");
    let prog = format!("echo \"duet $PPID\"; exec {FIXTURE} hold");
    let handle = duct::cmd(
        "strace",
        [
            "-f",
            "-qq",
            "-e",
            "trace=kill,tgkill,tkill,pidfd_send_signal,rt_sigqueueinfo",
            "-e",
            "signal=none",
            "-o",
            log.to_str().unwrap(),
            duet_bin(),
            "run",
            "--",
            "sh",
            "-c",
            &prog,
        ],
    )
    .stdin_null()
    .stderr_to_stdout()
    .unchecked()
    .reader()
    .expect("start strace (`make deps` installs it)");
    let mut out = BufReader::new(handle);
    let line = read_until(&mut out, |l| l.starts_with("duet "));
    let duet_pid: i32 = line["duet ".len()..].parse().unwrap();
    kill(Pid::from_raw(duet_pid), Signal::SIGTERM).unwrap();
    let (code, rest) = super::finish(out);
    assert_eq!(
        code,
        Some(143),
        "PROG died of the one TERM; output {rest:?}"
    );
    let trace = std::fs::read_to_string(&log).unwrap();
    let terms: Vec<&str> = trace.lines().filter(|l| l.contains("SIGTERM")).collect();
    assert_eq!(
        terms.len(),
        1,
        "one TERM sent, not {}:\n{trace}",
        terms.len()
    );
    std::fs::remove_file(&log).unwrap();
}

#[test]
fn run_group_without_a_terminal_leaves_it_alone_and_says_nothing() {
    // It used to try to take back a terminal it never had, logging a
    // false "cannot take the terminal back: ENOTTY" on every CI run.
    duet(&["run", "--group", "--", "true"])
        .expect_code(0)
        .expect_stdout("")
        .expect_stderr("");
}

#[test]
fn run_group_in_the_background_does_not_take_the_terminal() {
    // bash on a terminal, with job control, starts `duet run --group` in
    // the background; PROG reports the terminal's foreground group, which
    // must still be bash's. duet used to make its own group the foreground.
    let prog = "read -r _ _ _ _ _ _ _ tpgid _ < /proc/$$/stat; echo \"foreground=$tpgid\"";
    let script = format!(
        "set -m; read -r _ _ _ _ pgrp _ < /proc/$$/stat; echo \"shell=$pgrp\"; \
         {duet} run --group -- sh -c '{prog}' & wait $!",
        duet = duet_bin()
    );
    let mut bash = duet::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .pty(true)
        .timeout(Duration::from_secs(20))
        .spawn()
        .unwrap();
    let shell = bash
        .expect(duet::Pattern::regex(r"shell=(\d+)").unwrap())
        .unwrap();
    let foreground = bash
        .expect(duet::Pattern::regex(r"foreground=(\d+)").unwrap())
        .unwrap();
    assert_eq!(
        foreground.group(1),
        shell.group(1),
        "the foreground group while PROG ran is still bash's"
    );
    assert_eq!(bash.wait().unwrap().code(), Some(0));
}

#[test]
fn run_writes_one_line_per_restart_at_the_default_verbosity() {
    let run = duet(&[
        "run",
        "--restart",
        "on-failure",
        "--max-restarts",
        "2",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    // Each wait is said when it starts, and the end: restarts used to be
    // said only once they happened, and giving up not at all.
    run.expect_code(3).expect_stderr(
        "duet: sh exited with code 3; restarting in 100ms (restart 1 of 2)\n\
         duet: sh exited with code 3; restarting in 200ms (restart 2 of 2)\n\
         duet: sh exited with code 3; giving up after 2 restarts\n",
    );
}

#[test]
fn restart_help_lists_its_values() {
    for sub in ["run", "serve"] {
        let help = duet(&[sub, "--help"]);
        help.expect_code(0);
        for value in ["never", "on-failure", "always"] {
            assert!(help.stdout.contains(value), "{}", help.report(value));
        }
    }
}

// ---- PID 1 ---------------------------------------------------------------

/// `unshare --pid --fork --mount-proc duet ARGS`: duet is PID 1 of a new
/// PID namespace with its own /proc. Needs util-linux's `unshare` and the
/// right to make namespaces (root, or CAP_SYS_ADMIN); fails saying so.
fn as_pid_1(args: &[&str]) -> duet::Child {
    let probe = duct::cmd("unshare", ["--pid", "--fork", "--mount-proc", "true"])
        .stderr_capture()
        .unchecked()
        .run();
    match probe {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "this test runs duet as PID 1 with `unshare --pid --fork --mount-proc` \
             (util-linux; needs root or CAP_SYS_ADMIN): {other:?}"
        ),
    }
    let mut argv = vec!["--pid", "--fork", "--mount-proc", duet_bin()];
    argv.extend_from_slice(args);
    duet::Command::new("unshare")
        .args(&argv)
        .timeout(Duration::from_secs(20))
        .spawn()
        .expect("start unshare")
}

/// duet's pid outside the namespace: the one child of `unshare`.
fn outer_pid(unshare: &duet::Child) -> i32 {
    let kids = children_of(unshare.id());
    assert_eq!(kids.len(), 1, "unshare has one child, duet: {kids:?}");
    kids[0] as i32
}

#[test]
fn run_as_pid_1_reaps_orphans_without_subreaper() {
    // A grandchild left to PID 1 used to stay a zombie.
    let mut init = as_pid_1(&["run", "--", FIXTURE, "orphan"]);
    let m = init
        .expect(duet::Pattern::regex(r"(not )?reaped").unwrap())
        .unwrap();
    assert_eq!(m.as_str(), "reaped", "before it: {:?}", m.before());
    assert_eq!(init.wait().unwrap().code(), Some(0));
}

#[test]
fn run_as_pid_1_stops_prog_gracefully_on_int_and_hup() {
    // PROG ignores the signal: after the grace period it gets KILL, as for
    // TERM. It used to leave duet, PID 1, running for ever.
    for (sig, name) in [(Signal::SIGINT, "INT"), (Signal::SIGHUP, "HUP")] {
        let mut init = as_pid_1(&["run", "--grace", "300ms", "--", FIXTURE, "ignore", name]);
        init.expect(duet::Pattern::exact("ready")).unwrap();
        kill(Pid::from_raw(outer_pid(&init)), sig).unwrap();
        let status = init
            .wait_timeout(Duration::from_secs(20))
            .unwrap()
            .unwrap_or_else(|| {
                let _ = init.kill();
                panic!("duet as PID 1 did not stop PROG after {name}")
            });
        assert_eq!(status.code(), Some(137), "{name}: KILL after the grace");
    }
}

#[test]
fn run_as_pid_1_forwards_term_and_exits_with_progs_own_code() {
    let prog = "trap 'echo cleaning up; exit 7' TERM; echo ready; \
                while :; do sleep 0.05; done";
    let mut init = as_pid_1(&["run", "--", "sh", "-c", prog]);
    init.expect(duet::Pattern::exact("ready")).unwrap();
    kill(Pid::from_raw(outer_pid(&init)), Signal::SIGTERM).unwrap();
    init.expect(duet::Pattern::exact("cleaning up")).unwrap();
    assert_eq!(init.wait().unwrap().code(), Some(7));
}
