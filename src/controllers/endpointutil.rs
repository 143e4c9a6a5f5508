//! What the Endpoints and EndpointSlice controllers share: which pods a Service's endpoints
//! include, their addresses, ports and hostnames, and which Services a pod belongs to.
//! k8s: staging/src/k8s.io/endpointslice/util/controller_utils.go, pkg/api/v1/pod/util.go
//! (FindPort), pkg/controller/util/endpoint (ShouldSetHostname); reference/k8s-semantics.md §6.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::cache::Cache;

/// The label that names a slice's Service (k8s: discovery.LabelServiceName).
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// k8s: discovery.LabelManagedBy
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The EndpointSlice controller's value of `LABEL_MANAGED_BY`.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Set on the Endpoints and slices of headless Services (k8s: v1.IsHeadlessService).
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// k8s: v1.LabelTopologyZone
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

/// `namespace/service` of an EndpointSlice: its namespace and its Service-name label (the key
/// kube-proxy and cluster DNS index slices by).
pub fn slice_service(s: &k8s_openapi::api::discovery::v1::EndpointSlice) -> String {
    let ns = s.metadata.namespace.as_deref().unwrap_or("");
    let svc = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_SERVICE_NAME))
        .map_or("", String::as_str);
    format!("{ns}/{svc}")
}

/// k8s: ShouldPodBeInEndpoints (§6.1) — not terminal, has an IP, and not being deleted unless
/// terminating pods are included.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) {
        return false;
    }
    if pod_ipv4(pod).is_none() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// k8s: podutil.IsPodReady — the Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn is_ipv4(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The pod's IPv4 address (status.podIPs, else status.podIP). Only IPv4 is served: the
/// cluster is single-stack.
pub fn pod_ipv4(pod: &Pod) -> Option<String> {
    let st = pod.status.as_ref()?;
    st.pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .chain(st.pod_ip.as_deref())
        .find(|ip| is_ipv4(ip))
        .map(String::from)
}

fn protocol(p: Option<&str>) -> &str {
    p.unwrap_or("TCP")
}

/// The pod's port for a Service port: a numeric targetPort as it is, a named one looked up in
/// the pod's container ports (same name and protocol); `None` when the pod has no such port.
/// k8s: podutil.FindPort (containers, then restartable init containers)
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && protocol(p.protocol.as_deref()) == protocol(sp.protocol.as_deref())
                })
                .map(|p| p.container_port)
        }
    }
}

/// One resolved port of an endpoint: `{name, port, protocol, appProtocol}` (the shape both
/// EndpointPort kinds share).
pub fn endpoint_port(sp: &ServicePort, port: i32) -> Value {
    let mut p = json!({
        "name": sp.name.clone().unwrap_or_default(),
        "port": port,
        "protocol": protocol(sp.protocol.as_deref()),
    });
    if let Some(a) = &sp.app_protocol {
        p["appProtocol"] = json!(a);
    }
    p
}

/// The ports a pod serves for a Service, in the Service's order; ports the pod lacks are left
/// out. k8s: getEndpointPorts
pub fn pod_ports(pod: &Pod, svc: &Service) -> Vec<Value> {
    service_ports(svc)
        .iter()
        .filter_map(|sp| find_port(pod, sp).map(|n| endpoint_port(sp, n)))
        .collect()
}

pub fn service_ports(svc: &Service) -> &[ServicePort] {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[])
}

/// k8s: ShouldSetHostname — the pod names a hostname and this Service as its subdomain.
pub fn hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| host.to_string())
}

/// k8s: service.Spec.PublishNotReadyAddresses
pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The Service's selector; `None` for a Service without one, whose endpoints are the user's.
/// An empty selector counts as none: the stored form does not tell `{}` from absent.
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

