//! End-to-end: the real `kubectl` (and raw HTTP for what kubectl cannot send) against a
//! `gantry server` on a free loopback port with a temporary data directory
//! (../shared/reference/kubectl-compat.md).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::GantryServer;
use serde_json::{json, Value};

const MANIFESTS: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: demo, labels: {app: demo}}
data: {a: \"1\"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: \"nginx:1.27\"}]
";

fn write(server: &GantryServer, name: &str, text: &str) -> String {
    let path = server.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn kubectl_sees_version_discovery_and_boot_namespaces() {
    let s = GantryServer::start();
    let version: Value = serde_json::from_str(&s.kubectl_ok(&["version", "-o", "json"])).unwrap();
    assert_eq!(version["serverVersion"]["major"], "1");
    assert_eq!(version["serverVersion"]["minor"], "33");
    // The dispatcher ran the kubectl of the server's minor version.
    assert_eq!(version["clientVersion"]["minor"], "33");
    let resources = s.kubectl_ok(&["api-resources"]);
    for want in ["pods", "deployments", "leases", "endpointslices"] {
        assert!(resources.contains(want), "{want} in {resources}");
    }
    assert!(resources
        .lines()
        .any(|l| l.starts_with("pods ") && l.contains(" po ")));
    let boot = s.kubectl_ok(&[
        "get",
        "services,endpoints,serviceaccounts",
        "-A",
        "-o",
        "name",
    ]);
    for want in [
        "service/kubernetes",
        "endpoints/kubernetes",
        "serviceaccount/default",
    ] {
        assert!(boot.contains(want), "{want} in {boot}");
    }
    assert_eq!(boot.matches("serviceaccount/default").count(), 4, "{boot}");
    // A namespace made later gets its default ServiceAccount too.
    s.kubectl_ok(&["create", "namespace", "later"]);
    assert_eq!(
        s.kubectl_ok(&["get", "serviceaccounts", "-n", "later", "-o", "name"])
            .trim(),
        "serviceaccount/default"
    );
    let namespaces = s.kubectl_ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}")),
            "{namespaces}"
        );
    }
    // Both discovery forms, the aggregated one with its exact media type.
    let (code, legacy) = s.json("GET", "/apis", "", b"");
    assert_eq!((code, legacy["kind"].as_str()), (200, Some("APIGroupList")));
    let (code, body) = s.request(
        "GET",
        "/api",
        &[(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )],
        b"",
    );
    let aggregated: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, aggregated["kind"].as_str()),
        (200, Some("APIGroupDiscoveryList"))
    );
    let (code, v) = s.json("GET", "/version/", "", b"");
    assert_eq!((code, v["minor"].as_str()), (200, Some("33")));
}

#[test]
fn kubectl_creates_applies_scales_labels_and_deletes() {
    let s = GantryServer::start();
    let file = write(&s, "objects.yaml", MANIFESTS);
    let out = s.kubectl_ok(&["create", "-f", &file]);
    assert!(
        out.contains("configmap/demo created") && out.contains("deployment.apps/web created"),
        "{out}"
    );
    let (code, _, err) = s.kubectl(&["create", "-f", &file]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Error from server (AlreadyExists): error when creating")
            && err.contains("configmaps \"demo\" already exists"),
        "{err}"
    );
    s.kubectl_ok(&["label", "configmap", "demo", "tier=x"]);
    let labels = s.kubectl_ok(&[
        "get",
        "configmap",
        "demo",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&labels).unwrap(),
        json!({"app": "demo", "tier": "x"})
    );
    // Client-side apply: a strategic merge patch that changes the image bumps the generation.
    s.kubectl_ok(&["apply", "-f", &file]);
    let changed = write(
        &s,
        "changed.yaml",
        &MANIFESTS.replace("nginx:1.27", "nginx:1.28"),
    );
    let out = s.kubectl_ok(&["apply", "-f", &changed]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let out = s.kubectl_ok(&["apply", "-f", &changed]);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    let got = s.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}",
    ]);
    assert_eq!(got, "nginx:1.28 2");
    // Server-side apply creates, then merges.
    let ssa = write(
        &s,
        "ssa.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {k: v}\n",
    );
    s.kubectl_ok(&["apply", "--server-side", "-f", &ssa]);
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    // The scale subresource.
    s.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"]);
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    let (code, scale) = s.json(
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        "",
        b"",
    );
    assert_eq!(
        (
            code,
            scale["kind"].as_str(),
            scale["status"]["selector"].as_str()
        ),
        (200, Some("Scale"), Some("app=web"))
    );
    // Deletes, and what a missing object says.
    let out = s.kubectl_ok(&["delete", "configmap", "demo"]);
    assert!(out.contains("configmap \"demo\" deleted"), "{out}");
    let (code, _, err) = s.kubectl(&["get", "configmap", "demo"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Error from server (NotFound): configmaps \"demo\" not found"),
        "{err}"
    );
    let (code, _, err) = s.kubectl(&["delete", "deployment", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("deployments.apps \"nope\" not found"), "{err}");
    assert!(s
        .kubectl_ok(&["get", "pods", "-n", "kube-system", "-o", "name"])
        .is_empty());
}

