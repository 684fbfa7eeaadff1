//! The Network screen's relays: adding one, its reservation,
//! a bad address refused, a contact reached through it (the conversation
//! header and the contact list say "relayed"), every address in full.

use slint::{ComponentHandle, Model};
use strand_gui::{AddContactAdapter, AppAdapter, ConversationAdapter, NetworkAdapter, Screen};
use strand_node::{os_rng, KdfParams, Node, NodeConfig, Profile, RelaySettings};
use strand_transport::relay::server::{RelayLimits, RelayServer, RelayServerConfig};
use strand_transport::LanConfig;

use crate::support::{on_ui, options, Gui, WAIT};

/// Relays only (no hole punching), and a LAN on two loopback addresses.
fn config() -> NodeConfig {
    NodeConfig {
        lan: Some(LanConfig {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
                "/ip6/::1/tcp/0".parse().unwrap(),
            ],
            mdns: false,
            ..LanConfig::default()
        }),
        relay: Some(RelaySettings {
            hole_punch: false,
            listen: Vec::new(),
            ..RelaySettings::default()
        }),
        ..NodeConfig::default()
    }
}

#[test]
fn a_relay_added_on_the_network_screen_reserves_and_carries_a_contact() {
    on_ui(|h| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let relay = rt
            .block_on(RelayServer::start(RelayServerConfig {
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
                announce: Vec::new(),
                key: [0x17; 32],
                limits: RelayLimits::default(),
                only: None,
            }))
            .unwrap();
        let relay_addr = rt.block_on(relay.addresses())[0].to_string();
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = options(&tmp.path().join("alice"));
        opts.node = config();
        let gui = Gui::new(h, opts);
        gui.create(h, "Alice");
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Network);
        let net = gui.ui.global::<NetworkAdapter>();

        // Every LAN address in full, each on its own line.
        assert!(h.pump_until(WAIT, || net
            .get_transports()
            .iter()
            .any(|t| t.name == "LAN" && t.addresses.row_count() == 2)));
        let lan = net
            .get_transports()
            .iter()
            .find(|t| t.name == "LAN")
            .unwrap();
        assert!(lan.addresses.iter().any(|a| a.starts_with("/ip6/::1/tcp/")));

        // A bad address is refused and changes nothing.
        net.invoke_add_relay("/ip4/127.0.0.1/tcp/4001".into());
        assert!(h.pump_until(WAIT, || !net.get_relay_result().is_empty()));
        assert!(!net.get_relay_ok());
        assert!(
            net.get_relay_result().contains("/p2p/"),
            "{}",
            net.get_relay_result()
        );
        assert_eq!(net.get_relays().row_count(), 0);

        net.invoke_add_relay(relay_addr.clone().into());
        assert!(
            h.pump_until(WAIT, || net
                .get_relays()
                .iter()
                .any(|r| r.address == relay_addr.as_str() && r.ok && r.removable)),
            "{:?} {}",
            net.get_relays().iter().collect::<Vec<_>>(),
            net.get_relay_result()
        );
        assert!(net.get_relay_ok());
        let relay_row = net
            .get_transports()
            .iter()
            .find(|t| t.name == "Relay")
            .unwrap();
        assert_eq!(relay_row.state, "reserved 1 of 1");
        assert!(relay_row
            .addresses
            .iter()
            .any(|a| a.contains("/p2p-circuit/")));

        // Bob, elsewhere: no LAN, the same relay; they swap codes.
        let bob = Profile::create(
            &tmp.path().join("bob"),
            "Bob",
            "bob pass",
            KdfParams::insecure_for_tests(),
            &mut os_rng(),
        )
        .unwrap();
        bob.add_relay(&relay_addr, strand_node::now(), &mut os_rng())
            .unwrap();
        let alice_invite = strand_sync::Invite::from_text(&gui.invite()).unwrap();
        assert_eq!(
            alice_invite.reach.as_ref().unwrap().relays.len(),
            1,
            "the app's invite carries the relay"
        );
        bob.add_contact(&alice_invite, "Alice", strand_node::now(), &mut os_rng())
            .unwrap();
        gui.ui
            .global::<AddContactAdapter>()
            .invoke_add(bob.invite().unwrap().to_text().into(), "Bob".into());
        assert!(h.pump_until(WAIT, || gui.contacts().len() == 1));
        let mut bob_config = config();
        bob_config.lan = None;
        let bob = rt.block_on(Node::start(bob, bob_config)).unwrap();
        rt.block_on(bob.send("Alice", "hello through the relay"))
            .unwrap();
        assert!(h.pump_until(WAIT, || gui
            .contacts()
            .first()
            .is_some_and(|c| c.last_text == "hello through the relay")));
        assert!(h.pump_until(WAIT, || gui.contacts()[0].reach == "relayed · connected"));
        gui.ui.global::<AppAdapter>().invoke_navigate(Screen::Chats);
        gui.ui
            .global::<strand_gui::ContactsAdapter>()
            .invoke_open(0);
        let conv = gui.ui.global::<ConversationAdapter>();
        assert!(h.pump_until(WAIT, || conv.get_reach() == "relayed · connected"));
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Network);
        assert!(h.pump_until(WAIT, || net
            .get_peers()
            .iter()
            .any(|p| p.name == "Bob" && p.online && p.link == "relayed")));

        // The screen's lists are kept and changed in place as it refreshes
        // (a new list every few seconds made every item on it anew, the
        // button under the pointer too); a row that did not change keeps
        // its own list of addresses.
        let lists = (net.get_transports(), net.get_relays(), net.get_peers());
        let lan_addresses = |net: &NetworkAdapter| {
            net.get_transports()
                .iter()
                .find(|t| t.name == "LAN")
                .unwrap()
                .addresses
        };
        let lan = lan_addresses(&net);
        let messages = net.get_messages();
        rt.block_on(bob.send("Alice", "and again")).unwrap();
        assert!(h.pump_until(WAIT, || net.get_messages() != messages));
        assert!(lists == (net.get_transports(), net.get_relays(), net.get_peers()));
        assert!(lan == lan_addresses(&net));

        // Removing it.
        net.invoke_remove_relay(relay_addr.clone().into());
        assert!(h.pump_until(WAIT, || net.get_relays().row_count() == 0));
        assert!(net.get_relay_ok());
        rt.block_on(bob.shutdown());
    });
}
