//! What a contact just added is told: the reach record this user last
//! published ([`crate::profile::reach`]), this user's mailbox (and the
//! mailbox the new list of contacts: [`crate::profile::pairing`]), and
//! that this user carries, if so (a carrying step of the node).
//!
//! Each is a row of [`TO_TELL`] written in the transaction that adds the
//! contact and taken away in the transaction that tells it, and a job
//! that finds its row gone writes nothing: each is told once, and a stop
//! or a failure between the add and the telling leaves the row, told at
//! the node's next start or after the next contact it adds. Deleting a
//! contact takes their rows with them.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use crate::profile::schema::TO_TELL;
use crate::profile::{db_error, ContactRecord, Profile, ProfileError};

/// What a new contact is still to be told: one row each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tell {
    /// The reach record last published
    /// ([`Profile::reach_new_contacts`]).
    Reach = 0,
    /// This user's mailbox, and the mailbox of them
    /// ([`Profile::tell_mailbox_new`]).
    Mailbox = 1,
    /// That this user carries ([`crate::Node`]'s carrying step).
    Carrying = 2,
}

impl Tell {
    const ALL: [Tell; 3] = [Tell::Reach, Tell::Mailbox, Tell::Carrying];
}

/// The row that says `tell` is still to be told to the contact `id`
/// (their keyed id, [`Profile::contact_id`]).
fn row(id: &[u8; 32], tell: Tell) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[..32].copy_from_slice(id);
    k[32] = tell as u8;
    k
}

/// The contact `id` is added in `txn`: everything is still to be told.
pub(crate) fn to_tell_in(txn: &WriteTransaction, id: &[u8; 32]) -> Result<(), redb::Error> {
    let mut t = txn.open_table(TO_TELL)?;
    for tell in Tell::ALL {
        t.insert(row(id, tell), ())?;
    }
    Ok(())
}

/// Takes away the row of `tell` for the contact `id` in `txn`: whether
/// it was there (if not, someone else told them, or they were deleted,
/// and nothing is to be written).
pub(crate) fn told_in(
    txn: &WriteTransaction,
    id: &[u8; 32],
    tell: Tell,
) -> Result<bool, redb::Error> {
    let mut t = txn.open_table(TO_TELL)?;
    let was = t.remove(row(id, tell))?.is_some();
    Ok(was)
}

/// The contact `id` is deleted in `txn`: their rows go with them.
pub(crate) fn forget_in(txn: &WriteTransaction, id: &[u8; 32]) -> Result<(), redb::Error> {
    let mut t = txn.open_table(TO_TELL)?;
    for tell in Tell::ALL {
        t.remove(row(id, tell))?;
    }
    Ok(())
}

impl Profile {
    /// The contacts still to be told `tell`, with their keyed ids. A row
    /// whose contact is not in the published list (added a moment ago,
    /// not yet published) waits for the next time.
    pub(crate) fn to_tell(
        &self,
        tell: Tell,
    ) -> Result<Vec<([u8; 32], ContactRecord)>, ProfileError> {
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let table = match txn.open_table(TO_TELL) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_error(e)),
        };
        let mut ids = std::collections::HashSet::new();
        for entry in table.iter().map_err(db_error)? {
            let (k, _) = entry.map_err(db_error)?;
            let k = k.value();
            if k[32] == tell as u8 {
                ids.insert(<[u8; 32]>::try_from(&k[..32]).expect("32 bytes"));
            }
        }
        drop((table, txn));
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .book()
            .records
            .iter()
            .map(|r| (self.contact_id(&r.public.sign), r))
            .filter(|(id, _)| ids.contains(id))
            .map(|(id, r)| (id, r.clone()))
            .collect())
    }
}
