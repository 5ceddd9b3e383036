//! `duet script`, `duet test` and `duet record`: every header line, setting
//! and step of the script language against real programs (sh, cat, bc, dc,
//! sqlite3, python3, tr, grep, ed, units, gdb/MI, stockfish), the reports
//! CI systems read (TAP, JUnit XML checked by xmllint, asciicast checked by
//! asciinema) and recordings that replay.

use std::path::Path;

use crate::util::{Dir, Run, duet, duet_bin, duet_in};

const FIXTURE: &str = env!("CARGO_BIN_EXE_duet-fixture");
/// The scripts in the repository's `tests/scripts`, one per real program.
const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts");

/// Runs `text` as a script file.
fn script(text: &str) -> Run {
    let dir = Dir::new("s");
    let file = dir.file("t.duet", text);
    duet(&["script", &file])
}

/// Runs `text` as a script file; it must pass.
fn passes(text: &str) {
    script(text).expect_code(0);
}

/// Runs `text` as a script; it must fail at `line` with `what` in the report.
fn fails_at(text: &str, line: usize, what: &str) -> Run {
    let dir = Dir::new("f");
    let file = dir.file("t.duet", text);
    let run = duet(&["script", &file]);
    run.expect_code(1)
        .expect_stderr_has(&format!("{file}:{line}: "))
        .expect_stderr_has(what);
    run
}

// ---- header ---------------------------------------------------------------

#[test]
fn spawn_splits_words_like_a_shell_without_expansion() {
    passes(
        "spawn sh -c 'printf \"[%s]\" \"$@\"; echo' x 'a b' \"c\\\"d\" $HOME ~ e\\ f ''\n\
         expect-line ^\\[a b\\]\\[c\"d\\]\\[\\$HOME\\]\\[~\\]\\[e f\\]\\[\\]$\n",
    );
}

#[test]
fn the_command_line_program_overrides_spawn() {
    let dir = Dir::new("override");
    let file = dir.file("t.duet", "spawn false\nexpect-line ^hi$\nexit-status 0\n");
    duet(&["script", &file, "--", "sh", "-c", "echo hi"]).expect_code(0);
}

#[test]
fn a_script_without_a_program_says_how_to_name_one() {
    fails_at(
        "expect-eof\n",
        1,
        "no program: name it with `spawn PROG ARGS`",
    );
}

#[test]
fn a_program_that_cannot_run_fails_at_the_spawn_line() {
    let dir = Dir::new("missing");
    let file = dir.file("t.duet", "# x\nspawn duet-no-such-program\nexpect-eof\n");
    duet(&["script", &file])
        .expect_code(127)
        .expect_stderr_has(&format!("{file}:2: cannot run `duet-no-such-program`"));
}

#[test]
fn pty_on_gives_a_terminal_with_crlf_line_ends_and_no_echo() {
    passes(
        "spawn sh -c 'test -t 0 && test -t 1 && echo tty; read l; echo \"got $l\"'\n\
         pty on\n\
         expect tty\\r\\n\n\
         sendline hello\n\
         expect-line ^got hello$\n\
         expect-eof\n",
    );
}

#[test]
fn pty_keeps_canonical_input() {
    // In canonical mode the terminal's erase character edits the line
    // before the program reads it.
    passes(
        "spawn sh -c 'stty -a | grep -q \" icanon\" && echo canonical; read l; echo \"[$l]\"'\n\
         pty on\n\
         expect-line ^canonical$\n\
         send-control ?\n\
         sendline abc\n\
         expect-line ^\\[abc\\]$\n",
    );
}

#[test]
fn pty_echo_on_echoes_what_is_sent() {
    passes("spawn cat\npty on\npty-echo on\nsendline hi\nexpect-line ^hi$\nexpect-line ^hi$\n");
    // Off by default: the only line is cat's.
    passes("spawn cat\npty on\nsendline hi\nexpect-line ^hi$\nsilence 300ms\n");
}

#[test]
fn pty_size_sets_rows_and_columns() {
    passes("spawn stty size\npty on\npty-size 30x100\nexpect-line ^30 100$\n");
}

#[test]
fn stderr_is_separate_by_default_and_can_be_merged_or_null() {
    let prog = "spawn sh -c 'echo out; echo err >&2; echo out2'\n";
    passes(&format!(
        "{prog}stream stderr\nexpect-line ^err$\nexpect-eof\nstream stdout\nexpect-line ^out$\nexpect-line ^out2$\nexpect-eof\n"
    ));
    passes(&format!(
        "{prog}stderr separate\nexpect-line ^out$\nexpect-line ^out2$\n"
    ));
    passes(&format!(
        "{prog}stderr merge\nwait-line ^err$\nwait-line ^out2$\n"
    ));
    passes(&format!(
        "{prog}stderr null\nexpect-line ^out$\nexpect-line ^out2$\nexpect-eof\n"
    ));
    // On a pty stderr is the terminal unless it is separate.
    passes(&format!(
        "{prog}pty on\nwait-line ^err$\nwait-line ^out2$\n"
    ));
    passes(&format!(
        "{prog}pty on\nstderr separate\nexpect-line ^out$\nexpect-line ^out2$\nstream stderr\nexpect-line ^err$\n"
    ));
}

