//! Reaching contacts through relays: the relays this node reserves on, and
//! dialling each contact who is not connected through the relays they
//! announced.
//!
//! A contact's [`Reach`] record gives their relays and the seed of their
//! relay identities; their id at a relay in an epoch is
//! `peer_id_of(relay_key(seed, epoch))`. A contact with no session up is
//! dialled through each of their relays under their id of the epoch this
//! node's relay client dials in, and no other: clocks differ a little,
//! and the relay client covers that by reserving under the next epoch's
//! id before the turn and keeping the old one after it
//! ([`EPOCH_MARGIN`]), so a relay never sees one of this device's ids ask
//! for two ids of a contact, nor two of its ids ask for the same id of a
//! contact. (A peer the user named by a circuit address is dialled at that
//! address, the same id in every epoch: [`Node::add_peer`].) Of two
//! contacts who both have relays, the one whose relay id is smaller dials
//! at once and the other [`RELAY_DIAL_DEFER`] later, so one meeting makes
//! one link. Failed attempts back off from [`RELAY_MIN_BACKOFF`] to
//! [`RELAY_MAX_BACKOFF`];
//! a session's end, a new record, a new reservation of ours, or the turn
//! of the epoch (an attempt it cut short included) tries again at once (a
//! contact's records that links bring are taken one a minute at most:
//! [`Node::reach_record_arrived`]).
//!
//! [`EPOCH_MARGIN`]: strand_transport::relay::EPOCH_MARGIN
//! [`RELAY_DIAL_DEFER`]: crate::runtime::limits::RELAY_DIAL_DEFER
//! [`RELAY_MIN_BACKOFF`]: crate::runtime::limits::RELAY_MIN_BACKOFF
//! [`RELAY_MAX_BACKOFF`]: crate::runtime::limits::RELAY_MAX_BACKOFF

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strand_sync::relay_key;
use strand_sync::{PublicIdentity, Reach};
use strand_transport::relay::server::PeerFilter;
use strand_transport::relay::{circuit_addr, is_relay_addr, peer_id_of, Dialler, IdentityFn};
use strand_transport::{Multiaddr, PeerId, Relays, TransportError};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::guard::Dial;
use super::{Clock, Node};
use crate::chain;
use crate::runtime::limits::{
    RELAY_DIAL_DEFER as DIAL_DEFER, RELAY_MAX_BACKOFF as MAX_BACKOFF,
    RELAY_MIN_BACKOFF as MIN_BACKOFF,
};
use crate::{ContactRecord, Profile};

/// Where a contact can be reached through relays.
#[derive(Debug, Clone)]
struct Target {
    name: String,
    seed: [u8; 32],
    relays: Vec<Multiaddr>,
    offers: Vec<Multiaddr>,
    next: Instant,
    backoff: Duration,
    busy: bool,
}

/// What the node knows of its contacts' relays.
#[derive(Default)]
pub(crate) struct Reachability {
    targets: Mutex<HashMap<PublicIdentity, Target>>,
    pub(crate) wake: Notify,
    /// Bumped whenever a record changes.
    version: AtomicU64,
    last_retry: Mutex<Option<Instant>>,
    /// Per contact, when a record of theirs that a link brought was last
    /// taken, and whether a later one waits ([`Reachability::arrived`]).
    arrived: Mutex<HashMap<PublicIdentity, (Instant, bool)>>,
}

/// How often, at most, a contact's new reach record that a link brings
/// is taken. Each new one with other offers makes the node give up
/// reservations and reserve on the relays it names, and each dials the
/// contact through their relays at once: a contact sending one record
/// after another (a few bytes each, two sets of offers in turn) made the
/// node dial hosts of their choosing as fast as they sent. A real record
/// changes when a device's relays do, far less often; one that waits is
/// taken (the newest by then) when the minute is up.
pub(crate) const REACH_RECORD_EVERY: Duration = Duration::from_secs(60);

/// How long after a turn of the epoch (by the relay client's clock) the
/// dialling loop wakes to try contacts under their new ids: time for the
/// client's own look at the clock to turn first.
const TURN_SLACK: Duration = Duration::from_secs(2);

