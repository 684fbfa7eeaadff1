//! Carrying in a running node (PROTOCOL.md §17): strand-sync's
//! [`Carrier`] driven by the node's sessions.
//!
//! * A session comes up: the contact gets what the carrier hands it (half
//!   the copies of an envelope, or a header offer), as messages in the
//!   pair's carrying pool, which the session then syncs.
//! * A pool message arrives: the carrier reads it (a notice that the
//!   contact carries, an envelope, a request, an acknowledgement), and
//!   the message is hollowed: the envelope lives in the carrier's sealed
//!   state from then on. An envelope that opens for this user is taken in
//!   exactly as if its author had sent it over a link, and acknowledged
//!   to the contact that brought it.
//! * The peer confirms a pool message this node wrote: hollowed too, in
//!   the transaction that marks the confirmation (its link's delivery
//!   marks), as nothing would ask the peer again. It confirms one of this
//!   user's 1:1 messages: it stops spreading, at the next carrying step,
//!   or at the next start if the node stops first (the message's mark
//!   in the outbox says it was confirmed).
//! * The user sends a 1:1 text: it starts spreading.
//!
//! Every step runs on a blocking thread under one lock, and saves the
//! carrier's state with the pool messages it writes in one transaction.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use strand_sync::{
    batch_handouts, is_pool_kind, AckToken, AuthorId, Carrier, GroupId, Handout, Key, Kind,
    Message, OpenedFate, PublicIdentity, Store, Taken, Time,
};

use super::{Node, NodeEvent, Shared};
use crate::profile::budget::{Budgets, Ledger};
use crate::profile::carried::{notice, status, CarryStatus, TakenOut, Wait};
use crate::profile::telling::Tell;
use crate::{hex, ProfileError};

/// What a carrying step writes besides the carrier's state.
#[derive(Default)]
struct Job {
    /// Pool messages to write.
    out: Vec<Handout>,
    /// Pool messages read, to hollow.
    hollow: Vec<(GroupId, Key)>,
    /// This user's 1:1 messages acknowledged through carriers: marked
    /// delivered.
    delivered: Vec<(GroupId, Key)>,
    /// Contacts (by keyed id) no longer to be told whether this user
    /// carries, besides those the step writes a notice to (see
    /// `crate::profile::telling`).
    told: Vec<[u8; 32]>,
}

/// Runs `f` on a copy of the carrier on a blocking thread, one step at a
/// time; then saves the copy, writes the pool messages and hollows those
/// read, in one transaction, and only then makes the copy the carrier. A
/// step that fails changes nothing (what it read is read again). New pool
/// messages go to the live sessions.
async fn with_carrier<R: Send + 'static>(
    shared: Arc<Shared>,
    f: impl FnOnce(&Shared, &mut Carrier, &mut Job) -> Result<R, ProfileError> + Send + 'static,
) -> Result<R, ProfileError> {
    let (r, ()) = carrying_step(shared, f, |_, _| Ok(())).await?;
    Ok(r)
}

/// [`with_carrier`], running `before_save` with the pool messages the
/// step made once they are made and before anything is saved: if it
/// fails, nothing is (a drive bundle that holds them could not be
/// written, say).
async fn carrying_step<R: Send + 'static, S: Send + 'static>(
    shared: Arc<Shared>,
    f: impl FnOnce(&Shared, &mut Carrier, &mut Job) -> Result<R, ProfileError> + Send + 'static,
    before_save: impl FnOnce(&Shared, &[(GroupId, Message)]) -> Result<S, ProfileError> + Send + 'static,
) -> Result<(R, S), ProfileError> {
    tokio::task::spawn_blocking(move || {
        // Each step works on a copy: a step that panicked left nothing
        // half-done, so a poisoned lock is safe to take.
        let _step = shared
            .carry_step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut carrier = shared
            .carrier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // Nothing expired is handed on or written back (an own message
        // past its timer included: its copy here goes with it).
        carrier.step(shared.clock.now());
        let mut job = Job::default();
        let r = f(&shared, &mut carrier, &mut job)?;
        let now = shared.clock.now();
        // Offers, requests and acknowledgements for one contact share a
        // pool message, whichever steps made them.
        let out = batch_handouts(job.out);
        // The pools' counts that what the step hollows is given back to.
        let freed = shared.ledger.before_hollowing(&shared.profile, &job.hollow);
        let mut save =
            shared
                .profile
                .prepare_carrying(&carrier, out, job.hollow, now, &mut shared.rng())?;
        save.deliver(job.delivered.clone());
        save.told(job.told);
        let s = before_save(&shared, save.messages())?;
        let (keys, delivered, hollowed) = shared.profile.commit_carrying_hollowing(save)?;
        shared.ledger.hollowed(&shared.profile, freed, &hollowed);
        tell_delivered(&shared, &delivered);
        *shared
            .carrier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = carrier;
        for (group, key) in keys {
            shared.registry.announce(group, key, None);
        }
        Ok((r, s))
    })
    .await
    .map_err(|_| ProfileError::Closed)?
}

/// This user's 1:1 messages were marked delivered through carriers: the
/// user hears of each, as of one a link confirmed.
fn tell_delivered(shared: &Shared, keys: &[(GroupId, Key)]) {
    if keys.is_empty() {
        return;
    }
    let book = shared.profile.book();
    for (group, key) in keys {
        let Some((record, _)) = book.by_direct_group(group) else {
            continue;
        };
        let _ = shared.events.send(NodeEvent::Delivered {
            contact: record.name.clone(),
            group_key: None,
            id: hex(&key.id.0),
        });
    }
}

/// What the carrier hands each of `peers` now.
fn hand(shared: &Shared, carrier: &mut Carrier, peers: &[PublicIdentity], job: &mut Job) {
    let now = shared.clock.now();
    let mut rng = shared.rng();
    // Texts to a contact linked now go over the link.
    carrier.set_linked(shared.registry.connected(strand_transport::LinkKind::Relay));
    for peer in peers {
        job.out.extend(carrier.hand(peer, now, &mut rng));
    }
}

/// The contacts with a session up now, but `except`.
fn live(shared: &Shared, except: Option<&PublicIdentity>) -> Vec<PublicIdentity> {
    let up = shared.registry.connected(strand_transport::LinkKind::Relay);
    shared
        .profile
        .book()
        .sync
        .iter()
        .filter(|c| up.contains(&c.public.sign) && Some(&c.public) != except)
        .map(|c| c.public)
        .collect()
}

