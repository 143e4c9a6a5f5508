//! gantry-sim end to end: shipped scenarios pass and replay exactly; bad files are clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use gantry_sim::scenario;
use gantry_sim::sim::Sim;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn node_failure_follows_the_kubernetes_timeline_and_replays_exactly() {
    let path = repo("scenarios/node-failure.yaml");
    let run = |seed| Sim::new(scenario::load(&path).unwrap(), seed).run();
    let a = run(7);
    for v in &a.verdicts {
        assert!(v.passed, "{} ({})", v.description, v.detail);
    }
    assert_eq!(a.verdicts.len(), 5);
    let b = run(7);
    assert_eq!(a.trace.hash(), b.trace.hash());
    assert_eq!(a.trace.lines, b.trace.lines);
    // Another seed is another (still correct) run.
    let c = run(8);
    assert_ne!(a.trace.hash(), c.trace.hash());
    assert!(c.verdicts.iter().all(|v| v.passed));
}

fn parse_err(text: &str) -> String {
    scenario::parse(text, Path::new("bad.yaml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_scenarios_name_the_key_and_line() {
    let base = "duration: 60s\ncluster:\n  nodes:\n    - name: n1\n";
    let cases = [
        (
            format!("{base}timeline:\n  - at: 10s\n    kil: n1\n"),
            "bad.yaml:7:",
            "unknown field `kil`",
        ),
        (
            format!("{base}timeline:\n  - at: 10s\n    kill: n9\n"),
            "bad.yaml:7:",
            "no node named \"n9\"",
        ),
        (
            "duration: soon\ncluster:\n  nodes: []\n".to_string(),
            "bad.yaml:1:",
            "invalid duration",
        ),
        (
            format!("{base}timeline:\n  - at: 10s\n"),
            "bad.yaml:",
            "exactly one of kill",
        ),
        (
            format!("{base}expectations:\n  - eventually:\n      node: n1\n"),
            "bad.yaml:",
            "`by`",
        ),
        (
            "cluster:\n  nodes: []\n".to_string(),
            "bad.yaml:",
            "missing field `duration`",
        ),
    ];
    for (text, location, message) in cases {
        let e = parse_err(&text);
        assert!(
            e.starts_with(location) && e.contains(message),
            "{e}\n--- for ---\n{text}"
        );
    }
}

#[test]
fn the_cli_reports_and_exits_by_outcome() {
    let bin = env!("CARGO_BIN_EXE_gantry-sim");
    let out = Command::new(bin)
        .args(["run"])
        .arg(repo("scenarios/node-failure.yaml"))
        .arg("--check-determinism")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("trace hash ") && stdout.contains("deterministic"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let failing = dir.path().join("f.yaml");
    std::fs::write(&failing, "duration: 20s\nseed: 3\ncluster:\n  nodes:\n    - name: n1\nexpectations:\n  - eventually:\n      by: 10s\n      node: n1\n      ready: \"False\"\n").unwrap();
    let out = Command::new(bin).arg("run").arg(&failing).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("seed 3"));

    let bad = dir.path().join("b.yaml");
    std::fs::write(
        &bad,
        "duration: 1s\ncluster: {nodes: [{name: a, colour: red}]}\n",
    )
    .unwrap();
    let out = Command::new(bin).arg("run").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `colour`"));
}

#[test]
fn crashloop_restarts_after_0_10_20_40_80_160_300_seconds() {
    let report = Sim::new(
        scenario::load(&repo("scenarios/crashloop.yaml")).unwrap(),
        3,
    )
    .run();
    assert!(report.verdicts.iter().all(|v| v.passed));
    let times = |what: &str| -> Vec<f64> {
        report
            .trace
            .lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["d"].as_str().is_some_and(|d| d.starts_with(what)))
            .map(|e| e["t"].as_str().unwrap().parse::<f64>().unwrap())
            .collect()
    };
    let (starts, exits) = (times("start "), times("exit "));
    let waits: Vec<i64> = starts
        .iter()
        .skip(1)
        .zip(&exits)
        .map(|(s, e)| (s - e).round() as i64)
        .collect();
    assert_eq!(waits, vec![0, 10, 20, 40, 80, 160, 300]);
}

#[test]
fn every_shipped_scenario_passes_and_is_deterministic() {
    let mut ran = 0;
    for entry in std::fs::read_dir(repo("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let loaded = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let seed = loaded.scenario.seed.unwrap_or(1);
        let a = Sim::new(loaded, seed).run();
        for v in &a.verdicts {
            assert!(
                v.passed,
                "{}: {} ({})",
                path.display(),
                v.description,
                v.detail
            );
        }
        let b = Sim::new(scenario::load(&path).unwrap(), seed).run();
        assert_eq!(a.trace.hash(), b.trace.hash(), "{}", path.display());
        ran += 1;
    }
    assert!(ran >= 3, "node-failure, crashloop and partition ship");
}
