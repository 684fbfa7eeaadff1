//! Desktop notifications, shown by a notification server on a private
//! D-Bus bus (a real `dbus-daemon`, and a small server implementing
//! `org.freedesktop.Notifications` that records what it was asked to show
//! and to close, and clicks on request, replaces as the specification says
//! (a closed notification is not replaced: its replacement gets a new id),
//! and can be made to hang).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slint::ComponentHandle;
use strand_gui::headless::Headless;
use strand_gui::notify::CALL_TIMEOUT;
use strand_gui::{
    AppAdapter, ContactsAdapter, ConversationAdapter, Notify, Screen, SettingsAdapter,
};
use strand_node::Node;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use crate::bus::Bus;
use crate::support::{loopback, on_ui, options, Gui, PASS, WAIT};

const PATH: &str = "/org/freedesktop/Notifications";
const NAME: &str = "org.freedesktop.Notifications";
/// How long a hanging server takes to answer: far longer than the app
/// waits, and bounded, so that a failing test ends (the app, dropped,
/// waits for its core thread, which may be waiting for the server).
const HANG: Duration = Duration::from_secs(600);

/// What the server was asked to show.
#[derive(Debug, Clone)]
struct Note {
    id: u32,
    /// The notification it replaces (`replaces_id`): 0 for none.
    replaces: u32,
    title: String,
    body: String,
    actions: Vec<String>,
    /// The `transient` hint, if one was given.
    transient: Option<bool>,
}

struct Server {
    shown: Arc<Mutex<Vec<Note>>>,
    /// Ids the app asked to close.
    closed: Arc<Mutex<Vec<u32>>>,
    /// `Notify` calls answered at once; later ones wait for `gate`.
    answered: usize,
    /// Closed after [`HANG`], or when the server is dropped.
    gate: Arc<Semaphore>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Server {
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        _app_name: String,
        replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        hints: HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        // The call's number (for `answered`), and the id it gives.
        let (call, id) = {
            let mut shown = self.shown.lock().unwrap();
            let closed = self.closed.lock().unwrap();
            let call = shown.len() + 1;
            // A notification it shows is replaced and keeps its id; any
            // other (one it never showed, or one closed since) gets the
            // next one.
            let id = if replaces_id != 0
                && !closed.contains(&replaces_id)
                && shown.iter().any(|n| n.id == replaces_id)
            {
                replaces_id
            } else {
                shown.iter().map(|n| n.id).max().unwrap_or(0) + 1
            };
            shown.push(Note {
                id,
                replaces: replaces_id,
                title: summary,
                body,
                actions,
                transient: hints.get("transient").and_then(|v| bool::try_from(v).ok()),
            });
            (call, id)
        };
        if call > self.answered {
            // No permit is ever added: only closing the gate ends this.
            let _ = self.gate.acquire().await;
        }
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

/// A [`Server`] serving on a bus, and what it recorded.
struct Daemon {
    conn: zbus::blocking::Connection,
    shown: Arc<Mutex<Vec<Note>>>,
    closed: Arc<Mutex<Vec<u32>>>,
    gate: Arc<Semaphore>,
}

impl Daemon {
    /// Serves on the bus at `address`, answering the first `answered`
    /// `Notify` calls at once and the later ones only after [`HANG`] (or
    /// when dropped).
    fn start(address: &str, answered: usize) -> Daemon {
        let shown: Arc<Mutex<Vec<Note>>> = Arc::default();
        let closed: Arc<Mutex<Vec<u32>>> = Arc::default();
        let gate = Arc::new(Semaphore::new(0));
        let conn = zbus::blocking::connection::Builder::address(address)
            .unwrap()
            .name(NAME)
            .unwrap()
            .serve_at(
                PATH,
                Server {
                    shown: shown.clone(),
                    closed: closed.clone(),
                    answered,
                    gate: gate.clone(),
                },
            )
            .unwrap()
            .build()
            .unwrap();
        let later = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(HANG);
            later.close();
        });
        Daemon {
            conn,
            shown,
            closed,
            gate,
        }
    }

    /// How many notifications it was asked to show (answered or not).
    fn count(&self) -> usize {
        self.shown.lock().unwrap().len()
    }

    fn last(&self) -> Note {
        self.shown.lock().unwrap().last().cloned().unwrap()
    }

    /// The user clicks notification `id`.
    fn click(&self, id: u32) {
        self.conn
            .emit_signal(None::<&str>, PATH, NAME, "ActionInvoked", &(id, "default"))
            .unwrap();
    }

