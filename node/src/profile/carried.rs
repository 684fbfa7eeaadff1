//! Carrying in a profile (PROTOCOL.md §17): whether the user carries
//! envelopes for contacts, the [`Carrier`]'s state (sealed at rest under
//! the root key, like every other record of metadata), and the carrying
//! pools' messages: written, read, and hollowed once read.
//!
//! What runs it is the runtime (`runtime::carrying`): a running node hands
//! envelopes to contacts as their sessions come up and takes in what
//! their pools bring. A profile no node runs on only reports.

use rand_core::{CryptoRng, RngCore};
use redb::{ReadableDatabase, ReadableTable};
use strand_sync::limits::MAX_CLOCK_SKEW;
use strand_sync::{
    AuthorId, Carrier, CarryConfig, GroupId, Handout, Inbound, Key, Kind, Message, PublicIdentity,
    Spread, Time,
};

use crate::profile::budget::{Budgets, Ledger};
use crate::profile::crypto::{open, seal};
use crate::profile::db_error;
use crate::profile::schema::{meta, CARRIED, MESSAGES, META, OUTBOX};
use crate::profile::store::{insert_written, row_facts, table_key, RowFacts};
use crate::profile::{Delivery, Profile, ProfileError};

const ROLE_CARRY: &str = "strand/v2/carry";
const ROLE_CARRIER: &str = "strand/v2/carrier";
const ROLE_CARRY_BUDGET: &str = "strand/v2/carry-budget";
const ROLE_CARRY_PART: &str = "strand/v2/carry-part";

/// How a node carries: copies, budget and envelope lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarrySettings {
    /// How this user's 1:1 messages spread (along chains of carriers by
    /// default; PROTOCOL.md §17).
    pub spread: Spread,
    /// Copies each of this user's 1:1 messages spreads in with binary
    /// spray and wait; 1 hands nothing to carriers.
    pub copies: u8,
    /// Most bytes of other people's envelopes held.
    pub budget: u64,
    /// How long an envelope lasts, ms.
    pub lifetime: Time,
}

impl CarrySettings {
    /// The carrier's configuration under these settings, carrying for
    /// contacts or not.
    pub(crate) fn config(&self, carry: bool) -> CarryConfig {
        CarryConfig {
            spread: self.spread,
            copies: self.copies,
            budget: self.budget,
            lifetime: self.lifetime,
            carry,
            ..CarryConfig::default()
        }
    }
}

impl Default for CarrySettings {
    fn default() -> Self {
        let d = CarryConfig::default();
        CarrySettings {
            spread: d.spread,
            copies: d.copies,
            budget: d.budget,
            lifetime: d.lifetime,
        }
    }
}

/// What carrying looks like now (`strand carry`, the app's Network
/// screen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CarryStatus {
    /// Whether this user carries for contacts.
    pub carrying: bool,
    /// Envelopes held for others.
    pub held: usize,
    /// Their bytes.
    pub held_bytes: u64,
    /// The budget for them.
    pub budget: u64,
    /// This user's messages not yet delivered that carriers took or were
    /// offered.
    pub spreading: usize,
    /// This user's messages held back from carriers while they may still
    /// reach their recipient directly (`sync/PROTOCOL.md` §17, *When a
    /// sender spreads*).
    pub held_back: usize,
    /// When the first of those may be offered to carriers, as things
    /// stand (ms since the Unix epoch).
    pub held_back_until: Option<u64>,
    /// This user's messages free to spread that no carrier has been
    /// offered yet.
    pub waiting: usize,
    /// Contacts who said they carry.
    pub carriers: usize,
    /// Envelopes delivered to this user.
    pub opened: u64,
    /// Of those, the ones a contact wrote, taken in and acknowledged.
    pub accepted: u64,
    /// Envelopes taken in to carry, ever.
    pub carried: u64,
    /// Of those, dropped for room (oldest first).
    pub evicted: u64,
}

