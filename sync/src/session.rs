//! Everything that happens on one link, from its first byte to its last:
//! the preamble (beacon, contact choice, hello), the Noise handshake, then
//! reconciliation and message transfer for every group the two contacts
//! share.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::ControlFlow;
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};

use crate::endpoint::Keys;
use crate::frame::{self, Frame};
use crate::group::{Group, GroupId};
use crate::identity::{AuthorId, PublicIdentity};
use crate::inbound::{Inbound, Verdict};
use crate::limits::*;
use crate::message::Message;
use crate::preamble::{self, MAX_RECORD};
use crate::recon::{self, Send};
use crate::store::{Key, KeyRange, Metered, Store, TagKey, WriteStore};
use crate::token::{Beacon, BEACON_LEN};
use crate::walks::{WalkAccount, WalkAllowance, Work};
use crate::{HandshakeError, Invalid, SessionError};

const TAG_LEN: usize = 16;
/// Noise message 2: ephemeral key and the payload's tag.
const MSG2_OVERHEAD: usize = 32 + TAG_LEN;
/// Most queued message sends (40-90 bytes each, and a range's the tags it
/// leaves out, bounded by [`MAX_QUEUED_EXCEPT`]); beyond, later sends are
/// refused and the next reconciliation finds them.
const MAX_SEND_QUEUE: usize = 65_536;
/// Keys fetched from the store per scan when streaming a range.
const SEND_BATCH: usize = 64;
/// File chunks held back behind other messages at most (their keys only);
/// past this they go in turn.
const MAX_BULK: usize = 4096;
/// Most acknowledgements a QUERY may leave waiting to be sent (8 bytes
/// each): a peer asks about at most [`MAX_UNACKED`] messages at once, and
/// answers drain as fast as the link takes them.
const MAX_QUEUED_ACKS: usize = 2 * MAX_UNACKED;
/// Most tags the queued sends keep to leave out (8 bytes each, more in a
/// set): an honest IdList holds at most [`crate::limits::ID_LIST_THRESHOLD`]
/// (16), so this many is thousands of ranges in flight at once. Past it a
/// range is queued with nothing to leave out (what the peer has comes
/// again, and is held), so memory stays bounded and the session goes on.
const MAX_QUEUED_EXCEPT: usize = 1 << 16;
/// Room kept for message 2's PAD frame (type, a 2-byte length, at least an
/// empty body), so the padded packet never exceeds `max_packet`.
const PAD_FRAME_MIN: usize = 3;
/// Most bytes of the peer's reconciliation frames held unanswered at once
/// (PROTOCOL.md §8.5), encoded: one per group at most, each at most a
/// packet (64 KiB; a waiting opening, one item, at most 8 KiB). A frame
/// waits only once the peer has made us walk its group's log
/// [`RECON_WORK_WALKS`] times over what progress paid back, or re-opened it
/// [`REOPEN_ALLOWANCE`] times ahead of news, which honest peers do not;
/// past this the session ends (`Limit`).
const MAX_DEFERRED_BYTES: usize = 1 << 20;
/// Most messages whose sending in full pays back a walk of their group's
/// log in one session (PROTOCOL.md §8.5): each pays once, however often
/// the peer asks for it again (a message it already holds, wanted round
/// after round, would otherwise buy a walk each time). 16,384 tags, some
/// 600 kB at most; past it, sending pays nothing and time pays back.
const MAX_PAID_SENDS: usize = 1 << 14;

/// Session settings: per link kind (a BLE link wants small packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Largest packet this side sends (Noise message incl. tag), clamped
    /// to [`MIN_PACKET_LEN`]..=[`MAX_PACKET_LEN`]. Small for BLE.
    pub max_packet: usize,
    /// Sum the public 64-bit id prefix instead of tags keyed per session
    /// (PROTOCOL.md §8), as before groups: **forgeable by a group member**
    /// ([`TagKey`]). Both ends must agree or nothing reconciles. Only for
    /// the benchmark that sets the two schemes side by side; nodes never
    /// set it.
    #[doc(hidden)]
    pub unkeyed_tags: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_packet: DEFAULT_PACKET_LEN,
            unkeyed_tags: false,
        }
    }
}

impl Config {
    fn packet(&self) -> usize {
        self.max_packet.clamp(MIN_PACKET_LEN, MAX_PACKET_LEN)
    }

    fn tag_key(&self, pair_key: &[u8; 32], transcript: &[u8]) -> TagKey {
        if self.unkeyed_tags {
            TagKey::unkeyed()
        } else {
            TagKey::for_session(pair_key, transcript)
        }
    }
}

/// Something a session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The other side proved who it is: the dialler when message 2
    /// decrypts, the accepting side when the dialler's first packet after
    /// it does. Nothing before this is authenticated.
    Established {
        /// The contact.
        peer: PublicIdentity,
    },
    /// The dialler's hello to this contact was refused: the beacon matched
    /// it by chance (or the link is to someone else). The next matching
    /// contact is tried.
    Refused {
        /// The contact the hello was for.
        contact: PublicIdentity,
    },
    /// A new valid message was stored.
    Received {
        /// Its group.
        group: GroupId,
        /// Its key.
        key: Key,
    },
    /// A message this device wrote went out in full on this link.
    Sent {
        /// Its group.
        group: GroupId,
        /// Its key.
        key: Key,
    },
    /// The peer confirmed it holds a message this session sent or asked
    /// about ([`Session::confirm`]).
    Delivered {
        /// Its group.
        group: GroupId,
        /// Its key.
        key: Key,
    },
    /// Reconciliation of a group finished: every message either side
    /// lacked has been queued for sending (not yet received).
    Synced {
        /// The group.
        group: GroupId,
    },
    /// A message that is fine but cannot be stored yet (its timestamp is
    /// too far ahead of our clock, or the storage budget for its sender is
    /// spent). It was not stored; it will be offered again by the next
    /// sync. Also a message refused for what an honest peer may still
    /// hold and offer (expired since, or stored by a version before a
    /// rule: [`Invalid::MustLast`], [`Invalid::Lifetime`]), which is
    /// refused again whenever it is offered: the session goes on.
    /// [`Invalid::may_be_taken_later`] tells the two apart.
    Rejected {
        /// Its group.
        group: GroupId,
        /// Its key.
        key: Key,
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
    /// Packets and preamble records sent.
    pub packets_sent: u64,
    /// Messages received (new, duplicate or invalid).
    pub messages_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Hellos sent (dialler) or read (acceptor).
    pub hellos: u64,
    /// Messages received for a group this side does not sync (yet), and
    /// dropped.
    pub messages_dropped: u64,
    /// What the bytes sent carried.
    pub sent: SentParts,
}

/// A session's wire bytes sent, by what they carried (PROTOCOL.md §5–§8):
/// where a link's bytes go. The parts add up to [`Stats::bytes_sent`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentParts {
    /// Preamble records: the beacon, hellos and refusals (§5), padding
    /// included.
    pub preamble: u64,
    /// Packet framing: length prefixes, AEAD tags and message 2's
    /// ephemeral key (§5.6, §6).
    pub framing: u64,
    /// Reconciliation: RECON, OPEN, READY and UNKNOWN_GROUP frames (§8).
    pub reconciliation: u64,
    /// Delivery reports: ACK and QUERY frames (§7).
    pub acknowledgements: u64,
    /// PAD frames (message 2's random length, §5.6).
    pub padding: u64,
    /// PING and CLOSE frames.
    pub other: u64,
    /// Message frames (MSG, MSG_BEGIN and MSG_MORE, frame headers
    /// included) by the kind byte of the message they carry (§4): index
    /// `k` for kind `k`, index 0 for kinds above 15.
    pub messages: [u64; 16],
}

impl SentParts {
    /// Counts `len` bytes of a frame of type `frame` (a control frame, an
    /// ACK or a PAD; message frames are counted by their message's kind).
    fn frame(&mut self, frame: u8, len: usize) {
        let len = len as u64;
        match frame {
            frame::RECON | frame::OPEN | frame::READY | frame::UNKNOWN_GROUP => {
                self.reconciliation += len
            }
            frame::ACK | frame::QUERY => self.acknowledgements += len,
            frame::PAD => self.padding += len,
            _ => self.other += len,
        }
    }

    /// Counts `len` bytes of frames carrying a message of kind byte `kind`.
    fn message(&mut self, kind: u8, len: usize) {
        let at = if usize::from(kind) < self.messages.len() {
            usize::from(kind)
        } else {
            0
        };
        self.messages[at] += len as u64;
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.preamble
            + self.framing
            + self.reconciliation
            + self.acknowledgements
            + self.padding
            + self.other
            + self.messages.iter().sum::<u64>()
    }
}

