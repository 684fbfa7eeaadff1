//! First run, unlock, lock, and a profile held by another owner.

use slint::ComponentHandle;
use slint::Model;
use strand_gui::{AddContactAdapter, AppAdapter, NetworkAdapter, Screen, SettingsAdapter};
use strand_node::Profile;

use crate::support::{on_ui, options, Gui, PASS, WAIT};

#[test]
fn onboarding_creates_a_profile_and_checks_the_passphrase() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("profile");
        let gui = Gui::new(h, options(&dir));
        let a = gui.onboarding();
        assert!(a.get_first_run());
        assert!(!a.get_in_use());

        // The strength hint follows what is typed.
        a.invoke_passphrase_edited("password".into());
        assert!(a.get_strength() < 2, "{}", a.get_strength_hint());
        a.invoke_passphrase_edited(PASS.into());
        assert!(a.get_strength() >= 3, "{}", a.get_strength_hint());

        // Refused at once, and nothing is written.
        a.invoke_create("Alice".into(), "password".into(), "password".into());
        assert!(a.get_error().contains("too easy"), "{}", a.get_error());
        a.invoke_create("Alice".into(), PASS.into(), "copper kettle".into());
        assert!(a.get_error().contains("differ"), "{}", a.get_error());
        a.invoke_create("  ".into(), PASS.into(), PASS.into());
        assert!(a.get_error().contains("name"), "{}", a.get_error());
        h.pump();
        assert!(!Profile::exists(&dir));

        gui.create(h, "Alice");
        assert_eq!(gui.ui.global::<AppAdapter>().get_my_name(), "Alice");
        assert!(gui.invite().starts_with("strand1"));
        assert!(Profile::exists(&dir));
        assert_eq!(
            gui.ui.global::<SettingsAdapter>().get_profile_path(),
            dir.display().to_string()
        );
    });
}

#[test]
fn lock_then_a_wrong_passphrase_then_the_right_one() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("profile");
        let gui = Gui::new(h, options(&dir));
        gui.create(h, "Alice");
        let invite = gui.invite();

        gui.ui.global::<SettingsAdapter>().invoke_lock();
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Onboarding
            && !gui.onboarding().get_busy()
            && gui.invite().is_empty()));
        assert!(!gui.onboarding().get_first_run());
        // Locked means released: another owner could open it now.
        drop(Profile::open(&dir, PASS).expect("the lock released the profile"));

        let a = gui.onboarding();
        a.invoke_unlock("not it".into());
        assert!(h.pump_until(WAIT, || !a.get_busy() && !a.get_error().is_empty()));
        assert_eq!(a.get_error(), "Wrong passphrase. Try again.");
        assert_eq!(gui.screen(), Screen::Onboarding);

        a.invoke_unlock(PASS.into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats));
        assert_eq!(gui.invite(), invite, "the same identity");
    });
}

/// A profile named under older rules (a variation selector that selects
/// nothing) opens, but shows why it has no invite where the invite would
/// be and in the settings; a new name from the settings brings the
/// invite, carrying it.
#[test]
fn a_name_from_older_rules_is_told_and_changed_in_the_settings() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("profile");
        let rng = &mut strand_node::os_rng();
        let p = Profile::create(
            &dir,
            "Ann",
            PASS,
            strand_node::KdfParams::insecure_for_tests(),
            rng,
        )
        .unwrap();
        p.rename_under_older_rules("Ann\u{fe00}", rng).unwrap();
        drop(p);
        let gui = Gui::new(h, options(&dir));
        gui.onboarding().invoke_unlock(PASS.into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats));
        let add = gui.ui.global::<AddContactAdapter>();
        let problem = add.get_invite_problem().to_string();
        assert!(
            problem.starts_with("Careful: your name \"Ann<U+FE00>\"")
                && problem.contains("variation selectors")
                && problem.contains("Settings"),
            "{problem}"
        );
        assert_eq!(gui.invite(), "", "no code to hand out");
        let settings = gui.ui.global::<SettingsAdapter>();
        assert_eq!(settings.get_name_result(), problem.as_str());
        assert!(!settings.get_name_ok());
        assert!(add.get_invite_problem_name(), "with the way to Settings");
        // A refused name says why, and that the old one must still change.
        settings.invoke_rename("\u{2800}Ann".into());
        assert!(h.pump_until(WAIT, || settings.get_name_result() != problem.as_str()));
        let refused = settings.get_name_result().to_string();
        assert!(
            refused.contains("braille blank") && refused.ends_with(&problem),
            "{refused}"
        );
        settings.invoke_rename("Ann".into());
        // Saved shows last, after the name and the invite.
        assert!(h.pump_until(WAIT, || settings.get_name_ok()));
        assert!(!gui.invite().is_empty());
        assert_eq!(add.get_invite_problem(), "");
        let invite = strand_sync::Invite::from_text(&gui.invite()).unwrap();
        assert_eq!(invite.name, "Ann");
        assert_eq!(gui.ui.global::<AppAdapter>().get_my_name(), "Ann");
    });
}

