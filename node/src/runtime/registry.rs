//! The sessions that are up, by contact, when each contact was seen, and
//! the account of its walks that its sessions spend from.
//!
//! A session registers when its peer is authenticated (not before: a
//! stranger never takes a contact's slot). At [`MAX_SESSIONS_PER_CONTACT`]
//! a newly authenticated session replaces the oldest, which is told to
//! close: the new one is the one that works now, and a recorded or stalled
//! old one cannot keep the real contact out. A session on a direct link
//! (LAN, hole-punched, Bluetooth) also replaces the contact's relayed ones:
//! the relay is the slower path and limits what it carries.
//!
//! What answering a contact's reconciliation may cost is bounded in walks
//! of each group's log (strand-sync's [`WalkAllowance`], PROTOCOL.md §8.5),
//! and the bound holds across the contact's sessions: the registry keeps
//! one account of the contact's walks ([`WalkAccount`]) and hands it to
//! each of its sessions as it registers ([`Registry::walks`]). The
//! sessions up at once spend from it together, and time refills it once
//! for all of them; a session that ends, or is replaced by a newer one,
//! leaves what it spent there; and the contact's next session spends
//! from what is left. So dialling again, after the link dropped or beside
//! a session still up, buys no fresh allowance, nor a second refill.
//!
//! What is not covered: the peer's frames that come with the handshake
//! (its first per group at most) are answered before the session has the
//! contact's account, so a new session still costs a walk or two of each
//! log. The account is in memory: a restart forgets it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use strand_sync::{AuthorId, GroupId, Key, PublicIdentity, WalkAccount, WalkAllowance};
use strand_transport::LinkKind;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::runtime::limits::{MAX_SESSIONS, MAX_SESSIONS_PER_CONTACT};

/// Announcements kept for sessions that register after them (see
/// [`Registry::mark`]): more than are stored while one link comes up.
const RECENT_ANNOUNCEMENTS: usize = 4096;

/// What a running session is told (besides to close: that is its
/// `CancellationToken`, which cannot be lost to a full queue).
#[derive(Debug, Clone)]
pub(crate) enum Command {
    /// A message was stored: send it if the session syncs its group.
    New(GroupId, Key),
    /// The groups this contact shares now (the 1:1 group first): sync
    /// any the session does not yet.
    Groups(Vec<strand_sync::Group>),
    /// Many messages of this group were stored at once (a file): reconcile
    /// it again.
    Resync(GroupId),
}

/// A session's number in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SessionId(u64);

struct Entry {
    contact: PublicIdentity,
    kind: LinkKind,
    commands: mpsc::Sender<Command>,
    close: CancellationToken,
    /// What its full queue dropped, for it to catch up on
    /// ([`Registry::take_missed`]).
    missed: Missed,
}

/// What a session's full queue dropped (a file's chunks relayed at
/// once): groups to reconcile again, and whether its contact's groups
/// changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Missed {
    /// Groups whose announcements or resyncs were dropped.
    pub(crate) groups: BTreeSet<GroupId>,
    /// A change of the contact's groups was dropped.
    pub(crate) regroup: bool,
}

impl Missed {
    fn is_empty(&self) -> bool {
        self.groups.is_empty() && !self.regroup
    }
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
    /// Messages each contact's sessions moved (received, or acknowledged).
    progress: BTreeMap<PublicIdentity, u64>,
    /// Each contact's account of walks, which all its sessions spend
    /// from ([`Registry::walks`]): kept while a session of the contact's
    /// is up or any walks are spent (refilled by time, an account is
    /// whole again within minutes: those are not kept), some 50 bytes a
    /// group it syncs.
    walks: BTreeMap<PublicIdentity, WalkAccount>,
    /// Announcements so far, and the latest few (see [`Registry::mark`]).
    seq: u64,
    recent: VecDeque<(u64, GroupId, Key)>,
    next: u64,
}

