//! The node lifecycle controller, as a sans-IO state machine: node health from heartbeats
//! (Lease renewals and Ready heartbeats), Ready=Unknown after the grace period, pods on a lost
//! node marked not ready, NoSchedule taints by condition, and rate-limited NoExecute taints per
//! zone with the full-disruption safeguard.
//! k8s: pkg/controller/nodelifecycle/node_lifecycle_controller.go (reference §3.2)

use crate::event_recorder::{event, reference, NORMAL, WARNING};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use rand::RngCore;
use serde_json::{json, Value};

use super::cache::Cache;
use crate::api::admission::{TAINT_NOT_READY, TAINT_UNREACHABLE};
use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::{format_time, Part};
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

/// k8s: --node-monitor-period 5s
pub const MONITOR_PERIOD: Duration = Duration::from_secs(5);
/// k8s: --node-monitor-grace-period 50s (v1.32+)
pub const MONITOR_GRACE: Duration = Duration::from_secs(50);
/// k8s: --node-startup-grace-period 60s
pub const STARTUP_GRACE: Duration = Duration::from_secs(60);
/// k8s: --node-eviction-rate 0.1 nodes/s per zone
pub const EVICTION_INTERVAL: Duration = Duration::from_secs(10);
/// k8s: --secondary-node-eviction-rate 0.01 (zones larger than 50 nodes in partial disruption)
pub const SECONDARY_EVICTION_INTERVAL: Duration = Duration::from_secs(100);
pub const LARGE_CLUSTER_THRESHOLD: usize = 50;
pub const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub const EXCLUDE_DISRUPTION_LABEL: &str = "node.kubernetes.io/exclude-disruption";

const MONITOR_TIMER: u64 = 0;

fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    registry::by_plural(group, plural).expect("registered")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

#[derive(Debug, Default)]
struct Health {
    /// The controller's own time of the last heartbeat it observed (k8s: probeTimestamp).
    probe: Time,
    heartbeat: Option<k8s_openapi::jiff::Timestamp>,
    renew: Option<k8s_openapi::jiff::Timestamp>,
    /// The Ready status the controller last saw (to detect True → not True).
    ready: Option<String>,
}

pub struct NodeLifecycleController {
    /// How long a node may go without a heartbeat before it is Unknown (MONITOR_GRACE unless
    /// an operator shortens it).
    monitor_grace: Duration,
    nodes: Cache<Node>,
    leases: Cache<Lease>,
    pods: Cache<Pod>,
    health: BTreeMap<String, Health>,
    /// Nodes waiting for their NoExecute taint, per zone, in arrival order.
    taint_queue: BTreeMap<String, Vec<(String, &'static str)>>,
    next_taint: BTreeMap<String, Time>,
    /// Nodes this pass just marked Unknown (the cache shows it only when the write comes back).
    marked_unknown: BTreeSet<String>,
    /// Nodes seen so far (each gets its RegisteredNode event once).
    registered: BTreeSet<String>,
    next_id: u64,
    armed: bool,
}

impl Default for NodeLifecycleController {
    fn default() -> Self {
        Self::new()
    }
}

fn condition<'a>(
    node: &'a Node,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn ready_status(node: &Node) -> &str {
    condition(node, "Ready").map_or("Unknown", |c| c.status.as_str())
}

fn zone_of(node: &Node) -> &str {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ZONE_LABEL))
        .map_or("", String::as_str)
}

fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == key && t.effect == effect))
}

impl NodeLifecycleController {
    pub fn new() -> Self {
        NodeLifecycleController {
            monitor_grace: MONITOR_GRACE,
            nodes: Cache::new(),
            leases: Cache::new(),
            pods: Cache::new(),
            health: BTreeMap::new(),
            taint_queue: BTreeMap::new(),
            next_taint: BTreeMap::new(),
            marked_unknown: BTreeSet::new(),
            registered: BTreeSet::new(),
            next_id: 1,
            armed: false,
        }
    }

    /// With another --node-monitor-grace-period (the startup grace stays at least as long).
    pub fn with_monitor_grace(grace: Duration) -> Self {
        NodeLifecycleController {
            monitor_grace: grace,
            ..Self::new()
        }
    }

