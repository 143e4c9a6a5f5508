//! The bootstrap policy, created at start and kept as upstream's RBAC post-start hook keeps it
//! (k8s: pkg/registry/rbac/rest/storage_rbac.go PostStartHook, pkg/registry/rbac/reconciliation):
//! a missing object is created; an existing one gets the policy's missing labels, annotations,
//! rules, aggregation selectors and subjects added, unless annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "false"`. Extra permissions are kept.

use serde_json::{json, Value};

use super::{ApiServer, Part, RequestContext};
use crate::api::registry::{self, ResourceInfo, RBAC_GROUP};
use crate::api::status::ApiError;
use crate::auth::rbac::policy::{self, AUTOUPDATE};
use crate::auth::rbac::{aggregation, covers, Rule};
use crate::store::Store;

fn rbac(plural: &str) -> &'static ResourceInfo {
    registry::by_plural(RBAC_GROUP, plural).expect("registered")
}

fn protected(existing: &Value) -> bool {
    existing["metadata"]["annotations"][AUTOUPDATE] == "false"
}

/// k8s: merge(expected, existing) — keys the object lacks are added, its values kept.
fn merge_map(obj: &mut Value, wanted: &Value, field: &str) -> bool {
    let Some(wanted) = wanted["metadata"][field].as_object() else {
        return false;
    };
    let meta = &mut obj["metadata"];
    if !meta[field].is_object() {
        meta[field] = json!({});
    }
    let have = meta[field].as_object_mut().expect("an object");
    let mut changed = false;
    for (k, v) in wanted {
        if !have.contains_key(k) {
            have.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    changed
}

/// The reconciled ClusterRole, if it changes. k8s: computeReconciledRole (union).
pub(crate) fn reconcile_role(existing: &Value, wanted: &Value) -> Option<Value> {
    let mut out = existing.clone();
    let mut changed = merge_map(&mut out, wanted, "annotations");
    changed |= merge_map(&mut out, wanted, "labels");
    let missing = covers::uncovered(&Rule::of(existing), &Rule::of(wanted));
    if !missing.is_empty() {
        let rules = out["rules"].as_array().cloned().unwrap_or_default();
        let mut rules = rules;
        rules.extend(missing.iter().map(Rule::to_json));
        out["rules"] = Value::Array(rules);
        changed = true;
    }
    match (
        wanted["aggregationRule"]["clusterRoleSelectors"].as_array(),
        existing.get("aggregationRule").filter(|a| !a.is_null()),
    ) {
        (None, Some(_)) => {
            out.as_object_mut()
                .expect("an object")
                .remove("aggregationRule");
            changed = true;
        }
        (Some(want), _) => {
            let mut have = existing["aggregationRule"]["clusterRoleSelectors"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let before = have.len();
            for s in want {
                if !have.contains(s) {
                    have.push(s.clone());
                }
            }
            if have.len() != before || existing.get("aggregationRule").is_none() {
                out["aggregationRule"] = json!({"clusterRoleSelectors": have});
                changed = true;
            }
        }
        (None, None) => {}
    }
    (changed && !protected(existing)).then_some(out)
}

/// The reconciled binding, if it changes (missing subjects added). k8s:
/// computeReconciledRoleBinding (union). A changed roleRef is `Err`: recreate.
pub(crate) fn reconcile_binding(existing: &Value, wanted: &Value) -> Result<Option<Value>, ()> {
    if protected(existing) {
        return Ok(None);
    }
    if existing["roleRef"] != wanted["roleRef"] {
        return Err(());
    }
    let mut out = existing.clone();
    let mut changed = merge_map(&mut out, wanted, "annotations");
    changed |= merge_map(&mut out, wanted, "labels");
    let mut subjects = existing["subjects"].as_array().cloned().unwrap_or_default();
    for s in wanted["subjects"].as_array().into_iter().flatten() {
        if !subjects.contains(s) {
            subjects.push(s.clone());
            changed = true;
        }
    }
    out["subjects"] = Value::Array(subjects);
    Ok(changed.then_some(out))
}

impl<S: Store> ApiServer<S> {
    /// Creates or reconciles every object of the bootstrap policy, then brings the aggregated
    /// ClusterRoles up to date. Each request's context is derived from `ctx`.
    pub(crate) async fn reconcile_bootstrap_policy(
        &self,
        ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        let mut n = 0u64;
        let mut next = || {
            n += 1;
            ctx.derived(n)
        };
        let roles = rbac("clusterroles");
        for role in policy::cluster_roles() {
            let wanted = role.to_json();
            match self.get(roles, None, &role.name).await {
                Err(e) if e.reason == "NotFound" => {
                    self.create(roles, None, wanted, &next()).await?;
                }
                Err(e) => return Err(e),
                Ok(existing) => {
                    if let Some(updated) = reconcile_role(&existing, &wanted) {
                        tracing::info!(role = %role.name, "reconciling the bootstrap ClusterRole");
                        self.update(roles, None, &role.name, updated, Part::Main, &next())
                            .await?;
                    }
                }
            }
        }
        let bindings = rbac("clusterrolebindings");
        for b in policy::cluster_role_bindings() {
            let wanted = b.to_json();
            match self.get(bindings, None, &b.name).await {
                Err(e) if e.reason == "NotFound" => {
                    self.create(bindings, None, wanted, &next()).await?;
                }
                Err(e) => return Err(e),
                Ok(existing) => match reconcile_binding(&existing, &wanted) {
                    Ok(None) => {}
                    Ok(Some(updated)) => {
                        self.update(bindings, None, &b.name, updated, Part::Main, &next())
                            .await?;
                    }
                    Err(()) => {
                        self.delete(bindings, None, &b.name, &Default::default(), &next())
                            .await?;
                        self.create(bindings, None, wanted, &next()).await?;
                    }
                },
            }
        }
        self.aggregate_cluster_roles(&mut next).await
    }

    /// Writes the aggregated ClusterRoles whose rules are out of date, until none is (an
    /// aggregated role can aggregate another: edit's rules reach admin).
    pub(crate) async fn aggregate_cluster_roles(
        &self,
        next: &mut impl FnMut() -> RequestContext,
    ) -> Result<(), ApiError> {
        let roles = rbac("clusterroles");
        for _ in 0..8 {
            let stale = aggregation::out_of_date(&self.rbac());
            if stale.is_empty() {
                break;
            }
            for (name, rules) in stale {
                let mut obj = self.get(roles, None, &name).await?;
                obj["rules"] = Value::Array(rules.iter().map(Rule::to_json).collect());
                self.update(roles, None, &name, obj, Part::Main, &next())
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// k8s: reconcile_role_test.go — missing rules, labels and selectors are added; extra
    /// rules stay; a protected role is left alone.
    #[test]
    fn roles_reconcile_as_a_union() {
        let wanted = json!({"metadata": {"name": "r", "labels": {"a": "1"}, "annotations": {AUTOUPDATE: "true"}},
                            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        let existing = json!({"metadata": {"name": "r", "labels": {"a": "2"}},
                              "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]});
        let out = reconcile_role(&existing, &wanted).unwrap();
        assert_eq!(out["metadata"]["labels"]["a"], "2");
        assert_eq!(out["metadata"]["annotations"][AUTOUPDATE], "true");
        assert_eq!(out["rules"].as_array().unwrap().len(), 2);
        assert_eq!(reconcile_role(&out, &wanted), None, "settled");
        let mut keep = existing.clone();
        keep["metadata"]["annotations"] = json!({AUTOUPDATE: "false"});
        assert_eq!(reconcile_role(&keep, &wanted), None);
        let agg = json!({"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "true"}}]}});
        let bare = json!({"metadata": {"name": "view"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        let out = reconcile_role(&bare, &agg).unwrap();
        assert_eq!(out["aggregationRule"], agg["aggregationRule"]);
        assert_eq!(out["rules"], bare["rules"]);
    }

    #[test]
    fn bindings_gain_missing_subjects() {
        let wanted = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "x"},
                            "subjects": [{"kind": "Group", "name": "g"}]});
        let existing = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "x"},
                              "subjects": [{"kind": "User", "name": "u"}]});
        let out = reconcile_binding(&existing, &wanted).unwrap().unwrap();
        assert_eq!(out["subjects"].as_array().unwrap().len(), 2);
        assert_eq!(reconcile_binding(&out, &wanted), Ok(None));
        let mut other = existing.clone();
        other["roleRef"]["name"] = json!("y");
        assert_eq!(reconcile_binding(&other, &wanted), Err(()));
    }
}
