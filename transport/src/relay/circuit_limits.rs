//! Inbound circuits counted per relay, in their handshakes and, once
//! established, until a Strand session authenticates them: one relay
//! cannot take every slot.
//!
//! The relay client's swarm takes a bounded number of inbound connections
//! in their handshakes at once. An inbound circuit's remote is only the id
//! its relay says it has (`/p2p/<id>`), which costs nothing to make, and
//! its handshake lasts as long as the relay (or whoever dials through it)
//! leaves it unanswered, up to the swarm's connection timeout (10 s). So a
//! relay holding circuits in their handshakes, opened again as they time
//! out, took every slot, and every other inbound connection was refused:
//! circuits through other relays, and hole-punched connections. This
//! behaviour counts inbound circuits in their handshakes by the relay
//! they come through, named by this device's own connection to it
//! ([`super::relay_name`]), and refuses past its limit (the client's
//! `MAX_PENDING_CIRCUITS_PER_RELAY`) before anything else counts them.
//!
//! Established circuits had the same flaw for longer. The swarm holds a
//! bounded number of established inbound connections
//! ([`RelayConfig::max_incoming`](super::RelayConfig::max_incoming)),
//! counted for all relays together, and a circuit no session
//! authenticated stays until the gate cuts it
//! ([`AUTHENTICATE_WITHIN`](super::AUTHENTICATE_WITHIN), 30 s), to be
//! opened again at once. Strangers dialling through one relay (each with
//! an id of their own, or the relay itself with ids it makes up) held
//! them all, and every contact's circuit through every other relay was
//! refused while they lasted. So established inbound circuits that no
//! session has authenticated yet are counted by relay as well, and a new
//! one through a relay that holds its share ([`CircuitLimits::share`])
//! is refused. Nothing is closed for it: a full share refuses new
//! circuits, it does not evict the ones in.
//!
//! A circuit leaves its relay's count once a Strand session on it
//! authenticates a contact (the client tells this behaviour when it opens
//! the gate): a contact's session proved its key, so contacts linked
//! through a relay never fill its share, and count only in the swarm's
//! total. A contact's new circuit counts for the few round trips of its
//! handshake; through a relay whose share strangers hold, it is refused
//! until their circuits are cut, and meanwhile the contact reaches this
//! device through its other relays. Direct connections (hole punching)
//! are no circuits and count only in the swarm's total, and per IP
//! address (`IpLimits`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::{is_circuit, relay_name};
use crate::Reason;

/// Connections counted by the relay they came through.
#[derive(Debug, Default)]
struct ByRelay {
    /// How many, by relay.
    counts: HashMap<String, usize>,
    /// The relay each one came through.
    relay_of: HashMap<ConnectionId, String>,
}

impl ByRelay {
    /// How many came through `relay`.
    fn through(&self, relay: &str) -> usize {
        self.counts.get(relay).copied().unwrap_or(0)
    }

    fn add(&mut self, connection: ConnectionId, relay: String) {
        *self.counts.entry(relay.clone()).or_default() += 1;
        self.relay_of.insert(connection, relay);
    }

    /// Stops counting `connection` (if it was counted).
    fn remove(&mut self, connection: ConnectionId) {
        if let Some(relay) = self.relay_of.remove(&connection) {
            if let Some(n) = self.counts.get_mut(&relay) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&relay);
                }
            }
        }
    }
}

/// The behaviour. Refuses inbound circuits past a limit through one
/// relay: in their handshakes, and established but not yet
/// authenticated.
#[derive(Debug)]
pub(crate) struct CircuitLimits {
    /// Circuits in their handshakes through one relay, at most.
    pending_limit: usize,
    /// Established inbound connections the swarm holds at once, all
    /// together (what the shares are cut from).
    max_incoming: usize,
    /// The relays this device reserves on (what the shares are split by).
    relays: usize,
    /// Circuits in their handshakes.
    pending: HashMap<String, usize>,
    /// The relay each of those came through.
    mine: HashMap<ConnectionId, String>,
    /// Established inbound circuits no session has authenticated yet.
    unauthenticated: ByRelay,
}

impl CircuitLimits {
    /// Limits for a swarm that holds `max_incoming` established inbound
    /// connections, taking at most `pending_limit` circuits in their
    /// handshakes through one relay.
    pub(crate) fn new(pending_limit: usize, max_incoming: usize) -> Self {
        CircuitLimits {
            pending_limit,
            max_incoming,
            relays: 0,
            pending: HashMap::new(),
            mine: HashMap::new(),
            unauthenticated: ByRelay::default(),
        }
    }

    /// This device now reserves on `relays` relays. Circuits already in
    /// past a smaller share stay; new ones wait until their relay is
    /// below it.
    pub(crate) fn set_relays(&mut self, relays: usize) {
        self.relays = relays;
    }

