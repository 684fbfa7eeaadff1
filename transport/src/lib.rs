//! strand-transport: everything that moves bytes between two devices.
//!
//! Every transport yields the same thing, a [`Link`]: an ordered, reliable,
//! duplex byte stream to an *unauthenticated* remote, its [`LinkKind`], and
//! a hint of who the remote may be ([`Remote`]: where it comes from, for
//! limits and logs; never an identity). There are no libp2p or Bluetooth
//! types in it. Authentication is not this crate's job: strand-sync's
//! preamble and Noise session run over every link alike.
//!
//! A node holds a set of transports behind one interface, [`Transport`],
//! and reads one stream of [`TransportEvent`]s that they all write to.
//!
//! * [`lan`]: libp2p over TCP and QUIC, mDNS discovery (optional: off where
//!   multicast is blocked or not allowed), and dialing known addresses. The
//!   libp2p identity rotates every epoch, keeping the listening ports and
//!   the live links; connections are limited per remote IP address.
//! * [`memory`]: emulated in-memory links between transports of one
//!   process (tests, and anything that wants a second link kind without a
//!   network).
//! * [`relay`]: libp2p circuit relays (v2) for devices that share no
//!   network, hole punching (DCUtR) to a direct connection where the
//!   routers allow, and the relay server `strand relay` runs. The identity
//!   there is not the LAN one, and changes every relay epoch.
//! * [`ble`]: Bluetooth LE — a link layer over GATT (or an L2CAP channel),
//!   btleplug as central and bluer as peripheral, and an emulated radio.
//!
//! Streams on libp2p use the protocol [`PROTOCOL`], implemented in
//! [`stream`] in libp2p's layout (behaviour / handler / protocol) and
//! tested with `libp2p-swarm-test`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use futures::{AsyncReadExt, AsyncWriteExt};
//! use strand_transport::{memory::Hub, Transport, TransportEvent};
//! let hub = Hub::new();
//! let (tx_a, _events_a) = tokio::sync::mpsc::channel(16);
//! let (tx_b, mut events_b) = tokio::sync::mpsc::channel(16);
//! let a = hub.join(tx_a);
//! let _b = hub.join(tx_b);
//! let mut link = a.dial(&"/memory/2".parse().unwrap()).unwrap().await.unwrap();
//! link.stream.write_all(b"hi").await.unwrap();
//! loop {
//!     if let Some(TransportEvent::Incoming(mut l)) = events_b.recv().await {
//!         let mut buf = [0u8; 2];
//!         l.stream.read_exact(&mut buf).await.unwrap();
//!         assert_eq!(&buf, b"hi");
//!         break;
//!     }
//! }
//! # }
//! ```
#![warn(missing_docs)]

use std::net::IpAddr;

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite};

pub mod ble;
mod generation;
pub mod lan;
pub mod memory;
#[cfg(any(test, feature = "network-namespace-tests"))]
#[doc(hidden)]
pub mod network_namespace;
mod ports;
pub mod relay;
pub mod stream;

pub use lan::{Lan, LanConfig};
pub use libp2p::{multiaddr, Multiaddr, PeerId};
pub use relay::{RelayConfig, RelayState, Relays, ReservationState};
pub use stream::protocol::PROTOCOL;

/// Whether this build speaks QUIC besides TCP: the `quic` feature, on by
/// default. Without it (a target whose C compiler is not at hand, such as
/// Android without its NDK: QUIC's TLS builds C code) the LAN and relays
/// carry everything over TCP.
pub const QUIC: bool = cfg!(feature = "quic");

/// Listen addresses on every IPv4 interface at `port`: TCP, and QUIC
/// where this build speaks it.
pub fn listen_everywhere(port: u16) -> Vec<Multiaddr> {
    let mut out: Vec<Multiaddr> = vec![format!("/ip4/0.0.0.0/tcp/{port}")
        .parse()
        .expect("valid multiaddr")];
    if QUIC {
        out.push(
            format!("/ip4/0.0.0.0/udp/{port}/quic-v1")
                .parse()
                .expect("valid multiaddr"),
        );
    }
    out
}

