//! `/version`: the Kubernetes version gantry serves. kubectl on this project's machines is a
//! dispatcher that runs the kubectl of the server's minor version (kubectl-compat.md §0), and
//! the Python client requires every VersionInfo field.

use serde_json::{json, Value};

/// The Kubernetes minor version whose API gantry follows.
pub const MINOR: &str = "33";

pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": MINOR,
        "gitVersion": format!("v1.{MINOR}.0-gantry.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

/// Go's name for the architecture (`amd64`), as clients expect in `platform`.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_info_field_is_a_string() {
        let v = version_info();
        for field in [
            "major",
            "minor",
            "gitVersion",
            "gitCommit",
            "gitTreeState",
            "buildDate",
            "goVersion",
            "compiler",
            "platform",
        ] {
            assert!(v[field].is_string(), "{field}");
        }
        assert_eq!(
            (v["major"].as_str(), v["minor"].as_str()),
            (Some("1"), Some("33"))
        );
        assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.33.0"));
    }
}
