//! The node: a profile, a set of transports behind one interface, and a
//! task per link.
//!
//! ```text
//!   transports ──TransportEvent──► events loop ──► admit (guard) ──► link::run (one task per link)
//!   (LAN, emulated, …)                 │                                  │ Established
//!                                      └── Discovered → dial (rate)       └──► registry (per-contact cap)
//! ```
//!
//! * [`guard`]: who may start a link before anyone is authenticated, and
//!   how fast the node dials (contacts and devices found apart).
//! * [`discovery`]: devices transports found: dialled, queued while
//!   dialling too fast, dialled again when a contact's link to one drops.
//! * [`link`]: one link's lifecycle: the session, the reader and writer,
//!   the check-and-store pipeline.
//! * [`registry`]: sessions that are up, by contact; when contacts were
//!   seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use strand_sync::limits::{Time, DEFAULT_PACKET_LEN};
use strand_sync::{Config, GroupId, Invite, Key, PublicIdentity};
use strand_transport::memory::Hub;
use strand_transport::relay::server::{RelayLimits, RelayServer, RelayServerConfig};
use strand_transport::relay::{is_circuit, RelayConfig};
use strand_transport::{
    Lan, LanConfig, Link, LinkKind, Multiaddr, Peer, Relays, ReservationState, Transport,
    TransportError, TransportEvent,
};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod api;
mod bluetooth;
mod carrying;
pub mod commands;
pub mod control;
pub mod device;
mod discovery;
mod guard;
pub mod limits;
mod link;
mod offering;
mod paired;
pub mod panics;
mod peers;
mod registry;
mod relaying;
#[cfg(target_os = "linux")]
mod sleep;
pub mod starting;

pub use bluetooth::BleSettings;
pub use guard::Refusal;
pub use peers::{AddPeerError, TooManyPeers};
pub use registry::Seen;

use crate::runtime::guard::Dial;
use crate::runtime::limits::{
    EVENT_BUFFER, EXPIRY_CHECK, EXPIRY_IDLE, IDLE_CHECK, MAX_SKIPPED_DIALS, SHUTDOWN_GRACE,
    TRANSPORT_EVENTS,
};
use crate::{chain, os_rng, ContactRecord, Profile, ProfileError};

/// Session settings per link kind: the packet size suits the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// LAN links.
    pub lan: Config,
    /// Relayed links.
    pub relay: Config,
    /// Bluetooth LE links.
    pub bluetooth: Config,
    /// Emulated links.
    pub emulated: Config,
}

impl Default for SessionSettings {
    fn default() -> Self {
        let big = Config {
            max_packet: DEFAULT_PACKET_LEN,
            ..Default::default()
        };
        SessionSettings {
            lan: big,
            relay: big,
            // The BLE link layer cuts packets to the radio's size, so a
            // session packet need not fit one write. Big packets keep
            // reconciliation to few rounds (10,000 differences: 46.5 round
            // trips at 16 KiB, 1,729.5 at 512 bytes; `cargo bench -p
            // strand-sync`), and a BLE round trip is tens of milliseconds.
            bluetooth: big,
            emulated: big,
        }
    }
}

impl SessionSettings {
    /// The settings for links of this kind.
    pub fn for_kind(&self, kind: LinkKind) -> Config {
        match kind {
            LinkKind::Lan => self.lan,
            LinkKind::Relay | LinkKind::HolePunched => self.relay,
            LinkKind::Bluetooth => self.bluetooth,
            _ => self.emulated,
        }
    }
}

/// How the node uses relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Punch holes to direct connections (DCUtR), accepting direct
    /// connections at [`RelaySettings::listen`]. Off, contacts beyond the
    /// LAN are reached through relays only.
    pub hole_punch: bool,
    /// Where direct connections from hole punching are accepted.
    pub listen: Vec<Multiaddr>,
    /// How long a relay identity lives ([`strand_sync::limits::RELAY_EPOCH`];
    /// shorter only in tests: contacts must agree on it).
    pub epoch: Duration,
    /// Run a relay for this profile's contacts (and only them).
    pub serve: Option<ServeSettings>,
}

impl Default for RelaySettings {
    fn default() -> Self {
        let client = RelayConfig::new(Vec::new(), Arc::new(|_| [0; 32]), Duration::ZERO);
        RelaySettings {
            hole_punch: true,
            listen: client.listen,
            epoch: Duration::from_millis(strand_sync::limits::RELAY_EPOCH),
            serve: None,
        }
    }
}

/// A relay the node runs for its contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// Where it listens (a public address, or one the router forwards).
    pub listen: Vec<Multiaddr>,
    /// The addresses contacts reach it at, if not the ones it listens on
    /// (behind port forwarding: the router's public address).
    pub announce: Vec<Multiaddr>,
}

/// Node settings.
#[derive(Debug, Clone, Default)]
pub struct NodeConfig {
    /// The LAN transport, if any.
    pub lan: Option<LanConfig>,
    /// Relays, if used: the profile's relays, and contacts' relays.
    pub relay: Option<RelaySettings>,
    /// Join this hub of emulated links (tests; a second link kind without
    /// a network).
    pub emulated: Option<Hub>,
    /// Bluetooth LE, if used. Where there is no adapter or no BlueZ, the
    /// node says so ([`Status::bluetooth_off`]) and runs without it.
    pub ble: Option<BleSettings>,
    /// Addresses to dial and keep dialling (for networks without mDNS):
    /// the first [`MAX_PEERS`](limits::MAX_PEERS), each once
    /// ([`Node::add_peer`]).
    pub peers: Vec<Multiaddr>,
    /// Session settings per link kind.
    pub sessions: SessionSettings,
    /// How much each contact may store here.
    pub budgets: crate::profile::budget::Budgets,
    /// How this node carries envelopes (PROTOCOL.md §17); whether it does
    /// is the user's choice, kept in the profile.
    pub carry: crate::CarrySettings,
    /// Tests only: a fixed clock and a seeded RNG for links, so two runs
    /// give the same bytes.
    #[doc(hidden)]
    pub deterministic: Option<(Time, u64)>,
    /// Started for one command while no node runs: no transports, and
    /// the budgets and carrying settings the last running node kept
    /// ([`NodeConfig::offline`]).
    pub offline: bool,
    /// Report files arriving ([`NodeEvent::FileArriving`]): placing each
    /// stored batch of parts or descriptions, and naming its author and
    /// group, costs a few store reads, so only a node whose user watches
    /// them (`strand run`, the app) does it.
    pub report_arrivals: bool,
}

impl NodeConfig {
    /// A node with no transports, for one command while no node runs on
    /// the profile: everything a command does but reaching anyone
    /// (writing, carrying state, groups), with the budgets and carrying
    /// budget the last running node kept, not the defaults.
    pub fn offline() -> NodeConfig {
        NodeConfig {
            offline: true,
            ..NodeConfig::default()
        }
    }
}

