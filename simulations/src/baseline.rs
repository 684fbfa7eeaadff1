//! The classic delay-tolerant forwarding policies, so that Strand's
//! results sit next to the literature: Epidemic (Vahdat & Becker 2000),
//! binary Spray-and-Wait (Spyropoulos, Psounis & Raghavendra 2005) and
//! Direct Delivery. They follow the ONE simulator's routers: on a new
//! link, both sides exchange summary vectors (Direct needs none), then
//! send, one message at a time per direction, first the messages the peer
//! is the destination of and then the rest oldest first. A copy only
//! counts once it has fully arrived; a link that drops aborts the copy in
//! flight. Buffers are finite if `options.buffer` says so (the oldest copy
//! is dropped first) and copies expire after `options.ttl`.
//!
//! These are message-level models, not Strand code: they carry no
//! cryptography, and their overhead is a 32-byte header per copy plus
//! 16 bytes per summary-vector entry.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::scenario::{Options, Policy};
use crate::social::Creation;
use crate::units::Micros;
use crate::world::{LinkId, LinkState, Packet, World};

/// Header bytes per copy on the wire.
pub const COPY_HEADER: u64 = 32;
/// Bytes per summary-vector entry, plus a fixed 8.
pub const SUMMARY_ENTRY: u64 = 16;

#[derive(Debug, Clone, Copy)]
struct Copy {
    copies: u32,
    hops: u32,
    /// Order of arrival, for drop-oldest.
    arrival: u64,
}

#[derive(Default)]
struct Buffer {
    copies: BTreeMap<u32, Copy>,
    by_arrival: BTreeSet<(u64, u32)>,
    bytes: u64,
    /// Messages this device was a destination of and has received.
    delivered: BTreeSet<u32>,
}

/// A copy on the air: Spray-and-Wait copies are taken from the sender
/// when it starts and given back if the transfer does not complete.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    idx: u32,
    copies: u32,
    hops: u32,
}

#[derive(Default)]
struct LinkQueues {
    /// The summary vector still to send, per direction.
    summary: [bool; 2],
    /// The sender has the peer's summary: it may send copies.
    open: [bool; 2],
    queue: [VecDeque<u32>; 2],
    /// Copies sent and not yet arrived, per direction, in order (with
    /// latency, the next may start before the last arrives).
    in_flight: [VecDeque<InFlight>; 2],
}

/// Baseline state across all devices.
pub struct Baseline {
    policy: Policy,
    contacts_only: bool,
    copies: u32,
    buffer: Option<u64>,
    ttl: Option<Micros>,
    devices: Vec<Buffer>,
    links: BTreeMap<LinkId, LinkQueues>,
    arrivals: u64,
}

impl Baseline {
    /// Empty buffers.
    pub fn new(w: &World, policy: Policy, o: &Options) -> Baseline {
        Baseline {
            policy,
            contacts_only: o.contacts_only,
            copies: if policy == Policy::SprayAndWait {
                o.copies
            } else {
                1
            },
            buffer: o.buffer.map(|b| b.0),
            ttl: o.ttl.map(|t| t.0),
            devices: (0..w.n).map(|_| Buffer::default()).collect(),
            links: BTreeMap::new(),
            arrivals: 0,
        }
    }

    fn expired(&self, w: &World, idx: u32) -> bool {
        self.ttl
            .is_some_and(|ttl| w.now >= w.messages[idx as usize].creation.time + ttl)
    }

    /// Whether `to` has (or had, as destination) message `idx`.
    fn has(&self, to: u32, idx: u32) -> bool {
        let d = &self.devices[to as usize];
        d.copies.contains_key(&idx) || d.delivered.contains(&idx)
    }

    /// Whether the policy lets `from` give `idx` to `to`.
    fn eligible(&self, w: &World, from: u32, to: u32, idx: u32) -> bool {
        let Some(c) = self.devices[from as usize].copies.get(&idx) else {
            return false;
        };
        if self.has(to, idx) || self.expired(w, idx) {
            return false;
        }
        let m = &w.messages[idx as usize];
        let dest = m.recipients.contains(&to);
        match self.policy {
            Policy::Epidemic => true,
            // Spray while holding more than one copy; with one, wait for a
            // destination.
            Policy::SprayAndWait => c.copies >= 1 && (dest || c.copies > 1),
            // Only the source delivers, and only to a destination.
            _ => dest && from == m.creation.from,
        }
    }

