//! The bootstrap policy: the ClusterRoles and ClusterRoleBindings every cluster starts with.
//! k8s: plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go (v1.33)

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::rule::Rule;
use crate::api::registry::RBAC_GROUP;

/// k8s: bootstrappolicy's verb sets.
pub const READ: &[&str] = &["get", "list", "watch"];
pub const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
pub const READ_UPDATE: &[&str] = &["get", "list", "watch", "update", "patch"];
pub const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

/// k8s: the annotation that keeps a bootstrap object as its owner changed it.
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// k8s: bootstrappolicy's label on every object it makes.
pub const BOOTSTRAPPING_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const LEGACY: &str = "";
const APPS: &str = "apps";
const AUTHENTICATION: &str = "authentication.k8s.io";
const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTOSCALING: &str = "autoscaling";
const BATCH: &str = "batch";
const CERTIFICATES: &str = "certificates.k8s.io";
const COORDINATION: &str = "coordination.k8s.io";
const DISCOVERY: &str = "discovery.k8s.io";
const EVENTS: &str = "events.k8s.io";
const EXTENSIONS: &str = "extensions";
const NETWORKING: &str = "networking.k8s.io";
const POLICY: &str = "policy";
const STORAGE: &str = "storage.k8s.io";

pub fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Rule {
    Rule::new(verbs, groups, resources)
}

/// k8s: eventsRule()
pub fn events_rule() -> Rule {
    rule(
        &["create", "update", "patch"],
        &[LEGACY, EVENTS],
        &["events"],
    )
}

/// A ClusterRole of the policy.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterRole {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
    /// `aggregationRule.clusterRoleSelectors[*].matchLabels`.
    pub aggregate_from: Vec<(String, String)>,
}

impl ClusterRole {
    fn new(name: &str, rules: Vec<Rule>) -> ClusterRole {
        ClusterRole {
            name: name.to_string(),
            labels: BTreeMap::new(),
            rules,
            aggregate_from: Vec::new(),
        }
    }

    fn label(mut self, k: &str, v: &str) -> ClusterRole {
        self.labels.insert(k.into(), v.into());
        self
    }

    fn aggregated(mut self, label: &str) -> ClusterRole {
        self.aggregate_from.push((label.into(), "true".into()));
        self
    }

    /// The object, with the bootstrap label and the autoupdate annotation.
    pub fn to_json(&self) -> Value {
        let mut labels = self.labels.clone();
        labels.insert(BOOTSTRAPPING_LABEL.0.into(), BOOTSTRAPPING_LABEL.1.into());
        let mut obj = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": self.name, "labels": labels,
                         "annotations": {AUTOUPDATE: "true"}},
            "rules": self.rules.iter().map(Rule::to_json).collect::<Vec<_>>(),
        });
        if !self.aggregate_from.is_empty() {
            let selectors: Vec<Value> = self
                .aggregate_from
                .iter()
                .map(|(k, v)| json!({"matchLabels": {k: v}}))
                .collect();
            obj["aggregationRule"] = json!({"clusterRoleSelectors": selectors});
        }
        obj
    }
}

/// A subject of a binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
    ServiceAccount(String, String),
}

impl Subject {
    pub fn to_json(&self) -> Value {
        match self {
            Subject::User(n) => json!({"kind": "User", "apiGroup": RBAC_GROUP, "name": n}),
            Subject::Group(n) => json!({"kind": "Group", "apiGroup": RBAC_GROUP, "name": n}),
            Subject::ServiceAccount(ns, n) => {
                json!({"kind": "ServiceAccount", "name": n, "namespace": ns})
            }
        }
    }
}

/// A ClusterRoleBinding of the policy (named as its role, as upstream's).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterRoleBinding {
    pub name: String,
    pub role: String,
    pub subjects: Vec<Subject>,
}

impl ClusterRoleBinding {
    pub fn to_json(&self) -> Value {
        let mut labels = BTreeMap::new();
        labels.insert(BOOTSTRAPPING_LABEL.0, BOOTSTRAPPING_LABEL.1);
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": self.name, "labels": labels, "annotations": {AUTOUPDATE: "true"}},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": self.role},
            "subjects": self.subjects.iter().map(Subject::to_json).collect::<Vec<_>>(),
        })
    }
}

