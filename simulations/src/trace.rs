//! The ONE simulator's external event format, as read by its
//! `StandardEventsReader`: one event per line, time in seconds first.
//!
//! ```text
//! 12.5 CONN 3 7 up
//! 90.0 CONN 3 7 down
//! 15 C M1 3 9 500000
//! ```
//!
//! `CONN a b up|down` opens or closes a contact; `C id from to size
//! [response size]` creates a message. The transfer lines ONE also writes
//! (`S`, `DE`, `A`, `DR`, `R`) describe what ONE's router did; they are
//! skipped, because here the policy under test decides transfers. Lines
//! starting with `#` are comments. Host ids are integers.

use std::path::Path;

use crate::scenario::MAX_MESSAGE_BYTES;
use crate::units::{Micros, SECOND};

/// Largest host id accepted (devices are numbered from 0 to the largest id).
pub const MAX_HOST: u32 = 999_999;

/// A contact opening or closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// When.
    pub time: Micros,
    /// One host.
    pub a: u32,
    /// The other.
    pub b: u32,
    /// Up or down.
    pub up: bool,
}

/// A message creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    /// When.
    pub time: Micros,
    /// Its ONE id.
    pub id: String,
    /// Source host.
    pub from: u32,
    /// Destination host.
    pub to: u32,
    /// Body bytes.
    pub size: u64,
}

/// A parsed trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Contacts, in time order (stable for equal times).
    pub conns: Vec<Conn>,
    /// Creations, in time order.
    pub creates: Vec<Create>,
    /// Transfer lines skipped.
    pub skipped: usize,
    /// Largest host id seen, plus one.
    pub hosts: u32,
}

/// A line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl Trace {
    /// Reads a trace file.
    pub fn load(path: &Path) -> anyhow::Result<Trace> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read trace {}: {e}", path.display()))?;
        Trace::parse(&text).map_err(|e| anyhow::anyhow!("trace {}: {e}", path.display()))
    }

    /// Parses trace text.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut t = Trace::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |reason: String| TraceError { line, reason };
            // `#` starts a comment, at the start of a line or after an event.
            let l = raw.split('#').next().unwrap_or_default().trim();
            if l.is_empty() {
                continue;
            }
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 2 {
                return Err(err("expected `time EVENT ...`".into()));
            }
            let time = parse_time(f[0]).map_err(err)?;
            let host = |s: &str| -> Result<u32, TraceError> {
                let h: u32 = s
                    .parse()
                    .map_err(|_| err(format!("host `{s}` is not an integer id")))?;
                if h > MAX_HOST {
                    return Err(err(format!("host {h} is above {MAX_HOST}")));
                }
                Ok(h)
            };
            match f[1] {
                "CONN" => {
                    if f.len() != 5 {
                        return Err(err("expected `time CONN a b up|down`".into()));
                    }
                    let (a, b) = (host(f[2])?, host(f[3])?);
                    if a == b {
                        return Err(err(format!("host {a} connects to itself")));
                    }
                    let up = match f[4] {
                        "up" => true,
                        "down" => false,
                        other => return Err(err(format!("`{other}`: expected up or down"))),
                    };
                    t.hosts = t.hosts.max(a.max(b) + 1);
                    t.conns.push(Conn { time, a, b, up });
                }
                "C" => {
                    if !(f.len() == 6 || f.len() == 7) {
                        return Err(err("expected `time C id from to size [response]`".into()));
                    }
                    let (from, to) = (host(f[3])?, host(f[4])?);
                    if from == to {
                        return Err(err(format!("message {} is sent to its own source", f[2])));
                    }
                    let size: u64 =
                        f[5].parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                            err(format!("size `{}` is not a positive integer", f[5]))
                        })?;
                    if size > MAX_MESSAGE_BYTES {
                        return Err(err(format!(
                            "size {size} is above the {MAX_MESSAGE_BYTES} bytes (1 GiB) a message may have"
                        )));
                    }
                    t.hosts = t.hosts.max(from.max(to) + 1);
                    t.creates.push(Create {
                        time,
                        id: f[2].to_string(),
                        from,
                        to,
                        size,
                    });
                }
                "S" | "DE" | "A" | "DR" | "R" => t.skipped += 1,
                other => return Err(err(format!("unknown event `{other}`"))),
            }
        }
        t.conns.sort_by_key(|c| c.time);
        t.creates.sort_by_key(|c| c.time);
        Ok(t)
    }
}

fn parse_time(s: &str) -> Result<Micros, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("time `{s}` is not a number"))?;
    if !v.is_finite() || !(0.0..=1e11).contains(&v) {
        return Err(format!("time `{s}` is out of range"));
    }
    Ok((v * SECOND as f64).round() as Micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_lines() {
        let t = Trace::parse(
            "# x\n1 CONN 0 2 up # opens\n0.5 C M1 0 2 100\n3.25 CONN 0 2 down\n4 DE M1 0 2\n",
        )
        .unwrap();
        assert_eq!(t.conns.len(), 2);
        assert_eq!(t.conns[1].time, 3_250_000);
        assert_eq!(t.creates[0].size, 100);
        assert_eq!((t.hosts, t.skipped), (3, 1));
    }

    #[test]
    fn errors_name_the_line() {
        for bad in [
            "1 CONN 0 1 sideways",
            "x CONN 0 1 up",
            "1 CONN 0 0 up",
            "1 CONN a 1 up",
            "1 C M 0 1 -5",
            "1 WARP 0 1",
            "-1 CONN 0 1 up",
            "1 CONN 0 99999999 up",
            // Larger than any message a scenario may create (before: read
            // as given, and a link's transfer time overflowed).
            "1 C M 0 1 1073741825",
            "1 C M 0 1 18446744073709551615",
        ] {
            let e = Trace::parse(&format!("0 CONN 0 1 up\n{bad}\n")).unwrap_err();
            assert_eq!(e.line, 2, "{bad}: {e}");
        }
    }
}
