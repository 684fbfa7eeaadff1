//! Adding a contact: the user's own invite as text and QR code, and their
//! code checked as it is typed.

use slint::ComponentHandle;
use strand_node::runtime::api::{Reply, Request};
use strand_sync::Invite;

use crate::backend::{Backend, Core};
use crate::{AddContactAdapter, AppAdapter, AppWindow, Screen};

/// Checks a pasted code without touching the store. `Ok` carries the name
/// the invite suggests.
pub fn validate(code: &str, own_invite: &str) -> Result<String, String> {
    let code = code.trim();
    if code.is_empty() {
        return Err(String::new());
    }
    let invite = Invite::from_text(code).map_err(|e| {
        let reason = e.to_string();
        let reason = reason.trim_end_matches(['.', '?', '!']);
        format!("Not a valid invite: {reason}.")
    })?;
    if let Ok(own) = Invite::from_text(own_invite) {
        if own.public == invite.public {
            return Err(
                "This is your own invite. Paste the code of the person you want to add.".into(),
            );
        }
    }
    Ok(invite.name)
}

pub(crate) fn connect(ui: &AppWindow, backend: &Backend) {
    let adapter = ui.global::<AddContactAdapter>();

    let weak = ui.as_weak();
    adapter.on_code_edited(move |code| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<AddContactAdapter>();
        a.set_add_error("".into());
        match validate(&code, &a.get_my_invite()) {
            Ok(name) => {
                a.set_code_error("".into());
                a.set_code_ok(true);
                a.set_suggested_name(name.into());
            }
            Err(e) => {
                a.set_code_error(e.into());
                a.set_code_ok(false);
            }
        }
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_add(move |code, name| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<AddContactAdapter>();
        if let Err(e) = validate(&code, &a.get_my_invite()) {
            a.set_code_error(if e.is_empty() {
                "Paste their invite code first.".into()
            } else {
                e.into()
            });
            a.set_code_ok(false);
            return;
        }
        a.set_busy(true);
        let (code, name) = (code.to_string(), name.trim().to_owned());
        b.job(move |core| add(core, &code, &name));
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_read_image(move |path| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<AddContactAdapter>();
        let path = path.trim().to_owned();
        if path.is_empty() {
            a.set_image_error(
                "Type the path of a photo or screenshot of their invite's QR code.".into(),
            );
            return;
        }
        a.set_image_error("".into());
        b.job(move |core| {
            super::read_photo(core, path.into(), |core, found| {
                let result = found.and_then(|texts| invite_from_texts(&texts));
                core.ui(move |ui| {
                    let a = ui.global::<AddContactAdapter>();
                    match result {
                        Ok(code) => {
                            a.set_image_error("".into());
                            a.set_scanned_code(code.into());
                        }
                        Err(e) => a.set_image_error(e.into()),
                    }
                });
            })
        });
    });
}

/// The invite in a photo or screenshot of its QR code, as text.
pub fn invite_from_image(path: &std::path::Path) -> Result<String, String> {
    invite_from_texts(&crate::scan::decode_file(path)?)
}

/// Whether a QR text is a Strand invite, by its prefix (QR readers may
/// give it back upper case).
pub(crate) fn is_invite(text: &str) -> bool {
    // As `Invite::from_text` reads it (spaces and dashes anywhere): a code
    // the camera skipped would otherwise be taken from a photo of it.
    Invite::begins_text(text)
}

/// The invite among QR texts read from an image or a camera.
pub fn invite_from_texts(texts: &[String]) -> Result<String, String> {
    let mut last = None;
    for t in texts {
        match Invite::from_text(t) {
            Ok(invite) => return Ok(invite.to_text()),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(strand_sync::InviteError::Prefix) | None => {
            if texts
                .iter()
                .any(|t| t.starts_with(strand_sync::SAFETY_QR_PREFIX))
            {
                "That is a safety number, not an invite: open the conversation to compare it."
                    .into()
            } else {
                "That QR code is not a Strand invite.".into()
            }
        }
        Some(e) => format!("The QR code holds a bad invite: {e}."),
    })
}

/// Shows the user's own invite.
pub(crate) fn show_invite(ui: &AppWindow, invite: &str) {
    let a = ui.global::<AddContactAdapter>();
    a.set_invite_problem("".into());
    a.set_invite_problem_name(false);
    a.set_my_invite(invite.into());
    if let Some(image) = crate::qr::image(invite) {
        a.set_my_qr(image);
    }
}

/// What the form said of a code (whose invite it is, why not, why it was
/// not added) and of an image, and the name it suggested: none of it
/// stays for the next profile (at lock or wipe).
pub(crate) fn clear_form(ui: &AppWindow) {
    let a = ui.global::<AddContactAdapter>();
    a.set_code_ok(false);
    a.set_code_error("".into());
    a.set_suggested_name("".into());
    a.set_add_error("".into());
    a.set_image_error("".into());
    a.set_scanned_code("".into());
}

/// Asks the node for the invite and shows it; or, if it makes none, why
/// where the invite would be: the warning that the user's name breaks
/// today's rules ([`Core::name_shown`]) with the way to a new name, or
/// the failure as it is. Returns whether the invite or that warning
/// shows (not a failure that asking again may mend).
pub(crate) fn refresh_invite(core: &Core) -> bool {
    let name_warning = core.name_warning().map(str::to_owned);
    let shown = match core.call(Request::Invite) {
        Some(Ok(Reply::Invite { code })) => Ok(code),
        Some(Err(e)) => Err(match name_warning {
            Some(warning) => (warning, true),
            None => (e.message, false),
        }),
        None | Some(Ok(_)) => return false,
    };
    let done = matches!(shown, Ok(_) | Err((_, true)));
    core.ui(move |ui| match shown {
        Ok(code) => show_invite(&ui, &code),
        Err((why, name)) => {
            let a = ui.global::<AddContactAdapter>();
            a.set_my_invite("".into());
            a.set_my_qr(slint::Image::default());
            a.set_invite_problem(why.into());
            a.set_invite_problem_name(name);
        }
    });
    done
}

fn add(core: &mut Core, code: &str, name: &str) {
    let request = Request::Add {
        code: code.to_owned(),
        name: name.to_owned(),
    };
    match core.call(request) {
        Some(Ok(Reply::Added { contact })) => {
            let name = contact.name;
            core.ui(|ui| {
                let a = ui.global::<AddContactAdapter>();
                a.set_busy(false);
                a.set_add_error("".into());
                a.set_code_ok(false);
                a.set_suggested_name("".into());
                ui.global::<AppAdapter>().set_screen(Screen::Chats);
            });
            core.chats_visible = true;
            super::conversation::open(core, name);
        }
        // Locked before the request was taken: nothing was added, and
        // the form is free again once unlocked.
        None | Some(Ok(_)) => core.ui(|ui| ui.global::<AddContactAdapter>().set_busy(false)),
        Some(Err(e)) => {
            let message = e.message;
            core.ui(move |ui| {
                let a = ui.global::<AddContactAdapter>();
                a.set_busy(false);
                a.set_add_error(message.into());
            });
        }
    }
}
