//! The `strand` command line: the clap types, one function per command
//! (each one [`Device::call`] and what it prints), printing, the relay
//! server and the demo.
//!
//! Exit codes: 0 ok; 1 usage, including a value that cannot be (a name
//! that is not there, a timer out of range); 2 a runtime error. Errors
//! print as one line.

pub mod args;
mod commands;
mod demo;
pub mod keyring;
mod manual;
pub(crate) mod print;
mod progress;
mod relay;
pub mod service;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use zeroize::Zeroizing;

use crate::runtime::api::{Failure, FailureKind};
use crate::runtime::device::Device;
use crate::runtime::starting::Starting;
use crate::{KdfParams, Profile, ProfileError};
use args::TransportArgs;

/// Strand: a peer-to-peer, offline-first messenger.
#[allow(missing_docs)] // clap takes the doc comments as help text
#[derive(Parser, Debug)]
#[command(
    name = "strand",
    version,
    about = "Strand: a peer-to-peer, offline-first messenger",
    long_about = None
)]
pub struct Cli {
    /// Profile directory [default: the platform's data directory]
    #[arg(long, global = true, env = "STRAND_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Print JSON instead of text, for scripts (and no progress bars): every command on a profile but init, run, wipe and service install|remove, which print text only and refuse it
    #[arg(long, global = true)]
    pub json: bool,
    /// Read the passphrase from this file's first line (for scripts; keep the file private) instead of STRAND_PASSPHRASE or the terminal; read only when a command needs the passphrase (not by wipe, say)
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Read the passphrase from the desktop keyring (Secret Service), where `strand service install --keyring` put it
    #[arg(long, global = true, conflicts_with = "passphrase_file")]
    pub passphrase_keyring: bool,
    /// More logging (-v, -vv)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// More on `strand service` (`--help`, and its man page).
const SERVICE_HELP: &str = "\
`strand --passphrase-file FILE service install` (or `strand service install --keyring`, the passphrase in the desktop keyring) writes a unit of your own to ~/.config/systemd/user/strand.service and starts it. \
The Debian package also installs one for every user, in /usr/lib/systemd/user: it runs `strand run` on the default profile with \
the passphrase in ~/.config/strand/passphrase (mode 0600), and starts at login once turned on with \
`systemctl --user enable --now strand`. A passphrase in a file is readable by anything running as you: see docs/guide/service.md. \
`strand service remove` and `status` act on the profile the unit runs (there is one unit, whatever profile it runs: \
`remove` refuses --profile); after `strand passphrase`, the service's copy of the passphrase (keyring item, or a file whose first line is the old passphrase) takes the new one; \
`strand wipe` of the profile the service runs removes its passphrase (keyring item, or file, overwritten) and its unit too.";

#[allow(missing_docs)] // clap takes the doc comments as help text
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a profile: a new identity, locked by a passphrase
    Init {
        /// Your display name, shown to people you invite
        #[arg(long)]
        name: String,
        /// Take a passphrase the strength check calls weak (scripts, tests)
        #[arg(long)]
        allow_weak: bool,
    },
    /// Change the passphrase that unlocks this profile (asks for the current one, then the new one twice); the user service's copy (desktop keyring or passphrase file) follows
    Passphrase {
        /// Read the new passphrase from the first line of this file instead of asking
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
        /// Take a new passphrase the strength check calls weak
        #[arg(long)]
        allow_weak: bool,
    },
    /// Print your invite code (give it to the people you want to talk to)
    Invite,
    /// Add a contact from their invite code
    Add {
        /// Their invite code (strand1…)
        code: String,
        /// The name you give them
        #[arg(long)]
        name: String,
    },
    /// List your contacts, and which you verified
    Contacts,
    /// Show your display name, or change it: `strand name NEW_NAME` (invites made from then on carry it and your groups see it; contacts keep the names they gave you)
    Name {
        /// Your new name; shows the current one if absent
        new_name: Option<String>,
    },
    /// Give a contact another name: `strand rename-contact NAME NEW_NAME` (only you see it; your conversation stays)
    RenameContact {
        /// The contact's name now
        name: String,
        /// The name to give them
        new_name: String,
    },
    /// Delete a contact and your conversation with them (they are not told; your groups keep them). Asks you to type their name, unless --yes
    DeleteContact {
        /// The contact's name
        name: String,
        /// Do not ask: delete at once
        #[arg(long)]
        yes: bool,
    },
    /// Show the safety number you and a contact compare (in person, or over a channel you trust); --confirm once they match
    Verify {
        /// Contact name
        name: String,
        /// The numbers match: mark the contact verified
        #[arg(long, conflicts_with = "unconfirm")]
        confirm: bool,
        /// Take the verified mark back
        #[arg(long)]
        unconfirm: bool,
    },
    /// Send a message (the text, or standard input), or a file with --file
    Send {
        /// Contact name
        name: String,
        /// The text; read from standard input if absent
        text: Option<String>,
        /// Send this file (up to 256 MiB) instead of a text
        #[arg(long, conflicts_with = "text")]
        file: Option<PathBuf>,
    },
    /// Save a received file into a folder: `strand save ID DIR` (the id from `strand read`)
    Save {
        /// The file message's id (its first 8 or more hex digits)
        id: String,
        /// The folder to write it into
        dir: PathBuf,
    },
    /// Write everything shared with a contact into one encrypted file for a
    /// removable drive, which only they can open: `strand export NAME --to FILE`
    Export {
        /// Contact name
        name: String,
        /// The new file (an existing file is never replaced)
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Take in a file a contact wrote for you with `strand export`: safe to
    /// repeat; a changed or foreign file is refused and nothing is stored
    Import {
        /// The file your contact's `strand export` wrote (on a drive, say)
        file: PathBuf,
    },
    /// Show the conversation with a contact
    Read {
        /// Contact name
        name: String,
        /// Keep printing new messages as they arrive (needs `strand run`)
        #[arg(long)]
        follow: bool,
    },
    /// Show or set how long messages with a contact last: `off`, or 5 minutes to a year, such as 5m, 1h, 1d, 1w, 1y (messages written from then on disappear on every device)
    Timer {
        /// Contact name
        name: String,
        /// The new timer; shows the current one if absent
        #[arg(allow_hyphen_values = true)]
        set: Option<String>,
    },
    /// Private groups: `strand group create|list|members|add|remove|admin|leave|send|read|timer`
    Group {
        #[command(subcommand)]
        action: GroupCmd,
    },
    /// Run the node in the foreground: sync with contacts over every transport
    Run {
        #[command(flatten)]
        transports: TransportArgs,
        /// Print nothing of what arrives (no names of contacts or files) and log warnings only, which name no one: for a service, whose output the journal keeps (`strand service install` sets it)
        #[arg(long)]
        quiet: bool,
    },
    /// Carry sealed messages for your contacts (they cannot be read, and who they are for is hidden): `strand carry on|off`; shows what you carry if no argument
    Carry {
        /// on or off
        set: Option<OnOff>,
    },
    /// Your mailbox: a device you own (an old laptop at home) that holds sealed messages for you while you are away: `strand mailbox init CODE` on it, then `strand mailbox add CODE` here; shows the pairing if no command
    Mailbox {
        #[command(subcommand)]
        action: Option<MailboxAction>,
    },
    /// What the desktop app's notifications show, and which conversations stay quiet: `strand notifications --mute Bob`, `--text show`, `--names hide`; shows the settings if no option
    Notifications {
        /// Show or hide the message text in notifications (hidden at first: only who wrote shows, so nothing of a message shows on a locked screen)
        #[arg(long, value_enum)]
        text: Option<ShowHide>,
        /// Show or hide who wrote, and in which group, in notifications (shown at first; hidden, a notification says only that a message came, so a locked screen shows no one's name)
        #[arg(long, value_enum)]
        names: Option<ShowHide>,
        /// Mute a contact's conversation (a group's, with --group)
        #[arg(long, value_name = "NAME")]
        mute: Option<String>,
        /// Unmute a contact's conversation (a group's, with --group)
        #[arg(long, value_name = "NAME", conflicts_with = "mute")]
        unmute: Option<String>,
        /// --mute and --unmute name a private group
        #[arg(long)]
        group: bool,
    },
    /// How much of the time Bluetooth LE scans for contacts nearby (the battery setting): `strand bluetooth --scan saver`; shows the setting if no option
    Bluetooth {
        /// always (contacts nearby meet in seconds, the most battery), balanced (the default: scan 2 s in every 10) or saver (scan 1 s in every 30)
        #[arg(long, value_name = "SETTING", value_parser = duty_setting())]
        scan: Option<strand_transport::ble::duty::Duty>,
    },
    /// Show identity, transports, relays, and contacts seen
    Status,
    /// Run the node as a systemd user service, started at login: `strand service install|remove|status`
    #[command(after_long_help = SERVICE_HELP)]
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Write the man pages, shell completions and systemd user unit a package installs into DIR (packaging)
    #[command(hide = true)]
    Manual {
        /// The folder to write them into (created if missing)
        dir: PathBuf,
        /// Where the package puts `strand` (the unit runs it)
        #[arg(long, default_value = "/usr/bin/strand")]
        exe: PathBuf,
    },
    /// Destroy this profile for good (keys first, then every file), then the user service that ran it (its passphrase, file or keyring item, and its unit); stops a running node. Asks you to type the folder's name, unless --yes
    Wipe {
        /// Do not ask: wipe at once
        #[arg(long)]
        yes: bool,
    },
    /// Run a relay (no profile needed), or manage your relays: `strand relay add|list|remove`
    #[command(args_conflicts_with_subcommands = true)]
    Relay {
        #[command(subcommand)]
        action: Option<RelayAction>,
        #[command(flatten)]
        server: RelayServerArgs,
    },
    /// Two throwaway nodes on this machine become contacts and chat over the real LAN transport on loopback
    Demo {
        /// Messages each way
        #[arg(long, default_value_t = 5)]
        messages: usize,
    },
}

#[allow(missing_docs)] // clap takes the doc comments as help text
#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Create a group of you and some of your contacts (each gets a welcome when you next meet)
    Create {
        /// The group's name
        name: String,
        /// Contacts to add, comma-separated
        #[arg(long, value_delimiter = ',', required = true)]
        with: Vec<String>,
    },
    /// List your groups, with members and unread messages
    List,
    /// Show a group's members (names other members gave are marked unverified)
    Members {
        /// Group name (or the id `strand group list` shows)
        group: String,
    },
    /// Add one of your contacts to a group
    Add {
        /// Group name
        group: String,
        /// Contact name
        contact: String,
    },
    /// Remove a member (admins only): they cannot read what is written after
    Remove {
        /// Group name
        group: String,
        /// Member name, as `strand group members` shows it
        member: String,
    },
    /// Make a member an admin (the creator only)
    Admin {
        /// Group name
        group: String,
        /// Member name
        member: String,
    },
    /// Leave a group: you keep what you have, and read nothing written after
    Leave {
        /// Group name
        group: String,
    },
    /// Send a message to a group (the text, or standard input), or a file with --file
    Send {
        /// Group name
        group: String,
        /// The text; read from standard input if absent
        text: Option<String>,
        /// Send this file (up to 256 MiB) instead of a text
        #[arg(long, conflicts_with = "text")]
        file: Option<PathBuf>,
    },
    /// Show a group's conversation
    Read {
        /// Group name
        group: String,
    },
    /// Show or set how long the group's messages last (admins set it): `off`, or 5 minutes to a year, such as 5m, 1h, 1d, 1w, 1y
    Timer {
        /// Group name
        group: String,
        /// The new timer; shows the current one if absent
        #[arg(allow_hyphen_values = true)]
        set: Option<String>,
    },
}

