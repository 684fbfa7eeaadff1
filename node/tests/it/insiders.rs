//! Attacks by a group's own members, on real nodes with real
//! profiles over an emulated link hub. Ann creates the group, Ben is an
//! honest member, Mal is hostile: she holds her own keys and the group's
//! epochs she was in, and signs whatever they let her (written into her
//! profile while her node is down, then synced as any message is).
//!
//! 1. A made-up welcome from a removed member does not move Ben.
//! 2. A removed admin's change, back-dated into an epoch she still holds,
//!    changes nothing.
//! 3. A key box that does not open locks no one out: a change by a member
//!    who is not an admin is no change, and the creator recovers from an
//!    admin's.
//! 4. A member's flood fills her own budget only: a removal still gets in,
//!    and the log names her.
//! 5. A removed member's posts and timers in the epochs she still holds do
//!    not count.
//! 6. An admin's removal written to expire (so that the member would be
//!    back in once it went) is refused, and so is an expiring timer.
//! 7. An admin who left cannot grow epochs at a member without end, one
//!    change written into the epoch the last one made, or one replacing
//!    another; nor replace the Leave that left her out; nor move a member
//!    she added with a made-up welcome.

use std::path::PathBuf;

use rand_core::RngCore;
use strand_node::{os_rng, GroupAction, Node, NodeConfig, NodeEvent, Profile};
use strand_sync::{
    Change, Epoch, GroupId, Key, KeyRange, Kind, Message, PublicIdentity, Sealing, Store,
    WriteStore,
};
use strand_transport::memory::Hub;

use crate::hub::{befriend, profile, start, until};

const GROUP: &str = "desk";

/// The group's epochs a node holds, the newest on its path last.
fn epochs(node: &Node) -> Vec<Epoch> {
    node.profile().group_epochs(GROUP).unwrap_or_default()
}

fn head(node: &Node) -> Epoch {
    epochs(node).pop().expect("a group")
}

fn members(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = node
        .profile()
        .group_members(GROUP)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    names.sort();
    names
}

fn is_member(node: &Node) -> Option<bool> {
    node.profile()
        .groups()
        .ok()?
        .into_iter()
        .find(|g| g.name == GROUP)
        .map(|g| g.member)
}

fn texts(node: &Node) -> Vec<(String, String, bool)> {
    node.profile()
        .group_conversation(GROUP)
        .map(|c| {
            c.into_iter()
                .map(|m| (m.author, m.message.text, m.late))
                .collect()
        })
        .unwrap_or_default()
}

fn holds(node: &Node, group: &GroupId, key: &Key) -> bool {
    let view = node.profile().read_view().unwrap();
    Store::contains(&view, group, key).unwrap()
}

/// Writes messages into a profile no node runs on, as its owner's keys
/// signed them.
fn write(p: &Profile, messages: &[(GroupId, Message)]) {
    let mut store = p.store().unwrap();
    for (group, m) in messages {
        WriteStore::insert(&mut store, group, m).unwrap();
    }
    store.commit().unwrap();
}

/// Stops a node: its profile can be opened again.
async fn stop(node: Node) -> PathBuf {
    let dir = node.profile().dir().to_path_buf();
    node.shutdown().await;
    dir
}

async fn restart(dir: &std::path::Path, hub: &Hub) -> Node {
    start(Profile::open(dir, "pass").unwrap(), hub).await
}

/// Ann, Ben and Mal's profiles in `tmp`, each the others' contact.
fn three_contacts(tmp: &std::path::Path) -> (Profile, Profile, Profile) {
    let (ann, ben, mal) = (
        profile(tmp, "ann"),
        profile(tmp, "ben"),
        profile(tmp, "mal"),
    );
    befriend(&ann, &ben);
    befriend(&ann, &mal);
    befriend(&ben, &mal);
    (ann, ben, mal)
}

