//! TaintToleration: NoSchedule and NoExecute taints must be tolerated (filter); fewer
//! untolerated PreferNoSchedule taints score higher (weight 3).

use k8s_openapi::api::core::v1::{Pod, Toleration};

use super::{default_normalize, CycleState, FilterPlugin, ScorePlugin};
use crate::api::taints::{describe, tolerated};
use crate::scheduler::node_info::NodeInfo;

pub struct TaintToleration;

fn tolerations(pod: &Pod) -> Vec<Toleration> {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default()
}

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, pod: &Pod, _state: &CycleState, node: &NodeInfo) -> Result<(), String> {
        let tols = tolerations(pod);
        let taints = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        match taints
            .iter()
            .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(&tols, t))
        {
            Some(t) => Err(format!("node(s) had untolerated taint {}", describe(t))),
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
        let tols: Vec<Toleration> = tolerations(pod)
            .into_iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .collect();
        let taints = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&tols, t))
            .count() as i64
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}