    /// The counts the app puts on its icon from now on (the launcher
    /// entry signals docks listen to), as they come.
    fn badges(&self) -> Arc<Mutex<Vec<i64>>> {
        let badges: Arc<Mutex<Vec<i64>>> = Arc::default();
        let docks = badges.clone();
        let rule = "type='signal',interface='com.canonical.Unity.LauncherEntry',member='Update'";
        let updates =
            zbus::blocking::MessageIterator::for_match_rule(rule, &self.conn, None).unwrap();
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
        badges
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.gate.close();
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

/// No conversation open, so that opening one shows.
fn close_conversation(gui: &Gui) {
    gui.ui.global::<ContactsAdapter>().set_current(-1);
    gui.ui
        .global::<ConversationAdapter>()
        .set_contact("".into());
}

#[test]
fn arrivals_notify_with_text_only_when_chosen_and_a_click_opens_the_conversation() {
    on_ui(|h| {
        let bus = Bus::start();
        let daemon = Daemon::start(&bus.address, usize::MAX);
        let badges = daemon.badges();

        let tmp = tempfile::tempdir().unwrap();
        let (gui, rt, bob) = alice_hears_bob(h, tmp.path(), bus.address.clone());

        // By default: who wrote, not what, kept out of the daemon's
        // history.
        rt.block_on(bob.send("Alice", "the door code is 4512"))
            .unwrap();
        assert!(h.pump_until(WAIT, || daemon.count() == 1));
        let first = daemon.last();
        assert_eq!(
            (first.title.as_str(), first.body.as_str()),
            ("Bob", "New message")
        );
        assert_eq!(first.actions, ["default", "Open"]);
        assert_eq!(first.transient, Some(true));
        assert!(h.pump_until(WAIT, || badges.lock().unwrap().last() == Some(&1)));

        // With texts shown, the text, made safe, and kept as the daemon
        // keeps any other.
        let settings = gui.ui.global::<SettingsAdapter>();
        settings.invoke_set_notify_text(true);
        assert!(h.pump_until(WAIT, || settings.get_notify_text()));
        rt.block_on(bob.send("Alice", "<b>bold</b>\nsecond line"))
            .unwrap();
        assert!(h.pump_until(WAIT, || daemon.count() == 2));
        assert_eq!(
            daemon.last().body,
            "&lt;b&gt;bold&lt;/b&gt;&lt;U+000A&gt;second line"
        );
        assert_eq!(daemon.last().transient, None);

        // Names hidden: the text under no name, kept out of the history.
        settings.invoke_set_notify_names(false);
        assert!(h.pump_until(WAIT, || !settings.get_notify_names()));
        rt.block_on(bob.send("Alice", "under no name")).unwrap();
        assert!(h.pump_until(WAIT, || daemon.count() == 3));
        let nameless = daemon.last();
        assert_eq!(
            (nameless.title.as_str(), nameless.body.as_str()),
            ("Strand", "under no name")
        );
        assert_eq!(nameless.transient, Some(true));
        settings.invoke_set_notify_names(true);
        assert!(h.pump_until(WAIT, || settings.get_notify_names()));

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
        assert!(h.pump_until(WAIT, || daemon.count() == 4));
        assert_eq!(daemon.last().body, "after");
        assert!(daemon
            .shown
            .lock()
            .unwrap()
            .iter()
            .all(|n| n.body != "while muted"));

        // Two unread now ("while muted" counts, muted or not).
        assert!(h.pump_until(WAIT, || badges.lock().unwrap().last() == Some(&2)));
        // A click opens the conversation.
        close_conversation(&gui);
        let id = daemon.last().id;
        daemon.click(id);
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
        assert!(h.pump_until(WAIT, || daemon.count() == 5));
        assert_eq!(daemon.last().title, "Robert");
        close_conversation(&gui);
        daemon.click(id);
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats
            && conv.get_contact() == "Robert"));
        // Robert deleted, and someone else added under his name: his old
        // notification opens nothing (it would have opened the newcomer).
        conv.invoke_delete_contact();
        assert!(h.pump_until(WAIT, || conv.get_contact().is_empty()
            && gui.contacts().is_empty()));
        // Every notification of his is taken off the screen.
        let all: Vec<u32> = daemon.shown.lock().unwrap().iter().map(|n| n.id).collect();
        assert_eq!(all.len(), 5);
        assert!(h.pump_until(WAIT, || {
            let mut c = daemon.closed.lock().unwrap().clone();
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
        close_conversation(&gui);
        daemon.click(id);
        let opened = || gui.screen() == Screen::Chats || conv.get_contact() == "Robert";
        assert!(!h.pump_until(Duration::from_secs(3), opened));

        drop(gui);
        rt.shutdown_timeout(Duration::from_secs(5));
    });
}

/// With names and texts hidden (texts are, by default), a notification
/// says nothing that tells one message from another: each later one
/// replaces the last (`replaces_id`) and counts on from it ("2 new
/// messages"), until the user looks at the app (the window comes in front,
/// or a click opens it): then it is taken off the screen
/// (`CloseNotification`), and the next counts afresh in a new one. The
/// app remembers each once, not once per message: locking closes the one
/// on the screen once. Before, each arrival stacked another identical
/// "Strand" / "New message" (`replaces_id` 0); and until this change, the
/// stale count stayed on the screen after the user had looked, to be
/// replaced by the next.
#[test]
fn arrivals_told_apart_by_nothing_replace_one_notification_that_counts_them() {
    on_ui(|h| {
        let bus = Bus::start();
        let daemon = Daemon::start(&bus.address, usize::MAX);
        let tmp = tempfile::tempdir().unwrap();
        let (gui, rt, bob) = alice_hears_bob(h, tmp.path(), bus.address.clone());
        let settings = gui.ui.global::<SettingsAdapter>();
        settings.invoke_set_notify_names(false);
        assert!(h.pump_until(WAIT, || !settings.get_notify_names()));
        assert!(!settings.get_notify_text());
        let closed = || daemon.closed.lock().unwrap().clone();

        rt.block_on(bob.send("Alice", "one")).unwrap();
        assert!(h.pump_until(WAIT, || daemon.count() == 1));
        let first = daemon.last();
        assert_eq!(
            (first.title.as_str(), first.body.as_str(), first.replaces),
            ("Strand", "New message", 0)
        );
        assert_eq!(first.transient, Some(true));

        // A batch of its own (the first was notified): it replaces the
        // first, counting both.
        rt.block_on(bob.send("Alice", "two")).unwrap();
        assert!(h.pump_until(WAIT, || daemon.count() == 2));
        let second = daemon.last();
        assert_eq!(second.replaces, first.id, "stacked: {second:?}");
        assert_eq!(
            (second.title.as_str(), second.body.as_str(), second.id),
            ("Strand", "2 new messages", first.id)
        );
        assert!(closed().is_empty());

        // The window comes in front: the user sees what it counted, and it
        // goes from the screen. Behind again, the next counts afresh in a
        // new one.
        let app = gui.app.as_ref().unwrap();
        app.in_front(true);
        assert!(
            h.pump_until(WAIT, || closed() == [first.id]),
            "not closed: {:?}",
            closed()
        );
        app.in_front(false);
        rt.block_on(bob.send("Alice", "three")).unwrap();
        assert!(h.pump_until(WAIT, || daemon.count() == 3));
        let third = daemon.last();
        assert_eq!((third.replaces, third.body.as_str()), (0, "New message"));
        assert_ne!(third.id, first.id);

        // A click opens the newest's conversation (Bob's) and takes the
        // notification away, and the next counts afresh again.
        close_conversation(&gui);
        daemon.click(third.id);
        let conv = gui.ui.global::<ConversationAdapter>();
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats
            && conv.get_contact() == "Bob"));
        assert!(
            h.pump_until(WAIT, || closed() == [first.id, third.id]),
            "not closed: {:?}",
            closed()
        );
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Settings);
        rt.block_on(bob.send("Alice", "four")).unwrap();
        assert!(h.pump_until(WAIT, || daemon.count() == 4));
        let fourth = daemon.last();
        assert_eq!((fourth.replaces, fourth.body.as_str()), (0, "New message"));

        // One notification on the screen, remembered once: locking
        // closes it once.
        settings.invoke_lock();
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Onboarding
            && !gui.onboarding().get_busy()));
        assert_eq!(closed(), [first.id, third.id, fourth.id]);

