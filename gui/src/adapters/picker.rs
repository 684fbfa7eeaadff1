//! The file picker's folder listing (`FilePickerAdapter`). It runs on the
//! UI thread: one `read_dir` of one folder, at most [`MAX_ENTRIES`] rows.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use slint::{ComponentHandle, SharedString};

use crate::{format, AppWindow, FilePickerAdapter, PickerEntry};

/// Most rows one folder shows (the rest are named in the error line).
pub const MAX_ENTRIES: usize = 5_000;

#[derive(Default)]
struct State {
    /// The folder listed.
    dir: Option<PathBuf>,
    /// Each row's full path, in the order shown.
    paths: Vec<PathBuf>,
}

/// A folder's rows: folders first, then files, each by name ignoring
/// case; hidden entries (a leading dot) left out. Also whether the folder
/// had more than [`MAX_ENTRIES`].
pub fn list(dir: &Path) -> std::io::Result<(Vec<(PathBuf, PickerEntry)>, bool)> {
    let mut rows = Vec::new();
    let mut more = false;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if rows.len() == MAX_ENTRIES {
            more = true;
            break;
        }
        let path = entry.path();
        // Follows links: a link to a folder opens like a folder.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let folder = meta.is_dir();
        rows.push((
            path,
            PickerEntry {
                name: name.into(),
                folder,
                size: if folder {
                    SharedString::new()
                } else {
                    format::bytes(meta.len()).into()
                },
            },
        ));
    }
    rows.sort_by(|(_, a), (_, b)| {
        b.folder
            .cmp(&a.folder)
            .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok((rows, more))
}

fn home() -> PathBuf {
    std::env::home_dir().unwrap_or_else(|| PathBuf::from("/"))
}

/// Lists `dir` into the adapter; on an error keeps what was shown and
/// says why.
fn show(ui: &AppWindow, state: &mut State, dir: &Path, pick: Option<&Path>) {
    let a = ui.global::<FilePickerAdapter>();
    match list(dir) {
        Ok((rows, more)) => {
            state.dir = Some(dir.to_path_buf());
            let selected = pick
                .and_then(|p| rows.iter().position(|(path, _)| path == p))
                .map_or(-1, |i| i as i32);
            let (paths, entries): (Vec<PathBuf>, Vec<PickerEntry>) = rows.into_iter().unzip();
            state.paths = paths;
            a.set_dir(dir.to_string_lossy().into_owned().into());
            a.set_can_up(dir.parent().is_some());
            super::set_vec(a.get_entries(), entries, |m| a.set_entries(m));
            a.set_selected(selected);
            a.set_chosen_path(match pick {
                Some(p) if selected >= 0 => p.to_string_lossy().into_owned().into(),
                _ => SharedString::new(),
            });
            a.set_error(if more {
                format!(
                    "Only the first {MAX_ENTRIES} entries are shown: type a path to reach others."
                )
                .into()
            } else {
                SharedString::new()
            });
        }
        Err(e) => a.set_error(format!("{}: {e}", dir.display()).into()),
    }
}

/// Connects the picker's callbacks.
pub(crate) fn connect(ui: &AppWindow) {
    let state = Rc::new(RefCell::new(State::default()));
    let a = ui.global::<FilePickerAdapter>();

    let (weak, st) = (ui.as_weak(), state.clone());
    a.on_start(move || {
        let Some(ui) = weak.upgrade() else { return };
        let mut st = st.borrow_mut();
        let dir = st.dir.clone().filter(|d| d.is_dir()).unwrap_or_else(home);
        // The file picked last stays picked while it is still there.
        let picked = PathBuf::from(ui.global::<FilePickerAdapter>().get_chosen_path().as_str());
        let keep = (picked.parent() == Some(dir.as_path()) && picked.is_file()).then_some(picked);
        show(&ui, &mut st, &dir, keep.as_deref());
    });

    let (weak, st) = (ui.as_weak(), state.clone());
    a.on_go(move |text| {
        let Some(ui) = weak.upgrade() else { return };
        let mut st = st.borrow_mut();
        let text = text.trim();
        let path = if text.is_empty() {
            home()
        } else if let Some(rest) = text.strip_prefix("~/") {
            home().join(rest)
        } else {
            PathBuf::from(text)
        };
        if path.is_dir() {
            show(&ui, &mut st, &path, None);
        } else if path.is_file() {
            let dir = path.parent().map_or_else(home, Path::to_path_buf);
            show(&ui, &mut st, &dir, Some(&path));
            // A hidden file is not listed; it is still the one typed.
            let a = ui.global::<FilePickerAdapter>();
            a.set_chosen_path(path.to_string_lossy().into_owned().into());
        } else {
            ui.global::<FilePickerAdapter>()
                .set_error(format!("{text}: no such file or folder").into());
        }
    });

    let (weak, st) = (ui.as_weak(), state.clone());
    a.on_up(move || {
        let Some(ui) = weak.upgrade() else { return };
        let mut st = st.borrow_mut();
        let Some(parent) = st
            .dir
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
        else {
            return;
        };
        let from = st.dir.clone();
        show(&ui, &mut st, &parent, None);
        // The folder just left stays highlighted, as in file managers.
        if let Some(i) = from.and_then(|f| st.paths.iter().position(|p| *p == f)) {
            ui.global::<FilePickerAdapter>().set_selected(i as i32);
        }
    });

    let (weak, st) = (ui.as_weak(), state);
    a.on_pick(move |i| {
        let Some(ui) = weak.upgrade() else { return };
        let mut st = st.borrow_mut();
        let Some(path) = usize::try_from(i)
            .ok()
            .and_then(|i| st.paths.get(i))
            .cloned()
        else {
            return;
        };
        if path.is_dir() {
            show(&ui, &mut st, &path, None);
        } else {
            let a = ui.global::<FilePickerAdapter>();
            a.set_selected(i);
            a.set_chosen_path(path.to_string_lossy().into_owned().into());
            a.set_error(SharedString::new());
        }
    });
}
