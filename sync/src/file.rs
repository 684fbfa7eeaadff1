//! Files (PROTOCOL.md §4.2): a file is a FILE message (its manifest) and
//! the CHUNK messages that hold its bytes, in the same conversation.
//!
//! Chunks are ordinary messages: signed, encrypted, synced and resumed like
//! any other, and content-addressed by their message ids, which the
//! manifest lists (with their timestamps: their sync keys). The manifest
//! also carries the whole file's size and BLAKE2s-256 hash, its name and
//! type, and for an image a small preview, so a receiver shows the file at
//! once and checks every byte when it is put together.

use crate::codec::Reader;
use crate::crypto::hash;
use crate::message::MessageId;
use crate::store::Key;
use crate::DecodeError;

/// Bytes of file data per chunk message.
pub const CHUNK_LEN: usize = 256 * 1024;
/// The largest file: 256 MiB (1,024 chunks).
pub const MAX_FILE_LEN: u64 = 256 * 1024 * 1024;
/// The largest preview in a manifest.
pub const MAX_PREVIEW_LEN: usize = 32 * 1024;

const VERSION: u8 = 1;

/// What a FILE message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The file's name as its sender gave it (a receiver makes its own
    /// safe name from it before writing anything).
    pub name: String,
    /// A media type such as `image/png`, or empty.
    pub mime: String,
    /// Its length in bytes.
    pub size: u64,
    /// BLAKE2s-256 of its bytes ([`file_hash`]).
    pub hash: [u8; 32],
    /// The sync keys of its chunk messages, in file order.
    pub chunks: Vec<Key>,
    /// A small image (PNG or JPEG) to show before the chunks arrive.
    pub preview: Option<Vec<u8>>,
}

/// The hash a manifest carries for a file's bytes.
pub fn file_hash(data: &[u8]) -> [u8; 32] {
    hash(&[b"strand/v1/file", &[0], data])
}

/// [`file_hash`] a piece at a time.
#[derive(Clone)]
pub struct FileHasher(blake2::Blake2s256);

impl FileHasher {
    /// Starts a hash.
    pub fn new() -> FileHasher {
        use blake2::Digest;
        let mut h = blake2::Blake2s256::new();
        h.update(b"strand/v1/file");
        h.update([0u8]);
        FileHasher(h)
    }

    /// Adds the next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        use blake2::Digest;
        self.0.update(data);
    }

    /// The hash of everything added.
    pub fn finish(self) -> [u8; 32] {
        use blake2::Digest;
        self.0.finalize().into()
    }
}

impl Default for FileHasher {
    fn default() -> Self {
        FileHasher::new()
    }
}

/// How many chunks a file of `size` bytes has.
pub fn chunk_count(size: u64) -> usize {
    size.div_ceil(CHUNK_LEN as u64) as usize
}

impl Manifest {
    /// The FILE message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.push(self.mime.len() as u8);
        out.extend_from_slice(self.mime.as_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.hash);
        for k in &self.chunks {
            out.extend_from_slice(&k.time.to_be_bytes());
            out.extend_from_slice(&k.id.0);
        }
        let preview = self.preview.as_deref().unwrap_or_default();
        out.extend_from_slice(&(preview.len() as u32).to_be_bytes());
        out.extend_from_slice(preview);
        out
    }

    /// Reads a FILE message body, checking every bound.
    pub fn decode(body: &[u8]) -> Result<Manifest, DecodeError> {
        let mut r = Reader::new(body);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let n = u16::from_be_bytes(r.array()?) as usize;
        if n == 0 || n > 255 {
            return Err(DecodeError::Invalid("a file name of 1 to 255 bytes"));
        }
        let name = std::str::from_utf8(r.bytes(n)?)
            .map_err(|_| DecodeError::Invalid("a file name that is not UTF-8"))?
            .to_owned();
        let m = r.u8()? as usize;
        let mime = std::str::from_utf8(r.bytes(m)?)
            .ok()
            .filter(|s| s.is_ascii())
            .ok_or(DecodeError::Invalid("a media type that is not ASCII"))?
            .to_owned();
        let size = r.u64()?;
        if size > MAX_FILE_LEN {
            return Err(DecodeError::TooLong {
                max: MAX_FILE_LEN as usize,
            });
        }
        let hash = r.array()?;
        let count = chunk_count(size);
        let mut chunks = Vec::with_capacity(count);
        for _ in 0..count {
            let time = r.u64()?;
            let id = MessageId(r.array()?);
            chunks.push(Key { time, id });
        }
        // Each part once: a description listing one stored part a
        // thousand times would show a whole large file for the bytes of
        // one part, written out at every save.
        let mut sorted: Vec<&Key> = chunks.iter().collect();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(DecodeError::Invalid("a part listed twice"));
        }
        let p = r.u32()? as usize;
        if p > MAX_PREVIEW_LEN {
            return Err(DecodeError::TooLong {
                max: MAX_PREVIEW_LEN,
            });
        }
        let preview = (p > 0)
            .then(|| r.bytes(p).map(<[u8]>::to_vec))
            .transpose()?;
        r.finish()?;
        Ok(Manifest {
            name,
            mime,
            size,
            hash,
            chunks,
            preview,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            name: "notes.pdf".into(),
            mime: "application/pdf".into(),
            size: CHUNK_LEN as u64 * 2 + 5,
            hash: [7; 32],
            chunks: (0..3)
                .map(|i| Key {
                    time: 1000 + i,
                    id: MessageId([i as u8; 32]),
                })
                .collect(),
            preview: Some(vec![1, 2, 3]),
        }
    }

    #[test]
    fn manifests_round_trip_and_bad_ones_are_refused() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        for cut in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Manifest::decode(&longer).is_err());
        // A size that needs more chunks than are listed.
        let mut lying = m.clone();
        lying.chunks.pop();
        assert!(Manifest::decode(&lying.encode()).is_err());
        // A part listed twice.
        let mut twice = m.clone();
        twice.chunks[2] = twice.chunks[0];
        assert_eq!(
            Manifest::decode(&twice.encode()),
            Err(DecodeError::Invalid("a part listed twice"))
        );
        let mut big = m.clone();
        big.size = MAX_FILE_LEN + 1;
        assert!(Manifest::decode(&big.encode()).is_err());
        assert_eq!(chunk_count(0), 0);
        assert_eq!(chunk_count(1), 1);
        assert_eq!(chunk_count(CHUNK_LEN as u64), 1);
        assert_eq!(chunk_count(CHUNK_LEN as u64 + 1), 2);
        let mut h = FileHasher::new();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), file_hash(b"hello world"));
    }
}
