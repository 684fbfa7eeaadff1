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
//! Such a reader marks each page read as it goes
//! ([`Profile::read_page_marked`], [`Profile::read_group_page_marked`]),
//! and only as far as the page showed: the page is read in a read
//! transaction, so the writer never waits for it, and a text can be
//! stored before the page is marked. One dated among the page's messages
//! was not shown, and the mark stops below it ([`shown_as_far_as`]).
//!
//! Conversations are in the order messages are shown, not the order their
//! authors claim ([`Position`]): a message claiming to be no newer than
//! what the user read or wrote goes above that, at its arrival, counts as
//! unread, and carries when it arrived so a UI can mark the gap
//! ([`StoredMessage::skew`]).

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
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
        self.page_within(&self.direct_group(contact)?, from, bound)
    }

    /// A page of the conversation with `contact`, read as
    /// [`Profile::conversation_page_within`] reads it, then marked read as
    /// far as it shows and no further ([`Profile::read_then_mark`]). The
    /// contact is looked up once: if they are deleted once the page is
    /// read, nothing is marked (their conversation is gone).
    pub fn read_page_marked(
        &self,
        contact: &str,
        from: &Position,
        bound: PageBound,
    ) -> Result<ConversationPage<StoredMessage>, ProfileError> {
        let group = self.direct_group(contact)?;
        self.read_then_mark(
            vec![group.id],
            from,
            || self.page_within(&group, from, bound),
            StoredMessage::position,
        )
    }

    /// [`Profile::conversation_page_within`] of the 1:1 group `group`.
    fn page_within(
        &self,
        group: &strand_sync::Group,
        from: &Position,
        bound: PageBound,
    ) -> Result<ConversationPage<StoredMessage>, ProfileError> {
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
            let m = self.decode_stored(group, at, &v.value(), &messages, &outbox)?;
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
        self.write_txn(move |txn| raise_read_marks_in(txn, &logs, up_to))
    }

    /// Reads a page of a conversation with `read`, from `from` on, then
    /// marks `logs` read (the conversation's: a contact's log, or every
    /// epoch of a group) as far as the page showed and no further, in
    /// one write transaction after the read ([`shown_as_far_as`]): what
    /// comes after its last message stays unread, and so does a text
    /// stored once the page was read and shown among its messages. The
    /// one way [`Profile::read_page_marked`] and
    /// [`Profile::read_group_page_marked`] mark a page read; `position`
    /// says where a message of the page is shown.
    pub(crate) fn read_then_mark<M>(
        &self,
        logs: Vec<GroupId>,
        from: &Position,
        read: impl FnOnce() -> Result<ConversationPage<M>, ProfileError>,
        position: impl Fn(&M) -> Position,
    ) -> Result<ConversationPage<M>, ProfileError> {
        let page = read()?;
        let shown: Vec<Position> = page.messages.iter().map(position).collect();
        if !shown.is_empty() {
            let from = *from;
            self.write_txn(move |txn| {
                let Some(up_to) = shown_as_far_as(txn, &logs, from, &shown)? else {
                    return Ok(());
                };
                raise_read_marks_in(txn, &logs, up_to)
            })?;
        }
        Ok(page)
    }
}

