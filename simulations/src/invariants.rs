//! Invariants checked at the end of every run, by name. Each is reported
//! in the run's JSON (`invariants`) and the tests assert the ones their
//! scenario guarantees.

use std::collections::BTreeMap;

use crate::world::{PolicyState, Sim};

/// No more deliveries than (message, recipient) pairs created.
pub const DELIVERED_AT_MOST_CREATED: &str = "delivered_at_most_created";
/// Every received message was one the simulator created, no session
/// failed (a cut link just drops its sessions; a stranger's link ending in
/// its preamble is no failure), and no encounter between contacts was
/// lost in the preamble.
pub const NO_PROTOCOL_ERRORS: &str = "no_protocol_errors";
/// Every group log (1:1 and private) is the same at all its members.
/// Holds once a partition has healed, traffic has stopped and enough
/// meetings have happened; scenarios that test it end with a quiet period.
pub const GROUP_LOGS_CONVERGED: &str = "group_logs_converged";

/// Random waypoint: at the end, two devices are in contact exactly when
/// they are within range (the crossings solved in closed form never drift
/// from the geometry).
pub const CONTACTS_MATCH_DISTANCE: &str = "contacts_match_distance";

/// Evaluates every invariant that applies to the run's policy.
pub fn check(sim: &Sim) -> BTreeMap<String, bool> {
    let w = &sim.world;
    let m = &w.metrics;
    let mut out = BTreeMap::new();
    out.insert(
        DELIVERED_AT_MOST_CREATED.to_string(),
        (m.deliveries.len() as u64) <= m.units,
    );
    if let Some(ok) = sim.waypoint_consistent() {
        out.insert(CONTACTS_MATCH_DISTANCE.to_string(), ok);
    }
    if let PolicyState::Strand(s) = &sim.policy {
        let clean =
            m.protocol_errors == 0 && m.contact_encounters_lost == 0 && m.session_errors.is_empty();
        out.insert(NO_PROTOCOL_ERRORS.to_string(), clean);
        out.insert(GROUP_LOGS_CONVERGED.to_string(), s.group_logs_converged(w));
    }
    out
}
