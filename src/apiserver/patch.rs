//! The four patch formats of PATCH requests, applied to an object as JSON (sans-IO):
//! JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch with the
//! built-in types' merge keys and directives, and server-side apply (for now a strategic merge
//! of the applied configuration; docs/decisions.md).
//! k8s: staging/src/k8s.io/apimachinery/pkg/util/strategicpatch

use serde_json::{Map, Value};

use crate::api::registry::ResourceInfo;
use crate::api::status::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl Kind {
    pub fn from_content_type(content_type: &str) -> Result<Kind, ApiError> {
        match content_type {
            "application/merge-patch+json" => Ok(Kind::Merge),
            "application/json-patch+json" => Ok(Kind::Json),
            "application/strategic-merge-patch+json" => Ok(Kind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Kind::Apply),
            other => Err(ApiError::unsupported_media_type(
                other,
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                    "application/apply-patch+yaml",
                ],
            )),
        }
    }
}

/// `target` with `patch` applied.
pub fn apply(
    kind: Kind,
    mut target: Value,
    patch: &Value,
    _res: &ResourceInfo,
) -> Result<Value, ApiError> {
    match kind {
        Kind::Merge => {
            require_object(patch)?;
            merge(&mut target, patch);
        }
        Kind::Json => json_patch(&mut target, patch)?,
        Kind::Strategic | Kind::Apply => {
            require_object(patch)?;
            strategic(&mut target, patch, None)?;
        }
    }
    Ok(target)
}

fn require_object(patch: &Value) -> Result<(), ApiError> {
    if patch.is_object() {
        Ok(())
    } else {
        Err(ApiError::bad_request("the patch must be a JSON object"))
    }
}

/// RFC 7386: objects merge, null removes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

// --- JSON patch ---

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("the JSON patch is invalid: {}", message.into()))
}

fn pointer_tokens(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(bad(format!("path {path:?} does not start with /")));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// The parent container of `path` and the last token.
fn parent<'a>(
    root: &'a mut Value,
    tokens: &[String],
    path: &str,
) -> Result<(&'a mut Value, String), ApiError> {
    let Some((last, init)) = tokens.split_last() else {
        return Err(bad(format!("path {path:?} names the whole object")));
    };
    let mut v = root;
    for t in init {
        v = match v {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| bad(format!("path {path:?} does not exist")))?;
    }
    Ok((v, last.clone()))
}

fn index(len: usize, token: &str, path: &str, insert: bool) -> Result<usize, ApiError> {
    if insert && token == "-" {
        return Ok(len);
    }
    let i = token
        .parse::<usize>()
        .map_err(|_| bad(format!("{token:?} in {path:?} is not an array index")))?;
    if i > len || (!insert && i == len) {
        return Err(bad(format!("index {i} in {path:?} is out of range")));
    }
    Ok(i)
}

fn remove_at(root: &mut Value, path: &str) -> Result<Value, ApiError> {
    let tokens = pointer_tokens(path)?;
    let (p, last) = parent(root, &tokens, path)?;
    match p {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| bad(format!("path {path:?} does not exist"))),
        Value::Array(a) => {
            let i = index(a.len(), &last, path, false)?;
            Ok(a.remove(i))
        }
        _ => Err(bad(format!("path {path:?} does not exist"))),
    }
}

fn add_at(root: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let tokens = pointer_tokens(path)?;
    if tokens.is_empty() {
        *root = value;
        return Ok(());
    }
    let (p, last) = parent(root, &tokens, path)?;
    match p {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let i = index(a.len(), &last, path, true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(bad(format!("path {path:?} does not exist"))),
    }
}

/// RFC 6902.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), ApiError> {
    let Some(ops) = ops.as_array() else {
        return Err(bad("a JSON patch is an array of operations"));
    };
    for op in ops {
        let path = op["path"]
            .as_str()
            .ok_or_else(|| bad("an operation has no path"))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| bad(format!("operation on {path:?} has no value")))
        };
        let from = || {
            op["from"]
                .as_str()
                .ok_or_else(|| bad(format!("operation on {path:?} has no from")))
        };
        match op["op"].as_str().unwrap_or("") {
            "add" => add_at(target, path, value()?)?,
            "remove" => {
                remove_at(target, path)?;
            }
            "replace" => {
                remove_at(target, path)?;
                add_at(target, path, value()?)?;
            }
            "move" => {
                let v = remove_at(target, from()?)?;
                add_at(target, path, v)?;
            }
            "copy" => {
                let v = target.pointer(from()?).cloned().ok_or_else(|| {
                    bad(format!("path {:?} does not exist", from().unwrap_or("")))
                })?;
                add_at(target, path, v)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(bad(format!("test of {path:?} failed")));
                }
            }
            other => return Err(bad(format!("unknown operation {other:?}"))),
        }
    }
    Ok(())
}

// --- strategic merge patch ---

