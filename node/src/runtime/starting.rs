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
//! holding its process id, from the moment it holds the profile, and
//! removes it once its socket is bound, or when it gives up ([`Starting`]
//! is a guard: an error or a panic drops it, and
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
//! Only a process that holds the profile writes the marker, so two
//! starting at once cannot take each other's: the second is refused the
//! profile before it would write one. [`Starting::open`] writes it inside
//! the profile's open, the moment the lock is taken, which is before the
//! key is derived from the passphrase: the rest of the open can take
//! seconds (that derivation; migrations; the groups read), and a command
//! run then would otherwise find the profile held with no marker, and say
//! it is in use (or, had the lock waited for the key, find it free, open
//! it itself, and leave the starting node refused). An open that fails
//! after the lock (a wrong passphrase, a damaged file) drops the guard
//! with the error, and then the lock, so the app, whose process lives on
//! to ask for the passphrase again, leaves no marker behind. A profile
//! just created is marked once [`crate::Profile::create`] returned
//! ([`Starting::mark`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Profile, ProfileError};

/// File name of the marker in a profile folder: the process id of the
/// node starting there, in decimal, and a newline.
pub const MARKER: &str = "starting";

/// The longest marker read: a process id and a newline fit many times
/// over (the folder is the user's own, but nothing read is unbounded).
const MAX_MARKER: u64 = 64;

/// The marker of a node starting on a profile this process holds: written
/// by [`Starting::open`] or [`Starting::mark`], removed when this is
/// dropped (by
/// [`control::bind`](super::control::bind) once the socket is bound, or
/// on an error path before that).
#[derive(Debug)]
#[must_use = "the marker is removed when this is dropped"]
pub struct Starting {
    /// Where the marker was written; `None` if it could not be.
    path: Option<PathBuf>,
}

impl Starting {
    /// Opens and unlocks the profile in `dir` as [`Profile::open`] does,
    /// for a node that will serve its control socket (`strand run`, the
    /// app): its folder is marked as having a node starting from the
    /// moment the open holds the profile's lock, until the [`Starting`]
    /// returned is dropped. An open that fails leaves no marker.
    pub fn open(dir: &Path, passphrase: &str) -> Result<(Profile, Starting), ProfileError> {
        Profile::open_holding(dir, passphrase, Starting::in_folder)
    }

    /// Marks the folder of `profile`, which this process holds, as having
    /// a node starting, until the result is dropped: for a profile just
    /// created (one opened is marked by [`Starting::open`]).
    pub fn mark(profile: &Profile) -> Starting {
        Starting::in_folder(profile.dir())
    }

