//! What the CLI prints: messages, files, times, relays, status. Everything
//! another person wrote goes through [`crate::display`].

use crate::display;
use crate::runtime::api::{FileView, GroupMessageView, GroupView, MessageView};
use crate::{RelayStatus, Status};

/// Prints `v` as pretty JSON, nothing in it able to drive or fool a
/// terminal ([`display::json_escaped`]).
pub(crate) fn json(v: &impl serde::Serialize) -> super::Result<()> {
    let json = serde_json::to_string_pretty(v).map_err(anyhow::Error::from)?;
    println!("{}", display::json_escaped(&json));
    Ok(())
}

/// Prints `v` as JSON on one line, as [`json`] does.
pub(crate) fn json_line(v: &impl serde::Serialize) -> super::Result<()> {
    let json = serde_json::to_string(v).map_err(anyhow::Error::from)?;
    println!("{}", display::json_escaped(&json));
    Ok(())
}

/// Prints a message: one line (more if its text has line breaks, each
/// marked as a continuation), or its JSON.
pub(crate) fn print_message(m: &MessageView, json: bool) -> super::Result<()> {
    if json {
        json_line(m)?;
    } else {
        let state = m
            .delivery
            .as_deref()
            .map(|d| format!("  [{d}]"))
            .unwrap_or_default();
        let skew = skew_note(m);
        let expires = m
            .expires
            .map(|e| format!("  (disappears {})", format_time(e)))
            .unwrap_or_default();
        let text = match &m.file {
            Some(f) => file_line(f, &m.id),
            None => display::lines(&m.text, ""),
        };
        println!(
            "{} {}: {text}{state}{skew}{expires}",
            format_time(m.shown),
            display::one_line(&m.from),
        );
    }
    Ok(())
}

/// Prints a group's text with its author (marked unverified when the name
/// is not the user's own for them): one line, more if its text has line
/// breaks, or its JSON on one line, as [`print_message`] does.
pub(crate) fn print_group_message(m: &GroupMessageView, json: bool) -> super::Result<()> {
    if json {
        return json_line(m);
    }
    let from = display::one_line(&m.message.from);
    let who = if m.verified {
        from
    } else {
        format!("{from} (unverified)")
    };
    let expires = m
        .message
        .expires
        .map(|e| format!("  (disappears {})", format_time(e)))
        .unwrap_or_default();
    let text = match &m.message.file {
        Some(f) => file_line(f, &m.message.id),
        None => display::lines(&m.message.text, ""),
    };
    let late = if m.late {
        "  (written after they left the group; it arrived late)"
    } else {
        ""
    };
    let skew = skew_note(&m.message);
    println!(
        "{}  {who}: {text}{skew}{expires}{late}",
        format_time(m.message.shown)
    );
    Ok(())
}

/// "  (dated … by its author: … before it arrived)" for a message its
/// author dated more than [`crate::SKEW_SHOWN`] before it arrived, else
/// nothing.
pub(crate) fn skew_note(m: &MessageView) -> String {
    match m.received {
        Some(r) if r.saturating_sub(m.time) > crate::SKEW_SHOWN => format!(
            "  (dated {} by its author: {} before it arrived)",
            format_time(m.time),
            format_span(r - m.time)
        ),
        _ => String::new(),
    }
}

/// "[file] notes.pdf, 2.1 MB, 3 of 9 parts here" or "… ready: strand save 1a2b3c4d DIR".
pub(crate) fn file_line(f: &FileView, id: &str) -> String {
    let size = if f.size >= 1 << 20 {
        format!("{:.1} MiB", f.size as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", f.size as f64 / 1024.0)
    };
    if f.have == f.total {
        format!(
            "[file] {}, {size}, ready: strand save {} DIR",
            display::one_line(&f.name),
            &id[..16.min(id.len())]
        )
    } else {
        format!(
            "[file] {}, {size}, {} of {} parts here",
            display::one_line(&f.name),
            f.have,
            f.total
        )
    }
}

/// A span of time, roughly: "3 days", "5 hours", "20 minutes".
pub(crate) fn format_span(ms: u64) -> String {
    let minutes = ms / 60_000;
    let (n, unit) = match minutes {
        m if m >= 2 * 24 * 60 => (m / (24 * 60), "days"),
        m if m >= 2 * 60 => (m / 60, "hours"),
        m => (m, "minutes"),
    };
    format!("{n} {unit}")
}

/// `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}")
}

pub(crate) fn print_relay(r: &RelayStatus) {
    println!("{}", relay_line(r));
}