#[test]
fn env_is_literal_and_unset_removes_even_what_is_not_set() {
    passes(
        "spawn sh -c 'printf \"%s|%s|%s\\n\" \"$A\" \"${HOME-none}\" \"${NOT_SET_HERE-none}\"'\n\
         env A= b $HOME \\n # x\n\
         unset HOME\n\
         unset NOT_SET_HERE\n\
         expect-line ^ b \\$HOME \\\\n # x\\|none\\|none$\n",
    );
}

#[test]
fn a_pty_gets_a_fixed_term_and_the_script_wins() {
    passes("spawn sh -c 'echo \"[$TERM]\"'\npty on\nexpect-line ^\\[dumb\\]$\n");
    passes("spawn sh -c 'echo \"[$TERM]\"'\npty on\nenv TERM=vt100\nexpect-line ^\\[vt100\\]$\n");
    passes(
        "spawn sh -c 'echo \"[${TERM-unset}]\"'\nunset TERM\npty on\nexpect-line ^\\[unset\\]$\n",
    );
}

#[test]
fn cwd_runs_the_program_in_that_directory() {
    let dir = Dir::new("cwd dir");
    let text = format!(
        "cwd {}\nspawn pwd\nexpect-line ^{}$\n",
        dir.0.display(),
        dir.0.display()
    );
    passes(&text);
}

#[test]
fn strip_ansi_removes_escape_sequences_before_matching() {
    let prog = "spawn printf '\\033[1;31mred\\033[0m \\033(Bplain\\033=\\033[?2004h\\n'\n";
    passes(&format!("{prog}strip-ansi on\nexpect-line ^red plain$\n"));
    fails_at(
        &format!("{prog}expect-line ^red plain$\n"),
        2,
        "came instead",
    );
    // grep colours its match on a terminal.
    let grep = "spawn grep --color=always b\npty on\n";
    passes(&format!(
        "{grep}strip-ansi on\nsendline abc\nexpect-line ^abc$\n"
    ));
    fails_at(
        &format!("{grep}sendline abc\nexpect-line ^abc$\n"),
        4,
        "the line \"a\\x1b[01;31m\\x1b[Kb\\x1b[m\\x1b[Kc\" came instead",
    );
}

// ---- settings -------------------------------------------------------------

#[test]
fn timeout_bounds_each_later_step() {
    fails_at(
        "spawn sh -c 'echo 1; sleep 30'\ntimeout 300ms\nexpect-line ^1$\nexpect never\n",
        4,
        "`expect never` failed: timed out after 300ms",
    );
}

#[test]
fn stream_stderr_reads_python_prompts() {
    passes(
        "spawn /usr/bin/python3 -i -q\n\
         unset PYTHONUNBUFFERED\n\
         unset PYTHONSTARTUP\n\
         stream stderr\n\
         expect >>>\\x20\n\
         sendline print(6*7)\n\
         expect >>>\\x20\n\
         stream stdout\n\
         expect-line ^42$\n\
         sendline 1/0\n\
         stream stderr\n\
         wait-line ^ZeroDivisionError: division by zero$\n\
         close-stdin\n\
         expect-eof\n\
         exit-status 0\n",
    );
}

#[test]
fn newline_changes_what_sendline_appends() {
    passes("spawn cat -A\nnewline \\r\\n\nsendline hi\nexpect-line ^hi\\^M\\$$\n");
}

// ---- sending --------------------------------------------------------------

#[test]
fn send_writes_text_as_is_and_a_bare_sendline_only_the_newline() {
    passes(
        "spawn cat -A\nsend a\\x20\nsend b\nsendline\nsendline   two  \nsendline \"2+2\"\n\
         expect-line ^a b\\$$\nexpect-line ^  two  \\$$\nexpect-line ^\"2\\+2\"\\$$\n",
    );
}

#[test]
fn escapes_send_raw_bytes() {
    passes(
        "spawn od -An -tx1\nsend \\x01\\xff\\e\\t\\r\\\\\\n\nclose-stdin\n\
         expect-line ^ 01 ff 1b 09 0d 5c 0a$\nexpect-eof\nexit-status 0\n",
    );
}

#[test]
fn send_secret_is_written_but_the_transcript_has_only_its_length() {
    let dir = Dir::new("secret");
    let transcript = dir.path("t.transcript");
    let file = dir.file(
        "t.duet",
        "spawn cat\nsend-secret hunter2\\n\nexpect-line ^hunter2$\n",
    );
    duet(&["script", &file, "--transcript", &transcript]).expect_code(0);
    let text = std::fs::read_to_string(&transcript).unwrap();
    assert!(!text.contains("> hunter2"), "{text}");
    assert!(text.contains("sent a secret (8 bytes"), "{text}");
}

