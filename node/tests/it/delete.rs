//! Deleting a contact: the conversation goes with them and nothing else
//! does; a session with them ends; a mailbox deleted leaves room for
//! another.

use std::ops::ControlFlow;
use std::time::Duration;

use strand_node::{os_rng, Node, NodeEvent, Profile, ProfileError};
use strand_sync::{Group, Identity, KeyRange, Kind, Message, Store, WriteStore};

use crate::hub::{befriend, profile};
use crate::lan::until;
use crate::profile::new_profile;
use crate::views::group_with;

const NOW: u64 = 1_700_000_000_000;

/// Stores `n` texts from `from`, as sync would.
fn receive(p: &Profile, from: &Identity, n: u64) {
    let group = group_with(p, from);
    let mut store = p.store().unwrap();
    for i in 0..n {
        let m = Message::create(from, &group, NOW + i, Kind::TEXT, b"hi", &mut os_rng()).unwrap();
        store.insert(&group.id, &m).unwrap();
    }
    store.commit().unwrap();
}

/// Rows the store holds in `group`.
fn rows(p: &Profile, group: &Group) -> u64 {
    let mut n = 0;
    p.read_view()
        .unwrap()
        .scan(&group.id, &KeyRange::ALL, &mut |_| {
            n += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    n
}

#[test]
fn deleting_a_contact_takes_the_conversation_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let p = new_profile(&dir);
    let rng = &mut os_rng();
    let bob = Identity::generate("Bob", rng).unwrap();
    let carol = Identity::generate("Carol", rng).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, rng).unwrap();
    p.add_contact(&carol.invite(), "Carol", NOW, rng).unwrap();
    receive(&p, &bob, 4);
    receive(&p, &carol, 2);
    p.write("Bob", "mine", NOW + 10, rng).unwrap();
    // A timer, and a text that expires under it.
    p.set_timer("Bob", Some(3_600_000), NOW + 11, rng).unwrap();
    p.write("Bob", "fleeting", NOW + 12, rng).unwrap();
    let keys = p.conversation_keys("Bob").unwrap();
    p.mark_read("Bob", keys.last().unwrap()).unwrap();
    p.create_group("desk", &["Bob".into(), "Carol".into()], NOW + 13, rng)
        .unwrap();
    let mute = |name: &str| strand_node::PreferenceChange::MuteContact {
        name: name.into(),
        muted: true,
    };
    p.change_preferences(&[mute("Bob"), mute("Carol")], rng)
        .unwrap();
    assert!(p.next_expiry().unwrap().is_some());
    let bob_group = group_with(&p, &bob);
    let held = rows(&p, &bob_group);
    assert!(held >= 7, "{held}");
    let before = p.contacts();

    assert!(matches!(
        p.delete_contact("Nobody", strand_node::now(), &mut os_rng()),
        Err(ProfileError::UnknownContact(_))
    ));
    assert_eq!(p.contacts(), before, "nothing changed");

    let deleted = p
        .delete_contact("Bob", strand_node::now(), &mut os_rng())
        .unwrap();
    assert_eq!(deleted.contact.name, "Bob");
    assert_eq!(deleted.messages, held);
    let names = |p: &Profile| -> Vec<String> { p.contacts().into_iter().map(|c| c.name).collect() };
    assert_eq!(names(&p), ["Carol"]);
    assert!(matches!(
        p.conversation("Bob"),
        Err(ProfileError::UnknownContact(_))
    ));
    assert_eq!(rows(&p, &bob_group), 0);
    assert_eq!(p.next_expiry().unwrap(), None, "his texts' expiry went too");
    // Carol's conversation and the group stay; the group names Bob by the
    // name he was added under, no longer as a contact.
    assert_eq!(p.conversation("Carol").unwrap().len(), 2);
    let members = p.group_members("desk").unwrap();
    let bob_member = members.iter().find(|m| m.name == "Bob").unwrap();
    assert!(!bob_member.verified, "{members:?}");
    assert!(members.iter().any(|m| m.name == "Carol" && m.verified));

    // Gone for good, across a restart; added again, he starts with an
    // empty conversation, no timer and nothing unread.
    drop(p);
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(names(&p), ["Carol"]);
    assert_eq!(rows(&p, &bob_group), 0);
    p.add_contact(&bob.invite(), "Bob", NOW + 20, rng).unwrap();
    assert!(p.conversation("Bob").unwrap().is_empty());
    assert_eq!(p.timer("Bob").unwrap(), None);
    let summary = p
        .summaries()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "Bob")
        .unwrap();
    assert_eq!((summary.unread, summary.last.is_none()), (0, true));
    // His mute went with him; Carol's stays.
    let prefs = p.preferences().unwrap();
    assert_eq!(prefs.muted_contacts, ["Carol"]);
}

