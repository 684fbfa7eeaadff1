//! Range-based set reconciliation over `(timestamp, id)`.
//!
//! After Meyer's "Range-Based Set Reconciliation" (SRDS 2023,
//! <https://arxiv.org/abs/2212.13567>) and the Negentropy protocol
//! (<https://github.com/hoytech/negentropy>). One side sends fingerprints of
//! ranges of its log; the other compares each with its own and answers per
//! range: equal (skip), its ids if the range is small, or fingerprints of
//! [`BRANCHING`] sub-ranges. Rounds repeat until every range is settled,
//! then each side sends the messages the other lacks. Nothing is kept
//! between rounds but the messages themselves: no per-peer state.
//!
//! One addition: a fingerprint is `(count, sum of 64-bit id tags)`, so when
//! two ranges differ by exactly one item the difference of the sums names
//! that item, and it is sent at once instead of splitting further. With one
//! message missing from a log of a million this settles in one or two
//! half round trips.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use crate::codec::{varint_len, Reader, Writer};
use crate::group::GroupId;
use crate::limits::{BRANCHING, ID_LIST_THRESHOLD, MAX_RANGES_PER_FRAME, MAX_TAGS_PER_FRAME};
use crate::message::MessageId;
use crate::store::{Key, KeyRange, Store, Summary, TagKey};
use crate::DecodeError;

/// What a reconciliation message says about one range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Settled: nothing to do.
    Skip,
    /// The sender's fingerprint of the range.
    Fingerprint(Summary),
    /// The tags of all the sender's items in the range.
    IdList(Vec<u64>),
    /// The sender wants these items of the range (answer to an IdList).
    Want(Vec<u64>),
}

const MODE_SKIP: u8 = 0;
const MODE_FINGERPRINT: u8 = 1;
const MODE_ID_LIST: u8 = 2;
const MODE_WANT: u8 = 3;

/// One range of a reconciliation message. Its lower bound is the previous
/// range's upper bound ([`Key::MIN`] for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangeItem {
    pub(crate) upper: Key,
    pub(crate) mode: Mode,
}

/// A reconciliation message for one group. An empty list means "done".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ReconMsg {
    pub(crate) items: Vec<RangeItem>,
}

impl ReconMsg {
    /// Whether the receiver has to answer.
    /// Whether this is an opening (§8.5): one IdList or Fingerprint item
    /// that covers everything.
    pub(crate) fn is_opening(&self) -> bool {
        matches!(
            self.items.as_slice(),
            [RangeItem {
                upper: Key::MAX,
                mode: Mode::IdList(_) | Mode::Fingerprint(_),
            }]
        )
    }

