//! What others wrote, made safe to show on a terminal or in the app.
//!
//! A text, a member's name or a file name comes from someone else, who
//! chose every character. Shown raw, a newline forges a whole line (under
//! any name, without its "(unverified)" mark), an escape sequence drives
//! the terminal (a window title, on some terminals the clipboard), and a
//! direction override or an invisible character makes `invoice<U+202E>gpj.sh`
//! show as `invoicehs.jpg`, a photo. So every such string is shown through here: control
//! characters, direction-changing and invisible characters appear as a
//! visible `<U+202E>`, and a text's line breaks start a marked
//! continuation line that cannot pass for another message.

use std::fmt::Write;

/// Marks the start of a continuation line of a multi-line text.
pub const CONTINUATION: &str = "  │ ";

/// `text` on one line: line breaks and every control, invisible or
/// direction-changing character shown as `<U+XXXX>`.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (c, hidden) in marked(text) {
        push_visible(&mut out, c, hidden);
    }
    out
}

/// `text` over as many lines as it has: each line break starts a new line
/// with `indent` then [`CONTINUATION`]; everything else as [`one_line`].
pub fn lines(text: &str, indent: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(indent);
            out.push_str(CONTINUATION);
        }
        // A CR before the break is the break's; any other one is shown.
        let line = line.strip_suffix('\r').unwrap_or(line);
        for (c, hidden) in marked(line) {
            push_visible(&mut out, c, hidden);
        }
    }
    out
}

/// `text` for the app: line breaks kept (a bubble shows them as such),
/// every other control, invisible or direction-changing character shown
/// as `<U+XXXX>`.
pub fn multiline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (c, hidden) in marked(text) {
        if c == '\n' {
            out.push(c);
        } else {
            push_visible(&mut out, c, hidden);
        }
    }
    out
}

/// Each character of `text` with whether it must not reach a screen as it
/// is: a control character, or one that is invisible or changes direction
/// where it stands ([`strand_sync::mark_invisible`]: a joiner between two
/// emoji is part of them).
pub fn marked(text: &str) -> impl Iterator<Item = (char, bool)> + '_ {
    strand_sync::mark_invisible(text).map(|(c, invisible)| (c, invisible || c.is_control()))
}

/// `text` without what [`marked`] marks: what is left shows.
pub fn visible(text: &str) -> String {
    marked(text)
        .filter_map(|(c, hidden)| (!hidden).then_some(c))
        .collect()
}

