//! TLS and authentication end to end (issue 16): the admin kubeconfig, bad and missing
//! credentials, a foreign client certificate, the static token file, `--insecure-http`, file
//! modes, and the PKI across restarts.

#![cfg(feature = "server")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{tls, GantryServer};
use serde_json::Value;

const REVIEWS: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
const REVIEW: &[u8] = br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;

fn ca_pem(s: &GantryServer) -> Vec<u8> {
    std::fs::read(s.dir.path().join("tls/server-ca.crt")).unwrap()
}

/// A request that trusts the server's CA and presents `identity` (or no certificate).
fn request_as(
    s: &GantryServer,
    identity: Option<(&[u8], &[u8])>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let config = tls::client_config(&ca_pem(s), identity);
    let (code, body) = common::request_with(&s.address, Some(config), method, path, headers, body);
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Who the server says the sender is: (user, groups).
fn whoami(
    s: &GantryServer,
    identity: Option<(&[u8], &[u8])>,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<String>) {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let (code, review) = request_as(s, identity, "POST", REVIEWS, &all, REVIEW);
    let info = &review["status"]["userInfo"];
    let groups = info["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .map(|g| g.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    (
        code,
        info["username"].as_str().unwrap_or("").to_string(),
        groups,
    )
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn kubectl_auth_whoami_is_the_admin_over_tls() {
    let s = GantryServer::start();
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let out = s.kubectl_ok(&["auth", "whoami", "-o", "json"]);
    let review: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(review["kind"], "SelfSubjectReview");
    assert_eq!(review["status"]["userInfo"]["username"], "system:admin");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["system:masters", "system:authenticated"])
    );
    // Create only: nothing to get or list.
    let (code, status) = s.json("GET", REVIEWS, "", b"");
    assert_eq!(
        (code, status["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
    let log = s.log();
    assert!(
        log.contains("user=\"system:admin\""),
        "the request log names the user"
    );
}

#[test]
fn credentials_decide_who_a_request_is() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "s3cret,alice,uid-1,\"dev,ops\"\n").unwrap();
    let s = GantryServer::start_with(&["--token-auth-file", tokens.to_str().unwrap()]);
    // No credential at all: anonymous, who may not even ask who it is (k8s: system:basic-user
    // is bound to system:authenticated only); the refusal names the user.
    let headers = [("Content-Type", "application/json")];
    let (code, status) = request_as(&s, None, "POST", REVIEWS, &headers, REVIEW);
    assert_eq!(code, 403, "{status}");
    assert_eq!(
        status["message"],
        "selfsubjectreviews.authentication.k8s.io is forbidden: User \"system:anonymous\" \
         cannot create resource \"selfsubjectreviews\" in API group \"authentication.k8s.io\" \
         at the cluster scope"
    );
    // A token of the file: its user, groups and system:authenticated.
    assert_eq!(
        whoami(&s, None, &[("Authorization", "Bearer s3cret")]),
        (
            201,
            "alice".into(),
            vec!["dev".into(), "ops".into(), "system:authenticated".into()]
        )
    );
    // A token nobody knows: 401 with upstream's Status, on any path.
    for path in ["/api/v1/namespaces", "/version", REVIEWS] {
        let (code, status) = request_as(
            &s,
            None,
            "GET",
            path,
            &[("Authorization", "Bearer nonsense")],
            b"",
        );
        assert_eq!(code, 401, "{path}");
        assert_eq!(
            status,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure", "message": "Unauthorized",
                               "reason": "Unauthorized", "code": 401}),
            "{path}"
        );
    }
    // kubectl without the admin's certificate, with a bad token.
    let kc = dir.path().join("token-kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: nonsense}}\n",
            s.url,
            s.dir.path().join("tls/server-ca.crt").display()
        ),
    )
    .unwrap();
    let out = s
        .kubectl_command(&["get", "namespaces"])
        .env("KUBECONFIG", &kc)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    // kubectl's words for a 401.
    assert!(err.contains("You must be logged in to the server"), "{err}");
    let out = s
        .kubectl_command(&["auth", "whoami", "--token", "s3cret"])
        .env("KUBECONFIG", &kc)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("alice") && text.contains("dev"), "{text}");
}

