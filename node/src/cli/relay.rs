//! The long-running commands: `strand run` (a node until stopped, its
//! control socket open) and `strand relay` (a relay server, no profile).

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::args::TransportArgs;
use super::{Ctx, RelayServerArgs};
use crate::{control, os_rng, Node, NodeConfig};

type Result<T> = anyhow::Result<T>;

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
    use std::io::{Read, Write};
    let mut key = [0u8; 32];
    match std::fs::File::open(path) {
        Ok(f) => {
            // A key's length and one byte more tell a key from what is
            // not one, and bound the read of a file that never ends
            // (`/dev/zero`), which would otherwise go on until memory
            // runs out.
            let mut bytes = Vec::with_capacity(key.len() + 1);
            f.take(key.len() as u64 + 1)
                .read_to_end(&mut bytes)
                .with_context(|| format!("reading {}", path.display()))?;
            bytes.as_slice().try_into().map_err(|_| {
                anyhow!(
                    "{} is not a relay key (it must hold 32 bytes; move it away to make a new one)",
                    path.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            rand_core::RngCore::fill_bytes(&mut os_rng(), &mut key);
            // Written whole under another name (created 0600), then given
            // its own: a write that fails leaves no short file at `path`,
            // which every later run would refuse as no key (the temporary
            // one goes when `fresh` is dropped).
            let mut fresh = tempfile::Builder::new()
                .prefix(".strand-relay-key-")
                .tempfile_in(dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            fresh
                .write_all(&key)
                .and_then(|()| fresh.as_file().sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            // Not over a key another relay, started at the same time,
            // has made meanwhile.
            fresh
                .persist_noclobber(path)
                .map_err(|e| e.error)
                .with_context(|| format!("creating {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `strand relay`: runs a relay until Ctrl-C (or SIGTERM).
pub(super) async fn serve_relay(args: &RelayServerArgs) -> Result<()> {
    use strand_transport::relay::server::{RelayLimits, RelayServer, RelayServerConfig};
    let key = if args.ephemeral {
        let mut key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut os_rng(), &mut key);
        key
    } else {
        let path = match &args.key {
            Some(p) => p.clone(),
            None => crate::default_relay_key_path()
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
            crate::args::default_relay_listen()
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
    let addresses = server.addresses().await;
    for a in &addresses {
        println!("relay listening on {a}");
    }
    if addresses.is_empty() {
        // Listening on an unspecified address with none of its family on
        // this device yet (RelayServer::start), or only loopback, which
        // counts only when named (see strand_transport's relay server):
        // the line says how to try the relay on this machine alone.
        println!(
            "relay {} listening, with no address others can reach yet (loopback only when \
             --listen names it, as /ip4/127.0.0.1/tcp/4001): each one is used as it comes",
            server.peer_id()
        );
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

/// `strand run`: until Ctrl-C (or SIGTERM), then a clean shutdown.
/// Quiet, it prints nothing of what arrives: who sent what stays out of
/// a journal that keeps it.
pub(super) async fn run_node_inner(
    ctx: &Ctx,
    transports: &TransportArgs,
    quiet: bool,
) -> Result<()> {
    // Commands run from the moment the open holds the profile until the
    // control socket is bound wait for this node rather than find the
    // profile in use; every return before the socket is bound (an open
    // that fails too) drops the marker.
    let (profile, starting) = super::open_profile_to_run(ctx).map_err(|e| anyhow!(e.line()))?;
    let config = NodeConfig {
        report_arrivals: !quiet,
        ..transports.node_config()
    };
    let node = Node::start(profile, config).await?;
    // Listened for once the node runs and before its control socket
    // exists, and at every moment after (while it waits for addresses,
    // once they show): a signal stops the node cleanly, its socket
    // removed. While the node starts, a signal ends the process as it
    // always did: there is no socket yet, the profile's lock goes with
    // the process, and the marker left names a process that is gone,
    // which commands ignore (`runtime::starting`).
    use tokio::signal::unix::{signal, SignalKind};
    let signals = (|| {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })();
    let (mut term, mut interrupt) = match signals {
        Ok(signals) => signals,
        Err(e) => {
            node.shutdown().await;
            return Err(anyhow!(e).context("listening for SIGTERM and Ctrl-C"));
        }
    };
    // Listening from the start: a file can arrive before the addresses
    // are printed. Not when quiet: a receiver never read keeps the last
    // events (message texts among them) in memory.
    let arriving = (!quiet).then(|| crate::runtime::device::Events::Local(node.subscribe()));
    // Bound before anything is printed: a command run as soon as the
    // addresses show reaches the node.
    let control = match control::bind(&node, &ctx.dir, starting) {
        Ok(bound) => tokio::spawn(control::serve(node.clone(), bound)),
        Err(e) => {
            node.shutdown().await;
            return Err(anyhow!(e).context("binding the control socket"));
        }
    };
    let shown = async {
        for a in node.wait_listening(Duration::from_secs(10)).await {
            tracing::info!("listening on {a}");
        }
        super::print::listening(&node.status().await);
        if let Some(reason) = node.bluetooth_off() {
            println!("Bluetooth off: {reason}; running without it (--no-ble turns it off quietly)");
        }
        for t in node.status().await.transports {
            if let Some(b) = t.bluetooth {
                println!("Bluetooth LE on {}", b.adapter);
            }
        }
    };
    // A signal while the node waits for its addresses (up to 10 s) stops
    // it then, not once they show.
    let stopped_early = tokio::select! {
        () = shown => false,
        _ = interrupt.recv() => true,
        _ = term.recv() => true,
    };
    if stopped_early {
        control.abort();
        let _ = std::fs::remove_file(control::socket_path(&ctx.dir));
        node.shutdown().await;
        return Ok(());
    }
    let arrivals = async {
        match arriving {
            Some(arriving) => super::progress::arrivals(ctx, arriving).await,
            None => std::future::pending::<()>().await,
        }
    };
    let result = tokio::select! {
        _ = arrivals => Ok(()),
        _ = interrupt.recv() => Ok(()),
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

/// `strand run`.
pub(super) async fn run_node(
    ctx: &Ctx,
    transports: &TransportArgs,
    quiet: bool,
) -> super::Result<()> {
    Ok(run_node_inner(ctx, transports, quiet).await?)
}

/// `strand relay` (no subcommand).
pub(super) async fn serve(args: &RelayServerArgs) -> super::Result<()> {
    Ok(serve_relay(args).await?)
}
