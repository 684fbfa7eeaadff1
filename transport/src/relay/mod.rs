//! Links across the internet: libp2p circuit relays (v2), upgraded to
//! direct connections by hole punching (DCUtR) where the routers allow.
//!
//! # The client ([`Relays`])
//!
//! The node keeps a *reservation* on every relay it is configured with:
//! the relay then forwards circuits other devices open to it. The
//! reservation is renewed while the connection to the relay lives, made
//! again after it drops (with backoff), and each relay's state (reserving,
//! reserved, failing and why) is in [`TransportInfo::relays`]. A relay can
//! make libp2p's relay client panic (see `catch_panics`), and the panic is
//! caught. A reservation that expires absurdly far ahead makes its
//! connection's handler panic: the connection to that relay is closed,
//! with the links through it (they are dialled again), and the
//! reservation reported failing with the panic's message, then made again
//! after its backoff on a new connection. An OK answer to a reservation
//! this device gave up (while the relay held it, or as it was given up)
//! makes libp2p's relay client panic in the swarm's task: that answer is
//! dropped, and nothing else changes (the connection and its links stay).
//!
//! A contact is dialled at `<relay>/p2p-circuit/p2p/<their id>`: the relay
//! joins the two connections and sees sizes and timing, not content (the
//! libp2p Noise handshake and Strand's own session run end to end inside).
//! When both sides can take direct connections, DCUtR punches a hole: each
//! learns its public address from the relay (identify), and both dial at
//! once. Once the direct connection is up, each side that sees it opens a
//! Strand stream on it (reported as [`TransportEvent::Discovered`]; the
//! link's kind is [`LinkKind::HolePunched`]), and the relayed connection
//! closes [`RELAYED_GRACE`] later if the direct one is still up: the node
//! moves its session to the direct link, and strand-sync's reconciliation
//! means a move in the middle of a sync loses and repeats nothing.
//!
//! A link through a relay is a [`Remote::Relayed`](crate::Remote::Relayed):
//! the remote's id at the relay, which costs a stranger nothing to make,
//! and the relay, named by this device's own connection to it, which the
//! remote cannot choose. Limits count it by the relay
//! ([`Remote::limit_key`](crate::Remote::limit_key)), and so does the
//! client's swarm for circuits in their handshakes: one relay takes at
//! most half of the connections the swarm takes in their handshakes at
//! once, whatever ids it puts through. Established circuits no Strand
//! session has authenticated yet (strangers', until the gate cuts them
//! at [`AUTHENTICATE_WITHIN`]) are counted by relay too: together they
//! take at most half of the inbound connections the swarm holds
//! ([`RelayConfig::max_incoming`]), each relay an equal share of that
//! half, and a new circuit through a relay that holds its share is
//! refused (none is closed for it). A circuit whose session authenticated
//! a contact leaves its relay's count, so contacts linked through a relay
//! never fill its share; strangers through one relay cannot keep out a
//! contact's circuit through another.
//!
//! In a hole punch the remote names the addresses this device dials (in
//! DCUtR's CONNECT message, some 400 fit), and libp2p's dcutr dials every
//! one that is not a circuit. A punch here dials at most
//! [`MAX_PUNCH_ADDRESSES`] of them, public ones first, and none narrower
//! than the relay it goes through (a contact met through a relay on the
//! internet cannot have this device dial its LAN or itself; a relay the
//! contact named, or one a contact lent, [`RelayConfig::borrowed`],
//! counts as no nearer than this device's own), of those
//! on the LAN or this machine one host's only (a relay that near observed
//! the contact at one address there), no names, no unspecified,
//! multicast or broadcast address, and one punch dial a contact at a
//! time: a contact cannot use the device to scan.
//!
//! # Identity
//!
//! The libp2p identity used here is not the LAN one, and it changes every
//! [`RelayConfig::epoch`]: it is [`RelayConfig::identity`]'s key for the
//! epoch (the node derives it from a seed only its contacts know, so they
//! can compute the id to dial, and a relay cannot link one epoch's id to
//! the next: identify tells it none of the device's other reservations,
//! which libp2p counts as external addresses). Each identity runs as a
//! *generation* of its own (a swarm on a task). The next epoch's
//! generation starts [`EPOCH_MARGIN`] before the turn and reserves on
//! every relay beside the current one, and the old one keeps its
//! reservations until [`EPOCH_MARGIN`] after the turn: devices' clocks
//! differ a little, and a contact dials the id of the epoch its own clock
//! is in, which is reserved whether their clock is up to the margin ahead
//! or behind. Then the old one gives up its reservations and keeps its
//! live links until they end (at most [`MAX_DRAIN`]). Only the current
//! generation dials ([`Relays::dialler`]; [`Transport::dial`] goes to it
//! too): one started early dials nothing before its turn (nor tells of
//! its circuit addresses, on which the node would try every contact
//! again), and an old one refuses every dial sent to it after its turn
//! (one it took before, still waiting for the relay to identify it,
//! opens within a few seconds). The node dials a contact under their id
//! of the dialler's epoch only, so a relay never sees one of this
//! device's ids ask for two ids of a contact, nor two of its ids ask for
//! one id of a contact: at the turn it sees the old id ask for contacts'
//! old ids and the new one for their new ids. (That holds for contacts,
//! whose ids the node computes. An address dialled as it was given, a
//! peer the user named say, names the same id in every epoch, and each
//! epoch's id asks for it.) The two ids reserve side by side for the
//! margins, each on a connection of its own (linked only, as at any
//! time, by the IP address they come from), so a relay holds two
//! reservations of each device then ([`server::MAX_RESERVATIONS`]).
//! What the client reports ([`Relays::relay_states`],
//! [`Transport::info`]) covers every generation that holds reservations:
//! each relay once, reserved if one of them holds a reservation there
//! (the device is reachable through it under that id), and the
//! addresses each listens at; the identity it names is the current
//! one's, the one that dials.
//!
//! At a fixed TCP port ([`RelayConfig::listen`], `--punch-listen`) only
//! the current generation listens for direct connections: the next one
//! from its turn, once the old one has stopped listening there. Both
//! would bind it (the TCP transport sets SO_REUSEPORT), the system would
//! hand each about half of the direct connections that come, and those
//! that reach the id their dialler did not expect would fail. A
//! generation listening at port 0 has a port of its own, from its start
//! until it drains, and its connections to the relays leave from that
//! port, so the address a relay observes for it leads there. So does one
//! at a QUIC port, fixed or not: QUIC cannot share a port (a generation
//! that finds it held takes a free one), and its listener's socket
//! carries all its QUIC connections, so taking it away at the turn would
//! close the old generation's relay connections and hole-punched links
//! then, not when it drains. One started early with only fixed TCP ports
//! has no listener before its turn, and its
//! connections to the relays leave from ports of the system's choosing
//! (they did before too: the old id's connection to the same relay held
//! the 4-tuple). A hole punch on a circuit to it before its turn (a
//! contact whose clock is ahead) then finds nothing listening, usually
//! fails, and the link stays on the relay; after its turn, identify's
//! next round on those connections gives the observed address with the
//! listening port put in, which holds behind a NAT that keeps ports.
//!
//! An unspecified address there (`0.0.0.0`, `::`, as by default) takes
//! every address of its family the device has, and each one that comes
//! later. On a device with none of that family yet (IPv6 turned off, no
//! network at all) a generation listens there all the same, with no
//! address until one comes: a listen waits
//! [`crate::generation::FIRST_ADDRESS_WAIT`] for a first address, not
//! forever, as the LAN's does.
//!
//! The SO_REUSEPORT that lets a new generation take the port lets
//! another program of the same user listen at a fixed TCP port beside
//! this client (a second Strand node given the same `--punch-listen`
//! port), or this client beside it, and the system would split direct
//! connections between the two. So where no generation of this client
//! listens at the fixed TCP ports (the first one, at the start; the
//! new one at a turn, once the old one has answered that it let them
//! go), each is first checked for another program's listener
//! ([`crate::ports`]). One held is logged ("port N is in use by
//! another program") and the generation listens at a free port in its
//! place, as for a fixed port it cannot listen at for any other
//! reason: the node starts, and hole punching works where the routers
//! allow, though not through a port forwarded to the one given. Each
//! turn checks again, so the port is taken once the other program has
//! let it go. A turn whose old generation did not answer in time (or
//! had stopped) checks nothing: its listener may still be there, and
//! the check cannot tell it from another program's.
//!
//! # The server ([`server`])
//!
//! `strand relay` runs [`server::RelayServer`], with limits suited to sync
//! ([`server::RelayLimits`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::FutureExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{identity, Multiaddr, PeerId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::generation::{self, ask};
use crate::lan::limits::SharedCounts;
use crate::{Link, LinkKind, Peer, Transport, TransportError, TransportEvent, TransportInfo};

mod catch_panics;
pub use catch_panics::{contain as contain_panic, containing as containing_panic, panic_message};
mod circuit_limits;
mod client;
mod gate;
mod hide_circuits;
mod punch_dials;
pub mod server;

use client::{Command, Generation, Status};
pub use gate::AUTHENTICATE_WITHIN;

/// How long a relayed connection stays open after hole punching made a
/// direct one: time for the node to start its session on the direct link
/// and let the relayed one end by itself.
pub const RELAYED_GRACE: Duration = Duration::from_secs(20);

/// Addresses one hole punch dials at most, of those the remote named:
/// the swarm dials eight of a dial's addresses at once (libp2p's dial
/// concurrency), and a punch works only if this side's dial leaves when
/// the other side's does, so an address dialled after a first eight
/// failed comes too late to punch anything. An honest device names the
/// addresses others observed it at (libp2p's dcutr, the 20 latest; one
/// per transport and IP version where its NAT keeps ports); a hostile
/// one could name some 400.
pub const MAX_PUNCH_ADDRESSES: usize = 8;

/// How long a turn waits for the old generation to let its fixed TCP
/// ports go ([`Relays::turn`]). Its task answers within moments; one
/// stuck would otherwise hold `rotating`, and every look at the clock,
/// rotation and shutdown behind it. Past this the new generation listens
/// there all the same (the old one may then share the port for a while).
/// Longer in the unit tests, which look at the port straight after a
/// turn, on machines busy enough to make a moment seconds.
#[cfg(not(test))]
const STOP_DIALLING_WAIT: Duration = Duration::from_secs(5);
#[cfg(test)]
const STOP_DIALLING_WAIT: Duration = Duration::from_secs(60);

/// How long an old generation keeps its links after its epoch, at most:
/// sessions on it resume at once on the new identity.
pub const MAX_DRAIN: Duration = Duration::from_secs(10 * 60);

/// The first wait before reserving again on a relay that failed; doubled
/// after each failure up to [`MAX_RESERVE_BACKOFF`].
pub const MIN_RESERVE_BACKOFF: Duration = Duration::from_secs(2);

/// The longest wait between attempts to reserve on a failing relay.
pub const MAX_RESERVE_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// How often the client checks the wall clock for a new epoch, at most.
const RECHECK_EPOCH: Duration = Duration::from_secs(60);

