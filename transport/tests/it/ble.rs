//! The BLE link layer over the emulated radio: streams of every
//! packet size arrive whole through loss, a slow reader loses nothing, a
//! hostile peer's frames end the link (and no packet of any kind panics
//! it or grows its buffer past its window), and Strand sessions sync
//! 10,000 messages over it, resuming after a dropped connection.

use crate::sync_end::{devices, meet, SyncEnd};
use proptest::prelude::*;
use strand_transport::ble::link::{
    BleLink, LinkConfig, LinkError, Micros, Reason, DATA_HEADER, LINK_TIMEOUT,
};
use strand_transport::ble::radio::{Bulk, Endpoint, Pair, Phy, RadioConfig};

const SECOND: Micros = 1_000_000;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn radio(packet: [usize; 2], loss: f64) -> RadioConfig {
    RadioConfig {
        packet,
        loss,
        ..RadioConfig::new(Phy::OneM, 15_000)
    }
}

/// Sends 100 KB one way and 30 KB the other, both ways at once.
fn bulk(radio: RadioConfig, seed: u64) -> Pair<Bulk> {
    let ends = [
        Bulk::sending(pattern(100_000, 1)),
        Bulk::sending(pattern(30_000, 2)),
    ];
    let mut pair = Pair::new(radio, 64, ends, seed);
    let done = pair.run_while(3_600 * SECOND, |p| p.ends.iter().all(|e| e.eof));
    assert!(
        done,
        "stuck at {} µs: {:?}",
        pair.now(),
        pair.links.iter().map(|l| l.error()).collect::<Vec<_>>()
    );
    pair
}

#[test]
fn a_stream_arrives_whole_at_every_packet_size_and_loss() {
    for packet in [[20, 20], [244, 244], [244, 20], [20, 185]] {
        for loss in [0.0, 0.01, 0.1] {
            let pair = bulk(radio(packet, loss), 7);
            let what = format!("packets {packet:?}, loss {loss}");
            assert_eq!(pair.ends[1].received, pair.ends[0].outgoing, "{what}");
            assert_eq!(pair.ends[0].received, pair.ends[1].outgoing, "{what}");
            assert!(pair.ends.iter().all(|e| e.error.is_none()), "{what}");
            for (i, link) in pair.links.iter().enumerate() {
                // Nobody writes more than the other side takes.
                assert!(link.packet_size() <= Some(packet[i]), "{what}");
            }
            if loss == 0.0 {
                assert_eq!(pair.links[0].stats().retransmitted, 0, "{what}");
            } else {
                assert!(pair.stats.lost > 0, "{what}");
                assert!(pair.links[0].stats().retransmitted > 0, "{what}");
            }
        }
    }
}

/// An endpoint that reads nothing until `wake`, then everything.
struct Sleepy {
    inner: Bulk,
    wake: Micros,
}

impl Endpoint for Sleepy {
    fn drive(&mut self, now: Micros, link: &mut BleLink) {
        if now < self.wake {
            return;
        }
        self.inner.drive(now, link);
    }

    fn poll_timeout(&self) -> Option<Micros> {
        Some(self.wake)
    }
}

#[test]
fn a_reader_that_stops_holds_its_writer_back_and_loses_nothing() {
    let wake = 120 * SECOND;
    let ends = [
        Sleepy {
            inner: Bulk::sending(pattern(50_000, 3)),
            wake: 0,
        },
        Sleepy {
            inner: Bulk::default(),
            wake,
        },
    ];
    let mut pair = Pair::new(radio([244, 244], 0.0), 16, ends, 1);
    pair.run_until(wake - 1);
    // The reader's window (16 frames) is all that crossed; the writer waits
    // and probes, and is still up after two minutes (no timeout).
    let stats = pair.links[1].stats();
    assert!(stats.bytes_received < 16 * 244 + 4_000, "{stats:?}");
    assert!(pair.links[0].error().is_none() && pair.links[1].error().is_none());
    assert!(pair.links[1].readable() > 0);
    let done = pair.run_while(3_600 * SECOND, |p| p.ends[1].inner.eof);
    assert!(done);
    assert_eq!(pair.ends[1].inner.received, pair.ends[0].inner.outgoing);
}

