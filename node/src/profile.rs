//! A profile: one directory holding one user's identity, contacts and
//! messages, encrypted at rest and owned by one process at a time.

use std::path::{Path, PathBuf};

use rand_core::{CryptoRng, RngCore};
use redb::{Database, ReadableDatabase, ReadableTable};
use strand_sync::limits::Time;
use strand_sync::{Contact, Identity, Invite, Key, Kind, Message, PublicIdentity, Store};
use zeroize::Zeroizing;

use crate::crypto::{open, passphrase_key, seal, KdfParams};
use crate::schema::{self, meta, CONTACTS, DB_FILE, MESSAGES, META, OUTBOX, READ};
use crate::store::{sync_key, table_key, RedbStore};
use crate::ProfileError;

const ROLE_ROOT: &str = "strand/v1/root";
/// redb's page cache. Its default (1 GiB) would let an idle node holding a
/// large history grow to the size of its file; 8 MiB keeps the hot pages
/// (recent ranges, the B-tree's upper levels) and an idle node small.
const CACHE_BYTES: usize = 8 * 1024 * 1024;
const ROLE_IDENTITY: &str = "strand/v1/identity";
const ROLE_CONTACT: &str = "strand/v1/contact";

/// Where a message this profile wrote stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Delivery {
    /// Stored here; no contact has been offered it yet.
    Queued = 0,
    /// Sent to the contact over a session.
    Sent = 1,
    /// The contact confirmed it holds it.
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
}

/// A message of a conversation, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its sync key (timestamp, id).
    pub key: Key,
    /// Whether this profile wrote it.
    pub outgoing: bool,
    /// The text (empty for kinds this version does not show).
    pub text: String,
    /// For outgoing messages, its delivery state.
    pub delivery: Option<Delivery>,
}

/// An open, unlocked profile. Holding it holds the profile's lock: a second
/// process (or a second `Profile` in this one) gets [`ProfileError::InUse`].
pub struct Profile {
    dir: PathBuf,
    pub(crate) db: Database,
    root: Zeroizing<[u8; 32]>,
    pub(crate) identity: Identity,
    contacts: Vec<ContactRecord>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

pub(crate) fn db_error(e: impl Into<redb::Error>) -> ProfileError {
    ProfileError::Db(e.into().to_string())
}

fn open_db(dir: &Path, create: bool) -> Result<Database, ProfileError> {
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
        other => ProfileError::Db(format!("{}: {other}", path.display())),
    })
}

