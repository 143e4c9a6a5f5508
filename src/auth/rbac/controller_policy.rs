//! The roles of the controllers gantry runs, each `system:controller:<name>` bound to the
//! ServiceAccount `kube-system/<name>` its controller acts as.
//! k8s: plugin/pkg/auth/authorizer/rbac/bootstrappolicy/controller_policy.go (v1.33)
//!
//! Where a gantry core writes with `update` what upstream's writes with `patch`, the role
//! also has `update` (marked `gantry:`; docs/decisions.md).

use super::policy::{events_rule, rule, ClusterRole};
use super::rule::Rule;

const LEGACY: &str = "";
const APPS: &str = "apps";
const EXTENSIONS: &str = "extensions";
const CERTIFICATES: &str = "certificates.k8s.io";
const DISCOVERY: &str = "discovery.k8s.io";

/// The ServiceAccount names (in kube-system) of the controllers.
pub const CLUSTERROLE_AGGREGATION: &str = "clusterrole-aggregation-controller";
pub const DEPLOYMENT: &str = "deployment-controller";
pub const ENDPOINT: &str = "endpoint-controller";
pub const ENDPOINTSLICE: &str = "endpointslice-controller";
pub const GENERIC_GARBAGE_COLLECTOR: &str = "generic-garbage-collector";
pub const NAMESPACE: &str = "namespace-controller";
pub const NODE: &str = "node-controller";
pub const POD_GARBAGE_COLLECTOR: &str = "pod-garbage-collector";
pub const REPLICASET: &str = "replicaset-controller";
pub const REPLICATION: &str = "replication-controller";
pub const TAINT_EVICTION: &str = "taint-eviction-controller";
pub const SERVICE_ACCOUNT: &str = "service-account-controller";
pub const ROOT_CA_CERT_PUBLISHER: &str = "root-ca-cert-publisher";
pub const CERTIFICATE: &str = "certificate-controller";

fn role(name: &str, rules: Vec<Rule>) -> (&str, Vec<Rule>) {
    (name, rules)
}

