//! A gate in front of the protocols that answer a remote before Strand
//! knows who it is: identify (our agent, protocols and how we see them)
//! and DCUtR (our public addresses, to punch a hole), and AutoNAT's
//! dial-back.
//!
//! Anyone who ever saw an invite can compute the relay id a device has
//! this epoch and dial it through the relay. Without the gate, identify
//! and DCUtR answered such a stranger at once, before Strand's handshake:
//! the device's public IP and port, and that it is online. Behind the
//! gate, a connection's handler for the wrapped behaviour answers no
//! stream the remote opens and starts none of its own until the gate is
//! opened for that connection: at once for the relays this device
//! reserves on (it needs their identify to learn its public address),
//! and for any other connection only when a Strand session on it
//! authenticated its remote as a contact ([`crate::Authenticated`]).
//!
//! The two ends of a link authenticate each other at about the same
//! time, never at once: the streams the remote opens before this end's
//! gate opens are held (at most [`MAX_HELD`]) and handed to the wrapped
//! handler when it opens. Refusing them instead lost the contact's
//! identify request, which libp2p asks again only minutes later, and with
//! it the hole punch.
//!
//! A stranger's gate never opens, and its held streams would keep its
//! connection alive (libp2p closes only connections with no stream) for as
//! long as the relay kept the circuit: a stranger could fill every
//! connection slot the swarm has, and keep contacts out. So an inbound
//! connection whose gate is still closed [`AUTHENTICATE_WITHIN`] after it
//! was established is closed. Connections this device opened (to its
//! relays, to a contact's relay, through a circuit it asked for) are its
//! own choice and are not.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use either::Either;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{
    ConnectionEvent, FullyNegotiatedInbound, ListenUpgradeError, SendWrapper,
};
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId,
    FromSwarm, NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use tokio::time::{Instant, Sleep};

/// Streams the remote opened before the gate opened, held per connection
/// (identify and DCUtR open one or two each); more are dropped.
pub(crate) const MAX_HELD: usize = 8;

/// An inbound connection no Strand session authenticated within this is
/// closed: three times strand-sync's handshake timeout (10 s), so a
/// contact's session on a slow link has time, and a stranger's connection
/// goes soon after its handshake fails.
pub const AUTHENTICATE_WITHIN: Duration = Duration::from_secs(30);

/// A behaviour behind the gate.
pub(crate) struct Gate<B> {
    inner: B,
    /// Peers whose connections are open from the start: the relays.
    trusted: HashSet<PeerId>,
    /// Connections the gate is open for.
    open: HashSet<ConnectionId>,
    /// Connections to tell their handler that the gate opened.
    opening: VecDeque<(PeerId, ConnectionId)>,
    /// Inbound connections not open when established, with when they are
    /// closed if still not open (in that order: the wait is the same for
    /// all).
    closing: VecDeque<(Instant, PeerId, ConnectionId)>,
    /// Wakes the behaviour when the first of `closing` is due.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> Gate<B> {
    pub(crate) fn new(inner: B) -> Gate<B> {
        Gate {
            inner,
            trusted: HashSet::new(),
            open: HashSet::new(),
            opening: VecDeque::new(),
            closing: VecDeque::new(),
            timer: None,
        }
    }

    /// The peers (relays) whose connections need no authentication.
    /// The behaviour behind the gate.
    pub(crate) fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    pub(crate) fn trust(&mut self, peers: impl IntoIterator<Item = PeerId>) {
        self.trusted = peers.into_iter().collect();
    }

    /// Opens the gate for `connection`: a Strand session on it
    /// authenticated `peer`.
    pub(crate) fn open(&mut self, peer: PeerId, connection: ConnectionId) {
        if self.open.insert(connection) {
            self.opening.push_back((peer, connection));
        }
    }

    /// The next inbound connection whose time to authenticate ran out
    /// with its gate closed, to close; else the timer set for the next.
    fn close_due<T, I>(&mut self, cx: &mut Context<'_>) -> Option<ToSwarm<T, I>> {
        loop {
            let &(due, peer_id, connection) = self.closing.front()?;
            if self.open.contains(&connection) {
                self.closing.pop_front();
                continue;
            }
            if due <= Instant::now() {
                self.closing.pop_front();
                tracing::debug!(%peer_id, "closing a connection no session authenticated");
                return Some(ToSwarm::CloseConnection {
                    peer_id,
                    connection: CloseConnection::One(connection),
                });
            }
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            if timer.deadline() != due {
                timer.as_mut().reset(due);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return None;
            }
        }
    }

    /// The handler of a new connection: open at once to a relay this
    /// device reserves on, reached directly (`relayed`: the connection
    /// goes through a circuit). A circuit whose remote claims a relay's id
    /// is the relay speaking for itself through its own circuit, or
    /// someone holding its key: it waits for a session like any other
    /// (before, it was opened at once, and the relay could have this
    /// device answer identify and DCUtR over it, and dial the hundreds of
    /// addresses a DCUtR answer may name).
    fn handler<H: ConnectionHandler>(
        &mut self,
        connection: ConnectionId,
        peer: &PeerId,
        relayed: bool,
        inner: H,
    ) -> Gated<H> {
        let open = !relayed && self.trusted.contains(peer);
        if open {
            self.open.insert(connection);
        }
        Gated {
            inner,
            open,
            waker: None,
            held: VecDeque::new(),
        }
    }
}

