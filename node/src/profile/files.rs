//! Files in conversations (`sync/PROTOCOL.md` §4.2).
//!
//! Sending reads the file a chunk at a time: each 256 KiB becomes a CHUNK
//! message, its parts stored 16 chunks to a transaction but not listed
//! (`sending` in [`crate::profile::schema`]); when the file is all read,
//! one transaction lists the chunks and stores the FILE message (the
//! manifest: name, type, size, hash, the chunks' keys, and for an image a
//! small preview) like a text, so conversations show it. A send that fails
//! or is cut short leaves nothing a contact could receive. Chunks
//! sync like any message and resume wherever a link broke; a file is put
//! together only when every chunk is here, in the folder asked for, into
//! a file with no name yet (or, where the filesystem has no such files, a
//! hidden one only its user can read), checked against the manifest's
//! hash, and only then given its (safe) name.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rand_core::{CryptoRng, RngCore};
use redb::{ReadableDatabase, ReadableTable};
use strand_sync::{
    chunk_count, AuthorId, Group, GroupId, Key, Kind, Manifest, Message, Time, CHUNK_LEN,
    MAX_FILE_LEN, MAX_PREVIEW_LEN,
};

use crate::profile::db_error;
use crate::profile::schema::{MESSAGES, SENDING, SHOWN};
use crate::profile::store::{put_body, remove_body, split, table_key, Inserter};
use crate::profile::{Profile, ProfileError};

/// Chunks stored per write transaction when sending (4 MiB).
const CHUNKS_PER_TXN: usize = 16;
/// Images up to this size get a preview.
const MAX_PREVIEWED: u64 = 32 * 1024 * 1024;
/// A preview's longest side, in pixels.
const PREVIEW_SIDE: u32 = 160;

/// Where a file goes: a contact's conversation or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversation<'a> {
    /// The 1:1 conversation with this contact.
    Contact(&'a str),
    /// This group (name, key or id prefix).
    Group(&'a str),
}

/// Files [`Profile::files_at`] looks at for one time: a person sends
/// files one at a time, so a few is plenty.
const MAX_FILES_AT: usize = 4;

/// Rows [`Profile::files_at`] reads at most: a file's parts and its
/// description (at most 1,025), and room for others at that time. A
/// member who backdates thousands of messages to a file's time can push
/// its description past this: only the arrival report misses it (saving
/// reads the description itself).
const MAX_ROWS_AT: usize = 4096;

/// Told how far a long step got: done and total, in the step's own unit
/// (bytes of a file, messages of a bundle written).
pub type Report<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// A file some of whose parts just arrived ([`Profile::files_arriving`]).
pub(crate) struct Arriving {
    /// The file message's key.
    pub key: Key,
    /// What it is and how much of it is here.
    pub file: FileInfo,
    /// Its author, as logs and events name them
    /// ([`Profile::author_name`]).
    pub from: String,
    /// The group it was written to, as notices name it, and its key; none
    /// for a 1:1 conversation.
    pub group: Option<(String, String)>,
}

/// A file message as a conversation shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileInfo {
    /// Its name, as the sender gave it.
    pub name: String,
    /// Its media type, or empty.
    pub mime: String,
    /// Its size in bytes.
    pub size: u64,
    /// Chunks held here.
    pub have: usize,
    /// Chunks in all.
    pub total: usize,
    /// A small PNG or JPEG, for images.
    pub preview: Option<Vec<u8>>,
}

impl FileInfo {
    /// Every chunk is here: it can be saved.
    pub fn complete(&self) -> bool {
        self.have == self.total
    }
}

/// What sending a file stored: the manifest's key first, then the
/// chunks', to hand to live sessions.
#[derive(Debug)]
pub struct FileSent {
    /// The conversation's log.
    pub group: GroupId,
    /// The manifest.
    pub manifest: Key,
    /// The chunks.
    pub chunks: Vec<Key>,
}

fn media_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" | "md" => "text/plain",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "mp4" => "video/mp4",
        "zip" => "application/zip",
        _ => "",
    }
}

/// A file read and its parts stored, not listed yet.
struct Staged {
    size: u64,
    hash: [u8; 32],
    /// The file's bytes, if it is an image to preview.
    image: Option<Vec<u8>>,
}

/// Whether a file of this type and size gets a preview.
fn previewed(mime: &str, size: u64) -> bool {
    (mime == "image/png" || mime == "image/jpeg") && size <= MAX_PREVIEWED
}

/// A small JPEG of the image `bytes` (the file as read and sent), if it
/// decodes and the result fits a manifest.
fn preview_of(bytes: &[u8]) -> Option<Vec<u8>> {
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .decode()
        .ok()?;
    let thumb = img.thumbnail(PREVIEW_SIDE, PREVIEW_SIDE).to_rgb8();
    for quality in [80, 60, 40] {
        let mut out = Vec::new();
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        if thumb.write_with_encoder(enc).is_ok() && out.len() <= MAX_PREVIEW_LEN {
            return Some(out);
        }
    }
    None
}

/// A name safe to create in a folder: the last path part, without
/// separators, control characters or a leading dot, with no invisible or
/// direction-changing characters (so `invoice\u{202e}gpj.sh` saves as
/// `invoicegpj.sh`, what it is), and at most 200 bytes (a longer one
/// loses the end of its stem, not its extension).
pub fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = strand_sync::mark_invisible(last)
        .filter(|(_, invisible)| !invisible)
        .map(|(c, _)| if c.is_control() || c == ':' { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.');
    if trimmed.is_empty() {
        return "file".into();
    }
    if trimmed.len() <= MAX_NAME_BYTES {
        return trimmed.into();
    }
    // Cut the stem, keeping a short extension.
    match trimmed.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= MAX_EXT_BYTES => {
            format!(
                "{}.{ext}",
                crate::profile::cut(stem, MAX_NAME_BYTES - 1 - ext.len())
            )
        }
        _ => crate::profile::cut(trimmed, MAX_NAME_BYTES).into(),
    }
}

/// Longest name [`safe_name`] gives, in bytes: room for a " (N)" that
/// tells it from a name already taken, within the 255 bytes Linux allows.
const MAX_NAME_BYTES: usize = 200;
/// Longest extension [`safe_name`] keeps when it shortens a name.
const MAX_EXT_BYTES: usize = 16;

impl Profile {
    /// The log a new message to `to` goes in, and its expiry from `now`.
    pub(crate) fn log_for(
        &self,
        to: Conversation<'_>,
        now: Time,
    ) -> Result<(Group, Option<Time>), ProfileError> {
        match to {
            Conversation::Contact(c) => {
                if self.contact(c)?.mailbox {
                    return Err(ProfileError::Mailbox(format!(
                        "{c:?} is a mailbox: it carries sealed messages for its owner and reads nothing; write to its owner instead"
                    )));
                }
                let group = self.direct_group(c)?;
                let expires = self.timer(c)?.map(|t| now.saturating_add(t));
                Ok((group, expires))
            }
            Conversation::Group(g) => {
                let chain = self.chain_named(g)?;
                let head = chain
                    .writable(&self.identity().public().sign)
                    .map_err(|e| ProfileError::unwritable(&chain.last().name, e))?;
                let expires = self.group_timer(g)?.map(|t| now.saturating_add(t));
                Ok((head.group().clone(), expires))
            }
        }
    }

