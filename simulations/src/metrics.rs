//! What a run measures, and the report it produces: JSON, CSV and the ONE
//! simulator's `MessageStatsReport` text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::units::{secs, Micros};

/// Counters and samples collected while a run goes.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Messages created.
    pub created: u64,
    /// Messages `[traffic]` wanted but could not address (a sender with
    /// no contact, or in no group, to write to): not created.
    pub unaddressed: u64,
    /// (message, recipient) pairs created: a group message to k others
    /// counts k.
    pub units: u64,
    /// Creation times.
    pub created_at: Vec<Micros>,
    /// Periodic samples for plots.
    pub samples: Vec<Sample>,
    /// Delivery times and latencies of each delivered unit.
    pub deliveries: Vec<(Micros, Micros)>,
    /// Hop counts of deliveries.
    pub hops: Vec<u32>,
    /// Body bytes of copies new to their receiver.
    pub payload_bytes: u64,
    /// Copies new to their receiver (deliveries and relays).
    pub copies: u64,
    /// All bytes put on links (frames, retransmissions, everything).
    pub wire_bytes: u64,
    /// Copies received that the receiver already held.
    pub duplicates: u64,
    /// Times two devices came into contact (per the contact model).
    pub encounters: u64,
    /// Links that finished setup.
    pub contacts: u64,
    /// Of those, links that carried at least one new message.
    pub contacts_carried: u64,
    /// Baseline copies started, completed, aborted by a cut, dropped.
    pub started: u64,
    /// Completed copies.
    pub relayed: u64,
    /// Copies cut off mid-transfer.
    pub aborted: u64,
    /// Copies dropped (full buffer, expired).
    pub dropped: u64,
    /// strand-sync sessions established (both sides authenticated).
    pub sessions: u64,
    /// Links whose beacon named none of the dialler's contacts (strangers
    /// meeting).
    pub strangers: u64,
    /// Strangers in range over a link found by the BLE hint whose hints
    /// matched none of the other's contacts: no link (Strand).
    pub strangers_unlinked: u64,
    /// Contacts in range over a link with `hint_contacts` whose hints
    /// never named each other while they stayed in range: no link.
    pub contacts_unfound: u64,
    /// Session errors by kind (a cut link ends sessions with "connection
    /// lost" or similar; anything else is a protocol failure).
    pub session_errors: BTreeMap<String, u64>,
    /// Unknown message ids.
    pub protocol_errors: u64,
    /// Hellos refused (the beacon matched the contact by a Bloom-filter
    /// false positive); the dialler then tried its next match.
    pub hellos_refused: u64,
    /// Links between two mutual contacts that ended without a session
    /// while the devices were still in contact: encounters the preamble
    /// lost.
    pub contact_encounters_lost: u64,
    /// Links between two mutual contacts that ended before a session
    /// because the acceptor has more contacts than a beacon names
    /// (`BEACON_ENTRIES`) and this beacon's random subset left the dialler
    /// out: the protocol's design, not a loss.
    pub contacts_not_named: u64,
    /// Messages skipped as too far in the future.
    pub rejected: u64,
    /// Strand with carrying: envelopes carriers took in to carry (copies
    /// of a message besides those its recipient stores).
    pub envelopes_carried: u64,
    /// Strand: the sessions' bytes sent, by what they carried
    /// ([`strand_sync::SentParts`]).
    pub bytes_sent_by_part: BTreeMap<&'static str, u64>,
    /// Strand with carrying: bytes of carrying-pool messages written, by
    /// what they hold.
    pub pool_written: BTreeMap<&'static str, u64>,
    /// Most bytes each device held at once for others: relayed copies
    /// (baselines; a source's own copies count too) or sealed envelopes
    /// (Strand with carrying).
    pub carried_peak: Vec<u64>,
    devices: u32,
}

impl Metrics {
    /// For `n` devices.
    pub fn new(n: u32) -> Metrics {
        Metrics {
            devices: n,
            carried_peak: vec![0; n as usize],
            ..Metrics::default()
        }
    }

    /// Device `node` holds `bytes` for others now.
    pub fn note_carried(&mut self, node: u32, bytes: u64) {
        if let Some(p) = self.carried_peak.get_mut(node as usize) {
            *p = (*p).max(bytes);
        }
    }

