//! Whether one set of rules grants everything another does.
//! k8s: pkg/registry/rbac/validation/policy_comparator.go (Covers, BreakdownRule, ruleCovers)

use super::rule::{Rule, ALL};

/// The rule split into one rule per group × resource × verb (× name), and per URL × verb.
/// k8s: BreakdownRule
pub fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let one = Rule {
                    verbs: vec![verb.clone()],
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    ..Rule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(one);
                } else {
                    for name in &rule.resource_names {
                        out.push(Rule {
                            resource_names: vec![name.clone()],
                            ..one.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(Rule::urls(&[verb], &[url]));
        }
    }
    out
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

/// k8s: resourceCoversAll — `*`, the same names, or `*/<subresource>` for a subresource.
fn resources_cover(set: &[String], wanted: &[String]) -> bool {
    if has(set, ALL) || has_all(set, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        has(set, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(set, &format!("*/{sub}")))
    })
}

/// k8s: nonResourceURLCovers.
fn url_covers(owner: &str, path: &str) -> bool {
    owner == path
        || owner
            .strip_suffix('*')
            .is_some_and(|p| path.starts_with(p.trim_end_matches('*')))
}

/// k8s: ruleCovers.
fn rule_covers(owner: &Rule, sub: &Rule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resources_cover(&owner.resources, &sub.resources);
    let urls = sub
        .non_resource_urls
        .iter()
        .all(|p| owner.non_resource_urls.iter().any(|o| url_covers(o, p)));
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && names && urls
}

/// The broken-down rules of `servant` that no rule of `owner` covers (empty: covered).
/// k8s: Covers
pub fn uncovered(owner: &[Rule], servant: &[Rule]) -> Vec<Rule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// k8s: policy_comparator_test.go, case by case.
    #[test]
    fn coverage_as_upstream() {
        let cases: Vec<(&str, Vec<Rule>, Vec<Rule>, usize)> = vec![
            (
                "exact",
                vec![Rule::new(&["get"], &[""], &["pods"])],
                vec![Rule::new(&["get"], &[""], &["pods"])],
                0,
            ),
            (
                "more verbs asked",
                vec![Rule::new(&["get"], &[""], &["pods"])],
                vec![Rule::new(&["get", "delete"], &[""], &["pods"])],
                1,
            ),
            (
                "star covers",
                vec![Rule::new(&["*"], &["*"], &["*"])],
                vec![Rule::new(
                    &["get", "delete"],
                    &["apps"],
                    &["deployments", "pods/log"],
                )],
                0,
            ),
            (
                "*/scale covers",
                vec![Rule::new(&["get"], &["apps"], &["*/scale"])],
                vec![Rule::new(&["get"], &["apps"], &["deployments/scale"])],
                0,
            ),
            (
                "*/scale not the resource",
                vec![Rule::new(&["get"], &["apps"], &["*/scale"])],
                vec![Rule::new(&["get"], &["apps"], &["deployments"])],
                1,
            ),
            (
                "names narrow the owner",
                vec![Rule::new(&["get"], &[""], &["pods"]).names(&["a"])],
                vec![Rule::new(&["get"], &[""], &["pods"])],
                1,
            ),
            (
                "names asked",
                vec![Rule::new(&["get"], &[""], &["pods"])],
                vec![Rule::new(&["get"], &[""], &["pods"]).names(&["a", "b"])],
                0,
            ),
            (
                "urls",
                vec![Rule::urls(&["get"], &["/apis/*"])],
                vec![Rule::urls(&["get"], &["/apis/apps", "/healthz"])],
                1,
            ),
            (
                "split across owners",
                vec![
                    Rule::new(&["get"], &[""], &["pods"]),
                    Rule::new(&["list"], &[""], &["pods"]),
                ],
                vec![Rule::new(&["get", "list"], &[""], &["pods"])],
                0,
            ),
        ];
        for (what, owner, servant, missing) in cases {
            assert_eq!(uncovered(&owner, &servant).len(), missing, "{what}");
        }
    }
}
