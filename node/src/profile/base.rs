//! Small helpers every layer uses: the wall clock as strand-sync's time,
//! hex, and cutting text on a character boundary.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock as strand-sync's [`strand_sync::Time`].
pub fn now() -> strand_sync::Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The longest start of `s` of at most `max` bytes that ends on a
/// character.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
