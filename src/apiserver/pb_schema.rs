//! The protobuf messages `protobuf.rs` decodes: field numbers, JSON names and types, as in
//! k8s.io/api and k8s.io/apimachinery `generated.proto` (v1.33). Only what kubectl's generator
//! commands send is here; a field that is not is refused by name rather than dropped.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    I32,
    I64,
    Bool,
    Bytes,
    Msg(&'static str),
    /// `map<string, V>`; V is `Str`, `Bytes` or `Quantity`.
    Map(MapValue),
    /// metav1.Time (seconds, nanos).
    Time,
    /// intstr.IntOrString.
    IntOrString,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapValue {
    Str,
    Bytes,
    Quantity,
}

#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub tag: u32,
    pub name: &'static str,
    pub kind: Kind,
    pub repeated: bool,
    /// A pointer (or required) field in Go: its zero value is kept, not omitted.
    pub keep_zero: bool,
}

const fn f(tag: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        tag,
        name,
        kind,
        repeated: false,
        keep_zero: false,
    }
}

const fn rep(tag: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        repeated: true,
        ..f(tag, name, kind)
    }
}

const fn keep(tag: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        keep_zero: true,
        ..f(tag, name, kind)
    }
}

use Kind::{Bool, Bytes, IntOrString, Msg, Str, Time, I32, I64};

const STR_MAP: Kind = Kind::Map(MapValue::Str);
const BYTES_MAP: Kind = Kind::Map(MapValue::Bytes);
const QUANTITY_MAP: Kind = Kind::Map(MapValue::Quantity);

/// The message a top-level apiVersion/kind is encoded as.
pub fn top_level(api_version: &str, kind: &str) -> Option<&'static str> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => "Namespace",
        ("v1", "ConfigMap") => "ConfigMap",
        ("v1", "Secret") => "Secret",
        ("v1", "ServiceAccount") => "ServiceAccount",
        ("v1", "Service") => "Service",
        ("v1", "Pod") => "Pod",
        ("apps/v1", "Deployment") => "Deployment",
        ("apps/v1", "ReplicaSet") => "ReplicaSet",
        ("authentication.k8s.io/v1", "TokenRequest") => "TokenRequest",
        ("rbac.authorization.k8s.io/v1", "Role") => "Role",
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => "ClusterRole",
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => "RoleBinding",
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => "ClusterRoleBinding",
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => "SelfSubjectAccessReview",
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => "SelfSubjectRulesReview",
        _ => return None,
    })
}

pub fn message(name: &str) -> Option<&'static [Field]> {
    Some(match name {
        "ObjectMeta" => OBJECT_META,
        "OwnerReference" => OWNER_REFERENCE,
        "ManagedFieldsEntry" => MANAGED_FIELDS_ENTRY,
        "FieldsV1" => FIELDS_V1,
        "LabelSelector" => LABEL_SELECTOR,
        "LabelSelectorRequirement" => LABEL_SELECTOR_REQUIREMENT,
        "Condition" => CONDITION,
        "Namespace" => NAMESPACE,
        "NamespaceSpec" => NAMESPACE_SPEC,
        "NamespaceStatus" => NAMESPACE_STATUS,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "ObjectReference" => OBJECT_REFERENCE,
        "LocalObjectReference" => LOCAL_OBJECT_REFERENCE,
        "Service" => SERVICE,
        "ServiceSpec" => SERVICE_SPEC,
        "ServicePort" => SERVICE_PORT,
        "ServiceStatus" => SERVICE_STATUS,
        "LoadBalancerStatus" => LOAD_BALANCER_STATUS,
        "SessionAffinityConfig" => SESSION_AFFINITY_CONFIG,
        "ClientIPConfig" => CLIENT_IP_CONFIG,
        "Pod" => POD,
        "PodSpec" => POD_SPEC,
        "PodStatus" => POD_STATUS,
        "PodTemplateSpec" => POD_TEMPLATE_SPEC,
        "Container" => CONTAINER,
        "ContainerPort" => CONTAINER_PORT,
        "EnvVar" => ENV_VAR,
        "ResourceRequirements" => RESOURCE_REQUIREMENTS,
        "VolumeMount" => VOLUME_MOUNT,
        "Toleration" => TOLERATION,
        "Deployment" => DEPLOYMENT,
        "DeploymentSpec" => DEPLOYMENT_SPEC,
        "DeploymentStrategy" => DEPLOYMENT_STRATEGY,
        "RollingUpdateDeployment" => ROLLING_UPDATE_DEPLOYMENT,
        "DeploymentStatus" => DEPLOYMENT_STATUS,
        "ReplicaSet" => REPLICA_SET,
        "ReplicaSetSpec" => REPLICA_SET_SPEC,
        "ReplicaSetStatus" => REPLICA_SET_STATUS,
        "TokenRequest" => TOKEN_REQUEST,
        "TokenRequestSpec" => TOKEN_REQUEST_SPEC,
        "BoundObjectReference" => BOUND_OBJECT_REFERENCE,
        "TokenRequestStatus" => TOKEN_REQUEST_STATUS,
        "Role" => ROLE,
        "ClusterRole" => CLUSTER_ROLE,
        "PolicyRule" => POLICY_RULE,
        "AggregationRule" => AGGREGATION_RULE,
        "RoleBinding" => ROLE_BINDING,
        "ClusterRoleBinding" => ROLE_BINDING,
        "Subject" => SUBJECT,
        "RoleRef" => ROLE_REF,
        "SelfSubjectAccessReview" => SELF_SUBJECT_ACCESS_REVIEW,
        "SelfSubjectAccessReviewSpec" => SELF_SUBJECT_ACCESS_REVIEW_SPEC,
        "ResourceAttributes" => RESOURCE_ATTRIBUTES,
        "NonResourceAttributes" => NON_RESOURCE_ATTRIBUTES,
        "SubjectAccessReviewStatus" => SUBJECT_ACCESS_REVIEW_STATUS,
        "SelfSubjectRulesReview" => SELF_SUBJECT_RULES_REVIEW,
        "SelfSubjectRulesReviewSpec" => SELF_SUBJECT_RULES_REVIEW_SPEC,
        "SubjectRulesReviewStatus" => SUBJECT_RULES_REVIEW_STATUS,
        _ => return None,
    })
}

