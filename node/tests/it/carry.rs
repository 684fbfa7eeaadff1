//! Carrying between real nodes, on one emulated link hub: Ann
//! and Cat are contacts but are never on the hub at the same time; Ben, a
//! contact of both, carries. Ann's message reaches Cat through Ben, who
//! holds only the sealed envelope and deletes it once Cat's
//! acknowledgement reaches him; the acknowledgement then reaches Ann.
//! A carrier cannot make Cat accept what no contact of hers wrote.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_node::{Budgets, KdfParams, Node, NodeConfig, NodeEvent, Profile};
use strand_sync::harness::PoolFixture;
use strand_sync::{Envelope, Identity, Kind, Message, PublicIdentity, Store, WriteStore};
use strand_transport::memory::Hub;

use crate::hub::{befriend, profile, start, until};

fn texts(node: &Node, contact: &str) -> Vec<String> {
    node.profile()
        .conversation(contact)
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect()
}

/// Owen and his contact Ann, and Max (the device Owen will make his
/// mailbox).
fn owen_max_and_ann(root: &std::path::Path) -> (Profile, Profile, Profile) {
    let (owen, max, ann) = (
        profile(root, "owen"),
        profile(root, "max"),
        profile(root, "ann"),
    );
    befriend(&owen, &ann);
    (owen, max, ann)
}

/// Ann, Ben and Cat, each the others' contact.
fn three(root: &std::path::Path) -> (Profile, Profile, Profile) {
    let (ann, ben, cat) = (
        profile(root, "ann"),
        profile(root, "ben"),
        profile(root, "cat"),
    );
    befriend(&ann, &ben);
    befriend(&ben, &cat);
    befriend(&ann, &cat);
    (ann, ben, cat)
}

/// Ben turns carrying on, and Ann learns it.
async fn ben_carries(ann: &Node, ben: &Node) {
    ben.set_carrying(true).await.unwrap();
    until("Ann learns Ben carries", || {
        ann.carry_status().carriers == 1
    })
    .await;
}

/// Ann writes `text` to Cat, and waits until Ben, who carries, holds it.
async fn ben_takes_anns_text(ann: &Node, ben: &Node, text: &str) -> strand_sync::Key {
    let key = ann.send("cat", text).await.unwrap();
    until("Ben holds an envelope", || ben.carry_status().held == 1).await;
    key
}

/// `node`'s contact `public`, as it syncs with them.
fn synced(node: &Node, public: &PublicIdentity) -> strand_sync::Contact {
    node.profile()
        .sync_contacts()
        .into_iter()
        .find(|c| c.public == *public)
        .unwrap()
}

/// How many messages `node` keeps in the carrying pool it shares with
/// its contact `public`.
fn pool_messages(node: &Node, public: &PublicIdentity) -> usize {
    let pool = synced(node, public).pool.id;
    let mut n = 0;
    strand_sync::Store::scan(
        &node.profile().read_view().unwrap(),
        &pool,
        &strand_sync::KeyRange::ALL,
        &mut |_| {
            n += 1;
            std::ops::ControlFlow::Continue(())
        },
    )
    .unwrap();
    n
}

/// How many messages `author` wrote that `node` keeps whole (not read
/// and hollowed, nor confirmed and hollowed) in the carrying pool it
/// shares with its contact `public`.
fn whole_in_pool(node: &Node, public: &PublicIdentity, author: &PublicIdentity) -> usize {
    let pool = synced(node, public).pool.id;
    let view = node.profile().read_view().unwrap();
    let mut keys = Vec::new();
    view.scan(&pool, &strand_sync::KeyRange::ALL, &mut |k| {
        keys.push(*k);
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    keys.iter()
        .filter_map(|k| view.get(&pool, k).unwrap())
        .filter(|bytes| Message::decode(bytes.clone()).is_ok_and(|m| m.author() == author.sign))
        .count()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_brings_a_message_between_contacts_who_never_meet() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = three(tmp.path());
    let (ann_key, cat_key) = (ann.identity().public(), cat.identity().public());
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;

    // Ben opts in; Ann learns it through their pool.
    assert!(!ben.carry_status().carrying);
    ben_carries(&ann, &ben).await;
    assert_eq!(ben.carry_status().carriers, 0, "Ann does not carry");

    ben_takes_anns_text(&ann, &ben, "meet at noon by the river").await;
    assert_eq!(ann.carry_status().spreading, 1);
    // What Ben holds is sealed: no text, no sender or recipient key.
    let held = ben.carried_envelopes();
    assert_eq!(held.len(), 1);
    for secret in [
        &b"meet at noon"[..],
        &ann_key.sign[..],
        &ann_key.dh[..],
        &cat_key.sign[..],
        &cat_key.dh[..],
    ] {
        assert!(!contains(&held[0], secret));
    }
    // Ben's own conversations hold nothing of it.
    assert!(texts(&ben, "ann").is_empty() && texts(&ben, "cat").is_empty());

    // Ann leaves; only then does Cat come.
    let ann_dir = tmp.path().join("ann");
    ann.shutdown().await;
    let cat = start(cat, &hub).await;
    until("Cat gets Ann's message through Ben", || {
        texts(&cat, "ann") == ["meet at noon by the river"]
    })
    .await;
    // Cat's acknowledgement reaches Ben: he deletes the envelope.
    until("Ben deletes the envelope", || ben.carry_status().held == 0).await;
    assert!(ben.carried_envelopes().is_empty());
    assert_eq!(cat.carry_status().opened, 1);

    // Cat leaves; Ann comes back and meets only Ben: the acknowledgement
    // reaches her, and her message stops spreading.
    cat.shutdown().await;
    let ann = start(Profile::open(&ann_dir, "pass").unwrap(), &hub).await;
    let s = ann.carry_status();
    assert_eq!(s.spreading, 1, "kept across a restart");
    assert_eq!((s.held_back, s.held_back_until, s.waiting), (0, None, 0));
    until("Ann learns it was delivered", || {
        ann.carry_status().spreading == 0
    })
    .await;
    // She sees it delivered (only Cat could reveal the acknowledgement),
    // and it is no longer waiting to spread, across restarts too: before,
    // it stayed "sent", and every start spread it again in a new envelope.
    let delivered = |n: &Node| {
        n.profile()
            .conversation("cat")
            .unwrap()
            .iter()
            .any(|m| m.delivery == Some(strand_node::Delivery::Delivered))
    };
    let ann_cat = synced(&ann, &cat_key).direct_group().id;
    until("Ann sees it delivered", || delivered(&ann)).await;
    assert_eq!(ann.profile().undelivered(&ann_cat).unwrap(), []);
    ann.shutdown().await;
    let ann = start(Profile::open(&ann_dir, "pass").unwrap(), &hub).await;
    assert!(delivered(&ann));

    // When Ann and Cat finally meet, the direct copy is no duplicate.
    let cat = start(
        Profile::open(&tmp.path().join("cat"), "pass").unwrap(),
        &hub,
    )
    .await;
    cat.send("ann", "see you there").await.unwrap();
    until("Cat's reply reaches Ann directly", || {
        texts(&ann, "cat").len() == 2
    })
    .await;
    assert_eq!(
        texts(&cat, "ann"),
        ["meet at noon by the river", "see you there"]
    );
    assert_eq!(ann.carry_status().spreading, 0);

    ann.shutdown().await;
    ben.shutdown().await;
    cat.shutdown().await;
}

/// A text to a contact linked now goes over the link: no carrier is
/// offered it while the link is up (before, a text to someone not met
/// twice went to every carrier at once, though it was delivered directly
/// a moment later). Here Cat refuses it (her budget for Ann is spent), so
/// it stays undelivered; when her link ends, it goes to Ben.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_to_a_linked_contact_goes_to_carriers_only_once_the_link_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = three(tmp.path());
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    ben_carries(&ann, &ben).await;
    let mut events = ann.subscribe();
    let cat = Node::start(
        cat,
        NodeConfig {
            emulated: Some(hub.clone()),
            budgets: Budgets {
                per_contact: 1,
                ..Budgets::default()
            },
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(90), events.recv()).await {
            Ok(Ok(NodeEvent::Connected { contact, .. })) if contact == "cat" => break,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("Ann and Cat never linked: {other:?}"),
        }
    }
    ann.send("cat", "over the link").await.unwrap();
    let s = ann.carry_status();
    assert_eq!((s.held_back, s.waiting), (1, 0), "{s:?}");
    cat.shutdown().await;
    until("Ben holds it once Cat's link ends", || {
        ben.carry_status().held == 1
    })
    .await;
    ann.shutdown().await;
    ben.shutdown().await;
}

/// An acknowledgement that comes for a text already marked delivered (it
/// reached Cat directly, and the node stopped before its carrier let go
/// of it) tells the user nothing new: before, a second `Delivered` came.
/// (Such a text no longer spreads from the next start on, see
/// `a_text_confirmed_before_a_kill_stops_spreading_at_the_next_start`:
/// the acknowledgement Ben brings then finds nothing to let go of.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_already_delivered_is_not_told_delivered_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = three(tmp.path());
    let (ben_key, cat_key) = (ben.identity().public(), cat.identity().public());
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    ben_carries(&ann, &ben).await;
    let key = ben_takes_anns_text(&ann, &ben, "through Ben").await;
    let group = synced(&ann, &cat_key).direct_group().id;
    ann.shutdown().await;
    let cat = start(cat, &hub).await;
    until("Cat gets it through Ben", || {
        texts(&cat, "ann") == ["through Ben"]
    })
    .await;
    until("Ben has Cat's acknowledgement", || {
        ben.carry_status().held == 0
    })
    .await;
    cat.shutdown().await;
    ben.shutdown().await;
    let ann = Profile::open(&tmp.path().join("ann"), "pass").unwrap();
    ann.mark(&group, &key, strand_node::Delivery::Delivered)
        .unwrap();
    let ann = start(ann, &hub).await;
    let mut events = ann.subscribe();
    assert_eq!(ann.carry_status().spreading, 0, "marked delivered");
    // Ben wrote her Cat's acknowledgement when it reached him: the one
    // pool message of his she has not had.
    let before = pool_messages(&ann, &ben_key);
    let ben = start(
        Profile::open(&tmp.path().join("ben"), "pass").unwrap(),
        &hub,
    )
    .await;
    until("Ann reads the acknowledgement", || {
        pool_messages(&ann, &ben_key) > before && whole_in_pool(&ann, &ben_key, &ben_key) == 0
    })
    .await;
    let mut told = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, NodeEvent::Delivered { .. }) {
            told += 1;
        }
    }
    assert_eq!(told, 0, "told delivered again");
    ann.shutdown().await;
    ben.shutdown().await;
}

