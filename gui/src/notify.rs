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
//! With both names and texts hidden, a notification says nothing that
//! tells one arrival from another ("Strand", "New message"), and a
//! screen of them tells the user no more than one would. So then the
//! messages of a batch become one notification that counts them ("New
//! message", "3 new messages"), however few, and each later one replaces
//! the last (`Notify`'s `replaces_id`) with its count going on from the
//! last one's, until the user has looked at the app: the window coming in
//! front, or a click on a notification, takes it off the screen
//! (`CloseNotification`: the user has seen what it counted, and it would
//! otherwise stay up, stale), and the next one counts afresh in a
//! notification of its own. The count is the notifier's own tally of the
//! messages it counted ([`Notifier::unseen`]), not the unread count: that
//! one also counts muted conversations, which notify nothing, and
//! messages the user saw and left unread, which are not new. The tally
//! goes on whether or not the service showed a notification: a batch it
//! failed to show, or was not asked to show while it hung, is unseen all
//! the same, and the next one counts it. A notification the user
//! dismissed, or that expired, does not start the count again (its
//! messages are still unseen); replacing an id the daemon already closed
//! shows a new notification, as the specification says. With names or
//! texts shown, they tell arrivals apart, so each is shown as before; the
//! last one that counted is then left as it is on the screen, and once
//! both are hidden again the next counts afresh in a notification of its
//! own (counting on would leave out what was notified by name or text in
//! between). A notification that counts messages (these, or many at
//! once) opens the conversation of the newest of them. Each notification
//! on the screen is remembered once: a replaced one's entry moves to the
//! one replacing it.
//!
//! When the profile locks, every notification still remembered is taken
//! off the screen and forgotten ([`Notifier::locked`]). The calls are made
//! on the app's core thread, so each waits at most [`CALL_TIMEOUT`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
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
/// Longest text shown in a notification, in characters: as much as the
/// node sends of a new message's text.
const MAX_BODY: usize = strand_node::limits::RECEIVED_PREVIEW;
/// Notifications remembered for clicks: older ones open nothing.
const REMEMBERED: usize = 64;
/// More arrivals than this at once (a sync after days away) become one
/// notification that counts them (with names and texts hidden, any number
/// do: nothing tells them apart).
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
    /// For a notification that tells no message apart (it names no one
    /// and shows no text): how many messages it counts, those the one it
    /// replaces counted included. It replaces the last such notification
    /// rather than standing beside it ([`Notifier::show`]). `None` for one
    /// that stands beside the others.
    pub counts: Option<usize>,
}

/// What arrived, for [`notice`].
enum Arrival<'a> {
    /// One message: who wrote it (and in which group), as a title names
    /// them, its text (or the start of it, as the node sent it), and
    /// whether that was cut.
    One {
        from: String,
        text: &'a str,
        cut: bool,
    },
    /// This many messages at once.
    Many(usize),
    /// This many messages since the user last looked at the app, told
    /// apart by nothing shown: one notification that counts them and
    /// replaces the last.
    Unseen(usize),
}

/// The text that counts `count` messages.
fn counted(count: usize) -> String {
    match count {
        1 => "New message".to_owned(),
        _ => format!("{count} new messages"),
    }
}

/// The notification for `arrival`, which a click on opens `of`. Every
/// notification is made here, so that what the user chose to keep off
/// the screen (the text; who wrote and the group) is in none of them, and
/// each that keeps something back is transient.
fn notice(arrival: Arrival<'_>, of: Target, prefs: &Preferences) -> Notice {
    let counts = match arrival {
        Arrival::Unseen(count) => Some(count),
        Arrival::One { .. } | Arrival::Many(_) => None,
    };
    let (title, body) = match arrival {
        Arrival::One { from, text, cut } => {
            let title = match prefs.show_names {
                true => strand_node::display::one_line(&from),
                false => "Strand".to_owned(),
            };
            let body = match prefs.show_text {
                true => {
                    let shown = strand_node::display::one_line(text);
                    match strand_node::display::first_chars(&shown, MAX_BODY) {
                        (start, true) => format!("{start}…"),
                        (_, false) if cut => format!("{shown}…"),
                        (_, false) => shown,
                    }
                }
                false => "New message".to_owned(),
            };
            (title, body)
        }
        Arrival::Many(count) | Arrival::Unseen(count) => ("Strand".to_owned(), counted(count)),
    };
    Notice {
        title,
        body,
        of,
        transient: !prefs.show_text || !prefs.show_names,
        counts,
    }
}

