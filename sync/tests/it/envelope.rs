//! Sealed envelopes (PROTOCOL.md §16): only the recipient opens one; a
//! carrier sees a size bucket, an expiry hour and nothing linkable; any
//! change spoils it; the acknowledgement token matches only its own.

use strand_sync::{
    AckToken, Envelope, EnvelopeError, Identity, Kind, Message, ENVELOPE_HEADER_LEN, ENVELOPE_SIZES,
};

use crate::common::rng;

const NOW: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;

struct People {
    ann: Identity,
    ben: Identity,
    cat: Identity,
}

fn people() -> People {
    let mut r = rng(40);
    People {
        ann: Identity::generate("ann", &mut r).unwrap(),
        ben: Identity::generate("ben", &mut r).unwrap(),
        cat: Identity::generate("cat", &mut r).unwrap(),
    }
}

/// Ann's message of `len` bytes in her 1:1 group with Cat.
fn for_cat(p: &People, len: usize, kind: Kind) -> Message {
    let pair = p.ann.contact(&p.cat.public()).unwrap();
    Message::create(
        &p.ann,
        pair.direct_group(),
        NOW,
        kind,
        &vec![b'm'; len],
        &mut rng(len as u64),
    )
    .unwrap()
}

#[test]
fn only_the_recipient_opens_it_and_what_a_carrier_sees_is_unlinkable() {
    let p = people();
    let msg = for_cat(&p, 200, Kind::TEXT);
    let mut r = rng(41);
    let e = Envelope::seal(&p.cat.public(), &msg, NOW + 5 * HOUR + 1, 6, &mut r).unwrap();
    let (opened, ack) = e.open(&p.cat).unwrap();
    assert_eq!(opened, msg);
    // The message is Ann's in the pair's group: Cat's contact Ann.
    let ann_of_cat = p.cat.contact(&p.ann.public()).unwrap();
    assert_eq!(opened.group(), ann_of_cat.direct_group().id);
    assert!(opened.validate(ann_of_cat.direct_group(), NOW).is_ok());
    // Not for Ben, nor for Ann who sent it.
    assert!(e.open(&p.ben).is_none());
    assert!(e.open(&p.ann).is_none());
    // Expiry to the hour, at or after the one asked for.
    let asked = NOW + 5 * HOUR + 1;
    assert_eq!(e.expires() % HOUR, 0);
    assert!(e.expires() >= asked && e.expires() < asked + HOUR);
    assert_eq!(e.copies(), 6);
    // No key, group id or author in the clear.
    for secret in [
        &p.ann.public().sign[..],
        &p.cat.public().sign[..],
        &p.cat.public().dh[..],
        &msg.group().0[..],
    ] {
        assert!(!e.as_bytes().windows(32).any(|w| w == secret));
    }
    // The same message sealed again shares nothing but version, expiry
    // and copies.
    let again = Envelope::seal(&p.cat.public(), &msg, NOW + 5 * HOUR + 1, 6, &mut r).unwrap();
    assert_eq!(e.as_bytes()[..6], again.as_bytes()[..6]);
    assert_ne!(e.as_bytes()[6..38], again.as_bytes()[6..38]);
    assert_ne!(e.as_bytes()[38..46], again.as_bytes()[38..46]);
    assert_ne!(e.ack_hash(), again.ack_hash());
    assert_ne!(e.id(), again.id());
    // The acknowledgement token matches this envelope only.
    assert!(e.acknowledged_by(&ack));
    assert!(!again.acknowledged_by(&ack));
    assert!(!e.acknowledged_by(&AckToken([0; 16])));
}

