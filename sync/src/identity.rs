//! Identities, contacts, and the keys two contacts share.

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey as DhPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::crypto::kdf;
use crate::group::{Group, GroupId, GroupKey};
use crate::invite::Invite;
use crate::limits::MAX_NAME_LEN;
use crate::token::FilterKeys;
use crate::KeyError;

/// An author's public signing key (Ed25519). It appears inside message
/// headers, which only ever travel inside Noise sessions.
pub type AuthorId = [u8; 32];

/// A user: an Ed25519 signing key, an X25519 key for Noise and key
/// agreement, and a display name.
///
/// The secret halves never leave this type except through
/// [`Identity::to_secret_bytes`], which the node encrypts before storing.
pub struct Identity {
    signing: SigningKey,
    dh: StaticSecret,
    /// `dh`'s public key, computed once: a base-point multiplication is
    /// not free, and [`Identity::public`] is asked for often.
    dh_public: [u8; 32],
    name: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public())
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The public half of an [`Identity`]: what an invite carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicIdentity {
    /// Ed25519 verifying key: signs messages.
    pub sign: AuthorId,
    /// X25519 public key: the Noise static key and the key-agreement key.
    pub dh: [u8; 32],
}

impl Identity {
    /// Creates a new identity from the caller's RNG.
    pub fn generate(name: &str, rng: &mut (impl RngCore + CryptoRng)) -> Result<Self, KeyError> {
        check_name(name)?;
        let mut secret = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(&mut secret[..]);
        Self::from_secret_bytes(&secret, name)
    }

    /// Rebuilds an identity from [`Identity::to_secret_bytes`].
    pub fn from_secret_bytes(secret: &[u8; 64], name: &str) -> Result<Self, KeyError> {
        check_stored_name(name)?;
        let mut sign = [0u8; 32];
        sign.copy_from_slice(&secret[..32]);
        let mut dh_bytes = [0u8; 32];
        dh_bytes.copy_from_slice(&secret[32..]);
        let dh = StaticSecret::from(dh_bytes);
        let identity = Identity {
            signing: SigningKey::from_bytes(&sign),
            dh_public: DhPublic::from(&dh).to_bytes(),
            dh,
            name: name.to_owned(),
        };
        zeroize::Zeroize::zeroize(&mut sign);
        zeroize::Zeroize::zeroize(&mut dh_bytes);
        Ok(identity)
    }

    /// The 64 secret bytes (signing seed, then X25519 scalar). Encrypt them
    /// before they touch a disk.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(self.signing.as_bytes());
        out[32..].copy_from_slice(self.dh.as_bytes());
        out
    }

    /// The public keys.
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity {
            sign: self.signing.verifying_key().to_bytes(),
            dh: self.dh_public,
        }
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This identity's invite, to be shown as text or QR code, signed.
    pub fn invite(&self) -> Invite {
        Invite::signed(self, None)
    }

    /// This identity's invite with a reach section: the relay seed, and as
    /// many of `reach`'s relays as fit in
    /// [`MAX_INVITE_REACH_LEN`](crate::MAX_INVITE_REACH_LEN) (the seed
    /// alone still lets the new contact find the inviter at a relay they
    /// both use later). Offers are left out.
    pub fn invite_with_reach(&self, reach: &crate::Reach) -> Invite {
        Invite::signed(self, Some(reach))
    }

    /// The keys this identity shares with `their`: derived with one X25519
    /// operation and no round trip. Both sides compute the same [`Contact`]
    /// (from their own point of view).
    pub fn contact(&self, their: &PublicIdentity) -> Result<Contact, KeyError> {
        let mine = self.public();
        let shared = self.agree(&mine, their)?;
        Ok(Contact::derive(&mine, their, &shared))
    }

    /// Both sides' contact records at once, `(a's record of b, b's record
    /// of a)`: the same as `a.contact(&b.public())` and
    /// `b.contact(&a.public())`, with the key agreement done once. For a
    /// caller holding both identities: the simulator, which pairs up
    /// thousands of devices.
    pub fn contact_pair(a: &Identity, b: &Identity) -> Result<(Contact, Contact), KeyError> {
        let (pa, pb) = (a.public(), b.public());
        let shared = a.agree(&pa, &pb)?;
        Ok((
            Contact::derive(&pa, &pb, &shared),
            Contact::derive(&pb, &pa, &shared),
        ))
    }

    /// The X25519 secret shared with `their`, refused for our own keys and
    /// for low-order points.
    fn agree(
        &self,
        mine: &PublicIdentity,
        their: &PublicIdentity,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        if mine.sign == their.sign || mine.dh == their.dh {
            return Err(KeyError::OwnKey);
        }
        let shared = Zeroizing::new(self.dh.diffie_hellman(&DhPublic::from(their.dh)).to_bytes());
        if shared.iter().all(|b| *b == 0) {
            // A low-order point: the "shared" secret would be public.
            return Err(KeyError::WeakKey);
        }
        Ok(shared)
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub(crate) fn dh_secret(&self) -> &StaticSecret {
        &self.dh
    }
}

