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
use libp2p::core::Endpoint;
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
        /// The remote address of the connection it came on.
        remote: Option<Multiaddr>,
        /// The stream.
        stream: Stream,
    },
    /// The stream requested by [`Behaviour::open`] is open.
    Opened {
        /// The request.
        id: OpenId,
        /// The remote.
        peer: PeerId,
        /// The remote address of the connection it is on.
        remote: Option<Multiaddr>,
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

/// The behaviour: opens Strand streams to peers (dialling them if needed)
/// and reports streams remotes open.
#[derive(Default)]
pub struct Behaviour {
    connected: HashMap<PeerId, Vec<ConnectionId>>,
    remotes: HashMap<ConnectionId, Multiaddr>,
    awaiting_connection: HashMap<PeerId, Vec<OpenId>>,
    actions: VecDeque<ToSwarm<Event, HandlerIn>>,
    next: u64,
    waker: Option<Waker>,
}

impl Behaviour {
    /// A new behaviour.
    pub fn new() -> Self {
        Self::default()
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
        let id = OpenId(self.next);
        self.next += 1;
        if self.connected.contains_key(&peer) {
            self.actions.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::Any,
                event: HandlerIn::Open(id),
            });
        } else {
            let waiting = self.awaiting_connection.entry(peer).or_default();
            if waiting.is_empty() {
                self.actions.push_back(ToSwarm::Dial {
                    opts: DialOpts::peer_id(peer).addresses(addresses).build(),
                });
            }
            waiting.push(id);
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        id
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
                self.remotes
                    .insert(e.connection_id, e.endpoint.get_remote_address().clone());
                self.connected
                    .entry(e.peer_id)
                    .or_default()
                    .push(e.connection_id);
                for id in self
                    .awaiting_connection
                    .remove(&e.peer_id)
                    .unwrap_or_default()
                {
                    self.actions.push_back(ToSwarm::NotifyHandler {
                        peer_id: e.peer_id,
                        handler: NotifyHandler::One(e.connection_id),
                        event: HandlerIn::Open(id),
                    });
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                self.remotes.remove(&e.connection_id);
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
        let remote = self.remotes.get(&connection).cloned();
        let event = match event {
            HandlerOut::Inbound(stream) => Event::Inbound {
                peer,
                remote,
                stream,
            },
            HandlerOut::Opened(id, stream) => Event::Opened {
                id,
                peer,
                remote,
                stream,
            },
            HandlerOut::Failed(id, error) => Event::OpenFailed { id, peer, error },
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
