//! The kubelet core with the scheduler and the ReplicaSet controller, on the scripted runtime
//! (zero-latency test host): k8s-semantics.md §3.1, §4.

use std::time::Duration;

use gantry::api::registry::by_plural;
use gantry::apiserver::ListOptions;
use gantry::component::ApiOp;
use gantry::controllers::replicaset::ReplicaSetController;
use gantry::kubelet::scripted::Behavior;
use gantry::kubelet::{Kubelet, NodeConfig};
use gantry::scheduler::Scheduler;
use gantry::testkit::{Driver, EPOCH};
use serde_json::{json, Value};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cluster(nodes: &[&str]) -> Driver {
    let mut d = Driver::new(11);
    for n in nodes {
        d.add(Box::new(Kubelet::new(NodeConfig::new(n))));
    }
    d.add(Box::new(Scheduler::new()));
    d.add(Box::new(ReplicaSetController::new()));
    d
}

fn get(d: &Driver, plural: &str, ns: Option<&str>, name: &str) -> Value {
    let group = if plural == "leases" {
        "coordination.k8s.io"
    } else {
        ""
    };
    futures::FutureExt::now_or_never(d.api.get(by_plural(group, plural).unwrap(), ns, name))
        .unwrap()
        .unwrap()
}

fn pods(d: &Driver) -> Vec<Value> {
    futures::FutureExt::now_or_never(d.api.list(
        by_plural("", "pods").unwrap(),
        None,
        &ListOptions::default(),
    ))
    .unwrap()
    .unwrap()
    .0
}

fn pod(name: &str, image: &str, policy: &str, extra: Value) -> Value {
    let mut c = json!({"name": "c", "image": image});
    if let (Some(o), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
           "spec": {"restartPolicy": policy, "containers": [c]}})
}

fn create_pod(d: &mut Driver, body: Value) {
    d.client(ApiOp::Create {
        resource: by_plural("", "pods").unwrap(),
        namespace: Some("default".into()),
        body,
    })
    .unwrap();
}

fn condition(p: &Value, type_: &str) -> String {
    p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| c["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Seconds after the epoch at which `what` happened in the runtime log.
fn times(d: &Driver, what: &str) -> Vec<u64> {
    d.runtime_log
        .iter()
        .filter(|(_, w)| w.starts_with(what))
        .map(|(t, _)| t.since(EPOCH).as_secs())
        .collect()
}

#[test]
fn registers_its_node_and_renews_its_lease() {
    let mut d = cluster(&["n1"]);
    let node = get(&d, "nodes", None, "n1");
    assert_eq!(condition(&node, "Ready"), "True");
    assert_eq!(node["status"]["allocatable"]["cpu"], "4");
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.33.0");
    let lease = get(&d, "leases", Some("kube-node-lease"), "n1");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(lease["spec"]["renewTime"], "2025-01-01T00:00:00.000000Z");
    // k8s: renewed every 10 s
    d.advance(secs(25));
    let lease = get(&d, "leases", Some("kube-node-lease"), "n1");
    assert_eq!(lease["spec"]["renewTime"], "2025-01-01T00:00:20.000000Z");
}

#[test]
fn runs_pods_and_reports_them_ready() {
    let mut d = cluster(&["n1", "n2"]);
    d.client(ApiOp::Create {
        resource: by_plural("apps", "replicasets").unwrap(),
        namespace: Some("default".into()),
        body: json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "server"}]}}}}),
    })
    .unwrap();
    let all = pods(&d);
    assert_eq!(all.len(), 3);
    for p in &all {
        assert_eq!(p["status"]["phase"], "Running", "{p}");
        assert_eq!(condition(p, "Ready"), "True");
        assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
        assert!(p["status"]["containerStatuses"][0]["state"]["running"].is_object());
    }
    let rs = futures::FutureExt::now_or_never(d.api.get(
        by_plural("apps", "replicasets").unwrap(),
        Some("default"),
        "web",
    ))
    .unwrap()
    .unwrap();
    assert_eq!(
        (
            rs["status"]["readyReplicas"].clone(),
            rs["status"]["availableReplicas"].clone()
        ),
        (json!(3), json!(3))
    );
}

#[test]
fn crash_loop_backoff_waits_0_10_20_40_seconds() {
    let mut d = cluster(&["n1"]);
    d.runtime.behaviors.insert(
        "crash".into(),
        Behavior {
            exit_after: Some(secs(1)),
            exit_code: 1,
            ..Default::default()
        },
    );
    create_pod(&mut d, pod("p", "crash", "Always", json!({})));
    d.advance(secs(120));
    let starts = times(&d, "start default/p/c");
    let exits = times(&d, "exit");
    // Each start after the first follows an exit by 0, 10, 20, 40 s (k8s §4.3).
    let waits: Vec<u64> = starts
        .iter()
        .skip(1)
        .zip(&exits)
        .map(|(s, e)| s - e)
        .collect();
    assert_eq!(
        waits[..4],
        [0, 10, 20, 40],
        "starts {starts:?} exits {exits:?}"
    );
    let p = get(&d, "pods", Some("default"), "p");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(cs["restartCount"].as_i64(), Some(starts.len() as i64 - 1));
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    // Between restarts the container waits in CrashLoopBackOff.
    let waiting = cs["state"]["waiting"]["reason"].as_str().unwrap_or("");
    assert!(
        waiting == "CrashLoopBackOff" || cs["state"]["running"].is_object(),
        "{cs}"
    );
}