/// The merge key of a list field of the built-in types (`patchMergeKey`); `in_list` is the
/// field of the list whose element holds this field (container ports merge by containerPort,
/// a service's by port).
fn merge_key(field: &str, in_list: Option<&str>) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "ports"
            if matches!(
                in_list,
                Some("containers" | "initContainers" | "ephemeralContainers")
            ) =>
        {
            "containerPort"
        }
        "ports" => "port",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" | "addresses" => "type",
        "hostAliases" => "ip",
        "ownerReferences" => "uid",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists of scalars that merge as sets (`patchStrategy:"merge"`).
fn merges_as_set(field: &str) -> bool {
    field == "finalizers"
}

fn directive_error(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!(
        "the strategic merge patch is invalid: {}",
        message.into()
    ))
}

/// Merges `patch` into `target`; `in_list` is the list field `target` is an element of.
fn strategic(target: &mut Value, patch: &Value, in_list: Option<&str>) -> Result<(), ApiError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replacement = p.clone();
            replacement.remove("$patch");
            *target = Value::Object(replacement);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(directive_error(format!("unknown $patch {other:?}"))),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let gone = v.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = t.get_mut(field) {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(Value::Array(current)), Value::Array(items)) => {
                if let Some(key) = merge_key(k, in_list) {
                    merge_keyed(current, items, key, k)?;
                } else if merges_as_set(k) {
                    for item in items {
                        if !current.contains(item) {
                            current.push(item.clone());
                        }
                    }
                } else {
                    *current = items.clone();
                }
            }
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                strategic(existing, v, in_list)?;
                if existing.is_null() {
                    t.remove(k);
                }
            }
            _ => {
                let mut fresh = Value::Null;
                strategic(&mut fresh, v, in_list)?;
                if let Value::Array(items) = &mut fresh {
                    items.retain(|i| i.get("$patch").is_none());
                }
                if !fresh.is_null() {
                    t.insert(k.clone(), fresh);
                }
            }
        }
    }
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        t.retain(|k, _| keep.iter().any(|r| r.as_str() == Some(k)));
    }
    for (k, order) in p {
        if let (Some(field), Value::Array(order)) = (k.strip_prefix("$setElementOrder/"), order) {
            if let Some(Value::Array(list)) = t.get_mut(field) {
                reorder(list, order, merge_key(field, in_list));
            }
        }
    }
    Ok(())
}

fn merge_keyed(
    current: &mut Vec<Value>,
    items: &[Value],
    key: &str,
    field: &str,
) -> Result<(), ApiError> {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *current = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        return Ok(());
    }
    for item in items {
        let Some(id) = item.get(key) else {
            return Err(directive_error(format!(
                "an element of {field} has no {key}, its merge key"
            )));
        };
        let at = current.iter().position(|c| c.get(key) == Some(id));
        match (at, item.get("$patch").and_then(Value::as_str)) {
            (Some(i), Some("delete")) => {
                current.remove(i);
            }
            (None, Some("delete")) => {}
            (Some(i), _) => strategic(&mut current[i], item, Some(field))?,
            (None, _) => {
                let mut fresh = Value::Null;
                strategic(&mut fresh, item, Some(field))?;
                current.push(fresh);
            }
        }
    }
    Ok(())
}

