//! Attacks on real nodes over real sockets: a stranger's flood,
//! replayed hellos, receipts without acknowledgements, a contact that
//! dials again for fresh walks of a log.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::Multiaddr;
use strand_node::{os_rng, Delivery, KdfParams, Node, NodeConfig, NodeEvent, Profile};
use strand_sync::{Config, GroupId, Session};
use strand_transport::{Lan, LanConfig, Transport, TransportEvent};

use crate::flood::flood;
use crate::lan::{loopback, on_loopback};
use tokio::sync::broadcast::Receiver;

pub const WAIT: Duration = Duration::from_secs(30);

/// Alice's node listens on both loopback addresses: contacts come from
/// 127.0.0.1, strangers from ::1 (two devices have two addresses).
fn both_loopbacks() -> Option<LanConfig> {
    Some(LanConfig {
        listen: vec![
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            "/ip6/::1/tcp/0".parse().unwrap(),
        ],
        mdns: false,
        ..LanConfig::default()
    })
}

/// A LAN transport on loopback of the test's own, to dial Alice's or
/// Bob's node from, and the queue of its events (kept while it is used).
async fn own_lan() -> (Lan, tokio::sync::mpsc::Receiver<TransportEvent>) {
    let (tx, ev) = tokio::sync::mpsc::channel(16);
    (Lan::start(loopback().unwrap(), tx).await.unwrap(), ev)
}

/// Alice and Bob, contacts of each other, in `root`.
pub fn pair(root: &std::path::Path) -> (Profile, Profile) {
    let mut rng = os_rng();
    let kdf = KdfParams::insecure_for_tests();
    let a = Profile::create(&root.join("a"), "Alice", "a", kdf, &mut rng).unwrap();
    let b = Profile::create(&root.join("b"), "Bob", "b", kdf, &mut rng).unwrap();
    a.add_contact(&b.identity().invite(), "Bob", 0, &mut rng)
        .unwrap();
    b.add_contact(&a.identity().invite(), "Alice", 0, &mut rng)
        .unwrap();
    (a, b)
}

async fn addr_of(node: &Node, v6: bool) -> Multiaddr {
    node.wait_listening(WAIT)
        .await
        .into_iter()
        .find(|a| a.to_string().starts_with(if v6 { "/ip6" } else { "/ip4" }))
        .expect("a listening address")
}

pub async fn until(rx: &mut Receiver<NodeEvent>, mut f: impl FnMut(&NodeEvent) -> bool) {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(e) = rx.recv().await {
                if f(&e) {
                    return;
                }
            }
        }
    })
    .await
    .expect("the event within 30 s");
}

/// `MAX_LINKS` was global and nothing was limited per remote
/// address, so a stranger opening links faster than the handshake timeout
/// let them go filled every slot, and contacts could not get in. Now a
/// stranger's links are limited per address and never hold a contact's
/// session slot: two contacts meet and sync while the flood goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_opening_50_links_a_second_for_20_s_does_not_stop_two_contacts_syncing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let alice = Node::start(
        a,
        NodeConfig {
            lan: both_loopbacks(),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let v4 = addr_of(&alice, false).await;
    let v6 = addr_of(&alice, true).await;
    let mut events = alice.subscribe();
    let stranger = tokio::spawn(flood(v6, 50, Duration::from_secs(20)));
    // Let the flood fill whatever it can before Bob arrives: at 50 a
    // second, the old node's 256 link slots were full after 5 s.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let bob = on_loopback(b, vec![v4]).await;
    let mut bob_events = bob.subscribe();
    for i in 0..20 {
        bob.send("Alice", &format!("during the flood {i}"))
            .await
            .unwrap();
    }
    let mut got = 0;
    until(&mut events, |e| {
        got += usize::from(matches!(e, NodeEvent::Received { .. }));
        got == 20
    })
    .await;
    // The stranger holds no more than its address's share of links in
    // handshake (the old node had all 256 of its link slots full by now).
    let links = alice.status().await.links;
    assert!(
        links <= 1 + strand_node::limits::MAX_PENDING_PER_REMOTE,
        "{links} links open during the flood"
    );
    let mut delivered = 0;
    until(&mut bob_events, |e| {
        delivered += usize::from(matches!(e, NodeEvent::Delivered { .. }));
        delivered == 20
    })
    .await;
    assert!(
        !stranger.is_finished(),
        "the sync finished while the flood was still going"
    );
    let report = stranger.await.unwrap();
    eprintln!("flood: {report:?}");
    assert!(report.streams + report.connections > 10, "{report:?}");
    let status = alice.status().await;
    assert_eq!(status.sessions, 1, "only Bob holds a session");
    alice.shutdown().await;
    bob.shutdown().await;
}

