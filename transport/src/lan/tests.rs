//! Rotations that cannot listen. They need an address that was fine when
//! the transport started and is unusable at a later rotation, as after a
//! change of network. Loopback has no such address to take away, so these
//! tests put one into the addresses rotations listen on (`Shared::bound`,
//! which no public call reaches): 127.0.0.1 on a port a plain socket of
//! the test holds. Without `SO_REUSEPORT` on that socket, the kernel
//! refuses every other listener there.
//!
//! The start tells an address that is gone from one that fails otherwise
//! (a held port fails it), so its tests take an address on no interface
//! of this machine instead ([`gone_address`]); loopback cannot bring that
//! one back, so where a test needs an address back, it gives the LAN's
//! list one that works.
//!
//! A listen on an unspecified address where the device has no address of
//! its family needs a network with none: that test runs again in a
//! process of its own, in a network namespace it makes
//! ([`crate::network_namespace`]).

use std::net::TcpListener;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use tokio::sync::mpsc;

use super::{Backoff, Lan, LanConfig, When, MAX_GENERATIONS};
use crate::network_namespace::{in_a_network_with_no_address, ip};
use crate::ports::PortInUse;
use crate::{Transport, TransportError, TransportEvent};

#[path = "../../tests/support/neighbour.rs"]
mod neighbour;

use neighbour::{neighbour, peer_id_seen_at};

/// A transport set to listen on `listen` that rotates only when told to
/// (or when quiet: the period is an hour), without mDNS (which ignores
/// loopback).
async fn start_on(
    listen: Vec<Multiaddr>,
) -> Result<(Lan, mpsc::Receiver<TransportEvent>), TransportError> {
    start_rotating(listen, Duration::from_secs(3600)).await
}

/// [`start_on`], rotating by itself every `every`.
async fn start_rotating(
    listen: Vec<Multiaddr>,
    every: Duration,
) -> Result<(Lan, mpsc::Receiver<TransportEvent>), TransportError> {
    let (tx, rx) = mpsc::channel(64);
    let config = LanConfig {
        listen,
        mdns: false,
        rotate_every: every,
    };
    Ok((Lan::start(config, tx).await?, rx))
}

/// A transport on 127.0.0.1 (see [`start_on`]), and the address it
/// listens on.
async fn start() -> (Lan, mpsc::Receiver<TransportEvent>, Multiaddr) {
    let (lan, rx) = start_on(vec![any_port()]).await.unwrap();
    let addr = lan
        .listen_addrs()
        .await
        .into_iter()
        .next()
        .expect("listening");
    (lan, rx, addr)
}

/// 127.0.0.1 at a port the system chooses.
fn any_port() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

/// An address on no interface of this machine, as one given with
/// `--listen` is after a change of network: 192.0.2.1 (TEST-NET-1, RFC
/// 5737, never a host's), which the system refuses with `EADDRNOTAVAIL`.
/// Nothing is sent there. Where the system lets a socket bind it (the
/// address assigned, or `net.ipv4.ip_nonlocal_bind` set), the tests
/// that use it would fail with messages that do not say why, so this
/// checks first and says so. (node/src/runtime/peers.rs checks the same.)
fn gone_address() -> Multiaddr {
    match TcpListener::bind("192.0.2.1:0") {
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {}
        other => panic!(
            "these tests need 192.0.2.1 (TEST-NET-1) to be unbindable here; is \
             net.ipv4.ip_nonlocal_bind set or the address assigned? (binding it gave {other:?})"
        ),
    }
    "/ip4/192.0.2.1/tcp/4001".parse().unwrap()
}

/// A port on 127.0.0.1 held by a socket without `SO_REUSEPORT`, and its
/// address: nothing else can listen there while the socket lives.
fn held_port() -> (TcpListener, Multiaddr) {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    (
        holder,
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap(),
    )
}

/// The identity the transport shows now, if any.
async fn identity(lan: &Lan) -> Option<String> {
    lan.info().await.ephemeral_id
}

/// The identity a neighbour meets at `addr`, or `None` if nothing answers
/// there.
async fn met_at(addr: &Multiaddr) -> Option<String> {
    peer_id_seen_at(&mut neighbour(), addr)
        .await
        .ok()
        .map(|p| p.to_string())
}

