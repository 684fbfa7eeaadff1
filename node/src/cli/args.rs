//! The transport flags that `strand run` and the desktop app share, as one
//! `clap` struct, so the two never drift apart.

use strand_transport::{LanConfig, Multiaddr};

use crate::{BleSettings, NodeConfig, RelaySettings, ServeSettings};

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
    /// Do not use relays: contacts beyond the LAN are not reached (`strand relay add` keeps the list)
    #[arg(long)]
    pub no_relay: bool,
    /// Reach contacts beyond the LAN through relays only: no hole punching, and nothing listens for direct connections
    #[arg(long, conflicts_with = "no_relay")]
    pub no_hole_punch: bool,
    /// Where direct connections from hole punching are accepted (repeatable) [default: the interfaces and protocols of --listen at ports of their own; without --listen, all interfaces, TCP and QUIC, random ports]
    #[arg(long, value_name = "MULTIADDR", conflicts_with_all = ["no_relay", "no_hole_punch"])]
    pub punch_listen: Vec<Multiaddr>,
    /// Also run a relay for your contacts (and nobody else); they learn its address when you sync
    #[arg(long, conflicts_with = "no_relay")]
    pub relay_for_contacts: bool,
    /// Where that relay listens (repeatable) [default: all interfaces, TCP and QUIC, port 4001]
    #[arg(long, value_name = "MULTIADDR", requires = "relay_for_contacts")]
    pub relay_listen: Vec<Multiaddr>,
    /// The address contacts reach that relay at, if not where it listens (repeatable): behind port forwarding, the router's public address
    #[arg(long, value_name = "MULTIADDR", requires = "relay_for_contacts", value_parser = relay_announce)]
    pub relay_announce: Vec<Multiaddr>,
    /// Use Bluetooth LE: the default where an adapter and BlueZ exist (where not, the node says why in one line and runs on)
    #[arg(long)]
    pub ble: bool,
    /// Do not use Bluetooth LE
    #[arg(long, conflicts_with = "ble")]
    pub no_ble: bool,
    /// The Bluetooth adapter to use, by BlueZ's name (such as hci1) [default: BlueZ's default adapter]
    #[arg(long, value_name = "NAME", conflicts_with = "no_ble")]
    pub ble_adapter: Option<String>,
    /// Over Bluetooth, use GATT only: no L2CAP channels (for devices whose channels fail)
    #[arg(long, conflicts_with = "no_ble")]
    pub ble_gatt_only: bool,
    /// How much each contact's messages may take on this device, in MiB; past it the rest waits (they offer it again at a later sync) [default: 1024]
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub budget_per_contact: Option<u64>,
    /// How much one member's messages in one private group may take on this device, in MiB (all the group's epochs together) [default: 320]
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub budget_per_member: Option<u64>,
    /// How much all other members' messages in one private group may take on this device together, in MiB [default: 2048]
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub budget_per_group: Option<u64>,
    /// When you carry for contacts (`strand carry on`): how much their sealed envelopes may take on this device, in MiB; past it the oldest are dropped [default: 16, at most 1024]
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1_024))]
    pub carry_budget: Option<u64>,
}

/// `--relay-announce`, and `strand relay --announce`: where a relay is
/// reached, less its `/p2p/<relay id>` (the relay adds its own), at an
/// address the relay client dials
/// ([`strand_transport::relay::reaches_relay_at`], the rule for every
/// relay address). Any other is refused here: contacts (and clients) would
/// be told it, and every reservation and circuit there would fail.
pub fn relay_announce(text: &str) -> Result<Multiaddr, String> {
    let addr: Multiaddr = text
        .trim()
        .parse()
        .map_err(|e| format!("not an address: {e}"))?;
    if strand_transport::relay::reaches_relay_at(&addr) {
        return Ok(addr);
    }
    Err(format!(
        "a relay cannot be reached at {addr}: {} (here without the /p2p/ part: the relay adds its own id)",
        strand_transport::relay::RELAY_ADDRESS_FORMS
    ))
}

/// Where `strand relay` and `--relay-for-contacts` listen by default.
pub fn default_relay_listen() -> Vec<Multiaddr> {
    strand_transport::listen_everywhere(4001)
}

/// Where hole punching listens when only `--listen` was given: on the
/// same interfaces and protocols, at ports of its own (the LAN holds the
/// ports given).
pub fn punch_listen_beside(listen: &[Multiaddr]) -> Vec<Multiaddr> {
    use strand_transport::multiaddr::Protocol;
    let mut out: Vec<Multiaddr> = Vec::new();
    for a in listen {
        let beside: Multiaddr = a
            .iter()
            .map(|p| match p {
                Protocol::Tcp(_) => Protocol::Tcp(0),
                Protocol::Udp(_) => Protocol::Udp(0),
                other => other,
            })
            .collect();
        if !out.contains(&beside) {
            out.push(beside);
        }
    }
    out
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
        let relay = (!self.no_relay).then(|| {
            let mut relay = RelaySettings {
                hole_punch: !self.no_hole_punch,
                ..RelaySettings::default()
            };
            if !self.punch_listen.is_empty() {
                relay.listen = self.punch_listen.clone();
            } else if !self.listen.is_empty() && !self.no_lan {
                relay.listen = punch_listen_beside(&self.listen);
            }
            if self.no_hole_punch {
                relay.listen.clear();
            }
            if self.relay_for_contacts {
                relay.serve = Some(ServeSettings {
                    listen: if self.relay_listen.is_empty() {
                        default_relay_listen()
                    } else {
                        self.relay_listen.clone()
                    },
                    announce: self.relay_announce.clone(),
                });
            }
            relay
        });
        let mut budgets = crate::Budgets::default();
        if let Some(mib) = self.budget_per_contact {
            budgets.per_contact = mib << 20;
        }
        if let Some(mib) = self.budget_per_member {
            budgets.per_member = mib << 20;
        }
        if let Some(mib) = self.budget_per_group {
            budgets.per_group = mib << 20;
        }
        let ble = (!self.no_ble).then(|| BleSettings {
            adapter: self.ble_adapter.clone(),
            l2cap: !self.ble_gatt_only,
        });
        let mut carry = crate::CarrySettings::default();
        if let Some(mib) = self.carry_budget {
            carry.budget = mib << 20;
        }
        NodeConfig {
            lan,
            relay,
            ble,
            peers: self.peer.clone(),
            budgets,
            carry,
            ..NodeConfig::default()
        }
    }
}
