//! Discovery documents, both forms kubectl and the clients use (kubectl-compat.md §1.1):
//! legacy (`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`) and aggregated v2, all built from the
//! resource registry.

use serde_json::{json, Value};

use crate::api::registry::{self, ResourceInfo, RESOURCES};

/// k8s: the Content-Type client-go picks the aggregated decoder by; the same body sent as
/// `application/json` makes kubectl fail to find any resource type.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header asks for aggregated discovery (v2, or v2beta1 answered as v2).
pub fn wants_aggregated(accept: &str) -> bool {
    super::accepts(
        accept,
        &["g=apidiscovery.k8s.io", "as=APIGroupDiscoveryList"],
    )
}

/// A subresource as discovery describes it: the kind it answers with and its verbs.
struct Sub {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
}

/// k8s: the v1.33 discovery entries of each subresource.
fn subresource(res: &ResourceInfo, name: &str) -> Sub {
    let own = |verbs| Sub {
        group: res.group,
        version: res.version,
        kind: res.kind,
        verbs,
    };
    let other = |group, version, kind, verbs| Sub {
        group,
        version,
        kind,
        verbs,
    };
    match name {
        "status" => own(&["get", "patch", "update"]),
        "finalize" => own(&["update"]),
        "log" => own(&["get"]),
        "ephemeralcontainers" | "resize" => own(&["get", "patch", "update"]),
        "binding" => other("", "v1", "Binding", &["create"]),
        "eviction" => other("policy", "v1", "Eviction", &["create"]),
        "scale" => other("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
        "token" => other("authentication.k8s.io", "v1", "TokenRequest", &["create"]),
        "attach" | "exec" => other("", "v1", "PodAttachOptions", &["create", "get"]),
        "portforward" => other("", "v1", "PodPortForwardOptions", &["create", "get"]),
        _ => other(
            "",
            "v1",
            match res.kind {
                "Node" => "NodeProxyOptions",
                "Service" => "ServiceProxyOptions",
                _ => "PodProxyOptions",
            },
            &["create", "delete", "get", "patch", "update"],
        ),
    }
}

fn verbs(res: &ResourceInfo) -> Vec<&'static str> {
    res.verbs.iter().map(|v| v.as_str()).collect()
}

/// Short names (`po`) and categories (`all`), where a resource has them.
fn add_names(entry: &mut Value, res: &ResourceInfo) {
    if !res.short_names.is_empty() {
        entry["shortNames"] = json!(res.short_names);
    }
    if !res.categories.is_empty() {
        entry["categories"] = json!(res.categories);
    }
}

fn resources_of<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `GET /api`: the legacy APIVersions document.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis`: the legacy APIGroupList (every group but the core one).
pub fn api_group_list() -> Value {
    let mut groups: Vec<Value> = Vec::new();
    for (group, version) in registry::group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
    {
        let gv = json!({"groupVersion": group_version(group, version), "version": version});
        groups.push(json!({
            "name": group,
            "versions": [gv.clone()],
            "preferredVersion": gv,
        }));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1`, `GET /apis/<g>/<v>`: the legacy APIResourceList, subresources as
/// `pods/status` entries. `None` for a group/version that is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for res in resources_of(group, version) {
        let mut entry = json!({
            "name": res.plural,
            "singularName": res.singular,
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": verbs(res),
        });
        add_names(&mut entry, res);
        resources.push(entry);
        for name in res.subresources {
            let sub = subresource(res, name);
            let mut entry = json!({
                "name": format!("{}/{name}", res.plural),
                "singularName": "",
                "namespaced": res.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if (sub.group, sub.version) != (res.group, res.version) {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    }))
}

/// The aggregated (v2) APIGroupDiscoveryList: for `/api` the core group alone (an item without
/// a name), for `/apis` every other group.
pub fn aggregated(core: bool) -> Value {
    let mut items = Vec::new();
    for (group, version) in registry::group_versions()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
    {
        let resources: Vec<Value> = resources_of(group, version)
            .map(|res| {
                let mut entry = json!({
                    "resource": res.plural,
                    "responseKind": {"group": res.group, "version": res.version, "kind": res.kind},
                    "scope": if res.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": res.singular,
                    "verbs": verbs(res),
                });
                add_names(&mut entry, res);
                if !res.subresources.is_empty() {
                    entry["subresources"] = res
                        .subresources
                        .iter()
                        .map(|name| {
                            let sub = subresource(res, name);
                            json!({
                                "subresource": name,
                                "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                                "verbs": sub.verbs,
                            })
                        })
                        .collect();
                }
                entry
            })
            .collect();
        let mut metadata = json!({"creationTimestamp": null});
        if !core {
            metadata["name"] = json!(group);
        }
        items.push(json!({
            "metadata": metadata,
            "versions": [{"version": version, "freshness": "Current", "resources": resources}],
        }));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_is_asked_for_by_its_media_type() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let cases = [
            (kubectl, true),
            ("application/json, */*", false),
            ("application/json", false),
            ("", false),
        ];
        for (accept, want) in cases {
            assert_eq!(wants_aggregated(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn legacy_lists_carry_subresources_short_names_and_categories() {
        let core = api_resource_list("", "v1").unwrap();
        let find = |name: &str| {
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name} listed"))
        };
        assert_eq!(find("pods")["shortNames"], json!(["po"]));
        assert_eq!(find("pods")["categories"], json!(["all"]));
        assert_eq!(find("pods/log")["verbs"], json!(["get"]));
        assert_eq!(find("pods/eviction")["group"], "policy");
        assert_eq!(find("pods/binding")["kind"], "Binding");
        assert_eq!(find("namespaces")["namespaced"], false);
        let apps = api_resource_list("apps", "v1").unwrap();
        assert_eq!(apps["groupVersion"], "apps/v1");
        assert!(api_resource_list("apps", "v2").is_none());
        assert!(api_resource_list("nope", "v1").is_none());
    }

    #[test]
    fn aggregated_lists_split_core_and_groups() {
        let core = aggregated(true);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert!(core["items"][0]["metadata"].get("name").is_none());
        let groups = aggregated(false);
        let names: Vec<&str> = groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "apps",
                "discovery.k8s.io",
                "coordination.k8s.io",
                "scheduling.k8s.io",
                "authentication.k8s.io",
                "rbac.authorization.k8s.io",
                "authorization.k8s.io"
            ]
        );
        let pods = &core["items"][0]["versions"][0]["resources"][1];
        assert_eq!(pods["resource"], "pods");
        assert_eq!(pods["scope"], "Namespaced");
        let eviction = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "eviction")
            .unwrap();
        assert_eq!(eviction["responseKind"]["group"], "policy");
    }
}
