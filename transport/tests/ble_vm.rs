//! The BLE transport against real BlueZ. This machine has no
//! Bluetooth, so `scripts/ble-vm` boots a VM with Debian's kernel, starts
//! `btvirt` with three virtual LE controllers (hci0, hci1, hci2) and
//! `bluetoothd`, and runs these tests there (they are ignored anywhere
//! else): two transports on hci0 and hci1 find each other by their
//! advertisements, connect (central ↔ peripheral) and carry a stream both
//! ways, over an L2CAP channel and over GATT; a third device on hci2 sees
//! the advertisement and nothing more, and reads no name of the user's
//! when it connects.
#![cfg(target_os = "linux")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use strand_transport::ble::duty::Duty;
use strand_transport::ble::{Ble, BleConfig};
use strand_transport::{Link, Peer, Transport, TransportEvent};
use tokio::sync::{mpsc, watch};

/// btvirt's controllers see each other after a scan cycle (~10 s); give
/// discovery and connecting room.
const PATIENCE: Duration = Duration::from_secs(90);

async fn start(
    adapter: &str,
    hint: u8,
    l2cap: bool,
) -> (Ble, mpsc::Receiver<TransportEvent>, watch::Sender<Vec<u8>>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let (tx, rx) = mpsc::channel(64);
    let (hint_tx, hint_rx) = watch::channel(vec![hint; 10]);
    let config = BleConfig {
        adapter: Some(adapter.into()),
        advert: hint_rx,
        // These devices want each other (hints 1 and 2), nobody else.
        wanted: Arc::new(|h: &[u8]| h.len() == 10 && (h[0] == 1 || h[0] == 2)),
        l2cap,
        window: 64,
        // The default: BlueZ's scan starts and stops with each window.
        duty: watch::channel(Duty::default()).1,
    };
    let ble = Ble::start(config, tx)
        .await
        .expect("BLE starts on the VM's controllers");
    (ble, rx, hint_tx)
}

async fn next_event(
    rx: &mut mpsc::Receiver<TransportEvent>,
    mut pick: impl FnMut(TransportEvent) -> Option<TransportEvent>,
) -> TransportEvent {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let e = rx.recv().await.expect("the transport runs");
            if let Some(e) = pick(e) {
                return e;
            }
        }
    })
    .await
    .expect("the event came in time")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
        .collect()
}

/// hci0 and hci1 meet; hci0's hint sorts first, so it dials. Returns both
/// ends and the time from the advertisement seen to the link open.
async fn meet(l2cap: bool) -> (Link, Link, Duration, Ble, Ble) {
    let (a, mut a_events, _ha) = start("hci0", 1, l2cap).await;
    let (b, mut b_events, _hb) = start("hci1", 2, l2cap).await;
    let found = next_event(&mut a_events, |e| match e {
        TransportEvent::Discovered { initiate: true, .. } => Some(e),
        _ => None,
    })
    .await;
    let seen = Instant::now();
    let TransportEvent::Discovered { peer, .. } = found else {
        unreachable!()
    };
    let outbound = open_with_retries(&a, peer).await;
    let TransportEvent::Incoming(inbound) = next_event(&mut b_events, |e| match e {
        TransportEvent::Incoming(_) => Some(e),
        _ => None,
    })
    .await
    else {
        unreachable!()
    };
    (outbound, inbound, seen.elapsed(), a, b)
}

