//! NodeRestriction admission (k8s: plugin/pkg/admission/noderestriction/admission.go, v1.33):
//! what the Node authorizer lets a node write in general, limited to its own objects — its
//! Node (without new taints or restricted labels), its Lease and CSINode, mirror pods bound
//! to it, the status, deletion and eviction of its pods, tokens bound to its pods.
//!
//! Only node users are restricted; every other request passes untouched.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::Arc;

use serde_json::Value;

use super::authorizer::NODE_LEASE_NAMESPACE;
use super::identity::node_identity;
use super::refs;
use crate::api::status::{ApiError, ErrorDetails};
use crate::auth::UserInfo;

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

/// The stored objects the plugin reads (k8s: its pod and node listers).
pub trait NodeLookup {
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Value>>;
    fn node(&self, name: &str) -> Option<Arc<Value>>;
}

/// A lookup that finds nothing: for [`lookups`], which never reads, and for callers that
/// prefetch with [`Prefetched`].
pub struct NoLookup;

impl NodeLookup for NoLookup {
    fn pod(&self, _: &str, _: &str) -> Option<Arc<Value>> {
        None
    }
    fn node(&self, _: &str) -> Option<Arc<Value>> {
        None
    }
}

/// The objects [`lookups`] asked for, read by the caller (from its store, asynchronously if
/// need be) before calling [`admit`].
#[derive(Clone, Debug, Default)]
pub struct Prefetched {
    /// `(namespace, name)` and the pod, if it exists.
    pub pod: Option<((String, String), Arc<Value>)>,
    pub node: Option<(String, Arc<Value>)>,
}

impl NodeLookup for Prefetched {
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.pod
            .as_ref()
            .filter(|((ns, n), _)| ns == namespace && n == name)
            .map(|(_, p)| p.clone())
    }
    fn node(&self, name: &str) -> Option<Arc<Value>> {
        self.node
            .as_ref()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

/// What [`admit`] will read through its lookup for this request: the pod `(namespace, name)`
/// and the requesting node's Node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookups {
    pub pod: Option<(String, String)>,
    pub node: Option<String>,
}

/// The reads [`admit`] needs, so that a caller whose store is asynchronous can do them first
/// and pass a [`Prefetched`] (the request's own `lookup` is not used here).
pub fn lookups(user: &UserInfo, req: &NodeAdmission) -> Lookups {
    let mut want = Lookups::default();
    let Some(node) = node_identity(user).filter(|n| !n.is_empty()) else {
        return want;
    };
    let ns = req.namespace.to_string();
    match (req.group, req.resource, req.subresource, req.operation) {
        ("", "pods", "", Operation::Delete) if req.old.is_none() => {
            want.pod = Some((ns, req.name.to_string()));
        }
        ("", "pods", "", Operation::Create) => want.node = Some(node.to_string()),
        ("", "pods", "eviction", Operation::Create) => {
            let name = if req.name.is_empty() {
                req.new.map(refs::object_name).unwrap_or_default()
            } else {
                req.name
            };
            want.pod = Some((ns, name.to_string()));
        }
        ("", "serviceaccounts", "token", Operation::Create) => {
            let name = req
                .new
                .and_then(|t| t.pointer("/spec/boundObjectRef/name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !name.is_empty() {
                want.pod = Some((ns, name.to_string()));
            }
        }
        _ => {}
    }
    want
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
fn lister_not_found(kind: &str, name: &str) -> ApiError {
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
            "" => admit_pod(node, req),
            "status" => admit_pod_status(node, req),
            "eviction" => admit_pod_eviction(node, req),
            other => Err(req.forbidden(format!(
                "unexpected pod subresource {other:?}, only 'status' and 'eviction' are allowed"
            ))),
        },
        ("", "nodes") => admit_node(node, req),
        ("", "persistentvolumeclaims") => match req.subresource {
            "status" => admit_pvc_status(node, req),
            _ => Err(req.forbidden("may only update PVC status")),
        },
        ("", "serviceaccounts") => admit_service_account(node, req),
        ("coordination.k8s.io", "leases") => admit_lease(node, req),
        ("storage.k8s.io", "csinodes") => admit_csinode(node, req),
        ("certificates.k8s.io", "certificatesigningrequests") => admit_csr(node, req),
        _ => Ok(()),
    }
}