/// How long before an epoch's turn its identity reserves on the relays,
/// and how long after it the old identity keeps its reservations (both
/// taking what comes through them; only the current one dials). Devices'
/// clocks differ a little: a contact whose clock is up to this far ahead
/// or behind dials the id of the epoch its own clock is in, and finds it
/// reserved. Dials need no margin then, and a dialler asks for one id of
/// each contact, the one of its own epoch, under its own id of that
/// epoch: a relay never sees one id ask for two ids of a contact, nor
/// two ids of a device ask for one id of a contact. At most a quarter of
/// an epoch (shorter ones, in tests), so the margins of two turns never
/// meet.
pub const EPOCH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Generations kept at once: the current one, the next (from
/// [`EPOCH_MARGIN`] before its turn), and old ones (the one before the
/// current keeps its reservations until [`EPOCH_MARGIN`] after the turn;
/// older ones hold only links that were live then).
const MAX_GENERATIONS: usize = 5;

/// Direct connections made by hole punching, remembered for
/// [`Transport::open`].
const MAX_PUNCHED: usize = 256;

/// Inbound connections the relay client holds at once by default
/// ([`RelayConfig::max_incoming`]): circuits and direct connections
/// together, a few per contact.
pub const MAX_INCOMING: u32 = 256;

/// The secret key (Ed25519, 32 bytes) of this device's relay identity in a
/// given epoch.
pub type IdentityFn = Arc<dyn Fn(u64) -> [u8; 32] + Send + Sync>;

/// The wall clock the client's epochs follow.
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Relay client settings.
#[derive(Clone)]
pub struct RelayConfig {
    /// Relays to keep a reservation on, this device's own: those its user
    /// chose and the one it runs (each `…/p2p/<relay id>`; those
    /// [`is_relay_addr`] does not take are left out, with a warning).
    pub relays: Vec<Multiaddr>,
    /// Relays contacts lent this device (the ones they run for their
    /// contacts), reserved on as [`RelayConfig::relays`] are. Unlike
    /// those, they do not set how near a hole punch may dial (see the
    /// module docs): a contact lending a relay on this machine or LAN
    /// does not open them to punches.
    pub borrowed: Vec<Multiaddr>,
    /// This device's relay identity per epoch.
    pub identity: IdentityFn,
    /// How long one identity lives. Epochs count from the Unix epoch, so
    /// every device with a correct clock agrees on them.
    pub epoch: Duration,
    /// The clock epochs are read from: [`SystemTime::now`] by default (the
    /// node passes its own, tests one they move; see
    /// [`Relays::follow_clock`]).
    pub clock: WallClock,
    /// Accept direct connections and punch holes (DCUtR). Off, the node
    /// is reached through relays only and listens on nothing else.
    pub hole_punch: bool,
    /// Where direct connections are accepted when hole punching (ports of
    /// 0: the system picks; each generation picks anew, and listens from
    /// its start until it drains). At a fixed TCP port only the current
    /// generation listens: the next one from its turn, and the old one
    /// stops at it (two listening there would split the connections that
    /// come between two ids, and each one reaching the id its dialler did
    /// not expect would fail). At a fixed QUIC port each generation
    /// listens from its start, and one that finds it held by the one
    /// before takes a free port ([`fixed_tcp_port`]). A fixed TCP port
    /// another program listens at is not shared either: a free one is
    /// taken in its place (see the module docs).
    pub listen: Vec<Multiaddr>,
    /// Inbound connections held at once, circuits and direct ones
    /// together ([`MAX_INCOMING`] by default). Circuits no Strand session
    /// has authenticated yet take at most half of them, split equally
    /// among the relays (see the module docs), so strangers through one
    /// relay cannot keep out circuits through the others.
    pub max_incoming: u32,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("relays", &self.relays)
            .field("borrowed", &self.borrowed)
            .field("epoch", &self.epoch)
            .field("hole_punch", &self.hole_punch)
            .field("listen", &self.listen)
            .field("max_incoming", &self.max_incoming)
            .finish_non_exhaustive()
    }
}

impl RelayConfig {
    /// Settings for these relays (this device's own, none borrowed) and
    /// identities: hole punching on, direct connections accepted on all
    /// interfaces (TCP and QUIC).
    pub fn new(relays: Vec<Multiaddr>, identity: IdentityFn, epoch: Duration) -> RelayConfig {
        RelayConfig {
            relays,
            borrowed: Vec::new(),
            identity,
            epoch,
            clock: Arc::new(SystemTime::now),
            hole_punch: true,
            listen: crate::listen_everywhere(0),
            max_incoming: MAX_INCOMING,
        }
    }
}

/// Where a reservation on one relay stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReservationState {
    /// Connecting to the relay, or waiting for its answer.
    Reserving,
    /// The relay holds a slot: contacts can reach this device through it.
    Reserved,
    /// The last attempt failed; another follows in `retry_in`.
    Failing {
        /// Why, in words.
        error: String,
        /// Failed attempts in a row.
        attempts: u32,
        /// Seconds until the next attempt.
        retry_in: u64,
    },
}

impl std::fmt::Display for ReservationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReservationState::Reserving => f.write_str("reserving"),
            ReservationState::Reserved => f.write_str("reserved"),
            ReservationState::Failing {
                error,
                attempts,
                retry_in,
            } => write!(
                f,
                "failing ({attempts} attempts; retry in {retry_in} s): {error}"
            ),
        }
    }
}

/// One relay and this device's reservation on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayState {
    /// The relay's address.
    pub relay: Multiaddr,
    /// The reservation.
    pub state: ReservationState,
}

/// The PeerId of an Ed25519 secret key, as [`RelayConfig::identity`]
/// returns them: what a contact computes to dial a device through a relay.
pub fn peer_id_of(secret: [u8; 32]) -> PeerId {
    keypair(secret).public().to_peer_id()
}

pub(crate) fn keypair(mut secret: [u8; 32]) -> identity::Keypair {
    identity::Keypair::ed25519_from_bytes(&mut secret).expect("any 32 bytes are an Ed25519 key")
}

/// The address of `peer` through `relay`: `<relay>/p2p-circuit/p2p/<peer>`.
pub fn circuit_addr(relay: &Multiaddr, peer: PeerId) -> Multiaddr {
    relay
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(peer))
}

/// Whether an address goes through a relay.
pub fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether this client can dial `addr`: `<relay>/p2p/<relay id>/p2p-circuit/p2p/<target id>`
/// and nothing more (what [`circuit_addr`] makes), where
/// `<relay>/p2p/<relay id>` is a relay's address as [`is_relay_addr`]
/// takes it (the one rule for both: a circuit through a relay this
/// client reaches). That is what libp2p's relay client dials (one
/// `/p2p-circuit`, the relay's id before it, the target's after it)
/// over this client's TCP, QUIC and DNS. Any other circuit (no target id
/// or no relay id, a second relay, something after the target, a relay
/// at `/ws`, `/webrtc`, QUIC's draft `/quic` or port 0) fails every time
/// it is dialled, so [`Relays`]' [`Transport::dial`] does not take it:
/// whoever gave it is told at once that nothing dials it, rather than
/// have it fail again and again.
fn dials(addr: &Multiaddr) -> bool {
    let parts: Vec<Protocol<'_>> = addr.iter().collect();
    match parts.as_slice() {
        [relay @ .., Protocol::P2pCircuit, Protocol::P2p(_)] => relay_with_id(relay),
        _ => false,
    }
}

/// Whether `addr` is a relay's address as this client reaches it:
/// `<relay>/p2p/<relay id>` and nothing more, where `<relay>` is one IP
/// address (not unspecified) or a name (`/dns`, `/dns4`, `/dns6`: the
/// client resolves names), then a TCP port, or (in builds with QUIC,
/// [`crate::QUIC`]) a UDP port and `/quic-v1`, the port not 0; or
/// `/dnsaddr/<name>`. The circuits [`Relays`] dials are those through
/// such an address (the two share this rule), so a relay this takes is
/// one every circuit can go through.
/// A relay at any other address (`/ws`, `/webrtc`, QUIC's draft `/quic`,
/// port 0, `0.0.0.0`, no transport at all, a second `/p2p`, or through
/// another relay) would fail every reservation and every circuit, for
/// ever: [`RelayConfig::relays`] and [`Relays::set_relays`] leave it out,
/// and so does the node with a contact's relays; a user who gives one is
/// told why ([`RELAY_ADDRESS_FORMS`]).
pub fn is_relay_addr(addr: &Multiaddr) -> bool {
    let parts: Vec<Protocol<'_>> = addr.iter().collect();
    relay_with_id(&parts)
}

/// Whether this client reaches a relay at `addr`, a relay's address less
/// its `/p2p/<relay id>` (as a relay is told where it is reached:
/// `strand relay --announce`): [`is_relay_addr`] of `addr` with the
/// relay's id after it.
pub fn reaches_relay_at(addr: &Multiaddr) -> bool {
    let parts: Vec<Protocol<'_>> = addr.iter().collect();
    reaches(&parts)
}

/// [`is_relay_addr`] of an address's parts: [`reaches`], then the
/// relay's id.
fn relay_with_id(parts: &[Protocol<'_>]) -> bool {
    match parts {
        [at @ .., Protocol::P2p(_)] => reaches(at),
        _ => false,
    }
}

/// Whether the client's transports reach a relay at `at` (an address's
/// parts, less the relay's id): an IP address that is not unspecified or
/// a name, then TCP or QUIC ([`crate::tcp_or_quic`]); or `/dnsaddr/<name>`.
fn reaches(at: &[Protocol<'_>]) -> bool {
    let host = |p: &Protocol<'_>| match p {
        Protocol::Ip4(ip) => !ip.is_unspecified(),
        Protocol::Ip6(ip) => !ip.is_unspecified(),
        Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => !name.is_empty(),
        _ => false,
    };
    match at {
        [Protocol::Dnsaddr(name)] => !name.is_empty(),
        at => crate::tcp_or_quic(at, host, |port| port != 0),
    }
}

/// The relay addresses [`is_relay_addr`] takes, in words for whoever
/// gives one that it does not: true of this build (QUIC only where the
/// build speaks it).
pub const RELAY_ADDRESS_FORMS: &str = if crate::QUIC {
    "a relay is reached over TCP or QUIC: an IP address (/ip4/…, /ip6/…; not 0.0.0.0 or ::) \
     or a name (/dns/…, /dns4/…, /dns6/…), then /tcp/PORT or /udp/PORT/quic-v1 (PORT not 0), \
     or /dnsaddr/NAME; then /p2p/ and the relay's id \
     (e.g. /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…, as `strand relay` prints it)"
} else {
    "a relay is reached over TCP (this build has no QUIC): an IP address (/ip4/…, /ip6/…; \
     not 0.0.0.0 or ::) or a name (/dns/…, /dns4/…, /dns6/…), then /tcp/PORT (PORT not 0), \
     or /dnsaddr/NAME; then /p2p/ and the relay's id \
     (e.g. /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…, as `strand relay` prints it)"
};

/// The id at the end of an address (`…/p2p/<id>`).
pub(crate) fn last_peer(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last()? {
        Protocol::P2p(id) => Some(id),
        _ => None,
    }
}

/// The relay a circuit goes through, named by the circuit's address on
/// this side (see [`crate::stream::Event::Inbound`]'s `remote`: the address
/// of this device's own connection to the relay, then `/p2p-circuit`), so
/// the remote cannot choose it: the relay's id, or where that address
/// names none (a relay that dialled this device) the relay's address.
pub(crate) fn relay_name(circuit: &Multiaddr) -> String {
    let relay: Multiaddr = circuit
        .iter()
        .take_while(|p| !matches!(p, Protocol::P2pCircuit))
        .collect();
    match last_peer(&relay) {
        Some(id) => id.to_string(),
        None => relay.to_string(),
    }
}

/// `addr` with its TCP or UDP port set to 0.
fn any_port(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(0),
            Protocol::Udp(_) => Protocol::Udp(0),
            other => other,
        })
        .collect()
}

