//! The on-disk format: every redb table, the schema version, migrations.
//!
//! One file, `strand.redb`, in the profile directory, encrypted as a whole
//! ([`crate::profile::sealed`]): a header with the Argon2id salt and parameters and
//! the sealed root key, then redb's pages, each block sealed under a key
//! derived from the root key. Inside, the tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name (`&str`) | bytes, see below |
//! | `contacts` | keyed hash of the contact's signing key (32) | sealed contact record |
//! | `messages` | group id (32) ‖ time (u64 BE) ‖ message id (32) | encoded message (body already encrypted under the group key); a file chunk's first 110 bytes only (since schema version 4) |
//! | `bodies` | `messages` key (72) ‖ part (u8) | the rest of a file chunk, in parts of at most 65,280 bytes |
//! | `records` | group id (32) ‖ author's signing key (32) | key in `messages` of that author's newest reach record (72) |
//! | `outbox` | same key as `messages` | delivery state of a message this profile wrote (u8) |
//! | `shown` | group id (32) ‖ position (48): shown at (u64 BE) ‖ time (u64 BE) ‖ message id (32) | received at (u64 BE, 0 if unknown) ‖ flags (u8; 1 = a contact wrote it) |
//! | `seen` | group id (32) | position (48) of the newest text the user has read (the read mark) |
//! | `floor` | group id (32) | position (48) of the newest of the read mark and the user's own texts |
//! | `expiry` | expiry (u64 BE) ‖ `messages` key (72) | its `shown` key (80), or empty |
//! | `timers` | group id (32) ‖ author (32) | `messages` key of that author's newest timer message (72) |
//! | `chunks` | `messages` key of a file chunk (72) | nothing: the chunk is here |
//! | `epochs` | keyed hash of a group epoch's id (32) | sealed epoch: id, key, members (`strand_sync::Epoch::encode`) |
//! | `sending` | `messages` key of a file chunk being sent (72) | nothing: its parts are in `bodies`, its `messages` row is not written yet |
//! | `carried` | keyed hash of a carrying part's key (32) | sealed part: an envelope held for others or an own message spreading (`strand_sync::Carrier::parts`) |
//! | `to-tell` | keyed hash of a contact's signing key, as in `contacts` (32) ‖ what (u8) | nothing: a contact just added is still to be told it |
//!
//! `shown` lists the texts of each conversation in the order a user sees
//! them ([`crate::profile::store::Position`]): a message is shown at its author's
//! time unless it claims to be no newer than the conversation's `floor`
//! (what the user read or wrote), and then when it arrived, above the
//! floor. Unread counts are the contact's texts after the read mark, so a
//! backdated message can neither slip into history nor arrive unnoticed.
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
//! the transactions that committed; a message batch is one transaction,
//! and a file sent appears (its chunks and manifest) in one transaction,
//! its parts having waited in `sending`. A new profile's file is made as
//! `strand.redb.new` and takes its name once its first transaction is
//! in, so a create cut short leaves no profile. A contact added is written with
//! what they are still to be told (`to-tell`), each taken away in the
//! transaction that tells it. A contact's confirmation that it holds a
//! message of this profile's is marked in `outbox` when it comes, and a
//! pool message it confirms is hollowed in that transaction; the
//! carrying state hears of a confirmed text at its next step, or, if the
//! node stops first, from `outbox` when it is next loaded.
//! The sealed backend keeps redb's one in-place page (its header) in two
//! copies, so a torn write of it reads as before or after.

use redb::TableDefinition;

use crate::profile::store::Position;

/// The schema this code writes. A file with a newer one is refused; an
/// older one is migrated by [`migrate`].
pub const SCHEMA_VERSION: u32 = 4;

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
/// reached, without scanning the conversation (and the user's own
/// newest, which their next record is dated after).
pub const RECORDS: TableDefinition<[u8; 64], [u8; 72]> = TableDefinition::new("records");
/// Delivery state of messages this profile wrote.
pub const OUTBOX: TableDefinition<[u8; 72], u8> = TableDefinition::new("outbox");
/// Per conversation, the newest message the user had seen, by author
/// time (for unread counts). Schema version 2 only: version 3 replaced it
/// with [`SEEN`].
const READ: TableDefinition<[u8; 32], [u8; 40]> = TableDefinition::new("read");
/// Texts of every conversation in the order they are shown (see the
/// module docs), with when each arrived. Since schema version 3.
pub const SHOWN: TableDefinition<[u8; 80], [u8; 9]> = TableDefinition::new("shown");
/// Per conversation, the position of the newest text the user has read
/// (for unread counts). Since schema version 3.
pub const SEEN: TableDefinition<[u8; 32], [u8; 48]> = TableDefinition::new("seen");
/// Per conversation, the newest of the read mark and the user's own texts:
/// a contact's text dated at or before it is shown when it arrives. A
/// private group has one per epoch, and what counts is the newest of its
/// epochs'. Since schema version 3.
pub const FLOOR: TableDefinition<[u8; 32], [u8; 48]> = TableDefinition::new("floor");