/// Ann, Ben and Mal, all contacts, in a group Ann made: the nodes and
/// the hub.
async fn cast(tmp: &std::path::Path) -> (Hub, Node, Node, Node) {
    let (ann, ben, mal) = three_contacts(tmp);
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    let mal = start(mal, &hub).await;
    ann.create_group(GROUP, &["ben".into(), "mal".into()])
        .await
        .unwrap();
    until("everyone joins", || {
        is_member(&ben) == Some(true) && is_member(&mal) == Some(true)
    })
    .await;
    (hub, ann, ben, mal)
}

/// Ann makes Mal an admin and everyone sees it.
async fn make_mal_admin(ann: &Node, ben: &Node, mal: &Node) {
    ann.change_group(GROUP, GroupAction::MakeAdmin("mal".into()))
        .await
        .unwrap();
    let id = head(ann).id();
    until("everyone follows", || {
        head(ben).id() == id && head(mal).id() == id
    })
    .await;
}

/// An epoch of the group as Mal would make one up: the creator's signed
/// root (every member holds it), Mal an admin, Ben a member, a key of her
/// choosing; the first epoch (`number` 0) or a later one.
fn made_up(template: &Epoch, number: u32, mal: PublicIdentity, ben: PublicIdentity) -> Vec<u8> {
    let t = template.encode();
    let head_len = 1 + 32 + 64 + 1 + template.name.len() + 32;
    let mut out = t[..head_len].to_vec();
    out.extend_from_slice(&number.to_be_bytes());
    let mut rng = os_rng();
    if number > 0 {
        let mut parent = [0u8; 64];
        rng.fill_bytes(&mut parent);
        out.extend_from_slice(&parent);
    }
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    out.extend_from_slice(&key);
    let mut list = [(mal, true, "mal"), (ben, false, "ben")];
    list.sort_by_key(|(p, ..)| p.sign);
    out.extend_from_slice(&2u16.to_be_bytes());
    for (p, admin, name) in list {
        out.extend_from_slice(&p.sign);
        out.extend_from_slice(&p.dh);
        out.push(u8::from(admin));
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
    }
    out
}

/// Ben's group is still at `at`, with Ann and him alone in it, and what
/// he writes there (`text`) reaches Ann.
async fn ben_stays_with_ann(ann: &Node, ben: &Node, at: GroupId, text: &str) {
    assert_eq!(head(ben).id(), at, "Ben's group did not move");
    assert_eq!(members(ben), ["ann", "me"]);
    ben.send_group(GROUP, text).await.unwrap();
    until("Ann reads it", || {
        texts(ann).iter().any(|(_, t, _)| t == text)
    })
    .await;
}

