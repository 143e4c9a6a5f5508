//! The access reviews (k8s: pkg/registry/authorization/{subjectaccessreview,
//! localsubjectaccessreview, selfsubjectaccessreview, selfsubjectrulesreview}/rest.go):
//! create-only, answered by the authorizer, never stored. `kubectl auth can-i` asks a
//! SelfSubjectAccessReview, `--list` a SelfSubjectRulesReview.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::ApiServer;
use crate::api::registry::ResourceInfo;
use crate::api::status::{ApiError, FieldError};
use crate::auth::rbac::escalation::rules_for;
use crate::auth::rbac::{Attributes, Decision};
use crate::auth::user::{UserInfo, SYSTEM_MASTERS};
use crate::store::Store;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The attributes a review's spec asks about. k8s: ResourceAttributesFrom /
/// NonResourceAttributesFrom
fn spec_attributes(spec: &Value) -> Attributes<'_> {
    let r = &spec["resourceAttributes"];
    if r.is_object() {
        Attributes {
            verb: s(&r["verb"]),
            namespace: s(&r["namespace"]),
            api_group: s(&r["group"]),
            api_version: s(&r["version"]),
            resource: s(&r["resource"]),
            subresource: s(&r["subresource"]),
            name: s(&r["name"]),
            path: "",
            resource_request: true,
        }
    } else {
        let n = &spec["nonResourceAttributes"];
        Attributes::non_resource(s(&n["verb"]), s(&n["path"]))
    }
}

/// k8s: ValidateSubjectAccessReviewSpec (and the self and local forms).
fn spec_errors(spec: &Value, subject_needed: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let has = |f: &str| spec[f].is_object();
    match (has("resourceAttributes"), has("nonResourceAttributes")) {
        (false, false) => errs.push(FieldError::required("spec.resourceAttributes")),
        (true, true) => errs.push(FieldError::invalid(
            "spec.nonResourceAttributes",
            &spec["nonResourceAttributes"],
            "cannot be specified in combination with resourceAttributes",
        )),
        _ => {}
    }
    if subject_needed
        && s(&spec["user"]).is_empty()
        && spec["groups"].as_array().is_none_or(Vec::is_empty)
    {
        errs.push(FieldError::invalid(
            "spec.user",
            "",
            "at least one of user or group must be specified",
        ));
    }
    errs
}

/// The user a SubjectAccessReview names.
fn spec_user(spec: &Value) -> UserInfo {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let extra: BTreeMap<String, Vec<String>> = spec["extra"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), strings(v)))
        .collect();
    UserInfo {
        name: s(&spec["user"]).to_string(),
        uid: s(&spec["uid"]).to_string(),
        groups: strings(&spec["groups"]),
        extra,
    }
}

fn status_of(d: &Decision) -> Value {
    let mut status = json!({"allowed": d.allowed()});
    if matches!(d, Decision::Deny(_)) {
        status["denied"] = json!(true);
    }
    if !d.reason().is_empty() {
        status["reason"] = json!(d.reason());
    }
    status
}

impl<S: Store> ApiServer<S> {
    /// Answers a review created as `user` in `namespace` (the URL's, for the local form).
    pub(crate) fn review(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        mut obj: Value,
        user: &UserInfo,
    ) -> Result<Arc<Value>, ApiError> {
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let spec = obj["spec"].clone();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let invalid = |errs: Vec<FieldError>| ApiError::invalid(res, &name, errs);
        let status = match res.plural {
            "subjectaccessreviews" => {
                let errs = spec_errors(&spec, true);
                if !errs.is_empty() {
                    return Err(invalid(errs));
                }
                status_of(&self.authorize(&spec_user(&spec), &spec_attributes(&spec)))
            }
            "localsubjectaccessreviews" => {
                let ns = namespace.unwrap_or("");
                if ns.is_empty() {
                    return Err(ApiError::bad_request(
                        "namespace is required on this type: ",
                    ));
                }
                let mut errs = spec_errors(&spec, true);
                if spec["nonResourceAttributes"].is_object() {
                    errs.push(FieldError::invalid(
                        "spec.nonResourceAttributes",
                        &spec["nonResourceAttributes"],
                        "disallowed on this kind of request",
                    ));
                }
                let asked = s(&spec["resourceAttributes"]["namespace"]);
                if spec["resourceAttributes"].is_object() && asked != ns {
                    errs.push(FieldError::invalid(
                        "spec.resourceAttributes.namespace",
                        asked,
                        "must match metadata.namespace",
                    ));
                }
                if !errs.is_empty() {
                    return Err(invalid(errs));
                }
                obj["metadata"]["namespace"] = json!(ns);
                status_of(&self.authorize(&spec_user(&spec), &spec_attributes(&spec)))
            }
            "selfsubjectaccessreviews" => {
                let errs = spec_errors(&spec, false);
                if !errs.is_empty() {
                    return Err(invalid(errs));
                }
                status_of(&self.authorize(user, &spec_attributes(&spec)))
            }
            "selfsubjectrulesreviews" => {
                let ns = s(&spec["namespace"]);
                if ns.is_empty() {
                    return Err(ApiError::bad_request("no namespace on request"));
                }
                self.rules_review(user, ns)
            }
            _ => return Err(ApiError::no_such_path()),
        };
        obj["status"] = status;
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        obj["metadata"]["creationTimestamp"] = Value::Null;
        Ok(Arc::new(obj))
    }

    /// k8s: the union of the privileged group's and RBAC's RulesFor, as a
    /// SubjectRulesReviewStatus.
    pub fn rules_review(&self, user: &UserInfo, namespace: &str) -> Value {
        let mut resource_rules: Vec<Value> = Vec::new();
        let mut non_resource_rules: Vec<Value> = Vec::new();
        if user.in_group(SYSTEM_MASTERS) {
            resource_rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
            non_resource_rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
        }
        let (rules, errors) = rules_for(&self.rbac(), user, namespace);
        for r in rules {
            if !r.resources.is_empty() {
                let mut v =
                    json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
                if !r.resource_names.is_empty() {
                    v["resourceNames"] = json!(r.resource_names);
                }
                resource_rules.push(v);
            }
            if !r.non_resource_urls.is_empty() {
                non_resource_rules
                    .push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
            }
        }
        let mut status = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                                "incomplete": false});
        if !errors.is_empty() {
            status["evaluationError"] = json!(errors.join(", "));
        }
        status
    }
}