    /// Sends the file at `path` to a conversation: stores its chunks and
    /// its manifest here, queued for delivery.
    pub fn send_file(
        &self,
        to: Conversation<'_>,
        path: &Path,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<FileSent, ProfileError> {
        self.send_file_reporting(to, path, now, rng, &|_, _| {})
    }

    /// [`Profile::send_file`], telling `report` the bytes sealed so far and
    /// the file's size as it goes. The file appears (chunks and manifest)
    /// at once, when it is all read; a send that fails leaves nothing.
    pub fn send_file_reporting(
        &self,
        to: Conversation<'_>,
        path: &Path,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
        report: Report<'_>,
    ) -> Result<FileSent, ProfileError> {
        let (mut file, meta) = open_regular(path)?;
        if meta.len() > MAX_FILE_LEN {
            return Err(ProfileError::NoSuchFile(format!(
                "{} is {} MiB; files of up to {} MiB can be sent",
                path.display(),
                meta.len() >> 20,
                MAX_FILE_LEN >> 20
            )));
        }
        let (group, expires) = self.log_for(to, now)?;
        let out = Outgoing {
            to,
            group: &group,
            expires,
            path,
            len: meta.len(),
            now,
        };
        self.send_read(&out, &mut file, rng, report)
    }

    /// Sends what `file` holds: the file `out` describes.
    ///
    /// Each chunk's parts are stored as it is sealed, 16 chunks to a
    /// transaction, and noted in [`SENDING`]; nothing reads them yet. When
    /// the file is all read, one transaction writes the chunks' `messages`
    /// rows and the manifest: a contact never receives chunks of a file
    /// whose manifest never comes. If anything fails before that, the
    /// parts are deleted (or, if even that fails, when the profile is next
    /// opened: [`Profile::drop_unsent`]).
    fn send_read(
        &self,
        out: &Outgoing<'_>,
        file: &mut dyn Read,
        rng: &mut (impl RngCore + CryptoRng),
        report: Report<'_>,
    ) -> Result<FileSent, ProfileError> {
        let Outgoing {
            group,
            expires,
            path,
            len,
            now,
            ..
        } = *out;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(safe_name)
            .ok_or_else(|| ProfileError::File("the file's name is not UTF-8".into()))?;
        let mime = media_type(path);
        let mut chunks = Vec::with_capacity(chunk_count(len));
        let mut heads = Vec::with_capacity(chunk_count(len));
        let staged = self.stage_chunks(out, file, rng, report, &mut chunks, &mut heads);
        let sent = staged.and_then(|Staged { size, hash, image }| {
            // Made before the check below, from the bytes sent: decoding a
            // large photo takes a while, and a member removed meanwhile
            // must not get the file; the file on disk may have changed
            // since it was read.
            let preview = image.as_deref().and_then(preview_of);
            self.still_goes_to(out)?;
            let manifest = Manifest {
                name,
                mime: mime.to_owned(),
                size,
                hash,
                chunks: chunks.clone(),
                preview,
            };
            let m = Message::create_expiring(
                &self.identity(),
                group,
                now,
                expires,
                Kind::FILE,
                &manifest.encode(),
                rng,
            )
            .map_err(ProfileError::Message)?;
            let (id, me) = (group.id, self.identity().public().sign);
            self.write_txn(move |txn| {
                let mut sending = txn.open_table(SENDING).map_err(db_error)?;
                let mut store = Inserter::new(txn, me, now).map_err(db_error)?;
                for (k, head) in &heads {
                    store
                        .insert_staged_chunk(k, head, expires)
                        .map_err(db_error)?;
                    sending.remove(k).map_err(db_error)?;
                }
                drop((store, sending));
                crate::profile::store_own(txn, &id, &m)
            })
        });
        match sent {
            Ok((id, manifest)) => Ok(FileSent {
                group: id,
                manifest,
                chunks,
            }),
            Err(e) => {
                if !chunks.is_empty() {
                    let staged = chunks.iter().map(|k| table_key(&group.id, k)).collect();
                    if let Err(left) = self.write_txn(move |txn| drop_staged(txn, staged)) {
                        tracing::warn!(
                            "the parts of a file not sent stay until the profile is next opened: {left}"
                        );
                    }
                }
                Err(e)
            }
        }
    }

    /// Checks that a message to `out.to` still goes to `out.group`: a
    /// group can change while a file is read (a member added, removed or
    /// gone), and its chunks are sealed for the epoch the send began in,
    /// which a removed member still reads. (As for a text, a change
    /// stored between this check and the file's listing is not seen.)
    fn still_goes_to(&self, out: &Outgoing<'_>) -> Result<(), ProfileError> {
        let (now_to, _) = self.log_for(out.to, out.now)?;
        if now_to.id == out.group.id {
            return Ok(());
        }
        let name = out.path.file_name().unwrap_or_default().to_string_lossy();
        let group = match out.to {
            Conversation::Group(g) => self
                .chain_named(g)
                .map_or(g.to_owned(), |c| c.last().name.clone()),
            Conversation::Contact(c) => c.to_owned(),
        };
        Err(ProfileError::Group(format!(
            "{}: the group {:?} changed while the file was read (someone was added, removed or left); it was sealed for the members before, so it was not sent: send it again",
            crate::display::one_line(&name),
            crate::display::one_line(&group),
        )))
    }

    /// Reads, seals and stores (unlisted, in [`SENDING`]) the chunks of
    /// the file `out` describes, adding each one's key to `chunks` as it
    /// is sealed and its `messages` row to `heads` once it is stored.
    /// Returns the file's size and hash, and its bytes if it is an image
    /// to preview ([`Staged`]).
    fn stage_chunks(
        &self,
        out: &Outgoing<'_>,
        file: &mut dyn Read,
        rng: &mut (impl RngCore + CryptoRng),
        report: Report<'_>,
        chunks: &mut Vec<Key>,
        heads: &mut Vec<StagedRow>,
    ) -> Result<Staged, ProfileError> {
        let identity = self.identity();
        let mut image = previewed(media_type(out.path), out.len).then(Vec::new);
        let mut hasher = strand_sync::FileHasher::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; CHUNK_LEN];
        let mut batch: Vec<Message> = Vec::with_capacity(CHUNKS_PER_TXN);
        report(0, out.len);
        loop {
            let mut filled = 0;
            while filled < CHUNK_LEN {
                let n = file
                    .read(&mut buf[filled..])
                    .map_err(|e| crate::profile::io_error(out.path, e))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled > 0 {
                size += filled as u64;
                if size > MAX_FILE_LEN {
                    return Err(ProfileError::File(format!(
                        "{} grew past {} MiB while it was read",
                        out.path.display(),
                        MAX_FILE_LEN >> 20
                    )));
                }
                hasher.update(&buf[..filled]);
                if let Some(bytes) = &mut image {
                    if size > MAX_PREVIEWED {
                        image = None;
                    } else {
                        bytes.extend_from_slice(&buf[..filled]);
                    }
                }
                let m = Message::create_expiring(
                    &identity,
                    out.group,
                    out.now,
                    out.expires,
                    Kind::CHUNK,
                    &buf[..filled],
                    rng,
                )
                .map_err(ProfileError::Message)?;
                chunks.push(m.key());
                batch.push(m);
            }
            let last = filled < CHUNK_LEN;
            if batch.len() == CHUNKS_PER_TXN || (last && !batch.is_empty()) {
                let id = out.group.id;
                let batch = std::mem::take(&mut batch);
                heads.extend(self.write_txn(move |txn| stage(txn, &id, &batch))?);
                report(size, out.len);
            }
            if last {
                break;
            }
        }
        report(size, size);
        Ok(Staged {
            size,
            hash: hasher.finish(),
            image,
        })
    }

    /// Deletes the parts of every file whose send a crash (or a failure
    /// that could not clean up) cut short. Returns how many chunks they
    /// were. Writes only if there are any.
    pub(crate) fn drop_unsent(&self) -> Result<usize, ProfileError> {
        let staged: Vec<[u8; 72]> = {
            let txn = self.db()?.begin_read().map_err(db_error)?;
            match crate::profile::store::open_if_there(&txn, SENDING).map_err(db_error)? {
                Some(t) => t
                    .iter()
                    .map_err(db_error)?
                    .map(|e| e.map(|(k, _)| k.value()).map_err(db_error))
                    .collect::<Result<_, _>>()?,
                None => Vec::new(),
            }
        };
        let n = staged.len();
        if n > 0 {
            self.write_txn(move |txn| drop_staged(txn, staged))?;
            tracing::info!("deleted {n} chunks of files whose sending was cut short");
        }
        Ok(n)
    }

    /// The manifest of a stored FILE message and how much of it is here.
    pub(crate) fn file_info(&self, group: &Group, msg: &Message) -> Option<FileInfo> {
        let manifest = Manifest::decode(&msg.open(group).ok()?).ok()?;
        let have = parts_here(&self.read_view().ok()?, &group.id, msg, &manifest).ok()?;
        Some(FileInfo {
            name: manifest.name,
            mime: manifest.mime,
            size: manifest.size,
            have,
            total: manifest.chunks.len(),
            preview: manifest.preview,
        })
    }

    /// The files in `group` that `author` wrote at `time`, with how much
    /// of each is here. A file's parts carry its description's time and
    /// author (they are written together), so this finds the file a part
    /// that just arrived belongs to with one short range read; another
    /// member's description at the same time (which anyone can write) is
    /// not taken for it.
    pub(crate) fn files_at(
        &self,
        group: &Group,
        time: Time,
        author: &AuthorId,
    ) -> Vec<(Key, FileInfo)> {
        let found = (|| -> Result<Vec<Message>, ProfileError> {
            let txn = self.db()?.begin_read().map_err(db_error)?;
            let messages = txn
                .open_table(crate::profile::schema::MESSAGES)
                .map_err(db_error)?;
            let at = |id| {
                table_key(
                    &group.id,
                    &Key {
                        time,
                        id: strand_sync::MessageId(id),
                    },
                )
            };
            let mut out = Vec::new();
            // A contact could put thousands of large texts, or parts, at
            // one time: only descriptions are decoded (the kind is in
            // every row's head), and only so many rows read.
            for entry in messages
                .range(at([0; 32])..=at([0xff; 32]))
                .map_err(db_error)?
                .take(MAX_ROWS_AT)
            {
                let (_, bytes) = entry.map_err(db_error)?;
                if crate::profile::store::row_head(bytes.value()) != Some((*author, Kind::FILE)) {
                    continue;
                }
                // A part's row holds only its head, which does not decode:
                // only whole messages (descriptions) do.
                if let Ok(m) = Message::decode(bytes.value().to_vec()) {
                    if m.kind() == Kind::FILE {
                        out.push(m);
                    }
                }
                // A sender could put many descriptions at one time, each
                // listing many parts: what a batch of parts costs to
                // place stays bounded.
                if out.len() == MAX_FILES_AT {
                    break;
                }
            }
            Ok(out)
        })()
        .unwrap_or_default();
        found
            .iter()
            .filter_map(|m| Some((m.key(), self.file_info(group, m)?)))
            .collect()
    }

    /// [`Profile::files_at`], with whom and where an arrival names: the
    /// author, as the contact list (in the 1:1 conversation `group`, if
    /// `direct`) or the group's member list names them (whoever's session
    /// brought the parts), and the group if it is one. None in a 1:1
    /// conversation whose contact was deleted since, nor in an epoch no
    /// group here holds.
    pub(crate) fn files_arriving(
        &self,
        group: &Group,
        direct: bool,
        time: Time,
        author: &AuthorId,
    ) -> Vec<Arriving> {
        let files = self.files_at(group, time, author);
        if files.is_empty() {
            return Vec::new();
        }
        let (from, shown) = if direct {
            let book = self.book();
            let Some(contact) = book.records.iter().find(|r| r.public.sign == *author) else {
                return Vec::new();
            };
            (contact.name.clone(), None)
        } else {
            let chains = self.chains();
            let Some(root) = chains
                .iter()
                .find(|c| c.epochs().any(|e| e.id() == group.id))
                .map(|c| c.root())
            else {
                return Vec::new();
            };
            let from = self.author_name(author, Some(&root));
            (from, self.group_shown_and_key(&root))
        };
        files
            .into_iter()
            .map(|(key, file)| Arriving {
                key,
                file,
                from: from.clone(),
                group: shown.clone(),
            })
            .collect()
    }

    /// The conversation log a stored message's id (hex, at least 8
    /// digits) belongs to, and its key: looked up among shown messages.
    fn find_shown(&self, id: &str) -> Result<(Group, Key), ProfileError> {
        let id = id.trim().to_ascii_lowercase();
        if id.len() < 8 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ProfileError::NoSuchFile(format!(
                "{id:?} is not a message id: give at least its first 8 hex digits (`strand read --json` shows them)"
            )));
        }
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let shown = txn.open_table(SHOWN).map_err(db_error)?;
        let mut found = Vec::new();
        for entry in shown.iter().map_err(db_error)? {
            let (k, _) = entry.map_err(db_error)?;
            let k = k.value();
            if crate::profile::hex(&k[48..]).starts_with(&id) {
                let group = GroupId(k[..32].try_into().expect("32 bytes"));
                found.push((group, crate::profile::store::shown_position(&k).key));
            }
        }
        let (group_id, key) = match found.as_slice() {
            [one] => *one,
            [] => return Err(ProfileError::NoSuchFile(format!("no message {id}"))),
            _ => {
                return Err(ProfileError::NoSuchFile(format!(
                    "{id} names {} messages: give more of its digits",
                    found.len()
                )))
            }
        };
        let book = self.book();
        let group = book
            .sync
            .iter()
            .map(|c| c.direct_group().clone())
            .chain(
                self.chains()
                    .iter()
                    .flat_map(|c| c.epochs().map(|e| e.group().clone()).collect::<Vec<_>>()),
            )
            .find(|g| g.id == group_id)
            .ok_or_else(|| ProfileError::File(format!("message {id} is in no conversation")))?;
        Ok((group, key))
    }

    /// Puts together the file of the FILE message whose id starts with
    /// `id` and writes it into `dir` (under a safe name that does not
    /// replace anything there). Refused until every chunk is here, and if
    /// the bytes do not match the manifest's hash.
    pub fn save_file(&self, id: &str, dir: &Path) -> Result<PathBuf, ProfileError> {
        self.save_file_reporting(id, dir, &|_, _| {})
    }

    /// [`Profile::save_file`], telling `report` the bytes written so far
    /// and the file's size as it goes.
    pub fn save_file_reporting(
        &self,
        id: &str,
        dir: &Path,
        report: Report<'_>,
    ) -> Result<PathBuf, ProfileError> {
        self.save_file_into(id, dir, report, Part::create)
    }

    /// [`Profile::save_file_reporting`], writing the file into a part
    /// `new_part` makes in `dir` until it is whole and checked (tests ask
    /// for the named part that filesystems without nameless files get).
    fn save_file_into(
        &self,
        id: &str,
        dir: &Path,
        report: Report<'_>,
        new_part: NewPart,
    ) -> Result<PathBuf, ProfileError> {
        let (group, key) = self.find_shown(id)?;
        let view = self.read_view()?;
        let bytes = strand_sync::Store::get(&view, &group.id, &key)
            .map_err(db_error)?
            .ok_or_else(|| ProfileError::File(format!("message {id} is gone")))?;
        let msg = Message::decode(bytes).map_err(ProfileError::StoredMessage)?;
        if msg.kind() != Kind::FILE {
            return Err(ProfileError::NoSuchFile(format!(
                "message {id} is not a file"
            )));
        }
        let manifest = msg
            .open(&group)
            .ok()
            .and_then(|b| Manifest::decode(&b).ok())
            .ok_or_else(|| ProfileError::File("the file's description does not read".into()))?;
        let have = parts_here(&view, &group.id, &msg, &manifest).map_err(db_error)?;
        if have < manifest.chunks.len() {
            return Err(ProfileError::File(format!(
                "{} is not all here yet: {have} of {} parts; the rest comes at the next sync",
                crate::display::one_line(&manifest.name),
                manifest.chunks.len()
            )));
        }
        let io = |e| crate::profile::io_error(dir, e);
        std::fs::create_dir_all(dir).map_err(io)?;
        remove_stale_parts(dir);
        // Whatever stops the save before the file has its name (an error
        // returned here, a panic) drops the part, which takes its bytes
        // with it.
        let mut part = new_part(dir).map_err(io)?;
        let mut hasher = strand_sync::FileHasher::new();
        let mut size = 0u64;
        report(0, manifest.size);
        let last = manifest.chunks.len().saturating_sub(1);
        for (i, k) in manifest.chunks.iter().enumerate() {
            let bytes = strand_sync::Store::get(&view, &group.id, k)
                .map_err(db_error)?
                .ok_or_else(|| ProfileError::File("a part went missing".into()))?;
            // The sender's own parts, each but the last a whole part
            // (§4.2): no one presents another member's parts as theirs.
            let chunk = Message::decode(bytes)
                .ok()
                .filter(|m| m.id() == k.id && m.kind() == Kind::CHUNK && m.author() == msg.author())
                .and_then(|m| m.open(&group).ok())
                .filter(|c| i == last || c.len() == strand_sync::CHUNK_LEN)
                .ok_or_else(|| ProfileError::File("a part does not read".into()))?;
            size += chunk.len() as u64;
            if size > manifest.size {
                break;
            }
            hasher.update(&chunk);
            part.file.write_all(&chunk).map_err(io)?;
            report(size, manifest.size);
        }
        part.file.sync_all().map_err(io)?;
        if size != manifest.size || hasher.finish() != manifest.hash {
            return Err(ProfileError::File(format!(
                "{} was refused: its bytes do not match the hash its sender gave",
                crate::display::one_line(&manifest.name)
            )));
        }
        part.name(&mut Names::new(dir, &safe_name(&manifest.name)))
            .map_err(io)
    }
}