/// Reads one preamble record (`u16` length, body) from a raw link.
async fn read_record(link: &mut strand_transport::Link) -> Vec<u8> {
    let mut len = [0u8; 2];
    link.stream.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    link.stream.read_exact(&mut body).await.unwrap();
    [&len[..], &body].concat()
}

/// Every link had a new listener (a new replay cache), so a hello
/// recorded on the LAN was answered again later, and two replayed hellos
/// held open took both of Alice's session slots at Bob. Now a hello is
/// bound to its link's beacon: on a later link, and after Bob's node
/// restarts, it is refused, and Alice still syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_hellos_get_no_session_and_do_not_keep_the_real_contact_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let b_dir = b.dir().to_path_buf();
    let bob = on_loopback(b, Vec::new()).await;
    let addr = addr_of(&bob, false).await;
    // An observer's recording of a real hello of Alice's to Bob.
    let (observer, _ev) = own_lan().await;
    let alice_end = a.endpoint();
    let hello = {
        let mut link = observer.dial(&addr).unwrap().await.unwrap();
        let beacon = read_record(&mut link).await;
        let view = a.read_view().unwrap();
        let mut s = alice_end.dial(Config::default(), strand_node::now(), &mut os_rng());
        s.handle_input(strand_node::now(), &beacon, &view).unwrap();
        let hello = s.poll_transmit(strand_node::now(), &view).unwrap();
        link.stream.write_all(&hello).await.unwrap();
        link.stream.flush().await.unwrap();
        // Bob answers this one (it is genuine, on its own link).
        read_record(&mut link).await;
        hello
    };
    // Two later links replay it and hold on, dripping a byte now and then.
    let mut replays = Vec::new();
    for _ in 0..2 {
        let mut link = observer.dial(&addr).unwrap().await.unwrap();
        read_record(&mut link).await;
        link.stream.write_all(&hello).await.unwrap();
        link.stream.flush().await.unwrap();
        // The answer is a refusal: a record shaped like message 2, so the
        // observer cannot tell it from one.
        read_record(&mut link).await;
        link.stream.write_all(&[0]).await.unwrap();
        replays.push(link);
    }
    // The real Alice arrives and syncs.
    let mut bob_events = bob.subscribe();
    let alice = on_loopback(a.clone(), vec![addr.clone()]).await;
    alice.send("Bob", "the real me").await.unwrap();
    until(
        &mut bob_events,
        |e| matches!(e, NodeEvent::Received { text, .. } if text == "the real me"),
    )
    .await;
    assert_eq!(bob.status().await.sessions, 1);
    alice.shutdown().await;
    // After Bob restarts, the recording is still worthless.
    bob.shutdown().await;
    let b = Profile::open(&b_dir, "b").unwrap();
    let bob = on_loopback(b, Vec::new()).await;
    let addr = addr_of(&bob, false).await;
    let mut link = observer.dial(&addr).unwrap().await.unwrap();
    read_record(&mut link).await;
    link.stream.write_all(&hello).await.unwrap();
    link.stream.flush().await.unwrap();
    let mut events = bob.subscribe();
    read_record(&mut link).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !matches!(events.try_recv(), Ok(NodeEvent::Connected { .. })),
        "a replayed hello made a session"
    );
    assert_eq!(bob.status().await.sessions, 0);
    drop(replays);
    bob.shutdown().await;
}

