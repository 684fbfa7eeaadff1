//! The phone layout, screen by screen, at phone sizes: upright 360×720
//! and 412×915, on its side 720×360, with the keyboard up 360×400, at
//! scale factors 2 and 3. Each screen is drawn, and its elements are
//! walked (Slint's element introspection) to check what a person holding
//! the phone would hit: a text or control off the side of the screen, two
//! texts drawn over each other, a control smaller than a finger (44 px),
//! the message box hidden under the keyboard.

use std::ops::ControlFlow;
use std::time::Duration;

use i_slint_backend_testing::{AccessibleRole, ElementHandle, ElementRoot};
use slint::platform::WindowEvent;
use slint::{ComponentHandle, Model};
use strand_gui::headless::Headless;
use strand_gui::{
    AddContactAdapter, AppAdapter, AppWindow, ContactsAdapter, ConversationAdapter, GroupsAdapter,
    OnboardingAdapter, Screen, SettingsAdapter,
};
use strand_node::os_rng;
use strand_sync::{Identity, Kind, Message, WriteStore};

use crate::support::{alice_with_bob, on_ui, options, Gui, PASS, WAIT};

/// Width, height (logical px) and scale factor.
const SIZES: &[(f32, f32, f32)] = &[
    (360.0, 720.0, 2.0),
    (412.0, 915.0, 3.0),
    (720.0, 360.0, 2.0),
    (360.0, 400.0, 2.0),
    (360.0, 720.0, 3.0),
];

/// The smallest control a finger hits reliably.
const TARGET: f32 = 44.0;

#[derive(Clone, Copy, Debug)]
struct Rect {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

impl Rect {
    fn of(e: &ElementHandle) -> Rect {
        let p = e.absolute_position();
        let s = e.size();
        Rect {
            x: p.x,
            y: p.y,
            w: s.width,
            h: s.height,
        }
    }

    fn contains(&self, o: &Rect) -> bool {
        const SLACK: f32 = 0.5;
        o.x >= self.x - SLACK
            && o.y >= self.y - SLACK
            && o.x + o.w <= self.x + self.w + SLACK
            && o.y + o.h <= self.y + self.h + SLACK
    }

