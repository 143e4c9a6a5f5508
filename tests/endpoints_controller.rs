//! The Endpoints and EndpointSlice controllers (reference §6.1–6.3): their cores driven against
//! the real apiserver core (zero-latency test host), then end to end on `gantry server` with
//! real process pods and real kubectl.

#[cfg(feature = "server")]
mod common;

use std::time::Duration;

use gantry::api::registry::{by_plural, ResourceInfo};
use gantry::apiserver::{ListOptions, Part};
use gantry::component::ApiOp;
use gantry::controllers::endpoints::EndpointsController;
use gantry::controllers::endpointslice::EndpointSliceController;
use gantry::testkit::Driver;
use serde_json::{json, Value};

fn res(plural: &str) -> &'static ResourceInfo {
    let group = if plural == "endpointslices" {
        "discovery.k8s.io"
    } else {
        ""
    };
    by_plural(group, plural).unwrap()
}

fn create(d: &mut Driver, plural: &str, body: Value) -> Value {
    let namespace = body["metadata"]["namespace"].as_str().map(String::from);
    d.client(ApiOp::Create {
        resource: res(plural),
        namespace,
        body,
    })
    .unwrap()
}

fn get(d: &mut Driver, plural: &str, name: &str) -> Option<Value> {
    d.client(ApiOp::Get {
        resource: res(plural),
        namespace: Some("default".into()),
        name: name.into(),
    })
    .ok()
}

fn list(d: &Driver, plural: &str) -> Vec<Value> {
    futures::FutureExt::now_or_never(d.api.list(
        res(plural),
        Some("default"),
        &ListOptions::default(),
    ))
    .unwrap()
    .unwrap()
    .0
}

/// The controller's slices of a Service.
fn slices_of(d: &Driver, svc: &str) -> Vec<Value> {
    list(d, "endpointslices")
        .into_iter()
        .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == svc)
        .collect()
}

/// A running pod of `app` with an IP, ready or not (as a kubelet would report it).
fn run_pod(d: &mut Driver, name: &str, ip: &str, ready: bool) {
    let pod = create(
        d,
        "pods",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                        "ports": [{"name": "http", "containerPort": 8080}]}]}}),
    );
    set_status(d, pod, ip, ready, "2025-01-01T00:00:01Z");
}

fn set_status(d: &mut Driver, mut pod: Value, ip: &str, ready: bool, since: &str) {
    pod["status"] = json!({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                        "lastTransitionTime": since}]});
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    d.client(ApiOp::Update {
        resource: res("pods"),
        namespace: Some("default".into()),
        name,
        body: pod,
        part: Part::Status,
    })
    .unwrap();
}

fn ips(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|a| a["ip"].as_str().unwrap().to_string())
        .collect()
}

fn writes_by(d: &Driver, who: &str) -> usize {
    d.log
        .iter()
        .filter(|(c, what, _)| c == who && !what.starts_with("get "))
        .count()
}

