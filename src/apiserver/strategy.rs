//! Per-kind rules the generic apiserver applies: status reset on create, defaulting,
//! validation, and whether `metadata.generation` tracks spec changes.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::api::registry::ResourceInfo;
use crate::api::status::{ApiError, FieldError};
use crate::api::{admission, defaults, validation};

/// k8s: generation is maintained for workloads (their controllers report observedGeneration).
pub(crate) fn tracks_generation(res: &ResourceInfo) -> bool {
    matches!(
        (res.group, res.plural),
        ("apps", "deployments") | ("apps", "replicasets") | ("", "replicationcontrollers")
    )
}

/// Resources whose status is written only through `/status`.
pub(crate) fn has_status(res: &ResourceInfo) -> bool {
    res.has_subresource("status")
}

/// k8s: PrepareForCreate — a new object's status is the server's to set.
pub(crate) fn prepare_for_create(res: &ResourceInfo, obj: &mut Value) {
    if !has_status(res) {
        return;
    }
    let status = match (res.group, res.plural) {
        ("", "pods") => serde_json::json!({"phase": "Pending"}),
        ("", "namespaces") => serde_json::json!({"phase": "Active"}),
        // Nodes register with their status (the kubelet creates them so).
        ("", "nodes") => return,
        _ => serde_json::json!({}),
    };
    obj["status"] = status;
}

/// `v` (the object or a part of it) as `res`'s type `T`, or the 400 upstream answers.
/// Deserializing from a borrowed Value copies only what T keeps.
fn decode_as<T: DeserializeOwned>(res: &ResourceInfo, v: &Value) -> Result<T, ApiError> {
    T::deserialize(v).map_err(|e| undecodable(res, e))
}

/// The same for a value that is replaced by its typed form anyway: it is moved into the typed
/// object (its strings are not copied). On an error the value is gone, as is the request.
fn decode_taken<T: DeserializeOwned>(res: &ResourceInfo, v: &mut Value) -> Result<T, ApiError> {
    T::deserialize(std::mem::take(v)).map_err(|e| undecodable(res, e))
}

fn undecodable(res: &ResourceInfo, e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
        kind = res.kind,
        version = res.version
    ))
}

fn to_stored<T: Serialize>(typed: &T) -> Result<Value, ApiError> {
    serde_json::to_value(typed).map_err(|e| ApiError::internal(e.to_string()))
}

fn typed<T: DeserializeOwned + Serialize>(
    res: &ResourceInfo,
    obj: &mut Value,
    old: Option<&Value>,
    run: impl FnOnce(&mut T, Option<T>, &mut Vec<FieldError>),
) -> Result<Vec<FieldError>, ApiError> {
    let mut typed: T = decode_taken(res, obj)?;
    let old = old.map(|o| decode_as(res, o)).transpose()?;
    let mut errs = Vec::new();
    run(&mut typed, old, &mut errs);
    *obj = to_stored(&typed)?;
    Ok(errs)
}

/// k8s: the status strategies' PrepareForUpdate keep the stored spec and metadata, so a status
/// update changes only `status`; the rest was defaulted and validated when it was stored.
/// Decoding just the status keeps the typed check (a status of the wrong shape is refused)
/// without a round trip of the whole object. `None`: the kind has no such shortcut (a
/// namespace's status has a default) and takes `default_and_validate`.
pub(crate) fn status_update(
    res: &ResourceInfo,
    obj: &mut Value,
) -> Option<Result<Vec<FieldError>, ApiError>> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core};
    fn status<T: DeserializeOwned + Serialize>(
        res: &ResourceInfo,
        obj: &mut Value,
    ) -> Result<Vec<FieldError>, ApiError> {
        let Some(value) = obj.get_mut("status") else {
            return Ok(Vec::new());
        };
        *value = to_stored(&decode_taken::<T>(res, value)?)?;
        Ok(Vec::new())
    }
    Some(match (res.group, res.plural) {
        ("", "pods") => status::<core::PodStatus>(res, obj),
        ("apps", "replicasets") => status::<apps::ReplicaSetStatus>(res, obj),
        ("apps", "deployments") => status::<apps::DeploymentStatus>(res, obj),
        ("", "replicationcontrollers") => status::<core::ReplicationControllerStatus>(res, obj),
        ("", "services") => status::<core::ServiceStatus>(res, obj),
        ("", "namespaces") => return None,
        _ => Ok(Vec::new()),
    })
}

