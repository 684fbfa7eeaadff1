//! The central role, with btleplug: scanning for Strand's service data,
//! and opening links (an L2CAP channel where the peripheral offers one and
//! this side allows it, GATT otherwise).

use std::sync::Arc;
use std::time::Duration;

use btleplug::api::{Central as _, CentralEvent, Peripheral as _, ScanFilter, WriteType};
use btleplug::platform::{Adapter, Peripheral, PeripheralId};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::duty::Scanning;
use super::{
    driver, link::LinkConfig, Seen, Shared, Sighting, MAX_SEEN, PSM_CHAR, RX_CHAR, SERVICE, TX_CHAR,
};
use crate::{Direction, Link, LinkKind, Peer, Reason, Remote, TransportError, TransportEvent};

/// How long a connection attempt may take: btvirt and busy radios take
/// a scan cycle (~10 s) to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Packets queued towards BlueZ for one GATT link.
const GATT_QUEUE: usize = 16;
/// The largest write without response this side makes, whatever the MTU:
/// one link-layer packet with data length extension (251 − 7 bytes of
/// L2CAP and ATT headers). With BlueZ 5.66 and btvirt, bigger write
/// commands (514 bytes at MTU 517) were accepted by `WriteValue` and never
/// reached the peripheral; notifications of 512 bytes did.
const GATT_MAX_WRITE: usize = 244;

/// The btleplug adapter whose name is `name` (BlueZ's `hciN`).
pub(super) async fn adapter(name: &str) -> Result<Adapter, TransportError> {
    use btleplug::api::Manager as _;
    let setup = |e: btleplug::Error| TransportError::Setup(Box::new(e));
    let manager = btleplug::platform::Manager::new().await.map_err(setup)?;
    for a in manager.adapters().await.map_err(setup)? {
        let info = a.adapter_info().await.map_err(setup)?;
        if info.split_whitespace().next() == Some(name) {
            return Ok(a);
        }
    }
    Err(TransportError::Setup(Box::new(Reason(format!(
        "btleplug does not see the adapter {name}"
    )))))
}

/// Scans in the windows of the duty cycle until the transport stops,
/// reporting devices whose hint the node wants.
pub(super) async fn scan(shared: Arc<Shared>, central: Adapter) {
    let mut events = match central.events().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "Bluetooth: cannot watch the scan");
            return;
        }
    };
    let mut duty = shared.config.duty.clone();
    let mut duty_open = true;
    let start = tokio::time::Instant::now();
    let mut scanning = Scanning::default();
    loop {
        let schedule = duty.borrow_and_update().schedule();
        let at = start.elapsed();
        let (act, wake) = scanning.next(&schedule, at);
        if let Some(on) = act {
            // Strand's UUID is in the service data, not the service list,
            // so the scan is unfiltered and the data is checked here.
            let asked = tokio::time::Instant::now();
            let done = match on {
                true => central.start_scan(ScanFilter::default()).await,
                false => central.stop_scan().await,
            };
            match &done {
                Ok(()) => tracing::debug!(on, took = ?asked.elapsed(), "Bluetooth: scanning"),
                Err(e) => {
                    tracing::warn!(error = %e, on, "Bluetooth: cannot start or stop scanning; trying again")
                }
            }
            scanning.done(on, done.is_ok(), at);
            continue;
        }
        let toggle = wake.map(|d| tokio::time::Instant::now() + d);
        let event = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            changed = duty.changed(), if duty_open => {
                duty_open = changed.is_ok();
                continue;
            }
            _ = tokio::time::sleep_until(toggle.unwrap_or(start)), if toggle.is_some() => continue,
            e = events.next() => match e { Some(e) => e, None => break },
        };
        match event {
            CentralEvent::ServiceDataAdvertisement { id, service_data } => {
                if let Some(hint) = service_data.get(&SERVICE) {
                    seen(&shared, &central, id, hint.clone()).await;
                }
            }
            CentralEvent::DeviceDiscovered(id) => {
                let data = match central.peripheral(&id).await {
                    Ok(p) => p.properties().await.ok().flatten(),
                    Err(_) => None,
                };
                if let Some(hint) = data.and_then(|p| p.service_data.get(&SERVICE).cloned()) {
                    seen(&shared, &central, id, hint).await;
                }
            }
            CentralEvent::DeviceDisconnected(id) => {
                shared.disconnected(&id);
            }
            _ => {}
        }
    }
    if scanning.on() {
        let _ = central.stop_scan().await;
    }
}

