//! Private groups between real nodes: three nodes on one
//! emulated link hub, Ann and Cat not contacts. A group of the three, made
//! by Ann with Ben and grown by Ben; Cat's messages reach Ann through Ben;
//! Cat removed cannot read what follows; Ben leaving cuts Ann and Cat off
//! until they become contacts.

use strand_node::{GroupAction, Node, NodeEvent, Profile};
use strand_transport::memory::Hub;

use crate::hub::{befriend, profile, start, until};

fn members(node: &Node, group: &str) -> Vec<String> {
    node.profile()
        .group_members(group)
        .map(|m| m.into_iter().map(|m| m.name).collect())
        .unwrap_or_default()
}

fn texts(node: &Node, group: &str) -> Vec<(String, String, bool)> {
    node.profile()
        .group_conversation(group)
        .map(|c| {
            c.into_iter()
                .map(|m| (m.author, m.message.text, m.verified))
                .collect()
        })
        .unwrap_or_default()
}

fn is_member(node: &Node, group: &str) -> Option<bool> {
    node.profile()
        .groups()
        .ok()?
        .into_iter()
        .find(|g| g.name == group)
        .map(|g| g.member)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_group_relay_and_removal() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = (
        profile(tmp.path(), "ann"),
        profile(tmp.path(), "ben"),
        profile(tmp.path(), "cat"),
    );
    befriend(&ann, &ben);
    befriend(&ben, &cat);
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    let cat = start(cat, &hub).await;

    // Bad input changes nothing.
    assert!(ann
        .create_group("newsroom", &["nobody".into()])
        .await
        .is_err());
    assert!(ann.create_group("newsroom", &[]).await.is_err());
    assert!(ann.create_group(" ", &["ben".into()]).await.is_err());
    assert!(ann.profile().groups().unwrap().is_empty());

    ann.create_group("newsroom", &["ben".into()]).await.unwrap();
    until("Ben joins", || is_member(&ben, "newsroom") == Some(true)).await;
    assert_eq!(members(&ben, "newsroom"), ["ann", "me"]);
    // Only admins add: Ann makes Ben one, and Ben adds Cat, whom Ann
    // does not know.
    let refused = ben
        .change_group("newsroom", GroupAction::Add("cat".into()))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("admin"), "{refused}");
    assert!(
        matches!(
            refused,
            strand_node::ProfileError::Membership(strand_sync::GroupError::NotAllowed(_))
        ),
        "the membership rule's own error: {refused:?}"
    );
    ann.change_group("newsroom", GroupAction::MakeAdmin("ben".into()))
        .await
        .unwrap();
    until("Ben is an admin", || {
        ben.profile().groups().unwrap().iter().any(|g| g.admin)
    })
    .await;
    ben.change_group("newsroom", GroupAction::Add("cat".into()))
        .await
        .unwrap();
    until("Cat joins", || is_member(&cat, "newsroom") == Some(true)).await;
    until("Ann sees three", || members(&ann, "newsroom").len() == 3).await;
    assert_eq!(members(&ann, "newsroom"), ["ben", "cat", "me"]);
    // Cat is not Ann's contact: her name is Ben's word for her.
    let ann_view = ann.profile().group_members("newsroom").unwrap();
    let cat_entry = ann_view.iter().find(|m| m.name == "cat").unwrap();
    assert!(!cat_entry.verified);

    // Cat writes; it reaches Ann through Ben.
    cat.send_group("newsroom", "hello from cat").await.unwrap();
    until("Ann gets Cat's message", || {
        texts(&ann, "newsroom")
            .iter()
            .any(|(a, t, v)| a == "cat" && t == "hello from cat" && !v)
    })
    .await;
    ann.send_group("newsroom", "hello from ann").await.unwrap();
    until("Cat gets Ann's message", || {
        texts(&cat, "newsroom")
            .iter()
            .any(|(a, t, _)| a == "ann" && t == "hello from ann")
    })
    .await;

    // Ann removes Cat: a new epoch, a new key, without her.
    assert!(
        ben.change_group("newsroom", GroupAction::Remove("ann".into()))
            .await
            .is_err(),
        "no one removes the creator"
    );
    ann.change_group("newsroom", GroupAction::Remove("cat".into()))
        .await
        .unwrap();
    until("Cat learns she is out", || {
        is_member(&cat, "newsroom") == Some(false)
    })
    .await;
    until("Ben sees two", || members(&ben, "newsroom").len() == 2).await;
    assert!(cat.send_group("newsroom", "still here?").await.is_err());
    ann.send_group("newsroom", "after cat").await.unwrap();
    until("Ben gets it", || {
        texts(&ben, "newsroom")
            .iter()
            .any(|(_, t, _)| t == "after cat")
    })
    .await;
    // Ben's view spans two epochs now; read a page at a time (as the app
    // does), it is the same texts in the same order.
    let p = ben.profile();
    let whole = p.group_conversation("newsroom").unwrap();
    let keys = p.group_conversation_keys("newsroom").unwrap();
    assert_eq!(keys.len(), whole.len());
    for (i, at) in keys.iter().enumerate() {
        assert_eq!(*at, whole[i].message.position());
        let page = p.group_conversation_page("newsroom", at, 2).unwrap();
        let want: Vec<_> = whole[i..(i + 2).min(whole.len())]
            .iter()
            .map(|m| m.message.key)
            .collect();
        assert_eq!(page.iter().map(|m| m.message.key).collect::<Vec<_>>(), want);
    }
    // A 1:1 message Ben writes after it reaches Cat: the links are up and
    // syncing, and still Cat has nothing of the new epoch.
    ben.send("cat", "are you there").await.unwrap();
    until("Cat gets Ben's 1:1 text", || {
        cat.profile()
            .conversation("ben")
            .unwrap()
            .iter()
            .any(|m| m.text == "are you there")
    })
    .await;
    assert!(!texts(&cat, "newsroom")
        .iter()
        .any(|(_, t, _)| t == "after cat"));
    // She keeps what she had.
    assert!(texts(&cat, "newsroom")
        .iter()
        .any(|(_, t, _)| t == "hello from ann"));

    ann.shutdown().await;
    ben.shutdown().await;
    cat.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_ben_leaves_ann_and_cat_must_meet_as_contacts() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann_p, ben_p, cat_p) = (
        profile(tmp.path(), "ann"),
        profile(tmp.path(), "ben"),
        profile(tmp.path(), "cat"),
    );
    befriend(&ann_p, &ben_p);
    befriend(&ben_p, &cat_p);
    let hub = Hub::new();
    let ann = start(ann_p, &hub).await;
    let ben = start(ben_p, &hub).await;
    let cat = start(cat_p, &hub).await;
    ben.create_group("bridge", &["ann".into(), "cat".into()])
        .await
        .unwrap();
    until("both join", || {
        is_member(&ann, "bridge") == Some(true) && is_member(&cat, "bridge") == Some(true)
    })
    .await;
    cat.send_group("bridge", "via ben").await.unwrap();
    until("relayed", || {
        texts(&ann, "bridge").iter().any(|(_, t, _)| t == "via ben")
    })
    .await;

    ben.change_group("bridge", GroupAction::Leave)
        .await
        .unwrap();
    until("both see two", || {
        members(&ann, "bridge").len() == 2 && members(&cat, "bridge").len() == 2
    })
    .await;
    assert_eq!(is_member(&ben, "bridge"), Some(false));
    cat.send_group("bridge", "after ben left").await.unwrap();
    // Ben's links stay up; a 1:1 text from Cat to Ben arriving shows Cat's
    // link to Ben has synced since, and Ann still has nothing new.
    cat.send("ben", "bye").await.unwrap();
    until("Ben gets bye", || {
        ben.profile()
            .conversation("cat")
            .unwrap()
            .iter()
            .any(|m| m.text == "bye")
    })
    .await;
    assert!(!texts(&ann, "bridge")
        .iter()
        .any(|(_, t, _)| t == "after ben left"));
    assert!(!texts(&ben, "bridge")
        .iter()
        .any(|(_, t, _)| t == "after ben left"));

    // Ann and Cat become contacts and meet again: it arrives.
    ann.shutdown().await;
    cat.shutdown().await;
    let ann_p = Profile::open(&tmp.path().join("ann"), "pass").unwrap();
    let cat_p = Profile::open(&tmp.path().join("cat"), "pass").unwrap();
    befriend(&ann_p, &cat_p);
    // The group survived the restart, from the profile alone.
    assert_eq!(ann_p.group_members("bridge").unwrap().len(), 2);
    let ann = start(ann_p, &hub).await;
    let cat = start(cat_p, &hub).await;
    until("Ann gets it from Cat directly", || {
        texts(&ann, "bridge")
            .iter()
            .any(|(a, t, v)| a == "cat" && t == "after ben left" && *v)
    })
    .await;

    ann.shutdown().await;
    ben.shutdown().await;
    cat.shutdown().await;
}

