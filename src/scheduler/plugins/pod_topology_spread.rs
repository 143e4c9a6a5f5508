//! PodTopologySpread: DoNotSchedule constraints filter, ScheduleAnyway constraints score
//! (weight 2). A pod without constraints gets the system defaults (zone maxSkew 5, hostname
//! maxSkew 3, ScheduleAnyway), selecting the pods of its owning controller.
//! k8s: pkg/scheduler/framework/plugins/podtopologyspread/{filtering,scoring,common}.go (§5.2)

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};

use super::node_affinity::required_matches;
use super::taint_toleration::tolerations;
use super::{CycleState, FilterPlugin, Rejection, ScorePlugin, Snapshot, MAX_NODE_SCORE};
use crate::api::selector::{from_label_selector, Requirement, Selector};
use crate::api::taints::tolerated;
use crate::scheduler::node_info::{Known, NodeInfo};

pub struct PodTopologySpread;

pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const ZONE: &str = "topology.kubernetes.io/zone";
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
pub const REASON_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// Which pods a constraint counts.
#[derive(Clone, Debug)]
pub enum PodSelector {
    Labels(Selector),
    /// A nil labelSelector: no pod. k8s: LabelSelectorAsSelector(nil) = Nothing
    Nothing,
    /// The system defaults: the pods of the same controller (gantry's stand-in for the
    /// selectors of the owning Services/ReplicaSets/StatefulSets, docs/decisions.md).
    Owner(String),
}

impl PodSelector {
    fn matches(&self, pod: &Pod) -> bool {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        match self {
            PodSelector::Labels(s) => s.matches(pod.metadata.labels.as_ref().unwrap_or(&EMPTY)),
            PodSelector::Nothing => false,
            PodSelector::Owner(uid) => controller_uid(pod) == Some(uid.as_str()),
        }
    }
}

/// The uid of the pod's controller (k8s: metav1.GetControllerOf).
pub(crate) fn controller_uid(pod: &Pod) -> Option<&str> {
    crate::controllers::replicaset::controller_of(&pod.metadata).map(|r| r.uid.as_str())
}

#[derive(Clone, Debug)]
pub struct Constraint {
    pub max_skew: i64,
    pub key: String,
    pub do_not_schedule: bool,
    pub selector: PodSelector,
    pub min_domains: i64,
    /// k8s: nodeAffinityPolicy default Honor, nodeTaintsPolicy default Ignore
    pub honor_affinity: bool,
    pub honor_taints: bool,
}

