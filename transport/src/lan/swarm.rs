//! One generation of the LAN transport: a libp2p swarm with one ephemeral
//! identity, on a task of its own.
//!
//! The current generation listens, answers mDNS, dials and opens streams.
//! When the identity rotates, the old generation *drains*: it closes its
//! listeners (so mDNS announces nothing for it) and keeps only the
//! connections it already has, until the last one closes.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::timeout::TransportTimeout;
use libp2p::core::transport::ListenerId;
use libp2p::core::{upgrade, Transport as _};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{identity, mdns, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use super::handshakes::Handshakes;
use super::limits::{ip_of, IpLimits, SharedCounts, HANDSHAKE_TIMEOUT, MAX_PENDING_INCOMING};
use super::{LanConfig, Shared};
use crate::generation::{next_event, poll_until_idle, LinkReply, ListenReply, Listens};
use crate::stream::{self, OpenId};
use crate::{Direction, Link, LinkKind, Reason, Remote, TransportError, TransportEvent};

/// Bound on queued commands to a generation's task.
pub(crate) const COMMAND_QUEUE: usize = 64;
/// Streams being opened at once by one generation: more means the node
/// asks faster than connections negotiate.
const MAX_OPENING: usize = COMMAND_QUEUE * 4;
/// Connections idle this long are closed (sessions keep theirs busy with
/// keepalives).
const IDLE_CONNECTION: Duration = Duration::from_secs(90);
/// Inbound connections held at once, from everyone: a few per contact.
const MAX_ESTABLISHED_INCOMING: u32 = 256;
/// Connections to one PeerId (ephemeral, so this only stops accidents).
const MAX_PER_PEER: u32 = 4;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    ip_limits: IpLimits,
    limits: connection_limits::Behaviour,
    stream: stream::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

/// What a generation's task does for the handle.
pub(crate) enum Command {
    /// Listen on an address; the answer is the first address it got, or
    /// `None` if none came soon ([`ListenReply`]). Such a listener still
    /// listens: each address it gets later is reported as it comes
    /// ([`TransportEvent::Listening`], [`Command::Addresses`]).
    Listen { addr: Multiaddr, reply: ListenReply },
    /// Connect to an address and open a stream.
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<Link, TransportError>>,
    },
    /// Open a stream to a discovered peer at these addresses.
    Open {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<Link, TransportError>>,
    },
    /// The addresses it listens on.
    Addresses {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// Each open listener: the address it was asked to listen on, and
    /// the first address it got, if it has one. The next generation
    /// learns from these the port chosen for a port 0, which it takes (a
    /// listen answered before its listener had an address leaves that
    /// port unknown to the LAN until then: [`super::learn_ports`]), and
    /// which ports this one holds, which it does not check for another
    /// program's socket ([`super::Lan::take_over`]).
    Listeners {
        reply: oneshot::Sender<Vec<(Multiaddr, Option<Multiaddr>)>>,
    },
    /// Close the listeners, keep the connections; answer once the
    /// listeners are closed. The task ends with its last connection.
    Drain { reply: oneshot::Sender<()> },
}

/// A running generation.
pub(crate) type Generation = crate::generation::Generation<Command>;

/// One of a generation's open listeners.
struct Listener {
    /// The address it was asked to listen on.
    asked: Multiaddr,
    /// The first address it got, once it has one.
    first: Option<Multiaddr>,
}

/// Builds a swarm with a fresh identity and starts its task.
pub(crate) fn spawn(
    config: &LanConfig,
    counts: SharedCounts,
    shared: std::sync::Weak<Shared>,
    events: mpsc::Sender<TransportEvent>,
) -> Result<Generation, TransportError> {
    let key = identity::Keypair::generate_ed25519();
    let local = key.public().to_peer_id();
    let swarm = Swarm::new(
        build_transport(&key)?,
        build_behaviour(config, counts, local)?,
        local,
        libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(IDLE_CONNECTION),
    );
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let task = tokio::spawn(run(swarm, rx, events, shared));
    Ok(Generation {
        commands: tx,
        local,
        task,
    })
}

/// TCP with Noise and yamux (and QUIC beside it), what libp2p's
/// `SwarmBuilder::with_tcp` and `with_quic` build, with its handshakes
/// bounded in time ([`HANDSHAKE_TIMEOUT`]) and the inbound ones in number
/// ([`MAX_PENDING_INCOMING`], [`Handshakes`]). The bound in number is the
/// transport's, not a behaviour's: a behaviour can refuse a new
/// connection, but cannot end a pending one to make room for it.
fn build_transport(
    key: &identity::Keypair,
) -> Result<libp2p::core::transport::Boxed<(PeerId, StreamMuxerBox)>, TransportError> {
    let noise = noise::Config::new(key).map_err(|e| TransportError::Setup(Box::new(e)))?;
    let upgraded = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .map_err(Surfaced)
        .upgrade(upgrade::Version::V1Lazy)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    #[cfg(feature = "quic")]
    let upgraded = upgraded
        .or_transport(
            libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(key))
                .map_err(Surfaced::quic)
                .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer))),
        )
        .map(|either, _| either.into_inner());
    let timed = TransportTimeout::new(upgraded, HANDSHAKE_TIMEOUT).boxed();
    Ok(Handshakes::new(timed, MAX_PENDING_INCOMING).boxed())
}

