//! Parameter sweeps: a grid of scenario edits × several seeds, run in
//! parallel with rayon (each run still single-threaded and deterministic),
//! summarised as means with 95 % confidence intervals.

use std::fmt::Write as _;
use std::path::Path;

use rayon::prelude::*;

use crate::plot::{line_chart, Series};
use crate::units::{parse_duration, parse_size};
use crate::{Report, Scenario};

/// Most seeds a sweep runs at each grid point: a 95 % interval narrows
/// with the square root of the seeds, so ten thousand already give a
/// hundredth of one seed's spread, and the list stays small in a plan.
pub const MAX_SEEDS: u64 = 10_000;

/// Most runs (grid points × seeds) in one sweep or plan: a hundred
/// thousand runs of a minute each are some 70 core-days, and a plan's
/// manifest and job list stay within tens of megabytes.
pub const MAX_RUNS: u64 = 100_000;

/// The seeds of a sweep: `count` of them from `first` on, refused past
/// [`MAX_SEEDS`] or past the largest seed.
pub fn seeds(first: u64, count: u64) -> anyhow::Result<Vec<u64>> {
    anyhow::ensure!(
        (1..=MAX_SEEDS).contains(&count),
        "--seeds {count}: give 1 to {MAX_SEEDS} seeds"
    );
    let last = first
        .checked_add(count)
        .ok_or_else(|| anyhow::anyhow!("--seed {first} + --seeds {count} overflows"))?;
    Ok((first..last).collect())
}

/// One swept parameter: a dotted path into the scenario (`policy`,
/// `contacts.gap`, `group.0.count`) and its values as written in TOML.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Dotted path.
    pub path: String,
    /// Values, as TOML literals or bare strings.
    pub values: Vec<String>,
}

/// Splits on commas outside brackets and quotes, so that
/// `traffic.size=[20,200],[200,2000]` is two values.
fn split_top_level(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quoted) = (Vec::new(), String::new(), 0i32, false);
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

impl std::str::FromStr for Param {
    type Err = String;

    /// `path=v1,v2,...`
    fn from_str(s: &str) -> Result<Param, String> {
        let (path, values) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected path=value1,value2,..."))?;
        let values = split_top_level(values);
        if path.trim().is_empty() || values.is_empty() {
            return Err(format!("`{s}`: expected path=value1,value2,..."));
        }
        Ok(Param {
            path: path.trim().to_string(),
            values,
        })
    }
}

/// A metric's mean and 95 % confidence half-width over seeds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// Mean.
    pub mean: f64,
    /// Half-width of the 95 % confidence interval (Student's t).
    pub ci95: f64,
}

/// One grid point's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Point {
    /// The parameter values.
    pub values: Vec<String>,
    /// Runs (one per seed).
    pub runs: Vec<Report>,
    /// Each scalar metric, estimated.
    pub metrics: Vec<(String, Estimate)>,
}

fn toml_value(v: &str) -> toml::Value {
    format!("x = {v}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("x"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()))
}

/// Sets `path` in `table`.
pub fn set(table: &mut toml::Table, path: &str, value: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = table;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if last {
            cur.insert(part.to_string(), toml_value(value));
            return Ok(());
        }
        let next = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match next {
            toml::Value::Table(t) => t,
            toml::Value::Array(a) => {
                let idx: usize = parts[i + 1].parse().map_err(|_| {
                    anyhow::anyhow!("`{path}`: `{part}` is a list; give an index next")
                })?;
                let len = a.len();
                let el = a
                    .get_mut(idx)
                    .ok_or_else(|| anyhow::anyhow!("`{path}`: `{part}` has {len} entries"))?;
                let toml::Value::Table(t) = el else {
                    anyhow::bail!("`{path}`: not a table");
                };
                if i + 2 == parts.len() {
                    anyhow::bail!("`{path}`: ends at a list entry");
                }
                // Skip the index segment.
                return set(t, &parts[i + 2..].join("."), value);
            }
            _ => anyhow::bail!("`{path}`: `{part}` is not a table"),
        };
    }
    Ok(())
}