/// A member who is not the reader's contact is shown by the name they
/// chose (unverified), not the name whoever added them used; renaming
/// reaches the group; a contact's own name still wins; and a member who
/// chose a contact's name cannot take their place in `remove`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_named_as_they_chose_unless_they_are_contacts() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = (
        profile(tmp.path(), "ann"),
        profile(tmp.path(), "ben"),
        profile(tmp.path(), "cat"),
    );
    befriend(&ann, &ben);
    // Ben knows Cat as "cathy from work".
    let mut rng = strand_node::os_rng();
    ben.add_contact(&cat.identity().invite(), "cathy from work", 0, &mut rng)
        .unwrap();
    cat.add_contact(&ben.identity().invite(), "ben", 0, &mut rng)
        .unwrap();
    let dan = profile(tmp.path(), "dan");
    befriend(&ann, &dan);
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    let cat = start(cat, &hub).await;
    let dan = start(dan, &hub).await;

    ann.create_group("desk", &["ben".into()]).await.unwrap();
    until("Ben joins", || is_member(&ben, "desk") == Some(true)).await;
    ann.change_group("desk", GroupAction::MakeAdmin("ben".into()))
        .await
        .unwrap();
    until("Ben is an admin", || {
        ben.profile().groups().unwrap().iter().any(|g| g.admin)
    })
    .await;
    ben.change_group("desk", GroupAction::Add("cathy from work".into()))
        .await
        .unwrap();
    until("Cat joins", || is_member(&cat, "desk") == Some(true)).await;
    // Ben's word for her until her NAME arrives; then her own.
    until("Ann sees Cat's chosen name", || {
        members(&ann, "desk") == ["ben", "cat", "me"]
    })
    .await;
    let entry = |node: &Node, name: &str| {
        node.profile()
            .group_members("desk")
            .unwrap()
            .into_iter()
            .find(|m| m.name == name)
    };
    assert!(!entry(&ann, "cat").unwrap().verified);
    // Ben's own word for her stays his.
    assert_eq!(members(&ben, "desk"), ["ann", "cathy from work", "me"]);
    assert!(entry(&ben, "cathy from work").unwrap().verified);

    let mut events = ann.subscribe();
    cat.send_group("desk", "hi").await.unwrap();
    // A notification names her as the member list does: marked.
    told_as(&mut events, "hi", "cat (unverified)").await;
    until("Ann shows it under Cat's name", || {
        texts(&ann, "desk")
            .iter()
            .any(|(a, t, v)| a == "cat" && t == "hi" && !v)
    })
    .await;

    // A name with a direction-changing character is refused, changing
    // nothing.
    assert!(cat.rename("evil\u{202e}name").await.is_err());
    assert_eq!(cat.profile().identity().name(), "cat");
    // Cat renames herself "ben": Ann still sees her real contact Ben as
    // "ben" (verified), and Cat's chosen name unverified.
    cat.rename("ben").await.unwrap();
    until("Ann sees the new name", || {
        texts(&ann, "desk")
            .iter()
            .any(|(a, t, v)| a == "ben" && t == "hi" && !v)
    })
    .await;
    let named_ben: Vec<bool> = ann
        .profile()
        .group_members("desk")
        .unwrap()
        .into_iter()
        .filter(|m| m.name == "ben")
        .map(|m| m.verified)
        .collect();
    assert_eq!(named_ben.len(), 2);
    assert!(named_ben.contains(&true) && named_ben.contains(&false));
    // Her text as "ben" is told so: unmarked, it read as Ann's contact's.
    cat.send_group("desk", "it's me").await.unwrap();
    told_as(&mut events, "it's me", "ben (unverified)").await;
    // Dan, Ann's contact only, joins later: he reads only the new epoch,
    // and still sees the names Ben and Cat chose (each writes it into
    // every new epoch), not the names they were added under.
    ann.change_group("desk", GroupAction::Add("dan".into()))
        .await
        .unwrap();
    until("Dan sees the names they chose", || {
        members(&dan, "desk") == ["ann", "ben", "ben", "me"]
    })
    .await;
    assert!(dan
        .profile()
        .group_members("desk")
        .unwrap()
        .iter()
        .all(|m| m.me || m.name == "ann" || !m.verified));
    // "ben" in a command means the contact, never the member who chose
    // his name.
    ann.change_group("desk", GroupAction::Remove("ben".into()))
        .await
        .unwrap();
    until("Ben is out", || is_member(&ben, "desk") == Some(false)).await;
    assert_eq!(is_member(&cat, "desk"), Some(true));
    assert_eq!(members(&ann, "desk"), ["ben", "dan", "me"]);
    assert!(!entry(&ann, "ben").unwrap().verified);

    dan.shutdown().await;
    ann.shutdown().await;
    ben.shutdown().await;
    cat.shutdown().await;
}

