//! Read-side views for user interfaces: contact summaries with unread
//! counts, and conversations read a page at a time.
//!
//! A long conversation is never decrypted whole: [`Profile::conversation_keys`]
//! lists its positions (48 bytes each, no bodies) so a UI knows how many
//! rows it has and where each sits, and [`Profile::conversation_page`]
//! decrypts just the rows on screen. A reader that goes through the
//! conversation from one page to the next instead (`strand read`, `strand
//! group read`) uses [`Profile::conversation_page_within`] and its group
//! twin, whose page ends after so many messages or once their texts hold
//! so many bytes ([`PageBound`]), and says where the next page starts.
//!
//! Conversations are in the order messages are shown, not the order their
//! authors claim ([`Position`]): a message claiming to be no newer than
//! what the user read or wrote goes above that, at its arrival, counts as
//! unread, and carries when it arrived so a UI can mark the gap
//! ([`StoredMessage::skew`]).

use redb::{ReadableDatabase, ReadableTable};
use strand_sync::{GroupId, Kind, Message};

use crate::profile::db_error;
use crate::profile::schema::{FLOOR, MESSAGES, OUTBOX, SEEN, SHOWN};
use crate::profile::store::{shown_key, shown_position, table_key, Position, SHOWN_INCOMING};
use crate::profile::{Delivery, Profile, ProfileError, StoredMessage};

/// Unread counts stop here: a UI shows "999+", and counting a long unread
/// backlog would cost a scan of all of it.
pub const UNREAD_CAP: u32 = 999;

/// One contact for a contact list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContactSummary {
    /// The contact's name.
    pub name: String,
    /// The newest message of the conversation, either way.
    pub last: Option<StoredMessage>,
    /// Messages from them newer than the newest one the user has seen, at
    /// most [`UNREAD_CAP`].
    pub unread: u32,
}

/// Where a page of a conversation ends: after `messages` messages, or
/// after the message that brings what their texts hold (a file's name,
/// type and preview for a file) to `bytes` or more, whichever comes
/// first. A page ends by bytes only once it holds a message, so every
/// page but an empty conversation's moves its reader on. A count alone
/// bounds a page poorly where a text may be a mebibyte long: 500 of those
/// are half a gibibyte, read and decrypted at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageBound {
    /// Most messages in the page.
    pub messages: usize,
    /// What the page's texts hold (in bytes) once it ends.
    pub bytes: usize,
}

impl PageBound {
    /// At most `messages` messages, however long.
    pub fn messages(messages: usize) -> PageBound {
        PageBound {
            messages,
            bytes: usize::MAX,
        }
    }
}

/// A page of a conversation: its messages, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationPage<M> {
    /// In the order shown.
    pub messages: Vec<M>,
    /// Where the first message after the page is shown; `None` when the
    /// page ends the conversation.
    pub next: Option<Position>,
}

/// A page being read, against its [`PageBound`]: the one place that
/// decides where a page ends, for a contact's conversation and a group's.
pub(crate) struct Filling<M> {
    bound: PageBound,
    bytes: usize,
    page: ConversationPage<M>,
}

impl<M> Filling<M> {
    pub(crate) fn new(bound: PageBound) -> Filling<M> {
        Filling {
            bound,
            bytes: 0,
            page: ConversationPage {
                messages: Vec::new(),
                next: None,
            },
        }
    }

    /// Whether the message shown at `at` (the next in order) goes into
    /// the page; if not, the next page starts there, and the caller
    /// stops reading.
    pub(crate) fn has_room_for(&mut self, at: Position) -> bool {
        let held = self.page.messages.len();
        let full = held >= self.bound.messages || (held > 0 && self.bytes >= self.bound.bytes);
        if full {
            self.page.next = Some(at);
        }
        !full
    }

    /// Puts a message in, which holds `bytes` ([`held_bytes`]).
    pub(crate) fn push(&mut self, bytes: usize, message: M) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.page.messages.push(message);
    }

    pub(crate) fn done(self) -> ConversationPage<M> {
        self.page
    }
}

/// What a message holds that a page counts against its
/// [`PageBound::bytes`]: its text, or a file's name, type and preview.
/// The rest is a few fixed fields, which the count of messages bounds.
pub(crate) fn held_bytes(m: &StoredMessage) -> usize {
    let file = m.file.as_ref().map_or(0, |f| {
        f.name.len() + f.mime.len() + f.preview.as_ref().map_or(0, Vec::len)
    });
    m.text.len() + file
}

