//! The simulated world: devices, the contacts between them, the links
//! those contacts open, and the bytes the forwarding policy moves over
//! them. Single-threaded and driven only by the event queue and the run's
//! RNG, so one scenario and seed always give the same run.

use std::collections::BTreeMap;

use crate::baseline::Baseline;
use crate::engine::{Queue, Rng};
use crate::metrics::Metrics;
use crate::mobility::{Contacts, Waypoint};
use crate::scenario::{ContactModel, Link, Policy, Scenario};
use crate::social::{Creation, Social};
use crate::strand::Strand;
use crate::trace::{Conn, Trace};
use crate::units::Micros;

/// Samples of the running totals per run (for plots).
const SAMPLES: u64 = 200;

/// A link's id; never reused within a run.
pub type LinkId = u64;

/// What moves over a link.
#[derive(Debug)]
pub enum Packet {
    /// strand-sync wire bytes (or a discovery beacon).
    Bytes(Vec<u8>),
    /// A baseline's summary vector.
    Summary,
    /// A baseline's copy of message `idx`.
    Message(u32),
}

/// Something that happens. Fields name devices (`a`, `b`, `node`),
/// links, and a link direction (0: `a` to `b`) or side (0: `a`).
#[derive(Debug)]
#[allow(missing_docs)]
pub enum Ev {
    /// The meetings model's next meeting.
    Meeting,
    /// A meeting ends.
    MeetingEnd { a: u32, b: u32 },
    /// The next line of a replayed trace.
    TraceNext,
    /// A device reaches the end of a waypoint leg or pause.
    Leg { node: u32 },
    /// Two devices come into (`enter`) or go out of range, if neither has
    /// changed course since this was computed.
    Cross {
        a: u32,
        b: u32,
        va: u32,
        vb: u32,
        enter: bool,
    },
    /// A link finished its setup.
    Ready { link: LinkId },
    /// A direction of a link finished sending a packet.
    TxDone { link: LinkId, dir: u8 },
    /// A packet arrives at the far end.
    Arrive {
        link: LinkId,
        dir: u8,
        packet: Packet,
    },
    /// A session timer on one side of a link.
    Timer { link: LinkId, side: u8 },
    /// The next message of the workload.
    Create,
    /// A device switches off or on.
    Churn { node: u32 },
    /// A partition starts.
    PartitionStart(usize),
    /// A partition heals.
    PartitionEnd(usize),
}

/// One direction of a link: sending, or free.
#[derive(Debug, Default)]
pub struct Dir {
    /// A packet is on the air.
    pub busy: bool,
    /// When it started, how long it takes (whole microseconds, kept as a
    /// float: a transfer longer than `Micros` holds still has its rate),
    /// and its bytes on the air (the bytes are counted as they are sent:
    /// a cut counts the part sent).
    started: Micros,
    tx: f64,
    wire: u64,
}

impl Dir {
    /// Bytes of the current packet sent by `now`.
    fn sent_by(&self, now: Micros) -> u64 {
        let elapsed = now.saturating_sub(self.started) as f64;
        if !self.busy {
            0
        } else if elapsed >= self.tx {
            self.wire
        } else {
            (self.wire as f64 * elapsed / self.tx).round() as u64
        }
    }
}

/// A link between two devices in contact.
pub struct LinkState {
    /// The lower device index (it dials).
    pub a: u32,
    /// The higher.
    pub b: u32,
    /// Index into [`World::link_types`].
    pub kind: usize,
    /// Setup finished.
    pub ready: bool,
    /// Direction 0 sends from `a` to `b`, 1 from `b` to `a`.
    pub dirs: [Dir; 2],
    /// Carried at least one new message.
    pub carried: bool,
}

impl LinkState {
    /// The device on `side` (0 = a, 1 = b).
    pub fn node(&self, side: usize) -> u32 {
        if side == 0 {
            self.a
        } else {
            self.b
        }
    }
}

/// A created message, as the simulator tracks it (the policy holds the
/// real thing).
#[derive(Debug, Clone)]
pub struct MessageInfo {
    /// The workload entry.
    pub creation: Creation,
    /// Devices meant to receive it.
    pub recipients: Vec<u32>,
    /// Set when the policy could not create it.
    pub failed: bool,
}