/// A rotation stopped at the first address it could not listen on and
/// failed: the old identity stayed current and went on listening (a
/// neighbour met the same PeerId as before), and the new generation ran on,
/// unused, until sixteen more rotations pushed it out. Now the new
/// identity takes over on the addresses it can listen on, and the one it
/// could not is tried again at the next rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_cannot_listen_on_one_address_still_rotates() {
    let (lan, _events, working) = start().await;
    let before = identity(&lan).await.expect("an identity");
    assert_eq!(met_at(&working).await.as_ref(), Some(&before));
    let (holder, gone) = held_port();
    // The unusable address first: a rotation that stopped there had
    // listened nowhere yet.
    *lan.shared.bound.lock().unwrap() = vec![gone.clone(), working.clone()];

    lan.rotate()
        .await
        .expect("the rotation takes the address it can listen on");
    let after = identity(&lan).await.expect("a new identity");
    assert_ne!(after, before, "the identity rotated");
    assert_eq!(
        met_at(&working).await.as_ref(),
        Some(&after),
        "a neighbour meets the new identity, not the old one"
    );

    // The address is back: the next rotation listens there too.
    drop(holder);
    lan.rotate().await.unwrap();
    let newest = identity(&lan).await.expect("a newer identity");
    assert_eq!(met_at(&gone).await.as_ref(), Some(&newest));
    assert_eq!(met_at(&working).await.as_ref(), Some(&newest));
}

/// An address a rotation listened on again, back after the rotation
/// before could not listen there (gone after a change of network, while
/// the LAN listened on its others), was not checked for another
/// program's socket as the start checks it ([`crate::ports::probe`]):
/// the old generation held the LAN's other ports, so rotations checked
/// nothing, and the new identity listened beside whatever took the port
/// meanwhile (here another LAN, as a second Strand node given the same
/// `--listen` would), splitting new connections with it. Now a rotation
/// checks each address its old generation does not listen at, and one
/// whose port another program holds is left for the next rotation, as
/// any address it cannot listen on: the identity still rotates, on the
/// others. Fails before at the second rotation's addresses: the new
/// identity listened at the other LAN's port too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_does_not_take_a_port_another_lan_took_while_its_address_was_gone() {
    let (lan, _events, working) = start().await;
    let before = identity(&lan).await.expect("an identity");
    // The address is gone at a rotation (its port held, as in the test
    // above).
    let (holder, back) = held_port();
    *lan.shared.bound.lock().unwrap() = vec![back.clone(), working.clone()];
    lan.rotate()
        .await
        .expect("the rotation takes the address it can listen on");
    assert_eq!(lan.listen_addrs().await, vec![working.clone()]);

    // It is back, and another LAN listens there before the next rotation.
    drop(holder);
    let (other, _other_events) = start_on(vec![back.clone()])
        .await
        .expect("the other LAN listens where the address is back");
    let others = identity(&other).await.expect("an identity");

    lan.rotate()
        .await
        .expect("the rotation takes the address it can listen on");
    let after = identity(&lan).await.expect("a new identity");
    assert_ne!(after, before, "the identity rotated");
    assert_eq!(
        lan.listen_addrs().await,
        vec![working.clone()],
        "the new identity listens at the port the other LAN took"
    );
    assert_eq!(met_at(&working).await.as_ref(), Some(&after));
    assert_eq!(
        met_at(&back).await.as_ref(),
        Some(&others),
        "the other LAN keeps its port"
    );
    assert!(
        lan.shared.bound.lock().unwrap().contains(&back),
        "the address is tried again at the next rotation"
    );

    // The other LAN gone, the next rotation listens there.
    other.shutdown().await;
    lan.rotate().await.unwrap();
    let newest = identity(&lan).await.expect("a newer identity");
    assert_eq!(met_at(&back).await.as_ref(), Some(&newest));
    assert_eq!(met_at(&working).await.as_ref(), Some(&newest));
    lan.shutdown().await;
}

