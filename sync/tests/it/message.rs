//! Messages: creation and validation.

use strand_sync::limits::{MAX_BODY_LEN, MAX_CLOCK_SKEW};
use strand_sync::{DecodeError, Group, GroupKey, Identity, Invalid, Kind, Message};

use crate::common::rng;

const NOW: u64 = 1_700_000_000_000;

struct World {
    alice: Identity,
    bob: Identity,
    mallory: Identity,
    group: Group,
}

fn world() -> World {
    let mut r = rng(10);
    let alice = Identity::generate("alice", &mut r).unwrap();
    let bob = Identity::generate("bob", &mut r).unwrap();
    let mallory = Identity::generate("mallory", &mut r).unwrap();
    let group = alice.contact(&bob.public()).unwrap().direct_group().clone();
    World {
        alice,
        bob,
        mallory,
        group,
    }
}

#[test]
fn both_contacts_derive_the_same_group() {
    let w = world();
    let from_bob = w.bob.contact(&w.alice.public()).unwrap();
    let g = from_bob.direct_group();
    assert_eq!(g.id, w.group.id);
    assert_eq!(g.key().as_bytes(), w.group.key().as_bytes());
    assert!(g.is_member(&w.alice.public().sign) && g.is_member(&w.bob.public().sign));
    assert!(!g.is_member(&w.mallory.public().sign));
    // A different pair gets a different group.
    let other = w.alice.contact(&w.mallory.public()).unwrap();
    assert_ne!(other.direct_group().id, w.group.id);
}

#[test]
fn a_message_validates_and_opens() {
    let w = world();
    let m = Message::create(&w.alice, &w.group, NOW, Kind::TEXT, b"hello", &mut rng(1)).unwrap();
    let again = Message::decode(m.as_bytes().to_vec()).unwrap();
    assert_eq!(again.id(), m.id());
    assert_eq!(again.validate(&w.group, NOW).unwrap(), b"hello");
    assert_eq!(again.author(), w.alice.public().sign);
    assert_eq!(again.time(), NOW);
    assert_eq!(again.kind(), Kind::TEXT);
    // The body is not in the clear.
    assert!(!m.as_bytes().windows(5).any(|w| w == b"hello"));
}

#[test]
fn ids_are_content_hashes() {
    let w = world();
    let a = Message::create(&w.alice, &w.group, NOW, Kind::TEXT, b"same", &mut rng(1)).unwrap();
    let b = Message::create(&w.alice, &w.group, NOW, Kind::TEXT, b"same", &mut rng(2)).unwrap();
    assert_ne!(a.id(), b.id(), "fresh nonces make distinct messages");
    let a2 = Message::create(&w.alice, &w.group, NOW, Kind::TEXT, b"same", &mut rng(1)).unwrap();
    assert_eq!(a.id(), a2.id(), "same inputs, same bytes, same id");
}

#[test]
fn a_bad_signature_is_rejected() {
    let w = world();
    let m = Message::create(&w.alice, &w.group, NOW, Kind::TEXT, b"hello", &mut rng(1)).unwrap();
    let mut bytes = m.into_bytes();
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    let m = Message::decode(bytes).unwrap();
    assert_eq!(m.validate(&w.group, NOW), Err(Invalid::Signature));
}

#[test]
fn any_altered_byte_is_rejected() {
    let w = world();
    let m = Message::create(&w.alice, &w.group, NOW, Kind::TEXT, b"hello", &mut rng(1)).unwrap();
    let bytes = m.into_bytes();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x80;
        if let Ok(m) = Message::decode(b) {
            assert!(
                m.validate(&w.group, NOW).is_err(),
                "accepted a change at byte {i}"
            );
        }
    }
}

#[test]
fn a_foreign_author_is_rejected() {
    let w = world();
    // Mallory knows the group id and key (say a member leaked them) but is
    // not a member: her message must not validate.
    let forged = Group::new(
        w.group.id,
        GroupKey::from_bytes(*w.group.key().as_bytes()),
        vec![w.mallory.public().sign, w.alice.public().sign],
    );
    let m = Message::create(
        &w.mallory,
        &forged,
        NOW,
        Kind::TEXT,
        b"let me in",
        &mut rng(1),
    )
    .unwrap();
    assert_eq!(m.validate(&w.group, NOW), Err(Invalid::NotMember));
    // And the honest API refuses to write as a non-member.
    assert_eq!(
        Message::create(&w.mallory, &w.group, NOW, Kind::TEXT, b"x", &mut rng(1)).unwrap_err(),
        Invalid::NotMember
    );
}

#[test]
fn a_body_under_another_key_is_rejected() {
    let w = world();
    let wrong_key = Group::new(
        w.group.id,
        GroupKey::from_bytes([9; 32]),
        w.group.members().to_vec(),
    );
    let m = Message::create(&w.alice, &wrong_key, NOW, Kind::TEXT, b"hello", &mut rng(1)).unwrap();
    assert_eq!(m.validate(&w.group, NOW), Err(Invalid::Decrypt));
}

#[test]
fn a_message_for_another_group_is_rejected() {
    let w = world();
    let other = w
        .alice
        .contact(&w.mallory.public())
        .unwrap()
        .direct_group()
        .clone();
    let m = Message::create(&w.alice, &other, NOW, Kind::TEXT, b"hi", &mut rng(1)).unwrap();
    assert_eq!(m.validate(&w.group, NOW), Err(Invalid::WrongGroup));
}

