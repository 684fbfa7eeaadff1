//! What answering a contact's reconciliation may still cost us, in walks
//! of each group's log (PROTOCOL.md §8.5, [`RECON_WORK_WALKS`]), and the
//! one rule by which time gives it back. A session counts it in an
//! account ([`WalkAccount`]); the caller keeps one account a contact and
//! hands it to each of the contact's sessions, so a contact that drops the
//! link and dials again, or dials again beside a session still up, spends
//! from the one allowance, refilled once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::group::GroupId;
use crate::limits::{
    Time, RECON_WORK_FLOOR, RECON_WORK_REFILL, RECON_WORK_WALKS, REOPEN_REFILL_EVERY,
};

/// What answering the peer's reconciliation of one group has cost us, in
/// keys visited, and progress and time have not paid back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Work {
    /// Keys our answers to the peer visited, less what was paid back;
    /// never below zero: what the peer may spend ahead is the allowance,
    /// not savings.
    pub(crate) debt: u64,
    /// The log's size as this side last counted all of it.
    pub(crate) log: u64,
}

impl Work {
    /// What one walk of the log counts: its size, at least
    /// [`RECON_WORK_FLOOR`].
    fn walk(&self) -> u64 {
        self.log.max(RECON_WORK_FLOOR)
    }

    /// Whether the peer has made us walk the log [`RECON_WORK_WALKS`] times
    /// over what was paid back: its next frame for the group waits.
    pub(crate) fn spent(&self) -> bool {
        self.debt >= RECON_WORK_WALKS.saturating_mul(self.walk())
    }

    /// Pays back `walks` walks of the log.
    pub(crate) fn pay(&mut self, walks: u64) {
        self.debt = self.debt.saturating_sub(walks.saturating_mul(self.walk()));
    }
}

/// The walks of each group's log a contact may still make us spend
/// answering its reconciliation: [`RECON_WORK_WALKS`] less what its
/// sessions spent and progress and time have not paid back.
///
/// Sessions spend it through a [`WalkAccount`], the contact's one account
/// that all its sessions share ([`Session::share_walks`]). Only time gives
/// walks back between sessions, by [`WalkAllowance::refill`], the same
/// rule a session follows.
///
/// ```
/// use strand_sync::limits::{RECON_WORK_REFILL, REOPEN_REFILL_EVERY};
/// use strand_sync::{GroupId, WalkAllowance};
///
/// let now = 1_700_000_000_000;
/// let group = GroupId([7; 32]);
/// // What a contact's sessions left: 10 walks of a log of 5,000 messages
/// // spent.
/// let mut left = WalkAllowance::having_spent(now, group, 10, 5_000);
/// assert_eq!(left.walks_spent(&group), 10);
/// // A minute and a half later time has paid one minute back; the half
/// // counts towards the next.
/// left.refill(now + REOPEN_REFILL_EVERY * 3 / 2);
/// assert_eq!(left.walks_spent(&group), 10 - RECON_WORK_REFILL);
/// left.refill(now + 2 * REOPEN_REFILL_EVERY);
/// assert_eq!(left.walks_spent(&group), 10 - 2 * RECON_WORK_REFILL);
/// // And never more than the whole allowance.
/// left.refill(now + 60 * REOPEN_REFILL_EVERY);
/// assert!(left.is_full());
/// ```
///
/// [`Session::share_walks`]: crate::Session::share_walks
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkAllowance {
    /// Per group, what was spent and not paid back.
    pub(crate) spent: BTreeMap<GroupId, Work>,
    /// When time last paid walks back (or the allowance started): the
    /// next [`RECON_WORK_REFILL`] is due [`REOPEN_REFILL_EVERY`] after.
    at: Time,
}

impl WalkAllowance {
    /// The whole allowance, for every group, counted from `now`.
    pub fn full(now: Time) -> Self {
        WalkAllowance {
            spent: BTreeMap::new(),
            at: now,
        }
    }

