//! One link, from its first byte to its last.
//!
//! ```text
//!  transport ─► reader task ─► handle_input ─► poll_inbound ─► verify (rayon) ─► writer ─► handle_stored
//!                                   │                                                         │
//!  transport ◄─ writer task ◄─ poll_transmit ◄────────── acknowledgements, replies ◄──────────┘
//! ```
//!
//! The same strand-sync [`Session`] runs on every link, whatever carries
//! it: it starts with the beacon (accepting side) or waits for one
//! (dialling side), and is authenticated once it reports
//! [`Event::Established`]. Until then the link holds a pending slot
//! ([`super::guard`]); after, it registers with the contact
//! ([`super::registry`]). Received messages are checked in batches on the
//! rayon pool (signatures, bodies) and stored by the profile's writer,
//! several batches in flight; past [`MAX_BATCHES_IN_FLIGHT`] the link is
//! not read, so a fast sender waits for the disk (and past
//! [`MAX_POOL_WAITING`] pool messages waiting for the carrier, for it).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use strand_sync::{
    Event, Group, GroupId, Inbound, Invalid, Key, Kind, PublicIdentity, Session, SessionError,
    Verdict, MAX_WELCOMED_MEMBERS,
};
use strand_transport::{Direction, Link, LinkKind, LinkStream};
use tokio::sync::{mpsc, oneshot};

use super::guard::Pending;
use super::registry::{Command, Joining, SessionId};
use super::{LinkError, NodeEvent, Shared};
use crate::profile::budget::{
    BudgetUnit as Unit, Declined, Over, MAX_KEY_BYTES, MAX_WELCOMES_PER_CONTACT,
};
use crate::runtime::limits::{
    LINK_DRAIN, MAX_BATCHES_IN_FLIGHT, MAX_POOL_WAITING, READ_CHUNK, READ_QUEUE, SESSION_COMMANDS,
    WRITE_QUEUE,
};
use crate::{hex, Delivery, ProfileError};

type Stored = BoxFuture<'static, Result<(Inbound, Vec<Declined>), ProfileError>>;

/// Checks a batch on the verifier pool (rayon: signatures are CPU work,
/// at most one thread per core), then stores it on a blocking thread
/// (storing waits for the profile's writer): the profile's
/// [`crate::Profile::check_batch`] and [`crate::Profile::store_batch`],
/// the same two steps a drive's batches go through. Returns the batch and
/// what was declined.
async fn check_and_store(
    node: Arc<Shared>,
    batch: Inbound,
    now: u64,
) -> Result<(Inbound, Vec<Declined>), ProfileError> {
    let (tx, rx) = oneshot::channel();
    let profile = node.profile.clone();
    let ledger = node.ledger.clone();
    let budgets = node.config.budgets;
    rayon::spawn(move || {
        let _ = tx.send(profile.check_batch(batch, &ledger, &budgets, now));
    });
    let (batch, mut declined) = rx.await.map_err(|_| ProfileError::Closed)??;
    let profile = node.profile.clone();
    let ledger = node.ledger.clone();
    let (batch, more) =
        tokio::task::spawn_blocking(move || profile.store_batch(batch, &ledger, &budgets, now))
            .await
            .map_err(|_| ProfileError::Closed)??;
    declined.extend(more);
    Ok((batch, declined))
}

/// A link's carrying job ([`Pump::carry_waiting`]): what the peer
/// confirmed stops spreading first, then the pool messages it sent are
/// read.
async fn carry(node: Arc<Shared>, confirmed: Vec<(GroupId, Key)>, pool: Vec<(GroupId, Key)>) {
    if !confirmed.is_empty() {
        super::carrying::confirmed(node.clone(), confirmed).await;
    }
    if !pool.is_empty() {
        super::carrying::pool_received(node, pool).await;
    }
}