#[test]
fn a_client_certificate_of_another_ca_is_refused() {
    use gantry::host::pki::{issue, Names};
    let s = GantryServer::start();
    let now = time::OffsetDateTime::now_utc();
    let other = issue::ca("not-the-cluster", now).unwrap();
    let leaf = issue::leaf(
        &other,
        "system:admin",
        Some("system:masters"),
        &Names::default(),
        issue::Usage::Client,
        30,
        now,
    )
    .unwrap();
    let config = tls::client_config(
        &ca_pem(&s),
        Some((leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())),
    );
    let refused = tls::connect_with(&s.address, Some(config.clone()));
    let (code, _) = common::request_with(&s.address, Some(config), "GET", "/api", &[], b"");
    assert!(
        refused.is_err() || code == 0,
        "a foreign certificate got {code}"
    );
    // The same subject from the cluster's client CA is the admin.
    let client_ca = gantry::host::pki::CertKey {
        cert_pem: std::fs::read_to_string(s.dir.path().join("tls/client-ca.crt")).unwrap(),
        key_pem: std::fs::read_to_string(s.dir.path().join("tls/client-ca.key")).unwrap(),
    };
    let ours = issue::leaf(
        &client_ca,
        "dev",
        Some("team"),
        &Names::default(),
        issue::Usage::Client,
        30,
        now,
    )
    .unwrap();
    assert_eq!(
        whoami(
            &s,
            Some((ours.cert_pem.as_bytes(), ours.key_pem.as_bytes())),
            &[]
        ),
        (
            201,
            "dev".into(),
            vec!["team".into(), "system:authenticated".into()]
        )
    );
    // A server certificate the client does not trust is refused by the client (kubectl too).
    let stranger = tls::client_config(other.cert_pem.as_bytes(), None);
    assert!(tls::connect_with(&s.address, Some(stranger)).is_err());
}

#[test]
fn insecure_http_serves_plain_http_and_warns() {
    let s = GantryServer::start_with(&["--insecure-http"]);
    assert!(s.url.starts_with("http://"), "{}", s.url);
    let (code, review) = s.json("POST", REVIEWS, "application/json", REVIEW);
    assert_eq!(code, 201);
    assert_eq!(review["status"]["userInfo"]["username"], "system:unsecured");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["system:masters", "system:authenticated"])
    );
    let log = s.log();
    assert!(
        log.contains("WARN") && log.contains("--insecure-http"),
        "the flag is warned about: {log}"
    );
    assert!(s
        .kubectl_ok(&["auth", "whoami"])
        .contains("system:unsecured"));
    // No TLS there.
    let config = tls::client_config(b"", None);
    assert!(tls::connect_with(&s.address, Some(config)).is_err());
}

#[test]
fn secrets_are_private_and_the_pki_survives_restarts() {
    let s = GantryServer::start_with(&["--tls-leaf-days", "30"]);
    let dir = s.dir.path().to_path_buf();
    assert_eq!(mode(&dir), 0o700, "data dir");
    assert_eq!(mode(&dir.join("tls")), 0o700, "tls dir");
    assert_eq!(mode(&dir.join("kubeconfig")), 0o600, "kubeconfig");
    for key in std::fs::read_dir(dir.join("tls")).unwrap().flatten() {
        if key.path().extension().is_some_and(|e| e == "key") {
            assert_eq!(mode(&key.path()), 0o600, "{}", key.path().display());
        }
    }
    let read = |f: &str| std::fs::read_to_string(dir.join("tls").join(f)).unwrap();
    let (ca, serving) = (read("server-ca.crt"), read("serving-kube-apiserver.crt"));
    let old_kubeconfig = std::fs::read_to_string(dir.join("kubeconfig")).unwrap();
    let facts = gantry::host::pki::issue::read(&serving, &ca).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(facts.not_after - now < 31 * 86400, "issued for 30 days");
    // A restart on the same port: the CAs stay, the leaves near expiry are renewed.
    let port: u16 = s.address.rsplit_once(':').unwrap().1.parse().unwrap();
    let data = s.stop_keeping_data();
    std::thread::sleep(Duration::from_millis(200));
    let again = GantryServer::start_at(data, port);
    let dir = again.dir.path().to_path_buf();
    let read = |f: &str| std::fs::read_to_string(dir.join("tls").join(f)).unwrap();
    assert_eq!(read("server-ca.crt"), ca, "the CA is kept");
    let renewed = read("serving-kube-apiserver.crt");
    assert_ne!(renewed, serving, "the serving certificate is renewed");
    let facts = gantry::host::pki::issue::read(&renewed, &ca).unwrap();
    assert!(facts.not_after - now > 300 * 86400, "renewed for a year");
    assert!(facts.signed_by_current_ca);
    // The kubeconfig of the first run (its admin certificate from the kept client CA) works.
    let old = tls::from_kubeconfig(&old_kubeconfig).unwrap();
    let (code, body) = common::request_with(
        &again.address,
        Some(old),
        "POST",
        REVIEWS,
        &[("Content-Type", "application/json")],
        REVIEW,
    );
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let review: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "system:admin");
    assert!(again
        .kubectl_ok(&["get", "namespaces"])
        .contains("kube-system"));
}
