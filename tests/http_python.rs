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
