//! Two-peer sessions over the virtual-time harness, as scripts.

use std::cell::Cell;
use std::convert::Infallible;
use std::ops::ControlFlow;

use strand_sync::harness::{Action, Pair, Peer, Side};
use strand_sync::limits::MAX_PREAMBLE_PAD;
use strand_sync::limits::{
    HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_BODY_LEN, MAX_CLOCK_SKEW, MAX_MESSAGE_LEN, MIN_PACKET_LEN,
    RECON_WORK_FLOOR, RECON_WORK_REFILL, RECON_WORK_WALKS, REOPEN_ALLOWANCE, REOPEN_REFILL_EVERY,
    TOKEN_EPOCH,
};
use strand_sync::{
    Config, DecodeError, Endpoint, Event, GroupId, HandshakeError, Identity, Invalid, Key,
    KeyRange, Kind, MemoryStore, Message, Session, SessionError, Store, WriteStore, BEACON_LEN,
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
const RECON: u8 = 0x01;
const MSG: u8 = 0x03;
const MSG_BEGIN: u8 = 0x04;
const PING: u8 = 0x08;
const OPEN: u8 = 0x0c;

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
        pair.b.session.as_ref().unwrap().peer(),
        Some(&pair.a.identity.public())
    );
}

/// A session's bytes sent, split by what they carried, add up to all it
/// sent and to what crossed the link; each text lands under its kind.
#[test]
fn a_session_s_bytes_are_told_apart_by_what_they_carried() {
    let mut pair = Pair::new(11);
    let text = "a text of some length ".repeat(40);
    pair.a.write(&text);
    pair.a.write("a short one");
    pair.connect();
    pair.drive();
    let a = pair.a.session.as_ref().unwrap().stats();
    let b = pair.b.session.as_ref().unwrap().stats();
    for st in [a, b] {
        assert_eq!(st.sent.total(), st.bytes_sent, "{st:?}");
        assert!(st.sent.preamble > 0 && st.sent.framing > 0 && st.sent.reconciliation > 0);
    }
    assert_eq!(a.bytes_sent, pair.stats.bytes_a_to_b);
    assert_eq!(b.bytes_sent, pair.stats.bytes_b_to_a);
    // Alice sent two texts (each a frame header besides the message), Bob
    // none; Bob acknowledged them and Alice did not need to.
    let sizes = (text.len() + 182 + 3) + ("a short one".len() + 182 + 3);
    assert_eq!(a.sent.messages[usize::from(Kind::TEXT.0)], sizes as u64);
    assert_eq!(b.sent.messages, [0; 16]);
    assert!(b.sent.acknowledgements > 0);
    // Message 2 (Bob's first packet) carries the only PAD frame.
    assert_eq!(a.sent.padding, 0);
    assert!(b.sent.padding >= 2);
}

#[test]
fn empty_logs_settle_in_two_round_trips() {
    let mut pair = Pair::new(2);
    pair.connect();
    pair.drive();
    assert!(pair.a.session.as_ref().unwrap().is_idle());
    assert!(pair.b.session.as_ref().unwrap().is_idle());
    // Beacon (0.5), hello and message 2 (1), the dialler's reply (0.5).
    assert!(pair.round_trips() <= 2.0, "{}", pair.round_trips());
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
        // Preamble (beacon 274, hello 66, message 2 ~100, each with up to
        // 127 bytes of random padding), a fingerprint or two, one message
        // of ~220 bytes and its acknowledgement.
        let padding = 3 * MAX_PREAMBLE_PAD as u64;
        assert!(
            pair.bytes() < 1_300 + padding,
            "{} bytes (missing on b: {missing_on_b})",
            pair.bytes()
        );
        assert!(
            pair.round_trips() <= 3.0,
            "{} round trips",
            pair.round_trips()
        );
    }
}

#[test]
fn a_stranger_gets_a_beacon_and_nothing_else() {
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
    // Bob's beacon does not name Mallory, so she has nobody to greet.
    assert_eq!(pair.a.handshake_error(), Some(HandshakeError::NoContact));
    assert_eq!(pair.stats.bytes_a_to_b, 0, "mallory sent nothing");
    assert!(pair.stats.bytes_b_to_a <= (2 + BEACON_LEN + MAX_PREAMBLE_PAD) as u64);
    assert_eq!(pair.b.handshake_error(), Some(HandshakeError::NoHello));
    assert!(!pair.a.established() && !pair.b.established());
    assert!(pair.a.store.is_empty());
    assert_eq!(
        pair.b.store.keys(&pair.b.group().id),
        before.keys(&pair.b.group().id)
    );
}

#[test]
fn a_removed_contact_gets_no_session() {
    let mut pair = Pair::new(6);
    pair.b.set_contacts(Vec::new());
    pair.a.write("are we still friends?");
    pair.connect();
    pair.drive();
    assert_eq!(pair.a.handshake_error(), Some(HandshakeError::NoContact));
    assert!(!pair.b.established());
    assert!(pair.b.store.is_empty());
}

#[test]
fn a_clock_three_epochs_off_gets_no_session() {
    let mut pair = Pair::new(7);
    pair.a.clock_offset = -3 * TOKEN_EPOCH as i64;
    pair.connect();
    pair.drive();
    assert!(!pair.a.established() && !pair.b.established());
    // A clock one epoch off is tolerated.
    let mut pair = Pair::new(7);
    pair.a.clock_offset = TOKEN_EPOCH as i64;
    pair.connect();
    pair.drive();
    assert!(pair.a.established() && pair.b.established());
}

/// A beacon whose filter has every bit set would match every
/// contact of the dialler, which would then name them one by one in
/// hellos. A filter without the honest number of bits is refused and the
/// dialler sends nothing.
#[test]
fn an_all_ones_beacon_makes_no_one_send_a_hello() {
    let mut pair = Pair::new(60);
    pair.a.write("for bob only");
    pair.filter = Some(Box::new(|side, bytes| {
        if side == Side::B
            && bytes.len() >= 2 + BEACON_LEN
            && bytes.len() <= 2 + BEACON_LEN + MAX_PREAMBLE_PAD
        {
            // The beacon record: length, nonce, then the filter.
            let filter = 2 + BEACON_LEN - strand_sync::limits::BEACON_FILTER_LEN;
            bytes[filter..2 + BEACON_LEN].fill(0xff);
        }
        Action::Deliver
    }));
    pair.connect();
    pair.drive();
    assert_eq!(pair.a.handshake_error(), Some(HandshakeError::BadBeacon));
    assert_eq!(pair.stats.bytes_a_to_b, 0, "no hello went out");
}

