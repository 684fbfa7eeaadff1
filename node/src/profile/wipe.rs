//! Panic wipe: destroy a profile so that no passphrase opens it again.
//!
//! Order matters, so that a wipe cut short (power, a seized laptop being
//! unplugged) already leaves nothing readable:
//!
//! 1. **The keys.** The file's header (both copies of the sealed root key,
//!    see [`crate::profile::sealed`]) is overwritten with random bytes and flushed to
//!    disk. Everything else in the file is sealed under a key derived from
//!    the root key, so once it is gone the rest is ciphertext without a
//!    key. (For a profile file from before sealing, every copy in the file
//!    of the sealed root key and the sealed identity.)
//! 2. **The file.** The whole database file is overwritten with random
//!    bytes and flushed, then truncated.
//! 3. **The folder.** Every file in the profile folder is removed, then the
//!    folder.
//!
//! A sealed copy of the file that the first unlock of a profile from
//! before sealing was making (`strand.redb.sealing`, left if that unlock
//! was killed before its rename), and the file a create was making
//! (`strand.redb.new`), hold the root key sealed under the passphrase
//! too: their headers go in step 1 and their bytes in step 2.
//!
//! A wipe takes the sealed profile file's lock as an open does
//! (`profile::lock_sealed`) before it overwrites anything, and holds it
//! until the whole file is overwritten: a profile in use (a running node)
//! is refused as [`ProfileError::InUse`], and so is an open that comes
//! while the wipe runs, rather than a node running on a file whose keys
//! are then overwritten. After that the file holds nothing to open (an
//! open of what is left fails), and it is closed before the folder goes:
//! on NFS a file still open is renamed, not removed.
//!
//! What it cannot do: storage that remaps writes (SSDs and flash wear
//! levelling, copy-on-write or snapshotting file systems such as btrfs and
//! ZFS) may keep old blocks the overwrite never reaches; backups and copies
//! of the folder are untouched; swap may hold pages of a running process.
//! Encrypted storage (full-disk encryption) is the defence for those; see
//! the README.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rand_core::RngCore;
use redb::ReadableDatabase;

use crate::profile::open_db;
use crate::profile::schema::{meta, DB_FILE, META};
use crate::profile::ProfileError;

/// Bytes overwritten per write.
const CHUNK: usize = 1 << 20;

/// What a wipe did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiped {
    /// Copies of the sealed keys found and overwritten (step 1).
    pub key_copies: usize,
    /// Bytes of the database file overwritten (step 2).
    pub bytes: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ProfileError + '_ {
    move |e| crate::profile::io_error(path, e)
}

/// Step 1 alone: overwrites every copy of the sealed root key and
/// identity in `dir`'s database file (and in a sealed copy of it an
/// unlock cut short left beside it), and flushes. No passphrase opens the
/// profile afterwards. Needs the profile not to be in use
/// ([`ProfileError::InUse`]). Returns the copies overwritten.
pub fn destroy_keys(dir: &Path) -> Result<usize, ProfileError> {
    destroy_keys_holding(dir).map(|(copies, _held)| copies)
}

/// [`destroy_keys`], and for a sealed profile its file, which holds the
/// profile's lock from before anything was overwritten: the caller keeps
/// it for as long as no open may come in.
fn destroy_keys_holding(dir: &Path) -> Result<(usize, Option<File>), ProfileError> {
    let (copies, held) = destroy_file_keys(dir)?;
    Ok((copies + destroy_sealing_keys(dir)?, held))
}

/// Where the first unlock of a profile from before sealing makes its
/// sealed copy, before the copy takes the file's name
/// (`profile::seal_file`).
pub(crate) fn sealing_path(dir: &Path) -> PathBuf {
    dir.join(format!("{DB_FILE}.sealing"))
}

/// The sealed files a cut-short operation can leave in `dir` beside the
/// profile's: the copy a first unlock of a profile from before sealing
/// makes, and the file a create makes before it takes the profile's name.
fn left_files(dir: &Path) -> [PathBuf; 2] {
    [sealing_path(dir), dir.join(crate::profile::MAKING_FILE)]
}

