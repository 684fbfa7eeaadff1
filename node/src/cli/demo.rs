//! `strand demo`: two throwaway nodes on this machine become contacts and
//! chat over the real LAN transport on loopback; exits 0 only if every
//! message arrived and was acknowledged.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use strand_transport::LanConfig;

use super::print::print_message;
use crate::runtime::api::MessageView;
use crate::runtime::commands::conversation;
use crate::{now, os_rng, KdfParams, Node, NodeConfig, NodeEvent, Profile};

type Result<T> = anyhow::Result<T>;

/// `strand demo`.
pub(super) async fn demo(messages: usize) -> super::Result<()> {
    Ok(run(messages).await?)
}

async fn run(messages: usize) -> Result<()> {
    let started = Instant::now();
    let step =
        |n: u32, what: &str, t: Instant| println!("{n}. {what} ({} ms)", t.elapsed().as_millis());
    let tmp = tempfile::tempdir().context("making throwaway profiles")?;
    let mut rng = os_rng();
    let t = Instant::now();
    let kdf = KdfParams::default();
    let alice = Profile::create(
        &tmp.path().join("alice"),
        "Alice",
        "demo passphrase a",
        kdf,
        &mut rng,
    )?;
    let bob = Profile::create(
        &tmp.path().join("bob"),
        "Bob",
        "demo passphrase b",
        kdf,
        &mut rng,
    )?;
    step(
        1,
        "created two throwaway profiles, Alice and Bob, each locked by a passphrase",
        t,
    );
    let t = Instant::now();
    let (code_a, code_b) = (
        alice.identity().invite().to_text(),
        bob.identity().invite().to_text(),
    );
    println!("   Alice's invite: {code_a}");
    println!("   Bob's invite:   {code_b}");
    let invite_a = strand_sync::Invite::from_text(&code_a).map_err(|e| anyhow!("{e}"))?;
    let invite_b = strand_sync::Invite::from_text(&code_b).map_err(|e| anyhow!("{e}"))?;
    alice.add_contact(&invite_b, "Bob", now(), &mut rng)?;
    bob.add_contact(&invite_a, "Alice", now(), &mut rng)?;
    alice.write(
        "Bob",
        "Hi Bob, written before we were ever connected.",
        now(),
        &mut rng,
    )?;
    step(
        2,
        "exchanged invites; both added each other; Alice wrote a message while offline",
        t,
    );
    let t = Instant::now();
    let loopback = || {
        Some(LanConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid")],
            mdns: false,
            ..LanConfig::default()
        })
    };
    let node_b = Node::start(
        bob,
        NodeConfig {
            lan: loopback(),
            ..NodeConfig::default()
        },
    )
    .await?;
    let addrs = node_b.wait_listening(Duration::from_secs(1)).await;
    if addrs.is_empty() {
        bail!("Bob's node did not start listening");
    }
    let mut events_b = node_b.subscribe();
    let node_a = Node::start(
        alice,
        NodeConfig {
            lan: loopback(),
            peers: addrs.clone(),
            ..NodeConfig::default()
        },
    )
    .await?;
    let mut events_a = node_a.subscribe();
    step(
        3,
        &format!(
            "started both nodes: libp2p over TCP on loopback, mDNS off; Alice dials {}",
            addrs[0]
        ),
        t,
    );
    let t = Instant::now();
    wait(&mut events_b, Duration::from_secs(20), |e| {
        matches!(e, NodeEvent::Received { .. })
    })
    .await
    .context("Bob never received Alice's offline message")?;
    step(4, "they found each other, authenticated as contacts (Noise KK) and synced: Bob has Alice's offline message", t);
    let t = Instant::now();
    for i in 0..messages {
        node_a
            .send("Bob", &format!("Alice → Bob #{}", i + 1))
            .await?;
        node_b
            .send("Alice", &format!("Bob → Alice #{}", i + 1))
            .await?;
    }
    let (mut got_a, mut got_b, mut delivered_a) = (0, 0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got_a < messages || got_b < messages || delivered_a < messages + 1 {
        tokio::select! {
            Ok(e) = events_a.recv() => match e {
                NodeEvent::Received { .. } => got_a += 1,
                NodeEvent::Delivered { .. } => delivered_a += 1,
                _ => {}
            },
            Ok(e) = events_b.recv() => if matches!(e, NodeEvent::Received { .. }) { got_b += 1 },
            _ = tokio::time::sleep_until(deadline) => bail!(
                "timed out: Alice got {got_a}/{messages}, Bob got {got_b}/{messages}, delivered to Bob {delivered_a}/{}", messages + 1),
        }
    }
    step(
        5,
        &format!(
            "sent {messages} messages each way; all arrived and Alice saw every one delivered"
        ),
        t,
    );
    let conv_a = conversation(node_a.profile(), "Bob")?;
    let conv_b = conversation(node_b.profile(), "Alice")?;
    // The same messages: each side shows them in its own order (a text
    // that arrives dated before what the user already wrote shows when it
    // arrived), so the logs are compared as sets.
    let ids = |c: &[MessageView]| {
        c.iter()
            .map(|m| m.id.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    if ids(&conv_a) != ids(&conv_b) || conv_a.len() != 2 * messages + 1 {
        bail!(
            "the logs differ: Alice holds {}, Bob holds {}",
            conv_a.len(),
            conv_b.len()
        );
    }
    println!("\nBob's view of the conversation:");
    for m in conv_b.iter().take(8) {
        print_message(m, false).map_err(|e| anyhow!(e.line()))?;
    }
    if conv_b.len() > 8 {
        println!("   … {} more", conv_b.len() - 8);
    }
    let status = node_a.status().await;
    println!(
        "\nOK: {} messages in both logs, identical. {} bytes sent by Alice's node, {} received. Total {} ms.",
        conv_a.len(),
        status.bytes_sent,
        status.bytes_received,
        started.elapsed().as_millis()
    );
    node_a.shutdown().await;
    node_b.shutdown().await;
    Ok(())
}

async fn wait(
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    within: Duration,
    mut f: impl FnMut(&NodeEvent) -> bool,
) -> Result<()> {
    tokio::time::timeout(within, async {
        loop {
            match rx.recv().await {
                Ok(e) if f(&e) => return Ok(()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(anyhow!("{e}")),
            }
        }
    })
    .await
    .map_err(|_| anyhow!("timed out after {} s", within.as_secs()))?
}
