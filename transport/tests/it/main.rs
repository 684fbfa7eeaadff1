//! strand-transport integration tests: one binary.
//!
//! - `stream`: the stream protocol's behaviour between two swarms, driven
//!   by libp2p-swarm-test (memory transport).
//! - `lan`: the LAN transport over real libp2p TCP sockets on loopback.

mod lan;
mod stream;
