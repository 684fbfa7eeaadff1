//! The transport flags that `strand run` and the desktop app share, as one
//! `clap` struct, so the two never drift apart.

use strand_transport::{LanConfig, Multiaddr};

use crate::NodeConfig;

/// How the node reaches other devices.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportArgs {
    /// Address to listen on (repeatable) [default: all interfaces, TCP and QUIC, random ports kept for the whole run]
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
    /// Address of a device to dial and keep dialling (repeatable), for networks without multicast
    #[arg(long, value_name = "MULTIADDR")]
    pub peer: Vec<Multiaddr>,
    /// Do not use mDNS discovery on the LAN
    #[arg(long)]
    pub no_mdns: bool,
    /// Do not use the LAN at all
    #[arg(long, conflicts_with_all = ["listen", "no_mdns"])]
    pub no_lan: bool,
}

impl TransportArgs {
    /// The node settings these flags ask for.
    pub fn node_config(&self) -> NodeConfig {
        let lan = (!self.no_lan).then(|| {
            let mut lan = LanConfig {
                mdns: !self.no_mdns,
                ..LanConfig::default()
            };
            if !self.listen.is_empty() {
                lan.listen = self.listen.clone();
            }
            lan
        });
        NodeConfig {
            lan,
            peers: self.peer.clone(),
            ..NodeConfig::default()
        }
    }
}