#[test]
fn restart_policies_decide_the_final_phase() {
    let mut d = cluster(&["n1"]);
    d.runtime.behaviors.insert(
        "fail".into(),
        Behavior {
            exit_after: Some(secs(2)),
            exit_code: 3,
            ..Default::default()
        },
    );
    d.runtime.behaviors.insert(
        "job".into(),
        Behavior {
            exit_after: Some(secs(2)),
            exit_code: 0,
            ..Default::default()
        },
    );
    create_pod(&mut d, pod("never-fail", "fail", "Never", json!({})));
    create_pod(&mut d, pod("onfailure-ok", "job", "OnFailure", json!({})));
    create_pod(
        &mut d,
        pod("onfailure-fail", "fail", "OnFailure", json!({})),
    );
    d.advance(secs(5));
    let phase = |d: &Driver, n: &str| {
        get(d, "pods", Some("default"), n)["status"]["phase"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(phase(&d, "never-fail"), "Failed");
    assert_eq!(phase(&d, "onfailure-ok"), "Succeeded");
    assert_eq!(phase(&d, "onfailure-fail"), "Running", "restarting");
    let p = get(&d, "pods", Some("default"), "never-fail");
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        3
    );
    assert_eq!(condition(&p, "Ready"), "False");
}

#[test]
fn readiness_and_liveness_probes_follow_their_thresholds() {
    let mut d = cluster(&["n1"]);
    d.runtime.behaviors.insert(
        "slow".into(),
        Behavior {
            ready_after: secs(15),
            liveness_fails_after: Some(secs(45)),
            ..Default::default()
        },
    );
    let probes = json!({
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 10},
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 10, "failureThreshold": 3},
    });
    create_pod(&mut d, pod("p", "slow", "Always", probes));
    // The kubelet just started: the first probes wait a random fraction of the period.
    d.advance(secs(12));
    assert_eq!(
        condition(&get(&d, "pods", Some("default"), "p"), "Ready"),
        "False"
    );
    d.advance(secs(20));
    assert_eq!(
        condition(&get(&d, "pods", Some("default"), "p"), "Ready"),
        "True"
    );
    // Liveness fails from 45 s on; three failures 10 s apart kill the container.
    d.advance(secs(60));
    let stops = times(&d, "stop");
    assert_eq!(stops.len(), 1, "{:?}", d.runtime_log);
    assert!((65..=80).contains(&stops[0]), "killed at {stops:?}");
    let p = get(&d, "pods", Some("default"), "p");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 1);
}

#[test]
fn deleted_pods_stop_then_leave_the_api() {
    let mut d = cluster(&["n1"]);
    create_pod(&mut d, pod("p", "server", "Always", json!({})));
    assert_eq!(
        get(&d, "pods", Some("default"), "p")["status"]["phase"],
        "Running"
    );
    d.client(ApiOp::Delete {
        resource: by_plural("", "pods").unwrap(),
        namespace: Some("default".into()),
        name: "p".into(),
        grace_period_seconds: None,
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: None,
    })
    .unwrap();
    assert_eq!(times(&d, "stop").len(), 1, "SIGTERM sent");
    assert!(
        pods(&d).is_empty(),
        "the kubelet's grace-0 delete removed it: {:?}",
        pods(&d)
    );
}

#[test]
fn a_failed_final_delete_is_sent_again() {
    let mut d = cluster(&["n1"]);
    create_pod(&mut d, pod("p", "server", "Always", json!({})));
    // The kubelet's next requests (its status writes and its grace-0 delete) fail.
    d.fail_component_requests = 3;
    d.client(ApiOp::Delete {
        resource: by_plural("", "pods").unwrap(),
        namespace: Some("default".into()),
        name: "p".into(),
        grace_period_seconds: None,
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: None,
    })
    .unwrap();
    assert!(
        d.log.iter().any(|(who, what, code)| who == "kubelet/n1"
            && what == "delete pods default/p"
            && *code == 503),
        "{:?}",
        d.log
    );
    assert_eq!(pods(&d).len(), 1, "still terminating");
    // The status manager's next pass sends it again.
    d.advance(gantry::kubelet::STATUS_SYNC + secs(1));
    assert!(pods(&d).is_empty(), "{:?}", pods(&d));
}

#[test]
fn a_status_changed_by_others_is_restored_by_the_status_manager() {
    let mut d = cluster(&["n1"]);
    create_pod(&mut d, pod("p", "server", "Always", json!({})));
    d.advance(secs(1));
    let running = get(&d, "pods", Some("default"), "p");
    assert_eq!(condition(&running, "Ready"), "True");
    let writes = |d: &Driver| {
        d.log
            .iter()
            .filter(|(who, what, _)| {
                who.starts_with("kubelet") && what.starts_with("update pods/status")
            })
            .count()
    };
    let before = writes(&d);
    // Someone else (the node lifecycle controller, say) marks the pod not ready.
    let mut marked = running.clone();
    marked["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    d.client(ApiOp::Update {
        resource: by_plural("", "pods").unwrap(),
        namespace: Some("default".into()),
        name: "p".into(),
        body: marked,
        part: gantry::apiserver::Part::Status,
    })
    .unwrap();
    // The kubelet's last write stands for what it believes, so nothing is written at once...
    assert_eq!(writes(&d), before);
    assert_eq!(
        condition(&get(&d, "pods", Some("default"), "p"), "Ready"),
        "False"
    );
    // ...the status manager finds the difference on its next pass (every 10 s) and rewrites it.
    d.advance(gantry::kubelet::STATUS_SYNC);
    assert_eq!(writes(&d), before + 1);
    assert_eq!(
        condition(&get(&d, "pods", Some("default"), "p"), "Ready"),
        "True"
    );
}