#[test]
fn a_dropped_connection_is_reported_on_both_sides_and_what_arrived_is_a_prefix() {
    let config = RadioConfig {
        drop_at: Some(2 * SECOND),
        ..radio([244, 244], 0.05)
    };
    let ends = [Bulk::sending(pattern(400_000, 4)), Bulk::default()];
    let mut pair = Pair::new(config, 64, ends, 3);
    pair.run_until(3_600 * SECOND);
    assert!(!pair.connected());
    let got = &pair.ends[1].received;
    assert!(!got.is_empty() && got.len() < 400_000, "{}", got.len());
    assert_eq!(got[..], pair.ends[0].outgoing[..got.len()]);
    for end in &pair.ends {
        assert_eq!(end.error, Some(LinkError::Disconnected));
    }
}

#[test]
fn a_peer_that_stops_answering_times_out() {
    let mut link = BleLink::new(LinkConfig::default());
    let mut peer = BleLink::new(LinkConfig::default());
    link.write(b"anyone there?").unwrap();
    // One exchange of HELLOs, then the peer goes silent.
    let hello = link.poll_transmit(0).unwrap();
    peer.handle_packet(0, &hello).unwrap();
    while let Some(p) = peer.poll_transmit(0) {
        link.handle_packet(0, &p).unwrap();
    }
    let mut now = 0;
    while link.error().is_none() {
        while link.poll_transmit(now).is_some() {}
        now = link.poll_timeout().expect("a retransmission is pending");
        link.handle_timeout(now);
    }
    assert_eq!(link.error(), Some(&LinkError::TimedOut));
    assert!(now >= strand_transport::ble::link::LINK_TIMEOUT);
}

