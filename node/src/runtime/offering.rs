//! The relay this node runs for its contacts: the addresses it offers
//! them, kept current while the node runs.
//!
//! Contacts learn where that relay is from this node's [`Reach`] record
//! (its `offers`, [`Profile::publish_reach`]): they reserve there, and
//! dial the node through it. The node writes the record at its start, with
//! the addresses the relay has then ([`publish_offers`]), and again each
//! time they change ([`Node::follow_relay_addresses`]): a relay listening
//! on an unspecified address (`0.0.0.0`, `::`) is reached at an address
//! for each network the device is on, which come as the device joins one
//! (it may have none at the start) and go when it leaves
//! ([`RelayServer::watch_addresses`]; loopback does not count unless the
//! relay was set to listen there, so a device that lost its network
//! offers its relay nowhere rather than at `127.0.0.1`, which would be
//! each contact's own machine). A change is told as any change of
//! the record is: a new record in each contact's 1:1 group, handed to
//! live sessions at once, and the relay client reserves on the new
//! addresses ([`Node::relays_changed`]). A change of the relay list made
//! meanwhile (`strand relay add`, on another thread) takes its turn with
//! the node's record ([`Profile::publish_reach`]): whichever comes second
//! writes what holds then, the relay list and the offers both.
//!
//! Each change told costs a message to every contact, so telling is
//! bounded: a change is told [`OFFER_SETTLE`] after it came, with the rest
//! of its burst (an interface brings or takes its addresses within
//! moments), and no sooner than [`OFFER_EVERY`] after the last change
//! told. What is told then is where the relay is reached at that moment,
//! and nothing if that is what contacts were last told (an address that
//! went and came back). An interface flapping all day costs each contact
//! at most one record a minute.
//!
//! A change whose record could not be written (the store refused it: a
//! full disk, a write that failed) is tried again, or contacts would stay
//! on the addresses told before until the next change or the node's next
//! start, which may be days away: [`OFFER_EVERY`] after the failure, then
//! twice as long after each try that fails too, and at most
//! [`OFFER_RETRY_MAX`] apart ([`retry_at`]), so a store that keeps
//! failing costs a warning an hour, not one a minute. Trying stops once
//! the record is written, or once the addresses change again: that change
//! is told as any is, once it settled and no sooner than [`OFFER_EVERY`]
//! after the last try, and its failures are counted from one again. A
//! notice of the relay's addresses that leaves those to offer as they
//! were when the record failed is no change: the device's other networks
//! come and go (a container bridge, a VPN) while the relay is offered at
//! the same global addresses, and an address may go and come back within
//! the settling time. The try stays when it was, and so does its wait, or
//! such churn on a failing store would bring a try and a warning every
//! minute.
//!
//! [`Reach`]: strand_sync::Reach
//! [`RelayServer::watch_addresses`]: strand_transport::relay::server::RelayServer::watch_addresses

use std::time::Duration;

use rand_core::{CryptoRng, RngCore};
use strand_sync::limits::Time;
use strand_sync::{GroupId, Key};
use strand_transport::Multiaddr;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{serving_addresses, Node, Shared};
use crate::runtime::relaying::REACH_RECORD_EVERY;
use crate::{chain, Profile, ProfileError};

/// How long after a change of the relay's addresses the node waits before
/// telling contacts: the addresses of one interface come (or go) one
/// system message each, within milliseconds, and are told together.
pub(crate) const OFFER_SETTLE: Duration = Duration::from_secs(2);

/// How long after a change told the next is told at the soonest: a
/// contact's node takes one record of this node's a minute from a link
/// ([`REACH_RECORD_EVERY`]), so telling more often would only make
/// messages that wait there.
pub(crate) const OFFER_EVERY: Duration = REACH_RECORD_EVERY;

/// The longest wait between two tries of a change whose record could not
/// be written ([`retry_at`]): a store that fails for hours is tried, and
/// warned of, once an hour, and one that works again is found within the
/// hour.
pub(crate) const OFFER_RETRY_MAX: Duration = Duration::from_secs(3600);

/// When a change of the relay's addresses that came at `changed` is told:
/// [`OFFER_SETTLE`] later, and no sooner than [`OFFER_EVERY`] after the
/// last change told, at `told` (`None`: none since the start).
fn tell_at(changed: Instant, told: Option<Instant>) -> Instant {
    let settled = changed + OFFER_SETTLE;
    match told {
        Some(told) => settled.max(told + OFFER_EVERY),
        None => settled,
    }
}

