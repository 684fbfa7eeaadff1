//! A profile: one directory holding one user's identity, contacts and
//! messages, encrypted at rest and owned by one process at a time.
//!
//! A [`Profile`] is a cheap, shared handle (clone it freely). Reads run in
//! read transactions on the caller's thread and never wait for a writer.
//! Writes run in place until a node starts, then on the profile's writer
//! thread ([`crate::profile::writer`]). The contact list is kept in memory with
//! everything the protocol derives from it (the keys shared with each
//! contact, one X25519 operation per contact), recomputed only when a
//! contact is added, never per link.

pub(crate) mod base;
pub mod budget;
pub(crate) mod bundles;
pub(crate) mod carried;
pub(crate) mod crypto;
pub(crate) mod error;
pub(crate) mod expiry;
pub(crate) mod files;
pub(crate) mod groups;
pub(crate) mod mailbox_records;
pub(crate) mod pairing;
pub mod prefs;
pub(crate) mod reach;
pub(crate) mod removal;
pub mod schema;
pub mod sealed;
pub(crate) mod store;
pub mod strength;
pub(crate) mod telling;
pub(crate) mod views;
pub mod wipe;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand_core::{CryptoRng, RngCore};
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use strand_sync::limits::Time;
use strand_sync::{
    AuthorId, Chain, Contact, Endpoint, GroupId, Identity, Inbound, Invite, Key, Kind, Message,
    PublicIdentity, Verdict,
};
use zeroize::Zeroizing;

pub(crate) use crate::profile::base::{cut, hex, now, unhex};
pub(crate) use crate::profile::crypto::os_rng;
use crate::profile::crypto::{open, passphrase_key, seal, KdfParams};
pub use crate::profile::error::{chain, io_words, AddressError, DbError, IoError, ProfileError};
use crate::profile::pairing::Added;
use crate::profile::schema::{meta, CONTACTS, DB_FILE, FLOOR, MESSAGES, META, OUTBOX, SEEN, SHOWN};
use crate::profile::sealed::{read_header, read_header_from, write_header, Header, SealedBackend};
use crate::profile::store::{sync_key, table_key, Inserter, Position, ReadView, RedbStore};
use crate::profile::writer::Writer;

const ROLE_ROOT: &str = "strand/v1/root";
/// redb's page cache. Its default (1 GiB) would let an idle node holding a
/// large history grow to the size of its file; 8 MiB keeps the hot pages
/// (recent ranges, the B-tree's upper levels) and an idle node small.
const CACHE_BYTES: usize = 8 * 1024 * 1024;
const ROLE_IDENTITY: &str = "strand/v1/identity";
const ROLE_CONTACT: &str = "strand/v1/contact";
/// How long [`Profile::close`] waits for reads still in flight.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Where a message this profile wrote stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Stored here; not yet sent on any link.
    Queued = 0,
    /// Went out on a link to the contact.
    Sent = 1,
    /// The contact acknowledged it holds it.
    Delivered = 2,
}

impl Delivery {
    pub(crate) fn from_u8(v: u8) -> Delivery {
        match v {
            2 => Delivery::Delivered,
            1 => Delivery::Sent,
            _ => Delivery::Queued,
        }
    }

    /// A lowercase name for CLIs and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Queued => "queued",
            Delivery::Sent => "sent",
            Delivery::Delivered => "delivered",
        }
    }
}

/// A contact as the user knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRecord {
    /// The name the user gave them (unique in the profile).
    pub name: String,
    /// Their public keys.
    pub public: PublicIdentity,
    /// When they were added.
    pub added_at: Time,
    /// Whether the user confirmed their safety number
    /// ([`strand_sync::safety_number`]) with them, in person or over a
    /// channel they trust.
    pub verified: bool,
    /// Added from a version 1 invite, which could not prove that its two
    /// keys belong together: confirming the safety number is the only check.
    pub legacy: bool,
    /// A mailbox (PROTOCOL.md §17.1): this user's own, or one a contact
    /// named. It carries sealed messages and reads nothing, so nothing is
    /// written to it.
    pub mailbox: bool,
    /// At a mailbox: added from its owner's list of contacts (PROTOCOL.md
    /// §17.1), so a later list that leaves them out deletes them, whatever
    /// the mailbox's user has called them since. One added by hand is
    /// never deleted so.
    pub listed: bool,
}

/// A message of a conversation, decrypted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredMessage {
    /// Its sync key (the author's timestamp, id).
    #[serde(with = "crate::profile::store::key_serde")]
    pub key: Key,
    /// When it is shown: the author's time (a contact's: or when it
    /// arrived, if dated ahead of that), or when it arrived if it claimed
    /// to be no newer than what the user had read or written (see
    /// [`Position`]).
    pub shown: Time,
    /// When this device stored it; `None` for messages stored before
    /// arrival times were kept.
    pub received: Option<Time>,
    /// Whether this profile wrote it.
    pub outgoing: bool,
    /// The text (empty for kinds this version does not show).
    pub text: String,
    /// For outgoing messages, its delivery state.
    pub delivery: Option<Delivery>,
    /// When it disappears, for a message written under a timer.
    pub expires: Option<Time>,
    /// For a file: what it is and how much of it is here.
    pub file: Option<crate::profile::files::FileInfo>,
}

impl StoredMessage {
    /// Where it sits in its conversation.
    pub fn position(&self) -> Position {
        Position {
            shown: self.shown,
            key: self.key,
        }
    }

    /// How long before it arrived its author claims to have written it,
    /// if that is more than [`SKEW_SHOWN`]: a UI marks such a message
    /// with both times. Messages carried for hours are honest examples; a
    /// contact backdating one is the other.
    pub fn skew(&self) -> Option<Time> {
        let gap = self.received?.checked_sub(self.key.time)?;
        (gap > SKEW_SHOWN).then_some(gap)
    }
}

/// A message that arrives more than this after its author's time is shown
/// with both times: the clock skew strand-sync tolerates.
pub const SKEW_SHOWN: Time = strand_sync::limits::MAX_CLOCK_SKEW;

/// The contact list and what the protocol derives from it, replaced whole
/// on every change.
pub(crate) struct Book {
    /// By name.
    pub(crate) records: Vec<ContactRecord>,
    /// The protocol's view of each, in the same order.
    pub(crate) sync: Vec<Contact>,
    /// Starts every link's session.
    pub(crate) endpoint: Endpoint,
    /// Each record's name as [`Skeleton`] compares it, in the same
    /// order: computed once per change of the list, not per lookup.
    skeletons: Vec<Skeleton>,
}

impl Book {
    fn new(identity: &Identity, mut records: Vec<ContactRecord>, chains: &[Chain]) -> Book {
        records.sort_by(|a, b| a.name.cmp(&b.name));
        // A record whose keys give no shared secret cannot have been added;
        // if one is found it is skipped, not fatal.
        let (records, mut sync): (Vec<_>, Vec<_>) = records
            .into_iter()
            .filter_map(|r| identity.contact(&r.public).ok().map(|c| (r, c)))
            .unzip();
        // Each contact also syncs every group epoch both are members of,
        // within the session's limit: each group's newest first, then
        // each one's next, and so on. Groups take turns by who welcomed
        // this device into them (this user, for groups made here), so a
        // contact who welcomes it into hundreds of groups of their own,
        // numbering their epochs as they like, does not crowd out another
        // contact's groups (before, the highest numbers came first).
        let me = identity.public().sign;
        let epochs = sync_order(chains, &me);
        for contact in &mut sync {
            // The carrying pool (PROTOCOL.md §17) right after the 1:1
            // conversation, so a contact in many groups still has it.
            contact.groups.push(contact.pool.clone());
            for e in &epochs {
                if e.member(&contact.public.sign).is_some() {
                    contact.groups.push(e.group().clone());
                }
            }
        }
        let endpoint = Endpoint::new(identity, sync.clone());
        let skeletons = records.iter().map(|r| Skeleton::of(&r.name)).collect();
        Book {
            records,
            sync,
            endpoint,
            skeletons,
        }
    }

    pub(crate) fn sync_contact(
        &self,
        public: &PublicIdentity,
    ) -> Option<(&ContactRecord, &Contact)> {
        self.records
            .iter()
            .zip(&self.sync)
            .find(|(r, _)| r.public == *public)
    }

    /// The contact who holds the signing key `sign` (contacts never share
    /// one), whatever key-agreement key it comes with: a group's member
    /// list names a member's signing key with the key-agreement key its
    /// adder chose, which need not be the member's.
    pub(crate) fn by_signing_key(&self, sign: &AuthorId) -> Option<(&ContactRecord, &Contact)> {
        self.records
            .iter()
            .zip(&self.sync)
            .find(|(r, _)| r.public.sign == *sign)
    }

    /// The contact whose 1:1 group is `group`.
    pub(crate) fn by_direct_group(&self, group: &GroupId) -> Option<(&ContactRecord, &Contact)> {
        self.records
            .iter()
            .zip(&self.sync)
            .find(|(_, c)| c.direct_group().id == *group)
    }
}

/// The group epochs this user is a member of, in the order contacts sync
/// them ([`Book::new`]): by depth (each group's newest epoch, then the one
/// before, ...), then by turn among the groups one welcomer brought in
/// (its most advanced first), then by welcomer.
fn sync_order<'c>(chains: &'c [Chain], me: &AuthorId) -> Vec<&'c strand_sync::Epoch> {
    let mut chains: Vec<&Chain> = chains.iter().collect();
    chains.sort_by_key(|c| std::cmp::Reverse(c.last().number));
    let mut turns: std::collections::HashMap<AuthorId, usize> = std::collections::HashMap::new();
    let mut keyed = Vec::new();
    for chain in chains {
        // Who welcomed this device into the epoch its path starts at: the
        // same after a restart, whatever order the entries are read in.
        let start = chain.path().first();
        let by = chain
            .entries()
            .iter()
            .find(|e| Some(&e.id) == start)
            .map_or(*me, |e| e.by);
        let turn = turns.entry(by).or_default();
        let mut held: Vec<&strand_sync::Epoch> =
            chain.epochs().filter(|e| e.member(me).is_some()).collect();
        held.sort_by_key(|e| std::cmp::Reverse(e.number));
        for (depth, e) in held.into_iter().enumerate() {
            keyed.push(((depth, *turn, by), e));
        }
        *turn += 1;
    }
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, e)| e).collect()
}

/// The groups as published, and which of their names are shown with
/// their ids ([`Profile::alike_names`]).
pub(crate) type AlikeNames = (std::sync::Weak<Vec<Chain>>, Arc<Vec<bool>>);

