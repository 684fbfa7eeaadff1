//! File transfer throughput: `cargo bench -p strand-node --bench files`.
//!
//! Prints, next to a baseline measured in the same run:
//!
//! * **A 64 MiB file** from one node to another over libp2p on loopback
//!   (both in this process, each with its sealed store): MiB/s from the
//!   receiver's start to the whole file stored, and from its manifest
//!   listed (the link up, the chunks flowing) to the whole file stored,
//!   against a raw TCP copy of the same bytes over loopback in the same
//!   process. Target ≥ 50 % of it: not reached, and not
//!   reachable with sealed stores and encrypted links on this machine's
//!   two cores. On its way every byte is unsealed from the sender's store,
//!   encrypted and decrypted twice (libp2p's Noise under the session's
//!   Noise), decrypted once more to check the chunk, hashed to check its
//!   id, and sealed into the receiver's store: seven ChaCha20-Poly1305
//!   passes and a BLAKE2s pass, plus two syncs per commit, against one
//!   kernel copy for the baseline. So it also prints the transfer against
//!   storing the same file into the sender's own store, in the same run.
//! * How long storing the file for sending took (chunking, encrypting,
//!   signing, writing), and how long saving it back out took (reading,
//!   decrypting, checking the hash).
//!
//! `STRAND_BENCH_FILE_MIB=16` changes the size.

#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use strand_node::{os_rng, Conversation, KdfParams, Node, NodeConfig, Profile};
use strand_transport::LanConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASS: &str = "bench passphrase";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: usize = std::env::var("STRAND_BENCH_FILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let size = mib << 20;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for c in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
    }
    let path = tmp.path().join("payload.bin");
    std::fs::write(&path, &data).unwrap();

    // Baseline: the same bytes through a loopback TCP socket.
    let raw = best_of(3, || rt.block_on(tcp_copy(&data)));

    let mut rng = os_rng();
    let kdf = KdfParams::insecure_for_tests();
    let a = Profile::create(&tmp.path().join("a"), "Alice", PASS, kdf, &mut rng).unwrap();
    let b = Profile::create(&tmp.path().join("b"), "Bob", PASS, kdf, &mut rng).unwrap();
    a.add_contact(&b.identity().invite(), "Bob", 0, &mut rng)
        .unwrap();
    b.add_contact(&a.identity().invite(), "Alice", 0, &mut rng)
        .unwrap();
    let t = Instant::now();
    a.send_file(
        Conversation::Contact("Bob"),
        &path,
        strand_node::now(),
        &mut rng,
    )
    .unwrap();
    let stored = t.elapsed();

    let lan = || LanConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        mdns: false,
        ..LanConfig::default()
    };
    let node_a = rt
        .block_on(Node::start(
            a,
            NodeConfig {
                lan: Some(lan()),
                ..NodeConfig::default()
            },
        ))
        .unwrap();
    let addr = rt.block_on(node_a.wait_listening(Duration::from_secs(10)))[0].clone();
    let start = Instant::now();
    let node_b = rt
        .block_on(Node::start(
            b,
            NodeConfig {
                lan: Some(lan()),
                peers: vec![addr],
                ..NodeConfig::default()
            },
        ))
        .unwrap();
    // When the manifest arrived (it goes before the chunks): the link is
    // up and the chunks start to flow.
    let mut listed = None;
    let id = loop {
        let file = node_b
            .profile()
            .conversation("Alice")
            .ok()
            .and_then(|c| c.into_iter().find(|m| m.file.is_some()));
        if file.is_some() && listed.is_none() {
            listed = Some(start.elapsed());
        }
        let done = file.filter(|m| m.file.as_ref().is_some_and(|f| f.complete()));
        if let Some(m) = done {
            break m
                .key
                .id
                .0
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the file never arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let synced = start.elapsed();
    let flowing = synced - listed.expect("listed before complete");
    let t = Instant::now();
    let out = node_b
        .profile()
        .save_file(&id, &tmp.path().join("out"))
        .unwrap();
    let saved = t.elapsed();
    assert_eq!(std::fs::read(out).unwrap(), data, "byte-identical");
    rt.block_on(node_a.shutdown());
    rt.block_on(node_b.shutdown());

    let rate = |d: Duration| mib as f64 / d.as_secs_f64();
    println!("strand-node file benchmark (release build, loopback, this machine)\n");
    println!(
        "a {mib} MiB file, node to node over libp2p TCP on loopback, sealed stores on both sides"
    );
    println!(
        "   {:>8.1} MiB/s   receiver started → whole file stored ({:.2} s; includes connecting and the handshake)",
        rate(synced),
        synced.as_secs_f64()
    );
    println!(
        "   {:>8.1} MiB/s   manifest listed → whole file stored ({:.2} s; the chunks flowing, the link up)",
        rate(flowing),
        flowing.as_secs_f64()
    );
    println!(
        "   {:>8.1} MiB/s   baseline: the same bytes copied through a loopback TCP socket, best of 3",
        rate(raw)
    );
    println!(
        "   {:>8.1} %        of the baseline, receiver started → stored (target ≥ 50 %)",
        100.0 * raw.as_secs_f64() / synced.as_secs_f64()
    );
    println!(
        "   {:>8.1} %        of the baseline, manifest listed → stored",
        100.0 * raw.as_secs_f64() / flowing.as_secs_f64()
    );
    println!(
        "   {:>8.1} %        of storing the same file into the sender's own store (below): the sealed store is the bound",
        100.0 * stored.as_secs_f64() / synced.as_secs_f64()
    );
    println!(
        "   storing it for sending: {:.2} s ({:.1} MiB/s); saving it back out, hash checked: {:.2} s ({:.1} MiB/s)",
        stored.as_secs_f64(),
        rate(stored),
        saved.as_secs_f64(),
        rate(saved)
    );
}

fn best_of(n: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..n).map(|_| f()).min().unwrap()
}

async fn tcp_copy(data: &[u8]) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let len = data.len();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0;
        while got < len {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got += n;
        }
    });
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(data).await.unwrap();
    s.shutdown().await.unwrap();
    reader.await.unwrap();
    t.elapsed()
}
