//! Emulated links: in-memory byte streams between transports that joined
//! the same [`Hub`], in one process.
//!
//! Every transport on a hub discovers every other one (the smaller number
//! initiates), and can dial one by `/memory/N`. A link is a pair of
//! bounded in-memory pipes ([`HubConfig::buffer`] bytes each way), so a
//! slow reader slows its writer down exactly as a socket would. Links are
//! [`LinkKind::Emulated`]: a node can give them their own session settings
//! (small packets, like BLE), which is what tests of a second link kind
//! use.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{Future, FutureExt};
use libp2p::multiaddr::Protocol;
use tokio::sync::mpsc;
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::{
    Direction, Link, LinkKind, Multiaddr, Peer, Reason, Remote, Transport, TransportError,
    TransportEvent, TransportInfo,
};

/// Hub settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConfig {
    /// Bytes buffered in each direction of a link. Small values make a
    /// writer wait for its reader, as a socket's window does.
    pub buffer: usize,
    /// Keep a copy of every byte written on every link (tests compare
    /// transcripts; see [`Hub::recorded`]).
    pub record: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        // 64 KiB: a few packets in flight, like a socket buffer.
        HubConfig {
            buffer: 64 * 1024,
            record: false,
        }
    }
}

/// What one link carried, when the hub records: the device that opened
/// it, the one that accepted, and the bytes each wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// The dialling device's number.
    pub from: u64,
    /// The accepting device's number.
    pub to: u64,
    /// Bytes the dialling side wrote, then those the accepting side wrote.
    pub bytes: [Vec<u8>; 2],
}

type Tape = Arc<Mutex<Recording>>;

/// A stream that copies what is written to it onto a tape.
struct Recorded<S> {
    inner: S,
    tape: Tape,
    side: usize,
}

impl<S: futures::AsyncRead + Unpin> futures::AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: futures::AsyncWrite + Unpin> futures::AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            let side = self.side;
            self.tape.lock().expect("tape lock").bytes[side].extend_from_slice(&buf[..*n]);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

struct Device {
    events: mpsc::Sender<TransportEvent>,
}

#[derive(Default)]
struct HubState {
    devices: BTreeMap<u64, Device>,
    next: u64,
    tapes: Vec<Tape>,
    /// Cancelled by [`Hub::cut`]: the links open until then break.
    cut: tokio_util::sync::CancellationToken,
}

/// A link's end that breaks when its hub cuts the links open (a network
/// that went away): reads and writes fail from then on, and one waiting
/// is woken to fail.
struct Cuttable<S> {
    inner: S,
    read_cut: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    write_cut: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl<S> Cuttable<S> {
    fn new(inner: S, cut: &tokio_util::sync::CancellationToken) -> Cuttable<S> {
        Cuttable {
            inner,
            read_cut: Box::pin(cut.clone().cancelled_owned()),
            write_cut: Box::pin(cut.clone().cancelled_owned()),
        }
    }
}

fn broken() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the hub cut the link")
}

impl<S: futures::AsyncRead + Unpin> futures::AsyncRead for Cuttable<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.read_cut.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(broken()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: futures::AsyncWrite + Unpin> futures::AsyncWrite for Cuttable<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.write_cut.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(broken()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.write_cut.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(broken()));
        }
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Where emulated transports meet. Cheap to clone.
#[derive(Clone, Default)]
pub struct Hub {
    state: Arc<Mutex<HubState>>,
    config: HubConfig,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("config", &self.config).finish()
    }
}

impl Hub {
    /// A hub with default settings.
    pub fn new() -> Hub {
        Hub::with_config(HubConfig::default())
    }

    /// A hub with these settings.
    pub fn with_config(config: HubConfig) -> Hub {
        Hub {
            state: Arc::default(),
            config,
        }
    }

    /// What every link carried so far, in the order the links opened
    /// (empty unless [`HubConfig::record`]).
    pub fn recorded(&self) -> Vec<Recording> {
        let state = self.state.lock().expect("hub lock");
        state
            .tapes
            .iter()
            .map(|t| t.lock().expect("tape lock").clone())
            .collect()
    }

    /// Breaks every link open now, as a network that went away does
    /// (reads and writes fail); devices stay discovered, as mDNS keeps a
    /// device it still hears, and links opened after work.
    pub fn cut(&self) {
        let mut state = self.state.lock().expect("hub lock");
        std::mem::take(&mut state.cut).cancel();
    }