    pub(crate) fn expects_reply(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i.mode, Mode::Fingerprint(_) | Mode::IdList(_)))
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut prev_time = 0u64;
        for item in &self.items {
            encode_bound(&item.upper, &mut prev_time, out);
            match &item.mode {
                Mode::Skip => out.push(MODE_SKIP),
                Mode::Fingerprint(s) => {
                    out.push(MODE_FINGERPRINT);
                    out.put_varint(s.count);
                    out.extend_from_slice(&s.sum.to_le_bytes());
                }
                Mode::IdList(tags) | Mode::Want(tags) => {
                    out.push(if matches!(item.mode, Mode::IdList(_)) {
                        MODE_ID_LIST
                    } else {
                        MODE_WANT
                    });
                    out.put_varint(tags.len() as u64);
                    for t in tags {
                        out.extend_from_slice(&t.to_le_bytes());
                    }
                }
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<ReconMsg, DecodeError> {
        let mut items: Vec<RangeItem> = Vec::new();
        let mut prev_time = 0u64;
        let mut prev = Key::MIN;
        let mut tags_total = 0usize;
        while !r.is_empty() {
            if items.len() == MAX_RANGES_PER_FRAME {
                return Err(DecodeError::TooLong {
                    max: MAX_RANGES_PER_FRAME,
                });
            }
            if prev == Key::MAX {
                return Err(DecodeError::Invalid("range after the infinite bound"));
            }
            let upper = decode_bound(r, &mut prev_time)?;
            if upper <= prev {
                return Err(DecodeError::Invalid("range bounds not increasing"));
            }
            prev = upper;
            let mode = match r.u8()? {
                MODE_SKIP => Mode::Skip,
                MODE_FINGERPRINT => {
                    let count = r.varint()?;
                    let sum = r.u64_le()?;
                    Mode::Fingerprint(Summary { count, sum })
                }
                m @ (MODE_ID_LIST | MODE_WANT) => {
                    let n = r.len(MAX_TAGS_PER_FRAME - tags_total)?;
                    tags_total += n;
                    let mut tags = Vec::with_capacity(n);
                    for _ in 0..n {
                        tags.push(r.u64_le()?);
                    }
                    if m == MODE_ID_LIST {
                        Mode::IdList(tags)
                    } else {
                        Mode::Want(tags)
                    }
                }
                _ => return Err(DecodeError::Invalid("unknown range mode")),
            };
            items.push(RangeItem { upper, mode });
        }
        Ok(ReconMsg { items })
    }
}

/// Bound encoding: a varint that is 0 for infinity or 1 + the time delta
/// from the previous bound in this message, then (unless infinity) a prefix
/// length byte `l` (0..=32) and the first `l` bytes of the id; the rest of
/// the id is zeros.
fn encode_bound(key: &Key, prev_time: &mut u64, out: &mut Vec<u8>) {
    if *key == Key::MAX {
        out.put_varint(0);
        return;
    }
    out.put_varint(1 + (key.time - *prev_time));
    *prev_time = key.time;
    let len = 32 - key.id.0.iter().rev().take_while(|b| **b == 0).count();
    out.push(len as u8);
    out.extend_from_slice(&key.id.0[..len]);
}

fn decode_bound(r: &mut Reader<'_>, prev_time: &mut u64) -> Result<Key, DecodeError> {
    let delta = r.varint()?;
    if delta == 0 {
        return Ok(Key::MAX);
    }
    let time = prev_time
        .checked_add(delta - 1)
        .ok_or(DecodeError::Invalid("bound time overflows"))?;
    *prev_time = time;
    let len = r.u8()? as usize;
    if len > 32 {
        return Err(DecodeError::Invalid("id prefix longer than 32"));
    }
    let mut id = [0u8; 32];
    id[..len].copy_from_slice(r.bytes(len)?);
    if len > 0 && id[len - 1] == 0 {
        return Err(DecodeError::Invalid("id prefix not minimal"));
    }
    if time == u64::MAX {
        // Only infinity has this time, and it has its own encoding.
        return Err(DecodeError::Invalid("bound at the end of time"));
    }
    Ok(Key {
        time,
        id: MessageId(id),
    })
}

fn bound_len(key: &Key, prev_time: u64) -> usize {
    if *key == Key::MAX {
        return 1;
    }
    let len = 32 - key.id.0.iter().rev().take_while(|b| **b == 0).count();
    varint_len(1 + key.time - prev_time) + 1 + len
}

/// The shortest bound `b` with `prev < b <= next`.
fn separator(prev: &Key, next: &Key) -> Key {
    if prev.time != next.time {
        return Key {
            time: next.time,
            id: MessageId([0; 32]),
        };
    }
    let shared = prev
        .id
        .0
        .iter()
        .zip(&next.id.0)
        .take_while(|(a, b)| a == b)
        .count();
    let mut id = [0u8; 32];
    let take = (shared + 1).min(32);
    id[..take].copy_from_slice(&next.id.0[..take]);
    Key {
        time: next.time,
        id: MessageId(id),
    }
}

/// Messages that one side must send after processing a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Send {
    /// One message.
    Key(Key),
    /// Every message in `range` whose tag is not in `except`.
    Range {
        range: KeyRange,
        except: BTreeSet<u64>,
    },
}

/// What processing one reconciliation message produced.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    pub(crate) msg: ReconMsg,
    pub(crate) send: Vec<Send>,
}

/// The opening message for a group: the whole log's fingerprint, or its
/// ids if it is small.
pub(crate) fn open<S: Store>(
    store: &S,
    group: &GroupId,
    tags: &TagKey,
) -> Result<ReconMsg, S::Error> {
    let all = store.summarize(group, &KeyRange::ALL, tags)?;
    let mode = if all.count <= ID_LIST_THRESHOLD {
        Mode::IdList(tags_in(store, group, tags, &KeyRange::ALL)?)
    } else {
        Mode::Fingerprint(all)
    };
    Ok(ReconMsg {
        items: vec![RangeItem {
            upper: Key::MAX,
            mode,
        }],
    })
}

