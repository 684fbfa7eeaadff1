//! A long conversation is read a page at a time (scrolling 10,000
//! messages does not load them all; the benchmark measures that size).

use slint::{ComponentHandle, Model};
use strand_gui::adapters::conversation::{with_group_model, with_model, MAX_PAGES, PAGE};
use strand_gui::{
    AppAdapter, ContactsAdapter, ConversationAdapter, GroupsAdapter, MessageItem, Screen,
};
use strand_node::os_rng;
use strand_sync::{Kind, Message, WriteStore};

use crate::support::{alice_with_bob, on_ui, options, Gui, PASS, WAIT};

const N: usize = 2_000;

/// Scrolls `messages` from the bottom to the top a screenful at a time,
/// checking each row with `check` and that at most [`MAX_PAGES`] pages
/// are held (`held`) at any time.
fn scroll_to_the_top(
    h: &strand_gui::headless::Headless,
    messages: &slint::ModelRc<MessageItem>,
    held: impl Fn() -> Option<usize>,
    check: impl Fn(usize, MessageItem),
) {
    let mut row = messages.row_count();
    while row > 0 {
        let lo = row.saturating_sub(20);
        for r in lo..row {
            messages.row_data(r);
        }
        assert!(h.pump_until(WAIT, || (lo..row)
            .all(|r| messages.row_data(r).unwrap().loaded)));
        for r in lo..row {
            check(r, messages.row_data(r).unwrap());
        }
        let held = held().unwrap();
        assert!(held <= MAX_PAGES, "{held} pages held");
        row = lo;
    }
}

#[test]
fn a_long_conversation_is_read_a_page_at_a_time() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("alice");
        {
            let (p, bob, group) = alice_with_bob(&dir);
            let mut store = p.store().unwrap();
            let t0 = strand_node::now() - N as u64 * 60_000;
            for i in 0..N {
                let m = Message::create(
                    &bob,
                    &group,
                    t0 + i as u64 * 60_000,
                    Kind::TEXT,
                    format!("message {i}").as_bytes(),
                    &mut os_rng(),
                )
                .unwrap();
                store.insert(&group.id, &m).unwrap();
            }
            store.commit().unwrap();
        }
        let gui = Gui::new(h, options(&dir));
        gui.onboarding().invoke_unlock(PASS.into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats
            && gui.contacts().len() == 1));
        assert_eq!(gui.contacts()[0].unread, 999, "capped");
        gui.ui.global::<ContactsAdapter>().invoke_open(0);
        let messages = gui.ui.global::<ConversationAdapter>().get_messages();
        assert!(h.pump_until(WAIT, || messages.row_count() == N));
        // The newest page came with the listing.
        assert_eq!(
            messages.row_data(N - 1).unwrap().text,
            format!("message {}", N - 1)
        );
        assert!(
            h.pump_until(WAIT, || gui.contacts()[0].unread == 0),
            "opening it read it"
        );

        scroll_to_the_top(
            h,
            &messages,
            || with_model(&gui.ui, |m| m.pages_held()),
            |r, item| {
                assert_eq!(item.text, format!("message {r}"));
            },
        );
        const { assert!(N / PAGE > MAX_PAGES, "the test scrolls past what is kept") };
    });
}

/// A long group conversation is read a page at a time too (it used to be
/// read and decrypted whole at every refresh).
#[test]
fn a_long_group_conversation_is_read_a_page_at_a_time() {
    const M: usize = 600;
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("alice");
        {
            let (p, _, _) = alice_with_bob(&dir);
            let t0 = strand_node::now() - M as u64 * 60_000;
            p.create_group("Desk", &["Bob".to_owned()], t0, &mut os_rng())
                .unwrap();
            for i in 0..M {
                let at = t0 + 1 + i as u64 * 60_000;
                p.write_group("Desk", &format!("note {i}"), at, &mut os_rng())
                    .unwrap();
            }
        }
        let gui = Gui::new(h, options(&dir));
        gui.onboarding().invoke_unlock(PASS.into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats));
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Groups);
        let g = gui.ui.global::<GroupsAdapter>();
        assert!(h.pump_until(WAIT, || g.get_groups().row_count() == 1));
        g.invoke_open(0);
        let messages = g.get_messages();
        assert!(h.pump_until(WAIT, || messages.row_count() == M));
        assert_eq!(
            messages.row_data(M - 1).unwrap().text,
            format!("note {}", M - 1)
        );
        scroll_to_the_top(
            h,
            &messages,
            || with_group_model(&gui.ui, |m| m.pages_held()),
            |r, item| {
                assert_eq!(item.text, format!("note {r}"));
                assert!(item.outgoing && item.author.is_empty());
            },
        );
        const { assert!(M / PAGE > MAX_PAGES, "the test scrolls past what is kept") };
    });
}
