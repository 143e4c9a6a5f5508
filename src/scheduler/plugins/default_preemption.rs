//! DefaultPreemption (PostFilter): when no node fits, find nodes where evicting lower-priority
//! pods would let the pod fit, choose the victims on each (the fewest, most important kept),
//! and pick one node in upstream's order. PodDisruptionBudgets are not considered (gantry has
//! none; docs/decisions.md).
//! k8s: pkg/scheduler/framework/plugins/defaultpreemption, framework/preemption/preemption.go
//! (reference §5.4, §5.5)

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use rand::{Rng, RngCore};

use super::{CycleState, FilterPlugin};
use crate::scheduler::node_info::NodeInfo;

/// k8s: minCandidateNodesPercentage 10, minCandidateNodesAbsolute 100
pub const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
pub const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// When the pod started (or was created): victims that started later are preferred.
fn start_time(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    let t = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref());
    t.map(|t| t.0)
}

/// k8s: PodEligibleToPreemptOthers — not with preemptionPolicy Never, and not while a previous
/// preemption's victims on the nominated node are still terminating. The error is upstream's
/// message.
pub fn eligible(pod: &Pod, nominated_node: Option<&NodeInfo>) -> Result<(), String> {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref())
        == Some("Never")
    {
        return Err("not eligible due to preemptionPolicy=Never.".into());
    }
    let p = priority(pod);
    let waiting = nominated_node.is_some_and(|node| {
        node.pods
            .values()
            .any(|v| v.pod.metadata.deletion_timestamp.is_some() && priority(&v.pod) < p)
    });
    if waiting {
        return Err("not eligible due to a terminating pod on the nominated node.".into());
    }
    Ok(())
}

/// k8s: GetOffsetAndNumCandidates
pub fn num_candidates(nodes: usize) -> usize {
    (nodes * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
        .max(MIN_CANDIDATE_NODES_ABSOLUTE)
        .min(nodes)
}

/// A node where preemption helps, and who would go (most important first).
#[derive(Clone, Debug)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<(String, Arc<Pod>)>,
}

fn fits(filters: &[Box<dyn FilterPlugin>], pod: &Pod, state: &CycleState, node: &NodeInfo) -> bool {
    filters.iter().all(|f| f.filter(pod, state, node).is_ok())
}

/// k8s: SelectVictimsOnNode — remove every lower-priority pod; if the pod then fits, reprieve
/// them one by one, most important first (higher priority, then earlier start), keeping each
/// that still leaves room.
pub fn select_victims(
    filters: &[Box<dyn FilterPlugin>],
    pod: &Pod,
    state: &CycleState,
    node: &NodeInfo,
) -> Option<Vec<(String, Arc<Pod>)>> {
    let p = priority(pod);
    let mut trial = node.clone();
    let mut potential: Vec<(String, Arc<Pod>)> = node
        .pods
        .iter()
        .filter(|(_, v)| priority(&v.pod) < p)
        .map(|(k, v)| (k.clone(), v.pod.clone()))
        .collect();
    let mut removed = Vec::new();
    for (k, _) in &potential {
        removed.push((k.clone(), trial.remove_pod(k)?));
    }
    if !fits(filters, pod, state, &trial) {
        return None;
    }
    // k8s: MoreImportantPod — higher priority first, then the earlier start.
    potential.sort_by(|a, b| {
        priority(&b.1)
            .cmp(&priority(&a.1))
            .then_with(|| start_time(&a.1).cmp(&start_time(&b.1)))
    });
    let mut infos: std::collections::BTreeMap<String, _> = removed.into_iter().collect();
    let mut victims = Vec::new();
    for (k, v) in potential {
        let info = infos.remove(&k)?;
        trial.add_pod_info(&k, info);
        if !fits(filters, pod, state, &trial) {
            trial.remove_pod(&k);
            victims.push((k, v));
        }
    }
    Some(victims)
}