/// The pod's constraints, or the system defaults; `true` when they are the defaults.
pub fn constraints(pod: &Pod) -> (Vec<Constraint>, bool) {
    let given: &[TopologySpreadConstraint] = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default();
    if given.is_empty() {
        // k8s: systemDefaultConstraints; none when the selector would be empty (no owner).
        let Some(uid) = controller_uid(pod) else {
            return (Vec::new(), true);
        };
        let c = |key: &str, skew| Constraint {
            max_skew: skew,
            key: key.into(),
            do_not_schedule: false,
            selector: PodSelector::Owner(uid.to_string()),
            min_domains: 1,
            honor_affinity: true,
            honor_taints: false,
        };
        return (vec![c(HOSTNAME, 3), c(ZONE, 5)], true);
    }
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let out = given
        .iter()
        .map(|c| {
            let selector = match &c.label_selector {
                None => PodSelector::Nothing,
                Some(ls) => match from_label_selector(ls) {
                    Ok(mut s) => {
                        // k8s: matchLabelKeys join the selector with the pod's own values.
                        for k in c.match_label_keys.iter().flatten() {
                            if let Some(v) = labels.get(k) {
                                s.0.push(Requirement::In(k.clone(), BTreeSet::from([v.clone()])));
                            }
                        }
                        PodSelector::Labels(s)
                    }
                    Err(_) => PodSelector::Nothing,
                },
            };
            Constraint {
                max_skew: i64::from(c.max_skew),
                key: c.topology_key.clone(),
                do_not_schedule: c.when_unsatisfiable == "DoNotSchedule",
                selector,
                min_domains: c.min_domains.map(i64::from).unwrap_or(1),
                honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect();
    (out, false)
}

/// k8s: countPodsMatchSelector — same namespace, not terminating, selected.
fn count_matching(node: &NodeInfo, selector: &PodSelector, namespace: Option<&str>) -> i64 {
    if let PodSelector::Owner(uid) = selector {
        // The node keeps these counts (a controller's pods share its namespace).
        return node.by_controller.get(uid).copied().unwrap_or(0);
    }
    node.pods
        .values()
        .filter(|p| {
            p.pod.metadata.deletion_timestamp.is_none()
                && p.pod.metadata.namespace.as_deref() == namespace
                && selector.matches(&p.pod)
        })
        .count() as i64
}

/// Whether a node counts for a constraint (nodeAffinityPolicy / nodeTaintsPolicy).
fn eligible(c: &Constraint, pod: &Pod, node: &NodeInfo) -> bool {
    if c.honor_affinity && !required_matches(pod, node) {
        return false;
    }
    if c.honor_taints {
        let tols = tolerations(pod);
        let taints = node.node.spec.as_ref().and_then(|s| s.taints.as_deref());
        if taints
            .into_iter()
            .flatten()
            .any(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tols, t))
        {
            return false;
        }
    }
    true
}

#[derive(Clone, Debug)]
pub struct FilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: domain value → matching pods.
    counts: Vec<BTreeMap<String, i64>>,
    /// Per constraint: the global minimum (0 when fewer domains than minDomains).
    min: Vec<i64>,
    /// Per constraint: the incoming pod matches its own selector.
    self_match: Vec<i64>,
}

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    /// k8s: EventsToRegister — Node Add, Delete, UpdateNodeLabel, UpdateNodeTaint; Pod Add, UpdatePodLabel, Delete
    fn events(&self) -> u32 {
        use crate::scheduler::queue::events::*;
        NODE_ADD | NODE_DELETE | NODE_LABEL | NODE_TAINT | POD_ADD | POD_LABEL | POD_DELETE
    }

    fn pre_filter(
        &self,
        pod: &Pod,
        state: &mut CycleState,
        snapshot: &Snapshot,
    ) -> Result<(), Rejection> {
        let (all, _) = constraints(pod);
        let cs: Vec<Constraint> = all.into_iter().filter(|c| c.do_not_schedule).collect();
        if cs.is_empty() {
            return Ok(());
        }
        let ns = pod.metadata.namespace.as_deref();
        let mut counts = vec![BTreeMap::<String, i64>::new(); cs.len()];
        for node in snapshot.nodes.iter() {
            let labels = node.labels();
            // k8s: a node needs every constraint's key to count (nodeLabelsMatchSpreadConstraints).
            if !cs.iter().all(|c| labels.contains_key(&c.key)) {
                continue;
            }
            for (i, c) in cs.iter().enumerate() {
                if !eligible(c, pod, node) {
                    continue;
                }
                *counts[i].entry(labels[&c.key].clone()).or_default() +=
                    count_matching(node, &c.selector, ns);
            }
        }
        let min = cs
            .iter()
            .zip(&counts)
            .map(|(c, m)| {
                if (m.len() as i64) < c.min_domains {
                    0 // k8s: minDomains not reached — the global minimum is 0
                } else {
                    m.values().copied().min().unwrap_or(0)
                }
            })
            .collect();
        let self_match = cs
            .iter()
            .map(|c| i64::from(c.selector.matches(pod)))
            .collect();
        state.spread_filter = Some(FilterState {
            constraints: cs,
            counts,
            min,
            self_match,
        });
        Ok(())
    }

    fn filter(&self, _pod: &Pod, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let Some(s) = state.spread_filter.as_ref() else {
            return Ok(());
        };
        let labels = node.labels();
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = labels.get(&c.key) else {
                return Err(Rejection::unresolvable(REASON_LABEL));
            };
            let matching = s.counts[i].get(value).copied().unwrap_or(0);
            // k8s: skew = matchNum + selfMatchNum − minMatchNum
            if matching + s.self_match[i] - s.min[i] > c.max_skew {
                return Err(Rejection::unschedulable(REASON));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct ScoreState {
    constraints: Vec<Constraint>,
    /// Per constraint (other than hostname): domain → matching pods.
    counts: Vec<BTreeMap<String, i64>>,
    /// k8s: topologyNormalizingWeight = ln(domains + 2)
    weights: Vec<f64>,
    /// Nodes without every key (user constraints only): scored 0.
    ignored: BTreeSet<String>,
    namespace: Option<String>,
    /// Per constraint: its key is the hostname (compared once, not per node).
    host: Vec<bool>,
    /// Per constraint: which label its key is.
    known: Vec<Known>,
}

impl ScorePlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn weight(&self) -> i64 {
        2
    }

    fn pre_score(
        &self,
        pod: &Pod,
        state: &mut CycleState,
        snapshot: &Snapshot,
        feasible: &[&NodeInfo],
    ) {
        let (all, defaulted) = constraints(pod);
        let cs: Vec<Constraint> = all.into_iter().filter(|c| !c.do_not_schedule).collect();
        if cs.is_empty() {
            return;
        }
        // k8s: requireAllTopologies unless the constraints are the system defaults.
        let require_all = !defaulted;
        let host: Vec<bool> = cs.iter().map(|c| c.key == HOSTNAME).collect();
        let known: Vec<Known> = cs.iter().map(|c| Known::of(&c.key)).collect();
        let has_all = |n: &NodeInfo| cs.iter().all(|c| n.labels().contains_key(&c.key));
        let mut ignored = BTreeSet::new();
        let mut counts = vec![BTreeMap::<String, i64>::new(); cs.len()];
        let mut hosts = 0usize;
        for n in feasible {
            if require_all && !has_all(n) {
                ignored.insert(n.name().to_string());
                continue;
            }
            hosts += 1;
            for (i, c) in cs.iter().enumerate() {
                if host[i] {
                    continue;
                }
                // Looked up first: most nodes share a domain already counted (no copy).
                if let Some(v) = n.label(&c.key, known[i]) {
                    if !counts[i].contains_key(v) {
                        counts[i].insert(v.clone(), 0);
                    }
                }
            }
        }
        let weights = cs
            .iter()
            .zip(&counts)
            .enumerate()
            .map(|(i, (_, m))| {
                let size = if host[i] { hosts } else { m.len() };
                ((size + 2) as f64).ln()
            })
            .collect();
        let ns = pod.metadata.namespace.as_deref();
        if host.iter().any(|h| !h) {
            for n in snapshot.nodes.iter() {
                if require_all && !has_all(n) {
                    continue;
                }
                for (i, c) in cs.iter().enumerate() {
                    if host[i] || !eligible(c, pod, n) {
                        continue;
                    }
                    let Some(v) = n.label(&c.key, known[i]) else {
                        continue;
                    };
                    // k8s: only the domains of the feasible nodes are counted.
                    if let Some(count) = counts[i].get_mut(v) {
                        *count += count_matching(n, &c.selector, ns);
                    }
                }
            }
        }
        state.spread_score = Some(ScoreState {
            constraints: cs,
            counts,
            weights,
            ignored,
            namespace: pod.metadata.namespace.clone(),
            host,
            known,
        });
    }

    fn score(&self, _pod: &Pod, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(s) = state.spread_score.as_ref() else {
            return 0;
        };
        if s.ignored.contains(node.name()) {
            return 0;
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(v) = node.label(&c.key, s.known[i]) else {
                continue;
            };
            let count = if s.host[i] {
                count_matching(node, &c.selector, s.namespace.as_deref())
            } else {
                s.counts[i].get(v).copied().unwrap_or(0)
            };
            // k8s: scoreForCount = count × weight + (maxSkew − 1)
            score += count as f64 * s.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    fn normalize(&self, state: &CycleState, feasible: &[&NodeInfo], scores: &mut [i64]) {
        let Some(s) = state.spread_score.as_ref() else {
            return;
        };
        let counted = |i: usize| !s.ignored.contains(feasible[i].name());
        let (mut min, mut max) = (i64::MAX, 0i64);
        for (i, &sc) in scores.iter().enumerate() {
            if counted(i) {
                min = min.min(sc);
                max = max.max(sc);
            }
        }
        for (i, sc) in scores.iter_mut().enumerate() {
            *sc = if !counted(i) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                // k8s: fewer matching pods score higher.
                MAX_NODE_SCORE * (max + min - *sc) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{cluster, filter_all, node, pod, score_all};
    use serde_json::json;

    fn app(name: &str) -> Pod {
        pod(name, json!({"app": "web"}), json!({}))
    }

    fn spread(skew: i32, key: &str, when: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut c = json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
                           "labelSelector": {"matchLabels": {"app": "web"}}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"topologySpreadConstraints": [c]})
    }

    /// Zones z1 (a, b), z2 (c), z3 (d, no pods); node e without a zone.
    fn nodes() -> BTreeMap<String, NodeInfo> {
        cluster(vec![
            (node("a", json!({"zone": "z1"})), vec![app("p1"), app("p2")]),
            (node("b", json!({"zone": "z1"})), vec![app("p3")]),
            (node("c", json!({"zone": "z2"})), vec![app("p4")]),
            (node("d", json!({"zone": "z3", "tier": "x"})), vec![]),
            (node("e", json!({})), vec![]),
        ])
    }

    fn passing(p: &Pod, nodes: &BTreeMap<String, NodeInfo>) -> String {
        filter_all(&PodTopologySpread, p, nodes)
            .into_iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn do_not_schedule_filters_by_skew() {
        let n = nodes();
        // (constraint, pod labels, nodes that pass) — k8s: skew = match + self − globalMin
        // ≤ maxSkew; zone counts z1 3, z2 1, z3 0; nodes missing the key fail.
        let cases = [
            (
                spread(1, "zone", "DoNotSchedule", json!({})),
                json!({"app": "web"}),
                "d",
            ),
            (
                spread(2, "zone", "DoNotSchedule", json!({})),
                json!({"app": "web"}),
                "cd",
            ),
            (
                spread(4, "zone", "DoNotSchedule", json!({})),
                json!({"app": "web"}),
                "abcd",
            ),
            // The pod does not match its own selector: no self count.
            (
                spread(1, "zone", "DoNotSchedule", json!({})),
                json!({}),
                "cd",
            ),
            // minDomains 4 > 3 domains: the global minimum is 0.
            (
                spread(2, "zone", "DoNotSchedule", json!({"minDomains": 4})),
                json!({"app": "web"}),
                "cd",
            ),
            (
                spread(1, "kubernetes.io/hostname", "DoNotSchedule", json!({})),
                json!({"app": "web"}),
                "de",
            ),
            // ScheduleAnyway does not filter.
            (
                spread(1, "zone", "ScheduleAnyway", json!({})),
                json!({"app": "web"}),
                "abcde",
            ),
        ];
        for (i, (spec, labels, want)) in cases.into_iter().enumerate() {
            let p = pod("new", labels, spec);
            assert_eq!(passing(&p, &n), want, "case {i}");
        }
    }

    #[test]
    fn node_affinity_policy_honor_and_ignore() {
        let n = nodes();
        // The pod may only go to z1/z2 (nodeSelector-like affinity): with Honor z3 does not count
        // and the minimum is z2's 1 (z1: 3 + 1 − 1 ≤ 3); with Ignore z3's 0 is the minimum.
        // (d passes this filter; NodeAffinity rejects it.)
        let mut honor = spread(3, "zone", "DoNotSchedule", json!({}));
        honor["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]}}});
        let mut ignore = honor.clone();
        ignore["topologySpreadConstraints"][0]["nodeAffinityPolicy"] = json!("Ignore");
        let p = pod("new", json!({"app": "web"}), honor);
        assert_eq!(passing(&p, &n), "abcd");
        let p = pod("new", json!({"app": "web"}), ignore);
        assert_eq!(passing(&p, &n), "cd");
    }

    #[test]
    fn missing_label_is_unresolvable() {
        let p = pod(
            "new",
            json!({"app": "web"}),
            spread(1, "zone", "DoNotSchedule", json!({})),
        );
        let r = filter_all(&PodTopologySpread, &p, &nodes());
        assert_eq!(r["e"], Err(Rejection::unresolvable(REASON_LABEL)));
        assert_eq!(r["a"], Err(Rejection::unschedulable(REASON)));
    }

    #[test]
    fn schedule_anyway_scores_fewer_matching_higher() {
        let n = nodes();
        // zone weights ln(3+2); scores a,b 3·1.609=5, c 2, d 0, e ignored;
        // normalized 100 × (max + min − s) / max.
        let p = pod(
            "new",
            json!({"app": "web"}),
            spread(1, "zone", "ScheduleAnyway", json!({})),
        );
        let got: Vec<i64> = score_all(&PodTopologySpread, &p, &n, &BTreeMap::new())
            .into_values()
            .collect();
        assert_eq!(got, vec![0, 0, 60, 100, 0]);
    }

    #[test]
    fn system_defaults_follow_the_owner() {
        let owned = |name: &str, uid: &str| {
            let mut p = pod(name, json!({}), json!({}));
            p.metadata.owner_references = Some(vec![serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}))
            .unwrap()]);
            p
        };
        let zone = |z: &str| json!({ZONE: z});
        let n = cluster(vec![
            (
                node("a", zone("z1")),
                vec![owned("p1", "u1"), owned("p2", "u1")],
            ),
            (
                node("b", zone("z2")),
                vec![owned("p3", "u2"), owned("p4", "u2")],
            ),
            (node("c", json!({})), vec![]),
        ]);
        let (cs, defaulted) = constraints(&owned("new", "u1"));
        assert!(defaulted);
        assert_eq!(
            cs.iter()
                .map(|c| (c.key.as_str(), c.max_skew, c.do_not_schedule))
                .collect::<Vec<_>>(),
            vec![(HOSTNAME, 3, false), (ZONE, 5, false)]
        );
        // No owner: no default constraints.
        assert!(constraints(&pod("bare", json!({}), json!({}))).0.is_empty());
        // Only u1's pods count. Raw: a 2·ln5 + 2 + 2·ln4 + 4 = 12, b 0 + 2 + 0 + 4 = 6, c (no
        // zone, not ignored under the defaults) 2; normalized 100 × (12 + 2 − s) / 12.
        let got = score_all(
            &PodTopologySpread,
            &owned("new", "u1"),
            &n,
            &BTreeMap::new(),
        );
        assert_eq!(got.into_values().collect::<Vec<_>>(), vec![16, 66, 100]);
    }
}
