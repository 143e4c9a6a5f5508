//! The Deployment controller core with the ReplicaSet controller, the scheduler and kubelets on
//! the scripted runtime (zero-latency test host): k8s-semantics.md §2.

use std::time::Duration;

use gantry::api::registry::by_plural;
use gantry::apiserver::{ListOptions, Part};
use gantry::component::ApiOp;
use gantry::controllers::deployment::DeploymentController;
use gantry::controllers::replicaset::ReplicaSetController;
use gantry::kubelet::scripted::Behavior;
use gantry::kubelet::{Kubelet, NodeConfig};
use gantry::scheduler::Scheduler;
use gantry::testkit::Driver;
use serde_json::{json, Value};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cluster(nodes: usize) -> Driver {
    let mut d = Driver::new(7);
    for i in 1..=nodes {
        d.add(Box::new(Kubelet::new(NodeConfig::new(&format!("n{i}")))));
    }
    d.add(Box::new(Scheduler::new()));
    d.add(Box::new(ReplicaSetController::new()));
    d.add(Box::new(DeploymentController::new()));
    // New images become ready 5 s after they start (a readiness probe fails until then).
    for image in ["web:2", "web:3"] {
        d.runtime.behaviors.insert(
            image.into(),
            Behavior {
                ready_after: secs(5),
                ..Default::default()
            },
        );
    }
    d
}

fn deployment(name: &str, replicas: i64, image: &str, strategy: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "strategy": strategy,
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"terminationGracePeriodSeconds": 1,
                                          "containers": [{"name": "c", "image": image,
                                            "readinessProbe": {"exec": {"command": ["ready"]},
                                                               "periodSeconds": 1}}]}}}})
}

fn res(plural: &str) -> &'static gantry::api::registry::ResourceInfo {
    let group = if plural == "pods" { "" } else { "apps" };
    by_plural(group, plural).unwrap()
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

fn get(d: &Driver, plural: &str, name: &str) -> Value {
    futures::FutureExt::now_or_never(d.api.get(res(plural), Some("default"), name))
        .unwrap()
        .unwrap()
}

fn create(d: &mut Driver, body: Value) {
    d.client(ApiOp::Create {
        resource: res("deployments"),
        namespace: Some("default".into()),
        body,
    })
    .unwrap();
}

/// Changes the Deployment's spec as a user would (an update of the whole object).
fn edit(d: &mut Driver, name: &str, f: impl FnOnce(&mut Value)) {
    let mut obj = get(d, "deployments", name);
    f(&mut obj);
    d.client(ApiOp::Update {
        resource: res("deployments"),
        namespace: Some("default".into()),
        name: name.into(),
        body: obj,
        part: Part::Main,
    })
    .unwrap();
}

