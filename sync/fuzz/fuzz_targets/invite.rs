//! Invite codes, as text (pasted) and as bytes (scanned from a QR code).
//! Made-up bytes almost never carry the right checksum, let alone a
//! signature, so the first byte may also ask for the input with its
//! checksum added, or signed by a key (as anyone can sign their own
//! invite): what follows the keys is then read for real.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{fuzzing, Identity, Invite, InviteError};

fn signer() -> &'static Identity {
    static SIGNER: OnceLock<Identity> = OnceLock::new();
    SIGNER.get_or_init(|| Identity::generate("me", &mut ChaCha20Rng::seed_from_u64(4)).unwrap())
}

fn read(bytes: &[u8]) -> Result<Invite, InviteError> {
    let read = Invite::from_bytes(bytes);
    if let Ok(invite) = &read {
        // Whatever decodes must re-encode to the same bytes.
        assert_eq!(invite.to_bytes(), bytes);
        assert_eq!(&Invite::from_text(&invite.to_text()).unwrap(), invite);
    }
    read
}

fuzz_target!(|data: &[u8]| {
    let _ = read(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Invite::from_text(text);
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        1 => {
            let read = read(&fuzzing::invite_checksummed(rest));
            assert!(!matches!(read, Err(InviteError::Checksum)), "{read:?}");
        }
        2 => {
            let read = read(&fuzzing::invite_signed(signer(), rest));
            assert!(
                !matches!(read, Err(InviteError::Checksum | InviteError::Signature)),
                "{read:?}"
            );
            if let Ok(invite) = read {
                assert_eq!(invite.public, signer().public());
            }
        }
        _ => {}
    }
});
