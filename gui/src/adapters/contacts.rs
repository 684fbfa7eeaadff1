//! The contact list: newest conversation first, with unread counts and how
//! each contact is reachable now.

use std::rc::Rc;

use slint::{ComponentHandle, Model, ModelRc, VecModel};
use strand_node::runtime::api::{ContactView, Reply, Request};
use strand_node::ContactSummary;
use strand_node::Seen;

use crate::backend::{Backend, Core};
use crate::format::{self, Clock};
use crate::{AppAdapter, AppWindow, ContactItem, ContactsAdapter};

pub(crate) fn connect(ui: &AppWindow, backend: &Backend) {
    let adapter = ui.global::<ContactsAdapter>();
    adapter.set_contacts(ModelRc::from(Rc::new(VecModel::<ContactItem>::default())));
    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_open(move |index| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<ContactsAdapter>();
        let Some(item) = usize::try_from(index)
            .ok()
            .and_then(|i| a.get_contacts().row_data(i))
        else {
            return;
        };
        a.set_current(index);
        let name = item.name.to_string();
        b.job(move |core| super::conversation::open(core, name));
    });
    // The phone layout's Back: the list again, and nothing open that
    // would be marked read or keep the camera on.
    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_close(move || {
        let Some(ui) = weak.upgrade() else { return };
        super::camera::stop(&ui);
        let c = ui.global::<crate::ConversationAdapter>();
        c.set_verify_open(false);
        c.set_details_open(false);
        c.set_attaching(false);
        c.set_exporting(false);
        ui.global::<ContactsAdapter>().set_current(-1);
        b.job(|core| {
            core.open = None;
            refresh(core);
        });
    });
}

/// "LAN · connected", "Seen 5 min ago via LAN", or "Not seen since
/// Strand started".
pub(crate) fn reach(seen: Option<&Seen>, clock: &Clock) -> (String, bool) {
    match seen {
        Some(s) if s.connected => (format!("{} · connected", format::link_name(&s.link)), true),
        Some(s) => (
            format!(
                "Seen {} via {}",
                clock.ago(s.at),
                format::link_name(&s.link)
            ),
            false,
        ),
        None => ("Not seen since Strand started".into(), false),
    }
}

/// What the user should know about a contact before trusting the name:
/// verified or not, and whose name it looks like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Trust {
    pub verified: bool,
    pub warning: String,
}

/// [`Trust`] of a contact, as the device shows it.
pub(crate) fn trust(c: &ContactView) -> Trust {
    let warning = match (&c.lookalike, c.verified, c.legacy) {
        _ if c.mailbox => "Mailbox: carries sealed messages, reads nothing".to_owned(),
        (Some(other), _, _) => format!(
            "Name looks like “{}”: check who this is",
            strand_node::display::one_line(other)
        ),
        (None, false, true) => "Added from an old invite: compare safety numbers".to_owned(),
        _ => String::new(),
    };
    Trust {
        verified: c.verified,
        warning,
    }
}

/// Every contact as the device shows it, by name.
pub(crate) fn views(core: &Core) -> Option<Vec<ContactView>> {
    match core.call(Request::Contacts)? {
        Ok(Reply::Contacts { contacts }) => Some(contacts),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("reading the contacts: {e}");
            None
        }
    }
}

fn item(summary: &ContactSummary, trust: Trust, seen: Option<&Seen>, clock: &Clock) -> ContactItem {
    let (reach, online) = reach(seen, clock);
    let (last_text, last_time, last_outgoing) = match &summary.last {
        Some(m) => (format::message_preview(m), clock.short(m.shown), m.outgoing),
        None => ("No messages yet".to_owned(), String::new(), false),
    };
    ContactItem {
        name: summary.name.clone().into(),
        label: strand_node::display::one_line(&summary.name).into(),
        initials: format::initials(&summary.name).into(),
        hue: format::hue(&summary.name),
        last_text: last_text.into(),
        last_time: last_time.into(),
        last_outgoing,
        unread: summary.unread as i32,
        reach: reach.into(),
        online,
        verified: trust.verified,
        warning: trust.warning.into(),
    }
}

/// Re-reads the list (one store read, one status call) and shows it. A
/// status that could not be had leaves the list as it was (the window
/// says why, [`super::network::status`]).
pub(crate) fn refresh(core: &mut Core) {
    if let Some(status) = super::network::status(core) {
        show(core, &status.seen);
    }
}

/// Re-reads the list from the store and shows it with `seen` (from the
/// node's status, which every caller has just read) as each contact's
/// reachability. If either read fails (a node this window is attached
/// to that stopped answering gives up on them,
/// [`strand_node::runtime::control::ANSWER_WITHIN`]), the list stays as
/// it was and the window says it was not refreshed: shown without the
/// contacts' views, it would lose every verified mark and every warning
/// of a name that looks like another's. Once both are read, with the
/// status before them, the refresh worked, and a notice that one had
/// not goes ([`super::network::refreshed`]).
pub(crate) fn show(core: &mut Core, seen: &[Seen]) {
    let mut summaries = match core.call(Request::Summaries) {
        Some(Ok(Reply::Summaries { contacts })) => contacts,
        Some(Err(e)) => return super::network::not_refreshed(core, &e),
        Some(Ok(_)) | None => return,
    };
    let contact_views = match core.call(Request::Contacts) {
        Some(Ok(Reply::Contacts { contacts })) => contacts,
        Some(Err(e)) => return super::network::not_refreshed(core, &e),
        Some(Ok(_)) | None => return,
    };
    let trusts: Vec<(String, Trust)> = contact_views
        .iter()
        .map(|c| (c.name.clone(), trust(c)))
        .collect();
    // Newest conversation first; contacts with no messages after, by name.
    summaries.sort_by(|a, b| {
        let ta = a.last.as_ref().map(|m| m.shown);
        let tb = b.last.as_ref().map(|m| m.shown);
        tb.cmp(&ta).then_with(|| a.name.cmp(&b.name))
    });
    let clock = Clock::now();
    let items: Vec<ContactItem> = summaries
        .iter()
        .map(|s| {
            let t = trusts
                .iter()
                .find(|(n, _)| *n == s.name)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            item(s, t, seen.iter().find(|x| x.contact == s.name), &clock)
        })
        .collect();
    let unread_total: i32 = items.iter().map(|i| i.unread).sum();
    core.unread.0 = unread_total;
    super::badge(core);
    let open = core.open.clone();
    let open_reach = open
        .as_ref()
        .map(|name| reach(seen.iter().find(|x| &x.contact == name), &clock));
    core.ui(move |ui| {
        let a = ui.global::<ContactsAdapter>();
        let current = open
            .as_ref()
            .and_then(|name| items.iter().position(|i| i.name.as_str() == name))
            .map_or(-1, |i| i as i32);
        super::set_vec(a.get_contacts(), items, |m| a.set_contacts(m));
        a.set_current(current);
        ui.global::<AppAdapter>().set_unread_total(unread_total);
        if let Some((text, online)) = open_reach {
            let c = ui.global::<crate::ConversationAdapter>();
            c.set_reach(text.into());
            c.set_online(online);
        }
    });
    super::network::refreshed(core);
}

/// Empties the list (on lock).
pub(crate) fn clear(core: &mut Core) {
    core.ui(|ui| {
        let a = ui.global::<ContactsAdapter>();
        if let Some(vec) = a
            .get_contacts()
            .as_any()
            .downcast_ref::<VecModel<ContactItem>>()
        {
            vec.set_vec(Vec::new());
        }
        a.set_current(-1);
        ui.global::<AppAdapter>().set_unread_total(0);
    });
}
