//! A circuit relay (libp2p relay v2) with limits suited to sync: what
//! `strand relay` runs, and what a node runs for its contacts.
//!
//! A relay forwards bytes between two devices that both reach it, and sees
//! no more than their ephemeral ids, addresses, sizes and timing: Strand's
//! session runs end to end inside. It is still a service strangers can
//! use, so everything it gives is bounded: reservations and circuits, in
//! total and per peer, circuits in time and bytes, and new ones per IP
//! address per minute. [`RelayLimits`] documents what each bound allows.
//! A relay with an [`RelayServerConfig::only`] filter holds reservations
//! for the listed peers alone (a node relaying for its contacts), so
//! nobody else can be reached through it.
//!
//! A relay given a TCP port that another program listens at (another
//! `strand relay`, a Strand node) does not start: libp2p's TCP listener
//! would share the port (it sets `SO_REUSEPORT`, which the LAN and the
//! relay client need for their identities), and the system would split
//! new connections between the two: each one that reaches the relay its
//! client did not name (by its id) fails. So before it listens, each TCP
//! address at a port given (not 0) is checked for a socket listening
//! there ([`crate::ports`]), and [`RelayServer::start`] fails with
//! "cannot listen on ADDR: port N is in use by another program". A relay
//! has one swarm for its whole life, so no listener of its own can hold
//! the port then. (A node's relay for contacts given the port its LAN
//! listens at is refused the same way.)
//!
//! A relay listening on an unspecified address (`0.0.0.0`, `::`) is
//! reached at each address of the device's interfaces, and those come
//! and go (a network joined after the start, an interface taken down):
//! [`RelayServer::watch_addresses`] follows them, so a node that offers
//! its relay to contacts can tell them each change.
//!
//! Loopback (`127.0.0.1`, `::1`) is among those addresses only for a
//! relay asked to listen on a loopback address (a test, or `strand relay
//! --listen /ip4/127.0.0.1/...` to try it on one machine). A listener on
//! an unspecified address takes loopback too, but nobody else can dial
//! it there: a device that lost its network (Wi-Fi gone, a cable pulled)
//! would otherwise fall back to it as its widest address, and a node
//! would tell every contact its relay is at `127.0.0.1`, their own
//! machine. Such a relay is reached nowhere until a network comes back
//! (its address list is empty), and a node then offers its relay
//! nowhere. A client on the same machine cannot reserve on it meanwhile:
//! a reservation names where the relay is reached, and libp2p's client
//! refuses one that names nothing.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{autonat, identify, noise, relay, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot, watch};

use super::keypair;
use crate::generation::Listens;
use crate::lan::limits::{IpLimitConfig, IpLimits, SharedCounts};
use crate::{Reason, TransportError};

/// Reservations held at once, from everyone. A reservation is one id of a
/// device reachable through this relay: its connection, buffers and a
/// table entry (the relay benchmark measures the memory each costs). A
/// Strand device holds one, and around each turn of the hour two: its
/// next hour's id reserves [`EPOCH_MARGIN`](super::EPOCH_MARGIN) before
/// the turn, and its old id's reservation lasts until that long after it,
/// and then until its connection closes (a minute or two later, or when
/// the last link through it ends). Devices' clocks agree, so they all
/// hold two at once then: a relay serves half as many devices as it holds
/// reservations, some 2,000 here. A reservation refused for want of room
/// is asked for again after its backoff (at most
/// [`MAX_RESERVE_BACKOFF`](super::MAX_RESERVE_BACKOFF) apart), and gets in
/// once old ids' reservations are gone; until then contacts whose clocks
/// have turned do not reach that device through this relay (they may
/// through its others). libp2p's relay checks this limit on renewals
/// too: on a relay full from the doubled count, a current id whose
/// renewal (every 45 minutes or so, at a moment of its own) falls in the
/// margins is refused and loses its reservation, until it gets in again
/// after its backoff. The per-IP connection limit is likewise reached
/// twice as fast near the turn by many devices behind one address.
pub const MAX_RESERVATIONS: usize = 4096;

/// Reservations one PeerId may hold. A Strand device holds one per
/// identity (it renews on the same connection); the rest cover a
/// reconnect before the old connection has timed out.
pub const RESERVATIONS_PER_PEER: usize = 4;

/// How long a reservation lasts before it must be renewed (clients renew
/// at three quarters of it): one Strand relay epoch, the life of a relay
/// identity, so an identity reserves about once.
pub const RESERVATION_DURATION: Duration = Duration::from_secs(60 * 60);

/// Circuits open at once, from everyone: one per pair of devices syncing
/// through this relay now.
pub const MAX_CIRCUITS: usize = 1024;

/// Circuits one PeerId may have open: one per contact it syncs with now.
pub const CIRCUITS_PER_PEER: usize = 32;

/// How long a circuit lives. Strand keeps a link up while both devices are
/// online (keepalives every few seconds); a circuit that ends is dialled
/// again and its session resumes where it was, so this bounds how long a
/// stranger can hold a slot rather than how long a sync may take. The
/// libp2p default, 2 minutes, would cut every long sync.
pub const CIRCUIT_DURATION: Duration = Duration::from_secs(60 * 60);

