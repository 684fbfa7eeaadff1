//! Relay benchmarks: `cargo bench -p strand-node --bench relay`.
//!
//! Prints, each next to a baseline measured in the same run:
//!
//! 1. **Sync through a relay**: 10,000 messages of 1 KiB from one node to
//!    an empty one through a relay on loopback (`strand relay`'s server,
//!    in this process), messages per second from the session coming up to
//!    the last message stored; against the same over direct TCP on
//!    loopback. Target: the relay within 2× of direct.
//! 2. **Start → first message**: both nodes started (the relay already
//!    running) → a message written before the start delivered, through a
//!    relay; and with hole punching on, start → the session on the direct
//!    link, and a message over it; against the same over the LAN on
//!    loopback. Medians of 5. Target ≤ 2 s through the relay.
//! 3. **Relay server memory**: resident memory of a `strand relay` process
//!    holding 1,000 reservations and then 100 circuits (a stream open on
//!    each), against the same process idle.
//!
//! On loopback hole punching needs no NAT (the `relay::hole_punching…`
//! test punches through real NAT namespaces; timing there is the same).

#![allow(clippy::disallowed_methods)]

#[path = "common/process.rs"]
mod process;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::AsyncWriteExt;
use strand_node::{os_rng, KdfParams, Node, NodeConfig, NodeEvent, Profile, RelaySettings};
use strand_sync::{Kind, Message, WriteStore};
use strand_transport::relay::server::{RelayLimits, RelayServer, RelayServerConfig};
use strand_transport::relay::{circuit_addr, RelayConfig};
use strand_transport::{LanConfig, Multiaddr, Relays, ReservationState, Transport};

use process::{rss_kib, spawn_printing};

const BIN: &str = env!("CARGO_BIN_EXE_strand");
const PASS: &str = "bench passphrase";

fn lan() -> Option<LanConfig> {
    Some(LanConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        mdns: false,
        ..LanConfig::default()
    })
}

fn relays(hole_punch: bool) -> Option<RelaySettings> {
    Some(RelaySettings {
        hole_punch,
        listen: if hole_punch {
            vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]
        } else {
            Vec::new()
        },
        ..RelaySettings::default()
    })
}

/// Alice and Bob, with `relay` in their profiles (if any), contacts.
fn pair(root: &Path, relay: Option<&str>) -> (Profile, Profile) {
    let mut rng = os_rng();
    let kdf = KdfParams::insecure_for_tests();
    let a = Profile::create(&root.join("a"), "Alice", PASS, kdf, &mut rng).unwrap();
    let b = Profile::create(&root.join("b"), "Bob", PASS, kdf, &mut rng).unwrap();
    if let Some(r) = relay {
        a.add_relay(r, 0, &mut rng).unwrap();
        b.add_relay(r, 0, &mut rng).unwrap();
    }
    a.add_contact(&b.invite().unwrap(), "Bob", 0, &mut rng)
        .unwrap();
    b.add_contact(&a.invite().unwrap(), "Alice", 0, &mut rng)
        .unwrap();
    (a, b)
}

/// Stores `n` messages of 1 KiB from Alice to Bob.
fn fill(a: &Profile, n: usize) {
    let group = a.sync_contacts()[0].direct_group().clone();
    let mut rng = os_rng();
    let body = vec![b'x'; 1024];
    let t0 = strand_node::now() - n as u64 * 10;
    let mut store = a.store().unwrap();
    for i in 0..n {
        let m = Message::create(
            &a.identity(),
            &group,
            t0 + i as u64 * 10,
            Kind::TEXT,
            &body,
            &mut rng,
        )
        .unwrap();
        store.insert(&group.id, &m).unwrap();
    }
    store.commit().unwrap();
}

async fn relay_server(limits: RelayLimits) -> (RelayServer, String) {
    let server = RelayServer::start(RelayServerConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        announce: Vec::new(),
        key: [0x5a; 32],
        limits,
        only: None,
    })
    .await
    .unwrap();
    let addr = server.addresses().await[0].to_string();
    (server, addr)
}

