//! Tokens that let contacts, and only contacts, recognise each other.
//!
//! Two mechanisms, both keyed by secrets only the two contacts hold and by
//! the time epoch ([`TOKEN_EPOCH`]):
//!
//! * the **discovery beacon** the accepting side of every link sends first
//!   (and a device may advertise over mDNS or BLE): a fresh nonce and a
//!   fixed-size Bloom filter holding exactly [`BEACON_ENTRIES`] entries with
//!   exactly [`BEACON_SET_BITS`] bits set, so neither the nonce, the filter
//!   nor its fill reveal who the device is or how many contacts it has;
//! * the **handshake token** that prefixes the dialler's hello tells the
//!   accepting side which contact is calling without naming anyone: a keyed
//!   hash of the epoch, the beacon's nonce and the hello's fresh ephemeral
//!   key. Binding the nonce makes a hello recorded on one link useless on
//!   every other link, with no replay cache to keep.

use std::collections::BTreeSet;

use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;

use crate::codec::Reader;
use crate::crypto::kdf;
use crate::identity::Contact;
use crate::limits::{
    Time, BEACON_ENTRIES, BEACON_FILTER_LEN, BEACON_HASHES, BEACON_NONCE_LEN, BEACON_SET_BITS,
    TOKEN_EPOCH, TOKEN_LEN,
};
use crate::DecodeError;

/// The epoch a time falls in.
pub fn epoch(now: Time) -> u64 {
    now / TOKEN_EPOCH
}

/// The epochs a receiver accepts at `now`: current, previous and next.
pub(crate) fn accepted_epochs(now: Time) -> [u64; 3] {
    let e = epoch(now);
    [e, e.saturating_sub(1), e + 1]
}

pub(crate) fn handshake_token(
    key: &[u8; 32],
    epoch: u64,
    nonce: &[u8; BEACON_NONCE_LEN],
    ephemeral: &[u8],
) -> [u8; TOKEN_LEN] {
    let full = kdf(
        key,
        "strand/v2/hs-token",
        &[&epoch.to_be_bytes(), nonce, ephemeral],
    );
    full[..TOKEN_LEN].try_into().expect("TOKEN_LEN <= 32")
}

/// Whether `token` is `contact`'s handshake token for this beacon nonce and
/// `ephemeral` in an epoch accepted at `now`. Constant time in the token's
/// value.
pub(crate) fn token_matches(
    contact: &Contact,
    token: &[u8],
    nonce: &[u8; BEACON_NONCE_LEN],
    ephemeral: &[u8],
    now: Time,
) -> bool {
    let mut ok = subtle::Choice::from(0);
    for e in accepted_epochs(now) {
        ok |= handshake_token(&contact.token_key, e, nonce, ephemeral).ct_eq(token);
    }
    ok.into()
}

/// Encoded size of a [`Beacon`].
pub const BEACON_LEN: usize = BEACON_NONCE_LEN + BEACON_FILTER_LEN;

/// What a device shows first on every link it accepts (and may advertise)
/// so its contacts can recognise it.
#[derive(Clone, PartialEq, Eq)]
pub struct Beacon {
    nonce: [u8; BEACON_NONCE_LEN],
    filter: [u8; BEACON_FILTER_LEN],
}

impl std::fmt::Debug for Beacon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beacon")
            .field("nonce", &crate::hex_prefix(&self.nonce))
            .finish_non_exhaustive()
    }
}

const BITS: usize = BEACON_FILTER_LEN * 8;

fn positions(key: &[u8; 32], epoch: u64, nonce: &[u8; BEACON_NONCE_LEN]) -> [usize; BEACON_HASHES] {
    let h = kdf(key, "strand/v2/beacon", &[&epoch.to_be_bytes(), nonce]);
    let mut out = [0usize; BEACON_HASHES];
    for (i, p) in out.iter_mut().enumerate() {
        *p = u16::from_le_bytes([h[2 * i], h[2 * i + 1]]) as usize % BITS;
    }
    out
}

