//! One generation of the relay client: a libp2p swarm with one epoch's
//! identity, on a task of its own. It keeps the reservations, dials
//! through relays, punches holes, and opens streams.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    autonat, dcutr, identify, identity, noise, relay, tcp, yamux, Multiaddr, PeerId, Swarm,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::catch_panics::{CatchPanics, Event as RelayEvent};
use super::circuit_limits::CircuitLimits;
use super::gate::Gate;
use super::hide_circuits::HideCircuits;
use super::punch_dials::PunchDials;
use super::{
    fixed_tcp_port, is_circuit, last_peer, relay_name, RelayConfig, RelayList, RelayState,
    ReservationState, Shared, MAX_PUNCH_ADDRESSES, MAX_RESERVE_BACKOFF, MIN_RESERVE_BACKOFF,
    RELAYED_GRACE,
};
use crate::generation::{next_event, poll_until_idle, LinkReply, ListenReply, Listens};
use crate::lan::limits::{ip_of, IpLimits, SharedCounts};
use crate::stream::{self, OpenId};
use crate::{Direction, Link, LinkKind, Reason, Remote, TransportError, TransportEvent};

/// Bound on queued commands to a generation's task.
const COMMAND_QUEUE: usize = 64;
/// Streams being opened at once.
const MAX_OPENING: usize = COMMAND_QUEUE * 4;
/// Connections idle this long are closed (a reservation, and sessions'
/// keepalives, keep theirs busy).
const IDLE_CONNECTION: Duration = Duration::from_secs(90);
/// Inbound connections in their handshakes at once (direct ones from hole
/// punching, and circuits through relays).
const MAX_PENDING_INCOMING: u32 = 64;
/// Inbound circuits through one relay in their handshakes at once, whoever
/// they come from: half of [`MAX_PENDING_INCOMING`]. A circuit's remote is
/// an id that costs nothing, and its handshake lasts as long as the relay
/// (or whoever dials through it) leaves it unanswered, up to the swarm's
/// 10 s connection timeout: counted together, one relay could hold all
/// 64, and every other inbound connection would be refused. Counted by
/// relay, it takes two relays to fill them, and one leaves 32 for
/// circuits through other relays and hole-punched connections. An honest handshake takes a few round trips
/// through the relay, so 32 at once is as many contacts dialling through
/// one relay at the same moment (eight times an address's
/// `MAX_PENDING_PER_IP`, 4).
const MAX_PENDING_CIRCUITS_PER_RELAY: usize = 32;
const _: () = assert!(MAX_PENDING_CIRCUITS_PER_RELAY < MAX_PENDING_INCOMING as usize);
/// Connections to one PeerId: a relay and a direct one, each way.
const MAX_PER_PEER: u32 = 4;
/// How long a circuit dial waits for the relay to tell us our public
/// address (see `Task::dial`).
const IDENTIFY_WAIT: Duration = Duration::from_secs(5);
/// The identify protocol version this client announces.
const IDENTIFY_VERSION: &str = "/strand/relay-client/1";

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    ip_limits: IpLimits,
    // Before `limits`: a circuit it refuses never counts against the
    // swarm's limits. It counts circuits by relay, in their handshakes
    // and established until a session authenticates them, so that one
    // relay cannot take the places of circuits through the others.
    circuits: CircuitLimits,
    limits: connection_limits::Behaviour,
    // A relay's answer can make libp2p's relay client panic; this keeps
    // a handler's panic to the relay's connection, which is closed, and
    // drops an answer the behaviour panics on (see the module).
    relay: CatchPanics<relay::client::Behaviour>,
    // Behind the gate: they answer a remote only once a Strand session
    // on that connection authenticated it (or it is a relay). Identify is
    // never told the circuit addresses, so it tells nobody where else
    // this device holds reservations. A hole punch dials only a few of
    // the addresses the remote names.
    identify: Gate<HideCircuits<identify::Behaviour>>,
    dcutr: Gate<Toggle<PunchDials>>,
    autonat: Gate<Toggle<autonat::v2::client::Behaviour>>,
    stream: stream::Behaviour,
}

impl Behaviour {
    /// The relays' connections pass the gate from the start; hole punches
    /// through relays a contact named or lent dial nothing narrower than
    /// this device's own relays (`own`, their addresses).
    fn trust(&mut self, relays: &[PeerId], own: &[Multiaddr]) {
        self.identify.trust(relays.iter().copied());
        self.dcutr.trust(relays.iter().copied());
        self.autonat.trust(relays.iter().copied());
        if let Some(punch) = self.dcutr.inner_mut().as_mut() {
            punch.own_relays(own);
        }
    }

