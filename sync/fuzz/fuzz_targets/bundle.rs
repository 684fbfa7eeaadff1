//! Drive bundles, as a file someone hands over: made-up bytes, and a real
//! bundle with bytes changed, cut or added. Reading must never panic, and
//! must yield only the messages the maker put in, in order; a changed
//! bundle never reads as whole.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{
    bundle_contact, BundleReader, BundleWriter, Contact, GroupId, Identity, Kind, Message,
    BUNDLE_HEADER_LEN,
};

struct World {
    /// The reader's contacts: the maker, and someone else.
    contacts: Vec<Contact>,
    /// A real bundle from the maker, and what it holds.
    bundle: Vec<u8>,
    messages: Vec<(GroupId, Message)>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rng = &mut ChaCha20Rng::seed_from_u64(3);
        let maker = Identity::generate("maker", rng).unwrap();
        let reader = Identity::generate("reader", rng).unwrap();
        let other = Identity::generate("other", rng).unwrap();
        let for_reader = maker.contact(&reader.public()).unwrap();
        let group = for_reader.direct_group().clone();
        let (mut writer, header) = BundleWriter::new(&maker, &for_reader, 1_700_000_000_000, rng);
        let mut bundle = header.to_vec();
        let mut messages = Vec::new();
        // Enough to fill more than one frame.
        for i in 0..40u64 {
            let body = vec![b'a' + (i % 26) as u8; 2000 + i as usize * 50];
            let m = Message::create(&maker, &group, 1_700_000_000_000 + i, Kind::TEXT, &body, rng)
                .unwrap();
            if let Some(frame) = writer.push(&group.id, &m) {
                bundle.extend_from_slice(&frame);
            }
            messages.push((group.id, m));
        }
        bundle.extend_from_slice(&writer.finish());
        World {
            contacts: vec![
                reader.contact(&other.public()).unwrap(),
                reader.contact(&maker.public()).unwrap(),
            ],
            bundle,
            messages,
        }
    })
}

/// Reads `bytes` as the importer does: the header, then length-prefixed
/// frames. Returns the messages and whether the bundle read whole.
fn read(bytes: &[u8], contacts: &[Contact]) -> (Vec<(GroupId, Message)>, bool) {
    let mut out = Vec::new();
    let Some((header, mut rest)) = bytes.split_first_chunk::<BUNDLE_HEADER_LEN>() else {
        return (out, false);
    };
    let Ok(Some(maker)) = bundle_contact(header, contacts) else {
        return (out, false);
    };
    let mut reader = BundleReader::new(header, maker);
    while let Some((prefix, after)) = rest.split_first_chunk::<4>() {
        let Ok(len) = BundleReader::frame_len(*prefix) else {
            return (out, false);
        };
        if after.len() < len {
            return (out, false);
        }
        match reader.open(&after[..len]) {
            Ok(messages) => out.extend(messages),
            Err(_) => return (out, false),
        }
        rest = &after[len..];
    }
    (out, reader.is_done() && rest.is_empty())
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let _ = read(data, &w.contacts);
    // The real bundle, changed as `data` says: a byte flipped, the end cut,
    // or bytes added at the end.
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let mut changed = w.bundle.clone();
    let at = rest
        .get(..4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize % changed.len())
        .unwrap_or(0);
    match how % 3 {
        0 => changed[at] ^= how | 1,
        1 => changed.truncate(at),
        _ if rest.is_empty() => return,
        _ => changed.extend_from_slice(rest),
    }
    let (messages, whole) = read(&changed, &w.contacts);
    assert!(
        messages.len() <= w.messages.len() && messages == w.messages[..messages.len()],
        "a changed bundle yielded messages the maker did not put in"
    );
    assert!(!whole, "a changed bundle read whole");
});
