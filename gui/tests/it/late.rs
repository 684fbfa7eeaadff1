//! A message dated well before it arrived: the conversation
//! shows it below what was already read, unread, with its author's date
//! and the gap marked.

use slint::{ComponentHandle, Model};
use strand_gui::{ContactsAdapter, ConversationAdapter, Screen};
use strand_node::{now, os_rng, Profile};
use strand_sync::{Group, Identity, Kind, Message, WriteStore};

use crate::support::{alice_with_bob, on_ui, options, Gui, PASS, WAIT};

const MIN: u64 = 60_000;
const DAY: u64 = 24 * 60 * MIN;

/// A text from `from` in `group`, dated `time`, arriving at `arrived`.
fn receive(p: &Profile, from: &Identity, group: &Group, time: u64, text: &str, arrived: u64) {
    let m = Message::create(
        from,
        group,
        time,
        Kind::TEXT,
        text.as_bytes(),
        &mut os_rng(),
    )
    .unwrap();
    let mut store = p.store().unwrap().arrived_at(arrived);
    store.insert(&group.id, &m).unwrap();
    store.commit().unwrap();
}

#[test]
fn a_backdated_message_shows_below_what_was_read_with_its_date() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("alice");
        let t = now() - 30 * MIN;
        {
            let (p, bob, g) = alice_with_bob(&dir);
            receive(&p, &bob, &g, t, "one", t + 2000);
            receive(&p, &bob, &g, t + MIN, "two", t + MIN + 2000);
            let keys = p.conversation_keys("Bob").unwrap();
            p.mark_read("Bob", keys.last().unwrap()).unwrap();
            receive(&p, &bob, &g, t - 20 * DAY, "backdated", now());
        }
        let gui = Gui::new(h, options(&dir));
        gui.onboarding().invoke_unlock(PASS.into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats
            && gui.contacts().len() == 1));
        assert_eq!(gui.contacts()[0].unread, 1, "it counts as unread");
        gui.ui.global::<ContactsAdapter>().invoke_open(0);
        let messages = gui.ui.global::<ConversationAdapter>().get_messages();
        assert!(h.pump_until(WAIT, || messages.row_count() == 3
            && (0..3).all(|r| messages.row_data(r).unwrap().loaded)));
        let rows: Vec<_> = (0..3).map(|r| messages.row_data(r).unwrap()).collect();
        let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "backdated"]);
        assert!(rows[..2].iter().all(|r| r.dated.is_empty()));
        assert!(
            rows[2].dated.contains("20 days before it arrived"),
            "{}",
            rows[2].dated
        );
    });
}
