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
use strand_node::{
    now, os_rng, KdfParams, Node, NodeConfig, NodeEvent, Profile, ProfileError, Status,
};
use strand_transport::LanConfig;

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
    /// List your contacts
    Contacts,
    /// Send a message (the text, or standard input)
    Send {
        /// Contact name
        name: String,
        /// The text; read from standard input if absent
        text: Option<String>,
    },
    /// Show the conversation with a contact
    Read {
        /// Contact name
        name: String,
        /// Keep printing new messages as they arrive (needs `strand run`)
        #[arg(long)]
        follow: bool,
    },
    /// Run the node in the foreground: sync with contacts over every transport
    Run {
        #[command(flatten)]
        transports: TransportArgs,
    },
    /// Show identity, transports, and contacts seen
    Status,
    /// Two throwaway nodes on this machine become contacts and chat over the real LAN transport on loopback
    Demo {
        /// Messages each way
        #[arg(long, default_value_t = 5)]
        messages: usize,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.verbose, matches!(cli.command, Command::Run { .. }));
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
    match runtime.block_on(dispatch(cli)) {
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
}

async fn dispatch(cli: Cli) -> Result<()> {
    let dir = match &cli.profile {
        Some(p) => p.clone(),
        None => strand_node::default_profile_dir()
            .ok_or_else(|| anyhow!("no home directory: pass --profile DIR"))?,
    };
    let ctx = Ctx {
        dir,
        json: cli.json,
    };
    match cli.command {
        Command::Init { name } => init(&ctx, &name),
        Command::Invite => invite(&ctx).await,
        Command::Add { code, name } => add(&ctx, &code, &name).await,
        Command::Contacts => contacts(&ctx).await,
        Command::Send { name, text } => send(&ctx, &name, text).await,
        Command::Read { name, follow } => read(&ctx, &name, follow).await,
        Command::Run { transports } => run(&ctx, &transports).await,
        Command::Status => status(&ctx).await,
        Command::Demo { messages } => demo(messages).await,
    }
}

fn passphrase(confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("STRAND_PASSPHRASE") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set STRAND_PASSPHRASE or run in a terminal");
    }
    let p = rpassword::prompt_password("Passphrase: ").context("reading the passphrase")?;
    if confirm {
        let again =
            rpassword::prompt_password("Passphrase again: ").context("reading the passphrase")?;
        if again != p {
            bail!("the passphrases do not match");
        }
    }
    Ok(p)
}

fn open_profile(dir: &Path) -> Result<Profile> {
    if !Profile::exists(dir) {
        return Err(ProfileError::NotFound(dir.to_path_buf()).into());
    }
    Ok(Profile::open(dir, &passphrase(false)?)?)
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
    let pass = passphrase(true)?;
    let p = Profile::create(&ctx.dir, name, &pass, KdfParams::default(), &mut os_rng())?;
    println!(
        "Created a profile for {} in {}",
        p.identity().name(),
        ctx.dir.display()
    );
    println!("Your invite code: {}", p.identity().invite());
    Ok(())
}

/// `strand invite`.
async fn invite(ctx: &Ctx) -> Result<()> {
    let code = match ask(&ctx.dir, &Request::Invite).await? {
        Some(v) => v.as_str().unwrap_or_default().to_owned(),
        None => open_profile(&ctx.dir)?.identity().invite().to_text(),
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
    let added = match ask(&ctx.dir, &request).await? {
        Some(_) => name.to_owned(),
        None => {
            let invite = strand_sync::Invite::from_text(code).context("bad invite code")?;
            let p = open_profile(&ctx.dir)?;
            p.add_contact(&invite, name, now(), &mut os_rng())?.name
        }
    };
    println!("Added {added}. They must add your invite too (`strand invite`).");
    Ok(())
}

/// `strand contacts`.
async fn contacts(ctx: &Ctx) -> Result<()> {
    let list: Vec<ContactView> = match ask(&ctx.dir, &Request::Contacts).await? {
        Some(v) => serde_json::from_value(v)?,
        None => control::contacts(&open_profile(&ctx.dir)?),
    };
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("No contacts yet. Add one with `strand add CODE --name NAME`.");
    } else {
        for c in list {
            println!("{:<24} {}", c.name, &c.key[..16]);
        }
    }
    Ok(())
}

/// `strand send`.
async fn send(ctx: &Ctx, name: &str, text: Option<String>) -> Result<()> {
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
    let request = Request::Send {
        contact: name.to_owned(),
        text: text.clone(),
    };
    match ask(&ctx.dir, &request).await? {
        Some(_) => println!("Sent to {name}."),
        None => {
            let p = open_profile(&ctx.dir)?;
            p.write(name, &text, now(), &mut os_rng())?;
            println!("Queued for {name}: it goes out when `strand run` meets them.");
        }
    }
    Ok(())
}

/// `strand read`.
async fn read(ctx: &Ctx, name: &str, follow: bool) -> Result<()> {
    let request = Request::Read {
        contact: name.to_owned(),
    };
    let list: Vec<MessageView> = match ask(&ctx.dir, &request).await? {
        Some(v) => serde_json::from_value(v)?,
        None if follow => bail!("--follow needs a running node (`strand run`)"),
        None => control::conversation(&open_profile(&ctx.dir)?, name)?,
    };
    for m in &list {
        print_message(m, ctx.json)?;
    }
    if !follow {
        return Ok(());
    }
    let Some((r, mut rd)) = control::request(&ctx.dir, &Request::Follow).await? else {
        bail!("the node stopped");
    };
    if !r.ok {
        bail!(r.error.unwrap_or_default());
    }
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    while rd.read_line(&mut line).await? > 0 {
        if let Ok(NodeEvent::Received {
            contact,
            time,
            id,
            text,
        }) = serde_json::from_str(&line)
        {
            if contact == name {
                let m = MessageView {
                    time,
                    id,
                    from: contact,
                    text,
                    delivery: None,
                };
                print_message(&m, ctx.json)?;
            }
        }
        line.clear();
    }
    Ok(())
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
            let p = open_profile(&ctx.dir)?;
            if ctx.json {
                let v = serde_json::json!({
                    "name": p.identity().name(), "profile": ctx.dir.display().to_string(),
                    "running": false, "contacts": p.contacts().len(),
                    "messages": p.stored_messages()?,
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
            }
        }
    }
    Ok(())
}

/// `strand run`: until Ctrl-C (or SIGTERM), then a clean shutdown.
async fn run(ctx: &Ctx, transports: &TransportArgs) -> Result<()> {
    let profile = open_profile(&ctx.dir)?;
    // The passphrase has done its job; children of this process do not
    // need it.
    std::env::remove_var("STRAND_PASSPHRASE");
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
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        r = control => match r {
            Ok(Err(e)) => Err(anyhow!(e).context("the control socket failed")),
            _ => Err(anyhow!("the control socket stopped")),
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
        println!("{} {}: {}{state}", format_time(m.time), m.from, m.text);
    }
    Ok(())
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