/// Attack 1: Mal, removed but still Ben's contact, sends Ben made-up
/// epochs of the group (a first one and a later one) as welcomes. They
/// reach Ben's store; his group stays where it was, Mal is no member and
/// no admin there, and what Ben writes next reaches Ann, not Mal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_cannot_move_a_member_with_a_made_up_welcome() {
    let tmp = tempfile::tempdir().unwrap();
    let (hub, ann, ben, mal) = cast(tmp.path()).await;
    ann.change_group(GROUP, GroupAction::Remove("mal".into()))
        .await
        .unwrap();
    until("Mal is out", || is_member(&mal) == Some(false)).await;
    until("Ben sees two", || members(&ben).len() == 2).await;
    let before = head(&ben).id();

    let dir = stop(mal).await;
    let p = Profile::open(&dir, "pass").unwrap();
    let me = p.identity();
    let pair = p.direct_group("ben").unwrap();
    let template = p.group_epochs(GROUP).unwrap().remove(0);
    let ben_public = ben.profile().identity().public();
    let mut rng = os_rng();
    let mut welcomes = Vec::new();
    for number in [0, 7] {
        let body = made_up(&template, number, me.public(), ben_public);
        let at = strand_node::now() - 10 + u64::from(number);
        let msg = Message::create(&me, &pair, at, Kind::WELCOME, &body, &mut rng).unwrap();
        welcomes.push((pair.id, msg));
    }
    write(&p, &welcomes);
    drop(p);
    let mal = restart(&dir, &hub).await;
    until("the welcomes reach Ben", || {
        welcomes.iter().all(|(g, m)| holds(&ben, g, &m.key()))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    assert!(ben.profile().groups().unwrap()[0].blocked.is_none());
    ben_stays_with_ann(&ann, &ben, before, "after mal").await;
    assert!(!texts(&mal).iter().any(|(_, t, _)| t == "after mal"));
}

/// Attack 2: Mal was an admin; Ann removes her while Mal's node is down.
/// Mal (who never heard of it, or restored an old copy of her profile)
/// writes a change dated 2001 into the epoch she still holds. Once it
/// reaches Ben (Ann being offline), Ben's group still has Ann's removal
/// and not Mal's change, and Mal cannot read what Ben writes next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_admins_backdated_change_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (hub, ann, ben, mal) = cast(tmp.path()).await;
    make_mal_admin(&ann, &ben, &mal).await;
    let dir = stop(mal).await;
    ann.change_group(GROUP, GroupAction::Remove("mal".into()))
        .await
        .unwrap();
    until("Ben sees two", || members(&ben).len() == 2).await;
    let removed = head(&ben).id();
    stop(ann).await;

    let p = Profile::open(&dir, "pass").unwrap();
    let held = p.group_epochs(GROUP).unwrap().pop().unwrap();
    assert!(held.is_admin(&p.identity().public().sign));
    let eve = strand_sync::Identity::generate("eve", &mut os_rng()).unwrap();
    let back_in_2001 = 978_307_200_000;
    let (msg, _) = held
        .propose(
            &p.identity(),
            Change::Add {
                public: eve.public(),
                name: "eve".into(),
            },
            back_in_2001,
            &mut os_rng(),
        )
        .unwrap();
    write(&p, &[(held.id(), msg.clone())]);
    drop(p);
    let mal = restart(&dir, &hub).await;
    until("the change reaches Ben", || {
        holds(&ben, &held.id(), &msg.key())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    assert_eq!(
        head(&ben).id(),
        removed,
        "Ben stays where Ann's removal put him"
    );
    assert_eq!(members(&ben), ["ann", "me"]);
    ben.send_group(GROUP, "after the removal").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!texts(&mal).iter().any(|(_, t, _)| t == "after the removal"));
    assert!(epochs(&mal).iter().all(|e| e.id() != removed));
}

/// Attack 3, a member who is not an admin: Mal writes an add whose box
/// for Ann (the creator) does not open. It is no change (only admins
/// add): everyone stays where they were, Ann included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_garbage_box_is_no_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (hub, ann, ben, mal) = cast(tmp.path()).await;
    let before = head(&ann).id();
    let dir = stop(mal).await;
    let p = Profile::open(&dir, "pass").unwrap();
    let held = p.group_epochs(GROUP).unwrap().pop().unwrap();
    let dave = strand_sync::Identity::generate("dave", &mut os_rng()).unwrap();
    let ann_sign = ann.profile().identity().public().sign;
    let msg = held
        .forge(
            &p.identity(),
            Change::Add {
                public: dave.public(),
                name: "dave".into(),
            },
            strand_node::now(),
            Sealing::Garble(vec![ann_sign]),
            &mut os_rng(),
        )
        .unwrap();
    write(&p, &[(held.id(), msg.clone())]);
    drop(p);
    let _mal = restart(&dir, &hub).await;
    until("the change reaches Ann and Ben", || {
        holds(&ann, &held.id(), &msg.key()) && holds(&ben, &held.id(), &msg.key())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(head(&ann).id(), before);
    assert_eq!(head(&ben).id(), before);
    assert_eq!(is_member(&ann), Some(true));
    assert_eq!(members(&ann).len(), 3);
}

/// Attack 3, an admin: Mal, an admin, adds Dave with a box for Ann that
/// does not open. Ann is not locked out: she gets the key from a member
/// who has it (or, outranking Mal, makes the change again herself), ends
/// in the same epoch as Ben, and they read each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_garbage_box_does_not_lock_the_creator_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (hub, ann, ben, mal) = cast(tmp.path()).await;
    make_mal_admin(&ann, &ben, &mal).await;
    let dir = stop(mal).await;
    let p = Profile::open(&dir, "pass").unwrap();
    let held = p.group_epochs(GROUP).unwrap().pop().unwrap();
    let dave = strand_sync::Identity::generate("dave", &mut os_rng()).unwrap();
    let ann_sign = ann.profile().identity().public().sign;
    let (msg, _) = held
        .propose_sealed(
            &p.identity(),
            Change::Add {
                public: dave.public(),
                name: "dave".into(),
            },
            strand_node::now(),
            Sealing::Garble(vec![ann_sign]),
            &mut os_rng(),
        )
        .unwrap();
    write(&p, &[(held.id(), msg.clone())]);
    drop(p);
    let _mal = restart(&dir, &hub).await;
    until("Ann and Ben agree, with Dave", || {
        let (a, b) = (head(&ann), head(&ben));
        a.id() == b.id() && a.members().len() == 4
    })
    .await;
    let group = &ann.profile().groups().unwrap()[0];
    assert!(group.member && group.blocked.is_none(), "{group:?}");
    ann.send_group(GROUP, "still here").await.unwrap();
    until("Ben reads Ann", || {
        texts(&ben).iter().any(|(_, t, _)| t == "still here")
    })
    .await;
}

/// Attack 4: Mal fills her budget at Ben with texts. Ben declines the rest
/// of hers (and his node names her), but not Ann's: Ann's removal of Mal
/// and her texts after it still get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_flood_does_not_keep_a_removal_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, mal) = three_contacts(tmp.path());
    let hub = Hub::new();
    let small = strand_node::Budgets {
        per_contact: 40_000,
        per_member: 40_000,
        per_group: 200_000,
        ..strand_node::Budgets::default()
    };
    let ann = start(ann, &hub).await;
    let ben = Node::start(
        ben,
        NodeConfig {
            emulated: Some(hub.clone()),
            budgets: small,
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let mut events = ben.subscribe();
    let mal = start(mal, &hub).await;
    ann.create_group(GROUP, &["ben".into(), "mal".into()])
        .await
        .unwrap();
    until("everyone joins", || {
        is_member(&ben) == Some(true) && is_member(&mal) == Some(true)
    })
    .await;

    let ann_dir = stop(ann).await;
    let dir = stop(mal).await;
    let p = Profile::open(&dir, "pass").unwrap();
    let held = p.group_epochs(GROUP).unwrap().pop().unwrap();
    let mut rng = os_rng();
    let now = strand_node::now();
    let flood: Vec<(GroupId, Message)> = (0..100)
        .map(|i| {
            let text = format!("{i:04} {}", "x".repeat(1000));
            let m = Message::create(
                &p.identity(),
                held.group(),
                now - 1000 + i,
                Kind::TEXT,
                text.as_bytes(),
                &mut rng,
            )
            .unwrap();
            (held.id(), m)
        })
        .collect();
    write(&p, &flood);
    drop(p);
    let mal = restart(&dir, &hub).await;
    let over = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            if let Ok(NodeEvent::OverBudget { contact, group, .. }) = events.recv().await {
                break (contact, group);
            }
        }
    })
    .await
    .expect("Ben's node says whose messages it declined");
    assert_eq!(over, ("mal".to_owned(), Some(GROUP.to_owned())));
    let stored = texts(&ben).len();
    assert!(stored < 100, "the flood stopped at Mal's budget ({stored})");

    let ann = restart(&ann_dir, &hub).await;
    ann.change_group(GROUP, GroupAction::Remove("mal".into()))
        .await
        .unwrap();
    until("the removal reaches Ben", || members(&ben).len() == 2).await;
    ann.send_group(GROUP, "after the flood").await.unwrap();
    until("Ann's text reaches Ben", || {
        texts(&ben).iter().any(|(_, t, _)| t == "after the flood")
    })
    .await;
    drop(mal);
}

