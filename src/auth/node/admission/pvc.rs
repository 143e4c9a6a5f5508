//! NodeRestriction for claims (k8s: admitPVCStatus): a node updates only the capacity and
//! conditions of a claim's status.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{NodeAdmission, Operation};
use crate::api::status::ApiError;

/// k8s: admitPVCStatus: only status.capacity, status.conditions and (RecoverVolumeExpansion,
/// on by default) status.allocatedResources[Statuses] may change.
pub(super) fn admit_pvc_status(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
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
