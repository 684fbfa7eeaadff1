//! The node: a profile, a set of transports behind one interface, and a
//! task per link.
//!
//! ```text
//!   transports ──TransportEvent──► events loop ──► admit (guard) ──► link::run (one task per link)
//!   (LAN, emulated, …)                 │                                  │ Established
//!                                      └── Discovered → dial (rate)       └──► registry (per-contact cap)
//! ```
//!
//! * [`guard`]: who may start a link before anyone is authenticated.
//! * [`link`]: one link's lifecycle: the session, the reader and writer,
//!   the check-and-store pipeline.
//! * [`registry`]: sessions that are up, by contact; when contacts were
//!   seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use strand_sync::limits::{Time, DEFAULT_PACKET_LEN, MIN_PACKET_LEN};
use strand_sync::{Config, Invite, Key};
use strand_transport::memory::Hub;
use strand_transport::{
    Lan, LanConfig, Link, LinkKind, Multiaddr, Peer, Transport, TransportError, TransportEvent,
};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod guard;
mod link;
mod registry;

pub use guard::Refusal;
pub use registry::Seen;

use crate::limits::{EVENT_BUFFER, IDLE_CHECK, REDIAL, SHUTDOWN_GRACE, TRANSPORT_EVENTS};
use crate::{os_rng, ContactRecord, Profile, ProfileError};

/// Session settings per link kind: the packet size suits the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// LAN links.
    pub lan: Config,
    /// Relayed links.
    pub relay: Config,
    /// Bluetooth LE links.
    pub bluetooth: Config,
    /// Emulated links.
    pub emulated: Config,
}

impl Default for SessionSettings {
    fn default() -> Self {
        let big = Config {
            max_packet: DEFAULT_PACKET_LEN,
        };
        SessionSettings {
            lan: big,
            relay: big,
            // A few BLE writes per packet, and a stalled radio pins little.
            bluetooth: Config {
                max_packet: MIN_PACKET_LEN,
            },
            emulated: big,
        }
    }
}

impl SessionSettings {
    /// The settings for links of this kind.
    pub fn for_kind(&self, kind: LinkKind) -> Config {
        match kind {
            LinkKind::Lan => self.lan,
            LinkKind::Relay => self.relay,
            LinkKind::Bluetooth => self.bluetooth,
            _ => self.emulated,
        }
    }
}

/// Node settings.
#[derive(Debug, Clone, Default)]
pub struct NodeConfig {
    /// The LAN transport, if any.
    pub lan: Option<LanConfig>,
    /// Join this hub of emulated links (tests; a second link kind without
    /// a network).
    pub emulated: Option<Hub>,
    /// Addresses to dial and keep dialling (for networks without mDNS).
    pub peers: Vec<Multiaddr>,
    /// Session settings per link kind.
    pub sessions: SessionSettings,
    /// Tests only: a fixed clock and a seeded RNG for links, so two runs
    /// give the same bytes.
    #[doc(hidden)]
    pub deterministic: Option<(Time, u64)>,
}

/// Something that happened, for the GUI, `strand read --follow` and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeEvent {
    /// A session with a contact is up (authenticated).
    Connected {
        /// Contact name.
        contact: String,
        /// Link kind.
        link: String,
    },
    /// A session ended.
    Disconnected {
        /// Contact name.
        contact: String,
        /// Why, if it was an error.
        error: Option<String>,
    },
    /// A new message arrived.
    Received {
        /// Contact name.
        contact: String,
        /// Timestamp (ms since the Unix epoch).
        time: u64,
        /// Message id (hex).
        id: String,
        /// The text.
        text: String,
    },
    /// A message this node wrote went out to the contact.
    Sent {
        /// Contact name.
        contact: String,
        /// Message id (hex).
        id: String,
    },
    /// The contact acknowledged holding a message this node wrote.
    Delivered {
        /// Contact name.
        contact: String,
        /// Message id (hex).
        id: String,
    },
}

