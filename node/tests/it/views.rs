//! Read-side views for UIs: summaries, unread counts, paged
//! conversations, read marks, renaming, the schema migrations that added
//! read marks and the order messages are shown in,
//! and backdated messages.

use std::path::Path;

use crate::profile::{new_profile, old_profile};
use strand_node::{
    now, os_rng, schema, Delivery, GroupAction, Profile, ProfileError, SKEW_SHOWN, UNREAD_CAP,
};
use strand_sync::{Epoch, Group, Identity, Key, Kind, Message, WriteStore};

const NOW: u64 = 1_700_000_000_000;

/// The 1:1 group of `from` with the profile's user.
pub(crate) fn group_with(p: &Profile, from: &Identity) -> Group {
    from.contact(&p.identity().public())
        .unwrap()
        .direct_group()
        .clone()
}

/// A text from `from` in `group`, dated `time`.
fn text_from(from: &Identity, group: &Group, time: u64, text: &str) -> Message {
    Message::create(
        from,
        group,
        time,
        Kind::TEXT,
        text.as_bytes(),
        &mut os_rng(),
    )
    .unwrap()
}

/// Stores `n` texts from `from` to the profile's user, as sync would (one
/// transaction: they arrive together).
fn receive(p: &Profile, from: &Identity, n: usize, t0: u64) -> Vec<Key> {
    let group = group_with(p, from);
    let mut store = p.store().unwrap();
    let mut keys = Vec::new();
    for i in 0..n {
        let m = text_from(
            from,
            &group,
            t0 + i as u64,
            &format!("from {} #{i}", from.name()),
        );
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
    receive(&p, &bob, 5, NOW);
    let keys = p.conversation_keys("Bob").unwrap();

    let s = p.summaries().unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].name, "Bob");
    assert_eq!(s[0].unread, 5);
    assert_eq!(s[0].last.as_ref().unwrap().text, "from Bob #4");
    assert_eq!(
        (s[1].name.as_str(), s[1].unread, s[1].last.is_none()),
        ("Carol", 0, true)
    );

    p.mark_read("Bob", &keys[2]).unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 2);
    // The mark never moves back.
    p.mark_read("Bob", &keys[0]).unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 2);
    // Writing is not reading (`strand send` shows nothing): the two
    // unread stay unread, and my message is never unread.
    p.write("Bob", "my reply", NOW + 10, &mut os_rng()).unwrap();
    let s = p.summaries().unwrap();
    assert_eq!(s[0].unread, 2);
    let last = s[0].last.as_ref().unwrap();
    assert_eq!(last.text, "my reply");
    assert_eq!(last.delivery, Some(Delivery::Queued));
    p.mark_read("Bob", &last.position()).unwrap();
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

/// Makes the profile in `dir` what schema `version` wrote: without the
/// tables version 3 added (`shown`, `seen`, `floor`); `old` puts in what
/// that version had.
fn downgrade(dir: &Path, version: u32, old: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::open(dir.join(schema::DB_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    txn.delete_table(schema::SHOWN).unwrap();
    txn.delete_table(schema::SEEN).unwrap();
    txn.delete_table(schema::FLOOR).unwrap();
    old(&txn);
    txn.open_table(schema::META)
        .unwrap()
        .insert(schema::meta::SCHEMA, &version.to_le_bytes()[..])
        .unwrap();
    txn.commit().unwrap();
}

/// A wrong passphrase is refused and leaves the profile at `version`.
fn wrong_passphrase_migrates_nothing(dir: &Path, version: u32) {
    assert_eq!(
        Profile::open(dir, "wrong").unwrap_err(),
        ProfileError::WrongPassphrase
    );
    assert_eq!(
        stored_version(dir),
        version,
        "a wrong passphrase migrates nothing"
    );
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
    // Make it what version 1 wrote: no `read` table either.
    downgrade(&dir, 1, |_| {});
    wrong_passphrase_migrates_nothing(&dir, 1);
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 3);
    drop(p);
    // Migrated, and sealed as a whole on the way.
    assert!(Profile::is_sealed(&dir));
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 3);
}