/// Regression (crash audit: a contact's confirmations waited in memory
/// for the next carrying step). Ann's text to Ben spreads through
/// carriers; Ben confirms holding it, and Ann's node is killed after her
/// link marked it delivered but before her carrier heard so (here the
/// mark is written with no node running, which leaves the profile as
/// such a kill does). At her next start it no longer spreads. Before, it
/// went on spreading, to every carrier she met, until it expired (a
/// week), though she saw it delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_confirmed_before_a_kill_stops_spreading_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let ben_key = ben.identity().public();
    let spreading = |n: &Node| {
        let s = n.carry_status();
        s.spreading + s.held_back + s.waiting
    };
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let key = ann.send("ben", "are you there?").await.unwrap();
    assert_eq!(spreading(&ann), 1, "the text spreads");
    let direct = synced(&ann, &ben_key).direct_group().id;
    ann.shutdown().await;
    let ann = Profile::open(&tmp.path().join("ann"), "pass").unwrap();
    ann.mark(&direct, &key, strand_node::Delivery::Delivered)
        .unwrap();
    let ann = start(ann, &hub).await;
    assert_eq!(spreading(&ann), 0, "spreading, though Ben holds it");
    ann.shutdown().await;
}

/// A drive export writes the conversations before it takes the carrying
/// lock, so carrying (a text sent, an envelope taken in) goes on
/// meanwhile. Before, it waited for the whole file, minutes on a slow
/// stick, and `strand send` hung with it. Here the export's progress, as
/// it starts, asks for a carrying step of the same node and waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrying_goes_on_while_a_drive_is_written() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let tmp = tempfile::tempdir().unwrap();
    let (ann, _, _) = three(tmp.path());
    let ann = start(ann, &Hub::new()).await;
    for i in 0..3 {
        ann.send("ben", &format!("for the stick {i}"))
            .await
            .unwrap();
    }
    let handle = tokio::runtime::Handle::current();
    let asked = AtomicBool::new(false);
    let stepped = Arc::new(Mutex::new(None));
    let (node, seen) = (ann.clone(), stepped.clone());
    ann.export_bundle_reporting("ben", &tmp.path().join("for-ben.strand"), move |_, _| {
        if asked.swap(true, Ordering::SeqCst) {
            return;
        }
        let step = handle.block_on(tokio::time::timeout(
            std::time::Duration::from_secs(60),
            node.set_carrying(true),
        ));
        *seen.lock().unwrap() = Some(step.is_ok());
    })
    .await
    .unwrap();
    assert_eq!(
        *stepped.lock().unwrap(),
        Some(true),
        "carrying waited for the drive"
    );
    assert!(ann.carry_status().carrying);
    ann.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_cannot_make_the_recipient_accept_what_no_contact_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let (ben, cat) = (profile(tmp.path(), "ben"), profile(tmp.path(), "cat"));
    befriend(&ben, &cat);
    let mut rng = strand_node::os_rng();
    // Ben forges: a message from a stranger in the stranger's 1:1 group
    // with Cat, sealed to Cat and handed to her in their pool for
    // delivery, as if carried.
    let stranger = Identity::generate("mallory", &mut rng).unwrap();
    let with_cat = stranger.contact(&cat.identity().public()).unwrap();
    let forged = Message::create(
        &stranger,
        with_cat.direct_group(),
        strand_node::now(),
        Kind::TEXT,
        b"trust me",
        &mut rng,
    )
    .unwrap();
    let ben_id = ben.identity();
    let pool = ben_id.contact(&cat.identity().public()).unwrap().pool;
    let mut store = ben.store().unwrap();
    let envelope = Envelope::seal(
        &cat.identity().public(),
        &forged,
        strand_node::now() + 3_600_000,
        1,
        &mut rng,
    )
    .unwrap();
    let mut body = vec![1u8];
    body.extend_from_slice(envelope.as_bytes());
    let wrapper = Message::create_expiring(
        &ben_id,
        &pool,
        strand_node::now(),
        Some(envelope.expires()),
        Kind::ENVELOPE,
        &body,
        &mut rng,
    )
    .unwrap();
    store.insert(&pool.id, &wrapper).unwrap();
    store.commit().unwrap();
    drop(store);

    let hub = Hub::new();
    let ben = start(ben, &hub).await;
    let cat = start(cat, &hub).await;
    // Cat opens it (it was sealed to her) and takes nothing.
    until("Cat looks at the envelope", || {
        cat.carry_status().opened == 1
    })
    .await;
    // Give an acknowledgement time to go out, if one wrongly did.
    ben.send("cat", "a real one").await.unwrap();
    until("Cat gets Ben's real message", || {
        texts(&cat, "ben") == ["a real one"]
    })
    .await;
    assert!(cat.profile().contacts().iter().all(|c| c.name == "ben"));
    assert_eq!(texts(&cat, "ben"), ["a real one"]);
    ben.shutdown().await;
    cat.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_carrier_drops_its_oldest_and_the_sender_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = three(tmp.path());
    let hub = Hub::new();
    // Ben carries at most two 1 KiB envelopes.
    let small = |p| async {
        Node::start(
            p,
            strand_node::NodeConfig {
                emulated: Some(hub.clone()),
                carry: strand_node::CarrySettings {
                    budget: 2 * 1102,
                    ..strand_node::CarrySettings::default()
                },
                ..strand_node::NodeConfig::default()
            },
        )
        .await
        .unwrap()
    };
    let ann = start(ann, &hub).await;
    let ben = small(ben).await;
    ben_carries(&ann, &ben).await;
    for i in 0..5 {
        ann.send("cat", &format!("note {i}")).await.unwrap();
        until("Ben takes it in", || ben.carry_status().carried == i + 1).await;
    }
    let s = ben.carry_status();
    assert_eq!((s.held, s.evicted), (2, 3), "{s:?}");
    assert!(s.held_bytes <= s.budget, "{s:?}");
    ann.shutdown().await;
    // Cat meets Ben: she gets the newest two, the others were dropped.
    let cat = start(cat, &hub).await;
    until("Cat gets the two Ben kept", || {
        texts(&cat, "ann").len() == 2
    })
    .await;
    assert_eq!(texts(&cat, "ann"), ["note 3", "note 4"]);
    // Ann comes back: everything she wrote reaches Cat, once each.
    let ann = start(
        Profile::open(&tmp.path().join("ann"), "pass").unwrap(),
        &hub,
    )
    .await;
    until("Cat has all five", || texts(&cat, "ann").len() == 5).await;
    assert_eq!(
        texts(&cat, "ann"),
        ["note 0", "note 1", "note 2", "note 3", "note 4"]
    );
    ann.shutdown().await;
    ben.shutdown().await;
    cat.shutdown().await;
}

