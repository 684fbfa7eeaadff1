//! Profiles on disk.

use std::path::Path;
use std::process::{Command, Stdio};

use redb::ReadableTable;
use strand_node::{os_rng, schema, Delivery, KdfParams, Profile, ProfileError};
use strand_sync::Identity;

const NOW: u64 = 1_700_000_000_000;

/// Alice's profile in the format from before files were sealed as a
/// whole (plain redb), passphrase "pass phrase": what an upgrade finds.
pub fn old_profile(dir: &Path) -> Profile {
    Profile::create_unsealed_for_tests(
        dir,
        "Alice",
        "pass phrase",
        KdfParams::insecure_for_tests(),
        &mut os_rng(),
    )
    .unwrap()
}

/// Alice's profile, passphrase "pass phrase" (also used by `views`).
pub fn new_profile(dir: &Path) -> Profile {
    Profile::create(
        dir,
        "Alice",
        "pass phrase",
        KdfParams::insecure_for_tests(),
        &mut os_rng(),
    )
    .unwrap()
}

fn file_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(schema::DB_FILE)).unwrap()
}

#[test]
fn a_profile_round_trips_through_its_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let p = new_profile(&dir);
    let public = p.identity().public();
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    p.write("Bob", "first", NOW, &mut os_rng()).unwrap();
    p.write("Bob", "second", NOW + 1, &mut os_rng()).unwrap();
    drop(p);
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.identity().public(), public);
    assert_eq!(p.identity().name(), "Alice");
    assert_eq!(p.contacts().len(), 1);
    let conv = p.conversation("Bob").unwrap();
    let texts: Vec<_> = conv.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["first", "second"]);
    assert!(conv
        .iter()
        .all(|m| m.outgoing && m.delivery == Some(Delivery::Queued)));
}

#[test]
fn a_wrong_passphrase_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let p = new_profile(&dir);
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    p.write("Bob", "kept", NOW, &mut os_rng()).unwrap();
    let public = p.identity().public();
    drop(p);
    assert_eq!(
        Profile::open(&dir, "pass phrasE").unwrap_err(),
        ProfileError::WrongPassphrase
    );
    assert_eq!(
        Profile::open(&dir, "").unwrap_err(),
        ProfileError::WrongPassphrase
    );
    // (redb rewrites its header on every open, so compare content, not bytes.)
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.identity().public(), public);
    assert_eq!(p.conversation("Bob").unwrap().len(), 1);
}

#[test]
fn missing_existing_and_empty_passphrase_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let err = Profile::open(&dir, "x").unwrap_err();
    assert!(matches!(err, ProfileError::NotFound(_)));
    assert!(err.to_string().contains("strand init"));
    assert_eq!(
        Profile::create(
            &dir,
            "A",
            "",
            KdfParams::insecure_for_tests(),
            &mut os_rng()
        )
        .unwrap_err(),
        ProfileError::EmptyPassphrase
    );
    drop(new_profile(&dir));
    assert!(matches!(
        Profile::create(
            &dir,
            "A",
            "x",
            KdfParams::insecure_for_tests(),
            &mut os_rng()
        )
        .unwrap_err(),
        ProfileError::AlreadyExists(_)
    ));
}

#[test]
fn a_second_handle_in_this_process_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let _held = new_profile(&dir);
    let err = Profile::open(&dir, "pass phrase").unwrap_err();
    assert_eq!(err, ProfileError::InUse(dir.clone()));
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
}

/// Not a test on its own: the child process of
/// `a_second_process_is_refused_and_nothing_is_corrupted`.
#[test]
fn hold_profile_child() {
    let Ok(dir) = std::env::var("STRAND_TEST_HOLD_PROFILE") else {
        return;
    };
    let p = Profile::open(Path::new(&dir), "pass phrase").unwrap();
    println!("held");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    drop(p);
}

#[test]
fn a_second_process_is_refused_and_nothing_is_corrupted() {
    use std::io::{BufRead, Write};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let p = new_profile(&dir);
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    p.write("Bob", "kept", NOW, &mut os_rng()).unwrap();
    drop(p);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "profile::hold_profile_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STRAND_TEST_HOLD_PROFILE", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("held") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child exited before holding the profile"
        );
    }
    let err = Profile::open(&dir, "pass phrase").unwrap_err();
    assert_eq!(err, ProfileError::InUse(dir.clone()));
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.conversation("Bob").unwrap()[0].text, "kept");
}