/// Makes a new, empty [`Part`] in a folder: [`Part::create`], or (tests)
/// [`Part::named`].
type NewPart = fn(&Path) -> std::io::Result<Part>;

/// A file being saved, in the folder it is saved in, before it has its
/// name: one with no name at all where the system and the filesystem
/// have them, else a hidden `.strand-<16 hex>.part` that only this user
/// can read. Dropped before it is given its name (a save that fails or
/// panics), it leaves nothing; a save killed leaves nothing either, or
/// the named part, which [`remove_stale_parts`] removes a day on.
struct Part {
    file: std::fs::File,
    /// Its hidden name; none for a file with no name.
    path: Option<PathBuf>,
}

impl Part {
    /// A new, empty part in `dir`: one with no name if the system and
    /// the filesystem allow ([`nameless_in`]), else a named one.
    fn create(dir: &Path) -> std::io::Result<Part> {
        match nameless_in(dir) {
            Some(file) => Ok(Part { file, path: None }),
            None => Part::named(dir),
        }
    }

    /// A new, empty part in `dir` under a hidden name, which only this
    /// user can read: made with the umask's mode (usually 0644), other
    /// users could read the file as it is written, and what a save
    /// killed left behind until a later save removed it.
    fn named(dir: &Path) -> std::io::Result<Part> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = part_path(dir);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Part {
            file,
            path: Some(path),
        })
    }

    /// A named part in `dir` holding what `file` holds, synced.
    fn copy_of(file: &mut std::fs::File, dir: &Path) -> std::io::Result<Part> {
        let mut named = Part::named(dir)?;
        file.seek(std::io::SeekFrom::Start(0))?;
        std::io::copy(file, &mut named.file)?;
        named.file.sync_all()?;
        Ok(named)
    }

    /// Gives the whole, checked file the first name of `names` that is
    /// free, in one step that replaces nothing there (another save's
    /// file, a link of the user's), with the mode any new file there gets,
    /// and syncs the folder so that the name lasts as the bytes do.
    fn name(mut self, names: &mut Names<'_>) -> std::io::Result<PathBuf> {
        if self.path.is_none() {
            match link_nameless(&self.file, names) {
                // Made with the mode of any new file (see nameless_in).
                Ok(target) => {
                    sync_dir(names.dir);
                    return Ok(target);
                }
                // No /proc to link it through (a sandbox), or a filesystem
                // or a policy that refuses the link: a named part takes
                // its bytes, and the way named parts go.
                Err(e) => {
                    tracing::debug!(
                        "a nameless file could not be linked, so a named one takes its bytes: {e}"
                    );
                    self = Part::copy_of(&mut self.file, names.dir)?;
                }
            }
        }
        let temp = self
            .path
            .clone()
            .expect("a part without a name was given one above or copied to a named one");
        let mode = new_file_mode(names.dir);
        // The whole file takes its name in one step, a link; the part's
        // name then goes. Cut short between the two, a save leaves its
        // part, which a later save removes, and never an empty or partial
        // file under the name.
        let target = match names.take_free(|to| std::fs::hard_link(&temp, to)) {
            Ok(target) => {
                let _ = std::fs::remove_file(&temp);
                target
            }
            // A filesystem without links (FAT on a stick, some network
            // shares): claim the name, then rename over the claim. The
            // name is claimed before the file takes it, so nothing already
            // there is ever replaced: the rename replaces only the empty
            // file made here.
            Err(_) => {
                let target = names.take_free(|to| std::fs::File::create_new(to).map(drop))?;
                if let Err(e) = std::fs::rename(&temp, &target) {
                    let _ = std::fs::remove_file(&target);
                    return Err(e);
                }
                target
            }
        };
        self.path = None;
        // Only now, under its name: a save cut short before this leaves
        // a file its user alone can read, never a part others can.
        if let Some(mode) = mode {
            set_mode(&self.file, mode);
        }
        sync_dir(names.dir);
        Ok(target)
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Opens the file at `path` for reading, and its metadata, if it is a
/// regular file; a folder, a named pipe or a device is refused (as
/// [`ProfileError::NoSuchFile`]) before anything is read from it.
///
/// The path is opened first and the open file checked (not the path and
/// then the file: a pipe put in its place between the two would pass).
/// Opening a named pipe for reading waits, for good, until something
/// opens it for writing: a pipe named like a bundle on a stranger's drive
/// would hang whoever imports it. So it is opened without waiting
/// (`O_NONBLOCK`), which changes nothing for the regular file that is
/// then the only one read.
pub(crate) fn open_regular(
    path: &Path,
) -> Result<(std::fs::File, std::fs::Metadata), ProfileError> {
    let io = |e| crate::profile::io_error(path, e);
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    without_waiting(&mut options, path)?;
    let file = options.open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_a_file(path));
    }
    Ok((file, meta))
}