/// A rotation that could listen on none of its addresses (all gone, as on
/// waking on another network) failed and changed nothing: the old identity
/// stayed current, listening, announcing and dialling with one PeerId for
/// as long as the network stayed changed (the next try came a whole
/// rotation period later), and the new generation ran on beside it. Now
/// the new generation is stopped at once, the old one drains as at any
/// rotation, and the LAN is quiet, with no identity at all, until a
/// rotation succeeds, which it tries again soon by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_can_listen_nowhere_goes_quiet_until_one_succeeds() {
    let (lan, _events, working) = start().await;
    let before = identity(&lan).await.expect("an identity");
    let (holder, gone) = held_port();
    *lan.shared.bound.lock().unwrap() = vec![gone.clone()];

    let err = lan.rotate().await.unwrap_err();
    assert!(
        matches!(&err, TransportError::Listen { addr, .. } if *addr == gone),
        "{err}"
    );
    assert_eq!(identity(&lan).await, None, "the old identity is over");
    assert!(lan.listen_addrs().await.is_empty());
    assert_eq!(met_at(&working).await, None, "nothing answers any more");
    let dialled = lan.dial(&working).expect("a LAN address").await;
    assert!(matches!(dialled, Err(TransportError::Quiet)), "{dialled:?}");
    // No generation runs on: the old one had no links to keep, the new
    // one never took over. (A retry may be under way for a moment; the
    // port is still held, so it stops as soon as it starts.)
    tokio::time::timeout(Duration::from_secs(10), async {
        while lan
            .shared
            .old
            .lock()
            .unwrap()
            .iter()
            .any(|g| !g.task.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every generation stopped");

    // The address is back: the LAN tries again by itself, well before its
    // hourly rotation, and listens there with a new identity.
    drop(holder);
    let back = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(id) = identity(&lan).await {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a retry that listens, in time");
    assert_ne!(back, before);
    assert_eq!(met_at(&gone).await.as_ref(), Some(&back));
}

/// A rotation asked for after shutdown (on waking, as the node does,
/// while it stops) started a new generation that nothing stopped:
/// shutdown had already stopped the ones it tracked, so the new one took
/// over the LAN's ports and listened (and with mDNS, announced itself)
/// until the process ended. Now it starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_after_shutdown_starts_nothing() {
    let (lan, _events, working) = start().await;
    lan.shutdown().await;

    let rotated = lan.rotate().await;
    assert!(
        matches!(rotated, Err(TransportError::Stopped)),
        "{rotated:?}"
    );
    assert!(lan.shared.old.lock().unwrap().is_empty());
    assert_eq!(
        met_at(&working).await,
        None,
        "nothing answers after shutdown"
    );
}

/// The same race, closer: shutdown runs on another thread after a
/// rotation looked at the stop token and before it tracked its new
/// generation (here, between the spawn and the hand-over). The new
/// generation was tracked in a list shutdown had already emptied, took
/// over and listened on. Now it is stopped before it listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_shutdown_overtakes_stops_its_generation() {
    let (lan, _events, working) = start().await;
    let _one_at_a_time = lan.shared.rotating.lock().await;
    let old = lan.shared.current();
    let generation = lan.spawn().unwrap();
    lan.shutdown().await;

    let handed = lan.hand_over(old, generation, When::Rotation).await;
    assert!(matches!(handed, Err(TransportError::Stopped)), "{handed:?}");
    assert!(
        lan.shared.old.lock().unwrap().is_empty(),
        "no generation is left running"
    );
    assert_eq!(
        met_at(&working).await,
        None,
        "nothing answers after shutdown"
    );
}

/// A rotation that could listen nowhere tracked its new generation the
/// way a successful one does, stopping the oldest generation past
/// MAX_GENERATIONS, and with it the links that generation still carried,
/// though the new one was stopped at once and never took over. A quiet
/// LAN retrying every few seconds would have stopped them one by one.
/// Now the oldest stop only once a new generation took over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_can_listen_nowhere_stops_no_older_generation() {
    let (lan, _events, _working) = start().await;
    // Beside the current one, as many older generations as are kept,
    // the oldest first. Each would be draining with links still up;
    // here they are idle swarms, which run until stopped.
    let mut older = Vec::new();
    for _ in 1..MAX_GENERATIONS {
        let g = lan.spawn().unwrap();
        older.push(g.local);
        lan.shared.old.lock().unwrap().push_front(g);
    }
    assert_eq!(lan.shared.old.lock().unwrap().len(), MAX_GENERATIONS);
    let (_holder, gone) = held_port();
    *lan.shared.bound.lock().unwrap() = vec![gone];

    lan.rotate().await.unwrap_err();
    let tracked: Vec<_> = lan
        .shared
        .old
        .lock()
        .unwrap()
        .iter()
        .map(|g| g.local)
        .collect();
    for local in &older {
        assert!(tracked.contains(local), "an older generation was stopped");
    }
    lan.shutdown().await;
}

