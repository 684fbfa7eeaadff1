//! Two-peer sessions over the virtual-time harness, as scripts.

use strand_sync::harness::{Action, Pair, Peer, Side};
use strand_sync::limits::{
    HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_BODY_LEN, MAX_CLOCK_SKEW, MAX_MESSAGE_LEN, MIN_PACKET_LEN,
    TOKEN_EPOCH,
};
use strand_sync::{
    Config, DecodeError, Event, HandshakeError, Invalid, Kind, Message, SessionError, Store,
    HELLO_LEN,
};

use crate::common::{keys, rng, shared_history};

fn received(peer: &Peer) -> usize {
    peer.events
        .iter()
        .filter(|e| matches!(e, Event::Received { .. }))
        .count()
}

fn delivered(peer: &Peer) -> usize {
    peer.events
        .iter()
        .filter(|e| matches!(e, Event::Delivered { .. }))
        .count()
}

/// Frame type numbers, from PROTOCOL.md.
const MSG: u8 = 0x03;
const MSG_BEGIN: u8 = 0x04;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

#[test]
fn a_fresh_pair_syncs_both_ways() {
    let mut pair = Pair::new(1);
    pair.a.write("one from alice");
    pair.a.write("two from alice");
    pair.b.write("one from bob");
    pair.connect();
    pair.drive();
    let (a, b) = keys(&pair);
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
    assert_eq!(pair.a.texts(), pair.b.texts());
    for p in [&pair.a, &pair.b] {
        assert!(p
            .events
            .iter()
            .any(|e| matches!(e, Event::Established { .. })));
        assert!(p.events.iter().any(|e| matches!(e, Event::Synced { .. })));
        assert!(p.close_error().is_none());
        assert!(p.session.as_ref().unwrap().is_idle());
    }
    assert_eq!(received(&pair.b), 2);
    assert_eq!(received(&pair.a), 1);
    assert_eq!(delivered(&pair.a), 2, "alice learns bob holds both");
    assert_eq!(delivered(&pair.b), 1);
    // Each side knows who it talks to.
    assert_eq!(
        *pair.b.session.as_ref().unwrap().peer(),
        pair.a.identity.public()
    );
}

#[test]
fn empty_logs_settle_in_one_round_trip() {
    let mut pair = Pair::new(2);
    pair.connect();
    pair.drive();
    assert!(pair.a.session.as_ref().unwrap().is_idle());
    assert!(pair.b.session.as_ref().unwrap().is_idle());
    assert!(pair.round_trips() <= 1.5, "{}", pair.round_trips());
}

#[test]
fn ten_thousand_shared_and_three_new_each_converge_cheaply() {
    let mut pair = Pair::new(3);
    shared_history(&mut pair, 10_000);
    for i in 0..3 {
        pair.a.write(&format!("new from alice {i}"));
        pair.b.write(&format!("new from bob {i}"));
    }
    pair.connect();
    pair.drive();
    let (a, b) = keys(&pair);
    assert_eq!(a.len(), 10_006);
    assert_eq!(a, b);
    assert_eq!(received(&pair.a), 3);
    assert_eq!(received(&pair.b), 3);
    // Bytes follow the difference (6 messages of ~200 bytes), not the log
    // (10,000 ids alone would be 320 KB).
    assert!(pair.bytes() < 6_000, "{} bytes", pair.bytes());
    assert!(
        pair.round_trips() <= 6.0,
        "{} round trips",
        pair.round_trips()
    );
}

#[test]
fn one_missing_message_in_a_large_log_costs_little() {
    for missing_on_b in [true, false] {
        let mut pair = Pair::new(4);
        shared_history(&mut pair, 20_000);
        let key = if missing_on_b {
            pair.a.write("only alice has this")
        } else {
            pair.b.write("only bob has this")
        };
        let _ = key;
        pair.connect();
        pair.drive();
        let (a, b) = keys(&pair);
        assert_eq!(a, b);
        assert_eq!(a.len(), 20_001);
        // Handshake (64 + ~100 bytes), a fingerprint or two, one message of
        // ~220 bytes and its acknowledgement.
        assert!(
            pair.bytes() < 1_024,
            "{} bytes (missing on b: {missing_on_b})",
            pair.bytes()
        );
        assert!(
            pair.round_trips() <= 2.5,
            "{} round trips",
            pair.round_trips()
        );
    }
}

