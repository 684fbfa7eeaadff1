//! The profile file, encrypted as a whole: a redb storage backend that
//! seals every 4 KiB block, behind a small header that holds what the
//! passphrase needs.
//!
//! A seized file shows its size and nothing else: no table names, keys,
//! group ids, times, authors or lengths (redb's pages, B-tree keys
//! included, are ciphertext). Sealing rows one by one instead would have
//! hidden the values but not the order of keys, and the sync protocol
//! needs its keys ordered by time (range-based reconciliation).
//!
//! ```text
//! offset            size   what
//! 0                 2048   header slot A
//! 2048              2048   header slot B
//! 4096              4144   block 0, copy A   } redb's first page (its own header,
//! 12288             4144   block 0, copy B   } rewritten in place at every commit;
//!                                              each copy in 4 KiB pages of its own)
//! 20480 + (i-1)·4144 4144  block i ≥ 1
//!
//! header slot: magic "STRAND\0\x03" (8) ‖ counter u64 LE ‖ Argon2id salt and
//!              parameters (28) ‖ sealed root key (72) ‖ zeros ‖
//!              kdf(0³², "strand/v3/header", everything before it) (32)
//! block slot:  counter u64 LE ‖ nonce (24) ‖ XChaCha20-Poly1305(page key,
//!              4096 bytes, aad = "strand/v3/block" ‖ index u64 LE ‖ counter)
//!              (block 0's counter stored XOR the first 8 bytes of
//!              kdf(mask key, "strand/v3/counter", nonce))
//! ```
//!
//! The page key is `kdf(root, "strand/v3/db-pages")`, the mask key
//! `kdf(root, "strand/v3/counter-mask")`. Every other block's counter is
//! 0, which tells nothing; block 0's would count commits, so it is masked
//! (a file written before it was reads as it is, and is masked at the
//! next commit). Every write of a
//! block takes a fresh random nonce, and the block's index is bound in, so
//! blocks cannot be moved. A slot of zeros is a block never written
//! (redb's "new space reads as zeros").
//!
//! **Crash safety.** redb writes data pages copy-on-write and only its
//! first page in place. That page (block 0) and the header each have two
//! copies; a write goes to the older copy with a higher counter, and a read
//! takes the newest copy that authenticates. A write torn by a crash spoils
//! only the copy being written, so after a crash each reads as before or
//! after, which is all redb asks of a disk. Every other block is written
//! whole or not referenced yet.
//!
//! That needs data pages on disk before a header points at them: every
//! write transaction uses redb's two-phase commit (an extra sync per
//! commit), since a torn data page would not decrypt and redb verifies
//! checksums only while recovering.
//!
//! **Cost.** One XChaCha20-Poly1305 pass per 4 KiB read from disk (redb's
//! page cache holds the hot ones) and per 4 KiB written; 48 bytes per
//! block (1.2 %) and 16 KiB for the header and block 0's copies; two syncs
//! per commit instead of one.
//!
//! **What it shows.** The file's length; the header's counter, which
//! counts passphrase changes (and stronger KDF settings taken); which
//! blocks change when (to someone who sees the file more than once). An attacker who can write the file can zero a block or put
//! back an older copy of it: damage, not forgery.

use std::fs::File;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use rand_core::RngCore;
use redb::{BackendError, StorageBackend};
use zeroize::Zeroizing;

use crate::profile::crypto::KdfParams;

/// First bytes of a sealed profile file.
pub const MAGIC: &[u8; 8] = b"STRAND\0\x03";
/// Logical block (redb page) size.
const BLOCK: usize = 4096;
const HEADER_SLOT: u64 = 2048;
const HEADER: u64 = 2 * HEADER_SLOT;
const NONCE: usize = 24;
const TAG: usize = 16;
/// A block on disk: counter, nonce, ciphertext, tag.
const SLOT: u64 = (8 + NONCE + BLOCK + TAG) as u64;
const SEALED_ROOT_LEN: usize = 72;
/// Where block 0's two copies start (4 KiB-aligned, no page shared).
const ZERO_COPY: [u64; 2] = [HEADER, HEADER + 8192];
/// Where block 1 starts.
const FIRST: u64 = HEADER + 16384;

