//! A decrypted packet's plaintext: the frame and reconciliation decoders.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strand_sync::fuzzing::decode_packet(data);
});
