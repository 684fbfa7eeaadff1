//! Discovery beacons heard over the air, the LAN, or first on a link.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{Beacon, Identity};

fuzz_target!(|data: &[u8]| {
    if let Ok(beacon) = Beacon::from_bytes(data) {
        assert_eq!(beacon.to_bytes().as_slice(), data);
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let me = Identity::generate("me", &mut rng).unwrap();
        let other = Identity::generate("other", &mut rng).unwrap();
        let contact = me.contact(&other.public()).unwrap();
        let _ = beacon.matches(&contact, 1_700_000_000_000);
    }
});
