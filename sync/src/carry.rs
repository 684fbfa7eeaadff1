//! Carrying sealed envelopes through contacts (PROTOCOL.md §17): binary
//! spray and wait over the pairs' carrying pools.
//!
//! A [`Carrier`] is one device's carrying state, with no IO: the envelopes
//! it holds for others (under a byte budget, oldest evicted first), the
//! messages it sent that are still spreading, the acknowledgements it has
//! seen, and which contacts said they carry. The caller moves its
//! decisions through the pools: every [`Handout`] becomes a message of its
//! kind in the pool shared with `to`, and every pool message received is
//! passed back in. The node and the simulator both drive it so.
//!
//! The spreading rule is binary spray and wait (Spyropoulos et al. 2005),
//! with one change forced by sealing: a carrier cannot tell who an
//! envelope is for, so where spray and wait gives its last copy only to
//! the destination, a carrier offers the envelope's 62-byte header (and
//! its 16-byte name) to each contact it meets, once; only the recipient recognises it (one
//! X25519) and asks for the rest, which then comes "for delivery only".
//! The sender knows its recipient and seals a fresh envelope for each
//! carrier, so two first-hop carriers hold nothing in common.

use std::collections::{BTreeMap, BTreeSet};

use rand_core::{CryptoRng, RngCore};

use crate::envelope::{sealed_len, AckToken, Envelope, EnvelopeError, ENVELOPE_HEADER_LEN};
use crate::group::GroupId;
use crate::identity::{AuthorId, Contact, Identity, PublicIdentity};
use crate::limits::{Time, MAX_BODY_LEN, MAX_CLOCK_SKEW};
use crate::message::{Kind, Message, MessageId};
use crate::store::Key;

/// Acknowledgements remembered at once (each 24 bytes); beyond this the
/// soonest to expire are forgotten first.
pub const MAX_ACKS: usize = 1 << 16;
/// Own messages still spreading at once; beyond this the oldest stop.
pub const MAX_OWN: usize = 1 << 12;
/// Bytes of own messages kept for spreading at once; beyond this the
/// oldest stop.
pub const MAX_OWN_BYTES: usize = 16 << 20;
/// The largest envelope carried: one that fits, with its handing mode, in
/// an expiring pool message. Larger messages are not spread (their
/// recipient gets them directly).
pub const MAX_CARRIED_ENVELOPE: usize = MAX_BODY_LEN - 8 - 1;

/// The largest carrying budget a carrier takes: 1 GiB. Even of the
/// smallest envelopes, that many stay a list a saved state can name
/// (`MAX_SAVED` entries); a larger budget in a [`CarryConfig`] counts as
/// this one.
pub const MAX_CARRY_BUDGET: u64 = 1 << 30;

/// The longest chain of links a chain envelope crosses ([`Spread::Chains`]);
/// a larger reach from a contact counts as this one.
pub const MAX_REACH: u8 = 16;

/// The longest an envelope may last: 30 days from the receiver's clock
/// (and the hour its expiry is rounded up to). A sender seals none that
/// lasts longer ([`CarryConfig::lifetime`] is held to it); a carrier
/// refuses one that would, which a contact made so by hand to hold
/// carriers' budgets, and the pool messages that hand it on, for ever.
pub const MAX_ENVELOPE_LIFETIME: Time = 30 * 24 * 3_600_000;
/// The top bit of an envelope's copy byte: the envelope travels along
/// chains of carriers, and the other seven bits are its reach (§17).
const CHAIN_BIT: u8 = 0x80;

/// The reach of an envelope whose copy byte is `copies`, if it travels
/// along chains (at least 1, at most [`MAX_REACH`]); `None` for spray and
/// wait.
fn reach_of(copies: u8) -> Option<u8> {
    (copies & CHAIN_BIT != 0).then(|| (copies & !CHAIN_BIT).clamp(1, MAX_REACH))
}

pub(crate) const CARRY: u8 = 0;
pub(crate) const DELIVER: u8 = 1;
const OFFER: u8 = 2;

/// How this device's own messages spread (carriers follow the rule each
/// envelope carries, whatever their own setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Binary spray and wait with [`CarryConfig::copies`] copies.
    SprayAndWait,
    /// Along chains of carriers: one envelope per message, offered by
    /// header to every contact of every holder, taken by those who carry
    /// while it may still cross at least two links, for at most `reach`
    /// links from the sender (2 to [`MAX_REACH`]); the recipient's
    /// acknowledgement stops it where it has reached (§17).
    Chains {
        /// The most links an envelope crosses, the last to its recipient.
        reach: u8,
        /// How many carriers each holder (the sender too) lets take an
        /// envelope on; other contacts are offered it for delivery only.
        width: u8,
    },
}

impl Spread {
    /// The chains this device follows for the envelopes it holds: its
    /// own setting's width, or the default's when it sprays its own.
    fn width(&self) -> usize {
        match self {
            Spread::Chains { width, .. } => usize::from(*width).max(1),
            Spread::SprayAndWait => usize::from(DEFAULT_WIDTH),
        }
    }
}

/// How many links a chain envelope crosses by default.
pub const DEFAULT_REACH: u8 = 9;
/// How many carriers a holder lets take a chain envelope on by default
/// (and when its own setting is spray and wait).
pub const DEFAULT_WIDTH: u8 = 4;
/// How many links short of its setting a sender starts a message's
/// reach, at most (drawn uniformly).
const REACH_JITTER: u32 = 2;

/// The node's [`CarryConfig::hold_gaps`].
pub const DEFAULT_HOLD_GAPS: u8 = 3;
/// The longest a sender holds a text back from carriers.
pub const MAX_HOLD: Time = 12 * 3_600_000;
/// Calls of [`Carrier::hand`] for one contact closer together than this
/// are one meeting.
const SAME_MEETING: Time = 10 * 60_000;

/// When a device last met a contact, and how long it usually goes
/// between meetings (a running mean, half the weight on the newest gap).
#[derive(Debug, Clone, Copy)]
struct Meetings {
    last: Time,
    gap: Option<Time>,
}

impl Meetings {
    /// Met again at `now`.
    fn seen(&mut self, now: Time) {
        if now > self.last.saturating_add(SAME_MEETING) {
            let gap = now - self.last;
            self.gap = Some(self.gap.map_or(gap, |g| g / 2 + gap / 2));
        }
        self.last = self.last.max(now);
    }

    /// How long a text to this contact is held back from carriers after
    /// it was written, at `gaps` usual gaps: nothing until two meetings
    /// have shown a gap.
    fn hold(&self, gaps: u8) -> Time {
        self.gap
            .map_or(0, |g| g.saturating_mul(u64::from(gaps)).min(MAX_HOLD))
    }
}

/// How fast a contact's lending record fades (§17, *Whom to lend to*):
/// its loans and deliveries count half after this long, so a contact
/// that owes two loans is lent to again after this long.
pub const LOAN_HALF_LIFE: Time = 12 * 3_600_000;

/// What a device learned from lending envelopes to one contact: loans
/// made and loans that came back acknowledged through that contact,
/// both fading with [`LOAN_HALF_LIFE`] from `at`.
#[derive(Debug, Clone, Copy, Default)]
struct Record {
    lent: f64,
    delivered: f64,
    at: Time,
}

impl Record {
    /// Fades the record to `now`.
    fn at(mut self, now: Time) -> Record {
        if now > self.at {
            let f = 0.5f64.powf((now - self.at) as f64 / LOAN_HALF_LIFE as f64);
            self.lent *= f;
            self.delivered *= f;
            self.at = now;
        }
        self
    }

    /// Whether another loan is worth it: every loan not answered by a
    /// delivery is a debt, a delivery pays for two, and a contact is lent
    /// to while it owes less than one loan, faded. A contact never lent
    /// to owes nothing, so each gets a first loan; one that drops what it
    /// takes owes more with each, and n unanswered loans fade below one
    /// after about log₂ n half-lives.
    fn worth_lending(&self) -> bool {
        self.lent - 2.0 * self.delivered < 1.0
    }
}

/// What a device does with envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarryConfig {
    /// How this device's own messages spread.
    pub spread: Spread,
    /// Copies a message's envelopes start with in all, with
    /// [`Spread::SprayAndWait`] (a carrier passes on half of its copies,
    /// keeping the rest; at most 127). 1 hands nothing to carriers.
    pub copies: u8,
    /// Most bytes of other people's envelopes held at once (at most
    /// [`MAX_CARRY_BUDGET`]).
    pub budget: u64,
    /// How long an envelope lasts from sealing (a message that expires
    /// sooner keeps its own expiry); at most [`MAX_ENVELOPE_LIFETIME`].
    pub lifetime: Time,
    /// Whether this device carries envelopes for its contacts (it always
    /// opens its own).
    pub carry: bool,
    /// Along chains: lend envelopes (its own and those it holds) only to
    /// carriers whose record says their loans get delivered (§17, *Whom
    /// to lend to*); others are offered them for delivery only. Off by
    /// default: in the simulator it halves bytes but loses some delivery
    /// (`docs/guide/carrying.md`).
    pub learn: bool,
    /// How many of its usual gaps between meetings with a text's
    /// recipient the sender waits, from writing it, before offering it to
    /// carriers (at most [`MAX_HOLD`]; §17, *When a sender spreads*): a
    /// text to someone it meets often goes directly, one to someone it
    /// meets rarely spreads at once. 0 spreads every text at once.
    pub hold_gaps: u8,
}

impl Default for CarryConfig {
    fn default() -> Self {
        CarryConfig {
            spread: Spread::Chains {
                reach: DEFAULT_REACH,
                width: DEFAULT_WIDTH,
            },
            copies: 8,
            budget: 16 << 20,
            lifetime: 7 * 24 * 3_600_000,
            carry: true,
            learn: false,
            hold_gaps: DEFAULT_HOLD_GAPS,
        }
    }
}

/// A pool message to write: `body` of `kind`, expiring at `expires`, in
/// the carrying pool shared with contact `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handout {
    /// The contact whose pool it goes in.
    pub to: AuthorId,
    /// [`Kind::ENVELOPE`] or [`Kind::ACK`].
    pub kind: Kind,
    /// The message body.
    pub body: Vec<u8>,
    /// The message's expiry.
    pub expires: Time,
}

/// What an envelope handed to this device turned out to be.
#[derive(Debug)]
pub enum Arrival {
    /// It opened: a message for this device. The caller accepts it only
    /// if it is valid in the 1:1 group of the contact that wrote it (any
    /// stranger can seal to a public key), stores it as if it came
    /// directly, and then calls [`Carrier::settle_opened`] (or
    /// [`Carrier::acknowledge`]).
    Opened {
        /// The sealed message.
        message: Message,
        /// What proves delivery to carriers.
        token: AckToken,
        /// The envelope's expiry (for the acknowledgement).
        expires: Time,
    },
    /// Only its header was offered, and it is for this device (or, along
    /// chains, this device carries it on): write `request` (a
    /// [`Kind::REQUEST`]) to get the rest.
    Wanted {
        /// The request to write.
        request: Handout,
    },
    /// Taken in to carry; `evicted` older envelopes made room.
    Held {
        /// Envelopes dropped for it, oldest first.
        evicted: usize,
    },
    /// Handed for delivery only (or this device does not carry), and not
    /// for this device: dropped.
    NotForUs,
    /// Already held: nothing new (the giver is remembered).
    Known,
    /// Already acknowledged: delivered, so dropped (a replay).
    Delivered,
}

/// What a pool message from a contact asks of the device that took it in
/// ([`Carrier::take`]).
#[derive(Debug)]
pub enum Taken {
    /// The contact started or stopped carrying: hand them what they may
    /// carry now.
    Carrier,
    /// Pool messages to write.
    Write(Vec<Handout>),
    /// Acknowledgements: pool messages to write (the acknowledgement
    /// passed on to those that hold a copy), and this device's own
    /// messages they prove delivered, by their group and key (the
    /// recipient opened an envelope of each: only it can reveal the token).
    Acknowledged {
        /// Pool messages to write.
        out: Vec<Handout>,
        /// Own messages delivered.
        delivered: Vec<(GroupId, Key)>,
    },
    /// An envelope for this device opened (see [`Arrival::Opened`]): the
    /// device stores `message` if [`opened_author`] names its contact and
    /// it is valid in their 1:1 group, and then tells the carrier what
    /// became of it ([`Carrier::settle_opened`]), which gives the
    /// acknowledgement to write into the pool it came from, if any.
    Opened {
        /// The sealed message.
        message: Message,
        /// What proves delivery to carriers.
        token: AckToken,
        /// The envelope's expiry (for the acknowledgement).
        expires: Time,
    },
    /// An envelope taken in to carry (`evicted` older ones made room):
    /// hand it on over the device's live links.
    Held {
        /// Envelopes dropped for it.
        evicted: usize,
    },
    /// Nothing to do: the device's own pool message, one of no pool kind,
    /// or an envelope already held, delivered or not to be carried.
    Nothing,
}

/// What a device did with the message of an envelope that opened for it
/// ([`Taken::Opened`]), checked and stored as if its author had sent it
/// over a link: passed to [`Carrier::settle_opened`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenedFate {
    /// Stored, or already here: acknowledged to the contact that brought
    /// it.
    Taken,
    /// Not yet, as over a link (over its author's budget here, or dated
    /// ahead of this device's clock): the envelope is opened again later,
    /// and not counted opened again.
    Later,
    /// Not a text a contact wrote in their 1:1 group with this device
    /// ([`opened_author`]: any stranger can seal to a public key), or not
    /// valid there: dropped, and never acknowledged (that would tell a
    /// stranger who holds the key it was sealed to).
    Refused,
}

/// The kinds a carrying pool holds: envelopes, acknowledgements, requests
/// for the rest of an envelope, and "I carry" notices.
pub fn is_pool_kind(kind: Kind) -> bool {
    [Kind::ENVELOPE, Kind::ACK, Kind::CARRYING, Kind::REQUEST].contains(&kind)
}

/// Whether this device's `message` is carried at all: only texts (a
/// welcome, a timer or a file needs what a link does after it, and comes
/// over links).
pub fn is_carried_kind(kind: Kind) -> bool {
    kind == Kind::TEXT
}

/// The contact a message out of an opened envelope is taken from: a text
/// that contact wrote in their 1:1 group with this device. `None` for
/// anything else (any stranger can seal to a public key): it is dropped,
/// and never acknowledged.
pub fn opened_author<'a>(
    contacts: impl IntoIterator<Item = &'a Contact>,
    message: &Message,
) -> Option<&'a Contact> {
    if !is_carried_kind(message.kind()) {
        return None;
    }
    contacts
        .into_iter()
        .find(|c| c.public.sign == message.author() && c.direct_group().id == message.group())
}

/// Why a pool message was refused. Nothing is changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarryError {
    /// Not a pool message of its kind.
    #[error("not a carrying message: {0}")]
    Malformed(&'static str),
    /// The envelope has expired.
    #[error("the envelope expired at {expires} (now {now})")]
    Expired {
        /// When.
        expires: Time,
        /// The caller's clock.
        now: Time,
    },
    /// The envelope lasts longer than any may
    /// ([`MAX_ENVELOPE_LIFETIME`]).
    #[error("the envelope lasts until {expires}, longer than an envelope may (now {now})")]
    TooLong {
        /// When it would expire.
        expires: Time,
        /// The caller's clock.
        now: Time,
    },
    /// Larger than this device's whole carrying budget.
    #[error("an envelope of {0} bytes is over the carrying budget")]
    OverBudget(usize),
}

/// An envelope expiring at `expires` may be taken at `now`: not expired,
/// and lasting no longer than any may (with the hour it is rounded up to,
/// and a sender's clock as far ahead as a message's may be).
fn lasting(expires: Time, now: Time) -> Result<(), CarryError> {
    if expires <= now {
        return Err(CarryError::Expired { expires, now });
    }
    if too_long(expires, now) {
        return Err(CarryError::TooLong { expires, now });
    }
    Ok(())
}

/// Whether an envelope expiring at `expires` lasts longer than any may.
fn too_long(expires: Time, now: Time) -> bool {
    expires > now.saturating_add(MAX_ENVELOPE_LIFETIME + 3_600_000 + MAX_CLOCK_SKEW)
}

impl From<EnvelopeError> for CarryError {
    fn from(_: EnvelopeError) -> Self {
        CarryError::Malformed("not an envelope")
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CarryStats {
    /// Envelopes taken in to carry.
    pub held: u64,
    /// Envelopes evicted for room.
    pub evicted: u64,
    /// Envelopes deleted because their acknowledgement arrived.
    pub acknowledged: u64,
    /// Envelopes sealed by this device (one per carrier handed to).
    pub sealed: u64,
    /// Envelopes that opened for this device (each once, however often
    /// one whose message waits, [`Carrier::take_later`], opens again).
    pub opened: u64,
    /// Of those, the ones whose message was taken in and acknowledged (a
    /// contact wrote it in their 1:1 group with this device).
    pub accepted: u64,
}

#[derive(Clone)]
struct Held {
    envelope: Envelope,
    /// When it came, and in what order: oldest is evicted first. A key of
    /// `Carrier::by_arrival`, so it never changes while held.
    arrived: (Time, u64),
    /// Contacts it came from or went to: never offered to them again, and
    /// where its acknowledgement is passed on.
    peers: BTreeSet<AuthorId>,
    /// Contacts offered its header: one of them may ask for the rest.
    offered: BTreeSet<AuthorId>,
    /// Along chains: carriers offered it to take on that have not asked
    /// yet (not kept between runs). A contact offered it for delivery
    /// only before it was known to carry is offered it again so.
    lent: BTreeSet<AuthorId>,
    /// Along chains: carriers that took it on from this device (not kept
    /// between runs): its acknowledgement from one of them is a loan
    /// that delivered.
    loaned: BTreeSet<AuthorId>,
}

#[derive(Clone)]
struct Own {
    recipient: PublicIdentity,
    message: Message,
    expires: Time,
    /// Copies left (spray and wait), or the chain bit and the reach.
    copies: u8,
    /// Along chains: the one envelope sealed from it, once handed out.
    chain: Option<Envelope>,
    /// Its acknowledgement token (not kept between runs).
    chain_token: Option<AckToken>,
    /// Along chains: carriers offered it that have not asked for it yet
    /// (not kept between runs: they are offered it again). Those that
    /// took it are among `peers`.
    offered: BTreeSet<AuthorId>,
    peers: BTreeSet<AuthorId>,
    /// Along chains: the carriers it was lent to (not kept between runs;
    /// `peers` also names contacts found to hold it already): its
    /// acknowledgement from one of them is a loan that delivered.
    loaned: BTreeSet<AuthorId>,
    /// The acknowledgement hashes of the envelopes sealed from it (keys
    /// of `Carrier::own_acks`: added to through `add_own_ack` only).
    acks: Vec<[u8; 16]>,
}

impl Own {
    /// When it may first be offered to carriers, at `gaps` of the usual
    /// gaps between meetings with its recipient (§17, *When a sender
    /// spreads*).
    fn released(&self, met: &BTreeMap<AuthorId, Meetings>, gaps: u8) -> Time {
        let hold = met.get(&self.recipient.sign).map_or(0, |m| m.hold(gaps));
        self.message.time().saturating_add(hold)
    }
}

/// Where a device's own messages not yet known delivered stand
/// ([`Carrier::spreading_at`]; `strand carry`, the app's Network screen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spreading {
    /// Offered or handed to at least one carrier.
    pub out: usize,
    /// Held back from carriers while they may still reach their
    /// recipient directly.
    pub held_back: usize,
    /// When the first of those may be offered to carriers, as things
    /// stand (the next meeting with its recipient moves it).
    pub released: Option<Time>,
    /// Free to spread, but no carrier met since.
    pub waiting: usize,
}

#[derive(Clone)]
struct Retired {
    token: AckToken,
    expires: Time,
    tell: BTreeSet<AuthorId>,
}

/// One device's carrying state (see the module documentation).
#[derive(Clone)]
pub struct Carrier {
    config: CarryConfig,
    // `held` and what is kept of it (`by_ack`, `by_arrival`, `used`)
    // change only through `hold` and `remove`; `own` and what is kept of
    // it (`own_acks`, `own_bytes`) only through `keep_own`, `drop_own` and
    // `add_own_ack` (`own_order` is kept by their callers, as before): so
    // no index drifts from what it indexes.
    held: BTreeMap<[u8; 32], Held>,
    /// (Acknowledgement hash, envelope id) of the held ones: anyone can
    /// put another's acknowledgement hash on an envelope, so there may be
    /// more than one per hash.
    by_ack: BTreeSet<([u8; 16], [u8; 32])>,
    /// (Arrival, envelope id) of the held ones: the first is the one to
    /// evict (ties, which only a damaged state could hold, go to the
    /// smallest id). Without it each eviction scanned everything held: a
    /// large arrival at a 1 GiB budget of small envelopes compared some
    /// 10^8 pairs.
    by_arrival: BTreeSet<((Time, u64), [u8; 32])>,
    own: BTreeMap<MessageId, Own>,
    /// (Acknowledgement hash, message id) of every envelope sealed from an
    /// own message: which own message an envelope or acknowledgement is
    /// about, without scanning them all at each one received.
    own_acks: BTreeSet<([u8; 16], MessageId)>,
    own_order: BTreeMap<(Time, u64), MessageId>,
    /// Acknowledgements seen (by hash), until they expire, with the token
    /// where this device has it (to answer an offer of what was
    /// delivered).
    acked: BTreeMap<[u8; 16], (Time, Option<[u8; 16]>)>,
    /// Contacts that said whether they carry, and when they said it (the
    /// newest notice counts).
    carriers: BTreeMap<AuthorId, (Time, bool)>,
    /// Own chain envelopes whose message reached its recipient directly:
    /// the acknowledgement to give each contact that took it, at the
    /// next meeting (not kept between runs).
    retired: BTreeMap<[u8; 16], Retired>,
    /// Each contact's lending record (not kept between runs): whom chain
    /// envelopes are lent to (§17, *Whom to lend to*).
    records: BTreeMap<AuthorId, Record>,
    /// When each contact was met (not kept between runs): how long a
    /// text to them is held back from carriers (§17, *When a sender
    /// spreads*).
    met: BTreeMap<AuthorId, Meetings>,
    /// Contacts linked now ([`Carrier::set_linked`]; not kept between
    /// runs): a text to one goes over the link, not to carriers.
    linked: BTreeSet<AuthorId>,
    /// Envelopes opened here whose message waits to be taken, by
    /// acknowledgement hash, with their expiry ([`Carrier::take_later`];
    /// not kept between runs).
    waiting: BTreeMap<[u8; 16], Time>,
    /// Bytes of own messages kept.
    own_bytes: usize,
    used: u64,
    seq: u64,
    stats: CarryStats,
}

impl std::fmt::Debug for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Carrier")
            .field("held", &self.held.len())
            .field("used", &self.used)
            .field("own", &self.own.len())
            .finish_non_exhaustive()
    }
}

