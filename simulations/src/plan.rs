//! Sweeps spread over many processes or machines: a *plan* directory that
//! any scheduler can work through, one self-contained job at a time.
//!
//! `strand-sim sweep … --plan DIR` writes:
//!
//! - `plan.json`, the manifest: the parameters, the seeds, every grid
//!   point and every job (point × seed), with BLAKE2b digests of the files
//!   they read, and the plan's `id` (a digest of all of that);
//! - `points/K.toml`, grid point K's scenario with the sweep's values set
//!   (a scenario file like any other: `strand-sim run` takes it too);
//! - `inputs/`, copies of the files the scenarios read (contact traces,
//!   social graphs), so that the directory is all a job needs;
//! - `jobs.txt`, one command line per job (`strand-sim job DIR N`), for
//!   GNU parallel (`parallel -a DIR/jobs.txt`, also across hosts with
//!   `--sshloginfile` when DIR is on a shared file system);
//! - `sweep.sbatch`, a Slurm job array over the same jobs, with its
//!   resource requests.
//!
//! A job writes `results/N.json` (atomically: a temporary file renamed),
//! naming the plan, its job number, its point's values and its seed beside
//! the run's [`Report`]. `strand-sim merge DIR` checks every result
//! against the manifest, refuses a plan with missing, duplicated,
//! unknown or mismatched results (naming each), and writes the same
//! `sweep.csv`, `sweep.json`, `sweep.md` and plots as an in-process sweep
//! of the same grid, byte for byte.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use blake2::{Blake2b512, Digest};
use serde::{Deserialize, Serialize};
use strand_sync::hex;

use crate::sweep::{self, Grid, Param, Point};
use crate::{Report, Scenario};

/// The manifest's file name inside a plan directory.
pub const MANIFEST: &str = "plan.json";
/// What `plan.json` says it is (changes when its layout does).
pub const FORMAT: &str = "strand-sim plan 1";
/// The strand-sim that writes plans and runs their jobs: a plan or a
/// job's result recorded by another version is refused, since another
/// build may run the same scenario and seed differently.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A file a plan holds, with its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digested {
    /// Path relative to the plan directory.
    pub file: String,
    /// BLAKE2b-512 of its bytes, hex.
    pub blake2b: String,
}

/// One grid point of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPoint {
    /// The swept parameters' values, in parameter order.
    pub values: Vec<String>,
    /// Its scenario file.
    pub scenario: Digested,
}

/// One job: a grid point run with one seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanJob {
    /// The job's number (its place in the list).
    pub job: usize,
    /// Index into the points.
    pub point: usize,
    /// The seed.
    pub seed: u64,
}

/// Everything a plan fixes; its digest is the plan's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanBody {
    /// [`FORMAT`].
    pub format: String,
    /// The strand-sim that wrote it ([`VERSION`]). A plan written before
    /// versions were recorded has none (and so the id it had), and is
    /// read as this version's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The scenario's name.
    pub name: String,
    /// The swept parameters (dotted path and values).
    pub params: Vec<(String, Vec<String>)>,
    /// The seeds, in order.
    pub seeds: Vec<u64>,
    /// The grid, the first parameter varying slowest.
    pub points: Vec<PlanPoint>,
    /// Files the points' scenarios read.
    pub inputs: Vec<Digested>,
    /// The jobs: each point with each seed, in that order.
    pub jobs: Vec<PlanJob>,
}

/// A plan: `plan.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Digest of `body` (hex, 32 characters).
    pub id: String,
    /// The plan.
    #[serde(flatten)]
    pub body: PlanBody,
}

/// A job's result: `results/N.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The plan's id.
    pub plan: String,
    /// The strand-sim that ran it ([`VERSION`]; none in a result made
    /// before versions were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The job.
    pub job: usize,
    /// Its point's values.
    pub values: Vec<String>,
    /// Its seed.
    pub seed: u64,
    /// The run.
    pub report: Report,
}

/// Resource requests written into `sweep.sbatch`: checked when made, since
/// they go into the script as they are.
#[derive(Debug, Clone)]
pub struct SlurmRequest {
    /// `--mem` (per job), e.g. `4G`.
    mem: String,
    /// `--time` (per job), e.g. `02:00:00`.
    time: String,
}

