//! Private groups: the list, the open group (its texts with their authors,
//! read whole: group conversations are not paged yet), its members and the
//! changes the user may make, and a new group.

use std::collections::BTreeSet;

use slint::{ComponentHandle, Model, SharedString};
use strand_node::{GroupAction, GroupSummary};

use strand_node::runtime::api::{Reply, Request, Target, TimerSetting};

use super::conversation::with_group_model;
use super::set_vec;
use crate::backend::{Backend, Core};
use crate::format::{self, Clock};
use crate::{AppAdapter, AppWindow, ChoiceItem, ContactItem, GroupMemberItem, GroupsAdapter};

pub(crate) fn connect(ui: &AppWindow, backend: &Backend) {
    let a = ui.global::<GroupsAdapter>();

    let b = backend.clone();
    let weak = ui.as_weak();
    a.on_open(move |index| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<GroupsAdapter>();
        let Some(item) = usize::try_from(index)
            .ok()
            .and_then(|i| a.get_groups().row_data(i))
        else {
            return;
        };
        a.set_current(index);
        a.set_members_open(false);
        a.set_error(SharedString::new());
        a.set_notice(SharedString::new());
        // A row is the group whose key it holds (two may share a name).
        let key = item.name.to_string();
        b.job(move |core| {
            set_open(core, key);
            reload(core, true);
        });
    });

    // The phone layout's Back: the list again, nothing open to mark read.
    let b = backend.clone();
    let weak = ui.as_weak();
    a.on_close(move || {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<GroupsAdapter>();
        a.set_current(-1);
        a.set_members_open(false);
        a.set_attaching(false);
        a.set_error(SharedString::new());
        b.job(|core| {
            core.open_group = None;
            refresh(core);
        });
    });

    let b = backend.clone();
    a.on_set_muted(move |muted| {
        b.job(move |core| {
            let Some(key) = core.open_group.clone() else {
                return;
            };
            super::settings::change_preferences(
                core,
                strand_node::PreferenceChange::MuteGroup { name: key, muted },
            )
        });
    });

    // As the conversation's: the box empties once the node has taken
    // the text, which goes to the group shown when it was sent.
    let b = backend.clone();
    let weak = ui.as_weak();
    a.on_send(move |text| {
        let Some(ui) = weak.upgrade() else {
            return false;
        };
        let a = ui.global::<GroupsAdapter>();
        let typed = text.to_string();
        if a.get_key().is_empty() || (a.get_sending() && typed == a.get_draft().as_str()) {
            return false;
        }
        let text = typed.trim_end_matches(['\n', '\r']).to_owned();
        if text.trim().is_empty() {
            return false;
        }
        if let Err(e) = strand_node::runtime::api::check_text(&text) {
            a.set_error(format!("Not sent: {e}").into());
            return false;
        }
        a.set_error(SharedString::new());
        a.set_sending(true);
        let group = a.get_key().to_string();
        b.job(move |core| send(core, group, text, typed));
        true
    });

    let b = backend.clone();
    a.on_set_timer(move |index| {
        let lasts = crate::format::TIMERS.get(index as usize).copied().flatten();
        b.job(move |core| {
            let Some(group) = core.open_group.clone() else {
                return;
            };
            let set = lasts.map_or(TimerSetting::Off, TimerSetting::Lasts);
            if let Some(Err(e)) = core.call(Request::Timer {
                of: Target::Group(group),
                set: Some(set),
            }) {
                show_error(core, e.message);
            }
            reload(core, false);
        });
    });

    let b = backend.clone();
    a.on_send_file(move |path| {
        let path = path.trim().to_owned();
        if path.is_empty() {
            return false;
        }
        b.job(move |core| {
            let Some(group) = core.open_group.clone() else {
                return;
            };
            let sent = core.call(Request::SendFile {
                to: Target::Group(group),
                path: super::absolute(&path),
                task: None,
            });
            match sent {
                Some(Err(e)) => show_error(core, format!("Not sent: {e}")),
                _ => reload(core, true),
            }
        });
        true
    });
    let b = backend.clone();
    a.on_save_file(move |id| {
        let id = id.to_string();
        b.job(move |core| {
            if let Some(notice) = super::save_file(core, id) {
                core.ui(move |ui| ui.global::<GroupsAdapter>().set_notice(notice.into()));
            }
        });
    });

    let change = |backend: &Backend, action: fn(String) -> GroupAction| {
        let b = backend.clone();
        move |who: SharedString| {
            let who = who.to_string();
            b.job(move |core| change_group(core, action(who)));
        }
    };
    a.on_add(change(backend, GroupAction::Add));
    // The drop-down's text, not its index: a list changed in place keeps
    // the index, which then names whoever moved into that row.
    let b = backend.clone();
    let weak = ui.as_weak();
    a.on_add_shown(move |shown| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<GroupsAdapter>();
        let rows: Vec<usize> = a
            .get_addable_shown()
            .iter()
            .enumerate()
            .filter(|(_, s)| *s == shown)
            .map(|(i, _)| i)
            .collect();
        match rows[..] {
            [row] => {
                if let Some(who) = a.get_addable().row_data(row) {
                    let who = who.to_string();
                    b.job(move |core| change_group(core, GroupAction::Add(who)));
                }
            }
            _ => a.set_error(
                format!("{shown} is not one contact who can be added: pick again").into(),
            ),
        }
    });
    a.on_remove(change(backend, GroupAction::Remove));
    a.on_make_admin(change(backend, GroupAction::MakeAdmin));
    let b = backend.clone();
    a.on_leave(move || b.job(|core| change_group(core, GroupAction::Leave)));

    // The choice lives in the list's rows (the boxes are bound to them
    // both ways), so it is what the form shows.
    let weak = ui.as_weak();
    a.on_toggle(move |contact, on| {
        let Some(ui) = weak.upgrade() else { return };
        tick(&ui, |row| row.key == contact, on);
    });
    let b = backend.clone();
    let weak = ui.as_weak();
    a.on_create(move |name| {
        let name = name.trim().to_owned();
        let Some(ui) = weak.upgrade() else { return };
        let chosen: Vec<(String, String)> = ui
            .global::<GroupsAdapter>()
            .get_contacts()
            .iter()
            .filter(|c| c.chosen)
            .map(|c| (c.name.to_string(), c.key.to_string()))
            .collect();
        b.job(move |core| {
            // The ticked people by their names now: one renamed since the
            // last refresh is found, and one deleted is not replaced by a
            // newcomer under their name.
            let Some(contacts) = super::contacts::views(core) else {
                return;
            };
            let mut with = Vec::with_capacity(chosen.len());
            for (shown, key) in &chosen {
                match contacts.iter().find(|c| &c.key == key) {
                    Some(c) => with.push(c.name.clone()),
                    None => {
                        let e =
                            format!("\"{shown}\" is no longer a contact: tick the people again");
                        core.ui(move |ui| {
                            ui.global::<GroupsAdapter>().set_create_error(e.into());
                        });
                        return;
                    }
                }
            }
            let result = core.call(Request::GroupCreate {
                name: name.clone(),
                with,
            });
            match result {
                Some(Err(e)) => {
                    let e = e.message;
                    core.ui(move |ui| {
                        ui.global::<GroupsAdapter>().set_create_error(e.into());
                    });
                }
                Some(Ok(Reply::GroupCreated { key, .. })) => {
                    set_open(core, key);
                    refresh(core);
                    reload(core, true);
                    // Last, so that the new group shows once the form goes.
                    core.ui(|ui| {
                        let a = ui.global::<GroupsAdapter>();
                        a.set_creating(false);
                        a.set_create_error(SharedString::new());
                    });
                }
                Some(Ok(_)) | None => {}
            }
        });
    });
    // A fresh form each time it opens.
    let weak = ui.as_weak();
    a.on_new_group(move || {
        if let Some(ui) = weak.upgrade() {
            tick(&ui, |_| true, false);
            let a = ui.global::<GroupsAdapter>();
            a.set_create_error(SharedString::new());
            a.set_creating(true);
        }
    });
}