/// Regression: a command run while a node was starting (its profile
/// held, its control socket not bound yet: `strand run` binds it once
/// its transports started, which takes seconds with Bluetooth) looked
/// for the socket once, then opened the profile and was told it is in
/// use by another Strand process. It now asks again while the node says
/// it is starting (as `strand run` and the app do, from when they hold
/// the profile until their socket is bound), and reaches the node once
/// its socket is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_reaches_a_node_that_binds_its_socket_after_it_looked() {
    use strand_node::runtime::api::Request;
    use strand_node::runtime::device::Device;
    use strand_node::runtime::starting::Starting;
    use strand_node::{control, Node, NodeConfig};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    // A node starting on the profile, as `strand run` starts one: it
    // holds the profile, says it is starting, and has not bound its
    // socket.
    let profile = new_profile(&dir);
    let starting = Starting::mark(&profile);
    let node = Node::start(profile, NodeConfig::offline()).await.unwrap();
    let opening = Device::open(&dir, || Err("the passphrase was asked for".to_owned()));
    tokio::pin!(opening);
    // Polled once: it finds no socket, and must not have given up. (It
    // did: it then asked for the passphrase, or opened the profile, and
    // failed, all within that one poll.)
    tokio::select! {
        biased;
        done = &mut opening => panic!("done before the node bound its socket: {done:?}"),
        () = std::future::ready(()) => {}
    }
    let bound = control::bind(&node, &dir, starting).unwrap();
    let served = tokio::spawn(control::serve(node.clone(), bound));
    let device = opening.await.unwrap();
    assert!(matches!(device, Device::Running(_)), "{device:?}");
    assert!(device.call(Request::Status).await.is_ok());
    assert!(
        !dir.join(strand_node::runtime::starting::MARKER).exists(),
        "the marker outlived the binding of the socket"
    );
    served.abort();
    node.shutdown().await;
}

/// Regression: a profile held by something that never binds a control
/// socket (here a node that does not say it is starting, as a command's
/// offline node does not) was waited for 10 s, asked again every 100 ms,
/// before a command said it is in use; the app waited as long at
/// launch. It is in use at once: the first poll of the opening is its
/// last, and no passphrase is asked for. (Fails before: the first poll
/// leaves it waiting.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_held_with_no_node_starting_is_in_use_at_once() {
    use strand_node::runtime::device::{Device, OpenError};
    use strand_node::{Node, NodeConfig};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let node = Node::start(new_profile(&dir), NodeConfig::offline())
        .await
        .unwrap();
    let opening = Device::open(&dir, || Err("the passphrase was asked for".to_owned()));
    tokio::pin!(opening);
    let done = tokio::select! {
        biased;
        done = &mut opening => done,
        () = std::future::ready(()) => panic!("waiting for a node that is not starting"),
    };
    assert!(
        matches!(done, Err(OpenError::Profile(ProfileError::InUse(_)))),
        "{done:?}"
    );
    node.shutdown().await;
}

#[test]
fn secrets_and_bodies_are_not_readable_at_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let p = new_profile(&dir);
    let secret = p.identity().to_secret_bytes();
    let bob = Identity::generate("Bobby Tables", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bobby Tables", NOW, &mut os_rng())
        .unwrap();
    p.write(
        "Bobby Tables",
        "meet at the old mill at nine",
        NOW,
        &mut os_rng(),
    )
    .unwrap();
    drop(p);
    let bytes = file_bytes(&dir);
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(&secret[..32]), "signing key in the clear");
    assert!(!contains(&secret[32..]), "X25519 key in the clear");
    assert!(!contains(b"Alice"), "own name in the clear");
    assert!(!contains(b"Bobby Tables"), "contact name in the clear");
    assert!(!contains(b"old mill"), "message text in the clear");
    assert!(!contains(&bob.public().dh), "contact key in the clear");
}

#[cfg(unix)]
#[test]
fn the_profile_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    drop(new_profile(&dir));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(schema::DB_FILE)), 0o600);
}

