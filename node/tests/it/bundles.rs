//! Removable drives: a bundle made for a contact who was never
//! met carries the conversation, a file and a group; only that contact
//! opens it; it is taken in once however often it is imported; a changed,
//! cut, foreign or own bundle is refused and changes nothing stored.

use std::path::Path;

use strand_node::{os_rng, Budgets, Conversation, Profile};

use crate::cli::{eventually, Killed, User};
use crate::hub::{befriend, profile};

const NOW: fn() -> u64 = strand_node::now;

/// Every message of Ben's conversation with Ann and of the group, as
/// (text, file name) pairs: what the user sees.
fn seen(p: &Profile) -> (Vec<String>, Vec<String>) {
    let texts = p
        .conversation("ann")
        .unwrap()
        .into_iter()
        .map(|m| match m.file {
            Some(f) => format!("[file {} complete={}]", f.name, f.complete()),
            None => m.text,
        })
        .collect();
    let group = p
        .group_conversation("desk")
        .map(|c| c.into_iter().map(|m| m.message.text).collect())
        .unwrap_or_default();
    (texts, group)
}

fn flip(from: &Path, to: &Path, at: usize) {
    let mut bytes = std::fs::read(from).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(to, bytes).unwrap();
}

#[test]
fn a_bundle_carries_a_conversation_a_file_and_a_group_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben, cat) = (
        profile(tmp.path(), "ann"),
        profile(tmp.path(), "ben"),
        profile(tmp.path(), "cat"),
    );
    befriend(&ann, &ben);
    befriend(&ben, &cat);
    let mut rng = os_rng();
    // Ann and Ben never meet: everything goes by drive.
    for i in 0..30 {
        ann.write("ben", &format!("text {i}"), NOW(), &mut rng)
            .unwrap();
    }
    let doc = tmp.path().join("minutes.txt");
    let body: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&doc, &body).unwrap();
    ann.send_file(Conversation::Contact("ben"), &doc, NOW(), &mut rng)
        .unwrap();
    ann.create_group("desk", &["ben".into()], NOW(), &mut rng)
        .unwrap();
    for i in 0..5 {
        ann.write_group("desk", &format!("group text {i}"), NOW(), &mut rng)
            .unwrap();
    }

    let drive = tmp.path().join("drive");
    std::fs::create_dir(&drive).unwrap();
    let bundle = drive.join("for-ben.strand");
    let made = ann.export_bundle("ben", &bundle, NOW(), &mut rng).unwrap();
    // 30 texts, the file's manifest and 3 chunks, the welcome, the
    // group's 5 texts and Ann's chosen name is not written offline.
    assert!(made.messages >= 30 + 1 + 3 + 1 + 5, "{made:?}");
    // People count the texts and the file, not the file's parts.
    assert_eq!((made.texts, made.files), (35, 1), "{made:?}");
    assert_eq!(made.summary(), "35 texts and 1 file");
    assert_eq!(made.bytes, std::fs::metadata(&bundle).unwrap().len());
    // An existing file is never replaced.
    let out = ann.export_bundle("ben", &bundle, NOW(), &mut rng);
    assert!(out.unwrap_err().to_string().contains("already exists"));
    assert!(ann
        .export_bundle("nobody", &drive.join("x"), NOW(), &mut rng)
        .is_err());
    assert!(!drive.join("x").exists());

    let before = seen(&ben);
    assert!(before.0.is_empty());
    let refused = |p: &Profile, path: &Path, says: &str| {
        let e = p
            .import_bundle(path, &Budgets::default(), NOW(), &mut os_rng())
            .unwrap_err();
        let said = strand_node::chain(&e);
        assert!(said.contains(says), "{said}");
    };
    // One byte changed, anywhere: refused, nothing stored.
    let len = std::fs::metadata(&bundle).unwrap().len() as usize;
    for at in [45, len / 2, len - 1] {
        let bad = drive.join(format!("changed-{at}"));
        flip(&bundle, &bad, at);
        refused(&ben, &bad, "damaged or was changed");
    }
    // Cut short, or with bytes added: refused.
    let bytes = std::fs::read(&bundle).unwrap();
    std::fs::write(drive.join("cut"), &bytes[..len - 100]).unwrap();
    refused(&ben, &drive.join("cut"), "cut short");
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0, 0, 0, 16]);
    longer.extend_from_slice(&[7; 16]);
    std::fs::write(drive.join("longer"), &longer).unwrap();
    refused(&ben, &drive.join("longer"), "data after its end");
    // A byte or three after the end (a newline, say): not a cut either.
    for tail in [&b"\n"[..], b"\r\n", b"abc", b"abcd"] {
        let mut longer = bytes.clone();
        longer.extend_from_slice(tail);
        std::fs::write(drive.join("tail"), &longer).unwrap();
        refused(&ben, &drive.join("tail"), "data after its end");
    }
    // A changed header names no contact.
    flip(&bundle, &drive.join("header"), 30);
    refused(&ben, &drive.join("header"), "not for you");
    // Not a bundle at all.
    std::fs::write(drive.join("photo.jpg"), b"\xff\xd8\xff\xe0 not a bundle").unwrap();
    refused(&ben, &drive.join("photo.jpg"), "not a Strand bundle");
    // Cat is Ben's contact, not Ann's: not for her. Ann made it: hers
    // to give, not to import.
    refused(&cat, &bundle, "not for you");
    refused(&ann, &bundle, "you made this bundle");
    assert_eq!(seen(&ben), before, "nothing stored by any refusal");

    // Ben takes it in: every message once, the file whole, the group.
    let got = ben
        .import_bundle(&bundle, &Budgets::default(), NOW(), &mut rng)
        .unwrap();
    assert_eq!(got.contact, "ann");
    assert_eq!(got.new, made.messages, "{got:?}");
    assert_eq!((got.held, got.refused), (0, 0), "{got:?}");
    let (texts, group) = seen(&ben);
    // Each once (texts written in the same millisecond show in id order).
    let mut sorted = texts.clone();
    sorted.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("text {i}")).collect();
    want.push("[file minutes.txt complete=true]".into());
    want.sort();
    assert_eq!(sorted, want);
    let mut sorted = group.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..5)
            .map(|i| format!("group text {i}"))
            .collect::<Vec<_>>()
    );
    let id = ben
        .conversation("ann")
        .unwrap()
        .into_iter()
        .find(|m| m.file.is_some())
        .unwrap()
        .key
        .id
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let saved = ben.save_file(&id, &tmp.path().join("saved")).unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), body);

    // Again: no change.
    let again = ben
        .import_bundle(&bundle, &Budgets::default(), NOW(), &mut rng)
        .unwrap();
    assert_eq!((again.new, again.held), (0, made.messages), "{again:?}");
    assert_eq!(seen(&ben), (texts, group));
}

