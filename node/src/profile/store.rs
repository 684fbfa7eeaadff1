//! strand-sync's [`Store`] on redb: a read view for sessions, inserts for
//! the writer, and a batch store for loading a profile no node runs on.
//!
//! Sessions only read ([`ReadView`]: one read transaction, no lock, never
//! waiting on a writer). Everything that arrives is written by the
//! profile's single writer ([`crate::profile::writer`]) with [`insert`]; a batch of
//! received messages is one job, and the writer commits many jobs in one
//! transaction.

use std::ops::ControlFlow;
use std::sync::Arc;

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, WriteTransaction};
use strand_sync::{
    AuthorId, Chain, Epoch, GroupId, Key, KeyRange, Kind, Message, MessageId, Store, Time,
    WriteStore,
};

use crate::profile::schema::{BODIES, FLOOR, MESSAGES, RECORDS, SHOWN};

/// The table key of a message: group ‖ time (BE) ‖ id, so byte order is
/// (group, time, id) order.
pub fn table_key(group: &GroupId, key: &Key) -> [u8; 72] {
    let mut out = [0u8; 72];
    out[..32].copy_from_slice(&group.0);
    out[32..40].copy_from_slice(&key.time.to_be_bytes());
    out[40..].copy_from_slice(&key.id.0);
    out
}

/// Whether a stored message of this kind may move a group: welcomes,
/// changes and key messages are followed at once.
pub(crate) fn is_group_kind(kind: Kind) -> bool {
    kind == Kind::WELCOME || kind == Kind::MEMBERSHIP || kind == Kind::KEY
}

/// The group and key in a message's table key ([`table_key`]).
pub(crate) fn split_table_key(k: &[u8; 72]) -> (GroupId, Key) {
    let group = GroupId(k[..32].try_into().expect("32 bytes"));
    let time = Time::from_be_bytes(k[32..40].try_into().expect("8 bytes"));
    let id = MessageId(k[40..].try_into().expect("32 bytes"));
    (group, Key { time, id })
}

/// How much of a file chunk its [`MESSAGES`] row holds: the header (110
/// bytes at most, kind at byte 73) and, for a message without an expiry,
/// the first 8 bytes of its ciphertext. The rest is in [`BODIES`].
pub(crate) const HEAD: usize = 110;
/// The most of a chunk's rest one [`BODIES`] row holds: with its key and
/// redb's leaf header it fills a 64 KiB page. (A chunk whole, 256 KiB and
/// a header, would take a 512 KiB page: redb gives a value that does not
/// fit a page the next power of two.)
const PART: usize = 65_536 - 256;

/// Whether a message is stored split: a file chunk, the one kind whose
/// size would waste most of a page, and that range reads (reconciliation,
/// conversation views) would otherwise read in full.
pub(crate) fn split(message: &Message) -> bool {
    message.kind() == Kind::CHUNK
}

/// The [`BODIES`] key of part `i` of the message at `k`.
fn body_key(k: &[u8; 72], i: u8) -> [u8; 73] {
    let mut out = [0u8; 73];
    out[..72].copy_from_slice(k);
    out[72] = i;
    out
}

/// Stores `bytes` at `k`: whole, or split into its head in `messages`
/// and the rest in [`BODIES`].
pub(crate) fn put_message(
    txn: &WriteTransaction,
    messages: &mut Table<'_, [u8; 72], &'static [u8]>,
    k: &[u8; 72],
    bytes: &[u8],
    split: bool,
) -> Result<(), redb::Error> {
    messages.insert(k, put_body(txn, k, bytes, split)?)?;
    Ok(())
}