/// Version 2's read marks: group → time ‖ id of the newest message seen.
const V2_READ: redb::TableDefinition<[u8; 32], [u8; 40]> = redb::TableDefinition::new("read");

#[test]
fn a_version_2_profile_keeps_its_order_and_read_marks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let p = old_profile(&dir);
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    let keys = receive(&p, &bob, 5, NOW);
    p.write("Bob", "mine", NOW + 10, &mut os_rng()).unwrap();
    let group = group_with(&p, &bob).id;
    drop(p);
    // Make it what version 2 wrote: a `read` mark at Bob's third message
    // (by time and id).
    downgrade(&dir, 2, |txn| {
        let mut mark = [0u8; 40];
        mark[..8].copy_from_slice(&keys[2].time.to_be_bytes());
        mark[8..].copy_from_slice(&keys[2].id.0);
        txn.open_table(V2_READ)
            .unwrap()
            .insert(&group.0, mark)
            .unwrap();
    });
    wrong_passphrase_migrates_nothing(&dir, 2);
    let p = Profile::open(&dir, "pass phrase").unwrap();
    // Bob's 4th and 5th are unread; mine is not. Everything is where its
    // time puts it, with no arrival time known.
    assert_eq!(p.summaries().unwrap()[0].unread, 2);
    let c = p.conversation("Bob").unwrap();
    let texts: Vec<&str> = c.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "from Bob #0",
            "from Bob #1",
            "from Bob #2",
            "from Bob #3",
            "from Bob #4",
            "mine"
        ]
    );
    assert!(c
        .iter()
        .all(|m| m.shown == m.key.time && m.received.is_none()));
    drop(p);
    assert!(Profile::is_sealed(&dir));
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 2);
}

/// Stores one text from `from`, dated `time`, as sync would (arriving now).
fn receive_dated(p: &Profile, from: &Identity, text: &str, time: u64) -> Key {
    let group = group_with(p, from);
    let m = text_from(from, &group, time, text);
    let mut store = p.store().unwrap();
    assert!(store.insert(&group.id, &m).unwrap());
    store.commit().unwrap();
    m.key()
}

#[test]
fn a_backdated_message_does_not_jump_into_history() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    // A conversation of the last ten minutes, arriving as it was written.
    let t = now() - 600_000;
    receive_dated(&p, &bob, "hi", t);
    p.write("Bob", "hello Bob", t + 60_000, &mut os_rng())
        .unwrap();
    receive_dated(&p, &bob, "see you at 6", t + 120_000);
    let seen = p.conversation("Bob").unwrap();
    p.mark_read("Bob", &seen.last().unwrap().position())
        .unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 0);

    // Bob claims, a month late, to have said something before all of it.
    let month = 30 * 86_400_000;
    let before = now();
    receive_dated(&p, &bob, "you agreed to pay", t - month);
    let c = p.conversation("Bob").unwrap();
    let texts: Vec<&str> = c.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        ["hi", "hello Bob", "see you at 6", "you agreed to pay"],
        "shown below what was already shown, not slipped into history"
    );
    assert_eq!(p.summaries().unwrap()[0].unread, 1, "and counted unread");
    assert_eq!(
        p.summaries().unwrap()[0].last.as_ref().unwrap().text,
        "you agreed to pay"
    );
    let forged = c.last().unwrap();
    assert_eq!(forged.key.time, t - month, "its claimed time is kept");
    assert!(forged.shown >= before, "shown when it arrived");
    assert!(forged.received.unwrap() >= before);
    assert!(
        forged.skew().unwrap() >= month,
        "marked: a month before it arrived"
    );
    assert!(c[..3]
        .iter()
        .all(|m| m.skew().is_none() && m.shown == m.key.time));
    // The positions listed are the order shown, and pages agree.
    let keys = p.conversation_keys("Bob").unwrap();
    assert_eq!(keys, c.iter().map(|m| m.position()).collect::<Vec<_>>());
    assert_eq!(p.conversation_page("Bob", &keys[3], 10).unwrap(), c[3..]);
    // Reading it clears it; the order survives a restart.
    p.mark_read("Bob", &keys[3]).unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 0);
    let dir = p.dir().to_path_buf();
    drop(p);
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.conversation("Bob").unwrap(), c);
}

