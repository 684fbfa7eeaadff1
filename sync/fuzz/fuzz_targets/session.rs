//! An established session fed hostile input from an authenticated
//! contact: the first byte picks raw wire bytes, a validly encrypted
//! packet with arbitrary plaintext (frames, reconciliation, messages), or
//! a RECON frame for the real group with arbitrary range items.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strand_sync::harness::{Pair, Side};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut pair = Pair::new(4);
    pair.a.write("already here");
    pair.b.write("also here");
    pair.connect();
    pair.drive();
    let before = pair.b.store.keys(&pair.b.group().id);
    let bytes = if mode % 3 == 0 {
        rest.to_vec()
    } else if mode % 3 == 2 {
        let mut body = pair.b.group().id.0.to_vec();
        body.extend_from_slice(rest);
        let mut plain = vec![0x01];
        let mut len = body.len();
        while len >= 0x80 {
            plain.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        plain.push(len as u8);
        plain.extend_from_slice(&body);
        match pair.a.session.as_mut().and_then(|s| s.send_raw_packet(&plain)) {
            Some(p) => p,
            None => return,
        }
    } else {
        match pair.a.session.as_mut().and_then(|s| s.send_raw_packet(rest)) {
            Some(p) => p,
            None => return,
        }
    };
    pair.inject(Side::A, bytes);
    pair.drive();
    // Hostile input may end the session but never loses what was stored.
    let after = pair.b.store.keys(&pair.b.group().id);
    assert!(before.iter().all(|k| after.contains(k)));
});
