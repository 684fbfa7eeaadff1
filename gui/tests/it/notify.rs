//! Desktop notifications, shown by a notification server on a private
//! D-Bus bus (a real `dbus-daemon`, and a small server implementing
//! `org.freedesktop.Notifications` that records what it was asked to show
//! and clicks on request).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use slint::ComponentHandle;
use strand_gui::headless::Headless;
use strand_gui::{
    AppAdapter, ContactsAdapter, ConversationAdapter, Notify, Screen, SettingsAdapter,
};
use strand_node::Node;
use tokio::runtime::Runtime;

use crate::bus::Bus;
use crate::support::{loopback, on_ui, options, Gui, WAIT};

const PATH: &str = "/org/freedesktop/Notifications";
const NAME: &str = "org.freedesktop.Notifications";

/// What the server was asked to show: id, title, body, actions.
type Shown = Arc<Mutex<Vec<(u32, String, String, Vec<String>)>>>;

struct Server {
    shown: Shown,
    /// Ids the app asked to close.
    closed: Arc<Mutex<Vec<u32>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Server {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut shown = self.shown.lock().unwrap();
        let id = shown.len() as u32 + 1;
        shown.push((id, summary, body, actions));
        id
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into(), "actions".into()]
    }

    fn close_notification(&self, id: u32) {
        self.closed.lock().unwrap().push(id);
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        ("test".into(), "strand".into(), "1".into(), "1.2".into())
    }
}

/// Alice's app, notifying on the bus at `address`, with Bob (a node of
/// his own on loopback) added and dialled. The app shows Settings, not the
/// chats, so what arrives notifies.
fn alice_hears_bob(h: &Headless, root: &Path, address: String) -> (Gui, Runtime, Node) {
    let mut opts = options(&root.join("alice"));
    opts.notify = Notify::Bus(address);
    let gui = Gui::new(h, opts);
    gui.create(h, "Alice");
    let bob = gui.bob(root);
    let bob_code = bob.identity().invite().to_text();
    let rt = Runtime::new().unwrap();
    let bob = rt.block_on(Node::start(bob, loopback())).unwrap();
    let bob_addr = rt.block_on(bob.wait_listening(WAIT))[0].to_string();
    gui.add_bob(h, &bob_code);
    gui.ui
        .global::<AppAdapter>()
        .invoke_navigate(Screen::Settings);
    gui.ui
        .global::<strand_gui::NetworkAdapter>()
        .invoke_dial(bob_addr.into());
    (gui, rt, bob)
}

