//! Deleting a contact: their keys, the 1:1 conversation and everything
//! kept of it, as Briar does.
//!
//! What goes, in one write transaction: the contact's record; every row of
//! their 1:1 group and carrying pool in every table keyed by group
//! (`messages`, `bodies`, `records`, `outbox`, `shown`, `seen`, `floor`,
//! `timers`, `chunks`, `sending`, and `expiry`, which is keyed by time
//! first); where their invite said they can be reached (`invite-reach/`);
//! their conversation's mute (`prefs`); what they were still to be told
//! (`to-tell`);
//! if they are a mailbox, whose mailbox they are (`mailbox-for/`, so that
//! contact may name another); if they are this user's own mailbox, the
//! pairing (so another can be paired). Once that commits, which welcomes
//! written again to them the open profile remembers finding or writing
//! (their 1:1 log held them): added back, they are welcomed again.
//!
//! What stays: the private groups they are in, and what they wrote there
//! (they are still a member; the group shows the name they chose); a
//! mailbox they named (a contact of its own, deleted on its own; deleting
//! it takes the newer one they named, if any:
//! [`Profile::take_newer_mailbox`]); envelopes this device carries for
//! them, and copies of its texts to them that carriers took (sealed,
//! they leave with their time limit; a running node stops offering its
//! own at once: [`strand_sync::Carrier::forget`]); the files saved from
//! the conversation (they are the user's files now).
//!
//! The user's own mailbox, if one is paired, is written the new list of
//! contacts in the same transaction, and deletes the contact (their
//! conversation and pool there; carried envelopes stay) when it takes it.
//!
//! The contact list is published without them *before* the rows go, so a
//! session storing a batch for them (checked on the writer thread, against
//! the list as it is then) either stored it before the deletion, which
//! deletes it, or finds them gone and stores nothing
//! ([`crate::Profile::store_batch`]); a text written to them as they go
//! is checked the same way ([`crate::Profile::store_composed`]), as is a
//! mute ([`crate::Profile::change_preferences`]). Rows other own writes
//! put into their groups after reading the list before the deletion (a
//! reach record, a carrying step, a file's last transaction) are not
//! checked again, and stay until the contact is added again: the windows
//! are a write's length. A read mark is not among them: it goes no
//! further than the newest text its conversation shows, and once the
//! deletion is in there is none, so it writes nothing.

use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};
use redb::{TableDefinition, WriteTransaction};
use strand_sync::{GroupId, Key, PublicIdentity, Time};

use crate::profile::pairing::mailbox_for_key;
use crate::profile::reach::invite_reach_key;
use crate::profile::schema::{
    meta, BODIES, CHUNKS, CONTACTS, EXPIRY, FLOOR, MESSAGES, META, OUTBOX, RECORDS, SEEN, SENDING,
    SHOWN, TIMERS,
};
use crate::profile::store::insert_written;
use crate::profile::{db_error, Book, ContactRecord, Profile, ProfileError};

/// What deleting a contact removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The contact, as they were.
    pub contact: ContactRecord,
    /// Messages of the 1:1 conversation deleted (texts, files' parts,
    /// records), not counting the carrying pool's envelopes.
    pub messages: u64,
    /// Their 1:1 group and carrying pool.
    pub groups: [GroupId; 2],
    /// If they were a contact's mailbox: that contact (signing key).
    pub mailbox_of: Option<[u8; 32]>,
    /// The list of contacts written for the user's own mailbox, if one is
    /// paired (for live sessions).
    pub told: Vec<(GroupId, Key)>,
}