/// Something that happened, for the GUI, `strand read --follow` and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeEvent {
    /// A session with a contact is up (authenticated).
    Connected {
        /// Contact name.
        contact: String,
        /// Link kind.
        link: String,
    },
    /// A session ended.
    Disconnected {
        /// Contact name.
        contact: String,
        /// Why, if it was an error.
        error: Option<String>,
    },
    /// A new message arrived.
    Received {
        /// Contact name (in a group: the author, named as the group's
        /// member list names them, marked unverified if not a contact).
        contact: String,
        /// The group it was written to, if not the 1:1 conversation: its
        /// name, followed by the id `strand group list` shows for it where
        /// another group here has that name (`Desk (3fa2c4e1)`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// That group's key ([`crate::group_key`]): names it, where its
        /// name may be another group's too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_key: Option<String>,
        /// Timestamp (ms since the Unix epoch).
        time: u64,
        /// Message id (hex).
        id: String,
        /// The text, or its first [`limits::RECEIVED_PREVIEW`] characters
        /// if it is longer (then `cut`). The whole text is in the
        /// conversation ([`api::Request::Read`], [`api::Request::Page`],
        /// [`api::Request::GroupRead`]).
        text: String,
        /// Whether `text` is only the start of the message's text. False
        /// in an event from a node before previews, which sent it whole.
        #[serde(default)]
        cut: bool,
    },
    /// A group was created, joined or changed (members, epochs).
    GroupsChanged,
    /// The user gave a contact another name (here, through the CLI, the
    /// app or another window): what shows them by `from` now says `to`.
    ContactRenamed {
        /// Their old name.
        from: String,
        /// Their new name.
        to: String,
    },
    /// Contacts were added (here, through the CLI, the app or another
    /// window; a contact's mailbox, from their record or a bundle; on a
    /// mailbox device, its owner's contacts, up to thousands at once): one
    /// event for the lot, naming the first few and counting the rest, so
    /// that it stays small however many there were
    /// ([`limits::CONTACTS_ADDED_NAMES`]).
    ContactsAdded {
        /// The names of the first [`limits::CONTACTS_ADDED_NAMES`] (each
        /// at most [`strand_sync::limits::MAX_NAME_LEN`] bytes, as every
        /// contact's name is checked when it is given). The contact list
        /// has them all ([`api::Request::Contacts`]).
        names: Vec<String>,
        /// How many more were added than `names` names: 0 unless there
        /// were more than [`limits::CONTACTS_ADDED_NAMES`]. 0 in an event
        /// from a node before it, which named them all.
        #[serde(default)]
        more: usize,
    },
    /// The user deleted a contact and the conversation with them (here,
    /// through the CLI, the app or another window).
    ContactDeleted {
        /// Their name.
        name: String,
    },
    /// Disappearing messages reached their time and were deleted.
    Expired {
        /// How many.
        count: usize,
    },
    /// A bundle from a removable drive brought new messages.
    Imported {
        /// The contact who made it.
        contact: String,
        /// How many messages were new.
        messages: usize,
    },
    /// A message this node wrote went out to the contact.
    Sent {
        /// Contact name: the contact whose link carried it.
        contact: String,
        /// The private group it was written in, by its key
        /// ([`crate::group_key`]); none for the 1:1 conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_key: Option<String>,
        /// Message id (hex).
        id: String,
    },
    /// The contact acknowledged holding a message this node wrote.
    Delivered {
        /// Contact name: the contact who holds it.
        contact: String,
        /// The private group it was written in, by its key
        /// ([`crate::group_key`]); none for the 1:1 conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_key: Option<String>,
        /// Message id (hex).
        id: String,
    },
    /// A contact's messages are over their storage budget here: the rest
    /// is not stored (the contact offers it again at a later sync; raise
    /// the budget to let it in). Once per session.
    OverBudget {
        /// Whose messages were declined: a contact's name, or a group
        /// member as the member list names them.
        contact: String,
        /// The private group, if the messages were in one: named as in
        /// [`NodeEvent::Received`].
        group: Option<String>,
        /// That group's key ([`crate::group_key`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_key: Option<String>,
        /// The budget, in `unit`s.
        budget: u64,
        /// What `budget` counts: bytes, but for the bounds on a contact's
        /// welcomes (their number, and the members of their groups).
        /// Bytes if absent (an event from a node before it).
        #[serde(default)]
        unit: crate::BudgetUnit,
    },
    /// Parts of a file, or its description, arrived: `have` of its
    /// `total` parts are here (one event per stored batch that holds some
    /// of them or the description; a listener may get one more after the
    /// one that says all are here, and should ignore it).
    FileArriving {
        /// Who wrote it: the contact, or in a group the member as the
        /// member list names them (marked unverified if not a contact),
        /// whoever's session brought the parts.
        from: String,
        /// The group it was written to, if not a 1:1 conversation: named
        /// as in [`NodeEvent::Received`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// That group's key ([`crate::group_key`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_key: Option<String>,
        /// The file message's id (hex).
        id: String,
        /// The file's name, as its sender gave it.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// Parts here.
        have: usize,
        /// Parts in all.
        total: usize,
    },
    /// How far a request that named this task got: `done` of `total`, in
    /// the request's unit (bytes of a file sealed or saved, or of a bundle
    /// read; messages of a bundle written).
    Progress {
        /// The task number the request gave.
        task: u64,
        /// Done so far.
        done: u64,
        /// All of it.
        total: u64,
    },
    /// A listener fell behind and `count` events were dropped for it: what
    /// it shows may be stale (read again).
    Missed {
        /// How many; 0 if not known (a follower the node let go of, and
        /// that followed again: [`crate::runtime::device::Events::next`]).
        count: u64,
    },
}

impl NodeEvent {
    /// The [`NodeEvent::Received`] for the message `key` with this text:
    /// only its start ([`limits::RECEIVED_PREVIEW`]), so that what a slow
    /// follower keeps the node holding is bounded whatever its contacts
    /// write.
    pub(crate) fn received(
        contact: String,
        group: Option<String>,
        group_key: Option<String>,
        key: &Key,
        text: &str,
    ) -> NodeEvent {
        let (preview, cut) = crate::display::first_chars(text, limits::RECEIVED_PREVIEW);
        NodeEvent::Received {
            contact,
            group,
            group_key,
            time: key.time,
            id: crate::hex(&key.id.0),
            text: preview.to_owned(),
            cut,
        }
    }

    /// The [`NodeEvent::ContactsAdded`] for these contacts: the names of
    /// the first [`limits::CONTACTS_ADDED_NAMES`] and how many more, so
    /// that one event stays a few kilobytes when a mailbox takes its
    /// owner's whole list at once.
    pub(crate) fn contacts_added(records: &[ContactRecord]) -> NodeEvent {
        let names: Vec<String> = records
            .iter()
            .take(limits::CONTACTS_ADDED_NAMES)
            .map(|r| r.name.clone())
            .collect();
        NodeEvent::ContactsAdded {
            more: records.len() - names.len(),
            names,
        }
    }
}

/// One transport's state, for `strand status` and the Network screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportStatus {
    /// Which transport ("LAN", "relay", "emulated", …).
    pub kind: String,
    /// The addresses it listens on.
    pub addresses: Vec<String>,
    /// Whether it finds devices by itself (mDNS).
    pub discovery: bool,
    /// Its current ephemeral identity (rotates).
    pub ephemeral_id: Option<String>,
    /// Relays and this node's reservations on them (relay transport).
    #[serde(default)]
    pub relays: Vec<RelayStatus>,
    /// Public addresses others confirmed (AutoNAT).
    #[serde(default)]
    pub external: Vec<String>,
    /// The adapter, devices seen, links and bytes (Bluetooth only).
    #[serde(default)]
    pub bluetooth: Option<BluetoothStatus>,
}

impl TransportStatus {
    /// What `strand status` and the Network screen say of it while it
    /// listens on no address. A LAN that runs always has an identity; one
    /// without is quiet (its last identity could listen on none of its
    /// addresses, gone after a change of network?) and tries again by
    /// itself, which "not listening" alone would not tell. One with an
    /// identity and no address listens on an unspecified address
    /// (`0.0.0.0`, `::`) while the device has no address of its family
    /// (no network yet, IPv6 turned off), and takes each as it comes.
    pub fn not_listening_note(&self) -> &'static str {
        if self.kind != LinkKind::Lan.to_string() {
            "not listening"
        } else if self.ephemeral_id.is_none() {
            "not listening (no address could be bound; retrying)"
        } else {
            "listening, no address yet (each is used as the device gets one)"
        }
    }
}

/// The BLE transport, for `strand status` and the Network screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BluetoothStatus {
    /// The adapter (`hci0`).
    pub adapter: String,
    /// Strand devices heard advertising since the node started (contacts
    /// or not: the hint says who is near only to contacts).
    pub devices_seen: u64,
    /// Links opened over BLE.
    pub links: u64,
    /// Bytes sent over BLE.
    pub bytes_sent: u64,
    /// Bytes received over BLE.
    pub bytes_received: u64,
    /// The L2CAP channel offered, if any.
    pub psm: Option<u16>,
}

/// One relay, for `strand relay list`, `strand status` and the Network
/// screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStatus {
    /// Its address.
    pub address: String,
    /// "reserved", "reserving", "failing", or "not running" (no node).
    pub state: String,
    /// The last error, while failing.
    pub error: Option<String>,
    /// Seconds until the next attempt, while failing.
    pub retry_in: Option<u64>,
    /// Where it comes from: "yours" (the profile's list), "contact" (a
    /// contact runs it for their contacts), "this node" (it serves here).
    pub source: String,
}