/// Bytes one circuit carries, both ways together, before the relay resets
/// it. 10,000 messages of 1 KiB take about 13 MiB; a first sync of a large
/// history takes several circuits, each resuming the last. The libp2p
/// default, 128 KiB, would cut a sync after about a hundred messages. This
/// is what makes the relay no open proxy: a stranger gets this much per
/// circuit, and [`CIRCUITS_PER_IP_BURST`] circuits at once.
pub const CIRCUIT_BYTES: u64 = 64 << 20;

/// New reservations one IP address may make at once, then one per
/// [`RESERVATIONS_PER_IP_INTERVAL`]: a household or office of devices
/// behind one router, each reserving once per epoch.
pub const RESERVATIONS_PER_IP_BURST: u32 = 64;

/// See [`RESERVATIONS_PER_IP_BURST`].
pub const RESERVATIONS_PER_IP_INTERVAL: Duration = Duration::from_secs(30);

/// New circuits one IP address may open at once, then one per
/// [`CIRCUITS_PER_IP_INTERVAL`]: a device dialling its contacts after
/// coming online, and redials after resets.
pub const CIRCUITS_PER_IP_BURST: u32 = 64;

/// See [`CIRCUITS_PER_IP_BURST`].
pub const CIRCUITS_PER_IP_INTERVAL: Duration = Duration::from_secs(10);

/// Connections idle this long are closed (reservations and circuits keep
/// theirs busy).
const IDLE_CONNECTION: Duration = Duration::from_secs(60);

/// Connections one IP address may hold: a NATed office of devices, each
/// with a connection or two.
pub const CONNECTIONS_PER_IP: usize = 256;

/// The identify protocol version the relay announces.
const IDENTIFY_VERSION: &str = "/strand/relay/1";

/// A relay's limits (see the constants for what each allows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelayLimits {
    /// [`MAX_RESERVATIONS`].
    pub max_reservations: usize,
    /// [`RESERVATIONS_PER_PEER`].
    pub reservations_per_peer: usize,
    /// [`RESERVATION_DURATION`].
    pub reservation_duration: Duration,
    /// [`MAX_CIRCUITS`].
    pub max_circuits: usize,
    /// [`CIRCUITS_PER_PEER`].
    pub circuits_per_peer: usize,
    /// [`CIRCUIT_DURATION`]. At most `u32::MAX` seconds.
    pub circuit_duration: Duration,
    /// [`CIRCUIT_BYTES`]; 0 is no limit.
    pub circuit_bytes: u64,
    /// [`RESERVATIONS_PER_IP_BURST`].
    pub reservations_per_ip_burst: u32,
    /// [`RESERVATIONS_PER_IP_INTERVAL`].
    pub reservations_per_ip_interval: Duration,
    /// [`CIRCUITS_PER_IP_BURST`].
    pub circuits_per_ip_burst: u32,
    /// [`CIRCUITS_PER_IP_INTERVAL`].
    pub circuits_per_ip_interval: Duration,
    /// Inbound connections per IP address.
    pub ip: IpLimitConfig,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_reservations: MAX_RESERVATIONS,
            reservations_per_peer: RESERVATIONS_PER_PEER,
            reservation_duration: RESERVATION_DURATION,
            max_circuits: MAX_CIRCUITS,
            circuits_per_peer: CIRCUITS_PER_PEER,
            circuit_duration: CIRCUIT_DURATION,
            circuit_bytes: CIRCUIT_BYTES,
            reservations_per_ip_burst: RESERVATIONS_PER_IP_BURST,
            reservations_per_ip_interval: RESERVATIONS_PER_IP_INTERVAL,
            circuits_per_ip_burst: CIRCUITS_PER_IP_BURST,
            circuits_per_ip_interval: CIRCUITS_PER_IP_INTERVAL,
            ip: IpLimitConfig {
                pending: 32,
                established: CONNECTIONS_PER_IP,
                per_second: 20.0,
                burst: 64.0,
            },
        }
    }
}

/// Which peers a relay serves, if not everyone.
pub type PeerFilter = Arc<dyn Fn(&PeerId) -> bool + Send + Sync>;

/// Relay server settings.
#[derive(Clone)]
pub struct RelayServerConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Addresses clients reach the relay at, as the relay tells them in
    /// reservations; empty: the addresses it listens on, loopback ones
    /// only if `listen` names a loopback address (see the module docs;
    /// right on a LAN or a host with a public address; behind port
    /// forwarding, give the public one).
    pub announce: Vec<Multiaddr>,
    /// The relay's Ed25519 secret key: its PeerId, which users write in
    /// relay addresses, so it is kept across restarts.
    pub key: [u8; 32],
    /// Its limits.
    pub limits: RelayLimits,
    /// Hold reservations for these peers only; `None`: for everyone.
    /// Circuits end only at peers with a reservation, so a filtered relay
    /// reaches nobody else, whoever dials (a node relaying for its
    /// contacts: a contact who has not synced with it yet can still reach
    /// it through its relay).
    pub only: Option<PeerFilter>,
}

impl std::fmt::Debug for RelayServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayServerConfig")
            .field("listen", &self.listen)
            .field("announce", &self.announce)
            .field("limits", &self.limits)
            .field("only", &self.only.is_some())
            .finish_non_exhaustive()
    }
}

