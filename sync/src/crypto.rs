//! Key derivation, hashing, and the bridge that gives snow the caller's RNG.

use blake2::digest::{FixedOutput, KeyInit, Mac, Update};
use blake2::{Blake2s256, Blake2sMac256, Digest};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};

/// `BLAKE2s-256` keyed with `key` over `label || 0x00 || parts...`: every
/// derived key and tag in Strand is one of these, with a distinct label
/// (the node uses it too, for keys at rest).
pub fn kdf(key: &[u8; 32], label: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Blake2sMac256 as KeyInit>::new_from_slice(key).expect("BLAKE2s accepts 32-byte keys");
    Mac::update(&mut mac, label.as_bytes());
    Mac::update(&mut mac, &[0]);
    for part in parts {
        Mac::update(&mut mac, part);
    }
    mac.finalize_fixed().into()
}

/// Plain `BLAKE2s-256` over the concatenation of `parts`.
pub(crate) fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    for part in parts {
        Update::update(&mut h, part);
    }
    h.finalize_fixed().into()
}

/// `BLAKE2s-256` of `bytes` without their last `tail` bytes, and of all
/// of them, in one pass: a message's signed digest and its id.
pub(crate) fn hash_prefix_and_whole(bytes: &[u8], tail: usize) -> ([u8; 32], [u8; 32]) {
    let (head, rest) = bytes.split_at(bytes.len() - tail);
    let mut h = Blake2s256::new();
    Update::update(&mut h, head);
    let prefix = h.clone().finalize_fixed().into();
    Update::update(&mut h, rest);
    (prefix, h.finalize_fixed().into())
}

/// The Noise protocol every Strand link speaks.
pub(crate) const NOISE_PARAMS: &str = "Noise_KK_25519_ChaChaPoly_BLAKE2s";

/// Hands snow a ChaCha20 RNG seeded from the caller's `Rng`, so the Noise
/// ephemeral keys are as deterministic as everything else in strand-sync.
pub(crate) struct SeededResolver {
    seed: [u8; 32],
}

impl SeededResolver {
    pub(crate) fn new(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        SeededResolver { seed }
    }
}

impl Drop for SeededResolver {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

struct SnowRng(ChaCha20Rng);

impl Drop for SnowRng {
    /// The generator's state is the seed in another form: overwrite it (a
    /// volatile write, so the compiler keeps it) before the memory is
    /// freed. rand_chacha has no zeroize support of its own.
    fn drop(&mut self) {
        // SAFETY: `self.0` is a valid, aligned `ChaCha20Rng`; the old value
        // needs no drop (it owns no heap memory).
        unsafe { std::ptr::write_volatile(&mut self.0, ChaCha20Rng::from_seed([0; 32])) };
    }
}

impl snow::types::Random for SnowRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl snow::resolvers::CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        Some(Box::new(SnowRng(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        snow::resolvers::DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(
        &self,
        choice: &snow::params::HashChoice,
    ) -> Option<Box<dyn snow::types::Hash>> {
        snow::resolvers::DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(
        &self,
        choice: &snow::params::CipherChoice,
    ) -> Option<Box<dyn snow::types::Cipher>> {
        snow::resolvers::DefaultResolver.resolve_cipher(choice)
    }
}
