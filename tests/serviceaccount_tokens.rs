//! End-to-end: ServiceAccount tokens from a `gantry server` with the real `kubectl` —
//! `kubectl create token`, TokenReview, OIDC discovery and its key set.

mod common;

use common::GantryServer;
use serde_json::{json, Value};

fn b64url_decode(s: &str) -> Vec<u8> {
    gantry::auth::serviceaccount::jwt::b64url_decode(s).expect("base64url")
}

/// `kubectl create -f` of a TokenReview of `token`: its status.
fn review(s: &GantryServer, token: &str, audiences: &[&str]) -> Value {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                      "spec": {"token": token, "audiences": audiences}});
    let path = s.dir.path().join("review.json");
    std::fs::write(&path, body.to_string()).unwrap();
    let out = s.kubectl_ok(&["create", "-f", path.to_str().unwrap(), "-o", "json"]);
    serde_json::from_str::<Value>(&out).unwrap()["status"].clone()
}

#[test]
fn kubectl_create_token_gives_a_token_that_reviews_as_its_service_account() {
    let s = GantryServer::start();
    // The signing key is made at first start, private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let key = s.dir.path().join("tls/service-account.key");
    let mode = std::fs::metadata(&key)
        .expect("the signing key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    s.kubectl_ok(&["create", "serviceaccount", "robot"]);
    let token = s
        .kubectl_ok(&["create", "token", "robot"])
        .trim()
        .to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let claims: Value =
        serde_json::from_slice(&b64url_decode(token.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:default:robot");
    assert_eq!(
        claims["iss"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    let status = review(&s, &token, &[]);
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:default:robot"
    );
    assert!(status["user"]["groups"]
        .as_array()
        .unwrap()
        .contains(&json!("system:serviceaccounts:default")));

    // --audience and --duration reach the token; it is not for the API.
    let vault = s
        .kubectl_ok(&[
            "create",
            "token",
            "robot",
            "--audience",
            "vault",
            "--duration",
            "20m",
        ])
        .trim()
        .to_string();
    let claims: Value =
        serde_json::from_slice(&b64url_decode(vault.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["aud"], json!(["vault"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1200
    );
    let status = review(&s, &vault, &[]);
    assert_ne!(status["authenticated"], true, "{status}");
    assert!(
        status["error"].as_str().unwrap().contains("audiences"),
        "{status}"
    );
    assert_eq!(
        review(&s, &vault, &["vault"])["audiences"],
        json!(["vault"])
    );

    // Too short a duration is upstream's 422.
    let (code, _, err) = s.kubectl(&["create", "token", "robot", "--duration", "1m"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let (code, _, err) = s.kubectl(&["create", "token", "nobody"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("serviceaccounts \"nobody\" not found"),
        "{err}"
    );

    // A pod must run as a ServiceAccount that exists (k8s: ServiceAccount admission).
    let ghost = s.dir.path().join("ghost.yaml");
    std::fs::write(
        &ghost,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ghost}\nspec:\n  serviceAccountName: ghost\n  containers: [{name: c, image: busybox}]\n",
    )
    .unwrap();
    let (code, _, err) = s.kubectl(&["apply", "-f", ghost.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "error looking up service account default/ghost: serviceaccount \"ghost\" not found"
        ),
        "{err}"
    );
    // A deleted ServiceAccount's token no longer authenticates.
    s.kubectl_ok(&["delete", "serviceaccount", "robot"]);
    let status = review(&s, &token, &[]);
    assert_ne!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["error"],
        "service account token has been invalidated"
    );
}

#[test]
fn oidc_discovery_publishes_the_key_that_signs_tokens() {
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
    let s = GantryServer::start();
    let (code, config) = s.json("GET", "/.well-known/openid-configuration", "", b"");
    assert_eq!(code, 200, "{config}");
    assert_eq!(
        config["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        config["jwks_uri"],
        "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
    );
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let (code, jwks) = s.json("GET", "/openid/v1/jwks", "", b"");
    assert_eq!(code, 200, "{jwks}");
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["use"].as_str(), key["alg"].as_str()),
        (Some("sig"), Some("ES256"))
    );

    let token = s
        .kubectl_ok(&["create", "token", "default"])
        .trim()
        .to_string();
    let parts: Vec<&str> = token.split('.').collect();
    let header: Value = serde_json::from_slice(&b64url_decode(parts[0])).unwrap();
    assert_eq!(header["kid"], key["kid"]);
    let mut point = vec![4u8];
    point.extend(b64url_decode(key["x"].as_str().unwrap()));
    point.extend(b64url_decode(key["y"].as_str().unwrap()));
    let signed = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &b64url_decode(parts[2]))
        .expect("the published key verifies the token");

    // The same key after a restart: tokens survive it.
    let dir = s.stop_keeping_data();
    let s = GantryServer::start_in(dir);
    let (_, again) = s.json("GET", "/openid/v1/jwks", "", b"");
    assert_eq!(again, jwks);
    assert_eq!(review(&s, &token, &[])["authenticated"], true);
}

#[test]
fn legacy_token_secrets_are_filled_and_root_ca_config_maps_published() {
    use std::time::Duration;
    let s = GantryServer::start();
    s.kubectl_ok(&["create", "serviceaccount", "legacy"]);
    let manifest = s.dir.path().join("secret.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: legacy-token\n  annotations: {kubernetes.io/service-account.name: legacy}\ntype: kubernetes.io/service-account-token\n",
    )
    .unwrap();
    s.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let token = common::wait_for(Duration::from_secs(20), "the token in the Secret", || {
        let (code, out, _) = s.kubectl(&[
            "get",
            "secret",
            "legacy-token",
            "-o",
            "jsonpath={.data.token}",
        ]);
        (code == 0 && !out.is_empty()).then_some(out)
    });
    let token = String::from_utf8(
        gantry::auth::serviceaccount::jwt::b64std_decode(&token).expect("base64"),
    )
    .unwrap();
    let status = review(&s, &token, &[]);
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:default:legacy"
    );
    // Every namespace has the CA bundle for its pods, new ones too.
    s.kubectl_ok(&["create", "namespace", "team"]);
    for ns in ["default", "kube-system", "team"] {
        common::wait_for(Duration::from_secs(20), "kube-root-ca.crt", || {
            let (code, _, _) = s.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", ns]);
            (code == 0).then_some(())
        });
    }
    // A deleted `default` ServiceAccount is made again (pods need it).
    let uid = |s: &GantryServer| {
        s.kubectl_ok(&[
            "get",
            "sa",
            "default",
            "-n",
            "team",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
    };
    let before = uid(&s);
    s.kubectl_ok(&["delete", "serviceaccount", "default", "-n", "team"]);
    common::wait_for(
        Duration::from_secs(20),
        "a new default ServiceAccount",
        || {
            let (code, out, _) = s.kubectl(&[
                "get",
                "sa",
                "default",
                "-n",
                "team",
                "-o",
                "jsonpath={.metadata.uid}",
            ]);
            (code == 0 && !out.is_empty() && out != before).then_some(())
        },
    );
    // The Secret goes with its ServiceAccount, and the token stops working.
    s.kubectl_ok(&["delete", "serviceaccount", "legacy"]);
    common::wait_for(Duration::from_secs(20), "the Secret deleted", || {
        let (code, _, _) = s.kubectl(&["get", "secret", "legacy-token"]);
        (code != 0).then_some(())
    });
    assert_ne!(review(&s, &token, &[])["authenticated"], true);
}

#[test]
fn a_process_pod_reads_its_service_account_token_and_namespace() {
    pod_reads_its_token(GantryServer::start_with_node("n1", &[]), "busybox");
}

#[test]
fn a_docker_pod_reads_its_service_account_token_and_namespace() {
    // No registry here: the test imports its own busybox image (tests/common/docker_image.rs).
    let image = common::docker_image::busybox_image();
    let node = format!("satoken-{}", std::process::id());
    let _cleanup = common::docker_image::DockerNode(node.clone());
    pod_reads_its_token(
        GantryServer::start_with_node(&node, &["--runtime", "docker"]),
        image,
    );
}

/// A pod of ServiceAccount `reader` prints its namespace file, token, whether it has ca.crt
/// and the API's address from its environment; the token reviews as the pod's.
fn pod_reads_its_token(s: GantryServer, image: &str) {
    use std::time::Duration;
    s.kubectl_ok(&["create", "namespace", "team"]);
    s.kubectl_ok(&["create", "serviceaccount", "reader", "-n", "team"]);
    let manifest = s.dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: v1
kind: Pod
metadata: {name: reader, namespace: team}
spec:
  serviceAccountName: reader
  restartPolicy: Never
  containers:
  - name: c
    image: IMAGE
    command: ["sh", "-c", "sleep 1; d=/var/run/secrets/kubernetes.io/serviceaccount; cat $d/namespace; echo; cat $d/token; echo; test -f $d/ca.crt && echo has-ca; echo host=$KUBERNETES_SERVICE_HOST port=$KUBERNETES_SERVICE_PORT"]
  # A second container shares the volume; the first still reads it after this one starts.
  - name: second
    image: IMAGE
    command: ["sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace"]
"#
        .replace("IMAGE", image),
    )
    .unwrap();
    s.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    common::wait_for(Duration::from_secs(60), "the pod to finish", || {
        let phase = s.kubectl_ok(&[
            "get",
            "pod",
            "reader",
            "-n",
            "team",
            "-o",
            "jsonpath={.status.phase}",
        ]);
        (phase == "Succeeded" || phase == "Failed").then_some(())
    });
    let second = s.kubectl_ok(&["logs", "reader", "-n", "team", "-c", "second"]);
    let out = s.kubectl_ok(&["logs", "reader", "-n", "team", "-c", "c"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"team"), "{out}");
    assert_eq!(second.trim(), "team");
    let token = lines.get(1).copied().unwrap_or("");
    assert!(lines.contains(&"has-ca"), "{out}");
    assert!(lines.contains(&"host=10.96.0.1 port=443"), "{out}");
    // The token is the pod's: bound to it, and it authenticates as its ServiceAccount.
    let status = review(&s, token, &[]);
    assert_eq!(status["authenticated"], true, "{status} {out}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:team:reader"
    );
    assert_eq!(
        status["user"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["reader"])
    );
    // Deleting the pod invalidates the token.
    s.kubectl_ok(&["delete", "pod", "reader", "-n", "team", "--wait=true"]);
    common::wait_for(Duration::from_secs(30), "the token invalid", || {
        (review(&s, token, &[])["authenticated"] != true).then_some(())
    });
}
