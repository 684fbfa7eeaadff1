//! The simulator and the node run the same preamble and session
//! code. Both run strand-sync's `LinkFixture` link and must write exactly
//! its reference bytes; this is the simulator's half (the node's is in
//! `node/tests/it/transcript.rs`).

use strand_sim::world::Sim;
use strand_sync::harness::{LinkFixture, PoolFixture};

#[test]
fn a_simulated_link_writes_the_reference_bytes() {
    let f = LinkFixture::new();
    let expected = f.transcript();
    let got = Sim::fixture_transcript(&f).unwrap();
    assert!(expected[0].len() > 300 && expected[1].len() > 300);
    assert_eq!(got[0], expected[0], "Alice's bytes");
    assert_eq!(got[1], expected[1], "Bob's bytes");
}

/// The simulator takes in carrying-pool messages as the node does: the
/// same pool messages leave the recipient holding what strand-sync's
/// `PoolFixture` expects (the node's half is in `node/tests/it/carry.rs`).
#[test]
fn a_simulated_recipient_takes_the_reference_pool_messages() {
    let f = PoolFixture::new(strand_sync::harness::EPOCH);
    let got = Sim::pool_fixture_outcome(&f).unwrap();
    assert_eq!(got, PoolFixture::expected());
}