#[test]
fn kubectl_watches_changes_as_they_happen() {
    let s = GantryServer::start();
    let mut watch = s
        .kubectl_command(&["get", "configmaps", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl on PATH");
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The root CA publisher's ConfigMap, there from the start.
            if line == "configmap/kube-root-ca.crt" {
                continue;
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Give the list a moment so that the creations arrive as watch events.
    std::thread::sleep(Duration::from_millis(500));
    for name in ["one", "two"] {
        let file = write(
            &s,
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"),
        );
        s.kubectl_ok(&["create", "-f", &file]);
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(seen, ["configmap/one", "configmap/two"]);
}

/// Method, path, Content-Type, body, and the code and reason of the answer.
type BadRequest = (
    &'static str,
    String,
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
);

#[test]
fn bad_requests_get_a_status_naming_the_problem() {
    let s = GantryServer::start_with(&["--max-body-bytes", "4096"]);
    let pods = "/api/v1/namespaces/default/pods";
    let big = format!(
        "{{\"metadata\":{{\"name\":\"x\"}},\"data\":{{\"k\":\"{}\"}}}}",
        "a".repeat(5000)
    );
    let cases: Vec<BadRequest> = vec![
        (
            "POST",
            pods.into(),
            "application/json",
            b"{not json".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            pods.into(),
            "application/yaml",
            b"a: [1".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps".into(),
            "application/json",
            big.into_bytes(),
            413,
            "RequestEntityTooLarge",
        ),
        (
            "POST",
            pods.into(),
            "text/plain",
            b"hello".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "POST",
            pods.into(),
            "application/json",
            br#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps".into(),
            "application/json",
            br#"{"metadata":{"name":"Bad_Name"}}"#.to_vec(),
            422,
            "Invalid",
        ),
        (
            "GET",
            format!("{pods}?labelSelector=a%20in%20(b"),
            "",
            Vec::new(),
            400,
            "BadRequest",
        ),
        (
            "GET",
            format!("{pods}?fieldSelector=spec.nope%3Dx"),
            "",
            Vec::new(),
            400,
            "BadRequest",
        ),
        (
            "GET",
            "/api/v1/widgets".into(),
            "",
            Vec::new(),
            404,
            "NotFound",
        ),
        ("GET", "/nowhere".into(), "", Vec::new(), 404, "NotFound"),
        (
            "GET",
            format!("{pods}/missing"),
            "",
            Vec::new(),
            404,
            "NotFound",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default".into(),
            "application/json",
            b"{}".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default".into(),
            "application/json-patch+json",
            br#"[{"op":"remove","path":"/nope"}]"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/configmaps/x".into(),
            "application/json",
            br#"{"propagationPolicy":"Sideways"}"#.to_vec(),
            400,
            "BadRequest",
        ),
    ];
    for (method, path, ct, body, code, reason) in cases {
        let (got, status) = s.json(method, &path, ct, &body);
        assert_eq!(
            (got, status["kind"].as_str(), status["reason"].as_str()),
            (code, Some("Status"), Some(reason)),
            "{method} {path}: {status}"
        );
        assert!(status["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The server is still there.
    assert_eq!(s.request("GET", "/readyz", &[], b"").0, 200);
}

#[test]
fn raw_rest_follows_the_api_conventions() {
    let s = GantryServer::start();
    let cms = "/api/v1/namespaces/default/configmaps";
    // Created without apiVersion/kind (the Python client), with generateName.
    let (code, created) = s.json(
        "POST",
        cms,
        "",
        br#"{"metadata":{"generateName":"gen-"},"data":{"a":"1"}}"#,
    );
    assert_eq!((code, created["kind"].as_str()), (201, Some("ConfigMap")));
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    // A stale resourceVersion is a conflict.
    let mut stale = created.clone();
    stale["data"]["a"] = json!("2");
    let path = format!("{cms}/{name}");
    let (code, _) = s.json(
        "PUT",
        &path,
        "application/json",
        stale.to_string().as_bytes(),
    );
    assert_eq!(code, 200);
    let (code, status) = s.json(
        "PUT",
        &path,
        "application/json",
        stale.to_string().as_bytes(),
    );
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));
    // Lists carry kind, a resourceVersion and items (never null), and honour selectors.
    let (code, list) = s.json(
        "GET",
        "/api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata.name%21%3Dkube-root-ca.crt",
        "",
        b"",
    );
    assert_eq!(
        (code, list["kind"].as_str(), list["items"].clone()),
        (200, Some("ConfigMapList"), json!([]))
    );
    assert!(list["metadata"]["resourceVersion"].as_str().is_some());
    let (_, list) = s.json(
        "GET",
        &format!("{cms}?fieldSelector=metadata.name%3D{name}"),
        "",
        b"",
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = s.json(
        "GET",
        // (Leaving out the root CA publisher's ConfigMap.)
        &format!(
            "{cms}?fieldSelector=metadata.name%21%3D{name},metadata.name%21%3Dkube-root-ca.crt"
        ),
        "",
        b"",
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // A watch from a resourceVersion replays what came after it, then ends at timeoutSeconds.
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap();
    let (code, body) = s.request(
        "GET",
        &format!("{cms}?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
        &[],
        b"",
    );
    let events: Vec<Value> = String::from_utf8_lossy(&body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(code, 200);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["object"]["data"]["a"].as_str()
        ),
        (Some("MODIFIED"), Some("2"))
    );
    // Deleting a ConfigMap answers with a Success Status naming it.
    let (code, status) = s.json("DELETE", &path, "", b"");
    assert_eq!(
        (
            code,
            status["status"].as_str(),
            status["details"]["name"].as_str()
        ),
        (200, Some("Success"), Some(name.as_str()))
    );
    // A resourceVersion that is not a number is refused.
    let (code, status) = s.json(
        "GET",
        &format!("{cms}?watch=true&resourceVersion=abc"),
        "",
        b"",
    );
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
}

#[test]
fn kubectl_get_prints_the_upstream_columns() {
    let s = GantryServer::start();
    let file = write(
        &s,
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, labels: {app: web}}\nspec:\n  containers: [{name: c, image: busybox}]\n",
    );
    s.kubectl_ok(&["create", "-f", &file]);
    let deploy = write(&s, "objects.yaml", MANIFESTS);
    s.kubectl_ok(&["create", "-f", &deploy]);
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["get", "pods"],
            &[
                "NAME", "READY", "STATUS", "RESTARTS", "AGE", "web-1", "0/1", "Pending",
            ],
        ),
        (
            &["get", "pods", "-o", "wide"],
            &["IP", "NODE", "NOMINATED NODE", "READINESS GATES", "<none>"],
        ),
        (
            &["get", "deployments"],
            &["READY", "UP-TO-DATE", "AVAILABLE", "web", "0/2"],
        ),
        (&["get", "namespaces"], &["STATUS", "kube-system", "Active"]),
        (
            &["get", "all", "-A"],
            &["NAMESPACE", "pod/web-1", "deployment.apps/web"],
        ),
    ];
    for (args, want) in cases {
        let out = s.kubectl_ok(args);
        for w in want {
            assert!(
                out.contains(w),
                "kubectl {args:?}: {w:?} missing from\n{out}"
            );
        }
    }
}

#[test]
fn kubectl_generator_commands_send_protobuf_and_it_is_understood() {
    let s = GantryServer::start();
    let commands: [&[&str]; 8] = [
        &["create", "namespace", "demo"],
        &[
            "create",
            "configmap",
            "cm1",
            "--from-literal=a=1",
            "--from-literal=b=2",
        ],
        &[
            "create",
            "secret",
            "generic",
            "s1",
            "--from-literal=password=hunter2",
        ],
        &["create", "serviceaccount", "sa1"],
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=80",
        ],
        &["create", "service", "clusterip", "svc1", "--tcp=80:8080"],
        &["create", "service", "nodeport", "np1", "--tcp=80:http"],
        &[
            "run",
            "p1",
            "--image=busybox",
            "--labels=app=p",
            "--",
            "sleep",
            "10",
        ],
    ];
    for args in commands {
        s.kubectl_ok(args);
    }
    let get = |args: &[&str]| -> Value { serde_json::from_str(&s.kubectl_ok(args)).unwrap() };
    assert_eq!(
        get(&["get", "cm", "cm1", "-o", "json"])["data"],
        json!({"a": "1", "b": "2"})
    );
    // Secret data travels as bytes and is served base64-encoded.
    assert_eq!(
        get(&["get", "secret", "s1", "-o", "json"])["data"]["password"],
        "aHVudGVyMg=="
    );
    let web = get(&["get", "deployment", "web", "-o", "json"]);
    assert_eq!(web["spec"]["replicas"], 2);
    assert_eq!(
        web["spec"]["selector"]["matchLabels"],
        json!({"app": "web"})
    );
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (
            container["image"].as_str(),
            container["ports"][0]["containerPort"].as_i64()
        ),
        (Some("nginx:1.27"), Some(80))
    );
    let svc = get(&["get", "service", "svc1", "-o", "json"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    let np = get(&["get", "service", "np1", "-o", "json"]);
    assert_eq!(
        (
            np["spec"]["type"].as_str(),
            np["spec"]["ports"][0]["targetPort"].as_str()
        ),
        (Some("NodePort"), Some("http"))
    );
    let pod = get(&["get", "pod", "p1", "-o", "json"]);
    assert_eq!(pod["spec"]["containers"][0]["args"], json!(["sleep", "10"]));
    assert_eq!(pod["metadata"]["labels"], json!({"app": "p"}));
    assert_eq!(
        get(&["get", "namespace", "demo", "-o", "json"])["status"]["phase"],
        "Active"
    );
}

#[test]
fn kubectl_patches_describes_and_reports_invalid_objects() {
    let s = GantryServer::start();
    s.kubectl_ok(&["run", "p1", "--image=busybox"]);
    for (kind, patch) in [
        ("merge", r#"{"metadata":{"labels":{"a":"b"}}}"#),
        (
            "json",
            r#"[{"op":"add","path":"/metadata/labels/c","value":"d"}]"#,
        ),
        ("strategic", r#"{"metadata":{"labels":{"e":"f"}}}"#),
    ] {
        let out = s.kubectl_ok(&["patch", "pod", "p1", "--type", kind, "-p", patch]);
        assert!(out.contains("pod/p1 patched"), "{kind}: {out}");
    }
    let yaml = s.kubectl_ok(&["get", "pod", "p1", "-o", "yaml"]);
    for line in [
        "kind: Pod",
        "    a: b",
        "    c: d",
        "    e: f",
        "    run: p1",
    ] {
        assert!(yaml.contains(line), "{line:?} in {yaml}");
    }
    let described = s.kubectl_ok(&["describe", "pod", "p1"]);
    assert!(
        described.contains("Status:           Pending") && described.contains("Labels:"),
        "{described}"
    );
    let info = s.kubectl_ok(&["cluster-info"]);
    assert!(
        info.contains(&format!("Kubernetes control plane is running at {}", s.url)),
        "{info}"
    );
    assert!(s.kubectl_ok(&["get", "nodes", "-o", "name"]).is_empty());
    // 422 and 409, as kubectl prints them.
    let bad = write(
        &s,
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
    );
    let (code, _, err) = s.kubectl(&["create", "-f", &bad]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{err}"
    );
    let (_, pod) = s.json("GET", "/api/v1/namespaces/default/pods/p1", "", b"");
    let mut stale = pod.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let stale_file = write(&s, "stale.json", &stale.to_string());
    let (code, _, err) = s.kubectl(&["replace", "-f", &stale_file]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Error from server (Conflict)")
            && err.contains("the object has been modified"),
        "{err}"
    );
}

#[test]
fn a_restarted_server_keeps_every_object_and_resource_version() {
    let s = GantryServer::start();
    let file = write(&s, "objects.yaml", MANIFESTS);
    s.kubectl_ok(&["create", "-f", &file]);
    let before = s.kubectl_ok(&["get", "cm,deploy", "-o", "json"]);
    // A second server on the same data directory, after the first is gone.
    let again = GantryServer::start_in(s.stop_keeping_data());
    let after = again.kubectl_ok(&["get", "cm,deploy", "-o", "json"]);
    // The kubernetes Endpoints follow the server to its new port.
    let (_, ep) = again.json(
        "GET",
        "/api/v1/namespaces/default/endpoints/kubernetes",
        "",
        b"",
    );
    let port = again
        .address
        .rsplit_once(':')
        .unwrap()
        .1
        .parse::<i64>()
        .unwrap();
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], port);
    let (_, slice) = again.json(
        "GET",
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",
        "",
        b"",
    );
    assert_eq!(slice["ports"][0]["port"], port, "{slice}");
    // The root CA publisher's kube-root-ca.crt (made in the background) is left out.
    let items = |text: &str| {
        let mut items = serde_json::from_str::<Value>(text).unwrap()["items"].clone();
        let items_mut = items.as_array_mut().unwrap();
        items_mut.retain(|i| i["metadata"]["name"] != "kube-root-ca.crt");
        items
    };
    assert_eq!(items(&after), items(&before));
    assert_eq!(items(&after).as_array().unwrap().len(), 2);
}

#[test]
fn server_side_dry_runs_check_everything_and_store_nothing() {
    let s = GantryServer::start();
    let file = write(&s, "objects.yaml", MANIFESTS);
    let out = s.kubectl_ok(&["create", "-f", &file, "--dry-run=server"]);
    assert!(
        out.contains("configmap/demo created (server dry run)"),
        "{out}"
    );
    let (code, _, err) = s.kubectl(&["get", "configmap", "demo"]);
    assert_eq!(code, 1, "nothing was stored: {err}");
    s.kubectl_ok(&["create", "-f", &file]);
    // An invalid object is refused in a dry run too, and an existing name is a conflict.
    let bad = write(
        &s,
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
    );
    let (code, _, err) = s.kubectl(&["create", "-f", &bad, "--dry-run=server"]);
    assert!(code == 1 && err.contains("is invalid"), "{err}");
    let (code, _, err) = s.kubectl(&["create", "-f", &file, "--dry-run=server"]);
    assert!(code == 1 && err.contains("already exists"), "{err}");
    // An update and a delete in a dry run change nothing.
    let changed = write(
        &s,
        "changed.yaml",
        &MANIFESTS.replace("nginx:1.27", "nginx:1.28"),
    );
    s.kubectl_ok(&["apply", "-f", &changed, "--server-side", "--dry-run=server"]);
    s.kubectl_ok(&["delete", "configmap", "demo", "--dry-run=server"]);
    let image = s.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "nginx:1.27");
    s.kubectl_ok(&["get", "configmap", "demo"]);
    // kubectl diff is a dry-run apply: it shows the change and exits 1.
    let (code, out, _) = s.kubectl(&["diff", "-f", &changed]);
    assert!(
        code == 1 && out.contains("+      - image: nginx:1.28"),
        "{code}: {out}"
    );
    let (code, status) = s.json(
        "POST",
        "/api/v1/namespaces/default/configmaps?dryRun=Some",
        "application/json",
        br#"{"metadata":{"name":"x"}}"#,
    );
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
}

#[test]
fn unknown_fields_are_refused_warned_or_ignored_as_asked() {
    let s = GantryServer::start();
    let deployment = MANIFESTS.split("---\n").nth(1).unwrap();
    let typo = write(
        &s,
        "typo.yaml",
        &deployment.replace("  replicas: 2", "  replicas: 2\n  replica: 3"),
    );
    // kubectl's default --validate=strict leaves it to the server (the OpenAPI says it can).
    let (code, _, err) = s.kubectl(&["create", "-f", &typo]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Error from server (BadRequest)")
            && err.contains("strict decoding error: unknown field \"spec.replica\""),
        "{err}"
    );
    let (code, _, err) = s.kubectl(&["create", "-f", &typo, "--validate=warn"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Warning: unknown field \"spec.replica\""),
        "{err}"
    );
    s.kubectl_ok(&["delete", "-f", &typo]);
    let (code, _, err) = s.kubectl(&["create", "-f", &typo, "--validate=false"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("Warning"), "{err}");
    // Patches are checked after they are applied.
    let (code, _, err) = s.kubectl(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true,"pause":true}}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("unknown field \"spec.pause\""), "{err}");
    // A field given twice: refused under Strict, a warning otherwise.
    let twice = br#"{"metadata":{"name":"twice","name":"again"}}"#;
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, status) = s.json(
        "POST",
        &format!("{cms}?fieldValidation=Strict"),
        "application/json",
        twice,
    );
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field \"metadata.name\""),
        "{status}"
    );
    let (code, _) = s.request("POST", cms, &[("Content-Type", "application/json")], twice);
    assert_eq!(code, 201);
    // A list from a version the store has not reached.
    let (code, status) = s.json("GET", &format!("{cms}?resourceVersion=999999"), "", b"");
    assert_eq!((code, status["reason"].as_str()), (504, Some("Timeout")));
    let (code, status) = s.json(
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Loose",
        "application/json",
        br#"{"metadata":{"name":"x"}}"#,
    );
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
}