/// The addresses of the widest scope among `addrs`, in their order:
/// public ones if any, else LAN ones, else loopback ones (as in tests).
/// What a server tells others it is reached at: one far away could not
/// dial a LAN address, and would learn from it how the network behind the
/// server is numbered.
pub fn widest_scope(addrs: impl IntoIterator<Item = Multiaddr>) -> Vec<Multiaddr> {
    let all: Vec<Multiaddr> = addrs.into_iter().collect();
    let widest = all.iter().map(scope).max();
    all.into_iter()
        .filter(|a| Some(scope(a)) == widest)
        .collect()
}

/// How far an address reaches: who could dial it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Only this machine (127.0.0.0/8, ::1).
    Loopback,
    /// Only the local network: private (10/8, 172.16/12, 192.168/16),
    /// shared (100.64/10), link-local and unique-local addresses, and the
    /// unspecified one.
    Local,
    /// Anyone on the internet (any other IP address, or a DNS name).
    Global,
}

/// The scope of an address's first IP or DNS part; one with none (a
/// circuit without its relay, say) counts as [`Scope::Global`].
pub fn scope(addr: &Multiaddr) -> Scope {
    use multiaddr::Protocol;
    addr.iter()
        .find_map(|p| match p {
            Protocol::Ip4(ip) => Some(ip_scope(IpAddr::V4(ip))),
            Protocol::Ip6(ip) => Some(ip_scope(IpAddr::V6(ip))),
            Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_) => {
                Some(Scope::Global)
            }
            _ => None,
        })
        .unwrap_or(Scope::Global)
}

/// The scope of an IP address.
pub fn ip_scope(ip: IpAddr) -> Scope {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => Scope::Loopback,
        IpAddr::V4(v4) => {
            let shared = v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64;
            if v4.is_private() || v4.is_link_local() || v4.is_unspecified() || shared {
                Scope::Local
            } else {
                Scope::Global
            }
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ip_scope(IpAddr::V4(v4)),
            None if v6.is_loopback() => Scope::Loopback,
            None if v6.is_unicast_link_local() || v6.is_unique_local() || v6.is_unspecified() => {
                Scope::Local
            }
            None => Scope::Global,
        },
    }
}

/// What kind of link a [`Link`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LinkKind {
    /// Local network (TCP or QUIC).
    Lan,
    /// Through a libp2p circuit relay.
    Relay,
    /// A direct connection across the internet that hole punching made
    /// (DCUtR), after meeting through a relay.
    HolePunched,
    /// Bluetooth LE.
    Bluetooth,
    /// An in-memory link ([`memory`]).
    Emulated,
}

impl std::fmt::Display for LinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkKind::Lan => "LAN",
            LinkKind::Relay => "relay",
            LinkKind::HolePunched => "hole-punched",
            LinkKind::Bluetooth => "Bluetooth",
            LinkKind::Emulated => "emulated",
        })
    }
}

/// Which side opened a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// This device opened it.
    Outbound,
    /// The remote opened it.
    Inbound,
}

/// Where a link's remote is, as far as its transport can tell: for
/// per-remote limits and logs. Unauthenticated, and not an identity (on a
/// LAN it is an IP address, which every neighbour sees anyway).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Remote {
    /// An IP address.
    Ip(IpAddr),
    /// An emulated device, by its number on the hub.
    Emulated(u64),
    /// A device through a relay (the relay hides its address).
    Relayed {
        /// The relay it came through, by its id: taken from this device's
        /// own connection to the relay (the circuit's address,
        /// `…/p2p/<relay>/p2p-circuit`), so the remote cannot choose it.
        relay: String,
        /// The device's ephemeral id there. It changes every relay epoch,
        /// and a stranger makes a fresh one for nothing.
        peer: String,
    },
    /// A relay, as limits count every link that came through it
    /// ([`Remote::limit_key`] of a [`Remote::Relayed`]).
    Relay(String),
    /// A Bluetooth device, by its radio address (random and rotating where
    /// the device uses LE privacy).
    Bluetooth(String),
    /// The transport could not tell.
    Unknown,
}

