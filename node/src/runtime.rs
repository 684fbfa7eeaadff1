//! The node runtime: accepts links from every transport, runs a Noise +
//! sync session on each, writes what arrives, and re-syncs when a contact
//! reappears or a message is queued.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{AsyncReadExt, AsyncWriteExt};
use serde::{Deserialize, Serialize};
use strand_sync::limits::{Time, HANDSHAKE_TIMEOUT};
use strand_sync::{
    Beacon, Config, Event, GroupId, Key, Listener, PublicIdentity, Session, BEACON_LEN, HELLO_LEN,
};
use strand_transport::{Lan, LanConfig, LanEvent, Link, LinkKind, Multiaddr, Stream};
use tokio::sync::{broadcast, mpsc, Semaphore};

use crate::{os_rng, Delivery, Profile, ProfileError};

/// Links (open or in handshake) at once. Each costs a task and up to a few
/// packets of buffer; 256 keeps a flood of half-open connections from
/// exhausting the node while leaving room for every real contact.
pub const MAX_LINKS: usize = 256;
/// Sessions with one contact at once (two devices dialling each other at
/// the same time may briefly have two).
pub const MAX_SESSIONS_PER_CONTACT: usize = 2;
/// Packets queued for writing on one link: bounds memory per link to
/// 8 × 16 KiB and makes a slow reader slow down the producer.
const WRITE_QUEUE: usize = 8;
/// Chunks read ahead on one link.
const READ_QUEUE: usize = 32;
/// Most read chunks (64 KiB each) written in one store transaction.
const MAX_BATCH_CHUNKS: usize = 32;
/// How often configured peers are re-dialled while not connected.
const REDIAL: Duration = Duration::from_secs(5);
/// Node events buffered for each subscriber.
const EVENT_BUFFER: usize = 1024;

/// The wall clock as strand-sync's [`Time`].
pub fn now() -> Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Node settings.
#[derive(Debug, Clone, Default)]
pub struct NodeConfig {
    /// LAN transport settings.
    pub lan: LanConfig,
    /// Addresses to dial and keep dialling (for networks without mDNS).
    pub peers: Vec<Multiaddr>,
    /// Session settings.
    pub session: Config,
}

/// Something that happened, for the GUI, `strand read --follow` and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NodeEvent {
    /// A session with a contact is up.
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
    /// A message this node wrote is held by the contact.
    Delivered {
        /// Contact name.
        contact: String,
        /// Message id (hex).
        id: String,
    },
}

/// How a contact was last seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    /// Contact name.
    pub contact: String,
    /// Link kind of the last session.
    pub link: String,
    /// When (ms since the Unix epoch).
    pub at: u64,
    /// Whether a session is up now.
    pub connected: bool,
}

/// A node's state for `strand status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The user's name.
    pub name: String,
    /// The profile directory.
    pub profile: String,
    /// Transports and their addresses.
    pub transports: Vec<String>,
    /// Contacts seen and how.
    pub seen: Vec<Seen>,
    /// Links open now (including unauthenticated ones in handshake).
    pub links: usize,
    /// Wire bytes sent and received by sessions.
    pub bytes_sent: u64,
    /// See `bytes_sent`.
    pub bytes_received: u64,
    /// Messages stored, all conversations.
    pub messages: u64,
}

struct SessionEntry {
    contact: PublicIdentity,
    commands: mpsc::Sender<(GroupId, Key)>,
}

struct Shared {
    profile: Mutex<Profile>,
    config: NodeConfig,
    events: broadcast::Sender<NodeEvent>,
    sessions: Mutex<BTreeMap<u64, SessionEntry>>,
    seen: Mutex<BTreeMap<PublicIdentity, Seen>>,
    next_id: AtomicU64,
    links: Arc<Semaphore>,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

/// A running node. Dropping it does not stop its tasks: end the tokio
/// runtime it runs on to stop it (and, once every clone is gone, release
/// the profile).
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
    lan: Lan,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}

/// Errors from the running node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A profile error.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A transport error.
    #[error(transparent)]
    Transport(#[from] strand_transport::TransportError),
}

