//! A stranger that floods a node with links: shared by the tests and the
//! benchmark (`#[path]`-included there).

use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, Swarm};
use strand_transport::stream::{Behaviour, Event};

/// What a stranger's flood did.
#[derive(Debug, Default)]
pub struct Flood {
    /// Streams opened (the node may drop them at once).
    pub streams: u64,
    /// Connections that came up.
    pub connections: u64,
}

/// A stranger (a bare libp2p swarm speaking Strand's stream protocol) that
/// opens `per_second` links a second to `addr` for `duration`: new streams
/// on one connection, and new connections too. Holds everything open and
/// says nothing.
pub async fn flood(addr: Multiaddr, per_second: u32, duration: Duration) -> Flood {
    let mut swarm: Swarm<Behaviour> = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let mut report = Flood::default();
    let mut held = Vec::new();
    let mut peer = None;
    let end = tokio::time::Instant::now() + duration;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => return report,
            _ = tick.tick() => {
                n += 1;
                // A stream on the connection every tick, and a new
                // connection every fifth.
                if let Some(p) = peer {
                    swarm.behaviour_mut().open(p);
                }
                if peer.is_none() || n.is_multiple_of(5) {
                    let _ = swarm.dial(DialOpts::unknown_peer_id().address(addr.clone()).build());
                }
            }
            e = swarm.select_next_some() => match e {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    peer = Some(peer_id);
                    report.connections += 1;
                }
                SwarmEvent::Behaviour(Event::Opened { stream, .. }) => {
                    report.streams += 1;
                    held.push(stream);
                }
                _ => {}
            },
        }
    }
}
