//! Property tests of self-healing: random small clusters, random fault schedules (node crashes
//! and restarts, partitions, store outages and slowdowns, apiserver restarts, lossy links,
//! container crashes), ReplicaSet deletions (background, foreground, orphan) and perhaps a
//! Deployment rollout among them, then a quiet period. After it, every ReplicaSet left has
//! exactly spec.replicas pods Running and Ready on Ready nodes; a deleted one is gone (unless in
//! the foreground, behind pods stuck on a node that never came back) and, unless orphaned, has
//! no pod left that is not being deleted; no pod that is not being deleted names a controller
//! that is gone; and the Deployment has exactly one ReplicaSet with replicas, all its pods on
//! the current template (k8s-semantics.md §9). Throughout, the simulator's invariants hold (no
//! pod bound beyond a node's allocatable, no pod bound to two nodes, no stale write wins, the
//! garbage collector deletes nothing with a live owner, an owner deleted in the foreground goes
//! after its blocking dependents), and unless messages were lost no ReplicaSet ever has more
//! than spec.replicas pods that are not terminating, nor a Deployment more than replicas +
//! maxSurge (a lost create answer makes Kubernetes over-create too, briefly). A failure writes
//! the shrunk case as a scenario file that `gantry-sim run` replays, and prints its path and
//! seed.
//!
//! GANTRY_PROPTEST_CASES sets the number of cases (default 256).

use std::fmt::Write as _;
use std::path::Path;

use gantry_sim::scenario;
use gantry_sim::sim::Sim;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};

#[derive(Clone, Debug)]
enum Fault {
    /// Kill node `n` at `at` s, restart it `back` s later (or never).
    Crash {
        node: usize,
        at: u64,
        back: Option<u64>,
    },
    /// Cut node `n` off at `at` s for `len` s.
    Partition {
        node: usize,
        at: u64,
        len: u64,
    },
    StoreOutage {
        at: u64,
        len: u64,
    },
    /// Every request waits `latency_ms` longer on the store for `len` s.
    StoreSlow {
        at: u64,
        len: u64,
        latency_ms: u64,
    },
    /// The apiserver is down for `down` s; every watch breaks.
    ApiserverRestart {
        at: u64,
        down: u64,
    },
    /// Every link loses `percent` % of its messages for `len` s.
    Lossy {
        at: u64,
        len: u64,
        percent: u32,
    },
    /// The containers of `count` pods of ReplicaSet `rs` crash.
    ContainerCrash {
        rs: usize,
        at: u64,
        count: usize,
    },
    /// ReplicaSet `rs` is deleted with propagation policy `POLICIES[policy]`.
    Delete {
        rs: usize,
        at: u64,
        policy: usize,
    },
}

const POLICIES: [&str; 3] = ["Background", "Foreground", "Orphan"];

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    nodes: usize,
    replicasets: Vec<u32>,
    /// A Deployment's replicas, and when (if ever) its image changes.
    deployment: Option<(u32, Option<u64>)>,
    faults: Vec<Fault>,
}

/// After the last fault: Unknown (55 s) + eviction (300 s) + a kubelet's 5-minute status
/// report + replacements, with room to spare.
const QUIET: u64 = 900;

