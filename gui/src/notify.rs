//! Desktop notifications, through the freedesktop notification service
//! (`org.freedesktop.Notifications` on the session bus: GNOME, KDE, Phosh,
//! dunst, mako, …).
//!
//! A text, a file or a group message that arrives while the window is not
//! the one in front becomes a notification, unless its conversation is
//! muted. By default it says who wrote, not what: notification daemons
//! show notifications on a locked screen, so the text appears only when
//! the user turns it on ([`strand_node::Preferences::show_text`]). The
//! user may also have it name no one, neither who wrote nor the group
//! ([`strand_node::Preferences::show_names`]): it is then titled
//! "Strand". While it keeps either back, it is also marked transient, so
//! the daemon keeps no history of it for a locked screen to list. What a
//! notification shows is decided in one place (`notice`), for each
//! message and for the count of many alike. Everything in it comes from
//! someone else (names, texts), so it is shown through
//! [`strand_node::display::one_line`], and its body (the part the
//! specification lets hold markup) is escaped. Clicking it opens the
//! conversation. The unread count goes on the app's icon where the dock
//! shows one (the launcher entry API).
//!
//! When the profile locks, every notification still remembered is taken
//! off the screen and forgotten ([`Notifier::locked`]). The calls are made
//! on the app's core thread, so each waits at most [`CALL_TIMEOUT`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strand_node::runtime::api::Target;
use strand_node::NodeEvent;
use strand_node::Preferences;
use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::Value;

const SERVICE: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";
/// The launcher entry API (Unity's, which KDE and GNOME docks took up).
const BADGE_PATH: &str = "/com/canonical/unity/launcherentry/strand";
const BADGE_INTERFACE: &str = "com.canonical.Unity.LauncherEntry";
/// The app, by its desktop entry.
const APP_URI: &str = "application://strand.desktop";
/// Longest text shown in a notification, in characters.
const MAX_BODY: usize = 200;
/// Notifications remembered for clicks: older ones open nothing.
const REMEMBERED: usize = 64;
/// More arrivals than this at once (a sync after days away) become one
/// notification that counts them.
pub const MAX_AT_ONCE: usize = 3;
/// How long a call to the notification service (`Notify`,
/// `CloseNotification`) may take. A daemon answers in milliseconds, and
/// one the bus starts on the first call in well under a second; the calls
/// are made on the core thread, where every request of the user's waits
/// behind them, so a daemon that hangs holds the app up this long, not
/// for ever.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// After a call timed out, the service is not called for this long: every
/// call would wait as long again, and during a sync arrivals are notified
/// every [`crate::backend::DEBOUNCE`].
pub const HUNG_PAUSE: Duration = Duration::from_secs(60);

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Its title: who wrote (and in which group), or "Strand" if the
    /// user chose to have no one named.
    pub title: String,
    /// Its text: what they wrote, or only that they wrote.
    pub body: String,
    /// The conversation a click opens.
    pub of: Target,
    /// Whether the daemon should keep it out of its history (the
    /// `transient` hint): while texts or names are hidden, the user chose
    /// not to have messages (or who wrote them) shown, and a history would
    /// keep listing them (on a locked screen too) after the notification
    /// itself went.
    pub transient: bool,
}

/// What arrived, for [`notice`].
enum Arrival<'a> {
    /// One message: who wrote it (and in which group), as a title names
    /// them, and its text.
    One { from: String, text: &'a str },
    /// This many messages at once.
    Many(usize),
}

/// The notification for `arrival`, which a click on opens `of`. Every
/// notification is made here, so that what the user chose to keep off
/// the screen (the text; who wrote and the group) is in none of them, and
/// each that keeps something back is transient.
fn notice(arrival: Arrival<'_>, of: Target, prefs: &Preferences) -> Notice {
    let (title, body) = match arrival {
        Arrival::One { from, text } => {
            let title = match prefs.show_names {
                true => strand_node::display::one_line(&from),
                false => "Strand".to_owned(),
            };
            let body = match prefs.show_text {
                true => {
                    let shown = strand_node::display::one_line(text);
                    match shown.char_indices().nth(MAX_BODY) {
                        Some((cut, _)) => format!("{}…", &shown[..cut]),
                        None => shown,
                    }
                }
                false => "New message".to_owned(),
            };
            (title, body)
        }
        Arrival::Many(count) => ("Strand".to_owned(), format!("{count} new messages")),
    };
    Notice {
        title,
        body,
        of,
        transient: !prefs.show_text || !prefs.show_names,
    }
}

