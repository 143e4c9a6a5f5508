//! NodeRestriction for Node objects (k8s: admitNode, getForbiddenLabels): a node writes only
//! its own Node, never its taints, and sets only the labels a kubelet may set.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{list_at, map_at, NodeAdmission, Operation};
use crate::api::status::ApiError;

/// k8s: admitNode: a node writes only its own Node, never with a configSource, never
/// changing its taints, and sets only the labels a kubelet may set.
pub(super) fn admit_node(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
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