/// Applies the kind's defaults and returns its validation errors (`old` on update).
pub(crate) fn default_and_validate(
    res: &ResourceInfo,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<FieldError>, ApiError> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core};
    match (res.group, res.plural) {
        ("", "pods") => typed(res, obj, old, |p: &mut core::Pod, old, errs| {
            let spec = p.spec.get_or_insert_with(Default::default);
            defaults::pod_spec(spec);
            let old_spec = old.and_then(|o| o.spec);
            if old_spec.is_none() {
                admission::default_toleration_seconds(spec);
            }
            validation::pod_spec(errs, "spec", spec);
            match old_spec {
                Some(old_spec) => validation::pod_spec_update(errs, spec, &old_spec),
                None => {
                    let qos = defaults::qos_class(spec);
                    p.status.get_or_insert_with(Default::default).qos_class = Some(qos.into());
                }
            }
        }),
        ("apps", "replicasets") => typed(res, obj, old, |rs: &mut apps::ReplicaSet, old, errs| {
            defaults::replica_set(rs);
            validation::replica_set(errs, rs);
            selector_immutable(
                errs,
                rs.spec.as_ref().map(|s| &s.selector),
                old.as_ref()
                    .and_then(|o| o.spec.as_ref())
                    .map(|s| &s.selector),
            );
        }),
        ("apps", "deployments") => typed(res, obj, old, |d: &mut apps::Deployment, old, errs| {
            defaults::deployment(d);
            validation::deployment(errs, d);
            selector_immutable(
                errs,
                d.spec.as_ref().map(|s| &s.selector),
                old.as_ref()
                    .and_then(|o| o.spec.as_ref())
                    .map(|s| &s.selector),
            );
        }),
        ("", "replicationcontrollers") => typed(
            res,
            obj,
            old,
            |rc: &mut core::ReplicationController, _, errs| {
                defaults::replication_controller(rc);
                validation::replication_controller(errs, rc);
            },
        ),
        ("", "services") => typed(res, obj, old, |s: &mut core::Service, old, errs| {
            defaults::service(s);
            let spec = s.spec.get_or_insert_with(Default::default);
            let old_spec = old.as_ref().and_then(|o| o.spec.as_ref());
            prepare_service(spec, old_spec);
            validation::service(errs, s);
            if let (Some(new), Some(old)) = (s.spec.as_ref(), old_spec) {
                validation::service_update(errs, new, old);
            }
        }),
        ("", "namespaces") => typed(res, obj, old, |ns: &mut core::Namespace, _, _| {
            defaults::namespace(ns)
        }),
        ("", "configmaps") => typed(res, obj, old, |cm: &mut core::ConfigMap, _, errs| {
            validation::config_map(errs, cm)
        }),
        ("", "secrets") => typed(res, obj, old, |s: &mut core::Secret, _, errs| {
            defaults::secret(s);
            validation::secret(errs, s);
        }),
        ("scheduling.k8s.io", "priorityclasses") => typed(
            res,
            obj,
            old,
            |pc: &mut k8s_openapi::api::scheduling::v1::PriorityClass, old, errs| {
                // k8s: SetDefaults_PriorityClass
                if pc.preemption_policy.is_none() {
                    pc.preemption_policy = Some("PreemptLowerPriority".into());
                }
                validation::priority_class(errs, pc, old.as_ref());
            },
        ),
        (crate::api::registry::RBAC_GROUP, plural) => rbac(res, plural, obj, old),
        _ => Ok(Vec::new()),
    }
}

