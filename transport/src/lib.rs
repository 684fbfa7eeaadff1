//! strand-transport: everything that moves bytes between two devices.
//!
//! **Not built yet.** This is an empty library stub that holds the crate's
//! place in the workspace until its issue (the LAN transport, issue 3) lands.
//! See `DESIGN.md` for what it will contain: LAN (libp2p TCP/QUIC + mDNS),
//! relay, BLE and emulated links, each yielding an ordered, reliable byte
//! stream to an unauthenticated remote.
