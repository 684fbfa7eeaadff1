//! Invite codes.

use strand_sync::{Identity, Invite, InviteError, INVITE_PREFIX};

use crate::common::rng;

fn alice() -> Identity {
    Identity::generate("Alice Liddell", &mut rng(1)).unwrap()
}

#[test]
fn text_and_bytes_round_trip() {
    let invite = alice().invite();
    let text = invite.to_text();
    assert!(text.starts_with(INVITE_PREFIX));
    // 7 + ceil(147 bytes * 8 / 5) characters for a 13-byte name.
    assert_eq!(text.len(), 7 + ((66 + 13 + 64 + 4) * 8_usize).div_ceil(5));
    assert_eq!(Invite::from_text(&text).unwrap(), invite);
    assert_eq!(Invite::from_bytes(&invite.to_bytes()).unwrap(), invite);
    assert_eq!(text.parse::<Invite>().unwrap(), invite);
}

#[test]
fn wrapped_spaced_or_upper_case_codes_are_accepted() {
    let invite = alice().invite();
    let text = invite.to_text();
    let wrapped: String = text
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            if i > 0 && i % 20 == 0 {
                vec!['\n', c]
            } else {
                vec![c]
            }
        })
        .collect();
    assert_eq!(
        Invite::from_text(&format!("  {wrapped}  ")).unwrap(),
        invite
    );
    assert_eq!(Invite::from_text(&text.to_uppercase()).unwrap(), invite);
    let dashed = format!("{}-{}", &text[..30], &text[30..]);
    assert_eq!(Invite::from_text(&dashed).unwrap(), invite);
}

/// What begins as an invite is what `from_text` does not refuse for its
/// prefix, however long the rest: one rule for QR readers and the parser.
#[test]
fn an_invite_is_told_by_its_beginning_as_it_is_read() {
    let text = alice().invite().to_text();
    for begins in [
        text.clone(),
        format!(" {text}"),
        text.to_uppercase(),
        "STRAND-1 ABC".to_owned(),
        format!("{text}{}", "a".repeat(10_000)),
    ] {
        assert!(Invite::begins_text(&begins), "{begins:.40}");
        assert!(!matches!(
            Invite::from_text(&begins),
            Err(InviteError::Prefix)
        ));
    }
    for other in [
        "strand".to_owned(),
        "https://example.org".to_owned(),
        "STRAND-SAFETY-1:123".to_owned(),
        "7".repeat(7089),
        String::new(),
    ] {
        assert!(!Invite::begins_text(&other), "{other:.40}");
        assert!(
            matches!(Invite::from_text(&other), Err(InviteError::Prefix)),
            "{other:.40}"
        );
    }
}

#[test]
fn every_single_character_change_is_refused() {
    let text = alice().invite().to_text();
    let alphabet = "abcdefghijklmnopqrstuvwxyz234567";
    for i in INVITE_PREFIX.len()..text.len() {
        for c in alphabet.chars() {
            let mut changed: Vec<char> = text.chars().collect();
            if changed[i] == c {
                continue;
            }
            changed[i] = c;
            let changed: String = changed.into_iter().collect();
            assert!(
                Invite::from_text(&changed).is_err(),
                "accepted a change at {i} to {c}"
            );
        }
    }
}

#[test]
fn every_bit_flip_in_the_bytes_is_refused() {
    let bytes = alice().invite().to_bytes();
    for i in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        assert!(
            Invite::from_bytes(&b).is_err(),
            "accepted a flip of bit {i}"
        );
    }
}

#[test]
fn truncated_and_extended_codes_are_refused() {
    let text = alice().invite().to_text();
    for len in 0..text.len() {
        assert!(
            Invite::from_text(&text[..len]).is_err(),
            "accepted a prefix of {len}"
        );
    }
    assert!(Invite::from_text(&format!("{text}a")).is_err());
    assert!(Invite::from_text(&format!("{text}aaaaaaaa")).is_err());
    let bytes = alice().invite().to_bytes();
    for len in 0..bytes.len() {
        assert!(Invite::from_bytes(&bytes[..len]).is_err());
    }
}

