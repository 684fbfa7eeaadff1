//! Every bound the protocol enforces, with the reason for each number.
//!
//! A peer that exceeds a limit on what it sends ends its session with an
//! error; whatever valid messages it sent before are kept, nothing invalid
//! is stored. Limits on local configuration (contacts checked per hello,
//! groups per session) truncate the list, as their docs say.

/// Milliseconds since the Unix epoch. Strand's one clock unit.
pub type Time = u64;

/// One second in [`Time`] units.
pub const SECOND: Time = 1_000;
/// One minute in [`Time`] units.
pub const MINUTE: Time = 60 * SECOND;

/// Largest Noise message, ciphertext and tag included (the Noise spec's
/// 65535-byte limit). The wire length prefix is a `u16` for this reason.
pub const MAX_PACKET_LEN: usize = 65_535;

/// Smallest packet a session may be configured with. A packet must hold a
/// reconciliation frame of [`BRANCHING`] fingerprints (about 300 bytes) plus
/// the 16-byte AEAD tag. (On BLE a packet still spans several ATT writes:
/// the transport fragments the byte stream.)
pub const MIN_PACKET_LEN: usize = 512;

/// Default packet size for LAN and relay links: large enough that bulk
/// message transfer spends <0.2% on per-packet overhead, small enough that a
/// stalled peer pins only 16 KiB of receive buffer.
pub const DEFAULT_PACKET_LEN: usize = 16 * 1024;

/// Largest message body (plaintext). Fits a compressed photo and the
/// simulator's ONE-style 1 MB workloads; a receiver buffers at most one
/// partial message per session, so this also bounds per-session memory.
pub const MAX_BODY_LEN: usize = 1024 * 1024;

/// Longest display name in an invite, in bytes of UTF-8. Keeps invite codes
/// short enough to type and to fit a version-10 QR code.
pub const MAX_NAME_LEN: usize = 64;

/// Fixed-size part of an encoded message: header, nonce, length, tag and
/// signature. See `PROTOCOL.md`.
pub const MESSAGE_OVERHEAD: usize = 1 + 32 + 32 + 8 + 1 + 24 + 4 + 16 + 64;

/// Largest encoded message: [`MAX_BODY_LEN`] plus [`MESSAGE_OVERHEAD`].
pub const MAX_MESSAGE_LEN: usize = MAX_BODY_LEN + MESSAGE_OVERHEAD;

/// How far a message's timestamp may lie in the receiver's future. Devices
/// without network time drift; fifteen minutes tolerates a badly set phone
/// while stopping a message from sorting ahead of everything for days.
/// A message beyond it is not stored now and is offered again next session.
pub const MAX_CLOCK_SKEW: Time = 15 * MINUTE;

/// How far ahead of the clock a welcome this device wrote may lie and
/// still date its later welcomes into the group after it
/// (`Epoch::welcome_time`): a clock that stepped back by up to a day holds
/// them back until it catches up, and keeps them in order; one dated
/// further ahead (a clock once reset by years) is passed over, and holds
/// nothing back.
pub const WELCOME_DATED_AHEAD: Time = 24 * 60 * MINUTE;

/// Length of a token epoch. Discovery beacons and handshake tokens are keyed
/// by the epoch, so a recorded one stops working after at most two epochs.
/// It must be at least [`MAX_CLOCK_SKEW`]: receivers accept the previous,
/// current and next epoch, so clocks up to one epoch apart still meet.
pub const TOKEN_EPOCH: Time = 15 * MINUTE;

/// Number of sub-ranges a mismatched range is split into. 16 is the
/// Negentropy default: fewer rounds than binary splitting, and a split costs
/// about 16 × 18 bytes, under one small BLE packet.
pub const BRANCHING: usize = 16;

/// A range holding at most this many items is answered with its id tags
/// (8 bytes each) instead of being split: 16 tags cost less than a split.
pub const ID_LIST_THRESHOLD: u64 = 16;

/// Most id tags in one reconciliation frame (8 bytes each: 8 KiB). Bounds
/// the work and memory one frame can ask for.
pub const MAX_TAGS_PER_FRAME: usize = 1024;

