//! A bare libp2p neighbour on loopback, for the LAN transport's tests:
//! the integration tests (`tests/it/lan.rs`) and the unit tests in
//! `src/lan/tests.rs` share it.

use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{dummy, DialError, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm};

/// A bare libp2p swarm on loopback: what any LAN neighbour could run.
pub fn neighbour() -> Swarm<dummy::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| dummy::Behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Connects to `addr` and returns the PeerId the other side proved, or
/// why it could not connect.
pub async fn peer_id_seen_at(
    swarm: &mut Swarm<dummy::Behaviour>,
    addr: &Multiaddr,
) -> Result<PeerId, DialError> {
    swarm.dial(DialOpts::unknown_peer_id().address(addr.clone()).build())?;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => return Ok(peer_id),
                SwarmEvent::OutgoingConnectionError { error, .. } => return Err(error),
                _ => {}
            }
        }
    })
    .await
    .expect("an outcome in time")
}