/// The mailbox: Owen's mailbox Max is paired to his profile;
/// Ann, Owen's contact, learns it through their conversation and Max
/// learns Ann from Owen. Owen is away when Ann writes; Ann meets only Max;
/// Owen comes back somewhere Ann is not, meets only Max, and has the
/// message. Max holds only the sealed envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_away_gets_a_message_from_the_mailbox() {
    let tmp = tempfile::tempdir().unwrap();
    let (owen, max, ann) = owen_max_and_ann(tmp.path());
    let mut rng = strand_node::os_rng();
    let settings = strand_node::CarrySettings::default();
    // An invite is no mailbox code; Ann's mailbox is not Owen's.
    let plain = owen.invite().unwrap().to_text();
    assert!(owen.pair_mailbox(&plain, 0, &mut rng).is_err());
    let anns = profile(tmp.path(), "anns-mailbox");
    anns.become_mailbox(&ann.invite().unwrap(), &settings, 0, &mut rng)
        .unwrap();
    let err = owen
        .pair_mailbox(&anns.mailbox_code().unwrap().unwrap(), 0, &mut rng)
        .unwrap_err();
    assert!(err.to_string().contains("paired to someone else"), "{err}");
    assert!(owen.mailbox().unwrap().is_none());
    assert_eq!(owen.contacts().len(), 1);
    max.become_mailbox(&owen.invite().unwrap(), &settings, 0, &mut rng)
        .unwrap();
    let code = max.mailbox_code().unwrap().unwrap();
    owen.pair_mailbox(&code, 0, &mut rng).unwrap();
    assert!(
        max.pair_mailbox(&code, 0, &mut rng).is_err(),
        "a mailbox has none"
    );
    assert_eq!(max.mailbox_of().unwrap().unwrap().name, "owen");
    assert!(max.carrying().unwrap());

    let hub = Hub::new();
    let owen = start(owen, &hub).await;
    let max = start(max, &hub).await;
    let ann = start(ann, &hub).await;
    // Ann learns Owen's mailbox; Max learns Ann; they link.
    until("Ann adds Owen's mailbox", || {
        ann.profile()
            .contacts()
            .iter()
            .any(|c| c.name == "owen's mailbox")
    })
    .await;
    until("Max adds Ann", || max.profile().contacts().len() == 2).await;
    until("Ann learns Max carries", || {
        ann.carry_status().carriers == 1
    })
    .await;
    owen.shutdown().await;

    ann.send("owen", "call me when you are back").await.unwrap();
    until("Max holds the envelope", || max.carry_status().held == 1).await;
    let held = max.carried_envelopes();
    assert!(!contains(&held[0], b"call me"));
    ann.shutdown().await;

    let owen = start(
        Profile::open(&tmp.path().join("owen"), "pass").unwrap(),
        &hub,
    )
    .await;
    until("Owen gets it from his mailbox", || {
        texts(&owen, "ann") == ["call me when you are back"]
    })
    .await;
    until("Max deletes it", || max.carry_status().held == 0).await;
    owen.shutdown().await;
    max.shutdown().await;
}

