//! The Rust half of each screen's global adapter (`ui/globals.slint`):
//! callbacks become core-thread jobs; their results come back to the
//! adapter's properties on the UI thread.

pub mod add_contact;
pub mod camera;
pub mod contacts;
pub mod conversation;
pub(crate) mod drafts;
pub mod groups;
pub mod network;
pub mod onboarding;
pub mod picker;
pub mod settings;

use slint::ComponentHandle;
use strand_node::BudgetUnit;

use crate::backend::{Backend, Changes, Core};
use crate::{AppAdapter, AppWindow, Screen, SettingsAdapter};

/// Shows `items` in a list model: in place if it is a `VecModel` (so the
/// view keeps its scroll position), else through `set` with a new one.
/// With as many rows as before, only rows that changed are set: the rest
/// keep their items on screen (hover, a press under way), where a whole
/// new list makes every item anew.
pub(crate) fn set_vec<T: Clone + PartialEq + 'static>(
    model: slint::ModelRc<T>,
    items: Vec<T>,
    set: impl FnOnce(slint::ModelRc<T>),
) {
    set_vec_by(model, items, T::eq, set)
}

/// [`set_vec`], with rows the same if `same` says so (rows that hold a
/// model of their own are new objects each time).
pub(crate) fn set_vec_by<T: Clone + 'static>(
    model: slint::ModelRc<T>,
    items: Vec<T>,
    same: impl Fn(&T, &T) -> bool,
    set: impl FnOnce(slint::ModelRc<T>),
) {
    use slint::Model;
    match model.as_any().downcast_ref::<slint::VecModel<T>>() {
        Some(vec) if vec.row_count() == items.len() => {
            for (i, item) in items.into_iter().enumerate() {
                if !vec.row_data(i).is_some_and(|held| same(&held, &item)) {
                    vec.set_row_data(i, item);
                }
            }
        }
        Some(vec) => vec.set_vec(items),
        None => set(slint::ModelRc::from(std::rc::Rc::new(
            slint::VecModel::from(items),
        ))),
    }
}

