//! The mailbox (PROTOCOL.md §17.1): a device the user owns, paired to the
//! profile, that carries for the user and the user's contacts and reads
//! nothing.
//!
//! * On the mailbox: `strand mailbox init CODE` (the owner's invite code)
//!   adds the owner as a contact, marks the profile as the owner's
//!   mailbox and turns carrying on. It prints its own code.
//! * On the owner's device: `strand mailbox add CODE` (the mailbox's
//!   code) adds the mailbox as a contact and tells every contact, in
//!   their 1:1 conversation, the mailbox's signed invite; and tells the
//!   mailbox the contacts' public keys.
//! * A contact told of a mailbox adds it as a contact ("NAME's mailbox");
//!   the mailbox adds the contacts it is told of. From then on they sync
//!   carrying pools: the contact's envelopes for the owner wait at the
//!   mailbox, and so do the owner's for them.
//!
//! Taking the records that say so (adding a contact's mailbox; at a
//! mailbox, following the owner's lists, which also deletes) is
//! [`crate::profile::mailbox_records`].

use rand_core::{CryptoRng, RngCore};
use strand_sync::{
    decode_mailbox, decode_mailbox_code, encode_mailbox, encode_mailbox_code,
    encode_mailbox_contacts, mailbox_proof, Contact, GroupId, Invite, Key, Kind, MailboxProof,
    Message, PublicIdentity, Time,
};

use crate::profile::db_error;
use crate::profile::schema::meta;
use crate::profile::store::{insert_written, ReadView};
use crate::profile::telling::{told_in, Tell};
use crate::profile::{ContactRecord, Profile, ProfileError};

const ROLE_MAILBOX: &str = "strand/v2/mailbox";
const ROLE_MAILBOX_OF: &str = "strand/v2/mailbox-of";
const ROLE_MAILBOX_FOR: &str = "strand/v2/mailbox-for";

/// The META keys of whose mailbox each contact's mailbox is, by the
/// mailbox contact's keyed id: `mailbox-for/` and the id in hex.
const MAILBOX_FOR: &str = "mailbox-for/";
/// Just past every [`MAILBOX_FOR`] key (`0` follows `/`).
const MAILBOX_FOR_END: &str = "mailbox-for0";
/// Set once [`Profile::find_mailbox_owners`] has looked for every
/// mailbox's [`MAILBOX_FOR`] row (those it did not find stay known by
/// name). Outside their range (`-` comes before `/`).
const MAILBOX_FOR_DONE: &str = "mailbox-for-done";

/// Whom [`Profile::tell_mailbox`] tells of the mailbox.
#[derive(Clone, Copy)]
enum Whom<'a> {
    /// Every contact (a mailbox was paired).
    All,
    /// This contact.
    One(&'a PublicIdentity),
    /// The contacts still to be told ([`Tell::Mailbox`]), each once.
    New,
}

/// What a contact being added is.
#[derive(Clone, Copy)]
pub(crate) enum Added<'a> {
    /// Someone, from their invite.
    Person,
    /// This user's own mailbox.
    OwnMailbox,
    /// The mailbox a contact named: that contact, who may name one.
    MailboxOf(&'a PublicIdentity),
}

/// The META key that says whose mailbox the contact with keyed id
/// `mailbox` is.
pub(crate) fn mailbox_for_key(mailbox: &[u8; 32]) -> String {
    format!("{MAILBOX_FOR}{}", crate::profile::hex(mailbox))
}

/// The name a mailbox has on its owner's device.
pub const MAILBOX_NAME: &str = "my mailbox";

impl Profile {
    /// The mailbox paired to this profile, as its invite.
    pub fn mailbox(&self) -> Result<Option<Invite>, ProfileError> {
        Ok(self.mailbox_pairing()?.map(|(i, _)| i))
    }

    /// The mailbox's invite and its proof that it agreed to be this
    /// user's.
    fn mailbox_pairing(&self) -> Result<Option<(Invite, MailboxProof)>, ProfileError> {
        let Some(b) = self.meta_sealed(meta::MAILBOX, ROLE_MAILBOX)? else {
            return Ok(None);
        };
        let corrupt = || ProfileError::Corrupt("the mailbox pairing does not read".into());
        let (proof, invite) = b.split_first_chunk::<64>().ok_or_else(corrupt)?;
        // Accepted when it was paired, maybe by an older Strand under the
        // rules for names then (its signature is still checked): refused
        // under today's, it left every deletion, pairing and telling of
        // the mailbox failing.
        let invite = Invite::from_stored_bytes(invite).map_err(|_| corrupt())?;
        Ok(Some((invite, *proof)))
    }

