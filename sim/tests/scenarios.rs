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
            "bad.yaml:6:",
            "exactly one of kill",
        ),
        (
            format!("{base}timeline:\n  - at: 5s\n    heal: true\n  - at: 10s\n    crash: {{pods: \"a in b\"}}\n"),
            "bad.yaml:8:",
            "timeline[1].crash.pods",
        ),
        (
            format!("{base}timeline:\n  - at: 10s\n    delete: {{replicaset: a, pod: b}}\n"),
            "bad.yaml:6:",
            "timeline[0].delete: name exactly one of",
        ),
        (
            format!("{base}timeline:\n  - at: 10s\n    delete:\n      replicaset: a\n      propagationPolicy: Sideways\n"),
            "bad.yaml:9:",
            "\"Sideways\" is not one of Background, Foreground, Orphan",
        ),
        (
            format!("{base}expectations:\n  - eventually: {{by: 5s, pods: app=a, owner: mine, count: 1}}\n"),
            "bad.yaml:6:",
            "expectations[0].owner: goes with `pods` and is `none` or `gone`",
        ),
        (
            format!("{base}expectations:\n  - eventually: {{by: 5s, pods: app=a}}\n"),
            "bad.yaml:6:",
            "expectations[0].pods: `count` is required",
        ),
        (
            format!("{base}network:\n  drop: 1.5\n"),
            "bad.yaml:5:",
            "network.drop: must be a probability",
        ),
        (
            format!("{base}network:\n  nodes:\n    n7: {{drop: 0.1}}\n"),
            "bad.yaml:",
            "no node named \"n7\"",
        ),
        (
            format!("{base}runtime:\n  pods:\n    - exitAfter: 1s\n"),
            "bad.yaml:7:",
            "runtime.pods[0]: `selector`",
        ),
        (
            format!("{base}expectations:\n  - eventually: {{by: 5s, node: n1}}\n  - always: {{node: n1, replicaset: x}}\n"),
            "bad.yaml:7:",
            "expectations[1]: check exactly one",
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
        (
            format!("{base}expectations:\n  - always: {{node: n1, zones: {{a: 1}}}}\n"),
            "bad.yaml:6:",
            "`nodes` and `zones` go with `runningPods`",
        ),
        (
            format!("{base}expectations:\n  - always:\n      runningPods: app=web\n      nodes: {{n9: 1}}\n"),
            "bad.yaml:",
            "expectations[0].nodes: there is no node named \"n9\"",
        ),
        (
            format!("{base}timeline:\n  - at: 10s\n    traffic: {{service: web, from: n9, every: 1s, duration: 5s}}\n"),
            "bad.yaml:6:",
            "timeline[0].traffic.from: there is no node named \"n9\"",
        ),
        (
            format!("{base}timeline:\n  - at: 10s\n    traffic: {{service: web, from: n1, every: 0s, duration: 5s}}\n"),
            "bad.yaml:6:",
            "timeline[0].traffic.every: must be more than 0",
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
        assert!(
            a.violations.is_empty(),
            "{}: {:?}",
            path.display(),
            a.violations
        );
        let b = Sim::new(scenario::load(&path).unwrap(), seed).run();
        assert_eq!(a.trace.hash(), b.trace.hash(), "{}", path.display());
        ran += 1;
    }
    assert!(ran >= 3, "node-failure, crashloop and partition ship");
}