#[allow(missing_docs)] // clap takes the doc comments as help text
#[derive(Subcommand, Debug)]
pub enum MailboxAction {
    /// On the mailbox device: make this profile the mailbox of the owner whose invite code this is (`strand invite` on their device); prints the code to pair it there
    Init {
        /// The owner's invite code
        code: String,
    },
    /// On your device: pair the mailbox whose code `strand mailbox init` printed
    Add {
        /// The mailbox's code
        code: String,
    },
}

#[allow(missing_docs)] // clap takes the doc comments as help text
#[derive(Subcommand, Debug)]
pub enum RelayAction {
    /// Add a relay to your profile: you keep a slot there, and your contacts learn to reach you through it
    Add {
        /// The relay's address, ending in its id (`strand relay` prints it), e.g. /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…
        address: String,
    },
    /// List your relays and the reservations on them
    List,
    /// Remove a relay from your profile
    Remove {
        /// The relay's address, as `strand relay list` shows it
        address: String,
    },
}

/// How `strand relay` runs a relay.
#[derive(clap::Args, Debug)]
pub struct RelayServerArgs {
    /// Address to listen on (repeatable) [default: all interfaces, TCP and QUIC, port 4001]
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<strand_transport::Multiaddr>,
    /// The address clients reach the relay at, if not where it listens (repeatable): behind port forwarding, the router's public address
    #[arg(long, value_name = "MULTIADDR", value_parser = args::relay_announce)]
    pub announce: Vec<strand_transport::Multiaddr>,
    /// File holding the relay's key, so its id (part of its address) survives restarts; created if missing [default: ~/.local/share/strand-relay/key on Linux: the platform's data directory for strand-relay]
    #[arg(long, value_name = "FILE", conflicts_with = "ephemeral")]
    pub key: Option<PathBuf>,
    /// A new key (and id) every run, stored nowhere
    #[arg(long)]
    pub ephemeral: bool,
    /// Most reservations held at once (1 to 1,000,000); a device holds two for some minutes around each turn of the hour, so allow two per device served
    #[arg(long, value_name = "N", default_value_t = strand_transport::relay::server::MAX_RESERVATIONS, value_parser = relay_slots())]
    pub max_reservations: usize,
    /// Most circuits open at once (1 to 1,000,000)
    #[arg(long, value_name = "N", default_value_t = strand_transport::relay::server::MAX_CIRCUITS, value_parser = relay_slots())]
    pub max_circuits: usize,
    /// Seconds a circuit may last
    #[arg(long, value_name = "SECONDS", default_value_t = strand_transport::relay::server::CIRCUIT_DURATION.as_secs())]
    pub circuit_duration: u64,
    /// Bytes a circuit may carry, both ways together, before the relay resets it (0: no limit)
    #[arg(long, value_name = "BYTES", default_value_t = strand_transport::relay::server::CIRCUIT_BYTES)]
    pub circuit_bytes: u64,
    /// New reservations one IP address may make at once (then one every 30 s; at least 1)
    #[arg(long, value_name = "N", default_value_t = strand_transport::relay::server::RESERVATIONS_PER_IP_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub reservations_per_ip: u32,
    /// New circuits one IP address may open at once (then one every 10 s; at least 1)
    #[arg(long, value_name = "N", default_value_t = strand_transport::relay::server::CIRCUITS_PER_IP_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    pub circuits_per_ip: u32,
    /// Connections one IP address may hold, and open at once (1 to 1,000,000)
    #[arg(long, value_name = "N", default_value_t = strand_transport::relay::server::CONNECTIONS_PER_IP, value_parser = relay_slots())]
    pub connections_per_ip: usize,
}

