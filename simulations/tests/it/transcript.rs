//! The simulator and the node run the same preamble and session
//! code. Both run strand-sync's `LinkFixture` link and must write exactly
//! its reference bytes; this is the simulator's half (the node's is in
//! `node/tests/it/transcript.rs`).

use strand_sim::world::Sim;
use strand_sync::harness::LinkFixture;

#[test]
fn a_simulated_link_writes_the_reference_bytes() {
    let f = LinkFixture::new();
    let expected = f.transcript();
    let got = Sim::fixture_transcript(&f).unwrap();
    assert!(expected[0].len() > 300 && expected[1].len() > 300);
    assert_eq!(got[0], expected[0], "Alice's bytes");
    assert_eq!(got[1], expected[1], "Bob's bytes");
}