/// Figure 1: from Bob's first session to `n` messages stored at Bob.
async fn bulk(n: usize, through_relay: bool) -> Duration {
    let tmp = tempfile::tempdir().unwrap();
    let server = if through_relay {
        Some(relay_server(RelayLimits::default()).await)
    } else {
        None
    };
    let (a, b) = pair(tmp.path(), server.as_ref().map(|s| s.1.as_str()));
    fill(&a, n);
    let (b_config, a_config) = if through_relay {
        let c = NodeConfig {
            lan: None,
            relay: relays(false),
            ..NodeConfig::default()
        };
        (c.clone(), c)
    } else {
        (
            NodeConfig {
                lan: lan(),
                ..NodeConfig::default()
            },
            NodeConfig {
                lan: lan(),
                ..NodeConfig::default()
            },
        )
    };
    let nb = Node::start(b, b_config).await.unwrap();
    let mut events = nb.subscribe();
    let mut a_config = a_config;
    if !through_relay {
        a_config.peers = nb.wait_listening(Duration::from_secs(5)).await;
    }
    let na = Node::start(a, a_config).await.unwrap();
    loop {
        if let Ok(NodeEvent::Connected { .. }) = events.recv().await {
            break;
        }
    }
    let start = Instant::now();
    while nb.profile().stored_messages().unwrap() < n as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(start.elapsed() < Duration::from_secs(600), "sync stalled");
    }
    let took = start.elapsed();
    na.shutdown().await;
    nb.shutdown().await;
    took
}

#[derive(Clone, Copy, PartialEq)]
enum Path2 {
    Lan,
    Relay,
    HolePunch,
}