#[test]
fn send_control_is_raw_and_interrupts_on_a_pty() {
    passes(
        "spawn sh -c 'trap \"echo caught; exit 7\" INT; echo ready; while :; do sleep 1; done'\n\
         pty on\nexpect-line ^ready$\nsend-control c\nexpect-line ^caught$\nexit-status 7\n",
    );
    // On a pipe it is the byte.
    passes(
        "spawn od -An -tx1\nsend-control C\nsend-control [\nsend-control ?\nclose-stdin\n\
         expect-line ^ 03 1b 7f$\n",
    );
}

#[test]
fn close_stdin_ends_input_on_a_pipe_and_on_a_pty() {
    let steps = "sendline b\nsendline a\nclose-stdin\nexpect-line ^a$\nexpect-line ^b$\nexpect-eof\nexit-status 0\n";
    passes(&format!("spawn sort\n{steps}"));
    passes(&format!("spawn sort\npty on\n{steps}"));
}

// ---- expecting ------------------------------------------------------------

#[test]
fn expect_searches_across_lines_and_a_prompt_match_leaves_the_rest_of_the_line() {
    passes(
        "spawn sh -c 'printf \"one\\ntwo\\nname> \"; read l; echo \"hello $l\"; printf \"a> b\\n\"'\n\
         expect one\\ntwo\n\
         expect name>\\x20\n\
         sendline bob\n\
         expect-line ^hello bob$\n\
         expect-exact a>\n\
         expect-line ^ b$\n",
    );
}

#[test]
fn expect_line_fails_naming_the_line_that_came() {
    let run = fails_at(
        "spawn bc -q\nsendline 2+2\nexpect-line ^5$\n",
        3,
        "`expect-line ^5$` failed: the line \"4\" came instead",
    );
    run.expect_stderr_has("expected: the next line to match `^5$`");
}

#[test]
fn line_steps_strip_every_trailing_cr() {
    passes("spawn printf 'a\\r\\r\\nb\\r\\n'\nexpect-line ^a$\nexpect-line ^b$\n");
    passes(
        "spawn tclsh\npty on\nsendline puts hello\nexpect-line ^% hello$\nsendline exit\nexpect-eof\n",
    );
}

#[test]
fn at_end_of_output_a_last_line_without_newline_counts_as_a_line() {
    passes("spawn printf 'one\\ntwo\\r'\nexpect-line ^one$\nexpect-line ^t(w)o$\nexpect-eof\n");
    passes("spawn printf 'x\\ny\\nla st'\nwait-line ^la st$\nexpect-eof\n");
    fails_at(
        "spawn printf 'one\\ntwo'\nexpect-line ^one$\nexpect-line ^nope$\n",
        3,
        "the line \"two\" came instead",
    );
}

#[test]
fn a_line_step_captures_in_group_0_what_its_regex_matched_in_the_line() {
    passes(
        "spawn cat\nsendline error: disk full\nexpect-line disk \\w+\n\
         sendline [${0}]\nexpect-line ^\\[disk full\\]$\n",
    );
}

#[test]
fn wait_line_skips_lines_up_to_its_bound() {
    passes("spawn seq 1 10\nwait-line ^5$\nexpect-line ^6$\nwait-line:3 ^10$\n");
    fails_at(
        "spawn seq 1 10\nwait-line:2 ^4$\n",
        2,
        "3 lines came without a match (at most 2 may be skipped); the last: \"3\"",
    );
    fails_at("spawn seq 1 3\nwait-line ^4$\n", 2, "stdout ended before");
}

#[test]
fn silence_proves_that_a_filter_buffers_on_a_pipe_and_not_on_a_pty() {
    // tr and grep hold their output on a pipe...
    passes(
        "spawn tr a-z A-Z\nsendline hello\nsilence 300ms\nclose-stdin\nexpect-line ^HELLO$\nexpect-eof\n",
    );
    passes(
        "spawn grep b\nsendline abc\nsilence 300ms\nclose-stdin\nexpect-line ^abc$\nexpect-eof\nexit-status 0\n",
    );
    // ...and answer at once on a pty, where silence then fails.
    passes("spawn tr a-z A-Z\npty on\nsendline hello\nexpect-line ^HELLO$\nsilence 200ms\n");
    fails_at(
        "spawn grep b\npty on\nsendline abc\nsilence 5s\n",
        4,
        "output arrived on stdout: \"abc\\r\\n\"",
    );
}

#[test]
fn silence_ignores_output_already_buffered_and_keeps_it() {
    // One write: `b` is buffered unread once `a` is read.
    passes(
        "spawn sh -c \"printf 'a\\nb\\n'; read l\"\nexpect-line ^a$\nsilence 200ms\nexpect-line ^b$\n",
    );
    passes(
        "spawn sh -c \"printf 'a\\nb\\n' >&2; read l\"\nstream stderr\nexpect-line ^a$\nsilence 200ms\nexpect-line ^b$\n",
    );
}

