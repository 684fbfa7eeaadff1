//! What a device answers to: every command of the `strand` CLI and the
//! desktop app is one [`Request`], answered by one [`Reply`] or a
//! [`Failure`], the same whether the device is a running node reached
//! over its control socket or a node started for the command
//! ([`crate::runtime::device::Device`]). Typed both ways: serde enums,
//! one JSON object per line on the socket.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::{hex, GroupAction};

/// A conversation: with a contact, or a private group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Target {
    /// The 1:1 conversation with the contact of this name.
    Contact(String),
    /// The group of this name (or key, or id prefix).
    Group(String),
}

impl Target {
    /// The contact's or group's name.
    pub fn name(&self) -> &str {
        match self {
            Target::Contact(n) | Target::Group(n) => n,
        }
    }

    /// As the profile takes it.
    pub fn conversation(&self) -> crate::Conversation<'_> {
        match self {
            Target::Contact(n) => crate::Conversation::Contact(n),
            Target::Group(n) => crate::Conversation::Group(n),
        }
    }
}

/// A disappearing-message timer to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerSetting {
    /// Messages stay.
    Off,
    /// Messages written from now on disappear after this many ms (5
    /// minutes to 366 days: [`crate::parse_timer`] reads what people
    /// write).
    Lasts(u64),
}

impl TimerSetting {
    /// `off`, or such as `5m`, `1h`, `1d`, `1w`, `1y`.
    pub fn parse(text: &str) -> Result<TimerSetting, String> {
        Ok(match crate::parse_timer(text)? {
            None => TimerSetting::Off,
            Some(ms) => TimerSetting::Lasts(ms),
        })
    }
}

/// What a mailbox command does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum MailboxAction {
    /// Make this profile the mailbox of the owner whose invite this is.
    Init {
        /// The owner's invite code.
        code: String,
    },
    /// Pair the mailbox whose code this is.
    Add {
        /// The mailbox's code.
        code: String,
    },
}