/// Figure 2, once: both nodes start → Alice's queued message is at Bob
/// (and, with hole punching, → the session is on the direct link).
async fn first_message(path: Path2) -> (Duration, Option<Duration>) {
    let tmp = tempfile::tempdir().unwrap();
    let server = if path == Path2::Lan {
        None
    } else {
        Some(relay_server(RelayLimits::default()).await)
    };
    let (a, b) = pair(tmp.path(), server.as_ref().map(|s| s.1.as_str()));
    a.write("Bob", "first", strand_node::now(), &mut os_rng())
        .unwrap();
    let config = |peers: Vec<Multiaddr>| match path {
        Path2::Lan => NodeConfig {
            lan: lan(),
            peers,
            ..NodeConfig::default()
        },
        Path2::Relay => NodeConfig {
            lan: None,
            relay: relays(false),
            ..NodeConfig::default()
        },
        Path2::HolePunch => NodeConfig {
            lan: None,
            relay: relays(true),
            ..NodeConfig::default()
        },
    };
    let start = Instant::now();
    let nb = Node::start(b, config(Vec::new())).await.unwrap();
    let peers = if path == Path2::Lan {
        nb.wait_listening(Duration::from_secs(5)).await
    } else {
        Vec::new()
    };
    let na = Node::start(a, config(peers)).await.unwrap();
    while nb.profile().conversation("Alice").unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no first message"
        );
    }
    let first = start.elapsed();
    let mut direct = None;
    if path == Path2::HolePunch {
        loop {
            let s = na.status().await;
            if s.seen.first().is_some_and(|c| c.link == "hole-punched") {
                direct = Some(start.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(start.elapsed() < Duration::from_secs(60), "no hole punch");
        }
    }
    na.shutdown().await;
    nb.shutdown().await;
    (first, direct)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Figure 3: a `strand relay` process, idle, with 1,000 reservations, and
/// with 100 circuits more.
async fn relay_memory(reservations: usize, circuits: usize) {
    let mut command = Command::new(BIN);
    command.args([
        "relay",
        "--ephemeral",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--reservations-per-ip",
        "100000",
        "--circuits-per-ip",
        "100000",
        "--connections-per-ip",
        "100000",
    ]);
    let (mut child, line) = spawn_printing(command);
    let relay: Multiaddr = line
        .trim_start_matches("relay listening on ")
        .parse()
        .unwrap();
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid);

    let t = Instant::now();
    let mut clients = Vec::with_capacity(reservations);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    for i in 0..reservations {
        let mut config = RelayConfig::new(
            vec![relay.clone()],
            Arc::new(move |e: u64| {
                let mut k = [0u8; 32];
                k[..8].copy_from_slice(&(i as u64).to_be_bytes());
                k[8..16].copy_from_slice(&e.to_be_bytes());
                k
            }),
            Duration::from_secs(3600),
        );
        config.hole_punch = false;
        config.listen.clear();
        clients.push(Relays::start(config, tx.clone()).await.unwrap());
        if i % 50 == 49 {
            // A little at a time: the relay takes them as they come.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Incoming links (the circuits' far ends), kept open.
    let sink = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(e) = rx.recv().await {
            if let strand_transport::TransportEvent::Incoming(link) = e {
                held.push(link);
            }
        }
        held.len()
    });
    let mut reserved = 0;
    for _ in 0..1200 {
        reserved = 0;
        for c in clients.iter().step_by(1) {
            if c.relay_states()
                .await
                .first()
                .is_some_and(|r| r.state == ReservationState::Reserved)
            {
                reserved += 1;
            }
        }
        if reserved == reservations {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let reserving = t.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_reservations = rss_kib(pid);

    let mut links = Vec::new();
    for i in 0..circuits {
        let (from, to) = (&clients[2 * i], &clients[2 * i + 1]);
        let mut link = from
            .dial(&circuit_addr(&relay, to.local_peer_id()))
            .unwrap()
            .await
            .unwrap();
        link.stream.write_all(&[0u8; 64]).await.unwrap();
        link.stream.flush().await.unwrap();
        links.push(link);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_circuits = rss_kib(pid);

    println!(
        "3. `strand relay` resident memory (its own process; {reserved} reservations made in {:.1} s)",
        reserving.as_secs_f64()
    );
    println!(
        "   {:>9.1} MiB           with {reserved} reservations ({:.1} KiB each over idle)",
        with_reservations as f64 / 1024.0,
        (with_reservations.saturating_sub(idle)) as f64 / reserved.max(1) as f64
    );
    println!(
        "   {:>9.1} MiB           with {} circuits open as well ({:.1} KiB each)",
        with_circuits as f64 / 1024.0,
        links.len(),
        (with_circuits.saturating_sub(with_reservations)) as f64 / links.len().max(1) as f64
    );
    println!(
        "   {:>9.1} MiB           baseline: the same process idle\n",
        idle as f64 / 1024.0
    );
    drop(links);
    for c in &clients {
        c.shutdown().await;
    }
    drop(clients);
    drop(tx);
    let _ = sink.await;
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("strand-node relay benchmarks (release build, loopback, this machine)\n");
    let n = 10_000;
    let via_relay = rt.block_on(bulk(n, true));
    let direct = rt.block_on(bulk(n, false));
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("1. sync of {n} messages of 1 KiB, session up → all stored");
    println!(
        "   {:>9.0} msg/s         through a relay on loopback ({:.2} s)",
        rate(via_relay),
        via_relay.as_secs_f64()
    );
    println!(
        "   {:>9.0} msg/s         baseline: direct TCP on loopback ({:.2} s)",
        rate(direct),
        direct.as_secs_f64()
    );
    println!(
        "   {:>9.2} ×            slower through the relay (target ≤ 2)\n",
        via_relay.as_secs_f64() / direct.as_secs_f64()
    );

    let runs = 5;
    let mut relay_first = Vec::new();
    let mut punch_first = Vec::new();
    let mut punch_direct = Vec::new();
    let mut lan_first = Vec::new();
    for _ in 0..runs {
        relay_first.push(rt.block_on(first_message(Path2::Relay)).0);
        let (f, d) = rt.block_on(first_message(Path2::HolePunch));
        punch_first.push(f);
        punch_direct.push(d.unwrap());
        lan_first.push(rt.block_on(first_message(Path2::Lan)).0);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("2. both nodes started → first message delivered (loopback, median of {runs})");
    println!(
        "   {:>9.0} ms            through a relay (target ≤ 2000)",
        ms(median(relay_first))
    );
    println!(
        "   {:>9.0} ms            with hole punching on (through the relay first)",
        ms(median(punch_first))
    );
    println!(
        "   {:>9.0} ms            … until the session is on the hole-punched link",
        ms(median(punch_direct))
    );
    println!(
        "   {:>9.0} ms            baseline: over the LAN\n",
        ms(median(lan_first))
    );

    rt.block_on(relay_memory(1000, 100));
}