#[test]
fn late_messages_keep_their_own_order_below_what_was_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    let t = now() - 10 * 3_600_000;
    p.write("Bob", "anyone there?", t + 3_600_000, &mut os_rng())
        .unwrap();
    // Five messages Bob wrote while out of reach arrive together (one
    // batch, in order); a sixth written after mine goes where its time is.
    receive(&p, &bob, 5, t);
    let c = p.conversation("Bob").unwrap();
    let texts: Vec<&str> = c.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "anyone there?",
            "from Bob #0",
            "from Bob #1",
            "from Bob #2",
            "from Bob #3",
            "from Bob #4"
        ]
    );
    assert!(c[1..]
        .iter()
        .all(|m| m.skew().is_some_and(|s| s > SKEW_SHOWN)));
    let later = receive_dated(&p, &bob, "back now", now() + 60_000);
    let c = p.conversation("Bob").unwrap();
    let last = c.last().unwrap();
    assert_eq!((last.key, last.skew()), (later, None));
    assert_eq!(
        Some(last.shown),
        last.received,
        "dated ahead: shown when it arrived"
    );
    assert!(c.windows(2).all(|w| w[0].position() < w[1].position()));
}

/// Regression (a text dated ahead): a contact may date a text up to the
/// clock skew allowed (15 minutes) ahead of its arrival. It was shown at
/// that time, above the replies written after it arrived, and reading it
/// raised the floor there, so the contact's next texts, dated honestly,
/// were late: shown at a clock time still to come and counted unread.
/// Now it is shown when it arrived.
#[test]
fn a_text_dated_ahead_is_shown_when_it_arrives() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    let ahead = now() + 10 * 60_000;
    let dated = receive_dated(&p, &bob, "it is later than you think", ahead);
    let after = now() + 1;
    p.write("Bob", "is it?", after, &mut os_rng()).unwrap();
    let c = p.conversation("Bob").unwrap();
    let texts: Vec<&str> = c.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        ["it is later than you think", "is it?"],
        "the reply below the text it answers"
    );
    assert_eq!(c[0].key, dated, "its claimed time is kept");
    assert!(c[0].shown <= after, "shown when it arrived, not ahead");
    assert_eq!(Some(c[0].shown), c[0].received);

    // Once read, Bob's next text, dated now, is shown at its time and
    // counted unread once; nothing is shown at a time still to come.
    p.mark_read("Bob", &c[1].position()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let next = now() - 1;
    receive_dated(&p, &bob, "no", next);
    let c = p.conversation("Bob").unwrap();
    let last = c.last().unwrap();
    assert_eq!(last.text, "no");
    assert_eq!(last.shown, next, "not late");
    assert_eq!(p.summaries().unwrap()[0].unread, 1);
    assert!(c.iter().all(|m| m.shown <= next));
}

