//! The simulator's benchmarks (`cargo bench -p strand-sim`): the ONE
//! simulator's default city workload at 126 and 1,206 devices, one message
//! to a group of 500, and 10,000 Strand users texting for a day
//! (`text-100k`, 100,000 of them, runs only when named). Each prints its
//! figures, wall time and peak memory (against the targets where there
//! are some), next to a baseline measured in the same run: the same
//! scenario with no messages (contacts, links, beacons and handshakes
//! only), i.e. what the engine costs before any payload moves. The ONE
//! simulator's own times on this machine are quoted from the issue, not
//! measured here (ONE is not installed). `carrying` compares Strand with
//! and without carrying to the baselines on the three carrying scenarios.

use std::path::Path;
use std::time::Instant;

use strand_sim::Scenario;

fn scenario(name: &str, edits: &[(&str, &str)]) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load_with(&path, edits).expect("a valid bundled scenario")
}

/// Peak RSS of this process, MiB.
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

/// A benchmark: name, title, scenario, wall-time target (s), peak
/// memory target (MiB), ONE's time.
type Bench = (
    &'static str,
    &'static str,
    Scenario,
    Option<f64>,
    Option<f64>,
    &'static str,
);

/// The benchmarks.
fn benches() -> Vec<Bench> {
    vec![
        ("city-126", "ONE default workload, 126 devices, 12 h", scenario("city", &[]), Some(2.0), None, "about 50 s"),
        ("city-1206", "the same, 1,206 devices, 12 h", scenario("city-1206", &[]), Some(30.0), None, "over 40 minutes"),
        (
            "strand-city-126",
            "the city-126 contacts and messages carried by Strand's real sessions (senders and recipients made contacts)",
            scenario("city", &[("policy", "\"strand\"")]),
            None,
            None,
            "n/a",
        ),
        (
            "group-500",
            "one message to a private group of 500 over a district, BLE only, 24 h: time and bytes until every member has it",
            scenario("group-500", &[]),
            None,
            Some(2048.0),
            "n/a",
        ),
        (
            "text-10k",
            "10,000 Strand users texting contacts and groups over BLE, 24 h",
            scenario("text-10k", &[]),
            Some(30.0),
            Some(400.0),
            "n/a",
        ),
        (
            "text-100k",
            "the same workload shape with 100,000 users, 24 h (only when named: several minutes)",
            scenario("text-100k", &[]),
            Some(1200.0),
            Some(8192.0),
            "n/a",
        ),
    ]
}

/// Child process: runs one benchmark (or its no-message baseline) and
/// prints `wall_s peak_mib` and the report as JSON, so that each figure's
/// peak memory is its own.
fn child(name: &str, quiet: bool) {
    let (_, _, mut s, _, _, _) = benches()
        .into_iter()
        .find(|b| b.0 == name)
        .expect("a known benchmark");
    if quiet {
        s.traffic.interval = None;
        s.traffic.per_device_gap = None;
    }
    let start = Instant::now();
    let o = strand_sim::run(&s, s.seed, |_, _| {}).expect("the run succeeds");
    let wall = start.elapsed().as_secs_f64();
    println!("{wall} {}", peak_mib());
    println!(
        "{}",
        serde_json::to_string(&o.report).expect("serialisable")
    );
}

fn spawn(name: &str, quiet: bool) -> (f64, f64, strand_sim::Report) {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("own path"));
    cmd.args(["--child", name]);
    if quiet {
        cmd.arg("--quiet");
    }
    let out = cmd.output().expect("the benchmark child runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = text.lines();
    let mut nums = lines
        .next()
        .expect("figures")
        .split(' ')
        .map(|x| x.parse::<f64>().expect("a number"));
    let (wall, mem) = (nums.next().expect("wall"), nums.next().expect("memory"));
    let report = serde_json::from_str(lines.next().expect("report")).expect("a report");
    (wall, mem, report)
}

