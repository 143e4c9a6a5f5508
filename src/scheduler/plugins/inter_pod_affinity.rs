//! InterPodAffinity: the pod's required affinity and anti-affinity, and existing pods'
//! required anti-affinity (filter); preferred terms both ways and existing pods' required
//! affinity at hardPodAffinityWeight 1 (score, weight 2).
//! k8s: pkg/scheduler/framework/plugins/interpodaffinity/{filtering,scoring}.go (§5.2)

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};

use super::{CycleState, FilterPlugin, Rejection, ScorePlugin, Snapshot, MAX_NODE_SCORE};
use crate::api::selector::{from_label_selector, Selector};
use crate::scheduler::node_info::NodeInfo;

pub struct InterPodAffinity;

pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI: &str = "node(s) didn't match pod anti-affinity rules";
pub const REASON_EXISTING_ANTI: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// k8s: hardPodAffinityWeight default 1
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// A term made ready to match pods.
#[derive(Clone, Debug)]
pub struct Term {
    selector: Option<Selector>,
    /// `None`: every namespace.
    namespaces: Option<BTreeSet<String>>,
    key: String,
    weight: i64,
}

impl Term {
    /// k8s: no namespaces and no namespaceSelector mean the owner's namespace; an empty
    /// namespaceSelector means all. (A non-empty namespaceSelector is not evaluated: the
    /// scheduler does not watch namespaces; docs/decisions.md.)
    fn new(t: &PodAffinityTerm, owner_ns: &str, weight: i64) -> Term {
        let mut namespaces: BTreeSet<String> = t.namespaces.iter().flatten().cloned().collect();
        let all = t
            .namespace_selector
            .as_ref()
            .is_some_and(|s| s.match_labels.is_none() && s.match_expressions.is_none());
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.insert(owner_ns.to_string());
        }
        Term {
            // k8s: a nil labelSelector matches nothing.
            selector: t
                .label_selector
                .as_ref()
                .and_then(|s| from_label_selector(s).ok()),
            namespaces: (!all).then_some(namespaces),
            key: t.topology_key.clone(),
            weight,
        }
    }

    fn matches(&self, pod: &Pod) -> bool {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        self.namespaces.as_ref().is_none_or(|n| n.contains(ns))
            && self
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(pod.metadata.labels.as_ref().unwrap_or(&EMPTY)))
    }
}

/// A pod's terms: (required affinity, required anti-affinity, preferred affinity, preferred
/// anti-affinity).
#[derive(Clone, Debug, Default)]
pub struct Terms {
    pub affinity: Vec<Term>,
    pub anti: Vec<Term>,
    pub preferred: Vec<Term>,
    pub preferred_anti: Vec<Term>,
}

pub fn terms(pod: &Pod) -> Terms {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let Some(aff) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return Terms::default();
    };
    let req = |ts: Option<&Vec<PodAffinityTerm>>| -> Vec<Term> {
        ts.into_iter()
            .flatten()
            .map(|t| Term::new(t, ns, 1))
            .collect()
    };
    let pa = aff.pod_affinity.as_ref();
    let anti = aff.pod_anti_affinity.as_ref();
    Terms {
        affinity: req(pa.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })),
        anti: req(anti.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })),
        preferred: pa
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|w| Term::new(&w.pod_affinity_term, ns, i64::from(w.weight)))
            .collect(),
        preferred_anti: anti
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|w| Term::new(&w.pod_affinity_term, ns, i64::from(w.weight)))
            .collect(),
    }
}

type Pairs = BTreeMap<(String, String), i64>;

fn bump(m: &mut Pairs, node: &NodeInfo, key: &str, by: i64) {
    if let Some(v) = node.labels().get(key) {
        *m.entry((key.to_string(), v.clone())).or_default() += by;
    }
}