/// An error of the TCP or QUIC transport, as the layers above them pass
/// it on. Those layers (the upgrades, the choice between TCP and QUIC)
/// give as their source the *source* of the error they wrap, not that
/// error, and the system's answer (an `io::Error` with an OS code) has
/// none: it fell out of the chain, and only its text was left. Wrapped in
/// this, it is this error's source, so a walk down the sources finds it
/// ([`super::gone`]: an address gone, or a port taken). Its text is the
/// error's own, so messages read as before.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Surfaced(#[source] std::io::Error);

#[cfg(feature = "quic")]
impl Surfaced {
    /// QUIC's error: that of its socket as it is, any other (a
    /// handshake's, a connection's) inside an `io::Error` of its own.
    fn quic(e: libp2p::quic::Error) -> Surfaced {
        match e {
            libp2p::quic::Error::Io(e) => Surfaced(e),
            other => Surfaced(std::io::Error::other(other)),
        }
    }
}

fn build_behaviour(
    config: &LanConfig,
    counts: SharedCounts,
    local: PeerId,
) -> Result<Behaviour, TransportError> {
    let mdns = if config.mdns {
        Some(
            mdns::tokio::Behaviour::new(mdns::Config::default(), local)
                .map_err(|e| TransportError::Setup(Box::new(e)))?,
        )
    } else {
        None
    };
    Ok(Behaviour {
        ip_limits: IpLimits::new(counts),
        limits: connection_limits::Behaviour::new(
            ConnectionLimits::default()
                .with_max_established_incoming(Some(MAX_ESTABLISHED_INCOMING))
                .with_max_established_per_peer(Some(MAX_PER_PEER)),
        ),
        // Dials from new ports ([`stream::Behaviour::dialling_from_new_ports`]).
        stream: stream::Behaviour::dialling_from_new_ports(),
        mdns: Toggle::from(mdns),
    })
}

fn dial_error(target: impl ToString, reason: impl ToString) -> TransportError {
    TransportError::Dial {
        target: target.to_string(),
        source: Box::new(Reason(reason.to_string())),
    }
}

