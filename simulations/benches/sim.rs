//! The simulator's benchmarks (`cargo bench -p strand-sim`): the ONE
//! simulator's default city workload at 126 and 1,206 devices, and 10,000
//! Strand users texting for a day. Each prints its figures, wall time and
//! peak memory, next to a baseline measured in the same run: the same
//! scenario with no messages (contacts, links, beacons and handshakes
//! only), i.e. what the engine costs before any payload moves. The ONE
//! simulator's own times on this machine are quoted from the issue, not
//! measured here (ONE is not installed).

use std::path::Path;
use std::time::Instant;

use strand_sim::{sweep, Scenario};

fn scenario(name: &str, edits: &[(&str, &str)]) -> Scenario {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("bundled scenario");
    let mut table: toml::Table = text.parse().expect("valid TOML");
    for (k, v) in edits {
        sweep::set(&mut table, k, v).expect("a valid edit");
    }
    Scenario::from_table(table, dir).expect("a valid scenario")
}

/// Resets the peak-RSS counter (Linux: writing 5 to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak RSS since the last reset, MiB.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn measure(s: &Scenario) -> (strand_sim::Report, f64, f64) {
    reset_peak();
    let start = Instant::now();
    let o = strand_sim::run(s, s.seed, |_, _| {}).expect("the run succeeds");
    let wall = start.elapsed().as_secs_f64();
    (o.report, wall, peak_mib())
}

fn bench(title: &str, s: Scenario, target_s: Option<f64>, one: &str) {
    println!("\n== {title}");
    let mut quiet = s.clone();
    quiet.traffic.interval = None;
    quiet.traffic.per_device_gap = None;
    let (_, base_wall, base_mem) = measure(&quiet);
    let (r, wall, mem) = measure(&s);
    println!(
        "  {} devices, {:.0} h, {} policy: created {}, delivered {}/{} ({:.1} %), latency mean {:.0} s median {:.0} s p95 {:.0} s, {:.0} bytes/delivered, {} events",
        r.devices,
        r.sim_time_s / 3600.0,
        r.policy,
        r.created,
        r.delivered,
        r.delivery_units,
        100.0 * r.delivery_ratio,
        r.latency_s.mean,
        r.latency_s.median,
        r.latency_s.p95,
        r.bytes_per_delivered,
        r.events
    );
    println!(
        "  wall {wall:.2} s ({}), {:.2} us/event, peak RSS {mem:.0} MiB",
        match target_s {
            Some(t) if wall <= t => format!("target <= {t:.0} s: met"),
            Some(t) => format!("target <= {t:.0} s: NOT met"),
            None => "no target".into(),
        },
        wall * 1e6 / r.events.max(1) as f64
    );
    println!("  baseline, same run: no messages {base_wall:.2} s wall, {base_mem:.0} MiB; ONE simulator (from the issue): {one}");
}

fn main() {
    // `cargo bench` passes --bench; a filter argument selects benchmarks.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if want("city-126") && !filter.iter().any(|f| f.starts_with("strand")) {
        bench(
            "city-126: ONE default workload, 126 devices, 12 h",
            scenario("city", &[]),
            Some(2.0),
            "about 50 s",
        );
    }
    if want("city-1206") {
        bench(
            "city-1206: the same, 1,206 devices, 12 h",
            scenario("city-1206", &[]),
            Some(30.0),
            "over 40 minutes",
        );
    }
    if want("strand-city") {
        bench(
            "strand-city-126: the city-126 contacts with Strand's real sessions (senders and recipients made contacts)",
            scenario("city", &[("policy", "\"strand\"")]),
            None,
            "n/a",
        );
    }
    if want("text-10k") {
        let s = scenario("text-10k", &[]);
        bench(
            "text-10k: 10,000 Strand users texting contacts and groups, 24 h",
            s,
            Some(300.0),
            "n/a",
        );
        println!("  memory target: <= 8 GiB");
    }
}
