//! The third release of the script language and `duet test`: outcomes
//! (skip, xfail, error), retries, deadlines, several programs, paced
//! sends, auto-answers, `interact` without a terminal, `--update`, and the
//! options that pick scripts (filter, tags, fail-fast, rerun-failed,
//! partitions), against real programs; TAP read by a parser and JUnit
//! checked by xmllint with its counts.

use std::collections::BTreeSet;

use crate::util::{Dir, Run, duet};

const PASS: &str = "spawn bc -q\nsendline 2+2\nexpect-line ^4$\n";
const FAIL: &str = "spawn bc -q\nsendline 2+2\nexpect-line ^5$\n";

fn script(text: &str) -> Run {
    let dir = Dir::new("one");
    let file = dir.file("t.duet", text);
    duet(&["script", &file])
}

// ---- header ---------------------------------------------------------------

#[test]
fn require_skips_when_a_program_is_missing_and_runs_when_all_are_there() {
    let dir = Dir::new("require");
    let missing = dir.file(
        "missing.duet",
        "require bc duet-not-installed\nspawn bc -q\nexpect-eof\n",
    );
    let there = dir.file("there.duet", &format!("require bc /bin/sh\n{PASS}"));
    let run = duet(&["test", &missing, &there]);
    run.expect_code(0)
        .expect_stdout_has("skip missing: not installed: duet-not-installed\n")
        .expect_stdout_has("ok there (")
        .expect_stdout_has("1 passed, 0 failed, 1 skipped\n");
    // Without `require`, a missing program is an error, and fails the run.
    let error = dir.file("error.duet", "spawn duet-not-installed\nexpect-eof\n");
    duet(&["test", &error])
        .expect_code(1)
        .expect_stdout_has(&format!("ERROR error: {error}:1: "))
        .expect_stdout_has("0 passed, 1 failed\n");
}

#[test]
fn skip_runs_nothing() {
    let dir = Dir::new("skip");
    // The program would fail the script: it is never started.
    let file = dir.file(
        "later.duet",
        "skip the server is not written yet\nspawn sh -c 'exit 9'\nexit-status 0\n",
    );
    duet(&["test", &file]).expect_code(0).expect_stdout(
        "skip later: the server is not written yet\n0 passed, 0 failed, 1 skipped\n",
    );
    let run = duet(&["script", &file]);
    run.expect_code(0)
        .expect_stderr_has("skipped: the server is not written yet");
}

#[test]
fn xfail_counts_a_failure_as_expected_and_a_pass_as_a_failure() {
    let dir = Dir::new("xfail");
    let known = dir.file(
        "known.duet",
        &format!("xfail bc cannot count to five\n{FAIL}"),
    );
    let fixed = dir.file("fixed.duet", &format!("xfail it used to fail\n{PASS}"));
    let run = duet(&["test", &known, &fixed]);
    run.expect_code(1)
        .expect_stdout_has("xfail known: bc cannot count to five\n")
        .expect_stdout_has("FAIL fixed: ")
        .expect_stdout_has("passed, but its header says `xfail it used to fail`")
        .expect_stdout_has("1 passed, 1 failed\n");
}

#[test]
fn retries_run_a_failing_script_again_and_report_a_later_pass_as_flaky() {
    let dir = Dir::new("retries");
    // The program answers the number of times it has run: the script
    // passes on its second run.
    let counter = "spawn sh -c 'n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; echo $n'\n\
                   expect-line ^2$\n";
    dir.file("flaky.duet", &format!("retries 2\n{counter}"));
    let run = dir.duet(&["test", "flaky.duet"]);
    run.expect_code(0)
        .expect_stdout_has("ok flaky (")
        .expect_stdout_has("flaky: passed on run 2)");
    assert_eq!(dir.read("runs"), "2\n");
    // Without retries it fails; `--retries` gives them.
    std::fs::remove_file(dir.0.join("runs")).unwrap();
    dir.file("plain.duet", counter);
    dir.duet(&["test", "plain.duet"]).expect_code(1);
    std::fs::remove_file(dir.0.join("runs")).unwrap();
    dir.duet(&["test", "--retries", "1", "plain.duet"])
        .expect_code(0)
        .expect_stdout_has("flaky: passed on run 2)");
    // A script's `retries 0` wins over --retries; every run is counted.
    std::fs::remove_file(dir.0.join("runs")).unwrap();
    dir.file("never.duet", &format!("retries 0\n{counter}"));
    dir.duet(&["test", "--retries", "5", "never.duet"])
        .expect_code(1);
    assert_eq!(dir.read("runs"), "1\n");
}

