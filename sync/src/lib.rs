//! strand-sync: Strand's protocol core — identities, invites, Noise
//! sessions, signed and encrypted group logs, and range-based set
//! reconciliation — with no IO at all.
//!
//! Nothing here touches a clock, a socket, a file or a global RNG: time is a
//! [`Time`] argument (milliseconds since the Unix epoch, from the caller's
//! clock, real or virtual) and randomness comes from an RNG the caller
//! seeds. The same code runs in the node over real links, in the
//! [`harness`] with virtual time, and in the simulator on thousands of
//! devices, and the same seed gives the same bytes.
//!
//! # Shape
//!
//! * [`Identity`] — a user's Ed25519 and X25519 keys; [`Invite`] — the short
//!   code that makes two users contacts; [`Identity::contact`] derives
//!   everything two contacts share (their 1:1 [`Group`], token keys) with no
//!   round trip.
//! * [`Message`] — an immutable, signed group-log entry whose body is
//!   encrypted under the group key; id = hash of its bytes.
//! * [`Endpoint`] — a device's long-lived link state (its keys, its
//!   contacts with their shared keys derived once); it starts the
//!   [`Session`] of every link, dialled or accepted, over any transport.
//! * [`Session`] — one link from its first byte: the accepting side's
//!   [`Beacon`], the dialler's hello to each contact the beacon matches in
//!   turn, a Noise `KK` handshake that only mutual contacts can complete,
//!   then reconciliation and message transfer for every shared group.
//!   Input through `handle_*`, output through `poll_*`; the drive loop is
//!   on the type. Received messages leave it as [`Inbound`] batches, so the
//!   caller can check signatures (in batches, on any core) and store them
//!   where it likes.
//! * [`Store`] — the little a session reads; [`WriteStore`] adds inserts.
//!   [`MemoryStore`] implements both in memory, the node implements them
//!   on redb.
//! * [`Beacon`] — what the accepting side shows first (and a device may
//!   advertise): recognisable only by contacts, fresh each time, the same
//!   size and fill whatever the contact count.
//!
//! # Reconciliation
//!
//! Range-based set reconciliation (Meyer 2023, <https://arxiv.org/abs/2212.13567>;
//! the Negentropy protocol): fingerprint ranges of the `(timestamp, id)`
//! order, split those that differ, list ids where ranges are small, then
//! send what the other side lacks. Fingerprints are `(count, Σ tag)` so a
//! range that differs by one item names it directly. Bytes grow with the
//! difference, not with the log. The wire format is in `PROTOCOL.md`.
//!
//! # Example
//!
//! ```
//! use strand_sync::harness::Pair;
//!
//! // Two users who exchanged invites, each with an empty store, joined by a
//! // virtual link with 50 ms latency.
//! let mut pair = Pair::new(42);
//! pair.a.write("hello bob");
//! pair.b.write("hello alice");
//! pair.connect();
//! pair.drive();
//! assert_eq!(pair.a.texts(), pair.b.texts());
//! assert_eq!(pair.a.texts().len(), 2);
//! ```
#![warn(missing_docs)]

mod bundle;
mod carry;
mod codec;
mod crypto;
mod endpoint;
mod envelope;
mod file;
mod frame;
mod group;
pub mod harness;
mod identity;
mod inbound;
mod invite;
pub mod limits;
mod mailbox;
mod membership;
mod message;
mod preamble;
mod reach;
mod recon;
mod safety;
mod session;
mod store;
mod timer;
mod token;
mod walks;