/// Stores the rest of a split message at `k` in [`BODIES`] and returns
/// what its `messages` row holds: its head, or `bytes` whole if it is not
/// split (then nothing is stored).
pub(crate) fn put_body<'b>(
    txn: &WriteTransaction,
    k: &[u8; 72],
    bytes: &'b [u8],
    split: bool,
) -> Result<&'b [u8], redb::Error> {
    if !split || bytes.len() <= HEAD {
        return Ok(bytes);
    }
    let mut bodies = txn.open_table(BODIES)?;
    for (i, part) in bytes[HEAD..].chunks(PART).enumerate() {
        let i = u8::try_from(i).expect("a message is at most 255 parts");
        bodies.insert(&body_key(k, i), part)?;
    }
    Ok(&bytes[..HEAD])
}

/// Deletes the rest of a split message at `k`, if it was split.
pub(crate) fn remove_body(txn: &WriteTransaction, k: &[u8; 72]) -> Result<(), redb::Error> {
    let mut bodies = txn.open_table(BODIES)?;
    bodies.retain_in(body_key(k, 0)..=body_key(k, u8::MAX), |_, _| false)?;
    Ok(())
}

/// A stored message's bytes from its [`MESSAGES`] row `stored`: the row
/// itself, or its head and the rest from `bodies` if it was split. `None`
/// for a hollow row (a carrying pool's, once read: held, nothing to send)
/// and for a split message whose parts are not all there (a damaged
/// store: it is not sent or shown as if whole).
pub(crate) fn whole(
    bodies: Option<&impl ReadableTable<[u8; 73], &'static [u8]>>,
    k: &[u8; 72],
    stored: &[u8],
) -> Result<Option<Vec<u8>>, redb::Error> {
    if stored.is_empty() {
        return Ok(None);
    }
    if stored.len() != HEAD {
        return Ok(Some(stored.to_vec()));
    }
    let Some(len) = strand_sync::encoded_len(stored) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(stored);
    if let Some(bodies) = bodies {
        for part in bodies.range(body_key(k, 0)..=body_key(k, u8::MAX))? {
            out.extend_from_slice(part?.1.value());
        }
    }
    if out.len() != len {
        tracing::warn!("a stored file chunk is missing parts");
        return Ok(None);
    }
    Ok(Some(out))
}

/// The author and kind in a [`MESSAGES`] row's head, read as stored
/// (every row was checked before it was stored, and a whole row and a
/// split one begin alike: strand-sync's [`strand_sync::head_of`]);
/// `None` for a hollow row.
pub(crate) fn row_head(row: &[u8]) -> Option<(AuthorId, Kind)> {
    strand_sync::head_of(row)
}

/// The author, kind and whole length of the message in a [`MESSAGES`]
/// row, read from its head if it was split (its parts stay unread);
/// `None` for a hollow row or one that does not decode.
pub(crate) fn row_facts(row: &[u8]) -> Option<(AuthorId, Kind, usize)> {
    if row.len() == HEAD {
        let (author, kind) = row_head(row)?;
        return Some((author, kind, strand_sync::encoded_len(row)?));
    }
    let m = Message::decode(row.to_vec()).ok()?;
    Some((m.author(), m.kind(), row.len()))
}

/// A deleted row's author, kind and length.
pub(crate) type RowFacts = (AuthorId, Kind, u64);

/// A deleted row's log and, unless it was hollow, its [`RowFacts`]
/// ([`deleted_row`]).
pub(crate) type DeletedRow = (GroupId, Option<RowFacts>);

/// A [`MESSAGES`] row of `group` being deleted, as the budget ledger
/// gives it back ([`crate::profile::budget`]): its log and, unless it is
/// hollow, its author, kind and length. `None` for a row that does not
/// read: a count from the store counted nothing for it.
pub(crate) fn deleted_row(group: GroupId, row: &[u8]) -> Option<DeletedRow> {
    if row.is_empty() {
        return Some((group, None));
    }
    let (author, kind, n) = row_facts(row)?;
    Some((group, Some((author, kind, n as u64))))
}

/// The sync key of a table key.
pub fn sync_key(table_key: &[u8; 72]) -> Key {
    Key {
        time: u64::from_be_bytes(table_key[32..40].try_into().expect("8 bytes")),
        id: MessageId(table_key[40..].try_into().expect("32 bytes")),
    }
}

