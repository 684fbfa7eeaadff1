//! Invites: how two people become contacts.
//!
//! An invite is the bytes below, shown as text (`strand1` + unpadded
//! lowercase base32), which a QR code carries upper-cased in alphanumeric
//! mode. Two users are
//! contacts once each has added the other's invite. See `PROTOCOL.md`.
//!
//! ```text
//! offset  size  field
//! 0       1     version (2)
//! 1       32    Ed25519 public key
//! 33      32    X25519 public key
//! 65      1     name length n (1..=64)
//! 66      n     display name, UTF-8, no control, bidi or invisible characters
//! [66+n   2     reach length r, little endian (optional)
//!  68+n   r     a Reach record: relays and relay seed, see `crate::Reach`]
//! end-68  64    Ed25519 signature by the key at offset 1 over
//!               "strand/v2/invite" || all bytes before it
//! end-4   4     checksum: first 4 bytes of BLAKE2s-256("strand/v1/invite" || all bytes before it)
//! ```
//!
//! The signature ties the X25519 key (and the name and reach) to the
//! signing key: someone who swaps in their own X25519 key cannot sign for
//! the signing key they kept, so the fingerprint or safety number a person
//! checks covers both keys. Version 1 invites had no signature and are
//! refused ([`InviteError::Unsigned`]): accepting one would keep that
//! attack open.
//!
//! The optional reach section lets someone who has never synced with the
//! inviter (they exchanged codes by mail or phone, not on a LAN) reach
//! them through their relays; after the first sync, the inviter's [`Reach`]
//! records inside the conversation keep it current. It is at most
//! [`MAX_INVITE_REACH_LEN`] bytes, so the invite still fits a QR code.

use data_encoding::{Encoding, Specification};
use ed25519_dalek::{Signature, Signer};

use crate::codec::Reader;
use crate::crypto::hash;
use crate::identity::{check_name, check_stored_name, verifying_key, Identity, PublicIdentity};
use crate::limits::MAX_NAME_LEN;
use crate::reach::Reach;
use crate::{DecodeError, InviteError};

/// Prefix of an invite's text form. Names the format and its version, and
/// lets an app tell an invite from any other pasted text.
pub const INVITE_PREFIX: &str = "strand1";

const VERSION: u8 = 2;
const CHECKSUM_LEN: usize = 4;
const SIGNATURE_LEN: usize = 64;
/// Prefix of what an invite's signature signs (no 0x00).
const SIGNED_PREFIX: &[u8] = b"strand/v2/invite";

/// Longest reach section in an invite, in bytes: a few relays, and the
/// whole invite still fits a QR code comfortably.
pub const MAX_INVITE_REACH_LEN: usize = 600;

/// Longest invite, in bytes.
const MAX_INVITE_LEN: usize =
    66 + MAX_NAME_LEN + 2 + MAX_INVITE_REACH_LEN + SIGNATURE_LEN + CHECKSUM_LEN;

/// Longest text form of an invite, in characters.
pub const MAX_INVITE_TEXT_LEN: usize = INVITE_PREFIX.len() + (MAX_INVITE_LEN * 8).div_ceil(5);

fn base32() -> Encoding {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.translate.from.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    spec.translate.to.push_str("abcdefghijklmnopqrstuvwxyz");
    spec.check_trailing_bits = true;
    spec.encoding().expect("a valid base32 alphabet")
}

/// A decoded, checked invite. Made by [`Identity::invite`] (signed by
/// the identity); [`Invite::from_bytes`] checks the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The inviter's public keys.
    pub public: PublicIdentity,
    /// The name the inviter chose for themselves. The person adding them
    /// may give them another.
    pub name: String,
    /// Where the inviter can be reached beyond their LAN, if they said.
    pub reach: Option<Reach>,
    /// The signing key's signature over everything above. An invite whose
    /// fields were changed after signing encodes, but does not decode.
    pub signature: [u8; SIGNATURE_LEN],
}

impl Invite {
    /// `identity`'s invite under `name`, with `reach` (its relay seed and
    /// as many relays as fit in [`MAX_INVITE_REACH_LEN`]; offers are left
    /// out), signed.
    pub(crate) fn signed(identity: &Identity, reach: Option<&Reach>) -> Invite {
        let reach = reach.map(|reach| {
            let mut r = reach.clone();
            r.offers.clear();
            while !r.relays.is_empty() && r.encode().len() > MAX_INVITE_REACH_LEN {
                r.relays.pop();
            }
            r
        });
        let mut invite = Invite {
            public: identity.public(),
            name: identity.name().to_owned(),
            reach,
            signature: [0; SIGNATURE_LEN],
        };
        invite.signature = sign(identity, &invite.signed_body());
        invite
    }

