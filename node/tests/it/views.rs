//! Read-side views for UIs: summaries, unread counts, paged
//! conversations, read marks, renaming, and the schema 1 → 2 migration
//! that added read marks (issue 5).

use std::path::Path;

use crate::profile::{new_profile, old_profile};
use strand_node::{os_rng, schema, Delivery, Profile, ProfileError, UNREAD_CAP};
use strand_sync::{Identity, Key, Kind, Message, WriteStore};

const NOW: u64 = 1_700_000_000_000;

/// Stores `n` texts from `from` to the profile's user, as sync would.
fn receive(p: &Profile, from: &Identity, n: usize, t0: u64) -> Vec<Key> {
    let group = from
        .contact(&p.identity().public())
        .unwrap()
        .direct_group()
        .clone();
    let mut store = p.store().unwrap();
    let mut keys = Vec::new();
    for i in 0..n {
        let text = format!("from {} #{i}", from.name());
        let m = Message::create(
            from,
            &group,
            t0 + i as u64,
            Kind::TEXT,
            text.as_bytes(),
            &mut os_rng(),
        )
        .unwrap();
        assert!(store.insert(&group.id, &m).unwrap());
        keys.push(m.key());
    }
    store.commit().unwrap();
    keys
}

#[test]
fn summaries_show_the_newest_message_and_unread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    let carol = Identity::generate("Carol", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    p.add_contact(&carol.invite(), "Carol", NOW, &mut os_rng())
        .unwrap();
    let keys = receive(&p, &bob, 5, NOW);
    p.write("Bob", "my reply", NOW + 10, &mut os_rng()).unwrap();

    let s = p.summaries().unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].name, "Bob");
    assert_eq!(s[0].unread, 5, "my own message is not unread");
    let last = s[0].last.as_ref().unwrap();
    assert_eq!(last.text, "my reply");
    assert_eq!(last.delivery, Some(Delivery::Queued));
    assert_eq!(
        (s[1].name.as_str(), s[1].unread, s[1].last.is_none()),
        ("Carol", 0, true)
    );

    p.mark_read("Bob", &keys[2]).unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 2);
    // The mark never moves back.
    p.mark_read("Bob", &keys[0]).unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 2);
    p.mark_read("Bob", &keys[4]).unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 0);
    // Marks survive a restart.
    let dir = p.dir().to_path_buf();
    drop(p);
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 0);
    assert!(matches!(
        p.mark_read("Nobody", &keys[0]),
        Err(ProfileError::UnknownContact(_))
    ));
}

#[test]
fn unread_counts_stop_at_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    receive(&p, &bob, UNREAD_CAP as usize + 50, NOW);
    assert_eq!(p.summaries().unwrap()[0].unread, UNREAD_CAP);
}

#[test]
fn a_conversation_reads_a_page_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    let carol = Identity::generate("Carol", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    p.add_contact(&carol.invite(), "Carol", NOW, &mut os_rng())
        .unwrap();
    receive(&p, &bob, 250, NOW);
    receive(&p, &carol, 7, NOW);
    p.write("Bob", "last", NOW + 1000, &mut os_rng()).unwrap();

    let keys = p.conversation_keys("Bob").unwrap();
    assert_eq!(keys.len(), 251);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let whole = p.conversation("Bob").unwrap();
    let page = p.conversation_page("Bob", &keys[100], 50).unwrap();
    assert_eq!(page, whole[100..150]);
    let tail = p.conversation_page("Bob", &keys[240], 50).unwrap();
    assert_eq!(tail, whole[240..]);
    assert_eq!(tail.last().unwrap().text, "last");
    assert_eq!(p.conversation_keys("Carol").unwrap().len(), 7);
}

#[test]
fn renaming_changes_the_invite_and_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let p = new_profile(&dir);
    let public = p.identity().public();
    assert!(matches!(
        p.rename("  ", &mut os_rng()),
        Err(ProfileError::Name(_))
    ));
    assert_eq!(p.identity().name(), "Alice");
    p.rename("Alice B.", &mut os_rng()).unwrap();
    assert_eq!(p.identity().invite().name, "Alice B.");
    drop(p);
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.identity().name(), "Alice B.");
    assert_eq!(p.identity().public(), public);
}

fn stored_version(dir: &Path) -> u32 {
    let db = redb::Database::open(dir.join(schema::DB_FILE)).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let v = txn
        .open_table(schema::META)
        .unwrap()
        .get(schema::meta::SCHEMA)
        .unwrap()
        .unwrap();
    u32::from_le_bytes(v.value().try_into().unwrap())
}

#[test]
fn a_version_1_profile_is_migrated_after_it_unlocks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let p = old_profile(&dir);
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    receive(&p, &bob, 3, NOW);
    drop(p);
    // Make it what version 1 wrote: no `read` table.
    {
        let db = redb::Database::open(dir.join(schema::DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(schema::READ).unwrap();
        txn.open_table(schema::META)
            .unwrap()
            .insert(schema::meta::SCHEMA, &1u32.to_le_bytes()[..])
            .unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(
        Profile::open(&dir, "wrong").unwrap_err(),
        ProfileError::WrongPassphrase
    );
    assert_eq!(
        stored_version(&dir),
        1,
        "a wrong passphrase migrates nothing"
    );
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 3);
    drop(p);
    // Migrated, and sealed as a whole on the way.
    assert!(Profile::is_sealed(&dir));
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 3);
}

#[test]
fn in_use_is_reported_before_unlocking() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    assert!(!Profile::in_use(&dir));
    let p = new_profile(&dir);
    assert!(Profile::in_use(&dir));
    drop(p);
    assert!(!Profile::in_use(&dir));
}