/// k8s: admitPod: a node creates mirror pods and deletes its own pods.
fn admit_pod(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
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

/// A map field, absent and empty alike (k8s: labels.Equals, Semantic.DeepEqual on nil/empty).
fn map_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a serde_json::Map<String, Value>> {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
}

fn list_at<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// k8s: admitPodStatus: only pods bound to the node, without touching labels or resource
/// claim statuses.
fn admit_pod_status(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
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
fn admit_pod_eviction(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
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

/// k8s: admitPVCStatus: only status.capacity, status.conditions and (RecoverVolumeExpansion,
/// on by default) status.allocatedResources[Statuses] may change.
fn admit_pvc_status(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    if req.operation != Operation::Update {
        return Err(req.forbidden(format!("unexpected operation {:?}", req.operation.as_str())));
    }
    let (Some(old), Some(new)) = (req.old, req.new) else {
        return Err(req.forbidden("unexpected type <nil>"));
    };
    let strip = |pvc: &Value| -> Value {
        let mut pvc = pvc.clone();
        if let Some(meta) = pvc.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        if let Some(status) = pvc.get_mut("status").and_then(Value::as_object_mut) {
            for k in [
                "capacity",
                "conditions",
                "allocatedResources",
                "allocatedResourceStatuses",
            ] {
                status.remove(k);
            }
        }
        normalize(&mut pvc);
        pvc
    };
    let (old, new) = (strip(old), strip(new));
    if old != new {
        let changed = changed_fields(&old, &new, String::new());
        return Err(req.forbidden(format!(
            "node {node:?} is not allowed to update fields other than status.capacity and status.conditions: {}",
            changed.join(", ")
        )));
    }
    Ok(())
}

/// Drops nulls, empty maps and empty lists (k8s: Semantic.DeepEqual treats nil and empty as
/// equal).
fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                normalize(x);
            }
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The paths where two normalized objects differ (upstream prints a cmp.Diff instead).
fn changed_fields(old: &Value, new: &Value, at: String) -> Vec<String> {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    let path = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    match (a.get(k), b.get(k)) {
                        (Some(x), Some(y)) => changed_fields(x, y, path),
                        _ => vec![path],
                    }
                })
                .collect()
        }
        (a, b) if a == b => Vec::new(),
        _ => vec![at],
    }
}

