//! strand-node: a Strand device — an encrypted profile on redb, contacts,
//! conversations with delivery state, and the runtime that syncs them with
//! contacts over every transport (the LAN today).
//!
//! * [`Profile`]: one directory, one redb file ([`schema`]), secrets sealed
//!   under a passphrase key (Argon2id), one owning process at a time.
//! * [`Node`]: a tokio runtime over a profile. Every link (from
//!   [`strand_transport`]) starts with the listener's discovery beacon and
//!   the dialler's hello, then runs a strand-sync session; what arrives is
//!   written in one redb transaction per batch. Per-link queues, a cap on
//!   links ([`runtime::MAX_LINKS`]) and on sessions per contact bound memory
//!   and work.
//! * [`ContactSummary`], [`Profile::conversation_keys`],
//!   [`Profile::conversation_page`]: read-side views for UIs (unread counts,
//!   long conversations a page at a time).
//! * [`control`]: the owner-only Unix socket that `strand send`, `read`,
//!   `status` use while `strand run` holds the profile.
//!
//! ```
//! use strand_node::{Profile, KdfParams, os_rng};
//! let dir = tempfile::tempdir().unwrap();
//! let mut rng = os_rng();
//! let mut alice = Profile::create(&dir.path().join("alice"), "Alice", "correct horse",
//!     KdfParams::insecure_for_tests(), &mut rng).unwrap();
//! let bob = strand_sync::Identity::generate("Bob", &mut rng).unwrap();
//! alice.add_contact(&bob.invite(), "Bob", 0, &mut rng).unwrap();
//! alice.write("Bob", "hello", 1_700_000_000_000, &mut rng).unwrap();
//! drop(alice);
//! let alice = Profile::open(&dir.path().join("alice"), "correct horse").unwrap();
//! assert_eq!(alice.conversation("Bob").unwrap()[0].text, "hello");
//! ```
#![warn(missing_docs)]

pub mod control;
mod crypto;
mod profile;
pub mod runtime;
pub mod schema;
mod store;
mod views;

use std::path::PathBuf;

pub use crypto::{os_rng, KdfParams};
pub use profile::{ContactRecord, Delivery, Profile, StoredMessage};
pub use runtime::{Node, NodeConfig, NodeError, NodeEvent, Status};
pub use store::RedbStore;
pub use views::{ContactSummary, UNREAD_CAP};

/// The profile directory `strand` and the desktop app use when none is
/// given: the platform's data directory (`~/.local/share/strand` on Linux).
pub fn default_profile_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "Strand", "strand").map(|d| d.data_dir().to_path_buf())
}

/// What can go wrong with a profile. Every variant leaves the profile as it
/// was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
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
    /// The profile was written by a newer Strand.
    #[error(
        "the profile uses schema version {0}, newer than this Strand understands; upgrade Strand"
    )]
    SchemaTooNew(u32),
    /// The file is damaged.
    #[error("the profile is damaged: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(String),
    /// A filesystem error.
    #[error("{0}")]
    Io(String),
    /// A bad name.
    #[error("bad name: {0}")]
    Name(String),
    /// A bad invite.
    #[error("bad invite: {0}")]
    Invite(String),
    /// No contact by that name.
    #[error("no contact named {0:?}")]
    UnknownContact(String),
    /// That contact (or name) is already there.
    #[error("already a contact: {0:?}")]
    DuplicateContact(String),
    /// The message could not be written.
    #[error("cannot write the message: {0}")]
    Message(String),
}