/// Most ranges in one reconciliation frame. A full 64 KiB packet holds
/// about 4,000 fingerprint ranges, so this only caps what a decoder
/// allocates; the work per frame is bounded anyway, because a frame's
/// ranges are disjoint and each stored key is visited a bounded number of
/// times per frame.
pub const MAX_RANGES_PER_FRAME: usize = 4096;

/// Most groups reconciled in one session (a longer list is truncated), and
/// most RECON frames for groups it does not share a peer may send. A
/// contact shares its 1:1 group and the private groups both are in; 256
/// bounds the per-session bookkeeping.
pub const MAX_GROUPS_PER_SESSION: usize = 256;

/// Most reconciliation rounds in one exchange of a group (a group opened
/// again, by either side, is a new exchange and counts afresh: a link
/// that stays up opens a group again for every file sent). With full-size
/// packets a difference needs about log16(n) + 2 rounds (7 for 10^6
/// messages), but a reply that does not fit its packet hands ranges back,
/// so small BLE packets need about one round per few differences (~3,000
/// rounds for 10,000 differences in 512-byte packets). Turns are strict
/// (one reply per RECON, and none before our last reply in the group was
/// sent), so a peer cannot make us work faster than it reads what we send;
/// this caps how long one exchange can keep us at it. A session that
/// hits it ends, and the next one carries on from what was transferred.
/// (What the rounds make us walk is bounded apart, and far lower:
/// [`RECON_WORK_WALKS`].)
pub const MAX_ROUNDS_PER_GROUP: u32 = 4096;

/// Walks of a group's log a peer may make us spend answering its
/// reconciliation of the group, ahead of progress (PROTOCOL.md §8.5).
/// Each answer counts the keys it visits (a fingerprint the keys in its
/// range, a pass each key it reads); each message of the group moved
/// (stored new from the peer, sent to it in full, handed to send, or
/// resynced) pays one walk back, and so does time
/// ([`RECON_WORK_REFILL`]). A frame that arrives with this many walks
/// unpaid waits, unanswered, as an opening past [`REOPEN_ALLOWANCE`] does.
/// The count is the contact's, not a session's: all the contact's
/// sessions, one after another or up at once, spend from one account
/// ([`crate::WalkAccount`]), so a contact that dials again, after the link
/// dropped or beside it, gets no fresh allowance: only the walk or two
/// its handshake's frames cost. A restart of the device forgets the count.
/// Before, a peer that answered every reply with a fingerprint of the
/// whole log that differs had us summarise and split the log once a round
/// for [`MAX_ROUNDS_PER_GROUP`] rounds: some 8,000 walks an exchange.
/// Honest exchanges stay far inside: with full packets one walks the log
/// about twice per level it splits (four levels for 10^6 messages) before
/// the messages it finds start to pay back, and with 512-byte packets a
/// round walks up to the whole log and moves a few messages (206 round
/// trips for 1,000 differences in logs of 10^5: well under a walk per
/// message moved).
pub const RECON_WORK_WALKS: u64 = 32;

/// The fewest keys a walk of a log counts as ([`RECON_WORK_WALKS`]): a log
/// smaller than this is cheap to walk (4,096 keys take about 0.1 ms), and
/// its allowance, 32 × 4,096 keys, is still a few milliseconds of work.
/// Without it an empty log would have no allowance at all.
pub const RECON_WORK_FLOOR: u64 = 4096;

/// Walks of each group's log paid back every [`REOPEN_REFILL_EVERY`]
/// besides progress, between a contact's sessions too, and once for all
/// of its sessions up at once ([`crate::WalkAllowance::refill`], on the
/// contact's one [`crate::WalkAccount`]): about what answering a re-opening
/// costs (a summary and a split) and a round or two after it. So a peer
/// whose exchange moves nothing waits about a minute for a round or two,
/// and one that works us with nothing new gets 4 walks of each log a
/// minute.
pub const RECON_WORK_REFILL: u64 = 4;