/// What [`open_regular`] says of a path that is not a regular file.
fn not_a_file(path: &Path) -> ProfileError {
    ProfileError::NoSuchFile(format!("{} is not a file", path.display()))
}

/// Makes [`open_regular`]'s open return at once on a named pipe.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn without_waiting(options: &mut std::fs::OpenOptions, _: &Path) -> Result<(), ProfileError> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(OFlags::NONBLOCK.bits() as i32);
    Ok(())
}

/// Elsewhere (no `O_NONBLOCK` at hand) the path is checked before it is
/// opened: a pipe put there between the two would still be waited on.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn without_waiting(_: &mut std::fs::OpenOptions, path: &Path) -> Result<(), ProfileError> {
    let meta = std::fs::metadata(path).map_err(|e| crate::profile::io_error(path, e))?;
    if !meta.is_file() {
        return Err(not_a_file(path));
    }
    Ok(())
}

/// A hidden name for a part in `dir` that no other save picks:
/// `.strand-` + 16 random hex digits + `.part`.
fn part_path(dir: &Path) -> PathBuf {
    let mut nonce = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut crate::profile::os_rng(), &mut nonce);
    dir.join(format!(".strand-{}.part", crate::profile::hex(&nonce)))
}

/// A new file in `dir` with no name (`O_TMPFILE`), to be given one once
/// whole ([`link_nameless`]): a save killed leaves nothing. None where
/// one cannot be made: the filesystem or the kernel has no such files
/// (EOPNOTSUPP on FAT and some FUSE filesystems, EISDIR before Linux
/// 3.11, EINVAL), or a security policy refuses it; a named part is then
/// made, whose error, if it fails too, is the one to tell.
///
/// It is made as any new file is (0666 less the umask, or what the
/// folder's default ACL says), so its name gives it the usual mode
/// without the umask being read (which takes setting it, for every
/// thread at once). Nameless, it is no less private for that: no other
/// user can open it, as only this process's user reads its descriptors
/// in /proc.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn nameless_in(dir: &Path) -> Option<std::fs::File> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let made = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(OFlags::TMPFILE.bits() as i32)
        .mode(0o666)
        .open(dir);
    match made {
        Ok(file) => Some(file),
        Err(e) => {
            tracing::debug!("no nameless file here, so a named part: {e}");
            None
        }
    }
}

/// Files with no name are Linux's: elsewhere parts are named.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn nameless_in(_: &Path) -> Option<std::fs::File> {
    None
}

/// Gives the nameless `file` ([`nameless_in`]) the first name of `names`
/// that is free, by a link that replaces nothing. Linking the descriptor
/// itself (`AT_EMPTY_PATH`) takes a capability (CAP_DAC_READ_SEARCH) that
/// neither the app nor `strand` has; linking its entry in /proc, followed,
/// takes none.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn link_nameless(file: &std::fs::File, names: &mut Names<'_>) -> std::io::Result<PathBuf> {
    use rustix::fs::{linkat, AtFlags, CWD};
    use std::os::fd::AsRawFd;
    let fd = format!("/proc/self/fd/{}", file.as_raw_fd());
    names.take_free(|to| {
        linkat(CWD, fd.as_str(), CWD, to, AtFlags::SYMLINK_FOLLOW).map_err(std::io::Error::from)
    })
}

/// [`nameless_in`] makes no nameless file here.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn link_nameless(_: &std::fs::File, _: &mut Names<'_>) -> std::io::Result<PathBuf> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// The names a saved file may take in its folder, in order: its own
/// (made safe), then "stem (1).ext", "stem (2).ext", …
struct Names<'a> {
    dir: &'a Path,
    stem: String,
    /// With its dot; empty for a name without one.
    ext: String,
    /// How many names were found taken.
    taken: usize,
}

impl<'a> Names<'a> {
    fn new(dir: &'a Path, name: &str) -> Self {
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
            _ => (name.to_owned(), String::new()),
        };
        Names {
            dir,
            stem,
            ext,
            taken: 0,
        }
    }

    /// The name to try now.
    fn current(&self) -> PathBuf {
        let Names {
            dir,
            stem,
            ext,
            taken,
        } = self;
        match taken {
            0 => dir.join(format!("{stem}{ext}")),
            n => dir.join(format!("{stem} ({n}){ext}")),
        }
    }

    /// Gives the file the first free name with `take`, which fails with
    /// `AlreadyExists` on a name taken, and returns it. On another
    /// failure, the next name to try is still the one that failed.
    fn take_free(
        &mut self,
        take: impl Fn(&Path) -> std::io::Result<()>,
    ) -> std::io::Result<PathBuf> {
        loop {
            let target = self.current();
            match take(&target) {
                Ok(()) => return Ok(target),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.taken += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The permission bits a new file in `dir` gets: 0666 less the umask, or
/// what the folder's default ACL or the filesystem's mount gives. Read
/// from an empty file made there (named as a part, so that one a kill
/// leaves goes as parts do) and removed at once; the umask itself can be
/// read only by setting it, for every thread at once, and one creating a
/// file meanwhile would get the wrong mode. None if no file can be made.
fn new_file_mode(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let probe = part_path(dir);
    let file = std::fs::File::create_new(&probe).ok()?;
    let mode = file.metadata().map(|m| m.permissions().mode() & 0o777);
    let _ = std::fs::remove_file(&probe);
    mode.ok()
}

/// Gives the saved `file` the permission bits `mode`, unless it has them
/// (on FAT the mount decides every file's, and refuses changes). A
/// refusal is only logged: the file is saved, readable by its user alone.
fn set_mode(file: &std::fs::File, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let has = file.metadata().map(|m| m.permissions().mode() & 0o777);
    if has.is_ok_and(|has| has == mode) {
        return;
    }
    if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(mode)) {
        tracing::warn!("a saved file stays readable by its user alone: its mode could not be set to {mode:o}: {e}");
    }
}

/// Syncs the folder `dir`, so that a name just given there lasts as the
/// file's (synced) bytes do: without it, a crash soon after a save can
/// lose the file though the save said it was done. A failure is only
/// logged: the file is saved and named, and failing the save would have
/// the user save it again, under a second name.
pub(crate) fn sync_dir(dir: &Path) {
    let synced = match std::fs::File::open(dir) {
        Ok(folder) => match folder.sync_all() {
            // The filesystem does not sync folders (some network and FUSE
            // ones): its names last as it makes them, and nothing here
            // can do more.
            Err(e) if sync_refused(&e) => Ok(()),
            synced => synced,
        },
        // A folder its user may write in but not read (a drop box, -wx)
        // does not open to be synced.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = synced {
        tracing::warn!(
            "a saved file's folder could not be synced: a crash soon may lose its name: {e}"
        );
    }
}

/// Whether syncing a folder failed because its filesystem refuses to:
/// EINVAL, EOPNOTSUPP or ENOSYS.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn sync_refused(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(e),
        Some(Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS)
    )
}

