//! How times, days, sizes and names are shown.

use chrono::{DateTime, Datelike, Local, NaiveDate, TimeZone};

/// Formats message times against one "now", in the local time zone.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    now_ms: u64,
}

impl Clock {
    /// A clock at `now_ms` (ms since the Unix epoch).
    pub fn at(now_ms: u64) -> Clock {
        Clock { now_ms }
    }

    /// A clock at the current time.
    pub fn now() -> Clock {
        Clock::at(strand_node::now())
    }

    fn local(ms: u64) -> DateTime<Local> {
        Local
            .timestamp_millis_opt(ms.min(i64::MAX as u64) as i64)
            .single()
            .unwrap_or_else(|| Local.timestamp_millis_opt(0).single().expect("epoch"))
    }

    fn day(ms: u64) -> NaiveDate {
        Clock::local(ms).date_naive()
    }

    /// Whether two times fall on the same local day.
    pub fn same_day(a: u64, b: u64) -> bool {
        Clock::day(a) == Clock::day(b)
    }

    /// "14:05": the time of a message.
    pub fn time(&self, ms: u64) -> String {
        Clock::local(ms).format("%H:%M").to_string()
    }

    /// "Today", "Yesterday", "Monday", "3 November", "3 November 2024":
    /// the heading above a day's first message.
    pub fn day_heading(&self, ms: u64) -> String {
        let today = Clock::day(self.now_ms);
        let day = Clock::day(ms);
        let age = (today - day).num_days();
        match age {
            0 => "Today".into(),
            1 => "Yesterday".into(),
            2..=6 => Clock::local(ms).format("%A").to_string(),
            _ if day.year() == today.year() => Clock::local(ms).format("%-d %B").to_string(),
            _ => Clock::local(ms).format("%-d %B %Y").to_string(),
        }
    }

    /// "14:05" today, "Yesterday", "Mon", "3 Nov", "3/11/24": the time of
    /// a contact's newest message in the list.
    pub fn short(&self, ms: u64) -> String {
        let today = Clock::day(self.now_ms);
        let day = Clock::day(ms);
        match (today - day).num_days() {
            0 => self.time(ms),
            1 => "Yesterday".into(),
            2..=6 => Clock::local(ms).format("%a").to_string(),
            _ if day.year() == today.year() => Clock::local(ms).format("%-d %b").to_string(),
            _ => Clock::local(ms).format("%-d/%-m/%y").to_string(),
        }
    }

    /// "Dated 3 November, 09:12 · 19 days before it arrived": the mark on
    /// a message whose author's time lies well before its arrival.
    pub fn dated(&self, ms: u64, gap_ms: u64) -> String {
        let when = format!("{}, {}", self.day_heading(ms), self.time(ms));
        let s = gap_ms / 1000;
        let gap = match s {
            0..=7199 => format!("{} min", s / 60),
            7200..=172_799 => format!("{} h", s / 3600),
            _ => format!("{} days", s / 86_400),
        };
        format!("Dated {when} · {gap} before it arrived")
    }

    /// "disappears in 4 min", "… in 3 h", "… in 2 days": the mark on a
    /// message written under a timer.
    pub fn disappears(&self, expires_ms: u64) -> String {
        let s = expires_ms.saturating_sub(self.now_ms) / 1000;
        match s {
            0..=59 => "disappears in under a minute".into(),
            60..=7199 => format!("disappears in {} min", s.div_ceil(60)),
            7200..=172_799 => format!("disappears in {} h", s.div_ceil(3600)),
            _ => format!("disappears in {} days", s.div_ceil(86_400)),
        }
    }

    /// "just now", "5 min ago", "3 h ago", "2 days ago".
    pub fn ago(&self, ms: u64) -> String {
        let s = self.now_ms.saturating_sub(ms) / 1000;
        match s {
            0..=59 => "just now".into(),
            60..=3599 => format!("{} min ago", s / 60),
            3600..=86_399 => format!("{} h ago", s / 3600),
            _ => format!("{} days ago", s / 86_400),
        }
    }
}

