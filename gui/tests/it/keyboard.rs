//! Real pointer and key events through the window: click a contact, arrow
//! keys move through the list, Enter sends, Shift+Enter adds a line,
//! Ctrl+number switches screens.

use i_slint_backend_testing::{AccessibleRole, ElementHandle};
use slint::platform::{Key, WindowEvent};
use slint::{ComponentHandle, LogicalPosition, Model, SharedString};
use strand_gui::{AppAdapter, ContactsAdapter, ConversationAdapter, Screen, SettingsAdapter};

use crate::support::{on_ui, options, Gui, WAIT};

fn click(gui: &Gui, x: f32, y: f32) {
    crate::support::click(&gui.ui, LogicalPosition::new(x, y));
}

fn key(gui: &Gui, text: impl Into<SharedString>) {
    let text = text.into();
    gui.ui
        .window()
        .dispatch_event(WindowEvent::KeyPressed { text: text.clone() });
    gui.ui
        .window()
        .dispatch_event(WindowEvent::KeyReleased { text });
}

fn with_modifier(gui: &Gui, modifier: Key, text: impl Into<SharedString>) {
    let m: SharedString = modifier.into();
    gui.ui
        .window()
        .dispatch_event(WindowEvent::KeyPressed { text: m.clone() });
    key(gui, text);
    gui.ui
        .window()
        .dispatch_event(WindowEvent::KeyReleased { text: m });
}

#[test]
fn the_keyboard_drives_the_chats() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("profile")));
        gui.create(h, "Alice");
        gui.add_made_up(h, &["Bob", "Carol"]);
        h.pump();
        // The list: 190 px rail + 1 px rule, then the "Chats" heading and
        // 72 px rows. Click the first row, then arrow down.
        // Each step waits for the conversation it opens, not only the
        // row marked current: the text below goes to whom the screen
        // shows, and a refresh may mark the row before the conversation
        // opened (the one added last, Carol, is open at first).
        let contacts = gui.ui.global::<ContactsAdapter>();
        let conversation = gui.ui.global::<ConversationAdapter>();
        let (first, second) = (
            gui.contacts()[0].name.clone(),
            gui.contacts()[1].name.clone(),
        );
        click(&gui, 340.0, 80.0);
        assert_eq!(contacts.get_current(), 0);
        assert!(h.pump_until(WAIT, || contacts.get_current() == 0
            && conversation.get_contact() == first.as_str()));
        key(&gui, Key::DownArrow);
        assert!(h.pump_until(WAIT, || contacts.get_current() == 1
            && conversation.get_contact() == second.as_str()));
        key(&gui, Key::UpArrow);
        assert!(h.pump_until(WAIT, || contacts.get_current() == 0
            && conversation.get_contact() == first.as_str()));

        // The compose box sits at the bottom of the window.
        click(&gui, 700.0, 655.0);
        h.pump();
        for c in "hi".chars() {
            key(&gui, c.to_string());
        }
        with_modifier(&gui, Key::Shift, Key::Return);
        for c in "there".chars() {
            key(&gui, c.to_string());
        }
        key(&gui, Key::Return);
        let messages = gui.ui.global::<ConversationAdapter>().get_messages();
        assert!(h.pump_until(WAIT, || messages.row_count() == 1
            && messages.row_data(0).is_some_and(|m| m.loaded)));
        assert_eq!(messages.row_data(0).unwrap().text, "hi\nthere");

        with_modifier(&gui, Key::Control, "3");
        h.pump();
        assert_eq!(gui.screen(), Screen::Network);
        with_modifier(&gui, Key::Control, "1");
        h.pump();
        assert_eq!(gui.screen(), Screen::Chats);
    });
}