fn lines_of(report: &gantry_sim::sim::Report, kind: &str) -> Vec<(f64, String, String)> {
    report
        .trace
        .lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["e"] == kind)
        .map(|e| {
            (
                e["t"].as_str().unwrap().parse::<f64>().unwrap(),
                e["c"].as_str().unwrap().to_string(),
                e["d"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn control_plane_faults_break_watches_lose_messages_and_crash_containers() {
    let path = repo("scenarios/control-plane-faults.yaml");
    let report = Sim::new(scenario::load(&path).unwrap(), 11).run();
    assert!(
        report.passed(),
        "{:?} {:?}",
        report.verdicts,
        report.violations
    );
    // Every informer (41: 3 kubelets × 3 (pods, their node, services), scheduler 2, ReplicaSet and replication controllers
    // 2 each, Deployment controller 3, node lifecycle 3, taint eviction 2, PodGC 2, namespace
    // controller 1, event expiry 1, garbage collector 6, Endpoints controller 3, EndpointSlice
    // controller 4, ClusterRole aggregation 1) resumes once the apiserver is back
    // (80 s), within the reflector's delay; later, watch events lost on the lossy links break
    // and resume watches too.
    let resumed = lines_of(&report, "watch");
    let after_restart = resumed
        .iter()
        .filter(|(t, _, _)| (80.0..82.0).contains(t))
        .count();
    assert_eq!(after_restart, 41, "{resumed:?}");
    assert!(
        resumed
            .iter()
            .all(|(t, _, _)| (80.0..82.0).contains(t) || (250.0..312.0).contains(t)),
        "{resumed:?}"
    );
    // Messages are lost only while the links drop them.
    let lost = lines_of(&report, "lost");
    assert!(!lost.is_empty());
    assert!(
        lost.iter().all(|(t, _, _)| (250.0..310.0).contains(t)),
        "{lost:?}"
    );
    // Two containers die with 137 at 400 s and are started again at once.
    let exits: Vec<_> = lines_of(&report, "runtime")
        .into_iter()
        .filter(|(_, _, d)| d.starts_with("exit ") && d.ends_with(" 137"))
        .collect();
    assert_eq!(exits.len(), 2);
    assert!(exits.iter().all(|(t, _, _)| *t == 400.0));
    // While the store is slow (150-210 s), answers come at least 2 s after the request.
    let api: Vec<_> = lines_of(&report, "api")
        .into_iter()
        .filter(|(t, _, _)| (150.0..212.0).contains(t))
        .collect();
    assert!(
        api.iter().all(|(t, _, _)| *t >= 152.0),
        "{:?}",
        &api[..api.len().min(3)]
    );
}

#[test]
fn scaling_past_capacity_leaves_pods_pending_and_never_overcommits() {
    let text = std::fs::read_to_string(repo("scenarios/scale.yaml"))
        .unwrap()
        .replace("replicas: 100}", "replicas: 130}");
    let text = &text[..text.find("expectations:").unwrap()];
    let text = format!(
        "{text}expectations:\n  - eventually:\n      by: 60s\n      runningPods: app=web\n      count: 120\n  - always:\n      after: 60s\n      by: 119s\n      replicaset: web\n      replicas: 130\n      readyReplicas: 120\n"
    );
    let loaded = scenario::parse(&text, Path::new("scale-130.yaml")).unwrap();
    let report = Sim::new(loaded, 5).run();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    for v in &report.verdicts {
        assert!(v.passed, "{} ({})", v.description, v.detail);
    }
}

#[test]
fn pod_scripts_pick_containers_by_labels_and_stop_exiting_after_exit_count() {
    let text = "duration: 120s\nseed: 2\ncluster:\n  nodes:\n    - name: n1\nworkload:\n  - manifest: {apiVersion: v1, kind: Pod, metadata: {name: flaky, labels: {app: flaky}}, spec: {containers: [{name: c, image: same}]}}\n  - manifest: {apiVersion: v1, kind: Pod, metadata: {name: steady, labels: {app: steady}}, spec: {containers: [{name: c, image: same}]}}\nruntime:\n  pods:\n    - selector: app=flaky\n      exitAfter: 2s\n      exitCode: 1\n      exitCount: 2\nexpectations:\n  - eventually:\n      after: 60s\n      by: 120s\n      runningPods: app in (flaky, steady)\n      count: 2\n";
    let report = Sim::new(scenario::parse(text, Path::new("t.yaml")).unwrap(), 2).run();
    assert!(report.passed(), "{:?}", report.verdicts);
    let starts = |pod: &str| {
        lines_of(&report, "runtime")
            .into_iter()
            .filter(|(_, _, d)| d == &format!("start default/{pod}/c"))
            .count()
    };
    // Two runs exit, the third keeps running; the other pod never exits.
    assert_eq!((starts("flaky"), starts("steady")), (3, 1));
}

#[test]
fn the_benchmark_scenario_loads() {
    let loaded = scenario::load(&repo("scenarios/bench/100-nodes.yaml")).unwrap();
    assert_eq!(loaded.nodes.len(), 100);
    assert_eq!(loaded.manifests.len(), 10);
}
