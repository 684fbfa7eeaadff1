//! The peripheral role, with bluer (BlueZ over D-Bus): the advertisement,
//! the GATT service, and the L2CAP listener.
//!
//! The advertisement is connectable and carries one field: service data
//! under Strand's service UUID holding the node's current hint (10 bytes).
//! With the AD flags that is exactly the 31 bytes a legacy advertisement
//! holds, so the service UUID is not listed separately (a central scans
//! for the service data instead).
//!
//! The GATT service has three characteristics: RX (the central writes
//! without response), TX (this side notifies) and PSM (read: the L2CAP
//! channel's PSM, or 0 when there is none). A link over GATT runs the
//! [`link`](super::link) layer over RX and TX; a link over L2CAP is the
//! channel itself (the kernel frames it and gives credits).
//!
//! BlueZ before 5.69 (Debian 12 has 5.66) keeps one RX socket and one TX
//! socket per characteristic for all centrals, and notifies every
//! subscriber alike: this side serves one GATT link at a time, and L2CAP
//! (one socket per channel) is preferred.

use std::sync::Arc;

use bluer::gatt::local::{
    characteristic_control, Application, Characteristic, CharacteristicControlEvent,
    CharacteristicNotify, CharacteristicNotifyMethod, CharacteristicRead, CharacteristicWrite,
    CharacteristicWriteMethod, Service,
};
use bluer::l2cap::{SocketAddr, StreamListener};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::{
    driver, link::LinkConfig, pairing::Pairing, Shared, PSM_CHAR, RX_CHAR, SERVICE, TX_CHAR,
};
use crate::{Direction, Link, LinkKind, Remote, TransportError, TransportEvent};

/// Packets queued towards BlueZ for one GATT link: a few connection
/// events' worth.
const GATT_QUEUE: usize = 16;

/// What the peripheral holds open; dropping it stops advertising and
/// serving.
pub(super) struct Peripheral {
    _app: bluer::gatt::local::ApplicationHandle,
}

/// Binds the L2CAP listener (if asked for) on the adapter's address with a
/// PSM the kernel picks. No security level beyond Low: Strand needs no
/// pairing, Noise runs above.
pub(super) async fn listen_l2cap(
    adapter: &bluer::Adapter,
) -> Result<(StreamListener, u16), TransportError> {
    let setup = |e: std::io::Error| TransportError::Setup(Box::new(e));
    let addr = adapter
        .address()
        .await
        .map_err(|e| TransportError::Setup(Box::new(e)))?;
    let addr_type = adapter
        .address_type()
        .await
        .map_err(|e| TransportError::Setup(Box::new(e)))?;
    let socket = bluer::l2cap::Socket::<bluer::l2cap::Stream>::new_stream().map_err(setup)?;
    socket
        .bind(SocketAddr::new(addr, addr_type, 0))
        .map_err(setup)?;
    socket
        .set_security(bluer::l2cap::Security {
            level: bluer::l2cap::SecurityLevel::Low,
            key_size: 0,
        })
        .map_err(setup)?;
    let psm = socket.local_addr().map_err(setup)?.psm;
    let listener = socket.listen(4).map_err(setup)?;
    Ok((listener, psm))
}

