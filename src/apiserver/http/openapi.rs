//! A minimal OpenAPI v3: the index and one document per group/version whose PATCH operations
//! list the `fieldValidation` parameter. That is what kubectl's query-parameter verifier looks
//! for before it sends `fieldValidation=Strict` and leaves validation to the server; without it
//! `kubectl create -f` fails on its default `--validate=strict` (kubectl-compat.md §1.3). Real
//! schemas (for `kubectl explain`) are not served yet.

use serde_json::{json, Map, Value};

use crate::api::registry::{self, RESOURCES};

/// Changes whenever the documents below change: kubectl caches the hashed URLs for good.
const HASH: &str = "gantry-2";

fn path_of(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`.
pub fn index() -> Value {
    let mut paths = Map::new();
    for (group, version) in registry::group_versions() {
        let p = path_of(group, version);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={HASH}")}),
        );
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/<api/v1 | apis/g/v>`; `None` for a path that is not served.
pub fn document(path: &str) -> Option<Value> {
    let (group, version) = registry::group_versions()
        .into_iter()
        .find(|(g, v)| path_of(g, v) == path.trim_matches('/'))?;
    let parameter = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let mut paths = Map::new();
    for res in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let item = if res.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}/{{name}}",
                path_of(group, version),
                res.plural
            )
        } else {
            format!("/{}/{}/{{name}}", path_of(group, version), res.plural)
        };
        let gvk = json!({"group": res.group, "version": res.version, "kind": res.kind});
        let operation = |action: &str| {
            json!({
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [parameter("dryRun"), parameter("fieldManager"), parameter("fieldValidation")],
                "responses": {},
            })
        };
        if registry::is_stored(res) {
            paths.insert(
                item,
                json!({"get": operation("get"), "put": operation("put"), "patch": operation("patch"), "delete": operation("delete")}),
            );
        } else {
            // k8s: a create-only kind (the reviews) has one path, its collection, with POST.
            // Its PATCH entry is only for kubectl's fieldValidation probe, which reads PATCH
            // operations alone (cli-runtime query_param_verifier_v3.go); a real PATCH is 405.
            let collection = item.trim_end_matches("/{name}").to_string();
            paths.insert(
                collection,
                json!({"post": operation("post"), "patch": operation("patch")}),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", super::version::MINOR)},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_offer_field_validation() {
        let index = index();
        assert_eq!(
            index["paths"]["apis/apps/v1"]["serverRelativeURL"],
            format!("/openapi/v3/apis/apps/v1?hash={HASH}")
        );
        let apps = document("apis/apps/v1").unwrap();
        let patch =
            &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        let core = document("/api/v1").unwrap();
        assert!(core["paths"]
            .as_object()
            .unwrap()
            .contains_key("/api/v1/nodes/{name}"));
        assert!(document("apis/nope/v1").is_none());
    }
}