        drop(gui);
        rt.shutdown_timeout(Duration::from_secs(5));
    });
}

/// Locking takes the app's notifications off the screen and its count
/// off the icon, and a notification shown before the lock opens nothing
/// in the profile unlocked next (here the same one, where it would
/// otherwise have opened Bob). Before, the notifier kept its ids for the
/// life of the app: the notification stayed, and a click on it opened the
/// conversation of that name in whichever profile was unlocked.
#[test]
fn notifications_shown_before_a_lock_are_closed_and_open_nothing_after_it() {
    on_ui(|h| {
        let bus = Bus::start();
        let daemon = Daemon::start(&bus.address, usize::MAX);
        let badges = daemon.badges();
        let tmp = tempfile::tempdir().unwrap();
        let (gui, rt, bob) = alice_hears_bob(h, tmp.path(), bus.address.clone());
        rt.block_on(bob.send("Alice", "before the lock")).unwrap();
        assert!(h.pump_until(WAIT, || daemon.count() == 1));
        assert!(h.pump_until(WAIT, || badges.lock().unwrap().last() == Some(&1)));
        let id = daemon.last().id;

        gui.ui.global::<SettingsAdapter>().invoke_lock();
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Onboarding
            && !gui.onboarding().get_busy()));
        assert!(h.pump_until(WAIT, || *daemon.closed.lock().unwrap() == [id]));
        assert!(h.pump_until(WAIT, || badges.lock().unwrap().last() == Some(&0)));

        gui.onboarding().invoke_unlock(PASS.into());
        // Bob listed again: a click that looked him up would find him.
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats
            && gui.contacts().len() == 1));
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Settings);
        close_conversation(&gui);
        daemon.click(id);
        let conv = gui.ui.global::<ConversationAdapter>();
        let opened = || gui.screen() == Screen::Chats || conv.get_contact() == "Bob";
        assert!(!h.pump_until(Duration::from_secs(3), opened));

        drop(gui);
        rt.shutdown_timeout(Duration::from_secs(5));
    });
}

