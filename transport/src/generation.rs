//! What the LAN and relay transports share about their swarm generations:
//! each identity runs a swarm on a task of its own, driven by commands,
//! and a new identity starts a new generation beside the old ones.

use std::collections::VecDeque;
use std::sync::Mutex;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::{Link, TransportError};

/// Where a generation's task answers a command that yields a link.
pub(crate) type LinkReply = oneshot::Sender<Result<Link, TransportError>>;

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
