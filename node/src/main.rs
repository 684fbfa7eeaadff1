//! `strand`: the Strand command line, one function per command.
//!
//! Exit codes: 0 ok, 1 usage, 2 runtime error (with a one-line message).

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use strand_node::args::TransportArgs;
use strand_node::control::{self, ContactView, MessageView, Request};
use strand_node::display;
use strand_node::{
    now, os_rng, KdfParams, Node, NodeConfig, NodeEvent, Profile, ProfileError, RelayStatus, Status,
};
use strand_transport::LanConfig;
use zeroize::Zeroizing;

/// Strand: a peer-to-peer, offline-first messenger.
#[derive(Parser, Debug)]
#[command(name = "strand", version, about, long_about = None)]
struct Cli {
    /// Profile directory [default: the platform's data directory]
    #[arg(long, global = true, env = "STRAND_PROFILE")]
    profile: Option<PathBuf>,
    /// Print JSON (contacts, read, status)
    #[arg(long, global = true)]
    json: bool,
    /// Read the passphrase from this file's first line (for scripts; keep the file private) instead of STRAND_PASSPHRASE or the terminal
    #[arg(long, global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// More logging (-v, -vv)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a profile: a new identity, locked by a passphrase
    Init {
        /// Your display name, shown to people you invite
        #[arg(long)]
        name: String,
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
        #[arg(long)]
        to: PathBuf,
    },
    /// Take in a file a contact wrote for you with `strand export`: safe to
    /// repeat; a changed or foreign file is refused and nothing is stored
    Import {
        /// The file
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
    /// Show or set how long messages with a contact last: `off`, or such as 5m, 1h, 1d, 1w, 1y (messages written from then on disappear on every device)
    Timer {
        /// Contact name
        name: String,
        /// The new timer; shows the current one if absent
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
    },
    /// Carry sealed messages for your contacts (they cannot be read, and who they are for is hidden): `strand carry on|off`; shows what you carry if no argument
    Carry {
        /// on or off
        set: Option<OnOff>,
    },
    /// Your mailbox: a device you own (an old laptop at home) that holds sealed messages for you while you are away: `strand mailbox init CODE` on it, then `strand mailbox add CODE` here; shows the pairing if no argument
    Mailbox {
        #[command(subcommand)]
        action: Option<MailboxAction>,
    },
    /// Show identity, transports, relays, and contacts seen
    Status,
    /// Destroy this profile for good (keys first, then every file); stops a running node. Asks you to type the folder's name, unless --yes
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

#[derive(Subcommand, Debug)]
enum GroupCmd {
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
    /// Show or set how long the group's messages last (admins set it): `off`, or such as 5m, 1h, 1d, 1w, 1y
    Timer {
        /// Group name
        group: String,
        /// The new timer; shows the current one if absent
        set: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum MailboxAction {
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

#[derive(Subcommand, Debug)]
enum RelayAction {
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
struct RelayServerArgs {
    /// Address to listen on (repeatable) [default: all interfaces, TCP and QUIC, port 4001]
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<strand_transport::Multiaddr>,
    /// The address clients reach the relay at, if not where it listens (repeatable): behind port forwarding, the router's public address
    #[arg(long, value_name = "MULTIADDR")]
    announce: Vec<strand_transport::Multiaddr>,
    /// File holding the relay's key, so its id (part of its address) survives restarts; created if missing [default: the platform's data directory]
    #[arg(long, value_name = "FILE", conflicts_with = "ephemeral")]
    key: Option<PathBuf>,
    /// A new key (and id) every run, stored nowhere
    #[arg(long)]
    ephemeral: bool,
    /// Most reservations held at once
    #[arg(long, value_name = "N", default_value_t = strand_transport::relay::server::MAX_RESERVATIONS)]
    max_reservations: usize,
    /// Most circuits open at once
    #[arg(long, value_name = "N", default_value_t = strand_transport::relay::server::MAX_CIRCUITS)]
    max_circuits: usize,
    /// Seconds a circuit may last
    #[arg(long, value_name = "SECONDS", default_value_t = strand_transport::relay::server::CIRCUIT_DURATION.as_secs())]
    circuit_duration: u64,
    /// Bytes a circuit may carry, both ways together, before the relay resets it (0: no limit)
    #[arg(long, value_name = "BYTES", default_value_t = strand_transport::relay::server::CIRCUIT_BYTES)]
    circuit_bytes: u64,
    /// New reservations one IP address may make at once (then one every 30 s)
    #[arg(long, value_name = "N", default_value_t = strand_transport::relay::server::RESERVATIONS_PER_IP_BURST)]
    reservations_per_ip: u32,
    /// New circuits one IP address may open at once (then one every 10 s)
    #[arg(long, value_name = "N", default_value_t = strand_transport::relay::server::CIRCUITS_PER_IP_BURST)]
    circuits_per_ip: u32,
    /// Connections one IP address may hold (and open at once)
    #[arg(long, value_name = "N", default_value_t = strand_transport::relay::server::CONNECTIONS_PER_IP)]
    connections_per_ip: usize,
}

fn main() -> ExitCode {
    // Taken out of the environment before any other thread exists, so
    // nothing started from here (or reading /proc/PID/environ later) sees it.
    let env_passphrase = std::env::var("STRAND_PASSPHRASE").ok().map(Zeroizing::new);
    scrub_env("STRAND_PASSPHRASE");
    std::env::remove_var("STRAND_PASSPHRASE");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let long_running = matches!(
        cli.command,
        Command::Run { .. } | Command::Relay { action: None, .. }
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
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("strand: {}", chain.join(": "));
            ExitCode::from(2)
        }
    }
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
struct Ctx {
    dir: PathBuf,
    json: bool,
    /// From `--passphrase-file` or `STRAND_PASSPHRASE`, if given.
    passphrase: Option<Zeroizing<String>>,
}

async fn dispatch(cli: Cli, env_passphrase: Option<Zeroizing<String>>) -> Result<()> {
    let dir = match &cli.profile {
        Some(p) => p.clone(),
        None => strand_node::default_profile_dir()
            .ok_or_else(|| anyhow!("no home directory: pass --profile DIR"))?,
    };
    let passphrase = match &cli.passphrase_file {
        Some(file) => Some(passphrase_from_file(file)?),
        None => env_passphrase,
    };
    let ctx = Ctx {
        dir,
        json: cli.json,
        passphrase,
    };
    match cli.command {
        Command::Init { name } => init(&ctx, &name),
        Command::Invite => invite(&ctx).await,
        Command::Add { code, name } => add(&ctx, &code, &name).await,
        Command::Contacts => contacts(&ctx).await,
        Command::Verify {
            name,
            confirm,
            unconfirm,
        } => {
            verify(
                &ctx,
                &name,
                confirm.then_some(true).or(unconfirm.then_some(false)),
            )
            .await
        }
        Command::Send {
            name,
            file: Some(file),
            ..
        } => send_file(&ctx, &name, false, &file).await,
        Command::Send { name, text, .. } => send(&ctx, &name, text).await,
        Command::Save { id, dir } => save(&ctx, &id, &dir).await,
        Command::Export { name, to } => export(&ctx, &name, &to).await,
        Command::Import { file } => import(&ctx, &file).await,
        Command::Read { name, follow } => read(&ctx, &name, follow).await,
        Command::Group { action } => group(&ctx, action).await,
        Command::Timer { name, set } => timer(&ctx, &name, false, set).await,
        Command::Run { transports } => run(&ctx, &transports).await,
        Command::Carry { set } => carry(&ctx, set.map(|s| s == OnOff::On)).await,
        Command::Mailbox { action } => mailbox(&ctx, action).await,
        Command::Status => status(&ctx).await,
        Command::Wipe { yes } => wipe(&ctx, yes).await,
        Command::Relay { action, server } => match action {
            None => relay_serve(&server).await,
            Some(RelayAction::Add { address }) => relay_add(&ctx, &address).await,
            Some(RelayAction::List) => relay_list(&ctx).await,
            Some(RelayAction::Remove { address }) => relay_remove(&ctx, &address).await,
        },
        Command::Demo { messages } => demo(messages).await,
    }
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

/// The first line of `file`, without its line ending.
fn passphrase_from_file(file: &Path) -> Result<Zeroizing<String>> {
    let all = Zeroizing::new(
        std::fs::read_to_string(file)
            .with_context(|| format!("reading the passphrase file {}", file.display()))?,
    );
    let line = all.lines().next().unwrap_or("");
    if line.is_empty() {
        bail!("the passphrase file {} is empty", file.display());
    }
    Ok(Zeroizing::new(line.to_owned()))
}

/// The passphrase: given (file or environment), or typed in the terminal.
fn passphrase(ctx: &Ctx, confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(p) = &ctx.passphrase {
        return Ok(p.clone());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: use --passphrase-file, set STRAND_PASSPHRASE, or run in a terminal");
    }
    let p = Zeroizing::new(
        rpassword::prompt_password("Passphrase: ").context("reading the passphrase")?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Passphrase again: ").context("reading the passphrase")?,
        );
        if again != p {
            bail!("the passphrases do not match");
        }
    }
    Ok(p)
}

fn open_profile(ctx: &Ctx) -> Result<Profile> {
    if !Profile::exists(&ctx.dir) {
        return Err(ProfileError::NotFound(ctx.dir.clone()).into());
    }
    Ok(Profile::open(&ctx.dir, &passphrase(ctx, false)?)?)
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

/// Asks a running node; `None` if none runs on this profile.
async fn ask(dir: &Path, request: &Request) -> Result<Option<serde_json::Value>> {
    match control::request(dir, request)
        .await
        .context("talking to the running node")?
    {
        None => Ok(None),
        Some((r, _)) if r.ok => Ok(Some(r.data.unwrap_or(serde_json::Value::Null))),
        Some((r, _)) => Err(anyhow!(r
            .error
            .unwrap_or_else(|| "the node refused".into()))),
    }
}

/// `strand init`.
fn init(ctx: &Ctx, name: &str) -> Result<()> {
    if Profile::exists(&ctx.dir) {
        return Err(ProfileError::AlreadyExists(ctx.dir.clone()).into());
    }
    let pass = passphrase(ctx, true)?;
    let p = Profile::create(&ctx.dir, name, &pass, new_profile_kdf(), &mut os_rng())?;
    println!(
        "Created a profile for {} in {}",
        p.identity().name(),
        ctx.dir.display()
    );
    println!("Your invite code: {}", p.invite()?);
    Ok(())
}

/// `strand invite`.
async fn invite(ctx: &Ctx) -> Result<()> {
    let code = match ask(&ctx.dir, &Request::Invite).await? {
        Some(v) => v.as_str().unwrap_or_default().to_owned(),
        None => open_profile(ctx)?.invite()?.to_text(),
    };
    println!("{code}");
    Ok(())
}

/// `strand add`.
async fn add(ctx: &Ctx, code: &str, name: &str) -> Result<()> {
    let request = Request::Add {
        code: code.to_owned(),
        name: name.to_owned(),
    };
    let added: ContactView = match ask(&ctx.dir, &request).await? {
        Some(v) => serde_json::from_value(v)?,
        None => {
            let invite = strand_sync::Invite::from_text(code).context("bad invite code")?;
            let p = open_profile(ctx)?;
            let c = p.add_contact(&invite, name, now(), &mut os_rng())?;
            // With a mailbox: the new contact learns it, and it them.
            p.tell_mailbox(Some(&c.public), now(), &mut os_rng())?;
            ContactView::of(&p, &c)
        }
    };
    println!(
        "Added {}. They must add your invite too (`strand invite`). Then compare safety numbers: `strand verify {:?}`.",
        added.name, added.name
    );
    if let Some(other) = &added.lookalike {
        println!(
            "Careful: {:?} looks like {other:?}. Make sure you can tell them apart.",
            added.name
        );
    }
    Ok(())
}

/// `strand contacts`.
async fn contacts(ctx: &Ctx) -> Result<()> {
    let list: Vec<ContactView> = match ask(&ctx.dir, &Request::Contacts).await? {
        Some(v) => serde_json::from_value(v)?,
        None => control::contacts(&open_profile(ctx)?),
    };
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("No contacts yet. Add one with `strand add CODE --name NAME`.");
    } else {
        for c in list {
            let mark = if c.mailbox {
                "mailbox: carries sealed messages, reads nothing"
            } else if c.verified {
                "verified"
            } else if c.legacy {
                "NOT VERIFIED (old invite): run `strand verify`"
            } else {
                "not verified"
            };
            println!("{:<24} {}  {mark}", c.name, &c.key[..16]);
            if let Some(other) = &c.lookalike {
                println!("{:<24} ^ looks like {other:?}: check which is which", "");
            }
        }
    }
    Ok(())
}

/// `strand group …`: through the running node if there is one, else on
/// the profile directly (what it writes goes out at the next `strand run`).
async fn group(ctx: &Ctx, action: GroupCmd) -> Result<()> {
    match action {
        GroupCmd::Create { name, with } => {
            let request = Request::GroupCreate {
                name: name.clone(),
                with: with.clone(),
            };
            if ask(&ctx.dir, &request).await?.is_none() {
                open_profile(ctx)?.create_group(&name, &with, now(), &mut os_rng())?;
            }
            println!(
                "Created {name:?} with {}. Each gets a welcome when you next sync with them.",
                with.join(", ")
            );
        }
        GroupCmd::List => {
            let list = groups_view(ctx).await?;
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("No groups yet. Make one with `strand group create NAME --with A,B`.");
            } else {
                for g in list {
                    let mut notes = Vec::new();
                    if g.unread > 0 {
                        notes.push(format!("{} unread", g.unread));
                    }
                    if g.admin {
                        notes.push("admin".into());
                    }
                    if !g.member {
                        notes.push("you are no longer a member".into());
                    } else if let Some(why) = &g.blocked {
                        notes.push(format!("cannot write now: {why}"));
                    }
                    println!(
                        "{:<24} {}  {} members  {}",
                        g.name,
                        g.id,
                        g.members,
                        notes.join(", ")
                    );
                }
            }
        }
        GroupCmd::Members { group } => {
            let request = Request::GroupMembers {
                group: group.clone(),
            };
            let list: Vec<serde_json::Value> = match ask(&ctx.dir, &request).await? {
                Some(v) => serde_json::from_value(v)?,
                None => open_profile(ctx)?
                    .group_members(&group)?
                    .into_iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?,
            };
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for m in list {
                    let mut notes = Vec::new();
                    if m["creator"].as_bool() == Some(true) {
                        notes.push("creator".to_owned());
                    } else if m["admin"].as_bool() == Some(true) {
                        notes.push("admin".to_owned());
                    }
                    if m["verified"].as_bool() != Some(true) {
                        notes.push("unverified name (not your contact)".to_owned());
                    }
                    match m["chosen"].as_str() {
                        Some(c) if Some(c) != m["name"].as_str() => {
                            notes.push(format!("calls themselves “{}”", display::one_line(c)));
                        }
                        _ => {}
                    }
                    println!(
                        "{:<24} {}",
                        display::one_line(m["name"].as_str().unwrap_or_default()),
                        notes.join(", ")
                    );
                }
            }
        }
        GroupCmd::Add { group, contact } => {
            group_change(ctx, &group, "add", Some(contact.clone())).await?;
            println!(
                "Added {contact} to {group}; they get a welcome when you next sync with them."
            );
        }
        GroupCmd::Remove { group, member } => {
            group_change(ctx, &group, "remove", Some(member.clone())).await?;
            println!("Removed {member} from {group}: the group has a new key they do not get. What they already had, they keep.");
        }
        GroupCmd::Admin { group, member } => {
            group_change(ctx, &group, "admin", Some(member.clone())).await?;
            println!("{member} is now an admin of {group}.");
        }
        GroupCmd::Leave { group } => {
            group_change(ctx, &group, "leave", None).await?;
            let still = groups_view(ctx)
                .await?
                .into_iter()
                .any(|g| g.name == group && g.member);
            if still {
                println!(
                    "You asked to leave {group}: the first admin who syncs with the group removes you (a new key you do not get). You keep what you have."
                );
            } else {
                println!(
                    "You left {group}. You keep what you have; what is written after, you cannot read."
                );
            }
        }
        GroupCmd::Send {
            group,
            file: Some(file),
            ..
        } => send_file(ctx, &group, true, &file).await?,
        GroupCmd::Send { group, text, .. } => {
            let text = text_to_send(text)?;
            let request = Request::GroupSend {
                group: group.clone(),
                text: text.clone(),
            };
            match ask(&ctx.dir, &request).await? {
                Some(_) => println!("Sent to {group}."),
                None => {
                    open_profile(ctx)?.write_group(&group, &text, now(), &mut os_rng())?;
                    println!(
                        "Queued for {group}: it goes out when `strand run` meets its members."
                    );
                }
            }
        }
        GroupCmd::Timer { group, set } => timer(ctx, &group, true, set).await?,
        GroupCmd::Read { group } => {
            let request = Request::GroupRead {
                group: group.clone(),
            };
            let list: Vec<control::GroupMessageView> = match ask(&ctx.dir, &request).await? {
                Some(v) => serde_json::from_value(v)?,
                None => {
                    let p = open_profile(ctx)?;
                    let messages = p.group_conversation(&group)?;
                    p.mark_group_read(&group)?;
                    messages.iter().map(control::GroupMessageView::of).collect()
                }
            };
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("No messages in {group} yet.");
            } else {
                for m in list {
                    let from = display::one_line(&m.message.from);
                    let who = if m.verified {
                        from
                    } else {
                        format!("{from} (unverified)")
                    };
                    let expires = m
                        .message
                        .expires
                        .map(|e| format!("  (disappears {})", format_time(e)))
                        .unwrap_or_default();
                    let text = match &m.message.file {
                        Some(f) => file_line(f, &m.message.id),
                        None => display::lines(&m.message.text, ""),
                    };
                    let late = if m.late {
                        "  (written after they left the group; it arrived late)"
                    } else {
                        ""
                    };
                    println!(
                        "{}  {who}: {text}{expires}{late}",
                        format_time(m.message.shown)
                    );
                }
            }
        }
    }
    Ok(())
}

/// `strand send --file` and `strand group send --file`.
async fn send_file(ctx: &Ctx, name: &str, group: bool, path: &Path) -> Result<()> {
    // The node runs in its own working directory: give it the whole path.
    let path = std::path::absolute(path).with_context(|| format!("{}", path.display()))?;
    let request = Request::SendFile {
        conversation: name.to_owned(),
        group,
        path: path.display().to_string(),
    };
    match ask(&ctx.dir, &request).await? {
        Some(_) => println!("Sending {} to {name}.", path.display()),
        None => {
            let to = if group {
                strand_node::Conversation::Group(name)
            } else {
                strand_node::Conversation::Contact(name)
            };
            open_profile(ctx)?.send_file(to, &path, now(), &mut os_rng())?;
            println!(
                "Queued {} for {name}: it goes out when `strand run` meets them.",
                path.display()
            );
        }
    }
    Ok(())
}

/// `strand save`.
async fn save(ctx: &Ctx, id: &str, dir: &Path) -> Result<()> {
    let dir = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    let request = Request::Save {
        id: id.to_owned(),
        dir: dir.display().to_string(),
    };
    let path = match ask(&ctx.dir, &request).await? {
        Some(v) => v.as_str().unwrap_or_default().to_owned(),
        None => open_profile(ctx)?
            .save_file(id, &dir)?
            .display()
            .to_string(),
    };
    println!("Saved {path}");
    Ok(())
}

/// A path as the control socket carries it: UTF-8 only (any other would
/// name a different file on the node's side).
fn utf8(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{}: use a path that is valid UTF-8", path.display()))
}

/// `strand export NAME --to FILE`.
async fn export(ctx: &Ctx, name: &str, to: &Path) -> Result<()> {
    let to = std::path::absolute(to).with_context(|| format!("{}", to.display()))?;
    let request = Request::Export {
        contact: name.to_owned(),
        to: utf8(&to)?,
    };
    let done: strand_node::Exported = match ask(&ctx.dir, &request).await? {
        Some(v) => serde_json::from_value(v)?,
        None => open_profile(ctx)?.export_bundle(name, &to, now(), &mut os_rng())?,
    };
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        println!(
            "Wrote {} message(s) for {} into {} ({} bytes). Only {} can open it.",
            done.messages,
            done.contact,
            done.path.display(),
            done.bytes,
            done.contact
        );
    }
    Ok(())
}

/// `strand import FILE`.
async fn import(ctx: &Ctx, file: &Path) -> Result<()> {
    let file = std::path::absolute(file).with_context(|| format!("{}", file.display()))?;
    let request = Request::Import { path: utf8(&file)? };
    let done: serde_json::Value = match ask(&ctx.dir, &request).await? {
        Some(v) => v,
        None => {
            let profile = open_profile(ctx)?;
            let budgets = profile.budgets()?;
            serde_json::to_value(profile.import_bundle(&file, &budgets, now(), &mut os_rng())?)?
        }
    };
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        println!(
            "From {}: {} new message(s), {} already here, {} refused.",
            done["contact"].as_str().unwrap_or_default(),
            done["new"],
            done["held"],
            done["refused"]
        );
        if done["over_budget"].as_u64().unwrap_or(0) > 0 {
            println!(
                "{} message(s) declined: over your storage budget for them.",
                done["over_budget"]
            );
        }
    }
    if let Some(why) = done["incomplete"].as_str() {
        bail!("the import stopped before the end ({why}); what was stored stays: import the file again to finish");
    }
    Ok(())
}

/// `strand carry [on|off]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// `strand mailbox [init CODE | add CODE]`: through the running node, else
/// on the profile.
async fn mailbox(ctx: &Ctx, action: Option<MailboxAction>) -> Result<()> {
    let request = match &action {
        None => Request::Mailbox {
            init: None,
            add: None,
        },
        Some(MailboxAction::Init { code }) => Request::Mailbox {
            init: Some(code.trim().to_owned()),
            add: None,
        },
        Some(MailboxAction::Add { code }) => Request::Mailbox {
            init: None,
            add: Some(code.trim().to_owned()),
        },
    };
    let view: control::MailboxView = match ask(&ctx.dir, &request).await? {
        Some(v) => serde_json::from_value(v)?,
        None => {
            let p = open_profile(ctx)?;
            match &action {
                Some(MailboxAction::Init { code }) => {
                    let invite = strand_sync::Invite::from_text(code.trim())?;
                    p.become_mailbox(&invite, &p.carry_settings()?, now(), &mut os_rng())?;
                }
                Some(MailboxAction::Add { code }) => {
                    p.pair_mailbox(code.trim(), now(), &mut os_rng())?;
                }
                None => {}
            }
            control::mailbox_view(&p)?
        }
    };
    if ctx.json {
        println!("{}", serde_json::to_string(&view)?);
        return Ok(());
    }
    match (&view.owner, &view.mailbox) {
        (Some(owner), _) => {
            println!("This device is the mailbox of {owner}: it carries sealed messages for them and their contacts, and cannot read them.");
            println!("On {owner}'s device, pair it with:\n  strand mailbox add {}", view.code);
        }
        (None, Some(name)) => println!(
            "Your mailbox is paired (contact {name:?}). Your contacts learn it the next time you sync with them; messages for you wait there while you are away."
        ),
        (None, None) => println!(
            "No mailbox. On a device you own, `strand init`, then `strand mailbox init CODE` with your invite code (`strand invite`), then `strand mailbox add` here with the code it prints."
        ),
    }
    Ok(())
}

/// `strand carry`: through the running node, else on the profile.
async fn carry(ctx: &Ctx, set: Option<bool>) -> Result<()> {
    let status: strand_node::CarryStatus = match ask(&ctx.dir, &Request::Carry { set }).await? {
        Some(v) => serde_json::from_value(v)?,
        None => {
            let p = open_profile(ctx)?;
            let settings = p.carry_settings()?;
            match set {
                Some(on) => p.set_carrying(on, &settings, now(), &mut os_rng())?,
                None => p.carry_status(&settings)?,
            }
        }
    };
    if ctx.json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    if status.carrying {
        println!(
            "You carry sealed messages for your contacts: {} held ({:.2} of {:.0} MiB; the oldest go first when full, {} so far).",
            status.held,
            mib(status.held_bytes),
            mib(status.budget),
            status.evicted
        );
    } else {
        println!("You do not carry messages for your contacts (`strand carry on` to start).");
        if status.held > 0 {
            println!(
                "Still held until delivered or expired: {} ({:.2} MiB).",
                status.held,
                mib(status.held_bytes)
            );
        }
    }
    println!(
        "Contacts who carry for you: {}. Your messages on their way through them: {}. Messages that reached you this way: {}.",
        status.carriers, status.spreading, status.opened
    );
    Ok(())
}

/// `strand timer` and `strand group timer`.
async fn timer(ctx: &Ctx, name: &str, group: bool, set: Option<String>) -> Result<()> {
    // Checked here too, so that bad input never reaches a profile.
    let lasts = match &set {
        Some(s) => Some(strand_node::parse_timer(s).map_err(|e| anyhow!(e))?),
        None => None,
    };
    let request = Request::Timer {
        conversation: name.to_owned(),
        group,
        set: set.clone(),
    };
    let label = match ask(&ctx.dir, &request).await? {
        Some(v) => v["label"].as_str().unwrap_or_default().to_owned(),
        None => {
            let p = open_profile(ctx)?;
            if let Some(lasts) = lasts {
                if group {
                    p.set_group_timer(name, lasts, now(), &mut os_rng())?;
                } else {
                    p.set_timer(name, lasts, now(), &mut os_rng())?;
                }
            }
            let t = if group {
                p.group_timer(name)?
            } else {
                p.timer(name)?
            };
            strand_node::timer_label(t)
        }
    };
    match (set.is_some(), label.as_str()) {
        (true, "off") => println!("Messages with {name} stay from now on."),
        (true, l) => println!(
            "Messages written with {name} from now on disappear after {l}, on every device."
        ),
        (false, "off") => println!("Messages with {name} stay (no timer)."),
        (false, l) => println!("Messages with {name} disappear after {l}."),
    }
    Ok(())
}

/// A group change through the running node, else on the profile.
/// The groups, from a running node or the profile.
async fn groups_view(ctx: &Ctx) -> Result<Vec<control::GroupView>> {
    Ok(match ask(&ctx.dir, &Request::Groups).await? {
        Some(v) => serde_json::from_value(v)?,
        None => open_profile(ctx)?
            .groups()?
            .iter()
            .map(control::GroupView::of)
            .collect(),
    })
}

async fn group_change(ctx: &Ctx, group: &str, action: &str, member: Option<String>) -> Result<()> {
    let request = Request::GroupChange {
        group: group.to_owned(),
        action: action.to_owned(),
        member: member.clone(),
    };
    if ask(&ctx.dir, &request).await?.is_none() {
        let action = match (action, member) {
            ("add", Some(m)) => strand_node::GroupAction::Add(m),
            ("remove", Some(m)) => strand_node::GroupAction::Remove(m),
            ("admin", Some(m)) => strand_node::GroupAction::MakeAdmin(m),
            _ => strand_node::GroupAction::Leave,
        };
        open_profile(ctx)?.change_group(group, &action, now(), &mut os_rng())?;
    }
    Ok(())
}

/// `strand wipe`.
async fn wipe(ctx: &Ctx, yes: bool) -> Result<()> {
    if !Profile::exists(&ctx.dir) {
        return Err(ProfileError::NotFound(ctx.dir.clone()).into());
    }
    let name = ctx
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ctx.dir.display().to_string());
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to wipe without confirmation: run it in a terminal, or pass --yes");
        }
        eprintln!(
            "This destroys the profile in {} for good: identity, contacts, every message. It cannot be undone.",
            ctx.dir.display()
        );
        eprint!("Type the folder's name ({name}) to wipe it: ");
        let mut typed = String::new();
        std::io::stdin()
            .read_line(&mut typed)
            .context("reading the confirmation")?;
        if typed.trim() != name {
            bail!("not wiped: that was not {name:?}");
        }
    }
    // A running node first stops and lets go of the profile (one that is
    // still starting may not answer yet: ask again for a few seconds).
    let start = std::time::Instant::now();
    let mut asked = ask(&ctx.dir, &Request::Shutdown).await?.is_some();
    while !asked && Profile::in_use(&ctx.dir) && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        asked = ask(&ctx.dir, &Request::Shutdown).await?.is_some();
    }
    if asked {
        while Profile::in_use(&ctx.dir) {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("the running node did not stop within 30 s; stop it, then wipe again");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let wiped = strand_node::wipe::wipe(&ctx.dir)?;
    println!(
        "Wiped {}: {} key copies destroyed, {} bytes overwritten, the folder removed.",
        ctx.dir.display(),
        wiped.key_copies,
        wiped.bytes
    );
    println!(
        "Not reached by any wipe: copies on SSD/flash blocks the drive remapped, file-system snapshots, backups, swap. See the README."
    );
    Ok(())
}

/// `strand verify`.
async fn verify(ctx: &Ctx, name: &str, verified: Option<bool>) -> Result<()> {
    let request = Request::Verify {
        contact: name.to_owned(),
        verified,
    };
    let view: control::SafetyView = match ask(&ctx.dir, &request).await? {
        Some(v) => serde_json::from_value(v)?,
        None => control::verify(&open_profile(ctx)?, name, verified)?,
    };
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    let groups: Vec<&str> = view.safety_number.split(' ').collect();
    println!("Safety number with {}:\n", view.contact.name);
    for row in groups.chunks(4) {
        println!("    {}", row.join("  "));
    }
    println!();
    match (verified, view.contact.verified) {
        (Some(true), _) => println!("{} is now marked verified.", view.contact.name),
        (Some(false), _) => println!("{} is no longer marked verified.", view.contact.name),
        (None, true) => println!("{} is verified.", view.contact.name),
        (None, false) => {
            if view.contact.legacy {
                println!(
                    "{} was added from an old invite code, which could not prove that its keys belong together.",
                    view.contact.name
                );
            }
            println!(
                "Compare this number with the one {0}'s Strand shows for you, in person or over a channel you trust. \
                 If every digit matches, run `strand verify {0:?} --confirm`. If not, someone may stand between you: \
                 do not trust this contact.",
                view.contact.name
            );
        }
    }
    Ok(())
}

/// `strand send`.
/// The text given, or standard input without its final newlines; never
/// empty.
fn text_to_send(text: Option<String>) -> Result<String> {
    let text = match text {
        Some(t) => t,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading standard input")?;
            s.trim_end_matches('\n').to_owned()
        }
    };
    if text.is_empty() {
        bail!("nothing to send: the message is empty");
    }
    Ok(text)
}

