//! Bluetooth LE: two phones (or laptops) within a few metres sync with no
//! network at all.
//!
//! * [`link`]: the sans-IO link layer (framing into ATT- or L2CAP-sized
//!   packets, reassembly, selective-repeat retransmission, window flow
//!   control, MTU results, a clear error on a broken link).
//! * [`driver`]: runs a link on tokio between two packet channels and a
//!   byte stream.
//! * [`radio`]: an emulated BLE connection in virtual time (PHY, connection
//!   interval, MTU each way, loss, drops) with a two-ended harness, for
//!   tests and benchmarks; and two devices coming into range, advertising
//!   and scanning on their duty cycles ([`radio::meeting`]).
//! * [`duty`]: the battery setting, how much of the time the radio scans.
//! * [`Ble`] (Linux): the transport. Every device takes both roles: it
//!   advertises and serves Strand's GATT service and an L2CAP channel with
//!   bluer (the peripheral role), and scans and connects with btleplug
//!   (the central role).
//!
//! # What is on the air
//!
//! The advertisement carries no name and no fixed id: only service data
//! under Strand's service UUID with the node's current *hint* (strand-sync's
//! `Advert`, 10 bytes, fresh every epoch). A scanner learns that a Strand
//! device is near — the UUID says so — and nothing that links one epoch's
//! advertisement to the next. The radio's own address is BlueZ's business:
//! with `Privacy = device` in `/etc/bluetooth/main.conf` it is a resolvable
//! private address that changes every 15 minutes; without it the adapter's
//! fixed address is on the air, which is a stable identifier (the README
//! says how to turn privacy on).
//!
//! A device that connects learns one thing more from BlueZ itself: the
//! GAP Device Name, which BlueZ serves on every LE connection and which is
//! the adapter's name (often the user's or the machine's). While the
//! transport runs, that name is [`RADIO_NAME`], the same on every Strand
//! device; the adapter's own comes back when it stops.
//!
//! # Who dials
//!
//! Both devices see each other's hint. The one whose own hint sorts first
//! dials, so a meeting makes one link. A link over L2CAP is the channel
//! itself; over GATT, the [`link`] layer runs above writes without
//! response (central → peripheral) and notifications (back).

pub mod driver;
pub mod duty;
pub mod link;
pub mod pairing;
pub mod radio;

use std::time::Duration;

/// The adapter's name while the transport runs. BlueZ serves the GAP
/// Device Name to every device that connects (and a link starts with a
/// connection anyone may make, Noise coming after); the adapter's own
/// name is often the user's or the machine's, and the same under every
/// hint and every rotated address. So the transport sets this name, the
/// same on every Strand device, and gives the old one back when it stops
/// (unless the user renamed the adapter meanwhile). After a crash the
/// adapter keeps this name: `bluetoothctl system-alias NAME` sets one.
pub const RADIO_NAME: &str = "Strand";

/// A device that wants a link and is not first to dial waits this long
/// after it first reports the other before it dials anyway (a hint names
/// at most four contacts, so the other may not know it is wanted). A
/// meeting that ended may start again after it too.
pub const REDISCOVER: Duration = Duration::from_secs(20);

/// What a device does on hearing a wanted device it has no link with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// Tell the node, and dial.
    Dial,
    /// Tell the node, and wait for the other to dial.
    Wait,
    /// Nothing yet (told less than [`REDISCOVER`] ago).
    Nothing,
}

/// The who-dials rule, for a wanted device with no link heard now:
/// `first` if this side's hint sorts first, `since_reported` how long ago
/// it was last reported (`None`: never, or its link has closed since).
///
/// The side whose hint sorts first dials, so a meeting makes one link;
/// the other dials only at a report [`REDISCOVER`] after its first.
pub fn sighting(first: bool, since_reported: Option<Duration>) -> Sighting {
    match since_reported {
        None if first => Sighting::Dial,
        None => Sighting::Wait,
        Some(d) if d >= REDISCOVER => Sighting::Dial,
        Some(_) => Sighting::Nothing,
    }
}

