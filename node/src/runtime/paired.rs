//! The mailbox in a running node (see [`crate::profile::pairing`]): pairing through
//! the node, and mailbox records that arrive over links.

use std::sync::Arc;

use strand_sync::{GroupId, Invite, Key};

use super::{Node, Shared};
use crate::profile::mailbox_records::Taken;
use crate::{ContactRecord, NodeEvent, ProfileError};

impl Node {
    /// Pairs the mailbox whose code (`strand mailbox init` prints it) this
    /// is: it becomes a contact
    /// and contacts are told of it (see [`crate::Profile::pair_mailbox`]).
    pub async fn pair_mailbox(&self, code: &str) -> Result<ContactRecord, ProfileError> {
        let code = code.to_owned();
        let profile = self.shared.profile.clone();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let (record, written) =
            tokio::task::spawn_blocking(move || profile.pair_mailbox(&code, now, &mut rng))
                .await
                .map_err(|_| ProfileError::Closed)??;
        for (g, k) in written {
            self.shared.registry.announce(g, k, None);
        }
        self.contact_added(&record).await;
        Ok(record)
    }

    /// Makes this device the mailbox of the owner whose code (invite) this
    /// is: the owner becomes a contact and this node carries.
    pub async fn become_mailbox(&self, code: &str) -> Result<ContactRecord, ProfileError> {
        let invite = Invite::from_text(code)?;
        let profile = self.shared.profile.clone();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let record =
            tokio::task::spawn_blocking(move || profile.mailbox_owner(&invite, now, &mut rng))
                .await
                .map_err(|_| ProfileError::Closed)??;
        self.set_carrying(true).await?;
        self.contact_added(&record).await;
        Ok(record)
    }

    /// After a contact is added by this node: reach them, dial devices
    /// around that may be theirs, and tell them what carrying and the
    /// mailbox they need to know.
    pub(crate) async fn contact_added(&self, record: &ContactRecord) {
        self.contacts_added(std::slice::from_ref(record)).await;
    }

    /// [`Node::contact_added`] for several at once (one carrying step).
    pub(crate) async fn contacts_added(&self, records: &[ContactRecord]) {
        // Not those deleted since (a mailbox's owner's lists, one after
        // another, may add and delete one contact).
        let book = self.shared.profile.book();
        let records: Vec<ContactRecord> = records
            .iter()
            .filter(|r| book.records.iter().any(|b| b.public == r.public))
            .cloned()
            .collect();
        let records = &records[..];
        if !records.is_empty() {
            let _ = self.shared.events.send(NodeEvent::contacts_added(records));
        }
        for r in records {
            self.clone().reach_record(r.public).await;
        }
        self.redial_nearby();
        self.tell_new_contacts().await;
    }

    /// Tells the contacts added what they are still to be told (see
    /// [`crate::profile::telling`]): that this user carries, the user's
    /// mailbox (and the mailbox of them), the reach record. Each is told
    /// once; what fails stays to be told at the next start or after the
    /// next contact added.
    pub(crate) async fn tell_new_contacts(&self) {
        self.carrying_new_contacts().await;
        let profile = self.shared.profile.clone();
        let now = self.shared.clock.now();
        let mut rng = self.shared.rng();
        let written = tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            match profile.tell_mailbox_new(now, &mut rng) {
                Ok(k) => keys.extend(k),
                Err(e) => tracing::warn!("telling new contacts of the mailbox failed: {e}"),
            }
            match profile.reach_new_contacts(None, now, &mut rng) {
                Ok(k) => keys.extend(k),
                Err(e) => tracing::warn!("telling new contacts our relays failed: {e}"),
            }
            keys
        })
        .await
        .unwrap_or_default();
        for (g, k) in written {
            self.shared.registry.announce(g, k, None);
        }
    }

    /// Follows up what mailbox records changed in the contact list (from
    /// a link or an import): those deleted, then those added.
    pub(crate) async fn mailbox_taken(&self, taken: &Taken) {
        if !taken.deleted.is_empty() {
            tracing::info!(
                count = taken.deleted.len(),
                "contacts deleted through a mailbox record"
            );
        }
        for deleted in &taken.deleted {
            self.contact_deleted(deleted).await;
        }
        if !taken.added.is_empty() {
            tracing::info!(
                count = taken.added.len(),
                "contacts added through a mailbox record"
            );
            self.contacts_added(&taken.added).await;
        }
    }
}

/// At a mailbox, once at the start: the owner's newest list is taken
/// again ([`crate::Profile`]'s `take_owners_list`), so that one stored but
/// not taken before a crash, or taken with a deletion that failed, is
/// whom the mailbox carries for without waiting for the owner's next.
pub(crate) async fn owners_list(shared: Arc<Shared>) {
    let node = Node {
        shared: shared.clone(),
    };
    let profile = shared.profile.clone();
    let now = shared.clock.now();
    let mut rng = shared.rng();
    let taken = tokio::task::spawn_blocking(move || profile.take_owners_list(now, &mut rng)).await;
    match taken {
        Ok(Ok(taken)) => node.mailbox_taken(&taken).await,
        Ok(Err(e)) => tracing::warn!("the owner's list not taken again: {e}"),
        Err(_) => {}
    }
}

/// Once at the start: what contacts added before are still to be told
/// (the node that added them stopped first, or a step failed) is told
/// now ([`Node::tell_new_contacts`]).
pub(crate) async fn new_contacts(shared: Arc<Shared>) {
    Node { shared }.tell_new_contacts().await;
}

/// Mailbox records `items` arrived over a link and were stored.
pub(crate) async fn records(shared: Arc<Shared>, items: Vec<(GroupId, Key)>) {
    let node = Node {
        shared: shared.clone(),
    };
    let profile = shared.profile.clone();
    let now = shared.clock.now();
    let mut rng = shared.rng();
    let taken = tokio::task::spawn_blocking(move || {
        let mut taken = Taken::default();
        for (g, k) in items {
            match profile.take_mailbox_record(&g, &k, now, &mut rng) {
                Ok(t) => taken.join(t),
                Err(e) => tracing::warn!("a mailbox record not taken: {e}"),
            }
        }
        taken
    })
    .await
    .unwrap_or_default();
    node.mailbox_taken(&taken).await;
}