async fn open_with_retries(a: &Ble, peer: Peer) -> Link {
    let mut last = None;
    for _ in 0..3 {
        match a.open(peer).await {
            Ok(link) => return link,
            Err(e) => {
                eprintln!("open failed, retrying: {e:?}");
                last = Some(e);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    panic!("could not open a link: {last:?}");
}

async fn exchange(l2cap: bool) {
    let (mut out, mut inb, to_link, a, b) = meet(l2cap).await;
    let what = if l2cap { "L2CAP" } else { "GATT" };
    let sent = pattern(200_000, 3);
    let t = Instant::now();
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        out.stream.write_all(&to_send).await.unwrap();
        out.stream.flush().await.unwrap();
        let mut back = vec![0u8; 20_000];
        out.stream.read_exact(&mut back).await.unwrap();
        back
    });
    let mut got = vec![0u8; sent.len()];
    inb.stream.read_exact(&mut got).await.unwrap();
    let one_way = t.elapsed();
    assert_eq!(got, sent, "{what}: the stream arrived whole");
    inb.stream.write_all(&pattern(20_000, 4)).await.unwrap();
    inb.stream.flush().await.unwrap();
    assert_eq!(
        writer.await.unwrap(),
        pattern(20_000, 4),
        "{what}: and back"
    );
    println!(
        "ble-vm figure: {what}: advertisement seen to link open {:.1} s; 200 KB one way in {:.1} s ({:.1} kB/s, virtual controllers, not a radio)",
        to_link.as_secs_f64(),
        one_way.as_secs_f64(),
        200.0 / one_way.as_secs_f64()
    );
    let info = a.ble_info();
    assert!(info.links >= 1 && info.bytes_sent >= 200_000, "{info:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs BlueZ with virtual controllers: scripts/ble-vm"]
async fn two_devices_meet_and_carry_a_stream_over_l2cap() {
    exchange(true).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs BlueZ with virtual controllers: scripts/ble-vm"]
async fn two_devices_meet_and_carry_a_stream_over_gatt() {
    exchange(false).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs BlueZ with virtual controllers: scripts/ble-vm"]
async fn a_stranger_sees_a_strand_device_and_nothing_that_follows_it() {
    use futures::StreamExt;
    let (a, _events, hint) = start("hci1", 2, true).await;
    // The stranger reads what BlueZ on its own controller (hci2) heard,
    // property by property, as any scanner could.
    let session = bluer::Session::new().await.unwrap();
    let stranger = session.adapter("hci2").unwrap();
    stranger.set_powered(true).await.unwrap();
    let heard = a_address(&session).await;
    let mut found = stranger.discover_devices().await.unwrap();
    let service = uuid::uuid!("5d2a7b40-3f6e-4c8e-9a51-7f0c2e1b9d30");
    let mut seen = Vec::new();
    // This epoch's advertisement, then the next epoch's.
    for epoch_hint in [vec![2u8; 10], vec![9u8; 10]] {
        hint.send(epoch_hint.clone()).unwrap();
        let device = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Ok(d) = stranger.device(heard) {
                    if let Ok(Some(data)) = d.service_data().await {
                        if data.get(&service) == Some(&epoch_hint) {
                            return d;
                        }
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), found.next()).await;
            }
        })
        .await
        .expect("the stranger hears the advertisement");
        // Nothing but the service data: no name, no service list, no
        // manufacturer data, no TX power.
        assert_eq!(device.name().await.unwrap(), None);
        assert!(device
            .manufacturer_data()
            .await
            .unwrap()
            .unwrap_or_default()
            .is_empty());
        let uuids = device.uuids().await.unwrap().unwrap_or_default();
        assert!(uuids.iter().all(|u| *u == service), "{uuids:?}");
        let data = device.service_data().await.unwrap().unwrap_or_default();
        assert_eq!(data.len(), 1, "{data:?}");
        assert_eq!(device.tx_power().await.unwrap(), None);
        seen.push(data[&service].clone());
    }
    // The content changes with the epoch (what the hint is made of is
    // strand-sync's: fresh bytes every epoch, tested there). The radio's
    // address does not change here: btvirt has no LE privacy.
    assert_ne!(seen[0], seen[1]);
    a.shutdown().await;
}

/// hci1's address, as the stranger would hear it.
async fn a_address(session: &bluer::Session) -> bluer::Address {
    session.adapter("hci1").unwrap().address().await.unwrap()
}

/// A stranger that connects (anyone can: a link starts with a connection,
/// Noise comes after) reads the GAP Device Name that BlueZ serves on
/// every LE connection, the adapter's name (often the user's or the
/// machine's), the same under every hint and every rotated address. While
/// the transport runs it is a name every Strand device shares, and the
/// user's own comes back when the transport stops.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs BlueZ with virtual controllers: scripts/ble-vm"]
async fn a_stranger_that_connects_reads_no_name_of_the_user() {
    use futures::StreamExt;
    let session = bluer::Session::new().await.unwrap();
    let own = session.adapter("hci1").unwrap();
    own.set_powered(true).await.unwrap();
    own.set_alias("alice-laptop".into()).await.unwrap();
    let (a, _events, _hint) = start("hci1", 2, true).await;
    let stranger = session.adapter("hci2").unwrap();
    stranger.set_powered(true).await.unwrap();
    let heard = a_address(&session).await;
    let service = uuid::uuid!("5d2a7b40-3f6e-4c8e-9a51-7f0c2e1b9d30");
    let device = {
        let mut found = stranger.discover_devices().await.unwrap();
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Ok(d) = stranger.device(heard) {
                    if let Ok(Some(data)) = d.service_data().await {
                        if data.contains_key(&service) {
                            return d;
                        }
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), found.next()).await;
            }
        })
        .await
        .expect("the stranger hears the advertisement")
    };
    assert_eq!(device.name().await.unwrap(), None, "no name on the air");
    // Connect (btvirt may take a scan cycle), then wait for BlueZ's own
    // GAP client to read the name, as any central's does.
    let deadline = Instant::now() + PATIENCE;
    while let Err(e) = device.connect().await {
        assert!(
            Instant::now() < deadline,
            "the stranger cannot connect: {e}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let name = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(Some(name)) = device.name().await {
                return name;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("BlueZ reads the GAP Device Name on connecting");
    let _ = device.disconnect().await;
    assert_eq!(
        name,
        strand_transport::ble::RADIO_NAME,
        "the user's name leaked"
    );
    a.shutdown().await;
    assert_eq!(own.alias().await.unwrap(), "alice-laptop", "given back");
}
