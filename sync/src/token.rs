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
//!
//! A third, the **BLE advertisement hint** ([`Advert`]), is a beacon shrunk
//! to what a legacy advertisement carries (10 bytes): a 2-byte nonce and a
//! 64-bit filter naming four contacts (or random keys), made afresh every
//! epoch. Contacts use it to decide which advertising devices to connect
//! to; a scanner learns that a Strand device is near, and nothing that
//! follows it into the next epoch.
//!
//! Filter entries have a direction ([`FilterKeys`]): the key of an entry
//! comes from the pair's secret *and the signing key of the side that
//! builds the filter*. A device builds with its own key and recognises
//! with its contact's, so it never recognises its own beacon or hint: a
//! stranger who replays one to a device cannot ask "is this its owner?"
//! by counting the hellos (or connections) that come back.

use std::collections::BTreeSet;

use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::codec::Reader;
use crate::crypto::{kdf, Kdf};
use crate::identity::{AuthorId, Contact};
use crate::limits::{
    Time, ADVERT_ENTRIES, ADVERT_FILTER_LEN, ADVERT_HASHES, ADVERT_NONCE_LEN, ADVERT_SET_BITS,
    BEACON_ENTRIES, BEACON_FILTER_LEN, BEACON_HASHES, BEACON_NONCE_LEN, BEACON_SET_BITS,
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

/// The beacon filter's label (keyed with a [`FilterKeys`] key).
pub(crate) const BEACON_LABEL: &str = "strand/v2/beacon";
/// The BLE hint filter's label (keyed with a [`FilterKeys`] key).
pub(crate) const ADVERT_LABEL: &str = "strand/v2/ble-advert";
/// The label of a filter key: from the pair's root key and the signing
/// key of the side that builds the filter (PROTOCOL.md §3, §9).
const FILTER_KEY_LABEL: &str = "strand/v4/pair/beacon";

/// The keys of the filter entries one side of a pair (the *builder*)
/// makes for the other: in the beacons and hints the builder sends, and
/// in the checks of the other side, who recognises them. A [`Contact`]
/// holds both directions: `announce` (built by this device, its own
/// signing key) and `recognise` (built by the contact, the contact's
/// key). The two differ, so a device's beacon never names it to itself.
///
/// Each key is taken into BLAKE2s once, with its label (one keyed hash per
/// filter entry instead of two); the key itself is not kept.
#[derive(Clone)]
pub(crate) struct FilterKeys {
    pub(crate) beacon: Kdf,
    pub(crate) advert: Kdf,
}

impl FilterKeys {
    /// The keys of the entries `builder` (the signing key of one side of
    /// the pair) makes, from the pair's root key:
    /// `kdf(root, "strand/v4/pair/beacon", builder)`.
    pub(crate) fn new(root: &[u8; 32], builder: &AuthorId) -> FilterKeys {
        let key = Zeroizing::new(kdf(root, FILTER_KEY_LABEL, &[&builder[..]]));
        FilterKeys {
            beacon: Kdf::new(&key, BEACON_LABEL),
            advert: Kdf::new(&key, ADVERT_LABEL),
        }
    }
}

/// The shape of a keyed Bloom filter: the beacon's and the hint's.
struct Shape {
    label: &'static str,
    /// This shape's key in one direction's keys, label taken in.
    key: fn(&FilterKeys) -> &Kdf,
    entries: usize,
    hashes: usize,
    set_bits: u32,
}

const BEACON_SHAPE: Shape = Shape {
    label: BEACON_LABEL,
    key: |k| &k.beacon,
    entries: BEACON_ENTRIES,
    hashes: BEACON_HASHES,
    set_bits: BEACON_SET_BITS,
};

const ADVERT_SHAPE: Shape = Shape {
    label: ADVERT_LABEL,
    key: |k| &k.advert,
    entries: ADVERT_ENTRIES,
    hashes: ADVERT_HASHES,
    set_bits: ADVERT_SET_BITS,
};

impl Shape {
    /// The bits `key` sets in a filter of `len` bytes for `epoch` and
    /// `nonce`.
    fn positions(
        &self,
        key: &Kdf,
        epoch: u64,
        nonce: &[u8],
        extra: &[u8],
        len: usize,
    ) -> impl Iterator<Item = usize> {
        let h = key.derive(&[&epoch.to_be_bytes(), nonce, extra]);
        let bits = len * 8;
        (0..self.hashes).map(move |i| u16::from_le_bytes([h[2 * i], h[2 * i + 1]]) as usize % bits)
    }

    /// Fills `filter` for `epoch(now)` and `nonce` with entries for
    /// `contacts` under their `announce` keys (this device builds; a
    /// random subset when there are more than `entries`),
    /// entries for random keys up to `entries`, and random bits up to
    /// exactly `set_bits`.
    ///
    /// The work does not depend on the number of contacts: exactly
    /// `entries` keyed hashes, the subset drawn in `entries` steps
    /// (Floyd's sampling), however long the list.
    fn fill(
        &self,
        filter: &mut [u8],
        nonce: &[u8],
        contacts: &[Contact],
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) {
        let e = epoch(now);
        let len = filter.len();
        let n = contacts.len();
        let mut chosen = BTreeSet::new();
        if n <= self.entries {
            chosen.extend(0..n);
        } else {
            for j in n - self.entries..n {
                let t = (rng.next_u64() % (j as u64 + 1)) as usize;
                if !chosen.insert(t) {
                    chosen.insert(j);
                }
            }
        }
        let mut set = |p: usize| filter[p / 8] |= 1 << (p % 8);
        for &c in &chosen {
            self.positions((self.key)(&contacts[c].announce), e, nonce, &[], len)
                .for_each(&mut set);
        }
        // Entries for a random key, computed like real ones (one keyed
        // hash each, from a key taken in once): that key is taken in
        // whether or not it is used, so the work is the same however
        // many contacts there are.
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut key[..]);
        let random = Kdf::new(&key, self.label);
        for i in chosen.len()..self.entries {
            self.positions(&random, e, nonce, &(i as u32).to_be_bytes(), len)
                .for_each(&mut set);
        }
        // Entries that collided leave fewer bits set: top up with random
        // bits so every filter has exactly `set_bits`.
        let bits = (len * 8) as u64;
        let mut count: u32 = filter.iter().map(|b| b.count_ones()).sum();
        while count < self.set_bits {
            let p = (rng.next_u64() % bits) as usize;
            if filter[p / 8] & (1 << (p % 8)) == 0 {
                filter[p / 8] |= 1 << (p % 8);
                count += 1;
            }
        }
    }

    /// Whether `filter` may be `contact`'s, naming this device, in an
    /// epoch accepted at `now`: checked under the contact's `recognise`
    /// keys (the contact builds), never the `announce` keys this device
    /// builds its own filters with.
    fn matches(&self, filter: &[u8], nonce: &[u8], contact: &Contact, now: Time) -> bool {
        accepted_epochs(now).iter().any(|&e| {
            self.positions((self.key)(&contact.recognise), e, nonce, &[], filter.len())
                .all(|p| filter[p / 8] & (1 << (p % 8)) != 0)
        })
    }

    /// Whether `filter` has the honest number of bits set.
    fn honest(&self, filter: &[u8]) -> bool {
        filter.iter().map(|b| b.count_ones()).sum::<u32>() == self.set_bits
    }
}

