//! The UI thread and fixtures.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use slint::{ComponentHandle, Model};
use strand_gui::headless::Headless;
use strand_gui::{App, AppAdapter, AppWindow, ContactsAdapter, OnboardingAdapter, Options, Screen};
use strand_node::{KdfParams, NodeConfig};
use strand_transport::LanConfig;

/// Long enough for a loaded 2-core machine; a passing test returns as
/// soon as its condition holds.
pub const WAIT: Duration = Duration::from_secs(30);
pub const PASS: &str = "copper kettle under the violet moon";

type Body = Box<dyn FnOnce(&Headless) + Send>;

fn ui_thread() -> &'static Mutex<Sender<Body>> {
    static UI: OnceLock<Mutex<Sender<Body>>> = OnceLock::new();
    UI.get_or_init(|| {
        let (tx, rx) = channel::<Body>();
        std::thread::Builder::new()
            .name("ui".into())
            .spawn(move || {
                let headless = Headless::install(1040, 700).expect("install the headless platform");
                for body in rx {
                    body(&headless);
                }
            })
            .unwrap();
        Mutex::new(tx)
    })
}

/// Runs `body` on the UI thread, one test at a time; its panic is this
/// test's panic.
pub fn on_ui(body: impl FnOnce(&Headless) + Send + 'static) {
    let (done_tx, done_rx) = channel();
    let body: Body = Box::new(move |h| {
        let result = catch_unwind(AssertUnwindSafe(|| body(h)));
        let _ = done_tx.send(result);
    });
    ui_thread()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(body)
        .unwrap();
    match done_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => {
            // Said here, in this test's own output: the UI thread's panic
            // was printed into the output of whichever test started that
            // thread, long passed, and `resume_unwind` prints nothing.
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            eprintln!("the test's body panicked on the UI thread: {what}");
            resume_unwind(panic)
        }
        Err(_) => panic!("the UI thread died"),
    }
}

/// Loopback only, mDNS off (it ignores loopback, and must not multicast
/// off this machine).
/// A left click at `position` in the window: moved there, pressed and
/// released, as a pointer does.
pub fn click(ui: &AppWindow, position: slint::LogicalPosition) {
    use slint::platform::{PointerEventButton, WindowEvent};
    let w = ui.window();
    w.dispatch_event(WindowEvent::PointerMoved { position });
    w.dispatch_event(WindowEvent::PointerPressed {
        position,
        button: PointerEventButton::Left,
    });
    w.dispatch_event(WindowEvent::PointerReleased {
        position,
        button: PointerEventButton::Left,
    });
}

pub fn loopback() -> NodeConfig {
    NodeConfig {
        lan: Some(LanConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            mdns: false,
            ..LanConfig::default()
        }),
        ..NodeConfig::default()
    }
}

/// A window's options for the profile in `dir`, a folder in the test's
/// own: saved files go to `downloads` beside it, never the user's
/// downloads folder.
pub fn options(dir: &Path) -> Options {
    Options {
        profile: dir.to_path_buf(),
        downloads: dir.with_file_name("downloads"),
        node: loopback(),
        kdf: Some(KdfParams::insecure_for_tests()),
        dark: false,
        notify: strand_gui::Notify::Off,
    }
}

/// A window over the profile in `dir`, its adapters connected.
pub struct Gui {
    pub ui: AppWindow,
    pub app: Option<App>,
}

impl Gui {
    pub fn new(h: &Headless, options: Options) -> Gui {
        let ui = AppWindow::new().unwrap();
        let app = strand_gui::init(&ui, options);
        let gui = Gui { ui, app: Some(app) };
        // `init` asks the core thread which screen to show.
        assert!(h.pump_until(WAIT, || !gui.onboarding().get_profile_path().is_empty()));
        gui
    }