/// `eve` names one more mailbox device (the `n`th) in her conversation
/// with `ann`, and `ann` imports it from Eve's drive. Returns the device's
/// keys.
fn eve_names_a_mailbox(
    tmp: &std::path::Path,
    eve: &Profile,
    ann: &Profile,
    n: u64,
) -> strand_sync::PublicIdentity {
    let now = strand_node::now();
    let eve_id = eve.identity();
    let group = group_with(eve, &ann.identity());
    let device = Identity::generate("device", &mut os_rng()).unwrap();
    let proof = strand_sync::mailbox_proof(&device, &eve_id.public());
    let body = strand_sync::encode_mailbox(Some((&device.invite(), &proof)));
    let msg = Message::create(
        &eve_id,
        &group,
        now + n,
        Kind::MAILBOX,
        &body,
        &mut os_rng(),
    )
    .unwrap();
    let mut store = eve.store().unwrap();
    store.insert(&group.id, &msg).unwrap();
    store.commit().unwrap();
    drop(store);
    let drive = tmp.join(format!("for-ann-{n}"));
    eve.export_bundle("ann", &drive, now, &mut os_rng())
        .unwrap();
    ann.import_bundle(&drive, &strand_node::Budgets::default(), now, &mut os_rng())
        .unwrap();
    device.public()
}

/// The contacts of `p` that are mailboxes.
fn mailboxes(p: &Profile) -> Vec<(String, strand_sync::PublicIdentity)> {
    p.contacts()
        .into_iter()
        .filter(|c| c.mailbox)
        .map(|c| (c.name, c.public))
        .collect()
}

/// Deleting a mailbox lets its owner name another; a mailbox device
/// cannot delete its owner; deleting one's own mailbox lets another be
/// paired.
#[test]
fn a_deleted_mailbox_leaves_room_for_another() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, eve) = (profile(tmp.path(), "ann"), profile(tmp.path(), "eve"));
    befriend(&ann, &eve);
    let now = strand_node::now();
    let named = |n| eve_names_a_mailbox(tmp.path(), &eve, &ann, n);
    let box_of_eve = |public| vec![("eve's mailbox".to_owned(), public)];
    let first = named(1);
    assert_eq!(mailboxes(&ann), box_of_eve(first));
    named(2);
    assert_eq!(mailboxes(&ann), box_of_eve(first), "one per contact");
    ann.delete_contact("eve's mailbox", strand_node::now(), &mut os_rng())
        .unwrap();
    assert!(mailboxes(&ann).is_empty());
    let third = named(3);
    assert_eq!(mailboxes(&ann), box_of_eve(third), "room for another");

    // A mailbox device and its owner.
    let owner = profile(tmp.path(), "owen");
    let mailbox = profile(tmp.path(), "box");
    let settings = strand_node::CarrySettings::default();
    mailbox
        .become_mailbox(&owner.identity().invite(), &settings, now, &mut os_rng())
        .unwrap();
    let err = mailbox
        .delete_contact("owen", strand_node::now(), &mut os_rng())
        .unwrap_err();
    assert!(err.to_string().contains("mailbox"), "{err}");
    assert_eq!(mailbox.contacts().len(), 1, "nothing changed");
    let code = mailbox.mailbox_code().unwrap().unwrap();
    owner.pair_mailbox(&code, now, &mut os_rng()).unwrap();
    assert!(owner.mailbox().unwrap().is_some());
    owner
        .delete_contact(strand_node::MAILBOX_NAME, strand_node::now(), &mut os_rng())
        .unwrap();
    assert!(owner.mailbox().unwrap().is_none(), "the pairing went too");
    let other = profile(tmp.path(), "box2");
    other
        .become_mailbox(&owner.identity().invite(), &settings, now, &mut os_rng())
        .unwrap();
    let code = other.mailbox_code().unwrap().unwrap();
    owner.pair_mailbox(&code, now, &mut os_rng()).unwrap();
    assert_eq!(
        owner.mailbox().unwrap().map(|m| m.public),
        Some(other.identity().public())
    );
}

