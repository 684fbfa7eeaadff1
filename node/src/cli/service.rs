//! `strand service install|remove|status`: the node as a systemd user
//! service, started at login, so sync goes on with no terminal and no
//! window open.
//!
//! The unit runs `strand --profile DIR --passphrase-file FILE run …` (or
//! `--passphrase-keyring`): a service cannot type a passphrase, so it
//! reads one from a file only its owner can read (mode 0600, checked
//! here and again by nothing else: see `docs/guide/service.md` for what
//! keeping it there risks) or from the desktop keyring.
//!
//! That copy of the passphrase must follow the profile's: after a change
//! ([`update_service_passphrase`], which `strand passphrase` and the
//! app's settings both call) the old one would fail at every start, and
//! systemd would start it again every 10 s, each time with a full
//! Argon2id run. `remove` and `status` read which profile the service
//! runs from its unit ([`Installed`]), not from `--profile`: there is one
//! unit, whatever profile it runs, so `remove` refuses a `--profile` on
//! its command line rather than remove another profile's service.
//!
//! A wipe of that profile takes the service with it
//! ([`ProfileService`], which `strand wipe` and the app's settings
//! both call once the profile's keys are gone): its passphrase (the only
//! thing that still opens a copy of the profile that outlived the wipe)
//! and its unit.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use zeroize::Zeroizing;

use super::keyring::KeyringError;
use super::{usage, CliError, Ctx, NotRun, Result};
use crate::runtime::device::Device;

/// The unit's name.
pub const UNIT: &str = "strand.service";

/// Where systemd looks for units an administrator or a package put there
/// for every user (the package's: `/usr/lib/systemd/user`), after the
/// user's own ([`unit_dir`]). The first that has [`UNIT`] is the one
/// systemd runs.
const SYSTEM_UNIT_DIRS: [&str; 2] = ["/etc/systemd/user", "/usr/lib/systemd/user"];

/// The user's configuration directory, as systemd's `%E` names it:
/// `$XDG_CONFIG_HOME`, by default `~/.config`.
fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
}

/// Where systemd looks for a user's units: `$XDG_CONFIG_HOME/systemd/user`
/// (by default `~/.config/systemd/user`).
fn unit_dir() -> Result<PathBuf> {
    let config =
        config_dir().ok_or_else(|| usage!("no home directory: set HOME or XDG_CONFIG_HOME"))?;
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

/// The unit's text. No `PrivateTmp=`: the node opens the files and
/// folders the user names (`strand save ID /tmp`, `strand export bob
/// --to /tmp/b.strand`, a file to send), and with a /tmp of its own it
/// would write where the user cannot see it (gone when it stops, with the
/// envelopes counted handed over) and not find what they name there.
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
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

/// A Strand unit as read back from its file: what `strand service
/// remove` and `status` act on, and where [`update_service_passphrase`]
/// finds the service's copy of the passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The unit file.
    pub path: PathBuf,
    /// Its `ExecStart=` line (the last one, which systemd runs), as written.
    pub exec_start: Option<String>,
    /// The profile it runs (`--profile`); `None` if it names none, as the
    /// packaged unit does (then it runs the default profile).
    pub profile: Option<PathBuf>,
    /// Where it reads the passphrase, if it names a place.
    pub passphrase: Option<Passphrase>,
    /// Why the file alone does not say which profile systemd runs, or
    /// where it reads the passphrase (drop-ins, an environment that may
    /// set `STRAND_PROFILE`, a line continued, a specifier not known
    /// here): then nothing is done on a guess.
    pub unsure: Option<String>,
}