impl SlurmRequest {
    /// `--mem` as Slurm writes it (a number, at most one unit letter) and
    /// `--time` as digits, `:` and `-`; anything else is refused.
    pub fn new(mem: &str, time: &str) -> anyhow::Result<SlurmRequest> {
        let digits = mem.trim_end_matches(['K', 'M', 'G', 'T']);
        anyhow::ensure!(
            !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit())
                && mem.len() - digits.len() <= 1,
            "--job-mem `{mem}`: give a size as Slurm takes it, e.g. 500M or 4G"
        );
        anyhow::ensure!(
            time.chars().any(|c| c.is_ascii_digit())
                && time
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ':' || c == '-'),
            "--job-time `{time}`: give a time as Slurm takes it, e.g. 30:00, 02:00:00 or 1-00:00:00"
        );
        Ok(SlurmRequest {
            mem: mem.to_owned(),
            time: time.to_owned(),
        })
    }
}

fn digest(bytes: &[u8]) -> String {
    hex(&Blake2b512::digest(bytes))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

fn mkdir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))
}

/// Refuses a plan directory that `sweep.sbatch` could not name: its
/// `#SBATCH --output` line takes the path unquoted (Slurm splits it at
/// whitespace) and reads `%` as the start of a filename pattern.
fn check_sbatch_path(dir: &Path) -> anyhow::Result<()> {
    let d = dir.to_string_lossy();
    anyhow::ensure!(
        !d.chars().any(|c| c.is_whitespace() || c == '%'),
        "plan directory {d:?}: a path with whitespace or `%` cannot be named in sweep.sbatch's `#SBATCH --output` line; choose another directory"
    );
    Ok(())
}

