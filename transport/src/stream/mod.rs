//! The Strand stream protocol for libp2p, in libp2p's protocol layout:
//! this module is the behaviour and its events, [`handler`] the
//! per-connection handler, [`protocol`] the protocol name and upgrade.
//!
//! ```no_run
//! # async fn f(mut swarm: libp2p::Swarm<strand_transport::stream::Behaviour>, peer: libp2p::PeerId) {
//! use futures::StreamExt;
//! use strand_transport::stream::Event;
//! let id = swarm.behaviour_mut().open(peer); // dials if not connected
//! loop {
//!     match swarm.select_next_some().await {
//!         libp2p::swarm::SwarmEvent::Behaviour(Event::Opened { id: got, stream, .. }) if got == id => {
//!             // speak Strand on `stream`
//!             break;
//!         }
//!         libp2p::swarm::SwarmEvent::Behaviour(Event::Inbound { peer, stream, .. }) => { /* a remote opened one */ }
//!         _ => {}
//!     }
//! }
//! # }
//! ```

pub mod handler;
pub mod protocol;

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll, Waker};

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, Stream, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use handler::{Handler, HandlerIn, HandlerOut};

/// Identifies a request to open a stream; the matching [`Event`] carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenId(u64);

/// What the behaviour reports.
#[derive(Debug)]
pub enum Event {
    /// A remote opened a stream.
    Inbound {
        /// The remote's (ephemeral) id.
        peer: PeerId,
        /// The remote address of the connection it came on; for a relayed
        /// one, the circuit's address on this side, which names the relay.
        remote: Option<Multiaddr>,
        /// The connection it came on.
        connection: ConnectionId,
        /// Whether that connection goes through a relay.
        relayed: bool,
        /// The stream.
        stream: Stream,
    },
    /// The stream requested by [`Behaviour::open`] is open.
    Opened {
        /// The request.
        id: OpenId,
        /// The remote.
        peer: PeerId,
        /// The remote address of the connection it is on; for a relayed
        /// one, the circuit's address on this side, which names the relay.
        remote: Option<Multiaddr>,
        /// The connection it is on.
        connection: ConnectionId,
        /// Whether that connection goes through a relay.
        relayed: bool,
        /// The stream.
        stream: Stream,
    },
    /// The stream requested by [`Behaviour::open`] could not be opened.
    OpenFailed {
        /// The request.
        id: OpenId,
        /// The remote.
        peer: PeerId,
        /// Why.
        error: String,
    },
}

/// What [`Event`]s give as a connection's remote address: the remote's
/// address, or for a relayed connection the circuit's address on this
/// side, which names the relay (`<relay addr>/p2p/<relay>/p2p-circuit`,
/// then the remote's id where this side dialled). The remote's own
/// address on a circuit this side accepted is only the id it claims
/// (`/p2p/<id>`), which says nothing of the relay it came through.
pub(crate) fn remote_of(endpoint: &ConnectedPoint) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Listener { local_addr, .. } if endpoint.is_relayed() => local_addr.clone(),
        other => other.get_remote_address().clone(),
    }
}

/// The behaviour: opens Strand streams to peers (dialling them if needed)
/// and reports streams remotes open.
#[derive(Default)]
pub struct Behaviour {
    connected: HashMap<PeerId, Vec<ConnectionId>>,
    /// Each connection's remote address ([`remote_of`]) and whether it is
    /// relayed.
    remotes: HashMap<ConnectionId, (Multiaddr, bool)>,
    awaiting_connection: HashMap<PeerId, Vec<OpenId>>,
    /// Requests handed to a connection and not yet answered: failed if the
    /// connection closes first (its handler drops them silently).
    on_connection: HashMap<OpenId, (PeerId, ConnectionId)>,
    actions: VecDeque<ToSwarm<Event, HandlerIn>>,
    next: u64,
    waker: Option<Waker>,
    /// Whether the dials it asks for take a port of their own rather
    /// than the listening one ([`Behaviour::dialling_from_new_ports`]).
    new_ports: bool,
}

impl Behaviour {
    /// A new behaviour.
    pub fn new() -> Self {
        Self::default()
    }

    /// A behaviour whose dials each take a new port, not the listening
    /// one (libp2p's default, which a hole punch needs: the port a remote
    /// sees is the port it can reach). A dial from the listening port is
    /// bound to it at every address of its family (`0.0.0.0:port` for a
    /// listener at `192.168.1.5:port`), so any other socket at that port
    /// on another address of the device, without SO_REUSEADDR, refuses
    /// every such dial; the LAN, which has no use for the port a remote
    /// sees, dials from new ports.
    pub fn dialling_from_new_ports() -> Self {
        Self {
            new_ports: true,
            ..Self::default()
        }
    }

    /// Opens a stream to `peer`, dialling it first if there is no
    /// connection (addresses come from the other behaviours, e.g. mDNS).
    /// The answer is an [`Event::Opened`] or [`Event::OpenFailed`] with the
    /// returned id.
    pub fn open(&mut self, peer: PeerId) -> OpenId {
        self.open_at(peer, Vec::new())
    }