/// What to show for the messages that arrived in one batch: nothing for
/// muted conversations; who wrote and what, as far as the user chose to
/// show them, for each of the first few; beyond [`MAX_AT_ONCE`], one
/// notification that counts them.
pub fn notices(received: &[NodeEvent], prefs: &Preferences) -> Vec<Notice> {
    let arrived: Vec<(String, &str, Target)> = received
        .iter()
        .filter_map(|e| {
            let NodeEvent::Received {
                contact,
                group,
                group_key,
                text,
                ..
            } = e
            else {
                return None;
            };
            // A group by its key: another may have its name.
            let (from, of) = match (group, group_key) {
                (Some(_), Some(key)) if prefs.mutes_group(key) => return None,
                (None, _) if prefs.mutes_contact(contact) => return None,
                (Some(g), Some(key)) => (format!("{contact} in {g}"), Target::Group(key.clone())),
                // No key: no row to open nor mute to check (the node
                // always gives one).
                (Some(_), None) => return None,
                (None, _) => (contact.clone(), Target::Contact(contact.clone())),
            };
            Some((from, text.as_str(), of))
        })
        .collect();
    if arrived.len() > MAX_AT_ONCE {
        let first = arrived[0].2.clone();
        return vec![notice(Arrival::Many(arrived.len()), first, prefs)];
    }
    arrived
        .into_iter()
        .map(|(from, text, of)| notice(Arrival::One { from, text }, of, prefs))
        .collect()
}

