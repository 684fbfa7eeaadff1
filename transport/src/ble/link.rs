//! The BLE link layer: a reliable, ordered, flow-controlled byte stream
//! over small packets. Sans-IO.
//!
//! A [`BleLink`] turns the bytes a Strand session writes into packets no
//! bigger than one GATT write or notification (ATT MTU − 3, 20 bytes at
//! the least) or one L2CAP SDU, and turns the packets that arrive back
//! into the same bytes, in order. It assumes nothing of the packet layer
//! but that a packet arrives whole or not at all: lost, duplicated and
//! late packets are repaired, a slow reader holds its writer back instead
//! of losing data, and a peer that breaks the rules ends the link with an
//! error (never a panic).
//!
//! # Frames
//!
//! Every packet is one frame; the first byte says which. Sequence numbers
//! are 16 bits on the wire and count frames (not bytes); the receiver
//! reads them relative to what it expects, so they wrap freely.
//!
//! | frame | layout | |
//! |-------|--------|-|
//! | HELLO | `01` version `u8` · max receive `u16` · window `u16` | sent first by both sides, again until acknowledged |
//! | DATA  | `02` seq `u16` · 1.. bytes of the stream | |
//! | FIN   | `03` seq `u16` | the stream's end; takes a sequence number |
//! | ACK   | `04` next `u16` · window `u16` · sack `u32` | |
//! | PROBE | `05` | asks for an ACK (a writer held by a closed window) |
//! | ABORT | `06` reason `u8` | the sender gives up on the link |
//!
//! Integers are big-endian. An ACK says: every frame before `next` has
//! arrived, the writer may send frames up to `next + window` (exclusive),
//! and bit *i* of `sack` says frame `next + 1 + i` has arrived too.
//!
//! # Reliability and flow control
//!
//! Selective repeat. The writer keeps every unacknowledged frame; a frame
//! is sent again when its retransmission timer fires (RFC 6298's estimator,
//! Karn's rule, exponential back-off), or at once when a later frame was
//! acknowledged and this one was last sent a smoothed round trip ago. The
//! reader buffers frames that arrive early, within its window. Its window
//! is what its receive buffer can still hold, counted in full frames, so
//! an application that stops reading stops the writer (which then probes
//! the window) instead of losing data. The window's right edge never moves
//! back.
//!
//! A link that makes no progress for [`LINK_TIMEOUT`] while it waits on
//! the peer (frames unacknowledged, or the HELLOs not yet both ways) ends
//! with [`LinkError::TimedOut`]; so does one whose own stream is over and
//! acknowledged, and everything that arrived read, when the peer sends
//! nothing of its stream, and no end, for as long (only the peer keeps it
//! up then: no stranger holds a link open by saying nothing). An idle
//! link whose streams are both open never times out here (keepalives are
//! the session's job).
//!
//! # Drive loop
//!
//! ```
//! use strand_transport::ble::link::{BleLink, LinkConfig};
//! let config = LinkConfig::default();
//! let (mut a, mut b) = (BleLink::new(config), BleLink::new(config));
//! a.write(b"hello over BLE").unwrap();
//! a.finish();
//! let mut now = 0; // microseconds, from any origin
//! let mut got = Vec::new();
//! while !(a.is_closed() && b.is_closed()) {
//!     // Send what each side has to send (a radio would carry it).
//!     while let Some(p) = a.poll_transmit(now) { b.handle_packet(now, &p).unwrap(); }
//!     while let Some(p) = b.poll_transmit(now) { a.handle_packet(now, &p).unwrap(); }
//!     let mut buf = [0u8; 64];
//!     let n = b.read(&mut buf);
//!     got.extend_from_slice(&buf[..n]);
//!     if b.is_eof() && b.send_capacity() > 0 {
//!         b.finish(); // the reader ends its stream too, and sends that
//!         continue; // before waiting for anything
//!     }
//!     // Nothing to send: wait for the earliest deadline.
//!     now = [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min().unwrap_or(now).max(now);
//!     a.handle_timeout(now);
//!     b.handle_timeout(now);
//! }
//! assert_eq!(got, b"hello over BLE");
//! ```

use std::collections::{BTreeMap, VecDeque};

/// Time in microseconds from an origin the caller picks.
pub type Micros = u64;