/// The most reservations, circuits, or connections from one IP address,
/// `strand relay` may be told to hold: each holds a connection (a file
/// descriptor, of which a process gets about a million at most) and some
/// 40 KiB of memory (`docs/benchmarks.md`), so a million is already some
/// 40 GiB.
const MAX_RELAY_SLOTS: u64 = 1_000_000;

/// `--max-reservations`, `--max-circuits` and `--connections-per-ip`: 1
/// to [`MAX_RELAY_SLOTS`]. None may be 0: a relay that holds nothing
/// (with `--connections-per-ip 0`, no connection from anywhere) would
/// start, print its limits and serve no one.
fn relay_slots() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_RELAY_SLOTS)
}

/// `strand service …`.
#[allow(missing_docs)] // clap takes the doc comments as help text
#[derive(Subcommand, Debug)]
pub enum ServiceAction {
    /// Write the user unit, enable it (it starts at login) and start it (needs --passphrase-file FILE, mode 0600, or --keyring); flags after `--` go to `strand run`
    Install {
        /// Only write the unit: do not enable or start it
        #[arg(long)]
        no_start: bool,
        /// Keep the passphrase in the desktop keyring (Secret Service) instead of a file: asks for it (or takes STRAND_PASSPHRASE), checks it opens the profile, and stores it there; the service then reads it with --passphrase-keyring (not needed here)
        #[arg(long)]
        keyring: bool,
        /// Flags for `strand run`, after `--` (such as `-- --no-ble`)
        #[arg(last = true)]
        run_args: Vec<String>,
    },
    /// Stop and remove the user unit, whichever profile it runs (so --profile is refused: `strand service status` shows the profile)
    Remove,
    /// Whether the unit is installed and running, and whether a node runs on the profile
    Status,
}

