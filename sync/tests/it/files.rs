//! Files (PROTOCOL.md §4.2): chunks sync like messages, but a text queued
//! behind a large file is not held up by it, and a chunk altered in transit
//! is refused.

use strand_sync::harness::{Action, Pair, Side};
use strand_sync::{
    chunk_count, file_hash, Event, Kind, Manifest, Message, SessionError, WriteStore, CHUNK_LEN,
};

use crate::common::rng;

/// Writes a file of `size` bytes from Alice: its chunks, then its manifest.
fn write_file(pair: &mut Pair, size: usize) -> (Vec<u8>, Message) {
    let group = pair.a.group().clone();
    let mut r = rng(size as u64);
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let t = pair.now - 60_000;
    let mut chunks = Vec::new();
    for part in data.chunks(CHUNK_LEN) {
        let m = Message::create(&pair.a.identity, &group, t, Kind::CHUNK, part, &mut r).unwrap();
        pair.a.store.insert(&group.id, &m).unwrap();
        chunks.push(m.key());
    }
    assert_eq!(chunks.len(), chunk_count(size as u64));
    let manifest = Manifest {
        name: "interview.wav".into(),
        mime: "audio/wav".into(),
        size: size as u64,
        hash: file_hash(&data),
        chunks,
        preview: None,
    };
    let m = Message::create(
        &pair.a.identity,
        &group,
        t,
        Kind::FILE,
        &manifest.encode(),
        &mut r,
    )
    .unwrap();
    pair.a.store.insert(&group.id, &m).unwrap();
    (data, m)
}

#[test]
fn a_text_is_not_stuck_behind_a_large_file() {
    let mut pair = Pair::new(80);
    pair.rate = Some(2_000_000);
    let (data, manifest) = write_file(&mut pair, 24 * CHUNK_LEN);
    // The text is written after the file: later in the log, and queued
    // after it.
    let text = pair.a.write("did the recording arrive?");
    pair.connect();
    pair.drive();
    assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
    let group = pair.a.group().id;
    assert_eq!(pair.b.store.len(&group), 24 + 2);
    let received: Vec<_> = pair
        .b
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Received { key, .. } => Some(*key),
            _ => None,
        })
        .collect();
    let at = |k| received.iter().position(|r| *r == k).unwrap();
    // The manifest and the text come before the file's bytes.
    assert!(at(text) < 2, "text at {} of {}", at(text), received.len());
    assert!(at(manifest.key()) < 2);
    // And the file put together on Bob's side is the same.
    let m = Manifest::decode(
        &Message::decode(
            pair.b
                .store
                .messages(&group)
                .find(|(k, _)| **k == manifest.key())
                .unwrap()
                .1
                .to_vec(),
        )
        .unwrap()
        .open(pair.b.group())
        .unwrap(),
    )
    .unwrap();
    let mut back = Vec::new();
    for k in &m.chunks {
        let bytes = pair
            .b
            .store
            .messages(&group)
            .find(|(x, _)| *x == k)
            .unwrap()
            .1
            .to_vec();
        back.extend(
            Message::decode(bytes)
                .unwrap()
                .open(pair.b.group())
                .unwrap(),
        );
    }
    assert_eq!(file_hash(&back), m.hash);
    assert_eq!(back, data);
}

#[test]
fn a_chunk_altered_in_transit_is_refused() {
    let mut pair = Pair::new(81);
    let (_, _) = write_file(&mut pair, 3 * CHUNK_LEN);
    // Flip one byte in the middle of the link's first big packet (a
    // chunk): the Noise tag no longer matches.
    let mut flipped = false;
    pair.filter = Some(Box::new(move |side, bytes| {
        if side == Side::A && !flipped && bytes.len() > 8000 {
            let n = bytes.len() / 2;
            bytes[n] ^= 1;
            flipped = true;
        }
        Action::Deliver
    }));
    pair.connect();
    pair.drive();
    assert!(
        matches!(pair.b.close_error(), Some(SessionError::Decrypt)),
        "{:?}",
        pair.b.close_error()
    );
    let group = pair.a.group().id;
    assert!(pair.b.store.len(&group) < 4, "nothing altered was stored");
}
