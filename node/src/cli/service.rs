//! `strand service install|remove|status`: the node as a systemd user
//! service, started at login, so sync goes on with no terminal and no
//! window open.
//!
//! The unit runs `strand --profile DIR --passphrase-file FILE run …`:
//! a service cannot type a passphrase, so it reads one from a file only
//! its owner can read (mode 0600, checked here and again by nothing else:
//! see `docs/guide/service.md` for what keeping it there risks).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::Parser;

use super::{usage, Cli, Ctx, Result};
use crate::runtime::device::Device;

/// The unit's name.
pub const UNIT: &str = "strand.service";

/// Where systemd looks for a user's units: `$XDG_CONFIG_HOME/systemd/user`
/// (by default `~/.config/systemd/user`).
fn unit_dir() -> Result<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| usage!("no home directory: set HOME or XDG_CONFIG_HOME"))?;
    Ok(config.join("systemd").join("user"))
}

/// One argument of an `ExecStart=` line, quoted as systemd reads it:
/// in double quotes, with `\` and `"` escaped, and `%` and `$` doubled
/// (systemd's specifiers and variables).
pub fn unit_quote(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for c in arg.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Where a service's passphrase comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passphrase {
    /// A file only its owner can read.
    File(PathBuf),
    /// The desktop keyring (Secret Service).
    Keyring,
}

/// The unit file for running `exe` on the profile in `dir` with the
/// passphrase from `pass` and `run_args` given to `strand run`.
pub fn unit_text(exe: &Path, dir: &Path, pass: &Passphrase, run_args: &[String]) -> String {
    let mut exec = vec![
        exe.display().to_string(),
        "--profile".into(),
        dir.display().to_string(),
    ];
    match pass {
        Passphrase::File(file) => {
            exec.extend(["--passphrase-file".into(), file.display().to_string()])
        }
        Passphrase::Keyring => exec.push("--passphrase-keyring".into()),
    }
    exec.push("run".into());
    // The journal keeps what a service prints.
    if !run_args.iter().any(|a| a == "--quiet") {
        exec.push("--quiet".into());
    }
    exec.extend(run_args.iter().cloned());
    let exec: Vec<String> = exec.iter().map(|a| unit_quote(a)).collect();
    unit(
        "Written by `strand service install`; `strand service remove` removes it.",
        &format!(
            "Strand node (profile {})",
            dir.display().to_string().replace('%', "%%")
        ),
        &exec.join(" "),
    )
}

/// Where the packaged unit reads the passphrase: `~/.config/strand/passphrase`
/// (`%E` is the user's configuration directory).
pub const PACKAGED_PASSPHRASE: &str = "%E/strand/passphrase";

/// The user unit the package installs (`/usr/lib/systemd/user`): the
/// default profile, the passphrase in [`PACKAGED_PASSPHRASE`]. A user
/// turns it on with `systemctl --user enable --now strand` once that file
/// exists (mode 0600); `strand service install` writes a unit of their
/// own instead, which takes precedence.
pub fn packaged_unit(exe: &Path) -> String {
    let exec = format!(
        "{} --passphrase-file {PACKAGED_PASSPHRASE} run --quiet",
        unit_quote(&exe.display().to_string())
    );
    unit(
        "Installed with Strand. Needs the passphrase in ~/.config/strand/passphrase (mode 0600): see `man strand-service`.",
        "Strand node",
        &exec,
    )
}

fn unit(comment: &str, description: &str, exec: &str) -> String {
    format!(
        "# {comment}\n\
         [Unit]\n\
         Description={description}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exec}\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         NoNewPrivileges=yes\n\
         PrivateTmp=yes\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

/// Asks systemd's user manager; `Err` with its words if it did not do it
/// (no user manager in this session, for one).
fn systemctl(args: &[&str]) -> std::result::Result<String, String> {
    match Process::new("systemctl").arg("--user").args(args).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            Err(if err.is_empty() { said } else { err })
        }
        Err(e) => Err(format!("systemctl: {}", crate::io_words(&e))),
    }
}

