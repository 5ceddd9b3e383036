//! `duet::Session`: the conversation over descriptors the caller already
//! has (a socket, a pty, a FIFO pair), with a real program at the other end.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use duet::fifo::{Access, FifoDir};
use duet::{Command, Error, Pattern, Session, Stdio};

/// A program whose stdin and stdout are `fd` (one end of a socket, a pty's
/// slave), so the test's session talks to it through the other end.
fn program_on(fd: OwnedFd, script: &str) -> duet::Child {
    let copy = fd.try_clone().unwrap();
    Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::from(fd))
        .stdout(Stdio::from(copy))
        .spawn()
        .unwrap()
}

fn session_on(stream: UnixStream) -> Session {
    let read = OwnedFd::from(stream.try_clone().unwrap());
    Session::new(read, stream.into())
}

#[test]
fn a_session_over_a_socketpair_talks_to_a_program() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut program = program_on(
        theirs.into(),
        "printf 'login: '; read user; echo \"welcome $user\"; while read l; do echo \"= $l\"; done; echo bye",
    );
    let mut dev = session_on(ours);
    dev.set_timeout(Duration::from_secs(20));
    dev.expect(Pattern::exact("login: ")).unwrap();
    assert_eq!(dev.ask("root").unwrap(), "welcome root");
    assert_eq!(dev.ask("1+1").unwrap(), "= 1+1");
    let m = dev
        .expect_any_timeout(
            &[Pattern::regex("ERR").unwrap(), Pattern::Timeout],
            Duration::from_millis(200),
        )
        .unwrap();
    assert_eq!(m.0, 1, "nothing more came");
    // End-of-file through a socket whose other descriptor still reads: the
    // write side is shut down, so the program's `read` ends.
    dev.send_eof().unwrap();
    assert_eq!(dev.read_line().unwrap(), "bye");
    assert!(matches!(
        dev.read_line(),
        Err(Error::Eof { status: None, .. })
    ));
    assert!(program.wait().unwrap().success());
}

#[test]
fn a_session_over_a_pty_gets_lines_whole_and_interrupts_with_control_c() {
    let pty = nix::pty::openpty(None, None).unwrap();
    // `setsid -c`: the program leads a session with the pty as its
    // controlling terminal, so the terminal's ^C reaches it as SIGINT.
    let mut program = Command::new("setsid")
        .args(["-c", "sh", "-c", "stty -echo; trap 'echo interrupted; exit 3' INT; echo ready; while read l; do echo \"${#l} $l\"; done"])
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let master = pty.master;
    let mut dev = Session::new(master.try_clone().unwrap(), master);
    dev.set_timeout(Duration::from_secs(20));
    dev.expect(Pattern::line("^ready$").unwrap()).unwrap();
    // A line with a carriage return and a ^C byte in it, longer than the
    // terminal's 4095-byte line: it arrives whole and literal.
    let line = format!("a\rb\x03c{}", "x".repeat(5000));
    dev.send_line(&line).unwrap();
    let reply = dev.expect(Pattern::line(r"^\d+ a").unwrap()).unwrap();
    assert_eq!(reply.as_str(), format!("{} {line}", line.len()));
    dev.send_intr().unwrap();
    dev.expect("interrupted").unwrap();
    assert_eq!(program.wait().unwrap().code(), Some(3));
}

#[test]
fn a_session_over_a_fifo_pair_reads_replies_and_watches() {
    let path = std::env::temp_dir().join(format!("duet-test-session-fifo-{}", std::process::id()));
    let dir = FifoDir::create(&path).unwrap();
    let to_program = dir.create_fifo("in").unwrap();
    let from_program = dir.create_fifo("out").unwrap();
    let script = format!(
        "exec <'{}' >'{}'; while read l; do echo \"got $l\"; done; echo 'Error: input ended'",
        to_program.path().display(),
        from_program.path().display()
    );
    let mut program = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    // Reading first (a non-blocking open never waits), then writing (a
    // blocking open waits until the program opened its end).
    let read = from_program.open(Access::Read, true).unwrap();
    let write = to_program.open(Access::Write, false).unwrap();
    let mut dev = Session::new(read.into(), write.into());
    dev.set_timeout(Duration::from_secs(20));
    dev.fail_on(Pattern::regex(r"Error: .*").unwrap());
    assert_eq!(dev.ask("one").unwrap(), "got one");
    assert_eq!(dev.ask("two").unwrap(), "got two");
    dev.close_stdin().unwrap();
    match dev.read_line().unwrap_err() {
        Error::FailOn { matched, .. } => assert_eq!(matched, "Error: input ended"),
        other => panic!("{other}"),
    }
    assert!(program.wait().unwrap().success());
    drop((to_program, from_program));
    dir.remove().unwrap();
}

#[test]
fn a_session_answers_prompts_with_respond() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut program = program_on(
        theirs.into(),
        "for f in a b; do printf 'overwrite %s? [y/N] ' $f; read a; echo \"$f: $a\"; done",
    );
    let mut dev = session_on(ours);
    dev.set_timeout(Duration::from_secs(20));
    dev.respond(Pattern::exact("[y/N] "), "y\n");
    let m = dev.expect(Pattern::line("^.*b: y$").unwrap()).unwrap();
    assert!(m.before().contains("a: y"), "{}", m.before());
    assert!(program.wait().unwrap().success());
}