/// `path`, if it is a file of its own (a link is only removed, never
/// written through; anything else is left for the folder's removal, and
/// does not stop a wipe).
fn sealing_file(path: PathBuf) -> Result<Option<PathBuf>, ProfileError> {
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_file() => Ok(Some(path)),
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::remove_file(&path).map_err(io(&path))?;
            Ok(None)
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::profile::io_error(&path, e)),
    }
}

/// Overwrites the header (both copies of the sealed root key) of each
/// sealed file a cut-short operation left in `dir` ([`left_files`]).
/// Returns the copies overwritten.
fn destroy_sealing_keys(dir: &Path) -> Result<usize, ProfileError> {
    let mut copies = 0;
    for path in left_files(dir) {
        let Some(path) = sealing_file(path)? else {
            continue;
        };
        if crate::profile::sealed::is_sealed(&path) {
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|file| crate::profile::sealed::destroy_header(&file))
                .map_err(io(&path))?;
            copies += 2;
        }
    }
    Ok(copies)
}

/// Destroys the sealed files a cut-short operation left in `dir`
/// ([`left_files`]): their keys, then their bytes, then the files.
pub(crate) fn destroy_sealing(dir: &Path) -> Result<(), ProfileError> {
    destroy_sealing_keys(dir)?;
    for path in left_files(dir) {
        let Some(path) = sealing_file(path)? else {
            continue;
        };
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        crate::profile::overwrite(&file).map_err(io(&path))?;
        drop(file);
        std::fs::remove_file(&path).map_err(io(&path))?;
    }
    Ok(())
}

/// [`destroy_keys`] for the database file itself. A sealed file's lock
/// is taken first, as an open takes it (`profile::lock_sealed`:
/// [`ProfileError::InUse`] if a node holds it), the header overwritten
/// through that very opening, and the file returned still holding it.
fn destroy_file_keys(dir: &Path) -> Result<(usize, Option<File>), ProfileError> {
    let path = dir.join(DB_FILE);
    if !path.exists() {
        return Err(ProfileError::NotFound(dir.to_path_buf()));
    }
    if crate::profile::sealed::is_sealed(&path) {
        let file = crate::profile::lock_sealed(dir)?;
        #[cfg(test)]
        if let Some(pause) = PAUSE_WHILE_WIPING.with(|pause| pause.borrow_mut().take()) {
            pause();
        }
        crate::profile::sealed::destroy_header(&file).map_err(io(&path))?;
        return Ok((2, Some(file)));
    }
    // Neither sealed nor redb: the keys were destroyed by a wipe that was
    // cut short; let this one finish.
    let mut magic = [0u8; 9];
    let redb_file = std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"redb\x1a\x0a\xa9\x0d\x0a";
    if !redb_file {
        return Ok((0, None));
    }
    // Read what to look for; opening also proves nobody else holds it.
    let needles: Vec<Vec<u8>> = {
        let db = open_db(dir, false)?;
        let txn = db.begin_read().map_err(crate::profile::db_error)?;
        let m = txn.open_table(META).map_err(crate::profile::db_error)?;
        let mut out = Vec::new();
        for name in [meta::ROOT, meta::IDENTITY] {
            if let Some(v) = m.get(name).map_err(crate::profile::db_error)? {
                if v.value().len() >= 32 {
                    out.push(v.value().to_vec());
                }
            }
        }
        out
    };
    let path = dir.join(DB_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    let longest = needles.iter().map(Vec::len).max().unwrap_or(0);
    let mut found = Vec::new();
    let mut buf = vec![0u8; CHUNK + longest];
    let mut at = 0u64;
    loop {
        file.seek(SeekFrom::Start(at)).map_err(io(&path))?;
        let mut n = 0;
        while n < buf.len() {
            let r = file.read(&mut buf[n..]).map_err(io(&path))?;
            if r == 0 {
                break;
            }
            n += r;
        }
        for needle in &needles {
            for (i, w) in buf[..n].windows(needle.len()).enumerate() {
                if w == needle.as_slice() {
                    let pos = at + i as u64;
                    if !found.contains(&(pos, needle.len())) {
                        found.push((pos, needle.len()));
                    }
                }
            }
        }
        if n < buf.len() {
            break;
        }
        at += CHUNK as u64;
    }
    let mut rng = crate::profile::os_rng();
    for (pos, len) in &found {
        let mut noise = vec![0u8; *len];
        rng.fill_bytes(&mut noise);
        file.seek(SeekFrom::Start(*pos)).map_err(io(&path))?;
        file.write_all(&noise).map_err(io(&path))?;
    }
    file.sync_all().map_err(io(&path))?;
    Ok((found.len(), None))
}

/// Destroys the profile in `dir`: its keys first, then the whole database
/// file, then the folder (see the module documentation for the order and
/// what it cannot erase). The profile must not be in use: stop its node
/// first ([`ProfileError::InUse`]). A sealed profile's lock is held from
/// before its keys go until the whole file is overwritten, so no open
/// comes in meanwhile.
pub fn wipe(dir: &Path) -> Result<Wiped, ProfileError> {
    let (key_copies, held) = destroy_keys_holding(dir)?;
    let path = dir.join(DB_FILE);
    let file = match held {
        Some(file) => file,
        None => OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io(&path))?,
    };
    let len = file.metadata().map_err(io(&path))?.len();
    crate::profile::overwrite(&file).map_err(io(&path))?;
    // The lock goes with the file's last bytes: nothing is left to open.
    // Not later: on NFS a file still open is not removed but renamed, and
    // the folder's removal would fail.
    drop(file);
    destroy_sealing(dir)?;
    std::fs::remove_dir_all(dir).map_err(io(dir))?;
    Ok(Wiped {
        key_copies,
        bytes: len,
    })
}

