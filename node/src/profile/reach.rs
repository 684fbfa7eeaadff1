//! Reaching contacts beyond the LAN: this profile's relay list and relay
//! seed, the [`Reach`] records that tell contacts about them, and reading
//! the records contacts wrote.
//!
//! A record is a message of kind [`Kind::REACH`] in each contact's 1:1
//! group: encrypted and synced like a text, never shown. A new one is
//! written only when what it says changes (the relays, or the relay this
//! node offers its contacts), and to a new contact when it is added.
//!
//! A contact keeps the newest record by its key, time first. So records
//! are written one at a time (the relay list changed by a command, the
//! offers by the node as its relay's addresses change, on other
//! threads), each reading what it says only once the one before it is
//! stored, and each dated after the last written to that contact
//! ([`dated`], unless that one is dated too far ahead for contacts to
//! take): the record stored as published is the one contacts keep.

use rand_core::{CryptoRng, RngCore};
use redb::{ReadTransaction, ReadableDatabase, ReadableTable};
use strand_sync::limits::{Time, MAX_CLOCK_SKEW, MAX_REACH_ADDRESSES};
use strand_sync::{
    AuthorId, Contact, Group, GroupId, Identity, Key, Kind, Message, PublicIdentity, Reach,
};
use strand_transport::Multiaddr;
use zeroize::Zeroizing;

