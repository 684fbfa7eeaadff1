//! Files between real nodes: a file and an image with its
//! preview, to a contact and to a group; saved byte-identical; a file
//! whose bytes do not match its hash is refused; bad input changes nothing.

use strand_node::{os_rng, Conversation, Node, NodeConfig, NodeEvent, Profile};
use strand_sync::{Kind, Manifest, Message, WriteStore};
use strand_transport::memory::Hub;

use crate::hub::{befriend, profile, until};

fn file_message(p: &Profile, contact: &str) -> Option<strand_node::StoredMessage> {
    p.conversation(contact)
        .ok()?
        .into_iter()
        .find(|m| m.file.is_some())
}

fn id_of(m: &strand_node::StoredMessage) -> String {
    m.key.id.0.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_images_sync_and_save_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    // A file of 3 chunks and a bit, and a PNG.
    let data: Vec<u8> = (0..(3 * strand_sync::CHUNK_LEN + 1234))
        .map(|i| (i * 31 % 253) as u8)
        .collect();
    let doc = tmp.path().join("report.bin");
    std::fs::write(&doc, &data).unwrap();
    let png = tmp.path().join("photo.png");
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    img.save(&png).unwrap();

    // Bad input: nothing is stored.
    let before = ann.stored_messages().unwrap();
    let now = strand_node::now();
    assert!(ann
        .send_file(
            Conversation::Contact("ben"),
            &tmp.path().join("missing"),
            now,
            &mut os_rng()
        )
        .is_err());
    assert!(ann
        .send_file(Conversation::Contact("ben"), tmp.path(), now, &mut os_rng())
        .is_err());
    let huge = tmp.path().join("huge.bin");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(strand_sync::MAX_FILE_LEN + 1)
        .unwrap();
    let e = ann
        .send_file(Conversation::Contact("ben"), &huge, now, &mut os_rng())
        .unwrap_err();
    assert!(e.to_string().contains("files of up to 256 MiB"), "{e}");
    assert!(ann
        .send_file(Conversation::Contact("nobody"), &doc, now, &mut os_rng())
        .is_err());
    assert_eq!(ann.stored_messages().unwrap(), before);

    let hub = Hub::new();
    let config = || NodeConfig {
        emulated: Some(hub.clone()),
        ..NodeConfig::default()
    };
    let ann = Node::start(ann, config()).await.unwrap();
    let ben = Node::start(ben, config()).await.unwrap();
    ann.send_file(Conversation::Contact("ben"), &doc)
        .await
        .unwrap();
    ann.send("ben", "the report is in").await.unwrap();
    until("the file arrives whole", || {
        file_message(ben.profile(), "ann")
            .and_then(|m| m.file)
            .is_some_and(|f| f.complete())
    })
    .await;
    let m = file_message(ben.profile(), "ann").unwrap();
    let f = m.file.clone().unwrap();
    assert_eq!(
        (f.name.as_str(), f.size, f.total),
        ("report.bin", data.len() as u64, 4)
    );
    let out = tmp.path().join("saved");
    // What saves cut short left there: one not written for two days goes
    // at the next save; one being written, or anything else, stays.
    std::fs::create_dir_all(&out).unwrap();
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 24 * 3600);
    let left = out.join(".strand-00112233445566ff.part");
    let writing = out.join(".strand-8899aabbccddeeff.part");
    let theirs = out.join(".strand-notes.part");
    let upper = out.join(".strand-00112233445566FF.part");
    let old_file = tmp.path().join("old.txt");
    for path in [&left, &writing, &theirs, &upper, &old_file] {
        std::fs::write(path, b"partial").unwrap();
    }
    for path in [&left, &theirs, &upper, &old_file] {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(two_days_ago).unwrap();
    }
    // Named as ours, but a folder and a link (to an old file of the
    // user's): neither is a save's.
    let folder = out.join(".strand-0000000000000000.part");
    std::fs::create_dir(&folder).unwrap();
    let link = out.join(".strand-1111111111111111.part");
    std::os::unix::fs::symlink(&old_file, &link).unwrap();
    let saved = ben.profile().save_file(&id_of(&m)[..12], &out).unwrap();
    assert_eq!(saved, out.join("report.bin"));
    assert!(
        !left.exists(),
        "a save cut short two days ago left its part"
    );
    for kept in [&writing, &theirs, &upper, &folder, &link, &old_file] {
        assert!(kept.symlink_metadata().is_ok(), "{kept:?} was removed");
    }
    for path in [&writing, &theirs, &upper, &link] {
        std::fs::remove_file(path).unwrap();
    }
    std::fs::remove_dir(&folder).unwrap();
    assert_eq!(std::fs::read(&saved).unwrap(), data);
    // Saved again: a new name, nothing replaced.
    let again = ben.profile().save_file(&id_of(&m), &out).unwrap();
    assert_eq!(again, out.join("report (1).bin"));
    // A link of the user's under the next name is not replaced either, and
    // a save leaves one name on its file and no part beside it.
    let users = out.join("report (2).bin");
    std::os::unix::fs::symlink(&old_file, &users).unwrap();
    let third = ben.profile().save_file(&id_of(&m), &out).unwrap();
    assert_eq!(third, out.join("report (3).bin"));
    assert_eq!(std::fs::read_link(&users).unwrap(), old_file);
    for saved in [&again, &third] {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::read(saved).unwrap(), data);
        assert_eq!(std::fs::metadata(saved).unwrap().nlink(), 1, "{saved:?}");
    }
    let parts = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".strand-")
        })
        .count();
    assert_eq!(parts, 0);
    // Not a file, not an id.
    assert!(ben.profile().save_file("zz", &out).is_err());
    assert!(ben.profile().save_file("00000000", &out).is_err());

    // An image: its preview is in the manifest, which shows at once.
    ann.send_file(Conversation::Contact("ben"), &png)
        .await
        .unwrap();
    until("the image arrives", || {
        ben.profile().conversation("ann").unwrap().iter().any(|m| {
            m.file
                .as_ref()
                .is_some_and(|f| f.name == "photo.png" && f.complete())
        })
    })
    .await;
    let photo = ben
        .profile()
        .conversation("ann")
        .unwrap()
        .into_iter()
        .find(|m| m.file.as_ref().is_some_and(|f| f.name == "photo.png"))
        .unwrap();
    let f = photo.file.as_ref().unwrap();
    assert_eq!(f.mime, "image/png");
    let preview = image::load_from_memory(f.preview.as_ref().expect("a preview")).unwrap();
    assert!(preview.width() <= 160 && preview.height() <= 160 && preview.width() > 0);
    let saved = ben.profile().save_file(&id_of(&photo), &out).unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), std::fs::read(&png).unwrap());

    // A file whose manifest lies about its hash (a member could write one):
    // its chunks arrive, and saving refuses it and leaves nothing behind.
    let pair = ann.profile().sync_contacts()[0].direct_group().clone();
    let mut rng = os_rng();
    let chunk = Message::create(
        &ann.profile().identity(),
        &pair,
        strand_node::now(),
        Kind::CHUNK,
        b"these are not the bytes",
        &mut rng,
    )
    .unwrap();
    let manifest = Manifest {
        name: "forged.txt".into(),
        mime: "text/plain".into(),
        size: 23,
        hash: [0; 32],
        chunks: vec![chunk.key()],
        preview: None,
    };
    let forged = Message::create(
        &ann.profile().identity(),
        &pair,
        strand_node::now(),
        Kind::FILE,
        &manifest.encode(),
        &mut rng,
    )
    .unwrap();
    ann.shutdown().await;
    let ann_p = Profile::open(&tmp.path().join("ann"), "pass").unwrap();
    let mut store = ann_p.store().unwrap();
    store.insert(&pair.id, &chunk).unwrap();
    store.insert(&pair.id, &forged).unwrap();
    store.commit().unwrap();
    drop(store);
    let ann = Node::start(ann_p, config()).await.unwrap();
    until("the forged file arrives", || {
        ben.profile().conversation("ann").unwrap().iter().any(|m| {
            m.file
                .as_ref()
                .is_some_and(|f| f.name == "forged.txt" && f.complete())
        })
    })
    .await;
    let forged = ben
        .profile()
        .conversation("ann")
        .unwrap()
        .into_iter()
        .find(|m| m.file.as_ref().is_some_and(|f| f.name == "forged.txt"))
        .unwrap();
    let e = ben.profile().save_file(&id_of(&forged), &out).unwrap_err();
    assert!(e.to_string().contains("refused"), "{e}");
    assert!(!out.join("forged.txt").exists());
    // report.bin, (1), the user's link (2), (3), photo.png.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 5, "no leftovers");
    ann.shutdown().await;
    ben.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_to_a_group_reaches_members_through_a_common_member() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = (
        profile(tmp.path(), "ann"),
        profile(tmp.path(), "ben"),
        profile(tmp.path(), "cat"),
    );
    befriend(&ann, &ben);
    befriend(&ben, &cat);
    let data: Vec<u8> = (0..(2 * strand_sync::CHUNK_LEN + 7))
        .map(|i| (i % 241) as u8)
        .collect();
    let doc = tmp.path().join("minutes.txt");
    std::fs::write(&doc, &data).unwrap();
    let hub = Hub::new();
    let config = || NodeConfig {
        emulated: Some(hub.clone()),
        ..NodeConfig::default()
    };
    let ann = Node::start(ann, config()).await.unwrap();
    let ben = Node::start(ben, config()).await.unwrap();
    let cat = Node::start(
        cat,
        NodeConfig {
            report_arrivals: true,
            ..config()
        },
    )
    .await
    .unwrap();
    let mut events = cat.subscribe();
    let key = ben
        .create_group("desk", &["ann".into(), "cat".into()])
        .await
        .unwrap();
    until("both join", || {
        [&ann, &cat]
            .iter()
            .all(|n| n.profile().groups().map(|g| g.len() == 1).unwrap_or(false))
    })
    .await;
    ann.send_file(Conversation::Group("desk"), &doc)
        .await
        .unwrap();
    let file = |n: &Node| {
        n.profile()
            .group_conversation("desk")
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.message.file.as_ref().is_some_and(|f| f.complete()))
    };
    until("Cat has all of it, through Ben", || file(&cat).is_some()).await;
    let m = file(&cat).unwrap();
    assert_eq!(m.author, "ann");
    assert!(!m.verified, "Ann is not Cat's contact");
    // Told as Ann's, in the group, though Ben's session brought it (it
    // was told as from "ben").
    let told = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            if let Ok(NodeEvent::FileArriving {
                from,
                group,
                group_key,
                name,
                have,
                total,
                ..
            }) = events.recv().await
            {
                if have == total {
                    break (from, group, group_key, name);
                }
            }
        }
    })
    .await
    .expect("Cat's node tells of the file");
    assert_eq!(
        told,
        (
            "ann (unverified)".to_owned(),
            Some("desk".to_owned()),
            Some(key),
            "minutes.txt".to_owned()
        )
    );
    let saved = cat
        .profile()
        .save_file(&id_of(&m.message), &tmp.path().join("out"))
        .unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), data);
    ann.shutdown().await;
    ben.shutdown().await;
    cat.shutdown().await;
}