#[test]
fn a_newer_schema_is_refused_without_touching_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    drop(old_profile(&dir));
    {
        let db = redb::Database::open(dir.join(schema::DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(schema::META)
            .unwrap()
            .insert(schema::meta::SCHEMA, &99u32.to_le_bytes()[..])
            .unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(
        Profile::open(&dir, "pass phrase").unwrap_err(),
        ProfileError::SchemaTooNew(99)
    );
    // Still version 99: nothing was migrated or rewritten.
    let db = redb::Database::open(dir.join(schema::DB_FILE)).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let v = txn
        .open_table(schema::META)
        .unwrap()
        .get(schema::meta::SCHEMA)
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    assert_eq!(v, 99u32.to_le_bytes());
}

#[test]
fn a_damaged_identity_record_is_reported_as_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    drop(old_profile(&dir));
    {
        let db = redb::Database::open(dir.join(schema::DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut m = txn.open_table(schema::META).unwrap();
            let mut v = m
                .get(schema::meta::IDENTITY)
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            v[30] ^= 1;
            m.insert(schema::meta::IDENTITY, &v[..]).unwrap();
        }
        txn.commit().unwrap();
    }
    assert!(matches!(
        Profile::open(&dir, "pass phrase").unwrap_err(),
        ProfileError::Corrupt(_)
    ));
}

#[test]
fn contacts_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("p"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    assert_eq!(
        p.add_contact(&bob.invite(), "Robert", NOW, &mut os_rng())
            .unwrap_err(),
        ProfileError::DuplicateContact("Bob".into())
    );
    let carol = Identity::generate("Carol", &mut os_rng()).unwrap();
    assert_eq!(
        p.add_contact(&carol.invite(), "Bob", NOW, &mut os_rng())
            .unwrap_err(),
        ProfileError::NameTaken("Bob".into())
    );
    assert!(matches!(
        p.add_contact(&carol.invite(), "  ", NOW, &mut os_rng()),
        Err(ProfileError::Name(_))
    ));
    let own = p.identity().invite();
    assert!(matches!(
        p.add_contact(&own, "me", NOW, &mut os_rng()),
        Err(ProfileError::Key(strand_sync::KeyError::OwnKey))
    ));
    assert_eq!(p.contacts().len(), 1);
    assert_eq!(
        p.write("Nobody", "hi", NOW, &mut os_rng()).unwrap_err(),
        ProfileError::UnknownContact("Nobody".into())
    );
}

/// Argon2id has a floor. A profile is never created under it;
/// one written by an earlier Strand (19 MiB, 2 passes, rows sealed one by
/// one) opens, and in the same unlock moves to calibrated parameters and a
/// file sealed as a whole, conversation intact; one whose parameters were
/// lowered further is refused and left as it is.
#[test]
fn the_kdf_has_a_floor_and_old_profiles_are_upgraded() {
    let tmp = tempfile::tempdir().unwrap();
    let weak = KdfParams {
        m_cost: 8_192,
        t_cost: 1,
        p_cost: 1,
    };
    assert_eq!(
        Profile::create(
            &tmp.path().join("w"),
            "W",
            "pass phrase",
            weak,
            &mut os_rng()
        )
        .unwrap_err(),
        ProfileError::WeakKdf
    );
    assert!(!tmp.path().join("w").exists());

    let dir = tmp.path().join("p");
    let p = Profile::create_unsealed_for_tests(
        &dir,
        "Alice",
        "pass phrase",
        KdfParams::LEGACY,
        &mut os_rng(),
    )
    .unwrap();
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    p.write("Bob", "kept through the upgrade", NOW, &mut os_rng())
        .unwrap();
    drop(p);
    assert!(!Profile::is_sealed(&dir));
    assert_eq!(Profile::kdf_params(&dir).unwrap(), KdfParams::LEGACY);
    // A wrong passphrase changes nothing.
    assert_eq!(
        Profile::open(&dir, "wrong").unwrap_err(),
        ProfileError::WrongPassphrase
    );
    assert!(!Profile::is_sealed(&dir));
    // The right one upgrades both.
    drop(Profile::open(&dir, "pass phrase").unwrap());
    assert!(Profile::is_sealed(&dir));
    let kdf = Profile::kdf_params(&dir).unwrap();
    assert!(kdf.at_least(&KdfParams::FLOOR), "{kdf:?}");
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(
        p.conversation("Bob").unwrap()[0].text,
        "kept through the upgrade"
    );
    assert_eq!(p.contacts().len(), 1);
    drop(p);
    assert_eq!(
        Profile::open(&dir, "wrong").unwrap_err(),
        ProfileError::WrongPassphrase
    );

    // Lowered below anything Strand wrote (both header copies rewritten
    // with valid checksums): refused, nothing changes.
    let path = dir.join(schema::DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    for slot in [0usize, 2048] {
        let s = &mut bytes[slot..slot + 2048];
        s[32..36].copy_from_slice(&1_024u32.to_le_bytes());
        s[36..40].copy_from_slice(&1u32.to_le_bytes());
        let sum = strand_sync::kdf(&[0; 32], "strand/v3/header", &[&s[..2016]]);
        s[2016..].copy_from_slice(&sum);
    }
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        Profile::open(&dir, "pass phrase").unwrap_err(),
        ProfileError::WeakKdf
    );
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "the refused file was changed"
    );
}

/// Raised past anything Strand writes (both header copies rewritten with
/// valid checksums), the key-derivation settings are refused before any
/// work: before, `u32::MAX` passes made unlocking run for days, and
/// `u32::MAX` KiB of memory made Argon2 ask for 4 TiB and abort.
#[test]
fn kdf_settings_past_the_ceiling_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    drop(new_profile(&dir));
    let path = dir.join(schema::DB_FILE);
    let clean = std::fs::read(&path).unwrap();
    for (offset, huge) in [(36usize, u32::MAX), (32, u32::MAX), (40, 1 << 20)] {
        let mut bytes = clean.clone();
        for slot in [0usize, 2048] {
            let s = &mut bytes[slot..slot + 2048];
            s[offset..offset + 4].copy_from_slice(&huge.to_le_bytes());
            let sum = strand_sync::kdf(&[0; 32], "strand/v3/header", &[&s[..2016]]);
            s[2016..].copy_from_slice(&sum);
        }
        std::fs::write(&path, &bytes).unwrap();
        match Profile::open(&dir, "pass phrase") {
            Err(ProfileError::Corrupt(why)) => {
                assert!(why.contains("more than Strand ever writes"), "{why}")
            }
            other => panic!("{offset}: {:?}", other.map(|_| ())),
        }
        assert!(
            std::fs::read(&path).unwrap() == bytes,
            "the refused file was changed"
        );
    }
    std::fs::write(&path, &clean).unwrap();
    drop(Profile::open(&dir, "pass phrase").unwrap());
}

