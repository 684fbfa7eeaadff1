//! The network screen: transports, contacts seen, traffic, manual dialling.

use std::rc::Rc;

use slint::{ComponentHandle, ModelRc, VecModel};
use strand_node::Status;
use strand_transport::Multiaddr;

use crate::backend::{Backend, Core};
use crate::format::{self, Clock};
use crate::{AppWindow, NetworkAdapter, PeerItem, TransportItem};

pub(crate) fn connect(ui: &AppWindow, backend: &Backend) {
    let b = backend.clone();
    let weak = ui.as_weak();
    ui.global::<NetworkAdapter>().on_dial(move |text| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<NetworkAdapter>();
        let text = text.trim().to_owned();
        match text.parse::<Multiaddr>() {
            Ok(addr) => {
                a.set_dial_ok(true);
                a.set_dial_result(
                    format!("Dialling {addr} (again every few seconds until a contact answers).")
                        .into(),
                );
                b.job(move |core| {
                    if let Some(node) = core.node.clone() {
                        core.in_runtime(|| node.add_peer(addr));
                    }
                });
            }
            Err(e) => {
                a.set_dial_ok(false);
                a.set_dial_result(
                    format!("Not an address ({e}). It looks like /ip4/192.168.1.20/tcp/40123.")
                        .into(),
                );
            }
        }
    });
}

/// The node's status; `None` while locked.
pub(crate) fn status(core: &Core) -> Option<Status> {
    let node = core.node.clone()?;
    core.block_on(async move { node.status().await })
}

/// Re-reads the node's status and shows it.
pub(crate) fn refresh(core: &mut Core) {
    if let Some(status) = status(core) {
        show(core, status);
    }
}

/// Shows `status` on the network screen.
pub(crate) fn show(core: &mut Core, status: Status) {
    let lan = status.transports.iter().find(|t| t.kind == "LAN");
    let mdns = lan.is_some_and(|t| t.discovery);
    let clock = Clock::now();
    let addrs: Vec<String> = lan.map(|t| t.addresses.clone()).unwrap_or_default();
    let lan_detail = if lan.is_none() {
        "off".to_owned()
    } else if addrs.is_empty() {
        "not listening".to_owned()
    } else {
        // The libp2p identity neighbours see: a new one every 15 minutes.
        let id = lan
            .and_then(|t| t.ephemeral_id.as_deref())
            .map(|id| {
                let tail = &id[id.len().saturating_sub(6)..];
                format!("  ·  identity …{tail}, renewed every 15 min")
            })
            .unwrap_or_default();
        format!("{}{id}", addrs.join("  "))
    };
    let transports = vec![
        TransportItem {
            name: "LAN".into(),
            state: if addrs.is_empty() {
                "down"
            } else {
                "listening"
            }
            .into(),
            detail: lan_detail.into(),
            up: !addrs.is_empty(),
        },
        TransportItem {
            name: "mDNS".into(),
            state: if mdns { "on" } else { "off" }.into(),
            detail: if mdns {
                "finds contacts on this network by multicast"
            } else {
                "off: dial addresses below"
            }
            .into(),
            up: mdns,
        },
        TransportItem {
            name: "Bluetooth".into(),
            state: "not available".into(),
            detail: "not built into this version of Strand yet".into(),
            up: false,
        },
        TransportItem {
            name: "Relay".into(),
            state: "not available".into(),
            detail: "not built into this version of Strand yet".into(),
            up: false,
        },
    ];
    let peers: Vec<PeerItem> = status
        .seen
        .iter()
        .map(|s| PeerItem {
            name: s.contact.clone().into(),
            link: format::link_name(&s.link).into(),
            seen: if s.connected {
                "connected now".into()
            } else {
                format!("seen {}", clock.ago(s.at)).into()
            },
            online: s.connected,
        })
        .collect();
    let (links, sent, received, messages) = (
        status.links.to_string(),
        format::bytes(status.bytes_sent),
        format::bytes(status.bytes_received),
        status.messages.to_string(),
    );
    core.ui(move |ui| {
        let a = ui.global::<NetworkAdapter>();
        a.set_transports(ModelRc::from(Rc::new(VecModel::from(transports))));
        a.set_peers(ModelRc::from(Rc::new(VecModel::from(peers))));
        a.set_links(links.into());
        a.set_bytes_sent(sent.into());
        a.set_bytes_received(received.into());
        a.set_messages(messages.into());
    });
}
