//! The node lifecycle controller with kubelets that stop heartbeating (zero-latency test host):
//! k8s-semantics.md §3.2, §3.5.

use std::time::Duration;

use gantry::api::registry::by_plural;
use gantry::apiserver::ListOptions;
use gantry::component::ApiOp;
use gantry::controllers::nodelifecycle::NodeLifecycleController;
use gantry::controllers::podgc::PodGc;
use gantry::controllers::replicaset::ReplicaSetController;
use gantry::controllers::tainteviction::TaintEvictionController;
use gantry::kubelet::{Kubelet, NodeConfig};
use gantry::scheduler::Scheduler;
use gantry::testkit::{Driver, EPOCH};
use serde_json::{json, Value};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cluster(nodes: &[(&str, &str)]) -> Driver {
    let mut d = Driver::new(5);
    for (name, zone) in nodes {
        let mut c = NodeConfig::new(name);
        c.labels
            .insert("topology.kubernetes.io/zone".into(), zone.to_string());
        d.add(Box::new(Kubelet::new(c)));
    }
    d.add(Box::new(Scheduler::new()));
    d.add(Box::new(ReplicaSetController::new()));
    d.add(Box::new(NodeLifecycleController::new()));
    d.add(Box::new(TaintEvictionController::new()));
    d.add(Box::new(PodGc::default()));
    d
}

fn node(d: &Driver, name: &str) -> Value {
    futures::FutureExt::now_or_never(d.api.get(by_plural("", "nodes").unwrap(), None, name))
        .unwrap()
        .unwrap()
}

fn ready(n: &Value) -> String {
    n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn taints(n: &Value) -> Vec<String> {
    n["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t["key"].as_str().unwrap(),
                        t["effect"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Advances one second at a time until `cond` holds; returns the seconds since the epoch.
fn until(d: &mut Driver, limit: u64, cond: impl Fn(&Driver) -> bool) -> u64 {
    for _ in 0..limit {
        if cond(d) {
            return d.now.since(EPOCH).as_secs();
        }
        d.advance(secs(1));
    }
    panic!("condition not met within {limit} s");
}

#[test]
fn a_silent_node_goes_unknown_after_the_grace_period_and_is_tainted() {
    let mut d = cluster(&[("n1", "a"), ("n2", "a"), ("n3", "a")]);
    d.client(ApiOp::Create {
        resource: by_plural("apps", "replicasets").unwrap(),
        namespace: Some("default".into()),
        body: json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "server"}]}}}}),
    })
    .unwrap();
    d.advance(secs(15)); // last lease renewal of n2 at 10 s
    d.stop("kubelet/n2");
    let unknown_at = until(&mut d, 120, |d| ready(&node(d, "n2")) == "Unknown");
    // k8s: 50 s grace after the last observed heartbeat, checked every 5 s: 60 to 65 s.
    assert!((60..=66).contains(&unknown_at), "Unknown at {unknown_at} s");
    assert_eq!(ready(&node(&d, "n1")), "True");
    let t = taints(&node(&d, "n2"));
    assert!(
        t.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string()),
        "{t:?}"
    );
    // The first node of a zone is tainted NoExecute at once (rate limit 1 per 10 s).
    d.advance(secs(5));
    let t = taints(&node(&d, "n2"));
    assert!(
        t.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()),
        "{t:?}"
    );
    // Its pods are no longer Ready.
    let pods = futures::FutureExt::now_or_never(d.api.list(
        by_plural("", "pods").unwrap(),
        None,
        &ListOptions::default(),
    ))
    .unwrap()
    .unwrap()
    .0;
    let on_n2: Vec<&Value> = pods
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "n2")
        .collect();
    assert!(!on_n2.is_empty());
    for p in on_n2 {
        let r = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(r["status"], "False", "{p}");
    }
}

#[test]
fn no_noexecute_taints_when_every_zone_is_down() {
    let mut d = cluster(&[("n1", "a"), ("n2", "b")]);
    d.advance(secs(5));
    d.stop("kubelet/n1");
    d.stop("kubelet/n2");
    d.advance(secs(120));
    for n in ["n1", "n2"] {
        let node = node(&d, n);
        assert_eq!(ready(&node), "Unknown");
        let t = taints(&node);
        assert!(
            t.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string()),
            "{t:?}"
        );
        assert!(
            !t.iter().any(|t| t.ends_with(":NoExecute")),
            "control-plane partition protection: {t:?}"
        );
    }
}