/// How many messages of `kind` `p` holds in `group`.
fn of_kind(p: &Profile, group: &strand_sync::GroupId, kind: Kind) -> usize {
    let view = p.read_view().unwrap();
    let mut keys = Vec::new();
    view.scan(group, &strand_sync::KeyRange::ALL, &mut |k| {
        keys.push(*k);
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    keys.iter()
        .filter(|k| view.kind(group, k).unwrap() == Some(kind))
        .count()
}

/// Owen, whose mailbox Max is, adds Cat, and his node is killed before
/// it tells her anything (here: added with no node at all, which leaves
/// the profile as such a kill does). His next start tells her of the
/// mailbox, and the mailbox of her. Before, only the node that added her
/// told her, right after the add: a kill or a failure in between, and
/// she never learnt of Owen's mailbox (nor the mailbox of her), and
/// adding her again said she was a contact already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_added_before_a_kill_is_told_of_the_mailbox_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (owen, max, _ann) = owen_max_and_ann(tmp.path());
    let mut rng = strand_node::os_rng();
    let settings = strand_node::CarrySettings::default();
    max.become_mailbox(&owen.invite().unwrap(), &settings, 0, &mut rng)
        .unwrap();
    let (mailbox, _) = owen
        .pair_mailbox(&max.mailbox_code().unwrap().unwrap(), 0, &mut rng)
        .unwrap();
    let cat = Identity::generate("cat", &mut rng).unwrap();
    owen.add_contact(&cat.invite(), "cat", 0, &mut rng).unwrap();
    let direct = |p: &Profile, name: &str| {
        let record = p.contact(name).unwrap();
        p.sync_contact(&record).unwrap().direct_group().id
    };
    let (with_cat, with_max) = (direct(&owen, "cat"), direct(&owen, mailbox.name.as_str()));
    assert_eq!(
        of_kind(&owen, &with_cat, Kind::MAILBOX),
        0,
        "nothing told yet"
    );
    let lists = of_kind(&owen, &with_max, Kind::MAILBOX_CONTACTS);

    let hub = Hub::new();
    let owen = start(owen, &hub).await;
    until("Cat is told of Owen's mailbox", || {
        of_kind(owen.profile(), &with_cat, Kind::MAILBOX) == 1
    })
    .await;
    until("the mailbox gets a list with Cat", || {
        of_kind(owen.profile(), &with_max, Kind::MAILBOX_CONTACTS) > lists
    })
    .await;
    owen.shutdown().await;
}

/// A mailbox learnt from a drive imported with no node running (`strand
/// import` offline): its records are taken at import, as from a link.
/// Ann learns Owen's mailbox; the mailbox learns Ann.
#[test]
fn mailbox_records_on_a_drive_imported_offline_are_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let (owen, max, ann) = owen_max_and_ann(tmp.path());
    let mut rng = strand_node::os_rng();
    let now = strand_node::now();
    let settings = strand_node::CarrySettings::default();
    max.become_mailbox(&owen.invite().unwrap(), &settings, now, &mut rng)
        .unwrap();
    let (mailbox, _) = owen
        .pair_mailbox(&max.mailbox_code().unwrap().unwrap(), now, &mut rng)
        .unwrap();
    let (for_ann, for_max) = (tmp.path().join("for-ann"), tmp.path().join("for-max"));
    owen.export_bundle("ann", &for_ann, now, &mut rng).unwrap();
    owen.export_bundle(&mailbox.name, &for_max, now, &mut rng)
        .unwrap();
    assert!(mailbox.mailbox);
    let budgets = strand_node::Budgets::default();
    for _ in 0..2 {
        ann.import_bundle(&for_ann, &budgets, now, &mut rng)
            .unwrap();
        let names: Vec<String> = ann.contacts().into_iter().map(|c| c.name).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().any(|n| n == "owen's mailbox"), "{names:?}");
        max.import_bundle(&for_max, &budgets, now, &mut rng)
            .unwrap();
        let keys: Vec<_> = max.contacts().into_iter().map(|c| c.public).collect();
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(&ann.identity().public()));
    }
    // Both know the mailbox for one, and write nothing to it: it reads
    // nothing (nor can it be a group's member).
    let theirs = ann.contact("owen's mailbox").unwrap();
    assert!(theirs.mailbox && !ann.contact("owen").unwrap().mailbox);
    for (p, name) in [(&ann, "owen's mailbox"), (&owen, mailbox.name.as_str())] {
        let err = p.write(name, "hello?", now, &mut rng).unwrap_err();
        assert!(err.to_string().contains("is a mailbox"), "{err}");
    }
    let err = ann
        .create_group("desk", &["owen's mailbox".to_owned()], now, &mut rng)
        .unwrap_err();
    assert!(err.to_string().contains("is a mailbox"), "{err}");
    assert!(ann.groups().unwrap().is_empty());
    assert!(ann.write("owen", "still fine", now, &mut rng).is_ok());
}

/// A mailbox takes a list of a thousand of its owner's contacts (here
/// from a drive; a link's are followed up the same way) and says so in
/// one event, which names the first few and counts the rest. Before, it
/// named all of them: a line of over 30 KB to every follower of the
/// control socket (up to 4096 names, hundreds of kilobytes, for the
/// longest list), more than a follower's socket holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_contacts_added_at_once_make_one_small_event() {
    use strand_node::runtime::limits::CONTACTS_ADDED_NAMES;
    const LISTED: usize = 1000;
    let tmp = tempfile::tempdir().unwrap();
    let (owen, max) = (profile(tmp.path(), "owen"), profile(tmp.path(), "max"));
    let mut rng = strand_node::os_rng();
    let now = strand_node::now();
    let settings = strand_node::CarrySettings::default();
    max.become_mailbox(&owen.invite().unwrap(), &settings, now, &mut rng)
        .unwrap();
    let (mailbox, _) = owen
        .pair_mailbox(&max.mailbox_code().unwrap().unwrap(), now, &mut rng)
        .unwrap();
    // Owen's list, later than the one pairing wrote, as his node writes
    // one when he has a thousand contacts.
    let listed: Vec<PublicIdentity> = (0..LISTED)
        .map(|i| {
            Identity::generate(&format!("c{i}"), &mut rng)
                .unwrap()
                .public()
        })
        .collect();
    let to_max = owen.sync_contact(&mailbox).unwrap().direct_group().clone();
    let body = strand_sync::encode_mailbox_contacts(&listed);
    let list = Message::create(
        &owen.identity(),
        &to_max,
        now + 1,
        Kind::MAILBOX_CONTACTS,
        &body,
        &mut rng,
    )
    .unwrap();
    let mut store = owen.store().unwrap();
    store.insert(&to_max.id, &list).unwrap();
    store.commit().unwrap();
    drop(store);
    let drive = tmp.path().join("for-max");
    owen.export_bundle(&mailbox.name, &drive, now, &mut rng)
        .unwrap();

    let max = start(max, &Hub::new()).await;
    let mut events = max.subscribe();
    max.import_bundle(&drive).await.unwrap();
    assert_eq!(
        max.profile().contacts().len(),
        1 + LISTED,
        "Owen and his list"
    );
    let mut added = Vec::new();
    while let Ok(event) = events.try_recv() {
        if matches!(event, NodeEvent::ContactsAdded { .. }) {
            added.push(event);
        }
    }
    let [event] = &added[..] else {
        panic!("one event for the list: {added:?}");
    };
    // As a follower of the control socket gets it: one line of a few
    // hundred bytes here (under 3 KB with the longest names).
    let line = serde_json::to_string(event).unwrap();
    assert!(line.len() < 4096, "{} bytes: {line}", line.len());
    assert_eq!(serde_json::from_str::<NodeEvent>(&line).unwrap(), *event);
    let NodeEvent::ContactsAdded { names, more } = event else {
        unreachable!("only these were kept");
    };
    assert_eq!(names.len(), CONTACTS_ADDED_NAMES);
    assert_eq!(names.len() + more, LISTED);
    // The names it gives are of contacts Max has now.
    let contacts: Vec<String> = max
        .profile()
        .contacts()
        .into_iter()
        .map(|c| c.name)
        .collect();
    for name in names {
        assert!(contacts.contains(name), "{name} is no contact");
    }
    max.shutdown().await;
}

