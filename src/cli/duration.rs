//! Durations on the command line: `500ms`, `5s`, `2m`, `1h`, `1.5s`; a bare
//! number is seconds, as for coreutils `timeout`.

use std::time::Duration;

/// Parses a duration such as `250ms`, `5s`, `2m`, `1h` or `0.5s`.
///
/// The error says what was wrong and shows the accepted forms, for clap to
/// print after the option name.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}; use e.g. 500ms, 5s, 2m, 1h"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; use e.g. 500ms, 5s, 2m, 1h"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("{text:?} is out of range"))
}

/// Shows a duration the way [`parse`] reads it, for messages.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 || ms == 0 {
        format!("{ms}ms")
    } else if ms % 60_000 != 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}m", ms / 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_forms() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0ms"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse("5x").unwrap_err().contains("unknown unit"));
        assert!(parse("ms").unwrap_err().contains("not a duration"));
        assert!(parse("").unwrap_err().contains("not a duration"));
        assert!(parse("-1s").unwrap_err().contains("unknown unit"));
        assert!(parse("1.2.3s").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn shows_round_trip() {
        for text in ["500ms", "5s", "2m", "0ms", "1500ms"] {
            assert_eq!(show(parse(text).unwrap()), text);
        }
    }
}