#[test]
fn silence_fails_at_end_of_output() {
    fails_at("spawn sh -c 'exit 0'\nsilence 5s\n", 2, "stdout ended");
}

#[test]
fn expect_eof_discards_unread_output() {
    passes("spawn seq 1 3\nexpect-line ^1$\nexpect-eof\nexit-status 0\n");
    fails_at(
        "spawn seq 1 3\nexpect-line ^1$\nexpect-eof\nexpect-line ^2$\n",
        4,
        "stdout ended before a line came",
    );
}

#[test]
fn exit_status_takes_codes_any_and_signal_names() {
    passes("spawn sh -c 'exit 3'\nexit-status 0 3\n");
    passes("spawn sh -c 'exit 3'\nexit-status any\n");
    passes("spawn sh -c 'kill -TERM $$'\nexit-status SIGTERM\n");
    passes("spawn sh -c 'kill -KILL $$'\nexit-status KILL\n");
    fails_at(
        "spawn sh -c 'exit 3'\nexit-status 0 1\n",
        2,
        "failed: the program exited with code 3",
    )
    .expect_stderr_has("expected: exit with code 0 or exit with code 1");
    fails_at(
        "spawn sh -c 'kill -TERM $$'\nexit-status 0\n",
        2,
        "the program was killed by signal 15 (SIGTERM)",
    );
}

#[test]
fn signal_sends_it_to_the_program() {
    passes(
        "spawn sh -c 'trap \"echo usr1; exit 5\" USR1; echo ready; while :; do sleep 0.1; done'\n\
         expect-line ^ready$\nsignal USR1\nexpect-line ^usr1$\nexit-status 5\n",
    );
    passes("spawn sleep 30\nsignal SIGTERM\nexit-status SIGTERM\n");
}

#[test]
fn sleep_keeps_collecting_output() {
    // The output that arrives during the sleep meets the watch then.
    fails_at(
        "spawn sh -c 'echo start; read l; echo boom'\nfail-on boom\nexpect-line ^start$\nsendline go\nsleep 5s\n",
        5,
        "`sleep 5s` failed: stdout matched `fail-on boom` (line 2): \"boom\"",
    );
}

#[test]
fn fail_on_fails_at_once_on_either_stream() {
    // Traceback arrives on stderr while the step waits on stdout with a long
    // timeout: the report is the watch's, not a timeout's.
    fails_at(
        "spawn /usr/bin/python3 -i -q\nunset PYTHONUNBUFFERED\ntimeout 60s\nfail-on Traceback\nsendline 1/0\nexpect-line ^never$\n",
        6,
        "stderr matched `fail-on Traceback` (line 4): \"Traceback\"",
    );
    // Arriving with the expected text, it still fails the expect.
    fails_at(
        "spawn sh -c 'echo \"ok Traceback\"'\nfail-on Trace\nexpect ok\n",
        3,
        "matched `fail-on Trace`",
    );
    // Output after the last step counts too.
    fails_at(
        "spawn sh -c 'echo ok; read l; echo ERROR'\nfail-on ERROR\nexpect-line ^ok$\nsendline go\n",
        4,
        "`sendline go` failed: stdout matched `fail-on ERROR` (line 2)",
    );
}

#[test]
fn captures_fill_later_texts_and_regexes_and_a_lone_dollar_is_literal() {
    passes(
        "spawn bc -q\n\
         sendline 6*7\n\
         expect-line ^(?P<n>\\d+)$\n\
         sendline ${n}+1\n\
         expect-line ^43$\n\
         sendline scale=1; 21/2\n\
         expect-line ^(\\d+)\\.(\\d)$\n\
         sendline ${1}-${2}\n\
         expect-line ^5$\n",
    );
    // In a regex the captured text is literal: `1.5` does not match `1x5`.
    passes("spawn sh -c 'echo 1.5; echo 1.5'\nexpect-line ^(.*)$\nexpect-line ^${1}$\n");
    fails_at(
        "spawn sh -c 'echo 1.5; echo 1x5'\nexpect-line ^(.*)$\nexpect-line ^${1}$\n",
        3,
        "the line \"1x5\" came instead",
    );
    passes(
        "spawn cat\nsendline display2d:false$ $5 ${ \\x24{1}\nexpect-line ^display2d:false\\$ \\$5 \\$\\{ \\$\\{1\\}$\n",
    );
    // Every expectation replaces the captures; expect-exact has only ${0}.
    passes("spawn sh -c 'echo ab; echo ab'\nexpect-exact a\nexpect-line ^${0}?b$\n");
}

// ---- the script as a whole ------------------------------------------------