/// A path the user typed, made absolute against the app's working
/// directory (the device takes absolute paths).
pub(crate) fn absolute(path: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(path);
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Connects every adapter's callbacks. `downloads` is the app's downloads
/// folder ([`crate::Options::downloads`]), for what the UI thread offers
/// without asking the core thread.
pub(crate) fn connect(ui: &AppWindow, backend: &Backend, downloads: &std::path::Path) {
    onboarding::connect(ui, backend);
    contacts::connect(ui, backend);
    conversation::connect(ui, backend, downloads);
    groups::connect(ui, backend);
    add_contact::connect(ui, backend);
    camera::connect(ui, backend);
    network::connect(ui, backend);
    settings::connect(ui, backend);
    picker::connect(ui);

    let b = backend.clone();
    let weak = ui.as_weak();
    ui.global::<AppAdapter>().on_navigate(move |screen| {
        let Some(ui) = weak.upgrade() else { return };
        if screen != ui.global::<AppAdapter>().get_screen() {
            camera::stop(&ui);
        }
        ui.global::<AppAdapter>().set_screen(screen);
        let chats = screen == Screen::Chats;
        b.job(move |core| {
            core.chats_visible = chats;
            core.groups_visible = screen == Screen::Groups;
            match screen {
                // Back on a conversation: what it shows is now read.
                Screen::Chats => {
                    if core.open.is_some() {
                        conversation::reload(core, false);
                    }
                    contacts::refresh(core);
                }
                Screen::Network => network::refresh(core),
                Screen::Groups => {
                    groups::refresh(core);
                    groups::reload(core, false);
                }
                _ => {}
            }
        });
    });
}

/// After unlocking: fill every screen and show the chats.
pub(crate) fn unlocked(core: &mut Core) {
    let Some(Ok(strand_node::runtime::api::Reply::Status(status))) =
        core.call(strand_node::runtime::api::Request::Status)
    else {
        return;
    };
    core.chats_visible = true;
    core.groups_visible = false;
    settings::load_preferences(core);
    groups::refresh(core);
    let path = status.profile.clone();
    show_name(core, &status);
    core.ui(move |ui| {
        ui.global::<SettingsAdapter>().set_profile_path(path.into());
        ui.global::<AppAdapter>().set_screen(Screen::Chats);
    });
    refresh_lists(core);
}

/// The user's name where the screens show it, why it must change if it
/// breaks today's rules, and the invite made again (it carries the
/// name): at unlock, after a rename here, and when a refresh finds
/// another name or problem than the one shown (a rename from the CLI).
pub(crate) fn show_name(core: &mut Core, status: &strand_node::Status) {
    let shown = (status.name.clone(), status.name_warning());
    if core.name_shown.as_ref() == Some(&shown) {
        return;
    }
    let (name, warning) = shown.clone();
    core.name_shown = Some(shown);
    core.ui(move |ui| settings::show(&ui, &name, warning.as_deref()));
    // An invite that failed for another reason is asked for again at the
    // next refresh.
    if !add_contact::refresh_invite(core) {
        core.name_shown = None;
    }
}

/// The node's events ended while it was this window's: it stopped (the
/// node this window was attached to was stopped, or this window's own
/// failed).
pub(crate) fn node_gone(core: &mut Core) {
    let message = if core.attached() {
        "The Strand node running on this profile stopped. Unlock to open the profile here."
    } else {
        "Syncing stopped. Unlock to start again."
    };
    settings::closed(core, message.to_owned());
}

/// Saves the file message `id` names to the downloads folder
/// ([`crate::Options::downloads`]): what the conversation or group screen
/// says of it, or nothing if the node is gone.
pub(crate) fn save_file(core: &Core, id: String) -> Option<String> {
    let dir = core.options.downloads.clone();
    match core.call(strand_node::runtime::api::Request::Save {
        id,
        dir,
        task: None,
    }) {
        Some(Ok(strand_node::runtime::api::Reply::Saved { path })) => {
            Some(format!("Saved to {}", path.display()))
        }
        Some(Err(e)) => Some(format!("Not saved: {e}")),
        Some(Ok(_)) | None => None,
    }
}

/// What the app says when a contact's (or a group member's) messages are
/// over the budget this device keeps for them: `budget` counts bytes, or,
/// for a contact's welcomes into groups, the welcomes or their groups'
/// members, as `unit` says. The names are others' words (a member's may
/// be any admin's), shown safely.
pub(crate) fn budget_notice(
    contact: &str,
    group: Option<&str>,
    budget: u64,
    unit: BudgetUnit,
) -> String {
    let who = strand_node::display::one_line(contact);
    let whose = match group {
        Some(g) => format!("{who} in {}", strand_node::display::one_line(g)),
        None => who,
    };
    let n = crate::format::count(budget);
    let (done, what) = match unit {
        BudgetUnit::Bytes => ("sent", crate::format::bytes(budget)),
        BudgetUnit::Welcomes => ("sent", format!("{n} welcomes into groups")),
        BudgetUnit::Members => ("welcomed you into groups with", format!("{n} members")),
    };
    format!(
        "{whose} has {done} more than the {what} this device keeps for them; the rest waits until there is room."
    )
}

/// Node events, gathered: refresh what they touch.
pub(crate) fn on_changes(core: &mut Core, changes: Changes) {
    if !core.unlocked() {
        return;
    }
    if let Some(notice) = changes.over_budget.clone() {
        core.ui(move |ui| {
            ui.global::<crate::AppAdapter>().set_notice(notice.into());
        });
    }
    // A contact renamed elsewhere (the CLI, another window): the open
    // conversation follows them, and mutes are read again by name.
    if !changes.renamed.is_empty() {
        let mut moved = false;
        for (from, to) in &changes.renamed {
            if core.open.as_ref() == Some(from) {
                core.open = Some(to.clone());
                moved = true;
            }
        }
        // Their drafts follow them (before the open one is shown again:
        // the box holds that one's).
        let renamed = changes.renamed.clone();
        core.ui(move |_| {
            drafts::CONTACTS.with_borrow_mut(|d| {
                for (from, to) in &renamed {
                    d.renamed(from, to);
                }
            })
        });
        if let (true, Some(open)) = (moved, core.open.clone()) {
            core.ui(move |ui| {
                conversation::show_contact(&ui.global::<crate::ConversationAdapter>(), &open)
            });
            conversation::reload(core, false);
        }
        settings::load_preferences(core);
        if let Some(notifier) = core.notifier_connected() {
            for (from, to) in &changes.renamed {
                notifier.renamed(from, to);
            }
        }
    }
    // A contact deleted elsewhere (the CLI, another window): their
    // conversation closes. Notifications shown of them open nothing.
    if core
        .open
        .as_ref()
        .is_some_and(|o| changes.deleted.contains(o))
    {
        conversation::close(core);
    }
    // Their drafts go with them.
    if !changes.deleted.is_empty() {
        let deleted = changes.deleted.clone();
        core.ui(move |ui| {
            let mut open = false;
            drafts::CONTACTS.with_borrow_mut(|d| {
                for name in &deleted {
                    open |= d.forget(name);
                }
            });
            if open {
                ui.global::<crate::ConversationAdapter>()
                    .set_draft("".into());
            }
        });
    }
    if let Some(notifier) = core.notifier_connected() {
        for name in &changes.deleted {
            notifier.deleted(name);
        }
    }
    if !changes.deleted.is_empty() {
        // Their mute went with them.
        settings::load_preferences(core);
    }
    // What arrives while the window is not in front is not read: the
    // conversation shows it, unread, until the window comes in front
    // ([`in_front`]).
    let shown = (core.chats_visible, core.groups_visible);
    if !core.focused.load(std::sync::atomic::Ordering::Relaxed) {
        (core.chats_visible, core.groups_visible) = (false, false);
    }
    // Only what arrives in the open conversation or group scrolls it to
    // the newest; anything else read again (a file's parts, a message of
    // the user's marked sent or delivered) leaves it where it is.
    if let Some(open) = &core.open {
        if changes.contacts.contains(open) {
            conversation::reload(core, true);
        } else if changes.all || changes.files.contains(open) || changes.marks.contains(open) {
            conversation::reload(core, false);
        }
    }
    if changes.all || changes.groups {
        groups::refresh(core);
        let scroll = core
            .open_group
            .as_ref()
            .is_some_and(|g| changes.group_texts.contains(g));
        groups::reload(core, scroll);
    } else if core
        .open_group
        .as_ref()
        .is_some_and(|g| changes.group_files.contains(g))
    {
        groups::reload(core, false);
    }
    (core.chats_visible, core.groups_visible) = shown;
    refresh_lists(core);
    notify(core, &changes.received);
}

/// The window came in front: the conversation or group on screen is
/// read now.
pub(crate) fn in_front(core: &mut Core) {
    if !core.unlocked() {
        return;
    }
    if core.chats_visible && core.open.is_some() {
        conversation::reload(core, false);
    }
    if core.groups_visible && core.open_group.is_some() {
        groups::reload(core, false);
    }
    refresh_lists(core);
    // The user sees what arrived: the next notification that counts
    // messages counts afresh.
    if let Some(notifier) = core.notifier_connected() {
        notifier.seen();
    }
}

/// Notifications for what arrived, unless the window is in front.
fn notify(core: &mut Core, received: &[strand_node::NodeEvent]) {
    use std::sync::atomic::Ordering;
    use strand_node::runtime::api::{Reply, Request};
    if received.is_empty() || core.focused.load(Ordering::Relaxed) {
        return;
    }
    let Some(Ok(Reply::Preferences(prefs))) = core.call(Request::Preferences { set: Vec::new() })
    else {
        return;
    };
    // What the notification that counts messages (names and texts
    // hidden) counted so far: none before the notifier connects.
    let unseen = core.notifier_connected().map_or(0, |n| n.unseen());
    let notices = crate::notify::notices(received, &prefs, unseen);
    if notices.is_empty() {
        return;
    }
    let Some(notifier) = core.notifier() else {
        return;
    };
    for n in &notices {
        // A service that did not answer in time lately is not asked
        // (`show` returns at once, the log said so): each call would hold
        // the core thread up as long again. The unread counts still show
        // what arrived, and what a notification that counts would have
        // counted is counted by the next one.
        if let Err(e) = notifier.show(n) {
            tracing::warn!("a notification was not shown: {e}");
        }
    }
}

/// The unread count on the app's icon, where the desktop shows one (the
/// launcher entry API: KDE Plasma, Ubuntu's dock, Dash to Dock), when it
/// changed.
pub(crate) fn badge(core: &mut Core) {
    let count = core.unread.0 + core.unread.1;
    if core.badge == Some(count) {
        return;
    }
    core.badge = Some(count);
    if let Some(notifier) = core.notifier() {
        if let Err(e) = notifier.badge(count.max(0) as u32) {
            tracing::debug!("no badge: {e}");
        }
    }
}

/// Reads the QR codes in the photo at `path` apart from the core thread
/// ([`crate::scan::read_file_apart`]), then runs `then` with what it
/// found on the core thread, unless the profile was locked meanwhile
/// (another profile may have a contact of the same name).
pub(crate) fn read_photo(
    core: &Core,
    path: std::path::PathBuf,
    then: impl FnOnce(&mut Core, Result<Vec<String>, String>) + Send + 'static,
) {
    let session = core.session();
    let backend = core.backend.clone();
    crate::scan::read_file_apart(path, move |found| {
        backend.job(move |core| {
            if core.session() == session {
                then(core, found);
            }
        })
    });
}

/// Notification `id` was clicked: the window comes to the front with its
/// conversation open. Looked up here, on the core thread, rather than when
/// the click came, so that one forgotten in between (at a lock, or with
/// its contact deleted) opens nothing.
pub(crate) fn open_from_notification(core: &mut Core, id: u32) {
    use slint::Model;
    use strand_node::runtime::api::Target;
    if !core.unlocked() {
        return;
    }
    let Some(notifier) = core.notifier_connected() else {
        return;
    };
    let Some(target) = notifier.opens(id) else {
        return;
    };
    // The user looks at the app now: the next notification that counts
    // messages counts afresh.
    notifier.seen();
    core.ui(move |ui| {
        let _ = ui.show();
        match target {
            Target::Contact(name) => {
                let contacts = ui.global::<crate::ContactsAdapter>();
                let Some(i) = contacts.get_contacts().iter().position(|c| c.name == name) else {
                    return;
                };
                ui.global::<AppAdapter>().invoke_navigate(Screen::Chats);
                contacts.invoke_open(i as i32);
            }
            Target::Group(name) => {
                let groups = ui.global::<crate::GroupsAdapter>();
                let Some(i) = groups.get_groups().iter().position(|g| g.name == name) else {
                    return;
                };
                ui.global::<AppAdapter>().invoke_navigate(Screen::Groups);
                groups.invoke_open(i as i32);
            }
        }
    });
}

/// The periodic refresh: "seen 5 min ago", transports, traffic.
pub(crate) fn on_tick(core: &mut Core) {
    if !core.unlocked() {
        return;
    }
    refresh_lists(core);
}

/// The contact list and the network screen, from one read of the node's
/// status.
fn refresh_lists(core: &mut Core) {
    if let Some(status) = network::status(core) {
        show_name(core, &status);
        contacts::show(core, &status.seen);
        network::show(core, status);
    }
}

#[cfg(test)]
mod tests {
    use strand_node::BudgetUnit;

    /// A member's name (an admin's choice) and a group's name may hold a
    /// right-to-left override: the notice shows it, and it turns nothing
    /// around ("(unverified)" stays where it is).
    #[test]
    fn the_over_budget_notice_shows_names_safely() {
        let n = super::budget_notice(
            "Eve\u{202e}x (unverified)",
            Some("ops\u{202e}"),
            512 * 1024,
            BudgetUnit::Bytes,
        );
        assert!(!n.contains('\u{202e}'), "{n}");
        assert!(
            n.starts_with(
                "Eve<U+202E>x (unverified) in ops<U+202E> has sent more than the 524.3 kB"
            ),
            "{n}"
        );
        let n = super::budget_notice("Bob", None, 64 << 20, BudgetUnit::Bytes);
        assert!(n.starts_with("Bob has sent more than the 67.1 MB"), "{n}");
    }
}
