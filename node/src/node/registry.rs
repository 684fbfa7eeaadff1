//! The sessions that are up, by contact, and when each contact was seen.
//!
//! A session registers when its peer is authenticated (not before: a
//! stranger never takes a contact's slot). At [`MAX_SESSIONS_PER_CONTACT`]
//! a newly authenticated session replaces the oldest, which is told to
//! close: the new one is the one that works now, and a recorded or stalled
//! old one cannot keep the real contact out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use strand_sync::{AuthorId, GroupId, Key, PublicIdentity};
use strand_transport::LinkKind;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::limits::{MAX_SESSIONS, MAX_SESSIONS_PER_CONTACT};

/// What a running session is told (besides to close: that is its
/// `CancellationToken`, which cannot be lost to a full queue).
#[derive(Debug, Clone)]
pub(crate) enum Command {
    /// A message was stored: send it if the session syncs its group.
    New(GroupId, Key),
}

/// A session's number in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SessionId(u64);

struct Entry {
    contact: PublicIdentity,
    commands: mpsc::Sender<Command>,
    close: CancellationToken,
}

/// How a contact was last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Contact name.
    pub contact: String,
    /// Link kind of the last session.
    pub link: String,
    /// When (ms since the Unix epoch).
    pub at: u64,
    /// Whether a session is up now.
    pub connected: bool,
}

#[derive(Default)]
struct Inner {
    sessions: BTreeMap<SessionId, Entry>,
    seen: BTreeMap<PublicIdentity, Seen>,
    next: u64,
}

/// Why a session could not register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node already has {MAX_SESSIONS} sessions")]
pub struct Full;

#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    /// Registers an authenticated session with `contact`; at the per-contact
    /// cap the oldest is told to close and leaves the registry.
    pub(crate) fn register(
        &self,
        contact: PublicIdentity,
        name: &str,
        kind: LinkKind,
        now: u64,
        commands: mpsc::Sender<Command>,
        close: CancellationToken,
    ) -> Result<SessionId, Full> {
        let mut inner = self.inner.lock().expect("registry lock");
        let mine: Vec<SessionId> = inner
            .sessions
            .iter()
            .filter(|(_, e)| e.contact == contact)
            .map(|(id, _)| *id)
            .collect();
        if mine.len() >= MAX_SESSIONS_PER_CONTACT {
            // Ids grow with time: the first is the oldest.
            if let Some(old) = inner.sessions.remove(&mine[0]) {
                old.close.cancel();
            }
        } else if inner.sessions.len() >= MAX_SESSIONS {
            return Err(Full);
        }
        inner.next += 1;
        let id = SessionId(inner.next);
        inner.sessions.insert(
            id,
            Entry {
                contact,
                commands,
                close,
            },
        );
        inner.seen.insert(
            contact,
            Seen {
                contact: name.to_owned(),
                link: kind.to_string(),
                at: now,
                connected: true,
            },
        );
        Ok(id)
    }

    /// A session ended.
    pub(crate) fn unregister(&self, id: SessionId, now: u64) {
        let mut inner = self.inner.lock().expect("registry lock");
        if let Some(e) = inner.sessions.remove(&id) {
            let still = inner.sessions.values().any(|o| o.contact == e.contact);
            if let Some(s) = inner.seen.get_mut(&e.contact) {
                s.connected = still;
                s.at = now;
            }
        }
    }

    /// Contacts with a session up (their signing keys).
    pub(crate) fn connected(&self) -> BTreeSet<AuthorId> {
        let inner = self.inner.lock().expect("registry lock");
        inner.sessions.values().map(|e| e.contact.sign).collect()
    }

    /// Tells every session (but `except`, the one it came from) about a
    /// newly stored message; a session whose queue is full misses it (its
    /// next reconciliation finds it).
    pub(crate) fn announce(&self, group: GroupId, key: Key, except: Option<SessionId>) {
        let inner = self.inner.lock().expect("registry lock");
        for (id, e) in &inner.sessions {
            if Some(*id) != except {
                let _ = e.commands.try_send(Command::New(group, key));
            }
        }
    }

    /// Tells every session to close.
    pub(crate) fn close_all(&self) {
        let inner = self.inner.lock().expect("registry lock");
        for e in inner.sessions.values() {
            e.close.cancel();
        }
    }

    /// Sessions up now.
    pub(crate) fn sessions(&self) -> usize {
        self.inner.lock().expect("registry lock").sessions.len()
    }

    /// How every contact was last seen, by name.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        let inner = self.inner.lock().expect("registry lock");
        let mut out: Vec<Seen> = inner.seen.values().cloned().collect();
        out.sort_by(|a, b| a.contact.cmp(&b.contact));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(n: u8) -> PublicIdentity {
        PublicIdentity {
            sign: [n; 32],
            dh: [n; 32],
        }
    }

    /// Issue 10: at the per-contact cap a newly authenticated session
    /// replaces the oldest (which is told to close), so stale or replayed
    /// sessions cannot keep the contact's working one out.
    #[test]
    fn a_third_session_replaces_the_oldest() {
        let r = Registry::default();
        let mut tokens = Vec::new();
        for _ in 0..MAX_SESSIONS_PER_CONTACT + 1 {
            let (tx, _rx) = mpsc::channel(1);
            let close = CancellationToken::new();
            r.register(contact(1), "ann", LinkKind::Lan, 0, tx, close.clone())
                .unwrap();
            tokens.push(close);
        }
        // Another contact's session is not touched.
        let (tx, _rx) = mpsc::channel(1);
        let other = CancellationToken::new();
        r.register(contact(2), "ben", LinkKind::Lan, 0, tx, other.clone())
            .unwrap();
        assert!(tokens[0].is_cancelled(), "the oldest was told to close");
        assert!(tokens[1..].iter().all(|t| !t.is_cancelled()));
        assert!(!other.is_cancelled());
        assert_eq!(r.sessions(), MAX_SESSIONS_PER_CONTACT + 1);
    }
}