// --- meta/v1 ---

const OBJECT_META: &[Field] = &[
    f(1, "name", Str),
    f(2, "generateName", Str),
    f(3, "namespace", Str),
    f(4, "selfLink", Str),
    f(5, "uid", Str),
    f(6, "resourceVersion", Str),
    f(7, "generation", I64),
    f(8, "creationTimestamp", Time),
    f(9, "deletionTimestamp", Time),
    keep(10, "deletionGracePeriodSeconds", I64),
    f(11, "labels", STR_MAP),
    f(12, "annotations", STR_MAP),
    rep(13, "ownerReferences", Msg("OwnerReference")),
    rep(14, "finalizers", Str),
    rep(17, "managedFields", Msg("ManagedFieldsEntry")),
];

const OWNER_REFERENCE: &[Field] = &[
    f(1, "kind", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    f(5, "apiVersion", Str),
    keep(6, "controller", Bool),
    keep(7, "blockOwnerDeletion", Bool),
];

const MANAGED_FIELDS_ENTRY: &[Field] = &[
    f(1, "manager", Str),
    f(2, "operation", Str),
    f(3, "apiVersion", Str),
    f(4, "time", Time),
    f(6, "fieldsType", Str),
    f(7, "fieldsV1", Msg("FieldsV1")),
    f(8, "subresource", Str),
];

const FIELDS_V1: &[Field] = &[f(1, "Raw", Bytes)];

const LABEL_SELECTOR: &[Field] = &[
    f(1, "matchLabels", STR_MAP),
    rep(2, "matchExpressions", Msg("LabelSelectorRequirement")),
];

const LABEL_SELECTOR_REQUIREMENT: &[Field] = &[
    f(1, "key", Str),
    f(2, "operator", Str),
    rep(3, "values", Str),
];

const CONDITION: &[Field] = &[
    f(1, "type", Str),
    f(2, "status", Str),
    f(3, "observedGeneration", I64),
    f(4, "lastTransitionTime", Time),
    f(5, "reason", Str),
    f(6, "message", Str),
];

// --- core/v1 ---

const NAMESPACE: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("NamespaceSpec")),
    f(3, "status", Msg("NamespaceStatus")),
];

const NAMESPACE_SPEC: &[Field] = &[rep(1, "finalizers", Str)];

const NAMESPACE_STATUS: &[Field] = &[f(1, "phase", Str)];

const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "data", STR_MAP),
    f(3, "binaryData", BYTES_MAP),
    keep(4, "immutable", Bool),
];

const SECRET: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "data", BYTES_MAP),
    f(3, "type", Str),
    f(4, "stringData", STR_MAP),
    keep(5, "immutable", Bool),
];

const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    rep(2, "secrets", Msg("ObjectReference")),
    rep(3, "imagePullSecrets", Msg("LocalObjectReference")),
    keep(4, "automountServiceAccountToken", Bool),
];

