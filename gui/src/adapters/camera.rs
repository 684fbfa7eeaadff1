//! Scanning a QR code with the camera ([`crate::camera`]): on the
//! add-contact screen an invite, in the verify panel a safety number. The
//! scan runs on its own thread; its previews and its result come back to
//! the UI thread, and a result is handled as one read from an image.

use std::cell::{Cell, RefCell};

use slint::{ComponentHandle, Image, Rgb8Pixel, SharedPixelBuffer};

use crate::backend::Backend;
use crate::camera::{self, Report, Scan};
use crate::{AddContactAdapter, AppWindow, CameraAdapter, ConversationAdapter};

/// What a scan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Invite,
    Safety,
}

impl Purpose {
    fn parse(s: &str) -> Option<Purpose> {
        match s {
            "invite" => Some(Purpose::Invite),
            "safety" => Some(Purpose::Safety),
            _ => None,
        }
    }

    fn accepts(self, text: &str) -> bool {
        match self {
            Purpose::Invite => super::add_contact::is_invite(text),
            Purpose::Safety => text.starts_with(strand_sync::SAFETY_QR_PREFIX),
        }
    }

    /// What to tell the user about a code that is not the one sought: what
    /// a photo of it would have said.
    fn skipped(self, text: &str) -> String {
        let texts = [text.to_owned()];
        match self {
            // Never an invite (that would have been accepted): the error.
            Purpose::Invite => super::add_contact::invite_from_texts(&texts)
                .err()
                .unwrap_or_default(),
            Purpose::Safety => super::conversation::not_a_safety_number(&texts),
        }
    }
}

/// The first camera this machine has, if any.
fn first_camera() -> Option<camera::Camera> {
    camera::cameras().into_iter().next()
}

thread_local! {
    /// The scan running, if any, and its number (on the UI thread).
    static SCAN: RefCell<Option<(u64, Scan)>> = const { RefCell::new(None) };
    /// Numbers scans, so that what an older one reports is ignored.
    static SCANS: Cell<u64> = const { Cell::new(0) };
}

/// Whether scan `n` is the one running.
fn current(n: u64) -> bool {
    SCAN.with_borrow(|s| s.as_ref().is_some_and(|(m, _)| *m == n))
}

/// Stops the scan running, if any (leaving a screen, locking, opening
/// another conversation): the camera goes off and nothing it finds later
/// is used.
pub(crate) fn stop(ui: &AppWindow) {
    if let Some((_, scan)) = SCAN.with_borrow_mut(|s| s.take()) {
        scan.stop();
    }
    let a = ui.global::<CameraAdapter>();
    a.set_scanning("".into());
    a.set_status("".into());
}

pub(crate) fn connect(ui: &AppWindow, backend: &Backend) {
    let adapter = ui.global::<CameraAdapter>();
    adapter.set_camera(first_camera().map(|c| c.name).unwrap_or_default().into());

    let weak = ui.as_weak();
    let b = backend.clone();
    adapter.on_start(move |purpose| {
        let Some(ui) = weak.upgrade() else { return };
        let Some(purpose) = Purpose::parse(&purpose) else {
            return;
        };
        let a = ui.global::<CameraAdapter>();
        // Looked up again: a camera may have come or gone.
        let Some(cam) = first_camera() else {
            a.set_camera("".into());
            a.set_status("No camera found. Use a photo or screenshot of the code instead.".into());
            return;
        };
        a.set_camera(cam.name.clone().into());
        a.set_status("".into());
        a.set_preview(Image::default());
        a.set_scanning(
            if purpose == Purpose::Invite {
                "invite"
            } else {
                "safety"
            }
            .into(),
        );
        let contact = ui.global::<ConversationAdapter>().get_contact().to_string();
        let weak = ui.as_weak();
        let b = b.clone();
        let n = SCANS.get() + 1;
        SCANS.set(n);
        // A scan already running stops; its thread lets the camera go
        // before the new one opens it (the driver serialises opens), and
        // whatever it still reports is ignored.
        if let Some((_, old)) = SCAN.with_borrow_mut(|s| s.take()) {
            old.stop();
        }
        let started = camera::start(
            &cam.path,
            move |t| purpose.accepts(t),
            move |report| on_report(&weak, &b, n, purpose, &contact, report),
        );
        SCAN.with_borrow_mut(|s| *s = Some((n, started)));
    });

    let weak = ui.as_weak();
    adapter.on_stop(move || {
        if let Some(ui) = weak.upgrade() {
            stop(&ui);
        }
    });
}

