//! strand-sync integration tests: one binary, one module per subject.
//!
//! - `invite`: invite codes round-trip and every malformed or altered code
//!   is refused with a clear error.
//! - `message`: creation and every validation rule.
//! - `session`: scripted two-peer sessions over the virtual-time harness:
//!   fresh sync, large logs, strangers, tampering, truncation, replay,
//!   oversize messages, timeouts, live messages, delivery, BLE-sized
//!   packets, lossy links, determinism, re-openings bounded by news,
//!   walks of a log bounded across a contact's sessions.
//! - `beacon`: discovery beacons and handshake tokens.
//! - `properties`: proptest: any two random logs converge to their union.
//! - `collision`: a member's colliding fingerprint sets cannot hide messages.
//! - `expiry`: disappearing messages: the signed expiry, never forwarded;
//!   a text or file that lasts no timer is refused.
//! - `files`: file chunks do not hold up texts; an altered chunk is refused.
//! - `groups`: groups added to a live session sync on it.
//! - `membership`: private groups over sessions: relay, leave, removal, forks.
//! - `membership_model`: proptest: hostile members cannot bend membership.
//! - `bundle`: drive bundles open only for their contact, whole and unchanged.
//! - `envelope`: sealed envelopes open only for their recipient; carriers
//!   see nothing linkable.

mod beacon;
mod bundle;
mod collision;
mod common;
mod envelope;
mod expiry;
mod files;
mod groups;
mod invite;
mod membership;
mod membership_model;
mod message;
mod properties;
mod session;
