//! What the user typed and has not sent, one draft per conversation.
//!
//! A wide window has one message box for every conversation: it shows the
//! open conversation's draft and keeps the others' until they are opened
//! again, so a text typed to one person never goes to another and none is
//! lost by opening someone else. A draft leaves the box only once the
//! node has taken it: a send the node refuses leaves it there to fix.
//! Kept in memory on the UI thread, and forgotten when the profile is let
//! go ([`forget_all`]).

use std::cell::RefCell;
use std::collections::HashMap;

/// The drafts of one kind of conversation (1:1 by contact name, groups by
/// key).
#[derive(Debug, Default)]
pub(crate) struct Drafts {
    /// Whose draft the box holds.
    of: Option<String>,
    /// Everyone else's.
    kept: HashMap<String, String>,
}

impl Drafts {
    /// The box, holding `typed`, now shows `key`'s conversation (`None`:
    /// none). Returns what the box should hold instead, or `None` if it
    /// is still the same conversation's.
    pub(crate) fn open(&mut self, key: Option<&str>, typed: &str) -> Option<String> {
        if self.of.as_deref() == key {
            return None;
        }
        if let Some(of) = self.of.take() {
            if !typed.is_empty() {
                self.kept.insert(of, typed.to_owned());
            }
        }
        self.of = key.map(str::to_owned);
        Some(key.and_then(|k| self.kept.remove(k)).unwrap_or_default())
    }

    /// The node took `text`, typed to `key`: whether the box, holding
    /// `typed`, should be emptied (it still holds just that text). A kept
    /// draft that is just that text goes too (its conversation was left
    /// while the send was under way).
    pub(crate) fn sent(&mut self, key: &str, text: &str, typed: &str) -> bool {
        if self.of.as_deref() == Some(key) {
            return typed == text;
        }
        if self.kept.get(key).is_some_and(|d| d == text) {
            self.kept.remove(key);
        }
        false
    }

    /// A contact renamed: their draft follows them.
    pub(crate) fn renamed(&mut self, from: &str, to: &str) {
        if self.of.as_deref() == Some(from) {
            self.of = Some(to.to_owned());
        }
        if let Some(d) = self.kept.remove(from) {
            self.kept.insert(to.to_owned(), d);
        }
    }

    /// `key`'s conversation is gone (a contact deleted): their draft goes
    /// with it. Returns whether the box held it (it should be emptied).
    pub(crate) fn forget(&mut self, key: &str) -> bool {
        self.kept.remove(key);
        if self.of.as_deref() == Some(key) {
            self.of = None;
            return true;
        }
        false
    }

    /// Every draft goes ([`forget_all`]).
    pub(crate) fn clear(&mut self) {
        *self = Drafts::default();
    }
}

thread_local! {
    /// The 1:1 conversations' drafts, by contact name.
    pub(crate) static CONTACTS: RefCell<Drafts> = RefCell::new(Drafts::default());
    /// The groups' drafts, by group key.
    pub(crate) static GROUPS: RefCell<Drafts> = RefCell::new(Drafts::default());
}

/// Every draft goes: the profile they were typed in is let go, when it
/// locks ([`super::settings::lock`]) and when its window's app is dropped
/// ([`crate::App`]). The drafts are kept by name on the UI thread, which
/// outlives a window (tests open one after another on it), so a draft
/// left would show in the next profile's conversation of the same name,
/// and Enter would send it there. Called on the UI thread, after the
/// conversations were closed (closing one keeps its box's text as a
/// draft).
pub(crate) fn forget_all() {
    CONTACTS.with_borrow_mut(Drafts::clear);
    GROUPS.with_borrow_mut(Drafts::clear);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_stays_with_its_conversation() {
        let mut d = Drafts::default();
        assert_eq!(d.open(Some("bob"), "").as_deref(), Some(""));
        assert_eq!(d.open(Some("bob"), "door code 4512"), None, "same one");
        // Carol's box starts empty; Bob's draft is kept.
        assert_eq!(d.open(Some("carol"), "door code 4512").as_deref(), Some(""));
        assert_eq!(
            d.open(Some("bob"), "hi carol").as_deref(),
            Some("door code 4512")
        );
        assert_eq!(
            d.open(Some("carol"), "door code 4512").as_deref(),
            Some("hi carol")
        );
        // Closed (nothing open), then opened again.
        assert_eq!(d.open(None, "hi carol").as_deref(), Some(""));
        assert_eq!(d.open(Some("carol"), "").as_deref(), Some("hi carol"));
    }

    #[test]
    fn only_what_was_sent_leaves_the_box() {
        let mut d = Drafts::default();
        d.open(Some("bob"), "");
        assert!(d.sent("bob", "one", "one"));
        assert!(!d.sent("bob", "one", "one and more"), "typed on since");
        // Sent, then Carol opened before the node answered.
        d.open(Some("carol"), "two");
        assert!(!d.sent("bob", "two", ""));
        assert_eq!(d.open(Some("bob"), "").as_deref(), Some(""), "Bob's went");
        // A reply for one conversation never empties another's box.
        assert!(!d.sent("carol", "two", "two"));
    }

    #[test]
    fn renamed_and_forgotten_drafts() {
        let mut d = Drafts::default();
        d.open(Some("bob"), "");
        d.open(Some("carol"), "to bob");
        d.renamed("bob", "robert");
        d.renamed("carol", "caroline");
        assert_eq!(d.open(Some("caroline"), "to carol"), None, "still hers");
        assert_eq!(
            d.open(Some("robert"), "to carol").as_deref(),
            Some("to bob")
        );
        assert!(d.forget("robert"));
        assert!(!d.forget("caroline"));
        assert_eq!(
            d.open(Some("caroline"), "").as_deref(),
            Some(""),
            "forgotten"
        );
        d.open(Some("dave"), "to caroline?");
        d.clear();
        assert_eq!(d.open(Some("caroline"), "").as_deref(), Some(""));
    }
}
