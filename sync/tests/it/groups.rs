//! Private groups on a live session: a group created or joined while the
//! link is up syncs on that link (PROTOCOL.md §8.5, OPEN).

use rand_core::RngCore;
use strand_sync::harness::{Pair, Side};
use strand_sync::{Event, Group, GroupId, GroupKey, Kind, Message, SessionError, WriteStore};

use crate::common::rng;

/// A private group of the pair's two peers.
fn group_of_pair(pair: &Pair, seed: u64) -> Group {
    let mut r = rng(seed);
    let mut id = [0u8; 32];
    let mut key = [0u8; 32];
    r.fill_bytes(&mut id);
    r.fill_bytes(&mut key);
    Group::new(
        GroupId(id),
        GroupKey::from_bytes(key),
        vec![pair.a.identity.public().sign, pair.b.identity.public().sign],
    )
}

/// Writes `n` messages to `group` into one side's store.
fn write(pair: &mut Pair, side: Side, group: &Group, n: u64) {
    let now = pair.now;
    let peer = match side {
        Side::A => &mut pair.a,
        Side::B => &mut pair.b,
    };
    let mut r = rng(n ^ side as u64);
    for i in 0..n {
        let text = format!("{side:?} in the group {i}");
        let msg = Message::create(
            &peer.identity,
            group,
            now - 60_000 + i,
            Kind::TEXT,
            text.as_bytes(),
            &mut r,
        )
        .unwrap();
        peer.store.insert(&group.id, &msg).unwrap();
    }
}

fn add(pair: &mut Pair, side: Side, group: &Group) -> bool {
    let peer = match side {
        Side::A => &mut pair.a,
        Side::B => &mut pair.b,
    };
    peer.session
        .as_mut()
        .expect("a live session")
        .add_group(group.clone())
}

fn synced(pair: &Pair, side: Side, group: &GroupId) -> usize {
    let peer = match side {
        Side::A => &pair.a,
        Side::B => &pair.b,
    };
    peer.events
        .iter()
        .filter(|e| matches!(e, Event::Synced { group: g } if g == group))
        .count()
}

/// A member pushes a message of a group the moment it adds it, before the
/// other side has added it (each learns of a new group in its own time):
/// the receiver drops it and keeps the session, and the message arrives
/// when the receiver adds the group. On the starting main the session
/// ended with "message is for another group", and the link with it.
#[test]
fn a_message_pushed_before_the_peer_adds_its_group_does_not_end_the_session() {
    let mut pair = Pair::new(63);
    pair.connect();
    pair.drive();
    let group = group_of_pair(&pair, 64);
    assert!(add(&mut pair, Side::A, &group));
    pair.drive();
    let msg = Message::create(
        &pair.a.identity,
        &group,
        pair.now,
        Kind::TEXT,
        b"early",
        &mut rng(65),
    )
    .unwrap();
    pair.a.store.insert(&group.id, &msg).unwrap();
    assert!(pair
        .a
        .session
        .as_mut()
        .unwrap()
        .handle_new_message(&group.id, msg.key()));
    pair.drive();
    assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    assert!(pair.b.established());
    assert_eq!(pair.b.store.len(&group.id), 0, "dropped, not stored");
    assert_eq!(pair.b.session.as_ref().unwrap().stats().messages_dropped, 1);

    assert!(add(&mut pair, Side::B, &group));
    pair.drive();
    assert_eq!(pair.b.store.len(&group.id), 1, "it comes with B's OPEN");
    assert!(pair.b.close_error().is_none());
}

/// One side adds the group, the other answers UNKNOWN_GROUP, then adds it
/// too and opens it: both logs converge on the same link.
#[test]
fn a_group_joined_mid_session_syncs_on_that_link() {
    for first in [Side::A, Side::B] {
        let mut pair = Pair::new(60);
        pair.connect();
        pair.drive();
        assert!(pair.a.established() && pair.b.established());
        let group = group_of_pair(&pair, 61);
        write(&mut pair, Side::A, &group, 40);
        write(&mut pair, Side::B, &group, 25);

        let second = if first == Side::A { Side::B } else { Side::A };
        assert!(add(&mut pair, first, &group));
        pair.drive();
        assert_eq!(pair.a.store.len(&group.id), 40, "nothing moved yet");
        assert_eq!(pair.b.store.len(&group.id), 25);

        assert!(add(&mut pair, second, &group));
        assert!(!add(&mut pair, second, &group), "added once");
        pair.drive();
        assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
        assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
        assert_eq!(pair.a.store.len(&group.id), 65, "{first:?} first");
        assert_eq!(
            pair.a.store.keys(&group.id),
            pair.b.store.keys(&group.id),
            "{first:?} first"
        );
        assert!(synced(&pair, Side::A, &group.id) >= 1);
        assert!(synced(&pair, Side::B, &group.id) >= 1);
        // Live messages of the new group go out at once.
        let msg = Message::create(
            &pair.b.identity,
            &group,
            pair.now,
            Kind::TEXT,
            b"live",
            &mut rng(62),
        )
        .unwrap();
        pair.b.store.insert(&group.id, &msg).unwrap();
        assert!(pair
            .b
            .session
            .as_mut()
            .unwrap()
            .handle_new_message(&group.id, msg.key()));
        pair.drive();
        assert_eq!(pair.a.store.len(&group.id), 66);
    }
}

