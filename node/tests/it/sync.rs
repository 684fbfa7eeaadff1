//! Two profiles' redb stores reconciled by real strand-sync sessions.

use strand_node::{os_rng, Delivery, KdfParams, Profile};
use strand_sync::{Config, Event, Store};

const NOW: u64 = 1_700_000_000_000;

fn pair(tmp: &std::path::Path) -> (Profile, Profile) {
    let mut rng = os_rng();
    let a = Profile::create(
        &tmp.join("a"),
        "Alice",
        "a",
        KdfParams::insecure_for_tests(),
        &mut rng,
    )
    .unwrap();
    let b = Profile::create(
        &tmp.join("b"),
        "Bob",
        "b",
        KdfParams::insecure_for_tests(),
        &mut rng,
    )
    .unwrap();
    let ia = a.identity().invite();
    let ib = b.identity().invite();
    a.add_contact(&ib, "Bob", NOW, &mut rng).unwrap();
    b.add_contact(&ia, "Alice", NOW, &mut rng).unwrap();
    (a, b)
}

/// Runs one link between the two profiles until quiet (Alice dials),
/// storing what arrives in each profile's redb file.
pub(crate) fn sync(a: &Profile, b: &Profile) -> (Vec<Event>, Vec<Event>) {
    let mut rng = os_rng();
    let mut sa = a.endpoint().dial(Config::default(), NOW, &mut rng);
    let mut sb = b.endpoint().accept(Config::default(), NOW, &mut rng);
    let mut store_a = a.store().unwrap();
    let mut store_b = b.store().unwrap();
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
    let ea = std::iter::from_fn(|| sa.poll_event()).collect();
    let eb = std::iter::from_fn(|| sb.poll_event()).collect();
    (ea, eb)
}

#[test]
fn two_profiles_sync_over_their_redb_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path());
    let mut rng = os_rng();
    for i in 0..300 {
        a.write(
            "Bob",
            &format!("a{i}"),
            NOW - 1_000_000 + i * 1000,
            &mut rng,
        )
        .unwrap();
    }
    for i in 0..200 {
        b.write(
            "Alice",
            &format!("b{i}"),
            NOW - 900_000 + i * 1000,
            &mut rng,
        )
        .unwrap();
    }
    let (ea, _) = sync(&a, &b);
    let ca = a.conversation("Bob").unwrap();
    let cb = b.conversation("Alice").unwrap();
    assert_eq!(ca.len(), 500);
    // The same messages; each side shows the other's, which claim to be
    // older than its own last one, below its own, in the order they came.
    let keys = |c: &[strand_node::StoredMessage]| {
        let mut k = c.iter().map(|m| m.key).collect::<Vec<_>>();
        k.sort();
        k
    };
    assert_eq!(keys(&ca), keys(&cb));
    assert!(ca[..300].iter().all(|m| m.outgoing));
    assert!(cb[..200].iter().all(|m| m.outgoing));
    // Delivery events name exactly the 300 messages Alice sent; record them.
    let delivered: Vec<_> = ea
        .iter()
        .filter_map(|e| match e {
            Event::Delivered { group, key } => Some((*group, *key)),
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 300, "acks cover every message sent");
    for (g, k) in &delivered {
        a.mark(g, k, Delivery::Delivered).unwrap();
    }
    let ca = a.conversation("Bob").unwrap();
    assert!(ca
        .iter()
        .filter(|m| m.outgoing)
        .all(|m| m.delivery == Some(Delivery::Delivered)));
    // Survives a reopen; a second sync moves nothing new.
    let (dir_a, dir_b) = (a.dir().to_path_buf(), b.dir().to_path_buf());
    drop((a, b));
    let a = Profile::open(&dir_a, "a").unwrap();
    let b = Profile::open(&dir_b, "b").unwrap();
    let (ea, eb) = sync(&a, &b);
    assert!(!ea
        .iter()
        .chain(&eb)
        .any(|e| matches!(e, Event::Received { .. })));
    assert_eq!(b.conversation("Alice").unwrap().len(), 500);
    let mut count = 0;
    b.store()
        .unwrap()
        .scan(
            &b.sync_contacts()[0].direct_group().id,
            &strand_sync::KeyRange::ALL,
            &mut |_| {
                count += 1;
                std::ops::ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(count, 500);
}
