//! The on-disk format: every redb table, the schema version, migrations.
//!
//! One file, `strand.redb`, in the profile directory, encrypted as a whole
//! ([`crate::sealed`]): a header with the Argon2id salt and parameters and
//! the sealed root key, then redb's pages, each block sealed under a key
//! derived from the root key. Inside, the tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name (`&str`) | bytes, see below |
//! | `contacts` | keyed hash of the contact's signing key (32) | sealed contact record |
//! | `messages` | group id (32) ‖ time (u64 BE) ‖ message id (32) | encoded message (body already encrypted under the group key) |
//! | `records` | group id (32) ‖ author's signing key (32) | key in `messages` of that author's newest reach record (72) |
//! | `outbox` | same key as `messages` | delivery state of a message this profile wrote (u8) |
//! | `read` | group id (32) | the newest message the user has seen: time (u64 BE) ‖ id (32) (since version 2) |
//!
//! `meta` holds: `schema` (u32 LE), `identity` (the identity's secret keys
//! and name, sealed under the root key), and, once relays are used,
//! `relays`, `relay_seed` and `reach` (sealed; see [`meta`]). Keys a
//! version does not know are left alone, so these needed no new schema
//! version. "Sealed" is XChaCha20-Poly1305 with a random 24-byte nonce in
//! front and the record's role as associated data: secrets (identity,
//! contacts, relays) are sealed one by one under the root key as well as
//! by the file's own sealing.
//!
//! Files from before the file was sealed as a whole are plain redb files
//! with the same tables, and `kdf` (Argon2id salt and parameters) and
//! `root` (the root key, sealed under the passphrase key) in `meta`. They
//! are moved into a sealed file after their next unlock
//! (`profile::seal_file`), in one transaction.
//!
//! Crash assumptions: every change is one redb write transaction committed
//! with `Durability::Immediate`, so after a crash the file holds exactly
//! the transactions that committed; a message batch is one transaction.
//! The sealed backend keeps redb's one in-place page (its header) in two
//! copies, so a torn write of it reads as before or after.

use redb::TableDefinition;

/// The schema this code writes. A file with a newer one is refused; an
/// older one is migrated by [`migrate`].
pub const SCHEMA_VERSION: u32 = 2;

/// File name of the store inside a profile directory.
pub const DB_FILE: &str = "strand.redb";

/// Profile-wide values, by name.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Contacts: keyed hash of their signing key → sealed record.
pub const CONTACTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("contacts");
/// Every message of every group, in (group, time, id) order.
pub const MESSAGES: TableDefinition<[u8; 72], &[u8]> = TableDefinition::new("messages");
/// Per group and author, the table key of their newest record
/// ([`strand_sync::Kind::REACH`]): where a contact says they can be
/// reached, without scanning the conversation.
pub const RECORDS: TableDefinition<[u8; 64], [u8; 72]> = TableDefinition::new("records");
/// Delivery state of messages this profile wrote.
pub const OUTBOX: TableDefinition<[u8; 72], u8> = TableDefinition::new("outbox");
/// Per conversation, the newest message the user has seen (for unread
/// counts). Added in schema version 2.
pub const READ: TableDefinition<[u8; 32], [u8; 40]> = TableDefinition::new("read");

/// Names of `meta` entries.
pub mod meta {
    /// Schema version, u32 LE.
    pub const SCHEMA: &str = "schema";
    /// Argon2id salt (16) ‖ m_cost KiB (u32 LE) ‖ t_cost (u32 LE) ‖ p_cost (u32 LE).
    pub const KDF: &str = "kdf";
    /// Root key sealed under the passphrase key.
    pub const ROOT: &str = "root";
    /// Identity secret (64) ‖ name, sealed under the root key.
    pub const IDENTITY: &str = "identity";
    /// The relays to reserve on: count (u8) ‖ per relay, length (u16 LE) ‖
    /// the multiaddr as text; sealed under the root key. Absent: none.
    pub const RELAYS: &str = "relays";
    /// The seed of this device's relay identities (32 bytes), sealed under
    /// the root key. Made when first needed.
    pub const RELAY_SEED: &str = "relay_seed";
    /// The [`strand_sync::Reach`] record last written to contacts, sealed
    /// under the root key: a new one is written only when it changes.
    pub const REACH: &str = "reach";
}

/// Brings a store written with schema `from` up to [`SCHEMA_VERSION`], in
/// one write transaction (so a crash leaves the old version intact).
/// Called only after the passphrase unlocked the profile: a wrong
/// passphrase changes nothing.
///
/// * 1 → 2: adds the `read` table (every conversation starts unread up to
///   its newest message being opened).
pub fn migrate(db: &redb::Database, from: u32) -> Result<(), crate::ProfileError> {
    let db_error = |e: redb::Error| crate::ProfileError::Db(crate::DbError::from(e));
    match from {
        SCHEMA_VERSION => Ok(()),
        v if v > SCHEMA_VERSION => Err(crate::ProfileError::SchemaTooNew(v)),
        1 => {
            let mut txn = db.begin_write().map_err(|e| db_error(e.into()))?;
            txn.set_two_phase_commit(true);
            txn.open_table(READ).map_err(|e| db_error(e.into()))?;
            txn.open_table(META)
                .map_err(|e| db_error(e.into()))?
                .insert(meta::SCHEMA, &SCHEMA_VERSION.to_le_bytes()[..])
                .map_err(|e| db_error(e.into()))?;
            txn.commit().map_err(|e| db_error(e.into()))
        }
        v => Err(crate::ProfileError::Corrupt(format!(
            "unknown schema version {v}"
        ))),
    }
}

/// Checks that a stored schema version can be opened (before unlocking).
pub fn check_version(from: u32) -> Result<(), crate::ProfileError> {
    match from {
        1..=SCHEMA_VERSION => Ok(()),
        v if v > SCHEMA_VERSION => Err(crate::ProfileError::SchemaTooNew(v)),
        v => Err(crate::ProfileError::Corrupt(format!(
            "unknown schema version {v}"
        ))),
    }
}