/// `strand bluetooth --scan`: the settings' own names, listed in the help
/// as clap lists a value enum's.
fn duty_setting() -> impl clap::builder::TypedValueParser<Value = strand_transport::ble::duty::Duty>
{
    use clap::builder::TypedValueParser as _;
    use strand_transport::ble::duty::Duty;
    clap::builder::PossibleValuesParser::new(Duty::ALL.map(Duty::name))
        .try_map(|name| name.parse::<Duty>())
}

/// `strand carry [on|off]`.
#[allow(missing_docs)] // clap takes the doc comments as help text
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// `strand notifications --text show|hide`, `--names show|hide`.
#[allow(missing_docs)] // clap takes the doc comments as help text
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowHide {
    Show,
    Hide,
}

/// What a command can end in.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The device refused or failed the request.
    #[error(transparent)]
    Failure(#[from] Failure),
    /// A usage error found here (before asking the device).
    #[error("{0}")]
    Usage(String),
    /// Anything else, with its causes.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// The exit code: 1 for usage and bad values, 2 for the rest.
    fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 1,
            CliError::Failure(f) if f.kind == FailureKind::BadInput => 1,
            _ => 2,
        }
    }

    /// The error as one line: each cause in words a person reads (an
    /// `io::Error` by [`crate::io_words`], none with the OS's error
    /// number), a cause that repeats the one before it left out
    /// ([`strand_transport::error_line`]).
    fn line(&self) -> String {
        match self {
            CliError::Other(e) => strand_transport::error_line(e.chain().map(|c| {
                let words = match c.downcast_ref::<std::io::Error>() {
                    Some(io) => crate::io_words(io),
                    None => c.to_string(),
                };
                crate::profile::error::without_os_number(&words).to_string()
            })),
            other => other.to_string(),
        }
    }
}

