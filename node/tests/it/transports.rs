//! One node, two transports behind one interface: LAN and emulated links,
//! each with its own session settings.

use std::time::Duration;

use strand_node::{os_rng, Node, NodeConfig, NodeEvent, Profile, SessionSettings};
use strand_sync::Config;
use strand_transport::memory::{Hub, HubConfig};
use strand_transport::LanConfig;

use crate::hub::{befriend, profile, MadeUp};

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
        emulated: Config {
            max_packet: 512,
            ..Default::default()
        },
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

/// A contact over their storage budget stops being stored (the
/// node says so once), nothing is lost: the contact offers the rest again,
/// and it arrives, exactly once, after the budget is raised. Messages of
/// kinds this version does not know have a budget of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_over_budget_waits_and_resumes_when_it_is_raised() {
    use strand_node::Budgets;
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let now = strand_node::now();
    let mut rng = os_rng();
    let text = "x".repeat(1000);
    for i in 0..60u64 {
        ben.write(
            "ann",
            &format!("{i:02} {text}"),
            now - 100_000 + i,
            &mut rng,
        )
        .unwrap();
    }
    let hub = Hub::default();
    let small = Budgets {
        per_contact: 20_000,
        ..Budgets::default()
    };
    let start = |p: Profile, budgets: Budgets, hub: Hub| async move {
        Node::start(
            p,
            NodeConfig {
                emulated: Some(hub),
                budgets,
                ..NodeConfig::default()
            },
        )
        .await
        .unwrap()
    };
    let ann_dir = tmp.path().join("ann");
    let ann_node = start(ann, small, hub.clone()).await;
    let mut events = ann_node.subscribe();
    let ben_node = start(ben, Budgets::default(), hub.clone()).await;
    let over = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(NodeEvent::OverBudget {
                contact, budget, ..
            }) = events.recv().await
            {
                break (contact, budget);
            }
        }
    })
    .await
    .expect("the node says the contact is over budget");
    assert_eq!(over, ("ben".to_owned(), 20_000));
    // Stored up to the budget, no further.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = ann_node.profile().conversation("ben").unwrap().len();
    assert!((1..60).contains(&held), "{held} stored");
    assert!(
        held <= 20,
        "{held} messages of ~1.2 KB within a 20 KB budget"
    );
    ann_node.shutdown().await;

    // A bigger budget: the rest arrives, each message once.
    let ann = Profile::open(&ann_dir, "pass").unwrap();
    let ann_node = start(ann, Budgets::default(), hub.clone()).await;
    let got = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n = ann_node.profile().conversation("ben").unwrap().len();
            if n == 60 {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the rest arrives once the budget is raised");
    assert_eq!(got, 60);
    let texts: Vec<String> = ann_node
        .profile()
        .conversation("ben")
        .unwrap()
        .into_iter()
        .map(|m| m.text[..2].to_owned())
        .collect();
    assert_eq!(
        texts,
        (0..60).map(|i| format!("{i:02}")).collect::<Vec<_>>()
    );
    ann_node.shutdown().await;
    ben_node.shutdown().await;
}

/// Messages of kinds this version does not know (it cannot show
/// them) are stored only up to their own, smaller budget; texts still
/// arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_are_capped_and_texts_still_arrive() {
    use strand_node::Budgets;
    use strand_sync::{Kind, Message, WriteStore};
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let now = strand_node::now();
    let mut rng = os_rng();
    let group = ben
        .sync_contact(&ben.contact("ann").unwrap())
        .unwrap()
        .direct_group()
        .clone();
    {
        let mut store = ben.store().unwrap();
        for i in 0..50u64 {
            let m = Message::create(
                &ben.identity(),
                &group,
                now - 200_000 + i,
                Kind(77),
                &[7u8; 1000],
                &mut rng,
            )
            .unwrap();
            store.insert(&group.id, &m).unwrap();
        }
        store.commit().unwrap();
    }
    for i in 0..5u64 {
        ben.write("ann", &format!("text {i}"), now - 100_000 + i, &mut rng)
            .unwrap();
    }
    let hub = Hub::default();
    let budgets = Budgets {
        unknown_kinds: 10_000,
        ..Budgets::default()
    };
    let ann = Node::start(
        ann,
        NodeConfig {
            emulated: Some(hub.clone()),
            budgets,
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let ben = Node::start(
        ben,
        NodeConfig {
            emulated: Some(hub.clone()),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while ann.profile().conversation("ben").unwrap().len() < 5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the texts arrive");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = ann.profile().stored_messages().unwrap();
    // 5 texts, and at most 10,000 bytes of the unknown kind (~1.2 KB each).
    assert!((6..=13).contains(&stored), "{stored} stored");
    ann.shutdown().await;
    ben.shutdown().await;
}

/// Two people meet, their devices already see each other, and then they
/// add each other (scanning invites): they link at once. On the starting
/// main the first links, refused while they were strangers, were never
/// tried again, and nothing synced until the next discovery (on a LAN,
/// up to an identity rotation, 15 minutes later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_met_as_strangers_link_once_their_users_add_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    let (code_a, code_b) = (
        a.identity().invite().to_text(),
        b.identity().invite().to_text(),
    );
    let hub = Hub::new();
    let na = crate::hub::start(a, &hub).await;
    let nb = crate::hub::start(b, &hub).await;
    // They find each other as strangers; the link is refused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(na.status().await.sessions, 0);
    na.add_contact(&code_b, "ben").await.unwrap();
    nb.add_contact(&code_a, "ann").await.unwrap();
    na.send("ben", "hello, neighbour").await.unwrap();
    crate::hub::until("Ben gets it", || {
        nb.profile()
            .conversation("ann")
            .unwrap()
            .iter()
            .any(|m| m.text == "hello, neighbour")
    })
    .await;
    na.shutdown().await;
    nb.shutdown().await;
}

/// A contact's link to a device found nearby drops (the network went and
/// came back): it is dialled again, and a text written after reaches the
/// contact. Discovery says nothing new of a device it still hears (mDNS
/// reports a device once; the hub, like it, once), and the other side
/// leaves dialling to this one: before, nothing dialled again, and the
/// text waited for a rotation (15 minutes on the LAN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_link_to_a_device_found_nearby_is_dialled_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let hub = Hub::new();
    let ann = crate::hub::start(ann, &hub).await;
    let ben = crate::hub::start(ben, &hub).await;
    let mut events = ann.subscribe();
    ann.send("ben", "before").await.unwrap();
    let has = |n: usize| ben.profile().conversation("ann").unwrap().len() == n;
    crate::hub::until("the first text", || has(1)).await;

    hub.cut();
    // Ann hears the link go down.
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(NodeEvent::Disconnected { .. }) => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events: {e}"),
            }
        }
    })
    .await
    .expect("the link went down");
    ann.send("ben", "after").await.unwrap();
    crate::hub::until("the text written after the drop", || has(2)).await;
    ann.shutdown().await;
    ben.shutdown().await;
}

