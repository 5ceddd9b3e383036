//! Children on a pseudo-terminal.

use duet::{Command, Stdio};

use crate::util::{FIXTURE, fixture};

#[test]
fn pty_child_sees_a_terminal_on_all_three_streams() {
    let mut child = fixture("tty", &[]).pty(true).spawn().unwrap();
    assert_eq!(
        child.read_line().unwrap(),
        "stdin=true stdout=true stderr=true"
    );
}

#[test]
fn pty_stdout_only_keeps_stdin_and_stderr_as_pipes() {
    let mut child = fixture("tty", &[])
        .pty_stdout(true)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(
        child.read_line().unwrap(),
        "stdin=false stdout=true stderr=false"
    );
}

#[test]
fn pty_defeats_block_buffering_of_the_fixture() {
    let mut on_pipe = fixture("no-flush", &[]).spawn().unwrap();
    on_pipe.send_line("hello").unwrap();
    assert!(
        on_pipe
            .read_line_timeout(std::time::Duration::from_millis(100))
            .unwrap_err()
            .is_timeout()
    );

    let mut on_pty = fixture("no-flush", &[]).pty(true).spawn().unwrap();
    assert_eq!(on_pty.ask("hello").unwrap(), "hello");
    let mut on_pty_stdout = fixture("no-flush", &[]).pty_stdout(true).spawn().unwrap();
    assert_eq!(on_pty_stdout.ask("hello").unwrap(), "hello");
}

#[test]
fn pty_makes_python_answer_line_by_line() {
    let script = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper())\n";
    let mut py = Command::new("python3");
    py.args(["-c", script])
        .env_remove("PYTHONUNBUFFERED")
        .pty(true);
    let mut child = py.spawn().unwrap();
    assert_eq!(child.ask("abc").unwrap(), "ABC");
    assert_eq!(child.ask("def").unwrap(), "DEF");
}

#[test]
fn pty_echo_is_off_by_default_and_can_be_turned_on() {
    let mut quiet = fixture("upper", &[]).pty(true).spawn().unwrap();
    assert_eq!(quiet.ask("abc").unwrap(), "ABC");
    let mut echoing = fixture("upper", &[])
        .pty(true)
        .pty_echo(true)
        .spawn()
        .unwrap();
    assert_eq!(echoing.ask("abc").unwrap(), "abc");
    assert_eq!(echoing.read_line().unwrap(), "ABC");
}

#[test]
fn long_lines_arrive_whole_in_both_directions_on_a_pty() {
    let mut child = fixture("echo", &[]).pty(true).spawn().unwrap();
    let long: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(child.ask(&long).unwrap(), long);
}

#[test]
fn control_characters_arrive_literally_and_close_stdin_gives_eof_on_a_pty() {
    let mut child = fixture("count", &[]).pty(true).spawn().unwrap();
    child.send_line(&"y".repeat(10_000)).unwrap();
    child.send("ctl:\x03\x04\x15\x7f\x1a").unwrap();
    child.close_stdin().unwrap();
    assert_eq!(child.read_line().unwrap(), "10010 bytes 1 lines");
}

#[test]
fn pty_window_size_is_applied() {
    let mut child = Command::new("stty")
        .arg("size")
        .pty(true)
        .pty_size(33, 111)
        .spawn()
        .unwrap();
    assert_eq!(child.read_line().unwrap(), "33 111");
}

#[test]
fn a_carriage_return_inside_a_sent_line_arrives_as_itself_on_a_pty() {
    let mut child = fixture("escaped", &[]).pty(true).spawn().unwrap();
    assert_eq!(child.ask("a\rb").unwrap(), "a\\rb");
    assert_eq!(child.ask("\r").unwrap(), "\\r");
    assert_eq!(child.ask("tab\there\r\r").unwrap(), "tab\\there\\r\\r");
    child.send_bytes(b"no newline yet\r").unwrap();
    assert_eq!(
        child.ask(" then one").unwrap(),
        "no newline yet\\r then one"
    );
}

/// The child may change how its terminal translates input; every byte of a
/// line still arrives as sent, and the line still ends where it ends.
#[test]
fn sent_lines_arrive_byte_for_byte_whatever_the_input_translation() {
    for flags in ["igncr", "inlcr", "inlcr igncr", "-icrnl"] {
        let script = format!("stty {flags} && echo ready && exec \"$0\" escaped");
        let mut child = Command::new("sh")
            .args(["-c", &script, FIXTURE])
            .pty(true)
            .timeout(std::time::Duration::from_secs(20))
            .spawn()
            .unwrap();
        assert_eq!(child.read_line().unwrap(), "ready");
        assert_eq!(child.ask("x\ry").unwrap(), "x\\ry", "stty {flags}");
        assert_eq!(child.ask("plain").unwrap(), "plain", "stty {flags}");
    }
}
