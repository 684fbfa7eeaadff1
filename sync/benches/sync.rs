//! strand-sync benchmarks: `cargo bench -p strand-sync`.
//!
//! Prints five figures, each next to a baseline measured in the same run:
//!
//! 1. **Handshake**: round trips and bytes until the first sync data.
//! 2. **Receive path**: messages per second through decrypt packet →
//!    parse → verify signature → decrypt body → store (in memory), on one
//!    core, against signature verification alone (the floor). Target ≥ 50%.
//! 3. **Reconciliation** of two logs of 1,000,000 messages that differ by
//!    1, 10, 1,000 and 10,000, with 16 KiB and with 512-byte packets:
//!    total bytes both ways and round trips, against the
//!    bytes a naive id exchange (Briar's offer/ack) would need for the same
//!    logs. Target for a difference of 1: ≤ 1 KiB and ≤ 3 round trips.
//! 4. **Keyed tags** against the public tags of version 2: the
//!    same reconciliations at 1, 10 and 1,000 differences with each, bytes,
//!    round trips and CPU, and the time of one whole-log fingerprint.
//! 5. **Eviction**: one large envelope arriving at a carrier full of
//!    100,000 small ones, evicting the oldest for room, against the same
//!    arrival into room on the same carrier; and, for scale, one pass over
//!    everything held (what each eviction cost before the arrival index).
//!
//! Then criterion times the handshake and the receive path.
//! `STRAND_BENCH_LOG=100000` shrinks the reconciliation logs for a quick run,
//! `STRAND_BENCH_HELD=10000` the full carrier.

// A benchmark measures wall time; the sans-IO rule is for the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use strand_sync::harness::Pair;
use strand_sync::{
    Arrival, Carrier, CarryConfig, Envelope, Event, Group, Handout, Identity, Inbound, KeyRange,
    Kind, MemoryStore, Message, Session, Spread, Store, TagKey, WriteStore, ENVELOPE_HEADER_LEN,
    MAX_CARRY_BUDGET,
};

const RECEIVE_BATCH: usize = 2_000;
/// Envelopes the full carrier of figure 5 holds: about a tenth of what the
/// largest budget (1 GiB) holds of the smallest envelopes.
const HELD: usize = 100_000;