/// One transport's state, for `strand status` and the Network screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportStatus {
    /// Which transport ("LAN", "emulated", …).
    pub kind: String,
    /// The addresses it listens on.
    pub addresses: Vec<String>,
    /// Whether it finds devices by itself (mDNS).
    pub discovery: bool,
    /// Its current ephemeral identity (rotates).
    pub ephemeral_id: Option<String>,
}

/// A node's state for `strand status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The user's name.
    pub name: String,
    /// The profile directory.
    pub profile: String,
    /// Transports.
    pub transports: Vec<TransportStatus>,
    /// Contacts seen and how.
    pub seen: Vec<Seen>,
    /// Links open now: sessions plus links still in their handshake.
    pub links: usize,
    /// Of those, authenticated sessions.
    pub sessions: usize,
    /// Wire bytes sent and received by sessions.
    pub bytes_sent: u64,
    /// See `bytes_sent`.
    pub bytes_received: u64,
    /// Messages stored, all conversations.
    pub messages: u64,
}

/// Errors from starting or running the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A profile error.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A transport error.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Starting the runtime failed.
    #[error("cannot start the node's runtime")]
    Runtime(#[source] std::io::Error),
}

/// Why a link ended (for logs; the peer is told nothing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// It was not admitted.
    #[error("not admitted")]
    Refused(#[from] Refusal),
    /// Its session failed (a stranger's link ending in its preamble is
    /// one of these).
    #[error("the session ended")]
    Session(#[source] strand_sync::SessionError),
    /// Storing what arrived failed.
    #[error("storing what arrived failed")]
    Store(#[source] ProfileError),
    /// Opening it failed.
    #[error("opening the link failed")]
    Transport(#[from] TransportError),
    /// No transport takes the address.
    #[error("no transport takes {0}")]
    NoTransport(Multiaddr),
}

/// The node's clock: the wall clock, or a fixed one for tests.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    System,
    Fixed(Time),
}

impl Clock {
    pub(crate) fn now(&self) -> Time {
        match self {
            Clock::System => crate::now(),
            Clock::Fixed(t) => *t,
        }
    }
}

pub(crate) struct Shared {
    pub(crate) profile: Profile,
    pub(crate) config: NodeConfig,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) registry: registry::Registry,
    pub(crate) guard: Arc<guard::Guard>,
    pub(crate) transports: Vec<Arc<dyn Transport>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) rng: Mutex<ChaCha20Rng>,
    pub(crate) clock: Clock,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
}

/// A running node. Cheap to clone. [`Node::shutdown`] stops it and
/// releases the profile.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}

