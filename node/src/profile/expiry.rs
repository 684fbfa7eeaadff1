//! Disappearing messages in the profile (`sync/PROTOCOL.md` §4.1).
//!
//! A conversation's timer is the newest TIMER message its members may
//! write (in a group, its admins), found through the `timers` index. Texts
//! written under a timer carry their expiry in the signed header; every
//! stored message with an expiry is listed in `expiry` by when it expires,
//! and [`Profile::sweep_expired`] deletes what is due, a bounded batch
//! per transaction: the message, its place in the conversation and its
//! delivery state. The node sweeps at unlock (before any link) and then as
//! expiries come due.

use rand_core::{CryptoRng, RngCore};
use redb::{ReadableDatabase, ReadableTable};
use strand_sync::Time;
use strand_sync::{decode_timer, encode_timer, AuthorId, Group, GroupId, Key, Kind, Message};

use crate::profile::db_error;
use crate::profile::schema::{EXPIRY, FLOOR, MESSAGES, OUTBOX, SEEN, SHOWN, TIMERS};
use crate::profile::store::{shown_key, DeletedRow, Position};
use crate::profile::{Profile, ProfileError};

/// What a sweep deleted: how many messages and, for one batch (one
/// transaction), per message, its log and, unless its row
/// was hollow, its author, kind and length (for the budget ledger to give
/// back). A row that did not read is not listed (nor counted). A sweep of
/// several batches keeps only their count: each batch's rows were given
/// back as it was done (a list of every row would grow with what is due,
/// which is what batches bound).
#[derive(Debug, Default)]
pub struct Swept {
    deleted: usize,
    pub(crate) rows: Vec<DeletedRow>,
    more: bool,
}

impl Swept {
    /// How many messages were deleted.
    pub fn count(&self) -> usize {
        self.deleted
    }

    /// Whether messages were still due when this batch was done: it
    /// stopped at its bound, and another batch is needed.
    pub(crate) fn more(&self) -> bool {
        self.more
    }

    /// Counts a later batch's messages in this sweep's (its rows stay
    /// with it).
    pub(crate) fn add_count(&mut self, batch: &Swept) {
        self.deleted += batch.deleted;
    }

    /// A later batch's outcome, seen from this sweep's so far: a batch
    /// that failed after others deleted messages ends the sweep with
    /// those (logged; what is still due is swept at the next look), so
    /// that what they deleted is said and given back rather than lost in
    /// the error.
    pub(crate) fn or_done(
        &self,
        batch: Result<Swept, ProfileError>,
    ) -> Result<Swept, ProfileError> {
        match batch {
            Err(e) if self.deleted > 0 => {
                tracing::warn!("deleting expired messages stopped part way: {e}");
                Ok(Swept::default())
            }
            other => other,
        }
    }
}

/// Expiry entries one transaction of a sweep deletes at most; the sweep
/// repeats until none is due. A contact may fill its budget with millions
/// of the smallest disappearing texts sharing one expiry: swept in one
/// transaction, they were all held in memory (gigabytes) and every other
/// write, and the unlock, waited until it committed. A few thousand small
/// rows make a short transaction whose cost per message stays that of one
/// big one.
pub(crate) const SWEEP_BATCH: usize = 4096;

/// A log of a conversation and who may set its timer there.
type TimerLog<'a> = (&'a Group, Box<dyn Fn(&AuthorId) -> bool + 'a>);

/// Messages looked at before an author's newest TIMER for one that holds
/// a timer, when that one does not: a bound on the work a contact's
/// malformed TIMER costs each lookup.
const TIMER_LOOKBACK: usize = 4096;

/// A TIMER's table key and the timer it holds.
type TimerAt = ([u8; 72], Option<Time>);

