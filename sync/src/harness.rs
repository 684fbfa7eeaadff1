//! A two-peer harness with virtual time, after quinn's `Pair`.
//!
//! Two [`Peer`]s, each with an identity, a [`MemoryStore`] and at most one
//! [`Session`], joined by a virtual link whose latency, rate, MTU and loss
//! are knobs. Nothing waits on a real clock: [`Pair::step`] jumps to the
//! next delivery or deadline, [`Pair::drive`] runs until the link is quiet.
//! Tests read like scripts:
//!
//! ```
//! use strand_sync::harness::Pair;
//! let mut pair = Pair::new(1);
//! pair.latency = 100; // ms, one way
//! pair.a.write("ping");
//! pair.connect();
//! pair.drive();
//! assert_eq!(pair.b.texts(), ["ping"]);
//! // Bob's beacon reaches Alice (half a round trip); her hello goes out and
//! // Bob's answer finishes the handshake and opens reconciliation (1.5);
//! // Alice's reply carries the message (2); Bob's acknowledgement is back
//! // at 2.5.
//! assert_eq!(pair.round_trips(), 2.5);
//! ```
//!
//! Loss is modelled as on a reliable stream: a lost chunk is sent again
//! after a retransmission timeout, so it arrives late and in order.

use std::collections::VecDeque;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::limits::Time;
use crate::{
    Config, Contact, Endpoint, Envelope, Event, Group, HandshakeError, Identity, Key, Kind,
    MemoryStore, Message, Session, SessionError, Store, WriteStore,
};

/// A fixed start time for virtual clocks (2023-11-14T22:13:20Z), so runs
/// are reproducible.
pub const EPOCH: Time = 1_700_000_000_000;

/// Which peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Peer `a` (the one that dials).
    A,
    /// Peer `b` (the one that listens).
    B,
}

/// What a [`Pair::filter`] does with a packet one side wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Deliver it (possibly modified).
    Deliver,
    /// Deliver only its first `n` bytes, then end the link.
    Cut(usize),
    /// Deliver only its first `n` bytes, then nothing ever again: the
    /// writer stalls (or the link silently drops everything).
    Stall(usize),
}

/// A device in the harness.
pub struct Peer {
    /// Its identity.
    pub identity: Identity,
    /// Its contacts.
    pub contacts: Vec<Contact>,
    /// Its store.
    pub store: MemoryStore,
    /// Starts its sessions (kept in step with `contacts` by
    /// [`Peer::set_contacts`]).
    pub endpoint: Endpoint,
    /// The session on the link, while there is one.
    pub session: Option<Session>,
    /// Every event its sessions reported, in order.
    pub events: Vec<Event>,
    /// Virtual time of the last [`Event::Received`].
    pub last_received_at: Option<Time>,
    /// Session settings for this side.
    pub config: Config,
    /// This peer's clock: the pair's virtual time plus `clock_offset`.
    pub clock_offset: i64,
    now: Time,
    rng: ChaCha20Rng,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("name", &self.identity.name())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A new device with a fresh identity drawn from `seed`.
    pub fn new(name: &str, seed: u64) -> Peer {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let identity = Identity::generate(name, &mut rng).expect("a valid name");
        let endpoint = Endpoint::new(&identity, Vec::new());
        Peer {
            identity,
            contacts: Vec::new(),
            store: MemoryStore::new(),
            endpoint,
            session: None,
            events: Vec::new(),
            last_received_at: None,
            config: Config::default(),
            clock_offset: 0,
            now: EPOCH,
            rng,
        }
    }

    /// Replaces the contact list (links started later use it).
    pub fn set_contacts(&mut self, contacts: Vec<Contact>) {
        self.endpoint.set_contacts(contacts.clone());
        self.contacts = contacts;
    }

    /// Adds `other` as a contact (one direction of the invite exchange).
    pub fn add_contact(&mut self, other: &Identity) {
        self.add_public(&other.public())
            .expect("distinct identities");
    }

    /// Adds the contact an invite names.
    pub fn add_public(&mut self, other: &crate::PublicIdentity) -> Result<(), crate::KeyError> {
        let contact = self.identity.contact(other)?;
        let mut contacts = self.contacts.clone();
        contacts.push(contact);
        self.set_contacts(contacts);
        Ok(())
    }

