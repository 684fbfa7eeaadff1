//! strand-sync's [`Store`] on redb.
//!
//! Writes go into one write transaction that stays open until
//! [`RedbStore::commit`]: the runtime commits after each batch of input, so
//! a bulk sync costs one fsync per batch, not per message. Reads see the
//! uncommitted writes of the same store.

use std::ops::ControlFlow;

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use strand_sync::{GroupId, Key, KeyRange, Message, MessageId, Store};

use crate::schema::MESSAGES;

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

/// A batch of reads and writes against the profile's message table.
pub struct RedbStore<'a> {
    db: &'a Database,
    txn: Option<WriteTransaction>,
    inserted: Vec<(GroupId, Key)>,
}

impl<'a> RedbStore<'a> {
    pub(crate) fn new(db: &'a Database) -> Self {
        RedbStore {
            db,
            txn: None,
            inserted: Vec::new(),
        }
    }

    pub(crate) fn write_txn(&mut self) -> Result<&WriteTransaction, redb::Error> {
        if self.txn.is_none() {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate)
                .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
            self.txn = Some(txn);
        }
        Ok(self.txn.as_ref().expect("just set"))
    }

    /// Makes every insert since the last commit durable (one fsync), and
    /// returns what was inserted.
    pub fn commit(&mut self) -> Result<Vec<(GroupId, Key)>, redb::Error> {
        if let Some(txn) = self.txn.take() {
            txn.commit()?;
        }
        Ok(std::mem::take(&mut self.inserted))
    }
}

impl Store for RedbStore<'_> {
    type Error = redb::Error;

    fn insert(&mut self, group: &GroupId, message: &Message) -> Result<bool, redb::Error> {
        let k = table_key(group, &message.key());
        let txn = self.write_txn()?;
        let mut table = txn.open_table(MESSAGES)?;
        if table.get(&k)?.is_some() {
            return Ok(false);
        }
        table.insert(&k, message.as_bytes())?;
        drop(table);
        self.inserted.push((*group, message.key()));
        Ok(true)
    }

    fn get(&self, group: &GroupId, key: &Key) -> Result<Option<Vec<u8>>, redb::Error> {
        let k = table_key(group, key);
        if let Some(txn) = &self.txn {
            let table = txn.open_table(MESSAGES)?;
            return Ok(table.get(&k)?.map(|v| v.value().to_vec()));
        }
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(MESSAGES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(table.get(&k)?.map(|v| v.value().to_vec()))
    }

    fn scan(
        &self,
        group: &GroupId,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Key) -> ControlFlow<()>,
    ) -> Result<(), redb::Error> {
        if range.lo >= range.hi {
            return Ok(());
        }
        let lo = table_key(group, &range.lo);
        let hi = table_key(group, &range.hi);
        let walk = |iter: redb::Range<'_, [u8; 72], &[u8]>,
                    visit: &mut dyn FnMut(&Key) -> ControlFlow<()>| {
            for entry in iter {
                let (k, _) = entry?;
                if visit(&sync_key(&k.value())).is_break() {
                    break;
                }
            }
            Ok::<(), redb::Error>(())
        };
        if let Some(txn) = &self.txn {
            let table = txn.open_table(MESSAGES)?;
            return walk(table.range(lo..hi)?, visit);
        }
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(MESSAGES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        walk(table.range(lo..hi)?, visit)
    }
}
