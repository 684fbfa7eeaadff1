//! Connections per remote IP address: a stranger cannot take every slot.
//!
//! libp2p limits connections per PeerId, but a PeerId costs nothing to
//! make, so a stranger could open any number of connections with a fresh
//! one each. This behaviour counts inbound connections by remote IP address
//! (pending and established) and their rate, and denies past the limits
//! before any handshake work. An IPv6 address counts by its /64: one host
//! can hold any number of addresses in its prefix. The counts are
//! shared by every generation of the LAN transport's swarm, so an identity
//! rotation does not reset them.
//!
//! The handshakes under way from everyone together are bounded apart, by
//! the transport ([`MAX_PENDING_INCOMING`]): there the newest takes an old
//! one's place, where a behaviour could only refuse it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use crate::Reason;

/// Inbound connections one IP address may have in their handshakes at
/// once. An honest device opens one connection per meeting (two while
/// identities rotate); 4 leaves room for a reconnect.
pub const MAX_PENDING_PER_IP: usize = 4;

/// Inbound connections in their handshakes at once, from everyone. Past
/// this a new one does not wait or get refused: it takes the place of the
/// oldest handshake of the address with the most under way, so strangers
/// holding silent connections cannot shut a contact out (see
/// `handshakes.rs`). 64 is far more than a LAN's devices dial at once.
pub const MAX_PENDING_INCOMING: usize = 64;

/// How long a connection, inbound or dialled, has to finish its Noise and
/// yamux handshakes (libp2p's default; a LAN needs milliseconds). An
/// inbound one that says nothing holds its place this long, unless a
/// newer one takes it ([`MAX_PENDING_INCOMING`]).
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Inbound connections one IP address may hold. A device needs one per
/// live identity of ours it talks to (the current one, plus old ones whose
/// sessions are still running); 8 covers that while a stranger on one
/// address gets no more than a sliver of the node.
pub const MAX_CONNECTIONS_PER_IP: usize = 8;

/// New inbound connections per second one IP address may start, sustained
/// (checked before any handshake, so a refused one costs a TCP accept and
/// a close). An honest device connects once per meeting and redials every
/// few seconds at most.
pub const NEW_CONNECTIONS_PER_IP_PER_SECOND: f64 = 2.0;

/// New inbound connections one IP address may start at once after a quiet
/// spell.
pub const NEW_CONNECTIONS_PER_IP_BURST: f64 = 8.0;

/// IP addresses whose connection rate is remembered; past this, the quiet
/// ones are forgotten first.
const MAX_TRACKED_IPS: usize = 4096;

/// Per-IP limits on inbound connections. The default is the LAN's (the
/// constants above); a relay server, with many users behind one NAT, sets
/// its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IpLimitConfig {
    /// Connections in their handshakes at once.
    pub pending: usize,
    /// Connections held.
    pub established: usize,
    /// New connections per second, sustained.
    pub per_second: f64,
    /// New connections at once after a quiet spell.
    pub burst: f64,
}

impl Default for IpLimitConfig {
    fn default() -> Self {
        IpLimitConfig {
            pending: MAX_PENDING_PER_IP,
            established: MAX_CONNECTIONS_PER_IP,
            per_second: NEW_CONNECTIONS_PER_IP_PER_SECOND,
            burst: NEW_CONNECTIONS_PER_IP_BURST,
        }
    }
}

/// A token bucket per IP address.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: std::time::Instant,
}

impl Bucket {
    fn new(config: &IpLimitConfig) -> Bucket {
        Bucket {
            tokens: config.burst,
            last: std::time::Instant::now(),
        }
    }

