//! The app's node syncing with a second node over real loopback sockets.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use slint::{ComponentHandle, Model};
use strand_gui::{
    AppAdapter, ContactsAdapter, ConversationAdapter, NetworkAdapter, Screen, SettingsAdapter,
};
use strand_node::{Delivery, Node};

use crate::support::{loopback, on_ui, options, Gui, WAIT};

#[test]
fn an_incoming_message_updates_the_list_and_a_reply_is_delivered() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("alice")));
        gui.create(h, "Alice");

        // Bob: a second, real node with its own profile and runtime.
        let bob = gui.bob(tmp.path());
        let bob_code = bob.identity().invite().to_text();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let bob = rt.block_on(Node::start(bob, loopback())).unwrap();
        let bob_addr = rt.block_on(bob.wait_listening(WAIT))[0].clone();

        gui.add_bob(h, &bob_code);
        // Alice leaves the conversation so that what arrives is unread.
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(strand_gui::Screen::Network);
        let net = gui.ui.global::<NetworkAdapter>();
        net.invoke_dial("not an address".into());
        assert!(!net.get_dial_ok());
        net.invoke_dial(bob_addr.to_string().into());
        assert!(net.get_dial_ok(), "{}", net.get_dial_result());

        rt.block_on(bob.send("Alice", "hi Alice, are you there?"))
            .unwrap();
        gui.wait_first_unread(h, 1);
        let c = &gui.contacts()[0];
        assert_eq!(c.last_text, "hi Alice, are you there?");
        assert!(!c.last_outgoing);
        assert_eq!(gui.ui.global::<AppAdapter>().get_unread_total(), 1);
        assert_eq!(gui.ui.get_window_title(), "Strand (1 unread)");
        assert!(h.pump_until(WAIT, || gui.contacts()[0].online));
        assert_eq!(gui.contacts()[0].reach, "LAN · connected");
        assert!(h.pump_until(WAIT, || net
            .get_peers()
            .iter()
            .any(|p| p.name == "Bob" && p.online)));

        // Opening it reads it.
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(strand_gui::Screen::Chats);
        gui.ui.global::<ContactsAdapter>().invoke_open(0);
        assert!(h.pump_until(WAIT, || gui.contacts()[0].unread == 0));
        assert_eq!(gui.ui.global::<AppAdapter>().get_unread_total(), 0);
        assert_eq!(gui.ui.get_window_title(), "Strand");

        // The reply reaches Bob, and Alice sees it delivered.
        let conv = gui.ui.global::<ConversationAdapter>();
        assert!(conv.invoke_send("yes — here".into()));
        let messages = conv.get_messages();
        assert!(
            h.pump_until(WAIT, || messages.row_count() == 2
                && messages.row_data(1).is_some_and(|m| m.state == "delivered")),
            "{:?}",
            messages.row_data(1)
        );
        let at_bob = bob.with_profile(|p| p.conversation("Alice").unwrap());
        assert_eq!(at_bob.len(), 2);
        assert_eq!(at_bob[1].text, "yes — here");
        assert_eq!(at_bob[0].delivery, Some(Delivery::Delivered));

        // The window is not in front (a headless window never is: hidden,
        // or behind another): what arrives in the open conversation shows,
        // unread, until it comes in front.
        rt.block_on(bob.send("Alice", "still there?")).unwrap();
        assert!(h.pump_until(WAIT, || messages.row_count() == 3));
        assert!(h.pump_until(WAIT, || gui.contacts()[0].last_text == "still there?"));
        assert_eq!(gui.contacts()[0].unread, 1, "read while away");
        assert_eq!(gui.ui.global::<AppAdapter>().get_unread_total(), 1);
        gui.app.as_ref().unwrap().in_front(true);
        assert!(h.pump_until(WAIT, || gui.contacts()[0].unread == 0));
        assert_eq!(gui.ui.get_window_title(), "Strand");
        drop(gui);
        rt.shutdown_timeout(std::time::Duration::from_secs(5));
    });
}

