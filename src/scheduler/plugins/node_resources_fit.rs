//! NodeResourcesFit: requests must fit the node's allocatable (filter), extended resources
//! (`example.com/foo`) included; LeastAllocated scoring with cpu and memory weighted 1:1
//! (weight 1).

use k8s_openapi::api::core::v1::Pod;

use super::{CycleState, FilterPlugin, Rejection, ScorePlugin, MAX_NODE_SCORE};
use crate::scheduler::node_info::NodeInfo;

pub struct NodeResourcesFit;

/// k8s: fitsRequest — every reason the pod does not fit, in upstream order.
pub fn insufficient(state: &CycleState, node: &NodeInfo) -> Option<String> {
    let want = state.requests;
    let (alloc, used) = (node.allocatable, node.requested);
    // k8s: the pod count is checked first, then cpu, memory, and each scalar resource.
    if used.pods + 1 > alloc.pods {
        return Some("Too many pods".into());
    }
    if want.milli_cpu > 0 && used.milli_cpu + want.milli_cpu > alloc.milli_cpu {
        return Some("Insufficient cpu".into());
    }
    if want.memory > 0 && used.memory + want.memory > alloc.memory {
        return Some("Insufficient memory".into());
    }
    for (name, &amount) in &state.scalar_requests {
        if amount == 0 {
            continue;
        }
        let have = node.allocatable_scalars.get(name).copied().unwrap_or(0);
        let used = node.requested_scalars.get(name).copied().unwrap_or(0);
        if used + amount > have {
            return Some(format!("Insufficient {name}"));
        }
    }
    None
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    /// k8s: EventsToRegister — Node Add, UpdateNodeAllocatable; assigned Pod Delete
    fn events(&self) -> u32 {
        use crate::scheduler::queue::events::*;
        NODE_ADD | NODE_ALLOCATABLE | POD_DELETE
    }

    fn filter(&self, _pod: &Pod, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        match insufficient(state, node) {
            // k8s: Unschedulable — preemption may free the resources.
            Some(reason) => Err(Rejection::unschedulable(reason)),
            None => Ok(()),
        }
    }
}

/// k8s: leastRequestedScore = (capacity − requested) × 100 / capacity, 0 when over.
fn least_requested(requested: i128, capacity: i128) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    ((capacity - requested) * i128::from(MAX_NODE_SCORE) / capacity) as i64
}

impl ScorePlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn score(&self, _pod: &Pod, state: &CycleState, node: &NodeInfo) -> i64 {
        let want = state.non_zero_requests;
        let used = node.non_zero_requested;
        let cpu = least_requested(used.milli_cpu + want.milli_cpu, node.allocatable.milli_cpu);
        let mem = least_requested(used.memory + want.memory, node.allocatable.memory);
        (cpu + mem) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::pod;
    use serde_json::json;

    #[test]
    fn least_requested_scores() {
        assert_eq!(least_requested(0, 4000), 100);
        assert_eq!(least_requested(1000, 4000), 75);
        assert_eq!(least_requested(4000, 4000), 0);
        assert_eq!(least_requested(5000, 4000), 0);
        assert_eq!(least_requested(1, 0), 0);
    }

    #[test]
    fn requests_fit_allocatable_extended_resources_included() {
        let node = |alloc: serde_json::Value| {
            NodeInfo::new(
                serde_json::from_value(
                    json!({"metadata": {"name": "n"}, "status": {"allocatable": alloc}}),
                )
                .unwrap(),
            )
        };
        let with = |req: serde_json::Value| {
            pod(
                "p",
                json!({}),
                json!({"containers": [{"name": "c", "resources": {"requests": req}}]}),
            )
        };
        let base = json!({"cpu": "2", "memory": "1Gi", "pods": "10"});
        let mut foo = base.clone();
        foo["example.com/foo"] = json!("2");
        // (allocatable, requests, expected) — k8s: fitsRequest, §5.2
        let cases = [
            (base.clone(), json!({"cpu": "1"}), None),
            (base.clone(), json!({"cpu": "3"}), Some("Insufficient cpu")),
            (
                base.clone(),
                json!({"memory": "2Gi"}),
                Some("Insufficient memory"),
            ),
            (
                base.clone(),
                json!({"example.com/foo": "1"}),
                Some("Insufficient example.com/foo"),
            ),
            (foo.clone(), json!({"example.com/foo": "2"}), None),
            (
                foo.clone(),
                json!({"example.com/foo": "3"}),
                Some("Insufficient example.com/foo"),
            ),
            (json!({"pods": "0"}), json!({}), Some("Too many pods")),
        ];
        for (i, (alloc, req, want)) in cases.into_iter().enumerate() {
            let (n, p) = (node(alloc), with(req));
            let got = NodeResourcesFit.filter(&p, &CycleState::new(&p), &n);
            assert_eq!(got.err().map(|r| r.reason).as_deref(), want, "case {i}");
        }
    }
}
