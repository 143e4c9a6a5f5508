//! End-to-end: the official Python client (`kubernetes` 37 from PyPI, strict models) against
//! `gantry server` (tests/python/client_e2e.py). scripts/setup installs the client.

mod common;

use common::GantryServer;

#[test]
fn the_python_client_works_unchanged() {
    let python = std::env::var("GANTRY_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import kubernetes"])
        .output()
        .unwrap_or_else(|e| panic!("{python} must be on PATH for this test: {e}"));
    assert!(
        probe.status.success(),
        "the Python client is missing: run scripts/setup (pip install kubernetes==37.0.2)"
    );
    let s = GantryServer::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_e2e.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(s.kubeconfig())
        .output()
        .expect("run the client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "the Python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
