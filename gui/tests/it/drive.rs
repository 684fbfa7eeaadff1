//! Removable drives in the app: import a bundle a contact wrote
//! (on the Network screen, through the file picker's path), and "Send by
//! drive" from a conversation writes one only that contact opens.

use slint::{ComponentHandle, Model};
use strand_gui::{ConversationAdapter, NetworkAdapter};
use strand_node::os_rng;

use crate::support::{on_ui, options, Gui, WAIT};

#[test]
fn bundles_are_imported_and_written_from_the_app() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let drive = tmp.path().join("drive");
        std::fs::create_dir(&drive).unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("alice")));
        gui.create(h, "Alice");
        let bob = gui.bob(tmp.path());
        gui.add_bob(h, &bob.identity().invite().to_text());

        // Bob, never met, writes and sends by drive.
        bob.write(
            "Alice",
            "the minutes, by hand",
            strand_node::now(),
            &mut os_rng(),
        )
        .unwrap();
        let from_bob = drive.join("for-alice.strand");
        bob.export_bundle("Alice", &from_bob, strand_node::now(), &mut os_rng())
            .unwrap();
        let net = gui.ui.global::<NetworkAdapter>();
        // A changed file: refused, says why, nothing shown.
        let mut bytes = std::fs::read(&from_bob).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        let changed = drive.join("changed.strand");
        std::fs::write(&changed, bytes).unwrap();
        net.set_importing(true);
        net.invoke_import_bundle(changed.to_str().unwrap().into());
        assert!(h.pump_until(WAIT, || net.get_import_result() != ""));
        assert!(!net.get_import_ok());
        assert!(
            net.get_import_result().contains("damaged or was changed"),
            "{}",
            net.get_import_result()
        );
        assert!(net.get_importing(), "the picker stays open to pick another");
        net.invoke_import_bundle(from_bob.to_str().unwrap().into());
        assert!(h.pump_until(WAIT, || net.get_import_ok()));
        assert_eq!(
            net.get_import_result(),
            "From Bob: 1 text and 0 files new, 0 already here."
        );
        assert!(!net.get_importing());
        assert!(h.pump_until(WAIT, || gui
            .contacts()
            .first()
            .is_some_and(|c| c.last_text.contains("the minutes"))));

        // Alice answers and sends by drive.
        gui.ui
            .global::<strand_gui::ContactsAdapter>()
            .invoke_open(0);
        let c = gui.ui.global::<ConversationAdapter>();
        assert!(h.pump_until(WAIT, || c.get_contact() == "Bob"));
        assert!(c.invoke_send("got them, thanks".into()));
        assert!(h.pump_until(WAIT, || c
            .get_messages()
            .iter()
            .any(|m| m.text == "got them, thanks")));
        c.invoke_start_export();
        assert!(c.get_exporting());
        assert!(c.get_drive_folder() != "");
        c.invoke_export_bundle("/no/such/drive".into());
        assert!(h.pump_until(WAIT, || c.get_error().starts_with("Not written")));
        c.invoke_export_bundle(drive.to_str().unwrap().into());
        assert!(h.pump_until(WAIT, || c.get_notice().starts_with("Wrote")));
        assert!(!c.get_exporting());
        let to_bob = drive.join("strand-bundle.strand");
        assert!(to_bob.exists(), "{}", c.get_notice());
        // A second one does not replace it.
        c.invoke_export_bundle(drive.to_str().unwrap().into());
        assert!(h.pump_until(WAIT, || drive.join("strand-bundle (2).strand").exists()));
        let got = bob
            .import_bundle(
                &to_bob,
                &Default::default(),
                strand_node::now(),
                &mut os_rng(),
            )
            .unwrap();
        assert_eq!(got.contact, "Alice");
        assert!(bob
            .conversation("Alice")
            .unwrap()
            .iter()
            .any(|m| m.text == "got them, thanks"));
    });
}
