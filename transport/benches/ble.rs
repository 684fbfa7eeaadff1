//! BLE link layer figures over the emulated radio, each printed
//! beside its baseline from the same run:
//!
//! 1. **Goodput**: a 1 MiB bulk stream, central to peripheral, at BLE 1M
//!    and 2M PHY, MTU 247, connection intervals 15 and 30 ms, against the
//!    radio's own payload rate for that connection (full packets back to
//!    back in every event, no link layer). Target: ≥ 90 %.
//! 2. **A 60-second meeting**: how many of 10,000 waiting messages a Strand
//!    session delivers over the link in 60 s, beside how many the payload
//!    rate could carry at the same bytes per message.
//! 3. **Framing overhead**: link-layer bytes (both directions, ACKs too)
//!    per stream byte, at 244- and 20-byte packets; the simulator's BLE
//!    link model uses these.
//!
//! Virtual time: the figures are the model's, the same on every machine.

#[path = "../tests/support/sync_end.rs"]
mod sync_end;

use strand_transport::ble::link::Micros;
use strand_transport::ble::radio::{Bulk, Pair, Phy, RadioConfig};

const SECOND: Micros = 1_000_000;

fn connections() -> Vec<(&'static str, RadioConfig)> {
    let mut out = Vec::new();
    for (name, phy) in [("1M", Phy::OneM), ("2M", Phy::TwoM)] {
        for interval in [15_000, 30_000] {
            let label: &'static str =
                Box::leak(format!("{name} PHY, {} ms", interval / 1000).into_boxed_str());
            out.push((label, RadioConfig::new(phy, interval)));
        }
    }
    out
}

fn goodput() {
    println!(
        "1. bulk goodput, 1 MiB central → peripheral, MTU 247 (target ≥ 90 % of the payload rate)"
    );
    println!(
        "   {:<16} {:>16} {:>16} {:>8}",
        "connection", "payload rate", "goodput", "ratio"
    );
    for (label, radio) in connections() {
        let size = 1 << 20;
        let ends = [Bulk::sending(vec![7u8; size]), Bulk::default()];
        let mut pair = Pair::new(radio, 64, ends, 1);
        let done = pair.run_while(3_600 * SECOND, |p| p.ends[1].eof);
        assert!(done && pair.ends[1].received.len() == size);
        let goodput = size as f64 * 1e6 / pair.ends[1].last_arrival as f64;
        let rate = radio.payload_rate();
        println!(
            "   {label:<16} {:>11.1} kB/s {:>11.1} kB/s {:>7.1}%",
            rate / 1e3,
            goodput / 1e3,
            100.0 * goodput / rate
        );
    }
}

fn meeting() {
    println!();
    println!("2. a 60-second meeting, 10,000 messages waiting on one side, session packets of 512 B and 16 KiB");
    println!(
        "   {:<16} {:>8} {:>14} {:>12} {:>14} {:>14}",
        "connection", "packets", "in 60 s", "all after", "link B/msg", "rate carries"
    );
    for (label, radio) in connections() {
        for max_packet in [512, 16 * 1024] {
            let (a, b) = sync_end::devices_with([10_000, 0], max_packet);
            let mut pair = sync_end::pair(a, b, radio, 3);
            pair.run_while(60 * SECOND, |p| p.ends[1].count() == 10_000);
            let in_a_minute = pair.ends[1].count();
            pair.run_while(3_600 * SECOND, |p| p.ends[1].count() == 10_000);
            // The step that stored the last message (steps are connection
            // events and deadlines, so this is exact to an event).
            let all = pair.now() as f64 / 1e6;
            // Bytes on the air towards Bob per message, and what the
            // payload rate alone could carry in 60 s at that size.
            let per_message = pair.stats.bytes[0] as f64 / 10_000.0;
            let could = radio.payload_rate() * 60.0 / per_message;
            println!(
                "   {label:<16} {max_packet:>8} {in_a_minute:>14} {all:>10.1} s {per_message:>14.0} {could:>14.0}"
            );
        }
    }
}

/// Both sides hold 5,000 messages the other lacks, interleaved in time:
/// reconciliation has to find 10,000 differences before and while they
/// flow (the one-sided meeting above needs one round).
fn two_sided() {
    println!();
    println!("2b. a meeting where each side holds 5,000 messages the other lacks (10,000 differences, interleaved)");
    println!(
        "   {:<16} {:>8} {:>12} {:>14} {:>16}",
        "connection", "packets", "all after", "link B/msg", "at the rate"
    );
    for (label, radio) in connections().into_iter().step_by(2) {
        for max_packet in [512, 16 * 1024] {
            let (a, b) = sync_end::devices_with([5_000, 5_000], max_packet);
            let mut pair = sync_end::pair(a, b, radio, 4);
            pair.run_while(3_600 * SECOND, |p| {
                p.ends.iter().all(|e| e.count() == 10_000)
            });
            let all = pair.now() as f64 / 1e6;
            // Both directions share the air: all bytes at the one-way
            // payload rate is what the radio alone would need (a little
            // more, as both can send in one exchange).
            let total = (pair.stats.bytes[0] + pair.stats.bytes[1]) as f64;
            let per_message = total / 10_000.0;
            println!(
                "   {label:<16} {max_packet:>8} {all:>10.1} s {per_message:>14.0} {:>14.1} s",
                total / radio.payload_rate()
            );
        }
    }
}

fn overhead() {
    println!();
    println!("3. framing overhead: link-layer bytes both ways per stream byte (1M PHY, 15 ms, 100 KB bulk)");
    for packet in [244, 20] {
        let radio = RadioConfig {
            packet: [packet, packet],
            ..RadioConfig::new(Phy::OneM, 15_000)
        };
        let size = 100_000;
        let ends = [Bulk::sending(vec![1u8; size]), Bulk::default()];
        let mut pair = Pair::new(radio, 64, ends, 1);
        assert!(pair.run_while(3_600 * SECOND, |p| p.ends[1].eof));
        let bytes = pair.stats.bytes[0] + pair.stats.bytes[1];
        println!(
            "   {packet:>3}-byte packets: {:.4} ({} packets out, {} back)",
            bytes as f64 / size as f64,
            pair.stats.packets[0],
            pair.stats.packets[1]
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test` runs benches only with it.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    goodput();
    meeting();
    two_sided();
    overhead();
}