/// The protocol version HELLO carries.
pub const VERSION: u8 = 1;
/// Bytes before the stream's bytes in a DATA frame.
pub const DATA_HEADER: usize = 3;
/// Smallest packet a link works with: below the ATT default MTU (23) less
/// the 3-byte ATT header, since BlueZ's notification sockets keep 2 bytes
/// more back (18 at MTU 23); every frame but DATA is at most 9 bytes.
pub const MIN_PACKET: usize = 16;
/// Largest packet a link works with: comfortably above BLE's 512-byte
/// attribute limit and the L2CAP SDUs BlueZ and phones use; bounds the
/// memory a peer's window can claim.
pub const MAX_PACKET: usize = 4096;
/// Most frames either side may have in flight: covers a BLE link's
/// bandwidth-delay product many times over (2M PHY, 30 ms intervals:
/// ~30 frames), and keeps 16-bit sequence numbers unambiguous.
pub const MAX_WINDOW: u16 = 512;
/// Stream bytes a writer buffers beyond what is in flight: enough to keep
/// the radio busy while the session makes its next packet, and no more.
/// Bytes queued here wait their turn on a ~100 kB/s radio, and so does
/// every round trip of the session above (64 KiB would add ~0.7 s).
pub const SEND_BUFFER: usize = 4 * 1024;
/// An ACK goes out after a quarter of the window (at least this many
/// in-order frames)... Every ACK takes air time from the data: one in each
/// connection event costs a 1M-PHY link a sixth of its packets.
const ACK_EVERY: u32 = 4;
/// ...or this long after the first unacknowledged one, for the end of a
/// burst. ACKs take air time from the data (a 1M-PHY, 15 ms event fits six
/// full packets with 192 µs to spare; an ACK in the wrong slot costs one),
/// so they are few: about one every three events in a bulk transfer.
/// Still short against the retransmission timeout's floor.
const ACK_DELAY: Micros = 25_000;
/// Retransmission timeouts (RFC 6298, with a floor suited to BLE's 7.5–
/// 30 ms connection intervals, where a round trip takes two of them).
const INITIAL_RTO: Micros = 1_000_000;
const MIN_RTO: Micros = 100_000;
/// Low enough that a lossy link tries a frame a dozen times within
/// [`LINK_TIMEOUT`].
const MAX_RTO: Micros = 2_000_000;
/// A link with frames unacknowledged and no progress for this long is
/// broken (BLE's own supervision timeout is at most 32 s).
pub const LINK_TIMEOUT: Micros = 30_000_000;

const TAG_HELLO: u8 = 1;
const TAG_DATA: u8 = 2;
const TAG_FIN: u8 = 3;
const TAG_ACK: u8 = 4;
const TAG_PROBE: u8 = 5;
const TAG_ABORT: u8 = 6;
const HELLO_LEN: usize = 6;
const ACK_LEN: usize = 9;
const SACK_BITS: u64 = 32;

/// One side's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Largest packet this side can write: the ATT MTU less 3 for GATT,
    /// the L2CAP SDU size for a channel. Clamped to
    /// [`MIN_PACKET`]..=[`MAX_PACKET`].
    pub max_write: usize,
    /// Largest packet this side accepts (same clamp). The other side
    /// writes no more than the smaller of its own `max_write` and this.
    pub max_receive: usize,
    /// Frames this side accepts ahead of what it has read, at most
    /// [`MAX_WINDOW`]. The receive buffer holds this many full frames.
    pub window: u16,
}

impl Default for LinkConfig {
    /// MTU 247, the usual negotiated value (244-byte packets), and a
    /// 64-frame window (~15 KiB).
    fn default() -> Self {
        LinkConfig {
            max_write: 244,
            max_receive: 244,
            window: 64,
        }
    }
}

impl LinkConfig {
    /// Settings for packets of `payload` bytes both ways.
    pub fn with_packet(payload: usize) -> LinkConfig {
        LinkConfig {
            max_write: payload,
            max_receive: payload,
            ..LinkConfig::default()
        }
    }

    fn clamped(self) -> LinkConfig {
        LinkConfig {
            max_write: self.max_write.clamp(MIN_PACKET, MAX_PACKET),
            max_receive: self.max_receive.clamp(MIN_PACKET, MAX_PACKET),
            window: self.window.clamp(1, MAX_WINDOW),
        }
    }
}