/// Whether `addr` names a TCP port (one not 0): where two generations
/// both listened, the system would split the connections that come there
/// between them (the TCP transport sets SO_REUSEPORT), so only the
/// current generation listens at one. A QUIC (UDP) port is not one of
/// these: the QUIC transport cannot share a port, so a generation that
/// finds its port held takes a free one; and its listener's socket is
/// the one its connections use (dials leave from it too), so removing
/// the listener closes every connection on it, the old generation's
/// relay connections and hole-punched links among them. Each generation
/// listens at a QUIC port from its start until it drains.
pub(crate) fn fixed_tcp_port(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, Protocol::Tcp(port) if port != 0))
}

/// The epoch `at` falls in.
pub fn epoch_at(at: SystemTime, epoch: Duration) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_millis() / epoch.as_millis().max(1)) as u64
}

/// How long from `at` until the next epoch starts.
fn until_next_epoch(at: SystemTime, epoch: Duration) -> Duration {
    let since = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let len = epoch.as_millis().max(1);
    Duration::from_millis((len - since % len) as u64)
}

/// The margin around a turn for epochs of this length: [`EPOCH_MARGIN`],
/// at most a quarter of an epoch.
fn margin(epoch: Duration) -> Duration {
    EPOCH_MARGIN.min(epoch / 4)
}

/// How long from `at` until the client next has something to do: start
/// the next epoch's generation (a margin before the turn), turn, or have
/// the old generation give up its reservations (a margin after it). Never
/// zero: the turn is always ahead, and each other moment counts only
/// while it is.
fn until_next_look(at: SystemTime, epoch: Duration) -> Duration {
    let until = until_next_epoch(at, epoch);
    let margin = margin(epoch);
    let into = epoch.saturating_sub(until);
    let mut wait = until;
    if until > margin {
        wait = wait.min(until - margin);
    }
    if into < margin {
        wait = wait.min(margin - into);
    }
    wait.max(Duration::from_millis(1))
}

/// A generation as the handle knows it: its epoch, identity and commands.
#[derive(Clone)]
struct Current {
    commands: mpsc::Sender<Command>,
    local: PeerId,
    epoch: u64,
}

/// The generation that dials now, as it was when asked
/// ([`Relays::dialler`]): its epoch, its id, and its dials. A contact's id
/// to dial is theirs for [`Dialler::epoch`]; dials through a dialler whose
/// epoch has turned are refused (the generation dials no more), so one
/// of this device's ids only ever asks for contacts' ids of its own
/// epoch.
#[derive(Clone)]
pub struct Dialler(Current);

impl std::fmt::Debug for Dialler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialler")
            .field("local", &self.0.local)
            .field("epoch", &self.0.epoch)
            .finish_non_exhaustive()
    }
}

impl Dialler {
    /// The epoch of the identity that dials: contacts are dialled under
    /// their id of this epoch.
    pub fn epoch(&self) -> u64 {
        self.0.epoch
    }

    /// The identity that dials, as relays see it.
    pub fn local_peer_id(&self) -> PeerId {
        self.0.local
    }

    /// Dials a circuit address (one through a relay [`is_relay_addr`]
    /// takes) from this generation, or returns `None` for an address this
    /// client does not dial. Fails with
    /// [`TransportError::Stopped`] once the generation's epoch has turned.
    pub fn dial(
        &self,
        addr: &Multiaddr,
    ) -> Option<BoxFuture<'static, Result<Link, TransportError>>> {
        if !dials(addr) {
            return None;
        }
        let commands = self.0.commands.clone();
        let addr = addr.clone();
        Some(
            async move {
                generation::dial(&commands, addr, |addr, reply| Command::Dial { addr, reply }).await
            }
            .boxed(),
        )
    }
}

/// What the handle and the generations share.
pub(crate) struct Shared {
    config: RelayConfig,
    relays: Mutex<RelayList>,
    events: mpsc::Sender<TransportEvent>,
    counts: SharedCounts,
    current: RwLock<Current>,
    /// The next epoch's generation, from [`EPOCH_MARGIN`] before its turn:
    /// reserved on the relays and taking what comes, dialling nothing.
    next: Mutex<Option<Current>>,
    /// The generation before the current one, until [`EPOCH_MARGIN`] after
    /// the turn: still reserved and taking what comes, dialling nothing.
    previous: Mutex<Option<Current>>,
    /// Every generation's task (the current, next and previous ones too),
    /// so shutdown stops them all.
    old: Mutex<VecDeque<Generation>>,
    punched: Mutex<Punched>,
    stop: CancellationToken,
    rotating: tokio::sync::Mutex<()>,
}

/// Proof that the caller holds [`Shared::rotating`]: what turns, starts
/// or ends generations takes it, so that one look at the clock is done
/// whole before another starts.
type Rotating<'a> = tokio::sync::MutexGuard<'a, ()>;

/// Direct connections hole punching made, by handle.
#[derive(Default)]
struct Punched {
    by_handle: HashMap<u64, (mpsc::Sender<Command>, PeerId, ConnectionId)>,
    order: VecDeque<u64>,
    next: u64,
}

impl Shared {
    /// A handle the node can [`Transport::open`] for a direct connection.
    pub(crate) fn remember_punched(
        &self,
        commands: mpsc::Sender<Command>,
        peer: PeerId,
        connection: ConnectionId,
    ) -> Peer {
        let mut t = self.punched.lock().expect("punched lock");
        t.next += 1;
        let h = t.next;
        t.by_handle.insert(h, (commands, peer, connection));
        t.order.push_back(h);
        while t.order.len() > MAX_PUNCHED {
            if let Some(old) = t.order.pop_front() {
                t.by_handle.remove(&old);
            }
        }
        Peer::new(LinkKind::Relay, h)
    }

    fn current(&self) -> Current {
        self.current.read().expect("current lock").clone()
    }
}

/// A handle to the running relay client. Cheap to clone; it stops with
/// [`Transport::shutdown`].
#[derive(Clone)]
pub struct Relays {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Relays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relays")
            .field("local", &self.shared.current().local)
            .finish_non_exhaustive()
    }
}

