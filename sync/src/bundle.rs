//! Bundles: what one contact may lack, in one encrypted file for carrying
//! on a removable drive (PROTOCOL.md §15).
//!
//! A bundle is the messages of the logs a pair syncs (their 1:1
//! conversation and the groups both are in), sealed under a key only the
//! two of them can derive. It names neither of them in the clear: its
//! header is a magic, a random salt and a check value that the recipient
//! recognises by trying each of its contacts' keys. Its body is a sequence
//! of frames, each sealed with ChaCha20-Poly1305 under a counter nonce and
//! the header as associated data, the last one marked; so a changed,
//! reordered, truncated or extended file does not open. The messages
//! inside are checked again on import like messages from a session: a
//! bundle carries nothing its maker could not have sent directly.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::codec::Reader;
use crate::crypto::kdf;
use crate::group::GroupId;
use crate::identity::{AuthorId, Contact, Identity};
use crate::limits::{Time, MAX_MESSAGE_LEN};
use crate::message::Message;

/// A bundle's first bytes.
pub const BUNDLE_MAGIC: &[u8; 8] = b"STRANDB\x01";
/// Magic, salt, check.
pub const BUNDLE_HEADER_LEN: usize = 8 + 16 + 16;
/// A frame is flushed once its records pass this size.
const FRAME_TARGET: usize = 1 << 20;
/// Group id and length before each message.
const RECORD_OVERHEAD: usize = 32 + 4;
const TAG_LEN: usize = 16;
/// The largest sealed frame a reader accepts: one full frame, or one
/// record of the largest message.
pub const MAX_BUNDLE_FRAME: usize = if FRAME_TARGET > MAX_MESSAGE_LEN + RECORD_OVERHEAD {
    FRAME_TARGET
} else {
    MAX_MESSAGE_LEN + RECORD_OVERHEAD
} + TAG_LEN;
const VERSION: u8 = 1;
/// Version, maker, creation time.
const META_LEN: usize = 1 + 32 + 8;

/// Why a bundle does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a Strand bundle at all.
    #[error("this is not a Strand bundle")]
    NotABundle,
    /// None of the reader's contacts made it for the reader.
    #[error("this bundle is not for you: none of your contacts made it for you")]
    Foreign,
    /// A frame does not authenticate.
    #[error("the bundle is damaged or was changed (part {0} does not decrypt)")]
    Tampered(u64),
    /// The last frame is missing.
    #[error("the bundle ends early: it was cut short")]
    Truncated,
    /// Bytes after the last frame.
    #[error("the bundle has data after its end")]
    Trailing,
    /// A frame that authenticates but is not well formed.
    #[error("the bundle is malformed: {0}")]
    Malformed(&'static str),
}

/// Who made a bundle, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleMeta {
    /// The maker's signing key.
    pub maker: AuthorId,
    /// When it was made (ms since the Unix epoch, the maker's clock).
    pub created: Time,
}

fn check_value(contact: &Contact, salt: &[u8]) -> [u8; 16] {
    let full = kdf(&contact.token_key, "strand/v1/bundle-check", &[salt]);
    full[..16].try_into().expect("16 bytes")
}

fn frame_key(contact: &Contact, salt: &[u8]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(kdf(&contact.token_key, "strand/v1/bundle-key", &[salt]))
}

fn nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    n[11] = u8::from(last);
    Nonce::from(n)
}

/// Writes a bundle: [`BundleWriter::new`] gives the header, each
/// [`BundleWriter::push`] may give a sealed frame, and
/// [`BundleWriter::finish`] gives the last one. Write them in that order.
pub struct BundleWriter {
    cipher: ChaCha20Poly1305,
    header: [u8; BUNDLE_HEADER_LEN],
    counter: u64,
    buf: Zeroizing<Vec<u8>>,
}

