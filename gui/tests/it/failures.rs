//! A panic in the node (or the app) is not silent: the Network screen says
//! that a part of Strand stopped, which, and what to do.

use slint::ComponentHandle;
use strand_gui::{AppAdapter, NetworkAdapter, Screen};

use crate::support::{on_ui, options, Gui, WAIT};

#[test]
fn a_panic_shows_on_the_network_screen() {
    on_ui(|h| {
        strand_node::runtime::panics::install();
        let tmp = tempfile::tempdir().unwrap();
        let gui = Gui::new(h, options(&tmp.path().join("alice")));
        gui.create(h, "Alice");
        gui.ui
            .global::<AppAdapter>()
            .invoke_navigate(Screen::Network);
        let net = gui.ui.global::<NetworkAdapter>();
        // A worker thread of this process fails, as a dependency's task
        // would.
        let worker = std::thread::Builder::new()
            .name("strand-test-failing".into())
            .spawn(|| panic!("the test's worker failed on purpose"))
            .unwrap();
        assert!(worker.join().is_err());
        assert!(h.pump_until(WAIT * 2, || net
            .get_failures()
            .contains("the test's worker failed on purpose")));
        assert!(net.get_failures().contains("strand-test-failing"));
    });
}