/// The longest the dialling loop sleeps: it wakes earlier for a contact
/// whose backoff ends, and just after a turn of the epoch
/// ([`longest_sleep`]).
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

/// How long the dialling loop sleeps at most, the next turn of the epoch
/// by the relay client's clock `until_turn` away ([`Relays::until_turn`]):
/// [`LONGEST_SLEEP`], and no longer than until just after that turn
/// ([`TURN_SLACK`]), when every contact not connected is tried under
/// their new ids (nothing else wakes the loop then: the new id reserved
/// a margin before the turn).
fn longest_sleep(until_turn: Duration) -> Duration {
    LONGEST_SLEEP.min(until_turn + TURN_SLACK)
}

/// Whether a dial's error ended an attempt because the epoch turned under
/// it, so the contact is tried again at once under their new ids. The
/// dialler refuses every dial ([`TransportError::Stopped`]) once its
/// generation dials no more: that is a turn only if the relay client's
/// epoch has moved past the dialler's. With the epoch unmoved the
/// generation has stopped (its task ended), and the refusal is a failure
/// like any other, with its backoff: taken for a turn, it had the contact
/// dialled again at once, in a loop bounded only by contact-dial tokens.
fn cut_by_turn(error: &TransportError, relays: &Relays, dialler: &Dialler) -> bool {
    matches!(error, TransportError::Stopped) && relays.epoch() != dialler.epoch()
}

/// Whether a contact's reach record that a link brought is taken now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrived {
    /// Now.
    Now,
    /// At this time (the newest record then): one was taken within
    /// [`REACH_RECORD_EVERY`].
    At(Instant),
    /// With one already waiting.
    Waiting,
}

/// Relays contacts offer that this node reserves on, at most.
pub const MAX_BORROWED_RELAYS: usize = 4;

/// How often a new reservation may make the node try every contact again.
const RETRY_ALL_EVERY: Duration = Duration::from_secs(30);

/// The relay addresses in a record's list: those that decode and that
/// this node's relay client can dial a relay at ([`is_relay_addr`], the
/// rule its dials follow). What a contact wrote (in a record or their
/// invite) is checked like anything from the wire: the rest is left out,
/// so it is neither tried nor reserved on.
fn addrs(list: &[Vec<u8>]) -> Vec<Multiaddr> {
    list.iter()
        .filter_map(|b| Multiaddr::try_from(b.clone()).ok())
        .filter(is_relay_addr)
        .collect()
}

impl Reachability {
    /// Reads every contact's newest record.
    pub(crate) fn load(profile: &Profile) -> Reachability {
        let r = Reachability::default();
        for c in profile.contacts() {
            r.update(profile, &c);
        }
        r
    }

    /// Dials `contact` through relays no more (they have no record, or are
    /// no longer a contact). Returns whether they were dialled (their
    /// offers, if any, are gone).
    pub(crate) fn forget(&self, contact: &PublicIdentity) -> bool {
        let mut t = self.targets.lock().expect("targets lock");
        let had = t.remove(contact).is_some();
        self.version.fetch_add(1, Ordering::Relaxed);
        had
    }

