//! Drive bundles, as a file someone hands over: made-up bytes; a real
//! bundle with bytes changed, cut or added; and a bundle a hostile contact
//! sealed properly around made-up frames (both of a pair hold the key).
//! Reading must never panic, and must yield only the messages the maker
//! put in, in order; a changed bundle never reads as whole; a sealed one
//! reads whole only if its frames are exactly its metadata and records,
//! and then yields every record in them.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{
    bundle_contact, BundleMeta, BundleReader, BundleWriter, Contact, GroupId, Identity, Kind,
    Message, BUNDLE_HEADER_LEN,
};

struct World {
    /// The maker, and the reader as the maker's contact.
    maker: Identity,
    for_reader: Contact,
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
            let m = Message::create(
                &maker,
                &group,
                1_700_000_000_000 + i,
                Kind::TEXT,
                &body,
                rng,
            )
            .unwrap();
            if let Some(frame) = writer.push(&group.id, &m) {
                bundle.extend_from_slice(&frame);
            }
            messages.push((group.id, m));
        }
        bundle.extend_from_slice(&writer.finish());
        let contacts = vec![
            reader.contact(&other.public()).unwrap(),
            reader.contact(&maker.public()).unwrap(),
        ];
        World {
            maker,
            for_reader,
            contacts,
            bundle,
            messages,
        }
    })
}

/// Reads `bytes` as the importer does: the header, then length-prefixed
/// frames. Returns the messages and whether the bundle read whole.
fn read(bytes: &[u8], contacts: &[Contact]) -> (Vec<(GroupId, Message)>, bool) {
    let (messages, _, whole) = read_meta(bytes, contacts);
    (messages, whole)
}

/// [`read`], with the metadata the first frame gave.
fn read_meta(
    bytes: &[u8],
    contacts: &[Contact],
) -> (Vec<(GroupId, Message)>, Option<BundleMeta>, bool) {
    let mut out = Vec::new();
    let Some((header, mut rest)) = bytes.split_first_chunk::<BUNDLE_HEADER_LEN>() else {
        return (out, None, false);
    };
    let Ok(Some(maker)) = bundle_contact(header, contacts) else {
        return (out, None, false);
    };
    let mut reader = BundleReader::new(header, maker);
    while let Some((prefix, after)) = rest.split_first_chunk::<4>() {
        let Ok(len) = BundleReader::frame_len(*prefix) else {
            return (out, reader.meta(), false);
        };
        if after.len() < len {
            return (out, reader.meta(), false);
        }
        match reader.open(&after[..len]) {
            Ok(messages) => out.extend(messages),
            Err(_) => return (out, reader.meta(), false),
        }
        rest = &after[len..];
    }
    (out, reader.meta(), reader.is_done() && rest.is_empty())
}

/// A record as a bundle's frame holds it: group id, length, message.
fn record(group: &GroupId, message: &Message) -> Vec<u8> {
    let bytes = message.as_bytes();
    let mut out = group.0.to_vec();
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// A hostile contact's bundle: `data` cut into frames (each after a
/// two-byte length), sealed as the maker would seal them. With `meta`,
/// the first frame starts with well-formed metadata, so the records after
/// it are reached at once.
fn sealed(w: &World, data: &[u8], meta: bool) {
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut rest = data;
    while let Some((len, after)) = rest.split_first_chunk::<2>() {
        let len = (u16::from_be_bytes(*len) as usize).min(after.len());
        frames.push(after[..len].to_vec());
        rest = &after[len..];
    }
    const CREATED: u64 = 1_700_000_000_000;
    if meta {
        let mut first = vec![1u8];
        first.extend_from_slice(&w.maker.public().sign);
        first.extend_from_slice(&CREATED.to_be_bytes());
        match frames.first_mut() {
            Some(f) => {
                first.extend_from_slice(f);
                *f = first;
            }
            None => frames.push(first),
        }
    }
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let rng = &mut ChaCha20Rng::seed_from_u64(7);
    let bundle = strand_sync::fuzzing::bundle_sealed(&w.maker, &w.for_reader, &refs, rng);
    let (messages, got_meta, whole) = read_meta(&bundle, &w.contacts);
    // What the frames hold after the metadata, and the records read.
    let contents: Vec<u8> = frames
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.get(if i == 0 { 41 } else { 0 }..).unwrap_or_default())
        .copied()
        .collect();
    let records: Vec<u8> = messages.iter().flat_map(|(g, m)| record(g, m)).collect();
    assert!(
        contents.starts_with(&records),
        "a sealed bundle yielded a message its frames do not hold"
    );
    if let Some(m) = got_meta {
        let first = &frames[0];
        assert!(
            first.len() >= 41 && first[0] == 1,
            "metadata read from a short or unknown first frame"
        );
        assert_eq!(
            m.maker[..],
            first[1..33],
            "the maker read is not the one written"
        );
        assert_eq!(
            m.created.to_be_bytes()[..],
            first[33..41],
            "the time read is not the one written"
        );
    }
    if whole {
        assert!(
            got_meta.is_some(),
            "a bundle read whole without its metadata"
        );
        assert_eq!(
            records, contents,
            "a bundle read whole, but left part of its frames unread"
        );
    }
    if meta && frames.len() == 1 && frames[0].len() == 41 {
        assert!(
            whole && messages.is_empty(),
            "a bundle of metadata alone did not read whole"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let _ = read(data, &w.contacts);
    // A hostile contact's bundle, sealed around `data`.
    if let Some((&how, rest)) = data.split_first() {
        if how % 4 == 3 {
            sealed(w, rest, how & 4 != 0);
            return;
        }
    }
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
    match how % 4 {
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
