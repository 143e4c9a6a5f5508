//! The scheduler, as a sans-IO state machine: pending pods go through the scheduling queue,
//! filter and score plugins pick a node, and a binding is posted (pods/binding). The pod is
//! assumed on that node until the binding's watch event confirms it. When no node fits,
//! DefaultPreemption may evict lower-priority pods and nominate a node; the pod waits in the
//! queue for the cluster events its rejecting plugins register.
//! k8s: pkg/scheduler/schedule_one.go (reference §5)

pub mod node_info;
pub mod plugins;
pub mod queue;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use rand::{Rng, RngCore};
use serde::Deserialize;
use serde_json::json;

use self::node_info::NodeInfo;
use self::plugins::default_preemption::{self, priority};
use self::plugins::{CycleState, Profile, Rejection, Snapshot};
use self::queue::{events, SchedulingQueue};
use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::{format_time, Part};
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::controllers::cache::{Cache, Change};
use crate::event_recorder::{event, reference, NORMAL, WARNING};
use crate::time::Time;

pub const SCHEDULER_NAME: &str = "default-scheduler";
const QUEUE_TIMER: u64 = 0;

fn pods() -> &'static ResourceInfo {
    registry::by_plural("", "pods").expect("registered")
}

fn nodes() -> &'static ResourceInfo {
    registry::by_plural("", "nodes").expect("registered")
}

