//! A sync session over one link: Noise handshake, then reconciliation and
//! message transfer for every group the two contacts share.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::ControlFlow;

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::crypto::{SeededResolver, NOISE_PARAMS};
use crate::frame::{self, Frame};
use crate::group::{Group, GroupId};
use crate::identity::{Contact, Identity, PublicIdentity};
use crate::limits::*;
use crate::message::{Message, MessageId};
use crate::recon::{self, Send};
use crate::store::{Key, KeyRange, Store};
use crate::token::{handshake_token, token_matches};
use crate::{HandshakeError, Invalid, SessionError};

/// Bytes of a session's first message: token, ephemeral key, AEAD tag.
/// It has no length prefix; a responder reads exactly this many bytes.
pub const HELLO_LEN: usize = TOKEN_LEN + 32 + 16;

const PROLOGUE: &[u8] = b"strand/v1";
const TAG_LEN: usize = 16;
/// Noise message 2: ephemeral key and the payload's tag.
const MSG2_OVERHEAD: usize = 32 + TAG_LEN;
/// Most queued message sends (40-90 bytes each); beyond, later sends are
/// dropped and the next reconciliation finds them.
const MAX_SEND_QUEUE: usize = 65_536;
/// Keys fetched from the store per scan when streaming a range.
const SEND_BATCH: usize = 64;

/// Session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Largest packet this side sends (Noise message incl. tag), clamped
    /// to [`MIN_PACKET_LEN`]..=[`MAX_PACKET_LEN`]. Small for BLE.
    pub max_packet: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_packet: DEFAULT_PACKET_LEN,
        }
    }
}

impl Config {
    fn packet(&self) -> usize {
        self.max_packet.clamp(MIN_PACKET_LEN, MAX_PACKET_LEN)
    }
}

/// Something a session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake finished: the peer is this contact.
    Established {
        /// The contact.
        peer: PublicIdentity,
    },
    /// A new valid message was stored.
    Received {
        /// Its group.
        group: GroupId,
        /// Its key.
        key: Key,
    },
    /// The peer confirmed it holds a message this session sent.
    Delivered {
        /// Its group.
        group: GroupId,
        /// Its key.
        key: Key,
    },
    /// Reconciliation of a group finished: every message either side
    /// lacked has been queued for sending.
    Synced {
        /// The group.
        group: GroupId,
    },
    /// A message that is fine but cannot be stored yet (its timestamp is
    /// too far ahead of our clock). It was not stored; it will be offered
    /// again by the next sync.
    Rejected {
        /// Its group.
        group: GroupId,
        /// Its id.
        id: MessageId,
        /// Why.
        reason: Invalid,
    },
    /// The session ended: cleanly (`None`) or with an error.
    Closed {
        /// What went wrong, if anything.
        error: Option<SessionError>,
    },
}

/// Bytes moved by a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Wire bytes sent (length prefixes, Noise overhead and all).
    pub bytes_sent: u64,
    /// Wire bytes received.
    pub bytes_received: u64,
    /// Packets sent, the handshake messages included.
    pub packets_sent: u64,
    /// Messages received and stored (new or not).
    pub messages_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
}

enum State {
    /// Initiator: hello sent (or queued), waiting for message 2.
    AwaitResponse(Box<snow::HandshakeState>),
    /// Responder: hello read, message 2 not yet written.
    Respond(Box<snow::HandshakeState>),
    Established(Box<snow::TransportState>),
    /// A CLOSE frame is queued; closed once it is sent.
    Closing(Box<snow::TransportState>),
    Closed,
}

#[derive(Debug, Default)]
struct Exchange {
    awaiting_reply: bool,
    rounds: u32,
    done: bool,
}