pub use bundle::{
    bundle_contact, BundleError, BundleMeta, BundleReader, BundleWriter, BUNDLE_HEADER_LEN,
    BUNDLE_MAGIC, MAX_BUNDLE_FRAME,
};
pub use carry::{
    batch_handouts, decode_carrying, encode_carrying, is_carried_kind, is_pool_kind, opened_author,
    Arrival, Carrier, CarryConfig, CarryError, CarryStats, Handout, OpenedFate, PartKey, Spread,
    Spreading, Taken, DEFAULT_HOLD_GAPS, DEFAULT_REACH, DEFAULT_WIDTH, MAX_BATCH, MAX_CARRY_BUDGET,
    MAX_ENVELOPE_LIFETIME, MAX_HOLD, MAX_REACH,
};
pub use codec::{hex, unhex};
pub use crypto::kdf;
pub use endpoint::Endpoint;
pub use envelope::{AckToken, Envelope, EnvelopeError, ENVELOPE_HEADER_LEN, ENVELOPE_SIZES};
pub use file::{
    chunk_count, file_hash, FileHasher, Manifest, CHUNK_LEN, MAX_FILE_LEN, MAX_PREVIEW_LEN,
};
pub use group::{Group, GroupId, GroupKey};
pub use identity::{check_name, mark_invisible, AuthorId, Contact, Identity, PublicIdentity};
pub use inbound::{Inbound, InboundMessage, Verdict};
pub use invite::{Invite, INVITE_PREFIX, MAX_INVITE_REACH_LEN, MAX_INVITE_TEXT_LEN};
pub use limits::{Time, HELLO_LEN, MAX_WELCOMED_MEMBERS};
pub use mailbox::{
    check_mailbox_proof, decode_mailbox, decode_mailbox_code, decode_mailbox_contacts,
    encode_mailbox, encode_mailbox_code, encode_mailbox_contacts, mailbox_proof, MailboxError,
    MailboxProof, MAX_MAILBOX_CONTACTS,
};
pub use membership::{
    decode_chosen_name, encode_chosen_name, Chain, Change, Entry, Epoch, GroupError, Head, KeyWork,
    Member, NamedKeys, Next, PendingWelcomes, Sealing, Transition, Unwritable, WelcomeSize,
    LEAVE_REQUEST_LEN, MAX_CHANGES_OFF_PATH, MAX_GROUP_MEMBERS,
};
pub use message::{encoded_len, head_of, Kind, Message, MessageId};
pub use reach::{relay_epoch, relay_key, Reach};
pub use safety::{safety_number, SafetyNumber, SAFETY_DIGITS, SAFETY_QR_PREFIX};
pub use session::{Config, Event, SentParts, Session, Stats};
pub use store::{Key, KeyRange, MemoryStore, Store, Summary, TagKey, WriteStore};
pub use timer::{decode_timer, encode_timer, MAX_TIMER, MIN_TIMER};
pub use token::{epoch, Advert, Beacon, ADVERT_LEN, BEACON_LEN};
pub use walks::{WalkAccount, WalkAllowance};