/// Answers `incoming`, keeping the encoded answer within `budget` bytes.
pub(crate) fn reply<S: Store>(
    store: &S,
    group: &GroupId,
    tags: &TagKey,
    incoming: &ReconMsg,
    budget: usize,
) -> Result<Reply, S::Error> {
    let mut out = Out::default();
    let mut send = Vec::new();
    let mut lo = Key::MIN;
    // Room kept for a pending skip plus the fingerprint that covers what
    // did not fit: two bounds of at most 43 bytes, a mode, a count, a sum.
    let reserve = 2 * (10 + 1 + 32) + 1 + 10 + 8;
    let fits = |out: &Out, items: &[RangeItem]| {
        let (cost, ranges) = out.cost(items);
        let tags: usize = items.iter().map(|i| tag_count(&i.mode)).sum();
        out.len + cost + reserve <= budget
            && out.items.len() + ranges + 2 <= MAX_RANGES_PER_FRAME
            && out.tags + tags <= MAX_TAGS_PER_FRAME
    };
    let mut full = false;
    for (at, item) in incoming.items.iter().enumerate() {
        let range = KeyRange { lo, hi: item.upper };
        lo = item.upper;
        if !full {
            let produced = answer(store, group, tags, &range, &item.mode, &mut send)?;
            if fits(&out, &produced) {
                produced.into_iter().for_each(|i| out.push(i));
                continue;
            }
            full = true;
        }
        // Out of room for full answers: hand each remaining range back with
        // our fingerprint, unexamined, so that the splitting already done
        // is not lost; the peer answers them next round. (Anything `answer`
        // queued for a range stays queued: sending it is still right.)
        let deferred = match &item.mode {
            Mode::Skip => Mode::Skip,
            Mode::Want(_) => {
                // Wanted items go out whatever the room.
                answer(store, group, tags, &range, &item.mode, &mut send)?;
                Mode::Skip
            }
            Mode::Fingerprint(theirs) => {
                let mine = store.summarize(group, &range, tags)?;
                if mine == *theirs {
                    Mode::Skip
                } else {
                    Mode::Fingerprint(mine)
                }
            }
            Mode::IdList(_) => Mode::Fingerprint(store.summarize(group, &range, tags)?),
        };
        let deferred = RangeItem {
            upper: range.hi,
            mode: deferred,
        };
        if fits(&out, std::slice::from_ref(&deferred)) {
            out.push(deferred);
            continue;
        }
        // Not even that: one fingerprint for everything from here on.
        let rest = KeyRange {
            lo: range.lo,
            hi: Key::MAX,
        };
        let summary = store.summarize(group, &rest, tags)?;
        out.push(RangeItem {
            upper: Key::MAX,
            mode: Mode::Fingerprint(summary),
        });
        // What the peer wants of the ranges left still goes: queued sends
        // do not depend on what the reply holds (§8.3).
        let mut lo = range.hi;
        for item in &incoming.items[at + 1..] {
            let range = KeyRange { lo, hi: item.upper };
            lo = item.upper;
            if let Mode::Want(_) = &item.mode {
                answer(store, group, tags, &range, &item.mode, &mut send)?;
            }
        }
        break;
    }
    debug_assert!(
        out.len <= budget,
        "reply of {} bytes over a budget of {budget}",
        out.len
    );
    // A trailing skip carries no information: it stays pending and is dropped.
    Ok(Reply {
        msg: ReconMsg { items: out.items },
        send,
    })
}

/// A reply under construction, with its exact encoded length. Adjacent
/// skips merge, so a skip is held back ("pending") until a range that is
/// not a skip follows; only then is its final bound known and encoded.
#[derive(Default)]
struct Out {
    items: Vec<RangeItem>,
    len: usize,
    prev_time: u64,
    tags: usize,
    pending_skip: Option<Key>,
}

fn item_len(prev_time: u64, item: &RangeItem) -> usize {
    bound_len(&item.upper, prev_time)
        + 1
        + match &item.mode {
            Mode::Skip => 0,
            Mode::Fingerprint(s) => varint_len(s.count) + 8,
            Mode::IdList(t) | Mode::Want(t) => varint_len(t.len() as u64) + 8 * t.len(),
        }
}