/// One Noise + sync session with one contact over one link.
///
/// Sans-IO: the caller moves bytes and time. Feed what the link delivers to
/// [`handle_input`](Session::handle_input), write what
/// [`poll_transmit`](Session::poll_transmit) returns, call
/// [`handle_timeout`](Session::handle_timeout) when
/// [`poll_timeout`](Session::poll_timeout)'s deadline passes, and act on
/// [`poll_event`](Session::poll_event)s.
///
/// ```
/// use strand_sync::{Identity, Listener, MemoryStore, Session, Config, Event, Message, Kind};
/// use rand_chacha::ChaCha20Rng;
/// use rand_core::SeedableRng;
///
/// let mut rng = ChaCha20Rng::seed_from_u64(7);
/// let now = 1_700_000_000_000; // ms since the Unix epoch, from the caller's clock
/// let alice = Identity::generate("alice", &mut rng).unwrap();
/// let bob = Identity::generate("bob", &mut rng).unwrap();
/// let bob_as_seen_by_alice = alice.contact(&bob.public()).unwrap();
/// let alice_as_seen_by_bob = bob.contact(&alice.public()).unwrap();
///
/// // Alice writes a message into their 1:1 conversation.
/// let mut alice_store = MemoryStore::new();
/// let group = bob_as_seen_by_alice.direct_group().clone();
/// let msg = Message::create(&alice, &group, now, Kind::TEXT, b"hi", &mut rng).unwrap();
/// strand_sync::Store::insert(&mut alice_store, &group.id, &msg).unwrap();
/// let mut bob_store = MemoryStore::new();
///
/// // Alice dials; Bob's listener reads the fixed-size hello and accepts.
/// let mut a = Session::connect(Config::default(), &alice, &bob_as_seen_by_alice, now, &mut rng);
/// let mut listener = Listener::new(&bob, vec![alice_as_seen_by_bob]);
/// let hello = a.poll_transmit(now, &mut alice_store).unwrap();
/// let mut b = listener.accept(Config::default(), &hello, now, &mut rng).unwrap();
///
/// // The drive loop: move bytes until neither side has anything to say.
/// loop {
///     let mut moved = false;
///     while let Some(bytes) = b.poll_transmit(now, &mut bob_store) {
///         a.handle_input(now, &bytes, &mut alice_store).unwrap();
///         moved = true;
///     }
///     while let Some(bytes) = a.poll_transmit(now, &mut alice_store) {
///         b.handle_input(now, &bytes, &mut bob_store).unwrap();
///         moved = true;
///     }
///     if !moved { break; }
/// }
/// assert_eq!(bob_store.len(&group.id), 1);
/// assert!(std::iter::from_fn(|| b.poll_event())
///     .any(|e| matches!(e, Event::Received { .. })));
/// ```
pub struct Session {
    config: Config,
    state: State,
    initiator: bool,
    peer: PublicIdentity,
    groups: BTreeMap<GroupId, Group>,
    exchanges: BTreeMap<GroupId, Exchange>,
    opened: bool,
    /// Encoded frames waiting to go out, in order.
    control: VecDeque<Vec<u8>>,
    /// The hello, for an initiator that has not sent it yet.
    hello: Option<Vec<u8>>,
    sends: VecDeque<(GroupId, Send)>,
    ready: VecDeque<(GroupId, Key)>,
    /// The message being sent in parts, and how much of it is out.
    current: Option<(Vec<u8>, usize)>,
    /// Received bytes that do not make a whole packet yet.
    rx: Vec<u8>,
    /// A message being received in parts: its total length and the bytes.
    partial: Option<(usize, Vec<u8>)>,
    acks: BTreeMap<GroupId, Vec<u64>>,
    unacked: BTreeMap<u64, (GroupId, Key)>,
    unacked_order: VecDeque<u64>,
    events: VecDeque<Event>,
    deadline_handshake: Time,
    last_recv: Time,
    last_send: Time,
    stats: Stats,
    buf: Vec<u8>,
    /// Whether [`Event::Closed`] has been queued.
    reported_close: bool,
    /// RECON frames received for groups this session does not sync.
    unknown_groups: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("initiator", &self.initiator)
            .field("established", &self.is_established())
            .field("closed", &self.is_closed())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Session {
    fn new(config: Config, state: State, initiator: bool, contact: &Contact, now: Time) -> Self {
        let groups = contact
            .groups
            .iter()
            .take(MAX_GROUPS_PER_SESSION)
            .map(|g| (g.id, g.clone()))
            .collect();
        Session {
            config,
            state,
            initiator,
            peer: contact.public,
            groups,
            exchanges: BTreeMap::new(),
            opened: false,
            control: VecDeque::new(),
            hello: None,
            sends: VecDeque::new(),
            ready: VecDeque::new(),
            current: None,
            rx: Vec::new(),
            partial: None,
            acks: BTreeMap::new(),
            unacked: BTreeMap::new(),
            unacked_order: VecDeque::new(),
            events: VecDeque::new(),
            deadline_handshake: now.saturating_add(HANDSHAKE_TIMEOUT),
            last_recv: now,
            last_send: now,
            stats: Stats::default(),
            // Plaintext of one received packet: the peer's packets may be
            // larger than ours, so this grows on demand (see handle_packet).
            buf: Vec::new(),
            reported_close: false,
            unknown_groups: 0,
        }
    }

    /// Starts a session to `contact`. The first [`poll_transmit`]
    /// (Session::poll_transmit) returns the hello ([`HELLO_LEN`] bytes).
    pub fn connect(
        config: Config,
        me: &Identity,
        contact: &Contact,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Session {
        let mut hs = snow::Builder::with_resolver(
            NOISE_PARAMS.parse().expect("a valid Noise pattern"),
            Box::new(SeededResolver::new(rng)),
        )
        .local_private_key(me.dh_secret().as_bytes())
        .and_then(|b| b.remote_public_key(&contact.public.dh))
        .and_then(|b| b.prologue(PROLOGUE))
        .and_then(snow::Builder::build_initiator)
        .expect("32-byte X25519 keys and a supported pattern");
        let mut msg = [0u8; HELLO_LEN - TOKEN_LEN];
        let n = hs
            .write_message(&[], &mut msg)
            .expect("the first KK message fits 48 bytes");
        debug_assert_eq!(n, msg.len());
        let token = handshake_token(&contact.token_key, crate::token::epoch(now), &msg[..32]);
        let mut session = Session::new(
            config,
            State::AwaitResponse(Box::new(hs)),
            true,
            contact,
            now,
        );
        session.hello = Some([&token[..], &msg[..]].concat());
        session
    }

    /// Whether the handshake has finished and the session is not closed.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_) | State::Closing(_))
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The contact at the other end (known from the start to an initiator,
    /// and to a responder once the hello matched).
    pub fn peer(&self) -> &PublicIdentity {
        &self.peer
    }

    /// Whether this side dialled.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// Bytes and messages moved so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether every group's reconciliation has finished and nothing is
    /// queued to send.
    pub fn is_idle(&self) -> bool {
        self.is_established()
            && self.opened
            && self.exchanges.values().all(|e| e.done)
            && self.control.is_empty()
            && self.sends.is_empty()
            && self.ready.is_empty()
            && self.current.is_none()
            && self.acks.is_empty()
    }

    /// The next thing to report, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Session::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.state {
            State::Closed => None,
            State::AwaitResponse(_) | State::Respond(_) => Some(self.deadline_handshake),
            State::Established(_) | State::Closing(_) => Some(
                self.last_recv
                    .saturating_add(IDLE_TIMEOUT)
                    .min(self.last_send.saturating_add(KEEPALIVE_INTERVAL)),
            ),
        }
    }

    /// Time has reached a deadline from [`poll_timeout`](Session::poll_timeout).
    pub fn handle_timeout(&mut self, now: Time) {
        match self.state {
            State::Closed => {}
            State::AwaitResponse(_) | State::Respond(_) => {
                if now >= self.deadline_handshake {
                    self.fail(SessionError::Timeout);
                }
            }
            State::Established(_) | State::Closing(_) => {
                if now >= self.last_recv.saturating_add(IDLE_TIMEOUT) {
                    self.fail(SessionError::Timeout);
                } else if now >= self.last_send.saturating_add(KEEPALIVE_INTERVAL)
                    && self.control.is_empty()
                {
                    self.control.push_back(frame::simple(frame::PING, &[]));
                }
            }
        }
    }

    /// Ends the session politely: a CLOSE frame is sent with the next
    /// [`poll_transmit`](Session::poll_transmit), then it is closed.
    pub fn close(&mut self) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Established(t) | State::Closing(t) => {
                self.control.clear();
                self.sends.clear();
                self.ready.clear();
                self.current = None;
                self.acks.clear();
                self.control.push_back(frame::simple(frame::CLOSE, &[0]));
                self.state = State::Closing(t);
            }
            State::Closed => {}
            _ => self.report_clean_close(),
        }
    }

    fn report_clean_close(&mut self) {
        if !self.reported_close {
            self.reported_close = true;
            self.events.push_back(Event::Closed { error: None });
        }
    }

    /// The link ended (end of stream, connection reset).
    pub fn handle_eof(&mut self) {
        if self.reported_close {
            return;
        }
        if !self.rx.is_empty() || self.partial.is_some() {
            self.fail(SessionError::Truncated);
        } else {
            self.fail(SessionError::ConnectionLost);
        }
    }

    /// A message was stored locally (written by the user, or received from
    /// another contact): send it now if this session syncs its group.
    pub fn handle_new_message(&mut self, group: &GroupId, key: Key) {
        if self.is_established()
            && self.groups.contains_key(group)
            && self.sends.len() < MAX_SEND_QUEUE
        {
            self.sends.push_back((*group, Send::Key(key)));
        }
    }

    fn fail(&mut self, error: SessionError) {
        if self.reported_close {
            return;
        }
        self.reported_close = true;
        self.state = State::Closed;
        self.control.clear();
        self.sends.clear();
        self.ready.clear();
        self.current = None;
        self.rx = Vec::new();
        self.partial = None;
        self.events.push_back(Event::Closed { error: Some(error) });
    }

    /// Bytes from the link. Errors close the session (and are also
    /// reported as [`Event::Closed`]); the store keeps whatever valid
    /// messages arrived before.
    pub fn handle_input<S: Store>(
        &mut self,
        now: Time,
        bytes: &[u8],
        store: &mut S,
    ) -> Result<(), SessionError> {
        if self.is_closed() {
            return Err(SessionError::Closed);
        }
        self.stats.bytes_received += bytes.len() as u64;
        self.last_recv = now;
        self.rx.extend_from_slice(bytes);
        let mut start = 0;
        let result = loop {
            if self.rx.len() - start < 2 {
                break Ok(());
            }
            let len = u16::from_be_bytes([self.rx[start], self.rx[start + 1]]) as usize;
            if len < TAG_LEN {
                break Err(SessionError::Decode(crate::DecodeError::Invalid(
                    "packet shorter than its tag",
                )));
            }
            if self.rx.len() - start < 2 + len {
                break Ok(());
            }
            let packet = self.rx[start + 2..start + 2 + len].to_vec();
            start += 2 + len;
            if let Err(e) = self.handle_packet(now, &packet, store) {
                break Err(e);
            }
            if self.is_closed() {
                break Ok(());
            }
        };
        if let Err(e) = result {
            self.fail(e.clone());
            return Err(e);
        }
        if !self.is_closed() {
            self.rx.drain(..start);
        }
        Ok(())
    }

    fn handle_packet<S: Store>(
        &mut self,
        now: Time,
        packet: &[u8],
        store: &mut S,
    ) -> Result<(), SessionError> {
        let mut plain = std::mem::take(&mut self.buf);
        if plain.len() < packet.len() {
            plain.resize(packet.len(), 0);
        }
        let result = match std::mem::replace(&mut self.state, State::Closed) {
            State::AwaitResponse(mut hs) => match hs.read_message(packet, &mut plain) {
                Ok(n) => {
                    let t = hs
                        .into_transport_mode()
                        .map_err(|_| SessionError::Handshake)?;
                    self.state = State::Established(Box::new(t));
                    self.events
                        .push_back(Event::Established { peer: self.peer });
                    if n == 0 {
                        Err(SessionError::Decode(crate::DecodeError::Invalid(
                            "empty packet",
                        )))
                    } else {
                        self.handle_plain(now, &plain[..n], store)
                    }
                }
                Err(_) => Err(SessionError::Handshake),
            },
            State::Established(mut t) => match t.read_message(packet, &mut plain) {
                Ok(n) => {
                    self.state = State::Established(t);
                    self.handle_plain(now, &plain[..n], store)
                }
                Err(_) => Err(SessionError::Decrypt),
            },
            State::Closing(mut t) => {
                // Draining: authenticate, ignore.
                let r = t
                    .read_message(packet, &mut plain)
                    .map(|_| ())
                    .map_err(|_| SessionError::Decrypt);
                self.state = State::Closing(t);
                r
            }
            State::Respond(hs) => {
                // The initiator may not speak before message 2.
                self.state = State::Respond(hs);
                Err(SessionError::Decode(crate::DecodeError::Invalid(
                    "data before the handshake finished",
                )))
            }
            State::Closed => Err(SessionError::Closed),
        };
        self.buf = plain;
        result
    }

    fn handle_plain<S: Store>(
        &mut self,
        now: Time,
        plain: &[u8],
        store: &mut S,
    ) -> Result<(), SessionError> {
        let frames = frame::decode_packet(plain)?;
        for f in frames {
            match f {
                Frame::Recon { group, msg } => self.on_recon(group, &msg, store)?,
                Frame::Ready => {
                    if !self.initiator || self.opened {
                        return Err(SessionError::Decode(crate::DecodeError::Invalid(
                            "unexpected READY",
                        )));
                    }
                    self.open_groups(store)?;
                }
                Frame::Msg(bytes) => {
                    if self.partial.is_some() {
                        return Err(SessionError::Decode(crate::DecodeError::Invalid(
                            "message inside a message",
                        )));
                    }
                    self.on_message(now, bytes.to_vec(), store)?;
                }
                Frame::MsgBegin { total, data } => {
                    if self.partial.is_some() {
                        return Err(SessionError::Decode(crate::DecodeError::Invalid(
                            "message inside a message",
                        )));
                    }
                    let mut buf = Vec::with_capacity(total.min(MAX_PACKET_LEN * 4));
                    buf.extend_from_slice(data);
                    self.partial = Some((total, buf));
                }
                Frame::MsgMore(data) => {
                    let Some((total, mut buf)) = self.partial.take() else {
                        return Err(SessionError::Decode(crate::DecodeError::Invalid(
                            "message part without a start",
                        )));
                    };
                    if buf.len() + data.len() > total {
                        return Err(SessionError::Decode(crate::DecodeError::Invalid(
                            "message longer than announced",
                        )));
                    }
                    buf.extend_from_slice(data);
                    if buf.len() == total {
                        self.on_message(now, buf, store)?;
                    } else {
                        self.partial = Some((total, buf));
                    }
                }
                Frame::Ack { group, tags } => {
                    for tag in tags {
                        if self.unacked.get(&tag).is_some_and(|(g, _)| *g == group) {
                            let (_, key) = self.unacked.remove(&tag).expect("just seen");
                            self.events.push_back(Event::Delivered { group, key });
                        }
                    }
                }
                Frame::UnknownGroup(group) => {
                    if let Some(e) = self.exchanges.get_mut(&group) {
                        e.done = true;
                        e.awaiting_reply = false;
                    }
                }
                Frame::Ping => {}
                Frame::Close(_) => {
                    self.state = State::Closed;
                    self.report_clean_close();
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn open_groups<S: Store>(&mut self, store: &S) -> Result<(), SessionError> {
        self.opened = true;
        let ids: Vec<GroupId> = self.groups.keys().copied().collect();
        for id in ids {
            if self.exchanges.contains_key(&id) {
                continue;
            }
            let msg = recon::open(store, &id).map_err(store_error)?;
            self.control.push_back(frame::recon(&id, &msg));
            self.exchanges.insert(
                id,
                Exchange {
                    awaiting_reply: true,
                    rounds: 0,
                    done: false,
                },
            );
        }
        if !self.initiator {
            self.control.push_back(frame::simple(frame::READY, &[]));
        }
        Ok(())
    }

    fn on_recon<S: Store>(
        &mut self,
        group: GroupId,
        msg: &recon::ReconMsg,
        store: &S,
    ) -> Result<(), SessionError> {
        if !self.groups.contains_key(&group) {
            // Bounded like rounds: a peer cannot make us queue answers for
            // unknown groups without end.
            self.unknown_groups += 1;
            if self.unknown_groups > MAX_GROUPS_PER_SESSION {
                return Err(SessionError::Limit("unknown groups per session"));
            }
            if msg.expects_reply() {
                self.control
                    .push_back(frame::simple(frame::UNKNOWN_GROUP, &group.0));
            }
            return Ok(());
        }
        // Strict turns: a RECON is either the peer opening a group we have
        // no exchange for yet, or the reply we are waiting for. Anything
        // else would let a peer make us work without waiting for us.
        if let Some(ex) = self.exchanges.get(&group) {
            if !ex.awaiting_reply {
                return Err(SessionError::Decode(crate::DecodeError::Invalid(
                    "reconciliation frame out of turn",
                )));
            }
        }
        let ex = self.exchanges.entry(group).or_default();
        ex.rounds += 1;
        if ex.rounds > MAX_ROUNDS_PER_GROUP {
            return Err(SessionError::Limit("reconciliation rounds per group"));
        }
        ex.awaiting_reply = false;
        let budget = self.config.packet() - TAG_LEN - 40;
        let reply = recon::reply(store, &group, msg, budget).map_err(store_error)?;
        for s in reply.send {
            if self.sends.len() < MAX_SEND_QUEUE {
                self.sends.push_back((group, s));
            }
        }
        let ex = self.exchanges.get_mut(&group).expect("inserted above");
        if reply.msg.expects_reply() {
            ex.awaiting_reply = true;
            ex.done = false;
            self.control.push_back(frame::recon(&group, &reply.msg));
        } else {
            if msg.expects_reply() || !reply.msg.items.is_empty() {
                self.control.push_back(frame::recon(&group, &reply.msg));
            }
            if !ex.done {
                ex.done = true;
                self.events.push_back(Event::Synced { group });
            }
        }
        Ok(())
    }

    fn on_message<S: Store>(
        &mut self,
        now: Time,
        bytes: Vec<u8>,
        store: &mut S,
    ) -> Result<(), SessionError> {
        self.stats.messages_received += 1;
        if self.stats.messages_received > MAX_MESSAGES_PER_SESSION {
            return Err(SessionError::Limit("messages per session"));
        }
        let message = Message::decode(bytes)?;
        let group_id = message.group();
        let Some(group) = self.groups.get(&group_id) else {
            return Err(SessionError::Invalid(Invalid::WrongGroup));
        };
        let key = message.key();
        let ack = |s: &mut Self| {
            let tags = s.acks.entry(group_id).or_default();
            tags.push(key.id.tag());
        };
        if store.get(&group_id, &key).map_err(store_error)?.is_some() {
            ack(self);
            return Ok(());
        }
        match message.validate(group, now) {
            Ok(_) => {}
            Err(reason @ Invalid::FromTheFuture { .. }) => {
                self.events.push_back(Event::Rejected {
                    group: group_id,
                    id: key.id,
                    reason,
                });
                return Ok(());
            }
            Err(e) => return Err(SessionError::Invalid(e)),
        }
        if store.insert(&group_id, &message).map_err(store_error)? {
            self.events.push_back(Event::Received {
                group: group_id,
                key,
            });
        }
        ack(self);
        Ok(())
    }

    /// The next bytes to write to the link, if any. Call it until it returns
    /// `None` whenever the link can take more; messages are read from
    /// `store` only as space allows, so a large transfer never sits in
    /// memory.
    pub fn poll_transmit<S: Store>(&mut self, now: Time, store: &mut S) -> Option<Vec<u8>> {
        if let Some(hello) = self.hello.take() {
            self.count_sent(now, hello.len());
            return Some(hello);
        }
        let result = self.transmit(now, store);
        match result {
            Ok(out) => {
                if let Some(bytes) = &out {
                    self.count_sent(now, bytes.len());
                }
                out
            }
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn count_sent(&mut self, now: Time, len: usize) {
        self.stats.bytes_sent += len as u64;
        self.stats.packets_sent += 1;
        self.last_send = now;
    }

    fn transmit<S: Store>(
        &mut self,
        _now: Time,
        store: &mut S,
    ) -> Result<Option<Vec<u8>>, SessionError> {
        match &self.state {
            State::Closed | State::AwaitResponse(_) => return Ok(None),
            State::Respond(_) if !self.opened => self.open_groups(store)?,
            _ => {}
        }
        let overhead = if matches!(self.state, State::Respond(_)) {
            MSG2_OVERHEAD
        } else {
            TAG_LEN
        };
        let budget = self.config.packet() - overhead;
        let mut payload = Vec::with_capacity(budget.min(4096));
        while let Some(f) = self.control.front() {
            if payload.len() + f.len() > budget {
                if payload.is_empty() {
                    // Cannot happen (replies are built to fit); if it ever
                    // did, fail loudly instead of stalling the link.
                    return Err(SessionError::Limit("frame larger than a packet"));
                }
                break;
            }
            payload.extend_from_slice(&self.control.pop_front().expect("front exists"));
        }
        if !matches!(self.state, State::Closing(_)) {
            self.fill_acks(&mut payload, budget);
            self.fill_messages(&mut payload, budget, store)?;
        }
        if payload.is_empty() {
            return Ok(None);
        }
        let mut out = vec![0u8; 2 + overhead + payload.len()];
        let n = match std::mem::replace(&mut self.state, State::Closed) {
            State::Respond(mut hs) => {
                let n = hs
                    .write_message(&payload, &mut out[2..])
                    .map_err(|_| SessionError::Handshake)?;
                let t = hs
                    .into_transport_mode()
                    .map_err(|_| SessionError::Handshake)?;
                self.state = State::Established(Box::new(t));
                self.events
                    .push_back(Event::Established { peer: self.peer });
                n
            }
            State::Established(mut t) => {
                let n = t
                    .write_message(&payload, &mut out[2..])
                    .map_err(|_| SessionError::Internal("packet encryption failed"))?;
                self.state = State::Established(t);
                n
            }
            State::Closing(mut t) => {
                let n = t
                    .write_message(&payload, &mut out[2..])
                    .map_err(|_| SessionError::Internal("packet encryption failed"))?;
                drop(t);
                self.state = State::Closed;
                self.report_clean_close();
                n
            }
            other => {
                self.state = other;
                return Ok(None);
            }
        };
        out.truncate(2 + n);
        out[..2].copy_from_slice(&(n as u16).to_be_bytes());
        Ok(Some(out))
    }

    fn fill_acks(&mut self, payload: &mut Vec<u8>, budget: usize) {
        while let Some((&group, tags)) = self.acks.iter_mut().next() {
            let room = budget.saturating_sub(payload.len() + 32 + 8);
            let fit = (room / 8).min(MAX_TAGS_PER_FRAME).min(tags.len());
            if fit == 0 {
                return;
            }
            let rest = tags.split_off(fit);
            payload.extend_from_slice(&frame::ack(&group, tags));
            if rest.is_empty() {
                self.acks.remove(&group);
            } else {
                *self.acks.get_mut(&group).expect("present") = rest;
            }
        }
    }

    fn fill_messages<S: Store>(
        &mut self,
        payload: &mut Vec<u8>,
        budget: usize,
        store: &S,
    ) -> Result<(), SessionError> {
        // A frame header is at most 1 + 3 + 3 bytes (type, length, total).
        const HEADER: usize = 8;
        loop {
            if payload.len() + HEADER + 1 > budget {
                return Ok(());
            }
            if self.current.is_none() {
                let Some((group, key, bytes)) = self.next_message(store)? else {
                    return Ok(());
                };
                self.stats.messages_sent += 1;
                self.remember_unacked(group, key);
                self.current = Some((bytes, 0));
            }
            let (bytes, offset) = self.current.as_mut().expect("set above");
            let room = budget - payload.len() - HEADER;
            let left = bytes.len() - *offset;
            if *offset == 0 && left <= room {
                frame::put(payload, frame::MSG, bytes);
                self.current = None;
            } else if *offset == 0 {
                if room < 64 {
                    // Too little room to start a long message: next packet.
                    return Ok(());
                }
                let mut body = Vec::with_capacity(room + 4);
                crate::codec::Writer::put_varint(&mut body, bytes.len() as u64);
                let take = room - 4;
                body.extend_from_slice(&bytes[..take]);
                frame::put(payload, frame::MSG_BEGIN, &body);
                *offset = take;
            } else {
                let take = left.min(room);
                frame::put(payload, frame::MSG_MORE, &bytes[*offset..*offset + take]);
                *offset += take;
                if *offset == bytes.len() {
                    self.current = None;
                }
            }
        }
    }

    fn remember_unacked(&mut self, group: GroupId, key: Key) {
        // `unacked_order` may hold tags already acknowledged: skip those, so
        // the oldest live entry is the one forgotten.
        while self.unacked.len() >= MAX_UNACKED {
            match self.unacked_order.pop_front() {
                Some(old) => {
                    self.unacked.remove(&old);
                }
                None => break,
            }
        }
        let tag = key.id.tag();
        if self.unacked.insert(tag, (group, key)).is_none() {
            self.unacked_order.push_back(tag);
        }
        // Keep the order list from growing with acknowledged tags.
        if self.unacked_order.len() > 2 * MAX_UNACKED {
            let live = &self.unacked;
            self.unacked_order.retain(|t| live.contains_key(t));
        }
    }

    fn next_message<S: Store>(
        &mut self,
        store: &S,
    ) -> Result<Option<(GroupId, Key, Vec<u8>)>, SessionError> {
        loop {
            if let Some((group, key)) = self.ready.pop_front() {
                if let Some(bytes) = store.get(&group, &key).map_err(store_error)? {
                    return Ok(Some((group, key, bytes)));
                }
                continue;
            }
            let Some((group, send)) = self.sends.pop_front() else {
                return Ok(None);
            };
            match send {
                Send::Key(key) => self.ready.push_back((group, key)),
                Send::Range { range, except } => {
                    let mut batch = Vec::new();
                    let mut last = None;
                    store
                        .scan(&group, &range, &mut |key| {
                            last = Some(*key);
                            if !except.contains(&key.id.tag()) {
                                batch.push(*key);
                            }
                            if batch.len() == SEND_BATCH {
                                ControlFlow::Break(())
                            } else {
                                ControlFlow::Continue(())
                            }
                        })
                        .map_err(store_error)?;
                    if let Some(last) = last {
                        if let Some(next) = successor(&last) {
                            if batch.len() == SEND_BATCH {
                                let rest = KeyRange {
                                    lo: next,
                                    hi: range.hi,
                                };
                                self.sends.push_front((
                                    group,
                                    Send::Range {
                                        range: rest,
                                        except,
                                    },
                                ));
                            }
                        }
                    }
                    self.ready.extend(batch.into_iter().map(|k| (group, k)));
                }
            }
        }
    }

    /// Encrypts and queues `plaintext` as one packet, unchecked. For tests
    /// and fuzzing that play a misbehaving peer; a real client never needs
    /// it.
    #[doc(hidden)]
    pub fn send_raw_packet(&mut self, plaintext: &[u8]) -> Option<Vec<u8>> {
        let State::Established(t) = &mut self.state else {
            return None;
        };
        let mut out = vec![0u8; 2 + plaintext.len() + TAG_LEN];
        let n = t.write_message(plaintext, &mut out[2..]).ok()?;
        out[..2].copy_from_slice(&(n as u16).to_be_bytes());
        Some(out)
    }
}

fn successor(key: &Key) -> Option<Key> {
    let mut next = *key;
    for b in next.id.0.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return Some(next);
        }
    }
    next.time = next.time.checked_add(1)?;
    Some(next)
}

fn store_error<E: std::error::Error>(e: E) -> SessionError {
    SessionError::Store(e.to_string())
}

/// Accepts sessions: matches a hello's token against the contacts, refuses
/// strangers and replays without a word.
pub struct Listener {
    dh_secret: Zeroizing<[u8; 32]>,
    contacts: Vec<Contact>,
    seen: BTreeSet<[u8; 32]>,
    seen_order: VecDeque<[u8; 32]>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("contacts", &self.contacts.len())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// A listener for `me`, recognising `contacts` (at most
    /// [`MAX_CONTACTS`] are checked).
    pub fn new(me: &Identity, contacts: Vec<Contact>) -> Self {
        let mut l = Listener {
            dh_secret: Zeroizing::new(me.dh_secret().to_bytes()),
            contacts: Vec::new(),
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
        };
        l.set_contacts(contacts);
        l
    }

    /// Replaces the contact list (after an invite was added).
    pub fn set_contacts(&mut self, mut contacts: Vec<Contact>) {
        contacts.truncate(MAX_CONTACTS);
        self.contacts = contacts;
    }

    /// Reads a hello (the first [`HELLO_LEN`] bytes a link delivers) and
    /// starts the responder's session. On error, send nothing back and drop
    /// the link: the caller learns nothing it could tell a stranger.
    pub fn accept(
        &mut self,
        config: Config,
        hello: &[u8],
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Session, HandshakeError> {
        if hello.len() != HELLO_LEN {
            return Err(HandshakeError::Malformed);
        }
        let (token, msg) = hello.split_at(TOKEN_LEN);
        let ephemeral: [u8; 32] = msg[..32].try_into().expect("HELLO_LEN covers it");
        let Some(contact) = self
            .contacts
            .iter()
            .find(|c| token_matches(c, token, &ephemeral, now))
        else {
            return Err(HandshakeError::Unknown);
        };
        if self.seen.contains(&ephemeral) {
            return Err(HandshakeError::Replay);
        }
        let mut hs = snow::Builder::with_resolver(
            NOISE_PARAMS.parse().expect("a valid Noise pattern"),
            Box::new(SeededResolver::new(rng)),
        )
        .local_private_key(&self.dh_secret[..])
        .and_then(|b| b.remote_public_key(&contact.public.dh))
        .and_then(|b| b.prologue(PROLOGUE))
        .and_then(snow::Builder::build_responder)
        .expect("32-byte X25519 keys and a supported pattern");
        let mut payload = [0u8; 16];
        hs.read_message(msg, &mut payload)
            .map_err(|_| HandshakeError::Noise)?;
        if self.seen_order.len() >= REPLAY_CACHE_LEN {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(ephemeral);
        self.seen_order.push_back(ephemeral);
        Ok(Session::new(
            config,
            State::Respond(Box::new(hs)),
            false,
            contact,
            now,
        ))
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: std::marker::Send>() {}
    is_send::<Session>();
}
