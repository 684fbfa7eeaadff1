//! Sealed envelopes (PROTOCOL.md §16): a message sealed for its recipient
//! so that people who carry it learn neither what it says, nor who wrote
//! it, nor who it is for.
//!
//! The sealed content is the sender's ordinary message in the pair's 1:1
//! group (§4): signed by the sender, encrypted under the pair's key. The
//! envelope hides that message's header (group id, author) too: it is
//! encrypted again to the recipient's key-agreement key with a fresh
//! ephemeral key, and padded to one of a few sizes. What a carrier sees
//! is the size bucket, a coarse expiry (to the hour), a copy count it may
//! change, a fresh ephemeral public key, a short recognition tag and the
//! hash of an acknowledgement token; apart from size and expiry, nothing
//! links one envelope to another. The recipient recognises its envelopes with one X25519
//! per envelope, and acknowledges one by revealing its token, which any
//! carrier checks against the hash and then deletes its copy.
//!
//! This module is the format. What a recipient accepts from an opened
//! envelope is decided like any message: it must be valid in the 1:1
//! group of the contact it names, so a carrier cannot inject anything.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey as DhPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::crypto::{hash, kdf};
use crate::identity::{Identity, PublicIdentity};
use crate::limits::{Time, MAX_MESSAGE_LEN};
use crate::message::Message;

const VERSION: u8 = 1;
/// Version, expiry hour, copies, ephemeral key, tag, acknowledgement hash.
pub const ENVELOPE_HEADER_LEN: usize = 1 + 4 + 1 + 32 + 8 + 16;
const TAG_LEN: usize = 16;
const HOUR_MS: u64 = 3_600_000;
/// The sizes a sealed message is padded to (its length prefix included):
/// from 1 KiB to 256 KiB, every power of two and one and a half times
/// each (1, 1.5, 2, 3, 4, 6 … 192, 256 KiB: in that range padding adds
/// at most half, about a fifth on average; a size tells at most 4.2
/// bits), then a file chunk and the largest message.
pub const ENVELOPE_SIZES: [usize; 19] = [
    1 << 10,
    3 << 9,
    1 << 11,
    3 << 10,
    1 << 12,
    3 << 11,
    1 << 13,
    3 << 12,
    1 << 14,
    3 << 13,
    1 << 15,
    3 << 14,
    1 << 16,
    3 << 15,
    1 << 17,
    3 << 16,
    1 << 18,
    (1 << 18) + (1 << 12),
    MAX_MESSAGE_LEN + 4,
];

/// Why an envelope cannot be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not the length of any envelope, or an unknown version.
    #[error("not an envelope")]
    Malformed,
    /// The recipient's key gives no shared secret.
    #[error("the recipient's key is not usable")]
    WeakKey,
}

/// An acknowledgement token: what the recipient reveals once it has an
/// envelope's message, so carriers delete their copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AckToken(pub [u8; 16]);

impl AckToken {
    /// The hash an envelope carries for this token.
    pub fn hash(&self) -> [u8; 16] {
        hash(&[b"strand/v1/envelope-ack-hash".as_slice(), &self.0])[..16]
            .try_into()
            .expect("16 bytes")
    }
}

/// A sealed envelope, well formed (its seal is checked by
/// [`Envelope::open`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    bytes: Vec<u8>,
    /// [`Envelope::id`], found once.
    id: [u8; 32],
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("len", &self.bytes.len())
            .field("expires", &self.expires())
            .field("copies", &self.copies())
            .finish_non_exhaustive()
    }
}

struct Keys {
    key: Zeroizing<[u8; 32]>,
    tag: [u8; 8],
    ack: AckToken,
}