impl Installed {
    /// The unit in `text`, at `path`; `config` is what `%E` stands for.
    pub fn parse(path: PathBuf, text: &str, config: Option<&Path>) -> Installed {
        let exec_start = text
            .lines()
            .rev()
            .filter_map(|l| l.trim_start().strip_prefix("ExecStart="))
            .find(|l| !l.trim().is_empty())
            .map(str::to_owned);
        let mut profile = None;
        let mut passphrase = None;
        let mut unsure = None;
        let (words, unknown) = exec_start
            .as_deref()
            .map(|l| exec_words(l, config))
            .unwrap_or_default();
        if let Some(spec) = unknown {
            unsure = Some(format!("its ExecStart uses the specifier %{spec}"));
        }
        if exec_start
            .as_deref()
            .is_some_and(|l| l.trim_end().ends_with('\\'))
        {
            unsure = Some("its ExecStart goes on to the next line".to_owned());
        }
        if text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("Environment=") || l.starts_with("EnvironmentFile=")
        }) {
            unsure = Some("it sets an environment (which may name another profile)".to_owned());
        }
        // The first word is the program; `strand`'s global options may
        // stand before or after `run`.
        let mut words = words.into_iter().skip(1);
        while let Some(word) = words.next() {
            if word == "--" {
                break;
            } else if word == "--passphrase-keyring" {
                passphrase = Some(Passphrase::Keyring);
            } else if let Some(dir) = option_value(&word, "--profile", &mut words) {
                profile = Some(PathBuf::from(dir));
            } else if let Some(file) = option_value(&word, "--passphrase-file", &mut words) {
                passphrase = Some(Passphrase::File(PathBuf::from(file)));
            }
        }
        Installed {
            path,
            exec_start,
            profile,
            passphrase,
            unsure,
        }
    }

    /// Whether it runs anything: a unit masked (a link to `/dev/null`)
    /// or with no `ExecStart=` is not a Strand service, and hides one for
    /// every user.
    pub fn runs(&self) -> bool {
        self.exec_start.is_some()
    }

    /// The unit at `path`; `None` if there is no file there. Drop-ins
    /// (`strand.service.d/*.conf`, which `systemctl --user edit` writes)
    /// and an `environment.d` that sets `STRAND_PROFILE` make it
    /// [`Installed::unsure`].
    pub fn read(path: &Path) -> std::io::Result<Option<Installed>> {
        let config = config_dir();
        let mut unit = match std::fs::read_to_string(path) {
            Ok(text) => Installed::parse(path.to_path_buf(), &text, config.as_deref()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if let Some(drop_in) = drop_ins(config.as_deref()).first() {
            unit.unsure = Some(format!("{} changes it", drop_in.display()));
        } else if unit.profile.is_none() && environment_names_profile(config.as_deref()) {
            unit.unsure =
                Some("your user manager's environment.d may set STRAND_PROFILE".to_owned());
        }
        Ok(Some(unit))
    }

    /// The profile it runs: the one it names, or the default one.
    pub fn profile_dir(&self) -> Option<PathBuf> {
        self.profile.clone().or_else(crate::default_profile_dir)
    }
}

/// The drop-ins that change [`UNIT`] wherever systemd looks for them.
fn drop_ins(config: Option<&Path>) -> Vec<PathBuf> {
    let own = config.map(|c| c.join("systemd").join("user"));
    let dirs = own.into_iter().chain(
        ["/run/systemd/user"]
            .into_iter()
            .chain(SYSTEM_UNIT_DIRS)
            .map(PathBuf::from),
    );
    dirs.filter_map(|d| std::fs::read_dir(d.join(format!("{UNIT}.d"))).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect()
}

/// Whether the user's `environment.d` names `STRAND_PROFILE` (the user
/// manager passes it to every service).
fn environment_names_profile(config: Option<&Path>) -> bool {
    let Some(dir) = config.map(|c| c.join("environment.d")) else {
        return false;
    };
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .any(|text| text.contains("STRAND_PROFILE"))
}

/// The value of `--flag VALUE` or `--flag=VALUE` if `word` is that flag
/// (the value taken from `rest` in the first form).
fn option_value(word: &str, flag: &str, rest: &mut impl Iterator<Item = String>) -> Option<String> {
    if word == flag {
        return rest.next();
    }
    word.strip_prefix(flag)?
        .strip_prefix('=')
        .map(str::to_owned)
}

/// The words of an `ExecStart=` line as systemd splits them: quoted
/// (`"…"` or `'…'`) or not, `\` escapes, `%%` and `$$` undoubled (the
/// reverse of [`unit_quote`]), and `%E` the user's configuration
/// directory (`config`), which the packaged unit uses; other specifiers
/// are left as they are, and the first of them returned.
fn exec_words(line: &str, config: Option<&Path>) -> (Vec<String>, Option<char>) {
    let mut words = Vec::new();
    let mut unknown = None;
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return (words, unknown);
        }
        let quote = chars.next_if(|&c| c == '"' || c == '\'');
        let mut word = String::new();
        while let Some(c) = chars.next() {
            if Some(c) == quote || (quote.is_none() && c.is_whitespace()) {
                break;
            }
            match c {
                '\\' => word.extend(chars.next()),
                '%' => match (chars.next(), config) {
                    (Some('%'), _) => word.push('%'),
                    (Some('E'), Some(dir)) => word.push_str(&dir.display().to_string()),
                    (Some(other), _) => {
                        unknown.get_or_insert(other);
                        word.push('%');
                        word.push(other);
                    }
                    (None, _) => word.push('%'),
                },
                '$' if chars.peek() == Some(&'$') => {
                    chars.next();
                    word.push('$');
                }
                _ => word.push(c),
            }
        }
        words.push(word);
    }
}

/// The unit `strand service install` wrote (in [`unit_dir`]), if there is one.
fn installed() -> Result<Option<Installed>> {
    let path = unit_dir()?.join(UNIT);
    Installed::read(&path).map_err(|e| {
        CliError::Other(anyhow::anyhow!(
            "{}: {}",
            path.display(),
            crate::io_words(&e)
        ))
    })
}

/// The unit systemd runs as [`UNIT`]: the user's own, else one for every
/// user (the package's); `Err` names a unit that could not be read.
fn unit_in_effect() -> std::result::Result<Option<Installed>, (PathBuf, std::io::Error)> {
    let own = config_dir().map(|c| c.join("systemd").join("user"));
    let dirs = own
        .into_iter()
        .chain(SYSTEM_UNIT_DIRS.into_iter().map(PathBuf::from));
    for dir in dirs {
        let path = dir.join(UNIT);
        match Installed::read(&path) {
            Ok(None) => {}
            Ok(found) => return Ok(found),
            Err(e) => return Err((path, e)),
        }
    }
    Ok(None)
}

/// Whether `a` and `b` are the same folder (through links, or one
/// relative and one absolute), also once it is gone (wiped).
fn same_dir(a: &Path, b: &Path) -> bool {
    matches!((resolved(a), resolved(b)), (Ok(a), Ok(b)) if a == b)
}