/// What a relay is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Reservations held now.
    pub reservations: usize,
    /// Circuits open now.
    pub circuits: usize,
    /// Circuits accepted since start.
    pub circuits_total: u64,
    /// Circuits the relay ended at a limit (bytes or time).
    pub circuits_cut: u64,
    /// Requests denied (reservations and circuits).
    pub denied: u64,
    /// Connections open now.
    pub connections: u32,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    ip_limits: IpLimits,
    limits: connection_limits::Behaviour,
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    autonat: autonat::v2::server::Behaviour,
}

enum Command {
    Stats(oneshot::Sender<RelayStats>),
}

/// A running relay. It stops when dropped or with
/// [`RelayServer::shutdown`].
#[derive(Debug)]
pub struct RelayServer {
    commands: mpsc::Sender<Command>,
    local: PeerId,
    /// The addresses the relay is reached at, as [`RelayServer::addresses`]
    /// gives them; its task sends each change.
    addresses: watch::Receiver<Vec<Multiaddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RelayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn setup_error(e: impl std::fmt::Display) -> TransportError {
    TransportError::Setup(Box::new(Reason(e.to_string())))
}

fn relay_config(limits: &RelayLimits, only: Option<PeerFilter>) -> relay::Config {
    let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
    // The filter comes first: the limiters run in order and stop at the
    // first refusal. It filters reservations: circuits can only end at a
    // peer that holds one, so only listed peers can be reached through
    // this relay, whoever dials.
    let mut reservation: Vec<Box<dyn relay::RateLimiter>> = Vec::new();
    let circuit: Vec<Box<dyn relay::RateLimiter>> = Vec::new();
    if let Some(only) = only {
        reservation.push(Box::new(
            move |p: PeerId, _: &Multiaddr, _: std::time::Instant| only(&p),
        ));
    }
    relay::Config {
        max_reservations: limits.max_reservations,
        // libp2p lets a peer have one more than this number.
        max_reservations_per_peer: limits.reservations_per_peer.saturating_sub(1),
        reservation_duration: limits.reservation_duration,
        reservation_rate_limiters: reservation,
        max_circuits: limits.max_circuits,
        max_circuits_per_peer: limits.circuits_per_peer.saturating_sub(1),
        max_circuit_duration: limits
            .circuit_duration
            .min(Duration::from_secs(u32::MAX as u64)),
        max_circuit_bytes: limits.circuit_bytes,
        circuit_src_rate_limiters: circuit,
    }
    .reservation_rate_per_ip(
        nz(limits.reservations_per_ip_burst),
        limits.reservations_per_ip_interval,
    )
    .circuit_src_per_ip(
        nz(limits.circuits_per_ip_burst),
        limits.circuits_per_ip_interval,
    )
}

/// Incoming connections the relay holds at once: one for each reservation
/// and each circuit, and 64 more. Limits as large as a `usize` holds
/// would overflow the sum (a panic in a debug build, a wrap to a small
/// limit in a release one): it stops at `u32::MAX`, libp2p's bound.
fn max_established_incoming(limits: &RelayLimits) -> u32 {
    saturated(limits.max_reservations.saturating_add(limits.max_circuits)).saturating_add(64)
}

/// Connections one peer holds at once: one for each of its reservations
/// and circuits, saturated as [`max_established_incoming`].
fn max_established_per_peer(limits: &RelayLimits) -> u32 {
    saturated(
        limits
            .reservations_per_peer
            .saturating_add(limits.circuits_per_peer),
    )
}

/// `n` as a `u32`, `u32::MAX` if it is larger.
fn saturated(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl RelayServer {
    /// Starts the relay and waits until it listens on every address: until
    /// each listener has its first address, or for one on an unspecified
    /// address (`0.0.0.0`, `::`) with none of its family on the device yet
    /// (IPv6 turned off, no network at all), for a second (the LAN's and
    /// the relay client's `FIRST_ADDRESS_WAIT`): that one listens all the
    /// same, and each address it gets later is among
    /// [`RelayServer::addresses`], which may be none until then. Needs a
    /// tokio runtime. Fails ([`TransportError::Listen`]) for an address
    /// that cannot be listened on, a TCP port another program listens at
    /// among them ([`PortInUse`](crate::ports::PortInUse), see the module
    /// docs).
    pub async fn start(config: RelayServerConfig) -> Result<RelayServer, TransportError> {
        // Another program's listener at a port given would be shared, not
        // refused (see the module docs). All are checked before anything
        // listens, so that two addresses at one port (`127.0.0.1` and
        // `0.0.0.0`, say) are not taken for each other.
        for addr in &config.listen {
            crate::ports::probe(addr)?;
        }
        let mut swarm = relay_swarm(&config)?;
        for addr in &config.announce {
            swarm.add_external_address(addr.clone());
        }
        // Each listen is answered as the LAN's and the relay client's are
        // ([`Listens`]): with its listener's first address, or, where none
        // comes soon (an unspecified address, and none of its family on
        // the device yet), without one; that listener stays open, and
        // each address it gets later is among those the relay is reached
        // at.
        let mut listens = Listens::default();
        let mut answers = Vec::new();
        for addr in &config.listen {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| TransportError::Listen {
                    addr: addr.clone(),
                    source: Box::new(e),
                })?;
            let (reply, answer) = oneshot::channel();
            listens.insert(id, addr.clone(), reply);
            answers.push(answer);
        }
        // Without announced addresses, the relay is reached at the widest
        // scope it listens on (public addresses if any, else LAN ones),
        // and at loopback ones only if it was asked to listen on one (see
        // the module docs). `0.0.0.0` and `::` are not loopback.
        let announced = !config.announce.is_empty();
        let loopback = config
            .listen
            .iter()
            .any(|a| crate::scope(a) == crate::Scope::Loopback);
        // Until each listen is answered.
        for mut answer in answers {
            let answered = loop {
                tokio::select! {
                    answered = &mut answer => break answered,
                    () = listens.answer_late() => {}
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::NewListenAddr { listener_id, address } => {
                            listens.got(listener_id, &address);
                            if !announced {
                                reached_at(&mut swarm, loopback);
                            }
                        }
                        SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                            if let Some((reply, addr)) = listens.take(listener_id) {
                                let source: Box<dyn std::error::Error + Send + Sync> =
                                    match reason {
                                        Ok(()) => Box::new(Reason("closed".into())),
                                        Err(e) => Box::new(e),
                                    };
                                let _ = reply.send(Err(TransportError::Listen { addr, source }));
                            }
                        }
                        _ => {}
                    },
                }
            };
            // `listens` keeps each reply until it answers it, so the
            // answer comes; a listener that closed fails the start.
            answered.map_err(setup_error)??;
        }
        Ok(RelayServer::serve(swarm, announced, loopback))
    }

    /// The end of [`RelayServer::start`]: the relay's task, on `swarm`,
    /// which listens where the start asked it to and is reached at the
    /// addresses that came meanwhile (`announced`, `loopback`: as
    /// [`run`] takes them). Its address watch
    /// ([`RelayServer::watch_addresses`]) starts from where the relay is
    /// reached now, not from the addresses that came: the start waits up
    /// to a second for a listen's first address, and follows only the
    /// addresses that come in that time (each one made an address the
    /// relay is reached at, [`reached_at`]), not those that go, so one
    /// that came and went was given as the relay's (to the node that
    /// offers it to contacts, and to clients by identify and in
    /// reservations) until the next change.
    fn serve(mut swarm: Swarm<Behaviour>, announced: bool, loopback: bool) -> RelayServer {
        let local = *swarm.local_peer_id();
        let (tx, rx) = mpsc::channel(16);
        // An address that went while the listens were answered is no
        // longer listened at: the watch starts from where the relay is
        // reached now.
        if !announced {
            reached_at(&mut swarm, loopback);
        }
        let (reached, addresses) = watch::channel(reached_addresses(&swarm));
        let task = tokio::spawn(run(swarm, rx, reached, announced, loopback));
        RelayServer {
            commands: tx,
            local,
            addresses,
            task,
        }
    }

    /// The relay's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.local
    }

    /// The relay's addresses as users add them: each ends in
    /// `/p2p/<relay id>`.
    pub async fn addresses(&self) -> Vec<Multiaddr> {
        self.addresses.borrow().clone()
    }

    /// The relay's addresses ([`RelayServer::addresses`]) as they change:
    /// its task sends the new list, sorted, whenever a listener gets an
    /// address or loses one (an interface comes up or goes down) and that
    /// changes where the relay is reached; with announced addresses
    /// ([`RelayServerConfig::announce`]) it never changes. The receiver
    /// has seen the list as it was at the start; a change made since is
    /// waiting. The sender goes (`changed` fails) when the relay stops.
    pub fn watch_addresses(&self) -> watch::Receiver<Vec<Multiaddr>> {
        self.addresses.clone()
    }

    /// What the relay holds now.
    pub async fn stats(&self) -> RelayStats {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stats(tx)).await.is_err() {
            return RelayStats::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Stops the relay.
    pub async fn shutdown(self) {
        self.task.abort();
    }
}