/// A request to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// This profile's invite code.
    Invite,
    /// Add a contact from their invite code.
    Add {
        /// Invite code.
        code: String,
        /// The name to give them.
        name: String,
    },
    /// The contacts.
    Contacts,
    /// A contact's safety number; with `verified`, mark them verified or
    /// not first.
    Verify {
        /// Contact name.
        contact: String,
        /// `Some(true)`: the user compared the numbers and they match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verified: Option<bool>,
    },
    /// Write a text.
    Send {
        /// Where.
        to: Target,
        /// The text.
        text: String,
    },
    /// Send a file.
    SendFile {
        /// Where.
        to: Target,
        /// The file, as the device's process sees it (absolute).
        path: PathBuf,
        /// Report progress as [`crate::NodeEvent::Progress`] events with
        /// this task number (the caller's choice).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<u64>,
    },
    /// Put together a received file and write it into a folder.
    Save {
        /// The file message's id (at least 8 hex digits).
        id: String,
        /// The folder (absolute).
        dir: PathBuf,
        /// Report progress as [`crate::NodeEvent::Progress`] events with
        /// this task number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<u64>,
    },
    /// Write a bundle for a removable drive: everything shared with a
    /// contact, sealed for them, into a new file.
    Export {
        /// Contact name.
        contact: String,
        /// The new file (absolute).
        to: PathBuf,
        /// Report progress (messages) as [`crate::NodeEvent::Progress`]
        /// events with this task number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<u64>,
    },
    /// Take in a bundle a contact made for this user.
    Import {
        /// The bundle (absolute).
        path: PathBuf,
        /// Report progress (bytes read) as [`crate::NodeEvent::Progress`]
        /// events with this task number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<u64>,
    },
    /// One page of the conversation with a contact, in the order shown (see
    /// [`crate::Position`]): at most `limit` messages (default and most
    /// [`READ_PAGE`]), fewer once their texts hold [`READ_PAGE_BYTES`],
    /// from `from` on (the `next` of the previous page; the start if
    /// absent). It is marked read up to its last message, and no further.
    /// A text stored among its messages once it was read ends it below
    /// that text (it may then be empty, its `next` its `from`: ask again),
    /// and the next page starts just above its last message, so that one
    /// holds a text stored in between: a client that goes from one page to
    /// the next shows every text it marks read. The mark does not pass a text
    /// above it and before `from` either, which the page did not show
    /// ([`crate::Profile::read_page_marked`]).
    Read {
        /// Contact name.
        contact: String,
        /// Where the page starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Cursor>,
        /// Most messages in the page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// A conversation's disappearing-message timer; with `set`, set it
    /// first.
    Timer {
        /// Which conversation.
        of: Target,
        /// The new timer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set: Option<TimerSetting>,
    },
    /// Every private group.
    Groups,
    /// Create a private group with these contacts.
    GroupCreate {
        /// Its name.
        name: String,
        /// Contact names.
        with: Vec<String>,
    },
    /// A group's members.
    GroupMembers {
        /// Group name (or key, or id prefix).
        group: String,
    },
    /// Change a group.
    GroupChange {
        /// Group name (or key, or id prefix).
        group: String,
        /// What to do.
        action: GroupAction,
    },
    /// One page of a group's conversation, as [`Request::Read`] pages a
    /// contact's: at most `limit` texts (default and most [`READ_PAGE`]),
    /// fewer once they hold [`READ_PAGE_BYTES`], from `from` on (the
    /// start if absent), marked read up to the last of them and no
    /// further, as a contact's page is. A group crosses the socket a page
    /// at a time, as a contact's conversation does, never whole in one
    /// line.
    GroupRead {
        /// Group name (or key, or id prefix).
        group: String,
        /// Where the page starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Cursor>,
        /// Most texts in the page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// Carrying for contacts: with `set`, start or stop first.
    Carry {
        /// On or off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set: Option<bool>,
    },
    /// The mailbox pairing; with an action, make or pair one first.
    Mailbox {
        /// What to do first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<MailboxAction>,
    },
    /// The device's status.
    Status,
    /// The relays and the reservations on them.
    Relays,
    /// Add a relay to the profile.
    RelayAdd {
        /// Its multiaddr, ending in `/p2p/<relay id>`.
        address: String,
    },
    /// Remove a relay from the profile.
    RelayRemove {
        /// Its multiaddr.
        address: String,
    },
    /// Every contact with their newest message and unread count (the
    /// app's contact list).
    Summaries,
    /// Every group with its newest text and unread count (the app's group
    /// list).
    GroupSummaries,
    /// Where every message of a conversation is shown, first to last (no
    /// bodies read): the app pages through them.
    Positions {
        /// Which conversation.
        of: Target,
    },
    /// At most `limit` messages of a conversation from `from` on
    /// (inclusive), in the order shown. A `limit` over [`MAX_PAGE`] is
    /// refused ([`check_page`]).
    Page {
        /// Which conversation.
        of: Target,
        /// Where the page starts.
        from: crate::Position,
        /// Most messages: at most [`MAX_PAGE`].
        limit: usize,
    },
    /// Marks a conversation read up to `up_to` (never back).
    MarkRead {
        /// Which conversation.
        of: Target,
        /// The newest message read.
        up_to: crate::Position,
    },
    /// Gives a contact another name (the user's own word for them; they
    /// are not told).
    RenameContact {
        /// Their name now.
        contact: String,
        /// The new one.
        name: String,
    },
    /// Deletes a contact and the conversation with them (they are not
    /// told).
    DeleteContact {
        /// Their name.
        contact: String,
    },
    /// Changes the user's display name (and tells the groups).
    Rename {
        /// The new name.
        name: String,
    },
    /// Changes the passphrase that unlocks the profile. A new passphrase
    /// weaker than [`crate::strength::MIN_SCORE`] is refused unless
    /// `allow_weak`.
    ChangePassphrase {
        /// The passphrase that unlocks it now.
        current: Secret,
        /// The new one.
        new: Secret,
        /// Take a weak new passphrase anyway (scripts).
        #[serde(default)]
        allow_weak: bool,
    },
    /// The user's preferences (notifications, running in the
    /// background), after making the changes in `set` (all or none).
    Preferences {
        /// The changes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        set: Vec<crate::profile::prefs::PreferenceChange>,
    },
    /// Dials this address now and again while no link to it is up, until
    /// the node stops ([`crate::Node::add_peer`]): asked again for an
    /// address already dialled, it changes nothing; past
    /// [`MAX_PEERS`](crate::limits::MAX_PEERS) addresses it is refused,
    /// and an address none of the node's transports dials is refused as
    /// bad input ([`crate::AddPeerError`]).
    AddPeer {
        /// A multiaddr.
        address: String,
    },
    /// Stream the device's events ([`crate::NodeEvent`] lines after the
    /// reply): a running node only.
    Follow,
    /// Stop the running node (it replies first): `strand wipe` uses it.
    Shutdown,
}

impl Request {
    /// The file or folder the user named in this request, if it names
    /// one: the node holds it to [`check_path`] before doing anything.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Request::SendFile { path, .. } | Request::Import { path, .. } => Some(path.as_path()),
            Request::Save { dir, .. } => Some(dir.as_path()),
            Request::Export { to, .. } => Some(to.as_path()),
            _ => None,
        }
    }
}

