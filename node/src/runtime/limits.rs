//! Every bound the node enforces, with the reason for each number.
//!
//! Strangers get bounded work: a link that has not authenticated holds a
//! *pending* slot (few, and few per remote address or relay, and only for
//! the handshake timeout), and new links from one address or through one
//! relay are rate limited.
//! Contacts get sessions, which strangers cannot reach. The protocol's own
//! limits (frames, messages, rounds) are in [`strand_sync::limits`].

use std::time::Duration;

/// Links in their preamble (not yet authenticated) at once, from everyone.
/// Each costs a task, two small buffers and at most a few token scans; a
/// stranger holds one for at most strand-sync's handshake timeout (10 s).
pub const MAX_PENDING_LINKS: usize = 128;

/// Links this node opens to contacts (and to addresses the user gave)
/// that are in their preamble at once: a budget of their own, so
/// strangers filling [`MAX_PENDING_LINKS`], or devices found nearby
/// filling [`MAX_PENDING_DISCOVERY_DIALS`], never stop the node from
/// reaching its contacts.
pub const MAX_PENDING_DIALS: usize = 64;

/// Links this node opens to devices a transport found (who they are is
/// known only once they authenticate) that are in their preamble at once.
/// A made-up device that takes the link and says nothing holds its slot
/// for the handshake timeout (10 s): at [`DISCOVERY_DIALS_PER_SECOND`]
/// that could be 100 links, which this caps, apart from contacts'
/// [`MAX_PENDING_DIALS`]. An honest device leaves it when the preamble
/// ends, a round trip or two later, so 32 is more than a crowded LAN
/// needs at once.
pub const MAX_PENDING_DISCOVERY_DIALS: usize = 32;

/// Links in their preamble at once from one remote address (an IPv6
/// address counts by its /64; a relayed link by its relay,
/// [`MAX_PENDING_PER_RELAY`]). An honest
/// device opens one link per meeting (two while both dial); 4 leaves room
/// for a reconnect while keeping one address from taking the pending slots.
pub const MAX_PENDING_PER_REMOTE: usize = 4;

/// Links in their preamble at once that came through one relay, whoever
/// opened them. A relayed link's remote is only its id at the relay,
/// which a stranger makes afresh for nothing: counted by id, 32 made-up
/// ids of [`MAX_PENDING_PER_REMOTE`] links each would take all
/// [`MAX_PENDING_LINKS`] (32 × 4 = 128) and refuse every link others
/// open, contacts' too. The relay is this device's own connection, which
/// the remote does not choose; one relay, with everyone who dials through
/// it, holds at most a quarter of the slots (128 / 32: four relays, all
/// flooding, to fill them), and 96 stay for links through other relays,
/// on the LAN and over Bluetooth. Eight addresses' worth: room for the
/// contacts who reach this device through that relay at once after a
/// wake. A flood through one relay still keeps out contacts who come
/// through that relay while it lasts; this device's own dials to them are
/// paid from [`MAX_PENDING_DIALS`].
pub const MAX_PENDING_PER_RELAY: usize = 32;

// More than an address's share, less than the whole: one relay must not
// be able to fill the pending slots.
const _: () = assert!(
    MAX_PENDING_PER_REMOTE < MAX_PENDING_PER_RELAY && MAX_PENDING_PER_RELAY < MAX_PENDING_LINKS
);

/// New inbound links per second through one relay, sustained: four
/// addresses' worth ([`LINKS_PER_REMOTE_PER_SECOND`]), as a relay carries
/// the links of every contact who reaches this device through it. A flood
/// past it is refused before any work, as an address's is.
pub const LINKS_PER_RELAY_PER_SECOND: f64 = 8.0;

/// New inbound links one relay may bring at once after a quiet spell: as
/// many as it may have in their preamble ([`MAX_PENDING_PER_RELAY`]), so
/// the contacts who all dial at a wake get in together.
pub const LINKS_PER_RELAY_BURST: f64 = 32.0;

/// New inbound links per second from one remote address, sustained. An
/// honest device opens a link per meeting and redials every few seconds at
/// most; a flood past this is refused before any work (no beacon).
pub const LINKS_PER_REMOTE_PER_SECOND: f64 = 2.0;

/// New inbound links one remote address may open at once after a quiet
/// spell (the rate limiter's bucket).
pub const LINKS_PER_REMOTE_BURST: f64 = 8.0;

/// Remote addresses whose link rate is remembered. Past this, quiet ones
/// are forgotten first; a flood from more addresses than this still meets
/// [`MAX_PENDING_LINKS`].
pub const MAX_TRACKED_REMOTES: usize = 4096;

/// Authenticated sessions at once: a few per contact for a large contact
/// list. Strangers never hold one.
pub const MAX_SESSIONS: usize = 512;

/// Sessions with one contact at once. Two devices that dial each other at
/// the same moment may briefly have two; a third replaces the oldest (a
/// newly authenticated session is the one that works now).
pub const MAX_SESSIONS_PER_CONTACT: usize = 2;