fn keys(shared: &[u8; 32], ephemeral: &[u8; 32], recipient_dh: &[u8; 32]) -> Keys {
    let parts: [&[u8]; 2] = [ephemeral, recipient_dh];
    Keys {
        key: Zeroizing::new(kdf(shared, "strand/v1/envelope-key", &parts)),
        tag: kdf(shared, "strand/v1/envelope-tag", &parts)[..8]
            .try_into()
            .expect("8 bytes"),
        ack: AckToken(
            kdf(shared, "strand/v1/envelope-ack", &parts)[..16]
                .try_into()
                .expect("16 bytes"),
        ),
    }
}

/// The padded size for a message of `len` bytes, if any fits.
fn bucket(len: usize) -> Option<usize> {
    ENVELOPE_SIZES.iter().copied().find(|&s| s >= len + 4)
}

/// The length of the envelope a message of `message_len` bytes seals
/// into, if it fits one.
pub fn sealed_len(message_len: usize) -> Option<usize> {
    bucket(message_len).map(|s| ENVELOPE_HEADER_LEN + s + TAG_LEN)
}

impl Envelope {
    /// Seals `message` (the sender's message in the pair's 1:1 group) for
    /// `recipient`, to be carried until `expires` (rounded up to the
    /// hour) in at most `copies` copies.
    pub fn seal(
        recipient: &PublicIdentity,
        message: &Message,
        expires: Time,
        copies: u8,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Envelope, EnvelopeError> {
        Envelope::seal_with_token(recipient, message, expires, copies, rng).map(|(e, _)| e)
    }

    /// [`Envelope::seal`], also giving the acknowledgement token the
    /// recipient will reveal (so a sender that learns of delivery another
    /// way can stop the envelope's copies itself).
    pub fn seal_with_token(
        recipient: &PublicIdentity,
        message: &Message,
        expires: Time,
        copies: u8,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Envelope, AckToken), EnvelopeError> {
        let inner = message.as_bytes();
        let size = bucket(inner.len()).ok_or(EnvelopeError::Malformed)?;
        let eph = StaticSecret::random_from_rng(&mut *rng);
        let eph_public = DhPublic::from(&eph).to_bytes();
        let shared = eph.diffie_hellman(&DhPublic::from(recipient.dh));
        if !shared.was_contributory() {
            return Err(EnvelopeError::WeakKey);
        }
        let k = keys(shared.as_bytes(), &eph_public, &recipient.dh);
        let hour = u32::try_from(expires.div_ceil(HOUR_MS)).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + size + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&hour.to_be_bytes());
        out.push(copies.max(1));
        out.extend_from_slice(&eph_public);
        out.extend_from_slice(&k.tag);
        out.extend_from_slice(&k.ack.hash());
        let mut plain = Zeroizing::new(Vec::with_capacity(size));
        plain.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        plain.extend_from_slice(inner);
        plain.resize(size, 0);
        let sealed = ChaCha20Poly1305::new(k.key.as_ref().into())
            .encrypt(
                &Nonce::default(),
                Payload {
                    msg: &plain,
                    aad: &aad(&out),
                },
            )
            .expect("ChaCha20-Poly1305 seals any envelope size");
        out.extend_from_slice(&sealed);
        Ok((Envelope::with_id(out), k.ack))
    }

    /// Reads an envelope's bytes: its version and length are checked (one
    /// of [`ENVELOPE_SIZES`] sealed), not its seal.
    pub fn decode(bytes: Vec<u8>) -> Result<Envelope, EnvelopeError> {
        if bytes.first() != Some(&VERSION)
            || bytes.get(5) == Some(&0)
            || !ENVELOPE_SIZES
                .iter()
                .any(|s| bytes.len() == ENVELOPE_HEADER_LEN + s + TAG_LEN)
        {
            return Err(EnvelopeError::Malformed);
        }
        Ok(Envelope::with_id(bytes))
    }

    fn with_id(bytes: Vec<u8>) -> Envelope {
        let id = hash(&[
            b"strand/v1/envelope-id".as_slice(),
            &bytes[..5],
            &bytes[6..],
        ]);
        Envelope { bytes, id }
    }

