//! The LAN transport on loopback: real libp2p sockets, no mocks.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use strand_transport::lan::limits::MAX_CONNECTIONS_PER_IP;
use strand_transport::{
    Direction, Lan, LanConfig, LinkKind, Remote, Transport, TransportError, TransportEvent,
};
use tokio::sync::mpsc;

use crate::neighbour::{neighbour, peer_id_seen_at};

fn loopback() -> LanConfig {
    LanConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        mdns: false,
        ..LanConfig::default()
    }
}

async fn start(config: LanConfig) -> (Lan, mpsc::Receiver<TransportEvent>) {
    let (tx, rx) = mpsc::channel(64);
    (Lan::start(config, tx).await.unwrap(), rx)
}

async fn address(lan: &Lan) -> Multiaddr {
    for _ in 0..100 {
        if let Some(a) = lan.listen_addrs().await.into_iter().next() {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not listening");
}

/// Answers every incoming link by echoing 5 bytes reversed.
fn echo(mut events: mpsc::Receiver<TransportEvent>) -> tokio::task::JoinHandle<Vec<Remote>> {
    tokio::spawn(async move {
        let mut remotes = Vec::new();
        while let Some(event) = events.recv().await {
            if let TransportEvent::Incoming(mut link) = event {
                assert_eq!(link.direction, Direction::Inbound);
                remotes.push(link.remote.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 5];
                    while link.stream.read_exact(&mut buf).await.is_ok() {
                        buf.reverse();
                        if link.stream.write_all(&buf).await.is_err() {
                            return;
                        }
                        let _ = link.stream.flush().await;
                    }
                });
            }
        }
        remotes
    })
}