const OBJECT_REFERENCE: &[Field] = &[
    f(1, "kind", Str),
    f(2, "namespace", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    f(5, "apiVersion", Str),
    f(6, "resourceVersion", Str),
    f(7, "fieldPath", Str),
];

const LOCAL_OBJECT_REFERENCE: &[Field] = &[f(1, "name", Str)];

const SERVICE: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("ServiceSpec")),
    f(3, "status", Msg("ServiceStatus")),
];

const SERVICE_SPEC: &[Field] = &[
    rep(1, "ports", Msg("ServicePort")),
    f(2, "selector", STR_MAP),
    f(3, "clusterIP", Str),
    f(4, "type", Str),
    rep(5, "externalIPs", Str),
    f(7, "sessionAffinity", Str),
    f(8, "loadBalancerIP", Str),
    rep(9, "loadBalancerSourceRanges", Str),
    f(10, "externalName", Str),
    f(11, "externalTrafficPolicy", Str),
    f(12, "healthCheckNodePort", I32),
    f(13, "publishNotReadyAddresses", Bool),
    f(14, "sessionAffinityConfig", Msg("SessionAffinityConfig")),
    rep(18, "clusterIPs", Str),
    rep(19, "ipFamilies", Str),
    f(17, "ipFamilyPolicy", Str),
    keep(20, "allocateLoadBalancerNodePorts", Bool),
    f(21, "loadBalancerClass", Str),
    f(22, "internalTrafficPolicy", Str),
    f(23, "trafficDistribution", Str),
];

const SERVICE_PORT: &[Field] = &[
    f(1, "name", Str),
    f(2, "protocol", Str),
    keep(3, "port", I32),
    f(4, "targetPort", IntOrString),
    f(5, "nodePort", I32),
    f(6, "appProtocol", Str),
];

const SERVICE_STATUS: &[Field] = &[
    f(1, "loadBalancer", Msg("LoadBalancerStatus")),
    rep(2, "conditions", Msg("Condition")),
];

const LOAD_BALANCER_STATUS: &[Field] = &[];

const SESSION_AFFINITY_CONFIG: &[Field] = &[f(1, "clientIP", Msg("ClientIPConfig"))];

const CLIENT_IP_CONFIG: &[Field] = &[keep(1, "timeoutSeconds", I32)];

const POD: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("PodSpec")),
    f(3, "status", Msg("PodStatus")),
];

const POD_SPEC: &[Field] = &[
    rep(2, "containers", Msg("Container")),
    f(3, "restartPolicy", Str),
    keep(4, "terminationGracePeriodSeconds", I64),
    keep(5, "activeDeadlineSeconds", I64),
    f(6, "dnsPolicy", Str),
    f(7, "nodeSelector", STR_MAP),
    f(8, "serviceAccountName", Str),
    f(9, "serviceAccount", Str),
    f(10, "nodeName", Str),
    f(11, "hostNetwork", Bool),
    f(12, "hostPID", Bool),
    f(13, "hostIPC", Bool),
    rep(15, "imagePullSecrets", Msg("LocalObjectReference")),
    f(16, "hostname", Str),
    f(17, "subdomain", Str),
    f(19, "schedulerName", Str),
    rep(20, "initContainers", Msg("Container")),
    keep(21, "automountServiceAccountToken", Bool),
    rep(22, "tolerations", Msg("Toleration")),
    f(24, "priorityClassName", Str),
    keep(25, "priority", I32),
    keep(27, "shareProcessNamespace", Bool),
    f(29, "runtimeClassName", Str),
    keep(30, "enableServiceLinks", Bool),
    f(31, "preemptionPolicy", Str),
    f(32, "overhead", QUANTITY_MAP),
];

const POD_STATUS: &[Field] = &[
    f(1, "phase", Str),
    f(3, "message", Str),
    f(4, "reason", Str),
    f(5, "hostIP", Str),
    f(6, "podIP", Str),
    f(7, "startTime", Time),
    f(9, "qosClass", Str),
];

const POD_TEMPLATE_SPEC: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("PodSpec")),
];

const CONTAINER: &[Field] = &[
    keep(1, "name", Str),
    f(2, "image", Str),
    rep(3, "command", Str),
    rep(4, "args", Str),
    f(5, "workingDir", Str),
    rep(6, "ports", Msg("ContainerPort")),
    rep(7, "env", Msg("EnvVar")),
    f(8, "resources", Msg("ResourceRequirements")),
    rep(9, "volumeMounts", Msg("VolumeMount")),
    f(13, "terminationMessagePath", Str),
    f(14, "imagePullPolicy", Str),
    f(16, "stdin", Bool),
    f(17, "stdinOnce", Bool),
    f(18, "tty", Bool),
    f(20, "terminationMessagePolicy", Str),
];