fn main() {
    let log: usize = std::env::var("STRAND_BENCH_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let held: usize = std::env::var("STRAND_BENCH_HELD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(HELD);
    println!("strand-sync benchmarks (release build, one core)\n");
    handshake_figures();
    receive_figures();
    reconciliation_figures(log);
    eviction_figures(held);

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    c.bench_function("handshake (both sides, CPU)", |b| {
        b.iter_batched(
            || Pair::new(1),
            |mut pair| {
                pair.connect();
                while !pair.a.session.as_ref().is_some_and(Session::is_established) {
                    pair.step_with(false);
                }
                pair
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function(&format!("receive path, {RECEIVE_BATCH} messages"), |b| {
        b.iter_batched(
            || prepared_receive(RECEIVE_BATCH, 1),
            |mut r| {
                r.run();
                r
            },
            BatchSize::LargeInput,
        )
    });
    c.bench_function(
        &format!("signature verification, {RECEIVE_BATCH} messages"),
        |b| {
            let r = prepared_receive(RECEIVE_BATCH, 1);
            b.iter(|| r.verify_all())
        },
    );
    c.final_summary();
}

fn handshake_figures() {
    let mut pair = Pair::new(7);
    pair.latency = 50;
    let first = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let f = first.clone();
    pair.filter = Some(Box::new(move |side, bytes| {
        if side == strand_sync::harness::Side::B && f.get() == 0 {
            f.set(bytes.len() as u64);
        }
        strand_sync::harness::Action::Deliver
    }));
    pair.connect();
    while !pair
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::Established { .. }))
    {
        assert!(pair.step_with(false), "handshake did not finish");
    }
    let rtt = 2 * pair.latency;
    let time = pair.now - strand_sync::harness::EPOCH;
    println!("1. link preamble and handshake (beacon, hello with token, Noise KK), until the dialler holds the first sync data");
    println!(
        "   {:.1} round trips from the link opening, {} bytes: beacon record {} and answer {} from the acceptor, hello {} (random padding included)",
        time as f64 / rtt as f64,
        pair.stats.bytes_a_to_b + pair.stats.bytes_b_to_a,
        first.get(),
        pair.stats.bytes_b_to_a - first.get(),
        pair.stats.bytes_a_to_b,
    );
    println!("   baseline: Noise XX (identities sent encrypted) needs 1.5 round trips before the initiator may send;");
    println!("             here the acceptor's beacon (half a round trip) binds the hello to this link, then KK needs 1.\n");
}

struct Receive {
    session: Session,
    store: MemoryStore,
    packets: Vec<Vec<u8>>,
    messages: Vec<Message>,
    group: Group,
    now: u64,
}

impl Receive {
    fn run(&mut self) {
        for p in &self.packets {
            self.session
                .handle_input(self.now, p, &self.store)
                .expect("valid packets");
            self.session.settle(self.now, &mut self.store);
        }
    }

    fn verify_all(&self) {
        for m in &self.messages {
            m.verify_signature().expect("valid signature");
        }
    }

    /// The same messages through `Inbound::verify`, in batches of `per`.
    fn verify_batched(&self, per: usize) {
        for chunk in self.messages.chunks(per) {
            let mut batch = Inbound::new(&self.group, chunk.iter().cloned());
            batch.verify(self.now);
            assert!(batch
                .iter()
                .all(|m| *m.verdict() == strand_sync::Verdict::Valid));
        }
    }
}

/// A connected pair where Alice has pushed `n` messages (100-byte bodies)
/// that Bob has not read yet: Bob's session, his empty store, the packets.
fn prepared_receive(n: usize, seed: u64) -> Receive {
    let mut pair = Pair::new(seed);
    pair.connect();
    pair.drive();
    let group = pair.a.group().clone();
    let now = pair.now;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut messages = Vec::with_capacity(n);
    let body = [b'm'; 100];
    for i in 0..n {
        let m = Message::create(
            &pair.a.identity,
            &group,
            now - i as u64,
            Kind::TEXT,
            &body,
            &mut rng,
        )
        .unwrap();
        pair.a.store.insert(&group.id, &m).unwrap();
        pair.a
            .session
            .as_mut()
            .unwrap()
            .handle_new_message(&group.id, m.key());
        messages.push(m);
    }
    let mut packets = Vec::new();
    let session = pair.a.session.as_mut().unwrap();
    while let Some(p) = session.poll_transmit(now, &pair.a.store) {
        packets.push(p);
    }
    Receive {
        session: pair.b.session.take().unwrap(),
        store: std::mem::take(&mut pair.b.store),
        packets,
        messages,
        group,
        now,
    }
}

fn best_of<F: FnMut() -> Duration>(runs: usize, mut f: F) -> Duration {
    (0..runs).map(|_| f()).min().unwrap()
}

fn receive_figures() {
    let n = RECEIVE_BATCH;
    let full = best_of(7, || {
        let mut r = prepared_receive(n, 2);
        let t = Instant::now();
        r.run();
        let e = t.elapsed();
        assert_eq!(r.store.len(&r.messages[0].group()), n);
        e
    });
    let r = prepared_receive(n, 2);
    let floor = best_of(7, || {
        let t = Instant::now();
        r.verify_all();
        t.elapsed()
    });
    // Batches of 15: what one 16 KiB packet of 1 KiB messages carries.
    let batched = best_of(7, || {
        let t = Instant::now();
        r.verify_batched(15);
        t.elapsed()
    });
    let rate = n as f64 / full.as_secs_f64();
    let floor_rate = n as f64 / floor.as_secs_f64();
    let batch_rate = n as f64 / batched.as_secs_f64();
    println!("2. receive path (decrypt packet, parse, verify signatures per packet in a batch, decrypt body, store in memory), one core");
    println!("   {rate:>10.0} messages/s   ({n} messages of 100-byte text, best of 7)");
    println!("   {floor_rate:>10.0} messages/s   baseline: Ed25519 signature verification alone, one at a time, same messages");
    println!(
        "   {:>10.1} %            of that baseline (target ≥ 50 %)",
        100.0 * rate / floor_rate
    );
    println!(
        "   {batch_rate:>10.0} messages/s   full checks (signature, time, body) in batches of 15 as Inbound::verify does: {:.2}x one at a time\n",
        batch_rate / floor_rate
    );
}

/// `n` real messages in one group, alternating authors, timestamps one
/// second apart, built on two threads.
fn make_log(alice: &Identity, bob: &Identity, group: &Group, n: usize, start: u64) -> Vec<Message> {
    let threads = 2;
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut rng = ChaCha20Rng::seed_from_u64(100 + t as u64);
                    let lo = t * chunk;
                    let hi = (lo + chunk).min(n);
                    (lo..hi)
                        .map(|i| {
                            let author = if i % 2 == 0 { alice } else { bob };
                            let body = format!("message number {i} in a long shared history");
                            Message::create(
                                author,
                                group,
                                start + i as u64 * 1000,
                                Kind::TEXT,
                                body.as_bytes(),
                                &mut rng,
                            )
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn reconciliation_figures(n: usize) {
    let template = Pair::new(3);
    let group = template.a.group().clone();
    let start = template.now - 2_000_000 * 1000;
    let t = Instant::now();
    let log = make_log(&template.a.identity, &template.b.identity, &group, n, start);
    let mut base = MemoryStore::new();
    for m in &log {
        base.insert(&group.id, m).unwrap();
    }
    drop(log);
    println!(
        "3. reconciliation of two logs of {n} messages (built in {:.1} s), 50 ms one way, unlimited rate",
        t.elapsed().as_secs_f64()
    );
    println!(
        "   {:>7} {:>10} {:>12} {:>14} {:>12} {:>12} {:>14}",
        "packet",
        "difference",
        "bytes",
        "bytes w/o msgs",
        "round trips",
        "CPU time",
        "naive id xchg"
    );
    // Packets of 16 KiB (the LAN's and relays') and of 512 bytes (the
    // smallest a session uses; the BLE benchmarks measure both).
    for (packet, d) in [16 * 1024, 512]
        .into_iter()
        .flat_map(|p| [1usize, 10, 1000, 10_000].map(move |d| (p, d)))
    {
        let run = reconcile(&base, &group, start, n, d, packet, false);
        let naive = 2 * 32 * n as u64 + 32 * d as u64;
        println!(
            "   {:>7} {:>10} {:>12} {:>14} {:>12.1} {:>9.0} ms {:>11.1} MB",
            packet,
            d,
            run.bytes,
            run.bytes - run.payload,
            run.rtts,
            run.cpu.as_secs_f64() * 1000.0,
            naive as f64 / 1e6
        );
    }
    println!(
        "   (bytes: everything on the link, preamble and acknowledgements included; round trips:"
    );
    println!("    from the link opening (the beacon) to the last message stored. Target for 1: ≤ 1 KiB, ≤ 3.)");
    println!("   baseline: a naive id exchange sends every id both ways (32 bytes each), as Briar's offer/ack does.\n");
    tag_figures(&base, &group, start, n);
}

/// One reconciliation's figures.
struct Run {
    bytes: u64,
    payload: u64,
    rtts: f64,
    cpu: Duration,
}

/// Reconciles two copies of `base` that differ by `d` messages at random
/// places (all on Alice's side for d = 1, else split between the two).
fn reconcile(
    base: &MemoryStore,
    group: &Group,
    start: u64,
    n: usize,
    d: usize,
    packet: usize,
    unkeyed_tags: bool,
) -> Run {
    let mut rng = ChaCha20Rng::seed_from_u64(9 + d as u64);
    let mut pair = Pair::new(3);
    pair.latency = 50;
    let config = strand_sync::Config {
        max_packet: packet,
        unkeyed_tags,
    };
    pair.a.config = config;
    pair.b.config = config;
    pair.a.store = base.clone();
    pair.b.store = base.clone();
    let mut payload = 0u64;
    for i in 0..d {
        let time = start + rng.next_u64() % (n as u64 * 1000);
        let on_alice = d == 1 || i % 2 == 0;
        let author = if on_alice {
            &pair.a.identity
        } else {
            &pair.b.identity
        };
        let body = format!("difference {i}");
        let m =
            Message::create(author, group, time, Kind::TEXT, body.as_bytes(), &mut rng).unwrap();
        payload += m.as_bytes().len() as u64;
        let store = if on_alice {
            &mut pair.a.store
        } else {
            &mut pair.b.store
        };
        store.insert(&group.id, &m).unwrap();
    }
    let t = Instant::now();
    pair.connect();
    pair.drive();
    let cpu = t.elapsed();
    assert_eq!(pair.a.store.len(&group.id), n + d);
    assert_eq!(pair.a.store.keys(&group.id), pair.b.store.keys(&group.id));
    let done = pair
        .a
        .last_received_at
        .into_iter()
        .chain(pair.b.last_received_at)
        .max()
        .unwrap();
    Run {
        bytes: pair.bytes(),
        payload,
        rtts: (done - strand_sync::harness::EPOCH) as f64 / (2 * pair.latency) as f64,
        cpu,
    }
}

/// Tags keyed per session (PROTOCOL.md §8.0) against version 2's public
/// tags: the same reconciliations, and the cost of one whole-log sum.
fn tag_figures(base: &MemoryStore, group: &Group, start: u64, n: usize) {
    println!("4. keyed tags (SipHash per session) against version 2's public tags (first 8 id bytes), 16 KiB packets");
    println!(
        "   {:>10} {:>14} {:>14} {:>12} {:>12} {:>12} {:>12}",
        "difference",
        "bytes keyed",
        "bytes public",
        "RTTs keyed",
        "RTTs public",
        "CPU keyed",
        "CPU public"
    );
    for d in [1usize, 10, 1000] {
        let keyed = reconcile(base, group, start, n, d, 16 * 1024, false);
        let public = reconcile(base, group, start, n, d, 16 * 1024, true);
        println!(
            "   {:>10} {:>14} {:>14} {:>12.1} {:>12.1} {:>9.0} ms {:>9.0} ms",
            d,
            keyed.bytes,
            public.bytes,
            keyed.rtts,
            public.rtts,
            keyed.cpu.as_secs_f64() * 1000.0,
            public.cpu.as_secs_f64() * 1000.0
        );
    }
    let sum = |tags: &TagKey| {
        best_of(5, || {
            let t = Instant::now();
            let s = base.summarize(&group.id, &KeyRange::ALL, tags).unwrap();
            std::hint::black_box(s);
            t.elapsed()
        })
    };
    let keyed = sum(&TagKey::for_session(&[7; 32], b"bench"));
    let public = sum(&TagKey::unkeyed());
    println!(
        "   one fingerprint of all {n} messages: {:.1} ms keyed, {:.1} ms public ({:.1} ns per id more)",
        keyed.as_secs_f64() * 1000.0,
        public.as_secs_f64() * 1000.0,
        (keyed.as_secs_f64() - public.as_secs_f64()) * 1e9 / n as f64
    );
    println!("   (the wire format is the same: tags and sums stay 8 bytes; what keying costs is hashing each id once per range visited)\n");
}

/// What one large arrival costs a carrier full of `n` small envelopes,
/// which evicts the oldest for room, against the same arrival into room.
fn eviction_figures(n: usize) {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sender = Identity::generate("sender", &mut rng).unwrap();
    let me = Identity::generate("carrier", &mut rng).unwrap();
    let recipient = Identity::generate("recipient", &mut rng).unwrap();
    let (sp, mp, rp) = (sender.public(), me.public(), recipient.public());
    let now = strand_sync::harness::EPOCH;
    // A small envelope (the smallest size) and a large one, as their
    // sender hands them to a carrier.
    let group = sender.contact(&rp).unwrap().direct_group().clone();
    let mut spreading = Carrier::new(CarryConfig {
        spread: Spread::SprayAndWait,
        ..CarryConfig::default()
    });
    spreading.set_carrier(&mp.sign, true, now);
    for body in [b"small".to_vec(), vec![b'l'; 200_000]] {
        let m = Message::create(&sender, &group, now, Kind::TEXT, &body, &mut rng).unwrap();
        assert!(spreading.originate(&rp, m, now));
    }
    let mut handed = spreading.hand(&mp, now, &mut rng);
    assert_eq!(handed.len(), 2);
    handed.sort_by_key(|h| h.body.len());
    let (small, large) = (&handed[0], &handed[1]);
    // Distinct envelopes: copies of those two, each with another
    // acknowledgement hash (the header's last 16 bytes, after the handing
    // mode). A carrier cannot tell them from sealed ones, and sealing
    // 100,000 would take longer than the figure.
    let at = 1 + ENVELOPE_HEADER_LEN - 16;
    let variant = |h: &Handout, i: u64| {
        let mut body = h.body.clone();
        body[at..at + 8].copy_from_slice(&i.to_be_bytes());
        body
    };
    let one = small.body.len() as u64 - 1;
    let big = large.body.len() as u64 - 1;
    // Full, with room for one large envelope.
    let n = n.min(((MAX_CARRY_BUDGET - big) / one) as usize);
    let config = CarryConfig {
        budget: n as u64 * one + big,
        ..CarryConfig::default()
    };
    let t = Instant::now();
    let mut full = Carrier::new(config);
    for i in 0..n as u64 {
        match full.receive_envelope(&me, &sp, &variant(small, i), now) {
            Ok(Arrival::Held { evicted: 0 }) => {}
            other => panic!("{other:?}"),
        }
    }
    let filled = t.elapsed();
    let (first, second) = (variant(large, 1), variant(large, 2));
    // Each run on its own copy of the full carrier, made before the clock
    // starts.
    let into_room = best_of(5, || {
        let mut c = full.clone();
        let t = Instant::now();
        let arrival = c.receive_envelope(&me, &sp, &first, now);
        let e = t.elapsed();
        assert!(
            matches!(&arrival, Ok(Arrival::Held { evicted: 0 })),
            "{arrival:?}"
        );
        e
    });
    let k = big.div_ceil(one) as usize;
    let evicting = best_of(5, || {
        let mut c = full.clone();
        c.receive_envelope(&me, &sp, &first, now).unwrap();
        let t = Instant::now();
        let arrival = c.receive_envelope(&me, &sp, &second, now);
        let e = t.elapsed();
        assert!(
            matches!(&arrival, Ok(Arrival::Held { evicted }) if *evicted == k),
            "{arrival:?}"
        );
        e
    });
    let scan = best_of(5, || {
        let t = Instant::now();
        std::hint::black_box(full.envelopes().map(Envelope::id).min());
        t.elapsed()
    });
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "5. eviction: a carrier full of {n} envelopes of {one} bytes (filled in {:.1} s) takes one of {big} bytes",
        filled.as_secs_f64()
    );
    println!(
        "   {:>12.1} µs   the arrival, evicting the oldest {k} (best of 5)",
        us(evicting)
    );
    println!(
        "   {:>12.1} µs   baseline: the same arrival into room, evicting nothing, on the same carrier",
        us(into_room)
    );
    println!(
        "   {:>12.2} µs   per envelope evicted, over the baseline",
        (us(evicting) - us(into_room)) / k as f64
    );
    println!(
        "   {:>12.1} µs   for scale: one pass over the {n} held, about what each eviction cost before the arrival index ({k} passes: {:.1} ms)\n",
        us(scan),
        us(scan) * k as f64 / 1000.0
    );
}