/// Accepts L2CAP channels until the transport stops.
pub(super) async fn accept_l2cap(shared: Arc<Shared>, listener: StreamListener) {
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                shared.counters.link_opened();
                let address = peer.addr.to_string();
                shared.set_linked_address(&address, true);
                let mut counted = shared.counted(stream);
                let (s, a) = (shared.clone(), address.clone());
                counted.on_drop = Some(Box::new(move || s.set_linked_address(&a, false)));
                let link = Link {
                    kind: LinkKind::Bluetooth,
                    direction: Direction::Inbound,
                    remote: Remote::Bluetooth(address),
                    stream: Box::new(counted.compat()),
                    authenticated: None,
                };
                if shared
                    .events
                    .send(TransportEvent::Incoming(link))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "L2CAP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

/// Registers the GATT service and serves GATT links, one at a time.
pub(super) async fn serve(
    shared: Arc<Shared>,
    adapter: &bluer::Adapter,
    psm: u16,
) -> Result<Peripheral, TransportError> {
    let (rx_ctl, rx_handle) = characteristic_control();
    let (tx_ctl, tx_handle) = characteristic_control();
    let app = Application {
        services: vec![Service {
            uuid: SERVICE,
            primary: true,
            characteristics: vec![
                Characteristic {
                    uuid: RX_CHAR,
                    write: Some(CharacteristicWrite {
                        write_without_response: true,
                        method: CharacteristicWriteMethod::Io,
                        ..Default::default()
                    }),
                    control_handle: rx_handle,
                    ..Default::default()
                },
                Characteristic {
                    uuid: TX_CHAR,
                    notify: Some(CharacteristicNotify {
                        notify: true,
                        method: CharacteristicNotifyMethod::Io,
                        ..Default::default()
                    }),
                    control_handle: tx_handle,
                    ..Default::default()
                },
                Characteristic {
                    uuid: PSM_CHAR,
                    read: Some(CharacteristicRead {
                        read: true,
                        fun: Box::new(move |_req| {
                            async move { Ok(psm.to_le_bytes().to_vec()) }.boxed()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    let handle = adapter
        .serve_gatt_application(app)
        .await
        .map_err(|e| TransportError::Setup(Box::new(e)))?;
    let task = shared.clone();
    shared.tasks.spawn(serve_gatt_links(task, rx_ctl, tx_ctl));
    Ok(Peripheral { _app: handle })
}

/// Pairs each central's RX writer and TX subscription into a link.
async fn serve_gatt_links(
    shared: Arc<Shared>,
    mut rx_ctl: bluer::gatt::local::CharacteristicControl,
    mut tx_ctl: bluer::gatt::local::CharacteristicControl,
) {
    // Each link is one central's writer and subscription, never halves
    // of two devices'.
    let mut pairing: Pairing<bluer::gatt::CharacteristicReader, bluer::gatt::CharacteristicWriter> =
        Pairing::default();
    loop {
        // The control channels must be polled all the time, or BlueZ's
        // writes stall.
        let event = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            e = rx_ctl.next() => e,
            e = tx_ctl.next() => e,
        };
        let paired = match event {
            Some(CharacteristicControlEvent::Write(req)) => match req.accept() {
                Ok(r) => {
                    let device = r.device_address().to_string();
                    tracing::debug!(%device, mtu = r.mtu(), "GATT writer");
                    pairing.reader(&device, r)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "accepting a GATT writer failed");
                    None
                }
            },
            Some(CharacteristicControlEvent::Notify(w)) => {
                let device = w.device_address().to_string();
                tracing::debug!(%device, mtu = w.mtu(), "GATT subscriber");
                pairing.writer(&device, w)
            }
            None => return,
        };
        if let Some((r, w)) = paired {
            // One GATT link at a time (BlueZ 5.66 shares these sockets
            // between centrals): serve it to its end, keeping the control
            // channels polled meanwhile.
            let address = r.device_address().to_string();
            shared.set_linked_address(&address, true);
            let remote = Remote::Bluetooth(address.clone());
            let config = LinkConfig {
                max_write: w.mtu(),
                max_receive: r.mtu().saturating_sub(3),
                window: shared.config.window,
            };
            let (in_tx, in_rx) = mpsc::channel(GATT_QUEUE);
            let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(GATT_QUEUE);
            let (stream, ended) = driver::spawn(config, in_rx, out_tx);
            shared.counters.link_opened();
            let link = Link {
                kind: LinkKind::Bluetooth,
                direction: Direction::Inbound,
                remote,
                stream: Box::new(stream.compat()),
                authenticated: None,
            };
            if shared
                .events
                .send(TransportEvent::Incoming(link))
                .await
                .is_err()
            {
                return;
            }
            let counters = shared.counters.clone();
            let mut pump = Box::pin(async move {
                loop {
                    tokio::select! {
                        packet = r.recv() => match packet {
                            // An empty read is the socket's end (Strand
                            // never writes empty packets).
                            Ok(p) if !p.is_empty() => {
                                counters.received(p.len());
                                if in_tx.send(p).await.is_err() { return; }
                            }
                            _ => return,
                        },
                        out = out_rx.recv() => match out {
                            Some(p) => {
                                counters.sent(p.len());
                                tracing::trace!(len = p.len(), "GATT notify");
                                if let Err(e) = w.send(&p).await {
                                    tracing::debug!(error = %e, "GATT notify failed");
                                    return;
                                }
                            }
                            None => return,
                        },
                        // The central unsubscribed or went away.
                        _ = w.closed() => {
                            tracing::debug!("GATT subscriber gone");
                            return;
                        }
                    }
                }
            });
            loop {
                tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    _ = &mut pump => break,
                    // Other centrals' requests: refused while this link lasts.
                    e = rx_ctl.next() => if let Some(CharacteristicControlEvent::Write(req)) = e {
                        req.reject(bluer::gatt::local::ReqError::InProgress);
                    },
                    e = tx_ctl.next() => drop(e),
                }
            }
            drop(pump);
            shared.set_linked_address(&address, false);
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                ended = ended => tracing::debug!(?ended, "GATT link ended"),
            }
        }
    }
}

/// Advertises the current hint, again whenever it changes.
pub(super) async fn advertise(shared: Arc<Shared>, adapter: bluer::Adapter) {
    let mut hints = shared.config.advert.clone();
    loop {
        let hint = hints.borrow_and_update().clone();
        let adv = bluer::adv::Advertisement {
            advertisement_type: bluer::adv::Type::Peripheral,
            service_data: [(SERVICE, hint)].into_iter().collect(),
            ..Default::default()
        };
        let handle = match adapter.advertise(adv).await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "Bluetooth: cannot advertise; trying again");
                None
            }
        };
        // Advertised: until the hint changes. Not: again soon (contacts
        // cannot find this device meanwhile), or sooner with a new hint.
        let retry = handle.is_none().then_some(super::duty::RETRY);
        let stop = tokio::select! {
            _ = shared.cancel.cancelled() => true,
            changed = hints.changed() => changed.is_err(),
            _ = tokio::time::sleep(retry.unwrap_or_default()), if retry.is_some() => false,
        };
        drop(handle);
        if stop {
            // bluer unregisters in a task of its own: give it the moment it
            // needs before the runtime may end, or BlueZ keeps advertising.
            tokio::time::sleep(UNREGISTER_GRACE).await;
            return;
        }
    }
}

/// Time for bluer's unregistering (a D-Bus call in its own task) to reach
/// BlueZ when the transport stops.
pub(super) const UNREGISTER_GRACE: std::time::Duration = std::time::Duration::from_millis(500);
