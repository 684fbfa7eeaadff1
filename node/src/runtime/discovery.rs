//! Devices transports found (a LAN neighbour over mDNS, a hole punched
//! to a relayed peer, a Bluetooth advertisement): remembering them,
//! dialling them, and dialling a contact's device again when its link
//! drops.
//!
//! Who a device found is, the node learns only once a link to it
//! authenticates, so dials to devices found are paid from a bucket of
//! their own ([`Dial::Discovery`]): a stranger's made-up discoveries (many
//! peer ids a second from one address) empty it, and nothing else. Once a
//! contact's session ran on a link to the device, dialling it again is a
//! dial to that contact ([`Dial::Contact`]).
//!
//! A transport reports a device once, and only one side of a pair dials
//! (the transport's tie-break), so a device found while that bucket is
//! empty would not be dialled until the next rotation. It waits in a
//! short queue instead ([`MAX_SKIPPED_DIALS`]: each device once, the
//! oldest dropped past it) and [`Node::dial_skipped`] dials the queue, in
//! order, as tokens come back.
//!
//! [`MAX_SKIPPED_DIALS`]: crate::runtime::limits::MAX_SKIPPED_DIALS

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use strand_transport::{Peer, Transport};

use super::guard::Dial;
use super::Node;
use crate::runtime::limits::{NEARBY_FRESH, NEARBY_KEPT, REDIAL, REDIAL_MAX};

/// A bounded first-in, first-out queue that holds each item once. Past
/// its bound the oldest item goes: the newest are the likeliest still
/// there, and a flood replaces its own items rather than grow.
#[derive(Debug)]
pub(crate) struct Backlog<T> {
    items: VecDeque<T>,
    bound: usize,
}

impl<T: PartialEq> Backlog<T> {
    /// An empty queue of at most `bound` items (at least one).
    pub(crate) fn new(bound: usize) -> Backlog<T> {
        Backlog {
            items: VecDeque::new(),
            bound: bound.max(1),
        }
    }

