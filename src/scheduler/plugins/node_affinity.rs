//! NodeAffinity: spec.nodeSelector and required node affinity terms (filter); preferred terms'
//! weights summed and normalized (score, weight 2).
//! k8s: pkg/scheduler/framework/plugins/nodeaffinity, component-helpers nodeaffinity (§5.2)

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod};

use super::{default_normalize, CycleState, FilterPlugin, Rejection, ScorePlugin};
use crate::scheduler::node_info::NodeInfo;

pub struct NodeAffinity;

pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&r.key);
    let values: &[String] = r.values.as_deref().unwrap_or_default();
    let num = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(|v| num(v)), values.first().and_then(|v| num(v))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(|v| num(v)), values.first().and_then(|v| num(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

/// k8s: matchFields supports only `metadata.name` with In / NotIn.
fn field_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    if r.key != "metadata.name" {
        return false;
    }
    let values: &[String] = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => values.iter().any(|v| v == node_name),
        "NotIn" => !values.iter().any(|v| v == node_name),
        _ => false,
    }
}

/// A term's expressions and fields are ANDed; a term with neither matches nothing.
pub fn term_matches(t: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.labels();
    exprs.iter().all(|r| requirement_matches(r, labels))
        && fields.iter().all(|r| field_matches(r, node.name()))
}

/// Whether the node satisfies the pod's nodeSelector and required node affinity (also used by
/// PodTopologySpread's nodeAffinityPolicy Honor). k8s: GetRequiredNodeAffinity(pod).Match
pub fn required_matches(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node.labels();
    if !spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        // k8s: terms are ORed.
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
        None => true,
    }
}

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    /// k8s: EventsToRegister — Node Add, UpdateNodeLabel
    fn events(&self) -> u32 {
        use crate::scheduler::queue::events::*;
        NODE_ADD | NODE_LABEL
    }

    fn filter(&self, pod: &Pod, _state: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        if required_matches(pod, node) {
            Ok(())
        } else {
            // k8s: UnschedulableAndUnresolvable
            Err(Rejection::unresolvable(REASON))
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn weight(&self) -> i64 {
        2
    }

    /// k8s: the sum of the weights of the preferred terms the node matches.
    fn score(&self, pod: &Pod, _state: &CycleState, node: &NodeInfo) -> i64 {
        pod.spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|t| t.weight != 0 && term_matches(&t.preference, node))
            .map(|t| i64::from(t.weight))
            .sum()
    }

    fn normalize(&self, _state: &CycleState, _feasible: &[&NodeInfo], scores: &mut [i64]) {
        // k8s: DefaultNormalizeScore(MaxNodeScore, false)
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{cluster, filter_all, node, pod, score_all};
    use serde_json::json;

    fn nodes() -> BTreeMap<String, NodeInfo> {
        cluster(vec![
            (node("a", json!({"zone": "z1", "gpu": "2"})), vec![]),
            (node("b", json!({"zone": "z2"})), vec![]),
            (node("c", json!({})), vec![]),
        ])
    }

    fn required(terms: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn required_selector_and_terms() {
        // (pod spec, nodes that pass) — k8s: nodeSelector AND (term OR term); within a term
        // expressions AND fields; an empty term matches nothing.
        let cases = [
            (json!({}), "abc"),
            (json!({"nodeSelector": {"zone": "z1"}}), "a"),
            (json!({"nodeSelector": {"zone": "z3"}}), ""),
            (
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]),
                ),
                "ab",
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]}]}]),
                ),
                "bc",
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]},
                                 {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}]),
                ),
                "bc",
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "gpu", "operator": "Gt", "values": ["1"]}]}]),
                ),
                "a",
            ),
            (
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b", "c"]}]}]),
                ),
                "bc",
            ),
            (
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["b"]}],
                                 "matchExpressions": [{"key": "zone", "operator": "Exists"}]}]),
                ),
                "a",
            ),
            (required(json!([{}])), ""),
            (
                json!({"nodeSelector": {"zone": "z2"}, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}}),
                "",
            ),
        ];
        let nodes = nodes();
        for (i, (spec, want)) in cases.into_iter().enumerate() {
            let p = pod("p", json!({}), spec);
            let got: String = filter_all(&NodeAffinity, &p, &nodes)
                .into_iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(n, _)| n)
                .collect();
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn preferred_terms_weighted_and_normalized() {
        let pref = |terms: serde_json::Value| json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": terms}}});
        let z1 = json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]});
        let zone = json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]});
        // (preferred terms, scores a, b, c) — k8s: Σ weights, DefaultNormalizeScore
        let cases = [
            (json!([]), [0, 0, 0]),
            (json!([{"weight": 10, "preference": z1}]), [100, 0, 0]),
            (
                json!([{"weight": 30, "preference": z1}, {"weight": 10, "preference": zone}]),
                [100, 25, 0],
            ),
        ];
        let nodes = nodes();
        for (i, (terms, want)) in cases.into_iter().enumerate() {
            let p = pod("p", json!({}), pref(terms));
            let got: Vec<i64> = score_all(&NodeAffinity, &p, &nodes, &BTreeMap::new())
                .into_values()
                .collect();
            assert_eq!(got, want, "case {i}");
        }
    }
}
