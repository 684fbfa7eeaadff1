//! Circuits in their handshakes, counted per relay: one relay cannot take
//! every slot.
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

/// The behaviour. Refuses inbound circuits past `limit` in their
/// handshakes through one relay.
#[derive(Debug)]
pub(crate) struct PendingCircuits {
    limit: usize,
    /// Circuits in their handshakes, by relay.
    pending: HashMap<String, usize>,
    /// The relay each of them came through.
    mine: HashMap<ConnectionId, String>,
}

impl PendingCircuits {
    pub(crate) fn new(limit: usize) -> Self {
        PendingCircuits {
            limit,
            pending: HashMap::new(),
            mine: HashMap::new(),
        }
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

impl NetworkBehaviour for PendingCircuits {
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
        if *n >= self.limit {
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
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.release(connection);
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
        // A circuit refused here or by a later behaviour, or whose
        // handshake failed or timed out.
        if let FromSwarm::ListenFailure(e) = event {
            self.release(e.connection_id);
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

    /// Circuits through one relay in their handshakes, whatever ids they
    /// come from, are refused past the limit; one through another relay,
    /// and a direct connection, are not counted with them; and a slot
    /// comes back when a handshake ends.
    #[test]
    fn circuits_in_handshake_count_by_relay() {
        let (r1, r2) = (PeerId::random(), PeerId::random());
        let mut limits = PendingCircuits::new(3);
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
}
