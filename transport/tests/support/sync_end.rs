//! A Strand device above a BLE link, for the link layer's tests and
//! benchmarks: its session writes into a [`BleLink`] and reads from it,
//! over the emulated radio.
#![allow(dead_code)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::harness::{Peer, EPOCH};
use strand_sync::Config;
use strand_transport::ble::link::{BleLink, Micros};
use strand_transport::ble::radio::{Endpoint, Pair, RadioConfig};

/// An hour: longer than any test runs.
const HOUR: Micros = 3_600_000_000;

/// A Strand device above a BLE link: its session writes into the link and
/// reads from it.
pub struct SyncEnd {
    /// The device.
    pub peer: Peer,
    dial: bool,
    started: bool,
    rng: ChaCha20Rng,
    pending: Vec<u8>,
    written: usize,
}

impl SyncEnd {
    /// Dials (`dial`) or accepts when its link starts.
    pub fn new(peer: Peer, dial: bool, seed: u64) -> SyncEnd {
        SyncEnd {
            peer,
            dial,
            started: false,
            rng: ChaCha20Rng::seed_from_u64(seed),
            pending: Vec::new(),
            written: 0,
        }
    }

    /// Messages in its conversation.
    pub fn count(&self) -> usize {
        self.peer.store.len(&self.peer.group().id)
    }
}

fn to_time(now: Micros) -> u64 {
    EPOCH + now / 1000
}

impl Endpoint for SyncEnd {
    fn drive(&mut self, now_us: Micros, link: &mut BleLink) {
        let now = to_time(now_us);
        let peer = &mut self.peer;
        if !self.started {
            self.started = true;
            peer.session = Some(if self.dial {
                peer.endpoint.dial(peer.config, now, &mut self.rng)
            } else {
                peer.endpoint.accept(peer.config, now, &mut self.rng)
            });
        }
        let Some(session) = peer.session.as_mut() else {
            return;
        };
        if session.poll_timeout().is_some_and(|t| t <= now) {
            session.handle_timeout(now);
        }
        let mut buf = [0u8; 2048];
        loop {
            let n = link.read(&mut buf);
            if n == 0 {
                break;
            }
            let _ = session.handle_input(now, &buf[..n], &peer.store);
            session.settle(now, &mut peer.store);
        }
        if link.is_eof() || link.error().is_some() {
            session.handle_eof();
        }
        loop {
            if self.written < self.pending.len() {
                match link.write(&self.pending[self.written..]) {
                    Ok(n) => self.written += n,
                    Err(_) => break,
                }
                if self.written < self.pending.len() {
                    break; // the link is full: later
                }
            } else if let Some(p) = session.poll_transmit(now, &peer.store) {
                self.pending = p;
                self.written = 0;
            } else {
                break;
            }
        }
        if session.is_closed() {
            link.finish();
        }
        peer.events
            .extend(std::iter::from_fn(|| session.poll_event()));
        if session.is_closed() || link.error().is_some() {
            peer.session = None;
        }
    }

    fn poll_timeout(&self) -> Option<Micros> {
        let t = self.peer.session.as_ref()?.poll_timeout()?;
        Some(t.saturating_sub(EPOCH) * 1000)
    }
}

/// Alice and Bob with `n` messages each that the other lacks, BLE-sized
/// session packets as the node uses.
pub fn devices(n: usize) -> (Peer, Peer) {
    devices_with([n, n], 512)
}

/// Alice and Bob, contacts, with `n[0]` and `n[1]` messages of their own
/// and sessions that send packets of at most `max_packet` bytes.
pub fn devices_with(n: [usize; 2], max_packet: usize) -> (Peer, Peer) {
    let mut a = Peer::new("alice", 1);
    let mut b = Peer::new("bob", 2);
    a.add_contact(&b.identity);
    b.add_contact(&a.identity);
    for (peer, n) in [(&mut a, n[0]), (&mut b, n[1])] {
        peer.config = Config {
            max_packet,
            ..Default::default()
        };
        let name = peer.identity.name().to_string();
        for i in 0..n {
            peer.write_at(&format!("{name} {i}"), EPOCH - 10_000_000 + i as u64);
        }
    }
    (a, b)
}

/// Alice (dialling, the central) and Bob over `radio`.
pub fn pair(a: Peer, b: Peer, radio: RadioConfig, seed: u64) -> Pair<SyncEnd> {
    let ends = [
        SyncEnd::new(a, true, seed),
        SyncEnd::new(b, false, seed + 1),
    ];
    Pair::new(radio, 64, ends, seed)
}

/// One meeting over `radio`, until `until` holds; returns the two devices.
pub fn meet(
    a: Peer,
    b: Peer,
    radio: RadioConfig,
    seed: u64,
    until: impl Fn(&Pair<SyncEnd>) -> bool,
) -> (Peer, Peer) {
    let mut pair = pair(a, b, radio, seed);
    pair.run_while(HOUR, until);
    let [a, b] = pair.ends;
    (a.peer, b.peer)
}