/// What a group change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupOutcome {
    /// The change was made (a new epoch).
    Changed,
    /// The user left.
    Left,
    /// The user, not an admin, asked to leave: an admin removes them.
    AskedToLeave,
}

/// A device's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// [`Request::Invite`].
    Invite {
        /// The code.
        code: String,
    },
    /// [`Request::Add`].
    Added {
        /// The new contact.
        contact: ContactView,
    },
    /// [`Request::RenameContact`].
    Renamed {
        /// The contact, under the new name.
        contact: ContactView,
    },
    /// [`Request::DeleteContact`].
    DeletedContact {
        /// Their name.
        name: String,
        /// Messages deleted with them.
        messages: u64,
    },
    /// [`Request::Contacts`].
    Contacts {
        /// Every contact, by name.
        contacts: Vec<ContactView>,
    },
    /// [`Request::Verify`].
    Safety(SafetyView),
    /// [`Request::Send`] and [`Request::SendFile`]: written here, queued
    /// until a session with each recipient takes it.
    Written {
        /// Message id, hex.
        id: String,
        /// Its time.
        time: u64,
    },
    /// [`Request::Save`].
    Saved {
        /// Where the file is now.
        path: PathBuf,
    },
    /// [`Request::Export`].
    Exported(crate::Exported),
    /// [`Request::Import`].
    Imported(crate::Imported),
    /// [`Request::Read`].
    Page(ReadPage),
    /// [`Request::Timer`].
    Timer(TimerView),
    /// [`Request::Groups`].
    Groups {
        /// Every group, by name.
        groups: Vec<GroupView>,
    },
    /// [`Request::GroupCreate`].
    GroupCreated {
        /// Its name.
        name: String,
        /// Its key ([`crate::group_key`]).
        #[serde(default)]
        key: String,
    },
    /// [`Request::GroupMembers`].
    Members {
        /// Members of its newest epoch this device knows.
        members: Vec<crate::GroupMember>,
    },
    /// [`Request::GroupChange`].
    GroupChanged {
        /// What it did.
        outcome: GroupOutcome,
    },
    /// [`Request::GroupRead`]: a page of a group's conversation.
    GroupMessages {
        /// Oldest first.
        messages: Vec<GroupMessageView>,
        /// Where the next page starts (just above this one's last
        /// message, see [`Request::Read`]); `None` after the last.
        #[serde(default)]
        next: Option<Cursor>,
    },
    /// [`Request::Carry`].
    Carry(crate::CarryStatus),
    /// [`Request::Mailbox`].
    Mailbox(MailboxView),
    /// [`Request::Status`].
    Status(Box<crate::Status>),
    /// [`Request::Preferences`].
    Preferences(crate::profile::prefs::Preferences),
    /// [`Request::Relays`].
    Relays {
        /// The profile's and contacts' relays.
        relays: Vec<crate::RelayStatus>,
    },
    /// [`Request::RelayAdd`] and [`Request::RelayRemove`].
    Relay {
        /// The relay, written as the profile keeps it.
        address: String,
    },
    /// [`Request::Summaries`].
    Summaries {
        /// Every contact.
        contacts: Vec<crate::ContactSummary>,
    },
    /// [`Request::GroupSummaries`].
    GroupSummaries {
        /// Every group, by name.
        groups: Vec<crate::GroupSummary>,
    },
    /// [`Request::Positions`].
    Positions {
        /// First to last.
        positions: Vec<crate::Position>,
    },
    /// [`Request::Page`] of a contact's conversation.
    Stored {
        /// In the order shown.
        messages: Vec<crate::StoredMessage>,
    },
    /// [`Request::Page`] of a group's conversation.
    GroupPage {
        /// In the order shown, with their authors.
        messages: Vec<crate::GroupMessage>,
    },
    /// [`Request::Follow`]: events follow, one per line.
    Following,
    /// [`Request::Shutdown`].
    Done,
}

