//! Storage budgets: how much of this device's disk each contact may fill.
//!
//! A contact can send any number of valid messages; without a budget, one
//! contact (or a bug on their side) fills the disk. Each contact's 1:1
//! group has a byte budget for what *they* wrote ([`Budgets::per_contact`]),
//! and messages of kinds this version does not know (it cannot show or
//! use them) have a smaller one ([`Budgets::unknown_kinds`]). A message
//! over budget is declined, not dropped: strand-sync reports it as
//! rejected, does not acknowledge it, and the contact offers it again at a
//! later sync, so nothing valid is lost silently; raising the budget lets
//! it in. The node says so once per session ([`super::NodeEvent::OverBudget`]).

use std::collections::HashMap;
use std::sync::Mutex;

use strand_sync::{AuthorId, GroupId, Inbound, Key, Kind, Verdict};

use crate::schema::MESSAGES;
use crate::store::table_key;
use crate::{Profile, ProfileError};

/// Bytes a contact may store here, in their 1:1 group, by default: 1 GiB.
pub const DEFAULT_PER_CONTACT: u64 = 1 << 30;
/// Bytes of messages of unknown kinds a contact may store here: 1 MiB.
pub const DEFAULT_UNKNOWN_KINDS: u64 = 1 << 20;

/// The budgets a node enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Bytes of messages a contact wrote, stored in your 1:1 group.
    pub per_contact: u64,
    /// Of those, bytes of messages of kinds this version does not know.
    pub unknown_kinds: u64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            per_contact: DEFAULT_PER_CONTACT,
            unknown_kinds: DEFAULT_UNKNOWN_KINDS,
        }
    }
}

const ROLE_BUDGETS: &str = "strand/v2/budgets";

impl Profile {
    /// The storage budgets the last node ran with (`strand run
    /// --budget-per-contact`), for what takes messages in without a node
    /// (`strand import`); the defaults if none has run.
    pub fn budgets(&self) -> Result<Budgets, ProfileError> {
        let saved = self.meta_sealed(crate::schema::meta::BUDGETS, ROLE_BUDGETS)?;
        Ok(saved
            .and_then(|b| <[u8; 16]>::try_from(&b[..]).ok())
            .map(|b| Budgets {
                per_contact: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
                unknown_kinds: u64::from_be_bytes(b[8..].try_into().expect("8 bytes")),
            })
            .unwrap_or_default())
    }

    /// Keeps the budgets a node runs with (see [`Profile::budgets`]).
    pub(crate) fn keep_budgets(
        &self,
        budgets: &Budgets,
        rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
    ) -> Result<(), ProfileError> {
        let mut bytes = budgets.per_contact.to_be_bytes().to_vec();
        bytes.extend_from_slice(&budgets.unknown_kinds.to_be_bytes());
        let saved = self.meta_sealed(crate::schema::meta::BUDGETS, ROLE_BUDGETS)?;
        if saved.is_some_and(|s| s[..] == bytes[..]) {
            return Ok(());
        }
        self.set_meta_sealed(crate::schema::meta::BUDGETS, ROLE_BUDGETS, &bytes, rng)
    }
}

/// What a hollow row counts for: its 72-byte key and redb's bookkeeping.
/// A pool message that was read keeps its key, with no bytes, until it
/// expires ([`crate::carry`]), so it is not synced again; its row no
/// longer says who wrote it, and counts against the contact whose pool
/// it is in.
pub(crate) const HOLLOW_ROW: u64 = 96;

/// What a contact has stored: all bytes, and bytes of unknown kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Used {
    all: u64,
    unknown: u64,
}

fn known(kind: Kind) -> bool {
    [
        Kind::TEXT,
        Kind::REACH,
        Kind::MEMBERSHIP,
        Kind::WELCOME,
        Kind::TIMER,
        Kind::CHUNK,
        Kind::FILE,
        Kind::NAME,
        Kind::ENVELOPE,
        Kind::ACK,
        Kind::CARRYING,
        Kind::REQUEST,
        Kind::MAILBOX,
        Kind::MAILBOX_CONTACTS,
    ]
    .contains(&kind)
}

/// Per group, what the other members stored, counted once from the store
/// and then kept up to date by the node.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    used: Mutex<HashMap<GroupId, Used>>,
}