/// The four RBAC kinds (k8s: pkg/registry/rbac/*/strategy.go).
fn rbac(
    res: &ResourceInfo,
    plural: &str,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<FieldError>, ApiError> {
    use crate::auth::rbac::validation as v;
    use k8s_openapi::api::rbac::v1 as rbac;
    v::fill_required(plural, obj);
    match plural {
        "roles" => typed(res, obj, old, |r: &mut rbac::Role, _, errs| {
            v::role(errs, r)
        }),
        "clusterroles" => typed(res, obj, old, |r: &mut rbac::ClusterRole, _, errs| {
            v::cluster_role(errs, r)
        }),
        "rolebindings" => typed(res, obj, old, |b: &mut rbac::RoleBinding, old, errs| {
            v::default_role_binding(b);
            v::role_binding(errs, b, old.as_ref());
        }),
        "clusterrolebindings" => typed(
            res,
            obj,
            old,
            |b: &mut rbac::ClusterRoleBinding, old, errs| {
                v::default_cluster_role_binding(b);
                v::cluster_role_binding(errs, b, old.as_ref());
            },
        ),
        _ => Ok(Vec::new()),
    }
}

fn selector_immutable<T: PartialEq>(errs: &mut Vec<FieldError>, new: Option<&T>, old: Option<&T>) {
    // k8s: apps/v1 selectors are immutable
    if let (Some(n), Some(o)) = (new, old) {
        if n != o {
            errs.push(FieldError {
                field: "spec.selector".into(),
                kind: "FieldValueInvalid",
                message: "Invalid value: field is immutable".into(),
            });
        }
    }
}

/// The fields of `obj` its kind does not have (`spec.foo`, `spec.containers[0].imagePull`):
/// what `fieldValidation=Strict` refuses and `Warn` reports. Found by a round trip through the
/// typed object, which keeps every field it knows; null values count as absent. (Used by the
/// HTTP layer only.)
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) fn unknown_fields(res: &ResourceInfo, obj: &Value) -> Result<Vec<String>, ApiError> {
    use k8s_openapi::api::discovery::v1 as discovery;
    use k8s_openapi::api::rbac::v1 as rbac;
    use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coordination, core::v1 as core};
    fn check<T: DeserializeOwned + Serialize>(
        res: &ResourceInfo,
        obj: &Value,
    ) -> Result<Vec<String>, ApiError> {
        let back = to_stored(&decode_as::<T>(res, obj)?)?;
        let mut unknown = Vec::new();
        missing_from("", obj, &back, &mut unknown);
        Ok(unknown)
    }
    match (res.group, res.plural) {
        ("", "namespaces") => check::<core::Namespace>(res, obj),
        ("", "pods") => check::<core::Pod>(res, obj),
        ("", "nodes") => check::<core::Node>(res, obj),
        ("", "services") => check::<core::Service>(res, obj),
        ("", "endpoints") => check::<core::Endpoints>(res, obj),
        ("", "events") => check::<core::Event>(res, obj),
        ("", "configmaps") => check::<core::ConfigMap>(res, obj),
        ("", "secrets") => check::<core::Secret>(res, obj),
        ("", "serviceaccounts") => check::<core::ServiceAccount>(res, obj),
        ("", "replicationcontrollers") => check::<core::ReplicationController>(res, obj),
        ("apps", "replicasets") => check::<apps::ReplicaSet>(res, obj),
        ("apps", "deployments") => check::<apps::Deployment>(res, obj),
        ("discovery.k8s.io", "endpointslices") => check::<discovery::EndpointSlice>(res, obj),
        ("coordination.k8s.io", "leases") => check::<coordination::Lease>(res, obj),
        ("scheduling.k8s.io", "priorityclasses") => {
            check::<k8s_openapi::api::scheduling::v1::PriorityClass>(res, obj)
        }
        (crate::api::registry::RBAC_GROUP, "roles") => check::<rbac::Role>(res, obj),
        (crate::api::registry::RBAC_GROUP, "clusterroles") => check::<rbac::ClusterRole>(res, obj),
        (crate::api::registry::RBAC_GROUP, "rolebindings") => check::<rbac::RoleBinding>(res, obj),
        (crate::api::registry::RBAC_GROUP, "clusterrolebindings") => {
            check::<rbac::ClusterRoleBinding>(res, obj)
        }
        _ => Ok(Vec::new()),
    }
}