/// What the gate's behaviour tells a connection's handler.
#[derive(Debug)]
pub(crate) enum GateIn<T> {
    /// The gate is open for this connection from now on.
    Open,
    /// For the wrapped handler.
    Inner(T),
}

impl<B: NetworkBehaviour> NetworkBehaviour for Gate<B> {
    type ConnectionHandler = Gated<THandler<B>>;
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
        let inner = self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        let relayed = crate::relay::is_circuit(local_addr) || crate::relay::is_circuit(remote_addr);
        let handler = self.handler(connection_id, &peer, relayed, inner);
        if !handler.open {
            self.closing
                .push_back((Instant::now() + AUTHENTICATE_WITHIN, peer, connection_id));
        }
        Ok(handler)
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
        let inner = self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        Ok(self.handler(connection_id, &peer, crate::relay::is_circuit(addr), inner))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(closed) = event {
            self.open.remove(&closed.connection_id);
            self.opening.retain(|(_, c)| *c != closed.connection_id);
            self.closing.retain(|(_, _, c)| *c != closed.connection_id);
        }
        self.inner.on_swarm_event(event);
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
        if let Some((peer_id, connection)) = self.opening.pop_front() {
            return Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: GateIn::Open,
            });
        }
        if let Some(close) = self.close_due(cx) {
            return Poll::Ready(close);
        }
        self.inner.poll(cx).map(|e| e.map_in(GateIn::Inner))
    }
}

/// A connection's handler behind the gate: while closed it holds the
/// remote's streams unanswered and is not polled (so opens none of its
/// own); what the behaviour sends it waits in the wrapped handler.
pub(crate) struct Gated<H: ConnectionHandler> {
    inner: H,
    open: bool,
    waker: Option<Waker>,
    /// Streams the remote opened while the gate was closed.
    held: VecDeque<FullyNegotiatedInbound<H::InboundProtocol, H::InboundOpenInfo>>,
}

impl<H: ConnectionHandler> ConnectionHandler for Gated<H> {
    type FromBehaviour = GateIn<H::FromBehaviour>;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = Either<SendWrapper<H::InboundProtocol>, SendWrapper<DeniedUpgrade>>;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = Either<H::InboundOpenInfo, ()>;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        if self.open || self.held.len() < MAX_HELD {
            self.inner
                .listen_protocol()
                .map_upgrade(|u| Either::Left(SendWrapper(u)))
                .map_info(Either::Left)
        } else {
            SubstreamProtocol::new(Either::Right(SendWrapper(DeniedUpgrade)), Either::Right(()))
        }
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        match event {
            GateIn::Open => {
                self.open = true;
                for held in std::mem::take(&mut self.held) {
                    self.inner
                        .on_connection_event(ConnectionEvent::FullyNegotiatedInbound(held));
                }
                if let Some(w) = self.waker.take() {
                    w.wake();
                }
            }
            GateIn::Inner(e) => self.inner.on_behaviour_event(e),
        }
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if !self.open {
            self.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        self.inner.poll(cx)
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info }) => {
                // A denied upgrade never completes; a stream taken while
                // closed waits for the gate (or is dropped past MAX_HELD).
                if let (futures::future::Either::Left(protocol), Either::Left(info)) =
                    (protocol, info)
                {
                    let stream = FullyNegotiatedInbound { protocol, info };
                    if self.open {
                        self.inner
                            .on_connection_event(ConnectionEvent::FullyNegotiatedInbound(stream))
                    } else if self.held.len() < MAX_HELD {
                        self.held.push_back(stream);
                    }
                }
            }
            ConnectionEvent::ListenUpgradeError(ListenUpgradeError { info, error }) => {
                if let (Either::Left(info), Either::Left(error)) = (info, error) {
                    self.inner
                        .on_connection_event(ConnectionEvent::ListenUpgradeError(
                            ListenUpgradeError { info, error },
                        ));
                }
            }
            ConnectionEvent::FullyNegotiatedOutbound(e) => self
                .inner
                .on_connection_event(ConnectionEvent::FullyNegotiatedOutbound(e)),
            ConnectionEvent::DialUpgradeError(e) => self
                .inner
                .on_connection_event(ConnectionEvent::DialUpgradeError(e)),
            ConnectionEvent::AddressChange(e) => self
                .inner
                .on_connection_event(ConnectionEvent::AddressChange(e)),
            ConnectionEvent::LocalProtocolsChange(e) => self
                .inner
                .on_connection_event(ConnectionEvent::LocalProtocolsChange(e)),
            ConnectionEvent::RemoteProtocolsChange(e) => self
                .inner
                .on_connection_event(ConnectionEvent::RemoteProtocolsChange(e)),
            _ => {}
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }
}