    /// Marks the profile folder `dir`, whose profile this process holds.
    /// A marker that cannot be written (a full disk) is logged and the
    /// start goes on: commands then find the profile in use until the
    /// socket is bound.
    fn in_folder(dir: &Path) -> Starting {
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
    use std::cell::{Cell, RefCell};
    use std::pin::Pin;
    use std::rc::Rc;

    use super::*;
    use crate::profile::{PAUSE_WHILE_HELD, PAUSE_WHILE_UNSEALING};
    use crate::runtime::control;
    use crate::runtime::device::{Device, OpenError};
    use crate::{KdfParams, Node, NodeConfig};

    /// A command's opening of a device, kept between its polls.
    type Opening = Pin<Box<dyn std::future::Future<Output = Result<Device, OpenError>>>>;

    /// What a test runs where it stops an open.
    type AtStop = Box<dyn FnOnce()>;

    /// Sets what the next profile open on this thread runs once it holds
    /// the profile's lock ([`PAUSE_WHILE_HELD`]).
    fn pause_while_held(pause: impl FnOnce(&Path) + 'static) {
        let pause: Box<dyn FnOnce(&Path)> = Box::new(pause);
        PAUSE_WHILE_HELD.with(|slot| *slot.borrow_mut() = Some(pause));
    }

    /// Sets what the next unsealing of a root key on this thread runs
    /// just before it derives the passphrase's key
    /// ([`PAUSE_WHILE_UNSEALING`]).
    fn pause_while_unsealing(pause: impl FnOnce() + 'static) {
        let pause: AtStop = Box::new(pause);
        PAUSE_WHILE_UNSEALING.with(|slot| *slot.borrow_mut() = Some(pause));
    }

    /// Regression: a command run while `strand run` (or the app) held
    /// the profile but was still opening it (deriving its key; migrating
    /// it; reading its groups: a second or more) found the profile held
    /// and no marker, and said at once that it is in use by another
    /// Strand process: the marker was written only once `Profile::open`
    /// returned. It is written the moment the open takes the lock, so the
    /// command waits, and reaches the node once its socket is bound. The
    /// open stops right after the lock ([`PAUSE_WHILE_HELD`]), and the
    /// command is polled once there: it must not be done. (Fails with
    /// [`Starting::open`] marking the profile after `Profile::open`
    /// returned, as before: that poll says the profile is in use.)
    #[test]
    fn a_command_waits_for_a_node_still_opening_its_profile() {
        a_command_waits_while(|poll| pause_while_held(move |_| poll()));
    }

    /// Regression: a profile sealed as a whole was locked only once its
    /// key was derived from the passphrase (Argon2id: seconds), so a
    /// command run meanwhile (`strand send` while `strand run` unlocks)
    /// found the profile free and no marker, asked for the passphrase and
    /// opened the profile itself, and `strand run` then failed, the
    /// profile in use. The lock is taken, and the marker written, before
    /// the derivation: the command waits for the node. The open stops as
    /// it derives the key ([`PAUSE_WHILE_UNSEALING`]), and the command is
    /// polled once there: it must not be done. (Fails with
    /// `Profile::open_sealed_profile` deriving the key before it takes
    /// the lock, as before: that poll finds the profile free and asks
    /// for the passphrase.)
    #[test]
    fn a_command_waits_for_a_node_still_unsealing_its_profile() {
        a_command_waits_while(pause_while_unsealing);
    }

    /// Opens a sealed profile as a node that will serve its control
    /// socket does ([`Starting::open`]), with a command run while the
    /// open is stopped where `stop` says (it is handed what to run
    /// there): polled once then, the command must still be waiting; it
    /// then reaches the node once its socket is bound, and the marker is
    /// gone.
    fn a_command_waits_while(stop: impl FnOnce(AtStop)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        drop(crate::profile::alice_with_bob(&dir));
        assert!(Profile::is_sealed(&dir));
        let runtime = Rc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        );
        // What the command did when polled during the open: still
        // waiting (its opening, polled on below), or done (what it said).
        let seen: Rc<RefCell<Option<Result<Opening, String>>>> = Rc::default();
        let (polling, seeing, asking) = (runtime.clone(), seen.clone(), dir.clone());
        let poll: AtStop = Box::new(move || {
            let mut opening: Opening = Box::pin(async move {
                Device::open(&asking, || Err("the passphrase was asked for".to_owned())).await
            });
            let done = polling.block_on(async {
                tokio::select! {
                    biased;
                    done = &mut opening => Some(done),
                    () = std::future::ready(()) => None,
                }
            });
            *seeing.borrow_mut() = Some(match done {
                None => Ok(opening),
                Some(done) => Err(format!("{done:?}")),
            });
        });
        stop(poll);
        let (profile, starting) = Starting::open(&dir, "pass").unwrap();
        let seen = seen.borrow_mut().take();
        let opening = match seen {
            Some(Ok(opening)) => opening,
            Some(Err(done)) => {
                panic!("the command did not wait for the node opening its profile: {done}")
            }
            None => panic!("the open did not stop where the test asked"),
        };
        assert!(node_starting(&dir), "the open returned with no marker");

        // The node starts and binds its socket: the command reaches it,
        // and the marker is gone.
        let node = runtime
            .block_on(Node::start(profile, NodeConfig::offline()))
            .unwrap();
        let bound = {
            let _entered = runtime.enter();
            control::bind(&node, &dir, starting).unwrap()
        };
        let served = runtime.spawn(control::serve(node.clone(), bound));
        let device = runtime.block_on(opening).unwrap();
        assert!(matches!(device, Device::Running(_)), "{device:?}");
        assert!(
            !dir.join(MARKER).exists(),
            "the marker outlived the socket's binding"
        );
        served.abort();
        runtime.block_on(node.shutdown());
    }