#[test]
fn a_stranger_is_refused_without_a_word() {
    let mut mallory = Peer::new("mallory", 50);
    let mut bob = Peer::new("bob", 51);
    // Mallory has Bob's invite; Bob never added Mallory.
    mallory.add_contact(&bob.identity);
    let carol = Peer::new("carol", 52);
    bob.add_contact(&carol.identity);
    bob.write("bob to carol, private");
    let before = bob.store.clone();
    let mut pair = Pair::with_peers(mallory, bob, 5);
    pair.connect();
    pair.drive_for(HANDSHAKE_TIMEOUT + 1_000);
    assert_eq!(pair.b.refused, Some(HandshakeError::Unknown));
    assert_eq!(pair.stats.bytes_b_to_a, 0, "bob sent nothing back");
    assert!(pair.b.session.is_none());
    assert_eq!(pair.a.close_error(), Some(&SessionError::Timeout));
    assert!(pair.a.store.is_empty());
    assert_eq!(
        pair.b.store.keys(&pair.b.group().id),
        before.keys(&pair.b.group().id)
    );
}

#[test]
fn a_removed_contact_is_refused() {
    let mut pair = Pair::new(6);
    pair.b.listener.set_contacts(Vec::new());
    pair.a.write("are we still friends?");
    pair.connect();
    pair.drive();
    assert_eq!(pair.b.refused, Some(HandshakeError::Unknown));
    assert!(pair.b.store.is_empty());
}

#[test]
fn a_hello_from_an_old_epoch_is_refused() {
    let mut pair = Pair::new(7);
    pair.a.clock_offset = -3 * TOKEN_EPOCH as i64;
    pair.connect();
    pair.drive();
    assert_eq!(pair.b.refused, Some(HandshakeError::Unknown));
    // A clock one epoch off is tolerated.
    let mut pair = Pair::new(7);
    pair.a.clock_offset = TOKEN_EPOCH as i64;
    pair.connect();
    pair.drive();
    assert!(pair.b.refused.is_none());
    assert!(pair.b.session.as_ref().unwrap().is_established());
}

#[test]
fn a_tampered_packet_ends_the_session_and_stores_nothing() {
    let mut pair = Pair::new(8);
    for i in 0..5 {
        pair.a.write(&format!("msg {i}"));
    }
    let mut packets_from_a = 0;
    pair.filter = Some(Box::new(move |side, bytes| {
        if side == Side::A {
            packets_from_a += 1;
            // Packet 1 is the hello; packet 2 carries the messages.
            if packets_from_a == 2 {
                let n = bytes.len();
                bytes[n / 2] ^= 0x04;
            }
        }
        Action::Deliver
    }));
    pair.connect();
    pair.drive();
    assert_eq!(pair.b.close_error(), Some(&SessionError::Decrypt));
    assert!(
        pair.b.store.is_empty(),
        "nothing from the tampered packet was stored"
    );
    assert_eq!(pair.a.close_error(), Some(&SessionError::ConnectionLost));
}

#[test]
fn a_tampered_handshake_answer_fails_the_handshake() {
    let mut pair = Pair::new(9);
    pair.filter = Some(Box::new(|side, bytes| {
        if side == Side::B {
            let n = bytes.len();
            bytes[n - 1] ^= 1;
        }
        Action::Deliver
    }));
    pair.connect();
    pair.drive();
    assert_eq!(pair.a.close_error(), Some(&SessionError::Handshake));
    assert!(pair.a.store.is_empty());
}

#[test]
fn a_tampered_hello_is_refused() {
    for byte in [0, 20, 60] {
        let mut pair = Pair::new(10);
        pair.filter = Some(Box::new(move |side, bytes| {
            if side == Side::A && bytes.len() == HELLO_LEN {
                bytes[byte] ^= 1;
            }
            Action::Deliver
        }));
        pair.connect();
        pair.drive();
        assert!(pair.b.refused.is_some(), "flip at {byte} accepted");
        assert_eq!(pair.stats.bytes_b_to_a, 0);
    }
}

