//! Escalation prevention: a user may grant, in a Role or through a binding, only what it holds
//! (k8s: pkg/registry/rbac/validation/rule.go ConfirmNoEscalation, CompactRules,
//! rbacv1helpers.CompactString).

use super::covers;
use super::index::RbacIndex;
use super::rule::Rule;
use crate::auth::UserInfo;

/// Every rule that applies to `user` in `namespace`, and the roles bindings name that are
/// missing. k8s: DefaultRuleResolver.RulesFor
pub fn rules_for(index: &RbacIndex, user: &UserInfo, namespace: &str) -> (Vec<Rule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    index.visit_rules(&user.name, &user.groups, namespace, |r| {
        match r {
            Ok(r) => rules.extend(r.iter().cloned()),
            Err(missing) => errors.push(missing.to_string()),
        }
        true
    });
    (rules, errors)
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn quoted(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// k8s: CompactString.
pub fn compact_string(r: &Rule) -> String {
    let mut parts = Vec::new();
    for (label, v) in [
        ("APIGroups", &r.api_groups),
        ("Resources", &r.resources),
        ("NonResourceURLs", &r.non_resource_urls),
        ("ResourceNames", &r.resource_names),
        ("Verbs", &r.verbs),
    ] {
        if !v.is_empty() {
            parts.push(format!("{label}:{}", quoted(v)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// k8s: CompactRules — rules on one group and resource (and at most one name) merge their verbs.
pub fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    let mut out = Vec::new();
    let mut simple: Vec<Rule> = Vec::new();
    for r in rules {
        let is_simple = r.api_groups.len() == 1
            && r.resources.len() == 1
            && r.resource_names.len() <= 1
            && r.non_resource_urls.is_empty();
        if !is_simple {
            out.push(r);
            continue;
        }
        match simple.iter_mut().find(|s| {
            s.api_groups == r.api_groups
                && s.resources == r.resources
                && s.resource_names == r.resource_names
        }) {
            Some(s) => s.verbs.extend(r.verbs),
            None => simple.push(r),
        }
    }
    out.extend(simple);
    out
}

/// `Err(message)` if `rules` grant what `user` does not hold in `namespace`.
/// k8s: ConfirmNoEscalation
pub fn confirm_no_escalation(
    index: &RbacIndex,
    user: &UserInfo,
    namespace: &str,
    rules: &[Rule],
) -> Result<(), String> {
    let (owner, errors) = rules_for(index, user, namespace);
    let missing = covers::uncovered(&owner, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let mut described: Vec<String> = compact(missing).iter().map(compact_string).collect();
    described.sort();
    described.dedup();
    let mut msg = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        quoted(&user.groups),
        described.join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::index::Kind;
    use serde_json::json;

    #[test]
    fn only_held_permissions_may_be_granted() {
        let mut ix = RbacIndex::default();
        ix.apply(Kind::ClusterRole, "", "pods", Some(&json!({"rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]})));
        ix.apply(Kind::RoleBinding, "dev", "b", Some(&json!({"roleRef": {"kind": "ClusterRole", "name": "pods"}, "subjects": [{"kind": "User", "name": "u"}]})));
        let u = UserInfo::new("u", &["system:authenticated"]);
        let get = [Rule::new(&["get"], &[""], &["pods"])];
        assert_eq!(confirm_no_escalation(&ix, &u, "dev", &get), Ok(()));
        let e = confirm_no_escalation(&ix, &u, "prod", &get).unwrap_err();
        assert_eq!(e, "user \"u\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}");
        let more = [Rule::new(
            &["get", "delete", "create"],
            &[""],
            &["pods", "secrets"],
        )];
        let e = confirm_no_escalation(&ix, &u, "dev", &more).unwrap_err();
        assert!(e.ends_with("held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\" \"create\"]}\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\" \"create\"]}"), "{e}");
        assert_eq!(
            compact_string(&Rule::urls(&["get"], &["/x"])),
            "{NonResourceURLs:[\"/x\"], Verbs:[\"get\"]}"
        );
    }
}
