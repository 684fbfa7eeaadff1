//! No silent panics. Every binary installs [`install`]'s hook first thing:
//! a panic on any thread is logged (a runtime worker's too: tokio catches
//! a task's panic and runs on, so without the hook it could pass
//! unnoticed), printed as Rust prints it, and kept, so `strand status`
//! and the node's status say that a part of the node failed.
//!
//! One panic is known not to be a failure, and is only logged at debug
//! level: see [`known_harmless`]. A panic inside [`contained`] is the
//! caller's to handle, and is only logged as a warning; so is one the
//! transport catches and handles (libp2p's relay client on what a relay
//! sent: `strand_transport::relay::containing_panic`).

use std::cell::Cell;
use std::sync::Mutex;

use strand_transport::relay::panic_message;

/// The last panics, newest last.
static RECORDED: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// How many are kept.
const KEPT: usize = 8;

thread_local! {
    /// What this thread is doing inside [`contained`], if it is.
    static CONTAINED: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Runs `f`, and returns its panic's message as an error if it panics.
/// For a dependency known to panic on input it cannot handle (a QR
/// reader on a photo made to trip it), whose caller then refuses the
/// input instead of losing the thread. `doing` says what `f` does, for
/// the log. Such a panic is logged as a warning and not recorded: it is
/// handled, and `f` must leave nothing half done outside itself.
pub fn contained<T>(doing: &'static str, f: impl FnOnce() -> T) -> Result<T, String> {
    let outer = CONTAINED.with(|c| c.replace(Some(doing)));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    result.map_err(|payload| panic_message(payload.as_ref()))
}

/// Installs the hook. Only the first call does anything, so tests (and
/// any caller) may call it again without each panic being kept twice.
pub fn install() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(install_hook);
}

fn install_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let what = panic_message(info.payload());
        let location = info.location();
        let at = location
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!(
            "thread {} panicked{at}: {what}",
            thread.name().unwrap_or("(unnamed)")
        );
        let contained = CONTAINED.try_with(Cell::get).ok().flatten();
        if let Some(doing) = contained.or_else(strand_transport::relay::containing_panic) {
            tracing::warn!("{line} (while {doing}; handled)");
            return;
        }
        if let Some(why) = known_harmless(location.map_or("", |l| l.file()), &what) {
            tracing::debug!("{line} ({why})");
            return;
        }
        tracing::error!("{line}");
        if let Ok(mut kept) = RECORDED.lock() {
            if kept.len() == KEPT {
                kept.remove(0);
            }
            kept.push(line);
        }
        previous(info);
    }));
}

/// Why a panic from `file` saying `what` is not a failure, if it is the
/// one known case.
///
/// bluez-async 0.9 (btleplug's BlueZ backend): dropping one of its
/// `MessageStream`s (btleplug's scan events, a GATT link's notifications)
/// spawns a task that removes the stream's D-Bus match and unwraps the
/// result. The dbus crate drops a match itself when a signal for it comes
/// after the stream's receiver is gone, and takes it out of its list while
/// it dispatches one. A scan or a GATT link that ends while BlueZ is
/// sending signals can so leave that task a match that is already gone,
/// and it panics, alone in a detached task, after what it was for has
/// happened. Nothing else is affected. Recorded, it would say a part of
/// the node failed after an ordinary Bluetooth link. The version is part
/// of the test: another bluez-async gets looked at again.
fn known_harmless(file: &str, what: &str) -> Option<&'static str> {
    (file.contains("/bluez-async-0.9.")
        && file.ends_with("/src/messagestream.rs")
        && what.contains("No match with that id found"))
    .then_some("bluez-async removing a D-Bus match that was already removed: harmless")
}

