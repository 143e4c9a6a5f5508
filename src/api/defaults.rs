//! Defaulting: the values the apiserver fills in, per kind.
//! k8s: pkg/apis/core/v1/defaults.go, pkg/apis/apps/v1/defaults.go (v1.33).

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, Namespace, NamespaceSpec, NamespaceStatus, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ReplicationController, Secret, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn set<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

pub fn probe(p: &mut Probe) {
    // k8s: probe defaults timeoutSeconds 1, periodSeconds 10, successThreshold 1, failureThreshold 3
    set(&mut p.timeout_seconds, 1);
    set(&mut p.period_seconds, 10);
    set(&mut p.success_threshold, 1);
    set(&mut p.failure_threshold, 3);
    if let Some(h) = &mut p.http_get {
        set(&mut h.scheme, "HTTP".into());
        set(&mut h.path, "/".into());
    }
}

pub fn container(c: &mut Container) {
    set(
        &mut c.termination_message_path,
        "/dev/termination-log".into(),
    );
    set(&mut c.termination_message_policy, "File".into());
    if c.image_pull_policy.is_none() {
        // k8s: Always for the `latest` tag or no tag, else IfNotPresent (digests count as tags).
        let image = c.image.as_deref().unwrap_or("");
        let last = image.rsplit('/').next().unwrap_or("");
        let latest =
            !image.contains('@') && last.split_once(':').is_none_or(|(_, tag)| tag == "latest");
        c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.into());
    }
    for p in c.ports.iter_mut().flatten() {
        set(&mut p.protocol, "TCP".into());
    }
    // k8s: resources is a struct, not a pointer, in the Go types: it is always there (`{}`),
    // so a template sent with and without it is the same template.
    let res = c.resources.get_or_insert_with(Default::default);
    // k8s: requests default to limits where only limits are given.
    if let Some(limits) = res.limits.clone() {
        let requests = res.requests.get_or_insert_with(Default::default);
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        probe(p);
    }
}

pub fn pod_spec(s: &mut PodSpec) {
    // k8s: restartPolicy Always, terminationGracePeriodSeconds 30, dnsPolicy ClusterFirst,
    // schedulerName default-scheduler
    set(&mut s.restart_policy, "Always".into());
    set(&mut s.termination_grace_period_seconds, 30);
    set(&mut s.dns_policy, "ClusterFirst".into());
    set(&mut s.scheduler_name, "default-scheduler".into());
    set(&mut s.security_context, PodSecurityContext::default());
    set(&mut s.enable_service_links, true);
    // k8s: ServiceAccount admission; the deprecated field mirrors it.
    set(&mut s.service_account_name, "default".into());
    set(
        &mut s.service_account,
        s.service_account_name.clone().unwrap_or_default(),
    );
    // spec.priority is not defaulted: the Priority admission plugin sets it on create.
    for c in s
        .containers
        .iter_mut()
        .chain(s.init_containers.iter_mut().flatten())
    {
        container(c);
    }
}

pub fn pod_template(t: &mut Option<PodTemplateSpec>) {
    if let Some(spec) = t.as_mut().and_then(|t| t.spec.as_mut()) {
        pod_spec(spec);
    }
}

/// The pod's QoS class from its containers' requests and limits.
/// k8s: pkg/apis/core/v1/helper/qos/qos.go
pub fn qos_class(s: &PodSpec) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in s
        .containers
        .iter()
        .chain(s.init_containers.iter().flatten())
    {
        let res = c.resources.clone().unwrap_or_default();
        let requests = res.requests.unwrap_or_default();
        let limits = res.limits.unwrap_or_default();
        let zero = |q: &Quantity| q.0.trim_start_matches('0').is_empty();
        for key in ["cpu", "memory"] {
            let r = requests.get(key).filter(|q| !zero(q));
            let l = limits.get(key).filter(|q| !zero(q));
            any |= r.is_some() || l.is_some();
            if l.is_none() || r.is_some_and(|r| Some(r) != l) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

pub fn replica_set(rs: &mut ReplicaSet) {
    if let Some(spec) = &mut rs.spec {
        // k8s: spec.replicas 1
        set(&mut spec.replicas, 1);
        pod_template(&mut spec.template);
    }
}

pub fn deployment(d: &mut Deployment) {
    if let Some(spec) = &mut d.spec {
        // k8s: replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds 600
        set(&mut spec.replicas, 1);
        set(&mut spec.revision_history_limit, 10);
        set(&mut spec.progress_deadline_seconds, 600);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        set(&mut strategy.type_, "RollingUpdate".into());
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            set(&mut ru.max_unavailable, IntOrString::String("25%".into()));
            set(&mut ru.max_surge, IntOrString::String("25%".into()));
        }
        if let Some(ts) = spec.template.spec.as_mut() {
            pod_spec(ts);
        }
    }
}

pub fn replication_controller(rc: &mut ReplicationController) {
    if let Some(spec) = &mut rc.spec {
        set(&mut spec.replicas, 1);
        // k8s: an empty selector defaults to the template's labels.
        if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
            if let Some(labels) = spec
                .template
                .as_ref()
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
            {
                spec.selector = Some(labels);
            }
        }
        pod_template(&mut spec.template);
    }
}