impl Ledger {
    /// Reads what is stored in `group` by authors other than `me`.
    fn count(profile: &Profile, group: &GroupId, me: &AuthorId) -> Result<Used, ProfileError> {
        use redb::ReadableDatabase;
        let txn = profile
            .db()?
            .begin_read()
            .map_err(crate::profile::db_error)?;
        let table = match txn.open_table(MESSAGES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Used::default()),
            Err(e) => return Err(crate::profile::db_error(e)),
        };
        let lo = table_key(group, &Key::MIN);
        let hi = table_key(group, &Key::MAX);
        let mut used = Used::default();
        for entry in table.range(lo..hi).map_err(crate::profile::db_error)? {
            let (_, v) = entry.map_err(crate::profile::db_error)?;
            if v.value().is_empty() {
                used.all += HOLLOW_ROW;
                continue;
            }
            // A file chunk's row is its head: its length is read there.
            let Some((author, kind, n)) = crate::store::row_facts(v.value()) else {
                continue;
            };
            if author == *me {
                continue;
            }
            let n = n as u64;
            used.all += n;
            if !known(kind) {
                used.unknown += n;
            }
        }
        Ok(used)
    }

    /// Declines the valid messages of `batch` that would take their
    /// author past a budget, and counts the others as stored. Blocking
    /// (the first time a group is seen, its messages are counted). Returns
    /// whether anything was declined.
    ///
    /// The ledger stays locked for the whole batch: batches of one link
    /// are checked while earlier ones are still being stored, and each
    /// must see what the others took (a first count from the store would
    /// not), or together they would overshoot the budget.
    pub(crate) fn apply(
        &self,
        profile: &Profile,
        budgets: &Budgets,
        batch: &mut Inbound,
    ) -> Result<bool, ProfileError> {
        let me = profile.identity().public().sign;
        let mut declined = false;
        let mut ledger = self.used.lock().expect("ledger lock");
        for item in batch.iter_mut() {
            if *item.verdict() != Verdict::Valid || item.message().author() == me {
                continue;
            }
            let group = *item.group();
            let used = match ledger.get_mut(&group) {
                Some(u) => u,
                None => {
                    let counted = Ledger::count(profile, &group, &me)?;
                    ledger.entry(group).or_insert(counted)
                }
            };
            let n = item.message().as_bytes().len() as u64;
            let unknown = !known(item.message().kind());
            if used.all + n > budgets.per_contact
                || (unknown && used.unknown + n > budgets.unknown_kinds)
            {
                item.decline();
                declined = true;
            } else {
                used.all += n;
                if unknown {
                    used.unknown += n;
                }
            }
        }
        Ok(declined)
    }

    /// Gives back what [`Ledger::apply`] counted for messages of a stored
    /// batch that were already there (another link brought them first):
    /// they take no more room.
    pub(crate) fn refund(&self, profile: &Profile, batch: &Inbound) {
        let me = profile.identity().public().sign;
        let mut ledger = self.used.lock().expect("ledger lock");
        for item in batch.iter() {
            if *item.verdict() != (Verdict::Stored { new: false }) || item.message().author() == me
            {
                continue;
            }
            if let Some(used) = ledger.get_mut(item.group()) {
                let n = item.message().as_bytes().len() as u64;
                used.all = used.all.saturating_sub(n);
                if !known(item.message().kind()) {
                    used.unknown = used.unknown.saturating_sub(n);
                }
            }
        }
    }

    /// Gives back `freed` bytes of `group`: pool messages read and
    /// hollowed, each down to [`HOLLOW_ROW`].
    pub(crate) fn hollowed(&self, group: &GroupId, freed: u64) {
        if let Some(used) = self.used.lock().expect("ledger lock").get_mut(group) {
            used.all = used.all.saturating_sub(freed);
        }
    }

    /// Forgets what was counted (after a batch failed to store, the store
    /// is the truth again).
    pub(crate) fn forget(&self) {
        self.used.lock().expect("ledger lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand_sync::Message;

    #[test]
    fn messages_that_were_already_stored_give_their_room_back() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::os_rng();
        let (p, bob, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::now();
        let texts: Vec<Message> = (0..8)
            .map(|i| {
                Message::create(&bob, &group, now - 1000 + i, Kind::TEXT, &[b'x'; 1000], rng)
                    .unwrap()
            })
            .collect();
        let batch = || {
            let mut b = Inbound::new(&group, texts.clone());
            b.verify(now);
            b
        };
        let budgets = Budgets {
            per_contact: 12_000,
            ..Budgets::default()
        };
        let ledger = Ledger::default();
        let mut first = batch();
        assert!(!ledger.apply(&p, &budgets, &mut first).unwrap(), "8 KB fit");
        // Another link brought them first: nothing new was stored.
        for item in first.iter_mut() {
            item.set_stored(false);
        }
        ledger.refund(&p, &first);
        let mut again = batch();
        assert!(
            !ledger.apply(&p, &budgets, &mut again).unwrap(),
            "the same 8 KB, counted once"
        );
        // Counted, not given back: a third copy would be over.
        let mut third = batch();
        assert!(ledger.apply(&p, &budgets, &mut third).unwrap());
    }

    /// A contact's file chunks count whole when the ledger is counted
    /// from the store (after a restart), though their rows hold a head.
    #[test]
    fn stored_file_chunks_count_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::os_rng();
        let (p, bob, group) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let now = crate::now();
        let mut store = p.store().unwrap();
        let mut bytes = 0;
        for (i, kind) in [Kind::CHUNK, Kind::CHUNK, Kind::TEXT]
            .into_iter()
            .enumerate()
        {
            let m = Message::create(&bob, &group, now - 10 + i as u64, kind, &[7; 200_000], rng)
                .unwrap();
            bytes += m.as_bytes().len() as u64;
            assert!(strand_sync::WriteStore::insert(&mut store, &group.id, &m).unwrap());
        }
        store.commit().unwrap();
        let used = Ledger::count(&p, &group.id, &p.identity().public().sign).unwrap();
        assert_eq!(used.all, bytes);
        assert_eq!(used.unknown, 0);
    }

    /// Pool messages a contact wrote still count once read and hollowed
    /// (their keys stay, so they are not synced again), at a row's cost,
    /// and the ledger gives back the rest. They used to count as nothing
    /// after a restart, so a contact could fill the disk with keys, a
    /// budget's worth per run; and as their whole size until one, so a
    /// long-running device (a mailbox) declined a contact's pool for
    /// good after a budget's worth of envelopes.
    #[test]
    fn hollowed_pool_messages_count_as_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::os_rng();
        let (p, bob, _) = crate::profile::alice_with_bob(&tmp.path().join("a"));
        let me = p.identity().public().sign;
        let pool = bob.contact(&p.identity().public()).unwrap().pool.clone();
        let now = crate::now();
        let mut store = p.store().unwrap();
        let mut keys = Vec::new();
        let mut bytes = 0;
        for i in 0..3 {
            let m = Message::create_expiring(
                &bob,
                &pool,
                now - 10 + i,
                Some(now + 3_600_000),
                Kind::ACK,
                &[i as u8; 16],
                rng,
            )
            .unwrap();
            bytes += m.as_bytes().len() as u64;
            keys.push((pool.id, m.key()));
            assert!(strand_sync::WriteStore::insert(&mut store, &pool.id, &m).unwrap());
        }
        store.commit().unwrap();
        let ledger = Ledger::default();
        let late = Message::create_expiring(
            &bob,
            &pool,
            now,
            Some(now + 3_600_000),
            Kind::ACK,
            &[9; 16],
            rng,
        )
        .unwrap();
        let late_len = late.as_bytes().len() as u64;
        let mut batch = Inbound::new(&pool, [late]);
        batch.verify(now);
        ledger.apply(&p, &Budgets::default(), &mut batch).unwrap();
        let used = |l: &Ledger| l.used.lock().unwrap().get(&pool.id).copied().unwrap();
        assert_eq!(used(&ledger).all, bytes + late_len);

        let carrier = strand_sync::Carrier::new(strand_sync::CarryConfig::default());
        p.save_carrying(&carrier, Vec::new(), keys, now, rng)
            .unwrap();
        assert_eq!(
            Ledger::count(&p, &pool.id, &me).unwrap().all,
            3 * HOLLOW_ROW
        );
        ledger.hollowed(&pool.id, bytes - 3 * HOLLOW_ROW);
        assert_eq!(used(&ledger).all, 3 * HOLLOW_ROW + late_len);
    }
}