/// The relay's swarm, with its identity and limits, serving (whether or
/// not an address of its is confirmed) and listening nowhere yet.
fn relay_swarm(config: &RelayServerConfig) -> Result<Swarm<Behaviour>, TransportError> {
    let key = keypair(config.key);
    let limits = config.limits;
    let only = config.only.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(setup_error)?;
    #[cfg(feature = "quic")]
    let swarm = swarm.with_quic();
    let mut swarm = swarm
        .with_behaviour(|key| Behaviour {
            ip_limits: IpLimits::new(SharedCounts::with_config(limits.ip)),
            limits: connection_limits::Behaviour::new(
                ConnectionLimits::default()
                    .with_max_established_incoming(Some(max_established_incoming(&limits)))
                    .with_max_established_per_peer(Some(max_established_per_peer(&limits))),
            ),
            relay: relay::Behaviour::new(key.public().to_peer_id(), relay_config(&limits, only)),
            // Identify tells anyone who connects the addresses the relay
            // is reached at (its external ones), not every one it listens
            // on: those would number the network behind it.
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_VERSION.into(), key.public())
                    .with_hide_listen_addrs(true),
            ),
            autonat: autonat::v2::server::Behaviour::default(),
        })
        .map_err(setup_error)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION))
        .build();
    // Serve whether or not an external address is confirmed yet.
    swarm
        .behaviour_mut()
        .relay
        .set_status(Some(relay::Status::Enable));
    Ok(swarm)
}