fn binding(role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        name: role.to_string(),
        role: role.to_string(),
        subjects,
    }
}

fn group(n: &str) -> Subject {
    Subject::Group(n.into())
}

fn user(n: &str) -> Subject {
    Subject::User(n.into())
}

/// k8s: NodeRules()
pub fn node_rules() -> Vec<Rule> {
    vec![
        rule(&["create"], &[AUTHENTICATION], &["tokenreviews"]),
        rule(
            &["create"],
            &[AUTHORIZATION],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        rule(READ, &[LEGACY], &["services"]),
        rule(&["create", "get", "list", "watch"], &[LEGACY], &["nodes"]),
        rule(&["update", "patch"], &[LEGACY], &["nodes/status"]),
        rule(&["update", "patch"], &[LEGACY], &["nodes"]),
        rule(&["create", "update", "patch"], &[LEGACY], &["events"]),
        rule(READ, &[LEGACY], &["pods"]),
        rule(&["create", "delete"], &[LEGACY], &["pods"]),
        rule(&["update", "patch"], &[LEGACY], &["pods/status"]),
        rule(&["create"], &[LEGACY], &["pods/eviction"]),
        rule(READ, &[LEGACY], &["secrets", "configmaps"]),
        rule(
            &["get"],
            &[LEGACY],
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(&["get"], &[LEGACY], &["endpoints"]),
        rule(
            &["create", "get", "list", "watch"],
            &[CERTIFICATES],
            &["certificatesigningrequests"],
        ),
        rule(
            &["get", "create", "update", "patch", "delete"],
            &[COORDINATION],
            &["leases"],
        ),
        rule(&["get"], &[STORAGE], &["volumeattachments"]),
        rule(
            &["update", "patch"],
            &[LEGACY],
            &["persistentvolumeclaims/status"],
        ),
        rule(&["create"], &[LEGACY], &["serviceaccounts/token"]),
        rule(&["get", "watch", "list"], &[STORAGE], &["csidrivers"]),
        rule(
            &["get", "create", "update", "patch", "delete"],
            &[STORAGE],
            &["csinodes"],
        ),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

/// The approver roles of the CSR signers. k8s: policy.go, "system:certificates.k8s.io:*"
fn approver(name: &str, signer: &str) -> ClusterRole {
    ClusterRole::new(
        name,
        vec![rule(&["approve"], &[CERTIFICATES], &["signers"]).names(&[signer])],
    )
}

/// k8s: ClusterRoles()
pub fn cluster_roles() -> Vec<ClusterRole> {
    let discovery_urls = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/openapi",
        "/openapi/*",
        "/readyz",
        "/version",
        "/version/",
    ];
    let public_info = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let mut roles = vec![
        ClusterRole::new(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), Rule::urls(&["*"], &["*"])],
        ),
        ClusterRole::new(
            "system:discovery",
            vec![Rule::urls(&["get"], &discovery_urls)],
        ),
        ClusterRole::new(
            "system:monitoring",
            vec![Rule::urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        ClusterRole::new(
            "system:basic-user",
            vec![
                rule(&["create"], &[AUTHENTICATION], &["selfsubjectreviews"]),
                rule(
                    &["create"],
                    &[AUTHORIZATION],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
            ],
        ),
        ClusterRole::new(
            "system:public-info-viewer",
            vec![Rule::urls(&["get"], &public_info)],
        ),
        ClusterRole::new("admin", vec![]).aggregated(AGGREGATE_TO_ADMIN),
        ClusterRole::new("edit", vec![])
            .label(AGGREGATE_TO_ADMIN, "true")
            .aggregated(AGGREGATE_TO_EDIT),
        ClusterRole::new("view", vec![])
            .label(AGGREGATE_TO_EDIT, "true")
            .aggregated(AGGREGATE_TO_VIEW),
        ClusterRole::new(
            "system:aggregate-to-admin",
            vec![
                rule(
                    &["create"],
                    &[AUTHORIZATION],
                    &["localsubjectaccessreviews"],
                ),
                rule(READ_WRITE, &[RBAC_GROUP], &["roles", "rolebindings"]),
            ],
        )
        .label(AGGREGATE_TO_ADMIN, "true"),
        ClusterRole::new("system:aggregate-to-edit", aggregate_to_edit())
            .label(AGGREGATE_TO_EDIT, "true"),
        ClusterRole::new("system:aggregate-to-view", aggregate_to_view())
            .label(AGGREGATE_TO_VIEW, "true"),
        ClusterRole::new(
            "system:heapster",
            vec![
                rule(READ, &[LEGACY], &["events", "pods", "nodes", "namespaces"]),
                rule(READ, &[EXTENSIONS, APPS], &["deployments"]),
            ],
        ),
        ClusterRole::new("system:node", node_rules()),
        ClusterRole::new(
            "system:node-problem-detector",
            vec![
                rule(&["get"], &[LEGACY], &["nodes"]),
                rule(&["patch"], &[LEGACY], &["nodes/status"]),
                events_rule(),
            ],
        ),
        ClusterRole::new(
            "system:kubelet-api-admin",
            vec![
                rule(&["get", "list", "watch", "proxy"], &[LEGACY], &["nodes"]),
                rule(
                    &["*"],
                    &[LEGACY],
                    &["nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log"],
                ),
            ],
        ),
        ClusterRole::new(
            "system:node-bootstrapper",
            vec![rule(
                &["create", "get", "list", "watch"],
                &[CERTIFICATES],
                &["certificatesigningrequests"],
            )],
        ),
        ClusterRole::new(
            "system:auth-delegator",
            vec![
                rule(&["create"], &[AUTHENTICATION], &["tokenreviews"]),
                rule(&["create"], &[AUTHORIZATION], &["subjectaccessreviews"]),
            ],
        ),
        ClusterRole::new(
            "system:kube-aggregator",
            vec![rule(READ, &["apiregistration.k8s.io"], &["apiservices"])],
        ),
        ClusterRole::new("system:kube-controller-manager", kube_controller_manager()),
        ClusterRole::new(
            "system:kube-dns",
            vec![rule(
                &["list", "watch"],
                &[LEGACY],
                &["endpoints", "services"],
            )],
        ),
        ClusterRole::new(
            "system:persistent-volume-provisioner",
            vec![
                rule(
                    &["get", "list", "watch", "create", "delete"],
                    &[LEGACY],
                    &["persistentvolumes"],
                ),
                rule(
                    &["get", "list", "watch", "update"],
                    &[LEGACY],
                    &["persistentvolumeclaims"],
                ),
                rule(READ, &[STORAGE], &["storageclasses"]),
                rule(&["watch"], &[LEGACY], &["events"]),
                events_rule(),
            ],
        ),
        ClusterRole::new(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(
                &["create"],
                &[CERTIFICATES],
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        ClusterRole::new(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(
                &["create"],
                &[CERTIFICATES],
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        ClusterRole::new(
            "system:volume-scheduler",
            vec![
                rule(READ_UPDATE, &[LEGACY], &["persistentvolumes"]),
                rule(READ, &[STORAGE], &["storageclasses"]),
                rule(READ_UPDATE, &[LEGACY], &["persistentvolumeclaims"]),
            ],
        ),
        approver(
            "system:certificates.k8s.io:legacy-unknown-approver",
            "kubernetes.io/legacy-unknown",
        ),
        approver(
            "system:certificates.k8s.io:kubelet-serving-approver",
            "kubernetes.io/kubelet-serving",
        ),
        approver(
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            "kubernetes.io/kube-apiserver-client",
        ),
        approver(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            "kubernetes.io/kube-apiserver-client-kubelet",
        ),
        ClusterRole::new(
            "system:service-account-issuer-discovery",
            vec![Rule::urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        ClusterRole::new(
            "system:node-proxier",
            vec![
                rule(&["list", "watch"], &[LEGACY], &["services", "endpoints"]),
                rule(&["get", "list", "watch"], &[LEGACY], &["nodes"]),
                rule(&["list", "watch"], &[DISCOVERY], &["endpointslices"]),
                events_rule(),
            ],
        ),
        ClusterRole::new("system:kube-scheduler", kube_scheduler()),
    ];
    roles.extend(super::controller_policy::controller_roles());
    roles
}

/// k8s: the "system:aggregate-to-edit" role.
fn aggregate_to_edit() -> Vec<Rule> {
    vec![
        rule(
            READ,
            &[LEGACY],
            &[
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
                "secrets",
                "services/proxy",
            ],
        ),
        rule(&["impersonate"], &[LEGACY], &["serviceaccounts"]),
        rule(
            WRITE,
            &[LEGACY],
            &[
                "pods",
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
            ],
        ),
        rule(&["create"], &[LEGACY], &["pods/eviction"]),
        rule(
            WRITE,
            &[LEGACY],
            &[
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ],
        ),
        rule(&["create"], &[LEGACY], &["serviceaccounts/token"]),
        rule(
            WRITE,
            &[APPS],
            &[
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        rule(WRITE, &[AUTOSCALING], &["horizontalpodautoscalers"]),
        rule(WRITE, &[BATCH], &["jobs", "cronjobs"]),
        rule(
            WRITE,
            &[EXTENSIONS],
            &[
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "ingresses",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        rule(WRITE, &[POLICY], &["poddisruptionbudgets"]),
        rule(WRITE, &[NETWORKING], &["networkpolicies", "ingresses"]),
        rule(READ_WRITE, &[COORDINATION], &["leases"]),
    ]
}

/// k8s: the "system:aggregate-to-view" role.
fn aggregate_to_view() -> Vec<Rule> {
    vec![
        rule(
            READ,
            &[LEGACY],
            &[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        rule(
            READ,
            &[LEGACY],
            &[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        rule(READ, &[LEGACY], &["namespaces"]),
        rule(READ, &[DISCOVERY], &["endpointslices"]),
        rule(
            READ,
            &[APPS],
            &[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ],
        ),
        rule(
            READ,
            &[AUTOSCALING],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            &[BATCH],
            &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
        ),
        rule(
            READ,
            &[EXTENSIONS],
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        rule(
            READ,
            &[POLICY],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(
            READ,
            &[NETWORKING],
            &["networkpolicies", "ingresses", "ingresses/status"],
        ),
    ]
}

/// k8s: the "system:kube-controller-manager" role (the controller-manager's own identity:
/// its shared informers list and watch everything).
fn kube_controller_manager() -> Vec<Rule> {
    vec![
        events_rule(),
        rule(&["create"], &[COORDINATION], &["leases"]),
        rule(&["get", "update"], &[COORDINATION], &["leases"]).names(&["kube-controller-manager"]),
        rule(&["create"], &[LEGACY], &["endpoints"]),
        rule(&["get", "update"], &[LEGACY], &["endpoints"]).names(&["kube-controller-manager"]),
        rule(&["create"], &[LEGACY], &["secrets", "serviceaccounts"]),
        rule(&["delete"], &[LEGACY], &["secrets"]),
        rule(
            &["get"],
            &[LEGACY],
            &["namespaces", "secrets", "serviceaccounts", "configmaps"],
        ),
        rule(&["update"], &[LEGACY], &["secrets", "serviceaccounts"]),
        rule(&["create"], &[AUTHENTICATION], &["tokenreviews"]),
        rule(&["create"], &[AUTHORIZATION], &["subjectaccessreviews"]),
        rule(&["list", "watch"], &["*"], &["*"]),
        rule(&["create"], &[LEGACY], &["serviceaccounts/token"]),
    ]
}

/// k8s: the "system:kube-scheduler" role.
fn kube_scheduler() -> Vec<Rule> {
    vec![
        events_rule(),
        rule(&["create"], &[COORDINATION], &["leases"]),
        rule(&["get", "update"], &[COORDINATION], &["leases"]).names(&["kube-scheduler"]),
        rule(&["create"], &[LEGACY], &["endpoints"]),
        rule(&["get", "update"], &[LEGACY], &["endpoints"]).names(&["kube-scheduler"]),
        rule(READ, &[LEGACY], &["nodes"]),
        rule(&["get", "list", "watch", "delete"], &[LEGACY], &["pods"]),
        rule(&["create"], &[LEGACY], &["pods/binding", "bindings"]),
        rule(&["patch", "update"], &[LEGACY], &["pods/status"]),
        rule(READ, &[LEGACY], &["services", "replicationcontrollers"]),
        rule(READ, &[APPS, EXTENSIONS], &["replicasets"]),
        rule(READ, &[APPS], &["statefulsets"]),
        rule(READ, &[POLICY], &["poddisruptionbudgets"]),
        rule(
            READ,
            &[LEGACY],
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(&["create"], &[AUTHENTICATION], &["tokenreviews"]),
        rule(&["create"], &[AUTHORIZATION], &["subjectaccessreviews"]),
        rule(READ, &[STORAGE], &["csinodes"]),
        rule(READ, &[LEGACY], &["namespaces"]),
        rule(READ, &[STORAGE], &["csidrivers"]),
        rule(READ, &[STORAGE], &["csistoragecapacities"]),
    ]
}

/// k8s: ClusterRoleBindings(), and the controllers' bindings (controller_policy.go).
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    let mut out = vec![
        binding(
            "cluster-admin",
            vec![group(crate::auth::user::SYSTEM_MASTERS)],
        ),
        binding("system:monitoring", vec![group("system:monitoring")]),
        binding(
            "system:discovery",
            vec![group(crate::auth::user::ALL_AUTHENTICATED)],
        ),
        binding(
            "system:basic-user",
            vec![group(crate::auth::user::ALL_AUTHENTICATED)],
        ),
        binding(
            "system:public-info-viewer",
            vec![
                group(crate::auth::user::ALL_AUTHENTICATED),
                group(crate::auth::user::ALL_UNAUTHENTICATED),
            ],
        ),
        binding("system:node-proxier", vec![user("system:kube-proxy")]),
        binding(
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        binding(
            "system:kube-dns",
            vec![Subject::ServiceAccount(
                "kube-system".into(),
                "kube-dns".into(),
            )],
        ),
        binding("system:kube-scheduler", vec![user("system:kube-scheduler")]),
        binding(
            "system:volume-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        // k8s: bound to no one since v1.8: nodes are authorized by the Node authorizer.
        binding("system:node", vec![]),
        binding(
            "system:service-account-issuer-discovery",
            vec![group(crate::auth::user::ALL_SERVICE_ACCOUNTS_GROUP)],
        ),
    ];
    for name in super::controller_policy::controller_names() {
        out.push(ClusterRoleBinding {
            name: format!("system:controller:{name}"),
            role: format!("system:controller:{name}"),
            subjects: vec![Subject::ServiceAccount("kube-system".into(), name.into())],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_names_a_role_of_the_policy_and_names_are_unique() {
        let roles = cluster_roles();
        let mut names = std::collections::BTreeSet::new();
        for r in &roles {
            assert!(names.insert(r.name.clone()), "{} twice", r.name);
            let mut errs = Vec::new();
            super::super::validation::cluster_role(
                &mut errs,
                &serde_json::from_value(r.to_json()).unwrap(),
            );
            assert!(errs.is_empty(), "{}: {errs:?}", r.name);
        }
        for b in cluster_role_bindings() {
            assert!(names.contains(&b.role), "{} binds a missing role", b.name);
        }
        for must in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:discovery",
            "system:basic-user",
            "system:public-info-viewer",
            "system:node",
            "system:node-proxier",
            "system:kube-scheduler",
            "system:volume-scheduler",
            "system:kube-controller-manager",
            "system:auth-delegator",
            "system:service-account-issuer-discovery",
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            "system:controller:replicaset-controller",
            "system:controller:clusterrole-aggregation-controller",
        ] {
            assert!(names.contains(must), "{must}");
        }
    }
}