/// Re-openings of a group (an OPEN after its exchange ended) a peer may
/// make on a session ahead of news: each message of the group this side
/// then stores new from the peer, is handed to send, or is asked to
/// reconcile again earns one back, up to this many. Past it an opening
/// waits, unanswered and unread, until news earns it one (PROTOCOL.md
/// §8.5). An opening makes us walk the whole log, so without a bound a
/// contact's 60-byte OPEN, sent again once it read our reply, cost a scan
/// of the log each (a second or two for a log of millions). Honest peers
/// re-open once per batch stored without a handover (a file's chunks, an
/// import) and once when they add a group we knew first, and the news an
/// opening fetches is stored only after it: 4 covers a few such in a row,
/// and leaves a peer 4 exchanges a session beyond what its news brings
/// (and one a minute: [`REOPEN_REFILL_EVERY`]).
pub const REOPEN_ALLOWANCE: u32 = 4;

/// Every this long, each group's peer gets one re-opening back besides
/// news (up to [`REOPEN_ALLOWANCE`]) and [`RECON_WORK_REFILL`] walks of
/// its log: an honest opening that ran ahead of its news (a fifth import
/// in a row) waits at most this long, and a contact with nothing new
/// walks each log a few times a minute at most.
pub const REOPEN_REFILL_EVERY: Time = 60 * SECOND;

/// Most messages received in one session. After this the session ends and
/// the next one continues where reconciliation left off (it keeps no state),
/// so a flood from a misbehaving contact is cut into bounded pieces.
pub const MAX_MESSAGES_PER_SESSION: u64 = 1_000_000;

/// Most sent-but-unacknowledged messages a session remembers for delivery
/// events (about 80 bytes each). Past it, the oldest are forgotten.
pub const MAX_UNACKED: usize = 4096;

/// A handshake that has not finished after this long is abandoned: bounds
/// how long a half-open connection holds a slot.
pub const HANDSHAKE_TIMEOUT: Time = 10 * SECOND;

/// An established session with nothing received for this long is closed.
/// Three keepalive intervals, so one lost keepalive does not end it.
pub const IDLE_TIMEOUT: Time = 60 * SECOND;

/// A session that has sent nothing for this long sends a keepalive.
pub const KEEPALIVE_INTERVAL: Time = 20 * SECOND;

/// Length of the handshake token that prefixes the first handshake message.
/// 128 bits: a stranger guesses one with probability 2^-128.
pub const TOKEN_LEN: usize = 16;

/// Bytes of a hello before its padding: token, Noise message 1 (ephemeral
/// key and the empty payload's tag).
pub const HELLO_LEN: usize = TOKEN_LEN + 32 + 16;

/// Bytes of the fresh random nonce that starts every beacon. The dialler's
/// hello is bound to it (token and Noise prologue), so it is what makes a
/// recorded hello useless on any other link: 128 bits, so two links never
/// share one.
pub const BEACON_NONCE_LEN: usize = 16;

/// Entries in a discovery beacon's filter. A beacon always carries exactly
/// this many (real contacts plus entries from random keys, or a random
/// subset when there are more contacts), so its content does not reveal how
/// many contacts a device has. 64 covers most people's whole contact list
/// in every beacon; past it, each beacon names a random 64.
pub const BEACON_ENTRIES: usize = 64;

/// Bits each entry sets in the filter.
pub const BEACON_HASHES: usize = 4;

/// Bytes in a discovery beacon's Bloom filter (2048 bits). With
/// [`BEACON_SET_BITS`] of them set, a stranger's entry matches with
/// probability (1/8)^4 per epoch, about 0.07% over the three epochs tried:
/// a false match costs one refused hello and one round trip.
pub const BEACON_FILTER_LEN: usize = 256;

/// Bits set in every honest beacon: exactly `BEACON_ENTRIES x BEACON_HASHES`
/// (entries that collide are topped up with random bits). A filter with any
/// other count is refused, so nobody can send an all-ones filter that
/// matches every contact and makes the dialler name them one by one.
pub const BEACON_SET_BITS: u32 = (BEACON_ENTRIES * BEACON_HASHES) as u32;

/// Bytes of the random nonce in a BLE advertisement hint ([`crate::Advert`]):
/// it makes the hint fresh each time one is made, and is too short to
/// identify anything.
pub const ADVERT_NONCE_LEN: usize = 2;