/// Links this node opens per second, sustained, to devices transports
/// found (mDNS, hole punching, Bluetooth), who may be anyone: a LAN full
/// of announcements (or a stranger's made-up ones) cannot make it dial
/// without end. Dials to contacts are paid from a bucket of their own
/// ([`CONTACT_DIALS_PER_SECOND`]), so a flood of discoveries delays only
/// other discoveries.
pub const DISCOVERY_DIALS_PER_SECOND: f64 = 10.0;

/// Dials to devices found, at once after a quiet spell.
pub const DISCOVERY_DIAL_BURST: f64 = 20.0;

/// Devices found while no discovery dial was left
/// ([`DISCOVERY_DIALS_PER_SECOND`]) that wait to be dialled as tokens
/// come back, oldest first, each once. Discovery reports a device once
/// and only one side of a pair dials, so one skipped was otherwise not
/// dialled until the next rotation (15 minutes). As many as a contact
/// added or a wake dials at once ([`NEARBY_KEPT`]); they drain in 6.4 s at
/// the sustained rate. Past it the oldest waiting goes: the newest are the
/// likeliest still there, and a flood of made-up devices replaces its own
/// entries rather than grow (each is a 16-byte handle).
pub const MAX_SKIPPED_DIALS: usize = 64;

/// Links this node opens per second, sustained, to contacts: configured
/// peers (each every [`REDIAL`]), contacts through their relays (backing
/// off), a contact's device found nearby whose link ended (backing off).
/// Nothing a stranger does spends it; it bounds a very long contact list
/// or a bug, and a dial to a contact waits for its token rather than
/// being skipped.
pub const CONTACT_DIALS_PER_SECOND: f64 = 10.0;

/// Dials to contacts at once after a quiet spell: a wake dials every
/// contact through relays at once, so the first 64 go at once and the
/// rest follow at [`CONTACT_DIALS_PER_SECOND`].
pub const CONTACT_DIAL_BURST: f64 = 64.0;

/// How often configured peers are redialled while not connected.
pub const REDIAL: Duration = Duration::from_secs(5);

/// Addresses the node dials again and again ([`crate::NodeConfig::peers`],
/// `strand run --peer`, and the app's "dial an address":
/// [`crate::runtime::api::Request::AddPeer`]). Each is one task for the
/// node's life, however often it is given, dialling every [`REDIAL`] while
/// no link to it is up, paid from contacts' dials
/// ([`CONTACT_DIALS_PER_SECOND`]): 32 of them dial at most 6.4 times a
/// second, so even all unanswered they leave contacts through relays and
/// devices found nearby most of the bucket. A person types a handful (the
/// devices of a network that blocks multicast); past 32 an address is
/// refused, not queued. One none of the node's transports dials (a typo,
/// another protocol) is refused before it takes a place: it would fail
/// at every dial and hold the place for good.
pub const MAX_PEERS: usize = 32;

// Every configured peer dialled every REDIAL stays within contacts' rate.
const _: () = assert!((MAX_PEERS as f64) / (REDIAL.as_secs() as f64) < CONTACT_DIALS_PER_SECOND);

/// Connections the control socket serves at once (`strand` commands, the
/// app attached to a running node, `strand read --follow`). Each holds a
/// task, a file handle and its request line (up to 8 MiB) for as long as
/// it lasts: a follower for as long as it follows, a command that sends or
/// saves a file until it is done, one that says nothing for a minute.
/// A person runs a few at once; 64 leaves room for scripts and many
/// terminals following while keeping the node's handles (1,024 is a
/// common limit, shared with links and the store) and memory bounded.
/// One more is served only to ask the node's status or stop it
/// ([`RESERVED_CONTROL_CONNECTIONS`]); anything else it asks is answered
/// with why (`Refused`: the node is busy) and it is closed, so a command
/// says so instead of waiting without end.
pub const MAX_CONTROL_CONNECTIONS: usize = 64;

/// Connections the control socket serves past
/// [`MAX_CONTROL_CONNECTIONS`], only to ask whether the node runs and how
/// ([`crate::runtime::api::Request::Status`], which every command asks
/// first) or to stop it ([`crate::runtime::api::Request::Shutdown`]:
/// `strand wipe`, the app's wipe): so the user can still stop their own
/// node while every ordinary connection is held (64 terminals following,
/// a script, a process of theirs that connected and says nothing). Such a
/// connection's request line is read (bounded in size as every one is, and
/// in time to 5 s, not the minute others have, so connections that say
/// nothing hold the reserve only that long) before it is decided; any
/// other request on it is refused as past the bound. A command takes one at a time and gives it back as
/// soon as it is answered, so 4 lets a few run at once; past these too, a
/// connection is refused at once, before its request is read, so tasks
/// and handles stay bounded (68 in all).
pub const RESERVED_CONTROL_CONNECTIONS: usize = 4;

/// The longest a device found nearby waits to be dialled again after a
/// contact's link to it ended; a session that lasted at least this long
/// starts the wait at [`REDIAL`] again ([`super::Node`]'s `dial_nearby`).
pub const REDIAL_MAX: Duration = Duration::from_secs(300);

