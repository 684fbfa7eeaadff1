//! Addresses the node dials again and again while no link to them is up:
//! [`NodeConfig::peers`](super::NodeConfig::peers) (`strand run --peer`)
//! and [`Request::AddPeer`](super::api::Request::AddPeer) (the app's "dial
//! an address"). One task per address, however often it is given, at most
//! [`MAX_PEERS`] of them; each ends when the node stops.

use std::collections::BTreeSet;
use std::sync::Mutex;

use strand_transport::Multiaddr;

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

impl Node {
    /// Dials `addr` now and again every [`REDIAL`] while no link to it is
    /// up, like [`NodeConfig::peers`](super::NodeConfig::peers), until
    /// the node stops. An address already dialled so is left to the task
    /// that dials it (one task an address, however often it is given);
    /// past [`MAX_PEERS`] addresses a new one is refused. Needs the node's
    /// runtime.
    pub fn add_peer(&self, addr: Multiaddr) -> Result<(), TooManyPeers> {
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

    /// Dials `addr` and runs the link until it ends.
    async fn dial_once(&self, addr: &Multiaddr) -> Result<(), LinkError> {
        let dial = self
            .shared
            .transports
            .iter()
            .find_map(|t| t.dial(addr))
            .ok_or_else(|| LinkError::NoTransport(addr.clone()))?;
        if !self.contact_dial().await {
            return Ok(());
        }
        let link = dial.await?;
        let (done, ended) = tokio::sync::oneshot::channel();
        self.admit_outbound(link, Dial::Contact, Some(done));
        let _ = ended.await;
        Ok(())
    }
}