impl Node {
    /// Whether this user carries envelopes for contacts, with what is held.
    pub fn carry_status(&self) -> CarryStatus {
        let carrier = self.shared.carrier.lock().expect("carrier lock");
        status(
            &carrier,
            &self.shared.profile.book().sync,
            self.shared.clock.now(),
        )
    }

    /// The envelopes held for contacts, as bytes (sealed: this node
    /// cannot read them).
    pub fn carried_envelopes(&self) -> Vec<Vec<u8>> {
        let carrier = self.shared.carrier.lock().expect("carrier lock");
        carrier.envelopes().map(|e| e.as_bytes().to_vec()).collect()
    }

    /// Starts or stops carrying envelopes for contacts: saved, and every
    /// contact is told in its pool. Stopped, what is held stays until it
    /// is delivered or expires, and nothing new is taken in.
    pub async fn set_carrying(&self, on: bool) -> Result<CarryStatus, ProfileError> {
        with_carrier(self.shared.clone(), move |shared, carrier, job| {
            carrier.set_carrying(on);
            for c in &shared.profile.book().sync {
                job.out.push(notice(&c.public, on));
            }
            Ok(())
        })
        .await?;
        Ok(self.carry_status())
    }

    /// [`Node::export_bundle_reporting`] into `file`, a new file the
    /// caller made at `to` (for tests: `/dev/full`, whose writes fail as a
    /// full drive's do); deleted if anything fails. What this node carries
    /// goes to `contact` whole (see [`Carrier::hand_for_drive`]), and the
    /// hand-over is saved only once the file is written and synced: a
    /// drive that fills up or is pulled out mid-write hands nothing over.
    /// Carrying waits only while the hand-over is added at the end and
    /// the file synced, not while the conversations are written.
    #[doc(hidden)]
    pub async fn export_bundle_into(
        &self,
        contact: &str,
        file: std::fs::File,
        to: &std::path::Path,
        report: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<crate::Exported, ProfileError> {
        let exported: Result<_, ProfileError> = async {
            let report = Arc::new(report);
            let (profile, name, path) = (
                self.shared.profile.clone(),
                contact.to_owned(),
                to.to_path_buf(),
            );
            let (now, mut rng, told) = (self.shared.clock.now(), self.shared.rng(), report.clone());
            let open = tokio::task::spawn_blocking(move || {
                profile.start_bundle(&name, file, &path, now, &mut rng, &*told)
            })
            .await
            .map_err(|_| ProfileError::Closed)??;
            // Envelopes for the contact the conversations were written
            // for, even if another is called by their name by now.
            let public = open.public();
            let (_, exported) = carrying_step(
                self.shared.clone(),
                move |shared, carrier, job| {
                    let now = shared.clock.now();
                    job.out
                        .extend(carrier.hand_for_drive(&public, now, &mut shared.rng()));
                    Ok(())
                },
                move |_, extra| open.finish(extra, &*report),
            )
            .await?;
            Ok(exported)
        }
        .await;
        if exported.is_err() {
            // Written whole but not saved, or never written.
            let _ = std::fs::remove_file(to);
        }
        exported
    }

    /// Contacts were added: those still to be told whether this user
    /// carries ([`Tell::Carrying`]) are told if this user does, in the
    /// step that takes their rows away: once each, and a step that fails
    /// leaves them to the next.
    pub(crate) async fn carrying_new_contacts(&self) {
        // A carrying step only if anyone is to be told.
        let profile = self.shared.profile.clone();
        match tokio::task::spawn_blocking(move || profile.to_tell(Tell::Carrying)).await {
            Ok(Ok(due)) if !due.is_empty() => {}
            Ok(Ok(_)) | Err(_) => return,
            Ok(Err(e)) => {
                tracing::warn!("reading whom to tell that you carry failed: {e}");
                return;
            }
        }
        let result = with_carrier(self.shared.clone(), move |shared, carrier, job| {
            // Read again under the step: another may have told them.
            for (id, record) in shared.profile.to_tell(Tell::Carrying)? {
                if carrier.config().carry {
                    job.out.push(notice(&record.public, true));
                } else {
                    job.told.push(id);
                }
            }
            Ok(())
        })
        .await;
        if let Err(e) = result {
            tracing::warn!("telling a new contact that you carry failed: {e}");
        }
    }

    /// This user wrote `key` in the 1:1 group `group`: spread it sealed
    /// through carriers, starting with those linked now.
    pub(crate) async fn spread(&self, group: GroupId, key: Key) {
        let result = with_carrier(self.shared.clone(), move |shared, carrier, job| {
            let book = shared.profile.book();
            let Some((_, c)) = book.by_direct_group(&group) else {
                return Ok(());
            };
            let Some(bytes) = shared
                .profile
                .read_view()?
                .get(&group, &key)
                .map_err(crate::profile::db_error)?
            else {
                return Ok(());
            };
            let Ok(message) = Message::decode(bytes) else {
                return Ok(());
            };
            let now = shared.clock.now();
            if carrier.originate(&c.public, message, now) {
                hand(shared, carrier, &live(shared, None), job);
            }
            Ok(())
        })
        .await;
        if let Err(e) = result {
            tracing::warn!("spreading a message through carriers failed: {e}");
        }
    }
}

/// The contact `public` was deleted: this user's texts to them stop
/// spreading through carriers, and the carrier forgets them
/// ([`Carrier::forget`]).
pub(crate) async fn contact_deleted(shared: Arc<Shared>, public: PublicIdentity) {
    let result = with_carrier(shared, move |_, carrier, _| {
        let n = carrier.forget(&public);
        if n > 0 {
            tracing::info!(count = n, "texts to a deleted contact no longer spread");
        }
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::warn!("forgetting a deleted contact's carrying failed: {e}");
    }
}

/// Messages expired (a sweep deleted some): the carrier lets go of what
/// expired with them, its own copies of this user's disappearing texts
/// above all, which are otherwise kept (sealed, in `carried`) until the
/// next session or pool message.
pub(crate) async fn expired(shared: Arc<Shared>) {
    if let Err(e) = with_carrier(shared, |_, _, _| Ok(())).await {
        tracing::warn!("letting go of expired carried messages failed: {e}");
    }
}

/// At start: this user's 1:1 texts not yet delivered and not spreading
/// (written with no node running, by an older version, or dropped when
/// the carrier was full) start spreading. A text written while no node
/// ran is carried as one written while it runs.
pub(crate) async fn spread_queued(shared: Arc<Shared>) {
    let result = with_carrier(shared, move |shared, carrier, _job| {
        let book = shared.profile.book();
        let view = shared.profile.read_view()?;
        let now = shared.clock.now();
        let mut started = 0usize;
        for c in &book.sync {
            let group = c.direct_group().id;
            for key in shared.profile.undelivered(&group)? {
                // Read only what may be carried.
                let kind = view.kind(&group, &key).map_err(crate::profile::db_error)?;
                if !kind.is_some_and(strand_sync::is_carried_kind) {
                    continue;
                }
                let Some(bytes) = view.get(&group, &key).map_err(crate::profile::db_error)? else {
                    continue;
                };
                let Ok(message) = Message::decode(bytes) else {
                    continue;
                };
                if carrier.originate(&c.public, message, now) {
                    started += 1;
                }
            }
        }
        if started > 0 {
            tracing::info!(started, "queued texts spread through carriers");
        }
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::warn!("spreading queued texts through carriers failed: {e}");
    }
}

/// A session ended: the texts to its contact not yet delivered are
/// offered to the carriers linked now, unless another link to the
/// contact is up.
pub(crate) async fn session_down(shared: Arc<Shared>) {
    let result = with_carrier(shared, move |shared, carrier, job| {
        hand(shared, carrier, &live(shared, None), job);
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::warn!("handing envelopes to carriers failed: {e}");
    }
}

/// A session with `peer` came up.
pub(crate) async fn session_up(shared: Arc<Shared>, peer: PublicIdentity) {
    let result = with_carrier(shared, move |shared, carrier, job| {
        hand(shared, carrier, &[peer], job);
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::warn!("handing envelopes to a contact failed: {e}");
    }
}

/// How often texts out of envelopes that could not be taken yet
/// ([`crate::profile::carried::TakenOut::Later`]) are tried again: those
/// whose wait may be over ([`Waiting`]).
pub(crate) const RETRY_WAITING: std::time::Duration = std::time::Duration::from_secs(600);

/// Tries the waiting texts out of envelopes again, every
/// [`RETRY_WAITING`], until the node stops.
pub(crate) async fn retry_waiting(shared: Arc<Shared>) {
    let cancel = shared.cancel.clone();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RETRY_WAITING) => {}
        }
        read_unread(shared.clone()).await;
    }
}

/// Pool messages whose texts, out of envelopes sealed to this user, wait
/// to be taken ([`TakenOut::Later`]), each with what it waits for: a pass
/// over the unread pool messages ([`read_unread`]) opens one again only
/// once that may have come. Before, every pass opened each again (a key
/// agreement and the seal), checked it and logged it: a contact who
/// filled their budget here, then their pool with envelopes of their
/// texts (a gigabyte: some 870,000), cost that every ten minutes for the
/// envelopes' 30 days.
///
/// In memory only: a node's first pass reads every unread pool message
/// anyway. A row of some 100 bytes per waiting pool message still stored
/// (a pass forgets those it no longer finds), at most [`MAX_WAITING`];
/// who wrote a text is kept once per author.
#[derive(Default)]
pub(crate) struct Waiting {
    /// By pool and key.
    rows: HashMap<(GroupId, Key), Row>,
    /// The contacts whose texts wait for room, with their 1:1 groups:
    /// one entry per contact at most, so a row keeps only its place here.
    authors: Vec<(AuthorId, GroupId)>,
    /// The number of the newest pass.
    pass: u32,
}

/// A waiting pool message in [`Waiting`]: what its text waits for, and
/// the last pass that found it waiting.
struct Row {
    wait: Pending,
    seen: u32,
}

/// [`Wait`], as [`Waiting`] keeps it.
#[derive(Clone, Copy)]
enum Pending {
    /// [`Wait::Clock`].
    Clock(Time),
    /// [`Wait::Room`], its author and their group at `place` in
    /// [`Waiting::authors`].
    Room { place: usize, kind: Kind, len: u32 },
}

/// Most pool messages [`Waiting`] remembers (some 30 MB): past it, one
/// more is not remembered, which costs only opening it again at the next
/// retry. Contacts filling their pools with waiting texts cannot make
/// the node hold more.
const MAX_WAITING: usize = 1 << 18;

impl Waiting {
    /// Notes that the text out of pool message `key` in `pool` waits for
    /// `wait` (unless [`MAX_WAITING`] are remembered already).
    fn insert(&mut self, pool: GroupId, key: Key, wait: Wait) {
        if self.rows.len() >= MAX_WAITING && !self.rows.contains_key(&(pool, key)) {
            return;
        }
        let wait = match wait {
            Wait::Clock(at) => Pending::Clock(at),
            Wait::Room {
                author,
                group,
                kind,
                len,
            } => {
                let place = match self.authors.iter().position(|(a, _)| *a == author) {
                    Some(place) => place,
                    None => {
                        self.authors.push((author, group));
                        self.authors.len() - 1
                    }
                };
                Pending::Room {
                    place,
                    kind,
                    // Far shorter in fact (it came out of an envelope);
                    // cut short, it would only be read again too early.
                    len: u32::try_from(len).unwrap_or(u32::MAX),
                }
            }
        };
        self.rows.insert(
            (pool, key),
            Row {
                wait,
                seen: self.pass,
            },
        );
    }

    /// Whether the pool message `key` in `pool` is known to wait and what
    /// it waits for has not come, as `ledger` stands under `budgets` at
    /// `now`: then it is not opened again, and the newest pass found it.
    /// One whose wait may be over is forgotten, to be read again.
    fn still_waits(
        &mut self,
        pool: &GroupId,
        key: &Key,
        ledger: &Ledger,
        budgets: &Budgets,
        now: Time,
    ) -> bool {
        let Some(row) = self.rows.get_mut(&(*pool, *key)) else {
            return false;
        };
        let waits = match row.wait {
            Pending::Clock(at) => now < at,
            Pending::Room { place, kind, len } => {
                let (author, group) = &self.authors[place];
                ledger.still_over(budgets, group, author, kind, u64::from(len))
            }
        };
        if waits {
            row.seen = self.pass;
        } else {
            self.rows.remove(&(*pool, *key));
        }
        waits
    }

    /// Starts a pass over the unread pool messages; returns its number.
    fn start_pass(&mut self) -> u32 {
        self.pass = self.pass.wrapping_add(1);
        self.pass
    }

    /// Pass `pass` read every unread pool message: those it did not find
    /// are gone (taken, expired, their contact deleted) and forgotten,
    /// unless a newer pass started meanwhile (that one finds again all
    /// that still wait, and forgets in its turn). Forgetting one still
    /// there costs only one more reading of it.
    fn end_pass(&mut self, pass: u32) {
        if pass != self.pass {
            return;
        }
        self.rows.retain(|_, row| row.seen == pass);
        // The room a pool full of them took is given back once they go.
        if self.rows.len() < self.rows.capacity() / 4 {
            self.rows.shrink_to_fit();
        }
    }
}

/// [`Waiting::still_waits`] in the node, now.
fn still_waits(shared: &Shared, pool: &GroupId, key: &Key, now: Time) -> bool {
    shared
        .waiting
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .still_waits(pool, key, &shared.ledger, &shared.config.budgets, now)
}

/// What reading pool messages found: said in one line per reason, with
/// a count, not one per envelope (a contact can fill their pool with
/// envelopes whose texts wait, by the hundred thousand).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Envelopes sealed to this user that were opened.
    opened: usize,
    /// Texts out of them that wait for room in their author's budget.
    over_budget: usize,
    /// Texts out of them that wait, dated ahead of this device's clock.
    ahead: usize,
    /// Pool messages known to wait and not opened again: what they wait
    /// for has not come.
    still_waiting: usize,
    /// Messages out of them that no contact would write (from someone who
    /// is not one, or invalid): dropped.
    refused: usize,
}

impl Tally {
    /// Adds what `other` found.
    fn add(&mut self, other: Tally) {
        self.opened += other.opened;
        self.over_budget += other.over_budget;
        self.ahead += other.ahead;
        self.still_waiting += other.still_waiting;
        self.refused += other.refused;
    }