impl Node {
    /// Starts the node on an unlocked profile. Needs a tokio runtime.
    pub async fn start(profile: Profile, config: NodeConfig) -> Result<Node, NodeError> {
        let (lan, mut lan_events) = Lan::start(config.lan.clone()).await?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            profile: Mutex::new(profile),
            config,
            events,
            sessions: Mutex::new(BTreeMap::new()),
            seen: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            links: Arc::new(Semaphore::new(MAX_LINKS)),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
        });
        let node = Node {
            shared: shared.clone(),
            lan: lan.clone(),
        };
        // Transport events.
        let n = node.clone();
        tokio::spawn(async move {
            while let Some(event) = lan_events.recv().await {
                match event {
                    LanEvent::Incoming(link) => n.spawn_link(link, None),
                    // Both sides discover each other; the smaller id dials.
                    LanEvent::Discovered { peer } if n.lan.local_peer_id() < peer => {
                        let n2 = n.clone();
                        tokio::spawn(async move {
                            match n2.lan.open(peer).await {
                                Ok(link) => n2.spawn_link(link, None),
                                Err(e) => {
                                    tracing::debug!(%peer, "dial after discovery failed: {e}")
                                }
                            }
                        });
                    }
                    _ => {}
                }
            }
        });
        // Configured peers, re-dialled while no session with them is up.
        for addr in node.shared.config.peers.clone() {
            let n = node.clone();
            tokio::spawn(async move { n.keep_dialling(addr).await });
        }
        Ok(node)
    }

    async fn keep_dialling(&self, addr: Multiaddr) {
        let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
        loop {
            if !connected.load(Ordering::SeqCst) {
                match self.lan.dial(addr.clone()).await {
                    Ok(link) => {
                        connected.store(true, Ordering::SeqCst);
                        self.spawn_link(link, Some(connected.clone()));
                    }
                    Err(e) => tracing::debug!(%addr, "dial failed: {e}"),
                }
            }
            tokio::time::sleep(REDIAL).await;
        }
    }

    /// Dials `addr` now and again every few seconds while no session with
    /// it is up, like [`NodeConfig::peers`]. Needs the node's runtime.
    pub fn add_peer(&self, addr: Multiaddr) {
        let n = self.clone();
        tokio::spawn(async move { n.keep_dialling(addr).await });
    }

    /// Subscribes to node events.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.shared.events.subscribe()
    }

    /// The addresses the LAN transport listens on.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.lan.listen_addrs().await
    }

    /// The listening addresses, once there is at least one: listeners come
    /// up just after [`Node::start`] returns. Empty if none within `within`.
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

    /// Runs `f` on the profile (briefly: the store is shared with sessions).
    pub fn with_profile<R>(&self, f: impl FnOnce(&mut Profile) -> R) -> R {
        f(&mut self.shared.profile.lock().expect("profile lock"))
    }

    /// Writes a message to `contact` and hands it to any live session.
    pub fn send(&self, contact: &str, text: &str) -> Result<Key, ProfileError> {
        let (group, key, who) = self.with_profile(|p| {
            let who = p.contact(contact)?.public;
            let (g, k) = p.write(contact, text, now(), &mut os_rng())?;
            Ok::<_, ProfileError>((g, k, who))
        })?;
        let sessions = self.shared.sessions.lock().expect("lock");
        for s in sessions.values().filter(|s| s.contact == who) {
            let _ = s.commands.try_send((group, key));
        }
        Ok(key)
    }

    /// Adds a contact from an invite code.
    pub fn add_contact(
        &self,
        code: &str,
        name: &str,
    ) -> Result<crate::ContactRecord, ProfileError> {
        let invite = strand_sync::Invite::from_text(code)
            .map_err(|e| ProfileError::Invite(e.to_string()))?;
        self.with_profile(|p| p.add_contact(&invite, name, now(), &mut os_rng()))
    }

    /// Status for `strand status`.
    pub async fn status(&self) -> Status {
        let addrs = self.listen_addrs().await;
        let (name, profile) = self.with_profile(|p| {
            (
                p.identity().name().to_owned(),
                p.dir().display().to_string(),
            )
        });
        let mut transports: Vec<String> = addrs.iter().map(|a| format!("LAN {a}")).collect();
        transports.push(format!(
            "LAN mDNS {}",
            if self.shared.config.lan.mdns {
                "on"
            } else {
                "off"
            }
        ));
        Status {
            name,
            profile,
            transports,
            seen: self
                .shared
                .seen
                .lock()
                .expect("lock")
                .values()
                .cloned()
                .collect(),
            links: MAX_LINKS - self.shared.links.available_permits(),
            bytes_sent: self.shared.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.shared.bytes_received.load(Ordering::Relaxed),
            messages: self.with_profile(|p| p.stored_messages().unwrap_or(0)),
        }
    }

    fn spawn_link(&self, link: Link, connected: Option<Arc<std::sync::atomic::AtomicBool>>) {
        let Ok(permit) = self.shared.links.clone().try_acquire_owned() else {
            tracing::warn!(peer = %link.peer, "dropping link: {MAX_LINKS} links already open");
            if let Some(c) = connected {
                c.store(false, Ordering::SeqCst);
            }
            return;
        };
        let n = self.clone();
        tokio::spawn(async move {
            let peer = link.peer;
            let outbound = link.outbound;
            if let Err(reason) = n.run_link(link).await {
                tracing::info!(%peer, outbound, "link dropped: {reason}");
            }
            if let Some(c) = connected {
                c.store(false, Ordering::SeqCst);
            }
            drop(permit);
        });
    }

    /// One link: beacon and hello, then the session until it ends.
    async fn run_link(&self, link: Link) -> Result<(), String> {
        let kind = link.kind;
        let (mut rd, mut wr) = link.stream.split();
        let deadline = Duration::from_millis(HANDSHAKE_TIMEOUT);
        let mut rng = os_rng();
        let (session, contact) = if link.outbound {
            // The listener shows its beacon; we pick the contact it matches.
            let mut beacon = [0u8; BEACON_LEN];
            tokio::time::timeout(deadline, rd.read_exact(&mut beacon))
                .await
                .map_err(|_| "no beacon in time".to_string())?
                .map_err(|e| format!("reading the beacon: {e}"))?;
            let beacon = Beacon::from_bytes(&beacon).map_err(|e| format!("bad beacon: {e}"))?;
            let t = now();
            let (identity_contact, record) = self.with_profile(|p| {
                p.contacts()
                    .iter()
                    .filter_map(|r| p.sync_contact(r).ok().map(|c| (c, r.clone())))
                    .find(|(c, r)| beacon.matches(c, t) && self.session_count(&r.public) == 0)
                    .ok_or_else(|| "not a contact (or already connected)".to_string())
            })?;
            let session = self.with_profile(|p| {
                Session::connect(
                    self.shared.config.session,
                    p.identity(),
                    &identity_contact,
                    t,
                    &mut rng,
                )
            });
            (session, record)
        } else {
            let beacon = self.with_profile(|p| Beacon::new(&p.sync_contacts(), now(), &mut rng));
            wr.write_all(&beacon.to_bytes())
                .await
                .map_err(|e| format!("writing the beacon: {e}"))?;
            wr.flush().await.map_err(|e| e.to_string())?;
            let mut hello = [0u8; HELLO_LEN];
            tokio::time::timeout(deadline, rd.read_exact(&mut hello))
                .await
                .map_err(|_| "no hello in time".to_string())?
                .map_err(|e| format!("reading the hello: {e}"))?;
            let (session, record) = self.with_profile(|p| {
                let mut listener = Listener::new(p.identity(), p.sync_contacts());
                let s = listener
                    .accept(self.shared.config.session, &hello, now(), &mut rng)
                    .map_err(|e| format!("hello refused: {e}"))?;
                let record = p
                    .contacts()
                    .iter()
                    .find(|r| r.public == *s.peer())
                    .cloned()
                    .ok_or_else(|| "contact vanished".to_string())?;
                Ok::<_, String>((s, record))
            })?;
            (session, record)
        };
        if self.session_count(&contact.public) >= MAX_SESSIONS_PER_CONTACT {
            return Err(format!(
                "already {MAX_SESSIONS_PER_CONTACT} sessions with {}",
                contact.name
            ));
        }
        self.run_session(session, contact, kind, rd, wr).await
    }

    /// Sessions open with `contact` now.
    fn session_count(&self, contact: &PublicIdentity) -> usize {
        self.shared
            .sessions
            .lock()
            .expect("lock")
            .values()
            .filter(|s| s.contact == *contact)
            .count()
    }

    async fn run_session(
        &self,
        mut session: Session,
        contact: crate::ContactRecord,
        kind: LinkKind,
        mut rd: futures::io::ReadHalf<Stream>,
        mut wr: futures::io::WriteHalf<Stream>,
    ) -> Result<(), String> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (cmd_tx, mut cmd_rx) = mpsc::channel(1024);
        self.shared.sessions.lock().expect("lock").insert(
            id,
            SessionEntry {
                contact: contact.public,
                commands: cmd_tx,
            },
        );
        // Reader and writer tasks, so reading never waits on writing.
        let (in_tx, mut in_rx) = mpsc::channel::<Option<Vec<u8>>>(READ_QUEUE);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = in_tx.send(None).await;
                        return;
                    }
                    Ok(n) => {
                        if in_tx.send(Some(buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(p) = out_rx.recv().await {
                if wr.write_all(&p).await.is_err() {
                    break;
                }
                if out_rx.is_empty() && wr.flush().await.is_err() {
                    break;
                }
            }
            let _ = wr.close().await;
        });
        let result = self
            .drive(
                &mut session,
                &contact,
                kind,
                &mut in_rx,
                &out_tx,
                &mut cmd_rx,
            )
            .await;
        self.shared.sessions.lock().expect("lock").remove(&id);
        if let Some(s) = self
            .shared
            .seen
            .lock()
            .expect("lock")
            .get_mut(&contact.public)
        {
            s.connected = self.session_count(&contact.public) > 0;
            s.at = now();
        }
        drop(out_tx);
        let _ = writer.await;
        reader.abort();
        let _ = self.shared.events.send(NodeEvent::Disconnected {
            contact: contact.name.clone(),
            error: result.clone().err(),
        });
        result
    }

    async fn drive(
        &self,
        session: &mut Session,
        contact: &crate::ContactRecord,
        kind: LinkKind,
        in_rx: &mut mpsc::Receiver<Option<Vec<u8>>>,
        out_tx: &mpsc::Sender<Vec<u8>>,
        cmd_rx: &mut mpsc::Receiver<(GroupId, Key)>,
    ) -> Result<(), String> {
        let mut staged: Option<Vec<u8>> = None;
        let mut snapshot: Vec<(GroupId, Key)> = Vec::new();
        // The groups synced with this contact: derived once per session
        // (it costs a key agreement), not per message.
        let groups = self
            .with_profile(|p| p.sync_contact(contact))
            .map(|c| c.groups)
            .map_err(|e| e.to_string())?;
        loop {
            // Events first: they may need the store. Delivery marks are
            // batched into one transaction.
            let mut delivered: Vec<(GroupId, Key)> = Vec::new();
            while let Some(event) = session.poll_event() {
                match event {
                    Event::Established { .. } => {
                        let mut seen = self.shared.seen.lock().expect("lock");
                        seen.insert(
                            contact.public,
                            Seen {
                                contact: contact.name.clone(),
                                link: kind.to_string(),
                                at: now(),
                                connected: true,
                            },
                        );
                        drop(seen);
                        // What we had before reconciliation: once it finishes,
                        // the contact holds all of it.
                        snapshot = self.with_profile(|p| {
                            groups
                                .iter()
                                .flat_map(|g| {
                                    let keys = p.undelivered(&g.id).unwrap_or_default();
                                    keys.into_iter().map(move |k| (g.id, k))
                                })
                                .collect()
                        });
                        tracing::info!(contact = %contact.name, link = %kind, "session up");
                        let _ = self.shared.events.send(NodeEvent::Connected {
                            contact: contact.name.clone(),
                            link: kind.to_string(),
                        });
                    }
                    Event::Received { group, key } if self.shared.events.receiver_count() > 0 => {
                        let msg = groups
                            .iter()
                            .find(|g| g.id == group)
                            .and_then(|g| self.with_profile(|p| p.message(g, &key)).ok().flatten());
                        let _ = self.shared.events.send(NodeEvent::Received {
                            contact: contact.name.clone(),
                            time: key.time,
                            id: hex(&key.id.0),
                            text: msg.map(|m| m.text).unwrap_or_default(),
                        });
                    }
                    Event::Delivered { group, key } => {
                        delivered.push((group, key));
                        let _ = self.shared.events.send(NodeEvent::Delivered {
                            contact: contact.name.clone(),
                            id: hex(&key.id.0),
                        });
                    }
                    Event::Synced { group } => {
                        for (g, k) in snapshot.drain(..).filter(|(g, _)| *g == group) {
                            delivered.push((g, k));
                            let _ = self.shared.events.send(NodeEvent::Delivered {
                                contact: contact.name.clone(),
                                id: hex(&k.id.0),
                            });
                        }
                    }
                    Event::Rejected { reason, .. } => {
                        tracing::warn!(contact = %contact.name, "message not stored yet: {reason}");
                    }
                    Event::Closed { error } => {
                        let _ = self.with_profile(|p| p.mark_many(&delivered, Delivery::Delivered));
                        return match error {
                            None => Ok(()),
                            Some(e) => Err(format!("session with {} ended: {e}", contact.name)),
                        };
                    }
                    _ => {}
                }
            }
            if let Err(e) = self.with_profile(|p| p.mark_many(&delivered, Delivery::Delivered)) {
                tracing::error!("recording delivery failed: {e}");
            }
            if session.is_closed() {
                return Ok(());
            }
            if staged.is_none() {
                staged = self.with_profile(|p| {
                    let mut store = p.store();
                    let out = session.poll_transmit(now(), &mut store);
                    let _ = store.commit();
                    out
                });
                if let Some(p) = &staged {
                    self.shared
                        .bytes_sent
                        .fetch_add(p.len() as u64, Ordering::Relaxed);
                }
            }
            let timeout = session
                .poll_timeout()
                .map(|t| t.saturating_sub(now()))
                .unwrap_or(60_000);
            tokio::select! {
                biased;
                chunk = in_rx.recv() => match chunk.flatten() {
                    Some(bytes) => {
                        // Take whatever else has arrived too: one commit
                        // (one fsync) per batch, however large.
                        let mut eof = false;
                        self.with_profile(|p| {
                            let mut store = p.store();
                            let mut next = Some(bytes);
                            let mut taken = 0;
                            while let Some(bytes) = next.take() {
                                self.shared.bytes_received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                                let _ = session.handle_input(now(), &bytes, &mut store);
                                taken += 1;
                                if taken < MAX_BATCH_CHUNKS {
                                    match in_rx.try_recv() {
                                        Ok(Some(b)) => next = Some(b),
                                        Ok(None) => eof = true,
                                        Err(_) => {}
                                    }
                                }
                            }
                            if let Err(e) = store.commit() {
                                tracing::error!("store commit failed: {e}");
                            }
                        });
                        if eof {
                            session.handle_eof();
                        }
                    }
                    None => session.handle_eof(),
                },
                permit = out_tx.reserve(), if staged.is_some() => match permit {
                    Ok(permit) => permit.send(staged.take().expect("staged")),
                    Err(_) => session.handle_eof(),
                },
                cmd = cmd_rx.recv() => if let Some((group, key)) = cmd {
                    session.handle_new_message(&group, key);
                    let _ = self.with_profile(|p| p.mark(&group, &key, Delivery::Sent));
                },
                _ = tokio::time::sleep(Duration::from_millis(timeout)) => session.handle_timeout(now()),
            }
        }
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
