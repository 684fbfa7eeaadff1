//! strand-node benchmarks: `cargo bench -p strand-node`.
//!
//! Prints, each next to a baseline measured in the same run:
//!
//! 1. **Bulk sync**: 100,000 messages of 1 KiB from one node to an empty
//!    one over libp2p on loopback (the receiver is a real `strand run`
//!    process); messages per second, against one core verifying the same
//!    messages' Ed25519 signatures one at a time (the floor the node used
//!    to be held to), batch verification on one core, and strand-sync
//!    alone moving them between in-memory stores. Target ≥ 30,000/s on
//!    this 2-core machine.
//! 2. **First message under a flood**: a contact's node started → its
//!    first message delivered, while a stranger opens 50 links a second to
//!    the receiver, against the same figure without the stranger; medians
//!    of 5. Target: within 2×.
//! 3. **Idle memory**: resident memory of that `strand run` process, idle,
//!    holding the 100,000 messages; against the same binary idle with an
//!    empty profile. Target ≤ 40 MiB.
//!
//! `STRAND_BENCH_MESSAGES=20000` shrinks the bulk figure for a quick run.

#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/flood.rs"]
mod flood;
#[path = "common/process.rs"]
mod process;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use strand_node::{os_rng, KdfParams, Node, NodeConfig, NodeEvent, Profile};
use strand_sync::{Inbound, Kind, Message, WriteStore};
use strand_transport::{LanConfig, Multiaddr};

use process::{rss_kib, spawn_printing};

const BIN: &str = env!("CARGO_BIN_EXE_strand");
const PASS: &str = "bench passphrase";

fn loopback() -> Option<LanConfig> {
    Some(LanConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        mdns: false,
        ..LanConfig::default()
    })
}

fn pair(root: &Path) -> (Profile, Profile) {
    let mut rng = os_rng();
    let kdf = KdfParams::insecure_for_tests();
    let a = Profile::create(&root.join("a"), "Alice", PASS, kdf, &mut rng).unwrap();
    let b = Profile::create(&root.join("b"), "Bob", PASS, kdf, &mut rng).unwrap();
    let (ia, ib) = (a.identity().invite(), b.identity().invite());
    a.add_contact(&ib, "Bob", 0, &mut rng).unwrap();
    b.add_contact(&ia, "Alice", 0, &mut rng).unwrap();
    (a, b)
}