#[test]
fn a_service_gets_endpoints_and_slices_that_follow_its_pods_and_go_with_it() {
    let mut d = Driver::new(3);
    d.add(Box::new(EndpointsController::new()));
    d.add(Box::new(EndpointSliceController::new()));
    create(
        &mut d,
        "nodes",
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}}),
    );
    let svc = create(
        &mut d,
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
    );
    // No pods yet: empty Endpoints and one placeholder slice.
    d.advance(Duration::from_millis(10));
    let ep = get(&mut d, "endpoints", "web").expect("created for the new Service");
    assert_eq!(ep["subsets"], Value::Null, "{ep}");
    // The first write's trigger: the Service's creation.
    assert_eq!(
        ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"],
        svc["metadata"]["creationTimestamp"]
    );
    assert_eq!(ep["metadata"]["labels"], json!({"team": "a"}));
    let slices = slices_of(&d, "web");
    assert_eq!(slices.len(), 1);
    let none = |v: &Value| v.is_null() || v.as_array().is_some_and(|a| a.is_empty());
    assert!(none(&slices[0]["endpoints"]), "{}", slices[0]);

    for (name, ip) in [
        ("a", "10.128.0.2"),
        ("b", "10.128.0.3"),
        ("c", "10.128.0.4"),
    ] {
        run_pod(&mut d, name, ip, true);
    }
    run_pod(&mut d, "late", "10.128.0.5", false);
    // A pod of another app, and one without an IP yet: not included.
    create(
        &mut d,
        "pods",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "pending", "namespace": "default", "labels": {"app": "web"}},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    d.advance(Duration::from_millis(10));
    let ep = get(&mut d, "endpoints", "web").unwrap();
    assert_eq!(ep["subsets"].as_array().unwrap().len(), 1, "{ep}");
    let subset = &ep["subsets"][0];
    assert_eq!(
        ips(&subset["addresses"]),
        ["10.128.0.2", "10.128.0.3", "10.128.0.4"]
    );
    assert_eq!(ips(&subset["notReadyAddresses"]), ["10.128.0.5"]);
    assert_eq!(
        subset["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(subset["addresses"][0]["targetRef"]["name"], "a");
    assert_eq!(subset["addresses"][0]["nodeName"], "n1");

    let slices = slices_of(&d, "web");
    assert_eq!(slices.len(), 1, "the placeholder was filled in place");
    let slice = &slices[0];
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(
        slice["metadata"]["ownerReferences"][0]["uid"],
        svc["metadata"]["uid"]
    );
    let eps = slice["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 4);
    let late = eps
        .iter()
        .find(|e| e["targetRef"]["name"] == "late")
        .unwrap();
    assert_eq!(
        late["conditions"],
        json!({"ready": false, "serving": false, "terminating": false})
    );
    assert!(eps
        .iter()
        .all(|e| e["zone"] == "z1" && e["nodeName"] == "n1"));

    // Steady state: nothing more is written.
    let before = (
        writes_by(&d, "endpoints-controller"),
        writes_by(&d, "endpointslice-controller"),
    );
    d.advance(Duration::from_secs(5));
    assert_eq!(
        before,
        (
            writes_by(&d, "endpoints-controller"),
            writes_by(&d, "endpointslice-controller")
        )
    );

    // `a` turns not ready: it moves to notReadyAddresses and its slice condition follows.
    let a = get(&mut d, "pods", "a").unwrap();
    set_status(&mut d, a, "10.128.0.2", false, "2025-01-01T00:05:00Z");
    d.advance(Duration::from_millis(10));
    let ep = get(&mut d, "endpoints", "web").unwrap();
    // The write says when the change that caused it happened: a's Ready transition.
    const TRIGGER: &str = "endpoints.kubernetes.io/last-change-trigger-time";
    assert_eq!(
        ep["metadata"]["annotations"][TRIGGER], "2025-01-01T00:05:00Z",
        "{ep}"
    );
    assert_eq!(
        ips(&ep["subsets"][0]["notReadyAddresses"]),
        ["10.128.0.2", "10.128.0.5"]
    );
    let slices = slices_of(&d, "web");
    let a = slices[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["targetRef"]["name"] == "a")
        .unwrap()
        .clone();
    assert_eq!(a["conditions"]["ready"], false);
    assert_eq!(
        slices[0]["metadata"]["annotations"][TRIGGER],
        "2025-01-01T00:05:00Z"
    );

    // `b` is being deleted: gone from the Endpoints, terminating in its slice.
    d.client(ApiOp::Delete {
        resource: res("pods"),
        namespace: Some("default".into()),
        name: "b".into(),
        grace_period_seconds: Some(30),
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: None,
    })
    .unwrap();
    d.advance(Duration::from_millis(10));
    let ep = get(&mut d, "endpoints", "web").unwrap();
    assert_eq!(ips(&ep["subsets"][0]["addresses"]), ["10.128.0.4"]);
    let b = slices_of(&d, "web")[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["targetRef"]["name"] == "b")
        .unwrap()
        .clone();
    assert_eq!(
        b["conditions"],
        json!({"ready": false, "serving": true, "terminating": true})
    );

    // Endpoints deleted behind the controller's back come back.
    d.client(ApiOp::Delete {
        resource: res("endpoints"),
        namespace: Some("default".into()),
        name: "web".into(),
        grace_period_seconds: None,
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: None,
    })
    .unwrap();
    d.advance(Duration::from_millis(10));
    assert!(get(&mut d, "endpoints", "web").is_some());

    // The Service goes: so do its Endpoints and slices. The kubernetes Service's are not ours.
    d.client(ApiOp::Delete {
        resource: res("services"),
        namespace: Some("default".into()),
        name: "web".into(),
        grace_period_seconds: None,
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: None,
    })
    .unwrap();
    d.advance(Duration::from_millis(10));
    assert!(get(&mut d, "endpoints", "web").is_none());
    assert!(slices_of(&d, "web").is_empty());
}

#[test]
fn services_without_a_selector_keep_the_users_endpoints() {
    let mut d = Driver::new(4);
    d.add(Box::new(EndpointsController::new()));
    d.add(Box::new(EndpointSliceController::new()));
    create(
        &mut d,
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "ext", "namespace": "default"},
               "spec": {"ports": [{"port": 80}]}}),
    );
    create(
        &mut d,
        "endpoints",
        json!({"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": "ext", "namespace": "default"},
               "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]}),
    );
    d.advance(Duration::from_secs(2));
    let ep = get(&mut d, "endpoints", "ext").unwrap();
    assert_eq!(ips(&ep["subsets"][0]["addresses"]), ["192.0.2.1"]);
    assert!(slices_of(&d, "ext").is_empty());
    assert_eq!(writes_by(&d, "endpoints-controller"), 0);
    assert_eq!(writes_by(&d, "endpointslice-controller"), 0);
}