const CONTAINER_PORT: &[Field] = &[
    f(1, "name", Str),
    f(2, "hostPort", I32),
    keep(3, "containerPort", I32),
    f(4, "protocol", Str),
    f(5, "hostIP", Str),
];

const ENV_VAR: &[Field] = &[keep(1, "name", Str), f(2, "value", Str)];

const RESOURCE_REQUIREMENTS: &[Field] =
    &[f(1, "limits", QUANTITY_MAP), f(2, "requests", QUANTITY_MAP)];

const VOLUME_MOUNT: &[Field] = &[
    f(1, "name", Str),
    f(2, "readOnly", Bool),
    f(3, "mountPath", Str),
    f(4, "subPath", Str),
    f(5, "mountPropagation", Str),
    f(6, "subPathExpr", Str),
];

const TOLERATION: &[Field] = &[
    f(1, "key", Str),
    f(2, "operator", Str),
    f(3, "value", Str),
    f(4, "effect", Str),
    keep(5, "tolerationSeconds", I64),
];

// --- apps/v1 ---

const DEPLOYMENT: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("DeploymentSpec")),
    f(3, "status", Msg("DeploymentStatus")),
];

const DEPLOYMENT_SPEC: &[Field] = &[
    keep(1, "replicas", I32),
    f(2, "selector", Msg("LabelSelector")),
    f(3, "template", Msg("PodTemplateSpec")),
    f(4, "strategy", Msg("DeploymentStrategy")),
    f(5, "minReadySeconds", I32),
    keep(6, "revisionHistoryLimit", I32),
    f(7, "paused", Bool),
    keep(9, "progressDeadlineSeconds", I32),
];

const DEPLOYMENT_STRATEGY: &[Field] = &[
    f(1, "type", Str),
    f(2, "rollingUpdate", Msg("RollingUpdateDeployment")),
];

const ROLLING_UPDATE_DEPLOYMENT: &[Field] = &[
    f(1, "maxUnavailable", IntOrString),
    f(2, "maxSurge", IntOrString),
];

const DEPLOYMENT_STATUS: &[Field] = &[
    f(1, "observedGeneration", I64),
    f(2, "replicas", I32),
    f(3, "updatedReplicas", I32),
    f(4, "availableReplicas", I32),
    f(5, "unavailableReplicas", I32),
    f(7, "readyReplicas", I32),
    keep(8, "collisionCount", I32),
];

const REPLICA_SET: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("ReplicaSetSpec")),
    f(3, "status", Msg("ReplicaSetStatus")),
];

const REPLICA_SET_SPEC: &[Field] = &[
    keep(1, "replicas", I32),
    f(2, "selector", Msg("LabelSelector")),
    f(3, "template", Msg("PodTemplateSpec")),
    f(4, "minReadySeconds", I32),
];

const REPLICA_SET_STATUS: &[Field] = &[
    keep(1, "replicas", I32),
    f(2, "fullyLabeledReplicas", I32),
    f(3, "observedGeneration", I64),
    f(4, "readyReplicas", I32),
    f(5, "availableReplicas", I32),
];

// --- authentication/v1 (`kubectl create token`) ---

const TOKEN_REQUEST: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("TokenRequestSpec")),
    f(3, "status", Msg("TokenRequestStatus")),
];

const TOKEN_REQUEST_SPEC: &[Field] = &[
    rep(1, "audiences", Str),
    f(3, "boundObjectRef", Msg("BoundObjectReference")),
    keep(4, "expirationSeconds", I64),
];

const BOUND_OBJECT_REFERENCE: &[Field] = &[
    f(1, "kind", Str),
    f(2, "apiVersion", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
];

const TOKEN_REQUEST_STATUS: &[Field] = &[f(1, "token", Str), f(2, "expirationTimestamp", Time)];
// --- rbac.authorization.k8s.io/v1 ---

const ROLE: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    rep(2, "rules", Msg("PolicyRule")),
];

const CLUSTER_ROLE: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    rep(2, "rules", Msg("PolicyRule")),
    f(3, "aggregationRule", Msg("AggregationRule")),
];

const POLICY_RULE: &[Field] = &[
    rep(1, "verbs", Str),
    rep(2, "apiGroups", Str),
    rep(3, "resources", Str),
    rep(4, "resourceNames", Str),
    rep(5, "nonResourceURLs", Str),
];