#[cfg(target_os = "linux")]
mod central;
#[cfg(target_os = "linux")]
mod peripheral;
#[cfg(target_os = "linux")]
pub use linux::{Ble, BleConfig, BleInfo};
#[cfg(target_os = "linux")]
use linux::{Seen, Shared, MAX_SEEN, PSM_CHAR, RX_CHAR, SERVICE, TX_CHAR};

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::BTreeMap;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use btleplug::platform::PeripheralId;
    use futures::future::BoxFuture;
    use futures::FutureExt;
    use tokio::sync::{mpsc, watch};
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::{central, peripheral};
    use crate::{
        Link, LinkKind, Multiaddr, Peer, Transport, TransportError, TransportEvent, TransportInfo,
    };

    /// Strand's GATT service (and the key of its advertisement's service
    /// data).
    pub(crate) const SERVICE: uuid::Uuid = uuid::uuid!("5d2a7b40-3f6e-4c8e-9a51-7f0c2e1b9d30");
    /// The characteristic the central writes to (without response).
    pub(crate) const RX_CHAR: uuid::Uuid = uuid::uuid!("5d2a7b41-3f6e-4c8e-9a51-7f0c2e1b9d30");
    /// The characteristic the peripheral notifies on.
    pub(crate) const TX_CHAR: uuid::Uuid = uuid::uuid!("5d2a7b42-3f6e-4c8e-9a51-7f0c2e1b9d30");
    /// The characteristic that holds the L2CAP PSM (little-endian u16; 0:
    /// no channel).
    pub(crate) const PSM_CHAR: uuid::Uuid = uuid::uuid!("5d2a7b43-3f6e-4c8e-9a51-7f0c2e1b9d30");

    /// Settings of the BLE transport.
    #[derive(Clone)]
    pub struct BleConfig {
        /// The BlueZ adapter (`hci0`); `None` takes BlueZ's default.
        pub adapter: Option<String>,
        /// The hint to advertise; the node renews it every epoch.
        pub advert: watch::Receiver<Vec<u8>>,
        /// Whether a hint seen in an advertisement is worth a link (the
        /// node checks it against its contacts).
        #[allow(clippy::type_complexity)]
        pub wanted: Arc<dyn Fn(&[u8]) -> bool + Send + Sync>,
        /// Offer and use L2CAP channels (GATT only when off).
        pub l2cap: bool,
        /// The link layer's window over GATT, in packets.
        pub window: u16,
        /// How much of the time to scan; followed as it changes.
        pub duty: watch::Receiver<super::duty::Duty>,
    }

    impl std::fmt::Debug for BleConfig {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("BleConfig")
                .field("adapter", &self.adapter)
                .field("l2cap", &self.l2cap)
                .field("duty", &*self.duty.borrow())
                .finish_non_exhaustive()
        }
    }

    /// What the BLE transport says about itself, for status screens.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct BleInfo {
        /// The adapter (`hci0`).
        pub adapter: String,
        /// Strand devices seen advertising since the start.
        pub devices_seen: u64,
        /// Links opened (both directions).
        pub links: u64,
        /// Bytes sent over BLE.
        pub bytes_sent: u64,
        /// Bytes received over BLE.
        pub bytes_received: u64,
        /// The L2CAP PSM offered, if any.
        pub psm: Option<u16>,
    }

    #[derive(Debug, Default)]
    pub(crate) struct Counters {
        links: AtomicU64,
        sent: AtomicU64,
        received: AtomicU64,
    }

    impl Counters {
        pub(crate) fn link_opened(&self) {
            self.links.fetch_add(1, Ordering::Relaxed);
        }
        pub(crate) fn sent(&self, n: usize) {
            self.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        pub(crate) fn received(&self, n: usize) {
            self.received.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// A device seen advertising.
    #[derive(Debug)]
    pub(crate) struct Seen {
        pub(crate) number: u64,
        pub(crate) hint: Vec<u8>,
        /// Whether `hint` names a contact (checked once per hint: the check
        /// costs a few hashes per contact).
        pub(crate) wanted: bool,
        pub(crate) heard: tokio::time::Instant,
        /// Its radio address, as `AA:BB:…` (links it opens to this side are
        /// known by it).
        pub(crate) address: String,
        pub(crate) reported: Option<tokio::time::Instant>,
        pub(crate) linked: bool,
    }

    impl Seen {
        /// A link to it opened or closed. A closed one starts the
        /// who-dials rule afresh, so both sides never dial at once.
        fn mark(&mut self, linked: bool) {
            self.linked = linked;
            if !linked {
                self.reported = None;
            }
        }
    }

    /// Devices remembered from advertisements; past this, the one heard
    /// longest ago (and not linked) is forgotten, so advertising from
    /// ever new addresses costs a bounded table.
    pub(crate) const MAX_SEEN: usize = 256;

    pub(crate) struct Shared {
        pub(crate) config: BleConfig,
        pub(crate) events: mpsc::Sender<TransportEvent>,
        pub(crate) cancel: CancellationToken,
        pub(crate) tasks: TaskTracker,
        pub(crate) counters: Arc<Counters>,
        pub(crate) seen: Mutex<BTreeMap<PeripheralId, Seen>>,
        /// Numbers for [`Seen`] devices (the handle the node dials by).
        pub(crate) next_number: AtomicU64,
        /// Cancelled when the device disconnects.
        gone: Mutex<BTreeMap<PeripheralId, CancellationToken>>,
        pub(crate) address: bluer::Address,
        pub(crate) address_type: bluer::AddressType,
        adapter_name: String,
        psm: Option<u16>,
    }

    impl Shared {
        /// Marks a link this side opened to `id` open or closed.
        pub(crate) fn set_linked(&self, id: &PeripheralId, linked: bool) {
            if let Some(s) = self.seen.lock().expect("not poisoned").get_mut(id) {
                s.mark(linked);
            }
        }

        /// Marks links with the device at `address` that the *other* side
        /// opened: while one is up, this side does not dial it.
        pub(crate) fn set_linked_address(&self, address: &str, linked: bool) {
            for s in self.seen.lock().expect("not poisoned").values_mut() {
                if s.address.eq_ignore_ascii_case(address) {
                    s.mark(linked);
                }
            }
        }

        /// A token cancelled when `id` disconnects.
        pub(crate) fn watch_disconnect(&self, id: PeripheralId) -> CancellationToken {
            let token = CancellationToken::new();
            self.gone
                .lock()
                .expect("not poisoned")
                .insert(id, token.clone());
            token
        }

        pub(crate) fn disconnected(&self, id: &PeripheralId) {
            if let Some(t) = self.gone.lock().expect("not poisoned").remove(id) {
                t.cancel();
            }
            self.set_linked(id, false);
        }

        /// Counts the bytes a stream carries.
        pub(crate) fn counted<S>(&self, inner: S) -> Counted<S> {
            Counted {
                inner,
                counters: self.counters.clone(),
                on_drop: None,
            }
        }
    }

    /// A stream whose bytes are counted, and that runs a last action (such
    /// as ending the radio connection) when it is dropped.
    pub(crate) struct Counted<S> {
        inner: S,
        counters: Arc<Counters>,
        pub(crate) on_drop: Option<Box<dyn FnOnce() + Send>>,
    }

    impl<S> Drop for Counted<S> {
        fn drop(&mut self) {
            if let Some(f) = self.on_drop.take() {
                f();
            }
        }
    }

    impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let r = Pin::new(&mut self.inner).poll_read(cx, buf);
            let n = buf.filled().len() - before;
            self.counters.received(n);
            r
        }
    }

    impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let r = Pin::new(&mut self.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = &r {
                self.counters.sent(*n);
            }
            r
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// The BLE transport (Linux, BlueZ). Cheap to clone.
    #[derive(Clone)]
    pub struct Ble {
        shared: Arc<Shared>,
        central: btleplug::platform::Adapter,
        /// The GATT service, until [`Transport::shutdown`] unregisters it.
        peripheral: Arc<Mutex<Option<peripheral::Peripheral>>>,
        /// The adapter's own name, given back at [`Transport::shutdown`]
        /// (`None` once given back).
        own_name: Arc<Mutex<Option<OwnName>>>,
    }

    impl std::fmt::Debug for Ble {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Ble")
                .field("adapter", &self.shared.adapter_name)
                .finish_non_exhaustive()
        }
    }

    impl Ble {
        /// Starts advertising, serving and scanning on the adapter. Fails
        /// with a clear error where BlueZ or an adapter is missing.
        pub async fn start(
            config: BleConfig,
            events: mpsc::Sender<TransportEvent>,
        ) -> Result<Ble, TransportError> {
            let wanted = config.adapter.clone();
            let setup = |e: bluer::Error| {
                TransportError::Setup(Box::new(crate::Reason(why_not(&e, wanted.as_deref()))))
            };
            let session = bluer::Session::new().await.map_err(setup)?;
            let adapter = match &config.adapter {
                Some(name) => session.adapter(name).map_err(setup)?,
                None => session.default_adapter().await.map_err(setup)?,
            };
            adapter.set_powered(true).await.map_err(setup)?;
            let address = adapter.address().await.map_err(setup)?;
            let address_type = adapter.address_type().await.map_err(setup)?;
            let adapter_name = adapter.name().to_string();
            let central = central::adapter(&adapter_name).await?;
            let listener = if config.l2cap {
                Some(peripheral::listen_l2cap(&adapter).await?)
            } else {
                None
            };
            let shared = Arc::new(Shared {
                config,
                events,
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
                counters: Arc::default(),
                seen: Mutex::default(),
                next_number: AtomicU64::new(0),
                gone: Mutex::default(),
                address,
                address_type,
                adapter_name,
                psm: listener.as_ref().map(|(_, psm)| *psm),
            });
            let psm = shared.psm.unwrap_or(0);
            // Before anything can connect: the GATT service and the
            // advertisement come next.
            let own_name = OwnName::hide(&adapter).await.map_err(|e| {
                TransportError::Setup(Box::new(crate::Reason(format!(
                    "cannot set the Bluetooth adapter's name, which any device that connects reads: {e}"
                ))))
            })?;
            let served = match peripheral::serve(shared.clone(), &adapter, psm).await {
                Ok(s) => s,
                Err(e) => {
                    own_name.give_back().await;
                    return Err(e);
                }
            };
            if let Some((listener, _)) = listener {
                shared
                    .tasks
                    .spawn(peripheral::accept_l2cap(shared.clone(), listener));
            }
            shared
                .tasks
                .spawn(peripheral::advertise(shared.clone(), adapter.clone()));
            shared
                .tasks
                .spawn(central::scan(shared.clone(), central.clone()));
            // The session must outlive the tasks that use its adapter.
            let keep = shared.cancel.clone();
            shared.tasks.spawn(async move {
                keep.cancelled().await;
                drop(session);
            });
            tracing::info!(adapter = %shared.adapter_name, psm, "Bluetooth LE on");
            Ok(Ble {
                shared,
                central,
                peripheral: Arc::new(Mutex::new(Some(served))),
                own_name: Arc::new(Mutex::new(Some(own_name))),
            })
        }

        /// What it is doing.
        pub fn ble_info(&self) -> BleInfo {
            let c = &self.shared.counters;
            BleInfo {
                adapter: self.shared.adapter_name.clone(),
                devices_seen: self.shared.seen.lock().expect("not poisoned").len() as u64,
                links: c.links.load(Ordering::Relaxed),
                bytes_sent: c.sent.load(Ordering::Relaxed),
                bytes_received: c.received.load(Ordering::Relaxed),
                psm: self.shared.psm,
            }
        }
    }

    /// The adapter's name while the transport runs is [`super::RADIO_NAME`];
    /// this gives its own back: at shutdown, or, if the transport is
    /// dropped without one (a start cut short by the node's timeout), on
    /// drop.
    pub(super) struct OwnName {
        adapter: bluer::Adapter,
        /// `None`: nothing to give back (it had that name already, or it
        /// was given back).
        old: Option<String>,
    }

    impl OwnName {
        /// Sets the adapter's name to [`super::RADIO_NAME`].
        async fn hide(adapter: &bluer::Adapter) -> bluer::Result<OwnName> {
            let old = adapter.alias().await?;
            let old = if old == super::RADIO_NAME {
                None
            } else {
                adapter.set_alias(super::RADIO_NAME.into()).await?;
                tracing::debug!("Bluetooth: the adapter's name is hidden while Strand runs");
                Some(old)
            };
            Ok(OwnName {
                adapter: adapter.clone(),
                old,
            })
        }

        /// Gives the adapter its name back.
        async fn give_back(mut self) {
            if let Some(old) = self.old.take() {
                give_name_back(&self.adapter, old).await;
            }
        }
    }

    impl Drop for OwnName {
        fn drop(&mut self) {
            if let (Some(old), Ok(rt)) = (self.old.take(), tokio::runtime::Handle::try_current()) {
                let adapter = self.adapter.clone();
                rt.spawn(async move { give_name_back(&adapter, old).await });
            }
        }
    }

    /// Gives the adapter the name `old` back, if it still has
    /// [`super::RADIO_NAME`] (the user may have chosen another since) and
    /// nothing else advertises on it (another Strand node on the same
    /// adapter still needs the name hidden; the name then stays, and
    /// `bluetoothctl system-alias` sets one). A name that was the system's
    /// own goes back to following it.
    async fn give_name_back(adapter: &bluer::Adapter, old: String) {
        let done = async {
            if adapter.alias().await? != super::RADIO_NAME {
                return Ok(());
            }
            if adapter.active_advertising_instances().await.unwrap_or(0) > 0 {
                tracing::info!(
                    "Bluetooth: the adapter keeps the name Strand: something else advertises on it"
                );
                return Ok(());
            }
            let system = adapter.system_name().await.ok();
            let back = if system.as_deref() == Some(old.as_str()) {
                String::new()
            } else {
                old
            };
            adapter.set_alias(back).await
        };
        if let Err(e) = done.await {
            tracing::warn!(error = %e, "Bluetooth: cannot give the adapter its name back");
        }
    }

    /// What keeps Bluetooth from starting, in words a user can act on.
    fn why_not(e: &bluer::Error, adapter: Option<&str>) -> String {
        let text = e.to_string();
        if text.contains("system_bus_socket") {
            "no system D-Bus here, so no BlueZ (install and start bluez)".into()
        } else if text.contains("org.bluez") || text.contains("ServiceUnknown") {
            "BlueZ (bluetoothd) is not running".into()
        } else if e.kind == bluer::ErrorKind::NotFound || text.contains("does not exist") {
            match adapter {
                Some(name) => format!("no Bluetooth adapter named {name}"),
                None => "no Bluetooth adapter".into(),
            }
        } else {
            format!("BlueZ refused: {text}")
        }
    }

    impl Transport for Ble {
        fn kind(&self) -> LinkKind {
            LinkKind::Bluetooth
        }

        fn open(&self, peer: Peer) -> BoxFuture<'static, Result<Link, TransportError>> {
            let (shared, central) = (self.shared.clone(), self.central.clone());
            central::open(shared, central, peer.id()).boxed()
        }

        fn dial(
            &self,
            _addr: &Multiaddr,
        ) -> Option<BoxFuture<'static, Result<Link, TransportError>>> {
            None
        }

        fn info(&self) -> BoxFuture<'static, TransportInfo> {
            let info = TransportInfo {
                kind: LinkKind::Bluetooth,
                addresses: Vec::new(),
                discovery: true,
                ephemeral_id: None,
                relays: Vec::new(),
                external: Vec::new(),
                bluetooth: Some(self.ble_info()),
            };
            async move { info }.boxed()
        }

        fn shutdown(&self) -> BoxFuture<'static, ()> {
            let shared = self.shared.clone();
            let served = self.peripheral.lock().expect("not poisoned").take();
            let own_name = self.own_name.lock().expect("not poisoned").take();
            async move {
                shared.cancel.cancel();
                shared.tasks.close();
                drop(served);
                shared.tasks.wait().await;
                tokio::time::sleep(peripheral::UNREGISTER_GRACE).await;
                if let Some(name) = own_name {
                    name.give_back().await;
                }
            }
            .boxed()
        }
    }
}
