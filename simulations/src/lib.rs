//! strand-sim: a deterministic discrete-event simulator that runs the real
//! strand-sync state machines on thousands of simulated devices.
//!
//! A run is single-threaded: one event queue ([`engine::Queue`], ties
//! broken by a sequence number), one seeded ChaCha RNG, virtual time in
//! microseconds, `BTreeMap`s wherever order could show. The same scenario
//! and seed give byte-identical output. Parallelism is across runs
//! ([`sweep`] uses rayon; a [`plan`] spreads a sweep over processes
//! or machines), never inside one.
//!
//! Under the Strand policy every device holds a real `strand_sync`
//! identity, contacts and `MemoryStore`, and every link runs real
//! `Session`s: the simulator only moves bytes, time and contact events
//! ([`strand`]). The Epidemic, Spray-and-Wait and Direct Delivery
//! baselines ([`baseline`]) are message-level models in the style of the
//! ONE simulator, so Strand's numbers sit next to the literature's.
//!
//! ```
//! let scenario = strand_sim::Scenario::parse(r#"
//!     name = "two friends"
//!     duration = "2h"
//!     [[group]]
//!     count = 2
//!     [contacts]
//!     model = "meetings"
//!     gap = "20m"
//!     duration = "1m"
//!     [social]
//!     model = "complete"
//!     [traffic]
//!     per_device_gap = "10m"
//!     until = "1h"
//! "#, Default::default()).unwrap();
//! let outcome = strand_sim::run(&scenario, 7, |_, _| {});
//! let r = outcome.unwrap().report;
//! assert!(r.created > 0);
//! assert_eq!(r.delivered, r.delivery_units);
//! ```
#![warn(missing_docs)]

pub mod baseline;
pub mod engine;
pub mod invariants;
pub mod metrics;
pub mod mobility;
pub mod plan;
pub mod plot;
pub mod scenario;
pub mod social;
pub mod strand;
pub mod sweep;
pub mod trace;
pub mod units;
pub mod world;

pub use metrics::Report;
pub use scenario::{Policy, Scenario};

use units::Micros;
use world::{PolicyState, Sim};

/// A finished run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The summary.
    pub report: Report,
    /// Creation time of each message.
    pub created_at: Vec<Micros>,
    /// (time, latency) of each delivery, in delivery order.
    pub deliveries: Vec<(Micros, Micros)>,
    /// Running totals over time.
    pub samples: Vec<metrics::Sample>,
    /// ONE's MessageStatsReport text.
    pub one_text: String,
}

/// Runs `scenario` with `seed`; `progress(now, end)` is called now and then.
pub fn run(
    scenario: &Scenario,
    seed: u64,
    progress: impl FnMut(Micros, Micros),
) -> anyhow::Result<Outcome> {
    let mut sim = Sim::new(scenario, seed)?;
    sim.run(progress);
    Ok(finish(&sim, seed))
}

/// Builds the outcome of a finished simulation.
pub fn finish(sim: &Sim, seed: u64) -> Outcome {
    let w = &sim.world;
    let sc = sim.scenario();
    let storage = match &sim.policy {
        PolicyState::Strand(s) => s.storage(),
        PolicyState::Baseline(b) => b.storage(w),
    };
    let invariants = invariants::check(sim);
    let report = Report::build(
        &w.metrics,
        &sc.name,
        sc.policy.name(),
        seed,
        w.end,
        sc.options.budget.0,
        w.social.edges() as u64,
        &storage,
        sim.events,
        invariants,
    );
    let relayed = match sim.policy {
        PolicyState::Strand(_) => w.metrics.copies,
        PolicyState::Baseline(_) => w.metrics.relayed,
    };
    let one_text = report.to_one_text(relayed);
    Outcome {
        report,
        created_at: w.metrics.created_at.clone(),
        deliveries: w.metrics.deliveries.clone(),
        samples: w.metrics.samples.clone(),
        one_text,
    }
}
