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
//! was not shown: the page ends below it, and the next page starts there
//! ([`Profile::read_then_mark`]). The read mark is one position per log,
//! so the mark of a page never passes a text above the current mark that
//! the page did not show, whether among its messages or before its start
//! ([`unshown`]).
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
            let from = first_unread_key(&seen, &group.id)?;
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
    /// far as it shows and no further ([`Profile::read_then_mark`]), and
    /// where the next page starts: just above its last message. The
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
    /// one write transaction after the read ([`unshown`]). The one way
    /// [`Profile::read_page_marked`] and
    /// [`Profile::read_group_page_marked`] mark a page read; `position`
    /// says where a message of the page is shown.
    ///
    /// The page is read in a read transaction, so the writer never waits
    /// for it, and a text can be stored before it is marked. One shown
    /// among the page's messages was not in it: the page then ends below
    /// that text and is marked read no further, and the next page starts
    /// there. (If the text comes before the page's first message, the
    /// page is empty and the next starts where this one did: it is read
    /// again.) The next page always starts just above this one's last
    /// message, not at the message that followed it when it was read, so
    /// a text stored before the next page is read and shown between the
    /// two is in the next. A reader that goes from one page to the next
    /// (`strand read`, with `--follow` too, and `strand group read`) thus
    /// shows every text it marks read. One that starts past texts above
    /// the read mark, which it has not shown, moves the mark no further:
    /// they stay unread, and so does what comes after them.
    pub(crate) fn read_then_mark<M>(
        &self,
        logs: Vec<GroupId>,
        from: &Position,
        read: impl FnOnce() -> Result<ConversationPage<M>, ProfileError>,
        position: impl Fn(&M) -> Position,
    ) -> Result<ConversationPage<M>, ProfileError> {
        let mut page = read()?;
        let shown: Vec<Position> = page.messages.iter().map(&position).collect();
        if shown.is_empty() {
            return Ok(page);
        }
        let from = *from;
        let among = self.write_txn(move |txn| {
            let found = unshown(txn, &logs, from, &shown)?;
            if let Some(up_to) = found.read_to(&shown) {
                raise_read_marks_in(txn, &logs, up_to)?;
            }
            Ok(found.among)
        })?;
        if let Some(stored) = among {
            let before = page
                .messages
                .iter()
                .take_while(|&m| position(m) < stored)
                .count();
            page.messages.truncate(before);
        }
        if among.is_some() || page.next.is_some() {
            let end = page.messages.last().map(&position);
            page.next = Some(end.map_or(from, just_above));
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

/// Texts of a conversation that a page did not show, above the read
/// mark and up to the page's last message, as [`unshown`] finds them
/// when the page is marked read.
struct Unshown {
    /// A log holds a text above its read mark and below the page's start.
    before: bool,
    /// The first text from the page's start to its last message that the
    /// page did not show: one stored once the page was read (dated among
    /// its messages and above the floor then, it is shown among them).
    among: Option<Position>,
}

impl Unshown {
    /// How far the page that showed the texts at `shown` (in order) may
    /// mark its conversation read. The read mark says the user saw
    /// everything up to it, so it goes to the page's last message below
    /// the first text the page did not show, or nowhere (`None`) if that
    /// text comes first: always so for one below the page's start.
    fn read_to(&self, shown: &[Position]) -> Option<Position> {
        if self.before {
            return None;
        }
        let seen = match self.among {
            Some(u) => shown.partition_point(|a| *a < u),
            None => shown.len(),
        };
        seen.checked_sub(1).map(|i| shown[i])
    }
}

/// The texts of `logs` that a page read from `from` on, which showed the
/// texts at `shown` (in order), did not show: from just above each log's
/// read mark to the page's last message. Every text below `from` is one,
/// so the first there settles it, whoever wrote it (the user's own too:
/// the check reads one row per log, however many lie there). Reads at
/// most one row per message of the page, and two more per log.
fn unshown(
    txn: &WriteTransaction,
    logs: &[GroupId],
    from: Position,
    shown: &[Position],
) -> Result<Unshown, ProfileError> {
    let mut found = Unshown {
        before: false,
        among: None,
    };
    let Some(last) = shown.last() else {
        return Ok(found);
    };
    let table = txn.open_table(SHOWN).map_err(db_error)?;
    let seen = txn.open_table(SEEN).map_err(db_error)?;
    for id in logs {
        let start = shown_key(id, &from);
        let unread = first_unread_key(&seen, id)?;
        if unread < start {
            if let Some(entry) = table.range(unread..start).map_err(db_error)?.next() {
                entry.map_err(db_error)?;
                found.before = true;
            }
        }
        for entry in table.range(start..=shown_key(id, last)).map_err(db_error)? {
            let (k, _) = entry.map_err(db_error)?;
            let at = shown_position(&k.value());
            if shown.binary_search(&at).is_err() {
                found.among = Some(found.among.map_or(at, |u| u.min(at)));
                break;
            }
        }
    }
    Ok(found)
}

/// The first [`SHOWN`] key of `log` that its read mark ([`SEEN`]) does
/// not cover: the first above the mark, or the log's first if it has
/// none. Its unread texts start there.
pub(crate) fn first_unread_key(
    seen: &impl ReadableTable<[u8; 32], [u8; 48]>,
    log: &GroupId,
) -> Result<[u8; 80], ProfileError> {
    Ok(match seen.get(&log.0).map_err(db_error)? {
        Some(mark) => shown_key(log, &just_above(Position::from_bytes(&mark.value()))),
        None => shown_range(log).0,
    })
}

/// The first position above `at`. A page read and marked that ends at
/// `at` says the next starts there ([`Profile::read_then_mark`]), so a
/// text stored meanwhile and shown just after `at` is in the next.
fn just_above(at: Position) -> Position {
    let mut bytes = at.to_bytes();
    increment(&mut bytes);
    Position::from_bytes(&bytes)
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
    /// it, the page ends there, and the next read shows it.
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
        assert_eq!(texts(&page.messages), ["one"], "it ends below \"two\"");
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
        assert_eq!(texts(&page.messages), ["one"], "it ends below \"two\"");
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
        let next = page.next.expect("the page ends below \"two\"");
        let rest = p.read_group_page_marked("desk", &next, bound).unwrap();
        assert_eq!(texts(&rest.messages), ["two", "three"]);
        assert_eq!(unread(&p), 0);
    }

    /// The texts of a conversation with Bob as `strand read` shows them:
    /// pages of `bound` read and marked one after the other from `from`,
    /// as long as there is a next (a few pages at most here, so a page
    /// that never moves its reader on fails rather than spins).
    fn read_on(p: &Profile, from: Option<Position>, bound: PageBound) -> Vec<String> {
        let mut shown = Vec::new();
        let mut next = from;
        for _ in 0..8 {
            let Some(from) = next else {
                return shown;
            };
            let page = p.read_page_marked("Bob", &from, bound).unwrap();
            shown.extend(page.messages.iter().map(|m| m.text.clone()));
            next = page.next;
        }
        panic!("still reading after 8 pages: {shown:?}");
    }

    /// Regression (the page after one read as a text was stored among its
    /// messages marked that text read): the first page stopped its mark
    /// below the text but still held the messages after it, and said the
    /// next page started after those. The read mark is one position, and
    /// the next page marked it up to its own last message, past the text:
    /// read, and never shown (`strand read` went on to the next page, and
    /// `strand read --follow` read again from after the last message it
    /// printed). Now the first page ends below the text, and the next one
    /// starts there and shows it.
    #[test]
    fn the_page_after_a_text_stored_among_one_as_it_is_read_shows_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, direct) = alice_with_bob(&tmp.path().join("a"));
        let t = now() - 10 * MINUTE;
        receive(&p, &bob, &direct, t, "one");
        receive(&p, &bob, &direct, t + 2 * MINUTE, "three");
        receive(&p, &bob, &direct, t + 3 * MINUTE, "four");
        let bound = PageBound::messages(2);
        let first = p
            .read_then_mark(
                vec![direct.id],
                &Position::MIN,
                || {
                    let page = p.page_within(&direct, &Position::MIN, bound);
                    receive(&p, &bob, &direct, t + MINUTE, "two");
                    page
                },
                StoredMessage::position,
            )
            .unwrap();
        let mut shown: Vec<String> = first.messages.iter().map(|m| m.text.clone()).collect();
        assert_eq!(shown, ["one"]);
        assert_eq!(p.summaries().unwrap()[0].unread, 3);
        shown.extend(read_on(&p, first.next, bound));
        assert_eq!(shown, ["one", "two", "three", "four"]);
        assert_eq!(p.summaries().unwrap()[0].unread, 0);
    }

    /// A text stored as a page is read, and shown before the page's first
    /// message, leaves the page empty, and the next starts where it did:
    /// read again, it shows the text.
    #[test]
    fn a_page_a_text_stored_as_it_is_read_comes_before_is_read_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, direct) = alice_with_bob(&tmp.path().join("a"));
        let t = now() - 10 * MINUTE;
        receive(&p, &bob, &direct, t, "one");
        receive(&p, &bob, &direct, t + MINUTE, "two");
        let bound = PageBound::messages(10);
        let first = p
            .read_then_mark(
                vec![direct.id],
                &Position::MIN,
                || {
                    let page = p.page_within(&direct, &Position::MIN, bound);
                    receive(&p, &bob, &direct, t - MINUTE, "zero");
                    page
                },
                StoredMessage::position,
            )
            .unwrap();
        assert!(first.messages.is_empty(), "it ends below \"zero\"");
        assert_eq!(first.next, Some(Position::MIN), "where it started");
        assert_eq!(p.summaries().unwrap()[0].unread, 3);
        assert_eq!(read_on(&p, first.next, bound), ["zero", "one", "two"]);
        assert_eq!(p.summaries().unwrap()[0].unread, 0);
    }

    /// Regression (a text stored between two pages was passed over): a
    /// page said the next started at the message that followed it when
    /// it was read. A text stored before the next page was read, shown
    /// between the two, was in neither, and the next page marked it read.
    /// Now the next page starts just above the last message of the one
    /// before, and holds it.
    #[test]
    fn a_text_stored_between_two_pages_is_in_the_second() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, direct) = alice_with_bob(&tmp.path().join("a"));
        let t = now() - 10 * MINUTE;
        receive(&p, &bob, &direct, t, "one");
        receive(&p, &bob, &direct, t + 2 * MINUTE, "three");
        let bound = PageBound::messages(1);
        let first = p.read_page_marked("Bob", &Position::MIN, bound).unwrap();
        assert_eq!(first.messages[0].text, "one");
        receive(&p, &bob, &direct, t + MINUTE, "two");
        assert_eq!(read_on(&p, first.next, bound), ["two", "three"]);
        assert_eq!(p.summaries().unwrap()[0].unread, 0);
    }

    /// Regression (a page marked read past texts before its start): a
    /// page checked what it did not show from its start on, so a reader
    /// that started past texts above the read mark (with a cursor from
    /// before they were stored, say, or after the mark stopped below one)
    /// marked them read unseen. The read mark says the user saw
    /// everything up to it: it now moves no further, and they stay unread
    /// until a page from below them shows them.
    #[test]
    fn a_page_read_from_past_unread_texts_leaves_them_unread() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, direct) = alice_with_bob(&tmp.path().join("a"));
        let t = now() - 10 * MINUTE;
        receive(&p, &bob, &direct, t, "one");
        receive(&p, &bob, &direct, t + 2 * MINUTE, "three");
        let one = p.conversation_keys("Bob").unwrap()[0];
        p.mark_read("Bob", &one).unwrap();
        // Above the mark, and so shown at its time, before "three".
        receive(&p, &bob, &direct, t + MINUTE, "two");
        let at = p.conversation_keys("Bob").unwrap();
        assert_eq!(at.len(), 3);
        let bound = PageBound::messages(10);
        let page = p.read_page_marked("Bob", &at[2], bound).unwrap();
        assert_eq!(page.messages[0].text, "three");
        assert_eq!(
            p.summaries().unwrap()[0].unread,
            2,
            "\"two\" was not shown, and \"three\" comes after it"
        );
        assert_eq!(
            read_on(&p, Some(Position::MIN), bound),
            ["one", "two", "three"]
        );
        assert_eq!(p.summaries().unwrap()[0].unread, 0);
    }
}