/// `path`, absolute, with its links and `..` resolved as far as it
/// exists: a wiped profile's folder is gone, but the folder that held it
/// still names it, whichever link it was reached through.
fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let path = std::path::absolute(path)?;
    // The names below the deepest part that exists, innermost first.
    let mut below: Vec<std::ffi::OsString> = Vec::new();
    let mut head = path.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(head) {
            return Ok(below.iter().rev().fold(real, |p, name| p.join(name)));
        }
        match (head.parent(), head.file_name()) {
            (Some(parent), Some(name)) => {
                below.push(name.to_owned());
                head = parent;
            }
            // `..` below what is missing, or nothing exists: as written.
            _ => return Ok(path.clone()),
        }
    }
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
    let dir = std::path::absolute(&ctx.dir).map_err(|e| anyhow::anyhow!(e))?;
    unit_can_name("the profile's folder", &dir)?;
    // The flags must be ones `strand run` takes, and does not refuse
    // (`--json`): the service would fail at every start.
    let mut probe = vec!["strand".to_owned(), "run".to_owned()];
    probe.extend(run_args.iter().cloned());
    if let Err(e) = super::parse(&probe) {
        let why = match e {
            NotRun::Clap(e) => e.to_string().lines().next().unwrap_or("").to_owned(),
            NotRun::Refused(e) => e.line(),
        };
        return Err(usage!("not flags of `strand run`: {why}"));
    }
    if let Some(arg) = run_args.iter().find(|a| a.chars().any(char::is_control)) {
        return Err(usage!(
            "the flag {arg:?} for `strand run` holds a control character (a line break, a tab), which the unit's ExecStart= line cannot hold"
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
    if let Passphrase::File(file) = &pass {
        unit_can_name("the passphrase file", file)?;
    }
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!(e))?;
    unit_can_name("this program", &exe)?;
    // The passphrase the service will read (the file's first line, or the
    // one to keep in the keyring): a wrong one would only show at the
    // next login, and then systemd would start the service again every
    // 10 s, each time with a full Argon2id run. Checked now, before
    // anything is kept or written, against the profile file's header,
    // which a node holding the profile (`strand run`, the app, the
    // service) does not keep from being read.
    let typed = super::passphrase(ctx, false)?;
    crate::Profile::check_passphrase(&ctx.dir, &typed)?;
    let units = unit_dir()?;
    let path = units.join(UNIT);
    // Read before it is replaced: the unit read a passphrase kept for it.
    let replaced = installed().ok().flatten();
    // The keyring first, then the unit: a unit that reads the keyring
    // with nothing kept there would fail at every start (and, written
    // over an older unit, would have taken that one's place), while a
    // kept passphrase with no unit can be taken out again, which is done
    // below if the unit cannot be written.
    if pass == Passphrase::Keyring {
        super::keyring::store(&dir, &typed).map_err(|e| anyhow::anyhow!(e))?;
    }
    let written = std::fs::create_dir_all(&units)
        .map_err(|e| anyhow::anyhow!("{}: {}", units.display(), crate::io_words(&e)))
        .and_then(|()| {
            std::fs::write(&path, unit_text(&exe, &dir, &pass, run_args))
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::io_words(&e)))
        });
    if let Err(e) = written {
        if pass == Passphrase::Keyring {
            unkeep_passphrase(replaced.as_ref(), &dir);
        }
        return Err(e.into());
    }
    if pass == Passphrase::Keyring {
        println!("Kept the passphrase in the desktop keyring.");
    }
    println!("Wrote {}", path.display());
    if let Some(replaced) = replaced {
        forget_replaced_keyring(&replaced, &dir, &pass);
    }
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

/// The unit `replaced` gave way to one running `dir` with `pass`: the
/// passphrase it read from the desktop keyring is taken out, unless the
/// new unit reads the same one. Nothing else reads it (it is kept for the
/// service only), and `service remove` would no longer find it: a
/// profile's passphrase would stay in the keyring for good. A unit that
/// does not say for sure which profile it ran is left, as `remove` leaves
/// it.
fn forget_replaced_keyring(replaced: &Installed, dir: &Path, pass: &Passphrase) {
    if !replaced.runs() || replaced.passphrase != Some(Passphrase::Keyring) {
        return;
    }
    let Some(profile) = replaced.profile_dir() else {
        return;
    };
    if *pass == Passphrase::Keyring && same_dir(&profile, dir) {
        return;
    }
    if let Some(why) = &replaced.unsure {
        println!(
            "The passphrase the service read from the desktop keyring before may stay there: which profile it ran cannot be told ({why})."
        );
        return;
    }
    match super::keyring::remove(&profile) {
        Ok(true) => println!(
            "Removed the passphrase of {}, which the service ran before, from the desktop keyring.",
            profile.display()
        ),
        Ok(false) => {}
        Err(e) => println!(
            "The passphrase of {}, which the service ran before, stays in the desktop keyring: {e}",
            profile.display()
        ),
    }
}

/// Takes the passphrase `install` has just kept for the profile in `dir`
/// out of the desktop keyring again, the unit not written: nothing would
/// read it, and `service remove` would not find it. It stays if the unit
/// still in place (`replaced`) reads it, or may (it does not say which
/// profile it runs): it holds the passphrase that unit needs, checked.
fn unkeep_passphrase(replaced: Option<&Installed>, dir: &Path) {
    let still_read = replaced.is_some_and(|unit| {
        unit.runs()
            && unit.passphrase == Some(Passphrase::Keyring)
            && (unit.unsure.is_some() || unit.profile_dir().is_some_and(|p| same_dir(&p, dir)))
    });
    if still_read {
        return;
    }
    if let Err(e) = super::keyring::remove(dir) {
        println!("The passphrase stays in the desktop keyring, where nothing reads it: {e}");
    }
}