/// Whether `file` names a file under the plan directory's `sub` folder:
/// relative, `sub/` first, and every part a name (no `..`, no root).
/// A job reads the files its plan names, so a plan names only its own.
fn under(file: &str, sub: &str) -> bool {
    let mut parts = Path::new(file).components();
    parts.next() == Some(Component::Normal(OsStr::new(sub)))
        && parts.clone().next().is_some()
        && parts.all(|c| matches!(c, Component::Normal(_)))
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl PlanBody {
    fn id(&self) -> String {
        let json = serde_json::to_vec(self).expect("a plan serialises");
        digest(&json)[..32].to_string()
    }
}

impl Plan {
    /// Writes a plan for `grid` into `dir` (created if need be) and returns
    /// it. `exe` is the `strand-sim` that the job lines and the Slurm
    /// script call. Refuses a directory that already holds another plan.
    pub fn write(
        grid: &Grid,
        dir: &Path,
        exe: &Path,
        slurm: &SlurmRequest,
    ) -> anyhow::Result<Plan> {
        // `sweep.sbatch` names the directory in `#SBATCH --output`, which
        // Slurm splits at whitespace and where `%` starts a pattern: such
        // paths are refused, before anything is written if they are seen
        // as given, else once the path is absolute.
        check_sbatch_path(dir)?;
        mkdir(dir)?;
        let dir = dir
            .canonicalize()
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        check_sbatch_path(&dir)?;
        for sub in ["points", "inputs", "results", "logs"] {
            mkdir(&dir.join(sub))?;
        }
        // The files the scenarios read, copied once each under a name
        // that carries their digest.
        // Each source file is read once, however many points use it.
        let mut read_from: BTreeMap<PathBuf, String> = BTreeMap::new();
        let mut inputs: BTreeMap<String, Digested> = BTreeMap::new();
        let mut points = Vec::new();
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        for (k, p) in grid.points.iter().enumerate() {
            let mut table = p.table.clone();
            for (key, path) in p.scenario.inputs() {
                let source = p.scenario.resolve_path(path);
                let file = match read_from.get(&source) {
                    Some(file) => file.clone(),
                    None => {
                        let bytes = read(&source)?;
                        let d = digest(&bytes);
                        let base = path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .filter(|n| n.chars().all(|c| c.is_ascii_graphic()))
                            .unwrap_or("input");
                        let file = format!("inputs/{}-{base}", &d[..16]);
                        if !inputs.contains_key(&file) {
                            files.push((dir.join(&file), bytes));
                            inputs.insert(
                                file.clone(),
                                Digested {
                                    file: file.clone(),
                                    blake2b: d,
                                },
                            );
                        }
                        read_from.insert(source, file.clone());
                        file
                    }
                };
                let literal = toml::Value::String(format!("../{file}")).to_string();
                sweep::set(&mut table, key, &literal)?;
            }
            let text = format!(
                "# Grid point {k} of a strand-sim plan: {}\n{}",
                p.label(&grid.params),
                toml::to_string(&table)?
            );
            let file = format!("points/{k}.toml");
            points.push(PlanPoint {
                values: p.values.clone(),
                scenario: Digested {
                    file: file.clone(),
                    blake2b: digest(text.as_bytes()),
                },
            });
            files.push((dir.join(&file), text.into_bytes()));
        }
        let body = PlanBody {
            format: FORMAT.into(),
            version: Some(VERSION.into()),
            name: grid.name.clone(),
            params: grid
                .params
                .iter()
                .map(|p| (p.path.clone(), p.values.clone()))
                .collect(),
            seeds: grid.seeds.clone(),
            points,
            inputs: inputs.into_values().collect(),
            jobs: grid
                .jobs()
                .enumerate()
                .map(|(job, (point, seed))| PlanJob { job, point, seed })
                .collect(),
        };
        let plan = Plan {
            id: body.id(),
            body,
        };
        let manifest = dir.join(MANIFEST);
        if manifest.exists() {
            match Plan::read(&dir) {
                Ok(old) if old.id == plan.id => {}
                Ok(old) => anyhow::bail!(
                    "{} already holds another plan ({}, {} jobs): choose another directory",
                    dir.display(),
                    old.id,
                    old.body.jobs.len()
                ),
                Err(e) => anyhow::bail!("{} already holds a plan that {e}", dir.display()),
            }
        }
        for (path, bytes) in files {
            write(&path, &bytes)?;
        }
        let exe = exe.to_string_lossy();
        let d = dir.to_string_lossy();
        let mut lines = String::new();
        for j in &plan.body.jobs {
            let _ = writeln!(
                lines,
                "{} job {} {}",
                shell_quote(&exe),
                shell_quote(&d),
                j.job
            );
        }
        write(&dir.join("jobs.txt"), lines.as_bytes())?;
        write(
            &dir.join("sweep.sbatch"),
            plan.sbatch(&dir, &exe, slurm).as_bytes(),
        )?;
        write(
            &manifest,
            (serde_json::to_string_pretty(&plan)? + "\n").as_bytes(),
        )?;
        Ok(plan)
    }

    /// The Slurm job array script.
    fn sbatch(&self, dir: &Path, exe: &str, slurm: &SlurmRequest) -> String {
        let n = self.body.jobs.len();
        let d = dir.to_string_lossy();
        format!(
            "#!/bin/bash\n\
             # A Slurm job array over the {n} jobs of the strand-sim plan in\n\
             # {d} (plan {id}). Submit it with\n\
             #     sbatch {script}\n\
             # (Slurm's default MaxArraySize is 1001: a longer plan needs it raised),\n\
             # and once every task has finished:\n\
             #     {exe_q} merge {dq}\n\
             # Each task is one single-threaded run: one CPU; the memory and time\n\
             # below came from `strand-sim sweep --job-mem/--job-time`.\n\
             #SBATCH --job-name=strand-sim-{id8}\n\
             #SBATCH --array=0-{last}\n\
             #SBATCH --ntasks=1\n\
             #SBATCH --cpus-per-task=1\n\
             #SBATCH --mem={mem}\n\
             #SBATCH --time={time}\n\
             #SBATCH --output={logs}/logs/job-%a.log\n\
             exec {exe_q} job {dq} \"$SLURM_ARRAY_TASK_ID\"\n",
            id = self.id,
            id8 = &self.id[..8],
            script = shell_quote(&format!("{d}/sweep.sbatch")),
            exe_q = shell_quote(exe),
            dq = shell_quote(&d),
            last = n.saturating_sub(1),
            mem = slurm.mem,
            time = slurm.time,
            logs = d,
        )
    }

    /// Reads and checks `DIR/plan.json`.
    pub fn read(dir: &Path) -> anyhow::Result<Plan> {
        let path = dir.join(MANIFEST);
        let bytes = read(&path)?;
        let plan: Plan = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a strand-sim plan: {e}", path.display()))?;
        anyhow::ensure!(
            plan.body.format == FORMAT,
            "{}: format `{}`, this strand-sim reads `{FORMAT}`",
            path.display(),
            plan.body.format
        );
        anyhow::ensure!(
            plan.body.id() == plan.id,
            "{}: its id does not match its contents (edited by hand?)",
            path.display()
        );
        if let Some(v) = &plan.body.version {
            anyhow::ensure!(
                v == VERSION,
                "{}: written by strand-sim {v}, this is strand-sim {VERSION} (run and merge a plan with the strand-sim that wrote it)",
                path.display()
            );
        }
        let files = plan.body.points.iter().map(|p| (&p.scenario, "points"));
        for (f, sub) in files.chain(plan.body.inputs.iter().map(|f| (f, "inputs"))) {
            anyhow::ensure!(
                under(&f.file, sub),
                "{}: it names `{}`, not a file under {sub}/ (a plan names only its own files)",
                path.display(),
                f.file
            );
        }
        let points = plan.body.points.len();
        let seeds = plan.body.seeds.len();
        anyhow::ensure!(
            points > 0 && seeds > 0,
            "{}: a plan needs at least one point and one seed",
            path.display()
        );
        anyhow::ensure!(
            plan.body.jobs.len() == points * seeds
                && plan.body.jobs.iter().enumerate().all(|(n, j)| {
                    j.job == n && j.point == n / seeds && j.seed == plan.body.seeds[n % seeds]
                }),
            "{}: its jobs are not its points × its seeds",
            path.display()
        );
        Ok(plan)
    }

    /// Job `n`'s scenario, after checking the files it reads.
    fn scenario(&self, dir: &Path, n: usize) -> anyhow::Result<(PlanJob, Scenario)> {
        let total = self.body.jobs.len();
        let job = *self.body.jobs.get(n).ok_or_else(|| {
            anyhow::anyhow!(
                "job {n}: the plan has {total} jobs (0 to {})",
                total.saturating_sub(1)
            )
        })?;
        let point = &self.body.points[job.point];
        for f in std::iter::once(&point.scenario).chain(&self.body.inputs) {
            let bytes = read(&dir.join(&f.file))?;
            anyhow::ensure!(
                digest(&bytes) == f.blake2b,
                "{}: changed since the plan was written",
                dir.join(&f.file).display()
            );
        }
        let path = dir.join(&point.scenario.file);
        // Only files of the plan's own, not through a link: a point's
        // file and the inputs it names (as `plan` wrote them, `../inputs/…`)
        // are checked before they are read.
        for f in std::iter::once(&point.scenario).chain(&self.body.inputs) {
            let at = dir.join(&f.file);
            let link = std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink());
            anyhow::ensure!(!link, "{}: a link, not a file of the plan", at.display());
        }
        let (table, sdir) = Scenario::read_table(&path)?;
        for key in ["contacts", "social"] {
            let named = table
                .get(key)
                .and_then(|t| t.get("file"))
                .and_then(|f| f.as_str());
            if let Some(named) = named {
                let ours = self
                    .body
                    .inputs
                    .iter()
                    .any(|f| named == format!("../{}", f.file));
                anyhow::ensure!(
                    ours,
                    "{}: {key}.file names {named:?}, not one of the plan's inputs",
                    path.display()
                );
            }
        }
        let sc = Scenario::from_table(table, sdir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok((job, sc))
    }

    /// Runs job `n` of the plan in `dir` and writes `results/N.json`.
    pub fn run_job(&self, dir: &Path, n: usize) -> anyhow::Result<JobResult> {
        let (job, sc) = self.scenario(dir, n)?;
        let report = crate::run(&sc, job.seed, |_, _| {})?.report;
        let result = JobResult {
            plan: self.id.clone(),
            version: Some(VERSION.into()),
            job: n,
            values: self.body.points[job.point].values.clone(),
            seed: job.seed,
            report,
        };
        let results = dir.join("results");
        mkdir(&results)?;
        let tmp = results.join(format!(".{n}.json.{}", std::process::id()));
        write(
            &tmp,
            (serde_json::to_string_pretty(&result)? + "\n").as_bytes(),
        )?;
        let path = results.join(format!("{n}.json"));
        std::fs::rename(&tmp, &path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(result)
    }

    /// The swept parameters.
    pub fn params(&self) -> Vec<Param> {
        self.body
            .params
            .iter()
            .map(|(path, values)| Param {
                path: path.clone(),
                values: values.clone(),
            })
            .collect()
    }

    /// Checks every result in `DIR/results` against the plan and returns
    /// the grid's points (as [`sweep::sweep`] would). Refuses, naming each
    /// problem, when a job's result is missing, given twice, unreadable,
    /// from another plan or not what the plan asked for.
    pub fn merge(&self, dir: &Path) -> anyhow::Result<Vec<Point>> {
        let results = dir.join("results");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&results)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", results.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        files.sort();
        let mut problems: Vec<String> = Vec::new();
        let mut by_job: BTreeMap<usize, Vec<(PathBuf, JobResult)>> = BTreeMap::new();
        let name = |p: &Path| format!("results/{}", p.file_name().unwrap_or_default().display());
        for f in files {
            let parsed = std::fs::read(&f)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<JobResult>(&b).map_err(|e| e.to_string()));
            let r = match parsed {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("{}: not a job result ({e})", name(&f)));
                    continue;
                }
            };
            if r.plan != self.id {
                problems.push(format!(
                    "{}: from another plan ({}, not {})",
                    name(&f),
                    r.plan,
                    self.id
                ));
                continue;
            }
            if r.version.as_deref() != Some(VERSION) {
                let by = r
                    .version
                    .as_deref()
                    .map_or(String::from("a strand-sim that recorded no version"), |v| {
                        format!("strand-sim {v}")
                    });
                problems.push(format!(
                    "{}: made by {by}, this is strand-sim {VERSION}",
                    name(&f)
                ));
                continue;
            }
            let Some(job) = self.body.jobs.get(r.job) else {
                problems.push(format!(
                    "{}: job {} is not in the plan ({} jobs)",
                    name(&f),
                    r.job,
                    self.body.jobs.len()
                ));
                continue;
            };
            let values = &self.body.points[job.point].values;
            if r.seed != job.seed || &r.values != values || r.report.seed != job.seed {
                problems.push(format!(
                    "{}: job {} should be [{}] with seed {}, it says [{}] with seed {}",
                    name(&f),
                    r.job,
                    values.join(" "),
                    job.seed,
                    r.values.join(" "),
                    r.seed
                ));
                continue;
            }
            by_job.entry(r.job).or_default().push((f, r));
        }
        for (job, rs) in &by_job {
            if rs.len() > 1 {
                let names: Vec<String> = rs.iter().map(|(p, _)| name(p)).collect();
                problems.push(format!(
                    "job {job} is there {} times: {}",
                    rs.len(),
                    names.join(", ")
                ));
            }
        }
        let missing: Vec<String> = (0..self.body.jobs.len())
            .filter(|n| !by_job.contains_key(n))
            .map(|n| n.to_string())
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{} of {} jobs have no result: {} (run each with `strand-sim job {} N`)",
                missing.len(),
                self.body.jobs.len(),
                missing.join(", "),
                dir.display()
            ));
        }
        anyhow::ensure!(
            problems.is_empty(),
            "cannot merge {}: {}",
            dir.display(),
            problems.join("; ")
        );
        let reports: Vec<Report> = by_job
            .into_values()
            .map(|mut rs| rs.remove(0).1.report)
            .collect();
        let values: Vec<Vec<String>> = self.body.points.iter().map(|p| p.values.clone()).collect();
        Ok(sweep::points(values, self.body.seeds.len(), reports))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest with a valid id but no seeds (or no points) is refused
    /// with its reason: merging it would have nothing to estimate from.
    #[test]
    fn a_plan_without_seeds_or_points_is_refused() {
        for (seeds, points) in [(vec![], 1), (vec![1], 0)] {
            let body = PlanBody {
                format: FORMAT.into(),
                version: Some(VERSION.into()),
                name: "x".into(),
                params: vec![("policy".into(), vec!["strand".into()])],
                seeds,
                points: (0..points)
                    .map(|k| PlanPoint {
                        values: vec!["strand".into()],
                        scenario: Digested {
                            file: format!("points/{k}.toml"),
                            blake2b: String::new(),
                        },
                    })
                    .collect(),
                inputs: Vec::new(),
                jobs: Vec::new(),
            };
            let plan = Plan {
                id: body.id(),
                body,
            };
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(
                dir.path().join(MANIFEST),
                serde_json::to_vec(&plan).unwrap(),
            )
            .unwrap();
            let err = Plan::read(dir.path()).unwrap_err().to_string();
            assert!(err.contains("at least one point and one seed"), "{err}");
        }
    }

    /// A plan of one point and one seed, recorded as written by
    /// `version`, whose point's scenario is `point` and which reads
    /// `inputs`.
    fn one_job(version: Option<&str>, point: &str, inputs: &[&str]) -> Plan {
        let digested = |file: &str| Digested {
            file: file.into(),
            blake2b: String::new(),
        };
        let body = PlanBody {
            format: FORMAT.into(),
            version: version.map(String::from),
            name: "x".into(),
            params: vec![("policy".into(), vec!["strand".into()])],
            seeds: vec![1],
            points: vec![PlanPoint {
                values: vec!["strand".into()],
                scenario: digested(point),
            }],
            inputs: inputs.iter().map(|f| digested(f)).collect(),
            jobs: vec![PlanJob {
                job: 0,
                point: 0,
                seed: 1,
            }],
        };
        Plan {
            id: body.id(),
            body,
        }
    }

    /// A plan directory holding `plan`'s manifest.
    fn manifest(plan: &Plan) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MANIFEST),
            serde_json::to_vec_pretty(plan).unwrap(),
        )
        .unwrap();
        dir
    }

    /// Another build may run the same job differently: a plan another
    /// strand-sim wrote is refused (so are its jobs and its merge),
    /// naming both versions (before: read). One written before versions
    /// were recorded keeps the id it had and is read.
    #[test]
    fn a_plan_of_another_version_is_refused_and_one_of_before_versions_is_read() {
        let dir = manifest(&one_job(Some("0.0.1"), "points/0.toml", &[]));
        let err = Plan::read(dir.path()).unwrap_err().to_string();
        let want = format!("written by strand-sim 0.0.1, this is strand-sim {VERSION}");
        assert!(err.contains(&want), "{err}");

        let old = one_job(None, "points/0.toml", &[]);
        let dir = manifest(&old);
        let text = std::fs::read_to_string(dir.path().join(MANIFEST)).unwrap();
        assert!(!text.contains("version"), "{text}");
        assert_eq!(Plan::read(dir.path()).unwrap(), old);
        let new = one_job(Some(VERSION), "points/0.toml", &[]);
        assert_eq!(Plan::read(manifest(&new).path()).unwrap(), new);
    }

    /// A job reads the files its plan names: a plan naming one outside
    /// its directory (absolute, through `..`, or not under `points/` or
    /// `inputs/`) is refused, naming it (before: read, and a job read it).
    #[test]
    fn a_plan_naming_files_outside_its_directory_is_refused() {
        for (point, inputs, bad) in [
            ("../elsewhere.toml", vec![], "../elsewhere.toml"),
            ("/etc/strand/x.toml", vec![], "/etc/strand/x.toml"),
            ("points/../../x.toml", vec![], "points/../../x.toml"),
            ("points", vec![], "points"),
            ("inputs/0.toml", vec![], "inputs/0.toml"),
            ("points/0.toml", vec!["/etc/passwd"], "/etc/passwd"),
            (
                "points/0.toml",
                vec!["inputs/../../key"],
                "inputs/../../key",
            ),
            ("points/0.toml", vec!["points/0.toml"], "points/0.toml"),
        ] {
            let dir = manifest(&one_job(Some(VERSION), point, &inputs));
            let err = Plan::read(dir.path()).unwrap_err().to_string();
            assert!(err.contains(&format!("it names `{bad}`")), "{bad}: {err}");
        }
        let plan = one_job(Some(VERSION), "points/0.toml", &["inputs/0123-t.one"]);
        assert_eq!(Plan::read(manifest(&plan).path()).unwrap(), plan);
    }

    /// Regression (stop 68's review): a plan's own names were confined,
    /// but a point's scenario could name a trace anywhere (an absolute
    /// path, or one through `..`), and a point file could be a link to a
    /// file anywhere: the job read it. Now a point names only the plan's
    /// inputs, and neither is read through a link.
    #[test]
    fn a_point_naming_a_file_that_is_not_the_plans_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("elsewhere.one");
        std::fs::write(&outside, "0 CONN 0 1 up\n10 CONN 0 1 down\n").unwrap();
        let point = |trace: &str| {
            format!(
                "name = \"x\"\nduration = \"1h\"\n[[group]]\ncount = 2\n[contacts]\nmodel = \"trace\"\nfile = {trace:?}\n"
            )
        };
        let plan_of = |text: &str| {
            let mut plan = one_job(Some(VERSION), "points/0.toml", &[]);
            plan.body.points[0].scenario.blake2b = digest(text.as_bytes());
            plan.id = plan.body.id();
            plan
        };
        for trace in [outside.display().to_string(), "../../elsewhere.one".into()] {
            let text = point(&trace);
            let plan = plan_of(&text);
            let dir = manifest(&plan);
            std::fs::create_dir(dir.path().join("points")).unwrap();
            std::fs::write(dir.path().join("points/0.toml"), &text).unwrap();
            let err = plan.scenario(dir.path(), 0).unwrap_err().to_string();
            assert!(
                err.contains("not one of the plan's inputs"),
                "{trace}: {err}"
            );
        }
        // A point file that is a link to one elsewhere.
        let text = "name = \"x\"\nduration = \"1h\"\n[[group]]\ncount = 2\n[contacts]\nmodel = \"meetings\"\ngap = \"1h\"\nduration = \"1m\"\n";
        let elsewhere = tmp.path().join("elsewhere.toml");
        std::fs::write(&elsewhere, text).unwrap();
        let plan = plan_of(text);
        let dir = manifest(&plan);
        std::fs::create_dir(dir.path().join("points")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("points/0.toml")).unwrap();
        let err = plan.scenario(dir.path(), 0).unwrap_err().to_string();
        assert!(err.contains("a link, not a file of the plan"), "{err}");
        // The same file in the plan is read.
        std::fs::remove_file(dir.path().join("points/0.toml")).unwrap();
        std::fs::write(dir.path().join("points/0.toml"), text).unwrap();
        plan.scenario(dir.path(), 0).unwrap();
    }

    /// The Slurm array's logs go to `DIR/logs/`, the directory the plan
    /// makes for them; a plan directory that the script's unquoted
    /// `#SBATCH --output` line cannot name is refused, and nothing is
    /// written for it.
    #[test]
    fn slurm_logs_go_to_the_plans_logs_directory_and_unnameable_dirs_are_refused() {
        let table: toml::Table = r#"
            name = "x"
            duration = "1h"
            [[group]]
            count = 2
            [contacts]
            model = "meetings"
            gap = "1h"
            duration = "1m"
            "#
        .parse()
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let params = [Param {
            path: "policy".into(),
            values: vec!["direct".into()],
        }];
        let grid = Grid::new(&table, tmp.path(), &params, &[1]).unwrap();
        let slurm = SlurmRequest::new("4G", "1:00").unwrap();
        let exe = Path::new("/opt/strand-sim");

        let dir = tmp.path().join("plan");
        Plan::write(&grid, &dir, exe, &slurm).unwrap();
        let dir = dir.canonicalize().unwrap();
        let script = std::fs::read_to_string(dir.join("sweep.sbatch")).unwrap();
        let want = format!("\n#SBATCH --output={}/logs/job-%a.log\n", dir.display());
        assert!(script.contains(&want), "{want:?} in {script}");
        assert!(dir.join("logs").is_dir());

        for bad in ["my plan", "plan\t2", "plan\nx", "50%a"] {
            let dir = tmp.path().join(bad);
            let err = Plan::write(&grid, &dir, exe, &slurm)
                .unwrap_err()
                .to_string();
            assert!(err.contains("#SBATCH --output"), "{bad:?}: {err}");
            assert!(!dir.exists(), "{bad:?}: nothing written");
        }
        // Seen only once the path is absolute (the current directory's
        // part of it), and refused as well.
        assert!(check_sbatch_path(Path::new("/srv/my plans/p")).is_err());
        assert!(check_sbatch_path(Path::new("/srv/plans/p-1.x_y+z")).is_ok());
    }

    #[test]
    fn slurm_requests_that_would_break_the_script_are_refused() {
        assert!(SlurmRequest::new("4G", "02:00:00").is_ok());
        assert!(SlurmRequest::new("500", "1-00:00:00").is_ok());
        for (mem, time) in [
            ("4GB", "1:00"),
            ("", "1:00"),
            ("4G\n#SBATCH --x", "1:00"),
            ("4G", "1h"),
            ("4G", "::"),
            ("4G", "1:00\nrm -rf ~"),
        ] {
            assert!(SlurmRequest::new(mem, time).is_err(), "{mem:?} {time:?}");
        }
    }
}
