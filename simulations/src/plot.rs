//! SVG plots (plotters) and the report that links them.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::units::secs;
use crate::Outcome;

/// A named series of points.
pub type Series = (String, Vec<(f64, f64)>);

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A line chart of `series` into an SVG file. `errors` (same shape as
/// `series`, optional) draws ± bars around each point.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    errors: Option<&[Vec<f64>]>,
    x_names: Option<&[String]>,
) -> anyhow::Result<()> {
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0.0f64, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y1) = (0.0, 1.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if let Some(errs) = errors {
        for ((_, p), e) in series.iter().zip(errs) {
            for ((_, y), e) in p.iter().zip(e) {
                y1 = y1.max(y + e);
            }
        }
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let y1 = y1 * 1.05;
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let name_of = |x: &f64| -> String {
        let i = x.round();
        match x_names {
            Some(names) if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() => {
                names[i as usize].clone()
            }
            Some(_) => String::new(),
            None => format!("{x}"),
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .light_line_style(RGBColor(235, 235, 235));
    if let Some(names) = x_names {
        // Categories: one label per value, at 0, 1, 2, ...
        mesh.x_labels(names.len()).x_label_formatter(&name_of);
    }
    mesh.draw()?;
    for (i, (name, p)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        if let Some(errs) = errors {
            let e = &errs[i];
            chart.draw_series(p.iter().zip(e).map(|(&(x, y), &e)| {
                ErrorBar::new_vertical(x, y - e, y, y + e, color.filled(), 8)
            }))?;
            chart.draw_series(
                p.iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
            )?;
        }
    }
    if series.len() > 1 || series.first().is_some_and(|(n, _)| !n.is_empty()) {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Picks a time unit for an axis spanning `max_s` seconds.
fn time_unit(max_s: f64) -> (f64, &'static str) {
    if max_s >= 4.0 * 3600.0 {
        (3600.0, "hours")
    } else if max_s >= 240.0 {
        (60.0, "minutes")
    } else {
        (1.0, "seconds")
    }
}

/// The three plots of one run, and `report.md` / `index.html` linking them.
pub fn write_run(dir: &Path, o: &Outcome) -> anyhow::Result<()> {
    let r = &o.report;
    let (tu, tname) = time_unit(r.sim_time_s);
    let units = r.delivery_units.max(1) as f64;
    let delivered: Vec<(f64, f64)> = o
        .samples
        .iter()
        .map(|s| (s.time_s / tu, s.delivered as f64 / units))
        .collect();
    let created: Vec<(f64, f64)> = o
        .samples
        .iter()
        .map(|s| (s.time_s / tu, s.units as f64 / units))
        .collect();
    line_chart(
        &dir.join("delivery.svg"),
        &format!("Delivery over time — {} ({})", r.scenario, r.policy),
        &format!("time ({tname})"),
        "share of all deliveries wanted",
        &[("created".into(), created), ("delivered".into(), delivered)],
        None,
        None,
    )?;
    let mut lat: Vec<f64> = o.deliveries.iter().map(|(_, l)| secs(*l)).collect();
    lat.sort_by(f64::total_cmp);
    let (lu, lname) = time_unit(lat.last().copied().unwrap_or(0.0));
    let step = (lat.len() / 400).max(1);
    let mut cdf: Vec<(f64, f64)> = vec![(0.0, 0.0)];
    cdf.extend(
        lat.iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || *i + 1 == lat.len())
            .map(|(i, l)| (l / lu, (i + 1) as f64 / units)),
    );
    line_chart(
        &dir.join("latency_cdf.svg"),
        &format!("Latency CDF — {} ({})", r.scenario, r.policy),
        &format!("latency ({lname})"),
        "share delivered within",
        &[(String::new(), cdf)],
        None,
        None,
    )?;
    let per = |f: &dyn Fn(&crate::metrics::Sample) -> u64| -> Vec<(f64, f64)> {
        o.samples
            .iter()
            .filter(|s| s.delivered > 0)
            .map(|s| (s.time_s / tu, f(s) as f64 / s.delivered as f64 / 1000.0))
            .collect()
    };
    line_chart(
        &dir.join("bytes.svg"),
        &format!(
            "Bytes per delivered message — {} ({})",
            r.scenario, r.policy
        ),
        &format!("time ({tname})"),
        "kB per delivered message (cumulative)",
        &[
            ("all bytes".into(), per(&|s| s.bytes_total)),
            ("payload".into(), per(&|s| s.bytes_payload)),
            ("overhead".into(), per(&|s| s.bytes_total - s.bytes_payload)),
        ],
        None,
        None,
    )?;
    std::fs::write(dir.join("report.md"), report_markdown(o))?;
    std::fs::write(dir.join("index.html"), report_html(o))?;
    Ok(())
}

fn table(o: &Outcome) -> Vec<(String, String)> {
    let r = &o.report;
    let mut rows = vec![
        ("devices".to_string(), r.devices.to_string()),
        (
            "simulated time".into(),
            format!("{:.1} h", r.sim_time_s / 3600.0),
        ),
        (
            "messages created".into(),
            if r.unaddressed > 0 {
                format!(
                    "{} ({} more unaddressed: no contact or group to write to)",
                    r.created, r.unaddressed
                )
            } else {
                r.created.to_string()
            },
        ),
        (
            "deliveries wanted / made".into(),
            format!("{} / {}", r.delivery_units, r.delivered),
        ),
        ("delivery ratio".into(), format!("{:.4}", r.delivery_ratio)),
        (
            "latency mean / median / p95 / p99".into(),
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1} s",
                r.latency_s.mean, r.latency_s.median, r.latency_s.p95, r.latency_s.p99
            ),
        ),
        (
            format!("delivered within {:.0} s", r.budget_s),
            format!("{:.4}", r.delivered_within_budget),
        ),
        (
            "bytes on links (payload + overhead)".into(),
            format!(
                "{} ({} + {})",
                r.bytes_total, r.bytes_payload, r.bytes_overhead
            ),
        ),
        (
            "bytes per delivered message".into(),
            format!("{:.0}", r.bytes_per_delivered),
        ),
        (
            "copies made per delivered message".into(),
            format!("{:.2}", r.copies_per_delivered()),
        ),
        ("duplicate receptions".into(), r.duplicates.to_string()),
        (
            "storage per device mean / max".into(),
            format!(
                "{:.0} / {} bytes",
                r.storage_mean_bytes, r.storage_max_bytes
            ),
        ),
        (
            "contacts used / carried a message".into(),
            format!("{} / {}", r.contacts_used, r.contacts_carried),
        ),
        (
            "hops mean / median".into(),
            format!("{:.2} / {:.0}", r.hops_mean, r.hops_median),
        ),
    ];
    // Where the bytes went, largest first, per delivered message.
    let mut parts: Vec<(&String, &u64)> = r.bytes_sent_by_part.iter().collect();
    parts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let per = |v: u64| v as f64 / r.delivered.max(1) as f64;
    for (k, v) in parts {
        rows.push((
            format!("bytes: {k}"),
            format!(
                "{v} ({:.1} %, {:.0} per delivered message)",
                100.0 * *v as f64 / r.bytes_total.max(1) as f64,
                per(*v)
            ),
        ));
    }
    for (k, v) in &r.pool_written {
        rows.push((
            format!("carrying pool written: {k}"),
            format!("{v} ({:.0} per delivered message)", per(*v)),
        ));
    }
    for (k, v) in &r.invariants {
        rows.push((
            format!("invariant `{k}`"),
            if *v {
                "holds".into()
            } else {
                "VIOLATED".into()
            },
        ));
    }
    rows
}

fn report_markdown(o: &Outcome) -> String {
    let r = &o.report;
    let mut s = format!(
        "# {} — {} (seed {})\n\n| metric | value |\n|---|---|\n",
        r.scenario, r.policy, r.seed
    );
    for (k, v) in table(o) {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    s.push_str("\n![delivery over time](delivery.svg)\n\n![latency CDF](latency_cdf.svg)\n\n![bytes per delivered message](bytes.svg)\n\n");
    s.push_str("Files: `metrics.json`, `metrics.csv`, `MessageStatsReport.txt` (ONE format), `deliveries.csv`.\n");
    s
}

fn report_html(o: &Outcome) -> String {
    let r = &o.report;
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut s = format!(
        "<!doctype html><meta charset=utf-8><title>{0}</title><style>body{{font-family:sans-serif;max-width:760px;margin:2em auto}}td{{padding:2px 8px}}</style><h1>{0} — {1} (seed {2})</h1><table>",
        esc(&r.scenario),
        esc(&r.policy),
        r.seed
    );
    for (k, v) in table(o) {
        let _ = write!(s, "<tr><td>{}<td>{}", esc(&k), esc(&v));
    }
    s.push_str("</table><img src=delivery.svg><img src=latency_cdf.svg><img src=bytes.svg>\n");
    s
}
