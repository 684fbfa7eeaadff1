//! Nodes that share no network, syncing through a real relay on loopback
//! (issue 12): in this process (the relay from strand-transport), and as
//! separate processes (`strand relay` and two `strand run`).

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use strand_node::{os_rng, Delivery, KdfParams, Node, NodeConfig, Profile, RelaySettings};
use strand_transport::relay::server::{RelayLimits, RelayServer, RelayServerConfig};

async fn relay(limits: RelayLimits) -> (RelayServer, String) {
    let server = RelayServer::start(RelayServerConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        announce: Vec::new(),
        key: [0x42; 32],
        limits,
        only: None,
    })
    .await
    .unwrap();
    let addr = server.addresses().await[0].to_string();
    (server, addr)
}

fn profile(root: &Path, name: &str) -> Profile {
    Profile::create(
        &root.join(name),
        name,
        name,
        KdfParams::insecure_for_tests(),
        &mut os_rng(),
    )
    .unwrap()
}

/// Alice and Bob each keep a slot on `relay` and swap invites (by mail:
/// they never share a network, so the invites carry the relays).
fn pair_on(root: &Path, relay: &str) -> (Profile, Profile) {
    let (a, b) = (profile(root, "alice"), profile(root, "bob"));
    let mut rng = os_rng();
    for p in [&a, &b] {
        p.add_relay(relay, strand_node::now(), &mut rng).unwrap();
    }
    a.add_contact(&b.invite().unwrap(), "bob", 0, &mut rng)
        .unwrap();
    b.add_contact(&a.invite().unwrap(), "alice", 0, &mut rng)
        .unwrap();
    (a, b)
}

/// No LAN, relays only (no hole punching: nothing listens but the circuit).
fn relay_only() -> NodeConfig {
    NodeConfig {
        lan: None,
        relay: Some(RelaySettings {
            hole_punch: false,
            listen: Vec::new(),
            ..RelaySettings::default()
        }),
        ..NodeConfig::default()
    }
}

async fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn all_delivered(p: &Profile, contact: &str, n: usize) -> bool {
    let c = p.conversation(contact).unwrap();
    c.len() == n
        && c.iter()
            .filter(|m| m.outgoing)
            .all(|m| m.delivery == Some(Delivery::Delivered))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_no_shared_network_sync_through_a_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr) = relay(RelayLimits::default()).await;
    let (a, b) = pair_on(tmp.path(), &addr);
    let na = Node::start(a, relay_only()).await.unwrap();
    let nb = Node::start(b, relay_only()).await.unwrap();
    for i in 0..20 {
        na.send("bob", &format!("a{i}")).await.unwrap();
        nb.send("alice", &format!("b{i}")).await.unwrap();
    }
    // Sent while the link comes up: the ones stored between the session
    // reading the store and registering used to wait for the next link.
    eventually(
        "40 messages both sides, delivered",
        Duration::from_secs(60),
        || all_delivered(na.profile(), "bob", 40) && all_delivered(nb.profile(), "alice", 40),
    )
    .await;
    let status = na.status().await;
    let seen = &status.seen[0];
    assert!(seen.connected);
    assert_eq!(seen.link, "relay");
    let relay_t = status
        .transports
        .iter()
        .find(|t| t.kind == "relay")
        .unwrap();
    assert_eq!(relay_t.relays.len(), 1);
    assert_eq!(relay_t.relays[0].state, "reserved");
    assert_eq!(relay_t.relays[0].source, "yours");
    assert_eq!(na.relays().await.len(), 1);
    let stats = server.stats().await;
    assert_eq!(stats.reservations, 2, "{stats:?}");
    assert!(stats.circuits >= 1, "{stats:?}");
    na.shutdown().await;
    nb.shutdown().await;
}

