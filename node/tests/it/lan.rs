//! Two nodes in this process, real libp2p sockets on loopback.

use std::time::Duration;

use strand_node::{os_rng, Delivery, KdfParams, Node, NodeConfig, NodeEvent, Profile};
use strand_transport::LanConfig;

pub(crate) fn loopback() -> Option<LanConfig> {
    Some(LanConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        mdns: false,
        ..LanConfig::default()
    })
}

pub(crate) async fn until<F: FnMut(&NodeEvent) -> bool>(
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    mut f: F,
) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(e) = rx.recv().await {
                if f(&e) {
                    return;
                }
            }
        }
    })
    .await
    .expect("event within 30 s");
}

/// Starts a node for `p` listening on loopback, dialling `peers`.
pub(crate) async fn on_loopback(p: Profile, peers: Vec<libp2p::Multiaddr>) -> Node {
    Node::start(
        p,
        NodeConfig {
            lan: loopback(),
            peers,
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap()
}

/// Alice and Bob in `root` (passphrase "p"), contacts of each other:
/// Bob's node listening on loopback, and Alice's, started after it,
/// dialling him there.
pub(crate) async fn alice_and_bob(root: &std::path::Path) -> (Node, Node) {
    let mut rng = os_rng();
    let create = |name: &str| {
        Profile::create(
            &root.join(name),
            name,
            "p",
            KdfParams::insecure_for_tests(),
            &mut os_rng(),
        )
        .unwrap()
    };
    let (a, b) = (create("Alice"), create("Bob"));
    let (ia, ib) = (a.identity().invite(), b.identity().invite());
    a.add_contact(&ib, "Bob", 0, &mut rng).unwrap();
    b.add_contact(&ia, "Alice", 0, &mut rng).unwrap();
    let node_b = on_loopback(b, Vec::new()).await;
    let addrs = node_b.wait_listening(Duration::from_secs(1)).await;
    let node_a = on_loopback(a, addrs).await;
    (node_a, node_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_loopback_sync_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = os_rng();
    let a = Profile::create(
        &tmp.path().join("a"),
        "Alice",
        "a",
        KdfParams::insecure_for_tests(),
        &mut rng,
    )
    .unwrap();
    let b = Profile::create(
        &tmp.path().join("b"),
        "Bob",
        "b",
        KdfParams::insecure_for_tests(),
        &mut rng,
    )
    .unwrap();
    let (ia, ib) = (a.identity().invite(), b.identity().invite());
    a.add_contact(&ib, "Bob", 0, &mut rng).unwrap();
    b.add_contact(&ia, "Alice", 0, &mut rng).unwrap();
    a.write("Bob", "written before we met", strand_node::now(), &mut rng)
        .unwrap();

    let node_b = on_loopback(b, Vec::new()).await;
    let addrs = node_b.wait_listening(Duration::from_secs(1)).await;
    let mut events_b = node_b.subscribe();
    let node_a = on_loopback(a, addrs).await;
    let mut events_a = node_a.subscribe();
    until(
        &mut events_b,
        |e| matches!(e, NodeEvent::Received { text, .. } if text == "written before we met"),
    )
    .await;
    for i in 0..20 {
        node_a.send("Bob", &format!("a{i}")).await.unwrap();
        node_b.send("Alice", &format!("b{i}")).await.unwrap();
    }
    let mut got = 0;
    until(&mut events_a, |e| {
        if matches!(e, NodeEvent::Received { .. }) {
            got += 1;
        }
        got == 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let conv_b = node_b.with_profile(|p| p.conversation("Alice").unwrap());
    let conv_a = node_a.with_profile(|p| p.conversation("Bob").unwrap());
    assert_eq!(conv_a.len(), 41);
    assert_eq!(conv_b.len(), 41);
    // The same messages (each side shows the other's that are older than
    // its own last one below it, in the order they came).
    let keys = |c: &[strand_node::StoredMessage]| {
        let mut k = c.iter().map(|m| m.key).collect::<Vec<_>>();
        k.sort();
        k
    };
    assert_eq!(keys(&conv_a), keys(&conv_b));
    assert!(
        conv_a
            .iter()
            .filter(|m| m.outgoing)
            .all(|m| m.delivery == Some(Delivery::Delivered)),
        "{conv_a:?}"
    );
}

/// A contact renamed while a session with them is up: what arrives on
/// that session from then on, and its end, name them by the new name
/// (the app and `strand read --follow` find the conversation by it).
/// Before, the session went on naming them as it did when it came up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_renamed_mid_session_is_named_anew() {
    let tmp = tempfile::tempdir().unwrap();
    let (node_a, node_b) = alice_and_bob(tmp.path()).await;
    let mut events_a = node_a.subscribe();
    node_b.send("Alice", "first").await.unwrap();
    until(
        &mut events_a,
        |e| matches!(e, NodeEvent::Received { contact, text, .. } if contact == "Bob" && text == "first"),
    )
    .await;
    node_a.rename_contact("Bob", "Robert").await.unwrap();
    node_b.send("Alice", "second").await.unwrap();
    let mut named = None;
    until(&mut events_a, |e| match e {
        NodeEvent::Received { contact, text, .. } if text == "second" => {
            named = Some(contact.clone());
            true
        }
        _ => false,
    })
    .await;
    assert_eq!(named.as_deref(), Some("Robert"));
    let seen = node_a.status().await.seen;
    assert!(seen.iter().all(|s| s.contact == "Robert"), "{seen:?}");
    node_b.shutdown().await;
    until(
        &mut events_a,
        |e| matches!(e, NodeEvent::Disconnected { contact, .. } if contact == "Robert"),
    )
    .await;
    node_a.shutdown().await;
}

/// A text as long as a message holds: the event that says it arrived
/// carries its start, cut between characters and marked cut, so what a
/// follower that reads slowly keeps the node holding stays small (before,
/// the whole text, up to a megabyte for each of the 1,024 events waiting
/// for it); the text reads whole from the conversation, as `strand read`
/// (`--follow` too) and the app read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_text_arrives_as_a_preview_and_reads_whole() {
    use strand_node::runtime::api::{Reply, Request};
    let tmp = tempfile::tempdir().unwrap();
    let (node_a, node_b) = alice_and_bob(tmp.path()).await;
    let mut events_b = node_b.subscribe();
    // Characters of one, two and four bytes: a cut inside one would show.
    let whole = "aé🙂".repeat(strand_sync::limits::MAX_BODY_LEN / 8);
    node_a.send("Bob", &whole).await.unwrap();
    let mut arrived = None;
    until(&mut events_b, |e| {
        if matches!(e, NodeEvent::Received { .. }) {
            arrived = Some(e.clone());
        }
        arrived.is_some()
    })
    .await;
    let event = arrived.unwrap();
    let json = serde_json::to_vec(&event).unwrap();
    assert!(json.len() < 4096, "an event of {} bytes", json.len());
    let NodeEvent::Received { text, cut, .. } = &event else {
        unreachable!("matched above")
    };
    assert!(*cut);
    assert_eq!(text.chars().count(), strand_node::limits::RECEIVED_PREVIEW);
    assert!(whole.starts_with(text.as_str()));
    let read = Request::Read {
        contact: "Alice".into(),
        from: None,
        limit: None,
    };
    let page = match node_b.handle(read).await.unwrap() {
        Reply::Page(page) => page,
        other => panic!("{other:?}"),
    };
    assert_eq!(page.messages.last().map(|m| &m.text), Some(&whole));
    node_a.shutdown().await;
    node_b.shutdown().await;
}