/// `json`, as serde_json writes it, with every character [`marked`]
/// would show as `<U+XXXX>` written as a JSON escape (`\u202e`; two for
/// one beyond the BMP): the same JSON value, but printed on a terminal
/// (`strand read --json | less`, a log) it can neither act nor hide.
/// serde_json escapes only `"`, `\` and U+0000 to U+001F; those are
/// already escaped here, and the rest of what is hidden (DEL, C1 controls,
/// invisible and direction-changing characters) can only stand inside a
/// string, so escaping it changes no string's value.
pub fn json_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for (c, hidden) in marked(json) {
        if u32::from(c) >= 0x7f && hidden {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The start of `text`, at most `chars` characters, and whether it had
/// more: what a preview shows of a text ([`crate::NodeEvent::Received`],
/// a notification), which says it was cut (with `…`) when it was.
///
/// The cut is between two characters as they show (extended grapheme
/// clusters, as `profile::base::cut` cuts by bytes), where every
/// character of the start shows as it does in the whole text. Whether a
/// zero-width joiner, a variation selector or a flag's tag is hidden
/// ([`marked`]) depends on its neighbours, so a cut between characters
/// could leave 👨‍👩's joiner dangling and shown as `<U+200D>` in the
/// preview while the whole text shows the family. The start may then be
/// shorter than `chars`. Only if no such cut is left (the first cluster is
/// longer than `chars`: a letter under hundreds of marks) is the cut
/// between characters, so the preview is never longer than `chars`.
pub fn first_chars(text: &str, chars: usize) -> (&str, bool) {
    use unicode_segmentation::UnicodeSegmentation;
    let Some((limit, _)) = text.char_indices().nth(chars) else {
        return (text, false);
    };
    let ends: Vec<usize> = text
        .grapheme_indices(true)
        .map(|(at, cluster)| at + cluster.len())
        .take_while(|&end| end <= limit)
        .collect();
    let shows_alike = |end: usize| {
        marked(&text[..end])
            .zip(marked(text))
            .all(|(start, whole)| start == whole)
    };
    let end = ends
        .into_iter()
        .rev()
        .find(|&end| shows_alike(end))
        .unwrap_or(limit);
    (&text[..end], true)
}

fn push_visible(out: &mut String, c: char, hidden: bool) {
    if c == '\t' {
        out.push_str("    ");
    } else if hidden {
        let _ = write!(out, "<U+{:04X}>", c as u32);
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_acts_and_nothing_hides() {
        assert_eq!(one_line("hi\nbob: fake"), "hi<U+000A>bob: fake");
        assert_eq!(one_line("\x1b]0;pwned\x07"), "<U+001B>]0;pwned<U+0007>");
        assert_eq!(one_line("invoice\u{202e}gpj.sh"), "invoice<U+202E>gpj.sh");
        assert_eq!(one_line("a\u{200b}b"), "a<U+200B>b");
        assert_eq!(one_line("café 🙂"), "café 🙂");
        assert_eq!(
            lines("one\r\ntwo\n2026-01-01 alice: fake", "      "),
            "one\n        │ two\n        │ 2026-01-01 alice: fake"
        );
        assert_eq!(multiline("a\nb\x1b[2J"), "a\nb<U+001B>[2J");
    }

    #[test]
    fn an_emojis_joiner_shows_as_part_of_it_and_nowhere_else() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(one_line(family), family);
        assert_eq!(multiline(&format!("{family}\nok")), format!("{family}\nok"));
        assert_eq!(lines(family, ""), family);
        assert_eq!(
            visible(&format!("A\u{200D}b {family}")),
            format!("Ab {family}")
        );
        assert_eq!(one_line("pay\u{200D}pal"), "pay<U+200D>pal");
        assert_eq!(
            one_line("\u{1F468}\u{200D}\u{202E}"),
            "\u{1F468}<U+200D><U+202E>"
        );
        // A variation selector that selects nothing shows; an emoji's not.
        assert_eq!(one_line("ann\u{FE00}"), "ann<U+FE00>");
        assert_eq!(one_line("ok \u{2764}\u{FE0F}"), "ok \u{2764}\u{FE0F}");
        let json = serde_json::to_string(&format!("{family}x\u{200D}y")).unwrap();
        assert_eq!(json_escaped(&json), format!("\"{family}x\\u200dy\""));
    }

    #[test]
    fn a_preview_is_cut_between_characters_and_says_so() {
        assert_eq!(first_chars("café", 4), ("café", false));
        assert_eq!(first_chars("café", 3), ("caf", true));
        assert_eq!(first_chars("éé🙂x", 3), ("éé🙂", true));
        assert_eq!(first_chars("", 0), ("", false));
        assert_eq!(first_chars("a", 0), ("", true));
    }

    /// A preview is cut between characters as they show, where what it
    /// keeps shows as in the whole text. Before, it was cut at the 200th
    /// character whatever stood there: 198 letters then 👨‍👩 became 198
    /// letters, 👨 and a dangling joiner, shown as `<U+200D>`.
    #[test]
    fn a_preview_shows_as_the_start_of_the_whole_text() {
        let text = format!("{}\u{1F468}\u{200D}\u{1F469}", "x".repeat(198));
        let (preview, cut) = first_chars(&text, 200);
        assert!(cut);
        assert!(!preview.ends_with('\u{200D}'), "{preview:?}");
        assert_eq!(preview, "x".repeat(198));
        assert!(one_line(&text).starts_with(&one_line(preview)));

        // Emoji sequences, a subdivision flag, a keycap, a selected
        // heart, a country flag, joiners between an emoji and a regional
        // indicator (a cluster ends at each joiner, yet the joiner shows
        // as part of the emoji around it), and a joiner and a selector
        // that show as `<U+XXXX>` anyway.
        let texts = [
            "x\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}y",
            "x\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}y",
            "x1\u{FE0F}\u{20E3}y\u{2764}\u{FE0F}z",
            "x\u{1F1FA}\u{1F1F8}y",
            "x\u{1F468}\u{200D}\u{1F1E6}y\u{1F1E6}\u{200D}\u{1F468}z",
            "xa\u{200D}b\u{FE00}c",
        ];
        for text in texts {
            for chars in 0..=text.chars().count() + 1 {
                let (preview, cut) = first_chars(text, chars);
                assert!(preview.chars().count() <= chars, "{text:?} {chars}");
                assert_eq!(cut, preview.len() < text.len(), "{text:?} {chars}");
                assert!(
                    one_line(text).starts_with(&one_line(preview)),
                    "{text:?} at {chars}: {preview:?}"
                );
            }
        }

        // One cluster longer than the limit is cut between characters.
        let marks = format!("a{}", "\u{301}".repeat(300));
        let (preview, cut) = first_chars(&marks, 200);
        assert!(cut);
        assert_eq!(preview.chars().count(), 200);
    }

    #[test]
    fn json_keeps_its_values_and_shows_nothing_hidden() {
        let text = "a\u{202e}b\u{9b}2J\u{7f}\u{200b}\u{e0001} café 🙂\n\x1b";
        let v = serde_json::json!({ "text": text, "n": [1, 2] });
        for json in [
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string_pretty(&v).unwrap(),
        ] {
            let safe = json_escaped(&json);
            assert!(
                !marked(&safe).any(|(c, hidden)| u32::from(c) >= 0x7f && hidden),
                "{safe}"
            );
            assert!(
                safe.contains(r"a\u202eb\u009b2J\u007f\u200b\udb40\udc01 café 🙂\n\u001b"),
                "{safe}"
            );
            let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
            assert_eq!(back, v);
        }
    }
}
