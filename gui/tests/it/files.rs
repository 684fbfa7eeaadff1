//! Files in the app against a real second node: attach one by its path
//! and one with the file picker, receive an image that shows its preview, save it.

use slint::{ComponentHandle, Model};
use strand_gui::{ConversationAdapter, FilePickerAdapter, Options};
use strand_node::Conversation;

use crate::support::{on_ui, options, Gui, WAIT};

#[test]
fn files_are_sent_shown_and_saved_from_the_app() {
    on_ui(|h| {
        let tmp = tempfile::tempdir().unwrap();
        // Where *Save* writes, given to the app rather than through
        // `STRAND_DOWNLOADS`: setting the environment races with the
        // other threads of this binary that read it, and stays set for
        // every later test.
        let downloads = tmp.path().join("downloads");
        let gui = Gui::new(
            h,
            Options {
                downloads: downloads.clone(),
                ..options(&tmp.path().join("alice"))
            },
        );
        gui.create(h, "Alice");
        let (rt, bob) = gui.bob_linked(h, tmp.path());
        gui.ui
            .global::<strand_gui::ContactsAdapter>()
            .invoke_open(0);
        let c = gui.ui.global::<ConversationAdapter>();
        assert!(h.pump_until(WAIT, || c.get_contact() == "Bob"));

        // Attach a file by its path; a path that is not a file says why.
        assert!(c.invoke_send_file("/nonexistent/file.txt".into()));
        assert!(h.pump_until(WAIT, || c.get_error().contains("Not sent")));
        let doc = tmp.path().join("notes.txt");
        std::fs::write(&doc, b"minutes of the meeting").unwrap();
        assert!(c.invoke_send_file(doc.to_str().unwrap().into()));
        assert!(h.pump_until(WAIT, || bob
            .profile()
            .conversation("Alice")
            .unwrap()
            .iter()
            .any(|m| m
                .file
                .as_ref()
                .is_some_and(|f| f.name == "notes.txt" && f.complete()))));

        // The file picker: folders first, hidden entries left out; a folder
        // opens, Up comes back with it highlighted; a file is picked and
        // sent as the picker's "Send file" does.
        let box_dir = tmp.path().join("box");
        std::fs::create_dir_all(box_dir.join("Drafts")).unwrap();
        std::fs::write(box_dir.join("report.pdf"), vec![7u8; 1500]).unwrap();
        std::fs::write(box_dir.join("agenda.txt"), b"1. budget").unwrap();
        std::fs::write(box_dir.join(".secret"), b"hidden").unwrap();
        std::fs::write(box_dir.join("Drafts").join("draft.txt"), b"v1").unwrap();
        let p = gui.ui.global::<FilePickerAdapter>();
        c.set_attaching(true);
        // What the picker does when it is shown.
        p.invoke_start();
        assert!(p.get_dir() != "", "it lists a folder");
        p.invoke_go("/no/such/folder".into());
        assert!(p.get_error().contains("no such file or folder"));
        p.invoke_go(box_dir.to_str().unwrap().into());
        assert_eq!(p.get_error(), "");
        let rows = |p: &FilePickerAdapter| -> Vec<(String, bool, String)> {
            p.get_entries()
                .iter()
                .map(|e| (e.name.to_string(), e.folder, e.size.to_string()))
                .collect()
        };
        assert_eq!(
            rows(&p),
            [
                ("Drafts".to_owned(), true, String::new()),
                ("agenda.txt".to_owned(), false, "9 B".to_owned()),
                ("report.pdf".to_owned(), false, "1.5 kB".to_owned()),
            ]
        );
        assert_eq!(p.get_chosen_path(), "");
        p.invoke_pick(0);
        assert_eq!(p.get_dir(), box_dir.join("Drafts").to_str().unwrap());
        assert_eq!(rows(&p).len(), 1);
        p.invoke_up();
        assert_eq!(p.get_dir(), box_dir.to_str().unwrap());
        assert_eq!(p.get_selected(), 0);
        assert_eq!(p.get_chosen_path(), "", "a folder is never sent");
        p.invoke_pick(2);
        assert_eq!(p.get_selected(), 2);
        let chosen = p.get_chosen_path();
        assert_eq!(chosen, box_dir.join("report.pdf").to_str().unwrap());
        assert!(c.invoke_send_file(chosen));
        assert!(h.pump_until(WAIT, || bob
            .profile()
            .conversation("Alice")
            .unwrap()
            .iter()
            .any(|m| m
                .file
                .as_ref()
                .is_some_and(|f| f.name == "report.pdf" && f.complete()))));
        // A typed file path picks it in its folder; the next start opens
        // the folder used last.
        p.invoke_go(box_dir.join("agenda.txt").to_str().unwrap().into());
        assert_eq!(p.get_selected(), 1);
        p.invoke_start();
        assert_eq!(p.get_dir(), box_dir.to_str().unwrap());
        assert_eq!(p.get_selected(), 1, "still picked");
        c.set_attaching(false);

        // Bob sends a photo: Alice's conversation shows it with its preview.
        let png = tmp.path().join("harbour.png");
        image::RgbImage::from_fn(400, 300, |x, y| {
            image::Rgb([(x % 200) as u8, 80, (y % 250) as u8])
        })
        .save(&png)
        .unwrap();
        rt.block_on(bob.send_file(Conversation::Contact("Alice"), &png))
            .unwrap();
        let photo = || {
            let m = c.get_messages();
            (0..m.row_count())
                .filter_map(|i| m.row_data(i))
                .find(|r| r.file_name == "harbour.png" && r.file_ready && r.has_preview)
        };
        assert!(h.pump_until(WAIT, || photo().is_some()));
        let row = photo().unwrap();
        assert!(!row.outgoing);
        let side = row.preview.size();
        assert_eq!(
            (side.width, side.height),
            (160, 120),
            "the 400×300 photo's preview"
        );
        c.invoke_save_file(row.id.clone());
        assert!(h.pump_until(WAIT, || c.get_notice().starts_with("Saved to")));
        assert_eq!(
            std::fs::read(downloads.join("harbour.png")).unwrap(),
            std::fs::read(&png).unwrap()
        );

        // A file of many parts, sent while the conversation is open: its
        // message arrives before its parts, and the row follows them in
        // until the file is all here (and can be saved).
        let big = tmp.path().join("survey.bin");
        let data: Vec<u8> = (0..64 * 256 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&big, &data).unwrap();
        rt.block_on(bob.send_file(Conversation::Contact("Alice"), &big))
            .unwrap();
        let survey = || {
            let m = c.get_messages();
            (0..m.row_count())
                .filter_map(|i| m.row_data(i))
                .find(|r| r.file_name == "survey.bin")
        };
        assert!(h.pump_until(WAIT, || survey().is_some()));
        assert!(
            h.pump_until(WAIT, || survey().is_some_and(|r| r.file_ready)),
            "the row still says {:?}",
            survey().map(|r| r.file_detail)
        );
        rt.block_on(bob.shutdown());
    });
}
