//! NodeResourcesFit: requests must fit the node's allocatable (filter); LeastAllocated scoring
//! with cpu and memory weighted 1:1 (weight 1).

use k8s_openapi::api::core::v1::Pod;

use super::{CycleState, FilterPlugin, ScorePlugin, MAX_NODE_SCORE};
use crate::scheduler::node_info::NodeInfo;

pub struct NodeResourcesFit;

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, _pod: &Pod, state: &CycleState, node: &NodeInfo) -> Result<(), String> {
        let want = state.requests;
        let (alloc, used) = (node.allocatable, node.requested);
        // k8s: the pod count is checked first, then each requested resource.
        if used.pods + 1 > alloc.pods {
            return Err("Too many pods".into());
        }
        if want.milli_cpu > 0 && used.milli_cpu + want.milli_cpu > alloc.milli_cpu {
            return Err("Insufficient cpu".into());
        }
        if want.memory > 0 && used.memory + want.memory > alloc.memory {
            return Err("Insufficient memory".into());
        }
        Ok(())
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

    #[test]
    fn least_requested_scores() {
        assert_eq!(least_requested(0, 4000), 100);
        assert_eq!(least_requested(1000, 4000), 75);
        assert_eq!(least_requested(4000, 4000), 0);
        assert_eq!(least_requested(5000, 4000), 0);
        assert_eq!(least_requested(1, 0), 0);
    }
}