/// Where a message sits in its conversation as shown, oldest first: the
/// time it is shown at, then its sync key.
///
/// Each conversation has a *floor* ([`FLOOR`]): the newest of what the
/// user has read (the read mark, [`SEEN`](crate::profile::schema::SEEN)) and what
/// they wrote. A
/// contact's message is shown at its author's time (or when it arrived,
/// if its author dated it ahead of that), unless it claims to be no
/// newer than the floor; then it is *late*, and shown when it arrived
/// (never at or below the floor). The other messages of the same
/// conversation that arrive in the same transaction and are not dated
/// ahead of their arrival are late too, so what arrives together keeps its
/// author's order. A late message is below what was seen and counts as
/// unread: a contact cannot slip a message into history by backdating it.
/// A private group's floor is the newest of its epochs' floors (see
/// [`Inserter`]), so neither can a member, whichever epoch they write into.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Position {
    /// The time it is shown at, ms since the Unix epoch.
    pub shown: Time,
    /// Its sync key (author's time, id).
    #[serde(with = "key_serde")]
    pub key: Key,
}

/// A message's [`Key`] as JSON: its time and its id in hex.
pub(crate) mod key_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use strand_sync::{Key, MessageId};

    #[derive(Serialize, Deserialize)]
    struct K {
        time: u64,
        id: String,
    }

    pub(crate) fn serialize<S: Serializer>(k: &Key, s: S) -> Result<S::Ok, S::Error> {
        K {
            time: k.time,
            id: crate::profile::hex(&k.id.0),
        }
        .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let k = K::deserialize(d)?;
        let id = crate::profile::unhex(&k.id)
            .ok_or_else(|| serde::de::Error::custom("a message id is 64 hex digits"))?;
        Ok(Key {
            time: k.time,
            id: MessageId(id),
        })
    }
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

/// Whether a contact's message dated `time` is late in a conversation
/// whose floor is `floor`.
fn is_late(floor: Option<&Position>, time: Time) -> bool {
    floor.is_some_and(|f| time <= f.shown)
}

