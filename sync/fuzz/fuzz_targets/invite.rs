//! Invite codes, as text (pasted) and as bytes (scanned from a QR code).
#![no_main]
use libfuzzer_sys::fuzz_target;
use strand_sync::Invite;

fuzz_target!(|data: &[u8]| {
    if let Ok(invite) = Invite::from_bytes(data) {
        // Whatever decodes must re-encode to the same bytes.
        assert_eq!(invite.to_bytes(), data);
        assert_eq!(Invite::from_text(&invite.to_text()).unwrap(), invite);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Invite::from_text(text);
    }
});
