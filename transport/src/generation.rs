//! What the LAN and relay transports share about their swarm generations:
//! each identity runs a swarm on a task of its own, driven by commands,
//! and a new identity starts a new generation beside the old ones.
//!
//! Both tasks answer a listen the same way ([`Listens`]): with the
//! listener's first address, or, where none comes soon, without one. A
//! listener on an unspecified address (`0.0.0.0`, `::`) takes every
//! address of its family the device has, and libp2p's TCP and QUIC
//! transports report each one as they find it; on a device with none of
//! that family (IPv6 turned off, no network at all) they report nothing,
//! and the listener stays open for the addresses to come. A listen that
//! waited for an address there waited forever, and so did whatever
//! waited for it (the transport's start, a rotation, a turn).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::{Link, TransportError};

/// Where a generation's task answers a command that yields a link.
pub(crate) type LinkReply = oneshot::Sender<Result<Link, TransportError>>;

/// How long a listen waits for its first address before it is answered
/// without one ([`Listens`]). A listener on a given address has it at
/// once. One on an unspecified address (`0.0.0.0`, `::`) has one address
/// per address of its family on the device's interfaces, which libp2p's
/// TCP and QUIC transports read from the system when the listener opens
/// (on Linux, one netlink request, answered within milliseconds) and
/// report one by one; where the device has none of that family they
/// report nothing. A second is far more than the system takes, and short
/// enough that a start or a rotation on such a device is hardly slowed.
pub(crate) const FIRST_ADDRESS_WAIT: Duration = Duration::from_secs(1);

/// Where a generation's task answers a listen: with the first address
/// the listener got, or `None` if it opened and no address came within
/// [`FIRST_ADDRESS_WAIT`] (an unspecified address, and none of its family
/// on the device yet). Such a listener still listens: each address it
/// gets later is reported as it comes ([`crate::TransportEvent::Listening`],
/// and among the addresses the generation listens at).
pub(crate) type ListenReply = oneshot::Sender<Result<Option<Multiaddr>, TransportError>>;

/// The listens a generation's task has not answered yet. Each is answered
/// with its listener's first address ([`Listens::got`]), with why it
/// closed ([`Listens::take`]), or, still unanswered after
/// [`FIRST_ADDRESS_WAIT`], without an address ([`Listens::answer_late`]).
#[derive(Default)]
pub(crate) struct Listens {
    /// Each listen's reply, and the address it asked for.
    replies: HashMap<ListenerId, (ListenReply, Multiaddr)>,
    /// When each listen in `replies` is answered without an address, in
    /// the order they were asked (all wait as long, so the earliest is
    /// first). One answered before stays until its time, with nothing to
    /// do then.
    deadlines: VecDeque<(Instant, ListenerId)>,
}

impl Listens {
    /// Waits for the first address of the listener `id`, opened at
    /// `addr`, to answer `reply` with.
    pub(crate) fn insert(&mut self, id: ListenerId, addr: Multiaddr, reply: ListenReply) {
        self.replies.insert(id, (reply, addr));
        self.deadlines
            .push_back((Instant::now() + FIRST_ADDRESS_WAIT, id));
    }

    /// The listener `id` got `address`: its listen, if still unanswered,
    /// is answered with it.
    pub(crate) fn got(&mut self, id: ListenerId, address: &Multiaddr) {
        if let Some((reply, _)) = self.replies.remove(&id) {
            let _ = reply.send(Ok(Some(address.clone())));
        }
    }

    /// The reply to the listen of `id`, if still unanswered, taken to be
    /// answered otherwise (its listener closed), and the address it asked
    /// for (the listener has none of its own yet, or it would have been
    /// answered).
    pub(crate) fn take(&mut self, id: ListenerId) -> Option<(ListenReply, Multiaddr)> {
        self.replies.remove(&id)
    }

    /// Waits until a listen is still unanswered [`FIRST_ADDRESS_WAIT`]
    /// after it was asked, answers it without an address (its listener
    /// stays open), and says so in the log. Never ends while no listen
    /// waits. For a branch of the task's `select!`: dropped before it
    /// ends, it has answered nothing and lost nothing.
    pub(crate) async fn answer_late(&mut self) {
        loop {
            let Some(&(at, id)) = self.deadlines.front() else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(at).await;
            self.deadlines.pop_front();
            if let Some((reply, addr)) = self.replies.remove(&id) {
                tracing::info!(
                    %addr,
                    "listening, but this device has no address of this family yet; each one is \
                     used as it comes"
                );
                let _ = reply.send(Ok(None));
                return;
            }
        }
    }
}