/// Stores messages in one write transaction: each in [`MESSAGES`], a
/// record ([`Kind::REACH`]) also in [`RECORDS`] (so the newest of an
/// author's is found without scanning the conversation), a text also in
/// [`SHOWN`] at its [`Position`], with the time it arrived. A text the
/// user wrote raises the conversation's floor to itself.
///
/// A private group keeps a floor per epoch, and a member may write into
/// any epoch the group's chain holds (see `Chain::accepts`). So for an
/// epoch of a group it was told of ([`Inserter::with_groups`]) the floor
/// is the newest of all its chain's epochs' floors: what the user read or
/// wrote in one epoch is history in all of them, and an epoch made after
/// the user read the group starts above what they read.
///
/// A MEMBERSHIP message can replace one stored before
/// ([`Inserter::keep_smallest_change`]): the rows it deleted are listed
/// ([`Inserter::take_replaced`]), for the budget ledger to give back what
/// it counted of them.
pub(crate) struct Inserter<'t> {
    txn: &'t WriteTransaction,
    messages: Table<'t, [u8; 72], &'static [u8]>,
    shown: Table<'t, [u8; 80], [u8; 9]>,
    floors: Table<'t, [u8; 32], [u8; 48]>,
    /// Conversations with a late message in this transaction.
    late: std::collections::HashSet<GroupId>,
    /// For each epoch of a private group, the index in `chains` of its
    /// group's epochs.
    epoch_of: std::collections::HashMap<GroupId, usize>,
    /// The epoch ids of each private group.
    chains: Vec<Vec<GroupId>>,
    /// Each private group's floor as read in this transaction, by its
    /// index in `chains`: read once, not once per text (a chain's epochs
    /// are as many as its changes).
    group_floors: std::collections::HashMap<usize, Option<Position>>,
    /// The rows deleted as a smaller MEMBERSHIP message replaced them.
    replaced: Vec<DeletedRow>,
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
            floors: txn.open_table(FLOOR)?,
            late: Default::default(),
            epoch_of: Default::default(),
            chains: Vec::new(),
            group_floors: Default::default(),
            replaced: Vec::new(),
            me,
            now,
        })
    }

    /// The rows it deleted so far as a MEMBERSHIP message with a smaller
    /// id replaced them ([`Inserter::keep_smallest_change`]), and then
    /// none: what the budget ledger counted of them is given back
    /// ([`crate::profile::budget::Ledger::refund`]).
    pub(crate) fn take_replaced(&mut self) -> Vec<DeletedRow> {
        std::mem::take(&mut self.replaced)
    }

    /// Tells it the private groups, so that the floor of an epoch is its
    /// group's (see [`Inserter`]). Without them each epoch has its own.
    pub(crate) fn with_groups(mut self, chains: &[Chain]) -> Self {
        for chain in chains {
            let ids: Vec<GroupId> = chain.epochs().map(Epoch::id).collect();
            for id in &ids {
                self.epoch_of.insert(*id, self.chains.len());
            }
            self.chains.push(ids);
        }
        self
    }

    /// The floor of `group`: for an epoch of a private group, the newest
    /// of its group's epochs' floors.
    fn floor(&mut self, group: &GroupId) -> Result<Option<Position>, redb::Error> {
        let own = std::slice::from_ref(group);
        let (ids, chain) = match self.epoch_of.get(group) {
            Some(&i) => {
                if let Some(floor) = self.group_floors.get(&i) {
                    return Ok(*floor);
                }
                (&self.chains[i][..], Some(i))
            }
            None => (own, None),
        };
        let mut floor = None;
        for id in ids {
            #[cfg(test)]
            tests::FLOOR_READS.with(|n| n.set(n.get() + 1));
            if let Some(v) = self.floors.get(&id.0)? {
                floor = floor.max(Some(Position::from_bytes(&v.value())));
            }
        }
        if let Some(i) = chain {
            self.group_floors.insert(i, floor);
        }
        Ok(floor)
    }

    /// The time a message is shown at unless it is late: its author's,
    /// or, for a contact's dated ahead of its arrival (by up to
    /// `MAX_CLOCK_SKEW`), its arrival. So a text dated ahead is not
    /// shown above replies written after it arrived, and reading it
    /// raises no floor past the clock.
    fn shown_time(&self, message: &Message) -> Time {
        let time = message.key().time;
        if message.author() == self.me {
            time
        } else {
            time.min(self.now)
        }
    }

    /// Looks at a batch before it is stored: if any of its texts from a
    /// contact is late, every one of that conversation's texts in this
    /// transaction is (see [`Position`]), whatever order they come in.
    pub(crate) fn look_ahead<'m>(
        &mut self,
        batch: impl IntoIterator<Item = (&'m GroupId, &'m Message)>,
    ) -> Result<(), redb::Error> {
        for (group, message) in batch {
            if (message.kind() == Kind::TEXT || message.kind() == Kind::FILE)
                && message.author() != self.me
                && !self.late.contains(group)
                && is_late(self.floor(group)?.as_ref(), self.shown_time(message))
            {
                self.late.insert(*group);
            }
        }
        Ok(())
    }

    /// Points `table`'s entry for the message's group and author at it,
    /// unless it points at a newer message already (for the kinds whose
    /// newest per author is all that counts).
    fn keep_newest(
        &self,
        table: redb::TableDefinition<'_, [u8; 64], [u8; 72]>,
        group: &GroupId,
        message: &Message,
        k: &[u8; 72],
    ) -> Result<(), redb::Error> {
        let mut t = self.txn.open_table(table)?;
        let at = record_key(group, &message.author());
        let newer = match t.get(&at)? {
            Some(old) => old.value()[32..] < k[32..],
            None => true,
        };
        if newer {
            t.insert(&at, k)?;
        }
        Ok(())
    }

    /// Whether to store a MEMBERSHIP message: only each author's one
    /// with the smallest id counts in an epoch, so a larger one is not
    /// stored and a smaller one replaces the one kept (removed here, and
    /// listed for [`Inserter::take_replaced`]).
    fn keep_smallest_change(
        &mut self,
        group: &GroupId,
        message: &Message,
        k: &[u8; 72],
    ) -> Result<bool, redb::Error> {
        let mut t = self.txn.open_table(crate::profile::schema::CHANGES)?;
        let at = record_key(group, &message.author());
        let kept = t.get(&at)?.map(|v| v.value());
        if let Some(old) = kept {
            if old[40..] <= k[40..] {
                return Ok(false);
            }
            if let Some(row) = self.messages.remove(&old)? {
                self.replaced.extend(deleted_row(*group, row.value()));
            }
        }
        t.insert(&at, k)?;
        Ok(true)
    }

    /// Stores `message` unless it is there (or is a MEMBERSHIP message
    /// that does not count, see [`Inserter::keep_smallest_change`]).
    /// Returns whether it was new.
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
        if message.kind() == Kind::MEMBERSHIP && !self.keep_smallest_change(group, message, &k)? {
            return Ok(false);
        }
        put_message(
            self.txn,
            &mut self.messages,
            &k,
            message.as_bytes(),
            split(message),
        )?;
        let mut shown_at = None;
        match message.kind() {
            Kind::REACH => self.keep_newest(RECORDS, group, message, &k)?,
            Kind::TIMER => self.keep_newest(crate::profile::schema::TIMERS, group, message, &k)?,
            Kind::NAME => self.keep_newest(crate::profile::schema::NAMES, group, message, &k)?,
            Kind::CHUNK => self.index_chunk(&k)?,
            kind if is_group_kind(kind) && message.author() != self.me => {
                self.txn
                    .open_table(crate::profile::schema::GROUP_PENDING)?
                    .insert(&k, kind.0)?;
            }
            Kind::TEXT | Kind::FILE => {
                let floor = self.floor(group)?;
                let incoming = message.author() != self.me;
                let time = self.shown_time(message);
                let late = incoming
                    && (is_late(floor.as_ref(), time)
                        || (self.late.contains(group) && key.time <= self.now));
                let shown = match floor {
                    Some(f) if late => self.now.max(f.shown.saturating_add(1)),
                    _ => time,
                };
                if late {
                    self.late.insert(*group);
                }
                let at = Position { shown, key };
                self.shown
                    .insert(&shown_key(group, &at), shown_value(self.now, incoming))?;
                if !incoming && floor.is_none_or(|f| f < at) {
                    self.floors.insert(&group.0, at.to_bytes())?;
                    if let Some(i) = self.epoch_of.get(group) {
                        self.group_floors.insert(*i, Some(at));
                    }
                }
                shown_at = Some(shown_key(group, &at));
            }
            _ => {}
        }
        if let Some(expires) = message.expires() {
            self.expire(&k, expires, shown_at.as_ref().map(|s| &s[..]))?;
        }
        Ok(true)
    }

    /// Lists a file chunk whose rest [`put_body`] stored earlier, in
    /// another transaction (a file being sent: see
    /// [`crate::profile::schema::SENDING`]): its `messages` row `head`,
    /// as [`Inserter::insert`] would have written it, and its entries in
    /// the chunks index and, if it expires, in `expiry`.
    pub(crate) fn insert_staged_chunk(
        &mut self,
        k: &[u8; 72],
        head: &[u8],
        expires: Option<Time>,
    ) -> Result<(), redb::Error> {
        self.messages.insert(k, head)?;
        self.index_chunk(k)?;
        match expires {
            Some(expires) => self.expire(k, expires, None),
            None => Ok(()),
        }
    }

    /// Notes that the file chunk at `k` is here.
    fn index_chunk(&self, k: &[u8; 72]) -> Result<(), redb::Error> {
        self.txn
            .open_table(crate::profile::schema::CHUNKS)?
            .insert(k, ())?;
        Ok(())
    }

    /// Lists the message at `k` to be deleted at `expires`, with its
    /// `shown` key if it is shown.
    fn expire(&self, k: &[u8; 72], expires: Time, shown: Option<&[u8]>) -> Result<(), redb::Error> {
        let mut at = [0u8; 80];
        at[..8].copy_from_slice(&expires.to_be_bytes());
        at[8..].copy_from_slice(k);
        self.txn
            .open_table(crate::profile::schema::EXPIRY)?
            .insert(&at, shown.unwrap_or_default())?;
        Ok(())
    }
}

