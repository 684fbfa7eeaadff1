//! Inbound handshakes at once: past the bound, a new one takes the place
//! of an old one instead of being refused.
//!
//! An inbound connection is pending until its Noise and yamux handshakes
//! finish, and a stranger can hold one there by saying nothing, until the
//! transport's timeout ends it ([`super::limits::HANDSHAKE_TIMEOUT`]). A
//! bound that refuses new connections once it is full (libp2p's
//! `with_max_pending_incoming`) is then the stranger's to fill: sixteen
//! addresses with [`super::limits::MAX_PENDING_PER_IP`] silent connections
//! each hold all 64 places, and a contact who dials in is refused until
//! the stranger stops.
//!
//! So this transport wrapper counts the handshakes under way itself, and
//! when [`super::limits::MAX_PENDING_INCOMING`] are, a new one ends an old
//! one: the oldest of the address (IPv6: the /64) with the most handshakes
//! under way. A contact's device has one or two; an address holding
//! connections open has the most, so it gives way first. A contact's one
//! handshake is ended only when every address with one under way has just
//! one too, all started after it: 63 other addresses, each with a
//! connection opened in the milliseconds a handshake takes on a LAN. To
//! do that again and again, each address may start only
//! [`super::limits::NEW_CONNECTIONS_PER_IP_PER_SECOND`] a second: it takes
//! hundreds of addresses, where sixteen were enough.
//!
//! A handshake counts from when its task first runs: the swarm runs only
//! those the connection limits (per IP address, [`super::limits`]) let in,
//! so one they refuse ends nobody's.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::future::{AbortHandle, Abortable, BoxFuture};
use futures::FutureExt;
use libp2p::core::transport::{Boxed, DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::Transport;
use libp2p::Multiaddr;

use super::limits::ip_of;

/// Why a handshake ended before it finished.
#[derive(Debug, thiserror::Error)]
#[error("handshake ended to make room: more were under way than the node allows")]
pub(crate) struct Displaced;

/// A handshake under way.
#[derive(Debug)]
struct Running {
    id: u64,
    /// The address it counts under (IPv6 by its /64), if it has one.
    source: Option<IpAddr>,
    abort: AbortHandle,
}

/// The handshakes under way, oldest first.
#[derive(Debug)]
struct Slots {
    max: usize,
    next: u64,
    running: Vec<Running>,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            max,
            next: 0,
            running: Vec::new(),
        }
    }

    /// Takes a place for a handshake from `source`, ending others while
    /// the places are all taken. Returns its id, for [`Slots::release`].
    fn take(&mut self, source: Option<IpAddr>, abort: AbortHandle) -> u64 {
        while self.running.len() >= self.max {
            let Some(i) = self.victim() else { break };
            let ended = self.running.remove(i);
            tracing::debug!(source = ?ended.source, "handshake ended for a newer connection");
            ended.abort.abort();
        }
        self.next += 1;
        self.running.push(Running {
            id: self.next,
            source,
            abort,
        });
        self.next
    }

    /// The handshake that gives way: the oldest of the source with the
    /// most under way.
    fn victim(&self) -> Option<usize> {
        let mut per_source: HashMap<Option<IpAddr>, usize> = HashMap::new();
        for r in &self.running {
            *per_source.entry(r.source).or_default() += 1;
        }
        let most = per_source.values().copied().max()?;
        self.running
            .iter()
            .position(|r| per_source.get(&r.source) == Some(&most))
    }

    fn release(&mut self, id: u64) {
        if let Some(i) = self.running.iter().position(|r| r.id == id) {
            self.running.remove(i);
        }
    }
}

/// Gives the place back when the handshake ends, however it ends.
struct Place {
    slots: Arc<Mutex<Slots>>,
    id: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        // Counts every change leaves whole: a poisoned lock is taken as
        // it stands, so the place is given back whatever happened.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .release(self.id);
    }
}