impl From<ProfileError> for CliError {
    fn from(e: ProfileError) -> Self {
        CliError::Failure(e.into())
    }
}

/// A command's result.
pub type Result<T> = std::result::Result<T, CliError>;

/// A usage error, formatted.
macro_rules! usage {
    ($($t:tt)*) => { $crate::cli::CliError::Usage(format!($($t)*)) };
}
pub(crate) use usage;

/// `strand`'s `main`.
pub fn main() -> ExitCode {
    crate::runtime::panics::install();
    // Taken out of the environment before any other thread exists, so
    // nothing started from here (or reading /proc/PID/environ later) sees it.
    let env_passphrase = std::env::var("STRAND_PASSPHRASE").ok().map(Zeroizing::new);
    scrub_env("STRAND_PASSPHRASE");
    std::env::remove_var("STRAND_PASSPHRASE");
    let cli = match parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(NotRun::Clap(e)) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
        Err(NotRun::Refused(e)) => {
            eprintln!("strand: {}", e.line());
            return ExitCode::from(e.code());
        }
    };
    let long_running = matches!(
        cli.command,
        Command::Run { quiet: false, .. } | Command::Relay { action: None, .. }
    );
    init_logging(cli.verbose, long_running);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strand: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli, env_passphrase)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strand: {}", e.line());
            ExitCode::from(e.code())
        }
    }
}