/// A contact as the protocol sees it: their public keys, the secrets we
/// share with them, and the groups we sync with them. The node adds names,
/// history and the rest.
#[derive(Clone)]
pub struct Contact {
    /// Their public keys.
    pub public: PublicIdentity,
    pub(crate) token_key: Zeroizing<[u8; 32]>,
    /// The keys of the entries this device puts in its beacons and hints
    /// for this contact (built under our signing key, PROTOCOL.md §9).
    pub(crate) announce: FilterKeys,
    /// The keys of the entries this contact puts in its beacons and hints
    /// for us (built under their signing key): what we recognise them by.
    /// Not `announce`, so a device never recognises its own beacon.
    pub(crate) recognise: FilterKeys,
    /// X25519 of the two static keys, the pair's secret (PROTOCOL.md §3):
    /// also Noise KK's `ss` (§5), which a handshake then does not compute
    /// again.
    pub(crate) shared: Zeroizing<[u8; 32]>,
    /// Groups reconciled with this contact. The first is always the 1:1
    /// conversation, derived from the pair's keys; the node appends private
    /// groups both are members of.
    pub groups: Vec<Group>,
    /// The pair's carrying pool (PROTOCOL.md §17): where the two hand each
    /// other sealed envelopes and acknowledgements. Derived like the 1:1
    /// group; synced only when the caller adds it to `groups`.
    pub pool: Group,
}

impl std::fmt::Debug for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contact")
            .field("public", &self.public)
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl Contact {
    /// `mine`'s record of `their`, from the pair's X25519 secret: the same
    /// on both sides but for `public` and the filter keys, since every key
    /// comes from the pair in a fixed order; the filter keys are swapped
    /// (one side's `announce` is the other's `recognise`).
    fn derive(mine: &PublicIdentity, their: &PublicIdentity, shared: &[u8; 32]) -> Contact {
        let (lo, hi) = if mine.sign < their.sign {
            (*mine, *their)
        } else {
            (*their, *mine)
        };
        let root = Zeroizing::new(kdf(
            shared,
            "strand/v1/pair",
            &[&lo.sign, &lo.dh, &hi.sign, &hi.dh],
        ));
        let group = Group::new(
            GroupId(kdf(&root, "strand/v1/pair/group-id", &[])),
            GroupKey::from_bytes(kdf(&root, "strand/v1/pair/group-key", &[])),
            vec![lo.sign, hi.sign],
        );
        let pool = Group::new(
            GroupId(kdf(&root, "strand/v1/pair/pool-id", &[])),
            GroupKey::from_bytes(kdf(&root, "strand/v1/pair/pool-key", &[])),
            vec![lo.sign, hi.sign],
        );
        Contact {
            public: *their,
            token_key: Zeroizing::new(kdf(&root, "strand/v1/pair/token", &[])),
            announce: FilterKeys::new(&root, &mine.sign),
            recognise: FilterKeys::new(&root, &their.sign),
            shared: Zeroizing::new(*shared),
            groups: vec![group],
            pool,
        }
    }

    /// The 1:1 conversation with this contact.
    pub fn direct_group(&self) -> &Group {
        &self.groups[0]
    }
}

