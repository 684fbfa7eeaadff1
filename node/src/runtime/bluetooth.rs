//! Bluetooth LE as the node runs it: the hint it advertises (renewed every
//! epoch from its contacts), the check of hints it hears, and starting the
//! transport where an adapter exists, or saying in one line why not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use strand_sync::{epoch, Advert, Contact, Time};
use strand_transport::ble::duty::Duty;
#[cfg(target_os = "linux")]
use strand_transport::ble::{Ble, BleConfig};
use strand_transport::{Transport, TransportEvent};
use tokio::sync::{mpsc, watch};

use super::Clock;
use crate::Profile;

/// How the node uses Bluetooth LE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BleSettings {
    /// The BlueZ adapter (`hci0`); `None` takes BlueZ's default.
    pub adapter: Option<String>,
    /// Offer and use L2CAP channels; off, links run over GATT only.
    pub l2cap: bool,
}

impl Default for BleSettings {
    fn default() -> Self {
        BleSettings {
            adapter: None,
            l2cap: true,
        }
    }
}

/// How often the hint is checked for renewal (a new epoch, or contacts
/// that changed).
const RENEW_CHECK: Duration = Duration::from_secs(30);
/// The link layer's window over GATT, in packets (~4 KB in flight). A
/// write command or a notification has no flow control of its own and
/// btleplug makes one D-Bus call per write, so what is in flight queues
/// behind BlueZ: with 64, two nodes on BlueZ in the VM sent 1.8–6.4 MB
/// (spurious and real retransmissions) for 0.56 MB of sync and took
/// 36–112 s; with 16, 0.56 MB and 28 s. The cost, on the emulated radio:
/// a 1M-PHY link with 15 ms intervals keeps 88 % of its payload rate
/// instead of 98.7 % (2M PHY and 30 ms intervals keep 98.7 %). A window
/// that grows while round trips stay short would have both.
#[cfg(target_os = "linux")]
const GATT_WINDOW: u16 = 16;
/// How long BlueZ may take to answer at start.
#[cfg(target_os = "linux")]
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What the hint is made from, shared with the transport's check.
pub(crate) struct Hints {
    contacts: Mutex<Vec<Contact>>,
    clock: Clock,
    advert: watch::Sender<Vec<u8>>,
    /// The epoch and contacts (their signing keys) the current hint was
    /// made for. Not their count: a contact deleted and another added in
    /// one epoch leave it as it was.
    made_for: Mutex<(u64, Vec<strand_sync::AuthorId>)>,
}

impl Hints {
    /// Hints for `contacts`, with the first one made now, and what the
    /// transport watches for the hint to advertise.
    fn new(
        contacts: Vec<Contact>,
        clock: Clock,
        rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
    ) -> (Hints, watch::Receiver<Vec<u8>>) {
        let now = clock.now();
        let first = Advert::new(&contacts, now, rng);
        let (advert, advert_rx) = watch::channel(first.to_bytes().to_vec());
        let hints = Hints {
            made_for: Mutex::new((epoch(now), signs(&contacts))),
            contacts: Mutex::new(contacts),
            clock,
            advert,
        };
        (hints, advert_rx)
    }

    fn contacts(&self) -> Vec<Contact> {
        self.contacts.lock().expect("not poisoned").clone()
    }

    /// Registers the advertisement again (BlueZ drops it on suspend), with
    /// a hint made anew: the transport registers it on every change. Not
    /// the hint from before: the system may have slept for hours and woken
    /// somewhere else, and a scanner that heard it there would link the
    /// two places (and the radio's addresses) for up to [`RENEW_CHECK`].
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn advertise_anew(
        &self,
        profile: &Profile,
        rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
    ) {
        let contacts = profile.sync_contacts();
        let now: Time = self.clock.now();
        let advert = Advert::new(&contacts, now, rng);
        *self.made_for.lock().expect("not poisoned") = (epoch(now), signs(&contacts));
        *self.contacts.lock().expect("not poisoned") = contacts;
        let _ = self.advert.send(advert.to_bytes().to_vec());
    }

    /// Whether a hint heard over the air may come from a contact.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn wanted(&self, hint: &[u8]) -> bool {
        let Ok(advert) = Advert::from_bytes(hint) else {
            return false;
        };
        let now = self.clock.now();
        self.contacts
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|c| advert.matches(c, now))
    }

    /// Makes a new hint if the epoch or the contacts changed.
    pub(crate) fn renew(
        &self,
        profile: &Profile,
        rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
    ) {
        let contacts = profile.sync_contacts();
        let now: Time = self.clock.now();
        let key = (epoch(now), signs(&contacts));
        if *self.made_for.lock().expect("not poisoned") == key {
            return;
        }
        self.advertise_anew(profile, rng);
    }
}

/// Whom a hint is made for.
fn signs(contacts: &[Contact]) -> Vec<strand_sync::AuthorId> {
    contacts.iter().map(|c| c.public.sign).collect()
}