#[test]
fn errors_say_what_is_wrong() {
    assert_eq!(Invite::from_text("hello there"), Err(InviteError::Prefix));
    assert_eq!(Invite::from_text("strand1!!!!"), Err(InviteError::Encoding));
    let text = alice().invite().to_text();
    let mut typo: Vec<char> = text.chars().collect();
    let i = typo.len() / 2;
    typo[i] = if typo[i] == 'a' { 'b' } else { 'a' };
    let typo: String = typo.into_iter().collect();
    let err = Invite::from_text(&typo).unwrap_err();
    assert_eq!(err, InviteError::Checksum);
    assert!(err.to_string().contains("typo"));
    assert!(Invite::from_text(&"a".repeat(10_000)).is_err());
}

#[test]
fn a_valid_checksum_over_bad_content_is_still_refused() {
    // Re-checksummed invites that break a rule: version, name, key.
    let good = alice().invite().to_bytes();
    let resum = |mut body: Vec<u8>| {
        let n = body.len();
        body.truncate(n - 4);
        let sum = blake2_checksum(&body);
        body.extend_from_slice(&sum);
        body
    };
    let mut v3 = good.clone();
    v3[0] = 3;
    assert_eq!(Invite::from_bytes(&resum(v3)), Err(InviteError::Version(3)));
    let mut ctrl = good.clone();
    ctrl[66] = b'\n';
    assert!(matches!(
        Invite::from_bytes(&resum(resign(ctrl))),
        Err(InviteError::Name(_))
    ));
    let mut zero_dh = good.clone();
    zero_dh[33..65].fill(0);
    assert_eq!(
        Invite::from_bytes(&resum(resign(zero_dh))),
        Err(InviteError::BadKey)
    );
}

/// The secret behind [`alice`]'s signing key, for tests that sign bytes
/// the public API would never produce.
fn alice_signing_key() -> ed25519_dalek::SigningKey {
    let secret = alice().to_secret_bytes();
    ed25519_dalek::SigningKey::from_bytes(secret[..32].try_into().unwrap())
}

/// Signs an invite's bytes again as Alice (the checksum is left stale).
fn resign(mut invite: Vec<u8>) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let n = invite.len();
    let body = invite[..n - 68].to_vec();
    let sig = alice_signing_key().sign(&[b"strand/v2/invite".as_slice(), &body].concat());
    invite[n - 68..n - 4].copy_from_slice(&sig.to_bytes());
    invite
}

/// Mallory keeps Alice's signing key (so the fingerprint Bob
/// checks is Alice's) and puts in her own X25519 key (so she completes
/// the handshake and reads everything). Version 1 invites accepted that;
/// the signature refuses it, with or without a good checksum.
#[test]
fn a_swapped_x25519_key_is_refused() {
    let alice = alice().invite();
    let mallory = Identity::generate("Mallory", &mut rng(66)).unwrap();
    let forged = Invite {
        public: strand_sync::PublicIdentity {
            sign: alice.public.sign,
            dh: mallory.public().dh,
        },
        ..alice.clone()
    };
    let err = Invite::from_text(&forged.to_text()).unwrap_err();
    assert_eq!(err, InviteError::Signature);
    assert!(err.to_string().contains("forged"), "{err}");
    // Nor may she re-sign with her own key under Alice's.
    let mut resigned = forged.clone();
    resigned.signature = mallory.invite().signature;
    assert_eq!(
        Invite::from_bytes(&resigned.to_bytes()),
        Err(InviteError::Signature)
    );
    // The name and the reach section are covered too.
    let renamed = Invite {
        name: "Alice (new phone)".into(),
        ..alice.clone()
    };
    assert_eq!(
        Invite::from_bytes(&renamed.to_bytes()),
        Err(InviteError::Signature)
    );
    let mut with_reach = alice.clone();
    with_reach.reach = Some(strand_sync::Reach {
        offers: Vec::new(),
        ..reach(1)
    });
    assert_eq!(
        Invite::from_bytes(&with_reach.to_bytes()),
        Err(InviteError::Signature)
    );
}

/// A version 1 code (no signature) is refused with advice, even
/// when it is otherwise perfect.
#[test]
fn a_version_1_invite_is_refused_with_advice() {
    let a = alice().public();
    let mut v1 = vec![1u8];
    v1.extend_from_slice(&a.sign);
    v1.extend_from_slice(&a.dh);
    v1.push(5);
    v1.extend_from_slice(b"Alice");
    let sum = blake2_checksum(&v1);
    v1.extend_from_slice(&sum);
    let err = Invite::from_bytes(&v1).unwrap_err();
    assert_eq!(err, InviteError::Unsigned);
    assert!(err.to_string().contains("ask"), "{err}");
}