/// A message of the user's marked sent, then delivered, while its
/// conversation is open leaves the conversation where it is scrolled:
/// only what arrives scrolls it to the newest. Before, each mark
/// scrolled it to the bottom, away from what the user was reading.
#[test]
fn a_delivered_mark_does_not_scroll_the_open_conversation() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("alice")));
        gui.create(h, "Alice");
        let bob = gui.bob(tmp.path());
        let bob_code = bob.identity().invite().to_text();
        // Bob added (his conversation opens), not reached yet: what Alice
        // writes waits, queued.
        gui.add_bob(h, &bob_code);
        let conv = gui.ui.global::<ConversationAdapter>();
        assert!(h.pump_until(WAIT, || conv.get_contact() == "Bob"));
        assert!(conv.invoke_send("are you there?".into()));
        let messages = conv.get_messages();
        assert!(
            h.pump_until(WAIT, || messages.row_count() == 1
                && messages.row_data(0).is_some_and(|m| m.state == "queued")),
            "{:?}",
            messages.row_data(0)
        );
        // Whatever the send still had to show, shown.
        h.pump_until(std::time::Duration::from_millis(500), || false);
        let scrolled = conv.get_scroll_to_end();

        let rt = tokio::runtime::Runtime::new().unwrap();
        let bob = rt.block_on(Node::start(bob, loopback())).unwrap();
        let bob_addr = rt.block_on(bob.wait_listening(WAIT))[0].clone();
        let net = gui.ui.global::<NetworkAdapter>();
        net.invoke_dial(bob_addr.to_string().into());
        assert!(net.get_dial_ok(), "{}", net.get_dial_result());
        assert!(
            h.pump_until(WAIT, || messages
                .row_data(0)
                .is_some_and(|m| m.state == "delivered")),
            "{:?}",
            messages.row_data(0)
        );
        // The refreshes the marks brought, all done.
        h.pump_until(std::time::Duration::from_millis(500), || false);
        assert_eq!(messages.row_count(), 1, "nothing arrived");
        assert_eq!(conv.get_scroll_to_end(), scrolled, "a mark scrolled it");
        drop(gui);
        rt.shutdown_timeout(std::time::Duration::from_secs(5));
    });
}

