//! Disappearing messages (PROTOCOL.md §4): the expiry travels in the signed
//! header; an expired message is refused, and no session forwards it.

use strand_sync::harness::{Pair, EPOCH};
use strand_sync::limits::MAX_BODY_LEN;
use strand_sync::{DecodeError, Event, Identity, Invalid, Kind, Message, WriteStore};

use crate::common::rng;

const MIN: u64 = 60_000;

#[test]
fn the_expiry_is_signed_and_checked() {
    let mut r = rng(90);
    let a = Identity::generate("a", &mut r).unwrap();
    let b = Identity::generate("b", &mut r).unwrap();
    let group = a.contact(&b.public()).unwrap().direct_group().clone();
    let t = 1_700_000_000_000;
    let m = Message::create_expiring(
        &a,
        &group,
        t,
        Some(t + 5 * MIN),
        Kind::TEXT,
        b"soon gone",
        &mut r,
    )
    .unwrap();
    assert_eq!(m.expires(), Some(t + 5 * MIN));
    assert_eq!(m.as_bytes()[0], 2, "version 2");
    assert_eq!(
        m.as_bytes().len(),
        Message::create(&a, &group, t, Kind::TEXT, b"soon gone", &mut r)
            .unwrap()
            .as_bytes()
            .len()
            + 8
    );
    let back = Message::decode(m.as_bytes().to_vec()).unwrap();
    assert_eq!(back.validate(&group, t + MIN).unwrap(), b"soon gone");
    assert_eq!(
        back.validate(&group, t + 5 * MIN).unwrap_err(),
        Invalid::Expired {
            expires: t + 5 * MIN,
            now: t + 5 * MIN
        }
    );
    // A message without an expiry is version 1, as before.
    let plain = Message::create(&a, &group, t, Kind::TEXT, b"stays", &mut r).unwrap();
    assert_eq!(plain.expires(), None);
    assert_eq!(plain.as_bytes()[0], 1);

    // Pushing the expiry later breaks the signature (and the AAD).
    let mut bytes = m.as_bytes().to_vec();
    bytes[74..82].copy_from_slice(&(t + 500 * MIN).to_be_bytes());
    let forged = Message::decode(bytes).unwrap();
    assert_eq!(
        forged.validate(&group, t + MIN).unwrap_err(),
        Invalid::Signature
    );
    // An expiry at or before the time does not decode, nor create.
    let mut bytes = m.as_bytes().to_vec();
    bytes[74..82].copy_from_slice(&t.to_be_bytes());
    assert_eq!(
        Message::decode(bytes).unwrap_err(),
        DecodeError::Invalid("expires before it was written")
    );
    assert!(matches!(
        Message::create_expiring(&a, &group, t, Some(t), Kind::TEXT, b"x", &mut r),
        Err(Invalid::Expired { .. })
    ));
    // The body limit leaves room for the 8 bytes.
    let big = vec![b'x'; MAX_BODY_LEN];
    assert!(Message::create(&a, &group, t, Kind::TEXT, &big, &mut r).is_ok());
    assert!(matches!(
        Message::create_expiring(&a, &group, t, Some(t + MIN), Kind::TEXT, &big, &mut r),
        Err(Invalid::BodyTooLong(_))
    ));
    assert!(
        Message::create_expiring(&a, &group, t, Some(t + MIN), Kind::TEXT, &big[8..], &mut r)
            .is_ok()
    );
}

/// Alice holds a message that expired while Bob was away: the session
/// reconciles without error and Bob never gets it; a live message that
/// has not expired arrives.
#[test]
fn an_expired_message_is_not_forwarded() {
    let mut pair = Pair::new(91);
    let group = pair.a.group().clone();
    let mut r = rng(91);
    let gone = Message::create_expiring(
        &pair.a.identity,
        &group,
        EPOCH - 60 * MIN,
        Some(EPOCH - MIN),
        Kind::TEXT,
        b"expired an hour later",
        &mut r,
    )
    .unwrap();
    let kept = Message::create_expiring(
        &pair.a.identity,
        &group,
        EPOCH - 60 * MIN,
        Some(EPOCH + 60 * MIN),
        Kind::TEXT,
        b"still here",
        &mut r,
    )
    .unwrap();
    pair.a.store.insert(&group.id, &gone).unwrap();
    pair.a.store.insert(&group.id, &kept).unwrap();
    pair.connect();
    pair.drive();
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
    let held = pair.b.store.keys(&group.id);
    assert_eq!(held, vec![kept.key()]);
}

/// A peer that sends an expired message anyway (a device whose clock is
/// behind, or a hostile one) gets it refused without ending the session.
#[test]
fn an_expired_message_sent_anyway_is_refused_and_the_session_goes_on() {
    let mut pair = Pair::new(92);
    // Bob's clock is 10 minutes behind: to him Alice's message has not
    // expired, so he sends it; Alice refuses it.
    pair.b.clock_offset = -(10 * MIN as i64);
    let group = pair.a.group().clone();
    let mut r = rng(92);
    let late = Message::create_expiring(
        &pair.b.identity,
        &group,
        EPOCH - 60 * MIN,
        Some(EPOCH - 5 * MIN),
        Kind::TEXT,
        b"expired for alice",
        &mut r,
    )
    .unwrap();
    pair.b.store.insert(&group.id, &late).unwrap();
    pair.b.write("an ordinary one");
    pair.connect();
    pair.drive();
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    assert!(!pair.a.store.keys(&group.id).contains(&late.key()));
    assert_eq!(pair.a.store.len(&group.id), 1, "the ordinary one arrived");
    assert!(pair.a.events.iter().any(|e| matches!(
        e,
        Event::Rejected {
            reason: Invalid::Expired { .. },
            ..
        }
    )));
}