/// A session registering: who, over what, when, and its mark.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Joining<'a> {
    pub(crate) contact: PublicIdentity,
    pub(crate) name: &'a str,
    pub(crate) kind: LinkKind,
    pub(crate) now: u64,
    /// [`Registry::mark`] when the link started.
    pub(crate) since: u64,
}

/// Why a session could not register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Full {
    /// The node has its most sessions.
    #[error("the node already has {MAX_SESSIONS} sessions")]
    Node,
    /// A relayed session, while the contact has its most sessions, all
    /// direct.
    #[error("the contact is already connected directly")]
    Direct,
}

/// A session leaves the registry, replaced by a newer one: it is told to
/// close. What it spent of its contact's walks is on the contact's
/// account, which it spends from until its link ends.
fn drop_replaced(inner: &mut Inner, id: SessionId) {
    if let Some(old) = inner.sessions.remove(&id) {
        old.close.cancel();
    }
}

/// The best link a contact has up now: a direct one over a relayed one.
fn best_kind(inner: &Inner, contact: &PublicIdentity) -> Option<LinkKind> {
    let mut kinds = inner
        .sessions
        .values()
        .filter(|e| e.contact == *contact)
        .map(|e| e.kind);
    let first = kinds.next()?;
    Some(
        std::iter::once(first)
            .chain(kinds)
            .find(|k| *k != LinkKind::Relay)
            .unwrap_or(first),
    )
}

#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    /// Whether any session has missed groups (read without the lock on
    /// every command a session handles).
    any_missed: AtomicBool,
    /// Woken by every announcement: a message was stored (written here,
    /// synced, carried or imported), so the next disappearing message may
    /// be due sooner.
    pub(crate) stored: tokio::sync::Notify,
}

impl Registry {
    /// Where announcements stand now. A link takes a mark before its
    /// session first reads the store; when it registers, it gets the
    /// messages announced since ([`Registry::register`]): a message
    /// stored after the session read the store but announced before the
    /// session registered would otherwise wait for the next link.
    pub(crate) fn mark(&self) -> u64 {
        self.inner.lock().expect("registry lock").seq
    }

    /// Registers an authenticated session with `contact`; at the per-contact
    /// cap the oldest is told to close and leaves the registry. Returns
    /// its id and the messages announced since `since` (a
    /// [`Registry::mark`]).
    pub(crate) fn register(
        &self,
        session: Joining<'_>,
        commands: mpsc::Sender<Command>,
        close: CancellationToken,
    ) -> Result<(SessionId, Vec<(GroupId, Key)>), Full> {
        let Joining {
            contact,
            name,
            kind,
            now,
            since,
        } = session;
        let mut inner = self.inner.lock().expect("registry lock");
        if kind != LinkKind::Relay {
            let relayed: Vec<SessionId> = inner
                .sessions
                .iter()
                .filter(|(_, e)| e.contact == contact && e.kind == LinkKind::Relay)
                .map(|(id, _)| *id)
                .collect();
            for id in relayed {
                tracing::debug!(contact = %name, link = %kind, "moving off the relay");
                drop_replaced(&mut inner, id);
            }
        }
        let mine: Vec<(SessionId, LinkKind)> = inner
            .sessions
            .iter()
            .filter(|(_, e)| e.contact == contact)
            .map(|(id, e)| (*id, e.kind))
            .collect();
        if mine.len() >= MAX_SESSIONS_PER_CONTACT {
            // Ids grow with time: the first is the oldest. A relayed
            // newcomer replaces only a relayed session, never a direct one.
            let victim = mine
                .iter()
                .find(|(_, k)| kind != LinkKind::Relay || *k == LinkKind::Relay)
                .map(|(id, _)| *id)
                .ok_or(Full::Direct)?;
            drop_replaced(&mut inner, victim);
        } else if inner.sessions.len() >= MAX_SESSIONS {
            return Err(Full::Node);
        }
        inner.next += 1;
        let id = SessionId(inner.next);
        inner.sessions.insert(
            id,
            Entry {
                contact,
                kind,
                commands,
                close,
                missed: Missed::default(),
            },
        );
        let link = best_kind(&inner, &contact).unwrap_or(kind);
        inner.seen.insert(
            contact,
            Seen {
                contact: name.to_owned(),
                link: link.to_string(),
                at: now,
                connected: true,
            },
        );
        let missed = inner
            .recent
            .iter()
            .filter(|(seq, ..)| *seq > since)
            .map(|(_, g, k)| (*g, *k))
            .collect();
        Ok((id, missed))
    }

