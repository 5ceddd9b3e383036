//! The duration parser (`--timeout 500ms`) and `show`, which messages use.
//!
//! Any text: no panic. A whole number with a unit reads exactly. A
//! duration of whole milliseconds, shown, reads back as itself; one with a
//! fraction of a millisecond reads back as its whole milliseconds.
#![no_main]

use duet_script::duration;

use std::time::Duration;

use libfuzzer_sys::{arbitrary, fuzz_target};

#[derive(Debug, arbitrary::Arbitrary)]
enum Input {
    /// Any text.
    Text(String),
    /// A whole number of a unit: 0 ms, 1 s, 2 m, 3 h.
    Whole(u64, u8),
    /// A duration to show and read back.
    Shown(u64, u32),
}

fuzz_target!(|input: Input| {
    match input {
        Input::Text(text) => {
            if let Ok(d) = duration::parse(&text) {
                let shown = duration::show(d);
                let back = duration::parse(&shown)
                    .unwrap_or_else(|e| panic!("{text:?} shows as {shown:?}: {e}"));
                assert_eq!(
                    back.as_millis(),
                    d.as_millis(),
                    "{text:?} shows as {shown:?}"
                );
            }
        }
        Input::Whole(n, unit) => {
            let (unit, expected) = match unit % 4 {
                0 => ("ms", Some(Duration::from_millis(n))),
                1 => ("s", Some(Duration::from_secs(n))),
                2 => ("m", n.checked_mul(60).map(Duration::from_secs)),
                _ => ("h", n.checked_mul(3600).map(Duration::from_secs)),
            };
            let text = format!("{n}{unit}");
            match (duration::parse(&text), expected) {
                (Ok(d), Some(e)) => assert_eq!(d, e, "{text}"),
                (Err(_), None) => {}
                (got, e) => panic!("{text}: {got:?}, expected {e:?}"),
            }
        }
        Input::Shown(secs, nanos) => {
            let d = Duration::new(secs, nanos % 1_000_000_000);
            let whole_ms = Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let shown = duration::show(d);
            let back =
                duration::parse(&shown).unwrap_or_else(|e| panic!("{d:?} shows as {shown:?}: {e}"));
            if u128::from(u64::MAX) >= d.as_millis() {
                assert_eq!(back, whole_ms, "{d:?} shows as {shown:?}");
            }
        }
    }
});