/// What to show for the messages that arrived in one batch: nothing for
/// muted conversations; who wrote and what, as far as the user chose to
/// show them, for each of the first few; beyond [`MAX_AT_ONCE`], one
/// notification that counts them. With names and texts both hidden, one
/// notification that counts them whatever their number, going on from the
/// `unseen` messages counted since the count last started
/// ([`Notifier::unseen`]). One that counts opens the newest's
/// conversation.
pub fn notices(received: &[NodeEvent], prefs: &Preferences, unseen: usize) -> Vec<Notice> {
    let arrived: Vec<(String, &str, bool, Target)> = received
        .iter()
        .filter_map(|e| {
            let NodeEvent::Received {
                contact,
                group,
                group_key,
                text,
                cut,
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
            Some((from, text.as_str(), *cut, of))
        })
        .collect();
    // The batch is in the order the messages arrived.
    let Some((.., newest)) = arrived.last() else {
        return Vec::new();
    };
    // Nothing shown tells one from another: one that counts them all.
    if !prefs.show_names && !prefs.show_text {
        let count = unseen.saturating_add(arrived.len());
        return vec![notice(Arrival::Unseen(count), newest.clone(), prefs)];
    }
    if arrived.len() > MAX_AT_ONCE {
        let count = arrived.len();
        return vec![notice(Arrival::Many(count), newest.clone(), prefs)];
    }
    arrived
        .into_iter()
        .map(|(from, text, cut, of)| notice(Arrival::One { from, text, cut }, of, prefs))
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

/// What the notifier remembers of the notifications it showed.
#[derive(Default)]
struct Shown {
    /// Each notification remembered (newest last), once: which
    /// conversation it opens. A replaced one's entry goes as the one
    /// replacing it comes.
    entries: VecDeque<(u32, Target)>,
    /// The last notification that counts messages told apart by nothing
    /// ([`Notice::counts`]), while it is remembered and still the one
    /// that counts: the next replaces it.
    counting: Option<u32>,
    /// How many messages the notifications that count have counted since
    /// the count last started: the next goes on from it
    /// ([`Notifier::unseen`]). Set as each is asked for, whether or not
    /// the service shows it: a batch it failed to show, or was not asked
    /// to while it hung, is unseen all the same.
    unseen: usize,
}

impl Shown {
    /// `notice` is about to be shown (or to fail to be): the id it
    /// replaces, 0 for none. One that counts sets the tally now, shown or
    /// not. One that does not count means names or texts are shown now,
    /// and they tell arrivals apart: the last one that counted is left as
    /// it is on the screen (still remembered, for a click or a lock), no
    /// longer to be replaced nor counted on from, so that once both are
    /// hidden again the next one counts afresh in a notification of its
    /// own, rather than counting on past the messages notified meanwhile
    /// into one that may be long stale.
    fn asking(&mut self, notice: &Notice) -> u32 {
        match notice.counts {
            Some(unseen) => {
                self.unseen = unseen;
                self.counting.unwrap_or(0)
            }
            None => {
                self.stop_counting();
                0
            }
        }
    }

    /// The service showed `notice` as `id`, in place of `replaces` (0 for
    /// none).
    fn shown(&mut self, notice: &Notice, replaces: u32, id: u32) {
        // One entry per notification on the screen: the replaced one's
        // goes (the daemon gives back its id, or a new one if it had
        // closed it).
        if replaces != 0 {
            self.entries.retain(|(old, _)| *old != replaces);
        }
        self.entries.push_back((id, notice.of.clone()));
        if notice.counts.is_some() {
            self.counting = Some(id);
        }
        if self.entries.len() > REMEMBERED {
            let forgotten = self.entries.pop_front().map(|(gone, _)| gone);
            if forgotten.is_some() && forgotten == self.counting {
                self.stop_counting();
            }
        }
    }

    /// The user looked at the app: the count starts again, and the
    /// notification that counted, if one is remembered, is forgotten; its
    /// id, to take it off the screen.
    fn seen(&mut self) -> Option<u32> {
        self.unseen = 0;
        let stale = self.counting.take()?;
        self.entries.retain(|(id, _)| *id != stale);
        Some(stale)
    }

    /// No notification counts any longer: the next one that counts shows
    /// as a new one and counts afresh.
    fn stop_counting(&mut self) {
        self.counting = None;
        self.unseen = 0;
    }
}

/// A link to the notification service.
pub struct Notifier {
    conn: Connection,
    /// The notification service's object, for `Notify`.
    service: Proxy<'static>,
    /// What was shown: which conversation each notification opens, and
    /// the one that counts.
    shown: Arc<Mutex<Shown>>,
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
        let shown: Arc<Mutex<Shown>> = Arc::default();
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
                        .entries
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

    /// What is remembered of what was shown.
    fn remembered(&self) -> MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The conversation notification `id` opens: `None` if it is not
    /// remembered (too old, of a deleted contact, or shown before the
    /// profile was locked).
    pub fn opens(&self, id: u32) -> Option<Target> {
        self.remembered()
            .entries
            .iter()
            .find(|(shown, _)| *shown == id)
            .map(|(_, t)| t.clone())
    }

    /// How many messages the notifications that count messages told apart
    /// by nothing (names and texts hidden) counted, those the service did
    /// not show included, for the next one to go on from ([`notices`]):
    /// none once the user looked at the app, and none after the one that
    /// counted was forgotten (at a lock, with the contact it opens
    /// deleted, or once names or texts were shown).
    pub fn unseen(&self) -> usize {
        self.remembered().unseen
    }

    /// The user looked at the app (its window came in front, or a click on
    /// a notification opened it): the notification that counts messages
    /// told apart by nothing, if one is remembered, is taken off the
    /// screen and forgotten (the user has seen what it counted), and the
    /// next one counts afresh in a notification of its own.
    pub fn seen(&self) {
        let stale = self.remembered().seen();
        if let Some(id) = stale {
            self.close(&[id]);
        }
    }

    /// A contact was renamed: notifications already shown of them open
    /// their conversation by the new name.
    pub fn renamed(&self, from: &str, to: &str) {
        for (_, target) in self.remembered().entries.iter_mut() {
            if *target == Target::Contact(from.to_owned()) {
                *target = Target::Contact(to.to_owned());
            }
        }
    }

    /// A contact was deleted: notifications of them still remembered (the
    /// last [`REMEMBERED`]) are taken off the screen (their texts are
    /// gone) and open nothing (a click would otherwise open whoever is
    /// given the name next). A summary that opens their conversation goes
    /// too, though it counted others' messages as well; if it was the one
    /// that counts messages told apart by nothing, the next counts afresh.
    pub fn deleted(&self, name: &str) {
        let gone = Target::Contact(name.to_owned());
        let mut closing = Vec::new();
        {
            let mut shown = self.remembered();
            shown.entries.retain(|(id, target)| {
                let theirs = *target == gone;
                if theirs {
                    closing.push(*id);
                }
                !theirs
            });
            if shown.counting.is_some_and(|id| closing.contains(&id)) {
                shown.stop_counting();
            }
        }
        self.close(&closing);
    }

    /// The profile was locked (or wiped, or its node stopped): every
    /// notification still remembered is taken off the screen (with its
    /// text, if texts were shown) and forgotten, so a click on one opens
    /// nothing. Otherwise it would open the same-named conversation in
    /// whichever profile is unlocked next.
    pub fn locked(&self) {
        let mut shown = self.remembered();
        shown.stop_counting();
        let closing: Vec<u32> = shown.entries.drain(..).map(|(id, _)| id).collect();
        drop(shown);
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

    /// Shows `notice`; its id, or `None` if the service is
    /// [`Notifier::hung`] (then it is not called). One that counts
    /// messages told apart by nothing ([`Notice::counts`]) replaces the
    /// last such one, if it is still remembered: a daemon that closed that
    /// one meanwhile shows a new one. What it counts is tallied whether or
    /// not it is shown, and one that does not count ends the count
    /// (`Shown::asking`). A call that times out also makes the service
    /// hung.
    pub fn show(&self, notice: &Notice) -> zbus::Result<Option<u32>> {
        let replaces = self.remembered().asking(notice);
        if self.hung() {
            return Ok(None);
        }
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
                    replaces,
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
        self.remembered().shown(notice, replaces, id);
        Ok(Some(id))
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
            cut: false,
        }
    }

    #[test]
    fn texts_show_only_when_chosen_and_muted_conversations_not_at_all() {
        let batch = [
            received("Bob", None, "the door code is 4512"),
            received("Ann", Some("Book club"), "chapter 3"),
        ];
        let mut prefs = Preferences::default();
        let n = notices(&batch, &prefs, 0);
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
        let n = notices(&batch, &prefs, 0);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].body, "the door code is 4512");
        assert!(!n[0].transient);
        prefs.muted_contacts = vec!["Bob".into()];
        assert!(notices(&batch, &prefs, 0).is_empty());
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
            0,
        );
        assert_eq!(n[0].title, "Bob<U+202E>");
        assert!(!n[0].body.contains('\n'));
        assert_eq!(escape("<b>&amp;"), "&lt;b&gt;&amp;amp;");
        let long = "x".repeat(1000);
        let whole = notices(&[received("Bob", None, &long)], &prefs, 0);
        assert_eq!(whole[0].body.chars().count(), MAX_BODY + 1);
        // What the node sends of a long text (its start, marked cut)
        // shows as the whole text did: as long, and said to go on.
        let mut start = received("Bob", None, &long[..MAX_BODY]);
        if let NodeEvent::Received { cut, .. } = &mut start {
            *cut = true;
        }
        assert_eq!(notices(&[start], &prefs, 0)[0].body, whole[0].body);
        // So does the start of one that ends in an emoji sequence across
        // the limit: the node leaves the sequence out rather than send
        // 👨 and a joiner shown as `<U+200D>`.
        let family = format!("{}\u{1F468}\u{200D}\u{1F469}", "x".repeat(MAX_BODY - 2));
        let whole = notices(&[received("Bob", None, &family)], &prefs, 0);
        let (text, cut) = strand_node::display::first_chars(&family, MAX_BODY);
        let mut start = received("Bob", None, text);
        if let NodeEvent::Received { cut: was_cut, .. } = &mut start {
            *was_cut = cut;
        }
        assert_eq!(notices(&[start], &prefs, 0)[0].body, whole[0].body);
        assert!(!whole[0].body.contains("<U+200D>"), "{}", whole[0].body);

        let many: Vec<_> = (0..5)
            .map(|i| received("Bob", None, &i.to_string()))
            .collect();
        let n = notices(&many, &prefs, 0);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].body, "5 new messages");
        assert_eq!(n[0].of, Target::Contact("Bob".into()));
        assert!(!n[0].transient);
        let hidden = Preferences::default();
        assert!(notices(&many, &hidden, 0)[0].transient);
    }

    /// With names hidden, no notification names who wrote or the group:
    /// not one for a 1:1 message, not one for a group's, not the count of
    /// many at once, with texts hidden or shown. Each is titled "Strand",
    /// still opens its conversation, and is kept out of the daemon's
    /// history. Before, the title named them whatever the user chose.
    /// (With texts hidden too, the batch is one notification that counts
    /// it, opening the newest's conversation: nothing tells them apart.)
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
        let n = notices(&batch, &prefs, 0);
        assert_eq!(n.len(), 1);
        assert!(!names_someone(&n), "{n:?}");
        assert_eq!(
            (n[0].title.as_str(), n[0].body.as_str()),
            ("Strand", "2 new messages")
        );
        assert_eq!(n[0].of, Target::Group(key_of("Book club")));
        assert!(n[0].transient);

        // Texts shown: the text, still under no name, still transient.
        prefs.show_text = true;
        let n = notices(&batch, &prefs, 0);
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
        let n = notices(&many, &prefs, 0);
        assert_eq!(n.len(), 1);
        assert!(!names_someone(&n), "{n:?}");
        assert_eq!(n[0].body, "5 new messages");
        assert_eq!(n[0].of, Target::Group(key_of("Book club")));
        assert!(n[0].transient);

        // Named again: as before.
        prefs.show_names = true;
        let n = notices(&batch, &prefs, 0);
        assert_eq!(n[1].title, "Ann in Book club");
        assert!(!n[1].transient);
    }

    /// With names and texts both hidden, a notification says nothing that
    /// tells one message from another, so a batch of them, from different
    /// conversations and fewer than [`MAX_AT_ONCE`], is one notification
    /// that counts them and opens the newest's conversation; the next
    /// batch's counts on from the `unseen` the last one counted. Before,
    /// three arrivals made three identical "Strand" / "New message"
    /// notifications. A name or a text shown tells them apart: then each
    /// is its own, as before.
    #[test]
    fn messages_told_apart_by_nothing_are_one_notification_that_counts_them() {
        let batch = [
            received("Bob", None, "one"),
            received("Carol", None, "two"),
            received("Ann", Some("Book club"), "three"),
        ];
        let mut prefs = Preferences {
            show_names: false,
            show_text: false,
            ..Preferences::default()
        };
        let n = notices(&batch, &prefs, 0);
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(
            (n[0].title.as_str(), n[0].body.as_str()),
            ("Strand", "3 new messages")
        );
        assert_eq!(n[0].of, Target::Group(key_of("Book club")));
        assert_eq!(n[0].counts, Some(3));
        assert!(n[0].transient);

        // The next batch goes on from the last one's count; one alone is
        // "New message".
        let next = [received("Bob", None, "four")];
        let n = notices(&next, &prefs, 3);
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(n[0].body, "4 new messages");
        assert_eq!(n[0].counts, Some(4));
        assert_eq!(n[0].of, Target::Contact("Bob".into()));
        let n = notices(&next, &prefs, 0);
        assert_eq!(
            (n[0].title.as_str(), n[0].body.as_str(), n[0].counts),
            ("Strand", "New message", Some(1))
        );
        // Nothing notified (all muted): no notification, not "0" nor the
        // last count again.
        prefs.muted_contacts = vec!["Bob".into()];
        assert!(notices(&next, &prefs, 3).is_empty());
        prefs.muted_contacts.clear();

        // Texts shown, names hidden: the texts tell them apart.
        prefs.show_text = true;
        let n = notices(&batch, &prefs, 3);
        let bodies: Vec<_> = n.iter().map(|n| n.body.as_str()).collect();
        assert_eq!(bodies, ["one", "two", "three"]);
        assert!(n.iter().all(|n| n.title == "Strand" && n.counts.is_none()));
        // Names shown, texts hidden: the names do.
        prefs.show_text = false;
        prefs.show_names = true;
        let n = notices(&batch, &prefs, 3);
        let titles: Vec<_> = n.iter().map(|n| n.title.as_str()).collect();
        assert_eq!(titles, ["Bob", "Carol", "Ann in Book club"]);
        assert!(n.iter().all(|n| n.counts.is_none()));
    }

    /// Preferences under which nothing shown tells arrivals apart.
    fn told_apart_by_nothing() -> Preferences {
        Preferences {
            show_names: false,
            show_text: false,
            ..Preferences::default()
        }
    }

    /// Asks for `notice` as [`Notifier::show`] does, the service showing
    /// it as `id` (`None`: it failed, or was not called): the id it
    /// replaces.
    fn ask(shown: &mut Shown, notice: &Notice, id: Option<u32>) -> u32 {
        let replaces = shown.asking(notice);
        if let Some(id) = id {
            shown.shown(notice, replaces, id);
        }
        replaces
    }

    /// A batch the service did not show (`Notify` failed, or the service
    /// hung and was not asked) is unseen all the same: the next
    /// notification that counts counts it too, whether or not one was
    /// shown before. Before, the tally was kept only once the service had
    /// shown a notification, so after four arrivals the last said "2 new
    /// messages".
    #[test]
    fn a_batch_not_shown_is_counted_by_the_next_notification() {
        let prefs = told_apart_by_nothing();
        let mut shown = Shown::default();
        let next = |text: &str, shown: &Shown| {
            let n = notices(&[received("Bob", None, text)], &prefs, shown.unseen);
            assert_eq!(n.len(), 1, "{n:?}");
            n[0].clone()
        };
        // Not shown, with none shown before.
        let first = next("one", &shown);
        assert_eq!(ask(&mut shown, &first, None), 0);
        let second = next("two", &shown);
        assert_eq!(
            (second.body.as_str(), second.counts),
            ("2 new messages", Some(2))
        );
        assert_eq!(ask(&mut shown, &second, Some(7)), 0);
        // Not shown, in place of one shown.
        let third = next("three", &shown);
        assert_eq!(ask(&mut shown, &third, None), 7);
        let fourth = next("four", &shown);
        assert_eq!(fourth.body, "4 new messages");
        assert_eq!(ask(&mut shown, &fourth, Some(7)), 7);
        assert_eq!(shown.entries.len(), 1);
    }

    /// Names (or texts) shown midway tell arrivals apart: the notification
    /// that counted is left as it is, and once names are hidden again the
    /// next one counts afresh in a notification of its own. Before, the
    /// old one's id and count were kept through it: the next replaced the
    /// old one (stale, maybe long gone) and counted on from it past the
    /// message notified by name in between ("3 new messages" for what was
    /// one new message since).
    #[test]
    fn names_shown_midway_end_the_count() {
        let mut prefs = told_apart_by_nothing();
        let mut shown = Shown::default();
        let batch = [received("Bob", None, "one"), received("Carol", None, "two")];
        let n = notices(&batch, &prefs, shown.unseen);
        assert_eq!(n[0].counts, Some(2));
        assert_eq!(ask(&mut shown, &n[0], Some(7)), 0);

        prefs.show_names = true;
        let n = notices(&[received("Bob", None, "three")], &prefs, shown.unseen);
        assert_eq!((n[0].title.as_str(), n[0].counts), ("Bob", None));
        assert_eq!(ask(&mut shown, &n[0], Some(8)), 0);

        prefs.show_names = false;
        let n = notices(&[received("Carol", None, "four")], &prefs, shown.unseen);
        assert_eq!((n[0].body.as_str(), n[0].counts), ("New message", Some(1)));
        assert_eq!(ask(&mut shown, &n[0], Some(9)), 0);
        // The one left on the screen is still remembered: a click on it
        // opens, a lock closes it.
        let remembered: Vec<u32> = shown.entries.iter().map(|(id, _)| *id).collect();
        assert_eq!(remembered, [7, 8, 9]);
    }

    /// The user looked at the app: the notification that counted is the
    /// one to take off the screen, once, and is forgotten; the next counts
    /// afresh in one of its own. Another notification stays remembered.
    /// Before, it was kept and replaced by the next.
    #[test]
    fn looking_at_the_app_takes_the_notification_that_counts_away() {
        let named = Preferences::default();
        let prefs = told_apart_by_nothing();
        let mut shown = Shown::default();
        let n = notices(&[received("Ann", None, "by name")], &named, shown.unseen);
        ask(&mut shown, &n[0], Some(6));
        let n = notices(&[received("Bob", None, "one")], &prefs, shown.unseen);
        ask(&mut shown, &n[0], Some(7));

        assert_eq!(shown.seen(), Some(7));
        assert_eq!(shown.seen(), None);
        let remembered: Vec<u32> = shown.entries.iter().map(|(id, _)| *id).collect();
        assert_eq!(remembered, [6]);
        let n = notices(&[received("Bob", None, "two")], &prefs, shown.unseen);
        assert_eq!(n[0].body, "New message");
        assert_eq!(ask(&mut shown, &n[0], Some(8)), 0);
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