/// Private groups: the epochs this device can read, each sealed under the
/// root key, under a keyed hash of its id (see `crate::profile::groups`). A table
/// older versions ignore, so it needed no new schema version.
pub const EPOCHS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("epochs");

/// Group messages from others (welcomes, changes, keys) stored and not
/// yet followed, by their `messages` key: written with the message, taken
/// away once [`crate::Profile::apply_group_messages`] has followed it, and
/// followed at the next unlock if the node stopped between the two (or if
/// it is a welcome that waits for room, followed sooner if room is made
/// for it: `crate::profile::groups::WaitingForRoom`); the value is the
/// message's kind.
/// The budget ledger counts the welcomes listed here. A table older
/// versions ignore.
pub const GROUP_PENDING: TableDefinition<[u8; 72], u8> = TableDefinition::new("group-pending");

/// Disappearing messages, by when they expire: expiry (u64 BE) ‖ the
/// message's `messages` key (72) → its `shown` key (80), or nothing if it
/// is not shown. The node deletes each entry's message when its time comes.
pub const EXPIRY: TableDefinition<[u8; 80], &[u8]> = TableDefinition::new("expiry");

/// Per conversation and author, the `messages` key of their newest timer
/// message ([`strand_sync::Kind::TIMER`]): group id (32) ‖ author (32).
pub const TIMERS: TableDefinition<[u8; 64], [u8; 72]> = TableDefinition::new("timers");

/// Per group epoch and author, the `messages` key of their newest chosen
/// name ([`strand_sync::Kind::NAME`]): epoch id (32) ‖ author (32).
pub const NAMES: TableDefinition<[u8; 64], [u8; 72]> = TableDefinition::new("names");

/// The one MEMBERSHIP message kept per author per group epoch (the one
/// with the smallest id, the only one that counts: PROTOCOL.md §14):
/// epoch id (32) ‖ author (32) → its `messages` key. A larger one is not
/// stored; a smaller one replaces the one kept.
pub const CHANGES: TableDefinition<[u8; 64], [u8; 72]> = TableDefinition::new("changes");

/// The rest of each file chunk, after the head its `messages` row holds:
/// `messages` key ‖ part number → up to 65,280 bytes. Since schema
/// version 4. In `messages` a chunk whole (256 KiB and a header) filled a
/// 512 KiB page, written and sealed at every store and read and unsealed
/// by every range read that crossed it (reconciliation, listing a
/// conversation); now its row is small and its parts fill 64 KiB pages.
pub const BODIES: TableDefinition<[u8; 73], &[u8]> = TableDefinition::new("bodies");

/// File chunks held, by their `messages` key: whether a file is all here
/// is answered without reading its chunks (each up to 256 KiB).
pub const CHUNKS: TableDefinition<[u8; 72], ()> = TableDefinition::new("chunks");

/// The chunks of a file being sent: their parts are in [`BODIES`], but
/// they have no `messages` row, so nothing reads or syncs them, until the
/// file is all read and its manifest is stored, in the same transaction
/// as their rows (which empties this table of them). A send that fails
/// deletes its parts; what a crash leaves is deleted when the profile is
/// next opened. A table older versions ignore (they leave such parts
/// where they are), so it needed no new schema version.
pub const SENDING: TableDefinition<[u8; 72], ()> = TableDefinition::new("sending");

/// The large parts of the carrying state (`meta` `carrier` names them):
/// each written once, so a carrying step rewrites only the small state.
pub const CARRIED: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("carried");

