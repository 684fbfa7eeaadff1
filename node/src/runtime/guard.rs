//! Admission: which links may start, before anyone is authenticated.
//!
//! A link that has not authenticated its peer is *pending*. Pending links
//! others open are few ([`MAX_PENDING_LINKS`]), few per remote address
//! ([`MAX_PENDING_PER_REMOTE`]; IPv6 by /64) and rate limited per remote
//! address ([`LINKS_PER_REMOTE_PER_SECOND`]); a refused link is dropped
//! before the node does any work for it (not even a beacon). Once a session
//! authenticates its contact, the link leaves the pending budget, so
//! strangers can fill it without touching contacts' sessions; links the
//! node opens have a budget of their own ([`MAX_PENDING_DIALS`]), so its
//! dials to contacts go out whatever strangers do. The node's own dials
//! are rate limited too ([`DIALS_PER_SECOND`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use strand_transport::Remote;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::runtime::limits::{
    DIALS_PER_SECOND, DIAL_BURST, LINKS_PER_REMOTE_BURST, LINKS_PER_REMOTE_PER_SECOND,
    MAX_PENDING_DIALS, MAX_PENDING_LINKS, MAX_PENDING_PER_REMOTE, MAX_TRACKED_REMOTES,
};

/// A token bucket: `rate` per second, at most `burst` at once.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    pub(crate) fn new(rate: f64, burst: f64) -> Bucket {
        Bucket {
            tokens: burst,
            last: Instant::now(),
            rate,
            burst,
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn full(&mut self) -> bool {
        self.refill();
        self.tokens >= self.burst
    }
}

/// Why a link was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// This address opens links faster than the rate limit.
    #[error("too many new links from this address")]
    Rate,
    /// This address already has its share of links in handshake.
    #[error("too many links from this address in handshake")]
    Busy,
    /// The node has its share of links in handshake.
    #[error("too many links in handshake")]
    Full,
}

#[derive(Debug)]
struct PerRemote {
    pending: usize,
    bucket: Bucket,
}

/// The admission state of one node.
#[derive(Debug)]
pub(crate) struct Guard {
    pending: Arc<Semaphore>,
    dialling: Arc<Semaphore>,
    remotes: Mutex<HashMap<Remote, PerRemote>>,
    dials: Mutex<Bucket>,
}

/// A pending slot, held until the link authenticates or ends.
#[derive(Debug)]
pub(crate) struct Pending {
    _permit: OwnedSemaphorePermit,
    remote: Option<Remote>,
    guard: Arc<Guard>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(remote) = self.remote.take() {
            let mut map = self.guard.remotes.lock().expect("guard lock");
            if let Some(r) = map.get_mut(&remote) {
                r.pending = r.pending.saturating_sub(1);
            }
        }
    }
}

impl Guard {
    pub(crate) fn new() -> Arc<Guard> {
        Arc::new(Guard {
            pending: Arc::new(Semaphore::new(MAX_PENDING_LINKS)),
            dialling: Arc::new(Semaphore::new(MAX_PENDING_DIALS)),
            remotes: Mutex::new(HashMap::new()),
            dials: Mutex::new(Bucket::new(DIALS_PER_SECOND, DIAL_BURST)),
        })
    }

    /// Admits a link a remote opened, or says why not.
    pub(crate) fn admit_inbound(self: &Arc<Self>, remote: &Remote) -> Result<Pending, Refusal> {
        let remote = &remote.limit_key();
        let mut map = self.remotes.lock().expect("guard lock");
        if map.len() >= MAX_TRACKED_REMOTES && !map.contains_key(remote) {
            // Forget remotes that are quiet (nothing pending, bucket full).
            map.retain(|_, r| r.pending > 0 || !r.bucket.full());
            if map.len() >= MAX_TRACKED_REMOTES {
                return Err(Refusal::Full);
            }
        }
        let r = map.entry(remote.clone()).or_insert_with(|| PerRemote {
            pending: 0,
            bucket: Bucket::new(LINKS_PER_REMOTE_PER_SECOND, LINKS_PER_REMOTE_BURST),
        });
        if r.pending >= MAX_PENDING_PER_REMOTE {
            return Err(Refusal::Busy);
        }
        if !r.bucket.take() {
            return Err(Refusal::Rate);
        }
        let permit = self
            .pending
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        r.pending += 1;
        Ok(Pending {
            _permit: permit,
            remote: Some(remote.clone()),
            guard: self.clone(),
        })
    }

    /// Admits a link this node opens (its dial rate was checked already),
    /// from a budget strangers cannot touch.
    pub(crate) fn admit_outbound(self: &Arc<Self>) -> Result<Pending, Refusal> {
        let permit = self
            .dialling
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        Ok(Pending {
            _permit: permit,
            remote: None,
            guard: self.clone(),
        })
    }

    /// Whether the node may open another link now.
    pub(crate) fn may_dial(&self) -> bool {
        self.dials.lock().expect("guard lock").take()
    }

    /// Links in handshake now.
    pub(crate) fn pending(&self) -> usize {
        MAX_PENDING_LINKS - self.pending.available_permits() + MAX_PENDING_DIALS
            - self.dialling.available_permits()
    }
}