#[test]
fn noexecute_tainting_is_rate_limited_per_zone() {
    let names: Vec<String> = (1..=6).map(|i| format!("n{i}")).collect();
    let nodes: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "a")).collect();
    let mut d = cluster(&nodes);
    d.advance(secs(5));
    // Two of six nodes go silent: the zone stays Normal (not > 2 not-ready).
    d.stop("kubelet/n1");
    d.stop("kubelet/n2");
    let tainted_at = |d: &Driver, n: &str| {
        taints(&node(d, n))
            .iter()
            .any(|t| t == "node.kubernetes.io/unreachable:NoExecute")
    };
    let first = until(&mut d, 200, |d| tainted_at(d, "n1") || tainted_at(d, "n2"));
    let second = until(&mut d, 200, |d| tainted_at(d, "n1") && tainted_at(d, "n2"));
    // k8s: --node-eviction-rate 0.1 nodes/s per zone
    assert!(second - first >= 10, "tainted at {first} s and {second} s");
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

/// reference §3.5: the node failure timeline end to end.
#[test]
fn pods_of_a_lost_node_are_evicted_after_300_seconds_and_replaced() {
    let mut d = cluster(&[("n1", "a"), ("n2", "a"), ("n3", "a")]);
    d.client(ApiOp::Create {
        resource: by_plural("apps", "replicasets").unwrap(),
        namespace: Some("default".into()),
        body: json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "server"}]}}}}),
    })
    .unwrap();
    d.advance(secs(15));
    let lost: Vec<String> = pods(&d)
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "n2")
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!lost.is_empty());
    d.stop("kubelet/n2");
    let tainted = until(&mut d, 200, |d| {
        taints(&node(d, "n2"))
            .iter()
            .any(|t| t == "node.kubernetes.io/unreachable:NoExecute")
    });
    // k8s: DefaultTolerationSeconds gives every pod 300 s on an unreachable node.
    let evicted = until(&mut d, 400, |d| {
        pods(d).iter().any(|p| {
            lost.contains(&p["metadata"]["name"].as_str().unwrap().to_string())
                && p["metadata"]["deletionTimestamp"].is_string()
        })
    });
    assert!(
        (tainted + 299..=tainted + 301).contains(&evicted),
        "tainted at {tainted} s, evicted at {evicted} s"
    );
    d.advance(secs(5));
    let all = pods(&d);
    let running_elsewhere = all
        .iter()
        .filter(|p| {
            p["spec"]["nodeName"] != "n2"
                && p["status"]["phase"] == "Running"
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .count();
    assert_eq!(running_elsewhere, 6, "replacements run on n1 and n3");
    // Without a kubelet to confirm, the old pods stay Terminating.
    let terminating = all
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "n2" && p["metadata"]["deletionTimestamp"].is_string())
        .count();
    assert_eq!(terminating, lost.len());
    let disruption = all
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "n2")
        .all(|p| {
            p["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "DisruptionTarget" && c["reason"] == "DeletionByTaintManager")
        });
    assert!(disruption);
}

#[test]
fn podgc_removes_the_pods_of_a_deleted_node_after_quarantine() {
    let mut d = cluster(&[("n1", "a"), ("n2", "a")]);
    d.client(ApiOp::Create {
        resource: by_plural("apps", "replicasets").unwrap(),
        namespace: Some("default".into()),
        body: json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "server"}]}}}}),
    })
    .unwrap();
    d.stop("kubelet/n2");
    let on_n2 = pods(&d)
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "n2")
        .count();
    assert!(on_n2 > 0);
    d.client(ApiOp::Delete {
        resource: by_plural("", "nodes").unwrap(),
        namespace: None,
        name: "n2".into(),
        grace_period_seconds: None,
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: None,
    })
    .unwrap();
    let deleted_node_at = d.now.since(EPOCH).as_secs();
    let gone = until(&mut d, 200, |d| {
        pods(d).iter().all(|p| p["spec"]["nodeName"] != "n2")
    });
    // k8s: noticed at a 20 s pass, deleted 40 s later (at a later pass).
    assert!(
        gone >= deleted_node_at + 40 && gone <= deleted_node_at + 81,
        "node deleted at {deleted_node_at} s, pods gone at {gone} s"
    );
    d.advance(secs(2));
    let running = pods(&d)
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count();
    assert_eq!(running, 4, "the ReplicaSet replaced them on n1");
}
