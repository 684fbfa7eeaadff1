//! Contact models: what says two devices are in contact. Random meetings
//! (with optional communities), random waypoint movement with a radio
//! range, or a replayed trace. Partitions and churn sit on top, in
//! [`crate::world`]: a contact only opens a link when both devices are on
//! and on the same side.

use crate::engine::Rng;
use crate::scenario::Scenario;
use crate::trace::Conn;
use crate::units::{Micros, SECOND};
use crate::world::{Ev, World};

/// The active contact model.
pub enum Contacts {
    /// No model (placeholder while the model is borrowed).
    None,
    /// Random pairwise meetings.
    Meetings(Meetings),
    /// Random waypoint.
    Waypoint(Box<Waypoint>),
    /// Trace replay.
    Trace {
        /// Contacts in time order.
        conns: Vec<Conn>,
        /// The next one to apply.
        next: usize,
    },
}

/// Random meetings: each pair meets after exponential gaps. The whole
/// network is one Poisson process (rate = the sum over pairs) that picks a
/// pair per meeting, so the cost is per meeting, not per pair.
pub struct Meetings {
    blocks: Vec<Vec<u32>>,
    block_of: Vec<u32>,
    /// Cumulative weight (pairs inside) of each block.
    inside_cum: Vec<u64>,
    rate_inside: f64,
    rate_outside: f64,
    duration: Micros,
    fixed: bool,
}

impl Contacts {
    /// Builds the meetings model.
    pub fn meetings(
        n: u32,
        gap: Micros,
        duration: Micros,
        fixed: bool,
        communities: u32,
        outside_gap: Option<Micros>,
    ) -> Contacts {
        let k = u64::from(communities);
        let mut blocks = vec![Vec::new(); communities as usize];
        let mut block_of = Vec::with_capacity(n as usize);
        for i in 0..n {
            let b = (u64::from(i) * k / u64::from(n)) as u32;
            blocks[b as usize].push(i);
            block_of.push(b);
        }
        let pairs = |m: u64| m * m.saturating_sub(1) / 2;
        let mut inside_cum = Vec::new();
        let mut total_inside = 0;
        for b in &blocks {
            total_inside += pairs(b.len() as u64);
            inside_cum.push(total_inside);
        }
        let all = pairs(u64::from(n));
        let outside = all - total_inside;
        let rate_inside = total_inside as f64 / gap as f64;
        let rate_outside = match outside_gap {
            Some(g) if outside > 0 => outside as f64 / g as f64,
            _ => 0.0,
        };
        Contacts::Meetings(Meetings {
            blocks,
            block_of,
            inside_cum,
            rate_inside,
            rate_outside,
            duration,
            fixed,
        })
    }

    /// Schedules the model's first events; returns pairs in contact at 0.
    pub fn start(&mut self, w: &mut World) -> Vec<(u32, u32)> {
        match self {
            Contacts::None => Vec::new(),
            Contacts::Meetings(m) => {
                let t = m.gap(&mut w.rng);
                w.queue.push(t, Ev::Meeting);
                Vec::new()
            }
            Contacts::Trace { conns, .. } => {
                if let Some(c) = conns.first() {
                    w.queue.push(c.time, Ev::TraceNext);
                }
                Vec::new()
            }
            Contacts::Waypoint(wp) => wp.start(w),
        }
    }

    /// The meetings model's next pair and duration; schedules the one after.
    pub fn next_meeting(&mut self, w: &mut World) -> Option<(u32, u32, Micros)> {
        let Contacts::Meetings(m) = self else {
            return None;
        };
        let t = w.now + m.gap(&mut w.rng);
        w.queue.push(t, Ev::Meeting);
        let rng = &mut w.rng;
        let total = m.rate_inside + m.rate_outside;
        let (a, b) = if rng.unit() * total < m.rate_inside {
            let last = *m.inside_cum.last()?;
            let x = rng.below(last);
            let block = m.inside_cum.partition_point(|c| *c <= x);
            let members = &m.blocks[block];
            let i = rng.below(members.len() as u64) as usize;
            let mut j = rng.below(members.len() as u64 - 1) as usize;
            if j >= i {
                j += 1;
            }
            (members[i], members[j])
        } else {
            let n = m.block_of.len() as u64;
            loop {
                let a = rng.below(n) as u32;
                let b = rng.below(n) as u32;
                if a != b && m.block_of[a as usize] != m.block_of[b as usize] {
                    break (a, b);
                }
            }
        };
        let dur = if m.fixed {
            m.duration
        } else {
            rng.exp(m.duration as f64)
        };
        Some((a.min(b), a.max(b), dur))
    }
}

