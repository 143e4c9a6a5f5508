//! Defaults and validation of the four RBAC kinds.
//! k8s: pkg/apis/rbac/v1/defaults.go, pkg/apis/rbac/validation/validation.go

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde_json::Value;

use crate::api::names;
use crate::api::registry::RBAC_GROUP;
use crate::api::status::FieldError;

type Errors = Vec<FieldError>;

/// `field.Required(path, detail)`.
fn required(field: String, detail: &str) -> FieldError {
    let mut e = FieldError::required(field);
    if !detail.is_empty() {
        e.message = format!("Required value: {detail}");
    }
    e
}

/// `field.Invalid` of a value Go prints with `%#v` (a slice, a struct): unquoted.
fn invalid_raw(field: String, raw: String, why: &str) -> FieldError {
    FieldError {
        field,
        kind: "FieldValueInvalid",
        message: format!("Invalid value: {raw}: {why}"),
    }
}

/// Go's `%#v` of a `[]string`, as field.Invalid prints a slice.
fn go_strings(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// Fields the typed decode requires, filled with their zero value so that a missing one is a
/// 422 naming the field (as upstream, whose Go structs have zero values) rather than a 400.
pub fn fill_required(plural: &str, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    if let Some(rules) = o.get_mut("rules").and_then(Value::as_array_mut) {
        for r in rules.iter_mut().filter_map(Value::as_object_mut) {
            r.entry("verbs").or_insert_with(|| Value::Array(Vec::new()));
        }
    }
    if plural.ends_with("bindings") {
        let rr = o
            .entry("roleRef")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(rr) = rr.as_object_mut() {
            for f in ["apiGroup", "kind", "name"] {
                rr.entry(f).or_insert_with(|| Value::String(String::new()));
            }
        }
        if let Some(subjects) = o.get_mut("subjects").and_then(Value::as_array_mut) {
            for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
                for f in ["kind", "name"] {
                    s.entry(f).or_insert_with(|| Value::String(String::new()));
                }
            }
        }
    }
}

/// k8s: SetDefaults_Subject — Users and Groups are in the RBAC group.
fn default_subjects(subjects: Option<&mut Vec<Subject>>) {
    for s in subjects.into_iter().flatten() {
        if s.api_group.as_deref().is_none_or(str::is_empty)
            && (s.kind == "User" || s.kind == "Group")
        {
            s.api_group = Some(RBAC_GROUP.into());
        }
    }
}

/// k8s: SetDefaults_RoleBinding / SetDefaults_ClusterRoleBinding.
fn default_role_ref(r: &mut RoleRef) {
    if r.api_group.is_empty() {
        r.api_group = RBAC_GROUP.into();
    }
}

pub fn default_role_binding(b: &mut RoleBinding) {
    default_role_ref(&mut b.role_ref);
    default_subjects(b.subjects.as_mut());
}

pub fn default_cluster_role_binding(b: &mut ClusterRoleBinding) {
    default_role_ref(&mut b.role_ref);
    default_subjects(b.subjects.as_mut());
}

