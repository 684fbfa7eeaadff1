//! The user's preferences for living with the messenger: what a
//! notification shows, which conversations are muted, whether the app
//! keeps syncing with its window closed. Kept in the profile, sealed like
//! every other record (which conversations are muted says whom the user
//! talks to), in the `meta` entry `prefs`.
//!
//! Stored form: a version byte (2), a flags byte (bit 0: notifications
//! show the text; bit 1: keep running with the window closed; bit 2:
//! notifications name no one, neither who wrote nor the group), the
//! Bluetooth setting (a [`Duty`] byte), a count (u32 LE), then that many
//! 32-byte conversation ids (a contact's 1:1
//! group id, or a private group's root id). Muted conversations are kept
//! by id, so renaming a contact or a group keeps them muted; ids of
//! conversations no longer here are dropped from what is shown. Version 1
//! (no Bluetooth byte) is read as the default setting. Bits of the flags
//! byte this code does not know are neither refused nor acted on, and are
//! written back as they were; bit 2 says "hide" so that what was stored
//! before it existed (bit clear) reads as before: notifications name who
//! wrote.

use std::collections::BTreeSet;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use strand_transport::ble::duty::Duty;

use crate::profile::schema::meta;
use crate::profile::{Profile, ProfileError};

const ROLE_PREFS: &str = "strand/v2/prefs";
const VERSION: u8 = 2;
const SHOW_TEXT: u8 = 1;
const KEEP_RUNNING: u8 = 2;
/// Set: notifications name no one (clear, the default, they name who
/// wrote and the group).
const HIDE_NAMES: u8 = 4;
/// More muted conversations than any profile has contacts and groups.
const MAX_MUTED: usize = 100_000;

/// The preferences, as the app and `strand notifications` show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// Notifications show the message text (off: only who wrote, so
    /// nothing of it shows on a locked screen).
    pub show_text: bool,
    /// Notifications name who wrote, and in which group (on by default;
    /// off: they say only that a message came, so a locked screen shows
    /// no one's name). A node from before this setting sends none: it
    /// names them.
    #[serde(default = "named")]
    pub show_names: bool,
    /// Closing the app's window leaves the app syncing (and notifying) in
    /// the background.
    pub keep_running: bool,
    /// Contacts whose 1:1 conversations give no notifications, by name.
    pub muted_contacts: Vec<String>,
    /// Private groups that give no notifications, by name.
    pub muted_groups: Vec<String>,
    /// The same groups by key ([`crate::profile::groups::group_key`]), in the same order:
    /// two groups may have one name.
    #[serde(default)]
    pub muted_group_keys: Vec<String>,
    /// How much of the time Bluetooth LE scans for contacts nearby (the
    /// battery setting).
    #[serde(with = "duty_name", default)]
    pub bluetooth: Duty,
}

/// Notifications name who wrote unless the user chose otherwise.
fn named() -> bool {
    true
}

impl Default for Preferences {
    /// What a new profile has: notifications name who wrote but show no
    /// text, the app stops syncing with its window closed, nothing is
    /// muted, Bluetooth scans at its default setting.
    fn default() -> Preferences {
        Preferences {
            show_text: false,
            show_names: named(),
            keep_running: false,
            muted_contacts: Vec::new(),
            muted_groups: Vec::new(),
            muted_group_keys: Vec::new(),
            bluetooth: Duty::default(),
        }
    }
}

