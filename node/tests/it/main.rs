//! strand-node integration tests: one binary.
//!
//! - `profile`: creating, unlocking and locking profiles on real redb
//!   files; wrong passphrases, a second owner (another process), corrupt
//!   and newer files; what is and is not readable at rest; a command
//!   waits for a node that says it is starting, and for nothing else.
//! - `reach`: relays in the profile and the records that tell contacts
//!   about them, hidden from conversations.
//! - `relay`: nodes with no shared network syncing through a real relay on
//!   loopback: in this process, a stranger on the same relay, a circuit
//!   reset mid-sync.
//! - `sync`: two profiles' redb stores reconciled by strand-sync sessions.
//! - `interop`: a js-libp2p relay carries Strand's sync; a js-libp2p
//!   client uses `strand relay`.
//! - `lan`: two nodes in one process over real libp2p sockets on loopback;
//!   a long text's event carries only its start.
//! - `bundles`: removable-drive bundles between profiles that never met
//!   and from the command line; a named pipe or a folder given as one is
//!   refused at once.
//! - `cli`: the `strand` binary as separate processes: 100 messages each
//!   way, kill -9 mid-sync, a stranger, bad command-line input; the
//!   control socket's bounds (connections, pages, addresses dialled).
//! - `delete`: deleting a contact takes the conversation and nothing
//!   else, cuts a live session off, and frees a mailbox's place.
//! - `expiry`: disappearing messages deleted on every node, and not
//!   brought back by one that was off; a contact's text that vanishes at
//!   once is refused, and the link goes on.
//! - `files`: files and images to a contact and a group, saved
//!   byte-identical; a file that does not match its hash is refused.
//! - `flood`: a stranger that opens links as fast as asked (a helper).
//! - `groups`: private groups between three real nodes: relay through a
//!   common member, removal, leaving.
//! - `hub`: helpers for several nodes on an emulated link hub, and a
//!   stranger making up devices on it.
//! - `insiders`: a group's own hostile member against real nodes: made-up
//!   welcomes, back-dated changes, key boxes that do not open, floods,
//!   posts and timers into old epochs.
//! - `hostile`: attacks on real nodes: a stranger's flood,
//!   replayed hellos (and after a restart), receipts without
//!   acknowledgements, a contact dialling again for fresh walks of a log;
//!   shutdown releases the profile.
//! - `transcript`: the node writes strand-sync's reference bytes for a
//!   fixed link (the simulator's test checks the same).
//! - `transports`: one node on the LAN and emulated links at once, each
//!   link kind with its own session settings; devices found nearby, and
//!   dialling them (again) while a stranger makes up devices.
//! - `views`: summaries and unread counts, paged conversations, read marks,
//!   renaming, the schema 1 → 2 migration, backdated texts (1:1 and in
//!   groups) shown when they arrive.

mod bundles;
mod bus;
mod carry;
mod cli;
mod delete;
mod expiry;
mod files;
mod flood;
mod groups;
mod hostile;
mod hub;
mod insiders;
mod interop;
mod lan;
mod profile;
mod reach;
mod relay;
mod sync;
mod transcript;
mod transports;
mod verify;
mod views;
mod wipe;
