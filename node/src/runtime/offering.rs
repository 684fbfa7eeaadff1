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
    /// contacts were last told them (none if it runs none).
    pub(crate) fn serving(&self) -> Vec<Multiaddr> {
        self.serving.lock().expect("serving lock").clone()
    }
}

impl Node {
    /// Follows the addresses of the relay this node runs for contacts
    /// (`addresses`, from [`RelayServer::watch_addresses`]) for as long
    /// as the node runs, and tells contacts each change, bounded as the
    /// module docs say.
    ///
    /// [`RelayServer::watch_addresses`]: strand_transport::relay::server::RelayServer::watch_addresses
    pub(crate) async fn follow_relay_addresses(
        self,
        mut addresses: watch::Receiver<Vec<Multiaddr>>,
    ) {
        let cancel = self.shared.cancel.clone();
        let mut told: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = addresses.changed() => {
                    // The relay stopped: nothing more will change.
                    if changed.is_err() {
                        return;
                    }
                }
            }
            // Changes that come meanwhile wait in `addresses`: the newest
            // is read then.
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(tell_at(Instant::now(), told)) => {}
            }
            let reached = serving_addresses(addresses.borrow_and_update().clone());
            if self.offer(reached).await {
                told = Some(Instant::now());
            }
        }
    }

    /// Offers contacts the relay this node runs at `serving` instead of
    /// where they were last told it is: returns whether that changed.
    async fn offer(&self, serving: Vec<Multiaddr>) -> bool {
        {
            let mut current = self.shared.serving.lock().expect("serving lock");
            if *current == serving {
                return false;
            }
            current.clone_from(&serving);
        }
        if serving.is_empty() {
            tracing::info!(
                "the relay for contacts has no address now; contacts are told once it has one"
            );
        } else {
            tracing::info!(addresses = ?serving, "telling contacts where the relay for them is now");
        }
        let profile = self.shared.profile.clone();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let written =
            tokio::task::spawn_blocking(move || publish_offers(&profile, &serving, now, &mut rng))
                .await;
        let written = match written {
            Ok(Ok(written)) => written,
            // Not tried again until the addresses change, and `serving`
            // stays as set: it is where the relay is reached (the client
            // reserves there, the status shows it), told or not. The
            // offers given stand in the profile, so the relay list's next
            // change tells them, and so does the node's next start. A
            // contact deleted meanwhile fails nothing; what is left to
            // fail here is the store (closed as the node stops, or
            // refusing writes, which a retry soon after would most likely
            // find the same) or addresses no record may carry (which a
            // retry with the same addresses always would).
            Ok(Err(e)) => {
                tracing::warn!(
                    "telling contacts where the relay for them is failed: {}",
                    chain(&e)
                );
                Vec::new()
            }
            // The profile closed under it (the node stops).
            Err(_) => Vec::new(),
        };
        // The relay client reserves on the new addresses whether or not
        // the record could be written.
        self.relays_changed(&written).await;
        true
    }
}

#[cfg(test)]
mod tests {
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
