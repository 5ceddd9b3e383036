//! Small helpers for showing child output in error messages.

/// How many bytes of child output an error message shows at most.
pub(crate) const PREVIEW_LIMIT: usize = 512;

/// Lossily decodes `bytes` for display, keeping the *last* `PREVIEW_LIMIT`
/// bytes (the most recent output is what explains a failure).
pub(crate) fn preview(bytes: &[u8]) -> String {
    if bytes.len() <= PREVIEW_LIMIT {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let tail = &bytes[bytes.len() - PREVIEW_LIMIT..];
    format!("…{}", String::from_utf8_lossy(tail))
}

/// A duration as a person writes it: `300ms`, `1.5s`, `2m`, `45µs`
/// (three significant digits at most).
pub(crate) fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    let (value, unit) = if secs >= 120.0 {
        (secs / 60.0, "m")
    } else if secs >= 1.0 {
        (secs, "s")
    } else if secs >= 1e-3 {
        (secs * 1e3, "ms")
    } else {
        (secs * 1e6, "µs")
    };
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{unit}")
}

/// The last `n` lines of `bytes`, lossily decoded, for stderr tails in errors.
pub(crate) fn last_lines(bytes: &[u8], n: usize) -> String {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let start = trimmed
        .iter()
        .enumerate()
        .rev()
        .filter(|&(_, &b)| b == b'\n')
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i + 1);
    preview(&trimmed[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_writes_them() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        assert_eq!(duration(ms(300)), "300ms");
        assert_eq!(duration(Duration::from_nanos(300_146_823)), "300ms");
        assert_eq!(duration(ms(1500)), "1.5s");
        assert_eq!(duration(ms(10_000)), "10s");
        assert_eq!(duration(ms(150_000)), "2.5m");
        assert_eq!(duration(Duration::from_micros(45)), "45µs");
        assert_eq!(duration(ms(12)), "12ms");
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines(b"a\nb", 5), "a\nb");
        assert_eq!(last_lines(b"", 3), "");
    }

    #[test]
    fn preview_truncates_from_the_front() {
        let long = vec![b'x'; PREVIEW_LIMIT + 10];
        assert!(preview(&long).starts_with('…'));
        assert_eq!(
            preview(&long).chars().filter(|&c| c == 'x').count(),
            PREVIEW_LIMIT
        );
    }
}