    /// Re-reads one contact's record (a new one arrived). Returns whether
    /// their offers changed.
    pub(crate) fn update(&self, profile: &Profile, contact: &ContactRecord) -> bool {
        let reach: Option<Reach> = match profile.contact_reach(contact) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("reading a contact's relays failed: {e}");
                return false;
            }
        };
        let Some(reach) = reach else {
            return self.forget(&contact.public);
        };
        let mut t = self.targets.lock().expect("targets lock");
        let relays = addrs(&reach.relays);
        let offers = addrs(&reach.offers);
        let old = t.get(&contact.public);
        let offers_changed = old.map(|o| &o.offers) != Some(&offers);
        // An attempt in flight stays the only one.
        let busy = old.is_some_and(|o| o.busy);
        t.insert(
            contact.public,
            Target {
                name: contact.name.clone(),
                seed: reach.seed,
                relays,
                offers,
                next: Instant::now(),
                backoff: MIN_BACKOFF,
                busy,
            },
        );
        // After the change, under the lock: a filter that sees the new
        // version reads the new targets.
        self.version.fetch_add(1, Ordering::Relaxed);
        drop(t);
        self.wake.notify_one();
        offers_changed
    }

    /// Relays contacts run for their contacts (reserve on these too): at
    /// most [`MAX_BORROWED_RELAYS`], so contacts cannot make this node
    /// keep connections to any number of hosts.
    pub(crate) fn offers(&self) -> Vec<Multiaddr> {
        let t = self.targets.lock().expect("targets lock");
        let mut out: Vec<Multiaddr> = t.values().flat_map(|x| x.offers.clone()).collect();
        out.sort();
        out.dedup();
        out.truncate(MAX_BORROWED_RELAYS);
        out
    }

    /// Contacts' relay ids in the epochs around `e` (for a relay that
    /// serves contacts only).
    fn contact_ids(&self, e: u64) -> Vec<PeerId> {
        let t = self.targets.lock().expect("targets lock");
        t.values()
            .flat_map(|x| {
                [e.saturating_sub(1), e, e + 1].map(|ep| peer_id_of(relay_key(&x.seed, ep)))
            })
            .collect()
    }

    /// A record of `contact`'s came over a link at `now`: whether to take
    /// it now, later, or with one already waiting (at most one a
    /// [`REACH_RECORD_EVERY`]).
    pub(crate) fn arrived(&self, contact: &PublicIdentity, now: Instant) -> Arrived {
        let mut arrived = self.arrived.lock().expect("arrived lock");
        match arrived.get_mut(contact) {
            Some((last, waiting)) if now < *last + REACH_RECORD_EVERY => {
                if *waiting {
                    Arrived::Waiting
                } else {
                    *waiting = true;
                    Arrived::At(*last + REACH_RECORD_EVERY)
                }
            }
            _ => {
                arrived.insert(*contact, (now, false));
                Arrived::Now
            }
        }
    }

    /// Tries every contact again now (a reservation of ours is new), at
    /// most once per [`RETRY_ALL_EVERY`] (a relay that takes reservations
    /// and drops them must not make the node redial everyone).
    pub(crate) fn retry_all(&self) {
        let now = Instant::now();
        {
            let mut last = self.last_retry.lock().expect("retry lock");
            if last.is_some_and(|t| now.duration_since(t) < RETRY_ALL_EVERY) {
                return;
            }
            *last = Some(now);
        }
        self.try_all_now(now);
    }

    /// Makes every contact due at `now`.
    fn try_all_now(&self, now: Instant) {
        for t in self.targets.lock().expect("targets lock").values_mut() {
            t.next = t.next.min(now);
        }
        self.wake.notify_one();
    }
}

impl Node {
    /// A contact wrote a new [`Reach`] record: dial them through their
    /// relays now, and reserve on the relays they offer. A contact no
    /// longer here is dialled no more.
    pub(crate) async fn reach_record(self, public: PublicIdentity) {
        let profile = self.shared.profile.clone();
        let reach = self.shared.reach.clone();
        let Some(record) = profile.contacts().into_iter().find(|c| c.public == public) else {
            // Deleted (or deleted while this waited): not dialled again.
            if reach.forget(&public) {
                self.relays_changed(&[]).await;
            }
            return;
        };
        let offers_changed = tokio::task::spawn_blocking(move || {
            let changed = reach.update(&profile, &record);
            // Deleted while this read their record: the deletion's own
            // forget may have come first (it runs after the list is
            // published, so this sees the list without them).
            if profile.book().sync_contact(&record.public).is_none() {
                return reach.forget(&record.public) || changed;
            }
            changed
        })
        .await
        .unwrap_or(false);
        if offers_changed {
            self.relays_changed(&[]).await;
        }
    }

