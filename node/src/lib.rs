//! strand-node: a Strand device — an encrypted profile on redb, contacts,
//! conversations with delivery state, and the runtime that syncs them with
//! contacts over every transport.
//!
//! * [`Profile`]: one directory, one redb file ([`schema`]), secrets sealed
//!   under a passphrase key (Argon2id), one owning process at a time. A
//!   cheap shared handle: reads use read transactions on any thread, writes
//!   go to one writer ([`writer`] docs) that commits them in batches.
//! * [`Node`]: a tokio runtime over a profile and a set of transports
//!   (LAN, relays, Bluetooth LE, emulated links) behind one interface.
//!   Every link, whatever carries it, runs strand-sync's [`Session`] from
//!   its first byte (beacon, hello, Noise, sync); signatures are checked in
//!   batches on every core before the writer stores what arrived. Strangers
//!   get bounded work ([`limits`]), contacts a slot each.
//!   [`Node::shutdown`] returns once the profile is released.
//! * [`ContactSummary`], [`Profile::conversation_keys`],
//!   [`Profile::conversation_page`]: read-side views for UIs (unread counts,
//!   long conversations a page at a time).
//! * [`control`]: the owner-only Unix socket that `strand send`, `read`,
//!   `status` use while `strand run` holds the profile.
//! * [`args`]: the transport flags `strand run` and the desktop app share.
//!
//! [`Session`]: strand_sync::Session
//!
//! ```
//! use strand_node::{Profile, KdfParams, os_rng};
//! let dir = tempfile::tempdir().unwrap();
//! let mut rng = os_rng();
//! let alice = Profile::create(&dir.path().join("alice"), "Alice", "correct horse",
//!     KdfParams::insecure_for_tests(), &mut rng).unwrap();
//! let bob = strand_sync::Identity::generate("Bob", &mut rng).unwrap();
//! alice.add_contact(&bob.invite(), "Bob", 0, &mut rng).unwrap();
//! alice.write("Bob", "hello", 1_700_000_000_000, &mut rng).unwrap();
//! drop(alice);
//! let alice = Profile::open(&dir.path().join("alice"), "correct horse").unwrap();
//! assert_eq!(alice.conversation("Bob").unwrap()[0].text, "hello");
//! ```
#![warn(missing_docs)]

// The three layers, each in its own folder: the profile (storage and
// what the user's data means: contacts, messages, groups, files,
// carrying state, budgets, bundles), the runtime that syncs it (the
// Node, its links and transports), and the `strand` command line.
pub mod cli;
pub mod display;
pub mod profile;
pub mod runtime;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use cli::args;
pub use profile::budget::Budgets;
pub use profile::bundles::{Exported, Imported};
pub use profile::carried::{CarrySettings, CarryStatus};
pub use profile::crypto::{os_rng, KdfParams};
pub use profile::expiry::{parse_timer, timer_label};
pub use profile::files::{safe_name, Conversation, FileInfo, FileSent};
pub use profile::groups::{
    GroupAction, GroupMember, GroupMessage, GroupSummary, Written as GroupWrite,
};
pub use profile::pairing::MAILBOX_NAME;
pub use profile::reach::RelayChange;
pub use profile::store::{Position, ReadView, RedbStore};
pub use profile::views::{ContactSummary, UNREAD_CAP};
pub use profile::{schema, sealed, wipe};
pub use profile::{ContactRecord, Delivery, Profile, StoredMessage, SKEW_SHOWN};
pub use runtime::{
    chain, BleSettings, BluetoothStatus, LinkError, Node, NodeConfig, NodeError, NodeEvent,
    Refusal, RelaySettings, RelayStatus, Seen, ServeSettings, ServingStatus, SessionSettings,
    Status, TransportStatus,
};
pub use runtime::{control, limits};

/// Where saved files go by default: `STRAND_DOWNLOADS` if set, else the
/// user's downloads folder, else their home, else the working directory.
pub fn downloads_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("STRAND_DOWNLOADS") {
        return dir.into();
    }
    directories::UserDirs::new()
        .and_then(|d| {
            d.download_dir()
                .map(std::path::Path::to_path_buf)
                .or_else(|| Some(d.home_dir().to_path_buf()))
        })
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}

/// The wall clock as strand-sync's [`strand_sync::Time`].
pub fn now() -> strand_sync::Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The longest start of `s` of at most `max` bytes that ends on a
/// character.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Where `strand relay` keeps its key when none is given: the platform's
/// data directory (`~/.local/share/strand-relay/key` on Linux), apart from
/// any profile.
pub fn default_relay_key_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "Strand", "strand-relay")
        .map(|d| d.data_dir().join("key"))
}

/// The profile directory `strand` and the desktop app use when none is
/// given: the platform's data directory (`~/.local/share/strand` on Linux).
pub fn default_profile_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "Strand", "strand").map(|d| d.data_dir().to_path_buf())
}

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

/// A filesystem error (kept as the source of [`ProfileError::Io`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct IoError(Arc<std::io::Error>);

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
    /// The message could not be written.
    #[error("cannot write the message")]
    Message(#[source] strand_sync::Invalid),
    /// The profile was closed (its node stopped).
    #[error("the profile is closed")]
    Closed,
    /// A relay address or list that cannot be used.
    #[error("{0}")]
    Relay(String),
    /// No group by that name (or id prefix).
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
    /// A group operation the membership rules refuse (not an admin, not a
    /// member, no effect, too many members, a group too old to change).
    #[error(transparent)]
    Membership(#[from] strand_sync::GroupError),
    /// A disappearing-message timer that cannot be set.
    #[error("{0}")]
    Timer(String),
    /// A file that cannot be sent or saved, and why.
    #[error("{0}")]
    File(String),
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

impl From<strand_sync::KeyError> for ProfileError {
    fn from(e: strand_sync::KeyError) -> Self {
        match e {
            strand_sync::KeyError::Name(why) => ProfileError::Name(format!("the name {why}")),
            other => ProfileError::Key(other),
        }
    }
}