/// Polls `swarm` until it has nothing more to give for now, keeping each
/// event it gives in `stash` for the task to handle in its turn
/// ([`next_event`]). A listener the swarm has reported closed
/// ([`SwarmEvent::ListenerClosed`]) still holds its socket until its
/// transport is next polled (libp2p-tcp ends the listener's stream, and
/// drops the socket, on the poll after it reports the close), and the
/// swarm polls its transport only when the behaviour and the connections
/// have nothing for it: after this every listener has been polled. Until
/// then the socket shares its port with a new listener there (the TCP
/// transport sets SO_REUSEPORT), so the system still hands it some new
/// connections, and those are reset when it is dropped. A task that says
/// a port is free calls this first.
pub(crate) async fn poll_until_idle<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    stash: &mut VecDeque<SwarmEvent<B::ToSwarm>>,
) {
    std::future::poll_fn(|cx| {
        while let Poll::Ready(Some(event)) = swarm.poll_next_unpin(cx) {
            stash.push_back(event);
        }
        Poll::Ready(())
    })
    .await;
}

/// The swarm's next event: the first of those [`poll_until_idle`] kept,
/// or else the next it gives. For a branch of the task's `select!`:
/// dropped before it ends, it has taken nothing.
pub(crate) async fn next_event<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    stash: &mut VecDeque<SwarmEvent<B::ToSwarm>>,
) -> SwarmEvent<B::ToSwarm> {
    match stash.pop_front() {
        Some(event) => event,
        None => swarm.select_next_some().await,
    }
}

/// One swarm (one identity) and its task, driven by commands `C`.
pub(crate) struct Generation<C> {
    pub(crate) commands: mpsc::Sender<C>,
    pub(crate) local: PeerId,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// Sends a generation a command that carries its reply channel, and waits
/// for the reply; a stopped generation is [`TransportError::Stopped`].
pub(crate) async fn ask<C, T>(
    commands: &mpsc::Sender<C>,
    make: impl FnOnce(oneshot::Sender<T>) -> C,
) -> Result<T, TransportError> {
    let (reply, rx) = oneshot::channel();
    commands
        .send(make(reply))
        .await
        .map_err(|_| TransportError::Stopped)?;
    rx.await.map_err(|_| TransportError::Stopped)
}

/// Asks a generation to dial `addr` with the dial command `make` builds,
/// and waits for the link. A failed dial names the address as the caller
/// gave it, whatever address the swarm reported, so the user reads back
/// the target they asked for; a stopped generation is
/// [`TransportError::Stopped`].
pub(crate) async fn dial<C>(
    commands: &mpsc::Sender<C>,
    addr: Multiaddr,
    make: impl FnOnce(Multiaddr, LinkReply) -> C,
) -> Result<Link, TransportError> {
    let target = addr.to_string();
    ask(commands, |reply| make(addr, reply))
        .await?
        .map_err(|e| match e {
            TransportError::Dial { source, .. } => TransportError::Dial { target, source },
            other => other,
        })
}

/// Tracks `generation` beside the older ones still running (their live
/// links keep them), so shutdown stops them all; past `max`, the oldest is
/// stopped. The newest is never the one stopped.
pub(crate) fn keep<C>(
    gens: &Mutex<VecDeque<Generation<C>>>,
    generation: Generation<C>,
    max: usize,
) {
    track(gens, generation);
    trim(gens, max);
}

/// Tracks `generation` beside the older ones still running, so shutdown
/// stops them all, and stops none of them: for a generation that may yet
/// fail to take over ([`stop`]), which should cost no older one its
/// links. [`trim`] once it has.
pub(crate) fn track<C>(gens: &Mutex<VecDeque<Generation<C>>>, generation: Generation<C>) {
    let mut gens = gens.lock().expect("generations lock");
    gens.retain(|g| !g.task.is_finished());
    gens.push_back(generation);
}

/// Stops the oldest generations past `max`; the newest is never one.
pub(crate) fn trim<C>(gens: &Mutex<VecDeque<Generation<C>>>, max: usize) {
    let mut gens = gens.lock().expect("generations lock");
    while gens.len() > max {
        if let Some(g) = gens.pop_front() {
            g.task.abort();
        }
    }
}

/// Stops the generation whose identity is `local` at once and forgets it:
/// for one that never took over (its rotation could not listen), which
/// has no links to keep.
pub(crate) fn stop<C>(gens: &Mutex<VecDeque<Generation<C>>>, local: PeerId) {
    let mut gens = gens.lock().expect("generations lock");
    gens.retain(|g| {
        if g.local == local {
            g.task.abort();
        }
        g.local != local
    });
}