/// The events of a raw watch that ends at its timeoutSeconds.
fn watch_events(address: &str, path: &str) -> Vec<Value> {
    let (code, body) = common::request_to(address, "GET", path, &[], b"");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    String::from_utf8_lossy(&body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The first `n` events of a watch, however long the writes that make them take: fewer only
/// if the watch ends first. Reads the chunked stream as it comes.
fn first_watch_events(address: &str, path: &str, n: usize) -> Vec<Value> {
    use std::io::{BufRead, Read, Write};
    let mut conn = common::tls::connect(address).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .unwrap();
    let mut r = std::io::BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains(" 200 "), "{line}");
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        assert!(
            !line.to_ascii_lowercase().starts_with("content-length"),
            "a watch is chunked: {line}"
        );
    }
    let (mut events, mut pending) = (Vec::new(), Vec::new());
    while events.len() < n {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let mut chunk = vec![0u8; size + 2];
        r.read_exact(&mut chunk).unwrap();
        pending.extend_from_slice(&chunk[..size]);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let event: Vec<u8> = pending.drain(..=i).collect();
            if !event.trim_ascii().is_empty() {
                events.push(serde_json::from_slice(&event).unwrap());
            }
        }
    }
    events.truncate(n);
    events
}

#[test]
fn watches_follow_selectors_resume_bookmark_and_expire() {
    let s = GantryServer::start_with(&["--watch-history", "5", "--watch-bookmark-seconds", "1"]);
    let cms = "/api/v1/namespaces/default/configmaps";
    let (_, list) = s.json("GET", cms, "", b"");
    let start = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Objects entering and leaving a label selector are ADDED and DELETED for the watcher.
    let watcher = {
        let address = s.address.clone();
        let path = format!(
            "{cms}?watch=true&labelSelector=app%3Dx&resourceVersion={start}&timeoutSeconds=3"
        );
        std::thread::spawn(move || watch_events(&address, &path))
    };
    std::thread::sleep(Duration::from_millis(300));
    let labelled =
        |app: &str| format!(r#"{{"metadata":{{"name":"w","labels":{{"app":"{app}"}}}}}}"#);
    s.json("POST", cms, "application/json", labelled("x").as_bytes());
    for app in ["y", "x"] {
        s.json(
            "PATCH",
            &format!("{cms}/w"),
            "application/merge-patch+json",
            labelled(app).as_bytes(),
        );
    }
    s.json("DELETE", &format!("{cms}/w"), "", b"");
    let events = watcher.join().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["ADDED", "DELETED", "ADDED", "DELETED"],
        "{events:?}"
    );
    // Bookmarks, when allowed, say how far the (silent) stream is complete.
    let (_, list) = s.json("GET", cms, "", b"");
    let now = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let events = watch_events(
        &s.address,
        &format!(
            "{cms}?watch=true&allowWatchBookmarks=true&resourceVersion={now}&timeoutSeconds=3"
        ),
    );
    assert!(events.len() >= 2, "{events:?}");
    for e in &events {
        assert_eq!(e["type"], "BOOKMARK");
        assert_eq!(e["object"]["kind"], "ConfigMap");
        let rv: u64 = e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv >= now);
    }
    // A version that has left the history (5 changes) is a 410 ERROR event.
    for i in 0..3 {
        let body = format!(r#"{{"metadata":{{"name":"filler-{i}"}}}}"#);
        s.json("POST", cms, "application/json", body.as_bytes());
        s.json("DELETE", &format!("{cms}/filler-{i}"), "", b"");
    }
    let events = watch_events(
        &s.address,
        &format!("{cms}?watch=true&resourceVersion={start}&timeoutSeconds=3"),
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["object"]["code"].as_i64()
        ),
        (Some("ERROR"), Some(410))
    );
}