/// A Strand advertisement: count it, and tell the node if it is wanted.
///
/// One side dials: the one whose own hint sorts first, so two devices
/// that see each other open one link, not two. But a hint names at most
/// four contacts, so the other side may not know it is wanted: a device
/// that wants a link and is not the one to dial dials anyway once
/// [`super::REDISCOVER`] has passed with no link ([`super::sighting`]).
async fn seen(shared: &Arc<Shared>, central: &Adapter, id: PeripheralId, hint: Vec<u8>) {
    let known = shared.seen.lock().expect("not poisoned").contains_key(&id);
    let address = if known {
        String::new()
    } else {
        match central.peripheral(&id).await {
            Ok(p) => p.address().to_string(),
            Err(_) => return,
        }
    };
    let now = tokio::time::Instant::now();
    let own = shared.config.advert.borrow().clone();
    let first = own < hint;
    let report = {
        let mut seen = shared.seen.lock().expect("not poisoned");
        if !seen.contains_key(&id) && seen.len() >= MAX_SEEN {
            let oldest = seen
                .iter()
                .filter(|(_, s)| !s.linked)
                .min_by_key(|(_, s)| s.heard)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(old) => {
                    seen.remove(&old);
                }
                None => return,
            }
        }
        let entry = seen.entry(id.clone()).or_insert_with(|| Seen {
            number: shared
                .next_number
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            hint: Vec::new(),
            wanted: false,
            heard: now,
            address,
            reported: None,
            linked: false,
        });
        entry.heard = now;
        if entry.hint != hint {
            entry.wanted = (shared.config.wanted)(&hint);
            entry.hint = hint;
        }
        if !entry.wanted || entry.linked {
            None
        } else {
            let since = entry.reported.map(|t| now.duration_since(t));
            match super::sighting(first, since) {
                Sighting::Nothing => None,
                s => {
                    entry.reported = Some(now);
                    Some((entry.number, s == Sighting::Dial))
                }
            }
        }
    };
    if let Some((number, initiate)) = report {
        tracing::debug!(number, initiate, "Bluetooth: a wanted device heard");
        let peer = Peer::new(LinkKind::Bluetooth, number);
        let _ = shared
            .events
            .send(TransportEvent::Discovered { peer, initiate })
            .await;
    }
}