/// A notification server that takes a call and never answers holds the
/// app up for [`CALL_TIMEOUT`], not for ever: the next arrival still
/// shows, and the server is not asked again meanwhile. Before, `Notify`
/// had no timeout, and the core thread (every store read, every request
/// of the user's) waited on it for good (the bus itself never times a call
/// out).
#[test]
fn a_notification_server_that_does_not_answer_does_not_freeze_the_app() {
    on_ui(|h| {
        let bus = Bus::start();
        let daemon = Daemon::start(&bus.address, 0);
        let tmp = tempfile::tempdir().unwrap();
        let (gui, rt, bob) = alice_hears_bob(h, tmp.path(), bus.address.clone());
        rt.block_on(bob.send("Alice", "first")).unwrap();
        // The app is waiting for the server now.
        assert!(h.pump_until(WAIT, || daemon.count() == 1));
        rt.block_on(bob.send("Alice", "second")).unwrap();
        let shown = || {
            gui.contacts()
                .first()
                .is_some_and(|c| c.last_text == "second")
        };
        assert!(
            h.pump_until(WAIT.max(CALL_TIMEOUT * 2), shown),
            "the app froze waiting for the notification server"
        );
        // A server that did not answer is left alone for a while: each
        // call would hold the app up as long again.
        assert!(!h.pump_until(Duration::from_secs(1), || daemon.count() > 1));

        drop(gui);
        rt.shutdown_timeout(Duration::from_secs(5));
    });
}

/// Thousands of clicks on a notification, while the core thread is busy
/// (here waiting for the server's answer to the next `Notify`), take one
/// place in its queue: a request of the user's made after them is still
/// carried out, and the click opens the conversation once. Before, each
/// click queued a job; past the queue's 1,024 the user's requests were
/// dropped.
#[test]
fn a_flood_of_clicks_does_not_crowd_out_the_users_requests() {
    on_ui(|h| {
        let bus = Bus::start();
        let daemon = Daemon::start(&bus.address, 1);
        let tmp = tempfile::tempdir().unwrap();
        let (gui, rt, bob) = alice_hears_bob(h, tmp.path(), bus.address.clone());
        rt.block_on(bob.send("Alice", "one")).unwrap();
        assert!(h.pump_until(WAIT, || daemon.count() == 1));
        let id = daemon.last().id;
        // The next notification waits on the server, and the core thread
        // with it.
        rt.block_on(bob.send("Alice", "two")).unwrap();
        assert!(h.pump_until(WAIT, || daemon.count() == 2));
        close_conversation(&gui);
        for _ in 0..3000 {
            daemon.click(id);
        }
        // Time for the app to take the clicks in, well within the time
        // the core thread waits.
        h.pump_until(Duration::from_secs(1), || false);
        let settings = gui.ui.global::<SettingsAdapter>();
        settings.invoke_set_notify_text(true);
        assert!(
            h.pump_until(WAIT, || settings.get_notify_text()),
            "the user's request was dropped"
        );
        let conv = gui.ui.global::<ConversationAdapter>();
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats
            && conv.get_contact() == "Bob"));

        drop(gui);
        rt.shutdown_timeout(Duration::from_secs(5));
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