/// Regression (a made-up read position): marking read took any
/// position (the control socket's `MarkRead` names one) and raised the
/// floor there for good, so every text after it was late, shown at that
/// made-up time. Now a mark goes no further than the newest text shown.
#[test]
fn a_read_mark_goes_no_further_than_the_newest_text() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    let far = |p: &strand_node::Position| strand_node::Position {
        shown: now() + 365 * 86_400_000,
        key: p.key,
    };
    // On an empty conversation: nothing to mark.
    let nothing = strand_node::Position {
        shown: now() + 365 * 86_400_000,
        key: Key {
            time: now(),
            id: strand_sync::MessageId([7; 32]),
        },
    };
    p.mark_read("Bob", &nothing).unwrap();
    receive_dated(&p, &bob, "hi", now() - 60_000);
    let c = p.conversation("Bob").unwrap();
    p.mark_read("Bob", &far(&c[0].position())).unwrap();
    assert_eq!(p.summaries().unwrap()[0].unread, 0, "read to the newest");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let next = now() - 1;
    receive_dated(&p, &bob, "still there?", next);
    let c = p.conversation("Bob").unwrap();
    let last = c.last().unwrap();
    assert_eq!(last.text, "still there?");
    assert_eq!(last.shown, next, "not late, not shown a year on");
    assert_eq!(p.summaries().unwrap()[0].unread, 1);

    // A group's, the same.
    let rng = &mut os_rng();
    p.create_group("desk", &["Bob".into()], now() - HOUR, rng)
        .unwrap();
    let head = desk_head(&p);
    receive_in(&p, &bob, &head, "lunch?", now() - 60_000);
    let keys = p.group_conversation_keys("desk").unwrap();
    p.mark_group_read_to("desk", &far(&keys[0])).unwrap();
    assert_eq!(desk_unread(&p), 0);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let next = now() - 1;
    receive_in(&p, &bob, &head, "at 1", next);
    let c = p.group_conversation("desk").unwrap();
    assert_eq!(c.last().unwrap().message.shown, next, "not late");
    assert_eq!(desk_unread(&p), 1);
}

/// Regression, in a group: a member's text dated ahead was shown ahead,
/// and once the group was read every epoch's floor stood in the future,
/// so every other member's text for those minutes was late.
#[test]
fn a_group_text_dated_ahead_is_shown_when_it_arrives() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let rng = &mut os_rng();
    let t = now() - 600_000;
    let bob = desk_with_bob(&p, t - 2 * HOUR);
    let carol = Identity::generate("Carol", rng).unwrap();
    p.add_contact(&carol.invite(), "Carol", t - 2 * HOUR, rng)
        .unwrap();
    p.change_group("desk", &GroupAction::Add("Carol".into()), t, rng)
        .unwrap();
    let head = desk_head(&p);
    let ahead = now() + 10 * 60_000;
    receive_in(&p, &bob, &head, "first!", ahead);
    let arrived = now();
    p.mark_group_read("desk").unwrap();
    let c = p.group_conversation("desk").unwrap();
    assert!(
        c.last().unwrap().message.shown <= arrived,
        "not shown ahead"
    );

    // Carol writes, dated honestly, after the user read the group.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let honest = now() - 1;
    receive_in(&p, &carol, &head, "morning", honest);
    assert_eq!(desk_texts(&p), ["first!", "morning"]);
    let c = p.group_conversation("desk").unwrap();
    assert_eq!(c.last().unwrap().message.shown, honest, "not late");
    assert_eq!(desk_unread(&p), 1);
}

const HOUR: u64 = 3_600_000;

/// Stores one text from `from` in the group epoch `epoch`, dated `time`,
/// as sync would (arriving now).
fn receive_in(p: &Profile, from: &Identity, epoch: &Epoch, text: &str, time: u64) -> Key {
    let m = text_from(from, epoch.group(), time, text);
    let mut store = p.store().unwrap();
    assert!(store.insert(&epoch.id(), &m).unwrap());
    store.commit().unwrap();
    m.key()
}

/// The texts of the group "desk", in the order they are shown.
fn desk_texts(p: &Profile) -> Vec<String> {
    p.group_conversation("desk")
        .unwrap()
        .into_iter()
        .map(|m| m.message.text)
        .collect()
}

/// How many texts of the group "desk" are unread.
fn desk_unread(p: &Profile) -> u32 {
    p.groups()
        .unwrap()
        .into_iter()
        .find(|g| g.name == "desk")
        .unwrap()
        .unread
}

