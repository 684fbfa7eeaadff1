//! Tokens that let contacts, and only contacts, recognise each other.
//!
//! Two mechanisms, both keyed by secrets only the two contacts hold and by
//! the time epoch ([`TOKEN_EPOCH`]):
//!
//! * the **handshake token** that prefixes a session's first message tells
//!   the responder which contact is calling without naming anyone: it is a
//!   keyed hash of the epoch and the handshake's fresh ephemeral key, so it
//!   is different for every session and links nothing;
//! * the **discovery beacon** a device may advertise (mDNS, BLE) lets a
//!   contact decide whether a device nearby is worth dialling: a fresh nonce
//!   and a fixed-size Bloom filter holding exactly [`BEACON_ENTRIES`]
//!   entries, some real, the rest random, so neither the nonce, the filter
//!   nor its fill reveal who the device is or how many contacts it has.

use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;

use crate::codec::Reader;
use crate::crypto::kdf;
use crate::identity::Contact;
use crate::limits::{Time, BEACON_ENTRIES, BEACON_FILTER_LEN, TOKEN_EPOCH, TOKEN_LEN};
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

pub(crate) fn handshake_token(key: &[u8; 32], epoch: u64, ephemeral: &[u8]) -> [u8; TOKEN_LEN] {
    let full = kdf(
        key,
        "strand/v1/hs-token",
        &[&epoch.to_be_bytes(), ephemeral],
    );
    full[..TOKEN_LEN].try_into().expect("TOKEN_LEN <= 32")
}

/// Whether `token` is `contact`'s handshake token for `ephemeral` in an
/// epoch accepted at `now`. Constant time in the token's value.
pub(crate) fn token_matches(contact: &Contact, token: &[u8], ephemeral: &[u8], now: Time) -> bool {
    let mut ok = subtle::Choice::from(0);
    for e in accepted_epochs(now) {
        ok |= handshake_token(&contact.token_key, e, ephemeral).ct_eq(token);
    }
    ok.into()
}

/// Encoded size of a [`Beacon`].
pub const BEACON_LEN: usize = 8 + BEACON_FILTER_LEN;

/// What a device advertises so its contacts can recognise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    nonce: [u8; 8],
    filter: [u8; BEACON_FILTER_LEN],
}

const BITS: usize = BEACON_FILTER_LEN * 8;
const HASHES: usize = 3;

fn positions(key: &[u8; 32], epoch: u64, nonce: &[u8; 8]) -> [usize; HASHES] {
    let h = kdf(key, "strand/v1/beacon", &[&epoch.to_be_bytes(), nonce]);
    let mut out = [0usize; HASHES];
    for (i, p) in out.iter_mut().enumerate() {
        *p = u16::from_le_bytes([h[2 * i], h[2 * i + 1]]) as usize % BITS;
    }
    out
}

impl Beacon {
    /// A fresh beacon for `epoch(now)` announcing this device to
    /// `contacts`. With more than [`BEACON_ENTRIES`] contacts a random
    /// subset is announced; make a new beacon each time you advertise and
    /// every contact is included often.
    pub fn new(contacts: &[Contact], now: Time, rng: &mut (impl RngCore + CryptoRng)) -> Beacon {
        let mut nonce = [0u8; 8];
        rng.fill_bytes(&mut nonce);
        let mut filter = [0u8; BEACON_FILTER_LEN];
        let e = epoch(now);
        // Choose which contacts go in (all of them, up to the limit).
        let mut chosen: Vec<usize> = (0..contacts.len()).collect();
        for i in 0..chosen.len().min(BEACON_ENTRIES) {
            let j = i + (rng.next_u64() as usize) % (chosen.len() - i);
            chosen.swap(i, j);
        }
        chosen.truncate(BEACON_ENTRIES);
        for &c in &chosen {
            for p in positions(&contacts[c].beacon_key, e, &nonce) {
                filter[p / 8] |= 1 << (p % 8);
            }
        }
        // Pad with random entries so the fill does not count contacts.
        for _ in chosen.len()..BEACON_ENTRIES {
            for _ in 0..HASHES {
                let p = (rng.next_u64() as usize) % BITS;
                filter[p / 8] |= 1 << (p % 8);
            }
        }
        Beacon { nonce, filter }
    }

    /// Whether this beacon may come from `contact` (false positives about
    /// 1.5%: the handshake settles it). Accepts the previous, current and
    /// next epoch.
    pub fn matches(&self, contact: &Contact, now: Time) -> bool {
        accepted_epochs(now).iter().any(|&e| {
            positions(&contact.beacon_key, e, &self.nonce)
                .iter()
                .all(|p| self.filter[p / 8] & (1 << (p % 8)) != 0)
        })
    }

    /// The beacon's bytes.
    pub fn to_bytes(&self) -> [u8; BEACON_LEN] {
        let mut out = [0u8; BEACON_LEN];
        out[..8].copy_from_slice(&self.nonce);
        out[8..].copy_from_slice(&self.filter);
        out
    }

    /// Reads a beacon.
    pub fn from_bytes(bytes: &[u8]) -> Result<Beacon, DecodeError> {
        let mut r = Reader::new(bytes);
        let nonce = r.array()?;
        let filter = r.array()?;
        r.finish()?;
        Ok(Beacon { nonce, filter })
    }
}
