//! TaintToleration: NoSchedule and NoExecute taints must be tolerated (filter); fewer
//! untolerated PreferNoSchedule taints score higher (weight 3).

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};

use super::{default_normalize, CycleState, FilterPlugin, ScorePlugin};
use crate::api::taints::{describe, tolerated, tolerates};
use crate::scheduler::node_info::NodeInfo;

pub struct TaintToleration;

/// The pod's tolerations, borrowed: the plugins run for every node in every cycle.
pub(super) fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    /// k8s: EventsToRegister — Node Add, UpdateNodeTaint
    fn events(&self) -> u32 {
        use crate::scheduler::queue::events::*;
        NODE_ADD | NODE_TAINT
    }

    fn filter(
        &self,
        pod: &Pod,
        _state: &CycleState,
        node: &NodeInfo,
    ) -> Result<(), super::Rejection> {
        let tols = tolerations(pod);
        match taints(node)
            .iter()
            .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tols, t))
        {
            // k8s: UnschedulableAndUnresolvable
            Some(t) => Err(super::Rejection::unresolvable(format!(
                "node(s) had untolerated taint {}",
                describe(t)
            ))),
            None => Ok(()),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn weight(&self) -> i64 {
        3
    }

    fn score(&self, pod: &Pod, _state: &CycleState, node: &NodeInfo) -> i64 {
        // Only tolerations that can tolerate PreferNoSchedule count here.
        let prefer = |t: &&Toleration| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        };
        let tols = tolerations(pod);
        taints(node)
            .iter()
            .filter(|t| {
                t.effect == "PreferNoSchedule"
                    && !tols.iter().filter(prefer).any(|tol| tolerates(tol, t))
            })
            .count() as i64
    }

    fn normalize(&self, _state: &CycleState, _feasible: &[&NodeInfo], scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::node_unschedulable::NodeUnschedulable;
    use serde_json::json;

    fn node(taints: serde_json::Value, unschedulable: bool) -> NodeInfo {
        NodeInfo::new(
            serde_json::from_value(json!({"metadata": {"name": "n"},
                "spec": {"taints": taints, "unschedulable": unschedulable}}))
            .unwrap(),
        )
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [], "tolerations": tolerations}}))
        .unwrap()
    }

    #[test]
    fn taints_filter_and_score_by_the_pods_tolerations() {
        let no_schedule = json!([{"key": "k", "value": "v", "effect": "NoSchedule"}]);
        let prefer = json!([{"key": "k", "effect": "PreferNoSchedule"},
                            {"key": "j", "effect": "PreferNoSchedule"}]);
        let tolerate_k = json!([{"key": "k", "operator": "Exists"}]);
        let tolerate_k_no_schedule =
            json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]);
        // (node taints, cordoned, pod tolerations, filter passes, untolerated preferences)
        let cases = [
            (json!([]), false, json!([]), true, 0),
            (no_schedule.clone(), false, json!([]), false, 0),
            (no_schedule.clone(), false, tolerate_k.clone(), true, 0),
            (
                no_schedule,
                false,
                json!([{"key": "k", "value": "w"}]),
                false,
                0,
            ),
            (prefer.clone(), false, json!([]), true, 2),
            (prefer.clone(), false, tolerate_k.clone(), true, 1),
            // A toleration for NoSchedule does not tolerate PreferNoSchedule.
            (prefer, false, tolerate_k_no_schedule, true, 2),
            (json!([]), true, json!([]), false, 0),
            (
                json!([]),
                true,
                json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]),
                true,
                0,
            ),
        ];
        for (i, (taints, cordoned, tols, passes, score)) in cases.into_iter().enumerate() {
            let (n, p) = (node(taints, cordoned), pod(tols));
            let state = CycleState::new(&p);
            let filtered = TaintToleration
                .filter(&p, &state, &n)
                .and_then(|_| NodeUnschedulable.filter(&p, &state, &n));
            assert_eq!(filtered.is_ok(), passes, "case {i}: {filtered:?}");
            assert_eq!(TaintToleration.score(&p, &state, &n), score, "case {i}");
        }
    }
}