/// Starts the BLE transport, or says why it cannot run here.
pub(crate) async fn start(
    profile: &Profile,
    settings: &BleSettings,
    clock: Clock,
    mut rng: rand_chacha::ChaCha20Rng,
    duty: watch::Receiver<Duty>,
    events: mpsc::Sender<TransportEvent>,
) -> Result<(Arc<dyn Transport>, Arc<Hints>), String> {
    let (hints, advert_rx) = Hints::new(profile.sync_contacts(), clock, &mut rng);
    open(settings, advert_rx, duty, Arc::new(hints), events).await
}

/// The BLE transport on BlueZ, its hint check done by `hints`.
#[cfg(target_os = "linux")]
async fn open(
    settings: &BleSettings,
    advert: watch::Receiver<Vec<u8>>,
    duty: watch::Receiver<Duty>,
    hints: Arc<Hints>,
    events: mpsc::Sender<TransportEvent>,
) -> Result<(Arc<dyn Transport>, Arc<Hints>), String> {
    let check = hints.clone();
    let config = BleConfig {
        adapter: settings.adapter.clone(),
        advert,
        wanted: Arc::new(move |hint: &[u8]| check.wanted(hint)),
        l2cap: settings.l2cap,
        window: GATT_WINDOW,
        duty,
    };
    match tokio::time::timeout(START_TIMEOUT, Ble::start(config, events)).await {
        Ok(Ok(ble)) => Ok((Arc::new(ble), hints)),
        // The transport's reason, without "transport setup failed".
        Ok(Err(strand_transport::TransportError::Setup(why))) => Err(crate::chain(&*why)),
        Ok(Err(e)) => Err(crate::chain(&e)),
        Err(_) => Err("BlueZ did not answer".into()),
    }
}

/// Elsewhere (Android, until its shell drives the radio) there is no
/// BLE transport: the node says so and runs without it.
#[cfg(not(target_os = "linux"))]
async fn open(
    _: &BleSettings,
    _: watch::Receiver<Vec<u8>>,
    _: watch::Receiver<Duty>,
    _: Arc<Hints>,
    _: mpsc::Sender<TransportEvent>,
) -> Result<(Arc<dyn Transport>, Arc<Hints>), String> {
    Err("Bluetooth LE is built for Linux (BlueZ) only".into())
}

/// Renews the hint until the node stops.
pub(crate) async fn renew(node: super::Node, hints: Arc<Hints>) {
    let cancel = node.shared.cancel.clone();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RENEW_CHECK) => {}
        }
        let profile = node.shared.profile.clone();
        let hints = hints.clone();
        let mut rng = node.shared.rng();
        let _ = tokio::task::spawn_blocking(move || hints.renew(&profile, &mut rng)).await;
    }
}

impl std::fmt::Debug for Hints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hints")
            .field("contacts", &self.contacts().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A contact deleted and another added within one epoch: the hint is
    /// made again, for the new contact. Before, it was kept while the
    /// count of contacts was the same, so the newcomer's device took the
    /// hint for someone else's until the next epoch.
    #[test]
    fn the_hint_follows_who_the_contacts_are_not_how_many() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::os_rng();
        let (p, _, _) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::now();
        let (hints, mut seen) = Hints::new(p.sync_contacts(), Clock::Fixed(now), rng);
        seen.mark_unchanged();
        hints.renew(&p, rng);
        assert!(!seen.has_changed().unwrap(), "nothing new: kept");

        p.delete_contact("Bob", crate::profile::now(), rng).unwrap();
        let carol = strand_sync::Identity::generate("Carol", rng).unwrap();
        p.add_contact(&carol.invite(), "Carol", now, rng).unwrap();
        hints.renew(&p, rng);
        assert!(seen.has_changed().unwrap(), "made again");
        let carol_sees = carol.contact(&p.identity().public()).unwrap();
        let hint = Advert::from_bytes(&seen.borrow_and_update()).unwrap();
        assert!(hint.matches(&carol_sees, now));
        assert_eq!(hints.contacts()[0].public, carol.public());
    }

    /// Waking advertises a new hint, for the same contacts. Before, it
    /// registered the hint from before the sleep again, bytes unchanged:
    /// a scanner that heard it before could follow the device to where
    /// it woke, hours later.
    #[test]
    fn waking_advertises_a_new_hint() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::os_rng();
        let (p, bob, _) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::now();
        let (hints, mut seen) = Hints::new(p.sync_contacts(), Clock::Fixed(now), rng);
        let first = seen.borrow_and_update().clone();
        hints.advertise_anew(&p, rng);
        assert!(seen.has_changed().unwrap(), "registered again");
        let after = seen.borrow_and_update().clone();
        assert_ne!(after, first, "not the hint from before the sleep");
        let bob_sees = bob.contact(&p.identity().public()).unwrap();
        assert!(Advert::from_bytes(&after).unwrap().matches(&bob_sees, now));
        // The epoch's check keeps it: nothing changed since.
        hints.renew(&p, rng);
        assert!(!seen.has_changed().unwrap());
    }
}