    /// The area two rectangles share.
    fn overlap(&self, o: &Rect) -> f32 {
        let w = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let h = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        if w > 0.0 && h > 0.0 {
            w * h
        } else {
            0.0
        }
    }
}

/// What is wrong with the window as laid out now, for a person using it
/// by touch; and how many texts and controls were looked at.
fn problems(ui: &AppWindow, width: f32, height: f32) -> (Vec<String>, usize) {
    let window = Rect {
        x: 0.0,
        y: 0.0,
        w: width,
        h: height,
    };
    let mut texts = Vec::new();
    let mut controls = Vec::new();
    let mut scrolled = Vec::new();
    ui.root_element().visit_descendants(|e| {
        let r = Rect::of(&e);
        let kind = e.type_name().unwrap_or_default();
        if kind == "Flickable" {
            scrolled.push(r);
        }
        if r.w <= 0.0 || r.h <= 0.0 || e.computed_opacity() <= 0.0 {
            return ControlFlow::<()>::Continue(());
        }
        if std::env::var_os("PHONE_DEBUG").is_some() && r.x + r.w > width + 0.5 {
            eprintln!("wide: {kind} {:?} {:?} {r:?}", e.id(), e.accessible_label());
        }
        let label = e.accessible_label().unwrap_or_default().to_string();
        if kind == "Text" && !label.trim().is_empty() {
            texts.push((label, r));
        } else if matches!(
            e.accessible_role(),
            Some(
                AccessibleRole::Button
                    | AccessibleRole::Checkbox
                    | AccessibleRole::Combobox
                    | AccessibleRole::Switch
            )
        ) {
            controls.push((label, r));
        }
        ControlFlow::Continue(())
    });
    let mut found = Vec::new();
    // Off the side: nothing scrolls sideways on a phone.
    for (label, r) in texts.iter().chain(&controls) {
        if r.x < -0.5 || r.x + r.w > width + 0.5 {
            found.push(format!("{label:?} runs off the side: {r:?}"));
        }
    }
    // Too small for a finger.
    for (label, r) in &controls {
        if r.h < TARGET - 0.5 || r.w < TARGET - 0.5 {
            found.push(format!("{label:?} is smaller than {TARGET} px: {r:?}"));
        }
    }
    // Texts drawn over texts, among those shown whole: a text the
    // innermost scrolled area it reaches into cuts is partly scrolled
    // away.
    let shown = |r: &Rect| {
        let clip = scrolled
            .iter()
            .filter(|f| r.overlap(f) > 0.0)
            .min_by(|a, b| (a.w * a.h).total_cmp(&(b.w * b.h)))
            .copied()
            .unwrap_or(window);
        clip.contains(r) && window.contains(r)
    };
    let whole: Vec<&(String, Rect)> = texts.iter().filter(|(_, r)| shown(r)).collect();
    for (i, (a, ra)) in whole.iter().enumerate() {
        for (b, rb) in &whole[i + 1..] {
            if ra.overlap(rb) > 2.0 {
                found.push(format!("{a:?} {ra:?} is drawn over {b:?} {rb:?}"));
            }
        }
    }
    (found, texts.len() + controls.len())
}

/// Lays the window out at every size, draws it, and checks it; `also`
/// adds a check of its own. Panics with every problem found.
fn check_sizes(h: &Headless, ui: &AppWindow, screen: &str, also: impl Fn(f32, f32) -> Vec<String>) {
    let mut all = Vec::new();
    for &(w, ht, scale) in SIZES {
        h.resize(ui, w as u32, ht as u32, scale);
        // Timers (the scroll to the newest message) and layout settle.
        h.pump_until(Duration::from_millis(120), || false);
        let shot = h.snapshot(ui).expect("render");
        assert_eq!(
            (shot.width(), shot.height()),
            ((w * scale) as u32, (ht * scale) as u32)
        );
        let (mut found, looked) = problems(ui, w, ht);
        // Without the elements' names (a release build) nothing would be
        // checked: say so rather than pass.
        assert!(
            looked >= 3,
            "{screen}: only {looked} elements seen; build the tests in debug"
        );
        found.extend(also(w, ht));
        all.extend(
            found
                .into_iter()
                .map(|p| format!("{screen} at {w}×{ht} ×{scale}: {p}")),
        );
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}

fn none(_: f32, _: f32) -> Vec<String> {
    Vec::new()
}

/// The element labelled `label` lies whole inside the window.
fn visible(ui: &AppWindow, label: &str, w: f32, h: f32) -> Vec<String> {
    let window = Rect {
        x: 0.0,
        y: 0.0,
        w,
        h,
    };
    let found: Vec<ElementHandle> = ElementHandle::find_by_accessible_label(ui, label).collect();
    match found.first() {
        None => vec![format!("no {label:?} on screen")],
        Some(e) if !window.contains(&Rect::of(e)) => {
            vec![format!(
                "{label:?} is not whole on screen: {:?}",
                Rect::of(e)
            )]
        }
        Some(_) => Vec::new(),
    }
}

fn settle(h: &Headless) {
    h.pump_until(Duration::from_millis(200), || false);
}

/// Alice's profile: Bob and a contact with a very long name, texts both
/// ways (one long, one a long unbroken link), unlocked in the window.
fn alice(dir: &std::path::Path) -> Identity {
    let (p, bob, group) = alice_with_bob(dir);
    let long = Identity::generate(
        "Maria-Magdalena Konstantinopoulou-Vanderbilt, Harbour Union",
        &mut os_rng(),
    )
    .unwrap();
    p.add_contact(&long.invite(), long.name(), 0, &mut os_rng())
        .unwrap();
    let now = strand_node::now();
    let texts = [
        "Are you still at the press centre? The network there was down all morning, and the council meeting moved to Thursday; three members confirmed they will speak on record.",
        "https://example.org/reports/2026/harbour/shipping-records-and-manifests-for-the-whole-of-october-unredacted.pdf",
        "Ping",
    ];
    let mut store = p.store().unwrap().arrived_at(now);
    for (i, text) in texts.iter().enumerate() {
        let m = Message::create(
            &bob,
            &group,
            now - 60_000 * (10 - i as u64),
            Kind::TEXT,
            text.as_bytes(),
            &mut os_rng(),
        )
        .unwrap();
        store.insert(&group.id, &m).unwrap();
    }
    store.commit().unwrap();
    drop(store);
    p.write(
        "Bob",
        "Still here. Thursday works for me.",
        now,
        &mut os_rng(),
    )
    .unwrap();
    bob
}

#[test]
fn every_screen_fits_a_phone() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();

        // First run, on a fresh profile.
        {
            let ui = AppWindow::new().unwrap();
            let _app = strand_gui::init(&ui, options(&tmp.path().join("new")));
            assert!(h.pump_until(WAIT, || !ui
                .global::<OnboardingAdapter>()
                .get_profile_path()
                .is_empty()));
            check_sizes(h, &ui, "first run", none);
        }

        let dir = tmp.path().join("alice");
        alice(&dir);
        // Relays on, reached on loopback only.
        let mut with_relays = options(&dir);
        with_relays.node.relay = Some(strand_node::RelaySettings {
            hole_punch: false,
            listen: Vec::new(),
            ..strand_node::RelaySettings::default()
        });
        let gui = Gui::new(h, with_relays);
        let ui = &gui.ui;
        let onboarding = ui.global::<OnboardingAdapter>();
        onboarding.invoke_unlock("not the passphrase".into());
        assert!(h.pump_until(WAIT, || !onboarding.get_error().is_empty()));
        check_sizes(h, ui, "unlock, wrong passphrase", none);
        onboarding.invoke_unlock(PASS.into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats));
        assert!(h.pump_until(WAIT, || gui.contacts().len() == 2));
        check_sizes(h, ui, "chats", none);

