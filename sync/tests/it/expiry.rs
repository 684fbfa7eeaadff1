//! Disappearing messages (PROTOCOL.md §4): the expiry travels in the signed
//! header; an expired message is refused, and no session forwards it; a
//! text or file that lasts no timer is refused.

use strand_sync::harness::{Pair, EPOCH};
use strand_sync::limits::MAX_BODY_LEN;
use strand_sync::{
    DecodeError, Epoch, Event, Identity, Invalid, Kind, Message, WriteStore, MAX_TIMER, MIN_TIMER,
};

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
    let soon = Some(t + 5 * MIN);
    assert!(matches!(
        Message::create_expiring(&a, &group, t, soon, Kind::TEXT, &big, &mut r),
        Err(Invalid::BodyTooLong(_))
    ));
    assert!(Message::create_expiring(&a, &group, t, soon, Kind::TEXT, &big[8..], &mut r).is_ok());
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

/// Regression ("Times peers claim"): a contact signs what they like, and a
/// text whose expiry was a second after its time was taken: it arrived,
/// the user was told, and it vanished a second later. No honest device
/// writes one (a text, a file's chunks and manifest expire their
/// conversation's timer after their time, and a timer is 5 minutes to 366
/// days), so it is refused: `Lifetime`. A text at exactly either bound is
/// taken; a pool message, whose expiry is its envelope's, may last any
/// time; private groups' texts follow the same rule.
#[test]
fn a_text_that_lasts_no_timer_is_refused() {
    let mut r = rng(93);
    let a = Identity::generate("a", &mut r).unwrap();
    let b = Identity::generate("b", &mut r).unwrap();
    let group = a.contact(&b.public()).unwrap().direct_group().clone();
    let t = 1_700_000_000_000;
    for kind in [Kind::TEXT, Kind::CHUNK, Kind::FILE] {
        for lasts in [1_000, MIN_TIMER - 1, MAX_TIMER + 1] {
            let forged =
                Message::forge_expiring(&a, &group, t, Some(t + lasts), kind, b"x", &mut r)
                    .unwrap();
            assert_eq!(
                forged.validate(&group, t),
                Err(Invalid::Lifetime { lasts }),
                "{kind:?} lasting {lasts} ms"
            );
            // Nor does an honest writer write it.
            assert_eq!(
                Message::create_expiring(&a, &group, t, Some(t + lasts), kind, b"x", &mut r),
                Err(Invalid::Lifetime { lasts })
            );
        }
        for lasts in [MIN_TIMER, MAX_TIMER] {
            let m = Message::create_expiring(&a, &group, t, Some(t + lasts), kind, b"x", &mut r)
                .unwrap();
            assert_eq!(
                m.validate(&group, t).unwrap(),
                b"x",
                "{kind:?} lasting {lasts} ms"
            );
        }
    }
    // Already expired is said as such, whatever it lasted.
    let brief =
        Message::forge_expiring(&a, &group, t, Some(t + 1_000), Kind::TEXT, b"x", &mut r).unwrap();
    assert_eq!(
        brief.validate(&group, t + 1_000),
        Err(Invalid::Expired {
            expires: t + 1_000,
            now: t + 1_000
        })
    );
    // A pool message lasts as its envelope does.
    let handed =
        Message::create_expiring(&a, &group, t, Some(t + 1_000), Kind::ENVELOPE, b"x", &mut r)
            .unwrap();
    assert!(handed.validate(&group, t).is_ok());
    // A private group's text, from a member who is no admin.
    let epoch = Epoch::create(&a, "g", &[(b.public(), "b".to_owned())], &mut r).unwrap();
    let in_group = epoch.group();
    let forged =
        Message::forge_expiring(&b, in_group, t, Some(t + 1_000), Kind::TEXT, b"x", &mut r)
            .unwrap();
    assert_eq!(
        forged.validate(in_group, t),
        Err(Invalid::Lifetime { lasts: 1_000 })
    );
    let honest = Message::create_expiring(
        &b,
        in_group,
        t,
        Some(t + MIN_TIMER),
        Kind::TEXT,
        b"x",
        &mut r,
    )
    .unwrap();
    assert!(honest.validate(in_group, t).is_ok());
}

/// A contact's text that vanishes a second after its time is refused on
/// arrival: not stored, not acknowledged, reported as `Lifetime`, and the
/// session goes on (a device of a version before the rule may hold and
/// offer one): a text written after it arrives on the same session.
/// Before, it was stored and shown.
#[test]
fn a_text_that_lasts_no_timer_is_refused_and_the_session_goes_on() {
    let mut pair = Pair::new(94);
    let group = pair.a.group().clone();
    let mut r = rng(94);
    // Dated a minute ahead (within the skew allowed), so it has not
    // expired while the link comes up.
    let written = EPOCH + MIN;
    let brief = Message::forge_expiring(
        &pair.b.identity,
        &group,
        written,
        Some(written + 1_000),
        Kind::TEXT,
        b"gone in a second",
        &mut r,
    )
    .unwrap();
    pair.b.store.insert(&group.id, &brief).unwrap();
    pair.b.write("an ordinary one");
    pair.connect();
    pair.drive();
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
    assert!(!pair.a.store.keys(&group.id).contains(&brief.key()));
    assert_eq!(pair.a.texts(), ["an ordinary one"]);
    assert!(pair.a.events.iter().any(|e| matches!(
        e,
        Event::Rejected {
            reason: Invalid::Lifetime { lasts: 1_000 },
            ..
        }
    )));
    assert!(!pair.a.events.iter().any(|e| matches!(
        e,
        Event::Received { key, .. } if *key == brief.key()
    )));
    // The session is still up: the next text comes over it.
    pair.b.write("and one after");
    pair.drive();
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    let mut texts = pair.a.texts();
    texts.sort();
    assert_eq!(texts, ["an ordinary one", "and one after"]);
}
