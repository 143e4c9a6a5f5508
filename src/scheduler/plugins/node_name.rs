//! NodeName: a pod that names a node (spec.nodeName set by its author) fits only there.

use super::CycleState;
use k8s_openapi::api::core::v1::Pod;

use super::FilterPlugin;
use crate::scheduler::node_info::NodeInfo;

pub struct NodeName;

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    /// k8s: EventsToRegister — Node Add
    fn events(&self) -> u32 {
        use crate::scheduler::queue::events::*;
        NODE_ADD
    }

    fn filter(
        &self,
        pod: &Pod,
        _state: &CycleState,
        node: &NodeInfo,
    ) -> Result<(), super::Rejection> {
        match pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
        {
            Some(wanted) if wanted != node.name() => Err(super::Rejection::unresolvable(
                "node(s) didn't match the requested node name",
            )),
            _ => Ok(()),
        }
    }
}
