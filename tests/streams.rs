//! What arrives on each stream before a read sees it: escape sequences
//! stripped, an observer of the raw bytes, stderr read as stdout is, and
//! silence asserted without consuming anything.

use duet::{Command, Pattern};

#[test]
fn strip_ansi_removes_colours_before_reads_patterns_and_watches() {
    let mut grep = Command::new("grep")
        .args(["--color=always", "b"])
        .pty(true)
        .strip_ansi(true)
        .spawn()
        .unwrap();
    grep.fail_on(Pattern::exact("abc-fatal"));
    grep.send_line("abc").unwrap();
    assert_eq!(
        grep.expect(Pattern::line("^abc$").unwrap())
            .unwrap()
            .as_str(),
        "abc"
    );
    // The watch sees the text without the sequences grep puts around `b`.
    grep.send_line("abc-fatal").unwrap();
    assert!(matches!(grep.read_line(), Err(duet::Error::FailOn { .. })));
    assert_eq!(grep.read_line().unwrap(), "abc-fatal");
}

#[test]
fn strip_ansi_removes_a_sequence_cut_between_two_writes() {
    // Half a sequence arrives with `x`; the rest only after the child's
    // next line of input.
    let mut sh = Command::new("sh")
        .args([
            "-c",
            r"printf 'x\033[1;3'; read go; printf '1my\033(B\033=\n'",
        ])
        .strip_ansi(true)
        .spawn()
        .unwrap();
    sh.expect("x").unwrap();
    sh.send_line("go").unwrap();
    assert_eq!(sh.read_line().unwrap(), "y");
}

#[test]
fn without_strip_ansi_the_sequences_arrive() {
    let mut sh = Command::new("printf")
        .arg(r"\033[1mbold\033[0m\n")
        .spawn()
        .unwrap();
    assert_eq!(sh.read_line().unwrap(), "\x1b[1mbold\x1b[0m");
}