/// Ticks (`on`) or unticks the new group's form's rows that `which`
/// picks, setting only those that change.
fn tick(ui: &AppWindow, which: impl Fn(&ChoiceItem) -> bool, on: bool) {
    let list = ui.global::<GroupsAdapter>().get_contacts();
    for (i, mut row) in list.iter().enumerate() {
        if which(&row) && row.chosen != on {
            row.chosen = on;
            list.set_row_data(i, row);
        }
    }
}

/// Makes the group whose key ([`strand_node::group_key`]) is `key` the
/// open group, and its header's Mute button say whether it is muted.
fn set_open(core: &mut Core, key: String) {
    let muted = core.preferences.mutes_group(&key);
    core.open_group = Some(key);
    core.ui(move |ui| ui.global::<GroupsAdapter>().set_muted(muted));
}

fn change_group(core: &mut Core, action: GroupAction) {
    let Some(group) = core.open_group.clone() else {
        return;
    };
    let result = core.call(Request::GroupChange { group, action });
    match result {
        Some(Err(e)) => show_error(core, e.message),
        _ => {
            core.ui(|ui| ui.global::<GroupsAdapter>().set_error(SharedString::new()));
            refresh(core);
            reload(core, false);
        }
    }
}

/// Sends `text` to `group`; `typed` is what the box held (see
/// [`super::conversation`]'s `send`).
fn send(core: &mut Core, group: String, text: String, typed: String) {
    let result = core.call(Request::Send {
        to: Target::Group(group.clone()),
        text,
    });
    let taken = matches!(result, Some(Ok(_)));
    let error = match result {
        Some(Err(e)) => format!("Not sent: {}", e.message),
        _ => String::new(),
    };
    let open = core.open_group.as_ref() == Some(&group);
    core.ui(move |ui| {
        let a = ui.global::<GroupsAdapter>();
        a.set_sending(false);
        let now = a.get_draft();
        if taken && super::drafts::GROUPS.with_borrow_mut(|d| d.sent(&group, &typed, &now)) {
            a.set_draft(SharedString::new());
        }
        if !error.is_empty() && a.get_key() == group.as_str() {
            a.set_error(error.into());
        }
    });
    if taken && open {
        reload(core, true);
    }
}