/// One mailbox per contact holds when the user renames: Eve names a
/// mailbox, and Ann renames Eve, then Eve's mailbox. A second mailbox
/// Eve names after each rename is not added (it was checked by the name
/// the first would have, so a rename let one more in each time).
#[test]
fn a_contact_renamed_still_has_one_mailbox() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, eve) = (profile(tmp.path(), "ann"), profile(tmp.path(), "eve"));
    befriend(&ann, &eve);
    let mut rng = strand_node::os_rng();
    let now = strand_node::now();
    let eve_id = eve.identity();
    let group = eve_id
        .contact(&ann.identity().public())
        .unwrap()
        .direct_group()
        .clone();
    let budgets = strand_node::Budgets::default();
    let mut named = 0u64;
    // Eve names one more mailbox device; Ann imports Eve's drive.
    let mut eve_names_a_mailbox = |ann: &Profile| {
        let device = Identity::generate("device", &mut strand_node::os_rng()).unwrap();
        let proof = strand_sync::mailbox_proof(&device, &eve_id.public());
        let body = strand_sync::encode_mailbox(Some((&device.invite(), &proof)));
        named += 1;
        let msg = Message::create(
            &eve_id,
            &group,
            now + named,
            Kind::MAILBOX,
            &body,
            &mut strand_node::os_rng(),
        )
        .unwrap();
        let mut store = eve.store().unwrap();
        store.insert(&group.id, &msg).unwrap();
        store.commit().unwrap();
        drop(store);
        let drive = tmp.path().join(format!("for-ann-{named}"));
        eve.export_bundle("ann", &drive, now, &mut strand_node::os_rng())
            .unwrap();
        ann.import_bundle(&drive, &budgets, now, &mut strand_node::os_rng())
            .unwrap();
        device.public()
    };
    let first = eve_names_a_mailbox(&ann);
    let mailboxes = |p: &Profile| -> Vec<(String, PublicIdentity)> {
        p.contacts()
            .into_iter()
            .filter(|c| c.mailbox)
            .map(|c| (c.name, c.public))
            .collect()
    };
    assert_eq!(mailboxes(&ann), [("eve's mailbox".to_owned(), first)]);
    ann.rename_contact("eve", "evelyn", &mut rng).unwrap();
    eve_names_a_mailbox(&ann);
    assert_eq!(mailboxes(&ann), [("eve's mailbox".to_owned(), first)]);
    ann.rename_contact("eve's mailbox", "the box", &mut rng)
        .unwrap();
    eve_names_a_mailbox(&ann);
    assert_eq!(mailboxes(&ann), [("the box".to_owned(), first)]);
    // Kept across a restart.
    let path = tmp.path().join("ann");
    drop(ann);
    let ann = Profile::open(&path, "pass").unwrap();
    eve_names_a_mailbox(&ann);
    assert_eq!(mailboxes(&ann), [("the box".to_owned(), first)]);
}

/// A mailbox code made on a contact's own profile (Ann, a contact of
/// Owen's, ran `strand mailbox init` with his invite) is refused: Owen's
/// node took it as "pairing again" and sent Ann every contact's keys,
/// and told every contact that Ann was his mailbox. And Ann's profile,
/// which has contacts besides Owen, is not made a mailbox at all: before,
/// it was, for good (her contact Owen could no longer be deleted, no
/// mailbox of her own paired), though Owen refuses it.
#[test]
fn a_contacts_profile_is_not_paired_as_a_mailbox() {
    let tmp = tempfile::tempdir().unwrap();
    let (owen, max, ann) = owen_max_and_ann(tmp.path());
    befriend(&owen, &max);
    let mut rng = strand_node::os_rng();
    let now = strand_node::now();
    let settings = strand_node::CarrySettings::default();
    // Ann talks with Kim too.
    befriend(&ann, &profile(tmp.path(), "kim"));
    let err = ann
        .become_mailbox(&owen.invite().unwrap(), &settings, now, &mut rng)
        .unwrap_err();
    assert!(
        err.to_string().contains("this profile has contacts"),
        "{err}"
    );
    assert!(ann.mailbox_of().unwrap().is_none());
    assert!(!ann.carrying().unwrap());
    ann.delete_contact("owen", now, &mut rng).unwrap();
    // A profile with no contacts of its own, whom Owen has as a contact
    // (he added Zed's invite; Zed never added his): Zed becomes a
    // mailbox, and Owen refuses the code.
    let zed = profile(tmp.path(), "zed");
    owen.add_contact(&zed.invite().unwrap(), "zed", 0, &mut rng)
        .unwrap();
    zed.become_mailbox(&owen.invite().unwrap(), &settings, now, &mut rng)
        .unwrap();
    let err = owen
        .pair_mailbox(&zed.mailbox_code().unwrap().unwrap(), now, &mut rng)
        .unwrap_err();
    assert!(
        err.to_string().contains("not from a mailbox device"),
        "{err}"
    );
    assert!(owen.mailbox().unwrap().is_none());
    assert!(!owen.contact("zed").unwrap().mailbox);
    // Nothing was written for it: no records to Zed or to Max.
    let bundle = tmp.path().join("for-max");
    owen.export_bundle("max", &bundle, now, &mut rng).unwrap();
    max.import_bundle(&bundle, &strand_node::Budgets::default(), now, &mut rng)
        .unwrap();
    assert_eq!(max.contacts().len(), 1, "Max was told of no mailbox");
}

/// `author` names `mailbox` as theirs in the 1:1 conversation with `to`
/// (the record dated `at`), and `to` imports `author`'s drive, which
/// takes the record as a link would.
fn names_as_mailbox(author: &Profile, to: &Profile, mailbox: &Identity, at: u64) {
    let mut rng = strand_node::os_rng();
    let id = author.identity();
    let group = id
        .contact(&to.identity().public())
        .unwrap()
        .direct_group()
        .clone();
    let proof = strand_sync::mailbox_proof(mailbox, &id.public());
    let body = strand_sync::encode_mailbox(Some((&mailbox.invite(), &proof)));
    let msg = Message::create(&id, &group, at, Kind::MAILBOX, &body, &mut rng).unwrap();
    let mut store = author.store().unwrap();
    store.insert(&group.id, &msg).unwrap();
    store.commit().unwrap();
    drop(store);
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("drive");
    let now = strand_node::now();
    author
        .export_bundle(to.identity().name(), &drive, now, &mut rng)
        .unwrap();
    to.import_bundle(&drive, &strand_node::Budgets::default(), now, &mut rng)
        .unwrap();
}

/// A mailbox device's identity with a signing key of its own and
/// `whose`'s key-agreement key. An invite and a mailbox proof are signed
/// by the signing key alone, so what is made from it here anyone makes
/// from `whose`'s public key (the secret is taken only because an
/// `Identity` holds one).
fn with_dh_of(whose: &Identity) -> Identity {
    let mut secret = Identity::generate("box", &mut strand_node::os_rng())
        .unwrap()
        .to_secret_bytes();
    secret[32..].copy_from_slice(&whose.to_secret_bytes()[32..]);
    Identity::from_secret_bytes(&secret, "box").unwrap()
}

