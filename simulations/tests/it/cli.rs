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
