//! Membership changes, key messages and welcomes as a group's members can
//! sign them (PROTOCOL.md §14), read by an honest member. A fixed group:
//! the creator, an admin, a hostile member who is not an admin, and the
//! reader, two epochs in (the creator made the admin one). Each input is
//! up to four messages: arbitrary MEMBERSHIP or KEY bodies written by any
//! of them into either epoch with any time, arbitrary WELCOME bodies in
//! the reader's 1:1 logs, or well-formed changes with boxes that do not
//! open or keys the change does not commit to. The reader follows them:
//! nothing panics, following twice changes nothing, the head is an epoch
//! the reader holds on its own path, and what the hostile member alone
//! wrote leaves the reader's group as it was.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{
    Chain, Change, Epoch, Group, Head, Identity, Kind, MemoryStore, Message, Sealing, WriteStore,
};

const NOW: u64 = 1_800_000_000_000;
const CREATOR: usize = 0;
const ADMIN: usize = 1;
const HOSTILE: usize = 2;
const READER: usize = 3;

struct World {
    people: Vec<Identity>,
    /// The reader's 1:1 logs with each of the others.
    pairs: Vec<Group>,
    epochs: [Epoch; 2],
    store: MemoryStore,
    chain: Chain,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(26);
        let people: Vec<Identity> = ["creator", "admin", "hostile", "reader"]
            .iter()
            .map(|n| Identity::generate(n, &mut rng).unwrap())
            .collect();
        let others: Vec<_> = people[1..]
            .iter()
            .map(|p| (p.public(), p.name().to_owned()))
            .collect();
        let first = Epoch::create(&people[CREATOR], "fuzz", &others, &mut rng).unwrap();
        let (msg, next) = first
            .propose(
                &people[CREATOR],
                Change::MakeAdmin(people[ADMIN].public().sign),
                NOW - 10_000,
                &mut rng,
            )
            .unwrap();
        let mut store = MemoryStore::new();
        store.insert(&first.id(), &msg).unwrap();
        let mut chain = Chain::new(first.clone());
        chain.update(&people[READER], &store, NOW).unwrap();
        let pairs = people
            .iter()
            .map(|p| {
                people[READER]
                    .contact(&p.public())
                    .map(|c| c.direct_group().clone())
                    .unwrap_or_else(|_| first.group().clone())
            })
            .collect();
        World {
            people,
            pairs,
            epochs: [first, next.unwrap()],
            store,
            chain,
        }
    })
}

fn u64_at(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut rng = ChaCha20Rng::seed_from_u64(u64_at(data));
    let mut store = w.store.clone();
    let mut chains = vec![w.chain.clone()];
    let mut only_hostile = true;
    // Ops: [what, who, epoch, time (8), len (1), body (len)].
    let mut rest = data;
    for _ in 0..4 {
        if rest.len() < 12 {
            break;
        }
        let (head, tail) = rest.split_at(12);
        let len = (head[11] as usize).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        let who = head[1] as usize % 3;
        only_hostile &= who == HOSTILE;
        let author = &w.people[who];
        let epoch = &w.epochs[head[2] as usize % 2];
        let time = NOW - (u64_at(&head[3..11]) % NOW);
        match head[0] % 5 {
            0 => {
                if let Ok(m) = Message::create(author, epoch.group(), time, Kind::MEMBERSHIP, body, &mut rng) {
                    store.insert(&epoch.id(), &m).unwrap();
                }
            }
            1 => {
                if let Ok(m) = Message::create(author, epoch.group(), time, Kind::KEY, body, &mut rng) {
                    store.insert(&epoch.id(), &m).unwrap();
                }
            }
            2 => {
                let pair = &w.pairs[who];
                if let Ok(m) = Message::create(author, pair, time, Kind::WELCOME, body, &mut rng) {
                    if let Ok(e) = Epoch::from_welcome(&w.people[READER], pair, &m, NOW) {
                        let _ = Chain::take_welcome(&mut chains, &m.author(), m.time(), e);
                    }
                }
            }
            3 => {
                let sealing = match body.first().map(|b| b % 3) {
                    Some(1) => Sealing::WrongCommitment,
                    Some(2) => Sealing::Garble(vec![w.people[READER].public().sign]),
                    _ => Sealing::Honest,
                };
                let target = w.people[body.get(1).map_or(0, |b| *b as usize) % 4].public();
                let change = match body.get(2).map(|b| b % 4) {
                    Some(0) => Change::Leave,
                    Some(1) => Change::Remove(target.sign),
                    Some(2) => Change::MakeAdmin(target.sign),
                    _ => Change::Add {
                        public: Identity::generate("new", &mut rng).unwrap().public(),
                        name: "new".into(),
                    },
                };
                if let Ok(m) = epoch.forge(author, change, time, sealing, &mut rng) {
                    store.insert(&epoch.id(), &m).unwrap();
                }
            }
            _ => {
                let Ok(e) = Epoch::decode(body) else { continue };
                let _ = Chain::take_welcome(&mut chains, &author.public().sign, time, e);
            }
        }
    }
    let reader = &w.people[READER];
    let before = w.chain.last().id();
    for chain in &mut chains {
        chain.update(reader, &store, NOW).unwrap();
        let head = chain.last().id();
        assert!(chain.path().contains(&head), "the head is on the path");
        assert!(chain.epoch(&head).is_some(), "the head is held");
        // Following again (every other input: it doubles the work) opens
        // and moves nothing.
        if data.first().is_some_and(|b| b & 0x80 != 0) {
            let again = chain.update(reader, &store, NOW).unwrap();
            assert!(again.is_empty(), "following twice opens nothing new");
            assert_eq!(chain.last().id(), head, "following twice moves nothing");
        }
        if only_hostile && chain.root() == w.chain.root() {
            assert_eq!(head, before, "a member who is not an admin moved the reader");
            assert!(matches!(chain.head(), Head::Member(_)));
        }
    }
});
