//! Panic wipe.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strand_node::{os_rng, schema, Profile, ProfileError};
use strand_sync::Identity;

use crate::cli::{Killed, User, BIN};
use crate::profile::new_profile;

/// A wipe cut short after its first step already leaves a profile that
/// the right passphrase no longer opens, and no copy of the sealed keys.
#[test]
fn destroying_the_keys_alone_leaves_nothing_the_passphrase_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let p = new_profile(&dir);
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", 0, &mut os_rng())
        .unwrap();
    for i in 0..50 {
        p.write("Bob", &format!("message {i}"), i, &mut os_rng())
            .unwrap();
    }
    drop(p);
    // The sealed root key, as the header holds it (slot A, offset 44).
    let sealed_root = std::fs::read(dir.join(schema::DB_FILE)).unwrap()[44..116].to_vec();
    // In use: refused, nothing touched.
    let held = Profile::open(&dir, "pass phrase").unwrap();
    assert!(matches!(
        strand_node::wipe::destroy_keys(&dir),
        Err(ProfileError::InUse(_))
    ));
    drop(held);

    let copies = strand_node::wipe::destroy_keys(&dir).unwrap();
    assert!(copies >= 2, "{copies} copies");
    let bytes = std::fs::read(dir.join(schema::DB_FILE)).unwrap();
    assert!(
        !bytes.windows(sealed_root.len()).any(|w| w == sealed_root),
        "a copy of the sealed root key is left"
    );
    let err = Profile::open(&dir, "pass phrase").unwrap_err();
    assert!(
        matches!(
            err,
            ProfileError::WrongPassphrase | ProfileError::Corrupt(_) | ProfileError::Db(_)
        ),
        "{err:?}"
    );
    // A wipe cut short after that step can be finished.
    let wiped = strand_node::wipe::wipe(&dir).unwrap();
    assert_eq!(wiped.key_copies, 0, "nothing left to destroy");
    assert!(!dir.exists());
}

/// A sealed copy of the profile file left at `strand.redb.sealing` (the
/// first unlock of a profile from before sealing, killed or failing
/// before its rename) holds the root key sealed under the passphrase, as
/// the profile does. An unlock removes it, and destroying the keys
/// destroys its copies too. Before, nothing removed it, and after the
/// keys were destroyed (a wipe cut short) it still held them.
#[test]
fn a_sealed_copy_left_beside_the_profile_goes_with_its_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    drop(new_profile(&dir));
    let file = dir.join(schema::DB_FILE);
    let sealing = dir.join(format!("{}.sealing", schema::DB_FILE));
    // The sealed root key, as the header holds it (slot A, offset 44).
    let sealed_root = std::fs::read(&file).unwrap()[44..116].to_vec();
    let holds_the_key = |path: &std::path::Path| {
        std::fs::read(path).is_ok_and(|b| b.windows(sealed_root.len()).any(|w| w == sealed_root))
    };

    std::fs::copy(&file, &sealing).unwrap();
    assert!(holds_the_key(&sealing));
    drop(Profile::open(&dir, "pass phrase").unwrap());
    assert!(!sealing.exists(), "an unlock removes it");

    std::fs::copy(&file, &sealing).unwrap();
    strand_node::wipe::destroy_keys(&dir).unwrap();
    assert!(!holds_the_key(&file));
    assert!(!holds_the_key(&sealing), "the copy beside it holds the key");
    strand_node::wipe::wipe(&dir).unwrap();
    assert!(!dir.exists());
}

/// `strand wipe` asks first (and refuses without a terminal), stops a
/// running node, and leaves no profile.
#[test]
fn strand_wipe_stops_the_node_and_removes_the_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let a = User::init(tmp.path(), "alice");
    let b = User::init(tmp.path(), "bob");
    a.ok(&["add", &b.invite(), "--name", "bob"]);
    a.ok(&["send", "bob", "before the wipe"]);

    let out = a.cmd(&["wipe"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert!(a.ok(&["contacts"]).contains("bob"), "nothing changed");

    let (run, _) = a.run(&[]);
    let mut run = Killed(run);
    let wiped = a.ok(&["wipe", "--yes"]);
    assert!(wiped.contains("Wiped"), "{wiped}");
    assert!(!a.dir.exists(), "the profile folder is gone");
    // The node stopped by itself.
    let start = Instant::now();
    loop {
        if let Some(status) = run.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the node did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new(BIN)
        .args(["contacts"])
        .env("STRAND_PROFILE", &a.dir)
        .env("STRAND_PASSPHRASE", &a.pass)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no Strand profile"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