/// A seized profile file shows no contact key, group id,
/// timestamp or message length: the whole file is sealed, so neither the
/// B-tree keys (group ‖ time ‖ id) nor the message headers appear.
#[test]
fn the_raw_file_shows_no_keys_groups_times_or_lengths() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let p = new_profile(&dir);
    let me = p.identity().public();
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    let text = "x".repeat(1234);
    let mut times = Vec::new();
    for i in 0..20u64 {
        let (_, key) = p
            .write("Bob", &text, NOW + i * 1000, &mut os_rng())
            .unwrap();
        times.push(key.time);
    }
    let group = p
        .sync_contact(&p.contact("Bob").unwrap())
        .unwrap()
        .direct_group()
        .id
        .0;
    drop(p);
    let bytes = file_bytes(&dir);
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(&group), "group id");
    assert!(!contains(&group[..8]), "group id prefix");
    for key in [&me.sign, &me.dh, &bob.public().sign, &bob.public().dh] {
        assert!(!contains(&key[..]), "a public key");
    }
    for t in &times {
        assert!(!contains(&t.to_be_bytes()), "a timestamp (BE)");
        assert!(!contains(&t.to_le_bytes()), "a timestamp (LE)");
    }
    // Message lengths as a header or length prefix would hold them.
    for len in [1234u32, 1234 + 16] {
        assert!(
            !contains(&len.to_le_bytes()[..]) && !contains(&len.to_be_bytes()[..]),
            "length {len}"
        );
    }
    assert!(
        !contains(b"messages") && !contains(b"contacts"),
        "table names"
    );
    // ...and it still opens.
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.conversation("Bob").unwrap().len(), 20);
}

/// The raw file does not count commits. redb rewrites its first page at
/// every commit, and that block's two copies carry a counter; before, it
/// was in the clear, so a seized file told how many writes (messages,
/// read and delivery marks) the profile had made, and two copies of the
/// file how many came between them.
#[test]
fn the_raw_file_does_not_count_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let p = new_profile(&dir);
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    drop(p);
    // Block 0's two copies start at 4096 and 12288, each with its counter.
    let counters = |dir: &Path| {
        let bytes = file_bytes(dir);
        [4096, 12288].map(|at| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()))
    };
    let before = counters(&dir);
    let p = Profile::open(&dir, "pass phrase").unwrap();
    for i in 0..40u64 {
        p.write("Bob", "another", NOW + i, &mut os_rng()).unwrap();
    }
    drop(p);
    let after = counters(&dir);
    for c in before.iter().chain(&after) {
        assert!(
            *c > 1 << 32,
            "a counter in the clear: {before:?} then {after:?}"
        );
    }
    let p = Profile::open(&dir, "pass phrase").unwrap();
    assert_eq!(p.conversation("Bob").unwrap().len(), 40);
}