/// `Synced` (reconciliation finished, i.e. sends *queued*) used to
/// mark every undelivered message Delivered. A peer that receives but never
/// acknowledges must leave Alice's message at "sent".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_message_is_never_shown_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let (group, key) = a
        .write("Bob", "did you get it?", strand_node::now(), &mut os_rng())
        .unwrap();
    let alice = on_loopback(a, Vec::new()).await;
    let addr = addr_of(&alice, false).await;
    let mut events = alice.subscribe();
    // Bob, played by the test: he syncs but never stores or acknowledges.
    let (lan, _ev) = own_lan().await;
    let mut link = lan.dial(&addr).unwrap().await.unwrap();
    let mut s = b
        .endpoint()
        .dial(Config::default(), strand_node::now(), &mut os_rng());
    let view = b.read_view().unwrap();
    let mut synced = false;
    let mut got_message = false;
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(synced && got_message) {
        while let Some(out) = s.poll_transmit(strand_node::now(), &view) {
            link.stream.write_all(&out).await.unwrap();
        }
        link.stream.flush().await.unwrap();
        let n = tokio::time::timeout_at(deadline, link.stream.read(&mut buf))
            .await
            .expect("alice keeps talking")
            .unwrap();
        s.handle_input(strand_node::now(), &buf[..n], &view)
            .unwrap();
        // Received messages are taken and dropped: never stored, never
        // acknowledged.
        got_message |= s.poll_inbound().is_some();
        while let Some(e) = s.poll_event() {
            synced |= matches!(e, strand_sync::Event::Synced { .. });
        }
    }
    until(&mut events, |e| matches!(e, NodeEvent::Sent { .. })).await;
    // Give a wrong "delivered" every chance to be written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        alice.profile().delivery(&group, &key).unwrap(),
        Some(Delivery::Sent)
    );
    drop(link);
    alice.shutdown().await;
}

/// How long Alice's node is quiet before Bob's session counts as settled.
const QUIET: Duration = Duration::from_millis(500);
/// How long Bob waits for an answer before he counts his frame as waiting.
const ANSWER: Duration = Duration::from_secs(2);

/// Bob, played by the test, on a link of his own to Alice's node: his
/// session runs until it is idle and Alice has been quiet for `QUIET`.
async fn bob_syncs(lan: &Lan, addr: &Multiaddr, b: &Profile) -> (strand_transport::Link, Session) {
    let mut link = lan.dial(addr).unwrap().await.unwrap();
    let mut s = b
        .endpoint()
        .dial(Config::default(), strand_node::now(), &mut os_rng());
    let mut store = b.store().unwrap();
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        while let Some(out) = s.poll_transmit(strand_node::now(), &store) {
            link.stream.write_all(&out).await.unwrap();
        }
        link.stream.flush().await.unwrap();
        assert!(
            tokio::time::Instant::now() < deadline,
            "Bob's session settles"
        );
        let read = tokio::time::timeout(QUIET, link.stream.read(&mut buf));
        match read.await {
            Ok(Ok(n)) if n > 0 => {
                s.handle_input(strand_node::now(), &buf[..n], &store)
                    .unwrap();
                s.settle(strand_node::now(), &mut store);
            }
            Ok(_) => panic!("Alice's node hung up"),
            Err(_) if s.is_idle() => break,
            Err(_) => {}
        }
    }
    store.commit().unwrap();
    (link, s)
}

