//! `strand manual DIR` (not listed in `--help`): what a package installs
//! besides the binaries, made from the same definitions as `--help`, so
//! they cannot drift apart: man pages (`strand.1` and one per command,
//! `strand-send.1`, …), shell completions (bash, zsh, fish) and the
//! systemd user unit. `scripts/deb` runs it.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, Result};

/// Writes `man/`, `completions/` and `systemd/` under `dir`, for a
/// `strand` installed at `exe`.
pub(super) fn write(dir: &Path, exe: &Path) -> Result<()> {
    let made = |what: &str, path: &Path| format!("writing {what} in {}", path.display());
    let man = dir.join("man");
    std::fs::create_dir_all(&man).with_context(|| made("man pages", &man))?;
    clap_mangen::generate_to(Cli::command(), &man).with_context(|| made("man pages", &man))?;

    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions).with_context(|| made("completions", &completions))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "strand", &completions)
            .with_context(|| made("completions", &completions))?;
    }

    let systemd = dir.join("systemd");
    std::fs::create_dir_all(&systemd).with_context(|| made("the user unit", &systemd))?;
    let unit = systemd.join(super::service::UNIT);
    std::fs::write(&unit, super::service::packaged_unit(exe))
        .with_context(|| made("the user unit", &unit))?;
    println!(
        "Wrote the man pages, completions and user unit in {}",
        dir.display()
    );
    Ok(())
}