    /// This peer's clock.
    pub fn now(&self) -> Time {
        self.now.saturating_add_signed(self.clock_offset)
    }

    /// The 1:1 group with the first contact.
    pub fn group(&self) -> &crate::Group {
        self.contacts[0].direct_group()
    }

    /// Writes a text message to the first contact, stamped with this peer's
    /// clock, and hands it to the live session if any.
    pub fn write(&mut self, text: &str) -> Key {
        let now = self.now();
        self.write_at(text, now)
    }

    /// Writes a text message with the given timestamp.
    pub fn write_at(&mut self, text: &str, time: Time) -> Key {
        let group = self.group().clone();
        let msg = Message::create(
            &self.identity,
            &group,
            time,
            Kind::TEXT,
            text.as_bytes(),
            &mut self.rng,
        )
        .expect("a member writing a short text");
        WriteStore::insert(&mut self.store, &group.id, &msg).expect("memory store");
        if let Some(s) = &mut self.session {
            s.handle_new_message(&group.id, msg.key());
        }
        msg.key()
    }

    /// The texts of the 1:1 group, in (timestamp, id) order.
    pub fn texts(&self) -> Vec<String> {
        let group = self.group();
        self.store
            .messages(&group.id)
            .map(|(_, bytes)| {
                let m = Message::decode(bytes.to_vec()).expect("stored messages decode");
                String::from_utf8(m.open(group).expect("stored messages open")).expect("text")
            })
            .collect()
    }

    fn record(&mut self, event: Event) {
        if matches!(event, Event::Received { .. }) {
            self.last_received_at = Some(self.now);
        }
        self.events.push(event);
    }

    /// The error the session closed with, if it closed with one.
    pub fn close_error(&self) -> Option<&SessionError> {
        self.events.iter().find_map(|e| match e {
            Event::Closed { error: Some(e) } => Some(e),
            _ => None,
        })
    }

    /// Why the link ended before a handshake, if it did.
    pub fn handshake_error(&self) -> Option<HandshakeError> {
        match self.close_error() {
            Some(SessionError::Preamble(e)) => Some(*e),
            _ => None,
        }
    }

    /// Whether a session with a contact came up (it was authenticated).
    pub fn established(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::Established { .. }))
    }

    /// The peer's RNG (seeded), for tests that create more messages.
    pub fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }
}

struct Chunk {
    at: Time,
    bytes: Vec<u8>,
    eof: bool,
}

/// Per-direction link figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bytes from a to b.
    pub bytes_a_to_b: u64,
    /// Bytes from b to a.
    pub bytes_b_to_a: u64,
    /// Chunks (MTU-sized pieces) lost and sent again.
    pub retransmissions: u64,
}