/// "LAN", "Bluetooth", "relayed", "direct (hole-punched)" for a node's
/// link kind.
pub fn link_name(link: &str) -> String {
    match link.to_ascii_lowercase().as_str() {
        "lan" => "LAN".into(),
        "ble" | "bluetooth" => "Bluetooth".into(),
        "relay" => "relayed".into(),
        "hole-punched" => "direct (hole-punched)".into(),
        other => other.to_owned(),
    }
}

/// "1.2 MB": a byte count.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// "64,000": a count, its thousands set apart.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// "AB" for "Alice Baker", "A" for "alice".
pub fn initials(name: &str) -> String {
    let mut words = name.split_whitespace().filter_map(|w| w.chars().next());
    let first = words.next().map(|c| c.to_uppercase().to_string());
    let last = words.next_back().map(|c| c.to_uppercase().to_string());
    format!("{}{}", first.unwrap_or_default(), last.unwrap_or_default())
}

/// A stable hue (degrees) for a name, so each contact keeps a colour.
pub fn hue(name: &str) -> f32 {
    // FNV-1a: stable across runs and platforms.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % 360) as f32
}

/// The first line of a message, for previews.
pub fn preview(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let line = strand_node::display::one_line(line);
    let mut out: String = line.chars().take(80).collect();
    if line.chars().count() > 80 || text.lines().filter(|l| !l.trim().is_empty()).count() > 1 {
        out.push('…');
    }
    out
}

/// A multiaddr broken into lines of at most `width` characters at its `/`
/// (a relay address is longer than a line: shown whole, never clipped).
pub fn address_lines(addr: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for part in addr.split_inclusive('/') {
        if !line.is_empty() && line.chars().count() + part.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        line.push_str(part);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.join("\n")
}

/// What a list shows of a message: its first line, or "File: name".
pub fn message_preview(m: &strand_node::StoredMessage) -> String {
    match &m.file {
        Some(f) => format!("File: {}", strand_node::display::one_line(&f.name)),
        None => preview(&m.text),
    }
}

/// "2.1 MB", or "2.1 MB · 3 of 9 parts here" while a file arrives.
pub fn file_detail(f: &strand_node::FileInfo) -> String {
    if f.complete() {
        bytes(f.size)
    } else {
        format!("{} · {} of {} parts here", bytes(f.size), f.have, f.total)
    }
}

/// An image's preview (a small JPEG or PNG), decoded for the UI: pixels
/// that any thread can hold, so it is decoded once, off the UI thread,
/// when its page is read ([`slint::Image::from_rgba8`] shows it). A
/// preview comes from a contact's device: one that says it is larger than
/// [`MAX_PREVIEW_SIDE`] a side is refused before anything is decoded (a
/// few kilobytes could otherwise ask for hundreds of megabytes), and one
/// larger than [`SHOWN_PREVIEW_SIDE`] is scaled down to it: each row
/// holds its pixels, and a contact's few-kilobyte previews of 1024 pixels
/// a side (4 MiB each) held about 1.6 GiB over the pages a conversation
/// keeps.
pub fn preview_pixels(encoded: &[u8]) -> Option<slint::SharedPixelBuffer<slint::Rgba8Pixel>> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(encoded))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PREVIEW_SIDE);
    limits.max_image_height = Some(MAX_PREVIEW_SIDE);
    limits.max_alloc = Some(u64::from(MAX_PREVIEW_SIDE).pow(2) * 4 * 2);
    reader.limits(limits);
    let mut img = reader.decode().ok()?;
    if img.width().max(img.height()) > SHOWN_PREVIEW_SIDE {
        img = img.thumbnail(SHOWN_PREVIEW_SIDE, SHOWN_PREVIEW_SIDE);
    }
    let img = img.to_rgba8();
    let (w, h) = img.dimensions();
    Some(slint::SharedPixelBuffer::<slint::Rgba8Pixel>::clone_from_slice(img.as_raw(), w, h))
}

/// The largest side of a preview shown: previews are made 160 pixels a
/// side; this leaves room for other senders' choices.
pub const MAX_PREVIEW_SIDE: u32 = 1024;

/// The largest side of a preview's pixels held: a bubble shows it at most
/// 160 logical pixels a side, twice that on a high-density screen.
pub const SHOWN_PREVIEW_SIDE: u32 = 320;

