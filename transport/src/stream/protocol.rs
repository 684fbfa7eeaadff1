//! The protocol name and its upgrade.
//!
//! A Strand stream is a plain libp2p stream negotiated under [`PROTOCOL`]:
//! no framing is added here. What flows on it is Strand's own — the
//! accepting side's beacon record, the dialler's hellos, then strand-sync's
//! length-prefixed Noise packets — and works over any
//! `AsyncRead + AsyncWrite` (see `sync/PROTOCOL.md`).

use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::StreamProtocol;

/// The libp2p protocol name Strand's sync streams are negotiated under: it
/// names the wire version (`sync/PROTOCOL.md`), so a device speaking
/// another one is told so by libp2p before any Strand byte.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/strand/sync/2");

/// The upgrade for both directions: select [`PROTOCOL`], hand over the
/// stream as it is.
pub(crate) fn upgrade() -> ReadyUpgrade<StreamProtocol> {
    ReadyUpgrade::new(PROTOCOL)
}