        // Bob's conversation, a file in it.
        let contacts = ui.global::<ContactsAdapter>();
        let bob = gui.contacts().iter().position(|c| c.name == "Bob").unwrap() as i32;
        contacts.invoke_open(bob);
        let c = ui.global::<ConversationAdapter>();
        assert!(h.pump_until(WAIT, || c.get_messages().row_count() == 4));
        let doc = tmp.path().join(
            "Interview notes from the council meeting, full transcript (final, corrected).txt",
        );
        std::fs::write(&doc, b"minutes of the meeting").unwrap();
        assert!(c.invoke_send_file(doc.to_str().unwrap().into()));
        assert!(h.pump_until(WAIT, || c.get_messages().row_count() == 5));
        check_sizes(h, ui, "conversation", |w, ht| visible(ui, "Message", w, ht));
        c.set_details_open(true);
        check_sizes(h, ui, "conversation details", none);
        c.set_details_open(false);
        assert!(h.pump_until(WAIT, || !c.get_safety_number().is_empty()));
        c.set_verify_open(true);
        check_sizes(h, ui, "verify", none);
        c.set_verify_open(false);
        c.set_drive_folder("/media/alice/KINGSTON".into());
        c.set_exporting(true);
        check_sizes(h, ui, "send by drive", none);
        c.set_exporting(false);
        c.set_attaching(true);
        check_sizes(h, ui, "attach a file", none);
        c.set_attaching(false);

        // The conversation with the long name: its header elides.
        contacts.invoke_open(1 - bob);
        assert!(h.pump_until(WAIT, || c.get_contact().starts_with("Maria")));
        check_sizes(h, ui, "a long name", none);
        c.set_verify_open(true);
        check_sizes(h, ui, "a long name's safety number", none);
        c.set_verify_open(false);

        // Groups: the list, a new group, one group, its members.
        let app = ui.global::<AppAdapter>();
        app.invoke_navigate(Screen::Groups);
        settle(h);
        check_sizes(h, ui, "groups, none yet", none);
        let g = ui.global::<GroupsAdapter>();
        g.invoke_new_group();
        crate::support::tick(h, &g, "Bob");
        check_sizes(h, ui, "new group", none);
        g.invoke_create("Harbour investigation, autumn".into());
        assert!(h.pump_until(WAIT, || !g.get_creating() && g.get_current() == 0));
        assert!(g.invoke_send("The shipping records are in; I'll share them Thursday.".into()));
        assert!(h.pump_until(WAIT, || g.get_messages().row_count() >= 1));
        check_sizes(h, ui, "group", |w, ht| {
            visible(ui, "Message to the group", w, ht)
        });
        g.set_members_open(true);
        check_sizes(h, ui, "group members", none);
        g.set_members_open(false);

        app.invoke_navigate(Screen::AddContact);
        ui.global::<AddContactAdapter>()
            .invoke_code_edited("strand1qqxmv3p8kxt5r2uyq0ffh5yx9wfw0kbr8k5q".into());
        settle(h);
        check_sizes(h, ui, "add contact", none);
        app.invoke_navigate(Screen::Network);
        // A part of Strand that stopped: the screen's longest message.
        strand_node::runtime::panics::install();
        let worker = std::thread::Builder::new()
            .name("strand-phone-failing".into())
            .spawn(|| panic!("a worker of the phone test failed on purpose"))
            .unwrap();
        assert!(worker.join().is_err());
        // A relay that is down (nothing listens on port 9 here): its long
        // address and error.
        let net = ui.global::<strand_gui::NetworkAdapter>();
        net.invoke_add_relay(
            "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWGRYZDHBembyGJQqQ6WgLqJWYNjnECGDVtFdxXnYyRJFk".into(),
        );
        assert!(h.pump_until(WAIT, || net
            .get_relays()
            .iter()
            .any(|r| r.state == "failing")
            && net.get_failures().contains("strand-")));
        check_sizes(h, ui, "network", none);
        app.invoke_navigate(Screen::Settings);
        assert!(h.pump_until(WAIT, || !ui
            .global::<SettingsAdapter>()
            .get_profile_path()
            .is_empty()));
        check_sizes(h, ui, "settings", none);
    });
}