/// Refuses (a usage error naming `what`) a `path` the unit's text cannot
/// name as it is: one that is not UTF-8 would be written with U+FFFD in
/// place of its bytes (a path that is not there, so the service would
/// fail at every start; and two such profiles would share one keyring
/// item), and a control character (a line break) would end the
/// `ExecStart=` line inside it.
fn unit_can_name(what: &str, path: &Path) -> Result<()> {
    match path.to_str() {
        None => Err(usage!(
            "{what} {path:?} has a name that is not UTF-8 text, which a systemd unit cannot name: rename it (or move it to a folder whose name is) to run it as a service"
        )),
        Some(text) if text.chars().any(char::is_control) => Err(usage!(
            "{what} {path:?} has a control character (a line break, a tab) in its name, which a systemd unit cannot name: rename it to run it as a service"
        )),
        Some(_) => Ok(()),
    }
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
/// desktop keyring for the profile it runs (whichever profile
/// `STRAND_PROFILE` names; a `--profile` on the command line is refused
/// before this runs, by [`super::refuse_inert_options`]).
pub(super) fn remove() -> Result<()> {
    let Some(unit) = installed()? else {
        println!(
            "No Strand service is installed ({} is not there).",
            unit_dir()?.join(UNIT).display()
        );
        return Ok(());
    };
    if !unit.runs() {
        println!(
            "{} runs nothing (it is masked, or has no ExecStart=): it is not a Strand service, so it stays.",
            unit.path.display()
        );
        return Ok(());
    }
    if let (Some(Passphrase::Keyring), Some(why)) = (&unit.passphrase, &unit.unsure) {
        println!(
            "The passphrase may stay in the desktop keyring: which profile the unit runs cannot be told from it ({why})."
        );
    } else if unit.passphrase == Some(Passphrase::Keyring) {
        match unit.profile_dir() {
            Some(profile) => match super::keyring::remove(&profile) {
                Ok(true) => println!("Removed the passphrase from the desktop keyring."),
                Ok(false) => {}
                Err(e) => println!("The passphrase stays in the desktop keyring: {e}"),
            },
            None => println!(
                "The passphrase stays in the desktop keyring: the unit names no profile and there is no default one (no home directory)."
            ),
        }
    }
    let path = &unit.path;
    if let Err(why) = systemctl(&["disable", "--now", UNIT]) {
        println!("systemd's user manager did not stop it ({why}); removing the unit anyway.");
    }
    std::fs::remove_file(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::io_words(&e)))?;
    let _ = systemctl(&["daemon-reload"]);
    println!("Removed {}", path.display());
    Ok(())
}

/// `strand service status`: the unit, systemd's word on it, and whether
/// a node runs on the profile it runs (with none installed, on the
/// profile this command was given).
pub(super) async fn status(ctx: &Ctx) -> Result<()> {
    let path = unit_dir()?.join(UNIT);
    let unit = installed()?;
    let profile = unit
        .as_ref()
        .and_then(Installed::profile_dir)
        .unwrap_or_else(|| ctx.dir.clone());
    let active = systemctl(&["is-active", UNIT]);
    // Right after `install --start` the node may still be starting (the
    // unit is Type=simple): it is waited for while it says it is starting
    // (`runtime::starting`).
    let running = Device::running_or_starting(&profile).await.unwrap_or(false);
    let exec = unit.as_ref().and_then(|u| u.exec_start.clone());
    if ctx.json {
        return super::print::json(&serde_json::json!({
            "installed": unit.is_some(),
            "unit": path,
            "exec_start": exec,
            "profile": profile,
            "systemd": match &active { Ok(s) => s.trim().to_owned(), Err(e) => e.clone() },
            "node_running": running,
        }));
    }
    if unit.is_some() {
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
        profile.display()
    );
    Ok(())
}

/// What became of the service's copy of the passphrase after the
/// profile's passphrase changed ([`update_service_passphrase`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceCopy {
    /// No service runs the profile (or its unit names no place for the
    /// passphrase, or the file it names is not there): there is no copy.
    NoService,
    /// The copy holds the new passphrase now.
    Replaced(Passphrase),
    /// The file held the new passphrase already (written there first,
    /// and given as `--new-passphrase-file`, say).
    AlreadyNew(PathBuf),
}

impl ServiceCopy {
    /// What to tell the user, if anything.
    pub fn words(&self) -> Option<String> {
        match self {
            ServiceCopy::NoService => None,
            ServiceCopy::Replaced(Passphrase::Keyring) => Some(
                "The service's passphrase in the desktop keyring is the new one too.".to_owned(),
            ),
            ServiceCopy::Replaced(Passphrase::File(file)) => Some(format!(
                "Wrote the new passphrase to {} too, where the service reads it (only you can read it, as before).",
                file.display()
            )),
            ServiceCopy::AlreadyNew(file) => Some(format!(
                "{}, where the service reads the passphrase, holds the new one already.",
                file.display()
            )),
        }
    }
}