/// The durations behind the timer choices (`Timers.options` in the UI),
/// in ms: index 0 is "messages stay".
pub const TIMERS: [Option<u64>; 7] = [
    None,
    Some(5 * 60_000),
    Some(3_600_000),
    Some(86_400_000),
    Some(7 * 86_400_000),
    Some(28 * 86_400_000),
    Some(365 * 86_400_000),
];

/// The choice that shows `timer` (a timer set elsewhere that is not one of
/// them shows as the nearest longer choice).
pub fn timer_index(timer: Option<u64>) -> i32 {
    match timer {
        None => 0,
        Some(ms) => TIMERS
            .iter()
            .position(|t| t.is_some_and(|t| t >= ms))
            .unwrap_or(TIMERS.len() - 1) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sizes_and_previews() {
        assert_eq!(initials("Alice Baker"), "AB");
        assert_eq!(initials("bob"), "B");
        assert_eq!(initials("  "), "");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_234_567), "1.2 MB");
        assert_eq!(count(999), "999");
        assert_eq!(count(64_000), "64,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(preview("\nfirst line\nsecond"), "first line…");
        assert_eq!(hue("Alice"), hue("Alice"));
        assert_ne!(hue("Alice"), hue("Bob"));
    }

    /// A preview small on the wire but large in pixels (a contact's
    /// device chooses it) is refused; one of the size previews are made
    /// at shows. The large one used to be decoded whole.
    #[test]
    fn previews_larger_than_a_preview_are_refused() {
        let png = |side: u32| {
            let mut out = std::io::Cursor::new(Vec::new());
            image::GrayImage::new(side, side)
                .write_to(&mut out, image::ImageFormat::Png)
                .unwrap();
            out.into_inner()
        };
        let large = png(2_000);
        assert!(
            large.len() <= strand_sync::MAX_PREVIEW_LEN,
            "{}",
            large.len()
        );
        assert!(preview_pixels(&large).is_none());
        let shown = preview_pixels(&png(160)).expect("a preview shows");
        assert_eq!((shown.width(), shown.height()), (160, 160));
        // One as large as allowed is held at most as large as shown.
        let wide = {
            let mut out = std::io::Cursor::new(Vec::new());
            image::GrayImage::new(1024, 512)
                .write_to(&mut out, image::ImageFormat::Png)
                .unwrap();
            out.into_inner()
        };
        assert!(wide.len() <= strand_sync::MAX_PREVIEW_LEN);
        let held = preview_pixels(&wide).expect("a large preview shows");
        assert_eq!((held.width(), held.height()), (320, 160));
        assert!(preview_pixels(b"not an image").is_none());
    }

    #[test]
    fn days_and_ages() {
        let now = 1_763_700_000_000; // a Friday
        let c = Clock::at(now);
        assert_eq!(c.day_heading(now), "Today");
        assert_eq!(c.day_heading(now - 86_400_000), "Yesterday");
        assert!(c.day_heading(now - 400 * 86_400_000).ends_with("2024"));
        assert_eq!(c.ago(now - 30_000), "just now");
        assert_eq!(c.ago(now - 5 * 60_000), "5 min ago");
        assert!(Clock::same_day(now, now + 1));
        assert!(!Clock::same_day(now, now - 2 * 86_400_000));
    }

    #[test]
    fn long_addresses_break_at_slashes_and_lose_nothing() {
        let a = "/ip4/127.0.0.1/tcp/46829/p2p/12D3KooWBRFW3HkJCLKSWb4yG6iWRBpgNjbM4FFvNsL5T5JKTqrd/p2p-circuit/p2p/12D3KooWGRYZDHBembyGJQqQ6WgLqJWYNjnECGDVtFdxXnYyRJFk";
        let shown = address_lines(a, 64);
        assert!(shown.lines().count() >= 3);
        assert!(shown
            .lines()
            .all(|l| l.len() <= 64 || !l[1..].contains('/')));
        assert_eq!(shown.replace('\n', ""), a);
        assert_eq!(
            address_lines("/ip4/1.2.3.4/tcp/1", 64),
            "/ip4/1.2.3.4/tcp/1"
        );
    }
}
