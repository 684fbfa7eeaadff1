//! The LAN transport on loopback: real libp2p sockets, no mocks.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use strand_transport::{Lan, LanConfig, LanEvent, LinkKind, TransportError};

fn loopback() -> LanConfig {
    LanConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        mdns: false,
    }
}

async fn address(lan: &Lan) -> strand_transport::Multiaddr {
    for _ in 0..100 {
        if let Some(a) = lan.listen_addrs().await.into_iter().next() {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not listening");
}

#[tokio::test]
async fn a_dialled_stream_carries_bytes_both_ways() {
    let (server, mut events) = Lan::start(loopback()).await.unwrap();
    let (client, _) = Lan::start(loopback()).await.unwrap();
    assert_ne!(
        server.local_peer_id(),
        client.local_peer_id(),
        "identities are per run"
    );
    let addr = address(&server).await;
    let echo = tokio::spawn(async move {
        loop {
            match events.recv().await.unwrap() {
                LanEvent::Incoming(mut link) => {
                    assert!(!link.outbound);
                    let mut buf = [0u8; 5];
                    link.stream.read_exact(&mut buf).await.unwrap();
                    buf.reverse();
                    link.stream.write_all(&buf).await.unwrap();
                    link.stream.flush().await.unwrap();
                    return;
                }
                _ => continue,
            }
        }
    });
    let mut link = client.dial(addr).await.unwrap();
    assert_eq!(link.kind, LinkKind::Lan);
    assert!(link.outbound);
    link.stream.write_all(b"hello").await.unwrap();
    link.stream.flush().await.unwrap();
    let mut back = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), link.stream.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"olleh");
    echo.await.unwrap();
}

#[tokio::test]
async fn dialling_nobody_is_a_clear_error() {
    let (client, _) = Lan::start(loopback()).await.unwrap();
    // A port on loopback that nothing listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), client.dial(addr))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, TransportError::Dial { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()));
}

#[tokio::test]
async fn an_unusable_listen_address_is_a_clear_error() {
    let bad = LanConfig {
        listen: vec!["/dns4/example.invalid/tcp/1".parse().unwrap()],
        mdns: false,
    };
    let err = Lan::start(bad).await.unwrap_err();
    assert!(matches!(err, TransportError::Listen { .. }), "{err}");
}