    /// The bytes the signature covers (without the prefix).
    fn signed_body(&self) -> Vec<u8> {
        let mut out = head(&self.public);
        out.push(self.name.len() as u8);
        out.extend_from_slice(self.name.as_bytes());
        if let Some(reach) = &self.reach {
            let r = reach.encode();
            debug_assert!(r.len() <= MAX_INVITE_REACH_LEN, "trimmed by Invite::signed");
            out.extend_from_slice(&(r.len() as u16).to_le_bytes());
            out.extend_from_slice(&r);
        }
        out
    }

    /// The invite's bytes, as carried in a QR code.
    pub fn to_bytes(&self) -> Vec<u8> {
        assemble(self.signed_body(), &self.signature)
    }

    /// The invite as text, e.g. to paste into a chat or read aloud.
    pub fn to_text(&self) -> String {
        format!("{INVITE_PREFIX}{}", base32().encode(&self.to_bytes()))
    }

    /// Decodes invite bytes (from a QR code). Rejects every malformed or
    /// altered invite, and one whose name today's rules refuse
    /// ([`check_name`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InviteError> {
        Self::decode(bytes, check_name)
    }

    /// Decodes the bytes of an invite accepted once and stored since (a
    /// paired mailbox's, in its owner's profile): as [`Invite::from_bytes`],
    /// checksum and signature included, but the name is read under the
    /// rules for stored names (those of an older Strand, which the invite
    /// may have been accepted under: a variation selector that selects
    /// nothing, a braille blank at either end), as a stored profile or
    /// contact name is. Anything that arrives from outside (text, a QR
    /// code, a record) is decoded with [`Invite::from_bytes`] or
    /// [`Invite::from_text`], which keep today's rules.
    pub fn from_stored_bytes(bytes: &[u8]) -> Result<Self, InviteError> {
        Self::decode(bytes, check_stored_name)
    }

    /// Decodes invite bytes, checking the name with `check`: the one
    /// decoder behind [`Invite::from_bytes`] and
    /// [`Invite::from_stored_bytes`], which differ only in it.
    fn decode(
        bytes: &[u8],
        check: fn(&str) -> Result<(), crate::KeyError>,
    ) -> Result<Self, InviteError> {
        if bytes.len() > MAX_INVITE_LEN {
            return Err(InviteError::Malformed(DecodeError::TooLong {
                max: MAX_INVITE_LEN,
            }));
        }
        if bytes.len() < 2 + CHECKSUM_LEN {
            return Err(InviteError::Malformed(DecodeError::Truncated));
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&checksum(body)[..], sum)) {
            return Err(InviteError::Checksum);
        }
        let version = body[0];
        if version == 1 {
            return Err(InviteError::Unsigned);
        }
        if version != VERSION {
            return Err(InviteError::Version(version));
        }
        if body.len() < 66 + 1 + SIGNATURE_LEN {
            return Err(InviteError::Malformed(DecodeError::Truncated));
        }
        let (body, signature) = body.split_at(body.len() - SIGNATURE_LEN);
        let signature: [u8; SIGNATURE_LEN] = signature.try_into().expect("64 bytes");
        let mut r = Reader::new(body);
        r.u8()?;
        let sign = r.array::<32>()?;
        let dh = r.array::<32>()?;
        let name_len = r.u8()? as usize;
        let name = r.bytes(name_len)?;
        let reach = if r.is_empty() {
            None
        } else {
            let len = u16::from_le_bytes(r.array::<2>()?) as usize;
            if len > MAX_INVITE_REACH_LEN {
                return Err(InviteError::Malformed(DecodeError::TooLong {
                    max: MAX_INVITE_REACH_LEN,
                }));
            }
            let reach = Reach::decode(r.bytes(len)?).map_err(InviteError::Malformed)?;
            // Offers are a contact's to make, in a record (§12.1): a node
            // reserves on them, so a code anyone can post must not.
            if !reach.offers.is_empty() {
                return Err(InviteError::Malformed(DecodeError::Invalid(
                    "the reach section offers relays; an invite's must not",
                )));
            }
            Some(reach)
        };
        r.finish()?;
        let name = std::str::from_utf8(name).map_err(|_| InviteError::Name("not UTF-8"))?;
        check(name).map_err(|e| match e {
            crate::KeyError::Name(why) => InviteError::Name(why),
            _ => InviteError::Name("invalid"),
        })?;
        let Some(key) = verifying_key(&sign) else {
            return Err(InviteError::BadKey);
        };
        if dh.iter().all(|b| *b == 0) {
            return Err(InviteError::BadKey);
        }
        key.verify_strict(
            &[SIGNED_PREFIX, body].concat(),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| InviteError::Signature)?;
        Ok(Invite {
            public: PublicIdentity { sign, dh },
            name: name.to_owned(),
            reach,
            signature,
        })
    }

    /// Whether `text` begins as an invite's text form does, read as
    /// [`Invite::from_text`] reads it (white space and dashes anywhere,
    /// any case), whatever follows: how a QR reader tells an invite from
    /// another code. `from_text` refuses with [`InviteError::Prefix`]
    /// exactly what this says is not one.
    pub fn begins_text(text: &str) -> bool {
        let mut read = text.chars().filter(|c| !c.is_whitespace() && *c != '-');
        INVITE_PREFIX
            .chars()
            .all(|p| read.next().is_some_and(|c| c.to_ascii_lowercase() == p))
    }

    /// Decodes an invite's text form. Surrounding white space, line breaks
    /// and dashes inside the code are ignored and letters may be upper case,
    /// so a code survives being wrapped or read aloud.
    pub fn from_text(text: &str) -> Result<Self, InviteError> {
        if !Self::begins_text(text) {
            return Err(InviteError::Prefix);
        }
        // Room for white space and dashes around and inside a code.
        let limit = 4 * MAX_INVITE_TEXT_LEN;
        if text.len() > limit {
            return Err(InviteError::Malformed(DecodeError::TooLong { max: limit }));
        }
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let lower = cleaned.to_ascii_lowercase();
        let Some(code) = lower.strip_prefix(INVITE_PREFIX) else {
            return Err(InviteError::Prefix);
        };
        let bytes = base32()
            .decode(code.as_bytes())
            .map_err(|_| InviteError::Encoding)?;
        Self::from_bytes(&bytes)
    }
}

