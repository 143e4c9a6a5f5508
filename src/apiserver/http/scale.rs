//! `deployments|replicasets|replicationcontrollers/scale`: the autoscaling/v1 Scale view of an
//! object's replicas (kubectl-compat.md §3; `status.replicas` is required by the Python client,
//! `status.selector` is a label-selector string).

use serde_json::{json, Value};

use crate::api::status::ApiError;

/// The Scale of `obj`.
pub fn of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&obj["spec"]["selector"]),
        },
    })
}

/// `obj` with the replicas a Scale asks for; its resourceVersion, if any, is the precondition.
pub fn apply(mut obj: Value, scale: &Value) -> Result<Value, ApiError> {
    let replicas = scale["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| ApiError::bad_request("a Scale needs spec.replicas, an integer"))?;
    obj["spec"]["replicas"] = json!(replicas);
    match scale["metadata"]["resourceVersion"].as_str() {
        Some(rv) if !rv.is_empty() => obj["metadata"]["resourceVersion"] = json!(rv),
        _ => {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
        }
    }
    Ok(obj)
}

/// A LabelSelector (or a ReplicationController's or Service's plain map) as `a=b,c in (d,e)`.
pub(super) fn selector_string(sel: &Value) -> String {
    let labels = sel.get("matchLabels").unwrap_or(sel);
    let mut parts: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "matchExpressions" && k.as_str() != "matchLabels")
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_reflects_and_sets_replicas() {
        let rs = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "7"},
                        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                                 "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
                        "status": {"replicas": 2}});
        let s = of(&rs);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(
            s["status"],
            json!({"replicas": 2, "selector": "app=web,tier in (a,b)"})
        );
        assert_eq!(s["metadata"]["resourceVersion"], "7");
        let rc = json!({"metadata": {"name": "old"}, "spec": {"selector": {"app": "old"}}});
        assert_eq!(
            of(&rc)["status"],
            json!({"replicas": 0, "selector": "app=old"})
        );
        let scaled = apply(rs.clone(), &json!({"spec": {"replicas": 5}})).unwrap();
        assert_eq!(scaled["spec"]["replicas"], 5);
        assert!(scaled["metadata"].get("resourceVersion").is_none());
        let pinned = apply(
            rs.clone(),
            &json!({"metadata": {"resourceVersion": "6"}, "spec": {"replicas": 5}}),
        )
        .unwrap();
        assert_eq!(pinned["metadata"]["resourceVersion"], "6");
        assert_eq!(apply(rs, &json!({"spec": {}})).unwrap_err().code, 400);
    }
}