const AGGREGATION_RULE: &[Field] = &[rep(1, "clusterRoleSelectors", Msg("LabelSelector"))];

/// RoleBinding and ClusterRoleBinding have the same fields.
const ROLE_BINDING: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    rep(2, "subjects", Msg("Subject")),
    f(3, "roleRef", Msg("RoleRef")),
];

const SUBJECT: &[Field] = &[
    f(1, "kind", Str),
    f(2, "apiGroup", Str),
    f(3, "name", Str),
    f(4, "namespace", Str),
];

const ROLE_REF: &[Field] = &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)];

// --- authorization.k8s.io/v1 (what `kubectl auth can-i` sends) ---

const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("SelfSubjectAccessReviewSpec")),
    f(3, "status", Msg("SubjectAccessReviewStatus")),
];

const SELF_SUBJECT_ACCESS_REVIEW_SPEC: &[Field] = &[
    f(1, "resourceAttributes", Msg("ResourceAttributes")),
    f(2, "nonResourceAttributes", Msg("NonResourceAttributes")),
];

const RESOURCE_ATTRIBUTES: &[Field] = &[
    f(1, "namespace", Str),
    f(2, "verb", Str),
    f(3, "group", Str),
    f(4, "version", Str),
    f(5, "resource", Str),
    f(6, "subresource", Str),
    f(7, "name", Str),
];

const NON_RESOURCE_ATTRIBUTES: &[Field] = &[f(1, "path", Str), f(2, "verb", Str)];

const SUBJECT_ACCESS_REVIEW_STATUS: &[Field] = &[
    f(1, "allowed", Bool),
    f(2, "reason", Str),
    f(3, "evaluationError", Str),
    f(4, "denied", Bool),
];

const SELF_SUBJECT_RULES_REVIEW: &[Field] = &[
    f(1, "metadata", Msg("ObjectMeta")),
    f(2, "spec", Msg("SelfSubjectRulesReviewSpec")),
    f(3, "status", Msg("SubjectRulesReviewStatus")),
];

const SELF_SUBJECT_RULES_REVIEW_SPEC: &[Field] = &[f(1, "namespace", Str)];

const SUBJECT_RULES_REVIEW_STATUS: &[Field] =
    &[f(3, "incomplete", Bool), f(4, "evaluationError", Str)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_named_has_a_table_and_tags_are_unique() {
        let names = [
            "ObjectMeta",
            "OwnerReference",
            "ManagedFieldsEntry",
            "FieldsV1",
            "LabelSelector",
            "LabelSelectorRequirement",
            "Condition",
            "Namespace",
            "NamespaceSpec",
            "NamespaceStatus",
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "ObjectReference",
            "LocalObjectReference",
            "Service",
            "ServiceSpec",
            "ServicePort",
            "ServiceStatus",
            "LoadBalancerStatus",
            "SessionAffinityConfig",
            "ClientIPConfig",
            "Pod",
            "PodSpec",
            "PodStatus",
            "PodTemplateSpec",
            "Container",
            "ContainerPort",
            "EnvVar",
            "ResourceRequirements",
            "VolumeMount",
            "Toleration",
            "Deployment",
            "DeploymentSpec",
            "DeploymentStrategy",
            "RollingUpdateDeployment",
            "DeploymentStatus",
            "ReplicaSet",
            "ReplicaSetSpec",
            "ReplicaSetStatus",
            "TokenRequest",
            "TokenRequestSpec",
            "BoundObjectReference",
            "TokenRequestStatus",
            "Role",
            "ClusterRole",
            "PolicyRule",
            "AggregationRule",
            "RoleBinding",
            "ClusterRoleBinding",
            "Subject",
            "RoleRef",
            "SelfSubjectAccessReview",
            "SelfSubjectAccessReviewSpec",
            "ResourceAttributes",
            "NonResourceAttributes",
            "SubjectAccessReviewStatus",
            "SelfSubjectRulesReview",
            "SelfSubjectRulesReviewSpec",
            "SubjectRulesReviewStatus",
        ];
        for name in names {
            let fields = message(name).unwrap_or_else(|| panic!("{name} has a table"));
            for (i, a) in fields.iter().enumerate() {
                assert!(
                    fields[i + 1..]
                        .iter()
                        .all(|b| b.tag != a.tag && b.name != a.name),
                    "{name}.{}",
                    a.name
                );
                if let Kind::Msg(m) = a.kind {
                    assert!(message(m).is_some(), "{name}.{} refers to {m}", a.name);
                }
            }
        }
    }
}