fn set_image(d: &mut Driver, name: &str, image: &str) {
    edit(d, name, |o| {
        o["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image)
    });
}

fn live(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn image(p: &Value) -> &str {
    p["spec"]["containers"][0]["image"].as_str().unwrap_or("")
}

/// (live pods, ready live pods, ready live pods on `image`).
fn counts(d: &Driver, on: &str) -> (usize, usize, usize) {
    let pods: Vec<Value> = list(d, "pods").into_iter().filter(live).collect();
    let ready_n = pods.iter().filter(|p| ready(p)).count();
    let on_image = pods.iter().filter(|p| ready(p) && image(p) == on).count();
    (pods.len(), ready_n, on_image)
}

fn condition(obj: &Value, type_: &str) -> Value {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or(Value::Null)
}

fn replica_sets(d: &Driver) -> Vec<(String, i64, String)> {
    let mut v: Vec<(String, i64, String)> = list(d, "replicasets")
        .iter()
        .map(|rs| {
            (
                rs["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                rs["spec"]["replicas"].as_i64().unwrap(),
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn rolling(surge: i64, unavailable: i64) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

#[test]
fn a_new_deployment_gets_a_hashed_replica_set_and_completes() {
    let mut d = cluster(2);
    create(&mut d, deployment("web", 3, "web:1", json!(null)));
    d.advance(secs(10));
    let rss = list(&d, "replicasets");
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    assert_eq!(
        rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
        hash
    );
    let a = &rs["metadata"]["annotations"];
    assert_eq!(a["deployment.kubernetes.io/revision"], "1");
    assert_eq!(a["deployment.kubernetes.io/desired-replicas"], "3");
    assert_eq!(a["deployment.kubernetes.io/max-replicas"], "4"); // 3 + 25 % rounded up
    let owner = &rs["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("Deployment"), Some(true))
    );
    let dep = get(&d, "deployments", "web");
    assert_eq!(
        dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let st = &dep["status"];
    assert_eq!(
        (
            st["replicas"].as_i64(),
            st["updatedReplicas"].as_i64(),
            st["readyReplicas"].as_i64(),
            st["availableReplicas"].as_i64()
        ),
        (Some(3), Some(3), Some(3), Some(3)),
        "{st}"
    );
    assert_eq!(st["observedGeneration"], dep["metadata"]["generation"]);
    assert_eq!(
        condition(&dep, "Available")["reason"],
        "MinimumReplicasAvailable"
    );
    let p = condition(&dep, "Progressing");
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("True"), Some("NewReplicaSetAvailable"))
    );
    assert_eq!(
        p["message"],
        format!("ReplicaSet \"web-{hash}\" has successfully progressed.")
    );
}

#[test]
fn a_rolling_update_stays_within_surge_and_unavailability() {
    // The rolling-update: 10 replicas, surge 3, unavailable 2 → never more than 13
    // pods, never fewer than 8 available (k8s-semantics.md §2.3).
    let mut d = cluster(3);
    create(&mut d, deployment("web", 10, "web:1", rolling(3, 2)));
    d.advance(secs(15));
    assert_eq!(counts(&d, "web:1"), (10, 10, 10));
    set_image(&mut d, "web", "web:2");
    let (mut max_pods, mut min_ready) = (0, usize::MAX);
    for _ in 0..600 {
        d.advance(Duration::from_millis(100));
        let (pods, ready_n, _) = counts(&d, "web:2");
        max_pods = max_pods.max(pods);
        min_ready = min_ready.min(ready_n);
    }
    assert_eq!(counts(&d, "web:2"), (10, 10, 10));
    assert!(max_pods <= 13, "{max_pods} pods at once");
    assert_eq!(max_pods, 13, "the surge is used");
    assert!(min_ready >= 8, "{min_ready} ready at the lowest");
    assert_eq!(
        replica_sets(&d),
        vec![
            ("web:1".into(), 0, "1".into()),
            ("web:2".into(), 10, "2".into())
        ]
    );
    let dep = get(&d, "deployments", "web");
    assert_eq!(
        dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(
        condition(&dep, "Progressing")["reason"],
        "NewReplicaSetAvailable"
    );
    assert_eq!(dep["status"]["updatedReplicas"], 10);
    assert_eq!(dep["status"]["replicas"], 10);
}

#[test]
fn recreate_removes_every_old_pod_before_the_first_new_one() {
    // k8s-semantics.md §2.4
    let mut d = cluster(2);
    create(
        &mut d,
        deployment("web", 4, "web:1", json!({"type": "Recreate"})),
    );
    d.advance(secs(10));
    assert_eq!(counts(&d, "web:1").2, 4);
    set_image(&mut d, "web", "web:2");
    let mut overlap = false;
    for _ in 0..300 {
        d.advance(Duration::from_millis(100));
        let all = list(&d, "pods");
        let old = all
            .iter()
            .any(|p| image(p) == "web:1" && p["status"]["phase"] != "Failed");
        let new = all.iter().any(|p| image(p) == "web:2");
        overlap |= old && new;
    }
    assert!(!overlap, "old and new pods existed at once");
    assert_eq!(counts(&d, "web:2"), (4, 4, 4));
}

#[test]
fn a_rollback_reuses_the_old_replica_set_with_a_new_revision() {
    // k8s-semantics.md §2.5: the reused ReplicaSet gets max + 1 and records its old revision.
    let mut d = cluster(2);
    create(&mut d, deployment("web", 2, "web:1", json!(null)));
    d.advance(secs(10));
    set_image(&mut d, "web", "web:2");
    d.advance(secs(30));
    set_image(&mut d, "web", "web:1");
    d.advance(secs(30));
    assert_eq!(
        replica_sets(&d),
        vec![
            ("web:1".into(), 2, "3".into()),
            ("web:2".into(), 0, "2".into())
        ]
    );
    let rs1 = list(&d, "replicasets")
        .into_iter()
        .find(|rs| rs["spec"]["replicas"] == 2)
        .unwrap();
    assert_eq!(
        rs1["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(counts(&d, "web:1"), (2, 2, 2));
}

#[test]
fn history_beyond_the_limit_is_deleted_oldest_first() {
    let mut d = cluster(2);
    let mut body = deployment("web", 1, "web:1", json!(null));
    body["spec"]["revisionHistoryLimit"] = json!(1);
    create(&mut d, body);
    d.advance(secs(10));
    for image in ["web:2", "web:3"] {
        set_image(&mut d, "web", image);
        d.advance(secs(30));
    }
    assert_eq!(
        replica_sets(&d),
        vec![
            ("web:2".into(), 0, "2".into()),
            ("web:3".into(), 1, "3".into())
        ]
    );
}

#[test]
fn a_rollout_that_never_becomes_ready_exceeds_its_progress_deadline() {
    // k8s-semantics.md §2.6: Progressing False / ProgressDeadlineExceeded once
    // lastUpdateTime + progressDeadlineSeconds has passed without progress.
    let mut d = cluster(2);
    d.runtime.behaviors.insert(
        "web:broken".into(),
        Behavior {
            ready_after: secs(100_000),
            ..Default::default()
        },
    );
    let mut body = deployment("web", 2, "web:1", json!(null));
    body["spec"]["progressDeadlineSeconds"] = json!(30);
    create(&mut d, body);
    d.advance(secs(10));
    set_image(&mut d, "web", "web:broken");
    d.advance(secs(20));
    let p = condition(&get(&d, "deployments", "web"), "Progressing");
    assert_eq!(p["reason"], "ReplicaSetUpdated", "{p}");
    d.advance(secs(30));
    let dep = get(&d, "deployments", "web");
    let p = condition(&dep, "Progressing");
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("False"), Some("ProgressDeadlineExceeded")),
        "{p}"
    );
    // Nothing is rolled back: the old pods keep serving, the new ones stay unready.
    // maxUnavailable is 0 (25 % of 2, rounded down): both old pods stay, plus one surge pod.
    assert_eq!(counts(&d, "web:1").2, 2);
    assert_eq!(counts(&d, "web:broken"), (3, 2, 0));
}

#[test]
fn a_paused_deployment_holds_its_rollout_until_resumed() {
    let mut d = cluster(2);
    create(&mut d, deployment("web", 2, "web:1", json!(null)));
    d.advance(secs(10));
    edit(&mut d, "web", |o| o["spec"]["paused"] = json!(true));
    set_image(&mut d, "web", "web:2");
    d.advance(secs(20));
    assert_eq!(replica_sets(&d).len(), 1, "no rollout while paused");
    let p = condition(&get(&d, "deployments", "web"), "Progressing");
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("Unknown"), Some("DeploymentPaused"))
    );
    // Scaling still works while paused.
    edit(&mut d, "web", |o| o["spec"]["replicas"] = json!(3));
    d.advance(secs(10));
    assert_eq!(counts(&d, "web:1").2, 3);
    edit(&mut d, "web", |o| o["spec"]["paused"] = json!(false));
    d.advance(secs(40));
    assert_eq!(counts(&d, "web:2"), (3, 3, 3));
    let p = condition(&get(&d, "deployments", "web"), "Progressing");
    assert_eq!(p["reason"], "NewReplicaSetAvailable");
}

#[test]
fn min_ready_seconds_delays_availability() {
    let mut d = cluster(1);
    let mut body = deployment("web", 2, "web:1", json!(null));
    body["spec"]["minReadySeconds"] = json!(10);
    create(&mut d, body);
    d.advance(secs(5));
    let st = get(&d, "deployments", "web")["status"].clone();
    assert_eq!(
        (
            st["readyReplicas"].as_i64(),
            st["availableReplicas"].as_i64().unwrap_or(0)
        ),
        (Some(2), 0),
        "{st}"
    );
    d.advance(secs(10));
    let dep = get(&d, "deployments", "web");
    assert_eq!(dep["status"]["availableReplicas"], 2);
    assert_eq!(
        condition(&dep, "Progressing")["reason"],
        "NewReplicaSetAvailable"
    );
    let rs = &list(&d, "replicasets")[0];
    assert_eq!(rs["spec"]["minReadySeconds"], 10);
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    // k8s-semantics.md §2.5 (max-replicas annotation): a scale from 10 to 20 while two
    // ReplicaSets hold pods splits the new pods in proportion to their sizes.
    let mut d = cluster(3);
    d.runtime.behaviors.insert(
        "web:stuck".into(),
        Behavior {
            ready_after: secs(100_000),
            ..Default::default()
        },
    );
    create(&mut d, deployment("web", 10, "web:1", rolling(3, 2)));
    d.advance(secs(15));
    set_image(&mut d, "web", "web:stuck");
    d.advance(secs(10));
    // Stuck: new 5 (3 surge + 2 unavailable), old 8.
    assert_eq!(
        replica_sets(&d),
        vec![
            ("web:1".into(), 8, "1".into()),
            ("web:stuck".into(), 5, "2".into())
        ]
    );
    edit(&mut d, "web", |o| o["spec"]["replicas"] = json!(20));
    d.advance(secs(5));
    // Allowed 20 + 3 surge = 23, 10 to add, largest first: old round(8 * 23 / 13) = 14 (+6),
    // new round(5 * 23 / 13) = 9 (+4).
    let sets = replica_sets(&d);
    assert_eq!(sets.iter().map(|s| s.1).sum::<i64>(), 23, "{sets:?}");
    assert_eq!(
        sets,
        vec![
            ("web:1".into(), 14, "1".into()),
            ("web:stuck".into(), 9, "2".into())
        ]
    );
    let rs = list(&d, "replicasets");
    assert!(rs.iter().all(|r| r["metadata"]["annotations"]
        ["deployment.kubernetes.io/desired-replicas"]
        == "20"
        && r["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "23"));
}
