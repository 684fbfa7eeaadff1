//! A node that is starting says so in its profile folder, so that a
//! command can tell it from a profile held by something that will never
//! answer.
//!
//! A node that serves its control socket (`strand run`, the user
//! service, the desktop app) holds the profile from the moment it opens
//! it, and binds its socket only once [`Node::start`](crate::Node::start)
//! returned, which can take seconds (Bluetooth over D-Bus). A command
//! that finds the profile held and no socket answering is then either
//! early for such a node, or facing a holder that will never bind one (a
//! command's offline node, a process that hangs). The lock alone does not
//! say which, so the starting node writes a marker, the file [`MARKER`]
//! holding its process id, once it holds the profile and before the node
//! starts, and removes it once its socket is bound, or when it gives up
//! ([`Starting`] is a guard: an error or a panic drops it, and
//! [`control::bind`](super::control::bind) takes it). A command waits
//! ([`crate::runtime::device::Device::running_or_starting`]) only while
//! the marker is there and names a process that runs
//! ([`node_starting`]); otherwise a held profile is in use at once.
//!
//! A process killed while its node starts (SIGKILL, or a signal: `strand
//! run` listens for none until its node runs, so that Ctrl-C ends a start
//! that hangs) leaves its marker behind. It names a process that no
//! longer runs, so it is ignored, and the next start replaces it.
//!
//! Only a process that holds the profile writes the marker ([`Starting::mark`]
//! takes the open profile), so two starting at once cannot take each
//! other's: the second is refused the profile before it would write one.
//! The price is a short moment with no marker yet, while `Profile::open`
//! finishes after taking the lock (migrations, the groups read): a
//! command then finds the profile in use.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::Profile;

/// File name of the marker in a profile folder: the process id of the
/// node starting there, in decimal, and a newline.
pub const MARKER: &str = "starting";

/// The longest marker read: a process id and a newline fit many times
/// over (the folder is the user's own, but nothing read is unbounded).
const MAX_MARKER: u64 = 64;

/// The marker of a node starting on a profile this process holds: written
/// by [`Starting::mark`], removed when this is dropped (by
/// [`control::bind`](super::control::bind) once the socket is bound, or
/// on an error path before that).
#[derive(Debug)]
#[must_use = "the marker is removed when this is dropped"]
pub struct Starting {
    /// Where the marker was written; `None` if it could not be.
    path: Option<PathBuf>,
}

impl Starting {
    /// Marks the folder of `profile`, which this process holds, as having
    /// a node starting, until the result is dropped. A marker that cannot
    /// be written (a full disk) is logged and the start goes on: commands
    /// then find the profile in use until the socket is bound.
    pub fn mark(profile: &Profile) -> Starting {
        let dir = profile.dir();
        match write_marker(dir) {
            Ok(path) => Starting { path: Some(path) },
            Err(e) => {
                tracing::warn!(
                    "could not say in {} that a node is starting (commands run meanwhile find the profile in use): {}",
                    dir.display(),
                    crate::io_words(&e)
                );
                Starting { path: None }
            }
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        // Only while it is still this process's: a marker another holder
        // wrote since (after this process let go of the profile) stays.
        if let Some(path) = &self.path {
            if holder(path) == Some(std::process::id()) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Writes this process's id as the marker in `dir`, whole under another
/// name and then renamed over it (over a stale one too), so that a reader
/// never finds it half written.
fn write_marker(dir: &Path) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let path = dir.join(MARKER);
    let mut file = tempfile::Builder::new()
        .prefix(".starting-")
        .tempfile_in(dir)?;
    writeln!(file, "{}", std::process::id())?;
    file.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

/// Whether a node is starting on the profile in `dir`: its marker is
/// there and names a process that runs.
pub fn node_starting(dir: &Path) -> bool {
    holder(&dir.join(MARKER)).is_some_and(runs)
}

/// The process id the marker at `path` names, if it is there and is one.
fn holder(path: &Path) -> Option<u32> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_MARKER)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

/// Whether the process `pid` runs: asked of the kernel with a null
/// signal (`kill(pid, 0)`), which fails only for a process that is gone
/// (or, `EPERM`, one of another user's, which runs).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn runs(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .filter(|&raw| raw > 0)
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Elsewhere every marker is taken to name a process that runs: a
/// command then waits for it no longer than
/// [`START_WAIT`](super::device::START_WAIT).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn runs(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marker names this process while its guard lives, and goes
    /// with it; a marker another process wrote since is left alone.
    #[test]
    fn the_marker_names_this_process_and_goes_with_its_guard() {
        let tmp = tempfile::tempdir().unwrap();
        let (profile, _, _) = crate::profile::alice_with_bob(tmp.path());
        let marker = tmp.path().join(MARKER);
        let starting = Starting::mark(&profile);
        assert_eq!(holder(&marker), Some(std::process::id()));
        assert!(node_starting(tmp.path()));
        drop(starting);
        assert!(!marker.exists(), "the marker outlived its guard");
        assert!(!node_starting(tmp.path()));

        let starting = Starting::mark(&profile);
        std::fs::write(&marker, "1\n").unwrap();
        drop(starting);
        assert_eq!(holder(&marker), Some(1), "another's marker was removed");
    }
}
