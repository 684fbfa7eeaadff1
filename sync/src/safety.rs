//! Safety numbers: what two contacts compare, in person or over a channel
//! they trust, to know that each holds the other's real keys.
//!
//! Each identity has a 30-digit half: six groups of five digits, each the
//! value of 5 bytes of `BLAKE2s-256("strand/v1/safety-number" ‖ sign ‖ dh)`
//! modulo 100,000. The safety number is the two halves, smaller first, so
//! both sides compute the same 60 digits. It covers both keys of both
//! identities: a swapped signing key or X25519 key changes it. Finding a
//! key pair with a given half takes about 2^100 tries.

use crate::crypto::hash;
use crate::identity::PublicIdentity;

/// Digits in a safety number.
pub const SAFETY_DIGITS: usize = 60;

/// Prefix of a safety number's QR code payload (ASCII, then the digits).
pub const SAFETY_QR_PREFIX: &str = "STRAND-SAFETY-1:";

/// The number two contacts compare. Displays as 12 groups of 5 digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SafetyNumber {
    digits: String,
}

/// One identity's 30 digits.
fn half(id: &PublicIdentity) -> String {
    let h = hash(&[b"strand/v1/safety-number", &id.sign, &id.dh]);
    let mut out = String::with_capacity(SAFETY_DIGITS / 2);
    for chunk in h[..30].chunks(5) {
        let mut v = 0u64;
        for b in chunk {
            v = (v << 8) | u64::from(*b);
        }
        out.push_str(&format!("{:05}", v % 100_000));
    }
    out
}

/// The safety number of `a` and `b`, the same whichever is first.
pub fn safety_number(a: &PublicIdentity, b: &PublicIdentity) -> SafetyNumber {
    let (x, y) = (half(a), half(b));
    let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
    SafetyNumber { digits: lo + &hi }
}

impl SafetyNumber {
    /// The 60 digits, no spaces.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The 12 groups of 5 digits, in order.
    pub fn groups(&self) -> Vec<&str> {
        (0..SAFETY_DIGITS / 5)
            .map(|i| &self.digits[i * 5..i * 5 + 5])
            .collect()
    }

    /// What a QR code of this number holds.
    pub fn qr_payload(&self) -> String {
        format!("{SAFETY_QR_PREFIX}{}", self.digits)
    }

    /// Whether `text` (typed with any spacing, or read from a QR code) is
    /// this number.
    pub fn matches(&self, text: &str) -> bool {
        subtle::ConstantTimeEq::ct_eq(digits_of(text).as_bytes(), self.digits.as_bytes()).into()
    }

    /// The number `text` holds (typed with any spacing, or a QR code's
    /// payload), if it is one.
    pub fn read(text: &str) -> Option<SafetyNumber> {
        let digits = digits_of(text);
        (digits.len() == SAFETY_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some(SafetyNumber { digits })
    }
}

/// `text` without the QR prefix, spaces and dashes.
fn digits_of(text: &str) -> String {
    let text = text.trim();
    let text = text.strip_prefix(SAFETY_QR_PREFIX).unwrap_or(text);
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
}

impl std::fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.groups().join(" "))
    }
}

impl std::fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}