/// A hostile frame: what it is, its bytes, and the error it must cause.
type Hostile = (&'static str, Vec<u8>, fn(&LinkError) -> bool);

/// Frames a hostile peer sends after a proper HELLO.
fn hostile_frames() -> Vec<Hostile> {
    fn malformed(e: &LinkError) -> bool {
        matches!(e, LinkError::Malformed(_))
    }
    fn violation(e: &LinkError) -> bool {
        matches!(e, LinkError::Violation(_))
    }
    vec![
        ("empty", vec![], malformed),
        ("unknown type", vec![0x7f, 1, 2], malformed),
        ("short ACK", vec![4, 0, 1], malformed),
        (
            "ACK of unsent frames",
            vec![4, 0, 9, 0, 8, 0, 0, 0, 0],
            violation,
        ),
        (
            "SACK of unsent frames",
            vec![4, 0, 0, 0, 8, 0, 0, 0, 4],
            violation,
        ),
        (
            "window beyond the limit",
            vec![4, 0, 0, 0xff, 0xff, 0, 0, 0, 0],
            violation,
        ),
        ("empty DATA", vec![2], malformed),
        ("FIN with bytes", vec![3, 0, 0, 1], malformed),
        ("PROBE with bytes", vec![5, 1], malformed),
        ("changed HELLO", vec![1, 1, 0, 100, 0, 64], violation),
        ("other version", vec![1, 9, 0, 244, 0, 64], |e| {
            matches!(e, LinkError::Version(9))
        }),
        ("oversize packet", vec![2; 245], |e| {
            matches!(e, LinkError::TooLarge { len: 245, max: 244 })
        }),
        ("garbage", pattern(100, 9), malformed),
    ]
}

#[test]
fn a_hostile_peers_frames_end_the_link_with_an_error() {
    for (what, frame, expected) in hostile_frames() {
        let mut link = BleLink::new(LinkConfig::default());
        let mut peer = BleLink::new(LinkConfig::default());
        // A proper start: HELLOs both ways, so the link trusts nothing yet
        // but has a peer.
        let hello = peer.poll_transmit(0).unwrap();
        link.handle_packet(0, &hello).unwrap();
        while link.poll_transmit(0).is_some() {}
        let err = link.handle_packet(1, &frame).expect_err(what);
        assert!(expected(&err), "{what}: {err:?}");
        assert_eq!(link.error(), Some(&err), "{what}");
        // It tells the peer once, then is silent and refuses everything.
        let abort = link.poll_transmit(2).expect(what);
        assert_eq!(
            peer.handle_packet(2, &abort),
            Err(LinkError::PeerAborted(Reason::Protocol)),
            "{what}"
        );
        assert!(link.poll_transmit(3).is_none(), "{what}");
        assert!(link.write(b"x").is_err(), "{what}");
        assert!(link.handle_packet(4, &hello).is_err(), "{what}");
        assert_eq!(link.poll_timeout(), None, "{what}");
    }
}

#[test]
fn data_after_the_end_of_the_stream_is_a_violation() {
    let mut link = BleLink::new(LinkConfig::default());
    link.handle_packet(0, &[1, 1, 0, 244, 0, 64]).unwrap();
    link.handle_packet(0, &[2, 0, 0, b'h', b'i']).unwrap();
    link.handle_packet(0, &[3, 0, 1]).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(link.read(&mut buf), 2);
    assert!(link.is_eof());
    // A duplicate of what came before is fine (its ACK was lost)...
    link.handle_packet(0, &[2, 0, 0, b'h', b'i']).unwrap();
    // ...more data is not.
    let err = link.handle_packet(0, &[2, 0, 2, b'!']).unwrap_err();
    assert!(matches!(err, LinkError::Violation(_)), "{err:?}");
}

#[test]
fn ten_thousand_messages_sync_over_ble_at_20_and_244_byte_packets_through_loss() {
    for (packet, loss) in [(20, 0.01), (20, 0.1), (244, 0.01), (244, 0.1)] {
        let (a, b) = devices(5_000);
        let what = format!("{packet}-byte packets, loss {loss}");
        let (a, b) = meet(a, b, radio([packet, packet], loss), 5, |p| {
            p.ends.iter().all(|e| e.count() == 10_000)
        });
        assert_eq!(a.store.len(&a.group().id), 10_000, "{what}");
        assert_eq!(b.store.len(&b.group().id), 10_000, "{what}");
        assert_eq!(a.texts(), b.texts(), "{what}");
        assert!(
            a.close_error().is_none() && b.close_error().is_none(),
            "{what}"
        );
    }
}

#[test]
fn a_meeting_cut_short_resumes_at_the_next_with_nothing_lost_or_twice() {
    let (a, b) = devices(5_000);
    let wanted: std::collections::BTreeSet<String> =
        a.texts().into_iter().chain(b.texts()).collect();
    // The first meeting ends after 20 s, mid-transfer.
    let cut = RadioConfig {
        drop_at: Some(20 * SECOND),
        ..radio([244, 244], 0.01)
    };
    let (a, b) = meet(a, b, cut, 9, |p| !p.connected());
    let (got_a, got_b) = (a.store.len(&a.group().id), b.store.len(&b.group().id));
    assert!(got_a > 5_000 && got_a < 10_000, "{got_a}");
    assert!(got_b > 5_000 && got_b < 10_000, "{got_b}");
    // They meet again: everything else arrives, each message once.
    let (a, b) = meet(a, b, radio([244, 244], 0.01), 10, |p| {
        p.ends.iter().all(|e| e.count() == 10_000)
    });
    for peer in [&a, &b] {
        let texts = peer.texts();
        assert_eq!(texts.len(), 10_000);
        let set: std::collections::BTreeSet<String> = texts.into_iter().collect();
        assert_eq!(set, wanted);
    }
}

#[test]
fn a_hostile_peer_on_the_link_ends_it_and_nothing_is_stored() {
    for (what, frame, _) in hostile_frames() {
        let (_, b) = devices(0);
        let mut bob = SyncEnd::new(b, false, 3);
        let mut link = BleLink::new(LinkConfig::default());
        let mut attacker = BleLink::new(LinkConfig::default());
        bob.drive(0, &mut link);
        // The attacker completes the link's HELLO, takes Bob's beacon, and
        // then sends its frame.
        let hello = attacker.poll_transmit(0).unwrap();
        link.handle_packet(0, &hello).unwrap();
        for now in 1..4 {
            while let Some(p) = link.poll_transmit(now) {
                let _ = attacker.handle_packet(now, &p);
            }
            while let Some(p) = attacker.poll_transmit(now) {
                link.handle_packet(now, &p).unwrap();
            }
            bob.drive(now, &mut link);
        }
        assert!(link.handle_packet(5, &frame).is_err(), "{what}");
        bob.drive(6, &mut link);
        assert!(
            bob.peer.session.is_none(),
            "{what}: the session ends with the link"
        );
        assert_eq!(bob.count(), 0, "{what}");
    }
}

/// What a property test does to a link pair.
#[derive(Debug, Clone)]
enum Op {
    /// Side 0 writes this many bytes of the stream.
    Write(usize),
    /// Deliver the packet at this position of a direction's queue (any
    /// order: a radio does not reorder, but a host might).
    Deliver { to: usize, at: usize },
    /// Lose a packet.
    Lose { to: usize, at: usize },
    /// Deliver a packet twice.
    Duplicate { to: usize, at: usize },
    /// Time passes.
    Wait(Micros),
    /// Side 1 reads.
    Read(usize),
    /// The connection drops.
    Drop,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1usize..2_000).prop_map(Op::Write),
        8 => (0usize..2, 0usize..8).prop_map(|(to, at)| Op::Deliver { to, at }),
        2 => (0usize..2, 0usize..8).prop_map(|(to, at)| Op::Lose { to, at }),
        1 => (0usize..2, 0usize..8).prop_map(|(to, at)| Op::Duplicate { to, at }),
        2 => (1u64..3_000_000).prop_map(Op::Wait),
        2 => (1usize..5_000).prop_map(Op::Read),
        1 => Just(Op::Drop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any interleaving of writes, losses, duplicates, reordering, waits
    /// and drops delivers a prefix of the stream, in order, and a link that
    /// is then left to run either delivers all of it or reports the break.
    #[test]
    fn any_interleaving_delivers_in_order_or_reports_the_break(
        ops in prop::collection::vec(op(), 1..300),
        packet in 20usize..300,
    ) {
        let config = LinkConfig { max_write: packet, max_receive: packet, window: 8 };
        let mut links = [BleLink::new(config), BleLink::new(config)];
        let mut queues: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        let stream = pattern(60_000, 5);
        let (mut written, mut read) = (0usize, Vec::new());
        let mut now: Micros = 0;
        let mut dropped = false;
        let pump = |links: &mut [BleLink; 2], queues: &mut [Vec<Vec<u8>>; 2], now| {
            for i in 0..2 {
                while let Some(p) = links[i].poll_transmit(now) {
                    queues[1 - i].push(p);
                }
            }
        };
        for op in ops {
            match op {
                Op::Write(n) => {
                    let end = (written + n).min(stream.len());
                    if let Ok(k) = links[0].write(&stream[written..end]) {
                        written += k;
                    }
                }
                Op::Deliver { to, at } | Op::Duplicate { to, at } if !queues[to].is_empty() => {
                    let at = at % queues[to].len();
                    let p = if matches!(op, Op::Duplicate { .. }) {
                        queues[to][at].clone()
                    } else {
                        queues[to].remove(at)
                    };
                    let _ = links[to].handle_packet(now, &p);
                }
                Op::Lose { to, at } if !queues[to].is_empty() => {
                    let at = at % queues[to].len();
                    queues[to].remove(at);
                }
                Op::Wait(d) => {
                    now += d;
                    links[0].handle_timeout(now);
                    links[1].handle_timeout(now);
                }
                Op::Read(n) => {
                    let mut buf = vec![0u8; n];
                    let k = links[1].read(&mut buf);
                    read.extend_from_slice(&buf[..k]);
                }
                Op::Drop => {
                    dropped = true;
                    links[0].handle_disconnect();
                    links[1].handle_disconnect();
                }
                _ => {}
            }
            pump(&mut links, &mut queues, now);
            // Never out of order, never more than was written.
            prop_assert!(read.len() <= written);
            prop_assert_eq!(&read[..], &stream[..read.len()]);
        }
        // Then a clean radio: deliver everything, in order, to the end.
        links[0].finish();
        for _ in 0..200_000 {
            pump(&mut links, &mut queues, now);
            let mut moved = false;
            for to in 0..2 {
                for p in std::mem::take(&mut queues[to]) {
                    let _ = links[to].handle_packet(now, &p);
                    moved = true;
                }
            }
            let mut buf = [0u8; 4096];
            loop {
                let k = links[1].read(&mut buf);
                if k == 0 { break; }
                read.extend_from_slice(&buf[..k]);
            }
            if links[1].is_eof() || links.iter().any(|l| l.error().is_some()) {
                break;
            }
            if !moved {
                match links.iter().filter_map(BleLink::poll_timeout).min() {
                    Some(t) => {
                        now = now.max(t);
                        links[0].handle_timeout(now);
                        links[1].handle_timeout(now);
                    }
                    None => break,
                }
            }
        }
        prop_assert_eq!(&read[..], &stream[..read.len()]);
        let broken = links.iter().any(|l| l.error().is_some());
        if dropped {
            prop_assert!(broken);
        }
        prop_assert!(broken || (links[1].is_eof() && read.len() == written),
            "neither delivered ({} of {}) nor broken", read.len(), written);
    }
}

/// What a hostile peer does next.
#[derive(Debug, Clone)]
enum PeerOp {
    /// DATA (or FIN) `ahead` frames past the next in order, of `len`
    /// bytes.
    Data { ahead: u16, fin: bool, len: usize },
    /// DATA with a sequence number from long ago or far ahead.
    Stray { seq: u16, len: usize },
    /// An ACK: of frames up to `next` (no further than the link sent),
    /// with any window and selective acknowledgements.
    Ack { next: u16, window: u16, sack: u32 },
    /// Any tag with a short body, or junk of any length.
    Junk(Vec<u8>),
    /// Time passes.
    Wait(Micros),
    /// The reader takes what is there.
    Read,
}

fn peer_op() -> impl Strategy<Value = PeerOp> {
    // Mostly well-formed, so the link lives long enough to reach deep
    // states; now and then something that ends it.
    prop_oneof![
        30 => (prop_oneof![3 => Just(0u16), 1 => 0u16..24], prop::bool::weighted(0.01), 0usize..=241)
            .prop_map(|(ahead, fin, len)| PeerOp::Data { ahead, fin, len }),
        3 => (any::<u16>(), 0usize..50).prop_map(|(seq, len)| PeerOp::Stray { seq, len }),
        9 => (0u16..16, prop_oneof![39 => 0u16..=512, 1 => 513u16..600], prop_oneof![39 => Just(0u32), 1 => any::<u32>()])
            .prop_map(|(next, window, sack)| PeerOp::Ack { next, window, sack }),
        1 => prop_oneof![
            (0u8..8, prop::collection::vec(any::<u8>(), 0..10)).prop_map(|(tag, body)| {
                let mut p = vec![tag];
                p.extend(body);
                p
            }),
            prop::collection::vec(any::<u8>(), 0..300),
        ]
        .prop_map(PeerOp::Junk),
        6 => (0u64..400_000).prop_map(PeerOp::Wait),
        2 => Just(PeerOp::Read),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A peer that sends anything at all, while the link has a stream to
    /// send and a reader that reads now and then, never makes it panic or
    /// send without end, never makes it hold more than its window, and once
    /// the link has failed it sends nothing more (its one ABORT went out
    /// with the packet that failed it).
    #[test]
    fn a_hostile_peer_never_panics_the_link_nor_grows_its_buffer(
        ops in prop::collection::vec(peer_op(), 1..300),
    ) {
        let config = LinkConfig { max_write: 244, max_receive: 244, window: 16 };
        let capacity = (config.max_receive - DATA_HEADER) * usize::from(config.window);
        let mut link = BleLink::new(config);
        let mut peer = BleLink::new(config);
        link.handle_packet(0, &peer.poll_transmit(0).unwrap()).unwrap();
        prop_assert_eq!(link.write(&pattern(3_000, 1)), Ok(3_000));
        // The next frame the peer would send, and the link's next.
        let (mut now, mut next, mut sent_next) = (0, 0u16, 0u16);
        for op in ops {
            let failed_before = link.error().is_some();
            let packet = match op {
                PeerOp::Data { ahead, fin, len } => {
                    let seq = next.wrapping_add(ahead);
                    if ahead == 0 {
                        next = next.wrapping_add(1);
                    }
                    let mut p = vec![if fin { 3 } else { 2 }];
                    p.extend_from_slice(&seq.to_be_bytes());
                    if !fin {
                        p.extend(pattern(len, seq as u8));
                    }
                    Some(p)
                }
                PeerOp::Stray { seq, len } => {
                    let mut p = vec![2];
                    p.extend_from_slice(&seq.to_be_bytes());
                    p.extend(pattern(len, 7));
                    Some(p)
                }
                PeerOp::Ack { next, window, sack } => {
                    let mut p = vec![4];
                    p.extend_from_slice(&next.min(sent_next).to_be_bytes());
                    p.extend_from_slice(&window.to_be_bytes());
                    p.extend_from_slice(&sack.to_be_bytes());
                    Some(p)
                }
                PeerOp::Junk(p) => Some(p),
                PeerOp::Wait(d) => {
                    now += d;
                    link.handle_timeout(now);
                    None
                }
                PeerOp::Read => {
                    let mut buf = [0u8; 1_000];
                    link.read(&mut buf);
                    None
                }
            };
            if let Some(p) = packet {
                let _ = link.handle_packet(now, &p);
            }
            let mut sent = 0;
            while let Some(p) = link.poll_transmit(now) {
                if p.len() >= 3 && (p[0] == 2 || p[0] == 3) {
                    sent_next = sent_next.max(u16::from_be_bytes([p[1], p[2]]) + 1);
                }
                sent += 1;
                prop_assert!(sent < 100, "a link that sends without end");
            }
            if failed_before {
                prop_assert_eq!(sent, 0);
            }
            prop_assert!(link.readable() <= capacity, "{} > {}", link.readable(), capacity);
        }
    }
}

/// Carries packets from `rx` to `tx`, losing every `lose_every`-th, until
/// `cut_after` packets (then drops both channels: the connection is gone).
fn relay(
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    lose_every: usize,
    cut_after: Option<usize>,
) {
    tokio::spawn(async move {
        let mut n = 0;
        while let Some(p) = rx.recv().await {
            n += 1;
            if cut_after.is_some_and(|c| n > c) {
                return;
            }
            if n % lose_every != 0 && tx.send(p).await.is_err() {
                return;
            }
        }
    });
}

type Ends = (
    tokio::io::DuplexStream,
    tokio::task::JoinHandle<strand_transport::ble::driver::Ended>,
);

fn driven_pair(lose_every: usize, cut_after: Option<usize>) -> [Ends; 2] {
    use strand_transport::ble::driver;
    use tokio::sync::mpsc::channel;
    let config = LinkConfig::with_packet(100);
    let (a_out, a_wire) = channel(8);
    let (b_out, b_wire) = channel(8);
    let (a_in_tx, a_in) = channel(8);
    let (b_in_tx, b_in) = channel(8);
    relay(a_wire, b_in_tx, lose_every, cut_after);
    relay(b_wire, a_in_tx, lose_every, cut_after);
    [
        driver::spawn(config, a_in, a_out),
        driver::spawn(config, b_in, b_out),
    ]
}

#[tokio::test]
async fn the_driver_carries_a_stream_both_ways_over_lossy_packet_channels() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let [(mut a, ta), (mut b, tb)] = driven_pair(20, None);
    let sent = pattern(100_000, 6);
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        a.write_all(&to_send).await.unwrap();
        a.shutdown().await.unwrap();
        let mut back = Vec::new();
        a.read_to_end(&mut back).await.unwrap();
        back
    });
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, sent);
    b.write_all(b"thanks").await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(writer.await.unwrap(), b"thanks");
    let (a, b) = (ta.await.unwrap(), tb.await.unwrap());
    assert_eq!((&a.error, &b.error), (&None, &None));
    // The loss was real and repaired.
    assert!(a.stats.retransmitted > 0, "{:?}", a.stats);
    assert_eq!(b.stats.delivered, 100_000);
}