/// Devices discovered lately that a new contact's link is tried to at
/// once: at most this many, seen within [`NEARBY_FRESH`]. (A device found
/// before it was a contact got a link that was refused; without this the
/// two would wait for the next discovery, up to an identity rotation.)
pub const NEARBY_KEPT: usize = 64;
/// How recently a device must have been discovered to be tried again.
pub const NEARBY_FRESH: Duration = Duration::from_secs(15 * 60);

/// Packets queued for writing on one link: bounds memory per link to
/// 8 × 16 KiB and makes a slow reader slow down the session.
pub const WRITE_QUEUE: usize = 8;

/// Chunks read ahead on one link.
pub const READ_QUEUE: usize = 32;

/// Bytes read from a link at once.
pub const READ_CHUNK: usize = 64 * 1024;

/// Batches of received messages being verified or stored at once for one
/// link. Past it the link is not read (the sender waits: TCP's window).
/// Eight batches of a 64 KiB read each keep both cores and the writer busy
/// without holding more than about half a megabyte per link (plus at most
/// one large message).
pub const MAX_BATCHES_IN_FLIGHT: usize = 8;

/// Pool messages stored from one link and waiting for its carrying job
/// (while the node's carrier is busy with another step). Past it the link
/// is not read, as past [`MAX_BATCHES_IN_FLIGHT`]: a contact cannot grow
/// the list without bound, and an ordinary wait for the carrier (a drive
/// being written) does not stop the link. About a megabyte and a half.
pub const MAX_POOL_WAITING: usize = 16_384;

/// Node events kept for subscribers (the app, each follower of the
/// control socket): one ring for all of them, where an event stays until
/// every subscriber has read it or this many newer ones have taken its
/// place (the subscriber that was too slow is told how many it missed).
pub const EVENT_BUFFER: usize = 1024;

/// Characters of a new message's text that its
/// [`crate::NodeEvent::Received`] carries (cut between characters, and
/// marked `cut` when the text is longer). An event stays in memory until
/// the slowest follower has read it, or until [`EVENT_BUFFER`] newer ones
/// push it out: with whole texts (up to a megabyte each) a follower that
/// reads slowly (a terminal scrolled back, an app that is busy) made the
/// node hold up to a gigabyte; with 200 characters (at most 800 bytes)
/// the texts in the buffer stay under a megabyte. 200 is what a
/// notification shows of a text; whoever shows more (`strand read`, the
/// app's conversation) reads the message whole from the conversation.
pub const RECEIVED_PREVIEW: usize = 200;

/// Names a [`crate::NodeEvent::ContactsAdded`] carries; it counts the
/// rest. A mailbox device adds its owner's contacts in one step, up to
/// [`strand_sync::MAX_MAILBOX_CONTACTS`] (4096) at once: naming them all
/// made one event of hundreds of kilobytes, several times what a
/// follower's socket holds ([`super::control::FOLLOWER_SEND_BUFFER`]), in
/// one line the follower had to read whole, and held in the ring of
/// [`EVENT_BUFFER`] events until every subscriber read it. A name is at
/// most 64 bytes, twice that as JSON escapes quotes and backslashes, so
/// with 20 an event stays under 3 KB. 20 is more than a notification or a
/// line of text names; whoever shows them all reads the contact list.
pub const CONTACTS_ADDED_NAMES: usize = 20;

/// Commands (new messages to push, close) queued for one session.
pub const SESSION_COMMANDS: usize = 1024;

/// Transport events (incoming links, discoveries) queued for the node.
pub const TRANSPORT_EVENTS: usize = 256;

/// How often the node checks whether it has gone idle after moving bytes;
/// when it has, memory freed by the burst goes back to the OS (glibc
/// keeps it otherwise).
pub const IDLE_CHECK: Duration = Duration::from_secs(2);

/// The node sleeps until the next disappearing message is due, looking
/// again when a message is stored, but at most this often (one read of the
/// first `expiry` entry each time): messages go at most this late.
pub const EXPIRY_CHECK: Duration = Duration::from_secs(1);

/// The longest it sleeps without looking (a clock that jumped; tokio's
/// clock stops while the system sleeps, and waking looks at once).
pub const EXPIRY_IDLE: Duration = Duration::from_secs(5 * 60);

/// How long a finished link waits for its last bytes to drain to a peer
/// that may have stopped reading.
pub const LINK_DRAIN: Duration = Duration::from_secs(5);

/// How long [`crate::Node::shutdown`] lets sessions send their goodbye
/// before it ends them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long the contact with the larger relay id waits before dialling a
/// contact through relays (the other side dials at once), so one meeting
/// makes one link.
pub const RELAY_DIAL_DEFER: Duration = Duration::from_secs(2);

/// The first wait after a failed attempt to reach a contact through
/// relays; doubled after each failure.
pub const RELAY_MIN_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between attempts to reach a contact through relays.
pub const RELAY_MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