/// A relay as `strand relay list` and `strand status` show it. A
/// contact's offer is the contact's text (a DNS name in it can hold
/// anything), and so may the error be: both are shown made safe.
fn relay_line(r: &RelayStatus) -> String {
    let why = match (&r.error, r.retry_in) {
        (Some(e), Some(s)) => format!(" — {} (retry in {s} s)", display::one_line(e)),
        (Some(e), None) => format!(" — {}", display::one_line(e)),
        _ => String::new(),
    };
    let source = if r.source == "yours" {
        String::new()
    } else {
        format!(" ({})", r.source)
    };
    format!(
        "  {}{source}: {}{why}",
        display::one_line(&r.address),
        r.state
    )
}

/// A group as `strand group list` shows it: its name is its creator's
/// choice, shown made safe.
pub(crate) fn group_line(g: &GroupView) -> String {
    let mut notes = Vec::new();
    if g.unread > 0 {
        notes.push(format!("{} unread", g.unread));
    }
    if g.admin {
        notes.push("admin".into());
    }
    if !g.member {
        notes.push("you are no longer a member".into());
    } else if let Some(why) = &g.blocked {
        notes.push(format!("cannot write now: {why}"));
    }
    format!(
        "{:<24} {}  {} members  {}",
        display::one_line(&g.name),
        g.id,
        g.members,
        notes.join(", ")
    )
}

/// What an address a relay transport listens on is: a circuit through
/// a relay, or a direct listener for hole punching.
fn relay_address_label(address: &str) -> &'static str {
    if address.contains("/p2p-circuit") {
        "relayed"
    } else {
        "hole punching"
    }
}

/// What `strand run` listens on, one labelled line per address: the LAN
/// first (the address another device gives `--peer`), then hole punching
/// and relayed addresses, then the relay it runs for contacts.
pub(crate) fn listening(s: &Status) {
    for line in listening_lines(s) {
        println!("{line}");
    }
}

/// The lines [`listening`] prints.
fn listening_lines(s: &Status) -> Vec<String> {
    let mut out = Vec::new();
    let lan: Vec<&String> = s
        .transports
        .iter()
        .filter(|t| t.kind == "LAN")
        .flat_map(|t| &t.addresses)
        .collect();
    for a in &lan {
        out.push(format!("LAN: {a}"));
    }
    // A LAN that could listen nowhere at the start runs quiet and retries.
    // Not "LAN: …", which labels an address: scripts (and tests) take
    // what follows it for one to give `--peer`.
    for t in s
        .transports
        .iter()
        .filter(|t| t.kind == "LAN" && t.addresses.is_empty())
    {
        out.push(format!("LAN {}", t.not_listening_note()));
    }
    for t in s.transports.iter().filter(|t| t.kind == "relay") {
        for a in &t.addresses {
            out.push(format!("{}: {a}", relay_address_label(a)));
        }
    }
    if let Some(serving) = &s.serving {
        for a in &serving.addresses {
            out.push(format!("relay for contacts: {a}"));
        }
    }
    if let Some(first) = lan.first() {
        out.push(format!(
            "Another device on this network can dial this one: strand run --peer {first}"
        ));
    }
    out
}

/// What an address others confirmed (AutoNAT) is, as `strand status`
/// says it: only an address outside this machine and its LAN is public.
fn external_label(address: &str) -> &'static str {
    if address.contains("/p2p-circuit") {
        return "relayed address (through a relay)";
    }
    if crate::is_public_address(address) {
        "public address (confirmed)"
    } else {
        "address others reached (not public)"
    }
}

