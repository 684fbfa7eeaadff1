//! Scenario files (TOML): who the devices are, how they meet, who knows
//! whom, what they send, and which forwarding policy carries it.
//!
//! Every field is documented in `simulations/README.md`; the bundled
//! scenarios under `simulations/scenarios/` use most of them. Unknown
//! fields are an error, so a typo cannot silently fall back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::units::{Duration, Micros, Rate, Size, SECOND};

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in reports.
    pub name: String,
    /// Simulated time.
    pub duration: Duration,
    /// How messages travel.
    #[serde(default)]
    pub policy: Policy,
    /// Seed used when the command line gives none.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Device groups (ONE's `Group`s): counts, links, movement.
    #[serde(rename = "group")]
    pub groups: Vec<NodeGroup>,
    /// Link types by name, overriding or adding to the built-in `ble`,
    /// `lan` and `relay`.
    #[serde(default)]
    pub links: BTreeMap<String, LinkSpec>,
    /// How devices meet.
    pub contacts: ContactModel,
    /// Scheduled partitions.
    #[serde(default, rename = "partition")]
    pub partitions: Vec<Partition>,
    /// Devices switching off and on.
    #[serde(default)]
    pub churn: Option<Churn>,
    /// Who is whose contact, and groups.
    #[serde(default)]
    pub social: Social,
    /// Messages created.
    #[serde(default)]
    pub traffic: Traffic,
    /// Knobs for the baseline policies and for reports.
    #[serde(default)]
    pub options: Options,
    /// Where the file was read from (relative paths resolve against it).
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_seed() -> u64 {
    1
}

/// Forwarding policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Strand itself: real strand-sync sessions between contacts, which
    /// reconcile every group log both are members of.
    #[default]
    Strand,
    /// Strand with carrying (PROTOCOL.md §17): every device also carries
    /// sealed envelopes for its contacts, `options.carry_copies` copies
    /// per message, within `options.carry_budget`.
    StrandCarrying,
    /// Epidemic routing (Vahdat & Becker 2000): every encounter exchanges
    /// summary vectors and copies every message the other lacks.
    Epidemic,
    /// Binary Spray-and-Wait (Spyropoulos et al. 2005) with
    /// `options.copies` copies.
    SprayAndWait,
    /// Direct delivery: the source carries the message to the destination.
    Direct,
}

impl Policy {
    /// Whether real strand-sync sessions run (with or without carrying).
    pub fn is_strand(self) -> bool {
        matches!(self, Policy::Strand | Policy::StrandCarrying)
    }

    /// The name used in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Strand => "strand",
            Policy::StrandCarrying => "strand-carrying",
            Policy::Epidemic => "epidemic",
            Policy::SprayAndWait => "spray-and-wait",
            Policy::Direct => "direct",
        }
    }
}

/// A set of devices with the same radio and movement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    /// Prefix for reports.
    #[serde(default = "default_group_name")]
    pub name: String,
    /// How many devices.
    pub count: u32,
    /// Link type these devices use (a key of `links` or a built-in).
    #[serde(default = "default_link")]
    pub link: String,
    /// Radio range in metres (waypoint model).
    #[serde(default = "default_range")]
    pub range: f64,
    /// Speed range in m/s (waypoint model).
    #[serde(default = "default_speed")]
    pub speed: [f64; 2],
    /// Pause range at each waypoint.
    #[serde(default = "default_pause")]
    pub pause: [Duration; 2],
}

fn default_group_name() -> String {
    "n".into()
}
fn default_link() -> String {
    "ble".into()
}
fn default_range() -> f64 {
    10.0
}
fn default_speed() -> [f64; 2] {
    [0.5, 1.5]
}
fn default_pause() -> [Duration; 2] {
    [Duration(0), Duration(120 * SECOND)]
}

/// A link type as written in a scenario; missing fields come from the
/// built-in type of the same name, or from `ble`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Bytes per second each way, or `"inf"`.
    pub rate: Option<Rate>,
    /// One-way latency.
    pub latency: Option<Duration>,
    /// Payload bytes per link-layer frame.
    pub frame: Option<Size>,
    /// Header bytes per frame (counted as overhead).
    pub frame_overhead: Option<Size>,
    /// Probability that a frame is lost and sent again.
    pub loss: Option<f64>,
    /// Time from coming into range to a usable link.
    pub setup: Option<Duration>,
    /// Largest strand-sync packet on this link.
    pub packet: Option<Size>,
    /// Ordering when two devices' links differ: the lower wins.
    pub preference: Option<u32>,
    /// Devices find each other by Strand's BLE advertisement hint
    /// (PROTOCOL.md §13): two that are not each other's contacts open a
    /// link only when a hint matches one of the other's contacts by chance.
    pub hint: Option<bool>,
    /// With `hint`: contacts too link only when either's hint names the
    /// other (a hint names four contacts at a time, a new four each
    /// epoch), instead of finding each other at once. Off by default.
    pub hint_contacts: Option<bool>,
}

