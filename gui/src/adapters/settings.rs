//! Settings: display name, profile location, palette, lock.

use slint::ComponentHandle;
use strand_node::runtime::api::{Reply, Request};

use crate::backend::{Backend, Core};
use crate::{AppAdapter, AppWindow, Screen, SettingsAdapter, Theme};

pub(crate) fn connect(ui: &AppWindow, backend: &Backend) {
    let adapter = ui.global::<SettingsAdapter>();

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_rename(move |name| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<SettingsAdapter>();
        let name = name.trim().to_owned();
        if name.is_empty() {
            a.set_name_ok(false);
            a.set_name_result("A name cannot be empty.".into());
            return;
        }
        b.job(move |core| rename(core, &name));
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_lock(move || {
        let Some(ui) = weak.upgrade() else { return };
        super::camera::stop(&ui);
        ui.global::<AppAdapter>().set_screen(Screen::Onboarding);
        ui.global::<crate::OnboardingAdapter>().set_busy(true);
        b.job(lock);
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_wipe(move |typed| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<SettingsAdapter>();
        if typed != a.get_name() || typed.is_empty() {
            a.set_wipe_result("Type your name exactly as shown to confirm.".into());
            return;
        }
        a.set_wipe_result("".into());
        b.job(wipe);
    });

    let weak = ui.as_weak();
    adapter.on_set_dark(move |dark| {
        if let Some(ui) = weak.upgrade() {
            ui.global::<Theme>().set_dark(dark);
        }
    });
}

/// Shows the profile's name and folder.
pub(crate) fn show(ui: &AppWindow, name: &str, path: &str) {
    let a = ui.global::<SettingsAdapter>();
    a.set_name(name.into());
    a.set_profile_path(path.into());
    a.set_name_result("".into());
}

fn rename(core: &mut Core, name: &str) {
    let renamed = core.call(Request::Rename {
        name: name.to_owned(),
    });
    let result = match renamed {
        None => return,
        Some(Err(e)) => Err(e),
        Some(Ok(_)) => match (core.call(Request::Status), core.call(Request::Invite)) {
            (Some(Ok(Reply::Status(s))), Some(Ok(Reply::Invite { code }))) => Ok((s.name, code)),
            (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
            _ => return,
        },
    };
    match result {
        Ok((name, invite)) => core.ui(move |ui| {
            let a = ui.global::<SettingsAdapter>();
            a.set_name(name.clone().into());
            a.set_name_ok(true);
            a.set_name_result("Saved. New invites carry this name, and your groups see it.".into());
            ui.global::<AppAdapter>().set_my_name(name.into());
            super::add_contact::show_invite(&ui, &invite);
        }),
        Err(e) => {
            let message = e.message;
            core.ui(move |ui| {
                let a = ui.global::<SettingsAdapter>();
                a.set_name_ok(false);
                a.set_name_result(message.into());
            });
        }
    }
}

/// Stops the node, releases the profile, and destroys it
/// ([`strand_node::wipe::wipe`]); then shows the first-run screen.
pub(crate) fn wipe(core: &mut Core) {
    core.stop();
    let dir = core.options.profile.clone();
    match strand_node::wipe::wipe(&dir) {
        Ok(_) => {
            // No profile any more: the first-run screen.
            lock(core);
            core.ui(|ui| ui.global::<SettingsAdapter>().set_wipe_result("".into()));
        }
        Err(e) => {
            // The node is stopped either way: the unlock screen says why.
            let message = format!("Not wiped: {}", strand_node::chain(&e));
            lock(core);
            core.ui(move |ui| {
                ui.global::<crate::OnboardingAdapter>()
                    .set_error(message.into());
            });
        }
    }
}

/// Stops the node, releases the profile and its key, and asks for the
/// passphrase again.
pub(crate) fn lock(core: &mut Core) {
    core.stop();
    core.ui(|ui| {
        ui.global::<crate::ContactsAdapter>().set_current(-1);
        ui.global::<crate::ConversationAdapter>()
            .set_contact("".into());
        crate::adapters::conversation::with_model(&ui, |m| m.clear());
        ui.global::<crate::AddContactAdapter>()
            .set_my_invite("".into());
        ui.global::<crate::AddContactAdapter>()
            .set_my_qr(slint::Image::default());
        ui.global::<AppAdapter>().set_my_name("".into());
        ui.global::<AppAdapter>().set_screen(Screen::Onboarding);
    });
    super::contacts::clear(core);
    super::groups::clear(core);
    super::onboarding::show(core);
}