/// The body of a [`Kind::CARRYING`] message.
pub fn encode_carrying(carries: bool) -> Vec<u8> {
    vec![u8::from(carries)]
}

/// Reads a [`Kind::CARRYING`] body.
pub fn decode_carrying(body: &[u8]) -> Result<bool, CarryError> {
    match body {
        [0] => Ok(false),
        [1] => Ok(true),
        _ => Err(CarryError::Malformed(
            "a carrying notice is one byte, 0 or 1",
        )),
    }
}

/// An offer of `envelope`'s header to `peer`, with copy byte `copies` (1
/// in spray and wait's wait phase, or the chain bit and the reach).
fn offer(envelope: &Envelope, copies: u8, peer: &PublicIdentity, expires: Time) -> Handout {
    let mut body = Vec::with_capacity(1 + OFFERED_LEN);
    body.push(OFFER);
    body.extend_from_slice(envelope.header());
    body[6] = copies;
    body.extend_from_slice(&envelope.name());
    Handout {
        to: peer.sign,
        kind: Kind::ENVELOPE,
        body,
        expires,
    }
}

/// An offered item: an envelope's header (its copy byte the offer's), and
/// its name ([`Envelope::name`]).
const OFFERED_LEN: usize = ENVELOPE_HEADER_LEN + 16;

/// Most items (offered headers, requested names or acknowledgement
/// tokens) one pool message carries (PROTOCOL.md §17, *Batches*).
pub const MAX_BATCH: usize = 64;

/// Puts together handouts for the same contact that can share a pool
/// message: offered headers, requests and acknowledgements, up to
/// [`MAX_BATCH`] items in each, the batch expiring with the last of its
/// items. A handout that is already a batch joins another as its items
/// do, so batching what several steps returned (each batched already)
/// still gives one message where the items fit. Whole envelopes and
/// notices stay as they are. Every device writes its handouts through
/// this, so a meeting's offers cost one message's overhead (190 bytes),
/// not one per envelope.
pub fn batch_handouts(handouts: Vec<Handout>) -> Vec<Handout> {
    let mut out: Vec<Handout> = Vec::with_capacity(handouts.len());
    // The open batch per (contact, kind): its place in `out`, its items.
    let mut open: BTreeMap<(AuthorId, u8), (usize, usize)> = BTreeMap::new();
    for h in handouts {
        let Some((items, k)) = batch_items(&h) else {
            out.push(h);
            continue;
        };
        match open.get_mut(&(h.to, h.kind.0)) {
            Some((at, n)) if *n + k <= MAX_BATCH => {
                let b = &mut out[*at];
                b.body.extend_from_slice(items);
                b.expires = b.expires.max(h.expires);
                *n += k;
            }
            _ => {
                open.insert((h.to, h.kind.0), (out.len(), k));
                out.push(h);
            }
        }
    }
    out
}

/// The items of handout `h` that can join a batch, and how many they
/// are, if it can join one.
fn batch_items(h: &Handout) -> Option<(&[u8], usize)> {
    let (items, size) = match h.kind {
        Kind::ENVELOPE if h.body.first() == Some(&OFFER) => (&h.body[1..], OFFERED_LEN),
        Kind::REQUEST | Kind::ACK => (&h.body[..], 16),
        _ => return None,
    };
    let n = items.len() / size;
    (items.len().is_multiple_of(size) && (1..=MAX_BATCH).contains(&n)).then_some((items, n))
}

/// A batch's items: `body` cut into 1 to [`MAX_BATCH`] pieces of `size`
/// bytes, or `what` if it is not.
fn items<'a>(
    body: &'a [u8],
    size: usize,
    what: &'static str,
) -> Result<std::slice::ChunksExact<'a, u8>, CarryError> {
    let n = body.len() / size;
    if !body.len().is_multiple_of(size) || !(1..=MAX_BATCH).contains(&n) {
        return Err(CarryError::Malformed(what));
    }
    Ok(body.chunks_exact(size))
}

/// Makes room for one more entry in `map` (at most `max` long) by
/// forgetting the one that expires soonest.
fn make_room<V>(map: &mut BTreeMap<[u8; 16], V>, max: usize, expires: impl Fn(&V) -> Time) {
    if map.len() >= max {
        if let Some(first) = map.iter().min_by_key(|(_, v)| expires(v)).map(|(h, _)| *h) {
            map.remove(&first);
        }
    }
}

/// Adds `hash` to the acknowledgement hashes of `own` (own message
/// `id`) and to `own_acks`, the index of them: a function of the two
/// fields, not a method, so it can be called while `own` is borrowed out
/// of `Carrier::own`.
fn add_own_ack(
    own_acks: &mut BTreeSet<([u8; 16], MessageId)>,
    id: MessageId,
    own: &mut Own,
    hash: [u8; 16],
) {
    own.acks.push(hash);
    own_acks.insert((hash, id));
}

/// `envelope` whole, handed to `to` in `mode`.
fn whole(mode: u8, envelope: &Envelope, to: AuthorId) -> Handout {
    Handout {
        to,
        kind: Kind::ENVELOPE,
        body: wrap(mode, envelope),
        expires: envelope.expires(),
    }
}

/// A held envelope handed whole to `to`: along chains, to a carrier it is
/// lent to (`lend`), taken on for one link fewer; otherwise for delivery
/// only.
fn hand_on(envelope: &Envelope, to: AuthorId, lend: bool) -> Handout {
    let mut copy = envelope.clone();
    let mode = match reach_of(copy.copies()) {
        Some(reach) if reach >= 2 && lend => {
            copy.set_copies(CHAIN_BIT | (reach - 1));
            CARRY
        }
        _ => {
            copy.set_copies(1);
            DELIVER
        }
    };
    whole(mode, &copy, to)
}

/// The acknowledgement `token`, for `to`.
fn ack(to: AuthorId, token: &AckToken, expires: Time) -> Handout {
    Handout {
        to,
        kind: Kind::ACK,
        body: token.0.to_vec(),
        expires,
    }
}

pub(crate) fn wrap(mode: u8, envelope: &Envelope) -> Vec<u8> {
    let mut body = Vec::with_capacity(1 + envelope.as_bytes().len());
    body.push(mode);
    body.extend_from_slice(envelope.as_bytes());
    body
}

impl Carrier {
    /// Nothing held yet. A budget over [`MAX_CARRY_BUDGET`] is cut to it.
    pub fn new(mut config: CarryConfig) -> Carrier {
        config.budget = config.budget.min(MAX_CARRY_BUDGET);
        Carrier {
            config,
            held: BTreeMap::new(),
            by_ack: BTreeSet::new(),
            by_arrival: BTreeSet::new(),
            own: BTreeMap::new(),
            own_acks: BTreeSet::new(),
            own_order: BTreeMap::new(),
            acked: BTreeMap::new(),
            carriers: BTreeMap::new(),
            retired: BTreeMap::new(),
            records: BTreeMap::new(),
            met: BTreeMap::new(),
            linked: BTreeSet::new(),
            waiting: BTreeMap::new(),
            own_bytes: 0,
            used: 0,
            seq: 0,
            stats: CarryStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CarryConfig {
        &self.config
    }

    /// How long an envelope sealed here lasts.
    fn lifetime(&self) -> Time {
        self.config.lifetime.min(MAX_ENVELOPE_LIFETIME)
    }

    /// Bytes of others' envelopes held.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Envelopes held for others.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The envelopes held for others, as a carrier sees them.
    pub fn envelopes(&self) -> impl Iterator<Item = &Envelope> {
        self.held.values().map(|h| &h.envelope)
    }

    /// This device's messages not yet known delivered, kept to spread.
    pub fn spreading(&self) -> usize {
        self.own.len()
    }

    /// Each of this device's messages kept to spread, as whom it is to
    /// and its key: what a caller that keeps delivery apart (a node's
    /// outbox) checks to stop spreading, with [`Carrier::delivered`],
    /// those it learnt were delivered while this state was not saved.
    pub fn own_messages(&self) -> impl Iterator<Item = (PublicIdentity, Key)> + '_ {
        self.own.values().map(|o| (o.recipient, o.message.key()))
    }

    /// Where this device's own messages not yet known delivered stand at
    /// `now`: with carriers, held back, or waiting for a carrier.
    pub fn spreading_at(&self, now: Time) -> Spreading {
        let mut s = Spreading::default();
        for own in self.own.values().filter(|o| o.expires > now) {
            let release = own.released(&self.met, self.config.hold_gaps);
            if !own.peers.is_empty() || !own.offered.is_empty() || !own.acks.is_empty() {
                s.out += 1;
            } else if self.linked.contains(&own.recipient.sign) {
                s.held_back += 1;
            } else if now < release {
                s.held_back += 1;
                s.released = Some(s.released.map_or(release, |r| r.min(release)));
            } else {
                s.waiting += 1;
            }
        }
        s
    }

    /// Counters.
    pub fn stats(&self) -> CarryStats {
        self.stats
    }

    /// Whether this device carries for its contacts from now on. Turned
    /// off, it keeps what it holds until that is delivered or expires, and
    /// takes in nothing new.
    pub fn set_carrying(&mut self, carry: bool) {
        self.config.carry = carry;
    }

    /// Which contacts are linked now (a session up): this device's texts
    /// to them are held back from carriers while they are, as they go
    /// over the link (§17, *When a sender spreads*). Once a link ends,
    /// its texts not yet delivered are offered at the next
    /// [`Carrier::hand`], held back as long as any other text.
    pub fn set_linked(&mut self, linked: BTreeSet<AuthorId>) {
        self.linked = linked;
    }

    /// Whether contact `peer` said it carries.
    pub fn is_carrier(&self, peer: &AuthorId) -> bool {
        self.carriers.get(peer).is_some_and(|(_, on)| *on)
    }

    /// Contact `peer` said (in a [`Kind::CARRYING`] message written at
    /// `time`) whether it carries. An older notice than one already seen
    /// changes nothing.
    pub fn set_carrier(&mut self, peer: &AuthorId, carries: bool, time: Time) {
        let newer = self.carriers.get(peer).is_none_or(|(t, _)| time >= *t);
        if newer {
            self.carriers.insert(*peer, (time, carries));
        }
    }

    /// Starts spreading `message`, this device's message in its 1:1 group
    /// with `recipient`: envelopes sealed from it go to carriers met from
    /// now on (never to the recipient, who gets the message directly).
    ///
    /// Returns whether it spreads: not with fewer than 2 copies, nor a
    /// message too large for a carried envelope, nor one already expired.
    pub fn originate(&mut self, recipient: &PublicIdentity, message: Message, now: Time) -> bool {
        let len = message.as_bytes().len();
        let copies = match self.config.spread {
            Spread::SprayAndWait => self.config.copies.min(!CHAIN_BIT),
            Spread::Chains { reach, .. } => CHAIN_BIT | reach.min(MAX_REACH),
        };
        let spreads = match reach_of(copies) {
            Some(reach) => reach >= 2,
            None => copies > 1,
        };
        if !is_carried_kind(message.kind())
            || !spreads
            || sealed_len(len).is_none_or(|l| l > MAX_CARRIED_ENVELOPE)
            || len > MAX_OWN_BYTES
        {
            return false;
        }
        let expires = message
            .expires()
            .unwrap_or(Time::MAX)
            .min(now.saturating_add(self.lifetime()));
        if expires <= now || self.own.contains_key(&message.id()) {
            return false;
        }
        while self.own.len() >= MAX_OWN || self.own_bytes + len > MAX_OWN_BYTES {
            let Some((_, id)) = self.own_order.pop_first() else {
                break;
            };
            self.drop_own(&id);
        }
        self.seq += 1;
        self.own_order.insert((now, self.seq), message.id());
        self.keep_own(
            message.id(),
            Own {
                recipient: *recipient,
                message,
                expires,
                copies,
                chain: None,
                chain_token: None,
                offered: BTreeSet::new(),
                peers: BTreeSet::new(),
                loaned: BTreeSet::new(),
                acks: Vec::new(),
            },
        );
        true
    }

    /// This device's message `id` reached its recipient directly: stop
    /// spreading it.
    pub fn delivered(&mut self, id: &MessageId) {
        if let Some(o) = self.drop_own(id) {
            self.own_order.retain(|_, v| v != id);
            // Its chain envelope, offered back later, is known delivered
            // (not taken on to carry: a sender does not recognise it), and
            // the contacts that took it get its acknowledgement when next
            // met, so its copies stop without waiting for the recipient to
            // be offered one.
            if let Some(e) = &o.chain {
                let hash = e.ack_hash();
                self.remember(hash, o.expires, o.chain_token.map(|t| t.0));
                if let Some(token) = o.chain_token.filter(|_| !o.peers.is_empty()) {
                    make_room(&mut self.retired, MAX_OWN, |r| r.expires);
                    self.retired.insert(
                        hash,
                        Retired {
                            token,
                            expires: o.expires,
                            tell: o.peers.clone(),
                        },
                    );
                }
            }
        }
    }

    /// The user deleted `contact`: this device's messages to them stop
    /// spreading (not known delivered: simply no longer offered), and what
    /// it kept of them as a contact (whether they carry, their lending
    /// record, when they were met) goes. Copies carriers took already go
    /// on until their time limit: they cannot be called back. Returns how
    /// many messages stopped.
    pub fn forget(&mut self, contact: &PublicIdentity) -> usize {
        let gone: BTreeSet<MessageId> = self
            .own
            .iter()
            .filter(|(_, o)| o.recipient == *contact)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            if let Some(o) = self.drop_own(id) {
                // Its envelopes, offered back, are known (not taken on
                // and spread from here again); with no token, nothing
                // says they were delivered.
                for hash in &o.acks {
                    self.remember(*hash, o.expires, None);
                }
            }
        }
        self.own_order.retain(|_, id| !gone.contains(id));
        let who = contact.sign;
        self.carriers.remove(&who);
        self.records.remove(&who);
        self.met.remove(&who);
        self.linked.remove(&who);
        // Nor do they fill a place among the carriers of anything else.
        for o in self.own.values_mut() {
            for set in [&mut o.offered, &mut o.peers, &mut o.loaned] {
                set.remove(&who);
            }
        }
        for h in self.held.values_mut() {
            for set in [&mut h.peers, &mut h.offered, &mut h.lent, &mut h.loaned] {
                set.remove(&who);
            }
        }
        for r in self.retired.values_mut() {
            r.tell.remove(&who);
        }
        gone.len()
    }

    /// Those this device's messages not yet known delivered are to, each
    /// once.
    pub fn recipients(&self) -> Vec<PublicIdentity> {
        let mut all: Vec<PublicIdentity> = self.own.values().map(|o| o.recipient).collect();
        all.sort_by_key(|p| p.sign);
        all.dedup();
        all
    }