/// Student's t quantile for a two-sided 95 % interval with `df` degrees of
/// freedom: the table's up to 30, and above it the normal quantile
/// corrected in powers of 1/df (Hill's expansion, within 1e-4 there), not
/// the normal quantile itself, which narrowed a sweep of 31 to 120 seeds'
/// intervals by up to 4 %.
pub fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => {
            const Z: f64 = 1.959_963_984_540_054;
            let (z2, v) = (Z * Z, df as f64);
            let g1 = Z * (z2 + 1.0) / 4.0;
            let g2 = Z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
            let g3 = Z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
            let g4 =
                Z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
            Z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v)
        }
    }
}

/// Mean and 95 % CI of samples.
pub fn estimate(xs: &[f64]) -> Estimate {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return Estimate { mean, ci95: 0.0 };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Estimate {
        mean,
        ci95: t95(n - 1) * (var / n as f64).sqrt(),
    }
}

/// One point of a sweep's grid.
#[derive(Debug, Clone)]
pub struct GridPoint {
    /// The parameters' values, in parameter order.
    pub values: Vec<String>,
    /// The scenario's TOML with those values set.
    pub table: toml::Table,
    /// The same, checked.
    pub scenario: Scenario,
}

impl GridPoint {
    /// `path=value path=value`.
    pub fn label(&self, params: &[Param]) -> String {
        label(params, &self.values)
    }
}

