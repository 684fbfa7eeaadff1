//! `strand-sim`: run a scenario, or sweep one over a parameter grid.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use strand_sim::plan::{Plan, SlurmRequest};
use strand_sim::sweep::{self, Param};
use strand_sim::{Outcome, Scenario};

#[derive(Parser)]
#[command(
    name = "strand-sim",
    version,
    about = "Deterministic simulator running Strand's real sync protocol on many devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario: metrics (JSON, CSV, ONE text), plots and a report.
    Run {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Override the scenario's policy: strand, epidemic, spray-and-wait, direct.
        #[arg(long)]
        policy: Option<String>,
        /// Output directory (default: out/<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Do not draw plots.
        #[arg(long)]
        no_plots: bool,
    },
    /// Run a grid of parameter values × seeds in parallel; means and 95 % CIs.
    ///
    /// With `--plan DIR`, runs nothing: writes one job per (grid point,
    /// seed) for GNU parallel (`DIR/jobs.txt`) or a Slurm job array
    /// (`DIR/sweep.sbatch`), to be gathered by `strand-sim merge DIR`.
    Sweep {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// A parameter: dotted path = comma-separated values, e.g.
        /// `--set policy=strand,epidemic --set contacts.gap=30m,1h,2h`.
        #[arg(long = "set", required = true)]
        params: Vec<Param>,
        /// Seeds per grid point (at most 10,000).
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory (default: out/<scenario name>-sweep).
        #[arg(long, conflicts_with = "plan")]
        out: Option<PathBuf>,
        /// Write a plan of jobs into this directory instead of running.
        #[arg(long, value_name = "DIR")]
        plan: Option<PathBuf>,
        /// Memory each job asks Slurm for (`sbatch --mem`).
        #[arg(long, default_value = "4G", requires = "plan")]
        job_mem: String,
        /// Time each job asks Slurm for (`sbatch --time`).
        #[arg(long, default_value = "02:00:00", requires = "plan")]
        job_time: String,
    },
    /// Run job N of a plan written by `sweep --plan`; writes DIR/results/N.json.
    Job {
        /// The plan directory.
        dir: PathBuf,
        /// The job's number (0 to jobs − 1; a Slurm array's task id).
        n: usize,
    },
    /// Check a plan's job results and write the sweep's CSV, JSON, plots
    /// and report, as `sweep` without `--plan` would.
    Merge {
        /// The plan directory.
        dir: PathBuf,
        /// Output directory (default: the plan directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the error's own layout (TOML errors span
            // several).
            let msg = format!("{e:#}");
            let words: Vec<&str> = msg.split_whitespace().collect();
            eprintln!("strand-sim: {}", words.join(" "));
            ExitCode::from(2)
        }
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn bar(len: u64, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(ProgressStyle::with_template(template).expect("a valid template"));
    pb
}