/// Everything but the policy.
pub struct World {
    /// Now.
    pub now: Micros,
    /// End of the run.
    pub end: Micros,
    /// Pending events.
    pub queue: Queue<Ev>,
    /// The run's only randomness.
    pub rng: Rng,
    /// Device count.
    pub n: u32,
    /// Link type of each group.
    pub link_types: Vec<Link>,
    /// Each device's group.
    pub group_of: Vec<u16>,
    /// Radio range of each device (waypoint).
    pub range: Vec<f64>,
    /// Switched on.
    pub on: Vec<bool>,
    /// Partition block of each device (all 0 when not partitioned).
    pub side: Vec<u32>,
    /// The partition in force.
    pub active_partition: Option<usize>,
    /// Devices in contact according to the contact model, per device.
    pub in_contact: Vec<Vec<u32>>,
    /// Live links of each device.
    pub node_links: Vec<Vec<LinkId>>,
    /// Live links.
    pub links: BTreeMap<LinkId, LinkState>,
    /// Live link of a pair `(low, high)`.
    pub pair_links: BTreeMap<(u32, u32), LinkId>,
    next_link: LinkId,
    /// Social graph, groups and workload.
    pub social: Social,
    next_creation: usize,
    /// Created messages, by index.
    pub messages: Vec<MessageInfo>,
    /// Counters and samples.
    pub metrics: Metrics,
    contacts: Contacts,
    scenario: Scenario,
}

/// The forwarding policy: what to send when a link direction is free, and
/// what to do with what arrives.
pub enum PolicyState {
    /// Real strand-sync sessions.
    Strand(Box<Strand>),
    /// Epidemic, Spray-and-Wait or Direct Delivery.
    Baseline(Box<Baseline>),
}

/// A whole run.
pub struct Sim {
    /// The world.
    pub world: World,
    /// The policy.
    pub policy: PolicyState,
    /// Events handled.
    pub events: u64,
}

impl Sim {
    /// Builds the run: devices, social graph, workload, contact model.
    pub fn new(scenario: &Scenario, seed: u64) -> anyhow::Result<Sim> {
        let mut rng = Rng::new(seed);
        let trace = match &scenario.contacts {
            ContactModel::Trace { file } => Some(Trace::load(&scenario.resolve_path(file))?),
            _ => None,
        };
        let n = scenario.devices();
        if let Some(t) = &trace {
            anyhow::ensure!(
                t.hosts <= n,
                "the trace names host {} but the scenario has {n} devices (raise [[group]] count)",
                t.hosts - 1
            );
        }
        let link_types = scenario.group_links().map_err(anyhow::Error::msg)?;
        let mut group_of = Vec::with_capacity(n as usize);
        let mut range = Vec::with_capacity(n as usize);
        for (g, spec) in scenario.groups.iter().enumerate() {
            for _ in 0..spec.count {
                group_of.push(g as u16);
                range.push(spec.range);
            }
        }
        let social = Social::build(scenario, n, trace.as_ref(), &mut rng)?;
        if scenario.policy.is_strand() {
            if let Some(c) = social
                .workload
                .iter()
                .find(|c| c.size > strand_sync::limits::MAX_BODY_LEN as u64)
            {
                anyhow::bail!(
                    "a message of {} bytes at {:.1} s is larger than strand's {}-byte limit",
                    c.size,
                    crate::units::secs(c.time),
                    strand_sync::limits::MAX_BODY_LEN
                );
            }
        }
        let contacts = match &scenario.contacts {
            ContactModel::Meetings {
                gap,
                duration,
                fixed_duration,
                communities,
                outside_gap,
            } => Contacts::meetings(
                n,
                gap.0,
                duration.0,
                *fixed_duration,
                *communities,
                outside_gap.map(|g| g.0),
            ),
            ContactModel::Waypoint { area } => {
                Contacts::Waypoint(Box::new(Waypoint::new(scenario, *area)))
            }
            ContactModel::Trace { .. } => Contacts::Trace {
                conns: trace.map(|t| t.conns).unwrap_or_default(),
                next: 0,
            },
        };
        let mut metrics = Metrics::new(n);
        metrics.unaddressed = social.unaddressed;
        let mut world = World {
            now: 0,
            end: scenario.duration.0,
            queue: Queue::default(),
            rng,
            n,
            link_types,
            group_of,
            range,
            on: vec![true; n as usize],
            side: vec![0; n as usize],
            active_partition: None,
            in_contact: vec![Vec::new(); n as usize],
            node_links: vec![Vec::new(); n as usize],
            links: BTreeMap::new(),
            pair_links: BTreeMap::new(),
            next_link: 1,
            social,
            next_creation: 0,
            messages: Vec::new(),
            metrics,
            contacts,
            scenario: scenario.clone(),
        };
        let policy = match scenario.policy {
            Policy::Strand => PolicyState::Strand(Box::new(Strand::new(&mut world, None)?)),
            Policy::StrandCarrying => {
                let carry = scenario.carry_config();
                PolicyState::Strand(Box::new(Strand::new(&mut world, Some(carry))?))
            }
            p => PolicyState::Baseline(Box::new(Baseline::new(&world, p, &scenario.options))),
        };
        let mut sim = Sim {
            world,
            policy,
            events: 0,
        };
        sim.start();
        Ok(sim)
    }

