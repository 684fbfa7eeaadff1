//! The open conversation. Its rows come from a [`ConversationModel`]: the
//! conversation's positions (48 bytes a message) are held in full so the
//! list knows its length and each row's time and day, but message bodies are
//! read and decrypted on the core thread a page at a time, as rows scroll
//! into view, and at most [`MAX_PAGES`] pages are kept. The open group's
//! texts (the groups screen) come from another such model.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use slint::{ComponentHandle, Model, ModelNotify, ModelRc, ModelTracker, SharedString};
use strand_node::runtime::api::{Failure, Reply, Request, Target, TimerSetting};
use strand_node::{Delivery, GroupMessage, Position, StoredMessage};
use strand_sync::SafetyNumber;

use crate::backend::{Backend, Core};
use crate::format::Clock;
use crate::{AppWindow, ConversationAdapter, GroupsAdapter, MessageItem};

/// Messages read from the store at a time.
pub const PAGE: usize = 50;

// A page the node answers (it refuses more than MAX_PAGE).
const _: () = assert!(PAGE <= strand_node::runtime::api::MAX_PAGE);

/// Pages kept decrypted; the least recently shown goes first.
pub const MAX_PAGES: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct Row {
    at: Position,
    text: SharedString,
    outgoing: bool,
    delivery: Option<Delivery>,
    /// Its author's time and how long before it arrived, if that gap is
    /// large enough to show.
    skew: Option<(u64, u64)>,
    /// When it disappears.
    expires: Option<u64>,
    /// Its id, hex.
    id: SharedString,
    /// For a file: what it is and how much is here.
    file: Option<strand_node::FileInfo>,
    /// An image's preview, decoded when the page was read (not on the UI
    /// thread, and not again each time the row is shown).
    preview: Option<slint::SharedPixelBuffer<slint::Rgba8Pixel>>,
    /// In a group, who wrote it ("" for your own), and whether that name
    /// is another member's word for them.
    author: SharedString,
    unverified: bool,
}

impl From<GroupMessage> for Row {
    fn from(m: GroupMessage) -> Row {
        let author = if m.message.outgoing {
            SharedString::new()
        } else if m.late {
            format!(
                "{} · written after they left the group",
                strand_node::display::one_line(&m.author)
            )
            .into()
        } else {
            strand_node::display::one_line(&m.author).into()
        };
        Row {
            author,
            unverified: !m.verified,
            ..Row::from(m.message)
        }
    }
}

impl From<StoredMessage> for Row {
    fn from(m: StoredMessage) -> Row {
        Row {
            at: m.position(),
            skew: m.skew().map(|gap| (m.key.time, gap)),
            expires: m.expires,
            id: strand_node::hex(&m.key.id.0).into(),
            preview: m
                .file
                .as_ref()
                .and_then(|f| f.preview.as_deref())
                .and_then(crate::format::preview_pixels),
            file: m.file.clone(),
            text: strand_node::display::multiline(&m.text).into(),
            outgoing: m.outgoing,
            delivery: m.delivery,
            author: SharedString::new(),
            unverified: false,
        }
    }
}

struct Inner {
    /// The contact, or the group.
    contact: String,
    generation: u64,
    keys: Vec<Position>,
    /// Page number → (last use, rows).
    pages: BTreeMap<usize, (u64, Vec<Row>)>,
    pending: BTreeSet<usize>,
    uses: u64,
}

/// A conversation's rows, paged in from the store on demand.
pub struct ConversationModel {
    inner: RefCell<Inner>,
    notify: ModelNotify,
    backend: Backend,
    /// A group's texts (the groups screen), not a contact's.
    group: bool,
}

impl ConversationModel {
    pub(crate) fn new(backend: Backend, group: bool) -> ConversationModel {
        ConversationModel {
            inner: RefCell::new(Inner {
                contact: String::new(),
                generation: 0,
                keys: Vec::new(),
                pages: BTreeMap::new(),
                pending: BTreeSet::new(),
                uses: 0,
            }),
            notify: ModelNotify::default(),
            backend,
            group,
        }
    }