    fn refill(&mut self, config: &IpLimitConfig) {
        let now = std::time::Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * config.per_second).min(config.burst);
    }

    fn take(&mut self, config: &IpLimitConfig) -> bool {
        self.refill(config);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The IP address a multiaddr starts with.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// The address limits count a connection under (IPv6 by its /64).
fn limit_key(addr: &Multiaddr) -> Option<IpAddr> {
    ip_of(addr).map(crate::ip_limit_key)
}

#[derive(Debug, Default)]
struct Counts {
    config: IpLimitConfig,
    pending: HashMap<IpAddr, usize>,
    established: HashMap<IpAddr, usize>,
    rate: HashMap<IpAddr, Bucket>,
}

impl Counts {
    fn release(map: &mut HashMap<IpAddr, usize>, ip: &IpAddr) {
        if let Some(n) = map.get_mut(ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(ip);
            }
        }
    }
}

/// Counts shared by the behaviours of every generation.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedCounts(Arc<Mutex<Counts>>);

impl SharedCounts {
    /// Counts under other limits than the LAN's.
    pub(crate) fn with_config(config: IpLimitConfig) -> SharedCounts {
        SharedCounts(Arc::new(Mutex::new(Counts {
            config,
            ..Counts::default()
        })))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pending,
    Established,
}

/// The behaviour. Denies inbound connections over the per-IP limits.
#[derive(Debug)]
pub(crate) struct IpLimits {
    counts: SharedCounts,
    mine: HashMap<ConnectionId, (IpAddr, Stage)>,
}

impl IpLimits {
    pub(crate) fn new(counts: SharedCounts) -> Self {
        IpLimits {
            counts,
            mine: HashMap::new(),
        }
    }

    fn release(&mut self, connection: ConnectionId) {
        if let Some((ip, stage)) = self.mine.remove(&connection) {
            let mut c = self.counts.0.lock().expect("counts lock");
            match stage {
                Stage::Pending => Counts::release(&mut c.pending, &ip),
                Stage::Established => Counts::release(&mut c.established, &ip),
            }
        }
    }
}

impl Drop for IpLimits {
    /// A generation's swarm can end with connections still open (it is
    /// stopped, not drained): their counts go with it.
    fn drop(&mut self) {
        let ids: Vec<ConnectionId> = self.mine.keys().copied().collect();
        for id in ids {
            self.release(id);
        }
    }
}

fn denied(what: &str, ip: IpAddr) -> ConnectionDenied {
    tracing::debug!(%ip, "connection refused: {what}");
    ConnectionDenied::new(Reason(format!("{what} from {ip}")))
}

impl NetworkBehaviour for IpLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = limit_key(remote) else {
            return Ok(());
        };
        let mut guard = self.counts.0.lock().expect("counts lock");
        let c = &mut *guard;
        let config = c.config;
        if c.rate.len() >= MAX_TRACKED_IPS && !c.rate.contains_key(&ip) {
            c.rate.retain(|_, b| {
                b.refill(&config);
                b.tokens < config.burst
            });
        }
        if !c
            .rate
            .entry(ip)
            .or_insert_with(|| Bucket::new(&config))
            .take(&config)
        {
            return Err(denied("too many new connections", ip));
        }
        if c.pending.get(&ip).copied().unwrap_or(0) >= config.pending {
            return Err(denied("too many connections in handshake", ip));
        }
        if c.established.get(&ip).copied().unwrap_or(0) >= config.established {
            return Err(denied("too many connections", ip));
        }
        *c.pending.entry(ip).or_default() += 1;
        self.mine.insert(connection, (ip, Stage::Pending));
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.release(connection);
        let Some(ip) = limit_key(remote) else {
            return Ok(dummy::ConnectionHandler);
        };
        let mut c = self.counts.0.lock().expect("counts lock");
        if c.established.get(&ip).copied().unwrap_or(0) >= c.config.established {
            return Err(denied("too many connections", ip));
        }
        *c.established.entry(ip).or_default() += 1;
        self.mine.insert(connection, (ip, Stage::Established));
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // Our own dials are limited by the node's dial rate.
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ListenFailure(e) => self.release(e.connection_id),
            FromSwarm::ConnectionClosed(e) => self.release(e.connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
