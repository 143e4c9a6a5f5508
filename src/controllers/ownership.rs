//! Claiming objects through controller references: the writes of adoption and release.
//! k8s: pkg/controller/controller_ref_manager.go (reference §1.6) — an orphan that matches
//! gets a controller reference (controller and blockOwnerDeletion true); an owned object that
//! stopped matching loses it.

use serde::Serialize;
use serde_json::{json, Value};

use crate::api::registry::ResourceInfo;
use crate::apiserver::Part;
use crate::component::ApiOp;

/// The controller reference an owner puts on what it adopts or creates.
pub fn controller_ref(
    api_version: &str,
    kind: &str,
    name: &Option<String>,
    uid: &Option<String>,
) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// `obj` with `owner` added to its ownerReferences.
pub fn adopted(obj: &impl Serialize, owner: Value) -> Value {
    let mut body = serde_json::to_value(obj).expect("objects serialize");
    match body["metadata"]["ownerReferences"].as_array_mut() {
        Some(refs) => refs.push(owner),
        None => body["metadata"]["ownerReferences"] = json!([owner]),
    }
    body
}

/// `obj` without the reference to the owner with `owner_uid`.
pub fn released(obj: &impl Serialize, owner_uid: &str) -> Value {
    let mut body = serde_json::to_value(obj).expect("objects serialize");
    if let Some(refs) = body["metadata"]["ownerReferences"].as_array_mut() {
        refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
    }
    body
}

/// The update that writes an adopted or released object.
pub fn claim_update(resource: &'static ResourceInfo, body: Value) -> ApiOp {
    ApiOp::Update {
        resource,
        namespace: body["metadata"]["namespace"].as_str().map(String::from),
        name: body["metadata"]["name"].as_str().unwrap_or("").to_string(),
        body,
        part: Part::Main,
    }
}
