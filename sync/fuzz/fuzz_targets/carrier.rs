//! A carrier fed what its contacts write in their carrying pools:
//! envelopes (to carry, for delivery, or offered by header; whole,
//! altered, or made up), requests and acknowledgements, alone or in
//! batches of pool messages taken as the node takes them, with its own
//! messages spreading, notices, expiry, handing out, and its state saved
//! and read back (or read from made-up bytes). It must never panic, never
//! hold more than its budget, count exactly the bytes it holds, and read
//! back exactly what it saved.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use strand_sync::{
    Arrival, Carrier, CarryConfig, Envelope, Group, Identity, Kind, Message, PublicIdentity, Time,
};

const T0: Time = 1_700_000_000_000;
const HOUR: Time = 3_600_000;

struct World {
    /// The carrier.
    me: Identity,
    /// Its contacts.
    peers: Vec<PublicIdentity>,
    /// Its own messages, each with its recipient.
    own: Vec<(PublicIdentity, Message)>,
    /// Real envelopes: for the carrier, for other people, for a stranger.
    envelopes: Vec<Envelope>,
    /// The acknowledgement tokens of the envelopes not for the carrier.
    tokens: Vec<Vec<u8>>,
    /// Two contacts, each with the carrying pool it shares with the
    /// carrier.
    pools: Vec<(Identity, Group)>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rng = &mut ChaCha20Rng::seed_from_u64(7);
        let me = Identity::generate("me", rng).unwrap();
        let bob = Identity::generate("bob", rng).unwrap();
        let carol = Identity::generate("carol", rng).unwrap();
        let stranger = Identity::generate("stranger", rng).unwrap();
        let text = |from: &Identity, to: &Identity, body: &[u8], rng: &mut ChaCha20Rng| {
            let group = from.contact(&to.public()).unwrap().direct_group().clone();
            Message::create(from, &group, T0, Kind::TEXT, body, rng).unwrap()
        };
        let own = vec![
            (bob.public(), text(&me, &bob, b"to bob", rng)),
            (carol.public(), text(&me, &carol, &[b'c'; 3000], rng)),
        ];
        let mut envelopes = Vec::new();
        let mut tokens = Vec::new();
        for (i, (from, to)) in [(&bob, &me), (&bob, &carol), (&carol, &bob), (&stranger, &carol)]
            .into_iter()
            .enumerate()
        {
            let m = text(from, to, &vec![b'x'; 100 + 900 * i], rng);
            let e = Envelope::seal(&to.public(), &m, T0 + (i as u64 + 1) * HOUR, 8, rng).unwrap();
            if let Some((_, token)) = e.open(to) {
                let mut scratch = Carrier::new(CarryConfig::default());
                tokens.push(scratch.acknowledge(&token, e.expires()));
            }
            envelopes.push(e);
        }
        let peers = vec![bob.public(), carol.public(), stranger.public()];
        let bobs = bob.contact(&me.public()).unwrap().pool;
        let carols = carol.contact(&me.public()).unwrap().pool;
        World {
            peers,
            pools: vec![(bob, bobs), (carol, carols)],
            me,
            own,
            envelopes,
            tokens,
        }
    })
}

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b
    }
}