/// Why a command line is not run.
pub(crate) enum NotRun {
    /// Clap's own answer: a usage error, or the help or version asked for.
    Clap(clap::Error),
    /// An option the command does nothing with ([`refuse_inert_options`]).
    Refused(CliError),
}

/// The command line `args` (the program's name first), parsed as `strand`
/// parses its own: `main` runs it, and `strand service install` checks
/// the `strand run` its unit will run with it, which must not be refused
/// at every start.
pub(crate) fn parse<I, T>(args: I) -> std::result::Result<Cli, NotRun>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command()
        .try_get_matches_from(args)
        .map_err(NotRun::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(NotRun::Clap)?;
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    refuse_inert_options(&cli.command, given).map_err(NotRun::Refused)?;
    Ok(cli)
}

fn init_logging(verbose: u8, node: bool) {
    let default = match (verbose, node) {
        (0, false) => "warn",
        (0, true) => "info,libp2p=warn",
        (1, _) => "debug,libp2p=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRAND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// What every command needs.
pub(crate) struct Ctx {
    pub(crate) dir: PathBuf,
    pub(crate) json: bool,
    /// `STRAND_PASSPHRASE`, if it was set.
    env_passphrase: Option<Zeroizing<String>>,
    /// The `--passphrase-file` given, if one was: read when a passphrase
    /// is needed ([`passphrase`]), and named in the unit a service runs.
    pub(crate) passphrase_path: Option<PathBuf>,
    /// `--passphrase-keyring`: the passphrase is read from the desktop
    /// keyring when one is needed.
    pub(crate) keyring: bool,
}

impl Ctx {
    /// The profile's device: its running node, or one started offline on
    /// it (the passphrase is asked for only then).
    pub(crate) async fn device(&self) -> Result<Device> {
        // Why the passphrase could not be had, kept whole: the device
        // only takes its words, and its exit code (1 for a usage error,
        // such as an empty passphrase file) would be lost with the rest.
        let mut unread = None;
        let opened = Device::open(&self.dir, || {
            passphrase(self, false).map_err(|e| {
                let line = e.line();
                unread = Some(e);
                line
            })
        })
        .await;
        match (opened, unread) {
            (Ok(device), _) => Ok(device),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(CliError::Other(anyhow::Error::new(e))),
        }
    }
}

/// The global options that do nothing for `command`: given on the
/// command line, they are refused rather than ignored (from the
/// environment, as `STRAND_PROFILE`, they are left alone). A script that
/// asks for JSON from a command that prints text, or names a profile
/// that a command does not act on, is told so before anything is done,
/// not after (`strand --json wipe --yes` wiped, then printed text).
///
/// A passphrase given to a command that opens a profile and needs none
/// (`strand wipe`, `service remove`, any command while a node runs) is
/// not refused: it is offered, not asked for, as `STRAND_PASSPHRASE` is,
/// and the file is read only if a passphrase is needed ([`passphrase`]).
fn refuse_inert_options(command: &Command, given: impl Fn(&str) -> bool) -> Result<()> {
    const PROFILE: [&str; 4] = ["profile", "passphrase_file", "passphrase_keyring", "json"];
    const TEXT: &str = "it prints text only";
    const RUN: &str = "it prints text only: its addresses, and what arrives";
    const ONE_UNIT: &str =
        "it removes the one user unit, strand.service, whichever profile that runs (`strand service status` shows which)";
    // Each option refused, and why.
    let all = |why: &'static str| PROFILE.map(|id| (id, why)).to_vec();
    let json = |why: &'static str| vec![("json", why)];
    let (name, inert): (&str, Vec<(&str, &str)>) = match command {
        Command::Relay { action: None, .. } => ("relay", all("a relay opens no profile")),
        Command::Demo { .. } => ("demo", all("the demo makes throwaway profiles of its own")),
        Command::Manual { .. } => ("manual", all("it writes a package's files")),
        Command::Init { .. } => ("init", json(TEXT)),
        Command::Run { .. } => ("run", json(RUN)),
        Command::Wipe { .. } => ("wipe", json(TEXT)),
        Command::Service {
            action: ServiceAction::Install { .. },
        } => ("service install", json(TEXT)),
        Command::Service {
            action: ServiceAction::Remove,
        } => (
            "service remove",
            vec![("profile", ONE_UNIT), ("json", TEXT)],
        ),
        _ => return Ok(()),
    };
    match inert.into_iter().find(|(id, _)| given(id)) {
        Some((id, why)) => Err(usage!(
            "--{} does nothing for `strand {name}`: {why}",
            id.replace('_', "-")
        )),
        None => Ok(()),
    }
}

async fn dispatch(cli: Cli, env_passphrase: Option<Zeroizing<String>>) -> Result<()> {
    // These open no profile: nothing below is theirs to resolve or read.
    match cli.command {
        Command::Relay {
            action: None,
            server,
        } => return relay::serve(&server).await,
        Command::Demo { messages } => return demo::demo(messages).await,
        Command::Manual { dir, exe } => return manual::write(&dir, &exe),
        _ => {}
    }
    let dir = match &cli.profile {
        Some(p) => p.clone(),
        None => crate::default_profile_dir()
            .ok_or_else(|| CliError::Usage("no home directory: pass --profile DIR".into()))?,
    };
    let ctx = Ctx {
        dir,
        json: cli.json,
        env_passphrase,
        passphrase_path: cli.passphrase_file.clone(),
        keyring: cli.passphrase_keyring,
    };
    commands::run(&ctx, cli.command).await
}

/// Overwrites the value of `name` in the process's initial environment
/// block, which `remove_var` leaves in memory (and Linux shows in
/// `/proc/PID/environ` to the same user). Runs before any thread starts.
#[cfg(target_os = "linux")]
fn scrub_env(name: &str) {
    use std::os::raw::c_char;
    extern "C" {
        static mut environ: *mut *mut c_char;
    }
    let prefix = format!("{name}=");
    // SAFETY: single-threaded at this point (called first thing in main);
    // `environ` is a null-terminated array of null-terminated strings, and
    // only bytes inside one string, before its terminator, are written.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let s = *entry;
            let bytes = std::ffi::CStr::from_ptr(s).to_bytes();
            if bytes.starts_with(prefix.as_bytes()) {
                let len = bytes.len();
                std::ptr::write_bytes(s.add(prefix.len()), b'x', len - prefix.len());
            }
            entry = entry.add(1);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn scrub_env(_: &str) {}

/// The longest first line a passphrase file may hold, in bytes: far
/// more than any passphrase anyone types, and a bound on what is read
/// from a file that never ends (`/dev/zero`, a pipe left open), which
/// would otherwise be read until memory runs out.
const MAX_PASSPHRASE_LINE: u64 = 64 * 1024;

/// The first line of `file`, without its line ending; refused if longer
/// than [`MAX_PASSPHRASE_LINE`] (of which one byte more is all it reads).
pub(crate) fn passphrase_from_file(file: &Path) -> Result<Zeroizing<String>> {
    use std::io::Read as _;
    let reading = || format!("reading the passphrase file {}", file.display());
    // Room for all that is read, so it is never copied (and the copy
    // left behind unzeroed) as it grows.
    let mut bytes: Zeroizing<Vec<u8>> =
        Zeroizing::new(Vec::with_capacity(MAX_PASSPHRASE_LINE as usize + 1));
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_PASSPHRASE_LINE + 1).read_to_end(&mut bytes))
        .with_context(reading)?;
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None if bytes.len() as u64 > MAX_PASSPHRASE_LINE => {
            return Err(usage!(
                "the passphrase file {} is too long: its first line, the passphrase, goes on past {} KiB",
                file.display(),
                MAX_PASSPHRASE_LINE / 1024
            ))
        }
        None => &bytes[..],
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        .with_context(reading)?;
    if line.is_empty() {
        return Err(usage!("the passphrase file {} is empty", file.display()));
    }
    Ok(Zeroizing::new(line.to_owned()))
}

/// The passphrase: given (file, environment or keyring), or typed in the
/// terminal. The file is read here, when a command needs the passphrase,
/// not before the command runs: one that needs none (`strand wipe`) does
/// not fail on a passphrase file that is gone.
pub(crate) fn passphrase(ctx: &Ctx, confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(file) = &ctx.passphrase_path {
        return passphrase_from_file(file);
    }
    if let Some(p) = &ctx.env_passphrase {
        return Ok(p.clone());
    }
    if ctx.keyring {
        return keyring::passphrase(&ctx.dir).map_err(|e| CliError::Other(anyhow::Error::new(e)));
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage!(
            "no passphrase: use --passphrase-file, set STRAND_PASSPHRASE, or run in a terminal"
        ));
    }
    typed_passphrase("passphrase", confirm)
}

