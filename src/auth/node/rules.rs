//! The static rules every node gets for what the graph does not subdivide. k8s:
//! bootstrappolicy.NodeRules() (the `system:node` role) evaluated by rbac.RulesAllow: the same
//! rules as the bootstrap policy's `system:node` ClusterRole, matched by the RBAC matcher.

use std::sync::OnceLock;

use crate::auth::rbac::policy::node_rules;
use crate::auth::rbac::{Attributes, Rule};

/// k8s: rbac.RulesAllow(attrs, NodeRules()...) for a resource request. Non-resource requests
/// (an empty `resource`) match no node rule.
pub fn node_rules_allow(verb: &str, group: &str, resource: &str, subresource: &str) -> bool {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    if resource.is_empty() {
        return false;
    }
    let a = Attributes::resource(verb, group, resource, "", "").with_subresource(subresource);
    RULES.get_or_init(node_rules).iter().any(|r| r.allows(&a))
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
}