/// k8s: pickOneNodeForPreemption — fewest PDB violations (none here), then the lowest
/// highest-victim priority, the lowest priority sum, the fewest victims, the latest start of
/// the highest-priority victims, and the first.
pub fn pick_one(candidates: &[Candidate]) -> Option<usize> {
    if let Some(i) = candidates.iter().position(|c| c.victims.is_empty()) {
        return Some(i);
    }
    let highest = |c: &Candidate| c.victims.iter().map(|v| priority(&v.1)).max().unwrap_or(0);
    // k8s: each priority offset by MaxInt32 + 1 so negative priorities still add up.
    let sum = |c: &Candidate| {
        c.victims
            .iter()
            .map(|v| i64::from(priority(&v.1)) + i64::from(i32::MAX) + 1)
            .sum::<i64>()
    };
    let earliest_top = |c: &Candidate| {
        let top = highest(c);
        c.victims
            .iter()
            .filter(|v| priority(&v.1) == top)
            .map(|v| start_time(&v.1))
            .min()
            .flatten()
    };
    let mut best: Vec<usize> = (0..candidates.len()).collect();
    let keep_min = |best: &mut Vec<usize>, key: &dyn Fn(&Candidate) -> i64| {
        let m = best.iter().map(|&i| key(&candidates[i])).min();
        best.retain(|&i| Some(key(&candidates[i])) == m);
    };
    keep_min(&mut best, &|c| i64::from(highest(c)));
    keep_min(&mut best, &sum);
    keep_min(&mut best, &|c| c.victims.len() as i64);
    let latest = best.iter().map(|&i| earliest_top(&candidates[i])).max();
    best.retain(|&i| Some(earliest_top(&candidates[i])) == latest);
    best.first().copied()
}