/// A link type, resolved.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Link {
    /// Its name.
    pub name: String,
    /// Bytes per second each way (`None`: unlimited).
    pub rate: Option<f64>,
    /// One-way latency.
    pub latency: Micros,
    /// Payload bytes per frame.
    pub frame: u64,
    /// Header bytes per frame.
    pub frame_overhead: u64,
    /// Frame loss probability (lost frames are resent).
    pub loss: f64,
    /// Setup time.
    pub setup: Micros,
    /// strand-sync packet size.
    pub packet: usize,
    /// Lower is the slower, more widely available link.
    pub preference: u32,
    /// Discovery by the BLE advertisement hint: strangers link only on a
    /// chance match (Strand).
    pub hint: bool,
    /// Contacts too find each other only by a hint that names them.
    pub hint_contacts: bool,
}

impl Link {
    /// The built-in link types.
    ///
    /// BLE follows strand-transport's link layer over its emulated radio
    /// (`cargo bench -p strand-transport --bench ble`): 244-byte ATT
    /// packets carry 241 bytes of the stream (a 3-byte DATA header); per
    /// packet, 12 bytes of overhead: that header, L2CAP and ATT's 7, and
    /// the ACKs' share (one 16-byte ACK per ~10 packets, measured 1.0163
    /// link bytes per stream byte); 100 kB/s each way, what a 1M-PHY
    /// connection with 15 ms intervals carries (97.6 kB/s of ATT payload
    /// and its headers). The others are typical, not measured here: a
    /// Wi-Fi LAN at 100 Mbit/s; a libp2p circuit relay over the internet
    /// at 10 Mbit/s with 80 ms one way and ~2 s to reserve and connect.
    ///
    /// Every one of them, and every link type of a scenario's own that
    /// does not say `packet`, runs sessions with the packets the node
    /// uses on every link (`strand_sync::limits::DEFAULT_PACKET_LEN`; the
    /// BLE link layer cuts them to the radio's size).
    pub fn builtin(name: &str) -> Option<Link> {
        let link = |rate: f64, lat_ms: u64, frame, oh, loss, setup_ms: u64, pref| Link {
            hint: name == "ble",
            hint_contacts: false,
            name: name.to_string(),
            rate: Some(rate),
            latency: lat_ms * 1000,
            frame,
            frame_overhead: oh,
            loss,
            setup: setup_ms * 1000,
            packet: strand_sync::limits::DEFAULT_PACKET_LEN,
            preference: pref,
        };
        Some(match name {
            "ble" => link(100_000.0, 30, 241, 12, 0.01, 1500, 0),
            "lan" => link(12_500_000.0, 2, 1460, 52, 0.0, 50, 2),
            "relay" => link(1_250_000.0, 80, 1200, 80, 0.0, 2000, 1),
            _ => return None,
        })
    }

