//! NodeUnschedulable: cordoned nodes take only pods that tolerate the unschedulable taint.

use super::CycleState;
use k8s_openapi::api::core::v1::{Pod, Taint};

use super::taint_toleration::tolerations;
use super::FilterPlugin;
use crate::api::taints::tolerated;
use crate::scheduler::node_info::NodeInfo;

pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
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
        let cordoned = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !cordoned {
            return Ok(());
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerated(tolerations(pod), &taint) {
            // k8s: UnschedulableAndUnresolvable
            return Err(super::Rejection::unresolvable("node(s) were unschedulable"));
        }
        Ok(())
    }
}