/// [`Profile::raise_read_marks`], in `txn`.
fn raise_read_marks_in(
    txn: &WriteTransaction,
    logs: &[GroupId],
    up_to: Position,
) -> Result<(), ProfileError> {
    let shown = txn.open_table(SHOWN).map_err(db_error)?;
    let mut newest = None;
    for id in logs {
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
        for id in logs {
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
}

/// How far a page may mark its conversation read, once it showed the
/// messages at `shown` (in order, the first at or after `from`): to its
/// last message, unless `logs` now hold a text between `from` and there
/// that the page did not show. Such a text was stored once the page was
/// read (dated among its messages and above the floor then, it is shown
/// among them). The read mark says the user saw everything up to it, so
/// it then goes only to the page's last message before that text, or
/// nowhere (`None`) if the text comes before the first. Reads at most one
/// row per message of the page, and one more per log.
fn shown_as_far_as(
    txn: &WriteTransaction,
    logs: &[GroupId],
    from: Position,
    shown: &[Position],
) -> Result<Option<Position>, ProfileError> {
    let Some(&last) = shown.last() else {
        return Ok(None);
    };
    let table = txn.open_table(SHOWN).map_err(db_error)?;
    let mut unshown: Option<Position> = None;
    for id in logs {
        let rows = table
            .range(shown_key(id, &from)..=shown_key(id, &last))
            .map_err(db_error)?;
        for entry in rows {
            let (k, _) = entry.map_err(db_error)?;
            let at = shown_position(&k.value());
            if shown.binary_search(&at).is_err() {
                unshown = Some(unshown.map_or(at, |u| u.min(at)));
                break;
            }
        }
    }
    let seen = match unshown {
        Some(u) => shown.partition_point(|a| *a < u),
        None => shown.len(),
    };
    Ok(seen.checked_sub(1).map(|i| shown[i]))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{alice_with_bob, now, os_rng};
    use crate::{GroupAction, GroupMessage};
    use strand_sync::{Epoch, Group, Identity, WriteStore};

    const MINUTE: u64 = 60_000;

    /// Stores a text from `from` in the log `log`, dated `time`, as sync
    /// would (arriving now, in a transaction of its own).
    fn receive(p: &Profile, from: &Identity, log: &Group, time: u64, text: &str) {
        let m =
            Message::create(from, log, time, Kind::TEXT, text.as_bytes(), &mut os_rng()).unwrap();
        let mut store = p.store().unwrap();
        assert!(store.insert(&log.id, &m).unwrap());
        store.commit().unwrap();
    }

    /// Regression (a page marked read past a text it did not show): a
    /// page of `strand read` was read in one transaction and marked read
    /// up to its last message in another. A text stored in between, dated
    /// among the page's messages (and above the floor), is shown among
    /// them though the page did not hold it, and the mark made it read:
    /// never shown, and never counted unread. Now the mark stops below
    /// it, and the next read shows it.
    #[test]
    fn a_text_stored_among_a_page_as_it_is_read_stays_unread() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, direct) = alice_with_bob(&tmp.path().join("a"));
        let t = now() - 10 * MINUTE;
        receive(&p, &bob, &direct, t, "one");
        receive(&p, &bob, &direct, t + 2 * MINUTE, "three");
        let bound = PageBound::messages(10);
        let page = p
            .read_then_mark(
                vec![direct.id],
                &Position::MIN,
                || {
                    let page = p.page_within(&direct, &Position::MIN, bound);
                    // What Bob wrote between the two arrives as the page
                    // is shown.
                    receive(&p, &bob, &direct, t + MINUTE, "two");
                    page
                },
                StoredMessage::position,
            )
            .unwrap();
        let texts = |m: &[StoredMessage]| m.iter().map(|m| m.text.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&page.messages), ["one", "three"]);
        assert_eq!(
            texts(&p.conversation("Bob").unwrap()),
            ["one", "two", "three"],
            "shown between the two"
        );
        assert_eq!(
            p.summaries().unwrap()[0].unread,
            2,
            "\"two\" was not shown, and \"three\" comes after it"
        );
        let again = p.read_page_marked("Bob", &Position::MIN, bound).unwrap();
        assert_eq!(texts(&again.messages), ["one", "two", "three"]);
        assert_eq!(p.summaries().unwrap()[0].unread, 0);
    }

    /// The same in a group, whose texts are in its epochs' logs: a text
    /// stored in another epoch than the page's texts, among them, as the
    /// page is read, stays unread.
    #[test]
    fn a_group_text_stored_among_a_page_as_it_is_read_stays_unread() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut os_rng();
        let (p, bob, _) = alice_with_bob(&tmp.path().join("a"));
        let t = now() - 10 * MINUTE;
        p.create_group("desk", &["Bob".into()], t - 120 * MINUTE, rng)
            .unwrap();
        let carol = Identity::generate("Carol", rng).unwrap();
        p.add_contact(&carol.invite(), "Carol", 0, rng).unwrap();
        p.change_group(
            "desk",
            &GroupAction::Add("Carol".into()),
            t - 60 * MINUTE,
            rng,
        )
        .unwrap();
        let epochs = p.group_epochs("desk").unwrap();
        assert_eq!(epochs.len(), 2);
        let (first, head) = (&epochs[0], &epochs[1]);
        receive(&p, &bob, first.group(), t, "one");
        receive(&p, &bob, first.group(), t + 2 * MINUTE, "three");
        let unread = |p: &Profile| {
            p.groups()
                .unwrap()
                .into_iter()
                .find(|g| g.name == "desk")
                .unwrap()
                .unread
        };
        assert_eq!(unread(&p), 2);
        let chain = p.chain_named("desk").unwrap();
        let bound = PageBound::messages(10);
        let page = p
            .read_then_mark(
                chain.epochs().map(Epoch::id).collect(),
                &Position::MIN,
                || {
                    let page = p.group_page_within(&chain, &Position::MIN, bound);
                    receive(&p, &bob, head.group(), t + MINUTE, "two");
                    page
                },
                |m: &GroupMessage| m.message.position(),
            )
            .unwrap();
        let texts =
            |m: &[GroupMessage]| m.iter().map(|m| m.message.text.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&page.messages), ["one", "three"]);
        assert_eq!(
            texts(&p.group_conversation("desk").unwrap()),
            ["one", "two", "three"],
            "shown between the two"
        );
        assert_eq!(
            unread(&p),
            2,
            "\"two\" was not shown, nor \"three\" after it"
        );
        let again = p
            .read_group_page_marked("desk", &Position::MIN, bound)
            .unwrap();
        assert_eq!(texts(&again.messages), ["one", "two", "three"]);
        assert_eq!(unread(&p), 0);
    }
}