    fn resolve(name: &str, spec: Option<&LinkSpec>) -> Result<Link, String> {
        let base = Link::builtin(name);
        if base.is_none() && spec.is_none() {
            return Err(format!(
                "unknown link type `{name}`: define [links.{name}] or use ble, lan or relay"
            ));
        }
        let mut l = base.unwrap_or_else(|| Link {
            name: name.to_string(),
            ..Link::builtin("ble").expect("built in")
        });
        if let Some(s) = spec {
            if let Some(v) = s.rate {
                l.rate = v.0;
            }
            if let Some(v) = s.latency {
                l.latency = v.0;
            }
            if let Some(v) = s.frame {
                l.frame = v.0;
            }
            if let Some(v) = s.frame_overhead {
                l.frame_overhead = v.0;
            }
            if let Some(v) = s.loss {
                l.loss = v;
            }
            if let Some(v) = s.setup {
                l.setup = v.0;
            }
            if let Some(v) = s.packet {
                l.packet = v.0 as usize;
            }
            if let Some(v) = s.preference {
                l.preference = v;
            }
            if let Some(v) = s.hint {
                l.hint = v;
            }
            if let Some(v) = s.hint_contacts {
                l.hint_contacts = v;
            }
        }
        if l.hint_contacts && !l.hint {
            return Err(format!(
                "link `{name}`: hint_contacts needs hint = true (contacts find each other by the hint)"
            ));
        }
        if l.frame == 0 || l.frame > 1 << 30 {
            return Err(format!("link `{name}`: frame must be 1 byte..1 GiB"));
        }
        if l.frame_overhead > 1 << 20 {
            return Err(format!(
                "link `{name}`: frame_overhead must be at most 1 MiB"
            ));
        }
        if l.rate.is_some_and(|r| r < 1.0) {
            return Err(format!(
                "link `{name}`: rate must be at least 1 byte/s (or \"inf\")"
            ));
        }
        if l.latency > 86_400 * SECOND || l.setup > 86_400 * SECOND {
            return Err(format!(
                "link `{name}`: latency and setup must be at most a day"
            ));
        }
        if !(0.0..0.9).contains(&l.loss) {
            return Err(format!("link `{name}`: loss must be in [0, 0.9)"));
        }
        let (lo, hi) = (
            strand_sync::limits::MIN_PACKET_LEN,
            strand_sync::limits::MAX_PACKET_LEN,
        );
        if !(lo..=hi).contains(&l.packet) {
            return Err(format!("link `{name}`: packet must be {lo}..={hi} bytes"));
        }
        Ok(l)
    }
}

/// How devices meet.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ContactModel {
    /// Random meetings between pairs: each pair meets after exponential
    /// gaps with mean `gap` (rate λ = 1/gap), for `duration`
    /// (exponentially distributed with that mean unless `fixed_duration`).
    /// With `communities`, devices are split into that many equal blocks;
    /// pairs inside a block meet with mean gap `gap`, pairs across with
    /// `outside_gap`.
    Meetings {
        /// Mean time between two meetings of one pair.
        gap: Duration,
        /// Mean meeting length.
        duration: Duration,
        /// Every meeting lasts exactly `duration`.
        #[serde(default)]
        fixed_duration: bool,
        /// Number of communities (1: none).
        #[serde(default = "one")]
        communities: u32,
        /// Mean gap between meetings across communities.
        outside_gap: Option<Duration>,
    },
    /// Random waypoint in a `[width, height]` metre area; devices in range
    /// (the smaller of the two ranges) are in contact.
    Waypoint {
        /// Area in metres.
        area: [f64; 2],
    },
    /// Replay of a ONE `StandardEventsReader` file: `CONN` lines give
    /// contacts. `C` lines give messages, in place of `[traffic]`'s
    /// generator (`interval` or `per_device_gap` with them is refused
    /// when the trace is loaded; `until` still applies); a trace without
    /// `C` lines (a connectivity report) takes its messages from
    /// `[traffic]`, as the other models do.
    Trace {
        /// The file, relative to the scenario.
        file: PathBuf,
    },
}

fn one() -> u32 {
    1
}

/// A scheduled partition: from `start` to `end`, devices are split into
/// `sides` equal blocks (by index) and blocks cannot meet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// When it starts.
    pub start: Duration,
    /// When it heals.
    pub end: Duration,
    /// Blocks.
    #[serde(default = "two")]
    pub sides: u32,
}

fn two() -> u32 {
    2
}

/// Devices switch off for exponential periods.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Mean time on.
    pub mean_on: Duration,
    /// Mean time off.
    pub mean_off: Duration,
}

/// Who is whose contact.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Social {
    /// `random` (each device gets ~`degree` random contacts),
    /// `small-world` (Watts–Strogatz ring of `degree`, rewired with
    /// probability `rewire`), `complete`, `none`, or `file`.
    #[serde(default = "small_world")]
    pub model: String,
    /// Mean contacts per device.
    #[serde(default = "ten")]
    pub degree: u32,
    /// Small-world rewiring probability.
    #[serde(default = "tenth")]
    pub rewire: f64,
    /// Edge list (`a b` per line, `#` comments), for `model = "file"`.
    pub file: Option<PathBuf>,
    /// Private groups: how many.
    #[serde(default)]
    pub groups: u32,
    /// Members per group (drawn from one device's contacts and itself).
    #[serde(default = "five")]
    pub group_size: u32,
}