/// Stores messages this profile wrote (records, not texts: nothing goes
/// in the outbox) in `txn`. Returns the keys of those that were new, to
/// hand to live sessions.
pub(crate) fn insert_written(
    txn: &WriteTransaction,
    me: AuthorId,
    now: Time,
    messages: &[(GroupId, Message)],
) -> Result<Vec<(GroupId, Key)>, redb::Error> {
    let mut store = Inserter::new(txn, me, now)?;
    let mut keys = Vec::new();
    for (group, msg) in messages {
        if store.insert(group, msg)? {
            keys.push((*group, msg.key()));
        }
    }
    Ok(keys)
}

/// Whether `author` has a change stored in the epoch `epoch` (only one
/// counts per author and epoch: see [`Inserter::keep_smallest_change`]).
pub(crate) fn has_change(
    txn: &redb::WriteTransaction,
    epoch: &GroupId,
    author: &AuthorId,
) -> Result<bool, redb::Error> {
    let t = txn.open_table(crate::profile::schema::CHANGES)?;
    let held = t.get(&record_key(epoch, author))?.is_some();
    Ok(held)
}

/// Every key of a group in a table keyed like [`record_key`] (group ‖
/// author): [`RECORDS`], `timers`, `names`.
pub(crate) fn record_range(group: &GroupId) -> std::ops::RangeInclusive<[u8; 64]> {
    record_key(group, &[0; 32])..=record_key(group, &[0xff; 32])
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
    bodies: Option<ReadOnlyTable<[u8; 73], &'static [u8]>>,
}