    /// Records a sample at `now`.
    pub fn sample(&mut self, now: Micros) {
        self.samples.push(Sample {
            time_s: secs(now),
            delivered: self.deliveries.len() as u64,
            units: self.units,
            bytes_total: self.wire_bytes,
            bytes_payload: self.payload_bytes,
        });
    }

    /// A unit delivered.
    pub fn deliver(&mut self, now: Micros, latency: Micros, hops: u32) {
        self.deliveries.push((now, latency));
        self.hops.push(hops);
    }
}

/// A snapshot of the running totals.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Sample {
    /// When (seconds).
    pub time_s: f64,
    /// Deliveries so far.
    pub delivered: u64,
    /// Delivery units created so far.
    pub units: u64,
    /// Bytes on links so far.
    pub bytes_total: u64,
    /// Payload bytes so far.
    pub bytes_payload: u64,
}

/// Latency summary, seconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Latency {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One run's results.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Policy.
    pub policy: String,
    /// Seed.
    pub seed: u64,
    /// Devices.
    pub devices: u32,
    /// Simulated seconds.
    pub sim_time_s: f64,
    /// Contact pairs in the social graph.
    pub social_edges: u64,
    /// Messages created.
    pub created: u64,
    /// Messages `[traffic]` wanted but could not address (a sender with
    /// no contact, or in no group, to write to): not created, so not in
    /// `created` nor in the delivery ratio.
    #[serde(default)]
    pub unaddressed: u64,
    /// Deliveries wanted ((message, recipient) pairs).
    pub delivery_units: u64,
    /// Deliveries made.
    pub delivered: u64,
    /// delivered / delivery_units.
    pub delivery_ratio: f64,
    /// Latency of delivered units.
    pub latency_s: Latency,
    /// The report's time budget.
    pub budget_s: f64,
    /// Share of delivery units delivered within the budget.
    pub delivered_within_budget: f64,
    /// All bytes on links.
    pub bytes_total: u64,
    /// Message bodies new to their receiver.
    pub bytes_payload: u64,
    /// Everything else.
    pub bytes_overhead: u64,
    /// bytes_total / delivered.
    pub bytes_per_delivered: f64,
    /// Copies received twice.
    pub duplicates: u64,
    /// Mean stored bytes per device at the end.
    pub storage_mean_bytes: f64,
    /// Largest.
    pub storage_max_bytes: u64,
    /// Mean over devices of the most bytes each held at once for others
    /// (copies in transit, or sealed envelopes).
    pub carried_mean_bytes: f64,
    /// Largest of those.
    pub carried_max_bytes: u64,
    /// Encounters from the contact model.
    pub encounters: u64,
    /// Links that came up.
    pub contacts_used: u64,
    /// Links that carried a new message.
    pub contacts_carried: u64,
    /// Baseline copies started.
    pub started: u64,
    /// Copies completed.
    pub relayed: u64,
    /// Copies cut off.
    pub aborted: u64,
    /// Copies dropped.
    pub dropped: u64,
    /// strand-sync sessions.
    pub sessions: u64,
    /// Copies of messages new to their receiver: stored (a recipient, or
    /// a relay for the baselines and for Strand's group members).
    pub copies: u64,
    /// Strand with carrying: sealed envelopes carriers took in to carry.
    /// Copies made per delivered message, `(copies + envelopes_carried) /
    /// delivered`, compare forwarding rules apart from what each copy
    /// costs on the wire.
    pub envelopes_carried: u64,
    /// Beacons seen by strangers.
    pub stranger_beacons: u64,
    /// Strangers in range whose BLE hints matched no contact: no link.
    pub strangers_unlinked: u64,
    /// Contacts in range over BLE (links with `hint_contacts`) whose hints
    /// never named each other while they stayed in range: meetings lost
    /// to discovery.
    pub contacts_unfound: u64,
    /// Hellos refused (beacon false positives; the dialler tried its next
    /// match).
    pub hellos_refused: u64,
    /// Links between mutual contacts that ended without a session while
    /// they were in contact.
    pub contact_encounters_lost: u64,
    /// Links between mutual contacts that ended before a session because
    /// the acceptor's beacon, naming a random `BEACON_ENTRIES` of its many
    /// contacts, left the dialler out (by design).
    pub contacts_not_named: u64,
    /// Session errors by kind.
    pub session_errors: BTreeMap<String, u64>,
    /// Strand: the sessions' bytes sent by what they carried (preamble,
    /// framing, reconciliation, acknowledgements, padding, message frames
    /// by kind), adding up to the sessions' bytes: where a run's bytes go.
    /// Empty for the baselines.
    pub bytes_sent_by_part: BTreeMap<String, u64>,
    /// Strand with carrying: bytes of the carrying-pool messages written
    /// (each crosses its pair's link once), by what they hold: offers,
    /// requests, acknowledgements, envelopes lent or for delivery, and
    /// notices.
    pub pool_written: BTreeMap<String, u64>,
    /// Mean hops of deliveries.
    pub hops_mean: f64,
    /// Median hops of deliveries.
    pub hops_median: f64,
    /// Events processed.
    pub events: u64,
    /// Named invariant checks (see `crate::invariants`).
    pub invariants: BTreeMap<String, bool>,
}

