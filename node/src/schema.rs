//! The on-disk format: every redb table, the schema version, migrations.
//!
//! One file, `strand.redb`, in the profile directory. Tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name (`&str`) | bytes, see below |
//! | `contacts` | keyed hash of the contact's signing key (32) | sealed contact record |
//! | `messages` | group id (32) ‖ time (u64 BE) ‖ message id (32) | encoded message (body already encrypted under the group key) |
//! | `outbox` | same key as `messages` | delivery state of a message this profile wrote (u8) |
//!
//! `meta` holds: `schema` (u32 LE), `kdf` (Argon2id salt and parameters),
//! `root` (the random root key, sealed under the passphrase key) and
//! `identity` (the identity's secret keys and name, sealed under the root
//! key). "Sealed" is XChaCha20-Poly1305 with a random 24-byte nonce in
//! front and the record's role as associated data.
//!
//! Crash assumptions: every change is one redb write transaction committed
//! with `Durability::Immediate`, so after a crash the file holds exactly
//! the transactions that committed; a message batch is one transaction.

use redb::TableDefinition;

/// The schema this code writes. A file with a newer one is refused; an
/// older one is migrated by [`migrate`].
pub const SCHEMA_VERSION: u32 = 1;

/// File name of the store inside a profile directory.
pub const DB_FILE: &str = "strand.redb";

/// Profile-wide values, by name.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Contacts: keyed hash of their signing key → sealed record.
pub const CONTACTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("contacts");
/// Every message of every group, in (group, time, id) order.
pub const MESSAGES: TableDefinition<[u8; 72], &[u8]> = TableDefinition::new("messages");
/// Delivery state of messages this profile wrote.
pub const OUTBOX: TableDefinition<[u8; 72], u8> = TableDefinition::new("outbox");

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
}

/// Brings a store written with schema `from` up to [`SCHEMA_VERSION`].
/// Version 1 is the first: there is nothing to migrate yet, and every
/// future version adds its step here.
pub fn migrate(from: u32) -> Result<(), crate::ProfileError> {
    match from {
        SCHEMA_VERSION => Ok(()),
        v if v > SCHEMA_VERSION => Err(crate::ProfileError::SchemaTooNew(v)),
        v => Err(crate::ProfileError::Corrupt(format!(
            "unknown schema version {v}"
        ))),
    }
}