impl ReadView {
    pub(crate) fn new(db: &Database) -> Result<ReadView, redb::Error> {
        let txn = db.begin_read()?;
        Ok(ReadView {
            table: open_if_there(&txn, MESSAGES)?,
            bodies: open_if_there(&txn, BODIES)?,
        })
    }
}

/// A table of a read transaction, or `None` if it was never made.
pub(crate) fn open_if_there<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: redb::TableDefinition<'_, K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, redb::Error> {
    match txn.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl ReadView {
    /// The author of the file chunk at `key` in `group`, if one is stored
    /// there, read from its row's head as stored (every row was checked
    /// before it was stored): nothing is decoded or copied, whole or
    /// split, so listing a large message in a description costs no more
    /// than listing a part.
    pub(crate) fn chunk_author(
        &self,
        group: &GroupId,
        key: &Key,
    ) -> Result<Option<AuthorId>, redb::Error> {
        let Some(t) = &self.table else {
            return Ok(None);
        };
        Ok(t.get(&table_key(group, key))?
            .and_then(|v| match row_head(v.value()) {
                Some((author, Kind::CHUNK)) => Some(author),
                _ => None,
            }))
    }
}

impl Store for ReadView {
    type Error = redb::Error;

    fn get(&self, group: &GroupId, key: &Key) -> Result<Option<Vec<u8>>, redb::Error> {
        let Some(t) = &self.table else {
            return Ok(None);
        };
        let k = table_key(group, key);
        match t.get(&k)? {
            Some(v) => whole(self.bodies.as_ref(), &k, v.value()),
            None => Ok(None),
        }
    }

    fn kind(&self, group: &GroupId, key: &Key) -> Result<Option<Kind>, redb::Error> {
        let Some(t) = &self.table else {
            return Ok(None);
        };
        // Byte 73 is in a split message's head: its parts stay unread.
        Ok(t.get(&table_key(group, key))?
            .and_then(|v| v.value().get(73).map(|k| Kind(*k))))
    }

