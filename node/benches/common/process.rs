//! A `strand` process a benchmark measures: started with its output
//! piped, and its resident memory. Shared by the node, relay and idle
//! benchmarks.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `command` (quiet, no stdin) and returns it with the first line
/// it printed, trimmed; the rest of its output is drained so it never
/// blocks on it.
pub fn spawn_printing(mut command: Command) -> (Child, String) {
    let mut child = command
        .env("STRAND_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || for _ in out.lines() {});
    (child, line.trim().to_owned())
}

/// Resident memory of process `pid`, in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
