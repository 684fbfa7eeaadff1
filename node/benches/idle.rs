//! An idle node on a phone's budget: `cargo bench -p strand-node --bench idle`.
//!
//! A `strand run` process with five contacts, none of them reachable,
//! left alone: how often its threads wake (context switches of all its
//! threads, per minute) and its resident memory. Beside it, in the same
//! run: a process that polls once a second (what a naive idle loop costs)
//! and one that sleeps throughout (the floor). Each wake-up is a CPU
//! leaving its idle state: on a phone, battery.
//!
//! `STRAND_BENCH_IDLE_SECS=20` shortens the 60 s window.

#![allow(clippy::disallowed_methods)]

#[path = "common/process.rs"]
mod process;

use std::process::{Child, Command};
use std::time::Duration;

use strand_node::{os_rng, KdfParams, Profile};

use process::{rss_kib, spawn_printing};

const BIN: &str = env!("CARGO_BIN_EXE_strand");
const PASS: &str = "bench passphrase";

/// Context switches of every thread of `pid` so far.
fn switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Wake-ups per minute of `child` over `window`, after `settle`.
fn per_minute(child: &Child, settle: Duration, window: Duration) -> f64 {
    std::thread::sleep(settle);
    let before = switches(child.id());
    std::thread::sleep(window);
    let after = switches(child.id());
    (after - before) as f64 * 60.0 / window.as_secs_f64()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery
    }
    let window = Duration::from_secs(
        std::env::var("STRAND_BENCH_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let settle = Duration::from_secs(10);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idle");
    let p = Profile::create(
        &dir,
        "Idle",
        PASS,
        KdfParams::insecure_for_tests(),
        &mut os_rng(),
    )
    .unwrap();
    for i in 0..5 {
        let who = strand_sync::Identity::generate(&format!("contact {i}"), &mut os_rng()).unwrap();
        p.add_contact(&who.invite(), who.name(), 0, &mut os_rng())
            .unwrap();
    }
    drop(p);

    let mut command = Command::new(BIN);
    command
        .args([
            "run",
            "--no-mdns",
            "--no-ble",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .env("STRAND_PROFILE", &dir)
        .env("STRAND_PASSPHRASE", PASS);
    let node = Killed(spawn_printing(command).0);
    let poller = Killed(
        Command::new("sh")
            .args(["-c", "while sleep 1; do :; done"])
            .spawn()
            .unwrap(),
    );
    let sleeper = Killed(Command::new("sleep").arg("3600").spawn().unwrap());

    let node_rate = per_minute(&node.0, settle, window);
    let node_rss = rss_kib(node.0.id());
    let threads = std::fs::read_dir(format!("/proc/{}/task", node.0.id()))
        .map(|d| d.count())
        .unwrap_or(0);
    let poller_rate = per_minute(&poller.0, Duration::ZERO, window);
    let sleeper_rate = per_minute(&sleeper.0, Duration::ZERO, window);

    println!(
        "idle `strand run`, five contacts, none reachable ({}s window)",
        window.as_secs()
    );
    println!(
        "   {node_rate:>8.1} wake-ups/min   the node ({threads} threads), {:.1} MiB resident",
        node_rss as f64 / 1024.0
    );
    println!("   {poller_rate:>8.1} wake-ups/min   baseline: a shell polling once a second");
    println!("   {sleeper_rate:>8.1} wake-ups/min   baseline: a process asleep throughout");
}
