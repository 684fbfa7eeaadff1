//! Taking a mailbox record a contact wrote (PROTOCOL.md §17.1): a
//! contact's mailbox becomes a contact; at a mailbox, the owner's newest
//! list of contacts is whom it carries for, so those it adds are added and
//! those it leaves out deleted ([`crate::profile::removal`]). Above both the pairing ([`crate::profile::pairing`]) and deletion,
//! which it uses.

use rand_core::{CryptoRng, RngCore};
use strand_sync::{
    decode_mailbox, decode_mailbox_contacts, GroupId, Invite, Key, Kind, Message, PublicIdentity,
    Time,
};

use crate::profile::db_error;
use crate::profile::pairing::{fit_name, fit_names, Added};
use crate::profile::removal::Deleted;
use crate::profile::schema::meta;
use crate::profile::store::table_key;
use crate::profile::{listed_suffix, ContactRecord, Profile, ProfileError};

/// Seals [`meta::LIST_TAKEN`].
const ROLE_LIST_TAKEN: &str = "strand/v3/list-taken";

/// What a mailbox record changed in the contact list.
#[derive(Debug, Default, Clone)]
pub(crate) struct Taken {
    /// Contacts added: a contact's mailbox, or (at a mailbox) those its
    /// owner listed.
    pub added: Vec<ContactRecord>,
    /// At a mailbox: contacts its owner's newest list no longer has.
    pub deleted: Vec<Deleted>,
}

impl Taken {
    /// Adds what `more` changed, after what this holds.
    pub(crate) fn join(&mut self, more: Taken) {
        self.added.extend(more.added);
        self.deleted.extend(more.deleted);
    }
}

impl Profile {
    /// The error to give for `refused`, a key conflict [`Profile::add_contact`]
    /// met: one with a mailbox a contact named is said as such. A mailbox is signed for by its signing key
    /// alone, so a contact can name one holding a key of someone not yet
    /// a contact (Carol's encryption key, known from a group); and an
    /// invite is signed by its own signing key alone, so a contact can
    /// equally make one holding a real mailbox's key. Which of the two is
    /// false cannot be told here, so nothing is deleted: the user is told
    /// whose mailbox holds the key, not that the invite's person may be
    /// impersonating a contact, and decides (deleting that mailbox and
    /// adding again). A conflict with anyone else is refused as ever.
    pub(crate) fn key_conflict_told(
        &self,
        invite: &Invite,
        refused: ProfileError,
    ) -> Result<ProfileError, ProfileError> {
        let book = self.book();
        let Some(r) = book
            .records
            .iter()
            .find(|r| same_keys(&r.public, &invite.public))
        else {
            return Ok(refused);
        };
        let Some(owner) = self.mailbox_owner_of(&self.contact_id(&r.public.sign))? else {
            return Ok(refused);
        };
        let owner = book
            .records
            .iter()
            .find(|c| c.public.sign == owner)
            .map_or_else(|| "a contact".to_owned(), |c| c.name.clone());
        Ok(ProfileError::KeyOfMailbox {
            mailbox: r.name.clone(),
            owner,
        })
    }