    /// The Ready status as this controller knows it (its own pending Unknown included).
    fn ready_of<'a>(&self, node: &'a Node) -> &'a str {
        match node.metadata.name.as_deref() {
            Some(n) if self.marked_unknown.contains(n) => "Unknown",
            _ => ready_status(node),
        }
    }

    fn request(&mut self, out: &mut Vec<Effect>, op: ApiOp) {
        self.next_id += 1;
        out.push(Effect::Api {
            id: self.next_id,
            op,
        });
    }

    /// Writes `body` over the node (or its status), unconditionally: the controller owns the
    /// fields it changes.
    fn update_node(&mut self, out: &mut Vec<Effect>, node: &Node, body: Value, part: Part) {
        let op = ApiOp::Update {
            resource: res("", "nodes"),
            namespace: None,
            name: node.metadata.name.clone().unwrap_or_default(),
            body: crate::apiserver::unconditional(body),
            part,
        };
        self.request(out, op);
    }

    /// Refreshes the probe timestamps from what the cache shows now.
    fn observe(&mut self, now: Time) {
        let names: Vec<String> = self.nodes.iter().map(|(k, _)| k.clone()).collect();
        for name in &names {
            self.observe_node(name, now);
        }
        let known: BTreeSet<String> = names.into_iter().collect();
        self.health.retain(|k, _| known.contains(k));
    }

    /// Times a node's heartbeat or lease renewal when it is new to the controller.
    fn observe_node(&mut self, name: &str, now: Time) {
        let Some(node) = self.nodes.get(name) else {
            self.health.remove(name);
            return;
        };
        let heartbeat = condition(node, "Ready")
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        let renew = self
            .leases
            .get(&format!("kube-node-lease/{name}"))
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0);
        let h = self
            .health
            .entry(name.to_string())
            .or_insert_with(|| Health {
                probe: now,
                heartbeat,
                renew,
                ready: None,
            });
        // k8s: the controller's own clock, whenever it sees a newer heartbeat or renewal.
        if h.heartbeat != heartbeat || (renew.is_some() && h.renew != renew) {
            h.probe = now;
            h.heartbeat = heartbeat;
            h.renew = renew;
        }
    }

    /// k8s: monitorNodeHealth — one pass every 5 s.
    fn monitor(&mut self, now: Time, out: &mut Vec<Effect>) {
        // Heartbeats were timed as they arrived (`observe_node` on every change and list).
        // The cache does not change during a pass: one snapshot serves every step of it.
        let nodes: Vec<(String, Arc<Node>)> = self
            .nodes
            .iter_shared()
            .map(|(k, n)| (k.clone(), n.clone()))
            .collect();
        for (name, node) in &nodes {
            if !self.health.contains_key(name) {
                self.observe_node(name, now);
            }
            if !self.registered.contains(name) {
                self.registered.insert(name.clone());
                // k8s: RecordNodeEvent on a node the controller sees for the first time.
                out.push(event(
                    reference("v1", "Node", &node.metadata),
                    NORMAL,
                    "RegisteredNode",
                    format!("Node {name} event: Registered Node {name} in Controller"),
                ));
            }
            let h = &self.health[name];
            let grace = if condition(node, "Ready").is_none() {
                STARTUP_GRACE.max(self.monitor_grace)
            } else {
                self.monitor_grace
            };
            if now.since(h.probe) > grace && ready_status(node) != "Unknown" {
                out.push(Effect::Log {
                    v: 0,
                    message: format!("node {name} stopped posting status: Ready=Unknown"),
                });
                self.mark_unknown(node, now, out);
                self.marked_unknown.insert(name.clone());
            }
        }
        // Ready transitions since the last pass.
        for (name, node) in &nodes {
            let ready = self.ready_of(node);
            // (The string is copied only when it changes: most passes change nothing.)
            let was_ready = match self.health.get_mut(name) {
                Some(h) => {
                    let was = h.ready.as_deref() == Some("True");
                    if h.ready.as_deref() != Some(ready) {
                        h.ready = Some(ready.to_string());
                    }
                    was
                }
                None => false,
            };
            if was_ready && ready != "True" {
                out.push(Effect::Log {
                    v: 0,
                    message: format!("NodeNotReady: node {name} status is now {ready}"),
                });
                // k8s: RecordNodeStatusChange
                out.push(event(
                    reference("v1", "Node", &node.metadata),
                    NORMAL,
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                ));
                self.mark_pods_not_ready(name, now, out);
            }
            self.no_schedule_taints(node, out);
        }
        self.no_execute_taints(&nodes, now, out);
        self.marked_unknown.clear();
    }

    fn mark_unknown(&mut self, node: &Node, now: Time, out: &mut Vec<Effect>) {
        let mut body = serde_json::to_value(node).expect("nodes serialize");
        let mut conditions: Vec<Value> = body["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for type_ in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
            match conditions.iter_mut().find(|c| c["type"] == type_) {
                Some(c) if c["status"] != "Unknown" => {
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = format_time(now);
                }
                Some(_) => {}
                None => conditions.push(json!({
                    "type": type_, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.", "lastTransitionTime": format_time(now),
                    "lastHeartbeatTime": format_time(now),
                })),
            }
        }
        body["status"]["conditions"] = json!(conditions);
        self.update_node(out, node, body, Part::Status);
    }

    /// k8s: MarkPodsNotReady — every pod on the node gets Ready=False.
    fn mark_pods_not_ready(&mut self, node: &str, now: Time, out: &mut Vec<Effect>) {
        let pods: Vec<Pod> = self
            .pods
            .iter()
            .filter(|(_, p)| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .map(|(_, p)| p.clone())
            .collect();
        for pod in pods {
            let mut body = serde_json::to_value(&pod).expect("pods serialize");
            let Some(conditions) = body["status"]["conditions"].as_array_mut() else {
                continue;
            };
            let mut changed = false;
            for c in conditions
                .iter_mut()
                .filter(|c| c["type"] == "Ready" && c["status"] == "True")
            {
                c["status"] = json!("False");
                c["lastTransitionTime"] = format_time(now);
                changed = true;
            }
            if changed {
                // k8s: MarkPodsNotReady records this on each pod.
                out.push(event(
                    reference("v1", "Pod", &pod.metadata),
                    WARNING,
                    "NodeNotReady",
                    "Node is not ready".into(),
                ));
                body = crate::apiserver::unconditional(body);
                let op = ApiOp::Update {
                    resource: res("", "pods"),
                    namespace: pod.metadata.namespace.clone(),
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    body,
                    part: Part::Status,
                };
                self.request(out, op);
            }
        }
    }

    /// Writes `node` with its taints of `effect` replaced by `want` (keys), if they differ.
    fn set_taints(
        &mut self,
        node: &Node,
        effect: &str,
        want: &[&str],
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let managed = [TAINT_NOT_READY, TAINT_UNREACHABLE];
        let current: &[k8s_openapi::api::core::v1::Taint] = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default();
        let have: BTreeSet<&str> = current
            .iter()
            .filter(|t| t.effect == effect && managed.contains(&t.key.as_str()))
            .map(|t| t.key.as_str())
            .collect();
        let wanted: BTreeSet<&str> = want.iter().copied().collect();
        if have == wanted {
            return;
        }
        let mut taints: Vec<Value> = current
            .iter()
            .filter(|t| !(t.effect == effect && managed.contains(&t.key.as_str())))
            .map(|t| serde_json::to_value(t).expect("taints serialize"))
            .collect();
        for key in want {
            let mut t = json!({"key": key, "effect": effect});
            if effect == "NoExecute" {
                t["timeAdded"] = format_time(now);
            }
            taints.push(t);
        }
        let mut body = serde_json::to_value(node).expect("nodes serialize");
        body["spec"]["taints"] = json!(taints);
        self.update_node(out, node, body, Part::Main);
    }

    /// k8s: doNoScheduleTaintingPass (TaintNodesByCondition), not rate-limited.
    fn no_schedule_taints(&mut self, node: &Node, out: &mut Vec<Effect>) {
        let want: &[&str] = match self.ready_of(node) {
            "False" => &[TAINT_NOT_READY],
            "Unknown" if condition(node, "Ready").is_some() => &[TAINT_UNREACHABLE],
            _ => &[],
        };
        self.set_taints(node, "NoSchedule", want, Time::ZERO, out);
    }

    fn zone_states(&self, nodes: &[(String, Arc<Node>)]) -> BTreeMap<String, (ZoneState, usize)> {
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new(); // (ready, not ready)
        for (_, node) in nodes {
            if node
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(EXCLUDE_DISRUPTION_LABEL))
            {
                continue;
            }
            let zone = zone_of(node);
            if !counts.contains_key(zone) {
                counts.insert(zone.to_string(), (0, 0));
            }
            let e = counts.get_mut(zone).expect("present");
            if self.ready_of(node) == "True" {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        counts
            .into_iter()
            .map(|(zone, (ready, not_ready))| {
                // k8s: ComputeZoneState
                let state = if ready == 0 && not_ready > 0 {
                    ZoneState::FullDisruption
                } else if not_ready > 2
                    && not_ready as f64 / (ready + not_ready) as f64 >= UNHEALTHY_ZONE_THRESHOLD
                {
                    ZoneState::PartialDisruption
                } else {
                    ZoneState::Normal
                };
                (zone, (state, ready + not_ready))
            })
            .collect()
    }

    /// k8s: processTaintBaseEviction + doNoExecuteTaintingPass with per-zone rate limits.
    fn no_execute_taints(
        &mut self,
        nodes: &[(String, Arc<Node>)],
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let zones = self.zone_states(nodes);
        let all_down =
            !zones.is_empty() && zones.values().all(|(s, _)| *s == ZoneState::FullDisruption);
        for (name, node) in nodes {
            let zone = zone_of(node);
            let ready = self.ready_of(node);
            if !self.taint_queue.contains_key(zone) {
                self.taint_queue.insert(zone.to_string(), Vec::new());
            }
            let queue = self.taint_queue.get_mut(zone).expect("present");
            if all_down || ready == "True" {
                // k8s: healthy nodes, or a control plane cut off from every zone: no NoExecute taints.
                queue.retain(|(n, _)| n != name);
                self.set_taints(node, "NoExecute", &[], now, out);
                continue;
            }
            let key = if ready == "False" {
                TAINT_NOT_READY
            } else {
                TAINT_UNREACHABLE
            };
            let other = if key == TAINT_NOT_READY {
                TAINT_UNREACHABLE
            } else {
                TAINT_NOT_READY
            };
            if has_taint(node, other, "NoExecute") {
                // k8s: swapping not-ready and unreachable is immediate.
                self.set_taints(node, "NoExecute", &[key], now, out);
            } else if !has_taint(node, key, "NoExecute") && !queue.iter().any(|(n, _)| n == name) {
                queue.push((name.clone(), key));
            }
        }
        if all_down {
            return;
        }
        // Taint at most one queued node per zone per interval.
        let zone_names: Vec<String> = self.taint_queue.keys().cloned().collect();
        for zone in zone_names {
            let interval = match zones.get(&zone) {
                Some((ZoneState::PartialDisruption, size)) if *size > LARGE_CLUSTER_THRESHOLD => {
                    Some(SECONDARY_EVICTION_INTERVAL)
                }
                Some((ZoneState::PartialDisruption, _)) => None, // k8s: small zones stop tainting
                _ => Some(EVICTION_INTERVAL),
            };
            let Some(interval) = interval else { continue };
            if self.next_taint.get(&zone).is_some_and(|t| *t > now) {
                continue;
            }
            let queue = self.taint_queue.get_mut(&zone).expect("present");
            if queue.is_empty() {
                continue;
            }
            let (name, key) = queue.remove(0);
            if let Some(node) = self.nodes.get_shared(&name) {
                out.push(Effect::Log {
                    v: 2,
                    message: format!("tainting node {name} with {key}:NoExecute"),
                });
                self.set_taints(&node, "NoExecute", &[key], now, out);
                self.next_taint.insert(zone, now + interval);
            }
        }
    }
}

impl Component for NodeLifecycleController {
    fn name(&self) -> &str {
        "node-lifecycle-controller"
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::NODE,
        )
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![
            WatchSpec::all(res("", "nodes")),
            WatchSpec::all(res("coordination.k8s.io", "leases")),
            WatchSpec::all(res("", "pods")),
        ]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed { .. } | Input::Watched { .. } => {
                let watched = matches!(input, Input::Watched { .. });
                let node_changes = self.nodes.feed(res("", "nodes"), &input);
                let lease_changes = self
                    .leases
                    .feed(res("coordination.k8s.io", "leases"), &input);
                self.pods.feed(res("", "pods"), &input);
                if !watched {
                    self.observe(now);
                } else {
                    let mut seen = Vec::new();
                    // k8s: NoSchedule taints follow node conditions on every node update.
                    for change in node_changes.unwrap_or_default() {
                        seen.push(change.key.clone());
                        if let Some(node) = change.new {
                            self.no_schedule_taints(&node, out);
                        }
                    }
                    for change in lease_changes.unwrap_or_default() {
                        if let Some(name) = change.key.strip_prefix("kube-node-lease/") {
                            seen.push(name.to_string());
                        }
                    }
                    // Heartbeats are timed when seen, not at the next pass.
                    for name in seen {
                        self.observe_node(&name, now);
                    }
                }
            }
            Input::Timer { id: MONITOR_TIMER } => {
                self.monitor(now, out);
                out.push(Effect::Timer {
                    id: MONITOR_TIMER,
                    at: now + MONITOR_PERIOD,
                });
            }
            _ => {}
        }
        if !self.armed {
            self.armed = true;
            out.push(Effect::Timer {
                id: MONITOR_TIMER,
                at: now + MONITOR_PERIOD,
            });
        }
    }
}