/// The `strand` binary, which `cargo test --workspace` builds next to this
/// test's directory (strand-node's own tests need it).
fn strand_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("strand");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p strand-node`) first",
        bin.display()
    );
    bin
}

struct Cli {
    dir: PathBuf,
}

impl Cli {
    fn command(&self) -> Command {
        let mut c = Command::new(strand_bin());
        c.env("STRAND_PROFILE", &self.dir)
            .env("STRAND_PASSPHRASE", "bob's passphrase")
            .env_remove("STRAND_LOG")
            .stdin(Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "strand {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_app_syncs_with_strand_run_and_attaches_to_it() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("alice")));
        gui.create(h, "Alice");

        let bob = Cli {
            dir: tmp.path().join("bob"),
        };
        bob.ok(&["init", "--name", "Bob"]);
        bob.ok(&["add", &gui.invite(), "--name", "Alice"]);
        let bob_code = bob.ok(&["invite"]).trim().to_owned();
        let mut child = bob
            .command()
            .args(["run", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let running = Running(child);
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("LAN: ")
            .unwrap_or_else(|| panic!("{line:?}"))
            .to_owned();
        std::thread::spawn(move || for _ in out.lines() {});

        // While `strand run` holds Bob's profile, an app on it attaches to
        // that node over its control socket: no passphrase asked.
        let other = Gui::new(h, options(&bob.dir));
        assert!(h.pump_until(WAIT, || other.screen() == Screen::Chats));
        assert!(other.ui.global::<SettingsAdapter>().get_attached());
        assert_eq!(other.ui.global::<AppAdapter>().get_my_name(), "Bob");
        assert!(h.pump_until(WAIT, || other.contacts().len() == 1));
        assert_eq!(other.contacts()[0].name, "Alice");
        // Locking lets go of the node, which goes on; the window offers to
        // open it again.
        other.ui.global::<SettingsAdapter>().invoke_lock();
        assert!(h.pump_until(WAIT, || other.onboarding().get_running()
            && !other.onboarding().get_busy()));
        assert!(other.onboarding().get_in_use());
        assert!(bob.ok(&["status"]).contains("Bob"));
        other.onboarding().invoke_retry();
        assert!(h.pump_until(WAIT, || other.screen() == Screen::Chats));
        // Bob renames himself from the terminal: the attached window shows
        // the new name, and an invite that carries it, at its next
        // refresh. Before, it kept both until it was locked.
        assert_eq!(bob.ok(&["name", "Bobby"]), "Bobby\n");
        let other_invite = || {
            let code = other
                .ui
                .global::<strand_gui::AddContactAdapter>()
                .get_my_invite();
            strand_sync::Invite::from_text(&code).map(|i| i.name)
        };
        assert!(
            h.pump_until(WAIT, || other.ui.global::<AppAdapter>().get_my_name()
                == "Bobby"
                && other_invite().is_ok_and(|n| n == "Bobby"))
        );
        assert_eq!(other.ui.global::<SettingsAdapter>().get_name(), "Bobby");

        gui.add_bob(h, &bob_code);
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(strand_gui::Screen::Settings);
        gui.ui.global::<NetworkAdapter>().invoke_dial(addr.into());
        bob.ok(&["send", "Alice", "from the terminal"]);
        gui.wait_first_unread(h, 1);
        assert_eq!(gui.contacts()[0].last_text, "from the terminal");

        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(strand_gui::Screen::Chats);
        gui.ui.global::<ContactsAdapter>().invoke_open(0);
        let conv = gui.ui.global::<ConversationAdapter>();
        assert!(conv.invoke_send("from the app".into()));
        let messages = conv.get_messages();
        assert!(h.pump_until(WAIT, || messages.row_count() == 2
            && messages.row_data(1).is_some_and(|m| m.state == "delivered")));
        let read = bob.ok(&["read", "Alice"]);
        assert!(read.contains("from the app"), "{read}");
        // The attached window shows it too, from `strand run`'s events
        // (read already, or not yet: `strand read` just marked it read).
        assert!(h.pump_until(WAIT, || other
            .contacts()
            .first()
            .is_some_and(|c| c.last_text == "from the app")));
        assert_eq!(other.contacts()[0].last_text, "from the app");

        // The app's own node serves its profile's control socket: `strand`
        // reaches it while the app holds the profile, with no passphrase.
        let alice = Cli {
            dir: tmp.path().join("alice"),
        };
        let contacts = alice
            .command()
            .env_remove("STRAND_PASSPHRASE")
            .arg("contacts")
            .output()
            .unwrap();
        assert!(contacts.status.success(), "{contacts:?}");
        assert!(String::from_utf8_lossy(&contacts.stdout).contains("Bob"));
        // A new group's form is open with Bob ticked as he is renamed.
        let groups = gui.ui.global::<strand_gui::GroupsAdapter>();
        groups.invoke_new_group();
        crate::support::tick(h, &groups, "Bob");
        // Bob renamed from the terminal while his conversation is open:
        // the window follows him under the new name, and writes to him.
        let renamed = alice
            .command()
            .env_remove("STRAND_PASSPHRASE")
            .args(["rename-contact", "Bob", "Robert"])
            .output()
            .unwrap();
        assert!(renamed.status.success(), "{renamed:?}");
        assert!(h.pump_until(WAIT, || conv.get_contact() == "Robert"
            && gui.contacts().first().is_some_and(|c| c.name == "Robert")));
        // The form keeps its ticks by key, in the list's rows: Robert is
        // the one ticked, and the group is made with him. (Kept by row, a
        // tick stayed on the row while the choice held "Bob", and making
        // the group failed on a contact no longer there; kept by name, he
        // was unticked.)
        assert!(h.pump_until(WAIT, || groups
            .get_contacts()
            .iter()
            .map(|c| (c.name, c.chosen))
            .eq([("Robert".into(), true)])));
        assert!(groups.get_creating());
        groups.invoke_create("Desk".into());
        assert!(h.pump_until(WAIT, || !groups.get_creating()));
        assert_eq!(groups.get_create_error(), "");
        let members = alice
            .command()
            .env_remove("STRAND_PASSPHRASE")
            .args(["group", "members", "Desk"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&members.stdout).contains("Robert"),
            "{members:?}"
        );
        assert!(conv.invoke_send("to Robert".into()));
        assert!(h.pump_until(WAIT, || messages.row_count() == 3));
        // Robert deleted from the terminal while his conversation is
        // open (the file picker too): it closes, with nothing of it left
        // on screen, and the list no longer shows him.
        conv.set_attaching(true);
        let deleted = alice
            .command()
            .env_remove("STRAND_PASSPHRASE")
            .args(["delete-contact", "Robert", "--yes"])
            .output()
            .unwrap();
        assert!(deleted.status.success(), "{deleted:?}");
        assert!(h.pump_until(WAIT, || conv.get_contact().is_empty()
            && gui.contacts().is_empty()));
        assert_eq!(
            gui.ui.global::<strand_gui::ContactsAdapter>().get_current(),
            -1
        );
        assert_eq!(messages.row_count(), 0);
        assert!(!conv.get_attaching());
        // A contact added from the terminal while the new group's form is
        // open shows in it. Before, the form kept the list it opened with.
        groups.invoke_new_group();
        assert!(h.pump_until(WAIT, || groups.get_creating()));
        let dave = strand_sync::Identity::generate("Dave", &mut strand_node::os_rng()).unwrap();
        let added = alice
            .command()
            .env_remove("STRAND_PASSPHRASE")
            .args(["add", &dave.invite().to_text(), "--name", "Dave"])
            .output()
            .unwrap();
        assert!(added.status.success(), "{added:?}");
        assert!(h.pump_until(WAIT, || groups
            .get_contacts()
            .iter()
            .map(|c| c.name)
            .eq(["Dave"])));
        groups.set_creating(false);

        // When the node the window is attached to stops, the window says
        // so and offers to unlock the profile itself.
        drop(running);
        assert!(h.pump_until(WAIT, || other.screen() == Screen::Onboarding
            && other.onboarding().get_error().contains("stopped")));
        assert!(h.pump_until(WAIT, || !other.onboarding().get_in_use()));
        other.onboarding().invoke_unlock("bob's passphrase".into());
        assert!(h.pump_until(WAIT, || other.screen() == Screen::Chats));
        assert!(!other.ui.global::<SettingsAdapter>().get_attached());
    });
}
