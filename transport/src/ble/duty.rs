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

#[cfg(test)]
mod tests {
    use super::*;

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