/// What a test runs as a wipe holds a sealed profile's lock, before it
/// overwrites anything ([`PAUSE_WHILE_WIPING`]).
#[cfg(test)]
type WhileWiping = Box<dyn FnOnce()>;

#[cfg(test)]
thread_local! {
    /// Run by the next wipe of a sealed profile on this thread (or
    /// destroying of its keys) once it has taken the profile's lock and
    /// before it overwrites the header: a test opens the profile at that
    /// moment as a node would. Per thread, so no other test is stopped.
    static PAUSE_WHILE_WIPING: std::cell::RefCell<Option<WhileWiping>> =
        const { std::cell::RefCell::new(None) };
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::profile::Profile;

    /// Regression (node review): a wipe of a sealed profile checked that
    /// no node held the profile's lock, then overwrote the header without
    /// holding the lock itself, so a node that opened the profile in
    /// between ran on a file whose keys were then gone. The wipe now
    /// takes the lock as an open does and holds it to the end: the open
    /// in between is refused as in use, and the wipe completes. The wipe
    /// stops between taking the lock and overwriting the header
    /// ([`PAUSE_WHILE_WIPING`]), and the profile is opened there. (Fails
    /// with `destroy_file_keys` checking `is_locked` and opening the file
    /// without the lock, as before: that open succeeds.)
    #[test]
    fn a_profile_opened_while_it_is_wiped_is_refused_as_in_use() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        drop(crate::profile::alice_with_bob(&dir));
        assert!(Profile::is_sealed(&dir));
        // What the open during the wipe gave.
        let opened: Rc<RefCell<Option<Result<Profile, ProfileError>>>> = Rc::default();
        let (opening, at) = (opened.clone(), dir.clone());
        let pause: WhileWiping = Box::new(move || {
            *opening.borrow_mut() = Some(Profile::open(&at, "pass"));
        });
        PAUSE_WHILE_WIPING.with(|slot| *slot.borrow_mut() = Some(pause));

        let wiped = wipe(&dir);
        let opened = opened.borrow_mut().take();
        match opened {
            Some(Err(ProfileError::InUse(_))) => {}
            Some(Ok(profile)) => {
                drop(profile);
                panic!("the profile opened during the wipe, which gave {wiped:?}");
            }
            Some(Err(e)) => panic!("the open during the wipe failed otherwise: {e:?}"),
            None => panic!("the wipe did not stop where the test asked"),
        }
        let wiped = wiped.unwrap();
        assert_eq!(wiped.key_copies, 2);
        assert!(!dir.exists(), "the folder is gone");
    }
}