/// The names of `p`'s contacts that are mailboxes.
fn mailboxes(p: &Profile) -> Vec<String> {
    p.contacts()
        .into_iter()
        .filter(|c| c.mailbox)
        .map(|c| c.name)
        .collect()
}

/// Mallory names as her mailbox a signing key of her own beside Carol's
/// encryption key (known from a group they share), and Ann takes it
/// before Carol is her contact. Adding Carol is refused, saying whose
/// mailbox holds her key (either side may be the false one: a contact can
/// as well make an invite holding a real mailbox's key, so nothing is
/// deleted); once Ann deletes that mailbox, Carol is added, and one named
/// so again is refused. Before, adding Carol was refused with
/// `KeyConflict("mallory's mailbox")`: Carol, it said, might be
/// impersonating a contact of Ann's.
#[test]
fn a_key_a_contacts_mailbox_holds_is_said_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, mallory) = (profile(tmp.path(), "ann"), profile(tmp.path(), "mallory"));
    befriend(&ann, &mallory);
    let mut rng = strand_node::os_rng();
    let now = strand_node::now();
    let carol = Identity::generate("carol", &mut rng).unwrap();
    names_as_mailbox(&mallory, &ann, &with_dh_of(&carol), now);
    assert_eq!(mailboxes(&ann), ["mallory's mailbox"]);

    let e = ann
        .add_contact(&carol.invite(), "Carol", now, &mut rng)
        .expect_err("a key the mailbox holds");
    let said = e.to_string();
    assert!(
        matches!(&e, strand_node::ProfileError::KeyOfMailbox { mailbox, owner }
            if mailbox == "mallory's mailbox" && owner == "mallory"),
        "{said}"
    );
    assert!(!said.contains("impersonating"), "{said}");
    assert_eq!(mailboxes(&ann), ["mallory's mailbox"], "nothing deleted");
    assert!(ann.contact("Carol").is_err(), "nothing added");

    // Ann trusts Carol's invite: she deletes the mailbox and adds her.
    ann.delete_contact("mallory's mailbox", now, &mut rng)
        .unwrap();
    let added = ann
        .add_contact(&carol.invite(), "Carol", now, &mut rng)
        .unwrap();
    assert_eq!(added.public, carol.public());
    // Named again with Carol a contact: refused.
    names_as_mailbox(&mallory, &ann, &with_dh_of(&carol), now + 1);
    assert!(mailboxes(&ann).is_empty());
}

/// What a test's log subscriber wrote.
#[derive(Clone, Default)]
struct Journal(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Journal {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A mailbox Mallory names with the encryption key of Bob, Ann's
/// contact, is refused, stores nothing, and the log names no one (a
/// journal keeps warnings). Before, it was refused by the add itself,
/// whose warning said the user's own name for Bob ("a contact's mailbox
/// not added: this invite has the signing key of your contact "Bob" …"),
/// once for every such record.
#[test]
fn a_mailbox_with_a_contacts_key_is_refused_naming_no_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, mallory) = (profile(tmp.path(), "ann"), profile(tmp.path(), "mallory"));
    befriend(&ann, &mallory);
    let mut rng = strand_node::os_rng();
    let now = strand_node::now();
    let bob = Identity::generate("bob", &mut rng).unwrap();
    ann.add_contact(&bob.invite(), "Bob", now, &mut rng)
        .unwrap();
    let before = ann.contacts();

    let journal = Journal::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let journal = journal.clone();
            move || journal.clone()
        })
        .finish();
    // While only one dispatcher lives, tracing-core weighs a place logged
    // at for the first time by the logging thread's own dispatcher alone:
    // another test's thread, with none, logging first where this one does
    // would mark the place logged by no one. A second one, kept for the
    // test, has every place weighed by all.
    let _weighed_by_all = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        names_as_mailbox(&mallory, &ann, &with_dh_of(&bob), now);
    });
    assert_eq!(ann.contacts(), before, "nothing stored");
    let log = String::from_utf8(journal.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("not added"), "the refusal is logged: {log}");
    assert!(!log.contains("Bob"), "{log}");
    // Her place is not taken: a mailbox of her own is added.
    let device = Identity::generate("device", &mut rng).unwrap();
    names_as_mailbox(&mallory, &ann, &device, now + 1);
    assert_eq!(mailboxes(&ann), ["mallory's mailbox"]);
}

/// A mailbox a contact named is not paired as the user's own: Max names
/// device Z as his mailbox and Owen takes it; Z's code for Owen (whoever
/// holds Z's keys, Max say, can sign one) is refused, and nothing is
/// written. Before, Owen's node found Z as a contact already marked a
/// mailbox, took the code as pairing again, sent Z every contact's keys
/// and told every contact Z was his mailbox.
#[test]
fn a_mailbox_a_contact_named_is_not_paired_as_ones_own() {
    let tmp = tempfile::tempdir().unwrap();
    let (owen, max, ann) = owen_max_and_ann(tmp.path());
    befriend(&owen, &max);
    let mut rng = strand_node::os_rng();
    let now = strand_node::now();
    let z = Identity::generate("z", &mut rng).unwrap();
    names_as_mailbox(&max, &owen, &z, now);
    assert_eq!(mailboxes(&owen), ["max's mailbox"]);

    let proof = strand_sync::mailbox_proof(&z, &owen.identity().public());
    let code = strand_sync::encode_mailbox_code(&z.invite(), &proof);
    let err = owen.pair_mailbox(&code, now, &mut rng).unwrap_err();
    assert!(
        err.to_string().contains("not from a mailbox device"),
        "{err}"
    );
    assert!(err.to_string().contains("max"), "names whose it is: {err}");
    assert!(owen.mailbox().unwrap().is_none());
    assert_eq!(mailboxes(&owen), ["max's mailbox"]);
    // Nothing was written for it: Ann was told of no mailbox.
    let bundle = tmp.path().join("for-ann");
    owen.export_bundle("ann", &bundle, now, &mut rng).unwrap();
    ann.import_bundle(&bundle, &strand_node::Budgets::default(), now, &mut rng)
        .unwrap();
    assert_eq!(ann.contacts().len(), 1, "Ann was told of no mailbox");
}