#[test]
fn every_parse_error_names_its_line_and_nothing_runs() {
    let dir = Dir::new("parse");
    let marker = dir.path("marker");
    let file = dir.file(
        "t.duet",
        &format!(
            "spawn sh -c 'touch {marker}'\nsendline ok\nfrobnicate\nexpect (\nsend\nexpect-line ^${{1}}$\npty on\n"
        ),
    );
    duet(&["script", &file])
        .expect_code(1)
        .expect_stderr_has(&format!("{file}:3: unknown keyword `frobnicate`"))
        .expect_stderr_has(&format!("{file}:4: bad regex \"(\""))
        .expect_stderr_has(&format!("{file}:5: `send` needs TEXT"))
        .expect_stderr_has(&format!("{file}:6: `${{1}}` refers to a group"))
        .expect_stderr_has(&format!("{file}:7: `pty` is a header line"))
        .expect_stderr_has("(5 errors; nothing was run)");
    assert!(!Path::new(&marker).exists(), "the program must not run");
}

#[test]
fn a_script_may_have_crlf_line_ends_and_a_byte_order_mark() {
    passes("\u{feff}spawn bc -q\r\nsendline 2+2\r\nexpect-line ^4$\r\n");
}

#[test]
fn a_script_that_is_not_utf8_names_the_line() {
    let dir = Dir::new("utf8");
    let path = dir.path("t.duet");
    std::fs::write(&path, b"spawn cat\nsendline \xff\n").unwrap();
    duet(&["script", &path])
        .expect_code(1)
        .expect_stderr_has(&format!("{path}:2: this line is not UTF-8 text"));
}

#[test]
fn an_empty_script_is_an_error() {
    fails_at("", 1, "the script is empty");
    fails_at("# nothing\n\nspawn cat\n", 1, "the script has no steps");
}

#[test]
fn a_script_can_come_from_stdin() {
    duet_in(
        &["script", "-", "--", "bc", "-q"],
        b"sendline 2+2\nexpect-line ^4$\n",
    )
    .expect_code(0);
    duet_in(
        &["script", "-"],
        b"spawn bc -q\nsendline 2+2\nexpect-line ^5$\n",
    )
    .expect_code(1)
    .expect_stderr_has("<stdin>:3: `expect-line ^5$` failed");
}

#[test]
fn a_failure_names_file_line_expectation_and_last_output() {
    let dir = Dir::new("report");
    let file = dir.file(
        "t.duet",
        "sendline 1 + 1\nexpect ^2$\ntimeout 300ms\nsendline 2 + 2\nexpect ^5$\n",
    );
    duet(&["script", &file, "--", FIXTURE, "calc"])
        .expect_code(1)
        .expect_stderr_has(&format!(
            "{file}:5: `expect ^5$` failed: timed out after 300ms"
        ))
        .expect_stderr_has("expected: output matching `^5$`")
        .expect_stderr_has("    | 2\n    | 4");
}

#[test]
fn a_failure_names_the_transcript() {
    let dir = Dir::new("transcript");
    let transcript = dir.path("t.transcript");
    let file = dir.file(
        "t.duet",
        "spawn sh -c 'echo out; echo err >&2; read l'\nsendline 6\nstream stderr\nexpect-line ^err$\ntimeout 200ms\nexpect never\n",
    );
    duet(&["script", &file, "--transcript", &transcript])
        .expect_code(1)
        .expect_stderr_has(&format!("transcript: {transcript}"));
    let text = std::fs::read_to_string(&transcript).unwrap();
    assert!(text.starts_with("# duet transcript: sh -c"), "{text}");
    assert!(text.contains(r" > 6\n"), "{text}");
    assert!(text.contains(r" < out\n"), "{text}");
    assert!(text.contains(r" ! err\n"), "{text}");
}

#[test]
fn records_that_cannot_be_written_stop_the_script_before_it_runs() {
    let dir = Dir::new("full");
    let marker = dir.path("marker");
    let file = dir.file("t.duet", &format!("spawn touch {marker}\nexpect-eof\n"));
    duet(&["script", &file, "--transcript", "/dev/full"])
        .expect_code(125)
        .expect_stderr_has("cannot write the transcript /dev/full");
    duet(&["script", &file, "--cast", "/nonexistent-dir/x.cast"])
        .expect_code(125)
        .expect_stderr_has("cannot write the recording /nonexistent-dir/x.cast");
    assert!(!Path::new(&marker).exists());
}

// ---- real programs: the scripts in tests/scripts ----------------------------

fn shipped(name: &str) {
    duet(&["script", &format!("{SCRIPTS}/{name}.duet")]).expect_code(0);
}

#[test]
fn bc_session() {
    shipped("bc");
}

#[test]
fn dc_reports_errors_on_stderr() {
    shipped("dc");
}

#[test]
fn sqlite3_errors_arrive_on_stderr() {
    shipped("sqlite3");
}

#[test]
fn python3_prompts_on_stderr() {
    shipped("python3");
}