/// Makes the addresses the relay listens on that it is reached at
/// ([`reachable`]) its external ones: what identify tells those who
/// connect, what reservations name and what [`RelayServer::addresses`]
/// gives. `loopback`: whether the relay was asked to listen on a loopback
/// address.
fn reached_at(swarm: &mut Swarm<Behaviour>, loopback: bool) {
    let keep = reachable(swarm.listeners().cloned(), loopback);
    let old: Vec<Multiaddr> = swarm.external_addresses().cloned().collect();
    for a in old.iter().filter(|a| !keep.contains(a)) {
        swarm.remove_external_address(a);
    }
    for a in keep.into_iter().filter(|a| !old.contains(a)) {
        swarm.add_external_address(a);
    }
}

/// Of the addresses the relay listens on (`listening`), those it is
/// reached at: the widest-scope ones ([`crate::widest_scope`]), less the
/// loopback ones unless the relay was asked to listen on loopback
/// (`loopback`; the module docs say why). None if only loopback is left
/// of a listen on an unspecified address.
fn reachable(listening: impl IntoIterator<Item = Multiaddr>, loopback: bool) -> Vec<Multiaddr> {
    crate::widest_scope(
        listening
            .into_iter()
            .filter(|a| loopback || crate::scope(a) != crate::Scope::Loopback),
    )
}