/// The loop counted a failure of its own rotation before its first wait,
/// so after a periodic rotation that left the LAN quiet the first retry
/// came after 4 seconds, not 2 (one asked for on waking got 2). Now every
/// rotation that leaves the LAN quiet counts once, whoever rotated, and
/// the waits are 2, 4, 8, 16 and 32 seconds, then a minute; once a
/// rotation listens, a whole period again, and the next quiet starts
/// over at 2 seconds.
#[test]
fn a_quiet_lan_tries_again_after_two_seconds_then_less_and_less_often() {
    let hour = Duration::from_secs(3600);
    let mut backoff = Backoff::default();
    assert_eq!(backoff.wait(false, hour), hour);
    let waits: Vec<u64> = (0..8)
        .map(|_| {
            backoff.failed();
            backoff.wait(true, hour).as_secs()
        })
        .collect();
    assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);

    assert_eq!(backoff.wait(false, hour), hour);
    backoff.failed();
    assert_eq!(backoff.wait(true, hour), Duration::from_secs(2));
    // Never longer than the period.
    let short = Duration::from_secs(10);
    for _ in 0..4 {
        backoff.failed();
    }
    assert_eq!(backoff.wait(true, short), short);
}

/// Waits, in paused time, until the LAN has gone quiet `n` times; the
/// gaps between those times, in whole seconds (a timer fires within a
/// millisecond of its deadline).
async fn quiet_gaps(lan: &Lan, n: usize) -> Vec<u64> {
    let times = || lan.shared.went_quiet_at.lock().unwrap().clone();
    tokio::time::timeout(Duration::from_secs(600), async {
        while times().len() < n {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the LAN tries again");
    times()[..n]
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs())
        .collect()
}

/// The bug of the test above, where it was: rotate_forever counted its
/// own rotation's failure, then the notice that rotation gave, so after
/// a periodic rotation that left the LAN quiet the first retry came 4 s
/// later, not 2. Here the loop runs as it does (in paused time: the
/// waits are the loop's, to the millisecond): a LAN that listens, whose
/// address is gone at its next rotation, tries again 2 s after going
/// quiet, then 4 s after that. It fails with the loop's old count (4,
/// 8) and if the loop counts its failure besides the notice.
#[tokio::test(start_paused = true)]
async fn after_a_rotation_left_it_quiet_the_lan_tries_again_after_2_then_4_seconds() {
    let (lan, _events) = start_rotating(vec![any_port()], Duration::from_secs(10))
        .await
        .unwrap();
    assert!(lan.local_peer_id().is_some(), "listening");
    *lan.shared.bound.lock().unwrap() = vec![gone_address()];

    assert_eq!(quiet_gaps(&lan, 3).await, [2, 4]);
    lan.shutdown().await;
}

/// The same after a start that could listen nowhere: the start's own
/// notice makes the loop count it, so the first retry comes 2 s later,
/// the next 4 s after that.
#[tokio::test(start_paused = true)]
async fn a_lan_started_quiet_tries_again_after_2_then_4_seconds() {
    let (lan, _events) = start_on(vec![gone_address()]).await.expect("started quiet");

    assert_eq!(quiet_gaps(&lan, 3).await, [2, 4]);
    lan.shutdown().await;
}

/// A quiet LAN's retry, timed before a rotation asked for elsewhere (on
/// waking) listened, still rotated when it came, a second or a minute
/// later: a second new identity, and the links just made cut. Now a
/// retry finds the LAN listening and waits a whole period instead. (In
/// paused time: the retry is the loop's, 2 s after the start.) Fails
/// before with a third identity by the time the test looks.
#[tokio::test(start_paused = true)]
async fn a_quiet_retry_after_a_rotation_that_listened_does_not_rotate_again() {
    let (lan, _events) = start_on(vec![gone_address()]).await.expect("started quiet");
    // The loop takes the start's notice and waits 2 s to retry.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(identity(&lan).await, None, "quiet");

    // On waking: the address is back, and a rotation listens there.
    *lan.shared.bound.lock().unwrap() = vec![any_port()];
    lan.rotate().await.expect("a rotation that listens");
    let woken = identity(&lan).await.expect("an identity");

    // Well past the retry's time, within the hour's period.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(identity(&lan).await, Some(woken), "no second rotation");
    lan.shutdown().await;
}

/// Lan::start failed outright when it could not listen on one of its
/// addresses (one given with `--listen` that is gone, as when a device
/// starts on another network), so the node did not start, where a
/// rotation takes over on the addresses it can listen on. Now the start
/// does the same with an address that is gone: it listens on the others,
/// and keeps the gone one for the next rotation; a port 0 becomes the port
/// chosen, kept by the next generation, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_cannot_listen_on_one_address_listens_on_the_others() {
    let gone = gone_address();
    let (lan, _events) = start_on(vec![gone.clone(), any_port()])
        .await
        .expect("started on the address it can listen on");
    let first = identity(&lan).await.expect("an identity");
    let listening = lan.listen_addrs().await;
    let [working] = listening.as_slice() else {
        panic!("one address listened on: {listening:?}");
    };
    assert_eq!(met_at(working).await.as_ref(), Some(&first));
    assert!(
        lan.shared.bound.lock().unwrap().contains(&gone),
        "the gone address is tried again at the next rotation"
    );

    // The next rotation takes the same port.
    lan.rotate().await.unwrap();
    let second = identity(&lan).await.expect("a new identity");
    assert_ne!(second, first);
    assert_eq!(met_at(working).await.as_ref(), Some(&second));
}

/// One that could listen on none of its addresses failed as well. Now
/// the LAN starts quiet, as after a rotation that could listen nowhere,
/// and tries again by itself until an address is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_can_listen_nowhere_starts_quiet_and_tries_again() {
    let (lan, _events) = start_on(vec![gone_address()]).await.expect("started quiet");
    assert_eq!(identity(&lan).await, None, "no identity while quiet");
    assert!(lan.listen_addrs().await.is_empty());
    let somewhere: Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().unwrap();
    let dialled = lan.dial(&somewhere).expect("a LAN address").await;
    assert!(matches!(dialled, Err(TransportError::Quiet)), "{dialled:?}");

    // No rotation asked for: the LAN's own retry (2 s after the start,
    // then 4 s, ...) finds an address back (one that works, given in the
    // place of the gone one).
    *lan.shared.bound.lock().unwrap() = vec![any_port()];
    // The retries come at 2, 6, 14, 30 and 62 s: a retry that missed (it
    // read the list just before it changed) still leaves room for two.
    let back = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            if let Some(id) = identity(&lan).await {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a retry that listens, in time");
    let listening = lan.listen_addrs().await;
    let [working] = listening.as_slice() else {
        panic!("one address listened on: {listening:?}");
    };
    assert_eq!(met_at(working).await.as_ref(), Some(&back));
}

/// The same with QUIC: its transport's error hid the system's under the
/// upgrade layers, so a QUIC address that is gone read as one that failed
/// otherwise, and failed the start, alone, beside a gone TCP address, or
/// beside one that works ([`super::swarm::Surfaced`]). Now a QUIC address
/// that is gone is left for later like a TCP one: with a gone TCP address
/// the LAN starts quiet, with a working one it listens there.
#[cfg(feature = "quic")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_gone_quic_address_is_quiet_or_listens_on_the_others() {
    let gone_quic: Multiaddr = "/ip4/192.0.2.1/udp/4001/quic-v1".parse().unwrap();

    let (lan, _events) = start_on(vec![gone_quic.clone(), gone_address()])
        .await
        .expect("started quiet");
    assert_eq!(identity(&lan).await, None, "no identity while quiet");
    assert!(lan.listen_addrs().await.is_empty());
    lan.shutdown().await;

    let (lan, _events) = start_on(vec![gone_quic.clone(), any_port()])
        .await
        .expect("started on the address it can listen on");
    let first = identity(&lan).await.expect("an identity");
    let listening = lan.listen_addrs().await;
    let [working] = listening.as_slice() else {
        panic!("one address listened on: {listening:?}");
    };
    assert_eq!(met_at(working).await.as_ref(), Some(&first));
    assert!(
        lan.shared.bound.lock().unwrap().contains(&gone_quic),
        "the gone address is tried again at the next rotation"
    );
    lan.shutdown().await;
}