/// Why the service's copy of the passphrase still holds the old one.
/// The profile's passphrase changed all the same: the new one is in
/// force, and only the service, at its next start, is stuck.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StaleCopy {
    /// The desktop keyring did not take the new passphrase.
    #[error("the desktop keyring did not take the new one")]
    Keyring(#[source] KeyringError),
    /// The service's unit could not be read: whether it runs this
    /// profile, and where it reads the passphrase, is not known.
    #[error("the service's unit {} could not be read", .path.display())]
    Unit {
        /// The unit file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The passphrase file could not be read or rewritten.
    #[error("{} could not be rewritten", .file.display())]
    File {
        /// The file the unit names.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file's first line is neither the old passphrase nor the new
    /// one: it is not the copy Strand would replace, so it is left as it is.
    #[error("{} holds neither the old passphrase nor the new one, so Strand left it as it is", .0.display())]
    NotOld(PathBuf),
    /// The file can be read by others: the passphrase is not written there.
    #[error("{} can be read by others (mode {:o}), so Strand does not write the passphrase there", .file.display(), .mode)]
    Exposed {
        /// The file the unit names.
        file: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file belongs to another user: replacing it would change its owner.
    #[error("{} belongs to another user, so Strand left it as it is", .0.display())]
    NotYours(PathBuf),
    /// The unit may run this profile, but what it runs cannot be told
    /// from its file ([`Installed::unsure`]).
    #[error("whether the service's unit {} runs this profile cannot be told from it ({why})", .path.display())]
    Unsure {
        /// The unit file.
        path: PathBuf,
        /// Why not.
        why: String,
    },
}

impl StaleCopy {
    /// What the user does to give the service the new passphrase.
    pub fn fix(&self) -> String {
        match self {
            StaleCopy::Keyring(_) => "in your desktop session, run `strand service install --keyring` again (with the same flags after `--`): it keeps the new passphrase there".to_owned(),
            StaleCopy::Unit { path, .. } | StaleCopy::Unsure { path, .. } => format!(
                "if {} runs this profile (`systemctl --user cat {UNIT}`), put the new passphrase where it reads it",
                path.display()
            ),
            StaleCopy::Exposed { file, .. } => format!(
                "`chmod 600 {}`, then put the new passphrase on its first line",
                file.display()
            ),
            StaleCopy::File { file, .. } | StaleCopy::NotOld(file) | StaleCopy::NotYours(file) => {
                format!("put the new passphrase on the first line of {}", file.display())
            }
        }
    }

    /// The whole warning, for after "Passphrase changed": what holds,
    /// and what to do.
    pub fn warning(&self) -> String {
        format!(
            "The user service's copy of the passphrase was not changed: {}. Until it is, the service cannot open the profile when it next starts (and systemd tries again every 10 s); to fix it, {}.",
            crate::chain(self),
            self.fix()
        )
    }
}

/// After the profile in `dir` changed its passphrase from `old` to `new`
/// (`strand passphrase`, the app's settings: each calls this once the
/// device said it changed), makes the copy that the user service running
/// that profile reads at its start hold `new`.
///
/// Which service, and where its copy is, comes from the unit systemd
/// runs ([`Installed`]: the user's own, else the package's), and only if
/// it runs this profile:
///
/// - the desktop keyring (`--passphrase-keyring`): Strand put the item
///   there (`install --keyring`) and owns it, so it is replaced;
/// - a file (`--passphrase-file FILE`, or the package's
///   `~/.config/strand/passphrase`): the user's own file, which Strand
///   rewrites only if its first line is the old passphrase (so it is the
///   service's copy and nothing else), it is private (no access for
///   others) and theirs; atomically, with the same permissions, through a
///   symbolic link to its target, and keeping any lines after the first.
///   Anything else is left as it is and said ([`StaleCopy`]).
///
/// It runs after the change, never before: a passphrase changed because
/// it leaked must not wait for a keyring to unlock; a copy that could not
/// be updated is an `Err` to show beside "Passphrase changed".
pub fn update_service_passphrase(
    dir: &Path,
    old: &str,
    new: &str,
) -> std::result::Result<ServiceCopy, StaleCopy> {
    let unit = unit_in_effect().map_err(|(path, source)| StaleCopy::Unit { path, source })?;
    let Some(unit) = unit.filter(Installed::runs) else {
        return Ok(ServiceCopy::NoService);
    };
    if let Some(why) = unit.unsure {
        return Err(StaleCopy::Unsure {
            path: unit.path,
            why,
        });
    }
    let Some(profile) = unit.profile_dir().filter(|p| same_dir(p, dir)) else {
        return Ok(ServiceCopy::NoService);
    };
    match unit.passphrase {
        None => Ok(ServiceCopy::NoService),
        Some(Passphrase::Keyring) => {
            // Kept under the profile as the unit names it: the service
            // looks it up by that name.
            super::keyring::store(&profile, new).map_err(StaleCopy::Keyring)?;
            Ok(ServiceCopy::Replaced(Passphrase::Keyring))
        }
        Some(Passphrase::File(file)) => rewrite_passphrase_file(&file, old, new),
    }
}

/// Replaces the first line of the service's passphrase `file`, `old`,
/// with `new` (see [`update_service_passphrase`]).
fn rewrite_passphrase_file(
    file: &Path,
    old: &str,
    new: &str,
) -> std::result::Result<ServiceCopy, StaleCopy> {
    let failed = |source: std::io::Error| StaleCopy::File {
        file: file.to_path_buf(),
        source,
    };
    // Through a link, the file it points at is rewritten and the link stays.
    let Some((target, meta)) = regular_target(file).map_err(failed)? else {
        return Ok(ServiceCopy::NoService);
    };
    let text = Zeroizing::new(std::fs::read_to_string(&target).map_err(failed)?);
    // The line `--passphrase-file` reads.
    let first = text.lines().next().unwrap_or("");
    if first == new {
        return Ok(ServiceCopy::AlreadyNew(file.to_path_buf()));
    }
    if first != old {
        return Err(StaleCopy::NotOld(file.to_path_buf()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StaleCopy::Exposed {
            file: file.to_path_buf(),
            mode,
        });
    }
    // Replaced by a file of this user's: theirs only.
    if meta.uid() != crate::runtime::control::own_uid().map_err(failed)? {
        return Err(StaleCopy::NotYours(file.to_path_buf()));
    }
    // What followed the first line (its line ending included) stays.
    let rest = &text[first.len()..];
    let content = Zeroizing::new(format!(
        "{new}{}",
        if rest.is_empty() { "\n" } else { rest }
    ));
    replace_file(&target, content.as_bytes(), mode).map_err(failed)?;
    Ok(ServiceCopy::Replaced(Passphrase::File(file.to_path_buf())))
}

/// What [`ProfileService`] removed of the user service that ran a
/// wiped profile, in the order it did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removed {
    /// The passphrase file the unit named, overwritten with random bytes,
    /// flushed, and deleted (through a link: the file it pointed at, and
    /// the link).
    PassphraseFile(PathBuf),
    /// The passphrase on the first line of a file that holds more: the
    /// rest stays, in a new file renamed over it, and the old one was
    /// overwritten.
    PassphraseLine(PathBuf),
    /// The passphrase kept in the desktop keyring.
    KeyringItem,
    /// systemd's user manager stopped the service and disabled it.
    Disabled,
    /// The link that starts the service at login, where `systemctl
    /// --user disable` would have removed it.
    StartLink(PathBuf),
    /// The unit file.
    Unit(PathBuf),
}

impl Removed {
    /// What to tell the user.
    pub fn words(&self) -> String {
        match self {
            Removed::PassphraseFile(file) => format!(
                "Overwrote and removed the service's passphrase file {}.",
                file.display()
            ),
            Removed::PassphraseLine(file) => format!(
                "Removed the passphrase from the first line of {} (overwritten); the rest of that file stays.",
                file.display()
            ),
            Removed::KeyringItem => {
                "Removed the service's passphrase from the desktop keyring.".to_owned()
            }
            Removed::Disabled => format!("Stopped and disabled the user service ({UNIT})."),
            Removed::StartLink(link) => format!("Removed {}.", link.display()),
            Removed::Unit(path) => format!("Removed the unit {}.", path.display()),
        }
    }
}

/// A piece of the user service of a wiped profile that is still there
/// ([`ProfileService`]). The wipe stands: the profile is destroyed;
/// what is left can give its passphrase away (to open a copy of the
/// profile that survived elsewhere) or show that Strand was used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Left {
    /// The unit systemd would run could not be read: whether it ran the
    /// wiped profile, and where it read the passphrase, is not known.
    #[error("the unit {} could not be read, so whether it ran the wiped profile is not known", .path.display())]
    UnreadableUnit {
        /// The unit file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A unit that may have run the wiped profile, but what it runs
    /// cannot be told from its file ([`Installed::unsure`]): nothing of it
    /// was touched.
    #[error("whether the service's unit {} ran the wiped profile cannot be told from it ({why}), so nothing of it was touched", .path.display())]
    Unsure {
        /// The unit file.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// The desktop keyring did not remove the passphrase.
    #[error("the service's passphrase stays in the desktop keyring")]
    Keyring {
        /// The profile, as the item names it.
        profile: PathBuf,
        /// Why.
        #[source]
        source: KeyringError,
    },
    /// The passphrase file could not be overwritten or removed.
    #[error("the service's passphrase file {} could not be overwritten and removed", .file.display())]
    File {
        /// The file the unit names.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The passphrase file belongs to another user: Strand leaves it be.
    #[error("the service's passphrase file {} belongs to another user, so Strand left it as it is", .0.display())]
    NotYours(PathBuf),
    /// systemd's user manager did not stop and disable the service.
    #[error("systemd's user manager did not stop and disable strand.service ({why})")]
    Systemd {
        /// Its words.
        why: String,
        /// The link that starts it at login, if it could not be removed.
        link: Option<PathBuf>,
    },
    /// The unit file could not be removed.
    #[error("the unit {} could not be removed", .path.display())]
    Unit {
        /// The unit file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// systemd's user manager did not reload its units after the unit
    /// file was removed: it remembers the unit until it does.
    #[error("systemd's user manager did not reload its units ({why})")]
    Reload {
        /// Its words.
        why: String,
    },
    /// The unit is one for every user (the package's, or an
    /// administrator's): a wipe removes only the user's own.
    #[error("the unit {} stays: it is installed for every user (by the package or an administrator), and a wipe removes only units in your own folder", .0.display())]
    SystemUnit(PathBuf),
}

impl Left {
    /// How the user removes it by hand.
    pub fn fix(&self) -> String {
        match self {
            Left::Unsure { .. } => format!(
                "read it (`systemctl --user cat {UNIT}`): if it ran the wiped profile, run `systemctl --user disable --now {UNIT}`, remove the passphrase it reads (`shred -u FILE` for the file after --passphrase-file; for --passphrase-keyring, `secret-tool clear application strand profile DIR`) and the unit"
            ),
            Left::UnreadableUnit { path, .. } => format!(
                "read it (`sudo cat {}`): if it ran the wiped profile, run `systemctl --user disable --now {UNIT}`, remove the passphrase it reads (`shred -u FILE` for the file after --passphrase-file; for --passphrase-keyring, `secret-tool clear application strand profile DIR`) and the unit",
                path.display()
            ),
            Left::Keyring { profile, .. } => format!(
                "in your desktop session, with the keyring unlocked, run `secret-tool clear application strand profile {}`, or delete the item \"Strand passphrase for {}\" in your keyring's app (Seahorse, KWalletManager)",
                profile.display(),
                profile.display()
            ),
            Left::File { file, .. } => format!(
                "`shred -u {}` (if the file holds more than the passphrase, remove only its first line)",
                file.display()
            ),
            Left::NotYours(file) => format!(
                "ask its owner to remove it (`shred -u {}`)",
                file.display()
            ),
            Left::Systemd { link: Some(link), .. } => format!(
                "in your desktop session, run `systemctl --user stop {UNIT}`, and `rm {}` (it starts the service at login)",
                link.display()
            ),
            Left::Systemd { link: None, .. } => format!(
                "if it still runs in your desktop session, run `systemctl --user stop {UNIT}` there"
            ),
            Left::Unit { path, .. } => format!(
                "`rm {}`, then `systemctl --user daemon-reload`",
                path.display()
            ),
            Left::Reload { .. } => "run `systemctl --user daemon-reload` (logging out does too)".to_owned(),
            Left::SystemUnit(_) => "uninstall the package, or ask the administrator who put it there (disabled, it starts nothing for you meanwhile)".to_owned(),
        }
    }

    /// The whole warning, for after "Wiped": what is left, and how to
    /// remove it.
    pub fn warning(&self) -> String {
        format!(
            "Left after the wipe: {}. To remove it: {}.",
            crate::chain(self),
            self.fix()
        )
    }
}

/// What became of the user service that ran a wiped profile
/// ([`ProfileService`]).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Forgotten {
    /// What was removed, in the order it was.
    pub removed: Vec<Removed>,
    /// What is left, each with how to remove it by hand.
    pub left: Vec<Left>,
}

/// After a wipe destroyed a profile (`strand wipe`, the app's settings:
/// each finds the service before [`crate::wipe::wipe`], and removes it
/// once that returned, never before), removes the user service that ran
/// it, if one did: what it
/// keeps is that profile's passphrase, which opens any copy of the
/// profile that outlived the wipe (a backup, a snapshot, blocks a flash
/// drive remapped), and a unit that names the profile and would start a
/// node on a profile that is gone.
///
/// Which service comes from the unit systemd runs ([`Installed`]: the
/// user's own, else one for every user), and only if it runs this
/// profile. The secret goes first, then the service:
///
/// 1. its passphrase: the desktop keyring's item (Strand put it there);
///    or the file after `--passphrase-file`, if it belongs to the user:
///    overwritten with random bytes, flushed, and deleted; through a
///    symbolic link, the file it points at (the secret is there), then
///    the link. A file that holds more than the passphrase (lines after
///    the first, which `--passphrase-file` does not read) loses its first
///    line only: the rest goes into a new file renamed over it, then the
///    old one, still open, is overwritten;
/// 2. `systemctl --user disable --now`, and the link that starts it at
///    login if that left it;
/// 3. the unit file, if it is the user's own (then `daemon-reload`). One
///    for every user (`/etc/systemd/user`, the package's
///    `/usr/lib/systemd/user`) stays: it is disabled for this user, and
///    [`Left::SystemUnit`] says so; if the user never turned it on and it
///    kept no passphrase, nothing of it is touched or said.
///
/// Nothing here fails the wipe: each piece that could not be removed is
/// a [`Left`], with how to remove it by hand.
///
/// Which service is found before the wipe ([`ProfileService::of`]), while
/// the profile's folder and any link to it still resolve; the rest is
/// done after it ([`ProfileService::forget`]).
#[derive(Debug)]
pub enum ProfileService {
    /// No user service runs the profile.
    None,
    /// Whether one does is not known: said after the wipe.
    Unknown(Left),
    /// This unit runs it, on the profile as the unit names it.
    Runs {
        /// The unit.
        unit: Installed,
        /// The profile, as the unit names it (the keyring item's name).
        profile: PathBuf,
    },
}

impl ProfileService {
    /// The user service that runs the profile in `dir`, if one does: call
    /// it before the wipe.
    pub fn of(dir: &Path) -> ProfileService {
        let unit = match unit_in_effect() {
            Ok(Some(unit)) if unit.runs() => unit,
            Ok(_) => return ProfileService::None,
            Err((path, source)) => {
                return ProfileService::Unknown(Left::UnreadableUnit { path, source })
            }
        };
        if let Some(why) = unit.unsure {
            return ProfileService::Unknown(Left::Unsure {
                path: unit.path,
                why,
            });
        }
        // A relative `--profile` is relative to the service's folder, not
        // this process's: it is not taken for this profile.
        match unit
            .profile_dir()
            .filter(|p| p.is_absolute() && same_dir(p, dir))
        {
            Some(profile) => ProfileService::Runs { unit, profile },
            None => ProfileService::None,
        }
    }

    /// Once the wipe destroyed the profile, removes what of the service
    /// [`ProfileService::of`] found (see [`ProfileService`]).
    pub fn forget(self) -> Forgotten {
        match self {
            ProfileService::None => Forgotten::default(),
            ProfileService::Unknown(left) => Forgotten {
                removed: Vec::new(),
                left: vec![left],
            },
            ProfileService::Runs { unit, profile } => forget_unit(unit, &profile),
        }
    }
}

/// [`ProfileService::forget`] of a unit that ran the wiped `profile`.
fn forget_unit(unit: Installed, profile: &Path) -> Forgotten {
    let mut done = Forgotten::default();
    let own_dir = config_dir().map(|c| c.join("systemd").join("user"));
    let own = own_dir.as_ref().is_some_and(|d| unit.path == d.join(UNIT));
    // Where `systemctl --user enable` links it (its `WantedBy=`), the
    // user's own unit or one for every user.
    let start_link = own_dir.map(|d| d.join("default.target.wants").join(UNIT));
    let had_secret = forget_passphrase(&unit, profile, &mut done);
    let enabled = start_link.as_deref().is_some_and(is_link);
    if !own && !had_secret && !enabled {
        // A unit for every user this one never used.
        return done;
    }
    let disabled = systemctl(&["disable", "--now", UNIT]);
    // `disable` removes it; a user manager that did not answer did not.
    let mut link_left = None;
    if let Some(link) = start_link.filter(|l| is_link(l)) {
        match std::fs::remove_file(&link) {
            Ok(()) => done.removed.push(Removed::StartLink(link)),
            Err(_) => link_left = Some(link),
        }
    }
    let reload = match disabled {
        Ok(_) => {
            done.removed.push(Removed::Disabled);
            true
        }
        Err(why) => {
            done.left.push(Left::Systemd {
                why,
                link: link_left,
            });
            false
        }
    };
    if !own {
        done.left.push(Left::SystemUnit(unit.path));
        return done;
    }
    match std::fs::remove_file(&unit.path) {
        Ok(()) => done.removed.push(Removed::Unit(unit.path.clone())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => done.left.push(Left::Unit {
            path: unit.path.clone(),
            source,
        }),
    }
    // A user manager that did not answer `disable` has nothing to reload.
    if reload {
        if let Err(why) = systemctl(&["daemon-reload"]) {
            done.left.push(Left::Reload { why });
        }
    }
    done
}

/// Whether `path` is a symbolic link.
fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Step 1 of [`ProfileService`]: the service's copy of `profile`'s
/// passphrase, as `unit` names it. Whether there was one (removed or
/// left).
fn forget_passphrase(unit: &Installed, profile: &Path, done: &mut Forgotten) -> bool {
    match &unit.passphrase {
        None => false,
        Some(Passphrase::File(file)) => match destroy_passphrase_file(file) {
            Ok(None) => false,
            Ok(Some(removed)) => {
                done.removed.push(removed);
                true
            }
            Err(left) => {
                done.left.push(left);
                true
            }
        },
        // Kept under the profile as the unit names it, as `install` put it.
        Some(Passphrase::Keyring) => match super::keyring::remove(profile) {
            Ok(false) => false,
            Ok(true) => {
                done.removed.push(Removed::KeyringItem);
                true
            }
            Err(source) => {
                done.left.push(Left::Keyring {
                    profile: profile.to_path_buf(),
                    source,
                });
                true
            }
        },
    }
}

/// Destroys the passphrase in the service's passphrase `file` (step 1 of
/// [`ProfileService`]); `None` if there is no such file.
fn destroy_passphrase_file(file: &Path) -> std::result::Result<Option<Removed>, Left> {
    let failed = |source: std::io::Error| Left::File {
        file: file.to_path_buf(),
        source,
    };
    // Relative to the service's folder, which is not this process's: the
    // file it read is not known, and another one must not be destroyed.
    if !file.is_absolute() {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the unit names it by a relative path",
        )));
    }
    // Through a link, the secret is in the file it points at.
    let Some((target, meta)) = regular_target(file).map_err(failed)? else {
        return Ok(None);
    };
    if meta.uid() != crate::runtime::control::own_uid().map_err(failed)? {
        return Err(Left::NotYours(file.to_path_buf()));
    }
    // Overwriting it would overwrite what its other names hold too.
    if meta.nlink() > 1 {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it has other names (hard links), whose contents overwriting it would destroy",
        )));
    }
    let mut old = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&target)
        .map_err(failed)?;
    let mut text: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    old.read_to_end(&mut text).map_err(failed)?;
    // The line `--passphrase-file` reads, with its line ending.
    let first = text
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| i + 1);
    let rest = &text[first..];
    if rest.iter().all(u8::is_ascii_whitespace) {
        // The passphrase alone: random bytes over it, flushed, then gone.
        crate::profile::overwrite(&old).map_err(failed)?;
        drop(old);
        std::fs::remove_file(&target).map_err(failed)?;
        // A link to it would point at nothing now.
        if is_link(file) {
            let _ = std::fs::remove_file(file);
        }
        return Ok(Some(Removed::PassphraseFile(file.to_path_buf())));
    }
    // More than the passphrase: the rest replaces it, with its mode;
    // then the old one, still open, is overwritten.
    replace_file(&target, rest, meta.permissions().mode() & 0o777).map_err(failed)?;
    crate::profile::overwrite(&old).map_err(failed)?;
    Ok(Some(Removed::PassphraseLine(file.to_path_buf())))
}

