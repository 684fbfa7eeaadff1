//! Keeps the device's circuit addresses, its reservations, out of
//! identify.
//!
//! libp2p's relay client confirms `<relay>/p2p-circuit/p2p/<us>` (the
//! relay's address ends in its id) as an external address of the swarm
//! for each reservation it holds, and identify puts every external
//! address in each answer (`with_hide_listen_addrs` hides listen addresses
//! only). So every relay, and every contact once its session
//! authenticated, was told all the relays the device reserves on: its
//! home relay (a stable id), the node's own relay, relays borrowed from
//! other contacts. A relay sees a fresh relay id each epoch; that list
//! linked one epoch's id to the next.
//!
//! [`HideCircuits`] wraps identify and passes on every swarm event except
//! the confirmation or expiry of an external address that goes through a
//! relay: identify never learns one, so never tells one. Nothing needs it
//! to: contacts dial a device at circuit addresses they build from its
//! relays, which travel inside conversations; hole punching (DCUtR) offers
//! only direct addresses, taken from identify's candidates, never from
//! confirmed addresses. The other behaviours of the swarm still get every
//! event.
//!
//! It also drops the circuit addresses identify proposes as candidates
//! for our own address: what a contact observed on a relayed connection,
//! and what identify's address translation makes of a direct observation
//! and a circuit listen address. Hole punching ignores those, and AutoNAT
//! would only send them, each with a relay's id, to one of the relays to
//! test, which cannot dial back through a relay anyway.

use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::is_circuit;

/// A behaviour that never hears of the swarm's circuit addresses as
/// external ones, nor proposes one.
pub(crate) struct HideCircuits<B> {
    inner: B,
}

impl<B> HideCircuits<B> {
    pub(crate) fn new(inner: B) -> HideCircuits<B> {
        HideCircuits { inner }
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for HideCircuits<B> {
    type ConnectionHandler = THandler<B>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        let circuit = match event {
            FromSwarm::ExternalAddrConfirmed(e) => is_circuit(e.addr),
            FromSwarm::ExternalAddrExpired(e) => is_circuit(e.addr),
            _ => false,
        };
        if !circuit {
            self.inner.on_swarm_event(event);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        loop {
            match self.inner.poll(cx) {
                Poll::Ready(ToSwarm::NewExternalAddrCandidate(addr)) if is_circuit(&addr) => {
                    tracing::trace!(%addr, "not proposed as our address: a circuit");
                }
                other => return other,
            }
        }
    }
}
