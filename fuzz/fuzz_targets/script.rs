//! The script parser (`duet script FILE`) and its writers.
//!
//! Any text: no panic; steps and errors come in line order, each with the
//! line it came from. Every parsed script, written back in its canonical
//! form (header first, then each setting and step), parses to the same
//! header and steps. Every byte string escaped as a TEXT unescapes to
//! itself; written as a regex literal it matches exactly itself; words
//! quoted for `spawn` split back into the same words.
#![no_main]

use duet_script::syntax;

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use syntax::{Action, EnvChange, Exit, Header, Piece, Re, Stderr, Stream, Text};

fn text(t: &Text) -> String {
    t.pieces
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => syntax::escape(b),
            Piece::Group(g) => g.to_string(),
        })
        .collect()
}

/// A duration as `parse` reads it back exactly.
fn dur(d: Duration) -> String {
    format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn header(h: &Header) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some((_, words)) = &h.spawn {
        lines.push(format!("spawn {}", syntax::quote_words(words)));
    }
    lines.push(format!("pty {}", on(h.pty)));
    if h.pty {
        lines.push(format!("pty-echo {}", on(h.pty_echo)));
        if let Some((r, c)) = h.pty_size {
            lines.push(format!("pty-size {r}x{c}"));
        }
    }
    if let Some(s) = h.stderr {
        let s = match s {
            Stderr::Separate => "separate",
            Stderr::Merge => "merge",
            Stderr::Null => "null",
        };
        lines.push(format!("stderr {s}"));
    }
    for change in &h.env {
        lines.push(match change {
            EnvChange::Set(n, v) => format!("env {n}={v}"),
            EnvChange::Unset(n) => format!("unset {n}"),
        });
    }
    if let Some(dir) = &h.cwd {
        lines.push(format!("cwd {dir}"));
    }
    lines.push(format!("strip-ansi {}", on(h.strip_ansi)));
    if !h.require.is_empty() {
        lines.push(format!("require {}", h.require.join(" ")));
    }
    if let Some(reason) = &h.skip {
        lines.push(format!("skip {reason}"));
    }
    if let Some(reason) = &h.xfail {
        lines.push(format!("xfail {reason}"));
    }
    if !h.tags.is_empty() {
        lines.push(format!("tags {}", h.tags.join(" ")));
    }
    if let Some(n) = h.retries {
        lines.push(format!("retries {n}"));
    }
    if let Some(d) = h.deadline {
        lines.push(format!("deadline {}", dur(d)));
    }
    for other in &h.others {
        lines.push(format!(
            "spawn-as {} {}",
            other.name,
            syntax::quote_words(&other.words)
        ));
    }
    lines
}

/// The step written back.
fn canonical(action: &Action) -> String {
    let re = |k: &str, r: &Re| format!("{k} {}", r.source);
    match action {
        Action::Send(t) => format!("send {}", text(t)),
        Action::SendLine(t) if t.pieces.is_empty() => "sendline".into(),
        Action::SendLine(t) => format!("sendline {}", text(t)),
        Action::SendSecret(t) => format!("send-secret {}", text(t)),
        Action::SendControl(c) => format!("send-control {c}"),
        Action::CloseStdin => "close-stdin".into(),
        Action::Expect(r) => re("expect", r),
        Action::ExpectExact(t) => format!("expect-exact {}", text(t)),
        Action::ExpectLine(r) => re("expect-line", r),
        Action::WaitLine(r, None) => re("wait-line", r),
        Action::WaitLine(r, Some(n)) => re(&format!("wait-line:{n}"), r),
        Action::Silence(d) => format!("silence {}", dur(*d)),
        Action::ExpectEof => "expect-eof".into(),
        Action::ExitStatus(exits) => {
            let words: Vec<String> = exits
                .iter()
                .map(|e| match e {
                    Exit::Code(c) => c.to_string(),
                    Exit::Signal(s) => s.name.to_string(),
                    Exit::Any => "any".into(),
                })
                .collect();
            format!("exit-status {}", words.join(" "))
        }
        Action::Signal(s) => format!("signal {}", s.name),
        Action::Sleep(d) => format!("sleep {}", dur(*d)),
        Action::FailOn(r) => re("fail-on", r),
        Action::Timeout(d) => format!("timeout {}", dur(*d)),
        Action::Stream(Stream::Stdout) => "stream stdout".into(),
        Action::Stream(Stream::Stderr) => "stream stderr".into(),
        Action::Newline(b) => format!("newline {}", syntax::escape(b)),
        Action::Use(name) => format!("use {name}"),
        Action::Pace(d) => format!("pace {}", dur(*d)),
        Action::Respond(r, t) => format!("respond {} => {}", r.source, text(t)),
        Action::Interact => "interact".into(),
    }
}

