//! The store the protocol reads and writes through, and an in-memory one.
//!
//! A session only reads: fetch a message by key and walk the keys of a
//! range in order. Everything reconciliation needs (fingerprints, splits,
//! tag look-ups) is built on [`Store::scan`]; a store with a better index
//! can override [`Store::summarize`]. Storing what arrives is the caller's
//! job (see [`crate::Inbound`]), so a node can verify and write on other
//! threads; [`WriteStore`] is what [`crate::Session::settle`] needs to do it
//! all in place.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ops::ControlFlow;

use siphasher::sip::SipHasher24;

use crate::group::GroupId;
use crate::identity::AuthorId;
use crate::limits::Time;
use crate::message::{head_of, Kind, Message, MessageId};

/// What a group log is ordered by: (timestamp, id). Reconciliation ranges
/// are ranges of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The author's timestamp.
    pub time: Time,
    /// The message id.
    pub id: MessageId,
}

impl Key {
    /// The smallest key.
    pub const MIN: Key = Key {
        time: 0,
        id: MessageId([0; 32]),
    };
    /// Larger than any stored key (no valid message has this timestamp):
    /// "infinity" as an exclusive upper bound.
    pub const MAX: Key = Key {
        time: u64::MAX,
        id: MessageId([0xff; 32]),
    };
}

/// The half-open key range `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub lo: Key,
    /// Exclusive upper bound.
    pub hi: Key,
}

impl KeyRange {
    /// Every key.
    pub const ALL: KeyRange = KeyRange {
        lo: Key::MIN,
        hi: Key::MAX,
    };

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &Key) -> bool {
        self.lo <= *key && *key < self.hi
    }
}

/// What turns a message id into the 64-bit tag that reconciliation sums,
/// lists and acknowledges (PROTOCOL.md §8): SipHash-2-4 of the id under a
/// 128-bit key that the two ends of a session derive from their pair's
/// secret and the Noise transcript of the session's hello (so from the
/// dialler's fresh ephemeral key).
///
/// Keyed per session because a sum of *public* 64-bit tags can be forged:
/// a group member can search out two different message sets with the same
/// count and sum (a generalised-birthday search over a few tens of
/// thousands of its own messages), give one to each of two other members,
/// and their fingerprints would never show the split. Under a key that
/// neither end knew before the handshake, and that the forger (not an end
/// of this session) can neither predict nor compute, such sets collide like
/// random ones: with probability 2^-64 per comparison.
#[derive(Clone, Copy)]
pub struct TagKey(Option<SipHasher24>);

impl std::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "TagKey(keyed)"
        } else {
            "TagKey(unkeyed)"
        })
    }
}

impl TagKey {
    /// The key for a session of the pair whose secret is `pair_key`, with
    /// `transcript` the Noise handshake hash right after the hello.
    pub fn for_session(pair_key: &[u8; 32], transcript: &[u8]) -> TagKey {
        let okm = crate::crypto::kdf(pair_key, "strand/v1/recon-tags", &[transcript]);
        let key: [u8; 16] = okm[..16].try_into().expect("16 bytes");
        TagKey(Some(SipHasher24::new_with_key(&key)))
    }

    /// The scheme before tags were keyed: the id's first 8 bytes,
    /// little-endian. Forgeable by a group member (see above); kept only so
    /// that benchmarks can set the two side by side (`Config::unkeyed_tags`).
    pub fn unkeyed() -> TagKey {
        TagKey(None)
    }

    /// The tag of `id`.
    pub fn tag(&self, id: &MessageId) -> u64 {
        match &self.0 {
            Some(sip) => sip.hash(&id.0),
            None => u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes")),
        }
    }
}

/// A range's fingerprint: how many items it holds and the wrapping sum of
/// their 64-bit tags under the session's [`TagKey`]. Equal sets have equal
/// summaries; two different sets collide with probability 2^-64, whoever
/// chose them. When counts differ by one, the difference of the sums is the
/// tag of the missing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Items in the range.
    pub count: u64,
    /// Wrapping sum of the items' tags.
    pub sum: u64,
}

impl Summary {
    /// Adds one item.
    pub fn add(&mut self, tags: &TagKey, id: &MessageId) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(tags.tag(id));
    }
}

