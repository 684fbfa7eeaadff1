//! strand-gui integration tests: one binary, every window on one UI thread
//! (Slint has one platform per process, and a window stays on the thread
//! that made it); `support::on_ui` runs each test's body there.
//!
//! - `support`: the UI thread, a window over a fresh profile, a second
//!   node, and waiting for the UI to settle.
//! - `onboarding`: first run creates a profile; weak and mismatched
//!   passphrases; lock and unlock; a wrong passphrase; a profile in use.
//! - `contacts`: adding a contact from a code (valid, bad, own, twice);
//!   sending appends a message.
//! - `drive`: import a bundle from a drive, and write one for a contact.
//! - `failures`: a panic shows on the Network screen.
//! - `files`: attach a file, receive an image with its preview, save it.
//! - `groups`: the groups screen against a second node: make a group, read
//!   a member's text with its author, add and remove members.
//! - `keyboard`: real pointer and key events: arrows in the contact list,
//!   Enter and Shift+Enter in the compose box, Ctrl+number.
//! - `live`: the app's node syncing with a second node over real loopback
//!   sockets: an incoming message updates the list and unread count, a reply
//!   is delivered; and the same against `strand run` as a separate process.
//! - `notify`: desktop notifications on a private D-Bus bus: who wrote,
//!   the text only when chosen, no name when so chosen, with neither one
//!   notification that counts and replaces the last, muted conversations
//!   quiet, a click opens.
//! - `phone`: the phone layout: every screen at phone sizes and scales,
//!   checked for what runs off the side, overlaps or is too small to tap;
//!   the navigation stack and Back.
//! - `paging`: a 2,000-message conversation is read a page at a time.
//! - `late`: a backdated message shows below what was read, with its date.
//! - `relays`: a relay added on the Network screen reserves and carries a
//!   contact; every address in full.

// The private D-Bus bus, shared with strand-node's tests.
#[path = "../../../node/tests/it/bus.rs"]
mod bus;
mod carrying;
mod contacts;
mod drive;
mod failures;
mod files;
mod groups;
mod keyboard;
mod late;
mod live;
mod notify;
mod onboarding;
mod paging;
mod phone;
mod relays;
mod support;
mod verify;