/// Why a request failed: the device changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What kind of failure (the CLI's exit code follows it).
    pub kind: FailureKind,
    /// What went wrong, and why, for people.
    pub message: String,
}

/// What kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The request asked for something that cannot be: a value out of
    /// range, a name that is not there, a code that does not decode.
    BadInput,
    /// The request was understood and refused (not an admin, a mailbox).
    Refused,
    /// Something failed on the device (the disk, the network).
    Failed,
    /// A node running on the profile did not answer in time (stopped with
    /// Ctrl-Z, or stuck), and the client gave up waiting, as it does only
    /// where that is safe
    /// ([`may_give_up_on`](super::control::may_give_up_on)). Said by a
    /// client ([`Device::call`](super::device::Device::call),
    /// [`Device::follow`](super::device::Device::follow)), never by a
    /// node: what a later request of the same kind would get too, until
    /// the node answers again.
    Unanswered,
}

impl Failure {
    /// A bad value in the request.
    pub fn bad_input(message: impl std::fmt::Display) -> Failure {
        Failure {
            kind: FailureKind::BadInput,
            message: message.to_string(),
        }
    }

    /// Refused.
    pub fn refused(message: impl std::fmt::Display) -> Failure {
        Failure {
            kind: FailureKind::Refused,
            message: message.to_string(),
        }
    }

    /// Failed on the device.
    pub fn failed(message: impl std::fmt::Display) -> Failure {
        Failure {
            kind: FailureKind::Failed,
            message: message.to_string(),
        }
    }

    /// Not answered in time by the node running on the profile
    /// ([`FailureKind::Unanswered`]).
    pub fn unanswered(message: impl std::fmt::Display) -> Failure {
        Failure {
            kind: FailureKind::Unanswered,
            message: message.to_string(),
        }
    }
}