/// The newest epoch of the group "desk".
fn desk_head(p: &Profile) -> Epoch {
    p.group_epochs("desk").unwrap().pop().unwrap()
}

/// Makes the group "desk" of the profile's user and Bob at `at`; returns
/// Bob, to write as him.
fn desk_with_bob(p: &Profile, at: u64) -> Identity {
    let rng = &mut os_rng();
    let bob = Identity::generate("Bob", rng).unwrap();
    p.add_contact(&bob.invite(), "Bob", at, rng).unwrap();
    p.create_group("desk", &["Bob".into()], at, rng).unwrap();
    bob
}

/// Regression (a member backdating into a group's read history): marking
/// a group read set its read mark but not its floor, so a member's text
/// dated before what the user had read was shown at its claimed time,
/// inside that history, and counted as read. Now it is shown when it
/// arrives, last, and counts as unread, as in a 1:1 conversation
/// (`a_backdated_message_does_not_jump_into_history`).
#[test]
fn a_backdated_group_text_does_not_jump_into_history() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let t = now() - 600_000;
    let bob = desk_with_bob(&p, t - 2 * HOUR);
    let head = desk_head(&p);
    receive_in(&p, &bob, &head, "lunch at 1?", t);
    receive_in(&p, &bob, &head, "see you there", t + 60_000);
    p.mark_group_read("desk").unwrap();
    assert_eq!(desk_unread(&p), 0);

    // Once it is read, Bob claims to have said something an hour before
    // all of it, in the epoch the user has not written in.
    let before = now();
    let forged = receive_in(&p, &bob, &head, "you said you would pay", t - HOUR);
    assert_eq!(
        desk_texts(&p),
        ["lunch at 1?", "see you there", "you said you would pay"],
        "shown below what was already shown, not slipped into history"
    );
    assert_eq!(desk_unread(&p), 1, "and counted unread");
    let c = p.group_conversation("desk").unwrap();
    let last = &c.last().unwrap().message;
    assert_eq!(last.key, forged, "its claimed time is kept");
    assert!(last.shown >= before, "shown when it arrived");
    assert!(
        last.skew().unwrap() >= HOUR,
        "marked: an hour before it arrived"
    );
    let summary = p.groups().unwrap().into_iter().find(|g| g.name == "desk");
    assert_eq!(
        summary.unwrap().last.unwrap().message.text,
        "you said you would pay",
        "the group's newest text"
    );
}

/// Regression, through the group's other epochs: a member may write into
/// any epoch the group holds, and each epoch had its own floor. A text
/// backdated into the epoch before the newest, below what the user wrote
/// in the newest, and one backdated into an epoch made after the user
/// read the group, below what they read, are each shown when they arrive.
#[test]
fn a_backdated_group_text_does_not_jump_into_history_through_another_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let rng = &mut os_rng();
    let t = now() - 600_000;
    let bob = desk_with_bob(&p, t - 2 * HOUR);
    let carol = Identity::generate("Carol", rng).unwrap();
    p.add_contact(&carol.invite(), "Carol", t - 2 * HOUR, rng)
        .unwrap();
    let first = desk_head(&p);
    receive_in(&p, &bob, &first, "lunch at 1?", t);
    // Adding Carol makes a new epoch; the user answers in it.
    p.change_group("desk", &GroupAction::Add("Carol".into()), t + 30_000, rng)
        .unwrap();
    assert_ne!(desk_head(&p).id(), first.id());
    p.write_group("desk", "yes, see you there", t + 60_000, rng)
        .unwrap();

    // Bob, still a member, writes into the first epoch, dated before the
    // answer.
    let before = now();
    receive_in(&p, &bob, &first, "make it 2", t + 45_000);
    assert_eq!(
        desk_texts(&p),
        ["lunch at 1?", "yes, see you there", "make it 2"],
        "not slipped in above what the user wrote"
    );
    let c = p.group_conversation("desk").unwrap();
    assert!(c.last().unwrap().message.shown >= before);

    // The user reads it all; then a change makes a third epoch, and Bob
    // writes into it dated after the answer but before what was read.
    p.mark_group_read("desk").unwrap();
    assert_eq!(desk_unread(&p), 0);
    p.change_group("desk", &GroupAction::Remove("Carol".into()), now(), rng)
        .unwrap();
    let third = desk_head(&p);
    let before = now();
    receive_in(&p, &bob, &third, "you said you would pay", t + 90_000);
    assert_eq!(
        desk_texts(&p),
        [
            "lunch at 1?",
            "yes, see you there",
            "make it 2",
            "you said you would pay"
        ],
        "not slipped in below what was read"
    );
    let c = p.group_conversation("desk").unwrap();
    assert!(c.last().unwrap().message.shown >= before);
    assert_eq!(desk_unread(&p), 1, "and counted unread");
}