fn blake2_checksum(body: &[u8]) -> [u8; 4] {
    use blake2::{Blake2s256, Digest};
    let mut h = Blake2s256::new();
    h.update(b"strand/v1/invite");
    h.update(body);
    h.finalize()[..4].try_into().unwrap()
}

#[test]
fn names_are_checked() {
    let mut r = rng(2);
    assert!(Identity::generate("", &mut r).is_err());
    assert!(Identity::generate(" padded", &mut r).is_err());
    assert!(Identity::generate(&"x".repeat(65), &mut r).is_err());
    assert!(Identity::generate("tab\there", &mut r).is_err());
    assert!(Identity::generate("Zoë 🌿", &mut r).is_ok());
    assert!(Identity::generate("Bob ❤\u{fe0f}", &mut r).is_ok());
    // Invisible and direction-changing characters make two
    // different names look the same.
    for bad in [
        "Alice\u{202e}ecila",
        "Al\u{200b}ice",
        "Ali\u{200d}ce",
        "\u{2066}Bob\u{2069}",
        "Bob\u{00ad}",
        "Bob\u{feff}",
        "\u{3164}",
        "Bo\u{2028}b",
        "Bob\u{e0041}",
        "Bob\u{fe00}",
        "Bob\u{fe0f}",
    ] {
        let err = Identity::generate(bad, &mut r).unwrap_err();
        assert!(err.to_string().contains("invisible"), "{bad:?}: {err}");
        assert!(strand_sync::check_name(bad).is_err());
    }
    // A blank shown as a space at an end, as a space there is refused.
    for bad in ["Bob\u{2800}", "\u{2800}Bob"] {
        let err = Identity::generate(bad, &mut r).unwrap_err();
        assert!(err.to_string().contains("blank"), "{bad:?}: {err}");
    }
    assert!(Identity::generate("Bo\u{2800}b", &mut r).is_ok());
}

/// An invite whose name hides characters is refused, though
/// signed; an identity stored under such a name before still loads.
#[test]
fn an_invite_with_an_invisible_name_is_refused() {
    let good = alice().invite().to_bytes();
    // "Alice Liddell" → "Alice\u{200b}Lidde" (same byte length).
    let mut b = good.clone();
    b[66..66 + 13].copy_from_slice("Alice\u{200b}Lidde".as_bytes());
    let mut b = resign(b);
    let n = b.len();
    let sum = blake2_checksum(&b[..n - 4]);
    b[n - 4..].copy_from_slice(&sum);
    assert!(matches!(Invite::from_bytes(&b), Err(InviteError::Name(_))));
    let a = alice();
    assert!(Identity::from_secret_bytes(&a.to_secret_bytes(), "Old\u{200b}Name").is_ok());
}

#[test]
fn adding_yourself_is_refused() {
    let a = alice();
    assert!(a.contact(&a.public()).is_err());
}

#[test]
fn identity_secret_bytes_round_trip() {
    let a = alice();
    let b = Identity::from_secret_bytes(&a.to_secret_bytes(), a.name()).unwrap();
    assert_eq!(a.public(), b.public());
}

fn reach(relays: usize) -> strand_sync::Reach {
    strand_sync::Reach {
        seed: [7; 32],
        relays: (0..relays).map(|i| vec![i as u8 + 1; 100]).collect(),
        offers: vec![vec![9; 40]],
    }
}

/// An invite can say where its maker is reached through relays,
/// for contacts who never shared a LAN with them; the section is checked
/// like the rest.
#[test]
fn an_invite_carries_relays_when_asked() {
    let plain = alice().invite();
    let with = alice().invite_with_reach(&reach(2));
    let got = Invite::from_text(&with.to_text()).unwrap();
    let r = got.reach.as_ref().expect("the reach section");
    assert_eq!(r.seed, [7; 32]);
    assert_eq!(r.relays.len(), 2);
    assert!(r.offers.is_empty(), "offers go in records, not invites");
    assert_eq!(got.public, plain.public);
    // No relays: the seed alone (a relay both use later finds them).
    let seed_only = Invite::from_bytes(&alice().invite_with_reach(&reach(0)).to_bytes()).unwrap();
    assert!(seed_only.reach.as_ref().unwrap().relays.is_empty());
    assert_eq!(seed_only.reach.unwrap().seed, [7; 32]);
    // Too many relays for a QR code: as many as fit.
    let big = alice().invite_with_reach(&reach(8));
    let n = big.reach.as_ref().unwrap().relays.len();
    assert!((1..8).contains(&n), "{n} relays kept");
    assert!(big.to_bytes().len() <= 66 + 64 + 2 + strand_sync::MAX_INVITE_REACH_LEN + 64 + 4);
    assert_eq!(Invite::from_bytes(&big.to_bytes()).unwrap(), big);
    // Every truncation and bit flip is refused.
    let bytes = with.to_bytes();
    for len in 0..bytes.len() {
        assert!(Invite::from_bytes(&bytes[..len]).is_err(), "prefix {len}");
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        assert!(Invite::from_bytes(&b).is_err(), "flip at {i}");
    }
}

