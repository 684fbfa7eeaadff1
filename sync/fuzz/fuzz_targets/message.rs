//! Message decoding and full validation against a real group.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{Identity, Message};

fuzz_target!(|data: &[u8]| {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let alice = Identity::generate("alice", &mut rng).unwrap();
    let bob = Identity::generate("bob", &mut rng).unwrap();
    let group = alice.contact(&bob.public()).unwrap().direct_group().clone();
    if let Ok(m) = Message::decode(data.to_vec()) {
        let _ = m.validate(&group, 1_700_000_000_000);
        let _ = (m.id(), m.key(), m.author(), m.kind());
    }
});