impl Meetings {
    fn gap(&self, rng: &mut Rng) -> Micros {
        rng.exp(1.0 / (self.rate_inside + self.rate_outside))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Leg {
    /// Position at `t0` (metres).
    x: f64,
    y: f64,
    /// Velocity (m/s).
    vx: f64,
    vy: f64,
    /// Start and end (seconds).
    t0: f64,
    t1: f64,
    moving: bool,
    /// Bumped at every new leg; stale crossings are ignored.
    version: u32,
}

impl Leg {
    fn at(&self, t: f64) -> (f64, f64) {
        let dt = t - self.t0;
        (self.x + self.vx * dt, self.y + self.vy * dt)
    }
}

/// Random waypoint (Johnson & Maltz): each device walks in a straight line
/// to a uniformly random point at a uniformly random speed, pauses, and
/// repeats. Contacts are computed exactly: when a device starts a leg, the
/// times at which it enters or leaves each other device's range are solved
/// from the two straight-line motions (a quadratic), and only those
/// crossings become events — no time steps.
pub struct Waypoint {
    area: [f64; 2],
    legs: Vec<Leg>,
    speed: Vec<[f64; 2]>,
    pause: Vec<[Micros; 2]>,
}

impl Waypoint {
    /// For the scenario's devices.
    pub fn new(sc: &Scenario, area: [f64; 2]) -> Waypoint {
        let mut speed = Vec::new();
        let mut pause = Vec::new();
        for g in &sc.groups {
            for _ in 0..g.count {
                speed.push(g.speed);
                pause.push([g.pause[0].0, g.pause[1].0]);
            }
        }
        Waypoint {
            area,
            legs: Vec::new(),
            speed,
            pause,
        }
    }

    fn start(&mut self, w: &mut World) -> Vec<(u32, u32)> {
        let n = w.n as usize;
        for i in 0..n {
            let x = w.rng.between_f(0.0, self.area[0]);
            let y = w.rng.between_f(0.0, self.area[1]);
            let leg = Leg {
                x,
                y,
                ..Leg::default()
            };
            self.legs.push(leg);
            self.new_leg(i, 0.0, true, w);
        }
        let mut ups = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                let (a, b) = (i as u32, j as u32);
                let r = w.range[i].min(w.range[j]);
                let (dx, dy) = self.offset(i, j, 0.0);
                let inside = dx * dx + dy * dy <= r * r;
                if inside {
                    ups.push((a, b));
                }
                self.schedule(i, j, 0.0, inside, w);
            }
        }
        ups
    }

    /// Starts device `i`'s next leg (a walk if `walk`, else a pause) at `t`.
    fn new_leg(&mut self, i: usize, t: f64, walk: bool, w: &mut World) {
        let (x, y) = self.legs[i].at(t);
        let version = self.legs[i].version.wrapping_add(1);
        let leg = if walk {
            let tx = w.rng.between_f(0.0, self.area[0]);
            let ty = w.rng.between_f(0.0, self.area[1]);
            let v = w.rng.between_f(self.speed[i][0], self.speed[i][1]);
            let d = ((tx - x).powi(2) + (ty - y).powi(2)).sqrt();
            let dur = (d / v).max(1e-3);
            Leg {
                x,
                y,
                vx: (tx - x) / dur,
                vy: (ty - y) / dur,
                t0: t,
                t1: t + dur,
                moving: true,
                version,
            }
        } else {
            let p = w.rng.between(self.pause[i][0], self.pause[i][1]);
            Leg {
                x,
                y,
                vx: 0.0,
                vy: 0.0,
                t0: t,
                t1: t + (p as f64 / SECOND as f64).max(1e-3),
                moving: false,
                version,
            }
        };
        self.legs[i] = leg;
        let end = (leg.t1 * SECOND as f64).round() as Micros;
        w.queue.push(end.max(w.now + 1), Ev::Leg { node: i as u32 });
    }

