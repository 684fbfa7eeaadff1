//! strand-sync's [`Store`] on redb: a read view for sessions, inserts for
//! the writer, and a batch store for loading a profile no node runs on.
//!
//! Sessions only read ([`ReadView`]: one read transaction, no lock, never
//! waiting on a writer). Everything that arrives is written by the
//! profile's single writer ([`crate::writer`]) with [`insert`]; a batch of
//! received messages is one job, and the writer commits many jobs in one
//! transaction.

use std::ops::ControlFlow;
use std::sync::Arc;

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, WriteTransaction};
use strand_sync::{AuthorId, GroupId, Key, KeyRange, Kind, Message, MessageId, Store, WriteStore};

use crate::schema::{MESSAGES, RECORDS};

/// The table key of a message: group ‖ time (BE) ‖ id, so byte order is
/// (group, time, id) order.
pub fn table_key(group: &GroupId, key: &Key) -> [u8; 72] {
    let mut out = [0u8; 72];
    out[..32].copy_from_slice(&group.0);
    out[32..40].copy_from_slice(&key.time.to_be_bytes());
    out[40..].copy_from_slice(&key.id.0);
    out
}

/// The sync key of a table key.
pub fn sync_key(table_key: &[u8; 72]) -> Key {
    Key {
        time: u64::from_be_bytes(table_key[32..40].try_into().expect("8 bytes")),
        id: MessageId(table_key[40..].try_into().expect("32 bytes")),
    }
}

/// Stores `message` unless it is there. Returns whether it was new. A
/// record ([`Kind::REACH`]) is also noted in [`RECORDS`], so the newest of
/// an author's is found without scanning the conversation.
pub(crate) fn insert(
    txn: &WriteTransaction,
    table: &mut Table<'_, [u8; 72], &[u8]>,
    group: &GroupId,
    message: &Message,
) -> Result<bool, redb::Error> {
    let k = table_key(group, &message.key());
    if table.get(&k)?.is_some() {
        return Ok(false);
    }
    table.insert(&k, message.as_bytes())?;
    if message.kind() == Kind::REACH {
        let mut records = txn.open_table(RECORDS)?;
        let at = record_key(group, &message.author());
        let newer = match records.get(&at)? {
            Some(old) => old.value() < k,
            None => true,
        };
        if newer {
            records.insert(&at, &k)?;
        }
    }
    Ok(true)
}

/// The [`RECORDS`] key of an author's records in a group.
pub(crate) fn record_key(group: &GroupId, author: &AuthorId) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&group.0);
    out[32..].copy_from_slice(author);
    out
}

fn walk(
    table: &impl ReadableTable<[u8; 72], &'static [u8]>,
    group: &GroupId,
    range: &KeyRange,
    visit: &mut dyn FnMut(&Key) -> ControlFlow<()>,
) -> Result<(), redb::Error> {
    if range.lo >= range.hi {
        return Ok(());
    }
    let lo = table_key(group, &range.lo);
    let hi = table_key(group, &range.hi);
    for entry in table.range(lo..hi)? {
        let (k, _) = entry?;
        if visit(&sync_key(&k.value())).is_break() {
            break;
        }
    }
    Ok(())
}

/// What a session reads: the message table as of one read transaction.
/// Cheap to make (a page-cache lookup), never blocked by the writer.
pub struct ReadView {
    table: Option<ReadOnlyTable<[u8; 72], &'static [u8]>>,
}

impl ReadView {
    pub(crate) fn new(db: &Database) -> Result<ReadView, redb::Error> {
        let txn = db.begin_read()?;
        let table = match txn.open_table(MESSAGES) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(ReadView { table })
    }
}

impl Store for ReadView {
    type Error = redb::Error;

    fn get(&self, group: &GroupId, key: &Key) -> Result<Option<Vec<u8>>, redb::Error> {
        let Some(t) = &self.table else {
            return Ok(None);
        };
        Ok(t.get(&table_key(group, key))?.map(|v| v.value().to_vec()))
    }

    fn contains(&self, group: &GroupId, key: &Key) -> Result<bool, redb::Error> {
        let Some(t) = &self.table else {
            return Ok(false);
        };
        Ok(t.get(&table_key(group, key))?.is_some())
    }

    fn scan(
        &self,
        group: &GroupId,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Key) -> ControlFlow<()>,
    ) -> Result<(), redb::Error> {
        match &self.table {
            Some(t) => walk(t, group, range, visit),
            None => Ok(()),
        }
    }
}

/// Reads and writes in one write transaction that stays open until
/// [`RedbStore::commit`]: for loading many messages into a profile that no
/// node is running on (benchmarks, imports, tests). A running node writes
/// through its writer instead.
pub struct RedbStore {
    db: Arc<Database>,
    txn: Option<WriteTransaction>,
}

impl RedbStore {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        RedbStore { db, txn: None }
    }

    fn write_txn(&mut self) -> Result<&WriteTransaction, redb::Error> {
        if self.txn.is_none() {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate)
                .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
            txn.set_two_phase_commit(true);
            self.txn = Some(txn);
        }
        Ok(self.txn.as_ref().expect("just set"))
    }

    /// Makes every insert since the last commit durable (one fsync).
    pub fn commit(&mut self) -> Result<(), redb::Error> {
        if let Some(txn) = self.txn.take() {
            txn.commit()?;
        }
        Ok(())
    }
}

impl WriteStore for RedbStore {
    fn insert(&mut self, group: &GroupId, message: &Message) -> Result<bool, redb::Error> {
        let txn = self.write_txn()?;
        let mut table = txn.open_table(MESSAGES)?;
        insert(txn, &mut table, group, message)
    }
}

impl Store for RedbStore {
    type Error = redb::Error;

    fn get(&self, group: &GroupId, key: &Key) -> Result<Option<Vec<u8>>, redb::Error> {
        match &self.txn {
            Some(txn) => Ok(txn
                .open_table(MESSAGES)?
                .get(&table_key(group, key))?
                .map(|v| v.value().to_vec())),
            None => ReadView::new(&self.db)?.get(group, key),
        }
    }

    fn scan(
        &self,
        group: &GroupId,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Key) -> ControlFlow<()>,
    ) -> Result<(), redb::Error> {
        match &self.txn {
            Some(txn) => walk(&txn.open_table(MESSAGES)?, group, range, visit),
            None => ReadView::new(&self.db)?.scan(group, range, visit),
        }
    }
}