impl From<crate::ProfileError> for Failure {
    fn from(e: crate::ProfileError) -> Failure {
        use crate::ProfileError as E;
        let kind = match &e {
            E::UnknownContact(_)
            | E::UnknownGroup(_)
            | E::UnknownMember { .. }
            | E::Name(_)
            | E::Invite(_)
            | E::Key(_)
            | E::DuplicateContact(_)
            | E::NameTaken(_)
            | E::KeyConflict(_)
            | E::KeyOfMailbox { .. }
            | E::Timer(_)
            | E::Relay(_)
            | E::RelayAddress { .. }
            | E::RelayList(_)
            | E::UnsendableName(_)
            | E::MailboxCode(_)
            | E::BundleUnreadable(_)
            | E::NoSuchFile(_)
            | E::Membership(
                strand_sync::GroupError::Name(_)
                | strand_sync::GroupError::TooMany
                | strand_sync::GroupError::NoEffect(_),
            ) => FailureKind::BadInput,
            E::Group(_)
            | E::OwnName(_)
            | E::Unwritable { .. }
            | E::Membership(_)
            | E::Mailbox(_)
            | E::File(_)
            | E::Bundle(_) => FailureKind::Refused,
            _ => FailureKind::Failed,
        };
        Failure {
            kind,
            message: crate::chain(&e),
        }
    }
}

/// What a text to send must be: not empty or only white space, and not
/// longer than a message's body ([`check_text_length`]). The node checks
/// it for [`Request::Send`]; `strand send` and the app check it before
/// asking, as a text many times too long would not fit the control
/// socket's request.
pub fn check_text(text: &str) -> Result<(), Failure> {
    if text.trim().is_empty() {
        return Err(Failure::bad_input(
            "nothing to send: the message is empty or only white space",
        ));
    }
    check_text_length(text.len())
}

/// What a path in a request ([`Request::path`]) must be: absolute, and
/// UTF-8. The node runs in a folder of its own (the service's is the
/// user's home), not the one the user named a relative path from, so such
/// a path would read or write where they did not mean: an empty folder for
/// an export put the bundle in the node's folder. The CLI and the app make
/// the paths people give absolute before asking. A path that is not UTF-8
/// cannot cross the control socket
/// ([`utf8_path`](super::commands::utf8_path)), so it is refused by every
/// device alike: before, a node in the app's own process took it, and the
/// same request to a running node made the app panic.
pub fn check_path(path: &Path) -> Result<(), Failure> {
    if path.as_os_str().is_empty() {
        return Err(Failure::bad_input(
            "no file or folder given: the path is empty",
        ));
    }
    if !path.is_absolute() {
        return Err(Failure::bad_input(format!(
            "{}: use a full path (from /): the device cannot tell which folder a relative one starts from",
            path.display()
        )));
    }
    super::commands::utf8_path(path)
}

/// What a [`Request::Page`]'s `limit` must be: at most [`MAX_PAGE`]. A
/// request for more is refused rather than cut short, as the reply has no
/// word to say it was (a page shorter than asked reads as the end of the
/// conversation); the caller asks for the next page from where this one
/// ends.
pub fn check_page(limit: usize) -> Result<(), Failure> {
    if limit > MAX_PAGE {
        return Err(Failure::bad_input(format!(
            "a page holds at most {MAX_PAGE} messages, not {limit}: ask for the next page from where one ends"
        )));
    }
    Ok(())
}

/// A text of `len` bytes fits a message's body
/// ([`strand_sync::limits::MAX_BODY_LEN`]; a timer takes 8 bytes of it,
/// which the node says when it writes).
pub fn check_text_length(len: usize) -> Result<(), Failure> {
    let max = strand_sync::limits::MAX_BODY_LEN;
    if len > max {
        return Err(Failure::bad_input(format!(
            "the message is longer than one holds ({max} bytes, 1 MiB): send a longer text as a file instead"
        )));
    }
    Ok(())
}

/// A passphrase in a request: never printed (its `Debug` says nothing of
/// it), wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The passphrase.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// One line of a device's answer on the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// It worked.
    Ok(Reply),
    /// It did not, and nothing changed unless the message says what did
    /// (a passphrase change the disk failed half way: the new one holds).
    Error(Failure),
}

impl From<Result<Reply, Failure>> for Answer {
    fn from(r: Result<Reply, Failure>) -> Answer {
        match r {
            Ok(reply) => Answer::Ok(reply),
            Err(e) => Answer::Error(e),
        }
    }
}