    /// An allowance with `walks` walks of `group`'s log, of `log`
    /// messages, spent as of `now`: what a contact that spent them would
    /// leave. For tests and examples; a session counts its own.
    #[doc(hidden)]
    pub fn having_spent(now: Time, group: GroupId, walks: u64, log: u64) -> Self {
        let mut work = Work { debt: 0, log };
        work.debt = walks.saturating_mul(work.walk());
        WalkAllowance {
            spent: BTreeMap::from([(group, work)]),
            at: now,
        }
    }

    /// Whether nothing is spent: a caller need not keep it.
    pub fn is_full(&self) -> bool {
        self.spent.values().all(|w| w.debt == 0)
    }

    /// The whole walks of `group`'s log spent and not paid back, as of
    /// the last refill: past [`RECON_WORK_WALKS`], the peer's next frame
    /// for the group waits.
    pub fn walks_spent(&self, group: &GroupId) -> u64 {
        self.spent.get(group).map_or(0, |w| w.debt / w.walk())
    }

    /// Gives back what time has earned by `now`: [`RECON_WORK_REFILL`]
    /// walks of each group's log for every whole [`REOPEN_REFILL_EVERY`]
    /// since the last refill, up to the whole allowance (what was spent,
    /// never below nothing). The part of a period left over counts
    /// towards the next. A clock that went back pays nothing and counts
    /// from `now`.
    pub fn refill(&mut self, now: Time) {
        let Some(elapsed) = now.checked_sub(self.at) else {
            self.at = now;
            return;
        };
        let periods = elapsed / REOPEN_REFILL_EVERY;
        if periods == 0 {
            return;
        }
        self.at += periods * REOPEN_REFILL_EVERY;
        let walks = periods.saturating_mul(RECON_WORK_REFILL);
        for work in self.spent.values_mut() {
            work.pay(walks);
        }
    }

    /// Takes on what a session counted on its own before it spent from
    /// this account (the peer's frames that came with the handshake, and
    /// the logs' sizes as it counted them), as of `now`: this one refilled
    /// by time to `now` first, the session's debt adds to it, and the
    /// session's count of a log's size, the newer, stands. This one's
    /// refill clock stands: it is the contact's.
    pub(crate) fn take_on(&mut self, now: Time, own: WalkAllowance) {
        self.refill(now);
        for (group, work) in own.spent {
            let mine = self.spent.entry(group).or_default();
            mine.debt = mine.debt.saturating_add(work.debt);
            if work.log != 0 {
                mine.log = work.log;
            }
        }
    }
}

/// A contact's one account of walks ([`WalkAllowance`]), which all its
/// sessions spend from, one after another or up at once: clones share it.
/// A session starts with an account of its own holding the whole
/// allowance; [`Session::share_walks`] moves it onto the contact's, which
/// the caller keeps for the contact (a new one, or the first session's
/// own: [`Session::walks`]). Every session on it charges its answers
/// to it, is paid back by its progress, and refills it by time by the one
/// rule ([`WalkAllowance::refill`]), so the contact's sessions together
/// spend [`RECON_WORK_WALKS`] walks of each log ahead and get
/// [`RECON_WORK_REFILL`] back a minute, however many are up. A session
/// whose account is its own alone spends exactly as if none were shared.
///
/// ```
/// use strand_sync::limits::{RECON_WORK_REFILL, REOPEN_REFILL_EVERY};
/// use strand_sync::{GroupId, WalkAccount, WalkAllowance};
///
/// let now = 1_700_000_000_000;
/// let group = GroupId([7; 32]);
/// let contact = WalkAccount::new(WalkAllowance::full(now));
/// // Two sessions of the contact's, up at once, hold the one account.
/// let (first, second) = (contact.clone(), contact.clone());
/// first.spend(now, group, 20, 5_000);
/// second.spend(now, group, 12, 5_000);
/// assert_eq!(contact.left(now).walks_spent(&group), 32);
/// // A minute later time has paid the contact back once, not once each.
/// let later = now + REOPEN_REFILL_EVERY;
/// assert_eq!(first.left(later).walks_spent(&group), 32 - RECON_WORK_REFILL);
/// assert_eq!(second.left(later).walks_spent(&group), 32 - RECON_WORK_REFILL);
/// ```
///
/// [`Session::share_walks`]: crate::Session::share_walks
/// [`Session::walks`]: crate::Session::walks
#[derive(Debug, Clone)]
pub struct WalkAccount(Arc<Mutex<WalkAllowance>>);