/// k8s: numFeasibleNodesToFind — `percentage` is percentageOfNodesToScore, 0 (the default)
/// for adaptive: 50 − N/125, at least 5; never fewer than 100 nodes (§5.3).
pub fn feasible_nodes_to_find(n: usize, percentage: u32) -> usize {
    const MIN_FEASIBLE: usize = 100;
    const MIN_PERCENTAGE: i64 = 5;
    if n < MIN_FEASIBLE || percentage >= 100 {
        return n;
    }
    let pct = if percentage == 0 {
        (50 - (n / 125) as i64).max(MIN_PERCENTAGE) as usize
    } else {
        percentage as usize
    };
    (n * pct / 100).max(MIN_FEASIBLE)
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// A pod this scheduler should place.
fn pending(pod: &Pod) -> bool {
    let ours = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(SCHEDULER_NAME)
        == SCHEDULER_NAME;
    ours && node_name(pod).is_none() && pod.metadata.deletion_timestamp.is_none() && !terminal(pod)
}

/// Why a scheduling cycle found no node.
struct Failure {
    /// Rejection reason → nodes.
    reasons: BTreeMap<String, usize>,
    /// The events that may help (`queue::events`), from the rejecting plugins.
    wanted: u32,
    /// The node preemption made room on.
    nominate: Option<String>,
    /// Why preemption did not help (k8s: Diagnosis.PostFilterMsg).
    post_filter: Option<String>,
}

pub struct Scheduler {
    profile: Profile,
    pods: Cache<Pod>,
    /// Every node, sorted by name (found by binary search; iterated without collecting). Boxed
    /// so an insertion in the middle moves pointers, not NodeInfos.
    #[allow(clippy::vec_box)]
    nodes: Vec<Box<NodeInfo>>,
    /// Normalized image name → how many nodes have it (ImageLocality's spread).
    image_nodes: BTreeMap<String, usize>,
    /// Pods counted on the nodes that have pod (anti-)affinity terms.
    pods_with_affinity: usize,
    /// Pending pods nominated to a node by preemption: node → pod key → pod.
    nominated: BTreeMap<String, BTreeMap<String, Arc<Pod>>>,
    /// The nodes were listed (k8s: WaitForCacheSync before the first scheduling cycle).
    nodes_synced: bool,
    queue: SchedulingQueue,
    /// Pods placed but not yet seen bound: pod key → node.
    assumed: BTreeMap<String, String>,
    /// Binding requests in flight: id → (pod key, node).
    binding: BTreeMap<u64, (String, String)>,
    next_start: usize,
    next_id: u64,
    armed: Option<Time>,
    /// k8s: KubeSchedulerConfiguration percentageOfNodesToScore (0: adaptive).
    percentage_of_nodes_to_score: u32,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

/// The pod's `status.nominatedNodeName`.
fn nominated_node(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl Scheduler {
    pub fn new() -> Self {
        Scheduler {
            profile: Profile::default(),
            pods: Cache::new(),
            nodes: Vec::new(),
            image_nodes: BTreeMap::new(),
            pods_with_affinity: 0,
            nominated: BTreeMap::new(),
            nodes_synced: false,
            queue: SchedulingQueue::default(),
            assumed: BTreeMap::new(),
            binding: BTreeMap::new(),
            next_start: 0,
            next_id: 1,
            armed: None,
            percentage_of_nodes_to_score: 0,
        }
    }

    /// Sets percentageOfNodesToScore (0 is adaptive, 100 all nodes).
    pub fn with_percentage_of_nodes_to_score(mut self, percentage: u32) -> Self {
        self.percentage_of_nodes_to_score = percentage;
        self
    }

    fn node_index(&self, name: &str) -> Result<usize, usize> {
        self.nodes.binary_search_by(|n| n.name().cmp(name))
    }

    fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.node_index(name).ok().map(|i| &*self.nodes[i])
    }

    /// Counts a pod on a node (bound or assumed).
    fn add_to_node(&mut self, node: &str, key: &str, pod: &Arc<Pod>) {
        if let Ok(i) = self.node_index(node) {
            let info = &mut self.nodes[i];
            let before = info.pods_with_affinity;
            info.add_pod(key, pod);
            self.pods_with_affinity += info.pods_with_affinity - before;
        }
    }

    fn remove_from_node(&mut self, node: &str, key: &str) {
        if let Ok(i) = self.node_index(node) {
            let info = &mut self.nodes[i];
            let before = info.pods_with_affinity;
            info.remove_pod(key);
            self.pods_with_affinity -= before - info.pods_with_affinity;
        }
    }

    fn count_images(&mut self, info: &NodeInfo, sign: isize) {
        for image in info.images.keys() {
            let n = self.image_nodes.entry(image.clone()).or_default();
            *n = n.saturating_add_signed(sign);
            if *n == 0 {
                self.image_nodes.remove(image);
            }
        }
    }

    fn forget_nomination(&mut self, key: &str) {
        self.nominated.retain(|_, pods| {
            pods.remove(key);
            !pods.is_empty()
        });
    }

    fn on_pod(&mut self, change: Change<Pod>, now: Time) {
        let key = change.key.clone();
        // Undo what the old state contributed.
        if let Some(old) = &change.old {
            if let Some(n) = node_name(old) {
                self.remove_from_node(n, &key);
            }
            if nominated_node(old).is_some() {
                self.forget_nomination(&key);
            }
        }
        match &change.new {
            Some(pod) => {
                if let Some(n) = node_name(pod) {
                    self.queue.done(&key);
                    // A bound pod replaces its assumption.
                    if let Some(assumed_on) = self.assumed.remove(&key) {
                        self.remove_from_node(&assumed_on, &key);
                    }
                    if !terminal(pod) {
                        let old_labels = change
                            .old
                            .as_ref()
                            .filter(|o| node_name(o).is_some())
                            .map(|o| &o.metadata.labels);
                        self.add_to_node(n, &key, pod);
                        // k8s: an assigned pod added (or relabeled) may satisfy pending pods'
                        // affinity or spread.
                        match old_labels {
                            None => self
                                .queue
                                .move_all_to_active_or_backoff(now, events::POD_ADD),
                            Some(l) if *l != pod.metadata.labels => self
                                .queue
                                .move_all_to_active_or_backoff(now, events::POD_LABEL),
                            Some(_) => {}
                        }
                    } else {
                        // Resources freed.
                        self.queue
                            .move_all_to_active_or_backoff(now, events::POD_DELETE);
                    }
                } else if pending(pod) {
                    if let Some(n) = nominated_node(pod) {
                        self.nominated
                            .entry(n.to_string())
                            .or_default()
                            .insert(key.clone(), pod.clone());
                    }
                    let priority = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
                    self.queue.add_or_update(&key, priority, now);
                } else {
                    self.queue.delete(&key);
                }
            }
            None => {
                self.queue.delete(&key);
                if let Some(assumed_on) = self.assumed.remove(&key) {
                    self.remove_from_node(&assumed_on, &key);
                }
                if change.old.as_ref().is_some_and(|p| node_name(p).is_some()) {
                    // k8s: a deleted assigned pod frees resources.
                    self.queue
                        .move_all_to_active_or_backoff(now, events::POD_DELETE);
                }
            }
        }
    }

    fn on_node(&mut self, name: String, node: Option<Node>, now: Time) {
        match node {
            Some(node) => match self.node_index(&name) {
                Ok(i) => {
                    let old = &self.nodes[i].node;
                    // k8s: a node update is an event only for what changed (NodeLabelChange,
                    // NodeTaintChange incl. unschedulable, NodeAllocatableChange).
                    let mut event = 0;
                    if old.metadata.labels != node.metadata.labels {
                        event |= events::NODE_LABEL;
                    }
                    if old.spec != node.spec {
                        event |= events::NODE_TAINT;
                    }
                    if old.status.as_ref().map(|s| &s.allocatable)
                        != node.status.as_ref().map(|s| &s.allocatable)
                    {
                        event |= events::NODE_ALLOCATABLE;
                    }
                    let old_info = std::mem::replace(
                        &mut self.nodes[i],
                        Box::new(NodeInfo::new(Node::default())),
                    );
                    self.count_images(&old_info, -1);
                    let mut info = old_info;
                    info.update_node(node);
                    self.count_images(&info, 1);
                    self.nodes[i] = info;
                    if event != 0 {
                        self.queue.move_all_to_active_or_backoff(now, event);
                    }
                }
                Err(i) => {
                    let mut info = NodeInfo::new(node);
                    // Pods already bound there (seen before the node).
                    for (key, pod) in self.pods.iter_shared() {
                        if node_name(pod) == Some(name.as_str()) && !terminal(pod) {
                            info.add_pod(key, pod);
                        }
                    }
                    self.pods_with_affinity += info.pods_with_affinity;
                    self.count_images(&info, 1);
                    self.nodes.insert(i, Box::new(info));
                    self.queue
                        .move_all_to_active_or_backoff(now, events::NODE_ADD);
                }
            },
            None => {
                if let Ok(i) = self.node_index(&name) {
                    let info = self.nodes.remove(i);
                    self.pods_with_affinity -= info.pods_with_affinity;
                    self.count_images(&info, -1);
                    self.queue
                        .move_all_to_active_or_backoff(now, events::NODE_DELETE);
                }
            }
        }
    }

    /// Filters one node, with the resources of higher-or-equal priority pods nominated to it
    /// counted as if they were there (k8s: addNominatedPods in RunFilterPluginsWithNominatedPods).
    fn filter_node(
        &self,
        key: &str,
        pod: &Pod,
        state: &CycleState,
        info: &NodeInfo,
    ) -> Result<(), (Rejection, u32)> {
        let run = |info: &NodeInfo| {
            for f in &self.profile.filters {
                f.filter(pod, state, info).map_err(|r| (r, f.events()))?;
            }
            Ok(())
        };
        if let Some(noms) = self.nominated.get(info.name()) {
            let p = priority(pod);
            let others: Vec<_> = noms
                .iter()
                .filter(|(k, n)| k.as_str() != key && priority(n) >= p)
                .collect();
            if !others.is_empty() {
                let mut with = info.clone();
                for (k, n) in others {
                    with.add_pod(k, n);
                }
                run(&with)?;
            }
        }
        run(info)
    }

    /// One scheduling cycle for one pod.
    fn schedule_one(
        &mut self,
        key: String,
        now: Time,
        rng: &mut dyn RngCore,
        out: &mut Vec<Effect>,
    ) {
        let Some(pod) = self.pods.get_shared(&key).filter(|p| pending(p)) else {
            self.queue.delete(&key);
            return;
        };
        let mut state = CycleState::new(&pod);
        let snapshot = Snapshot {
            nodes: &self.nodes,
            pods_with_affinity: self.pods_with_affinity,
            image_nodes: &self.image_nodes,
        };
        let n = self.nodes.len();
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        // The events that may help, from the plugins that rejected (all without a node).
        let mut wanted = if n == 0 { events::ALL } else { 0 };
        // k8s: PreFilter — a rejection here holds for every node.
        for f in &self.profile.filters {
            if let Err(r) = f.pre_filter(&pod, &mut state, &snapshot) {
                reasons.insert(r.reason, n);
                let failure = Failure {
                    reasons,
                    wanted: f.events(),
                    nominate: None,
                    post_filter: None,
                };
                self.mark_unschedulable(&key, &pod, failure, now, out);
                return;
            }
        }
        let want = feasible_nodes_to_find(n, self.percentage_of_nodes_to_score);
        // Indexes into `nodes`.
        let mut feasible: Vec<usize> = Vec::new();
        // Nodes where preemption might help (k8s: not UnschedulableAndUnresolvable).
        let mut resolvable: Vec<usize> = Vec::new();
        let mut processed = 0;
        for i in 0..n {
            if feasible.len() >= want {
                break;
            }
            let at = (self.next_start + i) % n;
            processed += 1;
            match self.filter_node(&key, &pod, &state, &self.nodes[at]) {
                Err((r, plugin_events)) => {
                    if r.resolvable {
                        resolvable.push(at);
                    }
                    wanted |= plugin_events;
                    *reasons.entry(r.reason).or_default() += 1;
                }
                Ok(()) => feasible.push(at),
            }
        }
        if n > 0 {
            self.next_start = (self.next_start + processed) % n;
        }
        if feasible.is_empty() {
            // k8s: PostFilter — DefaultPreemption.
            let nominated = nominated_node(&pod).and_then(|name| self.node(name));
            let candidate = default_preemption::eligible(&pod, nominated).and_then(|()| {
                let potential: Vec<&NodeInfo> =
                    resolvable.iter().map(|&i| &*self.nodes[i]).collect();
                default_preemption::preempt(&self.profile.filters, &pod, &state, &potential, n, rng)
            });
            let (nominate, post_filter) = match candidate {
                Ok(c) => {
                    self.evict(&key, &c.node, &c.victims, out);
                    (Some(c.node), None)
                }
                Err(why) => (None, Some(why)),
            };
            let failure = Failure {
                reasons,
                wanted,
                nominate,
                post_filter,
            };
            self.mark_unschedulable(&key, &pod, failure, now, out);
            return;
        }
        // Score: each plugin over all feasible nodes, normalized, weighted, summed.
        let infos: Vec<&NodeInfo> = feasible.iter().map(|&i| &*self.nodes[i]).collect();
        let mut totals = vec![0i64; feasible.len()];
        for plugin in &self.profile.scores {
            plugin.pre_score(&pod, &mut state, &snapshot, &infos);
            let mut scores: Vec<i64> = infos
                .iter()
                .map(|n| plugin.score(&pod, &state, n))
                .collect();
            plugin.normalize(&state, &infos, &mut scores);
            for (t, s) in totals.iter_mut().zip(scores) {
                *t += s * plugin.weight();
            }
        }
        // k8s: selectHost — the best score, ties broken uniformly at random.
        let best = *totals.iter().max().expect("at least one feasible node");
        let mut chosen = 0;
        let mut ties = 0u32;
        for (i, t) in totals.iter().enumerate() {
            if *t == best {
                ties += 1;
                if rng.gen_range(0..ties) == 0 {
                    chosen = i;
                }
            }
        }
        let node = infos[chosen].name().to_string();
        // Assume, then bind.
        self.add_to_node(&node, &key, &pod);
        self.forget_nomination(&key);
        self.assumed.insert(key.clone(), node.clone());
        let id = self.next_id;
        self.next_id += 1;
        self.binding.insert(id, (key.clone(), node.clone()));
        out.push(Effect::Log {
            v: 2,
            message: format!("Successfully assigned {key} to {node}"),
        });
        out.push(Effect::Api {
            id,
            op: ApiOp::Bind {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                node,
            },
        });
    }

    /// k8s: prepareCandidate — each victim gets a DisruptionTarget condition and is deleted
    /// gracefully.
    fn evict(
        &mut self,
        key: &str,
        node: &str,
        victims: &[(String, Arc<Pod>)],
        out: &mut Vec<Effect>,
    ) {
        for (victim, pod) in victims {
            out.push(Effect::Log {
                v: 2,
                message: format!("Preempting {victim} on node {node} for {key}"),
            });
            // k8s: prepareCandidate records Preempted on each victim.
            out.push(event(
                reference("v1", "Pod", &pod.metadata),
                NORMAL,
                "Preempted",
                format!("Preempted by pod {key} on node {node}"),
            ));
            let namespace = pod.metadata.namespace.clone();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let mut body = serde_json::to_value(&**pod).expect("pods serialize");
            let mut conditions: Vec<serde_json::Value> = body["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conditions.retain(|c| c["type"] != "DisruptionTarget");
            conditions.push(json!({
                "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                "message": format!("{SCHEDULER_NAME}: preempting to accommodate a higher priority pod"),
            }));
            body["status"]["conditions"] = json!(conditions);
            for op in [
                ApiOp::Update {
                    resource: pods(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    body,
                    part: Part::Status,
                },
                ApiOp::Delete {
                    resource: pods(),
                    namespace,
                    name,
                    grace_period_seconds: None,
                    precondition_uid: pod.metadata.uid.clone(),
                    precondition_resource_version: None,
                    propagation_policy: None,
                },
            ] {
                let id = self.next_id;
                self.next_id += 1;
                out.push(Effect::Api { id, op });
            }
        }
    }

    fn mark_unschedulable(
        &mut self,
        key: &str,
        pod: &Pod,
        failure: Failure,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let n = self.nodes.len();
        let Failure {
            reasons,
            wanted,
            nominate,
            post_filter,
        } = failure;
        self.queue.unschedulable(key, now, wanted);
        // k8s: "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint ..."
        let mut parts: Vec<String> = reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
        parts.sort();
        let message = if n == 0 {
            "no nodes available to schedule pods".to_string()
        } else {
            // k8s: FitError.Error() — the filters' reasons, then PostFilter's message.
            let mut m = format!("0/{n} nodes are available: {}.", parts.join(", "));
            if let Some(why) = post_filter {
                m.push_str(&format!(" preemption: {why}"));
            }
            m
        };
        out.push(Effect::Log {
            v: 2,
            message: format!("Unable to schedule {key}: {message}"),
        });
        // k8s: handleSchedulingFailure records FailedScheduling on every failed attempt.
        out.push(event(
            reference("v1", "Pod", &pod.metadata),
            WARNING,
            "FailedScheduling",
            message.clone(),
        ));
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
            .map(|c| (c.status.clone(), c.message.clone()));
        let nominated = nominate.as_deref().or(nominated_node(pod));
        if current == Some(("False".into(), Some(message.clone())))
            && nominated == nominated_node(pod)
        {
            return;
        }
        let mut body = serde_json::to_value(pod).expect("pods serialize");
        let mut conditions: Vec<serde_json::Value> = body["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| c["type"] != "PodScheduled");
        conditions.push(json!({
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": format_time(now),
        }));
        body["status"]["conditions"] = json!(conditions);
        if let Some(n) = nominated {
            // k8s: the preemptor's status.nominatedNodeName
            body["status"]["nominatedNodeName"] = json!(n);
        }
        let id = self.next_id;
        self.next_id += 1;
        out.push(Effect::Api {
            id,
            op: ApiOp::Update {
                resource: pods(),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                body,
                part: Part::Status,
            },
        });
    }

    fn on_result(
        &mut self,
        id: u64,
        result: Result<std::sync::Arc<serde_json::Value>, crate::api::status::ApiError>,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let Some((key, node)) = self.binding.remove(&id) else {
            return; // a status write: nothing to do either way
        };
        match result {
            // Confirmed by the pod's watch event. k8s: the binding cycle records Scheduled.
            Ok(_) => {
                if let Some(pod) = self.pods.get(&key) {
                    out.push(event(
                        reference("v1", "Pod", &pod.metadata),
                        NORMAL,
                        "Scheduled",
                        format!("Successfully assigned {key} to {node}"),
                    ));
                }
            }
            Err(e) => {
                // k8s: a failed binding forgets the assumption and retries after backoff.
                if self.assumed.remove(&key).is_some() {
                    self.remove_from_node(&node, &key);
                }
                if e.code == 404 {
                    self.queue.delete(&key);
                } else {
                    self.queue.error(&key, now);
                }
            }
        }
    }

    fn pump(&mut self, now: Time, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        // k8s: nothing is scheduled before both informers have synced (a pod scheduled against
        // a half-listed cluster would find no node).
        if !(self.nodes_synced && self.pods.synced()) {
            return;
        }
        self.queue.advance(now);
        while let Some(key) = self.queue.pop() {
            self.schedule_one(key, now, rng, out);
        }
        let wake = self.queue.next_wakeup();
        crate::controllers::queue::arm_timer(&mut self.armed, wake, QUEUE_TIMER, out);
    }

    /// Where the scheduler believes a pod is (bound or assumed).
    pub fn placement(&self, key: &str) -> Option<String> {
        self.assumed
            .get(key)
            .cloned()
            .or_else(|| self.pods.get(key).and_then(node_name).map(String::from))
    }
}

impl Component for Scheduler {
    fn name(&self) -> &str {
        SCHEDULER_NAME
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::new(
            "system:kube-scheduler",
            &[crate::auth::user::ALL_AUTHENTICATED],
        )
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![WatchSpec::all(nodes()), WatchSpec::all(pods())]
    }

    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed {
                resource,
                items,
                revision,
            } => {
                if resource == pods() {
                    for c in self.pods.replace(&items, revision).unwrap_or_default() {
                        self.on_pod(c, now);
                    }
                } else if resource == nodes() {
                    self.nodes_synced = true;
                    let mut fresh = BTreeMap::new();
                    for item in &items {
                        if let Ok(node) = serde_json::from_value::<Node>(item.clone()) {
                            fresh.insert(node.metadata.name.clone().unwrap_or_default(), node);
                        }
                    }
                    let gone: Vec<String> = self
                        .nodes
                        .iter()
                        .map(|n| n.name().to_string())
                        .filter(|k| !fresh.contains_key(k))
                        .collect();
                    for name in gone {
                        self.on_node(name, None, now);
                    }
                    for (name, node) in fresh {
                        self.on_node(name, Some(node), now);
                    }
                }
            }
            Input::Watched { resource, event } => {
                if resource == pods() {
                    if let Ok(c) = self.pods.apply(&event) {
                        self.on_pod(c, now);
                    }
                } else if resource == nodes() {
                    let name = event.object["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let node = match event.type_ {
                        crate::apiserver::EventType::Deleted => None,
                        _ => Node::deserialize(&*event.object).ok(),
                    };
                    self.on_node(name, node, now);
                }
            }
            Input::Timer { .. } => self.armed = None,
            Input::ApiResult { id, result } => self.on_result(id, result, now, out),
            // No container runtime here.
            Input::RuntimeResult { .. } | Input::ContainerExited { .. } => {}
        }
        self.pump(now, rng, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feasible_node_sampling() {
        // k8s: all nodes below 100; pct = 50 − N/125 floored at 5; at least 100
        let cases = [
            (10, 0, 10),
            (99, 0, 99),
            (100, 0, 100),
            (500, 0, 230),
            (1000, 0, 420),
            (5000, 0, 500),
            (6000, 0, 300),
            // A configured percentage: at least 100 nodes, all at 100 %.
            (5000, 10, 500),
            (5000, 1, 100),
            (5000, 100, 5000),
            (50, 10, 50),
        ];
        for (n, pct, want) in cases {
            assert_eq!(feasible_nodes_to_find(n, pct), want, "{n} nodes at {pct} %");
        }
    }
}
