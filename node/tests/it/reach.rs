//! Relays in the profile, and the records that tell contacts about them
//!.

use strand_node::{os_rng, KdfParams, Profile, ProfileError};
use strand_sync::{Config, Kind, Store};

const NOW: u64 = 1_700_000_000_000;
const RELAY: &str =
    "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWGRYZDHBembyGJQqQ6WgLqJWYNjnECGDVtFdxXnYyRJFk";

fn pair(root: &std::path::Path) -> (Profile, Profile) {
    let mut rng = os_rng();
    let kdf = KdfParams::insecure_for_tests();
    let a = Profile::create(&root.join("a"), "Alice", "a", kdf, &mut rng).unwrap();
    let b = Profile::create(&root.join("b"), "Bob", "b", kdf, &mut rng).unwrap();
    a.add_contact(&b.identity().invite(), "Bob", NOW, &mut rng)
        .unwrap();
    b.add_contact(&a.identity().invite(), "Alice", NOW, &mut rng)
        .unwrap();
    (a, b)
}

/// Runs one link between the two profiles until quiet.
fn sync(a: &Profile, b: &Profile) {
    let mut rng = os_rng();
    let mut sa = a.endpoint().dial(Config::default(), NOW, &mut rng);
    let mut sb = b.endpoint().accept(Config::default(), NOW, &mut rng);
    let (mut store_a, mut store_b) = (a.store().unwrap(), b.store().unwrap());
    loop {
        let mut moved = false;
        while let Some(p) = sb.poll_transmit(NOW, &store_b) {
            sa.handle_input(NOW, &p, &store_a).unwrap();
            sa.settle(NOW, &mut store_a);
            moved = true;
        }
        store_a.commit().unwrap();
        while let Some(p) = sa.poll_transmit(NOW, &store_a) {
            sb.handle_input(NOW, &p, &store_b).unwrap();
            sb.settle(NOW, &mut store_b);
            moved = true;
        }
        store_b.commit().unwrap();
        if !moved {
            break;
        }
    }
}

#[test]
fn relays_reach_contacts_inside_the_conversation_and_are_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let mut rng = os_rng();
    assert!(a.relays().unwrap().is_empty());
    a.write("Bob", "a text first", NOW - 10, &mut rng).unwrap();
    let added = a.add_relay(&format!("  {RELAY} "), NOW, &mut rng).unwrap();
    assert_eq!(added.address, RELAY);
    assert_eq!(added.written.len(), 1, "one record, to Bob");
    assert_eq!(a.relays().unwrap(), [RELAY]);
    // Bob has no record of Alice's until they sync; then he has it.
    let bob_view_of_alice = b.contact("Alice").unwrap();
    assert!(b.contact_reach(&bob_view_of_alice).unwrap().is_none());
    sync(&a, &b);
    let reach = b.contact_reach(&bob_view_of_alice).unwrap().unwrap();
    assert_eq!(reach.relays.len(), 1);
    assert_eq!(
        reach.relays[0],
        RELAY
            .parse::<strand_transport::Multiaddr>()
            .unwrap()
            .to_vec()
    );
    assert_eq!(reach.seed, a.relay_seed(&mut rng).unwrap());
    // The record is in the log but no conversation view shows it.
    let conv = b.conversation("Alice").unwrap();
    assert_eq!(conv.len(), 1);
    assert_eq!(conv[0].text, "a text first");
    assert_eq!(b.conversation_keys("Alice").unwrap().len(), 1);
    let summaries = b.summaries().unwrap();
    assert_eq!(summaries[0].last.as_ref().unwrap().text, "a text first");
    assert_eq!(summaries[0].unread, 1);
    // Removing it writes a newer record, which wins.
    assert!(a.remove_relay(RELAY, NOW + 1, &mut rng).unwrap().is_some());
    assert!(a.remove_relay(RELAY, NOW + 2, &mut rng).unwrap().is_none());
    sync(&a, &b);
    assert!(b
        .contact_reach(&bob_view_of_alice)
        .unwrap()
        .unwrap()
        .relays
        .is_empty());
    // Saying the same thing again writes nothing.
    let before = a.stored_messages().unwrap();
    assert!(a.publish_reach(&[], NOW + 3, &mut rng).unwrap().is_empty());
    assert_eq!(a.stored_messages().unwrap(), before);
}

