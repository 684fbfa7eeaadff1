//! Mailbox records (PROTOCOL.md §17.1): how a user's contacts learn the
//! user's mailbox device, and how the mailbox learns whom it carries for.
//!
//! A mailbox is a device the user owns (an old laptop at home) running
//! its own identity, always carrying (§17). The owner tells each contact,
//! in their 1:1 conversation, the mailbox's signed invite
//! ([`Kind::MAILBOX`](crate::Kind::MAILBOX)); each contact then syncs
//! carrying pools with it. The owner tells the mailbox, in theirs, the
//! public keys of the owner's contacts
//! ([`Kind::MAILBOX_CONTACTS`](crate::Kind::MAILBOX_CONTACTS)), so that the
//! mailbox can complete handshakes with them. The mailbox reads nothing:
//! what it holds are envelopes.

use ed25519_dalek::{Signature, Signer};

use crate::identity::{verifying_key, Identity, PublicIdentity};
use crate::invite::Invite;

const PROOF_PREFIX: &[u8] = b"strand/v1/mailbox-of";

/// A mailbox's signature over its owner's keys: the mailbox agreed to be
/// that owner's (so no one can name a third party as their mailbox).
pub type MailboxProof = [u8; 64];

/// The proof that `mailbox` is `owner`'s mailbox.
pub fn mailbox_proof(mailbox: &Identity, owner: &PublicIdentity) -> MailboxProof {
    mailbox
        .signing_key()
        .sign(&[PROOF_PREFIX, &owner.sign, &owner.dh].concat())
        .to_bytes()
}

/// Whether `proof` shows that `mailbox` agreed to be `owner`'s.
pub fn check_mailbox_proof(
    mailbox: &PublicIdentity,
    owner: &PublicIdentity,
    proof: &MailboxProof,
) -> bool {
    verifying_key(&mailbox.sign).is_some_and(|k| {
        k.verify_strict(
            &[PROOF_PREFIX, &owner.sign, &owner.dh].concat(),
            &Signature::from_bytes(proof),
        )
        .is_ok()
    })
}

/// A mailbox's pairing code: its invite and its proof for the owner, as
/// text (`strand mailbox init` prints it, `strand mailbox add` takes it).
pub fn encode_mailbox_code(invite: &Invite, proof: &MailboxProof) -> String {
    format!("{}.{}", invite.to_text(), crate::hex(proof))
}

/// Reads a pairing code from [`encode_mailbox_code`] (the invite's
/// signature checked; the proof is checked against the owner by who
/// pairs).
pub fn decode_mailbox_code(code: &str) -> Result<(Invite, MailboxProof), MailboxError> {
    let (invite, hex) = code.trim().rsplit_once('.').ok_or(MailboxError::Code(
        "a mailbox code ends in .PROOF: use the code `strand mailbox init` printed, not an invite",
    ))?;
    let invite = Invite::from_text(invite)
        .map_err(|_| MailboxError::Code("the code's invite is not valid"))?;
    // Exactly 128 hex digits, of either case: nothing else, not even a
    // sign ("+f", which `u8::from_str_radix` would read as 0x0f).
    let proof: MailboxProof =
        crate::unhex(hex).ok_or(MailboxError::Code("the code's proof is cut or changed"))?;
    Ok((invite, proof))
}

/// Most contacts one [`Kind::MAILBOX_CONTACTS`](crate::Kind::MAILBOX_CONTACTS)
/// record lists (64 bytes each).
pub const MAX_MAILBOX_CONTACTS: usize = 4096;