struct Pump {
    node: Arc<Shared>,
    session: Session,
    kind: LinkKind,
    pending: Option<Pending>,
    contact: Option<(PublicIdentity, String, Vec<Group>)>,
    id: Option<SessionId>,
    commands: mpsc::Sender<Command>,
    /// Told to close (replaced by a newer session, or the node stops).
    close: tokio_util::sync::CancellationToken,
    sent: Vec<(GroupId, Key)>,
    delivered: Vec<(GroupId, Key)>,
    closed: Option<Option<SessionError>>,
    /// Records (not texts) stored and not yet reported by the session.
    records: HashSet<Key>,
    /// The registry's mark when the link started.
    mark: u64,
    /// Whose declined messages this session already reported, where.
    declined: HashSet<(strand_sync::AuthorId, Option<GroupId>, Over)>,
    /// Why messages were not stored, as logged this session (once for
    /// each kind of reason).
    rejected: HashSet<std::mem::Discriminant<Invalid>>,
    /// Tells the transport the remote authenticated.
    authenticated: Option<strand_transport::Authenticated>,
    /// Messages of ours the peer confirmed, for carrying: 1:1 messages
    /// to stop spreading. (Its pool messages are hollowed with the
    /// delivery marks, [`Pump::flush_marks`]; a 1:1 message's mark is
    /// what the carrier is set right by at the next start, should the
    /// node stop before this reaches it.)
    confirmed: Vec<(GroupId, Key)>,
    /// How many of ours the peer acknowledged (for the log).
    acknowledged: u64,
    /// Pool messages stored and not yet given to the carrier: the link's
    /// next carrying job takes them all ([`Pump::carry_waiting`]); past
    /// [`MAX_POOL_WAITING`] the link is not read.
    pool_waiting: Vec<(GroupId, Key)>,
}

/// Runs a link to its end. The pending slot is given back once the peer is
/// authenticated (or the link ends).
/// Returns the contact whose session ran on it (authenticated and
/// registered), if one did, with how it ended.
pub(crate) async fn run(
    node: Arc<Shared>,
    link: Link,
    pending: Pending,
) -> (Option<PublicIdentity>, Result<(), LinkError>) {
    let config = node.config.sessions.for_kind(link.kind);
    let now = node.clock.now();
    let endpoint = node.profile.endpoint();
    // Before the session first reads the store (see `Registry::mark`).
    let mark = node.registry.mark();
    let session = {
        let mut rng = node.rng.lock().expect("rng lock");
        match link.direction {
            Direction::Outbound => {
                endpoint.dial_excluding(config, now, &mut *rng, node.registry.connected(link.kind))
            }
            Direction::Inbound => endpoint.accept(config, now, &mut *rng),
        }
    };
    let (commands, command_rx) = mpsc::channel(SESSION_COMMANDS);
    let close = node.cancel.child_token();
    let pump = Pump {
        close,
        node,
        session,
        kind: link.kind,
        pending: Some(pending),
        contact: None,
        id: None,
        commands,
        sent: Vec::new(),
        delivered: Vec::new(),
        closed: None,
        records: HashSet::new(),
        mark,
        declined: HashSet::new(),
        rejected: HashSet::new(),
        authenticated: link.authenticated,
        confirmed: Vec::new(),
        acknowledged: 0,
        pool_waiting: Vec::new(),
    };
    pump.run(link.stream, command_rx).await
}