/// The start of an invite's body: the version and the keys.
fn head(public: &PublicIdentity) -> Vec<u8> {
    let mut out = Vec::with_capacity(70 + MAX_NAME_LEN);
    out.push(VERSION);
    out.extend_from_slice(&public.sign);
    out.extend_from_slice(&public.dh);
    out
}

/// `identity`'s signature over an invite's body.
fn sign(identity: &Identity, body: &[u8]) -> [u8; SIGNATURE_LEN] {
    identity
        .signing_key()
        .sign(&[SIGNED_PREFIX, body].concat())
        .to_bytes()
}

/// The checksum an invite's bytes end in, over everything before it.
fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let sum = hash(&[b"strand/v1/invite", bytes]);
    sum[..CHECKSUM_LEN]
        .try_into()
        .expect("a prefix of the hash")
}

/// An invite's bytes: the signed body, then its signature and checksum.
fn assemble(mut body: Vec<u8>, signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    body.extend_from_slice(signature);
    let sum = checksum(&body);
    body.extend_from_slice(&sum);
    body
}

/// Invite bytes that `identity` signed, with `rest` after its keys where
/// the name and the reach record belong: whatever `rest` holds, the
/// checksum and the signature are right, so a fuzz target reaches what
/// [`Invite::from_bytes`] reads behind them.
pub(crate) fn signed_for_fuzzing(identity: &Identity, rest: &[u8]) -> Vec<u8> {
    let mut body = head(&identity.public());
    body.extend_from_slice(rest);
    let signature = sign(identity, &body);
    assemble(body, &signature)
}

/// `body` with the checksum an invite's bytes end in.
pub(crate) fn checksummed_for_fuzzing(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&checksum(body));
    out
}

impl std::fmt::Display for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl std::str::FromStr for Invite {
    type Err = InviteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Invite::from_text(s)
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    /// An invite whose name an older Strand accepted (a braille blank at
    /// its end, a variation selector that selects nothing), stored once
    /// accepted, reads with `from_stored_bytes`, its signature still
    /// checked; from outside (bytes, text) it is refused as before.
    #[test]
    fn a_stored_invite_reads_under_the_rules_for_stored_names() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let device = Identity::generate("Box", &mut rng).unwrap();
        for old in ["Box\u{2800}", "ann\u{FE00}", "Box 1\u{FE0F}"] {
            assert!(check_name(old).is_err(), "{old:?}");
            let named = Identity::from_secret_bytes(&device.to_secret_bytes(), old).unwrap();
            let bytes = named.invite().to_bytes();
            assert!(
                matches!(Invite::from_bytes(&bytes), Err(InviteError::Name(_))),
                "{old:?}"
            );
            assert!(Invite::from_text(&named.invite().to_text()).is_err());
            let invite = Invite::from_stored_bytes(&bytes).unwrap();
            assert_eq!(invite, named.invite());
            assert_eq!(invite.name, old);
            assert_eq!(invite.public, device.public());
            // Another name under the same signature does not read.
            let mut altered = invite.clone();
            altered.name = format!("x{old}");
            assert!(matches!(
                Invite::from_stored_bytes(&altered.to_bytes()),
                Err(InviteError::Signature)
            ));
        }
        // A name today's rules take reads the same either way.
        let bytes = device.invite().to_bytes();
        assert_eq!(
            Invite::from_stored_bytes(&bytes).unwrap(),
            Invite::from_bytes(&bytes).unwrap()
        );
        // What no Strand ever took (a leading space, a control character)
        // is refused in a stored invite too, signed or not.
        for name in [&b" Box"[..], &b"Bo\x07x"[..]] {
            let rest = [&[name.len() as u8][..], name].concat();
            let bytes = signed_for_fuzzing(&device, &rest);
            assert!(
                matches!(Invite::from_stored_bytes(&bytes), Err(InviteError::Name(_))),
                "{name:?}"
            );
        }
    }
}
