//! Profiles on disk.

use std::path::Path;
use std::process::{Command, Stdio};

use redb::ReadableTable;
use strand_node::{os_rng, schema, Delivery, KdfParams, Profile, ProfileError};
use strand_sync::Identity;

const NOW: u64 = 1_700_000_000_000;

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
    drop(new_profile(&dir));
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
    drop(new_profile(&dir));
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
        ProfileError::DuplicateContact("Bob".into())
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

/// The key a passphrase gives under `m` KiB and `t` passes (as the node
/// derives it), for tests that rewrite a profile's parameters.
fn argon_key(pass: &str, salt: &[u8], m: u32, t: u32) -> [u8; 32] {
    use argon2::{Algorithm, Argon2, Params, Version};
    let mut key = [0u8; 32];
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(m, t, 1, Some(32)).unwrap(),
    )
    .hash_password_into(pass.as_bytes(), salt, &mut key)
    .unwrap();
    key
}

/// Issue 11: Argon2id has a floor. A profile is never created under it;
/// one written by an earlier Strand (19 MiB, 2 passes) opens and is moved
/// to calibrated parameters in the same unlock; one whose parameters were
/// lowered further is refused and left as it is.
#[test]
fn the_kdf_has_a_floor_and_old_profiles_are_upgraded() {
    use chacha20poly1305::aead::{Aead, Payload};
    use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
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
    drop(new_profile(&dir));
    let path = dir.join(schema::DB_FILE);
    let kdf_of = |db: &redb::Database| -> Vec<u8> {
        use redb::ReadableDatabase;
        let txn = db.begin_read().unwrap();
        let m = txn.open_table(schema::META).unwrap();
        let v = m.get("kdf").unwrap().unwrap().value().to_vec();
        v
    };
    // Rewrite it as an earlier Strand would have: the same root key under
    // a 19 MiB, 2-pass key.
    {
        use redb::ReadableDatabase;
        let db = redb::Database::open(&path).unwrap();
        let (salt, root_sealed) = {
            let txn = db.begin_read().unwrap();
            let m = txn.open_table(schema::META).unwrap();
            let kdf = m.get("kdf").unwrap().unwrap().value().to_vec();
            let root = m.get("root").unwrap().unwrap().value().to_vec();
            (kdf[..16].to_vec(), root)
        };
        let test = KdfParams::insecure_for_tests();
        let key = argon_key("pass phrase", &salt, test.m_cost, test.t_cost);
        let root = XChaCha20Poly1305::new((&key).into())
            .decrypt(
                XNonce::from_slice(&root_sealed[..24]),
                Payload {
                    msg: &root_sealed[24..],
                    aad: b"strand/v1/root",
                },
            )
            .unwrap();
        let legacy = argon_key("pass phrase", &salt, 19_456, 2);
        let nonce = [9u8; 24];
        let mut sealed = nonce.to_vec();
        sealed.extend(
            XChaCha20Poly1305::new((&legacy).into())
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &root,
                        aad: b"strand/v1/root",
                    },
                )
                .unwrap(),
        );
        let mut kdf = salt.clone();
        for v in [19_456u32, 2, 1] {
            kdf.extend_from_slice(&v.to_le_bytes());
        }
        let txn = db.begin_write().unwrap();
        {
            let mut m = txn.open_table(schema::META).unwrap();
            m.insert("kdf", &kdf[..]).unwrap();
            m.insert("root", &sealed[..]).unwrap();
        }
        txn.commit().unwrap();
    }
    // It opens, and comes out on calibrated parameters.
    let p = Profile::open(&dir, "pass phrase").unwrap();
    drop(p);
    {
        let db = redb::Database::open(&path).unwrap();
        let kdf = kdf_of(&db);
        let m = u32::from_le_bytes(kdf[16..20].try_into().unwrap());
        let t = u32::from_le_bytes(kdf[20..24].try_into().unwrap());
        assert!(m >= 65_536 && t >= 3, "upgraded to {m} KiB, {t} passes");
    }
    assert!(Profile::open(&dir, "pass phrase").is_ok());
    assert_eq!(
        Profile::open(&dir, "wrong").unwrap_err(),
        ProfileError::WrongPassphrase
    );

    // Lowered below anything Strand wrote: refused, nothing changes.
    {
        let db = redb::Database::open(&path).unwrap();
        let mut kdf = kdf_of(&db);
        kdf[16..20].copy_from_slice(&1_024u32.to_le_bytes());
        kdf[20..24].copy_from_slice(&1u32.to_le_bytes());
        let txn = db.begin_write().unwrap();
        txn.open_table(schema::META)
            .unwrap()
            .insert("kdf", &kdf[..])
            .unwrap();
        txn.commit().unwrap();
    }
    let before = kdf_of(&redb::Database::open(&path).unwrap());
    assert_eq!(
        Profile::open(&dir, "pass phrase").unwrap_err(),
        ProfileError::WeakKdf
    );
    assert!(
        kdf_of(&redb::Database::open(&path).unwrap()) == before,
        "the refused profile's parameters were changed"
    );
}