    /// Counts a text that waits for `wait`.
    fn waits(&mut self, wait: &Wait) {
        match wait {
            Wait::Clock(_) => self.ahead += 1,
            Wait::Room { .. } => self.over_budget += 1,
        }
    }

    /// Says what was found to wait, once per reason, naming no one (as a
    /// link's declines are said).
    fn log(&self) {
        if self.over_budget > 0 {
            tracing::warn!(
                count = self.over_budget,
                "messages out of envelopes wait: over their authors' storage budget (raise it with --budget-per-contact)"
            );
        }
        if self.ahead > 0 {
            tracing::warn!(
                count = self.ahead,
                "messages out of envelopes wait: dated ahead of this device's clock"
            );
        }
        if self.refused > 0 {
            tracing::warn!(
                count = self.refused,
                "envelopes opened to messages no contact would write: dropped"
            );
        }
        if self.opened > 0 || self.still_waiting > 0 {
            tracing::debug!(
                opened = self.opened,
                still_waiting = self.still_waiting,
                "carrying pools read"
            );
        }
    }
}

/// Reads the pool messages a node stopped before reading (at start), and
/// those kept to be read again: one known to wait ([`Waiting`]) only once
/// what it waits for may have come. Says what waits once for the whole
/// pass, and returns what it found.
pub(crate) async fn read_unread(shared: Arc<Shared>) -> Tally {
    // A page at a time: a contact's budget holds millions.
    const PAGE: usize = 4096;
    let pass = shared
        .waiting
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .start_pass();
    let mut tally = Tally::default();
    let mut after = None;
    let read_all = loop {
        let s = shared.clone();
        // Those known to wait are passed over here, on a blocking thread
        // (the ledger may be busy): a page of them costs no carrying step.
        let page = tokio::task::spawn_blocking(move || {
            let mut items = s.profile.unread_pool(after, PAGE)?;
            let (full, last) = (items.len() == PAGE, items.last().copied());
            let (listed, now) = (items.len(), s.clock.now());
            items.retain(|(group, key)| !still_waits(&s, group, key, now));
            Ok::<_, ProfileError>((full, last, listed - items.len(), items))
        })
        .await;
        match page {
            Ok(Ok((full, last, still_waiting, items))) => {
                tally.still_waiting += still_waiting;
                if !items.is_empty() {
                    tally.add(take_pool_messages(shared.clone(), items).await);
                }
                if !full {
                    break true;
                }
                after = last;
            }
            Ok(Err(e)) => {
                tracing::warn!("reading the carrying pools failed: {e}");
                break false;
            }
            Err(_) => break false,
        }
    };
    if read_all {
        shared
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .end_pass(pass);
    }
    tally.log();
    tally
}

/// The peer confirmed holding messages this node wrote: its 1:1
/// messages among them stop spreading. (Its pool messages were hollowed
/// when the confirmation was marked, `crate::Profile::confirmed_async`;
/// a 1:1 message's mark is written then too, and the carrier loaded at
/// the next start stops it spreading if this step never comes:
/// `crate::Profile::load_carrier`.)
pub(crate) async fn confirmed(shared: Arc<Shared>, items: Vec<(GroupId, Key)>) {
    let direct: Vec<Key> = {
        let book = shared.profile.book();
        items
            .into_iter()
            .filter(|(group, _)| book.sync.iter().any(|c| c.direct_group().id == *group))
            .map(|(_, key)| key)
            .collect()
    };
    if direct.is_empty() {
        return;
    }
    let result = with_carrier(shared, move |_, carrier, _| {
        for key in &direct {
            carrier.delivered(&key.id);
        }
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::warn!("recording what a contact holds failed: {e}");
    }
}

/// Pool messages `items` arrived from `peer`'s session and were stored.
pub(crate) async fn pool_received(shared: Arc<Shared>, items: Vec<(GroupId, Key)>) {
    take_pool_messages(shared, items).await.log();
}

/// Reads the stored pool messages `items` (see [`pool_received`]), but
/// those known to wait whose wait is not over; returns what it found.
async fn take_pool_messages(shared: Arc<Shared>, items: Vec<(GroupId, Key)>) -> Tally {
    let node = Node {
        shared: shared.clone(),
    };
    // Messages out of envelopes are stored as they open: the user hears
    // of them even if a later step (saving the carrying state) fails, as
    // a retry would find them stored and say nothing.
    let opened_here = Arc::new(std::sync::Mutex::new(Vec::new()));
    let opened_out = opened_here.clone();
    let result = with_carrier(shared, move |shared, carrier, job| {
        let profile = &shared.profile;
        let identity = profile.identity();
        let now = shared.clock.now();
        let mut pass_on = false;
        let mut hand_back = Vec::new();
        let mut tally = Tally::default();
        let opened = &opened_here;
        for (group, key) in items {
            // Known to wait, and what for has not come (a text taken
            // earlier in this step may have taken the room there was).
            if still_waits(shared, &group, &key, now) {
                tally.still_waiting += 1;
                continue;
            }
            let Some(pm) = profile.read_pool(&group, &key)? else {
                continue;
            };
            if pm.message.author() == identity.public().sign || !is_pool_kind(pm.message.kind()) {
                continue;
            }
            job.hollow.push((group, key));
            let from = pm.from;
            let taken = match carrier.take(&identity, &from, &pm.message, &pm.body, now) {
                Ok(taken) => taken,
                Err(e) => {
                    tracing::debug!("a carrying message refused: {e}");
                    continue;
                }
            };
            match taken {
                Taken::Carrier => hand_back.push(from),
                Taken::Write(out) => job.out.extend(out),
                Taken::Acknowledged { out, delivered } => {
                    job.out.extend(out);
                    job.delivered.extend(delivered);
                }
                Taken::Held { evicted } => {
                    if evicted > 0 {
                        tracing::info!(evicted, "carrying budget full: oldest envelopes dropped");
                    }
                    pass_on = true;
                }
                Taken::Opened {
                    message,
                    token,
                    expires,
                } => {
                    tally.opened += 1;
                    let out = opened_out_of(
                        shared,
                        carrier,
                        job,
                        opened,
                        (message, token, expires),
                        &from,
                        now,
                    )?;
                    match out {
                        OutOfEnvelope::Taken => {}
                        OutOfEnvelope::Waits(wait) => {
                            // The pool message stays whole, to be read
                            // again once what it waits for may have come
                            // (its holder offers it no more).
                            job.hollow.pop();
                            tally.waits(&wait);
                            shared
                                .waiting
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .insert(group, key, wait);
                        }
                        // Said once for the whole pass, with a count.
                        OutOfEnvelope::Refused => tally.refused += 1,
                    }
                }
                Taken::Nothing => {}
            }
        }
        if pass_on {
            hand(shared, carrier, &live(shared, None), job);
        } else if !hand_back.is_empty() {
            hand(shared, carrier, &hand_back, job);
        }
        Ok(tally)
    })
    .await;
    let tally = result.unwrap_or_else(|e| {
        tracing::warn!("taking in carrying messages failed: {e}");
        Tally::default()
    });
    let opened = std::mem::take(
        &mut *opened_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for (author, key) in opened {
        node.opened(&author, key);
    }
    tally
}

/// What [`opened_out_of`] did with a message out of an envelope.
enum OutOfEnvelope {
    /// Stored (or here already) and acknowledged.
    Taken,
    /// To be taken again later, once what it waits for may have come
    /// (over budget, or from the future: its envelope must not be let
    /// go).
    Waits(Wait),
    /// No contact would write it: dropped.
    Refused,
}

/// A message came out of an envelope from `from`: stored and acknowledged
/// if a contact wrote it ([`strand_sync::opened_author`]); if it is new,
/// `opened` says so.
fn opened_out_of(
    shared: &Shared,
    carrier: &mut Carrier,
    job: &mut Job,
    opened: &std::sync::Mutex<Vec<(PublicIdentity, Key)>>,
    (message, token, expires): (Message, AckToken, Time),
    from: &PublicIdentity,
    now: Time,
) -> Result<OutOfEnvelope, ProfileError> {
    let taken = shared
        .profile
        .take_opened(message, &shared.ledger, &shared.config.budgets, now)?;
    let (fate, out) = match taken {
        TakenOut::Taken { author, key, new } => {
            if new {
                opened
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((author, key));
            }
            (OpenedFate::Taken, OutOfEnvelope::Taken)
        }
        // Said once for the whole pass, with a count (see `Tally`).
        TakenOut::Later(wait) => (OpenedFate::Later, OutOfEnvelope::Waits(wait)),
        // Said once for the whole pass too: one each was a warning per
        // envelope, a pool full of them a million lines.
        TakenOut::Refused => (OpenedFate::Refused, OutOfEnvelope::Refused),
    };
    // Acknowledged to `from` if taken, kept to open again if it waits.
    job.out
        .extend(carrier.settle_opened(from, &token, expires, fate));
    Ok(out)
}

impl Node {
    /// A message that came out of an envelope was stored: live sessions
    /// get it, and the user sees it.
    fn opened(&self, author: &PublicIdentity, key: Key) {
        let shared = &self.shared;
        let book = shared.profile.book();
        // Named as they are called now.
        let Some((r, c)) = book.sync_contact(author) else {
            return;
        };
        let group = c.direct_group();
        shared.registry.announce(group.id, key, None);
        let text = shared
            .profile
            .message_text(group, &key)
            .ok()
            .flatten()
            .unwrap_or_default();
        tracing::info!("a message arrived by envelope");
        let event = NodeEvent::received(r.name.clone(), None, None, &key, &text);
        let _ = shared.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// Holds `node`'s carrying step (a long step) on a thread of its own
    /// until the sender returned is sent to or dropped; returns once held.
    fn hold_carry_step(node: &Node) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (free_tx, free_rx) = std::sync::mpsc::channel::<()>();
        let shared = node.shared.clone();
        let busy = std::thread::spawn(move || {
            let _step = shared.carry_step.lock().unwrap();
            held_tx.send(()).unwrap();
            let _ = free_rx.recv();
        });
        held_rx.recv().unwrap();
        (free_tx, busy)
    }

    use super::*;

    async fn within(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ann, Ben and Cat, each the others' contacts, in `root`.
    fn three(root: &std::path::Path) -> [crate::Profile; 3] {
        let rng = &mut crate::profile::os_rng();
        let [ann, ben, cat] = ["ann", "ben", "cat"].map(|name| {
            crate::Profile::create(
                &root.join(name),
                name,
                "pass",
                crate::KdfParams::insecure_for_tests(),
                rng,
            )
            .unwrap()
        });
        for (a, b) in [(&ann, &ben), (&ben, &cat), (&ann, &cat)] {
            a.add_contact(&b.identity().invite(), b.identity().name(), 0, rng)
                .unwrap();
            b.add_contact(&a.identity().invite(), a.identity().name(), 0, rng)
                .unwrap();
        }
        [ann, ben, cat]
    }

    /// A contact's pool messages that arrive while the carrier is busy
    /// wait in their link for its one carrying job, merged (and past
    /// `MAX_POOL_WAITING` the link stops reading). Before, every stored
    /// batch holding pool messages spawned a job of its own, each holding
    /// a blocking thread while it waited for the carrier: a fast contact
    /// could queue them without bound. Once the carrier is free, nothing
    /// is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_contact_cannot_queue_carrying_jobs_without_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let [ann, ben, _cat] = three(tmp.path());
        let hub = strand_transport::memory::Hub::new();
        let config = || super::super::NodeConfig {
            emulated: Some(hub.clone()),
            ..Default::default()
        };
        let ann = Node::start(ann, config()).await.unwrap();
        let ben = Node::start(ben, config()).await.unwrap();
        ben.set_carrying(true).await.unwrap();
        within("Ann learns Ben carries", || {
            ann.carry_status().carriers == 1
        })
        .await;
        // Ben's carrier is busy (a long step) until told.
        let (free_tx, busy) = hold_carry_step(&ben);
        let tasks = ben.shared.tasks.len();
        // Each text is offered to Ben in a pool message of its own, and
        // each reaches him in a batch of its own.
        const TEXTS: usize = 24;
        for i in 0..TEXTS {
            ann.send("cat", &format!("text {i}")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        let unread = |node: &Node| node.shared.profile.unread_pool(None, 4096).unwrap().len();
        within("Ben stores Ann's offers while his carrier is busy", || {
            unread(&ben) == TEXTS
        })
        .await;
        let more = ben.shared.tasks.len().saturating_sub(tasks);
        assert!(
            more <= 2,
            "{more} more tasks while the carrier was busy ({} pool messages stored)",
            unread(&ben)
        );
        free_tx.send(()).unwrap();
        busy.join().unwrap();
        within("Ben takes every text once the carrier is free", || {
            ben.carry_status().held == TEXTS
        })
        .await;
        ann.shutdown().await;
        ben.shutdown().await;
    }

    /// How many of `node`'s own messages in `pool` are whole (not
    /// hollow).
    fn whole_own(node: &Node, pool: &GroupId) -> usize {
        let me = node.shared.profile.identity().public().sign;
        let view = node.shared.profile.read_view().unwrap();
        let mut keys = Vec::new();
        view.scan(pool, &strand_sync::KeyRange::ALL, &mut |k| {
            keys.push(*k);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        keys.iter()
            .filter_map(|k| view.get(pool, k).unwrap())
            .filter(|bytes| Message::decode(bytes.clone()).is_ok_and(|m| m.author() == me))
            .count()
    }

    /// How many of this user's texts `node`'s carrier keeps to spread.
    fn spreading(node: &Node) -> usize {
        let s = node.carry_status();
        s.spreading + s.held_back + s.waiting
    }

    /// Regression (crash audit: a contact's confirmations waited in
    /// memory for the next carrying step). Ann carries (a notice to Ben
    /// in their pool) and wrote Ben a text, which spreads. Her carrier
    /// is busy when Ben comes; he confirms holding both, and her node is
    /// killed (her profile closed, so nothing more is written) before any
    /// carrying step runs. The notice is hollow before the kill and
    /// after, and at her next start the text no longer spreads. Before,
    /// both confirmations waited for a carrying step, and the kill lost
    /// them: the notice stayed whole for good (a pool message is never
    /// asked about again; one with an expiry stayed until it expired),
    /// and the text, marked delivered, spread to carriers until it
    /// expired.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_a_contact_confirmed_before_a_kill_is_not_lost() {
        let tmp = tempfile::tempdir().unwrap();
        let [ann, ben, _cat] = three(tmp.path());
        let ann_dir = ann.dir().to_path_buf();
        let with_ben = ann
            .sync_contacts()
            .into_iter()
            .find(|c| c.public == ben.identity().public())
            .unwrap();
        let (pool, direct) = (with_ben.pool.id, with_ben.direct_group().id);
        let hub = strand_transport::memory::Hub::new();
        let config = || super::super::NodeConfig {
            emulated: Some(hub.clone()),
            ..Default::default()
        };
        let ann = Node::start(ann, config()).await.unwrap();
        ann.set_carrying(true).await.unwrap();
        let key = ann.send("ben", "still there?").await.unwrap();
        assert!(whole_own(&ann, &pool) > 0, "the notice to Ben");
        assert_eq!(spreading(&ann), 1, "the text");

        // Ann's carrier is busy (a long step) until her node is killed.
        let (free_tx, busy) = hold_carry_step(&ann);
        let ben = Node::start(ben, config()).await.unwrap();
        within("Ben's confirmation of the text is marked", || {
            ann.shared.profile.delivery(&direct, &key).unwrap() == Some(crate::Delivery::Delivered)
        })
        .await;
        within(
            "the notice Ben confirmed is hollow, with no carrying step",
            || whole_own(&ann, &pool) == 0,
        )
        .await;
        assert_eq!(spreading(&ann), 1, "no carrying step ran");

        // Killed: nothing is written from here on, and the steps waiting
        // for the carrier fail.
        let profile = ann.shared.profile.clone();
        tokio::task::spawn_blocking(move || profile.close())
            .await
            .unwrap();
        free_tx.send(()).unwrap();
        busy.join().unwrap();
        ann.shutdown().await;
        ben.shutdown().await;

        let ann = Node::start(crate::Profile::open(&ann_dir, "pass").unwrap(), config())
            .await
            .unwrap();
        assert_eq!(whole_own(&ann, &pool), 0, "the notice stays hollow");
        assert_eq!(spreading(&ann), 0, "the text no longer spreads");
        ann.shutdown().await;
    }

    /// A disappearing text that carriers could take is kept by this
    /// device's carrier (sealed, in `carried`) while it spreads. When its
    /// time is up, the sweep deletes the text and now the carrier's copy
    /// with it, with no session meanwhile. Before, the copy stayed until
    /// the next session or pool message (with no contact in reach, for
    /// good), readable by anyone who later opened the profile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_disappearing_text_leaves_no_carried_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, _bob, _) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let rng = &mut crate::profile::os_rng();
        let min = 60_000;
        let now = crate::profile::now();
        p.set_timer("Bob", Some(5 * min), now - 10 * min, rng)
            .unwrap();
        // Written (as if) under the 5-minute timer 4 min 56 s ago.
        p.write("Bob", "gone soon", now - 5 * min + 4_000, rng)
            .unwrap();
        let node = Node::start(
            p,
            super::super::NodeConfig {
                emulated: Some(strand_transport::memory::Hub::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let parts = |node: &Node| node.shared.profile.part_rows().unwrap().len();
        within("the text spreads", || parts(&node) > 0).await;
        within("the text is deleted", || {
            node.shared.profile.conversation("Bob").unwrap().is_empty()
        })
        .await;
        within("and the carrier's copy with it", || parts(&node) == 0).await;
        node.shutdown().await;
    }

    /// What a test's log subscriber wrote.
    #[derive(Clone, Default)]
    struct Journal(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Journal {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Journal {
        /// The lines that say texts out of envelopes wait.
        fn waits(&self) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .lines()
                .filter(|l| l.contains("envelope") && l.contains("wait"))
                .map(str::to_owned)
                .collect()
        }

        /// The lines that say messages out of envelopes were dropped.
        fn refused(&self) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .lines()
                .filter(|l| l.contains("no contact would write"))
                .map(str::to_owned)
                .collect()
        }
    }

    /// `envelope`, handed by `from` to the device whose pool with them is
    /// `pool` for delivery (its mode, then the envelope), at `at`.
    fn handed_over(
        from: &strand_sync::Identity,
        pool: &strand_sync::Group,
        envelope: &strand_sync::Envelope,
        at: u64,
        rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
    ) -> Message {
        let mut body = vec![1u8];
        body.extend_from_slice(envelope.as_bytes());
        Message::create_expiring(
            from,
            pool,
            at,
            Some(envelope.expires()),
            Kind::ENVELOPE,
            &body,
            rng,
        )
        .unwrap()
    }

    /// A node whose every thread, the blocking threads its carrying steps
    /// run on included, logs to `journal` (debug and up). The second
    /// dispatcher it gives, logging nowhere, is kept as long as the test
    /// reads the journal: while only one dispatcher lives, tracing-core weighs a
    /// place logged at for the first time by the logging thread's own
    /// dispatcher alone, and another test's thread, with none, logging
    /// first where this node logs would mark the place logged by no one.
    fn logging_to(
        journal: &Journal,
    ) -> (
        tracing::Dispatch,
        tokio::runtime::Runtime,
        tracing::Dispatch,
    ) {
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer({
                    let journal = journal.clone();
                    move || journal.clone()
                })
                .finish(),
        );
        let weighed_by_all = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        tracing::callsite::rebuild_interest_cache();
        let runtime = {
            let dispatch = dispatch.clone();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .on_thread_start(move || {
                    std::mem::forget(tracing::dispatcher::set_default(&dispatch));
                })
                .build()
                .unwrap()
        };
        (dispatch, runtime, weighed_by_all)
    }

    /// Bob hands Alice 20 envelopes sealed to her, each holding a text
    /// Mallory wrote, who is no contact of hers. Her node's first pass
    /// opens them all and says once, with a count, that what they held
    /// was dropped, naming no one. Before, it logged a warning for each
    /// (20 here; for a contact who fills their pool with such envelopes,
    /// some 870,000 lines).
    #[test]
    fn envelopes_no_contact_wrote_are_said_once_per_pass() {
        use strand_sync::{Envelope, WriteStore};
        const N: usize = 20;
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, _) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let rng = &mut crate::profile::os_rng();
        let t0 = crate::profile::now();
        let alice = p.identity().public();
        let pool = bob.contact(&alice).unwrap().pool;
        let mallory = strand_sync::Identity::generate("Mallory", rng).unwrap();
        let theirs = mallory.contact(&alice).unwrap().direct_group().clone();
        let mut store = p.store().unwrap();
        for i in 0..N {
            let at = t0 - 1_000 + i as u64;
            let text =
                Message::create(&mallory, &theirs, at, Kind::TEXT, b"let me in", rng).unwrap();
            let envelope = Envelope::seal(&alice, &text, t0 + 3_600_000, 1, rng).unwrap();
            store
                .insert(&pool.id, &handed_over(&bob, &pool, &envelope, at, rng))
                .unwrap();
        }
        store.commit().unwrap();
        drop(store);

        let journal = Journal::default();
        let (dispatch, runtime, _weighed_by_all) = logging_to(&journal);
        let config = super::super::NodeConfig {
            emulated: Some(strand_transport::memory::Hub::new()),
            deterministic: Some((t0, 1)),
            ..Default::default()
        };
        tracing::dispatcher::with_default(&dispatch, || {
            runtime.block_on(async move {
                let node = Node::start(p, config).await.unwrap();
                within("the first pass opens every envelope", || {
                    node.carry_status().opened == N as u64
                })
                .await;
                within("and says what they held was dropped", || {
                    !journal.refused().is_empty()
                })
                .await;
                let said = journal.refused();
                assert_eq!(said.len(), 1, "once, not once per envelope: {said:#?}");
                assert!(said[0].contains(&format!("count={N}")), "{said:#?}");
                node.shutdown().await;
            })
        });
    }

    /// Bob, over his budget here, has 20 envelopes sealed to Alice in
    /// their pool, each holding a text of his. Her node's first pass opens
    /// them all and says once, with a count, that 20 wait; the next pass
    /// (as every ten minutes) opens none of them again and says nothing;
    /// once a sweep gives room back in his budget, the next pass takes all
    /// 20. Before, every pass opened each envelope again and logged a
    /// warning for each (20 and 20 here; for a contact who fills a pool,
    /// some 870,000 every ten minutes for the envelopes' 30 days).
    #[test]
    fn envelopes_that_wait_are_not_opened_again_until_they_can_be_taken() {
        use strand_sync::{Envelope, WriteStore};
        const N: usize = 20;
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let rng = &mut crate::profile::os_rng();
        let t0 = crate::profile::now();
        let alice = p.identity().public();
        let pool = bob.contact(&alice).unwrap().pool;
        let budgets = Budgets {
            per_contact: 64 << 10,
            ..Budgets::default()
        };
        // Bob's budget is full but for 100 bytes, less than any text of
        // his, with a text that disappears in a minute (written four
        // minutes ago under a five-minute timer).
        let room = 100;
        let disappearing = |body: &[u8], rng: &mut rand_chacha::ChaCha20Rng| {
            Message::create_expiring(
                &bob,
                &group,
                t0 + 60_000 - strand_sync::MIN_TIMER,
                Some(t0 + 60_000),
                Kind::TEXT,
                body,
                rng,
            )
            .unwrap()
        };
        let overhead = disappearing(b"x".as_slice(), &mut *rng).as_bytes().len() - 1;
        let filler = disappearing(
            vec![b'x'; budgets.per_contact as usize - room - overhead].as_slice(),
            &mut *rng,
        );
        let texts: Vec<Message> = (0..N)
            .map(|i| {
                let body = format!("carried {i}");
                Message::create(
                    &bob,
                    &group,
                    t0 - 1_000 + i as u64,
                    Kind::TEXT,
                    body.as_bytes(),
                    rng,
                )
                .unwrap()
            })
            .collect();
        assert!(texts.iter().all(|t| t.as_bytes().len() > room));
        let mut store = p.store().unwrap();
        store.insert(&group.id, &filler).unwrap();
        for (i, text) in texts.iter().enumerate() {
            let envelope = Envelope::seal(&alice, text, t0 + 3_600_000, 1, rng).unwrap();
            let at = t0 - 1_000 + i as u64;
            store
                .insert(&pool.id, &handed_over(&bob, &pool, &envelope, at, rng))
                .unwrap();
        }
        store.commit().unwrap();
        drop(store);

        let journal = Journal::default();
        let (dispatch, runtime, _weighed_by_all) = logging_to(&journal);
        let config = super::super::NodeConfig {
            emulated: Some(strand_transport::memory::Hub::new()),
            deterministic: Some((t0, 1)),
            budgets,
            ..Default::default()
        };
        tracing::dispatcher::with_default(&dispatch, || {
            runtime.block_on(async move {
                let node = Node::start(p, config).await.unwrap();
                let shared = node.shared.clone();
                let carried = || {
                    let all = shared.profile.conversation("Bob").unwrap();
                    all.into_iter()
                        .filter(|m| m.text.starts_with("carried"))
                        .count()
                };
                within("the first pass opens every envelope", || {
                    node.carry_status().opened == N as u64
                })
                .await;
                within("and says that their texts wait", || {
                    !journal.waits().is_empty()
                })
                .await;
                let said = journal.waits();
                assert_eq!(said.len(), 1, "once, not once per envelope: {said:#?}");
                assert!(said[0].contains(&format!("count={N}")), "{said:#?}");
                assert_eq!(carried(), 0, "over budget");

                // The next retry: nothing has changed.
                let pass = read_unread(shared.clone()).await;
                assert_eq!(pass.opened, 0, "opened again: {pass:?}");
                assert_eq!(pass.still_waiting, N, "{pass:?}");
                assert_eq!(journal.waits(), said, "said again");

                // Bob's disappearing text goes: room in his budget.
                let s = shared.clone();
                let sweep = move || s.ledger.sweep(&s.profile, t0 + 120_000);
                let swept = tokio::task::spawn_blocking(sweep).await.unwrap().unwrap();
                assert!(swept.count() >= 1, "the disappearing text");
                let pass = read_unread(shared.clone()).await;
                assert_eq!((pass.opened, pass.over_budget), (N, 0), "{pass:?}");
                assert_eq!(carried(), N, "every text taken");
                assert!(shared.profile.unread_pool(None, 4096).unwrap().is_empty());
                assert!(shared.waiting.lock().unwrap().rows.is_empty());
                node.shutdown().await;
            })
        });
    }

    /// [`Waiting`] on its own: a text dated ahead is read again once this
    /// clock reaches its time, one over a budget the ledger no longer
    /// counts is read again at once, and a pass that did not find a pool
    /// message forgets it, unless a newer pass started meanwhile.
    /// However many pool messages wait, [`Waiting`] remembers at most
    /// [`MAX_WAITING`]; one more is read again at the next retry. Those it
    /// holds still wait.
    #[test]
    fn waiting_remembers_a_bounded_number() {
        let (ledger, budgets) = (Ledger::default(), Budgets::default());
        let pool = GroupId([1; 32]);
        let key = |n: usize| Key {
            time: n as u64,
            id: strand_sync::MessageId([0; 32]),
        };
        let mut waiting = Waiting::default();
        waiting.start_pass();
        for n in 0..MAX_WAITING + 10 {
            waiting.insert(pool, key(n), Wait::Clock(1_000));
        }
        assert_eq!(waiting.rows.len(), MAX_WAITING);
        assert!(waiting.still_waits(&pool, &key(0), &ledger, &budgets, 0));
        assert!(!waiting.still_waits(&pool, &key(MAX_WAITING), &ledger, &budgets, 0));
    }

    #[test]
    fn a_waiting_pool_message_is_read_again_once_its_wait_may_be_over() {
        let (ledger, budgets) = (Ledger::default(), Budgets::default());
        let pool = GroupId([1; 32]);
        let key = |n: u8| Key {
            time: 5,
            id: strand_sync::MessageId([n; 32]),
        };
        let mut waiting = Waiting::default();
        let waits = |w: &mut Waiting, n: u8, now: Time| {
            w.still_waits(&pool, &key(n), &ledger, &budgets, now)
        };
        let first = waiting.start_pass();
        waiting.insert(pool, key(1), Wait::Clock(1_000));
        waiting.insert(pool, key(2), Wait::Clock(1_000));
        assert!(waits(&mut waiting, 1, 999));
        assert!(!waits(&mut waiting, 1, 1_000), "its time came");
        assert!(!waits(&mut waiting, 1, 0), "forgotten, to be read");
        waiting.insert(
            pool,
            key(3),
            Wait::Room {
                author: [2; 32],
                group: GroupId([3; 32]),
                kind: Kind::TEXT,
                len: 200,
            },
        );
        assert!(
            !waits(&mut waiting, 3, 0),
            "not counted: only a reading tells"
        );
        waiting.end_pass(first);
        assert_eq!(waiting.rows.len(), 1, "the second, found in that pass");
        let second = waiting.start_pass();
        let third = waiting.start_pass();
        waiting.end_pass(second);
        assert_eq!(waiting.rows.len(), 1, "a newer pass runs");
        waiting.end_pass(third);
        assert!(waiting.rows.is_empty(), "not found: gone");
    }
}
