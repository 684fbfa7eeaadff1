//! The first bytes a stranger can send: a session hello.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{Config, Identity, Listener};

fuzz_target!(|data: &[u8]| {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let me = Identity::generate("me", &mut rng).unwrap();
    let friend = Identity::generate("friend", &mut rng).unwrap();
    let mut listener = Listener::new(&me, vec![me.contact(&friend.public()).unwrap()]);
    // A random hello matching a contact's token is a 2^-128 event: this
    // checks that every other input is refused without a panic.
    assert!(listener.accept(Config::default(), data, 1_700_000_000_000, &mut rng).is_err());
});
