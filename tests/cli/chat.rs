//! `duet chat` with real programs: greetings, `--prompt`, replies that are
//! empty, and the output that comes after the last request.

use super::{FIXTURE, duet, duet_in, duet_python};

/// A shell that greets, answers each line with `r LINE`, and says `bye` at
/// the end of its input (exit 4).
const GREETER: &str = "echo banner; while read l; do echo \"r $l\"; done; echo bye; exit 4";

#[test]
fn chat_takes_a_banner_for_a_greeting_and_prints_the_output_after_the_last_request() {
    // The case as a shell user meets it: the banner used to be taken for
    // the first reply, shifting every reply after it, and `r b` and `bye`
    // (written after the last request) were dropped.
    duet_in(&["chat", "--", "sh", "-c", GREETER], b"a\nb\n")
        .expect_code(4)
        .expect_stdout("r a\nr b\nbye\n");
}

#[test]
fn chat_settle_0_sends_at_once_so_the_banner_is_the_first_reply() {
    duet_in(
        &["chat", "--settle", "0", "--", "sh", "-c", GREETER],
        b"a\nb\n",
    )
    .expect_code(4)
    .expect_stdout("banner\nr a\nr b\nbye\n");
}

#[test]
fn chat_greeting_goes_to_the_log_with_v_never_to_stdout() {
    duet_in(&["-v", "chat", "--", "sh", "-c", GREETER], b"a\n")
        .expect_code(4)
        .expect_stdout("r a\nbye\n")
        .expect_stderr_has("greeting: \"banner\\n\"");
}

#[test]
fn chat_prompt_waits_for_the_first_prompt_however_slow_the_greeting() {
    // The prompt comes half a second after the banner: longer than the
    // default settle, which is why --prompt is the robust choice.
    let prog = "echo banner; sleep 0.5; printf '> '; \
                while read l; do echo \"r $l\"; printf '> '; done";
    duet_in(
        &["chat", "--prompt", "^> ", "--", "sh", "-c", prog],
        b"a\nb\n",
    )
    .expect_code(0)
    .expect_stdout("r a\nr b\n");
}

#[test]
fn chat_prompt_ends_replies_at_a_partial_line_with_the_fixture() {
    duet_in(
        &["chat", "--prompt", "^calc> ", "--", FIXTURE, "calc-prompt"],
        b"2 + 2\n6 * 7\n",
    )
    .expect_code(0)
    .expect_stdout("4\n42\n");
}

#[test]
fn chat_prompt_with_python3_on_a_pty_gives_empty_replies_to_statements() {
    // `x=5` prints nothing: its reply is empty. python3 answers EOF at its
    // prompt with a newline, the one line of output after the last request.
    duet_python(
        &[
            "chat",
            "--pty",
            "--prompt",
            "^>>> ",
            "--",
            "/usr/bin/python3",
            "-q",
        ],
        b"1+1\nx=5\nprint(x)\n",
    )
    .expect_code(0)
    .expect_stdout("2\n5\n\n");
}

#[test]
fn chat_prompt_with_gdb_mi_answers_every_request() {
    // gdb/MI greets with `=thread-group-added,...` and `(gdb) ` before any
    // request; the second reply used to be lost.
    duet_in(
        &[
            "chat",
            "--prompt",
            r"^\(gdb\) \r?\n",
            "--",
            "gdb",
            "-q",
            "-nx",
            "--interpreter=mi2",
        ],
        b"-data-evaluate-expression 1+1\n-data-evaluate-expression 2*3\n",
    )
    .expect_code(0)
    .expect_stdout("^done,value=\"2\"\n^done,value=\"6\"\n");
}

#[test]
fn chat_settles_past_gdbs_greeting_without_a_prompt() {
    duet_in(
        &[
            "chat",
            "--settle",
            "1s",
            "--until",
            r"^\(gdb\) $",
            "--",
            "gdb",
            "-q",
            "-nx",
            "--interpreter=mi2",
        ],
        b"-data-evaluate-expression 1+1\n-data-evaluate-expression 2*3\n",
    )
    .expect_code(0)
    .expect_stdout("^done,value=\"2\"\n(gdb) \n^done,value=\"6\"\n(gdb) \n");
}

#[test]
fn chat_quiet_gives_an_empty_reply_to_a_request_that_gets_no_output() {
    // bc's `x=5` writes nothing; it used to fail the whole chat.
    duet_in(
        &["chat", "--quiet", "300ms", "--", "bc", "-q"],
        b"x=5\nx*2\n",
    )
    .expect_code(0)
    .expect_stdout("10\n");
}

#[test]
fn chat_prompt_that_never_comes_is_a_timeout_naming_the_first_prompt() {
    duet_in(
        &[
            "chat",
            "--prompt",
            "^> ",
            "--timeout",
            "300ms",
            "--",
            "sh",
            "-c",
            "echo starting; exec cat",
        ],
        b"x\n",
    )
    .expect_code(124)
    .expect_stdout("")
    .expect_stderr_has("timed out after 300ms waiting for the program's first prompt")
    .expect_stderr_has("received \"starting\\n\"");
}

#[test]
fn chat_waits_for_prog_after_its_input_ended_within_the_timeout() {
    duet_in(
        &[
            "chat",
            "--settle",
            "0",
            "--timeout",
            "300ms",
            "--",
            FIXTURE,
            "ignore-term",
        ],
        b"",
    )
    .expect_code(124)
    .expect_stdout("ready\n")
    .expect_stderr_has("did not exit within 300ms after its input ended");
}

#[test]
fn chat_prompt_options_are_checked() {
    duet(&["chat", "--prompt", "x*", "--", "cat"])
        .expect_code(2)
        .expect_stderr_has("matches the empty text");
    duet(&["chat", "--prompt", "> ", "--settle", "1s", "--", "cat"])
        .expect_code(2)
        .expect_stderr_has("cannot be used with");
    duet(&["chat", "--prompt", "> ", "--lines", "2", "--", "cat"]).expect_code(2);
}

#[test]
fn chat_help_shows_prompt_and_settle_with_examples() {
    let help = duet(&["chat", "--help"]);
    help.expect_code(0);
    for text in [
        "--prompt <REGEX>",
        "--settle <D>",
        "duet chat --pty --prompt '^>>> ' -- python3",
        "--interpreter=mi2",
        "duet chat --settle",
    ] {
        assert!(help.stdout.contains(text), "{}", help.report(text));
    }
}