#[test]
fn deadline_bounds_the_whole_script() {
    // Each step may take 30s; the script may take 2s, and the steps
    // before the one that waits in vain pass within it.
    let run = script(
        "spawn cat\ndeadline 2s\ntimeout 30s\nsendline a\nexpect-line ^a$\nexpect-line ^never$\n",
    );
    run.expect_code(1)
        .expect_stderr_has(":6: `expect-line ^never$` failed: the script's deadline (2s");
    let run = script("spawn cat\ndeadline 200ms\nsleep 30s\nexpect-eof\n");
    run.expect_code(1)
        .expect_stderr_has(":3: `sleep 30s` failed: the script's deadline (200ms");
}

/// The names of the scripts a `duet test` run reports, from its lines.
fn ran(run: &Run) -> BTreeSet<String> {
    run.stdout
        .lines()
        .filter_map(|l| {
            let (verdict, rest) = l.split_once(' ')?;
            ["ok", "FAIL", "skip", "xfail", "ERROR"]
                .contains(&verdict)
                .then(|| rest.split([' ', ':']).next().unwrap_or("").to_string())
        })
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn tag_picks_scripts_with_any_of_the_tags_and_keeps_broken_ones() {
    let dir = Dir::new("tags");
    dir.file("fast.duet", &format!("tags quick unit\n{PASS}"));
    dir.file("slow.duet", &format!("tags slow\n{PASS}"));
    dir.file("plain.duet", PASS);
    dir.file("broken.duet", "tags slow\nfrobnicate\n");
    let run = dir.duet(&["test", "--tag", "quick", "."]);
    // A script that does not parse has no tags to read: it is kept, so
    // that its error shows.
    run.expect_code(1);
    assert_eq!(ran(&run), names(&["broken", "fast"]), "{}", run.stdout);
    let run = dir.duet(&[
        "test",
        "--tag",
        "unit",
        "--tag",
        "slow",
        "fast.duet",
        "slow.duet",
        "plain.duet",
    ]);
    run.expect_code(0);
    assert_eq!(ran(&run), names(&["fast", "slow"]), "{}", run.stdout);
}

#[test]
fn filter_picks_scripts_by_name_or_path() {
    let dir = Dir::new("filter");
    dir.file("bc-add.duet", PASS);
    dir.file("bc-sub.duet", PASS);
    dir.file("dc.duet", FAIL);
    let run = dir.duet(&["test", "--filter", "^bc-", "."]);
    run.expect_code(0);
    assert_eq!(ran(&run), names(&["bc-add", "bc-sub"]), "{}", run.stdout);
    let run = dir.duet(&["test", "--filter", "sub\\.duet$", "."]);
    assert_eq!(ran(&run), names(&["bc-sub"]), "{}", run.stdout);
    dir.duet(&["test", "--filter", "(", "."])
        .expect_code(2)
        .expect_stderr_has("--filter");
}

#[test]
fn fail_fast_starts_no_script_after_the_first_failure() {
    let dir = Dir::new("failfast");
    dir.file("a.duet", PASS);
    dir.file("b.duet", FAIL);
    dir.file("c.duet", PASS);
    dir.file("d.duet", PASS);
    // One at a time, in name order: a passes, b fails, c and d never start.
    let run = dir.duet(&["test", "-j", "1", "--fail-fast", "."]);
    run.expect_code(1)
        .expect_stdout_has("1 passed, 1 failed\n")
        .expect_stderr_has("2 script(s) not run");
    assert_eq!(ran(&run), names(&["a", "b"]), "{}", run.stdout);
}

#[test]
fn rerun_failed_runs_only_what_failed_in_the_previous_run_here() {
    let dir = Dir::new("rerun");
    dir.file("a.duet", PASS);
    dir.file("b.duet", FAIL);
    dir.file("c.duet", FAIL);
    // No previous run: everything runs.
    let run = dir.duet(&["test", "--rerun-failed", "."]);
    run.expect_code(1).expect_stderr_has("no previous run here");
    assert_eq!(ran(&run), names(&["a", "b", "c"]));
    assert_eq!(dir.read(".duet/.gitignore"), "# written by duet test\n*\n");
    let run = dir.duet(&["test", "--rerun-failed", "."]);
    assert_eq!(ran(&run), names(&["b", "c"]), "{}", run.stdout);
    // b is fixed: the next rerun has only c, then nothing.
    dir.file("b.duet", PASS);
    let run = dir.duet(&["test", "--rerun-failed", "."]);
    run.expect_code(1);
    assert_eq!(ran(&run), names(&["b", "c"]));
    dir.file("c.duet", PASS);
    let run = dir.duet(&["test", "--rerun-failed", "."]);
    run.expect_code(0);
    assert_eq!(ran(&run), names(&["c"]));
    let run = dir.duet(&["test", "--rerun-failed", "."]);
    run.expect_code(0)
        .expect_stdout("0 passed, 0 failed\n")
        .expect_stderr_has("no script failed in the previous run");
}

#[test]
fn partitions_are_disjoint_and_cover_the_suite() {
    let dir = Dir::new("partition");
    let all: Vec<String> = (0..12).map(|i| format!("s{i:02}")).collect();
    for name in &all {
        dir.file(&format!("{name}.duet"), "spawn true\nexit-status 0\n");
    }
    let mut seen = BTreeSet::new();
    for k in 1..=3 {
        let run = dir.duet(&["test", "--partition", &format!("{k}/3"), "."]);
        run.expect_code(0);
        let shard = ran(&run);
        assert!(seen.is_disjoint(&shard), "shard {k} repeats: {shard:?}");
        // The same shard every time: the hash is of the path.
        let again = dir.duet(&["test", "--partition", &format!("{k}/3"), "."]);
        assert_eq!(ran(&again), shard);
        seen.extend(shard);
    }
    assert_eq!(seen, all.iter().cloned().collect::<BTreeSet<_>>());
    for bad in ["0/3", "4/3", "1/0", "x"] {
        dir.duet(&["test", "--partition", bad, "."])
            .expect_code(2)
            .expect_stderr_has("--partition");
    }
}

// ---- several programs, watches, pace, interact ------------------------------

#[test]
fn a_client_and_a_server_hand_a_port_to_each_other() {
    let sessions = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sessions");
    duet(&["script", &format!("{sessions}/client-server.duet")]).expect_code(0);
    duet(&["script", &format!("{sessions}/handover.duet")]).expect_code(0);
}

#[test]
fn use_switches_programs_and_a_failure_names_the_program() {
    let run = script(
        "spawn cat\nspawn-as upper tr a-z A-Z\nsendline one\nuse upper\nsendline two\nclose-stdin\n\
         expect-line ^TWO$\nexpect-eof\nuse main\nexpect-line ^one$\nuse upper\nexit-status 1\n",
    );
    run.expect_code(1)
        .expect_stderr_has(":12: `exit-status 1` failed: the program exited with code 0")
        .expect_stderr_has("last output (stdout of upper):\n    | TWO");
    let run = script("spawn cat\nuse other\nexpect-eof\n");
    run.expect_code(1)
        .expect_stderr_has(":2: `use other`: no program has that name (the programs are main;");
    let run = script("spawn cat\nspawn-as main cat\nexpect-eof\n");
    run.expect_code(1)
        .expect_stderr_has("`main` is the program of `spawn`");
    let run = script("spawn cat\nspawn-as x duet-not-installed\nexpect-eof\n");
    run.expect_code(127).expect_stderr_has(":2: `x`: ");
}

#[test]
fn respond_answers_a_prompt_each_time_it_comes() {
    let sessions = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sessions");
    duet(&["script", &format!("{sessions}/prompts.duet")]).expect_code(0);
    // `\x3d` is a literal `=`: the separator is the first ` => `.
    script(
        "spawn sh -c 'printf \"a => b? \"; read x; echo \"got $x\"'\n\
         respond a \\x3d> b\\?\\x20 => c \\x3d> d\\n\nexpect-line ^a => b\\? got c => d$\n",
    )
    .expect_code(0);
    script("spawn cat\nrespond no arrow\nexpect-eof\n")
        .expect_code(1)
        .expect_stderr_has("`respond` takes REGEX => TEXT");
}

/// The events of an asciicast file.
fn events(file: &str) -> Vec<(f64, String, String)> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pace_sends_one_character_at_a_time() {
    let dir = Dir::new("pace");
    let file = dir.file(
        "pace.duet",
        "spawn cat\npace 20ms\nsendline héllo\nexpect-line ^héllo$\npace 0s\nsendline at once\nexpect-line ^at once$\n",
    );
    let cast = dir.path("pace.cast");
    duet(&["script", "--cast", &cast, &file]).expect_code(0);
    let sent: Vec<String> = events(&cast)
        .into_iter()
        .filter(|e| e.1 == "i")
        .map(|e| e.2)
        .collect();
    // One write per character (é whole), then one write for all.
    assert_eq!(
        sent,
        ["h", "é", "l", "l", "o", "\n", "at once\n"],
        "{sent:?}"
    );
}

#[test]
fn interact_fails_at_once_when_stdin_is_not_a_terminal() {
    let run = script("spawn cat\ntimeout 30s\ninteract\nexpect-eof\n");
    run.expect_code(1)
        .expect_stderr_has(":3: `interact` failed: interact: duet's stdin is not a terminal");
    script("spawn cat\ninteract now\n")
        .expect_code(1)
        .expect_stderr_has("`interact` takes no argument");
}

/// `duet script` on a terminal (a pty that this test types into): the
/// `interact` step hands `sh` to the person, who answers its question;
/// when `sh` exits, the script goes on and checks its status.
#[test]
fn interact_on_a_terminal_hands_the_program_to_the_person_until_it_exits() {
    let dir = Dir::new("interact");
    let file = dir.file(
        "t.duet",
        "spawn sh -c 'echo question; read answer; echo \"got $answer\"; exit 7'\n\
         expect-line ^question$\ninteract\nexit-status 7\n",
    );
    let mut duet = duet::Command::new(crate::util::duet_bin())
        .args(["script", &file])
        .pty(true)
        .timeout(std::time::Duration::from_secs(30))
        .spawn()
        .unwrap();
    duet.send_line("forty-two").unwrap();
    duet.expect(duet::Pattern::line("^got forty-two$").unwrap())
        .unwrap();
    let status = duet.wait().unwrap();
    let rest = duet
        .communicate(b"", None)
        .map(|o| o.stdout)
        .unwrap_or_default();
    assert!(
        status.success(),
        "{status}: {}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn a_recording_shows_what_was_sent() {
    let dir = Dir::new("cast");
    let file = dir.file("bc.duet", FAIL);
    let cast = dir.path("bc.cast");
    duet(&["script", "--cast", &cast, &file]).expect_code(1);
    let shown: String = events(&cast)
        .into_iter()
        .filter(|e| e.1 == "o")
        .map(|e| e.2)
        .collect();
    let style = duet_script::cast::INPUT_STYLE;
    assert!(
        shown.contains(&format!("{style}2+2\r\n\x1b[0m4\r\n")),
        "{shown:?}"
    );
}

// ---- --update -----------------------------------------------------------------

#[test]
fn update_rewrites_only_what_failed_and_keeps_every_other_byte() {
    let dir = Dir::new("update");
    let text = "# bc as it was\r\nspawn bc -q\r\n\r\nsendline 2+2\r\n  expect-line ^4$\r\nsendline 6*7   \r\n\texpect-line ^41$\r\nsendline 10/3\r\nexpect-line ^3.0$\r\nexit-status 2\r\n";
    let file = dir.file("calc.duet", text);
    let run = duet(&["test", "--update", &file]);
    run.expect_code(0)
        .expect_stdout_has("ok calc (")
        .expect_stdout_has("updated 3 lines)")
        .expect_stdout_has(&format!(
            "updated {file}:7: `expect-line ^41$` -> `expect-line ^42$`\n"
        ))
        .expect_stdout_has(&format!(
            "updated {file}:9: `expect-line ^3.0$` -> `expect-line ^3$`\n"
        ))
        .expect_stdout_has(&format!(
            "updated {file}:10: `exit-status 2` -> `exit-status 0`\n"
        ));
    assert_eq!(
        dir.read("calc.duet"),
        text.replace("^41$", "^42$")
            .replace("^3.0$", "^3$")
            .replace("exit-status 2", "exit-status 0")
    );
    duet(&["test", &file])
        .expect_code(0)
        .expect_stdout_has("1 passed, 0 failed\n");
    // A line that came with regex syntax in it is escaped.
    let file = dir.file(
        "odd.duet",
        "spawn printf 'a.b (c) $5\\n'\nexpect-line ^x$\n",
    );
    duet(&["test", "--update", &file]).expect_code(0);
    assert_eq!(
        dir.read("odd.duet"),
        "spawn printf 'a.b (c) $5\\n'\nexpect-line ^a\\.b \\(c\\) \\$5$\n"
    );
    duet(&["test", &file]).expect_code(0);
}

#[test]
fn update_leaves_failures_it_cannot_rewrite() {
    let dir = Dir::new("update-no");
    // A timeout is not a line that came; a regex with groups is kept.
    let text = "spawn cat\ntimeout 200ms\nexpect-line ^never$\n";
    let file = dir.file("timeout.duet", text);
    duet(&["test", "--update", &file])
        .expect_code(1)
        .expect_stdout_has("FAIL timeout: ");
    assert_eq!(dir.read("timeout.duet"), text);
    let text = "spawn echo 7\nexpect-line ^(\\d)x$\n";
    let file = dir.file("groups.duet", text);
    duet(&["test", "--update", &file]).expect_code(1);
    assert_eq!(dir.read("groups.duet"), text);
}

// ---- reports ----------------------------------------------------------------

/// A TAP test point: ok or not, its name, its directive (`SKIP` or
/// `TODO`, and the reason).
type Point = (bool, String, Option<(String, String)>);

/// A TAP version 13 reader: the test points, numbered in order, as many as
/// the plan says.
fn parse_tap(text: &str) -> Vec<Point> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("TAP version 13"));
    let plan: usize = lines
        .next()
        .and_then(|p| p.strip_prefix("1.."))
        .and_then(|n| n.parse().ok())
        .expect("a plan");
    let mut points = Vec::new();
    let mut yaml = false;
    for line in lines {
        if yaml {
            yaml = line != "  ...";
            continue;
        }
        if line == "  ---" {
            yaml = true;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (ok, rest) = match line.strip_prefix("not ok ") {
            Some(rest) => (false, rest),
            None => (true, line.strip_prefix("ok ").expect("a test point")),
        };
        let (number, rest) = rest.split_once(" - ").unwrap();
        assert_eq!(number.parse::<usize>().unwrap(), points.len() + 1);
        // A directive is an unescaped `#`.
        let (name, directive) = match rest.find(" # ") {
            Some(at) => {
                let d = &rest[at + 3..];
                let (word, reason) = d.split_once(' ').unwrap_or((d, ""));
                (
                    &rest[..at],
                    Some((word.to_ascii_uppercase(), reason.to_string())),
                )
            }
            None => (rest, None),
        };
        points.push((ok, name.to_string(), directive));
    }
    assert!(!yaml, "a YAML block is not closed");
    assert_eq!(points.len(), plan);
    points
}

/// A suite of every outcome: pass, fail, skip, xfail, error.
fn mixed(dir: &Dir) -> Vec<String> {
    vec![
        dir.file("1-pass.duet", PASS),
        dir.file("2-fail.duet", FAIL),
        dir.file("3-skip.duet", &format!("skip no server here\n{PASS}")),
        dir.file("4-xfail.duet", &format!("xfail known bug\n{FAIL}")),
        dir.file("5-error.duet", "spawn bc -q\nexpect-lime ^4$\n"),
    ]
}

#[test]
fn tap_marks_skips_and_expected_failures_with_directives() {
    let dir = Dir::new("tap");
    let files = mixed(&dir);
    let mut args = vec!["test", "--tap", "-j", "2"];
    args.extend(files.iter().map(String::as_str));
    let run = duet(&args);
    run.expect_code(1);
    let points = parse_tap(&run.stdout);
    let skip = Some(("SKIP".to_string(), "no server here".to_string()));
    let todo = Some(("TODO".to_string(), "known bug".to_string()));
    assert_eq!(
        points,
        [
            (true, "1-pass".to_string(), None),
            (false, "2-fail".to_string(), None),
            (true, "3-skip".to_string(), skip),
            (false, "4-xfail".to_string(), todo),
            (false, "5-error".to_string(), None),
        ],
        "{}",
        run.stdout
    );
    run.expect_stdout_has("  severity: error\n")
        .expect_stdout_has("# 2 passed, 2 failed, 1 skipped\n");
    // And as prove, Perl's TAP harness, reads it: the TODO is no failure.
    let tap = dir.file("suite.tap", &run.stdout);
    let out = duct::cmd("prove", ["--exec", "cat", &tap])
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .expect("prove (perl) is installed by make deps");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Failed 2/5 subtests"), "{text}");
}

/// Validates `file` against tests/junit.xsd with xmllint.
fn xmllint(file: &str) {
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/junit.xsd");
    let out = duct::cmd("xmllint", ["--noout", "--schema", xsd, file])
        .stderr_capture()
        .unchecked()
        .run()
        .expect("xmllint (libxml2-utils) is installed by make deps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of `attr` on the first `<tag ` element of `xml`.
fn attr(xml: &str, tag: &str, attr: &str) -> String {
    let at = xml.find(&format!("<{tag} ")).expect(tag);
    let element = &xml[at..at + xml[at..].find('>').unwrap()];
    let start = element.find(&format!(" {attr}=\"")).expect(attr) + attr.len() + 3;
    element[start..start + element[start..].find('"').unwrap()].to_string()
}

#[test]
fn junit_validates_and_counts_pass_fail_skip_xfail_and_error() {
    let dir = Dir::new("junit");
    let files = mixed(&dir);
    let report = dir.path("report.xml");
    let mut args = vec!["test", "--junit", &report];
    args.extend(files.iter().map(String::as_str));
    duet(&args)
        .expect_code(1)
        .expect_stdout_has("2 passed, 2 failed, 1 skipped\n");
    xmllint(&report);
    let xml = std::fs::read_to_string(&report).unwrap();
    for (name, want) in [
        ("tests", "5"),
        ("failures", "1"),
        ("errors", "1"),
        ("skipped", "1"),
    ] {
        assert_eq!(attr(&xml, "testsuite", name), want, "{name}: {xml}");
    }
    assert_eq!(xml.matches("<testcase ").count(), 5, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert_eq!(xml.matches("<error ").count(), 1, "{xml}");
    assert!(
        xml.contains("<skipped message=\"no server here\"/>"),
        "{xml}"
    );
    assert!(xml.contains("<error message=\""), "{xml}");
    assert!(xml.contains("unknown keyword `expect-lime`"), "{xml}");
    assert!(
        xml.contains("<system-out>expected failure (known bug): "),
        "{xml}"
    );
    // Every testcase has its time.
    for case in xml.split("<testcase ").skip(1) {
        let time: f64 = attr(&format!("<testcase {case}"), "testcase", "time")
            .parse()
            .unwrap();
        assert!(time >= 0.0);
    }
}

#[test]
fn each_program_has_a_transcript_of_its_own() {
    let dir = Dir::new("transcripts");
    let file = dir.file(
        "two.duet",
        "spawn cat\nspawn-as other cat\nsendline to main\nexpect-line ^to main$\nuse other\nsendline to other\nexpect-line ^to other$\n",
    );
    let transcript = dir.path("t.log");
    duet(&["script", "--transcript", &transcript, &file]).expect_code(0);
    let main = dir.read("t.log");
    let other = dir.read("t.log.other");
    assert!(
        main.contains("to main") && !main.contains("to other"),
        "{main}"
    );
    assert!(
        other.contains("to other") && !other.contains("to main"),
        "{other}"
    );
}
