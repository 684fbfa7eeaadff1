//! Strand's own policy: every device runs strand-sync's link code exactly
//! as the node does — an [`Endpoint`] per device, and on every link a
//! [`Session`] from the accepting side's beacon through the dialler's
//! hellos, the Noise KK handshake and reconciliation of every group log the
//! two share — over the simulated link, with a `MemoryStore` per device.
//! The simulator moves the bytes and the clock; all protocol decisions are
//! strand-sync's.
//!
//! Only contacts can sync: a device that meets a stranger sends its beacon
//! and nothing else, as on a real LAN.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use strand_sync::MemoryStore;
use strand_sync::{
    encode_carrying, Advert, Carrier, CarryConfig, Config, Contact, Endpoint, Event, Group,
    GroupId, GroupKey, Handout, HandshakeError, Identity, Kind, Message, MessageId, OpenedFate,
    Session, SessionError, Store, Taken, WriteStore,
};

use crate::social::{Creation, Dest};
use crate::world::{LinkId, LinkState, Packet, World};

/// One simulated device.
struct Device {
    identity: Identity,
    /// The device index of each contact (in the endpoint's order).
    contact_nodes: Vec<u32>,
    /// Starts this device's sessions, and holds its contacts as
    /// strand-sync sees them (with shared groups), in `contact_nodes` order.
    endpoint: Endpoint,
    /// This device's own randomness for its links (seeded from the run's
    /// RNG): a device's sessions do not depend on what others draw.
    rng: ChaCha20Rng,
    store: MemoryStore,
    /// Hop count of each message held (index → hops).
    held: BTreeMap<u32, u32>,
    /// Bytes of stored messages.
    stored: u64,
    /// Carrying state (Strand with carrying).
    carrier: Option<Carrier>,
    /// Carrying pool id → contact index.
    pools: BTreeMap<GroupId, usize>,
    /// Its BLE advertisement hint and the epoch it is for (a new one each
    /// epoch, as the transport makes).
    hint: Option<(u64, Advert)>,
}

/// The two sessions of a link (side 0 dialled, side 1 accepted) and their
/// timers.
#[derive(Default)]
struct LinkSessions {
    sessions: [Option<Session>; 2],
    /// New messages each side has stored from this session.
    new: [u64; 2],
    /// Deadline a timer event is scheduled for.
    timer: [Option<u64>; 2],
    /// Whether the two devices are each other's contacts.
    contacts: bool,
    /// Whether the accepting side has few enough contacts that its beacon
    /// names them all ([`strand_sync::limits::BEACON_ENTRIES`]).
    names_all: bool,
    /// Strangers in range whose hints have matched nothing yet: no
    /// sessions; side 0's timer fires at the next epoch.
    unlinked: bool,
    /// Whether each side's session is established and has not ended yet:
    /// when it ends (closed, or the link cut), that side hands out again,
    /// as the node does when a session with a contact ends.
    up: [bool; 2],
}

/// Strand's state across all devices.
pub struct Strand {
    devices: Vec<Device>,
    links: BTreeMap<LinkId, LinkSessions>,
    by_id: BTreeMap<MessageId, u32>,
    groups: Vec<Group>,
    /// When set, every byte each link's sides wrote (tests).
    recording: Option<BTreeMap<LinkId, [Vec<u8>; 2]>>,
    /// Draws the devices' BLE hints, apart from every other stream, so
    /// that modelling hints moves no other random choice.
    hint_rng: ChaCha20Rng,
}

/// What a carrying handout holds, as the report names it (PROTOCOL.md
/// §17: kinds, and an `ENVELOPE`'s mode byte).
fn pool_part(h: &Handout) -> &'static str {
    match h.kind {
        Kind::ENVELOPE => match h.body.first() {
            Some(0) => "envelopes lent",
            Some(1) => "envelopes for delivery",
            _ => "offers",
        },
        Kind::REQUEST => "requests",
        Kind::ACK => "acknowledgements",
        _ => "carrying notices",
    }
}

/// How the report names message frames of kind byte `kind`
/// ([`strand_sync::SentParts::messages`]).
fn message_part(kind: u8) -> &'static str {
    match Kind(kind) {
        Kind::TEXT => "messages: text",
        Kind::ENVELOPE => "messages: pool envelopes and offers",
        Kind::REQUEST => "messages: pool requests",
        Kind::ACK => "messages: pool acknowledgements",
        Kind::CARRYING => "messages: pool carrying notices",
        _ => "messages: other",
    }
}