    /// `count` devices on one LAN with `policy`, none of which meets
    /// another by itself in 15 s: for running a fixture, whose devices
    /// [`crate::strand::Strand::set_device`] replaces and whose meetings
    /// the caller makes.
    fn for_fixture(policy: &str, count: u32) -> anyhow::Result<Sim> {
        let scenario = Scenario::parse(
            &format!(
                r#"
                name = "fixture"
                duration = "15s"
                policy = "{policy}"
                [[group]]
                count = {count}
                link = "lan"
                [contacts]
                model = "meetings"
                gap = "10000h"
                duration = "1m"
                [social]
                model = "complete"
                "#
            ),
            Default::default(),
        )
        .map_err(anyhow::Error::msg)?;
        Sim::new(&scenario, 1)
    }

    /// Runs strand-sync's fixed link ([`LinkFixture`]) the way every
    /// simulated link runs: two devices (Alice device 0, who dials) on a
    /// LAN link that comes up at time 0, for 15 s (the link is quiet long
    /// before, and the first keepalive is due at 20 s). Returns
    /// what each side wrote, to compare with the fixture's reference.
    ///
    /// [`LinkFixture`]: strand_sync::harness::LinkFixture
    pub fn fixture_transcript(
        f: &strand_sync::harness::LinkFixture,
    ) -> anyhow::Result<[Vec<u8>; 2]> {
        let mut sim = Sim::for_fixture("strand", 2)?;
        let PolicyState::Strand(s) = &mut sim.policy else {
            anyhow::bail!("the fixture needs the strand policy");
        };
        let mut store = strand_sync::MemoryStore::new();
        strand_sync::WriteStore::insert(&mut store, &f.message.group(), &f.message)?;
        let (with_bob, with_alice) = f.contacts();
        s.set_device(
            0,
            copy(&f.alice)?,
            vec![(with_bob, 1)],
            store,
            f.alice_link_seed,
        );
        s.set_device(
            1,
            copy(&f.bob)?,
            vec![(with_alice, 0)],
            strand_sync::MemoryStore::new(),
            f.bob_link_seed,
        );
        s.record();
        // The simulation's clock starts at strand-sync's EPOCH, the
        // fixture's time.
        sim.contact_up(0, 1);
        sim.run(|_, _| {});
        let PolicyState::Strand(s) = &sim.policy else {
            unreachable!("checked above")
        };
        s.recorded()
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no link came up"))
    }