/// Waits for the node to tell of `text`, and checks whom it names.
async fn told_as(events: &mut tokio::sync::broadcast::Receiver<NodeEvent>, text: &str, from: &str) {
    let told = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(NodeEvent::Received {
                    contact, text: t, ..
                }) if t == text => break contact,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{text:?} is told"));
    assert_eq!(told, from);
}

/// Ann's group and Ben's are both called "desk", each of the two of them;
/// Ann has a "garden" too. Ann's node tells a text in each desk under the
/// name and the id `strand group list` shows for that group (so that a
/// notification of one does not read as the other), and one in the garden
/// under its name alone. Before, both desks were "desk".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_in_two_groups_with_one_name_are_told_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    let mut events = ann.subscribe();

    let annes = ann.create_group("desk", &["ben".into()]).await.unwrap();
    let bens = ben.create_group("desk", &["ann".into()]).await.unwrap();
    let garden = ann.create_group("garden", &["ben".into()]).await.unwrap();
    let joined = |node: &Node| {
        let keys: Vec<String> = node
            .profile()
            .groups()
            .unwrap()
            .into_iter()
            .map(|g| g.key)
            .collect();
        [&annes, &bens, &garden].iter().all(|k| keys.contains(k))
    };
    until("both hold the three groups", || {
        joined(&ann) && joined(&ben)
    })
    .await;
    for (key, text) in [
        (&annes, "in Ann's desk"),
        (&bens, "in Ben's desk"),
        (&garden, "in the garden"),
    ] {
        ben.send_group(key, text).await.unwrap();
    }

    let mut told = std::collections::HashMap::new();
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while told.len() < 3 {
            if let Ok(NodeEvent::Received {
                group: Some(group),
                group_key: Some(key),
                text,
                ..
            }) = events.recv().await
            {
                told.insert(text, (group, key));
            }
        }
    })
    .await
    .expect("Ann's node tells of the three texts");
    let listed: std::collections::HashMap<String, String> = ann
        .profile()
        .groups()
        .unwrap()
        .into_iter()
        .map(|g| (g.key, g.id))
        .collect();
    let want = |key: &String| format!("desk ({})", listed[key]);
    assert_eq!(told["in Ann's desk"], (want(&annes), annes.clone()));
    assert_eq!(told["in Ben's desk"], (want(&bens), bens.clone()));
    assert_ne!(want(&annes), want(&bens));
    assert_eq!(told["in the garden"], ("garden".to_owned(), garden.clone()));
    ann.shutdown().await;
    ben.shutdown().await;
}