impl Relays {
    /// Starts the client: a first generation with this epoch's identity
    /// reserves on every relay. Needs a tokio runtime. Addresses that are
    /// not a relay's as [`is_relay_addr`] takes them are left out, with a
    /// warning.
    pub async fn start(
        config: RelayConfig,
        events: mpsc::Sender<TransportEvent>,
    ) -> Result<Relays, TransportError> {
        let (closed, _) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            relays: Mutex::new(RelayList::usable(
                config.relays.clone(),
                config.borrowed.clone(),
            )),
            config,
            events,
            counts: SharedCounts::default(),
            current: RwLock::new(Current {
                commands: closed,
                local: PeerId::random(),
                epoch: 0,
            }),
            next: Mutex::new(None),
            previous: Mutex::new(None),
            old: Mutex::new(VecDeque::new()),
            punched: Mutex::new(Punched::default()),
            stop: CancellationToken::new(),
            rotating: tokio::sync::Mutex::new(()),
        });
        let relays = Relays { shared };
        let epoch = epoch_at((relays.shared.config.clock)(), relays.shared.config.epoch);
        let first = {
            let _one_at_a_time = relays.shared.rotating.lock().await;
            relays.spawn_generation(epoch, true).await?
        };
        *relays.shared.current.write().expect("current lock") = first;
        tracing::debug!(local = %relays.local_peer_id(), epoch, "relay identity for this epoch");
        // Its first look starts the next epoch's generation at once if
        // this one ends within the margin.
        tokio::spawn(rotate_forever(Arc::downgrade(&relays.shared)));
        Ok(relays)
    }

    /// Starts a generation for `epoch`: it listens for direct connections
    /// and reserves on the relays, and is tracked for shutdown. It is not
    /// made current here; with `current` false it is started ahead of its
    /// turn: it takes no dial, and listens at no fixed TCP port, until its
    /// turn ([`Relays::turn`]). Called with `rotating` held.
    /// Once the client is shut down it starts none
    /// ([`TransportError::Stopped`]).
    async fn spawn_generation(&self, epoch: u64, current: bool) -> Result<Current, TransportError> {
        let shared = &self.shared;
        // Shutdown empties the list of generations to stop them, and
        // takes `rotating` to do it: one started after that would run on,
        // unseen, reserving under this device's id for ever.
        if shared.stop.is_cancelled() {
            return Err(TransportError::Stopped);
        }
        let key = keypair((shared.config.identity)(epoch));
        let generation = client::spawn(
            key,
            &shared.config,
            shared.counts.clone(),
            Arc::downgrade(shared),
            shared.events.clone(),
            current,
        )?;
        let new = Current {
            commands: generation.commands.clone(),
            local: generation.local,
            epoch,
        };
        let set_up = match self.set_up(&new, current).await {
            // Shut down while it was set up: shutdown may be waiting for
            // `rotating` to empty the list, or have emptied it already.
            Ok(()) if shared.stop.is_cancelled() => Err(TransportError::Stopped),
            other => other,
        };
        if let Err(e) = set_up {
            // Nothing else holds it: it goes.
            generation.task.abort();
            return Err(e);
        }
        crate::generation::keep(&shared.old, generation, MAX_GENERATIONS);
        Ok(new)
    }

    /// Starts the generation of `epoch` ahead of its turn: reserved and
    /// taking what comes through its reservations (contacts whose clocks
    /// are ahead dial it), dialling nothing and listening at no fixed
    /// port until it is current. Called with `rotating` held (`_held`).
    async fn prepare(&self, epoch: u64, _held: &Rotating<'_>) -> Result<(), TransportError> {
        let shared = &self.shared;
        if shared.current().epoch >= epoch {
            return Ok(());
        }
        let stale = {
            let mut next = shared.next.lock().expect("next lock");
            match next.take() {
                Some(n) if n.epoch == epoch => {
                    *next = Some(n);
                    return Ok(());
                }
                other => other,
            }
        };
        if let Some(stale) = stale {
            drain(&stale).await;
        }
        let new = self.spawn_generation(epoch, false).await?;
        tracing::debug!(local = %new.local, epoch, "relay identity for the next epoch reserves");
        *shared.next.lock().expect("next lock") = Some(new);
        Ok(())
    }

    /// Makes the generation of `epoch` current: the one started ahead of
    /// its turn, or (if none was) a new one. The one it replaces dials no
    /// more and stops listening at fixed TCP ports, and then the new one
    /// listens there; the old one keeps its reservations as the
    /// previous generation until [`EPOCH_MARGIN`] after the turn
    /// ([`Relays::follow_clock`]), or with `keep_old` false gives them up
    /// at once. A previous one still reserved gives them up now. Called
    /// with `rotating` held (`_held`).
    async fn turn(
        &self,
        epoch: u64,
        keep_old: bool,
        _held: &Rotating<'_>,
    ) -> Result<(), TransportError> {
        let shared = &self.shared;
        if shared.current().epoch >= epoch {
            return Ok(());
        }
        let ready = shared.next.lock().expect("next lock").take();
        let prepared = match ready {
            Some(n) if n.epoch == epoch => Some(n),
            other => {
                if let Some(stale) = other {
                    drain(&stale).await;
                }
                None
            }
        };
        // Told before it is made current, so that no dial reaches it
        // while it still refuses them. One started here is started ahead
        // of its turn too, so that it listens for direct connections only
        // after the old one stops (below).
        let mut started = None;
        if let Some(n) = prepared {
            if n.commands.send(Command::StartDialling).await.is_ok() {
                started = Some(n);
            } else {
                // Its task ended (trimmed, or it panicked): made current,
                // it would refuse every dial. A new one takes its place.
                tracing::warn!(
                    epoch,
                    "the relay identity started ahead of its turn has stopped; starting it again"
                );
            }
        }
        let new = match started {
            Some(n) => n,
            None => {
                let n = self.spawn_generation(epoch, false).await?;
                n.commands
                    .send(Command::StartDialling)
                    .await
                    .map_err(|_| TransportError::Stopped)?;
                n
            }
        };
        let old = std::mem::replace(
            &mut *shared.current.write().expect("current lock"),
            new.clone(),
        );
        // With `keep_old` it is the previous generation from now on,
        // where a status read finds it as soon as it is no longer current
        // (`Relays::status`); the previous one before it, if any, gives
        // up its reservations below.
        let before = {
            let mut previous = shared.previous.lock().expect("previous lock");
            if keep_old {
                previous.replace(old.clone())
            } else {
                previous.take()
            }
        };
        // Before anything else it is told: a dial that reaches it after
        // this is refused. It stops listening at fixed TCP ports too, and the
        // new one listens there only once it has: both would listen
        // (SO_REUSEPORT), the system would split direct connections
        // between them, and those that reach the old id fail the
        // dialler's check of the id it expects. (One that stopped listens
        // nowhere.)
        let stopped = tokio::time::timeout(
            STOP_DIALLING_WAIT,
            ask(&old.commands, |reply| Command::StopDialling { reply }),
        )
        .await;
        if stopped.is_err() {
            tracing::warn!(
                epoch,
                "the relay identity before this one has not let its fixed ports go within \
                 {STOP_DIALLING_WAIT:?}; the new one listens there all the same"
            );
        }
        // Once the old one has let its fixed TCP ports go (it answered),
        // no generation of this client listens there (only the current
        // one ever does), and a socket listening at one is another
        // program's: checked, as at the start. Not otherwise: its
        // listener may still be there (it did not answer in time, or its
        // task ended, and a socket of an ended task may not be dropped
        // yet), and the check cannot tell its socket from another
        // program's.
        let let_go = matches!(stopped, Ok(Ok(())));
        if let Err(e) = self.listen_directly(&new, true, let_go).await {
            // It is current already, and reachable through the relays:
            // the turn goes on, without direct connections to this id.
            tracing::warn!(
                epoch,
                "the relay identity for this epoch takes no direct connections: {e}"
            );
        }
        if !keep_old {
            drain(&old).await;
        }
        if let Some(before) = before {
            drain(&before).await;
        }
        tracing::debug!(local = %self.local_peer_id(), epoch, "relay identity for this epoch");
        Ok(())
    }

    /// One look at the clock ([`RelayConfig::clock`]), doing what is due:
    /// within [`EPOCH_MARGIN`] of the turn the next epoch's generation
    /// reserves; at the turn it becomes the one that dials; a margin after
    /// it the one before gives up its reservations. The client looks by
    /// itself at each of these moments (and every minute: the monotonic
    /// clock stops while the machine sleeps, the wall clock does not);
    /// tests that move the clock call this.
    ///
    /// The whole look is one reading of the clock, taken once `rotating`
    /// is held, and holds it throughout: two readings on either side of
    /// the turn (the lock waited for, or the runtime busy) would have the
    /// second end the next generation as stale and the first start its
    /// identity again, beside the reservations the relays keep for the
    /// old one until its connections close (and a relay may route a
    /// circuit to either).
    pub async fn follow_clock(&self) -> Result<(), TransportError> {
        let shared = &self.shared;
        let len = shared.config.epoch;
        let held = shared.rotating.lock().await;
        let now = (shared.config.clock)();
        let epoch = epoch_at(now, len);
        let mut result = Ok(());
        if epoch > self.epoch() {
            result = self.turn(epoch, true, &held).await;
        }
        self.retire(now, &held).await;
        // (Not if the turn failed: the current one is still the old one.)
        if until_next_epoch(now, len) <= margin(len) && self.epoch() == epoch {
            let prepared = self.prepare(epoch + 1, &held).await;
            result = result.and(prepared);
        }
        result
    }

    /// Has the generations the clock has left behind give up their
    /// reservations: the previous one a margin after its epoch ended, and
    /// a next one whose turn is no longer within the margin ahead. A clock
    /// that steps back (set by hand, or corrected) ends them too: the
    /// previous one once the clock is out of the margin after its epoch,
    /// the next one once it is out of the margin before its turn (by more
    /// than a look's [`RECHECK_EPOCH`]: a clock corrected by a few seconds
    /// at the margin's edge would otherwise end it and start its identity
    /// again moments later, beside the reservation the relay keeps for the
    /// old one until its connection closes, and a relay may route a
    /// circuit to either). Kept, they would hold reservations no contact
    /// dials until the clock came round again (hours, for a clock set back
    /// by hours). A next one whose epoch `now` is in is not ended: its
    /// turn has come, and [`Relays::turn`] makes it current. Called with
    /// `rotating` held (`_held`), on the reading of the clock the turn and
    /// preparation of the same look use.
    async fn retire(&self, now: SystemTime, _held: &Rotating<'_>) {
        let shared = &self.shared;
        let len = shared.config.epoch;
        let margin = margin(len);
        let previous = {
            let mut previous = shared.previous.lock().expect("previous lock");
            let over = previous.as_ref().is_some_and(|p| {
                now.checked_sub(margin).map(|t| epoch_at(t, len)) != Some(p.epoch)
            });
            if over {
                previous.take()
            } else {
                None
            }
        };
        let next = {
            let mut next = shared.next.lock().expect("next lock");
            let early = next.as_ref().is_some_and(|n| {
                n.epoch != epoch_at(now, len)
                    && (until_next_epoch(now, len) > margin + RECHECK_EPOCH
                        || epoch_at(now, len) + 1 != n.epoch)
            });
            if early {
                next.take()
            } else {
                None
            }
        };
        for done in previous.into_iter().chain(next) {
            drain(&done).await;
        }
    }

    /// A new generation listens for direct connections, then reserves on
    /// the relays: its connections to the relays leave from the port it
    /// listens at (the TCP transport reuses it), so the address a relay
    /// observes, which hole punching tells the remote, leads to that
    /// port. One started ahead of its turn (`current` false) listens at
    /// ports of 0 and QUIC ports only; at fixed TCP ones only from its
    /// turn ([`Relays::turn`]).
    async fn set_up(&self, new: &Current, current: bool) -> Result<(), TransportError> {
        let shared = &self.shared;
        self.listen_directly(new, false, false).await?;
        if current {
            // Only the first generation is set up current, at the start:
            // no generation of this client exists yet, so a fixed TCP port
            // held is another program's.
            self.listen_directly(new, true, true).await?;
        }
        let relays = shared.relays.lock().expect("relays lock").clone();
        ask(&new.commands, |reply| Command::SetRelays { relays, reply }).await
    }

    /// Has a generation listen for direct connections (with hole
    /// punching on) at those of [`RelayConfig::listen`] with a fixed TCP
    /// port ([`fixed_tcp_port`]; only the current generation listens
    /// there), or with `fixed` false at the others (port 0, and QUIC
    /// ports, fixed or not). A fixed port still held (a QUIC socket of
    /// the generation before; QUIC cannot share one) gives way to a free
    /// one. So does, with `check` (no generation of this client listens
    /// at the fixed TCP ports now), a fixed TCP port another program
    /// listens at ([`crate::ports::probe`]), which the TCP transport
    /// would otherwise share (see the module docs). An unspecified
    /// address with none of its family on the device yet is listened at
    /// all the same, with no address until one comes (the listen's
    /// answer is `None`, no failure, so it keeps its port as given).
    async fn listen_directly(
        &self,
        new: &Current,
        fixed: bool,
        check: bool,
    ) -> Result<(), TransportError> {
        let shared = &self.shared;
        if !shared.config.hole_punch {
            return Ok(());
        }
        let addrs: Vec<&Multiaddr> = shared
            .config
            .listen
            .iter()
            .filter(|a| fixed_tcp_port(a) == fixed)
            .collect();
        // All are checked before any is listened at, so that two
        // addresses at one port (`127.0.0.1` and `0.0.0.0`, say) are not
        // taken for each other.
        let held: Vec<Option<TransportError>> = addrs
            .iter()
            .map(|a| {
                if check {
                    crate::ports::probe(a).err()
                } else {
                    None
                }
            })
            .collect();
        for (addr, held) in addrs.into_iter().zip(held) {
            let r = match held {
                Some(e) => Err(e),
                None => {
                    ask(&new.commands, |reply| Command::Listen {
                        addr: addr.clone(),
                        reply,
                    })
                    .await?
                }
            };
            if let Err(e) = r {
                let any = any_port(addr);
                if any == *addr {
                    return Err(e);
                }
                let why = crate::error_chain(&e);
                tracing::warn!(%addr, "{why}; taking another port");
                ask(&new.commands, |reply| Command::Listen { addr: any, reply }).await??;
            }
        }
        Ok(())
    }

    /// The identity relays see now.
    pub fn local_peer_id(&self) -> PeerId {
        self.shared.current().local
    }

    /// The epoch of the current identity.
    pub fn epoch(&self) -> u64 {
        self.shared.current().epoch
    }

    /// How long until the next turn of the epoch by the client's clock
    /// ([`RelayConfig::clock`]): the client turns then (a look of its own,
    /// [`Relays::follow_clock`]), and contacts' ids change with it.
    pub fn until_turn(&self) -> Duration {
        let config = &self.shared.config;
        until_next_epoch((config.clock)(), config.epoch)
    }

    /// The generation that dials now: contacts are dialled under their id
    /// of its epoch, through it ([`Dialler`]).
    pub fn dialler(&self) -> Dialler {
        Dialler(self.shared.current())
    }

    /// Replaces the relays to reserve on, this device's own and those
    /// contacts lent it (as [`RelayConfig::relays`] and
    /// [`RelayConfig::borrowed`]), for every generation that holds
    /// reservations (the next and the previous one too); reservations on
    /// relays no longer listed are given up.
    /// Addresses that are not a relay's ([`is_relay_addr`]) are left out
    /// (with a warning).
    pub async fn set_relays(
        &self,
        relays: Vec<Multiaddr>,
        borrowed: Vec<Multiaddr>,
    ) -> Result<(), TransportError> {
        let relays = RelayList::usable(relays, borrowed);
        // Not while a rotation reads the list for the next generation.
        let _one_at_a_time = self.shared.rotating.lock().await;
        *self.shared.relays.lock().expect("relays lock") = relays.clone();
        let others: Vec<mpsc::Sender<Command>> = [
            self.shared.next.lock().expect("next lock").clone(),
            self.shared.previous.lock().expect("previous lock").clone(),
        ]
        .into_iter()
        .flatten()
        .map(|g| g.commands)
        .collect();
        for commands in others {
            // One that stopped has nothing to keep.
            let relays = relays.clone();
            let _ = ask(&commands, |reply| Command::SetRelays { relays, reply }).await;
        }
        let commands = self.shared.current().commands;
        ask(&commands, |reply| Command::SetRelays { relays, reply }).await
    }

    /// Each relay and this device's reservation on it, merged across the
    /// generations that hold reservations: the current one, the next one
    /// (from [`EPOCH_MARGIN`] before its turn) and the previous one
    /// (until [`EPOCH_MARGIN`] after it). Each holds them under an id
    /// some contact dials, the one of the epoch the contact's clock is
    /// in; older generations have given theirs up and count for nothing.
    /// Read from the current generation alone, a relay could read
    /// reserving or failing around a turn (the new id refused, or still
    /// asking after a turn no generation was prepared for) while the
    /// device was reachable through it under its other id.
    ///
    /// Each relay is listed once, in the current generation's order. It
    /// reads [`ReservationState::Reserved`] if any of those generations
    /// holds a reservation there: a contact whose clock is in that
    /// generation's epoch reaches this device through it. When only the
    /// next or the previous one does, a contact whose clock agrees with
    /// this device's dials the current id, and does not get through until
    /// that one is reserved too (or, before the turn, until the turn): a
    /// relay refusing the new id (too full) reads failing only once the
    /// old id's reservation ends, [`EPOCH_MARGIN`] after the turn.
    /// Otherwise a relay reads as the current generation has it
    /// (reserving, or failing with its attempts and error): that is the
    /// id contacts with a correct clock dial, so its error is the one
    /// that matters. A relay only another generation lists (while
    /// [`Relays::set_relays`] goes from one generation to the next) reads
    /// as that one has it.
    pub async fn relay_states(&self) -> Vec<RelayState> {
        self.status().await.relays
    }

    /// What the client reports ([`Relays::relay_states`],
    /// [`Transport::info`]): the reports of the generations that hold
    /// reservations, as one ([`merge_status`]). The generations are read
    /// in the order a turn moves them (the next one becomes current,
    /// then the current one previous), and one read twice is asked once:
    /// a read in the middle of a turn finds each where it is at that
    /// moment, and can miss one only in the moments the turn moves it
    /// (the longest while the next one is told its turn has come; the
    /// one found current then is the old one, still reserved). One that
    /// has stopped is left out, and one that drains by the time it is
    /// asked reports nothing.
    async fn status(&self) -> Status {
        let shared = &self.shared;
        let next = shared.next.lock().expect("next lock").clone();
        let current = shared.current();
        let previous = shared.previous.lock().expect("previous lock").clone();
        let mut merged = ask(&current.commands, |reply| Command::Status { reply })
            .await
            .unwrap_or_default();
        for other in [next, previous].into_iter().flatten() {
            if other.commands.same_channel(&current.commands) {
                continue;
            }
            if let Ok(status) = ask(&other.commands, |reply| Command::Status { reply }).await {
                merge_status(&mut merged, status);
            }
        }
        merged
    }

    /// Moves to the next epoch's identity now, the old one giving up its
    /// reservations at once (tests; it happens by itself at every epoch
    /// boundary, with a margin: [`Relays::follow_clock`]).
    pub async fn rotate(&self) -> Result<(), TransportError> {
        let held = self.shared.rotating.lock().await;
        let next = self.epoch() + 1;
        self.turn(next, false, &held).await
    }
}

