//! The node and the simulator run the same preamble and session
//! code. Both run strand-sync's `LinkFixture` link and must write exactly
//! its reference bytes; this is the node's half (the simulator's is in
//! `simulations/tests/it/transcript.rs`).

use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_node::{KdfParams, Node, NodeConfig, NodeEvent, Profile, SessionSettings};
use strand_sync::harness::LinkFixture;
use strand_sync::WriteStore;
use strand_transport::memory::{Hub, HubConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_writes_the_reference_bytes_of_a_link() {
    let f = LinkFixture::new();
    let expected = f.transcript();
    let tmp = tempfile::tempdir().unwrap();
    // Profiles whose identities are the fixture's: an identity is the first
    // thing a new profile draws from its RNG.
    let kdf = KdfParams::insecure_for_tests();
    let a = Profile::create(
        &tmp.path().join("a"),
        "alice",
        "a",
        kdf,
        &mut ChaCha20Rng::seed_from_u64(LinkFixture::ALICE),
    )
    .unwrap();
    let b = Profile::create(
        &tmp.path().join("b"),
        "bob",
        "b",
        kdf,
        &mut ChaCha20Rng::seed_from_u64(LinkFixture::BOB),
    )
    .unwrap();
    assert_eq!(a.identity().public(), f.alice.public());
    assert_eq!(b.identity().public(), f.bob.public());
    let mut rng = strand_node::os_rng();
    a.add_contact(&f.bob.invite(), "bob", 0, &mut rng).unwrap();
    b.add_contact(&f.alice.invite(), "alice", 0, &mut rng)
        .unwrap();
    let mut store = a.store().unwrap();
    store.insert(&f.message.group(), &f.message).unwrap();
    store.commit().unwrap();
    drop(store);
    // Both on one emulated hub that records; Alice joins first, so she
    // dials (the hub's tie-break), as in the fixture.
    let hub = Hub::with_config(HubConfig {
        record: true,
        ..HubConfig::default()
    });
    let config = |seed| NodeConfig {
        emulated: Some(hub.clone()),
        sessions: SessionSettings {
            emulated: f.config,
            ..SessionSettings::default()
        },
        deterministic: Some((f.now, seed)),
        ..NodeConfig::default()
    };
    let alice = Node::start(a, config(f.alice_link_seed)).await.unwrap();
    let mut events = alice.subscribe();
    let bob = Node::start(b, config(f.bob_link_seed)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !matches!(events.recv().await, Ok(NodeEvent::Delivered { .. })) {}
    })
    .await
    .expect("the message delivered");
    // Let the last bytes (nothing more is due) settle before comparing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let recorded = hub.recorded();
    assert_eq!(recorded.len(), 1, "one meeting, one link");
    assert_eq!(recorded[0].bytes[0], expected[0], "Alice's bytes");
    assert_eq!(recorded[0].bytes[1], expected[1], "Bob's bytes");
    alice.shutdown().await;
    bob.shutdown().await;
}
