//! An emulated BLE radio, in virtual time: what the link layer's tests and
//! benchmarks run over.
//!
//! It models one BLE connection as the controllers run it. Time is cut
//! into *connection events*, one every [`RadioConfig::interval`]. In an
//! event the central and the peripheral take turns: the central sends a
//! packet (or an empty one), the peripheral answers with one (or an empty
//! one), 150 µs apart (T_IFS), and so on while either has something queued
//! and the event has time left before the next one. A packet's air time
//! follows the PHY (1M or 2M), with its link-layer, L2CAP and ATT headers,
//! split into link-layer fragments of at most 251 bytes (data length
//! extension). Each side's controller queues a few packets
//! ([`RadioConfig::queue`]); a host that finds it full waits, which is how
//! a radio holds back its writer.
//!
//! On top of the radio's own model the knobs a test needs: packets lost
//! at the host (a notification queue that overflowed; the link layer
//! repairs it), a packet size per direction (asymmetric MTUs) and a moment
//! the connection drops.
//!
//! [`Pair`] drives a [`BleLink`] at each end, and an [`Endpoint`] above
//! each link that writes and reads its stream (a bulk transfer, or a
//! Strand session in the integration tests), quinn-`Pair`-style: `step`
//! jumps to the next connection event or deadline.
//!
//! Before a connection there is discovery: [`meeting`] puts two devices
//! in range of each other, each advertising and scanning on its duty
//! cycle ([`super::duty`]), and says when they have a link. The battery
//! setting's benchmark runs it.

use std::collections::VecDeque;

use std::time::Duration;

use super::duty::Schedule;
use super::link::{BleLink, LinkConfig, Micros};
use super::{sighting, Sighting};

/// The PHY a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phy {
    /// LE 1M: 1 µs a bit.
    OneM,
    /// LE 2M: 0.5 µs a bit.
    TwoM,
}

impl Phy {
    /// Air time of a link-layer packet with `payload` bytes of PDU payload:
    /// preamble (1 or 2 bytes), access address 4, header 2, payload, CRC 3.
    fn air_time(self, payload: usize) -> Micros {
        match self {
            Phy::OneM => (1 + 4 + 2 + payload as u64 + 3) * 8,
            Phy::TwoM => (2 + 4 + 2 + payload as u64 + 3) * 4,
        }
    }
}

/// Inter-frame space between packets of an event.
const T_IFS: Micros = 150;
/// Largest link-layer PDU payload with data length extension.
const MAX_LL_PAYLOAD: usize = 251;
/// L2CAP (4) and ATT (opcode 1, handle 2) headers on every packet.
const HOST_HEADERS: usize = 7;

/// Settings of an emulated connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RadioConfig {
    /// The PHY.
    pub phy: Phy,
    /// Connection interval (7.5 ms to 4 s; phones use 15–30 ms).
    pub interval: Micros,
    /// Largest packet each way: `[central → peripheral, peripheral →
    /// central]` (the ATT MTU less 3 on each side, which can differ).
    pub packet: [usize; 2],
    /// Probability that a packet is lost at the receiving host.
    pub loss: f64,
    /// When the connection drops, if it does.
    pub drop_at: Option<Micros>,
    /// Packets each controller queues.
    pub queue: usize,
}

impl RadioConfig {
    /// MTU 247 (244-byte packets) on `phy`, every `interval`.
    pub fn new(phy: Phy, interval: Micros) -> RadioConfig {
        RadioConfig {
            phy,
            interval,
            packet: [244, 244],
            loss: 0.0,
            drop_at: None,
            queue: 8,
        }
    }

    /// Air time of one packet of `len` bytes, all its fragments.
    fn air_time(&self, len: usize) -> Micros {
        let total = len + HOST_HEADERS;
        let full = total / MAX_LL_PAYLOAD;
        let rest = total % MAX_LL_PAYLOAD;
        let mut t = full as Micros * self.phy.air_time(MAX_LL_PAYLOAD);
        if rest > 0 {
            t += self.phy.air_time(rest);
        }
        t
    }

    /// What one exchange (a packet each way, either possibly empty) costs.
    fn exchange(&self, central: Option<usize>, peripheral: Option<usize>) -> Micros {
        let c = central.map_or(self.phy.air_time(0), |l| self.air_time(l));
        let p = peripheral.map_or(self.phy.air_time(0), |l| self.air_time(l));
        c + T_IFS + p + T_IFS
    }