/// When a change whose record could not be written is tried again, the
/// try that failed `failures` times in a row (the first: 1) having failed
/// at `failed`: [`OFFER_EVERY`] after the first failure, as a change is
/// told no sooner after the last, then twice as long after each, and at
/// most [`OFFER_RETRY_MAX`] after it.
fn retry_at(failed: Instant, failures: u32) -> Instant {
    let doubled = 2u32.saturating_pow(failures.saturating_sub(1));
    failed + OFFER_EVERY.saturating_mul(doubled).min(OFFER_RETRY_MAX)
}

/// A change of the relay's addresses whose record could not be written,
/// waiting to be tried again.
#[derive(Debug, Clone)]
struct Retry {
    /// The addresses whose record failed: a notice that leaves those to
    /// offer as they are is no change, and the wait stays.
    addresses: Vec<Multiaddr>,
    /// How many tries of those failed in a row.
    failures: u32,
    /// When the next is ([`retry_at`]).
    at: Instant,
}

/// What offering contacts the relay at some addresses came to.
#[derive(Debug)]
enum Offered {
    /// Contacts were told those already.
    Unchanged,
    /// Contacts are told: the record is written, or none was needed.
    Told,
    /// The record could not be written, for this reason.
    Failed(ProfileError),
}

/// Waits until `at`, or for good if there is none.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes the [`Reach`](strand_sync::Reach) record that offers contacts
/// the relay this node runs at `serving` (none: it offers none), unless
/// the last one said the same ([`Profile::publish_reach`]). Returns the
/// messages written. What the node's start and each later change of the
/// relay's addresses both tell.
pub(crate) fn publish_offers(
    profile: &Profile,
    serving: &[Multiaddr],
    now: Time,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<(GroupId, Key)>, ProfileError> {
    let offers: Vec<Vec<u8>> = serving.iter().map(|a| a.to_vec()).collect();
    profile.publish_reach(&offers, now, rng)
}

impl Shared {
    /// The addresses of the relay this node runs for contacts, as
    /// contacts were last offered them: told, or still to be told if
    /// their record failed (none if it runs none).
    pub(crate) fn serving(&self) -> Vec<Multiaddr> {
        self.serving.lock().expect("serving lock").clone()
    }
}

impl Node {
    /// Follows the addresses of the relay this node runs for contacts
    /// (`addresses`, from [`RelayServer::watch_addresses`]) for as long
    /// as the node runs, and tells contacts each change, bounded and
    /// tried again as the module docs say.
    ///
    /// [`RelayServer::watch_addresses`]: strand_transport::relay::server::RelayServer::watch_addresses
    pub(crate) async fn follow_relay_addresses(
        self,
        mut addresses: watch::Receiver<Vec<Multiaddr>>,
    ) {
        let cancel = self.shared.cancel.clone();
        // When a change was last told or tried: a try that failed bounds
        // the next as one told does, so a flapping interface does not
        // try a failing store more often either.
        let mut told: Option<Instant> = None;
        let mut retry: Option<Retry> = None;
        loop {
            let due = tokio::select! {
                // A change that came by the time a try is due is told as a
                // change, once it settled.
                biased;
                _ = cancel.cancelled() => return,
                changed = addresses.changed() => {
                    // The relay stopped: nothing more will change.
                    if changed.is_err() {
                        return;
                    }
                    // Changes that come meanwhile wait in `addresses`: the
                    // newest is read then.
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep_until(tell_at(Instant::now(), told)) => {}
                    }
                    false
                }
                _ = until(retry.as_ref().map(|r| r.at)) => true,
            };
            let reached = serving_addresses(addresses.borrow_and_update().clone());
            // A notice that leaves the addresses to offer as they were
            // when their record failed is no change: the try waits for its
            // time, which a store that keeps failing pushes ever further.
            let unchanged = |r: &Retry| r.addresses == reached;
            if !due && retry.as_ref().is_some_and(unchanged) {
                continue;
            }
            // While a record failed, contacts were not told where the
            // relay is, even if it is back where it was then.
            let error = match self.offer(reached.clone(), retry.is_some()).await {
                // Contacts were told those: nothing is left to try (so
                // none is while a record failed, `untold`).
                Offered::Unchanged => {
                    retry = None;
                    continue;
                }
                Offered::Told => None,
                Offered::Failed(e) => Some(e),
            };
            let now = Instant::now();
            told = Some(now);
            retry = match error {
                None => None,
                // The profile closed under it: the node stops.
                Some(_) if cancel.is_cancelled() => return,
                Some(e) => {
                    // A change to other addresses starts over: they may
                    // be ones a record can carry, and the store may write
                    // again.
                    let failures = match &retry {
                        Some(r) if unchanged(r) => r.failures.saturating_add(1),
                        _ => 1,
                    };
                    let at = retry_at(now, failures);
                    tracing::warn!(
                        again_in = ?(at - now),
                        "telling contacts where the relay for them is failed: {}",
                        chain(&e)
                    );
                    Some(Retry {
                        addresses: reached,
                        failures,
                        at,
                    })
                }
            };
        }
    }

    /// Offers contacts the relay this node runs at `serving` instead of
    /// where they were last offered it, unless that is the same and they
    /// were told it (`untold`: they were not, as its record failed).
    async fn offer(&self, serving: Vec<Multiaddr>, untold: bool) -> Offered {
        let changed = {
            let mut current = self.shared.serving.lock().expect("serving lock");
            let changed = *current != serving;
            if !changed && !untold {
                return Offered::Unchanged;
            }
            current.clone_from(&serving);
            changed
        };
        if !changed {
            tracing::info!(addresses = ?serving, "telling contacts again where the relay for them is");
        } else if serving.is_empty() {
            tracing::info!(
                "the relay for contacts has no address now; contacts are told once it has one"
            );
        } else {
            tracing::info!(addresses = ?serving, "telling contacts where the relay for them is now");
        }
        // `serving` stays as set whether or not the record is written: it
        // is where the relay is reached (the client reserves there, the
        // status shows it), told or not. The offers given stand in the
        // profile too, so the relay list's next change tells them if no
        // try has by then. A contact deleted meanwhile fails nothing.
        let (written, offered) = match self.tell(serving).await {
            Ok(written) => (written, Offered::Told),
            Err(e) => (Vec::new(), Offered::Failed(e)),
        };
        // The relay client reserves on the new addresses whether or not
        // the record could be written.
        self.relays_changed(&written).await;
        offered
    }

    /// Writes the record that offers contacts the relay at `serving`
    /// ([`publish_offers`]) on a blocking thread, as the store is written
    /// there. Returns the messages written.
    async fn tell(&self, serving: Vec<Multiaddr>) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        // A test's store refusing it.
        #[cfg(test)]
        if let Some(e) = tests::refused() {
            return Err(e);
        }
        let profile = self.shared.profile.clone();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        tokio::task::spawn_blocking(move || publish_offers(&profile, &serving, now, &mut rng))
            .await
            // It did not run to its end: the runtime stops with the node
            // (or it panicked, which the panic hook logged and recorded).
            .unwrap_or(Err(ProfileError::Closed))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use strand_transport::network_namespace::{in_a_network_with_no_address, ip};

    use super::*;
    use crate::{NodeConfig, RelaySettings, ServeSettings};

    /// Telling is bounded: the first change since the start is told once
    /// it settled, and each later one no sooner than [`OFFER_EVERY`] after
    /// the last one told, however many changes come between (an
    /// interface flapping). With no bound, each flap was one record to
    /// every contact.
    #[test]
    fn changes_of_the_relays_addresses_are_told_at_most_once_a_minute() {
        let start = Instant::now();
        // The first, a second after the start.
        let first = start + Duration::from_secs(1);
        assert_eq!(tell_at(first, None), first + OFFER_SETTLE);
        // Told then; a flap every 100 ms after that is told a minute
        // after it, whichever flap asks.
        let told = tell_at(first, None);
        for i in 1..100 {
            let flap = told + Duration::from_millis(100 * i);
            assert_eq!(tell_at(flap, Some(told)), told + OFFER_EVERY, "flap {i}");
        }
        // A change long after the last one told: once it settled.
        let later = told + OFFER_EVERY * 3;
        assert_eq!(tell_at(later, Some(told)), later + OFFER_SETTLE);
    }

    /// A change whose record failed is tried again a minute after, then
    /// ever less often: twice as long after each try that fails too, and
    /// at most an hour apart, however long the store fails.
    #[test]
    fn a_change_whose_record_failed_is_tried_again_ever_less_often() {
        let failed = Instant::now();
        assert_eq!(retry_at(failed, 1), failed + OFFER_EVERY);
        assert_eq!(retry_at(failed, 2), failed + 2 * OFFER_EVERY);
        assert_eq!(retry_at(failed, 3), failed + 4 * OFFER_EVERY);
        assert_eq!(retry_at(failed, 6), failed + 32 * OFFER_EVERY);
        // 64 minutes would be past the hour.
        assert_eq!(retry_at(failed, 7), failed + OFFER_RETRY_MAX);
        assert_eq!(retry_at(failed, 40), failed + OFFER_RETRY_MAX);
        assert_eq!(retry_at(failed, u32::MAX), failed + OFFER_RETRY_MAX);
    }

    /// What a test's store does with the records that offer contacts the
    /// relay, as the task telling them sees it ([`refused`]): it refuses
    /// the next `refusals` (as a full disk would), and notes when each
    /// record was tried.
    #[derive(Default)]
    struct Store {
        refusals: u32,
        tries: Vec<Instant>,
    }

    tokio::task_local! {
        /// The store of the task that runs in its scope: only that task
        /// finds its records refused, whatever other tests run meanwhile.
        static STORE: Arc<Mutex<Store>>;
    }

    /// Whether a test's store refuses the record tried now, and why
    /// ([`STORE`]; in any other task, it does not).
    pub(super) fn refused() -> Option<ProfileError> {
        STORE
            .try_with(|store| {
                let mut store = store.lock().expect("store lock");
                store.tries.push(Instant::now());
                if store.refusals == 0 {
                    return None;
                }
                store.refusals -= 1;
                Some(crate::profile::io_error(
                    std::path::Path::new("the test's disk"),
                    std::io::ErrorKind::StorageFull.into(),
                ))
            })
            .ok()
            .flatten()
    }

    /// The time a test waits for the node at most: a day of paused time.
    const DAY: Duration = Duration::from_secs(24 * 3600);

    /// Waits (in paused time, which goes on whenever nothing is left to
    /// do) until `done`, for at most a [`DAY`].
    async fn within_a_day(what: &str, mut done: impl FnMut() -> bool) {
        let waited = tokio::time::timeout(DAY, async {
            while !done() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{what}: not within a day");
    }

    /// An offline node whose relay for contacts is played by `addresses`
    /// (what a test sends there is a change of the relay's addresses),
    /// followed by a task whose records `store` takes. Returns the node
    /// and that task.
    async fn followed(
        dir: &std::path::Path,
        addresses: watch::Receiver<Vec<Multiaddr>>,
        store: &Arc<Mutex<Store>>,
    ) -> (Node, tokio::task::JoinHandle<()>) {
        let node = crate::runtime::test_node(dir, NodeConfig::offline()).await;
        let following = tokio::spawn(STORE.scope(
            store.clone(),
            node.clone().follow_relay_addresses(addresses),
        ));
        (node, following)
    }

    /// The offers of the record the node stored as published, if any.
    fn offered(node: &Node) -> Option<Vec<Vec<u8>>> {
        node.profile().published_reach().unwrap().map(|r| r.offers)
    }

    /// Regression (a change of the relay's addresses whose record failed
    /// to be written, on a store error, was not tried again until the
    /// next change or the node's next start: contacts could stay on the
    /// addresses told before for days). Here the store refuses the first
    /// three records: the change is tried again a minute after the first
    /// failure, two after the second, four after the third, and then
    /// written; and once it is, it is tried no more. Fails without the
    /// retry (`Some(Retry { .. })` in `follow_relay_addresses`
    /// made `None`, as before): nothing tries the record again, and the
    /// paused day runs out. Fails the same way if a try of the addresses
    /// whose record failed is taken for no change (`&& !untold` taken out
    /// of [`Node::offer`]).
    #[tokio::test(start_paused = true)]
    async fn a_change_whose_record_failed_is_tried_again_until_it_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let (relay, addresses) = watch::channel(Vec::new());
        let store = Arc::new(Mutex::new(Store {
            refusals: 3,
            ..Store::default()
        }));
        let (node, following) = followed(tmp.path(), addresses, &store).await;
        let at: Multiaddr = "/ip4/10.7.7.7/tcp/4001".parse().unwrap();
        relay.send(vec![at.clone()]).unwrap();
        within_a_day("told", || offered(&node) == Some(vec![at.to_vec()])).await;
        let tries = store.lock().unwrap().tries.clone();
        assert_eq!(tries.len(), 4, "three refused, one written: {tries:?}");
        for (n, pair) in tries.windows(2).enumerate() {
            // `n + 1` tries had failed in a row.
            let due = retry_at(pair[0], n as u32 + 1);
            assert!(
                pair[1] >= due && pair[1] - due < Duration::from_secs(1),
                "try {} came {:?} after the one before",
                n + 2,
                pair[1] - pair[0]
            );
        }
        assert_eq!(node.shared.serving(), std::slice::from_ref(&at));
        // Told: no more tries, for longer than any wait between two.
        tokio::time::sleep(2 * OFFER_RETRY_MAX).await;
        assert_eq!(
            store.lock().unwrap().tries.len(),
            4,
            "tried after it was written"
        );
        node.shutdown().await;
        following.await.unwrap();
    }

    /// A change that comes while a change whose record failed waits to be
    /// tried again is told as usual, not at the try's time. Here the
    /// record fails three times, and the next try is four minutes away;
    /// the relay moves to another address, which is told as that change
    /// is, a minute after the last try, not at that try's time. Fails if
    /// that change is taken for none (the check before [`Node::offer`] in
    /// `follow_relay_addresses` made to pass over any notice while a try
    /// waits: the new address is then told at the try's time), and
    /// without the retry (the third try never comes).
    #[tokio::test(start_paused = true)]
    async fn a_change_while_a_record_is_tried_again_is_told_as_usual() {
        let tmp = tempfile::tempdir().unwrap();
        let (relay, addresses) = watch::channel(Vec::new());
        let store = Arc::new(Mutex::new(Store {
            refusals: 3,
            ..Store::default()
        }));
        let (node, following) = followed(tmp.path(), addresses, &store).await;
        let first: Multiaddr = "/ip4/10.7.7.7/tcp/4001".parse().unwrap();
        relay.send(vec![first]).unwrap();
        let tried = |n: usize| store.lock().unwrap().tries.len() >= n;
        within_a_day("three tries", || tried(3)).await;
        let third = store.lock().unwrap().tries[2];
        assert_eq!(offered(&node), None, "nothing written yet");
        // The relay moves to another address.
        let at: Multiaddr = "/ip4/10.7.7.8/tcp/4001".parse().unwrap();
        relay.send(vec![at.clone()]).unwrap();
        let moved = Instant::now();
        within_a_day("told", || offered(&node) == Some(vec![at.to_vec()])).await;
        let tries = store.lock().unwrap().tries.clone();
        assert_eq!(tries.len(), 4, "{tries:?}");
        let due = tell_at(moved, Some(third));
        assert!(
            tries[3] >= due && tries[3] < retry_at(third, 3),
            "told {:?} after the change, the try due {:?} after it",
            tries[3] - moved,
            retry_at(third, 3) - moved
        );
        tokio::time::sleep(2 * OFFER_RETRY_MAX).await;
        assert_eq!(
            store.lock().unwrap().tries.len(),
            4,
            "tried after it was written"
        );
        node.shutdown().await;
        following.await.unwrap();
    }

    /// Regression (a notice of the relay's addresses after a record
    /// failed started its wait over at a minute even when the addresses
    /// to offer were the same: a container bridge or a VPN coming and
    /// going on a device whose relay is offered at a global address, with
    /// a full disk, cost a try and a warning every minute instead of
    /// ever fewer). Here the store refuses every record, and every 15
    /// seconds the device gets or loses a private address (which the
    /// global one hides from contacts), or the global one goes and comes
    /// back within the settling time: the tries still come a minute, two,
    /// four and eight apart. Fails before (the check before
    /// [`Node::offer`] in `follow_relay_addresses` taken out): a try
    /// every minute, about 20 in those 20 minutes instead of 5.
    #[tokio::test(start_paused = true)]
    async fn a_notice_that_leaves_the_addresses_to_offer_as_they_were_keeps_the_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let (relay, addresses) = watch::channel(Vec::new());
        let store = Arc::new(Mutex::new(Store {
            refusals: u32::MAX,
            ..Store::default()
        }));
        let (node, following) = followed(tmp.path(), addresses, &store).await;
        let global: Multiaddr = "/ip4/203.0.113.7/tcp/4001".parse().unwrap();
        let bridge: Multiaddr = "/ip4/172.17.0.1/tcp/4001".parse().unwrap();
        relay.send(vec![global.clone()]).unwrap();
        within_a_day("the first try", || !store.lock().unwrap().tries.is_empty()).await;
        let first = store.lock().unwrap().tries[0];
        // The notices come 7 seconds past each quarter minute after the
        // first try, never within the settling time before a try (those
        // come whole minutes after it), so none of them can delay one.
        tokio::time::sleep_until(first + Duration::from_secs(7)).await;
        let end = first + 20 * OFFER_EVERY;
        let mut turn = 0;
        while Instant::now() < end {
            match turn % 3 {
                0 => relay.send(vec![global.clone(), bridge.clone()]).unwrap(),
                1 => relay.send(vec![global.clone()]).unwrap(),
                _ => {
                    relay.send(Vec::new()).unwrap();
                    relay.send(vec![global.clone()]).unwrap();
                }
            }
            turn += 1;
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
        let tries = store.lock().unwrap().tries.clone();
        let after: Vec<_> = tries.iter().map(|t| *t - first).collect();
        // At 0, 1, 3, 7 and 15 minutes; the next is at 31.
        assert_eq!(tries.len(), 5, "tries this long after the first: {after:?}");
        for (n, pair) in tries.windows(2).enumerate() {
            let due = retry_at(pair[0], n as u32 + 1);
            assert!(
                pair[1] >= due && pair[1] - due < Duration::from_secs(1),
                "try {} late or early: {after:?}",
                n + 2
            );
        }
        assert_eq!(offered(&node), None, "nothing written");
        node.shutdown().await;
        following.await.unwrap();
    }

    /// Regression (contacts were offered the node's relay at the
    /// addresses it had when the node started, and no other): a relay for
    /// contacts listening on `0.0.0.0` on a device with no address yet
    /// started with none, and the addresses it got later were offered to
    /// contacts only from the node's next start. Now the node follows the
    /// relay's addresses while it runs. Here, in a network namespace with
    /// no address: the node starts offering nothing, loopback comes up
    /// with a private address (10.7.7.7; the relay on `0.0.0.0` is never
    /// reached at 127.0.0.1), and the node serves at 10.7.7.7, publishes
    /// a record offering it (what contacts and the invite are told) and
    /// reserves there itself. Before, nothing of that happened (the
    /// timeout below fails it).
    #[test]
    fn an_address_the_relay_for_contacts_gets_after_the_start_is_offered() {
        let Some(runtime) = in_a_network_with_no_address(
            module_path!(),
            "an_address_the_relay_for_contacts_gets_after_the_start_is_offered",
        ) else {
            return;
        };
        // How long anything here may take: a listen waits a second, and
        // a change is told a couple of seconds after it.
        let within = Duration::from_secs(30);
        runtime.block_on(async {
            let tmp = tempfile::tempdir().unwrap();
            let config = NodeConfig {
                lan: None,
                relay: Some(RelaySettings {
                    hole_punch: false,
                    listen: Vec::new(),
                    serve: Some(ServeSettings {
                        listen: vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()],
                        announce: Vec::new(),
                    }),
                    ..RelaySettings::default()
                }),
                ..NodeConfig::default()
            };
            let node = tokio::time::timeout(within, crate::runtime::test_node(tmp.path(), config))
                .await
                .expect("the node starts, with no address to wait for");
            let serving = |node: &Node| node.shared.serving();
            assert_eq!(serving(&node), Vec::<Multiaddr>::new(), "no address yet");
            assert_eq!(
                node.profile().published_reach().unwrap(),
                None,
                "nothing to offer yet"
            );

            // Loopback comes up with 10.7.7.7: the relay is reached
            // there, and the node reserves there once it has told
            // contacts.
            ip(&["link", "set", "lo", "up"]);
            ip(&["addr", "add", "10.7.7.7/32", "dev", "lo"]);
            tokio::time::timeout(within, async {
                while !node.relays().await.iter().any(|r| r.source == "this node") {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .expect("the node serves at the address that came");
            let now = serving(&node);
            assert!(
                now.len() == 1 && now[0].to_string().starts_with("/ip4/10.7.7.7/tcp/"),
                "{now:?}"
            );
            let status = node.status().await;
            assert_eq!(
                status.serving.expect("serving").addresses,
                [now[0].to_string()]
            );
            // What contacts are told, and new contacts by the invite.
            let published = node.profile().published_reach().unwrap();
            assert_eq!(
                published.expect("a record offering the relay").offers,
                [now[0].to_vec()]
            );
            // An invite leaves offers out but lists the relay among the
            // relays it names.
            let invite = node.profile().invite().unwrap();
            assert_eq!(invite.reach.expect("a reach").relays, [now[0].to_vec()]);
            node.shutdown().await;
        });
    }
}
