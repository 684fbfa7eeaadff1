//! strand-gui: Strand's desktop app — a Slint window over an embedded
//! [`strand_node::Node`] and its encrypted redb profile.
//!
//! The look lives in `ui/` (Slint): `views/` are the screens, `widgets/`
//! their parts, and `globals.slint` one adapter per screen. The logic lives
//! here: [`init`] connects each adapter's callbacks (`src/adapters/`) to a
//! core thread ([`backend`]) that owns the node and its tokio runtime, so
//! the UI thread never waits on the store, a KDF or the network. Results
//! come back with `upgrade_in_event_loop`. [`init`] is apart from `main`
//! so that tests drive the adapters with no window ([`headless`]).
//!
//! ```no_run
//! use slint::ComponentHandle;
//! let ui = strand_gui::AppWindow::new().unwrap();
//! let options = strand_gui::Options {
//!     profile: "/tmp/strand-profile".into(),
//!     downloads: strand_node::downloads_dir(),
//!     node: Default::default(),
//!     kdf: None,
//!     dark: false,
//!     notify: strand_gui::Notify::Session,
//! };
//! let _app = strand_gui::init(&ui, options);
//! ui.run().unwrap();
//! ```
#![warn(missing_docs)]

#[allow(missing_docs)]
mod ui {
    slint::include_modules!();
}
pub use ui::*;

pub mod adapters;
pub mod backend;
pub mod camera;
pub mod format;
pub mod headless;
pub mod notify;
pub mod qr;
pub mod scan;

pub use backend::{Notify, Options};

use slint::ComponentHandle;

/// The running app: its core thread. Dropping it stops the node,
/// releases the profile and forgets what was typed and not sent; drop it
/// on the UI thread, where the drafts are kept.
pub struct App {
    backend: backend::Backend,
    thread: Option<std::thread::JoinHandle<()>>,
    focused: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl App {
    /// The window came in front (`true`) or went behind, was hidden or
    /// minimised: what the window sees of it (the desktop's focus events)
    /// calls this too. Only in front does what arrives in the open
    /// conversation count as read, and coming in front reads it.
    pub fn in_front(&self, now: bool) {
        in_front(&self.backend, &self.focused, now);
    }
}

fn in_front(backend: &backend::Backend, focused: &std::sync::atomic::AtomicBool, now: bool) {
    let was = focused.swap(now, std::sync::atomic::Ordering::Relaxed);
    if now && !was {
        backend.job(adapters::in_front);
    }
}

impl Drop for App {
    fn drop(&mut self) {
        backend::quit(&self.backend);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The profile is let go, as when it locks: nothing typed to it
        // stays for the next window of this process.
        adapters::drafts::forget_all();
    }
}

/// Connects the window's adapters to a new core thread for the profile in
/// `options`, and shows first run, unlock or "in use" as the profile
/// calls for.
pub fn init(ui: &AppWindow, options: Options) -> App {
    ui.global::<Theme>().set_dark(options.dark);
    let focused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let downloads = options.downloads.clone();
    let (backend, thread) = backend::spawn(options, ui.as_weak(), focused.clone());
    adapters::connect(ui, &backend, &downloads);
    watch_window(ui, backend.clone(), focused.clone());
    keep_running_when_closed(ui);
    backend.job(adapters::onboarding::show);
    App {
        backend,
        thread: Some(thread),
        focused,
    }
}

/// Closing the window hides it; the app goes on (syncing, notifying) if
/// the user chose to keep running and a profile is open, and quits
/// otherwise. `main` runs the event loop until it is quit, so a hidden
/// window does not end it; *Quit Strand* in Settings quits.
fn keep_running_when_closed(ui: &AppWindow) {
    let weak = ui.as_weak();
    ui.window().on_close_requested(move || {
        let keep = weak.upgrade().is_some_and(|ui| {
            ui.global::<SettingsAdapter>().get_keep_running()
                && ui.global::<AppAdapter>().get_screen() != Screen::Onboarding
        });
        if !keep {
            let _ = slint::quit_event_loop();
        }
        slint::CloseRequestResponse::HideWindow
    });
    ui.global::<SettingsAdapter>().on_quit(|| {
        let _ = slint::quit_event_loop();
    });
}

/// Whether the window is in front goes to [`App::in_front`]:
/// notifications are for when it is not, and what arrives is read only
/// while it is. Files dropped onto the window go to the open
/// conversation (a contact's or a group's), like *Attach*; elsewhere the
/// app says where to drop them. Only where the window is a winit one (not
/// headless).
fn watch_window(
    ui: &AppWindow,
    backend: backend::Backend,
    focused: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use slint::winit_030::{winit::event::WindowEvent, EventResult, WinitWindowAccessor};
    let weak = ui.as_weak();
    ui.window().on_winit_window_event(move |_, event| {
        if let WindowEvent::Focused(now) = event {
            in_front(&backend, &focused, *now);
        }
        let WindowEvent::DroppedFile(path) = event else {
            return EventResult::Propagate;
        };
        let Some(ui) = weak.upgrade() else {
            return EventResult::Propagate;
        };
        let path: slint::SharedString = path.display().to_string().into();
        let app = ui.global::<AppAdapter>();
        let groups = ui.global::<GroupsAdapter>();
        let chats = ui.global::<ConversationAdapter>();
        let contacts = ui.global::<ContactsAdapter>();
        match app.get_screen() {
            Screen::Groups if groups.get_current() >= 0 && groups.get_member() => {
                groups.invoke_send_file(path);
            }
            Screen::Chats if contacts.get_current() >= 0 => {
                chats.invoke_send_file(path);
            }
            _ => app.set_notice("Open a conversation, then drop the file on it to send it.".into()),
        }
        EventResult::PreventDefault
    });
}