    /// Session `id` ended (or was told to: replaced by a newer one, it has
    /// left the registry already). What it spent of its contact's walks is
    /// on the contact's account, kept for the contact's next session while
    /// any are spent.
    pub(crate) fn unregister(&self, id: SessionId, now: u64) {
        let mut inner = self.inner.lock().expect("registry lock");
        if let Some(e) = inner.sessions.remove(&id) {
            let still = best_kind(&inner, &e.contact);
            if let Some(s) = inner.seen.get_mut(&e.contact) {
                s.connected = still.is_some();
                s.at = now;
                if let Some(kind) = still {
                    s.link = kind.to_string();
                }
            }
        }
        // Refilled by time, a contact's account is whole again within
        // minutes: those of contacts with no session up are not kept.
        let Inner {
            sessions, walks, ..
        } = &mut *inner;
        let up: BTreeSet<&PublicIdentity> = sessions.values().map(|e| &e.contact).collect();
        walks.retain(|contact, account| up.contains(contact) || !account.left(now).is_full());
    }

    /// The account of `contact`'s walks ([`WalkAccount`]) that all its
    /// sessions spend from ([`strand_sync::Session::share_walks`]): the
    /// one its sessions up now spend from, or its last ones left, refilled
    /// by time as it is read; the whole allowance, counted from `now`, if
    /// there is none. A session of the contact's takes it once it has
    /// registered: a deleted contact's (deleted while its session
    /// registered) is not kept.
    pub(crate) fn walks(&self, contact: &PublicIdentity, now: u64) -> WalkAccount {
        let mut inner = self.inner.lock().expect("registry lock");
        let fresh = || WalkAccount::new(WalkAllowance::full(now));
        if !inner.seen.contains_key(contact) {
            return fresh();
        }
        inner.walks.entry(*contact).or_insert_with(fresh).clone()
    }

    /// How many messages `contact`'s sessions have moved (to tell a link
    /// that did something from one that did not).
    pub(crate) fn progress(&self, contact: &PublicIdentity) -> u64 {
        let inner = self.inner.lock().expect("registry lock");
        inner.progress.get(contact).copied().unwrap_or(0)
    }

    /// A session with `contact` moved `n` messages (not counted once they
    /// have no session here: a deleted contact's closing one).
    pub(crate) fn moved(&self, contact: &PublicIdentity, n: u64) {
        let mut inner = self.inner.lock().expect("registry lock");
        if inner.sessions.values().any(|e| e.contact == *contact) {
            *inner.progress.entry(*contact).or_default() += n;
        }
    }

    /// Whether a session with `contact` is up now.
    pub(crate) fn is_connected(&self, contact: &PublicIdentity) -> bool {
        let inner = self.inner.lock().expect("registry lock");
        inner.sessions.values().any(|e| e.contact == *contact)
    }

    /// Contacts a new link of `kind` need not offer itself to (their
    /// signing keys): those with a session up, except, for a direct link,
    /// contacts reached only through a relay (the direct link replaces
    /// that session).
    pub(crate) fn connected(&self, kind: LinkKind) -> BTreeSet<AuthorId> {
        let inner = self.inner.lock().expect("registry lock");
        inner
            .sessions
            .values()
            .filter(|e| kind == LinkKind::Relay || e.kind != LinkKind::Relay)
            .map(|e| e.contact.sign)
            .collect()
    }

