//! The LAN transport: libp2p over TCP and QUIC, mDNS discovery, direct
//! dialling, and an identity that rotates.
//!
//! # Identity rotation
//!
//! A libp2p identity (PeerId) is what mDNS announces and every connection
//! authenticates, so one that lived as long as the process would let any
//! neighbour follow a device from network to network. Every
//! [`LanConfig::rotate_every`] a new *generation* takes over: a swarm with
//! a fresh identity that listens on the same TCP ports (the sockets use
//! `SO_REUSEPORT`, so there is no gap; see below for the other programs
//! that could use it) and announces itself over mDNS. The
//! old generation closes its listeners, so it announces nothing more, and
//! keeps its connections until the last one closes: live sessions on TCP
//! are not dropped.
//!
//! QUIC cannot do the same: a QUIC listener and its connections share one
//! UDP socket, and closing the listener closes them. So the old
//! generation's QUIC connections end at a rotation (their sessions resume
//! at once on the new identity; nothing is lost), the new generation binds
//! the QUIC port again once it is free, and this transport prefers TCP
//! addresses when it dials a discovered device.
//!
//! # A rotation that cannot listen
//!
//! After a change of network (or on waking somewhere else) a configured
//! address may be gone. A new generation that can listen on some of the
//! addresses takes over on those; each one it could not listen on is
//! logged and tried again at the next rotation. One that can listen on
//! none is stopped at once: it never took over, so it has nothing to keep.
//!
//! An unspecified address (`0.0.0.0`, `::`) is never gone: its listener
//! takes every address of its family the device has, and each one that
//! comes later. On a device with none of that family yet (IPv6 turned
//! off, no network at all) it listens all the same, with no address until
//! one comes (a listen waits [`crate::generation::FIRST_ADDRESS_WAIT`]
//! for a first address, not forever), and the LAN is not quiet for it.
//! A port 0 there is chosen when the listener opens but known only with
//! its first address, so the rotation after that learns it from the
//! generation that listens ([`learn_ports`]) and keeps it from then on.
//!
//! The old generation drains all the same, because its time is over: were
//! it kept until a rotation succeeded, it would go on accepting, dialling
//! and answering mDNS with one PeerId for as long as the network stayed
//! changed, the stable identifier rotation exists to avoid. So the LAN goes
//! *quiet*: no identity ([`Lan::local_peer_id`] is `None`), no listener,
//! nothing announced, dials and opens refused with
//! [`TransportError::Quiet`]; links already up stay, as at any rotation.
//! It tries a rotation again soon (after 2 seconds, doubling up to a
//! minute) rather than a whole period later, and the first one that can
//! listen ends the quiet with a new identity. Being out of reach on the
//! LAN for a while costs less than being followable: relays (where set)
//! still carry links, and the LAN comes back as soon as an address does.
//!
//! The first generation, at [`Lan::start`], is handed the addresses the
//! same way when they are *gone* (the system says the address is not on
//! this device: [`gone`]): a device started away from the network its
//! settings name starts all the same, on the addresses it has, or quiet.
//! An address that fails otherwise fails the start, as does one of a form
//! the transport never listens on (a DNS name): a port another program
//! holds, or one below 1024 without the right to it, no change of network
//! mends, and a node that started would only retry it, unseen, forever.
//! Said at the start, it is a clear error the user can act on.
//!
//! # A port another program holds
//!
//! The `SO_REUSEPORT` that lets a new generation listen beside the old
//! one lets any other program of the same user do so too: libp2p's TCP
//! transport sets it on every listener, so a second Strand node (another
//! profile) given the same port was let in beside the first, and the
//! system split new connections between two nodes that know nothing of
//! each other. So before a new generation listens, each TCP address at a
//! port given (not 0; or chosen for a 0 before) is first checked for
//! another program's socket ([`probe`], shared with the relay server and
//! the relay client: see [`crate::ports`]), but for those whose port a
//! listener of the old generation holds ([`holds_port`]): there the new
//! one must listen beside the old, and the check could not tell the old
//! one's socket from another program's. At the start, and at each retry
//! of a quiet LAN, no generation listens, and every address is checked;
//! at a rotation, each the old generation does not listen at, as one it
//! could not listen on at the last rotation (gone after a change of
//! network) that is back now. One held is in use by another program
//! ([`PortInUse`](crate::ports::PortInUse)). The start fails with that,
//! as a server's does; a rotation (a quiet LAN's retry too) logs it and
//! leaves the address for the next, as any address it cannot listen on
//! (see above): it takes over on the others, or if none is left, the LAN
//! goes (or stays) quiet. QUIC needs no check: libp2p's QUIC socket
//! shares its port with nothing, so a port taken fails the listen itself.
//!
//! Two gaps are left. Between the check and the listen (one command to
//! the new generation) another program could still take the port, as
//! when two nodes start at the same moment. And at a rotation, an
//! address whose port the old generation holds at an address that takes
//! it in (the same port given on `0.0.0.0` and on `192.168.1.20`, say)
//! is not checked: the system would refuse the check for the old
//! generation's own socket.
//!
//! Dials go from a new port each, not from the listening one (libp2p's
//! default, which the relay's hole punching needs): a dial from the
//! listening port binds it at every address of its family, and any other
//! program's socket at that port on another address of the device (made
//! without `SO_REUSEADDR`) then refuses every dial, "address already in
//! use", for a device listening at one address of its own.
//!
//! # Limits
//!
//! Inbound connections are limited per remote IP address
//! ([`limits::MAX_PENDING_PER_IP`], [`limits::MAX_CONNECTIONS_PER_IP`]),
//! across generations, so a stranger with many fresh PeerIds gets a sliver
//! of the node, not all of it. Handshakes under way from everyone are
//! bounded too ([`limits::MAX_PENDING_INCOMING`]), but a new connection
//! past that bound takes the place of the oldest handshake of the address
//! with the most under way rather than being refused: strangers at many
//! addresses holding silent connections cannot keep a contact from
//! dialling in.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::generation::{self, ask};
use crate::ports::{holds_port, probe};
use crate::without_peer;
use crate::{LinkKind, Peer, Transport, TransportError, TransportEvent, TransportInfo};