#[test]
fn the_server_runs_on_etcd_too() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = runtime.block_on(common::EtcdServer::start());
    let s = GantryServer::start_with(&["--etcd", &etcd.endpoint]);
    let file = write(&s, "objects.yaml", MANIFESTS);
    s.kubectl_ok(&["create", "-f", &file]);
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "demo", "-o", "jsonpath={.data.a}"]),
        "1"
    );
    s.kubectl_ok(&["scale", "deployment", "web", "--replicas=4"]);
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    // The data is in etcd: a second server on it (and another data directory) sees it.
    let again = GantryServer::start_with(&["--etcd", &etcd.endpoint]);
    assert_eq!(
        again.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
}

#[test]
fn a_watcher_that_stops_reading_is_closed_and_holds_up_no_one() {
    use std::io::{Read, Write};
    let s = GantryServer::start();
    let cms = "/api/v1/namespaces/default/configmaps";
    let (_, list) = s.json("GET", cms, "", b"");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // A watcher that sends its request and then reads nothing for a while.
    let mut slow = common::tls::connect(&s.address).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "GET {cms}?watch=true&resourceVersion={rv}&timeoutSeconds=60 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.address
    );
    slow.write_all(request.as_bytes()).unwrap();
    // A watcher that keeps up, in another thread.
    let keeping_up = {
        let (address, path) = (
            s.address.clone(),
            format!("{cms}?watch=true&resourceVersion={rv}&timeoutSeconds=300"),
        );
        // Until it has every event: the writes take as long as the machine needs.
        std::thread::spawn(move || first_watch_events(&address, &path, 1500))
    };
    // Far more than fits in the slow watcher's socket buffers and queue (1,024 events).
    let value = "x".repeat(32 * 1024);
    let total = 1500;
    for i in 0..total {
        let body = json!({"metadata": {"name": format!("big-{i}")}, "data": {"v": value}});
        let (code, _) = s.request(
            "POST",
            cms,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(code, 201);
    }
    let events = keeping_up.join().unwrap();
    assert_eq!(
        events.len(),
        total,
        "the watcher that keeps up got every event"
    );
    // The slow one was cut off: its stream ends early.
    let mut raw = Vec::new();
    let _ = slow.read_to_end(&mut raw);
    let got = String::from_utf8_lossy(&raw)
        .matches("\"type\":\"ADDED\"")
        .count();
    assert!(
        got < total,
        "the slow watcher was closed after {got} of {total} events"
    );
}