use crate::profile::crypto::{open, seal};
use crate::profile::db_error;
use crate::profile::schema::{meta, MESSAGES, META, RECORDS};
use crate::profile::store::{insert_written, open_if_there, record_key, sync_key};
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
/// group, dated after the last one written there (read in `txn`:
/// [`dated`]): what [`Profile::publish_reach`] writes to every contact
/// and [`Profile::reach_new_contacts`] to those added since.
fn reach_message(
    txn: &ReadTransaction,
    identity: &Identity,
    contact: &Contact,
    body: &[u8],
    now: Time,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(GroupId, Message), ProfileError> {
    let group = contact.direct_group();
    let at = dated(txn, &group.id, &identity.public().sign, now)?;
    let m = Message::create(identity, group, at, Kind::REACH, body, rng)
        .map_err(ProfileError::Message)?;
    Ok((group.id, m))
}

/// When a record `author` writes in `group` is dated: `now`, or a
/// millisecond after the newest they wrote there if that is not older.
/// A contact keeps the newest record by its key, time first and then
/// id: one dated as the last (two changes in one millisecond, or a
/// clock that stands still, as in tests) would win or lose by its random
/// id, and one dated before it (a clock read before another change took
/// its turn) would lose. Either way the contact would keep an older
/// record than the one stored as published.
///
/// A last record dated [`MAX_CLOCK_SKEW`] or more ahead of `now` (written
/// while the clock was ahead, since put right) is not followed: a record
/// dated after it would be as far ahead, contacts refuse what is dated
/// more than that past their clock, and every later record would be
/// refused until the real time caught up. The next is dated `now`, as
/// before records were dated after the last.
fn dated(
    txn: &ReadTransaction,
    group: &GroupId,
    author: &AuthorId,
    now: Time,
) -> Result<Time, ProfileError> {
    let last = newest_record(txn, group, author)?.map(|k| sync_key(&k).time);
    Ok(match last {
        Some(t) if t < now.saturating_add(MAX_CLOCK_SKEW) => now.max(t.saturating_add(1)),
        _ => now,
    })
}

/// The [`MESSAGES`] key of the newest record `author` wrote in `group`,
/// as the store keeps it in [`RECORDS`].
fn newest_record(
    txn: &ReadTransaction,
    group: &GroupId,
    author: &AuthorId,
) -> Result<Option<[u8; 72]>, ProfileError> {
    let Some(records) = open_if_there(txn, RECORDS).map_err(db_error)? else {
        return Ok(None);
    };
    Ok(records
        .get(record_key(group, author))
        .map_err(db_error)?
        .map(|v| v.value()))
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
        self.unseal_meta(name, role, v.value()).map(Some)
    }

    /// The `meta` entry `name`, `sealed` for `role` as it is stored
    /// ([`Profile::set_meta_sealed`]), opened.
    fn unseal_meta(
        &self,
        name: &str,
        role: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProfileError> {
        open(self.root(), role, sealed)
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
        // From reading the list to publishing it: two adds at once would
        // each store the list without the other's relay.
        let _one_at_a_time = self.one_reach_change();
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
        let written = self.publish_held(None, now, rng)?;
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
        let _one_at_a_time = self.one_reach_change();
        let mut relays = self.relays()?;
        let before = relays.len();
        relays.retain(|r| *r != wanted);
        if relays.len() == before {
            return Ok(None);
        }
        self.set_relays(&relays, rng)?;
        let written = self.publish_held(None, now, rng)?;
        Ok(Some(RelayChange {
            address: wanted,
            written,
        }))
    }

    /// The seed this device's relay identities derive from (made on first
    /// use), the one stored for every caller. One is made only in the
    /// write transaction that finds none stored, and stored there: callers
    /// at the same moment (the app's invite, the node starting its relays
    /// or telling contacts its reach) all get the first stored. Before,
    /// the look and the write were apart: each caller that found none
    /// made one and stored it, the last stored stayed, and the others'
    /// showed in an invite, or keyed the node's relay identities, though
    /// never stored.
    pub fn relay_seed(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<[u8; 32], ProfileError> {
        let seed_of = |b: &[u8]| -> Result<[u8; 32], ProfileError> {
            b.try_into()
                .map_err(|_| ProfileError::Corrupt("the relay seed".into()))
        };
        // Read without writing once there is one, as every later time.
        if let Some(b) = self.meta_sealed(meta::RELAY_SEED, ROLE_RELAY_SEED)? {
            return seed_of(b.as_slice());
        }
        // A test holds two callers here, both having found none.
        #[cfg(test)]
        tests::no_seed_found();
        // Made before the transaction, which takes no generator; unused if
        // another caller stored one meanwhile.
        let mut made = [0u8; 32];
        rng.fill_bytes(&mut made);
        let sealed = seal(self.root(), ROLE_RELAY_SEED, &made, rng);
        let stored = self.write_txn(move |txn| {
            let mut table = txn.open_table(META).map_err(db_error)?;
            if let Some(stored) = table.get(meta::RELAY_SEED).map_err(db_error)? {
                return Ok(Some(stored.value().to_vec()));
            }
            table
                .insert(meta::RELAY_SEED, &sealed[..])
                .map_err(db_error)?;
            Ok(None)
        })?;
        let Some(stored) = stored else {
            return Ok(made);
        };
        let stored = self.unseal_meta(meta::RELAY_SEED, ROLE_RELAY_SEED, &stored)?;
        seed_of(stored.as_slice())
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

    /// Waits for the change of what contacts are told that is under way,
    /// if any, and holds off the next until the guard is dropped: each
    /// reads the relay list and the last record only once the one before
    /// stored its own.
    fn one_reach_change(&self) -> std::sync::MutexGuard<'_, ()> {
        // A test sees a change wait for another (`tests::interleave`).
        #[cfg(test)]
        if let Ok(held) = self.inner.reaching.try_lock() {
            return held;
        } else {
            tests::waiting();
        }
        self.inner.reaching.lock().expect("reach lock")
    }

    /// Writes a [`Reach`] record (this profile's relays the relay client
    /// can dial, and `offers`, the
    /// relays this node runs for its contacts, which it is reached through
    /// too; its seed) into every contact's 1:1 group, unless the last one
    /// said the same, or there is nothing to say yet. Returns the messages
    /// written. A contact deleted meanwhile is passed over; the others
    /// get the record, and it is stored.
    ///
    /// One change at a time with the relay list's: those that come
    /// meanwhile wait, and each publishes what holds once its turn comes
    /// (a change of the relay list tells the offers given here last, even
    /// if this record could not be written).
    pub fn publish_reach(
        &self,
        offers: &[Vec<u8>],
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        let _one_at_a_time = self.one_reach_change();
        self.publish_held(Some(offers), now, rng)
    }

    /// [`Profile::publish_reach`], its turn taken by the caller
    /// ([`Profile::one_reach_change`]). `offers`: `None` (a change of the
    /// relay list) keeps the offers that stand: those last given to
    /// [`Profile::publish_reach`] in this process, which the node gives
    /// at its start and as its relay's addresses change, or before any
    /// (no node runs here), those of the last record. Not the last
    /// record's alone: a record that could not be written would leave it
    /// offering addresses the node no longer serves at.
    fn publish_held(
        &self,
        offers: Option<&[Vec<u8>]>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        let last = self.published_reach()?;
        let offers: Addresses = match offers {
            Some(o) => o.to_vec(),
            None => match &*self.inner.offering.lock().expect("offering lock") {
                Some(o) => o.clone(),
                None => last.as_ref().map(|r| r.offers.clone()).unwrap_or_default(),
            },
        };
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
        for o in &offers {
            if !relays.contains(o) && relays.len() < MAX_REACH_ADDRESSES {
                relays.push(o.clone());
            }
        }
        if last.is_none() && relays.is_empty() && offers.is_empty() {
            // Nothing to say, and nothing offered stands.
            *self.inner.offering.lock().expect("offering lock") = Some(offers);
            return Ok(Vec::new());
        }
        let reach = Reach {
            seed: self.relay_seed(rng)?,
            relays,
            offers,
        };
        reach.check().map_err(ProfileError::RelayList)?;
        // Offers that make a good record stand for the relay list's next
        // change, told or not; ones refused here never do.
        *self.inner.offering.lock().expect("offering lock") = Some(reach.offers.clone());
        if last.as_ref() == Some(&reach) {
            return Ok(Vec::new());
        }
        let contacts = self.contacts();
        #[cfg(test)]
        tests::before_writing();
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
        // A record being published may have been written to the contacts
        // there were before these came: they get it once it is stored.
        let _one_at_a_time = self.one_reach_change();
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
        let read = self.db()?.begin_read().map_err(db_error)?;
        let mut rows = Vec::with_capacity(due.len());
        for (id, c) in &due {
            // Deleted since the rows were read: their rows went with them.
            let Some(contact) = self.still_a_contact(c) else {
                continue;
            };
            let message = match &body {
                Some(body) => Some(reach_message(&read, &identity, &contact, body, now, rng)?),
                None => None,
            };
            rows.push((*id, message));
        }
        drop(read);
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

    /// The protocol view of the contact `record` names, or `None` if they
    /// were deleted since the list that named them was read: a deletion
    /// does not wait for a record being written. Both [`Profile::write_reach`]
    /// and [`Profile::reach_new_contacts`] pass such a contact over and
    /// write to the others: failing the record for all of them would leave
    /// every other contact on the one before, with nothing to write it
    /// again until what it says changes.
    fn still_a_contact(&self, record: &ContactRecord) -> Option<Contact> {
        self.book()
            .sync_contact(&record.public)
            .map(|(_, c)| c.clone())
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
        let read = self.db()?.begin_read().map_err(db_error)?;
        let mut messages = Vec::with_capacity(contacts.len());
        for c in contacts {
            // Deleted since the list was read: the others still get it.
            let Some(contact) = self.still_a_contact(c) else {
                continue;
            };
            messages.push(reach_message(&read, &identity, &contact, &body, now, rng)?);
        }
        drop(read);
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

    /// The newest [`Reach`] record `author` wrote in `group`, if it reads
    /// as one (one index lookup, one message decrypted).
    fn newest_reach(
        &self,
        group: &Group,
        author: &AuthorId,
    ) -> Result<Option<Reach>, ProfileError> {
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let Some(k) = newest_record(&txn, &group.id, author)? else {
            return Ok(None);
        };
        let messages = txn.open_table(MESSAGES).map_err(db_error)?;
        let Some(v) = messages.get(k).map_err(db_error)? else {
            return Ok(None);
        };
        Ok(Message::decode(v.value().to_vec())
            .ok()
            .and_then(|m| m.open(group).ok())
            .and_then(|body| Reach::decode(&body).ok()))
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
        if let Some(r) = self.newest_reach(&group, &contact.public.sign)? {
            return Ok(Some(r));
        }
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
    use std::cell::Cell;

    use super::*;
    use crate::profile::{alice_with_bob, os_rng};

    /// What a test runs at a point of a change of what contacts are told:
    /// once, on the thread it was set on.
    type Hook = Cell<Option<Box<dyn FnOnce()>>>;

    thread_local! {
        /// Run by the next record written on this thread, once it has
        /// read what it says and before it writes it.
        static BEFORE_WRITING: Hook = const { Cell::new(None) };
        /// Run by the next change on this thread that finds another under
        /// way, before it waits for it.
        static WAITING: Hook = const { Cell::new(None) };
        /// Run by the next [`Profile::relay_seed`] on this thread that
        /// finds no seed stored, before it makes one.
        static NO_SEED_FOUND: Hook = const { Cell::new(None) };
    }

    pub(super) fn before_writing() {
        if let Some(hook) = BEFORE_WRITING.take() {
            hook();
        }
    }

    pub(super) fn waiting() {
        if let Some(hook) = WAITING.take() {
            hook();
        }
    }

    pub(super) fn no_seed_found() {
        if let Some(hook) = NO_SEED_FOUND.take() {
            hook();
        }
    }

    /// Runs `first` on this thread; once it has read what its record says
    /// and before it writes it, runs `second` on another thread, until
    /// `second` finishes or waits for `first`'s turn to end. Returns once
    /// both are done. No timing decides anything: `second` runs wholly
    /// between `first`'s reading and its writing, unless it waits (one
    /// change at a time), and then it runs wholly after.
    fn interleave(first: impl FnOnce(), second: impl FnOnce() + Send + 'static) {
        let (said, heard) = std::sync::mpsc::channel();
        let started = std::rc::Rc::new(Cell::new(None));
        let thread = started.clone();
        BEFORE_WRITING.set(Some(Box::new(move || {
            let waits = said.clone();
            thread.set(Some(std::thread::spawn(move || {
                WAITING.set(Some(Box::new(move || {
                    let _ = waits.send("waits");
                })));
                second();
                let _ = said.send("finished");
            })));
            heard.recv().expect("the second finishes or waits");
        })));
        first();
        let second = started.take().expect("the first wrote a record");
        second.join().expect("the second went well");
    }

    const ID: &str = "12D3KooWGRYZDHBembyGJQqQ6WgLqJWYNjnECGDVtFdxXnYyRJFk";

    /// A relay's address, `n` telling them apart.
    fn relay(n: u8) -> String {
        format!("/ip4/203.0.113.{n}/tcp/4001/p2p/{ID}")
    }

    /// [`relay`] as a record lists it.
    fn listed(n: u8) -> Vec<u8> {
        relay(n).parse::<Multiaddr>().unwrap().to_vec()
    }

    /// The record of Alice's a contact keeps from the 1:1 `group`: the
    /// newest she wrote there by key, as every store keeps it.
    fn kept(alice: &Profile, group: &Group) -> Option<Reach> {
        alice
            .newest_reach(group, &alice.identity().public().sign)
            .unwrap()
    }

    /// Regression: the node told a new address of its relay for contacts
    /// (`publish_reach` with new offers) while `strand relay add` ran on
    /// another thread. The node's record read the relay list before the
    /// add stored the relay, and was written and stored after the add's
    /// own: the record stored, and the one Bob keeps, left the relay
    /// added out. Now the add waits for the node's record, and then tells
    /// both.
    #[test]
    fn a_relay_added_while_an_offer_is_told_is_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _bob, group) = alice_with_bob(dir.path());
        alice
            .publish_reach(&[listed(1)], 10, &mut os_rng())
            .unwrap();
        let adding = alice.clone();
        interleave(
            || {
                alice
                    .publish_reach(&[listed(2)], 20, &mut os_rng())
                    .unwrap();
            },
            move || {
                adding.add_relay(&relay(3), 20, &mut os_rng()).unwrap();
            },
        );
        let stored = alice.published_reach().unwrap().unwrap();
        assert_eq!(
            stored.relays,
            [listed(3), listed(2)],
            "the relay added, then the one offered"
        );
        assert_eq!(stored.offers, [listed(2)]);
        assert_eq!(kept(&alice, &group), Some(stored), "Bob keeps that one");
    }

    /// Regression: the same two the other way round. The add read the
    /// offers from the record stored before, and the node's record with
    /// the new ones was written and stored before the add's: the record
    /// stored last offered the relay at its old address. Now the node's
    /// record waits for the add's and comes after it; dated after it too,
    /// though the node read its clock first (15 against the add's 20), or
    /// Bob would keep the add's.
    #[test]
    fn an_offer_told_while_a_relay_is_added_is_not_undone() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _bob, group) = alice_with_bob(dir.path());
        alice
            .publish_reach(&[listed(1)], 10, &mut os_rng())
            .unwrap();
        let offering = alice.clone();
        interleave(
            || {
                alice.add_relay(&relay(3), 20, &mut os_rng()).unwrap();
            },
            move || {
                offering
                    .publish_reach(&[listed(2)], 15, &mut os_rng())
                    .unwrap();
            },
        );
        let stored = alice.published_reach().unwrap().unwrap();
        assert_eq!(stored.relays, [listed(3), listed(2)]);
        assert_eq!(stored.offers, [listed(2)], "the new address");
        assert_eq!(kept(&alice, &group), Some(stored), "Bob keeps that one");
    }

    /// Regression: a contact (Carol) added while a record was being
    /// written to the contacts there were before her. That record had
    /// read the list without her, and she was given the one stored before
    /// it, so she never learnt the new one. Now she is given the record
    /// once it is stored.
    #[test]
    fn a_contact_added_while_a_record_is_written_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _bob, _) = alice_with_bob(dir.path());
        alice
            .publish_reach(&[listed(1)], 10, &mut os_rng())
            .unwrap();
        let carol = Identity::generate("Carol", &mut os_rng()).unwrap();
        let invite = carol.invite();
        let adding = alice.clone();
        interleave(
            || {
                alice
                    .publish_reach(&[listed(2)], 20, &mut os_rng())
                    .unwrap();
            },
            move || {
                adding
                    .add_contact(&invite, "Carol", 20, &mut os_rng())
                    .unwrap();
            },
        );
        let group = carol
            .contact(&alice.identity().public())
            .unwrap()
            .direct_group()
            .clone();
        assert_eq!(
            kept(&alice, &group).map(|r| r.offers),
            Some(vec![listed(2)]),
            "Carol keeps the record stored"
        );
    }

    /// Regression: a record was dated with the time its caller read, and
    /// a contact keeps the newest record by time, then by (random) id.
    /// Of two changes in one millisecond (or under a clock standing
    /// still) the contact kept either, by chance; a change whose clock
    /// was read before another's but stored after it lost to it. Now
    /// each record is dated after the last one written to that contact.
    #[test]
    fn each_record_is_dated_after_the_last_so_contacts_keep_the_one_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _bob, group) = alice_with_bob(dir.path());
        let rng = &mut os_rng();
        let mut times = Vec::new();
        // The second in the same millisecond; the third on a clock read
        // earlier.
        for (n, now) in [(1, 100), (2, 100), (3, 50)] {
            let written = alice.publish_reach(&[listed(n)], now, rng).unwrap();
            assert_eq!(written.len(), 1, "one record, to Bob");
            times.push(written[0].1.time);
        }
        assert_eq!(times, [100, 101, 102]);
        let stored = alice.published_reach().unwrap();
        assert_eq!(stored.as_ref().unwrap().offers, [listed(3)]);
        assert_eq!(kept(&alice, &group), stored, "Bob keeps the one stored");
    }

    /// Regression (a record written while the clock was a year ahead
    /// dated every later one a year ahead too, after the clock was put
    /// right, and contacts refuse what is dated more than
    /// [`MAX_CLOCK_SKEW`] past their clock: they learned no change of
    /// relays for a year). The next record is dated by the clock again.
    #[test]
    fn a_record_dated_far_ahead_does_not_date_the_next_ones_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _bob, _) = alice_with_bob(dir.path());
        let rng = &mut os_rng();
        let year: Time = 365 * 24 * 3600 * 1000;
        alice.publish_reach(&[listed(1)], 100 + year, rng).unwrap();
        let written = alice.publish_reach(&[listed(2)], 100, rng).unwrap();
        assert_eq!(written.len(), 1, "one record, to Bob");
        assert_eq!(written[0].1.time, 100, "dated by the clock");
        // One just under the bound ahead is still followed.
        let dir = tempfile::tempdir().unwrap();
        let (alice, _bob, _) = alice_with_bob(dir.path());
        let near = 100 + MAX_CLOCK_SKEW - 1;
        alice.publish_reach(&[listed(1)], near, rng).unwrap();
        let written = alice.publish_reach(&[listed(2)], 100, rng).unwrap();
        assert_eq!(written[0].1.time, near + 1);
    }

    /// A record that could not be written leaves the offers it was given
    /// standing: the relay list's next change tells them, not those of
    /// the record stored before, where the node's relay no longer is.
    /// Before, a change of the relay list took its offers from the record
    /// stored. The record fails here on a clock reading the one time no
    /// message may carry (`u64::MAX`, reserved), after its offers were
    /// found good: the same place a store that fails its writes fails it.
    #[test]
    fn the_offers_last_given_stand_though_their_record_failed() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _bob, group) = alice_with_bob(dir.path());
        alice
            .publish_reach(&[listed(1)], 10, &mut os_rng())
            .unwrap();
        let failed = alice.publish_reach(&[listed(2)], Time::MAX, &mut os_rng());
        assert!(
            matches!(failed, Err(ProfileError::Message(_))),
            "{failed:?}"
        );
        assert_eq!(
            alice.published_reach().unwrap().unwrap().offers,
            [listed(1)],
            "nothing was written"
        );
        alice.add_relay(&relay(3), 30, &mut os_rng()).unwrap();
        let stored = alice.published_reach().unwrap().unwrap();
        assert_eq!(stored.relays, [listed(3), listed(2)]);
        assert_eq!(stored.offers, [listed(2)], "the offers last given");
        assert_eq!(kept(&alice, &group), Some(stored), "Bob keeps that one");
    }

    /// Regression: a contact (Bob) deleted after a record had read the
    /// contact list and before it was written failed the record for every
    /// contact (`UnknownContact`), and it was not stored: Carol stayed on
    /// the offers of the record before, and the node, which tells offers
    /// only when its relay's addresses change, never wrote it again. Now
    /// Bob is passed over, as telling new contacts passes over one deleted
    /// meanwhile: Carol gets the record, and it is stored.
    #[test]
    fn a_contact_deleted_while_a_record_is_written_fails_it_for_no_one_else() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _bob, _) = alice_with_bob(dir.path());
        let carol = Identity::generate("Carol", &mut os_rng()).unwrap();
        alice
            .add_contact(&carol.invite(), "Carol", 5, &mut os_rng())
            .unwrap();
        alice
            .publish_reach(&[listed(1)], 10, &mut os_rng())
            .unwrap();
        let deleting = alice.clone();
        BEFORE_WRITING.set(Some(Box::new(move || {
            deleting.delete_contact("Bob", 20, &mut os_rng()).unwrap();
        })));
        let written = alice
            .publish_reach(&[listed(2)], 20, &mut os_rng())
            .expect("written to Carol");
        assert!(alice.contact("Bob").is_err(), "Bob was deleted under it");
        let group = carol
            .contact(&alice.identity().public())
            .unwrap()
            .direct_group()
            .clone();
        assert_eq!(
            written.iter().map(|(g, _)| *g).collect::<Vec<_>>(),
            [group.id],
            "one record, to Carol"
        );
        let stored = alice.published_reach().unwrap().unwrap();
        assert_eq!(stored.offers, [listed(2)], "the new offers are stored");
        assert_eq!(kept(&alice, &group), Some(stored), "Carol keeps that one");
    }

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

    /// Regression: two callers asking the relay seed of a profile that
    /// had none yet (the app's invite, and the node starting its relays
    /// or telling contacts its reach) each made one and stored it, one
    /// after the other: the last stored stayed, and the other caller had
    /// one that was never stored (shown in an invite, its relay
    /// identities known to nobody). Now every caller gets the one stored.
    /// Each round, on a profile with no seed, two threads ask for it a
    /// few times each; both are held (`NO_SEED_FOUND`) once they have
    /// found none, until the other has too, so both go on to make one: no
    /// timing decides anything. Fails with the write transaction in
    /// [`Profile::relay_seed`] made the store of the seed made, as before
    /// (`self.set_meta_sealed(meta::RELAY_SEED, ROLE_RELAY_SEED, &made,
    /// rng)?; return Ok(made);`): each thread then gets its own.
    #[test]
    fn callers_at_once_all_get_the_relay_seed_stored() {
        use std::sync::{Arc, Barrier};
        // Profiles tried, and how often each thread asks each.
        const ROUNDS: usize = 4;
        const ASKED: usize = 8;
        for _ in 0..ROUNDS {
            let dir = tempfile::tempdir().unwrap();
            let (alice, _bob, _) = alice_with_bob(dir.path());
            let none = alice.meta_sealed(meta::RELAY_SEED, ROLE_RELAY_SEED);
            assert!(none.unwrap().is_none(), "a seed before it was asked for");
            let both_found_none = Arc::new(Barrier::new(2));
            let asking: Vec<_> = (0..2)
                .map(|_| {
                    let alice = alice.clone();
                    let both_found_none = both_found_none.clone();
                    std::thread::spawn(move || {
                        NO_SEED_FOUND.set(Some(Box::new(move || {
                            both_found_none.wait();
                        })));
                        (0..ASKED)
                            .map(|_| alice.relay_seed(&mut os_rng()).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let answers: Vec<[u8; 32]> = asking
                .into_iter()
                .flat_map(|asked| asked.join().expect("the caller went well"))
                .collect();
            let stored = alice.meta_sealed(meta::RELAY_SEED, ROLE_RELAY_SEED);
            let stored = stored.unwrap().expect("a seed is stored");
            for answer in &answers {
                assert_eq!(answer.as_slice(), stored.as_slice(), "not the seed stored");
            }
        }
    }
}