impl Profile {
    /// Whether `dir` holds a profile.
    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_FILE).is_file()
    }

    /// Whether another process (or handle) holds the profile in `dir` now.
    /// Reads nothing secret; for UIs that want to say so before asking for
    /// the passphrase.
    pub fn in_use(dir: &Path) -> bool {
        Profile::exists(dir) && matches!(open_db(dir, false), Err(ProfileError::InUse(_)))
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
        let identity =
            Identity::generate(name, rng).map_err(|e| ProfileError::Name(e.to_string()))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| ProfileError::Io(format!("{}: {e}", dir.display())))?;
        restrict_permissions(dir);
        let db = open_db(dir, true)?;
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let key = passphrase_key(passphrase, &salt, kdf).ok_or(ProfileError::Kdf)?;
        let mut root = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut root[..]);
        let mut secret = Zeroizing::new(identity.to_secret_bytes().to_vec());
        secret.extend_from_slice(name.as_bytes());
        let txn = db.begin_write().map_err(db_error)?;
        {
            let mut m = txn.open_table(META).map_err(db_error)?;
            m.insert(meta::SCHEMA, &schema::SCHEMA_VERSION.to_le_bytes()[..])
                .map_err(db_error)?;
            m.insert(meta::KDF, &kdf.encode(&salt)[..])
                .map_err(db_error)?;
            m.insert(meta::ROOT, &seal(&key, ROLE_ROOT, &root[..], rng)[..])
                .map_err(db_error)?;
            m.insert(
                meta::IDENTITY,
                &seal(&root, ROLE_IDENTITY, &secret, rng)[..],
            )
            .map_err(db_error)?;
            txn.open_table(CONTACTS).map_err(db_error)?;
            txn.open_table(MESSAGES).map_err(db_error)?;
            txn.open_table(OUTBOX).map_err(db_error)?;
            txn.open_table(READ).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        restrict_permissions(&dir.join(DB_FILE));
        Ok(Profile {
            dir: dir.to_path_buf(),
            db,
            root,
            identity,
            contacts: Vec::new(),
        })
    }

    /// Opens and unlocks an existing profile. A wrong passphrase is
    /// [`ProfileError::WrongPassphrase`] and changes nothing.
    pub fn open(dir: &Path, passphrase: &str) -> Result<Profile, ProfileError> {
        if !Profile::exists(dir) {
            return Err(ProfileError::NotFound(dir.to_path_buf()));
        }
        let db = open_db(dir, false)?;
        let txn = db.begin_read().map_err(db_error)?;
        let m = txn.open_table(META).map_err(db_error)?;
        let get = |name: &str| -> Result<Vec<u8>, ProfileError> {
            m.get(name)
                .map_err(db_error)?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| ProfileError::Corrupt(format!("missing `{name}`")))
        };
        let version = get(meta::SCHEMA)?;
        let version = u32::from_le_bytes(
            version
                .try_into()
                .map_err(|_| ProfileError::Corrupt("bad schema version".into()))?,
        );
        schema::check_version(version)?;
        let (salt, kdf) = KdfParams::decode(&get(meta::KDF)?)
            .ok_or_else(|| ProfileError::Corrupt("bad kdf parameters".into()))?;
        let key = passphrase_key(passphrase, &salt, kdf).ok_or(ProfileError::Kdf)?;
        let root_plain =
            open(&key, ROLE_ROOT, &get(meta::ROOT)?).ok_or(ProfileError::WrongPassphrase)?;
        let mut root = Zeroizing::new([0u8; 32]);
        if root_plain.len() != 32 {
            return Err(ProfileError::Corrupt("bad root key".into()));
        }
        root.copy_from_slice(&root_plain);
        let secret = open(&root, ROLE_IDENTITY, &get(meta::IDENTITY)?)
            .ok_or_else(|| ProfileError::Corrupt("identity does not decrypt".into()))?;
        if secret.len() < 64 {
            return Err(ProfileError::Corrupt("identity too short".into()));
        }
        let mut bytes = Zeroizing::new([0u8; 64]);
        bytes.copy_from_slice(&secret[..64]);
        let name = std::str::from_utf8(&secret[64..])
            .map_err(|_| ProfileError::Corrupt("identity name".into()))?;
        let identity = Identity::from_secret_bytes(&bytes, name)
            .map_err(|e| ProfileError::Corrupt(e.to_string()))?;
        let mut contacts = Vec::new();
        let table = txn.open_table(CONTACTS).map_err(db_error)?;
        for entry in table.iter().map_err(db_error)? {
            let (_, v) = entry.map_err(db_error)?;
            let plain = open(&root, ROLE_CONTACT, v.value())
                .ok_or_else(|| ProfileError::Corrupt("a contact does not decrypt".into()))?;
            contacts.push(decode_contact(&plain)?);
        }
        contacts.sort_by(|a, b| a.name.cmp(&b.name));
        drop((m, table, txn));
        schema::migrate(&db, version)?;
        Ok(Profile {
            dir: dir.to_path_buf(),
            db,
            root,
            identity,
            contacts,
        })
    }

    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The user's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Changes the user's display name. Invites made from now on carry it;
    /// contacts keep the name they gave this user.
    pub fn rename(
        &mut self,
        name: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        let name = name.trim();
        let secret_bytes = self.identity.to_secret_bytes();
        let identity = Identity::from_secret_bytes(&secret_bytes, name)
            .map_err(|e| ProfileError::Name(e.to_string()))?;
        let mut secret = Zeroizing::new(secret_bytes.to_vec());
        secret.extend_from_slice(name.as_bytes());
        let txn = self.db.begin_write().map_err(db_error)?;
        txn.open_table(META)
            .map_err(db_error)?
            .insert(
                meta::IDENTITY,
                &seal(&self.root, ROLE_IDENTITY, &secret, rng)[..],
            )
            .map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        self.identity = identity;
        Ok(())
    }

    /// The contacts, by name.
    pub fn contacts(&self) -> &[ContactRecord] {
        &self.contacts
    }

    /// The contact with this name.
    pub fn contact(&self, name: &str) -> Result<&ContactRecord, ProfileError> {
        self.contacts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ProfileError::UnknownContact(name.to_owned()))
    }

    /// Adds the contact an invite names, under `name`. Adding the same
    /// person twice, or a second contact with the same name, is an error.
    pub fn add_contact(
        &mut self,
        invite: &Invite,
        name: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ContactRecord, ProfileError> {
        let name = name.trim();
        if name.is_empty()
            || name.len() > strand_sync::limits::MAX_NAME_LEN
            || name.chars().any(char::is_control)
        {
            return Err(ProfileError::Name(
                "a contact name must be 1 to 64 bytes, without control characters".into(),
            ));
        }
        self.identity
            .contact(&invite.public)
            .map_err(|e| ProfileError::Invite(e.to_string()))?;
        if let Some(c) = self.contacts.iter().find(|c| c.public == invite.public) {
            return Err(ProfileError::DuplicateContact(c.name.clone()));
        }
        if self.contacts.iter().any(|c| c.name == name) {
            return Err(ProfileError::DuplicateContact(name.to_owned()));
        }
        let record = ContactRecord {
            name: name.to_owned(),
            public: invite.public,
            added_at: now,
        };
        let id = strand_sync::kdf(&self.root, "strand/v1/contact-id", &[&invite.public.sign]);
        let sealed = seal(&self.root, ROLE_CONTACT, &encode_contact(&record), rng);
        let txn = self.db.begin_write().map_err(db_error)?;
        txn.open_table(CONTACTS)
            .map_err(db_error)?
            .insert(&id, &sealed[..])
            .map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        self.contacts.push(record.clone());
        self.contacts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(record)
    }

    /// Every contact with the keys the protocol needs.
    pub fn sync_contacts(&self) -> Vec<Contact> {
        self.contacts
            .iter()
            .filter_map(|c| self.identity.contact(&c.public).ok())
            .collect()
    }

    /// The protocol view of one contact.
    pub fn sync_contact(&self, record: &ContactRecord) -> Result<Contact, ProfileError> {
        self.identity
            .contact(&record.public)
            .map_err(|e| ProfileError::Invite(e.to_string()))
    }

    /// Writes a text message to `contact`, stored here and queued for
    /// delivery.
    pub fn write(
        &mut self,
        contact: &str,
        text: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(strand_sync::GroupId, Key), ProfileError> {
        let group = self.direct_group(contact)?;
        let msg = Message::create(
            &self.identity,
            &group,
            now,
            Kind::TEXT,
            text.as_bytes(),
            rng,
        )
        .map_err(|e| ProfileError::Message(e.to_string()))?;
        let mut store = self.store();
        store.insert(&group.id, &msg).map_err(db_error)?;
        {
            let txn = store.transaction().map_err(db_error)?;
            txn.open_table(OUTBOX)
                .map_err(db_error)?
                .insert(&table_key(&group.id, &msg.key()), Delivery::Queued as u8)
                .map_err(db_error)?;
        }
        store.commit().map_err(db_error)?;
        Ok((group.id, msg.key()))
    }

    /// Raises the delivery state of an outgoing message (never lowers it).
    pub fn mark(
        &self,
        group: &strand_sync::GroupId,
        key: &Key,
        state: Delivery,
    ) -> Result<(), ProfileError> {
        self.mark_many(&[(*group, *key)], state)
    }

    /// [`Profile::mark`] for many messages in one transaction.
    pub fn mark_many(
        &self,
        keys: &[(strand_sync::GroupId, Key)],
        state: Delivery,
    ) -> Result<(), ProfileError> {
        if keys.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut t = txn.open_table(OUTBOX).map_err(db_error)?;
            for (group, key) in keys {
                let k = table_key(group, key);
                let current = t.get(&k).map_err(db_error)?.map(|v| v.value());
                if let Some(cur) = current {
                    if Delivery::from_u8(cur) < state {
                        t.insert(&k, state as u8).map_err(db_error)?;
                    }
                }
            }
        }
        txn.commit().map_err(db_error)?;
        Ok(())
    }

    /// The conversation with `contact`, oldest first.
    pub fn conversation(&self, contact: &str) -> Result<Vec<StoredMessage>, ProfileError> {
        self.conversation_page(contact, &Key::MIN, usize::MAX)
    }

    /// A batch of store reads and writes for a sync session.
    pub fn store(&self) -> RedbStore<'_> {
        RedbStore::new(&self.db)
    }
}

