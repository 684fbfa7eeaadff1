//! Two Strand nodes over Bluetooth LE on real BlueZ. This
//! machine has no Bluetooth, so `scripts/ble-vm` boots a VM whose kernel
//! and `bluetoothd` drive `btvirt`'s virtual controllers, and runs these
//! tests there (they are ignored anywhere else). Alice's node on hci0 and
//! Bob's on hci1, with no LAN and no relay, find each other by their
//! advertised hints, connect, and sync 1,000 messages each way: once over
//! an L2CAP channel, once over GATT.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use strand_node::{os_rng, BleSettings, KdfParams, Node, NodeConfig, NodeEvent, Profile};

/// Each side's messages.
const EACH: u64 = 1_000;
/// Discovery takes a kernel scan cycle (~10 s) with btvirt, and the VM is
/// emulated: generous, and still bounded.
const PATIENCE: Duration = Duration::from_secs(900);

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

fn node_config(adapter: &str, l2cap: bool) -> NodeConfig {
    NodeConfig {
        lan: None,
        relay: None,
        ble: Some(BleSettings {
            adapter: Some(adapter.into()),
            l2cap,
        }),
        ..NodeConfig::default()
    }
}

/// Alice and Bob, contacts, each with 1,000 messages the other lacks:
/// made once (writing them is most of this test's time in an emulated VM)
/// and copied for each test.
fn template() -> &'static std::path::Path {
    static TEMPLATE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let tmp = tempfile::tempdir().unwrap();
            let (alice, bob) = (profile(tmp.path(), "alice"), profile(tmp.path(), "bob"));
            let mut rng = os_rng();
            alice
                .add_contact(&bob.identity().invite(), "bob", 0, &mut rng)
                .unwrap();
            bob.add_contact(&alice.identity().invite(), "alice", 0, &mut rng)
                .unwrap();
            let now = strand_node::now();
            for i in 0..EACH {
                alice
                    .write("bob", &format!("alice {i}"), now - 3_600_000 + i, &mut rng)
                    .unwrap();
                bob.write("alice", &format!("bob {i}"), now - 3_600_000 + i, &mut rng)
                    .unwrap();
            }
            alice.close();
            bob.close();
            tmp
        })
        .path()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

async fn sync_over_ble(l2cap: bool) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    // As the binaries do: a panic on any thread is kept, and fails the test.
    strand_node::runtime::panics::install();
    let what = if l2cap { "L2CAP" } else { "GATT" };
    let template = tokio::task::spawn_blocking(template).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for name in ["alice", "bob"] {
        copy_dir(&template.join(name), &tmp.path().join(name));
    }
    let alice = Profile::open(&tmp.path().join("alice"), "pass").unwrap();
    let bob = Profile::open(&tmp.path().join("bob"), "pass").unwrap();
    let t = Instant::now();
    let a = Node::start(alice, node_config("hci0", l2cap))
        .await
        .unwrap();
    let mut a_events = a.subscribe();
    let b = Node::start(bob, node_config("hci1", l2cap)).await.unwrap();
    assert_eq!(a.bluetooth_off(), None, "{what}: Bluetooth is on");
    assert_eq!(b.bluetooth_off(), None, "{what}: Bluetooth is on");
    let mut first = None;
    let done = tokio::time::timeout(PATIENCE, async {
        loop {
            let (sa, sb) = (a.status().await, b.status().await);
            if sa.messages == 2 * EACH && sb.messages == 2 * EACH {
                return (sa, sb);
            }
            if let Ok(Ok(NodeEvent::Received { .. })) =
                tokio::time::timeout(Duration::from_millis(500), a_events.recv()).await
            {
                first.get_or_insert(t.elapsed());
            }
        }
    })
    .await;
    let (sa, sb) = done.unwrap_or_else(|_| panic!("{what}: the nodes did not sync in time"));
    let total = t.elapsed();
    // Every message once, in both stores.
    let alice_view = a.profile().conversation("bob").unwrap();
    assert_eq!(alice_view.len() as u64, 2 * EACH, "{what}");
    let ble_a = sa
        .transports
        .iter()
        .find_map(|t| t.bluetooth.clone())
        .unwrap();
    let ble_b = sb
        .transports
        .iter()
        .find_map(|t| t.bluetooth.clone())
        .unwrap();
    assert!(ble_a.links + ble_b.links >= 1, "{what}");
    let bytes = ble_a.bytes_sent + ble_b.bytes_sent;
    println!(
        "ble-vm figure: nodes over {what}: first message {:.1} s after start, all {} both ways after {:.1} s, {} bytes over BLE ({:.1} kB/s; virtual controllers, not a radio)",
        first.unwrap_or(total).as_secs_f64(),
        2 * EACH,
        total.as_secs_f64(),
        bytes,
        bytes as f64 / 1000.0 / total.as_secs_f64()
    );
    a.shutdown().await;
    b.shutdown().await;
    // Nothing panicked on the way, in Strand or in a dependency's task
    // (bluez-async's harmless one is left out by the hook itself).
    let panics = strand_node::runtime::panics::recorded();
    assert!(panics.is_empty(), "{what}: {panics:?}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs BlueZ with virtual controllers: scripts/ble-vm"]
async fn two_nodes_sync_a_thousand_messages_each_way_over_l2cap() {
    sync_over_ble(true).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs BlueZ with virtual controllers: scripts/ble-vm"]
async fn two_nodes_sync_a_thousand_messages_each_way_over_gatt() {
    sync_over_ble(false).await;
}