    /// Queues `item` at the back unless it is queued already (where it
    /// keeps its place). Returns the oldest item, dropped to make room.
    pub(crate) fn push(&mut self, item: T) -> Option<T> {
        // A scan of at most `bound` (a few dozen) items: cheaper than a
        // second index, even under a flood.
        if self.items.contains(&item) {
            return None;
        }
        let dropped = if self.items.len() >= self.bound {
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        dropped
    }

    /// The oldest item, taken off the queue.
    pub(crate) fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many are queued.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

impl Node {
    /// Remembers a discovered device, for [`Node::redial_nearby`].
    pub(super) fn note_nearby(&self, peer: Peer) {
        let mut nearby = self.shared.nearby.lock().expect("nearby lock");
        nearby.retain(|(p, _)| *p != peer);
        if nearby.len() == NEARBY_KEPT {
            nearby.pop_front();
        }
        nearby.push_back((peer, std::time::Instant::now()));
    }

    /// Opens links again to devices discovered lately: after a contact is
    /// added, the device that is theirs may be among them (its first link
    /// was refused, since it was no contact then). Either side dials, so
    /// whichever adds the other last links them.
    pub(super) fn redial_nearby(&self) {
        let fresh: Vec<Peer> = self
            .shared
            .nearby
            .lock()
            .expect("nearby lock")
            .iter()
            .filter(|(_, at)| at.elapsed() < NEARBY_FRESH)
            .map(|(p, _)| *p)
            .collect();
        for peer in fresh {
            self.open(peer);
        }
    }

    /// Opens a link to a device a transport found: now, if a discovery
    /// dial is left and none waits before it; else once one comes back
    /// ([`Node::dial_skipped`]).
    pub(super) fn open(&self, peer: Peer) {
        let Some(t) = self.transport(peer.kind) else {
            return;
        };
        let queued = {
            let mut skipped = self.shared.skipped.lock().expect("skipped lock");
            // Those waiting go first: a token that came back is theirs.
            if skipped.is_empty() && self.shared.guard.may_dial(Dial::Discovery) {
                false
            } else {
                if skipped.push(peer).is_some() {
                    tracing::debug!("a device found earlier left the dial queue: too many found");
                }
                tracing::debug!(
                    queued = skipped.len(),
                    "dialling devices found too fast: this one waits"
                );
                true
            }
        };
        if queued {
            self.shared.skipped_added.notify_one();
        } else {
            self.spawn_dial_found(t, peer);
        }
    }

    /// Dials the devices [`Node::open`] queued, oldest first, one per
    /// discovery dial's token as they come back, until the node stops.
    pub(super) async fn dial_skipped(self) {
        let cancel = self.shared.cancel.clone();
        loop {
            match self.next_skipped() {
                Some(Ok(peer)) => {
                    if let Some(t) = self.transport(peer.kind) {
                        self.spawn_dial_found(t, peer);
                    }
                }
                Some(Err(wait)) => {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = self.shared.skipped_added.notified() => {}
                    }
                }
            }
        }
    }

    /// The oldest device queued, with a discovery dial's token taken for
    /// it; or how long until a token comes back; `None` if none waits.
    fn next_skipped(&self) -> Option<Result<Peer, Duration>> {
        let mut skipped = self.shared.skipped.lock().expect("skipped lock");
        if skipped.is_empty() {
            return None;
        }
        let token = self.shared.guard.try_dial(Dial::Discovery);
        let peer = token.map(|()| {
            skipped
                .pop()
                .expect("not empty: looked at under the same lock")
        });
        Some(peer)
    }

    /// Runs [`Node::dial_nearby`] for `peer` (its token is taken).
    fn spawn_dial_found(&self, t: Arc<dyn Transport>, peer: Peer) {
        let n = self.clone();
        self.shared
            .tasks
            .spawn(async move { n.dial_nearby(t, peer).await });
    }

    /// Dials `peer`, found nearby, and dials it again while a contact's
    /// link to it ends and nothing else links the contact: the Wi-Fi went
    /// and came back, or a session failed. Discovery reports a device
    /// once (mDNS says nothing new of one it still hears), and the other
    /// side leaves dialling to this one, so without this a dropped link
    /// waited for the next rotation. A stranger's link, a failed dial, a
    /// contact linked otherwise (a newer session replaced this one, the
    /// other side dialled) end it; one wait per device at a time; a
    /// session that ends soon after it began doubles the wait, up to
    /// [`REDIAL_MAX`]. The first dial is a discovery's (its token was
    /// taken); dials again go to a contact's device, and wait for a
    /// contact's token rather than give up.
    async fn dial_nearby(&self, t: Arc<dyn Transport>, peer: Peer) {
        let mut wait = REDIAL;
        let mut dial = Dial::Discovery;
        loop {
            let link = match t.open(peer).await {
                Ok(link) => link,
                Err(e) => {
                    // The quiet LAN refuses before it dials anyone, so the
                    // token goes back. It ends this task all the same:
                    // once the LAN listens again, its new identity's
                    // discovery finds the devices still there.
                    self.shared.guard.refused(dial, &e);
                    tracing::debug!("dial after discovery failed: {e}");
                    return;
                }
            };
            let (done, ended) = tokio::sync::oneshot::channel();
            let began = tokio::time::Instant::now();
            self.admit_outbound(link, dial, Some(done));
            let Ok(Some(contact)) = ended.await else {
                return;
            };
            let linked = || self.shared.registry.is_connected(&contact);
            if self.shared.cancel.is_cancelled() || linked() {
                return;
            }
            wait = if began.elapsed() >= REDIAL_MAX {
                REDIAL
            } else {
                (wait * 2).min(REDIAL_MAX)
            };
            if !self
                .shared
                .redialling
                .lock()
                .expect("redialling lock")
                .insert(peer)
            {
                return;
            }
            let cancel = self.shared.cancel.clone();
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            self.shared
                .redialling
                .lock()
                .expect("redialling lock")
                .remove(&peer);
            if cancel.is_cancelled() || linked() || !self.contact_dial().await {
                return;
            }
            dial = Dial::Contact;
            tracing::debug!("a contact's link to a device found nearby ended: dialling again");
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;
    use strand_transport::{
        Link, LinkKind, Multiaddr, TransportError, TransportEvent, TransportInfo,
    };

    use super::*;
    use crate::runtime::limits::MAX_SKIPPED_DIALS;
    use crate::runtime::test_node;

    /// A transport that refuses every dial at once, as the LAN does while
    /// it is quiet.
    struct Quiet;

    impl Transport for Quiet {
        fn kind(&self) -> LinkKind {
            LinkKind::Lan
        }

        fn open(&self, _: Peer) -> BoxFuture<'static, Result<Link, TransportError>> {
            Box::pin(async { Err(TransportError::Quiet) })
        }

        fn dial(&self, _: &Multiaddr) -> Option<BoxFuture<'static, Result<Link, TransportError>>> {
            None
        }

        fn info(&self) -> BoxFuture<'static, TransportInfo> {
            unreachable!("not asked in these tests")
        }

        fn shutdown(&self) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }

    /// A device found dialled while the LAN is quiet (on waking on
    /// another network the node dials the devices found before) cost a
    /// discovery dial's token, though the LAN refused the dial before it
    /// reached the network: a wake's dials emptied the bucket, and the
    /// devices found once the LAN listened again waited behind them. Now
    /// the token goes back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dial_the_quiet_lan_refuses_costs_no_discovery_token() {
        let tmp = tempfile::tempdir().unwrap();
        let node = test_node(tmp.path(), super::super::NodeConfig::default()).await;
        let guard = &node.shared.guard;
        guard.stop_refilling();
        // Every token taken, as by many devices found at once: the last
        // one pays for the dial below, as `Node::open` takes it.
        let mut taken = 0;
        while guard.may_dial(Dial::Discovery) {
            taken += 1;
        }
        assert!(taken > 0, "the bucket starts with tokens");
        // A device to dial: one a hub of emulated links reports.
        let hub = strand_transport::memory::Hub::new();
        let (tx, mut found) = tokio::sync::mpsc::channel(4);
        let _here = hub.join(tx);
        let _there = hub.join(tokio::sync::mpsc::channel(4).0);
        let Ok(TransportEvent::Discovered { peer, .. }) = found.try_recv() else {
            panic!("the hub reports the other device");
        };

        node.dial_nearby(Arc::new(Quiet), peer).await;
        assert!(guard.may_dial(Dial::Discovery), "the token came back");
        node.shutdown().await;
    }

    #[test]
    fn a_backlog_keeps_each_item_once_in_order() {
        let mut queue = Backlog::new(4);
        assert_eq!(queue.push(1), None);
        assert_eq!(queue.push(2), None);
        assert_eq!(queue.push(1), None);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.pop(), Some(2));
        assert_eq!(queue.pop(), None);
        assert!(queue.is_empty());
    }

    /// A flood of made-up devices replaces its own: the queue stays at its
    /// bound and holds the newest.
    #[test]
    fn a_flood_keeps_the_backlog_at_its_bound_with_the_newest() {
        let mut queue = Backlog::new(MAX_SKIPPED_DIALS);
        for i in 0..100_000u64 {
            let dropped = queue.push(i);
            let expected = i.checked_sub(MAX_SKIPPED_DIALS as u64);
            assert_eq!(dropped, expected);
        }
        assert_eq!(queue.len(), MAX_SKIPPED_DIALS);
        let first = 100_000 - MAX_SKIPPED_DIALS as u64;
        let kept: Vec<u64> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(kept, (first..100_000).collect::<Vec<_>>());
    }
}
