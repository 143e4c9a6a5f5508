//! The scheduler core with the ReplicaSet controller, against the real apiserver core
//! (zero-latency test host): k8s-semantics.md §5.

use std::collections::BTreeMap;
use std::time::Duration;

use gantry::api::registry::by_plural;
use gantry::apiserver::{ListOptions, Part};
use gantry::component::ApiOp;
use gantry::controllers::replicaset::ReplicaSetController;
use gantry::scheduler::Scheduler;
use gantry::testkit::Driver;
use serde_json::{json, Value};

fn node(name: &str, cpu: &str, memory: &str, taints: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
           "spec": {"taints": taints},
           "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                      "capacity": {"cpu": cpu, "memory": memory, "pods": "110"}}})
}

fn rs(name: &str, replicas: i64, cpu: &str, extra_spec: Value) -> Value {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox",
                                          "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "default"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}})
}

fn cluster(seed: u64, nodes: &[Value]) -> Driver {
    let mut d = Driver::new(seed);
    for n in nodes {
        d.client(ApiOp::Create {
            resource: by_plural("", "nodes").unwrap(),
            namespace: None,
            body: n.clone(),
        })
        .unwrap();
    }
    d.add(Box::new(Scheduler::new()));
    d.add(Box::new(ReplicaSetController::new()));
    d
}

fn create_rs(d: &mut Driver, body: Value) {
    d.client(ApiOp::Create {
        resource: by_plural("apps", "replicasets").unwrap(),
        namespace: Some("default".into()),
        body,
    })
    .unwrap();
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

/// node → number of pods bound there ("" for unbound).
fn placement(d: &Driver) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in pods(d) {
        *out.entry(p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    out
}

#[test]
fn spreads_by_least_allocated_and_respects_capacity() {
    let mut d = cluster(
        1,
        &[
            node("n1", "2", "4Gi", json!([])),
            node("n2", "2", "4Gi", json!([])),
            node("n3", "2", "4Gi", json!([])),
        ],
    );
    create_rs(&mut d, rs("web", 6, "500m", json!({})));
    let got = placement(&d);
    assert_eq!(
        got,
        BTreeMap::from([("n1".into(), 2), ("n2".into(), 2), ("n3".into(), 2)]),
        "LeastAllocated spreads evenly"
    );
    // 6 more at 500m fit exactly (2 cpu per node); a 13th does not.
    create_rs(&mut d, rs("more", 7, "500m", json!({})));
    let got = placement(&d);
    assert_eq!(got.get(""), Some(&1), "{got:?}");
    assert!(["n1", "n2", "n3"].iter().all(|n| got[*n] == 4), "{got:?}");
    let pending = pods(&d)
        .into_iter()
        .find(|p| p["spec"]["nodeName"].is_null())
        .unwrap();
    let cond = pending["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .unwrap();
    assert_eq!(
        (cond["status"].as_str(), cond["reason"].as_str()),
        (Some("False"), Some("Unschedulable"))
    );
    assert_eq!(
        cond["message"],
        "0/3 nodes are available: 3 Insufficient cpu."
    );
}

#[test]
fn taints_and_node_selectors_filter_nodes() {
    let noschedule = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    let mut d = cluster(
        2,
        &[
            node("plain", "4", "8Gi", json!([])),
            node("gpu", "4", "8Gi", noschedule),
        ],
    );
    create_rs(&mut d, rs("web", 4, "100m", json!({})));
    assert_eq!(
        placement(&d),
        BTreeMap::from([("plain".into(), 4)]),
        "untolerated taint keeps them off gpu"
    );

    let tolerate = json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
                          "nodeSelector": {"kubernetes.io/hostname": "gpu"}});
    create_rs(&mut d, rs("train", 2, "100m", tolerate));
    assert_eq!(placement(&d).get("gpu"), Some(&2));

    create_rs(
        &mut d,
        rs("lost", 1, "100m", json!({"nodeSelector": {"zone": "mars"}})),
    );
    let pending = pods(&d)
        .into_iter()
        .find(|p| p["spec"]["nodeName"].is_null())
        .unwrap();
    let msg = pending["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    // k8s: each node reports its first failing filter (TaintToleration runs before NodeAffinity).
    assert_eq!(
        msg,
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}."
    );
}

#[test]
fn unschedulable_pods_are_placed_when_a_node_appears() {
    let mut d = cluster(3, &[node("small", "1", "1Gi", json!([]))]);
    create_rs(&mut d, rs("big", 1, "2", json!({})));
    assert_eq!(placement(&d), BTreeMap::from([("".into(), 1)]));
    d.client(ApiOp::Create {
        resource: by_plural("", "nodes").unwrap(),
        namespace: None,
        body: node("large", "8", "16Gi", json!([])),
    })
    .unwrap();
    // The node event moves the pod back once its 1 s backoff has passed.
    d.advance(Duration::from_secs(2));
    assert_eq!(
        placement(&d),
        BTreeMap::from([("large".into(), 1)]),
        "{:#?}",
        d.log
    );
}

#[test]
fn cordoned_nodes_take_no_new_pods() {
    let mut d = cluster(
        4,
        &[
            node("a", "4", "8Gi", json!([])),
            node("b", "4", "8Gi", json!([])),
        ],
    );
    let mut b =
        futures::FutureExt::now_or_never(d.api.get(by_plural("", "nodes").unwrap(), None, "b"))
            .unwrap()
            .unwrap();
    b["spec"]["unschedulable"] = json!(true);
    d.client(ApiOp::Update {
        resource: by_plural("", "nodes").unwrap(),
        namespace: None,
        name: "b".into(),
        body: b,
        part: Part::Main,
    })
    .unwrap();
    create_rs(&mut d, rs("web", 3, "100m", json!({})));
    assert_eq!(placement(&d), BTreeMap::from([("a".into(), 3)]));
}

#[test]
fn the_same_seed_places_the_same_way() {
    let nodes: Vec<Value> = (1..=5)
        .map(|i| node(&format!("n{i}"), "4", "8Gi", json!([])))
        .collect();
    let run = |seed| {
        let mut d = cluster(seed, &nodes);
        create_rs(&mut d, rs("web", 7, "100m", json!({})));
        let mut bound: Vec<(String, String)> = pods(&d)
            .iter()
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["spec"]["nodeName"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        bound.sort();
        bound
    };
    assert_eq!(run(7), run(7));
    let spread: BTreeMap<String, usize> =
        run(7).into_iter().fold(BTreeMap::new(), |mut m, (_, n)| {
            *m.entry(n).or_default() += 1;
            m
        });
    assert!(spread.values().all(|c| *c <= 2), "{spread:?}");
}
