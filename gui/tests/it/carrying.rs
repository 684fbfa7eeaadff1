//! Carrying in the app: the switch on the Network screen turns
//! carrying on and off, the line under it says what is held, and a
//! contact's node learns it over a real loopback link.

use slint::ComponentHandle;
use strand_gui::NetworkAdapter;

use crate::support::{on_ui, options, Gui, WAIT};

#[test]
fn the_switch_turns_carrying_on_and_contacts_learn_it() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("alice")));
        gui.create(h, "Alice");
        let (rt, bob) = gui.bob_linked(h, tmp.path());
        let net = gui.ui.global::<NetworkAdapter>();

        assert!(!net.get_carrying());
        net.set_carrying(true);
        net.invoke_set_carrying(true);
        assert!(h.pump_until(WAIT, || net
            .get_carry_status()
            .starts_with("Holding 0 messages")));
        assert!(net.get_carrying());
        assert!(
            net.get_carry_status().contains("0 contacts carry for you"),
            "{}",
            net.get_carry_status()
        );
        assert!(h.pump_until(WAIT, || bob.carry_status().carriers == 1));

        net.set_carrying(false);
        net.invoke_set_carrying(false);
        assert!(h.pump_until(WAIT, || !net.get_carry_status().starts_with("Holding")));
        assert!(h.pump_until(WAIT, || bob.carry_status().carriers == 0));
        rt.block_on(bob.shutdown());
    });
}

#[test]
fn a_mailbox_is_paired_from_the_network_screen() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("alice")));
        gui.create(h, "Alice");
        let bob = gui.bob(tmp.path());
        gui.add_bob(h, &bob.identity().invite().to_text());
        // The mailbox: a profile of its own that took Alice's invite.
        let mailbox = strand_node::Profile::create(
            &tmp.path().join("mailbox"),
            "attic laptop",
            "mailbox pass",
            strand_node::KdfParams::insecure_for_tests(),
            &mut strand_node::os_rng(),
        )
        .unwrap();
        let alice = strand_sync::Invite::from_text(&gui.invite()).unwrap();
        mailbox
            .become_mailbox(
                &alice,
                &strand_node::CarrySettings::default(),
                strand_node::now(),
                &mut strand_node::os_rng(),
            )
            .unwrap();
        let net = gui.ui.global::<NetworkAdapter>();
        net.invoke_pair_mailbox("strand1nonsense".into());
        assert!(h.pump_until(WAIT, || net.get_mailbox_result() != ""));
        assert!(!net.get_mailbox_ok());
        assert!(net.get_mailbox_result().starts_with("Not paired"));
        // An invite is no mailbox code.
        net.invoke_pair_mailbox(mailbox.invite().unwrap().to_text().into());
        assert!(h.pump_until(WAIT, || net.get_mailbox_result().contains("not an invite")));
        net.invoke_pair_mailbox(mailbox.mailbox_code().unwrap().unwrap().into());
        assert!(h.pump_until(WAIT, || net.get_mailbox_ok()));
        assert!(
            net.get_mailbox_status()
                .starts_with("Your mailbox is paired"),
            "{}",
            net.get_mailbox_status()
        );
        // The mailbox is a contact now; Bob will be told of it.
        assert!(h.pump_until(WAIT, || gui.contacts().len() == 2));
    });
}