/// k8s: SetDefaults_Service.
pub fn service(s: &mut Service) {
    let spec = s.spec.get_or_insert_with(Default::default);
    set(&mut spec.type_, "ClusterIP".into());
    set(&mut spec.session_affinity, "None".into());
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            // k8s: DefaultClientIPServiceAffinitySeconds, 3 hours.
            let config = spec
                .session_affinity_config
                .get_or_insert_with(Default::default);
            let client_ip = config.client_ip.get_or_insert_with(Default::default);
            set(&mut client_ip.timeout_seconds, 10800);
        }
        _ => {}
    }
    let type_ = spec.type_.clone().unwrap_or_default();
    let external = type_ == "NodePort"
        || type_ == "LoadBalancer"
        || spec
            .external_ips
            .as_ref()
            .is_some_and(|ips| !ips.is_empty());
    if external {
        set(&mut spec.external_traffic_policy, "Cluster".into());
    }
    if ["ClusterIP", "NodePort", "LoadBalancer"].contains(&type_.as_str()) {
        set(&mut spec.internal_traffic_policy, "Cluster".into());
    }
    if type_ == "LoadBalancer" {
        set(&mut spec.allocate_load_balancer_node_ports, true);
    }
    for p in spec.ports.iter_mut().flatten() {
        service_port(p);
    }
}

fn service_port(p: &mut ServicePort) {
    set(&mut p.protocol, "TCP".into());
    // k8s: targetPort defaults to port.
    set(&mut p.target_port, IntOrString::Int(p.port));
}

pub fn namespace(ns: &mut Namespace) {
    // k8s: the `kubernetes` finalizer lets the namespace controller empty it before it goes.
    let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
    set(&mut spec.finalizers, vec!["kubernetes".into()]);
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    set(&mut status.phase, "Active".into());
}

pub fn secret(s: &mut Secret) {
    set(&mut s.type_, "Opaque".into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_defaults_follow_upstream() {
        // k8s: SetDefaults_Service — (spec in, fields out)
        let cases = [
            (
                serde_json::json!({"ports": [{"port": 80}]}),
                serde_json::json!({"type": "ClusterIP", "sessionAffinity": "None",
                                   "internalTrafficPolicy": "Cluster",
                                   "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}),
            ),
            (
                serde_json::json!({"type": "NodePort", "sessionAffinity": "ClientIP"}),
                serde_json::json!({"type": "NodePort", "sessionAffinity": "ClientIP",
                                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                                   "externalTrafficPolicy": "Cluster",
                                   "internalTrafficPolicy": "Cluster"}),
            ),
            (
                serde_json::json!({"type": "LoadBalancer"}),
                serde_json::json!({"type": "LoadBalancer", "sessionAffinity": "None",
                                   "allocateLoadBalancerNodePorts": true,
                                   "externalTrafficPolicy": "Cluster",
                                   "internalTrafficPolicy": "Cluster"}),
            ),
            (
                serde_json::json!({"type": "ExternalName", "externalName": "a.example",
                                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}),
                serde_json::json!({"type": "ExternalName", "externalName": "a.example",
                                   "sessionAffinity": "None"}),
            ),
        ];
        for (spec, want) in cases {
            let mut s: Service = serde_json::from_value(serde_json::json!({"spec": spec})).unwrap();
            service(&mut s);
            assert_eq!(serde_json::to_value(&s.spec).unwrap(), want, "{spec}");
        }
    }

    #[test]
    fn image_pull_policy() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("registry:5000/nginx", "Always"),
            ("registry:5000/nginx:1.2", "IfNotPresent"),
            ("nginx@sha256:abcd", "IfNotPresent"),
        ] {
            let mut c = Container {
                image: Some(image.into()),
                ..Default::default()
            };
            container(&mut c);
            assert_eq!(c.image_pull_policy.as_deref(), Some(policy), "{image}");
        }
    }

    #[test]
    fn pod_spec_defaults() {
        let mut s = PodSpec {
            containers: vec![Container {
                name: "c".into(),
                liveness_probe: Some(Probe::default()),
                ..Default::default()
            }],
            ..Default::default()
        };
        pod_spec(&mut s);
        assert_eq!(s.restart_policy.as_deref(), Some("Always"));
        assert_eq!(s.termination_grace_period_seconds, Some(30));
        assert_eq!(s.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(s.scheduler_name.as_deref(), Some("default-scheduler"));
        let p = s.containers[0].liveness_probe.as_ref().unwrap();
        assert_eq!(
            (
                p.timeout_seconds,
                p.period_seconds,
                p.success_threshold,
                p.failure_threshold
            ),
            (Some(1), Some(10), Some(1), Some(3))
        );
    }

    #[test]
    fn qos_classes() {
        let with = |requests: &[(&str, &str)], limits: &[(&str, &str)]| {
            let q = |l: &[(&str, &str)]| {
                (!l.is_empty()).then(|| {
                    l.iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                        .collect()
                })
            };
            let mut c = Container {
                resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
                    requests: q(requests),
                    limits: q(limits),
                    ..Default::default()
                }),
                ..Default::default()
            };
            container(&mut c);
            qos_class(&PodSpec {
                containers: vec![c],
                ..Default::default()
            })
        };
        assert_eq!(with(&[], &[]), "BestEffort");
        assert_eq!(with(&[("cpu", "100m")], &[]), "Burstable");
        assert_eq!(with(&[], &[("cpu", "1"), ("memory", "1Gi")]), "Guaranteed");
        assert_eq!(
            with(&[("cpu", "500m")], &[("cpu", "1"), ("memory", "1Gi")]),
            "Burstable"
        );
    }

    #[test]
    fn deployment_defaults() {
        let mut d = Deployment {
            spec: Some(Default::default()),
            ..Default::default()
        };
        deployment(&mut d);
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
        let ru = spec.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
        assert_eq!(ru.max_unavailable, Some(IntOrString::String("25%".into())));
    }
}
