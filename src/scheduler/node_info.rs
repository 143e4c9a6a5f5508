//! What the scheduler knows about one node: its object, allocatable resources, and the pods
//! counted on it with their requests (k8s: framework.NodeInfo).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::api::quantity;

/// k8s: pods without requests count as 100 mCPU / 200 MiB when scoring
/// (DefaultMilliCPURequest, DefaultMemoryRequest).
pub const DEFAULT_MILLI_CPU: i128 = 100;
pub const DEFAULT_MEMORY: i128 = 200 * 1024 * 1024;

/// Requested or allocatable amounts: cpu in millicores, memory in bytes, pod count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i128,
    pub memory: i128,
    pub pods: i128,
}

impl Resources {
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.pods += other.pods;
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.pods -= other.pods;
    }
}

/// Every other resource (extended resources such as `example.com/foo`, hugepages,
/// ephemeral-storage), in thousandths of a unit. k8s: Resource.ScalarResources
pub type Scalars = BTreeMap<String, i128>;

/// The names NodeInfo keeps as `Resources`; everything else is a scalar.
fn is_scalar(name: &str) -> bool {
    !matches!(name, "cpu" | "memory" | "pods")
}

fn add_scalars(into: &mut Scalars, from: &Scalars, sign: i128) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_default();
        *e += sign * v;
        if *e == 0 {
            into.remove(k);
        }
    }
}

fn amount(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    key: &str,
) -> Option<i128> {
    map.and_then(|m| m.get(key))
        .and_then(|q| quantity::parse(&q.0))
}

/// A pod's requests: the sum over its containers, or the largest init container if larger
/// (k8s: computePodResourceRequest). `non_zero` applies the scoring defaults per container.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let default = k8s_openapi::api::core::v1::PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default);
    let per = |c: &k8s_openapi::api::core::v1::Container| {
        let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let cpu = amount(req, "cpu");
        let mem = amount(req, "memory").map(|m| m / 1000);
        Resources {
            milli_cpu: cpu.unwrap_or(if non_zero { DEFAULT_MILLI_CPU } else { 0 }),
            memory: mem.unwrap_or(if non_zero { DEFAULT_MEMORY } else { 0 }),
            pods: 0,
        }
    };
    let mut total = Resources {
        pods: 1,
        ..Default::default()
    };
    for c in &spec.containers {
        total.add(&per(c));
    }
    for c in spec.init_containers.iter().flatten() {
        let r = per(c);
        total.milli_cpu = total.milli_cpu.max(r.milli_cpu);
        total.memory = total.memory.max(r.memory);
    }
    total
}

/// A pod's scalar (extended) requests, summed over containers, the largest init container
/// if larger, as for cpu and memory. k8s: computePodResourceRequest
pub fn pod_scalar_requests(pod: &Pod) -> Scalars {
    let mut total = Scalars::new();
    let Some(spec) = pod.spec.as_ref() else {
        return total;
    };
    let each = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .into_iter()
            .flatten()
            .filter(|(k, _)| is_scalar(k))
            .filter_map(|(k, q)| Some((k.clone(), quantity::parse(&q.0)?)))
            .collect::<Vec<_>>()
    };
    for c in &spec.containers {
        for (k, v) in each(c) {
            *total.entry(k).or_default() += v;
        }
    }
    for c in spec.init_containers.iter().flatten() {
        for (k, v) in each(c) {
            let e = total.entry(k).or_default();
            *e = (*e).max(v);
        }
    }
    total
}

/// A pod as a node counts it (k8s: framework.PodInfo).
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub requests: Resources,
    pub non_zero: Resources,
    pub scalars: Scalars,
    /// The pod has pod affinity or anti-affinity terms (either kind).
    pub has_affinity: bool,
}

pub fn has_pod_affinity(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
}

