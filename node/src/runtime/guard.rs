//! Admission: which links may start, before anyone is authenticated.
//!
//! A link that has not authenticated its peer is *pending*. Pending links
//! others open are few ([`MAX_PENDING_LINKS`]), few per remote address
//! ([`MAX_PENDING_PER_REMOTE`]; IPv6 by /64) and rate limited per remote
//! address ([`LINKS_PER_REMOTE_PER_SECOND`]); a link through a relay counts
//! under the relay, not under the id its remote has there (which costs a
//! stranger nothing), with a larger share that is still a quarter of the
//! whole ([`MAX_PENDING_PER_RELAY`], [`LINKS_PER_RELAY_PER_SECOND`]). A
//! refused link is dropped before the node does any work for it (not even
//! a beacon). Once a session
//! authenticates its contact, the link leaves the pending budget, so
//! strangers can fill it without touching contacts' sessions; links the
//! node opens to contacts have a budget of their own
//! ([`MAX_PENDING_DIALS`]), so its dials to contacts go out whatever
//! strangers do.
//!
//! The node's own dials are rate limited too, from two buckets ([`Dial`]):
//! one for devices transports found, who may be anyone
//! ([`DISCOVERY_DIALS_PER_SECOND`], [`MAX_PENDING_DISCOVERY_DIALS`]), and
//! one for contacts ([`CONTACT_DIALS_PER_SECOND`], [`MAX_PENDING_DIALS`]).
//! A stranger's made-up discoveries (many peer ids a second on the LAN)
//! empty the first only: configured peers, relays and a contact's device
//! whose link dropped are still dialled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strand_transport::{Remote, TransportError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::runtime::limits::{
    CONTACT_DIALS_PER_SECOND, CONTACT_DIAL_BURST, DISCOVERY_DIALS_PER_SECOND, DISCOVERY_DIAL_BURST,
    LINKS_PER_RELAY_BURST, LINKS_PER_RELAY_PER_SECOND, LINKS_PER_REMOTE_BURST,
    LINKS_PER_REMOTE_PER_SECOND, MAX_PENDING_DIALS, MAX_PENDING_DISCOVERY_DIALS, MAX_PENDING_LINKS,
    MAX_PENDING_PER_RELAY, MAX_PENDING_PER_REMOTE, MAX_TRACKED_REMOTES,
};

/// The shortest wait [`Bucket::take_or_wait`] gives, so rounding can never
/// make a caller spin.
const MIN_TOKEN_WAIT: Duration = Duration::from_millis(1);

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
        self.take_or_wait().is_ok()
    }

    /// Takes a token if there is one; else says how long until there is.
    pub(crate) fn take_or_wait(&mut self) -> Result<(), Duration> {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // Tokens are in [0, 1) here and the rate is positive: a
            // short, finite wait.
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
            Err(wait.max(MIN_TOKEN_WAIT))
        }
    }

    /// Puts back a token taken for nothing (never past the burst).
    pub(crate) fn give_back(&mut self) {
        self.refill();
        self.tokens = (self.tokens + 1.0).min(self.burst);
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
    /// This address (or relay) opens links faster than the rate limit.
    #[error("too many new links from this address or relay")]
    Rate,
    /// This address (or relay) already has its share of links in
    /// handshake.
    #[error("too many links from this address or relay in handshake")]
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

/// What one remote, as limits count it ([`Remote::limit_key`]), may have.
#[derive(Debug, Clone, Copy)]
struct Share {
    /// Links in their preamble at once.
    pending: usize,
    /// New links per second, sustained.
    per_second: f64,
    /// New links at once after a quiet spell.
    burst: f64,
}

impl Share {
    /// A relay's share is every link through it, whoever opened it; any
    /// other remote's is an address's.
    fn of(key: &Remote) -> Share {
        match key {
            Remote::Relay(_) => Share {
                pending: MAX_PENDING_PER_RELAY,
                per_second: LINKS_PER_RELAY_PER_SECOND,
                burst: LINKS_PER_RELAY_BURST,
            },
            _ => Share {
                pending: MAX_PENDING_PER_REMOTE,
                per_second: LINKS_PER_REMOTE_PER_SECOND,
                burst: LINKS_PER_REMOTE_BURST,
            },
        }
    }
}

/// Which budget a link the node opens is paid from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dial {
    /// To a contact, or where the user said: a configured peer, a contact
    /// through their relays, a contact's device found nearby whose link
    /// ended. Nothing a stranger does spends this budget.
    Contact,
    /// To a device a transport found (mDNS, hole punching, Bluetooth),
    /// whoever it turns out to be.
    Discovery,
}

