//! NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be used in equal
//! proportion (weight 1). k8s: score = (1 − std(fractions)) × 100, fractions capped at 1; for two
//! resources std = |f1 − f2| / 2.

use k8s_openapi::api::core::v1::Pod;

use super::{CycleState, ScorePlugin, MAX_NODE_SCORE};
use crate::scheduler::node_info::NodeInfo;

pub struct BalancedAllocation;

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn score(&self, _pod: &Pod, state: &CycleState, node: &NodeInfo) -> i64 {
        let want = state.non_zero_requests;
        let used = node.non_zero_requested;
        let fraction = |req: i128, cap: i128| {
            if cap == 0 {
                1.0
            } else {
                (req as f64 / cap as f64).min(1.0)
            }
        };
        let cpu = fraction(used.milli_cpu + want.milli_cpu, node.allocatable.milli_cpu);
        let mem = fraction(used.memory + want.memory, node.allocatable.memory);
        let std = (cpu - mem).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}
