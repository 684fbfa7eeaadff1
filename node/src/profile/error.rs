//! What can go wrong with a profile, and the database and IO errors it
//! keeps as sources.

use std::path::PathBuf;
use std::sync::Arc;

/// An error and its sources, as one line: the transport's rule
/// ([`strand_transport::error_line`]), so that node and transport errors
/// read alike.
pub use strand_transport::error_chain as chain;

/// A database error (kept as the source of [`ProfileError::Db`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct DbError(Arc<redb::Error>);

impl DbError {
    pub(crate) fn other(what: String) -> DbError {
        DbError(Arc::new(redb::Error::Corrupted(what)))
    }
}

impl From<redb::Error> for DbError {
    fn from(e: redb::Error) -> Self {
        DbError(Arc::new(e))
    }
}

impl PartialEq for DbError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for DbError {}

/// A filesystem error (kept as the source of [`ProfileError::Io`]). It
/// reads as [`io_words`] says it.
#[derive(Debug, Clone)]
pub struct IoError(Arc<std::io::Error>);

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&io_words(&self.0))
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// What a filesystem error means, in words a person reads (not the OS's
/// "No such file or directory (os error 2)").
pub fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    // An error made here with words of its own (not the OS's) says them.
    if e.raw_os_error().is_none() && e.get_ref().is_some() {
        return e.to_string();
    }
    match e.kind() {
        K::NotFound => "there is no such file or folder".into(),
        K::PermissionDenied => "permission denied (check who owns it and its mode, `ls -l`)".into(),
        K::AlreadyExists => "it already exists".into(),
        K::IsADirectory => "it is a folder, not a file".into(),
        K::NotADirectory => "part of the path is a file, not a folder".into(),
        K::StorageFull => "the disk is full".into(),
        K::ReadOnlyFilesystem => "the disk is read-only".into(),
        K::FileTooLarge => "the file is too large for this file system".into(),
        // The OS's words without its error number.
        _ => without_os_number(&e.to_string()).to_string(),
    }
}

/// `text` without the OS's error number it ends with, if any: "Address
/// already in use (os error 98)" reads "Address already in use".
pub(crate) fn without_os_number(text: &str) -> &str {
    match text.find(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => text,
    }
}

impl From<std::io::Error> for IoError {
    fn from(e: std::io::Error) -> Self {
        IoError(Arc::new(e))
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind() == other.0.kind() && self.to_string() == other.to_string()
    }
}

impl Eq for IoError {}

/// An address that does not parse (kept as the source of
/// [`ProfileError::RelayAddress`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct AddressError(Arc<strand_transport::multiaddr::Error>);

impl From<strand_transport::multiaddr::Error> for AddressError {
    fn from(e: strand_transport::multiaddr::Error) -> Self {
        AddressError(Arc::new(e))
    }
}

impl PartialEq for AddressError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for AddressError {}

