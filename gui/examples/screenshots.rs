//! Renders every screen of the app with realistic sample data, headless
//! (Slint's software renderer), into `gui/screenshots/*.png`:
//!
//! ```sh
//! cargo run -p strand-gui --example screenshots
//! ```
//!
//! The data is real: a profile on disk, and a second node ("Bob") on
//! loopback that the app's node syncs with, so states such as
//! "LAN · connected" and "delivered" are what the app shows for real.

use std::path::{Path, PathBuf};
use std::time::Duration;

use slint::{ComponentHandle, Model};
use strand_gui::headless::Headless;
use strand_gui::{
    AddContactAdapter, AppAdapter, AppWindow, ContactsAdapter, ConversationAdapter,
    FilePickerAdapter, GroupsAdapter, NetworkAdapter, OnboardingAdapter, Screen, SettingsAdapter,
    Theme,
};
use strand_node::{os_rng, Delivery, KdfParams, Node, NodeConfig, Profile};
use strand_sync::{Identity, Kind, Message, WriteStore};
use strand_transport::relay::server::{RelayLimits, RelayServer, RelayServerConfig};
use strand_transport::LanConfig;

const PASS: &str = "copper kettle under the violet moon";
const WAIT: Duration = Duration::from_secs(30);
const W: u32 = 1040;
const H: u32 = 700;
const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

fn loopback() -> NodeConfig {
    NodeConfig {
        lan: Some(LanConfig {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
                "/ip6/::1/tcp/0".parse().unwrap(),
            ],
            mdns: false,
            ..LanConfig::default()
        }),
        // Relays on loopback: reached through relays only (no listener
        // for hole punching).
        relay: Some(strand_node::RelaySettings {
            hole_punch: false,
            listen: Vec::new(),
            ..strand_node::RelaySettings::default()
        }),
        ..NodeConfig::default()
    }
}

fn save(h: &Headless, ui: &AppWindow, out: &Path, name: &str) {
    // Let timers (the scroll to the newest message) and layout settle.
    h.pump_until(Duration::from_millis(300), || false);
    let shot = h.snapshot(ui).expect("render");
    let path = out.join(format!("{name}.png"));
    let file = std::fs::File::create(&path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), shot.width(), shot.height());
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .unwrap()
        .write_image_data(shot.as_bytes())
        .unwrap();
    println!("{}  {}×{}", path.display(), shot.width(), shot.height());
}

/// Texts from `from`, stored as sync would store them, each arriving a
/// few seconds after it was written.
fn receive(p: &Profile, from: &Identity, texts: &[(u64, &str)]) {
    for (t, text) in texts {
        receive_at(p, from, *t, text, t + 3000);
    }
}

/// A text written at `t`, arriving at `arrived`.
fn receive_at(p: &Profile, from: &Identity, t: u64, text: &str, arrived: u64) {
    let group = from
        .contact(&p.identity().public())
        .unwrap()
        .direct_group()
        .clone();
    let mut store = p.store().unwrap().arrived_at(arrived);
    let m = Message::create(from, &group, t, Kind::TEXT, text.as_bytes(), &mut os_rng()).unwrap();
    store.insert(&group.id, &m).unwrap();
    store.commit().unwrap();
}

fn write(p: &mut Profile, to: &str, texts: &[(u64, &str, Delivery)]) {
    for (t, text, state) in texts {
        let (g, k) = p.write(to, text, *t, &mut os_rng()).unwrap();
        p.mark(&g, &k, *state).unwrap();
    }
}

