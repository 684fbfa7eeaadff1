//! First run (create a profile) and unlock.

use slint::ComponentHandle;
use strand_node::runtime::starting::Starting;
use strand_node::strength;
use strand_node::{os_rng, Profile, ProfileError};

use crate::backend::{Backend, Core};
use crate::{AppWindow, OnboardingAdapter};

pub(crate) fn connect(ui: &AppWindow, backend: &Backend) {
    let adapter = ui.global::<OnboardingAdapter>();

    let weak = ui.as_weak();
    adapter.on_passphrase_edited(move |pass| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<OnboardingAdapter>();
        let s = strength::estimate(&pass, "");
        a.set_strength(if pass.is_empty() {
            -1
        } else {
            i32::from(s.score)
        });
        a.set_strength_hint(s.hint.into());
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_create(move |name, pass, confirm| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<OnboardingAdapter>();
        // Checks that need no store run here, at once.
        let name = name.trim().to_owned();
        let error = if name.is_empty() {
            Some("Choose a name: it is how your contacts will see you.".to_owned())
        } else if pass.is_empty() {
            Some("Choose a passphrase.".to_owned())
        } else if pass != confirm {
            Some("The two passphrases differ.".to_owned())
        } else {
            let s = strength::estimate(&pass, &name);
            (!s.is_enough()).then(|| format!("This passphrase is too easy to guess. {}", s.hint))
        };
        if let Some(error) = error {
            a.set_error(error.into());
            return;
        }
        a.set_error("".into());
        a.set_busy(true);
        let pass = pass.to_string();
        b.job(move |core| create(core, &name, &pass));
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_unlock(move |pass| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<OnboardingAdapter>();
        if pass.is_empty() {
            a.set_error("Enter your passphrase.".into());
            return;
        }
        a.set_error("".into());
        a.set_busy(true);
        let pass = pass.to_string();
        b.job(move |core| unlock(core, &pass));
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_retry(move || {
        if let Some(ui) = weak.upgrade() {
            ui.global::<OnboardingAdapter>().set_busy(true);
        }
        b.job(show);
    });
}

/// Shows first run, unlock, or "in use", whichever the profile directory
/// calls for; where a node runs on the profile (`strand run`, the user
/// service, another window), attaches to it instead.
pub(crate) fn show(core: &mut Core) {
    show_with(core, true);
}

/// [`show`]; with `attach` false, a running node is offered, not attached
/// to (after the user locked the window).
pub(crate) fn show_with(core: &mut Core, attach: bool) {
    let dir = core.options.profile.clone();
    let exists = Profile::exists(&dir);
    let in_use = exists && Profile::in_use(&dir);
    if in_use && attach && core.attach() {
        opened(core);
        return;
    }
    let running = in_use && core.node_answers();
    let path = dir.display().to_string();
    core.ui(move |ui| {
        let a = ui.global::<OnboardingAdapter>();
        a.set_first_run(!exists);
        a.set_in_use(in_use);
        a.set_running(running);
        a.set_busy(false);
        a.set_error("".into());
        a.set_profile_path(path.into());
    });
}

fn fail(core: &Core, error: ProfileError) {
    let in_use = matches!(error, ProfileError::InUse(_));
    let message = match &error {
        ProfileError::WrongPassphrase => "Wrong passphrase. Try again.".to_owned(),
        other => other.to_string(),
    };
    core.ui(move |ui| {
        let a = ui.global::<OnboardingAdapter>();
        a.set_busy(false);
        a.set_in_use(in_use);
        a.set_error(message.into());
    });
}

fn create(core: &mut Core, name: &str, pass: &str) {
    let dir = core.options.profile.clone();
    let kdf = core
        .options
        .kdf
        .unwrap_or_else(strand_node::KdfParams::calibrate);
    match Profile::create(&dir, name, pass, kdf, &mut os_rng()) {
        Ok(profile) => {
            let starting = Starting::mark(&profile);
            started(core, profile, starting)
        }
        Err(e) => fail(core, e),
    }
}

/// Unlocks the profile for this window's node, which says it is starting
/// from the moment the open holds the profile (a wrong passphrase leaves
/// nothing said).
fn unlock(core: &mut Core, pass: &str) {
    match Starting::open(&core.options.profile.clone(), pass) {
        Ok((profile, starting)) => started(core, profile, starting),
        Err(e) => fail(core, e),
    }
}

fn started(core: &mut Core, profile: Profile, starting: Starting) {
    match core.start(profile, starting) {
        Ok(()) => opened(core),
        Err(e) => {
            let message = format!("Could not start syncing: {e}");
            core.ui(move |ui| {
                let a = ui.global::<OnboardingAdapter>();
                a.set_busy(false);
                a.set_first_run(false);
                a.set_error(message.into());
            });
        }
    }
}

/// The profile is open here (unlocked, or attached to its running node).
fn opened(core: &mut Core) {
    let attached = core.attached();
    let path = core.options.profile.display().to_string();
    core.ui(move |ui| {
        let a = ui.global::<OnboardingAdapter>();
        a.set_profile_path(path.into());
        a.set_busy(false);
        a.set_first_run(false);
        a.set_in_use(false);
        a.set_running(false);
        a.set_error("".into());
        a.set_strength(-1);
        ui.global::<crate::SettingsAdapter>().set_attached(attached);
    });
    super::unlocked(core);
}
