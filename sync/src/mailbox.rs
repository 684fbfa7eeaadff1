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

use crate::identity::PublicIdentity;
use crate::invite::Invite;

/// Most contacts one [`Kind::MAILBOX_CONTACTS`](crate::Kind::MAILBOX_CONTACTS)
/// record lists (64 bytes each).
pub const MAX_MAILBOX_CONTACTS: usize = 4096;

/// Why a mailbox record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    /// Not a record of its kind.
    #[error("not a mailbox record: {0}")]
    Malformed(&'static str),
}

/// The body of a [`Kind::MAILBOX`](crate::Kind::MAILBOX) record: the
/// mailbox's invite, or nothing (no mailbox any more).
pub fn encode_mailbox(mailbox: Option<&Invite>) -> Vec<u8> {
    mailbox.map(Invite::to_bytes).unwrap_or_default()
}

/// Reads a [`Kind::MAILBOX`](crate::Kind::MAILBOX) body; the invite's
/// signature is checked.
pub fn decode_mailbox(body: &[u8]) -> Result<Option<Invite>, MailboxError> {
    if body.is_empty() {
        return Ok(None);
    }
    Invite::from_bytes(body)
        .map(Some)
        .map_err(|_| MailboxError::Malformed("not a valid invite"))
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
        let invite = m.invite();
        let body = encode_mailbox(Some(&invite));
        assert_eq!(decode_mailbox(&body).unwrap().unwrap().public, m.public());
        assert_eq!(decode_mailbox(&encode_mailbox(None)), Ok(None));
        let mut bad = body.clone();
        bad[10] ^= 1;
        assert!(decode_mailbox(&bad).is_err());

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