/// Bob answers every reply of Alice's in `group` with a fingerprint of the
/// whole log that she does not have, so she splits it: an OPEN first, then
/// a RECON a round, until she writes nothing back for `ANSWER`. Returns
/// how many she answered.
async fn whole_log_fingerprints(
    link: &mut strand_transport::Link,
    s: &mut Session,
    group: GroupId,
) -> u64 {
    let mut answered = 0;
    let mut buf = vec![0u8; 65536];
    for round in 0..1_000u64 {
        // One item up to ∞ (PROTOCOL.md §8.1): a count that is not hers
        // and a sum she does not have.
        let made_up = (round + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut body = group.0.to_vec();
        body.extend_from_slice(&[0, 1]);
        body.extend_from_slice(&[0xc0, 0x84, 0x3d]); // 1,000,000 as a varint
        body.extend_from_slice(&made_up.to_le_bytes());
        // RECON is 0x01, OPEN 0x0c; a frame is its type, a varint length
        // and the body.
        let kind = if round == 0 { 0x0c } else { 0x01 };
        let plain = [&[kind, body.len() as u8][..], &body].concat();
        let packet = s.send_raw_packet(&plain).unwrap();
        link.stream.write_all(&packet).await.unwrap();
        link.stream.flush().await.unwrap();
        let read = tokio::time::timeout(ANSWER, link.stream.read(&mut buf));
        match read.await {
            Ok(Ok(n)) if n > 0 => answered += 1,
            _ => break,
        }
    }
    answered
}

/// A contact that had made Alice's node walk a log `RECON_WORK_WALKS`
/// times on one session could drop the link and dial again for as many
/// walks more, as often as it liked: the walks were counted per session.
/// The node keeps one account of the contact's walks, which all its
/// sessions spend from, so the contact's new link waits as its last one
/// did. The same held for a link dialled beside one still up, whose count
/// the node learnt only when it ended: the new session spends from the
/// account the session up spends from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_that_dials_again_gets_no_fresh_walks_of_a_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    // A log of 300 in their conversation, both holding all of it.
    let mut rng = os_rng();
    let start = 1_700_000_000_000 - 1_000_000;
    let (group, _) = b.write("Alice", "b0", start, &mut rng).unwrap();
    for i in 1..300 {
        b.write("Alice", &format!("b{i}"), start + i * 1000, &mut rng)
            .unwrap();
    }
    crate::sync::sync(&a, &b);
    let alice = on_loopback(a, Vec::new()).await;
    let addr = addr_of(&alice, false).await;
    let mut events = alice.subscribe();
    let (lan, _ev) = own_lan().await;
    let (mut link, mut s) = bob_syncs(&lan, &addr, &b).await;
    let first = whole_log_fingerprints(&mut link, &mut s, group).await;
    // Each answer walks her log of 300 twice, and a walk of a log that
    // small counts as 4,096 keys: some 200 answers make 32 walks.
    assert!(first > 100, "{first} answered on the first link");
    // A second link while the first is up: what the first has spent is
    // where it starts.
    let (mut beside, mut s) = bob_syncs(&lan, &addr, &b).await;
    let along = whole_log_fingerprints(&mut beside, &mut s, group).await;
    // A minute's refill (a slow run) would answer some 27 more.
    assert!(
        along * 4 < first,
        "{along} answered on a link beside the first, {first} on the first"
    );
    drop((link, beside));
    for _ in 0..2 {
        until(&mut events, |e| matches!(e, NodeEvent::Disconnected { .. })).await;
    }
    // At once on a new link: what the last ones left is where it starts.
    let (mut link, mut s) = bob_syncs(&lan, &addr, &b).await;
    let again = whole_log_fingerprints(&mut link, &mut s, group).await;
    assert!(
        again * 4 < first,
        "{again} answered on the next link, {first} on the first"
    );
    drop(link);
    alice.shutdown().await;
}

/// `Node::shutdown` returns once the profile can be opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let a_dir = a.dir().to_path_buf();
    let alice = on_loopback(a, Vec::new()).await;
    let addr = addr_of(&alice, false).await;
    // Listening before Bob starts: his link can be up before `start`
    // returns here.
    let mut ev = alice.subscribe();
    let bob = on_loopback(b, vec![addr]).await;
    until(&mut ev, |e| matches!(e, NodeEvent::Connected { .. })).await;
    assert!(Profile::in_use(&a_dir));
    alice.shutdown().await;
    assert!(!Profile::in_use(&a_dir), "released when shutdown returns");
    let again = Profile::open(&a_dir, "a").unwrap();
    assert_eq!(again.contacts().len(), 1);
    bob.shutdown().await;
}