#[cfg_attr(not(feature = "server"), allow(dead_code))]
fn missing_from(path: &str, input: &Value, typed: &Value, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a.iter().filter(|(_, v)| !v.is_null()) {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(t) => missing_from(&p, v, t, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                missing_from(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ => {}
    }
}

/// Whether a status update also writes the object's annotations. k8s: the Deployment's status
/// strategy resets only spec and labels, so the controller records the revision annotation
/// with its status (deploymentStatusStrategy.PrepareForUpdate).
pub fn status_keeps_annotations(res: &ResourceInfo) -> bool {
    (res.group, res.plural) == ("apps", "deployments")
}

/// k8s: needsClusterIP (pkg/registry/core/service/strategy.go) — every type but ExternalName.
fn needs_cluster_ip(s: &k8s_openapi::api::core::v1::ServiceSpec) -> bool {
    s.type_.as_deref() != Some("ExternalName")
}

/// k8s: needsNodePort — NodePort and LoadBalancer.
fn needs_node_port(s: &k8s_openapi::api::core::v1::ServiceSpec) -> bool {
    matches!(s.type_.as_deref(), Some("NodePort" | "LoadBalancer"))
}

fn node_ports_of(s: &k8s_openapi::api::core::v1::ServiceSpec) -> BTreeSet<i32> {
    s.ports
        .iter()
        .flatten()
        .filter_map(|p| p.node_port.filter(|n| *n != 0))
        .collect()
}

/// What the Service strategy does before validation (k8s: svcStrategy.PrepareForCreate /
/// PrepareForUpdate): on create, `clusterIP` alone fills `clusterIPs`; on update, values the
/// client left out are carried over from the stored Service (patchAllocatedValues), the
/// singular and plural clusterIP fields are reconciled (NormalizeClusterIPs), and fields the
/// new type does not use are dropped if the client did not change them
/// (dropTypeDependentFields).
pub(crate) fn prepare_service(
    new: &mut k8s_openapi::api::core::v1::ServiceSpec,
    old: Option<&k8s_openapi::api::core::v1::ServiceSpec>,
) {
    let ip = |s: &k8s_openapi::api::core::v1::ServiceSpec| s.cluster_ip.clone().unwrap_or_default();
    let ips =
        |s: &k8s_openapi::api::core::v1::ServiceSpec| s.cluster_ips.clone().unwrap_or_default();
    let Some(old) = old else {
        if !ip(new).is_empty() && ips(new).is_empty() {
            new.cluster_ips = Some(vec![ip(new)]);
        }
        return;
    };
    // patchAllocatedValues
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        if ip(new).is_empty() {
            new.cluster_ip = old.cluster_ip.clone();
        }
        if ips(new).is_empty() && !ips(old).is_empty() {
            new.cluster_ips = old.cluster_ips.clone();
        }
    }
    if needs_node_port(old) && needs_node_port(new) {
        let used: BTreeSet<i32> = node_ports_of(old)
            .intersection(&node_ports_of(new))
            .copied()
            .collect();
        let by_name: BTreeMap<String, i32> = old
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap_or_default(), p.node_port.unwrap_or(0)))
            .collect();
        for p in new.ports.iter_mut().flatten() {
            if p.node_port.unwrap_or(0) == 0 {
                let was = by_name
                    .get(p.name.as_deref().unwrap_or(""))
                    .copied()
                    .unwrap_or(0);
                if was != 0 && !used.contains(&was) {
                    p.node_port = Some(was);
                }
            }
        }
    }
    // NormalizeClusterIPs
    if !ips(old).is_empty() && ips(new).is_empty() && ip(old) == ip(new) {
        new.cluster_ips = old.cluster_ips.clone();
    }
    if ip(old) != ip(new) && ips(old) == ips(new) {
        new.cluster_ips = if !ip(old).is_empty() && ip(new).is_empty() {
            None
        } else {
            Some(vec![ip(new)])
        };
    }
    // dropTypeDependentFields
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        if ip(old) == ip(new) && ips(old) == ips(new) {
            new.cluster_ip = None;
            new.cluster_ips = None;
        }
        if old.ip_families == new.ip_families {
            new.ip_families = None;
        }
        if old.ip_family_policy == new.ip_family_policy {
            new.ip_family_policy = None;
        }
    }
    if needs_node_port(old) && !needs_node_port(new) && node_ports_of(old) == node_ports_of(new) {
        for p in new.ports.iter_mut().flatten() {
            p.node_port = None;
        }
    }
}

#[cfg(test)]
mod unknown_field_tests {
    use super::*;
    use crate::api::registry::by_plural;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named_by_path() {
        let deploys = by_plural("apps", "deployments").unwrap();
        let cases = [
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "creationTimestamp": null},
                    "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "c", "image": "i", "resources": {}}]}}}}),
                Vec::<&str>::new(),
            ),
            (
                json!({"metadata": {"name": "d", "nmae": "x"}, "spec": {"replicas": 1, "replica": 2,
                    "template": {"spec": {"containers": [{"name": "c", "imagePull": "Always"}]}}}}),
                vec![
                    "metadata.nmae",
                    "spec.replica",
                    "spec.template.spec.containers[0].imagePull",
                ],
            ),
        ];
        for (obj, want) in cases {
            let mut got = unknown_fields(deploys, &obj).unwrap();
            got.sort();
            assert_eq!(got, want);
        }
        let cms = by_plural("", "configmaps").unwrap();
        assert_eq!(
            unknown_fields(
                cms,
                &json!({"metadata": {"name": "c"}, "data": {"k": "v"}, "date": {}})
            )
            .unwrap(),
            ["date"]
        );
        // A wrong type is not an unknown field but a decoding error.
        assert_eq!(
            unknown_fields(cms, &json!({"data": 5})).unwrap_err().code,
            400
        );
    }
}