/// Two peers and a virtual link.
pub struct Pair {
    /// The dialling peer.
    pub a: Peer,
    /// The listening peer.
    pub b: Peer,
    /// Virtual time.
    pub now: Time,
    /// One-way latency, ms.
    pub latency: Time,
    /// Link rate in bytes per second each way; `None` is unlimited.
    pub rate: Option<u64>,
    /// Largest chunk the link carries at once, bytes.
    pub mtu: usize,
    /// Probability that a chunk is lost (and retransmitted).
    pub loss: f64,
    /// Called on every packet a session writes, before it is chunked.
    #[allow(clippy::type_complexity)]
    pub filter: Option<Box<dyn FnMut(Side, &mut Vec<u8>) -> Action>>,
    /// What crossed the link.
    pub stats: LinkStats,
    started: Option<Time>,
    last_delivery: Time,
    stalled: [bool; 2],
    rng: ChaCha20Rng,
    a_to_b: VecDeque<Chunk>,
    b_to_a: VecDeque<Chunk>,
    free_a_to_b: Time,
    free_b_to_a: Time,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("now", &self.now)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Pair {
    /// Alice and Bob, contacts of each other, 50 ms apart, MTU 1200.
    pub fn new(seed: u64) -> Pair {
        let mut a = Peer::new("alice", seed.wrapping_mul(3).wrapping_add(1));
        let mut b = Peer::new("bob", seed.wrapping_mul(3).wrapping_add(2));
        a.add_contact(&b.identity);
        b.add_contact(&a.identity);
        Pair::with_peers(a, b, seed)
    }

    /// Two given peers (which may or may not be each other's contacts).
    pub fn with_peers(a: Peer, b: Peer, seed: u64) -> Pair {
        Pair {
            a,
            b,
            now: EPOCH,
            latency: 50,
            rate: None,
            mtu: 1200,
            loss: 0.0,
            filter: None,
            stats: LinkStats::default(),
            started: None,
            last_delivery: EPOCH,
            stalled: [false; 2],
            rng: ChaCha20Rng::seed_from_u64(seed.wrapping_mul(3).wrapping_add(3)),
            a_to_b: VecDeque::new(),
            b_to_a: VecDeque::new(),
            free_a_to_b: EPOCH,
            free_b_to_a: EPOCH,
        }
    }

    /// `a` dials `b` over a fresh link: `b` accepts and sends its beacon,
    /// `a` says hello to the contacts it matches.
    pub fn connect(&mut self) {
        self.a_to_b.clear();
        self.b_to_a.clear();
        self.stalled = [false; 2];
        self.set_clocks();
        for side in [Side::A, Side::B] {
            let peer = self.peer(side);
            let now = peer.now();
            let config = peer.config;
            let session = match side {
                Side::A => peer.endpoint.dial(config, now, &mut peer.rng),
                Side::B => peer.endpoint.accept(config, now, &mut peer.rng),
            };
            peer.session = Some(session);
        }
        self.started = Some(self.now);
        self.last_delivery = self.now;
        self.flush(Side::B);
        self.flush(Side::A);
    }

    /// Puts raw bytes on the link as if `from` had written them.
    pub fn inject(&mut self, from: Side, bytes: Vec<u8>) {
        self.schedule(from, bytes, false);
    }

    fn set_clocks(&mut self) {
        self.a.now = self.now;
        self.b.now = self.now;
    }

    fn peer(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn schedule(&mut self, from: Side, bytes: Vec<u8>, eof: bool) {
        let mut chunks: Vec<(Vec<u8>, bool)> = if bytes.is_empty() {
            vec![(Vec::new(), eof)]
        } else {
            bytes
                .chunks(self.mtu.max(1))
                .map(|c| (c.to_vec(), false))
                .collect()
        };
        if eof && !bytes.is_empty() {
            chunks.push((Vec::new(), true));
        }
        for (chunk, eof) in chunks {
            let serialize = match self.rate {
                Some(rate) if rate > 0 => (chunk.len() as u64 * 1000).div_ceil(rate),
                _ => 0,
            };
            let free = match from {
                Side::A => &mut self.free_a_to_b,
                Side::B => &mut self.free_b_to_a,
            };
            let start = (*free).max(self.now);
            *free = start + serialize;
            let mut at = start + serialize + self.latency;
            if !eof && self.loss > 0.0 {
                // Each loss costs a retransmission timeout (at least 200 ms,
                // as TCP's minimum RTO).
                while (self.rng.next_u64() as f64 / u64::MAX as f64) < self.loss {
                    at += (4 * self.latency).max(200);
                    self.stats.retransmissions += 1;
                }
            }
            let queue = match from {
                Side::A => &mut self.a_to_b,
                Side::B => &mut self.b_to_a,
            };
            if let Some(last) = queue.back() {
                at = at.max(last.at);
            }
            match from {
                Side::A => self.stats.bytes_a_to_b += chunk.len() as u64,
                Side::B => self.stats.bytes_b_to_a += chunk.len() as u64,
            }
            queue.push_back(Chunk {
                at,
                bytes: chunk,
                eof,
            });
        }
    }

    /// Writes everything `side`'s session has to say.
    fn flush(&mut self, side: Side) {
        loop {
            let peer = self.peer(side);
            let now = peer.now();
            let Some(session) = &mut peer.session else {
                return;
            };
            let out = session.poll_transmit(now, &peer.store);
            let closed = session.is_closed();
            let events: Vec<Event> = std::iter::from_fn(|| session.poll_event()).collect();
            events.into_iter().for_each(|e| peer.record(e));
            match out {
                Some(_) if self.stalled[side as usize] => {}
                Some(mut bytes) => {
                    let action = match &mut self.filter {
                        Some(f) => f(side, &mut bytes),
                        None => Action::Deliver,
                    };
                    match action {
                        Action::Deliver => self.schedule(side, bytes, false),
                        Action::Stall(n) => {
                            bytes.truncate(n);
                            if !bytes.is_empty() {
                                self.schedule(side, bytes, false);
                            }
                            self.stalled[side as usize] = true;
                        }
                        Action::Cut(n) => {
                            bytes.truncate(n);
                            self.schedule(side, bytes, true);
                            if let Some(s) = &mut self.peer(side).session {
                                s.close();
                            }
                            self.peer(side).session = None;
                            return;
                        }
                    }
                }
                None => {
                    if closed {
                        self.schedule(side, Vec::new(), true);
                        self.peer(side).session = None;
                    }
                    return;
                }
            }
        }
    }

    fn deliver(&mut self, to: Side, chunk: Chunk) {
        self.last_delivery = self.now;
        let peer = self.peer(to);
        let now = peer.now();
        let Some(s) = &mut peer.session else {
            return; // the link is dead on this side
        };
        if chunk.eof {
            s.handle_eof();
        } else {
            let _ = s.handle_input(now, &chunk.bytes, &peer.store);
            s.settle(now, &mut peer.store);
        }
        let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        let closed = s.is_closed();
        events.into_iter().for_each(|e| peer.record(e));
        if chunk.eof && closed {
            peer.session = None;
            return;
        }
        self.flush(to);
    }

    fn next_delivery(&self) -> Option<(Time, Side)> {
        let ab = self.a_to_b.front().map(|c| (c.at, Side::B));
        let ba = self.b_to_a.front().map(|c| (c.at, Side::A));
        match (ab, ba) {
            (Some(x), Some(y)) => Some(if y.0 < x.0 { y } else { x }),
            (x, y) => x.or(y),
        }
    }

    fn next_timeout(&self) -> Option<(Time, Side)> {
        let ta = self
            .a
            .session
            .as_ref()
            .and_then(Session::poll_timeout)
            .map(|t| (t, Side::A));
        let tb = self
            .b
            .session
            .as_ref()
            .and_then(Session::poll_timeout)
            .map(|t| (t, Side::B));
        match (ta, tb) {
            (Some(x), Some(y)) => Some(if y.0 < x.0 { y } else { x }),
            (x, y) => x.or(y),
        }
    }

    /// Advances to the next delivery or deadline and handles it. Returns
    /// `false` when nothing is left to happen. With `timers` false,
    /// deadlines are ignored (they would tick keepalives forever).
    pub fn step_with(&mut self, timers: bool) -> bool {
        let delivery = self.next_delivery();
        let timeout = if timers { self.next_timeout() } else { None };
        let fire_timer = match (delivery, timeout) {
            (None, None) => return false,
            (Some(d), Some(t)) => t.0 < d.0,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        if fire_timer {
            let (at, side) = timeout.expect("checked");
            self.now = self.now.max(at);
            self.set_clocks();
            let peer = self.peer(side);
            let now = peer.now().max(at);
            if let Some(s) = &mut peer.session {
                s.handle_timeout(now);
            }
            self.flush(side);
        } else {
            let (at, to) = delivery.expect("checked");
            self.now = self.now.max(at);
            self.set_clocks();
            let chunk = match to {
                Side::B => self.a_to_b.pop_front(),
                Side::A => self.b_to_a.pop_front(),
            }
            .expect("front exists");
            self.deliver(to, chunk);
        }
        true
    }

    /// One step, timers included.
    pub fn step(&mut self) -> bool {
        self.step_with(true)
    }

    /// Runs until the link is quiet: nothing in flight and nothing to send.
    /// Keepalive and idle timers do not fire.
    pub fn drive(&mut self) {
        self.set_clocks();
        self.flush(Side::A);
        self.flush(Side::B);
        while self.step_with(false) {}
    }

    /// Runs for `duration` of virtual time, timers included.
    pub fn drive_for(&mut self, duration: Time) {
        let end = self.now + duration;
        self.set_clocks();
        self.flush(Side::A);
        self.flush(Side::B);
        loop {
            let next = [self.next_delivery(), self.next_timeout()]
                .into_iter()
                .flatten()
                .map(|(t, _)| t)
                .min();
            match next {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
        self.set_clocks();
    }

    /// Virtual time from [`connect`](Pair::connect) to the last delivery.
    pub fn elapsed(&self) -> Time {
        self.last_delivery - self.started.unwrap_or(self.now)
    }

    /// [`elapsed`](Pair::elapsed) in round trips (meaningful when the rate
    /// is unlimited and there is no loss).
    pub fn round_trips(&self) -> f64 {
        if self.latency == 0 {
            return 0.0;
        }
        self.elapsed() as f64 / (2 * self.latency) as f64
    }

    /// Total bytes both ways.
    pub fn bytes(&self) -> u64 {
        self.stats.bytes_a_to_b + self.stats.bytes_b_to_a
    }
}

/// One link, the same everywhere: fixed identities (Alice's from seed
/// [`LinkFixture::ALICE`], Bob's from [`LinkFixture::BOB`]), one message
/// of Alice's in her store, a fixed time, and a fixed seed for each side's
/// link randomness. The node (over its link pump and an emulated
/// transport) and the simulator (over its link model) each run this link
/// and must write exactly the bytes of [`LinkFixture::transcript`]: the
/// three run the same preamble and session code.
pub struct LinkFixture {
    /// Alice, who dials: `Identity::generate("alice", ChaCha20(ALICE))`.
    pub alice: Identity,
    /// Bob, who accepts: `Identity::generate("bob", ChaCha20(BOB))`.
    pub bob: Identity,
    /// The one message of the 1:1 conversation, in Alice's store.
    pub message: Message,
    /// Everyone's clock.
    pub now: Time,
    /// Seeds Alice's RNG for links (her session's randomness).
    pub alice_link_seed: u64,
    /// Seeds Bob's RNG for links.
    pub bob_link_seed: u64,
    /// Session settings on both sides.
    pub config: Config,
}

impl std::fmt::Debug for LinkFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkFixture").finish_non_exhaustive()
    }
}

impl Default for LinkFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl LinkFixture {
    /// Seed of Alice's identity.
    pub const ALICE: u64 = 0xa11ce;
    /// Seed of Bob's identity.
    pub const BOB: u64 = 0xb0b;

    /// The fixture.
    pub fn new() -> LinkFixture {
        let alice = Identity::generate("alice", &mut ChaCha20Rng::seed_from_u64(Self::ALICE))
            .expect("a valid name");
        let bob = Identity::generate("bob", &mut ChaCha20Rng::seed_from_u64(Self::BOB))
            .expect("a valid name");
        let group = alice
            .contact(&bob.public())
            .expect("distinct identities")
            .direct_group()
            .clone();
        let message = Message::create(
            &alice,
            &group,
            EPOCH - 60_000,
            Kind::TEXT,
            b"the same bytes everywhere",
            &mut ChaCha20Rng::seed_from_u64(7),
        )
        .expect("a member writing a short text");
        LinkFixture {
            alice,
            bob,
            message,
            now: EPOCH,
            alice_link_seed: 11,
            bob_link_seed: 12,
            config: Config::default(),
        }
    }

    /// Alice's and Bob's endpoints (each the other's only contact).
    pub fn endpoints(&self) -> (Endpoint, Endpoint) {
        let (a, b) = self.contacts();
        (
            Endpoint::new(&self.alice, vec![a]),
            Endpoint::new(&self.bob, vec![b]),
        )
    }

    /// Alice's contact Bob and Bob's contact Alice, syncing what a node
    /// syncs with a contact it shares no private group with: their 1:1
    /// conversation and their carrying pool (PROTOCOL.md §17).
    pub fn contacts(&self) -> (Contact, Contact) {
        let with_pool = |mut c: Contact| {
            c.groups.push(c.pool.clone());
            c
        };
        (
            with_pool(self.alice.contact(&self.bob.public()).expect("distinct")),
            with_pool(self.bob.contact(&self.alice.public()).expect("distinct")),
        )
    }

    /// The bytes Alice and Bob write on the link, in order, each side's
    /// output taken as soon as it has any and every input settled at once:
    /// `[Alice's, Bob's]`.
    pub fn transcript(&self) -> [Vec<u8>; 2] {
        let (ea, eb) = self.endpoints();
        let now = self.now;
        let mut a = ea.dial(
            self.config,
            now,
            &mut ChaCha20Rng::seed_from_u64(self.alice_link_seed),
        );
        let mut b = eb.accept(
            self.config,
            now,
            &mut ChaCha20Rng::seed_from_u64(self.bob_link_seed),
        );
        let mut store_a = MemoryStore::new();
        let group = self.message.group();
        store_a.insert(&group, &self.message).expect("memory store");
        let mut store_b = MemoryStore::new();
        let mut out: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        loop {
            let mut moved = false;
            while let Some(bytes) = b.poll_transmit(now, &store_b) {
                out[1].extend_from_slice(&bytes);
                let _ = a.handle_input(now, &bytes, &store_a);
                a.settle(now, &mut store_a);
                moved = true;
            }
            while let Some(bytes) = a.poll_transmit(now, &store_a) {
                out[0].extend_from_slice(&bytes);
                let _ = b.handle_input(now, &bytes, &store_b);
                b.settle(now, &mut store_b);
                moved = true;
            }
            if !moved {
                return out;
            }
        }
    }
}

/// What a recipient makes of a carrier's pool messages: the same
/// everywhere. Ben, who carries, writes [`PoolFixture::messages`] in his
/// carrying pool with Cat; Cat, who carries too and whose contacts are Ann
/// and Ben, takes them in. The node (over real sessions and its redb
/// store) and the simulator (over its link model) each run this and must
/// end in [`PoolFixture::expected`]: both decide with
/// [`Carrier::take`](crate::Carrier::take) and accept what opens by
/// [`opened_author`](crate::opened_author).
pub struct PoolFixture {
    /// Ann, Cat's contact, who never meets her: `Identity::generate("ann",
    /// ChaCha20(ANN))`.
    pub ann: Identity,
    /// Ben, the carrier, Cat's contact.
    pub ben: Identity,
    /// Cat, the recipient.
    pub cat: Identity,
    /// A stranger to Cat (anyone can seal to her public key).
    pub mallory: Identity,
    /// Ben's pool messages to Cat, in the order he wrote them.
    pub messages: Vec<Message>,
}

/// What Cat holds after taking in a [`PoolFixture`]'s messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOutcome {
    /// The texts in her 1:1 conversations (and in the one a stranger
    /// claims with her), as `(author's name, text)`, by author then time.
    pub texts: Vec<(String, String)>,
    /// Envelopes that opened for her ([`CarryStats::opened`]).
    ///
    /// [`CarryStats::opened`]: crate::CarryStats::opened
    pub opened: u64,
    /// Of those, the messages she took in and acknowledged.
    pub accepted: u64,
    /// Envelopes she holds to carry for others.
    pub held: usize,
}

impl std::fmt::Debug for PoolFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolFixture")
            .field("messages", &self.messages.len())
            .finish_non_exhaustive()
    }
}

