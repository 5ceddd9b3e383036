//! `duet run` as a supervisor people trust: one ^C under a real terminal,
//! readiness (`--ready`, `--ready-file`, the `NOTIFY_SOCKET` relay),
//! `--map-signal`, `--env`, an honest transcript, and the usage tip for a
//! program given without `--`.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use duet::{Pattern, Signal, Stdio};

use super::{duet, duet_bin, unique_path};

/// `duet ARGS` driven through the library: stdin, stdout and stderr piped.
fn duet_child(args: &[&str], env: &[(&str, &str)]) -> duet::Child {
    let mut cmd = duet::Command::new(duet_bin());
    cmd.args(args)
        .env_remove("NOTIFY_SOCKET")
        .stderr(Stdio::piped())
        .timeout(Duration::from_secs(20));
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.spawn().expect("start duet")
}

/// A datagram socket standing for systemd's `NOTIFY_SOCKET`: what duet
/// tells its own supervisor arrives here.
struct Listener {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Listener {
    fn new() -> Listener {
        let path = unique_path("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Listener { socket, path }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// The next message, waiting for it (a read timeout fails the test).
    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .expect("a message on NOTIFY_SOCKET");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// A message that is already there, if any.
    fn pending(&self) -> Option<String> {
        self.socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        let got = match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => None,
            Err(e) => panic!("recv: {e}"),
        };
        self.socket.set_nonblocking(false).unwrap();
        got
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

// ---- one ^C ------------------------------------------------------------------

/// A python3 program that prints `INT` for each SIGINT, and on SIGUSR1 how
/// many it got, then exits.
const COUNT_SIGINTS: &str = "import signal, sys\n\
n = 0\n\
def count(*a):\n    global n\n    n += 1\n    print('INT', flush=True)\n\
def report(*a):\n    print('sigints', n, flush=True)\n    sys.exit(0)\n\
signal.signal(signal.SIGINT, count)\n\
signal.signal(signal.SIGUSR1, report)\n\
print('ready', flush=True)\n\
while True:\n    signal.pause()\n";

/// The same, first waiting until its process group is the terminal's
/// foreground group (with `--group`, duet makes it so and then sends
/// SIGCONT), and saying duet's pid in its `ready` line.
const COUNT_TERMINAL_SIGINTS: &str = "import os, signal\n\
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCONT])\n\
while os.tcgetpgrp(0) != os.getpgrp():\n    signal.sigwait([signal.SIGCONT])\n\
print('duet', os.getppid(), flush=True)\n";

#[test]
fn one_ctrl_c_at_a_terminal_is_one_sigint_with_and_without_group() {
    // duet on a real terminal (the library's pty) as a shell would run it,
    // under strace, which shows every signal duet sends. It used to forward
    // the terminal's SIGINT to a PROG that had already got it from the
    // terminal: one ^C, two SIGINTs (or one, when the two merged).
    for group in [false, true] {
        let log = unique_path("ctrl-c.strace");
        let prog = format!("{COUNT_TERMINAL_SIGINTS}{COUNT_SIGINTS}");
        let mut args = vec![
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
        ];
        if group {
            args.push("--group");
        }
        args.extend(["--", "python3", "-c", &prog]);
        let mut strace = duet::Command::new("strace")
            .args(&args)
            .pty(true)
            .timeout(Duration::from_secs(20))
            .spawn()
            .expect("start strace (`make deps` installs it)");
        let pid = strace
            .expect(Pattern::regex(r"duet (\d+)").unwrap())
            .unwrap()
            .group(1)
            .unwrap()
            .parse::<u32>()
            .unwrap();
        strace.expect(Pattern::exact("ready")).unwrap();
        strace.send_intr().unwrap();
        strace.expect(Pattern::exact("INT")).unwrap();
        // The terminal's SIGINT reached duet no later than PROG, and duet
        // forwards in order: a second SIGINT would go before USR1.
        duet::supervise::Process::open(pid)
            .unwrap()
            .expect("duet runs")
            .signal(Signal::SIGUSR1)
            .unwrap();
        let m = strace
            .expect(Pattern::regex(r"sigints \d+").unwrap())
            .unwrap();
        assert_eq!(m.as_str(), "sigints 1", "--group {group}: {:?}", m.before());
        assert_eq!(strace.wait().unwrap().code(), Some(0), "--group {group}");
        let trace = std::fs::read_to_string(&log).unwrap();
        let ints: Vec<&str> = trace.lines().filter(|l| l.contains("SIGINT")).collect();
        assert!(
            ints.is_empty(),
            "--group {group}: duet sent no SIGINT of its own:\n{trace}"
        );
        std::fs::remove_file(&log).unwrap();
    }
}

#[test]
fn a_sigint_sent_to_duet_by_a_process_still_reaches_prog() {
    // Only the terminal's copy is left out: `kill -INT` is forwarded.
    let mut duet = duet_child(&["run", "--", "python3", "-c", COUNT_SIGINTS], &[]);
    duet.expect(Pattern::exact("ready")).unwrap();
    duet.signal(Signal::SIGINT).unwrap();
    duet.expect(Pattern::exact("INT")).unwrap();
    duet.signal(Signal::SIGUSR1).unwrap();
    duet.expect(Pattern::exact("sigints 1")).unwrap();
    assert_eq!(duet.wait().unwrap().code(), Some(0));
}

// ---- --map-signal ------------------------------------------------------------

#[test]
fn map_signal_term_to_quit_is_what_prog_sees() {
    let prog = "import signal, sys\n\
                def on(name, code):\n    \
                    return lambda *a: (print('got', name, flush=True), sys.exit(code))\n\
                signal.signal(signal.SIGTERM, on('TERM', 4))\n\
                signal.signal(signal.SIGQUIT, on('QUIT', 3))\n\
                print('ready', flush=True)\n\
                while True:\n    signal.pause()\n";
    let mut duet = duet_child(
        &[
            "run",
            "--map-signal",
            "TERM=QUIT",
            "--",
            "python3",
            "-c",
            prog,
        ],
        &[],
    );
    duet.expect(Pattern::exact("ready")).unwrap();
    duet.signal(Signal::SIGTERM).unwrap();
    let m = duet.expect(Pattern::regex("got [A-Z]+").unwrap()).unwrap();
    assert_eq!(m.as_str(), "got QUIT");
    assert_eq!(duet.wait().unwrap().code(), Some(3));
}

#[test]
fn map_signal_refuses_what_it_cannot_do() {
    duet(&["run", "--map-signal", "TERM", "--", "true"])
        .expect_code(2)
        .expect_stderr_has("FROM=TO");
    duet(&["run", "--map-signal", "TERM=BOGUS", "--", "true"])
        .expect_code(2)
        .expect_stderr_has("\"BOGUS\" is not a signal");
    duet(&["run", "--map-signal", "CHLD=TERM", "--", "true"])
        .expect_code(2)
        .expect_stderr_has("does not forward SIGCHLD");
}

// ---- --env ------------------------------------------------------------------

#[test]
fn run_env_sets_prog_variables_verbatim() {
    duet(&[
        "run",
        "--env",
        "GREETING=hello world",
        "--env",
        "EQ=a=b",
        "--env",
        "EMPTY=",
        "--",
        "sh",
        "-c",
        "echo \"$GREETING|$EQ|${EMPTY-unset}\"",
    ])
    .expect_code(0)
    .expect_stdout("hello world|a=b|\n");
    duet(&["run", "--env", "NOVALUE", "--", "true"])
        .expect_code(2)
        .expect_stderr_has("NAME=VALUE");
}

// ---- --transcript ------------------------------------------------------------

#[test]
fn run_transcript_holds_stderr_marked_and_a_quoted_argv() {
    let transcript = unique_path("stderr.transcript");
    let run = duet(&[
        "run",
        "--transcript",
        transcript.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo out; echo oops >&2",
    ]);
    run.expect_code(0)
        .expect_stdout("out\n")
        .expect_stderr("oops\n");
    let text = std::fs::read_to_string(&transcript).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "# duet transcript: sh -c 'echo out; echo oops >&2'",
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with("< out\\n")),
        "stdout recorded:\n{text}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with("! oops\\n")),
        "stderr recorded, marked `!`:\n{text}"
    );
    std::fs::remove_file(&transcript).unwrap();
}

// ---- usage ------------------------------------------------------------------

#[test]
fn a_program_without_dash_dash_gets_a_tip_for_every_subcommand() {
    for (args, fixed) in [
        (&["run", "true"][..], "duet run -- true"),
        (&["chat", "bc", "-q"], "duet chat -- bc -q"),
        (&["serve", "dir", "bc"], "duet serve dir -- bc"),
        (&["script", "f.duet", "bc"], "duet script f.duet -- bc"),
        (&["record", "f.duet", "bc"], "duet record f.duet -- bc"),
        (
            &["run", "--grace", "1s", "sh", "-c", "exit 3"],
            "duet run --grace 1s -- sh -c 'exit 3'",
        ),
    ] {
        duet(args)
            .expect_code(2)
            .expect_stderr_has(&format!("put `--` before the program: {fixed}"));
    }
}

// ---- readiness ---------------------------------------------------------------

/// A server that says `starting`, then `listening` once the test lets it
/// (a line on its stdin, which it inherits from duet), on `stream`.
fn server(stream: &str) -> String {
    format!("echo starting; read go; echo listening {stream}; read stop")
}

#[test]
fn ready_file_appears_with_the_ready_line_on_either_stream_and_goes_with_prog() {
    for redirect in ["", ">&2"] {
        let file = unique_path("ready");
        std::fs::write(&file, "left by an earlier run").unwrap();
        let f = file.to_str().unwrap();
        let prog = server(redirect);
        let mut duet = duet_child(
            &[
                "run",
                "--ready",
                "^listening$",
                "--ready-file",
                f,
                "--",
                "sh",
                "-c",
                &prog,
            ],
            &[],
        );
        duet.expect(Pattern::exact("starting")).unwrap();
        assert!(!file.exists(), "a stale ready file is removed at the start");
        duet.send_line("go").unwrap();
        if redirect.is_empty() {
            duet.expect(Pattern::exact("listening")).unwrap();
        } else {
            duet.expect_stderr(Pattern::exact("listening")).unwrap();
        }
        wait_for_file(&file);
        duet.send_line("stop").unwrap();
        assert_eq!(duet.wait().unwrap().code(), Some(0));
        assert!(!file.exists(), "removed when PROG exits");
    }
}

#[test]
fn notify_socket_hears_ready_when_the_line_matches() {
    let outer = Listener::new();
    let prog = format!("echo \"socket=$NOTIFY_SOCKET\"; {}", server(""));
    let mut duet = duet_child(
        &["run", "--ready", "^listening$", "--", "sh", "-c", &prog],
        &[("NOTIFY_SOCKET", outer.path())],
    );
    let socket = duet
        .expect(Pattern::line("^socket=(.*)$").unwrap())
        .unwrap();
    let inner = socket.group(1).unwrap().trim_end().to_string();
    assert!(
        !inner.is_empty() && inner != outer.path(),
        "PROG gets a notify socket of its own, not duet's: {inner:?}"
    );
    duet.expect(Pattern::exact("starting")).unwrap();
    assert_eq!(outer.pending(), None, "not ready before the line");
    duet.send_line("go").unwrap();
    duet.expect(Pattern::exact("listening")).unwrap();
    assert_eq!(outer.next(), "READY=1");
    duet.send_line("stop").unwrap();
    assert_eq!(duet.wait().unwrap().code(), Some(0));
    assert!(
        !Path::new(&inner).exists(),
        "PROG's notify socket is removed with duet"
    );
}

#[test]
fn progs_own_notify_messages_are_relayed_and_mainpid_is_not() {
    // PROG speaks sd_notify itself; duet passes READY=1, STATUS= and
    // STOPPING= on from its own pid, and keeps MAINPID= (duet is the main
    // process) to itself.
    let outer = Listener::new();
    let prog = "import os, signal, socket, sys\n\
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                to = os.environ['NOTIFY_SOCKET']\n\
                def stop(*a):\n    s.sendto(b'STOPPING=1', to)\n    sys.exit(0)\n\
                signal.signal(signal.SIGTERM, stop)\n\
                s.sendto(b'STATUS=warming up', to)\n\
                s.sendto(b'READY=1\\nMAINPID=1\\nSTATUS=serving', to)\n\
                s.sendto(b'READY=1', to)\n\
                print('sent', flush=True)\n\
                while True:\n    signal.pause()\n";
    let mut duet = duet_child(
        &["run", "--", "python3", "-c", prog],
        &[("NOTIFY_SOCKET", outer.path())],
    );
    assert_eq!(outer.next(), "STATUS=warming up");
    assert_eq!(outer.next(), "READY=1\nSTATUS=serving");
    duet.expect(Pattern::exact("sent")).unwrap();
    duet.signal(Signal::SIGTERM).unwrap();
    assert_eq!(
        outer.next(),
        "STOPPING=1",
        "a repeated READY=1 is not sent again"
    );
    assert_eq!(duet.wait().unwrap().code(), Some(0));
}

#[test]
fn ready_file_without_ready_waits_for_progs_ready_1() {
    let file = unique_path("notified");
    let f = file.to_str().unwrap();
    let prog = "import os, socket, sys\n\
                print('starting', flush=True)\n\
                sys.stdin.readline()\n\
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])\n\
                print('notified', flush=True)\n\
                sys.stdin.readline()\n";
    let mut duet = duet_child(
        &["run", "--ready-file", f, "--", "python3", "-c", prog],
        &[],
    );
    duet.expect(Pattern::exact("starting")).unwrap();
    assert!(!file.exists());
    duet.send_line("go").unwrap();
    duet.expect(Pattern::exact("notified")).unwrap();
    wait_for_file(&file);
    duet.send_line("stop").unwrap();
    assert_eq!(duet.wait().unwrap().code(), Some(0));
    assert!(!file.exists());
}

/// Waits until `path` exists, by inotify on its directory (an event, not
/// a sleep); fails after 20 s.
fn wait_for_file(path: &Path) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use std::os::fd::AsFd;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).unwrap();
    inotify
        .add_watch(
            path.parent().unwrap(),
            AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
        )
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "{} never appeared", path.display());
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        poll(&mut fds, PollTimeout::from(ms)).unwrap();
        let _ = inotify.read_events();
    }
}

