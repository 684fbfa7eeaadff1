//! Read-side views for user interfaces: contact summaries with unread
//! counts, and conversations read a page at a time.
//!
//! A long conversation is never decrypted whole: [`Profile::conversation_keys`]
//! lists its keys (40 bytes each, no bodies) so a UI knows how many rows
//! it has and where each sits, and [`Profile::conversation_page`] decrypts
//! just the rows on screen.

use redb::{ReadableDatabase, ReadableTable};
use strand_sync::{GroupId, Key, Kind, Message, MessageId};

use crate::profile::db_error;
use crate::schema::{MESSAGES, OUTBOX, READ};
use crate::store::{sync_key, table_key};
use crate::{Delivery, Profile, ProfileError, StoredMessage};

/// Unread counts stop here: a UI shows "999+", and counting a long unread
/// backlog would cost a scan of all of it.
pub const UNREAD_CAP: u32 = 999;

/// One contact for a contact list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSummary {
    /// The contact's name.
    pub name: String,
    /// The newest message of the conversation, either way.
    pub last: Option<StoredMessage>,
    /// Messages from them newer than the newest one the user has seen, at
    /// most [`UNREAD_CAP`].
    pub unread: u32,
}

fn read_mark_bytes(key: &Key) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&key.time.to_be_bytes());
    out[8..].copy_from_slice(&key.id.0);
    out
}

fn read_mark_key(bytes: &[u8; 40]) -> Key {
    Key {
        time: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
        id: MessageId(bytes[8..].try_into().expect("32 bytes")),
    }
}

impl Profile {
    /// The 1:1 group with `contact`.
    pub(crate) fn direct_group(&self, contact: &str) -> Result<strand_sync::Group, ProfileError> {
        let record = self.contact(contact)?;
        Ok(self.sync_contact(&record)?.direct_group().clone())
    }

    fn decode_stored(
        &self,
        group: &strand_sync::Group,
        table_key: &[u8; 72],
        bytes: &[u8],
        outbox: &impl ReadableTable<[u8; 72], u8>,
    ) -> Result<StoredMessage, ProfileError> {
        let msg =
            Message::decode(bytes.to_vec()).map_err(|e| ProfileError::Corrupt(e.to_string()))?;
        let outgoing = msg.author() == self.identity().public().sign;
        let text = if msg.kind() == Kind::TEXT {
            String::from_utf8_lossy(&msg.open(group).unwrap_or_default()).into_owned()
        } else {
            String::new()
        };
        let delivery = if outgoing {
            Some(
                outbox
                    .get(table_key)
                    .map_err(db_error)?
                    .map_or(Delivery::Queued, |s| Delivery::from_u8(s.value())),
            )
        } else {
            None
        };
        Ok(StoredMessage {
            key: sync_key(table_key),
            outgoing,
            text,
            delivery,
        })
    }

    /// Every contact, by name, with the newest message and the unread
    /// count. Costs one lookup per contact plus the unread messages (at
    /// most [`UNREAD_CAP`] each), however long the conversations are.
    pub fn summaries(&self) -> Result<Vec<ContactSummary>, ProfileError> {
        let me = self.identity().public().sign;
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let messages = txn.open_table(MESSAGES).map_err(db_error)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_error)?;
        let read = txn.open_table(READ).map_err(db_error)?;
        let book = self.book();
        let mut out = Vec::with_capacity(book.records.len());
        for (record, contact) in book.records.iter().zip(&book.sync) {
            let group = contact.direct_group().clone();
            let lo = table_key(&group.id, &Key::MIN);
            let hi = table_key(&group.id, &Key::MAX);
            let mut last = None;
            for entry in messages.range(lo..hi).map_err(db_error)?.rev() {
                let (k, v) = entry.map_err(db_error)?;
                if shown(v.value()) {
                    last = Some(self.decode_stored(&group, &k.value(), v.value(), &outbox)?);
                    break;
                }
            }
            let seen = read
                .get(&group.id.0)
                .map_err(db_error)?
                .map(|v| read_mark_key(&v.value()));
            let from = match seen {
                // Strictly after the mark: the smallest key above it.
                Some(k) => {
                    let mut t = table_key(&group.id, &k);
                    increment(&mut t[32..]);
                    t
                }
                None => lo,
            };
            let mut unread = 0;
            if from < hi {
                for entry in messages.range(from..hi).map_err(db_error)? {
                    let (_, v) = entry.map_err(db_error)?;
                    let msg = Message::decode(v.value().to_vec())
                        .map_err(|e| ProfileError::Corrupt(e.to_string()))?;
                    if msg.author() != me && msg.kind() == Kind::TEXT {
                        unread += 1;
                        if unread == UNREAD_CAP {
                            break;
                        }
                    }
                }
            }
            out.push(ContactSummary {
                name: record.name.clone(),
                last,
                unread,
            });
        }
        Ok(out)
    }

    /// The keys of the conversation with `contact`, oldest first: 40 bytes
    /// per message, no bodies read or decrypted.
    pub fn conversation_keys(&self, contact: &str) -> Result<Vec<Key>, ProfileError> {
        let group = self.direct_group(contact)?;
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let messages = txn.open_table(MESSAGES).map_err(db_error)?;
        let lo = table_key(&group.id, &Key::MIN);
        let hi = table_key(&group.id, &Key::MAX);
        let mut out = Vec::new();
        for entry in messages.range(lo..hi).map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            if shown(v.value()) {
                out.push(sync_key(&k.value()));
            }
        }
        Ok(out)
    }

    /// At most `limit` messages of the conversation with `contact`, from
    /// `from` (inclusive) on, oldest first, decrypted.
    pub fn conversation_page(
        &self,
        contact: &str,
        from: &Key,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, ProfileError> {
        let group = self.direct_group(contact)?;
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let messages = txn.open_table(MESSAGES).map_err(db_error)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_error)?;
        let lo = table_key(&group.id, from);
        let hi = table_key(&group.id, &Key::MAX);
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in messages.range(lo..hi).map_err(db_error)? {
            if out.len() == limit {
                break;
            }
            let (k, v) = entry.map_err(db_error)?;
            if shown(v.value()) {
                out.push(self.decode_stored(&group, &k.value(), v.value(), &outbox)?);
            }
        }
        Ok(out)
    }

    /// Records that the user has seen the conversation with `contact` up
    /// to `up_to`. Never moves the mark back.
    pub fn mark_read(&self, contact: &str, up_to: &Key) -> Result<(), ProfileError> {
        let group: GroupId = self.direct_group(contact)?.id;
        let up_to = *up_to;
        self.write_txn(move |txn| {
            let mut read = txn.open_table(READ).map_err(db_error)?;
            let current = read
                .get(&group.0)
                .map_err(db_error)?
                .map(|v| read_mark_key(&v.value()));
            if current.is_some_and(|c| c >= up_to) {
                return Ok(());
            }
            read.insert(&group.0, read_mark_bytes(&up_to))
                .map_err(db_error)?;
            Ok(())
        })
    }
}

/// Whether a stored message is one conversations show (a text; records
/// such as [`Kind::REACH`] are not), read from its header.
pub(crate) fn shown(encoded: &[u8]) -> bool {
    encoded.get(73) == Some(&Kind::TEXT.0)
}

/// Adds one to a big-endian number (saturating at all ones).
fn increment(bytes: &mut [u8]) {
    for b in bytes.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return;
        }
    }
    bytes.fill(0xff);
}