/// A press on a chat row, then the list re-sorts under the pointer (a
/// message from the contact below came in), then the release: no one
/// else is opened. Before, the release opened whoever the row showed by
/// then.
#[test]
fn a_row_that_changes_under_a_press_opens_no_one() {
    use slint::platform::PointerEventButton;
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("profile")));
        gui.create(h, "Alice");
        gui.add_made_up(h, &["Bob", "Carol", "Dave"]);
        h.pump();
        let contacts = gui.ui.global::<ContactsAdapter>();
        let conversation = gui.ui.global::<ConversationAdapter>();
        let rows = contacts.get_contacts();
        let (first, second) = (rows.row_data(0).unwrap(), rows.row_data(1).unwrap());
        // The one added last is open; the press is on the first row.
        let open = conversation.get_contact();
        assert!(open != first.name && open != second.name, "{open}");
        // Its row is marked current once the list has been shown for it.
        assert!(
            h.pump_until(WAIT, || usize::try_from(contacts.get_current())
                .ok()
                .and_then(|i| rows.row_data(i))
                .is_some_and(|row| row.name == open))
        );
        let current = contacts.get_current();
        let at = LogicalPosition::new(340.0, 80.0);
        let w = gui.ui.window();
        w.dispatch_event(WindowEvent::PointerMoved { position: at });
        w.dispatch_event(WindowEvent::PointerPressed {
            position: at,
            button: PointerEventButton::Left,
        });
        // Re-sorted in place, as the app does. Nothing is pumped until the
        // release: the app's own refresh (every few seconds, or after an
        // event) would sort the rows back under the press, and the release
        // would then rightly open whom the row showed at the press.
        rows.set_row_data(0, second.clone());
        rows.set_row_data(1, first.clone());
        w.dispatch_event(WindowEvent::PointerReleased {
            position: at,
            button: PointerEventButton::Left,
        });
        // A row that opens someone marks itself current at once, before
        // the node is asked.
        assert_eq!(contacts.get_current(), current, "no row was opened");
        h.pump();
        assert_eq!(conversation.get_contact(), open, "no one else opened");
        // A click on it now opens whom it shows (read at the click: the
        // app may have sorted the rows back meanwhile).
        let shown = rows.row_data(0).unwrap().name;
        click(&gui, 340.0, 80.0);
        assert!(h.pump_until(WAIT, || conversation.get_contact() == shown));
    });
}

/// The timer's box (labelled "Disappearing messages"), found as a user's
/// screen reader finds it.
fn timer_box(gui: &Gui) -> ElementHandle {
    ElementHandle::find_by_accessible_label(&gui.ui, "Disappearing messages")
        .find(|e| e.accessible_role() == Some(AccessibleRole::Combobox))
        .expect("the timer's box on screen")
}

/// A timer picked in its box with the keyboard shows there; another
/// conversation opened shows its own (none), and the first shows its
/// pick again. Before, the pick cut the box loose from the app (Slint
/// drops a one-way binding that the widget writes): it showed the first
/// pick in every conversation, and no timer set from elsewhere.
#[test]
fn the_timer_s_box_shows_the_open_conversation_s_timer() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("profile")));
        gui.create(h, "Alice");
        gui.add_made_up(h, &["Bob", "Carol"]);
        let contacts = gui.ui.global::<ContactsAdapter>();
        let conversation = gui.ui.global::<ConversationAdapter>();
        // Rows re-sort as timers are written: opened by name.
        let open = |name: &str| {
            let row = gui.contacts().iter().position(|c| c.name == name).unwrap();
            contacts.invoke_open(row as i32);
            assert!(h.pump_until(WAIT, || conversation.get_contact() == name));
        };
        let shown = || timer_box(&gui).accessible_value().unwrap_or_default();
        open("Bob");
        h.pump();
        assert_eq!(shown(), "Messages stay");
        // Its list opened, one down is "5 minutes".
        timer_box(&gui).invoke_accessible_expand_action();
        h.pump();
        key(&gui, Key::DownArrow);
        key(&gui, Key::Return);
        // What the node then read back.
        assert!(h.pump_until(WAIT, || conversation.get_timer() == 1));
        assert_eq!(shown(), "5 minutes");
        open("Carol");
        assert!(h.pump_until(WAIT, || conversation.get_timer() == 0));
        h.pump();
        assert_eq!(shown(), "Messages stay");
        open("Bob");
        assert!(h.pump_until(WAIT, || conversation.get_timer() == 1));
        h.pump();
        assert_eq!(shown(), "5 minutes");
    });
}