/// k8s: ValidatePolicyRule.
pub fn policy_rule(errs: &mut Errors, rule: &PolicyRule, namespaced: bool, path: &str) {
    if rule.verbs.is_empty() {
        errs.push(required(
            format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
    let nonempty = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if !urls.is_empty() {
        if namespaced {
            errs.push(invalid_raw(
                format!("{path}.nonResourceURLs"),
                go_strings(urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if nonempty(&rule.api_groups) || nonempty(&rule.resources) || nonempty(&rule.resource_names)
        {
            errs.push(invalid_raw(
                format!("{path}.nonResourceURLs"),
                go_strings(urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if !nonempty(&rule.api_groups) {
        errs.push(required(
            format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if !nonempty(&rule.resources) {
        errs.push(required(
            format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

fn rules(errs: &mut Errors, rules: Option<&Vec<PolicyRule>>, namespaced: bool) {
    for (i, r) in rules.into_iter().flatten().enumerate() {
        policy_rule(errs, r, namespaced, &format!("rules[{i}]"));
    }
}

/// k8s: ValidateRole.
pub fn role(errs: &mut Errors, r: &Role) {
    rules(errs, r.rules.as_ref(), true);
}

/// k8s: ValidateClusterRole.
pub fn cluster_role(errs: &mut Errors, r: &ClusterRole) {
    rules(errs, r.rules.as_ref(), false);
    if let Some(agg) = &r.aggregation_rule {
        let selectors = agg.cluster_role_selectors.as_deref().unwrap_or_default();
        if selectors.is_empty() {
            errs.push(required(
                "aggregationRule.clusterRoleSelectors".into(),
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, s) in selectors.iter().enumerate() {
            crate::api::validation::labels(
                errs,
                &format!("aggregationRule.clusterRoleSelectors[{i}].matchLabels"),
                s.match_labels.as_ref(),
            );
        }
    }
}

/// k8s: ValidateRBACName (path.IsValidPathSegmentName).
fn rbac_name(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    let mut out = Vec::new();
    for bad in ["/", "%"] {
        if name.contains(bad) {
            out.push(format!("may not contain '{bad}'"));
        }
    }
    out
}

fn role_ref(errs: &mut Errors, r: &RoleRef, kinds: &[&str]) {
    if r.api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &r.api_group,
            &[RBAC_GROUP],
        ));
    }
    if !kinds.contains(&r.kind.as_str()) {
        errs.push(FieldError::not_supported("roleRef.kind", &r.kind, kinds));
    }
    if r.name.is_empty() {
        errs.push(FieldError::required("roleRef.name"));
    } else {
        for why in rbac_name(&r.name) {
            errs.push(FieldError::invalid("roleRef.name", &r.name, why));
        }
    }
}

/// k8s: ValidateRoleBindingSubject.
fn subject(errs: &mut Errors, s: &Subject, namespaced: bool, path: &str) {
    if s.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name")));
    }
    let group = s.api_group.as_deref().unwrap_or("");
    match s.kind.as_str() {
        "ServiceAccount" => {
            if !s.name.is_empty() {
                for why in names::dns1123_subdomain(&s.name) {
                    errs.push(FieldError::invalid(format!("{path}.name"), &s.name, why));
                }
            }
            if !group.is_empty() {
                errs.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    group,
                    &[""],
                ));
            }
            if !namespaced && s.namespace.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required(format!("{path}.namespace")));
            }
        }
        "User" | "Group" => {
            if group != RBAC_GROUP {
                errs.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    group,
                    &[RBAC_GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            format!("{path}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

fn subjects(errs: &mut Errors, subjects: Option<&Vec<Subject>>, namespaced: bool) {
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        subject(errs, s, namespaced, &format!("subjects[{i}]"));
    }
}

/// Go's `%#v` of an rbac.RoleRef, as the "cannot change roleRef" error prints it.
fn go_role_ref(r: &RoleRef) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
        r.api_group, r.kind, r.name
    )
}

fn role_ref_unchanged(errs: &mut Errors, new: &RoleRef, old: Option<&RoleRef>) {
    if old.is_some_and(|old| old != new) {
        errs.push(invalid_raw(
            "roleRef".into(),
            go_role_ref(new),
            "cannot change roleRef",
        ));
    }
}

/// k8s: ValidateRoleBinding, ValidateRoleBindingUpdate.
pub fn role_binding(errs: &mut Errors, b: &RoleBinding, old: Option<&RoleBinding>) {
    role_ref(errs, &b.role_ref, &["Role", "ClusterRole"]);
    subjects(errs, b.subjects.as_ref(), true);
    role_ref_unchanged(errs, &b.role_ref, old.map(|o| &o.role_ref));
}

/// k8s: ValidateClusterRoleBinding, ValidateClusterRoleBindingUpdate.
pub fn cluster_role_binding(
    errs: &mut Errors,
    b: &ClusterRoleBinding,
    old: Option<&ClusterRoleBinding>,
) {
    role_ref(errs, &b.role_ref, &["ClusterRole"]);
    subjects(errs, b.subjects.as_ref(), false);
    role_ref_unchanged(errs, &b.role_ref, old.map(|o| &o.role_ref));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors_of(plural: &str, mut obj: Value, old: Option<Value>) -> Vec<String> {
        fill_required(plural, &mut obj);
        let mut errs = Vec::new();
        match plural {
            "roles" => role(&mut errs, &serde_json::from_value(obj).unwrap()),
            "clusterroles" => cluster_role(&mut errs, &serde_json::from_value(obj).unwrap()),
            "rolebindings" => {
                let mut b: RoleBinding = serde_json::from_value(obj).unwrap();
                default_role_binding(&mut b);
                let old = old.map(|o| serde_json::from_value(o).unwrap());
                role_binding(&mut errs, &b, old.as_ref())
            }
            _ => {
                let mut b: ClusterRoleBinding = serde_json::from_value(obj).unwrap();
                default_cluster_role_binding(&mut b);
                let old = old.map(|o| serde_json::from_value(o).unwrap());
                cluster_role_binding(&mut errs, &b, old.as_ref())
            }
        }
        errs.iter().map(FieldError::describe).collect()
    }

    /// k8s: pkg/apis/rbac/validation/validation_test.go, case by case.
    #[test]
    fn rbac_objects_are_validated_as_upstream() {
        let meta = json!({"name": "r"});
        let view = json!({"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"});
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("roles", json!({"metadata": meta, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}), vec![]),
            ("roles", json!({"metadata": meta, "rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
             vec!["rules[0].verbs: Required value: verbs must contain at least one value"]),
            ("roles", json!({"metadata": meta, "rules": [{"verbs": ["get"]}]}),
             vec!["rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                  "rules[0].resources: Required value: resource rules must supply at least one resource"]),
            ("roles", json!({"metadata": meta, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}),
             vec!["rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs"]),
            ("clusterroles", json!({"metadata": meta, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}), vec![]),
            ("clusterroles", json!({"metadata": meta, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"]}]}),
             vec!["rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\"}: rules cannot apply to both regular resources and non-resource URLs"]),
            ("clusterroles", json!({"metadata": meta, "aggregationRule": {}}),
             vec!["aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"]),
            ("rolebindings", json!({"metadata": meta, "roleRef": {"kind": "ClusterRole", "name": "view"},
                                    "subjects": [{"kind": "User", "name": "dev"}, {"kind": "ServiceAccount", "name": "sa"}]}), vec![]),
            ("rolebindings", json!({"metadata": meta}),
             vec!["roleRef.kind: Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\"", "roleRef.name: Required value"]),
            ("rolebindings", json!({"metadata": meta, "roleRef": {"apiGroup": "other", "kind": "Role", "name": "a/b"}}),
             vec!["roleRef.apiGroup: Unsupported value: \"other\": supported values: \"rbac.authorization.k8s.io\"",
                  "roleRef.name: Invalid value: \"a/b\": may not contain '/'"]),
            ("rolebindings", json!({"metadata": meta, "roleRef": view, "subjects": [{"kind": "Robot", "name": "r2"}, {"kind": "User"}]}),
             vec!["subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
                  "subjects[1].name: Required value"]),
            ("rolebindings", json!({"metadata": meta, "roleRef": view, "subjects": [{"kind": "ServiceAccount", "name": "sa", "apiGroup": RBAC_GROUP}, {"kind": "Group", "name": "g", "apiGroup": "v1"}]}),
             vec!["subjects[0].apiGroup: Unsupported value: \"rbac.authorization.k8s.io\": supported values: \"\"",
                  "subjects[1].apiGroup: Unsupported value: \"v1\": supported values: \"rbac.authorization.k8s.io\""]),
            ("clusterrolebindings", json!({"metadata": meta, "roleRef": {"kind": "Role", "name": "x"}, "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}),
             vec!["roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"", "subjects[0].namespace: Required value"]),
        ];
        for (plural, obj, want) in cases {
            assert_eq!(errors_of(plural, obj.clone(), None), want, "{plural} {obj}");
        }
    }

    #[test]
    fn role_ref_cannot_change() {
        let old = json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"}});
        let new = json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "edit"}});
        assert_eq!(
            errors_of("rolebindings", new, Some(old.clone())),
            vec!["roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"]
        );
        assert!(errors_of("clusterrolebindings", old.clone(), Some(old)).is_empty());
    }
}