/// Both sides add the group at the same moment: their OPENs cross, the
/// dialler's stands, and the session neither fails nor stalls.
#[test]
fn crossed_openings_converge() {
    for (a_writes, b_writes) in [(0u64, 0u64), (30, 0), (0, 30), (200, 170)] {
        let mut pair = Pair::new(63);
        pair.connect();
        pair.drive();
        let group = group_of_pair(&pair, 64);
        write(&mut pair, Side::A, &group, a_writes);
        write(&mut pair, Side::B, &group, b_writes);
        assert!(add(&mut pair, Side::A, &group));
        assert!(add(&mut pair, Side::B, &group));
        pair.drive();
        assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
        assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
        let want = (a_writes + b_writes) as usize;
        assert_eq!(pair.a.store.len(&group.id), want);
        assert_eq!(pair.a.store.keys(&group.id), pair.b.store.keys(&group.id));
        assert_eq!(synced(&pair, Side::A, &group.id), 1);
        assert_eq!(synced(&pair, Side::B, &group.id), 1);
    }
}

/// A group added before the handshake is not taken (the session starts
/// with the contact's groups); one added the moment the session is up is.
#[test]
fn groups_added_before_and_right_after_the_handshake() {
    let mut pair = Pair::new(65);
    let group = group_of_pair(&pair, 66);
    write(&mut pair, Side::B, &group, 12);
    pair.connect();
    assert!(!add(&mut pair, Side::A, &group), "not established yet");
    while !pair.a.established() {
        assert!(pair.step());
    }
    assert!(add(&mut pair, Side::A, &group));
    // The acceptor is established once the dialler's first packet after
    // message 2 arrives.
    assert!(!add(&mut pair, Side::B, &group), "not established yet");
    while !pair.b.established() {
        assert!(pair.step());
    }
    assert!(add(&mut pair, Side::B, &group));
    pair.drive();
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
    assert_eq!(pair.a.store.len(&group.id), 12);
}

/// The peer may not open a group again while it is being reconciled, nor
/// send an OPEN that is not an opening: either ends the session.
#[test]
fn hostile_openings_end_the_session() {
    // An OPEN (0x0c) whose message is a Skip over everything, not an
    // opening: refused when decoded.
    let mut pair = Pair::new(67);
    pair.connect();
    pair.drive();
    let group = group_of_pair(&pair, 68);
    add(&mut pair, Side::B, &group);
    let mut body = group.id.0.to_vec();
    body.extend_from_slice(&[0x00, 0x00]); // bound ∞, mode Skip
    let mut plain = vec![0x0c, body.len() as u8];
    plain.extend_from_slice(&body);
    let packet = pair
        .a
        .session
        .as_mut()
        .unwrap()
        .send_raw_packet(&plain)
        .unwrap();
    pair.inject(Side::A, packet);
    pair.drive();
    assert!(
        matches!(pair.b.close_error(), Some(SessionError::Decode(_))),
        "{:?}",
        pair.b.close_error()
    );
}

/// Many messages stored at once (a file's chunks) are synced by asking the
/// live session to reconcile the group again, even in the middle of an
/// exchange, rather than by handing over each one.
#[test]
fn a_group_reconciled_again_on_a_live_session() {
    let mut pair = Pair::new(69);
    pair.connect();
    pair.drive();
    let group = pair.a.group().clone();
    // Asked twice before it runs: one more exchange.
    write(&mut pair, Side::A, &group, 30);
    let s = pair.a.session.as_mut().unwrap();
    assert!(s.resync(&group.id));
    assert!(s.resync(&group.id));
    pair.drive();
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
    assert_eq!(pair.b.store.len(&group.id), 30);
    // From the accepting side too, and for a group it does not sync: no.
    write(&mut pair, Side::B, &group, 7);
    let s = pair.b.session.as_mut().unwrap();
    assert!(!s.resync(&GroupId([9; 32])));
    assert!(s.resync(&group.id));
    pair.drive();
    assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
    assert_eq!(pair.a.store.len(&group.id), 37);
}

/// A group the peer answered UNKNOWN_GROUP for (its welcome still on the
/// way) is not opened again however often this side asks to reconcile it
/// (a file sent to it, an import): each opening counted against the
/// peer's bound on unknown groups, and the 257th ended the session. Once
/// the peer adds the group and opens it, both sync it as before.
#[test]
fn a_group_the_peer_lacks_is_not_opened_again_until_it_opens_it() {
    let mut pair = Pair::new(71);
    pair.connect();
    pair.drive();
    let group = group_of_pair(&pair, 72);
    write(&mut pair, Side::A, &group, 3);
    assert!(add(&mut pair, Side::A, &group));
    pair.drive();
    for _ in 0..300 {
        pair.a.session.as_mut().unwrap().resync(&group.id);
        pair.drive();
    }
    assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    assert!(pair.b.established());
    assert_eq!(pair.b.store.len(&group.id), 0);
    assert!(!pair.a.session.as_mut().unwrap().resync(&group.id));

    assert!(add(&mut pair, Side::B, &group));
    pair.drive();
    assert_eq!(pair.b.store.len(&group.id), 3, "it comes with B's OPEN");
    write(&mut pair, Side::A, &group, 2);
    assert!(pair.a.session.as_mut().unwrap().resync(&group.id));
    pair.drive();
    assert_eq!(pair.b.store.len(&group.id), 5);
    assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
}
