//! The LAN transport: a libp2p swarm on a task of its own.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{mdns, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::stream::{self, OpenId};
use crate::{Link, LinkKind, TransportError};

/// Bound on queued transport events; past it, discoveries are dropped
/// (mDNS repeats them) and inbound streams wait.
const EVENT_QUEUE: usize = 256;
/// Bound on queued commands to the swarm task.
const COMMAND_QUEUE: usize = 64;
/// Connections idle this long are closed (sessions keep theirs busy with
/// keepalives).
const IDLE_CONNECTION: Duration = Duration::from_secs(90);

/// LAN transport settings.
#[derive(Debug, Clone)]
pub struct LanConfig {
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/0` and
    /// `/ip4/0.0.0.0/udp/0/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Announce and discover peers with mDNS. Off on networks that block
    /// multicast, and in tests on loopback (mDNS ignores loopback).
    pub mdns: bool,
}

impl Default for LanConfig {
    fn default() -> Self {
        LanConfig {
            listen: vec![
                "/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr"),
                "/ip4/0.0.0.0/udp/0/quic-v1"
                    .parse()
                    .expect("valid multiaddr"),
            ],
            mdns: true,
        }
    }
}

/// Something the LAN transport saw.
#[derive(Debug)]
#[non_exhaustive]
pub enum LanEvent {
    /// A remote opened a stream to us.
    Incoming(Link),
    /// mDNS found a device (not necessarily a contact).
    Discovered {
        /// Its ephemeral transport id.
        peer: PeerId,
    },
    /// We listen on a new address.
    Listening(Multiaddr),
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    stream: stream::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

enum Command {
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, TransportError>>,
    },
    Addresses {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Open {
        peer: PeerId,
        reply: oneshot::Sender<Result<Link, TransportError>>,
    },
}

/// A handle to the running LAN transport. Cheap to clone; the transport
/// stops when every handle and the event receiver are dropped.
#[derive(Clone)]
pub struct Lan {
    commands: mpsc::Sender<Command>,
    local: PeerId,
}

impl std::fmt::Debug for Lan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lan")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Lan {
    /// Starts the transport with a fresh, ephemeral libp2p identity. Must be
    /// called inside a tokio runtime.
    pub async fn start(
        config: LanConfig,
    ) -> Result<(Lan, mpsc::Receiver<LanEvent>), TransportError> {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| TransportError::Setup(e.to_string()))?
            .with_quic()
            .with_behaviour(|key| {
                let mdns = if config.mdns {
                    Some(mdns::tokio::Behaviour::new(
                        mdns::Config::default(),
                        key.public().to_peer_id(),
                    )?)
                } else {
                    None
                };
                Ok(Behaviour {
                    stream: stream::Behaviour::new(),
                    mdns: Toggle::from(mdns),
                })
            })
            .map_err(|e| TransportError::Setup(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION))
            .build();
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| TransportError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
        }
        let local = *swarm.local_peer_id();
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        tokio::spawn(run(swarm, events_tx, commands_rx));
        Ok((
            Lan {
                commands: commands_tx,
                local,
            },
            events_rx,
        ))
    }

    /// This run's ephemeral transport id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// The addresses we listen on now.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let (reply, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Addresses { reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Connects to `addr` and opens a stream.
    pub async fn dial(&self, addr: Multiaddr) -> Result<Link, TransportError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Dial {
                addr: addr.clone(),
                reply,
            })
            .await
            .map_err(|_| TransportError::Stopped)?;
        let peer = rx.await.map_err(|_| TransportError::Stopped)??;
        self.open(peer).await.map_err(|e| match e {
            TransportError::Dial { reason, .. } => TransportError::Dial {
                addr: addr.to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Opens a stream to a peer we know an address for (from mDNS or an
    /// earlier connection).
    pub async fn open(&self, peer: PeerId) -> Result<Link, TransportError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Open { peer, reply })
            .await
            .map_err(|_| TransportError::Stopped)?;
        rx.await.map_err(|_| TransportError::Stopped)?
    }
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    events: mpsc::Sender<LanEvent>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut dials: HashMap<
        ConnectionId,
        (Multiaddr, oneshot::Sender<Result<PeerId, TransportError>>),
    > = HashMap::new();
    let mut opens: HashMap<OpenId, oneshot::Sender<Result<Link, TransportError>>> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Open { peer, reply }) => {
                    if opens.len() >= COMMAND_QUEUE * 4 {
                        let _ = reply.send(Err(TransportError::Dial { addr: peer.to_string(), reason: "too many streams being opened".into() }));
                    } else {
                        let id = swarm.behaviour_mut().stream.open(peer);
                        opens.insert(id, reply);
                    }
                }
                Some(Command::Addresses { reply }) => {
                    let _ = reply.send(swarm.listeners().cloned().collect());
                }
                Some(Command::Dial { addr, reply }) => {
                    let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                    let id = opts.connection_id();
                    match swarm.dial(opts) {
                        Ok(()) => {
                            dials.insert(id, (addr, reply));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(TransportError::Dial { addr: addr.to_string(), reason: e.to_string() }));
                        }
                    }
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    tracing::info!(%address, "listening");
                    let _ = events.try_send(LanEvent::Listening(address));
                }
                SwarmEvent::ConnectionEstablished { peer_id, connection_id, .. } => {
                    if let Some((_, reply)) = dials.remove(&connection_id) {
                        let _ = reply.send(Ok(peer_id));
                    }
                }
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                    if let Some((addr, reply)) = dials.remove(&connection_id) {
                        let _ = reply.send(Err(TransportError::Dial { addr: addr.to_string(), reason: error.to_string() }));
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Stream(event)) => match event {
                    stream::Event::Inbound { peer, stream } => {
                        let link = Link { kind: LinkKind::Lan, outbound: false, peer, stream };
                        if events.send(LanEvent::Incoming(link)).await.is_err() {
                            return;
                        }
                    }
                    stream::Event::Opened { id, peer, stream } => {
                        if let Some(reply) = opens.remove(&id) {
                            let _ = reply.send(Ok(Link { kind: LinkKind::Lan, outbound: true, peer, stream }));
                        }
                    }
                    stream::Event::OpenFailed { id, peer, error } => {
                        if let Some(reply) = opens.remove(&id) {
                            let _ = reply.send(Err(TransportError::Dial { addr: peer.to_string(), reason: error }));
                        }
                    }
                },
                SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                    let mut seen = std::collections::HashSet::new();
                    for (peer, _) in found {
                        if seen.insert(peer) {
                            let _ = events.try_send(LanEvent::Discovered { peer });
                        }
                    }
                }
                _ => {}
            },
        }
    }
}