impl From<Answer> for Result<Reply, Failure> {
    fn from(a: Answer) -> Self {
        match a {
            Answer::Ok(reply) => Ok(reply),
            Answer::Error(e) => Err(e),
        }
    }
}

/// A conversation's timer as a device reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerView {
    /// How long messages last, ms (0: they stay).
    pub ms: u64,
    /// The same for people: `off`, `1 hour`, `4 weeks`.
    pub label: String,
}

/// A message as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageView {
    /// The author's timestamp, ms since the Unix epoch.
    pub time: u64,
    /// When it is shown (its place in the conversation): `time` (a
    /// contact's: or when it arrived, if dated ahead of that), unless it
    /// claimed to be no newer than what the user had read or written, and
    /// then when it arrived.
    #[serde(default)]
    pub shown: u64,
    /// When this device stored it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    /// Message id, hex.
    pub id: String,
    /// Who wrote it: "me" or the contact's name.
    pub from: String,
    /// The text.
    pub text: String,
    /// Outgoing messages: queued, sent or delivered.
    pub delivery: Option<String>,
    /// When it disappears (ms since the Unix epoch), if written under a
    /// timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// For a file: what it is and how much of it is here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileView>,
}

/// A file message as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileView {
    /// Its name, as its sender gave it.
    pub name: String,
    /// Its media type, or empty.
    pub mime: String,
    /// Bytes.
    pub size: u64,
    /// Parts held here.
    pub have: usize,
    /// Parts in all.
    pub total: usize,
}

impl FileView {
    pub(crate) fn of(f: &crate::FileInfo) -> Self {
        FileView {
            name: f.name.clone(),
            mime: f.mime.clone(),
            size: f.size,
            have: f.have,
            total: f.total,
        }
    }
}

/// Most messages in one page of [`Request::Read`] and
/// [`Request::GroupRead`]: a long conversation crosses the socket a page
/// at a time, so neither side holds it whole.
pub const READ_PAGE: usize = 500;

/// What the texts of one page of [`Request::Read`] or
/// [`Request::GroupRead`] hold at most, give or take its last message
/// ([`crate::PageBound`]): a text may be a mebibyte
/// ([`strand_sync::limits::MAX_BODY_LEN`]), so [`READ_PAGE`] of them
/// would be half a gibibyte read, decrypted and written as one line. As
/// much as a request may hold; a page ends after the message that reaches
/// it, so it holds one message at least.
pub const READ_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Most messages one [`Request::Page`] may ask for: as many as a page of
/// [`Request::Read`], for the same reason. A page is read, decrypted and
/// answered whole, in one line, so a limit with no bound (`usize::MAX`)
/// would hold a whole conversation in the node's memory and on the
/// socket at once. The app asks for 50 at a time.
pub const MAX_PAGE: usize = READ_PAGE;

/// Where a page of a conversation starts: a message's place (shown at,
/// time, id in hex).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cursor {
    /// When the message is shown, ms since the Unix epoch (absent: `time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<u64>,
    /// The author's timestamp, ms since the Unix epoch.
    pub time: u64,
    /// Message id, hex.
    pub id: String,
}

impl Cursor {
    /// The cursor of the message shown at `at`.
    pub fn at(at: &crate::Position) -> Cursor {
        Cursor {
            shown: Some(at.shown),
            time: at.key.time,
            id: hex(&at.key.id.0),
        }
    }

    /// Where it points, or why it points nowhere (an id that is not hex).
    pub fn position(&self) -> Result<crate::Position, Failure> {
        let id = crate::profile::unhex(&self.id).ok_or_else(|| {
            Failure::bad_input(format!("bad cursor: {:?} is not a message id", self.id))
        })?;
        Ok(crate::Position {
            shown: self.shown.unwrap_or(self.time),
            key: strand_sync::Key {
                time: self.time,
                id: strand_sync::MessageId(id),
            },
        })
    }
}