    /// [`Behaviour::open`], dialling `addresses` if there is no connection
    /// (besides any the other behaviours know).
    pub fn open_at(&mut self, peer: PeerId, addresses: Vec<Multiaddr>) -> OpenId {
        let id = self.next_id();
        let best = self.connected.get(&peer).and_then(|conns| {
            // A direct connection where there is one: it is the faster, and
            // a relay limits what it carries.
            conns
                .iter()
                .find(|c| !self.is_relayed(**c))
                .or_else(|| conns.first())
                .copied()
        });
        if let Some(connection) = best {
            self.notify(peer, connection, id);
        } else {
            let waiting = self.awaiting_connection.entry(peer).or_default();
            if waiting.is_empty() {
                let opts = DialOpts::peer_id(peer).addresses(addresses);
                let opts = if self.new_ports {
                    opts.allocate_new_port()
                } else {
                    opts
                };
                self.actions.push_back(ToSwarm::Dial { opts: opts.build() });
            }
            waiting.push(id);
        }
        self.wake();
        id
    }

    /// Opens a stream on one connection (e.g. the direct connection that
    /// hole punching made). Fails if that connection is gone.
    pub fn open_on(&mut self, peer: PeerId, connection: ConnectionId) -> OpenId {
        let id = self.next_id();
        if self.remotes.contains_key(&connection) {
            self.notify(peer, connection, id);
        } else {
            self.actions
                .push_back(ToSwarm::GenerateEvent(Event::OpenFailed {
                    id,
                    peer,
                    error: "the connection is gone".into(),
                }));
        }
        self.wake();
        id
    }

    /// Whether `peer` has a connection that does not go through a relay.
    pub fn has_direct(&self, peer: &PeerId) -> bool {
        self.connected
            .get(peer)
            .is_some_and(|conns| conns.iter().any(|c| !self.is_relayed(*c)))
    }

    /// Whether a connection goes through a relay.
    pub fn is_relayed(&self, connection: ConnectionId) -> bool {
        self.remotes.get(&connection).is_some_and(|(_, r)| *r)
    }

    fn next_id(&mut self) -> OpenId {
        let id = OpenId(self.next);
        self.next += 1;
        id
    }

    fn notify(&mut self, peer: PeerId, connection: ConnectionId, id: OpenId) {
        self.on_connection.insert(id, (peer, connection));
        self.actions.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(connection),
            event: HandlerIn::Open(id),
        });
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::default())
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.remotes.insert(
                    e.connection_id,
                    (remote_of(e.endpoint), e.endpoint.is_relayed()),
                );
                self.connected
                    .entry(e.peer_id)
                    .or_default()
                    .push(e.connection_id);
                for id in self
                    .awaiting_connection
                    .remove(&e.peer_id)
                    .unwrap_or_default()
                {
                    self.notify(e.peer_id, e.connection_id, id);
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                self.remotes.remove(&e.connection_id);
                let lost: Vec<OpenId> = self
                    .on_connection
                    .iter()
                    .filter(|(_, (_, c))| *c == e.connection_id)
                    .map(|(id, _)| *id)
                    .collect();
                for id in lost {
                    self.on_connection.remove(&id);
                    self.actions
                        .push_back(ToSwarm::GenerateEvent(Event::OpenFailed {
                            id,
                            peer: e.peer_id,
                            error: "the connection closed".into(),
                        }));
                }
                if let Some(list) = self.connected.get_mut(&e.peer_id) {
                    list.retain(|c| *c != e.connection_id);
                    if list.is_empty() {
                        self.connected.remove(&e.peer_id);
                    }
                }
            }
            FromSwarm::DialFailure(e) => {
                if let Some(peer) = e.peer_id {
                    if !self.connected.contains_key(&peer) {
                        for id in self.awaiting_connection.remove(&peer).unwrap_or_default() {
                            self.actions
                                .push_back(ToSwarm::GenerateEvent(Event::OpenFailed {
                                    id,
                                    peer,
                                    error: e.error.to_string(),
                                }));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        let (remote, relayed) = match self.remotes.get(&connection) {
            Some((addr, relayed)) => (Some(addr.clone()), *relayed),
            None => (None, false),
        };
        let event = match event {
            HandlerOut::Inbound(stream) => Event::Inbound {
                peer,
                remote,
                connection,
                relayed,
                stream,
            },
            HandlerOut::Opened(id, stream) => {
                self.on_connection.remove(&id);
                Event::Opened {
                    id,
                    peer,
                    remote,
                    connection,
                    relayed,
                    stream,
                }
            }
            HandlerOut::Failed(id, error) => {
                self.on_connection.remove(&id);
                Event::OpenFailed { id, peer, error }
            }
        };
        self.actions.push_back(ToSwarm::GenerateEvent(event));
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.actions.pop_front() {
            Some(action) => Poll::Ready(action),
            None => {
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