/// The addresses the relay is reached at (its external ones), each with
/// its id, sorted: what [`RelayServer::addresses`] gives.
fn reached_addresses(swarm: &Swarm<Behaviour>) -> Vec<Multiaddr> {
    let local = *swarm.local_peer_id();
    let mut out: Vec<Multiaddr> = swarm
        .external_addresses()
        .map(|a| a.clone().with(Protocol::P2p(local)))
        .collect();
    out.sort();
    out
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    reached: watch::Sender<Vec<Multiaddr>>,
    announced: bool,
    loopback: bool,
) {
    let mut stats = RelayStats::default();
    // Reservations by peer: one per connection, so a peer that
    // reconnected holds two until the old connection closes.
    let mut reserved: HashMap<PeerId, usize> = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Stats(reply)) => {
                    stats.reservations = reserved.values().sum();
                    stats.connections = swarm.network_info().connection_counters().num_connections();
                    let _ = reply.send(stats.clone());
                }
            },
            event = swarm.select_next_some() => match event {
                // The swarm's listen addresses are current when it says
                // they changed. Whoever watches the addresses is told
                // only when where the relay is reached changed (not when
                // a narrower address came or went).
                SwarmEvent::NewListenAddr { .. }
                | SwarmEvent::ExpiredListenAddr { .. }
                | SwarmEvent::ListenerClosed { .. } => {
                    if !announced {
                        reached_at(&mut swarm, loopback);
                    }
                    let now = reached_addresses(&swarm);
                    reached.send_if_modified(|was| {
                        if *was == now {
                            return false;
                        }
                        tracing::info!(
                            addresses = ?now,
                            "the relay is reached at other addresses"
                        );
                        *was = now;
                        true
                    });
                }
                SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => {
                    #[allow(deprecated)]
                    match event {
                        relay::Event::ReservationReqAccepted { src_peer_id, renewed } => {
                            tracing::debug!(peer = %src_peer_id, renewed, "reservation");
                            if !renewed {
                                *reserved.entry(src_peer_id).or_default() += 1;
                            }
                        }
                        relay::Event::ReservationClosed { src_peer_id }
                        | relay::Event::ReservationTimedOut { src_peer_id } => {
                            if let Some(n) = reserved.get_mut(&src_peer_id) {
                                *n -= 1;
                                if *n == 0 {
                                    reserved.remove(&src_peer_id);
                                }
                            }
                        }
                        relay::Event::ReservationReqDenied { src_peer_id, status } => {
                            tracing::debug!(peer = %src_peer_id, ?status, "reservation denied");
                            stats.denied += 1;
                        }
                        relay::Event::CircuitReqAccepted { .. } => {
                            stats.circuits += 1;
                            stats.circuits_total += 1;
                        }
                        relay::Event::CircuitReqDenied { status, .. } => {
                            tracing::debug!(?status, "circuit denied");
                            stats.denied += 1;
                        }
                        relay::Event::CircuitClosed { error, .. } => {
                            stats.circuits = stats.circuits.saturating_sub(1);
                            match error {
                                Some(e) if cut_at_a_limit(&e) => {
                                    tracing::info!("circuit ended by the relay: {e}");
                                    stats.circuits_cut += 1;
                                }
                                // Its connection closed (ConnectionAborted),
                                // or an end reset it: not the relay's doing.
                                Some(e) => tracing::debug!("circuit ended: {e}"),
                                None => {}
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            },
        }
    }
}

/// Whether a circuit's end was the relay's, at its time or byte limit:
/// libp2p's relay copies until the circuit's duration runs out
/// (`TimedOut`) or its bytes do (`Other`); a closed connection ends its
/// circuits with `ConnectionAborted`, and an end that resets the stream
/// with the reset's own error.
fn cut_at_a_limit(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::Other
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network_namespace::{in_a_network_with_no_address, ip};

    /// Regression (`strand relay` and `--relay-for-contacts` waited
    /// forever on a device with no address of the family they listen
    /// on): [`RelayServer::start`] waited until each listener had an
    /// address, and libp2p's TCP transport gives a listener on `0.0.0.0`
    /// one address per IPv4 address of the device: on one with none (no
    /// network at all; `::` with IPv6 turned off) none came, so the start
    /// never returned. Now such a listen counts after a second without
    /// one, as the LAN's and the relay client's do: the listener stays
    /// open and takes each address as it comes. Here, in a network
    /// namespace whose only interface is down, with no address at all:
    /// before, the start never ended (the timeout below fails it).
    #[test]
    fn a_listen_on_an_unspecified_address_with_none_of_its_family_does_not_wait_forever() {
        let Some(runtime) = in_a_network_with_no_address(
            module_path!(),
            "a_listen_on_an_unspecified_address_with_none_of_its_family_does_not_wait_forever",
        ) else {
            return;
        };
        // How long anything here may take: a listen waits a second.
        let within = Duration::from_secs(20);
        runtime.block_on(async {
            let config = RelayServerConfig {
                listen: vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()],
                announce: Vec::new(),
                key: [7; 32],
                limits: RelayLimits::default(),
                only: None,
            };
            let server = tokio::time::timeout(within, RelayServer::start(config))
                .await
                .expect("the start ends, with no address to wait for")
                .expect("the start listens");
            assert_eq!(
                server.addresses().await,
                Vec::<Multiaddr>::new(),
                "no address yet"
            );

            // An address comes (a private one on loopback, brought up
            // with it; 127.0.0.1 is never offered from `0.0.0.0`): the
            // listener takes it, and the relay is reached there.
            ip(&["link", "set", "lo", "up"]);
            ip(&["addr", "add", "10.7.7.7/32", "dev", "lo"]);
            let addr = tokio::time::timeout(within, async {
                loop {
                    if let Some(addr) = server.addresses().await.into_iter().next() {
                        return addr;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("the address that came is listened at");
            let relay = format!("/p2p/{}", server.peer_id());
            assert!(
                addr.to_string().starts_with("/ip4/10.7.7.7/tcp/")
                    && addr.to_string().ends_with(&relay),
                "{addr}"
            );
            server.shutdown().await;
        });
    }

    /// Regression (a node offered its relay to contacts at the addresses
    /// it had when it started, and no other): nothing said when the
    /// relay's addresses changed, so a node whose relay listened on an
    /// unspecified address with no address yet offered it nowhere until
    /// its next start, and one whose address went kept offering it. Now
    /// [`RelayServer::watch_addresses`] reports each change. Here, in a
    /// network namespace with no address: the relay starts with none,
    /// loopback comes up with a private address (10.7.7.7; 127.0.0.1 is
    /// never offered from `0.0.0.0`) and the relay reports it, then
    /// 10.7.7.7 is taken away and the relay reports that it is reached
    /// nowhere. Before, no change was ever reported (the timeouts below
    /// fail it).
    #[test]
    fn the_relay_reports_an_address_that_came_and_one_that_went() {
        let Some(runtime) = in_a_network_with_no_address(
            module_path!(),
            "the_relay_reports_an_address_that_came_and_one_that_went",
        ) else {
            return;
        };
        // How long anything here may take: a listen waits a second.
        let within = Duration::from_secs(20);
        runtime.block_on(async {
            let config = RelayServerConfig {
                listen: vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()],
                announce: Vec::new(),
                key: [7; 32],
                limits: RelayLimits::default(),
                only: None,
            };
            let server = tokio::time::timeout(within, RelayServer::start(config))
                .await
                .expect("the start ends, with no address to wait for")
                .expect("the start listens");
            let mut addresses = server.watch_addresses();
            assert_eq!(
                *addresses.borrow_and_update(),
                Vec::<Multiaddr>::new(),
                "no address yet"
            );

            // Loopback comes up with 10.7.7.7: reported (127.0.0.1,
            // which comes with it, changes nothing).
            ip(&["link", "set", "lo", "up"]);
            ip(&["addr", "add", "10.7.7.7/32", "dev", "lo"]);
            tokio::time::timeout(within, addresses.changed())
                .await
                .expect("the address that came is reported")
                .expect("the relay runs");
            let came = addresses.borrow_and_update().clone();
            let relay = format!("/p2p/{}", server.peer_id());
            assert!(
                came.len() == 1
                    && came[0].to_string().starts_with("/ip4/10.7.7.7/tcp/")
                    && came[0].to_string().ends_with(&relay),
                "{came:?}"
            );
            assert_eq!(server.addresses().await, came);

            // 10.7.7.7 goes: reported, and the relay is reached nowhere.
            ip(&["addr", "del", "10.7.7.7/32", "dev", "lo"]);
            tokio::time::timeout(within, addresses.changed())
                .await
                .expect("the address that went is reported")
                .expect("the relay runs");
            assert_eq!(
                *addresses.borrow_and_update(),
                Vec::<Multiaddr>::new(),
                "the address that went is still given"
            );
            assert_eq!(server.addresses().await, Vec::<Multiaddr>::new());
            server.shutdown().await;
        });
    }

    /// Regression (a device that lost its network told its contacts
    /// that its relay was at `127.0.0.1`): a relay listening on
    /// `0.0.0.0` is reached at each of the device's addresses, loopback
    /// among them, and at the widest-scope ones; when the last LAN or
    /// public address went (Wi-Fi down), loopback was the widest left,
    /// so the relay said it was reached at 127.0.0.1 and a node offered
    /// that to every contact, who would dial their own machine. Now
    /// loopback counts only for a relay asked to listen on it, and this
    /// one is reached nowhere. Here, in a network namespace with
    /// loopback up and a private address on it (10.7.7.7): the relay is
    /// reached at 10.7.7.7; that address goes, and the change reported is
    /// to no address. Before, it was to `/ip4/127.0.0.1/tcp/…` (the
    /// assert below fails).
    #[test]
    fn a_relay_on_an_unspecified_address_is_not_reached_at_loopback_once_its_network_goes() {
        let Some(runtime) = in_a_network_with_no_address(
            module_path!(),
            "a_relay_on_an_unspecified_address_is_not_reached_at_loopback_once_its_network_goes",
        ) else {
            return;
        };
        // How long anything here may take: a listen waits a second.
        let within = Duration::from_secs(20);
        runtime.block_on(async {
            ip(&["link", "set", "lo", "up"]);
            ip(&["addr", "add", "10.7.7.7/32", "dev", "lo"]);
            let config = RelayServerConfig {
                listen: vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()],
                announce: Vec::new(),
                key: [7; 32],
                limits: RelayLimits::default(),
                only: None,
            };
            let server = tokio::time::timeout(within, RelayServer::start(config))
                .await
                .expect("the start ends")
                .expect("the start listens");
            let mut addresses = server.watch_addresses();
            // Reached at 10.7.7.7, wider than loopback (the listener may
            // have answered the start with 127.0.0.1, before 10.7.7.7
            // came).
            let at_10_7_7_7 = |list: &[Multiaddr]| {
                list.iter()
                    .any(|a| a.to_string().starts_with("/ip4/10.7.7.7/tcp/"))
            };
            tokio::time::timeout(within, async {
                while !at_10_7_7_7(&addresses.borrow_and_update()[..]) {
                    addresses.changed().await.expect("the relay runs");
                }
            })
            .await
            .expect("the relay is reached at 10.7.7.7");
            let reached = server.addresses().await;
            let relay = format!("/p2p/{}", server.peer_id());
            assert!(
                reached.len() == 1
                    && reached[0].to_string().starts_with("/ip4/10.7.7.7/tcp/")
                    && reached[0].to_string().ends_with(&relay),
                "{reached:?}"
            );

            // The network goes: only loopback is left.
            ip(&["addr", "del", "10.7.7.7/32", "dev", "lo"]);
            tokio::time::timeout(within, addresses.changed())
                .await
                .expect("the change is reported")
                .expect("the relay runs");
            assert_eq!(
                *addresses.borrow_and_update(),
                Vec::<Multiaddr>::new(),
                "a relay listening on 0.0.0.0 is said to be reached at loopback"
            );
            assert_eq!(server.addresses().await, Vec::<Multiaddr>::new());
            server.shutdown().await;
        });
    }

    /// Which addresses a relay is reached at, of those it listens on: the
    /// widest-scope ones, and loopback ones only for a relay asked to
    /// listen on loopback (the regression test above has the story).
    #[test]
    fn loopback_is_reached_only_by_a_relay_asked_to_listen_there() {
        let addrs =
            |list: &[&str]| -> Vec<Multiaddr> { list.iter().map(|a| a.parse().unwrap()).collect() };
        let loopback = ["/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001"];
        let lan = "/ip4/192.168.1.20/tcp/4001";
        // Listening on `0.0.0.0` or `::`: loopback alone is nowhere.
        assert_eq!(reachable(addrs(&loopback), false), Vec::<Multiaddr>::new());
        let with_lan = addrs(&[loopback[0], lan, loopback[1]]);
        assert_eq!(reachable(with_lan.clone(), false), addrs(&[lan]));
        // Asked to listen on loopback: reached there when it is the
        // widest.
        assert_eq!(reachable(addrs(&loopback), true), addrs(&loopback));
        assert_eq!(reachable(with_lan, true), addrs(&[lan]));
        assert_eq!(reachable(Vec::new(), true), Vec::<Multiaddr>::new());
    }

    /// Regression (an address that went in the relay's first second was
    /// given as the relay's until the next change): the start waits up
    /// to a second for a listen's first address (one on an unspecified
    /// address with none of its family yet), making each address that
    /// comes meanwhile one the relay is reached at, and passing over
    /// those that go. The address watch started from what that left, so
    /// an address that came and went in that second was where a node
    /// told its contacts its relay was, and what identify told clients.
    /// Now the relay's task starts from where the relay is reached when
    /// it starts ([`RelayServer::serve`]). No test can time an address's
    /// going inside that second, so the state the start leaves then is
    /// made by hand: a relay swarm listening at 127.0.0.1, and reached at
    /// 10.7.7.7 (an address that came, wider than loopback), which it no
    /// longer listens at. Fails with the `reached_at` call taken out of
    /// [`RelayServer::serve`] (the start before): the relay is given at
    /// 10.7.7.7.
    #[tokio::test]
    async fn an_address_that_went_while_the_start_waited_is_not_given() {
        let at: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        let config = RelayServerConfig {
            listen: vec![at.clone()],
            announce: Vec::new(),
            key: [7; 32],
            limits: RelayLimits::default(),
            only: None,
        };
        let mut swarm = relay_swarm(&config).expect("a relay swarm");
        swarm.listen_on(at).expect("a listener on loopback");
        let listened = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        // As the start left it when 10.7.7.7 came (the widest address,
        // so the one the relay is reached at) and went before the start
        // ended.
        swarm.add_external_address("/ip4/10.7.7.7/tcp/4001".parse().unwrap());

        let server = RelayServer::serve(swarm, false, true);
        let reached = vec![listened.with(Protocol::P2p(server.peer_id()))];
        assert_eq!(
            *server.watch_addresses().borrow(),
            reached,
            "the relay is given where it no longer listens"
        );
        assert_eq!(server.addresses().await, reached);
        server.shutdown().await;
    }

    /// Regression (a second relay given the port a first listened at
    /// shared it): libp2p's TCP transport sets SO_REUSEPORT on every
    /// listener, so a second `strand relay` (or a node's relay for
    /// contacts) started at a port another relay listened at was let in
    /// beside it, and the system split new connections between the two:
    /// each that reached the relay its client did not name failed. Now
    /// the second start fails, saying the port is in use
    /// ([`crate::ports::probe`]), and the first still holds reservations.
    /// Fails before at the second start, which listened.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_at_a_port_another_relay_listens_at_fails() {
        use crate::ports::PortInUse;
        use crate::relay::{RelayConfig, Relays, ReservationState};
        use crate::Transport;

        // How long anything here may take.
        let within = Duration::from_secs(20);
        let config = |listen: Multiaddr, key: u8| RelayServerConfig {
            listen: vec![listen],
            announce: Vec::new(),
            key: [key; 32],
            limits: RelayLimits::default(),
            only: None,
        };
        let first = RelayServer::start(config("/ip4/127.0.0.1/tcp/0".parse().unwrap(), 7))
            .await
            .expect("a relay on loopback");
        let reached = first
            .addresses()
            .await
            .into_iter()
            .next()
            .expect("the relay listens on loopback");
        let taken: Multiaddr = reached
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();
        let port = taken
            .iter()
            .find_map(|p| match p {
                Protocol::Tcp(n) => Some(n),
                _ => None,
            })
            .expect("a TCP port");

        let refused = RelayServer::start(config(taken.clone(), 8))
            .await
            .expect_err("a second relay started at the port the first listens at");
        let line = crate::error_chain(&refused);
        let TransportError::Listen { addr, source } = refused else {
            panic!("{line}");
        };
        assert_eq!(addr, taken, "{line}");
        let in_use = source.downcast_ref::<PortInUse>().map(|e| e.port);
        assert_eq!(in_use, Some(port), "{line}");
        assert!(
            line.starts_with(&format!(
                "cannot listen on {taken}: port {port} is in use by another program"
            )),
            "{line}"
        );

        // The first still serves: a client reserves on it.
        let mut client = RelayConfig::new(
            vec![reached.clone()],
            Arc::new(|_: u64| [3u8; 32]),
            Duration::from_secs(3600),
        );
        client.hole_punch = false;
        let (events, _events) = mpsc::channel(64);
        let client = Relays::start(client, events).await.expect("a relay client");
        let reserved = tokio::time::timeout(within, async {
            loop {
                let states = client.relay_states().await;
                if states.iter().any(|r| r.state == ReservationState::Reserved) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            reserved.is_ok(),
            "the first relay holds no reservation: {:?}",
            client.relay_states().await
        );
        client.shutdown().await;
        first.shutdown().await;
    }

    /// Limits whose sum does not fit a `u32` give the largest connection
    /// limit, not an overflow: before, `max_reservations + max_circuits`
    /// cast to `u32` and then `+ 64` panicked in a debug build (and
    /// wrapped to a handful of connections in a release one).
    #[test]
    fn a_connection_limit_past_u32_saturates() {
        let limits = RelayLimits {
            max_reservations: 4_294_966_208,
            ..RelayLimits::default()
        };
        let sum = limits.max_reservations as u64 + limits.max_circuits as u64 + 64;
        assert!(sum > u64::from(u32::MAX));
        assert_eq!(max_established_incoming(&limits), u32::MAX);
        let most = RelayLimits {
            max_reservations: usize::MAX,
            max_circuits: usize::MAX,
            ..RelayLimits::default()
        };
        assert_eq!(max_established_incoming(&most), u32::MAX);
        // The defaults as before.
        assert_eq!(
            max_established_incoming(&RelayLimits::default()),
            (MAX_RESERVATIONS + MAX_CIRCUITS + 64) as u32
        );
    }
}