/// The open group is `key` (`""`: none): the message box shows its draft
/// ([`super::drafts`]).
fn show_group(a: &GroupsAdapter<'_>, key: &str) {
    let open = (!key.is_empty()).then_some(key);
    let typed = a.get_draft();
    if let Some(draft) = super::drafts::GROUPS.with_borrow_mut(|d| d.open(open, &typed)) {
        a.set_draft(draft.into());
    }
    a.set_key(key.into());
}

fn show_error(core: &Core, e: String) {
    core.ui(move |ui| ui.global::<GroupsAdapter>().set_error(e.into()));
}

/// A group's row: kept by its key, shown by its name made safe, and by
/// its id too where its name could be taken for another group's
/// ([`GroupSummary::alike`]; the node's one rule, which notices follow).
fn item(g: &GroupSummary, clock: &Clock) -> ContactItem {
    let (last_text, last_time, last_outgoing) = match &g.last {
        Some(m) => (
            if m.message.outgoing {
                format::message_preview(&m.message)
            } else {
                format!(
                    "{}: {}",
                    strand_node::display::one_line(&m.author),
                    format::message_preview(&m.message)
                )
            },
            clock.short(m.message.shown),
            m.message.outgoing,
        ),
        None => ("No messages yet".to_owned(), String::new(), false),
    };
    let reach = if let (true, Some(why)) = (g.member, &g.blocked) {
        format!("{} members · {why}", g.members)
    } else if g.member {
        format!(
            "{} members{}",
            g.members,
            if g.admin { " · admin" } else { "" }
        )
    } else {
        "You are no longer a member".to_owned()
    };
    let mut label = strand_node::display::one_line(&g.name);
    if g.alike {
        label = format!("{label} · {}", g.id);
    }
    ContactItem {
        name: g.key.clone().into(),
        initials: format::initials(&strand_node::display::visible(&g.name)).into(),
        hue: format::hue(&g.name),
        last_text: last_text.into(),
        last_time: last_time.into(),
        last_outgoing,
        unread: g.unread as i32,
        reach: reach.into(),
        online: false,
        verified: false,
        warning: SharedString::new(),
        label: label.into(),
    }
}

