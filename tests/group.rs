//! `duet::expect_any_child`: several children waited on at once.

use std::time::Duration;

use duet::{Child, Command, Error, Pattern, Stdio};

/// A child that prints `text` once it reads a line, then copies its input.
fn on_cue(text: &str) -> Child {
    Command::new("sh")
        .args(["-c", &format!("read go; printf '%s' '{text}'; exec cat")])
        .spawn()
        .unwrap()
}

#[test]
fn the_child_whose_output_matches_first_wins_and_the_others_lose_nothing() {
    let mut children: Vec<Child> = (0..20).map(|_| on_cue("ready\n")).collect();
    // Child 13 answers; the others have unread output of their own.
    children[4].send_line("go").unwrap();
    children[4].send_line("no match here").unwrap();
    children[4].expect(Pattern::exact("ready\n")).unwrap();
    children[13].send_line("go").unwrap();
    let mut refs: Vec<&mut Child> = children.iter_mut().collect();
    let (c, i, m) = duet::expect_any_child(
        &mut refs,
        &[Pattern::exact("nope"), Pattern::exact("ready")],
    )
    .unwrap();
    assert_eq!((c, i, m.as_str()), (13, 1, "ready"));
    assert_eq!(children[4].read_line().unwrap(), "no match here");
    assert_eq!(children[13].read_line().unwrap(), "");
}

#[test]
fn eof_matches_a_child_whose_output_ended() {
    let mut a = on_cue("never");
    let mut b = Command::new("sh")
        .args(["-c", "printf 'last words'"])
        .spawn()
        .unwrap();
    let pats = [Pattern::exact("ready"), Pattern::Eof];
    let (c, i, m) = duet::expect_any_child(&mut [&mut a, &mut b], &pats).unwrap();
    assert_eq!((c, i), (1, 1));
    assert_eq!(m.before(), "last words");
}

#[test]
fn without_eof_an_ended_child_is_left_out_until_all_have_ended() {
    let mut gone = Command::new("true").spawn().unwrap();
    let mut late = on_cue("ready");
    gone.wait().unwrap();
    late.send_line("go").unwrap();
    let pats = [Pattern::exact("ready")];
    let (c, _, _) = duet::expect_any_child(&mut [&mut gone, &mut late], &pats).unwrap();
    assert_eq!(c, 1);
    late.close_stdin().unwrap();
    let err = duet::expect_any_child(&mut [&mut gone, &mut late], &pats).unwrap_err();
    assert!(err.is_eof(), "{err}");
}

