//! How much of the time the radio listens and advertises: the battery
//! setting of the BLE transport.
//!
//! A phone's radio costs battery while it is on. Strand's BLE transport
//! advertises all the time, sparsely (an advertising event is about 2 ms
//! of air time), and *scans* in windows: on for [`Schedule::window`] out
//! of every [`Schedule::period`]. Two contacts that come into range meet
//! when one hears the other's advertisement during a scan window, so a
//! shorter duty cycle saves battery and makes meetings later.
//!
//! The three settings ([`Duty`]) were chosen from the emulated radio's
//! figures (`cargo bench -p strand-transport --bench ble_duty`, the table
//! and plot in `docs/guide/bluetooth.md`): the radio-on fraction against
//! how soon two devices that come into range open a link. At a given
//! radio-on fraction, 1–2 s windows meet sooner than longer ones (a
//! window longer than two advertising intervals mostly waits). The
//! default, [`Duty::Balanced`], keeps the radio on a fifth of the time
//! and meets in 6 s on average, 10 s in nine meetings out of ten: within
//! the half minute two people walking past each other stay in range.
//! [`Duty::Saver`] costs a sixth of that and takes 25 s on average.
//!
//! Sans-IO: the transport asks a [`Schedule`] where in its cycle it is;
//! [`super::radio::meeting`] runs the same schedules in virtual time.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::link::Micros;

/// The BLE battery setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum Duty {
    /// Scan all the time: contacts meet within seconds; the radio never
    /// rests.
    Always,
    /// Scan 2 s in every 10 (the default).
    #[default]
    Balanced,
    /// Scan 1 s in every 30: a thirtieth of the battery, and meetings
    /// that take half a minute or so.
    Saver,
}

impl Duty {
    /// Every setting, fastest first.
    pub const ALL: [Duty; 3] = [Duty::Always, Duty::Balanced, Duty::Saver];

    /// The name the CLI takes and prints.
    pub fn name(self) -> &'static str {
        match self {
            Duty::Always => "always",
            Duty::Balanced => "balanced",
            Duty::Saver => "saver",
        }
    }

    /// What it means, in a line for a settings screen.
    pub fn describe(self) -> &'static str {
        match self {
            Duty::Always => {
                "scan all the time: contacts nearby meet in seconds, the battery drains fastest"
            }
            Duty::Balanced => "scan 2 s in every 10: contacts nearby meet within about 10 s",
            Duty::Saver => {
                "scan 1 s in every 30: least battery, contacts nearby meet within about half a minute"
            }
        }
    }

    /// Its scan windows and advertising.
    pub fn schedule(self) -> Schedule {
        let s = Duration::from_secs;
        match self {
            Duty::Always => Schedule {
                window: s(10),
                period: s(10),
                advertise_every: ADVERTISE_EVERY,
            },
            Duty::Balanced => Schedule {
                window: s(2),
                period: s(10),
                advertise_every: ADVERTISE_EVERY,
            },
            Duty::Saver => Schedule {
                window: s(1),
                period: s(30),
                advertise_every: ADVERTISE_EVERY,
            },
        }
    }

    /// The setting stored as `byte` (its place in [`Duty::ALL`]).
    pub fn from_byte(byte: u8) -> Option<Duty> {
        Duty::ALL.get(byte as usize).copied()
    }

    /// The byte it is stored as.
    pub fn to_byte(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Duty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Duty {
    type Err = String;

    fn from_str(s: &str) -> Result<Duty, String> {
        Duty::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("no Bluetooth setting {s:?}: always, balanced or saver"))
    }
}

/// The advertising interval: the Linux kernel's default for BlueZ's
/// advertisements (0x0800 slots of 0.625 ms), what a Linux phone does
/// unless bluetoothd runs with experimental features. An advertising
/// event costs ~1.8 ms of air time, so advertising keeps the radio on
/// ~0.14 % of the time, a tenth of the thriftiest scan setting.
pub const ADVERTISE_EVERY: Duration = Duration::from_millis(1280);

/// Air time of one advertising event: an `ADV_IND` of 47 bytes at 1M PHY
/// (376 µs) on each of the three advertising channels, each followed by
/// T_IFS and a listen for a scan or connect request (~230 µs).
pub const ADVERTISING_EVENT: Micros = 3 * (376 + 230);

/// A duty cycle: scan for `window` at the start of every `period`,
/// advertise every `advertise_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How long each scan window lasts.
    pub window: Duration,
    /// How often a window starts. `window == period`: always scanning.
    pub period: Duration,
    /// The advertising interval.
    pub advertise_every: Duration,
}

impl Schedule {
    /// Whether the radio scans all the time.
    pub fn continuous(&self) -> bool {
        self.window >= self.period
    }

    /// Whether it is scanning `at` into its cycle, and how long until
    /// that changes (`None`: never, it scans continuously).
    pub fn at(&self, at: Duration) -> (bool, Option<Duration>) {
        if self.continuous() {
            return (true, None);
        }
        let period = self.period.as_micros().max(1);
        let into = Duration::from_micros((at.as_micros() % period) as u64);
        if into < self.window {
            (true, Some(self.window - into))
        } else {
            (false, Some(self.period - into))
        }
    }