impl Beacon {
    /// A fresh beacon for `epoch(now)` announcing this device to
    /// `contacts`. With more than [`BEACON_ENTRIES`] contacts a random
    /// subset is announced; make a new beacon for every link and every
    /// contact is included often. Its work does not depend on the number
    /// of contacts.
    pub fn new(contacts: &[Contact], now: Time, rng: &mut (impl RngCore + CryptoRng)) -> Beacon {
        let mut nonce = [0u8; BEACON_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut filter = [0u8; BEACON_FILTER_LEN];
        BEACON_SHAPE.fill(&mut filter, &nonce, contacts, now, rng);
        Beacon { nonce, filter }
    }

    /// Whether this beacon may come from `contact` (false positives about
    /// 0.07%: the handshake settles it). Accepts the previous, current and
    /// next epoch. A beacon this device built matches none of its own
    /// contacts (but by such a false positive): entries have a direction.
    pub fn matches(&self, contact: &Contact, now: Time) -> bool {
        BEACON_SHAPE.matches(&self.filter, &self.nonce, contact, now)
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
        if !BEACON_SHAPE.honest(&filter) {
            return Err(DecodeError::Invalid(
                "beacon filter without the honest number of bits",
            ));
        }
        Ok(Beacon { nonce, filter })
    }
}

/// Encoded size of an [`Advert`].
pub const ADVERT_LEN: usize = ADVERT_NONCE_LEN + ADVERT_FILTER_LEN;

/// What a device puts in its BLE advertisement, beside Strand's service
/// UUID, so contacts nearby know to connect: a beacon shrunk to 10 bytes.
/// Make a new one every epoch, and when the radio's random address
/// changes where the system tells (BlueZ does not tell the node, so its
/// hint and address change apart: PROTOCOL.md §13.3); it matches a
/// contact in the previous, current and next epoch.
#[derive(Clone, PartialEq, Eq)]
pub struct Advert {
    nonce: [u8; ADVERT_NONCE_LEN],
    filter: [u8; ADVERT_FILTER_LEN],
}

impl std::fmt::Debug for Advert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advert").finish_non_exhaustive()
    }
}

impl Advert {
    /// A fresh hint for `epoch(now)` naming (up to [`ADVERT_ENTRIES`] of)
    /// `contacts`.
    pub fn new(contacts: &[Contact], now: Time, rng: &mut (impl RngCore + CryptoRng)) -> Advert {
        let mut nonce = [0u8; ADVERT_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut filter = [0u8; ADVERT_FILTER_LEN];
        ADVERT_SHAPE.fill(&mut filter, &nonce, contacts, now, rng);
        Advert { nonce, filter }
    }

    /// Whether this hint may come from `contact` (false positives about
    /// 0.8% over the three epochs tried; the link's beacon settles it).
    /// A hint this device built matches none of its own contacts (but by
    /// such a false positive): entries have a direction.
    pub fn matches(&self, contact: &Contact, now: Time) -> bool {
        ADVERT_SHAPE.matches(&self.filter, &self.nonce, contact, now)
    }

    /// Its bytes.
    pub fn to_bytes(&self) -> [u8; ADVERT_LEN] {
        let mut out = [0u8; ADVERT_LEN];
        out[..ADVERT_NONCE_LEN].copy_from_slice(&self.nonce);
        out[ADVERT_NONCE_LEN..].copy_from_slice(&self.filter);
        out
    }

    /// Reads a hint. One without exactly [`ADVERT_SET_BITS`] bits set is
    /// refused (an all-ones filter would match everyone).
    pub fn from_bytes(bytes: &[u8]) -> Result<Advert, DecodeError> {
        let mut r = Reader::new(bytes);
        let nonce = r.array()?;
        let filter: [u8; ADVERT_FILTER_LEN] = r.array()?;
        r.finish()?;
        if !ADVERT_SHAPE.honest(&filter) {
            return Err(DecodeError::Invalid(
                "advertisement hint without the honest number of bits",
            ));
        }
        Ok(Advert { nonce, filter })
    }
}