/// Eve moves to a new mailbox: its record reaches Ann while she still has
/// Eve's old one, and is refused (one per contact). When Ann deletes the
/// old one, her node takes the new one; deleting that takes back neither
/// (the one she deleted first is not Eve's newest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_who_changed_mailboxes_is_followed_once_the_old_one_is_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, eve) = (profile(tmp.path(), "ann"), profile(tmp.path(), "eve"));
    befriend(&ann, &eve);
    let old = eve_names_a_mailbox(tmp.path(), &eve, &ann, 1);
    let new = eve_names_a_mailbox(tmp.path(), &eve, &ann, 2);
    let box_of_eve = |public| vec![("eve's mailbox".to_owned(), public)];
    assert_eq!(mailboxes(&ann), box_of_eve(old));
    let hub = strand_transport::memory::Hub::new();
    let node = crate::hub::start(ann.clone(), &hub).await;
    let mut events = node.subscribe();
    node.delete_contact("eve's mailbox").await.unwrap();
    assert_eq!(mailboxes(&ann), box_of_eve(new));
    let added = loop {
        match events.recv().await.unwrap() {
            NodeEvent::ContactsAdded { names, more } => break (names, more),
            _ => continue,
        }
    };
    assert_eq!(added, (vec!["eve's mailbox".to_owned()], 0));
    node.delete_contact("eve's mailbox").await.unwrap();
    assert!(mailboxes(&ann).is_empty());
    node.shutdown().await;
}

/// Two nodes on loopback: Alice deletes Bob mid-session. The session
/// ends, her node keeps nothing of him (not even when he was seen) and
/// what he sends then does not reach her; added again, what his device
/// still holds syncs back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_deleted_mid_session_is_cut_off_until_added_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (node_a, node_b) = crate::lan::alice_and_bob(tmp.path()).await;
    let ib = node_b.profile().identity().invite();
    let bob_group = group_with(node_a.profile(), &node_b.profile().identity());
    let (mut events_a, mut events_b) = (node_a.subscribe(), node_b.subscribe());
    node_b.send("Alice", "first").await.unwrap();
    until(
        &mut events_a,
        |e| matches!(e, NodeEvent::Received { contact, text, .. } if contact == "Bob" && text == "first"),
    )
    .await;

    let deleted = node_a.delete_contact("Bob").await.unwrap();
    assert!(deleted.messages >= 1, "{deleted:?}");
    until(
        &mut events_a,
        |e| matches!(e, NodeEvent::ContactDeleted { name } if name == "Bob"),
    )
    .await;
    until(
        &mut events_b,
        |e| matches!(e, NodeEvent::Disconnected { contact, .. } if contact == "Alice"),
    )
    .await;
    let status = node_a.status().await;
    assert!(status.seen.is_empty(), "{:?}", status.seen);
    assert!(node_a.profile().contacts().is_empty());

    // Bob writes on; Alice's node dials his address every 5 s, as a
    // stranger now. Nothing of his is stored.
    node_b.send("Alice", "while deleted").await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(rows(node_a.profile(), &bob_group), 0);
    assert!(node_a.status().await.seen.is_empty());

    // Added again: the session comes back with what Bob still holds.
    node_a.add_contact(&ib.to_text(), "Bob").await.unwrap();
    let mut texts = Vec::new();
    until(&mut events_a, |e| {
        if let NodeEvent::Received { contact, text, .. } = e {
            assert_eq!(contact, "Bob");
            texts.push(text.clone());
        }
        texts.len() == 2
    })
    .await;
    texts.sort();
    assert_eq!(texts, ["first", "while deleted"]);
    node_a.shutdown().await;
    node_b.shutdown().await;
}