/// Polls `check` every 100 ms for up to 20 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_controllers_and_the_scheduler_run_inside_the_server() {
    let s = GantryServer::start();
    let rs = write(
        &s,
        "rs.yaml",
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: busybox, resources: {requests: {cpu: 100m}}}]\n",
    );
    s.kubectl_ok(&["create", "-f", &rs]);
    let pods = |s: &GantryServer| -> Vec<Value> {
        let (_, list) = s.json(
            "GET",
            "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb",
            "",
            b"",
        );
        list["items"].as_array().unwrap().clone()
    };
    // The ReplicaSet controller creates the pods, owned by the ReplicaSet.
    eventually("3 pods", || pods(&s).len() == 3);
    for p in pods(&s) {
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    }
    eventually("status.replicas 3", || {
        s.kubectl_ok(&["get", "rs", "web", "-o", "jsonpath={.status.replicas}"]) == "3"
    });
    // A node appears (as a node agent would register it): the scheduler binds the pods to it.
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}});
    let (code, created) = s.json(
        "POST",
        "/api/v1/nodes",
        "application/json",
        node.to_string().as_bytes(),
    );
    assert_eq!(code, 201, "{created}");
    let mut status = created.clone();
    status["status"] = node["status"].clone();
    let (code, _) = s.json(
        "PUT",
        "/api/v1/nodes/n1/status",
        "application/json",
        status.to_string().as_bytes(),
    );
    assert_eq!(code, 200);
    eventually("every pod bound to n1", || {
        pods(&s).iter().all(|p| p["spec"]["nodeName"] == "n1")
    });
    // Scaling down: the controller deletes two.
    s.kubectl_ok(&["scale", "rs", "web", "--replicas=1"]);
    eventually("one pod left", || {
        pods(&s)
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .count()
            == 1
    });
}

