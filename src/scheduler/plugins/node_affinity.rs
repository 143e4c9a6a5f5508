//! NodeAffinity (filter part): spec.nodeSelector and required node affinity terms.
//! Preferred terms (scoring) come with the scheduler-fidelity work.

use super::CycleState;
use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Pod};

use super::FilterPlugin;
use crate::scheduler::node_info::NodeInfo;

pub struct NodeAffinity;

fn requirement_matches(
    r: &NodeSelectorRequirement,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let value = labels.get(&r.key);
    let values: &[String] = r.values.as_deref().unwrap_or_default();
    let num = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(|v| num(v)), values.first().and_then(|v| num(v))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(|v| num(v)), values.first().and_then(|v| num(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn filter(&self, pod: &Pod, _state: &CycleState, node: &NodeInfo) -> Result<(), String> {
        let empty = Default::default();
        let labels = node.node.metadata.labels.as_ref().unwrap_or(&empty);
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(()); // no selector, no affinity
        };
        let reason = || Err("node(s) didn't match Pod's node affinity/selector".to_string());
        if !spec
            .node_selector
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            return reason();
        }
        let required = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        if let Some(sel) = required {
            // k8s: terms are ORed; requirements within a term are ANDed.
            let any = sel.node_selector_terms.iter().any(|t| {
                let exprs = t.match_expressions.as_deref().unwrap_or_default();
                !exprs.is_empty() && exprs.iter().all(|r| requirement_matches(r, labels))
            });
            if !any {
                return reason();
            }
        }
        Ok(())
    }
}