#[test]
fn ed_edits_a_buffer() {
    shipped("ed");
}

#[test]
fn units_converts_on_a_pty() {
    shipped("units");
}

#[test]
fn gdb_speaks_mi() {
    shipped("gdb-mi");
}

#[test]
fn stockfish_answers_uci() {
    shipped("stockfish");
}

#[test]
fn tr_buffers_on_a_pipe() {
    shipped("tr");
}

#[test]
fn grep_answers_line_by_line_on_a_pty() {
    shipped("grep");
}

// ---- duet test ------------------------------------------------------------

const PASSING: &str = "spawn bc -q\nsendline 2+2\nexpect-line ^4$\n";
const FAILING: &str = "spawn bc -q\nsendline 2+2\nexpect-line ^5$\n";

#[test]
fn test_prints_a_line_per_script_in_order_and_a_count() {
    let dir = Dir::new("test");
    let a = dir.file("a.duet", PASSING);
    let b = dir.file("b.duet", FAILING);
    let c = dir.file("c.duet", PASSING);
    let run = duet(&["test", "-j", "2", &a, &b, &c]);
    run.expect_code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ok a (") && lines[0].ends_with("s)"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with(&format!(
            "FAIL b: {b}:3: `expect-line ^5$` failed: the line \"4\" came instead"
        )),
        "{}",
        run.stdout
    );
    assert!(lines[2].starts_with("ok c ("), "{}", run.stdout);
    assert_eq!(
        lines.len(),
        4,
        "a line per script and the count: {}",
        run.stdout
    );
    assert_eq!(lines[3], "2 passed, 1 failed", "{}", run.stdout);
    run.expect_stderr_has(&format!("\n{b}:3: `expect-line ^5$` failed"))
        .expect_stderr_has("  last output (stdout):\n    | 4");
    duet(&["test", &a, &c])
        .expect_code(0)
        .expect_stdout_has("2 passed, 0 failed\n");
}

#[test]
fn test_runs_a_directory_of_scripts() {
    let dir = Dir::new("testdir");
    dir.file("one.duet", PASSING);
    dir.file("two.duet", PASSING);
    dir.file("notes.txt", "not a script");
    let run = duet(&["test", dir.0.to_str().unwrap()]);
    run.expect_code(0);
    assert_eq!(run.stdout.lines().count(), 3, "{}", run.stdout);
    run.expect_stdout_has("ok one (")
        .expect_stdout_has("ok two (");
}

#[test]
fn test_counts_a_script_with_parse_errors_or_no_spawn_as_an_error_that_fails() {
    let dir = Dir::new("testbad");
    let bad = dir.file("bad.duet", "spawn bc\nfrobnicate\n");
    let nospawn = dir.file("nospawn.duet", "expect-eof\n");
    let run = duet(&["test", &bad, &nospawn]);
    run.expect_code(1)
        .expect_stdout_has(&format!("ERROR bad: {bad}:2: unknown keyword"))
        .expect_stdout_has(&format!("ERROR nospawn: {nospawn}:1: no program"))
        .expect_stdout_has("0 passed, 2 failed");
}

/// Checks TAP version 13 as a harness reads it; returns (ok, not ok) names.
fn parse_tap(text: &str) -> (Vec<String>, Vec<String>) {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("TAP version 13"), "{text}");
    let plan = lines.next().expect("a plan");
    let n: usize = plan
        .strip_prefix("1..")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad plan {plan:?}"));
    let (mut ok, mut not_ok) = (Vec::new(), Vec::new());
    let mut number = 0;
    let mut in_yaml = false;
    for line in lines {
        if in_yaml {
            if line == "  ..." {
                in_yaml = false;
            } else {
                assert!(line.starts_with("  "), "YAML not indented: {line:?}");
                let body = line.trim_start();
                assert!(
                    body.starts_with("- ") || body.contains(": ") || body.ends_with(':'),
                    "not YAML: {line:?}"
                );
            }
            continue;
        }
        if line == "  ---" {
            assert!(!not_ok.is_empty(), "YAML block before any failure");
            in_yaml = true;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (passed, rest) = if let Some(rest) = line.strip_prefix("not ok ") {
            (false, rest)
        } else if let Some(rest) = line.strip_prefix("ok ") {
            (true, rest)
        } else {
            panic!("not a TAP line: {line:?}");
        };
        let (num, name) = rest.split_once(" - ").expect("number - name");
        number += 1;
        assert_eq!(num.parse::<usize>().unwrap(), number, "{text}");
        if passed {
            ok.push(name.to_string());
        } else {
            not_ok.push(name.to_string());
        }
    }
    assert!(!in_yaml, "unclosed YAML block");
    assert_eq!(number, n, "the plan says {n} tests: {text}");
    (ok, not_ok)
}