/// Messages, by log and key.
type Keys = Vec<(GroupId, Key)>;

/// Pool messages hollowed, by log, each with what it held.
type Hollowed = Vec<(GroupId, RowFacts)>;

/// A pool message read back: who shares the pool, and the message.
pub(crate) struct PoolMessage {
    pub(crate) from: PublicIdentity,
    pub(crate) message: Message,
    pub(crate) body: Vec<u8>,
}

/// A carrying step made and sealed, not yet written (see
/// [`Profile::prepare_carrying`]).
pub(crate) struct CarrySave {
    state: Vec<u8>,
    choice: Vec<u8>,
    messages: Vec<(GroupId, Message)>,
    gone: Vec<[u8; 32]>,
    new: Vec<([u8; 32], Vec<u8>)>,
    hollow: Vec<(GroupId, Key)>,
    delivered: Vec<(GroupId, Key)>,
    /// Contacts (by keyed id) the step tells whether this user carries
    /// (a notice to each, or nothing to tell): no longer to be told it
    /// ([`crate::profile::telling`]).
    told: Vec<[u8; 32]>,
    now: Time,
}

impl CarrySave {
    /// The pool messages the step writes, with their pools.
    pub(crate) fn messages(&self) -> &[(GroupId, Message)] {
        &self.messages
    }

    /// This user's messages that acknowledgements the step read prove
    /// delivered: marked so with the rest.
    pub(crate) fn deliver(&mut self, keys: Vec<(GroupId, Key)>) {
        self.delivered = keys;
    }

    /// Contacts (by keyed id) the step leaves nothing to tell of whether
    /// this user carries, besides those it writes a notice to: their rows
    /// saying they are still to be told go with the rest.
    pub(crate) fn told(&mut self, ids: Vec<[u8; 32]>) {
        self.told.extend(ids);
    }
}

impl Profile {
    /// Whether this user carries envelopes for contacts (off until turned
    /// on).
    pub fn carrying(&self) -> Result<bool, ProfileError> {
        Ok(self
            .meta_sealed(meta::CARRY, ROLE_CARRY)?
            .is_some_and(|b| b.first() == Some(&1)))
    }

