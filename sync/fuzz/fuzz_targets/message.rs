//! Message decoding and full validation against a real group.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{Group, Identity, Message};

fn group() -> &'static Group {
    static GROUP: OnceLock<Group> = OnceLock::new();
    GROUP.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let alice = Identity::generate("alice", &mut rng).unwrap();
        let bob = Identity::generate("bob", &mut rng).unwrap();
        alice.contact(&bob.public()).unwrap().direct_group().clone()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data.to_vec()) {
        let _ = m.validate(group(), 1_700_000_000_000);
        let _ = (m.id(), m.key(), m.author(), m.kind());
    }
});