    /// Runs strand-sync's carrying-pool fixture ([`PoolFixture`]) the way
    /// every simulated device takes in pool messages: Ben (device 0) holds
    /// the fixture's pool messages to Cat (device 1), whose contacts are
    /// Ben and Ann (device 2, never met); both carry, and they meet on a
    /// LAN link for 15 s. Returns what Cat ends with, to compare with
    /// [`PoolFixture::expected`].
    ///
    /// [`PoolFixture`]: strand_sync::harness::PoolFixture
    /// [`PoolFixture::expected`]: strand_sync::harness::PoolFixture::expected
    pub fn pool_fixture_outcome(
        f: &strand_sync::harness::PoolFixture,
    ) -> anyhow::Result<strand_sync::harness::PoolOutcome> {
        let mut sim = Sim::for_fixture("strand-carrying", 3)?;
        let PolicyState::Strand(s) = &mut sim.policy else {
            anyhow::bail!("the fixture needs the strand policy");
        };
        let contact = |me: &strand_sync::Identity, them: &strand_sync::Identity| {
            let mut c = me.contact(&them.public())?;
            c.groups.push(c.pool.clone());
            Ok::<_, anyhow::Error>(c)
        };
        let mut ben_store = strand_sync::MemoryStore::new();
        for m in &f.messages {
            strand_sync::WriteStore::insert(&mut ben_store, &m.group(), m)?;
        }
        s.set_device(
            0,
            copy(&f.ben)?,
            vec![(contact(&f.ben, &f.cat)?, 1)],
            ben_store,
            1,
        );
        s.set_device(
            1,
            copy(&f.cat)?,
            vec![(contact(&f.cat, &f.ben)?, 0), (contact(&f.cat, &f.ann)?, 2)],
            strand_sync::MemoryStore::new(),
            2,
        );
        s.set_device(
            2,
            copy(&f.ann)?,
            vec![(contact(&f.ann, &f.cat)?, 1)],
            strand_sync::MemoryStore::new(),
            3,
        );
        sim.contact_up(0, 1);
        sim.run(|_, _| {});
        let PolicyState::Strand(s) = &sim.policy else {
            unreachable!("checked above")
        };
        let carrier = s
            .carrier(1)
            .ok_or_else(|| anyhow::anyhow!("Cat does not carry"))?;
        let stats = carrier.stats();
        Ok(f.outcome(s.store(1), stats.opened, stats.accepted, carrier.held()))
    }

    /// The waypoint model's check that reported contacts match distances
    /// (`None` for other contact models).
    pub fn waypoint_consistent(&self) -> Option<bool> {
        match &self.world.contacts {
            Contacts::Waypoint(wp) => Some(wp.contacts_match_distance(&self.world)),
            _ => None,
        }
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.world.scenario
    }

    fn start(&mut self) {
        let w = &mut self.world;
        if let Some(churn) = w.scenario.churn.clone() {
            let (on, off) = (churn.mean_on.0 as f64, churn.mean_off.0 as f64);
            for node in 0..w.n {
                let is_on = w.rng.chance(on / (on + off));
                w.on[node as usize] = is_on;
                let t = w.rng.exp(if is_on { on } else { off });
                w.queue.push(t, Ev::Churn { node });
            }
        }
        for (i, p) in w.scenario.partitions.clone().iter().enumerate() {
            w.queue.push(p.start.0, Ev::PartitionStart(i));
            w.queue.push(p.end.0, Ev::PartitionEnd(i));
        }
        if !w.social.workload.is_empty() {
            let t = w.social.workload[0].time;
            w.queue.push(t, Ev::Create);
        }
        let ups = w.with_contacts(|c, w| c.start(w));
        for (a, b) in ups {
            self.contact_up(a, b);
        }
    }

