//! Addresses the node dials again and again while no link to them is up:
//! [`NodeConfig::peers`](super::NodeConfig::peers) (`strand run --peer`)
//! and [`Request::AddPeer`](super::api::Request::AddPeer) (the app's "dial
//! an address"). One task per address, however often it is given, at most
//! [`MAX_PEERS`] of them; each ends when the node stops. An address none
//! of the node's transports dials is refused before it takes a place.

use std::collections::BTreeSet;
use std::sync::Mutex;

use futures::future::BoxFuture;
use strand_transport::{Link, Multiaddr, TransportError};

use super::guard::Dial;
use super::limits::{MAX_PEERS, REDIAL};
use super::{LinkError, Node};
use crate::chain;

/// The addresses being dialled again and again, each by one task of the
/// node's ([`Node::add_peer`]).
#[derive(Default)]
pub(crate) struct Peers(Mutex<BTreeSet<Multiaddr>>);

impl Peers {
    /// Takes `addr` to be dialled: `Ok(true)` if it is new (a task is to
    /// dial it), `Ok(false)` if a task dials it already.
    fn take(&self, addr: &Multiaddr) -> Result<bool, TooManyPeers> {
        let mut peers = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if peers.contains(addr) {
            return Ok(false);
        }
        if peers.len() >= MAX_PEERS {
            return Err(TooManyPeers {
                address: addr.clone(),
            });
        }
        peers.insert(addr.clone());
        Ok(true)
    }

    /// The addresses, in order ([`super::Status::peers`]).
    pub(crate) fn addresses(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|a| a.to_string())
            .collect()
    }
}

/// [`Node::add_peer`] refused an address: the node already dials
/// [`MAX_PEERS`] others again and again, and keeps them until it stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the node already dials {max} addresses again and again, the most it keeps until it stops: {address} was not added (restart the node to dial others)",
    max = MAX_PEERS
)]
pub struct TooManyPeers {
    /// The address refused.
    pub address: Multiaddr,
}

/// [`Node::add_peer`] refused an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddPeerError {
    /// None of the node's transports dials addresses of its form (a typo,
    /// another protocol, a DNS name): dialled again and again it would
    /// fail every time, and hold one of the [`MAX_PEERS`] places until
    /// the node stops.
    #[error(
        "none of this node's transports dials {address}: it was not added (an address to dial looks like /ip4/192.168.1.20/tcp/40123)"
    )]
    Undialable {
        /// The address refused.
        address: Multiaddr,
    },
    /// The node dials the most addresses it keeps.
    #[error(transparent)]
    TooMany(#[from] TooManyPeers),
}

impl Node {
    /// Dials `addr` now and again every [`REDIAL`] while no link to it is
    /// up, like [`NodeConfig::peers`](super::NodeConfig::peers), until
    /// the node stops. An address already dialled so is left to the task
    /// that dials it (one task an address, however often it is given);
    /// past [`MAX_PEERS`] addresses a new one is refused, and so is one
    /// none of the node's transports dials, before it takes a place.
    /// Needs the node's runtime.
    pub fn add_peer(&self, addr: Multiaddr) -> Result<(), AddPeerError> {
        // Known at once and for good: the transports are the node's from
        // its start to its stop.
        if self.dial_of(&addr).is_none() {
            return Err(AddPeerError::Undialable { address: addr });
        }
        if !self.shared.peers.take(&addr)? {
            return Ok(());
        }
        let n = self.clone();
        self.shared.tasks.spawn(async move {
            let cancel = n.shared.cancel.clone();
            loop {
                // The node's stop ends a dial or a link's wait too, not
                // only the pause between them.
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    dialled = n.dial_once(&addr) => {
                        if let Err(e) = dialled {
                            tracing::debug!(%addr, "dial failed: {}", chain(&e));
                        }
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(REDIAL) => {}
                }
            }
        });
        Ok(())
    }

    /// The dial of `addr` by the first of the node's transports that dials
    /// addresses of its form, not started (a transport's dial does nothing
    /// until it is polled); `None` if none does.
    fn dial_of(
        &self,
        addr: &Multiaddr,
    ) -> Option<BoxFuture<'static, Result<Link, TransportError>>> {
        self.shared.transports.iter().find_map(|t| t.dial(addr))
    }

    /// Dials `addr` and runs the link until it ends. A dial the
    /// transport refused before it reached the network (the quiet LAN's)
    /// gives its token back.
    async fn dial_once(&self, addr: &Multiaddr) -> Result<(), LinkError> {
        let dial = self
            .dial_of(addr)
            .ok_or_else(|| LinkError::NoTransport(addr.clone()))?;
        if !self.contact_dial().await {
            return Ok(());
        }
        let link = match dial.await {
            Ok(link) => link,
            Err(e) => {
                self.shared.guard.refused(Dial::Contact, &e);
                return Err(e.into());
            }
        };
        let (done, ended) = tokio::sync::oneshot::channel();
        self.admit_outbound(link, Dial::Contact, Some(done));
        let _ = ended.await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use strand_transport::LanConfig;

    use super::*;
    use crate::runtime::limits::CONTACT_DIAL_BURST;
    use crate::runtime::test_node;

    /// A `--peer` address dialled while the LAN is quiet (its addresses
    /// gone) cost a contact dial's token at every try (every REDIAL, for
    /// each such address), though the quiet LAN refused the dial before
    /// it reached the network. Now the token goes back, as for a dial
    /// after discovery.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_dial_the_quiet_lan_refuses_costs_no_contact_token() {
        // A LAN that starts quiet: its one address is on no interface of
        // this machine (192.0.2.1, TEST-NET-1), so it refuses every dial.
        // Where the system lets a socket bind it, the LAN would listen and
        // the dial fail otherwise, which would not say why; so this checks
        // first (as transport's lan tests do in `gone_address`).
        match std::net::TcpListener::bind("192.0.2.1:0") {
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {}
            other => panic!(
                "these tests need 192.0.2.1 (TEST-NET-1) to be unbindable here; is \
                 net.ipv4.ip_nonlocal_bind set or the address assigned? (binding it gave \
                 {other:?})"
            ),
        }
        let config = super::super::NodeConfig {
            lan: Some(LanConfig {
                listen: vec!["/ip4/192.0.2.1/tcp/4001".parse().unwrap()],
                mdns: false,
                rotate_every: Duration::from_secs(3600),
            }),
            ..super::super::NodeConfig::default()
        };
        let tmp = tempfile::tempdir().unwrap();
        let node = test_node(tmp.path(), config).await;
        let guard = &node.shared.guard;
        guard.stop_refilling();
        // Every token but one taken (the bucket starts full, and nothing
        // else dials a contact here): the last one pays for the dial.
        for _ in 1..CONTACT_DIAL_BURST as usize {
            assert!(guard.may_dial(Dial::Contact));
        }

        let somewhere: Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().unwrap();
        let dialled = node.dial_once(&somewhere).await;
        assert!(
            matches!(dialled, Err(LinkError::Transport(TransportError::Quiet))),
            "{dialled:?}"
        );
        assert!(guard.may_dial(Dial::Contact), "the token came back");
        assert!(!guard.may_dial(Dial::Contact), "and only that one");
        node.shutdown().await;
    }
}