impl Remote {
    /// What limits count this remote under: an IPv6 address by its /64
    /// (one LAN host can hold any number of addresses in its prefix), a
    /// relayed device by its relay ([`Remote::Relay`]: its id at the relay
    /// costs a stranger nothing, so counted by id one stranger could take
    /// any number of shares), any other remote as itself.
    pub fn limit_key(&self) -> Remote {
        match self {
            Remote::Ip(ip) => Remote::Ip(ip_limit_key(*ip)),
            Remote::Relayed { relay, .. } => Remote::Relay(relay.clone()),
            other => other.clone(),
        }
    }
}

/// `addr`'s parts, less any `/p2p/<id>` at its end.
pub(crate) fn without_peer(addr: &Multiaddr) -> Vec<libp2p::multiaddr::Protocol<'_>> {
    let mut parts: Vec<libp2p::multiaddr::Protocol<'_>> = addr.iter().collect();
    while matches!(parts.last(), Some(libp2p::multiaddr::Protocol::P2p(_))) {
        parts.pop();
    }
    parts
}

/// Whether `parts` (an address, less a `/p2p/<id>` at its end) has the
/// shape libp2p's TCP transport takes, or with QUIC its QUIC one: a host
/// that `host` takes, then a TCP port, or a UDP port and `/quic-v1`, the
/// port one that `port` takes. The LAN's and the relay client's dials
/// differ only in the hosts they take (the relay client resolves names),
/// and take no port 0; where the LAN listens, any IP address and any port
/// (0 for one the system chooses) will do.
pub(crate) fn tcp_or_quic(
    parts: &[libp2p::multiaddr::Protocol<'_>],
    host: impl Fn(&libp2p::multiaddr::Protocol<'_>) -> bool,
    port: impl Fn(u16) -> bool,
) -> bool {
    use libp2p::multiaddr::Protocol;
    match parts {
        [at, Protocol::Tcp(n)] => host(at) && port(*n),
        #[cfg(feature = "quic")]
        [at, Protocol::Udp(n), Protocol::QuicV1] => host(at) && port(*n),
        _ => false,
    }
}

/// An IP address as limits count it: IPv6 by its /64.
pub(crate) fn ip_limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if !v6.is_loopback() => {
            let mut s = v6.segments();
            s[4..].fill(0);
            IpAddr::V6(std::net::Ipv6Addr::from(s))
        }
        other => other,
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remote::Ip(ip) => write!(f, "{ip}"),
            Remote::Emulated(n) => write!(f, "emulated device {n}"),
            Remote::Relayed { relay, peer } => write!(f, "relayed peer {peer} (relay {relay})"),
            Remote::Relay(id) => write!(f, "relay {id}"),
            Remote::Bluetooth(addr) => write!(f, "Bluetooth device {addr}"),
            Remote::Unknown => f.write_str("an unknown address"),
        }
    }
}

/// The byte stream of a link: `futures`' `AsyncRead + AsyncWrite`.
pub trait LinkStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> LinkStream for T {}

/// A byte stream to a remote device, not yet authenticated.
pub struct Link {
    /// What carries it.
    pub kind: LinkKind,
    /// Which side opened it.
    pub direction: Direction,
    /// Where the remote is (unauthenticated).
    pub remote: Remote,
    /// The stream.
    pub stream: Box<dyn LinkStream>,
    /// Call once the session on this link authenticated its remote as a
    /// contact: a transport that holds back what answers a remote before
    /// that (identify and hole punching on relayed links) lets it go.
    /// `None` where nothing waits.
    pub authenticated: Option<Authenticated>,
}

/// What a transport does once a link's remote is known to be a contact
/// ([`Link::authenticated`]).
pub struct Authenticated(Box<dyn FnOnce() + Send>);

impl Authenticated {
    /// Runs `f` when the link authenticates.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Authenticated {
        Authenticated(Box::new(f))
    }

    /// The session authenticated the remote.
    pub fn call(self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticated")
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("kind", &self.kind)
            .field("direction", &self.direction)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// A device a transport discovered: a handle for [`Transport::open`],
/// meaningful to the transport that reported it only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    /// The transport that found it.
    pub kind: LinkKind,
    id: u64,
}

