//! Sealing records at rest, and the passphrase key.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand_core::{CryptoRng, RngCore};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::profile::ProfileError;

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
    /// The floor, [`KdfParams::FLOOR`]; [`KdfParams::calibrate`] gives
    /// what a new profile should use on this device.
    fn default() -> Self {
        KdfParams::FLOOR
    }
}

/// How long deriving the passphrase key should take on the device that
/// creates the profile: each guess costs an attacker with the file about
/// as much (on similar hardware).
pub const KDF_TARGET: Duration = Duration::from_millis(750);

impl KdfParams {
    /// The least a profile may use: 64 MiB and 3 passes (RFC 9106's second
    /// recommendation), one lane. A profile is never created under it, and
    /// one found under it is upgraded on unlock (or refused, below
    /// [`KdfParams::LEGACY`]).
    pub const FLOOR: KdfParams = KdfParams {
        m_cost: 65_536,
        t_cost: 3,
        p_cost: 1,
    };

    /// What Strand used before the floor (OWASP's minimum, 19 MiB and 2
    /// passes). Profiles with it still open, and are moved to calibrated
    /// parameters in the same unlock; anything weaker is refused, since no
    /// Strand wrote it (someone lowered it in the file).
    pub const LEGACY: KdfParams = KdfParams {
        m_cost: 19_456,
        t_cost: 2,
        p_cost: 1,
    };

    /// The most a stored profile may ask for: 1 GiB, 64 passes, 16 lanes.
    /// No Strand writes more (it calibrates passes up to 64 at the
    /// floor's memory); a file that asks for more was changed, and
    /// unlocking it would take hours or more memory than there is.
    pub const CEILING: KdfParams = KdfParams {
        m_cost: 1_048_576,
        t_cost: 64,
        p_cost: 16,
    };

    /// Cheap parameters for tests only: they make a stolen profile easy to
    /// brute-force. Exists (and is accepted) only in builds with the
    /// `insecure-kdf` feature, which tests and benchmarks turn on.
    #[cfg(feature = "insecure-kdf")]
    pub fn insecure_for_tests() -> Self {
        KdfParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// Whether these parameters are at least `other` in memory and passes.
    pub fn at_least(&self, other: &KdfParams) -> bool {
        self.m_cost >= other.m_cost && self.t_cost >= other.t_cost && self.p_cost >= 1
    }

    /// Whether a profile may be created with these parameters.
    pub fn allowed(&self) -> bool {
        #[cfg(feature = "insecure-kdf")]
        if *self == KdfParams::insecure_for_tests() {
            return true;
        }
        self.at_least(&KdfParams::FLOOR)
    }

    /// Whether a stored profile with these parameters may be opened (it
    /// is upgraded if they are under the floor): refused under
    /// [`KdfParams::LEGACY`] or over [`KdfParams::CEILING`], before any
    /// work.
    pub(crate) fn check_openable(&self) -> Result<(), ProfileError> {
        let c = KdfParams::CEILING;
        if self.m_cost > c.m_cost || self.t_cost > c.t_cost || self.p_cost > c.p_cost {
            return Err(ProfileError::Corrupt(format!(
                "its passphrase key asks for {} MiB and {} passes in {} lanes, more than Strand ever writes (at most {} MiB, {} passes, {} lanes); the profile is left as it is",
                self.m_cost / 1024,
                self.t_cost,
                self.p_cost,
                c.m_cost / 1024,
                c.t_cost,
                c.p_cost
            )));
        }
        if self.allowed() || self.at_least(&KdfParams::LEGACY) {
            Ok(())
        } else {
            Err(ProfileError::WeakKdf)
        }
    }

    /// The parameters a new profile should use on this device: the floor's
    /// memory, and as many passes as make one derivation take about
    /// [`KDF_TARGET`] (never fewer than the floor's). Takes about that long
    /// itself.
    pub fn calibrate() -> KdfParams {
        let mut p = KdfParams::FLOOR;
        let start = Instant::now();
        let _ = passphrase_key("calibration", &[0; 16], p);
        let took = start.elapsed().max(Duration::from_millis(1));
        let per_pass = took.as_secs_f64() / f64::from(p.t_cost);
        let passes = (KDF_TARGET.as_secs_f64() / per_pass).round();
        p.t_cost = (passes as u32).clamp(KdfParams::FLOOR.t_cost, 64);
        p
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

/// A ChaCha20 RNG seeded from `rng`, to move into a write job (the
/// caller's may not be `Send`).
pub(crate) fn seeded_from(rng: &mut impl rand_core::RngCore) -> rand_chacha::ChaCha20Rng {
    use rand_core::SeedableRng;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut seed[..]);
    rand_chacha::ChaCha20Rng::from_seed(*seed)
}

/// A ChaCha20 RNG seeded from the operating system: the node's randomness,
/// handed to strand-sync as a parameter.
pub fn os_rng() -> rand_chacha::ChaCha20Rng {
    use rand_core::SeedableRng;
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the operating system provides randomness");
    rand_chacha::ChaCha20Rng::from_seed(seed)
}
