//! strand-transport: everything that moves bytes between two devices.
//!
//! Every transport yields the same thing, a [`Link`]: an ordered, reliable,
//! duplex byte stream to an *unauthenticated* remote, plus what kind of
//! link it is. Authentication is not this crate's job: strand-sync's Noise
//! session runs over every link alike.
//!
//! **Built:** the LAN transport ([`Lan`]): libp2p over TCP and QUIC, mDNS
//! discovery (optional: off where multicast is blocked or not allowed), and
//! dialing known addresses directly. The libp2p identity is created anew
//! for every run, so the LAN never sees a stable identifier; contacts
//! recognise each other through strand-sync's beacons and tokens.
//! **Not built yet:** relay, BLE.
//!
//! Streams use the protocol [`PROTOCOL`], implemented in [`stream`] in
//! libp2p's protocol layout (behaviour / handler / protocol) and tested
//! with `libp2p-swarm-test`.
#![warn(missing_docs)]

mod lan;
pub mod stream;

pub use lan::{Lan, LanConfig, LanEvent};
pub use libp2p::{Multiaddr, PeerId, Stream};
pub use stream::protocol::PROTOCOL;

/// What kind of link a [`Link`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkKind {
    /// Local network (TCP or QUIC).
    Lan,
}

impl std::fmt::Display for LinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkKind::Lan => "LAN",
        })
    }
}

/// A byte stream to a remote device, not yet authenticated.
pub struct Link {
    /// What carries it.
    pub kind: LinkKind,
    /// Whether this side opened it.
    pub outbound: bool,
    /// The remote's transport identity: ephemeral, for logs only.
    pub peer: PeerId,
    /// The stream (futures' `AsyncRead + AsyncWrite`).
    pub stream: libp2p::Stream,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("kind", &self.kind)
            .field("outbound", &self.outbound)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// What can go wrong on a transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Could not listen on an address.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// Could not reach an address.
    #[error("cannot reach {addr}: {reason}")]
    Dial {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The transport's task has stopped.
    #[error("the transport has stopped")]
    Stopped,
    /// Setting the transport up failed.
    #[error("transport setup failed: {0}")]
    Setup(String),
}
