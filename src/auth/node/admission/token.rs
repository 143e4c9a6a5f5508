//! NodeRestriction for TokenRequests (k8s: admitServiceAccount): a node's token must be bound
//! to a pod on that node.

use serde_json::Value;

use super::{lister_not_found, NodeAdmission, Operation};
use crate::api::status::ApiError;
use crate::auth::node::refs;

/// k8s: admitServiceAccount: a node's TokenRequest must be bound to a pod on that node.
pub(super) fn admit_service_account(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    if req.operation != Operation::Create || req.subresource != "token" {
        return Ok(());
    }
    let Some(tr) = req.new.filter(|t| t.is_object()) else {
        return Err(req.forbidden("unexpected type <nil>"));
    };
    let field = |k: &str| {
        tr.pointer("/spec/boundObjectRef")
            .and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let bound = tr
        .pointer("/spec/boundObjectRef")
        .is_some_and(|r| !r.is_null());
    if !bound || field("apiVersion") != "v1" || field("kind") != "Pod" || field("name").is_empty() {
        return Err(req.forbidden("node requested token not bound to a pod"));
    }
    if field("uid").is_empty() {
        return Err(req.forbidden("node requested token with a pod binding without a uid"));
    }
    let pod = req
        .lookup
        .pod(req.namespace, field("name"))
        .ok_or_else(|| lister_not_found("pod", field("name")))?;
    if field("uid") != refs::object_uid(&pod) {
        return Err(req.forbidden(format!(
            "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
            field("uid")
        )));
    }
    if refs::pod_node_name(&pod) != node {
        return Err(
            req.forbidden("node requested token bound to a pod scheduled on a different node")
        );
    }
    Ok(())
}
