//! Relays of another libp2p implementation: Strand nodes sync
//! through a js-libp2p circuit-relay-v2 server, and a js-libp2p client
//! reserves on `strand relay` and is dialled through it. The js side is
//! `scripts/interop/js-libp2p`, installed with `npm ci`; the tests skip,
//! saying why, where Node.js or the npm registry is missing.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use strand_node::{Node, NodeConfig, RelaySettings};

use crate::cli::{Killed, BIN};

/// One `npm ci` at a time (the tests share the directory).
static INSTALL: Mutex<()> = Mutex::new(());

/// The js side, installed in the build's scratch directory; `None` (with
/// the reason printed) if it cannot be.
fn js_libp2p() -> Option<PathBuf> {
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let have = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !have("node") || !have("npm") {
        eprintln!("SKIPPED: Node.js and npm are not installed (apt-get install nodejs npm)");
        return None;
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/interop/js-libp2p");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("js-libp2p");
    std::fs::create_dir_all(&dir).unwrap();
    let mut changed = false;
    for f in [
        "package.json",
        "package-lock.json",
        "relay.mjs",
        "client.mjs",
        "polyfill.mjs",
    ] {
        let new = std::fs::read(src.join(f)).unwrap();
        if std::fs::read(dir.join(f)).ok().as_ref() != Some(&new) {
            std::fs::write(dir.join(f), new).unwrap();
            changed = true;
        }
    }
    if changed || !dir.join("node_modules").exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "SKIPPED: `npm ci` failed (no npm registry?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_dir_all(dir.join("node_modules"));
            return None;
        }
    }
    Some(dir)
}

/// Runs a js script; returns the process and its first stdout line.
fn spawn_js(dir: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> (Killed, String) {
    let mut c = Command::new("node");
    c.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || for _ in out.lines() {});
    (Killed(child), line.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strand_nodes_sync_through_a_js_libp2p_relay() {
    let Some(dir) = js_libp2p() else {
        return;
    };
    // No default limits: js-libp2p's 128 KiB / 2 min per circuit would cut
    // a sync short (see scripts/interop/js-libp2p/README.md).
    let (_relay, line) = spawn_js(
        &dir,
        &["relay.mjs", "0"],
        &[
            ("RELAY_APPLY_DEFAULT_LIMIT", "0"),
            ("RELAY_MAX_RESERVATIONS", "64"),
        ],
    );
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line:?}"))
        .to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = crate::relay::pair_on(tmp.path(), &addr);
    let config = || NodeConfig {
        lan: None,
        relay: Some(RelaySettings {
            hole_punch: false,
            listen: Vec::new(),
            ..RelaySettings::default()
        }),
        ..NodeConfig::default()
    };
    let na = Node::start(a, config()).await.unwrap();
    let nb = Node::start(b, config()).await.unwrap();
    for i in 0..50 {
        na.send("bob", &format!("a{i}")).await.unwrap();
        nb.send("alice", &format!("b{i}")).await.unwrap();
    }
    crate::relay::eventually(
        "100 messages through the js relay, delivered",
        Duration::from_secs(90),
        || {
            crate::relay::all_delivered(na.profile(), "bob", 100)
                && crate::relay::all_delivered(nb.profile(), "alice", 100)
        },
    )
    .await;
    let s = na.status().await;
    assert_eq!(s.seen[0].link, "relay");
    let r = na.relays().await;
    assert_eq!(r[0].state, "reserved", "{r:?}");
    na.shutdown().await;
    nb.shutdown().await;
}

#[test]
fn a_js_libp2p_client_reserves_on_strand_relay_and_is_dialled_through_it() {
    let Some(dir) = js_libp2p() else {
        return;
    };
    let (_relay, addr) = crate::relay::spawn_relay(Command::new(BIN).args([
        "relay",
        "--ephemeral",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ]));
    let out = Command::new("node")
        .args(["client.mjs", &addr, "--dial"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reserved in"), "{stdout}");
    assert!(stdout.contains("/p2p-circuit"), "{stdout}");
    assert!(stdout.contains("dialed via relay"), "{stdout}");
}