    /// The fraction of the time the radio is on: scanning, plus the air
    /// time of advertising (the advertising delay, 0–10 ms, averages 5).
    pub fn radio_on(&self) -> f64 {
        let scan = if self.continuous() {
            1.0
        } else {
            self.window.as_secs_f64() / self.period.as_secs_f64()
        };
        let every = self.advertise_every.as_micros() as f64 + 5_000.0;
        (scan + ADVERTISING_EVENT as f64 / every).min(1.0)
    }
}

/// A start or stop of scanning (or an advertisement) that failed is tried
/// again after this: BlueZ refuses one while the adapter is busy, being
/// reset or powered off, and most such refusals pass within seconds.
pub const RETRY: Duration = Duration::from_secs(5);

/// Whether the radio scans, as a duty cycle wants it, through starts and
/// stops that may fail. Sans-IO: the central asks [`Scanning::next`]
/// what to do and when to look again, does it, and says how it went
/// ([`Scanning::done`]).
#[derive(Debug, Clone, Default)]
pub struct Scanning {
    /// Whether the radio scans now (as far as the last success says).
    on: bool,
    /// After a failure: when (time into the schedule) to try again.
    retry: Option<Duration>,
}

impl Scanning {
    /// What to do `at` into `schedule`: `Some(true)` start scanning,
    /// `Some(false)` stop, `None` nothing; and how long until it should
    /// be asked again (`None`: only when something else changes).
    pub fn next(&self, schedule: &Schedule, at: Duration) -> (Option<bool>, Option<Duration>) {
        let (want, change) = schedule.at(at);
        let due = self.retry.is_none_or(|r| at >= r);
        let act = (want != self.on && due).then_some(want);
        // Wait for the retry only while there is one to make.
        let retry = match self.retry {
            Some(r) if want != self.on && !due => Some(r - at),
            _ => None,
        };
        (act, change.into_iter().chain(retry).min())
    }

    /// How the start (`want`) or stop asked for `at` went.
    pub fn done(&mut self, want: bool, ok: bool, at: Duration) {
        if ok {
            self.on = want;
            self.retry = None;
        } else {
            self.retry = Some(at + RETRY);
        }
    }

    /// Whether the radio scans now.
    pub fn on(&self) -> bool {
        self.on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scan that BlueZ refused to start is tried again: before, the
    /// central took it as started, and scanning all the time (no window
    /// to change) never tried again, so the device found no one until
    /// the setting changed.
    #[test]
    fn a_scan_that_failed_to_start_is_tried_again() {
        let always = Duty::Always.schedule();
        let secs = Duration::from_secs;
        let mut s = Scanning::default();
        assert_eq!(s.next(&always, secs(0)), (Some(true), None));
        s.done(true, false, secs(0));
        assert!(!s.on());
        // Not at once (no hammering), but within RETRY.
        assert_eq!(s.next(&always, secs(1)), (None, Some(RETRY - secs(1))));
        assert_eq!(s.next(&always, RETRY), (Some(true), None));
        s.done(true, true, RETRY);
        assert!(s.on());
        assert_eq!(s.next(&always, secs(60)), (None, None));

        // In windows: a failed stop is tried again too, and the wake is
        // the sooner of the retry and the next window.
        let balanced = Duty::Balanced.schedule();
        let mut s = Scanning::default();
        assert_eq!(s.next(&balanced, secs(0)), (Some(true), Some(secs(2))));
        s.done(true, true, secs(0));
        assert_eq!(s.next(&balanced, secs(2)), (Some(false), Some(secs(8))));
        s.done(false, false, secs(2));
        assert!(s.on());
        assert_eq!(s.next(&balanced, secs(3)), (None, Some(secs(4))));
        assert_eq!(s.next(&balanced, secs(7)), (Some(false), Some(secs(3))));
        // The window came round again before the stop worked: nothing to do.
        assert_eq!(s.next(&balanced, secs(10)), (None, Some(secs(2))));
    }

    #[test]
    fn a_schedule_scans_in_its_windows_and_says_when_that_changes() {
        let s = Duty::Balanced.schedule();
        let secs = Duration::from_secs;
        assert_eq!(s.at(secs(0)), (true, Some(secs(2))));
        assert_eq!(
            s.at(Duration::from_millis(1500)),
            (true, Some(Duration::from_millis(500)))
        );
        assert_eq!(s.at(secs(2)), (false, Some(secs(8))));
        assert_eq!(s.at(secs(9)), (false, Some(secs(1))));
        assert_eq!(s.at(secs(21)), (true, Some(secs(1))));
        assert_eq!(Duty::Always.schedule().at(secs(12345)), (true, None));
    }

    #[test]
    fn thriftier_settings_keep_the_radio_on_less() {
        let on: Vec<f64> = Duty::ALL.iter().map(|d| d.schedule().radio_on()).collect();
        assert_eq!(on[0], 1.0);
        assert!(on[0] > on[1] && on[1] > on[2], "{on:?}");
        // Balanced: 20 % scanning and ~0.14 % advertising.
        assert!((on[1] - 0.2014).abs() < 0.001, "{on:?}");
    }

    #[test]
    fn settings_round_trip_by_name_and_byte() {
        for d in Duty::ALL {
            assert_eq!(d.name().parse::<Duty>(), Ok(d));
            assert_eq!(Duty::from_byte(d.to_byte()), Some(d));
        }
        assert!("fast"
            .parse::<Duty>()
            .unwrap_err()
            .contains("always, balanced or saver"));
        assert_eq!(Duty::from_byte(3), None);
        assert_eq!(Duty::default(), Duty::Balanced);
    }
}
