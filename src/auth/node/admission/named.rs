//! NodeRestriction for the objects named after their node (k8s: admitLease, admitCSINode).

use super::{NodeAdmission, Operation};
use crate::api::status::ApiError;
use crate::auth::node::authorizer::NODE_LEASE_NAMESPACE;
use crate::auth::node::refs;

/// k8s: admitLease: only the node's own Lease in kube-node-lease.
pub(super) fn admit_lease(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    if req.namespace != NODE_LEASE_NAMESPACE {
        return Err(req.forbidden(format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        )));
    }
    let name = if req.operation == Operation::Create {
        let Some(lease) = req.new.filter(|l| l.is_object()) else {
            return Err(req.forbidden("unexpected type <nil>"));
        };
        refs::object_name(lease)
    } else {
        req.name
    };
    if name != node {
        return Err(
            req.forbidden("can only access node lease with the same name as the requesting node")
        );
    }
    Ok(())
}

/// k8s: admitCSINode: only the node's own CSINode.
pub(super) fn admit_csinode(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    let name = if req.operation == Operation::Create {
        let Some(obj) = req.new.filter(|o| o.is_object()) else {
            return Err(req.forbidden("unable to access the object name"));
        };
        refs::object_name(obj)
    } else {
        req.name
    };
    if name != node {
        return Err(
            req.forbidden("can only access CSINode with the same name as the requesting node")
        );
    }
    Ok(())
}