impl RedbStore<'_> {
    fn transaction(&mut self) -> Result<&redb::WriteTransaction, redb::Error> {
        self.write_txn()
    }
}

fn encode_contact(c: &ContactRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(72 + c.name.len());
    out.extend_from_slice(&c.public.sign);
    out.extend_from_slice(&c.public.dh);
    out.extend_from_slice(&c.added_at.to_le_bytes());
    out.extend_from_slice(c.name.as_bytes());
    out
}

fn decode_contact(b: &[u8]) -> Result<ContactRecord, ProfileError> {
    if b.len() < 72 {
        return Err(ProfileError::Corrupt("contact record too short".into()));
    }
    Ok(ContactRecord {
        public: PublicIdentity {
            sign: b[..32].try_into().expect("32 bytes"),
            dh: b[32..64].try_into().expect("32 bytes"),
        },
        added_at: u64::from_le_bytes(b[64..72].try_into().expect("8 bytes")),
        name: String::from_utf8(b[72..].to_vec())
            .map_err(|_| ProfileError::Corrupt("contact name".into()))?,
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
        let txn = self.db.begin_read().map_err(db_error)?;
        txn.open_table(MESSAGES)
            .map_err(db_error)?
            .len()
            .map_err(db_error)
    }

    /// Outgoing messages of `group` not yet known to be delivered.
    pub fn undelivered(&self, group: &strand_sync::GroupId) -> Result<Vec<Key>, ProfileError> {
        let txn = self.db.begin_read().map_err(db_error)?;
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

    /// One stored message of `group`, decrypted.
    pub fn message(
        &self,
        group: &strand_sync::Group,
        key: &Key,
    ) -> Result<Option<StoredMessage>, ProfileError> {
        let Some(bytes) = self.store().get(&group.id, key).map_err(db_error)? else {
            return Ok(None);
        };
        let msg = Message::decode(bytes).map_err(|e| ProfileError::Corrupt(e.to_string()))?;
        let body = msg.open(group).unwrap_or_default();
        Ok(Some(StoredMessage {
            key: *key,
            outgoing: msg.author() == self.identity.public().sign,
            text: String::from_utf8_lossy(&body).into_owned(),
            delivery: None,
        }))
    }
}
