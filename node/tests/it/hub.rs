//! Helpers for tests of several nodes in one process: profiles with cheap
//! passphrase hashing, mutual contacts, nodes on an emulated link hub, and
//! waiting for a condition.

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