fn link(direction: Direction, remote: Option<&Multiaddr>, stream: libp2p::Stream) -> Link {
    Link {
        kind: LinkKind::Lan,
        direction,
        remote: remote.and_then(ip_of).map_or(Remote::Unknown, Remote::Ip),
        stream: Box::new(stream),
        authenticated: None,
    }
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<TransportEvent>,
    shared: std::sync::Weak<Shared>,
) {
    let mut dials: HashMap<ConnectionId, (Multiaddr, LinkReply)> = HashMap::new();
    let mut opens: HashMap<OpenId, (String, LinkReply)> = HashMap::new();
    let mut listens = Listens::default();
    let mut listeners: HashMap<ListenerId, Listener> = HashMap::new();
    let mut draining: Option<Vec<oneshot::Sender<()>>> = None;
    // Events the swarm gave while it was polled out of turn (below).
    let mut stash: VecDeque<SwarmEvent<BehaviourEvent>> = VecDeque::new();
    loop {
        if let Some(waiting) = &mut draining {
            if listeners.is_empty() {
                if !waiting.is_empty() {
                    // A closed listener's socket is dropped only when the
                    // transport is next polled: every listener is, before
                    // this says drained.
                    poll_until_idle(&mut swarm, &mut stash).await;
                }
                for reply in waiting.drain(..) {
                    let _ = reply.send(());
                }
                if swarm.network_info().connection_counters().num_connections() == 0 {
                    return;
                }
            }
        }
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Listen { addr, reply }) => match swarm.listen_on(addr.clone()) {
                    Ok(id) => {
                        listeners.insert(id, Listener { asked: addr.clone(), first: None });
                        listens.insert(id, addr, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(TransportError::Listen { addr, source: Box::new(e) }));
                    }
                },
                Some(Command::Addresses { reply }) => {
                    let _ = reply.send(swarm.listeners().cloned().collect());
                }
                Some(Command::Listeners { reply }) => {
                    let open: Vec<(Multiaddr, Option<Multiaddr>)> = listeners
                        .values()
                        .map(|l| (l.asked.clone(), l.first.clone()))
                        .collect();
                    let _ = reply.send(open);
                }
                Some(Command::Drain { reply }) => {
                    for id in listeners.keys() {
                        swarm.remove_listener(*id);
                    }
                    draining.get_or_insert_with(Vec::new).push(reply);
                }
                Some(Command::Dial { addr, reply }) => {
                    if draining.is_some() {
                        let _ = reply.send(Err(TransportError::Stopped));
                        continue;
                    }
                    // From a new port, as the stream behaviour's dials
                    // ([`stream::Behaviour::dialling_from_new_ports`]).
                    let opts = DialOpts::unknown_peer_id()
                        .address(addr.clone())
                        .allocate_new_port()
                        .build();
                    let id = opts.connection_id();
                    match swarm.dial(opts) {
                        Ok(()) => {
                            dials.insert(id, (addr, reply));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(dial_error(&addr, e)));
                        }
                    }
                }
                Some(Command::Open { peer, addrs, reply }) => {
                    if draining.is_some() {
                        let _ = reply.send(Err(TransportError::Stopped));
                    } else if opens.len() >= MAX_OPENING {
                        let _ = reply.send(Err(dial_error(peer, "too many streams being opened")));
                    } else {
                        let id = swarm.behaviour_mut().stream.open_at(peer, addrs);
                        opens.insert(id, (peer.to_string(), reply));
                    }
                }
            },
            () = listens.answer_late() => {}
            event = next_event(&mut swarm, &mut stash) => match event {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    tracing::debug!(%address, "listening");
                    listens.got(listener_id, &address);
                    if let Some(listener) = listeners.get_mut(&listener_id) {
                        listener.first.get_or_insert_with(|| address.clone());
                    }
                    if draining.is_none() {
                        let _ = events.try_send(TransportEvent::Listening { kind: LinkKind::Lan, addr: address });
                    }
                }
                SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                    listeners.remove(&listener_id);
                    if let Some((reply, addr)) = listens.take(listener_id) {
                        let why = match reason {
                            Ok(()) => Box::new(Reason("closed".into())) as Box<dyn std::error::Error + Send + Sync>,
                            Err(e) => Box::new(e),
                        };
                        let _ = reply.send(Err(TransportError::Listen { addr, source: why }));
                    }
                }
                SwarmEvent::ConnectionEstablished { peer_id, connection_id, .. } => {
                    if let Some((addr, reply)) = dials.remove(&connection_id) {
                        let id = swarm.behaviour_mut().stream.open(peer_id);
                        opens.insert(id, (addr.to_string(), reply));
                    }
                }
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                    if let Some((addr, reply)) = dials.remove(&connection_id) {
                        let _ = reply.send(Err(dial_error(&addr, error)));
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Stream(event)) => match event {
                    stream::Event::Inbound { remote, stream, .. } => {
                        let link = link(Direction::Inbound, remote.as_ref(), stream);
                        if events.send(TransportEvent::Incoming(link)).await.is_err() {
                            return;
                        }
                    }
                    stream::Event::Opened { id, remote, stream, .. } => {
                        if let Some((_, reply)) = opens.remove(&id) {
                            let _ = reply.send(Ok(link(Direction::Outbound, remote.as_ref(), stream)));
                        }
                    }
                    stream::Event::OpenFailed { id, error, .. } => {
                        if let Some((target, reply)) = opens.remove(&id) {
                            let _ = reply.send(Err(dial_error(target, error)));
                        }
                    }
                },
                SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                    if draining.is_some() {
                        continue;
                    }
                    let Some(shared) = shared.upgrade() else { return };
                    let local = *swarm.local_peer_id();
                    let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                    for (peer, addr) in found {
                        by_peer.entry(peer).or_default().push(addr);
                    }
                    for (peer, addrs) in by_peer {
                        let handle = shared.remember(peer, addrs);
                        // Both sides discover each other: the smaller id dials.
                        let _ = events.try_send(TransportEvent::Discovered { peer: handle, initiate: local < peer });
                    }
                }
                _ => {}
            },
        }
    }
}