    /// The envelope's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// When carriers delete it (ms since the Unix epoch, a whole hour).
    pub fn expires(&self) -> Time {
        u64::from(u32::from_be_bytes(
            self.bytes[1..5].try_into().expect("4 bytes"),
        )) * HOUR_MS
    }

    /// How many copies its holder may still hand out (spray and wait: a
    /// holder of `n > 1` gives `n / 2` to another carrier and keeps the
    /// rest; with 1 it waits for the recipient).
    pub fn copies(&self) -> u8 {
        self.bytes[5]
    }

    /// Sets the copy count (not sealed: only its holder's policy).
    pub fn set_copies(&mut self, copies: u8) {
        self.bytes[5] = copies.max(1);
    }

    /// The hash of its acknowledgement token.
    pub fn ack_hash(&self) -> [u8; 16] {
        self.bytes[46..62].try_into().expect("16 bytes")
    }

    /// Whether `token` acknowledges this envelope.
    pub fn acknowledged_by(&self, token: &AckToken) -> bool {
        token.hash().ct_eq(&self.ack_hash()).into()
    }

    /// What names it across copies: a hash of everything but the copy
    /// count, the sealed part included.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// Its id's first 16 bytes: what an offer names it by, beside its
    /// header, and a request asks for. The header alone does not do:
    /// anyone who saw it can put it on a sealed part of their own, which
    /// no carrier can tell from the real one (PROTOCOL.md §17).
    pub fn name(&self) -> [u8; 16] {
        self.id[..16].try_into().expect("16 bytes")
    }

    /// Opens it if it is for `me`: the sealed message (check it as any
    /// received message before storing it) and the token that
    /// acknowledges it. `None` if it is for someone else or was altered.
    ///
    /// Reveal the token only once the message is valid in the 1:1 group
    /// of one of `me`'s contacts: anyone can seal to a public key, and an
    /// acknowledgement of a stranger's envelope would show who opened it.
    pub fn open(&self, me: &Identity) -> Option<(Message, AckToken)> {
        let k = recognise(&self.bytes[..ENVELOPE_HEADER_LEN], me)?;
        let plain = Zeroizing::new(
            ChaCha20Poly1305::new(k.key.as_ref().into())
                .decrypt(
                    &Nonce::default(),
                    Payload {
                        msg: &self.bytes[ENVELOPE_HEADER_LEN..],
                        aad: &aad(&self.bytes[..ENVELOPE_HEADER_LEN]),
                    },
                )
                .ok()?,
        );
        let len = u32::from_be_bytes(plain.get(..4)?.try_into().ok()?) as usize;
        let end = len.checked_add(4)?;
        let inner = plain.get(4..end)?;
        if plain[end..].iter().any(|b| *b != 0) {
            return None;
        }
        let message = Message::decode(inner.to_vec()).ok()?;
        Some((message, k.ack))
    }
}

impl Envelope {
    /// The header alone (version, expiry, copies, ephemeral key, tag,
    /// acknowledgement hash): enough for the recipient to recognise the
    /// envelope with [`Envelope::recognises`] before it is sent in full.
    pub fn header(&self) -> &[u8] {
        &self.bytes[..ENVELOPE_HEADER_LEN]
    }

    /// Whether an envelope header (see [`Envelope::header`]) was sealed to
    /// `me`: one X25519 and a tag comparison. `false` for anything that
    /// is not a header.
    pub fn recognises(header: &[u8], me: &Identity) -> bool {
        header.len() == ENVELOPE_HEADER_LEN
            && header[0] == VERSION
            && header[5] != 0
            && recognise(header, me).is_some()
    }

    /// The acknowledgement hash in a header from [`Envelope::header`].
    pub fn header_ack_hash(header: &[u8]) -> Option<[u8; 16]> {
        header.get(46..62)?.try_into().ok()
    }
}