#[test]
fn tap_output_is_version_13_with_a_yaml_block_per_failure() {
    let dir = Dir::new("tap");
    let a = dir.file("a.duet", PASSING);
    let b = dir.file("b.duet", FAILING);
    let run = duet(&["test", "--tap", &a, &b]);
    run.expect_code(1);
    let (ok, not_ok) = parse_tap(&run.stdout);
    assert_eq!((ok, not_ok), (vec!["a".to_string()], vec!["b".to_string()]));
    run.expect_stdout_has(&format!(
        "  message: \"{b}:3: `expect-line ^5$` failed: the line \\\"4\\\" came instead\""
    ))
    .expect_stdout_has("  line: 3\n")
    .expect_stdout_has("  output:\n    - \"4\"\n")
    .expect_stdout_has("# 1 passed, 1 failed\n");
    let run = duet(&["script", "--tap", &a]);
    run.expect_code(0);
    assert_eq!(parse_tap(&run.stdout).0, ["a"]);
}

/// Validates `file` with xmllint against the JUnit schema in tests/.
fn xmllint(file: &str) {
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/junit.xsd");
    let out = duct::cmd("xmllint", ["--noout", "--schema", xsd, file])
        .stderr_capture()
        .unchecked()
        .run()
        .expect("xmllint (libxml2-utils) is installed by make deps");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap()
    );
}

#[test]
fn junit_xml_validates_and_holds_file_line_expectation_and_output() {
    let dir = Dir::new("junit");
    let a = dir.file("a.duet", PASSING);
    // Output with characters XML cannot hold as they are.
    let b = dir.file(
        "b.duet",
        "spawn printf '<&>\"\\033[1m\\001\\n'\nexpect-line ^nothing like it$\n",
    );
    let report = dir.path("report.xml");
    duet(&["test", "--junit", &report, &a, &b]).expect_code(1);
    xmllint(&report);
    let xml = std::fs::read_to_string(&report).unwrap();
    assert!(
        xml.contains("<testsuite name=\"duet\" tests=\"2\" failures=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("<testcase name=\"a\""), "{xml}");
    assert!(
        xml.contains(&format!(
            "<failure message=\"{b}:2: `expect-line ^nothing like it$` failed"
        )),
        "{xml}"
    );
    assert!(
        xml.contains("expected: the next line to match `^nothing like it$`"),
        "{xml}"
    );
    assert!(xml.contains("&lt;&amp;&gt;&quot;\\x1b[1m\\x01"), "{xml}");
    let single = dir.path("single.xml");
    duet(&["script", "--junit", &single, &a]).expect_code(0);
    xmllint(&single);
}

/// Checks an asciicast v2 file; returns its events.
fn parse_cast(file: &str) -> Vec<(f64, String, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2, "{text}");
    assert!(header["width"].as_u64().unwrap() > 0 && header["height"].as_u64().unwrap() > 0);
    let mut last = 0.0;
    lines
        .map(|l| {
            let (t, kind, data): (f64, String, String) = serde_json::from_str(l).unwrap();
            assert!(t >= last, "times go forward: {text}");
            assert!(kind == "o" || kind == "i", "{l}");
            last = t;
            (t, kind, data)
        })
        .collect()
}

#[test]
fn cast_files_are_asciicast_v2_that_asciinema_plays() {
    let dir = Dir::new("cast");
    let file = dir.file(
        "calc.duet",
        "spawn sh -c 'echo ready; read l; echo \"got $l\"; echo oops >&2'\nexpect-line ^ready$\nsendline x\nexpect-line ^got x$\nstream stderr\nexpect-line ^oops$\n",
    );
    let cast = dir.path("calc.cast");
    duet(&["script", "--cast", &cast, &file]).expect_code(0);
    let events = parse_cast(&cast);
    // What was sent is shown as output too, styled: the rest is the program's.
    let style = duet_script::cast::INPUT_STYLE;
    assert!(
        events
            .iter()
            .any(|e| e.1 == "o" && e.2 == format!("{style}x\r\n\x1b[0m")),
        "{events:?}"
    );
    let output: String = events
        .iter()
        .filter(|e| e.1 == "o" && !e.2.starts_with(style))
        .map(|e| e.2.as_str())
        .collect();
    // Bare `\n` from pipes is written `\r\n`; stdout keeps its order (two
    // pipes have none between them).
    assert_eq!(
        output.replace("oops\r\n", ""),
        "ready\r\ngot x\r\n",
        "{output:?}"
    );
    assert!(output.contains("oops\r\n"), "{output:?}");
    assert!(
        events.iter().any(|e| e.1 == "i" && e.2 == "x\n"),
        "{events:?}"
    );
    let played = duct::cmd("asciinema", ["play", "-s", "100", &cast])
        .stdin_null()
        .stdout_capture()
        .unchecked()
        .run()
        .expect("asciinema is installed by make deps");
    assert!(played.status.success());
    assert!(String::from_utf8_lossy(&played.stdout).contains("got x"));
    // `asciinema cat` wants a terminal: it gets one from the library.
    let mut cat = duet::Command::new("asciinema");
    cat.args(["cat", &cast]).pty(true);
    let out = cat.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("got x"),
        "{out:?}"
    );
}