/// The dialler used to greet only the first contact a beacon
/// matched; a false match listed before the real contact cost the whole
/// encounter. Now each matching contact is tried in turn.
#[test]
fn a_false_match_listed_before_the_real_contact_does_not_cost_the_sync() {
    let mut pair = Pair::new(61);
    pair.a.write("hello bob");
    // The beacon Bob will send on the next link (his RNG, cloned).
    let now = pair.now;
    let mut probe_rng = pair.b.rng().clone();
    let mut probe = pair
        .b
        .endpoint
        .accept(Config::default(), now, &mut probe_rng);
    probe.poll_transmit(now, &pair.b.store).unwrap();
    let beacon = probe.beacon().unwrap().clone();
    // A contact of Alice's that this beacon matches by chance (about one
    // identity in 1,400).
    let mut seed = 1_000;
    let decoy = loop {
        let other = Identity::generate("decoy", &mut rng(seed)).unwrap();
        let contact = pair.a.identity.contact(&other.public()).unwrap();
        if beacon.matches(&contact, now) {
            break contact;
        }
        seed += 1;
    };
    let mut contacts = vec![decoy.clone()];
    contacts.extend(pair.a.contacts.clone());
    pair.a.set_contacts(contacts);
    pair.connect();
    pair.drive();
    assert_eq!(
        pair.b.session.as_ref().unwrap().beacon(),
        Some(&beacon),
        "the probe predicted the beacon"
    );
    assert!(pair.a.events.contains(&Event::Refused {
        contact: decoy.public
    }));
    assert!(pair.a.established() && pair.b.established());
    assert_eq!(pair.b.texts(), ["hello bob"]);
}

/// A device recognised its own beacon: beacon entries came from the pair's
/// secret alone, the same on both sides of the pair. Anyone who connected
/// to Bob got his fresh beacon, and replayed to a device that dials it
/// drew a hello for every one of Bob's contacts it named (up to 8) if that
/// device was Bob, one from a contact of his, none from anyone else:
/// counting hellos told Bob apart, across networks and address changes.
/// An entry now depends on who built it, and a device never recognises
/// its own.
#[test]
fn a_device_says_no_hello_to_its_own_beacon() {
    let mut r = rng(70);
    let now = 1_700_000_000_000;
    let bob = Identity::generate("bob", &mut r).unwrap();
    let alice = Identity::generate("alice", &mut r).unwrap();
    let carol = Identity::generate("carol", &mut r).unwrap();
    let bobs = Endpoint::new(
        &bob,
        vec![
            bob.contact(&alice.public()).unwrap(),
            bob.contact(&carol.public()).unwrap(),
        ],
    );
    let store = strand_sync::MemoryStore::new();
    // Whoever connects to Bob gets his beacon: the accepting side speaks
    // first.
    let mut accepted = bobs.accept(Config::default(), now, &mut r);
    let beacon = accepted.poll_transmit(now, &store).unwrap();

    // Replayed to Bob's own device, dialling: no hello.
    let mut own = bobs.dial(Config::default(), now, &mut r);
    assert_eq!(
        own.handle_input(now, &beacon, &store),
        Err(SessionError::Preamble(HandshakeError::NoContact))
    );
    assert_eq!(own.poll_transmit(now, &store), None, "no hello queued");
    assert_eq!(own.stats().hellos, 0);

    // A contact of Bob's still recognises it: exactly one hello.
    let alices = Endpoint::new(&alice, vec![alice.contact(&bob.public()).unwrap()]);
    let mut theirs = alices.dial(Config::default(), now, &mut r);
    theirs.handle_input(now, &beacon, &store).unwrap();
    assert!(theirs.poll_transmit(now, &store).is_some(), "a hello");
    assert_eq!(theirs.stats().hellos, 1);
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
    let mut from_b = 0;
    pair.filter = Some(Box::new(move |side, bytes| {
        if side == Side::B {
            from_b += 1;
            if from_b == 2 {
                // Message 2 (the first record is the beacon).
                let n = bytes.len();
                bytes[n - 1] ^= 1;
            }
        }
        Action::Deliver
    }));
    pair.connect();
    pair.drive();
    // To Alice a broken answer is a refusal; Bob was her only candidate.
    assert_eq!(pair.a.handshake_error(), Some(HandshakeError::Refused));
    assert!(!pair.a.established() && !pair.b.established());
    assert!(pair.a.store.is_empty());
}