#[test]
fn a_truncated_packet_ends_the_session_and_stores_nothing_partial() {
    let mut pair = Pair::new(11);
    for i in 0..5 {
        pair.a.write(&format!("msg {i}"));
    }
    let mut packets_from_a = 0;
    pair.filter = Some(Box::new(move |side, bytes| {
        if side == Side::A {
            packets_from_a += 1;
            if packets_from_a == 2 {
                return Action::Cut(bytes.len() - 7);
            }
        }
        Action::Deliver
    }));
    pair.connect();
    pair.drive();
    assert_eq!(pair.b.close_error(), Some(&SessionError::Truncated));
    assert!(pair.b.store.is_empty());
}

#[test]
fn a_truncated_frame_inside_a_valid_packet_ends_the_session() {
    let mut pair = Pair::new(12);
    pair.connect();
    pair.drive();
    // A frame whose length runs past the end of the packet.
    let packet = pair
        .a
        .session
        .as_mut()
        .unwrap()
        .send_raw_packet(&[MSG, 50, 1, 2, 3])
        .unwrap();
    pair.inject(Side::A, packet);
    pair.drive();
    assert_eq!(
        pair.b.close_error(),
        Some(&SessionError::Decode(DecodeError::Truncated))
    );
}

#[test]
fn a_replayed_hello_is_refused() {
    let mut pair = Pair::new(13);
    let hello = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let h = hello.clone();
    pair.filter = Some(Box::new(move |side, bytes| {
        if side == Side::A && bytes.len() == HELLO_LEN && h.borrow().is_empty() {
            *h.borrow_mut() = bytes.clone();
        }
        Action::Deliver
    }));
    pair.a.write("hi");
    pair.connect();
    pair.drive();
    assert_eq!(pair.b.store.len(&pair.b.group().id), 1);
    let hello = hello.borrow().clone();
    let now = pair.now;
    let err = pair
        .b
        .listener
        .accept(Config::default(), &hello, now, &mut rng(1))
        .unwrap_err();
    assert_eq!(err, HandshakeError::Replay);
}

#[test]
fn a_replayed_session_cannot_continue_on_a_fresh_listener() {
    // An eavesdropper records a whole session and replays Alice's side to
    // Bob after Bob restarted (his replay cache is empty).
    let mut pair = Pair::new(14);
    let recorded = std::rc::Rc::new(std::cell::RefCell::new(Vec::<Vec<u8>>::new()));
    let r = recorded.clone();
    pair.filter = Some(Box::new(move |side, bytes| {
        if side == Side::A {
            r.borrow_mut().push(bytes.clone());
        }
        Action::Deliver
    }));
    pair.a.write("hi");
    pair.connect();
    pair.drive();
    let recorded = recorded.borrow().clone();
    let mut bob_restarted = strand_sync::Listener::new(&pair.b.identity, pair.b.contacts.clone());
    let mut store = strand_sync::MemoryStore::new();
    let now = pair.now;
    let mut session = bob_restarted
        .accept(Config::default(), &recorded[0], now, &mut rng(2))
        .unwrap();
    // Bob answers with fresh ephemeral keys; the replayed packets were
    // encrypted for the old ones.
    assert!(session.poll_transmit(now, &mut store).is_some());
    let err = session
        .handle_input(now, &recorded[1], &mut store)
        .unwrap_err();
    assert_eq!(err, SessionError::Decrypt);
    assert!(store.is_empty());
}

#[test]
fn an_oversize_message_ends_the_session_and_stores_nothing() {
    let mut pair = Pair::new(15);
    pair.connect();
    pair.drive();
    // A message part announcing more than MAX_MESSAGE_LEN bytes.
    let mut body = Vec::new();
    varint(MAX_MESSAGE_LEN as u64 + 1, &mut body);
    body.extend_from_slice(&[0u8; 100]);
    let packet = pair
        .a
        .session
        .as_mut()
        .unwrap()
        .send_raw_packet(&frame(MSG_BEGIN, &body))
        .unwrap();
    pair.inject(Side::A, packet);
    pair.drive();
    assert!(matches!(
        pair.b.close_error(),
        Some(SessionError::Decode(DecodeError::TooLong { .. }))
    ));
    assert!(pair.b.store.is_empty());
}

