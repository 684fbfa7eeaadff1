//! No silent panics. Every binary installs [`install`]'s hook first thing:
//! a panic on any thread is logged (a runtime worker's too: tokio catches
//! a task's panic and runs on, so without the hook it could pass
//! unnoticed), printed as Rust prints it, and kept, so `strand status`
//! and the node's status say that a part of the node failed.

use std::sync::Mutex;

/// The last panics, newest last.
static RECORDED: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// How many are kept.
const KEPT: usize = 8;

/// Installs the hook (once is enough; again adds nothing but a second
/// record of each panic).
pub fn install() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!(
            "thread {} panicked{at}: {what}",
            thread.name().unwrap_or("(unnamed)")
        );
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
}