async fn send(ctx: &Ctx, name: &str, text: Option<String>) -> Result<()> {
    let text = text_to_send(text)?;
    let request = Request::Send {
        contact: name.to_owned(),
        text: text.clone(),
    };
    match ask(&ctx.dir, &request).await? {
        Some(_) => println!("Sent to {name}."),
        None => {
            let p = open_profile(ctx)?;
            p.write(name, &text, now(), &mut os_rng())?;
            println!("Queued for {name}: it goes out when `strand run` meets them.");
        }
    }
    Ok(())
}

/// `strand read`.
async fn read(ctx: &Ctx, name: &str, follow: bool) -> Result<()> {
    // With --follow, listen before reading, so that nothing arriving in
    // between is missed.
    let events = if follow {
        let Some((r, rd)) = control::request(&ctx.dir, &Request::Follow).await? else {
            bail!("--follow needs a running node (`strand run`)");
        };
        if !r.ok {
            bail!(r.error.unwrap_or_default());
        }
        Some(rd)
    } else {
        None
    };
    let mut profile = None;
    let mut last = None;
    print_after(ctx, name, &mut profile, &mut last).await?;
    let Some(mut rd) = events else {
        return Ok(());
    };
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    while rd.read_line(&mut line).await? > 0 {
        if let Ok(NodeEvent::Received { contact, .. }) = serde_json::from_str(&line) {
            if contact == name {
                // Read back from the store: where it is shown, and marked
                // read, as the pages before it.
                print_after(ctx, name, &mut profile, &mut last).await?;
            }
        }
        line.clear();
    }
    Ok(())
}