async fn round_trip(link: &mut strand_transport::Link, what: &[u8; 5]) -> [u8; 5] {
    link.stream.write_all(what).await.unwrap();
    link.stream.flush().await.unwrap();
    let mut back = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), link.stream.read_exact(&mut back))
        .await
        .expect("an answer in time")
        .unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialled_stream_carries_bytes_both_ways() {
    let (server, events) = start(loopback()).await;
    let (client, _ev) = start(loopback()).await;
    assert_ne!(
        server.local_peer_id(),
        client.local_peer_id(),
        "identities are per run"
    );
    let addr = address(&server).await;
    let echo = echo(events);
    let mut link = client.dial(&addr).unwrap().await.unwrap();
    assert_eq!(link.kind, LinkKind::Lan);
    assert_eq!(link.direction, Direction::Outbound);
    assert_eq!(link.remote, Remote::Ip("127.0.0.1".parse().unwrap()));
    assert_eq!(&round_trip(&mut link, b"hello").await, b"olleh");
    server.shutdown().await;
    drop(server);
    let remotes = echo.await.unwrap();
    assert_eq!(remotes, [Remote::Ip("127.0.0.1".parse().unwrap())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialling_nobody_is_a_clear_error() {
    let (client, _ev) = start(loopback()).await;
    // A port on loopback that nothing listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), client.dial(&addr).unwrap())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, TransportError::Dial { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()));
    // An address that is not the LAN's kind is not taken at all.
    assert!(client.dial(&"/memory/3".parse().unwrap()).is_none());
}

/// An address the LAN's TCP and QUIC cannot dial (another protocol, a
/// port or an address of 0, a DNS name, which it does not resolve, a
/// circuit) is not taken: `dial` answers `None`, so the node tells
/// whoever gave it at once rather than dial it again and again. What it
/// dials is taken, with or without the `/p2p/<id>` of whom it expects.
/// Before, every address that began with an IP address or a DNS name was
/// taken, and failed at every dial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_the_lan_cannot_dial_is_not_taken() {
    let (client, _ev) = start(loopback()).await;
    let id = PeerId::random();
    let undialable = [
        "/ip4/127.0.0.1/udp/9/webrtc".to_owned(),
        "/ip4/127.0.0.1/udp/9/webrtc-direct".to_owned(),
        "/ip4/127.0.0.1/tcp/9/ws".to_owned(),
        "/ip4/127.0.0.1/udp/9/quic".to_owned(),
        "/ip4/127.0.0.1/udp/9".to_owned(),
        "/ip4/127.0.0.1".to_owned(),
        "/ip4/127.0.0.1/tcp/0".to_owned(),
        "/ip4/0.0.0.0/tcp/9".to_owned(),
        "/ip6/::/tcp/9".to_owned(),
        "/dns4/localhost/tcp/9".to_owned(),
        format!("/p2p/{id}"),
        format!("/ip4/127.0.0.1/tcp/9/p2p/{id}/p2p-circuit/p2p/{id}"),
    ];
    for addr in undialable {
        let addr: Multiaddr = addr.parse().unwrap();
        assert!(client.dial(&addr).is_none(), "{addr} was taken");
    }
    let mut dialable = vec![
        "/ip4/127.0.0.1/tcp/9".to_owned(),
        "/ip6/::1/tcp/9".to_owned(),
        format!("/ip4/127.0.0.1/tcp/9/p2p/{id}"),
    ];
    if cfg!(feature = "quic") {
        dialable.push("/ip4/127.0.0.1/udp/9/quic-v1".to_owned());
    }
    for addr in dialable {
        let addr: Multiaddr = addr.parse().unwrap();
        assert!(client.dial(&addr).is_some(), "{addr} was not taken");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_listen_address_is_a_clear_error() {
    let bad = LanConfig {
        listen: vec!["/dns4/example.invalid/tcp/1".parse().unwrap()],
        ..loopback()
    };
    let (tx, _rx) = mpsc::channel(4);
    let err = Lan::start(bad, tx).await.unwrap_err();
    assert!(matches!(err, TransportError::Listen { .. }), "{err}");
}

/// The libp2p PeerId used to live as long as the process, so a
/// LAN neighbour (and mDNS) saw one stable identifier. It now changes at
/// every rotation, on the same address, while a link opened before the
/// rotation keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_id_a_neighbour_sees_changes_across_epochs_and_live_links_survive() {
    let (server, events) = start(LanConfig {
        rotate_every: Duration::from_secs(3600),
        ..loopback()
    })
    .await;
    let _echo = echo(events);
    let (client, _ev) = start(loopback()).await;
    let addr = address(&server).await;
    let mut live = client.dial(&addr).unwrap().await.unwrap();
    assert_eq!(&round_trip(&mut live, b"12345").await, b"54321");
    let mut seen = Vec::new();
    let mut n = neighbour();
    seen.push(peer_id_seen_at(&mut n, &addr).await.expect("connected"));
    for _ in 0..2 {
        server.rotate().await.unwrap();
        let now = address(&server).await;
        assert_eq!(now, addr, "the listening address is kept");
        let mut n = neighbour();
        seen.push(peer_id_seen_at(&mut n, &addr).await.expect("connected"));
        // The link from before the rotation still carries bytes.
        assert_eq!(&round_trip(&mut live, b"abcde").await, b"edcba");
    }
    assert!(
        seen[0] != seen[1] && seen[1] != seen[2] && seen[0] != seen[2],
        "{seen:?}"
    );
    assert_eq!(Some(seen[2]), server.local_peer_id());
    // New links go to the new identity too.
    let mut fresh = client.dial(&addr).unwrap().await.unwrap();
    assert_eq!(&round_trip(&mut fresh, b"fresh").await, b"hserf");
}

/// Nothing limited connections per remote address, so one
/// stranger with fresh PeerIds could take every slot. One IP address gets
/// at most `MAX_CONNECTIONS_PER_IP`; others still get in. (The strangers
/// come from `::1`, the contact from `127.0.0.1`: two loopback addresses.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let (server, events) = start(LanConfig {
        listen: vec![
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            "/ip6/::1/tcp/0".parse().unwrap(),
        ],
        ..loopback()
    })
    .await;
    let _echo = echo(events);
    let addrs = server.listen_addrs().await;
    let v4 = addrs
        .iter()
        .find(|a| a.to_string().starts_with("/ip4"))
        .unwrap()
        .clone();
    let v6 = addrs
        .iter()
        .find(|a| a.to_string().starts_with("/ip6"))
        .unwrap()
        .clone();
    // Strangers, each with its own PeerId, all from ::1.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..MAX_CONNECTIONS_PER_IP + 4 {
        let mut s = neighbour();
        s.dial(DialOpts::unknown_peer_id().address(v6.clone()).build())
            .unwrap();
        let ok = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match s.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { .. } => return true,
                    SwarmEvent::OutgoingConnectionError { .. } => return false,
                    _ => {}
                }
            }
        })
        .await
        .expect("an outcome in time");
        if ok {
            // Keep the connection open: the swarm must be polled.
            held.push(tokio::spawn(async move {
                loop {
                    s.select_next_some().await;
                }
            }));
        } else {
            refused += 1;
        }
    }
    assert_eq!(held.len(), MAX_CONNECTIONS_PER_IP, "{refused} refused");
    assert_eq!(refused, 4);
    // A device at another address still gets a working link.
    let (client, _ev) = start(loopback()).await;
    let mut link = client.dial(&v4).unwrap().await.unwrap();
    assert_eq!(&round_trip(&mut link, b"still").await, b"llits");
    for h in held {
        h.abort();
    }
}