/// A stranger makes up devices as fast as it can (fake mDNS answers on a
/// LAN; here, devices that join the hub and leave at once), and the node
/// is given a contact's address: it dials them, and a text arrives. On
/// the starting main one bucket paid for every dial: the made-up devices
/// kept it empty, and the contact's address was skipped at every try for
/// as long as the flood went on. Dials to contacts have a bucket of their
/// own now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_devices_do_not_keep_a_contact_s_address_from_being_dialled() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    // Ben on the LAN only: the flood is on the hub, which only Ann joins.
    let ben = Node::start(
        ben,
        NodeConfig {
            lan: lan(),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let ben_addrs = ben.wait_listening(Duration::from_secs(10)).await;
    assert!(!ben_addrs.is_empty(), "Ben listens");
    let hub = Hub::new();
    let ann = Node::start(
        ann,
        NodeConfig {
            lan: lan(),
            emulated: Some(hub.clone()),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    // Ann finds (and dials, having the smaller number) every one of them:
    // many times her dials to devices found.
    let flood = MadeUp::start(&hub, 16, None);
    flood.until_made(2_000).await;
    for addr in ben_addrs {
        ann.add_peer(addr).unwrap();
    }
    ann.send("ben", "through the flood").await.unwrap();
    crate::hub::until("the text through the flood", || {
        ben.profile()
            .conversation("ann")
            .unwrap()
            .iter()
            .any(|m| m.text == "through the flood")
    })
    .await;
    drop(flood);
    ann.shutdown().await;
    ben.shutdown().await;
}

/// A contact's link to a device found nearby drops while a stranger makes
/// up devices: it is dialled again, and a text written after arrives. On
/// the starting main the redial took a token from the one bucket the
/// made-up devices kept empty, found none, and gave up for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_link_is_dialled_again_while_a_stranger_makes_up_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let hub = Hub::new();
    let ann = crate::hub::start(ann, &hub).await;
    let ben = crate::hub::start(ben, &hub).await;
    let mut events = ann.subscribe();
    ann.send("ben", "before").await.unwrap();
    let has = |n: usize| ben.profile().conversation("ann").unwrap().len() == n;
    crate::hub::until("the first text", || has(1)).await;

    // A few a millisecond: far more than Ann dials devices found (10 a
    // second), and few enough that Ben, who finds them too, keeps taking
    // links (the hub drops a link to a device whose queue is full).
    let flood = MadeUp::start(&hub, 2, Some(Duration::from_millis(1)));
    flood.until_made(200).await;
    hub.cut();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(NodeEvent::Disconnected { .. }) => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events: {e}"),
            }
        }
    })
    .await
    .expect("the link went down");
    ann.send("ben", "after").await.unwrap();
    crate::hub::until("the text written after the drop", || has(2)).await;
    drop(flood);
    ann.shutdown().await;
    ben.shutdown().await;
}

/// A device found while the node was dialling too fast (a crowded LAN, or
/// a stranger's made-up answers just before) is dialled once dials come
/// back, with nothing found anew. On the starting main it was skipped,
/// and only one side of a pair dials, so the two stayed apart until the
/// next discovery (a LAN identity rotation, 15 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_found_while_dialling_too_fast_is_dialled_later() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let hub = Hub::new();
    let ann = crate::hub::start(ann, &hub).await;
    // Twice as many made-up devices as Ann dials at once, each gone
    // before she dials it; Ben joins right after them (no await between:
    // his node joins the hub before its start first waits), so Ann, who
    // has the smaller number and so dials, finds him once her dials are
    // spent. The bucket gives one back every 100 ms: only a pause of
    // seconds between her reading the burst and reading Ben would let
    // her dial him at once.
    let burst = 2 * strand_node::limits::DISCOVERY_DIAL_BURST as usize;
    for _ in 0..burst {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        drop(hub.join(tx));
    }
    let ben = crate::hub::start(ben, &hub).await;
    ann.send("ben", "found in a crowd").await.unwrap();
    crate::hub::until("Ben gets the text", || {
        ben.profile()
            .conversation("ann")
            .unwrap()
            .iter()
            .any(|m| m.text == "found in a crowd")
    })
    .await;
    ann.shutdown().await;
    ben.shutdown().await;
}