/// Prints the conversation after `last` (from the start if `None`), a
/// page at a time (a long conversation is never held whole), through the
/// running node or else from the profile, and moves `last` to the last
/// message printed. Each page is marked read.
async fn print_after(
    ctx: &Ctx,
    name: &str,
    profile: &mut Option<Profile>,
    last: &mut Option<control::Cursor>,
) -> Result<()> {
    let mut from = last.clone();
    loop {
        let request = Request::Read {
            contact: name.to_owned(),
            from: from.clone(),
            limit: None,
        };
        let page: control::ReadPage = match profile.as_ref() {
            Some(p) => control::read_page(p, name, from.as_ref(), None).map_err(|e| anyhow!(e))?,
            None => match ask(&ctx.dir, &request).await? {
                Some(v) => serde_json::from_value(v)?,
                None => {
                    let p = open_profile(ctx)?;
                    let page = control::read_page(&p, name, from.as_ref(), None)
                        .map_err(|e| anyhow!(e))?;
                    *profile = Some(p);
                    page
                }
            },
        };
        for m in &page.messages {
            // A page starts at its cursor, inclusive: skip what was printed.
            if last.as_ref().is_some_and(|c| c.id == m.id) {
                continue;
            }
            print_message(m, ctx.json)?;
            *last = Some(control::Cursor {
                shown: Some(m.shown),
                time: m.time,
                id: m.id.clone(),
            });
        }
        match page.next {
            Some(next) => from = Some(next),
            None => return Ok(()),
        }
    }
}