/// A switch in the settings flipped by the user, then the profile wiped
/// and a new one made: the switch shows the new profile's preference
/// (no text shown, the default), not the old one's. Before, the flip cut
/// the switch loose from the app, as the timer's box above. The same for
/// the switch naming who wrote (on by default).
#[test]
fn a_flipped_switch_shows_the_next_profile_s_preference() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("profile")));
        gui.create(h, "Alice");
        let settings = gui.ui.global::<SettingsAdapter>();
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats));
        assert!(!settings.get_notify_text());
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Settings);
        h.pump();
        // Tall enough that the settings need no scrolling (elements
        // scrolled out of sight are not found).
        h.resize(&gui.ui, 1100, 2400, 1.0);
        let labelled = |label: &str| {
            ElementHandle::find_by_accessible_label(&gui.ui, label)
                .find(|e| e.accessible_role() == Some(AccessibleRole::Switch))
                .expect("the switch on screen")
        };
        let switch =
            || labelled("Show the message text (notifications can show on a locked screen)");
        let names = || {
            labelled("Name who wrote, and the group (notifications can show on a locked screen)")
        };
        assert_eq!(switch().accessible_checked(), Some(false));
        switch().invoke_accessible_default_action();
        // What the node then read back.
        assert!(h.pump_until(WAIT, || settings.get_notify_text()));
        assert_eq!(switch().accessible_checked(), Some(true));
        assert_eq!(names().accessible_checked(), Some(true));
        names().invoke_accessible_default_action();
        assert!(h.pump_until(WAIT, || !settings.get_notify_names()));
        assert_eq!(names().accessible_checked(), Some(false));
        settings.invoke_wipe("Alice".into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Onboarding));
        gui.create(h, "Ann");
        assert!(h.pump_until(WAIT, || !settings.get_notify_text()));
        assert!(h.pump_until(WAIT, || settings.get_notify_names()));
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Settings);
        h.pump();
        assert_eq!(switch().accessible_checked(), Some(false));
        assert_eq!(names().accessible_checked(), Some(true));
    });
}

/// The message box, found as a screen reader finds it.
fn message_box(gui: &Gui, label: &str) -> ElementHandle {
    ElementHandle::find_by_accessible_label(&gui.ui, label)
        .find(|e| e.accessible_role() == Some(AccessibleRole::TextInput))
        .expect("the message box on screen")
}

/// A text typed to one contact, then another contact opened: their box
/// is empty, and the first one's text is there again when they are
/// opened, and goes to them alone. Before, the box kept the text, and
/// Enter sent it to whoever was open by then.
#[test]
fn a_draft_stays_with_its_conversation() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("profile")));
        gui.create(h, "Alice");
        gui.add_made_up(h, &["Bob", "Carol"]);
        h.pump();
        let contacts = gui.ui.global::<ContactsAdapter>();
        let conversation = gui.ui.global::<ConversationAdapter>();
        let open = |name: &str| {
            let row = gui.contacts().iter().position(|c| c.name == name).unwrap();
            contacts.invoke_open(row as i32);
            assert!(h.pump_until(WAIT, || conversation.get_contact() == name));
            h.pump();
        };
        let typed = || {
            message_box(&gui, "Message")
                .accessible_value()
                .unwrap_or_default()
        };
        open("Bob");
        click(&gui, 700.0, 655.0);
        h.pump();
        for c in "door 4512".chars() {
            key(&gui, c.to_string());
        }
        h.pump();
        assert_eq!(typed(), "door 4512");
        open("Carol");
        assert_eq!(typed(), "", "Bob's text is not in Carol's box");
        open("Bob");
        assert_eq!(typed(), "door 4512", "Bob's text is kept for him");
        click(&gui, 700.0, 655.0);
        h.pump();
        key(&gui, Key::Return);
        let messages = conversation.get_messages();
        assert!(h.pump_until(WAIT, || messages.row_count() == 1
            && messages.row_data(0).is_some_and(|m| m.loaded)));
        assert_eq!(messages.row_data(0).unwrap().text, "door 4512");
        assert!(
            h.pump_until(WAIT, || typed().is_empty()),
            "sent: the box empties"
        );
        open("Carol");
        assert_eq!(typed(), "");
        let rows = conversation.get_messages();
        assert!(
            h.pump_until(WAIT, || rows.row_count() == 0),
            "nothing went to Carol"
        );
        let carol = gui
            .contacts()
            .into_iter()
            .find(|c| c.name == "Carol")
            .unwrap();
        assert_ne!(carol.last_text, "door 4512");
    });
}