impl Pump {
    async fn run(
        mut self,
        stream: Box<dyn LinkStream>,
        mut commands: mpsc::Receiver<Command>,
    ) -> (Option<PublicIdentity>, Result<(), LinkError>) {
        let (mut rd, mut wr) = stream.split();
        // Reader and writer tasks, so reading never waits on writing.
        let (in_tx, mut in_rx) = mpsc::channel::<Option<Vec<u8>>>(READ_QUEUE);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; READ_CHUNK];
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
        let mut in_flight: FuturesOrdered<Stored> = FuturesOrdered::new();
        // The link's carrying job, while one runs.
        let mut carrying: Option<tokio::task::JoinHandle<()>> = None;
        let mut staged: Option<Vec<u8>> = None;
        let mut store_error: Option<ProfileError> = None;
        let close = self.close.clone();
        let mut closing = false;
        loop {
            self.events();
            self.flush_marks();
            if carrying.is_none() {
                carrying = self.carry_waiting();
            }
            if self.closed.is_some() {
                // The session's last packet (a CLOSE) may still be staged.
                if let Some(p) = staged.take() {
                    let _ = tokio::time::timeout(LINK_DRAIN, out_tx.send(p)).await;
                }
                break;
            }
            if staged.is_none() {
                if let Ok(view) = self.node.profile.read_view() {
                    staged = self.session.poll_transmit(self.node.clock.now(), &view);
                    if let Some(p) = &staged {
                        self.node
                            .bytes_sent
                            .fetch_add(p.len() as u64, Ordering::Relaxed);
                    }
                }
                if staged.is_none() && !self.session.is_closed() {
                    // poll_transmit may have produced events (a failure).
                    self.events();
                    if self.closed.is_some() {
                        break;
                    }
                }
            }
            // At least a millisecond: a deadline in the past is handled on
            // the next pass, never in a busy loop.
            let wait = self
                .session
                .poll_timeout()
                .map_or(60_000, |t| t.saturating_sub(self.node.clock.now()))
                .max(1);
            let reading = in_flight.len() < MAX_BATCHES_IN_FLIGHT
                && self.pool_waiting.len() < MAX_POOL_WAITING;
            tokio::select! {
                biased;
                _ = close.cancelled(), if !closing => {
                    closing = true;
                    self.session.close();
                }
                _ = futures::future::OptionFuture::from(carrying.as_mut()), if carrying.is_some() => {
                    carrying = None;
                }
                Some(result) = in_flight.next(), if !in_flight.is_empty() => match result {
                    Ok((batch, declined)) => {
                        self.note_records(&batch);
                        self.note_declined(&declined);
                        self.session.handle_stored(batch)
                    }
                    Err(e) => {
                        tracing::error!("storing received messages failed: {e}");
                        store_error = Some(e);
                        self.session.close();
                    }
                },
                chunk = in_rx.recv(), if reading => match chunk.flatten() {
                    Some(bytes) => {
                        // Take whatever else has arrived too: one read view,
                        // one batch to check.
                        let mut chunks = vec![bytes];
                        let mut eof = false;
                        while chunks.len() < READ_QUEUE {
                            match in_rx.try_recv() {
                                Ok(Some(b)) => chunks.push(b),
                                Ok(None) => { eof = true; break; }
                                Err(_) => break,
                            }
                        }
                        let now = self.node.clock.now();
                        match self.node.profile.read_view() {
                            Ok(view) => {
                                for b in &chunks {
                                    self.node.bytes_received.fetch_add(b.len() as u64, Ordering::Relaxed);
                                    if self.session.handle_input(now, b, &view).is_err() {
                                        break;
                                    }
                                }
                            }
                            Err(e) => {
                                store_error = Some(e);
                                self.session.close();
                            }
                        }
                        while let Some(batch) = self.session.poll_inbound() {
                            let node = self.node.clone();
                            in_flight.push_back(Box::pin(check_and_store(node, batch, now)));
                        }
                        if eof {
                            self.session.handle_eof();
                        }
                    }
                    None => self.session.handle_eof(),
                },
                permit = out_tx.reserve(), if staged.is_some() => match permit {
                    Ok(permit) => permit.send(staged.take().expect("staged")),
                    Err(_) => self.session.handle_eof(),
                },
                Some(command) = commands.recv() => {
                    match command {
                        Command::New(group, key) => {
                            self.session.handle_new_message(&group, key);
                        }
                        Command::Groups(groups) => self.sync_groups(groups),
                        Command::Resync(group) => {
                            self.session.resync(&group);
                        }
                    }
                    // What a full queue dropped: caught up on now.
                    if let Some(id) = self.id {
                        let missed = self.node.registry.take_missed(id);
                        if missed.regroup {
                            let book = self.node.profile.book();
                            let peer = self.contact.as_ref().map(|(p, ..)| *p);
                            if let Some((_, c)) = peer.and_then(|p| book.sync_contact(&p)) {
                                self.sync_groups(c.groups.clone());
                            }
                        }
                        for group in missed.groups {
                            self.session.resync(&group);
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {
                    self.session.handle_timeout(self.node.clock.now());
                }
            }
        }
        // What was in flight is stored (or fails) anyway: report it.
        while let Some(result) = in_flight.next().await {
            if let Ok((batch, _)) = result {
                self.note_records(&batch);
                self.session.handle_stored(batch);
            }
        }
        self.events();
        // What the peer confirmed last is let go of before the texts to it
        // go to carriers (one task, in that order: two would race for the
        // carrying lock).
        let last = std::mem::take(&mut self.confirmed);
        self.flush_marks();
        let registered = self.id.take();
        if let Some(id) = registered {
            self.node.registry.unregister(id, self.node.clock.now());
        }
        let was_contact = registered
            .and(self.contact.as_ref())
            .map(|(public, ..)| *public);
        let down = was_contact.is_some() && !self.node.cancel.is_cancelled();
        // What still waits is taken after the job running, in the same
        // task.
        let pool = std::mem::take(&mut self.pool_waiting);
        if down || !last.is_empty() || !pool.is_empty() || carrying.is_some() {
            let node = self.node.clone();
            self.node.tasks.spawn(async move {
                if let Some(job) = carrying {
                    let _ = job.await;
                }
                carry(node.clone(), last, pool).await;
                if down {
                    super::carrying::session_down(node).await;
                }
            });
        }
        reader.abort();
        drop(out_tx);
        // A peer that stopped reading cannot hold this task (or the node's
        // shutdown) for longer than the drain allows.
        let mut writer = writer;
        if tokio::time::timeout(LINK_DRAIN, &mut writer).await.is_err() {
            writer.abort();
        }
        let error = self.closed.take().flatten();
        // Told under the name it came up with if the contact was deleted
        // since: what said it was up hears it is over.
        let name = self
            .contact_name()
            .or_else(|| self.contact.as_ref().map(|(_, name, _)| name.clone()));
        if let Some(name) = name {
            tracing::debug!(contact = %name, stats = ?self.session.stats(), acknowledged = self.acknowledged, "session over");
            let _ = self.node.events.send(NodeEvent::Disconnected {
                contact: name,
                error: error.as_ref().map(|e| e.to_string()),
            });
        }
        let ended = match (store_error, error) {
            (Some(e), _) => Err(LinkError::Store(e)),
            (None, Some(e)) => Err(LinkError::Session(e)),
            (None, None) => Ok(()),
        };
        (was_contact, ended)
    }

    /// Says once per session, per author and group, whose messages a
    /// budget declined (and once that a removed member wrote into an old
    /// epoch).
    fn note_declined(&mut self, declined: &[Declined]) {
        for d in declined {
            if !self.declined.insert((d.author, d.group, d.over)) {
                continue;
            }
            let author = self.node.profile.author_name(&d.author, d.group.as_ref());
            let group = d
                .group
                .as_ref()
                .and_then(|g| self.node.profile.group_shown(g));
            let from = self
                .contact
                .as_ref()
                .map(|(_, n, _)| n.clone())
                .unwrap_or_default();
            let budgets = &self.node.config.budgets;
            let (budget, unit, flag) = match d.over {
                Over::Contact => (budgets.per_contact, Unit::Bytes, "--budget-per-contact"),
                Over::Member => (budgets.per_member, Unit::Bytes, "--budget-per-member"),
                Over::Group => (budgets.per_group, Unit::Bytes, "--budget-per-group"),
                Over::UnknownKinds => (budgets.unknown_kinds, Unit::Bytes, ""),
                Over::Welcomes => (MAX_WELCOMES_PER_CONTACT, Unit::Welcomes, ""),
                Over::WelcomedMembers => (MAX_WELCOMED_MEMBERS as u64, Unit::Members, ""),
                Over::KeyMessages => (MAX_KEY_BYTES, Unit::Bytes, ""),
                Over::FormerMember => {
                    tracing::warn!(
                        "declined messages from someone no longer in a group (or no longer an admin of it), written into an epoch they still hold"
                    );
                    tracing::debug!(author = %author, group = group.as_deref().unwrap_or(""), "declined");
                    continue;
                }
            };
            // Logs name no one (a journal keeps them); `-v` says who.
            tracing::debug!(author = %author, via = %from, group = group.as_deref().unwrap_or(""), "over budget");
            tracing::warn!(
                budget,
                ?unit,
                over = ?d.over,
                "over the storage budget: the rest of their messages waits for a later sync{}",
                if flag.is_empty() { String::new() } else { format!(" (raise it with {flag})") }
            );
            let _ = self.node.events.send(NodeEvent::OverBudget {
                contact: author,
                group,
                group_key: d.group.as_ref().map(crate::group_key),
                budget,
                unit,
            });
        }
    }

    /// Acts on what the session reported.
    fn events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Established { peer } => self.established(peer),
                Event::Received { group, key } => self.received(group, key),
                Event::Sent { group, key } => {
                    self.sent.push((group, key));
                    self.notify_sent(group, key);
                }
                Event::Delivered { group, key } => {
                    if let Some((public, ..)) = &self.contact {
                        self.node.registry.moved(public, 1);
                    }
                    self.acknowledged += 1;
                    self.delivered.push((group, key));
                    self.confirmed.push((group, key));
                }
                Event::Refused { .. } => {
                    tracing::debug!(
                        "a hello was refused (a beacon false match); trying the next contact"
                    );
                }
                Event::Rejected { reason, .. } => {
                    // Once per reason a session: a contact over a budget
                    // may send a million, each rejected.
                    if let Some((_, name, _)) = &self.contact {
                        if self.rejected.insert(std::mem::discriminant(&reason)) {
                            tracing::warn!(link = %self.kind, "{}", rejected_words(&reason));
                            tracing::debug!(contact = %name, "not stored");
                        }
                    }
                }
                Event::Closed { error } => self.closed = Some(error),
                _ => {}
            }
        }
    }

    fn established(&mut self, peer: PublicIdentity) {
        let book = self.node.profile.book();
        let Some((record, contact)) = book.sync_contact(&peer) else {
            // Removed while the link came up.
            self.session.close();
            return;
        };
        let name = record.name.clone();
        let groups = contact.groups.clone();
        // The remote is a contact: what the transport held back until now
        // (identify and hole punching on a relayed link) may answer it.
        if let Some(authenticated) = self.authenticated.take() {
            authenticated.call();
        }
        // Groups joined since this link started.
        for g in &groups {
            self.session.add_group(g.clone());
        }
        let joining = Joining {
            contact: peer,
            name: &name,
            kind: self.kind,
            now: self.node.clock.now(),
            since: self.mark,
        };
        match self
            .node
            .registry
            .register(joining, self.commands.clone(), self.close.clone())
        {
            Ok((id, missed)) => {
                self.id = Some(id);
                // Deleted while this registered, after the deletion told
                // the registry: it is told again (the list said so first).
                if self.node.profile.book().sync_contact(&peer).is_none() {
                    self.node.registry.forget(&peer);
                    self.session.close();
                    return;
                }
                // The contact's one account of walks, which its other
                // sessions, up now or ended, spent from: one that dials
                // again, after the link dropped or beside it, gets no
                // fresh allowance nor a refill of its own.
                let now = self.node.clock.now();
                let walks = self.node.registry.walks(&peer, now);
                self.session.share_walks(now, walks);
                for (g, k) in missed {
                    self.session.handle_new_message(&g, k);
                }
            }
            Err(e) => {
                tracing::warn!(link = %self.kind, "{e}");
                self.session.close();
                return;
            }
        }
        // Authenticated: the link leaves the pending budget.
        self.pending = None;
        tracing::info!(link = %self.kind, "session up");
        tracing::debug!(contact = %name, link = %self.kind, "session up");
        let _ = self.node.events.send(NodeEvent::Connected {
            contact: name.clone(),
            link: self.kind.to_string(),
        });
        // Our messages no earlier session saw acknowledged: ask.
        for g in &groups {
            match self.node.profile.undelivered(&g.id) {
                Ok(keys) if !keys.is_empty() => {
                    let asked = self.session.confirm(&g.id, &keys);
                    tracing::debug!(contact = %name, undelivered = keys.len(), asked, "asking which of ours the contact holds");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("reading undelivered messages failed: {e}"),
            }
        }
        self.contact = Some((peer, name, groups));
        self.node
            .tasks
            .spawn(super::carrying::session_up(self.node.clone(), peer));
    }

    /// Starts syncing the groups in `groups` that the session does not yet
    /// (and updates the member lists of those it does).
    fn sync_groups(&mut self, groups: Vec<Group>) {
        for g in &groups {
            self.session.add_group(g.clone());
        }
        if let Some((_, _, known)) = &mut self.contact {
            *known = groups;
        }
    }

    /// Starts the link's carrying job for what waits, if anything does:
    /// what the peer confirmed, then the pool messages stored, all in one
    /// step each. One job per link at a time: each step waits for the
    /// carrier (one step at a time, node-wide) on a blocking thread, so a
    /// contact whose every batch made a job of its own could hold the
    /// threads other contacts' batches and the user's own sends need.
    fn carry_waiting(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        if self.pool_waiting.is_empty() && self.confirmed.is_empty() {
            return None;
        }
        let confirmed = std::mem::take(&mut self.confirmed);
        let pool = std::mem::take(&mut self.pool_waiting);
        Some(
            self.node
                .tasks
                .spawn(carry(self.node.clone(), confirmed, pool)),
        )
    }

    /// Notes the records (not texts) in a stored batch: they make no
    /// `Received` event, and a contact's new [`Kind::REACH`] record updates
    /// how the node reaches them.
    fn note_records(&mut self, batch: &Inbound) {
        let mut reach = false;
        let mut groups = Vec::new();
        let mut pool = Vec::new();
        let mut mailbox = Vec::new();
        let mut parts = HashSet::new();
        for m in batch.iter() {
            let kind = m.message().kind();
            // A file's description too: it may come after the last of
            // its parts, and only then is the file all here.
            if (kind == Kind::CHUNK || kind == Kind::FILE)
                && *m.verdict() == (Verdict::Stored { new: true })
            {
                parts.insert((*m.group(), m.key().time, m.message().author()));
            }
            if kind != Kind::TEXT
                && kind != Kind::FILE
                && *m.verdict() == (Verdict::Stored { new: true })
            {
                self.records.insert(m.key());
                reach |= kind == Kind::REACH;
                if crate::profile::groups::is_group_kind(kind) {
                    groups.push((*m.group(), m.key()));
                }
                if strand_sync::is_pool_kind(kind) {
                    pool.push((*m.group(), m.key()));
                }
                if kind == Kind::MAILBOX || kind == Kind::MAILBOX_CONTACTS {
                    mailbox.push((*m.group(), m.key()));
                }
            }
        }
        if !pool.is_empty() {
            self.pool_waiting.extend(pool);
        }
        if !parts.is_empty()
            && self.node.config.report_arrivals
            && self.node.events.receiver_count() > 0
        {
            if let Some((_, _, groups)) = &self.contact {
                // The session's first group is its 1:1 conversation.
                let files: Vec<(
                    Group,
                    bool,
                    strand_sync::limits::Time,
                    strand_sync::AuthorId,
                )> = parts
                    .into_iter()
                    .filter_map(|(g, t, a)| {
                        let at = groups.iter().position(|x| x.id == g)?;
                        Some((groups[at].clone(), at == 0, t, a))
                    })
                    .collect();
                let shared = self.node.clone();
                self.node.tasks.spawn(async move {
                    let profile = shared.profile.clone();
                    let found = tokio::task::spawn_blocking(move || {
                        files
                            .iter()
                            .flat_map(|(g, direct, t, a)| profile.files_arriving(g, *direct, *t, a))
                            .collect::<Vec<_>>()
                    })
                    .await
                    .unwrap_or_default();
                    for arriving in found {
                        let (group, group_key) = arriving.group.unzip();
                        let _ = shared.events.send(NodeEvent::FileArriving {
                            from: arriving.from,
                            group,
                            group_key,
                            id: hex(&arriving.key.id.0),
                            name: arriving.file.name,
                            size: arriving.file.size,
                            have: arriving.file.have,
                            total: arriving.file.total,
                        });
                    }
                });
            }
        }
        if !mailbox.is_empty() {
            self.node
                .tasks
                .spawn(super::paired::records(self.node.clone(), mailbox));
        }
        if !groups.is_empty() {
            let node = super::Node {
                shared: self.node.clone(),
            };
            self.node.tasks.spawn(node.group_messages(groups));
        }
        if reach {
            if let Some((public, ..)) = &self.contact {
                let node = super::Node {
                    shared: self.node.clone(),
                };
                let public = *public;
                self.node
                    .tasks
                    .spawn(async move { node.reach_record_arrived(public).await });
            }
        }
    }

    fn received(&mut self, group: GroupId, key: Key) {
        // Other sessions that sync this group (a contact on a second link,
        // group members) get it now.
        self.node.registry.announce(group, key, self.id);
        if let Some((public, ..)) = &self.contact {
            self.node.registry.moved(public, 1);
        }
        if self.records.remove(&key) {
            return;
        }
        if self.node.events.receiver_count() == 0 {
            return;
        }
        let Some((_, _, groups)) = &self.contact else {
            return;
        };
        let direct = groups.first().is_some_and(|g| g.id == group);
        let (contact, group_name, group_key, text) = if direct {
            // Deleted since (this batch was stored just before): nothing
            // of theirs is told.
            let Some(name) = self.contact_name() else {
                return;
            };
            let text = groups
                .first()
                .and_then(|g| self.node.profile.message_text(g, &key).ok().flatten())
                .unwrap_or_default();
            (name, None, None, text)
        } else {
            match self.node.profile.describe_group_text(&group, &key) {
                Some(t) => (t.author, Some(t.group), Some(t.key), t.text),
                None => return,
            }
        };
        let event = NodeEvent::received(contact, group_name, group_key, &key, &text);
        let _ = self.node.events.send(event);
    }

    fn notify_sent(&self, group: GroupId, key: Key) {
        let Some((name, pool)) = self.notices() else {
            return;
        };
        if Some(group) != pool {
            let _ = self.node.events.send(NodeEvent::Sent {
                contact: name,
                group_key: self.private_group(&group),
                id: hex(&key.id.0),
            });
        }
    }

    /// The key of the private group whose epoch `group` is, for a
    /// message of this device's on this link; none for one in the 1:1
    /// conversation (or any other of the contact's own groups).
    fn private_group(&self, group: &GroupId) -> Option<String> {
        match &self.contact {
            Some((_, _, groups)) if groups.first().is_some_and(|g| g.id == *group) => None,
            _ => self
                .node
                .profile
                .private_group_of(group)
                .map(|root| crate::group_key(&root)),
        }
    }

    /// Whom notices of this device's messages on this link name (by their
    /// name now: the user may have renamed them since the session came
    /// up), and the carrying pool with them, whose messages are no one's
    /// conversation and get none. `None` once they are deleted: their
    /// conversation is gone, and the name may be given to someone else.
    fn notices(&self) -> Option<(String, Option<GroupId>)> {
        let (public, _, _) = self.contact.as_ref()?;
        let book = self.node.profile.book();
        let (record, c) = book.sync_contact(public)?;
        Some((record.name.clone(), Some(c.pool.id)))
    }

    /// The contact's name now (the user may have renamed them since the
    /// session came up); `None` once they are deleted.
    fn contact_name(&self) -> Option<String> {
        self.notices().map(|(name, _)| name)
    }

    /// Records delivery states (on the writer, not waited for: the marks
    /// only ever rise, so their order does not matter), and hollows the
    /// pool messages of ours the peer confirmed with them
    /// ([`crate::Profile::confirmed_async`]). The user is told
    /// of a message delivered once it is recorded, and only if it was not
    /// already (through a carrier, or in an earlier session).
    fn flush_marks(&mut self) {
        for (keys, state) in [
            (std::mem::take(&mut self.sent), Delivery::Sent),
            (std::mem::take(&mut self.delivered), Delivery::Delivered),
        ] {
            if keys.is_empty() {
                continue;
            }
            let node = self.node.clone();
            let notices = self.notices();
            // Which private group each is in, named now: the session's
            // groups may change before the marks are written.
            let mut in_group = std::collections::HashMap::new();
            if state == Delivery::Delivered {
                for (g, _) in &keys {
                    in_group.entry(*g).or_insert_with(|| self.private_group(g));
                }
            }
            self.node.tasks.spawn(async move {
                // What the peer confirmed: its pool messages of ours are
                // hollowed with the marks, not at the next carrying step
                // (which a kill may never let come).
                let marked = if state == Delivery::Delivered {
                    node.profile.confirmed_async(keys).await
                } else {
                    node.profile.mark_many_async(keys, state).await
                };
                match marked {
                    Ok(raised) if state == Delivery::Delivered => {
                        let Some((contact, pool)) = notices else {
                            return;
                        };
                        for (group, key) in raised.into_iter().filter(|(g, _)| Some(*g) != pool) {
                            let _ = node.events.send(NodeEvent::Delivered {
                                contact: contact.clone(),
                                group_key: in_group.get(&group).cloned().flatten(),
                                id: hex(&key.id.0),
                            });
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!("recording delivery failed: {e}"),
                }
            });
        }
    }
}

/// What the node's log says of a contact's message refused on receipt
/// while the session goes on ([`Event::Rejected`]): "not stored yet" only
/// where it may be taken when offered again, "refused for good" where it
/// never will be; why, in the reason's own words.
fn rejected_words(reason: &Invalid) -> String {
    if reason.may_be_taken_later() {
        format!("a message not stored yet: {reason}")
    } else {
        format!("a message refused for good: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A contact's message refused for good on receipt (an expiry that is
    /// not a timer after its time, a lasting kind written to expire, one
    /// expired) is logged as refused for good, with why; only one this
    /// device may take when offered again is "not stored yet". Before,
    /// every one was "not stored yet", as if a later sync would store it.
    #[test]
    fn a_message_refused_for_good_is_not_logged_as_not_stored_yet() {
        let for_good = [
            Invalid::Lifetime { lasts: 1_000 },
            Invalid::MustLast(3),
            Invalid::Expired { expires: 1, now: 2 },
        ];
        for reason in for_good {
            assert_eq!(
                rejected_words(&reason),
                format!("a message refused for good: {reason}")
            );
        }
        let for_now = [
            Invalid::FromTheFuture { time: 2, now: 1 },
            Invalid::OverBudget,
            Invalid::FormerMember,
        ];
        for reason in for_now {
            assert_eq!(
                rejected_words(&reason),
                format!("a message not stored yet: {reason}")
            );
        }
    }
}
