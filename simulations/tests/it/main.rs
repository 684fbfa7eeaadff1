//! strand-sim's checks: determinism, invariants, the closed-form Epidemic
//! delay, link timing, trace replay, bad input, and the CLI; `transcript`:
//! a simulated link writes strand-sync's reference bytes (as the node's
//! test checks too).

mod cli;
mod scenarios;
mod transcript;

use std::path::{Path, PathBuf};

use strand_sim::Scenario;

/// A bundled scenario with some fields changed (dotted paths).
pub fn bundled(name: &str, edits: &[(&str, &str)]) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load_with(&path, edits).unwrap()
}

/// A scenario from text, with relative paths resolved against `dir`.
pub fn inline(text: &str, dir: &Path) -> Scenario {
    Scenario::parse(text, PathBuf::from(dir)).unwrap()
}