/// `author`'s newest TIMER in `group`'s log that holds a timer, from
/// `newest` (the table key of their newest TIMER) back, and its timer: a
/// body that is not a timer is ignored (§4.1), so the one before it still
/// counts. Looks [`TIMER_LOOKBACK`] messages back at most, and decodes
/// only `author`'s TIMERs among them: the rest, known by their rows'
/// heads, may be large (a message of up to 1 MiB, copied and hashed to
/// decode), and a malformed TIMER after many of them made every lookup
/// decode them all.
fn author_timer(
    messages: &impl ReadableTable<[u8; 72], &'static [u8]>,
    group: &Group,
    author: &AuthorId,
    newest: [u8; 72],
) -> Result<Option<TimerAt>, ProfileError> {
    let from = crate::profile::store::table_key(&group.id, &Key::MIN);
    for entry in messages
        .range(from..=newest)
        .map_err(db_error)?
        .rev()
        .take(TIMER_LOOKBACK)
    {
        let (k, bytes) = entry.map_err(db_error)?;
        if crate::profile::store::row_head(bytes.value()) != Some((*author, Kind::TIMER)) {
            continue;
        }
        #[cfg(test)]
        tests::TIMER_DECODES.with(|n| n.set(n.get() + 1));
        let Ok(msg) = Message::decode(bytes.value().to_vec()) else {
            continue;
        };
        if msg.kind() != Kind::TIMER || msg.author() != *author {
            continue;
        }
        if let Ok(Ok(lasts)) = msg.open(group).map(|b| decode_timer(&b)) {
            return Ok(Some((k.value(), lasts)));
        }
    }
    Ok(None)
}

impl Profile {
    /// Deletes every message whose expiry is at or before `now`, in
    /// transactions of at most 4096 messages (`SWEEP_BATCH`). Returns how many
    /// it deleted (the rows of each batch are not kept: nothing is counted
    /// against budgets yet where this runs, at unlock; the node's sweep
    /// gives each batch's back through its ledger). A batch that fails
    /// after others ends the sweep with what they deleted
    /// ([`Swept::or_done`]); an error only if none deleted anything.
    pub fn sweep_expired(&self, now: Time) -> Result<Swept, ProfileError> {
        self.sweep_in_batches(now, SWEEP_BATCH)
    }

    /// [`Profile::sweep_expired`] in batches of `limit` messages.
    pub(crate) fn sweep_in_batches(&self, now: Time, limit: usize) -> Result<Swept, ProfileError> {
        let mut swept = Swept::default();
        loop {
            let batch = swept.or_done(self.sweep_batch(now, limit))?;
            swept.add_count(&batch);
            if !batch.more {
                return Ok(swept);
            }
        }
    }

