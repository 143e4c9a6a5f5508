//! What the scheduler knows about a node: its allocatable resources and what the pods assigned
//! (or assumed) to it request.

use std::collections::BTreeMap;

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

#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Node,
    pub allocatable: Resources,
    /// The sum of the requests of the pods on the node (filtering).
    pub requested: Resources,
    /// The same with the scoring defaults for pods without requests.
    pub non_zero_requested: Resources,
    /// Keys of the pods counted, so a pod is never counted twice.
    pub pods: BTreeMap<String, (Resources, Resources)>,
}

impl NodeInfo {
    pub fn new(node: Node) -> Self {
        let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let allocatable = Resources {
            milli_cpu: amount(alloc, "cpu").unwrap_or(0),
            memory: amount(alloc, "memory").map(|m| m / 1000).unwrap_or(0),
            pods: amount(alloc, "pods").map(|p| p / 1000).unwrap_or(110),
        };
        NodeInfo {
            node,
            allocatable,
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pods: BTreeMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    pub fn add_pod(&mut self, key: &str, pod: &Pod) {
        if self.pods.contains_key(key) {
            return;
        }
        let (r, nz) = (pod_requests(pod, false), pod_requests(pod, true));
        self.requested.add(&r);
        self.non_zero_requested.add(&nz);
        self.pods.insert(key.to_string(), (r, nz));
    }

    pub fn remove_pod(&mut self, key: &str) {
        if let Some((r, nz)) = self.pods.remove(key) {
            self.requested.sub(&r);
            self.non_zero_requested.sub(&nz);
        }
    }

    /// Keeps the pods' accounting when the node object changes.
    pub fn update_node(&mut self, node: Node) {
        let pods = std::mem::take(&mut self.pods);
        let (requested, non_zero) = (self.requested, self.non_zero_requested);
        *self = NodeInfo::new(node);
        self.pods = pods;
        self.requested = requested;
        self.non_zero_requested = non_zero;
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
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"name": "b"}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]
        }}))
        .unwrap();
        let r = pod_requests(&pod, false);
        assert_eq!((r.milli_cpu, r.memory, r.pods), (2000, 64 * 1024 * 1024, 1));
        let nz = pod_requests(&pod, true);
        assert_eq!(
            (nz.milli_cpu, nz.memory),
            (2000, 64 * 1024 * 1024 + DEFAULT_MEMORY)
        );
    }

    #[test]
    fn node_accounting_counts_each_pod_once() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
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
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "1"}}}]}}))
        .unwrap();
        info.add_pod("ns/p", &pod);
        info.add_pod("ns/p", &pod);
        assert_eq!((info.requested.milli_cpu, info.requested.pods), (1000, 1));
        info.remove_pod("ns/p");
        assert_eq!(info.requested, Resources::default());
    }
}