    /// Decrypted pages held now (for tests and the benchmark).
    pub fn pages_held(&self) -> usize {
        self.inner.borrow().pages.len()
    }

    /// Forgets the conversation (on lock): no keys, no text.
    pub(crate) fn clear(&self) {
        self.reset(String::new(), u64::MAX, Vec::new(), Vec::new());
    }

    /// Replaces the listing: new keys, and the pages read with them.
    pub(crate) fn reset(
        &self,
        contact: String,
        generation: u64,
        keys: Vec<Position>,
        pages: Vec<(usize, Vec<Row>)>,
    ) {
        {
            let mut inner = self.inner.borrow_mut();
            inner.contact = contact;
            inner.generation = generation;
            inner.keys = keys;
            inner.pages.clear();
            inner.pending.clear();
            for (page, rows) in pages {
                inner.uses += 1;
                let uses = inner.uses;
                inner.pages.insert(page, (uses, rows));
            }
        }
        self.notify.reset();
    }

    /// A page that could not be read: no longer waited for.
    fn unpend(&self, generation: u64, page: usize) {
        let mut inner = self.inner.borrow_mut();
        if inner.generation == generation {
            inner.pending.remove(&page);
        }
    }

    /// A page read on request.
    fn fill(&self, generation: u64, page: usize, rows: Vec<Row>) {
        let range = {
            let mut inner = self.inner.borrow_mut();
            if inner.generation != generation {
                return;
            }
            inner.pending.remove(&page);
            inner.uses += 1;
            let uses = inner.uses;
            inner.pages.insert(page, (uses, rows));
            while inner.pages.len() > MAX_PAGES {
                let oldest = inner
                    .pages
                    .iter()
                    .filter(|(p, _)| **p != page)
                    .min_by_key(|(_, (used, _))| *used)
                    .map(|(p, _)| *p);
                match oldest {
                    Some(p) => inner.pages.remove(&p),
                    None => break,
                };
            }
            let start = page * PAGE;
            start..(start + PAGE).min(inner.keys.len())
        };
        for row in range {
            self.notify.row_changed(row);
        }
    }

    fn request(&self, page: usize, inner: &Inner) {
        let Some(from) = inner.keys.get(page * PAGE).copied() else {
            return;
        };
        let contact = inner.contact.clone();
        let generation = inner.generation;
        let group = self.group;
        self.backend.job(move |core| {
            let of = if group {
                Target::Group(contact)
            } else {
                Target::Contact(contact)
            };
            let Some(Ok(rows)) = read_page(core, of, from) else {
                // Not read (locked, or a store error): asked again when
                // the rows are next shown.
                core.ui(move |ui| {
                    let unpend = |m: &ConversationModel| m.unpend(generation, page);
                    if group {
                        with_group_model(&ui, unpend);
                    } else {
                        with_model(&ui, unpend);
                    }
                });
                return;
            };
            core.ui(move |ui| {
                let fill = |m: &ConversationModel| m.fill(generation, page, rows);
                if group {
                    with_group_model(&ui, fill);
                } else {
                    with_model(&ui, fill);
                }
            });
        });
    }
}

fn state(delivery: Option<Delivery>) -> SharedString {
    delivery.map(|d| d.as_str()).unwrap_or_default().into()
}

impl Model for ConversationModel {
    type Data = MessageItem;

    fn row_count(&self) -> usize {
        self.inner.borrow().keys.len()
    }

