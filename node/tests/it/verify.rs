//! Verifiable contacts: invites whose keys are tied together,
//! contacts that cannot be overwritten, safety numbers.

use strand_node::{os_rng, Profile, ProfileError};
use strand_sync::{Identity, PublicIdentity};

use crate::profile::new_profile;

const NOW: u64 = 1_700_000_000_000;

/// Mallory hands Bob an invite with Alice's signing key and her own X25519
/// key. Before invites were signed, it passed the fingerprint check and,
/// keyed by the signing key, replaced Bob's real Alice. Now it is refused
/// and the real Alice stays.
#[test]
fn a_swapped_key_neither_passes_nor_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let bob = new_profile(&tmp.path().join("bob"));
    let alice = Identity::generate("Alice", &mut os_rng()).unwrap();
    let mallory = Identity::generate("Mallory", &mut os_rng()).unwrap();
    bob.add_contact(&alice.invite(), "Alice", NOW, &mut os_rng())
        .unwrap();
    let before = bob.contact("Alice").unwrap();

    // Built in code (never decoded): the profile checks the signature too.
    let forged = strand_sync::Invite {
        public: PublicIdentity {
            sign: alice.public().sign,
            dh: mallory.public().dh,
        },
        ..alice.invite()
    };
    assert!(matches!(
        bob.add_contact(&forged, "Alice 2", NOW, &mut os_rng()),
        Err(ProfileError::Invite(strand_sync::InviteError::Signature))
    ));
    // A validly signed invite sharing one key with a contact (here: the
    // same signing key with another X25519 key) is refused too, saying why.
    let mut secret = alice.to_secret_bytes();
    secret[32..].copy_from_slice(&mallory.to_secret_bytes()[32..]);
    let twin = Identity::from_secret_bytes(&secret, "Alice").unwrap();
    let err = bob
        .add_contact(&twin.invite(), "Alice 2", NOW, &mut os_rng())
        .unwrap_err();
    assert_eq!(err, ProfileError::KeyConflict("Alice".into()));
    assert!(err.to_string().contains("impersonating"), "{err}");

    assert_eq!(bob.contacts(), vec![before.clone()]);
    drop(bob);
    let bob = Profile::open(&tmp.path().join("bob"), "pass phrase").unwrap();
    assert_eq!(bob.contacts(), vec![before]);
}

/// Both sides see the same safety number; confirming it marks the contact
/// verified, and that survives a restart.
#[test]
fn safety_numbers_agree_and_verification_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let a = new_profile(&tmp.path().join("a"));
    let b = Profile::create(
        &tmp.path().join("b"),
        "Bob",
        "pass phrase",
        strand_node::KdfParams::insecure_for_tests(),
        &mut os_rng(),
    )
    .unwrap();
    a.add_contact(&b.identity().invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    b.add_contact(&a.identity().invite(), "Alice", NOW, &mut os_rng())
        .unwrap();
    let (ab, ba) = (a.contact("Bob").unwrap(), b.contact("Alice").unwrap());
    assert_eq!(a.safety_number(&ab), b.safety_number(&ba));
    assert!(!ab.verified && !ab.legacy);

    assert!(a.set_verified("Bob", true, &mut os_rng()).unwrap().verified);
    assert!(matches!(
        a.set_verified("Nobody", true, &mut os_rng()),
        Err(ProfileError::UnknownContact(_))
    ));
    drop(a);
    let a = Profile::open(&tmp.path().join("a"), "pass phrase").unwrap();
    assert!(a.contact("Bob").unwrap().verified);
    assert!(
        !a.set_verified("Bob", false, &mut os_rng())
            .unwrap()
            .verified
    );
    assert!(!a.contact("Bob").unwrap().verified);
}