    /// Established circuits no session has authenticated yet that one
    /// relay may hold: half of the swarm's established inbound connections,
    /// split equally among the relays this device reserves on (at least
    /// one each).
    ///
    /// Half, so that strangers dialling through every relay at once still
    /// leave the other half to contacts' authenticated circuits and to
    /// direct connections. Split by the relays, so that the shares add up
    /// to no more than that half whatever the number of relays the device
    /// reserves on (its own list, the one it serves, and those contacts
    /// offer; past 128 relays with the default 256, which nobody keeps,
    /// each still gets one): a constant share would add up past the total
    /// with enough relays, and strangers through all of them would keep
    /// out every new contact.
    /// Every relay in the list counts, reserved or not: one not reserved
    /// on holds no circuits, and the shares do not move as reservations
    /// come and go. Honest use fits: a contact's circuit counts only
    /// during its handshake (a few round trips), and the node takes at
    /// most 32 links through one relay in their preamble anyway
    /// (strand-node's `MAX_PENDING_PER_RELAY`), which is the share with
    /// four relays (256 / 2 / 4).
    pub(crate) fn share(&self) -> usize {
        (self.max_incoming / 2 / self.relays.max(1)).max(1)
    }

    /// A Strand session on `connection` authenticated a contact: it no
    /// longer counts in its relay's share.
    pub(crate) fn authenticated(&mut self, connection: ConnectionId) {
        self.unauthenticated.remove(connection);
    }

    /// How many circuits through `relay` are in their handshakes.
    #[cfg(test)]
    fn pending_through(&self, relay: &str) -> usize {
        self.pending.get(relay).copied().unwrap_or(0)
    }

    fn release(&mut self, connection: ConnectionId) {
        if let Some(relay) = self.mine.remove(&connection) {
            if let Some(n) = self.pending.get_mut(&relay) {
                *n -= 1;
                if *n == 0 {
                    self.pending.remove(&relay);
                }
            }
        }
    }
}

