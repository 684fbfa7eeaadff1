//! Message decoding and full validation against a real group: made-up
//! bytes (which never carry a member's signature), and a member's own
//! messages (as an insider can sign them: any kind, any claimed time and
//! expiry, any body) read back at a fixed time, which must be accepted
//! exactly when they are timely, expire only as their kind may (never a
//! kind that lasts; a text or file a timer after its time) and, for a
//! text, are UTF-8. An honest writer writes exactly those that may.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::limits::MAX_CLOCK_SKEW;
use strand_sync::{Group, Identity, Kind, Message, Time, MAX_TIMER, MIN_TIMER};

const NOW: Time = 1_700_000_000_000;
const MINUTE: Time = 60_000;

/// Alice, and her group with Bob.
fn world() -> &'static (Identity, Group) {
    static WORLD: OnceLock<(Identity, Group)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let alice = Identity::generate("alice", &mut rng).unwrap();
        let bob = Identity::generate("bob", &mut rng).unwrap();
        let group = alice.contact(&bob.public()).unwrap().direct_group().clone();
        (alice, group)
    })
}

fuzz_target!(|data: &[u8]| {
    let (alice, group) = world();
    if let Ok(m) = Message::decode(data.to_vec()) {
        let _ = m.validate(group, NOW);
        let _ = (m.id(), m.key(), m.author(), m.kind());
    }
    // The first byte odd: the rest is a member's message to write.
    if data.len() < 6 || data[0] & 1 == 0 {
        return;
    }
    let (head, body) = data.split_at(6);
    // Up to about 22 days either side of the reader's clock.
    let offset = i64::from(i16::from_be_bytes([head[1], head[2]])) * MINUTE as i64;
    let time = NOW.wrapping_add_signed(offset);
    let kind = Kind(head[3]);
    let expires = (head[4] & 1 != 0).then(|| time + u64::from(head[5]) * MINUTE);
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(head[0]));
    let m = match Message::forge_expiring(alice, group, time, expires, kind, body, &mut rng) {
        Ok(m) => m,
        Err(e) => {
            // A member's small message is refused only for its expiry.
            assert_eq!(expires, Some(time), "{e:?}");
            return;
        }
    };
    // What an honest writer may write: a kind that lasts never expires, a
    // text or file lasts a timer.
    let may_expire = expires.is_none_or(|e| {
        !kind.lasts() && (!kind.follows_timer() || (MIN_TIMER..=MAX_TIMER).contains(&(e - time)))
    });
    let honest = Message::create_expiring(alice, group, time, expires, kind, body, &mut rng);
    assert_eq!(honest.is_ok(), may_expire, "{honest:?}");
    let read = Message::decode(m.as_bytes().to_vec()).expect("a member's message decodes");
    assert_eq!(read.id(), m.id());
    let verdict = read.validate(group, NOW);
    let timely = time <= NOW + MAX_CLOCK_SKEW && expires.is_none_or(|e| e > NOW);
    let readable = kind != Kind::TEXT || std::str::from_utf8(body).is_ok();
    assert_eq!(
        verdict.is_ok(),
        timely && may_expire && readable,
        "{verdict:?}"
    );
    if let Ok(plain) = verdict {
        assert_eq!(plain, body);
    }
});