/// `strand export` and `strand import` between two real processes' profiles
/// (never linked): offline on both sides, then into a running node.
#[test]
fn export_and_import_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let b = User::init(tmp.path(), "bob");
    a.ok(&["add", &b.invite(), "--name", "bob"]);
    b.ok(&["add", &a.invite(), "--name", "alice"]);
    a.ok(&["send", "bob", "by drive"]);
    let file = tmp.path().join("bob.strand");
    let out = a.cmd(&["export", "bob", "--to", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Only bob can open it"));
    // Its progress, on stderr (not a terminal here: plain lines).
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Writing the bundle for bob: 100% ("),
        "{said}"
    );
    let out = a.cmd(&["export", "bob", "--to", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let bad = tmp.path().join("bad.strand");
    flip(&file, &bad, 60);
    let out = b.cmd(&["import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged or was changed"));
    assert!(b.read("alice").is_empty());

    let out = b.cmd(&["import", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Reading the bundle: 100% ("));
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("From alice: 1 text and 0 files new, 0 already here."),
        "{out}"
    );
    assert_eq!(b.read("alice")[0]["text"], "by drive");

    // Into Bob's running node: the node takes it (and would hand it on).
    a.ok(&["send", "bob", "second trip"]);
    let file2 = tmp.path().join("bob-2.strand");
    a.ok(&["export", "bob", "--to", file2.to_str().unwrap()]);
    let (run, _) = b.run(&[]);
    let _run = Killed(run);
    let out = b.cmd(&["import", file2.to_str().unwrap(), "--json"]);
    assert!(out.stderr.is_empty(), "--json shows no progress");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["new"].as_u64(), v["held"].as_u64()), (Some(1), Some(1)));
    eventually("Bob reads it", std::time::Duration::from_secs(30), || {
        b.read("alice").iter().any(|m| m["text"] == "second trip")
    });
}

/// An import is held to the storage budgets a link is: what is over is
/// declined (and counted), nothing past the budget is stored, and a
/// larger budget lets the rest in on the next import.
#[test]
fn an_import_keeps_to_the_storage_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let mut rng = os_rng();
    let text = "x".repeat(1000);
    for _ in 0..20 {
        ann.write("ben", &text, NOW(), &mut rng).unwrap();
    }
    let bundle = tmp.path().join("b.strand");
    ann.export_bundle("ben", &bundle, NOW(), &mut rng).unwrap();
    let small = Budgets {
        per_contact: 10_000,
        ..Budgets::default()
    };
    let got = ben.import_bundle(&bundle, &small, NOW(), &mut rng).unwrap();
    assert!(got.new > 0 && got.over_budget > 0, "{got:?}");
    assert_eq!(got.new + got.over_budget, 20);
    let stored: usize = ben
        .conversation("ann")
        .unwrap()
        .iter()
        .map(|m| m.text.len())
        .sum();
    assert!(stored <= 10_000, "{stored} bytes of text stored");
    let rest = ben
        .import_bundle(&bundle, &Budgets::default(), NOW(), &mut rng)
        .unwrap();
    assert_eq!(
        (rest.new, rest.held, rest.over_budget),
        (got.over_budget, got.new, 0)
    );
    assert_eq!(ben.conversation("ann").unwrap().len(), 20);
}

/// `strand import` with no node running keeps to the budget the last node
/// ran with (`strand run --budget-per-contact`); it used to take the
/// default (1 GiB) whatever the user had set.
#[test]
fn an_offline_import_keeps_to_the_budget_the_node_ran_with() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let b = User::init(tmp.path(), "bob");
    a.ok(&["add", &b.invite(), "--name", "bob"]);
    b.ok(&["add", &a.invite(), "--name", "alice"]);
    let big = tmp.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 3 << 20]).unwrap();
    a.ok(&["send", "bob", "--file", big.to_str().unwrap()]);
    let file = tmp.path().join("bob.strand");
    a.ok(&["export", "bob", "--to", file.to_str().unwrap()]);

    let (run, _) = b.run_also(&[], &["--budget-per-contact", "1"]);
    drop(Killed(run));
    let out = b.ok(&["import", file.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (new, over) = (
        v["new"].as_u64().unwrap(),
        v["over_budget"].as_u64().unwrap(),
    );
    assert!(over > 0, "nothing over a 1 MiB budget: {out}");
    assert!(new > 0, "{out}");
}

/// An import follows a group one epoch a pass, and at most 64 passes: a
/// bundle whose group changed more often than that must say it was not
/// taken whole, so the user imports it again. Before, it said nothing,
/// and the texts of the epochs left over were counted as refused.
#[test]
fn a_group_changed_more_often_than_one_import_follows_is_imported_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let mut rng = os_rng();
    ann.create_group("desk", &["ben".into()], NOW(), &mut rng)
        .unwrap();
    // Sixty-five more epochs: one contact added at a time.
    for i in 0..65 {
        let name = format!("c{i}");
        let id = strand_sync::Identity::generate(&name, &mut rng).unwrap();
        ann.add_contact(&id.invite(), &name, 0, &mut rng).unwrap();
        ann.change_group(
            "desk",
            &strand_node::GroupAction::Add(name),
            NOW(),
            &mut rng,
        )
        .unwrap();
    }
    ann.write_group("desk", "the last word", NOW(), &mut rng)
        .unwrap();
    let bundle = tmp.path().join("for-ben.strand");
    ann.export_bundle("ben", &bundle, NOW(), &mut rng).unwrap();

    let budgets = Budgets::default();
    let first = ben
        .import_bundle(&bundle, &budgets, NOW(), &mut rng)
        .unwrap();
    let why = first
        .incomplete
        .expect("the first import says it stopped short");
    assert!(why.contains("64"), "{why}");
    assert!(!seen(&ben).1.contains(&"the last word".to_string()));
    let second = ben
        .import_bundle(&bundle, &budgets, NOW(), &mut rng)
        .unwrap();
    assert_eq!(second.incomplete, None);
    assert_eq!(second.refused, 0, "{second:?}");
    assert!(seen(&ben).1.contains(&"the last word".to_string()));
}

