//! Group-log messages: immutable, content-addressed, signed, encrypted.
//!
//! ```text
//! offset  size  field
//! 0       1     version (1)
//! 1       32    group id
//! 33      32    author: Ed25519 public key
//! 65      8     timestamp: ms since the Unix epoch, big-endian
//! 73      1     kind (1 = UTF-8 text)
//! 74      24    XChaCha20-Poly1305 nonce
//! 98      4     L: ciphertext length, big-endian (16..=MAX_BODY_LEN+16)
//! 102     L     ciphertext of the body under the group key; AAD = bytes 0..98
//! 102+L   64    Ed25519 signature by the author over
//!               "strand/v1/message" || BLAKE2s-256(bytes 0..102+L)
//! ```
//!
//! A **disappearing** message is version 2: the same, with its expiry (8
//! bytes, ms since the Unix epoch, big-endian) after the kind, so the
//! nonce is at 82, the length at 106 and the ciphertext at 110; the AAD is
//! bytes 0..106. The expiry is in the AAD and under the signature: nobody
//! can change it. (PROTOCOL.md §4.)
//!
//! A message's id is BLAKE2s-256 of all its bytes.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use ed25519_dalek::Signer;
use rand_core::{CryptoRng, RngCore};

use crate::codec::Reader;
use crate::crypto::hash_prefix_and_whole;
use crate::group::{Group, GroupId};
use crate::identity::{AuthorId, Identity};
use crate::limits::{Time, MAX_BODY_LEN, MAX_CLOCK_SKEW, MAX_MESSAGE_LEN, MESSAGE_OVERHEAD};
use crate::timer::{MAX_TIMER, MIN_TIMER};
use crate::{DecodeError, Invalid};
use blake2::digest::{FixedOutput, Update};
use blake2::{Blake2s256, Digest};

const VERSION: u8 = 1;
/// A message with an expiry.
const VERSION_EXPIRING: u8 = 2;
const HEADER_LEN: usize = 98;
/// Version 2's header: the expiry after the kind.
const HEADER_LEN_EXPIRING: usize = 106;
const SIGNED_PREFIX: &[u8] = b"strand/v1/message";
/// The signed input: the prefix and a BLAKE2s-256 digest.
pub(crate) const SIGNED_LEN: usize = 17 + 32;

/// A message's id: BLAKE2s-256 of its encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; 32]);

impl std::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageId({})", crate::hex_prefix(&self.0))
    }
}

/// What a message is. Unknown kinds are stored and forwarded (a newer
/// client may send them) but not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind(pub u8);

impl Kind {
    /// A UTF-8 text message.
    pub const TEXT: Kind = Kind(1);
    /// Where the author can be reached beyond its LAN (a
    /// [`crate::Reach`] record). Not shown in conversations.
    pub const REACH: Kind = Kind(2);
    /// A change to a private group's members, in the epoch's own log
    /// (PROTOCOL.md §14).
    pub const MEMBERSHIP: Kind = Kind(3);
    /// A private group's epoch, key included, for a new member: in the 1:1
    /// conversation with whoever added them (§14).
    pub const WELCOME: Kind = Kind(4);
    /// How long the conversation's messages last from now on
    /// (PROTOCOL.md §4.1).
    pub const TIMER: Kind = Kind(5);
    /// Bytes of a file (PROTOCOL.md §4.2): sent after other messages.
    pub const CHUNK: Kind = Kind(6);
    /// A file's manifest: its name, size, hash and chunks (§4.2).
    pub const FILE: Kind = Kind(7);
    /// The name its author chose for themselves, for members who are not
    /// their contacts (PROTOCOL.md §14.5).
    pub const NAME: Kind = Kind(8);
    /// A sealed envelope handed to a carrier or a possible recipient, in
    /// the pair's carrying pool (PROTOCOL.md §17).
    pub const ENVELOPE: Kind = Kind(9);
    /// An envelope's acknowledgement token, flowing back through the
    /// carrying pools (§17).
    pub const ACK: Kind = Kind(10);
    /// Whether the author carries envelopes for its contacts (§17).
    pub const CARRYING: Kind = Kind(11);
    /// A request for an envelope offered by its header only, from the one
    /// device that recognised it (§17).
    pub const REQUEST: Kind = Kind(12);
    /// In a 1:1 conversation: the author's mailbox device, as its signed
    /// invite (PROTOCOL.md §17.1).
    pub const MAILBOX: Kind = Kind(13);
    /// In the conversation between an owner and their mailbox: the
    /// owner's contacts' public keys, whom the mailbox carries for (§17.1).
    pub const MAILBOX_CONTACTS: Kind = Kind(14);
    /// A private group epoch's key for a member whose box in the change
    /// did not open: its request, or another member's answer sealed to
    /// it, in the log of the epoch that holds the change (PROTOCOL.md
    /// §14.2).
    pub const KEY: Kind = Kind(15);

