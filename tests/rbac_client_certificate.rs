//! End-to-end with real kubectl over TLS: a user known only by a client certificate of the
//! cluster's client CA (CN=dev), bound to `view` in one namespace, can list there but not
//! create, and reaches nothing elsewhere (k8s: x509 authentication, RBAC, the bootstrap
//! policy's view role).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::GantryServer;
use gantry::apiserver::http::kubeconfig;
use gantry::host::pki::issue::{self, Usage};
use gantry::host::pki::{CertKey, Names};

/// A kubeconfig for `user` (a client certificate signed by the server's client CA).
fn kubeconfig_for(s: &GantryServer, user: &str) -> PathBuf {
    let tls = s.dir.path().join("tls");
    let read = |f: &str| std::fs::read_to_string(tls.join(f)).expect(f);
    let client_ca = CertKey {
        cert_pem: read("client-ca.crt"),
        key_pem: read("client-ca.key"),
    };
    let cert = issue::leaf(
        &client_ca,
        user,
        None,
        &Names::from_strings([]),
        Usage::Client,
        1,
        time::OffsetDateTime::now_utc(),
    )
    .expect("issue a client certificate");
    let server_ca = read("server-ca.crt");
    let text = kubeconfig::render(
        &s.url,
        Some(&kubeconfig::Credentials {
            ca_pem: &server_ca,
            cert_pem: &cert.cert_pem,
            key_pem: &cert.key_pem,
        }),
    );
    let path = s.dir.path().join(format!("{user}.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path
}

/// kubectl with `config`: (exit code, stdout, stderr).
fn kubectl_with(s: &GantryServer, config: &PathBuf, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", config)
        .env("HOME", s.dir.path())
        .arg("--cache-dir")
        .arg(s.dir.path().join("dev-cache"))
        .args(args)
        .output()
        .expect("kubectl on PATH");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_client_certificate_user_bound_to_view_in_one_namespace() {
    let s = GantryServer::start();
    for ns in ["team", "other"] {
        s.kubectl_ok(&["create", "namespace", ns]);
        s.kubectl_ok(&["create", "configmap", "settings", "-n", ns]);
    }
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "dev-view",
        "--clusterrole=view",
        "--user=dev",
        "-n",
        "team",
    ]);
    let dev = kubeconfig_for(&s, "dev");
    let (code, out, err) = kubectl_with(
        &s,
        &dev,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "dev"), "{err}");
    // (args, allowed, the refusal's text)
    let forbidden = |verb: &str, what: &str, scope: &str| {
        format!("User \"dev\" cannot {verb} resource \"{what}\" in API group \"\" {scope}")
    };
    let cases: Vec<(Vec<&str>, Option<String>)> = vec![
        (vec!["get", "configmaps", "-n", "team"], None),
        (vec!["get", "configmap", "settings", "-n", "team"], None),
        (vec!["get", "pods", "-n", "team"], None),
        (
            vec!["create", "configmap", "new", "-n", "team"],
            Some(forbidden(
                "create",
                "configmaps",
                "in the namespace \"team\"",
            )),
        ),
        (
            vec!["delete", "configmap", "settings", "-n", "team"],
            Some(forbidden(
                "delete",
                "configmaps",
                "in the namespace \"team\"",
            )),
        ),
        // k8s: view does not read Secrets.
        (
            vec!["get", "secrets", "-n", "team"],
            Some(forbidden("list", "secrets", "in the namespace \"team\"")),
        ),
        (
            vec!["get", "configmaps", "-n", "other"],
            Some(forbidden(
                "list",
                "configmaps",
                "in the namespace \"other\"",
            )),
        ),
        (
            vec!["get", "nodes"],
            Some(forbidden("list", "nodes", "at the cluster scope")),
        ),
    ];
    for (args, refusal) in cases {
        let (code, out, err) = kubectl_with(&s, &dev, &args);
        match refusal {
            None => assert_eq!(code, 0, "{args:?}: {err}"),
            Some(why) => {
                assert_ne!(code, 0, "{args:?} was allowed: {out}");
                assert!(err.contains(" is forbidden: "), "{args:?}: {err}");
                assert!(err.contains(&why), "{args:?}: {err}");
            }
        }
    }
    // What was refused did not happen.
    let names = s.kubectl_ok(&["get", "configmaps", "-n", "team", "-o", "name"]);
    assert!(names.contains("configmap/settings"), "{names}");
    assert!(!names.contains("configmap/new"), "{names}");
}