fn bench(name: &str, title: &str, target_s: Option<f64>, target_mib: Option<f64>, one: &str) {
    println!("\n== {name}: {title}");
    let (base_wall, base_mem, _) = spawn(name, true);
    let (wall, mem, r): (f64, f64, strand_sim::Report) = spawn(name, false);
    println!("  {}", r.summary());
    println!(
        "  wall {wall:.2} s ({}), {:.2} us/event, peak RSS {mem:.0} MiB ({}), {:.1} KiB per device",
        match target_s {
            Some(t) if wall <= t => format!("target <= {t:.0} s: met"),
            Some(t) => format!("target <= {t:.0} s: NOT met"),
            None => "no target".into(),
        },
        wall * 1e6 / r.events.max(1) as f64,
        match target_mib {
            Some(t) if mem <= t => format!("target <= {t:.0} MiB: met"),
            Some(t) => format!("target <= {t:.0} MiB: NOT met"),
            None => "no target".into(),
        },
        mem * 1024.0 / f64::from(r.devices.max(1))
    );
    println!("  baseline, same run: no messages {base_wall:.2} s wall, {base_mem:.0} MiB; ONE simulator (from the issue): {one}");
    if name == "group-500" {
        println!(
            "  reached {} of {} members; median {:.0} min, p99 {:.0} min after it was written; {:.0} bytes on the air per member reached ({:.1} MB in all, {} sessions)",
            r.delivered,
            r.delivery_units,
            r.latency_s.median / 60.0,
            r.latency_s.p99 / 60.0,
            r.bytes_per_delivered,
            r.bytes_total as f64 / 1e6,
            r.sessions
        );
    }
}

