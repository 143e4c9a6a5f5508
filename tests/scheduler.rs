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
    // k8s: FitError with DefaultPreemption's PostFilter message.
    assert_eq!(
        cond["message"],
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
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
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
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

fn priority_class(name: &str, value: i64, global_default: bool) -> Value {
    json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
           "value": value, "globalDefault": global_default})
}

fn create(
    d: &mut Driver,
    plural: (&str, &str),
    ns: Option<&str>,
    body: Value,
) -> Result<Value, u16> {
    d.client(ApiOp::Create {
        resource: by_plural(plural.0, plural.1).unwrap(),
        namespace: ns.map(String::from),
        body,
    })
    .map_err(|e| e.code)
}

fn bare_pod(name: &str, cpu: &str, spec_extra: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                                  "resources": {"requests": {"cpu": cpu}}}]}});
    for (k, v) in spec_extra.as_object().unwrap() {
        p["spec"][k] = v.clone();
    }
    p
}

/// k8s: plugin/pkg/admission/priority — the class sets spec.priority; unknown classes and a
/// second globalDefault are forbidden; the system classes exist from the start.
#[test]
fn priority_classes_set_pod_priority_at_admission() {
    let mut d = cluster(5, &[]);
    let pc = ("scheduling.k8s.io", "priorityclasses");
    let got = create(&mut d, pc, None, priority_class("high", 1000, false)).unwrap();
    assert_eq!(got["preemptionPolicy"], "PreemptLowerPriority", "defaulted");
    let p = create(
        &mut d,
        ("", "pods"),
        Some("default"),
        bare_pod("a", "1", json!({"priorityClassName": "high"})),
    )
    .unwrap();
    assert_eq!(
        (
            p["spec"]["priority"].as_i64(),
            p["spec"]["preemptionPolicy"].as_str()
        ),
        (Some(1000), Some("PreemptLowerPriority"))
    );
    let p = create(
        &mut d,
        ("", "pods"),
        Some("default"),
        bare_pod("b", "1", json!({})),
    )
    .unwrap();
    assert_eq!(p["spec"]["priority"], 0, "no class and no default");
    let p = create(
        &mut d,
        ("", "pods"),
        Some("default"),
        bare_pod(
            "c",
            "1",
            json!({"priorityClassName": "system-node-critical"}),
        ),
    )
    .unwrap();
    assert_eq!(p["spec"]["priority"], 2_000_001_000);
    let cases = [
        (
            bare_pod("d", "1", json!({"priorityClassName": "nope"})),
            403,
        ),
        (
            bare_pod(
                "e",
                "1",
                json!({"priorityClassName": "high", "priority": 7}),
            ),
            403,
        ),
    ];
    for (body, code) in cases {
        assert_eq!(
            create(&mut d, ("", "pods"), Some("default"), body).err(),
            Some(code)
        );
    }
    create(&mut d, pc, None, priority_class("default-prio", 10, true)).unwrap();
    let p = create(
        &mut d,
        ("", "pods"),
        Some("default"),
        bare_pod("f", "1", json!({})),
    )
    .unwrap();
    assert_eq!(
        (
            p["spec"]["priority"].as_i64(),
            p["spec"]["priorityClassName"].as_str()
        ),
        (Some(10), Some("default-prio"))
    );
    assert_eq!(
        create(&mut d, pc, None, priority_class("another", 5, true)).err(),
        Some(403)
    );
    assert_eq!(
        create(
            &mut d,
            pc,
            None,
            priority_class("too-high", 2_000_000_000, false)
        )
        .err(),
        Some(422)
    );
    assert_eq!(
        create(&mut d, pc, None, priority_class("system-mine", 5, false)).err(),
        Some(422)
    );
}

/// k8s: DefaultPreemption — a full node, a high-priority pod: the lowest-priority pods go
/// (gracefully), the preemptor is nominated, and it is bound once they are gone.
#[test]
fn a_high_priority_pod_preempts_lower_ones() {
    let mut d = cluster(6, &[node("n1", "2", "4Gi", json!([]))]);
    let pc = ("scheduling.k8s.io", "priorityclasses");
    create(&mut d, pc, None, priority_class("low", 10, false)).unwrap();
    create(&mut d, pc, None, priority_class("mid", 20, false)).unwrap();
    create(&mut d, pc, None, priority_class("high", 1000, false)).unwrap();
    for (name, class) in [("low-1", "low"), ("mid-1", "mid")] {
        create(
            &mut d,
            ("", "pods"),
            Some("default"),
            bare_pod(name, "1", json!({"priorityClassName": class})),
        )
        .unwrap();
    }
    assert_eq!(placement(&d), BTreeMap::from([("n1".into(), 2)]));
    create(
        &mut d,
        ("", "pods"),
        Some("default"),
        bare_pod("vip", "1", json!({"priorityClassName": "high"})),
    )
    .unwrap();
    let by_name = |d: &Driver| -> BTreeMap<String, Value> {
        pods(d)
            .into_iter()
            .map(|p| (p["metadata"]["name"].as_str().unwrap().to_string(), p))
            .collect()
    };
    let now = by_name(&d);
    assert!(
        now["low-1"]["metadata"]["deletionTimestamp"].is_string(),
        "the low pod is the victim"
    );
    assert!(now["mid-1"]["metadata"]["deletionTimestamp"].is_null());
    let target = now["low-1"]["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "DisruptionTarget");
    assert!(target, "victims get DisruptionTarget");
    assert_eq!(now["vip"]["status"]["nominatedNodeName"], "n1");
    assert!(
        now["vip"]["spec"]["nodeName"].is_null(),
        "not bound while the victim terminates"
    );
    // The kubelet would finish the graceful deletion; here it is forced.
    d.client(ApiOp::Delete {
        resource: by_plural("", "pods").unwrap(),
        namespace: Some("default".into()),
        name: "low-1".into(),
        grace_period_seconds: Some(0),
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: None,
    })
    .unwrap();
    d.advance(Duration::from_secs(5));
    let now = by_name(&d);
    assert!(!now.contains_key("low-1"));
    assert_eq!(now["vip"]["spec"]["nodeName"], "n1", "{:#?}", d.log);
    assert_eq!(now["mid-1"]["spec"]["nodeName"], "n1");
}

/// k8s: InterPodAffinity — required anti-affinity per hostname puts one replica per node; the
/// fourth waits with upstream's message. Preferred node affinity steers a second workload.
#[test]
fn pod_anti_affinity_and_preferred_node_affinity() {
    let mut d = cluster(
        8,
        &[
            node("n1", "4", "8Gi", json!([])),
            node("n2", "4", "8Gi", json!([])),
            node("n3", "4", "8Gi", json!([])),
        ],
    );
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    create_rs(&mut d, rs("db", 4, "100m", anti));
    let got = placement(&d);
    assert_eq!(got.get(""), Some(&1), "{got:?}");
    assert!(["n1", "n2", "n3"].iter().all(|n| got[*n] == 1), "{got:?}");
    let pending = pods(&d)
        .into_iter()
        .find(|p| p["spec"]["nodeName"].is_null())
        .unwrap();
    assert_eq!(
        pending["status"]["conditions"][0]["message"],
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
    let prefer = json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}}]}}});
    create_rs(&mut d, rs("web", 3, "100m", prefer));
    let web: Vec<String> = pods(&d)
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        web,
        vec!["n2", "n2", "n2"],
        "weight 2 × 100 outweighs the spread scores"
    );
}
