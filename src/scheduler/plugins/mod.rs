//! Scheduler plugins at the framework's extension points, one per file. The default profile
//! lists them in upstream order with upstream weights.
//! k8s: pkg/scheduler/apis/config/v1/default_plugins.go

use k8s_openapi::api::core::v1::Pod;

use super::node_info::{pod_requests, NodeInfo, Resources};

pub mod balanced_allocation;
pub mod node_affinity;
pub mod node_name;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod taint_toleration;

/// What a scheduling cycle works out once for its pod and every plugin reads (k8s: CycleState,
/// filled at PreFilter and PreScore).
#[derive(Clone, Copy, Debug)]
pub struct CycleState {
    /// The pod's requests (for fitting).
    pub requests: Resources,
    /// With the scoring defaults for containers that request nothing.
    pub non_zero_requests: Resources,
}

impl CycleState {
    pub fn new(pod: &Pod) -> Self {
        CycleState {
            requests: pod_requests(pod, false),
            non_zero_requests: pod_requests(pod, true),
        }
    }
}

/// k8s: MaxNodeScore
pub const MAX_NODE_SCORE: i64 = 100;

/// Decides whether a pod may run on a node; `Err` carries the reason the scheduler reports
/// ("Insufficient cpu").
pub trait FilterPlugin {
    fn name(&self) -> &'static str;
    fn filter(&self, pod: &Pod, state: &CycleState, node: &NodeInfo) -> Result<(), String>;
}

/// Ranks feasible nodes; scores are 0..=100 after `normalize`.
pub trait ScorePlugin {
    fn name(&self) -> &'static str;
    fn weight(&self) -> i64;
    fn score(&self, pod: &Pod, state: &CycleState, node: &NodeInfo) -> i64;
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// k8s: DefaultNormalizeScore — scale to 0..=100 by the maximum, reversed if asked.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

pub struct Profile {
    pub filters: Vec<Box<dyn FilterPlugin>>,
    pub scores: Vec<Box<dyn ScorePlugin>>,
}

impl Default for Profile {
    /// The plugins gantry implements, in the upstream default profile's order and weights.
    fn default() -> Self {
        Profile {
            filters: vec![
                Box::new(node_unschedulable::NodeUnschedulable),
                Box::new(node_name::NodeName),
                Box::new(taint_toleration::TaintToleration),
                Box::new(node_affinity::NodeAffinity),
                Box::new(node_resources_fit::NodeResourcesFit),
            ],
            scores: vec![
                // k8s: TaintToleration 3, NodeResourcesFit 1, NodeResourcesBalancedAllocation 1
                Box::new(taint_toleration::TaintToleration),
                Box::new(node_resources_fit::NodeResourcesFit),
                Box::new(balanced_allocation::BalancedAllocation),
            ],
        }
    }
}
