//! End-to-end: the official Python client (`kubernetes` 37 from PyPI, strict models) against
//! `gantry server` (tests/python/client_e2e.py). scripts/setup installs the client.

mod common;

use common::GantryServer;

/// Runs one of tests/python/*.py against `s`; it prints "ok" when every check held.
fn run_script(s: &GantryServer, script: &str) {
    let python = std::env::var("GANTRY_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import kubernetes"])
        .output()
        .unwrap_or_else(|e| panic!("{python} must be on PATH for this test: {e}"));
    assert!(
        probe.status.success(),
        "the Python client is missing: run scripts/setup (pip install kubernetes==37.0.2)"
    );
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&python)
        .arg(path)
        .arg(s.kubeconfig())
        .output()
        .expect("run the client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_client_works_unchanged() {
    run_script(&GantryServer::start(), "client_e2e.py");
}

#[test]
fn the_python_watch_learns_of_an_expired_version_by_410() {
    run_script(
        &GantryServer::start_with(&["--watch-history", "3"]),
        "watch_expired.py",
    );
}

#[test]
fn the_python_client_reads_a_real_node_and_its_pods_logs() {
    run_script(
        &GantryServer::start_with_node("node-py", &[]),
        "node_e2e.py",
    );
}

/// A process pod runs the Python client with `config.load_incluster_config()`: it reaches the
/// API at the `kubernetes` Service's ClusterIP over TLS with its projected ServiceAccount
/// token and `ca.crt`, lists what its Role allows and gets 403 for the rest
/// (tests/python/in_cluster.py). Needs root for kube-proxy's nftables rules.
#[test]
fn an_in_cluster_python_client_is_authorized_by_its_role() {
    use std::time::Duration;
    let s = GantryServer::start_with_node("node-incluster", &[]);
    s.kubectl_ok(&["create", "namespace", "team"]);
    s.kubectl_ok(&["create", "serviceaccount", "reader", "-n", "team"]);
    s.kubectl_ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
        "-n",
        "team",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "reader-pods",
        "--role=pod-reader",
        "--serviceaccount=team:reader",
        "-n",
        "team",
    ]);
    // The interpreter itself, not a pyenv shim: the pod gets no HOME or PATH of ours.
    let python = std::env::var("GANTRY_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    let interpreter = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let script = format!("{}/tests/python/in_cluster.py", env!("CARGO_MANIFEST_DIR"));
    let manifest = s.dir.path().join("in-cluster.json");
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "in-cluster", "namespace": "team"},
        "spec": {"serviceAccountName": "reader", "restartPolicy": "Never",
                 "containers": [{"name": "c", "image": "python",
                                 "command": [interpreter, script]}]}
    });
    std::fs::write(&manifest, pod.to_string()).unwrap();
    s.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let phase = common::wait_for(Duration::from_secs(90), "the pod to finish", || {
        let phase = s.kubectl_ok(&[
            "get",
            "pod",
            "in-cluster",
            "-n",
            "team",
            "-o",
            "jsonpath={.status.phase}",
        ]);
        (phase == "Succeeded" || phase == "Failed").then_some(phase)
    });
    let logs = s.kubectl_ok(&["logs", "in-cluster", "-n", "team"]);
    assert_eq!(phase, "Succeeded", "{logs}");
    assert!(logs.trim_end().ends_with("ok"), "{logs}");
    assert!(logs.contains("default: 403"), "{logs}");
}