    /// After the mailbox `gone` of the contact `owner` was deleted: the
    /// newest mailbox `owner` named, if it is another, is taken as theirs
    /// now (it was refused while they had one). A contact who changed
    /// mailboxes is followed once the user deletes the old one; the one
    /// deleted is not taken back. Returns the contacts added.
    pub(crate) fn take_newer_mailbox(
        &self,
        owner: &[u8; 32],
        gone: &PublicIdentity,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<ContactRecord>, ProfileError> {
        let book = self.book();
        let Some((_, contact)) = book
            .records
            .iter()
            .zip(&book.sync)
            .find(|(r, _)| r.public.sign == *owner)
        else {
            return Ok(Vec::new());
        };
        match self.mailboxes_named(contact)?.pop() {
            // Their newest names another: theirs now.
            Some((key, Some(invite))) if invite.public != *gone => Ok(self
                .take_mailbox_record(&contact.direct_group().id, &key, now, rng)?
                .added),
            // It names the one deleted, or none; or they never named one.
            _ => Ok(Vec::new()),
        }
    }

    /// At a mailbox: takes its owner's newest list again if it was not
    /// taken whole, as a running node does once at its start. A list is
    /// taken after the batch that brought it is stored, so a crash between
    /// the two, or a deletion that failed while it was taken, would
    /// otherwise wait for the owner's next list. One taken whole is not
    /// taken again: a listed contact deleted here by hand stays deleted
    /// until the owner's next list. (Nor is a contact's record naming
    /// their mailbox: one the user deleted would come back.)
    pub(crate) fn take_owners_list(
        &self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Taken, ProfileError> {
        let Some(owner) = self.mailbox_of()? else {
            return Ok(Taken::default());
        };
        let book = self.book();
        let Some(contact) = book.sync.iter().find(|c| c.public == owner.public) else {
            return Ok(Taken::default());
        };
        let Some(key) = self.newest_by(contact, Kind::MAILBOX_CONTACTS, &contact.public.sign)?
        else {
            return Ok(Taken::default());
        };
        // A row that does not open is as none: the list is taken again.
        let taken = self
            .meta_sealed(meta::LIST_TAKEN, ROLE_LIST_TAKEN)
            .unwrap_or_default();
        let group = contact.direct_group().id;
        if taken.is_some_and(|t| t[..] == table_key(&group, &key)) {
            return Ok(Taken::default());
        }
        self.take_mailbox_record(&group, &key, now, rng)
    }

    /// A mailbox record a contact wrote in the 1:1 conversation `group`:
    /// a contact's mailbox is added as a contact (named after them); at a
    /// mailbox, the newest list of contacts from its owner is whom it
    /// carries for: those on it are added, and those not on it deleted.
    /// Returns the contacts added and deleted. Anything else (a record
    /// from someone who is not this mailbox's owner, a damaged one, a list
    /// older than one here) changes nobody.
    pub(crate) fn take_mailbox_record(
        &self,
        group: &GroupId,
        key: &Key,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Taken, ProfileError> {
        let book = self.book();
        let mut taken = Taken::default();
        let Some((from, contact)) = book.by_direct_group(group) else {
            return Ok(taken);
        };
        let Some(bytes) =
            strand_sync::Store::get(&self.read_view()?, group, key).map_err(db_error)?
        else {
            return Ok(taken);
        };
        let Ok(msg) = Message::decode(bytes) else {
            return Ok(taken);
        };
        if msg.author() != contact.public.sign {
            return Ok(taken);
        }
        let Ok(body) = msg.open(contact.direct_group()) else {
            return Ok(taken);
        };
        match msg.kind() {
            Kind::MAILBOX => {
                // A mailbox carries for its owner's contacts, not for
                // other mailboxes' owners; and a contact's mailbox has no
                // mailbox (one naming another, and that one a third, would
                // each be a contact with budgets of its own).
                if self.mailbox_of()?.is_some() || from.mailbox {
                    return Ok(taken);
                }
                // Only a mailbox that agreed to be this contact's.
                let Ok(Some((invite, _))) = decode_mailbox(&body, &contact.public) else {
                    return Ok(taken);
                };
                // One mailbox per contact: the first they named (a contact
                // cannot fill the list by naming mailbox after mailbox).
                // Known by the contact's key, whatever either is called
                // now; and by name for mailboxes added before that was
                // kept.
                let names = fit_names(&from.name, "'s mailbox");
                let me = self.identity().public();
                if book
                    .records
                    .iter()
                    .any(|r| r.public == invite.public || names.contains(&r.name))
                    || invite.public == me
                    || self.contacts_with_a_mailbox()?.contains(&from.public.sign)
                {
                    return Ok(taken);
                }
                // A mailbox signs its invite and its proof with its
                // signing key alone: nothing shows it holds its other key,
                // so a contact can name one with a signing key they made
                // beside a key someone here has (a contact's, a mailbox's,
                // the user's own). Refused, said once per record and
                // naming no one: added, it would hold that key, and its
                // holder could not be added (one added before them makes
                // way: [`Profile::add_contact_over_mailboxes`]).
                if book
                    .records
                    .iter()
                    .any(|r| same_keys(&r.public, &invite.public))
                    || same_keys(&me, &invite.public)
                {
                    tracing::debug!("a mailbox a contact named has someone else's key: not added");
                    return Ok(taken);
                }
                let [name, _] = &names;
                match self.add_contact_as(&invite, name, Added::MailboxOf(&from.public), now, rng) {
                    Ok(r) => taken.added.push(r),
                    // The error may name a contact, and logs name no one
                    // (a journal keeps them); `-v` says which.
                    Err(e) => {
                        tracing::warn!("a contact's mailbox not added");
                        tracing::debug!("a contact's mailbox not added: {e}");
                    }
                }
            }
            Kind::MAILBOX_CONTACTS => {
                let owner = self.mailbox_of()?;
                if owner.is_none_or(|o| o.public != contact.public) {
                    return Ok(taken);
                }
                let Ok(list) = decode_mailbox_contacts(&body) else {
                    return Ok(taken);
                };
                // One list at a time, from the check to the last add.
                let _one_at_a_time = self.inner.lists.lock().expect("lists lock");
                // Only the newest list counts: an older one arriving late
                // (logs sync in no set order) adds back no one deleted
                // since, nor deletes anyone added since.
                let newest =
                    self.newest_by(contact, Kind::MAILBOX_CONTACTS, &contact.public.sign)?;
                if newest.is_some_and(|newest| newest > *key) {
                    return Ok(taken);
                }
                let book = self.book();
                // Whether every deletion and add the list calls for is done.
                let mut done = true;
                let on_list = |r: &ContactRecord| list.iter().any(|p| same_keys(&r.public, p));
                // Those the owner no longer has (deleted, so no longer
                // reached through this mailbox): only contacts a list
                // added (marked so: [`ContactRecord::listed`]), not the
                // owner nor any added here by hand; and none if the list
                // may have been cut short.
                let whole = list.len() < strand_sync::MAX_MAILBOX_CONTACTS;
                for gone in book
                    .records
                    .iter()
                    .filter(|r| whole && r.public != contact.public && r.listed && !on_list(r))
                {
                    match self.delete_contact_keyed(&gone.public, now, rng) {
                        Ok(d) => taken.deleted.push(d),
                        Err(e) => {
                            tracing::warn!("a contact the owner deleted stays: {e}");
                            done = false;
                        }
                    }
                }
                let book = self.book();
                let me = self.identity().public();
                let mut records: Vec<ContactRecord> = Vec::new();
                for public in list {
                    let known = |r: &ContactRecord| same_keys(&r.public, &public);
                    if public == me
                        || book.records.iter().any(known)
                        || records.iter().any(known)
                        || self.identity().contact(&public).is_err()
                    {
                        continue;
                    }
                    // Named by their key: unique, so no search for a free
                    // name; and marked as one a list added.
                    records.push(ContactRecord {
                        name: fit_name(&from.name, &listed_suffix(&public)),
                        public,
                        added_at: now,
                        verified: false,
                        legacy: false,
                        mailbox: false,
                        listed: true,
                    });
                }
                // All in one change of the contact list.
                match self.add_records(records, now, rng) {
                    Ok(r) => taken.added.extend(r),
                    Err(e) => {
                        tracing::warn!("the owner's contacts not added: {e}");
                        done = false;
                    }
                }
                // Taken whole: not taken again at a start. If this write
                // fails, it is (which changes nothing).
                if done {
                    if let Err(e) = self.set_meta_sealed(
                        meta::LIST_TAKEN,
                        ROLE_LIST_TAKEN,
                        &table_key(group, key),
                        rng,
                    ) {
                        tracing::warn!("the list taken not noted: {e}");
                    }
                }
            }
            _ => {}
        }
        Ok(taken)
    }
}

/// Whether a listed contact is this one: either key the same (a list
/// naming someone's signing key with another's key-agreement key is them
/// too, never a second contact).
fn same_keys(a: &PublicIdentity, b: &PublicIdentity) -> bool {
    a.sign == b.sign || a.dh == b.dh
}