    /// A Strand session on `connection` authenticated `peer`: the gates
    /// open, and a circuit no longer counts in its relay's share of those
    /// not yet authenticated.
    fn open(&mut self, peer: PeerId, connection: ConnectionId) {
        self.circuits.authenticated(connection);
        self.identify.open(peer, connection);
        self.dcutr.open(peer, connection);
        self.autonat.open(peer, connection);
    }
}

/// What one generation reports ([`Command::Status`]): its reservations,
/// the addresses it listens at, and those others confirmed. The handle
/// merges the reports of the generations that hold reservations
/// ([`super::Relays::relay_states`]).
#[derive(Debug, Default)]
pub(crate) struct Status {
    pub(crate) relays: Vec<RelayState>,
    pub(crate) addresses: Vec<Multiaddr>,
    pub(crate) external: Vec<Multiaddr>,
}

/// What a generation's task does for the handle.
pub(crate) enum Command {
    /// Listen for direct connections (hole punching's). At a fixed TCP
    /// port, sent to the current generation only: the first at its start,
    /// each later one at its turn, once the one before it has stopped
    /// listening there ([`Command::StopDialling`]). At port 0 (a port of
    /// its own) and at a QUIC port, sent to each as it starts
    /// ([`super::fixed_tcp_port`]). The answer is the first
    /// address it got, or `None` if none came soon ([`ListenReply`]);
    /// such a listener still listens, and each address it gets later is
    /// among those [`Command::Status`] gives.
    Listen { addr: Multiaddr, reply: ListenReply },
    /// Keep reservations on these relays (and give up the others).
    SetRelays {
        relays: RelayList,
        reply: oneshot::Sender<()>,
    },
    /// Open a stream at a circuit address.
    Dial { addr: Multiaddr, reply: LinkReply },
    /// Open a stream on a direct connection hole punching made.
    OpenOn {
        peer: PeerId,
        connection: ConnectionId,
        reply: LinkReply,
    },
    /// Reservations and addresses (none once it drains).
    Status { reply: oneshot::Sender<Status> },
    /// This generation is the current one from now on: it takes dials,
    /// and tells of the addresses it comes to listen at. Sent at its turn
    /// to one started ahead of it.
    StartDialling,
    /// Take no dial from now on, and listen at no fixed TCP port: another
    /// generation is current, and this one keeps its reservations (and
    /// takes what comes through them, and its other listeners) until it
    /// is told to drain. `reply` hears once the listeners at fixed TCP
    /// ports are closed (the swarm said so), so that the new generation listens at a
    /// fixed `--punch-listen` port only after this one let it go: two
    /// swarms listening there (the TCP transport sets SO_REUSEPORT) have
    /// the system split direct connections between them, and every one
    /// that reaches the old id fails the dialler's check of the id it
    /// expects.
    StopDialling { reply: oneshot::Sender<()> },
    /// Give up reservations and listeners, keep live links until `until`;
    /// the task ends with its last connection.
    Drain { until: Instant },
}

/// A Strand session authenticated its remote on this connection: let
/// identify and hole punching answer it. Sent on a channel of its own,
/// without bound (one per link at most, and links are bounded): the
/// commands' queue can be full when a session authenticates (many
/// contacts dialled at once), and a signal lost there left the gate shut
/// and the contact's connection cut at
/// [`AUTHENTICATE_WITHIN`](super::AUTHENTICATE_WITHIN).
struct Authenticated {
    peer: PeerId,
    connection: ConnectionId,
}

/// A running generation.
pub(crate) type Generation = crate::generation::Generation<Command>;

fn setup_error(e: impl std::fmt::Display) -> TransportError {
    TransportError::Setup(Box::new(Reason(e.to_string())))
}