#[tokio::test]
async fn a_dropped_connection_ends_the_driven_stream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let [(mut a, ta), (mut b, tb)] = driven_pair(1_000, Some(200));
    let writer = tokio::spawn(async move {
        let _ = a.write_all(&pattern(500_000, 7)).await;
    });
    let mut got = Vec::new();
    let _ = b.read_to_end(&mut got).await;
    assert!(got.len() < 500_000);
    assert_eq!(got[..], pattern(500_000, 7)[..got.len()]);
    for task in [ta, tb] {
        assert_eq!(task.await.unwrap().error, Some(LinkError::Disconnected));
    }
    writer.abort();
}

#[test]
fn a_disconnect_after_both_ends_finished_is_a_clean_close() {
    let (mut a, mut b) = (
        BleLink::new(LinkConfig::default()),
        BleLink::new(LinkConfig::default()),
    );
    a.write(b"bye").unwrap();
    b.finish();
    let mut buf = [0u8; 8];
    for step in 0..10 {
        let now = step * 50_000; // past the delayed-ACK timer each time
        a.handle_timeout(now);
        b.handle_timeout(now);
        while let Some(p) = a.poll_transmit(now) {
            b.handle_packet(now, &p).unwrap();
        }
        b.read(&mut buf);
        // Once a's data is acknowledged it finishes; b's ACK of that FIN
        // is lost, and a never hears it.
        let b_saw_fin = b.is_eof();
        while let Some(p) = b.poll_transmit(now) {
            if !b_saw_fin {
                a.handle_packet(now, &p).unwrap();
            }
        }
        a.read(&mut buf);
        if a.is_flushed() {
            a.finish();
        }
    }
    assert!(b.is_closed() && b.error().is_none());
    assert!(!a.is_closed() && a.is_eof());
    a.handle_disconnect();
    assert!(a.is_closed() && a.error().is_none());
    // Data unacknowledged: a disconnect is an error.
    let mut c = BleLink::new(LinkConfig::default());
    c.handle_packet(0, &[1, 1, 0, 244, 0, 64]).unwrap();
    c.write(b"lost?").unwrap();
    while c.poll_transmit(0).is_some() {}
    c.handle_disconnect();
    assert_eq!(c.error(), Some(&LinkError::Disconnected));
}

