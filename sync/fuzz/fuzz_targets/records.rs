//! The bodies of records a contact writes and a device reads: file
//! manifests, timers, reach records, group epochs (a WELCOME), chosen
//! names, carrying notices, mailbox records and pairing codes. Reading
//! must never panic, and what reads must read the same again once
//! written back.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{
    decode_carrying, decode_chosen_name, decode_mailbox, decode_mailbox_code,
    decode_mailbox_contacts, decode_timer, encode_carrying, encode_chosen_name, encode_mailbox,
    encode_mailbox_code, encode_mailbox_contacts, encode_timer, Epoch, Identity, Manifest,
    PublicIdentity, Reach,
};

fn owner() -> &'static PublicIdentity {
    static OWNER: OnceLock<PublicIdentity> = OnceLock::new();
    OWNER.get_or_init(|| {
        Identity::generate("owner", &mut ChaCha20Rng::seed_from_u64(5))
            .unwrap()
            .public()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            if let Ok(m) = Manifest::decode(body) {
                assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
            }
        }
        1 => {
            if let Ok(t) = decode_timer(body) {
                assert_eq!(decode_timer(&encode_timer(t).unwrap()).unwrap(), t);
            }
        }
        2 => {
            if let Ok(r) = Reach::decode(body) {
                assert_eq!(Reach::decode(&r.encode()).unwrap(), r);
            }
        }
        3 => {
            if let Ok(e) = Epoch::decode(body) {
                assert_eq!(Epoch::decode(&e.encode()).unwrap().encode(), e.encode());
            }
        }
        4 => {
            if let Some(name) = decode_chosen_name(body) {
                let again = encode_chosen_name(&name).unwrap();
                assert_eq!(decode_chosen_name(&again).as_deref(), Some(name.as_str()));
            }
        }
        5 => {
            if let Ok(on) = decode_carrying(body) {
                assert_eq!(decode_carrying(&encode_carrying(on)), Ok(on));
            }
        }
        6 => {
            if let Ok(Some((invite, proof))) = decode_mailbox(body, owner()) {
                let again = encode_mailbox(Some((&invite, &proof)));
                assert!(decode_mailbox(&again, owner()).unwrap().is_some());
            }
            if let Ok(contacts) = decode_mailbox_contacts(body) {
                let again = encode_mailbox_contacts(&contacts);
                assert_eq!(decode_mailbox_contacts(&again).unwrap(), contacts);
            }
        }
        _ => {
            if let Ok(code) = std::str::from_utf8(body) {
                if let Ok((invite, proof)) = decode_mailbox_code(code) {
                    let again = encode_mailbox_code(&invite, &proof);
                    assert!(decode_mailbox_code(&again).is_ok());
                }
            }
        }
    }
});
