//! Reaching contacts beyond the LAN: this profile's relay list and relay
//! seed, the [`Reach`] records that tell contacts about them, and reading
//! the records contacts wrote.
//!
//! A record is a message of kind [`Kind::REACH`] in each contact's 1:1
//! group: encrypted and synced like a text, never shown. A new one is
//! written only when what it says changes (the relays, or the relay this
//! node offers its contacts), and to a new contact when it is added.

use rand_core::{CryptoRng, RngCore};
use redb::ReadableDatabase;
use strand_sync::limits::{Time, MAX_REACH_ADDRESSES};
use strand_sync::{Contact, GroupId, Identity, Key, Kind, Message, PublicIdentity, Reach};
use strand_transport::Multiaddr;
use zeroize::Zeroizing;

use crate::profile::crypto::{open, seal};
use crate::profile::db_error;
use crate::profile::schema::{meta, MESSAGES, META, RECORDS};
use crate::profile::store::{insert_written, record_key};
use crate::profile::telling::{told_in, Tell};
use crate::profile::{ContactRecord, Profile, ProfileError};

/// Binary multiaddrs.
type Addresses = Vec<Vec<u8>>;

const ROLE_RELAYS: &str = "strand/v2/relays";
const ROLE_RELAY_SEED: &str = "strand/v2/relay-seed";
const ROLE_REACH: &str = "strand/v2/reach";
pub(crate) const ROLE_INVITE_REACH: &str = "strand/v2/invite-reach";

/// The META key of the reach section a contact's invite carried (by the
/// contact's keyed id, not their key).
pub(crate) fn invite_reach_key(contact_id: &[u8; 32]) -> String {
    format!("invite-reach/{}", crate::profile::hex(contact_id))
}

fn encode_relays(relays: &[String]) -> Vec<u8> {
    let mut out = vec![relays.len() as u8];
    for r in relays {
        out.extend_from_slice(&(r.len() as u16).to_le_bytes());
        out.extend_from_slice(r.as_bytes());
    }
    out
}

fn decode_relays(b: &[u8]) -> Result<Vec<String>, ProfileError> {
    let bad = || ProfileError::Corrupt("the relay list".into());
    let (&n, mut rest) = b.split_first().ok_or_else(bad)?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        if rest.len() < 2 {
            return Err(bad());
        }
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let text = rest.get(2..2 + len).ok_or_else(bad)?;
        out.push(String::from_utf8(text.to_vec()).map_err(|_| bad())?);
        rest = &rest[2 + len..];
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// What a change to the relay list did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayChange {
    /// The relay's address, as the list keeps it.
    pub address: String,
    /// The records written to contacts (hand them to live sessions).
    pub written: Vec<(GroupId, Key)>,
}

