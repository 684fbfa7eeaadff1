//! The node side of the app. One thread (the "core") owns the unlocked
//! profile's [`Node`] and the tokio runtime it runs on, and runs the UI's
//! requests in order: every store read, KDF and network call happens
//! there, never on the UI thread. Results go back with
//! `upgrade_in_event_loop`.
//!
//! Node events (a message arrived, was delivered, a contact connected) are
//! gathered for [`DEBOUNCE`] and then become one refresh, so a bulk sync of
//! thousands of messages costs a handful of redraws.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use strand_node::runtime::api::{Failure, Reply, Request};
use strand_node::runtime::device::Device;
use strand_node::{KdfParams, Node, NodeConfig, NodeError, NodeEvent, Profile};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::AppWindow;

/// Requests queued for the core thread. The UI makes them at human pace
/// (plus one per page of a scrolled conversation), so 1024 is far more
/// than is ever waiting; if it is full the request is refused and logged
/// rather than blocking the UI thread.
const JOB_QUEUE: usize = 1024;
/// Node events within this window become one refresh.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// How often "seen 5 min ago", transports and traffic are refreshed.
pub const TICK: Duration = Duration::from_secs(5);
/// Worker threads of the node's runtime: sessions are mostly waiting on
/// the network and the store.
const NODE_THREADS: usize = 2;

/// How the app starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// The profile directory.
    pub profile: PathBuf,
    /// Transports and peers for the embedded node.
    pub node: NodeConfig,
    /// Passphrase hashing for a profile created by the first-run screen:
    /// `None` calibrates it on this device ([`KdfParams::calibrate`]).
    pub kdf: Option<KdfParams>,
    /// Start with the dark palette.
    pub dark: bool,
}

/// What changed since the last refresh.
#[derive(Debug, Default, Clone)]
pub(crate) struct Changes {
    /// Contacts with new messages or delivery states.
    pub contacts: BTreeSet<String>,
    /// A group was created, joined or changed, or has a new text.
    pub groups: bool,
    /// Events were lost (the subscriber lagged): refresh everything.
    pub all: bool,
    /// A contact over their storage budget, and the budget in bytes.
    pub over_budget: Option<(String, u64)>,
}

impl Changes {
    fn add(&mut self, event: Option<NodeEvent>) {
        match event {
            Some(NodeEvent::Received { group: Some(_), .. }) | Some(NodeEvent::GroupsChanged) => {
                self.groups = true
            }
            Some(
                NodeEvent::Received { contact, .. }
                | NodeEvent::Sent { contact, .. }
                | NodeEvent::Delivered { contact, .. },
            ) => {
                self.contacts.insert(contact);
            }
            Some(NodeEvent::OverBudget {
                contact, budget, ..
            }) => {
                self.over_budget = Some((contact, budget));
            }
            // A bundle can touch any conversation and group.
            Some(NodeEvent::Imported { .. }) => self.all = true,
            Some(_) => {}
            None => self.all = true,
        }
    }
}

pub(crate) type Job = Box<dyn FnOnce(&mut Core) + Send>;

/// A handle for queueing work on the core thread.
#[derive(Clone)]
pub(crate) struct Backend {
    tx: SyncSender<Job>,
}

impl Backend {
    /// Queues `f` to run on the core thread, after everything queued
    /// before it.
    pub fn job(&self, f: impl FnOnce(&mut Core) + Send + 'static) {
        match self.tx.try_send(Box::new(f)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::warn!("core thread busy: request dropped"),
            Err(TrySendError::Disconnected(_)) => tracing::debug!("core thread gone"),
        }
    }
}