mod handshakes;
pub mod limits;
mod swarm;
#[cfg(test)]
mod tests;

use swarm::{Command, Generation};

/// How often the identity rotates by default: the token epoch of
/// strand-sync (15 minutes), so the PeerId changes at least as often as
/// the beacons and tokens a contact recognises.
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(15 * 60);

/// Devices remembered from mDNS for [`Transport::open`]. A LAN has tens of
/// devices; past this, the oldest are forgotten (mDNS finds them again).
const MAX_KNOWN_PEERS: usize = 1024;

/// Old generations kept draining at once. Each holds only connections that
/// were live when it was replaced; past this, the oldest is stopped and its
/// sessions resume on the current identity.
const MAX_GENERATIONS: usize = 16;

/// How long the new generation tries to bind a QUIC port the old one is
/// still releasing, before it takes any free port.
const QUIC_REBIND: Duration = Duration::from_secs(2);

/// How soon a quiet LAN (see the module docs) tries a rotation again: an
/// address lost to a change of network is often back within seconds
/// (a DHCP lease, a Wi-Fi roam).
const QUIET_RETRY_FIRST: Duration = Duration::from_secs(2);

/// The longest wait between those tries (each failure doubles it, and it
/// is never longer than [`LanConfig::rotate_every`]): a device back on a
/// network is reachable again within a minute, and a swarm built and
/// dropped once a minute costs little.
const QUIET_RETRY_MAX: Duration = Duration::from_secs(60);