/// k8s: scheduling.k8s.io/v1 PriorityClass — the system classes exist, `kubectl get pc` prints
/// the upstream columns, and the Priority admission plugin resolves a pod's class.
#[test]
fn kubectl_lists_priority_classes_and_pods_get_their_priority() {
    let s = GantryServer::start();
    let out = s.kubectl_ok(&["get", "priorityclasses"]);
    for want in [
        "NAME",
        "VALUE",
        "GLOBAL-DEFAULT",
        "PREEMPTIONPOLICY",
        "system-cluster-critical",
        "2000000000",
        "system-node-critical",
        "2000001000",
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }
    let file = write(
        &s,
        "pc.yaml",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: vip}\nspec:\n  priorityClassName: high\n  containers: [{name: c, image: busybox}]\n",
    );
    s.kubectl_ok(&["create", "-f", &file]);
    let prio = s.kubectl_ok(&["get", "pod", "vip", "-o", "jsonpath={.spec.priority}"]);
    assert_eq!(prio.trim(), "1000");
    let (code, _, err) = s.kubectl(&[
        "run",
        "x",
        "--image=busybox",
        "--overrides",
        r#"{"spec": {"priorityClassName": "nope"}}"#,
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no PriorityClass with name nope was found"),
        "{err}"
    );
}