#[test]
fn a_service_of_many_pods_gets_slices_of_at_most_100() {
    let mut d = Driver::new(5);
    d.add(Box::new(EndpointSliceController::new()));
    create(
        &mut d,
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}}),
    );
    for i in 0..230 {
        run_pod(
            &mut d,
            &format!("p{i:03}"),
            &format!("10.128.{}.{}", i / 200, i % 200 + 2),
            true,
        );
    }
    d.advance(Duration::from_secs(1));
    let mut sizes: Vec<usize> = slices_of(&d, "web")
        .iter()
        .map(|s| s["endpoints"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes.iter().sum::<usize>(), 230);
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    assert_eq!(sizes.len(), 3, "{sizes:?}");
}

/// End to end: `gantry server` with its own node, real process pods, real kubectl.
#[cfg(feature = "server")]
mod e2e {
    use std::time::Duration;

    use serde_json::Value;

    use super::common::{wait_for, GantryServer};

    const MANIFESTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, labels: {team: a}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "touch $DIR/ready-$POD_NAME; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
        env:
        - {name: DIR, value: "@DIR@"}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          exec: {command: ["sh", "-c", "test -f $DIR/ready-$POD_NAME"]}
          periodSeconds: 1
          failureThreshold: 1
"#;

    fn get_json(s: &GantryServer, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&s.kubectl_ok(&all)).expect("json")
    }

    fn items(v: &Value) -> Vec<Value> {
        v["items"].as_array().cloned().unwrap_or_default()
    }

    fn ips_of(v: &Value) -> Vec<String> {
        let mut ips: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a["ip"].as_str().unwrap().to_string())
            .collect();
        ips.sort();
        ips
    }

    #[test]
    fn endpoints_and_slices_follow_ready_pods_and_go_with_their_service() {
        let s = GantryServer::start_with_node("node-a", &[]);
        s.kubectl_ok(&[
            "label",
            "node",
            "node-a",
            "topology.kubernetes.io/zone=zone-1",
        ]);
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join("web.yaml");
        let manifests = MANIFESTS.replace("@DIR@", work.path().to_str().unwrap());
        std::fs::write(&path, manifests).unwrap();
        s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);

        // Three ready pods: three addresses with their IPs and the named port.
        let pods = wait_for(Duration::from_secs(60), "3 ready pods", || {
            let pods = items(&get_json(&s, &["pods", "-l", "app=web"]));
            let ready = pods
                .iter()
                .filter(|p| p["status"]["containerStatuses"][0]["ready"] == true)
                .count();
            (pods.len() == 3 && ready == 3).then_some(pods)
        });
        let mut pod_ips: Vec<String> = pods
            .iter()
            .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
            .collect();
        pod_ips.sort();
        let ep = wait_for(Duration::from_secs(20), "3 ready addresses", || {
            let ep = get_json(&s, &["endpoints", "web"]);
            (ips_of(&ep["subsets"][0]["addresses"]).len() == 3).then_some(ep)
        });
        assert_eq!(ep["subsets"].as_array().unwrap().len(), 1, "{ep}");
        let subset = &ep["subsets"][0];
        assert_eq!(ips_of(&subset["addresses"]), pod_ips);
        assert_eq!(
            subset["ports"],
            serde_json::json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert!(subset["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["nodeName"] == "node-a" && a["targetRef"]["kind"] == "Pod"));
        assert_eq!(ep["metadata"]["labels"]["team"], "a");

        let slices = |s: &GantryServer| {
            items(&get_json(
                s,
                &["endpointslices", "-l", "kubernetes.io/service-name=web"],
            ))
        };
        let slice = wait_for(Duration::from_secs(20), "a slice of 3 ready", || {
            let all = slices(&s);
            let ready = |sl: &Value| {
                sl["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e["conditions"]["ready"] == true)
                    .count()
            };
            (all.len() == 1 && ready(&all[0]) == 3).then(|| all[0].clone())
        });
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(
            slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
        assert_eq!(slice["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(
            slice["ports"],
            serde_json::json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        let mut slice_ips: Vec<String> = slice["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["addresses"][0].as_str().unwrap().to_string())
            .collect();
        slice_ips.sort();
        assert_eq!(slice_ips, pod_ips);
        assert!(slice["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["zone"] == "zone-1" && e["nodeName"] == "node-a"));

        // One pod's readiness file goes: it turns not ready and moves.
        let victim = &pods[0];
        let name = victim["metadata"]["name"].as_str().unwrap();
        let ip = victim["status"]["podIP"].as_str().unwrap().to_string();
        std::fs::remove_file(work.path().join(format!("ready-{name}"))).unwrap();
        wait_for(Duration::from_secs(30), "a not-ready address", || {
            let ep = get_json(&s, &["endpoints", "web"]);
            let subsets = ep["subsets"].as_array().cloned().unwrap_or_default();
            let all = |f: &str| -> Vec<String> {
                let mut v: Vec<String> = subsets.iter().flat_map(|x| ips_of(&x[f])).collect();
                v.sort();
                v
            };
            (all("notReadyAddresses") == [ip.clone()] && all("addresses").len() == 2).then_some(())
        });
        wait_for(Duration::from_secs(20), "the slice condition", || {
            let all = slices(&s);
            let e = all.first()?["endpoints"]
                .as_array()?
                .iter()
                .find(|e| e["targetRef"]["name"] == name)?
                .clone();
            (e["conditions"]["ready"] == false && e["conditions"]["serving"] == false).then_some(())
        });

        // kubectl's views of services and endpoints, with the default/kubernetes Service.
        let out = s.kubectl_ok(&["get", "svc,ep", "-A"]);
        assert!(out.contains("kubernetes") && out.contains("web"), "{out}");
        let (code, _, err) = s.kubectl(&["get", "endpoints", "web"]);
        assert_eq!(code, 0);
        assert!(
            err.contains("Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"),
            "{err}"
        );
        let out = s.kubectl_ok(&["get", "endpointslices", "-n", "default"]);
        assert!(out.lines().any(|l| l.starts_with("kubernetes ")), "{out}");
        let out = s.kubectl_ok(&["cluster-info"]);
        assert!(out.contains("is running at"), "{out}");

        // The Service goes: its Endpoints and slices go with it.
        s.kubectl_ok(&["delete", "service", "web"]);
        wait_for(Duration::from_secs(20), "endpoints and slices gone", || {
            let (code, _, _) = s.kubectl(&["get", "endpoints", "web"]);
            (code != 0 && slices(&s).is_empty()).then_some(())
        });
        s.kubectl_ok(&["delete", "replicaset", "web"]);
    }
}

#[test]
fn converged_endpoints_are_not_rewritten_whatever_the_service_shape() {
    // (service spec): an unnamed numeric port, a headless Service without ports, two ports
    // with an app protocol, publishNotReadyAddresses.
    let shapes = [
        json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}),
        json!({"selector": {"app": "web"}, "clusterIP": "None"}),
        json!({"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "appProtocol": "http"},
            {"name": "dns", "port": 53, "protocol": "UDP"}]}),
        json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
               "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    ];
    for (i, spec) in shapes.into_iter().enumerate() {
        let mut d = Driver::new(6);
        d.add(Box::new(EndpointsController::new()));
        d.add(Box::new(EndpointSliceController::new()));
        create(
            &mut d,
            "services",
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        );
        run_pod(&mut d, "a", "10.128.0.2", true);
        run_pod(&mut d, "b", "10.128.0.3", false);
        d.advance(Duration::from_secs(1));
        let ep = get(&mut d, "endpoints", "web").unwrap();
        let all: usize = ep["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| ips(&s["addresses"]).len() + ips(&s["notReadyAddresses"]).len())
            .sum();
        assert_eq!(all, 2, "shape {i}: {ep}");
        let before = (
            writes_by(&d, "endpoints-controller"),
            writes_by(&d, "endpointslice-controller"),
        );
        // Every Service and pod looked at again (a relist would do the same).
        for name in ["a", "b"] {
            let mut p = get(&mut d, "pods", name).unwrap();
            p["metadata"]["labels"]["touched"] = json!("yes");
            d.client(ApiOp::Update {
                resource: res("pods"),
                namespace: Some("default".into()),
                name: name.into(),
                body: p,
                part: Part::Main,
            })
            .unwrap();
        }
        d.advance(Duration::from_secs(5));
        let after = (
            writes_by(&d, "endpoints-controller"),
            writes_by(&d, "endpointslice-controller"),
        );
        assert_eq!(before, after, "shape {i}: {:?}", d.log);
    }
}