enum State {
    /// Dialler: waiting for the acceptor's beacon.
    AwaitBeacon,
    /// Dialler: a hello is out for the first candidate, waiting for message
    /// 2 or a refusal.
    AwaitAnswer(Box<snow::HandshakeState>),
    /// Acceptor: beacon sent (or queued), waiting for a hello.
    AwaitHello,
    /// Acceptor: a hello was accepted; message 2 not yet written.
    Respond(Box<snow::HandshakeState>),
    /// Acceptor: message 2 written; the dialler has not yet proved it holds
    /// the ephemeral key of its hello.
    AwaitConfirm(Box<snow::TransportState>),
    Established(Box<snow::TransportState>),
    /// A CLOSE frame is queued; closed once it is sent.
    Closing(Box<snow::TransportState>),
    Closed,
}

/// Control frames waiting to be sent, in order; a reply the peer waits for
/// is marked with its group until it leaves: the peer cannot answer it
/// before then, so a RECON or OPEN for that group meanwhile is a peer
/// working us without reading what we send.
#[derive(Default)]
struct Control(VecDeque<(Vec<u8>, Option<GroupId>)>);

impl Control {
    fn push_back(&mut self, frame: Vec<u8>) {
        self.0.push_back((frame, None));
    }

    fn push_awaited(&mut self, group: GroupId, frame: Vec<u8>) {
        self.0.push_back((frame, Some(group)));
    }

    fn front(&self) -> Option<&Vec<u8>> {
        self.0.front().map(|(f, _)| f)
    }

    fn pop_front(&mut self) -> Option<Vec<u8>> {
        self.0.pop_front().map(|(f, _)| f)
    }