/// Checks a display name: 1 to 64 bytes of UTF-8, no leading or trailing
/// space (nor the braille blank U+2800), no control characters, and nothing invisible or
/// direction-changing, so that two names that differ also look different
/// (names that merely look alike are for the app to flag).
pub fn check_name(name: &str) -> Result<(), KeyError> {
    check_stored_name(name)?;
    // A blank that is not a space to Unicode, shown as one.
    if name.starts_with(BRAILLE_BLANK) || name.ends_with(BRAILLE_BLANK) {
        return Err(KeyError::Name(
            "starts or ends with a braille blank (U+2800), shown as a space",
        ));
    }
    if mark_invisible(name).any(|(_, invisible)| invisible) {
        return Err(KeyError::Name(
            "contains invisible or direction-changing characters (bidi controls, zero-width characters, fillers, variation selectors that select nothing)",
        ));
    }
    Ok(())
}

/// The rules for names written before invisible characters were refused:
/// a profile or contact stored then still opens.
pub(crate) fn check_stored_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty() || name.trim() != name {
        return Err(KeyError::Name(
            "must be non-empty, without leading or trailing spaces",
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(KeyError::Name("longer than 64 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(KeyError::Name("contains control characters"));
    }
    Ok(())
}

/// Each character of `text` with whether it shows as nothing or changes
/// the direction of what follows where it stands, so that two different
/// names could look the same: Unicode format characters (general category
/// Cf: bidi controls and marks, zero-width space and joiners, the soft
/// hyphen, invisible operators, tags), line and paragraph separators, the
/// combining grapheme joiner, Khmer inherent vowels and Hangul fillers.
///
/// Two of them are part of what an emoji looks like, and are not marked
/// there: a zero-width joiner between two emoji (👨‍👩‍👧, 🏳️‍🌈, 👩🏽‍💻: the
/// emoji before it may carry a skin tone or U+FE0F), and the tags of the
/// three subdivision flags (🏴 + "gbeng", "gbsct" or "gbwls" + cancel
/// tag). Anywhere else they could hide text or tell two names apart
/// invisibly. Variation selectors are marked where they select nothing
/// (an emoji's U+FE0F is not; see `selects`). Names are
/// refused with a marked character in them ([`check_name`]), and apps
/// show marked characters visibly in anything someone else wrote.
pub fn mark_invisible(text: &str) -> impl Iterator<Item = (char, bool)> + '_ {
    // Whether the last character that is not a skin tone, U+FE0F or a
    // flag's tag was an emoji that a joiner may follow.
    let mut after_emoji = false;
    // The byte offset up to which tags belong to a subdivision flag.
    let mut flag_tags_end = 0;
    // The character just before, for a variation selector.
    let mut before: Option<char> = None;
    text.char_indices().map(move |(at, c)| {
        let next = at + c.len_utf8();
        let invisible = match c {
            ZWJ => !(after_emoji && text[next..].chars().next().is_some_and(joinable)),
            '\u{E0020}'..='\u{E007F}' => at >= flag_tags_end,
            '\u{FE00}'..='\u{FE0F}' | '\u{180B}'..='\u{180D}' | '\u{180F}' => {
                !before.is_some_and(|b| selects(b, c, text[next..].chars().next()))
            }
            _ => is_invisible(c),
        };
        before = Some(c);
        if c == BLACK_FLAG {
            flag_tags_end = subdivision_tags(&text[next..]).map_or(0, |len| next + len);
        }
        let keeps = matches!(c, '\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}')
            || (matches!(c, '\u{E0020}'..='\u{E007F}') && !invisible);
        if !keeps {
            after_emoji = joinable(c);
        }
        (c, invisible)
    })
}

const ZWJ: char = '\u{200D}';
const BRAILLE_BLANK: char = '\u{2800}';
const BLACK_FLAG: char = '\u{1F3F4}';
/// The subdivisions with a recommended flag (Unicode's RGI emoji set).
const FLAG_SUBDIVISIONS: [&str; 3] = ["gbeng", "gbsct", "gbwls"];

/// Whether `c` is an emoji a zero-width joiner may stand next to: not
/// ASCII (digits, `#` and `*` are emoji only in keycaps).
fn joinable(c: char) -> bool {
    use unicode_properties::UnicodeEmoji;
    !c.is_ascii() && c.is_emoji_char()
}

/// The length in bytes of the tags at the start of `rest` (what follows a
/// black flag) if they spell a subdivision with a recommended flag and
/// end with the cancel tag.
fn subdivision_tags(rest: &str) -> Option<usize> {
    let mut spelled = String::new();
    for (at, c) in rest.char_indices() {
        match c {
            '\u{E007F}' => {
                return FLAG_SUBDIVISIONS
                    .contains(&spelled.as_str())
                    .then_some(at + c.len_utf8())
            }
            '\u{E0020}'..='\u{E007E}' if spelled.len() < 5 => {
                spelled.push(char::from((u32::from(c) - 0xE0000) as u8));
            }
            _ => return None,
        }
    }
    None
}

/// Whether the variation selector `selector`, between `base` and `after`,
/// can change how `base` looks (Unicode's emoji and standardized variation
/// sequences, as far as they are used in text):
/// - U+FE0E and U+FE0F after an emoji (text or emoji style); after a
///   digit, `#` or `*` (`Emoji=Yes` too) only in a keycap, before U+20E3;
/// - U+FE00 to U+FE02 after the digit zero, the quotation marks U+2018 to
///   U+201D, mathematical operators (U+2200–22FF, U+27C0–27EF,
///   U+2980–2AFF), Myanmar (U+1000–109F, U+A9E0–A9FF, U+AA60–AA7F),
///   Phags-pa (U+A840–A87F), Manichaean (U+10AC0–10AFF), CJK punctuation
///   (U+3001, U+3002, U+FF01, U+FF0C, U+FF0E, U+FF1A, U+FF1B, U+FF1F) and
///   CJK unified ideographs (U+3400–4DBF, U+4E00–9FFF, U+20000–323AF);
/// - U+FE00 to U+FE06 after Egyptian hieroglyphs (U+13000–1342F,
///   U+13460–143FF);
/// - Mongolian free variation selectors after a Mongolian letter
///   (U+1820–18AA).
///
/// Anywhere else (after a Latin letter, a space, another selector) a
/// selector shows as nothing, so `Bob` and `Bob` + U+FE00 would look the
/// same.
fn selects(base: char, selector: char, after: Option<char>) -> bool {
    use unicode_properties::UnicodeEmoji;
    let b = base as u32;
    let egyptian = matches!(b, 0x13000..=0x1342F | 0x13460..=0x143FF);
    match selector {
        '\u{FE0E}' | '\u{FE0F}' => {
            base.is_emoji_char() && (!base.is_ascii() || after == Some('\u{20E3}'))
        }
        '\u{FE00}'..='\u{FE02}' => {
            egyptian
                || matches!(
                    b,
                    0x30 | 0x1000..=0x109F
                        | 0x2018..=0x201D
                        | 0x2200..=0x22FF
                        | 0x27C0..=0x27EF
                        | 0x2980..=0x2AFF
                        | 0x3001..=0x3002
                        | 0x3400..=0x4DBF
                        | 0x4E00..=0x9FFF
                        | 0xA840..=0xA87F
                        | 0xA9E0..=0xA9FF
                        | 0xAA60..=0xAA7F
                        | 0xFF01
                        | 0xFF0C
                        | 0xFF0E
                        | 0xFF1A..=0xFF1B
                        | 0xFF1F
                        | 0x10AC0..=0x10AFF
                        | 0x20000..=0x323AF
                )
        }
        '\u{FE03}'..='\u{FE06}' => egyptian,
        '\u{FE07}'..='\u{FE0D}' => false,
        _ => matches!(b, 0x1820..=0x18AA),
    }
}

/// Whether `c` is invisible or direction-changing wherever it stands;
/// [`mark_invisible`] adds where a joiner or a tag is part of an emoji.
fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Checks that `sign` is a usable Ed25519 public key.
pub(crate) fn verifying_key(sign: &AuthorId) -> Option<VerifyingKey> {
    let key = VerifyingKey::from_bytes(sign).ok()?;
    (!key.is_weak()).then_some(key)
}

/// Checks that `dh` is an X25519 public key a secret can be agreed with:
/// not a low-order point, whose "shared" secret is all zeros whatever
/// the other key (any clamped scalar is a multiple of its order).
pub(crate) fn usable_dh(dh: &[u8; 32]) -> bool {
    StaticSecret::from([0x5a; 32])
        .diffie_hellman(&DhPublic::from(*dh))
        .was_contributory()
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn same_keys(x: &FilterKeys, y: &FilterKeys) -> bool {
        x.beacon.derive(&[b"probe"]) == y.beacon.derive(&[b"probe"])
            && x.advert.derive(&[b"probe"]) == y.advert.derive(&[b"probe"])
    }

    fn same(x: &Contact, y: &Contact) -> bool {
        x.public == y.public
            && *x.token_key == *y.token_key
            && same_keys(&x.announce, &y.announce)
            && same_keys(&x.recognise, &y.recognise)
            && x.groups.len() == y.groups.len()
            && x.groups.iter().zip(&y.groups).all(|(g, h)| {
                g.id == h.id
                    && g.key().as_bytes() == h.key().as_bytes()
                    && g.members() == h.members()
            })
            && x.pool.id == y.pool.id
            && x.pool.key().as_bytes() == y.pool.key().as_bytes()
    }

    #[test]
    fn a_joiner_or_a_tag_is_allowed_inside_an_emoji_only() {
        let wales = "Cymru \u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}";
        for name in [
            "Family \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
            "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308} club",
            "Ana \u{1F469}\u{1F3FD}\u{200D}\u{1F4BB}",
            "\u{2764}\u{FE0F}\u{200D}\u{1F525}",
            wales,
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}\u{200D}\u{1F525}",
            "caf\u{E9} \u{1F642}\u{FE0F}",
            "\u{2764}\u{FE0E} and 1\u{FE0F}\u{20E3} \u{300C}\u{3002}\u{FE01}",
            "\u{845B}\u{FE00} \u{2229}\u{FE00} \u{1820}\u{180B} 0\u{FE00}",
            "\u{1F44D}\u{1F3FD}\u{FE0F} \u{1F441}\u{FE0F}\u{200D}\u{1F5E8}\u{FE0F}",
            "\u{1F3F3}\u{FE0F}\u{200D}\u{26A7}\u{FE0F}",
            "Bo\u{2800}b",
        ] {
            assert_eq!(check_name(name), Ok(()), "{name:?}");
            assert_eq!(
                mark_invisible(name).map(|(c, _)| c).collect::<String>(),
                name
            );
        }
        let tags = |t: &str| -> String {
            t.chars()
                .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
                .collect()
        };
        for name in [
            "Al\u{200D}ice".to_owned(),
            "1\u{200D}2".into(),
            "#\u{200D}\u{1F525}".into(),
            "\u{1F468}\u{200D}".into(),
            "\u{200D}\u{1F468}".into(),
            "\u{1F468}\u{200D}\u{200D}\u{1F469}".into(),
            "\u{1F468}\u{200B}\u{1F469}".into(),
            "\u{1F468}\u{200D}a".into(),
            format!("\u{1F3F4}{}\u{E007F}", tags("usca")),
            format!("\u{1F3F4}{}", tags("gbwls")),
            format!("\u{1F3F4}{}\u{E007F}", tags("gbwlsx")),
            format!("\u{1F3F3}{}\u{E007F}", tags("gbwls")),
            format!("Bob{}\u{E007F}", tags("gbwls")),
            format!("{wales}{}", tags("hi")),
            format!("{wales}\u{E007F}"),
            "x\u{E0001}en".into(),
            "Bob\u{FE00}".into(),
            "Bob\u{FE0F}".into(),
            "\u{FE0F}Bob".into(),
            "Bo \u{FE0E}b".into(),
            "\u{1F642}\u{FE0F}\u{FE0F}".into(),
            "\u{845B}\u{FE00}\u{FE01}".into(),
            "Bob\u{180B}".into(),
            "ok \u{2713}\u{FE0F}".into(),
            "\u{2F00}\u{FE00}".into(),
            "\u{180E}\u{180B}".into(),
            "Bob1\u{FE0F}".into(),
            "Bo\u{3000}\u{FE00}b".into(),
            "\u{FF22}\u{FF4F}\u{FF42}\u{FE00}".into(),
            "\u{845B}\u{FE05}".into(),
        ] {
            let marked: Vec<char> = mark_invisible(&name)
                .filter_map(|(c, invisible)| invisible.then_some(c))
                .collect();
            assert!(!marked.is_empty(), "{name:?}");
            assert!(check_name(&name).is_err(), "{name:?}");
        }
        // What is marked is exactly the joiner or tags that are not part
        // of an emoji.
        let marked: Vec<bool> = mark_invisible("\u{1F468}\u{200D}\u{1F469}\u{200D}a")
            .map(|(_, invisible)| invisible)
            .collect();
        assert_eq!(marked, [false, false, false, true, false]);
        let marked: Vec<bool> = mark_invisible("\u{2764}\u{FE0F}a\u{FE0F}")
            .map(|(_, invisible)| invisible)
            .collect();
        assert_eq!(marked, [false, false, false, true]);
        // A blank the braille block shows: inside a name, as a space is.
        for name in ["Bob\u{2800}", "\u{2800}Bob"] {
            assert!(check_name(name).is_err(), "{name:?}");
            assert!(mark_invisible(name).all(|(_, invisible)| !invisible));
        }
    }

    #[test]
    fn a_contact_pair_is_both_sides_contacts() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let a = Identity::generate("a", &mut rng).unwrap();
        let b = Identity::generate("b", &mut rng).unwrap();
        let (ab, ba) = Identity::contact_pair(&a, &b).unwrap();
        assert!(same(&ab, &a.contact(&b.public()).unwrap()));
        assert!(same(&ba, &b.contact(&a.public()).unwrap()));
        assert!(!same(&ab, &ba), "each side's record names the other");
        // Filter entries have a direction: what one side builds the other
        // recognises, and no side recognises what it builds itself.
        assert!(same_keys(&ab.announce, &ba.recognise));
        assert!(same_keys(&ba.announce, &ab.recognise));
        assert!(!same_keys(&ab.announce, &ab.recognise));
        assert!(!same_keys(&ab.announce, &ba.announce));
        assert_eq!(ab.direct_group().id, ba.direct_group().id);
        assert!(matches!(
            Identity::contact_pair(&a, &a),
            Err(KeyError::OwnKey)
        ));
        // The cached public key is the secret's.
        assert_eq!(a.public().dh, DhPublic::from(&a.dh).to_bytes());
        let again = Identity::from_secret_bytes(&a.to_secret_bytes(), "a").unwrap();
        assert_eq!(again.public(), a.public());
    }
}