#[test]
fn a_message_longer_than_announced_ends_the_session() {
    let mut pair = Pair::new(16);
    pair.connect();
    pair.drive();
    let mut body = Vec::new();
    varint(300, &mut body);
    body.extend_from_slice(&[0u8; 200]);
    let mut plain = frame(MSG_BEGIN, &body);
    plain.extend(frame(0x05, &[0u8; 150]));
    let packet = pair
        .a
        .session
        .as_mut()
        .unwrap()
        .send_raw_packet(&plain)
        .unwrap();
    pair.inject(Side::A, packet);
    pair.drive();
    assert!(matches!(
        pair.b.close_error(),
        Some(SessionError::Decode(_))
    ));
}

#[test]
fn an_invalid_message_from_a_contact_ends_the_session_and_is_not_stored() {
    let mut pair = Pair::new(17);
    pair.connect();
    pair.drive();
    let group = pair.a.group().clone();
    let m = Message::create(
        &pair.a.identity,
        &group,
        pair.now,
        Kind::TEXT,
        b"forged?",
        &mut rng(3),
    )
    .unwrap();
    let mut bytes = m.into_bytes();
    let n = bytes.len();
    bytes[n - 1] ^= 1; // break the signature
    let packet = pair
        .a
        .session
        .as_mut()
        .unwrap()
        .send_raw_packet(&frame(MSG, &bytes))
        .unwrap();
    pair.inject(Side::A, packet);
    pair.drive();
    assert_eq!(
        pair.b.close_error(),
        Some(&SessionError::Invalid(Invalid::Signature))
    );
    assert!(pair.b.store.is_empty());
}

#[test]
fn a_message_from_the_future_waits_until_its_time() {
    let mut pair = Pair::new(18);
    // Alice's clock runs an hour fast.
    pair.a.clock_offset = 3_600_000;
    pair.a.write("sent from the future");
    pair.a.clock_offset = 0;
    pair.a.write("sent on time");
    pair.connect();
    pair.drive();
    assert_eq!(pair.b.texts(), ["sent on time"]);
    assert!(pair.b.events.iter().any(|e| matches!(
        e,
        Event::Rejected {
            reason: Invalid::FromTheFuture { .. },
            ..
        }
    )));
    assert!(
        pair.b.close_error().is_none(),
        "a skewed clock is no reason to hang up"
    );
    // An hour later they meet again and it arrives.
    pair.a.session.as_mut().unwrap().close();
    pair.drive();
    pair.drive_for(3_600_000 - MAX_CLOCK_SKEW + 1_000);
    pair.connect();
    pair.drive();
    assert_eq!(pair.b.texts().len(), 2);
}

#[test]
fn a_silent_responder_times_the_handshake_out() {
    let mut pair = Pair::new(19);
    pair.filter = Some(Box::new(|side, _| {
        if side == Side::B {
            Action::Stall(0)
        } else {
            Action::Deliver
        }
    }));
    pair.connect();
    pair.drive_for(HANDSHAKE_TIMEOUT - 1);
    assert!(pair.a.close_error().is_none());
    pair.drive_for(2);
    assert_eq!(pair.a.close_error(), Some(&SessionError::Timeout));
}

#[test]
fn a_peer_stalled_mid_packet_is_dropped_after_the_idle_timeout() {
    let mut pair = Pair::new(20);
    for i in 0..3 {
        pair.a.write(&format!("{i}"));
    }
    let mut n = 0;
    pair.filter = Some(Box::new(move |side, bytes| {
        if side == Side::A {
            n += 1;
            if n == 2 {
                return Action::Stall(bytes.len() / 2);
            }
        }
        Action::Deliver
    }));
    pair.connect();
    pair.drive_for(IDLE_TIMEOUT + 1_000);
    assert_eq!(pair.b.close_error(), Some(&SessionError::Timeout));
    assert!(pair.b.store.is_empty());
}

#[test]
fn an_idle_session_stays_up_on_keepalives() {
    let mut pair = Pair::new(21);
    pair.connect();
    pair.drive();
    pair.drive_for(10 * IDLE_TIMEOUT);
    assert!(pair.a.close_error().is_none() && pair.b.close_error().is_none());
    assert!(pair.a.session.as_ref().unwrap().is_established());
    assert!(pair.stats.bytes_a_to_b > 200, "keepalives flowed");
}

