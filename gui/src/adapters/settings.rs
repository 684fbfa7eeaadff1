//! Settings: display name, profile location, palette, lock.

use slint::ComponentHandle;
use strand_node::runtime::api::{Reply, Request, Secret};
use strand_node::strength;
use strand_node::Duty;

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

    let weak = ui.as_weak();
    adapter.on_new_passphrase_edited(move |pass| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<SettingsAdapter>();
        let s = strength::estimate(&pass, &a.get_name());
        a.set_new_strength(i32::from(s.score));
        a.set_new_strength_hint(s.hint.into());
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_change_passphrase(move |current, new, again| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<SettingsAdapter>();
        // What needs no device is checked here, at once; the device
        // checks the current passphrase and the new one's strength.
        if new != again {
            a.set_passphrase_ok(false);
            a.set_passphrase_result("The two new passphrases differ.".into());
            return;
        }
        a.set_passphrase_busy(true);
        a.set_passphrase_result("".into());
        let (current, new) = (Secret::new(current.as_str()), Secret::new(new.as_str()));
        b.job(move |core| change_passphrase(core, current, new));
    });

    let b = backend.clone();
    adapter.on_set_notify_text(move |on| {
        b.job(move |core| change_preferences(core, strand_node::PreferenceChange::ShowText { on }))
    });
    let b = backend.clone();
    adapter.on_set_notify_names(move |on| {
        b.job(move |core| change_preferences(core, strand_node::PreferenceChange::ShowNames { on }))
    });
    let b = backend.clone();
    adapter.on_set_keep_running(move |on| {
        b.job(move |core| {
            change_preferences(core, strand_node::PreferenceChange::KeepRunning { on })
        })
    });

    let options: Vec<slint::SharedString> = Duty::ALL
        .iter()
        .map(|d| {
            format!(
                "{} ({:.0} % radio)",
                capitalised(d.name()),
                d.schedule().radio_on() * 100.0
            )
            .into()
        })
        .collect();
    adapter.set_bluetooth_options(std::rc::Rc::new(slint::VecModel::from(options)).into());
    show_duty(&adapter, Duty::default());
    let b = backend.clone();
    adapter.on_set_bluetooth(move |index| {
        let Some(duty) = usize::try_from(index)
            .ok()
            .and_then(|i| Duty::ALL.get(i))
            .copied()
        else {
            return;
        };
        b.job(move |core| {
            change_preferences(core, strand_node::PreferenceChange::Bluetooth { duty })
        })
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

/// Makes one change to the preferences and shows them after it: a
/// switch or box the user changed shows what holds, changed or not.
pub(crate) fn change_preferences(core: &mut Core, change: strand_node::PreferenceChange) {
    match core.call(Request::Preferences { set: vec![change] }) {
        Some(Ok(Reply::Preferences(p))) => show_preferences(core, p),
        Some(Err(e)) => {
            let message = format!("Not changed: {e}");
            core.ui(move |ui| ui.global::<AppAdapter>().set_notice(message.into()));
            load_preferences(core);
        }
        _ => {}
    }
}

/// Reads the preferences and shows them.
pub(crate) fn load_preferences(core: &mut Core) {
    if let Some(Ok(Reply::Preferences(p))) = core.call(Request::Preferences { set: Vec::new() }) {
        show_preferences(core, p);
    }
}

fn show_preferences(core: &mut Core, p: strand_node::Preferences) {
    let open = core.open.clone();
    let open_group = core.open_group.clone();
    core.preferences = p.clone();
    core.ui(move |ui| {
        let a = ui.global::<SettingsAdapter>();
        a.set_notify_text(p.show_text);
        a.set_notify_names(p.show_names);
        a.set_keep_running(p.keep_running);
        show_duty(&a, p.bluetooth);
        let muted = open.is_some_and(|c| p.mutes_contact(&c));
        ui.global::<crate::ConversationAdapter>().set_muted(muted);
        let muted = open_group.is_some_and(|g| p.mutes_group(&g));
        ui.global::<crate::GroupsAdapter>().set_muted(muted);
    });
}

/// Shows the Bluetooth setting and what it means.
fn show_duty(a: &SettingsAdapter<'_>, duty: Duty) {
    let index = Duty::ALL.iter().position(|d| *d == duty).unwrap_or(0);
    a.set_bluetooth(index as i32);
    a.set_bluetooth_about(capitalised(duty.describe()).into());
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Shows the user's name, and why it must change if it breaks today's
/// rules (`warning`, [`strand_node::Status::name_warning`]).
pub(crate) fn show(ui: &AppWindow, name: &str, warning: Option<&str>) {
    ui.global::<AppAdapter>()
        .set_my_name(strand_node::display::one_line(name).into());
    let a = ui.global::<SettingsAdapter>();
    a.set_name(name.into());
    // A rename here says "Saved." after this; one from elsewhere leaves
    // no word of an earlier one.
    a.set_name_ok(false);
    a.set_name_result(warning.unwrap_or_default().into());
}

fn rename(core: &mut Core, name: &str) {
    let renamed = core.call(Request::Rename {
        name: name.to_owned(),
    });
    let result = match renamed {
        None => return,
        Some(Err(e)) => Err(e),
        Some(Ok(_)) => match core.call(Request::Status) {
            Some(Ok(Reply::Status(s))) => Ok(s),
            Some(Err(e)) => Err(e),
            _ => return,
        },
    };
    match result {
        Ok(status) => {
            // Saved shows last: the name and the invite are on screen by
            // then.
            super::show_name(core, &status);
            core.ui(|ui| {
                let a = ui.global::<SettingsAdapter>();
                a.set_name_ok(true);
                a.set_name_result(
                    "Saved. New invites carry this name, and your groups see it.".into(),
                );
            });
        }
        Err(e) => {
            // A name that must change still says so, after why this one
            // was refused.
            let warning = core.name_warning();
            let message = match warning {
                Some(w) => format!("{} {w}", e.message),
                None => e.message,
            };
            core.ui(move |ui| {
                let a = ui.global::<SettingsAdapter>();
                a.set_name_ok(false);
                a.set_name_result(message.into());
            });
        }
    }
}

fn change_passphrase(core: &mut Core, current: Secret, new: Secret) {
    // Kept for the user service's copy, once the device changed it.
    let (old, kept) = (Secret::new(current.expose()), Secret::new(new.expose()));
    let result = core.call(Request::ChangePassphrase {
        current,
        new,
        allow_weak: false,
    });
    // Whether it changed (the form empties), and whether all is well
    // (the message's colour): a service left with the old passphrase is
    // a change with a warning.
    let (changed, ok, message) = match result {
        // Locked before the request was taken: nothing changed.
        None => {
            core.ui(|ui| ui.global::<SettingsAdapter>().set_passphrase_busy(false));
            return;
        }
        Some(Ok(_)) => {
            let done = "Passphrase changed: the profile now opens with the new one only.";
            // The same rule as `strand passphrase`: the service's copy
            // (desktop keyring or passphrase file) follows, or the
            // message says why not and what to do.
            let service = strand_node::cli::service::update_service_passphrase(
                &core.options.profile,
                old.expose(),
                kept.expose(),
            );
            match service {
                Ok(copy) => match copy.words() {
                    Some(words) => (true, true, format!("{done} {words}")),
                    None => (true, true, done.to_owned()),
                },
                Err(stale) => (true, false, format!("{done} {}", stale.warning())),
            }
        }
        Some(Err(e)) => (false, false, e.message),
    };
    core.ui(move |ui| {
        let a = ui.global::<SettingsAdapter>();
        a.set_passphrase_busy(false);
        a.set_passphrase_ok(ok);
        a.set_passphrase_result(message.into());
        if changed {
            a.set_passphrase_changed(a.get_passphrase_changed() + 1);
            a.set_new_strength(-1);
            a.set_new_strength_hint("".into());
        }
    });
}

/// Stops the node (this window's, or the one running on the profile in
/// another process, as `strand wipe` does), releases the profile, and
/// destroys it ([`strand_node::wipe::wipe`]), then the user service that
/// ran it, as `strand wipe` does
/// ([`strand_node::cli::service::ProfileService`]); then shows the
/// first-run screen, with what of the service is left, if anything.
pub(crate) fn wipe(core: &mut Core) {
    let dir = core.options.profile.clone();
    let mut service = None;
    let wiped = core
        .stop_running_node()
        .map_err(|e| strand_node::chain(&e))
        .and_then(|_| {
            // Found while the profile's folder still resolves.
            service = Some(strand_node::cli::service::ProfileService::of(&dir));
            strand_node::wipe::wipe(&dir).map_err(|e| strand_node::chain(&e))
        });
    match wiped {
        Ok(_) => {
            // The keys are gone: only now the service's pieces, which
            // must not hold the wipe up.
            let service = service.map(|s| s.forget()).unwrap_or_default();
            let left: Vec<String> = service.left.iter().map(|l| l.warning()).collect();
            // No profile any more: the first-run screen, the only one
            // there is now, says what is left (the settings are gone).
            if left.is_empty() {
                lock(core);
            } else {
                closed(core, format!("Wiped. {}", left.join(" ")));
            }
            core.ui(|ui| ui.global::<SettingsAdapter>().set_wipe_result("".into()));
        }
        // The node is stopped either way: the unlock screen says why.
        Err(e) => closed(core, format!("Not wiped: {e}")),
    }
}

/// Stops the node, releases the profile and its key, and asks for the
/// passphrase again. A window attached to a node running elsewhere lets
/// go of it (the node goes on) and offers to open it again.
pub(crate) fn lock(core: &mut Core) {
    let attached = core.attached();
    core.stop();
    core.name_shown = None;
    // Notifications go from the screen and are forgotten, and the count
    // from the app's icon: a click on one shown before would open the
    // same-named conversation of whichever profile is unlocked next.
    if let Some(notifier) = core.notifier_connected() {
        notifier.locked();
    }
    core.unread = (0, 0);
    super::badge(core);
    // Nothing of the conversation, or of what an action said, stays for
    // the next profile.
    super::conversation::close(core);
    core.ui(|ui| {
        ui.global::<AppAdapter>().set_notice("".into());
        ui.global::<crate::AddContactAdapter>()
            .set_my_invite("".into());
        ui.global::<crate::AddContactAdapter>()
            .set_my_qr(slint::Image::default());
        ui.global::<crate::AddContactAdapter>()
            .set_invite_problem("".into());
        ui.global::<crate::AddContactAdapter>()
            .set_invite_problem_name(false);
        super::add_contact::clear_form(&ui);
        super::network::clear_results(&ui);
        clear_results(&ui);
        ui.global::<AppAdapter>().set_my_name("".into());
        ui.global::<AppAdapter>().set_screen(Screen::Onboarding);
        ui.global::<SettingsAdapter>().set_attached(false);
    });
    super::contacts::clear(core);
    super::groups::clear(core);
    // No draft stays for the next profile (or in memory).
    core.ui(|_| super::drafts::forget_all());
    super::onboarding::show_with(core, !attached);
}

/// What the settings said of the last rename, passphrase change or wipe,
/// and the passphrases typed: none of it stays for the next profile.
fn clear_results(ui: &AppWindow) {
    let a = ui.global::<SettingsAdapter>();
    a.set_name_ok(false);
    a.set_name_result("".into());
    a.set_passphrase_ok(false);
    a.set_passphrase_result("".into());
    a.set_new_strength(-1);
    a.set_new_strength_hint("".into());
    a.set_wipe_result("".into());
    // The view empties its passphrase fields.
    a.set_passphrase_changed(a.get_passphrase_changed() + 1);
}

/// Closes the profile as [`lock`] does and says why on the screen that
/// follows.
pub(crate) fn closed(core: &mut Core, why: String) {
    lock(core);
    core.ui(move |ui| {
        ui.global::<crate::OnboardingAdapter>()
            .set_error(why.into());
    });
}

/// Another program of this user (`strand wipe`) asked this window's node to
/// stop over the control socket.
pub(crate) fn stopped_elsewhere(core: &mut Core) {
    closed(
        core,
        "Another Strand program (such as `strand wipe`) stopped syncing here.".to_owned(),
    );
}