    fn row_data(&self, row: usize) -> Option<MessageItem> {
        let mut inner = self.inner.borrow_mut();
        let key = *inner.keys.get(row)?;
        let clock = Clock::now();
        // Days and times are those a message is shown at (its author's
        // time unless it claimed to be older than what was shown, or a
        // contact dated it ahead of its arrival).
        let day = if row == 0 || !Clock::same_day(inner.keys[row - 1].shown, key.shown) {
            clock.day_heading(key.shown)
        } else {
            String::new()
        };
        let mut item = MessageItem {
            text: SharedString::new(),
            time: clock.time(key.shown).into(),
            outgoing: false,
            state: SharedString::new(),
            day: day.into(),
            loaded: false,
            dated: SharedString::new(),
            author: SharedString::new(),
            unverified: false,
            expires: SharedString::new(),
            id: SharedString::new(),
            file_name: SharedString::new(),
            file_detail: SharedString::new(),
            file_ready: false,
            preview: Default::default(),
            has_preview: false,
        };
        let page = row / PAGE;
        inner.uses += 1;
        let uses = inner.uses;
        match inner.pages.get_mut(&page) {
            Some((used, rows)) => {
                *used = uses;
                // Rows are matched by key: a message stored since the keys
                // were listed shifts a page, and the refresh its event
                // triggers will list it.
                if let Ok(i) = rows.binary_search_by(|r| r.at.cmp(&key)) {
                    let r = &rows[i];
                    item.text = r.text.clone();
                    item.outgoing = r.outgoing;
                    item.state = state(r.delivery);
                    item.loaded = true;
                    if let Some((time, gap)) = r.skew {
                        item.dated = clock.dated(time, gap).into();
                    }
                    if let Some(e) = r.expires {
                        item.expires = clock.disappears(e).into();
                    }
                    item.id = r.id.clone();
                    item.author = r.author.clone();
                    item.unverified = r.unverified;
                    if let Some(f) = &r.file {
                        item.file_name = strand_node::display::one_line(&f.name).into();
                        item.file_detail = crate::format::file_detail(f).into();
                        item.file_ready = f.complete();
                        if let Some(pixels) = &r.preview {
                            item.preview = slint::Image::from_rgba8(pixels.clone());
                            item.has_preview = true;
                        }
                    }
                }
            }
            None => {
                if inner.pending.insert(page) {
                    self.request(page, &inner);
                }
            }
        }
        Some(item)
    }