/// A transport whose inbound handshakes are bounded as the module says.
/// Dials and listeners pass through.
pub(crate) struct Handshakes<O> {
    inner: Boxed<O>,
    slots: Arc<Mutex<Slots>>,
}

impl<O> Handshakes<O> {
    /// Bounds `inner`'s inbound handshakes to `max` at once.
    pub(crate) fn new(inner: Boxed<O>, max: usize) -> Handshakes<O> {
        Handshakes {
            inner,
            slots: Arc::new(Mutex::new(Slots::new(max))),
        }
    }
}

/// `upgrade`, holding a place from its first poll until it ends.
fn bounded<O: Send + 'static>(
    slots: Arc<Mutex<Slots>>,
    source: Option<IpAddr>,
    upgrade: BoxFuture<'static, io::Result<O>>,
) -> BoxFuture<'static, io::Result<O>> {
    async move {
        let (abort, registration) = AbortHandle::new_pair();
        let id = slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(source, abort);
        let _place = Place { slots, id };
        match Abortable::new(upgrade, registration).await {
            Ok(done) => done,
            Err(_aborted) => Err(io::Error::other(Displaced)),
        }
    }
    .boxed()
}

impl<O: Send + 'static> Transport for Handshakes<O> {
    type Output = O;
    type Error = io::Error;
    type ListenerUpgrade = BoxFuture<'static, io::Result<O>>;
    type Dial = BoxFuture<'static, io::Result<O>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<io::Error>> {
        self.inner.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<io::Error>> {
        self.inner.dial(addr, opts)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, io::Error>> {
        let this = self.get_mut();
        let event = match Pin::new(&mut this.inner).poll(cx) {
            Poll::Ready(event) => event,
            Poll::Pending => return Poll::Pending,
        };
        Poll::Ready(match event {
            TransportEvent::Incoming {
                listener_id,
                upgrade,
                local_addr,
                send_back_addr,
            } => {
                let source = ip_of(&send_back_addr).map(crate::ip_limit_key);
                TransportEvent::Incoming {
                    listener_id,
                    upgrade: bounded(this.slots.clone(), source, upgrade),
                    local_addr,
                    send_back_addr,
                }
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    /// Takes a place and returns the handle that says whether it was ended.
    fn take(slots: &mut Slots, source: Option<IpAddr>) -> AbortHandle {
        let (abort, _) = AbortHandle::new_pair();
        slots.take(source, abort.clone());
        abort
    }

    #[test]
    fn past_the_bound_the_busiest_address_gives_way_oldest_first() {
        let mut slots = Slots::new(4);
        let contact = take(&mut slots, ip(1));
        let s1 = take(&mut slots, ip(2));
        let s2 = take(&mut slots, ip(2));
        let s3 = take(&mut slots, ip(2));
        assert!(![&contact, &s1, &s2, &s3].iter().any(|h| h.is_aborted()));
        // Full: a fifth ends the oldest of 10.0.0.2, which has the most.
        let other = take(&mut slots, ip(3));
        assert!(s1.is_aborted());
        assert!(!contact.is_aborted() && !s2.is_aborted() && !s3.is_aborted());
        assert_eq!(slots.running.len(), 4);
        // 10.0.0.2 still has the most.
        take(&mut slots, ip(4));
        assert!(s2.is_aborted());
        assert!(!contact.is_aborted() && !other.is_aborted());
        // Now every address has one: the oldest of all, the contact's.
        take(&mut slots, ip(5));
        assert!(contact.is_aborted());
        assert!(!s3.is_aborted() && !other.is_aborted());
    }

    #[test]
    fn an_ended_handshake_gives_its_place_back() {
        let mut slots = Slots::new(2);
        let (a, _) = AbortHandle::new_pair();
        let first = slots.take(ip(1), a.clone());
        let b = take(&mut slots, ip(2));
        slots.release(first);
        let c = take(&mut slots, ip(3));
        assert!(!a.is_aborted() && !b.is_aborted() && !c.is_aborted());
        assert_eq!(slots.running.len(), 2);
    }
}
