//! Disappearing messages between real nodes: a message written
//! under a timer is deleted on every device when it expires, and a device
//! that was off at that moment neither keeps it nor brings it back; a
//! contact's text that lasts no timer is refused.

use strand_node::{os_rng, Budgets, Node, NodeConfig, NodeEvent, Profile};
use strand_sync::{Kind, Message, Store, WriteStore};
use strand_transport::memory::Hub;

use crate::hub::{befriend, profile, start, until};

fn texts(p: &Profile, contact: &str) -> Vec<String> {
    p.conversation(contact)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.text)
        .collect()
}

const MIN: u64 = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_message_goes_everywhere_and_does_not_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = (
        profile(tmp.path(), "ann"),
        profile(tmp.path(), "ben"),
        profile(tmp.path(), "cat"),
    );
    befriend(&ann, &ben);
    befriend(&ann, &cat);
    let mut rng = os_rng();
    // The timer: both sides see it; bad timers change nothing.
    assert!(ann.set_timer("nobody", Some(5 * MIN), 0, &mut rng).is_err());
    assert_eq!(ann.timer("ben").unwrap(), None);
    ann.set_timer(
        "ben",
        Some(5 * MIN),
        strand_node::now() - 10 * MIN,
        &mut rng,
    )
    .unwrap();
    ann.set_timer(
        "cat",
        Some(5 * MIN),
        strand_node::now() - 10 * MIN,
        &mut rng,
    )
    .unwrap();
    assert_eq!(ann.timer("ben").unwrap(), Some(5 * MIN));
    // Written (as if) 4 min 40 s ago under the 5-minute timer: it expires
    // in 20 s. Another written now stays for 5 minutes.
    let written = strand_node::now() - 5 * MIN + 20_000;
    ann.write("ben", "gone soon", written, &mut rng).unwrap();
    ann.write("cat", "gone soon", written, &mut rng).unwrap();
    ann.write("ben", "later", strand_node::now(), &mut rng)
        .unwrap();
    let expires = ann.conversation("ben").unwrap()[0].expires.unwrap();
    assert_eq!(expires, written + 5 * MIN);

    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    let cat = start(cat, &hub).await;
    until("Ben and Cat get it before it expires", || {
        texts(ben.profile(), "ann").contains(&"gone soon".to_string())
            && texts(cat.profile(), "ann").contains(&"gone soon".to_string())
    })
    .await;
    assert_eq!(
        ben.profile().timer("ann").unwrap(),
        Some(5 * MIN),
        "the timer synced"
    );
    assert_eq!(
        ben.profile().conversation("ann").unwrap()[0].expires,
        Some(expires)
    );
    // Cat goes offline before it expires.
    cat.shutdown().await;

    until("deleted on both running nodes", || {
        !texts(ann.profile(), "ben").contains(&"gone soon".to_string())
            && !texts(ann.profile(), "cat").contains(&"gone soon".to_string())
            && !texts(ben.profile(), "ann").contains(&"gone soon".to_string())
    })
    .await;
    assert!(strand_node::now() >= expires, "not before its time");
    assert!(texts(ben.profile(), "ann").contains(&"later".to_string()));

    // Cat comes back after the expiry: it is gone from her profile before
    // anything syncs, and Ann does not get it back.
    let cat_p = Profile::open(&tmp.path().join("cat"), "pass").unwrap();
    assert!(!texts(&cat_p, "ann").contains(&"gone soon".to_string()));
    let cat = start(cat_p, &hub).await;
    ann.send("cat", "welcome back").await.unwrap();
    until("Cat syncs with Ann", || {
        texts(cat.profile(), "ann").contains(&"welcome back".to_string())
    })
    .await;
    cat.send("ann", "thanks").await.unwrap();
    until("Ann gets Cat's reply", || {
        texts(ann.profile(), "cat").contains(&"thanks".to_string())
    })
    .await;
    assert!(!texts(ann.profile(), "cat").contains(&"gone soon".to_string()));
    assert!(!texts(cat.profile(), "ann").contains(&"gone soon".to_string()));

    // Timers off: new messages stay.
    ann.set_timer("ben", false, None).await.unwrap();
    until("Ben sees the timer off", || {
        ben.profile().timer("ann").unwrap().is_none()
    })
    .await;
    ann.shutdown().await;
    ben.shutdown().await;
    cat.shutdown().await;
}

