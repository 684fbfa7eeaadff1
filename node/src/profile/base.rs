//! Small helpers every layer uses: the wall clock as strand-sync's time,
//! hex, cutting text on a character boundary, and counting in words.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock as strand-sync's [`strand_sync::Time`].
pub fn now() -> strand_sync::Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Lowercase hex, and strictly read hex: strand-sync's, so an id reads
/// the same everywhere.
pub use strand_sync::{hex, unhex};

/// The longest start of `s` of at most `max` bytes that ends on a
/// character.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `n` things in words: "1 file", "3 files" (`one` takes an "s").
pub(crate) fn counted(n: u64, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}
