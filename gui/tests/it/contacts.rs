//! Adding contacts and sending.

use slint::{ComponentHandle, Model};
use strand_gui::{AddContactAdapter, ContactsAdapter, ConversationAdapter, Screen};
use strand_sync::Identity;

use crate::support::{on_ui, options, Gui, WAIT};

#[test]
fn a_valid_code_adds_a_contact_and_a_bad_one_shows_the_error() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("profile")));
        gui.create(h, "Alice");
        let a = gui.ui.global::<AddContactAdapter>();
        let bob = Identity::generate("Bob", &mut strand_node::os_rng()).unwrap();
        let code = bob.invite().to_text();

        // A typo: one character changed.
        let mut bad: Vec<char> = code.chars().collect();
        let i = bad.len() / 2;
        bad[i] = if bad[i] == 'a' { 'b' } else { 'a' };
        a.invoke_code_edited(bad.iter().collect::<String>().into());
        assert!(!a.get_code_ok());
        assert!(
            a.get_code_error().starts_with("Not a valid invite"),
            "{}",
            a.get_code_error()
        );
        a.invoke_code_edited("hello".into());
        assert!(!a.get_code_ok() && !a.get_code_error().is_empty());
        a.invoke_code_edited(gui.invite().into());
        assert!(a.get_code_error().contains("your own invite"));
        // Adding anyway is refused before the store is touched.
        a.invoke_add("strand1nonsense".into(), "X".into());
        h.pump();
        assert!(gui.contacts().is_empty());

        // Valid, with spaces and upper case as a QR reader gives it.
        a.invoke_code_edited(format!("  {}  ", code.to_uppercase()).into());
        assert!(a.get_code_ok(), "{}", a.get_code_error());
        assert_eq!(a.get_suggested_name(), "Bob");
        a.invoke_add(code.clone().into(), "Bob".into());
        assert!(h.pump_until(WAIT, || gui.contacts().len() == 1
            && gui.ui.global::<ContactsAdapter>().get_current() == 0));
        assert_eq!(gui.screen(), Screen::Chats);
        let c = &gui.contacts()[0];
        assert_eq!(
            (c.name.as_str(), c.initials.as_str(), c.unread),
            ("Bob", "B", 0)
        );
        assert_eq!(c.reach, "Not seen since Strand started");
        assert_eq!(gui.ui.global::<ConversationAdapter>().get_contact(), "Bob");

        // The same person again: a clear error, nothing added.
        a.invoke_add(code.into(), "Robert".into());
        assert!(h.pump_until(WAIT, || !a.get_add_error().is_empty()));
        assert!(
            a.get_add_error().contains("already"),
            "{}",
            a.get_add_error()
        );
        assert_eq!(gui.contacts().len(), 1);
    });
}

#[test]
fn sending_appends_a_message() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("profile")));
        gui.create(h, "Alice");
        let bob = Identity::generate("Bob", &mut strand_node::os_rng()).unwrap();
        let a = gui.ui.global::<AddContactAdapter>();
        a.invoke_add(bob.invite().to_text().into(), "Bob".into());
        assert!(h.pump_until(WAIT, || gui.contacts().len() == 1));

        let c = gui.ui.global::<ConversationAdapter>();
        assert!(
            !c.invoke_send("   \n".into()),
            "blank messages are not sent"
        );
        assert!(c.invoke_send("hello Bob\nsecond line".into()));
        assert!(c.invoke_send("and another".into()));
        let messages = c.get_messages();
        assert!(h.pump_until(WAIT, || messages.row_count() == 2
            && messages.row_data(1).is_some_and(|m| m.loaded)));
        let first = messages.row_data(0).unwrap();
        assert_eq!(first.text, "hello Bob\nsecond line");
        assert!(first.outgoing);
        assert_eq!(first.state, "queued", "Bob has not been seen");
        assert_eq!(first.day, "Today");
        assert_eq!(
            messages.row_data(1).unwrap().day,
            "",
            "same day: one heading"
        );
        assert!(h.pump_until(WAIT, || gui.contacts()[0].last_text == "and another"));
        assert!(gui.contacts()[0].last_outgoing);

        // Too long for one message: refused with the node's reason (as
        // `strand send` says), nothing stored.
        assert!(!c.invoke_send("x".repeat(2 << 20).into()));
        assert!(
            c.get_error().contains("longer than one holds"),
            "{}",
            c.get_error()
        );
        h.pump();
        assert_eq!(messages.row_count(), 2);
        // Up to what one message holds, it is sent, as the CLI and a group
        // send it. Before, the app refused anything within 1 kB of it.
        let long = "y".repeat(strand_sync::limits::MAX_BODY_LEN - 512);
        assert!(c.invoke_send(long.clone().into()), "{}", c.get_error());
        assert!(h.pump_until(WAIT, || messages.row_count() == 3
            && messages
                .row_data(2)
                .is_some_and(|m| m.loaded && m.text == long.as_str())));
    });
}