    fn head(&self, group: &GroupId, key: &Key) -> Result<Option<(AuthorId, Kind)>, redb::Error> {
        let Some(t) = &self.table else {
            return Ok(None);
        };
        // From the row's head, as kind: a split message's parts stay unread.
        Ok(t.get(&table_key(group, key))?
            .and_then(|v| row_head(v.value())))
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
    /// The private groups as they were when it was made (see
    /// [`Inserter::with_groups`]).
    chains: Arc<Vec<Chain>>,
    /// When what it stores arrived, if not when each transaction begins.
    arrival: Option<Time>,
}

impl RedbStore {
    pub(crate) fn new(db: Arc<Database>, me: AuthorId, chains: Arc<Vec<Chain>>) -> Self {
        RedbStore {
            db,
            txn: None,
            me,
            chains,
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
            self.txn = Some((txn, self.arrival.unwrap_or_else(crate::profile::now)));
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
        let (me, chains) = (self.me, self.chains.clone());
        let (txn, now) = self.write_txn()?;
        Inserter::new(txn, me, *now)?
            .with_groups(&chains)
            .insert(group, message)
    }
}

impl Store for RedbStore {
    type Error = redb::Error;

    fn contains(&self, group: &GroupId, key: &Key) -> Result<bool, redb::Error> {
        match &self.txn {
            Some((txn, _)) => Ok(txn
                .open_table(MESSAGES)?
                .get(&table_key(group, key))?
                .is_some()),
            None => ReadView::new(&self.db)?.contains(group, key),
        }
    }