#[test]
fn a_live_message_is_pushed_and_acknowledged() {
    let mut pair = Pair::new(22);
    pair.connect();
    pair.drive();
    let before = pair.now;
    pair.a.write("live");
    pair.drive();
    assert_eq!(pair.b.texts(), ["live"]);
    assert_eq!(delivered(&pair.a), 1);
    assert_eq!(
        pair.now - before,
        2 * pair.latency,
        "one round trip: message out, ack back"
    );
}

#[test]
fn a_polite_close_ends_both_sides_cleanly() {
    let mut pair = Pair::new(23);
    pair.connect();
    pair.drive();
    pair.a.session.as_mut().unwrap().close();
    pair.drive();
    assert!(pair
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::Closed { error: None })));
    assert!(pair
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::Closed { error: None })));
}

#[test]
fn ble_sized_packets_and_tiny_mtu_carry_large_messages() {
    let mut pair = Pair::new(24);
    pair.a.config = Config {
        max_packet: MIN_PACKET_LEN,
    };
    pair.b.config = Config {
        max_packet: MIN_PACKET_LEN,
    };
    pair.mtu = 20;
    pair.latency = 15;
    pair.rate = Some(20_000); // ~160 kbit/s, a BLE connection
    shared_history(&mut pair, 300);
    for i in 0..40 {
        pair.a.write(&format!("short {i}"));
    }
    let big = "x".repeat(20_000);
    pair.b.write(&big);
    let mut biggest = 0;
    let seen = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let s = seen.clone();
    pair.filter = Some(Box::new(move |_, bytes| {
        s.set(s.get().max(bytes.len()));
        Action::Deliver
    }));
    pair.connect();
    pair.drive();
    biggest = biggest.max(seen.get());
    let (a, b) = keys(&pair);
    assert_eq!(a.len(), 341);
    assert_eq!(a, b);
    assert!(pair.a.texts().contains(&big));
    assert!(biggest <= MIN_PACKET_LEN + 2, "a packet of {biggest} bytes");
}

#[test]
fn the_largest_message_crosses_a_default_link() {
    let mut pair = Pair::new(25);
    let group = pair.a.group().clone();
    let body = vec![b'z'; MAX_BODY_LEN];
    let m = Message::create(
        &pair.a.identity,
        &group,
        pair.now,
        Kind::TEXT,
        &body,
        &mut rng(4),
    )
    .unwrap();
    pair.a.store.insert(&group.id, &m).unwrap();
    pair.connect();
    pair.drive();
    assert_eq!(pair.b.store.len(&group.id), 1);
}

#[test]
fn a_lossy_slow_link_still_converges() {
    let mut pair = Pair::new(26);
    pair.loss = 0.2;
    pair.latency = 120;
    pair.rate = Some(50_000);
    shared_history(&mut pair, 1_000);
    for i in 0..30 {
        pair.a.write(&format!("a{i}"));
        pair.b.write(&format!("b{i}"));
    }
    pair.connect();
    pair.drive();
    let (a, b) = keys(&pair);
    assert_eq!(a, b);
    assert_eq!(a.len(), 1_060);
    assert!(pair.stats.retransmissions > 0);
}

#[test]
fn divergent_large_logs_converge() {
    // Both sides wrote a lot while apart: splitting goes several levels.
    let mut pair = Pair::new(27);
    shared_history(&mut pair, 5_000);
    for i in 0..700 {
        pair.a
            .write_at(&format!("a{i}"), pair.now - 1_000_000 + i * 997);
        pair.b
            .write_at(&format!("b{i}"), pair.now - 1_000_000 + i * 1009);
    }
    pair.connect();
    pair.drive();
    let (a, b) = keys(&pair);
    assert_eq!(a.len(), 6_400);
    assert_eq!(a, b);
    assert!(pair.a.close_error().is_none() && pair.b.close_error().is_none());
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let run = |seed| {
        let mut pair = Pair::new(seed);
        let wire = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let w = wire.clone();
        pair.filter = Some(Box::new(move |side, bytes| {
            w.borrow_mut().push((side, bytes.clone()));
            Action::Deliver
        }));
        shared_history(&mut pair, 200);
        pair.a.write("a");
        pair.b.write("b");
        pair.connect();
        pair.drive();
        let w = wire.borrow().clone();
        (w, keys(&pair).0)
    };
    let (w1, k1) = run(28);
    let (w2, k2) = run(28);
    assert_eq!(w1, w2);
    assert_eq!(k1, k2);
    let (w3, _) = run(29);
    assert_ne!(w1, w3);
}

