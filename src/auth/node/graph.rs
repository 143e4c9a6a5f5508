//! The graph of what each node may reach: edges point from an object to what uses it, and end
//! at nodes (k8s: plugin/pkg/auth/authorizer/node/graph.go, graph_populator.go):
//!
//! ```text
//! node <- pod <- secret | configmap | serviceaccount
//! node <- pod <- pvc <- pv <- secret
//! node <- volumeattachment
//! ```
//!
//! Fed with the apiserver's committed writes ([`Graph::apply`] / [`Graph::remove`]); pods are
//! added only once bound (`spec.nodeName`). Every map is ordered, so the same events in the same
//! order give the same graph.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use super::refs;

/// k8s: vertexType.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VertexType {
    ConfigMap,
    Node,
    Pod,
    Pvc,
    Pv,
    Secret,
    VolumeAttachment,
    ServiceAccount,
}

/// (type, namespace — empty for cluster-scoped objects —, name).
pub type VertexKey = (VertexType, String, String);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Vertex {
    /// Edges toward the nodes (secret -> pod -> node).
    out: BTreeSet<VertexKey>,
    /// Edges from the objects that lead here.
    inc: BTreeSet<VertexKey>,
    /// For an object pods use: how many of its edges go to a pod on each node (k8s: the
    /// destination edge index), so that a node's read of a Secret shared by thousands of pods
    /// is one lookup, not a walk over them.
    dests: BTreeMap<String, u32>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Graph {
    vertices: BTreeMap<VertexKey, Vertex>,
    /// The uid and node of each bound pod in the graph: an update that changes neither is
    /// skipped, as upstream's populator does (a bound pod's references are immutable).
    pods: BTreeMap<(String, String), (String, String)>,
    /// The node of each VolumeAttachment (k8s: an update to the same node is skipped).
    attachments: BTreeMap<String, String>,
}

fn key(t: VertexType, namespace: &str, name: &str) -> VertexKey {
    (t, namespace.to_string(), name.to_string())
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// An object was created or updated: pods, persistentvolumes and
    /// storage.k8s.io/volumeattachments change the graph; other resources are ignored.
    pub fn apply(&mut self, group: &str, resource: &str, obj: &Value) {
        match (group, resource) {
            ("", "pods") => self.apply_pod(obj),
            ("", "persistentvolumes") => self.add_pv(obj),
            ("storage.k8s.io", "volumeattachments") => {
                let name = refs::object_name(obj);
                let node = obj
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if self.attachments.get(name).map(String::as_str) == Some(node) {
                    return;
                }
                self.add_volume_attachment(name, node);
            }
            _ => {}
        }
    }

    /// An object was deleted (`namespace` is empty for cluster-scoped resources).
    pub fn remove(&mut self, group: &str, resource: &str, namespace: &str, name: &str) {
        match (group, resource) {
            ("", "pods") => {
                self.pods.remove(&(namespace.to_string(), name.to_string()));
                self.delete_vertex(&key(VertexType::Pod, namespace, name));
            }
            ("", "persistentvolumes") => self.delete_vertex(&key(VertexType::Pv, "", name)),
            ("storage.k8s.io", "volumeattachments") => {
                self.attachments.remove(name);
                self.delete_vertex(&key(VertexType::VolumeAttachment, "", name));
            }
            _ => {}
        }
    }

    /// Whether the graph has the object (mostly for tests and debugging).
    pub fn has_vertex(&self, t: VertexType, namespace: &str, name: &str) -> bool {
        self.vertices.contains_key(&key(t, namespace, name))
    }

    pub fn vertex_count(&self) -> usize {
        self.vertices.len()
    }

    /// k8s: NodeAuthorizer.hasPathFrom — whether a directed path leads from the object to the
    /// node. Paths through other nodes are not followed (nodes have no outgoing edges).
    pub fn has_path(&self, node: &str, start: VertexType, namespace: &str, name: &str) -> bool {
        let target = key(VertexType::Node, "", node);
        let start = key(start, namespace, name);
        if !self.vertices.contains_key(&target) || !self.vertices.contains_key(&start) {
            return false;
        }
        let mut seen: BTreeSet<&VertexKey> = BTreeSet::new();
        let mut queue: VecDeque<&VertexKey> = VecDeque::new();
        seen.insert(&start);
        queue.push_back(&start);
        while let Some(v) = queue.pop_front() {
            let Some(vertex) = self.vertices.get(v) else {
                continue;
            };
            if vertex.out.contains(&target) || vertex.dests.contains_key(node) {
                return true;
            }
            for next in &vertex.out {
                if next.0 != VertexType::Node && seen.insert(next) {
                    queue.push_back(next);
                }
            }
        }
        false
    }

    fn apply_pod(&mut self, pod: &Value) {
        let namespace = refs::object_namespace(pod);
        let name = refs::object_name(pod);
        let node = refs::pod_node_name(pod);
        let id = (namespace.to_string(), name.to_string());
        if node.is_empty() {
            // k8s: an unbound pod adds nothing. A bound pod never becomes unbound; should one
            // under this name be in the graph (a missed delete), it goes.
            if self.pods.remove(&id).is_some() {
                self.delete_vertex(&key(VertexType::Pod, namespace, name));
            }
            return;
        }
        let binding = (refs::object_uid(pod).to_string(), node.to_string());
        if self.pods.get(&id) == Some(&binding) {
            return;
        }
        self.add_pod(pod, namespace, name, node);
        self.pods.insert(id, binding);
    }

    /// k8s: Graph.AddPod.
    fn add_pod(&mut self, pod: &Value, namespace: &str, name: &str, node: &str) {
        let pod_key = key(VertexType::Pod, namespace, name);
        self.delete_vertex(&pod_key);
        self.vertex(&pod_key);
        self.add_edge(&pod_key, &key(VertexType::Node, "", node));
        // k8s: a mirror pod grants its node nothing (defence in depth beside NodeRestriction).
        if refs::is_mirror_pod(pod) {
            return;
        }
        let sa = refs::pod_service_account(pod);
        let mut used = Vec::new();
        if !sa.is_empty() {
            used.push(key(VertexType::ServiceAccount, namespace, sa));
        }
        used.extend(
            refs::pod_secret_names(pod)
                .iter()
                .map(|s| key(VertexType::Secret, namespace, s)),
        );
        used.extend(
            refs::pod_configmap_names(pod)
                .iter()
                .map(|c| key(VertexType::ConfigMap, namespace, c)),
        );
        used.extend(
            refs::pod_claim_names(pod)
                .iter()
                .map(|c| key(VertexType::Pvc, namespace, c)),
        );
        for from in used {
            if self.add_edge(&from, &pod_key) {
                *self
                    .vertex(&from)
                    .dests
                    .entry(node.to_string())
                    .or_default() += 1;
            }
        }
    }

    /// k8s: Graph.AddPV: a bound PV leads to its claim, its kubelet-visible secrets to it.
    fn add_pv(&mut self, pv: &Value) {
        let pv_key = key(VertexType::Pv, "", refs::object_name(pv));
        self.delete_vertex(&pv_key);
        let Some((claim_ns, claim)) = refs::pv_claim(pv) else {
            return;
        };
        self.add_edge(&pv_key, &key(VertexType::Pvc, claim_ns, claim));
        for (ns, secret) in refs::pv_kubelet_secrets(pv) {
            self.add_edge(&key(VertexType::Secret, &ns, &secret), &pv_key);
        }
    }

    /// k8s: Graph.AddVolumeAttachment.
    fn add_volume_attachment(&mut self, name: &str, node: &str) {
        let va = key(VertexType::VolumeAttachment, "", name);
        self.delete_vertex(&va);
        self.attachments.remove(name);
        if !node.is_empty() {
            self.add_edge(&va, &key(VertexType::Node, "", node));
            self.attachments.insert(name.to_string(), node.to_string());
        }
    }

    fn vertex(&mut self, k: &VertexKey) -> &mut Vertex {
        self.vertices.entry(k.clone()).or_default()
    }

    /// Whether the edge is new.
    fn add_edge(&mut self, from: &VertexKey, to: &VertexKey) -> bool {
        self.vertex(to).inc.insert(from.clone());
        self.vertex(from).out.insert(to.clone())
    }

    /// k8s: deleteVertexLocked — the vertex goes with its edges, and so does each neighbour
    /// left without any edge.
    fn delete_vertex(&mut self, k: &VertexKey) {
        let Some(vertex) = self.vertices.remove(k) else {
            return;
        };
        // The node this vertex leads to (a pod's): its users lose an edge to that node.
        let node = vertex
            .out
            .iter()
            .find(|(t, _, _)| *t == VertexType::Node)
            .map(|(_, _, name)| name.as_str());
        for n in vertex.out.iter().chain(vertex.inc.iter()) {
            if let Some(neighbour) = self.vertices.get_mut(n) {
                if let (Some(node), true) = (node, neighbour.out.contains(k)) {
                    if let Some(count) = neighbour.dests.get_mut(node) {
                        *count -= 1;
                        if *count == 0 {
                            neighbour.dests.remove(node);
                        }
                    }
                }
                neighbour.inc.remove(k);
                neighbour.out.remove(k);
                if neighbour.inc.is_empty() && neighbour.out.is_empty() {
                    self.vertices.remove(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, uid: &str, node: &str, secret: &str) -> Value {
        json!({
            "metadata": {"namespace": ns, "name": name, "uid": uid},
            "spec": {"nodeName": node, "serviceAccountName": "default",
                     "volumes": [{"name": "v", "secret": {"secretName": secret}}],
                     "containers": [{"name": "c"}]}
        })
    }

    #[test]
    fn paths_follow_pods_to_their_node_and_vanish_with_them() {
        let mut g = Graph::new();
        g.apply("", "pods", &pod("ns", "p1", "u1", "n1", "shared"));
        g.apply("", "pods", &pod("ns", "p2", "u2", "n2", "shared"));
        g.apply("", "pods", &pod("ns", "p3", "u3", "n2", "only-n2"));
        // (node, type, ns, name, reachable)
        let before: &[(&str, VertexType, &str, &str, bool)] = &[
            ("n1", VertexType::Secret, "ns", "shared", true),
            ("n2", VertexType::Secret, "ns", "shared", true),
            ("n1", VertexType::Secret, "ns", "only-n2", false),
            ("n2", VertexType::Secret, "ns", "only-n2", true),
            ("n1", VertexType::Pod, "ns", "p1", true),
            ("n1", VertexType::Pod, "ns", "p2", false),
            ("n1", VertexType::ServiceAccount, "ns", "default", true),
            ("n1", VertexType::Secret, "other", "shared", false),
            ("n3", VertexType::Secret, "ns", "shared", false),
        ];
        for (node, t, ns, name, want) in before {
            assert_eq!(
                g.has_path(node, *t, ns, name),
                *want,
                "{node} {t:?} {ns}/{name}"
            );
        }
        g.remove("", "pods", "ns", "p2");
        assert!(!g.has_path("n2", VertexType::Secret, "ns", "shared"));
        assert!(g.has_path("n2", VertexType::Secret, "ns", "only-n2"));
        g.remove("", "pods", "ns", "p3");
        // Orphans go: nothing of n2 is left.
        assert!(!g.has_vertex(VertexType::Node, "", "n2"));
        assert!(!g.has_vertex(VertexType::Secret, "ns", "only-n2"));
        assert!(g.has_vertex(VertexType::Secret, "ns", "shared"));
        g.remove("", "pods", "ns", "p1");
        assert_eq!(g.vertex_count(), 0);
    }

    #[test]
    fn the_destination_index_follows_pods_on_and_off_nodes() {
        let mut g = Graph::new();
        // kube-root-ca.crt-like: one ConfigMap used by every pod of the namespace.
        let shared = |name: &str, node: &str| {
            json!({"metadata": {"namespace": "ns", "name": name, "uid": name},
                   "spec": {"nodeName": node, "volumes": [
                       {"name": "ca", "configMap": {"name": "kube-root-ca.crt"}}]}})
        };
        for i in 0..300 {
            g.apply(
                "",
                "pods",
                &shared(&format!("p{i}"), &format!("n{}", i % 3)),
            );
        }
        let cm = key(VertexType::ConfigMap, "ns", "kube-root-ca.crt");
        let dests = &g.vertices[&cm].dests;
        assert_eq!(dests.len(), 3);
        assert!(dests.values().all(|c| *c == 100));
        for i in (0..300).filter(|i| i % 3 == 1) {
            g.remove("", "pods", "ns", &format!("p{i}"));
        }
        assert!(!g.vertices[&cm].dests.contains_key("n1"));
        assert!(!g.has_path("n1", VertexType::ConfigMap, "ns", "kube-root-ca.crt"));
        assert!(g.has_path("n2", VertexType::ConfigMap, "ns", "kube-root-ca.crt"));
        // The index never disagrees with a walk of the edges.
        for (k, v) in &g.vertices {
            let mut walked: BTreeMap<String, u32> = BTreeMap::new();
            for pod in v.out.iter().filter(|(t, _, _)| *t == VertexType::Pod) {
                for (_, _, n) in g.vertices[pod].out.iter() {
                    *walked.entry(n.clone()).or_default() += 1;
                }
            }
            assert_eq!(v.dests, walked, "{k:?}");
        }
    }

    #[test]
    fn a_pod_recreated_elsewhere_moves_its_edges() {
        let mut g = Graph::new();
        g.apply("", "pods", &pod("ns", "p", "u1", "n1", "s"));
        // Same uid and node: skipped (a status update).
        g.apply("", "pods", &pod("ns", "p", "u1", "n1", "s"));
        assert!(g.has_path("n1", VertexType::Secret, "ns", "s"));
        // Deleted and recreated under the same name on another node (a missed delete).
        g.apply("", "pods", &pod("ns", "p", "u2", "n2", "s"));
        assert!(!g.has_path("n1", VertexType::Secret, "ns", "s"));
        assert!(g.has_path("n2", VertexType::Secret, "ns", "s"));
        // Unbound pods add no edges, and drop those of an old pod of that name.
        g.apply("", "pods", &pod("ns", "p", "u3", "", "s"));
        assert_eq!(g.vertex_count(), 0);
    }

    #[test]
    fn mirror_pods_reach_only_their_node() {
        let mut g = Graph::new();
        let mut p = pod("ns", "static", "u", "n1", "s");
        p["metadata"]["annotations"] = json!({ refs::MIRROR_POD_ANNOTATION: "hash" });
        g.apply("", "pods", &p);
        assert!(g.has_path("n1", VertexType::Pod, "ns", "static"));
        assert!(!g.has_path("n1", VertexType::Secret, "ns", "s"));
        assert!(!g.has_path("n1", VertexType::ServiceAccount, "ns", "default"));
    }

    #[test]
    fn volumes_lead_through_claims_and_pvs() {
        let mut g = Graph::new();
        g.apply(
            "",
            "pods",
            &json!({"metadata": {"namespace": "ns", "name": "p", "uid": "u"},
                    "spec": {"nodeName": "n1", "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "claim"}}]}}),
        );
        let pv = json!({"metadata": {"name": "pv1"},
            "spec": {"claimRef": {"namespace": "ns", "name": "claim"},
                     "rbd": {"monitors": ["m"], "image": "i", "secretRef": {"name": "ceph"}}}});
        g.apply("", "persistentvolumes", &pv);
        let cases: &[(&str, VertexType, &str, &str, bool)] = &[
            ("n1", VertexType::Pvc, "ns", "claim", true),
            ("n1", VertexType::Pv, "", "pv1", true),
            ("n1", VertexType::Secret, "ns", "ceph", true),
            ("n2", VertexType::Pv, "", "pv1", false),
        ];
        for (node, t, ns, name, want) in cases {
            assert_eq!(
                g.has_path(node, *t, ns, name),
                *want,
                "{node} {t:?} {ns}/{name}"
            );
        }
        // The PV unbound from the claim: its secret is out of reach.
        g.apply(
            "",
            "persistentvolumes",
            &json!({"metadata": {"name": "pv1"}, "spec": {}}),
        );
        assert!(!g.has_path("n1", VertexType::Pv, "", "pv1"));
        assert!(!g.has_path("n1", VertexType::Secret, "ns", "ceph"));
        assert!(g.has_path("n1", VertexType::Pvc, "ns", "claim"));
        // VolumeAttachments lead straight to their node.
        g.apply(
            "storage.k8s.io",
            "volumeattachments",
            &json!({"metadata": {"name": "va"}, "spec": {"nodeName": "n1"}}),
        );
        assert!(g.has_path("n1", VertexType::VolumeAttachment, "", "va"));
        g.remove("storage.k8s.io", "volumeattachments", "", "va");
        assert!(!g.has_path("n1", VertexType::VolumeAttachment, "", "va"));
    }
}