    pub fn onboarding(&self) -> OnboardingAdapter<'_> {
        self.ui.global::<OnboardingAdapter>()
    }

    pub fn screen(&self) -> Screen {
        self.ui.global::<AppAdapter>().get_screen()
    }

    /// Creates the profile through the first-run screen.
    pub fn create(&self, h: &Headless, name: &str) {
        self.onboarding()
            .invoke_create(name.into(), PASS.into(), PASS.into());
        assert!(
            h.pump_until(WAIT, || self.screen() == Screen::Chats),
            "not unlocked: {}",
            self.onboarding().get_error()
        );
    }

    pub fn contacts(&self) -> Vec<strand_gui::ContactItem> {
        self.ui
            .global::<ContactsAdapter>()
            .get_contacts()
            .iter()
            .collect()
    }

    /// Pumps until the top of the contact list shows `n` unread.
    pub fn wait_first_unread(&self, h: &Headless, n: i32) {
        assert!(
            h.pump_until(WAIT, || self
                .contacts()
                .first()
                .is_some_and(|c| c.unread == n)),
            "{:?}",
            self.contacts()
        );
    }

    /// Bob: a second profile in `root/bob` that has this window's user as
    /// his contact "Alice" (the window does not have him yet).
    pub fn bob(&self, root: &Path) -> strand_node::Profile {
        let bob = strand_node::Profile::create(
            &root.join("bob"),
            "Bob",
            "bob pass",
            KdfParams::insecure_for_tests(),
            &mut strand_node::os_rng(),
        )
        .unwrap();
        let alice = strand_sync::Invite::from_text(&self.invite()).unwrap();
        bob.add_contact(
            &alice,
            "Alice",
            strand_node::now(),
            &mut strand_node::os_rng(),
        )
        .unwrap();
        bob
    }

    /// Adds Bob by his invite `code` from the add-contact screen, and
    /// waits until he is the one contact listed.
    pub fn add_bob(&self, h: &Headless, code: &str) {
        self.ui
            .global::<strand_gui::AddContactAdapter>()
            .invoke_add(code.into(), "Bob".into());
        assert!(h.pump_until(WAIT, || self.contacts().len() == 1));
    }

    /// Bob (see [`Gui::bob`]) as a real node on loopback, added as a
    /// contact from the add-contact screen and dialled through the
    /// network screen's adapter. Returns the runtime his node runs on,
    /// and the node.
    pub fn bob_linked(
        &self,
        h: &Headless,
        root: &Path,
    ) -> (tokio::runtime::Runtime, strand_node::Node) {
        let bob = self.bob(root);
        let code = bob.identity().invite().to_text();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let bob = rt
            .block_on(strand_node::Node::start(bob, loopback()))
            .unwrap();
        let addr = rt.block_on(bob.wait_listening(WAIT))[0].clone();
        self.add_bob(h, &code);
        let net = self.ui.global::<strand_gui::NetworkAdapter>();
        net.invoke_dial(addr.to_string().into());
        assert!(net.get_dial_ok(), "{}", net.get_dial_result());
        (rt, bob)
    }

    /// Adds a made-up contact for each name, one at a time from the
    /// add-contact screen, waiting for each to be listed.
    pub fn add_made_up(&self, h: &Headless, names: &[&str]) {
        for name in names {
            let who = strand_sync::Identity::generate(name, &mut strand_node::os_rng()).unwrap();
            self.ui
                .global::<strand_gui::AddContactAdapter>()
                .invoke_add(who.invite().to_text().into(), (*name).into());
            let n = self.contacts().len();
            assert!(h.pump_until(WAIT, || self.contacts().len() == n + 1));
        }
    }

    pub fn invite(&self) -> String {
        self.ui
            .global::<strand_gui::AddContactAdapter>()
            .get_my_invite()
            .to_string()
    }
}

impl Drop for Gui {
    fn drop(&mut self) {
        // Stops the node and releases the profile before the window goes.
        self.app.take();
    }
}

/// A profile for Alice in `dir` (passphrase [`PASS`]) with one contact,
/// Bob, whose identity and 1:1 group come back too.
pub fn alice_with_bob(
    dir: &Path,
) -> (
    strand_node::Profile,
    strand_sync::Identity,
    strand_sync::Group,
) {
    let p = strand_node::Profile::create(
        dir,
        "Alice",
        PASS,
        KdfParams::insecure_for_tests(),
        &mut strand_node::os_rng(),
    )
    .unwrap();
    let bob = strand_sync::Identity::generate("Bob", &mut strand_node::os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", 0, &mut strand_node::os_rng())
        .unwrap();
    let group = bob
        .contact(&p.identity().public())
        .unwrap()
        .direct_group()
        .clone();
    (p, bob, group)
}

/// Ticks `name` in the new group's form, as a click on their box does
/// (the form ticks by key): once their row is there.
pub fn tick(h: &Headless, g: &strand_gui::GroupsAdapter<'_>, name: &str) {
    let key = || {
        g.get_contacts()
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.key.clone())
    };
    assert!(h.pump_until(WAIT, || key().is_some()), "{name} in the form");
    g.invoke_toggle(key().unwrap(), true);
}