impl NetworkBehaviour for CircuitLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        local: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        if !is_circuit(local) {
            return Ok(());
        }
        let relay = relay_name(local);
        let n = self.pending.entry(relay.clone()).or_default();
        if *n >= self.pending_limit {
            tracing::debug!(%relay, "circuit refused: too many in handshake through its relay");
            return Err(ConnectionDenied::new(Reason(format!(
                "too many circuits in handshake through relay {relay}"
            ))));
        }
        *n += 1;
        self.mine.insert(connection, relay);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _: PeerId,
        local: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.release(connection);
        if !is_circuit(local) {
            return Ok(dummy::ConnectionHandler);
        }
        let relay = relay_name(local);
        let share = self.share();
        if self.unauthenticated.through(&relay) >= share {
            tracing::debug!(
                %relay,
                share,
                "circuit refused: its relay holds its share of circuits not yet authenticated"
            );
            return Err(ConnectionDenied::new(Reason(format!(
                "too many circuits not yet authenticated through relay {relay}"
            ))));
        }
        self.unauthenticated.add(connection, relay);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            // A circuit refused here or by a later behaviour (in its
            // handshake or once established), or whose handshake failed
            // or timed out.
            FromSwarm::ListenFailure(e) => {
                self.release(e.connection_id);
                self.unauthenticated.remove(e.connection_id);
            }
            FromSwarm::ConnectionClosed(e) => self.unauthenticated.remove(e.connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use libp2p::core::ConnectedPoint;
    use libp2p::swarm::{ConnectionClosed, ListenError, ListenFailure};

    use super::*;

    /// The circuit address on this side of one through `relay` (what the
    /// relay client's transport gives as its local address).
    fn through(relay: &PeerId) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/4001/p2p/{relay}/p2p-circuit")
            .parse()
            .expect("a circuit address")
    }

    /// A circuit from a made-up id (the remote address its relay gives).
    fn from_anyone() -> Multiaddr {
        format!("/p2p/{}", PeerId::random())
            .parse()
            .expect("an id address")
    }

    /// Whether `limits` lets in an established connection whose local
    /// address is `local`, from a made-up id.
    fn establish(limits: &mut CircuitLimits, connection: ConnectionId, local: &Multiaddr) -> bool {
        limits
            .handle_established_inbound_connection(
                connection,
                PeerId::random(),
                local,
                &from_anyone(),
            )
            .is_ok()
    }

    /// Circuits through one relay in their handshakes, whatever ids they
    /// come from, are refused past the limit; one through another relay,
    /// and a direct connection, are not counted with them; and a slot
    /// comes back when a handshake ends.
    #[test]
    fn circuits_in_handshake_count_by_relay() {
        let (r1, r2) = (PeerId::random(), PeerId::random());
        let mut limits = CircuitLimits::new(3, 256);
        let mut next = 0;
        let mut id = || {
            next += 1;
            ConnectionId::new_unchecked(next)
        };
        let flood: Vec<ConnectionId> = (0..3).map(|_| id()).collect();
        for &c in &flood {
            assert!(limits
                .handle_pending_inbound_connection(c, &through(&r1), &from_anyone())
                .is_ok());
        }
        assert!(limits
            .handle_pending_inbound_connection(id(), &through(&r1), &from_anyone())
            .is_err());
        assert!(limits
            .handle_pending_inbound_connection(id(), &through(&r2), &from_anyone())
            .is_ok());
        let direct: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().expect("an address");
        let remote: Multiaddr = "/ip4/127.0.0.1/tcp/5555".parse().expect("an address");
        assert!(limits
            .handle_pending_inbound_connection(id(), &direct, &remote)
            .is_ok());
        assert_eq!(limits.pending_through(&r1.to_string()), 3);

        // One handshake ends: its slot is free again.
        assert!(limits
            .handle_established_inbound_connection(
                flood[0],
                PeerId::random(),
                &through(&r1),
                &from_anyone(),
            )
            .is_ok());
        assert_eq!(limits.pending_through(&r1.to_string()), 2);
        assert!(limits
            .handle_pending_inbound_connection(id(), &through(&r1), &from_anyone())
            .is_ok());
    }

    /// Established circuits no session has authenticated count by relay
    /// too: past a relay's share (half the swarm's inbound connections,
    /// split by the relays), a new one through it is refused, whatever ids
    /// they come from; circuits through another relay and direct
    /// connections are not counted with them; and a place comes back when
    /// a circuit's session authenticates (a contact's links never fill the
    /// share), when one closes, and when a later behaviour refused one.
    #[test]
    fn established_circuits_not_yet_authenticated_count_by_relay() {
        let (r1, r2) = (PeerId::random(), PeerId::random());
        // 16 inbound connections, two relays: 4 each.
        let mut limits = CircuitLimits::new(32, 16);
        limits.set_relays(2);
        assert_eq!(limits.share(), 4);
        let mut next = 0;
        let mut id = || {
            next += 1;
            ConnectionId::new_unchecked(next)
        };
        let flood: Vec<ConnectionId> = (0..4).map(|_| id()).collect();
        for &c in &flood {
            assert!(establish(&mut limits, c, &through(&r1)));
        }
        assert!(
            !establish(&mut limits, id(), &through(&r1)),
            "R1 holds its share"
        );
        assert!(
            establish(&mut limits, id(), &through(&r2)),
            "R2 has its own"
        );
        let direct: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().expect("an address");
        for _ in 0..8 {
            assert!(
                establish(&mut limits, id(), &direct),
                "direct ones count apart"
            );
        }

        // A session authenticates a contact on one: it leaves the share,
        // and stays.
        limits.authenticated(flood[0]);
        let newcomer = id();
        assert!(establish(&mut limits, newcomer, &through(&r1)));
        assert!(!establish(&mut limits, id(), &through(&r1)));

        // One closes: its place comes back.
        let endpoint = ConnectedPoint::Listener {
            local_addr: through(&r1),
            send_back_addr: from_anyone(),
        };
        limits.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: PeerId::random(),
            connection_id: flood[1],
            endpoint: &endpoint,
            cause: None,
            remaining_established: 0,
        }));
        let last = id();
        assert!(establish(&mut limits, last, &through(&r1)));
        assert!(!establish(&mut limits, id(), &through(&r1)));

        // A later behaviour refused one this one let in: its place comes
        // back too.
        let refused = ListenError::Denied {
            cause: ConnectionDenied::new(Reason("refused further on".into())),
        };
        limits.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &through(&r1),
            send_back_addr: &from_anyone(),
            error: &refused,
            connection_id: last,
            peer_id: None,
        }));
        assert!(establish(&mut limits, id(), &through(&r1)));

        // More relays, smaller shares: the circuits in stay, new ones wait
        // until their relay is below its share.
        limits.set_relays(4);
        assert_eq!(limits.share(), 2);
        assert!(establish(&mut limits, id(), &through(&r2)), "R2 held 1");
        assert!(!establish(&mut limits, id(), &through(&r2)), "R2 holds 2");
        assert!(!establish(&mut limits, id(), &through(&r1)), "R1 holds 4");
    }

    /// However many relays, each gets a place, and the shares add up to
    /// no more than half the swarm's inbound connections while they can.
    #[test]
    fn shares_split_half_the_connections_among_the_relays() {
        let mut limits = CircuitLimits::new(32, 256);
        for relays in [0, 1, 2, 3, 4, 7, 8, 100, 128, 1000] {
            limits.set_relays(relays);
            let share = limits.share();
            assert!(share >= 1, "{relays} relays");
            if relays <= 128 {
                assert!(
                    share * relays.max(1) <= 128,
                    "{relays} relays, {share} each"
                );
            }
        }
        limits.set_relays(4);
        assert_eq!(limits.share(), 32);
    }
}
