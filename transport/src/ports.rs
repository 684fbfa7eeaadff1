//! Whether a TCP port given in the settings is another program's, asked
//! before a transport first listens there.
//!
//! libp2p's TCP transport sets `SO_REUSEADDR` and, on Unix,
//! `SO_REUSEPORT` on every socket it listens with (libp2p-tcp 0.45,
//! `create_socket`). The LAN and the relay client need that: a new
//! identity listens at the port beside the old one, with no gap. But it
//! lets any other program of the same user listen at the port too: a
//! second Strand node (another profile) given the same `--listen` or
//! `--punch-listen` port, or a second `strand relay` given the same
//! `--listen` port, was let in beside the first, and the system split
//! new connections between two programs that know nothing of each other.
//!
//! So before a transport listens at a TCP port given (not 0) where no
//! listener of its own holds that port, it asks [`probe`]: a plain socket
//! made as libp2p makes one, less `SO_REUSEPORT`, is bound there and let
//! go. The system refuses that bind if any socket listens at the port,
//! sharing or not, and the port is in use by another program
//! ([`PortInUse`]). Where a listener of the transport's own may still
//! hold the port (a new identity taking over from the old), there is no
//! check: it cannot tell its own socket from another program's. The LAN
//! knows which ports its listeners hold ([`holds_port`]), and checks the
//! others at a change of identity too. Who checks where, and what a port
//! in use then does, is in the docs of [`crate::lan`] (the start fails; a
//! change of identity leaves the address for the next, and a quiet LAN
//! stays quiet), [`crate::relay::server`] (the start fails) and
//! [`crate::relay`] (a hole punching port: another is taken in its
//! place).
//!
//! Another program, to the check, is any socket not of the transport
//! asking, the same node's other transports among them: a node whose
//! relay for contacts is given the port its LAN listens at is refused
//! the same way, and rightly, since the two would split connections too.
//!
//! QUIC needs no check: libp2p's QUIC socket shares its port with
//! nothing, so a UDP port taken fails the listen itself. One gap is left
//! everywhere: between the check and the listen, another program could
//! still take the port, as when two start at the same moment.

use std::net::SocketAddr;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

use crate::TransportError;

/// A TCP port given in the settings that a socket of another program
/// holds, found before a transport listened there ([`probe`]). libp2p's
/// own listener would have shared it (see the module docs).
#[derive(Debug, thiserror::Error)]
#[error("port {port} is in use by another program")]
pub(crate) struct PortInUse {
    /// The port.
    pub(crate) port: u16,
    /// The system's refusal of the plain socket (`EADDRINUSE`).
    #[source]
    os: std::io::Error,
}

/// Checks, before a transport listens at `addr` where no listener of its
/// own holds the port, that no other socket listens there (see the
/// module docs): for a TCP address at a port given (not 0, which is
/// always free), binds a plain socket there as libp2p's TCP transport
/// makes one (`SO_REUSEADDR`, so that connections of a program that ran
/// there before do not count; `IPV6_V6ONLY` for IPv6, so that an IPv6
/// address does not claim the port's IPv4 side too), but without
/// `SO_REUSEPORT`, and lets it go at once. Linux (Android too) refuses
/// that bind with `EADDRINUSE` if any socket listens at the port, with
/// `SO_REUSEPORT` or without: that is [`PortInUse`], in a
/// [`TransportError::Listen`] naming `addr`. Connections at the port
/// (accepted there, or dialled from it) do not count, only listeners.
/// Any other refusal (the address gone, a port below 1024 without the
/// right to it) the listen meets too and says as it always has, so it
/// passes here, as does an address that is not TCP. The socket never
/// listens, so it takes no connection in its moment.
pub(crate) fn probe(addr: &Multiaddr) -> Result<(), TransportError> {
    let at = match tcp_socket(addr) {
        Some(at) if at.port() != 0 => at,
        _ => return Ok(()),
    };
    let bind = || -> std::io::Result<()> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(at),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if at.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_address(true)?;
        socket.bind(&at.into())
    };
    match bind() {
        Err(os) if os.kind() == std::io::ErrorKind::AddrInUse => Err(TransportError::Listen {
            addr: addr.clone(),
            source: Box::new(PortInUse {
                port: at.port(),
                os,
            }),
        }),
        _ => Ok(()),
    }
}

/// Whether a listener of the transport's own at `held` (a TCP address,
/// at the port it got) holds the port of `addr`, so that [`probe`] there
/// would be refused for that listener's socket and cannot be asked: the
/// same port (not 0) and IP family, and the same IP address or either
/// unspecified (which takes every address of its family). IPv4 and IPv6
/// do not meet: libp2p's IPv6 sockets, and the probe's, are IPv6 only.
/// Two TCP sockets at one port on two addresses of the device do not
/// meet either, so the other is checked.
pub(crate) fn holds_port(held: &Multiaddr, addr: &Multiaddr) -> bool {
    let (Some(held), Some(addr)) = (tcp_socket(held), tcp_socket(addr)) else {
        return false;
    };
    held.port() != 0
        && held.port() == addr.port()
        && held.is_ipv4() == addr.is_ipv4()
        && (held.ip() == addr.ip() || held.ip().is_unspecified() || addr.ip().is_unspecified())
}

/// Where a listener at `addr` binds, if it is a TCP address (an IP
/// address and a TCP port, perhaps then `/p2p/<id>`).
fn tcp_socket(addr: &Multiaddr) -> Option<SocketAddr> {
    match crate::without_peer(addr).as_slice() {
        [Protocol::Ip4(ip), Protocol::Tcp(port)] => Some(SocketAddr::new((*ip).into(), *port)),
        [Protocol::Ip6(ip), Protocol::Tcp(port)] => Some(SocketAddr::new((*ip).into(), *port)),
        _ => None,
    }
}