impl BundleWriter {
    /// Starts a bundle from `me` for `contact`, made at `created`. Returns
    /// the writer and the header.
    pub fn new(
        me: &Identity,
        contact: &Contact,
        created: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (BundleWriter, [u8; BUNDLE_HEADER_LEN]) {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let mut header = [0u8; BUNDLE_HEADER_LEN];
        header[..8].copy_from_slice(BUNDLE_MAGIC);
        header[8..24].copy_from_slice(&salt);
        header[24..].copy_from_slice(&check_value(contact, &salt));
        let key = frame_key(contact, &salt);
        let mut buf = Zeroizing::new(Vec::with_capacity(FRAME_TARGET + 4096));
        buf.push(VERSION);
        buf.extend_from_slice(&me.public().sign);
        buf.extend_from_slice(&created.to_be_bytes());
        let writer = BundleWriter {
            cipher: ChaCha20Poly1305::new(key.as_ref().into()),
            header,
            counter: 0,
            buf,
        };
        (writer, header)
    }

    /// Adds a message of `group`. Returns a sealed frame to write when the
    /// records before it filled one.
    pub fn push(&mut self, group: &GroupId, message: &Message) -> Option<Vec<u8>> {
        let bytes = message.as_bytes();
        let out = (!self.buf.is_empty()
            && self.buf.len() + RECORD_OVERHEAD + bytes.len() > FRAME_TARGET)
            .then(|| self.seal(false));
        self.buf.extend_from_slice(&group.0);
        self.buf
            .extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
        out
    }

    /// The last frame (holding whatever is left, perhaps nothing).
    pub fn finish(mut self) -> Vec<u8> {
        self.seal(true)
    }

    fn seal(&mut self, last: bool) -> Vec<u8> {
        let ct = self
            .cipher
            .encrypt(
                &nonce(self.counter, last),
                Payload {
                    msg: &self.buf,
                    aad: &self.header,
                },
            )
            .expect("ChaCha20-Poly1305 seals any length a frame has");
        self.counter += 1;
        self.buf.clear();
        let mut out = Vec::with_capacity(4 + ct.len());
        out.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        out.extend_from_slice(&ct);
        out
    }
}

/// A bundle from `me` for `contact` whose frames hold `frames` exactly,
/// the first one's metadata included, the last one marked last: what a
/// hostile contact can write, since both of them hold the key. A fuzz
/// target reaches what [`BundleReader::open`] reads behind the seal.
pub(crate) fn sealed_for_fuzzing(
    me: &Identity,
    contact: &Contact,
    frames: &[&[u8]],
    rng: &mut (impl RngCore + CryptoRng),
) -> Vec<u8> {
    let (mut writer, header) = BundleWriter::new(me, contact, 0, rng);
    let mut out = header.to_vec();
    for (i, frame) in frames.iter().enumerate() {
        writer.buf.clear();
        writer.buf.extend_from_slice(frame);
        out.extend_from_slice(&writer.seal(i + 1 == frames.len()));
    }
    out
}

/// The contact who made the bundle whose header this is for the reader,
/// if any of `contacts` did. Errors if it is no bundle at all.
pub fn bundle_contact<'a>(
    header: &[u8],
    contacts: impl IntoIterator<Item = &'a Contact>,
) -> Result<Option<&'a Contact>, BundleError> {
    if header.len() < BUNDLE_HEADER_LEN || &header[..8] != BUNDLE_MAGIC {
        return Err(BundleError::NotABundle);
    }
    let (salt, check) = (&header[8..24], &header[24..BUNDLE_HEADER_LEN]);
    Ok(contacts
        .into_iter()
        .find(|c| bool::from(check_value(c, salt).ct_eq(check))))
}

/// Reads a bundle's frames after its header, in order.
pub struct BundleReader {
    cipher: ChaCha20Poly1305,
    header: [u8; BUNDLE_HEADER_LEN],
    counter: u64,
    done: bool,
    meta: Option<BundleMeta>,
}

impl BundleReader {
    /// A reader of the bundle with this header, made by `contact` (see
    /// [`bundle_contact`]).
    pub fn new(header: &[u8; BUNDLE_HEADER_LEN], contact: &Contact) -> BundleReader {
        let key = frame_key(contact, &header[8..24]);
        BundleReader {
            cipher: ChaCha20Poly1305::new(key.as_ref().into()),
            header: *header,
            counter: 0,
            done: false,
            meta: None,
        }
    }

    /// The length of the next sealed frame, from its 4-byte prefix.
    pub fn frame_len(prefix: [u8; 4]) -> Result<usize, BundleError> {
        let len = u32::from_be_bytes(prefix) as usize;
        if !(TAG_LEN..=MAX_BUNDLE_FRAME).contains(&len) {
            return Err(BundleError::Malformed("a part's length is out of bounds"));
        }
        Ok(len)
    }

    /// Opens the next sealed frame (without its length prefix) and returns
    /// its messages, checked for form only (check them as received ones
    /// before storing).
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<(GroupId, Message)>, BundleError> {
        if self.done {
            return Err(BundleError::Trailing);
        }
        let at = self.counter;
        let open = |last| {
            self.cipher.decrypt(
                &nonce(at, last),
                Payload {
                    msg: sealed,
                    aad: &self.header,
                },
            )
        };
        let (plain, last) = match open(false) {
            Ok(p) => (Zeroizing::new(p), false),
            Err(_) => match open(true) {
                Ok(p) => (Zeroizing::new(p), true),
                Err(_) => return Err(BundleError::Tampered(at)),
            },
        };
        self.counter += 1;
        self.done = last;
        let mut r = Reader::new(&plain);
        if at == 0 {
            let meta = r
                .bytes(META_LEN)
                .map_err(|_| BundleError::Malformed("the first part is too short"))?;
            if meta[0] != VERSION {
                return Err(BundleError::Malformed("an unknown bundle version"));
            }
            self.meta = Some(BundleMeta {
                maker: meta[1..33].try_into().expect("32 bytes"),
                created: u64::from_be_bytes(meta[33..41].try_into().expect("8 bytes")),
            });
        }
        let mut out = Vec::new();
        while !r.is_empty() {
            let bad = |_| BundleError::Malformed("a record is cut short");
            let group = GroupId(r.array().map_err(bad)?);
            let len = r.u32().map_err(bad)? as usize;
            if len > MAX_MESSAGE_LEN {
                return Err(BundleError::Malformed("a message is over the size limit"));
            }
            let bytes = r.bytes(len).map_err(bad)?;
            let message = Message::decode(bytes.to_vec())
                .map_err(|_| BundleError::Malformed("a message is not well formed"))?;
            out.push((group, message));
        }
        Ok(out)
    }

    /// Whether the last frame was read: only then is the bundle whole.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Who made it and when (after the first frame).
    pub fn meta(&self) -> Option<BundleMeta> {
        self.meta
    }
}