    /// What to hand contact `peer` now, once per envelope: half the copies
    /// of each envelope with more than one to a carrier, and to anyone
    /// else (or with one copy left) its header, offered for delivery. Own
    /// messages go only to carriers, each in a freshly sealed envelope.
    pub fn hand(
        &mut self,
        peer: &PublicIdentity,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Vec<Handout> {
        self.hand_as(peer, now, rng, false)
    }

    /// [`Carrier::hand`] for a removable drive made for `peer`: with no
    /// round trip to ask for the rest, what would be offered by header
    /// goes whole, for delivery only.
    pub fn hand_for_drive(
        &mut self,
        peer: &PublicIdentity,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Vec<Handout> {
        self.hand_as(peer, now, rng, true)
    }

    fn hand_as(
        &mut self,
        peer: &PublicIdentity,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
        drive: bool,
    ) -> Vec<Handout> {
        if !drive {
            self.note_meeting(peer.sign, now);
        }
        let carries = self.is_carrier(&peer.sign);
        // Along chains, a carrier whose loans went nowhere is offered
        // envelopes for delivery only for a while (§17, *Whom to lend to*);
        // one worth lending to may take all it is offered at this meeting.
        let worth = self.worth_lending(&peer.sign, now);
        let width = self.config.spread.width();
        let mut loans = 0u32;
        let mut out = Vec::new();
        for r in self.retired.values_mut() {
            if r.expires > now && r.tell.remove(&peer.sign) {
                out.push(ack(peer.sign, &r.token, r.expires));
            }
        }
        self.retired
            .retain(|_, r| r.expires > now && !r.tell.is_empty());
        if carries {
            let (met, gaps, linked) = (&self.met, self.config.hold_gaps, &self.linked);
            for (&id, own) in self.own.iter_mut() {
                if own.expires <= now
                    || own.recipient.sign == peer.sign
                    || own.peers.contains(&peer.sign)
                {
                    continue;
                }
                // Held back while it may still go directly: its recipient
                // is linked now, or usually met soon (not onto a drive,
                // which its owner made to hand things on).
                if !drive && (linked.contains(&own.recipient.sign) || now < own.released(met, gaps))
                {
                    continue;
                }
                if let Some(reach) = reach_of(own.copies) {
                    if own.peers.len() + own.offered.len() >= width || !worth {
                        continue;
                    }
                    // Along chains: the same envelope to every carrier, which
                    // may take it on for one link fewer.
                    let envelope = match &own.chain {
                        Some(e) => e.clone(),
                        None => {
                            // The reach starts up to two links short of the
                            // setting, at random: an offer's reach then does
                            // not always tell a carrier that the contact
                            // offering it wrote the message.
                            let short = (rng.next_u32() % (REACH_JITTER + 1)) as u8;
                            let give = CHAIN_BIT | reach.saturating_sub(1 + short).max(1);
                            let Ok((e, token)) = Envelope::seal_with_token(
                                &own.recipient,
                                &own.message,
                                own.expires,
                                give,
                                rng,
                            ) else {
                                continue;
                            };
                            own.chain_token = Some(token);
                            add_own_ack(&mut self.own_acks, id, own, e.ack_hash());
                            own.chain = Some(e.clone());
                            self.stats.sealed += 1;
                            e
                        }
                    };
                    if drive {
                        // A drive allows no request: whole.
                        own.peers.insert(peer.sign);
                        own.loaned.insert(peer.sign);
                        own.offered.remove(&peer.sign);
                        loans += 1;
                        out.push(whole(CARRY, &envelope, peer.sign));
                        continue;
                    }
                    // Offered by header, so a carrier that holds it
                    // already (from another) does not get it twice.
                    if !own.offered.insert(peer.sign) {
                        continue;
                    }
                    let start = reach_of(envelope.copies()).unwrap_or(1) + 1;
                    out.push(offer(
                        &envelope,
                        CHAIN_BIT | start,
                        peer,
                        envelope.expires(),
                    ));
                    continue;
                }
                if own.copies <= 1 {
                    continue;
                }
                let give = own.copies / 2;
                let Ok(envelope) =
                    Envelope::seal(&own.recipient, &own.message, own.expires, give, rng)
                else {
                    continue;
                };
                own.copies -= give;
                own.peers.insert(peer.sign);
                add_own_ack(&mut self.own_acks, id, own, envelope.ack_hash());
                self.stats.sealed += 1;
                out.push(whole(CARRY, &envelope, peer.sign));
            }
        }
        for held in self.held.values_mut() {
            let expires = held.envelope.expires();
            if expires <= now || held.peers.contains(&peer.sign) {
                continue;
            }
            let copies = held.envelope.copies();
            if let Some(reach) = reach_of(copies) {
                // Along chains: its header to every contact (a carrier
                // asks for it while it may cross two more links, the
                // recipient always); whole on a drive.
                let lend = carries
                    && worth
                    && reach >= 2
                    && held.peers.len() + held.lent.len() <= width
                    && !held.lent.contains(&peer.sign);
                if drive {
                    // Whole (a drive allows no request), lent within the
                    // width as over a link.
                    let lend = lend || held.lent.remove(&peer.sign);
                    held.peers.insert(peer.sign);
                    let handout = hand_on(&held.envelope, peer.sign, lend);
                    if handout.body[0] == CARRY {
                        held.loaned.insert(peer.sign);
                        loans += 1;
                    }
                    out.push(handout);
                } else {
                    // The giver, those that took it or hold it, and those
                    // offered it to take on count against the width: past
                    // it, for delivery only.
                    if lend {
                        held.lent.insert(peer.sign);
                        held.offered.insert(peer.sign);
                        out.push(offer(&held.envelope, CHAIN_BIT | reach, peer, expires));
                    } else if held.offered.insert(peer.sign) {
                        out.push(offer(&held.envelope, CHAIN_BIT | 1, peer, expires));
                    }
                }
            } else if carries && copies > 1 {
                let give = copies / 2;
                let mut copy = held.envelope.clone();
                copy.set_copies(give);
                held.envelope.set_copies(copies - give);
                held.peers.insert(peer.sign);
                out.push(whole(CARRY, &copy, peer.sign));
            } else if drive {
                held.peers.insert(peer.sign);
                out.push(hand_on(&held.envelope, peer.sign, false));
            } else if held.offered.insert(peer.sign) {
                out.push(offer(&held.envelope, 1, peer, expires));
            }
        }
        for _ in 0..loans {
            self.note_loan(peer.sign, false, now);
        }
        batch_handouts(out)
    }

    /// Takes in `message`, a pool message from contact `from` whose body
    /// opened to `body`: what every device (the node and the simulator's)
    /// does with one, and what it asks of the device next.
    pub fn take(
        &mut self,
        me: &Identity,
        from: &PublicIdentity,
        message: &Message,
        body: &[u8],
        now: Time,
    ) -> Result<Taken, CarryError> {
        let kind = message.kind();
        if message.author() == me.public().sign || !is_pool_kind(kind) {
            return Ok(Taken::Nothing);
        }
        if kind == Kind::CARRYING {
            let on = decode_carrying(body)?;
            self.set_carrier(&from.sign, on, message.time());
            Ok(Taken::Carrier)
        } else if kind == Kind::REQUEST {
            let names = items(body, 16, "a request is 1 to 64 names of 16 bytes")?;
            let mut out = Vec::new();
            for name in names {
                out.extend(self.receive_request(from, name, now)?);
            }
            Ok(Taken::Write(batch_handouts(out)))
        } else if kind == Kind::ACK {
            let expires = message.expires().unwrap_or(now.saturating_add(1));
            let tokens = items(body, 16, "an acknowledgement is 1 to 64 tokens of 16 bytes")?;
            let mut out = Vec::new();
            let mut delivered = Vec::new();
            for token in tokens {
                out.extend(self.acknowledged(from, token, expires, now, &mut delivered)?);
            }
            Ok(Taken::Acknowledged {
                out: batch_handouts(out),
                delivered,
            })
        } else if body.first() == Some(&OFFER) && body.len() > 1 + OFFERED_LEN {
            self.take_offers(me, from, &body[1..], now)
                .map(Taken::Write)
        } else {
            Ok(match self.receive_envelope(me, from, body, now)? {
                Arrival::Opened {
                    message,
                    token,
                    expires,
                } => Taken::Opened {
                    message,
                    token,
                    expires,
                },
                Arrival::Wanted { request } => Taken::Write(vec![request]),
                Arrival::Held { evicted } => Taken::Held { evicted },
                // Its acknowledgement goes back, so the holder stops.
                Arrival::Delivered => match self.ack_for(from, body) {
                    Some(ack) => Taken::Write(vec![ack]),
                    None => Taken::Nothing,
                },
                Arrival::NotForUs | Arrival::Known => Taken::Nothing,
            })
        }
    }

    /// Several headers offered in one pool message by contact `from`:
    /// what one offer of each would ask, batched. All of them are checked
    /// before any is taken in; one that has expired meanwhile (a batch
    /// lasts as long as its last item) is passed over.
    fn take_offers(
        &mut self,
        me: &Identity,
        from: &PublicIdentity,
        headers: &[u8],
        now: Time,
    ) -> Result<Vec<Handout>, CarryError> {
        let headers = items(
            headers,
            OFFERED_LEN,
            "an offer is 1 to 64 envelope headers, each with its name",
        )?;
        if headers.clone().any(|h| h[0] != 1) {
            return Err(CarryError::Malformed("not an envelope header"));
        }
        let mut out = Vec::new();
        let mut one = Vec::with_capacity(1 + OFFERED_LEN);
        for header in headers {
            one.clear();
            one.push(OFFER);
            one.extend_from_slice(header);
            match self.receive_envelope(me, from, &one, now) {
                Ok(Arrival::Wanted { request }) => out.push(request),
                Ok(Arrival::Delivered) => out.extend(self.ack_for(from, &one)),
                Ok(_) | Err(CarryError::Expired { .. } | CarryError::TooLong { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(batch_handouts(out))
    }

    /// A [`Kind::REQUEST`] body from contact `from`: the rest of an
    /// envelope offered to them, for delivery only, once.
    pub fn receive_request(
        &mut self,
        from: &PublicIdentity,
        body: &[u8],
        now: Time,
    ) -> Result<Vec<Handout>, CarryError> {
        let name: [u8; 16] = body
            .try_into()
            .map_err(|_| CarryError::Malformed("a request is 16 bytes"))?;
        // An own message's chain envelope, offered by its sender: taken on
        // as sealed (one link fewer than the sender's reach).
        let own = self
            .own
            .values_mut()
            .find(|o| o.chain.as_ref().is_some_and(|e| e.name() == name));
        if let Some(own) = own {
            let envelope = own.chain.as_ref().expect("found by it");
            if envelope.expires() <= now || !own.offered.remove(&from.sign) {
                return Ok(Vec::new());
            }
            own.peers.insert(from.sign);
            own.loaned.insert(from.sign);
            let handout = whole(CARRY, envelope, from.sign);
            self.note_loan(from.sign, false, now);
            return Ok(vec![handout]);
        }
        let Some(held) = self.held_named(&name).and_then(|id| self.held.get_mut(&id)) else {
            return Ok(Vec::new());
        };
        let expires = held.envelope.expires();
        if expires <= now || !held.offered.contains(&from.sign) || !held.peers.insert(from.sign) {
            return Ok(Vec::new());
        }
        // Along chains the asker may be a carrier it was lent to: it takes
        // the envelope on for one link fewer (and a recipient opens it all
        // the same). Offered for delivery only (or lent before a restart,
        // which forgets whom), it comes for delivery only.
        let lent = held.lent.remove(&from.sign);
        let handout = hand_on(&held.envelope, from.sign, lent);
        if handout.body[0] == CARRY {
            held.loaned.insert(from.sign);
            self.note_loan(from.sign, false, now);
        }
        Ok(vec![handout])
    }

    /// A [`Kind::ENVELOPE`] body from contact `from` (in their pool).
    pub fn receive_envelope(
        &mut self,
        me: &Identity,
        from: &PublicIdentity,
        body: &[u8],
        now: Time,
    ) -> Result<Arrival, CarryError> {
        let (&mode, bytes) = body
            .split_first()
            .ok_or(CarryError::Malformed("an empty envelope message"))?;
        if mode == OFFER {
            if bytes.len() != OFFERED_LEN || bytes[0] != 1 {
                return Err(CarryError::Malformed("not an envelope header"));
            }
            let (bytes, name) = bytes.split_at(ENVELOPE_HEADER_LEN);
            let name: [u8; 16] = name.try_into().expect("a name's length");
            let hour = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
            let expires = u64::from(hour) * 3_600_000;
            lasting(expires, now)?;
            let hash = Envelope::header_ack_hash(bytes).expect("a header's length");
            if self.acked.contains_key(&hash) {
                return Ok(Arrival::Delivered);
            }
            // The offerer holds a copy of an envelope this device holds or
            // sealed: it gets no other copy of that message from here. (By
            // name: one with the same header, or acknowledgement hash, may
            // be anyone's sealed part under a header they saw.)
            if let Some(held) = self.held_named(&name).and_then(|id| self.held.get_mut(&id)) {
                held.peers.insert(from.sign);
                return Ok(Arrival::Known);
            }
            if let Some(own) = self.own_by_ack(&hash).and_then(|id| self.own.get_mut(&id)) {
                own.peers.insert(from.sign);
                return Ok(Arrival::Known);
            }
            // Along chains a carrier asks for what may still cross two
            // links; the recipient asks for what is its own.
            let carry_on = self.config.carry && reach_of(bytes[5]).is_some_and(|r| r >= 2);
            if !carry_on && !Envelope::recognises(bytes, me) {
                return Ok(Arrival::NotForUs);
            }
            return Ok(Arrival::Wanted {
                request: Handout {
                    to: from.sign,
                    kind: Kind::REQUEST,
                    body: name.to_vec(),
                    expires,
                },
            });
        }
        if mode != CARRY && mode != DELIVER {
            return Err(CarryError::Malformed("an unknown handing mode"));
        }
        let mut envelope = Envelope::decode(bytes.to_vec())?;
        if let Some(reach) = reach_of(envelope.copies()) {
            envelope.set_copies(CHAIN_BIT | reach);
        }
        let expires = envelope.expires();
        lasting(expires, now)?;
        if self.acked.contains_key(&envelope.ack_hash()) {
            return Ok(Arrival::Delivered);
        }
        if let Some((message, token)) = envelope.open(me) {
            if !self.waiting.contains_key(&envelope.ack_hash()) {
                self.stats.opened += 1;
            }
            return Ok(Arrival::Opened {
                message,
                token,
                expires,
            });
        }
        // Sealed to this device but it does not open: a copy someone
        // altered, of no use to carry on.
        if Envelope::recognises(envelope.header(), me) {
            return Ok(Arrival::NotForUs);
        }
        let id = envelope.id();
        if let Some(held) = self.held.get_mut(&id) {
            held.peers.insert(from.sign);
            return Ok(Arrival::Known);
        }
        // One this device sealed, come back: the giver holds it.
        if let Some(own) = self
            .own_by_ack(&envelope.ack_hash())
            .and_then(|id| self.own.get_mut(&id))
        {
            own.peers.insert(from.sign);
            return Ok(Arrival::Known);
        }
        if mode == DELIVER || !self.config.carry {
            return Ok(Arrival::NotForUs);
        }
        let size = envelope.as_bytes().len();
        if size as u64 > self.config.budget {
            return Err(CarryError::OverBudget(size));
        }
        let mut evicted = 0;
        while self.used + size as u64 > self.config.budget {
            let &(_, oldest) = self
                .by_arrival
                .first()
                .expect("held bytes mean a held envelope");
            self.remove(&oldest);
            self.stats.evicted += 1;
            evicted += 1;
        }
        self.seq += 1;
        self.hold(
            id,
            Held {
                envelope,
                arrived: (now, self.seq),
                peers: BTreeSet::from([from.sign]),
                offered: BTreeSet::new(),
                lent: BTreeSet::new(),
                loaned: BTreeSet::new(),
            },
        );
        self.stats.held += 1;
        Ok(Arrival::Held { evicted })
    }

    /// The acknowledgement of the envelope (or header) in pool message
    /// body `body`, for contact `from` who offered or handed it, if this
    /// device has its token.
    fn ack_for(&self, from: &PublicIdentity, body: &[u8]) -> Option<Handout> {
        let header = body.get(1..1 + ENVELOPE_HEADER_LEN)?;
        let hash = Envelope::header_ack_hash(header)?;
        let (expires, token) = self.acked.get(&hash)?;
        Some(ack(from.sign, &AckToken((*token)?), *expires))
    }

    /// The held envelope whose name ([`Envelope::name`]) is `name`.
    fn held_named(&self, name: &[u8; 16]) -> Option<[u8; 32]> {
        let mut lo = [0u8; 32];
        lo[..16].copy_from_slice(name);
        let mut hi = [0xffu8; 32];
        hi[..16].copy_from_slice(name);
        self.held.range(lo..=hi).next().map(|(id, _)| *id)
    }

    /// The held envelopes with acknowledgement hash `hash`.
    fn held_with_ack(&self, hash: &[u8; 16]) -> Vec<[u8; 32]> {
        self.by_ack
            .range((*hash, [0u8; 32])..=(*hash, [0xffu8; 32]))
            .map(|(_, id)| *id)
            .collect()
    }

    /// The own message one of whose envelopes has acknowledgement hash
    /// `hash`.
    fn own_by_ack(&self, hash: &[u8; 16]) -> Option<MessageId> {
        // The smallest id among them, as a scan of `own` in order found.
        self.own_acks
            .range((*hash, MessageId([0; 32]))..=(*hash, MessageId([0xff; 32])))
            .next()
            .map(|(_, id)| *id)
    }

    /// Whether contact `peer`'s record says to lend it a chain envelope now.
    fn worth_lending(&self, peer: &AuthorId, now: Time) -> bool {
        !self.config.learn
            || self
                .records
                .get(peer)
                .is_none_or(|r| r.at(now).worth_lending())
    }

    /// A chain envelope was lent to `peer` (`delivered` false), or one lent
    /// to it came back acknowledged through it (true).
    fn note_loan(&mut self, peer: AuthorId, delivered: bool, now: Time) {
        if !self.config.learn {
            return;
        }
        if !self.records.contains_key(&peer) && self.records.len() >= crate::limits::MAX_CONTACTS {
            // Only contacts are lent to; past that many, the stalest goes.
            if let Some(old) = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.at)
                .map(|(p, _)| *p)
            {
                self.records.remove(&old);
            }
        }
        let r = self.records.entry(peer).or_default();
        *r = r.at(now);
        if delivered {
            r.delivered += 1.0;
        } else {
            r.lent += 1.0;
        }
    }

    /// Contact `peer` is met at `now` (a call of `hand` for it).
    fn note_meeting(&mut self, peer: AuthorId, now: Time) {
        if !self.met.contains_key(&peer) && self.met.len() >= crate::limits::MAX_CONTACTS {
            // Only contacts are met; past that many, the stalest goes.
            if let Some(old) = self.met.iter().min_by_key(|(_, m)| m.last).map(|(p, _)| *p) {
                self.met.remove(&old);
            }
        }
        self.met
            .entry(peer)
            .or_insert(Meetings {
                last: now,
                gap: None,
            })
            .seen(now);
    }

    /// Holds `held` under `id` (its envelope's id) and indexes it: with
    /// [`Carrier::remove`], the only way into or out of `held`. One held
    /// under `id` already is replaced (callers check first).
    fn hold(&mut self, id: [u8; 32], held: Held) {
        self.remove(&id);
        self.used += held.envelope.as_bytes().len() as u64;
        self.by_ack.insert((held.envelope.ack_hash(), id));
        self.by_arrival.insert((held.arrived, id));
        self.held.insert(id, held);
    }

    /// Stops holding the envelope `id`, and forgets it in the indexes.
    fn remove(&mut self, id: &[u8; 32]) -> Option<Held> {
        let held = self.held.remove(id)?;
        self.used -= held.envelope.as_bytes().len() as u64;
        self.by_ack.remove(&(held.envelope.ack_hash(), *id));
        self.by_arrival.remove(&(held.arrived, *id));
        Some(held)
    }

    /// Keeps own message `own` (its id `id`) to spread, and indexes it:
    /// with [`Carrier::drop_own`] and [`add_own_ack`], the only way `own`
    /// changes. One kept under `id` already is replaced (callers check
    /// first).
    fn keep_own(&mut self, id: MessageId, own: Own) {
        self.drop_own(&id);
        self.own_bytes += own.message.as_bytes().len();
        self.own_acks
            .extend(own.acks.iter().map(|hash| (*hash, id)));
        self.own.insert(id, own);
    }

    /// Stops keeping own message `id`, and forgets it in the indexes.
    fn drop_own(&mut self, id: &MessageId) -> Option<Own> {
        let own = self.own.remove(id)?;
        self.own_bytes -= own.message.as_bytes().len();
        for hash in &own.acks {
            self.own_acks.remove(&(*hash, *id));
        }
        Some(own)
    }

    fn remember_ack(&mut self, token: &AckToken, expires: Time) {
        self.remember(token.hash(), expires, Some(token.0));
    }

    fn remember(&mut self, hash: [u8; 16], expires: Time, token: Option<[u8; 16]>) {
        if let Some(known) = self.acked.get_mut(&hash) {
            // A token learnt is never forgotten for not being known here.
            *known = (expires, token.or(known.1));
            return;
        }
        make_room(&mut self.acked, MAX_ACKS, |(e, _)| *e);
        self.acked.insert(hash, (expires, token));
    }

    /// The recipient took in an opened envelope's message: the
    /// [`Kind::ACK`] body to put in the pool of the contact that brought
    /// it. A replay of the envelope is refused from now on. Call it only
    /// for a message a contact wrote: acknowledging anything else would
    /// tell a stranger who holds the key it was sealed to.
    pub fn acknowledge(&mut self, token: &AckToken, expires: Time) -> Vec<u8> {
        self.stats.accepted += 1;
        self.waiting.remove(&token.hash());
        self.remember_ack(token, expires);
        token.0.to_vec()
    }

    /// An envelope that opened for this device ([`Taken::Opened`], with
    /// its `token` and `expires`) came from contact `from`, and the device
    /// did `fate` with its message: the acknowledgement to write into the
    /// pool shared with `from` if it was taken ([`Carrier::acknowledge`]),
    /// or nothing ([`Carrier::take_later`] if it waits; nothing changes
    /// if it was refused). The node and the simulator settle every opened
    /// envelope here, once its message is stored.
    pub fn settle_opened(
        &mut self,
        from: &PublicIdentity,
        token: &AckToken,
        expires: Time,
        fate: OpenedFate,
    ) -> Option<Handout> {
        match fate {
            OpenedFate::Taken => {
                let body = self.acknowledge(token, expires);
                Some(Handout {
                    to: from.sign,
                    kind: Kind::ACK,
                    body,
                    expires,
                })
            }
            OpenedFate::Later => {
                self.take_later(token, expires);
                None
            }
            OpenedFate::Refused => None,
        }
    }

    /// The device could not take in the message of an opened envelope
    /// (`token`, expiring at `expires`) yet (its author's budget here is
    /// full, say): it keeps the envelope, to open it again later, when it
    /// is not counted opened again.
    pub fn take_later(&mut self, token: &AckToken, expires: Time) {
        if !self.waiting.contains_key(&token.hash()) {
            make_room(&mut self.waiting, MAX_ACKS, |e| *e);
        }
        self.waiting.insert(token.hash(), expires);
    }

    /// A [`Kind::ACK`] body from contact `from`, in a message expiring at
    /// `expires`: the envelope it proves delivered is deleted, and the
    /// acknowledgement goes on to every other contact that envelope came
    /// from or went to.
    pub fn receive_ack(
        &mut self,
        from: &PublicIdentity,
        body: &[u8],
        expires: Time,
        now: Time,
    ) -> Result<Vec<Handout>, CarryError> {
        self.acknowledged(from, body, expires, now, &mut Vec::new())
    }

    /// [`Carrier::receive_ack`], adding to `delivered` the group and key
    /// of the own message it proves delivered, if any.
    fn acknowledged(
        &mut self,
        from: &PublicIdentity,
        body: &[u8],
        expires: Time,
        now: Time,
        delivered: &mut Vec<(GroupId, Key)>,
    ) -> Result<Vec<Handout>, CarryError> {
        let token = AckToken(
            body.try_into()
                .map_err(|_| CarryError::Malformed("an acknowledgement is 16 bytes"))?,
        );
        if expires <= now {
            return Err(CarryError::Expired { expires, now });
        }
        let hash = token.hash();
        if self.acked.contains_key(&hash) {
            return Ok(Vec::new());
        }
        // Only an acknowledgement of something held or spreading here is
        // remembered (a contact cannot flood the list), until at most the
        // longest an envelope lasts.
        let own = self.own_by_ack(&hash);
        let held = self.held_with_ack(&hash);
        if own.is_none() && held.is_empty() {
            return Ok(Vec::new());
        }
        let expires = expires.min(now.saturating_add(self.lifetime()));
        self.remember_ack(&token, expires);
        // A chain envelope lent to `from` came back delivered through it.
        let loan = match own.and_then(|id| self.own.get(&id)) {
            Some(o) => o.loaned.contains(&from.sign),
            None => held
                .iter()
                .filter_map(|id| self.held.get(id))
                .any(|h| h.loaned.contains(&from.sign)),
        };
        if loan {
            self.note_loan(from.sign, true, now);
        }
        let mut tell = BTreeSet::new();
        for id in held {
            let held = self.remove(&id).expect("indexed");
            self.stats.acknowledged += 1;
            tell.extend(held.peers.into_iter().filter(|p| *p != from.sign));
        }
        let out = tell
            .into_iter()
            .map(|peer| ack(peer, &token, expires))
            .collect();
        if let Some(o) = own.and_then(|id| self.own.get_mut(&id)) {
            delivered.push((o.message.group(), o.message.key()));
            // Its chain envelope's token, if this run did not seal it:
            // kept, so that the carriers it went to are told.
            if o.chain.as_ref().is_some_and(|e| e.ack_hash() == hash) {
                o.chain_token.get_or_insert(token);
            }
        }
        if let Some(id) = own {
            self.delivered(&id);
        }
        Ok(out)
    }

    /// Starts a carrying step at `now`: what expired by `now` goes first
    /// ([`Carrier::expire`]), so that nothing expired is taken in
    /// against, handed on, counted or saved during the step (an own
    /// message past its timer included). Every step a device takes with
    /// its carrier (taking in pool messages, a hand-out, a text written)
    /// starts here, the node's and the simulator's alike; returns the
    /// carrier, to go on with.
    pub fn step(&mut self, now: Time) -> &mut Carrier {
        self.expire(now);
        self
    }

    /// Forgets everything expired by `now` (at the start of a step, see
    /// [`Carrier::step`]).
    pub fn expire(&mut self, now: Time) {
        let gone: Vec<[u8; 32]> = self
            .held
            .iter()
            // And what a version without the ceiling took in.
            .filter(|(_, h)| h.envelope.expires() <= now || too_long(h.envelope.expires(), now))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove(&id);
        }
        let done: Vec<MessageId> = self
            .own
            .iter()
            .filter(|(_, o)| o.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.delivered(&id);
        }
        self.acked.retain(|_, (e, _)| *e > now);
        self.retired.retain(|_, r| r.expires > now);
        self.waiting.retain(|_, e| *e > now);
    }
}

/// A state with every envelope and message in it, acknowledgement tokens,
/// own chain envelopes, and six counts.
const STATE_VERSION: u8 = 5;
/// A state that names its envelopes and messages by [`PartKey`], with
/// acknowledgement tokens, own chain envelopes, and six counts.
const STATE_VERSION_PARTS: u8 = 6;
/// The versions before chains (no tokens, no own chain envelopes): read,
/// never written.
const STATE_VERSION_SPRAY: u8 = 3;
const STATE_VERSION_PARTS_SPRAY: u8 = 4;
/// The first two versions of each: five counts (no
/// [`CarryStats::accepted`]). Read, never written.
const STATE_VERSION_FIVE: u8 = 1;
const STATE_VERSION_PARTS_FIVE: u8 = 2;

/// The key of a large part of a carrying state kept apart from it
/// ([`Carrier::encode_state`]): `b'e'` and a held envelope's id, `b'm'`
/// and an own message's id, or `b'c'` and the id of the envelope sealed
/// from an own message that spreads along chains. A part never changes under its key (an
/// envelope's copy count is kept in the state), so a device stores each
/// once and rewrites only the small state at each step.
pub type PartKey = [u8; 33];

fn part_key(tag: u8, id: &[u8; 32]) -> PartKey {
    let mut k = [0u8; 33];
    k[0] = tag;
    k[1..].copy_from_slice(id);
    k
}

/// Most entries of any one list in a saved state: far above what budgets
/// allow, so a damaged length cannot make the decoder allocate much.
const MAX_SAVED: usize = 1 << 20;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CarryError> {
        if self.0.len() < n {
            return Err(CarryError::Malformed("a carrying state cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CarryError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, CarryError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, CarryError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], CarryError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    fn count(&mut self) -> Result<usize, CarryError> {
        let n = self.u32()? as usize;
        if n > MAX_SAVED {
            return Err(CarryError::Malformed("a carrying state list too long"));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, CarryError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    /// What [`put_envelope`] wrote: `None` when its part is missing (an
    /// envelope not kept: like one evicted); a part that is not what its
    /// key says is damage, and refused.
    fn envelope(
        &mut self,
        tag: u8,
        parts: bool,
        part: &mut impl FnMut(&PartKey) -> Option<Vec<u8>>,
    ) -> Result<Option<Envelope>, CarryError> {
        if !parts {
            return Ok(Some(Envelope::decode(self.bytes()?)?));
        }
        let key = self.arr::<33>()?;
        let copies = self.u8()?;
        if copies == 0 {
            return Err(CarryError::Malformed("a carried envelope with no copies"));
        }
        let Some(bytes) = part(&key) else {
            return Ok(None);
        };
        let mut e = Envelope::decode(bytes)?;
        if key != part_key(tag, &e.id()) {
            return Err(CarryError::Malformed("a carried envelope is not its own"));
        }
        e.set_copies(copies);
        Ok(Some(e))
    }

    fn keys(&mut self) -> Result<BTreeSet<AuthorId>, CarryError> {
        (0..self.count()?).map(|_| self.arr::<32>()).collect()
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// An envelope in a saved state: whole, or (in parts) the key of its part
/// under `tag` and its copy byte (the part never changes under its key).
fn put_envelope(out: &mut Vec<u8>, envelope: &Envelope, tag: u8, parts: bool) {
    if parts {
        out.extend_from_slice(&part_key(tag, &envelope.id()));
        out.push(envelope.copies());
    } else {
        put_bytes(out, envelope.as_bytes());
    }
}

fn put_keys(out: &mut Vec<u8>, keys: &BTreeSet<AuthorId>) {
    out.extend_from_slice(&(keys.len() as u32).to_be_bytes());
    for k in keys {
        out.extend_from_slice(k);
    }
}

impl Carrier {
    /// Everything held, as bytes to keep (sealed) between runs; the
    /// configuration is not included.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(false)
    }

    /// The state without its envelopes and messages, which it names by
    /// key: keep it with [`Carrier::parts`], and read it back with
    /// [`Carrier::decode_state`]. Its size grows with the number of
    /// envelopes, not their bytes.
    pub fn encode_state(&self) -> Vec<u8> {
        self.encode_as(true)
    }

    /// The parts [`Carrier::encode_state`] names: every held envelope and
    /// every own message still spreading, by key.
    pub fn parts(&self) -> impl Iterator<Item = (PartKey, &[u8])> {
        let envelopes = self
            .held
            .values()
            .map(|h| (part_key(b'e', &h.envelope.id()), h.envelope.as_bytes()));
        let messages = self
            .own
            .iter()
            .map(|(id, o)| (part_key(b'm', &id.0), o.message.as_bytes()));
        let chains = self
            .own
            .values()
            .filter_map(|o| o.chain.as_ref())
            .map(|e| (part_key(b'c', &e.id()), e.as_bytes()));
        envelopes.chain(messages).chain(chains)
    }

    fn encode_as(&self, parts: bool) -> Vec<u8> {
        self.encode_version(parts, true)
    }

    /// The state as this version writes it, or (`chains` false: for tests
    /// of reading old states) as the version before chains did.
    fn encode_version(&self, parts: bool, chains: bool) -> Vec<u8> {
        let mut out = vec![match (parts, chains) {
            (true, true) => STATE_VERSION_PARTS,
            (false, true) => STATE_VERSION,
            (true, false) => STATE_VERSION_PARTS_SPRAY,
            (false, false) => STATE_VERSION_SPRAY,
        }];
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&(self.carriers.len() as u32).to_be_bytes());
        for (k, (t, on)) in &self.carriers {
            out.extend_from_slice(k);
            out.extend_from_slice(&t.to_be_bytes());
            out.push(u8::from(*on));
        }
        out.extend_from_slice(&(self.acked.len() as u32).to_be_bytes());
        for (h, (e, token)) in &self.acked {
            out.extend_from_slice(h);
            out.extend_from_slice(&e.to_be_bytes());
            match token {
                _ if !chains => {}
                Some(t) => {
                    out.push(1);
                    out.extend_from_slice(t);
                }
                None => out.push(0),
            }
        }
        out.extend_from_slice(&(self.held.len() as u32).to_be_bytes());
        for h in self.held.values() {
            out.extend_from_slice(&h.arrived.0.to_be_bytes());
            out.extend_from_slice(&h.arrived.1.to_be_bytes());
            put_envelope(&mut out, &h.envelope, b'e', parts);
            put_keys(&mut out, &h.peers);
            put_keys(&mut out, &h.offered);
        }
        out.extend_from_slice(&(self.own_order.len() as u32).to_be_bytes());
        for (order, id) in &self.own_order {
            let o = &self.own[id];
            out.extend_from_slice(&order.0.to_be_bytes());
            out.extend_from_slice(&order.1.to_be_bytes());
            out.extend_from_slice(&o.recipient.sign);
            out.extend_from_slice(&o.recipient.dh);
            if parts {
                out.extend_from_slice(&part_key(b'm', &id.0));
            } else {
                put_bytes(&mut out, o.message.as_bytes());
            }
            out.extend_from_slice(&o.expires.to_be_bytes());
            out.push(o.copies);
            put_keys(&mut out, &o.peers);
            out.extend_from_slice(&(o.acks.len() as u32).to_be_bytes());
            for a in &o.acks {
                out.extend_from_slice(a);
            }
            match &o.chain {
                _ if !chains => {}
                None => out.push(0),
                Some(e) => {
                    out.push(1);
                    put_envelope(&mut out, e, b'c', parts);
                }
            }
        }
        let s = self.stats;
        for v in [
            s.held,
            s.evicted,
            s.acknowledged,
            s.sealed,
            s.opened,
            s.accepted,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// A carrier from [`Carrier::encode`]'s bytes, under `config`. What
    /// does not fit the budget now is evicted, oldest first.
    pub fn decode(bytes: &[u8], config: CarryConfig) -> Result<Carrier, CarryError> {
        Carrier::decode_state(bytes, config, |_| None)
    }

    /// Reads what [`Carrier::encode_state`] wrote, with `part` giving the
    /// bytes of each part it names (a part that is missing or is not what
    /// its key says makes the state malformed); also reads what
    /// [`Carrier::encode`] wrote.
    pub fn decode_state(
        bytes: &[u8],
        config: CarryConfig,
        mut part: impl FnMut(&PartKey) -> Option<Vec<u8>>,
    ) -> Result<Carrier, CarryError> {
        let mut r = Reader(bytes);
        let (parts, counts, chains) = match r.u8()? {
            STATE_VERSION => (false, 6, true),
            STATE_VERSION_PARTS => (true, 6, true),
            STATE_VERSION_SPRAY => (false, 6, false),
            STATE_VERSION_PARTS_SPRAY => (true, 6, false),
            STATE_VERSION_FIVE => (false, 5, false),
            STATE_VERSION_PARTS_FIVE => (true, 5, false),
            _ => return Err(CarryError::Malformed("an unknown carrying state version")),
        };
        let mut c = Carrier::new(config);
        c.seq = r.u64()?;
        for _ in 0..r.count()? {
            let k = r.arr::<32>()?;
            let t = r.u64()?;
            let on = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(CarryError::Malformed("a carrier flag")),
            };
            if c.carriers.insert(k, (t, on)).is_some() {
                return Err(CarryError::Malformed("a carrier listed twice"));
            }
        }
        let acks = r.count()?;
        if acks > MAX_ACKS {
            return Err(CarryError::Malformed("too many acknowledgements"));
        }
        for _ in 0..acks {
            let h = r.arr::<16>()?;
            let e = r.u64()?;
            let token = match (chains, chains.then(|| r.u8()).transpose()?) {
                (true, Some(1)) => {
                    let t = r.arr::<16>()?;
                    if AckToken(t).hash() != h {
                        return Err(CarryError::Malformed(
                            "an acknowledgement token is not its own",
                        ));
                    }
                    Some(t)
                }
                (true, Some(0)) | (false, _) => None,
                _ => return Err(CarryError::Malformed("an acknowledgement token flag")),
            };
            if c.acked.insert(h, (e, token)).is_some() {
                return Err(CarryError::Malformed("an acknowledgement listed twice"));
            }
        }
        let mut held = Vec::new();
        for _ in 0..r.count()? {
            let arrived = (r.u64()?, r.u64()?);
            // A part that is missing drops its envelope only (as eviction
            // would: its sender still holds the message); one that is not
            // what its key says is damage, and refused.
            let envelope = r.envelope(b'e', parts, &mut part)?;
            let peers = r.keys()?;
            let offered = r.keys()?;
            let Some(envelope) = envelope else {
                continue;
            };
            held.push(Held {
                envelope,
                arrived,
                peers,
                offered,
                lent: BTreeSet::new(),
                loaned: BTreeSet::new(),
            });
        }
        for _ in 0..r.count()? {
            let order = (r.u64()?, r.u64()?);
            let recipient = PublicIdentity {
                sign: r.arr()?,
                dh: r.arr()?,
            };
            // A missing part stops that message spreading only (it still
            // goes directly).
            let message = if parts {
                let key = r.arr::<33>()?;
                match part(&key) {
                    Some(bytes) => {
                        let m = Message::decode(bytes)
                            .map_err(|_| CarryError::Malformed("a carried message"))?;
                        if key != part_key(b'm', &m.id().0) {
                            return Err(CarryError::Malformed(
                                "a spreading message is not its own",
                            ));
                        }
                        Some(m)
                    }
                    None => None,
                }
            } else {
                Some(
                    Message::decode(r.bytes()?)
                        .map_err(|_| CarryError::Malformed("a carried message"))?,
                )
            };
            let expires = r.u64()?;
            let copies = r.u8()?;
            let peers = r.keys()?;
            let acks = (0..r.count()?)
                .map(|_| r.arr::<16>())
                .collect::<Result<Vec<_>, _>>()?;
            // Its chain envelope; a missing part, like a missing message,
            // stops it spreading.
            let mut lost = false;
            let chain = match chains.then(|| r.u8()).transpose()? {
                None | Some(0) => None,
                Some(1) => {
                    let e = r.envelope(b'c', parts, &mut part)?;
                    lost = e.is_none();
                    e
                }
                Some(_) => return Err(CarryError::Malformed("a chain envelope flag")),
            };
            if chain
                .as_ref()
                .is_some_and(|e| !acks.contains(&e.ack_hash()))
            {
                return Err(CarryError::Malformed("a chain envelope not among its own"));
            }
            let Some(message) = message.filter(|_| !lost) else {
                continue;
            };
            if c.own.contains_key(&message.id())
                || c.own_order.insert(order, message.id()).is_some()
                || c.own.len() >= MAX_OWN
            {
                return Err(CarryError::Malformed("an own message listed twice"));
            }
            c.keep_own(
                message.id(),
                Own {
                    recipient,
                    message,
                    expires,
                    copies,
                    chain,
                    chain_token: None,
                    offered: BTreeSet::new(),
                    peers,
                    loaned: BTreeSet::new(),
                    acks,
                },
            );
        }
        let mut stats = [0u64; 6];
        for v in &mut stats[..counts] {
            *v = r.u64()?;
        }
        if !r.0.is_empty() {
            return Err(CarryError::Malformed("bytes after a carrying state"));
        }
        c.stats = CarryStats {
            held: stats[0],
            evicted: stats[1],
            acknowledged: stats[2],
            sealed: stats[3],
            opened: stats[4],
            accepted: stats[5],
        };
        // Newest first, while they fit.
        held.sort_by_key(|h| std::cmp::Reverse(h.arrived));
        for h in held {
            let size = h.envelope.as_bytes().len() as u64;
            if c.used + size > c.config.budget || c.held.contains_key(&h.envelope.id()) {
                continue;
            }
            c.hold(h.envelope.id(), h);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const NOW: Time = 1_700_000_000_000;
    const HOUR: Time = 3_600_000;

    struct Person {
        id: Identity,
        carrier: Carrier,
    }

    fn person(name: &str, rng: &mut ChaCha20Rng, config: CarryConfig) -> Person {
        Person {
            id: Identity::generate(name, rng).unwrap(),
            carrier: Carrier::new(config),
        }
    }

    fn text(from: &Person, to: &Person, body: &[u8], rng: &mut ChaCha20Rng) -> Message {
        let c = from.id.contact(&to.id.public()).unwrap();
        Message::create(&from.id, c.direct_group(), NOW, Kind::TEXT, body, rng).unwrap()
    }

    /// Spray and wait with the node's copies (the default before chains).
    fn spray() -> CarryConfig {
        CarryConfig {
            spread: Spread::SprayAndWait,
            ..CarryConfig::default()
        }
    }

    fn copies_of(h: &Handout) -> u8 {
        Envelope::decode(h.body[1..].to_vec()).unwrap().copies()
    }

    impl Carrier {
        /// Asserts that every index is what building it afresh from what
        /// it indexes gives, and that it finds what a scan finds.
        fn check_index(&self) {
            let by_arrival: BTreeSet<_> =
                self.held.iter().map(|(id, h)| (h.arrived, *id)).collect();
            assert_eq!(self.by_arrival, by_arrival, "the arrival index");
            // The one evicted next: the first of the smallest `arrived`
            // in id order, as the scan before the index chose.
            assert_eq!(
                self.by_arrival.first().map(|(_, id)| *id),
                self.held
                    .iter()
                    .min_by_key(|(_, h)| h.arrived)
                    .map(|(id, _)| *id)
            );
            let by_ack: BTreeSet<_> = self
                .held
                .iter()
                .map(|(id, h)| (h.envelope.ack_hash(), *id))
                .collect();
            assert_eq!(self.by_ack, by_ack, "the acknowledgement index");
            let used: u64 = self
                .held
                .values()
                .map(|h| h.envelope.as_bytes().len() as u64)
                .sum();
            assert_eq!(self.used, used, "the bytes held");
            let own_acks: BTreeSet<_> = self
                .own
                .iter()
                .flat_map(|(id, o)| o.acks.iter().map(move |hash| (*hash, *id)))
                .collect();
            assert_eq!(self.own_acks, own_acks, "the own acknowledgement index");
            for (hash, _) in &self.own_acks {
                let scan = self
                    .own
                    .iter()
                    .find(|(_, o)| o.acks.contains(hash))
                    .map(|(id, _)| *id);
                assert_eq!(self.own_by_ack(hash), scan);
            }
            let own_bytes: usize = self.own.values().map(|o| o.message.as_bytes().len()).sum();
            assert_eq!(self.own_bytes, own_bytes, "the own bytes");
        }
    }

    /// `from`'s pool message to `to` for handout `h`, and its body.
    fn pool_message(from: &Person, to: &Person, h: &Handout, rng: &mut ChaCha20Rng) -> Message {
        let pool = from.id.contact(&to.id.public()).unwrap().pool;
        Message::create(&from.id, &pool, NOW, h.kind, &h.body, rng).unwrap()
    }

    /// Forgetting a contact stops this device's messages to them, and
    /// only theirs: a carrier is handed the other contact's alone, and
    /// the one forgotten is no carrier any more.
    #[test]
    fn a_contact_forgotten_is_written_to_no_more() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let cfg = spray();
        let mut a = person("a", &mut rng, cfg);
        let (b, c) = (person("b", &mut rng, cfg), person("c", &mut rng, cfg));
        let d = person("d", &mut rng, cfg);
        let (bp, dp) = (b.id.public(), d.id.public());
        for (to, body) in [(&b, &b"to b"[..]), (&b, b"again"), (&c, b"to c")] {
            assert!(a
                .carrier
                .originate(&to.id.public(), text(&a, to, body, &mut rng), NOW));
        }
        a.carrier.set_carrier(&bp.sign, true, NOW);
        a.carrier.set_carrier(&dp.sign, true, NOW);
        assert_eq!(a.carrier.spreading(), 3);
        assert_eq!(a.carrier.forget(&bp), 2);
        assert_eq!(a.carrier.spreading(), 1);
        assert!(!a.carrier.is_carrier(&bp.sign));
        assert_eq!(a.carrier.forget(&bp), 0, "once");
        let handed = a.carrier.hand(&dp, NOW + 10 * HOUR, &mut rng);
        let envelopes: Vec<_> = handed.iter().filter(|h| h.kind == Kind::ENVELOPE).collect();
        assert_eq!(envelopes.len(), 1, "{handed:?}");
        // Saved and read back, it stays forgotten.
        let back = Carrier::decode(&a.carrier.encode(), cfg).unwrap();
        assert_eq!(back.spreading(), 1);
    }

    /// An envelope of a text to a contact since forgotten, handed back by
    /// a carrier that took it, is not taken on by its sender (who
    /// carries): it would spread from there again. Before, with its own
    /// message gone, the sender no longer knew it.
    #[test]
    fn an_envelope_of_a_forgotten_text_handed_back_is_not_taken_on() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let cfg = CarryConfig {
            copies: 8,
            carry: true,
            ..spray()
        };
        let mut a = person("a", &mut rng, cfg);
        let b = person("b", &mut rng, cfg);
        let mut d = person("d", &mut rng, cfg);
        let mut e = person("e", &mut rng, cfg);
        let (ap, bp, dp, ep) = (a.id.public(), b.id.public(), d.id.public(), e.id.public());
        a.carrier
            .originate(&bp, text(&a, &b, b"the bridge is closed", &mut rng), NOW);
        a.carrier.set_carrier(&dp.sign, true, NOW);
        d.carrier.set_carrier(&ep.sign, true, NOW);
        e.carrier.set_carrier(&ap.sign, true, NOW);
        // A → D (4 of 8), D → E (2 of 4).
        let to_d = a.carrier.hand(&dp, NOW, &mut rng);
        d.carrier
            .receive_envelope(&d.id, &ap, &to_d[0].body, NOW)
            .unwrap();
        let to_e = d.carrier.hand(&ep, NOW, &mut rng);
        assert_eq!(copies_of(&to_e[0]), 2);
        e.carrier
            .receive_envelope(&e.id, &dp, &to_e[0].body, NOW)
            .unwrap();
        a.carrier.forget(&bp);
        // E hands A, a carrier it has not had it from, one of its two.
        let back = e.carrier.hand(&ap, NOW, &mut rng);
        assert_eq!(back.len(), 1);
        let arrival = a
            .carrier
            .receive_envelope(&a.id, &ep, &back[0].body, NOW)
            .unwrap();
        assert!(
            matches!(arrival, Arrival::Known | Arrival::Delivered),
            "{arrival:?}"
        );
        assert_eq!(a.carrier.held(), 0);
    }

    /// The rules the node and the simulator both follow for a pool
    /// message: a notice makes a carrier, an envelope is carried or
    /// opened, a request gets the rest, an acknowledgement goes on; one's
    /// own pool messages and other kinds are nothing; and only a text a
    /// contact wrote in the 1:1 group is taken out of an envelope.
    #[test]
    fn pool_messages_are_taken_by_one_rule() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let cfg = spray();
        let mut a = person("a", &mut rng, cfg);
        let mut b = person("b", &mut rng, cfg);
        let mut c = person("c", &mut rng, cfg);
        let (ap, bp) = (a.id.public(), b.id.public());
        // B says it carries: A takes B as a carrier.
        let notice = Handout {
            to: ap.sign,
            kind: Kind::CARRYING,
            body: encode_carrying(true),
            expires: NOW + HOUR,
        };
        let m = pool_message(&b, &a, &notice, &mut rng);
        assert!(matches!(
            a.carrier.take(&a.id, &bp, &m, &notice.body, NOW),
            Ok(Taken::Carrier)
        ));
        assert!(a.carrier.is_carrier(&bp.sign));
        // One's own pool message, and a kind no pool holds: nothing.
        assert!(matches!(
            b.carrier.take(&b.id, &ap, &m, &notice.body, NOW),
            Ok(Taken::Nothing)
        ));
        let other = Handout {
            kind: Kind::TEXT,
            ..notice.clone()
        };
        let m = pool_message(&b, &a, &other, &mut rng);
        assert!(matches!(
            a.carrier.take(&a.id, &bp, &m, &other.body, NOW),
            Ok(Taken::Nothing)
        ));
        // A's text to C spreads; B takes the envelope to carry.
        assert!(a
            .carrier
            .originate(&c.id.public(), text(&a, &c, b"hi", &mut rng), NOW));
        let given = a.carrier.hand(&bp, NOW, &mut rng);
        assert_eq!(given.len(), 1);
        let m = pool_message(&a, &b, &given[0], &mut rng);
        assert!(matches!(
            b.carrier.take(&b.id, &ap, &m, &given[0].body, NOW),
            Ok(Taken::Held { evicted: 0 })
        ));
        // B meets C: C opens what B hands it, and A is who wrote it.
        b.carrier.set_carrier(&c.id.public().sign, false, NOW);
        let handed = b.carrier.hand(&c.id.public(), NOW, &mut rng);
        assert!(!handed.is_empty());
        let mut opened = None;
        for h in &handed {
            let m = pool_message(&b, &c, h, &mut rng);
            match c.carrier.take(&c.id, &bp, &m, &h.body, NOW).unwrap() {
                Taken::Opened { message, .. } => opened = Some(message),
                Taken::Write(requests) => {
                    for r in requests {
                        let m = pool_message(&c, &b, &r, &mut rng);
                        for h in b
                            .carrier
                            .take(&b.id, &c.id.public(), &m, &r.body, NOW)
                            .map(|t| match t {
                                Taken::Write(out) => out,
                                _ => Vec::new(),
                            })
                            .unwrap()
                        {
                            let m = pool_message(&b, &c, &h, &mut rng);
                            if let Taken::Opened { message, .. } =
                                c.carrier.take(&c.id, &bp, &m, &h.body, NOW).unwrap()
                            {
                                opened = Some(message);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let opened = opened.expect("the envelope opened at C");
        let contacts = [c.id.contact(&ap).unwrap(), c.id.contact(&bp).unwrap()];
        assert_eq!(
            opened_author(&contacts, &opened).map(|x| x.public),
            Some(ap)
        );
        // Not from a contact, not in the 1:1 group, or not a text: not
        // taken (so never acknowledged).
        assert!(opened_author(&contacts[1..], &opened).is_none());
        let g = a.id.contact(&bp).unwrap();
        let elsewhere =
            Message::create(&a.id, g.direct_group(), NOW, Kind::TEXT, b"x", &mut rng).unwrap();
        assert!(opened_author(&contacts, &elsewhere).is_none());
        let to_c = a.id.contact(&c.id.public()).unwrap();
        let timer =
            Message::create(&a.id, to_c.direct_group(), NOW, Kind::TIMER, b"", &mut rng).unwrap();
        assert!(opened_author(&contacts, &timer).is_none());
        // Only texts spread.
        assert!(!a.carrier.originate(&c.id.public(), timer, NOW));
    }

    /// However large the budget a device is configured with, a carrier
    /// full of the smallest envelopes can still be saved and read back.
    /// A budget over about 1.1 GiB (`strand run --carry-budget` took up to
    /// 64 GiB) let it hold more than a saved state may list, and the next
    /// start dropped everything carried.
    #[test]
    fn a_full_carrier_can_always_be_saved() {
        let smallest = sealed_len(0).unwrap() as u64;
        assert!(MAX_CARRY_BUDGET / smallest <= MAX_SAVED as u64);
        let huge = CarryConfig {
            budget: 64 << 30,
            ..spray()
        };
        assert_eq!(Carrier::new(huge).config().budget, MAX_CARRY_BUDGET);
        let saved = Carrier::new(huge).encode();
        assert_eq!(
            Carrier::decode(&saved, huge).unwrap().config().budget,
            MAX_CARRY_BUDGET
        );
    }

    #[test]
    fn the_sender_sprays_half_its_copies_to_each_carrier_and_none_to_others() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let cfg = CarryConfig {
            copies: 6,
            ..spray()
        };
        let mut a = person("a", &mut rng, cfg);
        let c = person("c", &mut rng, cfg);
        let carriers: Vec<Person> = (0..4)
            .map(|i| person(&format!("b{i}"), &mut rng, cfg))
            .collect();
        let stranger = person("s", &mut rng, cfg);
        let m = text(&a, &c, b"hi", &mut rng);
        a.carrier.originate(&c.id.public(), m, NOW);
        for b in &carriers {
            a.carrier.set_carrier(&b.id.public().sign, true, NOW);
        }
        a.carrier.set_carrier(&c.id.public().sign, true, NOW);
        // Not a carrier, and the recipient: nothing.
        assert!(a
            .carrier
            .hand(&stranger.id.public(), NOW, &mut rng)
            .is_empty());
        assert!(a.carrier.hand(&c.id.public(), NOW, &mut rng).is_empty());
        // 6 → 3 given, then 3 → 1, then 2 → 1, then 1 left: wait.
        let given: Vec<u8> = carriers
            .iter()
            .flat_map(|b| a.carrier.hand(&b.id.public(), NOW, &mut rng))
            .map(|h| copies_of(&h))
            .collect();
        assert_eq!(given, vec![3, 1, 1]);
        // Once per carrier.
        assert!(a
            .carrier
            .hand(&carriers[0].id.public(), NOW, &mut rng)
            .is_empty());
        // Each envelope is sealed afresh.
        assert_eq!(a.carrier.stats().sealed, 3);
    }

    /// A carrier that offers the sender the header of the sender's own
    /// envelope already holds it: the sender spends no copy on it.
    #[test]
    fn a_sender_offered_its_own_envelope_gives_that_contact_no_other() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let cfg = CarryConfig {
            copies: 4,
            ..spray()
        };
        let mut a = person("a", &mut rng, cfg);
        let mut b = person("b", &mut rng, cfg);
        let c = person("c", &mut rng, cfg);
        let mut d = person("d", &mut rng, cfg);
        let e = person("e", &mut rng, cfg);
        let m = text(&a, &c, b"the bridge is closed", &mut rng);
        a.carrier.originate(&c.id.public(), m, NOW);
        for p in [&b, &d, &e] {
            a.carrier.set_carrier(&p.id.public().sign, true, NOW);
        }
        b.carrier.set_carrier(&d.id.public().sign, true, NOW);
        // A → B (2 of 4), B → D (1 of 2).
        let to_b = a.carrier.hand(&b.id.public(), NOW, &mut rng);
        b.carrier
            .receive_envelope(&b.id, &a.id.public(), &to_b[0].body, NOW)
            .unwrap();
        let to_d = b.carrier.hand(&d.id.public(), NOW, &mut rng);
        assert_eq!(copies_of(&to_d[0]), 1);
        d.carrier
            .receive_envelope(&d.id, &b.id.public(), &to_d[0].body, NOW)
            .unwrap();
        // D, with one copy, offers A the header: A recognises its own.
        let offer = d.carrier.hand(&a.id.public(), NOW, &mut rng);
        assert_eq!((offer.len(), offer[0].body[0]), (1, OFFER));
        assert!(matches!(
            a.carrier
                .receive_envelope(&a.id, &d.id.public(), &offer[0].body, NOW)
                .unwrap(),
            Arrival::Known
        ));
        // So D gets nothing from A, and E, who holds none, gets a copy.
        assert!(a.carrier.hand(&d.id.public(), NOW, &mut rng).is_empty());
        let to_e = a.carrier.hand(&e.id.public(), NOW, &mut rng);
        assert_eq!((to_e.len(), copies_of(&to_e[0])), (1, 1));
        // B, who gave D its copy, is offered nothing back by D.
        assert!(d.carrier.hand(&b.id.public(), NOW, &mut rng).is_empty());
        // A holder offered what it holds (here by E, as if E had a copy
        // too) offers E nothing.
        assert!(matches!(
            d.carrier
                .receive_envelope(&d.id, &e.id.public(), &offer[0].body, NOW)
                .unwrap(),
            Arrival::Known
        ));
        assert!(d.carrier.hand(&e.id.public(), NOW, &mut rng).is_empty());
    }

    /// A sealer (a contact, who holds their own keys) writes into an
    /// envelope for C an acknowledgement hash the keys do not give: C
    /// neither asks for it when it is offered nor opens it when it is
    /// handed over. Before, she took it in and acknowledged it with a
    /// token that deletes no carrier's copy, so every carrier offered it
    /// again and she fetched it again, at every meeting until it expired.
    #[test]
    fn an_envelope_with_a_forged_acknowledgement_hash_is_not_fetched_or_opened() {
        let mut rng = ChaCha20Rng::seed_from_u64(62);
        let (a, b, mut c) = (
            person("a", &mut rng, spray()),
            person("b", &mut rng, spray()),
            person("c", &mut rng, spray()),
        );
        let (bp, cp) = (b.id.public(), c.id.public());
        let expires = NOW + HOUR;
        let msg = text(&a, &c, b"hi", &mut rng);
        let real = Envelope::seal(&cp, &msg, expires, 1, &mut rng).unwrap();
        let other = Envelope::seal(&cp, &msg, expires, 1, &mut rng).unwrap();
        let forged = real.resealed_with_ack_hash(&c.id, other.ack_hash());
        let arrive =
            |c: &mut Person, body: &[u8]| c.carrier.receive_envelope(&c.id, &bp, body, NOW);
        // B offers both: C asks for the real one only.
        let offered = offer(&real, 1, &cp, expires);
        assert!(matches!(
            arrive(&mut c, &offered.body),
            Ok(Arrival::Wanted { .. })
        ));
        let offered = offer(&forged, 1, &cp, expires);
        assert!(matches!(
            arrive(&mut c, &offered.body),
            Ok(Arrival::NotForUs)
        ));
        // Handed over whole, the forged one does not open.
        let mut body = vec![DELIVER];
        body.extend_from_slice(forged.as_bytes());
        assert!(matches!(arrive(&mut c, &body), Ok(Arrival::NotForUs)));
        let mut body = vec![DELIVER];
        body.extend_from_slice(real.as_bytes());
        assert!(matches!(arrive(&mut c, &body), Ok(Arrival::Opened { .. })));
        assert_eq!(c.carrier.stats().opened, 1);
    }

    /// C cannot take in the message of an envelope that opened yet (its
    /// author's budget is full, say): she keeps it and opens it again
    /// later, when it is not counted opened again (before, it was at
    /// every try, every ten minutes); taken in, it is counted once.
    #[test]
    fn an_envelope_whose_message_waits_is_counted_opened_once() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let cfg = spray();
        let mut a = person("a", &mut rng, cfg);
        let b = person("b", &mut rng, cfg);
        let mut c = person("c", &mut rng, cfg);
        a.carrier
            .originate(&c.id.public(), text(&a, &c, b"later", &mut rng), NOW);
        a.carrier.set_carrier(&b.id.public().sign, true, NOW);
        let h = a.carrier.hand(&b.id.public(), NOW, &mut rng).remove(0);
        let open = |c: &mut Person| {
            let Arrival::Opened { token, expires, .. } = c
                .carrier
                .receive_envelope(&c.id, &b.id.public(), &h.body, NOW)
                .unwrap()
            else {
                panic!("it opens")
            };
            (token, expires)
        };
        for _ in 0..3 {
            let (token, expires) = open(&mut c);
            c.carrier.take_later(&token, expires);
        }
        assert_eq!(c.carrier.stats().opened, 1);
        let (token, expires) = open(&mut c);
        c.carrier.acknowledge(&token, expires);
        assert_eq!(
            (c.carrier.stats().opened, c.carrier.stats().accepted),
            (1, 1)
        );
    }

    /// Along chains, Mallory puts the header of an envelope she was
    /// offered on sealed bytes of her own and hands that to carriers
    /// first. The real one, offered to a carrier that holds hers, is asked
    /// for by its name and taken in beside it: before, the carrier took
    /// the offer for a copy of what it held, and the real envelope went
    /// no further through any carrier that took hers first.
    #[test]
    fn an_altered_copy_does_not_keep_the_real_one_from_a_chain() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let mut p = line(4, chains(9, 4), &mut rng);
        let to = p[3].id.public();
        let m = text(&p[0], &p[3], b"hi", &mut rng);
        assert!(p[0].carrier.originate(&to, m, NOW));
        let p1 = p[1].id.public();
        let offered = p[0].carrier.hand(&p1, NOW, &mut rng).remove(0);
        let header = &offered.body[1..1 + ENVELOPE_HEADER_LEN];
        let name = &offered.body[1 + ENVELOPE_HEADER_LEN..];
        // Mallory (2) read the header from an offer of her own.
        let mut forged = vec![CARRY];
        forged.extend_from_slice(header);
        let junk = sealed_len(100).unwrap() - ENVELOPE_HEADER_LEN;
        forged.extend((0..junk).map(|_| rng.next_u32() as u8));
        let mallory = p[2].id.public();
        let q = &mut p[1];
        assert!(matches!(
            q.carrier.receive_envelope(&q.id, &mallory, &forged, NOW),
            Ok(Arrival::Held { .. })
        ));
        let sender = p[0].id.public();
        let q = &mut p[1];
        let Ok(Arrival::Wanted { request }) =
            q.carrier
                .receive_envelope(&q.id, &sender, &offered.body, NOW)
        else {
            panic!("the real envelope is not asked for");
        };
        assert_eq!(request.body, name);
        let whole = p[0]
            .carrier
            .receive_request(&p1, &request.body, NOW)
            .unwrap()
            .remove(0);
        let q = &mut p[1];
        assert!(matches!(
            q.carrier.receive_envelope(&q.id, &sender, &whole.body, NOW),
            Ok(Arrival::Held { .. })
        ));
        assert_eq!(q.carrier.held(), 2);
    }

    /// A copy of C's envelope that someone altered does not open; C drops
    /// it rather than carry it, and the real copy still opens.
    #[test]
    fn a_recipient_drops_an_altered_copy_of_its_own_envelope() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let cfg = spray();
        let mut a = person("a", &mut rng, cfg);
        let b = person("b", &mut rng, cfg);
        let mut c = person("c", &mut rng, cfg);
        let m = text(&a, &c, b"not this one", &mut rng);
        a.carrier.originate(&c.id.public(), m.clone(), NOW);
        a.carrier.set_carrier(&b.id.public().sign, true, NOW);
        let real = a.carrier.hand(&b.id.public(), NOW, &mut rng).remove(0);
        let mut altered = real.body.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            c.carrier
                .receive_envelope(&c.id, &b.id.public(), &altered, NOW)
                .unwrap(),
            Arrival::NotForUs
        ));
        assert_eq!(c.carrier.held(), 0);
        let Arrival::Opened { message, .. } = c
            .carrier
            .receive_envelope(&c.id, &b.id.public(), &real.body, NOW)
            .unwrap()
        else {
            panic!("the real copy opens")
        };
        assert_eq!(message, m);
    }

    /// A → B → C, and the acknowledgement back C → B → A.
    #[test]
    fn a_carrier_delivers_and_the_acknowledgement_clears_every_copy() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let cfg = spray();
        let mut a = person("a", &mut rng, cfg);
        let mut b = person("b", &mut rng, cfg);
        let mut c = person("c", &mut rng, cfg);
        let m = text(&a, &c, b"meet at noon", &mut rng);
        a.carrier.originate(&c.id.public(), m.clone(), NOW);
        a.carrier.set_carrier(&b.id.public().sign, true, NOW);
        let to_b = a.carrier.hand(&b.id.public(), NOW, &mut rng);
        assert_eq!(to_b.len(), 1);
        let arrival = b
            .carrier
            .receive_envelope(&b.id, &a.id.public(), &to_b[0].body, NOW)
            .unwrap();
        assert!(matches!(arrival, Arrival::Held { evicted: 0 }));
        assert_eq!(b.carrier.held(), 1);
        // B holds the sealed bytes only: neither key nor the text.
        let held = &to_b[0].body;
        for secret in [
            &a.id.public().sign[..],
            &c.id.public().sign[..],
            b"meet at noon",
        ] {
            assert!(!held.windows(secret.len()).any(|w| w == secret));
        }
        // C is not a carrier: B offers it the header only, and C alone
        // recognises it and asks for the rest.
        let offer = b.carrier.hand(&c.id.public(), NOW, &mut rng);
        assert_eq!((offer.len(), offer[0].body[0]), (1, OFFER));
        assert_eq!(offer[0].body.len(), 1 + OFFERED_LEN);
        let Arrival::Wanted { request } = c
            .carrier
            .receive_envelope(&c.id, &b.id.public(), &offer[0].body, NOW)
            .unwrap()
        else {
            panic!("C recognises the header")
        };
        assert_eq!(
            (request.to, request.kind),
            (b.id.public().sign, Kind::REQUEST)
        );
        // Someone B did not offer it to gets nothing by asking.
        assert!(b
            .carrier
            .receive_request(&a.id.public(), &request.body, NOW)
            .unwrap()
            .is_empty());
        let to_c = b
            .carrier
            .receive_request(&c.id.public(), &request.body, NOW)
            .unwrap();
        assert_eq!(
            (to_c.len(), to_c[0].body[0], copies_of(&to_c[0])),
            (1, DELIVER, 1)
        );
        // Once only.
        assert!(b
            .carrier
            .receive_request(&c.id.public(), &request.body, NOW)
            .unwrap()
            .is_empty());
        let Arrival::Opened {
            message,
            token,
            expires,
        } = c
            .carrier
            .receive_envelope(&c.id, &b.id.public(), &to_c[0].body, NOW)
            .unwrap()
        else {
            panic!("C opens its envelope")
        };
        assert_eq!(message, m);
        let ack = c.carrier.acknowledge(&token, expires);
        // A replay is refused from now on.
        assert!(matches!(
            c.carrier
                .receive_envelope(&c.id, &b.id.public(), &to_c[0].body, NOW)
                .unwrap(),
            Arrival::Delivered
        ));
        // B deletes its copy and passes the acknowledgement to A.
        let back = b
            .carrier
            .receive_ack(&c.id.public(), &ack, expires, NOW)
            .unwrap();
        assert_eq!(b.carrier.held(), 0);
        assert_eq!(b.carrier.used(), 0);
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].to, back[0].kind), (a.id.public().sign, Kind::ACK));
        assert_eq!(a.carrier.spreading(), 1);
        a.carrier
            .receive_ack(&b.id.public(), &back[0].body, expires, NOW)
            .unwrap();
        assert_eq!(a.carrier.spreading(), 0);
        // A second acknowledgement changes nothing.
        assert!(b
            .carrier
            .receive_ack(&c.id.public(), &ack, expires, NOW)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_full_carrier_evicts_its_oldest_envelopes_first() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let small = CarryConfig {
            budget: 3 * (ENVELOPE_HEADER_LEN + 1024 + 16) as u64,
            ..spray()
        };
        let mut a = person("a", &mut rng, spray());
        let mut b = person("b", &mut rng, small);
        let c = person("c", &mut rng, spray());
        a.carrier.set_carrier(&b.id.public().sign, true, NOW);
        let mut bodies = Vec::new();
        for i in 0..5u8 {
            let m = text(&a, &c, &[i], &mut rng);
            a.carrier.originate(&c.id.public(), m, NOW + u64::from(i));
        }
        bodies.extend(a.carrier.hand(&b.id.public(), NOW, &mut rng));
        assert_eq!(bodies.len(), 5);
        let mut evictions = Vec::new();
        for (i, h) in bodies.iter().enumerate() {
            match b
                .carrier
                .receive_envelope(&b.id, &a.id.public(), &h.body, NOW + i as u64)
                .unwrap()
            {
                Arrival::Held { evicted } => evictions.push(evicted),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(evictions, vec![0, 0, 0, 1, 1]);
        assert_eq!(b.carrier.held(), 3);
        assert!(b.carrier.used() <= small.budget);
        // The survivors are the newest three.
        let kept: Vec<[u8; 32]> = bodies[2..]
            .iter()
            .map(|h| Envelope::decode(h.body[1..].to_vec()).unwrap().id())
            .collect();
        assert!(kept.iter().all(|id| b.carrier.held.contains_key(id)));
        // The sender still spreads all five: nothing it holds is lost.
        assert_eq!(a.carrier.spreading(), 5);
        // Larger than the whole budget: refused.
        let tiny = CarryConfig {
            budget: 100,
            ..spray()
        };
        let mut d = person("d", &mut rng, tiny);
        assert_eq!(
            d.carrier
                .receive_envelope(&d.id, &a.id.public(), &bodies[0].body, NOW)
                .err(),
            Some(CarryError::OverBudget(bodies[0].body.len() - 1))
        );
        assert_eq!(d.carrier.held(), 0);
    }

    /// The carrier's indexes (eviction order, acknowledgement hashes,
    /// bytes held, its own envelopes' acknowledgement hashes) stay what
    /// they index through arrivals and evictions, acknowledgements,
    /// expiry, forgetting a contact, direct delivery, own envelopes come
    /// back, and saving and loading; and each eviction takes the oldest
    /// held.
    #[test]
    fn a_carrier_s_indexes_keep_step_with_what_it_holds() {
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        // Envelopes last two hours (three at most, rounded up), while a
        // budget of about five turns over in some three: both evictions
        // and expiry empty it.
        let sender = CarryConfig {
            lifetime: 2 * HOUR,
            ..spray()
        };
        let small = CarryConfig {
            budget: 8 * 1024,
            ..spray()
        };
        let mut a = person("a", &mut rng, sender);
        let mut b = person("b", &mut rng, small);
        let mut to: Vec<Person> = (0..3)
            .map(|i| person(&format!("c{i}"), &mut rng, spray()))
            .collect();
        let (ap, bp) = (a.id.public(), b.id.public());
        a.carrier.set_carrier(&bp.sign, true, NOW);
        // What b holds, oldest first; each envelope a handed it, with its
        // recipient and message.
        let mut order: Vec<[u8; 32]> = Vec::new();
        let mut sent: Vec<(usize, Vec<u8>, MessageId)> = Vec::new();
        let (mut evicted, mut acknowledged, mut expired) = (0, 0, 0);
        let mut now = NOW;
        for step in 0..600u16 {
            now += rng.next_u64() % (HOUR / 2);
            match rng.next_u32() % 10 {
                // A new envelope arrives at b (1 to 2 KiB sealed: under
                // half the budget).
                0..=3 => {
                    let k = rng.next_u32() as usize % to.len();
                    let mut body = format!("{step}").into_bytes();
                    body.resize(5 + rng.next_u32() as usize % 1500, b'.');
                    let m = text(&a, &to[k], &body, &mut rng);
                    let mid = m.id();
                    assert!(a.carrier.originate(&to[k].id.public(), m, now));
                    for h in a.carrier.hand(&bp, now, &mut rng) {
                        let id = Envelope::decode(h.body[1..].to_vec()).unwrap().id();
                        match b.carrier.receive_envelope(&b.id, &ap, &h.body, now) {
                            Ok(Arrival::Held { evicted: n }) => {
                                order.drain(..n);
                                order.push(id);
                                evicted += n;
                            }
                            other => panic!("{other:?}"),
                        }
                        sent.push((k, h.body, mid));
                    }
                }
                // The recipient of one opens it: its acknowledgement
                // reaches b and a.
                4 | 5 if !sent.is_empty() => {
                    let (k, body, _) = sent.swap_remove(rng.next_u32() as usize % sent.len());
                    let c = &mut to[k];
                    match c.carrier.receive_envelope(&c.id, &ap, &body, now) {
                        Ok(Arrival::Opened { token, expires, .. }) => {
                            c.carrier.acknowledge(&token, expires);
                            let held = b.carrier.held();
                            b.carrier
                                .receive_ack(&c.id.public(), &token.0, expires, now)
                                .unwrap();
                            acknowledged += held - b.carrier.held();
                            a.carrier.receive_ack(&bp, &token.0, expires, now).unwrap();
                            order.retain(|id| b.carrier.held.contains_key(id));
                        }
                        Err(CarryError::Expired { .. }) => {}
                        other => panic!("{other:?}"),
                    }
                }
                6 => {
                    let held = b.carrier.held();
                    b.carrier.expire(now);
                    a.carrier.expire(now);
                    expired += held - b.carrier.held();
                    order.retain(|id| b.carrier.held.contains_key(id));
                }
                // One of a's envelopes comes back to it: known while a
                // spreads its message (and held, as anyone's, after).
                7 if !sent.is_empty() => {
                    let (_, body, mid) = &sent[rng.next_u32() as usize % sent.len()];
                    let lasts = Envelope::decode(body[1..].to_vec()).unwrap().expires() > now;
                    let spreading = a.carrier.own.contains_key(mid);
                    let back = a.carrier.receive_envelope(&a.id, &bp, body, now);
                    if lasts && spreading {
                        assert!(matches!(back, Ok(Arrival::Known)), "{back:?}");
                    }
                }
                // a stops spreading: its contact is forgotten, or a
                // message reached them directly.
                8 if !sent.is_empty() => {
                    let (k, mid) = {
                        let s = &sent[rng.next_u32() as usize % sent.len()];
                        (s.0, s.2)
                    };
                    if rng.next_u32() % 2 == 0 {
                        a.carrier.forget(&to[k].id.public());
                    } else {
                        a.carrier.delivered(&mid);
                    }
                }
                // Saved and loaded, whole or in parts, now and then under
                // half the budget (what no longer fits goes, oldest first).
                _ => {
                    let budget = if rng.next_u32() % 3 == 0 {
                        small.budget / 2
                    } else {
                        small.budget
                    };
                    let cfg = CarryConfig { budget, ..small };
                    if rng.next_u32() % 2 == 0 {
                        b.carrier = Carrier::decode(&b.carrier.encode(), cfg).unwrap();
                        a.carrier = Carrier::decode(&a.carrier.encode(), sender).unwrap();
                    } else {
                        for (p, cfg) in [(&mut a, sender), (&mut b, cfg)] {
                            let parts: BTreeMap<PartKey, Vec<u8>> =
                                p.carrier.parts().map(|(k, v)| (k, v.to_vec())).collect();
                            let state = p.carrier.encode_state();
                            p.carrier =
                                Carrier::decode_state(&state, cfg, |k| parts.get(k).cloned())
                                    .unwrap();
                        }
                    }
                    order.retain(|id| b.carrier.held.contains_key(id));
                }
            }
            a.carrier.check_index();
            b.carrier.check_index();
            for c in &to {
                c.carrier.check_index();
            }
            // b holds what the model says, in the order it arrived.
            assert!(
                b.carrier
                    .by_arrival
                    .iter()
                    .map(|(_, id)| *id)
                    .eq(order.iter().copied()),
                "step {step}"
            );
        }
        assert!(evicted > 0 && acknowledged > 0 && expired > 0);
    }

    /// Envelopes that arrived at the same moment (only a damaged state
    /// holds two such) are evicted smallest id first, as the scan before
    /// the arrival index chose.
    #[test]
    fn envelopes_that_arrived_together_go_smallest_id_first() {
        let mut rng = ChaCha20Rng::seed_from_u64(22);
        let one = (ENVELOPE_HEADER_LEN + 1024 + 16) as u64;
        let cfg = CarryConfig {
            budget: 3 * one,
            ..spray()
        };
        let mut a = person("a", &mut rng, spray());
        let mut b = person("b", &mut rng, cfg);
        let c = person("c", &mut rng, spray());
        let (ap, bp) = (a.id.public(), b.id.public());
        a.carrier.set_carrier(&bp.sign, true, NOW);
        for i in 0..2u8 {
            a.carrier
                .originate(&c.id.public(), text(&a, &c, &[i], &mut rng), NOW);
        }
        let h = a.carrier.hand(&bp, NOW, &mut rng);
        assert_eq!(h.len(), 2);
        b.carrier
            .receive_envelope(&b.id, &ap, &h[0].body, NOW)
            .unwrap();
        // Two more under the same arrival, one under an id below the
        // real one, one above.
        let (&id, held) = b.carrier.held.iter().next().unwrap();
        let held = held.clone();
        let (lo, hi) = ([0; 32], [0xff; 32]);
        assert!(lo < id && id < hi);
        b.carrier.hold(lo, held.clone());
        b.carrier.hold(hi, held);
        b.carrier.check_index();
        assert!(matches!(
            b.carrier.receive_envelope(&b.id, &ap, &h[1].body, NOW),
            Ok(Arrival::Held { evicted: 1 })
        ));
        b.carrier.check_index();
        assert!(!b.carrier.held.contains_key(&lo));
        assert!(b.carrier.held.contains_key(&id) && b.carrier.held.contains_key(&hi));
    }

    #[test]
    fn expired_malformed_and_delivery_only_envelopes_are_not_carried() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut a = person("a", &mut rng, spray());
        let mut b = person(
            "b",
            &mut rng,
            CarryConfig {
                carry: false,
                ..spray()
            },
        );
        let mut d = person("d", &mut rng, spray());
        let c = person("c", &mut rng, spray());
        a.carrier.set_carrier(&b.id.public().sign, true, NOW);
        a.carrier.set_carrier(&d.id.public().sign, true, NOW);
        a.carrier
            .originate(&c.id.public(), text(&a, &c, b"x", &mut rng), NOW);
        let h = a.carrier.hand(&b.id.public(), NOW, &mut rng).remove(0);
        // B does not carry.
        assert!(matches!(
            b.carrier
                .receive_envelope(&b.id, &a.id.public(), &h.body, NOW),
            Ok(Arrival::NotForUs)
        ));
        assert_eq!(b.carrier.held(), 0);
        // Expired.
        assert!(matches!(
            d.carrier
                .receive_envelope(&d.id, &a.id.public(), &h.body, h.expires),
            Err(CarryError::Expired { .. })
        ));
        // For delivery only.
        let mut deliver = h.body.clone();
        deliver[0] = DELIVER;
        assert!(matches!(
            d.carrier
                .receive_envelope(&d.id, &a.id.public(), &deliver, NOW),
            Ok(Arrival::NotForUs)
        ));
        // Malformed: an unknown mode, a cut envelope, nothing at all, a bad ack.
        let mut bad = h.body.clone();
        bad[0] = 7;
        for body in [&bad[..], &h.body[..h.body.len() - 1], &[][..]] {
            assert!(matches!(
                d.carrier.receive_envelope(&d.id, &a.id.public(), body, NOW),
                Err(CarryError::Malformed(_))
            ));
        }
        assert!(d
            .carrier
            .receive_ack(&a.id.public(), &[0; 15], NOW + HOUR, NOW)
            .is_err());
        assert_eq!(d.carrier.held(), 0);
        assert_eq!(decode_carrying(&encode_carrying(true)), Ok(true));
        assert!(decode_carrying(&[2]).is_err());
        // Expiry forgets what a carrier held.
        assert!(matches!(
            d.carrier
                .receive_envelope(&d.id, &a.id.public(), &h.body, NOW),
            Ok(Arrival::Held { .. })
        ));
        d.carrier.expire(h.expires);
        assert_eq!((d.carrier.held(), d.carrier.used()), (0, 0));
    }

    /// An envelope that lasts longer than any may (a contact set its
    /// expiry by hand) is refused, whole or offered by its header, and
    /// nothing is held: before, one expiring in a year held a carrier's
    /// budget, and was handed on, for that year. A sender's own lifetime
    /// is held to the limit.
    #[test]
    fn an_envelope_that_lasts_too_long_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let mut d = person("d", &mut rng, spray());
        let a = person("a", &mut rng, spray());
        let c = person("c", &mut rng, spray());
        let day = 24 * HOUR;
        let sealed = |expires: Time, rng: &mut ChaCha20Rng| {
            let m = text(&a, &c, b"x", rng);
            Envelope::seal(&c.id.public(), &m, expires, 4, rng).unwrap()
        };
        let e = sealed(NOW + 365 * day, &mut rng);
        let mut whole = vec![CARRY];
        whole.extend_from_slice(e.as_bytes());
        let mut offer = vec![OFFER];
        offer.extend_from_slice(e.header());
        offer.extend_from_slice(&e.name());
        for body in [&whole, &offer] {
            assert!(matches!(
                d.carrier.receive_envelope(&d.id, &a.id.public(), body, NOW),
                Err(CarryError::TooLong { .. })
            ));
        }
        assert_eq!((d.carrier.held(), d.carrier.used()), (0, 0));
        // The longest an envelope may last is taken.
        let e = sealed(NOW + MAX_ENVELOPE_LIFETIME, &mut rng);
        let mut whole = vec![CARRY];
        whole.extend_from_slice(e.as_bytes());
        assert!(matches!(
            d.carrier
                .receive_envelope(&d.id, &a.id.public(), &whole, NOW),
            Ok(Arrival::Held { .. })
        ));
        // A sender set to a year seals for the longest an envelope may last.
        let mut long = person(
            "long",
            &mut rng,
            CarryConfig {
                lifetime: 365 * day,
                ..spray()
            },
        );
        long.carrier.set_carrier(&d.id.public().sign, true, NOW);
        let m = text(&long, &c, b"y", &mut rng);
        assert!(long.carrier.originate(&c.id.public(), m, NOW));
        let h = long.carrier.hand(&d.id.public(), NOW, &mut rng).remove(0);
        assert!(h.expires <= NOW + MAX_ENVELOPE_LIFETIME + HOUR);
        assert!(matches!(
            d.carrier
                .receive_envelope(&d.id, &long.id.public(), &h.body, NOW),
            Ok(Arrival::Held { .. })
        ));
    }

    /// A sender that restarted (so no longer knows its chain envelope's
    /// token) keeps the token when an acknowledgement brings it, and tells
    /// the other carriers it lent the envelope to, and reports the
    /// message delivered: before, the token was forgotten at once, and
    /// their chains ran on until the envelope expired.
    #[test]
    fn a_restarted_sender_passes_on_the_acknowledgement_it_gets() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let cfg = chains(9, 4);
        let mut p = line(4, cfg, &mut rng);
        let m = text(&p[0], &p[3], b"hi", &mut rng);
        let key = (m.group(), m.key());
        let to = p[3].id.public();
        assert!(p[0].carrier.originate(&to, m, NOW));
        meet(&mut p, 0, 1, &mut rng);
        meet(&mut p, 0, 2, &mut rng);
        assert_eq!((p[1].carrier.held(), p[2].carrier.held()), (1, 1));
        p[0].carrier = Carrier::decode(&p[0].carrier.encode(), cfg).unwrap();
        // 1 delivers; its acknowledgement waits for 0 in their pool.
        assert_eq!(meet(&mut p, 1, 3, &mut rng), [3]);
        assert_eq!(p[1].carrier.held(), 0);
        let (ack_to_0, rest): (Vec<_>, Vec<_>) = OUTBOX
            .with(|o| std::mem::take(&mut *o.borrow_mut()))
            .into_iter()
            .partition(|(from, h)| *from == 1 && h.kind == Kind::ACK);
        OUTBOX.with(|o| o.borrow_mut().extend(rest));
        let (_, h) = &ack_to_0[0];
        let m = pool_message(&p[1], &p[0], h, &mut rng);
        let from = p[1].id.public();
        let zero = &mut p[0];
        match zero.carrier.take(&zero.id, &from, &m, &h.body, NOW) {
            Ok(Taken::Acknowledged { delivered, .. }) => assert_eq!(delivered, [key]),
            other => panic!("{other:?}"),
        }
        assert!(p[0].carrier.acked.values().all(|(_, t)| t.is_some()));
        // 2 is told at the next meeting, and lets go of its copy.
        meet(&mut p, 0, 2, &mut rng);
        assert_eq!(p[2].carrier.held(), 0);
    }

    #[test]
    fn a_carrier_in_the_wait_phase_offers_the_header_to_everyone_once() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let cfg = CarryConfig {
            copies: 6,
            ..spray()
        };
        let mut a = person("a", &mut rng, cfg);
        let mut b = person("b", &mut rng, cfg);
        let c = person("c", &mut rng, cfg);
        let others: Vec<Person> = (0..3)
            .map(|i| person(&format!("o{i}"), &mut rng, cfg))
            .collect();
        a.carrier.set_carrier(&b.id.public().sign, true, NOW);
        a.carrier
            .originate(&c.id.public(), text(&a, &c, b"x", &mut rng), NOW);
        let h = a.carrier.hand(&b.id.public(), NOW, &mut rng).remove(0);
        b.carrier
            .receive_envelope(&b.id, &a.id.public(), &h.body, NOW)
            .unwrap();
        // B has 3: a carrier gets 1 for carrying (3 → 2 kept)...
        b.carrier
            .set_carrier(&others[0].id.public().sign, true, NOW);
        let g = b.carrier.hand(&others[0].id.public(), NOW, &mut rng);
        assert_eq!((g[0].body[0], copies_of(&g[0])), (CARRY, 1));
        // ...and every other contact its header, once, which none of them
        // recognises; never A again.
        for o in &others[1..] {
            let g = b.carrier.hand(&o.id.public(), NOW, &mut rng);
            assert_eq!(g[0].body[0], OFFER);
            assert!(matches!(
                Carrier::new(cfg).receive_envelope(&o.id, &b.id.public(), &g[0].body, NOW),
                Ok(Arrival::NotForUs)
            ));
            assert!(b.carrier.hand(&o.id.public(), NOW, &mut rng).is_empty());
        }
        assert!(b.carrier.hand(&a.id.public(), NOW, &mut rng).is_empty());
        // On a drive there is no asking: the envelope goes whole, once.
        let c_key = c.id.public();
        let d = b.carrier.hand_for_drive(&c_key, NOW, &mut rng);
        assert_eq!((d.len(), d[0].body[0], copies_of(&d[0])), (1, DELIVER, 1));
        assert!(b.carrier.hand_for_drive(&c_key, NOW, &mut rng).is_empty());
        assert!(b.carrier.hand(&c_key, NOW, &mut rng).is_empty());
    }

    #[test]
    fn the_state_survives_a_restart_and_damaged_state_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let cfg = spray();
        let mut a = person("a", &mut rng, cfg);
        let mut b = person("b", &mut rng, cfg);
        let c = person("c", &mut rng, cfg);
        a.carrier.set_carrier(&b.id.public().sign, true, NOW);
        a.carrier
            .originate(&c.id.public(), text(&a, &c, b"x", &mut rng), NOW);
        a.carrier
            .originate(&c.id.public(), text(&a, &c, b"y", &mut rng), NOW + 1);
        let h = a.carrier.hand(&b.id.public(), NOW, &mut rng);
        b.carrier
            .receive_envelope(&b.id, &a.id.public(), &h[0].body, NOW)
            .unwrap();
        b.carrier.hand(&c.id.public(), NOW, &mut rng);
        b.carrier.acknowledge(&AckToken([7; 16]), NOW + HOUR);
        for p in [&a, &b] {
            let bytes = p.carrier.encode();
            let back = Carrier::decode(&bytes, cfg).unwrap();
            assert_eq!(back.encode(), bytes);
            assert_eq!(
                (back.held(), back.used(), back.spreading(), back.stats()),
                (
                    p.carrier.held(),
                    p.carrier.used(),
                    p.carrier.spreading(),
                    p.carrier.stats()
                )
            );
            // Every cut, and one byte more, is refused.
            for n in 0..bytes.len() {
                assert!(Carrier::decode(&bytes[..n], cfg).is_err(), "{n}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Carrier::decode(&longer, cfg).is_err());
            // A state saved before `accepted` was counted (version 1, five
            // counts) still reads, with none accepted.
            let legacy = p.carrier.encode_version(false, false);
            let mut old = legacy[..legacy.len() - 8].to_vec();
            old[0] = STATE_VERSION_FIVE;
            let back = Carrier::decode(&old, cfg).unwrap();
            let stats = p.carrier.stats();
            assert_eq!(
                back.stats(),
                CarryStats {
                    accepted: 0,
                    ..stats
                }
            );
            assert!(Carrier::decode(&bytes[..bytes.len() - 8], cfg).is_err());
        }
        // In parts: a small state and the envelopes and messages by key.
        for p in [&a, &b] {
            let state = p.carrier.encode_state();
            let parts: BTreeMap<PartKey, Vec<u8>> =
                p.carrier.parts().map(|(k, v)| (k, v.to_vec())).collect();
            assert_eq!(parts.len(), p.carrier.held() + p.carrier.spreading());
            let big: usize = parts.values().map(Vec::len).sum();
            assert!(state.len() + big <= p.carrier.encode().len() + 64 * parts.len());
            let back = Carrier::decode_state(&state, cfg, |k| parts.get(k).cloned()).unwrap();
            assert_eq!(back.encode(), p.carrier.encode());
            assert_eq!(back.encode_state(), state);
            // A part missing drops its entry only; another one under its
            // key is refused.
            for k in parts.keys() {
                let lacking = Carrier::decode_state(&state, cfg, |q| {
                    (q != k).then(|| parts.get(q).cloned()).flatten()
                })
                .unwrap();
                assert_eq!(
                    lacking.held() + lacking.spreading(),
                    parts.len() - 1,
                    "{k:?}"
                );
                assert_eq!(lacking.parts().count(), parts.len() - 1);
                let swapped = Carrier::decode_state(&state, cfg, |q| {
                    let other = parts.keys().find(|o| *o != q).unwrap_or(q);
                    parts.get(if q == k { other } else { q }).cloned()
                });
                if parts.len() > 1 {
                    assert!(swapped.is_err());
                }
            }
        }
        // B's copy count lives in the state: halved after a hand-out,
        // the part stays as it was written.
        let before: BTreeMap<PartKey, Vec<u8>> =
            b.carrier.parts().map(|(k, v)| (k, v.to_vec())).collect();
        let d = person("d", &mut rng, cfg);
        b.carrier.set_carrier(&d.id.public().sign, true, NOW);
        let given = b.carrier.hand(&d.id.public(), NOW, &mut rng);
        assert_eq!(given.len(), 1);
        let back =
            Carrier::decode_state(&b.carrier.encode_state(), cfg, |k| before.get(k).cloned())
                .unwrap();
        assert_eq!(back.encode(), b.carrier.encode());
        // B's copy is not offered to C twice after a restart.
        let mut again = Carrier::decode(&b.carrier.encode(), cfg).unwrap();
        assert!(again.hand(&c.id.public(), NOW, &mut rng).is_empty());
        // A smaller budget keeps what fits.
        let small = CarryConfig { budget: 10, ..cfg };
        assert_eq!(
            Carrier::decode(&b.carrier.encode(), small).unwrap().held(),
            0
        );
    }

    #[test]
    fn hostile_contacts_cannot_swap_copies_flood_acks_or_overfill() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let cfg = spray();
        let mut a = person("a", &mut rng, cfg);
        let mut b = person("b", &mut rng, cfg);
        let c = person("c", &mut rng, cfg);
        a.carrier.set_carrier(&b.id.public().sign, true, NOW);
        a.carrier
            .originate(&c.id.public(), text(&a, &c, b"x", &mut rng), NOW);
        let h = a.carrier.hand(&b.id.public(), NOW, &mut rng).remove(0);
        // An altered copy (the real header on sealed bytes of someone
        // else's) arrives first from someone else. No carrier can tell it
        // from the real one, which is no longer taken for a copy of it:
        // it is held beside it (and offered, asked for by its name: see
        // `an_altered_copy_does_not_keep_the_real_one_from_a_chain`).
        // (Before, the first copy held stood for every envelope with its
        // acknowledgement hash, so whoever saw a header could keep the
        // real envelope from every carrier that took the altered one
        // first.)
        let mut altered = h.body.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(
            b.carrier
                .receive_envelope(&b.id, &c.id.public(), &altered, NOW),
            Ok(Arrival::Held { .. })
        ));
        assert!(matches!(
            b.carrier
                .receive_envelope(&b.id, &a.id.public(), &h.body, NOW),
            Ok(Arrival::Held { .. })
        ));
        assert_eq!(b.carrier.held(), 2);
        assert!(matches!(
            b.carrier
                .receive_envelope(&b.id, &a.id.public(), &h.body, NOW),
            Ok(Arrival::Known)
        ));
        // Acknowledgements of nothing held are not remembered.
        for i in 0..100u8 {
            let out = b
                .carrier
                .receive_ack(&c.id.public(), &[i; 16], NOW + HOUR, NOW)
                .unwrap();
            assert!(out.is_empty());
        }
        assert!(b.carrier.acked.is_empty());
        // A message too large for a carried envelope does not spread.
        let big = text(&a, &c, &vec![0; 300_000], &mut rng);
        assert!(!a.carrier.originate(&c.id.public(), big, NOW));
        // A state with an envelope listed twice is refused.
        let one = b.carrier.encode();
        let mut two = b.carrier.clone();
        let (id, held) = two
            .held
            .iter()
            .next()
            .map(|(k, v)| (*k, v.clone()))
            .unwrap();
        let mut other = id;
        other[0] ^= 1;
        two.hold(other, held);
        let held = b.carrier.held();
        assert!(Carrier::decode(&two.encode(), cfg).is_ok_and(|c| c.held() == held));
        assert!(Carrier::decode(&one, cfg).is_ok());
        // Older notices do not override newer ones.
        b.carrier.set_carrier(&a.id.public().sign, true, NOW + 10);
        b.carrier.set_carrier(&a.id.public().sign, false, NOW);
        assert!(b.carrier.is_carrier(&a.id.public().sign));
    }

    std::thread_local! {
        /// Pool messages written for a contact not met yet: (writer, handout).
        static OUTBOX: std::cell::RefCell<Vec<(usize, Handout)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// A line of people, each the next one's contact, all carrying.
    fn line(n: usize, config: CarryConfig, rng: &mut ChaCha20Rng) -> Vec<Person> {
        OUTBOX.with(|o| o.borrow_mut().clear());
        let mut people: Vec<Person> = (0..n)
            .map(|i| person(&format!("p{i}"), rng, config))
            .collect();
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let key = people[j].id.public().sign;
                    people[i].carrier.set_carrier(&key, true, NOW);
                }
            }
        }
        people
    }

    /// `i` and `j` meet: each hands the other what it would, and every
    /// pool message that calls for another is answered, until nothing is
    /// left. Returns the messages each side opened (by who opened them);
    /// an opened message is acknowledged to whoever brought it.
    fn meet(people: &mut [Person], i: usize, j: usize, rng: &mut ChaCha20Rng) -> Vec<usize> {
        // Pool messages written earlier for either (kept in the sender's
        // carrier-less outbox below) sync first.
        let (ki, kj) = (people[i].id.public().sign, people[j].id.public().sign);
        let mut queue: Vec<(usize, Handout)> = Vec::new();
        OUTBOX.with(|o| {
            o.borrow_mut().retain(|(from, h)| {
                let due = (*from == i && h.to == kj) || (*from == j && h.to == ki);
                if due {
                    queue.push((*from, h.clone()));
                }
                !due
            })
        });
        for (x, y) in [(i, j), (j, i)] {
            let peer = people[y].id.public();
            for h in people[x].carrier.hand(&peer, NOW, rng) {
                queue.push((x, h));
            }
        }
        let mut opened = Vec::new();
        while let Some((from, h)) = queue.pop() {
            let to = if from == i { j } else { i };
            if h.to != people[to].id.public().sign {
                // For another contact: it waits for their next meeting.
                OUTBOX.with(|o| o.borrow_mut().push((from, h)));
                continue;
            }
            let m = pool_message(&people[from], &people[to], &h, rng);
            let giver = people[from].id.public();
            let p = &mut people[to];
            match p.carrier.take(&p.id, &giver, &m, &h.body, NOW).unwrap() {
                Taken::Write(out) | Taken::Acknowledged { out, .. } => {
                    queue.extend(out.into_iter().map(|o| (to, o)))
                }
                Taken::Opened { token, expires, .. } => {
                    let body = p.carrier.acknowledge(&token, expires);
                    queue.push((
                        to,
                        Handout {
                            to: giver.sign,
                            kind: Kind::ACK,
                            body,
                            expires,
                        },
                    ));
                    opened.push(to);
                }
                _ => {}
            }
        }
        opened
    }

    fn chains(reach: u8, width: u8) -> CarryConfig {
        CarryConfig {
            spread: Spread::Chains { reach, width },
            ..CarryConfig::default()
        }
    }

    /// Four carriers along chains (reach 9, width 4), learning whom to lend
    /// to or not, and 0's first text to 3 spreading.
    fn first_text_along_a_line(
        learn: bool,
        seed: u64,
    ) -> (Vec<Person>, PublicIdentity, ChaCha20Rng) {
        let config = CarryConfig {
            learn,
            ..chains(9, 4)
        };
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut p = line(4, config, &mut rng);
        let to = p[3].id.public();
        let m = text(&p[0], &p[3], b"first", &mut rng);
        assert!(p[0].carrier.originate(&to, m, NOW));
        (p, to, rng)
    }

    /// Learned lending (§17, *Whom to lend to*): a carrier that took an
    /// envelope and dropped it is lent nothing more until its record
    /// fades, however it replays the acknowledgement it was told; one whose
    /// loan came back delivered is lent again. Without learning, both are.
    #[test]
    fn learned_lending_passes_over_a_carrier_whose_loan_went_nowhere() {
        for learn in [false, true] {
            // 1 takes the envelope and never passes it on; 2 takes it and
            // meets 3.
            let (mut p, to, mut rng) = first_text_along_a_line(learn, 31);
            meet(&mut p, 0, 1, &mut rng);
            meet(&mut p, 0, 2, &mut rng);
            assert_eq!((p[1].carrier.held(), p[2].carrier.held()), (1, 1));
            assert_eq!(meet(&mut p, 2, 3, &mut rng), [3]);
            // The acknowledgement comes back to 0 through 2, and 0 tells 1.
            meet(&mut p, 0, 2, &mut rng);
            assert_eq!(p[0].carrier.spreading(), 0);
            meet(&mut p, 0, 1, &mut rng);
            assert_eq!(p[1].carrier.held(), 0);
            // 1 sends the acknowledgement it was told back to 0: nothing
            // it earned.
            let token = p[3].carrier.acked.values().find_map(|(_, t)| *t).unwrap();
            let replay = ack(p[0].id.public().sign, &AckToken(token), NOW + HOUR);
            let m = pool_message(&p[1], &p[0], &replay, &mut rng);
            let from = p[1].id.public();
            let zero = &mut p[0];
            assert!(matches!(
                zero.carrier.take(&zero.id, &from, &m, &replay.body, NOW),
                Ok(Taken::Nothing | Taken::Write(_) | Taken::Acknowledged { .. })
            ));
            // The next text: offered to 2 to take on, and to 1 only
            // without learning.
            let m = text(&p[0], &p[3], b"second", &mut rng);
            assert!(p[0].carrier.originate(&to, m, NOW));
            let lent = |h: &[Handout]| {
                h.iter().any(|h| {
                    h.kind == Kind::ENVELOPE
                        && h.body[0] == OFFER
                        && reach_of(h.body[6]).is_some_and(|r| r >= 2)
                })
            };
            let (one, two) = (p[1].id.public(), p[2].id.public());
            assert!(lent(&p[0].carrier.hand(&two, NOW, &mut rng)));
            assert_eq!(lent(&p[0].carrier.hand(&one, NOW, &mut rng)), !learn);
            // Its record fades: at a later meeting, 1 is lent to again.
            // (Owing two loans would keep it waiting a half-life.)
            let later = NOW + LOAN_HALF_LIFE + HOUR;
            if learn {
                assert!(lent(&p[0].carrier.hand(&one, later, &mut rng)));
            }
            // 2 takes the three it is offered at the next meeting: then it
            // owes loans, and is offered the next text for nothing.
            for body in [&b"third"[..], b"fourth", b"fifth"] {
                let m = text(&p[0], &p[3], body, &mut rng);
                assert!(p[0].carrier.originate(&to, m, NOW));
            }
            meet(&mut p, 0, 2, &mut rng);
            assert_eq!(p[2].carrier.held(), 3);
            let m = text(&p[0], &p[3], b"sixth", &mut rng);
            assert!(p[0].carrier.originate(&to, m, NOW));
            assert_eq!(lent(&p[0].carrier.hand(&two, NOW, &mut rng)), !learn);
        }
    }

    /// Learned lending credits only a borrower: a contact found holding
    /// the sender's envelope (it got it downstream and offered it back)
    /// that brings the acknowledgement first earns nothing by it.
    #[test]
    fn an_acknowledgement_from_a_contact_that_was_not_lent_earns_nothing() {
        let (mut p, to, mut rng) = first_text_along_a_line(true, 32);
        // 0 lends it to 2, 2 to 1; 1 offers it back to 0, which finds 1
        // holds it.
        meet(&mut p, 0, 2, &mut rng);
        meet(&mut p, 2, 1, &mut rng);
        assert_eq!(p[1].carrier.held(), 1);
        meet(&mut p, 0, 1, &mut rng);
        // 3 opens it from 2; the acknowledgement reaches 1 through 2, and 1
        // brings it to 0 before 2 does.
        assert_eq!(meet(&mut p, 2, 3, &mut rng), [3]);
        meet(&mut p, 1, 2, &mut rng);
        assert_eq!(p[1].carrier.held(), 0);
        meet(&mut p, 0, 1, &mut rng);
        assert_eq!(p[0].carrier.spreading(), 0);
        // 1 takes the next text as anyone never lent to would, and then
        // owes it: the one after is not offered to it to take on.
        let m = text(&p[0], &p[3], b"second", &mut rng);
        assert!(p[0].carrier.originate(&to, m, NOW));
        meet(&mut p, 0, 1, &mut rng);
        assert_eq!(p[1].carrier.held(), 1);
        let m = text(&p[0], &p[3], b"third", &mut rng);
        assert!(p[0].carrier.originate(&to, m, NOW));
        let one = p[1].id.public();
        let handed = p[0].carrier.hand(&one, NOW, &mut rng);
        assert!(
            handed.iter().all(|h| h.kind != Kind::ENVELOPE),
            "{handed:?}"
        );
    }

    /// Issue 30: a text reaches its recipient along a chain of five links
    /// (sender, four carriers, recipient, each only the next one's
    /// contact in practice). Spray and wait with 8 copies (the old
    /// default) cannot: its last carrier with copies to give is the third.
    /// Nor can chains of reach 4.
    /// Along chains, every carrier asks for the envelope while it may
    /// cross two more links, and the recipient's acknowledgement then
    /// travels back along the chain, deleting every copy and stopping the
    /// sender.
    #[test]
    fn a_chain_of_five_links_delivers_and_its_acknowledgement_clears_it() {
        let spray = CarryConfig {
            spread: Spread::SprayAndWait,
            copies: 8,
            ..CarryConfig::default()
        };
        // A sender starts up to two links short of its reach, at random: 4
        // never crosses five links, 7 always does.
        for (config, reaches) in [(spray, false), (chains(4, 2), false), (chains(7, 2), true)] {
            let mut rng = ChaCha20Rng::seed_from_u64(30);
            let mut p = line(6, config, &mut rng);
            let m = text(&p[0], &p[5], b"the meeting moved", &mut rng);
            let to = p[5].id.public();
            assert!(p[0].carrier.originate(&to, m, NOW));
            let mut opened = Vec::new();
            for k in 0..5 {
                opened.extend(meet(&mut p, k, k + 1, &mut rng));
            }
            assert_eq!(opened == [5], reaches, "{config:?}");
            if !reaches {
                continue;
            }
            // Each carrier held it; the acknowledgement goes back link by
            // link and clears it.
            assert!((1..5).all(|k| p[k].carrier.stats().held == 1));
            assert_eq!(p[4].carrier.held(), 0);
            for k in (0..4).rev() {
                meet(&mut p, k, k + 1, &mut rng);
            }
            assert!((1..5).all(|k| p[k].carrier.held() == 0));
            assert_eq!(p[0].carrier.spreading(), 0);
            // Meeting again hands nothing.
            for k in 0..5 {
                assert!(meet(&mut p, k, k + 1, &mut rng).is_empty());
                let peer = p[k + 1].id.public();
                assert!(p[k].carrier.hand(&peer, NOW, &mut rng).is_empty());
            }
        }
    }

    /// Along chains the sender seals one envelope for all its carriers (so
    /// a carrier offered it by two holders takes it once), offers it only
    /// to `width` of them, and a holder lends it to at most `width`
    /// carriers besides its giver: the rest are offered it for delivery
    /// only, which only its recipient asks for.
    #[test]
    fn chains_lend_to_at_most_width_carriers_and_one_envelope_serves_all() {
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        let mut p = line(7, chains(4, 2), &mut rng);
        let m = text(&p[0], &p[6], b"x", &mut rng);
        let to = p[6].id.public();
        assert!(p[0].carrier.originate(&to, m, NOW));
        meet(&mut p, 0, 1, &mut rng);
        meet(&mut p, 0, 2, &mut rng);
        // The sender's width is spent: a third carrier is offered nothing.
        let third = p[3].id.public();
        assert!(p[0].carrier.hand(&third, NOW, &mut rng).is_empty());
        assert_eq!(p[0].carrier.stats().sealed, 1);
        let ids: Vec<_> = (1..=2)
            .map(|k| p[k].carrier.envelopes().next().unwrap().id())
            .collect();
        assert_eq!(ids[0], ids[1]);
        // 2 holds it already: 1's offer changes nothing (2 takes it once),
        // and 2's offer back tells 1 that 2 holds it, which counts against
        // 1's width with its giver: 1 lends it to no one more, and offers
        // 3 and 4 its header for delivery only.
        meet(&mut p, 1, 2, &mut rng);
        assert_eq!(p[2].carrier.stats().held, 1);
        meet(&mut p, 1, 3, &mut rng);
        assert_eq!(p[3].carrier.held(), 0);
        let lent_to_4 = {
            let peer = p[4].id.public();
            p[1].carrier.hand(&peer, NOW, &mut rng)
        };
        assert_eq!(lent_to_4.len(), 1);
        assert_eq!(lent_to_4[0].body[0], OFFER);
        assert_eq!(lent_to_4[0].body[6], CHAIN_BIT | 1, "past the width");
        let m = pool_message(&p[1], &p[4], &lent_to_4[0], &mut rng);
        let from = p[1].id.public();
        let q = &mut p[4];
        assert!(matches!(
            q.carrier.take(&q.id, &from, &m, &lent_to_4[0].body, NOW),
            Ok(Taken::Nothing)
        ));
        // Its recipient asks even so.
        let to_6 = {
            let peer = p[6].id.public();
            p[1].carrier.hand(&peer, NOW, &mut rng)
        };
        let m = pool_message(&p[1], &p[6], &to_6[0], &mut rng);
        let q = &mut p[6];
        assert!(matches!(
            q.carrier.take(&q.id, &from, &m, &to_6[0].body, NOW),
            Ok(Taken::Write(ref w)) if w.len() == 1 && w[0].kind == Kind::REQUEST
        ));
    }

    /// A holder that offers what was delivered gets its acknowledgement
    /// back from whoever has it (the recipient, or a holder it reached),
    /// and drops it: the acknowledgement stops copies off its path too.
    #[test]
    fn an_offer_of_what_was_delivered_is_answered_with_its_acknowledgement() {
        let mut rng = ChaCha20Rng::seed_from_u64(32);
        let mut p = line(4, chains(4, 4), &mut rng);
        let m = text(&p[0], &p[3], b"x", &mut rng);
        let to = p[3].id.public();
        assert!(p[0].carrier.originate(&to, m, NOW));
        meet(&mut p, 0, 1, &mut rng);
        meet(&mut p, 1, 2, &mut rng);
        // 1 delivers it to 3; 2 still holds it and knows nothing.
        assert_eq!(meet(&mut p, 1, 3, &mut rng), [3]);
        assert_eq!((p[1].carrier.held(), p[2].carrier.held()), (0, 1));
        // 2 offers it to 3, which answers with the acknowledgement.
        meet(&mut p, 2, 3, &mut rng);
        assert_eq!(p[2].carrier.held(), 0);
        assert_eq!(p[2].carrier.stats().acknowledged, 1);
        // The acknowledgement's token survives a restart.
        let back = Carrier::decode(&p[3].carrier.encode(), chains(4, 4)).unwrap();
        assert_eq!(back.encode(), p[3].carrier.encode());
        assert!(back.acked.values().all(|(_, t)| t.is_some()));
    }

    /// A contact that sets a chain envelope's reach to 127 gets no further
    /// than the longest chain; the sender's one envelope and its offers
    /// survive a restart (whole and in parts), and states written before
    /// chains still read.
    #[test]
    fn chain_reach_is_bounded_and_chain_state_survives_a_restart() {
        let mut rng = ChaCha20Rng::seed_from_u64(33);
        let cfg = chains(4, 2);
        let mut p = line(3, cfg, &mut rng);
        let m = text(&p[0], &p[2], b"x", &mut rng);
        let to = p[2].id.public();
        assert!(p[0].carrier.originate(&to, m, NOW));
        let peer = p[1].id.public();
        let offer = p[0].carrier.hand(&peer, NOW, &mut rng).remove(0);
        assert!((CHAIN_BIT | 2..=CHAIN_BIT | 4).contains(&offer.body[6]));
        for (label, bytes) in [
            ("whole", p[0].carrier.encode()),
            ("state", p[0].carrier.encode_state()),
        ] {
            let parts: BTreeMap<PartKey, Vec<u8>> =
                p[0].carrier.parts().map(|(k, v)| (k, v.to_vec())).collect();
            assert_eq!(parts.len(), 2, "the message and its chain envelope");
            let back = Carrier::decode_state(&bytes, cfg, |k| parts.get(k).cloned()).unwrap();
            assert_eq!(back.encode(), p[0].carrier.encode(), "{label}");
            // Without its chain envelope the message stops spreading.
            let chain = parts.keys().find(|k| k[0] == b'c').unwrap();
            let lacking = Carrier::decode_state(&bytes, cfg, |k| {
                (k != chain).then(|| parts.get(k).cloned()).flatten()
            })
            .unwrap();
            assert_eq!(lacking.spreading(), usize::from(label == "whole"));
        }
        let old = p[0].carrier.encode_version(false, false);
        assert_eq!(Carrier::decode(&old, cfg).unwrap().spreading(), 1);
        // A whole chain envelope claiming reach 127.
        let mut env = p[0]
            .carrier
            .own
            .values()
            .next()
            .unwrap()
            .chain
            .clone()
            .unwrap();
        env.set_copies(CHAIN_BIT | 127);
        let body = wrap(CARRY, &env);
        let from = p[0].id.public();
        let q = &mut p[1];
        assert!(matches!(
            q.carrier.receive_envelope(&q.id, &from, &body, NOW),
            Ok(Arrival::Held { .. })
        ));
        assert_eq!(
            q.carrier.envelopes().next().unwrap().copies(),
            CHAIN_BIT | MAX_REACH
        );
    }

    /// Width holds on drives and across restarts, and a sender whose
    /// message was delivered directly does not take its envelope back to
    /// carry.
    #[test]
    fn width_holds_on_drives_and_restarts_and_a_sender_takes_nothing_back() {
        let mut rng = ChaCha20Rng::seed_from_u64(34);
        let cfg = chains(8, 2);
        let mut p = line(6, cfg, &mut rng);
        let to = p[5].id.public();
        let m = text(&p[0], &p[5], b"x", &mut rng);
        let id = m.id();
        assert!(p[0].carrier.originate(&to, m, NOW));
        meet(&mut p, 0, 1, &mut rng);
        assert_eq!(p[1].carrier.held(), 1);
        // 1's drives for 2, 3 and 4: it lends to two besides its giver;
        // after that, whole for delivery only.
        let modes: Vec<u8> = (2..=4)
            .map(|k| {
                let peer = p[k].id.public();
                p[1].carrier.hand_for_drive(&peer, NOW, &mut rng)[0].body[0]
            })
            .collect();
        assert_eq!(modes, [CARRY, CARRY, DELIVER]);
        // Lent by offer, then restarted: the asker gets it for delivery
        // only (whom it lent to is forgotten, so it lends no further).
        let mut q = line(3, cfg, &mut rng);
        let to = q[2].id.public();
        let m = text(&q[0], &q[2], b"y", &mut rng);
        assert!(q[0].carrier.originate(&to, m, NOW));
        meet(&mut q, 0, 1, &mut rng);
        let peer = q[2].id.public();
        let offered = q[1].carrier.hand(&peer, NOW, &mut rng).remove(0);
        assert!(reach_of(offered.body[6]).unwrap() >= 2, "lent");
        let mut restarted = Carrier::decode(&q[1].carrier.encode(), cfg).unwrap();
        let name = &offered.body[1 + ENVELOPE_HEADER_LEN..];
        let answer = restarted
            .receive_request(&peer, name, NOW)
            .unwrap()
            .remove(0);
        assert_eq!(answer.body[0], DELIVER);
        // Delivered directly: the sender's own envelope offered back by a
        // carrier is not asked for.
        p[0].carrier.delivered(&id);
        let sender = p[0].id.public();
        let back = p[1].carrier.hand(&sender, NOW, &mut rng);
        assert!(back.is_empty(), "the giver is never offered it");
        let env = p[1].carrier.envelopes().next().unwrap().clone();
        let mut header = env.header().to_vec();
        header[5] = CHAIN_BIT | 6;
        let mut body = vec![OFFER];
        body.extend_from_slice(&header);
        body.extend_from_slice(&env.name());
        let carrier = p[1].id.public();
        let a = &mut p[0];
        assert!(matches!(
            a.carrier.receive_envelope(&a.id, &carrier, &body, NOW),
            Ok(Arrival::Delivered)
        ));
        assert_eq!(a.carrier.held(), 0);
    }

    /// A message its sender delivered directly stops its chain copies: the
    /// sender gives its envelope's acknowledgement to the carriers that
    /// took it when it next meets them, and they pass it on along the
    /// chain.
    #[test]
    fn a_sender_that_delivered_directly_stops_its_chain() {
        let mut rng = ChaCha20Rng::seed_from_u64(35);
        let mut p = line(4, chains(6, 2), &mut rng);
        let to = p[3].id.public();
        let m = text(&p[0], &p[3], b"x", &mut rng);
        let id = m.id();
        assert!(p[0].carrier.originate(&to, m, NOW));
        meet(&mut p, 0, 1, &mut rng);
        meet(&mut p, 1, 2, &mut rng);
        assert_eq!((p[1].carrier.held(), p[2].carrier.held()), (1, 1));
        // The recipient confirms it on their 1:1 link.
        p[0].carrier.delivered(&id);
        meet(&mut p, 0, 1, &mut rng);
        assert_eq!(p[1].carrier.held(), 0);
        assert_eq!(p[1].carrier.stats().acknowledged, 1);
        meet(&mut p, 1, 2, &mut rng);
        assert_eq!(p[2].carrier.held(), 0);
        // Once told, a carrier is not told again.
        let peer = p[1].id.public();
        assert!(p[0].carrier.hand(&peer, NOW, &mut rng).is_empty());
    }

    /// `p` takes in pool message `m`, with body `body`, from `from`.
    fn take_in(
        p: &mut Person,
        from: &PublicIdentity,
        m: &Message,
        body: &[u8],
    ) -> Result<Taken, CarryError> {
        p.carrier.take(&p.id, from, m, body, NOW)
    }

    /// A meeting's offers to one contact go in one pool message, and so do
    /// the requests they call for (§17, *Batches*): three envelopes cost
    /// one offer and one request, not three of each, and arrive all the
    /// same. `batch_handouts` keeps whole envelopes apart, cuts batches at
    /// `MAX_BATCH`, joins batches that fit together and lets a batch last
    /// as long as its last item.
    #[test]
    fn a_meetings_offers_and_requests_each_share_one_pool_message() {
        let mut rng = ChaCha20Rng::seed_from_u64(41);
        let mut p = line(3, chains(9, 4), &mut rng);
        let to = p[2].id.public();
        for body in [b"one", b"two", b"six"] {
            let m = text(&p[0], &p[2], body, &mut rng);
            assert!(p[0].carrier.originate(&to, m, NOW));
        }
        let (p0, p1) = (p[0].id.public(), p[1].id.public());
        let offers = p[0].carrier.hand(&p1, NOW, &mut rng);
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].body.len(), 1 + 3 * OFFERED_LEN);
        let m = pool_message(&p[0], &p[1], &offers[0], &mut rng);
        let Ok(Taken::Write(requests)) = take_in(&mut p[1], &p0, &m, &offers[0].body) else {
            panic!("an offer of three is asked for");
        };
        assert_eq!(requests.len(), 1);
        assert_eq!(
            (requests[0].kind, requests[0].body.len()),
            (Kind::REQUEST, 3 * 16)
        );
        let m = pool_message(&p[1], &p[0], &requests[0], &mut rng);
        let Ok(Taken::Write(wholes)) = take_in(&mut p[0], &p1, &m, &requests[0].body) else {
            panic!("a request of three is answered");
        };
        assert_eq!(wholes.len(), 3);
        for h in &wholes {
            assert_eq!(h.body[0], CARRY);
            let m = pool_message(&p[0], &p[1], h, &mut rng);
            assert!(matches!(
                take_in(&mut p[1], &p0, &m, &h.body),
                Ok(Taken::Held { evicted: 0 })
            ));
        }
        assert_eq!(p[1].carrier.held(), 3);
        // The three reach the recipient through 1, each acknowledged.
        assert_eq!(meet(&mut p, 1, 2, &mut rng), [2, 2, 2]);

        // Batches are cut at MAX_BATCH, per contact and kind; whole
        // envelopes stay apart.
        let item = |to: &PublicIdentity, kind: Kind, body: Vec<u8>, expires: Time| Handout {
            to: to.sign,
            kind,
            body,
            expires,
        };
        let mut many = Vec::new();
        for i in 0..MAX_BATCH as u64 + 6 {
            many.push(item(&p0, Kind::ACK, vec![i as u8; 16], NOW + i));
        }
        many.push(item(&p1, Kind::ACK, vec![1; 16], NOW));
        many.push(wholes[0].clone());
        many.push(item(&p1, Kind::ACK, vec![2; 16], NOW + HOUR));
        let batched = batch_handouts(many);
        let sizes: Vec<_> = batched.iter().map(|h| (h.to, h.body.len())).collect();
        assert_eq!(
            sizes,
            [
                (p0.sign, 16 * MAX_BATCH),
                (p0.sign, 16 * 6),
                (p1.sign, 32),
                (wholes[0].to, wholes[0].body.len()),
            ]
        );
        assert_eq!(batched[0].expires, NOW + MAX_BATCH as u64 - 1);
        assert_eq!(batched[2].expires, NOW + HOUR);
        assert_eq!(batched[3], wholes[0]);
        // What two steps batched joins as their items would, while the
        // items fit in one message.
        let again = batch_handouts(vec![
            batched[2].clone(),
            batched[1].clone(),
            item(&p1, Kind::ACK, vec![3; 16], NOW),
            batched[0].clone(),
        ]);
        let sizes: Vec<_> = again.iter().map(|h| (h.to, h.body.len())).collect();
        assert_eq!(
            sizes,
            [(p1.sign, 48), (p0.sign, 16 * 6), (p0.sign, 16 * MAX_BATCH)]
        );
    }

    /// A batch that is not whole items, holds too many, or holds one bad
    /// header is refused as a whole: nothing in it is taken in, not even
    /// its good items. A well-formed batch is taken item by item, and an
    /// item that expired meanwhile is passed over.
    #[test]
    fn a_malformed_batch_is_refused_and_changes_nothing() {
        let mut rng = ChaCha20Rng::seed_from_u64(43);
        let mut p = line(3, chains(9, 4), &mut rng);
        let to = p[2].id.public();
        let m = text(&p[0], &p[2], b"held", &mut rng);
        assert!(p[0].carrier.originate(&to, m, NOW));
        meet(&mut p, 0, 1, &mut rng);
        assert_eq!(p[1].carrier.held(), 1);
        let held = p[1].carrier.envelopes().next().unwrap();
        let mut header = held.header().to_vec();
        header.extend_from_slice(&held.name());
        let (p1, p2) = (p[1].id.public(), p[2].id.public());
        // 2 offering 1 the envelope 1 holds would tell 1 that 2 holds it.
        // (Asked of a copy: offering marks the header offered.)
        let offered_to_2 = |p: &mut [Person], rng: &mut ChaCha20Rng| {
            p[1].carrier
                .clone()
                .hand(&p2, NOW, rng)
                .iter()
                .any(|h| h.kind == Kind::ENVELOPE && h.body[0] == OFFER)
        };
        let mut bad_version = header.clone();
        bad_version[0] = 9;
        let mut expired = header.clone();
        expired[1..5].copy_from_slice(&((NOW / HOUR) as u32 - 1).to_be_bytes());
        let mut too_long = header.clone();
        too_long[1..5].copy_from_slice(&((NOW / HOUR) as u32 + 24 * 365).to_be_bytes());
        let offers = |headers: &[&[u8]], extra: usize| {
            let mut body = vec![OFFER];
            for h in headers {
                body.extend_from_slice(h);
            }
            body.extend(std::iter::repeat_n(0, extra));
            body
        };
        let too_many: Vec<&[u8]> = vec![&header; MAX_BATCH + 1];
        let bad = [
            (Kind::ENVELOPE, offers(&[&header, &bad_version], 0)),
            (Kind::ENVELOPE, offers(&[&header, &header], 5)),
            (Kind::ENVELOPE, offers(&too_many, 0)),
            (Kind::REQUEST, vec![7; 17]),
            (Kind::REQUEST, Vec::new()),
            (Kind::ACK, vec![7; 16 * (MAX_BATCH + 1)]),
        ];
        for (kind, body) in bad {
            let h = Handout {
                to: p1.sign,
                kind,
                body,
                expires: NOW + HOUR,
            };
            let before = p[1].carrier.encode_state();
            let m = pool_message(&p[2], &p[1], &h, &mut rng);
            assert!(matches!(
                take_in(&mut p[1], &p2, &m, &h.body),
                Err(CarryError::Malformed(_))
            ));
            assert_eq!(p[1].carrier.encode_state(), before);
            assert!(offered_to_2(&mut p, &mut rng), "{kind:?} changed nothing");
        }
        // Well formed, with an expired item and one that lasts too long:
        // the held one is known to be 2's, and the others are passed over.
        let good = Handout {
            to: p1.sign,
            kind: Kind::ENVELOPE,
            body: offers(&[&expired, &too_long, &header], 0),
            expires: NOW + HOUR,
        };
        let m = pool_message(&p[2], &p[1], &good, &mut rng);
        assert!(matches!(
            take_in(&mut p[1], &p2, &m, &good.body),
            Ok(Taken::Write(w)) if w.is_empty()
        ));
        assert!(!offered_to_2(&mut p, &mut rng));
    }

    /// When a sender spreads (§17): a text to a contact it has met at
    /// least twice waits three of their usual gaps (at most `MAX_HOLD`)
    /// from its writing before carriers are offered it, in case it goes
    /// directly; a text to someone it has not seen twice spreads at once,
    /// and a drive takes a held-back text all the same. Calls of `hand`
    /// within minutes of each other are one meeting.
    #[test]
    fn a_sender_holds_back_a_text_to_a_contact_it_meets_often() {
        for (gap, hold) in [(HOUR, 3 * HOUR), (10 * HOUR, MAX_HOLD)] {
            let mut rng = ChaCha20Rng::seed_from_u64(47);
            let mut p = line(3, chains(9, 4), &mut rng);
            let (p1, p2) = (p[1].id.public(), p[2].id.public());
            // 0 meets 2 twice, `gap` apart (the calls a minute apart are
            // the same meeting).
            for at in [NOW, NOW + 60_000, NOW + 60_000 + gap] {
                assert!(p[0].carrier.hand(&p2, at, &mut rng).is_empty());
            }
            // Writing, 0 meets 2 again, as usual.
            let written = NOW + 60_000 + 2 * gap;
            let write = |to: &PublicIdentity, rng: &mut ChaCha20Rng| {
                let c = p[0].id.contact(to).unwrap();
                Message::create(&p[0].id, c.direct_group(), written, Kind::TEXT, b"x", rng).unwrap()
            };
            let (to_2, to_1) = (write(&p2, &mut rng), write(&p1, &mut rng));
            assert!(p[0].carrier.originate(&p2, to_2, written));
            assert!(p[0].carrier.originate(&p1, to_1, written));
            // Both wait: the text to 2 held back until `hold` has passed,
            // the text to 1 for a carrier.
            let waiting = Spreading {
                out: 0,
                held_back: 1,
                released: Some(written + hold),
                waiting: 1,
            };
            assert_eq!(p[0].carrier.spreading_at(written), waiting);
            // The text to 1, whom 0 never met, is offered to 2 at once.
            let offered = p[0].carrier.hand(&p2, written, &mut rng);
            assert_eq!(offered.len(), 1);
            assert_eq!(offered[0].body.len(), 1 + OFFERED_LEN);
            let one_out = Spreading {
                out: 1,
                waiting: 0,
                ..waiting
            };
            assert_eq!(p[0].carrier.spreading_at(written), one_out);
            // The text to 2 is held back from 1 until `hold` has passed,
            // but goes on a drive made for 1.
            let mut drive = p[0].carrier.clone();
            assert_eq!(drive.hand_for_drive(&p1, written + 1, &mut rng).len(), 1);
            assert!(p[0]
                .carrier
                .hand(&p1, written + hold - 1, &mut rng)
                .is_empty());
            assert_eq!(p[0].carrier.spreading_at(written + hold - 1), one_out);
            let offered = p[0].carrier.hand(&p1, written + hold, &mut rng);
            assert_eq!(offered.len(), 1);
            assert_eq!(offered[0].body[0], OFFER);
            let both_out = Spreading {
                out: 2,
                ..Spreading::default()
            };
            assert_eq!(p[0].carrier.spreading_at(written + hold), both_out);
        }
    }

    /// A text to a contact linked now goes over the link: carriers are
    /// not offered it while the link is up (before, a text to someone
    /// never met twice went to every carrier at once, though it was
    /// delivered directly a moment later). Once the link ends, it is
    /// offered as any other; a drive takes it all the same.
    #[test]
    fn a_text_to_a_linked_contact_is_not_offered_to_carriers() {
        let mut rng = ChaCha20Rng::seed_from_u64(48);
        let mut p = line(3, chains(9, 4), &mut rng);
        let (p1, p2) = (p[1].id.public(), p[2].id.public());
        let c = p[0].id.contact(&p1).unwrap();
        let m = Message::create(&p[0].id, c.direct_group(), NOW, Kind::TEXT, b"x", &mut rng);
        assert!(p[0].carrier.originate(&p1, m.unwrap(), NOW));
        p[0].carrier.set_linked([p1.sign, p2.sign].into());
        let held_back = Spreading {
            held_back: 1,
            ..Spreading::default()
        };
        assert_eq!(p[0].carrier.spreading_at(NOW), held_back);
        assert!(p[0].carrier.hand(&p2, NOW, &mut rng).is_empty());
        let mut drive = p[0].carrier.clone();
        assert_eq!(drive.hand_for_drive(&p2, NOW, &mut rng).len(), 1);
        // 1's link ends; 2's goes on.
        p[0].carrier.set_linked([p2.sign].into());
        let offered = p[0].carrier.hand(&p2, NOW + 1, &mut rng);
        assert_eq!(offered.len(), 1);
        assert_eq!(offered[0].body[0], OFFER);
        assert_eq!(p[0].carrier.spreading_at(NOW + 1).out, 1);
    }

    /// A step starts with what expired gone: an envelope a carrier holds
    /// stays through a step just before its expiry and goes at the step
    /// at its expiry, as `expire` lets it go; the sender's own message
    /// stops spreading at the step past its lifetime. The step hands back
    /// the carrier itself.
    #[test]
    fn a_step_starts_with_what_expired_gone() {
        let mut rng = ChaCha20Rng::seed_from_u64(50);
        let mut a = person("a", &mut rng, spray());
        let mut d = person("d", &mut rng, spray());
        let c = person("c", &mut rng, spray());
        a.carrier.set_carrier(&d.id.public().sign, true, NOW);
        assert!(a
            .carrier
            .originate(&c.id.public(), text(&a, &c, b"x", &mut rng), NOW));
        let h = a.carrier.hand(&d.id.public(), NOW, &mut rng).remove(0);
        assert!(matches!(
            d.carrier
                .receive_envelope(&d.id, &a.id.public(), &h.body, NOW),
            Ok(Arrival::Held { .. })
        ));
        let before = d.carrier.encode_state();
        assert_eq!(d.carrier.step(h.expires - 1).held(), 1);
        assert_eq!(d.carrier.encode_state(), before, "nothing expired yet");
        let mut expired = d.carrier.clone();
        expired.expire(h.expires);
        let stepped = d.carrier.step(h.expires);
        assert_eq!((stepped.held(), stepped.used()), (0, 0));
        assert_eq!(d.carrier.encode_state(), expired.encode_state());
        // The sender's own message lasts the sender's lifetime.
        let lifetime = spray().lifetime;
        assert_eq!(a.carrier.step(NOW + lifetime - 1).spreading(), 1);
        assert_eq!(a.carrier.step(NOW + lifetime).spreading(), 0);
    }

    /// An opened envelope is settled by what its message became: taken,
    /// it is acknowledged to the contact that brought it (the handout
    /// is the acknowledgement's body, to that contact, for the
    /// envelope's expiry) and a replay is known delivered; waiting, it
    /// opens again later without being counted again and nothing is
    /// written; refused, nothing changes and nothing is written (it is
    /// counted opened again if it opens again).
    #[test]
    fn an_opened_envelope_is_settled_by_what_its_message_became() {
        let mut rng = ChaCha20Rng::seed_from_u64(51);
        let cfg = spray();
        let mut a = person("a", &mut rng, cfg);
        let b = person("b", &mut rng, cfg);
        let mut c = person("c", &mut rng, cfg);
        a.carrier
            .originate(&c.id.public(), text(&a, &c, b"settle", &mut rng), NOW);
        a.carrier.set_carrier(&b.id.public().sign, true, NOW);
        let h = a.carrier.hand(&b.id.public(), NOW, &mut rng).remove(0);
        let from = b.id.public();
        let open = |c: &mut Person| {
            let Arrival::Opened { token, expires, .. } = c
                .carrier
                .receive_envelope(&c.id, &from, &h.body, NOW)
                .unwrap()
            else {
                panic!("it opens")
            };
            (token, expires)
        };
        // Refused: nothing changes.
        let (token, expires) = open(&mut c);
        let before = c.carrier.encode_state();
        let refused = c
            .carrier
            .settle_opened(&from, &token, expires, OpenedFate::Refused);
        assert_eq!(refused, None);
        assert_eq!(c.carrier.encode_state(), before);
        // Later: kept to open again, not counted opened again (a refused
        // one was: it was not kept).
        let (token, expires) = open(&mut c);
        assert_eq!(c.carrier.stats().opened, 2);
        let later = c
            .carrier
            .settle_opened(&from, &token, expires, OpenedFate::Later);
        assert_eq!(later, None);
        let (token, expires) = open(&mut c);
        assert_eq!(c.carrier.stats().opened, 2);
        // Taken: acknowledged to the contact that brought it.
        let ack = c
            .carrier
            .settle_opened(&from, &token, expires, OpenedFate::Taken);
        assert_eq!(
            ack,
            Some(Handout {
                to: from.sign,
                kind: Kind::ACK,
                body: token.0.to_vec(),
                expires,
            })
        );
        assert_eq!(c.carrier.stats().accepted, 1);
        assert!(matches!(
            c.carrier.receive_envelope(&c.id, &from, &h.body, NOW),
            Ok(Arrival::Delivered)
        ));
    }
}
