//! Discovery beacons (over the LAN or first on a link) and BLE
//! advertisement hints (heard over the air from anyone). Both refuse a
//! filter without the honest number of bits set, which random bytes
//! almost never have, so besides raw bytes the input also names honest
//! filters bit by bit, or changes a real beacon or hint for a contact
//! (moving set bits, or changing its nonce): whatever is read is written
//! back the same, an honest filter is never refused, matching never
//! panics, and an unchanged one matches its contact.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::limits::{
    ADVERT_FILTER_LEN, ADVERT_NONCE_LEN, ADVERT_SET_BITS, BEACON_FILTER_LEN, BEACON_NONCE_LEN,
    BEACON_SET_BITS,
};
use strand_sync::{Advert, Beacon, Contact, Identity, Time};

const T0: Time = 1_700_000_000_000;
const HOUR: Time = 3_600_000;

/// Ann's record of Ben, and Ben's of Ann: she announces, he listens.
fn contacts() -> &'static (Contact, Contact) {
    static CONTACTS: OnceLock<(Contact, Contact)> = OnceLock::new();
    CONTACTS.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let ann = Identity::generate("ann", &mut rng).unwrap();
        let ben = Identity::generate("ben", &mut rng).unwrap();
        (
            ann.contact(&ben.public()).unwrap(),
            ben.contact(&ann.public()).unwrap(),
        )
    })
}

/// The shape of one kind of filter.
struct Shape {
    nonce: usize,
    filter: usize,
    bits: u32,
}

const BEACON: Shape = Shape {
    nonce: BEACON_NONCE_LEN,
    filter: BEACON_FILTER_LEN,
    bits: BEACON_SET_BITS,
};
const ADVERT: Shape = Shape {
    nonce: ADVERT_NONCE_LEN,
    filter: ADVERT_FILTER_LEN,
    bits: ADVERT_SET_BITS,
};

/// An honest encoding: the nonce from the input, then bits set where the
/// input says (two bytes a position), and where a stride says once the
/// input runs out, until exactly `bits` are set.
fn honest(shape: &Shape, input: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; shape.nonce + shape.filter];
    let n = shape.nonce.min(input.len());
    out[..n].copy_from_slice(&input[..n]);
    let mut positions = input[n..]
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_be_bytes([p[0], p[1]])))
        // An odd stride visits every position of a power-of-two filter.
        .chain((1..).map(|k: usize| k * 7919));
    let mut set = 0;
    while set < shape.bits {
        let p = positions.next().expect("endless") % (shape.filter * 8);
        let byte = &mut out[shape.nonce + p / 8];
        if *byte & (1 << (p % 8)) == 0 {
            *byte |= 1 << (p % 8);
            set += 1;
        }
    }
    out
}

/// A real encoding changed as the input says: each byte pair moves one
/// set bit of the filter to a clear position (the filter stays honest);
/// an odd first byte also changes the nonce. Returns whether it changed.
fn altered(shape: &Shape, mut bytes: Vec<u8>, input: &[u8]) -> (Vec<u8>, bool) {
    let Some((&how, moves)) = input.split_first() else {
        return (bytes, false);
    };
    let mut changed = false;
    if how & 1 != 0 {
        bytes[usize::from(how >> 1) % shape.nonce] ^= 1;
        changed = true;
    }
    let len = shape.filter * 8;
    let bit = |bytes: &[u8], p: usize| bytes[shape.nonce + p / 8] & (1 << (p % 8)) != 0;
    for m in moves.chunks_exact(2) {
        let from = (0..len)
            .map(|i| (usize::from(m[0]) * 8 + i) % len)
            .find(|&p| bit(&bytes, p));
        let to = (0..len)
            .map(|i| (usize::from(m[1]) * 8 + i) % len)
            .find(|&p| !bit(&bytes, p));
        if let (Some(from), Some(to)) = (from, to) {
            bytes[shape.nonce + from / 8] ^= 1 << (from % 8);
            bytes[shape.nonce + to / 8] ^= 1 << (to % 8);
            changed = true;
        }
    }
    (bytes, changed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (ann_of_ben, ben_of_ann) = contacts();
    // Heard within the accepted epochs or long after.
    let made = T0;
    let heard = T0 + HOUR * u64::from(mode >> 3);
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(mode));
    let advert = mode & 1 != 0;
    let shape = if advert { &ADVERT } else { &BEACON };
    let (bytes, honest_filter, unchanged) = match (mode >> 1) & 3 {
        0 => (rest.to_vec(), false, false),
        1 => (honest(shape, rest), true, false),
        _ => {
            let real = if advert {
                Advert::new(std::slice::from_ref(ann_of_ben), made, &mut rng)
                    .to_bytes()
                    .to_vec()
            } else {
                Beacon::new(std::slice::from_ref(ann_of_ben), made, &mut rng)
                    .to_bytes()
                    .to_vec()
            };
            let (bytes, changed) = altered(shape, real, rest);
            (bytes, true, !changed)
        }
    };
    let matched = if advert {
        match Advert::from_bytes(&bytes) {
            Ok(a) => {
                assert_eq!(a.to_bytes().as_slice(), bytes.as_slice());
                Some(a.matches(ben_of_ann, heard))
            }
            Err(_) => None,
        }
    } else {
        match Beacon::from_bytes(&bytes) {
            Ok(b) => {
                assert_eq!(b.to_bytes().as_slice(), bytes.as_slice());
                Some(b.matches(ben_of_ann, heard))
            }
            Err(_) => None,
        }
    };
    if honest_filter {
        assert!(matched.is_some(), "an honest filter refused");
    }
    if unchanged && heard == made {
        assert_eq!(matched, Some(true), "a contact's own hint not matched");
    }
});
