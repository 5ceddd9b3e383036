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
    let nanos_per_unit: u128 = match unit {
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}; use e.g. 500ms, 5s, 2m, 1h"
            ));
        }
    };
    let not_a_duration = || format!("{text:?} is not a duration; use e.g. 500ms, 5s, 2m, 1h");
    let out_of_range = || format!("{text:?} is out of range");
    // Decimal arithmetic, not f64: every whole number of a unit reads
    // exactly, and so does whatever `show` writes.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(not_a_duration());
    }
    let whole: u128 = match whole {
        "" => 0,
        digits => digits.parse().map_err(|_| out_of_range())?,
    };
    // Beyond 20 digits a fraction cannot move the result by a nanosecond.
    let fraction = &fraction[..fraction.len().min(20)];
    let fraction_nanos = match fraction {
        "" => 0,
        digits => {
            let scale = 10u128.pow(digits.len() as u32);
            let value: u128 = digits.parse().map_err(|_| not_a_duration())?;
            // Rounded to the nearest nanosecond, half up.
            (value * nanos_per_unit + scale / 2) / scale
        }
    };
    let nanos = whole
        .checked_mul(nanos_per_unit)
        .and_then(|n| n.checked_add(fraction_nanos))
        .ok_or_else(out_of_range)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| out_of_range())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Shows a duration as a person writes it, in a form [`parse`] reads back:
/// `300ms`, `1.5s`, `10s`, `2m`, `1h`, `90s`. Whole milliseconds (a
/// measured wait of 300.146823ms shows as `300ms`), so it reads back as
/// exactly those.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms % 3_600_000 == 0 {
        return format!("{}h", ms / 3_600_000);
    }
    if ms % 60_000 == 0 {
        return format!("{}m", ms / 60_000);
    }
    let (secs, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        return format!("{secs}s");
    }
    let digits = format!("{frac:03}");
    format!("{secs}.{}s", digits.trim_end_matches('0'))
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
    fn reads_decimals_exactly() {
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5."), Ok(Duration::from_secs(5)));
        assert_eq!(parse("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("2.3m"), Ok(Duration::from_secs(138)));
        assert_eq!(parse("0.0000000005s"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse("0.0000000004s"), Ok(Duration::ZERO));
        assert!(parse(".").unwrap_err().contains("not a duration"));
    }

    /// Found by `fuzz/fuzz_targets/duration.rs`: through f64, large values
    /// lost nanoseconds, and the largest durations `show` writes were read
    /// as out of range.
    #[test]
    fn large_values_read_exactly() {
        assert_eq!(
            parse("18446744073709551615294ms"),
            Ok(Duration::new(u64::MAX, 294_000_000))
        );
        assert_eq!(
            parse("18446744073709551615s"),
            Ok(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse("9007199254740993ms"),
            Ok(Duration::from_millis(9_007_199_254_740_993))
        );
        assert!(
            parse("18446744073709551616s")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            parse("99999999999999999999999999999999999999999h")
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn shows_round_trip() {
        for text in [
            "500ms", "5s", "2m", "0ms", "1.5s", "1.25s", "90s", "1h", "59.999s",
        ] {
            assert_eq!(show(parse(text).unwrap()), text);
        }
    }

    #[test]
    fn shows_as_people_write_durations() {
        assert_eq!(show(Duration::from_nanos(300_146_823)), "300ms");
        assert_eq!(show(Duration::from_millis(1500)), "1.5s");
        assert_eq!(show(Duration::from_micros(999_600)), "999ms");
        assert_eq!(show(Duration::from_micros(1_000_600)), "1s");
        assert_eq!(show(Duration::from_secs(150)), "150s");
        assert_eq!(show(Duration::from_secs(7200)), "2h");
        assert_eq!(show(Duration::from_secs(u64::MAX)), "18446744073709551615s");
    }
}
