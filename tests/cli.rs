//! The `gantry` binary as a user runs it.

use std::process::{Command, Output};

fn gantry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run gantry")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_lists_the_commands() {
    let out = gantry(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("store") && help.contains("--v"), "{help}");
}

#[test]
fn store_commands_round_trip_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["store", "--data-dir", d];
        all.extend_from_slice(args);
        let out = gantry(&all);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(
        run(&["put", "/registry/core/namespaces/a", "one"]),
        "revision=2\n"
    );
    assert_eq!(
        run(&["put", "/registry/core/namespaces/a", "two"]),
        "revision=3\n"
    );
    assert_eq!(
        run(&["put", "/registry/core/namespaces/b", "x"]),
        "revision=4\n"
    );
    assert_eq!(
        run(&["get", "/registry/core/namespaces/a"]),
        "/registry/core/namespaces/a create=2 mod=3 two\n"
    );
    assert!(run(&["list", "/registry/"]).ends_with("revision=4 items=2\n"));
    assert_eq!(
        run(&[
            "watch",
            "/registry/core/namespaces/a",
            "--after",
            "1",
            "--count",
            "2"
        ]),
        "ADDED /registry/core/namespaces/a create=2 mod=2 one\n\
         MODIFIED /registry/core/namespaces/a create=2 mod=3 two\n"
    );
    assert_eq!(
        run(&["delete", "/registry/core/namespaces/b"]),
        "revision=5\n"
    );
    assert_eq!(
        run(&["status"]).trim_end(),
        format!("embedded {d}/store.redb revision=5")
    );

    // A stale precondition is refused and says why.
    let out = gantry(&[
        "store",
        "--data-dir",
        d,
        "put",
        "/registry/core/namespaces/a",
        "z",
        "--if-revision",
        "2",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("conflict"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_data_and_unreachable_etcd_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("store.redb"),
        b"definitely not a database".repeat(100),
    )
    .unwrap();
    let out = gantry(&[
        "store",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "status",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("store.redb") && err.contains("data file"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = gantry(&["store", "--etcd", &endpoint, "status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&endpoint) && err.contains("unavailable"),
        "{err}"
    );
}
