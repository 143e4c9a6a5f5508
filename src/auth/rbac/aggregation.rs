//! ClusterRole aggregation: a ClusterRole with an aggregationRule holds the rules of every
//! ClusterRole its selectors match. k8s: pkg/controller/clusterroleaggregation
//! (syncClusterRole): matched roles by name, each rule once, in order.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::index::RbacIndex;
use super::rule::Rule;

fn matches(selector: &serde_json::Value, labels: &BTreeMap<String, String>) -> bool {
    match serde_json::from_value::<LabelSelector>(selector.clone()) {
        Ok(sel) => crate::api::selector::matches_label_selector(&sel, labels),
        Err(_) => false,
    }
}

/// The rules `name` should hold, if it is an aggregated ClusterRole.
pub fn aggregated_rules(index: &RbacIndex, name: &str) -> Option<Vec<Rule>> {
    let selectors = index.cluster_role(name)?.aggregation.as_ref()?;
    let mut rules: Vec<Rule> = Vec::new();
    for selector in selectors {
        for (other, role) in index.cluster_roles() {
            if other == name || !matches(selector, &role.labels) {
                continue;
            }
            for r in role.rules.iter() {
                if !rules.contains(r) {
                    rules.push(r.clone());
                }
            }
        }
    }
    Some(rules)
}

/// The aggregated ClusterRoles whose rules are not what their selectors give, with the
/// rules they should have, by name.
pub fn out_of_date(index: &RbacIndex) -> Vec<(String, Vec<Rule>)> {
    index
        .cluster_roles()
        .filter(|(_, r)| r.aggregation.is_some())
        .filter_map(|(name, role)| {
            let want = aggregated_rules(index, name)?;
            (want.as_slice() != &*role.rules).then(|| (name.clone(), want))
        })
        .collect()
}