#[test]
fn a_profile_held_elsewhere_shows_a_clear_message() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("profile");
        // Another owner, as `strand run` would be (the `live` tests use a
        // real `strand run` process).
        let holder = Profile::create(
            &dir,
            "Alice",
            PASS,
            strand_node::KdfParams::insecure_for_tests(),
            &mut strand_node::os_rng(),
        )
        .unwrap();
        let gui = Gui::new(h, options(&dir));
        let a = gui.onboarding();
        assert!(a.get_in_use());

        // Retrying while it is still held says so again; once released,
        // the unlock screen shows and works.
        a.invoke_retry();
        assert!(a.get_busy());
        assert!(h.pump_until(WAIT, || !a.get_busy()));
        assert!(a.get_in_use());
        drop(holder);
        a.invoke_retry();
        assert!(h.pump_until(WAIT, || !a.get_in_use()));
        assert!(!a.get_first_run());
        a.invoke_unlock(PASS.into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats));
    });
}

#[test]
fn the_passphrase_changes_from_the_settings() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("profile");
        let gui = Gui::new(h, options(&dir));
        gui.create(h, "Alice");
        let s = gui.ui.global::<SettingsAdapter>();
        const NEW: &str = "a heron stands where the canal bends";

        // The meter follows what is typed.
        s.invoke_new_passphrase_edited("password".into());
        assert!(s.get_new_strength() < 2, "{}", s.get_new_strength_hint());
        s.invoke_new_passphrase_edited(NEW.into());
        assert!(s.get_new_strength() >= 3, "{}", s.get_new_strength_hint());

        // Two different new ones, a wrong current one, a weak new one:
        // each says why, and the passphrase stays.
        s.invoke_change_passphrase(PASS.into(), NEW.into(), "something else".into());
        assert!(s.get_passphrase_result().contains("differ"));
        s.invoke_change_passphrase("not it".into(), NEW.into(), NEW.into());
        assert!(h.pump_until(WAIT, || !s.get_passphrase_busy()));
        assert!(!s.get_passphrase_ok());
        assert!(
            s.get_passphrase_result().contains("wrong passphrase"),
            "{}",
            s.get_passphrase_result()
        );
        s.invoke_change_passphrase(PASS.into(), "password".into(), "password".into());
        assert!(h.pump_until(WAIT, || !s.get_passphrase_busy()));
        assert!(s.get_passphrase_result().contains("too weak"));

        s.invoke_change_passphrase(PASS.into(), NEW.into(), NEW.into());
        assert!(h.pump_until(WAIT, || !s.get_passphrase_busy()));
        assert!(s.get_passphrase_ok(), "{}", s.get_passphrase_result());

        // Locked, the old one no longer opens it; the new one does.
        s.invoke_lock();
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Onboarding
            && !gui.onboarding().get_busy()));
        let a = gui.onboarding();
        a.invoke_unlock(PASS.into());
        assert!(h.pump_until(WAIT, || !a.get_busy() && !a.get_error().is_empty()));
        a.invoke_unlock(NEW.into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats));
    });
}

/// The Bluetooth battery setting: three choices with what each costs,
/// the default balanced, and a choice kept in the profile.
#[test]
fn the_bluetooth_setting_changes_from_the_settings() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("profile");
        let gui = Gui::new(h, options(&dir));
        gui.create(h, "Alice");
        let s = gui.ui.global::<SettingsAdapter>();
        let options: Vec<String> = s
            .get_bluetooth_options()
            .iter()
            .map(|o| o.to_string())
            .collect();
        assert_eq!(
            options,
            [
                "Always (100 % radio)",
                "Balanced (20 % radio)",
                "Saver (3 % radio)"
            ]
        );
        assert!(h.pump_until(WAIT, || s.get_bluetooth() == 1));
        assert!(s.get_bluetooth_about().contains("2 s in every 10"));

        s.invoke_set_bluetooth(2);
        assert!(h.pump_until(WAIT, || s.get_bluetooth() == 2));
        assert!(s.get_bluetooth_about().contains("1 s in every 30"));
        // Out of range: nothing changes.
        s.invoke_set_bluetooth(7);
        h.pump_until(std::time::Duration::from_millis(300), || false);
        assert_eq!(s.get_bluetooth(), 2);

        drop(gui);
        let p = Profile::open(&dir, PASS).unwrap();
        assert_eq!(p.preferences().unwrap().bluetooth, strand_node::Duty::Saver);
    });
}