/// A message store, as a session reads it.
///
/// Implementations keep, per group, a set of messages ordered by [`Key`].
pub trait Store {
    /// What can go wrong (I/O for a disk store).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The encoded message with this key, if stored.
    fn get(&self, group: &GroupId, key: &Key) -> Result<Option<Vec<u8>>, Self::Error>;

    /// Whether a message with this key is stored. The default fetches it.
    fn contains(&self, group: &GroupId, key: &Key) -> Result<bool, Self::Error> {
        Ok(self.get(group, key)?.is_some())
    }

    /// The kind of the message with this key (byte 73 of its encoding),
    /// if stored. The default fetches it; a store that keeps headers apart
    /// from bodies answers without reading the body.
    fn kind(&self, group: &GroupId, key: &Key) -> Result<Option<Kind>, Self::Error> {
        Ok(self
            .get(group, key)?
            .and_then(|bytes| bytes.get(73).map(|k| Kind(*k))))
    }

    /// The author and kind of the message with this key (bytes 33..65 and
    /// 73 of its encoding), if stored: who wrote a message, read before
    /// its body is. The default fetches it; a store that keeps headers
    /// apart from bodies answers without reading the body.
    fn head(&self, group: &GroupId, key: &Key) -> Result<Option<(AuthorId, Kind)>, Self::Error> {
        Ok(self.get(group, key)?.and_then(|bytes| head_of(&bytes)))
    }

    /// Calls `visit` on each key of `range` in ascending order, until it
    /// returns [`ControlFlow::Break`].
    fn scan(
        &self,
        group: &GroupId,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Key) -> ControlFlow<()>,
    ) -> Result<(), Self::Error>;

    /// The fingerprint of `range` under `tags`. The default walks the range.
    /// (Tags change with every session, so an index cannot keep sums from
    /// one session to the next; it can keep counts.)
    fn summarize(
        &self,
        group: &GroupId,
        range: &KeyRange,
        tags: &TagKey,
    ) -> Result<Summary, Self::Error> {
        let mut summary = Summary::default();
        self.scan(group, range, &mut |key| {
            summary.add(tags, &key.id);
            ControlFlow::Continue(())
        })?;
        Ok(summary)
    }
}

/// A store as a session reads it to answer the peer: it counts the keys
/// visited (a fingerprint counts the keys in its range, however the store
/// computes it; a pass each key it reads) and notes the log's size when
/// all of it was counted. What a peer's reconciliation costs us is
/// measured with it (PROTOCOL.md §8.5).
pub(crate) struct Metered<'a, S> {
    store: &'a S,
    visited: Cell<u64>,
    log: Cell<Option<u64>>,
}

impl<'a, S: Store> Metered<'a, S> {
    pub(crate) fn new(store: &'a S) -> Self {
        Metered {
            store,
            visited: Cell::new(0),
            log: Cell::new(None),
        }
    }

    /// Keys visited so far.
    pub(crate) fn visited(&self) -> u64 {
        self.visited.get()
    }

    /// The group's log size, if a pass or a fingerprint covered all of it.
    pub(crate) fn log(&self) -> Option<u64> {
        self.log.get()
    }

    fn count(&self, range: &KeyRange, keys: u64, whole: bool) {
        self.visited.set(self.visited.get().saturating_add(keys));
        if whole && *range == KeyRange::ALL {
            self.log.set(Some(keys));
        }
    }
}

impl<S: Store> Store for Metered<'_, S> {
    type Error = S::Error;

    fn get(&self, group: &GroupId, key: &Key) -> Result<Option<Vec<u8>>, S::Error> {
        self.store.get(group, key)
    }

    fn contains(&self, group: &GroupId, key: &Key) -> Result<bool, S::Error> {
        self.store.contains(group, key)
    }

    fn kind(&self, group: &GroupId, key: &Key) -> Result<Option<Kind>, S::Error> {
        self.store.kind(group, key)
    }

    fn head(&self, group: &GroupId, key: &Key) -> Result<Option<(AuthorId, Kind)>, S::Error> {
        self.store.head(group, key)
    }

    fn scan(
        &self,
        group: &GroupId,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Key) -> ControlFlow<()>,
    ) -> Result<(), S::Error> {
        let mut keys = 0u64;
        let mut whole = true;
        let result = self.store.scan(group, range, &mut |key| {
            keys += 1;
            let flow = visit(key);
            whole &= flow.is_continue();
            flow
        });
        self.count(range, keys, whole);
        result
    }

    fn summarize(
        &self,
        group: &GroupId,
        range: &KeyRange,
        tags: &TagKey,
    ) -> Result<Summary, S::Error> {
        let summary = self.store.summarize(group, range, tags)?;
        self.count(range, summary.count, true);
        Ok(summary)
    }
}

