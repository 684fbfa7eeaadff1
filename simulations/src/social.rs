//! The social side of a scenario: who is whose contact, the private
//! groups, and the list of messages to create (the workload), all drawn
//! from the run's RNG before the first event.

use std::collections::BTreeSet;

use crate::engine::Rng;
use crate::scenario::{Scenario, Traffic};
use crate::trace::Trace;
use crate::units::Micros;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// One device.
    Device(u32),
    /// Every other member of a private group.
    Group(u32),
}

/// One message to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    /// When.
    pub time: Micros,
    /// Its author.
    pub from: u32,
    /// Its destination.
    pub dest: Dest,
    /// Body bytes.
    pub size: u64,
}

/// Contacts, groups and workload.
#[derive(Debug, Clone, Default)]
pub struct Social {
    /// Each device's contacts, ascending.
    pub contacts: Vec<Vec<u32>>,
    /// Members of each private group, ascending.
    pub groups: Vec<Vec<u32>>,
    /// Messages, in time order.
    pub workload: Vec<Creation>,
    /// Messages the traffic model wanted but could not address (a sender
    /// with no contacts or no group): not created, and reported as
    /// `unaddressed`.
    pub unaddressed: u64,
}

impl Social {
    /// Draws the social graph, groups and workload for `n` devices.
    pub fn build(
        sc: &Scenario,
        n: u32,
        trace: Option<&Trace>,
        rng: &mut Rng,
    ) -> anyhow::Result<Social> {
        let mut edges = match sc.social.model.as_str() {
            "random" => random_graph(n, sc.social.degree.min(n - 1), rng),
            "small-world" => small_world(n, sc.social.degree.min(n - 1), sc.social.rewire, rng),
            // Scenario::check holds it to MAX_CONTACT_PAIRS (5,000 devices).
            "complete" => (0..n)
                .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
                .collect(),
            "none" => BTreeSet::new(),
            "file" => {
                let path = sc.resolve_path(sc.social.file.as_deref().expect("checked"));
                edge_file(&path, n)?
            }
            other => anyhow::bail!("unknown social model {other}"),
        };
        let mut social = Social {
            contacts: adjacency(n, &edges),
            ..Social::default()
        };
        for _ in 0..sc.social.groups {
            let owner = rng.below(u64::from(n)) as u32;
            let mut pool = social.contacts[owner as usize].clone();
            let mut members = vec![owner];
            while members.len() < sc.social.group_size as usize && !pool.is_empty() {
                let i = rng.below(pool.len() as u64) as usize;
                members.push(pool.swap_remove(i));
            }
            members.sort_unstable();
            for (i, &a) in members.iter().enumerate() {
                for &b in &members[i + 1..] {
                    edges.insert((a, b));
                }
            }
            social.groups.push(members);
        }
        let mut member_of: Vec<Vec<u32>> = vec![Vec::new(); n as usize];
        for (g, members) in social.groups.iter().enumerate() {
            for &m in members {
                member_of[m as usize].push(g as u32);
            }
        }
        social.contacts = adjacency(n, &edges);
        let end = sc
            .traffic
            .until
            .map_or(sc.duration.0, |u| u.0.min(sc.duration.0));
        // A trace's `C` lines are the workload; a trace without them (a
        // connectivity report) gives contacts only, and `[traffic]`
        // generates the messages as for the other contact models.
        if let Some(trace) = trace.filter(|t| !t.creates.is_empty()) {
            anyhow::ensure!(
                !sc.traffic.generates(),
                "the trace creates its own messages ({} `C` lines), which take the place of [traffic]: remove traffic.{}, or the trace's `C` lines",
                trace.creates.len(),
                if sc.traffic.interval.is_some() {
                    "interval"
                } else {
                    "per_device_gap"
                }
            );
            for c in &trace.creates {
                if c.time < end {
                    social.workload.push(Creation {
                        time: c.time,
                        from: c.from,
                        dest: Dest::Device(c.to),
                        size: c.size,
                    });
                }
            }
        } else {
            social.workload = workload(
                &sc.traffic,
                n,
                end,
                &social.contacts,
                &member_of,
                rng,
                &mut social.unaddressed,
            );
        }
        // A message to a device is a message to a contact: the sender knows
        // the recipient (for Strand this is what makes delivery possible).
        let mut added = false;
        for c in &social.workload {
            if let Dest::Device(to) = c.dest {
                added |= edges.insert((c.from.min(to), c.from.max(to)));
            }
        }
        if added {
            social.contacts = adjacency(n, &edges);
        }
        Ok(social)
    }

