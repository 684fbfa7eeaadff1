//! The first bytes a stranger can send on a link: to the accepting side
//! (after its beacon: hellos), or to a dialler (a beacon, then answers).
//! The first byte picks the side, and for a dialler whether the input
//! follows the friend's real beacon: random bytes are almost never an
//! honest beacon, so without it the answers would go untried.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{Config, Endpoint, Identity, MemoryStore};

fuzz_target!(|data: &[u8]| {
    let Some((&side, rest)) = data.split_first() else {
        return;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let me = Identity::generate("me", &mut rng).unwrap();
    let friend = Identity::generate("friend", &mut rng).unwrap();
    let end = Endpoint::new(&me, vec![me.contact(&friend.public()).unwrap()]);
    let store = MemoryStore::new();
    let now = 1_700_000_000_000;
    let mut s = if side % 2 == 0 {
        end.accept(Config::default(), now, &mut rng)
    } else {
        end.dial(Config::default(), now, &mut rng)
    };
    while s.poll_transmit(now, &store).is_some() {}
    if side % 4 == 3 {
        // The friend's beacon, as its accepting side sends it first.
        let theirs = Endpoint::new(&friend, vec![friend.contact(&me.public()).unwrap()]);
        let mut them = theirs.accept(Config::default(), now, &mut rng);
        while let Some(beacon) = them.poll_transmit(now, &store) {
            let _ = s.handle_input(now, &beacon, &store);
        }
        let mut hellos = 0;
        while s.poll_transmit(now, &store).is_some() {
            hellos += 1;
        }
        assert!(hellos > 0, "the friend's beacon answered with no hello");
    }
    // Fed in two pieces, so records split across reads are covered too.
    let (x, y) = rest.split_at(rest.len() / 2);
    let _ = s.handle_input(now, x, &store);
    while s.poll_transmit(now, &store).is_some() {}
    let _ = s.handle_input(now, y, &store);
    while s.poll_transmit(now, &store).is_some() {}
    // Without the friend's keys no input authenticates: refused, never
    // established, and never a panic.
    assert!(!s.is_established());
});