/// A passphrase typed in the terminal at the prompt `label` ("passphrase",
/// "new passphrase"); with `confirm`, typed twice, and refused if the two
/// differ.
pub(crate) fn typed_passphrase(label: &str, confirm: bool) -> Result<Zeroizing<String>> {
    let mut prompt: String = label[..1].to_uppercase();
    prompt.push_str(&label[1..]);
    let p = Zeroizing::new(
        rpassword::prompt_password(format!("{prompt}: ")).context("reading the passphrase")?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password(format!("{prompt} again: "))
                .context("reading the passphrase")?,
        );
        if again != p {
            return Err(usage!("the {label}s do not match"));
        }
    }
    Ok(p)
}

/// Opens the profile for `strand run`, marked as having a node starting
/// from the moment the open holds it ([`Starting::open`]).
fn open_profile_to_run(ctx: &Ctx) -> Result<(Profile, Starting)> {
    if !Profile::exists(&ctx.dir) {
        return Err(ProfileError::NotFound(ctx.dir.clone()).into());
    }
    Ok(Starting::open(&ctx.dir, &passphrase(ctx, false)?)?)
}

/// The Argon2id parameters for a new profile: calibrated on this device.
/// (Test builds may ask for cheap ones, so that the CLI tests run fast.)
fn new_profile_kdf() -> KdfParams {
    #[cfg(feature = "insecure-kdf")]
    if std::env::var_os("STRAND_INSECURE_KDF_FOR_TESTS").is_some() {
        return KdfParams::insecure_for_tests();
    }
    KdfParams::calibrate()
}