/// Whether syncing a folder failed because its filesystem refuses to.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn sync_refused(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
    )
}

/// How long a save's temporary file may go unwritten before it is taken
/// for one a save cut short left behind (a save writes it without pause).
const STALE_PART: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes from `dir` the temporary files of saves cut short (the app or
/// `strand` stopped, the machine went down) that no save has written for
/// [`STALE_PART`]: hidden, they would take the folder's space unseen.
/// Only names a save makes (`.strand-` + 16 hex digits + `.part`), only
/// plain files; what cannot be read or removed is left. (Parts are named
/// only on filesystems without nameless files: a nameless part goes with
/// the process that wrote it.)
fn remove_stale_parts(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name
            .to_str()
            .and_then(|n| n.strip_prefix(".strand-"))
            .and_then(|n| n.strip_suffix(".part"))
            .is_some_and(|hex| {
                hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            });
        if !ours {
            continue;
        }
        // The entry itself (a link is not followed): a plain file only.
        let stale = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_PART);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A file on its way into a conversation's log.
#[derive(Clone, Copy)]
struct Outgoing<'a> {
    /// The conversation it is sent to.
    to: Conversation<'a>,
    /// The log: the 1:1 conversation's, or a group's head epoch when the
    /// send began.
    group: &'a Group,
    /// When its messages expire (the conversation's timer), if they do.
    expires: Option<Time>,
    /// Where it is read from: its name, type, preview, and errors.
    path: &'a Path,
    /// Its size when looked at.
    len: u64,
    /// When it is written.
    now: Time,
}

/// A chunk of a file being sent, once its parts are stored: its
/// `messages` key and the row `messages` will hold for it.
type StagedRow = ([u8; 72], Vec<u8>);

/// Stores the parts of `batch`'s chunks (of a file being sent to
/// `group`) and notes them in [`SENDING`]; returns each one's key and the
/// row `messages` will hold for it.
fn stage(
    txn: &redb::WriteTransaction,
    group: &GroupId,
    batch: &[Message],
) -> Result<Vec<StagedRow>, ProfileError> {
    let mut sending = txn.open_table(SENDING).map_err(db_error)?;
    let mut heads = Vec::with_capacity(batch.len());
    for m in batch {
        let k = table_key(group, &m.key());
        let head = put_body(txn, &k, m.as_bytes(), split(m)).map_err(db_error)?;
        heads.push((k, head.to_vec()));
        sending.insert(&k, ()).map_err(db_error)?;
    }
    Ok(heads)
}

/// Deletes the parts of the staged chunks at `staged` (unless a chunk was
/// listed after all) and their notes in [`SENDING`].
fn drop_staged(txn: &redb::WriteTransaction, staged: Vec<[u8; 72]>) -> Result<(), ProfileError> {
    let listed = txn.open_table(MESSAGES).map_err(db_error)?;
    let mut sending = txn.open_table(SENDING).map_err(db_error)?;
    for k in &staged {
        if listed.get(k).map_err(db_error)?.is_none() {
            remove_body(txn, k).map_err(db_error)?;
        }
        sending.remove(k).map_err(db_error)?;
    }
    Ok(())
}