#[test]
fn garbage_after_the_hello_ends_the_session() {
    let mut pair = Pair::new(30);
    pair.connect();
    let mut junk = vec![0, 20];
    junk.extend_from_slice(&[7; 20]);
    pair.inject(Side::A, junk);
    pair.drive();
    assert_eq!(pair.b.close_error(), Some(&SessionError::Decrypt));
}

/// Regression (issue 2 review): honest peers far apart on small packets
/// must converge without hitting the round limit.
#[test]
fn large_differences_converge_on_ble_sized_packets() {
    let mut pair = Pair::new(31);
    pair.a.config = Config {
        max_packet: MIN_PACKET_LEN,
    };
    pair.b.config = Config {
        max_packet: MIN_PACKET_LEN,
    };
    shared_history(&mut pair, 20_000);
    let span = 20_000 * 1000;
    let mut r = rng(31);
    for i in 0..300 {
        use rand_core::RngCore;
        let ta = pair.now - 3_600_000 - span + r.next_u64() % span;
        let tb = pair.now - 3_600_000 - span + r.next_u64() % span;
        pair.a.write_at(&format!("a{i}"), ta);
        pair.b.write_at(&format!("b{i}"), tb);
    }
    pair.connect();
    pair.drive();
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
    let (a, b) = keys(&pair);
    assert_eq!(a.len(), 20_600);
    assert_eq!(a, b);
}

#[test]
fn peers_with_different_packet_sizes_converge() {
    let mut pair = Pair::new(32);
    pair.a.config = Config {
        max_packet: MIN_PACKET_LEN,
    };
    pair.b.config = Config { max_packet: 65_535 };
    shared_history(&mut pair, 3_000);
    for i in 0..200 {
        pair.a
            .write_at(&format!("a{i}"), pair.now - 2_000_000 + i * 7_000);
        pair.b
            .write_at(&format!("b{i}"), pair.now - 2_000_000 + i * 6_000);
    }
    pair.b.write(&"long ".repeat(30_000));
    pair.connect();
    pair.drive();
    let (a, b) = keys(&pair);
    assert_eq!(a.len(), 3_401);
    assert_eq!(a, b);
}

#[test]
fn messages_written_during_a_sync_arrive_too() {
    let mut pair = Pair::new(33);
    shared_history(&mut pair, 2_000);
    for i in 0..50 {
        pair.a.write(&format!("before {i}"));
    }
    pair.connect();
    // Step part of the way, then write on both sides mid-sync.
    for _ in 0..3 {
        pair.step_with(false);
    }
    for i in 0..20 {
        pair.a.write(&format!("during a {i}"));
        pair.b.write(&format!("during b {i}"));
    }
    pair.drive();
    let (a, b) = keys(&pair);
    assert_eq!(a, b);
    assert_eq!(a.len(), 2_090);
}

#[test]
fn a_future_message_with_a_bad_signature_is_an_error_not_a_delay() {
    let mut pair = Pair::new(34);
    pair.connect();
    pair.drive();
    let group = pair.a.group().clone();
    let m = Message::create(
        &pair.a.identity,
        &group,
        pair.now + 3_600_000,
        Kind::TEXT,
        b"x",
        &mut rng(5),
    )
    .unwrap();
    let mut bytes = m.into_bytes();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    let packet = pair
        .a
        .session
        .as_mut()
        .unwrap()
        .send_raw_packet(&frame(MSG, &bytes))
        .unwrap();
    pair.inject(Side::A, packet);
    pair.drive();
    assert_eq!(
        pair.b.close_error(),
        Some(&SessionError::Invalid(Invalid::Signature))
    );
}

