//! Services on `gantry server` through real kubectl: ClusterIP and NodePort allocation, the
//! bad input the apiserver refuses (each a 422 naming the field), allocation across a restart,
//! and the Service environment variables a pod started after the Service sees.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use common::{wait_for, GantryServer};
use serde_json::{json, Value};

fn svc(s: &GantryServer, name: &str) -> Value {
    serde_json::from_str(&s.kubectl_ok(&["get", "svc", name, "-o", "json"])).unwrap()
}

fn in_default_cidr(ip: &str) -> bool {
    let ip: Ipv4Addr = ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    u32::from(ip) >> 20 == u32::from(Ipv4Addr::new(10, 96, 0, 0)) >> 20
}

fn create(s: &GantryServer, body: &Value) -> (u16, Value) {
    s.json(
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        body.to_string().as_bytes(),
    )
}

fn causes(status: &Value) -> Vec<String> {
    status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["field"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn kubectl_services_get_cluster_ips_and_node_ports() {
    let s = GantryServer::start();
    let k = svc(&s, "kubernetes");
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");

    s.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    s.kubectl_ok(&["create", "service", "nodeport", "edge", "--tcp=443:8443"]);
    s.kubectl_ok(&["create", "deployment", "app", "--image=busybox"]);
    s.kubectl_ok(&[
        "expose",
        "deployment",
        "app",
        "--port=8000",
        "--target-port=9000",
    ]);
    let mut ips = BTreeSet::new();
    for name in ["web", "edge", "app"] {
        let v = svc(&s, name);
        let ip = v["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert!(in_default_cidr(&ip) && ip != "10.96.0.1", "{name}: {ip}");
        assert_eq!(v["spec"]["clusterIPs"], json!([ip]));
        assert_eq!(v["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(v["spec"]["ipFamilyPolicy"], "SingleStack");
        assert!(ips.insert(ip), "{name}: an address given twice");
    }
    let node_port = svc(&s, "edge")["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    assert!(svc(&s, "web")["spec"]["ports"][0]["nodePort"].is_null());

    // kubectl get svc shows them.
    let table = s.kubectl_ok(&["get", "svc"]);
    let web_ip = svc(&s, "web")["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(table.contains(&web_ip), "{table}");
    assert!(table.contains(&format!("443:{node_port}/TCP")), "{table}");

    // A headless Service keeps "None"; a static address inside the range is honoured.
    let (code, headless) = create(
        &s,
        &json!({"metadata": {"name": "hl"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
    );
    assert_eq!(code, 201, "{headless}");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let (code, fixed) = create(
        &s,
        &json!({"metadata": {"name": "fixed"}, "spec": {"clusterIP": "10.96.0.11", "ports": [{"port": 53}]}}),
    );
    assert_eq!(code, 201, "{fixed}");
    assert_eq!(fixed["spec"]["clusterIP"], "10.96.0.11");
}

#[test]
fn bad_services_get_a_422_naming_the_field() {
    let s = GantryServer::start();
    let (code, taken) = create(
        &s,
        &json!({"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}),
    );
    assert_eq!(code, 201, "{taken}");
    // (name, spec, the field the Status names, what its message says)
    let cases = [
        (
            "clash",
            json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
            "spec.ports[1]",
            "Duplicate value",
        ),
        (
            "names",
            json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
            "spec.ports[1].name",
            "Duplicate value",
        ),
        (
            "range",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]}),
            "spec.ports[0].nodePort",
            "not in the valid range. The range of valid ports is 30000-32767",
        ),
        (
            "used",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            "spec.ports[0].nodePort",
            "provided port is already allocated",
        ),
        (
            "outside",
            json!({"clusterIP": "192.168.0.10", "ports": [{"port": 80}]}),
            "spec.clusterIPs[0]",
            "The range of valid IPs is 10.96.0.0/12",
        ),
        (
            "first",
            json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}),
            "spec.clusterIPs[0]",
            "provided IP is already allocated",
        ),
        (
            "target",
            json!({"ports": [{"port": 80, "targetPort": "Bad_Name"}]}),
            "spec.ports[0].targetPort",
            "Invalid value",
        ),
    ];
    for (name, spec, field, says) in cases {
        let (code, status) = create(&s, &json!({"metadata": {"name": name}, "spec": spec}));
        assert_eq!(code, 422, "{name}: {status}");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Invalid");
        assert!(
            causes(&status).contains(&field.to_string()),
            "{name}: {status}"
        );
        assert!(
            status["message"].as_str().unwrap().contains(says),
            "{name}: {status}"
        );
    }
    // kubectl shows the same.
    let file = s.dir.path().join("clash.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata: {name: clash}\nspec:\n  ports:\n  - {name: a, port: 80}\n  - {name: b, port: 80}\n",
    )
    .unwrap();
    let (code, _, err) = s.kubectl(&["create", "-f", file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("spec.ports[1]: Duplicate value"), "{err}");

    // The clusterIP may not change (k8s: "may not change once set").
    s.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80"]);
    let (code, _, err) = s.kubectl(&[
        "patch",
        "svc",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec": {"clusterIP": "10.96.0.77", "clusterIPs": ["10.96.0.77"]}}"#,
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("spec.clusterIPs[0]") && err.contains("may not change once set"),
        "{err}"
    );
    // Other changes keep it.
    let before = svc(&s, "web")["spec"]["clusterIP"].clone();
    s.kubectl_ok(&["label", "svc", "web", "tier=front"]);
    s.kubectl_ok(&[
        "patch",
        "svc",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec": {"type": "NodePort"}}"#,
    ]);
    let after = svc(&s, "web");
    assert_eq!(after["spec"]["clusterIP"], before);
    assert!(
        after["spec"]["ports"][0]["nodePort"].as_i64().is_some(),
        "{after}"
    );
    // Deleting gives the NodePort back.
    s.kubectl_ok(&["delete", "svc", "np"]);
    let (code, again) = create(
        &s,
        &json!({"metadata": {"name": "np2"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}),
    );
    assert_eq!(code, 201, "{again}");
}

#[test]
fn a_restarted_server_never_hands_out_an_address_in_use() {
    // A /28: 14 addresses, the first the kubernetes Service's, 13 for the test (no cluster
    // DNS, so no kube-dns Service at the tenth); the NodePort range holds 3.
    let range = [
        "--cluster-dns",
        "none",
        "--service-cluster-ip-range",
        "10.100.0.0/28",
        "--service-node-port-range",
        "31000-31002",
    ];
    let s = GantryServer::start_with(&range);
    assert_eq!(svc(&s, "kubernetes")["spec"]["clusterIP"], "10.100.0.1");
    let mut used = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for i in 0..3 {
        s.kubectl_ok(&[
            "create",
            "service",
            "nodeport",
            &format!("a{i}"),
            "--tcp=80",
        ]);
        let v = svc(&s, &format!("a{i}"));
        used.insert(v["spec"]["clusterIP"].as_str().unwrap().to_string());
        ports.insert(v["spec"]["ports"][0]["nodePort"].as_i64().unwrap());
    }
    // The NodePort range is full now.
    let (code, _, err) = s.kubectl(&["create", "service", "nodeport", "full", "--tcp=80"]);
    assert_ne!(code, 0);
    assert!(err.contains("failed to allocate a nodePort"), "{err}");
    for i in 3..6 {
        s.kubectl_ok(&[
            "create",
            "service",
            "clusterip",
            &format!("a{i}"),
            "--tcp=80",
        ]);
        used.insert(
            svc(&s, &format!("a{i}"))["spec"]["clusterIP"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(used.len(), 6);
    assert_eq!(ports.len(), 3);

    let dir = s.stop_keeping_data();
    let mut args = vec!["--no-node"];
    args.extend_from_slice(&range);
    let s = GantryServer::start_in_with(dir, &args);
    // The NodePorts survived the restart: the range held by stored Services is still full.
    let (code, _, err) = s.kubectl(&["create", "service", "nodeport", "np", "--tcp=80"]);
    assert_ne!(code, 0);
    assert!(err.contains("failed to allocate a nodePort"), "{err}");
    // The remaining 7 addresses, each new, then a clear error.
    for i in 0..7 {
        s.kubectl_ok(&[
            "create",
            "service",
            "clusterip",
            &format!("b{i}"),
            "--tcp=80",
        ]);
        let ip = svc(&s, &format!("b{i}"))["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            ip != "10.100.0.1" && used.insert(ip.clone()),
            "b{i}: {ip} was in use"
        );
    }
    let (code, _, err) = s.kubectl(&["create", "service", "clusterip", "one-too-many", "--tcp=80"]);
    assert_ne!(code, 0);
    assert!(err.contains("range is full"), "{err}");
    s.kubectl_ok(&["delete", "svc", "a0"]);
    s.kubectl_ok(&["create", "service", "nodeport", "np", "--tcp=80"]);
}

#[test]
fn a_pod_started_after_a_service_sees_its_environment_variables() {
    let s = GantryServer::start_with_node("node-a", &[]);
    s.kubectl_ok(&["create", "service", "clusterip", "my-db", "--tcp=5432:5432"]);
    let ip = svc(&s, "my-db")["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let file = s.dir.path().join("pod.yaml");
    std::fs::write(
        &file,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: envy}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "env | sort; echo done; while true; do sleep 1; done"]
    env:
    - {name: MY_DB_PORT, value: "mine"}
    - {name: DB_URL, value: "postgres://$(MY_DB_SERVICE_HOST):$(MY_DB_SERVICE_PORT)"}
"#,
    )
    .unwrap();
    s.kubectl_ok(&["create", "-f", file.to_str().unwrap()]);
    let logs = wait_for(Duration::from_secs(30), "the pod's env in its log", || {
        let (code, out, _) = s.kubectl(&["logs", "envy"]);
        (code == 0 && out.contains("done")).then_some(out)
    });
    let env: BTreeSet<&str> = logs.lines().collect();
    for want in [
        format!("MY_DB_SERVICE_HOST={ip}"),
        "MY_DB_SERVICE_PORT=5432".to_string(),
        "MY_DB_SERVICE_PORT_5432_5432=5432".to_string(),
        format!("MY_DB_PORT_5432_TCP=tcp://{ip}:5432"),
        "MY_DB_PORT_5432_TCP_PROTO=tcp".to_string(),
        format!("MY_DB_PORT_5432_TCP_ADDR={ip}"),
        "KUBERNETES_SERVICE_HOST=10.96.0.1".to_string(),
        "KUBERNETES_SERVICE_PORT=443".to_string(),
        // The container's own env wins, and may refer to the Service's.
        "MY_DB_PORT=mine".to_string(),
        format!("DB_URL=postgres://{ip}:5432"),
    ] {
        assert!(env.contains(want.as_str()), "{want} missing from:\n{logs}");
    }
}