fn check(c: &Carrier, config: &CarryConfig) {
    assert!(c.used() <= config.budget, "over budget");
    let held: u64 = c.envelopes().map(|e| e.as_bytes().len() as u64).sum();
    assert_eq!(held, c.used(), "held bytes miscounted");
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut input = Input(data);
    let Some(setup) = input.byte() else { return };
    let config = CarryConfig {
        copies: 1 + (setup & 7),
        budget: [1_500, 6_000, 20_000, 16 << 20][usize::from(setup >> 3) & 3],
        carry: setup & 0x20 == 0,
        learn: setup & 0x40 != 0,
        hold_gaps: if setup & 0x80 != 0 { 0 } else { 3 },
        ..CarryConfig::default()
    };
    let rng = &mut ChaCha20Rng::seed_from_u64(u64::from(setup));
    let mut c = Carrier::new(config);
    let mut now = T0;
    while let Some(op) = input.byte() {
        let arg = input.byte().unwrap_or(0);
        let peer = &w.peers[usize::from(arg) % w.peers.len()];
        match op % 13 {
            0 => {
                let n = usize::from(input.byte().unwrap_or(0)) * 8;
                let body = input.bytes(n);
                let _ = c.receive_envelope(&w.me, peer, body, now);
            }
            1 => {
                let e = &w.envelopes[usize::from(arg >> 2) % w.envelopes.len()];
                let mode = input.byte().unwrap_or(0);
                let mut body = vec![mode % 3];
                if mode % 3 == 2 {
                    body.extend_from_slice(e.header());
                    body[6] = 1;
                    body.extend_from_slice(&e.name());
                } else {
                    body.extend_from_slice(e.as_bytes());
                }
                // Perhaps altered: one byte flipped anywhere. The mode
                // (body[0]) and the copy count (body[6]) are the hander's
                // to set; any other byte is the sealer's.
                let mut altered = false;
                if mode & 0x80 != 0 {
                    let at = u16::from_be_bytes([
                        input.byte().unwrap_or(0),
                        input.byte().unwrap_or(0),
                    ]);
                    let at = usize::from(at) % body.len();
                    body[at] ^= 1 + (mode & 0x3f);
                    altered = at != 0 && at != 6;
                }
                let arrival = c.receive_envelope(&w.me, peer, &body, now);
                if let Ok(Arrival::Opened { message, token, expires }) = arrival {
                    // Only an unaltered envelope for the carrier opens.
                    assert!(!altered, "an altered envelope opened");
                    assert!(Envelope::recognises(e.header(), &w.me));
                    assert!(e.open(&w.me).is_some_and(|(m, _)| m == message));
                    let _ = c.acknowledge(&token, expires);
                }
            }
            2 => {
                let body = match input.byte() {
                    Some(b) if b & 1 == 0 => {
                        let e = &w.envelopes[usize::from(b >> 1) % w.envelopes.len()];
                        e.name().to_vec()
                    }
                    _ => input.bytes(16).to_vec(),
                };
                let _ = c.receive_request(peer, &body, now);
            }
            3 => {
                let body = match input.byte() {
                    Some(b) if b & 1 == 0 && !w.tokens.is_empty() => {
                        w.tokens[usize::from(b >> 1) % w.tokens.len()].clone()
                    }
                    _ => input.bytes(16).to_vec(),
                };
                let expires = now + u64::from(input.byte().unwrap_or(0)) * HOUR / 4;
                let _ = c.receive_ack(peer, &body, expires, now);
            }
            4 => {
                for h in c.hand(peer, now, rng) {
                    assert!(h.expires > now, "handed out something expired");
                }
            }
            5 => {
                let _ = c.hand_for_drive(peer, now, rng);
            }
            6 => c.set_carrier(&peer.sign, arg & 0x80 != 0, now - u64::from(arg & 3) * HOUR),
            7 => c.set_carrying(arg & 1 == 0),
            8 => {
                let (to, m) = &w.own[usize::from(arg) % w.own.len()];
                let _ = c.originate(to, m.clone(), now);
            }
            9 => {
                now += u64::from(arg) * HOUR / 16;
                c.expire(now);
            }
            10 => {
                // Saved whole, or as a state and its parts; read back.
                let bytes = c.encode();
                let back = Carrier::decode(&bytes, config).expect("its own state reads");
                assert_eq!(back.encode(), bytes, "read back differs");
                let state = c.encode_state();
                let parts: Vec<_> = c.parts().map(|(k, v)| (k, v.to_vec())).collect();
                let back = Carrier::decode_state(&state, config, |k| {
                    parts.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone())
                })
                .expect("its own state and parts read");
                assert_eq!(back.encode(), bytes, "read back from parts differs");
                c = back;
            }
            11 => {
                // A pool message from a contact, taken as the node takes
                // it: a batch of real headers, hashes or tokens (1 to 70,
                // over the most a batch holds), or made-up bytes.
                let (from, pool) = &w.pools[usize::from(arg) % w.pools.len()];
                let what = input.byte().unwrap_or(0);
                let n = 1 + usize::from(input.byte().unwrap_or(0) % 70);
                let at = usize::from(what >> 2);
                let nth = |i: usize| &w.envelopes[(at + i) % w.envelopes.len()];
                let (kind, body) = match what % 4 {
                    0 => {
                        let mut body = vec![2u8];
                        for i in 0..n {
                            body.extend_from_slice(nth(i).header());
                            body.extend_from_slice(&nth(i).name());
                        }
                        (Kind::ENVELOPE, body)
                    }
                    1 => {
                        let mut body = Vec::new();
                        for i in 0..n {
                            body.extend_from_slice(&nth(i).name());
                        }
                        (Kind::REQUEST, body)
                    }
                    2 => {
                        let mut body = Vec::new();
                        for i in 0..n {
                            body.extend_from_slice(&w.tokens[(at + i) % w.tokens.len()]);
                        }
                        (Kind::ACK, body)
                    }
                    _ => (Kind(9 + (what >> 2) % 4), input.bytes(n * 16).to_vec()),
                };
                let expires = Some(now + HOUR);
                let m = Message::create_expiring(from, pool, now, expires, kind, &body, rng)
                    .expect("a pool message of at most 70 items");
                let _ = c.take(&w.me, &from.public(), &m, &body, now);
            }
            _ => {
                // A made-up saved state.
                let n = usize::from(arg) * 16;
                if let Ok(d) = Carrier::decode(input.bytes(n), config) {
                    c = d;
                }
            }
        }
        check(&c, &config);
    }
});