/// Builds a swarm with this identity and starts its task. One started
/// ahead of its turn (`current` false) takes no dial and tells of no
/// address until it is told its turn has come ([`Command::StartDialling`]);
/// the handle has it listen for direct connections at a fixed TCP port
/// only then.
pub(crate) fn spawn(
    key: identity::Keypair,
    config: &RelayConfig,
    counts: SharedCounts,
    shared: std::sync::Weak<Shared>,
    events: mpsc::Sender<TransportEvent>,
    current: bool,
) -> Result<Generation, TransportError> {
    let hole_punch = config.hole_punch;
    let max_incoming = config.max_incoming;
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
    let swarm = swarm
        .with_dns()
        .map_err(setup_error)?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(setup_error)?
        .with_behaviour(|key, relay| Behaviour {
            ip_limits: IpLimits::new(counts),
            circuits: CircuitLimits::new(MAX_PENDING_CIRCUITS_PER_RELAY, max_incoming as usize),
            limits: connection_limits::Behaviour::new(
                ConnectionLimits::default()
                    .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                    .with_max_established_incoming(Some(max_incoming))
                    .with_max_established_per_peer(Some(MAX_PER_PEER)),
            ),
            relay: CatchPanics::new(relay),
            // The relay learns our public address from this and tells us
            // the one it sees (what hole punching dials); the addresses we
            // listen on, and our reservations on other relays, stay ours.
            identify: Gate::new(HideCircuits::new(identify::Behaviour::new(
                identify::Config::new(IDENTIFY_VERSION.into(), key.public())
                    .with_hide_listen_addrs(true),
            ))),
            dcutr: Gate::new(Toggle::from(hole_punch.then(|| {
                PunchDials::new(
                    dcutr::Behaviour::new(key.public().to_peer_id()),
                    MAX_PUNCH_ADDRESSES,
                )
            }))),
            autonat: Gate::new(Toggle::from(
                hole_punch.then(autonat::v2::client::Behaviour::default),
            )),
            stream: stream::Behaviour::new(),
        })
        .map_err(setup_error)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION))
        .build();
    let local = *swarm.local_peer_id();
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (authenticated_tx, authenticated) = mpsc::unbounded_channel();
    let task = tokio::spawn(
        Task {
            swarm,
            commands_tx: tx.clone(),
            authenticated_tx,
            events,
            shared,
            slots: Vec::new(),
            listens: Listens::default(),
            direct_listeners: Vec::new(),
            fixed_tcp_listeners: Vec::new(),
            closing_fixed: Vec::new(),
            stopped: Vec::new(),
            stash: VecDeque::new(),
            opens: HashMap::new(),
            relayed: HashMap::new(),
            to_close: Vec::new(),
            external: HashSet::new(),
            current,
            draining: None,
            hole_punch,
            identified: HashSet::new(),
            before_circuit: HashMap::new(),
        }
        .run(rx, authenticated),
    );
    Ok(Generation {
        commands: tx,
        local,
        task,
    })
}

/// A relay and this generation's reservation on it.
struct Slot {
    addr: Multiaddr,
    relay: PeerId,
    listener: Option<ListenerId>,
    state: ReservationState,
    attempts: u32,
    retry_at: Option<Instant>,
    /// The last connection error to the relay, for when its listener
    /// closes without saying why.
    last_error: Option<String>,
    /// Addresses the relay named for this device on this reservation.
    addresses: usize,
    /// When this reservation was accepted.
    reserved_at: Option<Instant>,
}

/// How long a reservation must have lasted before its relay's earlier
/// failures are forgotten (its backoff starts again from the least): a
/// relay that accepts each reservation and then drops it (or has it
/// given up) was otherwise asked again every 2 s for ever.
const RESERVATION_PROVEN: Duration = Duration::from_secs(60);

/// Most addresses a relay may name for this device on one reservation:
/// a relay is reached at a few (an address of each kind it listens on).
/// The relay names them at every renewal, as often as it likes, and the
/// swarm and identify keep each new one for as long as the listener
/// lives: a relay naming fresh ones at each renewal, a second apart,
/// grew this device's memory without end (some 400 MB an hour), and
/// every status read copied the list. Past this the reservation is given
/// up, and tried again after its backoff.
const MAX_RELAY_ADDRESSES: usize = 8;

impl Slot {
    fn backoff(&self) -> Duration {
        let n = self.attempts.saturating_sub(1).min(16);
        (MIN_RESERVE_BACKOFF * 2u32.pow(n)).min(MAX_RESERVE_BACKOFF)
    }
}