fn execute(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Run {
            scenario,
            seed,
            policy,
            out,
            no_plots,
        } => {
            let edits: Vec<(&str, &str)> = policy.iter().map(|p| ("policy", p.as_str())).collect();
            let sc = Scenario::load_with(&scenario, &edits)?;
            let seed = seed.unwrap_or(sc.seed);
            let out = out.unwrap_or_else(|| Path::new("out").join(slug(&sc.name)));
            std::fs::create_dir_all(&out)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
            let pb = bar(
                sc.duration.0 / 1_000_000,
                "{elapsed_precise} [{bar:40}] {pos}/{len} simulated s ({eta})",
            );
            let start = Instant::now();
            let o = strand_sim::run(&sc, seed, |now, _| pb.set_position(now / 1_000_000))?;
            let wall = start.elapsed();
            pb.finish_and_clear();
            write_outcome(&out, &o, !no_plots)?;
            let r = &o.report;
            println!(
                "{}: {} in {:.2} s wall",
                r.scenario,
                r.summary(),
                wall.as_secs_f64()
            );
            let broken: Vec<_> = r
                .invariants
                .iter()
                .filter(|(_, ok)| !**ok)
                .map(|(k, _)| k.as_str())
                .collect();
            if !broken.is_empty() {
                println!("invariants not holding at the end: {}", broken.join(", "));
            }
            println!("wrote {}", out.join("report.md").display());
            Ok(())
        }
        Command::Sweep {
            scenario,
            params,
            seeds,
            seed,
            out,
            plan,
            job_mem,
            job_time,
        } => {
            let seeds = sweep::seeds(seed, seeds)?;
            let (table, dir) = Scenario::read_table(&scenario)?;
            let grid = sweep::Grid::new(&table, &dir, &params, &seeds)?;
            let runs = grid.points.len() * seeds.len();
            if let Some(plan_dir) = plan {
                let request = SlurmRequest::new(&job_mem, &job_time)?;
                let exe = std::env::current_exe()
                    .map_err(|e| anyhow::anyhow!("cannot find strand-sim's own path: {e}"))?;
                let p = Plan::write(&grid, &plan_dir, &exe, &request)?;
                let d = plan_dir.display();
                println!(
                    "plan {}: {runs} jobs ({} grid points × {} seeds) in {d}\n\
                     run them with GNU parallel:  parallel -a {d}/jobs.txt\n\
                     or as a Slurm job array:     sbatch {d}/sweep.sbatch\n\
                     then:                        strand-sim merge {d}",
                    p.id,
                    grid.points.len(),
                    seeds.len(),
                );
                return Ok(());
            }
            let out =
                out.unwrap_or_else(|| Path::new("out").join(format!("{}-sweep", slug(&grid.name))));
            std::fs::create_dir_all(&out)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
            let pb = bar(
                runs as u64,
                "{elapsed_precise} [{bar:40}] {pos}/{len} runs ({eta})",
            );
            let finished = AtomicU64::new(0);
            let start = Instant::now();
            let results = sweep::sweep(&grid, &|| {
                pb.set_position(finished.fetch_add(1, Ordering::Relaxed) + 1);
            })?;
            pb.finish_and_clear();
            sweep::write(&out, &params, &results)?;
            println!(
                "{runs} runs ({} grid points × {} seeds) in {:.1} s on {} threads; wrote {}",
                grid.points.len(),
                seeds.len(),
                start.elapsed().as_secs_f64(),
                rayon::current_num_threads(),
                out.join("sweep.md").display()
            );
            Ok(())
        }
        Command::Job { dir, n } => {
            let plan = Plan::read(&dir)?;
            let start = Instant::now();
            let r = plan.run_job(&dir, n)?;
            println!(
                "job {n} of plan {} ({} seed {}): {} in {:.2} s wall",
                plan.id,
                r.values.join(" "),
                r.seed,
                r.report.summary(),
                start.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Merge { dir, out } => {
            let plan = Plan::read(&dir)?;
            let points = plan.merge(&dir)?;
            let out = out.unwrap_or_else(|| dir.clone());
            std::fs::create_dir_all(&out)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
            sweep::write(&out, &plan.params(), &points)?;
            println!(
                "merged the {} jobs of plan {}; wrote {}",
                plan.body.jobs.len(),
                plan.id,
                out.join("sweep.md").display()
            );
            Ok(())
        }
    }
}

/// Writes a run's files into `out`.
fn write_outcome(out: &Path, o: &Outcome, plots: bool) -> anyhow::Result<()> {
    std::fs::write(
        out.join("metrics.json"),
        serde_json::to_string_pretty(&o.report)? + "\n",
    )?;
    std::fs::write(out.join("metrics.csv"), o.report.to_csv())?;
    std::fs::write(out.join("MessageStatsReport.txt"), &o.one_text)?;
    let mut d = String::from("delivered_at_s,latency_s\n");
    for (t, l) in &o.deliveries {
        d.push_str(&format!("{},{}\n", *t as f64 / 1e6, *l as f64 / 1e6));
    }
    std::fs::write(out.join("deliveries.csv"), d)?;
    if plots {
        strand_sim::plot::write_run(out, o)?;
    }
    Ok(())
}