/// The relays a generation reserves on: this device's own and those
/// contacts lent it ([`RelayConfig::relays`], [`RelayConfig::borrowed`]).
/// Only its own set how near a hole punch dials.
#[derive(Debug, Clone, Default)]
pub(crate) struct RelayList {
    pub(crate) own: Vec<Multiaddr>,
    pub(crate) borrowed: Vec<Multiaddr>,
}

impl RelayList {
    /// The relays of `own` and `borrowed` this client can reserve on
    /// ([`usable_relays`]).
    fn usable(own: Vec<Multiaddr>, borrowed: Vec<Multiaddr>) -> RelayList {
        RelayList {
            own: usable_relays(own),
            borrowed: usable_relays(borrowed),
        }
    }

    /// Every relay, each once, this device's own first (a relay both
    /// lent and its own is its own).
    pub(crate) fn all(&self) -> Vec<Multiaddr> {
        let mut out = self.own.clone();
        for b in &self.borrowed {
            if !out.contains(b) {
                out.push(b.clone());
            }
        }
        out
    }
}

/// Adds to `merged`, the current generation's report, `other`, that of
/// another generation holding reservations (the next or the previous
/// one; see [`Relays::relay_states`]):
///
/// - a relay reads reserved if `other` holds a reservation there, and
///   one `merged` does not list yet is added as `other` has it;
/// - the addresses `other` listens at that `merged` lacks are added:
///   each circuit address ends in the id of the generation that holds
///   that reservation, and a dial to it reaches this device for as long
///   as that generation keeps it (hole punching's listeners likewise, at
///   ports of their own);
/// - so are the external addresses others confirmed to `other` (a public
///   address of this device, whichever of its ids was reached there, or
///   a circuit address of `other`'s).
fn merge_status(merged: &mut Status, other: Status) {
    for r in other.relays {
        match merged.relays.iter_mut().find(|m| m.relay == r.relay) {
            Some(m) => {
                if r.state == ReservationState::Reserved {
                    m.state = ReservationState::Reserved;
                }
            }
            None => merged.relays.push(r),
        }
    }
    for a in other.addresses {
        if !merged.addresses.contains(&a) {
            merged.addresses.push(a);
        }
    }
    for a in other.external {
        if !merged.external.contains(&a) {
            merged.external.push(a);
        }
    }
}

/// Has a generation give up its reservations and listeners and keep its
/// live links for at most [`MAX_DRAIN`].
async fn drain(generation: &Current) {
    let _ = generation
        .commands
        .send(Command::Drain {
            until: tokio::time::Instant::now() + MAX_DRAIN,
        })
        .await;
}

/// The relay addresses of `relays` ([`is_relay_addr`]); the others are
/// left out, with a warning (one bad address, e.g. from a contact, spoils
/// nothing else).
fn usable_relays(relays: Vec<Multiaddr>) -> Vec<Multiaddr> {
    relays
        .into_iter()
        .filter(|r| {
            let ok = is_relay_addr(r);
            if !ok {
                tracing::warn!(
                    "{r} is not a relay address this client can dial ({RELAY_ADDRESS_FORMS}): left out"
                );
            }
            ok
        })
        .collect()
}

