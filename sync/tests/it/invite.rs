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
    // 7 + ceil(83 bytes * 8 / 5) characters for a 13-byte name.
    assert_eq!(text.len(), 7 + (66 + 13 + 4) * 8_usize.div_ceil(1) / 5 + 1);
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
    let mut v2 = good.clone();
    v2[0] = 2;
    assert_eq!(Invite::from_bytes(&resum(v2)), Err(InviteError::Version(2)));
    let mut ctrl = good.clone();
    ctrl[66] = b'\n';
    assert!(matches!(
        Invite::from_bytes(&resum(ctrl)),
        Err(InviteError::Name(_))
    ));
    let mut zero_dh = good.clone();
    zero_dh[33..65].fill(0);
    assert_eq!(
        Invite::from_bytes(&resum(zero_dh)),
        Err(InviteError::BadKey)
    );
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
