//! Where a device can be reached beyond its LAN, told to its contacts.
//!
//! A [`Reach`] record is a message of kind [`Kind::REACH`] in a 1:1 group
//! log: encrypted under the group key and signed like any message, so only
//! the contact reads it and nobody else learns a relay address from it. It
//! holds the relays the device keeps a reservation on, a relay it runs for
//! its contacts (if any), and the seed its relay identities derive from.
//! The newest record a contact wrote is the one that counts.
//!
//! A device's identity at relays (its libp2p PeerId there) changes every
//! [`RELAY_EPOCH`], so a relay cannot follow it for longer; contacts
//! compute the current one from the seed ([`Reach::relay_key`]) and dial it
//! through the announced relays, however long ago they last synced. The
//! price: a contact who knows the seed could hold a reservation in the
//! device's name (it still cannot read anything or pass its handshake).
//! See `PROTOCOL.md` §12.
//!
//! [`Kind::REACH`]: crate::Kind::REACH

use crate::codec::Reader;
use crate::crypto::kdf;
use crate::limits::{Time, MAX_REACH_ADDRESSES, MAX_REACH_ADDRESS_LEN, RELAY_EPOCH};
use crate::DecodeError;

const VERSION: u8 = 1;

/// Where a device can be reached beyond its LAN.
#[derive(Clone, PartialEq, Eq)]
pub struct Reach {
    /// The secret the device's relay identities derive from.
    pub seed: [u8; 32],
    /// Relays it holds a reservation on (binary multiaddrs, each ending in
    /// the relay's `/p2p/` id): dial it through these.
    pub relays: Vec<Vec<u8>>,
    /// Relays it runs for its contacts (binary multiaddrs): reserve on
    /// these.
    pub offers: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reach")
            .field("relays", &self.relays.len())
            .field("offers", &self.offers.len())
            .finish_non_exhaustive()
    }
}

/// The relay epoch `now` falls in.
pub fn relay_epoch(now: Time) -> u64 {
    now / RELAY_EPOCH
}

impl Reach {
    /// The encoded record (a message body).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&self.seed);
        for list in [&self.relays, &self.offers] {
            out.push(list.len() as u8);
            for a in list.iter() {
                out.push(a.len() as u8);
                out.extend_from_slice(a);
            }
        }
        out
    }

    /// Reads a record. Lists past [`MAX_REACH_ADDRESSES`] entries, empty or
    /// over-long addresses and trailing bytes are refused.
    pub fn decode(bytes: &[u8]) -> Result<Reach, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let seed = r.array()?;
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let n = r.u8()? as usize;
            if n > MAX_REACH_ADDRESSES {
                return Err(DecodeError::TooLong {
                    max: MAX_REACH_ADDRESSES,
                });
            }
            for _ in 0..n {
                let len = r.u8()? as usize;
                if len == 0 {
                    return Err(DecodeError::Invalid("an empty address"));
                }
                list.push(r.bytes(len)?.to_vec());
            }
        }
        r.finish()?;
        let [relays, offers] = lists;
        Ok(Reach {
            seed,
            relays,
            offers,
        })
    }

    /// Checks the lists against the limits before encoding.
    pub fn check(&self) -> Result<(), DecodeError> {
        for list in [&self.relays, &self.offers] {
            if list.len() > MAX_REACH_ADDRESSES {
                return Err(DecodeError::TooLong {
                    max: MAX_REACH_ADDRESSES,
                });
            }
            if list
                .iter()
                .any(|a| a.is_empty() || a.len() > MAX_REACH_ADDRESS_LEN)
            {
                return Err(DecodeError::Invalid("an empty or over-long address"));
            }
        }
        Ok(())
    }

    /// The 32-byte secret of the device's relay identity in `epoch` (an
    /// Ed25519 secret key: the libp2p PeerId follows from it).
    pub fn relay_key(&self, epoch: u64) -> [u8; 32] {
        relay_key(&self.seed, epoch)
    }
}

/// [`Reach::relay_key`] from the seed alone.
pub fn relay_key(seed: &[u8; 32], epoch: u64) -> [u8; 32] {
    kdf(seed, "strand/v2/relay-id", &[&epoch.to_be_bytes()])
}