/// `?limit=` and `?continue=`: pages of one consistent list (k8s: API concepts, "Retrieving
/// large results sets in chunks"), and kubectl's `--chunk-size` reading them all.
#[test]
fn lists_come_in_pages_of_one_consistent_snapshot() {
    let s = GantryServer::start();
    s.kubectl_ok(&["create", "namespace", "paged"]);
    // The namespace's kube-root-ca.crt (the root CA publisher's) comes last by name.
    common::wait_for(Duration::from_secs(20), "kube-root-ca.crt", || {
        let (code, _, _) = s.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "paged"]);
        (code == 0).then_some(())
    });
    for i in 0..5 {
        s.kubectl_ok(&["create", "configmap", &format!("cm-{i}"), "-n", "paged"]);
    }
    let cms = "/api/v1/namespaces/paged/configmaps";
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (code, first) = s.json("GET", &format!("{cms}?limit=2"), "", b"");
    assert_eq!(code, 200, "{first}");
    assert_eq!(names(&first), ["cm-0", "cm-1"]);
    assert_eq!(first["metadata"]["remainingItemCount"], 4, "{first}");
    let rv = first["metadata"]["resourceVersion"].clone();
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    // Changes after the first page do not show in the later ones.
    s.kubectl_ok(&["create", "configmap", "cm-0a", "-n", "paged"]);
    s.kubectl_ok(&["delete", "configmap", "cm-4", "-n", "paged"]);
    let (code, second) = s.json("GET", &format!("{cms}?limit=2&continue={token}"), "", b"");
    assert_eq!(code, 200, "{second}");
    assert_eq!(names(&second), ["cm-2", "cm-3"]);
    assert_eq!(second["metadata"]["resourceVersion"], rv);
    let token = second["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, last) = s.json("GET", &format!("{cms}?limit=2&continue={token}"), "", b"");
    assert_eq!(names(&last), ["cm-4", "kube-root-ca.crt"]);
    assert!(last["metadata"].get("continue").is_none(), "{last}");
    // Bad input: 400s.
    for query in [
        "limit=x".to_string(),
        "continue=not-a-token".to_string(),
        format!("continue={token}&resourceVersion=1"),
    ] {
        let (code, status) = s.json("GET", &format!("{cms}?{query}"), "", b"");
        assert_eq!(
            (code, &status["kind"]),
            (400, &json!("Status")),
            "{query}: {status}"
        );
    }
    // kubectl reads every page (Tables, 2 rows at a time).
    let out = s.kubectl_ok(&[
        "get",
        "configmaps",
        "-n",
        "paged",
        "--chunk-size=2",
        "-o",
        "name",
    ]);
    for name in ["cm-0", "cm-0a", "cm-1", "cm-2", "cm-3"] {
        assert!(out.contains(&format!("configmap/{name}\n")), "{out}");
    }
    assert!(!out.contains("cm-4"), "{out}");
    let out = s.kubectl_ok(&["get", "configmaps", "-n", "paged", "--chunk-size=2"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("cm-")).count(),
        5,
        "{out}"
    );
}