/// A text that comes out of an envelope too early for its recipient's
/// clock (its author's runs 20 minutes ahead of hers) waits, as it would
/// over a link, and is taken once her clock allows. Before, the envelope
/// was let go at once and its holder offers it to her only once, so the
/// text was lost; an over-budget one was lost the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_out_of_an_envelope_too_early_waits_and_is_not_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = three(tmp.path());
    let hub = Hub::new();
    const MINUTE: u64 = 60_000;
    let real = strand_node::now();
    let at = |p: Profile, time: u64, seed: u64| {
        Node::start(
            p,
            strand_node::NodeConfig {
                emulated: Some(hub.clone()),
                deterministic: Some((time, seed)),
                ..strand_node::NodeConfig::default()
            },
        )
    };
    let ann = at(ann, real + 10 * MINUTE, 1).await.unwrap();
    let ben = start(ben, &hub).await;
    ben_carries(&ann, &ben).await;
    ben_takes_anns_text(&ann, &ben, "written early").await;
    ann.shutdown().await;

    let cat_dir = tmp.path().join("cat");
    let cat = at(cat, real - 10 * MINUTE, 2).await.unwrap();
    until("Cat opens the envelope", || cat.carry_status().opened >= 1).await;
    assert!(texts(&cat, "ann").is_empty(), "from Cat's future");
    cat.shutdown().await;
    let cat = at(
        Profile::open(&cat_dir, "pass").unwrap(),
        real + 15 * MINUTE,
        3,
    )
    .await
    .unwrap();
    until("Cat has Ann's text once her clock allows", || {
        texts(&cat, "ann") == ["written early"]
    })
    .await;
    until("and Ben lets go of the envelope", || {
        ben.carry_status().held == 0
    })
    .await;
    ben.shutdown().await;
    cat.shutdown().await;
}

/// Envelopes on a drive: Ben carries Ann's message for Cat,
/// and Cat is on no link Ben is on; Ben's drive bundle for Cat holds it,
/// whole, and Cat has Ann's message once she imports the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_hands_envelopes_over_on_a_drive() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = three(tmp.path());
    let cat_public = cat.identity().public();
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    ben_carries(&ann, &ben).await;
    ben_takes_anns_text(&ann, &ben, "on the stick").await;
    ann.shutdown().await;

    // A path that cannot be written (a file is there, or no drive)
    // changes nothing: before, Ben's node handed the envelope whole into
    // his pool with Cat, for a drive that was never made.
    let pool_len = || pool_messages(&ben, &cat_public);
    let before = pool_len();
    let taken = tmp.path().join("taken.strand");
    std::fs::write(&taken, b"mine").unwrap();
    assert!(ben.export_bundle("cat", &taken).await.is_err());
    assert_eq!(std::fs::read(&taken).unwrap(), b"mine");
    let nowhere = tmp.path().join("no-drive").join("for-cat.strand");
    assert!(ben.export_bundle("cat", &nowhere).await.is_err());
    assert!(ben
        .export_bundle("nobody", &tmp.path().join("x.strand"))
        .await
        .is_err());
    assert!(!tmp.path().join("x.strand").exists());
    assert_eq!(pool_len(), before, "nothing handed for a drive not made");
    // Nor does a drive that fills up mid-write (`/dev/full`, whose writes
    // fail as a full drive's do): before, the envelope went into his pool
    // with Cat, to be synced at the next link, before the bundle was
    // written.
    let full = tmp.path().join("full.strand");
    std::fs::write(&full, b"").unwrap();
    let dev_full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    assert!(ben
        .export_bundle_into("cat", dev_full, &full, |_, _| {})
        .await
        .is_err());
    assert!(!full.exists(), "the half bundle is deleted");
    assert_eq!(
        pool_len(),
        before,
        "nothing handed for a bundle not written"
    );
    assert_eq!(ben.carry_status().held, 1);

    let file = tmp.path().join("for-cat.strand");
    ben.export_bundle("cat", &file).await.unwrap();
    // Cat, on another hub: she never links with Ben or Ann.
    let other = Hub::new();
    let cat = start(cat, &other).await;
    let imported = cat.import_bundle(&file).await.unwrap();
    assert_eq!(
        imported.new, 0,
        "no text of Ben's: the envelope is no conversation's"
    );
    until("Cat has Ann's message", || {
        texts(&cat, "ann") == ["on the stick"]
    })
    .await;
    assert_eq!(cat.carry_status().opened, 1);
    // Importing again changes nothing.
    cat.import_bundle(&file).await.unwrap();
    assert_eq!(texts(&cat, "ann"), ["on the stick"]);
    ben.shutdown().await;
    cat.shutdown().await;
}

/// A request that names a file or folder by a relative path is refused
/// as bad input, and does nothing: the node runs in a folder of its own
/// (the service's is the user's home), not the one the path was named
/// from. An export to a relative path (the app sent one, an empty folder
/// among them) used to write the bundle into the node's folder, handing
/// Ben's envelope for Cat over with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_a_relative_path_is_refused() {
    use std::path::PathBuf;
    use strand_node::runtime::api::{FailureKind, Request, Target};
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = three(tmp.path());
    let cat_public = cat.identity().public();
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    ben_carries(&ann, &ben).await;
    ben_takes_anns_text(&ann, &ben, "for the drive").await;
    ann.shutdown().await;
    let pool = pool_messages(&ben, &cat_public);
    let texts_to_cat = texts(&ben, "cat").len();

    // Relative to the test's working folder (the crate's), where the
    // bundle went: a name of this run's own, removed if it was written.
    let relative = PathBuf::from(format!("relative-{}.strand", std::process::id()));
    let answer = ben
        .handle(Request::Export {
            contact: "cat".into(),
            to: relative.clone(),
            task: None,
        })
        .await;
    let written = relative.exists();
    let _ = std::fs::remove_file(&relative);
    let e = answer.expect_err("an export to a relative path is refused");
    assert_eq!(e.kind, FailureKind::BadInput, "{e}");
    assert!(e.message.contains("full path"), "{e}");
    assert!(!written, "no bundle in the node's folder");

    // No folder at all: refused too, not the node's folder.
    let e = ben
        .handle(Request::Export {
            contact: "cat".into(),
            to: PathBuf::new(),
            task: None,
        })
        .await
        .expect_err("an export to no path is refused");
    assert_eq!(e.kind, FailureKind::BadInput, "{e}");
    assert!(e.message.contains("the path is empty"), "{e}");

    // Every other request that names a path: the same rule.
    for request in [
        Request::SendFile {
            to: Target::Contact("cat".into()),
            path: "Cargo.toml".into(),
            task: None,
        },
        Request::Save {
            id: "0123456789abcdef".into(),
            dir: "downloads".into(),
            task: None,
        },
        Request::Import {
            path: "for-ben.strand".into(),
            task: None,
        },
    ] {
        let e = ben
            .handle(request.clone())
            .await
            .expect_err("a relative path is refused");
        assert_eq!(e.kind, FailureKind::BadInput, "{request:?}: {e}");
        assert!(e.message.contains("full path"), "{request:?}: {e}");
    }

    assert_eq!(
        pool_messages(&ben, &cat_public),
        pool,
        "nothing handed over"
    );
    assert_eq!(ben.carry_status().held, 1);
    assert_eq!(texts(&ben, "cat").len(), texts_to_cat, "nothing sent");
    ben.shutdown().await;
}