/// A node's state for `strand status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The user's name.
    pub name: String,
    /// The profile directory.
    pub profile: String,
    /// Transports.
    pub transports: Vec<TransportStatus>,
    /// Contacts seen and how.
    pub seen: Vec<Seen>,
    /// Links open now: sessions plus links still in their handshake.
    pub links: usize,
    /// Of those, authenticated sessions.
    pub sessions: usize,
    /// Wire bytes sent and received by sessions.
    pub bytes_sent: u64,
    /// See `bytes_sent`.
    pub bytes_received: u64,
    /// Messages stored, all conversations.
    pub messages: u64,
    /// The relay this node runs for its contacts, if it does.
    #[serde(default)]
    pub serving: Option<ServingStatus>,
    /// Why Bluetooth is off, when it was asked for and could not start
    /// (no adapter, no BlueZ).
    #[serde(default)]
    pub bluetooth_off: Option<String>,
    /// Whether a node runs (with transports): `false` when the status
    /// came from a node started for one command.
    #[serde(default)]
    pub running: bool,
    /// Times the system slept and woke while the node ran.
    #[serde(default)]
    pub woke: u64,
    /// The Bluetooth scan setting the node follows (`always`, `balanced`,
    /// `saver`).
    #[serde(default)]
    pub bluetooth_scan: String,
    /// The profile's relays (where it reserves while a node runs).
    #[serde(default)]
    pub relays: Vec<String>,
    /// Contacts.
    #[serde(default)]
    pub contacts: usize,
    /// Panics on any of the process's threads (see [`panics`]): a part
    /// of the node failed.
    #[serde(default)]
    pub panics: Vec<String>,
    /// Why the user's name must be changed before an invite can be made
    /// ([`crate::Profile::own_name_problem`]).
    #[serde(default)]
    pub name_problem: Option<String>,
    /// Addresses the node dials again and again while no link to them is
    /// up ([`NodeConfig::peers`], [`Node::add_peer`]), one task each.
    #[serde(default)]
    pub peers: Vec<String>,
}

impl Status {
    /// What the CLI and the app say when the user's name breaks today's
    /// rules ([`Status::name_problem`]): "Careful: …". Asked of the name
    /// itself when the status is an older node's, which says nothing of it.
    pub fn name_warning(&self) -> Option<String> {
        self.name_problem
            .clone()
            .or_else(|| crate::profile::own_name_problem(&self.name))
            .map(|p| format!("Careful: {p}."))
    }
}

/// The relay a node runs for its contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingStatus {
    /// Where contacts reach it (these go to them in the reach record).
    pub addresses: Vec<String>,
    /// Reservations it holds.
    pub reservations: usize,
    /// Circuits open through it.
    pub circuits: usize,
}

/// Errors from starting or running the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A profile error.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A transport error.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Starting the runtime failed.
    #[error("cannot start the node's runtime")]
    Runtime(#[source] std::io::Error),
}