#[test]
fn readiness_resets_across_restarts() {
    let outer = Listener::new();
    let file = unique_path("again");
    let f = file.to_str().unwrap();
    let prog = "echo started; read a; echo up; read b";
    let mut duet = duet_child(
        &[
            "run",
            "--restart",
            "always",
            "--max-restarts",
            "1",
            "--ready",
            "^up$",
            "--ready-file",
            f,
            "--",
            "sh",
            "-c",
            prog,
        ],
        &[("NOTIFY_SOCKET", outer.path())],
    );
    for run in 1..=2 {
        duet.expect(Pattern::exact("started")).unwrap();
        assert!(!file.exists(), "run {run}: not ready before `up`");
        duet.send_line("a").unwrap();
        duet.expect(Pattern::exact("up")).unwrap();
        assert_eq!(outer.next(), "READY=1", "run {run}");
        wait_for_file(&file);
        duet.send_line("b").unwrap();
        if run == 1 {
            duet.expect_stderr(Pattern::exact(
                "duet: sh exited with code 0; restarting in 100ms (restart 1 of 1)",
            ))
            .unwrap();
            assert!(!file.exists(), "the exit took readiness away");
            assert_eq!(
                outer.next(),
                "STATUS=sh exited with code 0; restarting in 100ms"
            );
        }
    }
    duet.expect_stderr(Pattern::exact(
        "duet: sh exited with code 0; giving up after 1 restart",
    ))
    .unwrap();
    assert_eq!(duet.wait().unwrap().code(), Some(0));
    assert!(!file.exists());
}