/// Why a link ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The peer sent something that is not a frame of this protocol.
    #[error("malformed BLE frame: {0}")]
    Malformed(&'static str),
    /// The peer broke the protocol's rules with well-formed frames.
    #[error("BLE link protocol violation: {0}")]
    Violation(&'static str),
    /// The peer speaks another version.
    #[error("the other device speaks BLE link version {0}, this one {VERSION}")]
    Version(u8),
    /// The peer sent a packet bigger than this side accepts.
    #[error("a {len}-byte packet where at most {max} were agreed")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No progress for [`LINK_TIMEOUT`].
    #[error("the other device stopped answering")]
    TimedOut,
    /// The peer gave up on the link (and said why).
    #[error("the other device ended the link ({0})")]
    PeerAborted(Reason),
    /// The radio connection went away (reported by the caller).
    #[error("the Bluetooth connection dropped")]
    Disconnected,
    /// This side gave up ([`BleLink::abort`]).
    #[error("the link was ended here")]
    Aborted,
    /// A write after [`BleLink::finish`].
    #[error("the stream was already finished")]
    Finished,
}

/// What an ABORT frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The sender found the receiver's frames broken.
    Protocol,
    /// The sender's application closed the link.
    Closed,
    /// A reason this version does not know.
    Other(u8),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Protocol => f.write_str("it could not read this device's frames"),
            Reason::Closed => f.write_str("closed"),
            Reason::Other(n) => write!(f, "reason {n}"),
        }
    }
}

impl Reason {
    fn code(self) -> u8 {
        match self {
            Reason::Protocol => 1,
            Reason::Closed => 2,
            Reason::Other(n) => n,
        }
    }

    fn from_code(code: u8) -> Reason {
        match code {
            1 => Reason::Protocol,
            2 => Reason::Closed,
            n => Reason::Other(n),
        }
    }
}

/// Counters, for status screens and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets written (every frame kind).
    pub packets_sent: u64,
    /// Bytes in them.
    pub bytes_sent: u64,
    /// DATA and FIN frames sent again.
    pub retransmitted: u64,
    /// Packets received (including ones dropped as duplicates).
    pub packets_received: u64,
    /// Bytes in them.
    pub bytes_received: u64,
    /// Stream bytes handed to the reader.
    pub delivered: u64,
}

/// The other side, once its HELLO has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeerHello {
    max_receive: usize,
    window: u16,
}

/// A DATA or FIN frame this side sent and the peer has not acknowledged.
#[derive(Debug)]
struct Outgoing {
    seq: u64,
    /// Empty for FIN.
    payload: Vec<u8>,
    last_sent: Micros,
    sends: u32,
    sacked: bool,
    resend: bool,
}

/// A frame that arrived ahead of the reader's next one.
#[derive(Debug)]
enum Early {
    Data(Vec<u8>),
    Fin,
}

/// One end of a BLE link. See the [module docs](self) for the protocol
/// and the drive loop.
#[derive(Debug)]
pub struct BleLink {
    config: LinkConfig,
    error: Option<LinkError>,
    /// An ABORT to send (once) after a local error.
    abort_due: Option<Reason>,
    peer: Option<PeerHello>,
    // Writing.
    hello_due: bool,
    hello_acked: bool,
    hello_sent: Micros,
    send_buf: VecDeque<u8>,
    fin_queued: bool,
    fin_sent: bool,
    in_flight: VecDeque<Outgoing>,
    snd_una: u64,
    snd_next: u64,
    /// The peer lets this side send frames below this.
    snd_limit: u64,
    probe_due: bool,
    probe_at: Option<Micros>,
    srtt: Option<Micros>,
    rttvar: Micros,
    rto: Micros,
    backoff: u32,
    last_progress: Micros,
    /// When the peer last sent a new frame of its stream, or this side
    /// last opened its window wider: what the wait for the peer's end is
    /// counted from.
    heard: Micros,
    // Reading.
    rcv_next: u64,
    early: BTreeMap<u64, Early>,
    readable: VecDeque<u8>,
    /// The peer's FIN's sequence number, once it arrived.
    fin_seq: Option<u64>,
    peer_fin: bool,
    ack_now: bool,
    ack_at: Option<Micros>,
    unacked_frames: u32,
    /// The window (frames) in the last ACK sent.
    advertised: u64,
    stats: LinkStats,
}