#[test]
fn a_tampered_hello_is_refused() {
    // Offsets in the hello record: token, ephemeral key, tag.
    for byte in [2, 22, 62] {
        let mut pair = Pair::new(10);
        let mut from_a = 0;
        pair.filter = Some(Box::new(move |side, bytes| {
            if side == Side::A {
                from_a += 1;
                if from_a == 1 {
                    bytes[byte] ^= 1;
                }
            }
            Action::Deliver
        }));
        pair.connect();
        pair.drive();
        assert_eq!(
            pair.a.handshake_error(),
            Some(HandshakeError::Refused),
            "flip at {byte}"
        );
        assert!(!pair.b.established(), "flip at {byte} accepted");
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

/// The records `side` wrote on a link, in order.
type Recording = std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>;

fn record_side(pair: &mut Pair, side: Side) -> Recording {
    let recorded = Recording::default();
    let r = recorded.clone();
    pair.filter = Some(Box::new(move |s, bytes| {
        if s == side {
            r.borrow_mut().push(bytes.clone());
        }
        Action::Deliver
    }));
    recorded
}

/// Feeds records to a fresh accepting session of `endpoint`; returns it.
fn replay(endpoint: &Endpoint, records: &[Vec<u8>], now: u64, seed: u64) -> Session {
    let store = strand_sync::MemoryStore::new();
    let mut b = endpoint.accept(Config::default(), now, &mut rng(seed));
    b.poll_transmit(now, &store).unwrap(); // its own, fresh beacon
    for r in records {
        let _ = b.handle_input(now, r, &store);
        while b.poll_transmit(now, &store).is_some() {}
    }
    b
}

/// A hello recorded on the LAN used to be answered again on a
/// later link (each link had a fresh replay cache), so an observer could
/// find Bob's device again. The hello is bound to the beacon of the link it
/// was made for, so on any later link, and after a restart, it gets a
/// refusal that looks like any other, and never a session.
#[test]
fn a_hello_recorded_on_one_link_is_refused_on_later_ones_and_after_a_restart() {
    let mut pair = Pair::new(13);
    let recorded = record_side(&mut pair, Side::A);
    pair.a.write("hi");
    pair.connect();
    pair.drive();
    assert_eq!(pair.b.store.len(&pair.b.group().id), 1);
    let hello = recorded.borrow()[0].clone();
    let now = pair.now;
    // A later link to the same running device.
    let later = replay(&pair.b.endpoint, std::slice::from_ref(&hello), now, 1);
    assert_eq!(later.peer(), None, "no contact matched");
    assert!(!later.is_established());
    // The device restarted: a new endpoint from the same keys and contacts.
    let restarted = Endpoint::new(&pair.b.identity, pair.b.contacts.clone());
    let after = replay(&restarted, &[hello], now, 2);
    assert_eq!(after.peer(), None);
    assert!(!after.is_established());
}

#[test]
fn a_recorded_session_cannot_be_replayed_to_a_restarted_device() {
    // An eavesdropper records Alice's whole side and replays it to Bob after
    // Bob restarted.
    let mut pair = Pair::new(14);
    let recorded = record_side(&mut pair, Side::A);
    pair.a.write("hi");
    pair.connect();
    pair.drive();
    let recorded = recorded.borrow().clone();
    let restarted = Endpoint::new(&pair.b.identity, pair.b.contacts.clone());
    let mut b = replay(&restarted, &recorded, pair.now, 3);
    assert!(!b.is_established());
    assert!(!std::iter::from_fn(|| b.poll_event())
        .any(|e| matches!(e, Event::Established { .. } | Event::Received { .. })));
}

/// The accepting side used to report `Established` as soon as a
/// hello matched, before the dialler had proved it holds the hello's
/// ephemeral key; a replayed hello was enough. Now it waits for the
/// dialler's first authenticated packet, and times out without it.
#[test]
fn the_acceptor_is_established_only_by_the_dialler_s_first_packet() {
    let mut pair = Pair::new(62);
    let mut from_a = 0;
    pair.filter = Some(Box::new(move |side, _| {
        if side == Side::A {
            from_a += 1;
            if from_a == 2 {
                // Everything after the hello is lost.
                return Action::Stall(0);
            }
        }
        Action::Deliver
    }));
    pair.connect();
    pair.drive();
    assert!(pair.a.established(), "message 2 authenticates Bob to Alice");
    assert!(!pair.b.established(), "Alice never proved her key to Bob");
    pair.drive_for(HANDSHAKE_TIMEOUT + 1_000);
    assert_eq!(pair.b.close_error(), Some(&SessionError::Timeout));
}

/// Unauthenticated bytes used to reset the idle timer, so a
/// byte a minute kept a session (and its slot) forever.
#[test]
fn bytes_that_never_make_a_packet_do_not_keep_a_session_alive() {
    let mut pair = Pair::new(63);
    pair.connect();
    pair.drive();
    assert!(pair.b.established());
    // Alice turns hostile: her keepalives stop, and a packet announced as
    // 1,000 bytes trickles in one byte every 20 s.
    pair.a.session = None;
    pair.inject(Side::A, vec![0x03, 0xe8]);
    for _ in 0..5 {
        pair.drive_for(20_000);
        pair.inject(Side::A, vec![7]);
    }
    pair.drive_for(IDLE_TIMEOUT);
    assert_eq!(pair.b.close_error(), Some(&SessionError::Timeout));
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

/// `Sent` means the message went out on the link, and
/// `Delivered` only ever comes from the peer's acknowledgement.
#[test]
fn sent_and_delivered_follow_the_wire() {
    let mut pair = Pair::new(64);
    pair.connect();
    pair.drive();
    // Bob's acknowledgements are lost from now on.
    pair.filter = Some(Box::new(|side, _| {
        if side == Side::B {
            Action::Stall(0)
        } else {
            Action::Deliver
        }
    }));
    let key = pair.a.write("unacknowledged");
    pair.drive();
    assert_eq!(pair.b.texts(), ["unacknowledged"]);
    let group = pair.a.group().id;
    assert!(pair.a.events.contains(&Event::Sent { group, key }));
    assert!(!pair
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::Delivered { .. })));
    // Bob only relays: messages he did not write are not reported as sent.
    assert!(!pair
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::Sent { .. })));
}