/// The start went quiet when it could listen nowhere and started on the
/// others when some address failed, whatever kept it from an address: a
/// port another program holds (or one below 1024 without the right to
/// it), which no change of network frees, was retried forever, with a
/// warning in the log, where before the start failed with a clear error
/// (and `strand run` with exit code 2). Now only an address that is gone
/// is left for later; any other failure fails the start, alone or beside
/// an address that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_port_another_program_holds_fails() {
    let (_holder, held) = held_port();
    for listen in [vec![held.clone()], vec![any_port(), held.clone()]] {
        let err = start_on(listen).await.unwrap_err();
        assert!(
            matches!(&err, TransportError::Listen { addr, .. } if *addr == held),
            "{err}"
        );
    }
}

/// Two LANs given one port (two Strand nodes, two profiles of one user,
/// each run with the same `--listen`) both listened there: libp2p's TCP
/// transport sets SO_REUSEPORT on every listener, so the system let the
/// second in beside the first and split new connections between two
/// nodes that know nothing of each other. Now the second start fails, as
/// a server's does, saying the port is in use
/// ([`crate::ports::probe`]); the first keeps its port, and its
/// rotations still take it (the new identity listens beside the old
/// one, which is what SO_REUSEPORT is on for), and keep it from a later
/// start too. Fails before at the second start, which listened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_at_a_port_another_lan_listens_at_fails() {
    let (first, _events, taken) = start().await;
    let port = taken
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(n) => Some(n),
            _ => None,
        })
        .expect("a TCP port");
    let before = identity(&first).await.expect("an identity");
    let refused = |err: TransportError| {
        let line = crate::error_chain(&err);
        let TransportError::Listen { addr, source } = err else {
            panic!("{line}");
        };
        assert_eq!(addr, taken, "{line}");
        let in_use = source.downcast_ref::<PortInUse>().map(|e| e.port);
        assert_eq!(in_use, Some(port), "{line}");
        assert!(
            line.starts_with(&format!(
                "cannot listen on {taken}: port {port} is in use by another program"
            )),
            "{line}"
        );
    };

    refused(start_on(vec![taken.clone()]).await.unwrap_err());
    assert_eq!(
        met_at(&taken).await.as_ref(),
        Some(&before),
        "the first LAN still takes the connections"
    );

    first
        .rotate()
        .await
        .expect("the rotation listens at the port");
    let after = identity(&first).await.expect("a new identity");
    assert_ne!(after, before);
    assert_eq!(met_at(&taken).await.as_ref(), Some(&after));
    refused(start_on(vec![taken.clone()]).await.unwrap_err());
    assert_eq!(met_at(&taken).await.as_ref(), Some(&after));
    first.shutdown().await;
}