impl Default for Social {
    fn default() -> Self {
        Social {
            model: small_world(),
            degree: ten(),
            rewire: tenth(),
            file: None,
            groups: 0,
            group_size: five(),
        }
    }
}

fn small_world() -> String {
    "small-world".into()
}
fn ten() -> u32 {
    10
}
fn five() -> u32 {
    5
}
fn tenth() -> f64 {
    0.1
}

/// Who sends what.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// ONE-style: one message in the whole network every `interval`
    /// (uniform between the two bounds).
    pub interval: Option<[Duration; 2]>,
    /// Per device: messages with exponential gaps of this mean.
    pub per_device_gap: Option<Duration>,
    /// Body size, uniform between the two bounds.
    #[serde(default = "default_size")]
    pub size: [Size; 2],
    /// Destination: `contact` (a random contact of the sender), `any` (a
    /// random device; Strand makes the pair contacts), or `group`.
    #[serde(default = "contact")]
    pub to: String,
    /// Share of messages sent to a group the sender is in (when it is in
    /// one), the rest going by `to`.
    #[serde(default)]
    pub group_share: f64,
    /// No messages are created after this (default: the whole run).
    pub until: Option<Duration>,
}

impl Traffic {
    /// Whether `[traffic]` generates messages (`interval` or
    /// `per_device_gap` is set); `size`, `to` and `group_share` shape what
    /// it generates and do nothing without it.
    pub fn generates(&self) -> bool {
        self.interval.is_some() || self.per_device_gap.is_some()
    }
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            interval: None,
            per_device_gap: None,
            size: default_size(),
            to: contact(),
            group_share: 0.0,
            until: None,
        }
    }
}

fn default_size() -> [Size; 2] {
    [Size(100), Size(100)]
}
fn contact() -> String {
    "contact".into()
}

/// Baseline and report knobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Spray-and-Wait copies.
    #[serde(default = "six")]
    pub copies: u32,
    /// Baseline buffer per device (`None`: unlimited); the oldest copy is
    /// dropped first.
    pub buffer: Option<Size>,
    /// Baseline message lifetime (`None`: forever).
    pub ttl: Option<Duration>,
    /// "Delivered within" budget for reports.
    #[serde(default = "hour")]
    pub budget: Duration,
    /// Baselines forward only between devices that are each other's
    /// contacts (`[social]`), as Strand does; by default they forward
    /// through anyone they meet, as ONE's routers do.
    #[serde(default)]
    pub contacts_only: bool,
    /// Strand with carrying: copies per message (default: `copies`, so
    /// a sweep over `copies` moves both; the node's default is
    /// `CarryConfig::default().copies`).
    pub carry_copies: Option<u32>,
    /// Strand with carrying: how messages spread, `"spray"` (binary spray
    /// and wait with `carry_copies`) or `"chains"` (along chains of
    /// carriers, at most `carry_reach` links); default: the node's.
    pub carry_spread: Option<String>,
    /// Strand with carrying along chains: the most links an envelope
    /// crosses (default: the node's).
    pub carry_reach: Option<u32>,
    /// Strand with carrying along chains: how many carriers each holder
    /// lets take an envelope on (default: the node's).
    pub carry_width: Option<u32>,
    /// Strand with carrying along chains: lend envelopes by each
    /// contact's record of delivering what it was lent (strand-sync's
    /// `CarryConfig::learn`; default: the node's, off).
    #[serde(default)]
    pub carry_learn: bool,
    /// Strand with carrying: bytes of others' envelopes a device holds
    /// (at most strand-sync's `MAX_CARRY_BUDGET`, 1 GiB).
    #[serde(default = "carry_budget")]
    pub carry_budget: Size,
    /// Strand with carrying: how long an envelope lasts, 1 ms to 30 days
    /// (default: `ttl`, which must then be in that range, or 24 h).
    pub carry_lifetime: Option<Duration>,
    /// Strand with carrying: how many of its usual gaps between meetings
    /// with the recipient a sender waits before offering a text to
    /// carriers (strand-sync's `CarryConfig::hold_gaps`; default: the
    /// node's, 3; 0 spreads at once; at most 255).
    pub carry_hold_gaps: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            copies: six(),
            buffer: None,
            ttl: None,
            budget: hour(),
            contacts_only: false,
            carry_copies: None,
            carry_spread: None,
            carry_reach: None,
            carry_width: None,
            carry_learn: false,
            carry_budget: carry_budget(),
            carry_lifetime: None,
            carry_hold_gaps: None,
        }
    }
}