    /// Tells every session (but `except`, the one it came from) about a
    /// newly stored message. A session whose queue is full (a file's
    /// chunks relayed at once) misses it, and notes its group to
    /// reconcile again when it catches up.
    pub(crate) fn announce(&self, group: GroupId, key: Key, except: Option<SessionId>) {
        self.stored.notify_one();
        let mut inner = self.inner.lock().expect("registry lock");
        inner.seq += 1;
        let seq = inner.seq;
        inner.recent.push_back((seq, group, key));
        if inner.recent.len() > RECENT_ANNOUNCEMENTS {
            inner.recent.pop_front();
        }
        for (id, e) in &mut inner.sessions {
            if Some(*id) != except
                && e.commands.try_send(Command::New(group, key)).is_err()
                && e.missed.groups.insert(group)
            {
                self.any_missed.store(true, Ordering::Release);
            }
        }
    }

    /// What session `id` missed since last asked (its queue was full):
    /// groups to reconcile again, and whether to read its contact's groups
    /// again. Cheap when no session missed anything.
    pub(crate) fn take_missed(&self, id: SessionId) -> Missed {
        if !self.any_missed.load(Ordering::Acquire) {
            return Missed::default();
        }
        let mut inner = self.inner.lock().expect("registry lock");
        let missed = inner
            .sessions
            .get_mut(&id)
            .map(|e| std::mem::take(&mut e.missed))
            .unwrap_or_default();
        if inner.sessions.values().all(|e| e.missed.is_empty()) {
            self.any_missed.store(false, Ordering::Release);
        }
        missed
    }

