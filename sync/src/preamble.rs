//! The link preamble: the records that pass before Noise transport mode.
//!
//! ```text
//!   acceptor                                   dialler
//!   BEACON record (nonce, filter, padding)  ->
//!                                           <- HELLO record (token, Noise message 1, padding)
//!   message 2 (Noise; openings, READY, PAD) ->      the hello's contact is ours
//!   or a REFUSAL record (random bytes)      ->      it is not: the dialler tries its next
//!                                                   matching contact with a new HELLO
//! ```
//!
//! Every record is `u16 length (BE) || body`, like the packets after it.
//! The hello is bound to the beacon that opened the link: its token hashes
//! the beacon's nonce, and the whole beacon is in the Noise prologue, so a
//! hello recorded on one link is refused on every other one (no replay
//! cache, nothing to lose on a restart). A refusal looks like a message 2
//! to anyone who cannot decrypt it, and costs the dialler one round trip.

use rand_core::{CryptoRng, RngCore};

use crate::crypto::{SeededResolver, NOISE_PARAMS};
use crate::endpoint::Keys;
use crate::identity::Contact;
use crate::limits::{Time, HELLO_LEN, MAX_PREAMBLE_PAD, TOKEN_LEN};
use crate::token::{epoch, handshake_token, token_matches, Beacon, BEACON_LEN};

/// Noise prologue prefix: the protocol version, then the link's beacon.
const PROLOGUE: &[u8] = b"strand/v4";

/// Smallest body of a refusal: what a message 2 with one group's opening,
/// READY and an empty PAD frame weighs (48 + 37 + 2 + 2).
const REFUSAL_MIN: usize = 89;

/// Most bytes a preamble record may hold: the largest beacon record.
pub(crate) const MAX_RECORD: usize = BEACON_LEN + MAX_PREAMBLE_PAD;

/// A random amount of padding, 0..=MAX_PREAMBLE_PAD bytes.
pub(crate) fn pad_len(rng: &mut impl RngCore) -> usize {
    (rng.next_u32() % (MAX_PREAMBLE_PAD as u32 + 1)) as usize
}

/// `u16 length || body || random padding`.
pub(crate) fn record(body: &[u8], rng: &mut impl RngCore) -> Vec<u8> {
    let pad = pad_len(rng);
    let len = body.len() + pad;
    let mut out = Vec::with_capacity(2 + len);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(body);
    let start = out.len();
    out.resize(2 + len, 0);
    rng.fill_bytes(&mut out[start..]);
    out
}

/// A refusal: random bytes sized like a message 2.
pub(crate) fn refusal(rng: &mut impl RngCore) -> Vec<u8> {
    let len = REFUSAL_MIN + pad_len(rng);
    let mut out = vec![0u8; 2 + len];
    out[..2].copy_from_slice(&(len as u16).to_be_bytes());
    rng.fill_bytes(&mut out[2..]);
    out
}

fn builder<'a>(
    keys: &'a Keys,
    contact: &'a Contact,
    prologue: &'a [u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> snow::Builder<'a> {
    let remote = &contact.public.dh;
    snow::Builder::with_resolver(
        NOISE_PARAMS.parse().expect("a valid Noise pattern"),
        Box::new(
            SeededResolver::new(rng)
                .with_local(&keys.dh, &keys.me.dh)
                .with_pair(remote, &contact.shared),
        ),
    )
    .local_private_key(&keys.dh[..])
    .and_then(|b| b.remote_public_key(remote))
    .and_then(|b| b.prologue(prologue))
    .expect("32-byte X25519 keys and a supported pattern")
}

fn prologue(beacon: &Beacon) -> Vec<u8> {
    [PROLOGUE, &beacon.to_bytes()[..]].concat()
}

/// The dialler's hello to contact `index`, and its handshake state.
pub(crate) fn hello(
    keys: &Keys,
    index: usize,
    beacon: &Beacon,
    now: Time,
    rng: &mut (impl RngCore + CryptoRng),
) -> (snow::HandshakeState, Vec<u8>) {
    let contact = &keys.contacts[index];
    let prologue = prologue(beacon);
    let mut hs = builder(keys, contact, &prologue, rng)
        .build_initiator()
        .expect("a supported pattern");
    let mut msg = [0u8; HELLO_LEN - TOKEN_LEN];
    let n = hs
        .write_message(&[], &mut msg)
        .expect("the first KK message fits 48 bytes");
    debug_assert_eq!(n, msg.len());
    let token = handshake_token(&contact.token_key, epoch(now), beacon.nonce(), &msg[..32]);
    let body = [&token[..], &msg[..]].concat();
    (hs, record(&body, rng))
}

/// Checks a hello record's body against every contact. On success, the
/// contact's index and the responder's handshake state (message 1 read).
pub(crate) fn check_hello(
    keys: &Keys,
    beacon: &Beacon,
    body: &[u8],
    now: Time,
    rng: &mut (impl RngCore + CryptoRng),
) -> Option<(usize, snow::HandshakeState)> {
    let hello = body.get(..HELLO_LEN)?;
    let (token, msg) = hello.split_at(TOKEN_LEN);
    let ephemeral = &msg[..32];
    let index = keys
        .contacts
        .iter()
        .position(|c| token_matches(c, token, beacon.nonce(), ephemeral, now))?;
    let prologue = prologue(beacon);
    let mut hs = builder(keys, &keys.contacts[index], &prologue, rng)
        .build_responder()
        .expect("a supported pattern");
    let mut payload = [0u8; 16];
    hs.read_message(msg, &mut payload).ok()?;
    Some((index, hs))
}