/// The image names a node reports, normalized, with their sizes. k8s: node.status.images
fn node_images(node: &Node) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for img in node
        .status
        .as_ref()
        .and_then(|s| s.images.as_ref())
        .into_iter()
        .flatten()
    {
        for name in img.names.iter().flatten() {
            out.insert(normalized_image(name), img.size_bytes.unwrap_or(0));
        }
    }
    out
}

/// k8s: normalizedImageName — an image without a tag or digest means `:latest`.
pub fn normalized_image(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Which label a topology key is, found once per scheduling cycle (see `NodeInfo::label`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    Zone,
    Hostname,
    Other,
}

impl Known {
    pub fn of(key: &str) -> Known {
        use super::plugins::pod_topology_spread::{HOSTNAME, ZONE};
        match key {
            ZONE => Known::Zone,
            HOSTNAME => Known::Hostname,
            _ => Known::Other,
        }
    }
}

#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Node,
    pub allocatable: Resources,
    pub allocatable_scalars: Scalars,
    /// The sum of the requests of the pods on the node (filtering).
    pub requested: Resources,
    pub requested_scalars: Scalars,
    /// The same with the scoring defaults for pods without requests.
    pub non_zero_requested: Resources,
    /// The pods counted, by key, so a pod is never counted twice.
    pub pods: BTreeMap<String, PodInfo>,
    /// How many of them have pod (anti-)affinity terms.
    pub pods_with_affinity: usize,
    /// Normalized image name → size in bytes.
    pub images: BTreeMap<String, i64>,
    /// Controller uid → how many of the pods (not terminating) it owns: the system default
    /// topology spread counts these on every node for every pod (PodTopologySpread).
    pub by_controller: BTreeMap<String, i64>,
    /// The node's zone and hostname labels, which the default topology spread reads for
    /// every pod on every node (a lookup among all the labels costs more).
    pub zone: Option<String>,
    pub hostname: Option<String>,
}

/// The controller a pod counts under for the default spread, if it is not terminating.
fn spread_owner(pod: &Pod) -> Option<&str> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    super::plugins::pod_topology_spread::controller_uid(pod)
}

