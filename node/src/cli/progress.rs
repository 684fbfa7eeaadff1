//! Progress of the long steps of a command (sealing a file to send,
//! saving one) and of files arriving in `strand run`: a bar on a terminal
//! (indicatif, on stderr, so what the command prints on stdout stays
//! clean), a plain line at each quarter when stderr is not a terminal,
//! nothing with `--json`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Ctx;
use crate::runtime::api::{Failure, Reply, Request};
use crate::runtime::device::{Device, Events};
use crate::{display, NodeEvent};

/// How long a finished request's last progress reports are waited for.
const FINAL_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Files shown arriving at once in `strand run`; more wait for a place
/// (a contact who sends hundreds of files at once gets no more bars).
const MAX_ARRIVING: usize = 8;

/// Files `strand run` remembers it said are all here (see [`arrivals`]).
const MAX_FINISHED: usize = 256;

/// What a step counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Bytes (shown in MiB).
    Bytes,
    /// Messages.
    Messages,
}

impl Unit {
    fn amount(self, n: u64) -> String {
        match self {
            Unit::Bytes => format!("{:.1}", mib(n)),
            Unit::Messages => n.to_string(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Bytes => "MiB",
            Unit::Messages => "messages",
        }
    }
}

/// How a step's progress shows.
pub(crate) enum Progress {
    /// A bar on the terminal.
    Bar(ProgressBar),
    /// Lines: "Sealing notes.pdf: 50% (12.0 of 24.0 MiB)", at most one per
    /// quarter.
    Lines {
        label: String,
        unit: Unit,
        quarter: AtomicU64,
    },
    /// Nothing (`--json`).
    Off,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

impl Progress {
    /// Progress of a step called `label`, counting `unit`s, shown as `ctx`
    /// wants it.
    pub(crate) fn new(ctx: &Ctx, label: &str, unit: Unit) -> Progress {
        Progress::new_in(ctx, label, unit, None)
    }

    /// [`Progress::new`]; a bar goes into `bars` with the others there.
    fn new_in(ctx: &Ctx, label: &str, unit: Unit, bars: Option<&MultiProgress>) -> Progress {
        if ctx.json {
            return Progress::Off;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines {
                label: label.to_owned(),
                unit,
                quarter: AtomicU64::new(u64::MAX),
            };
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(match unit {
                Unit::Bytes => "{msg} [{bar:30}] {bytes}/{total_bytes} {eta}",
                Unit::Messages => "{msg} [{bar:30}] {pos}/{len} messages",
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(label.to_owned());
        Progress::Bar(match bars {
            Some(bars) => bars.add(bar),
            None => bar,
        })
    }

    /// `done` of `total` bytes so far.
    pub(crate) fn set(&self, done: u64, total: u64) {
        match self {
            Progress::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            Progress::Lines {
                label,
                unit,
                quarter,
            } => {
                let q = (done.min(total) * 4).checked_div(total).unwrap_or(4);
                if quarter.swap(q, Ordering::Relaxed) != q {
                    eprintln!(
                        "{label}: {}% ({} of {} {})",
                        q * 25,
                        unit.amount(done),
                        unit.amount(total),
                        unit.name()
                    );
                }
            }
            Progress::Off => {}
        }
    }

    /// The step ended (done or not): the bar goes.
    pub(crate) fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Asks `device` for `request(task)`, showing the progress it reports for
/// that task while it works (a running node reports over its control
/// socket, one started for the command from this process).
pub(super) async fn call_showing(
    ctx: &Ctx,
    device: &Device,
    label: &str,
    unit: Unit,
    request: impl FnOnce(Option<u64>) -> Request,
) -> Result<Reply, Failure> {
    let progress = Progress::new(ctx, label, unit);
    let events = match progress {
        Progress::Off => None,
        _ => device.follow().await.ok(),
    };
    let Some(mut events) = events else {
        return device.call(request(None)).await;
    };
    let task = rand_core::RngCore::next_u64(&mut crate::os_rng());
    let call = device.call(request(Some(task)));
    tokio::pin!(call);
    let shown = |event: Option<NodeEvent>| match event {
        Some(NodeEvent::Progress {
            task: t,
            done,
            total,
        }) if t == task => {
            progress.set(done, total);
            done >= total
        }
        _ => false,
    };
    let mut at_end = false;
    let reply = loop {
        tokio::select! {
            reply = &mut call => break reply,
            event = events.next() => {
                let ended = event.is_none();
                at_end |= shown(event);
                if ended {
                    // The node stopped: the call says how.
                    break call.await;
                }
            }
        }
    };
    // The last reports were sent before the answer, but may be read after
    // it (a running node's come on another connection): show them up to
    // the end, waiting a moment at most in all (the node's other events
    // keep coming, and do not make it longer).
    if reply.is_ok() && !at_end {
        let until = tokio::time::Instant::now() + FINAL_WAIT;
        while let Ok(event) = tokio::time::timeout_at(until, events.next()).await {
            if event.is_none() || shown(event) {
                break;
            }
        }
    }
    progress.finish();
    reply
}

/// `strand run`: a bar (or lines) per file arriving, and a line when one
/// is all here, saying how to save it.
pub(super) async fn arrivals(ctx: &Ctx, mut events: Events) {
    let bars = MultiProgress::new();
    let mut shown: HashMap<String, Progress> = HashMap::new();
    // Files said to be all here, the newest MAX_FINISHED: reports
    // of a batch are read apart from the batch, so one may come after
    // the last (two batches read after both were stored, or out of
    // order), and it must neither say so again nor open a bar.
    let mut finished: std::collections::VecDeque<String> = Default::default();
    while let Some(event) = events.next().await {
        let NodeEvent::FileArriving {
            from,
            group,
            id,
            name,
            size,
            have,
            total,
            ..
        } = event
        else {
            continue;
        };
        if finished.contains(&id) {
            continue;
        }
        // In a group: "ann in desk", named as the group's list names her.
        let from = match group {
            Some(group) => format!(
                "{} in {}",
                display::one_line(&from),
                display::one_line(&group)
            ),
            None => display::one_line(&from),
        };
        let name = display::one_line(&name);
        let done = have >= total;
        if !shown.contains_key(&id) && !done && shown.len() < MAX_ARRIVING {
            let label = format!("{name} from {from}");
            shown.insert(
                id.clone(),
                Progress::new_in(ctx, &label, Unit::Bytes, Some(&bars)),
            );
        }
        if let Some(p) = shown.get(&id) {
            let bytes = size.saturating_mul(have as u64) / total.max(1) as u64;
            p.set(bytes, size);
        }
        if done {
            if finished.len() == MAX_FINISHED {
                finished.pop_front();
            }
            finished.push_back(id.clone());
            if let Some(p) = shown.remove(&id) {
                p.finish();
            }
            if !ctx.json {
                let short = id.get(..8).unwrap_or(&id);
                let line = format!(
                    "Received {name} from {from} ({:.1} MiB): strand save {short} DIR",
                    mib(size)
                );
                match bars.is_hidden() {
                    true => println!("{line}"),
                    false => {
                        let _ = bars.println(line);
                    }
                }
            }
        }
    }
}