#[test]
fn arrivals_notify_with_text_only_when_chosen_and_a_click_opens_the_conversation() {
    on_ui(|h| {
        let bus = Bus::start();
        let shown: Shown = Arc::default();
        let closed: Arc<Mutex<Vec<u32>>> = Arc::default();
        let server = zbus::blocking::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name(NAME)
            .unwrap()
            .serve_at(
                PATH,
                Server {
                    shown: shown.clone(),
                    closed: closed.clone(),
                },
            )
            .unwrap()
            .build()
            .unwrap();
        let count = || shown.lock().unwrap().len();
        // The badges docks are sent (launcher entry signals).
        let badges: Arc<Mutex<Vec<i64>>> = Arc::default();
        let docks = badges.clone();
        let rule = "type='signal',interface='com.canonical.Unity.LauncherEntry',member='Update'";
        let updates = zbus::blocking::MessageIterator::for_match_rule(rule, &server, None).unwrap();
        std::thread::spawn(move || {
            for m in updates.flatten() {
                let body = m.body();
                if let Ok((app, props)) =
                    body.deserialize::<(String, HashMap<String, zbus::zvariant::OwnedValue>)>()
                {
                    assert_eq!(app, "application://strand.desktop");
                    if let Some(n) = props.get("count").and_then(|v| i64::try_from(v).ok()) {
                        docks.lock().unwrap().push(n);
                    }
                }
            }
        });
        let last = || shown.lock().unwrap().last().cloned().unwrap();

        let tmp = tempfile::tempdir().unwrap();
        let (gui, rt, bob) = alice_hears_bob(h, tmp.path(), bus.address.clone());

        // By default: who wrote, not what.
        rt.block_on(bob.send("Alice", "the door code is 4512"))
            .unwrap();
        assert!(h.pump_until(WAIT, || count() == 1));
        let (_, title, body, actions) = last();
        assert_eq!((title.as_str(), body.as_str()), ("Bob", "New message"));
        assert_eq!(actions, ["default", "Open"]);
        assert!(h.pump_until(WAIT, || badges.lock().unwrap().last() == Some(&1)));

        // With texts shown, the text, made safe.
        let settings = gui.ui.global::<SettingsAdapter>();
        settings.invoke_set_notify_text(true);
        assert!(h.pump_until(WAIT, || settings.get_notify_text()));
        rt.block_on(bob.send("Alice", "<b>bold</b>\nsecond line"))
            .unwrap();
        assert!(h.pump_until(WAIT, || count() == 2));
        assert_eq!(last().2, "&lt;b&gt;bold&lt;/b&gt;&lt;U+000A&gt;second line");

        // Muted: nothing; unmuted again: the next one shows, and the muted
        // one never did.
        gui.ui.global::<AppAdapter>().invoke_navigate(Screen::Chats);
        gui.ui.global::<ContactsAdapter>().invoke_open(0);
        let conv = gui.ui.global::<ConversationAdapter>();
        conv.invoke_set_muted(true);
        assert!(h.pump_until(WAIT, || conv.get_muted()));
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Settings);
        rt.block_on(bob.send("Alice", "while muted")).unwrap();
        assert!(h.pump_until(WAIT, || gui.contacts()[0].last_text == "while muted"));
        conv.invoke_set_muted(false);
        assert!(h.pump_until(WAIT, || !conv.get_muted()));
        rt.block_on(bob.send("Alice", "after")).unwrap();
        assert!(h.pump_until(WAIT, || count() == 3));
        assert_eq!(last().2, "after");
        assert!(shown
            .lock()
            .unwrap()
            .iter()
            .all(|(_, _, body, _)| body != "while muted"));

        // Two unread now ("while muted" counts, muted or not).
        assert!(h.pump_until(WAIT, || badges.lock().unwrap().last() == Some(&2)));
        // A click opens the conversation.
        gui.ui.global::<ContactsAdapter>().set_current(-1);
        conv.set_contact("".into());
        let id = last().0;
        server
            .emit_signal(None::<&str>, PATH, NAME, "ActionInvoked", &(id, "default"))
            .unwrap();
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats
            && conv.get_contact() == "Bob"));
        // Read now: the badge goes.
        assert!(h.pump_until(WAIT, || badges.lock().unwrap().last() == Some(&0)));
        // Bob renamed: a notification shown before opens him by his new
        // name (it looked for "Bob", and opened nothing).
        conv.invoke_rename_contact("Robert".into());
        assert!(h.pump_until(WAIT, || conv.get_contact() == "Robert"));
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Settings);
        // What he writes next is notified under his new name, and after
        // the app has heard of the rename (the node's events come in
        // order).
        rt.block_on(bob.send("Alice", "renamed?")).unwrap();
        assert!(h.pump_until(WAIT, || count() == 4));
        assert_eq!(last().1, "Robert");
        gui.ui.global::<ContactsAdapter>().set_current(-1);
        conv.set_contact("".into());
        server
            .emit_signal(None::<&str>, PATH, NAME, "ActionInvoked", &(id, "default"))
            .unwrap();
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats
            && conv.get_contact() == "Robert"));
        // Robert deleted, and someone else added under his name: his old
        // notification opens nothing (it would have opened the newcomer).
        conv.invoke_delete_contact();
        assert!(h.pump_until(WAIT, || conv.get_contact().is_empty()
            && gui.contacts().is_empty()));
        // Every notification of his is taken off the screen.
        let all: Vec<u32> = shown.lock().unwrap().iter().map(|n| n.0).collect();
        assert_eq!(all.len(), 4);
        assert!(h.pump_until(WAIT, || {
            let mut c = closed.lock().unwrap().clone();
            c.sort();
            c == all
        }));
        let newcomer = strand_sync::Identity::generate("Rob", &mut strand_node::os_rng()).unwrap();
        gui.ui
            .global::<strand_gui::AddContactAdapter>()
            .invoke_add(newcomer.invite().to_text().into(), "Robert".into());
        // Adding opens the newcomer's conversation: away from it again.
        assert!(h.pump_until(WAIT, || gui.contacts().len() == 1
            && conv.get_contact() == "Robert"));
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Settings);
        gui.ui.global::<ContactsAdapter>().set_current(-1);
        conv.set_contact("".into());
        server
            .emit_signal(None::<&str>, PATH, NAME, "ActionInvoked", &(id, "default"))
            .unwrap();
        let opened = || gui.screen() == Screen::Chats || conv.get_contact() == "Robert";
        assert!(!h.pump_until(std::time::Duration::from_secs(3), opened));

        drop(gui);
        rt.shutdown_timeout(std::time::Duration::from_secs(5));
    });
}