/// Regression (drafts are kept by contact name on the UI thread, and were
/// forgotten only when a profile locked: a window dropped left them
/// there, and the next window of the process, on another profile, showed
/// the text typed to the first one's Bob in its own Bob's box, where
/// Enter would send it to him). Now dropping the app forgets them, as
/// locking does. Fails without the call to `drafts::forget_all` in
/// `App`'s drop: the second Bob's box holds "door 4512".
#[test]
fn a_draft_does_not_outlive_its_window() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let open = |gui: &Gui, name: &str| {
            let row = gui.contacts().iter().position(|c| c.name == name).unwrap();
            gui.ui.global::<ContactsAdapter>().invoke_open(row as i32);
            let conversation = gui.ui.global::<ConversationAdapter>();
            assert!(h.pump_until(WAIT, || conversation.get_contact() == name));
            h.pump();
        };
        let typed = |gui: &Gui| {
            message_box(gui, "Message")
                .accessible_value()
                .unwrap_or_default()
        };
        let gui = Gui::new(h, options(&tmp.path().join("alice")));
        gui.create(h, "Alice");
        gui.add_made_up(h, &["Bob", "Carol"]);
        h.pump();
        open(&gui, "Bob");
        click(&gui, 700.0, 655.0);
        h.pump();
        for c in "door 4512".chars() {
            key(&gui, c.to_string());
        }
        h.pump();
        assert_eq!(typed(&gui), "door 4512");
        // Bob's text is kept for him while Carol's conversation is open.
        open(&gui, "Carol");
        assert_eq!(typed(&gui), "");
        drop(gui);

        let gui = Gui::new(h, options(&tmp.path().join("dave")));
        gui.create(h, "Dave");
        gui.add_made_up(h, &["Bob"]);
        h.pump();
        open(&gui, "Bob");
        assert_eq!(
            typed(&gui),
            "",
            "the other window's text is not in this Bob's box"
        );
    });
}

/// A text the node refuses (too long for one message) stays in the box,
/// with why. Before, the group's box emptied as the text went to the
/// node, and the text was lost with the refusal.
#[test]
fn a_refused_text_stays_in_the_box() {
    use strand_gui::GroupsAdapter;
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("profile")));
        gui.create(h, "Alice");
        gui.add_made_up(h, &["Bob"]);
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Groups);
        let g = gui.ui.global::<GroupsAdapter>();
        g.invoke_new_group();
        crate::support::tick(h, &g, "Bob");
        g.invoke_create("Newsroom".into());
        assert!(h.pump_until(WAIT, || !g.get_creating() && g.get_name() == "Newsroom"));
        h.pump();
        let long = "x".repeat(strand_sync::limits::MAX_BODY_LEN + 1);
        // Into the box as typed (one key event, a text as long as that).
        let (at, size) = {
            let b = message_box(&gui, "Message to the group");
            (b.absolute_position(), b.size())
        };
        click(&gui, at.x + size.width / 2.0, at.y + size.height / 2.0);
        h.pump();
        key(&gui, long.as_str());
        h.pump();
        let send = ElementHandle::find_by_accessible_label(&gui.ui, "Send")
            .find(|e| e.accessible_role() == Some(AccessibleRole::Button))
            .expect("the Send button");
        send.invoke_accessible_default_action();
        assert!(h.pump_until(WAIT, || g.get_error().contains("longer than one holds")));
        h.pump();
        let kept = message_box(&gui, "Message to the group")
            .accessible_value()
            .unwrap_or_default();
        assert!(kept == long.as_str(), "the box holds {} bytes", kept.len());
        assert_eq!(g.get_messages().row_count(), 0);

        // One the app's check passes and the node refuses (it fits a
        // message, but not beside the group's timer): it stays too.
        g.invoke_set_timer(2);
        assert!(h.pump_until(WAIT, || g.get_timer() == 2));
        g.set_error("".into());
        let close = "y".repeat(strand_sync::limits::MAX_BODY_LEN - 2);
        g.set_draft(close.as_str().into());
        h.pump();
        send.invoke_accessible_default_action();
        assert!(
            h.pump_until(WAIT, || g.get_error().contains("with a timer")),
            "{}",
            g.get_error()
        );
        h.pump();
        assert!(
            g.get_draft() == close.as_str(),
            "the box holds {} bytes",
            g.get_draft().len()
        );
        assert!(!g.get_sending());
        assert_eq!(g.get_messages().row_count(), 0);
    });
}