/// The admission state of one node.
#[derive(Debug)]
pub(crate) struct Guard {
    pending: Arc<Semaphore>,
    /// Links to contacts this node opened, in their preamble.
    dialling: Arc<Semaphore>,
    /// Links to devices found that this node opened, in their preamble.
    dialling_found: Arc<Semaphore>,
    remotes: Mutex<HashMap<Remote, PerRemote>>,
    contact_dials: Mutex<Bucket>,
    discovery_dials: Mutex<Bucket>,
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
            dialling_found: Arc::new(Semaphore::new(MAX_PENDING_DISCOVERY_DIALS)),
            remotes: Mutex::new(HashMap::new()),
            contact_dials: Mutex::new(Bucket::new(CONTACT_DIALS_PER_SECOND, CONTACT_DIAL_BURST)),
            discovery_dials: Mutex::new(Bucket::new(
                DISCOVERY_DIALS_PER_SECOND,
                DISCOVERY_DIAL_BURST,
            )),
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
        let share = Share::of(remote);
        let r = map.entry(remote.clone()).or_insert_with(|| PerRemote {
            pending: 0,
            bucket: Bucket::new(share.per_second, share.burst),
        });
        if r.pending >= share.pending {
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
    /// from `dial`'s budget, which strangers' links cannot touch (and
    /// devices found cannot touch contacts').
    pub(crate) fn admit_outbound(self: &Arc<Self>, dial: Dial) -> Result<Pending, Refusal> {
        let slots = match dial {
            Dial::Contact => &self.dialling,
            Dial::Discovery => &self.dialling_found,
        };
        let permit = slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        Ok(Pending {
            _permit: permit,
            remote: None,
            guard: self.clone(),
        })
    }

    /// `dial`'s bucket of tokens.
    fn bucket(&self, dial: Dial) -> &Mutex<Bucket> {
        match dial {
            Dial::Contact => &self.contact_dials,
            Dial::Discovery => &self.discovery_dials,
        }
    }

    /// Takes a token to open a link from `dial`'s bucket; else says how
    /// long until one is there.
    pub(crate) fn try_dial(&self, dial: Dial) -> Result<(), Duration> {
        self.bucket(dial).lock().expect("guard lock").take_or_wait()
    }

    /// After a dial paid from `dial`'s bucket ([`Guard::try_dial`])
    /// failed with `err`: gives the token back if the transport refused
    /// the dial before it reached the network (the LAN while it is quiet,
    /// [`TransportError::Quiet`]), since it dialled no one and so costs
    /// the budget nothing. Any other failure keeps it spent.
    pub(crate) fn refused(&self, dial: Dial, err: &TransportError) {
        if matches!(err, TransportError::Quiet) {
            self.bucket(dial).lock().expect("guard lock").give_back();
        }
    }

    /// Tests: the buckets hardly refill any more (a token in some thirty
    /// years), so a test counts tokens without racing the clock.
    #[cfg(test)]
    pub(crate) fn stop_refilling(&self) {
        for dial in [Dial::Contact, Dial::Discovery] {
            self.bucket(dial).lock().expect("guard lock").rate = 1e-9;
        }
    }

    /// Whether the node may open another link from `dial`'s bucket now
    /// (taking the token if so).
    pub(crate) fn may_dial(&self, dial: Dial) -> bool {
        self.try_dial(dial).is_ok()
    }

    /// Links in handshake now.
    pub(crate) fn pending(&self) -> usize {
        MAX_PENDING_LINKS - self.pending.available_permits() + MAX_PENDING_DIALS
            - self.dialling.available_permits()
            + MAX_PENDING_DISCOVERY_DIALS
            - self.dialling_found.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stranger's made-up discoveries empty the discovery bucket; the
    /// node still has tokens, and pending slots, to dial its contacts.
    /// Before, one bucket paid for both, and a flood of discoveries kept
    /// configured peers, relays and redials from being dialled.
    #[test]
    fn discoveries_cannot_spend_what_contacts_are_dialled_with() {
        let guard = Guard::new();
        let mut spent = 0;
        while guard.may_dial(Dial::Discovery) {
            spent += 1;
            let most = 10 * DISCOVERY_DIAL_BURST as usize;
            assert!(spent <= most, "the bucket never ran dry");
        }
        assert!(guard.may_dial(Dial::Contact));
        let found: Vec<Pending> = std::iter::from_fn(|| guard.admit_outbound(Dial::Discovery).ok())
            .take(MAX_PENDING_DISCOVERY_DIALS + 1)
            .collect();
        assert_eq!(found.len(), MAX_PENDING_DISCOVERY_DIALS);
        assert_eq!(
            guard.admit_outbound(Dial::Discovery).unwrap_err(),
            Refusal::Full
        );
        let contact = guard.admit_outbound(Dial::Contact);
        assert!(contact.is_ok(), "a contact's link has slots of its own");
        assert_eq!(guard.pending(), MAX_PENDING_DISCOVERY_DIALS + 1);
    }

    /// A device through a relay, with its id there.
    fn relayed(relay: &str, peer: &str) -> Remote {
        Remote::Relayed {
            relay: relay.into(),
            peer: peer.into(),
        }
    }

    /// Regression (a hostile relay against the client): relayed links
    /// were counted by their remote's id at the relay, which a stranger
    /// makes afresh for nothing, so one relay brought 32 made-up ids of 4
    /// links each, took all 128 pending slots, and every link others
    /// opened was refused, a contact's through another relay too. Counted
    /// by their relay, a flood through one takes its share and no more.
    #[test]
    fn made_up_ids_through_one_relay_take_its_share_and_no_more() {
        let guard = Guard::new();
        let mut flood = Vec::new();
        for id in 0..MAX_PENDING_LINKS {
            let stranger = relayed("relay-1", &format!("made-up-{id}"));
            for _ in 0..MAX_PENDING_PER_REMOTE {
                flood.extend(guard.admit_inbound(&stranger).ok());
            }
        }
        assert_eq!(flood.len(), MAX_PENDING_PER_RELAY);
        // A contact through another relay, and one on the LAN, get in
        // (before: `Refusal::Full`).
        let other_relay = guard.admit_inbound(&relayed("relay-2", "contact"));
        assert!(other_relay.is_ok(), "{other_relay:?}");
        let lan = guard.admit_inbound(&Remote::Ip("192.168.1.20".parse().unwrap()));
        assert!(lan.is_ok(), "{lan:?}");
        // Through the flooded relay, a fresh id waits like the flood.
        assert_eq!(
            guard
                .admit_inbound(&relayed("relay-1", "another"))
                .unwrap_err(),
            Refusal::Busy
        );
        assert_eq!(guard.pending(), MAX_PENDING_PER_RELAY + 2);
    }

    /// An empty bucket says how long until its next token (a slow bucket
    /// here, so no pause of the test's thread refills it).
    #[test]
    fn an_empty_bucket_says_when_its_next_token_comes() {
        let mut bucket = Bucket::new(0.001, 2.0);
        assert!(bucket.take_or_wait().is_ok());
        assert!(bucket.take_or_wait().is_ok());
        let wait = bucket.take_or_wait().unwrap_err();
        let (least, most) = (Duration::from_secs(500), Duration::from_secs(1000));
        assert!(wait > least && wait <= most, "{wait:?}");
    }
}
