//! NodeRestriction admission (k8s: plugin/pkg/admission/noderestriction/admission.go, v1.33):
//! what the Node authorizer lets a node write in general, limited to its own objects — its
//! Node (without new taints or restricted labels), its Lease and CSINode, mirror pods bound
//! to it, the status, deletion and eviction of its pods, tokens bound to its pods.
//!
//! Only node users are restricted; every other request passes untouched.

use std::fmt::Display;

use serde_json::Value;

use super::identity::node_identity;
use super::refs;
use crate::api::status::{ApiError, ErrorDetails};
use crate::auth::UserInfo;

mod certificates;
mod lookup;
mod named;
mod node;
mod pods;
mod pvc;
mod token;

pub use lookup::{lookups, Lookups, NoLookup, NodeLookup, Prefetched};
pub use node::is_kubelet_label;

/// k8s: admission.Operation, the ones the plugin handles (CONNECT passes it untouched; a
/// patch is an Update, a subresource create such as eviction or token a Create).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// One write request, as the admission chain sees it (k8s: admission.Attributes).
#[derive(Clone, Copy)]
pub struct NodeAdmission<'a> {
    pub operation: Operation,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    /// The name in the request's path (empty for a create of a top-level object).
    pub name: &'a str,
    /// The object as stored (update; delete when the caller has it — else it is looked up).
    pub old: Option<&'a Value>,
    /// The object sent (create; the Eviction or TokenRequest of a subresource create), or for
    /// an update or patch the object as it will be stored. Upstream's kubelet patches, so
    /// upstream's plugin sees the whole pod or node; gantry's kubelet sends only the status in
    /// a status update, so the caller passes the stored object with that status, else the
    /// missing labels and taints read as changed.
    pub new: Option<&'a Value>,
    pub lookup: &'a dyn NodeLookup,
}

impl NodeAdmission<'_> {
    /// k8s: admission.NewForbidden: `<resource> "<object name>" is forbidden: <why>`, the name
    /// being the sent object's (or its generateName), else "Unknown".
    fn forbidden(&self, why: impl Display) -> ApiError {
        let name = self
            .new
            .and_then(|o| {
                [refs::object_name(o), generate_name(o)]
                    .into_iter()
                    .find(|n| !n.is_empty())
            })
            .unwrap_or("Unknown");
        let qualified = if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!("{qualified} \"{name}\" is forbidden: {why}"),
            details: Some(Box::new(ErrorDetails {
                name: name.to_string(),
                group: self.group.to_string(),
                kind: self.resource.to_string(),
                causes: Vec::new(),
            })),
        }
    }

    /// The object's name in the path, else in the sent object.
    fn object_name(&self) -> &str {
        if self.name.is_empty() {
            self.new.map(refs::object_name).unwrap_or_default()
        } else {
            self.name
        }
    }
}

fn generate_name(obj: &Value) -> &str {
    obj.pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// k8s: the NotFound of a lister (`pod "x" not found`).
pub(super) fn lister_not_found(kind: &str, name: &str) -> ApiError {
    ApiError {
        code: 404,
        reason: "NotFound",
        message: format!("{kind} \"{name}\" not found"),
        details: Some(Box::new(ErrorDetails {
            name: name.to_string(),
            group: String::new(),
            kind: kind.to_string(),
            causes: Vec::new(),
        })),
    }
}

/// k8s: Plugin.Admit.
pub fn admit(user: &UserInfo, req: &NodeAdmission) -> Result<(), ApiError> {
    let Some(node) = node_identity(user) else {
        return Ok(());
    };
    if node.is_empty() {
        return Err(req.forbidden(format!(
            "could not determine node from user {:?}",
            user.name
        )));
    }
    match (req.group, req.resource) {
        ("", "pods") => match req.subresource {
            "" => pods::admit_pod(node, req),
            "status" => pods::admit_pod_status(node, req),
            "eviction" => pods::admit_pod_eviction(node, req),
            other => Err(req.forbidden(format!(
                "unexpected pod subresource {other:?}, only 'status' and 'eviction' are allowed"
            ))),
        },
        ("", "nodes") => node::admit_node(node, req),
        ("", "persistentvolumeclaims") => match req.subresource {
            "status" => pvc::admit_pvc_status(node, req),
            _ => Err(req.forbidden("may only update PVC status")),
        },
        ("", "serviceaccounts") => token::admit_service_account(node, req),
        ("coordination.k8s.io", "leases") => named::admit_lease(node, req),
        ("storage.k8s.io", "csinodes") => named::admit_csinode(node, req),
        ("certificates.k8s.io", "certificatesigningrequests") => certificates::admit_csr(node, req),
        _ => Ok(()),
    }
}

/// A map field, absent and empty alike (k8s: labels.Equals, Semantic.DeepEqual on nil/empty).
pub(super) fn map_at<'a>(
    obj: &'a Value,
    pointer: &str,
) -> Option<&'a serde_json::Map<String, Value>> {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
}

pub(super) fn list_at<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}