/// The file a passphrase `file` names (through links) and its metadata;
/// `None` if there is none; an error if it is not a regular file (a pipe
/// or a device, such as a secret manager's FIFO or `/dev/stdin`, would
/// block a read, or give what is not the service's copy).
fn regular_target(file: &Path) -> std::io::Result<Option<(PathBuf, std::fs::Metadata)>> {
    let target = match std::fs::canonicalize(file) {
        Ok(target) => target,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = std::fs::metadata(&target)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    Ok(Some((target, meta)))
}

/// Replaces `target` by a file holding `content` with permission bits
/// `mode`: a new file beside it (created 0600, by this user), synced,
/// renamed over it, and the rename synced, so a crash leaves the old file
/// or the new one, never half of one.
fn replace_file(target: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    let folder = target.parent().unwrap_or(Path::new("/"));
    let mut fresh = tempfile::Builder::new()
        .prefix(".strand-passphrase-")
        .tempfile_in(folder)?;
    fresh.write_all(content)?;
    fresh
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    fresh.as_file().sync_all()?;
    fresh.persist(target).map_err(|e| e.error)?;
    if let Ok(folder) = std::fs::File::open(folder) {
        let _ = folder.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_reads_back_as_written() {
        let dir = Path::new("/home/a b/\"strand\" 100%$HOME");
        let file = Path::new("/home/a b/pass\\word");
        let exe = Path::new("/usr/bin/strand");
        let run = ["--no-ble".to_owned()];
        let text = unit_text(exe, dir, &Passphrase::File(file.to_path_buf()), &run);
        let unit = Installed::parse(PathBuf::from("u"), &text, None);
        assert_eq!(unit.profile.as_deref(), Some(dir));
        assert_eq!(unit.passphrase, Some(Passphrase::File(file.to_path_buf())));
        let text = unit_text(exe, dir, &Passphrase::Keyring, &run);
        let unit = Installed::parse(PathBuf::from("u"), &text, None);
        assert_eq!(unit.profile.as_deref(), Some(dir));
        assert_eq!(unit.passphrase, Some(Passphrase::Keyring));
    }

    /// Regression: the unit gave the node a /tmp of its own
    /// (`PrivateTmp=yes`), so `strand export bob --to /tmp/b.strand`
    /// through the service wrote a bundle the user never saw, and counted
    /// its envelopes handed over.
    #[test]
    fn a_service_sees_the_users_temporary_folder() {
        let run = Vec::new();
        for text in [
            unit_text(
                Path::new("/usr/bin/strand"),
                Path::new("/home/a/.local/share/strand"),
                &Passphrase::Keyring,
                &run,
            ),
            packaged_unit(Path::new("/usr/bin/strand")),
        ] {
            let sandboxed: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("PrivateTmp") || l.starts_with("TemporaryFileSystem"))
                .collect();
            assert!(sandboxed.is_empty(), "{sandboxed:?}");
        }
    }

    /// A wiped profile's folder is gone: the unit's spelling of it and
    /// the wipe's still match through a link to the folder that held it.
    #[test]
    fn a_folder_that_is_gone_is_known_through_a_link_to_its_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(same_dir(&real.join("profile"), &link.join("profile")));
        assert!(!same_dir(&real.join("profile"), &link.join("other")));
    }

    #[test]
    fn the_packaged_unit_reads_its_file_in_the_configuration_directory() {
        let text = packaged_unit(Path::new("/usr/bin/strand"));
        let unit = Installed::parse(
            PathBuf::from("u"),
            &text,
            Some(Path::new("/home/a/.config")),
        );
        assert_eq!(unit.profile, None);
        assert_eq!(
            unit.passphrase,
            Some(Passphrase::File(PathBuf::from(
                "/home/a/.config/strand/passphrase"
            )))
        );
    }
}