/// What the header holds: all that is needed before the key is known.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub salt: [u8; 16],
    pub kdf: KdfParams,
    /// The root key sealed under the passphrase key.
    pub sealed_root: Vec<u8>,
}

/// Whether the file at `path` is a sealed profile (by its first bytes).
pub(crate) fn is_sealed(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    File::open(path)
        .and_then(|f| f.read_exact_at(&mut magic, 0))
        .is_ok()
        && &magic == MAGIC
}

fn header_bytes(h: &Header, counter: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SLOT as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&counter.to_le_bytes());
    out.extend_from_slice(&h.kdf.encode(&h.salt));
    out.extend_from_slice(&h.sealed_root);
    out.resize(HEADER_SLOT as usize - 32, 0);
    let sum = blake2s(&out);
    out.extend_from_slice(&sum);
    out
}

/// The header slot's checksum (it detects a torn write, not an attack:
/// the sealed root key authenticates itself).
fn blake2s(data: &[u8]) -> [u8; 32] {
    strand_sync::kdf(&[0; 32], "strand/v3/header", &[data])
}

/// Parses one header slot; `None` if it does not check out.
fn parse_header(slot: &[u8]) -> Option<(u64, Header)> {
    if slot.len() != HEADER_SLOT as usize || &slot[..8] != MAGIC {
        return None;
    }
    let (body, sum) = slot.split_at(slot.len() - 32);
    if blake2s(body) != sum {
        return None;
    }
    let counter = u64::from_le_bytes(body[8..16].try_into().ok()?);
    let (salt, kdf) = KdfParams::decode(&body[16..44])?;
    Some((
        counter,
        Header {
            salt,
            kdf,
            sealed_root: body[44..44 + SEALED_ROOT_LEN].to_vec(),
        },
    ))
}

/// The newest valid header of the file at `path`, and its counter.
pub(crate) fn read_header(path: &Path) -> std::io::Result<(u64, Header)> {
    let file = File::open(path)?;
    read_header_from(&file)
}

/// Where headers are read and written: the profile file. A trait so that
/// a test can fail a write on cue (a disk error cannot be had on demand).
pub(crate) trait Slots {
    /// Reads `buf.len()` bytes at `at`.
    fn get(&self, buf: &mut [u8], at: u64) -> std::io::Result<()>;
    /// Writes `buf` at `at`.
    fn put(&self, buf: &[u8], at: u64) -> std::io::Result<()>;
    /// Syncs what was written.
    fn sync(&self) -> std::io::Result<()>;
}

impl Slots for File {
    fn get(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        self.read_exact_at(buf, at)
    }

    fn put(&self, buf: &[u8], at: u64) -> std::io::Result<()> {
        self.write_all_at(buf, at)
    }

    fn sync(&self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// A header rewrite whose first copy was written and synced, and whose
/// second was not: the new header is the one in force (the newest valid
/// copy), and the old one is still on disk beside it. Carried inside the
/// [`std::io::Error`] that [`write_header`] returns.
#[derive(Debug)]
pub(crate) struct OldCopyLeft(pub std::io::Error);

impl std::fmt::Display for OldCopyLeft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (the new header is in force; its old copy is left)",
            self.0
        )
    }
}

impl std::error::Error for OldCopyLeft {}

/// Whether `e` is [`OldCopyLeft`].
pub(crate) fn old_copy_left(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OldCopyLeft>())
}

/// A header rewrite whose first copy was written but whose sync failed:
/// the new header is read from now on, but after a crash or a restart
/// either copy may be the one in force (the system may have dropped the
/// write). Carried inside the [`std::io::Error`] that [`write_header`]
/// returns.
#[derive(Debug)]
pub(crate) struct Uncertain(pub std::io::Error);

impl std::fmt::Display for Uncertain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (the new header may not be on disk)", self.0)
    }
}

impl std::error::Error for Uncertain {}

/// Whether `e` is [`Uncertain`].
pub(crate) fn uncertain(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Uncertain>())
}

/// Both header slots, each parsed if it checks out.
fn header_slots(file: &impl Slots) -> std::io::Result<[Option<(u64, Header)>; 2]> {
    let mut buf = vec![0u8; HEADER as usize];
    file.get(&mut buf, 0)?;
    Ok([
        parse_header(&buf[..HEADER_SLOT as usize]),
        parse_header(&buf[HEADER_SLOT as usize..]),
    ])
}

