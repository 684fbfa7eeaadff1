//! Helpers shared by the test modules.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::harness::Pair;
use strand_sync::{Kind, Message, WriteStore};

/// A deterministic RNG for test data.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(0x5eed_0000 ^ seed)
}

/// Writes `n` messages into both peers' stores (alternating authors, one a
/// second apart, ending an hour before the pair's clock): a shared history.
pub fn shared_history(pair: &mut Pair, n: usize) {
    let group = pair.a.group().clone();
    let start = pair.now - 3_600_000 - n as u64 * 1000;
    let mut rng = rng(n as u64);
    for i in 0..n {
        let author = if i % 2 == 0 {
            &pair.a.identity
        } else {
            &pair.b.identity
        };
        let text = format!("shared message {i}");
        let time = start + i as u64 * 1000;
        let msg =
            Message::create(author, &group, time, Kind::TEXT, text.as_bytes(), &mut rng).unwrap();
        pair.a.store.insert(&group.id, &msg).unwrap();
        pair.b.store.insert(&group.id, &msg).unwrap();
    }
}

/// Both stores' keys for the 1:1 group.
pub fn keys(pair: &Pair) -> (Vec<strand_sync::Key>, Vec<strand_sync::Key>) {
    let g = pair.a.group().id;
    (pair.a.store.keys(&g), pair.b.store.keys(&g))
}
