//! A device's long-lived link state: its keys and contacts, from which
//! every link's [`Session`] starts.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::identity::{AuthorId, Contact, Identity, PublicIdentity};
use crate::limits::{Time, MAX_CONTACTS};
use crate::session::{Config, Session};

/// What every link of a device needs: its X25519 secret, its public keys,
/// and its contacts with the keys it shares with each (derived once, when
/// the contact list is set, never per link).
pub(crate) struct Keys {
    pub(crate) dh: Zeroizing<[u8; 32]>,
    pub(crate) me: PublicIdentity,
    pub(crate) contacts: Vec<Contact>,
}

/// One per device, for as long as it runs: starts the [`Session`] of every
/// link, dialled or accepted, over any transport.
///
/// Cheap to clone (the keys are shared). [`Endpoint::set_contacts`]
/// affects links started afterwards; a link keeps the contact list it
/// started with.
///
/// ```
/// use strand_sync::{Endpoint, Identity, Config, MemoryStore};
/// use rand_chacha::ChaCha20Rng;
/// use rand_core::SeedableRng;
///
/// let mut rng = ChaCha20Rng::seed_from_u64(1);
/// let now = 1_700_000_000_000;
/// let alice = Identity::generate("alice", &mut rng).unwrap();
/// let bob = Identity::generate("bob", &mut rng).unwrap();
/// let a = Endpoint::new(&alice, vec![alice.contact(&bob.public()).unwrap()]);
/// let b = Endpoint::new(&bob, vec![bob.contact(&alice.public()).unwrap()]);
///
/// // On every new link: the side that dialled, and the side that accepted.
/// let mut dialler = a.dial(Config::default(), now, &mut rng);
/// let mut acceptor = b.accept(Config::default(), now, &mut rng);
/// let (mut sa, mut sb) = (MemoryStore::new(), MemoryStore::new());
/// let beacon = acceptor.poll_transmit(now, &mut sb).unwrap(); // the acceptor speaks first
/// dialler.handle_input(now, &beacon, &sa).unwrap();
/// let hello = dialler.poll_transmit(now, &mut sa).unwrap();
/// acceptor.handle_input(now, &hello, &sb).unwrap();
/// assert_eq!(acceptor.peer(), Some(&alice.public()));
/// ```
#[derive(Clone)]
pub struct Endpoint {
    keys: Arc<Keys>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("me", &self.keys.me)
            .field("contacts", &self.keys.contacts.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint for `me`, recognising `contacts` (the first
    /// [`MAX_CONTACTS`] of them).
    pub fn new(me: &Identity, mut contacts: Vec<Contact>) -> Self {
        contacts.truncate(MAX_CONTACTS);
        Endpoint {
            keys: Arc::new(Keys {
                dh: Zeroizing::new(me.dh_secret().to_bytes()),
                me: me.public(),
                contacts,
            }),
        }
    }

    /// Replaces the contact list (after an invite was added or a group
    /// changed). Links already running keep the list they started with.
    pub fn set_contacts(&mut self, mut contacts: Vec<Contact>) {
        contacts.truncate(MAX_CONTACTS);
        self.keys = Arc::new(Keys {
            dh: self.keys.dh.clone(),
            me: self.keys.me,
            contacts,
        });
    }

    /// The contacts links recognise.
    pub fn contacts(&self) -> &[Contact] {
        &self.keys.contacts
    }

    /// This device's public keys.
    pub fn public(&self) -> &PublicIdentity {
        &self.keys.me
    }

    /// A link this device opened: it waits for the other side's beacon,
    /// then says hello to each contact the beacon matches, in turn, until
    /// one answers.
    pub fn dial(&self, config: Config, now: Time, rng: &mut (impl RngCore + CryptoRng)) -> Session {
        self.dial_excluding(config, now, rng, BTreeSet::new())
    }

    /// [`Endpoint::dial`], but never saying hello to the contacts in
    /// `exclude` (signing keys), for example those already connected.
    pub fn dial_excluding(
        &self,
        config: Config,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
        exclude: BTreeSet<AuthorId>,
    ) -> Session {
        Session::dialler(config, self.keys.clone(), now, rng, exclude)
    }

    /// A link another device opened: this side sends a fresh beacon at once
    /// and answers the hello of a contact; anyone else gets refusals that
    /// tell them nothing, then the link is dropped.
    pub fn accept(
        &self,
        config: Config,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Session {
        Session::acceptor(config, self.keys.clone(), now, rng)
    }
}