    /// An open for a node that fails once it holds the profile (a wrong
    /// passphrase for a profile from before sealing, whose key is derived
    /// under the lock) removes the marker it wrote: the app lives on to
    /// ask for the passphrase again, and a marker naming it would have
    /// every command wait for a node that is not starting. (The first
    /// check fails before: nothing was marked during the open.) The same
    /// for a sealed profile is the test after this one.
    #[test]
    fn a_wrong_passphrase_leaves_no_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let rng = &mut crate::os_rng();
        let old = tmp.path().join("old");
        drop(
            Profile::create_unsealed_for_tests(
                &old,
                "Alice",
                "pass",
                KdfParams::insecure_for_tests(),
                rng,
            )
            .unwrap(),
        );
        let marked = Rc::new(Cell::new(false));
        let seeing = marked.clone();
        pause_while_held(move |dir| seeing.set(node_starting(dir)));
        let refused = Starting::open(&old, "wrong");
        assert!(
            matches!(refused, Err(ProfileError::WrongPassphrase)),
            "{refused:?}"
        );
        assert!(marked.get(), "not marked while the open held the profile");
        assert!(
            !old.join(MARKER).exists(),
            "a wrong passphrase left the marker"
        );
        assert!(!node_starting(&old));
        // The right one opens it (sealing it now), marked until the guard
        // goes.
        let (profile, starting) = Starting::open(&old, "pass").unwrap();
        assert!(node_starting(&old));
        drop(starting);
        assert!(!old.join(MARKER).exists());
        drop(profile);
    }

    /// A profile sealed as a whole is held and marked while its key is
    /// derived from the passphrase (a second opener is told it is in use),
    /// and a wrong passphrase then lets go of both: no marker is left, and
    /// the right passphrase opens the profile at once. (Fails before the
    /// lock was taken ahead of the derivation: during it, the profile was
    /// neither held nor marked, and a second open took it.)
    #[test]
    fn a_wrong_passphrase_on_a_sealed_profile_leaves_no_marker_and_frees_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        drop(crate::profile::alice_with_bob(&dir));
        assert!(Profile::is_sealed(&dir));
        /// What the test saw while the open derived the key.
        struct Seen {
            held: bool,
            marked: bool,
            /// What a second open said.
            second: Result<(), ProfileError>,
        }
        let seen: Rc<RefCell<Option<Seen>>> = Rc::default();
        let (seeing, looking) = (seen.clone(), dir.clone());
        pause_while_unsealing(move || {
            let second = Profile::open(&looking, "pass").map(drop);
            *seeing.borrow_mut() = Some(Seen {
                held: Profile::in_use(&looking),
                marked: node_starting(&looking),
                second,
            });
        });
        let refused = Starting::open(&dir, "wrong");
        let seen = seen.borrow_mut().take();
        let Some(seen) = seen else {
            panic!("the open derived no key: {refused:?}")
        };
        assert!(seen.held, "not held while the open derived the key");
        assert!(seen.marked, "not marked while the open derived the key");
        assert!(
            matches!(seen.second, Err(ProfileError::InUse(_))),
            "a second open during the derivation: {:?}",
            seen.second
        );
        assert!(
            matches!(refused, Err(ProfileError::WrongPassphrase)),
            "{refused:?}"
        );
        assert!(
            !dir.join(MARKER).exists(),
            "a wrong passphrase left the marker"
        );
        assert!(!node_starting(&dir));
        assert!(!Profile::in_use(&dir), "a wrong passphrase kept the lock");
        // The right one opens it at once, marked until the guard goes.
        let (profile, starting) = Starting::open(&dir, "pass").unwrap();
        assert!(node_starting(&dir));
        drop(starting);
        assert!(!dir.join(MARKER).exists());
        drop(profile);
    }

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