/// A contact name with invisible characters is refused; one that
/// looks like another contact's is flagged (in `strand contacts` and the
/// app), not refused.
#[test]
fn invisible_names_are_refused_and_lookalikes_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("p"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    let err = p
        .add_contact(&bob.invite(), "B\u{200b}ob", NOW, &mut os_rng())
        .unwrap_err();
    assert!(matches!(err, ProfileError::Name(_)), "{err}");
    assert!(p.contacts().is_empty());
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    assert_eq!(p.lookalike("Bob"), None);
    let fake = Identity::generate("Bob", &mut os_rng()).unwrap();
    // Cyrillic "о".
    p.add_contact(&fake.invite(), "B\u{43e}b", NOW, &mut os_rng())
        .unwrap();
    assert_eq!(p.lookalike("B\u{43e}b").as_deref(), Some("Bob"));
    assert_eq!(p.lookalike("Bob").as_deref(), Some("B\u{43e}b"));
    let views = strand_node::runtime::commands::contacts(&p);
    assert!(views.iter().all(|v| v.lookalike.is_some()));
    // Your own name counts too.
    let carol = Identity::generate("Carol", &mut os_rng()).unwrap();
    p.add_contact(&carol.invite(), "Alicе", NOW, &mut os_rng())
        .unwrap();
    assert_eq!(p.lookalike("Alicе").as_deref(), Some("Alice"));
    // A joiner is part of an emoji ("Kim 👨‍👩‍👧"), and nothing else: a
    // name that differs only by it looks alike.
    let kim = Identity::generate("Kim", &mut os_rng()).unwrap();
    let family = "Kim \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
    p.add_contact(&kim.invite(), family, NOW, &mut os_rng())
        .unwrap();
    let other = Identity::generate("Kim", &mut os_rng()).unwrap();
    let err = p
        .add_contact(&other.invite(), "K\u{200D}im", NOW, &mut os_rng())
        .unwrap_err();
    assert!(matches!(err, ProfileError::Name(_)), "{err}");
    p.add_contact(
        &other.invite(),
        "Kim \u{1F468}\u{1F469}\u{1F467}",
        NOW,
        &mut os_rng(),
    )
    .unwrap();
    assert_eq!(
        p.lookalike(family).as_deref(),
        Some("Kim \u{1F468}\u{1F469}\u{1F467}")
    );
}

/// A contact named exactly as you are (the profile is "Alice"), or "me"
/// (how the CLI shows what you wrote), is flagged: before, only a name
/// that merely looked like yours was.
#[test]
fn your_own_name_and_me_are_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let p = new_profile(&tmp.path().join("p"));
    let alice = Identity::generate("Alice", &mut os_rng()).unwrap();
    p.add_contact(&alice.invite(), "Alice", NOW, &mut os_rng())
        .unwrap();
    assert_eq!(p.lookalike("Alice").as_deref(), Some("Alice"));
    let me = Identity::generate("me", &mut os_rng()).unwrap();
    p.add_contact(&me.invite(), "Me", NOW, &mut os_rng())
        .unwrap();
    assert_eq!(p.lookalike("Me").as_deref(), Some("me"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    p.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    assert_eq!(p.lookalike("Bob"), None);
}

/// A contact can be given another name: the conversation goes with
/// them, the name is kept across a restart, and a name that is taken,
/// invisible or empty is refused with nothing changed.
#[test]
fn a_contact_can_be_renamed_and_keeps_their_conversation() {
    let tmp = tempfile::tempdir().unwrap();
    let a = new_profile(&tmp.path().join("a"));
    let bob = Identity::generate("Bob", &mut os_rng()).unwrap();
    let carol = Identity::generate("Carol", &mut os_rng()).unwrap();
    a.add_contact(&bob.invite(), "Bob", NOW, &mut os_rng())
        .unwrap();
    a.add_contact(&carol.invite(), "Carol", NOW, &mut os_rng())
        .unwrap();
    a.write("Bob", "hello", NOW + 1, &mut os_rng()).unwrap();
    a.set_verified("Bob", true, &mut os_rng()).unwrap();
    let before = a.contacts();

    for (taken, why) in [
        ("Carol", "taken"),
        ("Ro\u{200b}bert", "invisible"),
        ("   ", "empty"),
    ] {
        let err = a.rename_contact("Bob", taken, &mut os_rng()).unwrap_err();
        assert!(
            matches!(err, ProfileError::NameTaken(_) | ProfileError::Name(_)),
            "{why}: {err}"
        );
        assert_eq!(a.contacts(), before, "{why}: nothing changed");
    }
    assert!(matches!(
        a.rename_contact("Nobody", "Robert", &mut os_rng()),
        Err(ProfileError::UnknownContact(_))
    ));

    let renamed = a.rename_contact("Bob", " Robert ", &mut os_rng()).unwrap();
    assert_eq!(renamed.name, "Robert");
    assert!(renamed.verified, "the verified mark stays");
    assert_eq!(renamed.public, before[0].public);
    assert!(matches!(
        a.contact("Bob"),
        Err(ProfileError::UnknownContact(_))
    ));
    let texts: Vec<String> = a
        .conversation("Robert")
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["hello"]);
    drop(a);
    let a = Profile::open(&tmp.path().join("a"), "pass phrase").unwrap();
    assert_eq!(a.contact("Robert").unwrap().public, bob.public());
    assert_eq!(a.contacts().len(), 2);
}