/// The newest valid header of the open profile file `file`, and its
/// counter.
pub(crate) fn read_header_from(file: &File) -> std::io::Result<(u64, Header)> {
    let [a, b] = header_slots(file)?;
    match (a, b) {
        (Some(a), Some(b)) => Ok(if a.0 >= b.0 { a } else { b }),
        (Some(x), None) | (None, Some(x)) => Ok(x),
        (None, None) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the profile file's header is damaged",
        )),
    }
}

/// Writes `h` over the older header slot of the file at `path` (or both,
/// for a new file), and syncs.
/// A failure to sync the first of two copies once written is
/// [`Uncertain`]; a failure once it is synced is [`OldCopyLeft`].
pub(crate) fn write_header(file: &impl Slots, h: &Header, fresh: bool) -> std::io::Result<()> {
    if h.sealed_root.len() != SEALED_ROOT_LEN {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "sealed root key of the wrong length",
        ));
    }
    if fresh {
        file.put(&header_bytes(h, 1), 0)?;
        file.put(&header_bytes(h, 0), HEADER_SLOT)?;
        file.sync()
    } else {
        let [a, b] = header_slots(file)?.map(|slot| slot.map(|(counter, _)| counter));
        let newest = a.max(b).unwrap_or(0);
        // Over the copy that is not the newest valid one, synced; then over
        // the other, so no copy of the old header (and of the root key
        // sealed under the old passphrase key) is left.
        let (first, second) = if a == Some(newest) {
            (HEADER_SLOT, 0)
        } else {
            (0, HEADER_SLOT)
        };
        file.put(&header_bytes(h, newest + 1), first)?;
        // Written, the new copy is the newest valid one and is read from
        // here on; synced, it stays so.
        file.sync()
            .map_err(|e| std::io::Error::other(Uncertain(e)))?;
        file.put(&header_bytes(h, newest + 2), second)
            .and_then(|()| file.sync())
            .map_err(|e| std::io::Error::other(OldCopyLeft(e)))
    }
}

/// Overwrites both header slots of `file` (open for writing) with random
/// bytes and syncs: no passphrase opens the file afterwards.
pub(crate) fn destroy_header(file: &File) -> std::io::Result<()> {
    let mut noise = vec![0u8; HEADER as usize];
    crate::profile::os_rng().fill_bytes(&mut noise);
    file.write_all_at(&noise, 0)?;
    file.sync_all()
}

/// Takes the profile file's lock through `file` if no other handle holds
/// it: whether it did. The lock is the file's `flock` (std's
/// [`File::try_lock`] on Linux): it belongs to this opening of the file,
/// goes with its last descriptor, and conflicts with the lock taken
/// through another opening, in this process too. Taken again through the
/// same opening, it is held already and this answers `true`: an open
/// takes it before the passphrase's key is derived
/// ([`crate::Profile::open`]), then hands the file to [`SealedBackend`],
/// where redb takes it again.
pub(crate) fn try_lock(file: &File) -> std::io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Tries the profile file's lock without keeping it: whether another
/// handle holds it now.
pub(crate) fn is_locked(path: &Path) -> bool {
    match File::open(path) {
        Ok(f) => match try_lock(&f) {
            Ok(true) => {
                let _ = f.unlock();
                false
            }
            Ok(false) | Err(_) => true,
        },
        Err(_) => false,
    }
}

/// The redb backend: blocks sealed under the page key.
pub(crate) struct SealedBackend {
    file: File,
    cipher: XChaCha20Poly1305,
    /// What block 0's counter is masked with (see the module's notes).
    mask_key: Zeroizing<[u8; 32]>,
    /// Logical length in bytes.
    len: AtomicU64,
    /// Block 0's newest counter and which copy holds it.
    zero: Mutex<(u64, u64)>,
    /// Whether block 0's newest copy is on disk (synced): the other copy is
    /// only overwritten once it is, so one valid copy always survives.
    zero_synced: std::sync::atomic::AtomicBool,
    /// Writes exclude reads of the same file (a read-modify-write of a
    /// block must not interleave with a read of it).
    io: RwLock<()>,
}