#[derive(Clone, Debug, Default)]
pub struct FilterState {
    terms: Terms,
    /// Topology pairs where an existing pod's required anti-affinity rejects this pod.
    existing_anti: Pairs,
    /// Topology pairs with pods matching all the pod's affinity terms.
    affinity: Pairs,
    /// Topology pairs with pods matching one of the pod's anti-affinity terms.
    anti: Pairs,
}

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    /// k8s: EventsToRegister — Node Add, UpdateNodeLabel; Pod Add, UpdatePodLabel, Delete
    fn events(&self) -> u32 {
        use crate::scheduler::queue::events::*;
        NODE_ADD | NODE_LABEL | POD_ADD | POD_LABEL | POD_DELETE
    }

    fn pre_filter(
        &self,
        pod: &Pod,
        state: &mut CycleState,
        snapshot: &Snapshot,
    ) -> Result<(), Rejection> {
        let t = terms(pod);
        let own = !t.affinity.is_empty() || !t.anti.is_empty();
        if !own && snapshot.pods_with_affinity == 0 {
            return Ok(());
        }
        let mut s = FilterState::default();
        for node in snapshot.nodes.iter() {
            if !own && node.pods_with_affinity == 0 {
                continue; // k8s: HavePodsWithAffinityList
            }
            for existing in node.pods.values() {
                if existing.has_affinity {
                    for term in terms(&existing.pod).anti {
                        if term.matches(pod) {
                            bump(&mut s.existing_anti, node, &term.key, 1);
                        }
                    }
                }
                if !t.affinity.is_empty() && t.affinity.iter().all(|a| a.matches(&existing.pod)) {
                    for a in &t.affinity {
                        bump(&mut s.affinity, node, &a.key, 1);
                    }
                }
                for a in &t.anti {
                    if a.matches(&existing.pod) {
                        bump(&mut s.anti, node, &a.key, 1);
                    }
                }
            }
        }
        if own || !s.existing_anti.is_empty() {
            s.terms = t;
            state.inter_pod_filter = Some(s);
        }
        Ok(())
    }

    fn filter(&self, pod: &Pod, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let Some(s) = state.inter_pod_filter.as_ref() else {
            return Ok(());
        };
        let labels = node.labels();
        // k8s: satisfyPodAffinity — every term's key on the node and a matching pod in its
        // domain; the first pod of a group matching its own terms may go anywhere with the keys.
        let mut exist = true;
        for a in &s.terms.affinity {
            match labels.get(&a.key) {
                None => return Err(Rejection::unresolvable(REASON_AFFINITY)),
                Some(v) => {
                    if s.affinity
                        .get(&(a.key.clone(), v.clone()))
                        .copied()
                        .unwrap_or(0)
                        <= 0
                    {
                        exist = false;
                    }
                }
            }
        }
        let first_of_group =
            s.affinity.is_empty() && s.terms.affinity.iter().all(|a| a.matches(pod));
        if !(exist || first_of_group) {
            return Err(Rejection::unresolvable(REASON_AFFINITY));
        }
        // k8s: satisfyPodAntiAffinity
        for a in &s.terms.anti {
            if let Some(v) = labels.get(&a.key) {
                if s.anti
                    .get(&(a.key.clone(), v.clone()))
                    .copied()
                    .unwrap_or(0)
                    > 0
                {
                    return Err(Rejection::unschedulable(REASON_ANTI));
                }
            }
        }
        // k8s: satisfyExistingPodsAntiAffinity
        for ((k, v), n) in &s.existing_anti {
            if *n > 0 && labels.get(k) == Some(v) {
                return Err(Rejection::unschedulable(REASON_EXISTING_ANTI));
            }
        }
        Ok(())
    }
}

/// topology key → value → score.
#[derive(Clone, Debug, Default)]
pub struct ScoreState {
    scores: BTreeMap<String, BTreeMap<String, i64>>,
}

impl ScoreState {
    fn process(&mut self, ts: &[Term], pod: &Pod, node: &NodeInfo, sign: i64) {
        for t in ts {
            if t.matches(pod) {
                if let Some(v) = node.labels().get(&t.key) {
                    *self
                        .scores
                        .entry(t.key.clone())
                        .or_default()
                        .entry(v.clone())
                        .or_default() += sign * t.weight;
                }
            }
        }
    }
}

