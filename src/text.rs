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