#[test]
fn test_writes_a_cast_per_script_and_a_failure_names_it() {
    let dir = Dir::new("casts");
    let a = dir.file("a.duet", PASSING);
    let b = dir.file("b.duet", FAILING);
    let casts = dir.path("casts");
    let run = duet(&["test", "--cast", &format!("{casts}/"), &a, &b]);
    run.expect_code(1)
        .expect_stderr_has(&format!("recording: {casts}/b.cast"));
    for name in ["a", "b"] {
        let events = parse_cast(&format!("{casts}/{name}.cast"));
        assert!(
            events.iter().any(|e| e.1 == "o" && e.2 == "4\r\n"),
            "{events:?}"
        );
    }
}

#[test]
fn test_cast_file_holds_every_session_one_after_another() {
    let dir = Dir::new("cast1");
    let a = dir.file("a.duet", PASSING);
    let b = dir.file("b.duet", FAILING);
    let cast = dir.path("all.cast");
    duet(&["test", "--cast", &cast, &a, &b])
        .expect_code(1)
        .expect_stderr_has(&format!("recording: {cast} (session b)"));
    let events = parse_cast(&cast);
    let banners: Vec<&str> = events
        .iter()
        .filter(|e| e.2.contains("== "))
        .map(|e| e.2.trim())
        .collect();
    assert_eq!(banners, ["== a (ok) ==", "== b (FAIL) =="], "{events:?}");
    let answers = events
        .iter()
        .filter(|e| e.1 == "o" && e.2 == "4\r\n")
        .count();
    assert_eq!(answers, 2, "{events:?}");
}

// ---- duet record ----------------------------------------------------------

#[test]
fn record_then_replay_bc() {
    let dir = Dir::new("rec-bc");
    let file = dir.path("bc.duet");
    let run = duet_in(
        &["record", &file, "--", "bc", "-q"],
        b"2+2\nx=6\nx*7\n\nscale=2; 1/3\n",
    );
    run.expect_code(0).expect_stdout_has("4\n42\n.33\n");
    let text = std::fs::read_to_string(&file).unwrap();
    for line in [
        "spawn bc -q",
        "sendline 2+2",
        "sendline x=6",
        "sendline\n",
        "expect-line ^4$",
        "expect-line ^42$",
        "expect-line ^\\.33$",
        "close-stdin",
        "expect-eof",
        "exit-status 0",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    duet(&["script", &file]).expect_code(0);
}

#[test]
fn record_then_replay_python3_with_prompts_on_stderr() {
    let dir = Dir::new("rec-py");
    let file = dir.path("py.duet");
    let run = duet_in(
        &["record", &file, "--", "/usr/bin/python3", "-i", "-q"],
        b"print('a  b')\n6*7\nimport sys; print('$x', file=sys.stderr)\n",
    );
    run.expect_code(0).expect_stdout_has("a  b\n42\n");
    let text = std::fs::read_to_string(&file).unwrap();
    for line in [
        "stream stderr",
        "expect >>>\\x20",
        "expect-line ^a  b$",
        "expect-line ^42$",
        "expect-line ^\\$x$",
        "exit-status 0",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    duet(&["script", &file]).expect_code(0);
}

#[test]
fn record_on_a_pty_replays_and_a_prompt_is_an_expect() {
    let dir = Dir::new("rec-pty");
    let file = dir.path("sh.duet");
    let prog = "printf 'name? '; read n; echo \"hi $n\"; printf 'age? '; read a; echo \"$n is $a\"";
    // Typed as a person types: each line after its prompt has appeared.
    let mut rec = duet::Command::new(duet_bin());
    rec.args(["record", "--pty", &file, "--", "sh", "-c", prog])
        .timeout(std::time::Duration::from_secs(20));
    let mut rec = rec.spawn().unwrap();
    rec.expect("name? ").unwrap();
    rec.send_line("ann").unwrap();
    rec.expect("age? ").unwrap();
    rec.send_line("7").unwrap();
    rec.expect("ann is 7").unwrap();
    // The program ends by itself: duet's input stays open until then.
    let status = rec
        .wait_timeout(std::time::Duration::from_secs(20))
        .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("pty on\n"), "{text}");
    assert!(
        text.contains("\nexpect name\\?\\x20\nsendline ann\n"),
        "{text}"
    );
    assert!(
        text.contains("\nexpect-line ^hi ann$\nexpect age\\?\\x20\nsendline 7\n"),
        "{text}"
    );
    assert!(
        text.ends_with("\nexpect-line ^ann is 7$\nexpect-eof\nexit-status 0\n"),
        "{text}"
    );
    duet(&["script", &file]).expect_code(0);
}