#[test]
fn envelopes_come_in_a_few_sizes_and_carriers_may_change_only_the_copies() {
    let p = people();
    let mut r = rng(42);
    for (len, kind, size) in [
        (1, Kind::TEXT, 1 << 10),
        (1_000, Kind::TEXT, 3 << 9),
        (1_600, Kind::TEXT, 1 << 11),
        (2_000, Kind::TEXT, 3 << 10),
        (5_000, Kind::TEXT, 3 << 11),
        (9_000, Kind::TEXT, 3 << 12),
        (25_000, Kind::TEXT, 1 << 15),
        (40_000, Kind::TEXT, 3 << 14),
        (100_000, Kind::TEXT, 1 << 17),
        (150_000, Kind::TEXT, 3 << 16),
        (200_000, Kind::TEXT, 1 << 18),
        (262_144, Kind::CHUNK, (1 << 18) + (1 << 12)),
        (900_000, Kind::TEXT, ENVELOPE_SIZES[18]),
    ] {
        let msg = for_cat(&p, len, kind);
        let e = Envelope::seal(&p.cat.public(), &msg, NOW + HOUR, 2, &mut r).unwrap();
        assert_eq!(e.as_bytes().len(), ENVELOPE_HEADER_LEN + size + 16, "{len}");
        let back = Envelope::decode(e.as_bytes().to_vec()).unwrap();
        assert_eq!(back.open(&p.cat).unwrap().0, msg);
    }
    // Other lengths and versions are not envelopes.
    let e = Envelope::seal(
        &p.cat.public(),
        &for_cat(&p, 10, Kind::TEXT),
        NOW,
        4,
        &mut r,
    )
    .unwrap();
    let mut short = e.as_bytes().to_vec();
    short.pop();
    assert_eq!(Envelope::decode(short), Err(EnvelopeError::Malformed));
    let mut v2 = e.as_bytes().to_vec();
    v2[0] = 2;
    assert_eq!(Envelope::decode(v2), Err(EnvelopeError::Malformed));
    assert_eq!(Envelope::decode(Vec::new()), Err(EnvelopeError::Malformed));

    // A carrier halves the copies: still opens, same id.
    let mut handed = e.clone();
    handed.set_copies(2);
    assert_eq!(handed.copies(), 2);
    assert_eq!(handed.id(), e.id());
    assert!(handed.open(&p.cat).is_some());
    handed.set_copies(0);
    assert_eq!(handed.copies(), 1, "never below one");
    // Any other byte changed: it no longer opens.
    for (at, bit) in [
        (1, 0x10),
        (4, 0x10),
        (6, 0x10),
        (37, 0x10),
        // X25519 ignores this bit of the key; the seal does not.
        (37, 0x80),
        (38, 0x10),
        (45, 0x10),
        (46, 0x10),
        (61, 0x10),
        (62, 0x10),
        (500, 0x10),
        (e.as_bytes().len() - 1, 0x10),
    ] {
        let mut b = e.as_bytes().to_vec();
        b[at] ^= bit;
        let changed = Envelope::decode(b).unwrap();
        assert!(changed.open(&p.cat).is_none(), "byte {at}, bit {bit:#x}");
    }
    // A copy count of zero is not an envelope.
    let mut zero = e.as_bytes().to_vec();
    zero[5] = 0;
    assert_eq!(Envelope::decode(zero), Err(EnvelopeError::Malformed));
}

/// Anyone can seal to Cat's public key, so an opened envelope proves
/// nothing by itself: its message must be valid in the 1:1 group of one
/// of Cat's contacts. A stranger's (or a carrier's) is in no such group.
#[test]
fn an_envelope_from_a_stranger_opens_to_a_message_no_contact_wrote() {
    let p = people();
    let mut r = rng(43);
    let mallory = Identity::generate("mallory", &mut r).unwrap();
    let pair = mallory.contact(&p.cat.public()).unwrap();
    let msg = Message::create(
        &mallory,
        pair.direct_group(),
        NOW,
        Kind::TEXT,
        b"trust me",
        &mut r,
    )
    .unwrap();
    let e = Envelope::seal(&p.cat.public(), &msg, NOW + HOUR, 1, &mut r).unwrap();
    let (opened, _) = e.open(&p.cat).unwrap();
    let ann_of_cat = p.cat.contact(&p.ann.public()).unwrap();
    let ben_of_cat = p.cat.contact(&p.ben.public()).unwrap();
    for c in [&ann_of_cat, &ben_of_cat] {
        assert_ne!(opened.group(), c.direct_group().id);
        assert!(opened.validate(c.direct_group(), NOW).is_err());
    }
    // Nor can a message be passed off under a contact's group: Mallory's
    // own message rewrapped claiming Ann's group fails Ann's group.
    let forged = Message::create(
        &mallory,
        ann_of_cat.direct_group(),
        NOW,
        Kind::TEXT,
        b"x",
        &mut r,
    );
    assert!(
        forged.is_err()
            || forged
                .unwrap()
                .validate(ann_of_cat.direct_group(), NOW)
                .is_err()
    );
}