impl PoolFixture {
    /// Seed of Ann's identity.
    pub const ANN: u64 = 0xa22;
    /// Seed of Ben's identity.
    pub const BEN: u64 = 0xbe22;
    /// Seed of Cat's identity.
    pub const CAT: u64 = 0xca7;

    /// The fixture, its messages written at `now` (envelopes last an hour).
    pub fn new(now: Time) -> PoolFixture {
        let person = |name: &str, seed: u64| {
            Identity::generate(name, &mut ChaCha20Rng::seed_from_u64(seed)).expect("a valid name")
        };
        let (ann, ben, cat) = (
            person("ann", Self::ANN),
            person("ben", Self::BEN),
            person("cat", Self::CAT),
        );
        let mallory = person("mallory", 0x3a11);
        let mut rng = ChaCha20Rng::seed_from_u64(0x9001);
        let expires = now + 3_600_000;
        let pool = ben.contact(&cat.public()).expect("distinct").pool;
        let direct = |from: &Identity, to: &Identity| {
            from.contact(&to.public())
                .expect("distinct")
                .direct_group()
                .clone()
        };
        let mut text = |from: &Identity, group: &Group, body: &str| {
            Message::create(from, group, now, Kind::TEXT, body.as_bytes(), &mut rng)
                .expect("a short text")
        };
        let to_cat = [
            // A contact's text in her 1:1 group with Cat: taken in.
            text(&ann, &direct(&ann, &cat), "ann, carried by ben"),
            // The carrier's own text, sealed: he is her contact too.
            text(&ben, &direct(&ben, &cat), "ben, in an envelope"),
            // A stranger's: opens, and is dropped unacknowledged.
            text(&mallory, &direct(&mallory, &cat), "mallory, a stranger"),
            // Ann's text to Ben, sealed to Cat by Ben: Ann is her contact,
            // but this is not their conversation.
            text(&ann, &direct(&ann, &ben), "ann to ben, re-sealed"),
        ];
        let for_mallory = text(&ann, &direct(&ann, &mallory), "ann to mallory");
        let mut seal = |to: &Identity, m: &Message| {
            Envelope::seal(&to.public(), m, expires, 2, &mut rng).expect("a short text seals")
        };
        let mut bodies = vec![(Kind::CARRYING, crate::encode_carrying(true))];
        let sealed: Vec<Envelope> = to_cat.iter().map(|m| seal(&cat, m)).collect();
        for e in &sealed {
            bodies.push((Kind::ENVELOPE, crate::carry::wrap(crate::carry::CARRY, e)));
        }
        // The first envelope again, replayed: already delivered.
        bodies.push((
            Kind::ENVELOPE,
            crate::carry::wrap(crate::carry::DELIVER, &sealed[0]),
        ));
        // Ann's envelope with its sealed part altered: it names Cat but
        // does not open, so it is neither delivered nor carried.
        let mut altered = sealed[0].as_bytes().to_vec();
        *altered.last_mut().expect("not empty") ^= 1;
        let altered = Envelope::decode(altered).expect("the same shape");
        bodies.push((
            Kind::ENVELOPE,
            crate::carry::wrap(crate::carry::CARRY, &altered),
        ));
        // One for someone else: Cat carries it.
        let onward = seal(&mallory, &for_mallory);
        bodies.push((
            Kind::ENVELOPE,
            crate::carry::wrap(crate::carry::CARRY, &onward),
        ));
        let messages = bodies
            .into_iter()
            .enumerate()
            .map(|(i, (kind, body))| {
                let expiry = (kind == Kind::ENVELOPE).then_some(expires);
                // A millisecond apart, so they sort as written.
                Message::create_expiring(
                    &ben,
                    &pool,
                    now + i as Time,
                    expiry,
                    kind,
                    &body,
                    &mut rng,
                )
                .expect("a pool message")
            })
            .collect();
        PoolFixture {
            ann,
            ben,
            cat,
            mallory,
            messages,
        }
    }