fn carry_budget() -> Size {
    Size(5 << 20)
}

fn six() -> u32 {
    6
}
fn hour() -> Duration {
    Duration(3600 * SECOND)
}

/// Largest device count a scenario may ask for.
pub const MAX_DEVICES: u32 = 1_000_000;

/// Most `[[group]]`s of devices: a device's group is kept in 16 bits.
pub const MAX_DEVICE_GROUPS: u16 = u16::MAX;

/// Most messages a scenario's traffic may create, estimated from its
/// rate: each is drawn and kept before the run starts, so ten times
/// `text-100k`'s 2.4 million.
pub const MAX_MESSAGES: u64 = 25_000_000;

/// Most contact pairs a social graph may have, and most pairs of members
/// its private groups may have: every pair is a contact record (with its
/// key agreement) on both sides, every pair of members a group in both.
/// As many as a complete graph of 5,000 devices; `text-100k` has some
/// 500,000.
pub const MAX_CONTACT_PAIRS: u64 = 5_000 * 4_999 / 2;

/// Most private groups (`social.groups`): a hundred times `text-100k`'s
/// 10,000.
pub const MAX_SOCIAL_GROUPS: u32 = 1_000_000;

/// Most devices under the waypoint model: every leg a device starts is
/// checked against every other device, and the start against every pair.
/// Eight times `city-1206`.
pub const MAX_WAYPOINT_DEVICES: u32 = 10_000;

