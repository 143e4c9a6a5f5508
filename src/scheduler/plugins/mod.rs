//! Scheduler plugins at the framework's extension points, one per file. The default profile
//! lists them in upstream order with upstream weights.
//! k8s: pkg/scheduler/apis/config/v1/default_plugins.go (reference §5.1, §5.2)

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::node_info::{pod_requests, pod_scalar_requests, NodeInfo, Resources, Scalars};

pub mod balanced_allocation;
pub mod default_preemption;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

/// The cluster as one scheduling cycle sees it (k8s: the cache Snapshot).
pub struct Snapshot<'a> {
    /// Every node, by name.
    pub nodes: &'a [Box<NodeInfo>],
    /// How many pods on them have pod (anti-)affinity terms.
    pub pods_with_affinity: usize,
    /// Normalized image name → number of nodes that have it (k8s: ImageStateSummary.NumNodes).
    pub image_nodes: &'a BTreeMap<String, usize>,
}

/// What a scheduling cycle works out once for its pod and every plugin reads (k8s: CycleState,
/// filled at PreFilter and PreScore).
#[derive(Clone, Debug, Default)]
pub struct CycleState {
    /// The pod's requests (for fitting).
    pub requests: Resources,
    /// With the scoring defaults for containers that request nothing.
    pub non_zero_requests: Resources,
    /// Extended and other scalar requests.
    pub scalar_requests: Scalars,
    pub spread_filter: Option<pod_topology_spread::FilterState>,
    pub spread_score: Option<pod_topology_spread::ScoreState>,
    pub inter_pod_filter: Option<inter_pod_affinity::FilterState>,
    pub inter_pod_score: Option<inter_pod_affinity::ScoreState>,
    pub image_score: Option<image_locality::ScoreState>,
}

impl CycleState {
    pub fn new(pod: &Pod) -> Self {
        CycleState {
            requests: pod_requests(pod, false),
            non_zero_requests: pod_requests(pod, true),
            scalar_requests: pod_scalar_requests(pod),
            ..Default::default()
        }
    }
}

/// k8s: MaxNodeScore
pub const MAX_NODE_SCORE: i64 = 100;

/// Why a filter refused a node. k8s: framework.Status with code Unschedulable (preemption may
/// help) or UnschedulableAndUnresolvable (it cannot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub resolvable: bool,
}

impl Rejection {
    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Rejection {
            reason: reason.into(),
            resolvable: true,
        }
    }

    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Rejection {
            reason: reason.into(),
            resolvable: false,
        }
    }
}

/// Decides whether a pod may run on a node; the rejection carries the reason the scheduler
/// reports ("Insufficient cpu").
pub trait FilterPlugin {
    fn name(&self) -> &'static str;
    /// k8s: PreFilter — once per cycle, before any node is filtered.
    fn pre_filter(
        &self,
        _pod: &Pod,
        _state: &mut CycleState,
        _snapshot: &Snapshot,
    ) -> Result<(), Rejection> {
        Ok(())
    }
    fn filter(&self, pod: &Pod, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection>;
    /// The cluster events that may make a pod this plugin rejected schedulable (a mask of
    /// `queue::events`). k8s: EnqueueExtensions.EventsToRegister
    fn events(&self) -> u32;
}

/// Ranks feasible nodes; scores are 0..=100 after `normalize`.
pub trait ScorePlugin {
    fn name(&self) -> &'static str;
    fn weight(&self) -> i64;
    /// k8s: PreScore — once per cycle, with the feasible nodes.
    fn pre_score(
        &self,
        _pod: &Pod,
        _state: &mut CycleState,
        _snapshot: &Snapshot,
        _feasible: &[&NodeInfo],
    ) {
    }
    fn score(&self, pod: &Pod, state: &CycleState, node: &NodeInfo) -> i64;
    /// `scores` lines up with the feasible nodes.
    fn normalize(&self, _state: &CycleState, _feasible: &[&NodeInfo], _scores: &mut [i64]) {}
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
            // k8s: default_plugins.go Filter order
            filters: vec![
                Box::new(node_unschedulable::NodeUnschedulable),
                Box::new(node_name::NodeName),
                Box::new(taint_toleration::TaintToleration),
                Box::new(node_affinity::NodeAffinity),
                Box::new(node_resources_fit::NodeResourcesFit),
                Box::new(pod_topology_spread::PodTopologySpread),
                Box::new(inter_pod_affinity::InterPodAffinity),
            ],
            // k8s: TaintToleration 3, NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2,
            // NodeResourcesFit 1, NodeResourcesBalancedAllocation 1, ImageLocality 1
            scores: vec![
                Box::new(taint_toleration::TaintToleration),
                Box::new(node_affinity::NodeAffinity),
                Box::new(pod_topology_spread::PodTopologySpread),
                Box::new(inter_pod_affinity::InterPodAffinity),
                Box::new(node_resources_fit::NodeResourcesFit),
                Box::new(balanced_allocation::BalancedAllocation),
                Box::new(image_locality::ImageLocality),
            ],
        }
    }
}