impl Peer {
    pub(crate) fn new(kind: LinkKind, id: u64) -> Peer {
        Peer { kind, id }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

/// What transports report, all on one stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportEvent {
    /// A remote opened a link to us.
    Incoming(Link),
    /// A device nearby (not necessarily a contact). `initiate` is the
    /// transport's tie-break for devices that discover each other: exactly
    /// one of the two should open the link, so one meeting makes one link.
    Discovered {
        /// The device.
        peer: Peer,
        /// Whether this side should open the link.
        initiate: bool,
    },
    /// A transport listens on a new address.
    Listening {
        /// The transport.
        kind: LinkKind,
        /// The address, as users write it.
        addr: Multiaddr,
    },
}

/// What a transport says about itself, for status screens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportInfo {
    /// Which transport.
    pub kind: LinkKind,
    /// Addresses it listens on (the relay transport's under each of its
    /// identities that holds reservations: two around a turn of the
    /// epoch).
    pub addresses: Vec<Multiaddr>,
    /// Whether it discovers devices by itself (mDNS, BLE scanning).
    pub discovery: bool,
    /// Its current ephemeral identity on the wire, if it has one (the
    /// libp2p PeerId of this epoch), for logs and tests.
    pub ephemeral_id: Option<String>,
    /// Relays and the reservations on them (the relay transport only:
    /// each relay once, across the identities that hold reservations
    /// around a turn of the epoch, [`Relays::relay_states`]).
    pub relays: Vec<RelayState>,
    /// Its public addresses, as confirmed by others (AutoNAT), if any.
    pub external: Vec<Multiaddr>,
    /// The adapter, devices seen, links and bytes (the BLE transport only).
    #[cfg(target_os = "linux")]
    pub bluetooth: Option<ble::BleInfo>,
}

/// A transport, as the node sees it. Each one writes its
/// [`TransportEvent`]s to the sender it was started with.
pub trait Transport: Send + Sync + 'static {
    /// Its kind.
    fn kind(&self) -> LinkKind;
    /// Opens a link to a device it reported in [`TransportEvent::Discovered`].
    fn open(&self, peer: Peer) -> BoxFuture<'static, Result<Link, TransportError>>;
    /// Opens a link to an address, if this transport dials addresses of
    /// that form (`None` otherwise: one it would fail to dial every time,
    /// whatever the network). The future does nothing until it is polled,
    /// so `dial(addr).is_some()` asks whether the transport takes `addr`.
    fn dial(&self, addr: &Multiaddr) -> Option<BoxFuture<'static, Result<Link, TransportError>>>;
    /// What it is doing now.
    fn info(&self) -> BoxFuture<'static, TransportInfo>;
    /// Stops listening, discovering and dialling, and closes its links.
    fn shutdown(&self) -> BoxFuture<'static, ()>;
    /// Takes a new identity now, where it shows one that rotates (the
    /// LAN's peer id): the system woke from sleep, maybe on another
    /// network, and the one it had must not follow it there. A transport
    /// that shows none does nothing.
    fn renew_identity(&self) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }
}

/// What can go wrong on a transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Could not listen on an address.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Could not reach an address or a device.
    #[error("cannot reach {target}")]
    Dial {
        /// The address or device.
        target: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A device this transport no longer knows (discovered too long ago).
    #[error("that device is gone")]
    UnknownPeer,
    /// The transport has stopped.
    #[error("the transport has stopped")]
    Stopped,
    /// The LAN is quiet: its last identity rotation, or its start, could
    /// listen on none of its addresses (gone after a change of network?),
    /// so it has no identity to dial with until a rotation succeeds; it
    /// tries again soon by itself.
    #[error("the LAN listens nowhere (its addresses could not be bound); trying again soon")]
    Quiet,
    /// Setting the transport up failed.
    #[error("transport setup failed")]
    Setup(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An error and its sources, as one line ([`error_line`]).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut texts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        texts.push(s.to_string());
        source = s.source();
    }
    error_line(texts)
}