/// k8s: DryRunPreemption from a random offset over the nodes where preemption might help,
/// until enough candidates are found, then pickOneNodeForPreemption. Without a candidate, the
/// error is upstream's message ("0/3 nodes are available: 3 No preemption victims found for
/// incoming pod.").
pub fn preempt(
    filters: &[Box<dyn FilterPlugin>],
    pod: &Pod,
    state: &CycleState,
    potential: &[&NodeInfo],
    all_nodes: usize,
    rng: &mut dyn RngCore,
) -> Result<Candidate, String> {
    let none = || {
        let mut parts = Vec::new();
        if !potential.is_empty() {
            parts.push(format!(
                "{} No preemption victims found for incoming pod",
                potential.len()
            ));
        }
        if all_nodes > potential.len() {
            parts.push(format!(
                "{} Preemption is not helpful for scheduling",
                all_nodes - potential.len()
            ));
        }
        format!("0/{all_nodes} nodes are available: {}.", parts.join(", "))
    };
    if potential.is_empty() {
        return Err(none());
    }
    let want = num_candidates(all_nodes).max(1);
    let offset = rng.gen_range(0..potential.len());
    let mut candidates = Vec::new();
    for i in 0..potential.len() {
        let node = potential[(offset + i) % potential.len()];
        if let Some(victims) = select_victims(filters, pod, state, node) {
            candidates.push(Candidate {
                node: node.name().to_string(),
                victims,
            });
            if candidates.len() >= want {
                break;
            }
        }
    }
    let i = pick_one(&candidates).ok_or_else(none)?;
    Ok(candidates.swap_remove(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::node_resources_fit::NodeResourcesFit;
    use crate::scheduler::plugins::testing::{cluster, pod};
    use serde_json::json;

    fn p(name: &str, prio: i32, cpu: &str, started: &str) -> Pod {
        let mut p = pod(
            name,
            json!({}),
            json!({"priority": prio, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}),
        );
        p.status = Some(serde_json::from_value(json!({"startTime": started})).unwrap());
        p
    }

    fn filters() -> Vec<Box<dyn FilterPlugin>> {
        vec![Box::new(NodeResourcesFit)]
    }

    #[test]
    fn victims_are_the_least_important_reprieved_in_order() {
        let t = "2026-01-01T00:00:00Z";
        let node = |pods| {
            let c = cluster(vec![(
                crate::scheduler::plugins::testing::node("n", json!({})),
                pods,
            )]);
            c.into_values().next().unwrap()
        };
        // Node: 4 cpu. (pods there, preemptor priority/cpu, victims) — k8s: SelectVictimsOnNode
        let cases = [
            // Equally important pods are reprieved in order: a (2 cpu) stays, so b and c go
            // (upstream does not search for the smallest set).
            (
                vec![p("a", 1, "2", t), p("b", 1, "1", t), p("c", 1, "1", t)],
                (10, "2"),
                Some(vec!["default/b", "default/c"]),
            ),
            // Room for the preemptor with one of two 1-cpu pods gone.
            (
                vec![p("a", 1, "3", "2026-01-02T00:00:00Z"), p("b", 1, "1", t)],
                (10, "1"),
                Some(vec!["default/a"]),
            ),
            // Higher-priority pods are not victims; not enough room without them.
            (vec![p("a", 20, "3", t), p("b", 1, "1", t)], (10, "2"), None),
            // Lower priority goes before higher (reprieve goes most important first).
            (
                vec![p("a", 5, "2", t), p("b", 1, "2", t)],
                (10, "2"),
                Some(vec!["default/b"]),
            ),
            // Equal priority is never preempted.
            (vec![p("a", 10, "4", t)], (10, "1"), None),
        ];
        for (i, (pods, (prio, cpu), want)) in cases.into_iter().enumerate() {
            let n = node(pods);
            let pre = p("pre", prio, cpu, t);
            let got = select_victims(&filters(), &pre, &CycleState::new(&pre), &n)
                .map(|v| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>());
            let want = want.map(|w| w.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn node_choice_follows_upstream_order() {
        let c = |node: &str, victims: &[(i32, &str)]| Candidate {
            node: node.into(),
            victims: victims
                .iter()
                .enumerate()
                .map(|(i, (prio, started))| {
                    (format!("v{i}"), Arc::new(p("v", *prio, "1", started)))
                })
                .collect(),
        };
        let (early, late) = ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
        // (candidates, chosen) — k8s: pickOneNodeForPreemption
        let cases = [
            (vec![c("a", &[(5, early)]), c("b", &[])], "b"),
            (
                vec![c("a", &[(5, early)]), c("b", &[(3, early), (3, early)])],
                "b",
            ),
            (
                vec![
                    c("a", &[(3, early), (2, early)]),
                    c("b", &[(3, early), (1, early)]),
                ],
                "b",
            ),
            (
                vec![c("a", &[(3, early), (1, early)]), c("b", &[(3, early)])],
                "b",
            ),
            (vec![c("a", &[(3, early)]), c("b", &[(3, late)])], "b"),
            (vec![c("a", &[(3, early)]), c("b", &[(3, early)])], "a"),
        ];
        for (i, (cands, want)) in cases.into_iter().enumerate() {
            let got = pick_one(&cands).map(|j| cands[j].node.clone());
            assert_eq!(got.as_deref(), Some(want), "case {i}");
        }
        assert_eq!(num_candidates(50), 50);
        assert_eq!(num_candidates(5000), 500);
        assert_eq!(num_candidates(500), 100);
    }

    #[test]
    fn preemption_policy_never_and_terminating_victims() {
        let t = "2026-01-01T00:00:00Z";
        let mut never = p("pre", 10, "1", t);
        never.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        assert_eq!(
            eligible(&never, None),
            Err("not eligible due to preemptionPolicy=Never.".into())
        );
        assert!(eligible(&p("pre", 10, "1", t), None).is_ok());
        let mut going = p("old", 1, "1", t);
        going.metadata.deletion_timestamp = Some(serde_json::from_value(json!(t)).unwrap());
        let n = cluster(vec![(
            crate::scheduler::plugins::testing::node("n", json!({})),
            vec![going],
        )]);
        assert!(eligible(&p("pre", 10, "1", t), n.get("n")).is_err());
    }
}