    /// On a mailbox: the code that pairs it on its owner's device (its
    /// invite and its proof that it agreed to be theirs).
    pub fn mailbox_code(&self) -> Result<Option<String>, ProfileError> {
        let Some(owner) = self.mailbox_of()? else {
            return Ok(None);
        };
        let me = self.identity();
        let proof = mailbox_proof(&me, &owner.public);
        Ok(Some(encode_mailbox_code(&self.invite()?, &proof)))
    }

    /// Whose mailbox this profile is: the owner, as a contact.
    pub fn mailbox_of(&self) -> Result<Option<ContactRecord>, ProfileError> {
        let Some(b) = self.meta_sealed(meta::MAILBOX_OF, ROLE_MAILBOX_OF)? else {
            return Ok(None);
        };
        Ok(self
            .book()
            .records
            .iter()
            .find(|r| r.public.sign[..] == b[..])
            .cloned())
    }

    /// Makes this profile the mailbox of the owner whose invite this is:
    /// the owner becomes a contact (under the name they chose), and this
    /// profile carries from now on (see [`Profile::set_carrying`]). Give
    /// the owner this profile's invite ([`Profile::invite`]).
    pub fn become_mailbox(
        &self,
        owner: &Invite,
        settings: &crate::profile::carried::CarrySettings,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ContactRecord, ProfileError> {
        let record = self.mailbox_owner(owner, now, rng)?;
        self.set_carrying(true, settings, now, rng)?;
        Ok(record)
    }

    /// [`Profile::become_mailbox`] but for carrying, which a running node
    /// turns on itself.
    pub(crate) fn mailbox_owner(
        &self,
        owner: &Invite,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ContactRecord, ProfileError> {
        if self.mailbox()?.is_some() {
            return Err(ProfileError::Mailbox(
                "this profile has a mailbox of its own; a mailbox is a profile of its own".into(),
            ));
        }
        // Its owner pairs it with a code that carries its name: refused
        // before anything changes if no such code can be made.
        self.own_name_usable()?;
        match self.mailbox_of()? {
            Some(o) if o.public != owner.public => {
                return Err(ProfileError::Mailbox(format!(
                    "this is already the mailbox of {}",
                    crate::display::one_line(&o.name)
                )));
            }
            Some(_) => {}
            // Being a mailbox is for good (its owner cannot be deleted,
            // nor a mailbox paired), and the owner refuses a code from a
            // profile someone talks with: so one with contacts (but the
            // owner) is refused before anything changes.
            None if self.contacts().iter().any(|c| c.public != owner.public) => {
                return Err(ProfileError::Mailbox(
                    "this profile has contacts: a mailbox is a profile of its own (make a new profile on the mailbox device, and run this there)".into(),
                ));
            }
            None => {}
        }
        let record = self.add_or_find(owner, &owner.name, Added::Person, now, rng)?;
        self.set_meta_sealed(meta::MAILBOX_OF, ROLE_MAILBOX_OF, &owner.public.sign, rng)?;
        Ok(record)
    }

    /// Pairs the mailbox whose invite this is: it becomes a contact
    /// ([`MAILBOX_NAME`]), every contact is told of it, and it is told of
    /// them. Returns the contact and the records written (for live
    /// sessions).
    pub fn pair_mailbox(
        &self,
        code: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(ContactRecord, Vec<(GroupId, Key)>), ProfileError> {
        let (invite, proof) = decode_mailbox_code(code).map_err(ProfileError::MailboxCode)?;
        if !strand_sync::check_mailbox_proof(&invite.public, &self.identity().public(), &proof) {
            return Err(ProfileError::Mailbox(
                "this mailbox was paired to someone else (run `strand mailbox init` on it with your invite code)".into(),
            ));
        }
        let mailbox = &invite;
        if self.mailbox_of()?.is_some() {
            return Err(ProfileError::Mailbox(
                "this profile is a mailbox: it cannot have one".into(),
            ));
        }
        if let Some(old) = self.mailbox()? {
            if old.public != mailbox.public {
                return Err(ProfileError::Mailbox(
                    "a mailbox is paired already (one per profile)".into(),
                ));
            }
        }
        let record = self.add_or_find(mailbox, MAILBOX_NAME, Added::OwnMailbox, now, rng)?;
        // A contact's own device is not a mailbox: pairing it would send
        // it every contact's keys and tell every contact it is yours.
        if !record.mailbox {
            return Err(ProfileError::Mailbox(format!(
                "this code is from your contact {}, not from a mailbox device: a mailbox is a device of your own, made with `strand mailbox init`",
                crate::display::one_line(&record.name)
            )));
        }
        // Nor is a mailbox a contact named, though marked a mailbox too:
        // whoever holds its keys (that contact, say) can make its code for
        // the user, and pairing it would send them every contact's keys
        // and tell every contact it is yours. Known by the row that says
        // whose it is; the user's own has none.
        let id = self.contact_id(&record.public.sign);
        if let Some(owner) = self.mailbox_owner_of(&id)? {
            let whose = self
                .book()
                .records
                .iter()
                .find(|r| r.public.sign == owner)
                .map_or_else(
                    || "a contact".to_owned(),
                    |o| format!("your contact {}", crate::display::one_line(&o.name)),
                );
            return Err(ProfileError::Mailbox(format!(
                "this code is from {}, the mailbox {whose} named, not from a mailbox device of your own: a mailbox is a device of your own, made with `strand mailbox init`",
                crate::display::one_line(&record.name)
            )));
        }
        self.set_meta_sealed(
            meta::MAILBOX,
            ROLE_MAILBOX,
            &[&proof[..], &mailbox.to_bytes()].concat(),
            rng,
        )?;
        let written = self.tell_mailbox(None, now, rng)?;
        Ok((record, written))
    }

    /// Adds the contact whose invite this is under `name`, or finds them
    /// if they are a contact already (pairing again is no error).
    fn add_or_find(
        &self,
        invite: &Invite,
        name: &str,
        added: Added<'_>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<ContactRecord, ProfileError> {
        match self.add_contact_as(invite, name, added, now, rng) {
            Err(ProfileError::DuplicateContact(existing)) => self
                .book()
                .records
                .iter()
                .find(|r| r.public == invite.public)
                .cloned()
                .ok_or(ProfileError::DuplicateContact(existing)),
            Err(ProfileError::NameTaken(_)) => Err(ProfileError::Mailbox(format!(
                "a contact is already named {name:?}: rename it first"
            ))),
            other => other,
        }
    }

    /// With a mailbox paired: tells contact `only` (or every contact) of
    /// it, and tells it of every contact. Nothing without a mailbox.
    pub fn tell_mailbox(
        &self,
        only: Option<&PublicIdentity>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        self.tell_mailbox_to(only.map_or(Whom::All, Whom::One), now, rng)
    }

    /// [`Profile::tell_mailbox`] for the contacts added since that are
    /// still to be told of the mailbox ([`Tell::Mailbox`]), in the
    /// transaction that takes their rows away (see
    /// [`crate::profile::telling`]): each is told once, and the mailbox
    /// gets the new list if anyone was. Without a mailbox, their rows go
    /// with nothing written (pairing one tells every contact).
    pub(crate) fn tell_mailbox_new(
        &self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        self.tell_mailbox_to(Whom::New, now, rng)
    }

    fn tell_mailbox_to(
        &self,
        whom: Whom<'_>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<(GroupId, Key)>, ProfileError> {
        let pairing = self.mailbox_pairing()?;
        let new: std::collections::HashSet<[u8; 32]> = match whom {
            Whom::New => self
                .to_tell(Tell::Mailbox)?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            Whom::All | Whom::One(_) => Default::default(),
        };
        let once = matches!(whom, Whom::New);
        let Some((mailbox, proof)) = pairing else {
            if new.is_empty() {
                return Ok(Vec::new());
            }
            return self.write_txn(move |txn| {
                for id in &new {
                    told_in(txn, id, Tell::Mailbox).map_err(db_error)?;
                }
                Ok(Vec::new())
            });
        };
        // The mailbox itself was told everything when it was paired.
        if matches!(whom, Whom::One(o) if *o == mailbox.public) {
            return Ok(Vec::new());
        }
        // The list read, timed and written with no deletion or addition
        // in between (one that read the list before a deletion and wrote
        // after it would put the contact back at the mailbox).
        let _one_at_a_time = self.inner.adding.lock().expect("adding lock");
        let book = self.book();
        let identity = self.identity();
        let body = encode_mailbox(Some((&mailbox, &proof)));
        // Each contact told, by keyed id, with what they are told (the
        // mailbox itself: nothing; its row goes).
        let mut told = Vec::new();
        let mut mailbox_contact = None;
        for c in &book.sync {
            let id = self.contact_id(&c.public.sign);
            let due = match whom {
                Whom::All => true,
                Whom::One(o) => *o == c.public,
                Whom::New => new.contains(&id),
            };
            if c.public == mailbox.public {
                mailbox_contact = Some(c);
                if due {
                    told.push((id, None));
                }
            } else if due {
                let group = c.direct_group();
                let msg = Message::create(&identity, group, now, Kind::MAILBOX, &body, rng)
                    .map_err(ProfileError::Message)?;
                told.push((id, Some((group.id, msg))));
            }
        }
        let someone = told.iter().any(|(_, m)| m.is_some());
        let list = match mailbox_contact {
            Some(c) if someone || !once => Some(self.mailbox_list(&book, c, None, now, rng)?),
            _ => None,
        };
        if told.is_empty() && list.is_none() {
            return Ok(Vec::new());
        }
        let me = identity.public().sign;
        self.write_txn(move |txn| {
            let mut messages = Vec::new();
            let mut someone = false;
            for (id, message) in told {
                // Told once: one another run told meanwhile, or one
                // deleted since, gets nothing more.
                if told_in(txn, &id, Tell::Mailbox).map_err(db_error)? || !once {
                    if let Some(m) = message {
                        someone = true;
                        messages.push(m);
                    }
                }
            }
            if someone || !once {
                messages.extend(list);
            }
            insert_written(txn, me, now, &messages).map_err(db_error)
        })
    }

    /// The list of contacts for this user's mailbox `mailbox` (a
    /// [`Kind::MAILBOX_CONTACTS`] record in its 1:1 conversation): every
    /// contact in `book` but the mailbox and `leaving`. The mailbox takes
    /// the newest list it has as the whole of whom it carries for, so a
    /// list is written later than the last one (a millisecond later if
    /// the clock says otherwise).
    pub(crate) fn mailbox_list(
        &self,
        book: &crate::profile::Book,
        mailbox: &Contact,
        leaving: Option<&PublicIdentity>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(GroupId, Message), ProfileError> {
        let identity = self.identity();
        let others: Vec<PublicIdentity> = book
            .sync
            .iter()
            .map(|c| c.public)
            .filter(|p| *p != mailbox.public && Some(p) != leaving)
            .collect();
        let last = self
            .newest_by(mailbox, Kind::MAILBOX_CONTACTS, &identity.public().sign)?
            .map(|k| k.time);
        let at = last.map_or(now, |t| now.max(t.saturating_add(1)));
        let group = mailbox.direct_group();
        let body = encode_mailbox_contacts(&others);
        let msg = Message::create(&identity, group, at, Kind::MAILBOX_CONTACTS, &body, rng)
            .map_err(ProfileError::Message)?;
        Ok((group.id, msg))
    }

    /// The signing keys of the contacts whose mailbox is a contact here.
    pub(crate) fn contacts_with_a_mailbox(&self) -> Result<Vec<[u8; 32]>, ProfileError> {
        use redb::ReadableDatabase;
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let meta = txn
            .open_table(crate::profile::schema::META)
            .map_err(db_error)?;
        let mut owners = Vec::new();
        for entry in meta.range(MAILBOX_FOR..MAILBOX_FOR_END).map_err(db_error)? {
            let (_, v) = entry.map_err(db_error)?;
            let owner = crate::profile::crypto::open(self.root(), ROLE_MAILBOX_FOR, v.value())
                .and_then(|b| <[u8; 32]>::try_from(&b[..]).ok())
                .ok_or_else(|| ProfileError::Corrupt("whose mailbox a contact is".into()))?;
            owners.push(owner);
        }
        Ok(owners)
    }

    /// Whose mailbox the contact with keyed id `mailbox` is: the owner's
    /// signing key, if a row says so.
    pub(crate) fn mailbox_owner_of(
        &self,
        mailbox: &[u8; 32],
    ) -> Result<Option<[u8; 32]>, ProfileError> {
        let Some(owner) = self.meta_sealed(&mailbox_for_key(mailbox), ROLE_MAILBOX_FOR)? else {
            return Ok(None);
        };
        <[u8; 32]>::try_from(&owner[..])
            .map(Some)
            .map_err(|_| ProfileError::Corrupt("whose mailbox a contact is".into()))
    }

    /// The mailbox records `contact` wrote in their 1:1 conversation, oldest
    /// first: each one's key, and the mailbox it names (`None` for a record
    /// that names none or does not read).
    pub(crate) fn mailboxes_named(
        &self,
        contact: &Contact,
    ) -> Result<Vec<(Key, Option<Invite>)>, ProfileError> {
        let group = contact.direct_group();
        Ok(self
            .records_by(contact, Kind::MAILBOX, &contact.public.sign)?
            .into_iter()
            .map(|(key, msg)| {
                let invite = msg
                    .open(group)
                    .ok()
                    .and_then(|body| decode_mailbox(&body, &contact.public).ok().flatten())
                    .map(|(invite, _)| invite);
                (key, invite)
            })
            .collect())
    }

    /// The messages of `kind` that `author` wrote in the 1:1 conversation
    /// with `contact`, oldest first, with their keys.
    fn records_by(
        &self,
        contact: &Contact,
        kind: Kind,
        author: &[u8; 32],
    ) -> Result<Vec<(Key, Message)>, ProfileError> {
        let (view, group) = (self.read_view()?, &contact.direct_group().id);
        let mut found = Vec::new();
        for key in keys_of(&view, group, kind)? {
            if let Some(msg) = message_by(&view, group, &key, author)? {
                found.push((key, msg));
            }
        }
        Ok(found)
    }

    /// The key of the newest message of `kind` that `author` wrote in the
    /// 1:1 conversation with `contact` (read from the newest back: a
    /// mailbox's lists are many, and each up to 256 KiB).
    pub(crate) fn newest_by(
        &self,
        contact: &Contact,
        kind: Kind,
        author: &[u8; 32],
    ) -> Result<Option<Key>, ProfileError> {
        let (view, group) = (self.read_view()?, &contact.direct_group().id);
        for key in keys_of(&view, group, kind)?.into_iter().rev() {
            if message_by(&view, group, &key, author)?.is_some() {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// Once per profile: gives each contact's mailbox added by a Strand
    /// from before `mailbox-for/` rows were kept the row that says whose
    /// it is, found by the record that named it (which only that contact
    /// could have written: the mailbox's proof names them). One not found
    /// is left to be known by its name, as before.
    pub(crate) fn find_mailbox_owners(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        use redb::ReadableDatabase;
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let meta = match txn.open_table(crate::profile::schema::META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(db_error(e)),
        };
        if meta.get(MAILBOX_FOR_DONE).map_err(db_error)?.is_some() {
            return Ok(());
        }
        let mut rows = std::collections::HashSet::new();
        for entry in meta.range(MAILBOX_FOR..MAILBOX_FOR_END).map_err(db_error)? {
            let (k, _) = entry.map_err(db_error)?;
            rows.insert(k.value().to_owned());
        }
        drop((meta, txn));
        let own = self.mailbox()?.map(|m| m.public);
        let book = self.book();
        let legacy: Vec<&ContactRecord> = book
            .records
            .iter()
            .filter(|r| r.mailbox && Some(r.public) != own)
            .filter(|r| !rows.contains(&mailbox_for_key(&self.contact_id(&r.public.sign))))
            .collect();
        // Each legacy mailbox, with every contact whose record names it.
        let mut owners: Vec<Vec<&ContactRecord>> = vec![Vec::new(); legacy.len()];
        if !legacy.is_empty() {
            for (record, contact) in book.records.iter().zip(&book.sync) {
                if record.mailbox {
                    continue;
                }
                for (_, invite) in self.mailboxes_named(contact)? {
                    let Some(invite) = invite else { continue };
                    if let Some(i) = legacy.iter().position(|m| m.public == invite.public) {
                        if !owners[i].contains(&record) {
                            owners[i].push(record);
                        }
                    }
                }
            }
        }
        // A mailbox that proved itself to two contacts (a hostile one can)
        // goes to the one it is named after, as the older Strand added
        // it; if neither, to no one (known by name as before).
        let mut found = Vec::new();
        for (m, named_by) in legacy.iter().zip(&owners) {
            let owner = match named_by[..] {
                [one] => Some(one),
                _ => named_by
                    .iter()
                    .copied()
                    .find(|o| fit_names(&o.name, "'s mailbox").contains(&m.name)),
            };
            if let Some(owner) = owner {
                let id = self.contact_id(&m.public.sign);
                found.push(self.sealed_mailbox_for(&id, &owner.public, rng));
            }
        }
        let n = found.len();
        self.write_txn(move |txn| {
            let mut meta = txn
                .open_table(crate::profile::schema::META)
                .map_err(db_error)?;
            for (key, sealed) in &found {
                meta.insert(key.as_str(), &sealed[..]).map_err(db_error)?;
            }
            meta.insert(MAILBOX_FOR_DONE, &[1u8][..])
                .map_err(db_error)?;
            Ok(())
        })?;
        if n > 0 {
            tracing::info!("found whose {n} mailbox(es) added by an older Strand are");
        }
        Ok(())
    }

    /// The META row that says the contact `mailbox` (by keyed id) is
    /// `owner`'s mailbox.
    pub(crate) fn sealed_mailbox_for(
        &self,
        mailbox: &[u8; 32],
        owner: &PublicIdentity,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (String, Vec<u8>) {
        (
            mailbox_for_key(mailbox),
            crate::profile::crypto::seal(self.root(), ROLE_MAILBOX_FOR, &owner.sign, rng),
        )
    }
}

/// The keys of the messages of `kind` in `group`, as `view` has them,
/// oldest first.
fn keys_of(view: &ReadView, group: &GroupId, kind: Kind) -> Result<Vec<Key>, ProfileError> {
    use std::ops::ControlFlow;
    use strand_sync::{KeyRange, Store};
    let mut keys = Vec::new();
    view.scan(group, &KeyRange::ALL, &mut |k| {
        keys.push(*k);
        ControlFlow::Continue(())
    })
    .map_err(db_error)?;
    let mut of_kind = Vec::with_capacity(keys.len());
    for key in keys {
        if view.kind(group, &key).map_err(db_error)? == Some(kind) {
            of_kind.push(key);
        }
    }
    Ok(of_kind)
}

/// The message at `key` in `group`, as `view` has it, if `author` wrote
/// it.
fn message_by(
    view: &ReadView,
    group: &GroupId,
    key: &Key,
    author: &[u8; 32],
) -> Result<Option<Message>, ProfileError> {
    use strand_sync::Store;
    let Some(bytes) = view.get(group, key).map_err(db_error)? else {
        return Ok(None);
    };
    Ok(Message::decode(bytes)
        .ok()
        .filter(|m| m.author() == *author))
}

/// `base` followed by `suffix`, `base` cut (between characters as they
/// show: an emoji whole or not at all) so that the whole fits a contact
/// name. `base` may be a name stored under older rules (one a name may no
/// longer hold: a variation selector that selects nothing, a braille
/// blank first): what a new name may not hold is left out, so the whole is
/// a name.
pub(crate) fn fit_name(base: &str, suffix: &str) -> String {
    // Until nothing changes: a character left out may leave one next to
    // another it no longer selects (a filler, then a selector).
    let mut shown = base.to_owned();
    loop {
        let next = crate::display::visible(&shown)
            .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{2800}')
            .to_owned();
        if next == shown {
            break;
        }
        shown = next;
    }
    fitted(&shown, suffix)
}

/// The names [`fit_name`] gives `base` and `suffix`: as it makes it now,
/// and as Strand made it before it left out what a new name may not hold
/// (a name given then is still known by it). Often the same name twice.
pub(crate) fn fit_names(base: &str, suffix: &str) -> [String; 2] {
    [fit_name(base, suffix), fitted(base, suffix)]
}

/// `base`, cut to fit, followed by `suffix`.
fn fitted(base: &str, suffix: &str) -> String {
    let room = strand_sync::limits::MAX_NAME_LEN.saturating_sub(suffix.len());
    format!("{}{suffix}", crate::profile::cut(base, room))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes away the `mailbox-for/` row of the contact `mailbox` and the
    /// pass's mark, as a Strand from before the rows left a profile.
    fn left_by_an_older_strand(p: &Profile, mailbox: &PublicIdentity) {
        let id = p.contact_id(&mailbox.sign);
        p.write_txn(move |txn| {
            let mut meta = txn
                .open_table(crate::profile::schema::META)
                .map_err(db_error)?;
            meta.remove(mailbox_for_key(&id).as_str())
                .map_err(db_error)?;
            meta.remove(MAILBOX_FOR_DONE).map_err(db_error)?;
            Ok(())
        })
        .unwrap();
    }

    /// At a mailbox, only the owner's newest list counts, whatever order
    /// the lists arrive in: an older one arriving late adds no one (nor
    /// deletes anyone), and a newer one deletes whom it does not list.
    /// Before, every list only added: Dave came in from the older list,
    /// and Carol stayed when a later one left her out.
    #[test]
    fn a_mailbox_follows_its_owners_newest_list() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let now = crate::profile::now();
        let (p, bob, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let settings = crate::profile::carried::CarrySettings::default();
        p.become_mailbox(&bob.invite(), &settings, now, rng)
            .unwrap();
        let carol = strand_sync::Identity::generate("Carol", rng).unwrap();
        let dave = strand_sync::Identity::generate("Dave", rng).unwrap();
        let list = |at: Time, who: &[&strand_sync::Identity], rng: &mut _| {
            let publics: Vec<PublicIdentity> = who.iter().map(|i| i.public()).collect();
            let body = encode_mailbox_contacts(&publics);
            let msg =
                Message::create(&bob, &group, at, Kind::MAILBOX_CONTACTS, &body, rng).unwrap();
            let mut store = p.store().unwrap();
            strand_sync::WriteStore::insert(&mut store, &group.id, &msg).unwrap();
            store.commit().unwrap();
            p.take_mailbox_record(&group.id, &msg.key(), now, rng)
                .unwrap()
        };
        let keys = |p: &Profile| -> Vec<[u8; 32]> {
            let mut k: Vec<_> = p.contacts().iter().map(|c| c.public.sign).collect();
            k.sort();
            k
        };
        let sorted = |mut k: Vec<[u8; 32]>| {
            k.sort();
            k
        };

        // Someone added here by hand is no list's to delete.
        let erin = strand_sync::Identity::generate("Erin", rng).unwrap();
        p.add_contact(&erin.invite(), "Erin", now, rng).unwrap();
        let taken = list(now + 2, &[&carol], rng);
        assert_eq!(taken.added.len(), 1);
        let (b, c, d, e) = (
            bob.public().sign,
            carol.public().sign,
            dave.public().sign,
            erin.public().sign,
        );
        assert_eq!(keys(&p), sorted(vec![b, c, e]));
        // Older, and arriving later: nothing changes.
        let taken = list(now + 1, &[&carol, &dave], rng);
        assert!(
            taken.added.is_empty() && taken.deleted.is_empty(),
            "{taken:?}"
        );
        assert_eq!(keys(&p), sorted(vec![b, c, e]));
        // Newer, without Carol: she goes, with her conversation's rows.
        let carol_group = p.contact(&taken_name(&p, &c)).unwrap();
        let carol_group = p.sync_contact(&carol_group).unwrap().direct_group().id;
        let taken = list(now + 3, &[&dave], rng);
        assert_eq!(taken.deleted.len(), 1);
        assert_eq!(taken.deleted[0].contact.public, carol.public());
        assert_eq!(taken.deleted[0].groups[0], carol_group);
        assert_eq!(keys(&p), sorted(vec![b, d, e]));
        // The owner is never deleted, listed or not; nor is Erin.
        list(now + 4, &[], rng);
        assert_eq!(keys(&p), sorted(vec![b, e]));
    }

    /// The name of the contact with signing key `sign`.
    fn taken_name(p: &Profile, sign: &[u8; 32]) -> String {
        p.contacts()
            .into_iter()
            .find(|c| c.public.sign == *sign)
            .unwrap()
            .name
    }

    /// A contact's mailbox added by a Strand from before `mailbox-for/`
    /// rows were kept (no row, no mark) gets its row at the next start,
    /// from the record that named it, so one mailbox per contact holds by
    /// key for it too. Before, it was known by its name only, and a rename
    /// let the contact name one more.
    #[test]
    fn a_mailbox_from_an_older_strand_is_found_by_its_record() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        let rng = &mut crate::profile::os_rng();
        let now = crate::profile::now();
        let (p, bob, group) = crate::profile::alice_with_bob(&dir);
        let device = strand_sync::Identity::generate("device", rng).unwrap();
        let proof = mailbox_proof(&device, &bob.public());
        let body = encode_mailbox(Some((&device.invite(), &proof)));
        let msg = Message::create(&bob, &group, now, Kind::MAILBOX, &body, rng).unwrap();
        let mut store = p.store().unwrap();
        strand_sync::WriteStore::insert(&mut store, &group.id, &msg).unwrap();
        store.commit().unwrap();
        drop(store);
        let added = p
            .take_mailbox_record(&group.id, &msg.key(), now, rng)
            .unwrap()
            .added;
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].name, "Bob's mailbox");
        assert_eq!(p.contacts_with_a_mailbox().unwrap(), [bob.public().sign]);

        // As an older Strand left it.
        left_by_an_older_strand(&p, &device.public());
        assert!(p.contacts_with_a_mailbox().unwrap().is_empty());
        drop(p);

        let p = Profile::open(&dir, "pass").unwrap();
        assert_eq!(p.contacts_with_a_mailbox().unwrap(), [bob.public().sign]);
        // Marked done: later starts do not look again.
        use redb::ReadableDatabase;
        let txn = p.db().unwrap().begin_read().unwrap();
        let meta = txn.open_table(crate::profile::schema::META).unwrap();
        assert!(meta.get(MAILBOX_FOR_DONE).unwrap().is_some());
    }

    /// A mailbox device that proved itself to two contacts (Bob and Carol
    /// both named it; a hostile device can), added by an older Strand as
    /// Bob's (he named it first): the pass gives it to Bob, whose name it
    /// bears. Before, the last contact read (Carol) got it, so Bob could
    /// name another and Carol none.
    #[test]
    fn an_older_mailbox_named_by_two_goes_to_the_one_it_is_named_after() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        let rng = &mut crate::profile::os_rng();
        let now = crate::profile::now();
        let (p, bob, bob_group) = crate::profile::alice_with_bob(&dir);
        let carol = strand_sync::Identity::generate("Carol", rng).unwrap();
        p.add_contact(&carol.invite(), "Carol", now, rng).unwrap();
        let carol_group = carol
            .contact(&p.identity().public())
            .unwrap()
            .direct_group()
            .clone();
        let device = strand_sync::Identity::generate("device", rng).unwrap();
        let mut keys = Vec::new();
        for (who, group, at) in [(&bob, &bob_group, now), (&carol, &carol_group, now + 1)] {
            let proof = mailbox_proof(&device, &who.public());
            let body = encode_mailbox(Some((&device.invite(), &proof)));
            let msg = Message::create(who, group, at, Kind::MAILBOX, &body, rng).unwrap();
            let mut store = p.store().unwrap();
            strand_sync::WriteStore::insert(&mut store, &group.id, &msg).unwrap();
            store.commit().unwrap();
            keys.push((group.id, msg.key()));
        }
        for (group, key) in &keys {
            p.take_mailbox_record(group, key, now, rng).unwrap();
        }
        let boxes: Vec<String> = p
            .contacts()
            .into_iter()
            .filter(|c| c.mailbox)
            .map(|c| c.name)
            .collect();
        assert_eq!(boxes, ["Bob's mailbox"]);
        left_by_an_older_strand(&p, &device.public());
        drop(p);
        let p = Profile::open(&dir, "pass").unwrap();
        assert_eq!(p.contacts_with_a_mailbox().unwrap(), [bob.public().sign]);
    }

    /// A mailbox paired by an older Strand under the names of then (its
    /// invite, stored in the pairing row, ends in a braille blank) still
    /// reads: contacts are added, told of it and deleted, and the profile
    /// opens. Before, the stored invite was read under today's rules, the
    /// pairing did "not read", and every deletion failed.
    #[test]
    fn a_mailbox_paired_under_older_name_rules_still_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        let rng = &mut crate::profile::os_rng();
        let now = crate::profile::now();
        let (p, _bob, _) = crate::profile::alice_with_bob(&dir);
        let device = strand_sync::Identity::generate("Box", rng).unwrap();
        let proof = mailbox_proof(&device, &p.identity().public());
        let code = encode_mailbox_code(&device.invite(), &proof);
        p.pair_mailbox(&code, now, rng).unwrap();
        // The pairing row as an older Strand wrote it: the device named
        // "Box" and a braille blank, which today's rules refuse.
        let old = "Box\u{2800}";
        assert!(strand_sync::check_name(old).is_err());
        let named =
            strand_sync::Identity::from_secret_bytes(&device.to_secret_bytes(), old).unwrap();
        p.set_meta_sealed(
            meta::MAILBOX,
            ROLE_MAILBOX,
            &[&proof[..], &named.invite().to_bytes()].concat(),
            rng,
        )
        .unwrap();

        let mailbox = p.mailbox().unwrap().expect("a mailbox");
        assert_eq!(mailbox.name, old);
        assert_eq!(mailbox.public, device.public());
        let carol = strand_sync::Identity::generate("Carol", rng).unwrap();
        p.add_contact(&carol.invite(), "Carol", now, rng).unwrap();
        let told = p.tell_mailbox(Some(&carol.public()), now, rng).unwrap();
        assert_eq!(told.len(), 2, "Carol of the mailbox, the mailbox of Carol");
        let deleted = p.delete_contact("Carol", now + 1, rng).unwrap();
        assert_eq!(deleted.contact.public, carol.public());
        assert_eq!(deleted.told.len(), 1, "the mailbox is told");
        assert!(p.contacts().iter().all(|c| c.name != "Carol"));
        drop(p);

        let p = Profile::open(&dir, "pass").unwrap();
        assert_eq!(
            p.mailbox().unwrap().map(|m| m.public),
            Some(device.public())
        );
        // Paired again, from its code under a name today's rules take.
        p.pair_mailbox(&code, now, rng).unwrap();
        assert_eq!(p.mailbox().unwrap().unwrap().name, "Box");
    }

    /// A long name that ends in an emoji sequence makes a name that
    /// passes the naming rules wherever it is cut: cut inside 👨‍👩‍👧 or a
    /// flag, it would end in a joiner or a tag, which are refused there.
    #[test]
    fn a_name_made_from_a_long_one_is_a_valid_name() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let wales = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}";
        for tail in [family, wales] {
            for n in 0..64 {
                let base = format!("{}{tail}", "a".repeat(n));
                for suffix in ["'s mailbox", "'s contact 0123456789abcdef"] {
                    let name = fit_name(&base, suffix);
                    assert_eq!(strand_sync::check_name(&name), Ok(()), "{name:?}");
                    assert!(name.len() <= strand_sync::limits::MAX_NAME_LEN);
                }
            }
        }
        // Names stored under older rules (an owner's, a contact's).
        for base in [
            "Ann\u{FE00}",
            "\u{2800}Ann",
            "\u{2800}",
            "Ann\u{2713}\u{FE0F}",
            "\u{FFA0}\u{FE00}x",
        ] {
            let name = fit_name(base, "'s mailbox");
            assert_eq!(strand_sync::check_name(&name), Ok(()), "{name:?}");
            assert!(name.contains("'s mailbox"));
            // Known by the name made before, too.
            let names = fit_names(base, "'s mailbox");
            assert!(names.contains(&format!("{base}'s mailbox")));
            assert!(names.contains(&name));
        }
    }
}