/// Ann's node says which conversation each of her messages that went out
/// or was delivered belongs to: a group's by the group's key, a 1:1 one
/// by none. Before, both named only Ben, whose link carried them, so the
/// app reloaded Ben's conversation for a group's message, and nothing
/// said which group's message it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_and_delivered_say_which_group() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let hub = Hub::new();
    let ann = start(ann, &hub).await;
    let ben = start(ben, &hub).await;
    let desk = ann.create_group("desk", &["ben".into()]).await.unwrap();
    until("Ben joins the desk", || {
        ben.profile()
            .groups()
            .unwrap()
            .iter()
            .any(|g| g.key == desk)
    })
    .await;
    let mut events = ann.subscribe();
    let hex =
        |key: strand_sync::Key| -> String { key.id.0.iter().map(|b| format!("{b:02x}")).collect() };
    let in_group = hex(ann.send_group(&desk, "to the desk").await.unwrap());
    let direct = hex(ann.send("ben", "to Ben").await.unwrap());
    let mut told = std::collections::HashMap::new();
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while told.len() < 4 {
            let (event, group_key, id) = match events.recv().await {
                Ok(NodeEvent::Sent {
                    contact,
                    group_key,
                    id,
                }) => {
                    assert_eq!(contact, "ben");
                    ("sent", group_key, id)
                }
                Ok(NodeEvent::Delivered {
                    contact,
                    group_key,
                    id,
                }) => {
                    assert_eq!(contact, "ben");
                    ("delivered", group_key, id)
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("events ended: {e}"),
            };
            if id == in_group || id == direct {
                told.insert((event, id), group_key);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("both sent and delivered: {told:?}"));
    for event in ["sent", "delivered"] {
        assert_eq!(
            told[&(event, in_group.clone())],
            Some(desk.clone()),
            "{event}"
        );
        assert_eq!(told[&(event, direct.clone())], None, "{event}");
    }
    ann.shutdown().await;
    ben.shutdown().await;
}