/// A message the peer already holds is never sent again, so its sender
/// asks (QUERY) and learns it was delivered from the acknowledgement.
#[test]
fn a_message_the_peer_already_holds_is_confirmed_by_asking() {
    let mut pair = Pair::new(65);
    let key = pair.a.write("delivered while the ack was lost");
    let group = pair.a.group().clone();
    let bytes = pair.a.store.get(&group.id, &key).unwrap().unwrap();
    pair.b
        .store
        .insert(&group.id, &Message::decode(bytes).unwrap())
        .unwrap();
    pair.connect();
    pair.drive();
    assert_eq!(
        delivered(&pair.a),
        0,
        "nothing was sent, nothing acknowledged"
    );
    let a = pair.a.session.as_mut().unwrap();
    assert_eq!(a.confirm(&group.id, &[key, strand_sync::Key::MIN]), 2);
    pair.drive();
    assert!(pair.a.events.contains(&Event::Delivered {
        group: group.id,
        key
    }));
    assert_eq!(delivered(&pair.a), 1, "only the held one");
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
        ..Default::default()
    };
    pair.b.config = Config {
        max_packet: MIN_PACKET_LEN,
        ..Default::default()
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
    WriteStore::insert(&mut pair.a.store, &group.id, &m).unwrap();
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
fn garbage_instead_of_a_hello_ends_the_link() {
    let mut pair = Pair::new(30);
    pair.connect();
    let mut junk = vec![0, 20];
    junk.extend_from_slice(&[7; 20]);
    pair.inject(Side::A, junk);
    pair.drive();
    assert_eq!(pair.b.handshake_error(), Some(HandshakeError::Malformed));
    assert!(!pair.b.established());
}

/// Regression: honest peers far apart on small packets
/// must converge without hitting the round limit.
#[test]
fn large_differences_converge_on_ble_sized_packets() {
    let mut pair = Pair::new(31);
    pair.a.config = Config {
        max_packet: MIN_PACKET_LEN,
        ..Default::default()
    };
    pair.b.config = Config {
        max_packet: MIN_PACKET_LEN,
        ..Default::default()
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
        ..Default::default()
    };
    pair.b.config = Config {
        max_packet: 65_535,
        ..Default::default()
    };
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

/// A link between the pair's peers, run until Bob has read Alice's hello:
/// (Alice's session, Bob's session).
pub fn through_hello(pair: &mut Pair, seed: u64) -> (Session, Session) {
    let now = pair.now;
    let mut a = pair.a.endpoint.dial(Config::default(), now, &mut rng(seed));
    let mut b = pair
        .b
        .endpoint
        .accept(Config::default(), now, &mut rng(seed + 1));
    let beacon = b.poll_transmit(now, &pair.b.store).unwrap();
    a.handle_input(now, &beacon, &pair.a.store).unwrap();
    let hello = a.poll_transmit(now, &pair.a.store).unwrap();
    b.handle_input(now, &hello, &pair.b.store).unwrap();
    (a, b)
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
    let (mut a, mut b) = through_hello(&mut pair, seed);
    let msg2 = b.poll_transmit(now, &pair.b.store).unwrap();
    let scratch = strand_sync::MemoryStore::new();
    a.handle_input(now, &msg2, &scratch).unwrap();
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
    let (mut b, store, mut a, group, now) = responder_awaiting_reply(35);
    let mut body = group.0.to_vec();
    body.push(0); // bound: infinity
    body.push(1); // Fingerprint
    varint(u64::MAX, &mut body);
    body.extend_from_slice(&[0; 8]);
    let packet = a.send_raw_packet(&frame(0x01, &body)).unwrap();
    assert!(b.handle_input(now, &packet, &store).is_ok());
    // A bound at time u64::MAX (only infinity may have it).
    let (mut b, store, mut a, group, now) = responder_awaiting_reply(36);
    let mut body = group.0.to_vec();
    body.extend_from_slice(&[2, 0, 0]); // bound: time 1, no prefix; Skip
    varint(u64::MAX, &mut body); // next bound: time 1 + (u64::MAX - 1)
    body.extend_from_slice(&[1, 1]); // prefix length 1, id byte 1
    body.push(1);
    varint(5, &mut body);
    body.extend_from_slice(&[0; 8]);
    let packet = a.send_raw_packet(&frame(0x01, &body)).unwrap();
    let err = b.handle_input(now, &packet, &store).unwrap_err();
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
    let (_, mut b) = through_hello(&mut pair, 1);
    let err = b.handle_input(now, &[0, 20, 1, 2, 3], &pair.b.store);
    // Incomplete: waits. A whole packet before message 2: refused.
    assert!(err.is_ok());
    let mut junk = vec![0, 20];
    junk.extend_from_slice(&[9; 20]);
    let (_, mut b) = through_hello(&mut pair, 3);
    let err = b.handle_input(now, &junk, &pair.b.store).unwrap_err();
    assert!(matches!(err, SessionError::Decode(_)), "{err:?}");
    assert!(pair.b.store.is_empty());
}

/// A keepalive queued on a link that does not drain
/// left its deadline in the past, and the node's loop spun on it. The
/// deadline now moves on once a frame is waiting.
#[test]
fn a_waiting_keepalive_leaves_no_deadline_in_the_past() {
    let mut pair = Pair::new(66);
    pair.connect();
    pair.drive();
    let s = pair.a.session.as_mut().unwrap();
    let due = s.poll_timeout().unwrap();
    s.handle_timeout(due);
    // The PING is queued but the link never takes it.
    let next = s.poll_timeout().unwrap();
    assert!(next > due, "{next} is not after {due}");
    s.handle_timeout(next);
    assert_eq!(pair.a.close_error(), None);
    let s = pair.a.session.as_mut().unwrap();
    assert!(std::iter::from_fn(|| s.poll_event()).any(|e| e
        == Event::Closed {
            error: Some(SessionError::Timeout)
        }));
}

/// QUERY frames from a peer that never reads our
/// answers grew the acknowledgement queue without end.
#[test]
fn queries_that_are_never_read_end_the_session() {
    let (mut b, store, mut a, group, now) = responder_awaiting_reply(67);
    let keys = store.keys(&group);
    let mut body = group.0.to_vec();
    varint(256, &mut body);
    for i in 0..256 {
        let k = keys[i % keys.len()];
        body.extend_from_slice(&k.time.to_be_bytes());
        body.extend_from_slice(&k.id.0);
    }
    let query = frame(0x0b, &body);
    let mut result = Ok(());
    for _ in 0..100 {
        let packet = a.send_raw_packet(&query).unwrap();
        result = b.handle_input(now, &packet, &store);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(SessionError::Limit("unread acknowledgements")));
}

/// A batch with an invalid message in the middle
/// reported nothing after it, though the valid ones after it were stored.
#[test]
fn valid_messages_after_an_invalid_one_in_a_batch_are_still_reported() {
    let mut pair = Pair::new(68);
    pair.connect();
    pair.drive();
    let group = pair.a.group().clone();
    let make = |text: &str, seed| {
        Message::create(
            &pair.a.identity,
            &group,
            pair.now - 1000,
            Kind::TEXT,
            text.as_bytes(),
            &mut rng(seed),
        )
        .unwrap()
    };
    let (m1, m3) = (make("first", 1), make("third", 3));
    let mut m2 = make("second", 2).into_bytes();
    let n = m2.len();
    m2[n - 1] ^= 1;
    let mut plain = frame(MSG, m1.as_bytes());
    plain.extend(frame(MSG, &m2));
    plain.extend(frame(MSG, m3.as_bytes()));
    let packet = pair
        .a
        .session
        .as_mut()
        .unwrap()
        .send_raw_packet(&plain)
        .unwrap();
    pair.inject(Side::A, packet);
    pair.drive();
    assert_eq!(
        pair.b.close_error(),
        Some(&SessionError::Invalid(Invalid::Signature))
    );
    assert_eq!(received(&pair.b), 2, "both stored messages are reported");
    assert_eq!(pair.b.store.len(&group.id), 2);
}

/// Message 2's PAD frame could take it 2 bytes past
/// `max_packet` when the openings filled the packet exactly. Sweeps empty
/// groups and one group of up to 16 messages (an IdList opening of up to
/// 165 bytes) so that some opening lists fill message 2 to the byte.
#[test]
fn message_two_never_exceeds_the_packet_size() {
    for empty in 0..14usize {
        for listed in [1usize, 8, 15, 16] {
            let mut pair = Pair::new(1000 + (empty * 17 + listed) as u64);
            pair.a.config = Config {
                max_packet: 512,
                ..Default::default()
            };
            pair.b.config = Config {
                max_packet: 512,
                ..Default::default()
            };
            let members = vec![pair.a.identity.public().sign, pair.b.identity.public().sign];
            let mut extra = Vec::new();
            for g in 0..=empty {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(g as u64 + 1).to_be_bytes());
                extra.push(strand_sync::Group::new(
                    strand_sync::GroupId(id),
                    strand_sync::GroupKey::from_bytes([g as u8; 32]),
                    members.clone(),
                ));
            }
            // The first group holds `listed` of Bob's messages.
            for i in 0..listed {
                let m = Message::create(
                    &pair.b.identity,
                    &extra[0],
                    pair.now - 10_000 + i as u64,
                    Kind::TEXT,
                    b"x",
                    &mut rng(i as u64),
                )
                .unwrap();
                WriteStore::insert(&mut pair.b.store, &extra[0].id, &m).unwrap();
            }
            for peer in [&mut pair.a, &mut pair.b] {
                let mut contacts = peer.contacts.clone();
                contacts[0].groups.extend(extra.iter().cloned());
                peer.set_contacts(contacts);
            }
            let biggest = std::rc::Rc::new(std::cell::Cell::new(0));
            let b2 = biggest.clone();
            pair.filter = Some(Box::new(move |_, bytes| {
                b2.set(b2.get().max(bytes.len()));
                Action::Deliver
            }));
            pair.connect();
            pair.drive();
            assert!(pair.a.established() && pair.b.established());
            assert!(
                biggest.get() <= 2 + 512,
                "{} bytes ({empty} empty groups, {listed} listed)",
                biggest.get()
            );
        }
    }
}

/// The first messages on a link were 72 and 64 bytes every time,
/// which marks a link as Strand. The beacon record, the hello and message
/// 2 now carry random padding: over 30 links their sizes vary widely.
#[test]
fn the_first_records_of_a_link_vary_in_size() {
    let mut sizes: [std::collections::BTreeSet<usize>; 3] = Default::default();
    for seed in 0..30u64 {
        let mut pair = Pair::new(2000 + seed);
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let s2 = seen.clone();
        pair.filter = Some(Box::new(move |side, bytes| {
            s2.borrow_mut().push((side, bytes.len()));
            Action::Deliver
        }));
        pair.connect();
        pair.drive();
        let seen = seen.borrow();
        let from = |side| {
            seen.iter()
                .filter(move |(s, _)| *s == side)
                .map(|(_, n)| *n)
        };
        let mut b = from(Side::B);
        sizes[0].insert(b.next().unwrap()); // beacon record
        sizes[2].insert(b.next().unwrap()); // message 2
        sizes[1].insert(from(Side::A).next().unwrap()); // hello
    }
    for (what, s) in ["beacon", "hello", "message 2"].iter().zip(&sizes) {
        assert!(s.len() >= 20, "{what}: only {} sizes in 30 links", s.len());
    }
}

/// A text of Alice's in her 1:1 group with Bob, written now and stored
/// nowhere yet.
fn unstored(pair: &Pair, text: &[u8], seed: u64) -> Message {
    let group = pair.a.group();
    Message::create(
        &pair.a.identity,
        group,
        pair.a.now(),
        Kind::TEXT,
        text,
        &mut rng(seed),
    )
    .unwrap()
}

/// The peer answered our QUERY before it held the message (another of its
/// links was still storing it, a relay circuit reset mid-sync), and
/// reconciliation ran after, so nothing was sent and nothing acknowledged.
/// When the peer forwards the message to us as new, that says it holds it.
#[test]
fn a_message_the_peer_forwards_after_our_query_counts_as_delivered() {
    let mut pair = Pair::new(67);
    let group = pair.a.group().clone();
    // Not in Alice's own store until reconciliation is over (so she does
    // not send it: this is about the peer getting it elsewhere).
    let message = unstored(&pair, b"from the other link", 67);
    let key = message.key();
    pair.connect();
    pair.drive();
    let a = pair.a.session.as_mut().unwrap();
    assert_eq!(a.confirm(&group.id, &[key]), 1);
    pair.drive();
    assert_eq!(delivered(&pair.a), 0, "bob does not hold it yet");
    pair.a.store.insert(&group.id, &message).unwrap();
    // Bob's other link stores it now; his node hands it to this session.
    pair.b.store.insert(&group.id, &message).unwrap();
    assert!(pair
        .b
        .session
        .as_mut()
        .unwrap()
        .handle_new_message(&group.id, key));
    pair.drive();
    assert!(pair.a.events.contains(&Event::Delivered {
        group: group.id,
        key
    }));
    assert_eq!(delivered(&pair.a), 1);
}

/// The peer answered our QUERY before it held the message and got it
/// through another link without telling this session; reconciliation then
/// finds nothing to send. Once the group has reconciled, what is still
/// unacknowledged is asked about once more.
#[test]
fn what_the_peer_lacked_when_asked_is_asked_again_after_reconciling() {
    let mut pair = Pair::new(68);
    let group = pair.a.group().clone();
    let message = unstored(&pair, b"stored by bob's other link", 68);
    let key = message.key();
    pair.connect();
    pair.drive();
    assert_eq!(
        pair.a.session.as_mut().unwrap().confirm(&group.id, &[key]),
        1
    );
    pair.drive();
    assert_eq!(delivered(&pair.a), 0, "bob does not hold it yet");
    for p in [&mut pair.a, &mut pair.b] {
        p.store.insert(&group.id, &message).unwrap();
    }
    assert!(pair.a.session.as_mut().unwrap().resync(&group.id));
    pair.drive();
    assert!(
        !pair
            .a
            .events
            .iter()
            .any(|e| matches!(e, Event::Sent { .. })),
        "reconciliation sent nothing (both hold it)"
    );
    assert!(pair.a.events.contains(&Event::Delivered {
        group: group.id,
        key
    }));
}

/// Acknowledgements owed for messages received are not a peer asking
/// without reading: a receiver whose uplink is backed up can owe
/// thousands, and its peer's honest QUERY (asking again about what it
/// sent) ended the session for "unread acknowledgements".
#[test]
fn an_honest_query_behind_many_owed_acks_does_not_end_the_session() {
    // Ann takes in all Bob sends and sends nothing back.
    fn pass(a: &mut Peer, b: &mut Peer, now: u64) {
        let (sa, sb) = (a.session.as_mut().unwrap(), b.session.as_mut().unwrap());
        while let Some(p) = sb.poll_transmit(now, &b.store) {
            sa.handle_input(now, &p, &a.store).unwrap();
            sa.settle(now, &mut a.store);
        }
    }
    let mut pair = Pair::new(74);
    pair.connect();
    pair.drive();
    let now = pair.now;
    let group = pair.a.group().id;
    let keys: Vec<_> = (0..8_000).map(|i| pair.b.write(&format!("t{i}"))).collect();
    pass(&mut pair.a, &mut pair.b, now);
    assert_eq!(
        pair.a.store.keys(&group).len(),
        pair.b.store.keys(&group).len()
    );
    // Bob asks about some of them, as Session::confirm does.
    let sb = pair.b.session.as_mut().unwrap();
    assert_eq!(sb.confirm(&group, &keys[..256]), 256);
    pass(&mut pair.a, &mut pair.b, now);
    assert_eq!(pair.a.close_error(), None);
    // Ann's link drains: the texts Bob asked about are told delivered.
    pair.drive();
    assert_eq!(pair.a.close_error(), None);
    for &key in &keys[..256] {
        assert!(pair.b.events.contains(&Event::Delivered { group, key }));
    }
}

fn synced(peer: &Peer, group: &GroupId) -> usize {
    peer.events
        .iter()
        .filter(|e| matches!(e, Event::Synced { group: g } if g == group))
        .count()
}

/// A store that counts the keys its scans visit: the work reconciliation
/// does on a log.
struct Counted {
    store: MemoryStore,
    visits: Cell<u64>,
}

impl Store for Counted {
    type Error = Infallible;

    fn get(&self, group: &GroupId, key: &Key) -> Result<Option<Vec<u8>>, Infallible> {
        self.store.get(group, key)
    }

    fn contains(&self, group: &GroupId, key: &Key) -> Result<bool, Infallible> {
        self.store.contains(group, key)
    }

    fn scan(
        &self,
        group: &GroupId,
        range: &KeyRange,
        visit: &mut dyn FnMut(&Key) -> ControlFlow<()>,
    ) -> Result<(), Infallible> {
        self.store.scan(group, range, &mut |key| {
            self.visits.set(self.visits.get() + 1);
            visit(key)
        })
    }
}

/// Alice and Bob with a shared log of `n` messages, linked and synced,
/// their sessions taken out of the pair to be driven by hand, and Bob's
/// store counting the keys his answers visit.
fn linked_over_a_counted_log(seed: u64, n: u64) -> (Pair, Session, Session, Counted) {
    let mut pair = Pair::new(seed);
    shared_history(&mut pair, n as usize);
    let (a, b, store) = counted_link(&mut pair);
    (pair, a, b, store)
}

/// Links the pair's Alice and Bob (again: Bob's store must be back in the
/// pair), syncs them, and takes their sessions out of the pair and Bob's
/// store into a count.
fn counted_link(pair: &mut Pair) -> (Session, Session, Counted) {
    pair.connect();
    pair.drive();
    assert_eq!(pair.b.close_error(), None);
    let a = pair.a.session.take().unwrap();
    let b = pair.b.session.take().unwrap();
    let store = Counted {
        store: std::mem::take(&mut pair.b.store),
        visits: Cell::new(0),
    };
    (a, b, store)
}

/// The body of a frame of `group` holding one item up to ∞ (PROTOCOL.md
/// §8.1): a fingerprint of as many messages as Bob holds (`log`), with a
/// sum he does not have (the `round`th made up), so he splits.
fn whole_log_fingerprint(group: GroupId, log: u64, round: u64) -> Vec<u8> {
    let made_up = (round + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut body = group.0.to_vec();
    body.extend_from_slice(&[0, 1]);
    varint(log, &mut body);
    body.extend_from_slice(&made_up.to_le_bytes());
    body
}

/// Alice, played by the test, answers every reply of Bob's in `group` with
/// a fingerprint of the whole log (`log` messages) that Bob does not have,
/// so he splits: an OPEN first, then a RECON a round, for 400 rounds or
/// until Bob writes nothing back. Returns how many Bob answered.
fn whole_log_fingerprints(
    a: &mut Session,
    b: &mut Session,
    store: &Counted,
    group: GroupId,
    log: u64,
    now: u64,
) -> u64 {
    let mut answered = 0;
    for round in 0..400u64 {
        let body = whole_log_fingerprint(group, log, round);
        // The first opens the group again; the others answer Bob's split.
        let kind = if round == 0 { OPEN } else { RECON };
        let packet = a.send_raw_packet(&frame(kind, &body)).unwrap();
        b.handle_input(now, &packet, store).unwrap();
        // The contact reads Bob's reply, and stops when none comes.
        if b.poll_transmit(now, store).is_none() {
            break;
        }
        answered += 1;
    }
    answered
}

/// A contact opened a group whose exchange was over again and again, each
/// OPEN (some 60 bytes: an IdList of one made-up tag, or a Fingerprint
/// that differs) sent once it had read our reply to the last, and each
/// made us walk the whole log: 400 openings of a log of 2,000 visited
/// 850,000 keys (the IdList) or 1,600,000 (the Fingerprint), and a log of
/// millions costs a second or two a walk on the node's async worker.
/// Openings past `REOPEN_ALLOWANCE` wait for news now, unread, and an
/// opening (or a RECON) sent while one waits is out of turn.
#[test]
fn opening_a_group_again_with_nothing_new_costs_a_few_walks_of_its_log() {
    const LOG: u64 = 2_000;
    for fingerprint in [false, true] {
        let (pair, mut a, mut b, store) = linked_over_a_counted_log(75, LOG);
        let group = pair.a.group().id;
        let now = pair.now;
        let mut closed = None;
        for round in 0..400u64 {
            let made_up = (round + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            // One item with upper bound ∞ (PROTOCOL.md §8.1, §8.5).
            let mut opening = group.0.to_vec();
            if fingerprint {
                opening.extend_from_slice(&[0, 1]);
                varint(LOG, &mut opening);
            } else {
                opening.extend_from_slice(&[0, 2, 1]);
            }
            opening.extend_from_slice(&made_up.to_le_bytes());
            let mut plain = Vec::new();
            if fingerprint && round > 0 {
                // Done with our split of the last one.
                plain.extend(frame(RECON, &group.0));
            }
            plain.extend(frame(OPEN, &opening));
            let packet = a.send_raw_packet(&plain).unwrap();
            if let Err(e) = b.handle_input(now, &packet, &store) {
                closed = Some(e);
                break;
            }
            // The contact reads one packet (our reply comes first in it).
            let _ = b.poll_transmit(now, &store);
        }
        // An answered opening walks the log at most twice: a summary and
        // a split, or an IdList pass and a packet of the re-sends.
        let visits = store.visits.get();
        let most = (u64::from(REOPEN_ALLOWANCE) + 1) * 2 * LOG;
        assert!(
            visits <= most,
            "fingerprint {fingerprint}: {visits} keys visited"
        );
        assert!(
            matches!(closed, Some(SessionError::Decode(_))),
            "fingerprint {fingerprint}: {closed:?}"
        );
    }
}

/// A peer that opens a group again after each new message, its own or
/// ours, is answered every time, however often: openings wait only when
/// they run `REOPEN_ALLOWANCE` ahead of the news.
#[test]
fn a_group_opened_again_after_each_new_message_is_answered_every_time() {
    let mut pair = Pair::new(76);
    shared_history(&mut pair, 100);
    pair.connect();
    pair.drive();
    let group = pair.a.group().id;
    let before = synced(&pair.b, &group);
    for i in 0..100 {
        if i % 2 == 0 {
            pair.a.write(&format!("alice {i}"));
        } else {
            pair.b.write(&format!("bob {i}"));
        }
        assert!(pair.a.session.as_mut().unwrap().resync(&group));
        pair.drive();
        assert_eq!(pair.a.close_error(), None, "after {i}");
        assert_eq!(pair.b.close_error(), None, "after {i}");
    }
    assert_eq!(synced(&pair.b, &group) - before, 100, "every one answered");
    let (a, b) = keys(&pair);
    assert_eq!(a, b);
    assert_eq!(a.len(), 200);
}

/// Alice re-opens her group with Bob one time more than the allowance,
/// with nothing new: the last opening waits. Returns the pair, the group
/// and Bob's count of exchanges before.
fn an_opening_past_the_allowance(seed: u64) -> (Pair, GroupId, usize) {
    let mut pair = Pair::new(seed);
    shared_history(&mut pair, 40);
    pair.connect();
    pair.drive();
    let group = pair.a.group().id;
    let before = synced(&pair.b, &group);
    let allowance = REOPEN_ALLOWANCE as usize;
    for _ in 0..=allowance {
        assert!(pair.a.session.as_mut().unwrap().resync(&group));
        pair.drive();
    }
    assert_eq!(
        synced(&pair.b, &group) - before,
        allowance,
        "the last waits"
    );
    (pair, group, before)
}

/// An opening with nothing new past `REOPEN_ALLOWANCE` waits, and ends
/// nothing: the next new message of the group has it answered.
#[test]
fn an_opening_past_the_allowance_waits_for_news() {
    let (mut pair, group, before) = an_opening_past_the_allowance(77);
    assert!(!pair.a.session.as_ref().unwrap().is_idle());
    pair.b.write("news");
    pair.drive();
    assert_eq!(
        synced(&pair.b, &group) - before,
        REOPEN_ALLOWANCE as usize + 1
    );
    assert!(pair.a.session.as_ref().unwrap().is_idle());
    assert!(pair.a.texts().iter().any(|t| t == "news"));
    assert_eq!(pair.a.close_error(), None);
    assert_eq!(pair.b.close_error(), None);
}

/// An opening past the allowance with no news at all (a fifth import in a
/// row on one link) is answered once a re-opening comes back with time:
/// an honest peer waits at most `REOPEN_REFILL_EVERY`, not until the
/// group's next message.
#[test]
fn an_opening_past_the_allowance_is_answered_in_time() {
    let (mut pair, group, before) = an_opening_past_the_allowance(78);
    pair.drive_for(REOPEN_REFILL_EVERY + 1_000);
    assert_eq!(
        synced(&pair.b, &group) - before,
        REOPEN_ALLOWANCE as usize + 1
    );
    assert!(pair.a.session.as_ref().unwrap().is_idle());
    assert_eq!(pair.a.close_error(), None);
    assert_eq!(pair.b.close_error(), None);
}

/// A contact that answered every reply of ours in an exchange with a
/// fingerprint of the whole log that differs (a RECON of some 50 bytes)
/// kept the exchange going for up to `MAX_ROUNDS_PER_GROUP` (4,096)
/// rounds, each a summary and a split of the whole log: two walks of it a
/// round, some 8,000 an exchange (400 rounds here, 800 walks). What
/// answering costs is counted now: once the contact has made us walk the
/// log `RECON_WORK_WALKS` times with nothing moving, its next frame waits
/// unanswered, and the session goes on; time pays some walks back.
#[test]
fn answering_every_reply_with_a_whole_log_fingerprint_costs_a_few_walks_of_it() {
    const LOG: u64 = 5_000;
    let walk = LOG.max(RECON_WORK_FLOOR);
    let (pair, mut a, mut b, store) = linked_over_a_counted_log(79, LOG);
    let group = pair.a.group().id;
    let now = pair.now;
    let answered = whole_log_fingerprints(&mut a, &mut b, &store, group, LOG, now);
    // Two walks an answer; the last one may go past the allowance.
    let visits = store.visits.get();
    assert!(
        visits <= (RECON_WORK_WALKS + 2) * walk,
        "{answered} replies answered, {visits} keys visited"
    );
    assert!(!b.is_closed());
    // The frame that waits is answered once time pays walks back (the
    // contact still there: a PING keeps the link alive).
    let later = now + REOPEN_REFILL_EVERY;
    let ping = a.send_raw_packet(&frame(PING, &[])).unwrap();
    b.handle_input(later, &ping, &store).unwrap();
    b.handle_timeout(later);
    assert!(b.poll_transmit(later, &store).is_some());
    assert_eq!(store.visits.get(), visits + 2 * LOG, "answered in time");
    assert!(!b.is_closed());
}

/// A contact that had made us walk a log `RECON_WORK_WALKS` times on one
/// session could drop the link and dial again for 32 walks more, as often
/// as it liked: the walks were counted per session, and a session is cheap
/// to make. The account a session spends from (`Session::walks`), kept for
/// the contact, is where its next one spends from now
/// (`Session::share_walks`), refilled by time alone, and never past the
/// whole allowance.
#[test]
fn a_contact_that_dials_again_gets_no_fresh_walks() {
    const LOG: u64 = 5_000;
    let walk = LOG.max(RECON_WORK_FLOOR);
    let (mut pair, mut a, mut b, store) = linked_over_a_counted_log(89, LOG);
    let group = pair.a.group().id;
    let first = whole_log_fingerprints(&mut a, &mut b, &store, group, LOG, pair.now);
    let spent = store.visits.get();
    assert!(
        spent >= (RECON_WORK_WALKS - 4) * walk,
        "the first session spent its walks: {first} replies answered, {spent} keys visited"
    );
    // The link drops; the contact dials again at once, and Bob's new
    // session spends from the account the last one spent from, as the
    // node keeps it for the contact.
    let account = b.walks();
    drop((a, b));
    pair.b.store = store.store;
    let (mut a, mut b, store) = counted_link(&mut pair);
    b.share_walks(pair.now, account);
    let again = whole_log_fingerprints(&mut a, &mut b, &store, group, LOG, pair.now);
    let visits = store.visits.get();
    assert_eq!(
        (again, visits),
        (0, 0),
        "on the second session: {again} replies answered, {visits} keys visited"
    );
    assert!(!b.is_closed(), "its frame waits");
    // An hour later time has given all the walks back, and no more.
    let account = b.walks();
    drop((a, b));
    pair.b.store = store.store;
    pair.drive_for(60 * REOPEN_REFILL_EVERY);
    let (mut a, mut b, store) = counted_link(&mut pair);
    b.share_walks(pair.now, account);
    let later = whole_log_fingerprints(&mut a, &mut b, &store, group, LOG, pair.now);
    let visits = store.visits.get();
    assert!(
        later > 0 && visits <= (RECON_WORK_WALKS + 2) * walk,
        "an hour later: {later} replies answered, {visits} keys visited"
    );
}

/// Two sessions of one contact up at once each spent from what was left
/// when it came up, and time paid each back on its own: a contact that
/// dialled a second link while its first was up could spend the whole
/// allowance on each (64 walks of a log), and once both were spent, got
/// `RECON_WORK_REFILL` walks a minute on each (8 a minute). Its sessions
/// spend from one account now (`Session::share_walks`): together, one
/// allowance and one refill.
#[test]
fn two_sessions_of_a_contact_up_at_once_spend_one_allowance() {
    const LOG: u64 = 5_000;
    let walk = LOG.max(RECON_WORK_FLOOR);
    let (mut pair, mut a1, mut b1, store) = linked_over_a_counted_log(97, LOG);
    let group = pair.a.group().id;
    // A second link comes up while the first is: Bob's node hands its
    // session the contact's account, the one the first spends from.
    pair.b.store = store.store;
    let (mut a2, mut b2, store) = counted_link(&mut pair);
    let now = pair.now;
    b2.share_walks(now, b1.walks());
    // The contact spends its walks on the first link...
    let first = whole_log_fingerprints(&mut a1, &mut b1, &store, group, LOG, now);
    let spent = store.visits.get();
    assert!(
        spent >= (RECON_WORK_WALKS - 4) * walk,
        "on the first link: {first} replies answered, {spent} keys visited"
    );
    // ...and has none left on the second.
    store.visits.set(0);
    let beside = whole_log_fingerprints(&mut a2, &mut b2, &store, group, LOG, now);
    let visits = store.visits.get();
    assert_eq!(
        (beside, visits),
        (0, 0),
        "on the second link: {beside} replies answered, {visits} keys visited"
    );
    assert!(!b2.is_closed(), "its frame waits");
    // A minute later time has paid walks back: once for the contact. The
    // frame waiting on each link is woken (a PING keeps the link alive),
    // and the contact answers every reply of Bob's, on either link, with
    // another whole-log fingerprint, until he answers on neither.
    let later = now + REOPEN_REFILL_EVERY;
    store.visits.set(0);
    let mut links = [(a1, b1, true), (a2, b2, true)];
    for round in 0..100u64 {
        let mut answered = false;
        for (a, b, waits) in &mut links {
            let plain = if *waits {
                frame(PING, &[])
            } else {
                frame(RECON, &whole_log_fingerprint(group, LOG, 1_000 + round))
            };
            let packet = a.send_raw_packet(&plain).unwrap();
            let before = store.visits.get();
            b.handle_input(later, &packet, &store).unwrap();
            b.handle_timeout(later);
            while b.poll_transmit(later, &store).is_some() {}
            *waits = store.visits.get() == before;
            answered |= !*waits;
        }
        if !answered {
            break;
        }
    }
    let visits = store.visits.get();
    assert!(
        visits > 0 && visits <= RECON_WORK_REFILL * walk,
        "a minute later, on both links: {visits} keys visited, a walk is {walk}"
    );
    assert!(links.iter().all(|(_, b, _)| !b.is_closed()));
}

/// A review of the work bound: each message sent in full paid back a walk
/// of the log, however often the peer asked for it, so a contact that
/// listed nothing for the log's first two messages (Bob sends them again)
/// beside a whole-rest fingerprint that differs, round after round, paid
/// for every answer with two messages it already held: 400 rounds
/// answered here, some 800 walks. A message pays once a session now.
#[test]
fn messages_asked_for_again_and_again_pay_for_no_more_walks() {
    const LOG: u64 = 5_000;
    let walk = LOG.max(RECON_WORK_FLOOR);
    let (pair, mut a, mut b, store) = linked_over_a_counted_log(83, LOG);
    let group = pair.a.group().id;
    let now = pair.now;
    let mut third = None;
    let mut seen = 0;
    store
        .store
        .scan(&group, &KeyRange::ALL, &mut |key| {
            seen += 1;
            if seen == 3 {
                third = Some(*key);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    let third = third.expect("a log of 5,000");
    let mut answered = 0;
    for round in 0..400u64 {
        let mut body = group.0.to_vec();
        let made_up = (round + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        if round == 0 {
            // An opening is one item: the whole log, a sum Bob lacks.
            body.extend_from_slice(&[0, 1]);
            varint(LOG, &mut body);
            body.extend_from_slice(&made_up.to_le_bytes());
            let packet = a.send_raw_packet(&frame(OPEN, &body)).unwrap();
            b.handle_input(now, &packet, &store).unwrap();
            while b.poll_transmit(now, &store).is_some() {}
            continue;
        }
        // Up to the third message: an IdList of nothing, so Bob sends the
        // first two, which the contact holds.
        varint(third.time + 1, &mut body);
        let id_len = 32 - third.id.0.iter().rev().take_while(|b| **b == 0).count();
        body.push(id_len as u8);
        body.extend_from_slice(&third.id.0[..id_len]);
        body.push(2);
        varint(0, &mut body);
        // The rest, up to ∞: a fingerprint Bob does not have, so he splits.
        body.push(0);
        body.push(1);
        varint(LOG - 2, &mut body);
        body.extend_from_slice(&made_up.to_le_bytes());
        let packet = a.send_raw_packet(&frame(RECON, &body)).unwrap();
        b.handle_input(now, &packet, &store).unwrap();
        // The contact reads all Bob writes (his reply and the two
        // messages), and stops when nothing comes.
        let mut wrote = false;
        while b.poll_transmit(now, &store).is_some() {
            wrote = true;
        }
        if !wrote {
            break;
        }
        answered += 1;
    }
    let visits = store.visits.get();
    assert!(
        visits <= (RECON_WORK_WALKS + 4) * walk,
        "{answered} rounds answered, {visits} keys visited"
    );
    assert!(!b.is_closed());
}
