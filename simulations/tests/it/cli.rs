use std::path::Path;
use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strand-sim"))
}

fn scenario(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

#[test]
fn run_writes_metrics_plots_and_a_report() {
    let out = tempfile::tempdir().unwrap();
    let o = sim()
        .args([
            "run",
            scenario("trace-replay.toml").to_str().unwrap(),
            "--seed",
            "3",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("trace-replay: 20 devices, strand policy, seed 3"),
        "{stdout}"
    );
    for f in [
        "metrics.json",
        "metrics.csv",
        "MessageStatsReport.txt",
        "deliveries.csv",
        "delivery.svg",
        "latency_cdf.svg",
        "bytes.svg",
        "report.md",
        "index.html",
    ] {
        let p = out.path().join(f);
        assert!(
            std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false),
            "{f} missing"
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(json["seed"], 3);
    let svg = std::fs::read_to_string(out.path().join("latency_cdf.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "an SVG with a curve"
    );
    let csv = std::fs::read_to_string(out.path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2);
}

#[test]
fn sweep_reports_means_and_intervals() {
    let out = tempfile::tempdir().unwrap();
    let o = sim()
        .args([
            "sweep",
            scenario("trace-replay.toml").to_str().unwrap(),
            "--set",
            "policy=strand,epidemic",
            "--seeds",
            "3",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.path().join("sweep.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("policy,runs,created_mean,created_ci95"));
    assert!(lines[1].starts_with("strand,3,") && lines[2].starts_with("epidemic,3,"));
    for f in [
        "delivery_ratio.svg",
        "latency_mean_s.svg",
        "bytes_per_delivered.svg",
        "sweep.md",
        "sweep.json",
    ] {
        assert!(out.path().join(f).exists(), "{f}");
    }
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nduration = \"forever\"\n").unwrap();
    for args in [
        vec!["run".to_string(), bad.display().to_string()],
        vec!["run".into(), "/nonexistent/s.toml".into()],
        vec![
            "sweep".into(),
            scenario("trace-replay.toml").display().to_string(),
            "--set".into(),
            "group.9.count=1".into(),
        ],
    ] {
        let o = sim().args(&args).current_dir(dir.path()).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("strand-sim: ") && err.trim().lines().count() == 1,
            "{err}"
        );
    }
}

/// Runs `strand-sim` with `args` and returns its stdout; fails the test
/// with its stderr if it did not succeed.
fn ok(args: &[&str]) -> String {
    let o = sim().args(args).output().unwrap();
    assert!(
        o.status.success(),
        "strand-sim {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `strand-sim` with `args`, expecting it to refuse: exit 2 and one
/// line on stderr, which is returned.
fn refused(args: &[&str]) -> String {
    let o = sim().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "strand-sim {args:?}: {err}");
    assert!(err.trim().lines().count() == 1, "{err}");
    err
}

/// The sweep's output files (all but plots are named; every SVG is taken).
fn sweep_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("sweep.") && !n.ends_with(".sbatch") || n.ends_with(".svg")
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

const SWEEP: [&str; 6] = [
    "--set",
    "policy=strand,epidemic",
    "--set",
    "contacts.file=\"traces/sample.one\"",
    "--seeds",
    "2",
];

/// Plans the trace-replay sweep above into `dir`.
fn plan(dir: &Path) -> String {
    let s = scenario("trace-replay.toml");
    let mut args = vec!["sweep", s.to_str().unwrap()];
    args.extend(SWEEP);
    args.extend(["--plan", dir.to_str().unwrap(), "--job-mem", "300M"]);
    ok(&args)
}

#[test]
fn a_plan_run_under_gnu_parallel_merges_to_the_in_process_sweep_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (inproc, planned) = (tmp.path().join("in-process"), tmp.path().join("plan"));
    let s = scenario("trace-replay.toml");
    let mut args = vec!["sweep", s.to_str().unwrap()];
    args.extend(SWEEP);
    args.extend(["--out", inproc.to_str().unwrap()]);
    ok(&args);

    let said = plan(&planned);
    assert!(said.contains("4 jobs (2 grid points × 2 seeds)"), "{said}");
    // Self-contained: the trace was copied in, and each point's scenario
    // reads the copy.
    let inputs: Vec<_> = std::fs::read_dir(planned.join("inputs")).unwrap().collect();
    assert_eq!(inputs.len(), 1, "one trace, copied once");
    let point = std::fs::read_to_string(planned.join("points/1.toml")).unwrap();
    assert!(point.contains("file = \"../inputs/"), "{point}");
    assert!(point.contains("policy = \"epidemic\""), "{point}");
    let lines = std::fs::read_to_string(planned.join("jobs.txt")).unwrap();
    assert_eq!(lines.lines().count(), 4, "{lines}");
    assert!(lines.lines().all(|l| l.contains(" job ")), "{lines}");
    let sbatch = std::fs::read_to_string(planned.join("sweep.sbatch")).unwrap();
    for want in [
        "#SBATCH --array=0-3",
        "#SBATCH --mem=300M",
        "$SLURM_ARRAY_TASK_ID",
    ] {
        assert!(sbatch.contains(want), "{want}: {sbatch}");
    }
    // Slurm writes the tasks' logs into the logs/ directory the plan made.
    let logs = format!(
        "\n#SBATCH --output={}/logs/job-%a.log\n",
        planned.canonicalize().unwrap().display()
    );
    assert!(sbatch.contains(&logs), "{logs:?}: {sbatch}");
    assert!(planned.join("logs").is_dir());

    // GNU parallel runs the job lines as written (two at a time).
    let o = Command::new("parallel")
        .args(["--will-cite", "--halt", "now,fail=1", "-j", "2", "-a"])
        .arg(planned.join("jobs.txt"))
        .output()
        .expect("GNU parallel (scripts/env.sh installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let merged = ok(&["merge", planned.to_str().unwrap()]);
    assert!(merged.contains("merged the 4 jobs"), "{merged}");

    let (a, b) = (sweep_files(&inproc), sweep_files(&planned));
    assert_eq!(
        a.iter().map(|f| &f.0).collect::<Vec<_>>(),
        b.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(a.len() >= 6, "csv, json, md and plots: {}", a.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{name} differs between the in-process and the merged sweep"
        );
    }
}

#[test]
fn merge_names_missing_duplicated_and_foreign_results_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plan");
    plan(&dir);
    let d = dir.to_str().unwrap();
    for n in ["0", "1", "3"] {
        let said = ok(&["job", d, n]);
        assert!(said.starts_with(&format!("job {n} of plan ")), "{said}");
    }
    let results = dir.join("results");

    let err = refused(&["merge", d]);
    assert!(err.contains("1 of 4 jobs have no result: 2"), "{err}");

    // A result copied in twice (say, gathered from two machines).
    std::fs::copy(results.join("1.json"), results.join("1 (copy).json")).unwrap();
    // A result that claims to be another job than it is.
    let three = std::fs::read_to_string(results.join("3.json")).unwrap();
    let liar = three.replacen("\"job\": 3", "\"job\": 2", 1);
    assert_ne!(liar, three);
    std::fs::write(results.join("2.json"), liar).unwrap();
    // A result of another plan, and a file that is not a result.
    let foreign = three.replacen("\"plan\": \"", "\"plan\": \"0", 1);
    std::fs::write(results.join("other.json"), foreign).unwrap();
    std::fs::write(results.join("junk.json"), "{ not json").unwrap();

    let err = refused(&["merge", d]);
    for want in [
        "job 1 is there 2 times: results/1 (copy).json, results/1.json",
        "results/2.json: job 2 should be [epidemic \"traces/sample.one\"] with seed 1, it says [epidemic \"traces/sample.one\"] with seed 2",
        "results/other.json: from another plan",
        "results/junk.json: not a job result",
    ] {
        assert!(err.contains(want), "{want}\n{err}");
    }
    assert!(!dir.join("sweep.csv").exists(), "nothing merged");

    // A job out of range, a plan edited by hand, a point's file changed.
    let err = refused(&["job", d, "4"]);
    assert!(err.contains("job 4: the plan has 4 jobs (0 to 3)"), "{err}");
    let point = dir.join("points/0.toml");
    let text = std::fs::read_to_string(&point).unwrap();
    std::fs::write(&point, text.replace("6h", "7h")).unwrap();
    let err = refused(&["job", d, "0"]);
    assert!(
        err.contains("points/0.toml: changed since the plan was written"),
        "{err}"
    );
    let manifest = dir.join("plan.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("\"seeds\": [\n    1,", "\"seeds\": [\n    9,", 1),
    )
    .unwrap();
    let err = refused(&["merge", d]);
    assert!(err.contains("its id does not match its contents"), "{err}");
    // Another plan into the same directory is refused.
    std::fs::write(&manifest, text).unwrap();
    let s = scenario("trace-replay.toml");
    let err = refused(&[
        "sweep",
        s.to_str().unwrap(),
        "--set",
        "policy=direct",
        "--plan",
        d,
    ]);
    assert!(err.contains("already holds another plan"), "{err}");
}

#[test]
fn a_sweep_too_large_is_refused_before_anything_is_made() {
    // Before: 2^61 seeds panicked (capacity overflow), and 11 grid points
    // × 10,000 seeds were planned as 110,000 jobs.
    let s = scenario("trace-replay.toml");
    let s = s.to_str().unwrap();
    let err = refused(&[
        "sweep",
        s,
        "--set",
        "policy=direct",
        "--seeds",
        "2305843009213693952",
    ]);
    assert!(
        err.contains("--seeds 2305843009213693952: give 1 to 10000 seeds"),
        "{err}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plan");
    let err = refused(&[
        "sweep",
        s,
        "--set",
        "options.copies=1,2,3,4,5,6,7,8,9,10,11",
        "--seeds",
        "10000",
        "--plan",
        dir.to_str().unwrap(),
    ]);
    assert!(
        err.contains("11 grid points × 10000 seeds: 110000 runs, more than the 100000"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing planned");
}

#[test]
fn merge_refuses_a_result_another_strand_sim_made() {
    // Another build may run the same scenario and seed differently.
    // Before, a result recorded no version and was merged whatever made
    // it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plan");
    plan(&dir);
    let d = dir.to_str().unwrap();
    ok(&["job", d, "0"]);
    let result = dir.join("results/0.json");
    let text = std::fs::read_to_string(&result).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let other = text.replacen(
        &format!("\"version\": \"{version}\""),
        "\"version\": \"0.0.0-other\"",
        1,
    );
    assert_ne!(other, text, "a result records its version");
    std::fs::write(&result, other).unwrap();
    let err = refused(&["merge", d]);
    let want =
        format!("results/0.json: made by strand-sim 0.0.0-other, this is strand-sim {version}");
    assert!(err.contains(&want), "{err}");
    assert!(!dir.join("sweep.csv").exists(), "nothing merged");
}