impl std::fmt::Debug for SealedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedBackend")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

fn slot_offset(index: u64, copy: u64) -> u64 {
    if index == 0 {
        ZERO_COPY[copy as usize]
    } else {
        FIRST + (index - 1) * SLOT
    }
}

fn physical_len(blocks: u64) -> u64 {
    if blocks == 0 {
        HEADER
    } else {
        FIRST + (blocks - 1) * SLOT
    }
}

fn corrupt(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

impl SealedBackend {
    /// Opens the sealed file `file` (header already written) with the page
    /// key derived from `root`. Its lock may be taken already through
    /// `file` ([`try_lock`]): redb's taking it again succeeds.
    pub(crate) fn new(file: File, root: &[u8; 32]) -> std::io::Result<SealedBackend> {
        let key = Zeroizing::new(strand_sync::kdf(root, "strand/v3/db-pages", &[]));
        let cipher = XChaCha20Poly1305::new((&*key).into());
        let mask_key = Zeroizing::new(strand_sync::kdf(root, "strand/v3/counter-mask", &[]));
        let phys = file.metadata()?.len();
        let blocks = if phys <= HEADER {
            0
        } else {
            1 + phys.saturating_sub(FIRST) / SLOT
        };
        let backend = SealedBackend {
            file,
            cipher,
            mask_key,
            len: AtomicU64::new(blocks * BLOCK as u64),
            zero: Mutex::new((0, 1)),
            zero_synced: std::sync::atomic::AtomicBool::new(true),
            io: RwLock::new(()),
        };
        if blocks > 0 {
            let (counter, copy, _) = backend.read_zero()?;
            *backend.zero.lock().expect("zero lock") = (counter, copy);
        }
        Ok(backend)
    }

    /// Decrypts the slot at `offset` as block `index`: its counter and
    /// plaintext; `Ok(None)` if it does not authenticate; zeros for a slot
    /// never written.
    fn open_slot(&self, index: u64, offset: u64) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        let mut raw = vec![0u8; SLOT as usize];
        self.file.read_exact_at(&mut raw, offset)?;
        let mut data = vec![0u8; BLOCK];
        Ok(self.open_raw(index, &raw, &mut data).map(|c| (c, data)))
    }

    /// Decrypts the slot `raw` as block `index` into `out` (one block):
    /// its counter, or `None` if it does not authenticate; zeros for a
    /// slot never written.
    fn open_raw(&self, index: u64, raw: &[u8], out: &mut [u8]) -> Option<u64> {
        if raw.iter().all(|b| *b == 0) {
            out.fill(0);
            return Some(0);
        }
        let stored = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
        let nonce = XNonce::from_slice(&raw[8..8 + NONCE]);
        let tag = Tag::from_slice(&raw[8 + NONCE + BLOCK..]);
        // Block 0's counter is masked; a copy an older Strand wrote is not.
        let masked = (index == 0).then(|| stored ^ self.counter_mask(nonce));
        masked.into_iter().chain([stored]).find(|&counter| {
            out.copy_from_slice(&raw[8 + NONCE..8 + NONCE + BLOCK]);
            self.cipher
                .decrypt_in_place_detached(nonce, &aad(index, counter), out, tag)
                .is_ok()
        })
    }

    /// What block 0's counter is stored XOR, for the copy with `nonce`:
    /// unknown without the root key, new with every write.
    fn counter_mask(&self, nonce: &[u8]) -> u64 {
        let mask = strand_sync::kdf(&self.mask_key, "strand/v3/counter", &[nonce]);
        u64::from_le_bytes(mask[..8].try_into().expect("8 bytes"))
    }

    /// Seals `data` (one block) as block `index` with `counter` and
    /// `nonce` into `slot`.
    fn seal_into(
        &self,
        index: u64,
        counter: u64,
        nonce: &[u8],
        data: &[u8],
        slot: &mut [u8],
    ) -> std::io::Result<()> {
        let (head, rest) = slot.split_at_mut(8 + NONCE);
        let stored = if index == 0 {
            counter ^ self.counter_mask(nonce)
        } else {
            counter
        };
        head[..8].copy_from_slice(&stored.to_le_bytes());
        head[8..].copy_from_slice(nonce);
        let (ct, tag_out) = rest.split_at_mut(BLOCK);
        ct.copy_from_slice(data);
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(nonce), &aad(index, counter), ct)
            .map_err(|_| corrupt("encryption failed"))?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// Reads whole blocks `first..` into `out` (a multiple of a block),
    /// none of them block 0: one read of their slots, which lie end to
    /// end.
    fn read_run(&self, first: u64, out: &mut [u8]) -> std::io::Result<()> {
        let mut raw = vec![0u8; out.len() / BLOCK * SLOT as usize];
        self.file.read_exact_at(&mut raw, slot_offset(first, 0))?;
        for (i, (raw, out)) in raw
            .chunks_exact(SLOT as usize)
            .zip(out.chunks_exact_mut(BLOCK))
            .enumerate()
        {
            if self.open_raw(first + i as u64, raw, out).is_none() {
                return Err(corrupt("a block of the profile file does not decrypt"));
            }
        }
        Ok(())
    }

    /// Writes whole blocks `first..` from `data` (a multiple of a block),
    /// none of them block 0: one write of their slots.
    fn write_run(&self, first: u64, data: &[u8]) -> std::io::Result<()> {
        let blocks = data.len() / BLOCK;
        let mut nonces = vec![0u8; blocks * NONCE];
        crate::profile::os_rng().fill_bytes(&mut nonces);
        let mut out = vec![0u8; blocks * SLOT as usize];
        for (i, ((slot, data), nonce)) in out
            .chunks_exact_mut(SLOT as usize)
            .zip(data.chunks_exact(BLOCK))
            .zip(nonces.chunks_exact(NONCE))
            .enumerate()
        {
            self.seal_into(first + i as u64, 0, nonce, data, slot)?;
        }
        self.file.write_all_at(&out, slot_offset(first, 0))
    }

    /// Block 0: the newest copy that authenticates (counter, copy, data).
    fn read_zero(&self) -> std::io::Result<(u64, u64, Vec<u8>)> {
        let a = self.open_slot(0, slot_offset(0, 0))?;
        let b = self.open_slot(0, slot_offset(0, 1))?;
        match (a, b) {
            (Some(a), Some(b)) if b.0 > a.0 => Ok((b.0, 1, b.1)),
            (Some(a), _) => Ok((a.0, 0, a.1)),
            (None, Some(b)) => Ok((b.0, 1, b.1)),
            (None, None) => Err(corrupt(
                "the profile file's first block does not decrypt (wrong key or damaged)",
            )),
        }
    }

    fn read_block(&self, index: u64) -> std::io::Result<Vec<u8>> {
        if index == 0 {
            return Ok(self.read_zero()?.2);
        }
        match self.open_slot(index, slot_offset(index, 0))? {
            Some((_, data)) => Ok(data),
            None => Err(corrupt("a block of the profile file does not decrypt")),
        }
    }

    fn write_block(&self, index: u64, data: &[u8]) -> std::io::Result<()> {
        debug_assert_eq!(data.len(), BLOCK);
        let (counter, offset) = if index == 0 {
            if !self.zero_synced.swap(false, Ordering::AcqRel) {
                self.file.sync_data()?;
            }
            let mut zero = self.zero.lock().expect("zero lock");
            let next = zero.0 + 1;
            let copy = 1 - zero.1;
            *zero = (next, copy);
            (next, slot_offset(0, copy))
        } else {
            (0, slot_offset(index, 0))
        };
        let mut nonce = [0u8; NONCE];
        crate::profile::os_rng().fill_bytes(&mut nonce);
        let mut out = vec![0u8; SLOT as usize];
        self.seal_into(index, counter, &nonce, data, &mut out)?;
        self.file.write_all_at(&out, offset)
    }
}

