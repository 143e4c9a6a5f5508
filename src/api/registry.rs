//! The resource registry: one table that says, per resource, everything the rest of gantry needs
//! to know about it (storage keys, discovery, tables, short names for kubectl).
//!
//! k8s: the values mirror the v1.33 apiserver's discovery documents (`kubectl api-resources -o wide`).

use std::fmt;

/// An API verb as discovery lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Create,
    Delete,
    DeleteCollection,
    Get,
    List,
    Patch,
    Update,
    Watch,
}

impl Verb {
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Patch => "patch",
            Verb::Update => "update",
            Verb::Watch => "watch",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

use Verb::*;

/// Every verb a plain namespaced resource supports.
const ALL_VERBS: &[Verb] = &[
    Create,
    Delete,
    DeleteCollection,
    Get,
    List,
    Patch,
    Update,
    Watch,
];
/// k8s: namespaces have no deletecollection.
const NAMESPACE_VERBS: &[Verb] = &[Create, Delete, Get, List, Patch, Update, Watch];

/// What the registry knows about one resource.
#[derive(Clone, Copy, Debug, Eq)]
pub struct ResourceInfo {
    /// API group; "" is the core (legacy) group served under /api.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [Verb],
    pub subresources: &'static [&'static str],
}

impl PartialEq for ResourceInfo {
    /// Every field equal, as derived; the registry's entries are statics, so most comparisons
    /// (an informer asking whether an input is for its resource) are settled by the address.
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
            || (self.group == other.group
                && self.version == other.version
                && self.kind == other.kind
                && self.plural == other.plural
                && self.singular == other.singular
                && self.namespaced == other.namespaced
                && self.short_names == other.short_names
                && self.categories == other.categories
                && self.verbs == other.verbs
                && self.subresources == other.subresources)
    }
}

impl ResourceInfo {
    /// `v1` for the core group, `apps/v1` otherwise: the value of an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group segment of storage keys; the core group is spelled `core`.
    pub fn storage_group(&self) -> &'static str {
        if self.group.is_empty() {
            "core"
        } else {
            self.group
        }
    }

    /// `/registry/<group>/<plural>/`: the prefix holding every object of this resource.
    pub fn storage_prefix(&self) -> String {
        format!("/registry/{}/{}/", self.storage_group(), self.plural)
    }

    /// The prefix holding the objects of one namespace (for a namespaced resource), with a
    /// trailing slash so that namespace `a` never matches namespace `ab`.
    pub fn storage_namespace_prefix(&self, namespace: &str) -> String {
        format!("{}{}/", self.storage_prefix(), namespace)
    }

    /// The storage key of one object. `namespace` is ignored for cluster-scoped resources.
    pub fn storage_key(&self, namespace: Option<&str>, name: &str) -> String {
        // One buffer grown from the prefix: a key is made for every request.
        let ns = namespace.filter(|_| self.namespaced);
        let mut key = self.storage_prefix();
        key.reserve(ns.map_or(0, |n| n.len() + 1) + name.len());
        if let Some(ns) = ns {
            key.push_str(ns);
            key.push('/');
        }
        key.push_str(name);
        key
    }

    pub fn supports(&self, verb: Verb) -> bool {
        self.verbs.contains(&verb)
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

const fn resource(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
    }
}