/// What contacts just added are still to be told, a row each
/// (`crate::profile::telling`): their keyed id, as in [`CONTACTS`]
/// (32) ‖ what (u8: `crate::profile::telling::Tell`) → nothing. Written
/// in the transaction that adds the contact and taken away in the one
/// that tells them, so a stop or a failure in between leaves it to be
/// told later. It names no one (a keyed hash, as `contacts` does, and
/// the file is sealed whole). A table older versions ignore, so it
/// needed no new schema version.
pub const TO_TELL: TableDefinition<[u8; 33], ()> = TableDefinition::new("to-tell");

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
    /// the root key. Made when first needed, once: in the write
    /// transaction that finds none ([`crate::Profile::relay_seed`]).
    pub const RELAY_SEED: &str = "relay_seed";
    /// The [`strand_sync::Reach`] record last written to contacts, sealed
    /// under the root key: a new one is written only when it changes.
    pub const REACH: &str = "reach";
    /// Whether this user carries envelopes for contacts (1 byte, 0 or 1),
    /// sealed under the root key. Absent: no.
    pub const CARRY: &str = "carry";
    /// The carrying state ([`strand_sync::Carrier::encode_state`]): what
    /// is held for others and spreading (the envelopes and messages
    /// themselves are in `carried`), acknowledgements seen; sealed under
    /// the root key. A state from before `carried` holds them inline.
    pub const CARRIER: &str = "carrier";
    /// The carrying budget the last node ran with (u64 BE), sealed under
    /// the root key.
    pub const CARRY_BUDGET: &str = "carry_budget";
    /// The storage budgets the last node ran with: per contact and for
    /// unknown kinds (two u64 BE), sealed under the root key.
    pub const BUDGETS: &str = "budgets";
    /// The mailbox paired to this profile (PROTOCOL.md §17.1): its
    /// invite, sealed under the root key. Absent: none.
    pub const MAILBOX: &str = "mailbox";
    /// Whose mailbox this profile is: the owner's signing key (32),
    /// sealed under the root key. Absent: no one's.
    pub const MAILBOX_OF: &str = "mailbox_of";
    /// The user's preferences ([`crate::profile::prefs`]), sealed under
    /// the root key. Absent: the defaults.
    pub const PREFS: &str = "prefs";
    /// At a mailbox: the [`super::MESSAGES`] row key of the owner's last list
    /// taken whole (every add and deletion done), sealed under the root
    /// key. Absent: none yet.
    pub const LIST_TAKEN: &str = "list_taken";
    // And one entry per contact, named by the contact's keyed id in hex:
    // `invite-reach/ID`, where their invite said they can be reached; and
    // for a mailbox a contact named, `mailbox-for/ID`, that contact's
    // signing key (32), by which a contact has one mailbox whatever
    // either is called. Both sealed under the root key; older versions
    // ignore them.
}

/// Brings a store written with schema `from` up to [`SCHEMA_VERSION`], in
/// one write transaction (so a crash leaves the old version intact).
/// Called only after the passphrase unlocked the profile (whose author
/// key is `me`): a wrong passphrase changes nothing.
///
/// * 1 → 2: added the `read` table (every conversation started unread up
///   to its newest message being opened).
/// * 2 → 3 (and 1 → 3): lists every stored text in `shown`, at its
///   author's time (when they arrived was not kept: 0), moves each
///   conversation's `read` mark into `seen` (a version 1 store has none:
///   its conversations start unread), sets each `floor` to the newest of
///   that mark and the user's own texts, and drops `read`.
/// * 3 → 4 (and 1, 2 → 4): nothing in this transaction: version 4 reads
///   a file chunk stored whole as well as a split one. [`split_chunks`]
///   splits them afterwards, a batch at a time.
pub fn migrate(
    db: &redb::Database,
    from: u32,
    me: &strand_sync::AuthorId,
) -> Result<(), crate::profile::ProfileError> {
    match from {
        SCHEMA_VERSION => Ok(()),
        v if v > SCHEMA_VERSION => Err(crate::profile::ProfileError::SchemaTooNew(v)),
        1..=3 => {
            let mut txn = db.begin_write().map_err(db_error)?;
            txn.set_two_phase_commit(true);
            if from < 3 {
                let own = list_shown(&txn, me)?;
                txn.open_table(SEEN).map_err(db_error)?;
                if from == 2 {
                    move_read_marks(&txn)?;
                    txn.delete_table(READ).map_err(db_error)?;
                }
                set_floors(&txn, own)?;
            }
            txn.open_table(META)
                .map_err(db_error)?
                .insert(meta::SCHEMA, &SCHEMA_VERSION.to_le_bytes()[..])
                .map_err(db_error)?;
            txn.commit().map_err(db_error)
        }
        v => Err(crate::profile::ProfileError::Corrupt(format!(
            "unknown schema version {v}"
        ))),
    }
}

fn db_error(e: impl Into<redb::Error>) -> crate::profile::ProfileError {
    crate::profile::ProfileError::Db(crate::profile::DbError::from(e.into()))
}

/// Per conversation (group id), a position.
type Positions = std::collections::BTreeMap<[u8; 32], Position>;