fn all() -> Vec<(&'static str, Vec<Rule>)> {
    vec![
        role(
            CLUSTERROLE_AGGREGATION,
            vec![rule(
                &["escalate", "get", "list", "patch", "update", "watch"],
                &["rbac.authorization.k8s.io"],
                &["clusterroles"],
            )],
        ),
        role(
            DEPLOYMENT,
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[APPS, EXTENSIONS],
                    &["deployments"],
                ),
                rule(
                    &["update"],
                    &[APPS, EXTENSIONS],
                    &["deployments/finalizers", "deployments/status"],
                ),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[APPS, EXTENSIONS],
                    &["replicasets"],
                ),
                rule(&["get", "list", "watch", "update"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        role(
            ENDPOINT,
            vec![
                rule(&["get", "list", "watch"], &[LEGACY], &["services", "pods"]),
                rule(
                    &["get", "list", "create", "update", "delete"],
                    &[LEGACY],
                    &["endpoints"],
                ),
                rule(&["create"], &[LEGACY], &["endpoints/restricted"]),
                events_rule(),
            ],
        ),
        role(
            ENDPOINTSLICE,
            vec![
                rule(
                    &["get", "list", "watch"],
                    &[LEGACY],
                    &["services", "pods", "nodes"],
                ),
                rule(&["update"], &[LEGACY], &["services/finalizers"]),
                rule(
                    &["get", "list", "create", "update", "delete"],
                    &[DISCOVERY],
                    &["endpointslices"],
                ),
                events_rule(),
            ],
        ),
        role(
            GENERIC_GARBAGE_COLLECTOR,
            vec![
                rule(
                    &["get", "list", "watch", "patch", "update", "delete"],
                    &["*"],
                    &["*"],
                ),
                events_rule(),
            ],
        ),
        role(
            NAMESPACE,
            vec![
                rule(&["get", "list", "watch", "delete"], &["*"], &["*"]),
                rule(
                    &["update"],
                    &[LEGACY],
                    &["namespaces/finalize", "namespaces/status"],
                ),
                rule(&["deletecollection"], &["*"], &["*"]),
            ],
        ),
        role(
            NODE,
            vec![
                rule(
                    &["get", "list", "update", "delete", "patch"],
                    &[LEGACY],
                    &["nodes"],
                ),
                rule(&["patch", "update"], &[LEGACY], &["nodes/status"]),
                rule(&["patch", "update"], &[LEGACY], &["pods/status"]),
                rule(&["list", "delete"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        role(
            POD_GARBAGE_COLLECTOR,
            vec![
                rule(&["list", "watch", "delete"], &[LEGACY], &["pods"]),
                rule(&["get", "list"], &[LEGACY], &["nodes"]),
                // gantry: + update (its core writes the status with an update).
                rule(&["patch", "update"], &[LEGACY], &["pods/status"]),
            ],
        ),
        role(
            REPLICASET,
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[APPS, EXTENSIONS],
                    &["replicasets"],
                ),
                rule(&["update"], &[APPS, EXTENSIONS], &["replicasets/status"]),
                rule(
                    &["update"],
                    &[APPS, EXTENSIONS],
                    &["replicasets/finalizers"],
                ),
                // gantry: + update (adoption and release are updates of the pod).
                rule(
                    &["list", "watch", "patch", "create", "delete", "update"],
                    &[LEGACY],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        role(
            REPLICATION,
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[LEGACY],
                    &["replicationcontrollers"],
                ),
                rule(&["update"], &[LEGACY], &["replicationcontrollers/status"]),
                rule(
                    &["update"],
                    &[LEGACY],
                    &["replicationcontrollers/finalizers"],
                ),
                // gantry: + update, as the ReplicaSet controller's.
                rule(
                    &["list", "watch", "patch", "create", "delete", "update"],
                    &[LEGACY],
                    &["pods"],
                ),
                events_rule(),
            ],
        ),
        role(
            TAINT_EVICTION,
            vec![
                rule(&["patch", "update"], &[LEGACY], &["pods/status"]),
                rule(&["list", "get", "delete"], &[LEGACY], &["pods"]),
                events_rule(),
            ],
        ),
        role(
            SERVICE_ACCOUNT,
            vec![
                rule(&["create"], &[LEGACY], &["serviceaccounts"]),
                events_rule(),
            ],
        ),
        role(
            ROOT_CA_CERT_PUBLISHER,
            vec![
                rule(&["create", "update"], &[LEGACY], &["configmaps"]),
                events_rule(),
            ],
        ),
        role(
            CERTIFICATE,
            vec![
                rule(
                    &["get", "list", "watch", "delete"],
                    &[CERTIFICATES],
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["update"],
                    &[CERTIFICATES],
                    &[
                        "certificatesigningrequests/status",
                        "certificatesigningrequests/approval",
                    ],
                ),
                rule(&["approve"], &[CERTIFICATES], &["signers"])
                    .names(&["kubernetes.io/kube-apiserver-client-kubelet"]),
                rule(&["sign"], &[CERTIFICATES], &["signers"]).names(&[
                    "kubernetes.io/legacy-unknown",
                    "kubernetes.io/kube-apiserver-client",
                    "kubernetes.io/kube-apiserver-client-kubelet",
                    "kubernetes.io/kubelet-serving",
                ]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                events_rule(),
            ],
        ),
    ]
}

/// Every controller's ServiceAccount name.
pub fn controller_names() -> Vec<&'static str> {
    all().into_iter().map(|(n, _)| n).collect()
}

/// k8s: ControllerRoles()
pub fn controller_roles() -> Vec<ClusterRole> {
    all()
        .into_iter()
        .map(|(name, rules)| ClusterRole {
            name: format!("system:controller:{name}"),
            labels: Default::default(),
            rules,
            aggregate_from: Vec::new(),
        })
        .collect()
}
