//! The protocol name and its upgrade.
//!
//! A Strand stream is a plain libp2p stream negotiated under [`PROTOCOL`]:
//! no framing is added here. What flows on it is Strand's own — the
//! listener's discovery beacon, the dialler's hello, then strand-sync's
//! length-prefixed Noise packets — and works over any
//! `AsyncRead + AsyncWrite` (see `sync/PROTOCOL.md`).

use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::StreamProtocol;

/// The libp2p protocol name Strand's sync streams are negotiated under.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/strand/sync/1");

/// The upgrade for both directions: select [`PROTOCOL`], hand over the
/// stream as it is.
pub(crate) fn upgrade() -> ReadyUpgrade<StreamProtocol> {
    ReadyUpgrade::new(PROTOCOL)
}