struct Inner {
    dir: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
    root: Zeroizing<[u8; 32]>,
    identity: RwLock<Arc<Identity>>,
    book: RwLock<Arc<Book>>,
    /// Private groups (see [`crate::profile::groups`]).
    chains: RwLock<Arc<Vec<Chain>>>,
    /// Contact-list changes one at a time: check, write, then publish.
    adding: std::sync::Mutex<()>,
    /// Changes of the groups one at a time, from the copy to its
    /// publishing ([`ChainsStep`]).
    chains_step: std::sync::Mutex<()>,
    /// This user's own group changes one at a time, from reading the
    /// head to following the change ([`Profile::change_group`]): two made
    /// from one head would both be told made, and only one can count.
    own_changes: std::sync::Mutex<()>,
    /// At a mailbox: its owner's lists taken one at a time (is it the
    /// newest, then delete, then add).
    pub(crate) lists: std::sync::Mutex<()>,
    /// Which groups' names are shown with their ids, for the groups as
    /// published last asked ([`Profile::alike_names`]): worked out once
    /// per change of the groups, not per text.
    pub(crate) alike: std::sync::Mutex<Option<AlikeNames>>,
    /// Passphrase changes one at a time, from checking the current
    /// passphrase against the header to rewriting it: two at once would
    /// both check the old one and both be told done, leaving whichever
    /// wrote last (or one copy of each).
    passphrase: std::sync::Mutex<()>,
    /// What contacts are told of where to reach this device changed one
    /// change at a time, from reading the relay list and the last record
    /// to storing the new one ([`Profile::publish_reach`], the relay
    /// list's changes, the record for contacts added since): two at once
    /// could each read before the other wrote, and whichever stored last
    /// would drop the other's change.
    reaching: std::sync::Mutex<()>,
    /// The relays this node offers its contacts, as this process last
    /// said them (`None`: not yet, and the last record's stand); changed
    /// under `reaching` ([`Profile::publish_reach`]).
    offering: std::sync::Mutex<Option<Vec<Vec<u8>>>>,
    /// Welcomes written again that this process found in the newcomer's
    /// 1:1 log, wrote there, or is writing, so that each pair is looked
    /// for once an unlock while its group asks for it
    /// ([`groups::WelcomedAgain`], `Profile::welcomes_to_write`).
    welcomed_again: std::sync::Mutex<groups::WelcomedAgain>,
    /// Welcomes refused for want of room, followed again once room is
    /// made for them ([`groups::WaitingForRoom`]).
    waiting_for_room: std::sync::Mutex<groups::WaitingForRoom>,
    writer: Writer,
}

/// A change of the groups in memory under way ([`Profile::chains_step`]):
/// the copy, changed in place; nothing changes until it is published.
pub(crate) struct ChainsStep<'a> {
    chains: Vec<Chain>,
    profile: &'a Profile,
    _one_at_a_time: std::sync::MutexGuard<'a, ()>,
}

impl ChainsStep<'_> {
    /// Replaces the groups with the copy, and with them what each contact
    /// syncs.
    pub(crate) fn publish(self) {
        let p = self.profile;
        let _contacts = p.inner.adding.lock().expect("adding lock");
        let records = p.book().records.clone();
        *p.inner.book.write().expect("book lock") =
            Arc::new(Book::new(&p.identity(), records, &self.chains));
        *p.inner.chains.write().expect("groups lock") = Arc::new(self.chains);
    }
}

impl std::ops::Deref for ChainsStep<'_> {
    type Target = Vec<Chain>;
    fn deref(&self) -> &Vec<Chain> {
        &self.chains
    }
}

impl std::ops::DerefMut for ChainsStep<'_> {
    fn deref_mut(&mut self) -> &mut Vec<Chain> {
        &mut self.chains
    }
}

/// An open, unlocked profile. While any handle is open (or until
/// [`Profile::close`]) it holds the profile's lock: a second process (or a
/// second `Profile::open` in this one) gets [`ProfileError::InUse`].
#[derive(Clone)]
pub struct Profile {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// Why `name`, the user's own, breaks today's naming rules, if it does
/// ([`Profile::own_name_problem`]; the app asks it of the name an older
/// node's status gives, which says nothing of it).
pub fn own_name_problem(name: &str) -> Option<String> {
    let why = match strand_sync::check_name(name) {
        Ok(()) => return None,
        Err(strand_sync::KeyError::Name(why)) => why,
        Err(_) => "breaks the naming rules",
    };
    Some(format!(
        "your name \"{}\" {why}, which a name may no longer do: no one can add an invite that carries it. Choose another name first (`strand name NEW_NAME`, or Settings in the app)",
        crate::display::one_line(name)
    ))
}

/// How the name a mailbox gives a contact its owner listed ends (after
/// the owner's name, PROTOCOL.md §17.1): by their key, so unique.
pub(crate) fn listed_suffix(public: &PublicIdentity) -> String {
    format!("'s contact {}", crate::profile::hex(&public.sign[..8]))
}

/// A name the user gives a contact: the naming rules of
/// [`strand_sync::check_name`], said of a contact name.
fn check_contact_name(name: &str) -> Result<(), ProfileError> {
    strand_sync::check_name(name).map_err(|e| match e {
        strand_sync::KeyError::Name(why) => ProfileError::Name(format!("the contact name {why}")),
        other => ProfileError::Key(other),
    })
}

pub(crate) fn db_error(e: impl Into<redb::Error>) -> ProfileError {
    ProfileError::Db(DbError::from(e.into()))
}

pub(crate) fn io_error(path: &Path, e: std::io::Error) -> ProfileError {
    ProfileError::Io {
        path: path.to_path_buf(),
        source: crate::profile::IoError::from(e),
    }
}

/// Splits the file chunks a store from before schema version 4 holds
/// whole ([`schema::split_chunks`]). If that fails (a full disk), the
/// chunks left whole read as before and the handle is replaced by
/// `reopen`'s: redb refuses every write on a handle whose commit failed.
pub(crate) fn split_chunks(
    db: Database,
    from: u32,
    reopen: impl FnOnce() -> Result<Database, ProfileError>,
) -> Result<Database, ProfileError> {
    match schema::split_chunks(&db, from) {
        Ok(()) => Ok(db),
        Err(e) => {
            tracing::warn!("file chunks were left stored whole: {e}");
            drop(db);
            reopen()
        }
    }
}

pub(crate) fn open_db(dir: &Path, create: bool) -> Result<Database, ProfileError> {
    let path = dir.join(DB_FILE);
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    let result = if create {
        builder.create(&path)
    } else {
        builder.open(&path)
    };
    result.map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => ProfileError::InUse(dir.to_path_buf()),
        other => db_error(other),
    })
}

/// Opens the sealed profile file in `dir` with the page key from `root`
/// (see [`crate::profile::sealed`]).
pub(crate) fn open_sealed(dir: &Path, root: &[u8; 32]) -> Result<Database, ProfileError> {
    sealed_db(dir, lock_sealed(dir)?, root)
}

/// Opens the sealed profile file in `dir` and takes its lock
/// ([`crate::profile::sealed::try_lock`]), which the database built on
/// the file then holds: [`ProfileError::InUse`] if another handle holds
/// it. Dropped, the file lets go of it. A wipe holds it the same way
/// ([`crate::profile::wipe`]).
pub(crate) fn lock_sealed(dir: &Path) -> Result<std::fs::File, ProfileError> {
    let path = dir.join(DB_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    match crate::profile::sealed::try_lock(&file) {
        Ok(true) => Ok(file),
        Ok(false) => Err(ProfileError::InUse(dir.to_path_buf())),
        Err(e) => Err(io_error(&path, e)),
    }
}

fn sealed_db(dir: &Path, file: std::fs::File, root: &[u8; 32]) -> Result<Database, ProfileError> {
    let path = dir.join(DB_FILE);
    let backend = SealedBackend::new(file, root).map_err(|e| io_error(&path, e))?;
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    builder.create_with_backend(backend).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => ProfileError::InUse(dir.to_path_buf()),
        other => db_error(other),
    })
}

/// Where [`Profile::create`] makes a profile's file, before it takes
/// [`DB_FILE`]'s name.
pub(crate) const MAKING_FILE: &str = "strand.redb.new";

/// A new file for a sealed profile at `path` (mode 0600 from the start),
/// with its header written.
fn new_sealed_file(path: &Path, header: &Header) -> Result<std::fs::File, ProfileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    if let Err(e) = write_header(&file, header, true) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(io_error(path, e));
    }
    Ok(file)
}

/// Calls `held` for [`Profile::open_holding`], the profile's lock just
/// taken. (In tests, then runs the pause set in `PAUSE_WHILE_HELD`.)
fn now_held<T>(dir: &Path, held: impl FnOnce(&Path) -> T) -> T {
    let held = held(dir);
    #[cfg(test)]
    if let Some(pause) = PAUSE_WHILE_HELD.with(|pause| pause.borrow_mut().take()) {
        pause(dir);
    }
    held
}

/// What a test runs while an open holds the profile ([`PAUSE_WHILE_HELD`]).
#[cfg(test)]
pub(crate) type WhileHeld = Box<dyn FnOnce(&Path)>;

/// What a test runs as a root key is about to be unsealed
/// ([`PAUSE_WHILE_UNSEALING`]).
#[cfg(test)]
pub(crate) type WhileUnsealing = Box<dyn FnOnce()>;

#[cfg(test)]
thread_local! {
    /// Run by the next [`Profile::open`] on this thread once it holds the
    /// profile's lock (and did what it was asked to do then), before the
    /// rest of the open: a test looks at the profile folder at that
    /// moment as another process would.
    pub(crate) static PAUSE_WHILE_HELD: std::cell::RefCell<Option<WhileHeld>> =
        std::cell::RefCell::new(None);

    /// Run by the next unsealing of a root key under a passphrase on this
    /// thread (an open's, a check's), just before its key is derived: a
    /// test looks at the profile folder as another process would during
    /// the seconds an open spends deriving it.
    pub(crate) static PAUSE_WHILE_UNSEALING: std::cell::RefCell<Option<WhileUnsealing>> =
        std::cell::RefCell::new(None);
}