/// The same for a quiet LAN's retries (no identity of its own listens
/// anywhere, so they check the ports given as the start does): one that
/// found its address's port held by another LAN listened there beside
/// it. Now the retry logs it and the LAN stays quiet. (In paused time:
/// the retries are the loop's, 2 and 6 s after the start.) Fails before
/// with an identity: the first retry listened.
#[tokio::test(start_paused = true)]
async fn a_quiet_lan_does_not_take_a_port_another_lan_listens_at() {
    let (first, _events) = start_on(vec![any_port()]).await.unwrap();
    let taken = first
        .listen_addrs()
        .await
        .into_iter()
        .next()
        .expect("listening");
    let (lan, _quiet_events) = start_on(vec![gone_address()]).await.expect("started quiet");
    // Its address back, at the port the first LAN listens at.
    *lan.shared.bound.lock().unwrap() = vec![taken.clone()];

    let times_quiet = || lan.shared.went_quiet_at.lock().unwrap().len();
    tokio::time::timeout(Duration::from_secs(600), async {
        while times_quiet() < 3 && lan.local_peer_id().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the LAN tries again");
    assert_eq!(
        lan.local_peer_id(),
        None,
        "a retry listened at the port the first LAN listens at"
    );
    assert_eq!(first.listen_addrs().await, vec![taken]);
    lan.shutdown().await;
    first.shutdown().await;
}

/// An address of a form the LAN never listens on still fails the start
/// at once: no network would make it work. (tests/it/lan.rs checks a
/// DNS name alone; here beside an address that works.) The error says
/// which forms it listens on, with QUIC's only where the build has QUIC
/// (it named `/quic-v1` in every build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_an_address_of_no_listening_form_fails() {
    let named: Multiaddr = "/dns4/example.invalid/tcp/1".parse().unwrap();
    let err = start_on(vec![any_port(), named.clone()]).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::Listen { addr, .. } if *addr == named),
        "{err}"
    );
    let why = crate::error_chain(&err);
    assert!(why.contains("/tcp/PORT"), "{why}");
    assert_eq!(why.contains("quic-v1"), crate::QUIC, "{why}");
}