/// Bytes that do not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Ended before a field did.
    #[error("truncated")]
    Truncated,
    /// Bytes left over after the last field.
    #[error("trailing bytes")]
    TrailingBytes,
    /// A variable-length integer that is too long or not in shortest form.
    #[error("bad variable-length integer")]
    Varint,
    /// A length or count over its limit.
    #[error("longer than the limit of {max}")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A format version this code does not speak.
    #[error("unsupported version {0}")]
    Version(u8),
    /// A frame type this code does not know.
    #[error("unknown frame type {0:#04x}")]
    UnknownFrame(u8),
    /// Well-formed bytes that break a rule.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Why an invite code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    /// Does not start with `strand1`.
    #[error("not a Strand invite (it should start with \"{INVITE_PREFIX}\")")]
    Prefix,
    /// Characters outside the invite alphabet, or a length no invite has.
    #[error(
        "the invite contains characters or a length that no invite has; was it copied completely?"
    )]
    Encoding,
    /// The checksum does not match: a typo, or the code was altered.
    #[error("the invite's checksum does not match: it has a typo or was altered")]
    Checksum,
    /// An invite from a newer or unknown version of Strand.
    #[error("invite version {0} is not supported by this version of Strand")]
    Version(u8),
    /// A version 1 invite: it cannot prove that its two keys belong
    /// together, so it is refused.
    #[error("this is an old (version 1) invite code, which cannot prove that its keys belong together: ask your contact for a new code from an up-to-date Strand")]
    Unsigned,
    /// The signature does not match the keys and name: the code was
    /// forged or altered.
    #[error(
        "the invite's signature does not match its keys: it was forged or altered, do not use it"
    )]
    Signature,
    /// Structure wrong despite a good checksum.
    #[error("malformed invite: {0}")]
    Malformed(#[from] DecodeError),
    /// The display name is not acceptable.
    #[error("the invite's name {0}")]
    Name(&'static str),
    /// A public key that is not a valid curve point.
    #[error("the invite holds an invalid public key")]
    BadKey,
}

/// Problems with keys or names when making an identity or contact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The display name is not acceptable.
    #[error("the name {0}")]
    Name(&'static str),
    /// Adding yourself as a contact.
    #[error("that is your own invite")]
    OwnKey,
    /// A key that gives no shared secret.
    #[error("the contact's key is weak (a low-order point)")]
    WeakKey,
}

/// Why a message is not valid (and so never stored or forwarded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// The body exceeds [`limits::MAX_BODY_LEN`] (less 8 bytes with an
    /// expiry).
    #[error("its body is {0} bytes, more than a message holds (1 MiB, 8 bytes less with a timer)")]
    BodyTooLong(usize),
    /// The author is not a member of the group.
    #[error("author is not a member of the group")]
    NotMember,
    /// The message belongs to a group not shared on this session.
    #[error("message is for another group")]
    WrongGroup,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// The body does not decrypt under the group key.
    #[error("body does not decrypt")]
    Decrypt,
    /// A text message whose body is not UTF-8.
    #[error("text message is not UTF-8")]
    NotText,
    /// The timestamp is beyond [`limits::MAX_CLOCK_SKEW`] in the future.
    #[error("timestamp {time} is too far ahead of now ({now})")]
    FromTheFuture {
        /// The message's timestamp.
        time: Time,
        /// The receiver's clock.
        now: Time,
    },
    /// A disappearing message whose time is up: every device deletes it
    /// then, and none stores or forwards it after. Not the sender's fault
    /// (its clock may be behind): the session goes on.
    #[error("expired at {expires} (now {now})")]
    Expired {
        /// When it expired.
        expires: Time,
        /// The receiver's clock.
        now: Time,
    },
    /// Valid, but the receiver's storage budget for this sender is spent
    /// (the node's choice, never the protocol's): not stored, offered again
    /// by a later sync.
    #[error("over this device's storage budget for its sender; offered again later")]
    OverBudget,
    /// A message of a kind that holds lasting state (a group change,
    /// welcome or key, a timer, a name, a reach or mailbox record:
    /// [`Kind::lasts`]) written to expire: when it went, what it set would
    /// be undone (a removal lapsing). Refused and never stored; the
    /// session goes on (a device of a version before this rule may relay
    /// it).
    #[error("a message of kind {0} written to expire: group changes, welcomes, keys, timers, names, reach and mailbox records must not")]
    MustLast(u8),
    /// A text or file (manifest or chunk: [`Kind::follows_timer`]) whose
    /// expiry is not a timer after its time: `lasts` ms, less than
    /// [`MIN_TIMER`] or more than [`MAX_TIMER`]. A device writes these
    /// kinds to expire at their time plus the conversation's timer, so
    /// no honest one writes this; a contact who did could have a text
    /// arrive, notify, and vanish a second later. Refused and never
    /// stored; the session goes on (a device of a version before this
    /// rule may relay it).
    #[error(
        "written to disappear {lasts} ms after it was written: a timer is 5 minutes to 366 days"
    )]
    Lifetime {
        /// Its expiry less its time, in ms.
        lasts: Time,
    },
    /// Valid, but written into an old epoch of a private group by someone
    /// who is no longer a member (PROTOCOL.md §14): not stored, offered
    /// again by a later sync (taken if the receiver finds it was wrong).
    #[error("written into an old epoch of a group by someone no longer in it")]
    FormerMember,
}

impl Invalid {
    /// Whether a message refused for this reason may be taken when it is
    /// offered again, as it is: once this device's clock reaches its time
    /// ([`Invalid::FromTheFuture`]), once there is room for its sender
    /// ([`Invalid::OverBudget`]), or if this device finds its author still
    /// in the group ([`Invalid::FormerMember`]). For every other reason
    /// it is refused for good: offered again, it is refused again.
    pub fn may_be_taken_later(&self) -> bool {
        // No wildcard: a new reason is placed here when it is made.
        match self {
            Invalid::FromTheFuture { .. } | Invalid::OverBudget | Invalid::FormerMember => true,
            Invalid::BodyTooLong(_)
            | Invalid::NotMember
            | Invalid::WrongGroup
            | Invalid::Signature
            | Invalid::Decrypt
            | Invalid::NotText
            | Invalid::Expired { .. }
            | Invalid::MustLast(_)
            | Invalid::Lifetime { .. } => false,
        }
    }
}

