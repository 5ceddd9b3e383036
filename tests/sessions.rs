//! `duet_script::Suite` in `cargo test`: the scripts of `tests/sessions`
//! as one test, and `DUET_UPDATE=1` rewriting a failing copy of them.
//!
//! The update test runs this same test binary again (`--exact
//! sessions::sessions`) with `DUET_SUITE_GLOB` naming a directory of its
//! own and `DUET_UPDATE=1` in the child's environment only: the variable
//! is read by the suite, and setting it in this process would race with
//! the other tests.

use std::path::Path;

use crate::util::unique_temp;

/// The scripts the suite runs: `tests/sessions/*.duet`, or what
/// `DUET_SUITE_GLOB` names (for the update test's child run).
fn glob() -> String {
    std::env::var("DUET_SUITE_GLOB").unwrap_or_else(|_| "tests/sessions/*.duet".into())
}

#[test]
fn sessions() {
    duet_script::Suite::new().case(glob()).run();
}

/// Runs `sessions` in a child of this test binary on the scripts of `dir`.
fn suite_in_child(dir: &Path, update: bool) -> std::process::Output {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "sessions::sessions",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("DUET_SUITE_GLOB", format!("{}/*.duet", dir.display()))
    .env_remove("DUET_UPDATE");
    if update {
        cmd.env("DUET_UPDATE", "1");
    }
    cmd.output().unwrap()
}

const STALE: &str = "# bc, as it answered once\r\nspawn bc -q\r\ntimeout 5s\r\n\r\nsendline 6*7\r\n   expect-line ^41$\r\nsendline 1+1   \r\nexpect-line ^2$\r\nexit-status 3\r\n";

#[test]
fn duet_update_rewrites_a_failing_copy_so_that_it_passes() {
    let dir = unique_temp("duet-sessions-update");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir("tests/sessions").unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let stale = dir.join("stale.duet");
    std::fs::write(&stale, STALE).unwrap();

    // Without DUET_UPDATE, the suite fails with the report of the failure.
    let out = suite_in_child(&dir, false);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("stale.duet:6: `expect-line ^41$` failed: the line \"42\" came instead"),
        "{text}"
    );
    assert!(text.contains("DUET_UPDATE=1"), "{text}");
    assert_eq!(std::fs::read_to_string(&stale).unwrap(), STALE);

    // With it, the failing lines are rewritten, every other byte kept.
    let out = suite_in_child(&dir, true);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "updated {}:6: `expect-line ^41$` -> `expect-line ^42$`",
            stale.display()
        )),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(&stale).unwrap(),
        STALE
            .replace("^41$", "^42$")
            .replace("exit-status 3", "exit-status 0")
    );

    // And then it passes as it is.
    let out = suite_in_child(&dir, false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("updated "));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_file_gives_an_outcome_or_an_error() {
    let outcome = duet_script::run_file("tests/sessions/bc.duet").unwrap();
    assert!(outcome.passed() && !outcome.skipped(), "{outcome}");
    assert!(outcome.to_string().starts_with("ok bc ("), "{outcome}");

    let skipped = duet_script::run_file("tests/sessions/optional.duet").unwrap();
    assert!(skipped.skipped() && !skipped.passed(), "{skipped}");
    assert_eq!(
        skipped.to_string(),
        "skip optional: not installed: duet-no-such-program"
    );

    let dir = unique_temp("duet-run-file");
    std::fs::create_dir_all(&dir).unwrap();
    let failing = dir.join("four.duet");
    std::fs::write(&failing, "spawn bc -q\nsendline 2+2\nexpect-line ^5$\n").unwrap();
    let outcome = duet_script::run_file(&failing).unwrap();
    assert!(!outcome.passed() && outcome.failed());
    let report = outcome.to_string();
    assert!(report.starts_with("FAIL four: "), "{report}");
    assert!(
        report.contains("  last output (stdout):\n    | 4"),
        "{report}"
    );

    let broken = dir.join("broken.duet");
    std::fs::write(&broken, "spawn bc -q\nexpect-lime ^4$\n").unwrap();
    let err = duet_script::run_file(&broken).unwrap_err();
    assert!(
        err.to_string()
            .contains(":2: unknown keyword `expect-lime`"),
        "{err}"
    );
    assert_eq!(err.outcome().status, duet_script::Status::Error);

    let missing = dir.join("missing.duet");
    std::fs::write(&missing, "spawn duet-no-such-program\nexpect-eof\n").unwrap();
    let err = duet_script::run_file(&missing).unwrap_err();
    assert_eq!(err.code(), 127, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_suite_panics_with_the_report_of_every_failure() {
    let dir = unique_temp("duet-suite-panics");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a.duet"),
        "spawn bc -q\nsendline 1+1\nexpect-line ^3$\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("b.duet"),
        "spawn bc -q\nsendline 2+2\nexpect-line ^4$\n",
    )
    .unwrap();
    std::fs::write(dir.join("c.duet"), "spawn sh -c 'exit 4'\nexit-status 0\n").unwrap();
    let glob = format!("{}/*.duet", dir.display());
    let panic = std::panic::catch_unwind(|| {
        duet_script::Suite::new()
            .case(glob.as_str())
            .update(false)
            .run();
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("2 of 3 scripts failed"), "{message}");
    assert!(
        message.contains("a.duet:3: `expect-line ^3$` failed"),
        "{message}"
    );
    assert!(
        message.contains("c.duet:2: `exit-status 0` failed: the program exited with code 4"),
        "{message}"
    );
    assert!(!message.contains("b.duet"), "{message}");

    let none = std::panic::catch_unwind(|| {
        duet_script::Suite::new()
            .case("tests/sessions/*.nothing")
            .run();
    })
    .unwrap_err();
    let message = none.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("no file matches"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_suite_takes_a_directory_for_its_scripts() {
    let outcomes = duet_script::Suite::new()
        .case("tests/sessions/")
        .outcomes()
        .unwrap();
    let names: Vec<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        ["bc", "client-server", "handover", "optional", "prompts"]
    );
    assert!(outcomes.iter().all(|o| !o.failed()), "{outcomes:?}");
    assert!(outcomes.iter().filter(|o| o.skipped()).count() == 1);
}