impl Beacon {
    /// A fresh beacon for `epoch(now)` announcing this device to
    /// `contacts`. With more than [`BEACON_ENTRIES`] contacts a random
    /// subset is announced; make a new beacon for every link and every
    /// contact is included often.
    ///
    /// The work does not depend on the number of contacts: exactly
    /// [`BEACON_ENTRIES`] keyed hashes, the missing entries from random
    /// keys, and the subset drawn in `BEACON_ENTRIES` steps (Floyd's
    /// sampling), however long the list.
    pub fn new(contacts: &[Contact], now: Time, rng: &mut (impl RngCore + CryptoRng)) -> Beacon {
        let mut nonce = [0u8; BEACON_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut filter = [0u8; BEACON_FILTER_LEN];
        let e = epoch(now);
        let n = contacts.len();
        // Floyd's algorithm: a uniform subset of min(n, ENTRIES) indices.
        let mut chosen = BTreeSet::new();
        if n <= BEACON_ENTRIES {
            chosen.extend(0..n);
        } else {
            for j in n - BEACON_ENTRIES..n {
                let t = (rng.next_u64() % (j as u64 + 1)) as usize;
                if !chosen.insert(t) {
                    chosen.insert(j);
                }
            }
        }
        let mut set = |p: usize| filter[p / 8] |= 1 << (p % 8);
        for &c in &chosen {
            positions(&contacts[c].beacon_key, e, &nonce)
                .into_iter()
                .for_each(&mut set);
        }
        // Entries for random keys, computed exactly like real ones.
        for _ in chosen.len()..BEACON_ENTRIES {
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            rng.fill_bytes(&mut key[..]);
            positions(&key, e, &nonce).into_iter().for_each(&mut set);
        }
        // Entries that collided leave fewer bits set: top up with random
        // bits so every beacon has exactly BEACON_SET_BITS.
        let mut count: u32 = filter.iter().map(|b| b.count_ones()).sum();
        while count < BEACON_SET_BITS {
            let p = (rng.next_u64() % BITS as u64) as usize;
            if filter[p / 8] & (1 << (p % 8)) == 0 {
                filter[p / 8] |= 1 << (p % 8);
                count += 1;
            }
        }
        Beacon { nonce, filter }
    }

    /// Whether this beacon may come from `contact` (false positives about
    /// 0.07%: the handshake settles it). Accepts the previous, current and
    /// next epoch.
    pub fn matches(&self, contact: &Contact, now: Time) -> bool {
        accepted_epochs(now).iter().any(|&e| {
            positions(&contact.beacon_key, e, &self.nonce)
                .iter()
                .all(|p| self.filter[p / 8] & (1 << (p % 8)) != 0)
        })
    }

    /// The fresh nonce every hello on this link is bound to.
    pub(crate) fn nonce(&self) -> &[u8; BEACON_NONCE_LEN] {
        &self.nonce
    }

    /// The beacon's bytes.
    pub fn to_bytes(&self) -> [u8; BEACON_LEN] {
        let mut out = [0u8; BEACON_LEN];
        out[..BEACON_NONCE_LEN].copy_from_slice(&self.nonce);
        out[BEACON_NONCE_LEN..].copy_from_slice(&self.filter);
        out
    }

    /// Reads a beacon. A filter without exactly [`BEACON_SET_BITS`] bits
    /// set is no honest beacon and is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Beacon, DecodeError> {
        let mut r = Reader::new(bytes);
        let nonce = r.array()?;
        let filter: [u8; BEACON_FILTER_LEN] = r.array()?;
        r.finish()?;
        let count: u32 = filter.iter().map(|b| b.count_ones()).sum();
        if count != BEACON_SET_BITS {
            return Err(DecodeError::Invalid(
                "beacon filter without the honest number of bits",
            ));
        }
        Ok(Beacon { nonce, filter })
    }
}