impl Profile {
    /// Deletes the contact called `name`, and the conversation with them
    /// (see [`crate::profile::removal`]). They are not told; a session with
    /// them ends when the node sees the new list ([`crate::Node`] does so
    /// at once), and from then on their device is a stranger's. Adding
    /// them again starts an empty conversation (what they still hold syncs
    /// back). Refused on a mailbox for its owner (a mailbox is its owner's
    /// device: wipe it instead). On any error nothing changes.
    pub fn delete_contact(
        &self,
        name: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Deleted, ProfileError> {
        self.delete_where(|r| r.name == name, name, now, rng)
    }

    /// [`Profile::delete_contact`] for the contact with these keys.
    pub(crate) fn delete_contact_keyed(
        &self,
        public: &PublicIdentity,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Deleted, ProfileError> {
        let what = crate::profile::hex(&public.sign[..8]);
        self.delete_where(|r| r.public == *public, &what, now, rng)
    }

    /// Deletes the first contact `pick` takes (`what` names them in the
    /// error if none).
    fn delete_where(
        &self,
        pick: impl Fn(&ContactRecord) -> bool,
        what: &str,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Deleted, ProfileError> {
        let _one_at_a_time = self.inner.adding.lock().expect("adding lock");
        let book = self.book();
        let Some((record, contact)) = book.records.iter().zip(&book.sync).find(|(r, _)| pick(r))
        else {
            return Err(ProfileError::UnknownContact(what.to_owned()));
        };
        if self
            .mailbox_of()?
            .is_some_and(|owner| owner.public == record.public)
        {
            return Err(ProfileError::Mailbox(format!(
                "this device is {}'s mailbox: it cannot delete its owner (wipe it with `strand wipe` instead)",
                crate::display::one_line(&record.name)
            )));
        }
        let own_mailbox = self.mailbox()?.is_some_and(|m| m.public == record.public);
        // The user's own mailbox is told whom it carries for now (it
        // deletes them too: [`Profile::take_mailbox_record`]).
        let list = match self.mailbox()? {
            Some(m) if !own_mailbox => match book.sync.iter().find(|c| c.public == m.public) {
                Some(c) => Some(self.mailbox_list(&book, c, Some(&record.public), now, rng)?),
                None => None,
            },
            _ => None,
        };
        let me = self.identity().public().sign;
        let record = record.clone();
        let groups = [contact.direct_group().id, contact.pool.id];
        let id = self.contact_id(&record.public.sign);
        let root = zeroize::Zeroizing::new(*self.root());
        let mut seal_rng = crate::profile::crypto::seeded_from(rng);
        let mailbox_of = match record.mailbox {
            true => self.mailbox_owner_of(&id)?,
            false => None,
        };

        // Gone from the list first (see the module docs); back if the
        // store refused.
        let rest: Vec<ContactRecord> = book
            .records
            .iter()
            .filter(|r| r.public != record.public)
            .cloned()
            .collect();
        *self.inner.book.write().expect("book lock") =
            Arc::new(Book::new(&self.identity(), rest, &self.chains()));
        let written = self.write_txn(move |txn| {
            // First, as the preferences are now, not as read before this
            // ran: the one step that fails otherwise than the store (they
            // may not decrypt), so it fails before anything is written (on
            // the writer thread a job's writes before its error would
            // commit with its batch).
            crate::profile::prefs::unmute_in(txn, &root, &groups[0].0, &mut seal_rng)?;
            txn.open_table(CONTACTS)
                .map_err(db_error)?
                .remove(&id)
                .map_err(db_error)?;
            let mut meta_rows = txn.open_table(META).map_err(db_error)?;
            meta_rows
                .remove(invite_reach_key(&id).as_str())
                .map_err(db_error)?;
            meta_rows
                .remove(mailbox_for_key(&id).as_str())
                .map_err(db_error)?;
            if own_mailbox {
                meta_rows.remove(meta::MAILBOX).map_err(db_error)?;
            }
            drop(meta_rows);
            crate::profile::telling::forget_in(txn, &id).map_err(db_error)?;
            let [direct, pool] = groups;
            let messages = delete_group(txn, &direct).map_err(db_error)?;
            delete_group(txn, &pool).map_err(db_error)?;
            let told = match &list {
                Some(m) => {
                    insert_written(txn, me, now, std::slice::from_ref(m)).map_err(db_error)?
                }
                None => Vec::new(),
            };
            Ok((messages, told))
        });
        match written {
            Ok((messages, told)) => {
                // Their 1:1 log went: a welcome written again to them is
                // to be looked for (and written) again if they are added
                // back.
                self.inner
                    .welcomed_again
                    .lock()
                    .expect("welcomed lock")
                    .forget(&record.public.sign);
                Ok(Deleted {
                    contact: record,
                    messages,
                    groups,
                    mailbox_of,
                    told,
                })
            }
            Err(e) => {
                *self.inner.book.write().expect("book lock") = book;
                Err(e)
            }
        }
    }
}

/// Deletes every row of `group` from every table keyed by group. Returns
/// how many messages it held.
fn delete_group(txn: &WriteTransaction, group: &GroupId) -> Result<u64, redb::Error> {
    let messages = drop_rows(txn, MESSAGES, group)?;
    drop_rows(txn, BODIES, group)?;
    drop_rows(txn, RECORDS, group)?;
    drop_rows(txn, OUTBOX, group)?;
    drop_rows(txn, SHOWN, group)?;
    drop_rows(txn, TIMERS, group)?;
    drop_rows(txn, CHUNKS, group)?;
    drop_rows(txn, SENDING, group)?;
    txn.open_table(SEEN)?.remove(&group.0)?;
    txn.open_table(FLOOR)?.remove(&group.0)?;
    // Keyed by expiry first: the group follows the 8-byte time.
    txn.open_table(EXPIRY)?
        .retain(|k, _| k[8..40] != group.0[..])?;
    Ok(messages)
}

/// Deletes the rows of `table` whose key starts with `group`. Returns how
/// many.
fn drop_rows<const N: usize, V: redb::Value + 'static>(
    txn: &WriteTransaction,
    table: TableDefinition<[u8; N], V>,
    group: &GroupId,
) -> Result<u64, redb::Error> {
    let mut lo = [0u8; N];
    lo[..32].copy_from_slice(&group.0);
    let mut hi = [0xffu8; N];
    hi[..32].copy_from_slice(&group.0);
    let mut n = 0;
    txn.open_table(table)?.retain_in(lo..=hi, |_, _| {
        n += 1;
        false
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use strand_sync::{Inbound, KeyRange, Kind, Message, Store, Verdict};

    use crate::profile::budget::{Budgets, Ledger};

    /// A session checks a batch while its contact is here and stores it
    /// after they were deleted: nothing of it is stored, so the deleted
    /// conversation does not come back in part. (Before the writer
    /// checked, the batch's texts were stored under a group no contact
    /// had, and came back if the contact was added again.)
    #[test]
    fn a_batch_for_a_contact_deleted_meanwhile_stores_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, bob, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        let texts: Vec<Message> = (0..3)
            .map(|i| Message::create(&bob, &group, now - 10 + i, Kind::TEXT, b"late", rng).unwrap())
            .collect();
        let mut batch = Inbound::new(&group, texts);
        batch.verify(now);
        assert!(batch.iter().all(|i| *i.verdict() == Verdict::Valid));

        p.delete_contact("Bob", crate::profile::now(), rng).unwrap();
        let (batch, declined) = p
            .store_batch(batch, &Ledger::default(), &Budgets::default(), now)
            .unwrap();
        assert!(declined.is_empty(), "not a budget's doing");
        assert!(
            batch
                .iter()
                .all(|i| !matches!(i.verdict(), Verdict::Stored { .. })),
            "nothing stored"
        );
        let mut rows = 0;
        p.read_view()
            .unwrap()
            .scan(&group.id, &KeyRange::ALL, &mut |_| {
                rows += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(rows, 0);

        // Added again, their messages are stored as ever.
        p.add_contact(&bob.invite(), "Bob", now, rng).unwrap();
        let text = Message::create(&bob, &group, now, Kind::TEXT, b"again", rng).unwrap();
        let mut batch = Inbound::new(&group, vec![text]);
        batch.verify(now);
        let (batch, _) = p
            .store_batch(batch, &Ledger::default(), &Budgets::default(), now)
            .unwrap();
        assert!(batch
            .iter()
            .all(|i| matches!(i.verdict(), Verdict::Stored { new: true })));
    }

    /// A deletion whose write job fails (the preferences, which it unmutes
    /// the contact in, do not decrypt) leaves everything as it was on a
    /// node's writer thread, as it does without one. Before, the job
    /// removed the contact's row first, and the writer committed that half
    /// with its batch: after reopening Bob was gone, his conversation's
    /// rows left behind.
    #[test]
    fn a_deletion_that_fails_on_the_writer_thread_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        let rng = &mut crate::profile::os_rng();
        let (p, bob, _) = crate::profile::alice_with_bob(&dir);
        p.start_writer().unwrap();
        p.write_txn(|txn| {
            txn.open_table(crate::profile::schema::META)
                .map_err(crate::profile::db_error)?
                .insert(crate::profile::schema::meta::PREFS, &[0u8; 40][..])
                .map_err(crate::profile::db_error)?;
            Ok(())
        })
        .unwrap();
        let e = p
            .delete_contact("Bob", crate::profile::now(), rng)
            .unwrap_err();
        assert!(matches!(e, crate::ProfileError::Corrupt(_)), "{e}");
        assert!(p.contact("Bob").is_ok(), "the list as it was");
        p.close();

        let p = crate::profile::Profile::open(&dir, "pass").unwrap();
        assert_eq!(p.contact("Bob").unwrap().public, bob.public());
    }

    /// A text composed for a contact who is deleted before its write job
    /// runs is not stored: it would have sat in no one's conversation and
    /// come back if they were added again. Before, the write stored it
    /// under the deleted contact's group.
    #[test]
    fn a_text_composed_as_its_contact_is_deleted_is_not_stored() {
        use crate::profile::files::Conversation;
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::profile::os_rng();
        let (p, bob, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::profile::now();
        let to = Conversation::Contact("Bob");
        let (id, msg) = p.compose(to, "still there?", now, rng).unwrap();
        assert_eq!(id, group.id);
        p.delete_contact("Bob", now, rng).unwrap();
        assert!(matches!(
            p.store_composed(to, id, msg),
            Err(crate::ProfileError::UnknownContact(_))
        ));
        p.add_contact(&bob.invite(), "Bob", now, rng).unwrap();
        assert!(p.conversation("Bob").unwrap().is_empty());
        // Written now, it is stored.
        p.write("Bob", "hello", now, rng).unwrap();
        assert_eq!(p.conversation("Bob").unwrap().len(), 1);
    }
}
