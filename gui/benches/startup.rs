//! Startup to first frame over a store of 100,000 messages, and what
//! scrolling a 10,000-message conversation holds in memory.
//!
//! ```sh
//! cargo bench -p strand-gui
//! ```
//!
//! Target: first frame ≤ 1 s; a 10,000-message conversation is
//! never decrypted whole. Baseline, measured in the same run: reading that
//! conversation whole (`Profile::conversation`), as a UI without paging
//! would.

use std::time::{Duration, Instant};

use slint::{ComponentHandle, Model};
use strand_gui::adapters::conversation::{with_model, MAX_PAGES, PAGE};
use strand_gui::headless::Headless;
use strand_gui::{
    AppAdapter, AppWindow, ContactsAdapter, ConversationAdapter, OnboardingAdapter, Screen,
};
use strand_node::{os_rng, KdfParams, NodeConfig, Profile};
use strand_sync::{Identity, Kind, Message, WriteStore};
use strand_transport::LanConfig;

const CONTACTS: usize = 10;
const PER_CONTACT: usize = 10_000;
const PASS: &str = "copper kettle under the violet moon";
const WAIT: Duration = Duration::from_secs(120);

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // Under `cargo test` (which runs benches once with --bench absent) do
    // nothing: this takes a minute to set up.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let started = Instant::now();
    let h = Headless::install(1040, 700).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("profile");

    // A profile with 100,000 messages: 10 contacts × 10,000 texts each,
    // with the default (real) passphrase hashing.
    let t = Instant::now();
    {
        let rng = &mut os_rng();
        let p = Profile::create(&dir, "Alice", PASS, KdfParams::default(), rng).unwrap();
        let t0 = strand_node::now() - (PER_CONTACT as u64) * 60_000;
        for c in 0..CONTACTS {
            let who = Identity::generate(&format!("Contact {c:02}"), rng).unwrap();
            p.add_contact(&who.invite(), who.name(), 0, rng).unwrap();
            let group = who
                .contact(&p.identity().public())
                .unwrap()
                .direct_group()
                .clone();
            let mut store = p.store().unwrap();
            for i in 0..PER_CONTACT {
                let text = format!(
                    "message {i} from {}: the quick brown fox jumps over the lazy dog",
                    who.name()
                );
                let m = Message::create(
                    &who,
                    &group,
                    t0 + i as u64 * 60_000,
                    Kind::TEXT,
                    text.as_bytes(),
                    rng,
                )
                .unwrap();
                store.insert(&group.id, &m).unwrap();
            }
            store.commit().unwrap();
        }
    }
    let size = std::fs::metadata(dir.join(strand_node::schema::DB_FILE))
        .unwrap()
        .len();
    println!(
        "setup: {} messages, {:.1} MB store, {:.1} s",
        CONTACTS * PER_CONTACT,
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Baselines, same run: the passphrase KDF alone, and reading one
    // 10,000-message conversation whole.
    let t = Instant::now();
    let p = Profile::open(&dir, PASS).unwrap();
    let kdf = t.elapsed();
    let rss0 = rss_kib();
    let t = Instant::now();
    let whole = p.conversation("Contact 00").unwrap();
    let whole_time = t.elapsed();
    let whole_bytes: usize = whole
        .iter()
        .map(|m| m.text.len() + std::mem::size_of_val(m))
        .sum();
    assert_eq!(whole.len(), PER_CONTACT);
    drop(whole);
    drop(p);
    let _ = rss0;

    // 1. Launch to the first frame (the unlock screen).
    let t = Instant::now();
    let ui = AppWindow::new().unwrap();
    let options = strand_gui::Options {
        profile: dir.clone(),
        downloads: tmp.path().join("downloads"),
        node: NodeConfig {
            lan: Some(LanConfig {
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
                mdns: false,
                ..LanConfig::default()
            }),
            ..NodeConfig::default()
        },
        kdf: Some(KdfParams::default()),
        dark: false,
        notify: strand_gui::Notify::Off,
    };
    let _app = strand_gui::init(&ui, options);
    assert!(h.pump_until(WAIT, || !ui
        .global::<OnboardingAdapter>()
        .get_profile_path()
        .is_empty()));
    h.snapshot(&ui).unwrap();
    let first_frame = t.elapsed();

    // 2. Unlock to the first frame of the contact list (KDF included).
    let t = Instant::now();
    ui.global::<OnboardingAdapter>().invoke_unlock(PASS.into());
    let contacts = ui.global::<ContactsAdapter>();
    assert!(h.pump_until(WAIT, || ui.global::<AppAdapter>().get_screen()
        == Screen::Chats
        && contacts.get_contacts().row_count() == CONTACTS));
    h.snapshot(&ui).unwrap();
    let unlocked = t.elapsed();

    // 3. Open a 10,000-message conversation to its first frame.
    let t = Instant::now();
    let row = contacts
        .get_contacts()
        .iter()
        .position(|c| c.name == "Contact 00")
        .unwrap();
    contacts.invoke_open(row as i32);
    let messages = ui.global::<ConversationAdapter>().get_messages();
    assert!(h.pump_until(WAIT, || messages.row_count() == PER_CONTACT
        && messages.row_data(PER_CONTACT - 1).is_some_and(|m| m.loaded)));
    h.snapshot(&ui).unwrap();
    let opened = t.elapsed();

    // 4. Scroll from the newest message to the oldest, 20 rows at a time.
    let t = Instant::now();
    let mut most = 0;
    let mut row = PER_CONTACT;
    while row > 0 {
        let lo = row.saturating_sub(20);
        for r in lo..row {
            messages.row_data(r);
        }
        assert!(h.pump_until(WAIT, || (lo..row)
            .all(|r| messages.row_data(r).is_some_and(|m| m.loaded))));
        most = most.max(with_model(&ui, |m| m.pages_held()).unwrap());
        row = lo;
    }
    let scrolled = t.elapsed();

    println!();
    println!("| figure | measured | same-run baseline | target |");
    println!("|---|---|---|---|");
    println!(
        "| launch → first frame (unlock screen) | **{}** | — | ≤ 1 s |",
        ms(first_frame)
    );
    println!("| unlock → first frame of 10 contacts over 100,000 messages | **{}** | Argon2id alone {} | ≤ 1 s after the KDF |", ms(unlocked), ms(kdf));
    println!(
        "| open a 10,000-message conversation → first frame | **{}** | reading it whole: {} | — |",
        ms(opened),
        ms(whole_time)
    );
    println!(
        "| scroll all 10,000 rows: most messages decrypted at once | **{}** ({} pages × {}) | reading it whole: {} messages, {:.1} MB | never all |",
        most * PAGE, most, PAGE, PER_CONTACT, whole_bytes as f64 / 1e6
    );
    println!(
        "| scroll all 10,000 rows, 20 at a time | {} ({:.0} µs a row) | — | — |",
        ms(scrolled),
        scrolled.as_secs_f64() * 1e6 / PER_CONTACT as f64
    );
    println!(
        "| resident memory after scrolling | {:.1} MiB | — | — |",
        rss_kib() as f64 / 1024.0
    );
    assert!(most <= MAX_PAGES);
    println!("\n(total {:.1} s)", started.elapsed().as_secs_f64());
}