    /// Deletes the `limit` (at least one) messages that expired first, of
    /// those whose expiry is at or before `now`, in one transaction.
    /// Returns what it deleted and whether any still is due.
    pub(crate) fn sweep_batch(&self, now: Time, limit: usize) -> Result<Swept, ProfileError> {
        if self.next_expiry()?.is_none_or(|e| e > now) {
            return Ok(Swept::default());
        }
        #[cfg(test)]
        if tests::batch_fails() {
            return Err(ProfileError::Closed);
        }
        // At least one, so that a sweep repeated while more are due ends.
        let limit = limit.max(1);
        self.write_txn(move |txn| {
            let mut expiry = txn.open_table(EXPIRY).map_err(db_error)?;
            let mut hi = [0xffu8; 80];
            hi[..8].copy_from_slice(&now.to_be_bytes());
            let due: Vec<([u8; 80], Vec<u8>)> = expiry
                .range(..=hi)
                .map_err(db_error)?
                .take(limit)
                .map(|e| e.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<_, _>>()
                .map_err(db_error)?;
            let mut messages = txn.open_table(MESSAGES).map_err(db_error)?;
            let mut outbox = txn.open_table(OUTBOX).map_err(db_error)?;
            let mut shown = txn.open_table(SHOWN).map_err(db_error)?;
            let mut marks = [
                txn.open_table(SEEN).map_err(db_error)?,
                txn.open_table(FLOOR).map_err(db_error)?,
            ];
            let mut chunks = txn
                .open_table(crate::profile::schema::CHUNKS)
                .map_err(db_error)?;
            let mut swept = Swept::default();
            for (k, v) in &due {
                let key: [u8; 72] = k[8..].try_into().expect("72 bytes");
                let group = GroupId(key[..32].try_into().expect("32 bytes"));
                if let Some(row) = messages.remove(&key).map_err(db_error)? {
                    // A hollow row, or what the ledger counted (a row that
                    // does not read counted nothing).
                    swept.deleted += 1;
                    let row = crate::profile::store::deleted_row(group, row.value());
                    swept.rows.extend(row);
                }
                outbox.remove(&key).map_err(db_error)?;
                if chunks.remove(&key).map_err(db_error)?.is_some() {
                    crate::profile::store::remove_body(txn, &key).map_err(db_error)?;
                }
                if let Ok(s) = <[u8; 80]>::try_from(&v[..]) {
                    shown.remove(&s).map_err(db_error)?;
                    // The read mark and the floor (the user's last own
                    // text) name no message that is gone, nor when it was
                    // shown: they move back to the text shown before it.
                    let log: [u8; 32] = s[..32].try_into().expect("32 bytes");
                    let at: [u8; 48] = s[32..].try_into().expect("48 bytes");
                    let from = shown_key(&GroupId(log), &Position::MIN);
                    let before = match shown.range(from..s).map_err(db_error)?.next_back() {
                        Some(e) => {
                            let k = e.map_err(db_error)?.0.value();
                            Some(<[u8; 48]>::try_from(&k[32..]).expect("48 bytes"))
                        }
                        None => None,
                    };
                    for mark in &mut marks {
                        if mark.get(&log).map_err(db_error)?.map(|v| v.value()) != Some(at) {
                            continue;
                        }
                        match before {
                            Some(b) => mark.insert(&log, b).map_err(db_error)?,
                            None => mark.remove(&log).map_err(db_error)?,
                        };
                    }
                }
                expiry.remove(k).map_err(db_error)?;
            }
            swept.more = expiry.range(..=hi).map_err(db_error)?.next().is_some();
            Ok(swept)
        })
    }

    /// When the next stored message expires.
    pub fn next_expiry(&self) -> Result<Option<Time>, ProfileError> {
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let table = match txn.open_table(EXPIRY) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_error(e)),
        };
        let first = table.first().map_err(db_error)?;
        Ok(first.map(|(k, _)| u64::from_be_bytes(k.value()[..8].try_into().expect("8 bytes"))))
    }

    /// The newest valid timer among `logs`.
    fn timer_in(&self, logs: &[TimerLog<'_>]) -> Result<Option<Time>, ProfileError> {
        Ok(self.newest_timer(logs)?.and_then(|(_, lasts)| lasts))
    }

    /// The newest valid TIMER among `logs`: its time and its timer.
    fn newest_timer(
        &self,
        logs: &[TimerLog<'_>],
    ) -> Result<Option<(Time, Option<Time>)>, ProfileError> {
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let timers = match txn.open_table(TIMERS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_error(e)),
        };
        let messages = txn.open_table(MESSAGES).map_err(db_error)?;
        let mut best: Option<([u8; 40], Option<Time>)> = None;
        for (group, allowed) in logs {
            for entry in timers
                .range(crate::profile::store::record_range(&group.id))
                .map_err(db_error)?
            {
                let (k, v) = entry.map_err(db_error)?;
                let author: AuthorId = k.value()[32..].try_into().expect("32 bytes");
                if !allowed(&author) {
                    continue;
                }
                let Some((at, lasts)) = author_timer(&messages, group, &author, v.value())? else {
                    continue;
                };
                let order: [u8; 40] = at[32..].try_into().expect("40 bytes");
                if best.as_ref().is_none_or(|(b, _)| *b < order) {
                    best = Some((order, lasts));
                }
            }
        }
        Ok(best.map(|(order, lasts)| {
            let time = u64::from_be_bytes(order[..8].try_into().expect("8 bytes"));
            (time, lasts)
        }))
    }

    /// How long messages in the conversation with `contact` last (`None`:
    /// they stay).
    pub fn timer(&self, contact: &str) -> Result<Option<Time>, ProfileError> {
        let group = self.direct_group(contact)?;
        self.timer_in(&[(&group, Box::new(|_: &AuthorId| true))])
    }

    /// How long messages in a group last: the newest timer an admin set.
    pub fn group_timer(&self, group: &str) -> Result<Option<Time>, ProfileError> {
        let chain = self.chain_named(group)?;
        let logs = group_timer_logs(&chain);
        self.timer_in(&logs)
    }

    /// Sets how long the messages written from now on in the conversation
    /// with `contact` last (`None`: they stay). Both sides may.
    pub fn set_timer(
        &self,
        contact: &str,
        lasts: Option<Time>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(GroupId, Key), ProfileError> {
        let group = self.direct_group(contact)?;
        let newest = self.newest_timer(&[(&group, Box::new(|_: &AuthorId| true))])?;
        self.write_timer(&group, lasts, after(now, newest), rng)
    }

    /// [`Profile::set_timer`] for a group: admins only.
    pub fn set_group_timer(
        &self,
        group: &str,
        lasts: Option<Time>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(GroupId, Key), ProfileError> {
        let chain = self.chain_named(group)?;
        let head = chain
            .writable(&self.identity().public().sign)
            .map_err(|e| ProfileError::unwritable(group, e))?;
        if !head.is_admin(&self.identity().public().sign) {
            return Err(ProfileError::Group(
                "only an admin may set a group's timer".into(),
            ));
        }
        let g = head.group().clone();
        let newest = self.newest_timer(&group_timer_logs(&chain))?;
        self.write_timer(&g, lasts, after(now, newest), rng)
    }

    fn write_timer(
        &self,
        group: &Group,
        lasts: Option<Time>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(GroupId, Key), ProfileError> {
        let body = encode_timer(lasts).map_err(ProfileError::Timer)?;
        let msg = Message::create(&self.identity(), group, now, Kind::TIMER, &body, rng)
            .map_err(ProfileError::Message)?;
        let id = group.id;
        self.write_txn(move |txn| crate::profile::store_own(txn, &id, &msg))
    }
}

/// The logs of a group whose TIMERs count: only admins of the newest
/// epoch count, and only where they were admins (a removed admin's timers
/// stop counting).
fn group_timer_logs(chain: &strand_sync::Chain) -> Vec<TimerLog<'_>> {
    chain
        .epochs()
        .map(|e| {
            let allowed: Box<dyn Fn(&AuthorId) -> bool + '_> =
                Box::new(move |a: &AuthorId| chain.may_set_timer(e, a));
            (e.group(), allowed)
        })
        .collect()
}

/// When a new TIMER is dated: now, or just after the newest one that
/// counts if that is dated later (a clock ahead of this one's, by up to
/// the 15 minutes a message may be): the newest TIMER wins, so one dated
/// now would be written and lose, leaving the user's choice unmade.
fn after(now: Time, newest: Option<(Time, Option<Time>)>) -> Time {
    match newest {
        Some((time, _)) if time >= now => time.saturating_add(1),
        _ => now,
    }
}

/// Reads a timer as people write it: `off`, or a number and a unit
/// (`m`inutes, `h`ours, `d`ays, `w`eeks, `y`ears: 365 days), such as `5m`,
/// `1h`, `4w`. Between 5 minutes and 366 days: any value outside (`0`,
/// `-5m`, `299s`, `2y`) gets that range in its message.
pub fn parse_timer(text: &str) -> Result<Option<Time>, String> {
    let range = || format!("{text:?}: a timer is between 5 minutes and a year (366 days), or off");
    let t = text.trim().to_ascii_lowercase();
    if t == "off" {
        return Ok(None);
    }
    if t.starts_with('-') || t.chars().all(|c| c == '0') {
        return Err(range());
    }
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: give a unit, such as 5m, 1h, 1d, 1w or 1y"))?;
    let (n, unit) = t.split_at(split);
    if n.is_empty() {
        return Err(format!("{text:?}: start with a number, such as 5m or 1h"));
    }
    // Too many digits for a number is out of range too.
    let n: u64 = n.parse().map_err(|_| range())?;
    let unit_ms: u64 = match unit.trim() {
        "s" | "sec" | "second" | "seconds" => 1_000,
        "m" | "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 7 * 86_400_000,
        "y" | "year" | "years" => 365 * 86_400_000,
        _ => return Err(format!("{text:?}: the unit is m, h, d, w or y")),
    };
    let ms = n.saturating_mul(unit_ms);
    encode_timer(Some(ms)).map_err(|_| range())?;
    Ok(Some(ms))
}

/// A timer as people read it: "5 minutes", "1 hour", "4 weeks", "off".
pub fn timer_label(lasts: Option<Time>) -> String {
    let Some(ms) = lasts else {
        return "off".into();
    };
    let units = [
        (365 * 86_400_000, "year"),
        (7 * 86_400_000, "week"),
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
    ];
    for (unit, name) in units {
        if ms % unit == 0 {
            return crate::profile::base::counted(ms / unit, name);
        }
    }
    format!("{} minutes", ms / 60_000)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// How many rows [`author_timer`] decoded on this thread.
        pub(super) static TIMER_DECODES: Cell<usize> = const { Cell::new(0) };
        /// How many more sweep batches succeed on this thread before one
        /// fails (`None`: all do).
        pub(crate) static BATCHES_BEFORE_A_FAILURE: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// Whether the sweep batch starting now fails
    /// ([`BATCHES_BEFORE_A_FAILURE`]).
    pub(super) fn batch_fails() -> bool {
        BATCHES_BEFORE_A_FAILURE.with(|n| match n.get() {
            Some(0) => true,
            Some(k) => {
                n.set(Some(k - 1));
                false
            }
            None => false,
        })
    }

    /// Stores `messages` in `group` as a sync from their author would.
    fn store(p: &Profile, group: &Group, messages: &[Message]) {
        let mut store = p.store().unwrap();
        for m in messages {
            assert!(strand_sync::WriteStore::insert(&mut store, &group.id, m).unwrap());
        }
        store.commit().unwrap();
    }

    /// Ten of Bob's tiny texts, all expiring at `expires` (at least
    /// [`strand_sync::MIN_TIMER`] after `now`), stored.
    fn ten_expiring(
        p: &Profile,
        bob: &strand_sync::Identity,
        group: &Group,
        now: Time,
        expires: Time,
    ) {
        let rng = &mut crate::profile::os_rng();
        let texts: Vec<Message> = (0..10)
            .map(|i| {
                Message::create_expiring(
                    bob,
                    group,
                    now - 10 + i,
                    Some(expires),
                    Kind::TEXT,
                    b"x",
                    rng,
                )
                .unwrap()
            })
            .collect();
        store(p, group, &texts);
    }

    /// One transaction of a sweep deletes a bounded batch of what is due,
    /// and says that more is; batches repeated delete the rest. A contact
    /// could fill its budget with millions of the smallest disappearing
    /// texts sharing one expiry, and one transaction deleted them all
    /// (gigabytes held, every write and the unlock stalled).
    #[test]
    fn a_sweep_transaction_deletes_a_bounded_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        // Under the shortest timer (a text lasts at least that).
        let expires = now + strand_sync::MIN_TIMER;
        ten_expiring(&p, &bob, &group, now, expires);

        let first = p.sweep_batch(expires, 3).unwrap();
        assert_eq!(first.count(), 3, "one transaction, one batch");
        assert_eq!(first.rows.len(), 3);
        assert!(first.more());
        assert_eq!(
            p.next_expiry().unwrap(),
            Some(expires),
            "the rest is still due"
        );
        assert_eq!(p.conversation_keys("Bob").unwrap().len(), 7);

        let mut counts = vec![first.count()];
        loop {
            let batch = p.sweep_batch(expires, 3).unwrap();
            counts.push(batch.count());
            if !batch.more() {
                break;
            }
        }
        assert_eq!(counts, [3, 3, 3, 1]);
        assert_eq!(p.next_expiry().unwrap(), None);
        assert!(p.conversation_keys("Bob").unwrap().is_empty());
    }

    /// The whole sweep goes on, batch after batch, until nothing is due,
    /// and counts every batch's messages; what is not due yet stays.
    #[test]
    fn a_sweep_in_batches_deletes_all_that_is_due() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let rng = &mut crate::profile::os_rng();
        let now = crate::profile::now();
        // Under the shortest timer (a text lasts at least that).
        let expires = now + strand_sync::MIN_TIMER;
        ten_expiring(&p, &bob, &group, now, expires);
        let later =
            Message::create_expiring(&bob, &group, now, Some(expires + 1), Kind::TEXT, b"y", rng)
                .unwrap();
        store(&p, &group, &[later]);

        assert_eq!(p.sweep_in_batches(expires, 3).unwrap().count(), 10);
        assert_eq!(p.next_expiry().unwrap(), Some(expires + 1));
        assert_eq!(p.conversation_keys("Bob").unwrap().len(), 1);
        assert_eq!(p.sweep_in_batches(expires, 3).unwrap().count(), 0);
    }

    /// Finding a conversation's timer decodes only its TIMER rows, found
    /// by their heads, and finds the same timer. Every row back from a
    /// contact's newest TIMER was decoded (copied and hashed whole, up to
    /// 1 MiB each): a malformed TIMER after a thousand large texts made
    /// every lookup, at each send and listing, decode a gigabyte.
    #[test]
    fn finding_a_timer_decodes_only_timers() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let rng = &mut crate::profile::os_rng();
        let now = crate::profile::now();
        p.write("Bob", "mine", now - 20, rng).unwrap();
        let timer = encode_timer(Some(5 * 60_000)).unwrap();
        let mut sent =
            vec![Message::create(&bob, &group, now - 100, Kind::TIMER, &timer, rng).unwrap()];
        for i in 0..5 {
            sent.push(
                Message::create(&bob, &group, now - 50 + i, Kind::TEXT, b"his", rng).unwrap(),
            );
        }
        // Not a timer (7 bytes, not 8): ignored, so the one before counts.
        sent.push(Message::create(&bob, &group, now - 10, Kind::TIMER, &[0; 7], rng).unwrap());
        store(&p, &group, &sent);

        TIMER_DECODES.with(|n| n.set(0));
        assert_eq!(p.timer("Bob").unwrap(), Some(5 * 60_000));
        assert_eq!(
            TIMER_DECODES.with(Cell::get),
            2,
            "Bob's two TIMERs, not his five texts nor Alice's"
        );
    }

    /// The read mark and the floor of a conversation, as stored.
    fn marks(p: &Profile, group: &GroupId) -> [Option<[u8; 48]>; 2] {
        let txn = p.db().unwrap().begin_read().unwrap();
        [SEEN, FLOOR].map(|t| {
            let t = txn.open_table(t).unwrap();
            t.get(&group.0).unwrap().map(|v| v.value())
        })
    }

    /// A message gone at its timer leaves nothing that names it: the read
    /// mark and the floor kept its position (when it was shown, its time
    /// and id) after the sweep. They move back to the text before it.
    #[test]
    fn an_expired_message_leaves_no_read_mark_or_floor_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, _bob, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let rng = &mut crate::profile::os_rng();
        let now = crate::now();
        p.write("Bob", "stays", now, rng).unwrap();
        p.set_timer("Bob", Some(5 * 60_000), now + 1, rng).unwrap();
        p.write("Bob", "goes", now + 2, rng).unwrap();
        let keys = p.conversation_keys("Bob").unwrap();
        assert_eq!(keys.len(), 2);
        p.mark_read("Bob", &keys[1]).unwrap();
        let at = |k: &crate::profile::store::Position| Some(k.to_bytes());
        assert_eq!(marks(&p, &group.id), [at(&keys[1]), at(&keys[1])]);
        let swept = p.sweep_expired(now + 2 + 5 * 60_000).unwrap();
        assert_eq!(swept.deleted, 1);
        assert_eq!(marks(&p, &group.id), [at(&keys[0]), at(&keys[0])]);
        assert_eq!(p.conversation_keys("Bob").unwrap(), keys[..1]);
    }

    #[test]
    fn timers_parse_and_print() {
        assert_eq!(parse_timer("off"), Ok(None));
        assert_eq!(parse_timer("5m"), Ok(Some(300_000)));
        assert_eq!(parse_timer("1h"), Ok(Some(3_600_000)));
        assert_eq!(parse_timer("4w"), Ok(Some(28 * 86_400_000)));
        assert_eq!(parse_timer("1y"), Ok(Some(365 * 86_400_000)));
        assert!(parse_timer("4m").is_err());
        assert!(parse_timer("2y").is_err());
        assert!(parse_timer("h").is_err());
        assert!(parse_timer("5").is_err());
        assert!(parse_timer("5 parsecs").is_err());
        // Out of range, however written, says the range.
        for bad in [
            "0",
            "000",
            "-5m",
            "299s",
            "4m",
            "367d",
            "2y",
            "99999999999999999999999m",
        ] {
            let e = parse_timer(bad).unwrap_err();
            assert!(e.contains("between 5 minutes and a year"), "{bad}: {e}");
        }
        assert_eq!(parse_timer("300s"), Ok(Some(300_000)));
        assert!(parse_timer("5 parsecs")
            .unwrap_err()
            .contains("the unit is"));
        assert_eq!(timer_label(Some(300_000)), "5 minutes");
        assert_eq!(timer_label(Some(3_600_000)), "1 hour");
        assert_eq!(timer_label(Some(28 * 86_400_000)), "4 weeks");
        assert_eq!(timer_label(None), "off");
    }
}