/// Opens a link to a device reported as `number`.
pub(super) async fn open(
    shared: Arc<Shared>,
    central: Adapter,
    number: u64,
) -> Result<Link, TransportError> {
    let id = shared
        .seen
        .lock()
        .expect("not poisoned")
        .iter()
        .find(|(_, s)| s.number == number)
        .map(|(id, _)| id.clone())
        .ok_or(TransportError::UnknownPeer)?;
    let dial = |e: Box<dyn std::error::Error + Send + Sync>| TransportError::Dial {
        target: format!("Bluetooth device {number}"),
        source: e,
    };
    let device = central
        .peripheral(&id)
        .await
        .map_err(|e| dial(Box::new(e)))?;
    let props = device.properties().await.ok().flatten();
    // A connection this side did not make (the other side's, in the other
    // role) is left up when this link ends.
    let connected_here = !device.is_connected().await.unwrap_or(false);
    if connected_here {
        let started = tokio::time::Instant::now();
        tracing::debug!(number, "Bluetooth: connecting");
        tokio::time::timeout(CONNECT_TIMEOUT, device.connect())
            .await
            .map_err(|_| dial(Box::new(Reason("connecting timed out".into()))))?
            .map_err(|e| dial(Box::new(e)))?;
        tracing::debug!(number, after = ?started.elapsed(), "Bluetooth: connected");
    }
    shared.set_linked(&id, true);
    let opened = tokio::time::timeout(
        CONNECT_TIMEOUT,
        open_connected(&shared, &device, props, connected_here),
    )
    .await
    .unwrap_or_else(|_| Err(Box::new(Reason("the Strand service did not answer".into()))));
    if opened.is_err() {
        shared.set_linked(&id, false);
        if connected_here {
            let _ = device.disconnect().await;
        }
    }
    opened.map_err(dial)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn open_connected(
    shared: &Arc<Shared>,
    device: &Peripheral,
    props: Option<btleplug::api::PeripheralProperties>,
    connected_here: bool,
) -> Result<Link, BoxError> {
    device.discover_services().await?;
    let chars = device.characteristics();
    let find = |uuid| {
        chars
            .iter()
            .find(|c| c.uuid == uuid && c.service_uuid == SERVICE)
            .cloned()
            .ok_or_else(|| Box::new(Reason("no Strand service on that device".into())) as BoxError)
    };
    let (rx, tx) = (find(RX_CHAR)?, find(TX_CHAR)?);
    let remote = Remote::Bluetooth(device.address().to_string());
    if shared.config.l2cap {
        let psm = match find(PSM_CHAR) {
            Ok(c) => device
                .read(&c)
                .await
                .ok()
                .and_then(|v| <[u8; 2]>::try_from(v.as_slice()).ok())
                .map_or(0, u16::from_le_bytes),
            Err(_) => 0,
        };
        if psm != 0 {
            match l2cap(shared, device, props.as_ref(), psm).await {
                Ok(stream) => {
                    // When the session lets the channel go, the connection
                    // goes too (btleplug's GATT connection holds it up).
                    let mut counted = shared.counted(stream);
                    let (shared, device) = (shared.clone(), device.clone());
                    counted.on_drop = Some(Box::new(move || {
                        shared.set_linked(&device.id(), false);
                        if connected_here {
                            tokio::spawn(async move {
                                let _ = device.disconnect().await;
                            });
                        }
                    }));
                    return Ok(Link {
                        kind: LinkKind::Bluetooth,
                        direction: Direction::Outbound,
                        remote,
                        stream: Box::new(counted.compat()),
                        authenticated: None,
                    });
                }
                Err(e) => tracing::debug!(error = %e, "L2CAP failed; GATT instead"),
            }
        }
    }
    // GATT: notifications in, writes without response out.
    let mut notifications = device.notifications().await?;
    device.subscribe(&tx).await?;
    let mtu = usize::from(device.mtu());
    tracing::debug!(mtu, "GATT link: subscribed");
    let config = LinkConfig {
        max_write: mtu.saturating_sub(3).min(GATT_MAX_WRITE),
        max_receive: mtu.saturating_sub(3).max(512),
        window: shared.config.window,
    };
    let (in_tx, in_rx) = mpsc::channel(GATT_QUEUE);
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(GATT_QUEUE);
    let (stream, ended) = driver::spawn(config, in_rx, out_tx);
    let gone = shared.watch_disconnect(device.id());
    let device = device.clone();
    let counters = shared.counters.clone();
    let task_shared = shared.clone();
    let cancel = shared.cancel.clone();
    shared.tasks.spawn(async move {
        loop {
            tokio::select! {
                n = notifications.next() => match n {
                    Some(n) if n.uuid == TX_CHAR => {
                        tracing::trace!(len = n.value.len(), "GATT notification");
                        counters.received(n.value.len());
                        if in_tx.send(n.value).await.is_err() { break; }
                    }
                    Some(n) => tracing::debug!(uuid = %n.uuid, "a notification from another characteristic"),
                    None => {
                        tracing::debug!("GATT notifications ended");
                        break;
                    }
                },
                out = out_rx.recv() => match out {
                    Some(p) => {
                        counters.sent(p.len());
                        if let Err(e) = device.write(&rx, &p, WriteType::WithoutResponse).await {
                            tracing::debug!(error = %e, "GATT write failed");
                            break;
                        }
                    }
                    None => break,
                },
                _ = gone.cancelled() => break,
                _ = cancel.cancelled() => break,
            }
        }
        drop(in_tx);
        let _ = ended.await;
        if connected_here {
            let _ = device.disconnect().await;
        }
        task_shared.set_linked(&device.id(), false);
    });
    shared.counters.link_opened();
    Ok(Link {
        kind: LinkKind::Bluetooth,
        direction: Direction::Outbound,
        remote,
        stream: Box::new(stream.compat()),
        authenticated: None,
    })
}

/// An L2CAP channel to `psm` on the connected device, from this adapter.
async fn l2cap(
    shared: &Arc<Shared>,
    device: &Peripheral,
    props: Option<&btleplug::api::PeripheralProperties>,
    psm: u16,
) -> Result<bluer::l2cap::Stream, BoxError> {
    use bluer::l2cap::{Security, SecurityLevel, Socket, SocketAddr};
    let addr = bluer::Address::new(device.address().into_inner());
    let addr_type = match props.and_then(|p| p.address_type) {
        Some(btleplug::api::AddressType::Random) => bluer::AddressType::LeRandom,
        _ => bluer::AddressType::LePublic,
    };
    let socket = Socket::<bluer::l2cap::Stream>::new_stream()?;
    socket.bind(SocketAddr::new(shared.address, shared.address_type, 0))?;
    socket.set_security(Security {
        level: SecurityLevel::Low,
        key_size: 0,
    })?;
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        socket.connect(SocketAddr::new(addr, addr_type, psm)),
    )
    .await
    .map_err(|_| Reason("the L2CAP channel did not open".into()))??;
    shared.counters.link_opened();
    Ok(stream)
}