/// A contact cannot fill a user's contact list through mailbox records:
/// only the first mailbox a contact names is added, a list of contacts is
/// taken only by a mailbox from its owner, and a mailbox takes no
/// mailbox records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_records_from_a_hostile_contact_add_at_most_one_contact() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, eve) = (profile(tmp.path(), "ann"), profile(tmp.path(), "eve"));
    befriend(&ann, &eve);
    let mut rng = strand_node::os_rng();
    let eve_id = eve.identity();
    let with_ann = eve_id.contact(&ann.identity().public()).unwrap();
    let group = with_ann.direct_group();
    let mut store = eve.store().unwrap();
    let strangers: Vec<Identity> = (0..5)
        .map(|i| Identity::generate(&format!("m{i}"), &mut rng).unwrap())
        .collect();
    let now = strand_node::now();
    // A third party's invite, with a proof made for someone else: refused.
    let other = Identity::generate("other", &mut rng).unwrap();
    let squat = strand_sync::mailbox_proof(&strangers[0], &other.public());
    let body = strand_sync::encode_mailbox(Some((&strangers[0].invite(), &squat)));
    let msg = Message::create(&eve_id, group, now - 1, Kind::MAILBOX, &body, &mut rng).unwrap();
    store.insert(&group.id, &msg).unwrap();
    // Then five that did agree to be Eve's: only the first is added.
    for (i, m) in strangers.iter().enumerate() {
        let proof = strand_sync::mailbox_proof(m, &eve_id.public());
        let body = strand_sync::encode_mailbox(Some((&m.invite(), &proof)));
        let msg = Message::create(
            &eve_id,
            group,
            now + i as u64,
            Kind::MAILBOX,
            &body,
            &mut rng,
        )
        .unwrap();
        store.insert(&group.id, &msg).unwrap();
    }
    let list: Vec<_> = strangers.iter().map(|m| m.public()).collect();
    let body = strand_sync::encode_mailbox_contacts(&list);
    let msg = Message::create(
        &eve_id,
        group,
        now + 9,
        Kind::MAILBOX_CONTACTS,
        &body,
        &mut rng,
    )
    .unwrap();
    store.insert(&group.id, &msg).unwrap();
    store.commit().unwrap();
    drop(store);

    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let eve = start(eve, &hub).await;
    until("Ann adds Eve's mailbox", || {
        ann.profile().contacts().len() == 2
    })
    .await;
    // Time for the other records to do harm, if they could.
    eve.send("ann", "hello").await.unwrap();
    until("Ann reads Eve", || texts(&ann, "eve") == ["hello"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let names: Vec<String> = ann
        .profile()
        .contacts()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["eve", "eve's mailbox"]);
    ann.shutdown().await;
    eve.shutdown().await;
}

/// A contact's mailbox names no mailbox: Eve names a device she holds
/// the keys of as her mailbox, and it names another of hers as its own,
/// and so on. Each was added as a contact of its own (with budgets of
/// its own), though a mailbox never has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_mailbox_cannot_name_a_mailbox() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, eve, m1) = (
        profile(tmp.path(), "ann"),
        profile(tmp.path(), "eve"),
        profile(tmp.path(), "m1"),
    );
    befriend(&ann, &eve);
    m1.add_contact(
        &ann.identity().invite(),
        "ann",
        0,
        &mut strand_node::os_rng(),
    )
    .unwrap();
    let mut rng = strand_node::os_rng();
    let now = strand_node::now();
    let record = |author: &Identity, to: &PublicIdentity, mailbox: &Identity| {
        let group = author.contact(to).unwrap().direct_group().clone();
        let proof = strand_sync::mailbox_proof(mailbox, &author.public());
        let body = strand_sync::encode_mailbox(Some((&mailbox.invite(), &proof)));
        let msg = Message::create(
            author,
            &group,
            now,
            Kind::MAILBOX,
            &body,
            &mut strand_node::os_rng(),
        )
        .unwrap();
        (group, msg)
    };
    let ann_public = ann.identity().public();
    // Eve names M1; M1 names M2.
    let (group, msg) = record(&eve.identity(), &ann_public, &m1.identity());
    let mut store = eve.store().unwrap();
    store.insert(&group.id, &msg).unwrap();
    store.commit().unwrap();
    drop(store);
    let m2 = Identity::generate("m2", &mut rng).unwrap();
    let (group, msg) = record(&m1.identity(), &ann_public, &m2);
    let text = Message::create(
        &m1.identity(),
        &group,
        now + 1,
        Kind::TEXT,
        b"after",
        &mut rng,
    )
    .unwrap();
    let mut store = m1.store().unwrap();
    store.insert(&group.id, &msg).unwrap();
    store.insert(&group.id, &text).unwrap();
    store.commit().unwrap();
    drop(store);

    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let _eve = start(eve, &hub).await;
    until("Ann adds Eve's mailbox", || {
        ann.profile().contacts().len() == 2
    })
    .await;
    let m1 = start(m1, &hub).await;
    until("Ann hears from the mailbox", || {
        texts(&ann, "eve's mailbox") == ["after"]
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let names: Vec<String> = ann
        .profile()
        .contacts()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["eve", "eve's mailbox"]);
    ann.shutdown().await;
    m1.shutdown().await;
}

/// The node takes in carrying-pool messages as the simulator does: the
/// same pool messages leave the recipient holding what strand-sync's
/// `PoolFixture` expects (the simulator's half is in
/// `simulations/tests/it/transcript.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_takes_the_reference_pool_messages() {
    let f = PoolFixture::new(strand_node::now());
    let tmp = tempfile::tempdir().unwrap();
    // Profiles whose identities are the fixture's: an identity is the
    // first thing a new profile draws from its RNG.
    let create = |name: &str, seed: u64| {
        Profile::create(
            &tmp.path().join(name),
            name,
            "pass",
            KdfParams::insecure_for_tests(),
            &mut ChaCha20Rng::seed_from_u64(seed),
        )
        .unwrap()
    };
    let (ben, cat) = (
        create("ben", PoolFixture::BEN),
        create("cat", PoolFixture::CAT),
    );
    assert_eq!(ben.identity().public(), f.ben.public());
    assert_eq!(cat.identity().public(), f.cat.public());
    let mut rng = strand_node::os_rng();
    ben.add_contact(&f.cat.invite(), "cat", 0, &mut rng)
        .unwrap();
    cat.add_contact(&f.ben.invite(), "ben", 0, &mut rng)
        .unwrap();
    cat.add_contact(&f.ann.invite(), "ann", 0, &mut rng)
        .unwrap();
    let mut store = ben.store().unwrap();
    for m in &f.messages {
        store.insert(&m.group(), m).unwrap();
    }
    store.commit().unwrap();
    drop(store);

    let hub = Hub::new();
    let cat = start(cat, &hub).await;
    cat.set_carrying(true).await.unwrap();
    let ben = start(ben, &hub).await;
    // Cat has taken every pool message in once each is hollow: read, and
    // its bytes dropped.
    until("Cat takes in all of Ben's pool messages", || {
        let store = cat.profile().store().unwrap();
        f.messages.iter().all(|m| {
            store.contains(&m.group(), &m.key()).unwrap()
                && store
                    .get(&m.group(), &m.key())
                    .unwrap()
                    .is_none_or(|b| b.is_empty())
        })
    })
    .await;
    let status = cat.carry_status();
    let got = f.outcome(
        &cat.profile().store().unwrap(),
        status.opened,
        status.accepted,
        status.held,
    );
    assert_eq!(got, PoolFixture::expected());
    ben.shutdown().await;
    cat.shutdown().await;
}