/// Regression: `GroupRead` answered a whole group at once, however long,
/// and then marked it read up to its newest text, so a text stored
/// between the read and the mark counted as read without being shown. It
/// pages now as `Read` does: one request answers at most `READ_PAGE`
/// texts and where the next page starts, and marks read those and no
/// more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_read_a_page_at_a_time_and_marked_read_as_far_as_shown() {
    use strand_node::runtime::api::{Cursor, GroupMessageView, Reply, Request, READ_PAGE};
    use strand_node::{Node, NodeConfig};
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let t = now() - 600_000;
    let bob = desk_with_bob(&p, t - 2 * HOUR);
    let head = desk_head(&p);
    // One more than a page, from Bob, stored together as sync stores them.
    let mut store = p.store().unwrap();
    for i in 0..=READ_PAGE {
        let m = text_from(&bob, head.group(), t + i as u64, &format!("#{i}"));
        assert!(store.insert(&head.id(), &m).unwrap());
    }
    store.commit().unwrap();
    drop(store);
    assert_eq!(desk_unread(&p), READ_PAGE as u32 + 1);
    let node = Node::start(p, NodeConfig::offline()).await.unwrap();
    let read = |from: Option<Cursor>| {
        let node = node.clone();
        async move {
            let ask = Request::GroupRead {
                group: "desk".into(),
                from,
                limit: None,
            };
            match node.handle(ask).await.unwrap() {
                Reply::GroupMessages { messages, next } => (messages, next),
                other => panic!("{other:?}"),
            }
        }
    };
    let texts = |page: &[GroupMessageView]| -> Vec<String> {
        page.iter().map(|m| m.message.text.clone()).collect()
    };

    let (first, next) = read(None).await;
    assert_eq!(
        texts(&first),
        (0..READ_PAGE).map(|i| format!("#{i}")).collect::<Vec<_>>()
    );
    assert_eq!(desk_unread(node.profile()), 1, "read as far as shown");
    let (rest, after) = read(Some(next.expect("a page after the first"))).await;
    assert_eq!(texts(&rest), [format!("#{READ_PAGE}")]);
    assert_eq!(after, None);
    assert_eq!(desk_unread(node.profile()), 0);
    node.shutdown().await;
}