/// The list rows on screen.
fn rows(ui: &AppWindow) -> Vec<ElementHandle> {
    ui.root_element()
        .query_descendants()
        .match_accessible_role(AccessibleRole::ListItem)
        .find_all()
}

fn escape(ui: &AppWindow) {
    let text: slint::SharedString = slint::platform::Key::Escape.into();
    ui.window()
        .dispatch_event(WindowEvent::KeyPressed { text: text.clone() });
    ui.window()
        .dispatch_event(WindowEvent::KeyReleased { text });
}

/// Taps a button by its label, where it is on screen.
fn tap(h: &Headless, ui: &AppWindow, label: &str) {
    let e = ElementHandle::find_by_accessible_label(ui, label)
        .next()
        .unwrap_or_else(|| panic!("no {label:?} on screen"));
    let r = Rect::of(&e);
    crate::support::click(
        ui,
        slint::LogicalPosition::new(r.x + r.w / 2.0, r.y + r.h / 2.0),
    );
    settle(h);
}

#[test]
fn the_phone_layout_is_a_stack_that_back_walks_down() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("alice");
        alice(&dir);
        let gui = Gui::new(h, options(&dir));
        let ui = &gui.ui;
        h.resize(ui, 360, 720, 2.0);
        ui.global::<OnboardingAdapter>().invoke_unlock(PASS.into());
        assert!(h.pump_until(WAIT, || gui.screen() == Screen::Chats));
        assert!(h.pump_until(WAIT, || gui.contacts().len() == 2));
        let contacts = ui.global::<ContactsAdapter>();
        let c = ui.global::<ConversationAdapter>();
        // Buttons by their label (a text inside says the same).
        let count = |label: &str| {
            ElementHandle::find_by_accessible_label(ui, label)
                .filter(|e| e.accessible_role() == Some(AccessibleRole::Button))
                .count()
        };

        // The list fills the screen, the bar below it; a tap on a contact
        // opens the conversation over the list, and the bar makes room.
        assert_eq!(count("Settings"), 1, "the bottom bar");
        let bob = gui.contacts().iter().position(|x| x.name == "Bob").unwrap();
        let row = rows(ui)
            .into_iter()
            .find(|e| e.accessible_label().is_some_and(|l| l.starts_with("Bob,")))
            .expect("Bob's row");
        let r = Rect::of(&row);
        assert!(r.w >= 300.0, "the list is the whole width: {r:?}");
        contacts.invoke_open(bob as i32);
        assert!(h.pump_until(WAIT, || c.get_messages().row_count() == 4));
        settle(h);
        assert_eq!(count("Settings"), 0, "no bar over a conversation");

        // Details, then the safety number, each a step deeper; Back (Esc)
        // walks back one step at a time, to the list.
        tap(
            h,
            ui,
            "Details: disappearing messages, mute, send by drive, safety number",
        );
        assert!(c.get_details_open());
        tap(h, ui, "Verify safety number…");
        assert!(c.get_verify_open() && !c.get_details_open());
        escape(ui);
        assert!(!c.get_verify_open());
        assert_eq!(contacts.get_current(), bob as i32);
        tap(h, ui, "Back to the chats");
        assert!(h.pump_until(WAIT, || contacts.get_current() == -1));
        settle(h);
        // Closed stays closed: the core opens nothing behind the list.
        h.pump_until(Duration::from_millis(300), || false);
        assert_eq!(contacts.get_current(), -1);
        assert_eq!(count("Settings"), 1);

        // From another screen, Back comes to the chats; on the chats it
        // does nothing.
        tap(h, ui, "Network");
        assert_eq!(gui.screen(), Screen::Network);
        escape(ui);
        settle(h);
        assert_eq!(gui.screen(), Screen::Chats);
        escape(ui);
        settle(h);
        assert_eq!(gui.screen(), Screen::Chats);

        // Wider than the breakpoint, the desktop's two columns and rail.
        h.resize(ui, 1040, 700, 1.0);
        settle(h);
        assert_eq!(count("Add contact"), 1, "the rail's entry");
        assert_eq!(count("Add"), 0, "no bottom bar");
    });
}