/// How many of the parts file description `msg` lists are here as its
/// author's parts. Each part's head is read, not its body, nor any other
/// message a description lists: a file's progress costs a few small
/// reads however big it is. A part someone else wrote is not counted (a
/// member could list another member's parts in a description of their
/// own, which saving refuses): before, such a file showed as all here
/// and then did not save.
fn parts_here(
    view: &crate::profile::store::ReadView,
    group: &GroupId,
    msg: &Message,
    manifest: &Manifest,
) -> Result<usize, redb::Error> {
    let mut have = 0;
    for k in &manifest.chunks {
        have += usize::from(view.chunk_author(group, k)? == Some(msg.author()));
    }
    Ok(have)
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    /// A name with a bidi override or zero-width
    /// characters is saved without them.
    #[test]
    fn saved_names_drop_invisible_and_direction_changing_characters() {
        assert_eq!(safe_name("invoice\u{202e}gpj.sh"), "invoicegpj.sh");
        assert_eq!(safe_name("a\u{200b}b\u{2066}.txt"), "ab.txt");
        assert_eq!(safe_name("../../x\u{7}.txt"), "x_.txt");
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(
            safe_name(&format!("{family}\u{200D}.jpg")),
            format!("{family}.jpg")
        );
    }

    use super::*;
    use crate::profile::schema::{BODIES, CHUNKS};
    use crate::profile::store::HEAD;
    use redb::ReadableTableMetadata;

    /// The description of a file named `name` whose bytes `data` are all
    /// in `chunk`.
    fn one_part(name: &str, data: &[u8], chunk: &Message) -> Manifest {
        Manifest {
            name: name.into(),
            mime: String::new(),
            size: data.len() as u64,
            hash: strand_sync::file_hash(data),
            chunks: vec![chunk.key()],
            preview: None,
        }
    }

    /// Each chunk's `messages` row (its head) and the lengths of its
    /// parts in `bodies`.
    fn stored_chunks(p: &Profile, sent: &FileSent) -> Vec<(usize, Vec<usize>)> {
        let db = p.db().unwrap();
        let txn = db.begin_read().unwrap();
        let messages = txn.open_table(MESSAGES).unwrap();
        let bodies = txn.open_table(BODIES).unwrap();
        sent.chunks
            .iter()
            .map(|key| {
                let k = table_key(&sent.group, key);
                let mut hi = [0xff; 73];
                hi[..72].copy_from_slice(&k);
                let mut lo = [0; 73];
                lo[..72].copy_from_slice(&k);
                let parts = bodies
                    .range(lo..=hi)
                    .unwrap()
                    .map(|e| e.unwrap().1.value().len())
                    .collect();
                (messages.get(&k).unwrap().unwrap().value().len(), parts)
            })
            .collect()
    }

    /// A file's chunks are stored split (a small `messages` row, the rest
    /// in 64 KiB parts), read back whole, split by the version 3 → 4
    /// migration when a store holds them whole, and deleted with every
    /// part when they expire.
    #[test]
    fn chunks_are_stored_in_parts_migrated_and_expired_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, ..) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        p.set_timer("Bob", Some(3_600_000), now, rng).unwrap();
        let data: Vec<u8> = (0..CHUNK_LEN * 2 + 1000)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let path = tmp.path().join("f.bin");
        std::fs::write(&path, &data).unwrap();
        let sent = p
            .send_file(Conversation::Contact("Bob"), &path, now, rng)
            .unwrap();
        let id = crate::profile::hex(&sent.manifest.id.0[..8]);
        let save = |n: &str| std::fs::read(p.save_file(&id, &tmp.path().join(n)).unwrap()).unwrap();
        let split = stored_chunks(&p, &sent);
        assert_eq!(split.len(), 3);
        for (head, parts) in &split {
            assert_eq!(*head, HEAD);
            assert!(parts.iter().all(|&n| n <= PART_MAX));
        }
        assert_eq!(split[0].1.len(), 5, "256 KiB and a header: 5 parts");
        assert_eq!(save("one"), data);

        store_as_version_3(&p, &sent);
        let db = p.db().unwrap();
        assert_eq!(save("two"), data, "read whole as version 3 stored it");
        let me = p.identity().public().sign;
        crate::profile::schema::migrate(&db, 3, &me).unwrap();
        assert!(stored_chunks_whole(&p, &sent), "read whole until split");
        assert_eq!(save("between"), data);
        crate::profile::schema::split_chunks(&db, 3).unwrap();
        assert_eq!(stored_chunks(&p, &sent), split);
        assert_eq!(save("three"), data);

        assert_eq!(p.sweep_expired(now + 3_600_001).unwrap().count(), 4);
        let txn = db.begin_read().unwrap();
        assert!(txn.open_table(BODIES).unwrap().is_empty().unwrap());
        assert!(txn.open_table(CHUNKS).unwrap().is_empty().unwrap());
    }

    /// Every row of the tables a file send writes to, as counts: what
    /// sync can see (`messages` rows of the conversation), the chunks
    /// index, the parts, and the notes of parts not listed yet.
    fn file_rows(p: &Profile, group: &GroupId) -> [usize; 4] {
        let db = p.db().unwrap();
        let txn = db.begin_read().unwrap();
        let count = |t: Option<u64>| t.unwrap_or(0) as usize;
        let mut listed = 0;
        strand_sync::Store::scan(
            &p.read_view().unwrap(),
            group,
            &strand_sync::KeyRange::ALL,
            &mut |_| {
                listed += 1;
                std::ops::ControlFlow::Continue(())
            },
        )
        .unwrap();
        let len = |t: redb::TableDefinition<'static, [u8; 72], ()>| {
            count(
                crate::profile::store::open_if_there(&txn, t)
                    .unwrap()
                    .map(|t| t.len().unwrap()),
            )
        };
        let parts = count(
            crate::profile::store::open_if_there(&txn, BODIES)
                .unwrap()
                .map(|t| t.len().unwrap()),
        );
        [listed, len(CHUNKS), parts, len(SENDING)]
    }

    /// A send cut short after its first 16 chunks were stored (here the
    /// progress callback panics; a crash or a killed `strand send` stops
    /// at the same place) leaves nothing sync or the conversation can
    /// see: before, those 16 chunks were in the log, synced to the
    /// contact with no manifest ever to follow, and stayed. Their parts
    /// are deleted when the profile is next opened, and the file can then
    /// be sent whole.
    #[test]
    fn a_file_send_cut_short_leaves_nothing_to_sync() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        let rng = &mut crate::profile::os_rng();
        let (p, _, group) = crate::profile::alice_with_bob(&dir);
        let now = crate::profile::now();
        let data: Vec<u8> = (0..CHUNK_LEN * 20 + 5)
            .map(|i| (i * 11 % 253) as u8)
            .collect();
        let path = tmp.path().join("notes.bin");
        std::fs::write(&path, &data).unwrap();
        let before = file_rows(&p, &group.id);
        assert_eq!(before[1..], [0, 0, 0]);

        let cut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.send_file_reporting(
                Conversation::Contact("Bob"),
                &path,
                now,
                rng,
                &|done, total| {
                    assert!(done == 0 || done == total, "cut short after {done} bytes");
                },
            )
        }));
        assert!(cut.is_err(), "the send was cut short");
        let cut = file_rows(&p, &group.id);
        assert_eq!(cut[..2], before[..2], "nothing listed, nothing to sync");
        assert!(cut[2] > 0, "the first 16 chunks' parts are stored: {cut:?}");
        assert_eq!(cut[3], 16, "and noted as not listed");
        p.close();

        let p = Profile::open(&dir, "pass").unwrap();
        assert_eq!(file_rows(&p, &group.id), before, "deleted when opened");
        let sent = p
            .send_file(Conversation::Contact("Bob"), &path, now, rng)
            .unwrap();
        assert_eq!(sent.chunks.len(), 21);
        let after = file_rows(&p, &group.id);
        assert_eq!(after[0], before[0] + 22, "21 chunks and the manifest");
        assert_eq!(after[1], 21);
        assert_eq!(after[3], 0);
        let id = crate::profile::hex(&sent.manifest.id.0[..8]);
        let saved = p.save_file(&id, &tmp.path().join("out")).unwrap();
        assert_eq!(std::fs::read(saved).unwrap(), data);
    }

    /// A file that cannot be read to its end (here the read fails after
    /// 20 chunks; a disk or a network folder can do this) is refused with
    /// the reason and its name, and the chunks already stored are deleted
    /// then and there.
    #[test]
    fn a_file_send_that_fails_deletes_what_it_stored() {
        /// A file whose reads fail after `left` bytes.
        struct Failing {
            left: usize,
        }
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.left == 0 {
                    return Err(std::io::Error::other("the device went away"));
                }
                let n = buf.len().min(self.left);
                buf[..n].fill(7);
                self.left -= n;
                Ok(n)
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, _, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        let before = file_rows(&p, &group.id);
        let (log, expires) = p.log_for(Conversation::Contact("Bob"), now).unwrap();
        let mut file = Failing {
            left: CHUNK_LEN * 20,
        };
        let out = Outgoing {
            to: Conversation::Contact("Bob"),
            group: &log,
            expires,
            path: Path::new("/media/usb/report.pdf"),
            len: CHUNK_LEN as u64 * 30,
            now,
        };
        let e = p.send_read(&out, &mut file, rng, &|_, _| {}).unwrap_err();
        let e = crate::profile::error::chain(&e);
        assert!(
            e.contains("report.pdf") && e.contains("the device went away"),
            "{e}"
        );
        assert_eq!(file_rows(&p, &group.id), before, "nothing left");
    }

    /// A file sent to a group goes to the epoch the group is at when the
    /// file is all read, or nowhere. Before, a member removed while the
    /// file was being read (seconds, for a large one) got it: its chunks
    /// and manifest were listed in the epoch the send began in, which
    /// the removed member still reads. Now the send is refused with the
    /// reason, leaves nothing, and sent again goes to the new epoch only.
    #[test]
    fn a_member_removed_while_a_file_is_read_does_not_get_it() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, _, _) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let carol = strand_sync::Identity::generate("Carol", rng).unwrap();
        p.add_contact(&carol.invite(), "Carol", 0, rng).unwrap();
        let now = crate::profile::now();
        p.create_group("Team", &["Bob".into(), "Carol".into()], now, rng)
            .unwrap();
        let (old, _) = p.log_for(Conversation::Group("Team"), now).unwrap();
        let before = file_rows(&p, &old.id);
        let data = vec![5u8; CHUNK_LEN * 40];
        let path = tmp.path().join("plans.bin");
        std::fs::write(&path, &data).unwrap();

        let removed = std::sync::atomic::AtomicBool::new(false);
        let e = p
            .send_file_reporting(
                Conversation::Group("Team"),
                &path,
                now,
                rng,
                &|done, total| {
                    if done > 0
                        && done < total
                        && !removed.swap(true, std::sync::atomic::Ordering::Relaxed)
                    {
                        let rng = &mut crate::profile::os_rng();
                        let remove = crate::GroupAction::Remove("Carol".into());
                        p.change_group("Team", &remove, now + 1, rng).unwrap();
                    }
                },
            )
            .unwrap_err();
        assert!(removed.into_inner());
        let e = crate::profile::error::chain(&e);
        assert!(
            e.contains("plans.bin") && e.contains("\"Team\" changed"),
            "{e}"
        );
        let after = file_rows(&p, &old.id);
        assert_eq!(after[0], before[0] + 1, "only the removal in the old epoch");
        assert_eq!(after[1..], [0, 0, 0], "and nothing of the file");

        let (new, _) = p.log_for(Conversation::Group("Team"), now).unwrap();
        assert_ne!(new.id, old.id);
        let carol_key = carol.public().sign;
        assert!(!new.members().contains(&carol_key));
        let sent = p
            .send_file(Conversation::Group("Team"), &path, now + 2, rng)
            .unwrap();
        assert_eq!(sent.group, new.id);
        let again = file_rows(&p, &old.id);
        assert_eq!(again[0], after[0], "nothing more in the old epoch");
        assert_eq!(again[1], 40, "the chunks, listed in the new one");
    }

    /// A PNG of one colour, `side` pixels a side.
    fn png(side: u32, colour: [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(side, side, image::Rgb(colour));
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    /// A file's preview is made from the bytes read and sent, not from
    /// the file on disk read again: before, a photo replaced after it was
    /// read (or a file the path no longer holds) went out with the
    /// preview of another picture. (It is also made before the check that
    /// the group is still the one the parts were sealed for, so a member
    /// removed while a large photo decodes does not get it.)
    #[test]
    fn a_preview_is_made_from_the_bytes_sent() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, _, _) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        let path = tmp.path().join("photo.png");
        std::fs::write(&path, png(64, [255, 0, 0])).unwrap();
        let sent_bytes = png(64, [0, 0, 255]);
        let (log, expires) = p.log_for(Conversation::Contact("Bob"), now).unwrap();
        let out = Outgoing {
            to: Conversation::Contact("Bob"),
            group: &log,
            expires,
            path: &path,
            len: sent_bytes.len() as u64,
            now,
        };
        let sent = p
            .send_read(&out, &mut &sent_bytes[..], rng, &|_, _| {})
            .unwrap();
        let view = p.read_view().unwrap();
        let bytes = strand_sync::Store::get(&view, &sent.group, &sent.manifest)
            .unwrap()
            .unwrap();
        let msg = Message::decode(bytes).unwrap();
        let info = p.file_info(&log, &msg).unwrap();
        let preview = image::load_from_memory(&info.preview.expect("a preview"))
            .unwrap()
            .to_rgb8();
        let image::Rgb([r, _, b]) = *preview.get_pixel(8, 8);
        assert!(
            b > 200 && r < 60,
            "the preview is of the picture sent: {r} {b}"
        );
    }

    /// Rewrites the chunks of `sent` as version 3 stored them: whole, in
    /// `messages`, with no `bodies` table.
    fn store_as_version_3(p: &Profile, sent: &FileSent) {
        let db = p.db().unwrap();
        let mut txn = db.begin_write().unwrap();
        txn.set_two_phase_commit(true);
        {
            let view = p.read_view().unwrap();
            let mut messages = txn.open_table(MESSAGES).unwrap();
            for key in &sent.chunks {
                let whole = strand_sync::Store::get(&view, &sent.group, key)
                    .unwrap()
                    .unwrap();
                messages
                    .insert(&table_key(&sent.group, key), &whole[..])
                    .unwrap();
            }
        }
        txn.delete_table(BODIES).unwrap();
        txn.commit().unwrap();
        assert!(stored_chunks_whole(p, sent));
    }

    /// A split the disk has no room for (every write fails, as on a full
    /// disk) leaves the chunks whole: the profile opens, the file saves
    /// byte for byte, and the handle takes writes again (redb refuses
    /// them on a handle whose commit failed, so the split reopens it).
    #[test]
    fn a_split_with_no_room_leaves_chunks_whole_and_the_profile_writable() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        /// The sealed backend on a disk that fills up when `full` is set.
        #[derive(Debug)]
        struct FillingDisk {
            inner: crate::profile::sealed::SealedBackend,
            full: Arc<AtomicBool>,
            refused: Arc<AtomicBool>,
        }
        impl FillingDisk {
            fn room(&self) -> std::io::Result<()> {
                if self.full.load(Ordering::Acquire) {
                    self.refused.store(true, Ordering::Release);
                    return Err(std::io::ErrorKind::StorageFull.into());
                }
                Ok(())
            }
        }
        impl redb::StorageBackend for FillingDisk {
            fn len(&self) -> std::io::Result<u64> {
                self.inner.len()
            }
            fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
                self.inner.read(offset, out)
            }
            fn set_len(&self, len: u64) -> std::io::Result<()> {
                self.room()?;
                self.inner.set_len(len)
            }
            fn sync_data(&self) -> std::io::Result<()> {
                self.room()?;
                self.inner.sync_data()
            }
            fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
                self.room()?;
                self.inner.write(offset, data)
            }
        }

        let tmp = tempfile::tempdir().unwrap();
        let (p, sent, id, data) = three_part_file(tmp.path());
        let dir = tmp.path().join("a");
        store_as_version_3(&p, &sent);
        let root = p.root_for_tests();
        let me = p.identity().public().sign;
        p.close();

        let full = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicBool::new(false));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(crate::profile::schema::DB_FILE))
            .unwrap();
        let disk = FillingDisk {
            inner: crate::profile::sealed::SealedBackend::new(file, &root).unwrap(),
            full: full.clone(),
            refused: refused.clone(),
        };
        let db = redb::Database::builder().create_with_backend(disk).unwrap();
        crate::profile::schema::migrate(&db, 3, &me).unwrap();
        full.store(true, Ordering::Release);
        let db = crate::profile::split_chunks(db, 3, || crate::profile::open_sealed(&dir, &root))
            .unwrap();
        assert!(
            refused.load(Ordering::Acquire),
            "the split hit the full disk"
        );
        let txn = db.begin_write().unwrap();
        txn.open_table(MESSAGES).unwrap();
        txn.commit().expect("the reopened handle takes writes");
        drop(db);

        let p = Profile::open(&dir, "pass").unwrap();
        assert!(stored_chunks_whole(&p, &sent), "left whole");
        let saved = p.save_file(&id, &tmp.path().join("out")).unwrap();
        assert_eq!(std::fs::read(saved).unwrap(), data);
    }

    /// The largest part.
    const PART_MAX: usize = 65_536 - 256;

    fn stored_chunks_whole(p: &Profile, sent: &FileSent) -> bool {
        let db = p.db().unwrap();
        let txn = db.begin_read().unwrap();
        let messages = txn.open_table(MESSAGES).unwrap();
        sent.chunks.iter().all(|key| {
            messages
                .get(&table_key(&sent.group, key))
                .unwrap()
                .unwrap()
                .value()
                .len()
                > HEAD
        })
    }

    /// A file whose name is as long as a manifest allows (255 bytes; a
    /// contact's device writes what it likes) saves, and saves again
    /// beside the first copy, keeping its extension; nothing is left
    /// behind. The second save used to fail (the " (1)" made the name
    /// too long for Linux) and leave the whole file in a hidden
    /// temporary one.
    #[test]
    fn a_long_name_saves_twice_and_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, _, pair) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        let data = b"a file with a long name".to_vec();
        let me = p.identity();
        let chunk = Message::create(&me, &pair, now, Kind::CHUNK, &data, rng).unwrap();
        let manifest = one_part(&format!("{}.bin", "é".repeat(125)), &data, &chunk);
        assert_eq!(manifest.name.len(), 254);
        let file = Message::create(&me, &pair, now, Kind::FILE, &manifest.encode(), rng).unwrap();
        let mut store = p.store().unwrap();
        strand_sync::WriteStore::insert(&mut store, &pair.id, &chunk).unwrap();
        strand_sync::WriteStore::insert(&mut store, &pair.id, &file).unwrap();
        store.commit().unwrap();
        drop(store);
        let id = crate::profile::hex(&file.id().0[..8]);
        let out = tmp.path().join("out");
        let first = p.save_file(&id, &out).unwrap();
        let second = p.save_file(&id, &out).unwrap();
        assert_ne!(first, second);
        for saved in [&first, &second] {
            assert_eq!(std::fs::read(saved).unwrap(), data);
            assert!(saved.extension().is_some_and(|e| e == "bin"));
        }
        let left: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".strand-"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    /// A member lists someone else's parts in a description of their own
    /// (here Bob lists Alice's): it shows none of them here and does not
    /// save, while Alice's own description of them does. Before, parts
    /// were counted by key alone, so Bob's file showed as all here and
    /// then failed to save.
    #[test]
    fn a_description_listing_someone_elses_parts_shows_none_of_them_here() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, bob, pair) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        let me = p.identity();
        let data = b"Alice's words".to_vec();
        let chunk = Message::create(&me, &pair, now, Kind::CHUNK, &data, rng).unwrap();
        let mut file = |author: &strand_sync::Identity| {
            let manifest = one_part("words.txt", &data, &chunk).encode();
            Message::create(author, &pair, now, Kind::FILE, &manifest, rng).unwrap()
        };
        let (alices, bobs) = (file(&me), file(&bob));
        let mut store = p.store().unwrap();
        for m in [&chunk, &alices, &bobs] {
            strand_sync::WriteStore::insert(&mut store, &pair.id, m).unwrap();
        }
        store.commit().unwrap();
        drop(store);
        let here = |m: &Message| {
            let info = p.file_info(&pair, m).unwrap();
            (info.have, info.total)
        };
        assert_eq!(here(&alices), (1, 1));
        assert_eq!(here(&bobs), (0, 1));
        let out = tmp.path().join("out");
        let save = |m: &Message| p.save_file(&crate::profile::hex(&m.id().0[..8]), &out);
        let e = save(&bobs).unwrap_err().to_string();
        assert!(e.contains("0 of 1 parts"), "{e}");
        assert_eq!(std::fs::read(save(&alices).unwrap()).unwrap(), data);
    }

    /// Parts of Bob's file arrive: the file reported is his, not another
    /// description written at the same time (here Alice's own; in a
    /// group, any member's). Before, every description at that time was
    /// reported as arriving.
    #[test]
    fn arriving_parts_report_only_their_authors_file() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, bob, pair) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        let me = p.identity();
        let mut file = |author: &strand_sync::Identity, name: &str| {
            let data = name.as_bytes();
            let chunk = Message::create(author, &pair, now, Kind::CHUNK, data, rng).unwrap();
            let manifest = one_part(name, data, &chunk).encode();
            let m = Message::create(author, &pair, now, Kind::FILE, &manifest, rng);
            [chunk, m.unwrap()]
        };
        let [bobs_part, bobs] = file(&bob, "from-bob.txt");
        let [_, alices] = file(&me, "from-alice.txt");
        let mut store = p.store().unwrap();
        for m in [&bobs_part, &bobs, &alices] {
            strand_sync::WriteStore::insert(&mut store, &pair.id, m).unwrap();
        }
        store.commit().unwrap();
        drop(store);
        let found = p.files_at(&pair, bobs_part.time(), &bobs_part.author());
        let found: Vec<_> = found
            .iter()
            .map(|(k, f)| (*k, f.name.as_str(), f.have))
            .collect();
        assert_eq!(found, [(bobs.key(), "from-bob.txt", 1)]);
    }

    /// Saving never replaces what is already there under the name, even
    /// a link to nothing (which looks like no file at all); and a sender's
    /// file name in an error is shown safely.
    #[test]
    fn saving_replaces_nothing_and_shows_the_name_safely() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, _, pair) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        let me = p.identity();
        let data = b"the contents".to_vec();
        let chunk = Message::create(&me, &pair, now, Kind::CHUNK, &data, rng).unwrap();
        let mut file = |name: &str, hash| {
            let manifest = Manifest {
                hash,
                ..one_part(name, &data, &chunk)
            };
            Message::create(&me, &pair, now, Kind::FILE, &manifest.encode(), rng).unwrap()
        };
        let good = file("notes.txt", strand_sync::file_hash(&data));
        let bad = file("x\u{1b}]0;owned\u{7}\n.txt", [7; 32]);
        let mut store = p.store().unwrap();
        for m in [&chunk, &good, &bad] {
            strand_sync::WriteStore::insert(&mut store, &pair.id, m).unwrap();
        }
        store.commit().unwrap();
        drop(store);
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let link = out.join("notes.txt");
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), &link).unwrap();

        let saved = p
            .save_file(&crate::profile::hex(&good.id().0[..8]), &out)
            .unwrap();
        assert_eq!(saved, out.join("notes (1).txt"));
        assert_eq!(std::fs::read(&saved).unwrap(), data);
        let kept = std::fs::read_link(&link).expect("the link is still there");
        assert_eq!(kept, tmp.path().join("nowhere"));

        let e = p
            .save_file(&crate::profile::hex(&bad.id().0[..8]), &out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("was refused"), "{e}");
        assert!(!e.contains('\u{1b}') && !e.contains('\n'), "{e:?}");
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            2,
            "nothing left behind"
        );
    }

    /// The names in `dir` and their permission bits, in order.
    fn listing(dir: &Path) -> Vec<(String, u32)> {
        use std::os::unix::fs::PermissionsExt;
        let mut all: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                (e.file_name().to_string_lossy().into_owned(), mode)
            })
            .collect();
        all.sort();
        all
    }

    /// The parts a save makes: the usual (nameless where the filesystem
    /// allows), and the named one of filesystems without nameless files.
    const PART_MAKERS: [(&str, NewPart); 2] = [("usual", Part::create), ("named", Part::named)];

    /// Alice's profile in `tmp`/a, a file of three parts she sent Bob (a
    /// save reports twice between its start and its end), its id, and its
    /// bytes.
    fn three_part_file(tmp: &Path) -> (Profile, FileSent, String, Vec<u8>) {
        let rng = &mut crate::profile::os_rng();
        let (p, ..) = crate::profile::alice_with_bob(&tmp.join("a"));
        let data: Vec<u8> = (0..CHUNK_LEN * 2 + 1000)
            .map(|i| (i * 5 % 251) as u8)
            .collect();
        let path = tmp.join("private.bin");
        std::fs::write(&path, &data).unwrap();
        let sent = p
            .send_file(
                Conversation::Contact("Bob"),
                &path,
                crate::profile::now(),
                rng,
            )
            .unwrap();
        let id = crate::profile::hex(&sent.manifest.id.0[..8]);
        (p, sent, id, data)
    }

    /// A save cut short halfway (here its progress report panics; a kill
    /// stops at the same place) leaves nothing in the folder, and while
    /// the file is written nothing there lets other users read it: it has
    /// no name where the filesystem allows, else a part only its user can
    /// read. Before, the part took the umask's mode (0644: anyone could
    /// read the file as it was written) and stayed, the file's first part
    /// in the clear, until a save into the folder a day later.
    #[test]
    fn a_save_cut_short_leaves_nothing_and_shows_nothing_to_others() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, _, id, _) = three_part_file(tmp.path());
        for (how, new_part) in PART_MAKERS {
            let out = tmp.path().join(how);
            std::fs::create_dir(&out).unwrap();
            std::fs::write(out.join("mine.txt"), b"the user's own").unwrap();
            let before = listing(&out);
            let nameless = how == "usual" && nameless_in(&out).is_some();
            let halfway = std::sync::Mutex::new(Vec::new());
            let cut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let report = |done: u64, total: u64| {
                    if done > 0 && done < total {
                        halfway.lock().unwrap().push(listing(&out));
                        panic!("cut short after {done} of {total} bytes");
                    }
                };
                p.save_file_into(&id, &out, &report, new_part)
            }));
            assert!(cut.is_err(), "{how}: the save was cut short");
            let halfway = halfway.into_inner().unwrap();
            let [seen] = halfway.as_slice() else {
                panic!("{how}: one report halfway: {halfway:?}");
            };
            let new: Vec<_> = seen.iter().filter(|e| !before.contains(e)).collect();
            if nameless {
                assert!(
                    new.is_empty(),
                    "{how}: nothing named as it is written: {new:?}"
                );
            } else {
                assert!(
                    matches!(new.as_slice(), [(name, _)] if name.starts_with(".strand-")),
                    "{how}: only the part: {new:?}"
                );
            }
            for (name, mode) in new {
                assert_eq!(
                    mode & 0o077,
                    0,
                    "{how}: {name} is its user's alone: {mode:o}"
                );
            }
            assert_eq!(listing(&out), before, "{how}: nothing left");
        }
    }

    /// A saved file gets the mode any new file in its folder gets (the
    /// umask's), though it was written where only its user could read it,
    /// and keeps one name: the part's is gone.
    #[test]
    fn a_saved_file_has_a_new_files_mode_and_one_name() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let tmp = tempfile::tempdir().unwrap();
        let (p, _, id, data) = three_part_file(tmp.path());
        for (how, new_part) in PART_MAKERS {
            let out = tmp.path().join(how);
            std::fs::create_dir(&out).unwrap();
            let usual = std::fs::File::create_new(out.join("usual"))
                .and_then(|f| f.metadata())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            let halfway = std::sync::Mutex::new(Vec::new());
            let report = |done: u64, total: u64| {
                if done > 0 && done < total {
                    let parts = listing(&out)
                        .into_iter()
                        .filter(|(name, _)| name.starts_with(".strand-"));
                    halfway.lock().unwrap().push(parts.collect::<Vec<_>>());
                }
            };
            let saved = p.save_file_into(&id, &out, &report, new_part).unwrap();
            let halfway = halfway.into_inner().unwrap();
            assert_eq!(halfway.len(), 2, "{how}: reported twice halfway");
            for parts in &halfway {
                if how == "named" {
                    assert_eq!(parts.len(), 1, "{how}: the part: {parts:?}");
                }
                for (name, mode) in parts {
                    assert_eq!(
                        mode & 0o077,
                        0,
                        "{how}: {name} is its user's alone: {mode:o}"
                    );
                }
            }
            assert_eq!(std::fs::read(&saved).unwrap(), data);
            let meta = std::fs::metadata(&saved).unwrap();
            assert_eq!(
                meta.permissions().mode() & 0o777,
                usual,
                "{how}: the mode of a new file"
            );
            assert_eq!(meta.nlink(), 1, "{how}: one name");
            let names: Vec<_> = listing(&out).into_iter().map(|(name, _)| name).collect();
            assert_eq!(names, ["private.bin", "usual"], "{how}");
        }
    }

    /// A nameless file, where the filesystem has them, takes its name by
    /// a link and keeps it: the save's usual way, with no copy made.
    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn a_nameless_file_takes_its_name() {
        let tmp = tempfile::tempdir().unwrap();
        let Some(mut file) = nameless_in(tmp.path()) else {
            // A filesystem without them (the named part is tested above).
            return;
        };
        file.write_all(b"the whole file").unwrap();
        assert!(listing(tmp.path()).is_empty(), "nameless while written");
        let saved = link_nameless(&file, &mut Names::new(tmp.path(), "notes.txt")).unwrap();
        assert_eq!(saved, tmp.path().join("notes.txt"));
        drop(file);
        assert_eq!(std::fs::read(&saved).unwrap(), b"the whole file");
        assert_eq!(listing(tmp.path()).len(), 1);
    }

    /// A nameless file that cannot be linked (no /proc in a sandbox, a
    /// filesystem or a policy that refuses) is saved through a named part
    /// that takes its bytes, and nothing else stays.
    #[test]
    fn a_file_copied_to_a_named_part_saves_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"the whole file").unwrap();
        let part = Part::copy_of(&mut file, tmp.path()).unwrap();
        let saved = part.name(&mut Names::new(tmp.path(), "notes.txt")).unwrap();
        assert_eq!(saved, tmp.path().join("notes.txt"));
        assert_eq!(std::fs::read(&saved).unwrap(), b"the whole file");
        assert_eq!(listing(tmp.path()).len(), 1, "the part is gone");
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("report.pdf"), "report.pdf");
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name("..."), "file");
        assert_eq!(safe_name("a\u{7}b\nc"), "a_b_c");
        // Shortened by bytes, on a character, keeping the extension.
        let long = format!("{}.jpeg", "é".repeat(125));
        let safe = safe_name(&long);
        assert_eq!(safe.len(), 199);
        assert_eq!(safe, format!("{}.jpeg", "é".repeat(97)));
        assert_eq!(safe_name(&"ü".repeat(127)), "ü".repeat(100));
        assert_eq!(safe_name(""), "file");
    }
}