/// Adds a session's bytes sent, by part, to `into` (the report's
/// `bytes_sent_by_part`).
fn add_parts(into: &mut BTreeMap<&'static str, u64>, p: &strand_sync::SentParts) {
    let mut add = |k: &'static str, v: u64| {
        if v > 0 {
            *into.entry(k).or_default() += v;
        }
    };
    add("preamble", p.preamble);
    add("framing", p.framing);
    add("reconciliation", p.reconciliation);
    add("acknowledgements", p.acknowledgements);
    add("padding", p.padding);
    add("other frames", p.other);
    for (kind, v) in p.messages.iter().enumerate() {
        add(message_part(kind as u8), *v);
    }
}

/// What a link's sessions did, counted when the link ends (or the run
/// does): copies received twice, and the bytes sent by part.
fn count_sessions(w: &mut World, ls: &LinkSessions) {
    for (s, new) in ls.sessions.iter().zip(ls.new) {
        if let Some(s) = s {
            let st = s.stats();
            w.metrics.duplicates += st.messages_received.saturating_sub(new);
            add_parts(&mut w.metrics.bytes_sent_by_part, &st.sent);
        }
    }
}

impl Strand {
    /// Identities, contacts (with their 1:1 and private groups) and empty
    /// stores for every device.
    pub fn new(w: &mut World, carry: Option<CarryConfig>) -> anyhow::Result<Strand> {
        let mut devices = Vec::with_capacity(w.n as usize);
        for i in 0..w.n {
            let identity = Identity::generate(&format!("d{i}"), &mut w.rng.0)
                .map_err(|e| anyhow::anyhow!("identity: {e}"))?;
            let endpoint = Endpoint::new(&identity, Vec::new());
            let mut seed = [0u8; 32];
            w.rng.0.fill_bytes(&mut seed);
            devices.push(Device {
                identity,
                contact_nodes: Vec::new(),
                endpoint,
                rng: ChaCha20Rng::from_seed(seed),
                store: MemoryStore::new(),
                held: BTreeMap::new(),
                stored: 0,
                carrier: carry.map(Carrier::new),
                pools: BTreeMap::new(),
                hint: None,
            });
        }
        let publics: Vec<_> = devices.iter().map(|d| d.identity.public()).collect();
        // Built here, then handed to each endpoint, which keeps the only
        // copy. Each pair's keys are agreed once for both sides (what each
        // phone would compute alone, the same bytes): the other side's
        // record waits in `later` until its turn.
        let mut contacts: Vec<Vec<Contact>> = Vec::with_capacity(devices.len());
        let mut later: BTreeMap<(u32, u32), Contact> = BTreeMap::new();
        for i in 0..devices.len() {
            let mut mine = Vec::with_capacity(w.social.contacts[i].len());
            for &j in &w.social.contacts[i] {
                let c = match later.remove(&(i as u32, j)) {
                    Some(c) => c,
                    None => {
                        let (c, theirs) = Identity::contact_pair(
                            &devices[i].identity,
                            &devices[j as usize].identity,
                        )
                        .map_err(|e| anyhow::anyhow!("contact: {e}"))?;
                        if (j as usize) > i {
                            later.insert((j, i as u32), theirs);
                        }
                        c
                    }
                };
                mine.push(c);
                devices[i].contact_nodes.push(j);
            }
            contacts.push(mine);
        }
        let mut groups = Vec::new();
        for members in &w.social.groups {
            let mut id = [0u8; 32];
            let mut key = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut w.rng.0, &mut id);
            rand_core::RngCore::fill_bytes(&mut w.rng.0, &mut key);
            let authors = members.iter().map(|m| publics[*m as usize].sign).collect();
            let group = Group::new(GroupId(id), GroupKey::from_bytes(key), authors);
            for &a in members {
                let nodes = &devices[a as usize].contact_nodes;
                for (c, &node) in contacts[a as usize].iter_mut().zip(nodes) {
                    if members.binary_search(&node).is_ok() {
                        c.groups.push(group.clone());
                    }
                }
            }
            groups.push(group);
        }
        // Each pair also syncs its carrying pool, as nodes do (empty when
        // nobody carries); with carrying, each device tells every contact
        // there that it carries.
        let now = w.now_ms();
        for (dev, mut contacts) in devices.iter_mut().zip(contacts) {
            for (i, c) in contacts.iter_mut().enumerate() {
                c.groups.insert(1, c.pool.clone());
                dev.pools.insert(c.pool.id, i);
            }
            if dev.carrier.is_some() {
                for c in &contacts {
                    let m = Message::create(
                        &dev.identity,
                        &c.pool,
                        now,
                        Kind::CARRYING,
                        &encode_carrying(true),
                        &mut dev.rng,
                    )
                    .map_err(|e| anyhow::anyhow!("carrying notice: {e}"))?;
                    WriteStore::insert(&mut dev.store, &c.pool.id, &m)
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                }
            }
            dev.endpoint.set_contacts(contacts);
        }
        // Seeded from the run's first identity: no draw from the run's RNG.
        let hint_seed = devices
            .first()
            .map_or([0; 32], |d| d.identity.public().sign);
        Ok(Strand {
            hint_rng: ChaCha20Rng::from_seed(hint_seed),
            devices,
            links: BTreeMap::new(),
            by_id: BTreeMap::new(),
            groups,
            recording: None,
        })
    }

    fn config(w: &World, link: &LinkState) -> Config {
        Config {
            max_packet: w.link_types[link.kind].packet,
            ..Default::default()
        }
    }

    /// Link ready: `a` dials, `b` accepts (and speaks first: its beacon).
    pub fn on_ready(&mut self, w: &mut World, link: LinkId) {
        let l = &w.links[&link];
        let (a, b) = (l.a as usize, l.b as usize);
        let now = w.now_ms();
        let mut s = LinkSessions {
            contacts: self.devices[a].contact_nodes.contains(&(b as u32))
                && self.devices[b].contact_nodes.contains(&(a as u32)),
            names_all: self.devices[b].endpoint.contacts().len()
                <= strand_sync::limits::BEACON_ENTRIES,
            ..LinkSessions::default()
        };
        // Over BLE, devices find each other by their advertisement hints
        // (PROTOCOL.md §13): strangers link only when a hint matches a
        // contact of the other by chance, checked again with each epoch's
        // new hints while they stay in range. Contacts are assumed found
        // unless the link type says `hint_contacts`: then they too link
        // only when either's hint names the other (a hint names four
        // contacts; the next epoch's hint others).
        let t = &w.link_types[l.kind];
        if t.hint && (!s.contacts || t.hint_contacts) && !self.hints_match(a, b, now) {
            // No link came up: not a contact used.
            if s.contacts {
                w.metrics.contacts_unfound += 1;
            } else {
                w.metrics.strangers_unlinked += 1;
            }
            w.metrics.contacts -= 1;
            s.unlinked = true;
            arm(w, link, 0, &mut s.timer[0], Some(next_epoch(now)));
            self.links.insert(link, s);
            return;
        }
        self.open(w, link, s);
    }

    /// Starts a link's two sessions: the lower index dials.
    fn open(&mut self, w: &World, link: LinkId, mut s: LinkSessions) {
        let l = &w.links[&link];
        let (a, b) = (l.a as usize, l.b as usize);
        let config = Strand::config(w, l);
        let now = w.now_ms();
        let dev = &mut self.devices[a];
        s.sessions[0] = Some(dev.endpoint.dial(config, now, &mut dev.rng));
        let dev = &mut self.devices[b];
        s.sessions[1] = Some(dev.endpoint.accept(config, now, &mut dev.rng));
        self.links.insert(link, s);
    }

    /// Device `i`'s BLE hint now.
    fn hint(&mut self, i: usize, now: strand_sync::Time) -> Advert {
        let epoch = strand_sync::epoch(now);
        let dev = &mut self.devices[i];
        match &dev.hint {
            Some((e, h)) if *e == epoch => h.clone(),
            _ => {
                let h = Advert::new(dev.endpoint.contacts(), now, &mut self.hint_rng);
                dev.hint = Some((epoch, h.clone()));
                h
            }
        }
    }

    /// Whether either of devices `a` and `b` would dial the other: its
    /// hint matches one of the other's contacts.
    fn hints_match(&mut self, a: usize, b: usize, now: strand_sync::Time) -> bool {
        let (ha, hb) = (self.hint(a, now), self.hint(b, now));
        let named =
            |h: &Advert, by: &Device| by.endpoint.contacts().iter().any(|c| h.matches(c, now));
        named(&ha, &self.devices[b]) || named(&hb, &self.devices[a])
    }

    /// What side `dir` sends next.
    pub fn next_packet(
        &mut self,
        w: &mut World,
        link: LinkId,
        dir: usize,
    ) -> Option<(crate::world::Packet, u64)> {
        let node = w.links[&link].node(dir) as usize;
        let ls = self.links.get_mut(&link)?;
        let now = w.now_ms();
        let s = ls.sessions[dir].as_mut()?;
        let out = s.poll_transmit(now, &self.devices[node].store);
        let deadline = s.poll_timeout();
        arm(w, link, dir, &mut ls.timer[dir], deadline);
        let bytes = out?;
        if let Some(r) = &mut self.recording {
            r.entry(link).or_default()[dir].extend_from_slice(&bytes);
        }
        let len = bytes.len() as u64;
        Some((Packet::Bytes(bytes), len))
    }

    /// Bytes arrive at side `1 - dir`. Returns other links to kick.
    pub fn on_arrive(
        &mut self,
        w: &mut World,
        link: LinkId,
        dir: usize,
        packet: Packet,
    ) -> Vec<LinkId> {
        let Packet::Bytes(bytes) = packet else {
            return Vec::new();
        };
        let l = &w.links[&link];
        let side = 1 - dir;
        let (node, peer) = (l.node(side) as usize, l.node(dir));
        let now = w.now_ms();
        let Some(s) = self
            .links
            .get_mut(&link)
            .and_then(|ls| ls.sessions[side].as_mut())
        else {
            return Vec::new();
        };
        let store = &mut self.devices[node].store;
        // Errors also arrive as Event::Closed, handled below.
        let _ = s.handle_input(now, &bytes, store);
        s.settle(now, store);
        self.after_input(w, link, side, node as u32, peer)
    }

    /// Drains a session's events after input or a timeout.
    fn after_input(
        &mut self,
        w: &mut World,
        link: LinkId,
        side: usize,
        node: u32,
        peer: u32,
    ) -> Vec<LinkId> {
        let mut received = Vec::new();
        let mut delivered = Vec::new();
        let mut established = false;
        let mut ended = false;
        let contacts = {
            let Some(ls) = self.links.get_mut(&link) else {
                return Vec::new();
            };
            let (contacts, names_all) = (ls.contacts, ls.names_all);
            let Some(s) = ls.sessions[side].as_mut() else {
                return Vec::new();
            };
            while let Some(ev) = s.poll_event() {
                match ev {
                    Event::Received { group, key } => received.push((group, key)),
                    Event::Delivered { group, key } => delivered.push((group, key)),
                    Event::Established { .. } => {
                        established = true;
                        ls.up[side] = true;
                        if side == 0 {
                            w.metrics.sessions += 1;
                        }
                    }
                    Event::Refused { .. } => w.metrics.hellos_refused += 1,
                    Event::Closed { error } => {
                        ended |= std::mem::take(&mut ls.up[side]);
                        if let Some(e) = error {
                            classify_close(w, &e, side, contacts, names_all, s.peer().is_some());
                        }
                    }
                    Event::Rejected { .. } => w.metrics.rejected += 1,
                    _ => {}
                }
            }
            let deadline = s.poll_timeout();
            arm(w, link, side, &mut ls.timer[side], deadline);
            ls.new[side] += received.len() as u64;
            contacts
        };
        let mut touched = Vec::new();
        if self.devices[node as usize].carrier.is_some() {
            touched.extend(self.carry(w, node, peer, established, &mut received, delivered));
            if ended && contacts {
                let all = 0..self.devices[node as usize].endpoint.contacts().len();
                touched.extend(self.hand_live(w, node, all));
            }
        }
        for (group, key) in received {
            let Some(&idx) = self.by_id.get(&key.id) else {
                w.metrics.protocol_errors += 1;
                continue;
            };
            // A message that came out of an envelope went through at least
            // one carrier (the chain's length is not tracked: 2).
            let hops = self.devices[peer as usize]
                .held
                .get(&idx)
                .map_or(2, |h| h + 1);
            let dev = &mut self.devices[node as usize];
            dev.held.insert(idx, hops);
            dev.stored += w.messages[idx as usize].creation.size
                + strand_sync::limits::MESSAGE_OVERHEAD as u64;
            if let Some(l) = w.links.get_mut(&link) {
                l.carried = true;
            }
            w.received(node, idx, hops);
            touched.extend(self.announce(w, node, &group, key, Some(link)));
        }
        touched
    }

    /// Carrying (Strand with carrying) after a session's events: hands
    /// envelopes to a newly established peer, takes in pool messages (and
    /// takes them out of `received`, adding any message an envelope held
    /// for this device), and hollows pool messages the peer confirmed.
    /// Returns links to kick.
    fn carry(
        &mut self,
        w: &mut World,
        node: u32,
        peer: u32,
        established: bool,
        received: &mut Vec<(GroupId, strand_sync::Key)>,
        delivered: Vec<(GroupId, strand_sync::Key)>,
    ) -> Vec<LinkId> {
        let now = w.now_ms();
        let n = node as usize;
        let Some(ci) = self.devices[n]
            .contact_nodes
            .iter()
            .position(|c| *c == peer)
        else {
            return Vec::new();
        };
        // Every carrying step starts as the node's does (`Carrier::step`).
        if let Some(carrier) = self.devices[n].carrier.as_mut() {
            carrier.step(now);
        }
        let mut touched = Vec::new();
        let mut hand_to = BTreeSet::new();
        if established {
            hand_to.insert(ci);
        }
        for (group, key) in delivered {
            let dev = &mut self.devices[n];
            if dev.pools.contains_key(&group) {
                dev.store.hollow(&group, &key);
            } else if let Some(c) = dev.carrier.as_mut() {
                // The recipient holds it: no more envelopes of it.
                c.delivered(&key.id);
            }
        }
        // Each pool message is taken in turn, as the node does: an opened
        // envelope's message is stored and acknowledged before the next
        // pool message is looked at (so a replay of it in the same batch
        // is already delivered). Pool messages to write wait for the loop.
        let mut todo = Vec::new();
        let mut opened = Vec::new();
        received.retain(|(group, key)| {
            let dev = &mut self.devices[n];
            let Some(&pi) = dev.pools.get(group) else {
                return true;
            };
            let bytes = dev.store.get(group, key).ok().flatten();
            dev.store.hollow(group, key);
            let Some(msg) = bytes.and_then(|b| Message::decode(b).ok()) else {
                return false;
            };
            let pool = dev.endpoint.contacts()[pi].pool.clone();
            let from = dev.endpoint.contacts()[pi].public;
            let Ok(body) = msg.open(&pool) else {
                return false;
            };
            let carrier = dev.carrier.as_mut().expect("carrying");
            match carrier.take(&dev.identity, &from, &msg, &body, now) {
                Ok(Taken::Carrier) => {
                    hand_to.insert(pi);
                }
                Ok(Taken::Write(outs) | Taken::Acknowledged { out: outs, .. }) => todo.extend(outs),
                Ok(Taken::Opened {
                    message,
                    token,
                    expires,
                }) => {
                    // Only a text a contact wrote in their 1:1 group, valid
                    // there, is taken, and only then is it acknowledged
                    // (the simulator keeps no storage budgets and has one
                    // clock: nothing waits).
                    let mut fate = OpenedFate::Refused;
                    if let Some(c) = strand_sync::opened_author(dev.endpoint.contacts(), &message) {
                        let group = c.direct_group().clone();
                        if message.validate(&group, now).is_ok() {
                            if let Ok(true) =
                                WriteStore::insert(&mut dev.store, &group.id, &message)
                            {
                                opened.push((group.id, message.key()));
                            }
                            fate = OpenedFate::Taken;
                        }
                    }
                    todo.extend(carrier.settle_opened(&from, &token, expires, fate));
                }
                Ok(Taken::Held { .. }) => {
                    w.metrics.note_carried(node, carrier.used());
                    // Pass it on over this device's other live links.
                    hand_to.extend(0..dev.endpoint.contacts().len());
                }
                Ok(Taken::Nothing) | Err(_) => {}
            }
            false
        });
        received.extend(opened);
        // As the node does: a contact's requests and acknowledgements
        // share a pool message.
        for h in strand_sync::batch_handouts(todo) {
            touched.extend(self.write_pool(w, node, h));
        }
        touched.extend(self.hand_live(w, node, hand_to));
        touched
    }

    /// What `node`'s carrier hands each of its contacts `contacts` (by
    /// index) that it has a session with now. As the node does, it first
    /// tells the carrier which contacts are linked: texts to them go over
    /// their links, not to carriers. Returns links to kick.
    fn hand_live(
        &mut self,
        w: &mut World,
        node: u32,
        contacts: impl IntoIterator<Item = usize>,
    ) -> Vec<LinkId> {
        let now = w.now_ms();
        let n = node as usize;
        let live: Vec<bool> = self.devices[n]
            .contact_nodes
            .iter()
            .map(|&peer| self.live(w, node, peer))
            .collect();
        let dev = &mut self.devices[n];
        let linked = (dev.endpoint.contacts().iter().zip(&live))
            .filter(|(_, up)| **up)
            .map(|(c, _)| c.public.sign)
            .collect();
        dev.carrier
            .as_mut()
            .expect("carrying")
            .step(now)
            .set_linked(linked);
        let mut touched = Vec::new();
        for pi in contacts {
            if !live[pi] {
                continue;
            }
            let dev = &mut self.devices[n];
            let carrier = dev.carrier.as_mut().expect("carrying");
            let public = dev.endpoint.contacts()[pi].public;
            for h in carrier.hand(&public, now, &mut dev.rng) {
                touched.extend(self.write_pool(w, node, h));
            }
        }
        touched
    }

    /// Whether `node` has an established session with `peer` now.
    fn live(&self, w: &World, node: u32, peer: u32) -> bool {
        w.node_links[node as usize].iter().any(|l| {
            let Some(ls) = w.links.get(l) else {
                return false;
            };
            let side = usize::from(ls.b == node);
            ls.node(1 - side) == peer
                && self
                    .links
                    .get(l)
                    .and_then(|s| s.sessions[side].as_ref())
                    .is_some_and(|s| s.is_established() && !s.is_closed())
        })
    }

    /// Writes a carrying handout into the pool `node` shares with its
    /// contact, and tells the live sessions.
    fn write_pool(&mut self, w: &mut World, node: u32, h: Handout) -> Vec<LinkId> {
        let now = w.now_ms();
        let dev = &mut self.devices[node as usize];
        let Some(c) = dev
            .endpoint
            .contacts()
            .iter()
            .find(|c| c.public.sign == h.to)
        else {
            return Vec::new();
        };
        let pool = c.pool.clone();
        let Ok(m) = Message::create_expiring(
            &dev.identity,
            &pool,
            now,
            Some(h.expires),
            h.kind,
            &h.body,
            &mut dev.rng,
        ) else {
            return Vec::new();
        };
        if !matches!(WriteStore::insert(&mut dev.store, &pool.id, &m), Ok(true)) {
            return Vec::new();
        }
        *w.metrics.pool_written.entry(pool_part(&h)).or_default() += m.as_bytes().len() as u64;
        self.announce(w, node, &pool.id, m.key(), None)
    }

    /// Tells `node`'s other live sessions about a newly stored message.
    fn announce(
        &mut self,
        w: &World,
        node: u32,
        group: &GroupId,
        key: strand_sync::Key,
        except: Option<LinkId>,
    ) -> Vec<LinkId> {
        let mut touched = Vec::new();
        for &other in &w.node_links[node as usize] {
            if Some(other) == except {
                continue;
            }
            let Some(l) = w.links.get(&other) else {
                continue;
            };
            let side = usize::from(l.b == node);
            if let Some(s) = self
                .links
                .get_mut(&other)
                .and_then(|ls| ls.sessions[side].as_mut())
            {
                s.handle_new_message(group, key);
                touched.push(other);
            }
        }
        touched
    }

    /// A session timer fired. Returns the links to kick: this one if it
    /// may have output, and those a hand-out wrote to (a session that
    /// timed out hands its texts to the carriers linked, as a cut does).
    pub fn on_timer(&mut self, w: &mut World, link: LinkId, side: usize) -> Vec<LinkId> {
        let now = w.now;
        let Some(ls) = self.links.get_mut(&link) else {
            return Vec::new();
        };
        if ls.timer[side] != Some(now) {
            return Vec::new();
        }
        ls.timer[side] = None;
        if ls.unlinked {
            // Strangers still in range, at a new epoch: new hints.
            let l = &w.links[&link];
            let (a, b) = (l.a as usize, l.b as usize);
            let now_ms = w.now_ms();
            if self.hints_match(a, b, now_ms) {
                let mut s = self.links.remove(&link).expect("present");
                s.unlinked = false;
                if s.contacts {
                    w.metrics.contacts_unfound -= 1;
                } else {
                    w.metrics.strangers_unlinked -= 1;
                }
                w.metrics.contacts += 1;
                self.open(w, link, s);
                return vec![link];
            }
            let ls = self.links.get_mut(&link).expect("present");
            arm(w, link, 0, &mut ls.timer[0], Some(next_epoch(now_ms)));
            return Vec::new();
        }
        let Some(s) = ls.sessions[side].as_mut() else {
            return Vec::new();
        };
        let now_ms = w.now_ms();
        if s.poll_timeout().is_some_and(|d| d <= now_ms) {
            s.handle_timeout(now_ms);
        }
        let l = &w.links[&link];
        let (node, peer) = (l.node(side), l.node(1 - side));
        let mut touched = self.after_input(w, link, side, node, peer);
        touched.insert(0, link);
        touched
    }

    /// The link went down mid-whatever. With carrying, each end whose
    /// session with a contact was up hands out again, as the node does
    /// when such a session ends: texts to the other end not yet delivered
    /// go to the carriers linked now. Returns links to kick.
    pub fn on_cut(&mut self, w: &mut World, link: LinkId, l: &LinkState) -> Vec<LinkId> {
        let Some(ls) = self.links.remove(&link) else {
            return Vec::new();
        };
        count_sessions(w, &ls);
        let mut touched = Vec::new();
        for side in 0..2 {
            let node = l.node(side);
            let dev = &self.devices[node as usize];
            if ls.contacts && ls.up[side] && dev.carrier.is_some() {
                let all = 0..dev.endpoint.contacts().len();
                touched.extend(self.hand_live(w, node, all));
            }
        }
        touched
    }

    /// Counts what a link still up at the end has done, as a cut would.
    pub fn close_books(&self, w: &mut World, link: LinkId) {
        if let Some(ls) = self.links.get(&link) {
            count_sessions(w, ls);
        }
    }

    /// A user writes a message. Returns links to kick.
    pub fn create(&mut self, w: &mut World, c: Creation) -> Vec<LinkId> {
        let from = c.from;
        let c_dest = c.dest;
        let group = match c.dest {
            Dest::Device(to) => {
                let dev = &self.devices[from as usize];
                let Some(pos) = dev.contact_nodes.iter().position(|n| *n == to) else {
                    let idx = w.register(c);
                    w.messages[idx as usize].failed = true;
                    return Vec::new();
                };
                dev.endpoint.contacts()[pos].direct_group().clone()
            }
            Dest::Group(g) => self.groups[g as usize].clone(),
        };
        let body = vec![0x5a; c.size as usize];
        let now = w.now_ms();
        let dev = &mut self.devices[from as usize];
        let idx = w.register(c);
        let msg = match Message::create(&dev.identity, &group, now, Kind::TEXT, &body, &mut w.rng.0)
        {
            Ok(m) => m,
            Err(_) => {
                w.messages[idx as usize].failed = true;
                return Vec::new();
            }
        };
        let key = msg.key();
        if !matches!(
            WriteStore::insert(&mut dev.store, &group.id, &msg),
            Ok(true)
        ) {
            w.messages[idx as usize].failed = true;
            return Vec::new();
        }
        dev.held.insert(idx, 0);
        dev.stored += msg.as_bytes().len() as u64;
        self.by_id.insert(msg.id(), idx);
        let mut touched = self.announce(w, from, &group.id, key, None);
        // With carrying, a 1:1 message also spreads sealed, through the
        // carriers met from now on (and those linked now).
        if let Dest::Device(to) = c_dest {
            let dev = &mut self.devices[from as usize];
            let pos = dev.contact_nodes.iter().position(|n| *n == to);
            let spreads = dev.carrier.as_mut().is_some_and(|carrier| {
                carrier.step(now);
                pos.is_some_and(|p| carrier.originate(&dev.endpoint.contacts()[p].public, msg, now))
            });
            if spreads {
                let all = 0..dev.endpoint.contacts().len();
                touched.extend(self.hand_live(w, from, all));
            }
        }
        touched
    }

    /// Replaces device `i` with a given identity, contacts (with the
    /// devices they are), store and link RNG seed: for running a fixed link
    /// ([`crate::world::Sim::fixture_transcript`]).
    pub fn set_device(
        &mut self,
        i: u32,
        identity: Identity,
        contacts: Vec<(Contact, u32)>,
        store: MemoryStore,
        link_seed: u64,
    ) {
        let (contacts, nodes): (Vec<Contact>, Vec<u32>) = contacts.into_iter().unzip();
        let dev = &mut self.devices[i as usize];
        dev.pools = contacts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.groups.iter().any(|g| g.id == c.pool.id))
            .map(|(i, c)| (c.pool.id, i))
            .collect();
        dev.endpoint = Endpoint::new(&identity, contacts);
        dev.identity = identity;
        dev.contact_nodes = nodes;
        dev.store = store;
        dev.rng = ChaCha20Rng::seed_from_u64(link_seed);
    }

    /// Device `i`'s store.
    pub fn store(&self, i: u32) -> &MemoryStore {
        &self.devices[i as usize].store
    }

    /// Device `i`'s carrier, with carrying.
    pub fn carrier(&self, i: u32) -> Option<&Carrier> {
        self.devices[i as usize].carrier.as_ref()
    }

    /// Starts keeping every byte links carry.
    pub fn record(&mut self) {
        self.recording = Some(BTreeMap::new());
    }

    /// What each link carried, by link, `[side 0's bytes, side 1's]`.
    pub fn recorded(&self) -> Vec<[Vec<u8>; 2]> {
        self.recording
            .as_ref()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Bytes of stored messages per device (with carrying, envelopes and
    /// pool messages not yet hollowed too).
    pub fn storage(&self) -> Vec<u64> {
        self.devices
            .iter()
            .map(|d| {
                d.stored
                    + d.carrier.as_ref().map_or(0, Carrier::used)
                    + d.pools.keys().map(|p| d.store.bytes(p)).sum::<u64>()
            })
            .collect()
    }

    /// Every group log (1:1 and private) is identical at all its members.
    pub fn group_logs_converged(&self, w: &World) -> bool {
        for (i, dev) in self.devices.iter().enumerate() {
            for (c, &j) in dev.endpoint.contacts().iter().zip(&dev.contact_nodes) {
                if (j as usize) < i {
                    continue;
                }
                let g = &c.direct_group().id;
                if dev.store.keys(g) != self.devices[j as usize].store.keys(g) {
                    return false;
                }
            }
        }
        for (g, members) in self.groups.iter().zip(&w.social.groups) {
            let first = self.devices[members[0] as usize].store.keys(&g.id);
            if members[1..]
                .iter()
                .any(|m| self.devices[*m as usize].store.keys(&g.id) != first)
            {
                return false;
            }
        }
        true
    }
}

/// Counts how a session that ended with an error ended. A link that ends
/// in its preamble is what strangers' links do, and no protocol failure;
/// between two mutual contacts it is a lost encounter, unless the
/// acceptor has more contacts than a beacon names and this beacon's
/// random subset may have left the dialler out (by design: a beacon's
/// size must not tell how many contacts a device has).
fn classify_close(
    w: &mut World,
    e: &SessionError,
    side: usize,
    contacts: bool,
    names_all: bool,
    matched: bool,
) {
    match e {
        SessionError::Preamble(
            why @ (HandshakeError::NoContact | HandshakeError::Refused | HandshakeError::Skipped),
        ) if side == 0 => {
            if *why == HandshakeError::NoContact {
                w.metrics.strangers += 1;
            }
            // Left out of the beacon, the dialler finds nobody, or only
            // another contact through a false match, who refuses it.
            if contacts && *why != HandshakeError::Skipped && !names_all {
                w.metrics.contacts_not_named += 1;
            } else if contacts {
                w.metrics.contact_encounters_lost += 1;
            }
        }
        // The accepting side of a link whose dialler found nobody to greet.
        SessionError::Preamble(_) | SessionError::Timeout if side == 1 && !matched => {}
        other => {
            *w.metrics
                .session_errors
                .entry(other.to_string())
                .or_default() += 1
        }
    }
}

/// When the epoch after the one of `now` starts (ms).
fn next_epoch(now: strand_sync::Time) -> strand_sync::Time {
    (strand_sync::epoch(now) + 1) * strand_sync::limits::TOKEN_EPOCH
}

/// Schedules a timer event for a session's deadline.
fn arm(
    w: &mut World,
    link: LinkId,
    side: usize,
    timer: &mut Option<u64>,
    deadline: Option<strand_sync::Time>,
) {
    let Some(ms) = deadline else {
        *timer = None;
        return;
    };
    let at = ms
        .saturating_sub(strand_sync::harness::EPOCH)
        .saturating_mul(1000)
        .max(w.now + 1000);
    // Only an earlier deadline needs a new event: a later one is re-armed
    // when the pending event fires.
    if timer.is_none_or(|t| at < t) {
        *timer = Some(at);
        w.queue.push(
            at,
            crate::world::Ev::Timer {
                link,
                side: side as u8,
            },
        );
    }
}