impl Node {
    /// Starts the node on an unlocked profile with the configured
    /// transports. Needs a tokio runtime.
    pub async fn start(profile: Profile, config: NodeConfig) -> Result<Node, NodeError> {
        profile.start_writer()?;
        let (tx, rx) = mpsc::channel(TRANSPORT_EVENTS);
        let mut transports: Vec<Arc<dyn Transport>> = Vec::new();
        if let Some(lan) = &config.lan {
            match Lan::start(lan.clone(), tx.clone()).await {
                Ok(t) => transports.push(Arc::new(t)),
                Err(e) => {
                    profile.close();
                    return Err(e.into());
                }
            }
        }
        if let Some(hub) = &config.emulated {
            transports.push(Arc::new(hub.join(tx.clone())));
        }
        drop(tx);
        let (clock, rng) = match config.deterministic {
            Some((t, seed)) => (Clock::Fixed(t), ChaCha20Rng::seed_from_u64(seed)),
            None => (Clock::System, os_rng()),
        };
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            profile,
            config,
            events,
            registry: registry::Registry::default(),
            guard: guard::Guard::new(),
            transports,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            rng: Mutex::new(rng),
            clock,
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
        });
        let node = Node { shared };
        node.shared.tasks.spawn(node.clone().transport_events(rx));
        node.shared.tasks.spawn(node.clone().trim_when_idle());
        for addr in node.shared.config.peers.clone() {
            node.add_peer(addr);
        }
        Ok(node)
    }

    /// Reads every transport's events until the node stops.
    async fn transport_events(self, mut rx: mpsc::Receiver<TransportEvent>) {
        let cancel = self.shared.cancel.clone();
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                e = rx.recv() => match e { Some(e) => e, None => return },
            };
            match event {
                TransportEvent::Incoming(link) => self.accept(link),
                TransportEvent::Discovered { peer, initiate } if initiate => self.open(peer),
                TransportEvent::Listening { kind, addr } => {
                    tracing::info!(%kind, %addr, "listening");
                }
                _ => {}
            }
        }
    }

    /// Gives memory freed after a burst of traffic back to the OS once the
    /// node goes quiet: the allocator keeps freed memory in per-thread
    /// arenas, and a sync of 100,000 messages passes through four threads.
    async fn trim_when_idle(self) {
        let cancel = self.shared.cancel.clone();
        let moved = || {
            self.shared.bytes_sent.load(Ordering::Relaxed)
                + self.shared.bytes_received.load(Ordering::Relaxed)
        };
        let mut last = moved();
        let mut busy = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(IDLE_CHECK) => {}
            }
            let now = moved();
            if now != last {
                busy = true;
            } else if busy {
                busy = false;
                release_free_memory();
            }
            last = now;
        }
    }

    /// A link a remote opened: admitted, or dropped before any work.
    fn accept(&self, link: Link) {
        match self.shared.guard.admit_inbound(&link.remote) {
            Ok(pending) => self.spawn_link(link, pending, None),
            Err(why) => tracing::debug!(remote = %link.remote, "link dropped: {why}"),
        }
    }

    /// Opens a link to a device a transport found.
    fn open(&self, peer: Peer) {
        let Some(t) = self.transport(peer.kind) else {
            return;
        };
        if !self.shared.guard.may_dial() {
            tracing::debug!("dial skipped: dialling too fast");
            return;
        }
        let n = self.clone();
        self.shared.tasks.spawn(async move {
            match t.open(peer).await {
                Ok(link) => n.admit_outbound(link, None),
                Err(e) => tracing::debug!("dial after discovery failed: {e}"),
            }
        });
    }

    fn admit_outbound(&self, link: Link, done: Option<tokio::sync::oneshot::Sender<()>>) {
        match self.shared.guard.admit_outbound() {
            Ok(pending) => self.spawn_link(link, pending, done),
            Err(why) => tracing::debug!("link dropped: {why}"),
        }
    }

    fn spawn_link(
        &self,
        link: Link,
        pending: guard::Pending,
        done: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let shared = self.shared.clone();
        self.shared.tasks.spawn(async move {
            let remote = link.remote.clone();
            let kind = link.kind;
            match link::run(shared, link, pending).await {
                Ok(()) => tracing::debug!(%remote, %kind, "link closed"),
                Err(LinkError::Session(strand_sync::SessionError::Preamble(why))) => {
                    tracing::debug!(%remote, %kind, "link ended before a session: {why}")
                }
                Err(e) => tracing::info!(%remote, %kind, "link ended: {}", chain(&e)),
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
    }

    fn transport(&self, kind: LinkKind) -> Option<Arc<dyn Transport>> {
        self.shared
            .transports
            .iter()
            .find(|t| t.kind() == kind)
            .cloned()
    }

    /// Dials `addr` now and again every few seconds while no link to it is
    /// up, like [`NodeConfig::peers`]. Needs the node's runtime.
    pub fn add_peer(&self, addr: Multiaddr) {
        let n = self.clone();
        self.shared.tasks.spawn(async move {
            let cancel = n.shared.cancel.clone();
            loop {
                if let Err(e) = n.dial_once(&addr).await {
                    tracing::debug!(%addr, "dial failed: {}", chain(&e));
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(REDIAL) => {}
                }
            }
        });
    }

    /// Dials `addr` and runs the link until it ends.
    async fn dial_once(&self, addr: &Multiaddr) -> Result<(), LinkError> {
        let dial = self
            .shared
            .transports
            .iter()
            .find_map(|t| t.dial(addr))
            .ok_or_else(|| LinkError::NoTransport(addr.clone()))?;
        if !self.shared.guard.may_dial() {
            return Ok(());
        }
        let link = dial.await?;
        let (done, ended) = tokio::sync::oneshot::channel();
        self.admit_outbound(link, Some(done));
        let _ = ended.await;
        Ok(())
    }

    /// Subscribes to node events.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.shared.events.subscribe()
    }

    /// The profile (a shared handle: reads never wait on sessions).
    pub fn profile(&self) -> &Profile {
        &self.shared.profile
    }

    /// Runs `f` on the profile.
    pub fn with_profile<R>(&self, f: impl FnOnce(&Profile) -> R) -> R {
        f(&self.shared.profile)
    }

    /// Every transport's addresses.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let mut out = Vec::new();
        for t in &self.shared.transports {
            out.extend(t.info().await.addresses);
        }
        out
    }

    /// The listening addresses, once there is at least one. Empty if none
    /// within `within`.
    pub async fn wait_listening(&self, within: Duration) -> Vec<Multiaddr> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let addrs = self.listen_addrs().await;
            if !addrs.is_empty() || tokio::time::Instant::now() >= deadline {
                return addrs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Writes a message to `contact` and hands it to any live session. It
    /// is `queued` until it goes out on a link.
    pub async fn send(&self, contact: &str, text: &str) -> Result<Key, ProfileError> {
        let now = self.shared.clock.now();
        let mut rng = os_rng();
        let (group, key) = self
            .shared
            .profile
            .write_async(contact, text, now, &mut rng)
            .await?;
        self.shared.registry.announce(group, key, None);
        Ok(key)
    }

    /// Adds a contact from an invite code; links started from now on
    /// recognise them.
    pub async fn add_contact(&self, code: &str, name: &str) -> Result<ContactRecord, ProfileError> {
        let invite = Invite::from_text(code)?;
        let profile = self.shared.profile.clone();
        let name = name.to_owned();
        let now = self.shared.clock.now();
        tokio::task::spawn_blocking(move || profile.add_contact(&invite, &name, now, &mut os_rng()))
            .await
            .map_err(|_| ProfileError::Closed)?
    }

    /// The node's state.
    pub async fn status(&self) -> Status {
        let p = &self.shared.profile;
        let mut transports = Vec::new();
        for t in &self.shared.transports {
            let info = t.info().await;
            transports.push(TransportStatus {
                kind: info.kind.to_string(),
                addresses: info.addresses.iter().map(|a| a.to_string()).collect(),
                discovery: info.discovery,
                ephemeral_id: info.ephemeral_id,
            });
        }
        let sessions = self.shared.registry.sessions();
        Status {
            name: p.identity().name().to_owned(),
            profile: p.dir().display().to_string(),
            transports,
            seen: self.shared.registry.seen(),
            links: sessions + self.shared.guard.pending(),
            sessions,
            bytes_sent: self.shared.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.shared.bytes_received.load(Ordering::Relaxed),
            messages: p.stored_messages().unwrap_or(0),
        }
    }

    /// Stops the node: sessions say goodbye (for at most
    /// [`SHUTDOWN_GRACE`]), transports stop, pending writes are committed,
    /// and the profile is released. Returns once another process can open
    /// the profile.
    pub async fn shutdown(&self) {
        let s = &self.shared;
        s.cancel.cancel();
        s.registry.close_all();
        s.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, s.tasks.wait())
            .await
            .is_err()
        {
            tracing::debug!("sessions did not finish in time; ending them");
        }
        for t in &s.transports {
            t.shutdown().await;
        }
        let profile = s.profile.clone();
        let _ = tokio::task::spawn_blocking(move || profile.close()).await;
    }
}

/// Hands memory the allocator holds but nobody uses back to the OS.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no
    // preconditions and is thread safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// An error and its sources, as one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>(_: T) {}
    let _ = |n: Node| is_send(n.shutdown().boxed());
}
