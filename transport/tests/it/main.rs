//! strand-transport integration tests: one binary.
//!
//! - `stream`: the stream protocol's behaviour between two swarms, driven
//!   by libp2p-swarm-test (memory transport).
//! - `ble`: the BLE link layer over the emulated radio: loss, slow
//!   readers, drops, hostile frames, 10,000-message syncs.
//! - `lan`: the LAN transport over real libp2p TCP sockets on loopback:
//!   links, errors, identity rotation, per-IP limits, handshake places.
//! - `memory`: emulated links between transports on one hub.
//! - `relay`: a relay server and clients on loopback: reservations,
//!   circuits, identity rotation, hole punching, what relays and
//!   strangers are told, limits counted per relay, hostile relays.

mod ble;
mod lan;
mod memory;
#[path = "../support/neighbour.rs"]
mod neighbour;
mod relay;
mod stream;
#[path = "../support/sync_end.rs"]
mod sync_end;
