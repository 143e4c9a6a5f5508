//! Scheduler throughput (issue 6), in the shape of upstream scheduler_perf SchedulingBasic:
//! 5,000 nodes (4 cpu, 32 GiB, 110 pods), then 10,000 pods with requests (100m cpu, 500 MiB)
//! arriving one watch event each; the core (filters, scores, sampling, assume, bind effect)
//! runs on one thread with no HTTP and no apiserver. Each pod's watch event is decoded by the
//! scheduler's informer cache within the measured time. Three rounds; pods/s of each.
//!
//! cargo bench --bench scheduler

mod support;

use std::time::Instant;

use gantry::api::registry::by_plural;
use gantry::apiserver::{ApiEvent, EventType};
use gantry::component::{Component, Effect, Input};
use gantry::scheduler::Scheduler;
use gantry::time::Time;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

const NODES: usize = 5_000;
const PODS: usize = 10_000;
const ROUNDS: usize = 3;

fn node(i: usize) -> Value {
    // k8s: scheduler_perf config/templates/node-default.yaml
    let name = format!("node-{i}");
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                   "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"}}})
}

fn pod(i: usize, owned: bool) -> Value {
    // k8s: scheduler_perf config/templates/pod-default.yaml
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i}"), "namespace": "sched-0", "uid": format!("uid-{i}"),
                     "labels": {"app": "bench"}},
        "spec": {"schedulerName": "default-scheduler", "priority": 0,
                 "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]}});
    if owned {
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "bench", "uid": "rs-uid", "controller": true}]);
    }
    p
}

/// One round: the pods scheduled per second, and how many were bound.
fn round(seed: u64, pods: usize, owned: bool) -> (f64, usize) {
    let (nodes_res, pods_res) = (
        by_plural("", "nodes").unwrap(),
        by_plural("", "pods").unwrap(),
    );
    let mut s = Scheduler::new();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let now = Time::from_secs(1);
    s.step(
        now,
        Input::Listed {
            resource: nodes_res,
            items: (0..NODES).map(node).collect(),
            revision: 1,
        },
        &mut rng,
        &mut out,
    );
    s.step(
        now,
        Input::Listed {
            resource: pods_res,
            items: Vec::new(),
            revision: 1,
        },
        &mut rng,
        &mut out,
    );
    out.clear();
    let events: Vec<Input> = (0..pods)
        .map(|i| Input::Watched {
            resource: pods_res,
            event: ApiEvent::new(EventType::Added, pod(i, owned), 2 + i as u64),
        })
        .collect();
    let start = Instant::now();
    for input in events {
        s.step(now, input, &mut rng, &mut out);
    }
    let took = start.elapsed();
    let bound = out
        .iter()
        .filter(|e| matches!(e, Effect::Api { op, .. } if matches!(op, gantry::component::ApiOp::Bind { .. })))
        .count();
    (pods as f64 / took.as_secs_f64(), bound)
}

fn main() {
    println!(
        "scheduler: SchedulingBasic shape, {NODES} nodes, {PODS} pods, one thread, {ROUNDS} rounds"
    );
    println!("machine: {}", support::machine());
    println!("| workload | round | pods | bound | pods/s |");
    println!("|---|---:|---:|---:|---:|");
    for (label, pods, owned) in [
        ("SchedulingBasic", PODS, false),
        // Pods of one ReplicaSet: the system default topology spread constraints apply.
        ("owned by one ReplicaSet (default spread)", PODS / 10, true),
    ] {
        for r in 0..ROUNDS {
            let (rate, bound) = round(r as u64 + 1, pods, owned);
            println!("| {label} | {} | {pods} | {bound} | {rate:.0} |", r + 1);
        }
    }
}