    /// Tells every session which groups its contact shares now (after a
    /// group was created, joined or changed).
    pub(crate) fn refresh_groups(&self, book: &crate::profile::Book) {
        let mut inner = self.inner.lock().expect("registry lock");
        for e in inner.sessions.values_mut() {
            if let Some((_, contact)) = book.sync_contact(&e.contact) {
                if e.commands
                    .try_send(Command::Groups(contact.groups.clone()))
                    .is_err()
                {
                    e.missed.regroup = true;
                    self.any_missed.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Tells every session to reconcile `group` again (those that do not
    /// sync it ignore it).
    pub(crate) fn resync(&self, group: GroupId) {
        let mut inner = self.inner.lock().expect("registry lock");
        for e in inner.sessions.values_mut() {
            if e.commands.try_send(Command::Resync(group)).is_err() {
                e.missed.groups.insert(group);
                self.any_missed.store(true, Ordering::Release);
            }
        }
    }

    /// A contact was deleted: their sessions are told to close and leave
    /// the registry, and nothing is kept of when they were seen.
    pub(crate) fn forget(&self, contact: &PublicIdentity) {
        let mut inner = self.inner.lock().expect("registry lock");
        inner.sessions.retain(|_, e| {
            let theirs = e.contact == *contact;
            if theirs {
                e.close.cancel();
            }
            !theirs
        });
        inner.seen.remove(contact);
        inner.progress.remove(contact);
        inner.walks.remove(contact);
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

    /// How every contact was last seen, by name: the name `name` gives
    /// their keys now (the user may have renamed them since), or the one
    /// they had when last seen.
    pub(crate) fn seen(&self, name: impl Fn(&PublicIdentity) -> Option<String>) -> Vec<Seen> {
        let inner = self.inner.lock().expect("registry lock");
        let mut out: Vec<Seen> = inner
            .seen
            .iter()
            .map(|(key, s)| Seen {
                contact: name(key).unwrap_or_else(|| s.contact.clone()),
                ..s.clone()
            })
            .collect();
        out.sort_by(|a, b| a.contact.cmp(&b.contact));
        out
    }
}

#[cfg(test)]
mod tests {
    use strand_sync::limits::{RECON_WORK_REFILL, RECON_WORK_WALKS, REOPEN_REFILL_EVERY};

    use super::*;

    fn j(c: u8, name: &str, kind: LinkKind, now: u64, since: u64) -> Joining<'_> {
        Joining {
            contact: contact(c),
            name,
            kind,
            now,
            since,
        }
    }

    fn contact(n: u8) -> PublicIdentity {
        PublicIdentity {
            sign: [n; 32],
            dh: [n; 32],
        }
    }

    /// Registers a LAN session of contact `c` at `now`: its id, and what
    /// tells it to close.
    fn up(r: &Registry, c: u8, now: u64) -> (SessionId, CancellationToken) {
        let (tx, _rx) = mpsc::channel(1);
        let close = CancellationToken::new();
        let id = r
            .register(j(c, "ann", LinkKind::Lan, now, 0), tx, close.clone())
            .unwrap()
            .0;
        (id, close)
    }

    /// At the per-contact cap a newly authenticated session
    /// replaces the oldest (which is told to close), so stale or replayed
    /// sessions cannot keep the contact's working one out.
    #[test]
    fn a_third_session_replaces_the_oldest() {
        let r = Registry::default();
        let mut tokens = Vec::new();
        for _ in 0..MAX_SESSIONS_PER_CONTACT + 1 {
            let (tx, _rx) = mpsc::channel(1);
            let close = CancellationToken::new();
            r.register(j(1, "ann", LinkKind::Lan, 0, 0), tx, close.clone())
                .unwrap();
            tokens.push(close);
        }
        // Another contact's session is not touched.
        let (tx, _rx) = mpsc::channel(1);
        let other = CancellationToken::new();
        r.register(j(2, "ben", LinkKind::Lan, 0, 0), tx, other.clone())
            .unwrap();
        assert!(tokens[0].is_cancelled(), "the oldest was told to close");
        assert!(tokens[1..].iter().all(|t| !t.is_cancelled()));
        assert!(!other.is_cancelled());
        assert_eq!(r.sessions(), MAX_SESSIONS_PER_CONTACT + 1);
    }

    /// A direct session (here a hole-punched one) replaces the
    /// contact's relayed session; a relayed one replaces nothing direct.
    #[test]
    fn a_direct_session_replaces_the_relayed_one() {
        let r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        let relayed = CancellationToken::new();
        let a = r
            .register(
                j(1, "ann", LinkKind::Relay, 0, 0),
                tx.clone(),
                relayed.clone(),
            )
            .unwrap()
            .0;
        assert_eq!(r.seen(|_| None)[0].link, "relay");
        // A direct link still offers itself to a contact reached only
        // through a relay; a relayed one does not.
        assert!(r.connected(LinkKind::HolePunched).is_empty());
        assert_eq!(r.connected(LinkKind::Relay).len(), 1);
        let direct = CancellationToken::new();
        let b = r
            .register(
                j(1, "ann", LinkKind::HolePunched, 1, 0),
                tx.clone(),
                direct.clone(),
            )
            .unwrap()
            .0;
        assert!(
            relayed.is_cancelled(),
            "the relayed session was told to close"
        );
        assert_eq!(r.sessions(), 1);
        assert_eq!(r.seen(|_| None)[0].link, "hole-punched");
        // Its end does not mark the contact gone.
        r.unregister(a, 2);
        assert!(r.seen(|_| None)[0].connected);
        let again = CancellationToken::new();
        r.register(j(1, "ann", LinkKind::Relay, 3, 0), tx, again.clone())
            .unwrap();
        assert!(!direct.is_cancelled() && !again.is_cancelled());
        assert_eq!(
            r.seen(|_| None)[0].link,
            "hole-punched",
            "the best link shows"
        );
        r.unregister(b, 4);
        assert_eq!(r.seen(|_| None)[0].link, "relay");
        assert!(r.seen(|_| None)[0].connected);
    }

    /// Sessions of one contact up at once each got the whole allowance:
    /// the registry learnt what a session spent only when it ended, so a
    /// contact whose session had spent its walks and stayed up dialled
    /// again beside it for 32 fresh walks of each log, and a third time
    /// (replacing the first) for 32 more. Every session of the contact's
    /// spends from its one account now, a replaced one too until its link
    /// ends, and the account outlives them while any walks are spent.
    #[test]
    fn a_session_up_beside_one_that_spent_its_walks_gets_none_afresh() {
        let r = Registry::default();
        let g = GroupId([9; 32]);
        let (first, first_close) = up(&r, 1, 0);
        let on_first = r.walks(&contact(1), 0);
        assert!(on_first.left(1).is_full());
        on_first.spend(1, g, 32, 5_000);
        // The first is still up: the second spends from what it spent.
        let (second, _) = up(&r, 1, 2);
        assert_eq!(r.walks(&contact(1), 2).left(2).walks_spent(&g), 32);
        up(&r, 2, 2);
        assert!(
            r.walks(&contact(2), 2).left(2).is_full(),
            "another contact's"
        );
        // A third replaces the first, which spends on until its link ends:
        // the third sees what it spends.
        let (third, _) = up(&r, 1, 4);
        assert!(first_close.is_cancelled());
        let on_third = r.walks(&contact(1), 4);
        on_first.spend(5, g, 8, 5_000);
        assert_eq!(on_third.left(5).walks_spent(&g), 40);
        // All end: the account is kept while walks are spent, and time
        // pays it back.
        for id in [first, second, third] {
            r.unregister(id, 6);
        }
        let later = 6 + 2 * REOPEN_REFILL_EVERY;
        up(&r, 1, later);
        let left = r.walks(&contact(1), later).left(later);
        assert_eq!(left.walks_spent(&g), 40 - 2 * RECON_WORK_REFILL);
        // A deleted contact's account goes with it.
        r.forget(&contact(1));
        up(&r, 1, later);
        assert!(r.walks(&contact(1), later).left(later).is_full());
    }

    /// Two sessions of one contact up at once each spent from what was
    /// left when it came up, and time paid each back on its own: together
    /// they could spend twice the allowance, and `RECON_WORK_REFILL` walks
    /// of each log a minute each. They spend from the contact's one
    /// account now: what either spends the other has not, and a minute
    /// pays the contact back once.
    #[test]
    fn sessions_of_a_contact_up_at_once_share_one_allowance_and_one_refill() {
        let r = Registry::default();
        let g = GroupId([9; 32]);
        up(&r, 1, 0);
        up(&r, 1, 0);
        let (one, two) = (r.walks(&contact(1), 0), r.walks(&contact(1), 0));
        // Each spends half the allowance: all of it, together.
        one.spend(1, g, RECON_WORK_WALKS / 2, 5_000);
        two.spend(1, g, RECON_WORK_WALKS / 2, 5_000);
        assert_eq!(one.left(1).walks_spent(&g), RECON_WORK_WALKS);
        assert_eq!(two.left(1).walks_spent(&g), RECON_WORK_WALKS);
        // A minute later both see the refill: the contact's, once.
        let later = REOPEN_REFILL_EVERY;
        let refilled = RECON_WORK_WALKS - RECON_WORK_REFILL;
        assert_eq!(one.left(later).walks_spent(&g), refilled);
        assert_eq!(two.left(later).walks_spent(&g), refilled);
        two.spend(later, g, RECON_WORK_REFILL, 5_000);
        assert_eq!(
            one.left(later).walks_spent(&g),
            RECON_WORK_WALKS,
            "what the second spent, the first has not"
        );
    }

    /// A relayed session never takes a direct one's place at the cap.
    #[test]
    fn a_relayed_session_does_not_evict_direct_ones() {
        let r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        let direct: Vec<CancellationToken> = (0..MAX_SESSIONS_PER_CONTACT)
            .map(|_| {
                let c = CancellationToken::new();
                r.register(j(1, "ann", LinkKind::Lan, 0, 0), tx.clone(), c.clone())
                    .unwrap();
                c
            })
            .collect();
        let relayed = r.register(
            j(1, "ann", LinkKind::Relay, 0, 0),
            tx,
            CancellationToken::new(),
        );
        assert_eq!(relayed.err(), Some(Full::Direct));
        assert!(direct.iter().all(|c| !c.is_cancelled()));
    }

    /// A message announced after a link took its mark and before its
    /// session registered is handed to the session when it registers.
    #[test]
    fn a_session_gets_what_was_announced_while_it_came_up() {
        let r = Registry::default();
        let g = GroupId([1; 32]);
        let k = |n: u64| Key {
            time: n,
            id: strand_sync::MessageId([n as u8; 32]),
        };
        r.announce(g, k(1), None);
        let mark = r.mark();
        r.announce(g, k(2), None);
        r.announce(g, k(3), None);
        let (tx, _rx) = mpsc::channel(1);
        let (_, missed) = r
            .register(
                j(1, "ann", LinkKind::Lan, 0, mark),
                tx,
                CancellationToken::new(),
            )
            .unwrap();
        assert_eq!(missed, [(g, k(2)), (g, k(3))]);
    }

    /// Announcements a full queue drops are not lost: the session learns
    /// which groups to reconcile again (a member relaying a large file's
    /// chunks to another member used to leave the rest for the next link).
    #[test]
    fn a_session_with_a_full_queue_reconciles_what_it_missed() {
        let r = Registry::default();
        let (g1, g2) = (GroupId([1; 32]), GroupId([2; 32]));
        let k = |n: u64| Key {
            time: n,
            id: strand_sync::MessageId([n as u8; 32]),
        };
        let (tx, mut rx) = mpsc::channel(2);
        let (id, _) = r
            .register(
                j(1, "ann", LinkKind::Lan, 0, 0),
                tx,
                CancellationToken::new(),
            )
            .unwrap();
        assert!(r.take_missed(id).is_empty());
        for n in 0..5 {
            r.announce(g1, k(n), None);
        }
        r.announce(g2, k(9), None);
        let g3 = GroupId([3; 32]);
        r.resync(g3);
        // Two fit; the rest of g1's and all of g2's are dropped, and so is
        // the resync of g3.
        assert!(matches!(rx.try_recv(), Ok(Command::New(g, _)) if g == g1));
        assert!(matches!(rx.try_recv(), Ok(Command::New(g, _)) if g == g1));
        assert!(rx.try_recv().is_err());
        assert_eq!(r.take_missed(id).groups, BTreeSet::from([g1, g2, g3]));
        assert!(r.take_missed(id).is_empty());
        // With room again, nothing is missed.
        r.announce(g2, k(10), None);
        assert!(r.take_missed(id).is_empty());
    }

    /// A change of groups a full queue drops is not lost either: the
    /// session learns to read its contact's groups again.
    #[test]
    fn a_session_with_a_full_queue_rereads_its_groups() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, bob, _) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let r = Registry::default();
        let (tx, mut rx) = mpsc::channel(1);
        let (id, _) = r
            .register(
                Joining {
                    contact: bob.public(),
                    name: "Bob",
                    kind: LinkKind::Lan,
                    now: 0,
                    since: 0,
                },
                tx,
                CancellationToken::new(),
            )
            .unwrap();
        r.refresh_groups(&p.book());
        assert!(r.take_missed(id).is_empty(), "it had room");
        r.refresh_groups(&p.book());
        let missed = r.take_missed(id);
        assert!(missed.regroup && missed.groups.is_empty());
        let ids = |g: &[strand_sync::Group]| g.iter().map(|g| g.id).collect::<Vec<_>>();
        let groups = ids(&p.book().sync[0].groups);
        assert!(matches!(rx.try_recv(), Ok(Command::Groups(g)) if ids(&g) == groups));
        assert!(r.take_missed(id).is_empty());
    }
}