/// What a contact stored counts against their budget only while it is
/// stored: once their disappearing messages are deleted, the room is
/// theirs again. Before, the node's count never went down on a sweep,
/// so a contact who writes under a timer was refused as "over budget"
/// after a budget's worth since the node started, with nothing of theirs
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_messages_give_their_room_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let mut rng = os_rng();
    let long_ago = strand_node::now() - 10 * MIN;
    ann.set_timer("ben", Some(5 * MIN), long_ago, &mut rng)
        .unwrap();
    // Eight texts of about 1.2 kB that expire in 6 s, against a budget of
    // 12 kB for Ann at Ben's: room for these, or for eight more, not both.
    let written = strand_node::now() - 5 * MIN + 6_000;
    for i in 0..8 {
        ann.write(
            "ben",
            &format!("{i}{}", "x".repeat(1000)),
            written,
            &mut rng,
        )
        .unwrap();
    }
    let hub = Hub::new();
    let ben = Node::start(
        ben,
        NodeConfig {
            emulated: Some(hub.clone()),
            budgets: Budgets {
                per_contact: 12_000,
                ..Budgets::default()
            },
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let ann = start(ann, &hub).await;
    until("Ben gets the first eight", || {
        texts(ben.profile(), "ann").len() == 8
    })
    .await;
    until("and deletes them when they expire", || {
        texts(ben.profile(), "ann").is_empty()
    })
    .await;
    for i in 0..8 {
        ann.send("ben", &format!("again {i}{}", "y".repeat(1000)))
            .await
            .unwrap();
    }
    until("Ben stores the next eight", || {
        texts(ben.profile(), "ann").len() == 8
    })
    .await;
    ann.shutdown().await;
    ben.shutdown().await;
}

/// A timer set now wins over one dated up to 15 minutes ahead (a contact
/// whose clock is fast, or who dates theirs ahead on purpose): before,
/// the user's choice was written, lost to the other, and the texts they
/// wrote next stayed though they had asked for a timer.
#[test]
fn a_timer_set_now_wins_over_one_dated_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let mut rng = os_rng();
    let now = strand_node::now();
    ben.set_timer("ann", None, now + 10 * MIN, &mut rng)
        .unwrap();
    let bundle = tmp.path().join("from-ben");
    ben.export_bundle("ann", &bundle, now, &mut rng).unwrap();
    ann.import_bundle(&bundle, &Budgets::default(), now, &mut rng)
        .unwrap();
    ann.set_timer("ben", Some(60 * MIN), now, &mut rng).unwrap();
    assert_eq!(ann.timer("ben").unwrap(), Some(60 * MIN));
    ann.write("ben", "gone in an hour", now, &mut rng).unwrap();
    assert!(ann.conversation("ben").unwrap()[0].expires.is_some());
}

/// A TIMER whose body is not a timer is ignored (PROTOCOL.md §4.1): the
/// same author's timer before it still counts. Before, the store kept
/// only each author's newest TIMER, and one that did not read as a timer
/// (a buggy or newer client) took its author's timer away: Ann's texts
/// then lasted her own older setting, an hour, not Ben's day.
#[test]
fn a_timer_that_is_not_one_leaves_its_authors_timer_before_it() {
    use strand_sync::{Kind, Message, WriteStore};
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let mut rng = os_rng();
    let now = strand_node::now();
    ann.set_timer("ben", Some(60 * MIN), now, &mut rng).unwrap();
    let group = ben.direct_group("ann").unwrap();
    let timer = |at: u64, body: &[u8], rng: &mut _| {
        Message::create(&ben.identity(), &group, at, Kind::TIMER, body, rng).unwrap()
    };
    let day = strand_sync::encode_timer(Some(24 * 60 * MIN)).unwrap();
    let set = timer(now + 1, &day, &mut rng);
    let junk = timer(now + 2, &[0; 9], &mut rng);
    let mut store = ann.store().unwrap();
    for m in [&set, &junk] {
        WriteStore::insert(&mut store, &group.id, m).unwrap();
    }
    store.commit().unwrap();
    assert_eq!(ann.timer("ben").unwrap(), Some(24 * 60 * MIN));
    // A later valid timer of Ann's own still wins over both.
    ann.set_timer("ben", Some(5 * MIN), now + 3, &mut rng)
        .unwrap();
    assert_eq!(ann.timer("ben").unwrap(), Some(5 * MIN));
}

/// Regression ("Times peers claim"): Ben, a contact who signs what he
/// likes, writes a text that disappears a second after its time (dated a
/// minute ahead, within the skew allowed, so it has not expired when it
/// arrives). No honest device writes one, so Ann's node refuses it: never
/// stored, never shown, nobody told. The link goes on: nothing ends a
/// session over it, and Ben's next text comes. Before, it was stored and
/// shown (and the app said a message had come) until it vanished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_that_vanishes_at_once_is_refused_and_the_link_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let mut rng = os_rng();
    let group = ben.direct_group("ann").unwrap();
    let written = strand_node::now() + MIN;
    let brief = Message::forge_expiring(
        &ben.identity(),
        &group,
        written,
        Some(written + 1_000),
        Kind::TEXT,
        b"gone in a second",
        &mut rng,
    )
    .unwrap();
    let mut store = ben.store().unwrap();
    store.insert(&group.id, &brief).unwrap();
    store.commit().unwrap();
    drop(store);
    ben.write("ann", "an ordinary one", strand_node::now(), &mut rng)
        .unwrap();

    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let mut events = ann.subscribe();
    let ben = start(ben, &hub).await;
    until("Ann gets Ben's ordinary text", || {
        texts(ann.profile(), "ben").contains(&"an ordinary one".to_string())
    })
    .await;
    ben.send("ann", "and one after").await.unwrap();
    until("and the one after it", || {
        texts(ann.profile(), "ben").contains(&"and one after".to_string())
    })
    .await;
    let view = ann.profile().read_view().unwrap();
    assert!(
        !Store::contains(&view, &group.id, &brief.key()).unwrap(),
        "the text that lasts a second is not stored"
    );
    drop(view);
    let mut shown = texts(ann.profile(), "ben");
    shown.sort();
    assert_eq!(shown, ["an ordinary one", "and one after"]);
    let mut seen = Vec::new();
    loop {
        match events.try_recv() {
            Ok(e) => seen.push(e),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => break,
        }
    }
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            NodeEvent::Received { text, .. } if text == "gone in a second"
        )),
        "nobody is told of it: {seen:?}"
    );
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            NodeEvent::Disconnected { error: Some(error), .. } if error.contains("invalid")
        )),
        "no session ended over it: {seen:?}"
    );
    ann.shutdown().await;
    ben.shutdown().await;
}
