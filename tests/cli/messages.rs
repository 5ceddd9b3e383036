//! Messages as a person reads them: durations as written, whole sentences,
//! a regex quoted as the user wrote it.

use super::{FIXTURE, duet, duet_in, serve_daemon, unique_path};

#[test]
fn durations_in_messages_are_written_as_people_write_them() {
    // `1.5s`, not `1500ms`; never the nanoseconds of a measured wait.
    duet_in(
        &["chat", "--timeout", "1.5s", "--", FIXTURE, "hold"],
        b"hello\n",
    )
    .expect_code(124)
    .expect_stderr_has("timed out after 1.5s waiting for a reply line to \"hello\"");
}

#[test]
fn a_prog_killed_mid_reply_is_said_in_a_sentence() {
    // It used to read "the program killed by signal 9".
    let dir = unique_path("crash");
    serve_daemon(&dir, &[FIXTURE, "crash"]);
    duet(&["ask", dir.to_str().unwrap(), "boom"])
        .expect_code(1)
        .expect_stderr_has(
            "the program was killed by signal 9 (SIGKILL) before the reply was complete",
        );
}

#[test]
fn a_timeout_counts_its_lines_in_words() {
    duet_in(
        &[
            "chat",
            "--lines",
            "3",
            "--timeout",
            "300ms",
            "--",
            "sh",
            "-c",
            "read l; echo one; exec cat",
        ],
        b"x\n",
    )
    .expect_code(124)
    .expect_stdout("one\n")
    .expect_stderr_has("waiting for 3 reply lines to \"x\" (1 line arrived); nothing more arrived");
}

#[test]
fn a_bad_prompt_regex_is_quoted_as_written() {
    let run = duet(&["chat", "--prompt", "(", "--", "cat"]);
    run.expect_code(2)
        .expect_stderr_has("--prompt: bad regex \"(\":")
        .expect_stderr_has("unclosed group");
    assert!(!run.stderr.contains("(?m)"), "{}", run.report("no (?m)"));
}