    /// Whether a reply for `group` that the peer waits for has not left.
    fn awaited(&self, group: &GroupId) -> bool {
        self.0.iter().any(|(_, g)| g.as_ref() == Some(group))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

#[derive(Debug, Default)]
struct Exchange {
    awaiting_reply: bool,
    /// This side opened the group and awaits the first reply.
    opening: bool,
    rounds: u32,
    done: bool,
}

/// A frame of the peer's waiting, unanswered and unread, until its group
/// has work left and, for a re-opening, a re-opening left (PROTOCOL.md
/// §8.5).
#[derive(Debug)]
struct Deferred {
    /// Its reconciliation message.
    msg: recon::ReconMsg,
    /// The message's size encoded, as [`MAX_DEFERRED_BYTES`] counts it.
    bytes: usize,
    /// Whether it opens the group again after its exchange ended: it takes
    /// one of the peer's re-openings when answered.
    reopening: bool,
}

/// One link with one contact: preamble, Noise handshake, reconciliation
/// and message transfer. Made by [`crate::Endpoint::dial`] or
/// [`crate::Endpoint::accept`].
///
/// Sans-IO: the caller moves bytes and time. Feed what the link delivers to
/// [`handle_input`](Session::handle_input); store what
/// [`poll_inbound`](Session::poll_inbound) hands out and give it back with
/// [`handle_stored`](Session::handle_stored) (or let
/// [`settle`](Session::settle) do both); write what
/// [`poll_transmit`](Session::poll_transmit) returns; call
/// [`handle_timeout`](Session::handle_timeout) when
/// [`poll_timeout`](Session::poll_timeout)'s deadline passes; act on
/// [`poll_event`](Session::poll_event)s.
///
/// ```
/// use strand_sync::{Config, Endpoint, Event, Identity, Kind, MemoryStore, Message, WriteStore};
/// use rand_chacha::ChaCha20Rng;
/// use rand_core::SeedableRng;
///
/// let mut rng = ChaCha20Rng::seed_from_u64(7);
/// let now = 1_700_000_000_000; // ms since the Unix epoch, from the caller's clock
/// let alice = Identity::generate("alice", &mut rng).unwrap();
/// let bob = Identity::generate("bob", &mut rng).unwrap();
/// let bob_for_alice = alice.contact(&bob.public()).unwrap();
/// let group = bob_for_alice.direct_group().clone();
/// let alice_end = Endpoint::new(&alice, vec![bob_for_alice]);
/// let bob_end = Endpoint::new(&bob, vec![bob.contact(&alice.public()).unwrap()]);
///
/// // Alice writes a message into their 1:1 conversation.
/// let mut alice_store = MemoryStore::new();
/// let msg = Message::create(&alice, &group, now, Kind::TEXT, b"hi", &mut rng).unwrap();
/// alice_store.insert(&group.id, &msg).unwrap();
/// let mut bob_store = MemoryStore::new();
///
/// // A link: Alice dialled, Bob accepted.
/// let mut a = alice_end.dial(Config::default(), now, &mut rng);
/// let mut b = bob_end.accept(Config::default(), now, &mut rng);
///
/// // The drive loop: move bytes, settle what arrived, until both are quiet.
/// loop {
///     let mut moved = false;
///     while let Some(bytes) = b.poll_transmit(now, &mut bob_store) {
///         a.handle_input(now, &bytes, &alice_store).unwrap();
///         a.settle(now, &mut alice_store);
///         moved = true;
///     }
///     while let Some(bytes) = a.poll_transmit(now, &mut alice_store) {
///         b.handle_input(now, &bytes, &bob_store).unwrap();
///         b.settle(now, &mut bob_store);
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
    keys: Arc<Keys>,
    /// This link's randomness: seeded once from the caller's RNG.
    rng: ChaCha20Rng,
    state: State,
    initiator: bool,
    /// The beacon that opened this link (sent or received).
    beacon: Option<Beacon>,
    /// Dialler: contacts (indices into `keys.contacts`) the beacon matched
    /// that have not been tried yet, in order.
    candidates: VecDeque<usize>,
    /// Dialler: contacts not to say hello to.
    exclude: BTreeSet<AuthorId>,
    /// The contact being tried (dialler) or accepted.
    contact: Option<usize>,
    peer: Option<PublicIdentity>,
    groups: BTreeMap<GroupId, Arc<Group>>,
    exchanges: BTreeMap<GroupId, Exchange>,
    /// Reconciliation tags: keyed from the handshake hash once the
    /// handshake is done (random until then, and unused).
    tags: TagKey,
    /// Dialler: the Noise transcript hash after the hello it last wrote.
    hello_transcript: Vec<u8>,
    /// Groups added mid-session ([`Session::add_group`]) not opened yet.
    to_open: Vec<GroupId>,
    /// The caller's clock as last given: what expired messages are
    /// measured against when sending.
    clock: Time,
    /// File chunks put off while other messages were queued.
    bulk: VecDeque<(GroupId, Key)>,
    /// Groups to reconcile again ([`Session::resync`]).
    resync: BTreeSet<GroupId>,
    /// Groups the peer answered UNKNOWN_GROUP for, until it opens them
    /// itself (§8.5): not opened again, since each opening counts against
    /// the peer's bound on unknown groups and would end the session.
    peer_lacks: BTreeSet<GroupId>,
    /// Re-openings of a group the peer has left ([`REOPEN_ALLOWANCE`] for a
    /// group not listed): each OPEN of a group whose exchange ended takes
    /// one, news of the group gives one back. At most one entry per synced
    /// group.
    reopens: BTreeMap<GroupId, u32>,
    /// What answering the peer's reconciliation of each group cost that
    /// progress and time have not paid back: the session's own account,
    /// full at the start, until it spends from the contact's
    /// ([`Session::share_walks`]), which the contact's other sessions
    /// spend from too.
    walks: WalkAccount,
    /// Tags of the messages whose sending in full paid back a walk
    /// ([`MAX_PAID_SENDS`]).
    paid: BTreeSet<u64>,
    /// The peer's frames waiting for their group's work to be paid back
    /// below [`RECON_WORK_WALKS`] walks, or (openings made with none left)
    /// for news to give a re-opening back (PROTOCOL.md §8.5): at most one
    /// per synced group, [`MAX_DEFERRED_BYTES`] in all.
    deferred: BTreeMap<GroupId, Deferred>,
    /// Bytes of the messages in `deferred`.
    deferred_bytes: usize,
    /// When every group last got a re-opening back with time
    /// ([`REOPEN_REFILL_EVERY`]).
    reopens_refilled: Time,
    opened: bool,
    /// Preamble records waiting to go out (beacon, hello, refusal).
    records: VecDeque<Vec<u8>>,
    /// Encoded frames waiting to go out, in order.
    control: Control,
    sends: VecDeque<(GroupId, Send)>,
    /// Tags the queued sends keep to leave out ([`MAX_QUEUED_EXCEPT`]).
    except_tags: usize,
    ready: VecDeque<(GroupId, Key)>,
    /// The message being sent in parts, its key, and how much of it is out.
    current: Option<(GroupId, Key, Vec<u8>, usize)>,
    /// Received bytes that do not make a whole record or packet yet.
    rx: Vec<u8>,
    /// A message being received in parts: its total length and the bytes.
    partial: Option<(usize, Vec<u8>)>,
    /// Received messages not yet handed out by `poll_inbound`.
    inbound: Inbound,
    /// Messages handed out and not yet back through `handle_stored`.
    inbound_out: usize,
    acks: BTreeMap<GroupId, Vec<u64>>,
    /// Of `acks`, about how many answer QUERYs (taken down as acks go
    /// out): what a peer that asks without reading can grow. Acks of
    /// messages received are not counted: each came with a message.
    query_acks: usize,
    unacked: BTreeMap<u64, (GroupId, Key)>,
    unacked_order: VecDeque<u64>,
    /// Keys asked about by [`Session::confirm`] and not yet asked again:
    /// once reconciliation is over and our sends are out, the ones still
    /// unacknowledged are asked once more (the peer may have stored them
    /// through another link after it answered).
    asked: Vec<(GroupId, Key)>,
    /// A group finished reconciling since the last second asking.
    ask_again: bool,
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
    fn new(
        config: Config,
        keys: Arc<Keys>,
        state: State,
        initiator: bool,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Self {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut seed[..]);
        Session {
            config,
            keys,
            rng: ChaCha20Rng::from_seed(*seed),
            state,
            initiator,
            beacon: None,
            candidates: VecDeque::new(),
            exclude: BTreeSet::new(),
            contact: None,
            peer: None,
            groups: BTreeMap::new(),
            exchanges: BTreeMap::new(),
            tags: TagKey::for_session(&seed, &[]),
            hello_transcript: Vec::new(),
            to_open: Vec::new(),
            clock: now,
            bulk: VecDeque::new(),
            resync: BTreeSet::new(),
            peer_lacks: BTreeSet::new(),
            reopens: BTreeMap::new(),
            walks: WalkAccount::new(WalkAllowance::full(now)),
            paid: BTreeSet::new(),
            deferred: BTreeMap::new(),
            deferred_bytes: 0,
            reopens_refilled: now,
            opened: false,
            records: VecDeque::new(),
            control: Control::default(),
            sends: VecDeque::new(),
            except_tags: 0,
            ready: VecDeque::new(),
            current: None,
            rx: Vec::new(),
            partial: None,
            inbound: Inbound::default(),
            inbound_out: 0,
            acks: BTreeMap::new(),
            query_acks: 0,
            unacked: BTreeMap::new(),
            unacked_order: VecDeque::new(),
            asked: Vec::new(),
            ask_again: false,
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

    pub(crate) fn dialler(
        config: Config,
        keys: Arc<Keys>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
        exclude: BTreeSet<AuthorId>,
    ) -> Session {
        let mut s = Session::new(config, keys, State::AwaitBeacon, true, now, rng);
        s.exclude = exclude;
        s
    }

    pub(crate) fn acceptor(
        config: Config,
        keys: Arc<Keys>,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Session {
        let mut s = Session::new(config, keys, State::AwaitHello, false, now, rng);
        let beacon = Beacon::new(&s.keys.contacts, now, &mut s.rng);
        let record = preamble::record(&beacon.to_bytes(), &mut s.rng);
        s.records.push_back(record);
        s.beacon = Some(beacon);
        s
    }

    /// Whether the other side has proved who it is and the session is not
    /// closed.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_) | State::Closing(_))
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The contact at the other end: known to the dialler once a hello was
    /// answered, to the acceptor once a hello matched (authenticated only
    /// once [`Event::Established`] is reported).
    pub fn peer(&self) -> Option<&PublicIdentity> {
        self.peer.as_ref()
    }

    /// Whether this side dialled.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// The beacon that opened this link, once sent or received.
    pub fn beacon(&self) -> Option<&Beacon> {
        self.beacon.as_ref()
    }

    /// Bytes and messages moved so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Received messages the caller has not finished with: waiting in the
    /// session or handed out and not yet back. A caller that stores on
    /// other threads stops reading the link while this is high.
    pub fn inbound_pending(&self) -> usize {
        self.inbound.len() + self.inbound_out
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
            && self.bulk.is_empty()
            && self.current.is_none()
            && self.acks.is_empty()
            && self.inbound_pending() == 0
    }

    /// The account of the peer's walks of each group's log this session
    /// spends from (PROTOCOL.md §8.5): its own, with the whole allowance,
    /// until [`Session::share_walks`] gives it the contact's. A clone
    /// shares it: kept for the contact, it is where the contact's next
    /// session spends from, so a contact that drops the link and dials
    /// again gets no fresh allowance.
    pub fn walks(&self) -> WalkAccount {
        self.walks.clone()
    }

    /// Spends the peer's walks from `account` from now on: the contact's
    /// one account ([`WalkAccount`]), which the caller keeps for the
    /// contact and hands to each of its sessions, so that they spend, one
    /// after another or up at once, from one allowance that time refills
    /// once. What this session counted on its own so far is charged to
    /// it: the peer's frames that came with the handshake (one per group
    /// at most, as turns are strict), which may have been answered
    /// already, and this side's counts of its logs. Call it on
    /// [`Event::Established`] (the contact is not known before).
    pub fn share_walks(&mut self, now: Time, account: WalkAccount) {
        if self.walks.is_same(&account) {
            return;
        }
        let own = std::mem::replace(&mut self.walks, account);
        let counted = own.lock().clone();
        self.walks.lock().take_on(now, counted);
    }

    /// The next thing to report, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Session::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.state {
            State::Closed => None,
            State::Established(_) | State::Closing(_) => {
                let idle = self.last_recv.saturating_add(IDLE_TIMEOUT);
                // A keepalive is due only when nothing is waiting to go out:
                // a queued frame (a PING already, or anything) is sent as
                // soon as the link takes it, and moves `last_send` on. So a
                // link that does not drain never has a deadline in the past.
                let due = if self.control.is_empty() {
                    idle.min(self.last_send.saturating_add(KEEPALIVE_INTERVAL))
                } else {
                    idle
                };
                // An opening waiting for news is also answered in time.
                Some(if self.deferred.is_empty() {
                    due
                } else {
                    due.min(self.reopens_refilled.saturating_add(REOPEN_REFILL_EVERY))
                })
            }
            _ => Some(self.deadline_handshake),
        }
    }

    /// Time has reached a deadline from [`poll_timeout`](Session::poll_timeout).
    pub fn handle_timeout(&mut self, now: Time) {
        match self.state {
            State::Closed => {}
            State::Established(_) | State::Closing(_) => {
                if now >= self.reopens_refilled.saturating_add(REOPEN_REFILL_EVERY) {
                    self.reopens_refilled = now;
                    for left in self.reopens.values_mut() {
                        *left = (*left + 1).min(REOPEN_ALLOWANCE);
                    }
                }
                // Walks come back with time by the one rule, whichever of
                // the contact's sessions reads the account.
                self.walks.lock().refill(now);
                if now >= self.last_recv.saturating_add(IDLE_TIMEOUT) {
                    self.fail(SessionError::Timeout);
                } else if now >= self.last_send.saturating_add(KEEPALIVE_INTERVAL)
                    && self.control.is_empty()
                {
                    self.control.push_back(frame::simple(frame::PING, &[]));
                }
            }
            _ => {
                if now >= self.deadline_handshake {
                    self.fail(SessionError::Timeout);
                }
            }
        }
    }

    /// Ends the session politely: a CLOSE frame is sent with the next
    /// [`poll_transmit`](Session::poll_transmit), then it is closed. Before
    /// the handshake is done it just closes.
    pub fn close(&mut self) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Established(t) | State::Closing(t) | State::AwaitConfirm(t) => {
                self.control.clear();
                self.sends.clear();
                self.except_tags = 0;
                self.ready.clear();
                self.current = None;
                self.acks.clear();
                self.query_acks = 0;
                self.control.push_back(frame::simple(frame::CLOSE, &[0]));
                self.state = State::Closing(t);
            }
            State::Closed => {}
            _ => {
                self.records.clear();
                self.report_clean_close();
            }
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
        match self.state {
            State::AwaitBeacon => self.fail(SessionError::Preamble(HandshakeError::NoBeacon)),
            State::AwaitAnswer(_) => self.fail(SessionError::Preamble(HandshakeError::Refused)),
            State::AwaitHello => self.fail(SessionError::Preamble(HandshakeError::NoHello)),
            _ if !self.rx.is_empty() || self.partial.is_some() => {
                self.fail(SessionError::Truncated)
            }
            _ => self.fail(SessionError::ConnectionLost),
        }
    }

    /// A message was stored locally (written by the user, or received from
    /// another contact): send it now if this session syncs its group.
    /// Returns whether it was queued; if not (not established, another
    /// group, or the queue is full) the next reconciliation finds it.
    /// It is news of its group: the peer may open the group once more
    /// (PROTOCOL.md §8.5, [`REOPEN_ALLOWANCE`]).
    pub fn handle_new_message(&mut self, group: &GroupId, key: Key) -> bool {
        if !self.is_established() || !self.groups.contains_key(group) {
            return false;
        }
        self.news(group);
        if self.sends.len() < MAX_SEND_QUEUE {
            self.sends.push_back((*group, Send::Key(key)));
            true
        } else {
            false
        }
    }

    /// News of `group` (a message stored new from the peer or handed to
    /// send, a batch to reconcile again): the peer may open it once more,
    /// up to [`REOPEN_ALLOWANCE`] ahead, and it is progress: it pays back
    /// a walk of the log ([`RECON_WORK_WALKS`]).
    fn news(&mut self, group: &GroupId) {
        if let Some(left) = self.reopens.get_mut(group) {
            *left = (*left + 1).min(REOPEN_ALLOWANCE);
        }
        self.progress(group);
    }

    /// A message of `group` moved between the two: progress, which pays
    /// back a walk of the group's log (§8.5).
    fn progress(&mut self, group: &GroupId) {
        if let Some(work) = self.walks.lock().spent.get_mut(group) {
            work.pay(1);
        }
    }

    /// Whether answering the peer's reconciliation of `group` waits for
    /// progress or time: it has made us walk the log [`RECON_WORK_WALKS`]
    /// times over what they paid back (PROTOCOL.md §8.5).
    fn work_spent(&self, group: &GroupId) -> bool {
        self.walks.lock().spent.get(group).is_some_and(Work::spent)
    }

    /// Counts what answering the peer in `group` visited in `store`, and
    /// the log's size if it was counted whole.
    fn charge<S: Store>(&mut self, group: GroupId, store: &Metered<'_, S>) {
        let mut walks = self.walks.lock();
        let work = walks.spent.entry(group).or_default();
        if let Some(log) = store.log() {
            work.log = log;
        }
        work.debt = work.debt.saturating_add(store.visited());
    }

    /// Holds the peer's `msg` for `group`, unanswered and unread, until
    /// [`Session::answer_deferred`] finds it due. Meanwhile the group is
    /// being reconciled and this side does not wait for a reply in it, so a
    /// RECON or OPEN of the peer's for it is out of turn.
    fn defer(
        &mut self,
        group: GroupId,
        msg: &recon::ReconMsg,
        reopening: bool,
    ) -> Result<(), SessionError> {
        let mut bytes = Vec::new();
        msg.encode(&mut bytes);
        // Turns are strict, so no frame of the group's waits already.
        self.take_deferred(&group);
        if self.deferred_bytes + bytes.len() > MAX_DEFERRED_BYTES {
            return Err(SessionError::Limit("reconciliation frames held unanswered"));
        }
        self.deferred_bytes += bytes.len();
        self.deferred.insert(
            group,
            Deferred {
                msg: msg.clone(),
                bytes: bytes.len(),
                reopening,
            },
        );
        let ex = self.exchanges.entry(group).or_default();
        ex.awaiting_reply = false;
        ex.opening = false;
        ex.done = false;
        Ok(())
    }

    /// Takes the peer's frame for `group` that waits, if one does.
    fn take_deferred(&mut self, group: &GroupId) -> Option<Deferred> {
        let deferred = self.deferred.remove(group)?;
        self.deferred_bytes = self.deferred_bytes.saturating_sub(deferred.bytes);
        Some(deferred)
    }

    /// Takes one of the peer's re-openings of `group`, if it has one left.
    fn take_reopen(&mut self, group: &GroupId) -> bool {
        let left = self.reopens.entry(*group).or_insert(REOPEN_ALLOWANCE);
        if *left == 0 {
            return false;
        }
        *left -= 1;
        true
    }

    /// Starts syncing `group` on this live session (a group created or
    /// joined while the link is up), or updates its member list and key if
    /// the session already syncs it. A new group is opened at once, or
    /// after the initial openings if they are still under way; if the peer
    /// does not sync it (yet), it answers UNKNOWN_GROUP, and opens it in
    /// turn when it adds the group itself. Returns whether the group is
    /// new to the session: `false` before the handshake (the session then
    /// starts with the contact's groups; add again on
    /// [`Event::Established`]), for a known group, once closed, or over
    /// [`MAX_GROUPS_PER_SESSION`].
    pub fn add_group(&mut self, group: Group) -> bool {
        if !self.is_established() || self.is_closed() {
            return false;
        }
        if let Some(known) = self.groups.get_mut(&group.id) {
            *known = Arc::new(group);
            return false;
        }
        if self.groups.len() >= MAX_GROUPS_PER_SESSION {
            return false;
        }
        self.to_open.push(group.id);
        self.groups.insert(group.id, Arc::new(group));
        true
    }

    /// Reconciles `group` again on this session, as soon as its current
    /// exchange (if any) is over: for when many messages were stored at
    /// once (a file's chunks), rather than handing over each one. The
    /// session opens it again with OPEN (PROTOCOL.md §8.5). Returns
    /// whether the session syncs the group (not with a peer that answered
    /// it does not: that peer opens it itself once it does). It is news of
    /// the group: an opening of the peer's waiting for news is answered.
    pub fn resync(&mut self, group: &GroupId) -> bool {
        if !self.is_established()
            || self.is_closed()
            || !self.groups.contains_key(group)
            || self.peer_lacks.contains(group)
        {
            return false;
        }
        self.news(group);
        if self.resync.insert(*group) {
            self.to_open.push(*group);
        }
        true
    }

    /// Asks the peer whether it holds these messages of `group` (for
    /// example this device's messages that no earlier session saw
    /// acknowledged). Each one it holds comes back as
    /// [`Event::Delivered`]. Returns how many were asked about (at most
    /// [`MAX_UNACKED`]; none before the session is established).
    pub fn confirm(&mut self, group: &GroupId, keys: &[Key]) -> usize {
        if !self.is_established() || !self.groups.contains_key(group) {
            return 0;
        }
        let keys = &keys[..keys.len().min(MAX_UNACKED)];
        // Asked again after the next reconciliation, not an earlier one.
        self.ask_again = false;
        self.query(group, keys);
        for key in keys {
            self.remember_unacked(*group, *key);
        }
        let room = MAX_UNACKED.saturating_sub(self.asked.len());
        self.asked
            .extend(keys.iter().take(room).map(|k| (*group, *k)));
        keys.len()
    }

    /// Queues QUERY frames for `keys`, split so each fits a packet.
    fn query(&mut self, group: &GroupId, keys: &[Key]) {
        // A QUERY frame: type, length (3), group, count (2), keys.
        let room = self.config.packet() - TAG_LEN - 1 - 3 - 32 - 2;
        let per_frame = (room / frame::QUERY_KEY_LEN).min(MAX_QUERY_KEYS);
        for chunk in keys.chunks(per_frame) {
            self.control.push_back(frame::query(group, chunk));
        }
    }

    /// Asks once more about the keys [`Session::confirm`] asked about that
    /// are still unacknowledged, once the session is idle again after a
    /// group reconciled ([`Session::is_idle`]: every group reconciled, our
    /// sends out). Reconciliation sends nothing the peer holds, so a
    /// message it stored through another link after answering the first
    /// QUERY would otherwise stay undelivered until the next session.
    fn ask_again_if_settled(&mut self) {
        if !self.ask_again || self.asked.is_empty() || !self.is_idle() {
            return;
        }
        self.ask_again = false;
        let mut by_group: BTreeMap<GroupId, Vec<Key>> = BTreeMap::new();
        for (group, key) in std::mem::take(&mut self.asked) {
            let tag = self.tags.tag(&key.id);
            if self.unacked.get(&tag) == Some(&(group, key)) {
                by_group.entry(group).or_default().push(key);
            }
        }
        for (group, keys) in by_group {
            self.query(&group, &keys);
        }
    }

    fn fail(&mut self, error: SessionError) {
        if self.reported_close {
            return;
        }
        self.reported_close = true;
        self.state = State::Closed;
        self.records.clear();
        self.control.clear();
        self.sends.clear();
        self.except_tags = 0;
        self.ready.clear();
        self.bulk.clear();
        self.current = None;
        self.rx = Vec::new();
        self.partial = None;
        self.events.push_back(Event::Closed { error: Some(error) });
    }

    /// Bytes from the link. Errors close the session (and are also
    /// reported as [`Event::Closed`]); messages received before stay
    /// valid. Received messages wait for [`Session::poll_inbound`].
    pub fn handle_input<S: Store>(
        &mut self,
        now: Time,
        bytes: &[u8],
        store: &S,
    ) -> Result<(), SessionError> {
        if self.is_closed() {
            return Err(SessionError::Closed);
        }
        self.stats.bytes_received += bytes.len() as u64;
        self.rx.extend_from_slice(bytes);
        let mut start = 0;
        let result = loop {
            if self.rx.len() - start < 2 {
                break Ok(());
            }
            let len = u16::from_be_bytes([self.rx[start], self.rx[start + 1]]) as usize;
            if let Err(e) = self.check_length(len) {
                break Err(e);
            }
            if self.rx.len() - start < 2 + len {
                break Ok(());
            }
            let packet = self.rx[start + 2..start + 2 + len].to_vec();
            start += 2 + len;
            if let Err(e) = self.handle_record(now, &packet, store) {
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

    /// Refuses a record or packet length the state does not allow, before
    /// buffering it.
    fn check_length(&self, len: usize) -> Result<(), SessionError> {
        let bad = |what| Err(SessionError::Preamble(what));
        match self.state {
            State::AwaitBeacon if !(BEACON_LEN..=MAX_RECORD).contains(&len) => {
                bad(HandshakeError::BadBeacon)
            }
            State::AwaitHello if !(HELLO_LEN..=HELLO_LEN + MAX_PREAMBLE_PAD).contains(&len) => {
                bad(HandshakeError::Malformed)
            }
            State::AwaitBeacon | State::AwaitHello | State::AwaitAnswer(_) => Ok(()),
            _ if len < TAG_LEN => Err(SessionError::Decode(crate::DecodeError::Invalid(
                "packet shorter than its tag",
            ))),
            _ => Ok(()),
        }
    }

    fn handle_record<S: Store>(
        &mut self,
        now: Time,
        record: &[u8],
        store: &S,
    ) -> Result<(), SessionError> {
        match self.state {
            State::AwaitBeacon => self.on_beacon(now, record),
            State::AwaitHello => {
                self.on_hello(now, record);
                Ok(())
            }
            _ => self.handle_packet(now, record, store),
        }
    }

    /// Dialler: the beacon arrived. Choose the contacts it matches: those
    /// whose own entries it holds ([`Beacon::matches`] checks under the
    /// key the contact builds with), so a beacon of this device's own,
    /// replayed to it, names nobody.
    fn on_beacon(&mut self, now: Time, record: &[u8]) -> Result<(), SessionError> {
        let beacon = Beacon::from_bytes(&record[..BEACON_LEN])
            .map_err(|_| SessionError::Preamble(HandshakeError::BadBeacon))?;
        let keys = self.keys.clone();
        let mut any = false;
        for (i, c) in keys.contacts.iter().enumerate() {
            if beacon.matches(c, now) {
                any = true;
                if !self.exclude.contains(&c.public.sign)
                    && self.candidates.len() < MAX_HELLOS_PER_LINK
                {
                    self.candidates.push_back(i);
                }
            }
        }
        self.beacon = Some(beacon);
        if self.candidates.is_empty() {
            let why = if any {
                HandshakeError::Skipped
            } else {
                HandshakeError::NoContact
            };
            return Err(SessionError::Preamble(why));
        }
        self.next_hello(now);
        Ok(())
    }

    /// Dialler: says hello to the next candidate, or gives up.
    fn next_hello(&mut self, now: Time) {
        let Some(index) = self.candidates.pop_front() else {
            self.fail(SessionError::Preamble(HandshakeError::Refused));
            return;
        };
        let beacon = self.beacon.as_ref().expect("a beacon came first");
        let (hs, record) = preamble::hello(&self.keys, index, beacon, now, &mut self.rng);
        self.hello_transcript = hs.get_handshake_hash().to_vec();
        self.contact = Some(index);
        self.stats.hellos += 1;
        self.records.push_back(record);
        self.state = State::AwaitAnswer(Box::new(hs));
    }

    /// Acceptor: a hello arrived. Answer a contact, refuse anyone else.
    fn on_hello(&mut self, now: Time, record: &[u8]) {
        self.stats.hellos += 1;
        let beacon = self.beacon.as_ref().expect("the acceptor made a beacon");
        match preamble::check_hello(&self.keys, beacon, record, now, &mut self.rng) {
            Some((index, hs)) => {
                let transcript = hs.get_handshake_hash().to_vec();
                self.start_contact(index, &transcript);
                self.state = State::Respond(Box::new(hs));
            }
            None if self.stats.hellos >= MAX_HELLOS_PER_LINK as u64 => {
                self.fail(SessionError::Preamble(HandshakeError::Unknown));
            }
            None => {
                let refusal = preamble::refusal(&mut self.rng);
                self.records.push_back(refusal);
            }
        }
    }

    /// Starts the session with contact `index`, the hello's Noise
    /// transcript hash being `transcript`.
    fn start_contact(&mut self, index: usize, transcript: &[u8]) {
        let contact = &self.keys.contacts[index];
        self.tags = self.config.tag_key(&contact.token_key, transcript);
        self.contact = Some(index);
        self.peer = Some(contact.public);
        self.groups = contact
            .groups
            .iter()
            .take(MAX_GROUPS_PER_SESSION)
            .map(|g| (g.id, Arc::new(g.clone())))
            .collect();
    }

    fn established(&mut self, transport: snow::TransportState) {
        self.state = State::Established(Box::new(transport));
        let peer = self.peer.expect("the contact is known by now");
        self.events.push_back(Event::Established { peer });
    }

    fn handle_packet<S: Store>(
        &mut self,
        now: Time,
        packet: &[u8],
        store: &S,
    ) -> Result<(), SessionError> {
        let mut plain = std::mem::take(&mut self.buf);
        if plain.len() < packet.len() {
            plain.resize(packet.len(), 0);
        }
        let result = match std::mem::replace(&mut self.state, State::Closed) {
            State::AwaitAnswer(mut hs) => match hs.read_message(packet, &mut plain) {
                Ok(n) => {
                    // The tags are keyed by the transcript as it was before
                    // this answer (the acceptor wrote its opening with them).
                    // `read_message` has moved it on since; the hello's
                    // transcript was kept when the hello was written.
                    let t = hs
                        .into_transport_mode()
                        .map_err(|_| SessionError::Handshake)?;
                    let index = self.contact.expect("a hello names its contact");
                    let transcript = std::mem::take(&mut self.hello_transcript);
                    self.start_contact(index, &transcript);
                    self.established(t);
                    self.last_recv = now;
                    if n == 0 {
                        Err(SessionError::Decode(crate::DecodeError::Invalid(
                            "empty packet",
                        )))
                    } else {
                        self.handle_plain(&plain[..n], store)
                    }
                }
                Err(_) => {
                    // A refusal (or a broken answer): the next candidate.
                    let index = self.contact.take().expect("a hello names its contact");
                    let contact = self.keys.contacts[index].public;
                    self.events.push_back(Event::Refused { contact });
                    self.next_hello(now);
                    Ok(())
                }
            },
            State::AwaitConfirm(mut t) => match t.read_message(packet, &mut plain) {
                Ok(n) => {
                    self.established(*t);
                    self.last_recv = now;
                    self.handle_plain(&plain[..n], store)
                }
                Err(_) => Err(SessionError::Decrypt),
            },
            State::Established(mut t) => match t.read_message(packet, &mut plain) {
                Ok(n) => {
                    self.state = State::Established(t);
                    self.last_recv = now;
                    self.handle_plain(&plain[..n], store)
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
                // The dialler may not speak before message 2.
                self.state = State::Respond(hs);
                Err(SessionError::Decode(crate::DecodeError::Invalid(
                    "data before the handshake finished",
                )))
            }
            other @ (State::AwaitBeacon | State::AwaitHello) => {
                self.state = other;
                Err(SessionError::Internal("a preamble record read as a packet"))
            }
            State::Closed => Err(SessionError::Closed),
        };
        self.buf = plain;
        result
    }

    fn handle_plain<S: Store>(&mut self, plain: &[u8], store: &S) -> Result<(), SessionError> {
        let frames = frame::decode_packet(plain)?;
        for f in frames {
            match f {
                Frame::Recon { group, msg } => self.on_recon(group, &msg, store)?,
                Frame::Open { group, msg } => self.on_open(group, &msg, store)?,
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
                    self.on_message(bytes.to_vec())?;
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
                        self.on_message(buf)?;
                    } else {
                        self.partial = Some((total, buf));
                    }
                }
                Frame::Ack { group, tags } => {
                    for tag in tags {
                        self.delivered(group, tag, None);
                    }
                }
                Frame::Query { group, keys } => {
                    if self.groups.contains_key(&group) {
                        // A peer that asks without reading our answers would
                        // grow the queue without end. (Acks owed for the
                        // messages it sent do not count: a backed-up link
                        // holds many, and its honest QUERY must not end
                        // the session.)
                        if self.query_acks + keys.len() > MAX_QUEUED_ACKS {
                            return Err(SessionError::Limit("unread acknowledgements"));
                        }
                        for key in keys {
                            if store.contains(&group, &key).map_err(store_error)? {
                                self.acks
                                    .entry(group)
                                    .or_default()
                                    .push(self.tags.tag(&key.id));
                                self.query_acks += 1;
                            }
                        }
                    }
                }
                Frame::UnknownGroup(group) => {
                    self.take_deferred(&group);
                    if let Some(e) = self.exchanges.get_mut(&group) {
                        e.done = true;
                        e.awaiting_reply = false;
                        self.peer_lacks.insert(group);
                    }
                }
                Frame::Ping | Frame::Pad => {}
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
            // An opening now covers what a resync asked for before it.
            self.resync.remove(&id);
            self.open_exchange(store, id, frame::recon)?;
        }
        // A resync of a group the peer opened waits for that exchange to
        // end (dropped, it was lost: the group stayed marked as asked).
        let resync = &self.resync;
        self.to_open.retain(|g| resync.contains(g));
        if !self.initiator {
            self.control.push_back(frame::simple(frame::READY, &[]));
        }
        Ok(())
    }

    /// Opens the groups added mid-session that neither side has opened,
    /// and those asked to reconcile again once their exchange is over.
    fn open_added<S: Store>(&mut self, store: &S) -> Result<(), SessionError> {
        let mut later = Vec::new();
        for id in std::mem::take(&mut self.to_open) {
            if !self.groups.contains_key(&id) {
                continue;
            }
            if self.peer_lacks.contains(&id) {
                // Asked again while the peer was saying it lacks the group.
                self.resync.remove(&id);
                continue;
            }
            match self.exchanges.get(&id) {
                Some(ex) if !ex.done => {
                    if self.resync.contains(&id) {
                        later.push(id);
                    }
                    continue;
                }
                Some(_) if !self.resync.remove(&id) => continue,
                _ => {}
            }
            self.open_exchange(store, id, frame::open)?;
        }
        self.to_open.extend(later);
        Ok(())
    }

    /// Sends this side's opening for `id` in a frame made by `frame` (RECON
    /// at the start, OPEN mid-session) and awaits the reply: a new
    /// exchange, its rounds counted afresh.
    fn open_exchange<S: Store>(
        &mut self,
        store: &S,
        id: GroupId,
        frame: fn(&GroupId, &recon::ReconMsg) -> Vec<u8>,
    ) -> Result<(), SessionError> {
        let store = Metered::new(store);
        let msg = recon::open(&store, &id, &self.tags).map_err(store_error)?;
        if let Some(log) = store.log() {
            // What a walk of the log costs, for the peer's answers.
            self.walks.lock().spent.entry(id).or_default().log = log;
        }
        self.control.push_back(frame(&id, &msg));
        self.exchanges.insert(
            id,
            Exchange {
                awaiting_reply: true,
                opening: true,
                rounds: 0,
                done: false,
            },
        );
        Ok(())
    }

    /// Whether a stored message has expired by this session's clock: such
    /// a message is never forwarded (the peer would refuse it, and its
    /// author's device deletes it anyway).
    fn expired(&self, bytes: &[u8]) -> bool {
        crate::message::expires_of(bytes).is_some_and(|e| e <= self.clock)
    }

    /// The peer opened a group mid-session (§8.5).
    fn on_open<S: Store>(
        &mut self,
        group: GroupId,
        msg: &recon::ReconMsg,
        store: &S,
    ) -> Result<(), SessionError> {
        if self.groups.contains_key(&group) {
            self.peer_lacks.remove(&group);
            match self.exchanges.get(&group).map(|ex| (ex.done, ex.opening)) {
                None => {}
                // Over (or refused with UNKNOWN_GROUP before we knew the
                // group): a new exchange. Answering walks the whole log, so
                // it is answered now only if the peer has a re-opening left
                // (and walks: `work_spent`); else it waits, unread, until
                // news gives one back (§8.5): a peer that opens again and
                // again with nothing new makes us walk the log a few times,
                // not once per 60-byte frame.
                Some((true, _)) => {
                    if self.control.awaited(&group) {
                        return Err(SessionError::Decode(crate::DecodeError::Invalid(
                            "reconciliation frame before our reply was sent",
                        )));
                    }
                    let answer = !self.work_spent(&group) && self.take_reopen(&group);
                    let ex = self.exchanges.get_mut(&group).expect("seen above");
                    ex.done = false;
                    ex.awaiting_reply = answer;
                    ex.opening = false;
                    ex.rounds = 0;
                    if !answer {
                        return self.defer(group, msg, true);
                    }
                }
                // Both opened it at once: the dialler's opening stands, and
                // the acceptor answers it instead of waiting for an answer
                // to its own.
                Some((false, true)) => {
                    if self.initiator {
                        return Ok(());
                    }
                    self.exchanges.get_mut(&group).expect("seen above").opening = false;
                }
                Some((false, false)) => {
                    return Err(SessionError::Decode(crate::DecodeError::Invalid(
                        "a group opened again while it reconciles",
                    )))
                }
            }
        }
        self.on_recon(group, msg, store)
    }

    /// Answers the peer's frames that waited for progress or news of their
    /// group (§8.5) and have had enough since.
    fn answer_deferred<S: Store>(&mut self, store: &S) -> Result<(), SessionError> {
        let due: Vec<GroupId> = self
            .deferred
            .iter()
            .filter(|(group, deferred)| {
                !self.work_spent(group)
                    && (!deferred.reopening
                        || self.reopens.get(*group).is_none_or(|left| *left > 0))
            })
            .map(|(group, _)| *group)
            .collect();
        for group in due {
            let deferred = self.take_deferred(&group).expect("listed above");
            if deferred.reopening {
                self.take_reopen(&group);
            }
            if let Some(ex) = self.exchanges.get_mut(&group) {
                ex.awaiting_reply = true;
            }
            self.on_recon(group, &deferred.msg, store)?;
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
        if self.control.awaited(&group) {
            return Err(SessionError::Decode(crate::DecodeError::Invalid(
                "reconciliation frame before our reply was sent",
            )));
        }
        if self.work_spent(&group) {
            // The peer has made us walk this log RECON_WORK_WALKS times
            // over what progress and time paid back (a fingerprint of the
            // whole log that differs, round after round): its frame waits,
            // unread, until they bring the count down (§8.5).
            return self.defer(group, msg, false);
        }
        let ex = self.exchanges.entry(group).or_default();
        ex.rounds += 1;
        if ex.rounds > MAX_ROUNDS_PER_GROUP {
            return Err(SessionError::Limit("reconciliation rounds per group"));
        }
        ex.awaiting_reply = false;
        ex.opening = false;
        let budget = self.config.packet() - TAG_LEN - 40;
        let metered = Metered::new(store);
        let reply = recon::reply(&metered, &group, &self.tags, msg, budget).map_err(store_error)?;
        self.charge(group, &metered);
        for s in reply.send {
            if self.sends.len() < MAX_SEND_QUEUE {
                let s = match s {
                    // Past the bound, a range goes without what to leave
                    // out: what the peer has comes again, and is held.
                    Send::Range { range, except }
                        if self.except_tags + except.len() > MAX_QUEUED_EXCEPT =>
                    {
                        Send::Range {
                            range,
                            except: Default::default(),
                        }
                    }
                    s => s,
                };
                if let Send::Range { except, .. } = &s {
                    self.except_tags += except.len();
                }
                self.sends.push_back((group, s));
            }
        }
        let ex = self.exchanges.get_mut(&group).expect("inserted above");
        if reply.msg.expects_reply() {
            ex.awaiting_reply = true;
            ex.done = false;
            self.control
                .push_awaited(group, frame::recon(&group, &reply.msg));
        } else {
            if msg.expects_reply() || !reply.msg.items.is_empty() {
                // Marked only if the peer waits for it.
                let f = frame::recon(&group, &reply.msg);
                if msg.expects_reply() {
                    self.control.push_awaited(group, f);
                } else {
                    self.control.push_back(f);
                }
            }
            if !ex.done {
                ex.done = true;
                self.ask_again = true;
                self.events.push_back(Event::Synced { group });
            }
        }
        Ok(())
    }

    /// A whole message arrived: the cheap checks now, the rest in a batch.
    fn on_message(&mut self, bytes: Vec<u8>) -> Result<(), SessionError> {
        self.stats.messages_received += 1;
        if self.stats.messages_received > MAX_MESSAGES_PER_SESSION {
            return Err(SessionError::Limit("messages per session"));
        }
        let message = Message::decode(bytes)?;
        let Some(group) = self.groups.get(&message.group()) else {
            // The peer already syncs a group with us that this side has
            // not added yet (it learns of groups in its own time, §8.5):
            // the message is dropped, not stored or acknowledged, and
            // comes again when this side opens the group. Bounded by the
            // messages-per-session limit above.
            self.stats.messages_dropped += 1;
            return Ok(());
        };
        self.inbound.push(group.clone(), message);
        Ok(())
    }

    /// The messages received since the last call, checked for form and
    /// group, as one batch: check them ([`Inbound::skip_held`],
    /// [`Inbound::verify`]), store the valid ones, and give the batch back
    /// to [`Session::handle_stored`].
    pub fn poll_inbound(&mut self) -> Option<Inbound> {
        if self.inbound.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut self.inbound);
        self.inbound_out += batch.len();
        Some(batch)
    }

    /// A batch from [`Session::poll_inbound`] is back, its messages checked
    /// and the valid ones stored: acknowledge them, report the new ones,
    /// and end the session if a peer sent an invalid one (after reporting
    /// everything stored before it).
    pub fn handle_stored(&mut self, inbound: Inbound) {
        self.inbound_out = self.inbound_out.saturating_sub(inbound.len());
        // Every message the caller stored is reported, even those after an
        // invalid one in the batch; only acknowledgements stop at the first
        // error (the session ends with it).
        let mut error = None;
        for item in inbound.items {
            let group = *item.group();
            let key = item.key();
            let ack = error.is_none() && !self.is_closed();
            if matches!(item.verdict(), Verdict::Held | Verdict::Stored { .. }) {
                self.delivered(group, self.tags.tag(&key.id), Some(key));
            }
            match item.verdict() {
                Verdict::Held | Verdict::Stored { new: false } => {
                    if ack {
                        self.acks
                            .entry(group)
                            .or_default()
                            .push(self.tags.tag(&key.id));
                    }
                }
                Verdict::Stored { new: true } => {
                    if ack {
                        self.acks
                            .entry(group)
                            .or_default()
                            .push(self.tags.tag(&key.id));
                    }
                    self.news(&group);
                    self.events.push_back(Event::Received { group, key });
                }
                Verdict::Invalid(
                    reason @ (Invalid::FromTheFuture { .. }
                    | Invalid::Expired { .. }
                    | Invalid::OverBudget
                    | Invalid::FormerMember
                    | Invalid::MustLast(_)
                    | Invalid::Lifetime { .. }),
                ) => {
                    self.events.push_back(Event::Rejected {
                        group,
                        key,
                        reason: reason.clone(),
                    });
                }
                Verdict::Invalid(e) => {
                    error.get_or_insert(SessionError::Invalid(e.clone()));
                }
                Verdict::Unchecked | Verdict::Valid => {
                    error.get_or_insert(SessionError::Internal(
                        "a received message came back neither checked nor stored",
                    ));
                }
            }
        }
        if let Some(e) = error {
            self.fail(e);
        }
    }

    /// Checks and stores every received message in place, on this thread:
    /// [`Session::poll_inbound`], [`Inbound::skip_held`], [`Inbound::verify`],
    /// [`WriteStore::insert`], [`Session::handle_stored`]. A store error
    /// ends the session.
    pub fn settle<S: WriteStore>(&mut self, now: Time, store: &mut S) {
        while let Some(mut batch) = self.poll_inbound() {
            if let Err(e) = batch.skip_held(|g, k| store.contains(g, k)) {
                self.inbound_out = 0;
                self.fail(store_error(e));
                return;
            }
            batch.verify(now);
            for item in batch.iter_mut() {
                if *item.verdict() == Verdict::Valid {
                    match store.insert(item.group(), item.message()) {
                        Ok(new) => item.set_stored(new),
                        Err(e) => {
                            self.inbound_out = 0;
                            self.fail(store_error(e));
                            return;
                        }
                    }
                }
            }
            self.handle_stored(batch);
        }
    }

    /// The next bytes to write to the link, if any. Call it until it returns
    /// `None` whenever the link can take more; messages are read from
    /// `store` only as space allows, so a large transfer never sits in
    /// memory.
    pub fn poll_transmit<S: Store>(&mut self, now: Time, store: &S) -> Option<Vec<u8>> {
        self.clock = self.clock.max(now);
        if !self.is_closed() {
            self.ask_again_if_settled();
        }
        if let Some(record) = self.records.pop_front() {
            self.count_sent(now, record.len());
            self.stats.sent.preamble += record.len() as u64;
            return Some(record);
        }
        match self.transmit(store) {
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

    fn transmit<S: Store>(&mut self, store: &S) -> Result<Option<Vec<u8>>, SessionError> {
        if matches!(self.state, State::Established(_)) && !self.deferred.is_empty() {
            self.answer_deferred(store)?;
        }
        match &self.state {
            State::Respond(_) if !self.opened => self.open_groups(store)?,
            State::Established(_) if self.opened && !self.to_open.is_empty() => {
                self.open_added(store)?
            }
            State::Respond(_)
            | State::AwaitConfirm(_)
            | State::Established(_)
            | State::Closing(_) => {}
            _ => return Ok(None),
        }
        let responding = matches!(self.state, State::Respond(_));
        let overhead = if responding {
            MSG2_OVERHEAD + PAD_FRAME_MIN
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
            let f = self.control.pop_front().expect("front exists");
            self.stats.sent.frame(f[0], f.len());
            payload.extend_from_slice(&f);
        }
        if !matches!(self.state, State::Closing(_)) {
            let before = payload.len();
            self.fill_acks(&mut payload, budget);
            self.stats.sent.frame(frame::ACK, payload.len() - before);
            self.fill_messages(&mut payload, budget, store)?;
        }
        if responding {
            // Message 2 varies in size: a PAD frame of random length, in the
            // room kept for it and whatever the frames left.
            let room = budget - payload.len();
            let pad = preamble::pad_len(&mut self.rng).min(room);
            let before = payload.len();
            frame::put(&mut payload, frame::PAD, &vec![0u8; pad]);
            self.stats.sent.frame(frame::PAD, payload.len() - before);
        }
        if payload.is_empty() {
            return Ok(None);
        }
        let overhead = if responding { MSG2_OVERHEAD } else { TAG_LEN };
        let mut out = vec![0u8; 2 + overhead + payload.len()];
        let n = match std::mem::replace(&mut self.state, State::Closed) {
            State::Respond(mut hs) => {
                let n = hs
                    .write_message(&payload, &mut out[2..])
                    .map_err(|_| SessionError::Handshake)?;
                let t = hs
                    .into_transport_mode()
                    .map_err(|_| SessionError::Handshake)?;
                self.state = State::AwaitConfirm(Box::new(t));
                n
            }
            State::Established(mut t) => {
                let n = t
                    .write_message(&payload, &mut out[2..])
                    .map_err(|_| SessionError::Internal("packet encryption failed"))?;
                self.state = State::Established(t);
                n
            }
            State::AwaitConfirm(mut t) => {
                let n = t
                    .write_message(&payload, &mut out[2..])
                    .map_err(|_| SessionError::Internal("packet encryption failed"))?;
                self.state = State::AwaitConfirm(t);
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
        self.stats.sent.framing += (out.len() - payload.len()) as u64;
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
            self.query_acks = self.query_acks.saturating_sub(fit);
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
                self.current = Some((group, key, bytes, 0));
            }
            let (group, key, bytes, offset) = self.current.as_mut().expect("set above");
            let before = payload.len();
            let kind = crate::message::kind_of(bytes).map_or(0, |k| k.0);
            let room = budget - payload.len() - HEADER;
            let left = bytes.len() - *offset;
            let mut finished = false;
            if *offset == 0 && left <= room {
                frame::put(payload, frame::MSG, bytes);
                finished = true;
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
                finished = *offset == bytes.len();
            }
            self.stats.sent.message(kind, payload.len() - before);
            if finished {
                let own = bytes[33..65] == self.keys.me.sign;
                let (group, key) = (*group, *key);
                self.current = None;
                // Taken in full by the peer: progress, which pays back a
                // walk of its group's log (§8.5), once a message: one the
                // peer asks for again and again pays nothing more.
                let tag = self.tags.tag(&key.id);
                if self.paid.len() < MAX_PAID_SENDS && self.paid.insert(tag) {
                    self.progress(&group);
                }
                if own {
                    self.events.push_back(Event::Sent { group, key });
                }
            }
        }
    }

    /// The peer holds the unacknowledged message under `tag` in `group`
    /// (and, when given, with key `key`): reports it [`Event::Delivered`],
    /// once. From an ACK, or from the peer sending us a message we sent or
    /// asked about (PROTOCOL.md §7, ACK): a peer that stored it after
    /// answering our QUERY (another link of its stored it meanwhile) sends
    /// it on as new, and nothing else would tell us.
    fn delivered(&mut self, group: GroupId, tag: u64, key: Option<Key>) {
        if self
            .unacked
            .get(&tag)
            .is_some_and(|(g, k)| *g == group && key.is_none_or(|key| *k == key))
        {
            let (_, key) = self.unacked.remove(&tag).expect("just seen");
            self.events.push_back(Event::Delivered { group, key });
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
        let tag = self.tags.tag(&key.id);
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
                // File chunks wait while anything else is queued, so a
                // text is not stuck behind a large file. Their kind is
                // read without their body, which is read once, when sent.
                if (!self.ready.is_empty() || !self.sends.is_empty())
                    && self.bulk.len() < MAX_BULK
                    && store.kind(&group, &key).map_err(store_error)? == Some(crate::Kind::CHUNK)
                {
                    self.bulk.push_back((group, key));
                    continue;
                }
                if let Some(bytes) = store.get(&group, &key).map_err(store_error)? {
                    if self.expired(&bytes) {
                        continue;
                    }
                    return Ok(Some((group, key, bytes)));
                }
                continue;
            }
            let Some((group, send)) = self.sends.pop_front() else {
                // Nothing but chunks left.
                while let Some((group, key)) = self.bulk.pop_front() {
                    if let Some(bytes) = store.get(&group, &key).map_err(store_error)? {
                        if self.expired(&bytes) {
                            continue;
                        }
                        return Ok(Some((group, key, bytes)));
                    }
                }
                return Ok(None);
            };
            match send {
                Send::Key(key) => self.ready.push_back((group, key)),
                Send::Range { range, except } => {
                    self.except_tags = self.except_tags.saturating_sub(except.len());
                    let tags = self.tags;
                    let mut batch = Vec::new();
                    let mut last = None;
                    store
                        .scan(&group, &range, &mut |key| {
                            last = Some(*key);
                            if !except.contains(&tags.tag(&key.id)) {
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
                                self.except_tags += except.len();
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
        let (State::Established(t) | State::AwaitConfirm(t)) = &mut self.state else {
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

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: std::marker::Send>() {}
    is_send::<Session>();
    is_send::<Inbound>();
}

#[cfg(test)]
mod tests {
    use crate::harness::{Pair, Side};
    use crate::store::MemoryStore;
    use crate::{frame, recon, DecodeError, SessionError};

    /// A resync asked for after the dialler is established but before
    /// the acceptor's READY (its openings overflowed message 2: BLE, or
    /// many groups) is kept until the group's exchange ends: before, READY
    /// dropped it while the group stayed marked as asked, so every later
    /// resync of the group on that session (a file's parts) did nothing.
    #[test]
    fn a_resync_asked_for_before_ready_is_not_lost() {
        let mut pair = Pair::new(72);
        pair.connect();
        pair.drive();
        let group = pair.a.contacts[0].direct_group().id;
        let mut a = pair.a.session.take().unwrap();
        a.opened = false;
        assert!(a.resync(&group));
        a.open_groups(&pair.a.store).unwrap();
        // Stored with no handover (as a file's parts are), then asked for.
        pair.a.write("stored in a batch");
        pair.a.session = Some(a);
        assert!(pair.a.session.as_mut().unwrap().resync(&group));
        pair.drive();
        assert!(pair.a.close_error().is_none());
        assert_eq!(pair.b.texts(), ["stored in a batch"]);
    }

    /// A link that stays up opens a group again for every file sent on
    /// it (a resync once its chunks are stored), and the rounds of a group
    /// counted across its exchanges: after about 2,000 files the session
    /// ended with `Limit`. Each exchange counts its own now.
    #[test]
    fn a_long_lived_link_resyncs_a_group_without_end() {
        let mut pair = Pair::new(74);
        // The log grows by one a resync: unkeyed tags keep its walks cheap
        // (only the number of exchanges matters here).
        pair.a.config.unkeyed_tags = true;
        pair.b.config.unkeyed_tags = true;
        pair.connect();
        pair.drive();
        let group = pair.a.contacts[0].direct_group().id;
        let last = crate::limits::MAX_ROUNDS_PER_GROUP as usize;
        for i in 0..=last {
            // Something new each time, as a file is: an opening with
            // nothing new would wait for news past REOPEN_ALLOWANCE.
            pair.a.write(&format!("text {i}"));
            assert!(pair.a.session.as_mut().unwrap().resync(&group));
            pair.drive();
            assert!(pair.a.close_error().is_none(), "closed after {i} resyncs");
            assert!(pair.b.close_error().is_none(), "closed after {i} resyncs");
        }
        assert_eq!(pair.b.texts().len(), last + 1);
        let synced = pair
            .b
            .events
            .iter()
            .filter(|e| matches!(e, crate::Event::Synced { .. }))
            .count();
        assert_eq!(synced, last + 2, "the first exchange and every opening");
    }

    /// A contact that opens a group again and again with an IdList of
    /// 1024 made-up tags, reading our replies but never taking our
    /// messages, had each opening queue a re-send of the whole log that
    /// kept its 1024 tags (about 11 KB), up to 65,536 queued sends: tens
    /// to hundreds of megabytes a session. The tags queued sends keep are
    /// bounded now: past the bound a range is queued without them. (Each
    /// opening here comes after something new of ours: with nothing new,
    /// openings past `REOPEN_ALLOWANCE` wait for news unanswered.)
    #[test]
    fn a_peer_cannot_pin_memory_in_queued_sends() {
        let mut pair = Pair::new(73);
        for i in 0..200 {
            pair.b.write(&format!("{i} {}", "history ".repeat(250)));
        }
        pair.connect();
        pair.drive();
        let group = pair.a.contacts[0].direct_group().id;
        let mut a = pair.a.session.take().unwrap();
        let mut b = pair.b.session.take().unwrap();
        let now = pair.now;
        let mut most = 0;
        let mut closed = None;
        for round in 0..400u64 {
            let key = pair.b.write(&format!("news {round}"));
            assert!(b.handle_new_message(&group, key));
            let tags = (0..1024).map(|i| (round << 20) | i | (1 << 63)).collect();
            let opening = recon::ReconMsg {
                items: vec![recon::RangeItem {
                    upper: crate::store::Key::MAX,
                    mode: recon::Mode::IdList(tags),
                }],
            };
            let packet = a.send_raw_packet(&frame::open(&group, &opening)).unwrap();
            if let Err(e) = b.handle_input(now, &packet, &pair.b.store) {
                closed = Some(e);
                break;
            }
            b.settle(now, &mut pair.b.store);
            // The contact reads one packet (our reply goes first in it),
            // and takes no more.
            let _ = b.poll_transmit(now, &pair.b.store);
            let queued: usize = b
                .sends
                .iter()
                .map(|(_, s)| match s {
                    recon::Send::Range { except, .. } => except.len(),
                    recon::Send::Key(_) => 0,
                })
                .sum();
            most = most.max(queued);
        }
        assert!(most <= super::MAX_QUEUED_EXCEPT, "{most} tags queued");
        assert_eq!(closed, None);
    }

    /// A contact that sends OPEN after OPEN for one group in a packet,
    /// without waiting for (or reading) the replies, made us summarise the
    /// group and queue a reply for each, up to 4,096 a session (each a
    /// full scan; an opening that claims to hold nothing, a re-send of
    /// everything). A frame for a group whose reply has not left yet now
    /// ends the session; honest peers, who answer only what they read,
    /// never send one (every other session test still passes).
    #[test]
    fn a_peer_cannot_make_us_reconcile_without_reading_our_replies() {
        let mut pair = Pair::new(71);
        for i in 0..40 {
            pair.b.write(&format!("history {i}"));
        }
        pair.connect();
        pair.drive();
        assert!(pair.b.close_error().is_none());
        let group = pair.a.contacts[0].direct_group().id;
        let mut a = pair.a.session.take().unwrap();
        let opening = recon::open(&MemoryStore::new(), &group, &a.tags).unwrap();
        let open = frame::open(&group, &opening);
        for _ in 0..10 {
            let packet = a.send_raw_packet(&open.repeat(30)).unwrap();
            pair.inject(Side::A, packet);
        }
        pair.drive();
        assert_eq!(
            pair.b.close_error(),
            Some(&SessionError::Decode(DecodeError::Invalid(
                "reconciliation frame before our reply was sent"
            )))
        );
    }
}
