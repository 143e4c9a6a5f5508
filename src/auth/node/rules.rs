//! The static rules every node gets for what the graph does not subdivide, and the small
//! matcher that evaluates them. k8s: bootstrappolicy.NodeRules() (the `system:node` role,
//! plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go) evaluated by rbac.RulesAllow.
//!
//! This is the one place to switch to the RBAC authorizer's rule matcher once both exist.

/// One PolicyRule without resourceNames (NodeRules has none): `resources` holds `res` or
/// `res/sub`.
#[derive(Clone, Copy, Debug)]
pub struct StaticRule {
    pub verbs: &'static [&'static str],
    pub api_groups: &'static [&'static str],
    pub resources: &'static [&'static str],
}

const fn rule(
    verbs: &'static [&'static str],
    api_groups: &'static [&'static str],
    resources: &'static [&'static str],
) -> StaticRule {
    StaticRule {
        verbs,
        api_groups,
        resources,
    }
}

const READ: &[&str] = &["get", "list", "watch"];
const CORE: &[&str] = &[""];
const STORAGE: &[&str] = &["storage.k8s.io"];

/// k8s: NodeRules() in v1.33, in upstream's order (DRA and ClusterTrustBundle rules are behind
/// feature gates that are off by default and are left out).
pub static NODE_RULES: &[StaticRule] = &[
    // Needed to check API access. These creates are non-mutating.
    rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
    rule(
        &["create"],
        &["authorization.k8s.io"],
        &["subjectaccessreviews", "localsubjectaccessreviews"],
    ),
    // Needed to build serviceLister, to populate env vars for services.
    rule(READ, CORE, &["services"]),
    // Nodes can register Node API objects and report status (NodeRestriction limits a node
    // to its own).
    rule(&["create", "get", "list", "watch"], CORE, &["nodes"]),
    rule(&["update", "patch"], CORE, &["nodes/status"]),
    rule(&["update", "patch"], CORE, &["nodes"]),
    rule(&["create", "update", "patch"], CORE, &["events"]),
    rule(READ, CORE, &["pods"]),
    // Mirror pods, pod status and evictions (NodeRestriction limits them to bound pods).
    rule(&["create", "delete"], CORE, &["pods"]),
    rule(&["update", "patch"], CORE, &["pods/status"]),
    rule(&["create"], CORE, &["pods/eviction"]),
    // The Node authorizer limits these to objects of pods bound to the node.
    rule(READ, CORE, &["secrets", "configmaps"]),
    rule(
        &["get"],
        CORE,
        &["persistentvolumeclaims", "persistentvolumes"],
    ),
    rule(&["get"], CORE, &["endpoints"]),
    // The kubelet rotates its own client certificate.
    rule(
        &["create", "get", "list", "watch"],
        &["certificates.k8s.io"],
        &["certificatesigningrequests"],
    ),
    rule(
        &["get", "create", "update", "patch", "delete"],
        &["coordination.k8s.io"],
        &["leases"],
    ),
    rule(&["get"], STORAGE, &["volumeattachments"]),
    rule(&["create"], CORE, &["serviceaccounts/token"]),
    rule(
        &["get", "update", "patch"],
        CORE,
        &["persistentvolumeclaims/status"],
    ),
    rule(READ, STORAGE, &["csidrivers"]),
    rule(
        &["get", "create", "update", "patch", "delete"],
        STORAGE,
        &["csinodes"],
    ),
    rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
];

/// k8s: rbac.RuleAllows for a resource request (VerbMatches, APIGroupMatches,
/// ResourceMatches; `*` matches anything, `*/sub` any resource's subresource).
pub fn rule_allows(
    rule: &StaticRule,
    verb: &str,
    group: &str,
    resource: &str,
    subresource: &str,
) -> bool {
    let verb_ok = rule.verbs.iter().any(|v| *v == "*" || *v == verb);
    let group_ok = rule.api_groups.iter().any(|g| *g == "*" || *g == group);
    let resource_ok = rule.resources.iter().any(|r| {
        if *r == "*" {
            return true;
        }
        if subresource.is_empty() {
            return *r == resource;
        }
        match r.split_once('/') {
            Some((res, sub)) => (res == resource || res == "*") && sub == subresource,
            None => false,
        }
    });
    verb_ok && group_ok && resource_ok
}

/// k8s: rbac.RulesAllow(attrs, NodeRules()...) for a resource request. Non-resource requests
/// (an empty `resource`) match no node rule.
pub fn node_rules_allow(verb: &str, group: &str, resource: &str, subresource: &str) -> bool {
    !resource.is_empty()
        && NODE_RULES
            .iter()
            .any(|r| rule_allows(r, verb, group, resource, subresource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_node_rules_allow_what_upstream_allows() {
        // (verb, group, resource, subresource, allowed)
        let cases: &[(&str, &str, &str, &str, bool)] = &[
            ("list", "", "services", "", true),
            ("create", "", "services", "", false),
            ("create", "", "nodes", "", true),
            ("delete", "", "nodes", "", false),
            ("patch", "", "nodes", "status", true),
            ("get", "", "nodes", "status", false),
            ("create", "", "events", "", true),
            ("delete", "", "events", "", false),
            ("update", "", "pods", "status", true),
            ("create", "", "pods", "eviction", true),
            ("create", "", "pods", "exec", false),
            ("update", "", "pods", "", false),
            ("get", "", "endpoints", "", true),
            (
                "watch",
                "certificates.k8s.io",
                "certificatesigningrequests",
                "",
                true,
            ),
            (
                "update",
                "certificates.k8s.io",
                "certificatesigningrequests",
                "approval",
                false,
            ),
            ("get", "node.k8s.io", "runtimeclasses", "", true),
            ("create", "authentication.k8s.io", "tokenreviews", "", true),
            ("create", "", "serviceaccounts", "token", true),
            ("create", "", "serviceaccounts", "", false),
            ("get", "apps", "deployments", "", false),
            ("get", "", "", "", false),
            ("delete", "", "secrets", "", false),
        ];
        for (verb, group, res, sub, want) in cases {
            assert_eq!(
                node_rules_allow(verb, group, res, sub),
                *want,
                "{verb} {group}/{res}/{sub}"
            );
        }
    }

    #[test]
    fn wildcards_match_as_in_rbac() {
        let any = rule(&["*"], &["*"], &["*"]);
        assert!(rule_allows(&any, "delete", "apps", "deployments", "scale"));
        let subs = rule(&["get"], &[""], &["*/status"]);
        assert!(rule_allows(&subs, "get", "", "pods", "status"));
        assert!(!rule_allows(&subs, "get", "", "pods", ""));
        assert!(!rule_allows(&subs, "get", "", "pods", "log"));
    }
}