/// k8s: admitNode: a node writes only its own Node, never with a configSource, never
/// changing its taints, and sets only the labels a kubelet may set.
fn admit_node(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    let requested = req.object_name();
    if requested != node {
        return Err(req.forbidden(format!(
            "node {node:?} is not allowed to modify node {requested:?}"
        )));
    }
    match req.operation {
        Operation::Create => {
            let Some(obj) = req.new else {
                return Err(req.forbidden("unexpected type <nil>"));
            };
            if obj
                .pointer("/spec/configSource")
                .is_some_and(|c| !c.is_null())
            {
                return Err(req.forbidden(format!(
                    "node {node:?} is not allowed to create pods with a non-nil configSource"
                )));
            }
            let forbidden = forbidden_labels(&modified_labels(obj, None));
            if !forbidden.is_empty() {
                return Err(req.forbidden(format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    forbidden.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Operation::Update => {
            let (Some(new), Some(old)) = (req.new, req.old) else {
                return Err(req.forbidden("unexpected type <nil>"));
            };
            if config_source(new).is_some() && config_source(new) != config_source(old) {
                return Err(req.forbidden(format!(
                    "node {node:?} is not allowed to update configSource to a new non-nil configSource"
                )));
            }
            if list_at(new, "/spec/taints") != list_at(old, "/spec/taints") {
                return Err(req.forbidden(format!("node {node:?} is not allowed to modify taints")));
            }
            let forbidden = forbidden_labels(&modified_labels(new, Some(old)));
            if !forbidden.is_empty() {
                return Err(req.forbidden(format!(
                    "is not allowed to modify labels: {}",
                    forbidden.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Operation::Delete => {}
    }
    Ok(())
}

fn config_source(node: &Value) -> Option<&Value> {
    node.pointer("/spec/configSource").filter(|c| !c.is_null())
}

/// k8s: getModifiedLabels: the keys added, removed or changed.
fn modified_labels(new: &Value, old: Option<&Value>) -> BTreeSet<String> {
    let empty = serde_json::Map::new();
    let a = map_at(new, "/metadata/labels").unwrap_or(&empty);
    let b = old
        .and_then(|o| map_at(o, "/metadata/labels"))
        .unwrap_or(&empty);
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .chain(b.iter().filter(|(k, v)| a.get(*k) != Some(v)))
        .map(|(k, _)| k.clone())
        .collect()
}

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map(|(ns, _)| ns).unwrap_or_default()
}

fn in_namespace(ns: &str, domain: &str) -> bool {
    ns == domain || ns.strip_suffix(domain).is_some_and(|p| p.ends_with('.'))
}

/// k8s: kubeletapis.IsKubeletLabel (k8s.io/kubelet/pkg/apis/well_known_labels.go).
pub fn is_kubelet_label(key: &str) -> bool {
    const KUBELET_LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    let ns = label_namespace(key);
    KUBELET_LABELS.contains(&key)
        || in_namespace(ns, "kubelet.kubernetes.io")
        || in_namespace(ns, "node.kubernetes.io")
}

/// k8s: getForbiddenLabels: `node-restriction.kubernetes.io/` labels, and kubernetes.io /
/// k8s.io labels other than the kubelet's.
fn forbidden_labels(modified: &BTreeSet<String>) -> BTreeSet<String> {
    modified
        .iter()
        .filter(|label| {
            let ns = label_namespace(label);
            let restricted = in_namespace(ns, "node-restriction.kubernetes.io");
            let kubernetes = in_namespace(ns, "kubernetes.io") || in_namespace(ns, "k8s.io");
            restricted || (kubernetes && !is_kubelet_label(label))
        })
        .cloned()
        .collect()
}

/// k8s: admitServiceAccount: a node's TokenRequest must be bound to a pod on that node.
fn admit_service_account(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
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

/// k8s: admitLease: only the node's own Lease in kube-node-lease.
fn admit_lease(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
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
fn admit_csinode(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
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

/// k8s: the signers whose certificates name a node (certapi.KubeletServingSignerName and
/// KubeAPIServerClientKubeletSignerName).
const NODE_SIGNERS: &[&str] = &[
    "kubernetes.io/kubelet-serving",
    "kubernetes.io/kube-apiserver-client-kubelet",
];

/// k8s: admitCSR (v1.31+, AllowInsecureKubeletCertificateSigningRequests off): a node asks
/// for a kubelet client or serving certificate only in its own name.
fn admit_csr(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    if req.operation != Operation::Create {
        return Ok(());
    }
    let Some(csr) = req.new.filter(|c| c.is_object()) else {
        return Err(req.forbidden("unexpected type <nil>"));
    };
    let signer = csr
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !NODE_SIGNERS.contains(&signer) {
        return Ok(());
    }
    // `spec.request` is the PEM, base64-encoded in JSON as every []byte field.
    let pem = csr
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .map(|b| super::csr::base64_decode(b).unwrap_or_default())
        .unwrap_or_default();
    let cn = super::csr::csr_common_name(&pem)
        .map_err(|e| req.forbidden(format!("unable to parse csr: {e}")))?;
    if cn != format!("system:node:{node}") {
        return Err(req.forbidden(format!(
            "can only create a node CSR with CN=system:node:{node}"
        )));
    }
    Ok(())
}