    /// Stream-free payload rate one way, bytes a second: full packets from
    /// the central, empty answers, back to back in every event. What a
    /// link layer's goodput is measured against.
    pub fn payload_rate(&self) -> f64 {
        let per = self.exchange(Some(self.packet[0]), None);
        let per_event = (self.interval / per).max(1);
        (per_event as f64 * self.packet[0] as f64) * 1e6 / self.interval as f64
    }
}

/// Which end of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that connected (btleplug's side).
    Central = 0,
    /// The side that advertised (bluer's side).
    Peripheral = 1,
}

/// What runs above a link in a [`Pair`].
pub trait Endpoint {
    /// Moves bytes between the application and the link: write what it
    /// has, read what arrived. Called after anything happened to the link.
    fn drive(&mut self, now: Micros, link: &mut BleLink);
    /// The application's own next deadline.
    fn poll_timeout(&self) -> Option<Micros> {
        None
    }
}

/// Counters of what the radio carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RadioStats {
    /// Packets sent each way (`[central → peripheral, back]`).
    pub packets: [u64; 2],
    /// Bytes in them.
    pub bytes: [u64; 2],
    /// Packets the loss knob dropped.
    pub lost: u64,
    /// Connection events that carried anything.
    pub events: u64,
}

/// Two link ends over an emulated radio, with an endpoint above each.
pub struct Pair<E: Endpoint> {
    /// `[central, peripheral]`.
    pub links: [BleLink; 2],
    /// The applications above them.
    pub ends: [E; 2],
    /// The radio.
    pub radio: RadioConfig,
    /// What it carried.
    pub stats: RadioStats,
    now: Micros,
    queues: [VecDeque<Vec<u8>>; 2],
    connected: bool,
    rng: SplitMix,
}

impl<E: Endpoint> Pair<E> {
    /// A connection that starts at time 0. Each link's packet size is the
    /// radio's for the direction it writes.
    pub fn new(radio: RadioConfig, window: u16, ends: [E; 2], seed: u64) -> Pair<E> {
        let link = |write: usize, receive: usize| {
            BleLink::new(LinkConfig {
                max_write: write,
                max_receive: receive,
                window,
            })
        };
        Pair {
            links: [
                link(radio.packet[0], radio.packet[1]),
                link(radio.packet[1], radio.packet[0]),
            ],
            ends,
            radio,
            stats: RadioStats::default(),
            now: 0,
            queues: [VecDeque::new(), VecDeque::new()],
            connected: true,
            rng: SplitMix::new(seed),
        }
    }

    /// Virtual time.
    pub fn now(&self) -> Micros {
        self.now
    }

    /// Whether the connection is still up.
    pub fn connected(&self) -> bool {
        self.connected
    }

    fn random(&mut self) -> f64 {
        self.rng.next()
    }

    /// Lets side `i`'s application and link run, and queues what the link
    /// sends while the controller has room.
    fn service(&mut self, i: usize) {
        if !self.connected {
            return;
        }
        let now = self.now;
        // Twice: the application may write more once the link took bytes.
        for _ in 0..2 {
            self.ends[i].drive(now, &mut self.links[i]);
            while self.queues[i].len() < self.radio.queue {
                match self.links[i].poll_transmit(now) {
                    Some(p) => self.queues[i].push_back(p),
                    None => break,
                }
            }
        }
    }

    fn deliver(&mut self, to: usize, packet: Vec<u8>) {
        if self.radio.loss > 0.0 && self.random() < self.radio.loss {
            self.stats.lost += 1;
            return;
        }
        let now = self.now;
        // An error ends the link; the endpoint sees it on its next drive.
        let _ = self.links[to].handle_packet(now, &packet);
        self.service(to);
    }

    fn drop_connection(&mut self) {
        self.connected = false;
        self.queues = [VecDeque::new(), VecDeque::new()];
        for i in 0..2 {
            self.links[i].handle_disconnect();
            let now = self.now;
            self.ends[i].drive(now, &mut self.links[i]);
        }
    }