impl WalkAccount {
    /// An account holding `left`.
    pub fn new(left: WalkAllowance) -> Self {
        WalkAccount(Arc::new(Mutex::new(left)))
    }

    /// What is left, refilled by time to `now` ([`WalkAllowance::refill`]).
    pub fn left(&self, now: Time) -> WalkAllowance {
        let mut left = self.lock();
        left.refill(now);
        left.clone()
    }

    /// Charges `walks` walks of `group`'s log, of `log` messages, as of
    /// `now`: what a session on the account would, answering the peer.
    /// For tests and examples; a session charges its own.
    #[doc(hidden)]
    pub fn spend(&self, now: Time, group: GroupId, walks: u64, log: u64) {
        self.lock()
            .take_on(now, WalkAllowance::having_spent(now, group, walks, log));
    }

    /// Whether `other` is this account (a clone of it), not one apart.
    pub(crate) fn is_same(&self, other: &WalkAccount) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The allowance, for a session to read or change. The account is
    /// counts that every change leaves whole, so one whose lock a panic
    /// elsewhere poisoned is still good: it is taken as it stands.
    pub(crate) fn lock(&self) -> MutexGuard<'_, WalkAllowance> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: u64 = 5_000;

    fn spent(walks: u64, at: Time) -> WalkAllowance {
        WalkAllowance::having_spent(at, GroupId([1; 32]), walks, LOG)
    }

    fn walks(left: &WalkAllowance) -> u64 {
        left.walks_spent(&GroupId([1; 32]))
    }

    /// Time pays `RECON_WORK_REFILL` walks for each whole minute, the part
    /// of a minute left over counting towards the next, and never more than
    /// was spent; a clock that went back pays nothing.
    #[test]
    fn time_pays_walks_back_by_the_minute_up_to_the_whole_allowance() {
        let mut left = spent(10, 0);
        left.refill(REOPEN_REFILL_EVERY - 1);
        assert_eq!(walks(&left), 10);
        left.refill(REOPEN_REFILL_EVERY + 30_000);
        assert_eq!(walks(&left), 6);
        // The half minute left over counts: a whole one since the last.
        left.refill(2 * REOPEN_REFILL_EVERY);
        assert_eq!(walks(&left), 2);
        left.refill(60 * REOPEN_REFILL_EVERY);
        assert!(left.is_full());
        let mut back = spent(10, 10 * REOPEN_REFILL_EVERY);
        back.refill(0);
        back.refill(REOPEN_REFILL_EVERY - 1);
        assert_eq!(walks(&back), 10, "counted from where the clock went back");
    }

    /// What a session counted on its own before it spent from the
    /// contact's account adds to what the account has spent, refilled to
    /// then; the session's newer count of the log's size stands, and the
    /// account's refill clock.
    #[test]
    fn a_session_joining_the_account_adds_what_it_counted() {
        let mut account = spent(30, 0);
        account.take_on(REOPEN_REFILL_EVERY + 1_000, spent(2, 10_000));
        assert_eq!(walks(&account), 30 - RECON_WORK_REFILL + 2);
        // The account's clock: the next minute is due a minute after its
        // last refill (at a minute), not after the session's start.
        account.refill(10_000 + REOPEN_REFILL_EVERY);
        assert_eq!(walks(&account), 30 - RECON_WORK_REFILL + 2);
        account.refill(2 * REOPEN_REFILL_EVERY);
        assert_eq!(walks(&account), 30 - 2 * RECON_WORK_REFILL + 2);
        let g = GroupId([1; 32]);
        let mut account = WalkAllowance::having_spent(0, g, 4, LOG);
        account.take_on(0, WalkAllowance::having_spent(0, g, 0, 2 * LOG));
        assert_eq!(walks(&account), 2, "walks of the log as it is now");
    }
}