/// LAN transport settings.
#[derive(Debug, Clone)]
pub struct LanConfig {
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/0` and
    /// `/ip4/0.0.0.0/udp/0/quic-v1`. A port of 0 is chosen once and kept
    /// across rotations (on an unspecified address with none of its
    /// family on the device yet, from the rotation after one comes).
    pub listen: Vec<Multiaddr>,
    /// Announce and discover peers with mDNS. Off on networks that block
    /// multicast, and in tests on loopback (mDNS ignores loopback).
    pub mdns: bool,
    /// How often the libp2p identity is replaced.
    pub rotate_every: Duration,
}

impl Default for LanConfig {
    fn default() -> Self {
        LanConfig {
            listen: crate::listen_everywhere(0),
            mdns: true,
            rotate_every: DEFAULT_ROTATION,
        }
    }
}

/// A generation's command queue and identity.
#[derive(Clone)]
struct Current {
    commands: mpsc::Sender<Command>,
    local: PeerId,
}

/// What the handle and the generations share.
pub(crate) struct Shared {
    config: LanConfig,
    events: mpsc::Sender<TransportEvent>,
    counts: limits::SharedCounts,
    /// The generation that listens, announces and dials; `None` while the
    /// LAN is quiet (its last rotation, or its start, could listen nowhere).
    current: RwLock<Option<Current>>,
    /// Told when the LAN goes quiet, so [`rotate_forever`] tries again
    /// soon rather than a whole period later.
    went_quiet: Arc<tokio::sync::Notify>,
    /// The listening addresses as configured, with the ports actually
    /// bound, so later generations take the same ones.
    bound: Mutex<Vec<Multiaddr>>,
    peers: Mutex<PeerTable>,
    old: Mutex<VecDeque<Generation>>,
    stop: CancellationToken,
    /// One rotation at a time.
    rotating: tokio::sync::Mutex<()>,
    /// Tests: when the LAN went quiet, each time (at the start, and at
    /// each rotation that could listen nowhere), so a test sees when
    /// [`rotate_forever`] tried again.
    #[cfg(test)]
    went_quiet_at: Mutex<Vec<tokio::time::Instant>>,
}

#[derive(Default)]
struct PeerTable {
    by_handle: HashMap<u64, (PeerId, Vec<Multiaddr>)>,
    by_peer: HashMap<PeerId, u64>,
    order: VecDeque<u64>,
    next: u64,
}

impl Shared {
    /// The handle for a peer mDNS found (the same handle each time).
    pub(crate) fn remember(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Peer {
        let mut t = self.peers.lock().expect("peer table lock");
        if let Some(&h) = t.by_peer.get(&peer) {
            t.by_handle.insert(h, (peer, addrs));
            return Peer::new(LinkKind::Lan, h);
        }
        t.next += 1;
        let h = t.next;
        t.by_handle.insert(h, (peer, addrs));
        t.by_peer.insert(peer, h);
        t.order.push_back(h);
        while t.order.len() > MAX_KNOWN_PEERS {
            if let Some(old) = t.order.pop_front() {
                if let Some((p, _)) = t.by_handle.remove(&old) {
                    t.by_peer.remove(&p);
                }
            }
        }
        Peer::new(LinkKind::Lan, h)
    }

    fn current(&self) -> Option<Current> {
        self.current.read().expect("current lock").clone()
    }

    /// The current generation's command queue, or why there is none.
    fn commands(&self) -> Result<mpsc::Sender<Command>, TransportError> {
        self.current()
            .map(|c| c.commands)
            .ok_or(TransportError::Quiet)
    }
}

/// A handle to the running LAN transport. Cheap to clone; the transport
/// stops with [`Transport::shutdown`] or when every handle is dropped.
#[derive(Clone)]
pub struct Lan {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Lan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lan")
            .field("local", &self.local_peer_id())
            .finish_non_exhaustive()
    }
}

/// `configured` with the TCP or UDP port of `bound`.
fn with_port(configured: &Multiaddr, bound: &Multiaddr) -> Multiaddr {
    let port = bound.iter().find_map(|p| match p {
        Protocol::Tcp(n) | Protocol::Udp(n) => Some(n),
        _ => None,
    });
    configured
        .iter()
        .map(|p| match (p, port) {
            (Protocol::Tcp(_), Some(n)) => Protocol::Tcp(n),
            (Protocol::Udp(_), Some(n)) => Protocol::Udp(n),
            (other, _) => other,
        })
        .collect()
}

/// Whether this transport listens on addresses of `addr`'s form: an IP
/// address and a TCP port, or (with QUIC) a UDP port and `/quic-v1`, then
/// nothing but `/p2p/<id>`; unspecified addresses and port 0 included.
/// One of another form (a DNS name, `/ws`) fails on every network, not
/// only after a change of network, so [`Lan::start`] refuses it
/// ([`LISTEN_FORMS`] says why).
fn listens(addr: &Multiaddr) -> bool {
    crate::tcp_or_quic(
        &without_peer(addr),
        |p| matches!(p, Protocol::Ip4(_) | Protocol::Ip6(_)),
        |_| true,
    )
}

/// The addresses [`listens`] takes, in words for whoever gives one that
/// it does not: true of this build (QUIC only where the build speaks it).
const LISTEN_FORMS: &str = if crate::QUIC {
    "the LAN listens on /ip4/ADDRESS/tcp/PORT, /ip4/ADDRESS/udp/PORT/quic-v1 or the same with \
     /ip6 (port 0 for any)"
} else {
    "the LAN listens on /ip4/ADDRESS/tcp/PORT or /ip6/ADDRESS/tcp/PORT (port 0 for any; this \
     build has no QUIC)"
};

fn is_tcp(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Tcp(_)))
}

/// Whether this transport can dial `addr`: an IP address and a TCP port,
/// or (with QUIC) a UDP port and `/quic-v1`, then nothing but `/p2p/<id>`,
/// with a port and an address that are not 0 or unspecified: what
/// libp2p's TCP and QUIC transports dial. Anything else (a DNS name,
/// which this swarm does not resolve; `/ws`, `/webrtc`, QUIC's draft
/// `/quic`; a circuit, the relay transport's) they refuse every time it
/// is dialled, so [`Lan`]'s [`Transport::dial`] does not take it: whoever
/// gave the address is told at once that nothing dials it, rather than
/// have it fail again and again.
fn dials(addr: &Multiaddr) -> bool {
    crate::tcp_or_quic(
        &without_peer(addr),
        |p| match p {
            Protocol::Ip4(ip) => !ip.is_unspecified(),
            Protocol::Ip6(ip) => !ip.is_unspecified(),
            _ => false,
        },
        |port| port != 0,
    )
}

impl Lan {
    /// Starts the transport (a first generation with a fresh, ephemeral
    /// identity), reporting to `events`. Must be called inside a tokio
    /// runtime. The first generation listens where it can, as a
    /// rotation's does, if the addresses it cannot listen on are gone
    /// ([`gone`]): each is logged and tried again at the next rotation,
    /// and if it can listen on none, the LAN starts quiet and tries again
    /// soon (see the module docs). Fails ([`TransportError::Listen`]) for
    /// an address that cannot be listened on for another reason (its port
    /// taken by another program, another Strand node included:
    /// [`PortInUse`](crate::ports::PortInUse); or not allowed), or of a
    /// form it never listens on (a DNS name, say); and if a swarm cannot
    /// be built.
    pub async fn start(
        config: LanConfig,
        events: mpsc::Sender<TransportEvent>,
    ) -> Result<Lan, TransportError> {
        // Such an address fails on every network: a mistake in the
        // settings, said now rather than logged at every rotation.
        if let Some(addr) = config.listen.iter().find(|a| !listens(a)) {
            return Err(TransportError::Listen {
                addr: addr.clone(),
                source: Box::new(crate::Reason(LISTEN_FORMS.into())),
            });
        }
        let lan = Lan {
            shared: Arc::new(Shared {
                bound: Mutex::new(config.listen.clone()),
                config,
                events,
                counts: limits::SharedCounts::default(),
                // Until the first generation takes over, just below.
                current: RwLock::new(None),
                went_quiet: Arc::new(tokio::sync::Notify::new()),
                peers: Mutex::new(PeerTable::default()),
                old: Mutex::new(VecDeque::new()),
                stop: CancellationToken::new(),
                rotating: tokio::sync::Mutex::new(()),
                #[cfg(test)]
                went_quiet_at: Mutex::new(Vec::new()),
            }),
        };
        let first = lan.spawn()?;
        {
            let _one_at_a_time = lan.shared.rotating.lock().await;
            match lan.hand_over(None, first, When::Start).await {
                Ok(()) => {}
                // Every address is gone: the LAN went quiet.
                Err(e) if gone(&e) => tracing::warn!(
                    "none of the LAN's addresses is on this device now, so the LAN starts \
                     quiet (no identity: it neither listens, announces nor dials) and tries \
                     again soon: {}",
                    crate::error_chain(&e)
                ),
                Err(e) => return Err(e),
            }
        }
        tokio::spawn(rotate_forever(Arc::downgrade(&lan.shared)));
        Ok(lan)
    }

    /// This generation's ephemeral libp2p identity; `None` while the LAN
    /// is quiet (its last rotation, or its start, could listen nowhere:
    /// see the module docs).
    pub fn local_peer_id(&self) -> Option<PeerId> {
        self.shared.current().map(|c| c.local)
    }

    /// The addresses the current generation listens on (none while the
    /// LAN is quiet).
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let Ok(commands) = self.shared.commands() else {
            return Vec::new();
        };
        ask(&commands, |reply| Command::Addresses { reply })
            .await
            .unwrap_or_default()
    }

    /// Replaces the identity now (a new generation takes over the ports;
    /// the old one keeps its live connections). Runs by itself every
    /// [`LanConfig::rotate_every`].
    ///
    /// The new generation takes over on the addresses it can listen on,
    /// and the others are logged and tried again at the next rotation.
    /// If it can listen on none, it is stopped, the old generation drains
    /// all the same, and the LAN is quiet until a rotation succeeds (see
    /// the module docs); the error is the first address that failed.
    pub async fn rotate(&self) -> Result<(), TransportError> {
        let _one_at_a_time = self.shared.rotating.lock().await;
        // A rotation asked for after shutdown (on waking, say) starts
        // nothing: no generation would be left to stop it.
        if self.shared.stop.is_cancelled() {
            return Err(TransportError::Stopped);
        }
        let old = self.shared.current();
        match self.spawn() {
            Ok(generation) => self.hand_over(old, generation, When::Rotation).await,
            Err(e) => {
                self.go_quiet(old.as_ref(), &e).await;
                Err(e)
            }
        }
    }

    /// A new generation, not yet tracked or listening.
    fn spawn(&self) -> Result<Generation, TransportError> {
        let shared = &self.shared;
        swarm::spawn(
            &shared.config,
            shared.counts.clone(),
            Arc::downgrade(shared),
            shared.events.clone(),
        )
    }

    /// The rest of [`Lan::rotate`] (and of [`Lan::start`], with no `old`)
    /// once `generation` is spawned: it takes over from `old`
    /// ([`Lan::take_over`]), or, if it can listen nowhere, is stopped and
    /// the LAN goes quiet. The caller holds `rotating`. If shutdown ran
    /// meanwhile, the new generation stops too (with the others, or here
    /// if shutdown came before it was tracked), and the LAN does not go
    /// quiet: a quiet LAN tries again. At the start, an address that
    /// failed other than by being gone stops the new generation too, and
    /// the LAN does not go quiet: the start fails ([`When::Start`]).
    async fn hand_over(
        &self,
        old: Option<Current>,
        generation: Generation,
        when: When,
    ) -> Result<(), TransportError> {
        let shared = &self.shared;
        let new = Current {
            commands: generation.commands.clone(),
            local: generation.local,
        };
        // Tracked at once, so shutdown stops it whatever happens below;
        // the oldest past MAX_GENERATIONS stop only once it took over.
        crate::generation::track(&shared.old, generation);
        // Shutdown cancels `stop` before it stops the generations tracked.
        // If it had not cancelled it by now, it will find this one; if it
        // had, it may have stopped them all before this one was among
        // them, and nothing else would stop it.
        if shared.stop.is_cancelled() {
            crate::generation::stop(&shared.old, new.local);
            return Err(TransportError::Stopped);
        }
        let result = self.take_over(old.as_ref(), &new, when).await;
        match &result {
            Ok(()) => {
                crate::generation::trim(&shared.old, MAX_GENERATIONS);
                tracing::debug!(local = %new.local, "LAN identity rotated");
            }
            Err(e) => {
                // It never took over, so it has no links to keep; left
                // running, it would be a second identity on the network
                // until MAX_GENERATIONS newer ones pushed it out.
                crate::generation::stop(&shared.old, new.local);
                // Shutdown ran during the take-over and stopped the new
                // generation with the others: the LAN is stopped, not
                // quiet, and no retry should follow.
                if shared.stop.is_cancelled() {
                    return Err(TransportError::Stopped);
                }
                // The start fails: there is no LAN to go quiet.
                if when == When::Start && !gone(e) {
                    return result;
                }
                self.go_quiet(old.as_ref(), e).await;
            }
        }
        result
    }

    /// Makes `new` the current generation on the addresses in `bound` it
    /// can listen on, and drains `old`. An address it cannot listen on is
    /// logged and kept in `bound`, to be tried again at the next rotation;
    /// one it listens on is kept with the port it got (a port 0 in the
    /// settings becomes the one chosen, which later generations take).
    /// An unspecified address with none of its family on the device yet
    /// is listened on all the same ([`listened`]), and the port it got is
    /// learnt from `old` at the next rotation ([`learn_ports`]). A TCP
    /// port given that another program holds is not listened on
    /// ([`probe`]): each address is checked but those whose port a
    /// listener of `old` holds (none at the start, nor at a quiet LAN's
    /// retry), and one held is left for the next rotation, as one the new
    /// generation cannot listen on.
    /// Fails if it can listen on none (the first address's error), or if
    /// `new` stopped ([`TransportError::Stopped`]); at the start, also at
    /// the first address that failed other than by being gone
    /// ([`When::Start`]).
    async fn take_over(
        &self,
        old: Option<&Current>,
        new: &Current,
        when: When,
    ) -> Result<(), TransportError> {
        let shared = &self.shared;
        // The listeners of the generation that listens now: none at the
        // start or at a quiet LAN's retry, and none of one that stopped
        // (its sockets went with it).
        let open = match old {
            Some(old) => ask(&old.commands, |reply| Command::Listeners { reply })
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        learn_ports(&shared.bound, &open);
        let bound = shared.bound.lock().expect("bound lock").clone();
        // Where each of them holds its port, at the port it got.
        let held: Vec<Multiaddr> = open
            .into_iter()
            .map(|(asked, first)| listened(&asked, first))
            .collect();
        let mut rebound = bound.clone();
        let mut listening = 0;
        let mut first_failure = None;
        // A port given that a socket holds is another program's, which
        // libp2p's listener would share (see the module docs), unless a
        // listener of the old generation holds it: the new one listens
        // beside that one, and the check could not tell the two apart.
        // So every address is checked but those: all at the start and at
        // a quiet LAN's retry, and at a rotation each the old generation
        // does not listen at (one back after a change of network). One
        // taken is left for the next rotation as any address the new
        // generation cannot listen on is ([`cannot_listen`]; at the
        // start, it is the error). All are checked before any is
        // listened on, so that two addresses at one port (`127.0.0.1`
        // and `0.0.0.0`, say) are not taken for each other.
        let mut taken = vec![false; bound.len()];
        for (i, addr) in bound.iter().enumerate() {
            if held.iter().any(|h| holds_port(h, addr)) {
                continue;
            }
            if let Err(e) = probe(addr) {
                taken[i] = true;
                cannot_listen(addr, e, when, &mut first_failure)?;
            }
        }
        // TCP first: the new listener sits beside the old one.
        for (i, addr) in bound
            .iter()
            .enumerate()
            .filter(|&(i, a)| is_tcp(a) && !taken[i])
        {
            match ask(&new.commands, |reply| Command::Listen {
                addr: addr.clone(),
                reply,
            })
            .await?
            {
                Ok(got) => {
                    listening += 1;
                    rebound[i] = listened(addr, got);
                }
                Err(e) => cannot_listen(addr, e, when, &mut first_failure)?,
            }
        }
        let quic = bound.iter().any(|a| !is_tcp(a));
        if listening == 0 && !quic {
            if let Some(e) = first_failure.take() {
                return Err(e);
            }
        }
        *shared.current.write().expect("current lock") = Some(new.clone());
        // The old generation stops listening (and announcing).
        if let Some(old) = old {
            let _ = ask(&old.commands, |reply| Command::Drain { reply }).await;
        }
        // QUIC: the port frees once the old endpoint has closed.
        for (i, addr) in bound.iter().enumerate().filter(|(_, a)| !is_tcp(a)) {
            let got = match when {
                // No older generation holds the port: one taken is another
                // program's, which waiting would not free.
                When::Start => {
                    ask(&new.commands, |reply| Command::Listen {
                        addr: addr.clone(),
                        reply,
                    })
                    .await?
                }
                When::Rotation => listen_quic(new, addr).await?,
            };
            match got {
                Ok(got) => {
                    listening += 1;
                    rebound[i] = listened(addr, got);
                }
                Err(e) => cannot_listen(addr, e, when, &mut first_failure)?,
            }
        }
        if listening == 0 {
            if let Some(e) = first_failure.take() {
                return Err(e);
            }
        }
        *shared.bound.lock().expect("bound lock") = rebound;
        Ok(())
    }

    /// After a rotation, or the start, that could listen nowhere (`why`):
    /// the old generation, if any, drains as at any rotation, and the LAN
    /// has no identity until a rotation succeeds (see the module docs).
    async fn go_quiet(&self, old: Option<&Current>, why: &TransportError) {
        let shared = &self.shared;
        *shared.current.write().expect("current lock") = None;
        #[cfg(test)]
        shared
            .went_quiet_at
            .lock()
            .expect("went_quiet_at lock")
            .push(tokio::time::Instant::now());
        if let Some(old) = old {
            // Already drained if the rotation got that far: answered at once.
            let _ = ask(&old.commands, |reply| Command::Drain { reply }).await;
            tracing::warn!(
                "the LAN's new identity could listen on none of its addresses, so the LAN is \
                 quiet (no identity: it neither listens, announces nor dials) until a rotation \
                 succeeds; trying again soon: {}",
                crate::error_chain(why)
            );
        } else {
            // The start (which says so itself), or a quiet LAN's retry.
            tracing::debug!(
                "the LAN's new identity could listen on none of its addresses; the LAN is quiet \
                 and tries again soon: {}",
                crate::error_chain(why)
            );
        }
        shared.went_quiet.notify_one();
    }
}

/// `addr` as later generations listen on it, now that a new one listens
/// there and got the address `got`: with the port it got (a port 0 in
/// the settings becomes the one chosen). With no address yet (`None`:
/// an unspecified address, and the device has none of its family, as
/// with IPv6 turned off; see [`Command::Listen`]), the listener still
/// counts: it listens, and reports each address of that family that
/// comes, so the LAN is not quiet for it (the generation's task says so
/// in the log). Its port is not known until then, so `addr` is kept as
/// configured, and the next rotation learns the port from this
/// generation if an address came meanwhile ([`learn_ports`]).
fn listened(addr: &Multiaddr, got: Option<Multiaddr>) -> Multiaddr {
    match got {
        Some(got) => with_port(addr, &got),
        None => addr.clone(),
    }
}

/// Before a rotation: records in `bound` the port each listener of `old`
/// (the generation that listens now) got since its listen was answered
/// without an address ([`listened`]), so that the new generation listens
/// at that port too, as it does at any port 0 chosen
/// ([`LanConfig::listen`]). Without this, a port 0 on an unspecified
/// address the device had none of at a rotation stayed 0 in `bound`, and
/// every rotation after its address came chose another port: a neighbour
/// given the address (`--peer`) lost it at the next change of identity.
///
/// `open` is what `old` told of its listeners ([`Command::Listeners`]:
/// each one's address asked for, and its first address if it has one; a
/// generation that stopped tells nothing). A listen answered without an
/// address asked for the address as `bound` has it (kept as configured),
/// so that is how its entry is found. A listen answered with its address
/// had its port recorded then: its entry no longer reads as it asked,
/// or, at a port given, [`with_port`] leaves it as it is. Only rotations
/// change `bound`, one at a time (`rotating`), so this and the rotation's
/// own update cannot cross. (Recorded by the generation's task when the
/// address came, it could: a rotation under way writes back the `bound`
/// it read at its start.)
fn learn_ports(bound: &Mutex<Vec<Multiaddr>>, open: &[(Multiaddr, Option<Multiaddr>)]) {
    let mut bound = bound.lock().expect("bound lock");
    for addr in bound.iter_mut() {
        let first = open
            .iter()
            .filter(|(asked, _)| asked == addr)
            .find_map(|(_, first)| first.as_ref());
        if let Some(first) = first {
            *addr = with_port(addr, first);
        }
    }
}

/// Logs an address the new generation cannot listen on (it is tried again
/// at the next rotation), and keeps the first such error in `first`. At
/// the start, an address that failed other than by being gone ([`gone`])
/// is not tried again: it is the error ([`When::Start`]).
fn cannot_listen(
    addr: &Multiaddr,
    e: TransportError,
    when: When,
    first: &mut Option<TransportError>,
) -> Result<(), TransportError> {
    if when == When::Start && !gone(&e) {
        return Err(e);
    }
    tracing::warn!(
        %addr,
        "the new LAN identity cannot listen here; trying again at the next rotation: {}",
        crate::error_chain(&e)
    );
    first.get_or_insert(e);
    Ok(())
}

/// Who hands the addresses to a new generation ([`Lan::hand_over`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// The start, [`Lan::start`]: an address that is gone ([`gone`]) is
    /// left for later, as at a rotation, but one that fails otherwise
    /// fails the start. Its port taken by another program, or below 1024
    /// without the right to it: no change of network mends that, and the
    /// user who named the address is there to be told.
    Start,
    /// A rotation (every period, on waking, a quiet LAN's retry): the new
    /// generation takes over wherever it can listen, whatever kept it from
    /// the other addresses, since the old identity's time is over (see
    /// the module docs).
    Rotation,
}

/// Whether `e`, why an address could not be listened on, says the address
/// is gone: not on this device now (`EADDRNOTAVAIL`), what a change of
/// network does and the next may undo. Anything else (the port in use,
/// permission denied, a generation that stopped) is not.
///
/// The system's error lies under the layers of the swarm's transport,
/// each of which the walk goes through: an `io::Error` by the error it
/// wraps ([`std::io::Error::get_ref`]; its `source` is that error's
/// source, a step further), any other by its source. The TCP and QUIC
/// transports' own errors are made a source on the way
/// ([`swarm::Surfaced`]); without that, the upgrade layers above them
/// would skip them.
fn gone(e: &TransportError) -> bool {
    let first: &(dyn std::error::Error + 'static) = e;
    let mut next = Some(first);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::AddrNotAvailable {
                return true;
            }
            if let Some(inner) = io.get_ref() {
                let inner: &(dyn std::error::Error + 'static) = inner;
                next = Some(inner);
                continue;
            }
        }
        next = err.source();
    }
    false
}

/// Listens with `new` on a QUIC address whose port the old generation may
/// still hold: the same port once it frees (within [`QUIC_REBIND`]), any
/// port after that. The outer error is the generation's (it stopped), the
/// inner one the address's.
async fn listen_quic(
    new: &Current,
    addr: &Multiaddr,
) -> Result<Result<Option<Multiaddr>, TransportError>, TransportError> {
    let deadline = tokio::time::Instant::now() + QUIC_REBIND;
    loop {
        let r = ask(&new.commands, |reply| Command::Listen {
            addr: addr.clone(),
            reply,
        })
        .await?;
        match r {
            Ok(a) => return Ok(Ok(a)),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                tracing::warn!(%addr, "QUIC port still in use after rotation, taking another: {e}");
                break;
            }
        }
    }
    let any = with_port(addr, &"/udp/0".parse().expect("valid"));
    ask(&new.commands, |reply| Command::Listen { addr: any, reply }).await
}

/// The waits of [`rotate_forever`]: a whole period while the LAN
/// listens; once it is quiet, [`QUIET_RETRY_FIRST`], doubled after each
/// retry that fails, up to [`QUIET_RETRY_MAX`] (and never longer than the
/// period).
#[derive(Debug, Default)]
struct Backoff {
    /// Rotations in a row, the loop's or others', that left the LAN quiet.
    failures: u32,
}

impl Backoff {
    /// A rotation could listen nowhere (the LAN is quiet).
    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// How long to wait before the next rotation, the LAN being `quiet`
    /// now or not; `every` is [`LanConfig::rotate_every`].
    fn wait(&mut self, quiet: bool, every: Duration) -> Duration {
        if !quiet {
            self.failures = 0;
            return every;
        }
        // The failure that made the LAN quiet is followed by the shortest
        // wait; each retry that fails doubles it.
        let doublings = self.failures.saturating_sub(1).min(16);
        QUIET_RETRY_FIRST
            .saturating_mul(1 << doublings)
            .min(QUIET_RETRY_MAX)
            .min(every)
    }
}

/// Rotates the identity every epoch until the transport stops (or every
/// handle is gone); while the LAN is quiet, tries again sooner
/// ([`Backoff`]).
async fn rotate_forever(shared: Weak<Shared>) {
    let mut backoff = Backoff::default();
    loop {
        let Some((quiet, wait, stop, went_quiet)) = shared.upgrade().map(|s| {
            let quiet = s.current().is_none();
            let wait = backoff.wait(quiet, s.config.rotate_every);
            (quiet, wait, s.stop.clone(), s.went_quiet.clone())
        }) else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // A rotation, this loop's or one asked for elsewhere (on
            // waking), left the LAN quiet: wait a retry's time from now,
            // not the rest of the period. Failures are counted here,
            // whoever rotated (two while nothing waits count as one: a
            // Notify keeps one permit).
            _ = went_quiet.notified() => {
                backoff.failed();
                continue;
            }
            _ = stop.cancelled() => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // A retry timed while the LAN was quiet, and another rotation (one
        // asked for on waking) has listened since: the LAN has a fresh
        // identity, which a second rotation would replace within the
        // minute, cutting the links just made. The next wait is a period.
        if quiet && shared.current().is_some() {
            continue;
        }
        // A rotation that fails says why and tells `went_quiet` (`go_quiet`).
        let _ = (Lan { shared }).rotate().await;
    }
}

impl Transport for Lan {
    fn kind(&self) -> LinkKind {
        LinkKind::Lan
    }

    fn renew_identity(&self) -> BoxFuture<'static, Result<(), TransportError>> {
        let lan = self.clone();
        async move { lan.rotate().await }.boxed()
    }

    fn open(&self, peer: Peer) -> BoxFuture<'static, Result<crate::Link, TransportError>> {
        let found = (peer.kind == LinkKind::Lan)
            .then(|| {
                self.shared
                    .peers
                    .lock()
                    .expect("peer table lock")
                    .by_handle
                    .get(&peer.id())
                    .cloned()
            })
            .flatten();
        let commands = self.shared.commands();
        async move {
            let commands = commands?;
            let (peer, addrs) = found.ok_or(TransportError::UnknownPeer)?;
            // TCP where the device has it: TCP links survive our rotations.
            let tcp: Vec<_> = addrs.iter().filter(|a| is_tcp(a)).cloned().collect();
            let addrs = if tcp.is_empty() { addrs } else { tcp };
            ask(&commands, |reply| Command::Open { peer, addrs, reply }).await?
        }
        .boxed()
    }

    fn dial(
        &self,
        addr: &Multiaddr,
    ) -> Option<BoxFuture<'static, Result<crate::Link, TransportError>>> {
        if !dials(addr) {
            return None;
        }
        let commands = self.shared.commands();
        let addr = addr.clone();
        Some(
            async move {
                let commands = commands?;
                generation::dial(&commands, addr, |addr, reply| Command::Dial { addr, reply }).await
            }
            .boxed(),
        )
    }

    fn info(&self) -> BoxFuture<'static, TransportInfo> {
        let lan = self.clone();
        async move {
            TransportInfo {
                kind: LinkKind::Lan,
                addresses: lan.listen_addrs().await,
                discovery: lan.shared.config.mdns,
                ephemeral_id: lan.local_peer_id().map(|p| p.to_string()),
                relays: Vec::new(),
                external: Vec::new(),
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
