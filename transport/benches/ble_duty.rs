//! The BLE battery setting's trade-off, on the emulated radio: how much of
//! the time the radio is on against how soon two devices that come into
//! range open a link ([`strand_transport::ble::radio::meeting`]: scan
//! windows at random phases, advertising every 1.28 s plus the 0–10 ms
//! advertising delay, 10 % of advertising events lost, the transport's
//! who-dials rule).
//!
//! Every row is printed beside the baseline from the same run: scanning
//! all the time. The three settings (`strand bluetooth --scan`) are
//! marked. With `BLE_DUTY_PLOT=path.svg` it also draws the trade-off
//! (the plot in `docs/guide/bluetooth.md`).
//!
//! Virtual time: the figures are the model's, the same on every machine.

use std::time::Duration;

use strand_transport::ble::duty::{Duty, Schedule, ADVERTISE_EVERY};
use strand_transport::ble::link::Micros;
use strand_transport::ble::radio::meeting;

/// Meetings per row.
const TRIALS: u64 = 4000;
/// Advertising events lost (crowded air, a body between the phones).
const LOSS: f64 = 0.1;
/// A meeting that has not happened in an hour counts as an hour.
const LIMIT: Duration = Duration::from_secs(3600);

struct Row {
    label: String,
    schedule: Schedule,
    on: f64,
    mean: f64,
    median: f64,
    p90: f64,
    p99: f64,
}

fn measure(label: String, schedule: Schedule) -> Row {
    let mut times: Vec<Micros> = (0..TRIALS)
        .map(|seed| {
            meeting(
                [&schedule, &schedule],
                (seed % 2) as usize,
                LOSS,
                LIMIT,
                seed,
            )
            .unwrap_or(LIMIT.as_micros() as Micros)
        })
        .collect();
    times.sort_unstable();
    let secs = |m: Micros| m as f64 / 1e6;
    let at = |q: f64| secs(times[((times.len() - 1) as f64 * q) as usize]);
    Row {
        label,
        schedule,
        on: schedule.radio_on(),
        mean: times.iter().map(|&t| secs(t)).sum::<f64>() / times.len() as f64,
        median: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
    }
}

fn schedule(window: u64, period: u64, advertise_every: Duration) -> Schedule {
    Schedule {
        window: Duration::from_secs(window),
        period: Duration::from_secs(period),
        advertise_every,
    }
}

fn main() {
    println!(
        "BLE duty cycle on the emulated radio: {TRIALS} meetings a row, {:.0} % of advertising events lost, advertising every {} ms",
        LOSS * 100.0,
        ADVERTISE_EVERY.as_millis()
    );
    let baseline = measure(
        "scan always (baseline)".into(),
        schedule(10, 10, ADVERTISE_EVERY),
    );
    let mut rows = Vec::new();
    for window in [1, 2, 4] {
        for period in [5, 10, 20, 30, 60, 120] {
            if period <= window {
                continue;
            }
            let s = schedule(window, period, ADVERTISE_EVERY);
            let setting = Duty::ALL.into_iter().find(|d| d.schedule() == s);
            let label = match setting {
                Some(d) => format!("{window} s every {period} s  [{d}]"),
                None => format!("{window} s every {period} s"),
            };
            rows.push(measure(label, s));
        }
    }
    println!(
        "{:<30} {:>8} {:>9} {:>9} {:>9} {:>9}   vs baseline",
        "scan", "radio on", "mean s", "median s", "p90 s", "p99 s"
    );
    let print = |r: &Row| {
        println!(
            "{:<30} {:>7.1}% {:>9.1} {:>9.1} {:>9.1} {:>9.1}   {:.1}× the battery saved, {:.1}× the mean wait",
            r.label,
            r.on * 100.0,
            r.mean,
            r.median,
            r.p90,
            r.p99,
            baseline.on / r.on,
            r.mean / baseline.mean
        )
    };
    print(&baseline);
    for r in &rows {
        print(r);
    }
    // What faster advertising would buy (BlueZ takes an advertising
    // interval only with experimental features on).
    println!("advertising every 100 ms instead (bluetoothd -E):");
    for d in [Duty::Balanced, Duty::Saver] {
        let s = Schedule {
            advertise_every: Duration::from_millis(100),
            ..d.schedule()
        };
        print(&measure(format!("[{d}] advertising 100 ms"), s));
    }
    if let Ok(path) = std::env::var("BLE_DUTY_PLOT") {
        match plot(&path, &baseline, &rows) {
            Ok(()) => println!("plot: {path}"),
            Err(e) => eprintln!("plot: {e}"),
        }
    }
}

fn plot(path: &str, baseline: &Row, rows: &[Row]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let top = rows.iter().map(|r| r.mean).fold(0.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "BLE scanning: battery against time to meet (emulated radio)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d((0.8..130.0).log_scale(), 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("radio on, % of the time (log scale)")
        .y_desc("mean time to a link, s")
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
    ];
    for (i, window) in [1u64, 2, 4].into_iter().enumerate() {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.schedule.window.as_secs() == window)
            .map(|r| (r.on * 100.0, r.mean))
            .collect();
        let color = colors[i];
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(format!("{window} s windows"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    let mut marks: Vec<(String, f64, f64)> =
        vec![("always".into(), baseline.on * 100.0, baseline.mean)];
    for d in [Duty::Balanced, Duty::Saver] {
        if let Some(r) = rows.iter().find(|r| r.schedule == d.schedule()) {
            marks.push((d.name().into(), r.on * 100.0, r.mean));
        }
    }
    for (name, x, y) in marks {
        chart.draw_series([Circle::new((x, y), 6, BLACK.stroke_width(2))])?;
        // Beside the mark, inside the plot.
        let at = if x > 50.0 {
            (x * 0.55, y + top * 0.06)
        } else {
            (x * 1.1, y + top * 0.06)
        };
        chart.draw_series([Text::new(name, at, ("sans-serif", 15).into_font())])?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