/// Runs on the scan's thread.
fn on_report(
    weak: &slint::Weak<AppWindow>,
    backend: &Backend,
    n: u64,
    purpose: Purpose,
    contact: &str,
    report: Report,
) {
    match report {
        Report::Preview(grey) => {
            let mut buffer = SharedPixelBuffer::<Rgb8Pixel>::new(grey.width(), grey.height());
            for (px, g) in buffer.make_mut_slice().iter_mut().zip(grey.as_raw()) {
                *px = Rgb8Pixel::new(*g, *g, *g);
            }
            let _ = weak.upgrade_in_event_loop(move |ui| {
                if current(n) {
                    ui.global::<CameraAdapter>()
                        .set_preview(Image::from_rgb8(buffer));
                }
            });
        }
        Report::Skipped(text) => {
            let message = purpose.skipped(&text);
            let _ = weak.upgrade_in_event_loop(move |ui| {
                if current(n) {
                    ui.global::<CameraAdapter>().set_status(message.into());
                }
            });
        }
        Report::Done(result) => {
            let contact = contact.to_owned();
            let b = backend.clone();
            let _ = weak.upgrade_in_event_loop(move |ui| {
                if !current(n) {
                    return;
                }
                SCAN.with_borrow_mut(|s| s.take());
                let a = ui.global::<CameraAdapter>();
                a.set_scanning("".into());
                match result {
                    Err(e) if e == "Stopped." => a.set_status("".into()),
                    Err(e) => a.set_status(e.into()),
                    Ok(text) => {
                        a.set_status("".into());
                        finish(&ui, &b, purpose, contact, text);
                    }
                }
            });
        }
    }
}

/// A code found: an invite goes into the code field, a safety number is
/// compared as one read from an image.
fn finish(ui: &AppWindow, backend: &Backend, purpose: Purpose, contact: String, text: String) {
    match purpose {
        Purpose::Invite => {
            let a = ui.global::<AddContactAdapter>();
            match super::add_contact::invite_from_texts(&[text]) {
                Ok(code) => {
                    a.set_image_error("".into());
                    a.set_scanned_code(code.into());
                }
                Err(e) => a.set_image_error(e.into()),
            }
        }
        Purpose::Safety => {
            backend
                .job(move |core| super::conversation::check_texts(core, &contact, Ok(vec![text])));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_takes_its_own_codes() {
        let invite = "STRAND1ABCDEF";
        let safety = format!("{}123", strand_sync::SAFETY_QR_PREFIX);
        assert!(Purpose::Invite.accepts(invite));
        assert!(Purpose::Invite.accepts(&invite.to_ascii_lowercase()));
        // Spaced as a photo's reading is taken (`Invite::from_text`).
        // Before, the camera skipped them.
        assert!(Purpose::Invite.accepts(&format!(" {invite}")));
        assert!(Purpose::Invite.accepts("STRAND-1ABC DEF"));
        // A long text that is not one is not (its length is not the
        // question).
        assert!(!Purpose::Invite.accepts(&"7".repeat(7089)));
        assert!(!Purpose::Invite.accepts(&safety));
        assert!(Purpose::Safety.accepts(&safety));
        assert!(!Purpose::Safety.accepts(invite));
        assert!(Purpose::Safety.skipped(invite).contains("invite code"));
        assert!(Purpose::Invite.skipped(&safety).contains("safety number"));
        assert!(Purpose::Invite
            .skipped("https://example.org")
            .contains("not a Strand invite"));
        assert_eq!(Purpose::parse("invite"), Some(Purpose::Invite));
        assert_eq!(Purpose::parse("other"), None);
    }
}