    /// One connection event at `start`: exchanges while anything is queued
    /// and the event has time.
    fn event(&mut self, start: Micros) {
        self.now = start;
        let end = start + self.radio.interval;
        let mut carried = false;
        loop {
            let c = self.queues[0].front().map(Vec::len);
            let p = self.queues[1].front().map(Vec::len);
            if c.is_none() && p.is_none() {
                break;
            }
            let cost = self.radio.exchange(c, p);
            if std::env::var("BLE_DEBUG").is_ok() && start < 200_000 {
                eprintln!("ev {start} now {} c {c:?} p {p:?} cost {cost}", self.now);
            }
            if self.now + cost > end && carried {
                break; // the rest waits for the next event
            }
            carried = true;
            // Both controllers send what they hold when the exchange starts:
            // an answer the peripheral's host makes now waits a turn.
            let (c, p) = (self.queues[0].pop_front(), self.queues[1].pop_front());
            let central_done =
                self.now + self.radio.exchange(c.as_ref().map(Vec::len), None) - T_IFS;
            let exchange_done = self.now + cost - T_IFS;
            if let Some(d) = self.radio.drop_at.filter(|&d| d <= exchange_done) {
                self.now = self.now.max(d);
                self.drop_connection();
                return;
            }
            if let Some(packet) = c {
                self.now = central_done;
                self.stats.packets[0] += 1;
                self.stats.bytes[0] += packet.len() as u64;
                self.deliver(1, packet);
            }
            if let Some(packet) = p {
                self.now = exchange_done;
                self.stats.packets[1] += 1;
                self.stats.bytes[1] += packet.len() as u64;
                self.deliver(0, packet);
            }
            self.now = exchange_done + T_IFS;
            self.service(0);
            self.service(1);
        }
        if carried {
            self.stats.events += 1;
        }
    }

    /// The next connection event at or after `t`.
    fn next_event(&self, t: Micros) -> Micros {
        t.div_ceil(self.radio.interval) * self.radio.interval
    }

    /// Advances to the next thing that happens — a connection event with
    /// packets to carry, a link's or an application's deadline, the drop —
    /// and handles it. Returns `false` when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        if !self.connected {
            return false;
        }
        for i in 0..2 {
            self.links[i].handle_timeout(self.now);
        }
        self.service(0);
        self.service(1);
        let radio = (!self.queues[0].is_empty() || !self.queues[1].is_empty())
            .then(|| self.next_event(self.now));
        let timer = (0..2)
            .flat_map(|i| [self.links[i].poll_timeout(), self.ends[i].poll_timeout()])
            .flatten()
            // What was due is done (or waits for room in a queue, which
            // the next event makes).
            .filter(|&t| t > self.now)
            .min();
        let drop = self.radio.drop_at.filter(|&d| d >= self.now);
        match (radio, timer) {
            (None, None) => match drop {
                Some(d) => {
                    self.now = d;
                    self.drop_connection();
                    true
                }
                None => false,
            },
            (Some(r), t) if t.is_none_or(|t| r <= t) => {
                if drop.is_some_and(|d| d < r) {
                    self.now = drop.expect("checked");
                    self.drop_connection();
                } else {
                    self.event(r);
                }
                true
            }
            (_, Some(t)) => {
                if drop.is_some_and(|d| d < t) {
                    self.now = drop.expect("checked");
                    self.drop_connection();
                    return true;
                }
                self.now = t;
                true
            }
            (Some(_), None) => unreachable!("matched above"),
        }
    }

    /// Steps until nothing is left to happen or `until` passes.
    pub fn run_until(&mut self, until: Micros) {
        while self.now < until && self.step() {}
    }

    /// Steps until `done` holds, nothing is left to happen, or `limit`
    /// passes. Returns whether `done` held.
    pub fn run_while(&mut self, limit: Micros, mut done: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.now >= limit || !self.step() {
                return done(self);
            }
        }
    }
}

/// An endpoint that writes a byte string, reads what arrives, and finishes
/// its stream once written (and once the other side's has ended, if
/// `echo_eof`).
#[derive(Debug, Default, Clone)]
pub struct Bulk {
    /// What to send.
    pub outgoing: Vec<u8>,
    /// How much of it the link took.
    pub written: usize,
    /// What arrived.
    pub received: Vec<u8>,
    /// Whether the other side's stream ended.
    pub eof: bool,
    /// When the last byte arrived.
    pub last_arrival: Micros,
    /// The error the link ended with, if it did.
    pub error: Option<super::link::LinkError>,
}

impl Bulk {
    /// Sends `bytes`.
    pub fn sending(bytes: Vec<u8>) -> Bulk {
        Bulk {
            outgoing: bytes,
            ..Bulk::default()
        }
    }
}

impl Endpoint for Bulk {
    fn drive(&mut self, now: Micros, link: &mut BleLink) {
        if let Some(e) = link.error() {
            self.error.get_or_insert_with(|| e.clone());
            return;
        }
        if self.written < self.outgoing.len() {
            if let Ok(n) = link.write(&self.outgoing[self.written..]) {
                self.written += n;
            }
        }
        if self.written == self.outgoing.len() {
            link.finish();
        }
        let mut buf = [0u8; 4096];
        loop {
            let n = link.read(&mut buf);
            if n == 0 {
                break;
            }
            self.received.extend_from_slice(&buf[..n]);
            self.last_arrival = now;
        }
        self.eof = link.is_eof();
    }
}