/// Attack 5: Mal, an admin, is removed. Then she writes a text and a
/// timer into the epoch she still holds. Ben does not show her text as
/// an ordinary message, and her timer does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_members_posts_and_timers_in_old_epochs_do_not_count() {
    let tmp = tempfile::tempdir().unwrap();
    let (hub, ann, ben, mal) = cast(tmp.path()).await;
    make_mal_admin(&ann, &ben, &mal).await;
    ann.change_group(GROUP, GroupAction::Remove("mal".into()))
        .await
        .unwrap();
    until("Mal is out", || is_member(&mal) == Some(false)).await;
    until("Ben sees two", || members(&ben).len() == 2).await;

    let dir = stop(mal).await;
    let p = Profile::open(&dir, "pass").unwrap();
    let held = p.group_epochs(GROUP).unwrap().pop().unwrap();
    assert!(held.is_admin(&p.identity().public().sign));
    let mut rng = os_rng();
    let now = strand_node::now();
    let text = Message::create(
        &p.identity(),
        held.group(),
        now,
        Kind::TEXT,
        b"I am still here",
        &mut rng,
    )
    .unwrap();
    let timer = Message::create(
        &p.identity(),
        held.group(),
        now,
        Kind::TIMER,
        &strand_sync::encode_timer(Some(5 * 60_000)).unwrap(),
        &mut rng,
    )
    .unwrap();
    write(&p, &[(held.id(), text.clone()), (held.id(), timer.clone())]);
    drop(p);
    let _mal = restart(&dir, &hub).await;
    // Ben's node declines both (no acknowledgement: she offers them at
    // every sync); meanwhile Ann and Ben go on.
    ann.send_group(GROUP, "carry on").await.unwrap();
    until("Ben reads Ann", || {
        texts(&ben).iter().any(|(_, t, _)| t == "carry on")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        !texts(&ben)
            .iter()
            .any(|(_, t, late)| t == "I am still here" && !late),
        "shown as an ordinary message"
    );
    assert_eq!(ben.profile().group_timer(GROUP).unwrap(), None);
}

