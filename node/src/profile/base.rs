//! Small helpers every layer uses: the wall clock as strand-sync's time,
//! hex, cutting text on a character boundary, and counting in words.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock as strand-sync's [`strand_sync::Time`].
pub fn now() -> strand_sync::Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Exactly `N` bytes from hex digits of either case; anything else (a
/// sign, a space, an odd or wrong length) is `None`.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(s.as_bytes())
        .ok()?;
    bytes.try_into().ok()
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

/// `n` things in words: "1 file", "3 files" (`one` takes an "s").
pub(crate) fn counted(n: u64, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reads_back_and_only_hex_digits_are_taken() {
        let bytes = [0x0f, 0xa0, 0x00, 0xff];
        assert_eq!(hex(&bytes), "0fa000ff");
        assert_eq!(unhex::<4>("0fa000ff"), Some(bytes));
        assert_eq!(unhex::<4>("0FA000FF"), Some(bytes));
        // "+f" alone would parse as 0x0f with `u8::from_str_radix`.
        for bad in [
            "+fa000ff",
            "0fa000f",
            "0fa000ff00",
            " 0fa000f",
            "0fa0 0ff",
            "0fa000fg",
            "",
            "０fa000f",
        ] {
            assert_eq!(unhex::<4>(bad), None, "{bad:?}");
        }
    }
}