    fn offset(&self, i: usize, j: usize, t: f64) -> (f64, f64) {
        let (xi, yi) = self.legs[i].at(t);
        let (xj, yj) = self.legs[j].at(t);
        (xi - xj, yi - yj)
    }

    /// Schedules the next range crossing of `i` and `j` after `t`, while
    /// both stay on their current legs.
    fn schedule(&self, i: usize, j: usize, t: f64, inside: bool, w: &mut World) {
        let (li, lj) = (&self.legs[i], &self.legs[j]);
        let horizon = li.t1.min(lj.t1) - t;
        let (dvx, dvy) = (li.vx - lj.vx, li.vy - lj.vy);
        let a = dvx * dvx + dvy * dvy;
        if horizon <= 0.0 || a < 1e-12 {
            return;
        }
        let (dx, dy) = self.offset(i, j, t);
        let r = w.range[i].min(w.range[j]);
        let b = 2.0 * (dx * dvx + dy * dvy);
        let c = dx * dx + dy * dy - r * r;
        let disc = b * b - 4.0 * a * c;
        if disc <= 0.0 {
            return;
        }
        let sq = disc.sqrt();
        let (t1, t2) = ((-b - sq) / (2.0 * a), (-b + sq) / (2.0 * a));
        let at = if inside { t2 } else { t1 };
        if at <= 1e-6 || at > horizon {
            return;
        }
        let when = ((t + at) * SECOND as f64).round() as Micros;
        w.queue.push(
            when.max(w.now + 1),
            Ev::Cross {
                a: i as u32,
                b: j as u32,
                va: li.version,
                vb: lj.version,
                enter: !inside,
            },
        );
    }

    /// Device `node` ends a leg: starts the next and recomputes its
    /// crossings with everyone. Returns contact changes.
    pub fn next_leg(&mut self, node: u32, w: &mut World) -> Vec<(u32, u32, bool)> {
        let i = node as usize;
        let t = w.now as f64 / SECOND as f64;
        let walk = !self.legs[i].moving;
        self.new_leg(i, t, walk, w);
        let mut changes = Vec::new();
        for j in 0..self.legs.len() {
            if j == i {
                continue;
            }
            let r = w.range[i].min(w.range[j]);
            let (dx, dy) = self.offset(i, j, t);
            let inside = dx * dx + dy * dy <= r * r;
            let was = w.in_contact[i].binary_search(&(j as u32)).is_ok();
            if inside != was {
                changes.push((node, j as u32, inside));
            }
            let (a, b) = if i < j { (i, j) } else { (j, i) };
            self.schedule(a, b, t, inside, w);
        }
        changes
    }

    /// Whether the contacts the model reported match the geometry now:
    /// every pair is in contact exactly when its distance is within range
    /// (pairs within a micrometre of the boundary are not judged).
    pub fn contacts_match_distance(&self, w: &World) -> bool {
        let t = w.now as f64 / SECOND as f64;
        let n = self.legs.len();
        (0..n).all(|i| {
            (i + 1..n).all(|j| {
                let r = w.range[i].min(w.range[j]);
                let (dx, dy) = self.offset(i, j, t);
                let d = (dx * dx + dy * dy).sqrt();
                let listed = w.in_contact[i].binary_search(&(j as u32)).is_ok();
                (d - r).abs() < 1e-6 || listed == (d <= r)
            })
        })
    }

    /// A scheduled crossing fires (if neither device changed leg since).
    pub fn cross(
        &mut self,
        a: u32,
        b: u32,
        va: u32,
        vb: u32,
        enter: bool,
        w: &mut World,
    ) -> Vec<(u32, u32, bool)> {
        let (i, j) = (a as usize, b as usize);
        if self.legs[i].version != va || self.legs[j].version != vb {
            return Vec::new();
        }
        let t = w.now as f64 / SECOND as f64;
        self.schedule(i, j, t, enter, w);
        let was = w.in_contact[i].binary_search(&b).is_ok();
        if was == enter {
            Vec::new()
        } else {
            vec![(a, b, enter)]
        }
    }
}