impl BleLink {
    /// A link end, with nothing sent yet.
    pub fn new(config: LinkConfig) -> BleLink {
        BleLink {
            config: config.clamped(),
            error: None,
            abort_due: None,
            peer: None,
            hello_due: true,
            hello_acked: false,
            hello_sent: 0,
            send_buf: VecDeque::new(),
            fin_queued: false,
            fin_sent: false,
            in_flight: VecDeque::new(),
            snd_una: 0,
            snd_next: 0,
            snd_limit: 0,
            probe_due: false,
            probe_at: None,
            srtt: None,
            rttvar: 0,
            rto: INITIAL_RTO,
            backoff: 0,
            last_progress: 0,
            heard: 0,
            rcv_next: 0,
            early: BTreeMap::new(),
            readable: VecDeque::new(),
            fin_seq: None,
            peer_fin: false,
            ack_now: false,
            ack_at: None,
            unacked_frames: 0,
            advertised: 0,
            stats: LinkStats::default(),
        }
    }

    /// This side's settings (after clamping).
    pub fn config(&self) -> LinkConfig {
        self.config
    }

    /// The largest packet this side writes, once the peer's HELLO said what
    /// it accepts.
    pub fn packet_size(&self) -> Option<usize> {
        self.peer.map(|p| self.config.max_write.min(p.max_receive))
    }

    /// Why the link ended, if it did.
    pub fn error(&self) -> Option<&LinkError> {
        self.error.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Stream bytes this side can still take in [`write`](Self::write).
    pub fn send_capacity(&self) -> usize {
        if self.error.is_some() || self.fin_queued {
            return 0;
        }
        SEND_BUFFER.saturating_sub(self.send_buf.len())
    }

    /// Queues stream bytes; returns how many were taken (fewer than given
    /// when the send buffer is full: try again after the peer acknowledges).
    pub fn write(&mut self, data: &[u8]) -> Result<usize, LinkError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.fin_queued {
            return Err(LinkError::Finished);
        }
        let n = data.len().min(self.send_capacity());
        self.send_buf.extend(&data[..n]);
        Ok(n)
    }

    /// Ends the stream after what was written (the peer reads an end of
    /// stream).
    pub fn finish(&mut self) {
        self.fin_queued = true;
    }

    /// Ends the link at once: an ABORT tells the peer. Nothing more is
    /// sent or accepted.
    pub fn abort(&mut self) {
        if self.error.is_none() {
            self.error = Some(LinkError::Aborted);
            self.abort_due = Some(Reason::Closed);
        }
    }

    /// The radio connection dropped: the link is over (nothing to send).
    /// It is an error unless both streams had ended and everything but this
    /// side's FIN was acknowledged (the peer, done too, may disconnect
    /// before that last ACK arrives).
    pub fn handle_disconnect(&mut self) {
        let done = self.peer_fin
            && self.fin_sent
            && self.send_buf.is_empty()
            && self.in_flight.iter().all(|f| f.payload.is_empty());
        if done && self.error.is_none() {
            self.in_flight.clear();
            return;
        }
        if self.error.is_none() {
            self.error = Some(LinkError::Disconnected);
        }
        self.abort_due = None;
    }