/// Owen deletes Carl with his mailbox paired: the mailbox is told the
/// new list and deletes Carl too (with his conversation and pool), so his
/// device is a stranger's to it. Before, a mailbox only ever added the
/// contacts it was told of. A contact added at the mailbox by hand stays.
/// Carl is deleted though Max's user renamed him there (before, a list
/// knew whom it added by the name it gave them, so he stayed for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_deletes_whom_its_owner_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (owen, max) = (profile(root, "owen"), profile(root, "max"));
    let (ann, carl) = (profile(root, "ann"), profile(root, "carl"));
    let dora = profile(root, "dora");
    befriend(&owen, &ann);
    befriend(&owen, &carl);
    let (now, rng) = (strand_node::now(), &mut os_rng());
    let settings = strand_node::CarrySettings::default();
    max.become_mailbox(&owen.identity().invite(), &settings, now, rng)
        .unwrap();
    max.add_contact(&dora.identity().invite(), "dora", now, rng)
        .unwrap();
    owen.pair_mailbox(&max.mailbox_code().unwrap().unwrap(), now, rng)
        .unwrap();

    let hub = strand_transport::memory::Hub::new();
    let owen = crate::hub::start(owen, &hub).await;
    let max = crate::hub::start(max, &hub).await;
    let keys = |n: &Node| -> Vec<_> { n.profile().contacts().iter().map(|c| c.public).collect() };
    let (ann_key, carl_key) = (ann.identity().public(), carl.identity().public());
    crate::hub::until("the mailbox learns Ann and Carl", || keys(&max).len() == 4).await;
    let carl_there = max
        .profile()
        .contacts()
        .into_iter()
        .find(|c| c.public == carl_key)
        .unwrap()
        .name;
    assert!(carl_there.starts_with("owen's contact"), "{carl_there}");
    max.rename_contact(&carl_there, "Carl at the office")
        .await
        .unwrap();
    let mut events = max.subscribe();
    owen.delete_contact("carl").await.unwrap();
    crate::hub::until("the mailbox deletes Carl", || {
        !keys(&max).contains(&carl_key)
    })
    .await;
    assert_eq!(
        keys(&max),
        [
            dora.identity().public(),
            owen.profile().identity().public(),
            ann_key
        ],
        "Dora, Owen and Ann stay"
    );
    loop {
        match events.recv().await.unwrap() {
            NodeEvent::ContactDeleted { name } => {
                assert_eq!(name, "Carl at the office");
                break;
            }
            _ => continue,
        }
    }
    // Added again, he is told again.
    owen.add_contact(&carl.identity().invite().to_text(), "carl")
        .await
        .unwrap();
    crate::hub::until("the mailbox learns Carl again", || {
        keys(&max).contains(&carl_key)
    })
    .await;
    owen.shutdown().await;
    max.shutdown().await;
}

