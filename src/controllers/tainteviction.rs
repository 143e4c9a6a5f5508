//! The taint eviction controller: pods on nodes with NoExecute taints they do not tolerate are
//! deleted at once; pods that tolerate them for a while are deleted when that time is up.
//! k8s: pkg/controller/tainteviction/taint_eviction.go (reference §3.4)

use crate::event_recorder::{event, reference, NORMAL};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use rand::RngCore;
use serde_json::json;

use super::cache::Cache;
use crate::api::registry::{self, ResourceInfo};
use crate::api::taints::tolerates;
use crate::apiserver::{format_time, Part};
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

const TIMER: u64 = 0;

fn res(plural: &str) -> &'static ResourceInfo {
    registry::by_plural("", plural).expect("registered")
}

fn no_execute(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

/// When a pod must go: `Some(Duration::ZERO)` now, `Some(d)` after `d`, `None` never.
pub fn eviction_delay(pod: &Pod, taints: &[Taint]) -> Option<Duration> {
    if taints.is_empty() {
        return None;
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut min: Option<i64> = None;
    for taint in taints {
        let used: Vec<_> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return Some(Duration::ZERO); // an untolerated NoExecute taint
        }
        // k8s: no tolerationSeconds on a used toleration means forever for that taint.
        for t in used {
            if let Some(secs) = t.toleration_seconds {
                min = Some(min.map_or(secs, |m| m.min(secs)));
            }
        }
    }
    min.map(|s| Duration::from_secs(s.max(0) as u64))
}

pub struct TaintEvictionController {
    nodes: Cache<Node>,
    pods: Cache<Pod>,
    /// Pod key → when it is to be deleted.
    scheduled: BTreeMap<String, Time>,
    /// Pods whose deletion was already sent.
    evicted: BTreeMap<String, ()>,
    /// Pod keys by node name.
    by_node: BTreeMap<String, BTreeSet<String>>,
    next_id: u64,
    armed: Option<Time>,
}

impl Default for TaintEvictionController {
    fn default() -> Self {
        Self::new()
    }
}

impl TaintEvictionController {
    pub fn new() -> Self {
        TaintEvictionController {
            nodes: Cache::new(),
            pods: Cache::new(),
            scheduled: BTreeMap::new(),
            evicted: BTreeMap::new(),
            by_node: BTreeMap::new(),
            next_id: 1,
            armed: None,
        }
    }

    /// Re-evaluates every pod; an earlier scheduled eviction is kept (k8s), a lifted taint
    /// cancels it.
    /// Schedules (or cancels) the eviction of one pod; an eviction already scheduled is only
    /// ever brought forward.
    fn evaluate(&mut self, key: &str, now: Time) {
        let due = self.pods.get(key).and_then(|pod| {
            if pod.metadata.deletion_timestamp.is_some() || self.evicted.contains_key(key) {
                return None;
            }
            let node = pod.spec.as_ref()?.node_name.as_ref()?;
            let taints = self.nodes.get(node).map(no_execute).unwrap_or_default();
            eviction_delay(pod, &taints).map(|d| now + d)
        });
        match due {
            Some(at) => {
                let at = self.scheduled.get(key).map_or(at, |s| (*s).min(at));
                self.scheduled.insert(key.to_string(), at);
            }
            None => {
                self.scheduled.remove(key);
            }
        }
    }

    fn index(&mut self, key: &str, old: Option<&Pod>, new: Option<&Pod>) {
        let node = |p: Option<&Pod>| {
            p.and_then(|p| p.spec.as_ref())
                .and_then(|s| s.node_name.clone())
        };
        let (was, is) = (node(old), node(new));
        if was != is {
            if let Some(n) = was {
                if let Some(set) = self.by_node.get_mut(&n) {
                    set.remove(key);
                }
            }
            if let Some(n) = is {
                self.by_node.entry(n).or_default().insert(key.to_string());
            }
        }
    }

    fn evict_due(&mut self, now: Time, out: &mut Vec<Effect>) {
        let due: Vec<String> = self
            .scheduled
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.scheduled.remove(&key);
            let Some(pod) = self.pods.get_shared(&key) else {
                continue;
            };
            self.evicted.insert(key.clone(), ());
            out.push(Effect::Log {
                v: 0,
                message: format!("TaintManagerEviction: marking {key} for deletion"),
            });
            out.push(event(
                reference("v1", "Pod", &pod.metadata),
                NORMAL,
                "TaintManagerEviction",
                format!("Marking for deletion Pod {key}"),
            ));
            // k8s: DisruptionTarget=True (DeletionByTaintManager), then a normal graceful delete.
            let mut body = serde_json::to_value(&*pod).expect("pods serialize");
            let mut conditions = body["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conditions.retain(|c| c["type"] != "DisruptionTarget");
            conditions.push(json!({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                                   "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": format_time(now)}));
            body["status"]["conditions"] = json!(conditions);
            body = crate::apiserver::unconditional(body);
            let (ns, name) = (
                pod.metadata.namespace.clone(),
                pod.metadata.name.clone().unwrap_or_default(),
            );
            for op in [
                ApiOp::Update {
                    resource: res("pods"),
                    namespace: ns.clone(),
                    name: name.clone(),
                    body,
                    part: Part::Status,
                },
                ApiOp::Delete {
                    resource: res("pods"),
                    namespace: ns,
                    name,
                    grace_period_seconds: None,
                    precondition_uid: pod.metadata.uid.clone(),
                    precondition_resource_version: None,
                    propagation_policy: None,
                },
            ] {
                self.next_id += 1;
                out.push(Effect::Api {
                    id: self.next_id,
                    op,
                });
            }
        }
    }
}

impl Component for TaintEvictionController {
    fn name(&self) -> &str {
        "taint-eviction-controller"
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::TAINT_EVICTION,
        )
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![WatchSpec::all(res("nodes")), WatchSpec::all(res("pods"))]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed { .. } | Input::Watched { .. } => {
                // k8s: the observation time counts, not the taint's timeAdded.
                let mut touched = BTreeSet::new();
                for change in self.nodes.feed(res("nodes"), &input).unwrap_or_default() {
                    let taints = |n: &Option<std::sync::Arc<Node>>| {
                        n.as_deref().map(no_execute).unwrap_or_default()
                    };
                    if taints(&change.old) != taints(&change.new) {
                        if let Some(keys) = self.by_node.get(&change.key) {
                            touched.extend(keys.iter().cloned());
                        }
                    }
                }
                for change in self.pods.feed(res("pods"), &input).unwrap_or_default() {
                    if change.new.is_none() {
                        self.evicted.remove(&change.key);
                    }
                    self.index(&change.key, change.old.as_deref(), change.new.as_deref());
                    touched.insert(change.key);
                }
                for key in touched {
                    self.evaluate(&key, now);
                }
            }
            Input::Timer { .. } => self.armed = None,
            _ => return,
        }
        self.evict_due(now, out);
        let next = self.scheduled.values().min().copied();
        if let Some(at) = next.filter(|_| next != self.armed) {
            self.armed = next;
            out.push(Effect::Timer { id: TIMER, at });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"spec": {"containers": [], "tolerations": tolerations}}))
            .unwrap()
    }

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        }
    }

    #[test]
    fn eviction_delays() {
        let unreachable = [taint("node.kubernetes.io/unreachable")];
        let cases = [
            (json!([]), Some(0)),
            (
                json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
                Some(300),
            ),
            (
                json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]),
                None,
            ),
            (
                json!([{"operator": "Exists", "tolerationSeconds": 60}, {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 20}]),
                Some(20),
            ),
            (json!([{"key": "other", "operator": "Exists"}]), Some(0)),
        ];
        for (tolerations, want) in cases {
            let got = eviction_delay(&pod(tolerations.clone()), &unreachable).map(|d| d.as_secs());
            assert_eq!(got, want, "{tolerations}");
        }
        assert_eq!(eviction_delay(&pod(json!([])), &[]), None);
    }
}