    /// Runs to the end, calling `progress(now, end)` now and then.
    pub fn run(&mut self, mut progress: impl FnMut(Micros, Micros)) {
        let end = self.world.end;
        let step = (end / SAMPLES).max(1);
        let mut next_sample = 0;
        while let Some((t, ev)) = self.world.queue.pop_until(end) {
            while next_sample <= t {
                self.world.metrics.sample(next_sample);
                next_sample += step;
            }
            self.world.now = t;
            self.events += 1;
            if self.events.is_multiple_of(65_536) {
                progress(t, end);
            }
            self.handle(ev);
        }
        self.world.now = end;
        self.close_books();
        while next_sample <= end {
            self.world.metrics.sample(next_sample);
            next_sample += step;
        }
        progress(end, end);
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Meeting => {
                let meeting = self.world.with_contacts(|c, w| c.next_meeting(w));
                if let Some((a, b, dur)) = meeting {
                    if !self.world.in_contact[a as usize].contains(&b) {
                        let end = self.world.now + dur;
                        self.world.queue.push(end, Ev::MeetingEnd { a, b });
                        self.contact_up(a, b);
                    }
                }
            }
            Ev::MeetingEnd { a, b } => self.contact_down(a, b),
            Ev::TraceNext => {
                let conn = match &mut self.world.contacts {
                    Contacts::Trace { conns, next } => {
                        let c = conns.get(*next).copied();
                        *next += 1;
                        if let Some(n) = conns.get(*next) {
                            let t = n.time;
                            self.world.queue.push(t, Ev::TraceNext);
                        }
                        c
                    }
                    _ => None,
                };
                if let Some(Conn { a, b, up, .. }) = conn {
                    if up && !self.world.in_contact[a as usize].contains(&b) {
                        self.contact_up(a, b);
                    } else if !up {
                        self.contact_down(a, b);
                    }
                }
            }
            Ev::Leg { node } => {
                let changes = self.world.with_contacts(|c, w| match c {
                    Contacts::Waypoint(wp) => wp.next_leg(node, w),
                    _ => Vec::new(),
                });
                self.apply_changes(changes);
            }
            Ev::Cross {
                a,
                b,
                va,
                vb,
                enter,
            } => {
                let changes = self.world.with_contacts(|c, w| match c {
                    Contacts::Waypoint(wp) => wp.cross(a, b, va, vb, enter, w),
                    _ => Vec::new(),
                });
                self.apply_changes(changes);
            }
            Ev::Ready { link } => {
                let Some(l) = self.world.links.get_mut(&link) else {
                    return;
                };
                l.ready = true;
                self.world.metrics.contacts += 1;
                match &mut self.policy {
                    PolicyState::Strand(s) => s.on_ready(&mut self.world, link),
                    PolicyState::Baseline(b) => b.on_ready(&mut self.world, link),
                }
                self.kick(link);
            }
            Ev::TxDone { link, dir } => {
                if let Some(l) = self.world.links.get_mut(&link) {
                    let d = &mut l.dirs[dir as usize];
                    self.world.metrics.wire_bytes += d.wire;
                    d.busy = false;
                    self.kick(link);
                }
            }
            Ev::Arrive { link, dir, packet } => {
                if !self.world.links.contains_key(&link) {
                    return;
                }
                let touched = match &mut self.policy {
                    PolicyState::Strand(s) => {
                        s.on_arrive(&mut self.world, link, dir as usize, packet)
                    }
                    PolicyState::Baseline(b) => {
                        b.on_arrive(&mut self.world, link, dir as usize, packet)
                    }
                };
                self.kick(link);
                for l in touched {
                    self.kick(l);
                }
            }
            Ev::Timer { link, side } => {
                if let PolicyState::Strand(s) = &mut self.policy {
                    for l in s.on_timer(&mut self.world, link, side as usize) {
                        self.kick(l);
                    }
                }
            }
            Ev::Create => {
                let w = &mut self.world;
                let c = w.social.workload[w.next_creation].clone();
                w.next_creation += 1;
                if let Some(next) = w.social.workload.get(w.next_creation) {
                    let t = next.time;
                    w.queue.push(t, Ev::Create);
                }
                let touched = match &mut self.policy {
                    PolicyState::Strand(s) => s.create(&mut self.world, c),
                    PolicyState::Baseline(b) => b.create(&mut self.world, c),
                };
                for l in touched {
                    self.kick(l);
                }
            }
            Ev::Churn { node } => {
                let w = &mut self.world;
                let churn = w.scenario.churn.clone().expect("churn events need churn");
                let i = node as usize;
                w.on[i] = !w.on[i];
                let mean = if w.on[i] {
                    churn.mean_on.0
                } else {
                    churn.mean_off.0
                };
                let t = w.now + w.rng.exp(mean as f64);
                w.queue.push(t, Ev::Churn { node });
                if w.on[i] {
                    for b in w.in_contact[i].clone() {
                        self.open_link(node, b);
                    }
                } else {
                    for link in w.node_links[i].clone() {
                        self.cut(link);
                    }
                }
            }
            Ev::PartitionStart(p) => {
                let w = &mut self.world;
                w.active_partition = Some(p);
                let sides = u64::from(w.scenario.partitions[p].sides);
                for i in 0..w.n {
                    w.side[i as usize] = (u64::from(i) * sides / u64::from(w.n)) as u32;
                }
                let cross: Vec<LinkId> = w
                    .links
                    .iter()
                    .filter(|(_, l)| w.side[l.a as usize] != w.side[l.b as usize])
                    .map(|(id, _)| *id)
                    .collect();
                for link in cross {
                    self.cut(link);
                }
            }
            Ev::PartitionEnd(p) => {
                let w = &mut self.world;
                if w.active_partition != Some(p) {
                    return;
                }
                w.active_partition = None;
                w.side.iter_mut().for_each(|s| *s = 0);
                let pairs: Vec<(u32, u32)> = (0..w.n)
                    .flat_map(|a| {
                        w.in_contact[a as usize]
                            .iter()
                            .filter(move |b| a < **b)
                            .map(move |b| (a, *b))
                    })
                    .collect();
                for (a, b) in pairs {
                    self.open_link(a, b);
                }
            }
        }
    }

    /// Counts what links still up at the end have carried and sent (as a
    /// cut would, without cutting them).
    fn close_books(&mut self) {
        let w = &mut self.world;
        let ids: Vec<LinkId> = w.links.keys().copied().collect();
        for id in ids {
            let l = &w.links[&id];
            if l.ready && l.carried {
                w.metrics.contacts_carried += 1;
            }
            w.metrics.wire_bytes += l.dirs.iter().map(|d| d.sent_by(w.now)).sum::<u64>();
            if let PolicyState::Strand(s) = &self.policy {
                s.close_books(w, id);
            }
        }
        if let PolicyState::Strand(s) = &self.policy {
            w.metrics.envelopes_carried = (0..w.n)
                .filter_map(|i| s.carrier(i))
                .map(|c| c.stats().held)
                .sum();
        }
    }

    fn apply_changes(&mut self, changes: Vec<(u32, u32, bool)>) {
        for (a, b, up) in changes {
            if up {
                self.contact_up(a, b);
            } else {
                self.contact_down(a, b);
            }
        }
    }

    /// The contact model says `a` and `b` are now in contact.
    fn contact_up(&mut self, a: u32, b: u32) {
        let w = &mut self.world;
        w.metrics.encounters += 1;
        insert_sorted(&mut w.in_contact[a as usize], b);
        insert_sorted(&mut w.in_contact[b as usize], a);
        self.open_link(a, b);
    }

    /// The contact model says `a` and `b` are no longer in contact.
    fn contact_down(&mut self, a: u32, b: u32) {
        let w = &mut self.world;
        remove_sorted(&mut w.in_contact[a as usize], b);
        remove_sorted(&mut w.in_contact[b as usize], a);
        if let Some(&link) = w.pair_links.get(&(a.min(b), a.max(b))) {
            self.cut(link);
        }
    }

    /// Opens a link if both devices are on, on the same side and not
    /// already linked.
    fn open_link(&mut self, a: u32, b: u32) {
        let w = &mut self.world;
        let (a, b) = (a.min(b), a.max(b));
        let (ia, ib) = (a as usize, b as usize);
        if !w.on[ia] || !w.on[ib] || w.side[ia] != w.side[ib] || w.pair_links.contains_key(&(a, b))
        {
            return;
        }
        let (ka, kb) = (w.group_of[ia] as usize, w.group_of[ib] as usize);
        let kind = if w.link_types[ka].preference <= w.link_types[kb].preference {
            ka
        } else {
            kb
        };
        let id = w.next_link;
        w.next_link += 1;
        w.links.insert(
            id,
            LinkState {
                a,
                b,
                kind,
                ready: false,
                dirs: [Dir::default(), Dir::default()],
                carried: false,
            },
        );
        w.pair_links.insert((a, b), id);
        w.node_links[ia].push(id);
        w.node_links[ib].push(id);
        let setup = w.link_types[kind].setup;
        w.queue.push(w.now + setup, Ev::Ready { link: id });
    }

    /// Takes a link down: whatever is in flight is lost.
    fn cut(&mut self, link: LinkId) {
        let w = &mut self.world;
        let Some(l) = w.links.remove(&link) else {
            return;
        };
        w.pair_links.remove(&(l.a, l.b));
        w.node_links[l.a as usize].retain(|x| *x != link);
        w.node_links[l.b as usize].retain(|x| *x != link);
        if l.ready && l.carried {
            w.metrics.contacts_carried += 1;
        }
        w.metrics.wire_bytes += l.dirs.iter().map(|d| d.sent_by(w.now)).sum::<u64>();
        let touched = match &mut self.policy {
            PolicyState::Strand(s) => s.on_cut(w, link, &l),
            PolicyState::Baseline(b) => {
                b.on_cut(w, link, &l);
                Vec::new()
            }
        };
        for l in touched {
            self.kick(l);
        }
    }

    /// Starts a transmission on each free direction of `link`, if the
    /// policy has something to send.
    fn kick(&mut self, link: LinkId) {
        for dir in 0..2 {
            let w = &mut self.world;
            let Some(l) = w.links.get(&link) else {
                return;
            };
            if !l.ready || l.dirs[dir].busy {
                continue;
            }
            let next = match &mut self.policy {
                PolicyState::Strand(s) => s.next_packet(w, link, dir),
                PolicyState::Baseline(b) => b.next_packet(w, link, dir),
            };
            let Some((packet, len)) = next else {
                continue;
            };
            let l = w.links.get_mut(&link).expect("checked");
            let t = &w.link_types[l.kind];
            let frames = len.div_ceil(t.frame).max(1);
            // Lost frames are sent again: the expected number of sends of a
            // frame is 1 / (1 - loss).
            let sends = frames as f64 / (1.0 - t.loss);
            let wire = len
                .saturating_add((sends * t.frame_overhead as f64).round() as u64)
                .saturating_add(((sends - frames as f64) * t.frame as f64).round() as u64);
            let tx = t.rate.map_or(0.0, |r| (wire as f64 / r * 1e6).round());
            let (now, latency) = (w.now, t.latency);
            l.dirs[dir] = Dir {
                busy: true,
                started: now,
                tx,
                wire,
            };
            // Limits each accepted can together make a transfer outlast
            // any run (a 1 GiB copy in 1-byte frames with 1 MiB of
            // overhead each, at 1 byte/s): its events go to the end of
            // time, where nothing runs, so it just never arrives (`as`
            // saturates).
            let done = now.saturating_add(tx as Micros);
            w.queue.push(
                done,
                Ev::TxDone {
                    link,
                    dir: dir as u8,
                },
            );
            w.queue.push(
                done.saturating_add(latency),
                Ev::Arrive {
                    link,
                    dir: dir as u8,
                    packet,
                },
            );
        }
    }
}