/// The new group's form's rows for `contacts` (names and keys, as listed
/// now), ticked as the rows shown (`shown`) were: by key, so a contact
/// renamed while the form is open stays ticked under the new name, and
/// a contact deleted and another added under the same name (from the
/// terminal, between two refreshes) ticks no one the user did not tick.
fn choices(
    shown: impl Iterator<Item = ChoiceItem>,
    contacts: Vec<(String, String)>,
) -> Vec<ChoiceItem> {
    let ticked: BTreeSet<SharedString> = shown.filter(|c| c.chosen).map(|c| c.key).collect();
    contacts
        .into_iter()
        .map(|(name, key)| {
            let key = SharedString::from(key);
            ChoiceItem {
                chosen: ticked.contains(&key),
                name: strand_node::display::one_line(&name).into(),
                key,
            }
        })
        .collect()
}

/// Re-reads the group list and shows it, with the contacts a new group
/// can be made of.
pub(crate) fn refresh(core: &mut Core) {
    let Some(groups) = summaries(core) else {
        return;
    };
    // Unread, the contacts stay as they are.
    let contacts: Option<Vec<(String, String)>> =
        super::contacts::views(core).map(|v| v.into_iter().map(|c| (c.name, c.key)).collect());
    let clock = Clock::now();
    let mut groups = groups;
    groups.sort_by(|a, b| {
        let ta = a.last.as_ref().map(|m| m.message.shown);
        let tb = b.last.as_ref().map(|m| m.message.shown);
        tb.cmp(&ta).then_with(|| a.name.cmp(&b.name))
    });
    let items: Vec<ContactItem> = groups.iter().map(|g| item(g, &clock)).collect();
    let unread: i32 = items.iter().map(|i| i.unread).sum();
    core.unread.1 = unread;
    super::badge(core);
    let open = core.open_group.clone();
    core.ui(move |ui| {
        let a = ui.global::<GroupsAdapter>();
        let current = open
            .as_ref()
            .and_then(|n| items.iter().position(|i| i.name.as_str() == n))
            .map_or(-1, |i| i as i32);
        set_vec(a.get_groups(), items, |m| a.set_groups(m));
        a.set_current(current);
        if let Some(contacts) = contacts {
            let rows = choices(a.get_contacts().iter(), contacts);
            set_vec(a.get_contacts(), rows, |m| a.set_contacts(m));
        }
        ui.global::<AppAdapter>().set_unread_groups(unread);
    });
}

/// Re-reads the open group (texts, members, who can be added) and marks it
/// read while the groups screen shows it; `scroll` asks the view to go to
/// the newest text.
pub(crate) fn reload(core: &mut Core, scroll: bool) {
    let Some(group) = core.open_group.clone() else {
        return;
    };
    let visible = core.groups_visible;
    core.generation += 1;
    let generation = core.generation;
    // Positions of every text, and the newest page read with them; the
    // rest is read as it scrolls into view.
    let messages = match super::conversation::list(core, Target::Group(group.clone()), visible) {
        Some(Ok(listed)) => listed,
        Some(Err(e)) => return show_error(core, e.message),
        None => return,
    };
    let members = match core.call(Request::GroupMembers {
        group: group.clone(),
    }) {
        Some(Ok(Reply::Members { members })) => members,
        Some(Err(e)) => return show_error(core, e.message),
        _ => return,
    };
    let Some(summary) = summaries(core)
        .unwrap_or_default()
        .into_iter()
        .find(|g| g.key == group)
    else {
        return;
    };
    // Contacts in the group: the member list names them by the user's
    // word (verified). Another member may be listed under a contact's
    // name (one who chose it, or a contact deleted since): that does not
    // make the contact a member.
    let in_group: BTreeSet<String> = members
        .iter()
        .filter(|m| m.verified && !m.me)
        .map(|m| m.name.clone())
        .collect();
    let addable: Vec<String> = super::contacts::views(core)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.name)
        .filter(|n| !in_group.contains(n))
        .collect();
    let creator = members.iter().any(|m| m.me && m.creator);
    let members: Vec<GroupMemberItem> = members.iter().map(member_item).collect();
    let line = if let (true, Some(why)) = (summary.member, &summary.blocked) {
        format!("{} members · cannot write now: {why}", summary.members)
    } else if summary.member {
        format!(
            "{} members{}",
            summary.members,
            if summary.admin {
                " · you are an admin"
            } else {
                ""
            }
        )
    } else {
        "You are no longer a member".to_owned()
    };
    core.ui(move |ui| {
        let a = ui.global::<GroupsAdapter>();
        let group_key = group.clone();
        // As its row shows it: with its id where the name could be
        // taken for another group's.
        let mut name = strand_node::display::one_line(&summary.name);
        if summary.alike {
            name = format!("{name} · {}", summary.id);
        }
        show_group(&a, &group_key);
        a.set_name(name.into());
        a.set_summary(line.into());
        a.set_member(summary.member && summary.blocked.is_none());
        a.set_admin(summary.admin);
        a.set_creator(creator);
        let (keys, pages, timer) = messages;
        a.set_timer(timer);
        with_group_model(&ui, |m| m.reset(group_key, generation, keys, pages));
        set_vec(a.get_members(), members, |m| a.set_members(m));
        let shown: Vec<SharedString> = addable
            .iter()
            .map(|n| strand_node::display::one_line(n).into())
            .collect();
        let addable: Vec<SharedString> = addable.into_iter().map(Into::into).collect();
        set_vec(a.get_addable(), addable, |m| a.set_addable(m));
        set_vec(a.get_addable_shown(), shown, |m| a.set_addable_shown(m));
        if scroll {
            a.set_scroll_to_end(a.get_scroll_to_end() + 1);
        }
    });
    if visible {
        refresh(core);
    }
}