/// `$setElementOrder`: the listed elements in that order, then the others as they were.
fn reorder(list: &mut Vec<Value>, order: &[Value], key: Option<&str>) {
    let id = |v: &Value| match key {
        Some(k) => v.get(k).cloned(),
        None => Some(v.clone()),
    };
    let mut rest = std::mem::take(list);
    for o in order {
        let want = match key {
            Some(k) => o.get(k).cloned(),
            None => Some(o.clone()),
        };
        if let Some(i) = rest.iter().position(|v| id(v) == want) {
            list.push(rest.remove(i));
        }
    }
    list.extend(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::by_plural;
    use serde_json::json;

    fn run(kind: Kind, target: Value, patch: Value) -> Result<Value, u16> {
        apply(
            kind,
            target,
            &patch,
            by_plural("apps", "deployments").unwrap(),
        )
        .map_err(|e| e.code)
    }

    fn deployment() -> Value {
        json!({"metadata": {"name": "d", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
               "spec": {"replicas": 2, "template": {"spec": {"containers": [
                   {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                   {"name": "side", "image": "busybox"}]}}}})
    }

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let cases = [
            (json!({"spec": {"replicas": 5}}), "/spec/replicas", json!(5)),
            (
                json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
                "/metadata/labels",
                json!({"b": "2", "c": "3"}),
            ),
            // Lists are replaced whole.
            (
                json!({"metadata": {"finalizers": ["y"]}}),
                "/metadata/finalizers",
                json!(["y"]),
            ),
        ];
        for (patch, at, want) in cases {
            let got = run(Kind::Merge, deployment(), patch.clone()).unwrap();
            assert_eq!(got.pointer(at), Some(&want), "{patch}");
        }
        assert_eq!(run(Kind::Merge, deployment(), json!([1])), Err(400));
    }

    #[test]
    fn json_patches_follow_rfc_6902() {
        let ok = [
            (
                json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
                "/spec/replicas",
                json!(3),
            ),
            (
                json!([{"op": "add", "path": "/metadata/labels/c", "value": "3"}]),
                "/metadata/labels/c",
                json!("3"),
            ),
            (
                json!([{"op": "remove", "path": "/metadata/labels/a"}]),
                "/metadata/labels/a",
                Value::Null,
            ),
            (
                json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "z"}]),
                "/metadata/finalizers/1",
                json!("z"),
            ),
            (
                json!([{"op": "add", "path": "/metadata/finalizers/0", "value": "w"}]),
                "/metadata/finalizers/1",
                json!("x"),
            ),
            (
                json!([{"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/d"}]),
                "/metadata/labels/d",
                json!("1"),
            ),
            (
                json!([{"op": "move", "from": "/metadata/labels/a", "path": "/metadata/labels/e"}]),
                "/metadata/labels/e",
                json!("1"),
            ),
            (
                json!([{"op": "test", "path": "/spec/replicas", "value": 2}]),
                "/spec/replicas",
                json!(2),
            ),
            (
                json!([{"op": "add", "path": "/metadata/annotations", "value": {"k~/": "v"}}, {"op": "replace", "path": "/metadata/annotations/k~0~1", "value": "w"}]),
                "/metadata/annotations/k~0~1",
                json!("w"),
            ),
        ];
        for (patch, at, want) in ok {
            let got = run(Kind::Json, deployment(), patch.clone()).unwrap();
            assert_eq!(
                got.pointer(at).cloned().unwrap_or(Value::Null),
                want,
                "{patch}"
            );
        }
        let bad = [
            json!({"op": "add"}),
            json!([{"op": "remove", "path": "/nope/x"}]),
            json!([{"op": "replace", "path": "/metadata/finalizers/5", "value": 1}]),
            json!([{"op": "test", "path": "/spec/replicas", "value": 9}]),
            json!([{"op": "frobnicate", "path": "/spec"}]),
            json!([{"op": "add", "path": "spec", "value": 1}]),
        ];
        for patch in bad {
            assert_eq!(
                run(Kind::Json, deployment(), patch.clone()),
                Err(400),
                "{patch}"
            );
        }
    }

    #[test]
    fn strategic_patches_merge_lists_by_key() {
        // kubectl apply's patch for a changed image: containers merge by name, order kept.
        let got = run(
            Kind::Strategic,
            deployment(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
                "containers": [{"name": "web", "image": "nginx:1.28"}]}}}}),
        )
        .unwrap();
        let containers = &got["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["name"], "side");
        assert_eq!(containers[1]["image"], "nginx:1.28");
        assert_eq!(
            containers[1]["ports"],
            json!([{"containerPort": 80}]),
            "untouched fields stay"
        );
        // Elements deleted by key, env merged by name, primitive directives.
        let got = run(
            Kind::Strategic,
            deployment(),
            json!({"metadata": {"finalizers": ["y"], "$deleteFromPrimitiveList/finalizers": ["x"]},
                   "spec": {"template": {"spec": {"containers": [
                       {"name": "side", "$patch": "delete"},
                       {"name": "web", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}}}),
        )
        .unwrap();
        assert_eq!(got["metadata"]["finalizers"], json!(["y"]));
        let containers = got["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        );
        // $patch: replace on a map, $retainKeys, null deletes.
        let got = run(
            Kind::Strategic,
            deployment(),
            json!({"metadata": {"labels": {"$patch": "replace", "z": "9"}},
                   "spec": {"$retainKeys": ["template"], "template": {"spec": {"containers": [{"name": "web", "image": "x"}, {"$patch": "replace"}]}}}}),
        )
        .unwrap();
        assert_eq!(got["metadata"]["labels"], json!({"z": "9"}));
        assert!(got["spec"].get("replicas").is_none());
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "x"}])
        );
        // A keyed element without its key is an error.
        assert_eq!(
            run(
                Kind::Strategic,
                deployment(),
                json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
            ),
            Err(400)
        );
    }

    #[test]
    fn content_types_pick_the_format() {
        let cases = [
            ("application/merge-patch+json", Ok(Kind::Merge)),
            ("application/json-patch+json", Ok(Kind::Json)),
            (
                "application/strategic-merge-patch+json",
                Ok(Kind::Strategic),
            ),
            ("application/apply-patch+yaml", Ok(Kind::Apply)),
            ("application/json", Err(415)),
        ];
        for (ct, want) in cases {
            assert_eq!(
                Kind::from_content_type(ct).map_err(|e| e.code),
                want,
                "{ct}"
            );
        }
    }
}