    /// A new transport on this hub (numbered from 1), reporting to
    /// `events`. It and every transport already there discover each other.
    pub fn join(&self, events: mpsc::Sender<TransportEvent>) -> MemoryTransport {
        let mut state = self.state.lock().expect("hub lock");
        state.next += 1;
        let me = state.next;
        for (&other, device) in &state.devices {
            // Both sides learn of each other; the smaller number initiates.
            let _ = device.events.try_send(TransportEvent::Discovered {
                peer: Peer::new(LinkKind::Emulated, me),
                initiate: other < me,
            });
            let _ = events.try_send(TransportEvent::Discovered {
                peer: Peer::new(LinkKind::Emulated, other),
                initiate: me < other,
            });
        }
        state.devices.insert(me, Device { events });
        MemoryTransport {
            hub: self.clone(),
            me,
        }
    }
}

/// One device's emulated transport.
pub struct MemoryTransport {
    hub: Hub,
    me: u64,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("me", &self.me)
            .finish()
    }
}

impl MemoryTransport {
    /// This device's number on the hub (its address is `/memory/N`).
    pub fn number(&self) -> u64 {
        self.me
    }
}

/// A link from device `me` to device `to` on `hub`.
fn connect(hub: &Hub, me: u64, to: u64) -> Result<Link, TransportError> {
    let mut state = hub.state.lock().expect("hub lock");
    if !state.devices.contains_key(&me) {
        return Err(TransportError::Stopped);
    }
    if !state.devices.contains_key(&to) {
        return Err(TransportError::UnknownPeer);
    }
    let (here, there) = tokio::io::duplex(hub.config.buffer);
    let (here, there) = (
        Cuttable::new(here.compat(), &state.cut),
        Cuttable::new(there.compat(), &state.cut),
    );
    let (here, there): (Box<dyn crate::LinkStream>, Box<dyn crate::LinkStream>) =
        if hub.config.record {
            let tape = Tape::new(Mutex::new(Recording {
                from: me,
                to,
                bytes: [Vec::new(), Vec::new()],
            }));
            state.tapes.push(tape.clone());
            (
                Box::new(Recorded {
                    inner: here,
                    tape: tape.clone(),
                    side: 0,
                }),
                Box::new(Recorded {
                    inner: there,
                    tape,
                    side: 1,
                }),
            )
        } else {
            (Box::new(here), Box::new(there))
        };
    let target = state.devices.get(&to).expect("checked above");
    let incoming = Link {
        kind: LinkKind::Emulated,
        direction: Direction::Inbound,
        remote: Remote::Emulated(me),
        stream: there,
        authenticated: None,
    };
    target
        .events
        .try_send(TransportEvent::Incoming(incoming))
        .map_err(|_| TransportError::Dial {
            target: format!("/memory/{to}"),
            source: Box::new(Reason("the device is not taking links".into())),
        })?;
    Ok(Link {
        kind: LinkKind::Emulated,
        direction: Direction::Outbound,
        remote: Remote::Emulated(to),
        stream: here,
        authenticated: None,
    })
}

impl Transport for MemoryTransport {
    fn kind(&self) -> LinkKind {
        LinkKind::Emulated
    }

    fn open(&self, peer: Peer) -> BoxFuture<'static, Result<Link, TransportError>> {
        let result = if peer.kind == LinkKind::Emulated {
            connect(&self.hub, self.me, peer.id())
        } else {
            Err(TransportError::UnknownPeer)
        };
        async move { result }.boxed()
    }

    fn dial(&self, addr: &Multiaddr) -> Option<BoxFuture<'static, Result<Link, TransportError>>> {
        let mut parts = addr.iter();
        let Some(Protocol::Memory(n)) = parts.next() else {
            return None;
        };
        // Connects when polled, like a socket would.
        let (hub, me) = (self.hub.clone(), self.me);
        Some(async move { connect(&hub, me, n) }.boxed())
    }

    fn info(&self) -> BoxFuture<'static, TransportInfo> {
        let info = TransportInfo {
            kind: LinkKind::Emulated,
            addresses: vec![Multiaddr::empty().with(Protocol::Memory(self.me))],
            discovery: true,
            ephemeral_id: None,
            relays: Vec::new(),
            external: Vec::new(),
            #[cfg(target_os = "linux")]
            bluetooth: None,
        };
        async move { info }.boxed()
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        self.hub
            .state
            .lock()
            .expect("hub lock")
            .devices
            .remove(&self.me);
        async {}.boxed()
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        if let Ok(mut state) = self.hub.state.lock() {
            state.devices.remove(&self.me);
        }
    }
}