/// What can go wrong with a profile. Every variant leaves the profile as it
/// was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// A mailbox pairing that cannot be (PROTOCOL.md §17.1).
    #[error("{0}")]
    Mailbox(String),
    /// No profile in that directory.
    #[error("no Strand profile in {0} (run `strand init` first)")]
    NotFound(PathBuf),
    /// A profile already exists there.
    #[error("a Strand profile already exists in {0}")]
    AlreadyExists(PathBuf),
    /// Another process (or another handle in this one) has the profile open.
    #[error("the profile {0} is in use by another Strand process (is `strand run` running?)")]
    InUse(PathBuf),
    /// The passphrase does not unlock the profile.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// An empty passphrase was given for a new profile.
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    /// The passphrase key could not be derived (bad stored parameters).
    #[error("could not derive the passphrase key")]
    Kdf,
    /// Argon2id parameters under the floor: a new profile is not created
    /// with them, and a stored profile with them (which no Strand writes)
    /// is not opened.
    #[error("the passphrase key's Argon2id parameters are weaker than Strand allows (at least 64 MiB and 3 passes); the profile is left as it is")]
    WeakKdf,
    /// The profile was written by a newer Strand.
    #[error(
        "the profile uses schema version {0}, newer than this Strand understands; upgrade Strand"
    )]
    SchemaTooNew(u32),
    /// The file is damaged.
    #[error("the profile is damaged: {0}")]
    Corrupt(String),
    /// The file is damaged: a message it stores does not decode.
    #[error("the profile is damaged: a stored message does not decode")]
    StoredMessage(#[source] strand_sync::DecodeError),
    /// The file is damaged: a group epoch it stores does not read.
    #[error("the profile is damaged: a stored group epoch does not read")]
    StoredEpoch(#[source] strand_sync::GroupError),
    /// The file is damaged: its identity does not read.
    #[error("the profile is damaged: its identity does not read")]
    StoredIdentity(#[source] strand_sync::KeyError),
    /// The file is damaged: the published reach record does not read.
    #[error("the profile is damaged: the reach record does not read")]
    StoredReach(#[source] strand_sync::DecodeError),
    /// The file is damaged: the carrying state does not read.
    #[error("the profile is damaged: the carrying state does not read")]
    StoredCarrying(#[source] strand_sync::CarryError),
    /// The sealed file's header does not read.
    #[error("the profile is damaged: its header does not read")]
    Header(#[source] IoError),
    /// A new passphrase was written in one copy of the header and is in
    /// force, but the copy under the old one could not be overwritten.
    #[error("the new passphrase is the one that opens the profile now, but the old passphrase's copy of the key may not have been overwritten: change the passphrase again to overwrite it")]
    OldHeaderLeft(#[source] IoError),
    /// A new passphrase was written in one copy of the header, and the
    /// disk failed to sync it: it opens the profile now, but after a
    /// restart either passphrase may.
    #[error("the disk failed while the new passphrase was being saved: the new passphrase opens the profile now, but after a restart the old one may instead (try the new one first); once it opens, change the passphrase again")]
    HeaderUncertain(#[source] IoError),
    /// The database failed.
    #[error("database error")]
    Db(#[source] DbError),
    /// A filesystem error.
    #[error("{}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// What.
        #[source]
        source: IoError,
    },
    /// A bad name.
    #[error("bad name: {0}")]
    Name(String),
    /// The user's own name breaks today's naming rules (it was chosen
    /// under older ones), so nothing that carries it can be made: why,
    /// and what to do.
    #[error("{0}")]
    OwnName(String),
    /// An invite code that does not decode.
    #[error("bad invite")]
    Invite(#[from] strand_sync::InviteError),
    /// Keys that cannot make a contact (your own, or a weak one).
    #[error("cannot add that contact")]
    Key(#[source] strand_sync::KeyError),
    /// No contact by that name.
    #[error("no contact named {0:?}")]
    UnknownContact(String),
    /// This person is already a contact, under this name.
    #[error("this person is already your contact {0:?}")]
    DuplicateContact(String),
    /// Another contact has this name.
    #[error("you already have a contact named {0:?}: pick another name for this person")]
    NameTaken(String),
    /// An invite with a contact's signing key but other keys: someone may
    /// be impersonating them. The contact is left as it is.
    #[error("this invite has the signing key of your contact {0:?} but a different encryption key: someone may be impersonating them. {0:?} is unchanged (a contact's keys never change); a real new identity has two new keys, and its invite can be added under another name")]
    KeyConflict(String),
    /// An invite with a key that a mailbox a contact named holds: one of
    /// the two is not what it says, and nothing changed.
    #[error("this invite has a key of {mailbox:?}, the mailbox your contact {owner:?} named: one of the two is not what it says (a mailbox is signed for by one of its keys only, and so is an invite). Nothing changed. If you trust this invite, delete that mailbox (`strand delete-contact`, or Delete contact in the app) and add the invite again")]
    KeyOfMailbox {
        /// The mailbox's name here.
        mailbox: String,
        /// The contact who named it.
        owner: String,
    },
    /// The message could not be written.
    #[error("cannot write the message")]
    Message(#[source] strand_sync::Invalid),
    /// The profile was closed (its node stopped).
    #[error("the profile is closed")]
    Closed,
    /// A relay address or list that cannot be used, and why.
    #[error("{0}")]
    Relay(String),
    /// A relay address that does not parse.
    #[error("not an address: {address:?}")]
    RelayAddress {
        /// What was given.
        address: String,
        /// Why it does not parse.
        #[source]
        source: AddressError,
    },
    /// A relay list this device cannot publish.
    #[error("the relay list cannot be published")]
    RelayList(#[source] strand_sync::DecodeError),
    /// No group by that name (or key, or id prefix).
    #[error("no group named {0:?}")]
    UnknownGroup(String),
    /// No member of the group by that name.
    #[error("{group:?} has no member {name:?}")]
    UnknownMember {
        /// The group.
        group: String,
        /// The name asked for.
        name: String,
    },
    /// A group operation that cannot be done, and why (in prose: the
    /// profile's own reasons).
    #[error("{0}")]
    Group(String),
    /// A group this device cannot write to now, and why.
    #[error("{}", unwritable(group, why))]
    Unwritable {
        /// The group's name.
        group: String,
        /// Why not.
        why: strand_sync::Unwritable,
    },
    /// The user's name cannot be sent to groups.
    #[error("your name cannot be sent to groups")]
    UnsendableName(#[source] strand_sync::KeyError),
    /// A group operation the membership rules refuse (not an admin, not a
    /// member, no effect, too many members, a group too old to change).
    #[error(transparent)]
    Membership(#[from] strand_sync::GroupError),
    /// A disappearing-message timer that cannot be set.
    #[error("that timer cannot be set")]
    Timer(#[source] strand_sync::DecodeError),
    /// A file that cannot be sent or saved, and why.
    #[error("{0}")]
    File(String),
    /// A file or message named that cannot be sent or saved whatever
    /// happens (a folder, a file too large, an id that names no file
    /// message), and why: a value that cannot be.
    #[error("{0}")]
    NoSuchFile(String),
    /// A bundle that cannot be written or taken in, and why.
    #[error("{0}")]
    Bundle(String),
    /// A file that is not a bundle for this profile, or is damaged.
    #[error("the bundle cannot be read")]
    BundleUnreadable(#[source] strand_sync::BundleError),
    /// A mailbox code that does not decode.
    #[error("bad mailbox code")]
    MailboxCode(#[source] strand_sync::MailboxError),
}

impl ProfileError {
    /// The error for writing to `group` when `why` says it cannot be.
    pub(crate) fn unwritable(group: &str, why: strand_sync::Unwritable) -> ProfileError {
        ProfileError::Unwritable {
            group: group.to_string(),
            why,
        }
    }
}

impl From<strand_sync::KeyError> for ProfileError {
    fn from(e: strand_sync::KeyError) -> Self {
        match e {
            strand_sync::KeyError::Name(why) => ProfileError::Name(format!("the name {why}")),
            other => ProfileError::Key(other),
        }
    }
}

/// What [`ProfileError::Unwritable`] says.
fn unwritable(group: &str, why: &strand_sync::Unwritable) -> String {
    match why {
        strand_sync::Unwritable::Out => {
            format!("you are no longer a member of {group:?}: you can read it, not write to it")
        }
        other => format!("{group:?}: {other}"),
    }
}