/// Follows the clock for as long as the client runs: the next epoch's
/// generation reserves a margin before the turn, becomes current at it,
/// and the old one gives up its reservations a margin after it
/// ([`Relays::follow_clock`]).
async fn rotate_forever(shared: Weak<Shared>) {
    loop {
        let Some(shared_now) = shared.upgrade() else {
            return;
        };
        let relays = Relays { shared: shared_now };
        if let Err(e) = relays.follow_clock().await {
            // (Shut down meanwhile: nothing failed.)
            if !relays.shared.stop.is_cancelled() {
                tracing::warn!("relay identity rotation failed: {e}");
            }
        }
        // At most a minute at a time: the monotonic clock stops while the
        // machine sleeps, the wall clock (which epochs follow) does not.
        let config = &relays.shared.config;
        let wait = until_next_look((config.clock)(), config.epoch).min(RECHECK_EPOCH);
        let stop = relays.shared.stop.clone();
        drop(relays);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}

impl Transport for Relays {
    fn kind(&self) -> LinkKind {
        LinkKind::Relay
    }

    fn open(&self, peer: Peer) -> BoxFuture<'static, Result<Link, TransportError>> {
        let found = (peer.kind == LinkKind::Relay)
            .then(|| {
                self.shared
                    .punched
                    .lock()
                    .expect("punched lock")
                    .by_handle
                    .get(&peer.id())
                    .cloned()
            })
            .flatten();
        async move {
            let (commands, peer, connection) = found.ok_or(TransportError::UnknownPeer)?;
            ask(&commands, |reply| Command::OpenOn {
                peer,
                connection,
                reply,
            })
            .await?
        }
        .boxed()
    }

    fn dial(&self, addr: &Multiaddr) -> Option<BoxFuture<'static, Result<Link, TransportError>>> {
        self.dialler().dial(addr)
    }

    fn info(&self) -> BoxFuture<'static, TransportInfo> {
        let relays = self.clone();
        async move {
            // Relays, addresses and external addresses merged across the
            // generations that hold reservations (see `relay_states`).
            let status = relays.status().await;
            TransportInfo {
                kind: LinkKind::Relay,
                addresses: status.addresses,
                discovery: false,
                // Not merged: the current generation's alone. It is the
                // one that dials, the id relays see ask for contacts (the
                // next one's, reserved ahead of its turn, dials nothing),
                // and "the identity of this epoch" names one id.
                ephemeral_id: Some(relays.local_peer_id().to_string()),
                relays: status.relays,
                external: status.external,
                #[cfg(target_os = "linux")]
                bluetooth: None,
            }
        }
        .boxed()
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let shared = self.shared.clone();
        async move {
            shared.stop.cancel();
            // A generation being started (a turn, or the next epoch's
            // ahead of it) holds `rotating` until it is in the list, or
            // has seen the cancel and stopped itself; none starts after.
            let _one_at_a_time = shared.rotating.lock().await;
            let generations: Vec<Generation> =
                shared.old.lock().expect("old lock").drain(..).collect();
            for g in generations {
                g.task.abort();
                let _ = g.task.await;
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    use super::*;
    use crate::network_namespace::{in_a_network_with_no_address, ip};

    #[test]
    fn epochs_count_from_the_unix_epoch() {
        let hour = Duration::from_secs(3600);
        let t = UNIX_EPOCH + Duration::from_secs(3600 * 5 + 10);
        assert_eq!(epoch_at(t, hour), 5);
        assert_eq!(until_next_epoch(t, hour), Duration::from_secs(3590));
    }

    /// The client looks at the clock at each moment of a turn: a margin
    /// before it (the next generation reserves), at it, and a margin
    /// after it (the old one gives up its reservations).
    #[test]
    fn the_client_looks_at_each_moment_of_a_turn() {
        let hour = Duration::from_secs(3600);
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(3600 * 5 + s);
        let s = Duration::from_secs;
        assert_eq!(until_next_look(at(1800), hour), s(1800) - EPOCH_MARGIN);
        assert_eq!(until_next_look(at(3600 - 60), hour), s(60));
        assert_eq!(until_next_look(at(60), hour), EPOCH_MARGIN - s(60));
        assert_eq!(margin(s(60)), s(15), "a quarter of a short epoch");
    }

    /// Regression (a look at the clock that straddled the turn started the
    /// next identity twice): a look read the clock before it took
    /// `rotating` and again when it retired old generations; a reading
    /// just before the turn and one just after had the second end the
    /// next generation (its turn no longer "ahead") and the first start
    /// it again, under the same id, beside the reservations the relays
    /// kept for the first until its connections closed. Now a look reads
    /// the clock once, under `rotating`, and retiring never ends the next
    /// generation once the clock is in its epoch: here the old ones are
    /// retired on a reading past the turn, and the generation that becomes
    /// current is the one prepared before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retiring_at_the_turn_keeps_the_generation_prepared_for_it() {
        let (relays, at, turn, _events) = started_before_the_turn(None).await;

        // 2 minutes before the turn: the next generation is prepared.
        relays.follow_clock().await.unwrap();
        let prepared = prepared(&relays).commands;

        // Just past the turn, the old generations are retired (as the
        // second reading of a look that straddled the turn did), then the
        // clock is followed.
        {
            let held = relays.shared.rotating.lock().await;
            at.store(turn + 1, SeqCst);
            relays
                .retire(UNIX_EPOCH + Duration::from_millis(turn + 1), &held)
                .await;
        }
        relays.follow_clock().await.unwrap();
        assert_eq!(relays.epoch(), 1000);
        assert!(
            relays.shared.current().commands.same_channel(&prepared),
            "the generation prepared for the turn was ended and its identity started again"
        );
        relays.shutdown().await;
    }

    /// Settings for a client on hourly epochs, with no relays, on a clock
    /// of its own (milliseconds since the Unix epoch, which the test
    /// moves) set 2 minutes before the turn to epoch 1000; that clock's
    /// reading; and that turn.
    fn before_the_turn() -> (RelayConfig, Arc<AtomicU64>, u64) {
        let hour = Duration::from_secs(3600);
        let turn = 1000 * hour.as_millis() as u64;
        let at = Arc::new(AtomicU64::new(turn - 2 * 60_000));
        let identity: IdentityFn = Arc::new(|epoch| {
            let mut key = [7u8; 32];
            key[..8].copy_from_slice(&epoch.to_le_bytes());
            key
        });
        let mut config = RelayConfig::new(Vec::new(), identity, hour);
        let reading = at.clone();
        config.clock = Arc::new(move || UNIX_EPOCH + Duration::from_millis(reading.load(SeqCst)));
        (config, at, turn)
    }

    /// A client set as [`before_the_turn`], hole punching at
    /// `punch_listen` (with `None` not at all); the reading of its clock;
    /// the turn; and the receiver of the client's events, kept for as
    /// long as it runs.
    async fn started_before_the_turn(
        punch_listen: Option<Vec<Multiaddr>>,
    ) -> (Relays, Arc<AtomicU64>, u64, mpsc::Receiver<TransportEvent>) {
        started_before_the_turn_on(Vec::new(), punch_listen).await
    }

    /// [`started_before_the_turn`], reserving on `relays`.
    async fn started_before_the_turn_on(
        relays: Vec<Multiaddr>,
        punch_listen: Option<Vec<Multiaddr>>,
    ) -> (Relays, Arc<AtomicU64>, u64, mpsc::Receiver<TransportEvent>) {
        let (mut config, at, turn) = before_the_turn();
        config.relays = relays;
        match punch_listen {
            Some(listen) => config.listen = listen,
            None => config.hole_punch = false,
        }
        let (events, received) = mpsc::channel(64);
        let relays = Relays::start(config, events).await.unwrap();
        (relays, at, turn, received)
    }

    /// The generation prepared for the turn (the next epoch's), as a look
    /// at the clock 2 minutes before the turn leaves it.
    fn prepared(relays: &Relays) -> Current {
        relays
            .shared
            .next
            .lock()
            .expect("next lock")
            .clone()
            .expect("the next generation is prepared 2 minutes before the turn")
    }

    /// The generation before the current one, kept after the turn for
    /// the margin.
    fn previous(relays: &Relays) -> Option<Current> {
        relays
            .shared
            .previous
            .lock()
            .expect("previous lock")
            .clone()
    }

    /// What `generation` itself reports, not merged with the other
    /// generations' reports.
    async fn own_status(generation: &Current) -> Status {
        ask(&generation.commands, |reply| Command::Status { reply })
            .await
            .expect("the generation runs")
    }

    /// A relay on loopback that holds a reservation only for the id the
    /// [`before_the_turn`] identity has in epoch `admitted`, and refuses
    /// every other; and its address.
    async fn relay_admitting(admitted: u64) -> (server::RelayServer, Multiaddr) {
        let (config, _, _) = before_the_turn();
        let admitted = peer_id_of((config.identity)(admitted));
        let only: server::PeerFilter = Arc::new(move |peer: &PeerId| *peer == admitted);
        let relay = server::RelayServer::start(server::RelayServerConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            announce: Vec::new(),
            key: [5; 32],
            limits: server::RelayLimits::default(),
            only: Some(only),
        })
        .await
        .expect("a relay on loopback");
        let addr = relay
            .addresses()
            .await
            .into_iter()
            .next()
            .expect("the relay listens on loopback");
        (relay, addr)
    }

    /// Whether `status` has a reservation on `relay` and lists a circuit
    /// address that ends in `id` (libp2p's relay client ends each in the
    /// id that listens).
    fn holds(status: &Status, relay: &Multiaddr, id: PeerId) -> bool {
        status
            .relays
            .iter()
            .any(|r| r.relay == *relay && r.state == ReservationState::Reserved)
            && status
                .addresses
                .iter()
                .any(|a| is_circuit(a) && last_peer(a) == Some(id))
    }

    /// Waits until `generation` itself holds a reservation on `relay` and
    /// lists its circuit address there (the relay's answer and the
    /// address come in either order).
    async fn until_held_by(generation: &Current, relay: &Multiaddr) {
        let held = tokio::time::timeout(Duration::from_secs(20), async {
            while !holds(&own_status(generation).await, relay, generation.local) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            held.is_ok(),
            "not reserved there: {:?}",
            own_status(generation).await
        );
    }

    /// Whether `generation` itself has a slot on `relay` that is not
    /// reserved (reserving, or failing).
    async fn not_held_by(generation: &Current, relay: &Multiaddr) -> bool {
        own_status(generation)
            .await
            .relays
            .iter()
            .any(|r| r.relay == *relay && r.state != ReservationState::Reserved)
    }

    /// Regression (a relay read reserving or failing around a turn while
    /// the device was reachable through it): `relay_states` and `info`
    /// asked the current generation alone, so a relay that held the
    /// reservation of the next epoch's id (made ahead of its turn, for
    /// contacts whose clocks are ahead) and none of the current id read as
    /// the current one had it, and the next id's circuit address there
    /// was not listed. Now they merge the generations that hold
    /// reservations: here a relay takes the next epoch's id only, and
    /// reads reserved, once, with that id's circuit address among the
    /// addresses; the identity shown is still the current one, which
    /// dials.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_holding_only_the_next_id_reads_reserved_before_the_turn() {
        let (server, relay) = relay_admitting(1000).await;
        let (relays, _at, _turn, _events) =
            started_before_the_turn_on(vec![relay.clone()], None).await;
        assert_eq!(relays.epoch(), 999);
        let current = relays.shared.current();

        // 2 minutes before the turn: the next generation is prepared and
        // reserves; the relay refuses the current one.
        relays.follow_clock().await.unwrap();
        let next = prepared(&relays);
        until_held_by(&next, &relay).await;
        assert!(
            not_held_by(&current, &relay).await,
            "the relay refuses the current id: {:?}",
            own_status(&current).await
        );

        let reserved = [RelayState {
            relay,
            state: ReservationState::Reserved,
        }];
        assert_eq!(
            relays.relay_states().await,
            reserved,
            "the next id is reserved there"
        );
        let info = relays.info().await;
        assert_eq!(info.relays, reserved);
        assert!(
            info.addresses
                .iter()
                .any(|a| is_circuit(a) && last_peer(a) == Some(next.local)),
            "the next id's circuit address is not listed: {:?}",
            info.addresses
        );
        assert_eq!(
            info.ephemeral_id,
            Some(current.local.to_string()),
            "the identity shown is the one that dials"
        );
        relays.shutdown().await;
        server.shutdown().await;
    }

    /// The same after the turn: a relay that keeps the old id's
    /// reservation for the margin and refuses the new current id read as
    /// the new one had it (reserving or failing) from the turn on. Now it
    /// reads reserved, with the old id's circuit address among the
    /// addresses, and the identity shown is the new one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_holding_only_the_old_id_reads_reserved_after_the_turn() {
        let (server, relay) = relay_admitting(999).await;
        let (relays, at, turn, _events) =
            started_before_the_turn_on(vec![relay.clone()], None).await;
        assert_eq!(relays.epoch(), 999);
        let first = relays.shared.current();
        until_held_by(&first, &relay).await;
        relays.follow_clock().await.unwrap();

        // 2 minutes after the turn: the generation prepared for it is
        // current, and refused; the old one keeps its reservation for the
        // margin.
        at.store(turn + 2 * 60_000, SeqCst);
        relays.follow_clock().await.unwrap();
        assert_eq!(relays.epoch(), 1000);
        let current = relays.shared.current();
        assert!(
            previous(&relays).is_some_and(|p| p.commands.same_channel(&first.commands)),
            "the old generation is kept for the margin"
        );
        until_held_by(&first, &relay).await;
        assert!(
            not_held_by(&current, &relay).await,
            "the relay refuses the new id: {:?}",
            own_status(&current).await
        );

        let reserved = [RelayState {
            relay,
            state: ReservationState::Reserved,
        }];
        assert_eq!(
            relays.relay_states().await,
            reserved,
            "the old id is reserved there still"
        );
        let info = relays.info().await;
        assert_eq!(info.relays, reserved);
        assert!(
            info.addresses
                .iter()
                .any(|a| is_circuit(a) && last_peer(a) == Some(first.local)),
            "the old id's circuit address is not listed: {:?}",
            info.addresses
        );
        assert_eq!(
            info.ephemeral_id,
            Some(current.local.to_string()),
            "the identity shown is the one that dials"
        );
        relays.shutdown().await;
        server.shutdown().await;
    }

    /// Regression (a prepared generation that had stopped was made
    /// current): turn sent the generation prepared for the epoch
    /// StartDialling, ignored that it could not be sent, and made it
    /// current; its task had ended (trimmed, or it panicked), so every
    /// dial was refused and the client reserved under no id of the new
    /// epoch until the next turn. Now a prepared generation that cannot
    /// be told its turn has come is replaced by a new one of the same
    /// epoch (the same identity). Here its task is ended between the
    /// preparation and the turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_generation_prepared_for_the_turn_that_stopped_is_replaced_at_it() {
        let (relays, at, turn, _events) = started_before_the_turn(None).await;
        relays.follow_clock().await.unwrap();
        let prepared = prepared(&relays);

        // Its task ends; awaited, so its commands are closed before the
        // turn.
        let task = {
            let mut old = relays.shared.old.lock().expect("old lock");
            let i = old
                .iter()
                .position(|g| g.commands.same_channel(&prepared.commands))
                .expect("the prepared generation is tracked");
            old.remove(i).expect("found just now").task
        };
        task.abort();
        let _ = task.await;
        assert!(prepared.commands.is_closed());

        at.store(turn + 1, SeqCst);
        relays.follow_clock().await.unwrap();
        assert_eq!(relays.epoch(), 1000);
        let current = relays.shared.current();
        assert!(
            !current.commands.is_closed(),
            "the generation made current at the turn has stopped: it would refuse every dial"
        );
        assert!(!current.commands.same_channel(&prepared.commands));
        assert_eq!(current.local, prepared.local, "the epoch's own identity");
        relays.shutdown().await;
    }

    /// The addresses `generation` listens at for direct connections (not
    /// through a relay), as its swarm has them.
    async fn direct_listens(generation: &Current) -> Vec<Multiaddr> {
        own_status(generation)
            .await
            .addresses
            .into_iter()
            .filter(|a| !is_circuit(a))
            .collect()
    }

    /// Regression (a fixed `--punch-listen` port split direct connections
    /// between two ids): the next epoch's generation listened at the punch
    /// port from 5 minutes before its turn, and the old one until 5
    /// minutes after it. The TCP transport sets SO_REUSEPORT, so both
    /// bound the port, and the system handed each about half of the
    /// direct connections that came there; those that reached the id the
    /// dialler did not expect failed. Now only the current generation
    /// listens at a fixed port: the next one from its turn, and the old
    /// one stops at the turn (it keeps its reservations). At port 0 each
    /// listens at a port of its own, from its start until it drains.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_current_generation_listens_at_a_fixed_punch_port() {
        let own: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        let (relays, at, turn, mut events, punch) = started_at_a_fixed_port(false, vec![own]).await;
        let first = relays.shared.current();
        let listens = direct_listens(&first).await;
        assert!(
            listens.contains(&punch) && listens.len() == 2,
            "{listens:?}"
        );

        // 2 minutes before the turn: the next generation is prepared, and
        // listens at a port of its own only; the current one at both.
        relays.follow_clock().await.unwrap();
        let next = prepared(&relays);
        let early = direct_listens(&next).await;
        assert!(
            !early.contains(&punch),
            "the next generation listens at the fixed port before its turn: {early:?}"
        );
        assert_eq!(early.len(), 1, "at its own port: {early:?}");
        assert!(direct_listens(&first).await.contains(&punch));
        while events.try_recv().is_ok() {}

        // 2 minutes after the turn: the one prepared is current and listens
        // at the port; the old one, reserved for the margin still, stops.
        at.store(turn + 2 * 60_000, SeqCst);
        relays.follow_clock().await.unwrap();
        assert_eq!(relays.epoch(), 1000);
        let current = relays.shared.current();
        assert!(current.commands.same_channel(&next.commands));
        let listens = direct_listens(&current).await;
        assert!(
            listens.contains(&punch) && listens.len() == 2,
            "{listens:?}"
        );
        assert!(
            previous(&relays).is_some_and(|p| p.commands.same_channel(&first.commands)),
            "the old generation is kept for the margin"
        );
        // Its listener at the fixed port is closed before the turn goes
        // on (the swarm said so). The one at its own port stays for the
        // margin.
        let late = direct_listens(&first).await;
        assert!(
            !late.contains(&punch),
            "the old generation listens at the fixed port after its turn: {late:?}"
        );
        assert_eq!(late.len(), 1, "at its own port: {late:?}");

        // The address the new current one listened at before its turn,
        // at its own port, is told of at the turn (before, it never was:
        // it came while that generation was not current).
        let told = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match events.recv().await.expect("events open") {
                    TransportEvent::Listening { addr, .. } if addr == early[0] => return,
                    _ => {}
                }
            }
        })
        .await;
        assert!(
            told.is_ok(),
            "the address {} the new id listened at before its turn was not told of",
            early[0]
        );
        relays.shutdown().await;
    }

    /// Regression (a fixed QUIC punch port was taken from the old
    /// generation at the turn): the rule that only the current generation
    /// listens at a fixed port held for QUIC too, but the QUIC transport
    /// cannot share a port, and its listener's socket carries every QUIC
    /// connection of the swarm (dials leave from it): removing it closed
    /// the old id's relay connections and hole-punched links at the turn,
    /// not when it drains. Now a fixed QUIC port is listened at from a
    /// generation's start, as before that rule, and kept until it drains;
    /// the next one, finding it held, listens at a free port.
    #[cfg(feature = "quic")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_old_generation_keeps_its_fixed_quic_punch_port_after_the_turn() {
        let (relays, at, turn, _events, punch) = started_at_a_fixed_port(true, Vec::new()).await;
        let first = relays.shared.current();
        relays.follow_clock().await.unwrap();
        let next = prepared(&relays);
        let early = direct_listens(&next).await;
        assert_eq!(
            early.len(),
            1,
            "the next generation listens at QUIC from its start, at a free port: {early:?}"
        );
        assert_ne!(early[0], punch);

        at.store(turn + 2 * 60_000, SeqCst);
        relays.follow_clock().await.unwrap();
        assert!(relays
            .shared
            .current()
            .commands
            .same_channel(&next.commands));
        assert_eq!(
            direct_listens(&first).await,
            vec![punch],
            "the old generation keeps its QUIC port (and the connections on it) after the turn"
        );
        assert_eq!(direct_listens(&next).await, early);
        relays.shutdown().await;
    }

    /// Regression (a fixed `--punch-listen` port another program
    /// listened at was shared): the TCP transport sets SO_REUSEPORT, so a
    /// client given a punch port that another program of the same user
    /// listened at (a second Strand node given the same port) listened
    /// there beside it, at its start and at each turn, and the system
    /// split direct connections between the two. Now the first generation
    /// checks the port at the start, and the new one at each turn once
    /// the old one has let the port go ([`crate::ports::probe`]); a port
    /// held is left to the other program, and a free one taken in its
    /// place. Here the other program is a relay on loopback, which the
    /// client reserves on: neither generation listens at its port, and
    /// it still holds their reservations. Fails before at the start (the
    /// first generation listened at the port), and with the check at the
    /// start only, at the turn (the new one did).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fixed_punch_port_another_program_listens_at_is_not_shared() {
        let server = server::RelayServer::start(server::RelayServerConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            announce: Vec::new(),
            key: [5; 32],
            limits: server::RelayLimits::default(),
            only: None,
        })
        .await
        .expect("a relay on loopback");
        let relay = server
            .addresses()
            .await
            .into_iter()
            .next()
            .expect("the relay listens on loopback");
        let taken: Multiaddr = relay
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();

        let (relays, at, turn, _events) =
            started_before_the_turn_on(vec![relay.clone()], Some(vec![taken.clone()])).await;
        let first = relays.shared.current();
        let listens = direct_listens(&first).await;
        assert!(
            listens.len() == 1 && !listens.contains(&taken),
            "the client listens at the relay's port, or not at one of its own: {listens:?}"
        );
        until_held_by(&first, &relay).await;

        // 2 minutes before the turn the next generation is prepared (it
        // listens at no fixed port yet); 2 minutes after, it is current,
        // and listens for direct connections from then on.
        relays.follow_clock().await.unwrap();
        at.store(turn + 2 * 60_000, SeqCst);
        relays.follow_clock().await.unwrap();
        assert_eq!(relays.epoch(), 1000);
        let current = relays.shared.current();
        assert!(!current.commands.same_channel(&first.commands));
        let listens = direct_listens(&current).await;
        assert!(
            listens.len() == 1 && !listens.contains(&taken),
            "after the turn the client listens at the relay's port, or not at one of its \
             own: {listens:?}"
        );
        until_held_by(&current, &relay).await;
        relays.shutdown().await;
        server.shutdown().await;
    }

    /// A client set as [`before_the_turn`], hole punching at `others`
    /// and at a fixed port on loopback (TCP, or with `quic` QUIC), where
    /// its first generation listens; the reading of its clock; the turn;
    /// the receiver of its events; and that fixed address. The port is one
    /// the system had free a moment before: one taken meanwhile would have
    /// the generation listen at a free port in its place, and then another
    /// is tried.
    async fn started_at_a_fixed_port(
        quic: bool,
        others: Vec<Multiaddr>,
    ) -> (
        Relays,
        Arc<AtomicU64>,
        u64,
        mpsc::Receiver<TransportEvent>,
        Multiaddr,
    ) {
        for _ in 0..20 {
            let punch = if quic {
                let port = std::net::UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| s.local_addr())
                    .expect("a free UDP port on loopback")
                    .port();
                format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
            } else {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("a free TCP port on loopback")
                    .port();
                format!("/ip4/127.0.0.1/tcp/{port}")
            };
            let punch: Multiaddr = punch.parse().unwrap();
            let mut listen = vec![punch.clone()];
            listen.extend(others.iter().cloned());
            let (relays, at, turn, events) = started_before_the_turn(Some(listen)).await;
            if direct_listens(&relays.shared.current())
                .await
                .contains(&punch)
            {
                return (relays, at, turn, events, punch);
            }
            relays.shutdown().await;
        }
        panic!("no free port on loopback stayed free long enough to listen at");
    }

    /// Regression (the relay client's start waited forever on a device
    /// with no address of the family it listens on for hole punching):
    /// a generation's listen for direct connections was answered only
    /// with its listener's first address, and libp2p's TCP transport
    /// gives a listener on `0.0.0.0` (the default) one address per IPv4
    /// address of the device: on one with none (no network at all; `::`
    /// with IPv6 turned off) none came, so `Relays::start` never returned
    /// (nor the node's start), and neither did the preparation of the
    /// next epoch's generation, holding `rotating` and every turn behind
    /// it. Now such a listen is answered without an address after
    /// [`crate::generation::FIRST_ADDRESS_WAIT`], as the LAN's is: the
    /// listener stays open and takes each address as it comes. Here, in
    /// a network namespace whose only interface is down, with no address
    /// at all: before, the start never ended (the timeout below fails
    /// it).
    #[test]
    fn a_punch_listen_on_an_unspecified_address_with_none_of_its_family_does_not_wait_forever() {
        let Some(runtime) = in_a_network_with_no_address(
            module_path!(),
            "a_punch_listen_on_an_unspecified_address_with_none_of_its_family_does_not_wait_forever",
        ) else {
            return;
        };
        // How long anything here may take: a listen waits a second.
        let within = Duration::from_secs(20);
        runtime.block_on(async {
            let (mut config, at, turn) = before_the_turn();
            assert!(config.hole_punch);
            config.listen = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
            let (events, _events) = mpsc::channel(64);
            let relays = tokio::time::timeout(within, Relays::start(config, events))
                .await
                .expect("the start ends, with no address to wait for")
                .expect("the start listens");
            let first = relays.shared.current();
            assert!(direct_listens(&first).await.is_empty(), "no address yet");

            // The next epoch's generation is prepared (it listens at port
            // 0 too), and takes its turn.
            tokio::time::timeout(within, relays.follow_clock())
                .await
                .expect("preparing the next generation ends")
                .expect("and it starts");
            at.store(turn + 2 * 60_000, SeqCst);
            tokio::time::timeout(within, relays.follow_clock())
                .await
                .expect("the turn ends")
                .expect("and it is taken");
            assert_eq!(relays.epoch(), 1000);
            let current = relays.shared.current();
            assert!(!current.commands.same_channel(&first.commands));

            // An address comes (loopback up: 127.0.0.1): the current
            // generation's listener takes it.
            ip(&["link", "set", "lo", "up"]);
            let addr = tokio::time::timeout(within, async {
                loop {
                    if let Some(addr) = direct_listens(&current).await.into_iter().next() {
                        return addr;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("the address that came is listened at");
            assert!(
                addr.to_string().starts_with("/ip4/127.0.0.1/tcp/"),
                "{addr}"
            );
            tokio::time::timeout(within, relays.shutdown())
                .await
                .expect("shutdown ends");
        });
    }

    #[test]
    fn circuit_addresses_end_in_the_peer() {
        let relay: Multiaddr =
            "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGRYZDHBembyGJQqQ6WgLqJWYNjnECGDVtFdxXnYyRJFk"
                .parse()
                .unwrap();
        let peer = peer_id_of([7; 32]);
        let c = circuit_addr(&relay, peer);
        assert!(is_circuit(&c));
        assert!(!is_circuit(&relay));
        assert_eq!(last_peer(&c), Some(peer));
        assert_eq!(peer_id_of([7; 32]), peer, "the same key gives the same id");
        assert_ne!(peer_id_of([8; 32]), peer);
        assert!(is_relay_addr(&relay));
        assert!(!is_relay_addr(&"/ip4/127.0.0.1/tcp/4001".parse().unwrap()));
        assert!(!is_relay_addr(&c), "no relay behind a relay");
        assert_eq!(
            usable_relays(vec![
                c,
                relay.clone(),
                "/ip4/1.2.3.4/tcp/1".parse().unwrap()
            ]),
            [relay],
            "bad addresses are left out, the rest kept"
        );
    }

    /// Regression: a relay address was taken if it ended in `/p2p/<id>`
    /// and went through no relay, so a relay at `/ws`, at `0.0.0.0`, at
    /// port 0, at QUIC's draft `/quic` or at no address at all was kept
    /// (from the user's list, or a contact's) and every reservation and
    /// circuit through it failed, for ever. Now a relay address is taken
    /// exactly when circuits through it are ([`dials`]: one rule).
    #[test]
    fn only_relays_the_client_can_dial_are_taken() {
        let (relay, target) = (peer_id_of([1; 32]), peer_id_of([2; 32]));
        let at = |a: &str| -> Multiaddr { format!("{a}/p2p/{relay}").parse().unwrap() };
        let taken = [
            "/ip4/1.2.3.4/tcp/4001",
            "/ip4/127.0.0.1/tcp/4001",
            "/ip6/2001:db8::7/tcp/4001",
            "/dns/relay.example/tcp/443",
            "/dns4/relay.example/tcp/443",
            "/dns6/relay.example/tcp/443",
            "/dnsaddr/relay.example",
        ];
        let quic = [
            "/ip6/::1/udp/4001/quic-v1",
            "/ip4/1.2.3.4/udp/4001/quic-v1",
            "/dns/relay.example/udp/443/quic-v1",
        ];
        let refused = [
            "/ip4/1.2.3.4/tcp/4001/ws",
            "/dns/relay.example/tcp/443/wss",
            "/ip4/0.0.0.0/tcp/4001",
            "/ip6/::/tcp/4001",
            "/ip4/1.2.3.4/tcp/0",
            "/ip4/1.2.3.4/udp/0/quic-v1",
            "/ip4/1.2.3.4/udp/4001/quic",
            "/ip4/1.2.3.4/udp/4001",
            "/ip4/1.2.3.4/udp/4001/webrtc-direct",
            "/ip4/1.2.3.4",
            "/dns/relay.example",
            "/memory/4001",
            // A bare `/p2p/<id>`: no address at all.
            "",
        ];
        for a in taken {
            let addr = at(a);
            assert!(is_relay_addr(&addr), "{addr} refused");
            assert!(
                reaches_relay_at(&a.parse::<Multiaddr>().unwrap()),
                "{a} refused"
            );
        }
        for a in quic {
            let addr = at(a);
            assert_eq!(is_relay_addr(&addr), cfg!(feature = "quic"), "{addr}");
            assert_eq!(
                reaches_relay_at(&a.parse::<Multiaddr>().unwrap()),
                cfg!(feature = "quic"),
                "{a}"
            );
        }
        for a in refused {
            let addr = at(a);
            assert!(!is_relay_addr(&addr), "{addr} taken");
        }
        let good = at("/ip4/1.2.3.4/tcp/4001");
        for addr in [
            // No relay id, two ids, through another relay.
            "/ip4/1.2.3.4/tcp/4001".parse().unwrap(),
            good.clone().with(Protocol::P2p(relay)),
            circuit_addr(&good, target),
            at("/ip4/1.2.3.4/tcp/4001/ws"),
        ] {
            assert!(!is_relay_addr(&addr), "{addr} taken");
        }
        // A relay address is taken exactly when the circuits through it
        // are: each circuit written out by hand, so this does not lean on
        // `circuit_addr` or on the rule the two share.
        let through = |a: &str| -> Multiaddr {
            format!("{a}/p2p/{relay}/p2p-circuit/p2p/{target}")
                .parse()
                .unwrap()
        };
        for a in taken {
            let c = through(a);
            assert!(dials(&c), "{c} refused");
        }
        for a in quic {
            let c = through(a);
            assert_eq!(dials(&c), cfg!(feature = "quic"), "{c}");
        }
        for a in refused {
            let c = through(a);
            assert!(!dials(&c), "{c} taken");
        }
        // Told where it is reached (less its id), a relay at a refused
        // form is not reached either. The bare `/p2p/<id>` leaves the
        // empty address, which is no relay's either.
        for a in refused {
            let addr: Multiaddr = a.parse().unwrap();
            assert!(!reaches_relay_at(&addr), "{a:?} taken");
        }
        // `reaches_relay_at` takes an address less its `/p2p/<relay id>`:
        // one that still has it (or a circuit through it) is not one.
        for addr in [
            at("/ip4/1.2.3.4/tcp/4001"),
            at("/dns/relay.example/tcp/443"),
            at("/dnsaddr/relay.example"),
            circuit_addr(&good, target),
        ] {
            assert!(!reaches_relay_at(&addr), "{addr} taken");
        }
        // The config's and `set_relays`' lists keep the good ones only.
        assert_eq!(
            usable_relays(vec![
                at("/ip4/1.2.3.4/tcp/4001/ws"),
                good.clone(),
                at("/ip4/0.0.0.0/tcp/4001"),
                at(""),
            ]),
            [good]
        );
    }

    /// The circuits this client dials are taken, and only those: the
    /// node's own (a contact's id behind a relay's address as `strand
    /// relay` prints it, as `--relay-announce` names it, or as a relay for
    /// contacts listens, over TCP or QUIC) and the others libp2p's relay
    /// client dials over this client's TCP, QUIC and DNS. A circuit that
    /// would fail at every dial is not taken.
    #[test]
    fn only_circuits_the_client_can_dial_are_taken() {
        let (relay, target) = (peer_id_of([1; 32]), peer_id_of([2; 32]));
        let through = |at: &str| {
            let at: Multiaddr = format!("{at}/p2p/{relay}").parse().unwrap();
            circuit_addr(&at, target)
        };
        for at in [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/192.168.1.20/tcp/4001",
            "/ip4/203.0.113.7/tcp/4001",
            "/ip6/::1/tcp/4001",
            "/ip6/fd00::20/tcp/4001",
            "/ip6/2001:db8::7/tcp/4001",
            "/dns4/relay.example.org/tcp/4001",
            "/dns6/relay.example.org/tcp/4001",
            "/dns/relay.example.org/tcp/4001",
            "/dnsaddr/relay.example.org",
        ] {
            let c = through(at);
            assert!(dials(&c), "{c} refused");
        }
        for at in [
            "/ip4/203.0.113.7/udp/4001/quic-v1",
            "/ip6/2001:db8::7/udp/4001/quic-v1",
            "/dns4/relay.example.org/udp/4001/quic-v1",
        ] {
            let c = through(at);
            assert_eq!(dials(&c), cfg!(feature = "quic"), "{c}");
        }
        let r = format!("/ip4/203.0.113.7/tcp/4001/p2p/{relay}");
        let t = format!("/p2p/{target}");
        for bad in [
            // Not a circuit: the LAN's, or nobody's.
            r.clone(),
            format!("/ip4/203.0.113.7/tcp/4001{t}"),
            // No target, no relay id, no relay address.
            format!("{r}/p2p-circuit"),
            format!("/ip4/203.0.113.7/tcp/4001/p2p-circuit{t}"),
            format!("/p2p/{relay}/p2p-circuit{t}"),
            format!("/p2p-circuit{t}"),
            // A second relay, or something after the target or before it.
            format!("{r}/p2p-circuit{t}/p2p-circuit{t}"),
            format!("{r}/p2p-circuit{t}/tcp/4001"),
            format!("{r}/p2p-circuit/ip4/198.51.100.1/tcp/4001{t}"),
            format!("{r}/p2p-circuit{t}{t}"),
            format!("{r}/p2p/{relay}/p2p-circuit{t}"),
            // A relay address this client's transports do not dial.
            format!("/ip4/203.0.113.7/tcp/4001/ws/p2p/{relay}/p2p-circuit{t}"),
            format!("/ip4/203.0.113.7/udp/4001/webrtc-direct/p2p/{relay}/p2p-circuit{t}"),
            format!("/ip4/203.0.113.7/udp/4001/quic/p2p/{relay}/p2p-circuit{t}"),
            format!("/ip4/203.0.113.7/udp/4001/p2p/{relay}/p2p-circuit{t}"),
            format!("/ip4/203.0.113.7/p2p/{relay}/p2p-circuit{t}"),
            format!("/dns4/relay.example.org/p2p/{relay}/p2p-circuit{t}"),
            format!("/memory/4001/p2p/{relay}/p2p-circuit{t}"),
            format!("/ip4/203.0.113.7/tcp/0/p2p/{relay}/p2p-circuit{t}"),
            format!("/ip4/0.0.0.0/tcp/4001/p2p/{relay}/p2p-circuit{t}"),
            format!("/ip6/::/tcp/4001/p2p/{relay}/p2p-circuit{t}"),
        ] {
            let addr: Multiaddr = bad.parse().unwrap();
            assert!(!dials(&addr), "{addr} taken");
        }
    }
}