/// A list stored at the mailbox but not taken (the node stopped between
/// the two, or a deletion failed while it was taken) is taken at the
/// next start: Max adds Ann and deletes Carl, whom the list leaves out.
/// Before, it waited for Owen's next list. A list taken whole is not
/// taken again: Ann, deleted at Max by hand, is not added back at the
/// next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_stored_but_not_taken_is_taken_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (owen, max) = (profile(root, "owen"), profile(root, "max"));
    let (ann, carl) = (profile(root, "ann"), profile(root, "carl"));
    befriend(&owen, &carl);
    let (now, rng) = (strand_node::now(), &mut os_rng());
    let settings = strand_node::CarrySettings::default();
    max.become_mailbox(&owen.identity().invite(), &settings, now, rng)
        .unwrap();
    owen.pair_mailbox(&max.mailbox_code().unwrap().unwrap(), now, rng)
        .unwrap();
    let keys = |p: &Profile| -> Vec<_> { p.contacts().iter().map(|c| c.public).collect() };
    // Max learns Carl from the list pairing wrote (a node takes it).
    let hub = strand_transport::memory::Hub::new();
    let (owen, max) = (
        crate::hub::start(owen, &hub).await,
        crate::hub::start(max, &hub).await,
    );
    let carl_key = carl.identity().public();
    crate::hub::until("the mailbox learns Carl", || {
        keys(max.profile()).contains(&carl_key)
    })
    .await;
    owen.shutdown().await;
    let max_dir = max.profile().dir().to_path_buf();
    max.shutdown().await;

    // Owen's next list (Ann, not Carl), stored at Max and not taken.
    let owen = Profile::open(&root.join("owen"), "pass").unwrap();
    let max = Profile::open(&max_dir, "pass").unwrap();
    let to_max = owen
        .sync_contacts()
        .into_iter()
        .find(|c| c.public == max.identity().public())
        .unwrap();
    let body = strand_sync::encode_mailbox_contacts(&[ann.identity().public()]);
    let list = Message::create(
        &owen.identity(),
        to_max.direct_group(),
        strand_node::now(),
        Kind::MAILBOX_CONTACTS,
        &body,
        rng,
    )
    .unwrap();
    let mut store = max.store().unwrap();
    WriteStore::insert(&mut store, &to_max.direct_group().id, &list).unwrap();
    store.commit().unwrap();
    drop(store);
    assert!(keys(&max).contains(&carl_key), "stored, not taken");

    let max = crate::hub::start(max, &hub).await;
    let ann_key = ann.identity().public();
    crate::hub::until("the mailbox takes the list at its start", || {
        let now = keys(max.profile());
        now.contains(&ann_key) && !now.contains(&carl_key)
    })
    .await;

    // Ann deleted at the mailbox by hand stays deleted across a start:
    // the list was taken whole, so it is not taken again.
    let ann_there = max
        .profile()
        .contacts()
        .into_iter()
        .find(|c| c.public == ann_key)
        .unwrap()
        .name;
    max.delete_contact(&ann_there).await.unwrap();
    max.shutdown().await;
    // The start's task is one shutdown waits for.
    let max = crate::hub::start(Profile::open(&max_dir, "pass").unwrap(), &hub).await;
    max.shutdown().await;
    let max = Profile::open(&max_dir, "pass").unwrap();
    assert!(!keys(&max).contains(&ann_key), "Ann came back");
}

/// Texts Ann wrote Bob that no one delivered stop spreading through
/// carriers when she deletes him (before, her device went on offering
/// them, with his key, until their time limit), and stay stopped across
/// a restart; deleted with no node running, they do not spread at the
/// next start. Her text to Carol spreads on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_to_a_deleted_contact_stop_spreading() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, bob, carol) = (
        profile(tmp.path(), "ann"),
        profile(tmp.path(), "bob"),
        profile(tmp.path(), "carol"),
    );
    befriend(&ann, &bob);
    befriend(&ann, &carol);
    let own = |n: &Node| {
        let s = n.carry_status();
        s.spreading + s.held_back + s.waiting
    };
    let hub = strand_transport::memory::Hub::new();
    let node = crate::hub::start(ann, &hub).await;
    node.send("bob", "are you there?").await.unwrap();
    node.send("bob", "hello?").await.unwrap();
    node.send("carol", "and you?").await.unwrap();
    crate::hub::until("three texts spread", || own(&node) == 3).await;
    node.delete_contact("bob").await.unwrap();
    assert_eq!(own(&node), 1, "Carol's alone");
    node.shutdown().await;
    let node = crate::hub::start(
        Profile::open(&tmp.path().join("ann"), "pass").unwrap(),
        &hub,
    )
    .await;
    crate::hub::until("Carol's spreads again", || own(&node) == 1).await;
    // Bob again, and a text to him; then deleted with no node running
    // (the carrier's saved state still has his text): the next start
    // does not spread it.
    node.add_contact(&bob.identity().invite().to_text(), "bob")
        .await
        .unwrap();
    node.send("bob", "back?").await.unwrap();
    crate::hub::until("two texts spread", || own(&node) == 2).await;
    node.shutdown().await;
    let ann = Profile::open(&tmp.path().join("ann"), "pass").unwrap();
    ann.delete_contact("bob", strand_node::now(), &mut os_rng())
        .unwrap();
    let node = crate::hub::start(ann, &hub).await;
    assert_eq!(own(&node), 1, "Carol's alone, from the start");
    node.shutdown().await;
    drop((bob, carol));
}