    fn model_tracker(&self) -> &dyn ModelTracker {
        &self.notify
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The page a list opens on (the newest), read with `read` from its
/// first position: what a model is reset with, beside `keys`.
pub(crate) fn newest_page<E>(
    keys: &[Position],
    read: impl FnOnce(&Position) -> Result<Vec<Row>, E>,
) -> Result<Vec<(usize, Vec<Row>)>, E> {
    let Some(last) = keys.len().checked_sub(1) else {
        return Ok(Vec::new());
    };
    let page = last / PAGE;
    Ok(vec![(page, read(&keys[page * PAGE])?)])
}

/// Runs `f` on the window's conversation model.
pub fn with_model<R>(ui: &AppWindow, f: impl FnOnce(&ConversationModel) -> R) -> Option<R> {
    let rc = ui.global::<ConversationAdapter>().get_messages();
    let model = rc.as_any().downcast_ref::<ConversationModel>()?;
    Some(f(model))
}

/// Runs `f` on the window's open-group model (the groups screen's texts).
pub fn with_group_model<R>(ui: &AppWindow, f: impl FnOnce(&ConversationModel) -> R) -> Option<R> {
    let rc = ui.global::<GroupsAdapter>().get_messages();
    let model = rc.as_any().downcast_ref::<ConversationModel>()?;
    Some(f(model))
}

pub(crate) fn connect(ui: &AppWindow, backend: &Backend, downloads: &std::path::Path) {
    let adapter = ui.global::<ConversationAdapter>();
    adapter.set_messages(ModelRc::from(Rc::new(ConversationModel::new(
        backend.clone(),
        false,
    ))));
    ui.global::<GroupsAdapter>()
        .set_messages(ModelRc::from(Rc::new(ConversationModel::new(
            backend.clone(),
            true,
        ))));

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_send(move |text| {
        let Some(ui) = weak.upgrade() else {
            return false;
        };
        let a = ui.global::<ConversationAdapter>();
        // The box empties when the node has taken its text: until then,
        // that text is not sent again (Enter pressed twice).
        let typed = text.to_string();
        if a.get_sending() && typed == a.get_draft().as_str() {
            return false;
        }
        let text = typed.trim_end_matches(['\n', '\r']).to_owned();
        if text.trim().is_empty() {
            return false;
        }
        // The node's rule, checked here too so a refusal shows at once.
        if let Err(e) = strand_node::runtime::api::check_text(&text) {
            a.set_error(format!("Not sent: {e}").into());
            return false;
        }
        a.set_error("".into());
        a.set_sending(true);
        let contact = a.get_contact().to_string();
        b.job(move |core| send(core, contact, text, typed));
        true
    });

    let mb = backend.clone();
    let mweak = ui.as_weak();
    adapter.on_set_muted(move |muted| {
        let Some(ui) = mweak.upgrade() else { return };
        let name = ui.global::<ConversationAdapter>().get_contact().to_string();
        mb.job(move |core| {
            super::settings::change_preferences(
                core,
                strand_node::PreferenceChange::MuteContact { name, muted },
            )
        });
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    let tb = backend.clone();
    let tweak = ui.as_weak();
    adapter.on_set_timer(move |index| {
        let Some(ui) = tweak.upgrade() else { return };
        let contact = ui.global::<ConversationAdapter>().get_contact().to_string();
        let lasts = crate::format::TIMERS.get(index as usize).copied().flatten();
        tb.job(move |core| {
            let set = lasts.map_or(TimerSetting::Off, TimerSetting::Lasts);
            if let Some(Err(e)) = core.call(Request::Timer {
                of: Target::Contact(contact),
                set: Some(set),
            }) {
                let message = format!("Timer not set: {e}");
                core.ui(move |ui| ui.global::<ConversationAdapter>().set_error(message.into()));
            }
            reload(core, false);
        });
    });
    let fb = backend.clone();
    let fweak = ui.as_weak();
    adapter.on_send_file(move |path| {
        let Some(ui) = fweak.upgrade() else {
            return false;
        };
        let path = path.trim().to_owned();
        if path.is_empty() {
            return false;
        }
        let contact = ui.global::<ConversationAdapter>().get_contact().to_string();
        fb.job(move |core| {
            let sent = core.call(Request::SendFile {
                to: Target::Contact(contact),
                path: super::absolute(&path),
                task: None,
            });
            if let Some(Err(e)) = sent {
                let message = format!("Not sent: {e}");
                core.ui(move |ui| ui.global::<ConversationAdapter>().set_error(message.into()));
            } else {
                core.ui(|ui| ui.global::<ConversationAdapter>().set_error("".into()));
                reload(core, true);
            }
        });
        true
    });
    let eweak = ui.as_weak();
    let downloads = downloads.to_path_buf();
    adapter.on_start_export(move || {
        let Some(ui) = eweak.upgrade() else { return };
        let a = ui.global::<ConversationAdapter>();
        a.set_drive_folder(
            drive_folder(&downloads)
                .to_string_lossy()
                .into_owned()
                .into(),
        );
        a.set_exporting(true);
    });
    let eb = backend.clone();
    let eweak = ui.as_weak();
    adapter.on_export_bundle(move |folder| {
        let Some(ui) = eweak.upgrade() else { return };
        let a = ui.global::<ConversationAdapter>();
        let folder = folder.trim();
        if folder.is_empty() {
            a.set_error("Not written: give the folder to write the bundle into.".into());
            return;
        }
        let contact = a.get_contact().to_string();
        // Absolute, as the device takes it: a folder named relative to
        // the app's working directory is the one meant.
        let folder = super::absolute(folder);
        eb.job(move |core| {
            let to = bundle_path(&folder);
            match core.call(Request::Export {
                contact,
                to,
                task: None,
            }) {
                Some(Ok(Reply::Exported(e))) => {
                    let notice = format!(
                        "Wrote {} to {}. Only {} can open it: give it to them to import.",
                        e.summary(),
                        strand_node::display::one_line(&e.path.display().to_string()),
                        strand_node::display::one_line(&e.contact)
                    );
                    core.ui(move |ui| {
                        let a = ui.global::<ConversationAdapter>();
                        a.set_error("".into());
                        a.set_notice(notice.into());
                        a.set_exporting(false);
                    });
                }
                Some(Err(e)) => {
                    let message = format!("Not written: {e}");
                    core.ui(move |ui| ui.global::<ConversationAdapter>().set_error(message.into()));
                }
                Some(Ok(_)) | None => {}
            }
        });
    });
    let sb = backend.clone();
    adapter.on_save_file(move |id| {
        let id = id.to_string();
        sb.job(move |core| {
            if let Some(notice) = super::save_file(core, id) {
                core.ui(move |ui| ui.global::<ConversationAdapter>().set_notice(notice.into()));
            }
        });
    });
    adapter.on_set_verified(move |verified| {
        let Some(ui) = weak.upgrade() else { return };
        let contact = ui.global::<ConversationAdapter>().get_contact().to_string();
        b.job(move |core| set_verified(core, &contact, verified));
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_rename_contact(move |name| {
        let Some(ui) = weak.upgrade() else { return };
        let contact = ui.global::<ConversationAdapter>().get_contact().to_string();
        let name = name.to_string();
        b.job(move |core| rename_contact(core, &contact, &name));
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_delete_contact(move || {
        let Some(ui) = weak.upgrade() else { return };
        let contact = ui.global::<ConversationAdapter>().get_contact().to_string();
        b.job(move |core| delete_contact(core, &contact));
    });

    let b = backend.clone();
    let weak = ui.as_weak();
    adapter.on_check_image(move |path| {
        let Some(ui) = weak.upgrade() else { return };
        let a = ui.global::<ConversationAdapter>();
        let path = path.trim().to_owned();
        if path.is_empty() {
            a.set_scan_ok(false);
            a.set_scan_result(
                "Type the path of a photo or screenshot of their safety-number QR code.".into(),
            );
            return;
        }
        let contact = a.get_contact().to_string();
        b.job(move |core| check_image(core, contact, path.into()));
    });
}

/// The safety number as shown: 3 lines of 4 groups of 5 digits.
pub fn safety_lines(n: &strand_sync::SafetyNumber) -> String {
    n.groups()
        .chunks(4)
        .map(|row| row.join("  "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Shows the open contact's safety number, verified mark and warning.
pub(crate) fn show_trust(core: &mut Core) {
    let Some(contact) = core.open.clone() else {
        return;
    };
    let Some((number, trust)) = safety(core, &contact, None) else {
        return;
    };
    core.ui(move |ui| {
        let a = ui.global::<ConversationAdapter>();
        if a.get_contact() != contact.as_str() {
            return;
        }
        a.set_verified(trust.verified);
        a.set_warning(trust.warning.into());
        a.set_safety_number(safety_lines(&number).into());
        if let Some(image) = crate::qr::image(&number.qr_payload()) {
            a.set_safety_qr(image);
        }
    });
}

/// `contact`'s safety number and trust, after marking them verified or
/// not if `verified` says; `None` while locked or if that failed (logged).
fn safety(
    core: &Core,
    contact: &str,
    verified: Option<bool>,
) -> Option<(SafetyNumber, super::contacts::Trust)> {
    match core.call(Request::Verify {
        contact: contact.to_owned(),
        verified,
    })? {
        Ok(Reply::Safety(view)) => Some((
            SafetyNumber::read(&view.qr)?,
            super::contacts::trust(&view.contact),
        )),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("the safety number with a contact: {e}");
            None
        }
    }
}

fn set_verified(core: &mut Core, contact: &str, verified: bool) {
    let done = core.call(Request::Verify {
        contact: contact.to_owned(),
        verified: Some(verified),
    });
    if let Some(Err(e)) = done {
        let message = e.message;
        core.ui(move |ui| {
            let a = ui.global::<ConversationAdapter>();
            a.set_scan_ok(false);
            a.set_scan_result(message.into());
        });
        return;
    }
    show_trust(core);
    super::contacts::refresh(core);
}

/// Gives `contact` the name `name`, then shows the conversation under it
/// (mutes are kept by id, so they follow); a refusal is shown in the
/// panel and changes nothing.
fn rename_contact(core: &mut Core, contact: &str, name: &str) {
    match core.call(Request::RenameContact {
        contact: contact.to_owned(),
        name: name.to_owned(),
    }) {
        Some(Ok(Reply::Renamed { contact: view })) => {
            super::settings::load_preferences(core);
            let notice = format!(
                "{} is now called {}.",
                strand_node::display::one_line(contact),
                strand_node::display::one_line(&view.name)
            );
            // The draft follows them (before `open` shows the new name,
            // which would put it away under the old one).
            let (from, to) = (contact.to_owned(), view.name.clone());
            core.ui(move |_| super::drafts::CONTACTS.with_borrow_mut(|d| d.renamed(&from, &to)));
            open(core, view.name);
            core.ui(move |ui| {
                let a = ui.global::<ConversationAdapter>();
                a.set_rename_error("".into());
                a.set_notice(notice.into());
            });
        }
        Some(Err(e)) => {
            let message = e.message;
            core.ui(move |ui| {
                ui.global::<ConversationAdapter>()
                    .set_rename_error(message.into())
            });
        }
        Some(Ok(_)) | None => {}
    }
}

/// Deletes `contact` and the conversation; the conversation closes (the
/// node's event does that, here and in every other window), and a notice
/// says what went. A refusal is shown in the panel and changes nothing.
fn delete_contact(core: &mut Core, contact: &str) {
    match core.call(Request::DeleteContact {
        contact: contact.to_owned(),
    }) {
        Some(Ok(Reply::DeletedContact { name, messages })) => {
            if core.open.as_deref() == Some(name.as_str()) {
                close(core);
            }
            // At once, not when the node's event comes: a notification
            // clicked meanwhile must not open whoever is given the name.
            if let Some(notifier) = core.notifier_connected() {
                notifier.deleted(&name);
            }
            super::settings::load_preferences(core);
            super::contacts::refresh(core);
            let plural = if messages == 1 { "" } else { "s" };
            let notice = format!(
                "Deleted {} and {messages} message{plural} of your conversation.",
                strand_node::display::one_line(&name)
            );
            core.ui(move |ui| ui.global::<crate::AppAdapter>().set_notice(notice.into()));
        }
        Some(Err(e)) => {
            let message = e.message;
            core.ui(move |ui| {
                ui.global::<ConversationAdapter>()
                    .set_delete_error(message.into())
            });
        }
        Some(Ok(_)) | None => {}
    }
}

/// Closes the open conversation (its contact was deleted): nothing of it
/// stays on screen.
pub(crate) fn close(core: &mut Core) {
    core.open = None;
    core.generation += 1;
    core.ui(|ui| {
        super::camera::stop(&ui);
        let a = ui.global::<ConversationAdapter>();
        show_contact(&a, "");
        a.set_sending(false);
        a.set_verify_open(false);
        a.set_details_open(false);
        a.set_attaching(false);
        a.set_exporting(false);
        a.set_drive_folder("".into());
        a.set_notice("".into());
        a.set_error("".into());
        a.set_delete_asked(false);
        a.set_delete_error("".into());
        with_model(&ui, |m| m.clear());
        ui.global::<crate::ContactsAdapter>().set_current(-1);
    });
}

/// Reads a QR code from an image file ([`super::read_photo`]) and
/// compares it with the safety number: a match marks the contact
/// verified. Dropped if the conversation was left meanwhile (its answer
/// would show in another's).
fn check_image(core: &mut Core, contact: String, path: std::path::PathBuf) {
    super::read_photo(core, path, move |core, found| {
        if core.open.as_deref() == Some(contact.as_str()) {
            check_texts(core, &contact, found);
        }
    });
}

/// Compares QR texts read from an image or a camera with the safety
/// number of `contact`: a match marks them verified.
pub(crate) fn check_texts(core: &mut Core, contact: &str, found: Result<Vec<String>, String>) {
    let Some((number, _)) = safety(core, contact, None) else {
        return;
    };
    let shown = strand_node::display::one_line(contact);
    let (ok, message) = match found {
        Err(e) => (false, e),
        Ok(texts) if texts.iter().any(|t| number.matches(t)) => (
            true,
            format!("The code matches your safety number with {shown}: marked verified."),
        ),
        Ok(texts)
            if texts.iter().any(|t| t.starts_with(strand_sync::SAFETY_QR_PREFIX))
                && !texts.iter().any(|t| super::add_contact::is_invite(t)) =>
        (
            false,
            format!("That safety number does NOT match yours with {shown}. It may be another conversation's, or someone stands between you: do not mark {shown} verified."),
        ),
        Ok(texts) => (false, not_a_safety_number(&texts)),
    };
    if ok {
        set_verified(core, contact, true);
    }
    core.ui(move |ui| {
        let a = ui.global::<ConversationAdapter>();
        a.set_scan_ok(ok);
        a.set_scan_result(message.into());
    });
}

/// What to tell the user about QR texts none of which is a safety number.
pub(crate) fn not_a_safety_number(texts: &[String]) -> String {
    if texts.iter().any(|t| super::add_contact::is_invite(t)) {
        "That is an invite code, not a safety number. Ask them to show the safety number of your conversation.".to_owned()
    } else {
        "That QR code is not a Strand safety number.".to_owned()
    }
}

/// Names the open conversation's contact: as the node knows them (what
/// actions name) and as screens show them
/// ([`strand_node::display::one_line`]).
/// The message box shows their draft ([`super::drafts`]).
pub(crate) fn show_contact(a: &ConversationAdapter<'_>, contact: &str) {
    let open = (!contact.is_empty()).then_some(contact);
    let typed = a.get_draft();
    if let Some(draft) = super::drafts::CONTACTS.with_borrow_mut(|d| d.open(open, &typed)) {
        a.set_draft(draft.into());
    }
    a.set_contact(contact.into());
    a.set_contact_shown(strand_node::display::one_line(contact).into());
}

/// Opens the conversation with `contact`.
pub(crate) fn open(core: &mut Core, contact: String) {
    core.open = Some(contact.clone());
    let muted = core.preferences.mutes_contact(&contact);
    core.ui(move |ui| {
        ui.global::<ConversationAdapter>().set_muted(muted);
        let a = ui.global::<ConversationAdapter>();
        if a.get_contact() != contact.as_str() {
            super::camera::stop(&ui);
            // What an action here said was of the last conversation.
            a.set_notice("".into());
        }
        show_contact(&a, &contact);
        a.set_error("".into());
        a.set_verify_open(false);
        a.set_details_open(false);
        a.set_scan_result("".into());
        a.set_scan_ok(false);
        a.set_rename_error("".into());
        a.set_delete_asked(false);
        a.set_delete_error("".into());
    });
    reload(core, true);
    show_trust(core);
    super::contacts::refresh(core);
}

/// Re-lists the open conversation: keys and the newest page in one go (so
/// the bottom of the list shows at once), marks it read if it is on
/// screen, and scrolls to the newest message if `scroll`.
pub(crate) fn reload(core: &mut Core, scroll: bool) {
    let Some(contact) = core.open.clone() else {
        return;
    };
    core.generation += 1;
    let generation = core.generation;
    let visible = core.chats_visible;
    let Some(listed) = list(core, Target::Contact(contact.clone()), visible) else {
        return;
    };
    match listed {
        Ok((keys, pages, timer)) => core.ui(move |ui| {
            ui.global::<ConversationAdapter>().set_timer(timer);
            with_model(&ui, |m| m.reset(contact, generation, keys, pages));
            if scroll {
                let a = ui.global::<ConversationAdapter>();
                a.set_scroll_to_end(a.get_scroll_to_end() + 1);
            }
        }),
        Err(e) => {
            let message = e.message;
            core.ui(move |ui| ui.global::<ConversationAdapter>().set_error(message.into()));
        }
    }
}

/// The rows of one page of `of` from `from` on; `None` while locked (or
/// for a reply that is no page). A [`Request::Page`] ends by count only
/// (not by bytes too, as a page of `strand read` does), so it holds all
/// [`PAGE`] rows of a page of the model, which has no `next` to follow.
fn read_page(core: &Core, of: Target, from: Position) -> Option<Result<Vec<Row>, Failure>> {
    match core.call(Request::Page {
        of,
        from,
        limit: PAGE,
    })? {
        Ok(Reply::Stored { messages }) => Some(Ok(messages.into_iter().map(Row::from).collect())),
        Ok(Reply::GroupPage { messages }) => {
            Some(Ok(messages.into_iter().map(Row::from).collect()))
        }
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }
}

/// What a conversation's list needs: where every message is shown, its
/// newest page read, and its timer's index; marked read to its end if
/// `visible`. `None` while locked.
pub(crate) type Listing = (Vec<Position>, Vec<(usize, Vec<Row>)>, i32);

pub(crate) fn list(core: &Core, of: Target, visible: bool) -> Option<Result<Listing, Failure>> {
    let timer = match core.call(Request::Timer {
        of: of.clone(),
        set: None,
    })? {
        Ok(Reply::Timer(t)) => crate::format::timer_index((t.ms > 0).then_some(t.ms)),
        Ok(_) => 0,
        Err(e) => return Some(Err(e)),
    };
    let keys = match core.call(Request::Positions { of: of.clone() })? {
        Ok(Reply::Positions { positions }) => positions,
        Ok(_) => Vec::new(),
        Err(e) => return Some(Err(e)),
    };
    let pages = newest_page(&keys, |from| {
        read_page(core, of.clone(), *from).unwrap_or(Ok(Vec::new()))
    });
    let pages = match pages {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    if let (true, Some(last)) = (visible, keys.last()) {
        if let Err(e) = core.call(Request::MarkRead { of, up_to: *last })? {
            return Some(Err(e));
        }
    }
    Some(Ok((keys, pages, timer)))
}

/// Sends `text` to `contact`; `typed` is what the box held. The box
/// empties only once the node has taken it (and if it still holds just
/// that): a refused send leaves the text there, with why.
fn send(core: &mut Core, contact: String, text: String, typed: String) {
    let result = core.call(Request::Send {
        to: Target::Contact(contact.clone()),
        text,
    });
    let taken = matches!(result, Some(Ok(_)));
    let error = match result {
        Some(Err(e)) => format!("Not sent: {e}"),
        _ => String::new(),
    };
    core.ui(move |ui| {
        let a = ui.global::<ConversationAdapter>();
        a.set_sending(false);
        let now = a.get_draft();
        if taken && super::drafts::CONTACTS.with_borrow_mut(|d| d.sent(&contact, &typed, &now)) {
            a.set_draft("".into());
        }
        if !error.is_empty() && a.get_contact() == contact.as_str() {
            a.set_error(error.into());
        }
    });
    if taken {
        reload(core, true);
        super::contacts::refresh(core);
    }
}

/// Where "Send by drive" offers to write: the first removable drive
/// mounted for this user (`/media/USER/…`, `/run/media/USER/…`), else the
/// `downloads` folder.
fn drive_folder(downloads: &std::path::Path) -> std::path::PathBuf {
    let user = std::env::var_os("USER").unwrap_or_default();
    for root in ["/media", "/run/media"] {
        let base = std::path::Path::new(root).join(&user);
        if let Ok(entries) = std::fs::read_dir(&base) {
            let mut drives: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            drives.sort();
            if let Some(first) = drives.into_iter().next() {
                return first;
            }
        }
    }
    downloads.to_path_buf()
}

/// A new bundle file's path in `folder`: `strand-bundle.strand`, or with
/// ` (2)`, ` (3)`, … if that is taken. The name does not say for whom
/// (whoever finds the drive learns nothing from it).
fn bundle_path(folder: &std::path::Path) -> std::path::PathBuf {
    let stem = "strand-bundle";
    let mut path = folder.join(format!("{stem}.strand"));
    let mut n = 2;
    while path.exists() {
        path = folder.join(format!("{stem} ({n}).strand"));
        n += 1;
    }
    path
}