fn main() {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    std::fs::create_dir_all(&out).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let h = Headless::install(W, H).unwrap();
    let now = strand_node::now();
    let rng = &mut os_rng();

    // First run.
    let options = |dir: PathBuf, dark| strand_gui::Options {
        downloads: dir.with_file_name("downloads"),
        profile: dir,
        node: loopback(),
        kdf: Some(KdfParams::insecure_for_tests()),
        dark,
        notify: strand_gui::Notify::Off,
    };
    {
        let ui = AppWindow::new().unwrap();
        let _app = strand_gui::init(&ui, options(tmp.path().join("new"), false));
        h.pump_until(WAIT, || {
            !ui.global::<OnboardingAdapter>()
                .get_profile_path()
                .is_empty()
        });
        save(&h, &ui, &out, "01-first-run");
        // The phone layout: 360 logical px wide.
        h.resize(&ui, 360, 720, 1.0);
        save(&h, &ui, &out, "18-phone-first-run");
        h.resize(&ui, W, H, 1.0);
    }

    // Alice's profile: five contacts, a few days of conversation.
    let dir = tmp.path().join("alice");
    // Bob runs his own node below, so his identity lives in his profile.
    let bob_dir = tmp.path().join("bob");
    let bob_profile = Profile::create(
        &bob_dir,
        "Bob Okafor",
        "bob pass",
        KdfParams::insecure_for_tests(),
        rng,
    )
    .unwrap();
    let alice_invite = {
        let mut p = Profile::create(
            &dir,
            "Alice Moreau",
            PASS,
            KdfParams::insecure_for_tests(),
            rng,
        )
        .unwrap();
        let others: Vec<Identity> = [
            "Carol Nguyen",
            "Dmitri Ivanov",
            "Esther Cohen",
            "Farah Haddad",
        ]
        .iter()
        .map(|n| Identity::generate(n, rng).unwrap())
        .collect();
        let bob_identity = bob_profile.identity();
        let bob = &*bob_identity;
        for who in std::iter::once(bob).chain(&others) {
            p.add_contact(&who.invite(), who.name(), now - 9 * 24 * HOUR, rng)
                .unwrap();
        }
        // Carol compared safety numbers with Alice in person.
        p.set_verified("Carol Nguyen", true, rng).unwrap();
        let [carol, dmitri, esther, _farah] = &others[..] else {
            unreachable!()
        };
        let y = now - 24 * HOUR;
        receive(
            &p,
            bob,
            &[
                (
                    y - 3 * HOUR,
                    "Are you still at the press centre? The network there was down all morning.",
                ),
                (
                    y - 3 * HOUR + 2 * MIN,
                    "If it is, we can meet at the library instead.",
                ),
            ],
        );
        write(
            &mut p,
            "Bob Okafor",
            &[(
                y - 2 * HOUR,
                "Still here. Wi-Fi is back, but I'm only using Strand on the local network.",
                Delivery::Delivered,
            )],
        );
        receive(&p, bob, &[
            (now - 50 * MIN, "I've got the interview notes from yesterday. They are long — I'll send them in parts so you can start reading on the way.\n\nPart 1: the council meeting moved to Thursday; three members confirmed they will speak on record."),
            (now - 48 * MIN, "Part 2 after lunch."),
        ]);
        write(
            &mut p,
            "Bob Okafor",
            &[
                (
                    now - 20 * MIN,
                    "Thanks! Got part 1. Thursday works for me.",
                    Delivery::Delivered,
                ),
                (
                    now - 18 * MIN,
                    "Can you also bring the printed copies?",
                    Delivery::Sent,
                ),
            ],
        );
        receive(
            &p,
            carol,
            &[(
                now - 3 * HOUR,
                "The photos from the march are ready; I'll bring the card tomorrow.",
            )],
        );
        write(
            &mut p,
            "Carol Nguyen",
            &[(now - 2 * HOUR, "Great, see you at nine.", Delivery::Queued)],
        );
        receive(
            &p,
            dmitri,
            &[
                (
                    now - 30 * HOUR,
                    "Battery at 10 %, switching off until tonight.",
                ),
                (now - 29 * HOUR, "Back. Did my message reach you?"),
                (now - 28 * HOUR, "Ping"),
            ],
        );
        // Alice read those; then one Dmitri dated six days back arrives:
        // it goes below them, unread, marked with its date.
        let keys = p.conversation_keys("Dmitri Ivanov").unwrap();
        p.mark_read("Dmitri Ivanov", keys.last().unwrap()).unwrap();
        receive_at(
            &p,
            dmitri,
            now - 6 * 24 * HOUR,
            "The list of names is with Farah, not with me.",
            now - 2 * HOUR,
        );
        receive(
            &p,
            esther,
            &[(now - 4 * 24 * HOUR, "Shabbat shalom! Talk next week.")],
        );
        write(
            &mut p,
            "Esther Cohen",
            &[(
                now - 4 * 24 * HOUR + HOUR,
                "Shabbat shalom 🙂",
                Delivery::Delivered,
            )],
        );
        // Read up to each conversation's newest message but Dmitri's last
        // and Bob's last two.
        for name in ["Carol Nguyen", "Esther Cohen"] {
            let keys = p.conversation_keys(name).unwrap();
            p.mark_read(name, keys.last().unwrap()).unwrap();
        }
        let keys = p.conversation_keys("Bob Okafor").unwrap();
        p.mark_read("Bob Okafor", &keys[2]).unwrap();
        p.identity().invite()
    };
    bob_profile
        .add_contact(&alice_invite, "Alice", now, rng)
        .unwrap();
    // Bob's own node, online on loopback, so the app shows him connected.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bob_node = rt.block_on(Node::start(bob_profile, loopback())).unwrap();
    let bob_addr = rt.block_on(bob_node.wait_listening(WAIT))[0].clone();

    let ui = AppWindow::new().unwrap();
    let _app = strand_gui::init(&ui, options(dir.clone(), false));
    h.pump_until(WAIT, || {
        !ui.global::<OnboardingAdapter>()
            .get_profile_path()
            .is_empty()
    });
    let onboarding = ui.global::<OnboardingAdapter>();
    onboarding.invoke_unlock("wrong horse battery".into());
    h.pump_until(WAIT, || !onboarding.get_error().is_empty());
    save(&h, &ui, &out, "02-unlock-wrong-passphrase");
    onboarding.invoke_unlock(PASS.into());
    h.pump_until(WAIT, || {
        ui.global::<AppAdapter>().get_screen() == Screen::Chats
    });
    ui.global::<NetworkAdapter>()
        .invoke_dial(bob_addr.to_string().into());
    let contacts = ui.global::<ContactsAdapter>();
    h.pump_until(WAIT, || contacts.get_contacts().iter().any(|c| c.online));
    let bob_row = contacts
        .get_contacts()
        .iter()
        .position(|c| c.name == "Bob Okafor")
        .unwrap();
    contacts.invoke_open(bob_row as i32);
    let messages = ui.global::<ConversationAdapter>().get_messages();
    h.pump_until(WAIT, || messages.row_count() == 7);
    save(&h, &ui, &out, "03-chats");

    ui.global::<Theme>().set_dark(true);
    save(&h, &ui, &out, "04-chats-dark");
    ui.global::<Theme>().set_dark(false);

    // Bob's safety number, as Alice would compare it with him.
    let conv = ui.global::<ConversationAdapter>();
    h.pump_until(WAIT, || !conv.get_safety_number().is_empty());
    conv.set_verify_open(true);
    save(&h, &ui, &out, "10-verify");
    conv.set_verify_open(false);

    // A message dated well before it arrived, in Dmitri's conversation.
    let row = |name: &str| {
        contacts
            .get_contacts()
            .iter()
            .position(|c| c.name == name)
            .unwrap() as i32
    };
    contacts.invoke_open(row("Dmitri Ivanov"));
    h.pump_until(WAIT, || {
        messages.row_count() == 4 && messages.row_data(3).is_some_and(|m| !m.dated.is_empty())
    });
    save(&h, &ui, &out, "11-late-message");
    contacts.invoke_open(row("Bob Okafor"));
    h.pump_until(WAIT, || messages.row_count() == 7);
    // Send by removable drive: the folder it offers.
    conv.set_drive_folder("/media/alice/KINGSTON".into());
    conv.set_exporting(true);
    save(&h, &ui, &out, "16-send-by-drive");
    conv.set_exporting(false);

    ui.global::<AppAdapter>()
        .invoke_navigate(Screen::AddContact);
    let add = ui.global::<AddContactAdapter>();
    add.invoke_code_edited("strand1qqxmv3p8kxt5r2uyq0ffh5yx9wfw0kbr8k5q".into());
    save(&h, &ui, &out, "05-add-contact");

    ui.global::<AppAdapter>().invoke_navigate(Screen::Network);
    let net = ui.global::<NetworkAdapter>();
    h.pump_until(WAIT, || net.get_peers().row_count() > 0);
    // A relay that works, and one that is down.
    let relay = rt
        .block_on(RelayServer::start(RelayServerConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            announce: Vec::new(),
            key: [0x33; 32],
            limits: RelayLimits::default(),
            only: None,
        }))
        .unwrap();
    let relay_addr = rt.block_on(relay.addresses())[0].to_string();
    net.invoke_add_relay(relay_addr.into());
    net.invoke_add_relay(
        "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWGRYZDHBembyGJQqQ6WgLqJWYNjnECGDVtFdxXnYyRJFk".into(),
    );
    h.pump_until(WAIT, || {
        let r = net.get_relays();
        r.row_count() == 2
            && r.iter()
                .all(|r| r.state == "reserved" || r.state == "failing")
    });
    // Alice carries for her contacts.
    net.set_carrying(true);
    net.invoke_set_carrying(true);
    h.pump_until(WAIT, || net.get_carry_status().starts_with("Holding"));
    save(&h, &ui, &out, "06-network");
    // The whole screen, down to carrying and the drive.
    h.resize(&ui, W, 1250, 1.0);
    save(&h, &ui, &out, "17-network-carrying");
    h.resize(&ui, W, H, 1.0);

    ui.global::<AppAdapter>().invoke_navigate(Screen::Settings);
    h.pump_until(WAIT, || {
        !ui.global::<SettingsAdapter>().get_profile_path().is_empty()
    });
    save(&h, &ui, &out, "07-settings");

    // A group: made in the app with Bob and Carol; Bob (online) adds
    // Gideon, whom Alice does not know, and writes.
    ui.global::<AppAdapter>().invoke_navigate(Screen::Groups);
    let groups = ui.global::<GroupsAdapter>();
    groups.invoke_new_group();
    // Ticked by key, as a click on their box does.
    h.pump_until(WAIT, || groups.get_contacts().row_count() >= 2);
    for name in ["Bob Okafor", "Carol Nguyen"] {
        if let Some(c) = groups.get_contacts().iter().find(|c| c.name == name) {
            groups.invoke_toggle(c.key, true);
        }
    }
    h.pump_until(Duration::from_millis(300), || false);
    save(&h, &ui, &out, "13-new-group");
    groups.invoke_create("Newsroom".into());
    h.pump_until(WAIT, || !groups.get_creating());
    let joined = |n: &Node| n.profile().groups().map(|g| g.len() == 1).unwrap_or(false);
    h.pump_until(WAIT, || joined(&bob_node));
    let gideon = Identity::generate("Gideon Mensah", rng).unwrap();
    rt.block_on(bob_node.add_contact(&gideon.invite().to_text(), "Gideon Mensah"))
        .unwrap();
    // Only admins add members: Alice makes Bob one, and he adds Gideon
    // once that has reached him.
    groups.invoke_make_admin("Bob Okafor".into());
    assert!(h.pump_until(WAIT, || rt
        .block_on(bob_node.change_group(
            "Newsroom",
            strand_node::GroupAction::Add("Gideon Mensah".into()),
        ))
        .is_ok()));
    rt.block_on(bob_node.send_group(
        "Newsroom",
        "I added Gideon: he covers the harbour and has the shipping records.",
    ))
    .unwrap();
    h.pump_until(WAIT, || {
        groups.get_members().row_count() == 4 && groups.get_messages().row_count() == 1
    });
    groups.invoke_set_timer(4);
    h.pump_until(WAIT, || groups.get_timer() == 4);
    groups.invoke_send("Welcome, Gideon. Thursday's meeting is at the library, 10:00.".into());
    rt.block_on(bob_node.send_group("Newsroom", "I'll bring the printed copies."))
        .unwrap();
    // A photo of the harbour (drawn here), and a document.
    let photo = tmp.path().join("harbour.jpg");
    image::RgbImage::from_fn(640, 400, |x, y| {
        let sky = y < 220;
        image::Rgb(if sky {
            [120 + (y / 4) as u8, 170 + (y / 8) as u8, 230]
        } else {
            [30, 60 + ((x + y) % 40) as u8, 110 + (x % 30) as u8]
        })
    })
    .save(&photo)
    .unwrap();
    rt.block_on(bob_node.send_file(strand_node::Conversation::Group("Newsroom"), &photo))
        .unwrap();
    h.pump_until(WAIT, || {
        groups
            .get_messages()
            .iter()
            .any(|m| m.has_preview && m.file_ready)
    });
    save(&h, &ui, &out, "12-groups");
    groups.set_members_open(true);
    save(&h, &ui, &out, "14-group-members");
    groups.set_members_open(false);
    // Attaching a file: the picker over a folder of documents.
    let docs = tmp.path().join("Documents");
    std::fs::create_dir_all(docs.join("Photos")).unwrap();
    std::fs::create_dir_all(docs.join("Interviews")).unwrap();
    for (name, len) in [
        ("Budget 2026.ods", 48_213),
        ("harbour-notes.txt", 6_104),
        ("shipping-records.pdf", 2_870_112),
        ("source-list.odt", 19_377),
    ] {
        std::fs::write(docs.join(name), vec![0u8; len]).unwrap();
    }
    groups.set_attaching(true);
    h.pump_until(Duration::from_millis(200), || false);
    let picker = ui.global::<FilePickerAdapter>();
    picker.invoke_go(docs.join("shipping-records.pdf").to_str().unwrap().into());
    h.pump_until(Duration::from_millis(200), || false);
    save(&h, &ui, &out, "15-file-picker");
    groups.set_attaching(false);

    ui.global::<AppAdapter>().invoke_navigate(Screen::Chats);
    h.resize(&ui, W, H, 2.0);
    save(&h, &ui, &out, "08-chats-200-percent");
    h.resize(&ui, W, H, 1.0);

    // The phone layout: the chats, a conversation and its details, a
    // group, and the other screens; then on its side.
    h.resize(&ui, 360, 720, 1.0);
    contacts.invoke_close();
    save(&h, &ui, &out, "19-phone-chats");
    contacts.invoke_open(row("Bob Okafor"));
    h.pump_until(WAIT, || messages.row_count() == 7);
    save(&h, &ui, &out, "20-phone-conversation");
    conv.set_details_open(true);
    save(&h, &ui, &out, "21-phone-details");
    conv.set_details_open(false);
    h.resize(&ui, 720, 360, 1.0);
    save(&h, &ui, &out, "22-phone-landscape");
    h.resize(&ui, 360, 720, 1.0);
    contacts.invoke_close();
    for (screen, name) in [
        (Screen::Groups, "23-phone-group"),
        (Screen::AddContact, "24-phone-add-contact"),
        (Screen::Network, "25-phone-network"),
        (Screen::Settings, "26-phone-settings"),
    ] {
        ui.global::<AppAdapter>().invoke_navigate(screen);
        save(&h, &ui, &out, name);
    }
    h.resize(&ui, W, H, 1.0);
    ui.global::<AppAdapter>().invoke_navigate(Screen::Chats);

    // The profile held by another process (here: Bob's node holds Bob's).
    {
        let other = AppWindow::new().unwrap();
        let _app = strand_gui::init(&other, options(bob_dir.clone(), false));
        h.pump_until(WAIT, || other.global::<OnboardingAdapter>().get_in_use());
        save(&h, &other, &out, "09-profile-in-use");
    }
    rt.shutdown_timeout(Duration::from_secs(2));
}