fn same(a: &Action, b: &Action) -> bool {
    match (a, b) {
        (Action::Send(x), Action::Send(y))
        | (Action::SendLine(x), Action::SendLine(y))
        | (Action::SendSecret(x), Action::SendSecret(y))
        | (Action::ExpectExact(x), Action::ExpectExact(y)) => x == y,
        (Action::Expect(x), Action::Expect(y))
        | (Action::ExpectLine(x), Action::ExpectLine(y))
        | (Action::FailOn(x), Action::FailOn(y)) => x.source == y.source && x.pieces == y.pieces,
        (Action::WaitLine(x, n), Action::WaitLine(y, m)) => x.source == y.source && n == m,
        (Action::SendControl(x), Action::SendControl(y)) => x == y,
        (Action::CloseStdin, Action::CloseStdin) | (Action::ExpectEof, Action::ExpectEof) => true,
        (Action::Silence(x), Action::Silence(y))
        | (Action::Sleep(x), Action::Sleep(y))
        | (Action::Timeout(x), Action::Timeout(y)) => x == y,
        (Action::ExitStatus(x), Action::ExitStatus(y)) => x == y,
        (Action::Signal(x), Action::Signal(y)) => x == y,
        (Action::Stream(x), Action::Stream(y)) => x == y,
        (Action::Newline(x), Action::Newline(y)) => x == y,
        (Action::Use(x), Action::Use(y)) => x == y,
        (Action::Pace(x), Action::Pace(y)) => x == y,
        (Action::Respond(x, t), Action::Respond(y, u)) => x.source == y.source && t == u,
        (Action::Interact, Action::Interact) => true,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    // Writers: escape, regex literals, spawn's quoting.
    assert_eq!(syntax::unescape(&syntax::escape(data)).as_deref(), Ok(data));
    let literal = syntax::regex_literal(data);
    let re = syntax::compile(&format!(r"\A(?:{literal})\z"))
        .unwrap_or_else(|e| panic!("{literal:?} does not compile: {e}"));
    assert!(re.is_match(data), "{literal:?}");
    let text = String::from_utf8_lossy(data);
    let words: Vec<String> = text.split(',').map(String::from).collect();
    assert_eq!(
        syntax::split_words(&syntax::quote_words(&words)).as_ref(),
        Ok(&words)
    );

    let lines: Vec<&str> = text.lines().collect();
    match syntax::parse(&text) {
        Ok(script) => {
            let mut last = 0;
            for step in &script.steps {
                assert!(
                    step.line > last && step.line <= lines.len(),
                    "line {}",
                    step.line
                );
                last = step.line;
                let raw = lines[step.line - 1];
                assert_eq!(step.source, raw.strip_suffix('\r').unwrap_or(raw));
            }
            // A line that ends in `\r` reads as a CRLF line end: such
            // scripts cannot be written back.
            let mut out = header(&script.header);
            out.extend(script.steps.iter().map(|s| canonical(&s.action)));
            if out.iter().any(|l| l.ends_with('\r') || l.contains('\n')) {
                return;
            }
            let again = out.join("\n");
            let parsed = syntax::parse(&again)
                .unwrap_or_else(|e| panic!("{again:?} does not parse: {e:?}"));
            let mut h = parsed.header.clone();
            if let (Some(a), Some(b)) = (&mut h.spawn, &script.header.spawn) {
                a.0 = b.0;
            }
            for (a, b) in h.others.iter_mut().zip(&script.header.others) {
                a.line = b.line;
            }
            assert_eq!(h, script.header, "through {again:?}");
            assert_eq!(parsed.steps.len(), script.steps.len(), "{again:?}");
            for (a, b) in script.steps.iter().zip(&parsed.steps) {
                assert!(
                    same(&a.action, &b.action),
                    "{:?} became {:?} through {again:?}",
                    a.action,
                    b.action
                );
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            let mut last = 0;
            for e in &errors {
                assert!(
                    e.line > last && e.line <= lines.len().max(1),
                    "line {}",
                    e.line
                );
                assert!(!e.message.is_empty());
                last = e.line;
            }
        }
    }
});