impl Profile {
    fn from_parts(
        dir: &Path,
        db: Database,
        root: Zeroizing<[u8; 32]>,
        identity: Identity,
        records: Vec<ContactRecord>,
    ) -> Result<Profile, ProfileError> {
        let book = Book::new(&identity, records, &[]);
        let profile = Profile {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                db: RwLock::new(Some(Arc::new(db))),
                root,
                identity: RwLock::new(Arc::new(identity)),
                book: RwLock::new(Arc::new(book)),
                chains: RwLock::new(Arc::new(Vec::new())),
                adding: std::sync::Mutex::new(()),
                chains_step: std::sync::Mutex::new(()),
                own_changes: std::sync::Mutex::new(()),
                lists: std::sync::Mutex::new(()),
                alike: std::sync::Mutex::new(None),
                passphrase: std::sync::Mutex::new(()),
                reaching: std::sync::Mutex::new(()),
                offering: std::sync::Mutex::new(None),
                welcomed_again: std::sync::Mutex::new(groups::WelcomedAgain::default()),
                waiting_for_room: std::sync::Mutex::new(groups::WaitingForRoom::default()),
                writer: Writer::default(),
            }),
        };
        profile.load_groups()?;
        // Parts of a file whose send a crash cut short: never listed, so
        // never synced or shown.
        profile.drop_unsent()?;
        // What expired while the profile was closed goes before anything
        // can read or sync it.
        profile.sweep_expired(crate::profile::now())?;
        // Group messages stored but never followed (the node stopped
        // first). Not a reason to refuse the profile: what fails is logged.
        let (now, rng) = (crate::profile::now(), &mut crate::profile::os_rng());
        profile.follow_pending(now, rng);
        // The groups' own work (key requests and answers, changes to make
        // again, removals of members who left) that a stop, a failure or
        // the bound on rounds cut short: otherwise only a group's next
        // message would bring it back. Writes only if there is any.
        let roots = profile.chains().iter().map(|c| c.root()).collect();
        profile.group_work(&roots, now, rng);
        // And the user's name in each group's newest epoch that lacks it
        // (a group joined, or a rename, just before a stop: the name was
        // written after the join or the rename committed). Writes only
        // where it is missing.
        if let Err(e) = profile.write_chosen_names(None, now, rng) {
            tracing::warn!("writing the user's name into groups failed: {e}");
        }
        // Once: whose each mailbox from an older Strand is. Not a reason
        // to refuse the profile: tried again at the next open.
        if let Err(e) = profile.find_mailbox_owners(rng) {
            tracing::warn!("finding whose older mailboxes are failed: {e}");
        }
        Ok(profile)
    }

    /// Whether `dir` holds a profile.
    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_FILE).is_file()
    }

    /// Whether another process (or handle) holds the profile in `dir` now.
    /// Reads nothing secret; for UIs that want to say so before asking for
    /// the passphrase.
    pub fn in_use(dir: &Path) -> bool {
        let path = dir.join(DB_FILE);
        if !Profile::exists(dir) {
            return false;
        }
        if crate::profile::sealed::is_sealed(&path) {
            return crate::profile::sealed::is_locked(&path);
        }
        matches!(open_db(dir, false), Err(ProfileError::InUse(_)))
    }

    /// The Argon2id parameters the profile in `dir` is locked with (public:
    /// they are read before the passphrase).
    pub fn kdf_params(dir: &Path) -> Result<KdfParams, ProfileError> {
        let path = dir.join(DB_FILE);
        if !Profile::exists(dir) {
            return Err(ProfileError::NotFound(dir.to_path_buf()));
        }
        if crate::profile::sealed::is_sealed(&path) {
            return read_header(&path)
                .map(|(_, h)| h.kdf)
                .map_err(|e| ProfileError::Header(e.into()));
        }
        let db = open_db(dir, false)?;
        let txn = db.begin_read().map_err(db_error)?;
        let m = txn.open_table(META).map_err(db_error)?;
        let v = m
            .get(meta::KDF)
            .map_err(db_error)?
            .ok_or_else(|| ProfileError::Corrupt("missing `kdf`".into()))?;
        KdfParams::decode(v.value())
            .map(|(_, k)| k)
            .ok_or_else(|| ProfileError::Corrupt("bad kdf parameters".into()))
    }

    /// Checks that `passphrase` unlocks the profile in `dir` without
    /// opening it: the root key is unsealed from the file's header (its
    /// KDF parameters and sealed root key), which is read without the
    /// profile's lock, so this answers while a node holds the profile.
    /// A wrong passphrase is [`ProfileError::WrongPassphrase`], as
    /// [`Profile::open`] says it; nothing is written.
    pub fn check_passphrase(dir: &Path, passphrase: &str) -> Result<(), ProfileError> {
        if !Profile::exists(dir) {
            return Err(ProfileError::NotFound(dir.to_path_buf()));
        }
        let path = dir.join(DB_FILE);
        if crate::profile::sealed::is_sealed(&path) {
            unseal_header(&path, passphrase)?;
            return Ok(());
        }
        // The format from before files were sealed whole keeps them in
        // rows (read under redb's lock; a node that opened such a profile
        // has sealed it already).
        let db = open_db(dir, false)?;
        let txn = db.begin_read().map_err(db_error)?;
        let m = txn.open_table(META).map_err(db_error)?;
        let (salt, kdf) = KdfParams::decode(&meta_value(&m, meta::KDF)?)
            .ok_or_else(|| ProfileError::Corrupt("bad kdf parameters".into()))?;
        kdf.check_openable()?;
        unseal_root(passphrase, &salt, kdf, &meta_value(&m, meta::ROOT)?)?;
        Ok(())
    }

    /// Whether the profile file in `dir` is sealed as a whole (see
    /// [`crate::profile::sealed`]); profiles from before are, after their next unlock.
    pub fn is_sealed(dir: &Path) -> bool {
        crate::profile::sealed::is_sealed(&dir.join(DB_FILE))
    }

    /// Creates a new profile with a fresh identity named `name`, locked by
    /// `passphrase`.
    pub fn create(
        dir: &Path,
        name: &str,
        passphrase: &str,
        kdf: KdfParams,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Profile, ProfileError> {
        if Profile::exists(dir) {
            return Err(ProfileError::AlreadyExists(dir.to_path_buf()));
        }
        if passphrase.is_empty() {
            return Err(ProfileError::EmptyPassphrase);
        }
        if !kdf.allowed() {
            return Err(ProfileError::WeakKdf);
        }
        Profile::create_as(dir, name, passphrase, kdf, true, rng)
    }

    /// A profile in the format used before files were sealed as a whole
    /// (plain redb, rows sealed one by one), for tests of the migration.
    #[cfg(feature = "insecure-kdf")]
    pub fn create_unsealed_for_tests(
        dir: &Path,
        name: &str,
        passphrase: &str,
        kdf: KdfParams,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Profile, ProfileError> {
        Profile::create_as(dir, name, passphrase, kdf, false, rng)
    }

    fn create_as(
        dir: &Path,
        name: &str,
        passphrase: &str,
        kdf: KdfParams,
        sealed: bool,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Profile, ProfileError> {
        // As every other name the user types: space around it is not part
        // of it.
        let identity = Identity::generate(name.trim(), rng)?;
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        restrict_permissions(dir);
        let mut root = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut root[..]);
        let header = sealed_header(passphrase, &root, kdf, rng)?;
        let path = dir.join(DB_FILE);
        // Made under another name and given the profile's once its first
        // transaction is in: a create killed half way leaves no profile
        // (before, a file with a header and nothing else, which `init`
        // said was a profile and `open` said was damaged). One a create
        // cut short left is no one's.
        let making = dir.join(MAKING_FILE);
        let db = if sealed {
            if let Err(e) = crate::profile::wipe::destroy_sealing(dir) {
                tracing::warn!("a profile file a create cut short left is still there: {e}");
            }
            let file = new_sealed_file(&making, &header)?;
            #[cfg(test)]
            if tests::CUT_AFTER_HEADER.with(std::cell::Cell::get) {
                // As a kill here: nothing after it runs.
                std::mem::forget(file);
                return Err(ProfileError::Closed);
            }
            sealed_db(dir, file, &root)
        } else {
            open_db(dir, true)
        };
        // A profile made only in part (the disk filled up) is no profile:
        // left, `init` would say one exists and `open` that it is damaged.
        let made = db.and_then(|db| {
            Profile::first_commit(&db, &identity, name, &header, kdf, sealed, &root, rng)?;
            if sealed {
                std::fs::rename(&making, &path).map_err(|e| io_error(&path, e))?;
                crate::profile::files::sync_dir(dir);
            }
            Ok(db)
        });
        let db = made.inspect_err(|_| {
            // (The unsealed format, for tests, may have failed on a file
            // it did not make.)
            if sealed {
                let _ = std::fs::remove_file(&making);
            }
        })?;
        restrict_permissions(&dir.join(DB_FILE));
        Profile::from_parts(dir, db, root, identity, Vec::new())
    }

    /// A new profile's first transaction: the schema version, the sealed
    /// identity and the tables.
    #[allow(clippy::too_many_arguments)]
    fn first_commit(
        db: &Database,
        identity: &Identity,
        name: &str,
        header: &Header,
        kdf: KdfParams,
        sealed: bool,
        root: &[u8; 32],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        // Made at its full size: a Vec that grew would leave the keys in
        // the freed smaller buffer, unwiped.
        let mut secret = Zeroizing::new(Vec::with_capacity(64 + name.len()));
        secret.extend_from_slice(&identity.to_secret_bytes()[..]);
        secret.extend_from_slice(name.as_bytes());
        let mut txn = db.begin_write().map_err(db_error)?;
        txn.set_two_phase_commit(true);
        {
            let mut m = txn.open_table(META).map_err(db_error)?;
            m.insert(meta::SCHEMA, &schema::SCHEMA_VERSION.to_le_bytes()[..])
                .map_err(db_error)?;
            if !sealed {
                m.insert(meta::KDF, &kdf.encode(&header.salt)[..])
                    .map_err(db_error)?;
                m.insert(meta::ROOT, &header.sealed_root[..])
                    .map_err(db_error)?;
            }
            m.insert(meta::IDENTITY, &seal(root, ROLE_IDENTITY, &secret, rng)[..])
                .map_err(db_error)?;
            txn.open_table(CONTACTS).map_err(db_error)?;
            txn.open_table(MESSAGES).map_err(db_error)?;
            txn.open_table(OUTBOX).map_err(db_error)?;
            txn.open_table(SHOWN).map_err(db_error)?;
            txn.open_table(SEEN).map_err(db_error)?;
            txn.open_table(FLOOR).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }

    /// Opens and unlocks an existing profile. A wrong passphrase is
    /// [`ProfileError::WrongPassphrase`] and changes nothing.
    pub fn open(dir: &Path, passphrase: &str) -> Result<Profile, ProfileError> {
        Profile::open_holding(dir, passphrase, |_| ()).map(|(profile, ())| profile)
    }

    /// [`Profile::open`], calling `held` with the profile's folder as soon
    /// as the profile's lock is taken, before the rest of the open, which
    /// can take seconds (the key derived from the passphrase; migrations;
    /// the groups read; what expired swept). What `held` returns comes
    /// back with the profile, or is dropped where the open fails after it
    /// (an error or a panic).
    /// A node that will serve its control socket marks itself as starting
    /// this way ([`crate::runtime::starting`]): a command run during the
    /// open then waits for it rather than find the profile in use, and a
    /// wrong passphrase leaves no mark.
    pub(crate) fn open_holding<T>(
        dir: &Path,
        passphrase: &str,
        held: impl FnOnce(&Path) -> T,
    ) -> Result<(Profile, T), ProfileError> {
        if !Profile::exists(dir) {
            return Err(ProfileError::NotFound(dir.to_path_buf()));
        }
        let path = dir.join(DB_FILE);
        if crate::profile::sealed::is_sealed(&path) {
            return Profile::open_sealed_profile(dir, passphrase, held);
        }
        let db = open_db(dir, false)?;
        let held = now_held(dir, held);
        let txn = db.begin_read().map_err(db_error)?;
        let m = txn.open_table(META).map_err(db_error)?;
        let get = |name: &str| meta_value(&m, name);
        let version = schema_version(&get(meta::SCHEMA)?)?;
        let (salt, kdf) = KdfParams::decode(&get(meta::KDF)?)
            .ok_or_else(|| ProfileError::Corrupt("bad kdf parameters".into()))?;
        kdf.check_openable()?;
        let root = unseal_root(passphrase, &salt, kdf, &get(meta::ROOT)?)?;
        let identity = open_identity(&root, &get(meta::IDENTITY)?)?;
        let contacts = load_contacts(&txn, &root)?;
        let sealed_root = get(meta::ROOT)?;
        drop((m, txn));
        schema::migrate(&db, version, &identity.public().sign)?;
        // Move it into a sealed file, with stronger KDF parameters if they
        // were under the floor.
        let header = if kdf.allowed() {
            Header {
                salt,
                kdf,
                sealed_root,
            }
        } else {
            strong_header(passphrase, &root)?
        };
        let db = seal_file(dir, db, &header, &root)?;
        let db = split_chunks(db, version, || open_sealed(dir, &root))?;
        let profile = Profile::from_parts(dir, db, root, identity, contacts)?;
        Ok((profile, held))
    }

    /// Changes the passphrase that unlocks this profile. `current` must
    /// unlock it now, and `new` must not be empty; otherwise nothing
    /// changes. Both copies of the file's header are rewritten, so the file
    /// keeps no copy of the root key sealed under the old passphrase (flash
    /// storage may still hold old blocks elsewhere: see the guide). If the
    /// disk fails once the first copy is synced,
    /// [`ProfileError::OldHeaderLeft`]: the new passphrase is the one in
    /// force, and changing it again overwrites the old copy; if it fails
    /// syncing that copy, [`ProfileError::HeaderUncertain`]. The
    /// key derivation keeps its parameters, or gets stronger ones if they
    /// are under today's floor. Changes run one at a time: of two at once
    /// from the same passphrase, the second is told
    /// [`ProfileError::WrongPassphrase`].
    pub fn change_passphrase(
        &self,
        current: &str,
        new: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        if new.is_empty() {
            return Err(ProfileError::EmptyPassphrase);
        }
        let _one_at_a_time = self.inner.passphrase.lock().expect("passphrase lock");
        let path = self.dir().join(DB_FILE);
        let (header, root) = unseal_header(&path, current)?;
        if root[..] != self.root()[..] {
            return Err(ProfileError::WrongPassphrase);
        }
        let kdf = if header.kdf.allowed() {
            header.kdf
        } else {
            KdfParams::calibrate()
        };
        rewrite_header(&path, &sealed_header(new, &root, kdf, rng)?)
    }

    /// [`Profile::open_holding`] for a profile sealed as a whole. The
    /// file's lock is taken and `held` called before the key is derived
    /// from the passphrase (Argon2id: a second or more), and the database
    /// is then built on the very file that holds the lock (a second
    /// opening of it would conflict with its lock): a command run during
    /// the derivation finds the profile held, and a node starting saying
    /// so, as for a profile from before sealing, rather than a free
    /// profile it would open itself while the node that was starting
    /// then fails. A wrong passphrase drops what `held` returned, then
    /// the file with its lock.
    fn open_sealed_profile<T>(
        dir: &Path,
        passphrase: &str,
        held: impl FnOnce(&Path) -> T,
    ) -> Result<(Profile, T), ProfileError> {
        let path = dir.join(DB_FILE);
        let file = lock_sealed(dir)?;
        let held = now_held(dir, held);
        let (header, root) = unseal_file_header(&file, passphrase)?;
        let db = sealed_db(dir, file, &root)?;
        // A sealed copy left beside it by a sealing cut short (`seal_file`)
        // holds the root key sealed under the passphrase as this file
        // does: it goes. Not a reason to refuse the profile.
        if let Err(e) = crate::profile::wipe::destroy_sealing(dir) {
            tracing::warn!("a sealed copy of the profile left beside it is still there: {e}");
        }
        let (version, identity, contacts) = {
            let txn = db.begin_read().map_err(db_error)?;
            let m = txn.open_table(META).map_err(db_error)?;
            let version = schema_version(&meta_value(&m, meta::SCHEMA)?)?;
            let identity = open_identity(&root, &meta_value(&m, meta::IDENTITY)?)?;
            (version, identity, load_contacts(&txn, &root)?)
        };
        schema::migrate(&db, version, &identity.public().sign)?;
        let db = split_chunks(db, version, || open_sealed(dir, &root))?;
        if !header.kdf.allowed() {
            let stronger = strong_header(passphrase, &root)?;
            // Either copy opens with this passphrase and holds this root
            // key: a rewrite that fails does not stop the profile opening
            // (it is tried again at the next unlock).
            match rewrite_header(&path, &stronger) {
                Ok(()) => tracing::info!(
                    m_cost = stronger.kdf.m_cost,
                    t_cost = stronger.kdf.t_cost,
                    "the passphrase key now uses stronger Argon2id parameters"
                ),
                Err(e) => tracing::warn!(
                    "the header was not rewritten with stronger Argon2id parameters: {}",
                    chain(&e)
                ),
            }
        }
        let profile = Profile::from_parts(dir, db, root, identity, contacts)?;
        Ok((profile, held))
    }

    /// The profile's root key, for tests that open its file themselves.
    #[cfg(test)]
    pub(crate) fn root_for_tests(&self) -> [u8; 32] {
        *self.inner.root
    }

    /// The database, or [`ProfileError::Closed`].
    pub(crate) fn db(&self) -> Result<Arc<Database>, ProfileError> {
        self.inner
            .db
            .read()
            .expect("db lock")
            .clone()
            .ok_or(ProfileError::Closed)
    }

    /// Runs `f` in a write transaction (see [`crate::profile::writer`]). Blocking.
    pub(crate) fn write_txn<R: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<R, ProfileError> + Send + 'static,
    ) -> Result<R, ProfileError> {
        let db = self.db()?;
        self.inner.writer.run(&db, f)
    }

    /// [`Profile::write_txn`] for async tasks.
    pub(crate) async fn write_txn_async<R: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<R, ProfileError> + Send + 'static,
    ) -> Result<R, ProfileError> {
        let db = self.db()?;
        self.inner.writer.run_async(db, f).await
    }

    /// Moves writes to the writer thread (a node starts).
    pub(crate) fn start_writer(&self) -> Result<(), ProfileError> {
        self.inner.writer.start_thread(self.db()?);
        Ok(())
    }

    /// Finishes pending writes, stops the writer and releases the profile
    /// (its file lock and its key) once reads in flight are done. Every
    /// handle then answers [`ProfileError::Closed`].
    pub fn close(&self) {
        self.inner.writer.stop_thread();
        let db = self.inner.db.write().expect("db lock").take();
        if let Some(mut db) = db {
            // Readers hold the Arc for a moment; wait for them.
            let deadline = std::time::Instant::now() + CLOSE_WAIT;
            loop {
                match Arc::try_unwrap(db) {
                    Ok(db) => {
                        drop(db);
                        return;
                    }
                    Err(shared) if std::time::Instant::now() < deadline => {
                        db = shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => {
                        tracing::warn!("the profile is still read after {CLOSE_WAIT:?}; released when the read ends");
                        return;
                    }
                }
            }
        }
    }

    /// The root key, for sealing this profile's records.
    pub(crate) fn root(&self) -> &[u8; 32] {
        &self.inner.root
    }

    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The user's identity.
    pub fn identity(&self) -> Arc<Identity> {
        self.inner.identity.read().expect("identity lock").clone()
    }

    pub(crate) fn book(&self) -> Arc<Book> {
        self.inner.book.read().expect("book lock").clone()
    }

    /// The private groups this device knows.
    pub(crate) fn chains(&self) -> Arc<Vec<Chain>> {
        self.inner.chains.read().expect("groups lock").clone()
    }

    /// Starts a change of the groups: a copy of them to change, then
    /// [`ChainsStep::publish`]. The copy shares the epochs' member lists
    /// with the groups it copies (`strand_sync::Epoch` keeps them behind
    /// an `Arc`): it costs each group's bookkeeping, not every member of
    /// every group again. Until it is published or dropped, another
    /// change waits, so it starts from this one's result (two changed from
    /// the same copy, the later published would drop the earlier's, such
    /// as a group just joined, until the next start).
    pub(crate) fn chains_step(&self) -> ChainsStep<'_> {
        // It guards no data (the copy is made under it): a step that
        // panicked left nothing half-done, so a poisoned lock is taken.
        let lock = self
            .inner
            .chains_step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ChainsStep {
            chains: (*self.chains()).clone(),
            profile: self,
            _one_at_a_time: lock,
        }
    }

    /// What starts every link's session: this identity and the contacts,
    /// with their shared keys derived once.
    pub fn endpoint(&self) -> Endpoint {
        self.book().endpoint.clone()
    }

    /// Why the user's own name breaks today's naming rules, if it does
    /// ([`strand_sync::check_name`]): a profile named under older rules (an
    /// invisible character, a braille blank at an end) still opens, but
    /// no one can add its invites, so it has to be renamed first.
    pub fn own_name_problem(&self) -> Option<String> {
        own_name_problem(self.identity().name())
    }

    /// Refuses what would carry the user's name (an invite, a mailbox's
    /// pairing) while [`Profile::own_name_problem`] finds one.
    pub(crate) fn own_name_usable(&self) -> Result<(), ProfileError> {
        match self.own_name_problem() {
            Some(problem) => Err(ProfileError::OwnName(problem)),
            None => Ok(()),
        }
    }

    /// Changes the user's display name. Invites made from now on carry it;
    /// contacts keep the name they gave this user.
    pub fn rename(
        &self,
        name: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        let name = name.trim();
        strand_sync::check_name(name)?;
        self.store_name(name, rng)
    }

    /// Tests only (the `insecure-kdf` feature, which no release build
    /// has): names the user `name` under the rules an older Strand
    /// followed, as a profile made then may be named, for tests of what
    /// such a profile is told.
    #[cfg(feature = "insecure-kdf")]
    #[doc(hidden)]
    pub fn rename_under_older_rules(
        &self,
        name: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        self.store_name(name, rng)
    }

    /// Stores `name` as the user's name, which the stored rules allow.
    fn store_name(
        &self,
        name: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        let secret_bytes = self.identity().to_secret_bytes();
        let identity = Identity::from_secret_bytes(&secret_bytes, name)?;
        let mut secret = Zeroizing::new(Vec::with_capacity(64 + name.len()));
        secret.extend_from_slice(&secret_bytes[..]);
        secret.extend_from_slice(name.as_bytes());
        self.set_meta_sealed(meta::IDENTITY, ROLE_IDENTITY, &secret, rng)?;
        *self.inner.identity.write().expect("identity lock") = Arc::new(identity);
        Ok(())
    }

    /// The contacts, by name.
    pub fn contacts(&self) -> Vec<ContactRecord> {
        self.book().records.clone()
    }

    /// The contact with this name.
    pub fn contact(&self, name: &str) -> Result<ContactRecord, ProfileError> {
        self.book()
            .records
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| ProfileError::UnknownContact(name.to_owned()))
    }

    /// Adds the contact an invite names, under `name`. Adding the same
    /// person twice, or a second contact with the same name, is an error.
    /// One whose key a mailbox a contact named holds is refused, naming
    /// that mailbox ([`Profile::key_conflict_told`]).
    pub fn add_contact(
        &self,
        invite: &Invite,
        name: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ContactRecord, ProfileError> {
        match self.add_contact_as(invite, name, Added::Person, now, rng) {
            Err(e @ ProfileError::KeyConflict(_)) => Err(self.key_conflict_told(invite, e)?),
            other => other,
        }
    }

    /// [`Profile::add_contact`], for a mailbox too.
    pub(crate) fn add_contact_as(
        &self,
        invite: &Invite,
        name: &str,
        added: Added<'_>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ContactRecord, ProfileError> {
        // The name is checked with the record (`add_record`).
        let name = name.trim();
        // The invite's own signature, again: an `Invite` built in code (not
        // decoded) must not skip the check that ties its keys together.
        Invite::from_bytes(&invite.to_bytes())?;
        let record = ContactRecord {
            name: name.to_owned(),
            public: invite.public,
            added_at: now,
            verified: false,
            legacy: false,
            mailbox: !matches!(added, Added::Person),
            listed: false,
        };
        let owner = match added {
            Added::MailboxOf(owner) => Some(owner),
            Added::Person | Added::OwnMailbox => None,
        };
        self.add_record(record, invite.reach.as_ref(), owner, now, rng)
    }

    /// Adds a contact from their invite's keys and reach; for a mailbox a
    /// contact named, `owner` is that contact, who has no other.
    fn add_record(
        &self,
        record: ContactRecord,
        invite_reach: Option<&strand_sync::Reach>,
        owner: Option<&PublicIdentity>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ContactRecord, ProfileError> {
        check_contact_name(&record.name)?;
        let identity = self.identity();
        identity.contact(&record.public)?;
        let (id, sealed) = self.sealed_contact(&record, rng);
        // Check, write, and publish the new list only once it is committed;
        // one change at a time, so two adds cannot both pass the check.
        let _one_at_a_time = self.inner.adding.lock().expect("adding lock");
        let book = self.book();
        if let Some(c) = book.records.iter().find(|c| c.public == record.public) {
            return Err(ProfileError::DuplicateContact(c.name.clone()));
        }
        // One key the same, the other not: never a second row (rows are
        // keyed by the signing key, so it would replace the first).
        if let Some(c) = book
            .records
            .iter()
            .find(|c| c.public.sign == record.public.sign || c.public.dh == record.public.dh)
        {
            return Err(ProfileError::KeyConflict(c.name.clone()));
        }
        if book.records.iter().any(|c| c.name == record.name) {
            return Err(ProfileError::NameTaken(record.name.clone()));
        }
        let mailbox_for = match owner {
            // Deleted while their record was read.
            Some(owner) if !book.records.iter().any(|c| c.public == *owner) => {
                return Err(ProfileError::UnknownContact(
                    "the contact who named this mailbox".into(),
                ))
            }
            Some(owner) if self.contacts_with_a_mailbox()?.contains(&owner.sign) => {
                return Err(ProfileError::Mailbox(
                    "this contact has named a mailbox already (one per contact)".into(),
                ))
            }
            Some(owner) => Some(self.sealed_mailbox_for(&id, owner, rng)),
            None => None,
        };
        // Where the invite said they can be reached, until their own
        // records say more.
        let invite_reach = invite_reach.map(|r| {
            (
                crate::profile::reach::invite_reach_key(&id),
                seal(
                    &self.inner.root,
                    crate::profile::reach::ROLE_INVITE_REACH,
                    &r.encode(),
                    rng,
                ),
            )
        });
        self.write_txn(move |txn| {
            txn.open_table(CONTACTS)
                .map_err(db_error)?
                .insert(&id, &sealed[..])
                .map_err(db_error)?;
            let mut meta = txn
                .open_table(crate::profile::schema::META)
                .map_err(db_error)?;
            for (key, sealed) in invite_reach.iter().chain(&mailbox_for) {
                meta.insert(key.as_str(), &sealed[..]).map_err(db_error)?;
            }
            drop(meta);
            // With the contact, what they are still to be told: told once,
            // even if the process stops before (`telling`).
            crate::profile::telling::to_tell_in(txn, &id).map_err(db_error)?;
            Ok(())
        })?;
        let mut records = book.records.clone();
        records.push(record.clone());
        *self.inner.book.write().expect("book lock") =
            Arc::new(Book::new(&identity, records, &self.chains()));
        drop(_one_at_a_time);
        // Where to reach us beyond the LAN, if we have said it to others.
        // The contact is added either way; the record follows later if
        // this fails (a node tells what is left).
        if let Err(e) = self.reach_new_contacts(Some(&record.public), now, rng) {
            tracing::warn!("telling a contact our relays failed: {e}");
        }
        Ok(record)
    }

    /// Adds several contacts in one change of the contact list (one
    /// transaction, one rebuild), skipping any whose name or keys are
    /// taken or unusable: what a mailbox does with its owner's contacts.
    /// Returns those added.
    pub(crate) fn add_records(
        &self,
        wanted: Vec<ContactRecord>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<ContactRecord>, ProfileError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let identity = self.identity();
        let _one_at_a_time = self.inner.adding.lock().expect("adding lock");
        let book = self.book();
        let mut added: Vec<ContactRecord> = Vec::new();
        let mut rows = Vec::new();
        for record in wanted {
            let clash = |c: &ContactRecord| {
                c.name == record.name
                    || c.public.sign == record.public.sign
                    || c.public.dh == record.public.dh
            };
            if strand_sync::check_name(&record.name).is_err()
                || identity.contact(&record.public).is_err()
                || book.records.iter().any(clash)
                || added.iter().any(clash)
            {
                continue;
            }
            rows.push(self.sealed_contact(&record, rng));
            added.push(record);
        }
        if added.is_empty() {
            return Ok(added);
        }
        self.write_txn(move |txn| {
            let mut t = txn.open_table(CONTACTS).map_err(db_error)?;
            for (id, sealed) in &rows {
                t.insert(id, &sealed[..]).map_err(db_error)?;
            }
            drop(t);
            for (id, _) in &rows {
                crate::profile::telling::to_tell_in(txn, id).map_err(db_error)?;
            }
            Ok(())
        })?;
        let mut records = book.records.clone();
        records.extend(added.iter().cloned());
        *self.inner.book.write().expect("book lock") =
            Arc::new(Book::new(&identity, records, &self.chains()));
        drop(_one_at_a_time);
        // Every contact still to be told the record: these, and any an
        // earlier add left.
        if let Err(e) = self.reach_new_contacts(None, now, rng) {
            tracing::warn!("telling contacts our relays failed: {e}");
        }
        Ok(added)
    }

    /// Another contact whose name looks like `name` (the same Unicode
    /// TS #39 skeleton, case aside), or the names this user goes by (this
    /// profile's own name, and "me", which the CLI writes for the user's
    /// own messages), the same name included: two people the user could
    /// take for each other. `None` if there is none.
    pub fn lookalike(&self, name: &str) -> Option<String> {
        let book = self.book();
        let wanted = Skeleton::of(name);
        let own = self.identity().name().to_owned();
        book.records
            .iter()
            .zip(&book.skeletons)
            .find(|(c, s)| c.name != name && wanted.alike(s))
            .map(|(c, _)| c.name.clone())
            .or_else(|| {
                [own, "me".to_owned()]
                    .into_iter()
                    .find(|mine| wanted.alike(&Skeleton::of(mine)))
            })
    }

    /// The safety number the user and `contact` compare to know that each
    /// holds the other's real keys (see [`strand_sync::safety_number`]).
    pub fn safety_number(&self, contact: &ContactRecord) -> strand_sync::SafetyNumber {
        strand_sync::safety_number(&self.identity().public(), &contact.public)
    }

    /// Marks `name` verified (the user compared safety numbers) or not.
    pub fn set_verified(
        &self,
        name: &str,
        verified: bool,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ContactRecord, ProfileError> {
        self.change_contact(name, rng, |record, _| {
            let changed = record.verified != verified;
            record.verified = verified;
            Ok(changed)
        })
    }

    /// Gives the contact called `name` another name, `new` (the user's
    /// own word for them: it is what the app and the CLI show, and what
    /// names them among a group's members; they are not told). The same
    /// rules as [`Profile::add_contact`]'s: a valid name no other contact
    /// has. On any error nothing changes.
    pub fn rename_contact(
        &self,
        name: &str,
        new: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ContactRecord, ProfileError> {
        let new = new.trim();
        check_contact_name(new)?;
        self.change_contact(name, rng, |record, all| {
            if record.name == new {
                return Ok(false);
            }
            if all.iter().any(|c| c.name == new) {
                return Err(ProfileError::NameTaken(new.to_owned()));
            }
            record.name = new.to_owned();
            Ok(true)
        })
    }

    /// Only with the `insecure-kdf` feature (test builds): names a
    /// contact `new` under the rules an older Strand followed (a selector
    /// that selects nothing, say), as a profile made then may hold, for
    /// tests of how such a name is shown.
    #[cfg(feature = "insecure-kdf")]
    #[doc(hidden)]
    pub fn rename_contact_under_older_rules(
        &self,
        name: &str,
        new: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ContactRecord, ProfileError> {
        self.change_contact(name, rng, |record, _| {
            record.name = new.to_owned();
            Ok(true)
        })
    }

    /// Changes the record of the contact called `name` with `change`
    /// (given it and every record; it says whether it changed anything),
    /// stores it and publishes the new contact list: one change of the
    /// list at a time, and nothing stored or published on an error.
    fn change_contact(
        &self,
        name: &str,
        rng: &mut (impl RngCore + CryptoRng),
        change: impl FnOnce(&mut ContactRecord, &[ContactRecord]) -> Result<bool, ProfileError>,
    ) -> Result<ContactRecord, ProfileError> {
        let _one_at_a_time = self.inner.adding.lock().expect("adding lock");
        let book = self.book();
        let mut records = book.records.clone();
        let Some(at) = records.iter().position(|c| c.name == name) else {
            return Err(ProfileError::UnknownContact(name.to_owned()));
        };
        if !change(&mut records[at], &book.records)? {
            return Ok(records[at].clone());
        }
        let record = records[at].clone();
        let (id, sealed) = self.sealed_contact(&record, rng);
        self.write_txn(move |txn| {
            txn.open_table(CONTACTS)
                .map_err(db_error)?
                .insert(&id, &sealed[..])
                .map_err(db_error)?;
            Ok(())
        })?;
        *self.inner.book.write().expect("book lock") =
            Arc::new(Book::new(&self.identity(), records, &self.chains()));
        Ok(record)
    }

    /// The `contacts` table key of a contact: a keyed hash of their
    /// signing key, so the table names nobody.
    pub(crate) fn contact_id(&self, sign: &strand_sync::AuthorId) -> [u8; 32] {
        strand_sync::kdf(&self.inner.root, "strand/v1/contact-id", &[sign])
    }

    /// A contact record as the `contacts` table holds it: its key, and the
    /// record sealed under the root key.
    fn sealed_contact(
        &self,
        record: &ContactRecord,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> ([u8; 32], Vec<u8>) {
        let id = self.contact_id(&record.public.sign);
        let sealed = seal(&self.inner.root, ROLE_CONTACT, &encode_contact(record), rng);
        (id, sealed)
    }

    /// Every contact with the keys the protocol needs.
    pub fn sync_contacts(&self) -> Vec<Contact> {
        self.book().sync.clone()
    }

    /// The protocol view of one contact.
    pub fn sync_contact(&self, record: &ContactRecord) -> Result<Contact, ProfileError> {
        self.book()
            .sync_contact(&record.public)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| ProfileError::UnknownContact(record.name.clone()))
    }

    /// Writes a text message to `contact`, stored here and queued for
    /// delivery.
    pub fn write(
        &self,
        contact: &str,
        text: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(GroupId, Key), ProfileError> {
        let to = crate::profile::files::Conversation::Contact(contact);
        let (group, msg) = self.compose(to, text, now, rng)?;
        self.store_composed(to, group, msg)
    }

    /// [`Profile::write`] for async tasks.
    pub(crate) async fn write_async(
        &self,
        contact: &str,
        text: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(GroupId, Key), ProfileError> {
        let to = crate::profile::files::Conversation::Contact(contact);
        let (group, msg) = self.compose(to, text, now, rng)?;
        self.write_txn_async(self.composed_job(to, group, msg))
            .await
    }

    /// Stores a text this user composed for `to` ([`Profile::compose`]);
    /// for a contact, only if they are still here when the write job
    /// runs: a contact deleted meanwhile gets nothing new, which would
    /// come back with them if they were added again.
    pub(crate) fn store_composed(
        &self,
        to: crate::profile::files::Conversation<'_>,
        group: GroupId,
        msg: Message,
    ) -> Result<(GroupId, Key), ProfileError> {
        self.write_txn(self.composed_job(to, group, msg))
    }

    /// The write job of [`Profile::store_composed`].
    fn composed_job(
        &self,
        to: crate::profile::files::Conversation<'_>,
        group: GroupId,
        msg: Message,
    ) -> impl FnOnce(&WriteTransaction) -> Result<(GroupId, Key), ProfileError> + Send + 'static
    {
        let inner = self.inner.clone();
        // Only a contact's log goes: a group's chain is never taken away
        // (leaving is refused by `compose`), so a group text has nothing
        // to be checked against.
        let gone = match to {
            crate::profile::files::Conversation::Contact(n) => {
                Some(ProfileError::UnknownContact(n.to_owned()))
            }
            crate::profile::files::Conversation::Group(_) => None,
        };
        move |txn| {
            if let Some(gone) = gone.filter(|_| !inner.group_here(&group)) {
                return Err(gone);
            }
            store_own(txn, &group, &msg)
        }
    }

    /// A text for `to`'s log (a contact's 1:1 log, or a group's newest
    /// epoch), under its timer.
    pub(crate) fn compose(
        &self,
        to: crate::profile::files::Conversation<'_>,
        text: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(GroupId, Message), ProfileError> {
        let (group, expires) = self.log_for(to, now)?;
        let msg = Message::create_expiring(
            &self.identity(),
            &group,
            now,
            expires,
            Kind::TEXT,
            text.as_bytes(),
            rng,
        )
        .map_err(ProfileError::Message)?;
        Ok((group.id, msg))
    }

    /// Raises the delivery state of an outgoing message (never lowers it).
    pub fn mark(&self, group: &GroupId, key: &Key, state: Delivery) -> Result<(), ProfileError> {
        self.mark_many(vec![(*group, *key)], state)
    }

    /// [`Profile::mark`] for many messages in one transaction.
    pub fn mark_many(
        &self,
        keys: Vec<(GroupId, Key)>,
        state: Delivery,
    ) -> Result<(), ProfileError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write_txn(move |txn| mark_in(txn, &keys, state))?;
        Ok(())
    }

    /// [`Profile::mark_many`] for async tasks: returns the messages whose
    /// state it raised.
    pub(crate) async fn mark_many_async(
        &self,
        keys: Vec<(GroupId, Key)>,
        state: Delivery,
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.write_txn_async(move |txn| mark_in(txn, &keys, state))
            .await
    }

    /// The conversation with `contact`, oldest first.
    pub fn conversation(&self, contact: &str) -> Result<Vec<StoredMessage>, ProfileError> {
        self.conversation_page(contact, &Position::MIN, usize::MAX)
    }

    /// What a session reads: the messages as of now.
    pub fn read_view(&self) -> Result<ReadView, ProfileError> {
        let db = self.db()?;
        ReadView::new(&db).map_err(db_error)
    }

    /// A batch store (one write transaction, committed by
    /// [`RedbStore::commit`]) for loading many messages into a profile no
    /// node is running on.
    pub fn store(&self) -> Result<RedbStore, ProfileError> {
        Ok(RedbStore::new(
            self.db()?,
            self.identity().public().sign,
            self.chains(),
        ))
    }
}

impl Profile {
    /// The one check-then-store, for a drive's batches and an envelope's
    /// message: [`Profile::check_batch`], then [`Profile::store_batch`].
    /// A link runs the same two on two pools (checks are CPU, on the
    /// verifier pool; storing waits for the writer, on a blocking thread).
    pub(crate) fn check_and_store(
        &self,
        batch: Inbound,
        ledger: &crate::profile::budget::Ledger,
        budgets: &crate::profile::budget::Budgets,
        now: Time,
    ) -> Result<(Inbound, Vec<crate::profile::budget::Declined>), ProfileError> {
        let (batch, mut declined) = self.check_batch(batch, ledger, budgets, now)?;
        let (batch, more) = self.store_batch(batch, ledger, budgets, now)?;
        declined.extend(more);
        Ok((batch, declined))
    }

    /// Checks `batch`: what the store holds is skipped, what a budget
    /// would decline as the ledger stands is declined unchecked
    /// ([`crate::profile::budget::Ledger::decline_unchecked`]), the rest
    /// verified (signatures in one batch, validity at `now`). Returns the
    /// batch and what was declined.
    pub(crate) fn check_batch(
        &self,
        mut batch: Inbound,
        ledger: &crate::profile::budget::Ledger,
        budgets: &crate::profile::budget::Budgets,
        now: Time,
    ) -> Result<(Inbound, Vec<crate::profile::budget::Declined>), ProfileError> {
        let view = self.read_view()?;
        batch
            .skip_held(|g, k| strand_sync::Store::contains(&view, g, k))
            .map_err(db_error)?;
        drop(view);
        let declined = ledger.decline_unchecked(self, budgets, &mut batch);
        batch.verify(now);
        Ok((batch, declined))
    }

    /// Stores a checked batch: declines what is over a storage budget or
    /// from a removed member into an old epoch, then stores what is valid
    /// in one transaction (the writer never sees a batch with nothing new
    /// in it). Returns the batch and what was declined.
    pub(crate) fn store_batch(
        &self,
        mut batch: Inbound,
        ledger: &crate::profile::budget::Ledger,
        budgets: &crate::profile::budget::Budgets,
        now: Time,
    ) -> Result<(Inbound, Vec<crate::profile::budget::Declined>), ProfileError> {
        if !batch.iter().any(|m| *m.verdict() == Verdict::Valid) {
            return Ok((batch, Vec::new()));
        }
        // A count that failed part way (a store read) may have let some of
        // the batch in: forgotten, as after a failed store, or what it
        // let in (welcomes kept until followed above all) would stay
        // counted though never stored.
        let applied = ledger.apply(self, budgets, &mut batch).inspect_err(|_| {
            ledger.forget();
        })?;
        if !batch.iter().any(|m| *m.verdict() == Verdict::Valid) {
            return Ok((batch, applied.declined));
        }
        let me = self.identity().public().sign;
        let inner = self.inner.clone();
        let (batch, replaced, gone) = match self.write_txn(move |txn| {
            // A contact deleted since the session read the list: nothing
            // of theirs is stored now (see [`crate::profile::removal`]).
            let gone = decline_unknown_groups(&inner, &mut batch);
            let chains = inner.chains.read().expect("chains lock").clone();
            let (batch, replaced) = store_checked(txn, me, &chains, batch, now)?;
            Ok((batch, replaced, gone))
        }) {
            Ok(b) => b,
            Err(e) => {
                ledger.forget();
                return Err(e);
            }
        };
        // Given back by the groups the batch was counted by, whatever
        // changed since, and only to the scopes it was counted into (not
        // to one the ledger forgot meanwhile and counted afresh).
        ledger.refund(self, &applied, &batch, &replaced);
        ledger.stored(self, &batch);
        // What the ledger counted of them before they were declined.
        ledger.drop_scopes(&gone);
        Ok((batch, applied.declined))
    }
}

/// Declines the valid messages of `batch` in groups this profile no longer
/// has: neither a contact's 1:1 group or carrying pool nor an epoch of a
/// private group, as the lists are now. (A session reads its groups when
/// it starts; its contact may have been deleted since.) Returns those
/// groups.
fn decline_unknown_groups(inner: &Inner, batch: &mut Inbound) -> Vec<GroupId> {
    let book = inner.book.read().expect("book lock").clone();
    let chains = inner.chains.read().expect("chains lock").clone();
    let mut known: Vec<(GroupId, bool)> = Vec::new();
    for item in batch.iter_mut() {
        if *item.verdict() != Verdict::Valid {
            continue;
        }
        let group = *item.group();
        let here = match known.iter().find(|(g, _)| *g == group) {
            Some((_, here)) => *here,
            None => {
                let here = group_here(&book, &chains, &group);
                known.push((group, here));
                here
            }
        };
        if !here {
            item.decline();
        }
    }
    known
        .into_iter()
        .filter(|(_, here)| !here)
        .map(|(g, _)| g)
        .collect()
}

/// Whether `group` is a contact's 1:1 group or carrying pool in `book`,
/// or an epoch of a group in `chains`.
fn group_here(book: &Book, chains: &[Chain], group: &GroupId) -> bool {
    chains.iter().any(|c| c.epoch(group).is_some())
        || book
            .sync
            .iter()
            .any(|c| c.direct_group().id == *group || c.pool.id == *group)
}

impl Inner {
    /// [`group_here`], as the lists are now (on the writer thread: after
    /// any deletion published before the write job ran).
    fn group_here(&self, group: &GroupId) -> bool {
        let book = self.book.read().expect("book lock").clone();
        let chains = self.chains.read().expect("chains lock").clone();
        group_here(&book, &chains, group)
    }
}

/// Stores the valid messages of a checked batch in `txn` and records in
/// it which were new. `chains` are the private groups: an epoch's floor
/// is its group's (see [`Inserter`]). Returns the batch, and the rows
/// its MEMBERSHIP messages replaced ([`Inserter::take_replaced`]).
pub(crate) fn store_checked(
    txn: &WriteTransaction,
    me: AuthorId,
    chains: &[Chain],
    mut batch: Inbound,
    now: Time,
) -> Result<(Inbound, Vec<crate::profile::store::DeletedRow>), ProfileError> {
    let mut store = Inserter::new(txn, me, now)
        .map_err(db_error)?
        .with_groups(chains);
    store
        .look_ahead(
            batch
                .iter()
                .filter(|i| *i.verdict() == Verdict::Valid)
                .map(|i| (i.group(), i.message())),
        )
        .map_err(db_error)?;
    for item in batch.iter_mut() {
        if *item.verdict() == Verdict::Valid {
            let new = store
                .insert(item.group(), item.message())
                .map_err(db_error)?;
            item.set_stored(new);
        }
    }
    Ok((batch, store.take_replaced()))
}

pub(crate) fn store_own(
    txn: &WriteTransaction,
    group: &GroupId,
    msg: &Message,
) -> Result<(GroupId, Key), ProfileError> {
    // Written here: it arrived when it was written (on the caller's clock).
    Inserter::new(txn, msg.author(), msg.time())
        .and_then(|mut s| s.insert(group, msg))
        .map_err(db_error)?;
    txn.open_table(OUTBOX)
        .map_err(db_error)?
        .insert(&table_key(group, &msg.key()), Delivery::Queued as u8)
        .map_err(db_error)?;
    Ok((*group, msg.key()))
}

/// Raises the delivery state of outgoing messages `keys` to `state` (never
/// lowers it): returns those it raised, and those the outbox does not
/// hold (stored some other way: it cannot tell they were there before),
/// each as often as listed.
pub(crate) fn mark_in(
    txn: &WriteTransaction,
    keys: &[(GroupId, Key)],
    state: Delivery,
) -> Result<Vec<(GroupId, Key)>, ProfileError> {
    let mut t = txn.open_table(OUTBOX).map_err(db_error)?;
    let mut raised = Vec::new();
    for (group, key) in keys {
        let k = table_key(group, key);
        let current = t.get(&k).map_err(db_error)?.map(|v| v.value());
        match current {
            Some(cur) if Delivery::from_u8(cur) >= state => {}
            Some(_) => {
                t.insert(&k, state as u8).map_err(db_error)?;
                raised.push((*group, *key));
            }
            None => raised.push((*group, *key)),
        }
    }
    Ok(raised)
}

/// Whether two names could be taken for each other: the same confusable
/// skeleton (UTS #39), compared as written and in lower case.
#[cfg(test)]
fn looks_alike(a: &str, b: &str) -> bool {
    Skeleton::of(a).alike(&Skeleton::of(b))
}

/// A name's confusable skeletons (UTS #39), as written and in lower case,
/// of the name without joiners and tags: where they are allowed (inside
/// an emoji) a device without that emoji shows the name without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skeleton {
    pub(crate) written: String,
    pub(crate) lower: String,
}

impl Skeleton {
    pub(crate) fn of(name: &str) -> Skeleton {
        use unicode_security::confusable_detection::skeleton;
        let bare: String = name
            .chars()
            .filter(|c| !matches!(c, '\u{200D}' | '\u{E0020}'..='\u{E007F}'))
            .collect();
        Skeleton {
            written: skeleton(&bare).collect(),
            lower: skeleton(&bare.to_lowercase()).collect(),
        }
    }

    fn alike(&self, other: &Skeleton) -> bool {
        self.written == other.written || self.lower == other.lower
    }
}

/// A header with the root key sealed under a new passphrase key, with
/// parameters calibrated on this device and a new salt: for profiles
/// found under [`KdfParams::FLOOR`].
fn strong_header(passphrase: &str, root: &[u8; 32]) -> Result<Header, ProfileError> {
    sealed_header(
        passphrase,
        root,
        KdfParams::calibrate(),
        &mut crate::profile::os_rng(),
    )
}

/// A header that seals `root` under `passphrase`, with `kdf` and a new
/// salt.
fn sealed_header(
    passphrase: &str,
    root: &[u8; 32],
    kdf: KdfParams,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Header, ProfileError> {
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let key = passphrase_key(passphrase, &salt, kdf).ok_or(ProfileError::Kdf)?;
    Ok(Header {
        salt,
        kdf,
        sealed_root: seal(&key, ROLE_ROOT, &root[..], rng),
    })
}

/// The header of the sealed file at `path`, and the root key it seals
/// under `passphrase`: [`ProfileError::WrongPassphrase`] if it does not
/// open. Read without the profile's lock.
fn unseal_header(
    path: &Path,
    passphrase: &str,
) -> Result<(Header, Zeroizing<[u8; 32]>), ProfileError> {
    let file = std::fs::File::open(path).map_err(|e| ProfileError::Header(e.into()))?;
    unseal_file_header(&file, passphrase)
}

/// [`unseal_header`] of the sealed file `file`, open already (an open
/// holds its lock through it).
fn unseal_file_header(
    file: &std::fs::File,
    passphrase: &str,
) -> Result<(Header, Zeroizing<[u8; 32]>), ProfileError> {
    let (_, header) = read_header_from(file).map_err(|e| ProfileError::Header(e.into()))?;
    header.kdf.check_openable()?;
    let root = unseal_root(passphrase, &header.salt, header.kdf, &header.sealed_root)?;
    Ok((header, root))
}

/// The root key `sealed` under `passphrase` (with `salt` and `kdf`):
/// [`ProfileError::WrongPassphrase`] if it does not open.
fn unseal_root(
    passphrase: &str,
    salt: &[u8; 16],
    kdf: KdfParams,
    sealed: &[u8],
) -> Result<Zeroizing<[u8; 32]>, ProfileError> {
    #[cfg(test)]
    if let Some(pause) = PAUSE_WHILE_UNSEALING.with(|pause| pause.borrow_mut().take()) {
        pause();
    }
    let key = passphrase_key(passphrase, salt, kdf).ok_or(ProfileError::Kdf)?;
    let plain = Zeroizing::new(open(&key, ROLE_ROOT, sealed).ok_or(ProfileError::WrongPassphrase)?);
    let mut root = Zeroizing::new([0u8; 32]);
    if plain.len() != root.len() {
        return Err(ProfileError::Corrupt("bad root key".into()));
    }
    root.copy_from_slice(&plain);
    Ok(root)
}

/// Writes `header` over both copies of the sealed file's header at `path`.
fn rewrite_header(path: &Path, header: &Header) -> Result<(), ProfileError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    write_header(&file, header, false).map_err(|e| {
        if crate::profile::sealed::old_copy_left(&e) {
            ProfileError::OldHeaderLeft(e.into())
        } else if crate::profile::sealed::uncertain(&e) {
            ProfileError::HeaderUncertain(e.into())
        } else {
            io_error(path, e)
        }
    })
}

/// A `meta` value that must be there.
fn meta_value(
    m: &redb::ReadOnlyTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Vec<u8>, ProfileError> {
    m.get(name)
        .map_err(db_error)?
        .map(|v| v.value().to_vec())
        .ok_or_else(|| ProfileError::Corrupt(format!("missing `{name}`")))
}

/// The stored schema version, checked to be one this code opens.
fn schema_version(bytes: &[u8]) -> Result<u32, ProfileError> {
    let version = u32::from_le_bytes(
        bytes
            .try_into()
            .map_err(|_| ProfileError::Corrupt("bad schema version".into()))?,
    );
    schema::check_version(version)?;
    Ok(version)
}

/// Every contact record, unsealed with `root`.
fn load_contacts(
    txn: &redb::ReadTransaction,
    root: &[u8; 32],
) -> Result<Vec<ContactRecord>, ProfileError> {
    let table = txn.open_table(CONTACTS).map_err(db_error)?;
    let mut contacts = Vec::new();
    for entry in table.iter().map_err(db_error)? {
        let (_, v) = entry.map_err(db_error)?;
        let plain = open(root, ROLE_CONTACT, v.value())
            .ok_or_else(|| ProfileError::Corrupt("a contact does not decrypt".into()))?;
        contacts.push(decode_contact(&plain)?);
    }
    Ok(contacts)
}

/// The identity sealed under `root`: secret keys (64) then the name.
fn open_identity(root: &[u8; 32], sealed: &[u8]) -> Result<Identity, ProfileError> {
    let secret = Zeroizing::new(
        open(root, ROLE_IDENTITY, sealed)
            .ok_or_else(|| ProfileError::Corrupt("identity does not decrypt".into()))?,
    );
    if secret.len() < 64 {
        return Err(ProfileError::Corrupt("identity too short".into()));
    }
    let mut bytes = Zeroizing::new([0u8; 64]);
    bytes.copy_from_slice(&secret[..64]);
    let name = std::str::from_utf8(&secret[64..])
        .map_err(|_| ProfileError::Corrupt("identity name".into()))?;
    Identity::from_secret_bytes(&bytes, name).map_err(ProfileError::StoredIdentity)
}

/// Copies every table of `old` (a profile file from before sealing, its
/// KDF and root key moving to the header) into a new sealed file in one
/// transaction, puts it in the old one's place, and overwrites the old
/// file's bytes. Run once, after an unlock; a crash before the rename
/// leaves the old file as it was (the next unlock starts again), and the
/// sealed copy beside it, which the next unlock destroys first. On an
/// error the copy is destroyed at once: its header holds the root key
/// sealed under the passphrase, as the profile's own does.
fn seal_file(
    dir: &Path,
    old: Database,
    header: &Header,
    root: &[u8; 32],
) -> Result<Database, ProfileError> {
    let path = dir.join(DB_FILE);
    let tmp = crate::profile::wipe::sealing_path(dir);
    if let Err(e) = crate::profile::wipe::destroy_sealing(dir) {
        // Then it cannot be made anew either: the error comes below.
        tracing::warn!("a sealed copy an earlier unlock left is still there: {e}");
    }
    let file = new_sealed_file(&tmp, header)?;
    let sealed = sealed_db(dir, file, root).and_then(|db| {
        copy_tables(&old, &db)?;
        // Keep a handle on the old file to overwrite it once it is replaced.
        let old_file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        // Renamed while the old file is still locked, so no other process
        // can open it in between; the new file's lock guards the path after.
        std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
        Ok((db, old_file))
    });
    let (db, old_file) = match sealed {
        Ok(sealed) => sealed,
        Err(e) => {
            // (Its database handle is closed: it went with the error.)
            if let Err(left) = crate::profile::wipe::destroy_sealing(dir) {
                tracing::warn!("a sealed copy of the profile is left beside it: {left}");
            }
            return Err(e);
        }
    };
    drop(old);
    if let Ok(dirf) = std::fs::File::open(dir) {
        let _ = dirf.sync_all();
    }
    overwrite(&old_file).map_err(|e| io_error(&path, e))?;
    tracing::info!("the profile file is now sealed as a whole");
    Ok(db)
}

/// [`seal_file`]'s copy: every table of `old` into `db`, in one
/// transaction, but the KDF and root key (the header holds them).
fn copy_tables(old: &Database, db: &Database) -> Result<(), ProfileError> {
    use crate::profile::schema::RECORDS;
    let from = old.begin_read().map_err(db_error)?;
    let mut to = db.begin_write().map_err(db_error)?;
    to.set_durability(redb::Durability::Immediate)
        .map_err(db_error)?;
    to.set_two_phase_commit(true);
    {
        let mut t = to.open_table(META).map_err(db_error)?;
        for e in from
            .open_table(META)
            .map_err(db_error)?
            .iter()
            .map_err(db_error)?
        {
            let (k, v) = e.map_err(db_error)?;
            if k.value() != meta::KDF && k.value() != meta::ROOT {
                t.insert(k.value(), v.value()).map_err(db_error)?;
            }
        }
    }
    macro_rules! copy {
        ($table:expr) => {{
            let mut t = to.open_table($table).map_err(db_error)?;
            match from.open_table($table) {
                Ok(f) => {
                    for e in f.iter().map_err(db_error)? {
                        let (k, v) = e.map_err(db_error)?;
                        t.insert(k.value(), v.value()).map_err(db_error)?;
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(db_error(e)),
            }
        }};
    }
    copy!(CONTACTS);
    copy!(MESSAGES);
    copy!(OUTBOX);
    copy!(SHOWN);
    copy!(SEEN);
    copy!(FLOOR);
    copy!(RECORDS);
    // Tables newer than sealing, for a file made unsealed since (tests).
    copy!(schema::EPOCHS);
    copy!(schema::EXPIRY);
    copy!(schema::TIMERS);
    copy!(schema::NAMES);
    copy!(schema::CHANGES);
    copy!(schema::CHUNKS);
    copy!(schema::BODIES);
    copy!(schema::SENDING);
    copy!(schema::CARRIED);
    copy!(schema::TO_TELL);
    to.commit().map_err(db_error)
}

/// Random bytes over the whole of `file`, synced, then truncated.
pub(crate) fn overwrite(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let mut rng = crate::profile::os_rng();
    let mut noise = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(noise.len() as u64) as usize;
        rng.fill_bytes(&mut noise[..n]);
        file.write_all_at(&noise[..n], at)?;
        at += n as u64;
    }
    file.sync_all()?;
    file.set_len(0)?;
    file.sync_all()
}

/// Flags byte of a contact record: the safety number was confirmed.
const CONTACT_VERIFIED: u8 = 1;
/// Flags byte of a contact record: added from a version 1 invite.
const CONTACT_LEGACY: u8 = 2;
/// Flags byte of a contact record: a mailbox.
const CONTACT_MAILBOX: u8 = 4;
/// Flags byte of a contact record: added from a mailbox owner's list.
const CONTACT_LISTED: u8 = 8;

/// A contact record: sign (32) ‖ dh (32) ‖ added at (u64 LE) ‖ name, then
/// 0x00 ‖ flags. Records written before flags existed end with the name
/// (names hold no control characters, so the 0x00 cannot be part of one);
/// they were added from version 1 invites and decode as `legacy`.
fn encode_contact(c: &ContactRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(74 + c.name.len());
    out.extend_from_slice(&c.public.sign);
    out.extend_from_slice(&c.public.dh);
    out.extend_from_slice(&c.added_at.to_le_bytes());
    out.extend_from_slice(c.name.as_bytes());
    out.push(0);
    out.push(
        if c.verified { CONTACT_VERIFIED } else { 0 }
            | if c.legacy { CONTACT_LEGACY } else { 0 }
            | if c.mailbox { CONTACT_MAILBOX } else { 0 }
            | if c.listed { CONTACT_LISTED } else { 0 },
    );
    out
}

fn decode_contact(b: &[u8]) -> Result<ContactRecord, ProfileError> {
    if b.len() < 72 {
        return Err(ProfileError::Corrupt("contact record too short".into()));
    }
    let rest = &b[72..];
    let (name, flags) = match rest.iter().position(|&x| x == 0) {
        Some(i) if rest.len() == i + 2 => (&rest[..i], Some(rest[i + 1])),
        Some(_) => return Err(ProfileError::Corrupt("contact record".into())),
        None => (rest, None),
    };
    let public = PublicIdentity {
        sign: b[..32].try_into().expect("32 bytes"),
        dh: b[32..64].try_into().expect("32 bytes"),
    };
    let name = String::from_utf8(name.to_vec())
        .map_err(|_| ProfileError::Corrupt("contact name".into()))?;
    Ok(ContactRecord {
        added_at: u64::from_le_bytes(b[64..72].try_into().expect("8 bytes")),
        verified: flags.is_some_and(|f| f & CONTACT_VERIFIED != 0),
        legacy: flags.is_none_or(|f| f & CONTACT_LEGACY != 0),
        mailbox: flags.is_some_and(|f| f & CONTACT_MAILBOX != 0),
        // Marked, or added from a list before the mark was kept (or
        // written since by a version without it) and named so: marked
        // from now on, so a rename keeps it.
        listed: flags.is_some_and(|f| f & CONTACT_LISTED != 0)
            || name.ends_with(&listed_suffix(&public)),
        public,
        name,
    })
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o700 } else { 0o600 };
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) {}

impl Profile {
    /// Messages stored, all conversations.
    pub fn stored_messages(&self) -> Result<u64, ProfileError> {
        use redb::ReadableTableMetadata;
        let txn = self.db()?.begin_read().map_err(db_error)?;
        txn.open_table(MESSAGES)
            .map_err(db_error)?
            .len()
            .map_err(db_error)
    }

    /// Outgoing messages of `group` not yet known to be delivered.
    pub fn undelivered(&self, group: &GroupId) -> Result<Vec<Key>, ProfileError> {
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_error)?;
        let lo = table_key(group, &Key::MIN);
        let hi = table_key(group, &Key::MAX);
        let mut out = Vec::new();
        for entry in outbox.range(lo..hi).map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            if Delivery::from_u8(v.value()) != Delivery::Delivered {
                out.push(sync_key(&k.value()));
            }
        }
        Ok(out)
    }

    /// The delivery state of one outgoing message (`None`: not one this
    /// profile wrote).
    pub fn delivery(&self, group: &GroupId, key: &Key) -> Result<Option<Delivery>, ProfileError> {
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_error)?;
        Ok(outbox
            .get(&table_key(group, key))
            .map_err(db_error)?
            .map(|v| Delivery::from_u8(v.value())))
    }

    /// The text of one stored message of `group`, decrypted.
    pub fn message_text(
        &self,
        group: &strand_sync::Group,
        key: &Key,
    ) -> Result<Option<String>, ProfileError> {
        let Some(bytes) =
            strand_sync::Store::get(&self.read_view()?, &group.id, key).map_err(db_error)?
        else {
            return Ok(None);
        };
        let msg = Message::decode(bytes).map_err(ProfileError::StoredMessage)?;
        if msg.kind() == Kind::FILE {
            return Ok(self
                .file_info(group, &msg)
                .map(|f| format!("[file] {}", f.name)));
        }
        let body = msg.open(group).unwrap_or_default();
        Ok(Some(String::from_utf8_lossy(&body).into_owned()))
    }
}

/// For unit tests: Alice's profile in `dir` (passphrase "pass", the
/// quick key derivation) with one contact, Bob, whose identity comes back
/// with their 1:1 group.
#[cfg(test)]
pub(crate) fn alice_with_bob(dir: &Path) -> (Profile, strand_sync::Identity, strand_sync::Group) {
    let rng = &mut crate::profile::os_rng();
    let p = Profile::create(dir, "Alice", "pass", KdfParams::insecure_for_tests(), rng).unwrap();
    let bob = strand_sync::Identity::generate("Bob", rng).unwrap();
    p.add_contact(&bob.invite(), "Bob", 0, rng).unwrap();
    let group = bob
        .contact(&p.identity().public())
        .unwrap()
        .direct_group()
        .clone();
    (p, bob, group)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Makes the next [`Profile::create`] on this thread stop as a
        /// kill would, once the file's header is written.
        pub(super) static CUT_AFTER_HEADER: std::cell::Cell<bool> =
            const { std::cell::Cell::new(false) };
    }

    /// Regression (stop 68's crash audit): a create killed between the
    /// file's header and its first transaction left a file with a header
    /// and nothing else, which `init` said was a profile and `open` said
    /// was damaged, until the user deleted the folder by hand (in an app's
    /// private storage: cleared its data). The file is made under another
    /// name now and takes the profile's once its first transaction is in:
    /// a create cut short leaves no profile, and the next one works.
    #[test]
    fn a_create_killed_half_way_leaves_no_profile() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let rng = &mut os_rng();
        let kdf = KdfParams::insecure_for_tests();
        CUT_AFTER_HEADER.with(|c| c.set(true));
        assert!(Profile::create(&dir, "Ann", "pass", kdf, rng).is_err());
        CUT_AFTER_HEADER.with(|c| c.set(false));
        assert!(!Profile::exists(&dir), "a profile half made");
        let p = Profile::create(&dir, "Ann", "pass", kdf, rng).unwrap();
        p.close();
        Profile::open(&dir, "pass").unwrap();
        assert!(!dir.join(MAKING_FILE).exists());
    }

    fn record(verified: bool, legacy: bool) -> ContactRecord {
        ContactRecord {
            name: "Zoë".into(),
            public: PublicIdentity {
                sign: [1; 32],
                dh: [2; 32],
            },
            added_at: 7,
            verified,
            legacy,
            mailbox: false,
            listed: false,
        }
    }

    #[test]
    fn contact_records_round_trip_with_their_flags() {
        for (v, l) in [(false, false), (true, false), (false, true), (true, true)] {
            let r = record(v, l);
            assert_eq!(decode_contact(&encode_contact(&r)).unwrap(), r);
            let m = ContactRecord {
                mailbox: true,
                ..record(v, l)
            };
            assert_eq!(decode_contact(&encode_contact(&m)).unwrap(), m);
            let listed = ContactRecord {
                listed: true,
                ..record(v, l)
            };
            assert_eq!(decode_contact(&encode_contact(&listed)).unwrap(), listed);
        }
    }

    /// A contact a mailbox's owner's list added before the mark was kept
    /// (no bit 8; or rewritten by a version without it) is known by the
    /// name the list gave them, and marked from then on: renamed, they
    /// are still one a later list can delete. Before, renamed, they were
    /// known as neither.
    #[test]
    fn a_listed_contact_from_before_the_mark_keeps_it_when_renamed() {
        let r = record(false, false);
        let old = ContactRecord {
            name: format!("Owen{}", listed_suffix(&r.public)),
            ..r.clone()
        };
        let decoded = decode_contact(&encode_contact(&old)).unwrap();
        assert!(decoded.listed, "known by the list's name");
        let renamed = ContactRecord {
            name: "Carl".into(),
            ..decoded
        };
        assert!(decode_contact(&encode_contact(&renamed)).unwrap().listed);
        // Another's key in the name, or none, is no mark.
        let other = PublicIdentity {
            sign: [9; 32],
            dh: [2; 32],
        };
        for name in [format!("Owen{}", listed_suffix(&other)), "Owen".into()] {
            let r = ContactRecord { name, ..r.clone() };
            assert!(!decode_contact(&encode_contact(&r)).unwrap().listed);
        }
    }

    #[test]
    fn lookalike_names_are_caught_and_different_ones_are_not() {
        // Latin and Cyrillic "a", "o", "e"; l and I; a case change.
        assert!(looks_alike("Alice", "Аlice"));
        assert!(looks_alike("bob", "bоb"));
        assert!(looks_alike("Paul", "PauI"));
        assert!(looks_alike("rn", "m"));
        assert!(looks_alike("Alice", "alice"));
        assert!(!looks_alike("Alice", "Alicia"));
        assert!(!looks_alike("Bob", "Rob"));
        // A joiner inside an emoji is allowed, and shows as nothing where
        // the joined emoji is unknown.
        assert!(looks_alike(
            "Kim \u{1F468}\u{200D}\u{1F469}",
            "Kim \u{1F468}\u{1F469}"
        ));
    }

    /// A profile named under older rules opens, but no invite is made
    /// with its name (everyone would refuse it): the user is told why and
    /// what to do, and a new name makes invites again.
    #[test]
    fn an_own_name_under_older_rules_is_told_and_a_new_one_makes_invites() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let params = KdfParams::insecure_for_tests();
        let p = Profile::create(tmp.path(), "Ann", "pass", params, rng).unwrap();
        assert_eq!(p.own_name_problem(), None);
        drop(p);
        let rules = [
            ("Ann\u{fe00}", "variation selectors"),
            ("Ann\u{2800}", "braille blank"),
            ("\u{200b}Ann", "zero-width"),
        ];
        for (old, rule) in rules {
            let p = Profile::open(tmp.path(), "pass").unwrap();
            p.rename_under_older_rules(old, rng).unwrap();
            drop(p);
            // As stored: the profile opens under the name it had.
            let p = Profile::open(tmp.path(), "pass").unwrap();
            assert_eq!(p.identity().name(), old);
            let problem = p.own_name_problem().expect("a problem");
            assert!(problem.contains(rule), "{problem}");
            let Err(strand_sync::KeyError::Name(why)) = strand_sync::check_name(old) else {
                panic!("{old:?} passes");
            };
            assert!(problem.contains(why), "{problem}");
            // Shown safely: what is invisible is marked.
            let shown = format!("your name \"{}\"", crate::display::one_line(old));
            assert!(problem.starts_with(&shown), "{problem}");
            assert!(problem.contains("strand name NEW_NAME"), "{problem}");
            match p.invite() {
                Err(ProfileError::OwnName(why)) => assert_eq!(why, problem),
                other => panic!("{old:?}: {:?}", other.map(|i| i.to_text())),
            }
        }
        let p = Profile::open(tmp.path(), "pass").unwrap();
        assert!(p.rename("Ann\u{2800}", rng).is_err());
        p.rename("Ann", rng).unwrap();
        assert_eq!(p.own_name_problem(), None);
        let invite = strand_sync::Invite::from_text(&p.invite().unwrap().to_text()).unwrap();
        assert_eq!(invite.name, "Ann");
    }

    /// Records written before invites were signed end with the name: they
    /// decode as legacy (added from a version 1 invite) and unverified.
    #[test]
    fn a_record_without_flags_is_legacy_and_unverified() {
        let mut old = encode_contact(&record(false, false));
        old.truncate(old.len() - 2);
        let r = decode_contact(&old).unwrap();
        assert_eq!(r.name, "Zoë");
        assert!(r.legacy && !r.verified);
        let mut bad = encode_contact(&record(false, false));
        bad.push(9);
        assert!(decode_contact(&bad).is_err());
    }
}