/// A page read from one to the next ends after its bound's messages, or
/// after the text that brings what its texts hold to its bound's bytes,
/// whichever comes first; it holds one text at least, however long; and
/// it says where the next starts. A contact's conversation and a group's
/// end alike.
#[test]
fn a_page_ends_once_its_texts_hold_its_bytes() {
    use strand_node::PageBound;
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let t = now() - 600_000;
    let bob = desk_with_bob(&p, t - 2 * HOUR);
    let head = desk_head(&p);
    let direct = group_with(&p, &bob);
    // Ten texts of 100 bytes each, to the user and in the group.
    let text = |i: usize| i.to_string().repeat(100);
    let mut store = p.store().unwrap();
    for i in 0..10 {
        let time = t + i as u64;
        assert!(store
            .insert(&direct.id, &text_from(&bob, &direct, time, &text(i)))
            .unwrap());
        assert!(store
            .insert(&head.id(), &text_from(&bob, head.group(), time, &text(i)))
            .unwrap());
    }
    store.commit().unwrap();
    drop(store);
    let contact_at = p.conversation_keys("Bob").unwrap();
    let group_at = p.group_conversation_keys("desk").unwrap();
    assert_eq!((contact_at.len(), group_at.len()), (10, 10));
    for (start, messages, bytes, want) in [
        // The third text brings it to 300 bytes.
        (0, 10, 250, 0..3),
        // Reaching the bytes exactly ends it too.
        (0, 10, 200, 0..2),
        // Two messages come first.
        (0, 2, 250, 0..2),
        // One text at least, however long.
        (0, 10, 1, 0..1),
        (0, 10, 0, 0..1),
        // The conversation ends first: no next page.
        (7, 10, 250, 7..10),
        (0, usize::MAX, usize::MAX, 0..10),
    ] {
        let bound = PageBound { messages, bytes };
        let what = format!("{bound:?} from {start}");
        let want_texts: Vec<String> = want.clone().map(text).collect();
        let c = p
            .conversation_page_within("Bob", &contact_at[start], bound)
            .unwrap();
        let got: Vec<String> = c.messages.iter().map(|m| m.text.clone()).collect();
        assert_eq!(got, want_texts, "{what}");
        assert_eq!(c.next, contact_at.get(want.end).copied(), "{what}");
        let g = p
            .group_conversation_page_within("desk", &group_at[start], bound)
            .unwrap();
        let got: Vec<String> = g.messages.iter().map(|m| m.message.text.clone()).collect();
        assert_eq!(got, want_texts, "{what}");
        assert_eq!(g.next, group_at.get(want.end).copied(), "{what}");
    }
}

/// A page of `Read` (and so of `strand read`) ends once its texts hold
/// `READ_PAGE_BYTES`: a page counted only its messages, and 500 texts of
/// a mebibyte each were half a gibibyte read, decrypted and answered in
/// one line. What the page holds is marked read, the rest is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_page_ends_once_its_texts_hold_read_page_bytes() {
    use strand_node::runtime::api::{Cursor, Reply, Request, READ_PAGE, READ_PAGE_BYTES};
    use strand_node::{Node, NodeConfig};
    let each = strand_sync::limits::MAX_BODY_LEN / 2;
    let fit = READ_PAGE_BYTES.div_ceil(each);
    assert!(fit < READ_PAGE, "the bytes end the page, not the count");
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("a"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    let group = group_with(&p, &bob);
    let mut store = p.store().unwrap();
    for i in 0..=fit {
        let text = char::from(b'a' + i as u8).to_string().repeat(each);
        let m = text_from(&bob, &group, NOW + i as u64, &text);
        assert!(store.insert(&group.id, &m).unwrap());
    }
    store.commit().unwrap();
    drop(store);
    let node = Node::start(p, NodeConfig::offline()).await.unwrap();
    let read = |from: Option<Cursor>| {
        let node = node.clone();
        async move {
            let ask = Request::Read {
                contact: "Bob".into(),
                from,
                limit: None,
            };
            match node.handle(ask).await.unwrap() {
                Reply::Page(page) => page,
                other => panic!("{other:?}"),
            }
        }
    };
    let first = read(None).await;
    assert_eq!(first.messages.len(), fit);
    assert!(first.messages.iter().all(|m| m.text.len() == each));
    assert_eq!(node.profile().summaries().unwrap()[0].unread, 1);
    let rest = read(first.next).await;
    assert_eq!(rest.messages.len(), 1);
    assert!(rest.messages[0]
        .text
        .starts_with(char::from(b'a' + fit as u8)));
    assert_eq!(rest.next, None);
    assert_eq!(node.profile().summaries().unwrap()[0].unread, 0);
    node.shutdown().await;
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