impl Profile {
    /// The 1:1 group with `contact`.
    pub fn direct_group(&self, contact: &str) -> Result<strand_sync::Group, ProfileError> {
        let record = self.contact(contact)?;
        Ok(self.sync_contact(&record)?.direct_group().clone())
    }

    /// The text at `at` in `group`, from its [`SHOWN`] entry.
    pub(crate) fn decode_stored(
        &self,
        group: &strand_sync::Group,
        at: Position,
        shown_value: &[u8; 9],
        messages: &impl ReadableTable<[u8; 72], &'static [u8]>,
        outbox: &impl ReadableTable<[u8; 72], u8>,
    ) -> Result<StoredMessage, ProfileError> {
        let table_key = table_key(&group.id, &at.key);
        let bytes = messages
            .get(&table_key)
            .map_err(db_error)?
            .ok_or_else(|| ProfileError::Corrupt("a listed message is missing".into()))?;
        let msg = Message::decode(bytes.value().to_vec()).map_err(ProfileError::StoredMessage)?;
        let outgoing = msg.author() == self.identity().public().sign;
        let text = if msg.kind() == Kind::TEXT {
            String::from_utf8_lossy(&msg.open(group).unwrap_or_default()).into_owned()
        } else {
            String::new()
        };
        let file = if msg.kind() == Kind::FILE {
            self.file_info(group, &msg)
        } else {
            None
        };
        let delivery = if outgoing {
            Some(
                outbox
                    .get(&table_key)
                    .map_err(db_error)?
                    .map_or(Delivery::Queued, |s| Delivery::from_u8(s.value())),
            )
        } else {
            None
        };
        let received = u64::from_be_bytes(shown_value[..8].try_into().expect("8 bytes"));
        Ok(StoredMessage {
            key: at.key,
            shown: at.shown,
            received: (received != 0).then_some(received),
            outgoing,
            text,
            delivery,
            expires: msg.expires(),
            file,
        })
    }