/// A sealed file with a damaged block is reported, not a panic.
#[test]
fn a_damaged_sealed_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let p = new_profile(&dir);
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    drop(p);
    let path = dir.join(schema::DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    for b in &mut bytes[4096..n] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert!(Profile::open(&dir, "pass phrase").is_err());
}

/// A copy of the profile folder `dir` with bytes `at..at+len` of its file
/// zeroed.
fn copy_with_zeros(dir: &Path, to: &Path, at: usize, len: usize) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    let path = to.join(schema::DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at..at + len].fill(0);
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn a_new_passphrase_replaces_the_old_in_both_copies_of_the_header() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let p = new_profile(&dir);
    let mut rng = os_rng();
    let before = file_bytes(&dir);
    // A wrong current passphrase, or an empty new one: nothing changes.
    assert_eq!(
        p.change_passphrase("not it", "a new pass phrase", &mut rng),
        Err(ProfileError::WrongPassphrase)
    );
    assert_eq!(
        p.change_passphrase("pass phrase", "", &mut rng),
        Err(ProfileError::EmptyPassphrase)
    );
    assert_eq!(file_bytes(&dir)[..4096], before[..4096]);
    let me = p.identity().public();
    p.change_passphrase("pass phrase", "a new pass phrase", &mut rng)
        .unwrap();
    drop(p);
    assert!(matches!(
        Profile::open(&dir, "pass phrase"),
        Err(ProfileError::WrongPassphrase)
    ));
    let p = Profile::open(&dir, "a new pass phrase").unwrap();
    assert_eq!(p.identity().public(), me);
    drop(p);
    // The header is kept twice (2048 bytes each, after an 8-byte mark).
    // With either copy destroyed, the other opens with the new passphrase
    // and never with the old: no copy of the root key sealed under the
    // old one is left.
    for (i, at) in [0, 2048].into_iter().enumerate() {
        let copy = tmp.path().join(format!("copy{i}"));
        copy_with_zeros(&dir, &copy, at + 8, 2048 - 8);
        assert!(
            matches!(
                Profile::open(&copy, "pass phrase"),
                Err(ProfileError::WrongPassphrase)
            ),
            "header copy {i}"
        );
        let p = Profile::open(&copy, "a new pass phrase").unwrap();
        assert_eq!(p.identity().public(), me);
    }
}

/// Two changes of the passphrase at once, both from the current one (two
/// windows, or the app and `strand passphrase`): one is made, the other is
/// told the passphrase is wrong, and the file opens with the one made, in
/// both copies of its header. Before, both checked the old header and both
/// were told done: the file held whichever wrote last (or one copy of
/// each), and the user could not know which.
#[test]
fn two_passphrase_changes_at_once_make_one() {
    for round in 0..4 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let p = new_profile(&dir);
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let changes: Vec<_> = ["first new pass phrase", "second new pass phrase"]
            .into_iter()
            .map(|new| {
                let (p, start) = (p.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    (new, p.change_passphrase("pass phrase", new, &mut os_rng()))
                })
            })
            .collect();
        let results: Vec<_> = changes.into_iter().map(|t| t.join().unwrap()).collect();
        let made: Vec<&str> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(new, _)| *new)
            .collect();
        assert_eq!(made.len(), 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .any(|(_, r)| *r == Err(ProfileError::WrongPassphrase)),
            "round {round}: {results:?}"
        );
        drop(p);
        let other = results.iter().find(|(_, r)| r.is_err()).unwrap().0;
        for (i, at) in [0, 2048].into_iter().enumerate() {
            let copy = tmp.path().join(format!("copy{i}"));
            copy_with_zeros(&dir, &copy, at + 8, 2048 - 8);
            for refused in ["pass phrase", other] {
                assert!(
                    matches!(
                        Profile::open(&copy, refused),
                        Err(ProfileError::WrongPassphrase)
                    ),
                    "round {round}, header copy {i}: {refused:?} opens it"
                );
            }
            Profile::open(&copy, made[0]).unwrap();
        }
    }
}
