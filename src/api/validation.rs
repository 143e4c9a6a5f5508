//! Validation per kind: what makes the apiserver answer 422 Invalid.
//! k8s: pkg/apis/core/validation/validation.go, pkg/apis/apps/validation/validation.go

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PodSpec, PodTemplateSpec, Probe, ReplicationController, Secret, Service,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::names;
use super::status::FieldError;

type Errors = Vec<FieldError>;

fn each(errs: &mut Errors, field: &str, value: &str, found: Vec<String>) {
    for why in found {
        errs.push(FieldError::invalid(field, value, why));
    }
}

pub fn labels(errs: &mut Errors, field: &str, labels: Option<&BTreeMap<String, String>>) {
    for (k, v) in labels.into_iter().flatten() {
        each(errs, field, k, names::qualified_name(k));
        each(errs, &format!("{field}[{k}]"), v, names::label_value(v));
    }
}

/// Labels and annotation keys of any object.
pub fn object_meta(errs: &mut Errors, meta: &ObjectMeta) {
    labels(errs, "metadata.labels", meta.labels.as_ref());
    owner_references(errs, meta);
    for k in meta.annotations.iter().flatten().map(|(k, _)| k) {
        each(errs, "metadata.annotations", k, names::qualified_name(k));
    }
    // k8s: total annotation size limit 256 KiB
    let size: usize = meta
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > 256 * 1024 {
        errs.push(FieldError {
            field: "metadata.annotations".into(),
            kind: "FieldValueTooLong",
            message: format!("Too long: may not be more than 262144 bytes (got {size})"),
        });
    }
}