/// Bytes of a BLE advertisement hint's Bloom filter (64 bits): what a
/// legacy advertisement has room for beside the 128-bit service UUID
/// (31 bytes: flags 3, service data header 2 + UUID 16, hint 10).
pub const ADVERT_FILTER_LEN: usize = 8;

/// Contacts a hint names (real ones plus random keys, as in the beacon, so
/// its content does not reveal how many contacts a device has). Past four,
/// each hint names a random four; the link's full beacon settles the rest.
pub const ADVERT_ENTRIES: usize = 4;

/// Bits each entry sets in a hint's filter: with four entries in 64 bits,
/// six is the count that makes a stranger's chance match rarest, (24/64)^6
/// (five gives (20/64)^5 ≈ 0.30 %, seven (28/64)^7 ≈ 0.31 %, three, used
/// before, (12/64)^3 ≈ 0.66 %).
pub const ADVERT_HASHES: usize = 6;

/// Bits set in every honest hint: a stranger's entry matches with
/// probability (24/64)^6, about 0.28 % per epoch tried; a false match
/// costs one BLE connection that the beacon then turns down.
pub const ADVERT_SET_BITS: u32 = (ADVERT_ENTRIES * ADVERT_HASHES) as u32;

/// Most random padding after a beacon or a hello, and in message 2, in
/// bytes. The first records on a link vary in size, so their lengths do not
/// single Strand out.
pub const MAX_PREAMBLE_PAD: usize = 127;

/// Most hellos on one link: the dialler tries this many contacts that the
/// beacon matches, in turn; the accepting side refuses the first ones and
/// drops the link at this many (the last is not answered). An honest beacon matches more than one contact about
/// 0.07% of the time per contact, so 8 is far more than honest links need;
/// it bounds what a stranger can make the acceptor compute (8 token scans).
pub const MAX_HELLOS_PER_LINK: usize = 8;

/// Most contacts a responder checks a handshake token against. Matching is
/// one keyed hash per contact and epoch (~0.3 µs), so this bounds the work a
/// stranger's hello costs at about 4 ms. Contacts past it are not
/// recognised.
pub const MAX_CONTACTS: usize = 4096;

/// Addresses in each list of a [`crate::Reach`] record (relays reserved on,
/// relays offered). A device uses a handful of relays; 8 bounds what a
/// contact can make us dial.
pub const MAX_REACH_ADDRESSES: usize = 8;

/// Longest address in a [`crate::Reach`] record, in bytes of binary
/// multiaddr (an IPv6 address, a port, a 38-byte PeerId and a circuit
/// marker take under 80).
pub const MAX_REACH_ADDRESS_LEN: usize = 255;

/// How long a device keeps one identity at relays: the default relay
/// reservation lasts an hour, so a new identity per reservation period
/// stops a relay from linking a device's hours together.
pub const RELAY_EPOCH: Time = 60 * MINUTE;

/// Most keys asked about in one QUERY frame (40 bytes each, 10 KiB): the
/// peer looks each up once. Delivery confirmations for more are split.
pub const MAX_QUERY_KEYS: usize = 256;

/// Most members a device holds, summed over the epochs one author
/// welcomed it into ([`crate::Chain::welcomed_members`]): a welcome that
/// would take them past it is not taken ([`crate::Chain::take_welcome`]),
/// and the node declines it unstored. 64 groups of the most members
/// ([`crate::MAX_GROUP_MEMBERS`], 1,000), or 1,280 groups of fifty: more
/// than one contact brings anyone into. Each member held costs some 190
/// bytes of memory (its keys, its name, its key again in its epoch's
/// log), read at every unlock and copied at every change of the groups
/// before their member lists were shared: 64,000 is some 12 MB for the
/// groups of one contact. Without it, one contact's 4,096 welcomes (the
/// node's number) into groups of 1,000 made-up members, 530 MB on disk
/// within their allowance and budget, held 4 million members: 780 MB.
pub const MAX_WELCOMED_MEMBERS: usize = 64 * crate::membership::MAX_GROUP_MEMBERS;