/// splitmix64: deterministic from any seed (zero included), and enough
/// for loss and phases.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64) -> SplitMix {
        SplitMix(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, `below`).
    fn below(&mut self, below: Micros) -> Micros {
        (self.next() * below as f64) as Micros
    }
}

/// The advertising delay the specification adds to every interval:
/// 0–10 ms at random, so two advertisers never stay in step.
const ADV_DELAY: Micros = 10_000;

/// When two devices that come into range of each other at time 0 have a
/// link, in virtual time, or `None` if they have none by `limit`.
///
/// Each scans on its own [`Schedule`] at a random phase and advertises
/// every `advertise_every` plus the advertising delay, starting at a
/// random moment. An advertising event reaches a device that is scanning
/// unless it is lost (`loss`, per event). What a device does with what it
/// hears is the transport's rule ([`sighting`]): the device whose hint
/// sorts first (`first`: device 0 or 1) dials at once; the other, only
/// when it hears the first again [`super::REDISCOVER`] after it first did.
/// A device that dials connects at the next advertising event of the other
/// it receives (connecting listens whatever the scan schedule).
pub fn meeting(
    schedules: [&Schedule; 2],
    first: usize,
    loss: f64,
    limit: Duration,
    seed: u64,
) -> Option<Micros> {
    let mut rng = SplitMix::new(seed);
    let micros = |d: Duration| d.as_micros() as Micros;
    let phase = [
        rng.below(micros(schedules[0].period).max(1)),
        rng.below(micros(schedules[1].period).max(1)),
    ];
    // Each device's next advertising event.
    let mut next = [
        rng.below(micros(schedules[0].advertise_every).max(1)),
        rng.below(micros(schedules[1].advertise_every).max(1)),
    ];
    let mut reported: [Option<Micros>; 2] = [None, None];
    let mut dialing = [false, false];
    let limit = micros(limit);
    loop {
        // The earlier event: device `from` advertises, `to` may hear it.
        let from = if next[0] <= next[1] { 0 } else { 1 };
        let to = 1 - from;
        let now = next[from];
        if now > limit {
            return None;
        }
        next[from] = now + micros(schedules[from].advertise_every) + rng.below(ADV_DELAY + 1);
        let (scanning, _) = schedules[to].at(Duration::from_micros(now + phase[to]));
        let received = rng.next() >= loss;
        if !received || !(scanning || dialing[to]) {
            continue;
        }
        if dialing[to] {
            return Some(now);
        }
        let since = reported[to].map(|t| Duration::from_micros(now - t));
        match sighting(to == first, since) {
            Sighting::Dial => {
                reported[to] = Some(now);
                dialing[to] = true;
            }
            Sighting::Wait => reported[to] = Some(now),
            Sighting::Nothing => {}
        }
    }
}

#[cfg(test)]
mod meeting_tests {
    use super::*;
    use crate::ble::duty::Duty;

    fn meetings(duty: Duty, loss: f64, n: u64) -> Vec<Micros> {
        let s = duty.schedule();
        (0..n)
            .map(|seed| {
                meeting(
                    [&s, &s],
                    (seed % 2) as usize,
                    loss,
                    Duration::from_secs(3600),
                    seed,
                )
                .expect("they meet within the hour")
            })
            .collect()
    }

    fn mean(v: &[Micros]) -> f64 {
        v.iter().sum::<Micros>() as f64 / v.len() as f64 / 1e6
    }

    #[test]
    fn devices_that_scan_less_meet_later() {
        let [always, balanced, saver] = Duty::ALL.map(|d| mean(&meetings(d, 0.1, 300)));
        assert!(
            always < balanced && balanced < saver,
            "{always} {balanced} {saver}"
        );
        // Scanning all the time, a meeting takes an advertising event to
        // be heard and one more to connect: a few seconds at most.
        assert!(always < 5.0, "{always}");
    }

    #[test]
    fn lost_advertisements_make_meetings_later() {
        let clear = mean(&meetings(Duty::Balanced, 0.0, 300));
        let lossy = mean(&meetings(Duty::Balanced, 0.5, 300));
        assert!(clear < lossy, "{clear} {lossy}");
    }

    #[test]
    fn devices_that_never_hear_each_other_never_meet() {
        let s = Duty::Always.schedule();
        assert_eq!(meeting([&s, &s], 0, 1.0, Duration::from_secs(600), 7), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_meeting() {
        let s = Duty::Saver.schedule();
        let m = |seed| meeting([&s, &s], 1, 0.2, Duration::from_secs(3600), seed);
        assert_eq!(m(42), m(42));
        assert!(
            (0..20)
                .map(m)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 10
        );
    }
}