/// `strand status`.
async fn status(ctx: &Ctx) -> Result<()> {
    let status: Option<Status> = match ask(&ctx.dir, &Request::Status).await? {
        Some(v) => Some(serde_json::from_value(v)?),
        None => None,
    };
    match status {
        Some(s) if ctx.json => println!("{}", serde_json::to_string_pretty(&s)?),
        Some(s) => {
            println!("{} — profile {} — node running", s.name, s.profile);
            for t in &s.transports {
                let discovery = if t.discovery { ", discovery on" } else { "" };
                println!(
                    "  transport {}: {}{discovery}",
                    t.kind,
                    if t.addresses.is_empty() {
                        "not listening".to_owned()
                    } else {
                        t.addresses.join(" ")
                    }
                );
            }
            if let Some(relay) = s.transports.iter().find(|t| t.kind == "relay") {
                if let Some(id) = &relay.ephemeral_id {
                    println!("  relay identity this epoch: {id}");
                }
                for r in &relay.relays {
                    print_relay(r);
                }
                if relay.relays.is_empty() {
                    println!("  no relays: add one with `strand relay add MULTIADDR`");
                }
                for e in &relay.external {
                    println!("  public address (confirmed): {e}");
                }
            }
            for b in s.transports.iter().filter_map(|t| t.bluetooth.as_ref()) {
                println!(
                    "  Bluetooth LE on {}: {} Strand devices heard, {} links, bytes sent {}, received {}{}",
                    b.adapter,
                    b.devices_seen,
                    b.links,
                    b.bytes_sent,
                    b.bytes_received,
                    b.psm.map(|p| format!(", L2CAP channel {p:#x}")).unwrap_or_default()
                );
            }
            if let Some(reason) = &s.bluetooth_off {
                println!("  Bluetooth off: {reason}");
            }
            if let Some(serving) = &s.serving {
                println!(
                    "  relaying for contacts at {}: {} reservations, {} circuits",
                    serving.addresses.join(" "),
                    serving.reservations,
                    serving.circuits
                );
            }
            println!(
                "  sessions: {}, links in handshake: {}, bytes sent {}, received {}",
                s.sessions,
                s.links - s.sessions,
                s.bytes_sent,
                s.bytes_received
            );
            for c in &s.seen {
                let how = if c.connected {
                    "connected"
                } else {
                    "last seen"
                };
                println!(
                    "  {:<20} {how} over {} at {}",
                    c.contact,
                    c.link,
                    format_time(c.at)
                );
            }
            if s.seen.is_empty() {
                println!("  no contact seen yet");
            }
        }
        None => {
            let p = open_profile(ctx)?;
            if ctx.json {
                let v = serde_json::json!({
                    "name": p.identity().name(), "profile": ctx.dir.display().to_string(),
                    "running": false, "contacts": p.contacts().len(),
                    "messages": p.stored_messages()?, "relays": p.relays()?,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{} — profile {} — node not running",
                    p.identity().name(),
                    ctx.dir.display()
                );
                println!(
                    "  {} contacts; start syncing with `strand run`",
                    p.contacts().len()
                );
                for r in p.relays()? {
                    println!("  relay {r} (reserved on when the node runs)");
                }
            }
        }
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM.
async fn until_stopped() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

/// The relay's key: read from `path`, or made and written there (readable
/// by this user only).
fn relay_key(path: &Path) -> Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.as_slice().try_into().map_err(|_| {
            anyhow!(
                "{} is not a relay key (it must hold 32 bytes; move it away to make a new one)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut key = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut os_rng(), &mut key);
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(&key)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `strand relay`: runs a relay until Ctrl-C (or SIGTERM).
async fn relay_serve(args: &RelayServerArgs) -> Result<()> {
    use strand_transport::relay::server::{RelayLimits, RelayServer, RelayServerConfig};
    let key = if args.ephemeral {
        let mut key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut os_rng(), &mut key);
        key
    } else {
        let path = match &args.key {
            Some(p) => p.clone(),
            None => strand_node::default_relay_key_path()
                .ok_or_else(|| anyhow!("no home directory: pass --key FILE or --ephemeral"))?,
        };
        relay_key(&path)?
    };
    if args.circuit_duration == 0 {
        bail!("--circuit-duration must be at least 1 second");
    }
    let defaults = RelayLimits::default();
    let limits = RelayLimits {
        max_reservations: args.max_reservations,
        max_circuits: args.max_circuits,
        circuit_duration: Duration::from_secs(args.circuit_duration.min(u32::MAX as u64)),
        circuit_bytes: args.circuit_bytes,
        reservations_per_ip_burst: args.reservations_per_ip,
        circuits_per_ip_burst: args.circuits_per_ip,
        ip: strand_transport::lan::limits::IpLimitConfig {
            established: args.connections_per_ip,
            pending: defaults.ip.pending.max(args.connections_per_ip / 8),
            burst: defaults.ip.burst.max(args.connections_per_ip as f64),
            ..defaults.ip
        },
        ..defaults
    };
    let server = RelayServer::start(RelayServerConfig {
        listen: if args.listen.is_empty() {
            strand_node::args::default_relay_listen()
        } else {
            args.listen.clone()
        },
        announce: args.announce.clone(),
        key,
        limits,
        only: None,
    })
    .await
    .context("starting the relay")?;
    for a in server.addresses().await {
        println!("relay listening on {a}");
    }
    println!(
        "limits: {} reservations, {} circuits, each circuit {} s and {}",
        limits.max_reservations,
        limits.max_circuits,
        limits.circuit_duration.as_secs(),
        if limits.circuit_bytes == 0 {
            "unlimited bytes".to_owned()
        } else {
            format!("{} bytes", limits.circuit_bytes)
        }
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let report = async {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let s = server.stats().await;
            tracing::info!(
                reservations = s.reservations,
                circuits = s.circuits,
                circuits_total = s.circuits_total,
                ended_with_error = s.circuits_cut,
                denied = s.denied,
                "relay"
            );
        }
    };
    tokio::select! {
        r = until_stopped() => r?,
        _ = report => {}
    }
    server.shutdown().await;
    Ok(())
}

/// `strand relay add`.
async fn relay_add(ctx: &Ctx, address: &str) -> Result<()> {
    let request = Request::RelayAdd {
        address: address.to_owned(),
    };
    let added = match ask(&ctx.dir, &request).await? {
        Some(v) => v.as_str().unwrap_or(address).to_owned(),
        None => {
            open_profile(ctx)?
                .add_relay(address, now(), &mut os_rng())?
                .address
        }
    };
    println!("Added relay {added}. Your contacts learn it the next time you sync.");
    Ok(())
}

/// `strand relay list`.
async fn relay_list(ctx: &Ctx) -> Result<()> {
    let list: Vec<RelayStatus> = match ask(&ctx.dir, &Request::Relays).await? {
        Some(v) => serde_json::from_value(v)?,
        None => open_profile(ctx)?
            .relays()?
            .into_iter()
            .map(|address| RelayStatus {
                address,
                state: "not running".into(),
                error: None,
                retry_in: None,
                source: "yours".into(),
            })
            .collect(),
    };
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!(
            "No relays. Add one with `strand relay add MULTIADDR` (run one with `strand relay`)."
        );
    } else {
        for r in &list {
            print_relay(r);
        }
    }
    Ok(())
}

fn print_relay(r: &RelayStatus) {
    let why = match (&r.error, r.retry_in) {
        (Some(e), Some(s)) => format!(" — {e} (retry in {s} s)"),
        (Some(e), None) => format!(" — {e}"),
        _ => String::new(),
    };
    let source = if r.source == "yours" {
        String::new()
    } else {
        format!(" ({})", r.source)
    };
    println!("  {}{source}: {}{why}", r.address, r.state);
}

/// `strand relay remove`.
async fn relay_remove(ctx: &Ctx, address: &str) -> Result<()> {
    let request = Request::RelayRemove {
        address: address.to_owned(),
    };
    let removed = match ask(&ctx.dir, &request).await? {
        Some(v) => v.as_str().unwrap_or(address).to_owned(),
        None => match open_profile(ctx)?.remove_relay(address, now(), &mut os_rng())? {
            Some(c) => c.address,
            None => bail!(
                "{} is not in the relay list (see `strand relay list`)",
                address.trim()
            ),
        },
    };
    println!("Removed relay {removed}.");
    Ok(())
}

/// `strand run`: until Ctrl-C (or SIGTERM), then a clean shutdown.
async fn run(ctx: &Ctx, transports: &TransportArgs) -> Result<()> {
    let profile = open_profile(ctx)?;
    let node = Node::start(profile, transports.node_config()).await?;
    let control = {
        let node = node.clone();
        let dir = ctx.dir.clone();
        tokio::spawn(async move { control::serve(node, &dir).await })
    };
    for a in node.wait_listening(Duration::from_secs(10)).await {
        tracing::info!("listening on {a}");
        println!("listening on {a}");
    }
    if let Some(reason) = node.bluetooth_off() {
        println!("Bluetooth off: {reason}; running without it (--no-ble turns it off quietly)");
    }
    for t in node.status().await.transports {
        if let Some(b) = t.bluetooth {
            println!("Bluetooth LE on {}", b.adapter);
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        r = control => match r {
            Ok(Ok(())) => {
                println!("stopping: asked to over the control socket");
                Ok(())
            }
            Ok(Err(e)) => Err(anyhow!(e).context("the control socket failed")),
            Err(_) => Err(anyhow!("the control socket stopped")),
        },
    };
    let _ = std::fs::remove_file(control::socket_path(&ctx.dir));
    node.shutdown().await;
    result
}

fn print_message(m: &MessageView, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(m)?);
    } else {
        let state = m
            .delivery
            .as_deref()
            .map(|d| format!("  [{d}]"))
            .unwrap_or_default();
        let skew = match m.received {
            Some(r) if r.saturating_sub(m.time) > strand_node::SKEW_SHOWN => format!(
                "  (dated {} by its author: {} before it arrived)",
                format_time(m.time),
                format_span(r - m.time)
            ),
            _ => String::new(),
        };
        let expires = m
            .expires
            .map(|e| format!("  (disappears {})", format_time(e)))
            .unwrap_or_default();
        let text = match &m.file {
            Some(f) => file_line(f, &m.id),
            None => display::lines(&m.text, ""),
        };
        println!(
            "{} {}: {text}{state}{skew}{expires}",
            format_time(m.shown.max(m.time)),
            display::one_line(&m.from),
        );
    }
    Ok(())
}

/// "[file] notes.pdf, 2.1 MB, 3 of 9 parts here" or "… ready: strand save 1a2b3c4d DIR".
fn file_line(f: &control::FileView, id: &str) -> String {
    let size = if f.size >= 1 << 20 {
        format!("{:.1} MiB", f.size as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", f.size as f64 / 1024.0)
    };
    if f.have == f.total {
        format!(
            "[file] {}, {size}, ready: strand save {} DIR",
            display::one_line(&f.name),
            &id[..16.min(id.len())]
        )
    } else {
        format!(
            "[file] {}, {size}, {} of {} parts here",
            display::one_line(&f.name),
            f.have,
            f.total
        )
    }
}

/// A span of time, roughly: "3 days", "5 hours", "20 minutes".
fn format_span(ms: u64) -> String {
    let minutes = ms / 60_000;
    let (n, unit) = match minutes {
        m if m >= 2 * 24 * 60 => (m / (24 * 60), "days"),
        m if m >= 2 * 60 => (m / 60, "hours"),
        m => (m, "minutes"),
    };
    format!("{n} {unit}")
}

/// `YYYY-MM-DD HH:MM:SS` UTC.
fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}")
}

async fn demo(messages: usize) -> Result<()> {
    let started = Instant::now();
    let step =
        |n: u32, what: &str, t: Instant| println!("{n}. {what} ({} ms)", t.elapsed().as_millis());
    let tmp = tempfile::tempdir().context("making throwaway profiles")?;
    let mut rng = os_rng();
    let t = Instant::now();
    let kdf = KdfParams::default();
    let alice = Profile::create(
        &tmp.path().join("alice"),
        "Alice",
        "demo passphrase a",
        kdf,
        &mut rng,
    )?;
    let bob = Profile::create(
        &tmp.path().join("bob"),
        "Bob",
        "demo passphrase b",
        kdf,
        &mut rng,
    )?;
    step(
        1,
        "created two throwaway profiles, Alice and Bob, each locked by a passphrase",
        t,
    );
    let t = Instant::now();
    let (code_a, code_b) = (
        alice.identity().invite().to_text(),
        bob.identity().invite().to_text(),
    );
    println!("   Alice's invite: {code_a}");
    println!("   Bob's invite:   {code_b}");
    let invite_a = strand_sync::Invite::from_text(&code_a).map_err(|e| anyhow!("{e}"))?;
    let invite_b = strand_sync::Invite::from_text(&code_b).map_err(|e| anyhow!("{e}"))?;
    alice.add_contact(&invite_b, "Bob", now(), &mut rng)?;
    bob.add_contact(&invite_a, "Alice", now(), &mut rng)?;
    alice.write(
        "Bob",
        "Hi Bob, written before we were ever connected.",
        now(),
        &mut rng,
    )?;
    step(
        2,
        "exchanged invites; both added each other; Alice wrote a message while offline",
        t,
    );
    let t = Instant::now();
    let loopback = || {
        Some(LanConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid")],
            mdns: false,
            ..LanConfig::default()
        })
    };
    let node_b = Node::start(
        bob,
        NodeConfig {
            lan: loopback(),
            ..NodeConfig::default()
        },
    )
    .await?;
    let addrs = node_b.wait_listening(Duration::from_secs(1)).await;
    if addrs.is_empty() {
        bail!("Bob's node did not start listening");
    }
    let mut events_b = node_b.subscribe();
    let node_a = Node::start(
        alice,
        NodeConfig {
            lan: loopback(),
            peers: addrs.clone(),
            ..NodeConfig::default()
        },
    )
    .await?;
    let mut events_a = node_a.subscribe();
    step(
        3,
        &format!(
            "started both nodes: libp2p over TCP on loopback, mDNS off; Alice dials {}",
            addrs[0]
        ),
        t,
    );
    let t = Instant::now();
    wait(&mut events_b, Duration::from_secs(20), |e| {
        matches!(e, NodeEvent::Received { .. })
    })
    .await
    .context("Bob never received Alice's offline message")?;
    step(4, "they found each other, authenticated as contacts (Noise KK) and synced: Bob has Alice's offline message", t);
    let t = Instant::now();
    for i in 0..messages {
        node_a
            .send("Bob", &format!("Alice → Bob #{}", i + 1))
            .await?;
        node_b
            .send("Alice", &format!("Bob → Alice #{}", i + 1))
            .await?;
    }
    let (mut got_a, mut got_b, mut delivered_a) = (0, 0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got_a < messages || got_b < messages || delivered_a < messages + 1 {
        tokio::select! {
            Ok(e) = events_a.recv() => match e {
                NodeEvent::Received { .. } => got_a += 1,
                NodeEvent::Delivered { .. } => delivered_a += 1,
                _ => {}
            },
            Ok(e) = events_b.recv() => if matches!(e, NodeEvent::Received { .. }) { got_b += 1 },
            _ = tokio::time::sleep_until(deadline) => bail!(
                "timed out: Alice got {got_a}/{messages}, Bob got {got_b}/{messages}, delivered to Bob {delivered_a}/{}", messages + 1),
        }
    }
    step(
        5,
        &format!(
            "sent {messages} messages each way; all arrived and Alice saw every one delivered"
        ),
        t,
    );
    let conv_a = control::conversation(node_a.profile(), "Bob")?;
    let conv_b = control::conversation(node_b.profile(), "Alice")?;
    let ids = |c: &[MessageView]| c.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
    if ids(&conv_a) != ids(&conv_b) || conv_a.len() != 2 * messages + 1 {
        bail!(
            "the logs differ: Alice holds {}, Bob holds {}",
            conv_a.len(),
            conv_b.len()
        );
    }
    println!("\nBob's view of the conversation:");
    for m in conv_b.iter().take(8) {
        print_message(m, false)?;
    }
    if conv_b.len() > 8 {
        println!("   … {} more", conv_b.len() - 8);
    }
    let status = node_a.status().await;
    println!(
        "\nOK: {} messages in both logs, identical. {} bytes sent by Alice's node, {} received. Total {} ms.",
        conv_a.len(),
        status.bytes_sent,
        status.bytes_received,
        started.elapsed().as_millis()
    );
    node_a.shutdown().await;
    node_b.shutdown().await;
    Ok(())
}

async fn wait(
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    within: Duration,
    mut f: impl FnMut(&NodeEvent) -> bool,
) -> Result<()> {
    tokio::time::timeout(within, async {
        loop {
            match rx.recv().await {
                Ok(e) if f(&e) => return Ok(()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(anyhow!("{e}")),
            }
        }
    })
    .await
    .map_err(|_| anyhow!("timed out after {} s", within.as_secs()))?
}