/// A page of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadPage {
    /// Oldest first.
    pub messages: Vec<MessageView>,
    /// Where the next page starts (just above this one's last message,
    /// see [`Request::Read`]); `None` after the last.
    pub next: Option<Cursor>,
}

/// A contact as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContactView {
    /// Name.
    pub name: String,
    /// Signing key, hex.
    pub key: String,
    /// Whether the user confirmed the safety number with them.
    #[serde(default)]
    pub verified: bool,
    /// Added from a version 1 invite, which could not prove that its keys
    /// belong together: only the safety number can.
    #[serde(default)]
    pub legacy: bool,
    /// A mailbox: it carries sealed messages and reads nothing.
    #[serde(default)]
    pub mailbox: bool,
    /// Another contact (or you) whose name looks like this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookalike: Option<String>,
}

impl ContactView {
    /// The view of a contact record of `p`.
    pub fn of(p: &crate::Profile, c: &crate::ContactRecord) -> Self {
        ContactView {
            name: c.name.clone(),
            key: hex(&c.public.sign),
            verified: c.verified,
            legacy: c.legacy,
            mailbox: c.mailbox,
            lookalike: p.lookalike(&c.name),
        }
    }
}

/// A group as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupView {
    /// Name.
    pub name: String,
    /// Its id as lists show it ([`crate::GroupSummary::id`]).
    pub id: String,
    /// Its key, the whole id ([`crate::group_key`]).
    #[serde(default)]
    pub key: String,
    /// Whether its name could be taken for another group's here
    /// ([`crate::GroupSummary::alike`]): show its id beside it.
    #[serde(default)]
    pub alike: bool,
    /// Members of its newest epoch this device knows.
    pub members: usize,
    /// Still a member.
    pub member: bool,
    /// Why the device cannot write to it now, if it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// May add and remove members.
    pub admin: bool,
    /// Unread texts.
    pub unread: u32,
}

impl GroupView {
    /// The view of a group summary.
    pub fn of(g: &crate::GroupSummary) -> Self {
        GroupView {
            name: g.name.clone(),
            id: g.id.clone(),
            key: g.key.clone(),
            alike: g.alike,
            members: g.members,
            member: g.member,
            blocked: g.blocked.clone(),
            admin: g.admin,
            unread: g.unread,
        }
    }
}

/// A group text as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupMessageView {
    /// The message (`from` is the author, as the member list names them).
    #[serde(flatten)]
    pub message: MessageView,
    /// Whether `from` is the user's own name for the author (themselves
    /// or a contact), not one another member gave.
    pub verified: bool,
    /// Written, by its own time, after its author was removed or left.
    #[serde(default)]
    pub late: bool,
}

impl GroupMessageView {
    /// The view of a group text.
    pub fn of(m: &crate::GroupMessage) -> Self {
        let s = &m.message;
        GroupMessageView {
            message: MessageView {
                time: s.key.time,
                shown: s.shown,
                received: s.received,
                id: hex(&s.key.id.0),
                from: m.author.clone(),
                text: s.text.clone(),
                delivery: s.delivery.map(|d| d.as_str().to_owned()),
                expires: s.expires,
                file: s.file.as_ref().map(FileView::of),
            },
            verified: m.verified,
            late: m.late,
        }
    }
}

/// A contact's safety number, as the control socket shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SafetyView {
    /// The contact.
    pub contact: ContactView,
    /// 12 groups of 5 digits, space-separated.
    pub safety_number: String,
    /// What its QR code holds.
    pub qr: String,
}

/// The mailbox pairing, as `strand mailbox` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxView {
    /// Whose mailbox this profile is (their contact name).
    pub owner: Option<String>,
    /// This profile's mailbox (its contact name).
    pub mailbox: Option<String>,
    /// On a mailbox, the code that pairs it on its owner's device;
    /// otherwise this profile's invite. Empty while the user's name
    /// breaks today's rules ([`crate::Status::name_problem`]), when
    /// neither can be made.
    pub code: String,
}
