//! Key derivation, hashing, and the bridge that gives snow the caller's RNG.

use blake2::digest::{FixedOutput, KeyInit, Mac, Update};
use blake2::{Blake2s256, Blake2sMac256, Digest};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// `BLAKE2s-256` keyed with `key` over `label || 0x00 || parts...`: every
/// derived key and tag in Strand is one of these, with a distinct label
/// (the node uses it too, for keys at rest).
pub fn kdf(key: &[u8; 32], label: &str, parts: &[&[u8]]) -> [u8; 32] {
    Kdf::new(key, label).derive(parts)
}

/// [`kdf`] with its key and label taken in once: [`Kdf::derive`] gives
/// `kdf(key, label, parts)` for any `parts`, skipping the key's block (one
/// of the two BLAKE2s compressions a short input costs). For keys used
/// over and over (the beacon's, per contact).
#[derive(Clone)]
pub(crate) struct Kdf(Blake2sMac256);

impl Kdf {
    pub(crate) fn new(key: &[u8; 32], label: &str) -> Kdf {
        let mut mac =
            <Blake2sMac256 as KeyInit>::new_from_slice(key).expect("BLAKE2s accepts 32-byte keys");
        Mac::update(&mut mac, label.as_bytes());
        Mac::update(&mut mac, &[0]);
        Kdf(mac)
    }

    pub(crate) fn derive(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            Mac::update(&mut mac, part);
        }
        mac.finalize_fixed().into()
    }
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
    /// This device's static X25519 key pair, so a handshake does not
    /// derive the public key from the secret again (a base-point
    /// multiplication each time).
    local: Option<(Zeroizing<[u8; 32]>, [u8; 32])>,
    /// The contact's static public key and X25519 of the two static keys
    /// (the pair secret of PROTOCOL.md §3, which is Noise KK's `ss`), so a
    /// handshake does not compute it again: one Montgomery ladder of the
    /// four each side runs.
    pair: Option<([u8; 32], Zeroizing<[u8; 32]>)>,
}

impl SeededResolver {
    pub(crate) fn new(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        SeededResolver {
            seed,
            local: None,
            pair: None,
        }
    }

    /// Knows `secret`'s public key `public` (what [`Identity`] keeps).
    ///
    /// [`Identity`]: crate::Identity
    pub(crate) fn with_local(mut self, secret: &[u8; 32], public: &[u8; 32]) -> Self {
        self.local = Some((Zeroizing::new(*secret), *public));
        self
    }

    /// Knows X25519 of the local static secret (given to
    /// [`SeededResolver::with_local`]) and `remote`: `shared`, the pair's
    /// secret. Only a DH of that secret with `remote` is answered from it.
    pub(crate) fn with_pair(mut self, remote: &[u8; 32], shared: &[u8; 32]) -> Self {
        self.pair = Some((*remote, Zeroizing::new(*shared)));
        self
    }
}

/// X25519 for snow with x25519-dalek: what snow's own does (a clamped
/// Montgomery ladder), except that a static key the resolver knows is not
/// derived again, nor the static-static secret of the pair it knows, and
/// the secret is wiped when it goes.
struct X25519 {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    local: Option<(Zeroizing<[u8; 32]>, [u8; 32])>,
    pair: Option<([u8; 32], Zeroizing<[u8; 32]>)>,
}