/// The resources gantry serves. Order is the discovery order within a group.
pub static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        short_names: &["ns"],
        verbs: NAMESPACE_VERBS,
        subresources: &["finalize", "status"],
        ..resource("", "Namespace", "namespaces", "namespace", false)
    },
    ResourceInfo {
        short_names: &["po"],
        categories: &["all"],
        subresources: &[
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "resize",
            "status",
        ],
        ..resource("", "Pod", "pods", "pod", true)
    },
    ResourceInfo {
        short_names: &["no"],
        subresources: &["proxy", "status"],
        ..resource("", "Node", "nodes", "node", false)
    },
    ResourceInfo {
        short_names: &["svc"],
        categories: &["all"],
        subresources: &["proxy", "status"],
        ..resource("", "Service", "services", "service", true)
    },
    ResourceInfo {
        short_names: &["ep"],
        ..resource("", "Endpoints", "endpoints", "endpoints", true)
    },
    ResourceInfo {
        short_names: &["ev"],
        ..resource("", "Event", "events", "event", true)
    },
    ResourceInfo {
        short_names: &["cm"],
        ..resource("", "ConfigMap", "configmaps", "configmap", true)
    },
    resource("", "Secret", "secrets", "secret", true),
    ResourceInfo {
        short_names: &["sa"],
        subresources: &["token"],
        ..resource(
            "",
            "ServiceAccount",
            "serviceaccounts",
            "serviceaccount",
            true,
        )
    },
    ResourceInfo {
        short_names: &["rc"],
        categories: &["all"],
        subresources: &["scale", "status"],
        ..resource(
            "",
            "ReplicationController",
            "replicationcontrollers",
            "replicationcontroller",
            true,
        )
    },
    ResourceInfo {
        short_names: &["rs"],
        categories: &["all"],
        subresources: &["scale", "status"],
        ..resource("apps", "ReplicaSet", "replicasets", "replicaset", true)
    },
    ResourceInfo {
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &["scale", "status"],
        ..resource("apps", "Deployment", "deployments", "deployment", true)
    },
    resource(
        "discovery.k8s.io",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
    ),
    resource("coordination.k8s.io", "Lease", "leases", "lease", true),
    ResourceInfo {
        short_names: &["pc"],
        ..resource(
            "scheduling.k8s.io",
            "PriorityClass",
            "priorityclasses",
            "priorityclass",
            false,
        )
    },
    // k8s: authentication.k8s.io/v1 SelfSubjectReview (`kubectl auth whoami`): create only,
    // answered from the request's user, never stored (apiserver/http/selfsubjectreview.rs).
    ResourceInfo {
        verbs: &[Create],
        ..resource(
            "authentication.k8s.io",
            "SelfSubjectReview",
            "selfsubjectreviews",
            "selfsubjectreview",
            false,
        )
    },
    // k8s: authentication.k8s.io/v1 TokenReview: create-only and never stored (the apiserver
    // core answers it).
    ResourceInfo {
        verbs: &[Create],
        ..resource(
            "authentication.k8s.io",
            "TokenReview",
            "tokenreviews",
            "tokenreview",
            false,
        )
    },
    // k8s: rbac.authorization.k8s.io/v1, in upstream's discovery order.
    resource(
        RBAC_GROUP,
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
    ),
    resource(
        RBAC_GROUP,
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
    ),
    resource(
        RBAC_GROUP,
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
    ),
    resource(RBAC_GROUP, "Role", "roles", "role", true),
    // k8s: authorization.k8s.io/v1 — create-only reviews, answered and not stored.
    ResourceInfo {
        verbs: &[Create],
        ..resource(
            AUTHORIZATION_GROUP,
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            "localsubjectaccessreview",
            true,
        )
    },
    ResourceInfo {
        verbs: &[Create],
        ..resource(
            AUTHORIZATION_GROUP,
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            "selfsubjectaccessreview",
            false,
        )
    },
    ResourceInfo {
        verbs: &[Create],
        ..resource(
            AUTHORIZATION_GROUP,
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            "selfsubjectrulesreview",
            false,
        )
    },
    ResourceInfo {
        verbs: &[Create],
        ..resource(
            AUTHORIZATION_GROUP,
            "SubjectAccessReview",
            "subjectaccessreviews",
            "subjectaccessreview",
            false,
        )
    },
];

/// Whether objects of `res` are kept (and so listed, watched and cached): false for the
/// create-only reviews (k8s: their REST storage is a `rest.Creater` alone).
pub fn is_stored(res: &ResourceInfo) -> bool {
    res.supports(Get)
}
/// k8s: authorization.GroupName.
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";

/// k8s: rbac.GroupName.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Look a resource up by group and plural (the form URLs use).
pub fn by_plural(group: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// Look a resource up by apiVersion and kind (the form manifests use).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// Resolve what a user typed (`po`, `pod`, `pods`, `deployments.apps`) the way kubectl does.
pub fn by_user_name(name: &str) -> Option<&'static ResourceInfo> {
    let name = name.to_ascii_lowercase();
    let (resource, group) = match name.split_once('.') {
        Some((r, g)) => (r.to_string(), Some(g.to_string())),
        None => (name, None),
    };
    RESOURCES.iter().find(|r| {
        group.as_deref().is_none_or(|g| g == r.group)
            && (r.plural == resource
                || r.singular == resource
                || r.short_names.contains(&resource.as_str()))
    })
}