    /// Takes stream bytes that arrived, in order. Returns 0 when there are
    /// none (see [`is_eof`](Self::is_eof) for the end of the stream).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.readable.len());
        for (slot, byte) in buf.iter_mut().zip(self.readable.drain(..n)) {
            *slot = byte;
        }
        self.stats.delivered += n as u64;
        // Tell the writer as soon as a closed (or nearly closed) window has
        // room for a quarter of its frames again.
        if n > 0 && self.error.is_none() {
            let quarter = u64::from(self.config.window).div_ceil(4);
            if self.advertised < quarter && self.window() >= quarter {
                self.ack_now = true;
            }
        }
        n
    }

    /// Bytes waiting to be read.
    pub fn readable(&self) -> usize {
        self.readable.len()
    }

    /// Whether the peer ended its stream and everything before the end has
    /// been read.
    pub fn is_eof(&self) -> bool {
        self.peer_fin && self.readable.is_empty()
    }

    /// Whether both streams are over: this side's end was acknowledged and
    /// the peer's was read (or the link broke).
    pub fn is_closed(&self) -> bool {
        self.error.is_some()
            || (self.fin_sent
                && self.in_flight.is_empty()
                && self.send_buf.is_empty()
                && self.is_eof())
    }

    /// Whether this side has sent everything written and had it
    /// acknowledged.
    pub fn is_flushed(&self) -> bool {
        self.send_buf.is_empty() && self.in_flight.is_empty()
    }

    fn fail(&mut self, e: LinkError) -> LinkError {
        if self.error.is_none() {
            tracing::debug!(error = %e, "BLE link failed");
            self.error = Some(e.clone());
            self.abort_due = match e {
                LinkError::Malformed(_)
                | LinkError::Violation(_)
                | LinkError::Version(_)
                | LinkError::TooLarge { .. } => Some(Reason::Protocol),
                _ => None,
            };
        }
        e
    }

    /// Frames the receive buffer still has room for (the window offered).
    fn window(&self) -> u64 {
        let frame = (self.config.max_receive - DATA_HEADER) as u64;
        let capacity = frame * u64::from(self.config.window);
        let free = capacity.saturating_sub(self.readable.len() as u64);
        (free / frame).min(u64::from(self.config.window))
    }

    /// Handles one packet from the peer. An error ends the link (an ABORT
    /// goes out from [`poll_transmit`](Self::poll_transmit)); so does the
    /// peer's ABORT.
    pub fn handle_packet(&mut self, now: Micros, packet: &[u8]) -> Result<(), LinkError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.stats.packets_received += 1;
        self.stats.bytes_received += packet.len() as u64;
        if packet.len() > self.config.max_receive {
            return Err(self.fail(LinkError::TooLarge {
                len: packet.len(),
                max: self.config.max_receive,
            }));
        }
        let Some((&tag, body)) = packet.split_first() else {
            return Err(self.fail(LinkError::Malformed("an empty packet")));
        };
        match tag {
            TAG_HELLO => self.on_hello(body),
            TAG_DATA | TAG_FIN => self.on_data(now, tag == TAG_FIN, body),
            TAG_ACK => self.on_ack(now, body),
            TAG_PROBE if body.is_empty() => {
                if self.peer.is_some() {
                    self.ack_now = true;
                }
                Ok(())
            }
            TAG_ABORT if body.len() == 1 => {
                let e = LinkError::PeerAborted(Reason::from_code(body[0]));
                self.error = Some(e.clone());
                self.abort_due = None;
                Err(e)
            }
            TAG_PROBE | TAG_ABORT => {
                Err(self.fail(LinkError::Malformed("a frame of the wrong length")))
            }
            _ => Err(self.fail(LinkError::Malformed("an unknown frame type"))),
        }
    }

    fn on_hello(&mut self, body: &[u8]) -> Result<(), LinkError> {
        if body.len() != HELLO_LEN - 1 {
            return Err(self.fail(LinkError::Malformed("a HELLO of the wrong length")));
        }
        if body[0] != VERSION {
            return Err(self.fail(LinkError::Version(body[0])));
        }
        let max_receive = usize::from(u16::from_be_bytes([body[1], body[2]]));
        let window = u16::from_be_bytes([body[3], body[4]]);
        if !(MIN_PACKET..=MAX_PACKET).contains(&max_receive) || window == 0 || window > MAX_WINDOW {
            return Err(self.fail(LinkError::Malformed("a HELLO with limits out of range")));
        }
        let hello = PeerHello {
            max_receive,
            window,
        };
        match self.peer {
            Some(known) if known != hello => {
                return Err(self.fail(LinkError::Violation("a second HELLO that differs")))
            }
            Some(_) => {}
            None => {
                self.peer = Some(hello);
                // Until its first ACK, the peer's HELLO is its window.
                self.snd_limit = self.snd_una + u64::from(window);
            }
        }
        self.ack_now = true;
        Ok(())
    }

    /// A 16-bit sequence number as the absolute one nearest to `base`.
    fn unwrap_seq(wire: u16, base: u64) -> u64 {
        let candidate = (base & !0xffff) | u64::from(wire);
        let half = 1u64 << 15;
        if candidate + half < base {
            candidate + (1 << 16)
        } else if candidate > base + half && candidate >= (1 << 16) {
            candidate - (1 << 16)
        } else {
            candidate
        }
    }

    fn on_data(&mut self, now: Micros, fin: bool, body: &[u8]) -> Result<(), LinkError> {
        if body.len() < 2 || (fin && body.len() != 2) {
            return Err(self.fail(LinkError::Malformed(
                "a DATA or FIN frame of the wrong length",
            )));
        }
        if self.peer.is_none() {
            // Its HELLO was lost: the peer sends it again until this side
            // acknowledges it, and the frame again after that.
            return Ok(());
        }
        let seq = Self::unwrap_seq(u16::from_be_bytes([body[0], body[1]]), self.rcv_next);
        let payload = &body[2..];
        if seq < self.rcv_next {
            self.ack_now = true; // a duplicate: the ACK was lost
            return Ok(());
        }
        if self
            .fin_seq
            .is_some_and(|end| seq > end || (fin && seq != end))
        {
            return Err(self.fail(LinkError::Violation("a frame after the end of the stream")));
        }
        if seq >= self.rcv_next + self.window() {
            self.ack_now = true; // beyond the window: say where it is
            return Ok(());
        }
        if fin && self.early.keys().any(|&s| s > seq) {
            return Err(self.fail(LinkError::Violation(
                "the end of the stream before its data",
            )));
        }
        if fin {
            self.fin_seq = Some(seq);
        }
        if !self.early.contains_key(&seq) {
            self.heard = now;
        }
        let in_order = seq == self.rcv_next;
        self.early.entry(seq).or_insert_with(|| {
            if fin {
                Early::Fin
            } else {
                Early::Data(payload.to_vec())
            }
        });
        while let Some(frame) = self.early.remove(&self.rcv_next) {
            self.rcv_next += 1;
            match frame {
                Early::Data(bytes) => self.readable.extend(bytes),
                Early::Fin => self.peer_fin = true,
            }
        }
        if !in_order || !self.early.is_empty() || self.peer_fin {
            self.ack_now = true;
        } else {
            self.unacked_frames += 1;
            if self.unacked_frames >= ACK_EVERY.max(u32::from(self.config.window) / 4) {
                self.ack_now = true;
            } else if self.ack_at.is_none() {
                self.ack_at = Some(now + ACK_DELAY);
            }
        }
        Ok(())
    }

    fn on_ack(&mut self, now: Micros, body: &[u8]) -> Result<(), LinkError> {
        if body.len() != ACK_LEN - 1 {
            return Err(self.fail(LinkError::Malformed("an ACK of the wrong length")));
        }
        self.hello_acked = true;
        let next = Self::unwrap_seq(u16::from_be_bytes([body[0], body[1]]), self.snd_una);
        let window = u64::from(u16::from_be_bytes([body[2], body[3]]));
        let sack = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        if window > u64::from(MAX_WINDOW) {
            return Err(self.fail(LinkError::Violation("a window beyond the limit")));
        }
        if next > self.snd_next {
            return Err(self.fail(LinkError::Violation("an ACK of frames never sent")));
        }
        if sack != 0 && next + SACK_BITS - u64::from(sack.leading_zeros()) + 1 > self.snd_next {
            return Err(self.fail(LinkError::Violation("a SACK of frames never sent")));
        }
        if next < self.snd_una {
            return Ok(()); // stale
        }
        // A round-trip sample comes from the newest frame this ACK is the
        // first to report, sent once (Karn): a frame that was already
        // selectively acknowledged arrived long ago.
        let mut sample = None;
        if next > self.snd_una {
            while self.in_flight.front().is_some_and(|f| f.seq < next) {
                let f = self.in_flight.pop_front().expect("checked");
                if f.sends == 1 && !f.sacked {
                    sample = Some(now.saturating_sub(f.last_sent));
                }
            }
            self.snd_una = next;
            self.last_progress = now;
            self.backoff = 0;
        }
        // The right edge never moves back (a reordered ACK could say less).
        self.snd_limit = self.snd_limit.max(next + window);
        if self.snd_limit > self.snd_next {
            self.probe_at = None;
        }
        let mut highest_sacked = None;
        for f in self.in_flight.iter_mut() {
            let bit = f.seq - next;
            if (1..=SACK_BITS).contains(&bit) && sack & (1 << (bit - 1)) != 0 {
                if !f.sacked && f.sends == 1 {
                    sample = Some(now.saturating_sub(f.last_sent));
                }
                f.sacked = true;
                highest_sacked = Some(f.seq);
            }
        }
        if let Some(rtt) = sample {
            self.rtt_sample(rtt);
        }
        // An honest receiver keeps what it acknowledged selectively: a
        // frame it reported and now lacks again is a peer taking it back.
        if self
            .in_flight
            .front()
            .is_some_and(|f| f.sacked && f.seq == next)
        {
            return Err(self.fail(LinkError::Violation(
                "a selectively acknowledged frame taken back",
            )));
        }
        if let Some(high) = highest_sacked {
            let srtt = self.srtt.unwrap_or(self.rto);
            for f in self.in_flight.iter_mut() {
                if f.seq < high && !f.sacked && now.saturating_sub(f.last_sent) >= srtt {
                    f.resend = true;
                }
            }
        }
        Ok(())
    }

    fn rtt_sample(&mut self, rtt: Micros) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                self.rttvar = (3 * self.rttvar + srtt.abs_diff(rtt)) / 4;
                self.srtt = Some((7 * srtt + rtt) / 8);
            }
        }
        let srtt = self.srtt.expect("just set");
        self.rto = (srtt + (4 * self.rttvar).max(1_000)).clamp(MIN_RTO, MAX_RTO);
    }

    fn current_rto(&self) -> Micros {
        (self.rto << self.backoff.min(6)).min(MAX_RTO)
    }

    /// The next packet to write, if any. Call until `None` whenever input
    /// was handled, a timer fired or bytes were written or read (a radio
    /// with no room for a packet simply stops calling).
    pub fn poll_transmit(&mut self, now: Micros) -> Option<Vec<u8>> {
        let packet = self.next_packet(now)?;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += packet.len() as u64;
        Some(packet)
    }

    fn next_packet(&mut self, now: Micros) -> Option<Vec<u8>> {
        if self.error.is_some() {
            return self.abort_due.take().map(|r| vec![TAG_ABORT, r.code()]);
        }
        if self.hello_due {
            self.hello_due = false;
            self.hello_sent = now;
            if self.last_progress == 0 {
                self.last_progress = now;
            }
            let mut p = vec![TAG_HELLO, VERSION];
            p.extend_from_slice(&(self.config.max_receive as u16).to_be_bytes());
            p.extend_from_slice(&self.config.window.to_be_bytes());
            return Some(p);
        }
        if self.ack_now || self.ack_at.is_some_and(|t| t <= now) {
            if self.peer.is_some() {
                let before = self.advertised;
                let ack = self.ack();
                if self.advertised > before {
                    self.heard = now; // the peer may send again
                }
                return Some(ack);
            }
            self.ack_now = false;
        }
        let packet_size = self.packet_size()?;
        if let Some(f) = self.in_flight.iter_mut().find(|f| f.resend && !f.sacked) {
            f.resend = false;
            f.last_sent = now;
            f.sends += 1;
            self.stats.retransmitted += 1;
            return Some(Self::data_frame(f.seq, &f.payload));
        }
        if self.snd_next < self.snd_limit {
            if !self.send_buf.is_empty() {
                let n = self.send_buf.len().min(packet_size - DATA_HEADER);
                let payload: Vec<u8> = self.send_buf.drain(..n).collect();
                return Some(self.send_new(now, payload));
            }
            if self.fin_queued && !self.fin_sent {
                self.fin_sent = true;
                return Some(self.send_new(now, Vec::new()));
            }
        } else if self.window_blocked() {
            // The window is closed and nothing is in flight to bring an ACK
            // that opens it: ask, now and then.
            match self.probe_at {
                None => self.probe_at = Some(now + self.current_rto()),
                Some(t) if t <= now || self.probe_due => {
                    self.probe_due = false;
                    self.probe_at = Some(now + self.current_rto());
                    return Some(vec![TAG_PROBE]);
                }
                Some(_) => {}
            }
        }
        None
    }

    /// Whether this side has frames to send, the peer's window is closed,
    /// and nothing in flight will bring an ACK that opens it.
    fn window_blocked(&self) -> bool {
        self.peer.is_some()
            && self.snd_next >= self.snd_limit
            && self.in_flight.is_empty()
            && (!self.send_buf.is_empty() || (self.fin_queued && !self.fin_sent))
    }

    fn send_new(&mut self, now: Micros, payload: Vec<u8>) -> Vec<u8> {
        let seq = self.snd_next;
        self.snd_next += 1;
        if self.in_flight.is_empty() {
            self.last_progress = now;
        }
        let frame = Self::data_frame(seq, &payload);
        self.in_flight.push_back(Outgoing {
            seq,
            payload,
            last_sent: now,
            sends: 1,
            sacked: false,
            resend: false,
        });
        frame
    }

    fn data_frame(seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(DATA_HEADER + payload.len());
        p.push(if payload.is_empty() {
            TAG_FIN
        } else {
            TAG_DATA
        });
        p.extend_from_slice(&(seq as u16).to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn ack(&mut self) -> Vec<u8> {
        self.ack_now = false;
        self.ack_at = None;
        self.unacked_frames = 0;
        let window = self.window();
        self.advertised = window;
        let mut sack = 0u32;
        for &seq in self.early.keys() {
            let bit = seq - self.rcv_next;
            if (1..=SACK_BITS).contains(&bit) {
                sack |= 1 << (bit - 1);
            }
        }
        let mut p = Vec::with_capacity(ACK_LEN);
        p.push(TAG_ACK);
        p.extend_from_slice(&(self.rcv_next as u16).to_be_bytes());
        p.extend_from_slice(&(window as u16).to_be_bytes());
        p.extend_from_slice(&sack.to_be_bytes());
        p
    }

    /// The next moment [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Micros> {
        if self.error.is_some() {
            return None;
        }
        let rto = self.current_rto();
        let hello = (!self.hello_acked && !self.hello_due).then_some(self.hello_sent + rto);
        // Whatever else is pending, a link waiting on the peer gives up at
        // LINK_TIMEOUT (so no peer can leave it waiting with no timer).
        let give_up = self.give_up_at();
        let retransmit = self
            .in_flight
            .iter()
            .filter(|f| !f.sacked && !f.resend)
            .map(|f| f.last_sent + rto)
            .min();
        let probe = self
            .probe_at
            .filter(|_| self.window_blocked() && !self.probe_due);
        [hello, retransmit, self.ack_at, probe, give_up]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the link gives up on a peer that makes no progress, if it is
    /// waiting on one: for an ACK of frames in flight, for the peer's
    /// HELLO (an ACK can come before it, and a peer that never sends it
    /// lets this side send nothing) or an ACK of this side's; or, this
    /// side's stream over and acknowledged and all that arrived read, for
    /// more of the peer's stream or its end.
    fn give_up_at(&self) -> Option<Micros> {
        if !self.in_flight.is_empty() || !self.hello_acked || self.peer.is_none() {
            return Some(self.last_progress + LINK_TIMEOUT);
        }
        let done = self.fin_sent && self.send_buf.is_empty();
        if done && !self.peer_fin && self.readable.is_empty() {
            return Some(self.last_progress.max(self.heard) + LINK_TIMEOUT);
        }
        None
    }

    /// Fires what is due at `now`.
    pub fn handle_timeout(&mut self, now: Micros) {
        if self.error.is_some() {
            return;
        }
        let rto = self.current_rto();
        if self.give_up_at().is_some_and(|t| t <= now) {
            self.fail(LinkError::TimedOut);
            return;
        }
        let mut fired = false;
        if !self.hello_acked && !self.hello_due && self.hello_sent + rto <= now {
            self.hello_due = true;
            fired = true;
        }
        for f in self.in_flight.iter_mut() {
            if !f.sacked && !f.resend && f.last_sent + rto <= now {
                f.resend = true;
                fired = true;
            }
        }
        if fired {
            self.backoff += 1;
        }
        if self.window_blocked() && self.probe_at.is_some_and(|t| t <= now) {
            self.probe_due = true;
        }
    }
}
