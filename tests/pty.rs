//! Children on a pseudo-terminal.

use duet::{Command, Stdio};

use crate::drive::{Conv, Start, both};
use crate::util::{FIXTURE, fixture};

async fn pty_child_sees_a_terminal_on_all_three_streams<C: Conv>() {
    let mut child = fixture("tty", &[]).pty(true).start::<C>().unwrap();
    assert_eq!(
        child.read_line().await.unwrap(),
        "stdin=true stdout=true stderr=true"
    );
}

async fn pty_stdout_only_keeps_stdin_and_stderr_as_pipes<C: Conv>() {
    let mut child = fixture("tty", &[])
        .pty_stdout(true)
        .stderr(Stdio::piped())
        .start::<C>()
        .unwrap();
    assert_eq!(
        child.read_line().await.unwrap(),
        "stdin=false stdout=true stderr=false"
    );
}

async fn pty_defeats_block_buffering_of_the_fixture<C: Conv>() {
    let mut on_pipe = fixture("no-flush", &[]).start::<C>().unwrap();
    on_pipe.send_line("hello").await.unwrap();
    assert!(
        on_pipe
            .read_line_timeout(std::time::Duration::from_millis(100))
            .await
            .unwrap_err()
            .is_timeout()
    );

    let mut on_pty = fixture("no-flush", &[]).pty(true).start::<C>().unwrap();
    assert_eq!(on_pty.ask("hello").await.unwrap(), "hello");
    let mut on_pty_stdout = fixture("no-flush", &[])
        .pty_stdout(true)
        .start::<C>()
        .unwrap();
    assert_eq!(on_pty_stdout.ask("hello").await.unwrap(), "hello");
}

async fn pty_makes_python_answer_line_by_line<C: Conv>() {
    let script = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper())\n";
    let mut py = Command::new("python3");
    py.args(["-c", script])
        .env_remove("PYTHONUNBUFFERED")
        .pty(true);
    let mut child = py.start::<C>().unwrap();
    assert_eq!(child.ask("abc").await.unwrap(), "ABC");
    assert_eq!(child.ask("def").await.unwrap(), "DEF");
}

async fn pty_echo_is_off_by_default_and_can_be_turned_on<C: Conv>() {
    let mut quiet = fixture("upper", &[]).pty(true).start::<C>().unwrap();
    assert_eq!(quiet.ask("abc").await.unwrap(), "ABC");
    let mut echoing = fixture("upper", &[])
        .pty(true)
        .pty_echo(true)
        .start::<C>()
        .unwrap();
    assert_eq!(echoing.ask("abc").await.unwrap(), "abc");
    assert_eq!(echoing.read_line().await.unwrap(), "ABC");
}

async fn long_lines_arrive_whole_in_both_directions_on_a_pty<C: Conv>() {
    let mut child = fixture("echo", &[]).pty(true).start::<C>().unwrap();
    let long: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(child.ask(&long).await.unwrap(), long);
}

async fn control_characters_arrive_literally_and_close_stdin_gives_eof_on_a_pty<C: Conv>() {
    let mut child = fixture("count", &[]).pty(true).start::<C>().unwrap();
    child.send_line(&"y".repeat(10_000)).await.unwrap();
    child.send("ctl:\x03\x04\x15\x7f\x1a").await.unwrap();
    child.close_stdin().await.unwrap();
    assert_eq!(child.read_line().await.unwrap(), "10010 bytes 1 lines");
}

async fn pty_window_size_is_applied<C: Conv>() {
    let mut child = Command::new("stty")
        .arg("size")
        .pty(true)
        .pty_size(33, 111)
        .start::<C>()
        .unwrap();
    assert_eq!(child.read_line().await.unwrap(), "33 111");
}

async fn a_carriage_return_inside_a_sent_line_arrives_as_itself_on_a_pty<C: Conv>() {
    let mut child = fixture("escaped", &[]).pty(true).start::<C>().unwrap();
    assert_eq!(child.ask("a\rb").await.unwrap(), "a\\rb");
    assert_eq!(child.ask("\r").await.unwrap(), "\\r");
    assert_eq!(
        child.ask("tab\there\r\r").await.unwrap(),
        "tab\\there\\r\\r"
    );
    child.send_bytes(b"no newline yet\r").await.unwrap();
    assert_eq!(
        child.ask(" then one").await.unwrap(),
        "no newline yet\\r then one"
    );
}

/// The child may change how its terminal translates input; every byte of a
/// line still arrives as sent, and the line still ends where it ends.
async fn sent_lines_arrive_byte_for_byte_whatever_the_input_translation<C: Conv>() {
    for flags in ["igncr", "inlcr", "inlcr igncr", "-icrnl"] {
        let script = format!("stty {flags} && echo ready && exec \"$0\" escaped");
        let mut child = Command::new("sh")
            .args(["-c", &script, FIXTURE])
            .pty(true)
            .timeout(std::time::Duration::from_secs(20))
            .start::<C>()
            .unwrap();
        assert_eq!(child.read_line().await.unwrap(), "ready");
        assert_eq!(child.ask("x\ry").await.unwrap(), "x\\ry", "stty {flags}");
        assert_eq!(child.ask("plain").await.unwrap(), "plain", "stty {flags}");
    }
}

async fn set_window_size_reaches_the_child_and_needs_a_pty<C: Conv>() {
    let mut child = Command::new("sh")
        .args(["-c", "read x; stty size"])
        .pty(true)
        .start::<C>()
        .unwrap();
    child.set_window_size(40, 120).unwrap();
    assert_eq!(child.ask("go").await.unwrap(), "40 120");
    let mut piped = fixture("echo", &[]).start::<C>().unwrap();
    assert!(piped.set_window_size(40, 120).is_err());
}

both!(
    set_window_size_reaches_the_child_and_needs_a_pty,
    pty_child_sees_a_terminal_on_all_three_streams,
    pty_stdout_only_keeps_stdin_and_stderr_as_pipes,
    pty_defeats_block_buffering_of_the_fixture,
    pty_makes_python_answer_line_by_line,
    pty_echo_is_off_by_default_and_can_be_turned_on,
    long_lines_arrive_whole_in_both_directions_on_a_pty,
    control_characters_arrive_literally_and_close_stdin_gives_eof_on_a_pty,
    pty_window_size_is_applied,
    a_carriage_return_inside_a_sent_line_arrives_as_itself_on_a_pty,
    sent_lines_arrive_byte_for_byte_whatever_the_input_translation,
);