    /// The carrying state, under `settings`; empty if none was saved. It
    /// spreads nothing to anyone no longer a contact.
    pub(crate) fn load_carrier(&self, settings: &CarrySettings) -> Result<Carrier, ProfileError> {
        let config = settings.config(self.carrying()?);
        let Some(bytes) = self.meta_sealed(meta::CARRIER, ROLE_CARRIER)? else {
            return Ok(Carrier::new(config));
        };
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let table = match txn.open_table(CARRIED) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(db_error(e)),
        };
        let mut failed = None;
        let carrier = Carrier::decode_state(&bytes, config, |key| {
            let row = table.as_ref()?.get(&self.part_row(key));
            match row {
                Ok(v) => open(self.root(), ROLE_CARRY_PART, v?.value()).map(|p| p.to_vec()),
                Err(e) => {
                    failed = Some(db_error(e));
                    None
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let mut carrier = carrier.map_err(ProfileError::StoredCarrying)?;
        // Texts to contacts deleted since it was saved (a node stopped
        // before its carrier forgot them; a mailbox's list taken offline)
        // stop spreading; saved so at the next step.
        let book = self.book();
        for to in carrier.recipients() {
            if !book.sync.iter().any(|c| c.public == to) {
                carrier.forget(&to);
            }
        }
        // Texts the outbox says a contact holds stop spreading, saved so
        // at the next step too: a contact's confirmation is marked in the
        // outbox when it comes, and reaches the carrier only at the next
        // carrying step, so a node stopped in between (a kill, a step
        // that failed) left them spreading until they expired. At most
        // one lookup per text kept to spread.
        let outbox = match txn.open_table(OUTBOX) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(carrier),
            Err(e) => return Err(db_error(e)),
        };
        let mut delivered = Vec::new();
        for (to, key) in carrier.own_messages() {
            let Some(c) = book.sync.iter().find(|c| c.public == to) else {
                continue;
            };
            let row = table_key(&c.direct_group().id, &key);
            let state = outbox.get(&row).map_err(db_error)?.map(|v| v.value());
            if state.is_some_and(|s| Delivery::from_u8(s) == Delivery::Delivered) {
                delivered.push(key.id);
            }
        }
        for id in &delivered {
            carrier.delivered(id);
        }
        Ok(carrier)
    }

    /// The row of carrying part `key` in `carried`: a keyed hash, so the
    /// file does not list the envelopes' ids.
    fn part_row(&self, key: &strand_sync::PartKey) -> [u8; 32] {
        strand_sync::kdf(self.root(), "strand/v2/carry-part-row", &[key])
    }

    /// Starts or stops carrying with no node running: saved, and every
    /// contact is told in its pool (they learn it at the next sync).
    pub fn set_carrying(
        &self,
        on: bool,
        settings: &CarrySettings,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<CarryStatus, ProfileError> {
        let mut carrier = self.load_carrier(settings)?;
        carrier.set_carrying(on);
        let contacts = self.book().sync.clone();
        let notices = contacts.iter().map(|c| notice(&c.public, on)).collect();
        self.save_carrying(&carrier, notices, Vec::new(), now, rng)?;
        Ok(status(&carrier, &contacts, now))
    }

    /// Saves the carrying state and the user's choice, writes the given
    /// pool messages and hollows the pool messages read, in one
    /// transaction. Returns the written messages' keys, to hand to live
    /// sessions.
    pub(crate) fn save_carrying(
        &self,
        carrier: &Carrier,
        handouts: Vec<Handout>,
        hollow: Vec<(GroupId, Key)>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        let save = self.prepare_carrying(carrier, handouts, hollow, now, rng)?;
        Ok(self.commit_carrying(save)?.0)
    }

    /// [`Profile::save_carrying`]'s first half: the pool messages made
    /// and everything sealed, nothing written. What must happen before
    /// the state is saved (a drive bundle that holds the pool messages
    /// written) happens between this and [`Profile::commit_carrying`], so
    /// that if it fails nothing is saved.
    pub(crate) fn prepare_carrying(
        &self,
        carrier: &Carrier,
        handouts: Vec<Handout>,
        hollow: Vec<(GroupId, Key)>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<CarrySave, ProfileError> {
        let state = seal(self.root(), ROLE_CARRIER, &carrier.encode_state(), rng);
        let choice = seal(
            self.root(),
            ROLE_CARRY,
            &[u8::from(carrier.config().carry)],
            rng,
        );
        // A notice tells its contact whether this user carries: they are
        // no longer to be told it (`crate::profile::telling`).
        let told: Vec<[u8; 32]> = handouts
            .iter()
            .filter(|h| h.kind == Kind::CARRYING)
            .map(|h| self.contact_id(&h.to))
            .collect();
        let messages = self.pool_messages(handouts, now, rng);
        // Only parts not yet stored are sealed and written, and only those
        // the state no longer names are deleted: a step costs what it
        // changed, not the whole budget. (Steps are one at a time, and
        // nothing else writes `carried`.)
        let stored = self.part_rows()?;
        let rows: Vec<([u8; 32], &[u8])> = carrier
            .parts()
            .map(|(k, bytes)| (self.part_row(&k), bytes))
            .collect();
        let keep: std::collections::HashSet<[u8; 32]> = rows.iter().map(|(r, _)| *r).collect();
        let gone: Vec<[u8; 32]> = stored
            .iter()
            .filter(|r| !keep.contains(*r))
            .copied()
            .collect();
        let new: Vec<([u8; 32], Vec<u8>)> = rows
            .into_iter()
            .filter(|(r, _)| !stored.contains(r))
            .map(|(r, bytes)| (r, seal(self.root(), ROLE_CARRY_PART, bytes, rng)))
            .collect();
        Ok(CarrySave {
            state,
            choice,
            messages,
            gone,
            new,
            hollow,
            delivered: Vec::new(),
            told,
            now,
        })
    }

    /// [`Profile::save_carrying`]'s second half: writes what
    /// [`Profile::prepare_carrying`] made, in one transaction. Returns the
    /// pool messages written, and the own messages it marked delivered
    /// that were not before.
    pub(crate) fn commit_carrying(&self, save: CarrySave) -> Result<(Keys, Keys), ProfileError> {
        self.commit_carrying_hollowing(save)
            .map(|(written, raised, _)| (written, raised))
    }

    /// [`Profile::commit_carrying`], also returning the pool messages it
    /// hollowed, each with what it held (for [`Ledger::hollowed`]).
    pub(crate) fn commit_carrying_hollowing(
        &self,
        save: CarrySave,
    ) -> Result<(Keys, Keys, Hollowed), ProfileError> {
        let me = self.identity().public().sign;
        self.write_txn(move |txn| {
            let mut m = txn.open_table(META).map_err(db_error)?;
            m.insert(meta::CARRIER, &save.state[..]).map_err(db_error)?;
            m.insert(meta::CARRY, &save.choice[..]).map_err(db_error)?;
            drop(m);
            let mut parts = txn.open_table(CARRIED).map_err(db_error)?;
            for row in &save.gone {
                parts.remove(row).map_err(db_error)?;
            }
            for (row, sealed) in &save.new {
                parts.insert(row, &sealed[..]).map_err(db_error)?;
            }
            drop(parts);
            let hollowed = hollow_in(txn, &save.hollow)?;
            for id in &save.told {
                crate::profile::telling::told_in(txn, id, crate::profile::telling::Tell::Carrying)
                    .map_err(db_error)?;
            }
            let raised =
                crate::profile::mark_in(txn, &save.delivered, crate::profile::Delivery::Delivered)?;
            let written = insert_written(txn, me, save.now, &save.messages).map_err(db_error)?;
            Ok((written, raised, hollowed))
        })
    }

    /// A contact confirmed holding `keys`, messages this profile wrote (a
    /// link's [`strand_sync::Event::Delivered`]): marked delivered, as
    /// [`Profile::mark_many_async`] does, and those in carrying pools
    /// hollowed, in the same transaction. A pool message has no outbox
    /// row and is never asked about again, so a confirmation kept for
    /// the next carrying step was lost to a kill before it: the message
    /// stayed whole until it expired (a notice, for good). Returns the
    /// messages whose state it raised, as [`Profile::mark_many_async`].
    pub(crate) async fn confirmed_async(
        &self,
        keys: Vec<(GroupId, Key)>,
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let book = self.book();
        let pool: Vec<(GroupId, Key)> = keys
            .iter()
            .filter(|(g, _)| book.sync.iter().any(|c| c.pool.id == *g))
            .copied()
            .collect();
        drop(book);
        let me = self.identity().public().sign;
        self.write_txn_async(move |txn| {
            let raised = crate::profile::mark_in(txn, &keys, Delivery::Delivered)?;
            hollow_own_in(txn, &me, &pool)?;
            Ok(raised)
        })
        .await
    }

    /// The rows of `carried` stored now.
    pub(crate) fn part_rows(&self) -> Result<std::collections::HashSet<[u8; 32]>, ProfileError> {
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let table = match txn.open_table(CARRIED) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Default::default()),
            Err(e) => return Err(db_error(e)),
        };
        let mut rows = std::collections::HashSet::new();
        for entry in table.iter().map_err(db_error)? {
            rows.insert(entry.map_err(db_error)?.0.value());
        }
        Ok(rows)
    }

    /// The carrying budget the last node ran with (`strand run
    /// --carry-budget`), for what runs without a node.
    pub fn carry_settings(&self) -> Result<CarrySettings, ProfileError> {
        let mut s = CarrySettings::default();
        if let Some(b) = self.meta_sealed(meta::CARRY_BUDGET, ROLE_CARRY_BUDGET)? {
            if let Ok(b) = <[u8; 8]>::try_from(&b[..]) {
                s.budget = u64::from_be_bytes(b);
            }
        }
        Ok(s)
    }

    /// Keeps the carrying budget a node runs with (see
    /// [`Profile::carry_settings`]).
    pub(crate) fn keep_carry_budget(
        &self,
        budget: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        let saved = self.meta_sealed(meta::CARRY_BUDGET, ROLE_CARRY_BUDGET)?;
        if saved.is_some_and(|s| s[..] == budget.to_be_bytes()) {
            return Ok(());
        }
        self.set_meta_sealed(
            meta::CARRY_BUDGET,
            ROLE_CARRY_BUDGET,
            &budget.to_be_bytes(),
            rng,
        )
    }

    /// The handouts as messages in the pools they go to. A handout for
    /// someone no longer a contact, or one that makes no valid message, is
    /// dropped (and said so).
    fn pool_messages(
        &self,
        handouts: Vec<Handout>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Vec<(GroupId, Message)> {
        let book = self.book();
        let identity = self.identity();
        let mut out = Vec::with_capacity(handouts.len());
        for h in handouts {
            let Some(c) = book.sync.iter().find(|c| c.public.sign == h.to) else {
                continue;
            };
            let expires = (h.expires > now).then_some(h.expires);
            match Message::create_expiring(&identity, &c.pool, now, expires, h.kind, &h.body, rng) {
                Ok(msg) => out.push((c.pool.id, msg)),
                Err(e) => tracing::warn!("a carrying message not written: {e}"),
            }
        }
        out
    }

    /// The pool messages contacts wrote that were stored and never read
    /// (a node stopped between storing and reading them, or they wait to
    /// be taken), at most `limit` of them, in pool and key order after
    /// `after`: read at start, every ten minutes, and after an import,
    /// a page at a time (a contact's budget holds millions).
    pub(crate) fn unread_pool(
        &self,
        after: Option<(GroupId, Key)>,
        limit: usize,
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        let book = self.book();
        let me = self.identity().public().sign;
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let t = match txn.open_table(MESSAGES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_error(e)),
        };
        let mut pools: Vec<GroupId> = book.sync.iter().map(|c| c.pool.id).collect();
        pools.sort();
        let mut out = Vec::new();
        for pool in pools {
            let lo = match after {
                Some((g, _)) if pool < g => continue,
                Some((g, k)) if pool == g => table_key(&g, &k),
                _ => table_key(&pool, &Key::MIN),
            };
            let hi = table_key(&pool, &Key::MAX);
            for entry in t.range(lo..=hi).map_err(db_error)? {
                let (k, v) = entry.map_err(db_error)?;
                let key = crate::profile::store::sync_key(&k.value());
                if after == Some((pool, key)) || v.value().is_empty() {
                    continue;
                }
                if let Ok(m) = Message::decode(v.value().to_vec()) {
                    if m.author() != me {
                        out.push((pool, key));
                        if out.len() == limit {
                            return Ok(out);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// A stored pool message, opened; `None` if it is gone, hollow, or not
    /// in a contact's pool.
    pub(crate) fn read_pool(
        &self,
        group: &GroupId,
        key: &Key,
    ) -> Result<Option<PoolMessage>, ProfileError> {
        let book = self.book();
        let Some(c) = book.sync.iter().find(|c| c.pool.id == *group) else {
            return Ok(None);
        };
        // A hollow message reads as absent.
        let Some(bytes) =
            strand_sync::Store::get(&self.read_view()?, group, key).map_err(db_error)?
        else {
            return Ok(None);
        };
        let Ok(message) = Message::decode(bytes) else {
            return Ok(None);
        };
        let Ok(body) = message.open(&c.pool) else {
            return Ok(None);
        };
        Ok(Some(PoolMessage {
            from: c.public,
            message,
            body,
        }))
    }

    /// Takes in a message that came out of an envelope, checked exactly
    /// as if its author had sent it over a link (budgets included): it
    /// must be valid in the 1:1 group of the contact that wrote it.
    pub(crate) fn take_opened(
        &self,
        message: Message,
        ledger: &Ledger,
        budgets: &Budgets,
        now: Time,
    ) -> Result<TakenOut, ProfileError> {
        let book = self.book();
        let Some(contact) = strand_sync::opened_author(&book.sync, &message) else {
            return Ok(TakenOut::Refused);
        };
        let author = contact.public;
        let key = message.key();
        let (group, kind, len) = (
            contact.direct_group().id,
            message.kind(),
            message.as_bytes().len() as u64,
        );
        let (batch, _) = self.check_and_store(
            Inbound::new(contact.direct_group(), vec![message]),
            ledger,
            budgets,
            now,
        )?;
        let verdict = batch.iter().next().map(|i| i.verdict().clone());
        Ok(match verdict {
            Some(strand_sync::Verdict::Stored { new }) => TakenOut::Taken { author, key, new },
            Some(strand_sync::Verdict::Held) => TakenOut::Taken {
                author,
                key,
                new: false,
            },
            // As over a link, these are offered again later: here the pool
            // message that brought it stays, to be read again once what it
            // waits for may have come (a text more than a day ahead of
            // this clock is refused: its carrier's budget here would wait
            // on it).
            Some(strand_sync::Verdict::Invalid(strand_sync::Invalid::OverBudget)) => {
                TakenOut::Later(Wait::Room {
                    author: author.sign,
                    group,
                    kind,
                    len,
                })
            }
            Some(strand_sync::Verdict::Invalid(strand_sync::Invalid::FromTheFuture {
                time,
                now,
            })) if time <= now.saturating_add(WAIT_AHEAD) => {
                TakenOut::Later(Wait::Clock(time.saturating_sub(MAX_CLOCK_SKEW)))
            }
            _ => TakenOut::Refused,
        })
    }
}

/// How far ahead of this device's clock a text out of an envelope may be
/// and still wait to be taken (see [`TakenOut::Later`]).
const WAIT_AHEAD: Time = 24 * 3_600_000;

/// What became of a message that came out of an envelope.
pub(crate) enum TakenOut {
    /// Stored (`new`) or already here: from the contact `author`.
    Taken {
        /// The contact who wrote it (by key: their name may change
        /// before the user is told).
        author: PublicIdentity,
        /// Its key.
        key: Key,
        /// Whether it was not here before.
        new: bool,
    },
    /// Not now, as over a link (over the contact's budget, or written
    /// later than this device's clock allows, by at most a day): the pool
    /// message that brought it stays whole, and is read again at the
    /// node's start and, once what it waits for may have come, at the
    /// next retry (every 10 minutes).
    Later(Wait),
    /// Not a contact's (a stranger can seal to anyone), or not valid.
    Refused,
}

/// What a text out of an envelope waits for before it can be taken
/// ([`TakenOut::Later`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// This device's clock to reach this time, the text's date less the
    /// skew allowed ([`MAX_CLOCK_SKEW`]): until then it is dated too far
    /// ahead.
    Clock(Time),
    /// Room in its author's budget here.
    Room {
        /// The contact who wrote it.
        author: AuthorId,
        /// Their 1:1 group, where their budget is counted.
        group: GroupId,
        /// Its kind.
        kind: Kind,
        /// Its length, bytes.
        len: u64,
    },
}

/// Drops the bytes of pool messages and keeps their keys (see
/// [`strand_sync::MemoryStore::hollow`]): the envelope inside lives in
/// the carrying state from then on, or is gone. Returns the rows it
/// hollowed, each with what it held ([`RowFacts`]): not those gone
/// meanwhile (a sweep deleted them) or hollow already, whose room was
/// given back already.
fn hollow_in(
    txn: &redb::WriteTransaction,
    items: &[(GroupId, Key)],
) -> Result<Hollowed, ProfileError> {
    let mut hollowed = Vec::new();
    if items.is_empty() {
        return Ok(hollowed);
    }
    let mut t = txn.open_table(MESSAGES).map_err(db_error)?;
    for (group, key) in items {
        let k = table_key(group, key);
        let facts = match t.get(&k).map_err(db_error)? {
            None => continue,
            Some(v) => row_facts(v.value()),
        };
        t.insert(&k, &[][..]).map_err(db_error)?;
        // Pool messages are never split; should one ever be, its
        // parts go with it.
        crate::profile::store::remove_body(txn, &k).map_err(db_error)?;
        if let Some((author, kind, n)) = facts {
            hollowed.push((*group, (author, kind, n as u64)));
        }
    }
    Ok(hollowed)
}

/// [`hollow_in`] for the pool messages of `items` that `me` wrote and
/// that are still whole: a contact's own, unread, holds an envelope not
/// yet taken.
fn hollow_own_in(
    txn: &redb::WriteTransaction,
    me: &AuthorId,
    items: &[(GroupId, Key)],
) -> Result<(), ProfileError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut own = Vec::with_capacity(items.len());
    {
        let t = txn.open_table(MESSAGES).map_err(db_error)?;
        for (group, key) in items {
            let Some(v) = t.get(&table_key(group, key)).map_err(db_error)? else {
                continue;
            };
            // None for a row hollow already.
            if row_facts(v.value()).is_some_and(|(author, _, _)| author == *me) {
                own.push((*group, *key));
            }
        }
    }
    hollow_in(txn, &own).map(drop)
}

/// The status of `carrier` among `contacts` at `now`.
pub(crate) fn status(
    carrier: &Carrier,
    contacts: &[strand_sync::Contact],
    now: Time,
) -> CarryStatus {
    let own = carrier.spreading_at(now);
    CarryStatus {
        carrying: carrier.config().carry,
        held: carrier.held(),
        held_bytes: carrier.used(),
        budget: carrier.config().budget,
        spreading: own.out,
        held_back: own.held_back,
        held_back_until: own.released,
        waiting: own.waiting,
        carriers: contacts
            .iter()
            .filter(|c| carrier.is_carrier(&c.public.sign))
            .count(),
        opened: carrier.stats().opened,
        accepted: carrier.stats().accepted,
        carried: carrier.stats().held,
        evicted: carrier.stats().evicted,
    }
}

/// The pool message telling `to` whether this user carries. Notices do
/// not expire: the newest counts.
pub(crate) fn notice(to: &PublicIdentity, on: bool) -> Handout {
    Handout {
        to: to.sign,
        kind: Kind::CARRYING,
        body: strand_sync::encode_carrying(on),
        expires: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{os_rng, KdfParams};
    use strand_sync::Identity;

    fn carried_rows(p: &Profile) -> Vec<([u8; 32], Vec<u8>)> {
        let txn = p.db().unwrap().begin_read().unwrap();
        let Ok(t) = txn.open_table(CARRIED) else {
            return Vec::new();
        };
        t.iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                (k.value(), v.value().to_vec())
            })
            .collect()
    }

    /// Unread pool messages are read a page at a time, each once, in
    /// order (a contact's budget holds millions: read at once, their keys
    /// and the step over them had no bound).
    #[test]
    fn unread_pool_messages_are_read_a_page_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = os_rng();
        let (ann, bob, _) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let pool = ann.sync_contacts()[0].pool.clone();
        let now = crate::profile::now();
        let notices: Vec<Message> = (0..5)
            .map(|i| {
                let at = now - 100 + i;
                Message::create_expiring(
                    &bob,
                    &pool,
                    at,
                    Some(at + 3_600_000),
                    Kind::CARRYING,
                    &[1],
                    &mut rng,
                )
                .unwrap()
            })
            .collect();
        let budgets = crate::profile::budget::Budgets::default();
        let ledger = crate::profile::budget::Ledger::default();
        ann.check_and_store(
            strand_sync::Inbound::new(&pool, notices),
            &ledger,
            &budgets,
            now,
        )
        .unwrap();
        let (mut all, mut after) = (Vec::new(), None);
        loop {
            let page = ann.unread_pool(after, 2).unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last().copied() else {
                break;
            };
            after = Some(last);
            all.extend(page);
        }
        assert_eq!(all.len(), 5);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    /// The carrying state is kept in parts: each envelope sealed and
    /// written once, deleted when it goes, the small state rewritten at
    /// each step. A state an older version saved whole is read, and saved
    /// in parts from then on.
    #[test]
    fn the_carrying_state_is_kept_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = os_rng();
        let p = Profile::create(
            &dir.path().join("ben"),
            "Ben",
            "pass",
            KdfParams::insecure_for_tests(),
            &mut rng,
        )
        .unwrap();
        let (ann, cat) = (
            Identity::generate("Ann", &mut rng).unwrap(),
            Identity::generate("Cat", &mut rng).unwrap(),
        );
        let now = crate::profile::now();
        let config = CarryConfig {
            carry: true,
            ..CarryConfig::default()
        };
        // Ann hands Ben an envelope for Cat.
        let mut anns = Carrier::new(config);
        let ben = p.identity();
        anns.set_carrier(&ben.public().sign, true, now);
        let group = ann.contact(&cat.public()).unwrap();
        let m =
            Message::create(&ann, group.direct_group(), now, Kind::TEXT, b"hi", &mut rng).unwrap();
        assert!(anns.originate(&cat.public(), m, now));
        // Whole, as on a drive (over a link it is offered by header first).
        let h = anns.hand_for_drive(&ben.public(), now, &mut rng).remove(0);
        let mut bens = Carrier::new(config);
        bens.receive_envelope(&ben, &ann.public(), &h.body, now)
            .unwrap();
        assert_eq!(bens.held(), 1);

        // Saved whole, as before `carried`.
        p.set_meta_sealed(meta::CARRIER, ROLE_CARRIER, &bens.encode(), &mut rng)
            .unwrap();
        let settings = CarrySettings::default();
        let loaded = p.load_carrier(&settings).unwrap();
        assert_eq!(loaded.encode(), bens.encode());
        assert!(carried_rows(&p).is_empty());

        // Saved in parts: one row, sealed (no envelope byte in the clear).
        p.save_carrying(&loaded, Vec::new(), Vec::new(), now, &mut rng)
            .unwrap();
        let rows = carried_rows(&p);
        assert_eq!(rows.len(), 1);
        let envelope = loaded.envelopes().next().unwrap().as_bytes().to_vec();
        assert!(!rows[0]
            .1
            .windows(32)
            .any(|w| envelope.windows(32).any(|e| e == w)));
        assert_eq!(p.load_carrier(&settings).unwrap().encode(), bens.encode());
        // Another step does not write it again (a new seal would differ).
        p.save_carrying(&loaded, Vec::new(), Vec::new(), now, &mut rng)
            .unwrap();
        assert_eq!(carried_rows(&p), rows);

        // Gone from the state, gone from the file.
        let mut later = loaded.clone();
        later.expire(u64::MAX);
        p.save_carrying(&later, Vec::new(), Vec::new(), now, &mut rng)
            .unwrap();
        assert!(carried_rows(&p).is_empty());
        assert_eq!(p.load_carrier(&settings).unwrap().held(), 0);
    }
}