#[cfg(test)]
mod tests {
    use super::CliError;

    /// An error whose text is its inner error's, as libp2p's layers
    /// pass one on, with that error as its source.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Passed(#[source] std::io::Error);

    /// An error with no text of its own, as libp2p's `TransportError::Other`.
    #[derive(Debug, thiserror::Error)]
    #[error("")]
    struct Silent(#[source] std::io::Error);

    /// A start that failed on a held port printed "cannot listen on X: :
    /// Address already in use (os error 98): Address already in use":
    /// every layer of the error said it again, or said nothing. Now the
    /// line says it once, without the OS's number. (Fails before: the
    /// line joined every cause.)
    #[test]
    fn an_error_line_says_a_repeated_cause_once() {
        // The system's own error, on loopback: a port a socket holds.
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let os = std::net::TcpListener::bind(holder.local_addr().unwrap()).unwrap_err();
        assert_eq!(os.kind(), std::io::ErrorKind::AddrInUse);
        let layered = Silent(std::io::Error::other(Passed(os)));
        let e = CliError::Other(anyhow::Error::new(layered).context("cannot listen on X"));
        let line = e.line();
        assert_eq!(line.matches("in use").count(), 1, "{line}");
        assert!(line.starts_with("cannot listen on X: "), "{line}");
        assert!(!line.contains("os error"), "{line}");
        assert!(!line.contains(": :"), "{line}");

        // `strand::chain` (the node's other one-line form) the same.
        let held = std::net::TcpListener::bind(holder.local_addr().unwrap()).unwrap_err();
        let chained = crate::chain(&Silent(std::io::Error::other(Passed(held))));
        assert_eq!(chained.matches("in use").count(), 1, "{chained}");
    }
}
