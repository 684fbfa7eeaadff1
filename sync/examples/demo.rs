//! Two in-memory Strand nodes become contacts and sync over a virtual link.
//!
//! `cargo run --release -p strand-sync --example demo`
//!
//! Everything is the real protocol (invites, Noise KK handshake, signed and
//! encrypted messages, range-based reconciliation); only the link is
//! virtual: 40 ms one way, 1 Mbit/s, MTU 1200. Exits non-zero if any
//! message fails to arrive.

use std::process::ExitCode;

use strand_sync::harness::{Pair, Peer};
use strand_sync::Invite;

fn main() -> ExitCode {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2024);
    println!("strand-sync demo (seed {seed})\n");

    // 1. Two people, two devices.
    let mut alice = Peer::new("Alice", seed);
    let mut bob = Peer::new("Bob", seed + 1);

    // 2. They exchange invite codes (as text: read aloud, pasted, or a QR).
    let alice_code = alice.identity.invite().to_text();
    let bob_code = bob.identity.invite().to_text();
    println!("1. invites ({} characters each)", alice_code.len());
    println!("   Alice: {alice_code}");
    println!("   Bob:   {bob_code}");
    let from_bob = match Invite::from_text(&bob_code) {
        Ok(i) => i,
        Err(e) => return fail(&format!("Bob's invite did not decode: {e}")),
    };
    let from_alice = match Invite::from_text(&alice_code) {
        Ok(i) => i,
        Err(e) => return fail(&format!("Alice's invite did not decode: {e}")),
    };
    let mut typo = bob_code.clone().into_bytes();
    let last = typo.len() - 3;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    println!(
        "   a code with one typo is refused: {}",
        Invite::from_text(&typo).unwrap_err()
    );
    if alice.add_public(&from_bob.public).is_err() || bob.add_public(&from_alice.public).is_err() {
        return fail("adding contacts failed");
    }
    println!("   both added each other: they are contacts\n");

    // 3. Each writes while apart.
    let t0 = alice.now();
    let minute = 60_000;
    alice.write_at("Hi Bob, are you at the meeting point?", t0 - 9 * minute);
    bob.write_at("Hi Alice! On my way.", t0 - 8 * minute);
    alice.write_at("Bring the printed maps.", t0 - 7 * minute);
    bob.write_at("I have the maps.", t0 - 5 * minute);
    bob.write_at("Battery at 20%, keep it short.", t0 - 2 * minute);
    let mut pair = Pair::with_peers(alice, bob, seed);
    pair.latency = 40;
    pair.rate = Some(125_000); // 1 Mbit/s
    pair.mtu = 1200;

    // 4. They meet: one session syncs both logs.
    pair.connect();
    pair.drive();
    let first = (pair.bytes(), pair.round_trips(), pair.elapsed());
    println!("2. first sync: 2 + 3 messages");
    println!(
        "   {} bytes on the link, {:.1} round trips, {} ms of virtual time (40 ms latency, 1 Mbit/s)",
        first.0, first.1, first.2
    );
    report(&pair);

    // 5. A live message while the link is up.
    let before = pair.bytes();
    let start = pair.now;
    pair.a.write("See you in 5.");
    pair.drive();
    println!("3. a live message while connected");
    println!(
        "   {} bytes, delivered and acknowledged in {} ms",
        pair.bytes() - before,
        pair.now - start
    );

    // 6. They part, write more, meet again: reconciliation sends only the difference.
    pair.drive_for(1_000);
    if let Some(s) = pair.a.session.as_mut() {
        s.close();
    }
    pair.drive();
    for i in 0..200 {
        pair.drive_for(15_000); // apart for a while: a note every 15 s
        pair.a.write(&format!("note {i} from Alice"));
    }
    pair.b.write("Back online.");
    let before = pair.bytes();
    pair.connect();
    pair.drive();
    println!("4. they meet again: Alice wrote 200 notes, Bob 1 message");
    println!(
        "   {} bytes, {} ms ({:.1} round trips at this link rate) for 201 new messages on top of 6 shared",
        pair.bytes() - before,
        pair.elapsed(),
        pair.round_trips()
    );
    report(&pair);

    let (a, b) = (pair.a.texts(), pair.b.texts());
    if a != b || a.len() != 207 {
        return fail(&format!(
            "logs differ: Alice has {}, Bob has {}",
            a.len(),
            b.len()
        ));
    }
    println!(
        "\nOK: both hold the same {} messages, in the same order.",
        a.len()
    );
    ExitCode::SUCCESS
}

fn report(pair: &Pair) {
    println!(
        "   Alice holds {} messages, Bob holds {}",
        pair.a.texts().len(),
        pair.b.texts().len()
    );
    for t in pair.b.texts().iter().take(5) {
        println!("     · {t}");
    }
    println!();
}

fn fail(why: &str) -> ExitCode {
    eprintln!("demo failed: {why}");
    ExitCode::FAILURE
}