/// The sessions' bytes by part, and what the link model added besides
/// (its per-frame overhead, net of packets cut off mid-air), so the
/// parts add up to all bytes on links.
fn by_part(m: &Metrics) -> BTreeMap<String, u64> {
    let mut parts = named(&m.bytes_sent_by_part);
    if !parts.is_empty() {
        let sessions: u64 = parts.values().sum();
        let link = m.wire_bytes.saturating_sub(sessions);
        if link > 0 {
            parts.insert("link framing".to_string(), link);
        }
    }
    parts
}

fn named(m: &BTreeMap<&'static str, u64>) -> BTreeMap<String, u64> {
    m.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
}

/// `s` as one CSV field (RFC 4180): as it is, or, when it holds a comma,
/// a quote or a line break, in quotes with its quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

impl Report {
    /// Builds the report from a finished run's metrics.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        m: &Metrics,
        scenario: &str,
        policy: &str,
        seed: u64,
        sim_time: Micros,
        budget: Micros,
        social_edges: u64,
        storage: &[u64],
        events: u64,
        invariants: BTreeMap<String, bool>,
    ) -> Report {
        let mut lat: Vec<f64> = m.deliveries.iter().map(|(_, l)| secs(*l)).collect();
        lat.sort_by(f64::total_cmp);
        let delivered = lat.len() as u64;
        let mean = if lat.is_empty() {
            0.0
        } else {
            lat.iter().sum::<f64>() / lat.len() as f64
        };
        let within = m.deliveries.iter().filter(|(_, l)| *l <= budget).count() as f64;
        let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
        Report {
            scenario: scenario.to_string(),
            policy: policy.to_string(),
            seed,
            devices: m.devices,
            sim_time_s: secs(sim_time),
            social_edges,
            created: m.created,
            unaddressed: m.unaddressed,
            delivery_units: m.units,
            delivered,
            delivery_ratio: ratio(delivered as f64, m.units),
            latency_s: Latency {
                mean,
                median: quantile(&lat, 0.5),
                p95: quantile(&lat, 0.95),
                p99: quantile(&lat, 0.99),
            },
            budget_s: secs(budget),
            delivered_within_budget: ratio(within, m.units),
            bytes_total: m.wire_bytes,
            bytes_payload: m.payload_bytes,
            bytes_overhead: m.wire_bytes.saturating_sub(m.payload_bytes),
            bytes_per_delivered: ratio(m.wire_bytes as f64, delivered),
            duplicates: m.duplicates,
            storage_mean_bytes: if storage.is_empty() {
                0.0
            } else {
                storage.iter().sum::<u64>() as f64 / storage.len() as f64
            },
            storage_max_bytes: storage.iter().copied().max().unwrap_or(0),
            carried_mean_bytes: if m.carried_peak.is_empty() {
                0.0
            } else {
                m.carried_peak.iter().sum::<u64>() as f64 / m.carried_peak.len() as f64
            },
            carried_max_bytes: m.carried_peak.iter().copied().max().unwrap_or(0),
            encounters: m.encounters,
            contacts_used: m.contacts,
            contacts_carried: m.contacts_carried,
            started: m.started,
            relayed: m.relayed,
            aborted: m.aborted,
            dropped: m.dropped,
            sessions: m.sessions,
            copies: m.copies,
            envelopes_carried: m.envelopes_carried,
            stranger_beacons: m.strangers,
            strangers_unlinked: m.strangers_unlinked,
            contacts_unfound: m.contacts_unfound,
            hellos_refused: m.hellos_refused,
            contact_encounters_lost: m.contact_encounters_lost,
            contacts_not_named: m.contacts_not_named,
            session_errors: m.session_errors.clone(),
            bytes_sent_by_part: by_part(m),
            pool_written: named(&m.pool_written),
            hops_mean: if m.hops.is_empty() {
                0.0
            } else {
                m.hops.iter().map(|h| f64::from(*h)).sum::<f64>() / m.hops.len() as f64
            },
            hops_median: {
                let mut h: Vec<f64> = m.hops.iter().map(|h| f64::from(*h)).collect();
                h.sort_by(f64::total_cmp);
                quantile(&h, 0.5)
            },
            events,
            invariants,
        }
    }

    /// Copies of messages made per delivered message: stored copies and
    /// carried envelopes alike, whatever each cost on the wire.
    pub fn copies_per_delivered(&self) -> f64 {
        if self.delivered == 0 {
            0.0
        } else {
            (self.copies + self.envelopes_carried) as f64 / self.delivered as f64
        }
    }

    /// One line: devices, policy, seed, deliveries, latency, bytes, events
    /// (and the messages that could not be addressed, if any).
    pub fn summary(&self) -> String {
        let unaddressed = if self.unaddressed > 0 {
            format!(
                " ({} more unaddressed: no contact or group to write to)",
                self.unaddressed
            )
        } else {
            String::new()
        };
        format!(
            "{} devices, {} policy, seed {}: created {}{unaddressed}, delivered {}/{} ({:.1} %), latency mean {:.1} s / median {:.1} s / p95 {:.1} s, {:.0} bytes per delivered message, {} events",
            self.devices,
            self.policy,
            self.seed,
            self.created,
            self.delivered,
            self.delivery_units,
            100.0 * self.delivery_ratio,
            self.latency_s.mean,
            self.latency_s.median,
            self.latency_s.p95,
            self.bytes_per_delivered,
            self.events
        )
    }

    /// The scalar metrics by name, in a fixed order (CSV columns, sweeps).
    pub fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("created", self.created as f64),
            ("unaddressed", self.unaddressed as f64),
            ("delivery_units", self.delivery_units as f64),
            ("delivered", self.delivered as f64),
            ("delivery_ratio", self.delivery_ratio),
            ("latency_mean_s", self.latency_s.mean),
            ("latency_median_s", self.latency_s.median),
            ("latency_p95_s", self.latency_s.p95),
            ("latency_p99_s", self.latency_s.p99),
            ("delivered_within_budget", self.delivered_within_budget),
            ("bytes_total", self.bytes_total as f64),
            ("bytes_payload", self.bytes_payload as f64),
            ("bytes_overhead", self.bytes_overhead as f64),
            ("bytes_per_delivered", self.bytes_per_delivered),
            ("duplicates", self.duplicates as f64),
            ("storage_mean_bytes", self.storage_mean_bytes),
            ("storage_max_bytes", self.storage_max_bytes as f64),
            ("carried_mean_bytes", self.carried_mean_bytes),
            ("carried_max_bytes", self.carried_max_bytes as f64),
            ("encounters", self.encounters as f64),
            ("contacts_used", self.contacts_used as f64),
            ("contacts_carried", self.contacts_carried as f64),
            ("sessions", self.sessions as f64),
            ("copies_per_delivered", self.copies_per_delivered()),
            ("strangers_unlinked", self.strangers_unlinked as f64),
            ("contacts_unfound", self.contacts_unfound as f64),
            ("hops_mean", self.hops_mean),
            ("events", self.events as f64),
        ]
    }

    /// CSV: a header line and one row.
    pub fn to_csv(&self) -> String {
        let s = self.scalars();
        let mut out = String::from("scenario,policy,seed,devices,sim_time_s");
        for (k, _) in &s {
            let _ = write!(out, ",{k}");
        }
        let _ = write!(
            out,
            "\n{},{},{},{},{}",
            csv_field(&self.scenario),
            self.policy,
            self.seed,
            self.devices,
            self.sim_time_s
        );
        for (_, v) in &s {
            let _ = write!(out, ",{v}");
        }
        out.push('\n');
        out
    }

    /// The ONE simulator's `MessageStatsReport` layout, so existing
    /// scripts can read it. `overhead_ratio` is ONE's
    /// (relayed − delivered) / delivered; for Strand, relayed counts
    /// new copies stored anywhere.
    pub fn to_one_text(&self, relayed: u64) -> String {
        let f = |x: f64| format!("{x:.4}");
        let overhead = if self.delivered == 0 {
            f64::NAN
        } else {
            (relayed as f64 - self.delivered as f64) / self.delivered as f64
        };
        let mut s = format!("Message stats for scenario {}\n", self.scenario);
        let _ = writeln!(s, "sim_time: {}", f(self.sim_time_s));
        let _ = writeln!(s, "created: {}", self.created);
        let _ = writeln!(s, "started: {}", self.started);
        let _ = writeln!(s, "relayed: {relayed}");
        let _ = writeln!(s, "aborted: {}", self.aborted);
        let _ = writeln!(s, "dropped: {}", self.dropped);
        let _ = writeln!(s, "removed: 0");
        let _ = writeln!(s, "delivered: {}", self.delivered);
        let _ = writeln!(s, "delivery_prob: {}", f(self.delivery_ratio));
        let _ = writeln!(s, "response_prob: 0.0000");
        let _ = writeln!(s, "overhead_ratio: {}", f(overhead));
        let _ = writeln!(s, "latency_avg: {}", f(self.latency_s.mean));
        let _ = writeln!(s, "latency_med: {}", f(self.latency_s.median));
        let _ = writeln!(s, "hopcount_avg: {}", f(self.hops_mean));
        let _ = writeln!(s, "hopcount_med: {}", f(self.hops_median));
        let _ = writeln!(s, "buffertime_avg: NaN");
        let _ = writeln!(s, "buffertime_med: NaN");
        let _ = writeln!(s, "rtt_avg: NaN");
        let _ = writeln!(s, "rtt_med: NaN");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits one CSV line into its fields as RFC 4180 reads them.
    fn fields(line: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    out.last_mut().expect("a field").push('"');
                }
                '"' => quoted = !quoted,
                ',' if !quoted => out.push(String::new()),
                c => out.last_mut().expect("a field").push(c),
            }
        }
        out
    }

    #[test]
    fn metrics_csv_quotes_a_scenario_name_with_commas_or_quotes() {
        for name in ["town, \"north\"", "plain-name", "a\"b"] {
            let r = Report::build(
                &Metrics::new(2),
                name,
                "strand",
                1,
                0,
                0,
                0,
                &[],
                0,
                BTreeMap::new(),
            );
            let csv = r.to_csv();
            let lines: Vec<&str> = csv.lines().collect();
            assert_eq!(lines.len(), 2, "{csv}");
            let (head, row) = (fields(lines[0]), fields(lines[1]));
            assert_eq!(head.len(), row.len(), "{csv}");
            assert_eq!(row[0], name);
            assert_eq!(row[1], "strand");
            assert_eq!(head[0], "scenario");
        }
        // Names that need no quotes are written as they are.
        let r = Report::build(
            &Metrics::new(2),
            "plain-name",
            "strand",
            1,
            0,
            0,
            0,
            &[],
            0,
            BTreeMap::new(),
        );
        assert!(r.to_csv().contains("\nplain-name,strand,1,2,"));
    }

    #[test]
    fn unaddressed_messages_are_reported() {
        let mut m = Metrics::new(2);
        m.created = 3;
        m.unaddressed = 4;
        let r = Report::build(&m, "x", "strand", 1, 0, 0, 0, &[], 0, BTreeMap::new());
        assert_eq!(r.unaddressed, 4);
        assert!(
            r.summary().contains("created 3 (4 more unaddressed"),
            "{}",
            r.summary()
        );
        assert!(r.scalars().contains(&("unaddressed", 4.0)));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"unaddressed\":4"), "{json}");
        // A report written before the field existed still reads.
        let old = json.replace("\"unaddressed\":4,", "");
        let back: Report = serde_json::from_str(&old).unwrap();
        assert_eq!(back.unaddressed, 0);
    }
}