/// `strand status` for a device: a running node's transports, relays
/// and contacts seen, or what a profile with no node running has.
pub(crate) fn status(s: &Status) {
    if let Some(warning) = s.name_warning() {
        println!("{warning}");
    }
    let name = crate::display::one_line(&s.name);
    if !s.running {
        println!("{name} — profile {} — node not running", s.profile);
        println!("  {} contacts; start syncing with `strand run`", s.contacts);
        for r in &s.relays {
            println!("  relay {r} (reserved on when the node runs)");
        }
        return;
    }
    println!("{name} — profile {} — node running", s.profile);
    for t in &s.transports {
        let discovery = if t.discovery { ", discovery on" } else { "" };
        let addresses = if t.addresses.is_empty() {
            t.not_listening_note().to_owned()
        } else if t.kind == "relay" {
            t.addresses
                .iter()
                .map(|a| format!("{a} ({})", relay_address_label(a)))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            t.addresses.join(" ")
        };
        println!("  transport {}: {addresses}{discovery}", t.kind);
    }
    if let Some(relay) = s.transports.iter().find(|t| t.kind == "relay") {
        if let Some(id) = &relay.ephemeral_id {
            println!("  relay identity this epoch: {id}");
        }
        for r in &relay.relays {
            print_relay(r);
        }
        if relay.relays.is_empty() {
            println!("  no relays: add one with `strand relay add MULTIADDR`");
        }
        for e in &relay.external {
            println!("  {}: {e}", external_label(e));
        }
    }
    for b in s.transports.iter().filter_map(|t| t.bluetooth.as_ref()) {
        println!(
            "  Bluetooth LE on {} (scanning: {}): {} Strand devices heard, {} links, bytes sent {}, received {}{}",
            b.adapter,
            s.bluetooth_scan,
            b.devices_seen,
            b.links,
            b.bytes_sent,
            b.bytes_received,
            b.psm
                .map(|p| format!(", L2CAP channel {p:#x}"))
                .unwrap_or_default()
        );
    }
    if let Some(reason) = &s.bluetooth_off {
        println!("  Bluetooth off: {reason}");
    }
    for p in &s.peers {
        println!("  dialling {p} (again every few seconds while no link to it is up)");
    }
    if s.woke > 0 {
        println!(
            "  woke from sleep {} time{} (links renewed each time)",
            s.woke,
            if s.woke == 1 { "" } else { "s" }
        );
    }
    for p in &s.panics {
        println!(
            "  a part of the node failed: {p} (see the log; restart the node to start it again)"
        );
    }
    if let Some(serving) = &s.serving {
        println!(
            "  relaying for contacts at {}: {} reservations, {} circuits",
            serving.addresses.join(" "),
            serving.reservations,
            serving.circuits
        );
    }
    println!(
        "  sessions: {}, links in handshake: {}, bytes sent {}, received {}",
        s.sessions,
        s.links - s.sessions,
        s.bytes_sent,
        s.bytes_received
    );
    for c in &s.seen {
        let how = if c.connected {
            "connected"
        } else {
            "last seen"
        };
        println!(
            "  {:<20} {how} over {} at {}",
            crate::display::one_line(&c.contact),
            c.link,
            format_time(c.at)
        );
    }
    if s.seen.is_empty() {
        println!("  no contact seen yet");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `strand run` printed a LAN that started quiet as "LAN: not
    /// listening (…)", with the label of an address, so whatever reads
    /// "LAN: ADDRESS" (a script passing it to `--peer`, the tests) took
    /// the words for an address. It prints "LAN not listening (…)" now;
    /// a LAN that listens is printed as before.
    #[test]
    fn a_quiet_lan_is_not_printed_as_an_address() {
        let status = |addresses: &[&str]| -> Status {
            serde_json::from_value(serde_json::json!({
                "name": "ann",
                "profile": "/profiles/ann",
                "transports": [{
                    "kind": "LAN",
                    "addresses": addresses,
                    "discovery": true,
                    "ephemeral_id": null,
                }],
                "seen": [],
                "links": 0,
                "sessions": 0,
                "bytes_sent": 0,
                "bytes_received": 0,
                "messages": 0,
            }))
            .unwrap()
        };
        assert_eq!(
            listening_lines(&status(&[])),
            ["LAN not listening (no address could be bound; retrying)"]
        );
        let listening = listening_lines(&status(&["/ip4/192.168.1.20/tcp/4001"]));
        assert_eq!(listening[0], "LAN: /ip4/192.168.1.20/tcp/4001");
    }

    /// What others chose (a group's name, a contact's relay offer and the
    /// error it gives) reaches the terminal with no control, invisible or
    /// direction-changing character in it.
    #[test]
    fn group_names_and_relay_offers_are_shown_safely() {
        let g = GroupView {
            name: "Family\u{202e}lanoisseforp".into(),
            id: "0123abcd".into(),
            key: "0123abcd".repeat(8),
            alike: false,
            members: 3,
            member: true,
            blocked: None,
            admin: false,
            unread: 0,
        };
        let line = group_line(&g);
        assert!(line.starts_with("Family<U+202E>lanoisseforp"), "{line}");
        let r = RelayStatus {
            address: "/dns/\u{1b}]0;x\u{7}h/tcp/1".into(),
            state: "failing".into(),
            error: Some("no such host \u{1b}]0;x\u{7}h\nstrand: fake".into()),
            retry_in: Some(5),
            source: "contact".into(),
        };
        let line = relay_line(&r);
        assert!(!line.contains(['\u{1b}', '\u{7}', '\n']), "{line:?}");
        assert!(
            line.contains("/dns/<U+001B>]0;x<U+0007>h/tcp/1 (contact): failing"),
            "{line}"
        );
    }
}