    /// Whether messages of this kind hold state every device must keep as
    /// long as its conversation (a group change, welcome or key; a timer;
    /// a chosen name; a reach or mailbox record): such a message never
    /// expires, since one that did would undo what it set when it went
    /// (a removal lapsing, the member back in). One written to expire is
    /// [`Invalid::MustLast`].
    pub fn lasts(self) -> bool {
        matches!(
            self,
            Kind::REACH
                | Kind::MEMBERSHIP
                | Kind::WELCOME
                | Kind::TIMER
                | Kind::NAME
                | Kind::MAILBOX
                | Kind::MAILBOX_CONTACTS
                | Kind::KEY
        )
    }

    /// Whether a conversation's timer sets when messages of this kind
    /// expire: a text, and a file's chunks and manifest, written under a
    /// timer expire at their time plus the timer (PROTOCOL.md §4.1), so
    /// one that lasts less than [`MIN_TIMER`] or more than [`MAX_TIMER`]
    /// came from no honest device ([`Invalid::Lifetime`]). Other kinds
    /// that may expire (a carrying pool's, whose expiry is an envelope's;
    /// kinds this version does not know) may last any time.
    pub fn follows_timer(self) -> bool {
        matches!(self, Kind::TEXT | Kind::CHUNK | Kind::FILE)
    }
}

/// How long a message of `kind` written to last `lasts` ms (its expiry
/// less its time) may last: a kind a timer governs
/// ([`Kind::follows_timer`]) within [`MIN_TIMER`]..=[`MAX_TIMER`], the
/// timers there are, else [`Invalid::Lifetime`]; any other kind, any
/// time.
fn check_lifetime(kind: Kind, lasts: Time) -> Result<(), Invalid> {
    if kind.follows_timer() && !(MIN_TIMER..=MAX_TIMER).contains(&lasts) {
        return Err(Invalid::Lifetime { lasts });
    }
    Ok(())
}