/// Escapes what a daemon that reads markup in bodies would take as a tag
/// or an entity.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Whether `e` says the service did not answer within [`CALL_TIMEOUT`].
fn timed_out(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::InputOutput(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// A link to the notification service.
pub struct Notifier {
    conn: Connection,
    /// The notification service's object, for `Notify`.
    service: Proxy<'static>,
    /// Notifications shown (newest last): which conversation each opens.
    shown: Arc<Mutex<VecDeque<(u32, Target)>>>,
    /// Until when the service is taken as hung: a call to it timed out
    /// lately, and it is not called again before then ([`HUNG_PAUSE`]).
    hung_until: Mutex<Option<Instant>>,
}

impl Notifier {
    /// Connects to the session bus (`None`) or the bus at `address`, and
    /// calls `clicked` with the id of each notification the user clicks
    /// that is remembered when the click comes (on a thread of its own).
    /// The click is for the core thread to look up with
    /// [`Notifier::opens`]: what was forgotten meanwhile opens nothing.
    pub fn connect(
        address: Option<&str>,
        clicked: impl Fn(u32) + Send + 'static,
    ) -> zbus::Result<Notifier> {
        let builder = match address {
            Some(a) => zbus::blocking::connection::Builder::address(a)?,
            None => zbus::blocking::connection::Builder::session()?,
        };
        let conn = builder.method_timeout(CALL_TIMEOUT).build()?;
        let shown: Arc<Mutex<VecDeque<(u32, Target)>>> = Arc::default();
        let service = Proxy::new(&conn, SERVICE, PATH, SERVICE)?;
        let clicks = service.receive_signal("ActionInvoked")?;
        let remembered = shown.clone();
        std::thread::Builder::new()
            .name("strand-notify".into())
            .spawn(move || {
                for signal in clicks {
                    let Ok((id, _action)) = signal.body().deserialize::<(u32, String)>() else {
                        continue;
                    };
                    // Other programs' notifications, and this app's
                    // forgotten ones (too old, of a deleted contact, from
                    // before a lock), open nothing.
                    let ours = remembered
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .any(|(shown, _)| *shown == id);
                    if ours {
                        clicked(id);
                    }
                }
            })
            .map_err(|e| zbus::Error::Failure(format!("no thread for notification clicks: {e}")))?;
        Ok(Notifier {
            conn,
            service,
            shown,
            hung_until: Mutex::new(None),
        })
    }

    /// The conversation notification `id` opens: `None` if it is not
    /// remembered (too old, of a deleted contact, or shown before the
    /// profile was locked).
    pub fn opens(&self, id: u32) -> Option<Target> {
        self.shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(shown, _)| *shown == id)
            .map(|(_, t)| t.clone())
    }

    /// A contact was renamed: notifications already shown of them open
    /// their conversation by the new name.
    pub fn renamed(&self, from: &str, to: &str) {
        for (_, target) in self
            .shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
        {
            if *target == Target::Contact(from.to_owned()) {
                *target = Target::Contact(to.to_owned());
            }
        }
    }

    /// A contact was deleted: notifications of them still remembered (the
    /// last [`REMEMBERED`]) are taken off the screen (their texts are
    /// gone) and open nothing (a click would otherwise open whoever is
    /// given the name next). A summary that opens their conversation goes
    /// too, though it counted others' messages as well.
    pub fn deleted(&self, name: &str) {
        let gone = Target::Contact(name.to_owned());
        let mut closing = Vec::new();
        self.shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, target)| {
                let theirs = *target == gone;
                if theirs {
                    closing.push(*id);
                }
                !theirs
            });
        self.close(&closing);
    }

    /// The profile was locked (or wiped, or its node stopped): every
    /// notification still remembered is taken off the screen (with its
    /// text, if texts were shown) and forgotten, so a click on one opens
    /// nothing. Otherwise it would open the same-named conversation in
    /// whichever profile is unlocked next.
    pub fn locked(&self) {
        let closing: Vec<u32> = self
            .shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .map(|(id, _)| id)
            .collect();
        self.close(&closing);
    }

    /// Takes the notifications `ids` off the screen, unless the service
    /// hangs: then the rest are left (each call would wait as long).
    fn close(&self, ids: &[u32]) {
        for &id in ids {
            if self.hung() {
                return;
            }
            match self.service.call::<_, _, ()>("CloseNotification", &(id,)) {
                Ok(()) => {}
                Err(e) if self.took_too_long(&e) => {}
                // The user or the daemon closed it already.
                Err(e) => tracing::debug!("a notification not closed: {e}"),
            }
        }
    }

    /// Whether the service did not answer a call in time within the last
    /// [`HUNG_PAUSE`]: then it is not called.
    pub fn hung(&self) -> bool {
        let until = *self.hung_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|until| Instant::now() < until)
    }

    /// Whether `e` is a call that timed out; if so, the service is taken
    /// as hung for [`HUNG_PAUSE`], and the log says so.
    fn took_too_long(&self, e: &zbus::Error) -> bool {
        if !timed_out(e) {
            return false;
        }
        tracing::warn!(
            "the notification service did not answer within {CALL_TIMEOUT:?}: \
             it is not called for {HUNG_PAUSE:?}"
        );
        *self.hung_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + HUNG_PAUSE);
        true
    }

    /// Puts `count` on the app's icon (none at 0), through the launcher
    /// entry API (a signal any dock may listen to).
    pub fn badge(&self, count: u32) -> zbus::Result<()> {
        let properties: HashMap<&str, Value<'_>> = HashMap::from([
            ("count", Value::I64(i64::from(count))),
            ("count-visible", Value::Bool(count > 0)),
        ]);
        self.conn.emit_signal(
            None::<&str>,
            BADGE_PATH,
            BADGE_INTERFACE,
            "Update",
            &(APP_URI, properties),
        )
    }

    /// Shows `notice`; its id. A call that times out also makes the
    /// service [`Notifier::hung`].
    pub fn show(&self, notice: &Notice) -> zbus::Result<u32> {
        let mut hints: HashMap<&str, Value<'_>> = HashMap::from([
            ("category", Value::from("im.received")),
            ("desktop-entry", Value::from("strand")),
            ("urgency", Value::U8(1)),
        ]);
        if notice.transient {
            hints.insert("transient", Value::Bool(true));
        }
        // The summary is plain text in the specification (only the body
        // may hold markup), so the title is not escaped: a daemon would
        // show "&amp;" for "&".
        let id = self
            .service
            .call::<_, _, u32>(
                "Notify",
                &(
                    "Strand",
                    0u32,
                    "strand",
                    notice.title.as_str(),
                    escape(&notice.body),
                    vec!["default", "Open"],
                    hints,
                    -1i32,
                ),
            )
            .inspect_err(|e| {
                self.took_too_long(e);
            })?;
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        shown.push_back((id, notice.of.clone()));
        if shown.len() > REMEMBERED {
            shown.pop_front();
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up key for the group called `group`.
    fn key_of(group: &str) -> String {
        format!("key of {group}")
    }

    fn received(contact: &str, group: Option<&str>, text: &str) -> NodeEvent {
        NodeEvent::Received {
            contact: contact.into(),
            group: group.map(Into::into),
            group_key: group.map(key_of),
            time: 1,
            id: "00".into(),
            text: text.into(),
        }
    }

    #[test]
    fn texts_show_only_when_chosen_and_muted_conversations_not_at_all() {
        let batch = [
            received("Bob", None, "the door code is 4512"),
            received("Ann", Some("Book club"), "chapter 3"),
        ];
        let mut prefs = Preferences::default();
        let n = notices(&batch, &prefs);
        assert_eq!(n.len(), 2);
        assert_eq!(
            (n[0].title.as_str(), n[0].body.as_str()),
            ("Bob", "New message")
        );
        assert_eq!(n[1].title, "Ann in Book club");
        assert_eq!(n[1].of, Target::Group(key_of("Book club")));
        assert!(n.iter().all(|n| !n.body.contains("4512")));
        // Texts hidden: kept out of the daemon's history.
        assert!(n.iter().all(|n| n.transient));

        prefs.show_text = true;
        prefs.muted_groups = vec!["Book club".into()];
        prefs.muted_group_keys = vec![key_of("Book club")];
        let n = notices(&batch, &prefs);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].body, "the door code is 4512");
        assert!(!n[0].transient);
        prefs.muted_contacts = vec!["Bob".into()];
        assert!(notices(&batch, &prefs).is_empty());
    }

    #[test]
    fn what_others_wrote_is_shown_safely_and_many_become_one() {
        let prefs = Preferences {
            show_text: true,
            ..Preferences::default()
        };
        let n = notices(
            &[received("Bob\u{202e}", None, "<b>hi</b>\nforged line")],
            &prefs,
        );
        assert_eq!(n[0].title, "Bob<U+202E>");
        assert!(!n[0].body.contains('\n'));
        assert_eq!(escape("<b>&amp;"), "&lt;b&gt;&amp;amp;");
        let long = "x".repeat(1000);
        assert_eq!(
            notices(&[received("Bob", None, &long)], &prefs)[0]
                .body
                .chars()
                .count(),
            MAX_BODY + 1
        );

        let many: Vec<_> = (0..5)
            .map(|i| received("Bob", None, &i.to_string()))
            .collect();
        let n = notices(&many, &prefs);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].body, "5 new messages");
        assert_eq!(n[0].of, Target::Contact("Bob".into()));
        assert!(!n[0].transient);
        let hidden = Preferences::default();
        assert!(notices(&many, &hidden)[0].transient);
    }

    /// With names hidden, no notification names who wrote or the group:
    /// not one for a 1:1 message, not one for a group's, not the count of
    /// many at once, with texts hidden or shown. Each is titled "Strand",
    /// still opens its conversation, and is kept out of the daemon's
    /// history. Before, the title named them whatever the user chose.
    #[test]
    fn hidden_names_are_in_no_notification() {
        let batch = [
            received("Bob", None, "the door code is 4512"),
            received("Ann", Some("Book club"), "chapter 3"),
        ];
        /// Whether any of `shown` names a contact or the group.
        fn names_someone(shown: &[Notice]) -> bool {
            shown.iter().any(|n| {
                ["Bob", "Ann", "Book club"]
                    .iter()
                    .any(|name| n.title.contains(*name) || n.body.contains(*name))
            })
        }
        let mut prefs = Preferences {
            show_names: false,
            ..Preferences::default()
        };
        let n = notices(&batch, &prefs);
        assert_eq!(n.len(), 2);
        assert!(!names_someone(&n), "{n:?}");
        assert!(
            n.iter()
                .all(|n| (n.title.as_str(), n.body.as_str()) == ("Strand", "New message")),
            "{n:?}"
        );
        assert_eq!(n[0].of, Target::Contact("Bob".into()));
        assert_eq!(n[1].of, Target::Group(key_of("Book club")));
        assert!(n.iter().all(|n| n.transient));

        // Texts shown: the text, still under no name, still transient.
        prefs.show_text = true;
        let n = notices(&batch, &prefs);
        assert!(!names_someone(&n), "{n:?}");
        assert_eq!(n[0].body, "the door code is 4512");
        assert!(
            n.iter().all(|n| n.title == "Strand" && n.transient),
            "{n:?}"
        );

        // Many at once, in a group.
        let many: Vec<_> = (0..5)
            .map(|i| received("Ann", Some("Book club"), &i.to_string()))
            .collect();
        let n = notices(&many, &prefs);
        assert_eq!(n.len(), 1);
        assert!(!names_someone(&n), "{n:?}");
        assert_eq!(n[0].body, "5 new messages");
        assert_eq!(n[0].of, Target::Group(key_of("Book club")));
        assert!(n[0].transient);

        // Named again: as before.
        prefs.show_names = true;
        let n = notices(&batch, &prefs);
        assert_eq!(n[1].title, "Ann in Book club");
        assert!(!n[1].transient);
    }

    /// A call the service did not answer in time is told apart from its
    /// other errors (a refusal, a notification already closed): only it
    /// makes the notifier stop calling for a while.
    #[test]
    fn only_a_timeout_counts_as_hung() {
        let late = zbus::Error::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        ));
        assert!(timed_out(&late));
        let gone = zbus::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(!timed_out(&gone));
        let refused = zbus::Error::Failure("no such notification".into());
        assert!(!timed_out(&refused));
    }
}
