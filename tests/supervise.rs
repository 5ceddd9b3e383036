//! `duet::supervise` as a library: restart policy, backoff, graceful stop.

use std::os::fd::AsFd;
use std::time::Duration;

use duet::supervise::{Backoff, Policy, Restart, Step, Supervisor, poll_timeout};
use duet::{Command, ExitStatus};
use nix::poll::{PollFd, PollFlags, poll};

use crate::util::FIXTURE;

/// Waits for the supervisor's next event and handles it.
fn next_step(sup: &mut Supervisor) -> Step {
    let mut fds = [PollFd::new(sup.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, poll_timeout(sup.deadline()));
    sup.step().expect("step")
}

/// Steps until supervision is over.
fn until_done(sup: &mut Supervisor) -> ExitStatus {
    loop {
        if let Step::Done(status) = next_step(sup) {
            return status;
        }
    }
}

fn quick_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
    }
}

#[test]
fn run_restarts_on_failure_until_the_limit() {
    let log = std::env::temp_dir().join(format!("duet-supervise-{}", std::process::id()));
    let script = format!("echo started >> {}; exit 3", log.display());
    let policy = Policy {
        restart: Restart::OnFailure,
        max_restarts: Some(2),
        backoff: quick_backoff(),
        ..Policy::default()
    };
    let mut sup = Supervisor::new(policy).unwrap();
    let status = sup.run(Command::new("sh").args(["-c", &script])).unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(sup.restarts(), 2);
    let runs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(runs.lines().count(), 3, "{runs}");
    std::fs::remove_file(&log).unwrap();
}

#[test]
fn a_successful_exit_is_not_restarted_on_failure() {
    let policy = Policy {
        restart: Restart::OnFailure,
        backoff: quick_backoff(),
        ..Policy::default()
    };
    let mut sup = Supervisor::new(policy).unwrap();
    let status = sup.run(Command::new("true").arg("x")).unwrap();
    assert!(status.success());
    assert_eq!(sup.restarts(), 0);
}

#[test]
fn a_stop_during_backoff_ends_supervision() {
    let policy = Policy {
        restart: Restart::Always,
        backoff: Backoff {
            initial: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        },
        ..Policy::default()
    };
    let mut sup = Supervisor::new(policy).unwrap();
    sup.start(Command::new(FIXTURE).args(["exit", "4"]).spawn().unwrap());
    // The child exits; the supervisor then waits for a restart an hour away.
    while sup.deadline().is_none() {
        assert_eq!(next_step(&mut sup), Step::Running);
    }
    assert!(sup.restart_at().is_some(), "a restart waits");
    sup.stop(Duration::from_secs(1)).unwrap();
    assert_eq!(sup.restart_at(), None, "no restart after a stop");
    assert_eq!(sup.step().unwrap(), Step::Done(ExitStatus::from_code(4)));
    assert_eq!(sup.restarts(), 0);
    assert!(!sup.gave_up(), "stopped, not out of restarts");
}

#[test]
fn gave_up_says_the_restarts_ran_out() {
    let policy = Policy {
        restart: Restart::OnFailure,
        max_restarts: Some(1),
        backoff: quick_backoff(),
        ..Policy::default()
    };
    let mut sup = Supervisor::new(policy).unwrap();
    let status = sup.run(Command::new(FIXTURE).args(["exit", "4"])).unwrap();
    assert_eq!((status.code(), sup.restarts()), (Some(4), 1));
    assert!(sup.gave_up());
    let mut sup = Supervisor::new(policy).unwrap();
    sup.run(Command::new(FIXTURE).args(["exit", "0"])).unwrap();
    assert!(
        !sup.gave_up(),
        "a success is not restarted on failure: nothing to give up"
    );
}

#[test]
fn a_mapped_term_is_the_stops_signal() {
    let mut sup = Supervisor::new(Policy::default()).unwrap();
    sup.map_signal(duet::Signal::SIGTERM, duet::Signal::SIGQUIT);
    let prog = "import signal, sys\n\
                signal.signal(signal.SIGQUIT, lambda *a: sys.exit(3))\n\
                print('ready', flush=True)\n\
                while True:\n    signal.pause()\n";
    let mut child = Command::new("python3").args(["-c", prog]).spawn().unwrap();
    assert_eq!(child.read_line().unwrap(), "ready");
    sup.start(child);
    sup.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(
        until_done(&mut sup).code(),
        Some(3),
        "QUIT, handled, for TERM"
    );
}

#[test]
fn stop_kills_a_child_that_ignores_term_after_the_grace_period() {
    let mut sup = Supervisor::new(Policy::default()).unwrap();
    let mut child = Command::new(FIXTURE).arg("ignore-term").spawn().unwrap();
    assert_eq!(child.read_line().unwrap(), "ready");
    sup.start(child);
    sup.stop(Duration::from_millis(200)).unwrap();
    let status = until_done(&mut sup);
    assert_eq!(status.signal(), Some(9), "{status}");
}

#[test]
fn stop_ends_a_child_that_honours_term() {
    let mut sup = Supervisor::new(Policy {
        restart: Restart::Always,
        ..Policy::default()
    })
    .unwrap();
    sup.start(Command::new(FIXTURE).arg("hold").spawn().unwrap());
    sup.stop(Duration::from_secs(20)).unwrap();
    let status = until_done(&mut sup);
    assert_eq!(status.signal(), Some(15), "{status}");
    assert_eq!(sup.restarts(), 0, "a stopped child is not restarted");
}

/// A `supervise::Process` is the process it was opened for: once that one
/// is gone and its pid goes to another process, a signal through the
/// handle reaches nobody.
#[test]
fn a_process_handle_never_signals_the_process_that_took_its_pid() {
    use std::io::Write;
    let mut gone = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = gone.id();
    let handle = duet::supervise::Process::open(pid)
        .unwrap()
        .expect("it runs");
    gone.kill().unwrap();
    gone.wait().unwrap();
    assert!(handle.wait_for_exit(Duration::from_secs(5)).unwrap());
    let stranger = crate::util::stranger_with_pid(pid);
    handle.signal(duet::Signal::SIGTERM).unwrap();
    handle.signal_group(duet::Signal::SIGTERM).unwrap();
    if let Some(mut stranger) = stranger {
        writeln!(stranger.stdin.take().unwrap(), "go").unwrap();
        assert_eq!(
            stranger.wait().unwrap().code(),
            Some(42),
            "the stranger was signalled"
        );
    }
}