fn label(params: &[Param], values: &[String]) -> String {
    params
        .iter()
        .zip(values)
        .map(|(p, v)| format!("{}={v}", p.path))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A sweep's grid: every combination of the parameters' values (the first
/// parameter varying slowest), each to be run with every seed.
#[derive(Debug, Clone)]
pub struct Grid {
    /// The scenario's name.
    pub name: String,
    /// The swept parameters.
    pub params: Vec<Param>,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// The points.
    pub points: Vec<GridPoint>,
}

impl Grid {
    /// The grid of `params` over the scenario `base` (read from `dir`).
    pub fn new(
        base: &toml::Table,
        dir: &Path,
        params: &[Param],
        seeds: &[u64],
    ) -> anyhow::Result<Grid> {
        // A second value list for a path would silently replace the
        // first at every point.
        for (i, p) in params.iter().enumerate() {
            anyhow::ensure!(
                !params[..i].iter().any(|q| q.path == p.path),
                "--set {}: given twice (give its values once, comma-separated)",
                p.path
            );
        }
        let points = params
            .iter()
            .fold(1u64, |n, p| n.saturating_mul(p.values.len() as u64));
        let runs = points.saturating_mul(seeds.len() as u64);
        anyhow::ensure!(
            runs <= MAX_RUNS,
            "{points} grid points × {} seeds: {runs} runs, more than the {MAX_RUNS} a sweep takes (give fewer values or seeds, or split the sweep)",
            seeds.len()
        );
        let mut grid: Vec<Vec<String>> = vec![Vec::new()];
        for p in params {
            grid = grid
                .into_iter()
                .flat_map(|g| {
                    p.values.iter().map(move |v| {
                        let mut g = g.clone();
                        g.push(v.clone());
                        g
                    })
                })
                .collect();
        }
        let mut points = Vec::new();
        for values in grid {
            let mut table = base.clone();
            for (p, v) in params.iter().zip(&values) {
                set(&mut table, &p.path, v)?;
            }
            let scenario = Scenario::from_table(table.clone(), dir.to_path_buf())
                .map_err(|e| anyhow::anyhow!("{}: {e}", label(params, &values)))?;
            points.push(GridPoint {
                values,
                table,
                scenario,
            });
        }
        let name = base
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("sweep")
            .to_string();
        Ok(Grid {
            name,
            params: params.to_vec(),
            seeds: seeds.to_vec(),
            points,
        })
    }

    /// The jobs, as (point, seed): each point with each seed, in order.
    pub fn jobs(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        (0..self.points.len()).flat_map(|i| self.seeds.iter().map(move |s| (i, *s)))
    }
}

/// The grid's points from the runs' reports, given in job order (each
/// point's `seeds` runs in a row): the runs kept, each metric estimated.
pub fn points(values: Vec<Vec<String>>, seeds: usize, reports: Vec<Report>) -> Vec<Point> {
    assert_eq!(values.len() * seeds, reports.len(), "one report per job");
    let mut reports = reports.into_iter();
    values
        .into_iter()
        .map(|values| {
            let runs: Vec<Report> = reports.by_ref().take(seeds).collect();
            let mut metrics = Vec::new();
            let names: Vec<&str> = runs[0].scalars().iter().map(|(k, _)| *k).collect();
            for (k, name) in names.iter().enumerate() {
                let xs: Vec<f64> = runs.iter().map(|r| r.scalars()[k].1).collect();
                metrics.push((name.to_string(), estimate(&xs)));
            }
            Point {
                values,
                runs,
                metrics,
            }
        })
        .collect()
}

/// Runs the grid in this process, on rayon's threads. `done()` is called
/// after each run.
pub fn sweep(grid: &Grid, done: &(dyn Fn() + Sync)) -> anyhow::Result<Vec<Point>> {
    let jobs: Vec<(usize, u64)> = grid.jobs().collect();
    let reports = jobs
        .par_iter()
        .map(|&(i, seed)| {
            let o = crate::run(&grid.points[i].scenario, seed, |_, _| {})?;
            done();
            Ok(o.report)
        })
        .collect::<anyhow::Result<Vec<Report>>>()?;
    let values = grid.points.iter().map(|p| p.values.clone()).collect();
    Ok(points(values, grid.seeds.len(), reports))
}

/// A number for an axis: plain, a duration (in hours when long, else
/// seconds), or a size.
fn axis_value(v: &str) -> Option<f64> {
    let v = v.trim_matches('"');
    v.parse::<f64>()
        .ok()
        .or_else(|| parse_duration(v).ok().map(|us| us as f64 / 1e6))
        .or_else(|| parse_size(v).ok().map(|b| b as f64))
        .filter(|x| x.is_finite())
}

/// Writes `sweep.csv`, `sweep.json`, plots and `sweep.md`.
pub fn write(dir: &Path, params: &[Param], points: &[Point]) -> anyhow::Result<()> {
    let mut csv = String::new();
    for p in params {
        let _ = write!(csv, "{},", p.path);
    }
    csv.push_str("runs");
    for (name, _) in &points[0].metrics {
        let _ = write!(csv, ",{name}_mean,{name}_ci95");
    }
    csv.push('\n');
    for p in points {
        for v in &p.values {
            let _ = write!(csv, "{},", v.replace(',', ";"));
        }
        let _ = write!(csv, "{}", p.runs.len());
        for (_, e) in &p.metrics {
            let _ = write!(csv, ",{},{}", e.mean, e.ci95);
        }
        csv.push('\n');
    }
    std::fs::write(dir.join("sweep.csv"), csv)?;
    std::fs::write(
        dir.join("sweep.json"),
        serde_json::to_string_pretty(points)?,
    )?;
    let numeric = params
        .first()
        .is_some_and(|p| p.values.iter().all(|v| axis_value(v).is_some()));
    let x_of = |p: &Point, i: usize| -> f64 {
        if numeric {
            axis_value(&p.values[0]).expect("checked")
        } else {
            i as f64
        }
    };
    let x_label = match params.first() {
        Some(p) => p.path.clone(),
        None => "run".into(),
    };
    let names: Vec<String> = params.first().map(|p| p.values.clone()).unwrap_or_default();
    let mut md = String::from(
        "# Sweep\n\nMeans over seeds with 95 % confidence intervals (Student's t).\n\n",
    );
    for (metric, title) in [
        ("delivery_ratio", "Delivery ratio"),
        ("latency_mean_s", "Mean latency (s)"),
        ("bytes_per_delivered", "Bytes per delivered message"),
    ] {
        let mut series: Vec<Series> = Vec::new();
        let mut errors: Vec<Vec<f64>> = Vec::new();
        let first_len = params.first().map_or(1, |p| p.values.len());
        // Grid order: the first parameter varies slowest.
        let per = (points.len() / first_len).max(1);
        for (k, p) in points.iter().enumerate() {
            let label = p
                .values
                .iter()
                .skip(1)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            let e = p
                .metrics
                .iter()
                .find(|(n, _)| n == metric)
                .map(|(_, e)| *e)
                .expect("known metric");
            let xi = k / per;
            match series.iter().position(|(n, _)| *n == label) {
                Some(s) => {
                    series[s].1.push((x_of(p, xi), e.mean));
                    errors[s].push(e.ci95);
                }
                None => {
                    series.push((label, vec![(x_of(p, xi), e.mean)]));
                    errors.push(vec![e.ci95]);
                }
            }
        }
        // Values may be given in any order: draw each line left to right.
        for ((_, pts), errs) in series.iter_mut().zip(errors.iter_mut()) {
            let mut both: Vec<_> = pts.iter().copied().zip(errs.iter().copied()).collect();
            both.sort_by(|a, b| a.0 .0.total_cmp(&b.0 .0));
            (*pts, *errs) = both.into_iter().unzip();
        }
        let file = format!("{metric}.svg");
        line_chart(
            &dir.join(&file),
            title,
            &x_label,
            title,
            &series,
            Some(&errors),
            (!numeric).then_some(names.as_slice()),
        )?;
        let _ = writeln!(md, "![{title}]({file})\n");
    }
    md.push_str("| ");
    for p in params {
        let _ = write!(md, "{} | ", p.path);
    }
    md.push_str("delivery ratio | mean latency (s) | bytes / delivered |\n|");
    for _ in 0..params.len() + 3 {
        md.push_str("---|");
    }
    md.push('\n');
    for p in points {
        md.push_str("| ");
        for v in &p.values {
            let _ = write!(md, "{v} | ");
        }
        let get = |m: &str| {
            p.metrics
                .iter()
                .find(|(n, _)| n == m)
                .map(|(_, e)| *e)
                .expect("known metric")
        };
        let (d, l, b) = (
            get("delivery_ratio"),
            get("latency_mean_s"),
            get("bytes_per_delivered"),
        );
        let _ = writeln!(
            md,
            "{:.4} ± {:.4} | {:.1} ± {:.1} | {:.0} ± {:.0} |",
            d.mean, d.ci95, l.mean, l.ci95, b.mean, b.ci95
        );
    }
    std::fs::write(dir.join("sweep.md"), md)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_interval() {
        let e = estimate(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(e.mean, 3.0);
        // s = 1.5811, t(4) = 2.776: 2.776 * 1.5811 / sqrt(5)
        assert!((e.ci95 - 1.963).abs() < 1e-3, "{}", e.ci95);
    }

    #[test]
    fn t_quantiles_above_the_table_follow_students_t() {
        // Published two-sided 95 % quantiles.
        for (df, t) in [
            (31, 2.0395),
            (40, 2.0211),
            (60, 2.0003),
            (120, 1.9799),
            (1000, 1.9623),
        ] {
            assert!(
                (t95(df) - t).abs() < 2e-4,
                "t95({df}) = {}, not {t}",
                t95(df)
            );
        }
        // It joins the table without a step and falls towards the normal's.
        assert!(t95(31) < t95(30) && t95(30) - t95(31) < 0.01);
        assert!((1..2000).all(|df| t95(df + 1) < t95(df)));
    }

    #[test]
    fn a_path_set_twice_is_refused() {
        // Before: the second `--set policy` replaced the first at every
        // point, without a word.
        let table: toml::Table = "name = \"x\"\nduration = \"1h\"\n[[group]]\ncount = 2\n[contacts]\nmodel = \"meetings\"\ngap = \"1h\"\nduration = \"1m\"\n"
            .parse()
            .unwrap();
        let params: Vec<Param> = ["policy=strand", "contacts.gap=2h", "policy=epidemic,direct"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let err = Grid::new(&table, Path::new("."), &params, &[1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--set policy: given twice"), "{err}");
        assert!(Grid::new(&table, Path::new("."), &params[..2], &[1]).is_ok());
    }

    #[test]
    fn sets_dotted_paths() {
        let mut t: toml::Table =
            "policy = \"strand\"\n[contacts]\ngap = \"1h\"\n[[group]]\ncount = 3\n"
                .parse()
                .unwrap();
        set(&mut t, "policy", "epidemic").unwrap();
        set(&mut t, "contacts.gap", "\"2h\"").unwrap();
        set(&mut t, "group.0.count", "7").unwrap();
        assert_eq!(t["policy"].as_str(), Some("epidemic"));
        assert_eq!(t["contacts"]["gap"].as_str(), Some("2h"));
        assert_eq!(t["group"][0]["count"].as_integer(), Some(7));
        assert!(set(&mut t, "group.5.count", "1").is_err());
        let p: Param = "traffic.size=[20,200], [1, 2],\"a,b\"".parse().unwrap();
        assert_eq!(p.values, vec!["[20,200]", "[1, 2]", "\"a,b\""]);
        set(&mut t, "traffic.size", &p.values[0]).unwrap();
        assert_eq!(t["traffic"]["size"].as_array().map(Vec::len), Some(2));
    }
}