    /// Number of contact pairs.
    pub fn edges(&self) -> usize {
        self.contacts.iter().map(Vec::len).sum::<usize>() / 2
    }
}

fn adjacency(n: u32, edges: &BTreeSet<(u32, u32)>) -> Vec<Vec<u32>> {
    let mut adj = vec![Vec::new(); n as usize];
    for &(a, b) in edges {
        adj[a as usize].push(b);
        adj[b as usize].push(a);
    }
    for l in &mut adj {
        l.sort_unstable();
    }
    adj
}

fn random_graph(n: u32, degree: u32, rng: &mut Rng) -> BTreeSet<(u32, u32)> {
    let max = u64::from(n) * u64::from(n - 1) / 2;
    let want = (u64::from(n) * u64::from(degree) / 2).min(max);
    let mut edges = BTreeSet::new();
    while (edges.len() as u64) < want {
        let a = rng.below(u64::from(n)) as u32;
        let b = rng.below(u64::from(n)) as u32;
        if a != b {
            edges.insert((a.min(b), a.max(b)));
        }
    }
    edges
}

/// Watts–Strogatz: a ring where each device knows `degree / 2` neighbours
/// on each side, each edge rewired to a random device with probability `p`.
fn small_world(n: u32, degree: u32, p: f64, rng: &mut Rng) -> BTreeSet<(u32, u32)> {
    let half = (degree / 2).min((n - 1) / 2).max(1);
    let mut edges = BTreeSet::new();
    for a in 0..n {
        for k in 1..=half {
            let mut b = (a + k) % n;
            if rng.chance(p) {
                for _ in 0..16 {
                    let c = rng.below(u64::from(n)) as u32;
                    if c != a && !edges.contains(&(a.min(c), a.max(c))) {
                        b = c;
                        break;
                    }
                }
            }
            if a != b {
                edges.insert((a.min(b), a.max(b)));
            }
        }
    }
    edges
}

fn edge_file(path: &std::path::Path, n: u32) -> anyhow::Result<BTreeSet<(u32, u32)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read social graph {}: {e}", path.display()))?;
    let mut edges = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let ids: Vec<u32> = l
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| {
                anyhow::anyhow!(
                    "{} line {}: expected `a b` device ids",
                    path.display(),
                    i + 1
                )
            })?;
        match ids[..] {
            [a, b] if a != b && a < n && b < n => {
                edges.insert((a.min(b), a.max(b)));
            }
            _ => anyhow::bail!(
                "{} line {}: expected two different device ids below {n}",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(edges)
}

fn workload(
    t: &Traffic,
    n: u32,
    end: Micros,
    contacts: &[Vec<u32>],
    member_of: &[Vec<u32>],
    rng: &mut Rng,
    unaddressed: &mut u64,
) -> Vec<Creation> {
    let mut times: Vec<(Micros, u32)> = Vec::new();
    if let Some([lo, hi]) = t.interval {
        let mut now = rng.between(lo.0, hi.0);
        while now < end {
            times.push((now, rng.below(u64::from(n)) as u32));
            now += rng.between(lo.0, hi.0);
        }
    } else if let Some(gap) = t.per_device_gap {
        for from in 0..n {
            let mut now = rng.exp(gap.0 as f64);
            while now < end {
                times.push((now, from));
                now += rng.exp(gap.0 as f64);
            }
        }
        times.sort_unstable();
    }
    let mut out = Vec::with_capacity(times.len());
    for (time, from) in times {
        let size = rng.between(t.size[0].0, t.size[1].0);
        let groups = &member_of[from as usize];
        let to_group = t.to == "group" || (!groups.is_empty() && rng.chance(t.group_share));
        let dest = if to_group {
            if groups.is_empty() {
                None
            } else {
                Some(Dest::Group(groups[rng.below(groups.len() as u64) as usize]))
            }
        } else if t.to == "any" {
            let mut to = rng.below(u64::from(n) - 1) as u32;
            if to >= from {
                to += 1;
            }
            Some(Dest::Device(to))
        } else {
            let c = &contacts[from as usize];
            (!c.is_empty()).then(|| Dest::Device(c[rng.below(c.len() as u64) as usize]))
        };
        match dest {
            Some(dest) => out.push(Creation {
                time,
                from,
                dest,
                size,
            }),
            None => *unaddressed += 1,
        }
    }
    out
}
