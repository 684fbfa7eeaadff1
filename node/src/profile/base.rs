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

/// The longest start of `s` of at most `max` bytes that ends between two
/// characters as they show (extended grapheme clusters): an emoji
/// sequence such as 👨‍👩‍👧 or a flag is kept whole or left out, never
/// cut into a dangling joiner or tag. If even the first cluster is longer
/// (a letter under hundreds of marks), the cut is at a code point.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    use unicode_segmentation::UnicodeSegmentation;
    let whole = s
        .grapheme_indices(true)
        .map(|(at, g)| at + g.len())
        .take_while(|&end| end <= max)
        .last();
    let end = whole.unwrap_or_else(|| s.floor_char_boundary(max));
    &s[..end]
}

/// `n` things in words: "1 file", "3 files" (`one` takes an "s").
pub(crate) fn counted(n: u64, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn a_cut_keeps_an_emoji_whole_or_leaves_it_out() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let name = format!("Kim {family}");
        assert_eq!(cut(&name, 100), name);
        assert_eq!(cut(&name, name.len()), name);
        for max in 4..name.len() {
            assert_eq!(cut(&name, max), "Kim ", "{max}");
        }
        assert_eq!(cut("caf\u{E9}", 4), "caf");
        let heavy = format!("a{}", "\u{301}".repeat(10));
        assert_eq!(cut(&heavy, 5), "a\u{301}\u{301}");
        assert_eq!(cut("", 5), "");
    }
}