/// A form sent just as the profile locks (its request reaches the worker
/// after the lock, and no device answers it) is not left busy: after the
/// next unlock, Add and Change passphrase can be used again. Before, both
/// stayed greyed out until the app was restarted.
#[test]
fn forms_sent_as_the_profile_locks_are_not_left_busy() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("profile");
        let gui = Gui::new(h, options(&dir));
        gui.create(h, "Alice");
        let bob = strand_sync::Identity::generate("Bob", &mut strand_node::os_rng()).unwrap();
        let s = gui.ui.global::<SettingsAdapter>();
        let add = gui.ui.global::<strand_gui::AddContactAdapter>();
        s.invoke_lock();
        add.invoke_add(bob.invite().to_text().into(), "Bob".into());
        s.invoke_change_passphrase(PASS.into(), PASS.into(), PASS.into());
        assert!(add.get_busy() && s.get_passphrase_busy(), "sent");
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Onboarding
            && !gui.onboarding().get_busy()));
        assert!(h.pump_until(WAIT, || !add.get_busy() && !s.get_passphrase_busy()));
        gui.onboarding().invoke_unlock(PASS.into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats));
        assert!(gui.contacts().is_empty(), "nothing was added while locked");
        assert!(!add.get_busy() && !s.get_passphrase_busy());
    });
}

/// What an action said on one profile's screens (a bundle not imported,
/// a mailbox not paired, a relay, an address dialled, a passphrase not
/// changed, an invite checked, a contact not added, an image not read)
/// goes with the profile when it is wiped: the next profile's screens
/// show none of it. Before, it stayed ("From Bob: …", "Passphrase
/// changed", "Valid invite from “Bob”") until the same action was taken
/// again.
#[test]
fn what_actions_said_goes_with_a_wiped_profile() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("profile")));
        gui.create(h, "Alice");
        let net = gui.ui.global::<NetworkAdapter>();
        let s = gui.ui.global::<SettingsAdapter>();
        let add = gui.ui.global::<AddContactAdapter>();

        net.invoke_import_bundle("/nonexistent".into());
        assert!(h.pump_until(WAIT, || net.get_import_result() != ""));
        assert!(
            net.get_import_result().starts_with("Not imported"),
            "{}",
            net.get_import_result()
        );
        net.invoke_pair_mailbox("strand1nonsense".into());
        assert!(h.pump_until(WAIT, || net.get_mailbox_result() != ""));
        net.invoke_add_relay("not a relay".into());
        assert!(h.pump_until(WAIT, || net.get_relay_result() != ""));
        net.invoke_dial("not an address".into());
        assert!(net.get_dial_result() != "");
        s.invoke_change_passphrase(PASS.into(), PASS.into(), "something else".into());
        assert!(s.get_passphrase_result().contains("differ"));
        let bob = strand_sync::Identity::generate("Bob", &mut strand_node::os_rng()).unwrap();
        let code = bob.invite().to_text();
        add.invoke_add(code.clone().into(), "Bob".into());
        assert!(h.pump_until(WAIT, || gui.contacts().len() == 1));
        add.invoke_code_edited(code.clone().into());
        assert!(add.get_code_ok() && add.get_suggested_name() == "Bob");
        add.invoke_add(code.into(), "Robert".into());
        assert!(h.pump_until(WAIT, || !add.get_add_error().is_empty()));
        add.invoke_read_image("".into());
        assert!(!add.get_image_error().is_empty());

        s.invoke_wipe("Alice".into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Onboarding));
        gui.create(h, "Zed");
        assert_eq!(net.get_import_result(), "");
        assert_eq!(net.get_mailbox_result(), "");
        assert_eq!(net.get_relay_result(), "");
        assert_eq!(net.get_dial_result(), "");
        assert_eq!(s.get_passphrase_result(), "");
        assert!(!add.get_code_ok());
        assert_eq!(add.get_suggested_name(), "");
        assert_eq!(add.get_add_error(), "");
        assert_eq!(add.get_image_error(), "");
        assert!(gui.contacts().is_empty());
    });
}