/// The app's notifications on Phosh's own notification server (the phone
/// shell of Mobian and PureOS). `scripts/phosh-notify` starts phoc and
/// phosh on a private session bus and runs this with `STRAND_PHOSH_BUS`
/// set; elsewhere it is ignored.
///
/// A message from Bob arrives; the app asks Phosh to show it. Phosh gives
/// no way to list what it shows, but it numbers notifications in order:
/// a probe before and one after the arrival are two apart, so exactly one
/// notification came between them (only the app is on this bus), and
/// Phosh holds it: closing it makes Phosh say so.
#[test]
#[ignore = "needs Phosh: scripts/phosh-notify"]
fn the_app_notifies_through_phosh() {
    let address =
        std::env::var("STRAND_PHOSH_BUS").expect("scripts/phosh-notify sets STRAND_PHOSH_BUS");
    let conn = zbus::blocking::connection::Builder::address(address.as_str())
        .unwrap()
        .build()
        .unwrap();
    let phosh = zbus::blocking::Proxy::new(&conn, NAME, PATH, NAME).unwrap();
    let (_, vendor, version, _): (String, String, String, String) =
        phosh.call("GetServerInformation", &()).unwrap();
    assert_eq!(vendor, "Phosh", "the notification server is Phosh's");
    eprintln!("Phosh {version}");
    let probe = || -> u32 {
        let hints: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
        let id: u32 = phosh
            .call(
                "Notify",
                &(
                    "probe",
                    0u32,
                    "",
                    "probe",
                    "",
                    Vec::<&str>::new(),
                    hints,
                    1000i32,
                ),
            )
            .unwrap();
        id
    };
    let closed = phosh.receive_signal("NotificationClosed").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for signal in closed {
            if let Ok(args) = signal.body().deserialize::<(u32, u32)>() {
                let _ = tx.send(args);
            }
        }
    });

    let before = probe();
    let bus = address.clone();
    on_ui(move |h| {
        let tmp = tempfile::tempdir().unwrap();
        let (gui, rt, bob) = alice_hears_bob(h, tmp.path(), bus);
        rt.block_on(bob.send("Alice", "<b>on the phone</b> & more"))
            .unwrap();
        assert!(h.pump_until(WAIT, || gui
            .contacts()
            .first()
            .is_some_and(|c| c.last_text.contains("on the phone"))));
        // The notification goes out as the arrival is shown.
        h.pump_until(std::time::Duration::from_secs(2), || false);
        drop(gui);
        rt.shutdown_timeout(std::time::Duration::from_secs(5));
    });
    let after = probe();
    assert_eq!(
        after,
        before + 2,
        "one notification between the probes: the app's"
    );

    let app = before + 1;
    let _: () = phosh.call("CloseNotification", &(app,)).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (id, reason) = rx
            .recv_timeout(left)
            .expect("Phosh says it closed the app's notification");
        if id == app {
            // 3: closed by a call.
            assert_eq!(reason, 3);
            break;
        }
    }
}