impl snow::types::Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }
    fn pub_len(&self) -> usize {
        32
    }
    fn priv_len(&self) -> usize {
        32
    }
    fn set(&mut self, privkey: &[u8]) {
        let mut secret = Zeroizing::new([0u8; 32]);
        let n = privkey.len().min(32);
        secret[..n].copy_from_slice(&privkey[..n]);
        self.public = match &self.local {
            Some((known, public)) if bool::from(known.ct_eq(&*secret)) => *public,
            _ => {
                x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
            }
        };
        self.secret = secret;
    }
    fn generate(&mut self, rng: &mut dyn snow::types::Random) -> Result<(), snow::Error> {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(&mut secret[..])?;
        self.set(&secret[..]);
        Ok(())
    }
    fn pubkey(&self) -> &[u8] {
        &self.public
    }
    fn privkey(&self) -> &[u8] {
        &self.secret[..]
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let (Some(theirs), Some(out)) = (pubkey.get(..32), out.get_mut(..32)) else {
            return Err(snow::Error::Dh);
        };
        let theirs: [u8; 32] = theirs.try_into().expect("32 bytes");
        if let (Some((known, _)), Some((remote, shared))) = (&self.local, &self.pair) {
            // The local static secret with the contact's static key: the
            // pair's secret, already computed (an ephemeral secret with
            // the same key is a different DH and takes the ladder).
            if bool::from(known.ct_eq(&*self.secret)) && theirs == *remote {
                out.copy_from_slice(&shared[..]);
                return Ok(());
            }
        }
        out.copy_from_slice(&x25519_dalek::x25519(*self.secret, theirs));
        Ok(())
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
        match choice {
            snow::params::DHChoice::Curve25519 => Some(Box::new(X25519 {
                secret: Zeroizing::new([0u8; 32]),
                public: [0u8; 32],
                local: self.local.clone(),
                pair: self.pair.clone(),
            })),
            _ => snow::resolvers::DefaultResolver.resolve_dh(choice),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The X25519 handed to snow agrees with snow's own: the same public
    /// key for a secret (known to the resolver or not), the same shared
    /// secret, and a short public key is an error, not a panic.
    #[test]
    fn x25519_for_snow_agrees_with_snows_own() {
        use snow::resolvers::CryptoResolver;
        let choice = snow::params::DHChoice::Curve25519;
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        rng.fill_bytes(&mut a);
        rng.fill_bytes(&mut b);
        let b_public =
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(b)).to_bytes();
        let mut theirs = snow::resolvers::DefaultResolver
            .resolve_dh(&choice)
            .unwrap();
        theirs.set(&a);
        let a_public: [u8; 32] = theirs.pubkey().try_into().unwrap();
        let shared = x25519_dalek::x25519(a, b_public);
        for resolver in [
            SeededResolver::new(&mut rng),
            SeededResolver::new(&mut rng).with_local(&a, &a_public),
            SeededResolver::new(&mut rng).with_local(&b, &b_public),
            SeededResolver::new(&mut rng)
                .with_local(&a, &a_public)
                .with_pair(&b_public, &shared),
        ] {
            let mut ours = resolver.resolve_dh(&choice).unwrap();
            ours.set(&a);
            assert_eq!(ours.pubkey(), theirs.pubkey());
            let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
            ours.dh(&b_public, &mut x).unwrap();
            theirs.dh(&b_public, &mut y).unwrap();
            assert_eq!(x, y);
            assert!(ours.dh(&b_public[..31], &mut x).is_err());
        }
    }

    /// The pair's secret answers only the static-static DH: an ephemeral
    /// secret with the contact's key (Noise's `es`), or the static secret
    /// with another key (`se`), still takes the ladder. A stale pair
    /// secret would show as a wrong answer here.
    #[test]
    fn the_pair_secret_answers_only_the_static_static_dh() {
        use snow::resolvers::CryptoResolver;
        let choice = snow::params::DHChoice::Curve25519;
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let [a, b, e] = [0; 3].map(|_| {
            let mut k = [0u8; 32];
            rng.fill_bytes(&mut k);
            k
        });
        let public = |k: [u8; 32]| {
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(k)).to_bytes()
        };
        let (a_public, b_public, e_public) = (public(a), public(b), public(e));
        // A deliberately wrong "pair secret": whatever it answers is seen.
        let marker = [0x5a; 32];
        let resolver = SeededResolver::new(&mut rng)
            .with_local(&a, &a_public)
            .with_pair(&b_public, &marker);
        let mut dh = resolver.resolve_dh(&choice).unwrap();
        let mut out = [0u8; 32];
        dh.set(&a);
        dh.dh(&b_public, &mut out).unwrap();
        assert_eq!(out, marker, "ss comes from the pair");
        dh.dh(&e_public, &mut out).unwrap();
        assert_eq!(
            out,
            x25519_dalek::x25519(a, e_public),
            "se takes the ladder"
        );
        dh.set(&e);
        dh.dh(&b_public, &mut out).unwrap();
        assert_eq!(
            out,
            x25519_dalek::x25519(e, b_public),
            "es takes the ladder"
        );
    }

    /// A key and label taken in once derive what `kdf` does, for inputs
    /// that end in the first block and in later ones.
    #[test]
    fn a_kdf_taken_in_once_derives_what_kdf_does() {
        let key = [7u8; 32];
        let k = Kdf::new(&key, "strand/v2/beacon");
        for n in [0usize, 1, 30, 47, 48, 100, 1000] {
            let part = vec![0xa5u8; n];
            assert_eq!(
                k.derive(&[&part, b"x"]),
                kdf(&key, "strand/v2/beacon", &[&part, b"x"]),
                "{n}"
            );
        }
        assert_ne!(
            Kdf::new(&key, "a").derive(&[]),
            Kdf::new(&key, "b").derive(&[])
        );
    }
}