#[test]
fn a_timeout_is_error_timeout_showing_what_each_child_left_unread() {
    let mut a = Command::new("sh")
        .args(["-c", "printf 'half'; exec cat"])
        .spawn()
        .unwrap();
    let mut b = on_cue("x");
    a.expect(Pattern::exact("ha")).unwrap();
    let err = duet::expect_any_child_timeout(
        &mut [&mut a, &mut b],
        &[Pattern::exact("done")],
        Duration::from_millis(100),
    )
    .unwrap_err();
    match &err {
        Error::Timeout {
            expected, partial, ..
        } => {
            assert_eq!(expected, r#"exact "done" from one of 2 children"#);
            assert_eq!(partial, "[0] lf; [1] ");
        }
        other => panic!("{other:?}"),
    }
    // Nothing was lost.
    assert_eq!(a.expect(Pattern::exact("lf")).unwrap().as_str(), "lf");
}

#[test]
fn watches_act_during_a_group_wait() {
    let mut asks = Command::new("sh")
        .args([
            "-c",
            "printf 'sure? [y/N] '; read a; echo \"answer $a\"; exec cat",
        ])
        .spawn()
        .unwrap();
    asks.respond(Pattern::exact("[y/N] "), "y\n");
    let mut quiet = on_cue("x");
    let (c, _, m) = duet::expect_any_child(
        &mut [&mut quiet, &mut asks],
        &[Pattern::regex(r"answer \w").unwrap()],
    )
    .unwrap();
    assert_eq!((c, m.as_str()), (1, "answer y"));

    let mut fails = Command::new("sh")
        .args(["-c", "echo Traceback; echo ready; exec cat"])
        .spawn()
        .unwrap();
    fails.fail_on(Pattern::exact("Traceback"));
    let err = duet::expect_any_child(&mut [&mut quiet, &mut fails], &[Pattern::exact("ready")])
        .unwrap_err();
    assert!(matches!(err, Error::FailOn { .. }), "{err}");
}

#[test]
fn a_child_flooding_stderr_does_not_block_the_wait() {
    let mut flood = Command::new("sh")
        .args(["-c", "head -c 1000000 /dev/zero >&2; echo ready"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut quiet = on_cue("x");
    let (c, _, _) =
        duet::expect_any_child(&mut [&mut quiet, &mut flood], &[Pattern::exact("ready")]).unwrap();
    assert_eq!(c, 1);
}

#[test]
fn bad_arguments_are_invalid_input() {
    let none: &mut [&mut Child] = &mut [];
    let err = duet::expect_any_child(none, &[Pattern::exact("x")]).unwrap_err();
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::InvalidInput
    );
    let mut a = on_cue("x");
    let err = duet::expect_any_child(&mut [&mut a], &[Pattern::Timeout]).unwrap_err();
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::InvalidInput
    );
    let mut no_stdout = Command::new("sh").stdout(Stdio::null()).spawn().unwrap();
    let err =
        duet::expect_any_child(&mut [&mut a, &mut no_stdout], &[Pattern::exact("x")]).unwrap_err();
    assert!(err.to_string().contains("child 1"), "{err}");
}

/// The async `duet::tokio::expect_any_child`, same rules.
#[cfg(feature = "tokio")]
mod asynchronous {
    use std::time::Duration;

    use duet::tokio::Child;
    use duet::{Command, Error, Pattern};

    fn on_cue(text: &str) -> Child {
        Command::new("sh")
            .args(["-c", &format!("read go; printf '%s' '{text}'; exec cat")])
            .spawn_async()
            .unwrap()
    }

    #[test]
    fn the_first_child_to_match_wins_and_the_others_lose_nothing() {
        crate::drive::runtime().block_on(async {
            let mut children: Vec<Child> = (0..20).map(|_| on_cue("ready\n")).collect();
            children[4].send_line("go").await.unwrap();
            children[4].send_line("unread").await.unwrap();
            children[4].expect(Pattern::exact("ready\n")).await.unwrap();
            children[13].send_line("go").await.unwrap();
            let mut refs: Vec<&mut Child> = children.iter_mut().collect();
            let (c, i, m) = duet::tokio::expect_any_child(&mut refs, &[Pattern::exact("ready")])
                .await
                .unwrap();
            assert_eq!((c, i, m.as_str()), (13, 0, "ready"));
            assert_eq!(children[4].read_line().await.unwrap(), "unread");
        });
    }

    #[test]
    fn eof_timeouts_and_ended_children_follow_the_blocking_rules() {
        crate::drive::runtime().block_on(async {
            let mut a = on_cue("never");
            let mut b = Command::new("sh")
                .args(["-c", "printf bye"])
                .spawn_async()
                .unwrap();
            let eof = [Pattern::exact("ready"), Pattern::Eof];
            let (c, i, m) = duet::tokio::expect_any_child(&mut [&mut a, &mut b], &eof)
                .await
                .unwrap();
            assert_eq!((c, i, m.before()), (1, 1, "bye"));
            // b ended: without Eof it is left out, and a times out.
            a.send_line("go").await.unwrap();
            a.expect(Pattern::exact("nev")).await.unwrap();
            let err = duet::tokio::expect_any_child_timeout(
                &mut [&mut a, &mut b],
                &[Pattern::exact("ready")],
                Duration::from_millis(100),
            )
            .await
            .unwrap_err();
            match &err {
                Error::Timeout {
                    expected, partial, ..
                } => {
                    assert_eq!(expected, r#"exact "ready" from one of 2 children"#);
                    assert_eq!(partial, "[0] er; [1] ");
                }
                other => panic!("{other:?}"),
            }
            a.close_stdin().await.unwrap();
            let err = duet::tokio::expect_any_child(&mut [&mut a, &mut b], &[Pattern::exact("x")])
                .await
                .unwrap_err();
            assert!(err.is_eof(), "{err}");
        });
    }
}