#[test]
fn readiness_options_refuse_bad_input_before_prog_runs() {
    duet(&["run", "--ready", "(", "--", "sh", "-c", "echo ran"])
        .expect_code(2)
        .expect_stdout("")
        .expect_stderr_has("bad regex \"(\"");
    let missing = unique_path("no-such-dir").join("ready");
    duet(&[
        "run",
        "--ready-file",
        missing.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo ran",
    ])
    .expect_code(125)
    .expect_stdout("")
    .expect_stderr_has("is not a directory");
}

#[test]
fn progs_watchdog_pings_come_through_duet() {
    // systemd's WATCHDOG_PID names duet: PROG must not see it, or
    // sd_watchdog_enabled() in PROG says no and it never pings.
    let outer = Listener::new();
    let prog = "import os, socket\n\
                pid = os.environ.get('WATCHDOG_PID', 'unset')\n\
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(\
                f'WATCHDOG=1\\nSTATUS=pid {pid}'.encode(), os.environ['NOTIFY_SOCKET'])\n";
    let mut duet = duet_child(
        &["run", "--", "python3", "-c", prog],
        &[
            ("NOTIFY_SOCKET", outer.path()),
            ("WATCHDOG_PID", "1"),
            ("WATCHDOG_USEC", "30000000"),
        ],
    );
    assert_eq!(outer.next(), "WATCHDOG=1\nSTATUS=pid unset");
    assert_eq!(duet.wait().unwrap().code(), Some(0));
}