/// Every group, as the device lists them; `None` while locked or if that
/// failed (logged).
fn summaries(core: &Core) -> Option<Vec<GroupSummary>> {
    match core.call(Request::GroupSummaries)? {
        Ok(Reply::GroupSummaries { mut groups }) => {
            alike_by_name_too(&mut groups);
            Some(groups)
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("reading the groups: {e}");
            None
        }
    }
}

/// The node's rule for a name shown with its id
/// ([`strand_node::names_alike`]), applied to the list here too: a
/// `strand run` from before [`GroupSummary::alike`] (still running after
/// the app was upgraded, as a service does until it restarts) sends none,
/// and two groups with one name would then show no id. A newer node's
/// list is marked so already: the same rule over the same names.
fn alike_by_name_too(groups: &mut [GroupSummary]) {
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    let alike = strand_node::names_alike(&names);
    for (g, alike) in groups.iter_mut().zip(alike) {
        g.alike |= alike;
    }
}

/// Empties the screen (on lock).
pub(crate) fn clear(core: &mut Core) {
    core.open_group = None;
    core.ui(|ui| {
        let a = ui.global::<GroupsAdapter>();
        show_group(&a, "");
        a.set_sending(false);
        set_vec(a.get_groups(), Vec::new(), |m| a.set_groups(m));
        with_group_model(&ui, |m| m.clear());
        set_vec(a.get_members(), Vec::new(), |m| a.set_members(m));
        a.set_current(-1);
        a.set_members_open(false);
        a.set_notice(SharedString::new());
        ui.global::<AppAdapter>().set_unread_groups(0);
    });
}

