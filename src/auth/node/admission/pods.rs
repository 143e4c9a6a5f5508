//! NodeRestriction for pods (k8s: admitPod, admitPodCreate, admitPodStatus, admitPodEviction):
//! a node creates only clean mirror pods bound to itself, and deletes, evicts and reports the
//! status of its own pods only.

use serde_json::Value;

use super::{list_at, lister_not_found, map_at, NodeAdmission, Operation};
use crate::api::status::ApiError;
use crate::auth::node::refs;

/// k8s: admitPod: a node creates mirror pods and deletes its own pods.
pub(super) fn admit_pod(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    match req.operation {
        Operation::Create => admit_pod_create(node, req),
        Operation::Delete => {
            let looked_up;
            let existing = match req.old {
                Some(old) => old,
                None => {
                    looked_up = req
                        .lookup
                        .pod(req.namespace, req.name)
                        .ok_or_else(|| lister_not_found("pod", req.name))?;
                    &*looked_up
                }
            };
            if refs::pod_node_name(existing) != node {
                return Err(req.forbidden(format!(
                    "node {node:?} can only delete pods with spec.nodeName set to itself"
                )));
            }
            Ok(())
        }
        op => Err(req.forbidden(format!(
            "unexpected operation {:?}, node {node:?} can only create and delete mirror pods",
            op.as_str()
        ))),
    }
}

fn owner_flag(owner: &Value, key: &str) -> Option<bool> {
    owner.get(key).and_then(Value::as_bool)
}

/// k8s: admitPodCreate: only a mirror pod bound to the node, owned by its Node, referencing
/// no other API object.
fn admit_pod_create(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    let Some(pod) = req.new.filter(|p| p.is_object()) else {
        return Err(req.forbidden("unexpected type <nil>"));
    };
    if !refs::is_mirror_pod(pod) {
        return Err(req.forbidden(format!(
            "pod does not have {:?} annotation, node {node:?} can only create mirror pods",
            refs::MIRROR_POD_ANNOTATION
        )));
    }
    if refs::pod_node_name(pod) != node {
        return Err(req.forbidden(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        )));
    }
    let owners: &[Value] = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    match owners {
        [] => {
            return Err(req.forbidden(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            )))
        }
        [owner] => {
            let field = |k: &str| owner.get(k).and_then(Value::as_str).unwrap_or_default();
            if field("apiVersion") != "v1" || field("kind") != "Node" || field("name") != node {
                return Err(req.forbidden(format!(
                    "node {node:?} can only create pods with an owner reference set to itself"
                )));
            }
            if owner_flag(owner, "controller") != Some(true) {
                return Err(req.forbidden(format!(
                    "node {node:?} can only create pods with a controller owner reference set to itself"
                )));
            }
            if owner_flag(owner, "blockOwnerDeletion") == Some(true) {
                return Err(req.forbidden(format!(
                    "node {node:?} must not set blockOwnerDeletion on an owner reference"
                )));
            }
            let node_obj = req
                .lookup
                .node(node)
                .ok_or_else(|| lister_not_found("node", node))?;
            let node_uid = refs::object_uid(&node_obj);
            if field("uid") != node_uid {
                return Err(req.forbidden(format!(
                    "node {node} UID mismatch: expected {} got {node_uid}",
                    field("uid")
                )));
            }
        }
        _ => {
            return Err(req.forbidden(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            )))
        }
    }
    if !refs::pod_service_account(pod).is_empty() {
        return Err(req.forbidden(format!(
            "node {node:?} can not create pods that reference a service account"
        )));
    }
    if !refs::pod_secret_names(pod).is_empty() {
        return Err(req.forbidden(format!(
            "node {node:?} can not create pods that reference secrets"
        )));
    }
    if !refs::pod_configmap_names(pod).is_empty() {
        return Err(req.forbidden(format!(
            "node {node:?} can not create pods that reference configmaps"
        )));
    }
    if refs::pod_has_cluster_trust_bundle(pod) {
        return Err(req.forbidden(format!(
            "node {node:?} can not create pods that reference clustertrustbundles"
        )));
    }
    if refs::pod_has_claim_volume(pod) {
        return Err(req.forbidden(format!(
            "node {node:?} can not create pods that reference persistentvolumeclaims"
        )));
    }
    Ok(())
}

/// k8s: admitPodStatus: only pods bound to the node, without touching labels or resource
/// claim statuses.
pub(super) fn admit_pod_status(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    if req.operation != Operation::Update {
        return Err(req.forbidden(format!("unexpected operation {:?}", req.operation.as_str())));
    }
    let Some(old) = req.old else {
        return Err(req.forbidden("unexpected type <nil>"));
    };
    if refs::pod_node_name(old) != node {
        return Err(req.forbidden(format!(
            "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
        )));
    }
    let Some(new) = req.new else {
        return Err(req.forbidden("unexpected type <nil>"));
    };
    if map_at(old, "/metadata/labels") != map_at(new, "/metadata/labels") {
        return Err(req.forbidden(format!(
            "node {node:?} cannot update labels through pod status"
        )));
    }
    let claims = |p: &Value| -> Vec<(Value, Value)> {
        list_at(p, "/status/resourceClaimStatuses")
            .iter()
            .map(|s| {
                (
                    s.get("name").cloned().unwrap_or(Value::Null),
                    s.get("resourceClaimName").cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    };
    if claims(old) != claims(new) {
        return Err(req.forbidden(format!(
            "node {node:?} cannot update resource claim statues"
        )));
    }
    Ok(())
}

/// k8s: admitPodEviction: only pods bound to the node.
pub(super) fn admit_pod_eviction(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    if req.operation != Operation::Create {
        return Err(req.forbidden(format!("unexpected operation {}", req.operation.as_str())));
    }
    let Some(eviction) = req.new.filter(|e| e.is_object()) else {
        return Err(req.forbidden("unexpected type <nil>"));
    };
    let pod_name = if req.name.is_empty() {
        refs::object_name(eviction)
    } else {
        req.name
    };
    if pod_name.is_empty() {
        return Err(req.forbidden("could not determine pod from request data"));
    }
    let pod = req
        .lookup
        .pod(req.namespace, pod_name)
        .ok_or_else(|| lister_not_found("pod", pod_name))?;
    if refs::pod_node_name(&pod) != node {
        return Err(req.forbidden(format!(
            "node {node} can only evict pods with spec.nodeName set to itself"
        )));
    }
    Ok(())
}