/// An error's texts, outermost first, as one line joined by ": ". A text
/// that is empty, or that the line so far already ends with as a whole
/// cause (the line is that text, or ends with ": " and it), is left out:
/// layers that pass an error on often show its text again (or none),
/// and libp2p's listen errors said "Address already in use" two or three
/// times. A text that merely ends the line is kept: a cause "0" after
/// "cannot listen on /ip4/1.2.3.4/tcp/0" says something the line does not.
/// It takes texts rather than an error so that a caller can word each
/// cause its own way first (the node's CLI does) and still follow the one
/// rule.
pub fn error_line(texts: impl IntoIterator<Item = String>) -> String {
    let mut out = String::new();
    for text in texts {
        let said = out == text
            || out
                .strip_suffix(text.as_str())
                .is_some_and(|before| before.ends_with(": "));
        if text.is_empty() || said {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// An error message as an error source (for failures libp2p reports as
/// text).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reason(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with no text of its own, as libp2p's
    /// `TransportError::Other`.
    #[derive(Debug, thiserror::Error)]
    #[error("")]
    struct Silent(#[source] Box<dyn std::error::Error + Send + Sync>);

    /// An error whose text is its inner error's, as libp2p's layers pass
    /// one on, with that error as its source.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Passed(#[source] std::io::Error);

    /// An error's texts become one line joined by ": ", leaving out an
    /// empty text and one the line already says as a whole cause, and
    /// nothing else. Before, a cause that merely ended the line ("0"
    /// after ".../tcp/0") was left out too.
    #[test]
    fn an_error_line_leaves_out_only_what_it_already_says() {
        let line = |texts: &[&str]| error_line(texts.iter().map(|t| t.to_string()));
        assert_eq!(line(&["", "x"]), "x");
        assert_eq!(line(&["a: b", "b"]), "a: b");
        assert_eq!(line(&["a", "", "b", "b"]), "a: b");
        assert_eq!(line(&["a", "b: c", "c", "b: c"]), "a: b: c");
        assert_eq!(line(&["on /tcp/0", "0"]), "on /tcp/0: 0");
        assert_eq!(line(&["ab", "b"]), "ab: b");
        assert_eq!(line(&[]), "");

        assert_eq!(error_chain(&Silent(Box::new(Reason("x".into())))), "x");
        let at: Multiaddr = "/ip4/1.2.3.4/tcp/0".parse().unwrap();
        let zero = TransportError::Listen {
            addr: at.clone(),
            source: Box::new(Reason("0".into())),
        };
        assert_eq!(error_chain(&zero), "cannot listen on /ip4/1.2.3.4/tcp/0: 0");
        // A port held, as libp2p passes it on: said once.
        let in_use = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let held = TransportError::Listen {
            addr: at,
            source: Box::new(Silent(Box::new(std::io::Error::other(Passed(in_use()))))),
        };
        assert_eq!(
            error_chain(&held),
            format!("cannot listen on /ip4/1.2.3.4/tcp/0: {}", in_use())
        );
    }

    #[test]
    fn addresses_are_scoped_by_who_could_dial_them() {
        let cases = [
            ("/ip4/127.0.0.1/tcp/1", Scope::Loopback),
            ("/ip6/::1/tcp/1", Scope::Loopback),
            ("/ip4/10.1.2.3/tcp/1", Scope::Local),
            ("/ip4/172.16.0.1/tcp/1", Scope::Local),
            ("/ip4/192.168.0.1/udp/1/quic-v1", Scope::Local),
            ("/ip4/169.254.1.1/tcp/1", Scope::Local),
            ("/ip4/100.64.0.1/tcp/1", Scope::Local),
            ("/ip4/0.0.0.0/tcp/1", Scope::Local),
            ("/ip6/fe80::1/tcp/1", Scope::Local),
            ("/ip6/fd12::1/tcp/1", Scope::Local),
            ("/ip6/::ffff:192.168.0.1/tcp/1", Scope::Local),
            ("/ip4/100.128.0.1/tcp/1", Scope::Global),
            ("/ip4/203.0.113.7/tcp/1", Scope::Global),
            ("/ip6/2001:db8::1/tcp/1", Scope::Global),
            ("/dns4/relay.example.org/tcp/1", Scope::Global),
        ];
        for (addr, want) in cases {
            assert_eq!(scope(&addr.parse().unwrap()), want, "{addr}");
        }
    }
}