/// Test helpers shared by the plugins' tables.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::{json, Value};

    pub fn pod(name: &str, labels: Value, spec: Value) -> Pod {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        }
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default",
            "labels": labels, "uid": name}, "spec": spec}))
        .unwrap()
    }

    pub fn node(name: &str, labels: Value) -> Node {
        let mut labels = labels;
        labels["kubernetes.io/hostname"] = json!(name);
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
        .unwrap()
    }

    /// Nodes with the given pods bound to them: (node, labels, pods).
    pub fn cluster(nodes: Vec<(Node, Vec<Pod>)>) -> BTreeMap<String, NodeInfo> {
        let mut out = BTreeMap::new();
        for (n, pods) in nodes {
            let mut info = NodeInfo::new(n);
            for p in pods {
                let key = format!("default/{}", p.metadata.name.clone().unwrap_or_default());
                info.add_pod(&key, &Arc::new(p));
            }
            out.insert(info.name().to_string(), info);
        }
        out
    }

    #[allow(clippy::vec_box)]
    fn boxed(nodes: &BTreeMap<String, NodeInfo>) -> Vec<Box<NodeInfo>> {
        nodes.values().cloned().map(Box::new).collect()
    }

    /// Runs a plugin's PreFilter then Filter on every node: node → passes.
    pub fn filter_all(
        plugin: &dyn FilterPlugin,
        pod: &Pod,
        nodes: &BTreeMap<String, NodeInfo>,
    ) -> BTreeMap<String, Result<(), Rejection>> {
        let images = BTreeMap::new();
        let all = boxed(nodes);
        let snap = Snapshot {
            nodes: &all,
            pods_with_affinity: all.iter().map(|n| n.pods_with_affinity).sum(),
            image_nodes: &images,
        };
        let mut state = CycleState::new(pod);
        if let Err(r) = plugin.pre_filter(pod, &mut state, &snap) {
            return nodes.keys().map(|k| (k.clone(), Err(r.clone()))).collect();
        }
        nodes
            .iter()
            .map(|(k, n)| (k.clone(), plugin.filter(pod, &state, n)))
            .collect()
    }

    /// Runs a plugin's PreScore, Score and NormalizeScore over all nodes: node → score.
    pub fn score_all(
        plugin: &dyn ScorePlugin,
        pod: &Pod,
        nodes: &BTreeMap<String, NodeInfo>,
        image_nodes: &BTreeMap<String, usize>,
    ) -> BTreeMap<String, i64> {
        let all = boxed(nodes);
        let snap = Snapshot {
            nodes: &all,
            pods_with_affinity: all.iter().map(|n| n.pods_with_affinity).sum(),
            image_nodes,
        };
        let feasible: Vec<&NodeInfo> = nodes.values().collect();
        let mut state = CycleState::new(pod);
        plugin.pre_score(pod, &mut state, &snap, &feasible);
        let mut scores: Vec<i64> = feasible
            .iter()
            .map(|n| plugin.score(pod, &state, n))
            .collect();
        plugin.normalize(&state, &feasible, &mut scores);
        nodes.keys().cloned().zip(scores).collect()
    }
}