/// Version 3's `shown`, for a store that has none: every text at its
/// author's time. Returns the position of the user's newest text in each
/// conversation.
fn list_shown(
    txn: &redb::WriteTransaction,
    me: &strand_sync::AuthorId,
) -> Result<Positions, crate::profile::ProfileError> {
    use crate::profile::store::{shown_key, shown_value, sync_key};
    use redb::ReadableTable;
    let mut own = Positions::new();
    let messages = txn.open_table(MESSAGES).map_err(db_error)?;
    let mut shown = txn.open_table(SHOWN).map_err(db_error)?;
    for entry in messages.iter().map_err(db_error)? {
        let (k, v) = entry.map_err(db_error)?;
        if !crate::profile::views::shown(v.value()) {
            continue;
        }
        let k = k.value();
        let group = strand_sync::GroupId(k[..32].try_into().expect("32 bytes"));
        let key = sync_key(&k);
        let msg = strand_sync::Message::decode(v.value().to_vec())
            .map_err(crate::profile::ProfileError::StoredMessage)?;
        let at = Position {
            shown: key.time,
            key,
        };
        let incoming = msg.author() != *me;
        shown
            .insert(&shown_key(&group, &at), shown_value(0, incoming))
            .map_err(db_error)?;
        if !incoming {
            // Keys come in order: the last one seen is the newest.
            own.insert(group.0, at);
        }
    }
    Ok(own)
}

/// Version 4's split chunks, for a store [`migrate`]d from `from`: every
/// chunk stored whole (the `chunks` index lists them) becomes its head in
/// `messages` and its rest in `bodies`, [`SPLIT_BATCH`] chunks to a
/// transaction, so a full disk stops it with every chunk whole or split
/// (both read the same). After a failed commit redb refuses writes on
/// the handle: reopen it.
pub fn split_chunks(db: &redb::Database, from: u32) -> Result<(), crate::profile::ProfileError> {
    use redb::{ReadableDatabase, ReadableTable};
    if from >= 4 {
        return Ok(());
    }
    let keys: Vec<[u8; 72]> = {
        let txn = db.begin_read().map_err(db_error)?;
        match txn.open_table(CHUNKS) {
            Ok(t) => t
                .iter()
                .map_err(db_error)?
                .map(|e| e.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(db_error)?,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(db_error(e)),
        }
    };
    for batch in keys.chunks(SPLIT_BATCH) {
        let mut txn = db.begin_write().map_err(db_error)?;
        txn.set_two_phase_commit(true);
        {
            let mut messages = txn.open_table(MESSAGES).map_err(db_error)?;
            for k in batch {
                let Some(bytes) = messages
                    .get(k)
                    .map_err(db_error)?
                    .map(|v| v.value().to_vec())
                else {
                    continue;
                };
                if bytes.len() > crate::profile::store::HEAD {
                    crate::profile::store::put_message(&txn, &mut messages, k, &bytes, true)
                        .map_err(db_error)?;
                }
            }
        }
        txn.commit().map_err(db_error)?;
    }
    Ok(())
}

/// Chunks split in one transaction by the version 4 migration (16 MiB):
/// what a transaction rewrites needs that much free disk until it
/// commits.
const SPLIT_BATCH: usize = 64;

/// Each conversation's floor: the newest of its read mark and `own`.
fn set_floors(
    txn: &redb::WriteTransaction,
    own: Positions,
) -> Result<(), crate::profile::ProfileError> {
    use redb::ReadableTable;
    let seen = txn.open_table(SEEN).map_err(db_error)?;
    let mut floors = txn.open_table(FLOOR).map_err(db_error)?;
    let mut newest = own;
    for entry in seen.iter().map_err(db_error)? {
        let (group, mark) = entry.map_err(db_error)?;
        let mark = Position::from_bytes(&mark.value());
        let f = newest.entry(group.value()).or_insert(mark);
        *f = (*f).max(mark);
    }
    for (group, at) in newest {
        floors.insert(&group, at.to_bytes()).map_err(db_error)?;
    }
    Ok(())
}

/// Version 2's read marks (time ‖ id) as version 3's positions: texts
/// were shown at their author's time then.
fn move_read_marks(txn: &redb::WriteTransaction) -> Result<(), crate::profile::ProfileError> {
    use redb::ReadableTable;
    let read = txn.open_table(READ).map_err(db_error)?;
    let mut seen = txn.open_table(SEEN).map_err(db_error)?;
    for entry in read.iter().map_err(db_error)? {
        let (group, mark) = entry.map_err(db_error)?;
        let mark = mark.value();
        let key = strand_sync::Key {
            time: u64::from_be_bytes(mark[..8].try_into().expect("8 bytes")),
            id: strand_sync::MessageId(mark[8..].try_into().expect("32 bytes")),
        };
        let at = Position {
            shown: key.time,
            key,
        };
        seen.insert(&group.value(), at.to_bytes())
            .map_err(db_error)?;
    }
    Ok(())
}

/// Checks that a stored schema version can be opened (before unlocking).
pub fn check_version(from: u32) -> Result<(), crate::profile::ProfileError> {
    match from {
        1..=SCHEMA_VERSION => Ok(()),
        v if v > SCHEMA_VERSION => Err(crate::profile::ProfileError::SchemaTooNew(v)),
        v => Err(crate::profile::ProfileError::Corrupt(format!(
            "unknown schema version {v}"
        ))),
    }
}