/// A member's row: the name shown safely, and the name itself kept to
/// remove them or make them an admin by.
fn member_item(m: &strand_node::GroupMember) -> GroupMemberItem {
    GroupMemberItem {
        me: m.me,
        note: match &m.chosen {
            _ if !m.verified => "unverified: not your contact".into(),
            Some(c) if *c != m.name => {
                format!("calls themselves “{}”", strand_node::display::one_line(c)).into()
            }
            _ => SharedString::new(),
        },
        name: if m.me {
            "You".into()
        } else {
            strand_node::display::one_line(&m.name).into()
        },
        key: m.name.as_str().into(),
        verified: m.verified,
        admin: m.admin,
        creator: m.creator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The form's ticks follow the person: Bob renamed Robert stays
    /// ticked, and a newcomer named as Carol was, with another key, is not
    /// (by name, as before, the newcomer was ticked and the renamed Bob
    /// was not).
    #[test]
    fn the_new_group_s_ticks_stay_with_the_person() {
        let row = |name: &str, key: &str, chosen: bool| ChoiceItem {
            name: name.into(),
            key: key.into(),
            chosen,
        };
        let shown = vec![
            row("Bob", "b0b", true),
            row("Carol", "ca7", true),
            row("Dave", "da5", false),
        ];
        let now = vec![
            ("Carol".to_owned(), "0ff".to_owned()),
            ("Dave".to_owned(), "da5".to_owned()),
            ("Robert".to_owned(), "b0b".to_owned()),
        ];
        let rows = choices(shown.into_iter(), now);
        assert_eq!(
            rows,
            [
                row("Carol", "0ff", false),
                row("Dave", "da5", false),
                row("Robert", "b0b", true),
            ]
        );
    }

    /// A group's name is its creator's choice: the list shows it made
    /// safe (with the id beside it when another group has it too), and
    /// keeps the group's key to find it by.
    #[test]
    fn a_group_is_shown_by_its_name_safely_and_kept_by_its_key() {
        let g = GroupSummary {
            name: "Family\u{202e}lanoisseforp".into(),
            id: "0123abcd".into(),
            key: "0123abcd".repeat(8),
            alike: false,
            members: 3,
            member: true,
            blocked: None,
            admin: false,
            unread: 0,
            last: None,
        };
        let shown = item(&g, &Clock::at(0));
        assert_eq!(shown.name.as_str(), g.key);
        assert_eq!(shown.label.as_str(), "Family<U+202E>lanoisseforp");
        let shared = item(
            &GroupSummary {
                alike: true,
                ..g.clone()
            },
            &Clock::at(0),
        );
        assert_eq!(
            shared.label.as_str(),
            "Family<U+202E>lanoisseforp · 0123abcd"
        );
        assert_eq!(shown.initials.as_str(), "F");
        let odd = GroupSummary {
            name: "\u{202e}\u{200b}ops team".into(),
            ..g
        };
        assert_eq!(item(&odd, &Clock::at(0)).initials.as_str(), "OT");
    }

    /// Groups as a `strand run` from before the node's `alike` sends
    /// them (no `alike`): two with one name still show their ids; one
    /// with a name of its own shows none. Before, both desks read "Desk".
    #[test]
    fn an_older_node_s_groups_with_one_name_show_their_ids() {
        let older = r#"[
            {"name":"Desk","id":"0123abcd","key":"0123abcd","members":2,"member":true,"blocked":null,"admin":false,"unread":0,"last":null},
            {"name":"Desk","id":"4567ef01","key":"4567ef01","members":2,"member":true,"blocked":null,"admin":false,"unread":0,"last":null},
            {"name":"Plans","id":"89abcdef","key":"89abcdef","members":2,"member":true,"blocked":null,"admin":false,"unread":0,"last":null},
            {"name":"Pl\u0430ns","id":"cdef0123","key":"cdef0123","members":2,"member":true,"blocked":null,"admin":false,"unread":0,"last":null},
            {"name":"Garden","id":"fedcba98","key":"fedcba98","members":2,"member":true,"blocked":null,"admin":false,"unread":0,"last":null}
        ]"#;
        let mut groups: Vec<GroupSummary> = serde_json::from_str(older).unwrap();
        assert!(groups.iter().all(|g| !g.alike));
        alike_by_name_too(&mut groups);
        let labels: Vec<String> = groups
            .iter()
            .map(|g| item(g, &Clock::at(0)).label.to_string())
            .collect();
        assert_eq!(
            labels,
            [
                "Desk · 0123abcd",
                "Desk · 4567ef01",
                "Plans · 89abcdef",
                "Pl\u{430}ns · cdef0123",
                "Garden"
            ]
        );
    }

    /// A member's name may hold what the screen shows as `<U+…>` (an
    /// admin adds members under any stored name): the buttons act on the
    /// member, not on another whose name is the shown text.
    #[test]
    fn a_members_buttons_name_the_member_not_the_shown_text() {
        let m = strand_node::GroupMember {
            name: "\u{202e}X".into(),
            verified: false,
            chosen: None,
            me: false,
            admin: false,
            creator: false,
        };
        let row = member_item(&m);
        assert_eq!(row.name.as_str(), "<U+202E>X");
        assert_eq!(row.key.as_str(), "\u{202e}X");
    }
}