/// k8s: apimachinery/pkg/api/validation/objectmeta.go ValidateOwnerReferences: apiVersion
/// (with a version), kind, name and uid are required, and one reference at most is the
/// controller.
fn owner_references(errs: &mut Errors, meta: &ObjectMeta) {
    let field = "metadata.ownerReferences";
    let mut controller: Option<String> = None;
    for r in meta.owner_references.iter().flatten() {
        let version = r.api_version.rsplit('/').next().unwrap_or("");
        for (child, value, empty) in [
            ("apiVersion", &r.api_version, version.is_empty()),
            ("kind", &r.kind, r.kind.is_empty()),
            ("name", &r.name, r.name.is_empty()),
            ("uid", &r.uid, r.uid.is_empty()),
        ] {
            if empty {
                let what = if child == "apiVersion" {
                    "version"
                } else {
                    child
                };
                errs.push(FieldError::invalid(
                    format!("{field}.{child}"),
                    value,
                    format!("{what} must not be empty"),
                ));
            }
        }
        if r.controller == Some(true) {
            let this = format!("{}/{}", r.kind, r.name);
            match &controller {
                Some(first) => errs.push(FieldError {
                    field: field.into(),
                    kind: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: \"\": Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                }),
                None => controller = Some(this),
            }
        }
    }
}

fn non_negative(errs: &mut Errors, field: &str, v: Option<i32>) {
    if let Some(v) = v.filter(|v| *v < 0) {
        errs.push(FieldError::invalid(
            field,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

fn probe(errs: &mut Errors, field: &str, p: Option<&Probe>, must_succeed_once: bool) {
    let Some(p) = p else { return };
    for (name, v) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        non_negative(errs, &format!("{field}.{name}"), v);
    }
    // k8s: successThreshold must be 1 for liveness and startup probes
    if must_succeed_once && p.success_threshold.is_some_and(|s| s != 1) {
        errs.push(FieldError::invalid(
            format!("{field}.successThreshold"),
            p.success_threshold.unwrap_or_default(),
            "must be 1",
        ));
    }
    let handlers = [
        p.exec.is_some(),
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.grpc.is_some(),
    ]
    .iter()
    .filter(|h| **h)
    .count();
    if handlers == 0 {
        errs.push(FieldError::required(format!(
            "{field}: must specify a handler type"
        )));
    } else if handlers > 1 {
        errs.push(FieldError::forbidden(
            field,
            "may not specify more than 1 handler type",
        ));
    }
}

fn container(
    errs: &mut Errors,
    field: &str,
    c: &Container,
    seen: &mut BTreeSet<String>,
    init: bool,
) {
    if c.name.is_empty() {
        errs.push(FieldError::required(format!("{field}.name")));
    } else {
        each(
            errs,
            &format!("{field}.name"),
            &c.name,
            names::dns1123_label(&c.name),
        );
        if !seen.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{field}.name"), &c.name));
        }
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        errs.push(FieldError::required(format!("{field}.image")));
    }
    let mut port_names = BTreeSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let pf = format!("{field}.ports[{i}]");
        if !(1..=65535).contains(&p.container_port) {
            errs.push(FieldError::invalid(
                format!("{pf}.containerPort"),
                p.container_port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(proto) = p
            .protocol
            .as_deref()
            .filter(|p| !["TCP", "UDP", "SCTP"].contains(p))
        {
            errs.push(FieldError::not_supported(
                format!("{pf}.protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
        }
        if let Some(name) = &p.name {
            each(errs, &format!("{pf}.name"), name, names::port_name(name));
            if !port_names.insert(name.clone()) {
                errs.push(FieldError::duplicate(format!("{pf}.name"), name));
            }
        }
    }
    if !init {
        probe(
            errs,
            &format!("{field}.livenessProbe"),
            c.liveness_probe.as_ref(),
            true,
        );
        probe(
            errs,
            &format!("{field}.readinessProbe"),
            c.readiness_probe.as_ref(),
            false,
        );
        probe(
            errs,
            &format!("{field}.startupProbe"),
            c.startup_probe.as_ref(),
            true,
        );
    }
    if let Some(res) = &c.resources {
        for (k, q) in res.requests.iter().flatten() {
            if let Some(limit) = res.limits.as_ref().and_then(|l| l.get(k)) {
                if let (Some(r), Some(l)) = (
                    crate::api::quantity::parse(&q.0),
                    crate::api::quantity::parse(&limit.0),
                ) {
                    if r > l {
                        errs.push(FieldError::invalid(
                            format!("{field}.resources.requests"),
                            &q.0,
                            format!("must be less than or equal to {k} limit of {}", limit.0),
                        ));
                    }
                }
            }
        }
        for (k, q) in res
            .requests
            .iter()
            .flatten()
            .chain(res.limits.iter().flatten())
        {
            if crate::api::quantity::parse(&q.0).is_none() {
                errs.push(FieldError::invalid(
                    format!("{field}.resources[{k}]"),
                    &q.0,
                    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                ));
            }
        }
    }
}

pub fn pod_spec(errs: &mut Errors, field: &str, s: &PodSpec) {
    let mut seen = BTreeSet::new();
    if s.containers.is_empty() {
        errs.push(FieldError::required(format!("{field}.containers")));
    }
    for (i, c) in s.init_containers.iter().flatten().enumerate() {
        container(
            errs,
            &format!("{field}.initContainers[{i}]"),
            c,
            &mut seen,
            true,
        );
    }
    for (i, c) in s.containers.iter().enumerate() {
        container(
            errs,
            &format!("{field}.containers[{i}]"),
            c,
            &mut seen,
            false,
        );
    }
    if let Some(p) = s
        .restart_policy
        .as_deref()
        .filter(|p| !["Always", "OnFailure", "Never"].contains(p))
    {
        errs.push(FieldError::not_supported(
            format!("{field}.restartPolicy"),
            p,
            &["Always", "OnFailure", "Never"],
        ));
    }
    let dns = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
    if let Some(p) = s.dns_policy.as_deref().filter(|p| !dns.contains(p)) {
        errs.push(FieldError::not_supported(
            format!("{field}.dnsPolicy"),
            p,
            &dns,
        ));
    }
    if let Some(g) = s.termination_grace_period_seconds.filter(|g| *g < 0) {
        errs.push(FieldError::invalid(
            format!("{field}.terminationGracePeriodSeconds"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(n) = s.node_name.as_deref().filter(|n| !n.is_empty()) {
        each(
            errs,
            &format!("{field}.nodeName"),
            n,
            names::dns1123_subdomain(n),
        );
    }
    labels(
        errs,
        &format!("{field}.nodeSelector"),
        s.node_selector.as_ref(),
    );
    for (i, t) in s.tolerations.iter().flatten().enumerate() {
        let tf = format!("{field}.tolerations[{i}]");
        match t.operator.as_deref() {
            Some("Exists") if t.value.as_deref().is_some_and(|v| !v.is_empty()) => {
                errs.push(FieldError::invalid(
                    format!("{tf}.operator"),
                    "Exists",
                    "value must be empty when `operator` is 'Exists'",
                ))
            }
            None | Some("Equal") | Some("Exists") => {}
            Some(op) => errs.push(FieldError::not_supported(
                format!("{tf}.operator"),
                op,
                &["Equal", "Exists"],
            )),
        }
        if t.key.as_deref().is_none_or(str::is_empty) && t.operator.as_deref() != Some("Exists") {
            errs.push(FieldError::invalid(
                format!("{tf}.operator"),
                t.operator.as_deref().unwrap_or(""),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
            errs.push(FieldError::invalid(
                format!("{tf}.effect"),
                t.effect.as_deref().unwrap_or(""),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
    }
}

/// k8s: pod updates may change only images, activeDeadlineSeconds, tolerations (additions) and
/// terminationGracePeriodSeconds; nodeName only through pods/binding.
pub fn pod_spec_update(errs: &mut Errors, new: &PodSpec, old: &PodSpec) {
    let mut a = new.clone();
    let mut b = old.clone();
    for (x, y) in a.containers.iter_mut().zip(b.containers.iter_mut()) {
        x.image = None;
        y.image = None;
    }
    for (x, y) in a
        .init_containers
        .iter_mut()
        .flatten()
        .zip(b.init_containers.iter_mut().flatten())
    {
        x.image = None;
        y.image = None;
    }
    a.active_deadline_seconds = None;
    b.active_deadline_seconds = None;
    a.termination_grace_period_seconds = None;
    b.termination_grace_period_seconds = None;
    // Tolerations may only be added to.
    let old_tolerations = b.tolerations.take().unwrap_or_default();
    let new_tolerations = a.tolerations.take().unwrap_or_default();
    if !old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
        errs.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    if a != b {
        errs.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    crate::api::selector::matches_label_selector(sel, labels)
}

fn template(
    errs: &mut Errors,
    field: &str,
    t: Option<&PodTemplateSpec>,
) -> BTreeMap<String, String> {
    let Some(t) = t else {
        errs.push(FieldError::required(field));
        return BTreeMap::new();
    };
    let labels = t
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels_check(errs, &format!("{field}.metadata.labels"), &labels);
    match &t.spec {
        Some(spec) => {
            pod_spec(errs, &format!("{field}.spec"), spec);
            // k8s: controllers' pods must restart: restartPolicy Always
            if let Some(p) = spec.restart_policy.as_deref().filter(|p| *p != "Always") {
                errs.push(FieldError::not_supported(
                    format!("{field}.spec.restartPolicy"),
                    p,
                    &["Always"],
                ));
            }
        }
        None => errs.push(FieldError::required(format!("{field}.spec"))),
    }
    labels
}

fn labels_check(errs: &mut Errors, field: &str, l: &BTreeMap<String, String>) {
    labels(errs, field, Some(l));
}

fn workload(
    errs: &mut Errors,
    replicas: Option<i32>,
    selector: Option<&LabelSelector>,
    t: Option<&PodTemplateSpec>,
) {
    non_negative(errs, "spec.replicas", replicas);
    let template_labels = template(errs, "spec.template", t);
    match selector {
        None => errs.push(FieldError::required("spec.selector")),
        Some(sel)
            if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty()) =>
        {
            errs.push(FieldError::invalid(
                "spec.selector",
                "{}",
                "empty selector is invalid for deployment",
            ))
        }
        Some(sel) => {
            labels(errs, "spec.selector.matchLabels", sel.match_labels.as_ref());
            if t.is_some() && !selector_matches(sel, &template_labels) {
                errs.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    format!("{template_labels:?}"),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
}

pub fn replica_set(errs: &mut Errors, rs: &ReplicaSet) {
    match &rs.spec {
        Some(s) => workload(errs, s.replicas, Some(&s.selector), s.template.as_ref()),
        None => errs.push(FieldError::required("spec")),
    }
}

pub fn deployment(errs: &mut Errors, d: &Deployment) {
    let Some(s) = &d.spec else {
        errs.push(FieldError::required("spec"));
        return;
    };
    workload(errs, s.replicas, Some(&s.selector), Some(&s.template));
    non_negative(errs, "spec.revisionHistoryLimit", s.revision_history_limit);
    non_negative(errs, "spec.minReadySeconds", s.min_ready_seconds);
    if let Some(t) = s.strategy.as_ref().and_then(|s| s.type_.as_deref()) {
        if !["RollingUpdate", "Recreate"].contains(&t) {
            errs.push(FieldError::not_supported(
                "spec.strategy.type",
                t,
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
}

pub fn replication_controller(errs: &mut Errors, rc: &ReplicationController) {
    let Some(s) = &rc.spec else {
        errs.push(FieldError::required("spec"));
        return;
    };
    non_negative(errs, "spec.replicas", s.replicas);
    let template_labels = template(errs, "spec.template", s.template.as_ref());
    match &s.selector {
        Some(sel) if !sel.is_empty() => {
            labels(errs, "spec.selector", Some(sel));
            if s.template.is_some() && !sel.iter().all(|(k, v)| template_labels.get(k) == Some(v)) {
                errs.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    format!("{template_labels:?}"),
                    "`selector` does not match template `labels`",
                ));
            }
        }
        _ => errs.push(FieldError::required("spec.selector")),
    }
}

pub fn service(errs: &mut Errors, svc: &Service) {
    let Some(spec) = &svc.spec else {
        errs.push(FieldError::required("spec"));
        return;
    };
    let types = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !types.contains(&type_) {
        errs.push(FieldError::not_supported("spec.type", type_, &types));
    }
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if ports.is_empty() && type_ != "ExternalName" && !headless {
        errs.push(FieldError::required("spec.ports"));
    }
    let mut seen = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        if !(1..=65535).contains(&p.port) {
            errs.push(FieldError::invalid(
                format!("{f}.port"),
                p.port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        match &p.name {
            Some(n) if !n.is_empty() => {
                each(errs, &format!("{f}.name"), n, names::dns1123_label(n));
                if !seen.insert(n.clone()) {
                    errs.push(FieldError::duplicate(format!("{f}.name"), n));
                }
            }
            _ if ports.len() > 1 => errs.push(FieldError::required(format!("{f}.name"))),
            _ => {}
        }
        if let Some(proto) = p
            .protocol
            .as_deref()
            .filter(|p| !["TCP", "UDP", "SCTP"].contains(p))
        {
            errs.push(FieldError::not_supported(
                format!("{f}.protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
        }
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        match &p.target_port {
            Some(IntOrString::Int(t)) if !(1..=65535).contains(t) => {
                errs.push(FieldError::invalid(
                    format!("{f}.targetPort"),
                    t,
                    "must be between 1 and 65535, inclusive",
                ))
            }
            Some(IntOrString::String(s)) => {
                each(errs, &format!("{f}.targetPort"), s, names::port_name(s))
            }
            _ => {}
        }
    }
    // k8s: ValidateService — no two ports with the same port number and protocol, and no two
    // NodePorts with the same number and protocol.
    let mut ports_seen = BTreeSet::new();
    let mut node_ports_seen = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        if !ports_seen.insert((proto, p.port)) {
            errs.push(FieldError::duplicate(
                &f,
                format!(
                    "core.ServicePort{{Name:{:?}, Protocol:{proto:?}, Port:{}}}",
                    p.name.as_deref().unwrap_or(""),
                    p.port
                ),
            ));
        }
        let Some(np) = p.node_port.filter(|n| *n != 0) else {
            continue;
        };
        let np_field = format!("{f}.nodePort");
        if type_ == "ClusterIP" || type_ == "ExternalName" {
            errs.push(FieldError::forbidden(
                &np_field,
                format!("may not be used when `type` is '{type_}'"),
            ));
        } else if !(1..=65535).contains(&np) {
            errs.push(FieldError::invalid(
                &np_field,
                np,
                "must be between 1 and 65535, inclusive",
            ));
        } else if !node_ports_seen.insert((proto, np)) {
            errs.push(FieldError::duplicate(&np_field, format!("{np}")));
        }
    }
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    let cluster_ips = spec.cluster_ips.as_deref().unwrap_or(&[]);
    if type_ == "ExternalName" {
        // k8s: validateServiceExternalName / ValidateService
        if !cluster_ip.is_empty() || !cluster_ips.is_empty() {
            errs.push(FieldError::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
        match spec.external_name.as_deref() {
            None | Some("") => errs.push(FieldError::required("spec.externalName")),
            Some(n) => each(errs, "spec.externalName", n, names::dns1123_subdomain(n)),
        }
    } else {
        // k8s: validateClusterIPFlags / validateServiceClusterIPs
        if cluster_ip.is_empty() && !cluster_ips.is_empty() {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                format!("{cluster_ips:?}"),
                "must be empty when `clusterIP` is empty",
            ));
        } else if cluster_ips.first().is_some_and(|f| f != cluster_ip) {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                format!("{cluster_ips:?}"),
                "element [0] must match `clusterIP`",
            ));
        }
        for (i, ip) in cluster_ips.iter().enumerate() {
            let f = format!("spec.clusterIPs[{i}]");
            if ip == "None" {
                if i > 0 || type_ != "ClusterIP" {
                    errs.push(FieldError::invalid(
                        &f,
                        ip,
                        format!("may not be set to 'None' for {type_} services"),
                    ));
                }
            } else if ip.parse::<std::net::IpAddr>().is_err() {
                errs.push(FieldError::invalid(&f, ip, "must be a valid IP address"));
            }
        }
        if cluster_ips.len() > 1 {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                format!("{cluster_ips:?}"),
                "this cluster is not configured for dual-stack services (only one IPv4 clusterIP is served)",
            ));
        }
        for (i, fam) in spec.ip_families.iter().flatten().enumerate() {
            if fam != "IPv4" {
                errs.push(FieldError::invalid(
                    format!("spec.ipFamilies[{i}]"),
                    fam,
                    "not configured on this cluster",
                ));
            }
        }
        if let Some(policy) = spec.ip_family_policy.as_deref() {
            let headless_no_selector =
                cluster_ip == "None" && spec.selector.as_ref().is_none_or(|s| s.is_empty());
            if !["SingleStack", "PreferDualStack", "RequireDualStack"].contains(&policy) {
                errs.push(FieldError::not_supported(
                    "spec.ipFamilyPolicy",
                    policy,
                    &["PreferDualStack", "RequireDualStack", "SingleStack"],
                ));
            } else if policy == "RequireDualStack" && !headless_no_selector {
                errs.push(FieldError::invalid(
                    "spec.ipFamilyPolicy",
                    policy,
                    "this cluster is not configured for dual-stack services",
                ));
            }
        }
    }
    labels(errs, "spec.selector", spec.selector.as_ref());
}

/// k8s: ValidateServiceUpdate / validateUpgradeDowngradeClusterIPs — a clusterIP, once set,
/// does not change, except when the Service turns into or out of an ExternalName one.
pub fn service_update(errs: &mut Errors, new: &ServiceSpec, old: &ServiceSpec) {
    let external = |s: &ServiceSpec| s.type_.as_deref() == Some("ExternalName");
    if external(new) || external(old) {
        return;
    }
    let new_ips = new.cluster_ips.as_deref().unwrap_or(&[]);
    let old_ips = old.cluster_ips.as_deref().unwrap_or(&[]);
    for (i, (n, o)) in new_ips.iter().zip(old_ips).enumerate() {
        if n != o {
            errs.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                format!("[]string{new_ips:?}"),
                "may not change once set",
            ));
        }
    }
    if new_ips.len() < old_ips.len() && new_ips.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            format!("[]string{new_ips:?}"),
            "may not change once set",
        ));
    }
}

pub fn config_map(errs: &mut Errors, cm: &ConfigMap) {
    let mut size = 0;
    for k in cm.data.iter().flatten().map(|(k, v)| {
        size += k.len() + v.len();
        k
    }) {
        each(errs, "data", k, names::config_key(k));
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        size += k.len() + v.0.len();
        each(errs, "binaryData", k, names::config_key(k));
        if cm.data.as_ref().is_some_and(|d| d.contains_key(k)) {
            errs.push(FieldError::invalid(
                "data",
                k,
                "duplicate of key present in binaryData",
            ));
        }
    }
    // k8s: ConfigMap and Secret data are limited to 1 MiB
    if size > 1024 * 1024 {
        errs.push(FieldError {
            field: String::new(),
            kind: "FieldValueTooLong",
            message: "Too long: may not be more than 1048576 bytes".into(),
        });
    }
}

pub fn secret(errs: &mut Errors, s: &Secret) {
    let mut size = 0;
    for (k, v) in s.data.iter().flatten() {
        size += k.len() + v.0.len();
        each(errs, "data", k, names::config_key(k));
    }
    for (k, v) in s.string_data.iter().flatten() {
        size += k.len() + v.len();
        each(errs, "stringData", k, names::config_key(k));
    }
    if size > 1024 * 1024 {
        errs.push(FieldError {
            field: "data".into(),
            kind: "FieldValueTooLong",
            message: "Too long: may not be more than 1048576 bytes".into(),
        });
    }
}

/// k8s: ValidatePriorityClass / ValidatePriorityClassUpdate (pkg/apis/scheduling/validation).
pub fn priority_class(
    errs: &mut Errors,
    pc: &k8s_openapi::api::scheduling::v1::PriorityClass,
    old: Option<&k8s_openapi::api::scheduling::v1::PriorityClass>,
) {
    use super::admission::{
        HIGHEST_USER_DEFINABLE_PRIORITY, SYSTEM_CLUSTER_CRITICAL, SYSTEM_NODE_CRITICAL,
    };
    let name = pc.metadata.name.as_deref().unwrap_or("");
    if name.starts_with("system-") {
        let known = [SYSTEM_CLUSTER_CRITICAL, SYSTEM_NODE_CRITICAL]
            .iter()
            .any(|(n, v)| *n == name && *v == pc.value && pc.global_default != Some(true));
        if !known {
            errs.push(FieldError::forbidden(
                "metadata.name",
                format!("priority class names with 'system-' prefix are reserved for system use only. error: {name:?} is not a known system priority class or its value or globalDefault do not match"),
            ));
        }
    } else if pc.value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errs.push(FieldError::forbidden(
            "value",
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"),
        ));
    }
    if let Some(p) = pc.preemption_policy.as_deref() {
        if p != "PreemptLowerPriority" && p != "Never" {
            errs.push(FieldError::not_supported(
                "preemptionPolicy",
                p,
                &["Never", "PreemptLowerPriority"],
            ));
        }
    }
    if let Some(old) = old {
        if old.value != pc.value {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if old.preemption_policy != pc.preemption_policy {
            errs.push(FieldError::forbidden(
                "preemptionPolicy",
                "may not be changed in an update.",
            ));
        }
    }
}