#[test]
fn a_bad_reach_section_is_refused_even_with_a_good_checksum() {
    let plain = alice().invite().to_bytes();
    let body = &plain[..plain.len() - 68];
    // Signed and checksummed, so only the section's own checks can refuse.
    let with_section = |section: &[u8]| {
        let mut b = body.to_vec();
        b.extend_from_slice(section);
        b.extend_from_slice(&[0; 68]);
        let mut b = resign(b);
        let n = b.len();
        let sum = blake2_checksum(&b[..n - 4]);
        b[n - 4..].copy_from_slice(&sum);
        b
    };
    // A length past the end, a length past the limit, a record that does
    // not decode, one stray byte.
    assert!(Invite::from_bytes(&with_section(&[50, 0, 1])).is_err());
    let mut huge = vec![0xff, 0xff];
    huge.extend(vec![0; 100]);
    assert!(Invite::from_bytes(&with_section(&huge)).is_err());
    assert!(Invite::from_bytes(&with_section(&[3, 0, 9, 9, 9])).is_err());
    assert!(Invite::from_bytes(&with_section(&[1])).is_err());
    let section = |r: &strand_sync::Reach| {
        let bytes = r.encode();
        let mut s = (bytes.len() as u16).to_le_bytes().to_vec();
        s.extend_from_slice(&bytes);
        s
    };
    // Relay offers: a node reserves on a contact's, so one scanned from a
    // code anyone can post would have it hold connections to the hosts
    // the code names. An invite's section has none (§2.1).
    let offers = reach(1);
    assert!(!offers.offers.is_empty());
    assert!(Invite::from_bytes(&with_section(&section(&offers))).is_err());
    let good = strand_sync::Reach {
        offers: Vec::new(),
        ..reach(1)
    };
    assert!(Invite::from_bytes(&with_section(&section(&good)))
        .unwrap()
        .reach
        .is_some());
}

/// Both sides compute the same safety number, and it changes
/// when either key of either side does.
#[test]
fn safety_numbers_match_both_ways_and_cover_both_keys() {
    use strand_sync::{safety_number, PublicIdentity};
    let a = alice().public();
    let b = Identity::generate("Bob", &mut rng(2)).unwrap().public();
    let m = Identity::generate("Mallory", &mut rng(66))
        .unwrap()
        .public();
    let n = safety_number(&a, &b);
    assert_eq!(n, safety_number(&b, &a));
    assert_eq!(n.digits().len(), 60);
    assert!(n.digits().chars().all(|c| c.is_ascii_digit()));
    assert_eq!(n.groups().len(), 12);
    assert_eq!(n.to_string().len(), 60 + 11);
    for swapped in [
        PublicIdentity {
            sign: a.sign,
            dh: m.dh,
        },
        PublicIdentity {
            sign: m.sign,
            dh: a.dh,
        },
    ] {
        assert_ne!(safety_number(&swapped, &b), n);
    }
    assert!(n.matches(&n.to_string()));
    assert!(n.matches(&n.qr_payload()));
    assert!(n.matches(&format!("  {}  ", n.digits())));
    assert!(!n.matches(&safety_number(&a, &m).to_string()));
    assert!(!n.matches(""));
    assert!(!n.matches(&n.digits()[..59]));
    assert_eq!(strand_strip(&n.qr_payload()), Some(n.clone()));
    assert_eq!(strand_strip(&n.to_string()), Some(n.clone()));
    assert_eq!(strand_strip(&n.digits()[..59]), None);
    assert_eq!(strand_strip(&format!("{}x", &n.digits()[..59])), None);
    assert_eq!(strand_strip("strand-invite"), None);
}

fn strand_strip(text: &str) -> Option<strand_sync::SafetyNumber> {
    strand_sync::SafetyNumber::read(text)
}