/// Attack 6: Mal, an admin, removes Ben with a change written to expire a
/// minute later, and sets a timer that expires too. Had they been taken,
/// once they went (swept, or refused as expired by the next reading of
/// the group) Ben would be back in the epoch Ann and the others had left,
/// reading what they write there, and the timer would lapse. Both are
/// refused on receipt: nothing moves, and Mal's next text gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_removal_or_timer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (hub, ann, ben, mal) = cast(tmp.path()).await;
    make_mal_admin(&ann, &ben, &mal).await;
    let before = head(&ann).id();
    let dir = stop(mal).await;

    let p = Profile::open(&dir, "pass").unwrap();
    let held = p.group_epochs(GROUP).unwrap().pop().unwrap();
    let mut rng = os_rng();
    let now = strand_node::now();
    let ben_sign = ben.profile().identity().public().sign;
    let (honest, _) = held
        .propose(&p.identity(), Change::Remove(ben_sign), now, &mut rng)
        .unwrap();
    let body = honest.open(held.group()).unwrap();
    let in_a_minute = Some(now + 60_000);
    assert!(matches!(
        Message::create_expiring(
            &p.identity(),
            held.group(),
            now,
            in_a_minute,
            Kind::MEMBERSHIP,
            &body,
            &mut rng
        ),
        Err(strand_sync::Invalid::MustLast(3))
    ));
    let removal = Message::forge_expiring(
        &p.identity(),
        held.group(),
        now,
        in_a_minute,
        Kind::MEMBERSHIP,
        &body,
        &mut rng,
    )
    .unwrap();
    let timer = Message::forge_expiring(
        &p.identity(),
        held.group(),
        now,
        in_a_minute,
        Kind::TIMER,
        &strand_sync::encode_timer(Some(5 * 60_000)).unwrap(),
        &mut rng,
    )
    .unwrap();
    let after = Message::create(
        &p.identity(),
        held.group(),
        now + 1,
        Kind::TEXT,
        b"and now this",
        &mut rng,
    )
    .unwrap();
    write(
        &p,
        &[
            (held.id(), removal.clone()),
            (held.id(), timer.clone()),
            (held.id(), after.clone()),
        ],
    );
    drop(p);
    let _mal = restart(&dir, &hub).await;
    until("Mal's text reaches Ann and Ben", || {
        holds(&ann, &held.id(), &after.key()) && holds(&ben, &held.id(), &after.key())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    for node in [&ann, &ben] {
        assert!(
            !holds(node, &held.id(), &removal.key()),
            "the removal is refused"
        );
        assert!(
            !holds(node, &held.id(), &timer.key()),
            "the timer is refused"
        );
        assert_eq!(head(node).id(), before);
        assert_eq!(members(node).len(), 3);
        assert_eq!(node.profile().group_timer(GROUP).unwrap(), None);
    }
    assert_eq!(is_member(&ben), Some(true));
}

/// Ann makes Mal an admin, then Ben (so that the epoch where Mal was made
/// one has Ann's change in it); then Mal leaves, and her node stops.
/// Returns the hub, Ann and Ben's nodes, and Mal's profile's folder.
async fn an_admin_who_left(tmp: &std::path::Path) -> (Hub, Node, Node, PathBuf) {
    let (hub, ann, ben, mal) = cast(tmp).await;
    make_mal_admin(&ann, &ben, &mal).await;
    ann.change_group(GROUP, GroupAction::MakeAdmin("ben".into()))
        .await
        .unwrap();
    let id = head(&ann).id();
    until("Mal follows", || head(&mal).id() == id).await;
    mal.change_group(GROUP, GroupAction::Leave).await.unwrap();
    until("Ben sees Mal leave", || members(&ben).len() == 2).await;
    until("Ann sees Mal leave", || members(&ann).len() == 2).await;
    let dir = stop(mal).await;
    (hub, ann, ben, dir)
}

/// The first epoch of the group where the profile's owner is an admin.
fn first_as_admin(p: &Profile) -> Epoch {
    let me = p.identity().public().sign;
    p.group_epochs(GROUP)
        .unwrap()
        .into_iter()
        .find(|e| e.is_admin(&me))
        .expect("an epoch where she was an admin")
}

/// A change of Eve's membership, the `k`th: an add, then a removal, and
/// so on.
fn eve_change(eve: &strand_sync::Identity, k: usize) -> Change {
    if k.is_multiple_of(2) {
        Change::Add {
            public: eve.public(),
            name: "eve".into(),
        }
    } else {
        Change::Remove(eve.public().sign)
    }
}

/// Writes `change` into Mal's stopped profile, with a text to Ben after
/// it, starts her node, waits until Ben holds the text, and 3 s more
/// (the group's logs sync in the same session: the change would have
/// come by then). Returns her node.
async fn send_late(
    dir: &std::path::Path,
    hub: &Hub,
    ben: &Node,
    change: (GroupId, Message),
) -> Node {
    let p = Profile::open(dir, "pass").unwrap();
    let pair = p.direct_group("ben").unwrap();
    let text = Message::create(
        &p.identity(),
        &pair,
        strand_node::now(),
        Kind::TEXT,
        b"and then",
        &mut os_rng(),
    )
    .unwrap();
    write(&p, &[change, (pair.id, text.clone())]);
    drop(p);
    let mal = restart(dir, hub).await;
    until("the text reaches Ben", || holds(ben, &pair.id, &text.key())).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    mal
}

/// Attack 7: Mal, an admin, leaves. Then she writes a change into an
/// epoch from when she was an admin (Ann's change wins there), one into
/// the epoch it makes, and so on: her Leave is on none of those branches,
/// so each opens at Ben, who stored, synced and read again every one of
/// them, newest first (pushing his other epochs out of a session's
/// groups). Ben takes `MAX_CHANGES_OFF_PATH` of them, and his group stays
/// where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_who_left_cannot_grow_epochs_without_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (hub, ann, ben, dir) = an_admin_who_left(tmp.path()).await;
    let left = head(&ben).id();
    let before = epochs(&ben).len();

    let p = Profile::open(&dir, "pass").unwrap();
    let me = p.identity();
    let mut at = first_as_admin(&p);
    let eve = strand_sync::Identity::generate("eve", &mut os_rng()).unwrap();
    let mut changes = Vec::new();
    let rounds = strand_sync::MAX_CHANGES_OFF_PATH + 4;
    for k in 0..rounds {
        let now = strand_node::now() - 1000 + k as u64;
        let (msg, next) = at
            .propose(&me, eve_change(&eve, k), now, &mut os_rng())
            .unwrap();
        changes.push((at.id(), msg));
        at = next.expect("an admin's change makes an epoch");
    }
    write(&p, &changes);
    drop(p);
    let mal = restart(&dir, &hub).await;
    let started = std::time::Instant::now();
    let taken = strand_sync::MAX_CHANGES_OFF_PATH;
    until("Ben takes as many as he may", || {
        changes[..taken]
            .iter()
            .all(|(g, m)| holds(&ben, g, &m.key()))
    })
    .await;
    // Twice as long as those took (and 3 s at least): one more would
    // have come by then.
    let waited = started.elapsed() * 2;
    tokio::time::sleep(waited.max(std::time::Duration::from_secs(3))).await;

    let (g, m) = &changes[taken];
    assert!(!holds(&ben, g, &m.key()), "one change too many was taken");
    assert_eq!(epochs(&ben).len(), before + taken);
    ben_stays_with_ann(&ann, &ben, left, "after the growth").await;
    drop(mal);
}