/// The most blocks one read or write of a run moves (1 MiB).
const RUN: usize = 256;

fn aad(index: u64, counter: u64) -> [u8; 31] {
    let mut out = [0u8; 31];
    out[..15].copy_from_slice(b"strand/v3/block");
    out[15..23].copy_from_slice(&index.to_le_bytes());
    out[23..].copy_from_slice(&counter.to_le_bytes());
    out
}

fn is_full_range(start: Bound<u64>, end: Bound<u64>) -> bool {
    matches!(start, Bound::Unbounded) && matches!(end, Bound::Unbounded)
}

impl StorageBackend for SealedBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.len.load(Ordering::Acquire))
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let _guard = self.io.read().expect("io lock");
        let end = offset + out.len() as u64;
        if end > self.len.load(Ordering::Acquire) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the profile file",
            ));
        }
        let mut at = offset;
        while at < end {
            let index = at / BLOCK as u64;
            let within = (at % BLOCK as u64) as usize;
            let o = (at - offset) as usize;
            let whole = ((end - at) as usize / BLOCK).min(RUN);
            if index > 0 && within == 0 && whole > 0 {
                self.read_run(index, &mut out[o..o + whole * BLOCK])?;
                at += (whole * BLOCK) as u64;
                continue;
            }
            let n = (BLOCK - within).min((end - at) as usize);
            let block = self.read_block(index)?;
            out[o..o + n].copy_from_slice(&block[within..within + n]);
            at += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let _guard = self.io.write().expect("io lock");
        let blocks = len.div_ceil(BLOCK as u64);
        let old_blocks = self.len.load(Ordering::Acquire).div_ceil(BLOCK as u64);
        self.file.set_len(physical_len(blocks))?;
        if blocks < old_blocks && blocks > 0 {
            // Bytes past `len` in the last block must read as zeros if the
            // file grows again: redb expects new space to be zeroed.
            let last = blocks - 1;
            let keep = (len - last * BLOCK as u64) as usize;
            if keep < BLOCK {
                let mut data = self.read_block(last)?;
                data[keep..].fill(0);
                self.write_block(last, &data)?;
            }
        }
        if blocks == 0 {
            *self.zero.lock().expect("zero lock") = (0, 1);
        }
        self.len.store(len, Ordering::Release);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.file.sync_data()?;
        self.zero_synced.store(true, Ordering::Release);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let _guard = self.io.write().expect("io lock");
        let end = offset + data.len() as u64;
        let len = self.len.load(Ordering::Acquire);
        if end > len {
            let blocks = end.div_ceil(BLOCK as u64);
            self.file
                .set_len(physical_len(blocks).max(self.file.metadata()?.len()))?;
            self.len.store(end, Ordering::Release);
        }
        let mut at = offset;
        while at < end {
            let index = at / BLOCK as u64;
            let within = (at % BLOCK as u64) as usize;
            let o = (at - offset) as usize;
            let whole = ((end - at) as usize / BLOCK).min(RUN);
            if index > 0 && within == 0 && whole > 0 {
                self.write_run(index, &data[o..o + whole * BLOCK])?;
                at += (whole * BLOCK) as u64;
                continue;
            }
            let n = (BLOCK - within).min((end - at) as usize);
            if n == BLOCK {
                self.write_block(index, &data[o..o + n])?;
            } else {
                let mut block = self.read_block(index)?;
                block[within..within + n].copy_from_slice(&data[o..o + n]);
                self.write_block(index, &block)?;
            }
            at += n as u64;
        }
        Ok(())
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        if !is_full_range(start, end) {
            return Err(BackendError::Unsupported);
        }
        try_lock(&self.file).map_err(BackendError::Io)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if !is_full_range(start, end) {
            return Err(BackendError::Unsupported);
        }
        self.file.unlock().map_err(BackendError::Io)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        let _ = self.file.unlock();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::fs::OpenOptions;

    use super::*;

    /// The profile file, failing its `fail_at`th write or sync (counted
    /// from 1).
    struct Failing {
        file: File,
        done: Cell<u32>,
        fail_at: u32,
    }

    impl Failing {
        fn fails(&self) -> bool {
            self.done.set(self.done.get() + 1);
            self.done.get() == self.fail_at
        }
    }

    impl Slots for Failing {
        fn get(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
            self.file.get(buf, at)
        }

        fn put(&self, buf: &[u8], at: u64) -> std::io::Result<()> {
            if self.fails() {
                return Err(std::io::Error::other("the disk said no"));
            }
            self.file.put(buf, at)
        }

        fn sync(&self) -> std::io::Result<()> {
            if self.fails() {
                return Err(std::io::Error::other("the disk said no"));
            }
            self.file.sync()
        }
    }

    fn header(byte: u8) -> Header {
        Header {
            salt: [byte; 16],
            kdf: KdfParams::insecure_for_tests(),
            sealed_root: vec![byte; SEALED_ROOT_LEN],
        }
    }

    /// A rewrite that fails at its first copy changes nothing, and says
    /// so; one that fails at its second has put the new header in force,
    /// and says that instead (it said only that it failed, so a user
    /// changing their passphrase was told the old one still held).
    #[test]
    fn a_rewrite_that_fails_says_which_header_is_in_force() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("file");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(HEADER).unwrap();
        write_header(&file, &header(1), true).unwrap();
        let failing = |fail_at| Failing {
            file: file.try_clone().unwrap(),
            done: Cell::new(0),
            fail_at,
        };
        let salts = || {
            let [a, b] = header_slots(&file).unwrap();
            let mut s = [a.map(|h| h.1.salt[0]), b.map(|h| h.1.salt[0])];
            s.sort();
            s
        };

        // The first copy's write fails: nothing changed.
        let e = write_header(&failing(1), &header(2), false).unwrap_err();
        assert!(!old_copy_left(&e) && !uncertain(&e), "{e}");
        assert_eq!(read_header(&path).unwrap().1.salt, [1; 16]);
        assert_eq!(salts(), [Some(1), Some(1)]);

        // Its sync fails: the new header is read, but may not be on disk.
        // The second copy's write, or that one's sync fails: the new
        // header is in force (and, for the write, the old copy is left
        // beside it). Each time, rewriting again overwrites the old copy
        // first.
        let mut old = 1;
        for (fail_at, salt) in [(2, 3), (3, 4), (4, 5)] {
            let e = write_header(&failing(fail_at), &header(salt), false).unwrap_err();
            assert_eq!(
                (uncertain(&e), old_copy_left(&e)),
                (fail_at == 2, fail_at > 2),
                "{fail_at}: {e}"
            );
            assert_eq!(read_header(&path).unwrap().1.salt, [salt; 16]);
            if fail_at < 4 {
                let mut both = [Some(old), Some(salt)];
                both.sort();
                assert_eq!(salts(), both);
            }
            write_header(&file, &header(9), false).unwrap();
            assert_eq!(salts(), [Some(9), Some(9)]);
            old = 9;
        }
    }

    /// Block 0's counter is stored masked, and a copy an older Strand
    /// wrote with its counter in the clear still opens: the newest of the
    /// two copies is read, and the next write masks it.
    #[test]
    fn block_zero_written_before_the_mask_still_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("file");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(HEADER).unwrap();
        write_header(&file, &header(1), true).unwrap();
        let root = [7u8; 32];
        let backend = SealedBackend::new(file.try_clone().unwrap(), &root).unwrap();
        for byte in [1u8, 2] {
            backend.write_block(0, &[byte; BLOCK]).unwrap();
        }
        let stored = |copy: u64| {
            let mut raw = [0u8; 8 + NONCE];
            file.read_exact_at(&mut raw, slot_offset(0, copy)).unwrap();
            (
                u64::from_le_bytes(raw[..8].try_into().unwrap()),
                raw[8..].to_vec(),
            )
        };
        for copy in [0, 1] {
            let (masked, nonce) = stored(copy);
            assert!(masked > 2, "masked: {masked}");
            // As an older Strand wrote it: the counter in the clear.
            let clear = masked ^ backend.counter_mask(&nonce);
            file.write_all_at(&clear.to_le_bytes(), slot_offset(0, copy))
                .unwrap();
        }
        assert_eq!([stored(0).0, stored(1).0], [1, 2]);
        drop(backend);

        let backend = SealedBackend::new(file.try_clone().unwrap(), &root).unwrap();
        assert_eq!(backend.read_zero().unwrap(), (2, 1, vec![2u8; BLOCK]));
        backend.write_block(0, &[3u8; BLOCK]).unwrap();
        let (masked, _) = stored(0);
        assert!(masked > 3, "masked again: {masked}");
        assert_eq!(backend.read_zero().unwrap(), (3, 0, vec![3u8; BLOCK]));
    }
}