#[test]
fn a_peer_that_takes_back_a_selective_ack_ends_the_link() {
    let mut link = BleLink::new(LinkConfig::default());
    link.handle_packet(0, &[1, 1, 0, 244, 0, 64]).unwrap();
    link.write(&pattern(1000, 8)).unwrap();
    while link.poll_transmit(0).is_some() {}
    // Frame 1 arrived (selectively), frame 0 not...
    link.handle_packet(1, &[4, 0, 0, 0, 64, 0, 0, 0, 1])
        .unwrap();
    // ...then frame 0 did, and frame 1 is missing again: no honest
    // receiver says that, and without this check the link would wait on a
    // frame it never sends again.
    let err = link
        .handle_packet(2, &[4, 0, 1, 0, 64, 0, 0, 0, 0])
        .unwrap_err();
    assert!(matches!(err, LinkError::Violation(_)), "{err:?}");
}

#[test]
fn a_link_waiting_on_its_peer_always_has_a_deadline() {
    // Whatever the peer does, a link with frames out has a timer: at the
    // latest, the link timeout.
    let mut link = BleLink::new(LinkConfig::default());
    link.handle_packet(0, &[1, 1, 0, 244, 0, 64]).unwrap();
    link.write(b"hello").unwrap();
    while link.poll_transmit(0).is_some() {}
    // The peer closes its window and acknowledges nothing.
    link.handle_packet(1, &[4, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    let deadline = link.poll_timeout().expect("a deadline");
    assert!(deadline <= strand_transport::ble::link::LINK_TIMEOUT);
}

/// Sends what `from` has to send to `to`, at `now`.
fn deliver(from: &mut BleLink, to: &mut BleLink, now: Micros) {
    while let Some(p) = from.poll_transmit(now) {
        to.handle_packet(now, &p).unwrap();
    }
}

/// Steps a link alone (its peer hostile) a second at a time from `start`
/// until it fails, or an hour passes; returns how long after `start` it
/// failed.
fn left_waiting(
    link: &mut BleLink,
    start: Micros,
    mut peer_says: impl FnMut(&mut BleLink, Micros),
) -> Option<Micros> {
    let mut now = start;
    while now < start + 3_600 * SECOND {
        now += SECOND;
        peer_says(link, now);
        while link.poll_transmit(now).is_some() {}
        if link.poll_timeout().is_some_and(|t| t <= now) {
            link.handle_timeout(now);
        }
        if link.error().is_some() {
            return Some(now - start);
        }
    }
    None
}

#[test]
fn a_peer_that_acknowledges_but_never_says_hello_is_given_up() {
    // The link cannot send a byte before the peer's HELLO says what it
    // takes; an ACK alone made it take its own HELLO as heard and wait
    // with no timer (a stranger held the one GATT link with 9 bytes).
    let mut link = BleLink::new(LinkConfig::default());
    link.write(b"beacon").unwrap();
    link.finish();
    while link.poll_transmit(0).is_some() {}
    link.handle_packet(0, &[4, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    assert!(link.poll_timeout().is_some(), "no deadline");
    let failed = left_waiting(&mut link, 0, |_, _| {});
    assert_eq!(link.error(), Some(&LinkError::TimedOut));
    assert!(
        failed.is_some_and(|t| t <= LINK_TIMEOUT + SECOND),
        "{failed:?}"
    );
}

#[test]
fn a_peer_that_never_ends_its_stream_is_given_up_once_this_side_is_done() {
    let (mut link, mut peer) = (
        BleLink::new(LinkConfig::default()),
        BleLink::new(LinkConfig::default()),
    );
    link.write(b"that is all").unwrap();
    link.finish();
    for step in 0..10 {
        let now = step * 50_000;
        link.handle_timeout(now);
        peer.handle_timeout(now);
        deliver(&mut link, &mut peer, now);
        deliver(&mut peer, &mut link, now);
    }
    // Everything this side sent is acknowledged; the peer's end is owed.
    assert!(link.is_flushed() && !link.is_eof() && link.error().is_none());
    // A peer that then says nothing but PROBEs (each answered) does not
    // keep the link: it is given up a link timeout after its last word.
    let failed = left_waiting(&mut link, 500_000, |link, now| {
        if (now / SECOND).is_multiple_of(20) {
            link.handle_packet(now, &[5]).unwrap();
        }
    });
    assert_eq!(link.error(), Some(&LinkError::TimedOut));
    assert!(
        failed.is_some_and(|t| t <= LINK_TIMEOUT + SECOND),
        "{failed:?}"
    );
}

#[test]
fn a_peer_still_sending_keeps_a_finished_link_until_its_end() {
    // The same link, but the peer has more to say, a little every 20 s:
    // that is progress, and the link waits for its end.
    let (mut link, mut peer) = (
        BleLink::new(LinkConfig::default()),
        BleLink::new(LinkConfig::default()),
    );
    link.write(b"that is all").unwrap();
    link.finish();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    let mut now = 0;
    for step in 0..1_000 {
        now = step * SECOND;
        if step % 20 == 10 && step < 200 {
            peer.write(format!("{step};").as_bytes()).unwrap();
        }
        if step == 200 {
            peer.finish();
        }
        for end in [&mut link, &mut peer] {
            if end.poll_timeout().is_some_and(|t| t <= now) {
                end.handle_timeout(now);
            }
        }
        deliver(&mut link, &mut peer, now);
        deliver(&mut peer, &mut link, now);
        let n = link.read(&mut buf);
        got.extend_from_slice(&buf[..n]);
        peer.read(&mut buf);
        if link.is_closed() {
            break;
        }
    }
    assert_eq!(link.error(), None);
    assert!(link.is_closed(), "still open at {now}");
    assert!(got.starts_with(b"10;30;") && got.ends_with(b"190;"));
}

#[tokio::test(start_paused = true)]
async fn a_driven_link_a_stranger_acknowledges_and_leaves_waiting_ends() {
    // The session gives up on the link (the stream dropped); the peer sent
    // one ACK and nothing else. Before, the driver waited for it with no
    // timer, holding the peripheral's one GATT link for as long as the
    // stranger stayed connected.
    use strand_transport::ble::driver;
    let (to_link, incoming) = tokio::sync::mpsc::channel(8);
    let (outgoing, mut sent) = tokio::sync::mpsc::channel(8);
    let (stream, ended) = driver::spawn(LinkConfig::default(), incoming, outgoing);
    to_link.send(vec![4, 0, 0, 0, 0, 0, 0, 0, 0]).await.unwrap();
    drop(stream);
    let drained = tokio::spawn(async move { while sent.recv().await.is_some() {} });
    let ended = tokio::time::timeout(3_600 * std::time::Duration::from_secs(1), ended)
        .await
        .expect("the driver still waits an hour on")
        .unwrap();
    assert_eq!(ended.error, Some(LinkError::TimedOut));
    drop(to_link);
    drained.await.unwrap();
}