impl Out {
    /// The exact bytes and ranges `items` would add.
    fn cost(&self, items: &[RangeItem]) -> (usize, usize) {
        let mut prev_time = self.prev_time;
        let mut pending = self.pending_skip;
        let (mut len, mut ranges) = (0, 0);
        for item in items {
            if item.mode == Mode::Skip {
                pending = Some(item.upper);
                continue;
            }
            if let Some(upper) = pending.take() {
                let skip = RangeItem {
                    upper,
                    mode: Mode::Skip,
                };
                len += item_len(prev_time, &skip);
                prev_time = upper.time;
                ranges += 1;
            }
            len += item_len(prev_time, item);
            if item.upper != Key::MAX {
                prev_time = item.upper.time;
            }
            ranges += 1;
        }
        (len, ranges)
    }

    fn push(&mut self, item: RangeItem) {
        if item.mode == Mode::Skip {
            self.pending_skip = Some(item.upper);
            return;
        }
        if let Some(upper) = self.pending_skip.take() {
            self.append(RangeItem {
                upper,
                mode: Mode::Skip,
            });
        }
        self.append(item);
    }

    fn append(&mut self, item: RangeItem) {
        self.len += item_len(self.prev_time, &item);
        self.tags += tag_count(&item.mode);
        if item.upper != Key::MAX {
            self.prev_time = item.upper.time;
        }
        self.items.push(item);
    }
}

fn tag_count(mode: &Mode) -> usize {
    match mode {
        Mode::IdList(t) | Mode::Want(t) => t.len(),
        _ => 0,
    }
}

/// The answer for one range.
fn answer<S: Store>(
    store: &S,
    group: &GroupId,
    keyed: &TagKey,
    range: &KeyRange,
    mode: &Mode,
    send: &mut Vec<Send>,
) -> Result<Vec<RangeItem>, S::Error> {
    let skip = vec![RangeItem {
        upper: range.hi,
        mode: Mode::Skip,
    }];
    match mode {
        Mode::Skip => Ok(skip),
        Mode::Want(tags) => {
            // One pass over the range, however many tags are wanted.
            let wanted: BTreeSet<u64> = tags.iter().copied().collect();
            store.scan(group, range, &mut |key| {
                if wanted.contains(&keyed.tag(&key.id)) {
                    send.push(Send::Key(*key));
                }
                ControlFlow::Continue(())
            })?;
            Ok(skip)
        }
        Mode::IdList(theirs) => {
            let theirs: BTreeSet<u64> = theirs.iter().copied().collect();
            let mut found = BTreeSet::new();
            let mut extra = false;
            store.scan(group, range, &mut |key| {
                let tag = keyed.tag(&key.id);
                if theirs.contains(&tag) {
                    found.insert(tag);
                } else {
                    extra = true;
                }
                ControlFlow::Continue(())
            })?;
            if extra {
                send.push(Send::Range {
                    range: *range,
                    except: theirs.clone(),
                });
            }
            let want: Vec<u64> = theirs.difference(&found).copied().collect();
            if want.is_empty() {
                Ok(skip)
            } else {
                Ok(vec![RangeItem {
                    upper: range.hi,
                    mode: Mode::Want(want),
                }])
            }
        }
        Mode::Fingerprint(theirs) => {
            let mine = store.summarize(group, range, keyed)?;
            if mine == *theirs {
                return Ok(skip);
            }
            if theirs.count == 0 {
                // They have nothing here: send it all.
                send.push(Send::Range {
                    range: *range,
                    except: BTreeSet::new(),
                });
                return Ok(skip);
            }
            if theirs.count.checked_add(1) == Some(mine.count) {
                // Exactly one more here than there: if its tag is the
                // difference of the sums, that is the item they lack.
                let tag = mine.sum.wrapping_sub(theirs.sum);
                if let Some(key) = find_tag(store, group, keyed, range, tag)? {
                    send.push(Send::Key(key));
                    return Ok(skip);
                }
            } else if mine.count.checked_add(1) == Some(theirs.count) {
                // The mirror case: answer with our fingerprint so the other
                // side can find the one item and send it. The other side
                // never bounces it back (for it the counts are reversed).
                return Ok(vec![RangeItem {
                    upper: range.hi,
                    mode: Mode::Fingerprint(mine),
                }]);
            }
            if mine.count <= ID_LIST_THRESHOLD {
                let tags = tags_in(store, group, keyed, range)?;
                return Ok(vec![RangeItem {
                    upper: range.hi,
                    mode: Mode::IdList(tags),
                }]);
            }
            split(store, group, keyed, range, mine.count)
        }
    }
}