/// A decoded message whose structure is sound; [`Message::validate`] checks
/// the rest.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    bytes: Vec<u8>,
    id: MessageId,
    /// BLAKE2s-256 of the bytes before the signature (what the signature
    /// signs), found in the same pass as the id.
    digest: [u8; 32],
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("time", &self.time())
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Message {
    /// Writes, encrypts and signs a new message. `time` is the author's
    /// clock; `rng` draws the nonce.
    pub fn create(
        author: &Identity,
        group: &Group,
        time: Time,
        kind: Kind,
        body: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Message, Invalid> {
        Message::create_expiring(author, group, time, None, kind, body, rng)
    }

    /// [`Message::create`] for a message that every device deletes at
    /// `expires` (and refuses from then on); `None` writes one that stays
    /// (version 1). An expiring body may be 8 bytes shorter than
    /// [`MAX_BODY_LEN`], so the message stays within [`MAX_MESSAGE_LEN`].
    /// A kind that lasts ([`Kind::lasts`]) may not expire
    /// ([`Invalid::MustLast`]), and a text or file expires a timer after
    /// `time`, [`MIN_TIMER`] to [`MAX_TIMER`] ([`Invalid::Lifetime`]).
    pub fn create_expiring(
        author: &Identity,
        group: &Group,
        time: Time,
        expires: Option<Time>,
        kind: Kind,
        body: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Message, Invalid> {
        if expires.is_some() && kind.lasts() {
            return Err(Invalid::MustLast(kind.0));
        }
        // One at or before its time is `Expired`, below.
        if let Some(e) = expires.filter(|&e| e > time) {
            check_lifetime(kind, e - time)?;
        }
        Message::forge_expiring(author, group, time, expires, kind, body, rng)
    }

    /// [`Message::create_expiring`] without the rules that some kinds never
    /// expire ([`Kind::lasts`]) and that texts and files last a timer
    /// ([`Kind::follows_timer`]): what a hostile member can sign, for
    /// tests and fuzzing. Receivers refuse such a message.
    #[doc(hidden)]
    pub fn forge_expiring(
        author: &Identity,
        group: &Group,
        time: Time,
        expires: Option<Time>,
        kind: Kind,
        body: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Message, Invalid> {
        let max = MAX_BODY_LEN - if expires.is_some() { 8 } else { 0 };
        if body.len() > max {
            return Err(Invalid::BodyTooLong(body.len()));
        }
        if let Some(e) = expires {
            if e <= time {
                return Err(Invalid::Expired {
                    expires: e,
                    now: time,
                });
            }
        }
        if time == u64::MAX {
            // Reserved: reconciliation uses it for "infinity".
            return Err(Invalid::FromTheFuture { time, now: time });
        }
        let me = author.public().sign;
        if !group.is_member(&me) {
            return Err(Invalid::NotMember);
        }
        let mut bytes = Vec::with_capacity(MESSAGE_OVERHEAD + 8 + body.len());
        bytes.push(if expires.is_some() {
            VERSION_EXPIRING
        } else {
            VERSION
        });
        bytes.extend_from_slice(&group.id.0);
        bytes.extend_from_slice(&me);
        bytes.extend_from_slice(&time.to_be_bytes());
        bytes.push(kind.0);
        if let Some(e) = expires {
            bytes.extend_from_slice(&e.to_be_bytes());
        }
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        bytes.extend_from_slice(&nonce);
        debug_assert_eq!(bytes.len(), header_len(bytes[0]));
        let cipher = XChaCha20Poly1305::new(group.key().as_bytes().into());
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: body,
                    aad: &bytes,
                },
            )
            .expect("encryption of a bounded body cannot fail");
        bytes.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&ct);
        // The digest's state goes on over the signature to the id: one
        // pass over the body.
        let mut h = Blake2s256::new();
        Update::update(&mut h, &bytes);
        let digest: [u8; 32] = h.clone().finalize_fixed().into();
        let sig = author
            .signing_key()
            .sign(&[SIGNED_PREFIX, &digest].concat());
        let sig = sig.to_bytes();
        bytes.extend_from_slice(&sig);
        Update::update(&mut h, &sig);
        let id = MessageId(h.finalize_fixed().into());
        Ok(Message { bytes, id, digest })
    }

    /// Checks a message's structure (lengths, version). Says nothing yet
    /// about signature, membership or time: see [`Message::validate`].
    pub fn decode(bytes: Vec<u8>) -> Result<Message, DecodeError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(DecodeError::TooLong {
                max: MAX_MESSAGE_LEN,
            });
        }
        let mut r = Reader::new(&bytes);
        let version = r.u8()?;
        if version != VERSION && version != VERSION_EXPIRING {
            return Err(DecodeError::Version(version));
        }
        r.bytes(64)?;
        let time = r.u64()?;
        if time == u64::MAX {
            // Reserved: reconciliation uses it for "infinity".
            return Err(DecodeError::Invalid("timestamp at the end of time"));
        }
        r.u8()?;
        if version == VERSION_EXPIRING && r.u64()? <= time {
            return Err(DecodeError::Invalid("expires before it was written"));
        }
        r.bytes(24)?;
        let ct_len = r.u32()? as usize;
        if ct_len < 16 {
            return Err(DecodeError::Invalid("ciphertext shorter than its tag"));
        }
        if ct_len > MAX_BODY_LEN + 16 {
            return Err(DecodeError::TooLong {
                max: MAX_BODY_LEN + 16,
            });
        }
        r.bytes(ct_len)?;
        r.bytes(64)?;
        r.finish()?;
        let (digest, id) = hash_prefix_and_whole(&bytes, 64);
        Ok(Message {
            bytes,
            id: MessageId(id),
            digest,
        })
    }

    /// Full validation for storing or forwarding: the group is `group`, the
    /// author is a member, the signature holds, the time is not beyond
    /// [`MAX_CLOCK_SKEW`] past `now`, an expiry is after `now`, on a kind
    /// that may expire ([`Kind::lasts`]) and, for a text or file, a timer
    /// after the time ([`Kind::follows_timer`]), and the body decrypts
    /// under the group key. Returns the plaintext body.
    pub fn validate(&self, group: &Group, now: Time) -> Result<Vec<u8>, Invalid> {
        if self.group() != group.id {
            return Err(Invalid::WrongGroup);
        }
        let author = self.author();
        if !group.is_member(&author) {
            return Err(Invalid::NotMember);
        }
        // The signature first, so only the real author's message can earn a
        // "from the future" answer (which does not end a session).
        self.verify_signature()?;
        self.check_after_signature(group, now)
    }

    /// The checks that follow the signature: the time is not beyond
    /// [`MAX_CLOCK_SKEW`] past `now`, an expiry is after `now`, on a
    /// kind that may expire ([`Kind::lasts`]) and, for a text or file, a
    /// timer after the time ([`Kind::follows_timer`]), and the body
    /// decrypts (and is UTF-8 for a text). Returns the plaintext body.
    pub(crate) fn check_after_signature(
        &self,
        group: &Group,
        now: Time,
    ) -> Result<Vec<u8>, Invalid> {
        if self.time() > now.saturating_add(MAX_CLOCK_SKEW) {
            return Err(Invalid::FromTheFuture {
                time: self.time(),
                now,
            });
        }
        if let Some(expires) = self.expires() {
            if expires <= now {
                return Err(Invalid::Expired { expires, now });
            }
            if self.kind().lasts() {
                return Err(Invalid::MustLast(self.kind().0));
            }
            // Decoding saw to it that the expiry is after the time.
            check_lifetime(self.kind(), expires.saturating_sub(self.time()))?;
        }
        self.open(group)
    }

    /// Checks only the author's signature (the cost floor of the receive
    /// path), by ZIP-215's rules: the same verdict as
    /// [`crate::Inbound::verify`]'s batch check on every input.
    pub fn verify_signature(&self) -> Result<(), Invalid> {
        let (key, sig, signed) = self.signature_parts();
        ed25519_zebra::VerificationKey::try_from(key)
            .and_then(|k| k.verify(&sig, &signed))
            .map_err(|_| Invalid::Signature)
    }

    /// The author's key, the signature, and the 49 bytes it signs.
    pub(crate) fn signature_parts(
        &self,
    ) -> (
        ed25519_zebra::VerificationKeyBytes,
        ed25519_zebra::Signature,
        [u8; SIGNED_LEN],
    ) {
        let split = self.bytes.len() - 64;
        let sig_bytes: [u8; 64] = self.bytes[split..].try_into().expect("64 bytes");
        let digest = self.digest;
        let mut signed = [0u8; SIGNED_LEN];
        signed[..SIGNED_PREFIX.len()].copy_from_slice(SIGNED_PREFIX);
        signed[SIGNED_PREFIX.len()..].copy_from_slice(&digest);
        (
            ed25519_zebra::VerificationKeyBytes::from(self.author()),
            ed25519_zebra::Signature::from_bytes(&sig_bytes),
            signed,
        )
    }

    /// Decrypts the body (for reading a stored message).
    pub fn open(&self, group: &Group) -> Result<Vec<u8>, Invalid> {
        let split = self.bytes.len() - 64;
        let header = header_len(self.bytes[0]);
        let cipher = XChaCha20Poly1305::new(group.key().as_bytes().into());
        let body = cipher
            .decrypt(
                XNonce::from_slice(&self.bytes[header - 24..header]),
                Payload {
                    msg: &self.bytes[header + 4..split],
                    aad: &self.bytes[..header],
                },
            )
            .map_err(|_| Invalid::Decrypt)?;
        if self.kind() == Kind::TEXT && std::str::from_utf8(&body).is_err() {
            return Err(Invalid::NotText);
        }
        Ok(body)
    }

    /// The id.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The reconciliation key: (timestamp, id).
    pub fn key(&self) -> crate::Key {
        crate::Key {
            time: self.time(),
            id: self.id,
        }
    }

    /// The group it claims to belong to.
    pub fn group(&self) -> GroupId {
        GroupId(self.bytes[1..33].try_into().expect("32 bytes"))
    }

    /// The author's signing key.
    pub fn author(&self) -> AuthorId {
        self.bytes[33..65].try_into().expect("32 bytes")
    }

    /// The author's timestamp.
    pub fn time(&self) -> Time {
        u64::from_be_bytes(self.bytes[65..73].try_into().expect("8 bytes"))
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        kind_of(&self.bytes).expect("a message is at least a header long")
    }

    /// When every device deletes it, for a disappearing message.
    pub fn expires(&self) -> Option<Time> {
        expires_of(&self.bytes)
    }

    /// The encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoding, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The length of a whole message from its first bytes, up to and
