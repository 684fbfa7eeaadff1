//! Sealing records at rest, and the passphrase key.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// Argon2id cost parameters, stored with the profile so they can be raised
/// later without breaking old profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's minimum recommendation for Argon2id (19 MiB, 2 passes, 1
    /// lane): about 50 ms on a laptop, so a guessed passphrase costs an
    /// attacker with the file about that much.
    fn default() -> Self {
        KdfParams {
            m_cost: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for tests only: they make a stolen profile easy to
    /// brute-force.
    pub fn insecure_for_tests() -> Self {
        KdfParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    pub(crate) fn encode(&self, salt: &[u8; 16]) -> Vec<u8> {
        let mut out = salt.to_vec();
        for v in [self.m_cost, self.t_cost, self.p_cost] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<([u8; 16], KdfParams)> {
        if bytes.len() != 28 {
            return None;
        }
        let salt = bytes[..16].try_into().ok()?;
        let n = |i: usize| {
            u32::from_le_bytes(bytes[16 + 4 * i..20 + 4 * i].try_into().expect("4 bytes"))
        };
        Some((
            salt,
            KdfParams {
                m_cost: n(0),
                t_cost: n(1),
                p_cost: n(2),
            },
        ))
    }
}

/// The key a passphrase unlocks.
pub(crate) fn passphrase_key(
    passphrase: &str,
    salt: &[u8; 16],
    params: KdfParams,
) -> Option<Zeroizing<[u8; 32]>> {
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, Some(32)).ok()?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut key[..])
        .ok()?;
    Some(key)
}

/// `nonce ‖ XChaCha20-Poly1305(key, nonce, plain, aad = role)`.
pub(crate) fn seal(
    key: &[u8; 32],
    role: &str,
    plain: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: role.as_bytes(),
            },
        )
        .expect("encrypting a bounded record cannot fail");
    [&nonce[..], &ct].concat()
}

/// Opens what [`seal`] made; `None` if the key or role is wrong or the bytes
/// were altered.
pub(crate) fn open(key: &[u8; 32], role: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < 24 + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(24);
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: role.as_bytes(),
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// A ChaCha20 RNG seeded from the operating system: the node's randomness,
/// handed to strand-sync as a parameter.
pub fn os_rng() -> rand_chacha::ChaCha20Rng {
    use rand_core::SeedableRng;
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the operating system provides randomness");
    rand_chacha::ChaCha20Rng::from_seed(seed)
}