/// A named pipe (a FIFO) where a bundle is looked for, as a stranger's
/// drive may hold one named like a bundle, is refused at once and stores
/// nothing. Opening it for reading used to wait, for good, for something
/// to write to it: `strand import` hung, and so did a node's or the app's
/// thread that imported it.
#[test]
fn a_named_pipe_is_refused_not_waited_on() {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let drive = tmp.path().join("drive");
    std::fs::create_dir(&drive).unwrap();
    let pipe = drive.join("strand-bundle.strand");
    let made = std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let stored = ben.stored_messages().unwrap();

    let ben = &ben;
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let at = pipe.clone();
        s.spawn(move || {
            let got = ben.import_bundle(&at, &Budgets::default(), NOW(), &mut os_rng());
            let _ = tx.send(got);
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(20));
        if got.is_err() {
            // The import still waits for a writer: one comes and goes (not
            // waiting for a reader itself), so that it ends and the test
            // with it.
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&pipe);
        }
        let e = got
            .expect("the import returns at once")
            .expect_err("a pipe is not a bundle");
        let said = strand_node::chain(&e);
        assert!(said.contains("is not a file"), "{said}");
    });
    assert_eq!(ben.stored_messages().unwrap(), stored);
    assert!(ben.conversation("ann").unwrap().is_empty());
}

/// A folder given as the bundle is said to be a folder, not a bundle
/// that "cannot be read" (which sounds like a damaged file).
#[test]
fn a_folder_is_said_not_to_be_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ben) = (profile(tmp.path(), "ann"), profile(tmp.path(), "ben"));
    befriend(&ann, &ben);
    let folder = tmp.path().join("drive");
    std::fs::create_dir(&folder).unwrap();
    let stored = ben.stored_messages().unwrap();
    let e = ben
        .import_bundle(&folder, &Budgets::default(), NOW(), &mut os_rng())
        .unwrap_err();
    let said = strand_node::chain(&e);
    assert!(said.contains("is not a file"), "{said}");
    assert_eq!(ben.stored_messages().unwrap(), stored);
}