/// Why a mailbox record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    /// Not a record of its kind.
    #[error("not a mailbox record: {0}")]
    Malformed(&'static str),
    /// Not a mailbox's pairing code.
    #[error("not a mailbox code: {0}")]
    Code(&'static str),
}

/// The body of a [`Kind::MAILBOX`](crate::Kind::MAILBOX) record: the
/// mailbox's proof and invite, or nothing (no mailbox any more).
pub fn encode_mailbox(mailbox: Option<(&Invite, &MailboxProof)>) -> Vec<u8> {
    match mailbox {
        Some((invite, proof)) => [&proof[..], &invite.to_bytes()].concat(),
        None => Vec::new(),
    }
}

/// Reads a [`Kind::MAILBOX`](crate::Kind::MAILBOX) body written by
/// `owner`: the invite's signature and the mailbox's proof for `owner`
/// are checked.
pub fn decode_mailbox(
    body: &[u8],
    owner: &PublicIdentity,
) -> Result<Option<(Invite, MailboxProof)>, MailboxError> {
    if body.is_empty() {
        return Ok(None);
    }
    let (proof, invite) = body
        .split_first_chunk::<64>()
        .ok_or(MailboxError::Malformed("cut short"))?;
    let invite =
        Invite::from_bytes(invite).map_err(|_| MailboxError::Malformed("not a valid invite"))?;
    if !check_mailbox_proof(&invite.public, owner, proof) {
        return Err(MailboxError::Malformed(
            "the mailbox did not agree to be theirs",
        ));
    }
    Ok(Some((invite, *proof)))
}

/// The body of a [`Kind::MAILBOX_CONTACTS`](crate::Kind::MAILBOX_CONTACTS)
/// record: each contact's signing key and key-agreement key.
pub fn encode_mailbox_contacts(contacts: &[PublicIdentity]) -> Vec<u8> {
    let n = contacts.len().min(MAX_MAILBOX_CONTACTS);
    let mut out = Vec::with_capacity(2 + 64 * n);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    for c in &contacts[..n] {
        out.extend_from_slice(&c.sign);
        out.extend_from_slice(&c.dh);
    }
    out
}

/// Reads a [`Kind::MAILBOX_CONTACTS`](crate::Kind::MAILBOX_CONTACTS) body.
pub fn decode_mailbox_contacts(body: &[u8]) -> Result<Vec<PublicIdentity>, MailboxError> {
    let (n, rest) = body
        .split_first_chunk::<2>()
        .ok_or(MailboxError::Malformed("cut short"))?;
    let n = u16::from_be_bytes(*n) as usize;
    if n > MAX_MAILBOX_CONTACTS || rest.len() != 64 * n {
        return Err(MailboxError::Malformed("a wrong length"));
    }
    Ok(rest
        .chunks_exact(64)
        .map(|c| PublicIdentity {
            sign: c[..32].try_into().expect("32 bytes"),
            dh: c[32..].try_into().expect("32 bytes"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let m = Identity::generate("mailbox", &mut rng).unwrap();
        let owner = Identity::generate("owner", &mut rng).unwrap();
        let other = Identity::generate("other", &mut rng).unwrap();
        let invite = m.invite();
        let proof = mailbox_proof(&m, &owner.public());
        let body = encode_mailbox(Some((&invite, &proof)));
        let (back, _) = decode_mailbox(&body, &owner.public()).unwrap().unwrap();
        assert_eq!(back.public, m.public());
        // Named by someone else, or with a proof for someone else: refused.
        assert!(decode_mailbox(&body, &other.public()).is_err());
        let stolen = encode_mailbox(Some((&other.invite(), &proof)));
        assert!(decode_mailbox(&stolen, &owner.public()).is_err());
        assert_eq!(
            decode_mailbox(&encode_mailbox(None), &owner.public()),
            Ok(None)
        );
        let mut bad = body.clone();
        bad[80] ^= 1;
        assert!(decode_mailbox(&bad, &owner.public()).is_err());
        // The pairing code round-trips; a plain invite or a cut code is
        // refused with a reason.
        let code = encode_mailbox_code(&invite, &proof);
        let (i, p) = decode_mailbox_code(&code).unwrap();
        assert_eq!((i.public, p), (m.public(), proof));
        assert!(decode_mailbox_code(&invite.to_text()).is_err());
        assert!(decode_mailbox_code(&code[..code.len() - 2]).is_err());
        // A sign in the proof is no hex digit, though "+f" parses as 0x0f.
        let (head, hex) = code.rsplit_once('.').unwrap();
        assert_eq!(
            decode_mailbox_code(&format!("{head}.+{}", &hex[1..])),
            Err(MailboxError::Code("the code's proof is cut or changed"))
        );

        let people: Vec<PublicIdentity> = (0..3)
            .map(|i| {
                Identity::generate(&format!("p{i}"), &mut rng)
                    .unwrap()
                    .public()
            })
            .collect();
        let body = encode_mailbox_contacts(&people);
        assert_eq!(decode_mailbox_contacts(&body).unwrap(), people);
        assert!(decode_mailbox_contacts(&body[..body.len() - 1]).is_err());
        assert!(decode_mailbox_contacts(&[]).is_err());
        let mut more = body.clone();
        more.push(0);
        assert!(decode_mailbox_contacts(&more).is_err());
    }
}