/// A listen on an unspecified address waited for its first address, and
/// libp2p's TCP and QUIC transports give one address for each of that
/// family on the device: on one with none (IPv6 turned off, for `::`; no
/// network at all), none came, so the start never returned (nor `strand
/// run`), and a rotation never ended, holding up every rotation after
/// it. Now a listen that has no address after a second is answered
/// without one: the LAN listens there with an identity (it is not quiet),
/// and takes each address as it comes. Here, in a network namespace whose
/// only interface is down, with no address at all: before, the start
/// never ended (the timeout below fails it).
///
/// Then the port such a listener got once its address came was never
/// recorded (the LAN kept port 0, as configured), so the next rotation
/// listened at another port, and a neighbour given the address lost it:
/// a port 0 is chosen once and kept. Now the rotation learns it from the
/// generation that listens ([`super::learn_ports`]); before, the last
/// rotation below listened at a new port.
#[test]
fn a_listen_on_an_unspecified_address_with_none_of_its_family_does_not_wait_forever() {
    let Some(runtime) = in_a_network_with_no_address(
        module_path!(),
        "a_listen_on_an_unspecified_address_with_none_of_its_family_does_not_wait_forever",
    ) else {
        return;
    };
    // How long anything here may take: the listen waits a second.
    let within = Duration::from_secs(20);
    runtime.block_on(async {
        let everywhere: Multiaddr = "/ip4/0.0.0.0/tcp/0".parse().unwrap();
        let (lan, _events) = tokio::time::timeout(within, start_on(vec![everywhere]))
            .await
            .expect("the start ends, with no address to wait for")
            .expect("the start listens");
        let first = identity(&lan)
            .await
            .expect("an identity: the LAN is not quiet");
        assert!(lan.listen_addrs().await.is_empty(), "no address yet");

        tokio::time::timeout(within, lan.rotate())
            .await
            .expect("a rotation ends too")
            .expect("and listens");
        let second = identity(&lan).await.expect("a new identity");
        assert_ne!(second, first);
        assert!(
            lan.shared.went_quiet_at.lock().unwrap().is_empty(),
            "the LAN never went quiet"
        );

        // An address comes (loopback up: 127.0.0.1): the listener takes it.
        ip(&["link", "set", "lo", "up"]);
        let addr = tokio::time::timeout(within, async {
            loop {
                if let Some(addr) = lan.listen_addrs().await.into_iter().next() {
                    return addr;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the address that came is listened on");
        assert!(
            addr.to_string().starts_with("/ip4/127.0.0.1/tcp/"),
            "{addr}"
        );
        assert_eq!(met_at(&addr).await, Some(second.clone()));

        // The port it got is kept, as any port 0 chosen is: the next
        // identity listens at the same address.
        tokio::time::timeout(within, lan.rotate())
            .await
            .expect("a rotation ends")
            .expect("and listens");
        let third = identity(&lan).await.expect("a new identity");
        assert_ne!(third, second);
        assert_eq!(
            lan.listen_addrs().await,
            vec![addr.clone()],
            "the same port as before the rotation"
        );
        assert_eq!(met_at(&addr).await, Some(third));
        tokio::time::timeout(within, lan.shutdown())
            .await
            .expect("shutdown ends");
    });
}
