//! The network screen: transports (every address in full), relays and the
//! reservations on them, contacts seen and over what link, traffic, manual
//! dialling.

use std::rc::Rc;

use slint::{ComponentHandle, ModelRc, SharedString, VecModel};
use strand_node::display::one_line;
use strand_node::runtime::api::{Failure, MailboxAction, Reply, Request};
use strand_node::Status;
use strand_transport::Multiaddr;

use crate::backend::{Backend, Core};
use crate::format::{self, Clock};
use crate::{AppWindow, NetworkAdapter, PeerItem, RelayItem, TransportItem};

pub(crate) fn connect(ui: &AppWindow, backend: &Backend) {
    let (b, weak) = (backend.clone(), ui.as_weak());
    ui.global::<NetworkAdapter>()
        .on_add_relay(move |text| change_relay(&b, weak.clone(), text.to_string(), true));
    let (b, weak) = (backend.clone(), ui.as_weak());
    ui.global::<NetworkAdapter>()
        .on_remove_relay(move |text| change_relay(&b, weak.clone(), text.to_string(), false));
    let b = backend.clone();
    ui.global::<NetworkAdapter>().on_pair_mailbox(move |code| {
        let code = code.trim().to_owned();
        b.job(move |core| {
            let Some(done) = core.call(Request::Mailbox {
                action: Some(MailboxAction::Add { code }),
            }) else {
                return;
            };
            let (ok, text) = match done {
                Ok(Reply::Mailbox(view)) => (
                    true,
                    format!(
                        "Paired (your contact “{}”). Your contacts learn it the next time you sync with them.",
                        one_line(&view.mailbox.unwrap_or_default())
                    ),
                ),
                Ok(_) => return,
                Err(e) => (false, format!("Not paired: {e}")),
            };
            let status = mailbox_text(core);
            core.ui(move |ui| {
                let a = ui.global::<NetworkAdapter>();
                a.set_mailbox_ok(ok);
                a.set_mailbox_result(text.into());
                a.set_mailbox_status(status.into());
            });
        });
    });
    let b = backend.clone();
    ui.global::<NetworkAdapter>().on_set_carrying(move |on| {
        b.job(move |core| {
            let Some(done) = core.call(Request::Carry { set: Some(on) }) else {
                return;
            };
            let (on, text) = match done {
                Ok(Reply::Carry(s)) => (s.carrying, carry_text(&s)),
                Ok(_) => return,
                Err(e) => (!on, format!("Not changed: {e}")),
            };
            core.ui(move |ui| {
                let a = ui.global::<NetworkAdapter>();
                a.set_carrying(on);
                a.set_carry_status(text.into());
            });
        });
    });
    let b = backend.clone();
    ui.global::<NetworkAdapter>().on_import_bundle(move |path| {
        let path = super::absolute(path.trim());
        b.job(move |core| {
            let Some(done) = core.call(Request::Import { path, task: None }) else {
                return;
            };
            let (ok, text) = match done {
                Ok(Reply::Imported(i)) => {
                    let text = i.summary();
                    match i.incomplete {
                        Some(why) => (
                            false,
                            format!("{text} It stopped before the end ({why}): import it again to finish."),
                        ),
                        None => (true, text),
                    }
                }
                Ok(_) => return,
                Err(e) => (false, format!("Not imported: {e}")),
            };
            core.ui(move |ui| {
                let a = ui.global::<NetworkAdapter>();
                a.set_import_ok(ok);
                a.set_import_result(text.into());
                if ok {
                    a.set_importing(false);
                }
            });
        });
    });
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
                    let address = addr.to_string();
                    if let Some(Err(e)) = core.call(Request::AddPeer { address }) {
                        tracing::warn!("dialling {addr}: {e}");
                        // Said where "Dialling …" was (too many addresses
                        // dialled already, say).
                        let text = format!("Not dialled: {e}");
                        core.ui(move |ui| {
                            let a = ui.global::<NetworkAdapter>();
                            a.set_dial_ok(false);
                            a.set_dial_result(text.into());
                        });
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

/// What the screen's actions said (a relay added, a mailbox paired, a
/// bundle imported, an address dialled): none of it stays for the next
/// profile (at lock or wipe).
pub(crate) fn clear_results(ui: &AppWindow) {
    let a = ui.global::<NetworkAdapter>();
    a.set_dial_ok(false);
    a.set_dial_result("".into());
    a.set_relay_ok(false);
    a.set_relay_result("".into());
    a.set_import_ok(false);
    a.set_import_result("".into());
    a.set_importing(false);
    a.set_mailbox_ok(false);
    a.set_mailbox_result("".into());
}

/// Adds or removes a relay, then shows the result and the new list.
fn change_relay(backend: &Backend, weak: slint::Weak<AppWindow>, address: String, add: bool) {
    let address = address.trim().to_owned();
    if address.is_empty() {
        return;
    }
    backend.job(move |core| {
        let request = if add {
            Request::RelayAdd {
                address: address.clone(),
            }
        } else {
            Request::RelayRemove {
                address: address.clone(),
            }
        };
        let Some(result) = core.call(request) else {
            return;
        };
        let (ok, text) = match result {
            Ok(Reply::Relay { address }) if add => (
                true,
                format!("Added {address}. Your contacts learn it the next time you sync."),
            ),
            Ok(Reply::Relay { address }) => (true, format!("Removed {address}.")),
            Ok(_) => return,
            Err(e) => (false, e.message),
        };
        // The invite carries the relays: show the new one.
        super::add_contact::refresh_invite(core);
        let _ = weak.upgrade_in_event_loop(move |ui| {
            let a = ui.global::<NetworkAdapter>();
            a.set_relay_ok(ok);
            a.set_relay_result(text.into());
        });
        refresh(core);
    });
}

/// The node's status; `None` while locked, or if it could not be had.
/// Why not is said on the window's notice line (and in the log) by
/// [`not_refreshed`]: a node this window is attached to that does not
/// answer (stopped with Ctrl-Z, or stuck) is said so, naming its
/// process, at the next refresh. It is not taken for the node gone: that
/// is when its events end ([`super::node_gone`]), which a stopped node's
/// do not, and one let go on again is answered where it was.
pub(crate) fn status(core: &mut Core) -> Option<Status> {
    match core.call(Request::Status)? {
        Ok(Reply::Status(status)) => Some(*status),
        Ok(_) => None,
        Err(e) => {
            not_refreshed(core, &e);
            None
        }
    }
}

/// Says on the window's notice line that the screens could not be
/// refreshed, and why (`e`: a read the node did not answer in time,
/// naming its process, or failed), and logs it, once while it stays the
/// same: a read that keeps failing is said once, not at every tick. The
/// notice goes once a refresh reads the status and the lists again
/// ([`refreshed`]). The status and the lists of the periodic refresh say
/// so alike: a node stopped between the two is said so by the list's
/// read, which gives up after
/// [`strand_node::runtime::control::ANSWER_WITHIN`] as the status does.
pub(crate) fn not_refreshed(core: &mut Core, e: &Failure) {
    let said = format!("Not refreshed: {}", e.message);
    if core.status_failure.as_ref() != Some(&said) {
        tracing::warn!("refreshing: {e}");
        let shown = said.clone();
        core.ui(move |ui| ui.global::<crate::AppAdapter>().set_notice(shown.into()));
        core.status_failure = Some(said);
    }
}

/// A refresh read the node's status and the lists: the notice that one
/// was not ([`not_refreshed`]) goes, unless something else was said
/// since. Not as soon as the status is answered: a list read that keeps
/// failing while the status is answered would then be said again, and
/// logged, at every tick, its notice taken down and put up again each
/// time.
pub(crate) fn refreshed(core: &mut Core) {
    if let Some(said) = core.status_failure.take() {
        core.ui(move |ui| {
            let app = ui.global::<crate::AppAdapter>();
            if app.get_notice() == said {
                app.set_notice(SharedString::new());
            }
        });
    }
}

/// Re-reads the node's status and shows it.
pub(crate) fn refresh(core: &mut Core) {
    if let Some(status) = status(core) {
        show(core, status);
    }
}

/// Characters per line of a long address (it breaks at a `/`).
const ADDRESS_LINE: usize = 72;

/// A transport's row, before it becomes a [`TransportItem`] on the UI
/// thread (models are not `Send`).
struct Row {
    name: String,
    state: String,
    detail: String,
    addresses: Vec<String>,
    up: bool,
}

impl Row {
    fn item(self) -> TransportItem {
        let addresses: Vec<SharedString> = self
            .addresses
            .iter()
            .map(|a| format::address_lines(a, ADDRESS_LINE).into())
            .collect();
        TransportItem {
            name: self.name.into(),
            state: self.state.into(),
            detail: self.detail.into(),
            addresses: ModelRc::from(Rc::new(VecModel::from(addresses))),
            up: self.up,
        }
    }
}

/// What the Network screen says of panics in the node (or this app): a
/// part of it stopped, and the way back.
pub(crate) fn failures_text(panics: &[String]) -> String {
    match panics {
        [] => String::new(),
        [.., last] => format!(
            "{} of Strand stopped after an internal error (a bug: please report it with the log). The last: {}. Syncing may be incomplete until Strand restarts.",
            if panics.len() == 1 {
                "A part".to_owned()
            } else {
                format!("{} parts", panics.len())
            },
            strand_node::display::one_line(last)
        ),
    }
}

/// Two transport rows show the same (their address lists are models of
/// their own, so `==` compares which objects they are).
fn same_transport(a: &TransportItem, b: &TransportItem) -> bool {
    use slint::Model;
    (&a.name, &a.state, &a.detail, a.up) == (&b.name, &b.state, &b.detail, b.up)
        && a.addresses.iter().eq(b.addresses.iter())
}

/// Shows `status` on the network screen.
pub(crate) fn show(core: &mut Core, status: Status) {
    let lan = status.transports.iter().find(|t| t.kind == "LAN");
    let mdns = lan.is_some_and(|t| t.discovery);
    let clock = Clock::now();
    let addrs: Vec<String> = lan.map(|t| t.addresses.clone()).unwrap_or_default();
    let lan_detail = match lan {
        None => "off".to_owned(),
        Some(t) if addrs.is_empty() => t.not_listening_note().to_owned(),
        Some(t) => {
            // The libp2p identity neighbours see: a new one every 15 minutes.
            let id = t
                .ephemeral_id
                .as_deref()
                .map(|id| {
                    let tail = &id[id.len().saturating_sub(6)..];
                    format!("  ·  identity …{tail}, renewed every 15 min")
                })
                .unwrap_or_default();
            id.trim_start_matches("  ·  ").to_owned()
        }
    };
    let relay = status.transports.iter().find(|t| t.kind == "relay");
    let relay_row = match relay {
        None => Row {
            name: "Relay".into(),
            state: "off".into(),
            detail: "contacts beyond this network are not reached".into(),
            addresses: Vec::new(),
            up: false,
        },
        Some(t) => {
            let reserved = t.relays.iter().filter(|r| r.state == "reserved").count();
            let state = if t.relays.is_empty() {
                "no relays".to_owned()
            } else {
                format!("reserved {reserved} of {}", t.relays.len())
            };
            let id = t
                .ephemeral_id
                .as_deref()
                .map(|id| {
                    let tail = &id[id.len().saturating_sub(6)..];
                    format!("identity …{tail}, renewed every hour")
                })
                .unwrap_or_default();
            // Where contacts reach this device: its circuit addresses, and
            // public addresses others confirmed.
            let mut shown: Vec<String> = t
                .addresses
                .iter()
                .filter(|a| a.contains("/p2p-circuit"))
                .cloned()
                .collect();
            shown.extend(
                t.external
                    .iter()
                    .filter(|a| !a.contains("/p2p-circuit"))
                    .map(|a| {
                        if strand_node::is_public_address(a) {
                            format!("public: {a}")
                        } else {
                            format!("reached, not public: {a}")
                        }
                    }),
            );
            Row {
                name: "Relay".into(),
                state,
                detail: id,
                addresses: shown,
                up: reserved > 0,
            }
        }
    };
    let relays: Vec<RelayItem> = relay
        .map(|t| t.relays.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let from = match r.source.as_str() {
                "contact" => "run by a contact",
                "this node" => "run by this device for your contacts",
                _ => "",
            };
            let error = match (&r.error, r.retry_in) {
                (Some(e), Some(s)) => format!("{} (trying again in {s} s)", one_line(e)),
                (Some(e), None) => one_line(e),
                _ => String::new(),
            };
            let detail = [from, error.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" · ");
            RelayItem {
                // A contact's offer: a DNS name in it can hold anything.
                label: format::address_lines(&one_line(&r.address), ADDRESS_LINE).into(),
                address: r.address.clone().into(),
                state: r.state.clone().into(),
                detail: detail.into(),
                ok: r.state == "reserved",
                removable: r.source == "yours",
            }
        })
        .collect();
    let lan_addresses = addrs.clone();
    let transports = vec![
        Row {
            name: "LAN".into(),
            state: if addrs.is_empty() {
                "down"
            } else {
                "listening"
            }
            .into(),
            detail: lan_detail,
            addresses: lan_addresses,
            up: !addrs.is_empty(),
        },
        Row {
            name: "mDNS".into(),
            state: if mdns { "on" } else { "off" }.into(),
            detail: if mdns {
                "finds contacts on this network by multicast"
            } else {
                "off: dial addresses below"
            }
            .into(),
            addresses: Vec::new(),
            up: mdns,
        },
        relay_row,
        bluetooth_row(&status),
    ];
    let peers: Vec<PeerItem> = status
        .seen
        .iter()
        .map(|s| PeerItem {
            name: strand_node::display::one_line(&s.contact).into(),
            link: format::link_name(&s.link).into(),
            seen: if s.connected {
                "connected now".into()
            } else {
                format!("seen {}", clock.ago(s.at)).into()
            },
            online: s.connected,
        })
        .collect();
    let carry = match core.call(Request::Carry { set: None }) {
        Some(Ok(Reply::Carry(c))) => Some(c),
        _ => None,
    };
    let mailbox = mailbox_text(core);
    let (links, sent, received, messages) = (
        status.links.to_string(),
        format::bytes(status.bytes_sent),
        format::bytes(status.bytes_received),
        status.messages.to_string(),
    );
    let failures = failures_text(&status.panics);
    core.ui(move |ui| {
        let a = ui.global::<NetworkAdapter>();
        a.set_failures(failures.into());
        let transports: Vec<TransportItem> = transports.into_iter().map(Row::item).collect();
        // In place: this runs every few seconds.
        super::set_vec_by(a.get_transports(), transports, same_transport, |m| {
            a.set_transports(m)
        });
        super::set_vec(a.get_relays(), relays, |m| a.set_relays(m));
        super::set_vec(a.get_peers(), peers, |m| a.set_peers(m));
        a.set_links(links.into());
        a.set_bytes_sent(sent.into());
        a.set_bytes_received(received.into());
        a.set_messages(messages.into());
        a.set_mailbox_status(mailbox.into());
        if let Some(c) = carry {
            a.set_carrying(c.carrying);
            a.set_carry_status(carry_text(&c).into());
        }
    });
}

/// The mailbox pairing, in a line.
fn mailbox_text(core: &Core) -> String {
    match core.call(Request::Mailbox { action: None }) {
        Some(Ok(Reply::Mailbox(v))) => match (v.owner, v.mailbox) {
            (Some(owner), _) => format!(
                "This device is the mailbox of {}.",
                strand_node::display::one_line(&owner)
            ),
            (None, Some(name)) => format!(
                "Your mailbox is paired (your contact “{}”): messages for you wait there while you are away.",
                strand_node::display::one_line(&name)
            ),
            (None, None) => "A device you own (an old laptop at home) can hold messages for you while you are away, sealed so it cannot read them. On it: `strand init`, then `strand mailbox init` with your invite code; paste here the code it prints.".into(),
        },
        Some(Err(e)) => format!("The mailbox could not be read: {e}"),
        Some(Ok(_)) | None => String::new(),
    }
}

/// What carrying looks like, in a line.
fn carry_text(s: &strand_node::CarryStatus) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if s.carrying || s.held > 0 {
        parts.push(format!(
            "Holding {} ({} of {})",
            plural(s.held as u64, "message", "messages"),
            format::bytes(s.held_bytes),
            format::bytes(s.budget)
        ));
    }
    parts.push(format!(
        "{} for you",
        plural(s.carriers as u64, "contact carries", "contacts carry")
    ));
    parts.push(format!(
        "{} on the way through them",
        plural(s.spreading as u64, "of your messages", "of your messages")
    ));
    if let Some(until) = s.held_back_until {
        parts.push(format!(
            "{} back until about {} while {} may still go directly",
            plural(s.held_back as u64, "message held", "messages held"),
            Clock::now().time(until),
            if s.held_back == 1 { "it" } else { "they" }
        ));
    }
    if s.waiting > 0 {
        parts.push(format!(
            "{} for a carrier",
            plural(s.waiting as u64, "message waiting", "messages waiting")
        ));
    }
    parts.push(format!(
        "{} reached you this way",
        plural(s.opened, "message", "messages")
    ));
    parts.join(" · ")
}

/// The Bluetooth row: the adapter and what it carried, or why it is off.
fn bluetooth_row(status: &Status) -> Row {
    let ble = status.transports.iter().find_map(|t| t.bluetooth.as_ref());
    match (ble, &status.bluetooth_off) {
        (Some(b), _) => Row {
            name: "Bluetooth".into(),
            state: format!("on ({})", b.adapter),
            detail: format!(
                "{} Strand devices heard nearby · {} links · sent {}, received {}",
                b.devices_seen,
                b.links,
                format::bytes(b.bytes_sent),
                format::bytes(b.bytes_received)
            ),
            addresses: Vec::new(),
            up: true,
        },
        (None, Some(reason)) => Row {
            name: "Bluetooth".into(),
            state: "off".into(),
            detail: reason.clone(),
            addresses: Vec::new(),
            up: false,
        },
        (None, None) => Row {
            name: "Bluetooth".into(),
            state: "off".into(),
            detail: "turned off (--no-ble)".into(),
            addresses: Vec::new(),
            up: false,
        },
    }
}
