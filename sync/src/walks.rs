//! What answering a contact's reconciliation may still cost us, in walks
//! of each group's log (PROTOCOL.md §8.5, [`RECON_WORK_WALKS`]), and the
//! one rule by which time gives it back. A session counts it; the caller
//! carries what is left from a contact's session to its next (and to one
//! that comes up beside it), so a contact that drops the link and dials
//! again does not start afresh.

use std::collections::BTreeMap;

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
/// A session starts with the whole allowance; [`Session::walks_left`]
/// says what is left (and [`Session::poll_walks_left`], when it
/// changed), and [`Session::resume_walks`] starts a contact's next
/// session from it, so a contact that drops the link and dials again, or
/// dials again beside a session still up, gets no fresh allowance (but
/// for the edges PROTOCOL.md §8.5 names: the handshake's frames, two
/// sessions up at once each spending from where it started). Between
/// sessions only time gives walks back, by [`WalkAllowance::refill`], the
/// same rule a session follows.
///
/// ```
/// use strand_sync::limits::{RECON_WORK_REFILL, REOPEN_REFILL_EVERY};
/// use strand_sync::{GroupId, WalkAllowance};
///
/// let now = 1_700_000_000_000;
/// let group = GroupId([7; 32]);
/// // What a contact's session left, kept until its next: 10 walks of a
/// // log of 5,000 messages spent.
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
/// [`Session::walks_left`]: crate::Session::walks_left
/// [`Session::poll_walks_left`]: crate::Session::poll_walks_left
/// [`Session::resume_walks`]: crate::Session::resume_walks
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

    /// Keeps `left` (what a session of the contact's left) together with
    /// this (what its other sessions left), both refilled to `now`: for
    /// each group, the more spent. So a session that spent nothing, up
    /// beside one that spent its walks, does not undo that one's count when
    /// it ends after it; progress pays back on the session it happens on,
    /// and between sessions only time does.
    pub fn keep(&mut self, now: Time, mut left: WalkAllowance) {
        self.refill(now);
        left.refill(now);
        for (group, work) in left.spent {
            let mine = self.spent.entry(group).or_default();
            if work.debt >= mine.debt {
                *mine = work;
            }
        }
        self.at = self.at.max(left.at);
    }

    /// Takes on what `earlier` (a contact's earlier session) left spent,
    /// refilled to `now`, for the groups `synced` holds: its debt adds to
    /// what this one has counted, and the earlier refill clock stands, so
    /// a period under way is not lost.
    pub(crate) fn resume(
        &mut self,
        now: Time,
        mut earlier: WalkAllowance,
        synced: impl Fn(&GroupId) -> bool,
    ) {
        earlier.refill(now);
        for (group, work) in earlier.spent {
            if !synced(&group) {
                continue;
            }
            let mine = self.spent.entry(group).or_default();
            mine.debt = mine.debt.saturating_add(work.debt);
            if mine.log == 0 {
                mine.log = work.log;
            }
        }
        self.at = self.at.min(earlier.at);
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

    /// What two sessions of a contact leave is kept as the more spent of
    /// each group's, whichever ends last: not the sum (both started from
    /// what was kept, so the sum counts that twice), and not the last (one
    /// that spent less does not undo the other's count).
    #[test]
    fn what_two_sessions_leave_is_kept_as_the_more_spent() {
        let mut kept = spent(30, 0);
        kept.keep(1_000, spent(10, 0));
        assert_eq!(walks(&kept), 30, "not 40, not 10");
        let mut kept = spent(10, 0);
        kept.keep(1_000, spent(30, 0));
        assert_eq!(walks(&kept), 30, "not 40, not 10");
        // Per group: each keeps its own more spent.
        let other = GroupId([2; 32]);
        let mut kept = spent(30, 0);
        kept.keep(1_000, WalkAllowance::having_spent(0, other, 10, LOG));
        assert_eq!((walks(&kept), kept.walks_spent(&other)), (30, 10));
    }
}
