//! Property tests: any two random logs converge to their union.

use proptest::prelude::*;
use strand_sync::harness::Pair;
use strand_sync::{Config, Kind, Message, WriteStore};

use crate::common::{keys, rng};

/// Where each of `n` messages lives: only on a, only on b, or on both.
fn placement() -> impl Strategy<Value = Vec<(u8, u16)>> {
    prop::collection::vec((0u8..3, 0u16..400), 0..160)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_two_logs_converge_to_their_union(
        placement in placement(),
        small_packets in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let mut pair = Pair::new(seed);
        if small_packets {
            pair.a.config = Config {
            max_packet: 512,
            ..Default::default()
        };
            pair.b.config = Config {
            max_packet: 512,
            ..Default::default()
        };
            pair.mtu = 64;
        }
        let group = pair.a.group().clone();
        let mut r = rng(seed);
        let mut union = std::collections::BTreeSet::new();
        for (i, (place, t)) in placement.iter().enumerate() {
            // Timestamps collide often (0..400 s): ties are broken by id.
            let time = pair.now - 1_000_000 + u64::from(*t) * 1000;
            let author = if i % 2 == 0 { &pair.a.identity } else { &pair.b.identity };
            let m = Message::create(author, &group, time, Kind::TEXT, format!("{i}").as_bytes(), &mut r).unwrap();
            union.insert(m.key());
            if *place != 1 { pair.a.store.insert(&group.id, &m).unwrap(); }
            if *place != 0 { pair.b.store.insert(&group.id, &m).unwrap(); }
        }
        pair.connect();
        pair.drive();
        let (a, b) = keys(&pair);
        prop_assert!(pair.a.close_error().is_none(), "{:?}", pair.a.close_error());
        prop_assert!(pair.b.close_error().is_none(), "{:?}", pair.b.close_error());
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a, union.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn hostile_reconciliation_frames_never_panic_or_lose_data(
        items in prop::collection::vec(any::<u8>(), 0..200),
        mode in 0u8..5,
    ) {
        // A RECON for the real group, as the reply the responder waits for,
        // with arbitrary range items (biased to plausible mode bytes).
        let (mut b, store, mut a, group, now) = crate::session::responder_awaiting_reply(7);
        let before = store.keys(&group);
        let mut body = group.0.to_vec();
        body.extend_from_slice(&[1 + mode, mode.min(3)]);
        body.extend_from_slice(&items);
        let mut plain = vec![0x01];
        let mut len = body.len() as u64;
        loop {
            let b7 = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 { plain.push(b7); break; }
            plain.push(b7 | 0x80);
        }
        plain.extend_from_slice(&body);
        let packet = a.send_raw_packet(&plain).unwrap();
        let _ = b.handle_input(now, &packet, &store);
        while b.poll_transmit(now, &store).is_some() {}
        let after = store.keys(&group);
        prop_assert_eq!(before, after);
    }

    #[test]
    fn random_plaintext_never_panics_or_loses_data(junk in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut pair = Pair::new(3);
        pair.a.write("kept");
        pair.connect();
        pair.drive();
        let before = pair.b.store.keys(&pair.b.group().id);
        if let Some(packet) = pair.a.session.as_mut().unwrap().send_raw_packet(&junk) {
            pair.inject(strand_sync::harness::Side::A, packet);
        }
        pair.drive();
        // Random plaintext is almost never a valid frame sequence; whatever
        // happens, nothing that was stored is lost.
        let after = pair.b.store.keys(&pair.b.group().id);
        prop_assert!(before.iter().all(|k| after.contains(k)));
    }
}