    /// Queues `idx` on `from`'s open links.
    fn offer(&mut self, w: &World, from: u32, idx: u32) -> Vec<LinkId> {
        let mut touched = Vec::new();
        for &link in &w.node_links[from as usize] {
            let Some(l) = w.links.get(&link) else {
                continue;
            };
            let dir = usize::from(l.b == from);
            let to = l.node(1 - dir);
            let Some(q) = self.links.get_mut(&link) else {
                continue;
            };
            if q.open[dir] {
                if w.messages[idx as usize].recipients.contains(&to) {
                    q.queue[dir].push_front(idx);
                } else {
                    q.queue[dir].push_back(idx);
                }
                touched.push(link);
            }
        }
        touched
    }

    /// Removes expired copies from `node`'s buffer. Message indices grow
    /// with creation time and every copy lives `ttl`, so the expired
    /// copies are the lowest indices.
    fn expire(&mut self, w: &World, node: u32) {
        if self.ttl.is_none() {
            return;
        }
        loop {
            let d = &self.devices[node as usize];
            let Some((&idx, _)) = d.copies.first_key_value() else {
                return;
            };
            if !self.expired(w, idx) {
                return;
            }
            let d = &mut self.devices[node as usize];
            if let Some(c) = d.copies.remove(&idx) {
                d.by_arrival.remove(&(c.arrival, idx));
            }
            d.bytes -= w.messages[idx as usize].creation.size;
        }
    }

    fn open(&mut self, w: &World, link: LinkId, dir: usize) {
        let l = &w.links[&link];
        let (from, to) = (l.node(dir), l.node(1 - dir));
        self.expire(w, from);
        let mut first = Vec::new();
        let mut rest = Vec::new();
        for &idx in self.devices[from as usize].copies.keys() {
            if !self.eligible(w, from, to, idx) {
                continue;
            }
            if w.messages[idx as usize].recipients.contains(&to) {
                first.push(idx);
            } else {
                rest.push(idx);
            }
        }
        let q = self.links.get_mut(&link).expect("a link being opened");
        q.open[dir] = true;
        q.queue[dir] = first.into_iter().chain(rest).collect();
    }

    /// Link ready: summary vectors, or straight to sending for Direct.
    pub fn on_ready(&mut self, w: &mut World, link: LinkId) {
        let l = &w.links[&link];
        if self.contacts_only && w.social.contacts[l.a as usize].binary_search(&l.b).is_err() {
            // Strangers exchange nothing.
            return;
        }
        let direct = self.policy == Policy::Direct;
        self.links.insert(
            link,
            LinkQueues {
                summary: [!direct, !direct],
                ..LinkQueues::default()
            },
        );
        if direct {
            self.open(w, link, 0);
            self.open(w, link, 1);
        }
    }

    /// What side `dir` sends next.
    pub fn next_packet(
        &mut self,
        w: &mut World,
        link: LinkId,
        dir: usize,
    ) -> Option<(Packet, u64)> {
        let l = &w.links[&link];
        let (from, to) = (l.node(dir), l.node(1 - dir));
        if self.links.get(&link)?.summary[dir] {
            self.expire(w, from);
        }
        let q = self.links.get_mut(&link)?;
        if q.summary[dir] {
            q.summary[dir] = false;
            let n = self.devices[from as usize].copies.len() as u64;
            return Some((Packet::Summary, 8 + SUMMARY_ENTRY * n));
        }
        while let Some(idx) = self.links.get_mut(&link)?.queue[dir].pop_front() {
            if self.eligible(w, from, to, idx) {
                let held = self.devices[from as usize].copies.get_mut(&idx)?;
                let m = &w.messages[idx as usize];
                let only_recipient = m.recipients.len() == 1 && m.recipients[0] == to;
                // Binary spray: half of the copies go with the message,
                // except to its only recipient, who keeps none.
                let copies = match self.policy {
                    Policy::SprayAndWait if only_recipient => 0,
                    Policy::SprayAndWait => held.copies / 2,
                    _ => 1,
                };
                if self.policy == Policy::SprayAndWait {
                    held.copies -= copies;
                }
                let f = InFlight {
                    idx,
                    copies,
                    hops: held.hops + 1,
                };
                self.links.get_mut(&link)?.in_flight[dir].push_back(f);
                w.metrics.started += 1;
                let size = w.messages[idx as usize].creation.size;
                return Some((Packet::Message(idx), size + COPY_HEADER));
            }
        }
        None
    }