/// A store that can also take messages. Messages passed to
/// [`WriteStore::insert`] have been validated.
pub trait WriteStore: Store {
    /// Stores a message. Returns `false` if it was already stored.
    fn insert(&mut self, group: &GroupId, message: &Message) -> Result<bool, Self::Error>;
}

/// A store in memory. Used by tests, the harness, the simulator and the
/// demo.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    /// Every group's log in one map, ordered by group, then key: a group
    /// holding one message costs one entry rather than a map of its own
    /// (a simulated city holds hundreds of thousands of small logs).
    log: BTreeMap<(GroupId, Key), Box<[u8]>>,
}

/// Every key of `group` in [`MemoryStore::log`].
fn whole(group: &GroupId) -> std::ops::RangeInclusive<(GroupId, Key)> {
    (*group, Key::MIN)..=(*group, Key::MAX)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages stored in `group`.
    pub fn len(&self, group: &GroupId) -> usize {
        self.log.range(whole(group)).count()
    }

    /// Whether the store holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// The keys stored in `group`, in order.
    pub fn keys(&self, group: &GroupId) -> Vec<Key> {
        self.log.range(whole(group)).map(|((_, k), _)| *k).collect()
    }

    /// Every stored message of `group` that is not hollow, in key order.
    pub fn messages(&self, group: &GroupId) -> impl Iterator<Item = (&Key, &[u8])> {
        self.log
            .range(whole(group))
            .filter(|(_, v)| !v.is_empty())
            .map(|((_, k), v)| (k, &v[..]))
    }

    /// Drops a message's bytes but keeps its key, so reconciliation still
    /// counts it as held and never brings it back: what a carrying pool
    /// does with an envelope once it is taken in, handed over,
    /// acknowledged or evicted (PROTOCOL.md §17). Returns whether the
    /// message had bytes to drop.
    pub fn hollow(&mut self, group: &GroupId, key: &Key) -> bool {
        match self.log.get_mut(&(*group, *key)) {
            Some(bytes) if !bytes.is_empty() => {
                *bytes = Box::default();
                true
            }
            _ => false,
        }
    }

    /// Bytes held by messages of `group` (hollow ones hold none).
    pub fn bytes(&self, group: &GroupId) -> u64 {
        self.log
            .range(whole(group))
            .map(|(_, v)| v.len() as u64)
            .sum()
    }
}

impl WriteStore for MemoryStore {
    fn insert(&mut self, group: &GroupId, message: &Message) -> Result<bool, Infallible> {
        match self.log.entry((*group, message.key())) {
            std::collections::btree_map::Entry::Occupied(_) => Ok(false),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(message.as_bytes().into());
                Ok(true)
            }
        }
    }
}

impl Store for MemoryStore {
    type Error = Infallible;

    fn contains(&self, group: &GroupId, key: &Key) -> Result<bool, Infallible> {
        Ok(self.log.contains_key(&(*group, *key)))
    }

    fn get(&self, group: &GroupId, key: &Key) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self
            .log
            .get(&(*group, *key))
            .filter(|v| !v.is_empty())
            .map(|v| v.to_vec()))
    }

    fn kind(&self, group: &GroupId, key: &Key) -> Result<Option<Kind>, Infallible> {
        Ok(self
            .log
            .get(&(*group, *key))
            .and_then(|v| v.get(73).map(|k| Kind(*k))))
    }

    fn head(&self, group: &GroupId, key: &Key) -> Result<Option<(AuthorId, Kind)>, Infallible> {
        let row = self.log.get(&(*group, *key));
        Ok(row.and_then(|v| head_of(&v[..])))
    }

    fn scan(
        &self,
        group: &GroupId,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Key) -> ControlFlow<()>,
    ) -> Result<(), Infallible> {
        if range.lo >= range.hi {
            return Ok(());
        }
        for ((_, key), _) in self.log.range((*group, range.lo)..(*group, range.hi)) {
            if visit(key).is_break() {
                break;
            }
        }
        Ok(())
    }
}