fn tags_in<S: Store>(
    store: &S,
    group: &GroupId,
    keyed: &TagKey,
    range: &KeyRange,
) -> Result<Vec<u64>, S::Error> {
    let mut tags = Vec::new();
    store.scan(group, range, &mut |key| {
        tags.push(keyed.tag(&key.id));
        ControlFlow::Continue(())
    })?;
    Ok(tags)
}

fn find_tag<S: Store>(
    store: &S,
    group: &GroupId,
    keyed: &TagKey,
    range: &KeyRange,
    tag: u64,
) -> Result<Option<Key>, S::Error> {
    let mut found = None;
    store.scan(group, range, &mut |key| {
        if keyed.tag(&key.id) == tag {
            found = Some(*key);
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(found)
}

/// Splits `range` (holding `count` of our items) into [`BRANCHING`] parts
/// of about equal count, with the shortest bounds that separate them.
fn split<S: Store>(
    store: &S,
    group: &GroupId,
    keyed: &TagKey,
    range: &KeyRange,
    count: u64,
) -> Result<Vec<RangeItem>, S::Error> {
    let parts = BRANCHING as u64;
    let mut items = Vec::with_capacity(BRANCHING);
    let mut current = Summary::default();
    let mut index = 0u64;
    let mut prev: Option<Key> = None;
    store.scan(group, range, &mut |key| {
        let bucket = index * parts / count;
        if index > 0 && bucket != (index - 1) * parts / count {
            let upper = separator(prev.as_ref().expect("index > 0"), key);
            items.push(RangeItem {
                upper,
                mode: Mode::Fingerprint(current),
            });
            current = Summary::default();
        }
        current.add(keyed, &key.id);
        prev = Some(*key);
        index += 1;
        ControlFlow::Continue(())
    })?;
    items.push(RangeItem {
        upper: range.hi,
        mode: Mode::Fingerprint(current),
    });
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(time: u64, first: u8) -> Key {
        let mut id = [7u8; 32];
        id[0] = first;
        Key {
            time,
            id: MessageId(id),
        }
    }

    #[test]
    fn separator_is_between_and_short() {
        let a = key(5, 1);
        let b = key(5, 2);
        let s = separator(&a, &b);
        assert!(a < s && s <= b);
        assert_eq!(s.id.0[1..], [0; 31]);
        let c = key(9, 0);
        let s = separator(&b, &c);
        assert_eq!(
            s,
            Key {
                time: 9,
                id: MessageId([0; 32])
            }
        );
    }

    #[test]
    fn messages_round_trip() {
        let msg = ReconMsg {
            items: vec![
                RangeItem {
                    upper: key(10, 3),
                    mode: Mode::Skip,
                },
                RangeItem {
                    upper: key(12, 9),
                    mode: Mode::Fingerprint(Summary { count: 3, sum: 99 }),
                },
                RangeItem {
                    upper: key(12, 200),
                    mode: Mode::IdList(vec![1, 2, 3]),
                },
                RangeItem {
                    upper: Key::MAX,
                    mode: Mode::Want(vec![4]),
                },
            ],
        };
        let mut buf = Vec::new();
        msg.encode(&mut buf);
        let mut r = Reader::new(&buf);
        assert_eq!(ReconMsg::decode(&mut r).unwrap(), msg);
    }

    #[test]
    fn decreasing_bounds_are_rejected() {
        let msg = ReconMsg {
            items: vec![
                RangeItem {
                    upper: key(10, 3),
                    mode: Mode::Skip,
                },
                RangeItem {
                    upper: key(10, 3),
                    mode: Mode::Skip,
                },
            ],
        };
        let mut buf = Vec::new();
        msg.encode(&mut buf);
        assert!(ReconMsg::decode(&mut Reader::new(&buf)).is_err());
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;
    use crate::store::MemoryStore;

    /// A store whose keys share timestamps, so bounds need long id prefixes.
    fn store_with_keys(n: u64) -> (MemoryStore, GroupId, Vec<Key>) {
        // MemoryStore only takes real messages; build them.
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let a = crate::Identity::generate("a", &mut rng).unwrap();
        let b = crate::Identity::generate("b", &mut rng).unwrap();
        let group = a.contact(&b.public()).unwrap().direct_group().clone();
        let mut store = MemoryStore::new();
        for i in 0..n {
            let m = crate::Message::create(
                &a,
                &group,
                1000 + i / 50,
                crate::Kind::TEXT,
                b"x",
                &mut rng,
            )
            .unwrap();
            crate::WriteStore::insert(&mut store, &group.id, &m).unwrap();
        }
        let keys = store.keys(&group.id);
        (store, group.id, keys)
    }

    /// Regression: merged skips must not push a reply
    /// past its budget, or the frame would never fit a packet.
    #[test]
    fn replies_never_exceed_their_budget() {
        let (store, group, keys) = store_with_keys(3000);
        // A hostile-looking message: many ranges whose bounds spell out
        // full 32-byte ids, alternating skips and wrong fingerprints.
        let mut items = Vec::new();
        for (i, k) in keys.iter().enumerate().skip(1).step_by(7) {
            let mode = if i % 2 == 0 {
                Mode::Skip
            } else {
                Mode::Fingerprint(Summary { count: 1, sum: 1 })
            };
            let mut id = k.id.0;
            id[31] |= 1;
            items.push(RangeItem {
                upper: Key {
                    time: k.time,
                    id: MessageId(id),
                },
                mode,
            });
        }
        items.dedup_by(|a, b| a.upper <= b.upper);
        items.push(RangeItem {
            upper: Key::MAX,
            mode: Mode::Fingerprint(Summary::default()),
        });
        let incoming = ReconMsg { items };
        for budget in [300, 450, 1000, 4000, 16_000] {
            let reply = reply(&store, &group, &TagKey::unkeyed(), &incoming, budget).unwrap();
            let mut buf = Vec::new();
            reply.msg.encode(&mut buf);
            assert!(
                buf.len() <= budget,
                "{} bytes for a budget of {budget}",
                buf.len()
            );
            let mut r = Reader::new(&buf);
            assert_eq!(ReconMsg::decode(&mut r).unwrap(), reply.msg);
        }
    }

    /// A reply cut short (one fingerprint for everything from some range
    /// on) still queues what the peer wants from the ranges after the
    /// cut. Before, those wants were dropped, and the peer had to narrow
    /// the ranges down again over more rounds to get them.
    #[test]
    fn wants_after_a_reply_is_cut_short_are_still_sent() {
        let (store, group, keys) = store_with_keys(3000);
        let tags = TagKey::unkeyed();
        let wanted = keys[2990];
        // Forty ranges with long bounds whose fingerprints differ, then a
        // last range asking for one message.
        let mut items: Vec<RangeItem> = keys
            .iter()
            .skip(1)
            .step_by(60)
            .take(40)
            .map(|k| {
                let mut id = k.id.0;
                id[31] |= 1;
                RangeItem {
                    upper: Key {
                        time: k.time,
                        id: MessageId(id),
                    },
                    mode: Mode::Fingerprint(Summary { count: 1, sum: 1 }),
                }
            })
            .collect();
        items.dedup_by(|a, b| a.upper <= b.upper);
        assert!(items.last().unwrap().upper < wanted);
        items.push(RangeItem {
            upper: Key::MAX,
            mode: Mode::Want(vec![tags.tag(&wanted.id)]),
        });
        let incoming = ReconMsg { items };
        let reply = reply(&store, &group, &tags, &incoming, 456).unwrap();
        // The reply was cut: it ends in a fingerprint up to infinity.
        let last = reply.msg.items.last().unwrap();
        assert!(last.upper == Key::MAX && matches!(last.mode, Mode::Fingerprint(_)));
        assert!(reply.msg.items.len() < 40, "{}", reply.msg.items.len());
        assert!(
            reply
                .send
                .iter()
                .any(|s| matches!(s, Send::Key(k) if *k == wanted)),
            "the wanted message is not queued"
        );
    }
}
