//! Emulated in-memory links.

use futures::{AsyncReadExt, AsyncWriteExt};
use strand_transport::memory::{Hub, HubConfig};
use strand_transport::{Direction, LinkKind, Remote, Transport, TransportError, TransportEvent};
use tokio::sync::mpsc;

#[tokio::test]
async fn devices_on_a_hub_discover_each_other_once_and_link() {
    let hub = Hub::new();
    let (ta, mut ea) = mpsc::channel(16);
    let (tb, mut eb) = mpsc::channel(16);
    let a = hub.join(ta);
    let b = hub.join(tb);
    let Some(TransportEvent::Discovered {
        peer: pa,
        initiate: ia,
    }) = ea.recv().await
    else {
        panic!()
    };
    let Some(TransportEvent::Discovered {
        peer: pb,
        initiate: ib,
    }) = eb.recv().await
    else {
        panic!()
    };
    assert!(ia != ib, "exactly one side initiates");
    let (opener, peer, mut other_events) = if ia { (&a, pa, eb) } else { (&b, pb, ea) };
    let mut link = opener.open(peer).await.unwrap();
    assert_eq!(link.kind, LinkKind::Emulated);
    assert_eq!(link.direction, Direction::Outbound);
    let Some(TransportEvent::Incoming(mut theirs)) = other_events.recv().await else {
        panic!()
    };
    assert_eq!(theirs.direction, Direction::Inbound);
    assert_eq!(theirs.remote, Remote::Emulated(opener.number()));
    link.stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    theirs.stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn a_small_buffer_makes_the_writer_wait_for_the_reader() {
    let hub = Hub::with_config(HubConfig {
        buffer: 16,
        ..HubConfig::default()
    });
    let (ta, _ea) = mpsc::channel(16);
    let (tb, mut eb) = mpsc::channel(16);
    let a = hub.join(ta);
    let _b = hub.join(tb);
    let mut link = a
        .dial(&"/memory/2".parse().unwrap())
        .unwrap()
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        link.stream.write_all(&[7u8; 64]).await.unwrap();
        link
    });
    tokio::task::yield_now().await;
    assert!(!writer.is_finished(), "64 bytes do not fit a 16-byte pipe");
    let mut theirs = loop {
        if let Some(TransportEvent::Incoming(l)) = eb.recv().await {
            break l;
        }
    };
    let mut got = [0u8; 64];
    theirs.stream.read_exact(&mut got).await.unwrap();
    writer.await.unwrap();
    assert_eq!(got, [7u8; 64]);
}

#[tokio::test]
async fn a_device_that_left_is_unreachable() {
    let hub = Hub::new();
    let (ta, _ea) = mpsc::channel(16);
    let (tb, _eb) = mpsc::channel(16);
    let a = hub.join(ta);
    let b = hub.join(tb);
    b.shutdown().await;
    let err = a
        .dial(&"/memory/2".parse().unwrap())
        .unwrap()
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::UnknownPeer), "{err}");
    assert!(a.dial(&"/ip4/127.0.0.1/tcp/1".parse().unwrap()).is_none());
}

#[test]
fn limits_count_an_ipv6_host_by_its_prefix() {
    let a: Remote = Remote::Ip("2001:db8:1:2:aaaa::1".parse().unwrap());
    let b: Remote = Remote::Ip("2001:db8:1:2:bbbb::7".parse().unwrap());
    let c: Remote = Remote::Ip("2001:db8:1:3::1".parse().unwrap());
    assert_eq!(a.limit_key(), b.limit_key());
    assert_ne!(a.limit_key(), c.limit_key());
    let v4 = Remote::Ip("192.168.1.20".parse().unwrap());
    assert_eq!(v4.limit_key(), v4);
    let lo = Remote::Ip("::1".parse().unwrap());
    assert_eq!(lo.limit_key(), lo);
}

/// A relayed device's id at the relay costs a stranger nothing: limits
/// count it by the relay it came through.
#[test]
fn limits_count_a_relayed_device_by_its_relay() {
    let relayed = |relay: &str, peer: &str| Remote::Relayed {
        relay: relay.into(),
        peer: peer.into(),
    };
    let a = relayed("relay-1", "made-up-1");
    let b = relayed("relay-1", "made-up-2");
    let c = relayed("relay-2", "made-up-1");
    assert_eq!(a.limit_key(), Remote::Relay("relay-1".into()));
    assert_eq!(a.limit_key(), b.limit_key());
    assert_ne!(a.limit_key(), c.limit_key());
}
