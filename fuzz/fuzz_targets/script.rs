//! The script parser (`duet script FILE`) and its `unescape`.
//!
//! Any text: no panic; steps and errors come in line order, each with the
//! line it came from. Every parsed step, written back in its canonical form,
//! parses to the same step; every text escaped by the rules unescapes to
//! itself.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/cli/duration.rs"]
mod duration;
#[allow(dead_code)]
#[path = "../../src/cli/script/syntax.rs"]
mod syntax;

use libfuzzer_sys::fuzz_target;
use syntax::Action;

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

/// The step written back, or `None` when the format cannot say it: a text
/// ending in `\r` (taken for a CRLF line end; there is no `\r` escape), or
/// a duration (`show` rounds to milliseconds; the duration target checks it).
fn canonical(action: &Action) -> Option<String> {
    let text = match action {
        Action::Send(t) => format!("send {}", escape(t)),
        Action::SendLine(t) => format!("sendline {}", escape(t)),
        Action::SendSecret(t) => format!("send-secret {}", escape(t)),
        Action::Expect(re) => format!("expect {}", re.as_str().strip_prefix("(?m)")?),
        Action::ExpectExact(t) => format!("expect-exact {}", escape(t)),
        Action::ExpectEof => "expect-eof".to_string(),
        Action::Timeout(_) => return None,
        Action::ExitStatus(code) => format!("exit-status {code}"),
    };
    (!text.ends_with('\r')).then_some(text)
}

fn same(a: &Action, b: &Action) -> bool {
    match (a, b) {
        (Action::Send(x), Action::Send(y))
        | (Action::SendLine(x), Action::SendLine(y))
        | (Action::SendSecret(x), Action::SendSecret(y))
        | (Action::ExpectExact(x), Action::ExpectExact(y)) => x == y,
        (Action::Expect(x), Action::Expect(y)) => x.as_str() == y.as_str(),
        (Action::ExpectEof, Action::ExpectEof) => true,
        (Action::Timeout(x), Action::Timeout(y)) => x == y,
        (Action::ExitStatus(x), Action::ExitStatus(y)) => x == y,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().collect();

    // unescape undoes escape.
    assert_eq!(syntax::unescape(&escape(&text)).as_deref(), Ok(&*text));

    match syntax::parse(&text) {
        Ok(steps) => {
            let mut last = 0;
            for step in &steps {
                assert!(
                    step.line > last && step.line <= lines.len(),
                    "line {}",
                    step.line
                );
                last = step.line;
                let raw = lines[step.line - 1];
                assert_eq!(step.source, raw.strip_suffix('\r').unwrap_or(raw));
                let Some(again) = canonical(&step.action) else {
                    continue;
                };
                let parsed = syntax::parse(&again)
                    .unwrap_or_else(|e| panic!("{again:?} does not parse: {e:?}"));
                assert_eq!(parsed.len(), 1, "{again:?}");
                assert!(
                    same(&parsed[0].action, &step.action),
                    "{:?} became {:?} through {again:?}",
                    step.action,
                    parsed[0].action
                );
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            let mut last = 0;
            for e in &errors {
                assert!(e.line > last && e.line <= lines.len(), "line {}", e.line);
                assert!(!e.message.is_empty());
                last = e.line;
            }
        }
    }
});