fn fault(nodes: usize) -> impl Strategy<Value = Fault> {
    prop_oneof![
        (0..nodes, 20..200u64, prop::option::of(10..150u64))
            .prop_map(|(node, at, back)| Fault::Crash { node, at, back }),
        (0..nodes, 20..200u64, 5..120u64).prop_map(|(node, at, len)| Fault::Partition {
            node,
            at,
            len
        }),
        (20..200u64, 2..30u64).prop_map(|(at, len)| Fault::StoreOutage { at, len }),
        (20..200u64, 5..60u64, 50..2000u64).prop_map(|(at, len, latency_ms)| Fault::StoreSlow {
            at,
            len,
            latency_ms
        }),
        (20..200u64, 0..20u64).prop_map(|(at, down)| Fault::ApiserverRestart { at, down }),
        (20..200u64, 5..60u64, 1..20u32).prop_map(|(at, len, percent)| Fault::Lossy {
            at,
            len,
            percent
        }),
        (0..2usize, 20..200u64, 1..3usize).prop_map(|(rs, at, count)| Fault::ContainerCrash {
            rs,
            at,
            count
        }),
        (0..2usize, 20..200u64, 0..3usize).prop_map(|(rs, at, policy)| Fault::Delete {
            rs,
            at,
            policy
        }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (2..=4usize).prop_flat_map(|nodes| {
        (
            any::<u64>(),
            Just(nodes),
            prop::collection::vec(1..=4u32, 1..=2),
            prop::option::of((1..=4u32, prop::option::of(20..200u64))),
            prop::collection::vec(fault(nodes), 0..=3),
        )
            .prop_map(|(seed, nodes, replicasets, deployment, faults)| Case {
                seed,
                nodes,
                replicasets,
                deployment,
                faults,
            })
    })
}

fn scenario_yaml(c: &Case) -> String {
    let mut steps: Vec<(u64, String)> = Vec::new();
    let mut dead_at_end = vec![false; c.nodes];
    let mut last = 0;
    let mut lossy = false;
    for f in &c.faults {
        match *f {
            Fault::Crash { node, at, back } => {
                // n1 always comes back: with every node gone for good nothing can heal, and
                // Kubernetes stops evicting when every zone is down (by design).
                let back = if node == 0 { back.or(Some(60)) } else { back };
                steps.push((at, format!("kill: n{}", node + 1)));
                match back {
                    Some(b) => {
                        steps.push((at + b, format!("restart: n{}", node + 1)));
                        last = last.max(at + b);
                    }
                    None => {
                        dead_at_end[node] = true;
                        last = last.max(at);
                    }
                }
            }
            Fault::Partition { node, at, len } => {
                steps.push((at, format!("partition: [n{}]", node + 1)));
                steps.push((at + len, "heal: true".into()));
                last = last.max(at + len);
            }
            Fault::StoreOutage { at, len } => {
                steps.push((at, format!("storeOutage: {len}s")));
                last = last.max(at + len);
            }
            Fault::StoreSlow {
                at,
                len,
                latency_ms,
            } => {
                steps.push((
                    at,
                    format!("storeSlow: {{duration: {len}s, latency: {latency_ms}ms}}"),
                ));
                last = last.max(at + len);
            }
            Fault::ApiserverRestart { at, down } => {
                steps.push((at, format!("restartApiserver: {down}s")));
                last = last.max(at + down);
            }
            Fault::Lossy { at, len, percent } => {
                lossy = true;
                steps.push((
                    at,
                    format!("network: {{drop: {}}}", f64::from(percent) / 100.0),
                ));
                steps.push((at + len, "network: {drop: 0}".into()));
                last = last.max(at + len);
            }
            Fault::ContainerCrash { rs, at, count } => {
                let rs = rs % c.replicasets.len();
                steps.push((at, format!("crash: {{pods: app=rs{rs}, count: {count}}}")));
                last = last.max(at);
            }
            Fault::Delete { .. } => {}
        }
    }
    // Deletes, once per ReplicaSet, while the apiserver and the store answer (else the delete
    // itself fails, which is not what is being tested).
    let down: Vec<(u64, u64)> = c
        .faults
        .iter()
        .filter_map(|f| match *f {
            Fault::StoreOutage { at, len } => Some((at, at + len)),
            Fault::ApiserverRestart { at, down } => Some((at, at + down)),
            _ => None,
        })
        .collect();
    let mut deleted: Vec<Option<&str>> = vec![None; c.replicasets.len()];
    for f in &c.faults {
        if let Fault::Delete { rs, mut at, policy } = *f {
            let rs = rs % c.replicasets.len();
            if deleted[rs].is_some() {
                continue;
            }
            while let Some(&(_, end)) = down.iter().find(|(s, e)| (*s..=*e).contains(&at)) {
                at = end + 1;
            }
            deleted[rs] = Some(POLICIES[policy]);
            steps.push((
                at,
                format!(
                    "delete: {{replicaset: rs{rs}, propagationPolicy: {}}}",
                    POLICIES[policy]
                ),
            ));
            last = last.max(at);
        }
    }
    if let Some((_, Some(at))) = c.deployment {
        steps.push((at, "setImage: {deployment: dep, image: server:2}".into()));
        last = last.max(at);
    }
    steps.sort_by_key(|(t, _)| *t);
    // A restart only brings back a node that is down; a kill of a node already down is a no-op.
    let end = last + QUIET;
    let mut y = String::new();
    writeln!(
        y,
        "# generated by sim/tests/self_healing.rs\nname: self-healing\nseed: {}\nduration: {end}s",
        c.seed
    )
    .unwrap();
    writeln!(y, "cluster:\n  nodes:\n    - count: {}\n      namePrefix: n\n      cpu: \"16\"\n      memory: 32Gi", c.nodes).unwrap();
    writeln!(y, "workload:").unwrap();
    for (i, r) in c.replicasets.iter().enumerate() {
        writeln!(
            y,
            "  - manifest:\n      apiVersion: apps/v1\n      kind: ReplicaSet\n      metadata: {{name: rs{i}}}\n      spec:\n        replicas: {r}\n        selector: {{matchLabels: {{app: rs{i}}}}}\n        template:\n          metadata: {{labels: {{app: rs{i}}}}}\n          spec: {{containers: [{{name: c, image: server, resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}}}]}}"
        )
        .unwrap();
    }
    if let Some((r, _)) = c.deployment {
        writeln!(
            y,
            "  - manifest:\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata: {{name: dep}}\n      spec:\n        replicas: {r}\n        selector: {{matchLabels: {{app: dep}}}}\n        template:\n          metadata: {{labels: {{app: dep}}}}\n          spec: {{containers: [{{name: c, image: server, resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}}}]}}"
        )
        .unwrap();
    }
    if !steps.is_empty() {
        writeln!(y, "timeline:").unwrap();
        for (t, action) in &steps {
            writeln!(y, "  - at: {t}s\n    {action}").unwrap();
        }
    }
    writeln!(y, "expectations:").unwrap();
    let settled = end - 5;
    for (i, r) in c.replicasets.iter().enumerate() {
        if !lossy {
            writeln!(
                y,
                "  - always:\n      runningPods: app=rs{i}\n      atMost: {r}"
            )
            .unwrap();
        }
        let window = format!("after: {settled}s, by: {end}s");
        match deleted[i] {
            None => {
                writeln!(
                    y,
                    "  - eventually: {{{window}, runningPods: app=rs{i}, count: {r}}}"
                )
                .unwrap();
                writeln!(
                    y,
                    "  - eventually: {{{window}, replicaset: rs{i}, readyReplicas: {r}}}"
                )
                .unwrap();
            }
            Some(policy) => {
                // The owner goes, unless it waits (foreground) for pods stuck terminating on a
                // node that never comes back, as in Kubernetes.
                if policy != "Foreground" || !dead_at_end.contains(&true) {
                    writeln!(
                        y,
                        "  - eventually: {{{window}, replicaset: rs{i}, exists: false}}"
                    )
                    .unwrap();
                }
                if policy != "Orphan" {
                    // Its pods are all being deleted, or gone.
                    writeln!(
                        y,
                        "  - eventually: {{{window}, runningPods: app=rs{i}, atMost: 0}}"
                    )
                    .unwrap();
                }
            }
        }
    }
    if let Some((r, _)) = c.deployment {
        // k8s §2.2: the ReplicaSets' sizes never exceed replicas + maxSurge (25 %, rounded up).
        if !lossy {
            let surge = r.div_ceil(4);
            writeln!(
                y,
                "  - always:\n      runningPods: app=dep\n      atMost: {}",
                r + surge
            )
            .unwrap();
        }
        writeln!(y, "  - eventually:\n      after: {}s\n      by: {end}s\n      runningPods: app=dep\n      count: {r}", end - 5).unwrap();
        writeln!(y, "  - eventually:\n      after: {}s\n      by: {end}s\n      deployment: dep\n      replicas: {r}\n      updatedReplicas: {r}\n      availableReplicas: {r}\n      activeReplicaSets: 1", end - 5).unwrap();
    }
    // GC: no pod outlives its controller without being deleted (orphans have no owner left).
    writeln!(
        y,
        "  - eventually: {{{}, pods: \"\", owner: gone, count: 0}}",
        format_args!("after: {settled}s, by: {end}s")
    )
    .unwrap();
    for (n, dead) in dead_at_end.iter().enumerate() {
        if !dead {
            writeln!(y, "  - eventually:\n      after: {}s\n      by: {end}s\n      node: n{}\n      ready: \"True\"", end - 5, n + 1).unwrap();
        }
    }
    y
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let yaml = scenario_yaml(c);
    let loaded = scenario::parse(&yaml, Path::new("generated.yaml"))
        .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
    let report = Sim::new(loaded, c.seed).keep_trace(false).run();
    for v in &report.violations {
        prop_assert!(false, "invariant violated: {v}");
    }
    for v in &report.verdicts {
        prop_assert!(v.passed, "{} ({})", v.description, v.detail);
    }
    Ok(())
}

#[test]
fn clusters_heal_after_random_faults() {
    let cases = std::env::var("GANTRY_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    match runner.run(&case(), |c| check(&c)) {
        Ok(()) => {}
        Err(TestError::Fail(reason, c)) => {
            let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("self-healing-failure.yaml");
            std::fs::write(&path, scenario_yaml(&c)).unwrap();
            panic!(
                "self-healing failed (seed {}): {reason}\nthe shrunk case is in {}; replay it with: gantry-sim run {}",
                c.seed,
                path.display(),
                path.display()
            );
        }
        Err(e) => panic!("{e}"),
    }
}