/// Why a session ended with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The link never got as far as a handshake.
    #[error(transparent)]
    Preamble(#[from] HandshakeError),
    /// The Noise handshake failed after both sides agreed on a contact.
    #[error("handshake failed")]
    Handshake,
    /// A packet failed authentication: altered, reordered or replayed.
    #[error("packet failed authentication")]
    Decrypt,
    /// A packet's plaintext does not parse.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// The peer sent an invalid message.
    #[error("peer sent an invalid message: {0}")]
    Invalid(Invalid),
    /// The peer exceeded a limit.
    #[error("peer exceeded the limit on {0}")]
    Limit(&'static str),
    /// Nothing arrived within the handshake or idle timeout.
    #[error("timed out")]
    Timeout,
    /// The link ended in the middle of a packet or message.
    #[error("link ended mid-packet")]
    Truncated,
    /// The link ended without a goodbye.
    #[error("connection lost")]
    ConnectionLost,
    /// The local store failed.
    #[error("store error: {0}")]
    Store(String),
    /// The session is already closed.
    #[error("session is closed")]
    Closed,
    /// A local failure that should not happen.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Why a link ended before its handshake. The accepting side tells the
/// dialler nothing beyond refusals that look like answers, so these are
/// for the local log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Dialler: the link ended before a beacon arrived.
    #[error("the link ended before the other side's beacon")]
    NoBeacon,
    /// Dialler: the beacon is malformed or not an honest one (wrong size,
    /// or a filter without exactly the honest number of bits).
    #[error("the other side's beacon is malformed")]
    BadBeacon,
    /// Dialler: the beacon matches none of our contacts: a stranger (or a
    /// contact whose beacon did not name us this time, or a beacon this
    /// device made itself, replayed to it).
    #[error("the device is not one of our contacts")]
    NoContact,
    /// Dialler: the beacon matches only contacts we were told to skip
    /// (already connected).
    #[error("the device is a contact we are already connected to")]
    Skipped,
    /// Dialler: every contact the beacon matched refused our hello.
    #[error("every hello was refused")]
    Refused,
    /// Acceptor: the link ended before a hello arrived.
    #[error("the link ended before a hello")]
    NoHello,
    /// Acceptor: a hello of the wrong size.
    #[error("malformed hello")]
    Malformed,
    /// Acceptor: [`limits::MAX_HELLOS_PER_LINK`] hellos matched no
    /// contact: a stranger, or hellos recorded on another link.
    #[error("hellos from an unknown device")]
    Unknown,
}

/// Entry points for the fuzz targets in `sync/fuzz` to decoders that are
/// not public API. Not for applications.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes a packet's plaintext into frames; returns how many.
    pub fn decode_packet(plain: &[u8]) -> Result<usize, crate::DecodeError> {
        crate::frame::decode_packet(plain).map(|frames| frames.len())
    }

    /// A bundle from `me` for `contact` whose sealed frames hold `frames`
    /// as they are (the first one's metadata included), the last marked.
    pub fn bundle_sealed(
        me: &crate::Identity,
        contact: &crate::Contact,
        frames: &[&[u8]],
        rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
    ) -> Vec<u8> {
        crate::bundle::sealed_for_fuzzing(me, contact, frames, rng)
    }

    /// `body` with the checksum invite bytes end in.
    pub fn invite_checksummed(body: &[u8]) -> Vec<u8> {
        crate::invite::checksummed_for_fuzzing(body)
    }

    /// Invite bytes `identity` signed, holding `rest` after its keys.
    pub fn invite_signed(identity: &crate::Identity, rest: &[u8]) -> Vec<u8> {
        crate::invite::signed_for_fuzzing(identity, rest)
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    hex(&bytes[..bytes.len().min(6)])
}
