//! The pod garbage collector: removes pods bound to nodes that no longer exist, unscheduled
//! pods that are being deleted, and terminated pods beyond the threshold.
//! k8s: pkg/controller/podgc/gc_controller.go (reference §3.6)

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use rand::RngCore;
use serde_json::json;

use super::cache::Cache;
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

fn res(plural: &str) -> &'static ResourceInfo {
    registry::by_plural("", plural).expect("registered")
}

pub struct PodGc {
    nodes: Cache<Node>,
    pods: Cache<Pod>,
    /// Missing node → when the collector first noticed it missing.
    missing_since: BTreeMap<String, Time>,
    threshold: usize,
    next_id: u64,
    armed: bool,
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
            pods: Cache::new(),
            missing_since: BTreeMap::new(),
            threshold,
            next_id: 1,
            armed: false,
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
            },
        });
    }

    fn gc(&mut self, now: Time, out: &mut Vec<Effect>) {
        let terminal = |p: &Pod| {
            matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        };
        // Decide first, from the cache; clone only the pods to delete.
        let mut doomed: Vec<(String, Option<&'static str>)> = Vec::new();
        let mut terminated: Vec<(Option<i128>, &str, &String)> = self
            .pods
            .iter()
            .filter(|(_, p)| terminal(p))
            .map(|(k, p)| {
                let created = p
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_nanosecond());
                (created, p.metadata.name.as_deref().unwrap_or(""), k)
            })
            .collect();
        if self.threshold > 0 && terminated.len() > self.threshold {
            terminated.sort();
            let n = terminated.len() - self.threshold;
            doomed.extend(
                terminated
                    .iter()
                    .take(n)
                    .map(|(_, _, k)| ((*k).clone(), None)),
            );
        }
        let mut seen_missing = BTreeMap::new();
        for (key, p) in self.pods.iter() {
            let Some(node) = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .filter(|n| !n.is_empty())
            else {
                if p.metadata.deletion_timestamp.is_some() {
                    doomed.push((key.clone(), None));
                }
                continue;
            };
            if self.nodes.get(node).is_some() {
                continue;
            }
            let since = *self.missing_since.get(node).unwrap_or(&now);
            seen_missing.insert(node.to_string(), since);
            if now.since(since) >= QUARANTINE {
                doomed.push((key.clone(), Some("DeletionByPodGC")));
            }
        }
        self.missing_since = seen_missing;
        for (key, reason) in doomed {
            if let Some(p) = self.pods.get_shared(&key) {
                self.force_delete(&p, reason, now, out);
            }
        }
    }
}

impl Component for PodGc {
    fn name(&self) -> &str {
        "pod-garbage-collector"
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![WatchSpec::all(res("nodes")), WatchSpec::all(res("pods"))]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed { .. } | Input::Watched { .. } => {
                self.nodes.feed(res("nodes"), &input);
                self.pods.feed(res("pods"), &input);
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