/// Largest message body a scenario creates, by `traffic.size` or by a
/// trace's `C` lines: 1 GiB, a thousand times the ONE simulator's
/// largest default messages (1 MB), and small enough that a copy's bytes
/// on the air, frames and their overhead included, stay far inside a
/// `u64`.
pub const MAX_MESSAGE_BYTES: u64 = 1 << 30;

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        Scenario::load_with(path, &[])
    }

    /// Reads a scenario file, applies `edits` (dotted path, TOML value; see
    /// [`crate::sweep::set`]) and checks the result.
    pub fn load_with(path: &Path, edits: &[(&str, &str)]) -> anyhow::Result<Scenario> {
        let (mut table, dir) = Scenario::read_table(path)?;
        for (k, v) in edits {
            crate::sweep::set(&mut table, k, v)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        Scenario::from_table(table, dir).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// A scenario file's TOML, unchecked, and the directory its relative
    /// paths resolve against.
    pub fn read_table(path: &Path) -> anyhow::Result<(toml::Table, PathBuf)> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read scenario {}: {e}", path.display()))?;
        let table = text
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((table, dir))
    }

    /// Parses and checks scenario text; `dir` resolves relative paths.
    pub fn parse(text: &str, dir: PathBuf) -> anyhow::Result<Scenario> {
        let value: toml::Table = text.parse()?;
        Scenario::from_table(value, dir)
    }

    /// Builds a scenario from a parsed table (sweeps edit the table).
    pub fn from_table(table: toml::Table, dir: PathBuf) -> anyhow::Result<Scenario> {
        let mut s: Scenario = toml::Value::Table(table).try_into()?;
        s.dir = dir;
        s.check().map_err(|e| anyhow::anyhow!(e))?;
        Ok(s)
    }

    /// Total devices.
    pub fn devices(&self) -> u32 {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// The resolved link type of each group, in group order.
    pub fn group_links(&self) -> Result<Vec<Link>, String> {
        self.groups
            .iter()
            .map(|g| Link::resolve(&g.link, self.links.get(&g.link)))
            .collect()
    }

    /// The files the scenario reads, each with the dotted key that names
    /// it (as written, relative to the scenario's file unless absolute).
    pub fn inputs(&self) -> Vec<(&'static str, &Path)> {
        let mut files = Vec::new();
        if let ContactModel::Trace { file } = &self.contacts {
            files.push(("contacts.file", file.as_path()));
        }
        if self.social.model == "file" {
            if let Some(file) = &self.social.file {
                files.push(("social.file", file.as_path()));
            }
        }
        files
    }

    /// A path from the scenario, relative to its file.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.duration.0 == 0 {
            return Err("duration must be above zero".into());
        }
        if self.groups.is_empty() {
            return Err("at least one [[group]] of devices is needed".into());
        }
        if self.groups.len() > usize::from(MAX_DEVICE_GROUPS) {
            return Err(format!(
                "{} [[group]]s: at most {MAX_DEVICE_GROUPS} (a device's group is kept in 16 bits)",
                self.groups.len()
            ));
        }
        let n: u64 = self.groups.iter().map(|g| u64::from(g.count)).sum();
        if n < 2 || n > u64::from(MAX_DEVICES) {
            return Err(format!("{n} devices: need 2..={MAX_DEVICES}"));
        }
        for g in &self.groups {
            if !(g.range > 0.0 && g.range.is_finite()) {
                return Err(format!("group `{}`: range must be above zero", g.name));
            }
            if !(g.speed[0] > 0.0 && g.speed[0] <= g.speed[1] && g.speed[1].is_finite()) {
                return Err(format!(
                    "group `{}`: speed must be [min, max] with 0 < min <= max",
                    g.name
                ));
            }
            if g.pause[0].0 > g.pause[1].0 {
                return Err(format!("group `{}`: pause must be [min, max]", g.name));
            }
        }
        for name in self.links.keys() {
            Link::resolve(name, self.links.get(name))?;
        }
        self.group_links()?;
        match &self.contacts {
            ContactModel::Meetings {
                gap,
                duration,
                communities,
                outside_gap,
                ..
            } => {
                if gap.0 == 0 || duration.0 == 0 {
                    return Err("meetings: gap and duration must be above zero".into());
                }
                if *communities == 0 || u64::from(*communities) > n {
                    return Err("meetings: communities must be 1..=devices".into());
                }
                if *communities > 1 && outside_gap.is_none_or(|g| g.0 == 0) {
                    return Err("meetings: communities > 1 needs outside_gap above zero".into());
                }
            }
            ContactModel::Waypoint { area } => {
                if !(area[0] > 0.0 && area[1] > 0.0 && area[0].is_finite() && area[1].is_finite()) {
                    return Err("waypoint: area must be [width, height] above zero".into());
                }
            }
            ContactModel::Trace { .. } => {}
        }
        for p in &self.partitions {
            if p.start.0 >= p.end.0 || p.sides < 2 || u64::from(p.sides) > n {
                return Err("partition: need start < end and 2..=devices sides".into());
            }
        }
        let mut spans: Vec<_> = self
            .partitions
            .iter()
            .map(|p| (p.start.0, p.end.0))
            .collect();
        spans.sort();
        if spans.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err("partitions must not overlap".into());
        }
        if let Some(c) = &self.churn {
            if c.mean_on.0 == 0 || c.mean_off.0 == 0 {
                return Err("churn: mean_on and mean_off must be above zero".into());
            }
        }
        let so = &self.social;
        if !["random", "small-world", "complete", "none", "file"].contains(&so.model.as_str()) {
            return Err(format!(
                "social.model `{}`: use random, small-world, complete, none or file",
                so.model
            ));
        }
        if so.model == "file" && so.file.is_none() {
            return Err("social.model = \"file\" needs social.file".into());
        }
        if !(0.0..=1.0).contains(&so.rewire) {
            return Err("social.rewire must be in [0, 1]".into());
        }
        if so.groups > 0 && so.group_size < 2 {
            return Err("social.group_size must be at least 2".into());
        }
        if so.model == "small-world" && so.degree < 2 {
            return Err(
                "social.degree must be at least 2 with social.model = \"small-world\" (a ring of degree / 2 neighbours on each side)"
                    .into(),
            );
        }
        let t = &self.traffic;
        if t.interval.is_some() && t.per_device_gap.is_some() {
            return Err("traffic: give interval or per_device_gap, not both".into());
        }
        if let Some([lo, hi]) = t.interval {
            if lo.0 == 0 || lo.0 > hi.0 {
                return Err("traffic.interval must be [min, max] with 0 < min <= max".into());
            }
        }
        if t.per_device_gap.is_some_and(|g| g.0 == 0) {
            return Err("traffic.per_device_gap must be above zero".into());
        }
        if t.size[0].0 == 0 || t.size[0].0 > t.size[1].0 || t.size[1].0 > MAX_MESSAGE_BYTES {
            return Err(format!(
                "traffic.size must be [min, max] with 0 < min <= max <= {MAX_MESSAGE_BYTES} bytes (1 GiB)"
            ));
        }
        if self.policy.is_strand() && t.size[1].0 > strand_sync::limits::MAX_BODY_LEN as u64 {
            return Err(format!(
                "traffic.size: strand messages hold at most {} bytes",
                strand_sync::limits::MAX_BODY_LEN
            ));
        }
        if !["contact", "any", "group"].contains(&t.to.as_str()) {
            return Err(format!("traffic.to `{}`: use contact, any or group", t.to));
        }
        if !(0.0..=1.0).contains(&t.group_share) {
            return Err("traffic.group_share must be in [0, 1]".into());
        }
        // Generated messages that could have no recipient at all. (A trace
        // whose `C` lines give the messages refuses a generator when it is
        // loaded, so these hold for every model.)
        let no_contacts = so.model == "none" || (so.model == "random" && so.degree == 0);
        if t.generates() && t.to == "contact" && no_contacts {
            return Err(format!(
                "traffic.to = \"contact\" with social.model = \"{}\"{}: no device has a contact to write to (use to = \"any\", or a social model that gives contacts)",
                so.model,
                if so.model == "random" { " and degree 0" } else { "" }
            ));
        }
        if t.generates() && t.to == "group" && so.groups == 0 {
            return Err(
                "traffic.to = \"group\" needs social.groups above zero: there is no group to write to"
                    .into(),
            );
        }
        if t.generates() && t.to == "group" && no_contacts {
            return Err(format!(
                "traffic.to = \"group\" with social.model = \"{}\"{}: a group's members are drawn from its owner's contacts, so every group would be its owner alone",
                so.model,
                if so.model == "random" { " and degree 0" } else { "" }
            ));
        }
        if self.options.copies == 0 {
            return Err("options.copies must be at least 1".into());
        }
        let carry_copies = self.options.carry_copies.unwrap_or(self.options.copies);
        if carry_copies == 0 {
            return Err("options.carry_copies must be at least 1".into());
        }
        if self.policy == Policy::StrandCarrying && carry_copies > 127 {
            return Err("options.carry_copies: carrying takes at most 127 copies".into());
        }
        match self.options.carry_spread.as_deref() {
            None | Some("spray" | "chains") => {}
            Some(other) => {
                return Err(format!(
                    "options.carry_spread `{other}`: use spray or chains"
                ))
            }
        }
        if let Some(w) = self.options.carry_width {
            if !(1..=64).contains(&w) {
                return Err("options.carry_width must be 1 to 64 carriers".into());
            }
        }
        if let Some(r) = self.options.carry_reach {
            if !(2..=u32::from(strand_sync::MAX_REACH)).contains(&r) {
                return Err(format!(
                    "options.carry_reach must be 2 to {} links",
                    strand_sync::MAX_REACH
                ));
            }
        }
        self.check_size(n)?;
        self.check_carrying()
    }

    /// What the run builds before its first event, estimated from the
    /// scenario (`n` devices): every message of the workload, every
    /// contact pair, every group and the waypoint model's pairs are made
    /// in memory at the start, so a scenario asking for more than a run
    /// can hold is refused here, with the estimate, rather than left to
    /// run out of memory or time.
    fn check_size(&self, n: u64) -> Result<(), String> {
        let t = &self.traffic;
        let end = t
            .until
            .map_or(self.duration.0, |u| u.0.min(self.duration.0)) as f64;
        let messages = match (t.interval, t.per_device_gap) {
            (Some([lo, hi]), _) => end / ((lo.0 + hi.0) as f64 / 2.0),
            (None, Some(gap)) => n as f64 * end / gap.0 as f64,
            (None, None) => 0.0,
        };
        if messages > MAX_MESSAGES as f64 {
            return Err(format!(
                "traffic: about {messages:.1e} messages, more than the {MAX_MESSAGES} a run creates (a longer traffic.interval or traffic.per_device_gap, or an earlier traffic.until)"
            ));
        }
        let so = &self.social;
        let all = n * (n - 1) / 2;
        let pairs = match so.model.as_str() {
            "random" => (n * u64::from(so.degree).min(n - 1) / 2).min(all),
            "small-world" => n * (u64::from(so.degree) / 2).min((n - 1) / 2).max(1),
            "complete" => all,
            _ => 0,
        };
        if pairs > MAX_CONTACT_PAIRS {
            return Err(format!(
                "social: about {pairs} contact pairs (social.model = \"{}\", social.degree {}, {n} devices), more than the {MAX_CONTACT_PAIRS} a run holds (those of a complete graph of 5,000 devices)",
                so.model, so.degree
            ));
        }
        if so.groups > MAX_SOCIAL_GROUPS {
            return Err(format!(
                "social.groups {}: at most {MAX_SOCIAL_GROUPS}",
                so.groups
            ));
        }
        if so.groups > 0 {
            let size = u64::from(so.group_size).min(n);
            let members = u64::from(so.groups) * (size * (size - 1) / 2);
            if members > MAX_CONTACT_PAIRS {
                return Err(format!(
                    "social.groups {} of social.group_size {}: up to {members} pairs of members, more than the {MAX_CONTACT_PAIRS} a run holds",
                    so.groups, so.group_size
                ));
            }
        }
        if matches!(self.contacts, ContactModel::Waypoint { .. })
            && n > u64::from(MAX_WAYPOINT_DEVICES)
        {
            return Err(format!(
                "waypoint: {n} devices, more than {MAX_WAYPOINT_DEVICES} (each leg a device starts is checked against every other device, and the start against every pair)"
            ));
        }
        Ok(())
    }

    /// The carrying options strand-sync would otherwise hold to its
    /// bounds without a word (a carrier cuts its budget and an envelope's
    /// lifetime to them, the simulator its hold gaps to a byte): each is
    /// refused out of range, naming the range.
    fn check_carrying(&self) -> Result<(), String> {
        let o = &self.options;
        if o.carry_budget.0 > strand_sync::MAX_CARRY_BUDGET {
            return Err(format!(
                "options.carry_budget must be 0 to {} bytes (1 GiB: strand-sync's MAX_CARRY_BUDGET)",
                strand_sync::MAX_CARRY_BUDGET
            ));
        }
        // strand-sync's clock counts whole milliseconds.
        let longest = strand_sync::MAX_ENVELOPE_LIFETIME;
        let lifetime = |d: Duration| (1..=longest).contains(&(d.0 / 1000));
        let range = format!(
            "1 ms to {} days (strand-sync's MAX_ENVELOPE_LIFETIME)",
            longest / 86_400_000
        );
        match (o.carry_lifetime, o.ttl) {
            (Some(l), _) if !lifetime(l) => {
                return Err(format!("options.carry_lifetime must be {range}"));
            }
            (None, Some(ttl)) if self.policy == Policy::StrandCarrying && !lifetime(ttl) => {
                return Err(format!(
                    "options.ttl is strand-carrying's envelope lifetime while options.carry_lifetime is not set, and must then be {range} (or set options.carry_lifetime)"
                ));
            }
            _ => {}
        }
        if o.carry_hold_gaps.is_some_and(|g| g > u32::from(u8::MAX)) {
            return Err(format!(
                "options.carry_hold_gaps must be 0 to {} gaps",
                u8::MAX
            ));
        }
        Ok(())
    }

    /// What each device's carrier does under `options` (Strand with
    /// carrying); what is not set is the node's default.
    pub fn carry_config(&self) -> strand_sync::CarryConfig {
        let o = &self.options;
        let chains = strand_sync::Spread::Chains {
            reach: o.carry_reach.map_or(strand_sync::DEFAULT_REACH, |r| {
                u8::try_from(r).unwrap_or(u8::MAX)
            }),
            width: o.carry_width.map_or(strand_sync::DEFAULT_WIDTH, |w| {
                u8::try_from(w).unwrap_or(u8::MAX)
            }),
        };
        let spread = match o.carry_spread.as_deref() {
            Some("chains") => chains,
            Some(_) => strand_sync::Spread::SprayAndWait,
            None if o.carry_reach.is_some() || o.carry_width.is_some() => chains,
            None => strand_sync::CarryConfig::default().spread,
        };
        strand_sync::CarryConfig {
            spread,
            copies: u8::try_from(o.carry_copies.unwrap_or(o.copies)).unwrap_or(u8::MAX),
            budget: o.carry_budget.0,
            lifetime: o
                .carry_lifetime
                .or(o.ttl)
                .map_or(24 * 3_600_000, |d| d.0 / 1000),
            carry: true,
            learn: o.carry_learn,
            hold_gaps: o
                .carry_hold_gaps
                .map_or(strand_sync::DEFAULT_HOLD_GAPS, |g| {
                    u8::try_from(g).unwrap_or(u8::MAX)
                }),
        }
    }
}
