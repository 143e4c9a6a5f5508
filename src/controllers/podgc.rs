//! The pod garbage collector: removes pods bound to nodes that no longer exist, unscheduled
//! pods that are being deleted, and terminated pods beyond the threshold.
//! k8s: pkg/controller/podgc/gc_controller.go (reference §3.6)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use rand::RngCore;
use serde_json::json;

use super::cache::{Cache, Change};
use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::{format_time, Part};
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

/// k8s: gcCheckPeriod 20 s
pub const CHECK_PERIOD: Duration = Duration::from_secs(20);
/// k8s: orphans are quarantined 40 s before they are deleted
pub const QUARANTINE: Duration = Duration::from_secs(40);
/// k8s: --terminated-pod-gc-threshold 12500
pub const TERMINATED_THRESHOLD: usize = 12500;
/// k8s: the taint an operator puts on a node that is gone for good (v1.TaintNodeOutOfService).
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

fn res(plural: &str) -> &'static ResourceInfo {
    registry::by_plural("", plural).expect("registered")
}

pub struct PodGc {
    nodes: Cache<Node>,
    pods: Cache<Pod>,
    /// Keys of the pods that have terminated.
    terminal: BTreeSet<String>,
    /// Missing node → when the collector first noticed it missing.
    missing_since: BTreeMap<String, Time>,
    threshold: usize,
    next_id: u64,
    armed: bool,
    /// Uncached GETs in flight: request id → the missing node they check.
    checking: BTreeMap<u64, String>,
}

impl Default for PodGc {
    fn default() -> Self {
        Self::new(TERMINATED_THRESHOLD)
    }
}

impl PodGc {
    pub fn new(threshold: usize) -> Self {
        PodGc {
            nodes: Cache::new(),
            // Indexed by node ("" for unscheduled pods): a pass looks at the nodes pods are
            // bound to instead of at every pod.
            pods: Cache::with_index(|p| node_of(p).to_string()),
            terminal: BTreeSet::new(),
            missing_since: BTreeMap::new(),
            threshold,
            next_id: 1,
            armed: false,
            checking: BTreeMap::new(),
        }
    }