/// The distinct group/versions served, core first, in registry order.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{
        apps, authentication, authorization, coordination, core, discovery, rbac, scheduling,
    };
    use k8s_openapi::{ClusterResourceScope, Resource};

    /// The registry entry must agree with k8s-openapi's own metadata for the type, so the table
    /// can never drift from the types objects are decoded into.
    fn check<T: Resource>()
    where
        T::Scope: 'static,
    {
        let info = by_kind(T::API_VERSION, T::KIND)
            .unwrap_or_else(|| panic!("{} {} missing from registry", T::API_VERSION, T::KIND));
        assert_eq!(info.group, T::GROUP, "{}", T::KIND);
        assert_eq!(info.version, T::VERSION, "{}", T::KIND);
        assert_eq!(info.plural, T::URL_PATH_SEGMENT, "{}", T::KIND);
        let cluster_scoped =
            std::any::TypeId::of::<T::Scope>() == std::any::TypeId::of::<ClusterResourceScope>();
        assert_eq!(info.namespaced, !cluster_scoped, "{} scope", T::KIND);
    }

    #[test]
    fn registry_matches_k8s_openapi_types() {
        check::<core::v1::Namespace>();
        check::<core::v1::Pod>();
        check::<core::v1::Node>();
        check::<core::v1::Service>();
        check::<core::v1::Endpoints>();
        check::<core::v1::Event>();
        check::<core::v1::ConfigMap>();
        check::<core::v1::Secret>();
        check::<core::v1::ServiceAccount>();
        check::<core::v1::ReplicationController>();
        check::<apps::v1::ReplicaSet>();
        check::<apps::v1::Deployment>();
        check::<discovery::v1::EndpointSlice>();
        check::<coordination::v1::Lease>();
        check::<scheduling::v1::PriorityClass>();
        check::<authentication::v1::SelfSubjectReview>();
        check::<authentication::v1::TokenReview>();
        check::<rbac::v1::ClusterRoleBinding>();
        check::<rbac::v1::ClusterRole>();
        check::<rbac::v1::RoleBinding>();
        check::<rbac::v1::Role>();
        check::<authorization::v1::LocalSubjectAccessReview>();
        check::<authorization::v1::SelfSubjectAccessReview>();
        check::<authorization::v1::SelfSubjectRulesReview>();
        check::<authorization::v1::SubjectAccessReview>();
        assert_eq!(RESOURCES.len(), 25, "every registry entry is checked above");
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RESOURCES {
            for name in std::iter::once(&r.plural)
                .chain(std::iter::once(&r.singular))
                .chain(r.short_names)
            {
                // Endpoints is its own singular, which is allowed once.
                if r.plural == r.singular && name == &r.singular && seen.contains(name) {
                    continue;
                }
                assert!(seen.insert(*name), "{name} used twice");
            }
        }
    }

    #[test]
    fn user_names_resolve_like_kubectl() {
        let cases = [
            ("po", "pods"),
            ("pod", "pods"),
            ("Pods", "pods"),
            ("deploy", "deployments"),
            ("deployments.apps", "deployments"),
            ("rs", "replicasets"),
            ("ns", "namespaces"),
            ("ep", "endpoints"),
            ("lease", "leases"),
            ("rc", "replicationcontrollers"),
        ];
        for (typed, plural) in cases {
            assert_eq!(
                by_user_name(typed).map(|r| r.plural),
                Some(plural),
                "{typed}"
            );
        }
        assert!(by_user_name("pods.apps").is_none());
        assert!(by_user_name("widgets").is_none());
    }

    #[test]
    fn storage_keys() {
        let cases = [
            (
                "pods",
                "",
                Some("default"),
                "web-1",
                "/registry/core/pods/default/web-1",
            ),
            (
                "deployments",
                "apps",
                Some("prod"),
                "api",
                "/registry/apps/deployments/prod/api",
            ),
            ("nodes", "", None, "n1", "/registry/core/nodes/n1"),
            // Cluster-scoped resources ignore a namespace.
            (
                "namespaces",
                "",
                Some("x"),
                "kube-system",
                "/registry/core/namespaces/kube-system",
            ),
            (
                "leases",
                "coordination.k8s.io",
                Some("kube-node-lease"),
                "n1",
                "/registry/coordination.k8s.io/leases/kube-node-lease/n1",
            ),
        ];
        for (plural, group, ns, name, key) in cases {
            let info = by_plural(group, plural).unwrap();
            assert_eq!(info.storage_key(ns, name), key);
            assert!(key.starts_with(&info.storage_prefix()));
        }
        let pods = by_plural("", "pods").unwrap();
        assert!(!pods
            .storage_key(Some("ab"), "x")
            .starts_with(&pods.storage_namespace_prefix("a")));
    }

    #[test]
    fn verbs_and_subresources() {
        let ns = by_plural("", "namespaces").unwrap();
        assert!(!ns.supports(Verb::DeleteCollection));
        assert!(ns.has_subresource("finalize"));
        let pods = by_plural("", "pods").unwrap();
        assert!(pods.supports(Verb::Watch) && pods.has_subresource("binding"));
        assert!(by_plural("apps", "deployments")
            .unwrap()
            .has_subresource("scale"));
        let review = by_plural("authentication.k8s.io", "selfsubjectreviews").unwrap();
        assert!(review.supports(Verb::Create) && !is_stored(review));
        assert!(is_stored(pods));
        assert_eq!(
            group_versions(),
            vec![
                ("", "v1"),
                ("apps", "v1"),
                ("discovery.k8s.io", "v1"),
                ("coordination.k8s.io", "v1"),
                ("scheduling.k8s.io", "v1"),
                ("authentication.k8s.io", "v1"),
                ("rbac.authorization.k8s.io", "v1"),
                ("authorization.k8s.io", "v1")
            ]
        );
    }
}