    /// Every contact, by name, with the newest message and the unread
    /// count. Costs one lookup per contact plus the unread messages (at
    /// most [`UNREAD_CAP`] each), however long the conversations are.
    pub fn summaries(&self) -> Result<Vec<ContactSummary>, ProfileError> {
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let messages = txn.open_table(MESSAGES).map_err(db_error)?;
        let shown = txn.open_table(SHOWN).map_err(db_error)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_error)?;
        let seen = txn.open_table(SEEN).map_err(db_error)?;
        let book = self.book();
        let mut out = Vec::with_capacity(book.records.len());
        for (record, contact) in book.records.iter().zip(&book.sync) {
            let group = contact.direct_group().clone();
            let (lo, hi) = shown_range(&group.id);
            let last = match shown.range(lo..=hi).map_err(db_error)?.next_back() {
                Some(entry) => {
                    let (k, v) = entry.map_err(db_error)?;
                    let at = shown_position(&k.value());
                    Some(self.decode_stored(&group, at, &v.value(), &messages, &outbox)?)
                }
                None => None,
            };
            let from = match seen.get(&group.id.0).map_err(db_error)? {
                // Strictly after the mark: the smallest key above it.
                Some(mark) => {
                    let mut k = shown_key(&group.id, &Position::from_bytes(&mark.value()));
                    increment(&mut k[32..]);
                    k
                }
                None => lo,
            };
            let mut unread = 0;
            if from <= hi {
                for entry in shown.range(from..=hi).map_err(db_error)? {
                    let (_, v) = entry.map_err(db_error)?;
                    if v.value()[8] & SHOWN_INCOMING != 0 {
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

    /// Where each text of the conversation with `contact` is shown, first
    /// to last: 48 bytes per message, no bodies read or decrypted.
    pub fn conversation_keys(&self, contact: &str) -> Result<Vec<Position>, ProfileError> {
        let group = self.direct_group(contact)?;
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let shown = txn.open_table(SHOWN).map_err(db_error)?;
        let (lo, hi) = shown_range(&group.id);
        let mut out = Vec::new();
        for entry in shown.range(lo..=hi).map_err(db_error)? {
            let (k, _) = entry.map_err(db_error)?;
            out.push(shown_position(&k.value()));
        }
        Ok(out)
    }

    /// At most `limit` messages of the conversation with `contact`, from
    /// `from` (inclusive) on, in the order they are shown, decrypted.
    pub fn conversation_page(
        &self,
        contact: &str,
        from: &Position,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, ProfileError> {
        Ok(self
            .conversation_page_within(contact, from, PageBound::messages(limit))?
            .messages)
    }

    /// The messages of the conversation with `contact` from `from`
    /// (inclusive) on, in the order they are shown, decrypted, until the
    /// page is full ([`PageBound`]), and where the next page starts: only
    /// those are read, whatever the conversation's length.
    pub fn conversation_page_within(
        &self,
        contact: &str,
        from: &Position,
        bound: PageBound,
    ) -> Result<ConversationPage<StoredMessage>, ProfileError> {
        let group = self.direct_group(contact)?;
        let txn = self.db()?.begin_read().map_err(db_error)?;
        let messages = txn.open_table(MESSAGES).map_err(db_error)?;
        let shown = txn.open_table(SHOWN).map_err(db_error)?;
        let outbox = txn.open_table(OUTBOX).map_err(db_error)?;
        let (_, hi) = shown_range(&group.id);
        let lo = shown_key(&group.id, from);
        let mut page = Filling::new(bound);
        for entry in shown.range(lo..=hi).map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            let at = shown_position(&k.value());
            if !page.has_room_for(at) {
                break;
            }
            let m = self.decode_stored(&group, at, &v.value(), &messages, &outbox)?;
            page.push(held_bytes(&m), m);
        }
        Ok(page.done())
    }

    /// Records that the user has seen the conversation with `contact` up
    /// to `up_to`, and raises its floor there (see [`Position`]). Never
    /// moves either back.
    pub fn mark_read(&self, contact: &str, up_to: &Position) -> Result<(), ProfileError> {
        let group: GroupId = self.direct_group(contact)?.id;
        self.raise_read_marks(vec![group], *up_to)
    }

    /// Raises the read mark and the floor of each of `logs` to `up_to`,
    /// in one transaction; never moves either back. A contact's log, or
    /// every epoch of a group. Never past the newest text they show: a
    /// position made up (a request on the control socket names any) would
    /// raise the floor for good, and every text after it would be late,
    /// shown at that made-up time.
    pub(crate) fn raise_read_marks(
        &self,
        logs: Vec<GroupId>,
        up_to: Position,
    ) -> Result<(), ProfileError> {
        self.write_txn(move |txn| {
            let shown = txn.open_table(SHOWN).map_err(db_error)?;
            let mut newest = None;
            for id in &logs {
                let (lo, hi) = shown_range(id);
                if let Some(last) = shown.range(lo..=hi).map_err(db_error)?.next_back() {
                    let (k, _) = last.map_err(db_error)?;
                    newest = newest.max(Some(shown_position(&k.value())));
                }
            }
            drop(shown);
            let Some(up_to) = newest.map(|n| n.min(up_to)) else {
                return Ok(());
            };
            for table in [SEEN, FLOOR] {
                let mut t = txn.open_table(table).map_err(db_error)?;
                for id in &logs {
                    let current = t
                        .get(&id.0)
                        .map_err(db_error)?
                        .map(|v| Position::from_bytes(&v.value()));
                    if current.is_none_or(|c| c < up_to) {
                        t.insert(&id.0, up_to.to_bytes()).map_err(db_error)?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// The first and last possible [`SHOWN`] keys of `group` (inclusive).
pub(crate) fn shown_range(group: &GroupId) -> ([u8; 80], [u8; 80]) {
    let lo = shown_key(group, &Position::MIN);
    let mut hi = [0xffu8; 80];
    hi[..32].copy_from_slice(&group.0);
    (lo, hi)
}

/// Whether a stored message is one conversations show (a text; records
/// such as [`Kind::REACH`] are not), read from its header.
pub(crate) fn shown(encoded: &[u8]) -> bool {
    encoded.get(73) == Some(&Kind::TEXT.0) || encoded.get(73) == Some(&Kind::FILE.0)
}

/// Adds one to a big-endian number (saturating at all ones).
pub(crate) fn increment(bytes: &mut [u8]) {
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