/// A row of the carrying table: label, policy, scenario edits.
type Row = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Carrying: on the three bundled carrying scenarios, Strand with
/// carrying (along chains, the node's default, a sender holding a text
/// back for three of its usual gaps to the recipient; the same spreading
/// at once, `options.carry_hold_gaps = 0`; along chains with learned
/// lending, `options.carry_learn`; and by spray and wait with 8 copies,
/// the default before) beside Strand without it and the three
/// baselines held to the same contact graph, over `SEEDS` seeds: means
/// and 95 % intervals, and the targets against Epidemic measured
/// in the same run, in bytes and in copies made per delivered message
/// (what the forwarding rule decides, apart from what each copy costs on
/// the wire). Mean latency over delivered messages favours a policy
/// that delivers less (what only carrying delivers arrives late), so the
/// last lines compare latency on the messages both Strand policies
/// deliver, seed by seed.
fn carrying() {
    const SEEDS: u64 = 5;
    let default = strand_sync::CarryConfig::default();
    let node = match default.spread {
        strand_sync::Spread::Chains { reach, width } => {
            format!(
                "along chains, reach {reach}, width {width}, held back {} gaps",
                default.hold_gaps
            )
        }
        strand_sync::Spread::SprayAndWait => format!("spray and wait, {} copies", default.copies),
    };
    let rows: [Row; 8] = [
        ("strand-carrying", "strand-carrying", &[]),
        (
            "strand-carrying, spreading at once",
            "strand-carrying",
            &[("options.carry_hold_gaps", "0")],
        ),
        (
            "strand-carrying, learned lending",
            "strand-carrying",
            &[("options.carry_learn", "true")],
        ),
        (
            "strand-carrying, spray and wait, 8 copies",
            "strand-carrying",
            &[
                ("options.carry_spread", "\"spray\""),
                ("options.carry_copies", "8"),
            ],
        ),
        ("strand", "strand", &[]),
        ("spray-and-wait, 6 copies", "spray-and-wait", &[]),
        ("epidemic", "epidemic", &[]),
        ("direct", "direct", &[]),
    ];
    for name in ["city-carry", "trace-carry", "sparse-carry"] {
        println!("\n== carrying on {name}: {SEEDS} seeds, baselines through contacts only; means ± 95 % CI (strand-carrying: {node}, the node's default)");
        println!("  | policy | delivered | mean latency | within 1 h | bytes / delivered | copies / delivered | carried per device (mean, max of peaks) |");
        println!("  |---|---|---|---|---|---|---|");
        let mut outcomes: Vec<Vec<strand_sim::Outcome>> = Vec::new();
        let mut means: Vec<(f64, f64, f64)> = Vec::new();
        for (label, policy, extra) in rows {
            let policy = format!("\"{policy}\"");
            let mut edits = vec![
                ("policy", policy.as_str()),
                ("options.contacts_only", "true"),
            ];
            edits.extend_from_slice(extra);
            let s = scenario(name, &edits);
            let start = Instant::now();
            let runs: Vec<strand_sim::Outcome> = (1..=SEEDS)
                .map(|seed| strand_sim::run(&s, seed, |_, _| {}).expect("the run succeeds"))
                .collect();
            let wall = start.elapsed().as_secs_f64();
            let est = |f: &dyn Fn(&strand_sim::Report) -> f64| {
                let xs: Vec<f64> = runs.iter().map(|o| f(&o.report)).collect();
                strand_sim::sweep::estimate(&xs)
            };
            let d = est(&|r| 100.0 * r.delivery_ratio);
            let l = est(&|r| r.latency_s.mean / 60.0);
            let b = est(&|r| 100.0 * r.delivered_within_budget);
            let y = est(&|r| r.bytes_per_delivered / 1000.0);
            let c = est(&|r| r.copies_per_delivered());
            let cm = est(&|r| r.carried_mean_bytes / 1000.0);
            let cx = est(&|r| r.carried_max_bytes as f64 / 1000.0);
            println!(
                "  | {label} | {:.1} ± {:.1} % | {:.0} ± {:.0} min | {:.1} ± {:.1} % | {:.1} ± {:.1} kB | {:.1} ± {:.1} | {:.0} ± {:.0} kB, {:.0} ± {:.0} kB | ({wall:.1} s)",
                d.mean, d.ci95, l.mean, l.ci95, b.mean, b.ci95, y.mean, y.ci95, c.mean, c.ci95, cm.mean, cm.ci95, cx.mean, cx.ci95
            );
            means.push((d.mean, y.mean, c.mean));
            outcomes.push(runs);
        }
        const PLAIN: usize = 4;
        const EPIDEMIC: usize = 6;
        let (ed, ey, ec) = means[EPIDEMIC];
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        for (row, (sd, sy, sc)) in [0, 1, 2].map(|i| (rows[i].0, means[i])) {
            println!(
                "  targets against Epidemic through contacts (same run), {row}: delivery within 5 points: {:.1} against {:.1} % ({}); at most half its bytes per delivered message: {:.1} against {:.1} kB, {:.2} of it ({}); copies per delivered message, {:.1} against {:.1}, {:.2} of it ({} at half)",
                sd,
                ed,
                met(sd >= ed - 5.0),
                sy,
                ey,
                sy / ey,
                met(sy <= ey / 2.0),
                sc,
                ec,
                sc / ec,
                met(sc <= ec / 2.0)
            );
        }
        // Paired: the messages (by creation time) Strand delivers both with
        // and without carrying, in the same seed.
        let (mut with, mut without, mut common) = (Vec::new(), Vec::new(), 0);
        for (c, p) in outcomes[0].iter().zip(&outcomes[PLAIN]) {
            let plain: std::collections::BTreeMap<u64, u64> = p
                .deliveries
                .iter()
                .map(|&(t, lat)| (t - lat, lat))
                .collect();
            let (mut a, mut b, mut n) = (0.0, 0.0, 0u32);
            for &(t, lat) in &c.deliveries {
                if let Some(&other) = plain.get(&(t - lat)) {
                    a += lat as f64;
                    b += other as f64;
                    n += 1;
                }
            }
            if n > 0 {
                with.push(a / f64::from(n) / 60e6);
                without.push(b / f64::from(n) / 60e6);
                common += n;
            }
        }
        let (w, o) = (
            strand_sim::sweep::estimate(&with),
            strand_sim::sweep::estimate(&without),
        );
        println!(
            "  on the {common} messages both Strand policies deliver (all seeds): mean latency {:.0} ± {:.0} min with carrying, {:.0} ± {:.0} min without",
            w.mean, w.ci95, o.mean, o.ci95
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], args.iter().any(|a| a == "--quiet"));
        return;
    }
    // `cargo bench` passes --bench; other arguments select benchmarks by name.
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    for (name, title, _, target_s, target_mib, one) in benches() {
        // text-100k runs only when asked for by name.
        let wanted = if filter.is_empty() {
            name != "text-100k"
        } else {
            filter.iter().any(|f| f.as_str() == name)
        };
        if wanted {
            bench(name, title, target_s, target_mib, one);
        }
    }
    if filter.is_empty() || filter.iter().any(|f| f.as_str() == "carrying") {
        carrying();
    }
}