struct Task {
    swarm: Swarm<Behaviour>,
    commands_tx: mpsc::Sender<Command>,
    authenticated_tx: mpsc::UnboundedSender<Authenticated>,
    events: mpsc::Sender<TransportEvent>,
    shared: std::sync::Weak<Shared>,
    slots: Vec<Slot>,
    listens: Listens,
    direct_listeners: Vec<ListenerId>,
    /// Those of `direct_listeners` at a fixed TCP port, which only the
    /// current generation holds ([`Command::StopDialling`]).
    fixed_tcp_listeners: Vec<ListenerId>,
    /// Those removed at [`Command::StopDialling`] that the swarm has not
    /// yet said are closed.
    closing_fixed: Vec<ListenerId>,
    /// The replies to [`Command::StopDialling`] waiting for
    /// `closing_fixed` to empty.
    stopped: Vec<oneshot::Sender<()>>,
    /// Events the swarm gave while it was polled out of turn
    /// ([`poll_until_idle`]).
    stash: VecDeque<SwarmEvent<BehaviourEvent>>,
    opens: HashMap<OpenId, (String, LinkReply)>,
    /// Relayed connections, by remote.
    relayed: HashMap<PeerId, Vec<ConnectionId>>,
    /// Remotes whose relayed connections close at a time (a direct one
    /// replaced them).
    to_close: Vec<(Instant, PeerId)>,
    external: HashSet<Multiaddr>,
    /// Whether this generation is the current one, the one that dials.
    /// One started ahead of its turn, or whose turn is over, refuses any
    /// dial sent to it, so a dial never leaves under an id of another
    /// epoch than the dialler's. Nor does it tell of new addresses
    /// ([`TransportEvent::Listening`]): on one the node tries every
    /// contact again, under the current id, and the next id's reservation
    /// before its turn (or the old id's again after it) is no reason to;
    /// the node tries them all again at the turn itself.
    current: bool,
    draining: Option<Instant>,
    hole_punch: bool,
    /// Relays that told us our address (identify) on the live connection.
    identified: HashSet<PeerId>,
    /// Circuit dials waiting for that, by relay.
    before_circuit: HashMap<PeerId, Vec<(Instant, Multiaddr, PeerId, LinkReply)>>,
}

/// Why a dial failed, in a few words: the innermost reason of the first
/// address tried (libp2p's own text repeats every address).
fn dial_failure(error: &libp2p::swarm::DialError) -> String {
    use libp2p::swarm::DialError;
    match error {
        DialError::Transport(errors) => match errors.first() {
            Some((_, e)) => {
                let mut cause: &dyn std::error::Error = e;
                while let Some(inner) = cause.source() {
                    cause = inner;
                }
                format!("cannot connect: {cause}")
            }
            None => "cannot connect".into(),
        },
        other => crate::error_chain(other),
    }
}

/// The relay a circuit address goes through, and its address.
fn relay_of(circuit: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut relay = Multiaddr::empty();
    for p in circuit.iter() {
        if matches!(p, Protocol::P2pCircuit) {
            return last_peer(&relay).map(|id| (id, relay));
        }
        relay.push(p);
    }
    None
}

fn dial_error(target: impl ToString, reason: impl ToString) -> TransportError {
    TransportError::Dial {
        target: target.to_string(),
        source: Box::new(Reason(reason.to_string())),
    }
}