/// Why a link ended (for logs; the peer is told nothing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// It was not admitted.
    #[error("not admitted")]
    Refused(#[from] Refusal),
    /// Its session failed (a stranger's link ending in its preamble is
    /// one of these).
    #[error("the session ended")]
    Session(#[source] strand_sync::SessionError),
    /// Storing what arrived failed.
    #[error("storing what arrived failed")]
    Store(#[source] ProfileError),
    /// Opening it failed.
    #[error("opening the link failed")]
    Transport(#[from] TransportError),
    /// No transport takes the address.
    #[error("no transport takes {0}")]
    NoTransport(Multiaddr),
}

/// The node's clock: the wall clock, or a fixed one for tests.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    System,
    Fixed(Time),
}

impl Clock {
    pub(crate) fn now(&self) -> Time {
        match self {
            Clock::System => crate::now(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// A generator for one step, seeded from `rng`.
pub(crate) fn draw(rng: &mut ChaCha20Rng) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(rng, &mut seed);
    ChaCha20Rng::from_seed(seed)
}

impl Shared {
    /// A generator for one step of the node, drawn from the node's (the
    /// OS's, or a test's seed): nothing in the runtime asks the OS itself.
    pub(crate) fn rng(&self) -> ChaCha20Rng {
        draw(
            &mut self
                .steps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

pub(crate) struct Shared {
    pub(crate) relays: Option<Relays>,
    pub(crate) relay_server: tokio::sync::Mutex<Option<RelayServer>>,
    /// The relay this node runs for contacts, as they reach it: where
    /// contacts were last offered it, told or still to be told
    /// ([`offering`], read with [`Shared::serving`]).
    pub(crate) serving: Mutex<Vec<Multiaddr>>,
    pub(crate) reach: Arc<relaying::Reachability>,
    pub(crate) profile: Profile,
    pub(crate) config: NodeConfig,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) registry: registry::Registry,
    pub(crate) guard: Arc<guard::Guard>,
    pub(crate) transports: Vec<Arc<dyn Transport>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
    /// What sessions draw from (the link preambles and handshakes).
    pub(crate) rng: Mutex<ChaCha20Rng>,
    /// What every other step draws from ([`Shared::rng`]), apart from
    /// the sessions' so that a deterministic link stays byte-for-byte the
    /// same whatever else the node did first.
    pub(crate) steps: Mutex<ChaCha20Rng>,
    pub(crate) clock: Clock,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    /// What each contact has stored, against [`NodeConfig::budgets`].
    pub(crate) ledger: Arc<crate::profile::budget::Ledger>,
    /// Why Bluetooth is off, if it was asked for and could not start.
    pub(crate) bluetooth_off: Option<String>,
    /// Devices discovered lately, newest last (see
    /// [`NEARBY_KEPT`](limits::NEARBY_KEPT)).
    pub(crate) nearby: Mutex<std::collections::VecDeque<(Peer, std::time::Instant)>>,
    /// Devices found nearby whose contact's link ended and that are
    /// waiting to be dialled again: one wait per device ([`discovery`]).
    pub(crate) redialling: Mutex<std::collections::HashSet<Peer>>,
    /// Addresses dialled again and again, one task each ([`peers`]).
    pub(crate) peers: peers::Peers,
    /// Devices found while no discovery dial was left, waiting for one
    /// ([`MAX_SKIPPED_DIALS`], [`discovery`]).
    pub(crate) skipped: Mutex<discovery::Backlog<Peer>>,
    /// Wakes the dialler of [`Shared::skipped`] when a device joins it.
    pub(crate) skipped_added: tokio::sync::Notify,
    /// Envelopes carried for contacts, and this user's spreading
    /// ([`carrying`]).
    pub(crate) carrier: Mutex<strand_sync::Carrier>,
    /// Held through one carrying step, so steps run one at a time (the
    /// carrier itself is locked only to copy and replace it).
    pub(crate) carry_step: Mutex<()>,
    /// Pool messages whose texts, out of envelopes, wait to be taken, and
    /// what for: opened again only once that may have come.
    pub(crate) waiting: Mutex<carrying::Waiting>,
    /// Times the system woke from sleep while the node ran (logind's
    /// `PrepareForSleep`).
    pub(crate) wakes: AtomicU64,
    /// The Bluetooth battery setting, as the transport follows it.
    pub(crate) duty: tokio::sync::watch::Sender<strand_transport::ble::duty::Duty>,
}

/// A running node. Cheap to clone. [`Node::shutdown`] stops it and
/// releases the profile.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}

impl Node {
    /// Starts the node on an unlocked profile with the configured
    /// transports. Needs a tokio runtime.
    pub async fn start(profile: Profile, config: NodeConfig) -> Result<Node, NodeError> {
        profile.start_writer()?;
        // The node's clock and randomness: every step draws from them, so
        // a node made deterministic for a test stays so.
        let (clock, rng, mut steps) = match config.deterministic {
            Some((t, seed)) => (
                Clock::Fixed(t),
                ChaCha20Rng::seed_from_u64(seed),
                ChaCha20Rng::seed_from_u64(!seed),
            ),
            None => (Clock::System, os_rng(), os_rng()),
        };
        let (tx, rx) = mpsc::channel(TRANSPORT_EVENTS);
        let mut transports: Vec<Arc<dyn Transport>> = Vec::new();
        let fail = |profile: &Profile, e: NodeError| {
            profile.close();
            Err(e)
        };
        if let Some(lan) = &config.lan {
            match Lan::start(lan.clone(), tx.clone()).await {
                Ok(t) => transports.push(Arc::new(t)),
                Err(e) => return fail(&profile, e.into()),
            }
        }
        if let Some(hub) = &config.emulated {
            transports.push(Arc::new(hub.join(tx.clone())));
        }
        let reach = {
            let p = profile.clone();
            Arc::new(
                tokio::task::spawn_blocking(move || relaying::Reachability::load(&p))
                    .await
                    .unwrap_or_default(),
            )
        };
        let (mut relays, mut relay_server, mut serving) = (None, None, Vec::new());
        if let Some(settings) = &config.relay {
            let step = draw(&mut steps);
            match start_relays(&profile, settings, &reach, clock, step, tx.clone()).await {
                Ok((client, server, addrs)) => {
                    transports.push(Arc::new(client.clone()));
                    relays = Some(client);
                    relay_server = server;
                    serving = addrs;
                }
                Err(e) => {
                    for t in &transports {
                        t.shutdown().await;
                    }
                    return fail(&profile, e);
                }
            }
        }
        let (mut hints, mut bluetooth_off) = (None, None);
        // The battery setting, kept in the profile; the transport follows
        // its changes.
        let (duty, duty_rx) = {
            let p = profile.clone();
            let kept = tokio::task::spawn_blocking(move || p.bluetooth_duty()).await;
            let duty = match kept {
                Ok(Ok(duty)) => duty,
                _ => Default::default(),
            };
            tokio::sync::watch::channel(duty)
        };
        if let Some(settings) = &config.ble {
            let step = draw(&mut steps);
            match bluetooth::start(&profile, settings, clock, step, duty_rx, tx.clone()).await {
                Ok((ble, h)) => {
                    transports.push(ble);
                    hints = Some(h);
                }
                Err(reason) => {
                    tracing::warn!("Bluetooth is off: {reason}");
                    bluetooth_off = Some(reason);
                }
            }
        }
        drop(tx);
        let mut config = config;
        if config.offline {
            let p = profile.clone();
            let kept = tokio::task::spawn_blocking(move || {
                Ok::<_, ProfileError>((p.budgets()?, p.carry_settings()?))
            })
            .await
            .map_err(|_| NodeError::Profile(ProfileError::Closed))?;
            match kept {
                Ok((budgets, carry)) => {
                    config.budgets = budgets;
                    config.carry = carry;
                }
                Err(e) => return fail(&profile, e.into()),
            }
        }
        let carrier = {
            let (p, settings, budgets) = (profile.clone(), config.carry, config.budgets);
            let mut step = draw(&mut steps);
            tokio::task::spawn_blocking(move || {
                if let Err(e) = p.keep_carry_budget(settings.budget, &mut step) {
                    tracing::warn!("keeping the carrying budget failed: {e}");
                }
                if let Err(e) = p.keep_budgets(&budgets, &mut step) {
                    tracing::warn!("keeping the storage budgets failed: {e}");
                }
                p.load_carrier(&settings).unwrap_or_else(|e| {
                    // The user's choice is kept apart: it survives.
                    tracing::warn!("the carrying state is unreadable, starting empty: {e}");
                    strand_sync::Carrier::new(settings.config(p.carrying().unwrap_or(false)))
                })
            })
            .await
            .map_err(|_| NodeError::Profile(ProfileError::Closed))?
        };
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        // The relay for contacts' addresses as they change, from where
        // `serving` read them.
        let relay_addresses = relay_server.as_ref().map(RelayServer::watch_addresses);
        let shared = Arc::new(Shared {
            relays: relays.clone(),
            relay_server: tokio::sync::Mutex::new(relay_server),
            serving: Mutex::new(serving),
            reach,
            profile,
            config,
            events,
            registry: registry::Registry::default(),
            guard: guard::Guard::new(),
            transports,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            rng: Mutex::new(rng),
            steps: Mutex::new(steps),
            clock,
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            ledger: Arc::default(),
            bluetooth_off,
            nearby: Mutex::default(),
            redialling: Mutex::default(),
            peers: peers::Peers::default(),
            skipped: Mutex::new(discovery::Backlog::new(MAX_SKIPPED_DIALS)),
            skipped_added: tokio::sync::Notify::new(),
            carrier: Mutex::new(carrier),
            carry_step: Mutex::new(()),
            waiting: Mutex::default(),
            wakes: AtomicU64::new(0),
            duty,
        });
        let node = Node { shared };
        node.shared.tasks.spawn(node.clone().transport_events(rx));
        node.shared.tasks.spawn(node.clone().dial_skipped());
        node.shared.tasks.spawn(node.clone().trim_when_idle());
        node.shared.tasks.spawn(node.clone().sweep_expired());
        node.shared
            .tasks
            .spawn(carrying::read_unread(node.shared.clone()));
        node.shared
            .tasks
            .spawn(carrying::retry_waiting(node.shared.clone()));
        // What a command did with no node running, caught up now.
        node.shared
            .tasks
            .spawn(carrying::spread_queued(node.shared.clone()));
        node.shared
            .tasks
            .spawn(paired::owners_list(node.shared.clone()));
        // What contacts added before were not yet told (a kill, or a
        // step that failed, right after the add).
        node.shared
            .tasks
            .spawn(paired::new_contacts(node.shared.clone()));

        #[cfg(target_os = "linux")]
        if !node.shared.config.offline {
            node.shared
                .tasks
                .spawn(sleep::watch(node.clone(), hints.clone()));
        }
        if let Some(hints) = hints {
            node.shared
                .tasks
                .spawn(bluetooth::renew(node.clone(), hints));
        }
        if let Some(relays) = relays {
            node.shared
                .tasks
                .spawn(node.clone().dial_through_relays(relays));
        }
        if let Some(addresses) = relay_addresses {
            node.shared
                .tasks
                .spawn(node.clone().follow_relay_addresses(addresses));
        }
        for addr in node.shared.config.peers.clone() {
            if let Err(e) = node.add_peer(addr) {
                tracing::warn!("{e}");
            }
        }
        Ok(node)
    }

    /// Reads every transport's events until the node stops.
    async fn transport_events(self, mut rx: mpsc::Receiver<TransportEvent>) {
        let cancel = self.shared.cancel.clone();
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                e = rx.recv() => match e { Some(e) => e, None => return },
            };
            match event {
                TransportEvent::Incoming(link) => self.accept(link),
                TransportEvent::Discovered { peer, initiate } => {
                    self.note_nearby(peer);
                    if initiate {
                        self.open(peer);
                    }
                }
                TransportEvent::Listening { kind, addr } => {
                    tracing::info!(%kind, %addr, "listening");
                    if is_circuit(&addr) {
                        // A new reservation: contacts may be reachable now
                        // that were not (they dial us, we dial them).
                        self.shared.reach.retry_all();
                    }
                }
                _ => {}
            }
        }
    }

    /// Deletes disappearing messages when they are due: sleeps until the
    /// next one is (an idle phone is not woken every second), looks again
    /// when a message is stored, at most every [`EXPIRY_CHECK`] and at
    /// least every [`EXPIRY_IDLE`].
    async fn sweep_expired(self) {
        let cancel = self.shared.cancel.clone();
        loop {
            let swept_at = tokio::time::Instant::now();
            let shared = self.shared.clone();
            let now = self.shared.clock.now();
            let (swept, next) = tokio::task::spawn_blocking(move || {
                let swept = shared.ledger.sweep(&shared.profile, now);
                (swept, shared.profile.next_expiry())
            })
            .await
            .unwrap_or((Ok(Default::default()), Ok(None)));
            match swept {
                Ok(swept) if swept.count() == 0 => {}
                Ok(swept) => {
                    let count = swept.count();
                    // What they counted against their authors' budgets is
                    // free again (given back as they were deleted).
                    tracing::info!(count, "disappearing messages deleted");
                    carrying::expired(self.shared.clone()).await;
                    let _ = self.shared.events.send(NodeEvent::Expired { count });
                }
                Err(e) => tracing::warn!("deleting expired messages failed: {e}"),
            }
            let wait = next
                .ok()
                .flatten()
                .map(|due| Duration::from_millis(due.saturating_sub(now)))
                .unwrap_or(EXPIRY_IDLE)
                .clamp(EXPIRY_CHECK, EXPIRY_IDLE);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.shared.registry.stored.notified() => {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep_until(swept_at + EXPIRY_CHECK) => {}
                    }
                }
            }
        }
    }

    /// Sets how long messages last in a conversation (`group`: a group's
    /// name, else a contact's), from now on; `None`: they stay.
    pub async fn set_timer(
        &self,
        conversation: &str,
        group: bool,
        lasts: Option<Time>,
    ) -> Result<(), ProfileError> {
        let profile = self.shared.profile.clone();
        let name = conversation.to_owned();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let (id, key) = tokio::task::spawn_blocking(move || {
            if group {
                profile.set_group_timer(&name, lasts, now, &mut rng)
            } else {
                profile.set_timer(&name, lasts, now, &mut rng)
            }
        })
        .await
        .map_err(|_| ProfileError::Closed)??;
        self.shared.registry.announce(id, key, None);
        Ok(())
    }

    /// Gives a contact another name ([`crate::Profile::rename_contact`]);
    /// live sessions name them by it from now on.
    pub async fn rename_contact(
        &self,
        contact: &str,
        name: &str,
    ) -> Result<crate::ContactRecord, ProfileError> {
        let profile = self.shared.profile.clone();
        let (contact, name) = (contact.to_owned(), name.to_owned());
        let old = contact.clone();
        let mut rng = self.shared.rng();
        let record =
            tokio::task::spawn_blocking(move || profile.rename_contact(&contact, &name, &mut rng))
                .await
                .map_err(|_| ProfileError::Closed)??;
        if record.name != old {
            let _ = self.shared.events.send(NodeEvent::ContactRenamed {
                from: old,
                to: record.name.clone(),
            });
        }
        Ok(record)
    }

    /// Deletes a contact and the conversation with them
    /// ([`crate::Profile::delete_contact`]): their sessions end, and the
    /// node dials them no more.
    pub async fn delete_contact(&self, contact: &str) -> Result<crate::Deleted, ProfileError> {
        let profile = self.shared.profile.clone();
        let name = contact.to_owned();
        let mut rng = self.shared.rng();
        let now = self.shared.clock.now();
        let (deleted, newer) = tokio::task::spawn_blocking(move || {
            let deleted = profile.delete_contact(&name, now, &mut rng)?;
            // A contact's mailbox deleted: the newer one they named, if
            // any, is theirs now.
            let newer = match &deleted.mailbox_of {
                Some(owner) => profile
                    .take_newer_mailbox(owner, &deleted.contact.public, now, &mut rng)
                    .unwrap_or_else(|e| {
                        tracing::warn!("a contact's newer mailbox not taken: {e}");
                        Vec::new()
                    }),
                None => Vec::new(),
            };
            Ok::<_, ProfileError>((deleted, newer))
        })
        .await
        .map_err(|_| ProfileError::Closed)??;
        self.contact_deleted(&deleted).await;
        if !newer.is_empty() {
            self.contacts_added(&newer).await;
        }
        Ok(deleted)
    }

    /// After a contact was deleted here ([`crate::Profile::delete_contact`]):
    /// their sessions end, their budget scopes and when they were seen
    /// are forgotten, texts to them stop spreading through carriers, the
    /// user's mailbox gets the new list, and the node says so.
    pub(crate) async fn contact_deleted(&self, deleted: &crate::Deleted) {
        let public = deleted.contact.public;
        self.shared.registry.forget(&public);
        // What the ledger counted of their conversation is gone.
        self.shared.ledger.drop_scopes(&deleted.groups);
        self.clone().reach_record(public).await;
        carrying::contact_deleted(self.shared.clone(), public).await;
        for (group, key) in &deleted.told {
            self.shared.registry.announce(*group, *key, None);
        }
        let _ = self.shared.events.send(NodeEvent::ContactDeleted {
            name: deleted.contact.name.clone(),
        });
    }

    /// Changes the user's display name ([`crate::Profile::rename`]) and
    /// tells the groups the user is in (a NAME message in each, §14.5).
    pub async fn rename(&self, name: &str) -> Result<(), ProfileError> {
        let profile = self.shared.profile.clone();
        let name = name.to_owned();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let written = tokio::task::spawn_blocking(move || {
            profile.rename(&name, &mut rng)?;
            profile.write_chosen_names(None, now, &mut rng)
        })
        .await
        .map_err(|_| ProfileError::Closed)??;
        for (group, key) in written {
            self.shared.registry.announce(group, key, None);
        }
        Ok(())
    }

    /// Gives memory freed after a burst of traffic back to the OS once the
    /// node goes quiet: the allocator keeps freed memory in per-thread
    /// arenas, and a sync of 100,000 messages passes through four threads.
    async fn trim_when_idle(self) {
        let cancel = self.shared.cancel.clone();
        let moved = || {
            self.shared.bytes_sent.load(Ordering::Relaxed)
                + self.shared.bytes_received.load(Ordering::Relaxed)
        };
        let mut last = moved();
        let mut busy = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(IDLE_CHECK) => {}
            }
            let now = moved();
            if now != last {
                busy = true;
            } else if busy {
                busy = false;
                release_free_memory();
            }
            last = now;
        }
    }

    /// A link a remote opened: admitted, or dropped before any work.
    fn accept(&self, link: Link) {
        match self.shared.guard.admit_inbound(&link.remote) {
            Ok(pending) => self.spawn_link(link, pending, None),
            Err(why) => tracing::debug!(remote = %link.remote, "link dropped: {why}"),
        }
    }

    /// Runs an outbound link, admitted from `dial`'s budget; `done` hears
    /// when it ended, and whose contact's session ran on it, if one did.
    fn admit_outbound(
        &self,
        link: Link,
        dial: Dial,
        done: Option<tokio::sync::oneshot::Sender<Option<PublicIdentity>>>,
    ) {
        match self.shared.guard.admit_outbound(dial) {
            Ok(pending) => self.spawn_link(link, pending, done),
            Err(why) => tracing::debug!("link dropped: {why}"),
        }
    }

    fn spawn_link(
        &self,
        link: Link,
        pending: guard::Pending,
        done: Option<tokio::sync::oneshot::Sender<Option<PublicIdentity>>>,
    ) {
        let shared = self.shared.clone();
        let reach = self.shared.reach.clone();
        self.shared.tasks.spawn(async move {
            let remote = link.remote.clone();
            let kind = link.kind;
            let (contact, ended) = link::run(shared, link, pending).await;
            match ended {
                Ok(()) => tracing::debug!(%remote, %kind, "link closed"),
                Err(LinkError::Session(strand_sync::SessionError::Preamble(why))) => {
                    tracing::debug!(%remote, %kind, "link ended before a session: {why}")
                }
                Err(e) => tracing::info!(%remote, %kind, "link ended: {}", chain(&e)),
            }
            if let Some(done) = done {
                let _ = done.send(contact);
            }
            // A contact may have no link left: the relay dialler looks
            // again (it skipped them while this link was up, and would
            // otherwise sleep until its next timer).
            reach.wake.notify_one();
        });
    }

    fn transport(&self, kind: LinkKind) -> Option<Arc<dyn Transport>> {
        self.shared
            .transports
            .iter()
            .find(|t| t.kind() == kind)
            .cloned()
    }

    /// Waits for a token to dial a contact (or an address the user gave):
    /// nothing a stranger does spends these ([`Dial::Contact`]), so the
    /// wait is for other contacts' dials only, and a dial to a contact
    /// goes late rather than not at all. `false` once the node stops.
    pub(crate) async fn contact_dial(&self) -> bool {
        loop {
            let wait = match self.shared.guard.try_dial(Dial::Contact) {
                Ok(()) => return true,
                Err(wait) => wait,
            };
            tokio::select! {
                _ = self.shared.cancel.cancelled() => return false,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// What reports a long request's progress: with a task number,
    /// [`NodeEvent::Progress`] events, one per whole percent (and the
    /// last); without, nothing.
    pub(crate) fn reporter(&self, task: Option<u64>) -> impl Fn(u64, u64) + Send + Sync + 'static {
        let events = task.map(|task| (task, self.shared.events.clone()));
        let last = std::sync::atomic::AtomicU64::new(u64::MAX);
        move |done: u64, total: u64| {
            let Some((task, events)) = &events else {
                return;
            };
            let percent = (done.min(total) * 100).checked_div(total).unwrap_or(100);
            if last.swap(percent, std::sync::atomic::Ordering::Relaxed) != percent {
                let _ = events.send(NodeEvent::Progress {
                    task: *task,
                    done,
                    total,
                });
            }
        }
    }

    /// Subscribes to node events.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.shared.events.subscribe()
    }

    /// The profile (a shared handle: reads never wait on sessions).
    pub fn profile(&self) -> &Profile {
        &self.shared.profile
    }

    /// Runs `f` on the profile.
    pub fn with_profile<R>(&self, f: impl FnOnce(&Profile) -> R) -> R {
        f(&self.shared.profile)
    }

    /// Every transport's addresses.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let mut out = Vec::new();
        for t in &self.shared.transports {
            out.extend(t.info().await.addresses);
        }
        out
    }

    /// The listening addresses, once there is at least one. Empty if none
    /// within `within`.
    pub async fn wait_listening(&self, within: Duration) -> Vec<Multiaddr> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let addrs = self.listen_addrs().await;
            if !addrs.is_empty() || tokio::time::Instant::now() >= deadline {
                return addrs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Writes a message to `contact` and hands it to any live session. It
    /// is `queued` until it goes out on a link.
    pub async fn send(&self, contact: &str, text: &str) -> Result<Key, ProfileError> {
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let (group, key) = self
            .shared
            .profile
            .write_async(contact, text, now, &mut rng)
            .await?;
        self.shared.registry.announce(group, key, None);
        self.spread(group, key).await;
        Ok(key)
    }

    /// Creates a private group of this user and the named contacts, and
    /// writes each a welcome; sessions up now start syncing it. Returns
    /// its key ([`crate::group_key`]).
    pub async fn create_group(&self, name: &str, with: &[String]) -> Result<String, ProfileError> {
        let profile = self.shared.profile.clone();
        let (name, with) = (name.to_owned(), with.to_vec());
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let (root, written) =
            tokio::task::spawn_blocking(move || profile.create_group(&name, &with, now, &mut rng))
                .await
                .map_err(|_| ProfileError::Closed)??;
        self.after_group_change(written);
        Ok(crate::group_key(&root))
    }

    /// Adds, removes, leaves or makes an admin, at the group's newest
    /// epoch.
    pub async fn change_group(
        &self,
        group: &str,
        action: crate::GroupAction,
    ) -> Result<(), ProfileError> {
        let profile = self.shared.profile.clone();
        let group = group.to_owned();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let written = tokio::task::spawn_blocking(move || {
            profile.change_group(&group, &action, now, &mut rng)
        })
        .await
        .map_err(|_| ProfileError::Closed)??;
        self.after_group_change(written);
        Ok(())
    }

    /// Writes a text to a group and hands it to the live sessions that
    /// sync it.
    pub async fn send_group(&self, group: &str, text: &str) -> Result<Key, ProfileError> {
        let profile = self.shared.profile.clone();
        let (group, text) = (group.to_owned(), text.to_owned());
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let (id, key) =
            tokio::task::spawn_blocking(move || profile.write_group(&group, &text, now, &mut rng))
                .await
                .map_err(|_| ProfileError::Closed)??;
        self.shared.registry.announce(id, key, None);
        Ok(key)
    }

    /// Sends a file (see [`crate::Profile::send_file`]) and hands its
    /// manifest, then its chunks, to the live sessions that sync the
    /// conversation. Returns the manifest's key.
    pub async fn send_file(
        &self,
        to: crate::Conversation<'_>,
        path: &std::path::Path,
    ) -> Result<Key, ProfileError> {
        self.send_file_reporting(to, path, |_, _| {}).await
    }

    /// [`Node::send_file`], telling `report` the bytes sealed so far and
    /// the file's size as it goes.
    pub async fn send_file_reporting(
        &self,
        to: crate::Conversation<'_>,
        path: &std::path::Path,
        report: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<Key, ProfileError> {
        let profile = self.shared.profile.clone();
        let path = path.to_path_buf();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let owned = match to {
            crate::Conversation::Contact(c) => (c.to_owned(), false),
            crate::Conversation::Group(g) => (g.to_owned(), true),
        };
        let sent = tokio::task::spawn_blocking(move || {
            let to = if owned.1 {
                crate::Conversation::Group(&owned.0)
            } else {
                crate::Conversation::Contact(&owned.0)
            };
            profile.send_file_reporting(to, &path, now, &mut rng, &report)
        })
        .await
        .map_err(|_| ProfileError::Closed)??;
        // The manifest (and its preview) at once; the chunks by
        // reconciling again, behind anything else queued.
        self.shared
            .registry
            .announce(sent.group, sent.manifest, None);
        self.shared.registry.resync(sent.group);
        Ok(sent.manifest)
    }

    /// Follows welcomes and membership changes a link just stored.
    pub(crate) async fn group_messages(self, stored: Vec<(strand_sync::GroupId, Key)>) {
        let profile = self.shared.profile.clone();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let result = tokio::task::spawn_blocking(move || {
            profile.apply_group_messages(&stored, now, &mut rng)
        })
        .await;
        match result {
            Ok(Ok(written)) => self.after_group_change(written),
            Ok(Err(e)) => tracing::warn!("following a group change failed: {e}"),
            Err(_) => {}
        }
    }

    /// Writes a bundle of everything shared with `contact` to a new file
    /// (see [`crate::Profile::export_bundle`]).
    pub async fn export_bundle(
        &self,
        contact: &str,
        to: &std::path::Path,
    ) -> Result<crate::Exported, ProfileError> {
        self.export_bundle_reporting(contact, to, |_, _| {}).await
    }

    /// [`Node::export_bundle`], telling `report` the messages written and
    /// how many there are.
    pub async fn export_bundle_reporting(
        &self,
        contact: &str,
        to: &std::path::Path,
        report: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<crate::Exported, ProfileError> {
        // The file first: a path that cannot be written changes nothing.
        self.shared.profile.contact(contact)?;
        let file = crate::profile::bundles::create_bundle_file(to)?;
        self.export_bundle_into(contact, file, to, report).await
    }

    /// Takes in a bundle file (see [`crate::Profile::import_bundle`]) and
    /// hands what it brought to live sessions: the contact's other links
    /// and group members get it as if it had arrived over a link.
    pub async fn import_bundle(
        &self,
        path: &std::path::Path,
    ) -> Result<crate::Imported, ProfileError> {
        self.import_bundle_reporting(path, |_, _| {}).await
    }

    /// [`Node::import_bundle`], telling `report` how far through its
    /// readings of the file it is (bytes).
    pub async fn import_bundle_reporting(
        &self,
        path: &std::path::Path,
        report: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<crate::Imported, ProfileError> {
        let profile = self.shared.profile.clone();
        let path = path.to_path_buf();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let (ledger, budgets) = (self.shared.ledger.clone(), self.shared.config.budgets);
        let (mut imported, maker) = tokio::task::spawn_blocking(move || {
            profile.import_bundle_with(&path, &ledger, &budgets, now, &mut rng, &report)
        })
        .await
        .map_err(|_| ProfileError::Closed)??;
        // New messages past what an import lists: their logs are
        // reconciled whole, and the pools read whole.
        for (group, key) in &imported.stored.keys {
            self.shared.registry.announce(*group, *key, None);
        }
        for group in &imported.stored.logs {
            self.shared.registry.resync(*group);
        }
        let book = self.shared.profile.book();
        let pools: Vec<GroupId> = book.sync.iter().map(|c| c.pool.id).collect();
        if pools.iter().any(|g| imported.stored.beyond(g)) {
            carrying::read_unread(self.shared.clone()).await;
        } else {
            let pool: Vec<(GroupId, Key)> = imported
                .stored
                .keys
                .iter()
                .filter(|(g, _)| pools.contains(g))
                .copied()
                .collect();
            if !pool.is_empty() {
                carrying::pool_received(self.shared.clone(), pool).await;
            }
        }
        // Contacts its mailbox records deleted and added, followed up as
        // a link's are.
        self.mailbox_taken(&imported.mailbox).await;
        // A reach record it brought counts at once, as one a link brings
        // does (the newest counts; this one may be no newer: no change).
        if !imported.stored.is_empty() {
            self.clone().reach_record(maker).await;
        }
        self.after_group_change(std::mem::take(&mut imported.written));
        if imported.new > 0 {
            let _ = self.shared.events.send(NodeEvent::Imported {
                contact: imported.contact.clone(),
                messages: imported.new,
            });
        }
        Ok(imported)
    }

    /// Hands what a group operation wrote to live sessions, and the epochs
    /// each contact now shares to their sessions.
    fn after_group_change(&self, written: crate::profile::groups::Written) {
        if written.epochs {
            self.shared
                .registry
                .refresh_groups(&self.shared.profile.book());
            let _ = self.shared.events.send(NodeEvent::GroupsChanged);
        }
        for (group, key) in written.messages {
            self.shared.registry.announce(group, key, None);
        }
    }

    /// Adds a contact from an invite code; links started from now on
    /// recognise them.
    pub async fn add_contact(&self, code: &str, name: &str) -> Result<ContactRecord, ProfileError> {
        let invite = Invite::from_text(code)?;
        let profile = self.shared.profile.clone();
        let name = name.to_owned();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let record =
            tokio::task::spawn_blocking(move || profile.add_contact(&invite, &name, now, &mut rng))
                .await
                .map_err(|_| ProfileError::Closed)??;
        // Where their invite says they can be reached: dial them there;
        // and devices around that may be theirs.
        self.contact_added(&record).await;
        Ok(record)
    }

    /// Why Bluetooth is off, when it was asked for and could not start.
    pub fn bluetooth_off(&self) -> Option<&str> {
        self.shared.bluetooth_off.as_deref()
    }

    /// The node's state.
    pub async fn status(&self) -> Status {
        let p = &self.shared.profile;
        let mut transports = Vec::new();
        for t in &self.shared.transports {
            let info = t.info().await;
            transports.push(TransportStatus {
                kind: info.kind.to_string(),
                addresses: info.addresses.iter().map(|a| a.to_string()).collect(),
                discovery: info.discovery,
                ephemeral_id: info.ephemeral_id,
                relays: info
                    .relays
                    .iter()
                    .map(|r| self.relay_status(r.relay.to_string(), Some(&r.state)))
                    .collect(),
                external: info.external.iter().map(|a| a.to_string()).collect(),
                #[cfg(target_os = "linux")]
                bluetooth: info.bluetooth.map(|b| BluetoothStatus {
                    adapter: b.adapter,
                    devices_seen: b.devices_seen,
                    links: b.links,
                    bytes_sent: b.bytes_sent,
                    bytes_received: b.bytes_received,
                    psm: b.psm,
                }),
                #[cfg(not(target_os = "linux"))]
                bluetooth: None,
            });
        }
        let sessions = self.shared.registry.sessions();
        Status {
            name: p.identity().name().to_owned(),
            profile: p.dir().display().to_string(),
            transports,
            seen: {
                let book = p.book();
                self.shared
                    .registry
                    .seen(|key| book.sync_contact(key).map(|(r, _)| r.name.clone()))
            },
            links: sessions + self.shared.guard.pending(),
            sessions,
            bytes_sent: self.shared.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.shared.bytes_received.load(Ordering::Relaxed),
            messages: p.stored_messages().unwrap_or(0),
            serving: match &*self.shared.relay_server.lock().await {
                Some(server) => {
                    let stats = server.stats().await;
                    Some(ServingStatus {
                        addresses: self
                            .shared
                            .serving()
                            .iter()
                            .map(|a| a.to_string())
                            .collect(),
                        reservations: stats.reservations,
                        circuits: stats.circuits,
                    })
                }
                None => None,
            },
            bluetooth_off: self.shared.bluetooth_off.clone(),
            running: !self.shared.config.offline,
            woke: self.shared.wakes.load(Ordering::Relaxed),
            bluetooth_scan: self.shared.duty.borrow().name().to_owned(),
            relays: p.relays().unwrap_or_default(),
            contacts: p.contacts().len(),
            panics: panics::recorded(),
            name_problem: p.own_name_problem(),
            peers: self.shared.peers.addresses(),
        }
    }

    /// One relay's status line.
    fn relay_status(&self, address: String, state: Option<&ReservationState>) -> RelayStatus {
        let p = &self.shared.profile;
        let source = if self
            .shared
            .serving()
            .iter()
            .any(|a| a.to_string() == address)
        {
            "this node"
        } else if p.relays().unwrap_or_default().contains(&address) {
            "yours"
        } else {
            "contact"
        };
        relay_status(address, state, source)
    }

    /// The relays: the profile's list, the one this node runs, and the
    /// ones contacts run for their contacts, each with its reservation.
    pub async fn relays(&self) -> Vec<RelayStatus> {
        let states = match &self.shared.relays {
            Some(r) => r.relay_states().await,
            None => Vec::new(),
        };
        let mut out: Vec<RelayStatus> = states
            .iter()
            .map(|r| self.relay_status(r.relay.to_string(), Some(&r.state)))
            .collect();
        for r in self.shared.profile.relays().unwrap_or_default() {
            if !out.iter().any(|o| o.address == r) {
                out.push(relay_status(r, None, "yours"));
            }
        }
        out
    }

    /// Adds a relay to the profile: contacts learn it on their next sync
    /// (live sessions at once), and the node reserves on it now.
    pub async fn add_relay(&self, addr: &str) -> Result<crate::RelayChange, ProfileError> {
        let profile = self.shared.profile.clone();
        let addr = addr.to_owned();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let change = tokio::task::spawn_blocking(move || profile.add_relay(&addr, now, &mut rng))
            .await
            .map_err(|_| ProfileError::Closed)??;
        self.relays_changed(&change.written).await;
        Ok(change)
    }

    /// Removes a relay from the profile; `None` if it was not listed.
    pub async fn remove_relay(
        &self,
        addr: &str,
    ) -> Result<Option<crate::RelayChange>, ProfileError> {
        let profile = self.shared.profile.clone();
        let addr = addr.to_owned();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let change =
            tokio::task::spawn_blocking(move || profile.remove_relay(&addr, now, &mut rng))
                .await
                .map_err(|_| ProfileError::Closed)??;
        if let Some(c) = &change {
            self.relays_changed(&c.written).await;
        }
        Ok(change)
    }

    /// After the relay list or a contact's offers changed: live sessions
    /// get the new records, and the client reserves on the new list.
    pub(crate) async fn relays_changed(&self, written: &[(strand_sync::GroupId, Key)]) {
        for (g, k) in written {
            self.shared.registry.announce(*g, *k, None);
        }
        if let Some(r) = &self.shared.relays {
            let (own, borrowed) = relay_list(
                &self.shared.profile,
                &self.shared.serving(),
                &self.shared.reach,
            );
            if let Err(e) = r.set_relays(own, borrowed).await {
                tracing::warn!("updating the relays failed: {e}");
            }
        }
    }

    /// Stops the node: sessions say goodbye (for at most
    /// [`SHUTDOWN_GRACE`]), transports stop, pending writes are committed,
    /// and the profile is released. Returns once another process can open
    /// the profile.
    pub async fn shutdown(&self) {
        let s = &self.shared;
        s.cancel.cancel();
        s.registry.close_all();
        s.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, s.tasks.wait())
            .await
            .is_err()
        {
            tracing::debug!("sessions did not finish in time; ending them");
        }
        for t in &s.transports {
            t.shutdown().await;
        }
        if let Some(server) = s.relay_server.lock().await.take() {
            server.shutdown().await;
        }
        let profile = s.profile.clone();
        let _ = tokio::task::spawn_blocking(move || profile.close()).await;
    }
}

fn relay_status(address: String, state: Option<&ReservationState>, source: &str) -> RelayStatus {
    let (state, error, retry_in) = match state {
        None => ("not running".to_owned(), None, None),
        Some(ReservationState::Failing {
            error, retry_in, ..
        }) => ("failing".to_owned(), Some(error.clone()), Some(*retry_in)),
        Some(other) => (other.to_string(), None, None),
    };
    RelayStatus {
        address,
        state,
        error,
        retry_in,
        source: source.to_owned(),
    }
}

/// Starts the relay client (and the relay for contacts, if asked), and
/// tells contacts where this node can be reached.
async fn start_relays(
    profile: &Profile,
    settings: &RelaySettings,
    reach: &Arc<relaying::Reachability>,
    clock: Clock,
    mut rng: ChaCha20Rng,
    events: mpsc::Sender<TransportEvent>,
) -> Result<(Relays, Option<RelayServer>, Vec<Multiaddr>), NodeError> {
    let seed = profile.relay_seed(&mut rng)?;
    let epoch = settings.epoch;
    let identity = move |e: u64| strand_sync::relay_key(&seed, e);
    let (server, serving) = match &settings.serve {
        Some(serve) => {
            let only = relaying::contacts_only(reach.clone(), Arc::new(identity), epoch, clock);
            let server = RelayServer::start(RelayServerConfig {
                listen: serve.listen.clone(),
                announce: serve.announce.clone(),
                key: profile.relay_server_key(),
                limits: RelayLimits::default(),
                only: Some(only),
            })
            .await?;
            let addrs = serving_addresses(server.addresses().await);
            if addrs.is_empty() {
                // Listening on an unspecified address with none of its
                // family on this device yet (RelayServer::start), or only
                // loopback, which such a relay is never reached at: no
                // address to offer contacts yet; each change is told as
                // it comes ([`offering`]).
                tracing::info!(
                    "the relay for contacts has no address yet; contacts are told once it has one"
                );
            }
            (Some(server), addrs)
        }
        None => (None, Vec::new()),
    };
    offering::publish_offers(profile, &serving, clock.now(), &mut rng)?;
    let (own, borrowed) = relay_list(profile, &serving, reach);
    let mut config = RelayConfig::new(own, Arc::new(identity), epoch);
    config.borrowed = borrowed;
    config.hole_punch = settings.hole_punch;
    config.listen = settings.listen.clone();
    // Its epochs follow the node's clock, as the relay for contacts does
    // (a test's fixed clock holds them still).
    config.clock = Arc::new(move || std::time::UNIX_EPOCH + Duration::from_millis(clock.now()));
    let client = Relays::start(config, events).await?;
    Ok((client, server, serving))
}

/// The addresses of the relay this node runs that contacts are told:
/// those of the widest scope it has ([`strand_transport::widest_scope`]:
/// public ones if any, else LAN ones, else loopback ones, which the relay
/// gives only when set to listen on loopback, as in tests), at
/// most [`MAX_REACH_ADDRESSES`](strand_sync::limits::MAX_REACH_ADDRESSES).
/// A contact far away could not dial a LAN address, and would learn from
/// it how the user's home network is numbered. A relay behind port
/// forwarding is told its public address with `--relay-announce`.
fn serving_addresses(all: Vec<Multiaddr>) -> Vec<Multiaddr> {
    let mut out = strand_transport::widest_scope(all);
    out.truncate(strand_sync::limits::MAX_REACH_ADDRESSES);
    out
}

/// Whether an address others confirmed reaches this device from the
/// internet: not through a relay, and outside this machine and its LAN
/// (`strand status` and the app's network screen say so).
pub fn is_public_address(address: &str) -> bool {
    !address.contains("/p2p-circuit")
        && address
            .parse::<strand_transport::Multiaddr>()
            .is_ok_and(|a| strand_transport::scope(&a) == strand_transport::Scope::Global)
}

/// The relays to reserve on: this node's own (the profile's, which its
/// user chose, and the one it runs), and those contacts lent it (the ones
/// they run for their contacts, [`relaying::Reachability::offers`]).
/// Contacts choose what they lend, anywhere: only this node's own relays
/// set how near a hole punch may dial ([`RelayConfig::borrowed`]).
fn relay_list(
    profile: &Profile,
    serving: &[Multiaddr],
    reach: &relaying::Reachability,
) -> (Vec<Multiaddr>, Vec<Multiaddr>) {
    let mut own: Vec<Multiaddr> = profile
        .relays()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.parse().ok())
        .collect();
    for a in serving {
        if !own.contains(a) {
            own.push(a.clone());
        }
    }
    let borrowed = reach
        .offers()
        .into_iter()
        .filter(|a| !own.contains(a))
        .collect();
    (own, borrowed)
}

/// Hands memory the allocator holds but nobody uses back to the OS.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no
    // preconditions and is thread safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>(_: T) {}
    let _ = |n: Node| is_send(n.shutdown().boxed());
}

/// For unit tests: Ann's node, started with `config` on a new profile in
/// `dir` (passphrase "pass", the quick key derivation). The caller keeps
/// `dir` for as long as the node runs.
#[cfg(test)]
pub(crate) async fn test_node(dir: &std::path::Path, config: NodeConfig) -> Node {
    let profile = Profile::create(
        &dir.join("ann"),
        "ann",
        "pass",
        crate::KdfParams::insecure_for_tests(),
        &mut os_rng(),
    )
    .unwrap();
    Node::start(profile, config).await.unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An older node's status says nothing of the name: the warning is
    /// asked of the name itself, so a newer app still warns.
    #[test]
    fn an_older_node_s_status_still_warns_of_the_name() {
        let older = |name: &str| -> Status {
            serde_json::from_value(serde_json::json!({
                "name": name, "profile": "/p", "transports": [], "seen": [],
                "links": 0, "sessions": 0, "bytes_sent": 0, "bytes_received": 0,
                "messages": 0,
            }))
            .unwrap()
        };
        let warning = older("Ann\u{2800}").name_warning().expect("a warning");
        assert!(
            warning.starts_with("Careful: your name") && warning.contains("braille blank"),
            "{warning}"
        );
        assert_eq!(older("Ann").name_warning(), None);
    }

    /// A quiet LAN (no identity: its last rotation, or its start, could
    /// listen nowhere) was shown as only "not listening", as if it had
    /// stopped for good; it says it is retrying. One with an identity and
    /// no address was "not listening" too, though it listens (on an
    /// unspecified address, the device having none of its family yet);
    /// it says so now.
    #[test]
    fn a_quiet_lan_is_shown_retrying() {
        let lan = |id: Option<&str>| TransportStatus {
            kind: "LAN".into(),
            addresses: Vec::new(),
            discovery: true,
            ephemeral_id: id.map(Into::into),
            relays: Vec::new(),
            external: Vec::new(),
            bluetooth: None,
        };
        assert_eq!(
            lan(None).not_listening_note(),
            "not listening (no address could be bound; retrying)"
        );
        assert_eq!(
            lan(Some("12D3KooW")).not_listening_note(),
            "listening, no address yet (each is used as the device gets one)"
        );
        let relay = TransportStatus {
            kind: "relay".into(),
            ..lan(None)
        };
        assert_eq!(relay.not_listening_note(), "not listening");
    }

    /// A new message's event carries the start of its text whatever
    /// its length, cut between characters: what a follower that reads
    /// slowly keeps the node holding is bounded (before, the whole text,
    /// up to a megabyte an event). An older node's event, which has no
    /// `cut`, reads as whole.
    #[test]
    fn a_received_event_is_small_whatever_the_text() {
        let key = Key {
            time: 1,
            id: strand_sync::MessageId([7; 32]),
        };
        // Control characters take six bytes each in JSON (`\u0001`), the
        // most a character takes there.
        let whole = "\u{1}🙂".repeat(strand_sync::limits::MAX_BODY_LEN / 5);
        let event = NodeEvent::received("Ann".into(), None, None, &key, &whole);
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            json.len() < limits::RECEIVED_PREVIEW * 6 + 256,
            "an event of {} bytes",
            json.len()
        );
        let NodeEvent::Received { text, cut, .. } = &event else {
            unreachable!("made as one")
        };
        assert!(*cut);
        assert_eq!(text.chars().count(), limits::RECEIVED_PREVIEW);
        assert!(whole.starts_with(text.as_str()));

        let short = NodeEvent::received("Ann".into(), None, None, &key, "hi");
        assert!(matches!(&short, NodeEvent::Received { text, cut: false, .. } if text == "hi"));
        let older = json.replace(",\"cut\":true", "");
        assert_ne!(older, json);
        assert!(matches!(
            serde_json::from_str::<NodeEvent>(&older).unwrap(),
            NodeEvent::Received { cut: false, .. }
        ));
    }

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn contacts_are_told_only_the_relays_widest_addresses() {
        let id = "/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        let lan = format!("/ip4/192.168.1.20/tcp/4001{id}");
        let public = format!("/ip4/203.0.113.7/tcp/4001{id}");
        let named = format!("/dns4/relay.example.org/tcp/4001{id}");
        let loopback = format!("/ip4/127.0.0.1/tcp/4001{id}");
        let ula = format!("/ip6/fd00::20/tcp/4001{id}");
        // A public address (announced, or the machine's own) hides the
        // home network's.
        assert_eq!(
            serving_addresses(addrs(&[&loopback, &lan, &public, &ula, &named])),
            addrs(&[&public, &named])
        );
        // No public one: the LAN's, for contacts on it.
        assert_eq!(
            serving_addresses(addrs(&[&loopback, &lan, &ula])),
            addrs(&[&lan, &ula])
        );
        // Only loopback (tests on one machine).
        assert_eq!(serving_addresses(addrs(&[&loopback])), addrs(&[&loopback]));
        assert!(serving_addresses(Vec::new()).is_empty());
    }

    #[test]
    fn only_internet_addresses_are_called_public() {
        assert!(is_public_address("/ip4/203.0.113.7/tcp/4001"));
        for a in [
            "/ip4/192.168.1.20/tcp/4001",
            "/ip6/fd00::20/tcp/4001",
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit",
            "not an address",
        ] {
            assert!(!is_public_address(a), "{a}");
        }
    }
}