/// The panics since the process started (the last [`KEPT`]).
pub fn recorded() -> Vec<String> {
    RECORDED.lock().map(|kept| kept.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_on_a_runtime_worker_is_recorded() {
        super::install();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strand-test-worker")
            .build()
            .unwrap();
        // As a dependency's task would: tokio catches it and runs on.
        let task = rt.spawn(async { panic!("no match with that id found") });
        assert!(rt.block_on(task).is_err());
        assert!(rt.block_on(async { 1 + 1 }) == 2, "the runtime runs on");
        let kept = super::recorded();
        assert!(
            kept.iter()
                .any(|l| l.contains("no match with that id found")
                    && l.contains("strand-test-worker")
                    && l.contains("panics.rs")),
            "{kept:?}"
        );
    }

    /// Regression: a panic the transport catches and handles (libp2p's
    /// relay client on a relay's answer; the connection is closed) was
    /// recorded as a failure, so a relay could make `strand status` say
    /// a part of the node failed. It is logged as handled, and one after
    /// it on the same thread is recorded again.
    #[test]
    fn a_panic_the_transport_contains_is_not_recorded() {
        super::install();
        let worker = std::thread::spawn(|| {
            let caught =
                strand_transport::relay::contain_panic(|| -> u8 { panic!("a relay's answer") });
            assert!(caught.is_err());
            assert!(strand_transport::relay::containing_panic().is_none());
            panic!("not contained after the relay's")
        });
        assert!(worker.join().is_err());
        let kept = super::recorded();
        assert!(
            !kept.iter().any(|l| l.contains("a relay's answer")),
            "{kept:?}"
        );
        assert!(
            kept.iter()
                .any(|l| l.contains("not contained after the relay's")),
            "{kept:?}"
        );
    }

    #[test]
    fn installing_again_keeps_each_panic_once() {
        super::install();
        super::install();
        let worker = std::thread::Builder::new()
            .name("strand-test-twice".into())
            .spawn(|| panic!("kept once however often the hook is installed"))
            .unwrap();
        assert!(worker.join().is_err());
        let kept = super::recorded();
        let times = kept
            .iter()
            .filter(|l| l.contains("kept once however often the hook is installed"))
            .count();
        assert_eq!(times, 1, "{kept:?}");
    }

    /// A panic inside `contained` is its caller's error, not a failure
    /// of the node; one after it, on the same thread, is recorded again.
    #[test]
    fn a_contained_panic_is_an_error_and_not_recorded() {
        super::install();
        let worker = std::thread::spawn(|| {
            let inner = super::contained("testing", || -> u8 { panic!("contained one") });
            assert_eq!(inner, Err("contained one".to_owned()));
            assert_eq!(super::contained("testing", || 7), Ok(7));
            // Nested: the outer one still contains after the inner ends.
            let outer = super::contained("outer", || {
                let _ = super::contained("inner", || panic!("contained inner"));
                panic!("contained outer")
            });
            assert_eq!(outer, Err("contained outer".to_owned()));
            panic!("not contained after")
        });
        assert!(worker.join().is_err());
        let kept = super::recorded();
        for what in ["contained one", "contained inner", "contained outer"] {
            assert!(!kept.iter().any(|l| l.contains(what)), "{what}: {kept:?}");
        }
        assert!(
            kept.iter().any(|l| l.contains("not contained after")),
            "{kept:?}"
        );
    }

    #[test]
    fn only_bluez_async_removing_a_match_twice_is_harmless() {
        let registry = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        let what = "called `Result::unwrap()` on an `Err` value: D-Bus error: \
                    No match with that id found (org.freedesktop.DBus.Error.Failed)";
        let file = format!("{registry}/bluez-async-0.9.0/src/messagestream.rs");
        assert!(super::known_harmless(&file, what).is_some());
        // The same words anywhere else, another bluez-async, or another
        // panic in that file, are kept.
        for (file, what) in [
            (
                format!("{registry}/bluez-async-0.9.0/src/messagestream.rs"),
                "index out of bounds",
            ),
            (
                format!("{registry}/bluez-async-0.10.0/src/messagestream.rs"),
                what,
            ),
            (format!("{registry}/bluez-async-0.9.0/src/lib.rs"), what),
            ("node/src/runtime/panics.rs".to_owned(), what),
        ] {
            assert!(
                super::known_harmless(&file, what).is_none(),
                "{file}: {what}"
            );
        }
    }
}