/// The core thread's state.
pub(crate) struct Core {
    pub options: Options,
    ui: slint::Weak<AppWindow>,
    pub backend: Backend,
    runtime: Option<tokio::runtime::Runtime>,
    /// The unlocked profile's device: a node with the app's transports.
    /// Every action and every read goes through it ([`Core::call`]).
    pub device: Option<Device>,
    /// The conversation on screen, if the chats screen shows one.
    pub open: Option<String>,
    /// Whether the chats screen is showing (messages there count as read).
    pub chats_visible: bool,
    /// The group open on the groups screen.
    pub open_group: Option<String>,
    /// Whether the groups screen is showing.
    pub groups_visible: bool,
    /// Bumped whenever the open conversation is re-read, so late pages of
    /// an older listing are ignored.
    pub generation: u64,
    quit: bool,
}

impl Core {
    /// Runs `f` on the UI thread with the window, if it still exists.
    pub fn ui(&self, f: impl FnOnce(AppWindow) + Send + 'static) {
        let _ = self.ui.upgrade_in_event_loop(f);
    }

    /// Asks the device; `None` while locked.
    pub fn call(&self, request: Request) -> Option<Result<Reply, Failure>> {
        let device = self.device.as_ref()?;
        self.block_on(device.call(request))
    }

    /// Whether a profile is unlocked.
    pub fn unlocked(&self) -> bool {
        self.device.is_some()
    }

    /// Runs a future of the node to completion on its runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        self.runtime.as_ref().map(|rt| rt.block_on(f))
    }

    /// Starts the node on an unlocked profile, with the event forwarder and
    /// the periodic refresh.
    pub fn start(&mut self, profile: Profile) -> Result<(), NodeError> {
        self.stop();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(NODE_THREADS)
            .thread_name("strand-node")
            .enable_all()
            .build()
            .map_err(NodeError::Runtime)?;
        let node = runtime.block_on(Node::start(profile, self.options.node.clone()))?;
        let mut events = node.subscribe();
        let backend = self.backend.clone();
        runtime.spawn(async move {
            loop {
                let mut changes = Changes::default();
                match events.recv().await {
                    Ok(e) => changes.add(Some(e)),
                    Err(RecvError::Lagged(_)) => changes.add(None),
                    Err(RecvError::Closed) => break,
                }
                tokio::time::sleep(DEBOUNCE).await;
                loop {
                    match events.try_recv() {
                        Ok(e) => changes.add(Some(e)),
                        Err(TryRecvError::Lagged(_)) => changes.add(None),
                        Err(_) => break,
                    }
                }
                backend.job(move |core| crate::adapters::on_changes(core, changes));
            }
        });
        let backend = self.backend.clone();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.tick().await;
            loop {
                tick.tick().await;
                backend.job(crate::adapters::on_tick);
            }
        });
        self.device = Some(Device::Local(node));
        self.runtime = Some(runtime);
        Ok(())
    }

    /// Stops the node and releases the profile (its lock and its key):
    /// when this returns, another process can open it.
    pub fn stop(&mut self) {
        self.open = None;
        self.open_group = None;
        let device = self.device.take();
        if let Some(rt) = self.runtime.take() {
            if let Some(Device::Local(node) | Device::Offline(node)) = device {
                rt.block_on(node.shutdown());
            }
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Starts the core thread.
pub(crate) fn spawn(options: Options, ui: slint::Weak<AppWindow>) -> (Backend, JoinHandle<()>) {
    let (tx, rx) = sync_channel(JOB_QUEUE);
    let backend = Backend { tx };
    let core = Core {
        options,
        ui,
        backend: backend.clone(),
        runtime: None,
        device: None,
        open: None,
        chats_visible: true,
        open_group: None,
        groups_visible: false,
        generation: 0,
        quit: false,
    };
    let thread = std::thread::Builder::new()
        .name("strand-core".into())
        .spawn(move || run(core, rx))
        .expect("spawn the core thread");
    (backend, thread)
}

fn run(mut core: Core, rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        job(&mut core);
        if core.quit {
            break;
        }
    }
    core.stop();
}

/// Asks the core thread to stop the node and end.
pub(crate) fn quit(backend: &Backend) {
    backend.job(|core| core.quit = true);
}
