//! Human units in scenario files: durations (`"12h"`, `"25s"`), sizes
//! (`"500k"`, `"1MiB"`) and rates (`"2Mbit"`, `"250kB"`, `"inf"`).
//!
//! Simulated time is [`Micros`]: whole microseconds since the start of the
//! run, so that small packets on fast links still take non-zero time.

use serde::{Deserialize, Deserializer};

/// Simulated time or a duration, in microseconds.
pub type Micros = u64;

/// One second of simulated time.
pub const SECOND: Micros = 1_000_000;

/// Seconds as a float, for reports and plots.
pub fn secs(t: Micros) -> f64 {
    t as f64 / SECOND as f64
}

fn split_number(s: &str) -> Result<(f64, &str), String> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let value: f64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` does not start with a number"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{s}` must be a non-negative number"));
    }
    Ok((value, unit.trim()))
}

/// Parses a duration: a number with `us`, `ms`, `s`, `m`/`min`, `h` or `d`
/// (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Micros, String> {
    let (value, unit) = split_number(s)?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "" | "s" => 1e6,
        "m" | "min" => 60e6,
        "h" => 3600e6,
        "d" => 86_400e6,
        _ => {
            return Err(format!(
                "`{s}`: unknown time unit `{unit}` (use ms, s, m, h or d)"
            ))
        }
    };
    let us = value * scale;
    if us > 1e17 {
        return Err(format!("`{s}` is too long"));
    }
    Ok(us.round() as Micros)
}

/// Parses a size in bytes: `k`/`M`/`G` (powers of 1000), `KiB`/`MiB`/`GiB`
/// (powers of 1024); `B` or nothing for bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (value, unit) = split_number(s)?;
    let scale = match unit {
        "" | "B" => 1.0,
        "k" | "kB" | "K" | "KB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1_048_576.0,
        "GiB" => 1_073_741_824.0,
        _ => {
            return Err(format!(
                "`{s}`: unknown size unit `{unit}` (use B, k, M, G, KiB, MiB)"
            ))
        }
    };
    let bytes = value * scale;
    if bytes > 1e15 {
        return Err(format!("`{s}` is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a rate into bytes per second: `bit`/`kbit`/`Mbit`/`Gbit` per
/// second, or a size per second (`250kB`); `inf` for unlimited (`None`).
pub fn parse_rate(s: &str) -> Result<Option<f64>, String> {
    if s.trim() == "inf" {
        return Ok(None);
    }
    let (value, unit) = split_number(s)?;
    let unit = unit.trim_end_matches("/s").trim_end_matches("ps");
    let bytes_per_s = match unit {
        "bit" | "b" => value / 8.0,
        "kbit" | "kb" => value * 1e3 / 8.0,
        "Mbit" | "Mb" => value * 1e6 / 8.0,
        "Gbit" | "Gb" => value * 1e9 / 8.0,
        _ => parse_size(&format!("{value}{unit}"))? as f64,
    };
    if bytes_per_s <= 0.0 {
        return Err(format!("`{s}`: a rate must be above zero (or `inf`)"));
    }
    Ok(Some(bytes_per_s))
}

/// A duration field: a string with a unit, or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub Micros);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a duration, got {other}"
                )))
            }
        };
        parse_duration(&s)
            .map(Duration)
            .map_err(serde::de::Error::custom)
    }
}

/// A size field: a string with a unit, or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a size, got {other}"
                )))
            }
        };
        parse_size(&s).map(Size).map_err(serde::de::Error::custom)
    }
}

/// A rate field (bytes per second; `None` is unlimited).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub Option<f64>);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_rate(&s).map(Rate).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("12h"), Ok(12 * 3600 * SECOND));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000));
        assert_eq!(parse_duration("30"), Ok(30 * SECOND));
        assert!(parse_duration("3 fortnights").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_size("500k"), Ok(500_000));
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_rate("2Mbit"), Ok(Some(250_000.0)));
        assert_eq!(parse_rate("250kB"), Ok(Some(250_000.0)));
        assert_eq!(parse_rate("inf"), Ok(None));
        assert!(parse_rate("0bit").is_err());
    }
}
