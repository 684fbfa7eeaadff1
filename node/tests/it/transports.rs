//! One node, two transports behind one interface: LAN and emulated links,
//! each with its own session settings.

use std::time::Duration;

use strand_node::{os_rng, KdfParams, Node, NodeConfig, NodeEvent, Profile, SessionSettings};
use strand_sync::Config;
use strand_transport::memory::{Hub, HubConfig};
use strand_transport::LanConfig;

fn profile(root: &std::path::Path, name: &str) -> Profile {
    Profile::create(
        &root.join(name),
        name,
        "pass",
        KdfParams::insecure_for_tests(),
        &mut os_rng(),
    )
    .unwrap()
}

fn befriend(a: &Profile, b: &Profile) {
    let mut rng = os_rng();
    a.add_contact(&b.identity().invite(), b.identity().name(), 0, &mut rng)
        .unwrap();
    b.add_contact(&a.identity().invite(), a.identity().name(), 0, &mut rng)
        .unwrap();
}

fn lan() -> Option<LanConfig> {
    Some(LanConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        mdns: false,
        ..LanConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_syncs_over_the_lan_and_emulated_links_with_each_kind_s_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = (
        profile(tmp.path(), "ann"),
        profile(tmp.path(), "ben"),
        profile(tmp.path(), "cat"),
    );
    befriend(&ann, &ben);
    befriend(&ann, &cat);
    let now = strand_node::now();
    let mut rng = os_rng();
    for i in 0..100u64 {
        ben.write("ann", &format!("ben {i}"), now - 100_000 + i, &mut rng)
            .unwrap();
        cat.write("ann", &format!("cat {i}"), now - 100_000 + i, &mut rng)
            .unwrap();
    }
    // Emulated links carry BLE-sized packets.
    let small = SessionSettings {
        emulated: Config { max_packet: 512 },
        ..SessionSettings::default()
    };
    let hub = Hub::with_config(HubConfig {
        record: true,
        ..HubConfig::default()
    });
    // Ann: the LAN and the hub. Ben: the hub only. Cat: the LAN only.
    let ann = Node::start(
        ann,
        NodeConfig {
            lan: lan(),
            emulated: Some(hub.clone()),
            sessions: small,
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let mut events = ann.subscribe();
    let ann_addr = ann.wait_listening(Duration::from_secs(10)).await;
    let ben = Node::start(
        ben,
        NodeConfig {
            emulated: Some(hub.clone()),
            sessions: small,
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let cat = Node::start(
        cat,
        NodeConfig {
            lan: lan(),
            peers: ann_addr
                .into_iter()
                .filter(|a| a.to_string().starts_with("/ip4"))
                .collect(),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let mut links = Vec::new();
    let mut got = 0;
    tokio::time::timeout(Duration::from_secs(60), async {
        while got < 200 {
            match events.recv().await {
                Ok(NodeEvent::Received { .. }) => got += 1,
                Ok(NodeEvent::Connected { contact, link }) => links.push((contact, link)),
                _ => {}
            }
        }
    })
    .await
    .expect("all 200 messages");
    links.sort();
    assert_eq!(
        links,
        [
            ("ben".to_string(), "emulated".to_string()),
            ("cat".to_string(), "LAN".to_string())
        ]
    );
    let status = ann.status().await;
    let kinds: Vec<_> = status.transports.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds, ["LAN", "emulated"]);
    // Every record on the emulated link (preamble records and packets)
    // kept to 512 bytes plus its 2-byte length, and there were many.
    let recorded = hub.recorded();
    assert_eq!(recorded.len(), 1);
    let mut records = 0;
    for side in &recorded[0].bytes {
        let mut rest = &side[..];
        while rest.len() >= 2 {
            let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            assert!(n <= 512, "a {n}-byte record");
            records += 1;
            rest = &rest[(2 + n).min(rest.len())..];
        }
        assert!(rest.is_empty());
    }
    assert!(records > 50, "{records} records");
    for n in [ann, ben, cat] {
        n.shutdown().await;
    }
}
