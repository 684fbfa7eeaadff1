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

pub use cli::args;
pub use profile::base::{hex, now};
pub use profile::budget::{BudgetUnit, Budgets};
pub use profile::bundles::{Exported, Imported};
pub use profile::carried::{CarrySettings, CarryStatus};
pub use profile::crypto::{os_rng, KdfParams};
pub use profile::error::{chain, io_words, AddressError, DbError, IoError, ProfileError};
pub use profile::expiry::{parse_timer, timer_label};
pub use profile::files::{safe_name, Conversation, FileInfo, FileSent};
pub use profile::groups::{
    group_key, names_alike, GroupAction, GroupMember, GroupMessage, GroupSummary,
    Written as GroupWrite,
};
pub use profile::pairing::MAILBOX_NAME;
pub use profile::prefs::{PreferenceChange, Preferences};
pub use profile::reach::RelayChange;
pub use profile::removal::Deleted;
pub use profile::store::{Position, ReadView, RedbStore};
pub use profile::views::{ContactSummary, ConversationPage, PageBound, UNREAD_CAP};
pub use profile::{prefs, schema, sealed, strength, wipe};
pub use profile::{ContactRecord, Delivery, Profile, StoredMessage, SKEW_SHOWN};
pub use runtime::{control, limits};
pub use runtime::{
    is_public_address, AddPeerError, BleSettings, BluetoothStatus, LinkError, Node, NodeConfig,
    NodeError, NodeEvent, Refusal, RelaySettings, RelayStatus, Seen, ServeSettings, ServingStatus,
    SessionSettings, Status, TooManyPeers, TransportStatus,
};
/// The Bluetooth battery setting ([`Preferences::bluetooth`]).
pub use strand_transport::ble::duty::Duty;

/// Where saved files go by default: `STRAND_DOWNLOADS` if set, else the
/// user's downloads folder, else their home, else the working directory.
/// Absolute (against the working directory), as a device takes the
/// folders it saves to ([`runtime::api::check_path`]).
pub fn downloads_dir() -> std::path::PathBuf {
    let dir: std::path::PathBuf = match std::env::var_os("STRAND_DOWNLOADS") {
        Some(dir) => dir.into(),
        None => directories::UserDirs::new()
            .and_then(|d| {
                d.download_dir()
                    .map(std::path::Path::to_path_buf)
                    .or_else(|| Some(d.home_dir().to_path_buf()))
            })
            .unwrap_or_else(|| std::path::PathBuf::from(".")),
    };
    std::path::absolute(&dir).unwrap_or(dir)
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