impl NodeInfo {
    pub fn new(node: Node) -> Self {
        let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let allocatable = Resources {
            milli_cpu: amount(alloc, "cpu").unwrap_or(0),
            memory: amount(alloc, "memory").map(|m| m / 1000).unwrap_or(0),
            pods: amount(alloc, "pods").map(|p| p / 1000).unwrap_or(110),
        };
        let allocatable_scalars = alloc
            .into_iter()
            .flatten()
            .filter(|(k, _)| is_scalar(k))
            .filter_map(|(k, q)| Some((k.clone(), quantity::parse(&q.0)?)))
            .collect();
        let label = |key: &str| {
            node.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key))
                .cloned()
        };
        let (zone, hostname) = (
            label(super::plugins::pod_topology_spread::ZONE),
            label(super::plugins::pod_topology_spread::HOSTNAME),
        );
        NodeInfo {
            images: node_images(&node),
            zone,
            hostname,
            node,
            allocatable,
            allocatable_scalars,
            requested: Resources::default(),
            requested_scalars: Scalars::new(),
            non_zero_requested: Resources::default(),
            pods: BTreeMap::new(),
            pods_with_affinity: 0,
            by_controller: BTreeMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    /// The value of the node's label `key`; `which` says if the key is the zone or the
    /// hostname (see `Known`), whose values the node keeps at hand.
    pub fn label(&self, key: &str, which: Known) -> Option<&String> {
        match which {
            Known::Zone => self.zone.as_ref(),
            Known::Hostname => self.hostname.as_ref(),
            Known::Other => self.labels().get(key),
        }
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    pub fn add_pod(&mut self, key: &str, pod: &Arc<Pod>) {
        if self.pods.contains_key(key) {
            return;
        }
        let info = PodInfo {
            pod: pod.clone(),
            requests: pod_requests(pod, false),
            non_zero: pod_requests(pod, true),
            scalars: pod_scalar_requests(pod),
            has_affinity: has_pod_affinity(pod),
        };
        self.add_pod_info(key, info);
    }

    pub fn add_pod_info(&mut self, key: &str, info: PodInfo) {
        if self.pods.contains_key(key) {
            return;
        }
        self.requested.add(&info.requests);
        self.non_zero_requested.add(&info.non_zero);
        add_scalars(&mut self.requested_scalars, &info.scalars, 1);
        self.pods_with_affinity += usize::from(info.has_affinity);
        if let Some(uid) = spread_owner(&info.pod) {
            *self.by_controller.entry(uid.to_string()).or_default() += 1;
        }
        self.pods.insert(key.to_string(), info);
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<PodInfo> {
        let info = self.pods.remove(key)?;
        self.requested.sub(&info.requests);
        self.non_zero_requested.sub(&info.non_zero);
        add_scalars(&mut self.requested_scalars, &info.scalars, -1);
        self.pods_with_affinity -= usize::from(info.has_affinity);
        if let Some(uid) = spread_owner(&info.pod) {
            if let Some(n) = self.by_controller.get_mut(uid) {
                *n -= 1;
                if *n == 0 {
                    self.by_controller.remove(uid);
                }
            }
        }
        Some(info)
    }

    /// Keeps the pods' accounting when the node object changes.
    pub fn update_node(&mut self, node: Node) {
        let old = std::mem::replace(self, NodeInfo::new(node));
        self.pods = old.pods;
        self.requested = old.requested;
        self.requested_scalars = old.requested_scalars;
        self.non_zero_requested = old.non_zero_requested;
        self.pods_with_affinity = old.pods_with_affinity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_sum_containers_and_respect_init_containers() {
        let pod: Pod = serde_json::from_value(json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi", "example.com/foo": "2"}}},
                {"name": "b", "resources": {"requests": {"example.com/foo": "1"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "example.com/foo": "5"}}}]
        }}))
        .unwrap();
        let r = pod_requests(&pod, false);
        assert_eq!((r.milli_cpu, r.memory, r.pods), (2000, 64 * 1024 * 1024, 1));
        let nz = pod_requests(&pod, true);
        assert_eq!(
            (nz.milli_cpu, nz.memory),
            (2000, 64 * 1024 * 1024 + DEFAULT_MEMORY)
        );
        // k8s: extended resources like cpu — containers summed, init containers' max.
        assert_eq!(
            pod_scalar_requests(&pod),
            Scalars::from([("example.com/foo".to_string(), 5000)])
        );
    }

    #[test]
    fn node_accounting_counts_each_pod_once() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "example.com/foo": "3"},
                       "images": [{"names": ["busybox:1.36", "docker.io/library/busybox"], "sizeBytes": 5}]}}))
        .unwrap();
        let mut info = NodeInfo::new(node);
        assert_eq!(
            info.allocatable,
            Resources {
                milli_cpu: 4000,
                memory: 8 << 30,
                pods: 110
            }
        );
        assert_eq!(info.allocatable_scalars["example.com/foo"], 3000);
        assert_eq!(
            info.images.keys().collect::<Vec<_>>(),
            vec!["busybox:1.36", "docker.io/library/busybox:latest"]
        );
        let pod: Arc<Pod> = Arc::new(
            serde_json::from_value(json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "1", "example.com/foo": "1"}}}]}}))
            .unwrap(),
        );
        info.add_pod("ns/p", &pod);
        info.add_pod("ns/p", &pod);
        assert_eq!((info.requested.milli_cpu, info.requested.pods), (1000, 1));
        assert_eq!(info.requested_scalars["example.com/foo"], 1000);
        info.remove_pod("ns/p");
        assert_eq!(info.requested, Resources::default());
        assert!(info.requested_scalars.is_empty());
    }
}