    /// What Cat must end with: the two texts her contacts wrote to her,
    /// four envelopes opened, two of them accepted (acknowledged), one
    /// envelope carried on.
    pub fn expected() -> PoolOutcome {
        PoolOutcome {
            texts: vec![
                ("ann".into(), "ann, carried by ben".into()),
                ("ben".into(), "ben, in an envelope".into()),
            ],
            opened: 4,
            accepted: 2,
            held: 1,
        }
    }

    /// Reads Cat's outcome from her `store` and her carrier's counts:
    /// envelopes `opened` and `accepted`, and envelopes `held`.
    pub fn outcome<S: Store>(
        &self,
        store: &S,
        opened: u64,
        accepted: u64,
        held: usize,
    ) -> PoolOutcome {
        let mut texts = Vec::new();
        for who in [&self.ann, &self.ben, &self.mallory] {
            let group = self
                .cat
                .contact(&who.public())
                .expect("distinct")
                .direct_group()
                .clone();
            let mut keys = Vec::new();
            store
                .scan(&group.id, &crate::KeyRange::ALL, &mut |k| {
                    keys.push(*k);
                    std::ops::ControlFlow::Continue(())
                })
                .expect("a readable store");
            for key in keys {
                let Some(bytes) = store.get(&group.id, &key).expect("a readable store") else {
                    continue;
                };
                let Ok(message) = Message::decode(bytes) else {
                    continue;
                };
                if message.kind() != Kind::TEXT {
                    continue;
                }
                let body = message.open(&group).expect("stored messages open");
                texts.push((
                    who.name().to_string(),
                    String::from_utf8_lossy(&body).into_owned(),
                ));
            }
        }
        PoolOutcome {
            texts,
            opened,
            accepted,
            held,
        }
    }
}
