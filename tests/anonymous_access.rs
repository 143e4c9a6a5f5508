//! End-to-end: what a request without credentials, with a bad token, or with the token of a
//! deleted ServiceAccount reaches on `gantry server` (k8s: the anonymous authenticator and the
//! bootstrap policy's system:public-info-viewer, bound to system:unauthenticated too, while
//! system:discovery and system:basic-user are bound to system:authenticated only).

mod common;

use common::{tls, GantryServer};
use serde_json::Value;

/// The server's CA, from the admin's kubeconfig.
fn ca_pem(s: &GantryServer) -> Vec<u8> {
    let text = std::fs::read_to_string(s.kubeconfig()).expect("kubeconfig");
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .expect("the kubeconfig carries the CA");
    tls::base64_decode(line.trim())
}

/// A request over TLS that trusts the server but presents no client certificate.
fn without_certificate(
    s: &GantryServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let config = tls::client_config(&ca_pem(s), None);
    let (code, body) = common::request_with(&s.address, Some(config), method, path, headers, body);
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (code, value)
}

/// Every resource the server lists in discovery: (list path, namespaced).
fn discovered(s: &GantryServer) -> Vec<(String, String, bool, Vec<String>)> {
    let mut out = Vec::new();
    let mut group_versions = vec!["api/v1".to_string()];
    let (code, apis) = s.json("GET", "/apis", "", b"");
    assert_eq!(code, 200);
    for g in apis["groups"].as_array().expect("groups") {
        group_versions.push(format!(
            "apis/{}",
            g["preferredVersion"]["groupVersion"].as_str().unwrap()
        ));
    }
    for gv in group_versions {
        let (code, list) = s.json("GET", &format!("/{gv}"), "", b"");
        assert_eq!(code, 200, "{gv}");
        for r in list["resources"].as_array().expect("resources") {
            let name = r["name"].as_str().unwrap();
            if name.contains('/') {
                continue;
            }
            let verbs = r["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            out.push((gv.clone(), name.to_string(), r["namespaced"] == true, verbs));
        }
    }
    out
}

#[test]
fn anonymous_requests_reach_health_and_version_only() {
    let s = GantryServer::start();
    // k8s: system:public-info-viewer — health and version for everyone.
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (code, _) = without_certificate(&s, "GET", path, &[], b"");
        assert_eq!(code, 200, "{path}");
    }
    // k8s: discovery is for authenticated users only (system:discovery since v1.14).
    for path in ["/api", "/apis", "/api/v1", "/apis/apps/v1", "/openapi/v3"] {
        let (code, status) = without_certificate(&s, "GET", path, &[], b"");
        assert_eq!(code, 403, "{path}: {status}");
        assert_eq!(
            status["message"],
            format!("forbidden: User \"system:anonymous\" cannot get path \"{path}\""),
            "{path}"
        );
    }
    let resources = discovered(&s);
    assert!(resources.len() > 20, "discovery lists the served kinds");
    for (gv, plural, namespaced, verbs) in &resources {
        let path = if *namespaced {
            format!("/{gv}/namespaces/default/{plural}")
        } else {
            format!("/{gv}/{plural}")
        };
        let group = gv
            .strip_prefix("apis/")
            .and_then(|g| g.rsplit_once('/'))
            .map(|(g, _)| g)
            .unwrap_or("");
        let scope = if *namespaced {
            "in the namespace \"default\"".to_string()
        } else {
            "at the cluster scope".to_string()
        };
        if verbs.iter().any(|v| v == "list") {
            let (code, status) = without_certificate(&s, "GET", &path, &[], b"");
            assert_eq!(code, 403, "list {path}: {status}");
            assert_eq!(
                status["message"],
                format!(
                    "{plural}{} is forbidden: User \"system:anonymous\" cannot list resource \
                     \"{plural}\" in API group \"{group}\" {scope}",
                    if group.is_empty() {
                        String::new()
                    } else {
                        format!(".{group}")
                    }
                ),
                "list {path}"
            );
        }
        if verbs.iter().any(|v| v == "create") {
            let (code, status) = without_certificate(
                &s,
                "POST",
                &path,
                &[("Content-Type", "application/json")],
                b"{}",
            );
            assert_eq!(code, 403, "create {path}: {status}");
            assert_eq!(status["reason"], "Forbidden", "create {path}");
        }
    }
    // Nothing was created by those attempts.
    let (code, list) = s.json("GET", "/api/v1/namespaces/default/configmaps", "", b"");
    assert_eq!(code, 200);
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["metadata"]["name"] == "kube-root-ca.crt"));
}

#[test]
fn a_bad_token_and_the_token_of_a_deleted_service_account_are_401() {
    let s = GantryServer::start();
    let bearer = |t: &str| format!("Bearer {t}");
    let unauthorized = |token: &str| {
        let auth = bearer(token);
        let (code, status) = without_certificate(
            &s,
            "GET",
            "/api/v1/namespaces/default/pods",
            &[("Authorization", &auth)],
            b"",
        );
        (code, status["reason"].clone())
    };
    assert_eq!(unauthorized("nonsense").0, 401);
    s.kubectl_ok(&["create", "serviceaccount", "robot"]);
    let token = s
        .kubectl_ok(&["create", "token", "robot"])
        .trim()
        .to_string();
    // The ServiceAccount is authenticated, and has no permission to list pods.
    let (code, reason) = unauthorized(&token);
    assert_eq!((code, reason.as_str()), (403, Some("Forbidden")));
    s.kubectl_ok(&["delete", "serviceaccount", "robot"]);
    let (code, reason) = unauthorized(&token);
    assert_eq!((code, reason.as_str()), (401, Some("Unauthorized")));
}
