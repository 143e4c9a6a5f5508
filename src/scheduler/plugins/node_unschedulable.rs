//! NodeUnschedulable: cordoned nodes take only pods that tolerate the unschedulable taint.

use super::CycleState;
use k8s_openapi::api::core::v1::{Pod, Taint};

use super::FilterPlugin;
use crate::api::taints::tolerated;
use crate::scheduler::node_info::NodeInfo;

pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, pod: &Pod, _state: &CycleState, node: &NodeInfo) -> Result<(), String> {
        let cordoned = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        if cordoned && !tolerated(&tolerations, &taint) {
            return Err("node(s) were unschedulable".into());
        }
        Ok(())
    }
}