    fn get(&self, group: &GroupId, key: &Key) -> Result<Option<Vec<u8>>, redb::Error> {
        match &self.txn {
            Some((txn, _)) => {
                let k = table_key(group, key);
                match txn.open_table(MESSAGES)?.get(&k)? {
                    Some(v) => whole(Some(&txn.open_table(BODIES)?), &k, v.value()),
                    None => Ok(None),
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::schema::SEEN;
    use redb::ReadableDatabase;
    use std::cell::Cell;
    use strand_sync::Identity;

    const HOUR: Time = 3_600_000;

    thread_local! {
        /// How many epochs' floors [`Inserter::floor`] read on this thread.
        pub(super) static FLOOR_READS: Cell<usize> = const { Cell::new(0) };
    }

    /// Regression: finding a group's floor read every epoch's for every
    /// text stored, so a batch of texts into a group of many epochs (one
    /// per change) cost texts × epochs reads. Now each group's is read
    /// once per transaction; the user's own text still raises it.
    #[test]
    fn a_groups_floor_is_read_once_per_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, bob, _) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        p.create_group("desk", &["Bob".into()], now - 10 * HOUR, rng)
            .unwrap();
        // Four more epochs: one contact added at a time.
        for i in 0..4 {
            let name = format!("c{i}");
            let id = Identity::generate(&name, rng).unwrap();
            p.add_contact(&id.invite(), &name, 0, rng).unwrap();
            p.change_group(
                "desk",
                &crate::GroupAction::Add(name),
                now - 9 * HOUR + i,
                rng,
            )
            .unwrap();
        }
        let epochs = p.group_epochs("desk").unwrap();
        assert_eq!(epochs.len(), 5);
        let head = epochs.last().unwrap();
        let head_id = head.id();
        let chains = p.inner.chains.read().unwrap().clone();
        let me = p.identity().public().sign;
        let texts: Vec<Message> = (0..10)
            .map(|i| {
                Message::create(&bob, head.group(), now - HOUR + i, Kind::TEXT, b"hi", rng).unwrap()
            })
            .collect();

        let txn = p.db().unwrap().begin_write().unwrap();
        {
            let mut store = Inserter::new(&txn, me, now).unwrap().with_groups(&chains);
            FLOOR_READS.with(|n| n.set(0));
            store
                .look_ahead(texts.iter().map(|m| (&head_id, m)))
                .unwrap();
            for m in &texts {
                assert!(store.insert(&head.id(), m).unwrap());
            }
            assert_eq!(FLOOR_READS.with(Cell::get), epochs.len(), "once per batch");
        }
        txn.commit().unwrap();

        // The user's text in an older epoch raises the group's floor for
        // the texts after it in the same transaction: Bob's, dated before
        // it, is late.
        let mine = Message::create(
            &p.identity(),
            epochs[0].group(),
            now - HOUR / 2,
            Kind::TEXT,
            b"me",
            rng,
        )
        .unwrap();
        let backdated = Message::create(
            &bob,
            head.group(),
            now - HOUR + 100,
            Kind::TEXT,
            b"before yours",
            rng,
        )
        .unwrap();
        let txn = p.db().unwrap().begin_write().unwrap();
        {
            let mut store = Inserter::new(&txn, me, now).unwrap().with_groups(&chains);
            assert!(store.insert(&epochs[0].id(), &mine).unwrap());
            assert!(store.insert(&head.id(), &backdated).unwrap());
        }
        txn.commit().unwrap();
        let c = p.group_conversation("desk").unwrap();
        let last = &c.last().unwrap().message;
        assert_eq!(last.text, "before yours");
        assert_eq!(last.shown, now, "late: shown when it arrived");
    }

    /// A contact's texts dated 10:00, 11:00, 13:00 and 14:00 arrive
    /// together at 18:00, in any order, in a conversation read up to
    /// 12:00: all four are late, in their author's order.
    #[test]
    fn what_arrives_together_keeps_its_authors_order() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::create(tmp.path().join("t.redb")).unwrap();
        let rng = &mut crate::profile::os_rng();
        let alice = Identity::generate("Alice", rng).unwrap();
        let bob = Identity::generate("Bob", rng).unwrap();
        let group = bob.contact(&alice.public()).unwrap().direct_group().clone();
        let at = |h: Time| {
            Message::create(
                &bob,
                &group,
                h * HOUR,
                Kind::TEXT,
                b"x",
                &mut crate::profile::os_rng(),
            )
            .unwrap()
        };
        let (ten, eleven, one, two) = (at(10), at(11), at(13), at(14));
        let mark = Position {
            shown: 12 * HOUR,
            key: Key {
                time: 12 * HOUR,
                id: MessageId([0; 32]),
            },
        };
        let order = |look_ahead: bool| {
            let txn = db.begin_write().unwrap();
            txn.delete_table(SHOWN).unwrap();
            txn.delete_table(MESSAGES).unwrap();
            txn.open_table(FLOOR)
                .unwrap()
                .insert(&group.id.0, mark.to_bytes())
                .unwrap();
            {
                let mut store = Inserter::new(&txn, alice.public().sign, 18 * HOUR).unwrap();
                let batch = [&one, &ten, &two, &eleven];
                if look_ahead {
                    store
                        .look_ahead(batch.iter().map(|m| (&group.id, *m)))
                        .unwrap();
                }
                for m in batch {
                    assert!(store.insert(&group.id, m).unwrap());
                }
            }
            txn.commit().unwrap();
            let read = db.begin_read().unwrap();
            let shown = read.open_table(SHOWN).unwrap();
            shown
                .iter()
                .unwrap()
                .map(|e| shown_position(&e.unwrap().0.value()))
                .map(|p| (p.shown / HOUR, p.key.time / HOUR))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(true),
            [(18, 10), (18, 11), (18, 13), (18, 14)],
            "late together, in their author's order"
        );
        // One message at a time (no look-ahead), the 13:00 one comes before
        // the first late one and stays at its time.
        assert_eq!(order(false), [(13, 13), (18, 10), (18, 11), (18, 14)]);
        // Nothing here touches the read mark.
        let read = db.begin_read().unwrap();
        assert!(matches!(
            read.open_table(SEEN),
            Err(redb::TableError::TableDoesNotExist(_))
        ));
    }
}