    /// A contact's link brought a new [`Reach`] record: taken now
    /// ([`Node::reach_record`]), or, if one of theirs was taken less than
    /// [`REACH_RECORD_EVERY`] ago, when that is up (the newest then).
    pub(crate) async fn reach_record_arrived(self, public: PublicIdentity) {
        match self.shared.reach.arrived(&public, Instant::now()) {
            Arrived::Now => self.reach_record(public).await,
            Arrived::Waiting => {}
            Arrived::At(at) => {
                let cancel = self.shared.cancel.clone();
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = cancel.cancelled() => return,
                }
                // Taken now: the next waits a minute from here.
                let _ = self.shared.reach.arrived(&public, Instant::now());
                self.reach_record(public).await;
            }
        }
    }

    /// Dials contacts through their relays, for as long as the node runs:
    /// each contact when its backoff is over, and every one not connected
    /// just after each turn of the epoch, under their new ids.
    pub(crate) async fn dial_through_relays(self, relays: Relays) {
        let cancel = self.shared.cancel.clone();
        let reach = self.shared.reach.clone();
        let mut epoch = relays.epoch();
        loop {
            let now = Instant::now();
            // At a turn every contact's id changes, and this device's new
            // id reserved a margin before it (no new reservation says so
            // now): everyone not connected is tried again under the new
            // ids. The loop wakes just after each turn for it (the
            // client's own look turns at it).
            if relays.epoch() != epoch {
                epoch = relays.epoch();
                reach.try_all_now(now);
            }
            let mut due = Vec::new();
            let mut next = now + longest_sleep(relays.until_turn());
            let no_others = self.relays_to_try_contacts_at().is_empty();
            {
                let mut targets = reach.targets.lock().expect("targets lock");
                for (public, t) in targets.iter_mut() {
                    if t.busy || t.relays.is_empty() && no_others {
                        continue;
                    }
                    if self.shared.registry.is_connected(public) {
                        t.backoff = MIN_BACKOFF;
                        continue;
                    }
                    if t.next <= now {
                        t.busy = true;
                        due.push((*public, t.clone()));
                    } else {
                        next = next.min(t.next);
                    }
                }
            }
            for (public, target) in due {
                let n = self.clone();
                let relays = relays.clone();
                self.shared
                    .tasks
                    .spawn(async move { n.reach_contact(relays, public, target).await });
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = reach.wake.notified() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// Relays to try every contact at besides the ones each announced:
    /// the one this node runs for its contacts (they reserve there), the
    /// ones contacts run for theirs and offered this node (a contact may
    /// reserve there too), and the profile's (contacts often share a
    /// relay, and a contact who changed relays while apart can be found
    /// there). Not this node's own relays alone: contacts' offers are
    /// among them.
    fn relays_to_try_contacts_at(&self) -> Vec<Multiaddr> {
        let mut out = self.shared.serving();
        for a in self.shared.reach.offers() {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        for r in self.shared.profile.relays().unwrap_or_default() {
            if let Ok(a) = r.parse::<Multiaddr>() {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// One attempt to reach a contact through relays; runs the link to its
    /// end if one comes up.
    async fn reach_contact(self, relays: Relays, public: PublicIdentity, target: Target) {
        // Their id of the epoch this device dials in, under its id of that
        // epoch, and no other: see the module docs.
        let dialler = relays.dialler();
        let theirs = peer_id_of(relay_key(&target.seed, dialler.epoch()));
        let mine = dialler.local_peer_id();
        // The smaller id dials at once, the other a little later.
        if mine > theirs && target.backoff == MIN_BACKOFF {
            tokio::time::sleep(DIAL_DEFER).await;
        }
        let mut progressed = false;
        let mut reached = false;
        let mut turned = false;
        if !self.shared.registry.is_connected(&public) {
            // Where they said they are first; then the relay this node
            // runs, the ones contacts offer (the contact may reserve
            // there too) and the profile's.
            let mut vias = target.relays.clone();
            for r in self.relays_to_try_contacts_at() {
                if !vias.contains(&r) {
                    vias.push(r);
                }
            }
            for via in &vias {
                if self.shared.cancel.is_cancelled() {
                    break;
                }
                // The epoch turned: the dialler dials no more, and the
                // contact is tried again at once under their new id.
                if relays.epoch() != dialler.epoch() {
                    turned = true;
                    break;
                }
                let addr = circuit_addr(via, theirs);
                let Some(dial) = dialler.dial(&addr) else {
                    continue;
                };
                // A contact's dial: it waits for its token, which
                // no stranger's discoveries can spend.
                if !self.contact_dial().await {
                    break;
                }
                match dial.await {
                    Ok(link) => {
                        tracing::debug!(contact = %target.name, relay = %via, "reached through a relay");
                        reached = true;
                        let progress = self.shared.registry.progress(&public);
                        let (done, ended) = tokio::sync::oneshot::channel();
                        self.admit_outbound(link, Dial::Contact, Some(done));
                        let _ = ended.await;
                        progressed = self.shared.registry.progress(&public) != progress;
                        break;
                    }
                    // The epoch turned while the dial waited for its
                    // token: the dialler takes no dial any more. (A
                    // refusal with the epoch unmoved is a generation that
                    // stopped: a failure, with its backoff, not a turn to
                    // try again at once.)
                    Err(e) if cut_by_turn(&e, &relays, &dialler) => {
                        turned = true;
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(contact = %target.name, relay = %via, "not reached: {}", chain(&e))
                    }
                }
            }
            // Or it turned while the last relay was asked (which answered
            // for the old ids): the contact was not tried under the new
            // ones either.
            turned |= !reached && relays.epoch() != dialler.epoch();
        }
        let mut targets = self.shared.reach.targets.lock().expect("targets lock");
        if let Some(t) = targets.get_mut(&public) {
            t.busy = false;
            if progressed {
                // A link that carried messages ended (a reset circuit):
                // again at once.
                t.backoff = MIN_BACKOFF;
                t.next = Instant::now();
            } else if turned {
                // Not tried under the new ids yet: at once, backoff as it was.
                t.next = Instant::now();
            } else {
                // Nobody there, or a session that carried nothing (a
                // contact that hangs up at once is not redialled at once).
                t.next = Instant::now() + t.backoff;
                t.backoff = (t.backoff * 2).min(MAX_BACKOFF);
            }
        }
        drop(targets);
        self.shared.reach.wake.notify_one();
    }
}

/// The filter of a relay that serves this node's contacts only: their
/// relay ids (and this node's) in the epochs around now, recomputed when
/// the epoch or a contact's record changes.
pub(crate) fn contacts_only(
    reach: Arc<Reachability>,
    mine: IdentityFn,
    epoch: Duration,
    clock: Clock,
) -> PeerFilter {
    let cache: Mutex<(u64, u64, HashSet<PeerId>)> =
        Mutex::new((u64::MAX, u64::MAX, HashSet::new()));
    let len = (epoch.as_millis() as u64).max(1);
    Arc::new(move |peer: &PeerId| {
        let e = clock.now() / len;
        let v = reach.version.load(Ordering::Relaxed);
        let mut c = cache.lock().expect("filter lock");
        if c.0 != e || c.1 != v {
            let mut ids: HashSet<PeerId> = reach.contact_ids(e).into_iter().collect();
            ids.extend([e.saturating_sub(1), e, e + 1].map(|ep| peer_id_of(mine(ep))));
            *c = (e, v, ids);
        }
        c.2.contains(peer)
    })
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use strand_transport::relay::epoch_at;
    use strand_transport::{RelayConfig, Transport, TransportEvent};
    use tokio::sync::mpsc;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// A relay client on hourly epochs, with no relays and no hole
    /// punching, on a clock of its own (milliseconds since the Unix
    /// epoch, which the test moves) set to `at`; and the receiver of its
    /// events, kept for as long as the client runs.
    async fn relays_on_a_clock(
        at: u64,
    ) -> (Relays, Arc<AtomicU64>, mpsc::Receiver<TransportEvent>) {
        let clock = Arc::new(AtomicU64::new(at));
        let reading = clock.clone();
        let identity: IdentityFn = Arc::new(|epoch| relay_key(&[7; 32], epoch));
        let mut config = RelayConfig::new(Vec::new(), identity, HOUR);
        config.clock =
            Arc::new(move || UNIX_EPOCH + Duration::from_millis(reading.load(Ordering::SeqCst)));
        config.hole_punch = false;
        let (events, received) = mpsc::channel(64);
        let relays = Relays::start(config, events).await.unwrap();
        (relays, clock, received)
    }

    /// How a dial through `dialler` to `addr` was refused.
    async fn refusal(dialler: &Dialler, addr: &Multiaddr) -> TransportError {
        match dialler
            .dial(addr)
            .expect("a circuit the client dials")
            .await
        {
            Ok(_) => panic!("{addr} was dialled"),
            Err(e) => e,
        }
    }

    /// Regression (a stopped generation was taken for a turn): every dial
    /// the dialler refused ([`TransportError::Stopped`]) was taken for a
    /// turn of the epoch, and the contact was tried again at once with
    /// their backoff unchanged; a generation whose task has ended refuses
    /// every dial, so the node dialled the contact in a loop bounded only
    /// by contact-dial tokens. Now a refusal is a turn only if the relay
    /// client's epoch moved. Both refusals here come from a real client:
    /// one after a turn, one from a client whose generations have all
    /// stopped (shut down) in the same epoch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_generation_is_not_taken_for_a_turn() {
        let half_past = 1000 * HOUR.as_millis() as u64 + 30 * 60_000;
        let (relays, _clock, _events) = relays_on_a_clock(half_past).await;
        let relay: Multiaddr = format!("/ip4/127.0.0.1/tcp/9/p2p/{}", peer_id_of([1; 32]))
            .parse()
            .unwrap();
        let contact = circuit_addr(&relay, peer_id_of([2; 32]));

        // A turn: the old dialler refuses, and the contact is tried again
        // at once under their new id.
        let before = relays.dialler();
        relays.rotate().await.unwrap();
        let refused = refusal(&before, &contact).await;
        assert!(matches!(refused, TransportError::Stopped), "{refused}");
        assert!(cut_by_turn(&refused, &relays, &before));

        // The generation that dials has stopped, in the same epoch: a
        // failure, with its backoff.
        let dialler = relays.dialler();
        relays.shutdown().await;
        let refused = refusal(&dialler, &contact).await;
        assert!(matches!(refused, TransportError::Stopped), "{refused}");
        assert_eq!(relays.epoch(), dialler.epoch());
        assert!(
            !cut_by_turn(&refused, &relays, &dialler),
            "a stopped generation was taken for a turn: the contact would be dialled again at once, again and again"
        );
    }

    /// Regression (contacts were tried under their new relay ids up to a
    /// minute after the turn): the dialling loop slept up to a minute and
    /// nothing woke it at the turn (the new id reserved a margin before
    /// it, so no new reservation told of it), so contacts were tried under
    /// their new ids only at its next wake-up. Now it sleeps no longer than
    /// until just after the relay client's next turn, by the client's
    /// clock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_dialling_loop_wakes_just_after_the_turn() {
        let turn = 1000 * HOUR.as_millis() as u64;
        let (relays, clock, _events) = relays_on_a_clock(turn - 30 * 60_000).await;
        // Half an hour before the turn: the longest sleep.
        assert_eq!(longest_sleep(relays.until_turn()), LONGEST_SLEEP);

        // 10 s before it: the loop wakes after the turn, within the slack.
        clock.store(turn - 10_000, Ordering::SeqCst);
        let sleep = longest_sleep(relays.until_turn());
        let wake = UNIX_EPOCH + Duration::from_millis(turn - 10_000) + sleep;
        assert_eq!(epoch_at(wake, HOUR), 1000, "the loop wakes before the turn");
        let after = wake
            .duration_since(UNIX_EPOCH + Duration::from_millis(turn))
            .unwrap();
        assert_eq!(
            after, TURN_SLACK,
            "the loop wakes {after:?} after the turn: contacts wait that long for their new ids"
        );
        relays.shutdown().await;
    }

    /// Regression (stop 68's audit of what contacts can cost): every
    /// reach record a contact's link brought was taken at once, and each
    /// with other offers made the node reserve on the relays it names and
    /// dial the contact through their relays: a contact sending records
    /// in turn made the node dial hosts of their choosing as fast as they
    /// sent. Now one is taken a minute, and one waits for the minute's end.
    #[test]
    fn a_contacts_reach_records_are_taken_once_a_minute() {
        let reach = Reachability::default();
        let bob = PublicIdentity {
            sign: [1; 32],
            dh: [2; 32],
        };
        let carol = PublicIdentity {
            sign: [3; 32],
            dh: [4; 32],
        };
        let start = Instant::now();
        let at: Vec<Arrived> = (0..100)
            .map(|i| reach.arrived(&bob, start + Duration::from_millis(i)))
            .collect();
        assert_eq!(at[0], Arrived::Now);
        assert_eq!(at[1], Arrived::At(start + REACH_RECORD_EVERY));
        assert!(at[2..].iter().all(|a| *a == Arrived::Waiting), "{at:?}");
        // Another contact's are their own.
        assert_eq!(reach.arrived(&carol, start), Arrived::Now);
        // The minute up, the waiting one is taken, and the next waits a
        // minute from there.
        let later = start + REACH_RECORD_EVERY;
        assert_eq!(reach.arrived(&bob, later), Arrived::Now);
        assert_eq!(
            reach.arrived(&bob, later + Duration::from_secs(1)),
            Arrived::At(later + REACH_RECORD_EVERY)
        );
    }

    /// Regression: a contact's relay was taken if it ended in
    /// `/p2p/<id>`, so a record or an invite naming a relay at `/ws`, at
    /// `0.0.0.0`, at port 0, at QUIC's draft `/quic` or at no address
    /// made this node try the contact through it (and reserve on it, as
    /// an offer), failing every time. Now only relays the relay client
    /// dials are taken.
    #[test]
    fn a_contacts_relays_the_client_cannot_dial_are_not_tried() {
        let id = peer_id_of([1; 32]);
        let good: Multiaddr = format!("/ip4/203.0.113.7/tcp/4001/p2p/{id}")
            .parse()
            .unwrap();
        let bad: Vec<Multiaddr> = [
            format!("/ip4/203.0.113.7/tcp/4001/ws/p2p/{id}"),
            format!("/ip4/0.0.0.0/tcp/4001/p2p/{id}"),
            format!("/ip4/203.0.113.7/tcp/0/p2p/{id}"),
            format!("/ip4/203.0.113.7/udp/4001/quic/p2p/{id}"),
            format!("/p2p/{id}"),
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let mut listed: Vec<Vec<u8>> = bad.iter().map(|a| a.to_vec()).collect();
        listed.push(good.to_vec());
        // A record's list (relays or offers): the good one alone.
        assert_eq!(addrs(&listed), std::slice::from_ref(&good));
        // An invite naming them: Bob's node tries Alice through the good
        // relay only.
        let rng = &mut crate::profile::os_rng();
        let tmp = tempfile::tempdir().unwrap();
        let bob = Profile::create(
            &tmp.path().join("bob"),
            "bob",
            "pass",
            crate::KdfParams::insecure_for_tests(),
            rng,
        )
        .unwrap();
        let alice = strand_sync::Identity::generate("alice", rng).unwrap();
        let invite = alice.invite_with_reach(&Reach {
            seed: [9; 32],
            relays: listed,
            offers: Vec::new(),
        });
        assert_eq!(invite.reach.as_ref().unwrap().relays.len(), 6, "all fit");
        bob.add_contact(&invite, "alice", 0, rng).unwrap();
        let reach = Reachability::load(&bob);
        let targets = reach.targets.lock().unwrap();
        assert_eq!(targets[&alice.public()].relays, [good]);
    }
}