/// Attack 7 again, without a chain: Mal makes changes into one old epoch,
/// and sends them largest id first, one at a time. Each replaced the one
/// before it (only an author's smallest counts) and opened one more
/// epoch at Ben, the one it replaced staying: her count of changes off
/// the path stayed at one. Ben takes no second change of hers into an
/// epoch that holds one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_who_left_cannot_grow_epochs_by_replacing_her_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (hub, _ann, ben, dir) = an_admin_who_left(tmp.path()).await;
    let left = head(&ben).id();
    let before = epochs(&ben).len();

    let p = Profile::open(&dir, "pass").unwrap();
    let me = p.identity();
    let old = first_as_admin(&p);
    drop(p);
    let eve = strand_sync::Identity::generate("eve", &mut os_rng()).unwrap();
    // The same add, at three times: three ids.
    let mut changes: Vec<Message> = (0..3)
        .map(|k| {
            let now = strand_node::now() - 1000 + k;
            old.propose(&me, eve_change(&eve, 0), now, &mut os_rng())
                .unwrap()
                .0
        })
        .collect();
    changes.sort_by_key(|m| std::cmp::Reverse(m.id()));
    for (k, change) in changes.iter().enumerate() {
        let mal = send_late(&dir, &hub, &ben, (old.id(), change.clone())).await;
        assert_eq!(holds(&ben, &old.id(), &change.key()), k == 0, "change {k}");
        stop(mal).await;
    }
    assert_eq!(epochs(&ben).len(), before + 1, "one epoch more, not three");
    assert_eq!(head(&ben).id(), left, "Ben's group did not move");
}