/// Issue 12: a stranger who uses the same relay, and knows Alice's relay
/// id (it has her invite), can reserve and dial but gets no session, and
/// Alice and Bob keep syncing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_on_the_same_relay_gets_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr) = relay(RelayLimits::default()).await;
    let (a, b) = pair_on(tmp.path(), &addr);
    let s = profile(tmp.path(), "mallory");
    let mut rng = os_rng();
    s.add_relay(&addr, 0, &mut rng).unwrap();
    // Mallory has Alice's invite; Alice never added Mallory.
    s.add_contact(&a.invite().unwrap(), "alice", 0, &mut rng)
        .unwrap();
    let na = Node::start(a, relay_only()).await.unwrap();
    let nb = Node::start(b, relay_only()).await.unwrap();
    let ns = Node::start(s, relay_only()).await.unwrap();
    ns.send("alice", "let me in").await.unwrap();
    for i in 0..10 {
        na.send("bob", &format!("a{i}")).await.unwrap();
        nb.send("alice", &format!("b{i}")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually("Alice and Bob synced", Duration::from_secs(60), || {
        all_delivered(na.profile(), "bob", 20) && all_delivered(nb.profile(), "alice", 20)
    })
    .await;
    // Mallory has had time to dial (its dial loop starts at once).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sa = na.status().await;
    assert_eq!(sa.sessions, 1, "only Bob: {:?}", sa.seen);
    assert!(sa.seen.iter().all(|c| c.contact == "bob"));
    let ss = ns.status().await;
    assert_eq!(ss.sessions, 0);
    assert!(ss.seen.is_empty(), "Mallory never had a session");
    let mallory_view = ns.profile().conversation("alice").unwrap();
    assert_eq!(mallory_view.len(), 1, "nothing of Alice's reached Mallory");
    assert!(na
        .profile()
        .conversation("bob")
        .unwrap()
        .iter()
        .all(|m| m.text != "let me in"));
    for n in [&na, &nb, &ns] {
        n.shutdown().await;
    }
}

/// Issue 12: the relay resets the circuit in the middle of a 10,000-message
/// sync (a small circuit byte limit): every message arrives, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_reset_mid_sync_loses_and_repeats_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr) = relay(RelayLimits {
        circuit_bytes: 512 * 1024,
        ..RelayLimits::default()
    })
    .await;
    let (a, b) = pair_on(tmp.path(), &addr);
    let mut rng = os_rng();
    let t0 = strand_node::now() - 20_000_000;
    for i in 0..10_000u64 {
        a.write("bob", &format!("bulk {i}"), t0 + i, &mut rng)
            .unwrap();
    }
    let na = Node::start(a, relay_only()).await.unwrap();
    let nb = Node::start(b, relay_only()).await.unwrap();
    eventually(
        "10,000 messages at Bob, all delivered",
        Duration::from_secs(240),
        || {
            all_delivered(na.profile(), "bob", 10_000)
                && nb.profile().conversation("alice").unwrap().len() == 10_000
        },
    )
    .await;
    let got = nb.profile().conversation("alice").unwrap();
    let texts: HashSet<&str> = got.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 10_000, "none twice");
    for i in (0..10_000).step_by(997) {
        assert!(texts.contains(format!("bulk {i}").as_str()));
    }
    let stats = server.stats().await;
    assert!(
        stats.circuits_cut >= 1 && stats.circuits_total >= 2,
        "the relay reset at least one circuit and the nodes dialled again: {stats:?}"
    );
    na.shutdown().await;
    nb.shutdown().await;
}

/// `strand relay` as a process: its first line is its address.
pub(crate) fn spawn_relay(command: &mut std::process::Command) -> (crate::cli::Killed, String) {
    use std::io::BufRead;
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("relay listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line:?}"))
        .to_owned();
    std::thread::spawn(move || for _ in out.lines() {});
    (crate::cli::Killed(child), addr)
}

/// Issue 12: three processes on loopback: `strand relay`, and two
/// `strand run` that cannot dial each other (no LAN, no hole punching:
/// each listens only on its circuit address). 100 messages each way go
/// through the relay, exactly once, all delivered.
#[test]
fn three_processes_a_relay_and_two_nodes_exchange_100_messages_each_way() {
    use crate::cli::{eventually, User, BIN};
    let tmp = tempfile::tempdir().unwrap();
    let (_relay, addr) = spawn_relay(std::process::Command::new(BIN).args([
        "relay",
        "--ephemeral",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ]));
    let (a, b) = (
        User::init(tmp.path(), "alice"),
        User::init(tmp.path(), "bob"),
    );
    for u in [&a, &b] {
        let out = u.ok(&["relay", "add", &addr]);
        assert!(out.contains("Added relay"), "{out}");
        assert!(u.ok(&["relay", "list"]).contains(&addr));
    }
    // They swap invites by mail: the codes carry the relay.
    a.ok(&["add", &b.invite(), "--name", "bob"]);
    b.ok(&["add", &a.invite(), "--name", "alice"]);
    let only_relay = ["run", "--no-lan", "--no-hole-punch"];
    let (a_run, a_addr) = a.run_with(&only_relay, a.command());
    let _a_run = crate::cli::Killed(a_run);
    let (b_run, b_addr) = b.run_with(&only_relay, b.command());
    let _b_run = crate::cli::Killed(b_run);
    for l in [&a_addr, &b_addr] {
        assert!(
            l.contains("/p2p-circuit/"),
            "listens on its circuit only: {l}"
        );
    }
    for i in 0..100 {
        a.ok(&["send", "bob", &format!("from alice {i}")]);
        b.ok(&["send", "alice", &format!("from bob {i}")]);
    }
    eventually(
        "200 messages on both sides, all delivered",
        Duration::from_secs(120),
        || {
            let (ma, mb) = (a.read("bob"), b.read("alice"));
            let delivered = |m: &[serde_json::Value]| {
                m.iter()
                    .filter(|m| m["from"] == "me")
                    .all(|m| m["delivery"] == "delivered")
            };
            ma.len() == 200 && mb.len() == 200 && delivered(&ma) && delivered(&mb)
        },
    );
    let ids = |u: &User| {
        let mut v: Vec<String> = u
            .read(if u.dir.ends_with("alice") {
                "bob"
            } else {
                "alice"
            })
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let (ia, ib) = (ids(&a), ids(&b));
    assert_eq!(ia, ib, "the same log on both sides");
    let mut unique = ia.clone();
    unique.dedup();
    assert_eq!(unique.len(), 200, "exactly once");
    let status = a.ok(&["status"]);
    assert!(status.contains("connected over relay"), "{status}");
    assert!(status.contains("reserved"), "{status}");
}