/// `strand service install`.
pub(super) fn install(ctx: &Ctx, run_args: &[String], start: bool, keyring: bool) -> Result<()> {
    if !crate::Profile::exists(&ctx.dir) {
        return Err(crate::ProfileError::NotFound(ctx.dir.clone()).into());
    }
    // The flags must be ones `strand run` takes.
    let mut probe = vec!["strand".to_owned(), "run".to_owned()];
    probe.extend(run_args.iter().cloned());
    if let Err(e) = Cli::try_parse_from(&probe) {
        return Err(usage!(
            "not flags of `strand run`: {}",
            e.to_string().lines().next().unwrap_or("")
        ));
    }
    let pass = match (&ctx.passphrase_path, keyring) {
        (Some(_), true) => {
            return Err(usage!(
                "--keyring or --passphrase-file, not both: the service reads the passphrase from one place"
            ))
        }
        (None, false) => {
            return Err(usage!(
                "a service cannot type the passphrase: give --passphrase-file FILE (a file only you can read, mode 0600) or --keyring (the desktop keyring); docs/guide/service.md says what each risks"
            ))
        }
        (None, true) => Passphrase::Keyring,
        (Some(file), false) => Passphrase::File(private_file(file)?),
    };
    if pass == Passphrase::Keyring {
        let typed = super::passphrase(ctx, false)?;
        // A wrong one would only show at the next login: check it
        // unlocks the profile now, against the file's header, which a
        // node holding the profile (`strand run`, the app, the service)
        // does not keep from being read. Nothing is kept if it does not.
        crate::Profile::check_passphrase(&ctx.dir, &typed)?;
        super::keyring::store(&ctx.dir, &typed).map_err(|e| anyhow::anyhow!(e))?;
        println!("Kept the passphrase in the desktop keyring.");
    }
    let dir = std::path::absolute(&ctx.dir).map_err(|e| anyhow::anyhow!(e))?;
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!(e))?;
    let units = unit_dir()?;
    let path = units.join(UNIT);
    std::fs::create_dir_all(&units)
        .map_err(|e| anyhow::anyhow!("{}: {}", units.display(), crate::io_words(&e)))?;
    std::fs::write(&path, unit_text(&exe, &dir, &pass, run_args))
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::io_words(&e)))?;
    println!("Wrote {}", path.display());
    if !start {
        println!(
            "Start it with `systemctl --user enable --now {UNIT}` (`systemctl --user restart {UNIT}` if it runs already)."
        );
        return Ok(());
    }
    // `restart`, not `enable --now`: a service already running (installed
    // before, or the package's unit) would go on with its old profile and
    // flags, and `start` leaves a running one be.
    match systemctl(&["daemon-reload"])
        .and_then(|_| systemctl(&["enable", UNIT]))
        .and_then(|_| systemctl(&["restart", UNIT]))
    {
        Ok(_) => println!("Enabled and started: the node now runs at every login."),
        Err(why) => println!(
            "systemd's user manager did not start it ({why}): in your desktop session, run `systemctl --user enable {UNIT}` and `systemctl --user restart {UNIT}`."
        ),
    }
    Ok(())
}

/// The passphrase file `file`, absolute, refused unless only its owner
/// can read it.
fn private_file(file: &Path) -> Result<PathBuf> {
    let file = std::path::absolute(file)
        .map_err(|e| usage!("{}: {}", file.display(), crate::io_words(&e)))?;
    let mode = std::fs::metadata(&file)
        .map_err(|e| usage!("{}: {}", file.display(), crate::io_words(&e)))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(usage!(
            "{} can be read by others (mode {:o}): `chmod 600 {}` first",
            file.display(),
            mode & 0o777,
            file.display()
        ));
    }
    Ok(file)
}

/// `strand service remove`: the unit, and the passphrase it kept in the
/// desktop keyring.
pub(super) fn remove(ctx: &Ctx) -> Result<()> {
    let path = unit_dir()?.join(UNIT);
    let keyring =
        std::fs::read_to_string(&path).is_ok_and(|unit| unit.contains("--passphrase-keyring"));
    if keyring {
        match super::keyring::remove(&ctx.dir) {
            Ok(true) => println!("Removed the passphrase from the desktop keyring."),
            Ok(false) => {}
            Err(e) => println!("The passphrase stays in the desktop keyring: {e}"),
        }
    }
    if !path.exists() {
        println!(
            "No Strand service is installed ({} is not there).",
            path.display()
        );
        return Ok(());
    }
    if let Err(why) = systemctl(&["disable", "--now", UNIT]) {
        println!("systemd's user manager did not stop it ({why}); removing the unit anyway.");
    }
    std::fs::remove_file(&path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::io_words(&e)))?;
    let _ = systemctl(&["daemon-reload"]);
    println!("Removed {}", path.display());
    Ok(())
}

/// `strand service status`.
pub(super) async fn status(ctx: &Ctx) -> Result<()> {
    let path = unit_dir()?.join(UNIT);
    let installed = path.exists();
    let exec = std::fs::read_to_string(&path).ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("ExecStart=").map(str::to_owned))
    });
    let active = systemctl(&["is-active", UNIT]);
    let running = Device::running(&ctx.dir).await.unwrap_or(false);
    if ctx.json {
        return super::print::json(&serde_json::json!({
            "installed": installed,
            "unit": path,
            "exec_start": exec,
            "systemd": match &active { Ok(s) => s.trim().to_owned(), Err(e) => e.clone() },
            "node_running": running,
        }));
    }
    if installed {
        println!("Installed: {}", path.display());
        if let Some(exec) = exec {
            println!("  runs {exec}");
        }
    } else {
        println!(
            "Not installed (`strand --passphrase-file FILE service install` or `strand service install --keyring` installs it)."
        );
    }
    match active {
        Ok(state) => println!("systemd: {}", state.trim()),
        Err(why) => println!("systemd: no answer ({why})"),
    }
    println!(
        "A node {} on {}.",
        if running { "runs" } else { "does not run" },
        ctx.dir.display()
    );
    Ok(())
}
