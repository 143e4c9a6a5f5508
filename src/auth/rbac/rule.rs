//! A policy rule and whether it allows a request.
//! k8s: pkg/apis/rbac/v1/evaluation_helpers.go, plugin/pkg/auth/authorizer/rbac/rbac.go RuleAllows

use serde_json::{json, Value};

use super::attributes::Attributes;

/// k8s: rbacv1.PolicyRule.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

/// k8s: rbacv1.VerbAll, APIGroupAll, ResourceAll, NonResourceAll.
pub const ALL: &str = "*";

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Rule {
    /// A resource rule.
    pub fn new(verbs: &[&str], api_groups: &[&str], resources: &[&str]) -> Rule {
        Rule {
            verbs: owned(verbs),
            api_groups: owned(api_groups),
            resources: owned(resources),
            ..Rule::default()
        }
    }

    /// A non-resource rule.
    pub fn urls(verbs: &[&str], urls: &[&str]) -> Rule {
        Rule {
            verbs: owned(verbs),
            non_resource_urls: owned(urls),
            ..Rule::default()
        }
    }

    pub fn names(mut self, names: &[&str]) -> Rule {
        self.resource_names = owned(names);
        self
    }

    /// From a stored PolicyRule.
    pub fn from_json(v: &Value) -> Rule {
        Rule {
            verbs: strings(&v["verbs"]),
            api_groups: strings(&v["apiGroups"]),
            resources: strings(&v["resources"]),
            resource_names: strings(&v["resourceNames"]),
            non_resource_urls: strings(&v["nonResourceURLs"]),
        }
    }

    /// The rules of a stored Role or ClusterRole.
    pub fn of(obj: &Value) -> Vec<Rule> {
        obj["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Rule::from_json)
            .collect()
    }

    /// As a PolicyRule (empty lists left out, as Go's omitempty does).
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("verbs".into(), json!(self.verbs));
        for (k, v) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !v.is_empty() {
                o.insert(k.into(), json!(v));
            }
        }
        Value::Object(o)
    }

    /// k8s: VerbMatches.
    pub fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == ALL || v == verb)
    }

    /// k8s: APIGroupMatches.
    pub fn api_group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == ALL || g == group)
    }

    /// k8s: ResourceMatches — `*`, `resource[/subresource]` exactly, or `*/subresource`.
    pub fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            if r == ALL {
                return true;
            }
            if subresource.is_empty() {
                return r == resource;
            }
            // `resource/subresource`, compared without building it.
            if r.len() == resource.len() + 1 + subresource.len()
                && r.starts_with(resource)
                && r.as_bytes()[resource.len()] == b'/'
                && r.ends_with(subresource)
            {
                return true;
            }
            r.len() == subresource.len() + 2 && r.starts_with("*/") && r.ends_with(subresource)
        })
    }

    /// k8s: ResourceNameMatches — no names means every name.
    pub fn resource_name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    /// k8s: NonResourceURLMatches — `*`, the path, or a prefix ending in `*`.
    pub fn non_resource_url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == ALL
                || u == path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
    }

    /// k8s: RuleAllows.
    pub fn allows(&self, a: &Attributes) -> bool {
        if a.resource_request {
            self.verb_matches(a.verb)
                && self.api_group_matches(a.api_group)
                && self.resource_matches(a.resource, a.subresource)
                && self.resource_name_matches(a.name)
        } else {
            self.verb_matches(a.verb) && self.non_resource_url_matches(a.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// k8s: plugin/pkg/auth/authorizer/rbac/rbac_test.go TestRuleMatches, and the helpers'
    /// rules: `*` matches every verb, group and resource; `pods` does not match `pods/log`;
    /// `*/scale` matches every scale subresource; resourceNames restrict; a trailing `*` on a
    /// URL is a prefix.
    #[test]
    fn rules_match_as_upstream() {
        fn get<'a>(res: &'a str, sub: &'a str, name: &'a str) -> Attributes<'a> {
            Attributes::resource("get", "", res, "ns", name).with_subresource(sub)
        }
        let pods = Rule::new(&["get"], &[""], &["pods"]);
        let star = Rule::new(&["*"], &["*"], &["*"]);
        let cases: Vec<(&str, Rule, Attributes, bool)> = vec![
            ("exact", pods.clone(), get("pods", "", "web"), true),
            (
                "other verb",
                pods.clone(),
                Attributes {
                    verb: "list",
                    ..get("pods", "", "")
                },
                false,
            ),
            (
                "other group",
                pods.clone(),
                Attributes {
                    api_group: "apps",
                    ..get("pods", "", "")
                },
                false,
            ),
            (
                "subresource not in resource",
                pods.clone(),
                get("pods", "log", "web"),
                false,
            ),
            (
                "pods/log",
                Rule::new(&["get"], &[""], &["pods/log"]),
                get("pods", "log", "web"),
                true,
            ),
            (
                "pods/log not pods",
                Rule::new(&["get"], &[""], &["pods/log"]),
                get("pods", "", "web"),
                false,
            ),
            (
                "pods/log not pods/exec",
                Rule::new(&["get"], &[""], &["pods/log"]),
                get("pods", "exec", "web"),
                false,
            ),
            (
                "*/scale",
                Rule::new(&["get"], &[""], &["*/scale"]),
                get("deployments", "scale", "d"),
                true,
            ),
            (
                "*/scale not scale itself",
                Rule::new(&["get"], &[""], &["*/scale"]),
                get("scale", "", "d"),
                false,
            ),
            (
                "*/scale not status",
                Rule::new(&["get"], &[""], &["*/scale"]),
                get("pods", "status", "d"),
                false,
            ),
            ("all", star.clone(), get("pods", "log", "web"), true),
            (
                "all verbs",
                Rule::new(&["*"], &[""], &["pods"]),
                Attributes {
                    verb: "deletecollection",
                    ..get("pods", "", "")
                },
                true,
            ),
            (
                "names",
                pods.clone().names(&["web"]),
                get("pods", "", "web"),
                true,
            ),
            (
                "names exclude",
                pods.clone().names(&["web"]),
                get("pods", "", "db"),
                false,
            ),
            (
                "names exclude lists",
                pods.clone().names(&["web"]),
                get("pods", "", ""),
                false,
            ),
            (
                "resource rule, url request",
                star.clone(),
                Attributes::non_resource("get", "/healthz"),
                false,
            ),
            (
                "url",
                Rule::urls(&["get"], &["/healthz"]),
                Attributes::non_resource("get", "/healthz"),
                true,
            ),
            (
                "url other verb",
                Rule::urls(&["get"], &["/healthz"]),
                Attributes::non_resource("post", "/healthz"),
                false,
            ),
            (
                "url prefix",
                Rule::urls(&["get"], &["/apis/*"]),
                Attributes::non_resource("get", "/apis/apps/v1"),
                true,
            ),
            (
                "url prefix exact",
                Rule::urls(&["get"], &["/apis/*"]),
                Attributes::non_resource("get", "/apis/"),
                true,
            ),
            (
                "url prefix not parent",
                Rule::urls(&["get"], &["/apis/*"]),
                Attributes::non_resource("get", "/apis"),
                false,
            ),
            (
                "url all",
                Rule::urls(&["*"], &["*"]),
                Attributes::non_resource("delete", "/x"),
                true,
            ),
            (
                "url rule, resource request",
                Rule::urls(&["*"], &["*"]),
                get("pods", "", ""),
                false,
            ),
        ];
        for (what, rule, attrs, want) in cases {
            assert_eq!(rule.allows(&attrs), want, "{what}");
        }
    }

    #[test]
    fn rules_round_trip_json() {
        let r = Rule::new(&["get"], &[""], &["pods"]).names(&["a"]);
        assert_eq!(
            r.to_json(),
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]})
        );
        assert_eq!(Rule::from_json(&r.to_json()), r);
    }
}