    /// k8s: every deletion first moves a non-terminal pod to Failed, then deletes with grace 0.
    fn force_delete(&mut self, pod: &Pod, reason: Option<&str>, now: Time, out: &mut Vec<Effect>) {
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let (ns, name) = (
            pod.metadata.namespace.clone(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        if phase != "Succeeded" && phase != "Failed" {
            let mut body = serde_json::to_value(pod).expect("pods serialize");
            body["status"]["phase"] = json!("Failed");
            if let Some(reason) = reason {
                let mut conditions = body["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                conditions.retain(|c| c["type"] != "DisruptionTarget");
                conditions.push(json!({"type": "DisruptionTarget", "status": "True", "reason": reason,
                                       "message": "PodGC: node no longer exists", "lastTransitionTime": format_time(now)}));
                body["status"]["conditions"] = json!(conditions);
            }
            body = crate::apiserver::unconditional(body);
            self.next_id += 1;
            out.push(Effect::Api {
                id: self.next_id,
                op: ApiOp::Update {
                    resource: res("pods"),
                    namespace: ns.clone(),
                    name: name.clone(),
                    body,
                    part: Part::Status,
                },
            });
        }
        self.next_id += 1;
        out.push(Effect::Api {
            id: self.next_id,
            op: ApiOp::Delete {
                resource: res("pods"),
                namespace: ns,
                name,
                grace_period_seconds: Some(0),
                precondition_uid: pod.metadata.uid.clone(),
                precondition_resource_version: None,
                propagation_policy: None,
            },
        });
    }

    /// The answer to a node check: a node that is gone takes its pods with it.
    fn node_checked(&mut self, id: u64, found: Result<(), u16>, now: Time, out: &mut Vec<Effect>) {
        let Some(node) = self.checking.remove(&id) else {
            return;
        };
        match found {
            Err(404) => {
                // k8s: gcOrphaned — DisruptionTarget (DeletionByPodGC), Failed, deleted; in
                // the pods' key order.
                let pods: Vec<_> = self.pods.indexed(&node).map(|(_, p)| p.clone()).collect();
                for p in pods {
                    self.force_delete(&p, Some("DeletionByPodGC"), now, out);
                }
            }
            // The node exists after all: a new quarantine if it looks missing again.
            Ok(()) => {
                self.missing_since.remove(&node);
            }
            // Unknown: asked again on the next pass.
            Err(_) => {}
        }
    }

    fn track_terminal(&mut self, c: &Change<Pod>) {
        match &c.new {
            Some(p) if is_terminal(p) => self.terminal.insert(c.key.clone()),
            _ => self.terminal.remove(&c.key),
        };
    }

    fn gc(&mut self, now: Time, out: &mut Vec<Effect>) {
        // k8s: WaitForCacheSync — with the nodes not yet listed every pod's node looks missing.
        if !(self.nodes.synced() && self.pods.synced()) {
            return;
        }
        // Decide first, from the cache; clone only the pods to delete.
        let mut doomed: Vec<(String, Option<&'static str>)> = Vec::new();
        if self.threshold > 0 && self.terminal.len() > self.threshold {
            // k8s: byEvictionAndCreationTimestamp — evicted pods first, then the oldest.
            let mut terminated: Vec<(bool, Option<i128>, &str, &String)> = self
                .terminal
                .iter()
                .filter_map(|k| self.pods.get(k).map(|p| (k, p)))
                .map(|(k, p)| {
                    let created = created(p);
                    let evicted =
                        p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted");
                    (
                        !evicted,
                        created,
                        p.metadata.name.as_deref().unwrap_or(""),
                        k,
                    )
                })
                .collect();
            terminated.sort();
            let n = terminated.len() - self.threshold;
            doomed.extend(
                terminated
                    .iter()
                    .take(n)
                    .map(|(_, _, _, k)| ((*k).clone(), None)),
            );
        }
        // k8s: gcTerminating — terminating pods on a node that is not Ready and that an operator
        // marked out of service: no kubelet will confirm them (reference §3.6 rule 2).
        let mut terminating: Vec<(Option<i128>, &str, &String)> = Vec::new();
        for node in self.pods.index_values() {
            if !self.nodes.get(node).is_some_and(out_of_service) {
                continue;
            }
            terminating.extend(
                self.pods
                    .indexed(node)
                    .filter(|(_, p)| p.metadata.deletion_timestamp.is_some())
                    .map(|(k, p)| (created(p), p.metadata.name.as_deref().unwrap_or(""), k)),
            );
        }
        terminating.sort();
        doomed.extend(terminating.iter().map(|(_, _, k)| ((*k).clone(), None)));
        let mut orphans: Vec<(String, Option<&'static str>)> = Vec::new();
        let mut seen_missing = BTreeMap::new();
        for node in self.pods.index_values() {
            let pods = self.pods.indexed(node);
            if node.is_empty() {
                orphans.extend(
                    pods.filter(|(_, p)| p.metadata.deletion_timestamp.is_some())
                        .map(|(k, _)| (k.clone(), None)),
                );
                continue;
            }
            if self.nodes.get(node).is_some() {
                continue;
            }
            let since = *self.missing_since.get(node).unwrap_or(&now);
            seen_missing.insert(node.clone(), since);
            if now.since(since) >= QUARANTINE && !self.checking.values().any(|n| n == node) {
                // k8s: checkIfNodeExists — an uncached GET confirms the node is gone before
                // its pods are deleted (the cache may just be behind).
                self.next_id += 1;
                self.checking.insert(self.next_id, node.clone());
                out.push(Effect::Api {
                    id: self.next_id,
                    op: ApiOp::Get {
                        resource: res("nodes"),
                        namespace: None,
                        name: node.clone(),
                    },
                });
            }
        }
        self.missing_since = seen_missing;
        // In the pods' key order, as a pass over every pod finds them.
        orphans.sort();
        doomed.extend(orphans);
        for (key, reason) in doomed {
            if let Some(p) = self.pods.get_shared(&key) {
                self.force_delete(&p, reason, now, out);
            }
        }
    }
}

/// A pod's creation time, for oldest-first orders.
fn created(p: &Pod) -> Option<i128> {
    p.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_nanosecond())
}

/// Not Ready and tainted out-of-service.
fn out_of_service(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == TAINT_OUT_OF_SERVICE));
    !ready && tainted
}

/// The node a pod is bound to; "" when it is not scheduled.
fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn is_terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl Component for PodGc {
    fn name(&self) -> &str {
        "pod-garbage-collector"
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::POD_GARBAGE_COLLECTOR,
        )
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![WatchSpec::all(res("nodes")), WatchSpec::all(res("pods"))]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed { .. } | Input::Watched { .. } => {
                self.nodes.feed(res("nodes"), &input);
                for c in self.pods.feed(res("pods"), &input).unwrap_or_default() {
                    self.track_terminal(&c);
                }
            }
            Input::ApiResult { id, result } => {
                self.node_checked(id, result.map(|_| ()).map_err(|e| e.code), now, out);
            }
            Input::Timer { .. } => {
                self.gc(now, out);
                out.push(Effect::Timer {
                    id: 0,
                    at: now + CHECK_PERIOD,
                });
            }
            _ => {}
        }
        if !self.armed {
            self.armed = true;
            out.push(Effect::Timer {
                id: 0,
                at: now + CHECK_PERIOD,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::{ApiEvent, EventType};
    use rand::SeedableRng;

    fn pod(name: &str, node: &str, phase: &str, created: u64, deleting: bool) -> serde_json::Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "creationTimestamp": format_time(Time::from_secs(created))},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase}});
        if !node.is_empty() {
            p["spec"]["nodeName"] = json!(node);
        }
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!(format_time(Time::from_secs(created)));
        }
        p
    }

    /// A Ready node; `name!` is one that is not Ready and tainted out-of-service.
    fn node(name: &str) -> serde_json::Value {
        match name.strip_suffix('!') {
            None => json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            Some(name) => json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "spec": {"taints": [{"key": TAINT_OUT_OF_SERVICE, "effect": "NoExecute"}]},
                "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        }
    }

    /// One input, with every node check it makes answered "not found" (a node missing from
    /// the cache is missing from the store here).
    fn step(gc: &mut PodGc, now: u64, input: Input) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        gc.step(Time::from_secs(now), input, &mut rng, &mut out);
        let checks: Vec<u64> = out
            .iter()
            .filter_map(|e| match e {
                Effect::Api {
                    id,
                    op: ApiOp::Get { .. },
                } => Some(*id),
                _ => None,
            })
            .collect();
        for id in checks {
            let gone = crate::api::status::ApiError::not_found(res("nodes"), "n");
            let answer = Input::ApiResult {
                id,
                result: Err(gone),
            };
            gc.step(Time::from_secs(now), answer, &mut rng, &mut out);
        }
        out.into_iter()
            .filter_map(|e| match e {
                Effect::Api {
                    op: ApiOp::Delete { name, .. },
                    ..
                } => Some((name, false)),
                Effect::Api {
                    op: ApiOp::Update { name, .. },
                    ..
                } => Some((name, true)),
                _ => None,
            })
            .collect()
    }

    /// The pods deleted (in order) at each pass, given the nodes and pods listed at 0 s;
    /// `true` marks a pod first set to Failed.
    fn passes(
        threshold: usize,
        nodes: &[&str],
        pods: Vec<serde_json::Value>,
        at: &[u64],
    ) -> Vec<Vec<(String, bool)>> {
        let mut gc = PodGc::new(threshold);
        let nodes = nodes.iter().map(|n| node(n)).collect();
        step(
            &mut gc,
            0,
            Input::Listed {
                resource: res("nodes"),
                items: nodes,
                revision: 1,
            },
        );
        step(
            &mut gc,
            0,
            Input::Listed {
                resource: res("pods"),
                items: pods,
                revision: 1,
            },
        );
        at.iter()
            .map(|t| step(&mut gc, *t, Input::Timer { id: 0 }))
            .collect()
    }

    fn names(v: &[(&str, bool)]) -> Vec<(String, bool)> {
        v.iter().map(|(n, f)| (n.to_string(), *f)).collect()
    }

    #[test]
    fn decides_as_upstream_gc_controller() {
        struct Case {
            what: &'static str,
            threshold: usize,
            nodes: &'static [&'static str],
            pods: Vec<serde_json::Value>,
            at: &'static [u64],
            want: Vec<Vec<(&'static str, bool)>>,
        }
        let cases = [
            Case {
                // k8s: gcOrphaned quarantines a missing node 40 s before deleting its pods.
                what: "pods of a missing node, after the quarantine, in key order",
                threshold: 0,
                nodes: &["n1"],
                pods: vec![
                    pod("b", "gone", "Running", 1, false),
                    pod("a", "gone", "Running", 2, false),
                    pod("c", "n1", "Running", 3, false),
                ],
                at: &[20, 40, 60],
                want: vec![
                    vec![],
                    vec![],
                    vec![("a", true), ("a", false), ("b", true), ("b", false)],
                ],
            },
            Case {
                // k8s: gcUnscheduledTerminating.
                what: "unscheduled pods that are being deleted",
                threshold: 0,
                nodes: &["n1"],
                pods: vec![
                    pod("x", "", "Pending", 1, true),
                    pod("y", "", "Pending", 1, false),
                ],
                at: &[20],
                want: vec![vec![("x", true), ("x", false)]],
            },
            Case {
                // k8s: gcTerminated deletes the oldest terminated pods beyond the threshold.
                what: "terminated pods beyond the threshold, oldest first",
                threshold: 2,
                nodes: &["n1"],
                pods: vec![
                    pod("t1", "n1", "Succeeded", 30, false),
                    pod("t2", "n1", "Failed", 10, false),
                    pod("t3", "n1", "Succeeded", 20, false),
                    pod("t4", "n1", "Failed", 40, false),
                    pod("r", "n1", "Running", 1, false),
                ],
                at: &[20],
                want: vec![vec![("t2", false), ("t3", false)]],
            },
            Case {
                what: "evicted terminated pods go first, whatever their age",
                threshold: 1,
                nodes: &["n1"],
                pods: vec![
                    pod("old", "n1", "Failed", 10, false),
                    {
                        let mut p = pod("evicted", "n1", "Failed", 50, false);
                        p["status"]["reason"] = json!("Evicted");
                        p
                    },
                    pod("new", "n1", "Succeeded", 60, false),
                ],
                at: &[20],
                want: vec![vec![("evicted", false), ("old", false)]],
            },
            Case {
                // k8s: gcTerminating, oldest first; a Ready node's and a running pod stay.
                what: "terminating pods on a not-Ready out-of-service node",
                threshold: 0,
                nodes: &["lost!", "n1"],
                pods: vec![
                    pod("late", "lost", "Running", 20, true),
                    pod("early", "lost", "Running", 10, true),
                    pod("alive", "lost", "Running", 5, false),
                    pod("fine", "n1", "Running", 1, true),
                ],
                at: &[20],
                want: vec![vec![
                    ("early", true),
                    ("early", false),
                    ("late", true),
                    ("late", false),
                ]],
            },
            Case {
                what: "nothing beyond the threshold, nothing orphaned",
                threshold: 2,
                nodes: &["n1", "n2"],
                pods: vec![
                    pod("t1", "n1", "Succeeded", 30, false),
                    pod("r", "n2", "Running", 1, false),
                ],
                at: &[20, 80],
                want: vec![vec![], vec![]],
            },
        ];
        for c in cases {
            let got = passes(c.threshold, c.nodes, c.pods, c.at);
            let want: Vec<_> = c.want.iter().map(|w| names(w)).collect();
            assert_eq!(got, want, "{}", c.what);
        }
    }

    #[test]
    fn a_node_the_store_still_has_keeps_its_pods() {
        // k8s §3.6: after the quarantine an uncached GET confirms the node is gone; a cache
        // that is merely behind deletes nothing.
        let mut gc = PodGc::new(0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut out = Vec::new();
        for (resource, items) in [
            (res("nodes"), vec![]),
            (res("pods"), vec![pod("a", "n1", "Running", 1, false)]),
        ] {
            let input = Input::Listed {
                resource,
                items,
                revision: 1,
            };
            gc.step(Time::from_secs(0), input, &mut rng, &mut out);
        }
        // Missing since the pass at 20 s; the quarantine ends at 60 s.
        for t in [20, 40, 60] {
            gc.step(
                Time::from_secs(t),
                Input::Timer { id: 0 },
                &mut rng,
                &mut out,
            );
        }
        let get = out.iter().find_map(|e| match e {
            Effect::Api {
                id,
                op: ApiOp::Get { name, .. },
            } => Some((*id, name.clone())),
            _ => None,
        });
        let (id, name) = get.expect("a node check after the quarantine");
        assert_eq!(name, "n1");
        out.clear();
        let found = Input::ApiResult {
            id,
            result: Ok(std::sync::Arc::new(node("n1"))),
        };
        gc.step(Time::from_secs(61), found, &mut rng, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // Still missing from the cache: a fresh quarantine from the next pass (80 s).
        assert!(step(&mut gc, 80, Input::Timer { id: 0 }).is_empty());
        assert!(step(&mut gc, 100, Input::Timer { id: 0 }).is_empty());
        assert_eq!(
            step(&mut gc, 120, Input::Timer { id: 0 }),
            names(&[("a", true), ("a", false)])
        );
    }

    #[test]
    fn follows_pods_and_nodes_as_they_change() {
        let mut gc = PodGc::new(0);
        step(
            &mut gc,
            0,
            Input::Listed {
                resource: res("nodes"),
                items: vec![],
                revision: 1,
            },
        );
        let p = pod("a", "n1", "Running", 1, false);
        step(
            &mut gc,
            0,
            Input::Listed {
                resource: res("pods"),
                items: vec![p.clone()],
                revision: 1,
            },
        );
        let watched = |resource, type_, obj, revision| Input::Watched {
            resource,
            event: ApiEvent::new(type_, obj, revision),
        };
        assert!(
            step(&mut gc, 20, Input::Timer { id: 0 }).is_empty(),
            "n1 missing: quarantined"
        );
        // The node appears: the quarantine ends.
        step(
            &mut gc,
            21,
            watched(res("nodes"), EventType::Added, node("n1"), 2),
        );
        assert!(step(&mut gc, 40, Input::Timer { id: 0 }).is_empty());
        // It goes again: a new quarantine starts.
        step(
            &mut gc,
            41,
            watched(res("nodes"), EventType::Deleted, node("n1"), 3),
        );
        assert!(step(&mut gc, 60, Input::Timer { id: 0 }).is_empty());
        assert!(step(&mut gc, 80, Input::Timer { id: 0 }).is_empty());
        // A pod that is gone is not deleted again; one added meanwhile is.
        step(&mut gc, 81, watched(res("pods"), EventType::Deleted, p, 4));
        let b = pod("b", "n1", "Running", 81, false);
        step(&mut gc, 81, watched(res("pods"), EventType::Added, b, 5));
        assert_eq!(
            step(&mut gc, 100, Input::Timer { id: 0 }),
            names(&[("b", true), ("b", false)])
        );
        assert_eq!(gc.pods.indexed("n1").count(), 1);
    }
}
