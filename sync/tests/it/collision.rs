//! A malicious group member builds two different message sets whose 64-bit
//! additive fingerprints collide (Wagner's generalised birthday search), gives
//! one set to each of two honest members, and tries to keep them from
//! noticing. With fingerprints summed over the public 64-bit id prefix the
//! two honest members' whole logs summarise the same and they sync nothing;
//! with tags keyed per session (PROTOCOL.md §8) they find every message.

use std::collections::BTreeMap;

use rand_core::RngCore;
use strand_sync::harness::Pair;
use strand_sync::{Group, GroupId, GroupKey, Identity, Kind, Message, WriteStore};

use crate::common::rng;

/// The public 64-bit prefix of a message id: what fingerprints summed before
/// tags were keyed. Written out here so the attack does not depend on the
/// library's idea of a tag.
fn public_tag(msg: &Message) -> u64 {
    let id = msg.id().0;
    u64::from_le_bytes(id[..8].try_into().expect("8 bytes"))
}

/// One candidate in the search: a wrapping sum and the messages in it.
#[derive(Clone)]
struct Partial {
    sum: u64,
    picks: Vec<u32>,
}

/// Lists whose sums are merged pairwise, 2^5 of them: four levels that each
/// zero 11 more low bits, and a last one that needs the other 20.
const LISTS: usize = 32;
const PER_LIST: usize = 2048;
const LEVEL_BITS: u32 = 11;

/// Merges two lists, keeping pairs whose sum is zero in the low `bits` bits.
fn merge(a: &[Partial], b: &[Partial], bits: u32) -> Vec<Partial> {
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut by_low: BTreeMap<u64, Vec<&Partial>> = BTreeMap::new();
    for p in b {
        by_low.entry(p.sum & mask).or_default().push(p);
    }
    let mut out = Vec::new();
    for p in a {
        let want = p.sum.wrapping_neg() & mask;
        for q in by_low.get(&want).into_iter().flatten() {
            let mut picks = p.picks.clone();
            picks.extend_from_slice(&q.picks);
            out.push(Partial {
                sum: p.sum.wrapping_add(q.sum),
                picks,
            });
            if out.len() == 4 * PER_LIST {
                return out;
            }
        }
    }
    out
}

/// Writes candidate messages as `author` and searches for two disjoint sets
/// of 16 with equal public-tag sums: (first set, second set).
fn colliding_sets(author: &Identity, group: &Group, time: u64) -> (Vec<Message>, Vec<Message>) {
    let mut rng = rng(0xc011);
    let mut messages = Vec::with_capacity(LISTS * PER_LIST);
    let mut lists: Vec<Vec<Partial>> = Vec::with_capacity(LISTS);
    for list in 0..LISTS {
        let mut partials = Vec::with_capacity(PER_LIST);
        for i in 0..PER_LIST {
            let text = format!("candidate {list}/{i}");
            let msg = Message::create(author, group, time, Kind::TEXT, text.as_bytes(), &mut rng)
                .expect("a member writing a short text");
            let tag = public_tag(&msg);
            // The second half of the lists counts negatively: a zero total
            // means the first half's sum equals the second half's.
            let sum = if list < LISTS / 2 {
                tag
            } else {
                tag.wrapping_neg()
            };
            partials.push(Partial {
                sum,
                picks: vec![messages.len() as u32],
            });
            messages.push(msg);
        }
        lists.push(partials);
    }
    let mut level = 1;
    while lists.len() > 1 {
        let bits = if lists.len() == 2 {
            64
        } else {
            LEVEL_BITS * level
        };
        lists = lists
            .chunks(2)
            .map(|pair| merge(&pair[0], &pair[1], bits))
            .collect();
        level += 1;
    }
    let found = lists[0].first().expect("the search finds a collision");
    assert_eq!(found.sum, 0);
    let half = PER_LIST * LISTS / 2;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for &i in &found.picks {
        let msg = messages[i as usize].clone();
        if (i as usize) < half {
            first.push(msg);
        } else {
            second.push(msg);
        }
    }
    (first, second)
}

#[test]
fn colliding_sets_cannot_hide_messages_between_members() {
    let mut pair = Pair::new(0xc0);
    let mallory = Identity::generate("mallory", &mut rng(0xbad)).expect("a valid name");
    let mut seed = rng(0x6e);
    let mut id = [0u8; 32];
    let mut key = [0u8; 32];
    seed.fill_bytes(&mut id);
    seed.fill_bytes(&mut key);
    let group = Group::new(
        GroupId(id),
        GroupKey::from_bytes(key),
        vec![
            pair.a.identity.public().sign,
            pair.b.identity.public().sign,
            mallory.public().sign,
        ],
    );
    for peer in [&mut pair.a, &mut pair.b] {
        let mut contacts = peer.contacts.clone();
        contacts[0].groups.push(group.clone());
        peer.set_contacts(contacts);
    }

    // A shared history both honest members already hold.
    let start = pair.now - 7_200_000;
    for i in 0..30u64 {
        let author = if i % 2 == 0 {
            &pair.a.identity
        } else {
            &pair.b.identity
        };
        let text = format!("shared {i}");
        let msg = Message::create(
            author,
            &group,
            start + i * 1000,
            Kind::TEXT,
            text.as_bytes(),
            &mut seed,
        )
        .unwrap();
        pair.a.store.insert(&group.id, &msg).unwrap();
        pair.b.store.insert(&group.id, &msg).unwrap();
    }

    // Mallory's two sets: different messages, same count, same sum of the
    // public tags. Alice gets one, Bob the other (over Mallory's own links).
    let (to_alice, to_bob) = colliding_sets(&mallory, &group, pair.now - 3_600_000);
    assert_eq!(to_alice.len(), to_bob.len());
    let sum = |set: &[Message]| set.iter().fold(0u64, |s, m| s.wrapping_add(public_tag(m)));
    assert_eq!(sum(&to_alice), sum(&to_bob), "the sets collide");
    assert!(to_alice
        .iter()
        .all(|m| to_bob.iter().all(|n| m.id() != n.id())));
    for msg in &to_alice {
        pair.a.store.insert(&group.id, msg).unwrap();
    }
    for msg in &to_bob {
        pair.b.store.insert(&group.id, msg).unwrap();
    }

    pair.connect();
    pair.drive();
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
    let want = 30 + to_alice.len() + to_bob.len();
    assert_eq!(
        pair.a.store.len(&group.id),
        want,
        "Alice did not get Mallory's second set"
    );
    assert_eq!(
        pair.b.store.len(&group.id),
        want,
        "Bob did not get Mallory's first set"
    );
}