    /// Something arrives at side `1 - dir`. Returns links to kick.
    pub fn on_arrive(
        &mut self,
        w: &mut World,
        link: LinkId,
        dir: usize,
        packet: Packet,
    ) -> Vec<LinkId> {
        let l = &w.links[&link];
        let (from, to) = (l.node(dir), l.node(1 - dir));
        match packet {
            Packet::Summary => {
                // The peer's summary lets this side choose what to send.
                self.open(w, link, 1 - dir);
                vec![link]
            }
            Packet::Message(idx) => {
                let Some(f) = self
                    .links
                    .get_mut(&link)
                    .and_then(|q| q.in_flight[dir].pop_front())
                else {
                    return Vec::new();
                };
                debug_assert_eq!(f.idx, idx, "one direction delivers in order");
                w.metrics.relayed += 1;
                self.receive(w, link, from, to, f)
            }
            Packet::Bytes(_) => Vec::new(),
        }
    }

    fn receive(
        &mut self,
        w: &mut World,
        link: LinkId,
        from: u32,
        to: u32,
        f: InFlight,
    ) -> Vec<LinkId> {
        if self.expired(w, f.idx) {
            w.metrics.dropped += 1;
            return Vec::new();
        }
        if self.has(to, f.idx) {
            // Another link got there first: the copies go back.
            self.give_back(from, f);
            w.metrics.duplicates += 1;
            return Vec::new();
        }
        self.store(w, link, to, f.idx, f.copies, f.hops)
    }

    /// Returns copies reserved for a transfer that did not complete.
    fn give_back(&mut self, from: u32, f: InFlight) {
        if let Some(c) = self.devices[from as usize].copies.get_mut(&f.idx) {
            c.copies += f.copies;
        }
    }

    fn store(
        &mut self,
        w: &mut World,
        link: LinkId,
        to: u32,
        idx: u32,
        copies: u32,
        hops: u32,
    ) -> Vec<LinkId> {
        if let Some(l) = w.links.get_mut(&link) {
            l.carried = true;
        }
        w.received(to, idx, hops);
        let size = w.messages[idx as usize].creation.size;
        if w.messages[idx as usize].recipients.contains(&to) {
            self.devices[to as usize].delivered.insert(idx);
            // A destination of a group message also carries it on.
            if w.messages[idx as usize].recipients.len() == 1 {
                return Vec::new();
            }
        }
        if !self.make_room(w, to, size) {
            w.metrics.dropped += 1;
            return Vec::new();
        }
        self.arrivals += 1;
        let d = &mut self.devices[to as usize];
        d.copies.insert(
            idx,
            Copy {
                copies,
                hops,
                arrival: self.arrivals,
            },
        );
        d.by_arrival.insert((self.arrivals, idx));
        d.bytes += size;
        w.metrics.note_carried(to, d.bytes);
        self.offer(w, to, idx)
    }

    /// Drops the oldest copies until `size` fits; false if it never can.
    fn make_room(&mut self, w: &mut World, node: u32, size: u64) -> bool {
        let Some(cap) = self.buffer else {
            return true;
        };
        self.expire(w, node);
        if size > cap {
            return false;
        }
        let d = &mut self.devices[node as usize];
        while d.bytes + size > cap {
            let Some((_, idx)) = d.by_arrival.pop_first() else {
                return false;
            };
            d.copies.remove(&idx);
            d.bytes -= w.messages[idx as usize].creation.size;
            w.metrics.dropped += 1;
        }
        true
    }

    /// The link went down: copies in flight are aborted.
    pub fn on_cut(&mut self, w: &mut World, link: LinkId, l: &LinkState) {
        if let Some(q) = self.links.remove(&link) {
            for (dir, fs) in q.in_flight.iter().enumerate() {
                for f in fs {
                    w.metrics.aborted += 1;
                    self.give_back(l.node(dir), *f);
                }
            }
        }
    }

    /// A message is created at its source.
    pub fn create(&mut self, w: &mut World, c: Creation) -> Vec<LinkId> {
        let (from, size) = (c.from, c.size);
        let idx = w.register(c);
        if !self.make_room(w, from, size) {
            w.messages[idx as usize].failed = true;
            return Vec::new();
        }
        self.arrivals += 1;
        let d = &mut self.devices[from as usize];
        d.copies.insert(
            idx,
            Copy {
                copies: self.copies,
                hops: 0,
                arrival: self.arrivals,
            },
        );
        d.by_arrival.insert((self.arrivals, idx));
        d.bytes += size;
        self.offer(w, from, idx)
    }

    /// Bytes buffered per device (copies not yet expired).
    pub fn storage(&self, w: &World) -> Vec<u64> {
        self.devices
            .iter()
            .map(|d| {
                d.copies
                    .keys()
                    .filter(|idx| !self.expired(w, **idx))
                    .map(|idx| w.messages[*idx as usize].creation.size)
                    .sum()
            })
            .collect()
    }
}
