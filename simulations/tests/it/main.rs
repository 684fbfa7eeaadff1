//! strand-sim's checks: determinism, invariants, the closed-form Epidemic
//! delay, link timing, trace replay, bad input, and the CLI.

mod cli;
mod scenarios;

use std::path::{Path, PathBuf};

use strand_sim::{sweep, Scenario};

/// A bundled scenario with some fields changed (dotted paths).
pub fn bundled(name: &str, edits: &[(&str, &str)]) -> Scenario {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
    let mut table: toml::Table = text.parse().unwrap();
    for (k, v) in edits {
        sweep::set(&mut table, k, v).unwrap();
    }
    Scenario::from_table(table, dir).unwrap()
}

/// A scenario from text, with relative paths resolved against `dir`.
pub fn inline(text: &str, dir: &Path) -> Scenario {
    Scenario::parse(text, PathBuf::from(dir)).unwrap()
}
