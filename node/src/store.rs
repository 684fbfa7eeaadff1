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
use strand_sync::{
    AuthorId, GroupId, Key, KeyRange, Kind, Message, MessageId, Store, Time, WriteStore,
};

use crate::schema::{MESSAGES, RECORDS, SEEN, SHOWN};

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

/// Where a message sits in its conversation as shown, oldest first: the
/// time it is shown at, then its sync key. A message is shown at its
/// author's time, unless it claims to be no newer than what the user has
/// already seen of the conversation (the read mark, which also moves to
/// each message the user writes): then it is shown when it arrived,
/// below what was seen, and counts as unread. So a contact cannot slip a
/// message into history by backdating it. Messages that arrive together
/// keep their authors' order among themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The time it is shown at, ms since the Unix epoch.
    pub shown: Time,
    /// Its sync key (author's time, id).
    pub key: Key,
}

impl Position {
    /// Before every message.
    pub const MIN: Position = Position {
        shown: 0,
        key: Key::MIN,
    };

    /// The 48 bytes of a position: shown (BE) ‖ time (BE) ‖ id.
    pub(crate) fn to_bytes(self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..8].copy_from_slice(&self.shown.to_be_bytes());
        out[8..16].copy_from_slice(&self.key.time.to_be_bytes());
        out[16..].copy_from_slice(&self.key.id.0);
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8; 48]) -> Position {
        Position {
            shown: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            key: Key {
                time: u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes")),
                id: MessageId(bytes[16..].try_into().expect("32 bytes")),
            },
        }
    }
}

/// The [`SHOWN`] key of a position in a group: group ‖ position.
pub(crate) fn shown_key(group: &GroupId, at: &Position) -> [u8; 80] {
    let mut out = [0u8; 80];
    out[..32].copy_from_slice(&group.0);
    out[32..].copy_from_slice(&at.to_bytes());
    out
}

/// The position in a [`SHOWN`] key.
pub(crate) fn shown_position(key: &[u8; 80]) -> Position {
    Position::from_bytes(key[32..].try_into().expect("48 bytes"))
}

/// A [`SHOWN`] value: when it arrived (u64 BE, 0 if unknown) ‖ flags.
pub(crate) fn shown_value(received: Time, incoming: bool) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[..8].copy_from_slice(&received.to_be_bytes());
    out[8] = u8::from(incoming) * SHOWN_INCOMING;
    out
}

/// Flag in a [`SHOWN`] value: a contact wrote it.
pub(crate) const SHOWN_INCOMING: u8 = 1;

/// Where a message written at `time` and arriving at `now` is shown, in
/// a conversation whose user has seen up to `seen`.
pub(crate) fn show_at(seen: Option<&Position>, time: Time, now: Time) -> Time {
    match seen {
        Some(s) if time <= s.shown => now.max(s.shown.saturating_add(1)),
        _ => time,
    }
}

/// Stores messages in one write transaction: each in [`MESSAGES`], a
/// record ([`Kind::REACH`]) also in [`RECORDS`] (so the newest of an
/// author's is found without scanning the conversation), a text also in
/// [`SHOWN`] with the time it arrived. A text the user wrote moves the
/// read mark ([`SEEN`]) to itself: they saw the conversation to write it.
pub(crate) struct Inserter<'t> {
    txn: &'t WriteTransaction,
    messages: Table<'t, [u8; 72], &'static [u8]>,
    shown: Table<'t, [u8; 80], [u8; 9]>,
    seen: Table<'t, [u8; 32], [u8; 48]>,
    me: AuthorId,
    now: Time,
}

impl<'t> Inserter<'t> {
    /// For the profile whose author key is `me`, receiving at `now`.
    pub(crate) fn new(
        txn: &'t WriteTransaction,
        me: AuthorId,
        now: Time,
    ) -> Result<Inserter<'t>, redb::Error> {
        Ok(Inserter {
            txn,
            messages: txn.open_table(MESSAGES)?,
            shown: txn.open_table(SHOWN)?,
            seen: txn.open_table(SEEN)?,
            me,
            now,
        })
    }

    /// Stores `message` unless it is there. Returns whether it was new.
    pub(crate) fn insert(
        &mut self,
        group: &GroupId,
        message: &Message,
    ) -> Result<bool, redb::Error> {
        let key = message.key();
        let k = table_key(group, &key);
        if self.messages.get(&k)?.is_some() {
            return Ok(false);
        }
        self.messages.insert(&k, message.as_bytes())?;
        match message.kind() {
            Kind::REACH => {
                let mut records = self.txn.open_table(RECORDS)?;
                let at = record_key(group, &message.author());
                let newer = match records.get(&at)? {
                    Some(old) => old.value() < k,
                    None => true,
                };
                if newer {
                    records.insert(&at, &k)?;
                }
            }
            Kind::TEXT => {
                let seen = self
                    .seen
                    .get(&group.0)?
                    .map(|v| Position::from_bytes(&v.value()));
                let at = Position {
                    shown: show_at(seen.as_ref(), key.time, self.now),
                    key,
                };
                let incoming = message.author() != self.me;
                self.shown
                    .insert(&shown_key(group, &at), shown_value(self.now, incoming))?;
                if !incoming && seen.is_none_or(|s| s < at) {
                    self.seen.insert(&group.0, at.to_bytes())?;
                }
            }
            _ => {}
        }
        Ok(true)
    }
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
    /// The open transaction and when it began (what it stores arrives
    /// then).
    txn: Option<(WriteTransaction, Time)>,
    me: AuthorId,
    /// When what it stores arrived, if not when each transaction begins.
    arrival: Option<Time>,
}

impl RedbStore {
    pub(crate) fn new(db: Arc<Database>, me: AuthorId) -> Self {
        RedbStore {
            db,
            txn: None,
            me,
            arrival: None,
        }
    }

    /// Records what it stores as arrived at `time` (an import of messages
    /// that came earlier; demos and tests) instead of now.
    pub fn arrived_at(mut self, time: Time) -> Self {
        self.arrival = Some(time);
        self
    }

    fn write_txn(&mut self) -> Result<&(WriteTransaction, Time), redb::Error> {
        if self.txn.is_none() {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate)
                .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
            txn.set_two_phase_commit(true);
            self.txn = Some((txn, self.arrival.unwrap_or_else(crate::now)));
        }
        Ok(self.txn.as_ref().expect("just set"))
    }

    /// Makes every insert since the last commit durable (one fsync).
    pub fn commit(&mut self) -> Result<(), redb::Error> {
        if let Some((txn, _)) = self.txn.take() {
            txn.commit()?;
        }
        Ok(())
    }
}

impl WriteStore for RedbStore {
    fn insert(&mut self, group: &GroupId, message: &Message) -> Result<bool, redb::Error> {
        let me = self.me;
        let (txn, now) = self.write_txn()?;
        Inserter::new(txn, me, *now)?.insert(group, message)
    }
}

impl Store for RedbStore {
    type Error = redb::Error;

    fn get(&self, group: &GroupId, key: &Key) -> Result<Option<Vec<u8>>, redb::Error> {
        match &self.txn {
            Some((txn, _)) => Ok(txn
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
            Some((txn, _)) => walk(&txn.open_table(MESSAGES)?, group, range, visit),
            None => ReadView::new(&self.db)?.scan(group, range, visit),
        }
    }
}