/// A [`Duty`] by its name, in the node's API.
mod duty_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use strand_transport::ble::duty::Duty;

    pub fn serialize<S: Serializer>(duty: &Duty, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(duty.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duty, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Preferences {
    /// Whether the 1:1 conversation with `contact` gives no
    /// notifications.
    pub fn mutes_contact(&self, contact: &str) -> bool {
        self.muted_contacts.iter().any(|c| c == contact)
    }

    /// Whether the private group whose key ([`crate::profile::groups::group_key`]) is
    /// `key` gives no notifications.
    pub fn mutes_group(&self, key: &str) -> bool {
        self.muted_group_keys.iter().any(|g| g == key)
    }
}

/// One change to the preferences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PreferenceChange {
    /// Show message text in notifications, or not.
    ShowText {
        /// On or off.
        on: bool,
    },
    /// Name who wrote (and the group) in notifications, or not.
    ShowNames {
        /// On or off.
        on: bool,
    },
    /// Keep syncing with the window closed, or not.
    KeepRunning {
        /// On or off.
        on: bool,
    },
    /// How much of the time Bluetooth LE scans.
    Bluetooth {
        /// The setting.
        #[serde(with = "duty_name")]
        duty: Duty,
    },
    /// Mute a contact's conversation (or unmute it).
    MuteContact {
        /// Contact name.
        name: String,
        /// Muted or not.
        muted: bool,
    },
    /// Mute a private group (or unmute it).
    MuteGroup {
        /// Group name (or key, or id prefix).
        name: String,
        /// Muted or not.
        muted: bool,
    },
}

#[derive(Debug, Default)]
struct Stored {
    flags: u8,
    duty: Duty,
    muted: BTreeSet<[u8; 32]>,
}

impl Stored {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION, self.flags, self.duty.to_byte()];
        out.extend_from_slice(&(self.muted.len() as u32).to_le_bytes());
        for id in &self.muted {
            out.extend_from_slice(id);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Stored, ProfileError> {
        let bad = || ProfileError::Corrupt("the preferences do not decode".into());
        let (flags, duty, rest) = match bytes {
            [1, flags, rest @ ..] => (*flags, Duty::default(), rest),
            [VERSION, flags, duty, rest @ ..] => {
                (*flags, Duty::from_byte(*duty).ok_or_else(bad)?, rest)
            }
            _ => return Err(bad()),
        };
        if rest.len() < 4 {
            return Err(bad());
        }
        let (count, ids) = rest.split_at(4);
        let count = u32::from_le_bytes(count.try_into().map_err(|_| bad())?) as usize;
        if count > MAX_MUTED || ids.len() != count * 32 {
            return Err(bad());
        }
        let muted = ids
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        Ok(Stored { flags, duty, muted })
    }
}

/// Takes the mute of conversation `id` out of the preferences in `txn`,
/// as they are in it (a contact being deleted: added again, they start
/// unmuted). `root` seals them again.
pub(crate) fn unmute_in(
    txn: &redb::WriteTransaction,
    root: &[u8; 32],
    id: &[u8; 32],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(), ProfileError> {
    change_in(txn, root, rng, |stored| stored.muted.remove(id))
}

/// Changes the preferences as they are in `txn`: `change` says whether
/// it changed anything, and only then are they sealed (with `root`) and
/// written back. With none stored, it changes the defaults.
fn change_in(
    txn: &redb::WriteTransaction,
    root: &[u8; 32],
    rng: &mut (impl RngCore + CryptoRng),
    change: impl FnOnce(&mut Stored) -> bool,
) -> Result<(), ProfileError> {
    use crate::profile::crypto::{open, seal};
    use crate::profile::db_error;
    use redb::ReadableTable;
    let mut meta = txn
        .open_table(crate::profile::schema::META)
        .map_err(db_error)?;
    let sealed = meta
        .get(meta::PREFS)
        .map_err(db_error)?
        .map(|v| v.value().to_vec());
    let mut stored = match sealed {
        Some(sealed) => {
            let plain = open(root, ROLE_PREFS, &sealed).ok_or_else(|| {
                ProfileError::Corrupt(format!("`{}` does not decrypt", meta::PREFS))
            })?;
            Stored::decode(&plain)?
        }
        None => Stored::default(),
    };
    if change(&mut stored) {
        let sealed = seal(root, ROLE_PREFS, &stored.encode(), rng);
        meta.insert(meta::PREFS, &sealed[..]).map_err(db_error)?;
    }
    Ok(())
}

/// A [`PreferenceChange`] with its names resolved.
enum Resolved {
    Flag(u8, bool),
    Duty(Duty),
    /// A conversation's id, muted or not; for a contact's, the contact's
    /// keyed id (their row must still be there for a mute to be kept)
    /// and name.
    Mute([u8; 32], bool, Option<([u8; 32], String)>),
}

impl Profile {
    fn stored_preferences(&self) -> Result<Stored, ProfileError> {
        match self.meta_sealed(meta::PREFS, ROLE_PREFS)? {
            Some(bytes) => Stored::decode(&bytes),
            None => Ok(Stored::default()),
        }
    }

    /// The Bluetooth battery setting alone: what a node starts with,
    /// without resolving every contact's and group's name as
    /// [`Profile::preferences`] does.
    pub(crate) fn bluetooth_duty(&self) -> Result<Duty, ProfileError> {
        Ok(self.stored_preferences()?.duty)
    }

    /// The user's preferences (the defaults until one is changed).
    pub fn preferences(&self) -> Result<Preferences, ProfileError> {
        let stored = self.stored_preferences()?;
        let mut muted_contacts = Vec::new();
        for c in self.contacts() {
            if stored.muted.contains(&self.direct_group(&c.name)?.id.0) {
                muted_contacts.push(c.name);
            }
        }
        let (muted_groups, muted_group_keys) = self
            .chains()
            .iter()
            .filter(|c| stored.muted.contains(&c.root().0))
            .map(|c| {
                (
                    c.last().name.clone(),
                    crate::profile::groups::group_key(&c.root()),
                )
            })
            .unzip();
        Ok(Preferences {
            show_text: stored.flags & SHOW_TEXT != 0,
            show_names: stored.flags & HIDE_NAMES == 0,
            keep_running: stored.flags & KEEP_RUNNING != 0,
            muted_contacts,
            muted_groups,
            muted_group_keys,
            bluetooth: stored.duty,
        })
    }

    /// Makes the changes, all or none, and returns the preferences after
    /// them. A name that is no contact or group is refused and changes
    /// nothing.
    pub fn change_preferences(
        &self,
        changes: &[PreferenceChange],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Preferences, ProfileError> {
        let resolved = changes
            .iter()
            .map(|c| self.resolve(c))
            .collect::<Result<Vec<_>, _>>()?;
        self.apply(resolved, rng)?;
        self.preferences()
    }

    /// Writes changes [`Profile::resolve`] made.
    fn apply(
        &self,
        resolved: Vec<Resolved>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), ProfileError> {
        let root = zeroize::Zeroizing::new(*self.root());
        let mut seal_rng = crate::profile::crypto::seeded_from(rng);
        // One write job, on the preferences as they are in it: a change
        // made meanwhile (another window's; a deletion taking a mute out)
        // is kept, not written over with a copy read before.
        self.write_txn(move |txn| {
            use crate::profile::db_error;
            use redb::ReadableTable;
            let contacts = txn
                .open_table(crate::profile::schema::CONTACTS)
                .map_err(db_error)?;
            for r in &resolved {
                if let Resolved::Mute(_, true, Some((id, name))) = r {
                    // Deleted since the name was read: their mute went
                    // with them, and must not come back.
                    if contacts.get(id).map_err(db_error)?.is_none() {
                        return Err(ProfileError::UnknownContact(name.clone()));
                    }
                }
            }
            drop(contacts);
            change_in(txn, &root, &mut seal_rng, |stored| {
                for r in resolved {
                    match r {
                        Resolved::Flag(bit, true) => stored.flags |= bit,
                        Resolved::Flag(bit, false) => stored.flags &= !bit,
                        Resolved::Duty(duty) => stored.duty = duty,
                        Resolved::Mute(id, true, _) => {
                            stored.muted.insert(id);
                        }
                        Resolved::Mute(id, false, _) => {
                            stored.muted.remove(&id);
                        }
                    }
                }
                true
            })
        })
    }

    /// A change's names, resolved (an unknown one is an error).
    fn resolve(&self, change: &PreferenceChange) -> Result<Resolved, ProfileError> {
        Ok(match change {
            PreferenceChange::ShowText { on } => Resolved::Flag(SHOW_TEXT, *on),
            PreferenceChange::ShowNames { on } => Resolved::Flag(HIDE_NAMES, !*on),
            PreferenceChange::KeepRunning { on } => Resolved::Flag(KEEP_RUNNING, *on),
            PreferenceChange::Bluetooth { duty } => Resolved::Duty(*duty),
            PreferenceChange::MuteContact { name, muted } => {
                let record = self.contact(name)?;
                let group = self.sync_contact(&record)?.direct_group().id.0;
                let id = self.contact_id(&record.public.sign);
                Resolved::Mute(group, *muted, Some((id, name.clone())))
            }
            PreferenceChange::MuteGroup { name, muted } => {
                Resolved::Mute(self.chain_named(name)?.root().0, *muted, None)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mute read before a contact is deleted and written after it is
    /// refused: the deletion took their mute out, and it must not come
    /// back (adding them again would find them muted). Before, the
    /// preferences were read, changed and written back outside the
    /// writer, so the mute came back.
    #[test]
    fn a_mute_crossing_a_deletion_does_not_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, bob, _) = crate::profile::alice_with_bob(dir.path());
        let rng = &mut crate::profile::os_rng();
        let mute = PreferenceChange::MuteContact {
            name: "Bob".into(),
            muted: true,
        };
        let resolved = vec![alice.resolve(&mute).unwrap()];
        alice.delete_contact("Bob", 0, rng).unwrap();
        assert!(matches!(
            alice.apply(resolved, rng),
            Err(ProfileError::UnknownContact(_))
        ));
        alice.add_contact(&bob.invite(), "Bob", 0, rng).unwrap();
        assert_eq!(alice.preferences().unwrap(), Preferences::default());
        // A change that resolves now is written.
        alice.change_preferences(&[mute], rng).unwrap();
        assert_eq!(alice.preferences().unwrap().muted_contacts, ["Bob"]);
    }

    #[test]
    fn preferences_start_off_and_keep_what_is_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _, _) = crate::profile::alice_with_bob(dir.path());
        let mut rng = crate::profile::os_rng();
        assert_eq!(alice.preferences().unwrap(), Preferences::default());
        let p = alice
            .change_preferences(
                &[
                    PreferenceChange::ShowText { on: true },
                    PreferenceChange::MuteContact {
                        name: "Bob".into(),
                        muted: true,
                    },
                ],
                &mut rng,
            )
            .unwrap();
        assert!(p.show_text && !p.keep_running);
        assert_eq!(p.muted_contacts, ["Bob"]);
        // Someone not a contact: refused, and nothing changed (not even
        // what came before it).
        assert!(alice
            .change_preferences(
                &[
                    PreferenceChange::KeepRunning { on: true },
                    PreferenceChange::MuteContact {
                        name: "Mallory".into(),
                        muted: true,
                    },
                ],
                &mut rng,
            )
            .is_err());
        assert_eq!(alice.preferences().unwrap(), p);
        // Kept sealed in the profile: it survives a reopen.
        drop(alice);
        let alice = Profile::open(dir.path(), "pass").unwrap();
        assert_eq!(alice.preferences().unwrap(), p);
        let p = alice
            .change_preferences(
                &[PreferenceChange::MuteContact {
                    name: "Bob".into(),
                    muted: false,
                }],
                &mut rng,
            )
            .unwrap();
        assert!(p.muted_contacts.is_empty() && p.show_text);
    }

    #[test]
    fn stored_preferences_that_do_not_decode_are_refused() {
        for bad in [
            &[][..],
            &[2, 0, 0, 0, 0, 0][..],
            &[1, 0, 1, 0, 0, 0][..],
            &[1, 0, 0xff, 0xff, 0xff, 0xff][..],
            // No such Bluetooth setting.
            &[2, 0, 3, 0, 0, 0, 0][..],
            // No such version.
            &[3, 0, 0, 0, 0, 0, 0][..],
        ] {
            assert!(Stored::decode(bad).is_err(), "{bad:?}");
        }
        let s = Stored {
            flags: 3,
            duty: Duty::Saver,
            muted: [[7; 32]].into(),
        };
        let back = Stored::decode(&s.encode()).unwrap();
        assert_eq!(
            (back.flags, back.duty, back.muted),
            (3, Duty::Saver, s.muted)
        );
        // What version 1 stored reads with the default Bluetooth setting.
        let old = Stored::decode(&[1, 1, 0, 0, 0, 0]).unwrap();
        assert_eq!((old.flags, old.duty), (1, Duty::Balanced));
        // Every flag bit decodes, known or not, and is kept as it came.
        let all = Stored::decode(&[2, 0xff, 1, 0, 0, 0, 0]).unwrap();
        assert_eq!(all.flags, 0xff);
    }

    /// Seals `bytes` as the stored preferences, as an earlier build wrote
    /// them.
    fn store_raw(profile: &Profile, bytes: &[u8]) {
        use crate::profile::db_error;
        let root = zeroize::Zeroizing::new(*profile.root());
        let mut rng = crate::profile::os_rng();
        let bytes = bytes.to_vec();
        profile
            .write_txn(move |txn| {
                let mut meta = txn
                    .open_table(crate::profile::schema::META)
                    .map_err(db_error)?;
                let sealed = crate::profile::crypto::seal(&root, ROLE_PREFS, &bytes, &mut rng);
                meta.insert(meta::PREFS, &sealed[..]).map_err(db_error)?;
                Ok(())
            })
            .unwrap();
    }

    /// Notifications name who wrote until the user says not to, and what
    /// was stored before the setting existed (no bit 2) reads as named,
    /// with the rest as it was. Hidden, it is kept as bit 2, and survives
    /// a reopen; a flag bit this code does not know is kept through a
    /// change.
    #[test]
    fn names_in_notifications_stay_until_hidden_and_old_profiles_read_as_named() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, _, _) = crate::profile::alice_with_bob(dir.path());
        let rng = &mut crate::profile::os_rng();
        assert!(alice.preferences().unwrap().show_names);

        // Version 2 with text shown, the app kept running and the saver
        // setting; version 1 with text shown: both name who wrote.
        store_raw(&alice, &[2, SHOW_TEXT | KEEP_RUNNING, 2, 0, 0, 0, 0]);
        let p = alice.preferences().unwrap();
        assert!(p.show_names && p.show_text && p.keep_running, "{p:?}");
        assert_eq!(p.bluetooth, Duty::Saver);
        store_raw(&alice, &[1, SHOW_TEXT, 0, 0, 0, 0]);
        let p = alice.preferences().unwrap();
        assert!(p.show_names && p.show_text && !p.keep_running, "{p:?}");

        let p = alice
            .change_preferences(&[PreferenceChange::ShowNames { on: false }], rng)
            .unwrap();
        assert!(!p.show_names && p.show_text, "{p:?}");
        assert_eq!(
            alice.stored_preferences().unwrap().flags,
            SHOW_TEXT | HIDE_NAMES
        );
        drop(alice);
        let alice = Profile::open(dir.path(), "pass").unwrap();
        assert!(!alice.preferences().unwrap().show_names);

        // A bit from a later build: kept, whatever else changes.
        store_raw(&alice, &[2, 0x80 | HIDE_NAMES, 1, 0, 0, 0, 0]);
        assert!(!alice.preferences().unwrap().show_names);
        let p = alice
            .change_preferences(&[PreferenceChange::ShowNames { on: true }], rng)
            .unwrap();
        assert!(p.show_names && !p.show_text, "{p:?}");
        assert_eq!(alice.stored_preferences().unwrap().flags, 0x80);
    }

    /// The change is named as the others are in the node's API, and
    /// preferences from a node that predates the setting (no
    /// `show_names`) read as named.
    #[test]
    fn the_names_setting_in_the_api() {
        assert_eq!(
            serde_json::to_value(PreferenceChange::ShowNames { on: false }).unwrap(),
            serde_json::json!({"change": "show_names", "on": false})
        );
        let older = serde_json::json!({
            "show_text": false,
            "keep_running": false,
            "muted_contacts": [],
            "muted_groups": [],
            "bluetooth": "balanced",
        });
        let p: Preferences = serde_json::from_value(older).unwrap();
        assert_eq!(p, Preferences::default());
        assert!(p.show_names);
    }
}