/// The envelope keys, if the header's tag says it is for `me`.
fn recognise(header: &[u8], me: &Identity) -> Option<Keys> {
    let eph: [u8; 32] = header.get(6..38)?.try_into().ok()?;
    let shared = me.dh_secret().diffie_hellman(&DhPublic::from(eph));
    if !shared.was_contributory() {
        return None;
    }
    let my_dh = me.public().dh;
    let k = keys(shared.as_bytes(), &eph, &my_dh);
    // The acknowledgement hash too is the one the keys give: a sealer
    // who wrote another in (one that never matches, or another
    // envelope's) would have its envelope opened, acknowledged to no
    // carrier's deletion and asked for again at every meeting.
    let known = k.tag.ct_eq(header.get(38..46)?) & k.ack.hash().ct_eq(header.get(46..62)?);
    bool::from(known).then_some(k)
}

/// The sealed header: everything but the copy count.
fn aad(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN - 1);
    out.extend_from_slice(&header[..5]);
    out.extend_from_slice(&header[6..ENVELOPE_HEADER_LEN]);
    out
}

#[cfg(test)]
impl Envelope {
    /// What a sealer can make that [`Envelope::seal`] does not: this
    /// envelope sealed again with acknowledgement hash `ack_hash`, for
    /// `me`, its recipient (who can compute every key a sealer knows).
    pub(crate) fn resealed_with_ack_hash(&self, me: &Identity, ack_hash: [u8; 16]) -> Envelope {
        let eph: [u8; 32] = self.bytes[6..38].try_into().expect("32 bytes");
        let shared = me.dh_secret().diffie_hellman(&DhPublic::from(eph));
        let k = keys(shared.as_bytes(), &eph, &me.public().dh);
        let cipher = ChaCha20Poly1305::new(k.key.as_ref().into());
        let (header, sealed) = self.bytes.split_at(ENVELOPE_HEADER_LEN);
        let plain = cipher
            .decrypt(
                &Nonce::default(),
                Payload {
                    msg: sealed,
                    aad: &aad(header),
                },
            )
            .expect("an envelope sealed for me");
        let mut out = header.to_vec();
        out[46..62].copy_from_slice(&ack_hash);
        let sealed = cipher
            .encrypt(
                &Nonce::default(),
                Payload {
                    msg: &plain,
                    aad: &aad(&out),
                },
            )
            .expect("sealed");
        out.extend_from_slice(&sealed);
        Envelope::with_id(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use crate::message::Kind;

    /// A sealer who writes in an acknowledgement hash the keys do not give
    /// (here another envelope's) has an envelope no one recognises or
    /// opens: the recipient would otherwise take it in, acknowledge it
    /// with a token no carrier's copy matches, and ask for it again at
    /// every meeting.
    #[test]
    fn an_envelope_whose_acknowledgement_hash_is_not_its_own_is_not_recognised() {
        let mut rng = ChaCha20Rng::seed_from_u64(61);
        let ann = Identity::generate("ann", &mut rng).unwrap();
        let cat = Identity::generate("cat", &mut rng).unwrap();
        let pair = ann.contact(&cat.public()).unwrap();
        let msg = Message::create(
            &ann,
            pair.direct_group(),
            1_800_000_000_000,
            Kind::TEXT,
            b"hi",
            &mut rng,
        )
        .unwrap();
        let expires = 1_800_000_000_000 + HOUR_MS;
        let real = Envelope::seal(&cat.public(), &msg, expires, 1, &mut rng).unwrap();
        let other = Envelope::seal(&cat.public(), &msg, expires, 1, &mut rng).unwrap();
        // The helper reseals faithfully: with its own hash it is the same.
        let same = real.resealed_with_ack_hash(&cat, real.ack_hash());
        assert_eq!(same.as_bytes(), real.as_bytes());
        assert!(Envelope::recognises(same.header(), &cat));
        let forged = real.resealed_with_ack_hash(&cat, other.ack_hash());
        assert_eq!(forged.ack_hash(), other.ack_hash());
        assert!(!Envelope::recognises(forged.header(), &cat));
        assert!(forged.open(&cat).is_none());
        assert!(real.open(&cat).is_some());
    }
}
