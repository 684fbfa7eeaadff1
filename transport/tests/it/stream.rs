//! The stream protocol's behaviour between two swarms (libp2p-swarm-test).

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::Swarm;
use libp2p_swarm_test::SwarmExt;
use strand_transport::stream::{Behaviour, Event};

#[tokio::test]
async fn a_requested_stream_opens_and_carries_bytes() {
    let mut a = Swarm::new_ephemeral_tokio(|_| Behaviour::new());
    let mut b = Swarm::new_ephemeral_tokio(|_| Behaviour::new());
    b.listen().with_memory_addr_external().await;
    a.connect(&mut b).await;
    let peer_b = *b.local_peer_id();
    let id = a.behaviour_mut().open(peer_b);
    let ([opened], [inbound]): ([Event; 1], [Event; 1]) =
        libp2p_swarm_test::drive(&mut a, &mut b).await;
    let Event::Opened {
        id: got,
        peer,
        stream: mut sa,
        ..
    } = opened
    else {
        panic!("{opened:?}")
    };
    assert_eq!((got, peer), (id, peer_b));
    let Event::Inbound {
        peer,
        stream: mut sb,
        ..
    } = inbound
    else {
        panic!("{inbound:?}")
    };
    assert_eq!(peer, *a.local_peer_id());
    tokio::spawn(a.loop_on_next());
    tokio::spawn(b.loop_on_next());
    sa.write_all(b"ping").await.unwrap();
    sa.flush().await.unwrap();
    let mut buf = [0u8; 4];
    sb.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    sb.write_all(b"pong").await.unwrap();
    sb.flush().await.unwrap();
    sa.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

#[tokio::test]
async fn opening_to_an_unreachable_peer_fails_with_its_id() {
    let mut a = Swarm::new_ephemeral_tokio(|_| Behaviour::new());
    let nobody = libp2p::PeerId::random();
    let id = a.behaviour_mut().open(nobody);
    let event = a.next_behaviour_event().await;
    let Event::OpenFailed {
        id: got,
        peer,
        error,
    } = event
    else {
        panic!("{event:?}")
    };
    assert_eq!((got, peer), (id, nobody));
    assert!(!error.is_empty());
}

#[tokio::test]
async fn several_streams_to_one_peer_share_the_connection() {
    let mut a = Swarm::new_ephemeral_tokio(|_| Behaviour::new());
    let mut b = Swarm::new_ephemeral_tokio(|_| Behaviour::new());
    b.listen().with_memory_addr_external().await;
    a.connect(&mut b).await;
    let peer_b = *b.local_peer_id();
    let ids: Vec<_> = (0..3).map(|_| a.behaviour_mut().open(peer_b)).collect();
    let (opened, inbound): ([Event; 3], [Event; 3]) =
        libp2p_swarm_test::drive(&mut a, &mut b).await;
    let mut got: Vec<_> = opened
        .iter()
        .map(|e| match e {
            Event::Opened { id, .. } => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort();
    assert_eq!(got, ids);
    assert!(inbound.iter().all(|e| matches!(e, Event::Inbound { .. })));
}