/// The [`Reach`] record `body` as a message to `contact`, in their 1:1
/// group: what [`Profile::publish_reach`] writes to every contact and
/// [`Profile::reach_new_contacts`] to those added since.
fn reach_message(
    identity: &Identity,
    contact: &Contact,
    body: &[u8],
    now: Time,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(GroupId, Message), ProfileError> {
    let group = contact.direct_group();
    let m = Message::create(identity, group, now, Kind::REACH, body, rng)
        .map_err(ProfileError::Message)?;
    Ok((group.id, m))
}

/// Why a relay address was refused.
fn check_relay(addr: &str) -> Result<Multiaddr, ProfileError> {
    let parsed: Multiaddr =
        addr.trim()
            .parse()
            .map_err(
                |e: strand_transport::multiaddr::Error| ProfileError::RelayAddress {
                    address: addr.trim().to_string(),
                    source: e.into(),
                },
            )?;
    if strand_transport::relay::is_circuit(&parsed) {
        return Err(ProfileError::Relay(
            "that address goes through a relay itself: give the relay's own address".into(),
        ));
    }
    let ends_in_id = matches!(
        parsed.iter().last(),
        Some(strand_transport::multiaddr::Protocol::P2p(_))
    );
    if !ends_in_id {
        return Err(ProfileError::Relay(
            "a relay address must end in the relay's id (…/p2p/12D3KooW…): `strand relay` prints one"
                .into(),
        ));
    }
    // The one rule the relay client dials by: a relay it cannot reach
    // would fail every reservation and circuit, and contacts would be
    // told it.
    if !strand_transport::relay::is_relay_addr(&parsed) {
        return Err(ProfileError::Relay(format!(
            "the relay client cannot dial a relay at {parsed}: {}",
            strand_transport::relay::RELAY_ADDRESS_FORMS
        )));
    }
    if parsed.to_vec().len() > strand_sync::limits::MAX_REACH_ADDRESS_LEN {
        return Err(ProfileError::Relay("the address is too long".into()));
    }
    Ok(parsed)
}

impl Profile {
    /// Seals `plain` under the root key for `role` and stores it as the
    /// `meta` entry `name`, in a transaction of its own (read back with
    /// [`Profile::meta_sealed`]).
    pub(crate) fn set_meta_sealed(
        &self,
        name: &'static str,
        role: &str,
        plain: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        let sealed = seal(self.root(), role, plain, rng);
        self.write_txn(move |txn| {
            txn.open_table(META)
                .map_err(db_error)?
                .insert(name, &sealed[..])
                .map_err(db_error)?;
            Ok(())
        })
    }

    pub(crate) fn meta_sealed(
        &self,
        name: &str,
        role: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ProfileError> {
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let m = txn.open_table(META).map_err(db_error)?;
        let Some(v) = m.get(name).map_err(db_error)? else {
            return Ok(None);
        };
        open(self.root(), role, v.value())
            .map(Some)
            .ok_or_else(|| ProfileError::Corrupt(format!("`{name}` does not decrypt")))
    }

    /// The relays this profile reserves on, as given.
    pub fn relays(&self) -> Result<Vec<String>, ProfileError> {
        match self.meta_sealed(meta::RELAYS, ROLE_RELAYS)? {
            Some(b) => decode_relays(&b),
            None => Ok(Vec::new()),
        }
    }

    fn set_relays(
        &self,
        relays: &[String],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        self.set_meta_sealed(meta::RELAYS, ROLE_RELAYS, &encode_relays(relays), rng)
    }

    /// Adds a relay (a multiaddr ending in the relay's `/p2p/` id, at an
    /// address the relay client dials:
    /// [`strand_transport::relay::is_relay_addr`]; any other is refused,
    /// saying what is taken, and nothing is stored). The profile's
    /// contacts learn it with the next sync. Adding one twice is an error,
    /// and so is going past [`MAX_REACH_ADDRESSES`].
    pub fn add_relay(
        &self,
        addr: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<RelayChange, ProfileError> {
        let parsed = check_relay(addr)?.to_string();
        let mut relays = self.relays()?;
        if relays.contains(&parsed) {
            return Err(ProfileError::Relay(format!(
                "{parsed} is already in the list"
            )));
        }
        if relays.len() >= MAX_REACH_ADDRESSES {
            return Err(ProfileError::Relay(format!(
                "at most {MAX_REACH_ADDRESSES} relays: remove one first"
            )));
        }
        relays.push(parsed.clone());
        self.set_relays(&relays, rng)?;
        let written = self.publish_reach(&self.current_offers()?, now, rng)?;
        Ok(RelayChange {
            address: parsed,
            written,
        })
    }

    /// Removes a relay; `None` if it was not in the list.
    pub fn remove_relay(
        &self,
        addr: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Option<RelayChange>, ProfileError> {
        let wanted = addr
            .trim()
            .parse::<Multiaddr>()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| addr.trim().to_owned());
        let mut relays = self.relays()?;
        let before = relays.len();
        relays.retain(|r| *r != wanted);
        if relays.len() == before {
            return Ok(None);
        }
        self.set_relays(&relays, rng)?;
        let written = self.publish_reach(&self.current_offers()?, now, rng)?;
        Ok(Some(RelayChange {
            address: wanted,
            written,
        }))
    }

    /// The seed this device's relay identities derive from (made on first
    /// use).
    pub fn relay_seed(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<[u8; 32], ProfileError> {
        if let Some(b) = self.meta_sealed(meta::RELAY_SEED, ROLE_RELAY_SEED)? {
            return b
                .as_slice()
                .try_into()
                .map_err(|_| ProfileError::Corrupt("the relay seed".into()));
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        self.set_meta_sealed(meta::RELAY_SEED, ROLE_RELAY_SEED, &seed, rng)?;
        Ok(seed)
    }

    /// The record last written to contacts, if any.
    pub fn published_reach(&self) -> Result<Option<Reach>, ProfileError> {
        match self.meta_sealed(meta::REACH, ROLE_REACH)? {
            Some(b) => Reach::decode(&b)
                .map(Some)
                .map_err(ProfileError::StoredReach),
            None => Ok(None),
        }
    }

    /// The relays the last record offered (this node's relay for contacts).
    fn current_offers(&self) -> Result<Addresses, ProfileError> {
        Ok(self
            .published_reach()?
            .map(|r| r.offers)
            .unwrap_or_default())
    }

    /// Writes a [`Reach`] record (this profile's relays the relay client
    /// can dial, and `offers`, the
    /// relays this node runs for its contacts, which it is reached through
    /// too; its seed) into every contact's 1:1 group, unless the last one
    /// said the same, or there is nothing to say yet. Returns the messages
    /// written.
    pub fn publish_reach(
        &self,
        offers: &[Vec<u8>],
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        // Relays stored before `add_relay` checked them may be ones the
        // relay client cannot dial (`is_relay_addr`): contacts would be
        // told an address that fails every reservation and circuit, so
        // they are left out here as the runtime leaves them out.
        let mut relays: Vec<Vec<u8>> = self
            .relays()?
            .iter()
            .filter_map(|r| r.parse::<Multiaddr>().ok())
            .filter(strand_transport::relay::is_relay_addr)
            .map(|a| a.to_vec())
            .collect();
        for o in offers {
            if !relays.contains(o) && relays.len() < MAX_REACH_ADDRESSES {
                relays.push(o.clone());
            }
        }
        let last = self.published_reach()?;
        if last.is_none() && relays.is_empty() && offers.is_empty() {
            return Ok(Vec::new());
        }
        let reach = Reach {
            seed: self.relay_seed(rng)?,
            relays,
            offers: offers.to_vec(),
        };
        reach.check().map_err(ProfileError::RelayList)?;
        if last.as_ref() == Some(&reach) {
            return Ok(Vec::new());
        }
        let contacts = self.contacts();
        let written = self.write_reach(&reach, &contacts, now, rng)?;
        self.set_meta_sealed(meta::REACH, ROLE_REACH, &reach.encode(), rng)?;
        Ok(written)
    }

    /// Writes the last published record, if there is one, to the
    /// contacts added since that are still to be told it ([`Tell::Reach`];
    /// `only`: to that one alone), in the transaction that takes their
    /// rows away (see [`crate::profile::telling`]): once each, and with
    /// nothing published, their rows go with nothing written. Returns the
    /// messages written.
    pub(crate) fn reach_new_contacts(
        &self,
        only: Option<&PublicIdentity>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        let due: Vec<([u8; 32], ContactRecord)> = self
            .to_tell(Tell::Reach)?
            .into_iter()
            .filter(|(_, r)| only.is_none_or(|o| *o == r.public))
            .collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let body = self.published_reach()?.map(|r| Zeroizing::new(r.encode()));
        let identity = self.identity();
        let mut rows = Vec::with_capacity(due.len());
        for (id, c) in &due {
            // Deleted since the rows were read: their rows went with them.
            let Ok(contact) = self.sync_contact(c) else {
                continue;
            };
            let message = match &body {
                Some(body) => Some(reach_message(&identity, &contact, body, now, rng)?),
                None => None,
            };
            rows.push((*id, message));
        }
        let me = identity.public().sign;
        self.write_txn(move |txn| {
            let mut messages = Vec::new();
            for (id, message) in rows {
                if told_in(txn, &id, Tell::Reach).map_err(db_error)? {
                    messages.extend(message);
                }
            }
            insert_written(txn, me, now, &messages).map_err(db_error)
        })
    }

    fn write_reach(
        &self,
        reach: &Reach,
        contacts: &[ContactRecord],
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        let identity = self.identity();
        let body = Zeroizing::new(reach.encode());
        let mut messages = Vec::with_capacity(contacts.len());
        for c in contacts {
            let contact = self.sync_contact(c)?;
            messages.push(reach_message(&identity, &contact, &body, now, rng)?);
        }
        let me = identity.public().sign;
        self.write_txn(move |txn| insert_written(txn, me, now, &messages).map_err(db_error))
    }

    /// This profile's invite, with its relay seed and its relays (see
    /// [`strand_sync::Identity::invite_with_reach`]): a contact who never shares a
    /// network with this device can still reach it through a relay.
    /// A name that breaks today's rules is refused here, not by everyone
    /// who tries the code ([`Profile::own_name_problem`]).
    pub fn invite(&self) -> Result<strand_sync::Invite, ProfileError> {
        self.own_name_usable()?;
        let reach = match self.published_reach()? {
            Some(r) => r,
            None => Reach {
                seed: self.relay_seed(&mut crate::profile::os_rng())?,
                relays: Vec::new(),
                offers: Vec::new(),
            },
        };
        Ok(self.identity().invite_with_reach(&reach))
    }

    /// The kind of a stored message, from its header (`None` if it is not
    /// stored).
    pub fn message_kind(&self, group: &GroupId, key: &Key) -> Result<Option<Kind>, ProfileError> {
        strand_sync::Store::kind(&self.read_view()?, group, key).map_err(db_error)
    }

    /// A key for the relay this node may run for its contacts: kept across
    /// runs (contacts reserve at its address, id included), derived from
    /// the profile's secret, so nothing more is stored.
    pub fn relay_server_key(&self) -> [u8; 32] {
        strand_sync::kdf(self.root(), "strand/v2/relay-server", &[])
    }

    /// The newest [`Reach`] record `contact` wrote into your 1:1 group:
    /// where to reach them beyond the LAN (one index lookup, one message
    /// decrypted); before they wrote one, what their invite said.
    pub fn contact_reach(&self, contact: &ContactRecord) -> Result<Option<Reach>, ProfileError> {
        let group = self.sync_contact(contact)?.direct_group().clone();
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let found = match txn.open_table(RECORDS) {
            Ok(records) => records
                .get(record_key(&group.id, &contact.public.sign))
                .map_err(db_error)?
                .map(|v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(db_error(e)),
        };
        if let Some(k) = found {
            let messages = txn.open_table(MESSAGES).map_err(db_error)?;
            if let Some(v) = messages.get(k).map_err(db_error)? {
                if let Ok(m) = Message::decode(v.value().to_vec()) {
                    if let Ok(body) = m.open(&group) {
                        if let Ok(r) = Reach::decode(&body) {
                            return Ok(Some(r));
                        }
                    }
                }
            }
        }
        drop(txn);
        // None yet: what their invite said, if anything.
        let id = self.contact_id(&contact.public.sign);
        match self.meta_sealed(&invite_reach_key(&id), ROLE_INVITE_REACH)? {
            Some(b) => Ok(Reach::decode(&b).ok()),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay stored before `add_relay` refused the ones the relay client
    /// cannot dial (here a WebSocket address) stays in the user's list,
    /// but is told to no contact: the record names only the good one.
    /// Before, every stored relay that parsed was published.
    #[test]
    fn a_stored_relay_the_client_cannot_dial_is_not_published() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _bob, _) = crate::profile::alice_with_bob(dir.path());
        let rng = &mut crate::profile::os_rng();
        let id = "12D3KooWGRYZDHBembyGJQqQ6WgLqJWYNjnECGDVtFdxXnYyRJFk";
        let bad = format!("/ip4/203.0.113.7/tcp/4001/ws/p2p/{id}");
        let good = format!("/ip4/203.0.113.8/tcp/4001/p2p/{id}");
        assert!(check_relay(&bad).is_err(), "refused when added now");
        alice.set_relays(&[bad.clone(), good.clone()], rng).unwrap();
        let written = alice.publish_reach(&[], 0, rng).unwrap();
        assert_eq!(written.len(), 1, "one record, to Bob");
        let reach = alice.published_reach().unwrap().unwrap();
        let good_bytes = good.parse::<Multiaddr>().unwrap().to_vec();
        assert_eq!(reach.relays, [good_bytes]);
        // The user's list still shows both, to remove the bad one.
        assert_eq!(alice.relays().unwrap(), [bad, good]);
    }
}