/// A responder waiting for the initiator's first reconciliation reply, and
/// an initiator that has read message 2 but not answered: lets a test play
/// a hostile initiator.
pub fn responder_awaiting_reply(
    seed: u64,
) -> (
    strand_sync::Session,
    strand_sync::MemoryStore,
    strand_sync::Session,
    strand_sync::GroupId,
    u64,
) {
    let mut pair = Pair::new(seed);
    shared_history(&mut pair, 40);
    let now = pair.now;
    let contact_b = pair.a.contacts[0].clone();
    let mut a = strand_sync::Session::connect(
        Config::default(),
        &pair.a.identity,
        &contact_b,
        now,
        &mut rng(seed),
    );
    let hello = a.poll_transmit(now, &mut pair.a.store).unwrap();
    let mut b = pair
        .b
        .listener
        .accept(Config::default(), &hello, now, &mut rng(seed + 1))
        .unwrap();
    let msg2 = b.poll_transmit(now, &mut pair.b.store).unwrap();
    let mut scratch = strand_sync::MemoryStore::new();
    a.handle_input(now, &msg2, &mut scratch).unwrap();
    (
        b,
        std::mem::take(&mut pair.b.store),
        a,
        pair.a.group().id,
        now,
    )
}

#[test]
fn hostile_counts_and_bounds_are_errors_not_panics() {
    // Fingerprint with count u64::MAX over the whole range.
    let (mut b, mut store, mut a, group, now) = responder_awaiting_reply(35);
    let mut body = group.0.to_vec();
    body.push(0); // bound: infinity
    body.push(1); // Fingerprint
    varint(u64::MAX, &mut body);
    body.extend_from_slice(&[0; 8]);
    let packet = a.send_raw_packet(&frame(0x01, &body)).unwrap();
    assert!(b.handle_input(now, &packet, &mut store).is_ok());
    // A bound at time u64::MAX (only infinity may have it).
    let (mut b, mut store, mut a, group, now) = responder_awaiting_reply(36);
    let mut body = group.0.to_vec();
    body.extend_from_slice(&[2, 0, 0]); // bound: time 1, no prefix; Skip
    varint(u64::MAX, &mut body); // next bound: time 1 + (u64::MAX - 1)
    body.extend_from_slice(&[1, 1]); // prefix length 1, id byte 1
    body.push(1);
    varint(5, &mut body);
    body.extend_from_slice(&[0; 8]);
    let packet = a.send_raw_packet(&frame(0x01, &body)).unwrap();
    let err = b.handle_input(now, &packet, &mut store).unwrap_err();
    assert!(matches!(err, SessionError::Decode(_)), "{err:?}");
}

#[test]
fn reconciliation_out_of_turn_ends_the_session() {
    let mut pair = Pair::new(37);
    pair.connect();
    pair.drive();
    // The exchange for the group is finished; a fresh opening is out of turn.
    let mut body = pair.a.group().id.0.to_vec();
    body.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let packet = pair
        .a
        .session
        .as_mut()
        .unwrap()
        .send_raw_packet(&frame(0x01, &body))
        .unwrap();
    pair.inject(Side::A, packet);
    pair.drive();
    assert!(matches!(
        pair.b.close_error(),
        Some(SessionError::Decode(_))
    ));
}

#[test]
fn data_before_message_two_is_refused() {
    let mut pair = Pair::new(38);
    let now = pair.now;
    let contact_b = pair.a.contacts[0].clone();
    let mut a = strand_sync::Session::connect(
        Config::default(),
        &pair.a.identity,
        &contact_b,
        now,
        &mut rng(1),
    );
    let hello = a.poll_transmit(now, &mut pair.a.store).unwrap();
    let mut b = pair
        .b
        .listener
        .accept(Config::default(), &hello, now, &mut rng(2))
        .unwrap();
    let err = b.handle_input(now, &[0, 20, 1, 2, 3], &mut pair.b.store);
    // Incomplete: waits. A whole packet before message 2: refused.
    assert!(err.is_ok());
    let mut junk = vec![0, 20];
    junk.extend_from_slice(&[9; 20]);
    let mut b = {
        let hello2 = {
            let mut a2 = strand_sync::Session::connect(
                Config::default(),
                &pair.a.identity,
                &contact_b,
                now,
                &mut rng(3),
            );
            a2.poll_transmit(now, &mut pair.a.store).unwrap()
        };
        pair.b
            .listener
            .accept(Config::default(), &hello2, now, &mut rng(4))
            .unwrap()
    };
    let err = b.handle_input(now, &junk, &mut pair.b.store).unwrap_err();
    assert!(matches!(err, SessionError::Decode(_)), "{err:?}");
    assert!(pair.b.store.is_empty());
}