impl ScorePlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn weight(&self) -> i64 {
        2
    }

    fn pre_score(
        &self,
        pod: &Pod,
        state: &mut CycleState,
        snapshot: &Snapshot,
        _feasible: &[&NodeInfo],
    ) {
        let t = terms(pod);
        let own = !t.preferred.is_empty() || !t.preferred_anti.is_empty();
        if !own && snapshot.pods_with_affinity == 0 {
            return;
        }
        let mut s = ScoreState::default();
        for node in snapshot.nodes.iter() {
            // k8s: all nodes when the pod has preferred terms, else those with affinity pods.
            if !own && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in node.pods.values() {
                s.process(&t.preferred, &existing.pod, node, 1);
                s.process(&t.preferred_anti, &existing.pod, node, -1);
                if existing.has_affinity {
                    let et = terms(&existing.pod);
                    let hard: Vec<Term> = et
                        .affinity
                        .into_iter()
                        .map(|t| Term {
                            weight: HARD_POD_AFFINITY_WEIGHT,
                            ..t
                        })
                        .collect();
                    s.process(&hard, pod, node, 1);
                    s.process(&et.preferred, pod, node, 1);
                    s.process(&et.preferred_anti, pod, node, -1);
                }
            }
        }
        if !s.scores.is_empty() {
            state.inter_pod_score = Some(s);
        }
    }

    fn score(&self, _pod: &Pod, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(s) = state.inter_pod_score.as_ref() else {
            return 0;
        };
        let labels = node.labels();
        s.scores
            .iter()
            .filter_map(|(k, values)| labels.get(k).and_then(|v| values.get(v)))
            .sum()
    }

    fn normalize(&self, state: &CycleState, _feasible: &[&NodeInfo], scores: &mut [i64]) {
        if state.inter_pod_score.is_none() {
            return;
        }
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        for s in scores.iter_mut() {
            // k8s: 100 × (s − min) / (max − min), 0 when all equal
            *s = if max > min {
                (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / (max - min) as f64)) as i64
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{cluster, filter_all, node, pod, score_all};
    use serde_json::json;

    fn term(app: &str, key: &str) -> serde_json::Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    /// Zone z1: a (web), b (db with anti-affinity to "web" per host... per zone); z2: c (empty),
    /// d without a zone label.
    fn nodes() -> BTreeMap<String, NodeInfo> {
        let db = pod(
            "db",
            json!({"app": "db"}),
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                [term("batch", "zone")]}}}),
        );
        cluster(vec![
            (
                node("a", json!({"zone": "z1"})),
                vec![pod("web", json!({"app": "web"}), json!({}))],
            ),
            (node("b", json!({"zone": "z1"})), vec![db]),
            (node("c", json!({"zone": "z2"})), vec![]),
            (node("d", json!({})), vec![]),
        ])
    }

    fn passing(p: &Pod) -> String {
        filter_all(&InterPodAffinity, p, &nodes())
            .into_iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn required_affinity_and_anti_affinity() {
        let aff = |t| json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}});
        let anti = |t| json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}});
        // (labels, spec, nodes that pass) — k8s: filtering.go
        let cases = [
            (json!({}), json!({}), "abcd"),
            // With web's zone; d lacks the key.
            (json!({}), aff(term("web", "zone")), "ab"),
            (json!({}), aff(term("web", "kubernetes.io/hostname")), "a"),
            // No pod matches: nowhere, unless the pod matches its own term (first of a group).
            (json!({}), aff(term("cache", "zone")), ""),
            (json!({"app": "cache"}), aff(term("cache", "zone")), "abc"),
            // Away from web's zone; a node without the key is fine.
            (json!({}), anti(term("web", "zone")), "cd"),
            (
                json!({}),
                anti(term("web", "kubernetes.io/hostname")),
                "bcd",
            ),
            // The existing db pod's anti-affinity rejects batch pods in z1.
            (json!({"app": "batch"}), json!({}), "cd"),
            // Another namespace's pods do not match by default.
            (
                json!({}),
                aff(
                    json!({"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone", "namespaces": ["other"]}),
                ),
                "",
            ),
            (
                json!({}),
                aff(
                    json!({"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone", "namespaceSelector": {}}),
                ),
                "ab",
            ),
        ];
        for (i, (labels, spec, want)) in cases.into_iter().enumerate() {
            assert_eq!(passing(&pod("new", labels, spec)), want, "case {i}");
        }
        let r = filter_all(
            &InterPodAffinity,
            &pod("new", json!({"app": "batch"}), json!({})),
            &nodes(),
        );
        assert_eq!(r["a"], Err(Rejection::unschedulable(REASON_EXISTING_ANTI)));
    }

    #[test]
    fn preferred_terms_score() {
        let pref = |kind: &str, w: i32, t| {
            json!({"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution":
                [{"weight": w, "podAffinityTerm": t}]}}})
        };
        // (spec, scores a b c d) — k8s: scoring.go, normalized 100 × (s − min) / (max − min)
        let cases = [
            (json!({}), [0, 0, 0, 0]),
            (
                pref("podAffinity", 10, term("web", "zone")),
                [100, 100, 0, 0],
            ),
            (
                pref("podAffinity", 10, term("web", "kubernetes.io/hostname")),
                [100, 0, 0, 0],
            ),
            (
                pref("podAntiAffinity", 10, term("web", "zone")),
                [0, 0, 100, 100],
            ),
        ];
        for (i, (spec, want)) in cases.into_iter().enumerate() {
            let p = pod("new", json!({}), spec);
            let got: Vec<i64> = score_all(&InterPodAffinity, &p, &nodes(), &BTreeMap::new())
                .into_values()
                .collect();
            assert_eq!(got, want, "case {i}");
        }
    }
}
