//! Child output as people read it in error messages.

/// How many bytes of child output an error message shows at most.
pub const PREVIEW_LIMIT: usize = 512;

/// Lossily decodes `bytes` for display, keeping the *last*
/// [`PREVIEW_LIMIT`] bytes (the most recent output is what explains a
/// failure).
///
/// ```
/// assert_eq!(duet_core::text::preview(b"ok\xff"), "ok\u{fffd}");
/// ```
pub fn preview(bytes: &[u8]) -> String {
    if bytes.len() <= PREVIEW_LIMIT {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let tail = &bytes[bytes.len() - PREVIEW_LIMIT..];
    format!("…{}", String::from_utf8_lossy(tail))
}