#[test]
fn a_contact_added_later_gets_the_record_too() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = os_rng();
    let kdf = KdfParams::insecure_for_tests();
    let a = Profile::create(&tmp.path().join("a"), "Alice", "a", kdf, &mut rng).unwrap();
    a.add_relay(RELAY, NOW, &mut rng).unwrap();
    let c = Profile::create(&tmp.path().join("c"), "Carol", "c", kdf, &mut rng).unwrap();
    a.add_contact(&c.identity().invite(), "Carol", NOW, &mut rng)
        .unwrap();
    c.add_contact(&a.identity().invite(), "Alice", NOW, &mut rng)
        .unwrap();
    sync(&a, &c);
    let alice = c.contact("Alice").unwrap();
    assert_eq!(c.contact_reach(&alice).unwrap().unwrap().relays.len(), 1);
    // Only the record is there: nothing to show.
    assert!(c.conversation("Alice").unwrap().is_empty());
    let group = c.sync_contact(&alice).unwrap().direct_group().clone();
    let mut kinds = Vec::new();
    c.store()
        .unwrap()
        .scan(&group.id, &strand_sync::KeyRange::ALL, &mut |k| {
            kinds.push(*k);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(kinds.len(), 1);
    // It is stored and opens under the group key, though no one sees it.
    assert!(c.message_text(&group, &kinds[0]).unwrap().is_some());
    let _ = Kind::REACH;
}

#[test]
fn bad_relay_addresses_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = pair(tmp.path());
    let mut rng = os_rng();
    let before = a.stored_messages().unwrap();
    let circuit = format!(
        "{RELAY}/p2p-circuit/p2p/{}",
        RELAY.rsplit('/').next().unwrap()
    );
    for bad in [
        "not an address",
        "/ip4/203.0.113.7/tcp/4001",
        "",
        circuit.as_str(),
    ] {
        assert!(
            matches!(
                a.add_relay(bad, NOW, &mut rng),
                Err(ProfileError::Relay(_) | ProfileError::RelayAddress { .. })
            ),
            "{bad:?} accepted"
        );
    }
    a.add_relay(RELAY, NOW, &mut rng).unwrap();
    assert!(matches!(
        a.add_relay(RELAY, NOW, &mut rng),
        Err(ProfileError::Relay(_))
    ));
    assert_eq!(a.relays().unwrap().len(), 1);
    assert_eq!(
        a.stored_messages().unwrap(),
        before + 1,
        "one record, to Bob"
    );
}

/// Regression: a relay address was added if it ended in the relay's id
/// and went through no relay, so one the relay client cannot dial (at
/// `/ws`, at `0.0.0.0`, at port 0, at QUIC's draft `/quic`, or no
/// address at all) was added, told to contacts, and failed every
/// reservation and circuit for ever. Now it is refused, saying what a
/// relay address may be, and nothing is stored or told.
#[test]
fn a_relay_the_client_cannot_dial_is_refused_saying_what_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = pair(tmp.path());
    let mut rng = os_rng();
    a.add_relay(RELAY, NOW, &mut rng).unwrap();
    let before = a.stored_messages().unwrap();
    let id = RELAY.rsplit('/').next().unwrap();
    for bad in [
        format!("/ip4/1.2.3.4/tcp/4001/ws/p2p/{id}"),
        format!("/ip4/0.0.0.0/tcp/4001/p2p/{id}"),
        format!("/ip4/1.2.3.4/tcp/0/p2p/{id}"),
        format!("/ip4/1.2.3.4/udp/4001/quic/p2p/{id}"),
        format!("/p2p/{id}"),
    ] {
        match a.add_relay(&bad, NOW, &mut rng) {
            Err(ProfileError::Relay(why)) => assert!(
                why.contains("a relay is reached over TCP") && why.contains("/tcp/PORT"),
                "{bad}: {why}"
            ),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert_eq!(a.relays().unwrap(), [RELAY], "the list is unchanged");
    assert_eq!(a.stored_messages().unwrap(), before, "nothing told");
    // QUIC's `/quic-v1` is taken where this build speaks QUIC.
    let quic = format!("/ip6/::1/udp/4001/quic-v1/p2p/{id}");
    assert_eq!(
        a.add_relay(&quic, NOW, &mut rng).is_ok(),
        strand_transport::QUIC,
        "{quic}"
    );
}

/// Someone who never synced with Alice (they swapped codes by
/// mail) learns her relays from her invite; her own records win once they
/// sync.
#[test]
fn an_invite_tells_a_new_contact_the_relays_until_records_say_more() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = os_rng();
    let kdf = KdfParams::insecure_for_tests();
    let a = Profile::create(&tmp.path().join("a"), "Alice", "a", kdf, &mut rng).unwrap();
    let b = Profile::create(&tmp.path().join("b"), "Bob", "b", kdf, &mut rng).unwrap();
    let seed_only = a
        .invite()
        .unwrap()
        .reach
        .expect("the seed, even with no relays");
    assert!(seed_only.relays.is_empty());
    a.add_relay(RELAY, NOW, &mut rng).unwrap();
    let code = a.invite().unwrap().to_text();
    let invite = strand_sync::Invite::from_text(&code).unwrap();
    b.add_contact(&invite, "Alice", NOW, &mut rng).unwrap();
    a.add_contact(&b.identity().invite(), "Bob", NOW, &mut rng)
        .unwrap();
    let alice = b.contact("Alice").unwrap();
    let from_invite = b.contact_reach(&alice).unwrap().expect("from the invite");
    assert_eq!(from_invite.seed, a.relay_seed(&mut rng).unwrap());
    assert_eq!(from_invite.relays.len(), 1);
    // The invite's section is sealed at rest like everything else.
    drop(b);
    let raw = std::fs::read(tmp.path().join("b").join(strand_node::schema::DB_FILE)).unwrap();
    let seed = a.relay_seed(&mut rng).unwrap();
    assert!(
        !raw.windows(32).any(|w| w == seed),
        "the seed is not in the clear"
    );
    let b = Profile::open(&tmp.path().join("b"), "b").unwrap();
    // Alice removes the relay; after a sync her record wins over the invite.
    a.remove_relay(RELAY, NOW + 1, &mut rng).unwrap();
    sync(&a, &b);
    let alice = b.contact("Alice").unwrap();
    assert!(b.contact_reach(&alice).unwrap().unwrap().relays.is_empty());
}