#[test]
fn future_timestamps_beyond_the_skew_are_rejected() {
    let w = world();
    let ok = Message::create(
        &w.alice,
        &w.group,
        NOW + MAX_CLOCK_SKEW,
        Kind::TEXT,
        b"x",
        &mut rng(1),
    )
    .unwrap();
    assert!(ok.validate(&w.group, NOW).is_ok());
    let late = Message::create(
        &w.alice,
        &w.group,
        NOW + MAX_CLOCK_SKEW + 1,
        Kind::TEXT,
        b"x",
        &mut rng(1),
    )
    .unwrap();
    assert!(matches!(
        late.validate(&w.group, NOW),
        Err(Invalid::FromTheFuture { .. })
    ));
    // Old messages are fine: logs hold history.
    let old = Message::create(&w.alice, &w.group, 0, Kind::TEXT, b"x", &mut rng(1)).unwrap();
    assert!(old.validate(&w.group, NOW).is_ok());
}

#[test]
fn oversize_bodies_are_refused_both_ways() {
    let w = world();
    let big = vec![b'a'; MAX_BODY_LEN + 1];
    assert_eq!(
        Message::create(&w.alice, &w.group, NOW, Kind::TEXT, &big, &mut rng(1)).unwrap_err(),
        Invalid::BodyTooLong(MAX_BODY_LEN + 1)
    );
    let max = vec![b'a'; MAX_BODY_LEN];
    let m = Message::create(&w.alice, &w.group, NOW, Kind::TEXT, &max, &mut rng(1)).unwrap();
    assert!(m.validate(&w.group, NOW).is_ok());
    // Hand-made oversize encodings do not even decode.
    let mut bytes = m.into_bytes();
    bytes.splice(102..102, std::iter::repeat_n(0u8, 1));
    assert!(Message::decode(bytes.clone()).is_err());
    bytes[98..102].copy_from_slice(&((MAX_BODY_LEN + 17) as u32).to_be_bytes());
    assert!(matches!(
        Message::decode(bytes),
        Err(DecodeError::TooLong { .. })
    ));
}

#[test]
fn text_must_be_utf8_but_other_kinds_need_not() {
    let w = world();
    let m = Message::create(
        &w.alice,
        &w.group,
        NOW,
        Kind::TEXT,
        &[0xff, 0xfe],
        &mut rng(1),
    )
    .unwrap();
    assert_eq!(m.validate(&w.group, NOW), Err(Invalid::NotText));
    let m = Message::create(
        &w.alice,
        &w.group,
        NOW,
        Kind(200),
        &[0xff, 0xfe],
        &mut rng(1),
    )
    .unwrap();
    assert!(m.validate(&w.group, NOW).is_ok());
}

#[test]
fn truncated_encodings_do_not_decode() {
    let w = world();
    let m = Message::create(&w.alice, &w.group, NOW, Kind::TEXT, b"hello", &mut rng(1)).unwrap();
    let bytes = m.into_bytes();
    for len in 0..bytes.len() {
        assert!(Message::decode(bytes[..len].to_vec()).is_err());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Message::decode(longer).is_err());
}

/// The record that tells contacts where to reach a device beyond
/// its LAN round-trips, refuses what breaks its limits, and derives one
/// relay identity per epoch.
#[test]
fn reach_records_round_trip_and_bad_ones_are_refused() {
    use strand_sync::{relay_epoch, Reach};
    let r = Reach {
        seed: [7; 32],
        relays: vec![vec![1, 2, 3], vec![4; 40]],
        offers: vec![vec![9; 12]],
    };
    r.check().unwrap();
    let bytes = r.encode();
    assert_eq!(Reach::decode(&bytes).unwrap(), r);
    for cut in 0..bytes.len() {
        assert!(Reach::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Reach::decode(&longer).is_err());
    let mut too_many = vec![1u8];
    too_many.extend_from_slice(&[0; 32]);
    too_many.push(9);
    assert!(Reach::decode(&too_many).is_err());
    let mut empty = Reach {
        relays: vec![vec![]],
        ..r.clone()
    };
    assert!(empty.check().is_err());
    empty.relays = vec![vec![1; 256]];
    assert!(empty.check().is_err());
    let hour = strand_sync::limits::RELAY_EPOCH;
    assert_eq!(relay_epoch(10 * hour + 1), 10);
    assert_ne!(r.relay_key(1), r.relay_key(2));
    assert_eq!(r.relay_key(3), strand_sync::relay_key(&[7; 32], 3));
}

/// A message's whole length follows from its first bytes, with or
/// without an expiry; anything else says nothing.
#[test]
fn the_length_is_read_from_the_header() {
    let w = world();
    let plain =
        Message::create(&w.alice, &w.group, NOW, Kind::TEXT, &[7; 300], &mut rng(1)).unwrap();
    let expiring = Message::create_expiring(
        &w.alice,
        &w.group,
        NOW,
        Some(NOW + strand_sync::MIN_TIMER),
        Kind::TEXT,
        &[7; 300],
        &mut rng(2),
    )
    .unwrap();
    for m in [&plain, &expiring] {
        let bytes = m.as_bytes();
        assert_eq!(strand_sync::encoded_len(&bytes[..110]), Some(bytes.len()));
    }
    assert_eq!(strand_sync::encoded_len(&plain.as_bytes()[..101]), None);
    assert_eq!(strand_sync::encoded_len(&[9; 110]), None);
    assert_eq!(strand_sync::encoded_len(&[]), None);
}