impl World {
    /// Lends the contact model and the rest of the world at once (the
    /// model schedules events and reads device state).
    fn with_contacts<R>(&mut self, f: impl FnOnce(&mut Contacts, &mut World) -> R) -> R {
        let mut contacts = std::mem::replace(&mut self.contacts, Contacts::None);
        let r = f(&mut contacts, self);
        self.contacts = contacts;
        r
    }

    /// Virtual wall clock for strand-sync, in Unix milliseconds.
    pub fn now_ms(&self) -> strand_sync::Time {
        strand_sync::harness::EPOCH + self.now / 1000
    }

    /// The message's recipients.
    pub fn recipients(&self, c: &Creation) -> Vec<u32> {
        match c.dest {
            crate::social::Dest::Device(d) => vec![d],
            crate::social::Dest::Group(g) => self.social.groups[g as usize]
                .iter()
                .copied()
                .filter(|m| *m != c.from)
                .collect(),
        }
    }

    /// Registers a new message and returns its index.
    pub fn register(&mut self, c: Creation) -> u32 {
        let recipients = self.recipients(&c);
        self.metrics.created += 1;
        self.metrics.units += recipients.len() as u64;
        self.metrics.created_at.push(c.time);
        let idx = self.messages.len() as u32;
        self.messages.push(MessageInfo {
            creation: c,
            recipients,
            failed: false,
        });
        idx
    }

    /// A device received a message for the first time.
    pub fn received(&mut self, node: u32, idx: u32, hops: u32) {
        let m = &self.messages[idx as usize];
        let latency = self.now - m.creation.time;
        let size = m.creation.size;
        self.metrics.payload_bytes += size;
        self.metrics.copies += 1;
        if m.recipients.contains(&node) {
            self.metrics.deliver(self.now, latency, hops);
        }
    }
}

fn insert_sorted(v: &mut Vec<u32>, x: u32) {
    if let Err(i) = v.binary_search(&x) {
        v.insert(i, x);
    }
}

fn remove_sorted(v: &mut Vec<u32>, x: u32) {
    if let Ok(i) = v.binary_search(&x) {
        v.remove(i);
    }
}

/// A fixture's identity, again (identities are not `Clone`).
fn copy(i: &strand_sync::Identity) -> Result<strand_sync::Identity, strand_sync::KeyError> {
    strand_sync::Identity::from_secret_bytes(&i.to_secret_bytes(), i.name())
}