fn selects(sel: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    sel.iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The pods of the Service's namespace its selector matches, in key order.
pub fn selected_pods<'a>(svc: &'a Service, pods: &'a Cache<Pod>) -> Vec<&'a Pod> {
    let Some(sel) = selector(svc) else {
        return Vec::new();
    };
    let ns = svc.metadata.namespace.as_deref().unwrap_or("");
    pods.in_namespace(ns)
        .map(|(_, p)| p)
        .filter(|p| selects(sel, p))
        .collect()
}

/// The keys of the Services (with a selector) in the pod's namespace that select it.
/// k8s: GetPodServiceMemberships
pub fn services_of(pod: &Pod, services: &Cache<Service>) -> Vec<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    services
        .in_namespace(ns)
        .filter(|(_, s)| selector(s).is_some_and(|sel| selects(sel, pod)))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The reference from an endpoint to its pod.
pub fn target_ref(pod: &Pod) -> Value {
    let mut r = json!({"kind": "Pod"});
    let m = &pod.metadata;
    for (field, value) in [
        ("namespace", &m.namespace),
        ("name", &m.name),
        ("uid", &m.uid),
    ] {
        if let Some(v) = value {
            r[field] = json!(v);
        }
    }
    r
}

/// What of a pod its endpoints depend on: a pod update that changes none of it needs no
/// sync (k8s: podEndpointsChanged).
pub fn endpoint_view(pod: &Pod) -> Value {
    let spec = pod.spec.as_ref();
    json!([
        pod.metadata.labels,
        pod.metadata.uid,
        pod.metadata.deletion_timestamp.is_some(),
        pod_ipv4(pod),
        is_pod_ready(pod),
        pod.status.as_ref().and_then(|s| s.phase.clone()),
        spec.and_then(|s| s.node_name.clone()),
        spec.and_then(|s| s.hostname.clone()),
        spec.and_then(|s| s.subdomain.clone()),
        spec.map(|s| s
            .containers
            .iter()
            .map(|c| c.ports.clone())
            .collect::<Vec<_>>()),
    ])
}

/// The Services a pod change concerns (those selecting the old or the new pod), or none when
/// nothing its endpoints depend on changed.
pub fn services_for_change(
    old: Option<&Pod>,
    new: Option<&Pod>,
    services: &Cache<Service>,
) -> Vec<String> {
    if let (Some(o), Some(n)) = (old, new) {
        if endpoint_view(o) == endpoint_view(n) {
            return Vec::new();
        }
    }
    let mut keys: Vec<String> = old
        .into_iter()
        .chain(new)
        .flat_map(|p| services_of(p, services))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The annotation saying when the last change that led to this write happened.
/// k8s: v1.EndpointsLastChangeTriggerTime
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

type Timestamp = k8s_openapi::jiff::Timestamp;

/// Per Service, the trigger times seen at its last sync: the Service's creation time, and each
/// pod's Ready condition's last transition. k8s: endpointsliceutil.TriggerTimeTracker
#[derive(Debug, Default)]
pub struct TriggerTimes {
    last: BTreeMap<String, (Option<Timestamp>, BTreeMap<String, Timestamp>)>,
}

impl TriggerTimes {
    /// The earliest trigger time that changed since the Service's last sync, formatted as the
    /// annotation wants it; `None` when none did (the annotation is then removed).
    /// k8s: ComputeEndpointLastChangeTriggerTime
    pub fn compute(&mut self, key: &str, svc: &Service, pods: &[&Pod]) -> Option<String> {
        let (last_svc, last_pods) = self.last.remove(key).unwrap_or_default();
        let mut min: Option<Timestamp> = None;
        let mut seen = BTreeMap::new();
        for pod in pods {
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0);
            let (Some(t), Some(name)) = (ready, pod.metadata.name.as_ref()) else {
                continue;
            };
            if last_pods.get(name).is_none_or(|last| t > *last) {
                min = Some(min.map_or(t, |m| m.min(t)));
            }
            seen.insert(name.clone(), t);
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(c) = created {
            if last_svc.is_none_or(|last| c > last) {
                min = Some(min.map_or(c, |m| m.min(c)));
            }
        }
        self.last.insert(key.to_string(), (created, seen));
        min.map(|t| t.to_string())
    }

    /// The Service is gone.
    pub fn forget(&mut self, key: &str) {
        self.last.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn base_pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "a"}},
               "spec": {"containers": [{"name": "c", "ports": [
                   {"name": "http", "containerPort": 8080},
                   {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
               "status": {"phase": "Running", "podIP": "10.128.0.2",
                          "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    #[test]
    fn which_pods_are_included_section_6_1() {
        // (change to the base pod, include terminating, included)
        let table: Vec<(&str, Value, bool, bool)> = vec![
            ("running with an IP", json!({}), false, true),
            (
                "succeeded",
                json!({"status": {"phase": "Succeeded"}}),
                true,
                false,
            ),
            (
                "failed",
                json!({"status": {"phase": "Failed"}}),
                true,
                false,
            ),
            (
                "pending with an IP",
                json!({"status": {"phase": "Pending"}}),
                false,
                true,
            ),
            ("no IP", json!({"status": {"podIP": null}}), true, false),
            (
                "an IPv6 address only",
                json!({"status": {"podIP": "fd00::1"}}),
                true,
                false,
            ),
            (
                "terminating, excluded",
                json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
                false,
                false,
            ),
            (
                "terminating, included",
                json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
                true,
                true,
            ),
            (
                "not ready still included",
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                false,
                true,
            ),
        ];
        for (what, patch, include_terminating, want) in table {
            let mut v = base_pod();
            crate::apiserver::patch::merge(&mut v, &patch);
            assert_eq!(
                should_pod_be_in_endpoints(&pod(v), include_terminating),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn ports_resolve_by_number_or_by_name_and_protocol() {
        let p = pod(base_pod());
        let sp = |v: Value| -> ServicePort { serde_json::from_value(v).unwrap() };
        let table: Vec<(&str, Value, Option<i32>)> = vec![
            (
                "number",
                json!({"port": 80, "targetPort": 9000}),
                Some(9000),
            ),
            ("absent: the port", json!({"port": 80}), Some(80)),
            (
                "named",
                json!({"port": 80, "targetPort": "http"}),
                Some(8080),
            ),
            (
                "named, other protocol",
                json!({"port": 80, "targetPort": "http", "protocol": "UDP"}),
                None,
            ),
            (
                "named UDP",
                json!({"port": 53, "targetPort": "dns", "protocol": "UDP"}),
                Some(53),
            ),
            (
                "name the pod lacks",
                json!({"port": 80, "targetPort": "metrics"}),
                None,
            ),
        ];
        for (what, port, want) in table {
            assert_eq!(find_port(&p, &sp(port)), want, "{what}");
        }
    }

    #[test]
    fn hostname_only_for_the_subdomain_service() {
        let svc = |name: &str| -> Service {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"}})).unwrap()
        };
        let mut v = base_pod();
        v["spec"]["hostname"] = json!("h");
        v["spec"]["subdomain"] = json!("s");
        let p = pod(v);
        assert_eq!(hostname(&p, &svc("s")).as_deref(), Some("h"));
        assert_eq!(hostname(&p, &svc("other")), None);
        assert_eq!(hostname(&pod(base_pod()), &svc("s")), None);
    }

    #[test]
    fn only_endpoint_relevant_changes_matter() {
        let a = pod(base_pod());
        let mut v = base_pod();
        v["status"]["startTime"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(endpoint_view(&a), endpoint_view(&pod(v)));
        let mut v = base_pod();
        v["status"]["conditions"][0]["status"] = json!("False");
        assert_ne!(endpoint_view(&a), endpoint_view(&pod(v)));
    }

    #[test]
    fn the_trigger_time_is_the_earliest_change_since_the_last_sync() {
        let svc: Service =
            serde_json::from_value(json!({"metadata": {"name": "s", "namespace": "ns",
            "creationTimestamp": "2024-01-01T00:00:00Z"}}))
            .unwrap();
        let at = |name: &str, t: &str| -> Pod {
            let mut v = base_pod();
            v["metadata"]["name"] = json!(name);
            v["status"]["conditions"][0]["lastTransitionTime"] = json!(t);
            pod(v)
        };
        let mut tt = TriggerTimes::default();
        let (a, b) = (
            at("a", "2024-01-01T00:00:05Z"),
            at("b", "2024-01-01T00:00:03Z"),
        );
        // First sync: everything is new, the Service's creation is the earliest.
        assert_eq!(
            tt.compute("ns/s", &svc, &[&a, &b]).as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
        // Nothing changed: no trigger time.
        assert_eq!(tt.compute("ns/s", &svc, &[&a, &b]), None);
        // One pod's readiness changed: its transition.
        let a2 = at("a", "2024-01-01T00:01:00.5Z");
        assert_eq!(
            tt.compute("ns/s", &svc, &[&a2, &b]).as_deref(),
            Some("2024-01-01T00:01:00.5Z")
        );
        tt.forget("ns/s");
        assert_eq!(
            tt.compute("ns/s", &svc, &[&a2, &b]).as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
    }
}
