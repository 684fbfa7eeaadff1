//! Helpers for tests of several nodes in one process: profiles with cheap
//! passphrase hashing, mutual contacts, nodes on an emulated link hub,
//! made-up devices on it, and waiting for a condition.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strand_node::{os_rng, KdfParams, Node, NodeConfig, Profile};
use strand_transport::memory::Hub;

/// A new profile named `name` in `root/name` (passphrase "pass").
pub(crate) fn profile(root: &std::path::Path, name: &str) -> Profile {
    Profile::create(
        &root.join(name),
        name,
        "pass",
        KdfParams::insecure_for_tests(),
        &mut os_rng(),
    )
    .unwrap()
}

/// Makes `a` and `b` each other's contacts, under their own names.
pub(crate) fn befriend(a: &Profile, b: &Profile) {
    let mut rng = os_rng();
    a.add_contact(&b.identity().invite(), b.identity().name(), 0, &mut rng)
        .unwrap();
    b.add_contact(&a.identity().invite(), a.identity().name(), 0, &mut rng)
        .unwrap();
}

/// A node on `hub` only.
pub(crate) async fn start(p: Profile, hub: &Hub) -> Node {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Node::start(
        p,
        NodeConfig {
            emulated: Some(hub.clone()),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap()
}

/// Waits (at most 90 s) until `check` holds.
pub(crate) async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A stranger making up devices on a hub, as fake mDNS answers name peer
/// ids that are not there: each joins and leaves at once, so every node
/// on the hub finds it (and dials it, where the node has the smaller
/// number) and the dial fails. Stops when dropped.
pub(crate) struct MadeUp {
    task: tokio::task::JoinHandle<()>,
    joined: Arc<AtomicU64>,
}

impl MadeUp {
    /// Makes up `per_tick` devices at a time, then pauses for `pause`, or
    /// with none only lets other tasks run (as fast as it can).
    pub(crate) fn start(hub: &Hub, per_tick: u64, pause: Option<Duration>) -> MadeUp {
        let hub = hub.clone();
        let joined = Arc::new(AtomicU64::new(0));
        let count = joined.clone();
        let task = tokio::spawn(async move {
            loop {
                for _ in 0..per_tick {
                    let (tx, _rx) = tokio::sync::mpsc::channel(1);
                    drop(hub.join(tx));
                }
                count.fetch_add(per_tick, Ordering::Relaxed);
                match pause {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => tokio::task::yield_now().await,
                }
            }
        });
        MadeUp { task, joined }
    }

    /// Waits until at least `n` devices were made up.
    pub(crate) async fn until_made(&self, n: u64) {
        until("devices made up", || {
            self.joined.load(Ordering::Relaxed) >= n
        })
        .await;
    }
}

impl Drop for MadeUp {
    fn drop(&mut self) {
        self.task.abort();
    }
}