/// Mal, an admin, leaves; then she writes a change into the epoch her
/// Leave won, with a smaller id than the Leave's (a try or two). Only an
/// author's smallest change counts in an epoch: it replaced her Leave at
/// Ben, won there, and moved his group onto an epoch where she is an
/// admin again, what came after her Leave left behind. Ben does not take
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_who_left_cannot_replace_her_leave() {
    let tmp = tempfile::tempdir().unwrap();
    let (hub, _ann, ben, dir) = an_admin_who_left(tmp.path()).await;
    let left = head(&ben).id();

    let p = Profile::open(&dir, "pass").unwrap();
    let me = p.identity();
    let last = p.group_epochs(GROUP).unwrap().pop().unwrap();
    assert!(last.is_admin(&me.public().sign), "Mal left from there");
    let leave = {
        let view = p.read_view().unwrap();
        let mut keys = Vec::new();
        Store::scan(&view, &last.id(), &KeyRange::ALL, &mut |k| {
            keys.push(*k);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        keys.into_iter()
            .filter_map(|k| Message::decode(Store::get(&view, &last.id(), &k).unwrap()?).ok())
            .find(|m| m.kind() == Kind::MEMBERSHIP && m.author() == me.public().sign)
            .expect("her Leave")
    };
    drop(p);
    let eve = strand_sync::Identity::generate("eve", &mut os_rng()).unwrap();
    let smaller = loop {
        let (m, _) = last
            .propose(&me, eve_change(&eve, 0), strand_node::now(), &mut os_rng())
            .unwrap();
        if m.id() < leave.id() {
            break m;
        }
    };
    let mal = send_late(&dir, &hub, &ben, (last.id(), smaller.clone())).await;

    assert!(!holds(&ben, &last.id(), &smaller.key()));
    assert!(holds(&ben, &last.id(), &leave.key()), "her Leave stands");
    assert_eq!(head(&ben).id(), left, "Ben's group did not move");
    assert_eq!(members(&ben), ["ann", "me"]);
    drop(mal);
}

/// Attack 7, by welcome: Mal, an admin, adds Ben (she is his adder), then
/// leaves. Still Ben's contact, she sends him a made-up epoch of the
/// group as a welcome. A welcome is taken from a member's own adder, and
/// an adder who left was not passed over as one removed is: the made-up
/// number led furthest, and Ben's group moved to Mal's epoch. Now it
/// stays where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adder_who_left_cannot_move_whom_she_added() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, mal) = three_contacts(tmp.path());
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    let mal = start(mal, &hub).await;
    ann.create_group(GROUP, &["mal".into()]).await.unwrap();
    until("Mal joins", || is_member(&mal) == Some(true)).await;
    ann.change_group(GROUP, GroupAction::MakeAdmin("mal".into()))
        .await
        .unwrap();
    let id = head(&ann).id();
    until("Mal follows", || head(&mal).id() == id).await;
    mal.change_group(GROUP, GroupAction::Add("ben".into()))
        .await
        .unwrap();
    until("Ben joins", || is_member(&ben) == Some(true)).await;
    mal.change_group(GROUP, GroupAction::Leave).await.unwrap();
    until("Ben sees Mal leave", || members(&ben).len() == 2).await;
    let left = head(&ben).id();

    let dir = stop(mal).await;
    let p = Profile::open(&dir, "pass").unwrap();
    let me = p.identity();
    let pair = p.direct_group("ben").unwrap();
    let template = p.group_epochs(GROUP).unwrap().remove(0);
    let body = made_up(
        &template,
        1_000,
        me.public(),
        ben.profile().identity().public(),
    );
    let welcome = Message::create(
        &me,
        &pair,
        strand_node::now(),
        Kind::WELCOME,
        &body,
        &mut os_rng(),
    )
    .unwrap();
    write(&p, &[(pair.id, welcome.clone())]);
    drop(p);
    let mal = restart(&dir, &hub).await;
    until("the welcome reaches Ben", || {
        holds(&ben, &pair.id, &welcome.key())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    ben_stays_with_ann(&ann, &ben, left, "after the welcome").await;
    assert!(!texts(&mal).iter().any(|(_, t, _)| t == "after the welcome"));
}