/// The socket address of a `/ip4/…/tcp/…` address.
#[cfg(target_os = "linux")]
fn socket_addr(addr: &Multiaddr) -> std::net::SocketAddr {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Tcp(n) => port = Some(n),
            _ => {}
        }
    }
    (ip.expect("an IPv4 address"), port.expect("a TCP port")).into()
}

/// Regression (a flaky run of the whole suite, then a reading of
/// libp2p-tcp and the kernel): the LAN dialled from its listening port,
/// bound at every address of its family (`0.0.0.0:port` for a listener
/// at `127.0.0.1:port`). Any other socket at that port on another address
/// of the device, made without SO_REUSEADDR (another program's; here,
/// another test's), made every dial fail with "Address already in use"
/// for as long as it stayed, and its TIME_WAIT after: a device listening
/// at one address of its own (`--listen /ip4/192.168.1.5/tcp/…`) could
/// reach no one. The LAN now dials from a new port.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_at_the_listening_port_on_another_address_does_not_stop_dials() {
    let (server, events) = start(loopback()).await;
    let _echo = echo(events);
    let addr = address(&server).await;
    let (client, _ev) = start(loopback()).await;
    let port = socket_addr(&address(&client).await).port();
    // Another program's socket at the client's listening port, on another
    // loopback address, with no reuse flags (not one of 127.0.0.2–17, where
    // the strangers' test below binds at ports the system picks).
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other
        .bind((std::net::Ipv4Addr::new(127, 0, 2, 1), port).into())
        .expect("another address at the same port is free to bind");
    let mut link = client
        .dial(&addr)
        .unwrap()
        .await
        .expect("the dial gets through");
    assert_eq!(&round_trip(&mut link, b"12345").await, b"54321");
    drop(other);
}

/// Strangers at sixteen addresses, each holding `MAX_PENDING_PER_IP`
/// connections that never start their handshakes, took all
/// `MAX_PENDING_INCOMING` places for handshakes, and every other
/// connection was refused until theirs timed out (`HANDSHAKE_TIMEOUT`,
/// when they could open them again): a contact dialling in was shut out
/// for as long as the strangers kept at it. A new connection now takes the
/// place of the oldest handshake of the address with the most under way.
/// (The strangers come from 127.0.0.2 on, the contact from 127.0.0.1:
/// Linux routes all of 127/8 to loopback.)
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_holding_every_handshake_place_do_not_shut_a_contact_out() {
    use strand_transport::lan::limits::{
        HANDSHAKE_TIMEOUT, MAX_PENDING_INCOMING, MAX_PENDING_PER_IP,
    };
    let (server, events) = start(loopback()).await;
    let _echo = echo(events);
    let addr = address(&server).await;
    let target = socket_addr(&addr);
    // Raw TCP connections that say nothing, MAX_PENDING_PER_IP from each
    // address, until every place is taken.
    let mut silent = Vec::new();
    for i in 0..MAX_PENDING_INCOMING / MAX_PENDING_PER_IP {
        let last = 2 + u8::try_from(i).expect("a few addresses");
        let from = std::net::Ipv4Addr::new(127, 0, 0, last);
        for _ in 0..MAX_PENDING_PER_IP {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind((from, 0).into()).unwrap();
            silent.push(socket.connect(target).await.unwrap());
        }
    }
    // Well before the silent handshakes time out: a contact refused
    // could not have got in by waiting for them.
    let wait = HANDSHAKE_TIMEOUT / 2;
    let (client, _ev) = start(loopback()).await;
    let mut link = tokio::time::timeout(wait, client.dial(&addr).unwrap())
        .await
        .expect("an answer in time")
        .expect("the contact gets in");
    assert_eq!(&round_trip(&mut link, b"in at").await, b"ta ni");
    // A stranger's connection was closed to make room: one of them reads
    // the end of its stream.
    let ends = silent.iter_mut().map(|s| {
        Box::pin(async move {
            let mut buf = [0u8; 64];
            loop {
                match tokio::io::AsyncReadExt::read(s, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
    });
    tokio::time::timeout(wait, futures::future::select_all(ends))
        .await
        .expect("a silent connection closed in time");
}
