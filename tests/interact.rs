//! `Child::interact`, driven as a person would: the fixture's `interact`
//! mode hands a child to its own terminal, a pty that the test types into
//! (or to pipes), and reports how the hand-over ended.

use std::time::Duration;

use duet::{Child, Pattern};

use crate::util::fixture;

/// The fixture handing `prog` over, on a terminal of its own, with the
/// fixture's `opts`; returns it and its terminal's settings before.
fn on_terminal(opts: &[&str], prog: &[&str]) -> (Child, String) {
    on_terminal_sized(opts, prog, (24, 80))
}

fn on_terminal_sized(opts: &[&str], prog: &[&str], size: (u16, u16)) -> (Child, String) {
    let mut args = vec!["--stty"];
    args.extend_from_slice(opts);
    args.push("--");
    args.extend_from_slice(prog);
    let mut t = fixture("interact", &args)
        .pty(true)
        .pty_size(size.0, size.1)
        .timeout(Duration::from_secs(20))
        .spawn()
        .unwrap();
    let before = t.expect(Pattern::regex(r"before: (\S+)").unwrap()).unwrap();
    let before = before.group(1).unwrap().to_string();
    (t, before)
}

/// How the hand-over ended, and the terminal's settings after it.
fn ended(t: &mut Child) -> (String, String) {
    let how = t
        .expect(Pattern::regex(r"interact: ([^\r\n]+)").unwrap())
        .unwrap();
    let after = t.expect(Pattern::regex(r"after: (\S+)").unwrap()).unwrap();
    (
        how.group(1).unwrap().to_string(),
        after.group(1).unwrap().to_string(),
    )
}

#[test]
fn typed_input_reaches_the_child_and_escape_restores_the_terminal() {
    let (mut t, before) = on_terminal(
        &[],
        &[
            "sh",
            "-c",
            "echo ready; read x; stty -g </dev/tty; exec cat",
        ],
    );
    // Shown only once the terminal is raw.
    t.expect(Pattern::exact("ready")).unwrap();
    t.send("go\n").unwrap();
    let during = t
        .expect(Pattern::regex(r"\n(\S+:\S+)\r?\n").unwrap())
        .unwrap();
    assert_ne!(during.group(1).unwrap(), before, "raw while interacting");
    t.send("hello\n").unwrap();
    t.expect(Pattern::exact("hello")).unwrap();
    t.send_control(']').unwrap();
    let (how, after) = ended(&mut t);
    assert_eq!(how, "none");
    assert_eq!(after, before);
}

#[test]
fn the_child_exiting_ends_it_with_the_status_and_restores_the_terminal() {
    let (mut t, before) = on_terminal(
        &[],
        &["sh", "-c", "echo ready; read x; echo \"got $x\"; exit 3"],
    );
    t.expect(Pattern::exact("ready")).unwrap();
    t.send("abc\n").unwrap();
    t.expect(Pattern::exact("got abc")).unwrap();
    assert_eq!(ended(&mut t), ("exit 3".to_string(), before));
}

#[test]
fn a_fail_on_watch_ends_it_with_the_error_and_restores_the_terminal() {
    let (mut t, before) = on_terminal(
        &["--fail-on", "BOOM"],
        &["sh", "-c", "echo ready; read x; echo BOOM; exec cat"],
    );
    t.expect(Pattern::exact("ready")).unwrap();
    t.send("x\n").unwrap();
    let (how, after) = ended(&mut t);
    assert!(how.starts_with("error:") && how.contains("BOOM"), "{how}");
    assert_eq!(after, before);
}

#[test]
fn a_panic_unwinding_through_it_restores_the_terminal() {
    let (mut t, before) = on_terminal(
        &["--panic-on", "BOOM"],
        &["sh", "-c", "echo ready; read x; echo BOOM; exec cat"],
    );
    t.expect(Pattern::exact("ready")).unwrap();
    t.send("x\n").unwrap();
    assert_eq!(ended(&mut t), ("panicked".to_string(), before));
}

#[test]
fn output_buffered_before_is_shown_first_and_respond_keeps_answering() {
    let (mut t, before) = on_terminal(
        &["--expect", "one", "--respond", "[y/N] "],
        &[
            "sh",
            "-c",
            "echo one; echo two; read x; printf 'sure? [y/N] '; read a; echo \"answer $a\"; exec cat",
        ],
    );
    let two = t.expect(Pattern::exact("two")).unwrap();
    assert!(!two.before().contains("one"), "{:?}", two.before());
    t.send("go\n").unwrap();
    t.expect(Pattern::exact("answer y")).unwrap();
    t.send_control(']').unwrap();
    assert_eq!(ended(&mut t), ("none".to_string(), before));
}

#[test]
fn a_child_on_a_pty_gets_the_window_size_and_follows_sigwinch() {
    let (mut t, before) = on_terminal_sized(
        &["--pty"],
        &[
            "sh",
            "-c",
            "echo ready; read x; stty size; read y; stty size; exec cat",
        ],
        (33, 97),
    );
    t.expect(Pattern::exact("ready")).unwrap();
    t.send("\n").unwrap();
    // The child's own terminal ends its lines; duet's adds no second `\r`.
    t.expect(Pattern::exact("33 97\r\n")).unwrap();
    // The fixture gets SIGWINCH before it reads the next line.
    t.set_window_size(40, 100).unwrap();
    t.send("\n").unwrap();
    t.expect(Pattern::exact("40 100\r\n")).unwrap();
    t.send_control(']').unwrap();
    assert_eq!(ended(&mut t), ("none".to_string(), before));
}

#[test]
fn on_pipes_the_end_of_input_closes_the_childs_and_waits_for_its_exit() {
    let mut t = fixture("interact", &["--", "cat"]).spawn().unwrap();
    assert_eq!(t.ask("hello").unwrap(), "hello");
    t.close_stdin().unwrap();
    assert_eq!(t.read_line().unwrap(), "interact: exit 0");
    assert!(t.wait().unwrap().success());

    let mut t = fixture("interact", &["--", "cat"]).spawn().unwrap();
    assert_eq!(t.ask("hello").unwrap(), "hello");
    // ^] ends it on pipes too; what follows it is not sent.
    t.send_bytes(b"bye\x1dnot sent\n").unwrap();
    let m = t.expect(Pattern::exact("interact: none\n")).unwrap();
    assert!(!m.before().contains("not sent"), "{:?}", m.before());
}