fn messages(p: &Profile, n: usize) -> Vec<Message> {
    let group = p.sync_contacts()[0].direct_group().clone();
    let t0 = strand_node::now() - n as u64 * 10;
    let identity = &*p.identity();
    std::thread::scope(|s| {
        let halves: Vec<_> = (0..2)
            .map(|h| {
                let group = &group;
                s.spawn(move || {
                    let mut rng = os_rng();
                    let body = vec![b'x'; 1024];
                    (h * n / 2..(h + 1) * n / 2)
                        .map(|i| {
                            Message::create(
                                identity,
                                group,
                                t0 + i as u64 * 10,
                                Kind::TEXT,
                                &body,
                                &mut rng,
                            )
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

fn spawn_run(dir: &Path) -> (Child, String) {
    let mut command = Command::new(BIN);
    command
        .args(["run", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .env("STRAND_PROFILE", dir)
        .env("STRAND_PASSPHRASE", PASS);
    let (child, line) = spawn_printing(command);
    (child, line.trim_start_matches("listening on ").to_owned())
}

fn stored(dir: &Path) -> u64 {
    let out = Command::new(BIN)
        .args(["status", "--json"])
        .env("STRAND_PROFILE", dir)
        .env("STRAND_PASSPHRASE", PASS)
        .output()
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["messages"].as_u64())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery
    }
    let n: usize = std::env::var("STRAND_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("strand-node benchmarks (release build, loopback, this machine)\n");
    // `STRAND_BENCH_ONLY=flood` runs figure 2 alone.
    if std::env::var("STRAND_BENCH_ONLY").as_deref() == Ok("flood") {
        print_first_message(&rt);
        return;
    }

    // 1. Bulk sync.
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let t = Instant::now();
    let msgs = messages(&a, n);
    let a_group = a.sync_contacts()[0].direct_group().clone();
    {
        let group = a.sync_contacts()[0].direct_group().id;
        let mut store = a.store().unwrap();
        for m in &msgs {
            store.insert(&group, m).unwrap();
        }
        store.commit().unwrap();
    }
    println!(
        "1. bulk sync of {n} messages of 1 KiB, empty receiver (made in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let b_dir = b.dir().to_path_buf();
    drop(b);
    let (mut b_run, b_addr) = spawn_run(&b_dir);
    let started = Instant::now();
    let node_a = rt
        .block_on(Node::start(
            a,
            NodeConfig {
                lan: loopback(),
                peers: vec![b_addr.parse().unwrap()],
                ..NodeConfig::default()
            },
        ))
        .unwrap();
    while stored(&b_dir) < n as u64 {
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "bulk sync did not finish"
        );
    }
    let bulk = started.elapsed();
    // Baseline: the same messages through strand-sync alone, in memory.
    let mut mem = strand_sync::harness::Pair::new(1);
    let group = mem.a.group().clone();
    let base_msgs = {
        let mut rng = os_rng();
        let body = vec![b'x'; 1024];
        (0..n)
            .map(|i| {
                Message::create(
                    &mem.a.identity,
                    &group,
                    mem.now - 1_000_000 + i as u64,
                    Kind::TEXT,
                    &body,
                    &mut rng,
                )
                .unwrap()
            })
            .collect::<Vec<_>>()
    };
    for m in &base_msgs {
        mem.a.store.insert(&group.id, m).unwrap();
    }
    mem.latency = 0;
    let t = Instant::now();
    mem.connect();
    mem.drive();
    let base = t.elapsed();
    assert_eq!(mem.b.store.len(&group.id), n);
    let rate = n as f64 / bulk.as_secs_f64();
    let base_rate = n as f64 / base.as_secs_f64();
    // One core verifying the same kind of messages, one at a time and in
    // batches of 15 (what a 16 KiB packet of 1 KiB messages carries).
    let sample = &msgs[..msgs.len().min(5_000)];
    let t = Instant::now();
    for m in sample {
        m.verify_signature().unwrap();
    }
    let single = sample.len() as f64 / t.elapsed().as_secs_f64();
    let group = a_group;
    let t = Instant::now();
    for chunk in sample.chunks(15) {
        let mut batch = Inbound::new(&group, chunk.iter().cloned());
        batch.verify(strand_node::now());
    }
    let batched = sample.len() as f64 / t.elapsed().as_secs_f64();
    println!("   {rate:>9.0} messages/s   node to node over libp2p on loopback, into redb ({:.1} s; target ≥ 30,000/s)", bulk.as_secs_f64());
    println!("   {single:>9.0} messages/s   baseline: Ed25519 verification alone, one core, one at a time (same run)");
    println!("   {batched:>9.0} messages/s   … and in batches of 15 with the body checks (Inbound::verify), one core");
    println!("   {base_rate:>9.0} messages/s   strand-sync alone, in-memory stores, virtual link, one core, same run");
    println!(
        "   {:>9.1} ×            the single-core verification rate\n",
        rate / single
    );

    // 3. Idle memory of the receiver holding the messages (once idle: the
    // node releases what the burst freed within two checks).
    std::thread::sleep(Duration::from_secs(5));
    let full_rss = rss_kib(b_run.id());
    let _ = b_run.kill();
    let _ = b_run.wait();
    drop(node_a);
    let empty_dir = tmp.path().join("empty");
    drop(
        Profile::create(
            &empty_dir,
            "Empty",
            PASS,
            KdfParams::insecure_for_tests(),
            &mut os_rng(),
        )
        .unwrap(),
    );
    let (mut e_run, _) = spawn_run(&empty_dir);
    std::thread::sleep(Duration::from_secs(5));
    let empty_rss = rss_kib(e_run.id());
    let _ = e_run.kill();
    let _ = e_run.wait();

    print_first_message(&rt);

    println!("3. resident memory of an idle `strand run`");
    println!(
        "   {:>9.1} MiB           holding {n} messages (target ≤ 40 MiB)",
        full_rss as f64 / 1024.0
    );
    println!(
        "   {:>9.1} MiB           baseline: the same binary idle with an empty profile",
        empty_rss as f64 / 1024.0
    );
}

fn median(times: &[Duration]) -> f64 {
    times[times.len() / 2].as_secs_f64()
}

/// Five times: Bob's node up (listening on 127.0.0.1 and ::1), optionally
/// a stranger flooding ::1 at 50 links a second, then Alice's node starts,
/// dials 127.0.0.1 and sends; the time until Alice sees it delivered.
fn first_message_times(rt: &tokio::runtime::Runtime, flood_it: bool) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = pair(tmp.path());
        a.write("Bob", "first", strand_node::now(), &mut os_rng())
            .unwrap();
        let t = rt.block_on(async {
            let node_b = Node::start(
                b,
                NodeConfig {
                    lan: Some(LanConfig {
                        listen: vec![
                            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
                            "/ip6/::1/tcp/0".parse().unwrap(),
                        ],
                        mdns: false,
                        ..LanConfig::default()
                    }),
                    ..NodeConfig::default()
                },
            )
            .await
            .unwrap();
            let addrs = node_b.wait_listening(Duration::from_secs(10)).await;
            let pick = |v6: bool| -> Multiaddr {
                addrs
                    .iter()
                    .find(|a| a.to_string().starts_with(if v6 { "/ip6" } else { "/ip4" }))
                    .unwrap()
                    .clone()
            };
            // The stranger is another device: its own thread and runtime.
            let stranger = flood_it.then(|| {
                let addr = pick(true);
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(flood::flood(addr, 50, Duration::from_secs(8)))
                })
            });
            // The flood in full swing before Alice arrives; the baseline
            // waits the same (a machine that sat idle is slower at first).
            tokio::time::sleep(Duration::from_secs(3)).await;
            let t = Instant::now();
            let node_a = Node::start(
                a,
                NodeConfig {
                    lan: loopback(),
                    peers: vec![pick(false)],
                    ..NodeConfig::default()
                },
            )
            .await
            .unwrap();
            let mut ev = node_a.subscribe();
            loop {
                if let Ok(NodeEvent::Delivered { .. }) = ev.recv().await {
                    break;
                }
            }
            let took = t.elapsed();
            if let Some(s) = stranger {
                let report = s.join().unwrap();
                assert!(
                    report.streams + report.connections > 0,
                    "the stranger got nowhere"
                );
            }
            node_a.shutdown().await;
            node_b.shutdown().await;
            took
        });
        times.push(t);
    }
    times.sort();
    times
}

/// A contact's node started → first message delivered (figure 2), with
/// and without a stranger flooding the receiver.
fn print_first_message(rt: &tokio::runtime::Runtime) {
    let quiet = first_message_times(rt, false);
    let flooded = first_message_times(rt, true);
    let (q, f) = (median(&quiet), median(&flooded));
    println!("2. a contact's node started → first message delivered (loopback, median of 5)");
    println!(
        "   {:>9.1} ms            while a stranger opens 50 links a second to the receiver (min {:.1}, max {:.1})",
        f * 1e3,
        flooded[0].as_secs_f64() * 1e3,
        flooded[4].as_secs_f64() * 1e3
    );
    println!(
        "   {:>9.1} ms            baseline: the same without the stranger (min {:.1}, max {:.1})",
        q * 1e3,
        quiet[0].as_secs_f64() * 1e3,
        quiet[4].as_secs_f64() * 1e3
    );
    println!(
        "   {:>9.2} ×            of the baseline (target ≤ 2)\n",
        f / q
    );
}