/// including the ciphertext length (102 bytes, or 110 for a message with
/// an expiry): what a store that keeps a message's body apart can tell
/// without reading it. `None` if they do not say, or say more than
/// [`MAX_MESSAGE_LEN`].
pub fn encoded_len(head: &[u8]) -> Option<usize> {
    let version = *head.first()?;
    if version != VERSION && version != VERSION_EXPIRING {
        return None;
    }
    let at = header_len(version);
    let ct = u32::from_be_bytes(head.get(at..at + 4)?.try_into().ok()?) as usize;
    Some(at + 4 + ct.checked_add(64)?).filter(|&len| len <= MAX_MESSAGE_LEN)
}

/// The header length for a message of this version.
fn header_len(version: u8) -> usize {
    if version == VERSION_EXPIRING {
        HEADER_LEN_EXPIRING
    } else {
        HEADER_LEN
    }
}

/// The kind byte of an encoded message (§4), read from its header: what a
/// session counts the frames carrying a stored message by.
pub(crate) fn kind_of(bytes: &[u8]) -> Option<Kind> {
    bytes.get(73).map(|k| Kind(*k))
}

/// The author and kind of an encoded message (§4), read from its header
/// (bytes 33..65 and 73): what a store tells without decoding the body.
pub fn head_of(bytes: &[u8]) -> Option<(AuthorId, Kind)> {
    let author: AuthorId = bytes.get(33..65)?.try_into().ok()?;
    Some((author, kind_of(bytes)?))
}

/// The expiry of an encoded message (one that decodes), read from its
/// header: what a session checks before sending a stored message.
pub(crate) fn expires_of(bytes: &[u8]) -> Option<Time> {
    if bytes.first() == Some(&VERSION_EXPIRING) {
        bytes
            .get(74..82)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    } else {
        None
    }
}