fn link(
    direction: Direction,
    peer: PeerId,
    (remote, connection): (Option<&Multiaddr>, ConnectionId),
    relayed: bool,
    stream: libp2p::Stream,
    authenticated: &mpsc::UnboundedSender<Authenticated>,
) -> Link {
    let signal = authenticated.clone();
    let authenticated = crate::Authenticated::new(move || {
        let _ = signal.send(Authenticated { peer, connection });
    });
    // A relayed connection's remote is known by its ephemeral id at the
    // relay, and by the relay (which limits count it under: the id costs
    // a stranger nothing).
    let (kind, remote) = if relayed {
        let relay = remote.map(relay_name).unwrap_or_default();
        (
            LinkKind::Relay,
            Remote::Relayed {
                relay,
                peer: peer.to_string(),
            },
        )
    } else {
        (
            LinkKind::HolePunched,
            remote.and_then(ip_of).map_or(Remote::Unknown, Remote::Ip),
        )
    };
    Link {
        kind,
        direction,
        remote,
        stream: Box::new(stream),
        authenticated: Some(authenticated),
    }
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut authenticated: mpsc::UnboundedReceiver<Authenticated>,
    ) {
        loop {
            if let Some(until) = self.draining {
                let connections = self
                    .swarm
                    .network_info()
                    .connection_counters()
                    .num_connections();
                if connections == 0 || Instant::now() >= until {
                    return;
                }
            }
            if !self.stopped.is_empty() && self.closing_fixed.is_empty() {
                // Every fixed TCP port is let go: the swarm said its
                // listener closed, and its socket is dropped once the
                // transport is polled again.
                poll_until_idle(&mut self.swarm, &mut self.stash).await;
                for reply in self.stopped.drain(..) {
                    let _ = reply.send(());
                }
            }
            let wake = self.next_wake();
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(c) => self.command(c),
                },
                // The task holds a sender itself: never closed here.
                Some(Authenticated { peer, connection }) = authenticated.recv() => {
                    tracing::debug!(%peer, "authenticated: identify and hole punching may answer");
                    self.swarm.behaviour_mut().open(peer, connection);
                }
                event = next_event(&mut self.swarm, &mut self.stash) => {
                    if !self.swarm_event(event).await {
                        return;
                    }
                }
                () = self.listens.answer_late() => {}
                _ = tokio::time::sleep_until(wake) => self.timers(),
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        self.slots
            .iter()
            .filter_map(|s| s.retry_at)
            .chain(self.to_close.iter().map(|(t, _)| *t))
            .chain(self.draining)
            .chain(self.before_circuit.values().flatten().map(|(t, ..)| *t))
            .min()
            .unwrap_or(far)
    }

    fn timers(&mut self) {
        self.release_circuits(None);
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].retry_at.is_some_and(|t| t <= now) {
                self.slots[i].retry_at = None;
                self.reserve(i);
            }
        }
        let due: Vec<PeerId> = self
            .to_close
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, p)| *p)
            .collect();
        self.to_close.retain(|(t, _)| *t > now);
        for peer in due {
            // Only if the direct connection is still there to replace it.
            if !self.swarm.behaviour().stream.has_direct(&peer) {
                continue;
            }
            for c in self.relayed.get(&peer).cloned().unwrap_or_default() {
                tracing::debug!(%peer, "closing the relayed connection: a direct one replaced it");
                self.swarm.close_connection(c);
            }
        }
    }

    /// Asks relay `i` for a reservation.
    fn reserve(&mut self, i: usize) {
        if self.draining.is_some() {
            return;
        }
        let addr = self.slots[i].addr.clone().with(Protocol::P2pCircuit);
        match self.swarm.listen_on(addr) {
            Ok(id) => {
                self.slots[i].listener = Some(id);
                self.slots[i].addresses = 0;
                self.slots[i].state = ReservationState::Reserving;
            }
            Err(e) => self.failed(i, e.to_string()),
        }
    }

    /// libp2p's relay client panicked in the handler of a connection to
    /// `relay` (on what the relay sent) and that connection is being
    /// closed: the reservations that were on it are given up, and tried
    /// again after their backoff on a new connection. Before, the panic
    /// killed the connection's task without the swarm hearing, and every
    /// later attempt went to the dead connection and failed at once.
    ///
    /// Only a handler's panic comes here. The relay client's panic on an
    /// answer to a reservation given up is dropped in `CatchPanics`
    /// without a word to this task, so it fails no slot, not even one
    /// added again for that relay while the answer was on its way.
    /// Every slot on `relay` that has a listener is failed: libp2p's
    /// relay client keeps a relay's reservations on its first connection
    /// to it, nearly always the one closing; one on another connection
    /// to the relay (made while a dial was under way) is given up and
    /// made again too, which costs it a backoff.
    fn relay_client_panicked(&mut self, relay: PeerId, message: &str) {
        let error =
            format!("libp2p's relay client failed on what the relay sent ({message}); its connection was closed");
        for i in 0..self.slots.len() {
            if self.slots[i].relay != relay {
                continue;
            }
            // (One given up meanwhile has no listener, and is left be.)
            if let Some(id) = self.slots[i].listener {
                self.swarm.remove_listener(id);
                self.failed(i, error.clone());
            }
        }
    }

    fn failed(&mut self, i: usize, error: String) {
        let slot = &mut self.slots[i];
        slot.listener = None;
        slot.attempts += 1;
        let wait = slot.backoff();
        tracing::debug!(relay = %slot.addr, attempts = slot.attempts, "reservation failed: {error}");
        slot.state = ReservationState::Failing {
            error,
            attempts: slot.attempts,
            retry_in: wait.as_secs(),
        };
        slot.retry_at = Some(Instant::now() + wait);
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Listen { addr, reply } => match self.swarm.listen_on(addr.clone()) {
                Ok(id) => {
                    self.direct_listeners.push(id);
                    if fixed_tcp_port(&addr) {
                        self.fixed_tcp_listeners.push(id);
                    }
                    self.listens.insert(id, addr, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(TransportError::Listen {
                        addr,
                        source: Box::new(e),
                    }));
                }
            },
            Command::SetRelays { relays, reply } => {
                self.set_relays(relays);
                let _ = reply.send(());
            }
            Command::Dial { addr, reply } => {
                if !self.current || self.draining.is_some() {
                    let _ = reply.send(Err(TransportError::Stopped));
                    return;
                }
                let Some(peer) = last_peer(&addr) else {
                    let _ = reply.send(Err(dial_error(
                        &addr,
                        "the address does not end in /p2p/<id>",
                    )));
                    return;
                };
                if peer == *self.swarm.local_peer_id() {
                    let _ = reply.send(Err(dial_error(&addr, "that is this device")));
                    return;
                }
                let waiting: usize = self.before_circuit.values().map(Vec::len).sum();
                if self.opens.len() + waiting >= MAX_OPENING {
                    let _ = reply.send(Err(dial_error(&addr, "too many streams being opened")));
                    return;
                }
                self.dial(addr, peer, reply);
            }
            Command::OpenOn {
                peer,
                connection,
                reply,
            } => {
                if self.opens.len() >= MAX_OPENING {
                    let _ = reply.send(Err(dial_error(peer, "too many streams being opened")));
                    return;
                }
                let id = self.swarm.behaviour_mut().stream.open_on(peer, connection);
                self.opens.insert(id, (peer.to_string(), reply));
            }
            Command::Status { reply } => {
                // A draining generation has given up its reservations and
                // listeners, though its slots keep the states they had
                // (and the swarm lists a listener until it has closed
                // it): it reports none, so that a report merged with the
                // other generations' never counts what it gave up.
                if self.draining.is_some() {
                    let _ = reply.send(Status::default());
                    return;
                }
                let _ = reply.send(Status {
                    relays: self
                        .slots
                        .iter()
                        .map(|s| RelayState {
                            relay: s.addr.clone(),
                            state: match (&s.state, s.retry_at) {
                                (
                                    ReservationState::Failing {
                                        error, attempts, ..
                                    },
                                    Some(at),
                                ) => ReservationState::Failing {
                                    error: error.clone(),
                                    attempts: *attempts,
                                    retry_in: at
                                        .saturating_duration_since(Instant::now())
                                        .as_secs(),
                                },
                                (state, _) => state.clone(),
                            },
                        })
                        .collect(),
                    addresses: self.swarm.listeners().cloned().collect(),
                    external: self.external.iter().cloned().collect(),
                });
            }
            Command::StartDialling => {
                self.current = true;
                // The addresses it came to listen at before its turn (at
                // ports of its own) were not told of then: they are now,
                // as those it comes to listen at from now on will be.
                if self.draining.is_none() {
                    for addr in self.swarm.listeners().filter(|a| !is_circuit(a)) {
                        let _ = self.events.try_send(TransportEvent::Listening {
                            kind: LinkKind::Relay,
                            addr: addr.clone(),
                        });
                    }
                }
            }
            Command::StopDialling { reply } => {
                self.current = false;
                for id in self.fixed_tcp_listeners.drain(..) {
                    self.direct_listeners.retain(|l| *l != id);
                    if self.swarm.remove_listener(id) {
                        self.closing_fixed.push(id);
                    }
                }
                // Answered once the swarm says each is closed (run).
                if self.closing_fixed.is_empty() {
                    let _ = reply.send(());
                } else {
                    self.stopped.push(reply);
                }
            }
            Command::Drain { until } => {
                self.current = false;
                self.draining = Some(until);
                self.fixed_tcp_listeners.clear();
                for id in self.direct_listeners.drain(..) {
                    self.swarm.remove_listener(id);
                }
                for slot in &mut self.slots {
                    if let Some(id) = slot.listener.take() {
                        self.swarm.remove_listener(id);
                    }
                    slot.retry_at = None;
                }
            }
        }
    }

    /// Dials `peer` at a circuit address. With hole punching on, the
    /// relay must have told us our public address first (identify): hole
    /// punching sends the addresses known when the circuit opens. So a
    /// dial through a relay we are not yet connected to connects to it
    /// first, and opens the circuit once the relay has answered (or failed,
    /// or [`IDENTIFY_WAIT`] passed).
    fn dial(&mut self, addr: Multiaddr, peer: PeerId, reply: LinkReply) {
        let relay = relay_of(&addr);
        if self.hole_punch {
            if let Some((relay, relay_addr)) = relay {
                if !self.identified.contains(&relay) {
                    let waiting = self.before_circuit.entry(relay).or_default();
                    if waiting.is_empty() && !self.swarm.is_connected(&relay) {
                        let opts = DialOpts::peer_id(relay).addresses(vec![relay_addr]).build();
                        if let Err(e) = self.swarm.dial(opts) {
                            tracing::debug!(%relay, "dial to the relay failed: {e}");
                        }
                    }
                    waiting.push((Instant::now() + IDENTIFY_WAIT, addr, peer, reply));
                    return;
                }
            }
        }
        self.open_circuit(peer, addr, reply);
    }

    /// Opens a stream to `peer` at the circuit address `addr`; `reply`
    /// hears how it went.
    fn open_circuit(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        reply: oneshot::Sender<Result<Link, TransportError>>,
    ) {
        let id = self
            .swarm
            .behaviour_mut()
            .stream
            .open_at(peer, vec![addr.clone()]);
        self.opens.insert(id, (addr.to_string(), reply));
    }

    /// Opens the circuits that waited for `relay` (or all that waited too
    /// long, with `None`).
    fn release_circuits(&mut self, relay: Option<PeerId>) {
        let now = Instant::now();
        let mut ready = Vec::new();
        self.before_circuit.retain(|r, waiting| {
            if relay == Some(*r) {
                ready.append(waiting);
            } else {
                let (due, wait): (Vec<_>, Vec<_>) =
                    waiting.drain(..).partition(|(t, ..)| *t <= now);
                ready.extend(due);
                *waiting = wait;
            }
            !waiting.is_empty()
        });
        for (_, addr, peer, reply) in ready {
            self.open_circuit(peer, addr, reply);
        }
    }

    fn set_relays(&mut self, list: RelayList) {
        // Reserved on alike; only this device's own set a punch's floor.
        let relays = list.all();
        let keep: HashSet<&Multiaddr> = relays.iter().collect();
        let mut gone = Vec::new();
        self.slots.retain(|s| {
            let kept = keep.contains(&s.addr);
            if !kept {
                gone.extend(s.listener);
            }
            kept
        });
        for id in gone {
            self.swarm.remove_listener(id);
        }
        let trusted: Vec<PeerId> = relays.iter().filter_map(last_peer).collect();
        self.swarm.behaviour_mut().trust(&trusted, &list.own);
        self.swarm.behaviour_mut().circuits.set_relays(relays.len());
        for addr in relays {
            if self.slots.iter().any(|s| s.addr == addr) {
                continue;
            }
            let Some(relay) = last_peer(&addr) else {
                continue;
            };
            self.slots.push(Slot {
                addr,
                relay,
                listener: None,
                state: ReservationState::Reserving,
                attempts: 0,
                retry_at: None,
                last_error: None,
                addresses: 0,
                reserved_at: None,
            });
            let i = self.slots.len() - 1;
            self.reserve(i);
        }
    }

    /// Handles one swarm event; false when the task should end.
    async fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> bool {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::debug!(%address, "relay client listening");
                if let Some(i) = self
                    .slots
                    .iter()
                    .position(|s| s.listener == Some(listener_id))
                {
                    self.slots[i].addresses += 1;
                    if self.slots[i].addresses > MAX_RELAY_ADDRESSES {
                        self.swarm.remove_listener(listener_id);
                        self.failed(
                            i,
                            format!(
                                "the relay named more than {MAX_RELAY_ADDRESSES} addresses for this device"
                            ),
                        );
                        return true;
                    }
                }
                self.listens.got(listener_id, &address);
                if self.current && self.draining.is_none() {
                    let _ = self.events.try_send(TransportEvent::Listening {
                        kind: LinkKind::Relay,
                        addr: address,
                    });
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                self.direct_listeners.retain(|l| *l != listener_id);
                self.fixed_tcp_listeners.retain(|l| *l != listener_id);
                self.closing_fixed.retain(|l| *l != listener_id);
                if let Some((reply, addr)) = self.listens.take(listener_id) {
                    let source: Box<dyn std::error::Error + Send + Sync> = match reason {
                        Ok(()) => Box::new(Reason("closed".into())),
                        Err(e) => Box::new(e),
                    };
                    let _ = reply.send(Err(TransportError::Listen { addr, source }));
                } else if let Some(i) = self
                    .slots
                    .iter()
                    .position(|s| s.listener == Some(listener_id))
                {
                    let error = match reason {
                        Err(e) => crate::error_chain(&e),
                        Ok(()) => self.slots[i]
                            .last_error
                            .take()
                            .unwrap_or_else(|| "the connection to the relay closed".into()),
                    };
                    self.failed(i, error);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                if let Some(slot) = self.slots.iter_mut().find(|s| s.relay == peer) {
                    slot.last_error = Some(dial_failure(&error));
                }
                if self.before_circuit.contains_key(&peer) && !self.swarm.is_connected(&peer) {
                    // The circuit dial fails too, with the reason.
                    self.release_circuits(Some(peer));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                ..
            })) => {
                self.identified.insert(peer_id);
                self.release_circuits(Some(peer_id));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } if endpoint.is_relayed() => {
                self.relayed.entry(peer_id).or_default().push(connection_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.identified.remove(&peer_id);
                }
                if let Some(list) = self.relayed.get_mut(&peer_id) {
                    list.retain(|c| *c != connection_id);
                    if list.is_empty() {
                        self.relayed.remove(&peer_id);
                    }
                }
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::debug!(%address, "external address confirmed");
                self.external.insert(address);
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                self.external.remove(&address);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(RelayEvent::Panicked {
                peer,
                message,
            })) => self.relay_client_panicked(peer, &message),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(RelayEvent::Inner(event))) => match event {
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal,
                    limit,
                } => {
                    // (Not one given up meanwhile: its listener is gone.)
                    for slot in self
                        .slots
                        .iter_mut()
                        .filter(|s| s.relay == relay_peer_id && s.listener.is_some())
                    {
                        if !renewal {
                            tracing::info!(relay = %slot.addr, ?limit, "reserved on the relay");
                        }
                        slot.state = ReservationState::Reserved;
                        let now = Instant::now();
                        if !renewal {
                            slot.reserved_at = Some(now);
                        } else if slot
                            .reserved_at
                            .is_some_and(|at| now.duration_since(at) >= RESERVATION_PROVEN)
                        {
                            slot.attempts = 0;
                        }
                        slot.last_error = None;
                    }
                }
                other => tracing::debug!(?other, "relay client"),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => match result {
                Ok(connection) => {
                    tracing::info!(peer = %remote_peer_id, "hole punched: a direct connection");
                    self.to_close
                        .push((Instant::now() + RELAYED_GRACE, remote_peer_id));
                    // Each side that sees the punch succeed opens a stream
                    // on it: DCUtR does not always report it on both (one
                    // TCP simultaneous open makes one connection). A second
                    // session with the same contact is refused by the
                    // first's preamble, or replaces it.
                    if let Some(shared) = self.shared.upgrade() {
                        let peer = shared.remember_punched(
                            self.commands_tx.clone(),
                            remote_peer_id,
                            connection,
                        );
                        let _ = self.events.try_send(TransportEvent::Discovered {
                            peer,
                            initiate: true,
                        });
                    }
                }
                Err(e) => {
                    tracing::info!(peer = %remote_peer_id, "hole punching failed, staying on the relay: {e}")
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(event)) => {
                tracing::debug!(addr = %event.tested_addr, ok = event.result.is_ok(), "reachability probe");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Stream(event)) => match event {
                stream::Event::Inbound {
                    peer,
                    remote,
                    connection,
                    relayed,
                    stream,
                } => {
                    let link = link(
                        Direction::Inbound,
                        peer,
                        (remote.as_ref(), connection),
                        relayed,
                        stream,
                        &self.authenticated_tx,
                    );
                    if self
                        .events
                        .send(TransportEvent::Incoming(link))
                        .await
                        .is_err()
                    {
                        return false;
                    }
                }
                stream::Event::Opened {
                    id,
                    peer,
                    remote,
                    connection,
                    relayed,
                    stream,
                } => {
                    if let Some((_, reply)) = self.opens.remove(&id) {
                        let _ = reply.send(Ok(link(
                            Direction::Outbound,
                            peer,
                            (remote.as_ref(), connection),
                            relayed,
                            stream,
                            &self.authenticated_tx,
                        )));
                    }
                }
                stream::Event::OpenFailed { id, error, .. } => {
                    if let Some((target, reply)) = self.opens.remove(&id) {
                        let _ = reply.send(Err(dial_error(target, error)));
                    }
                }
            },
            _ => {}
        }
        true
    }
}
