//! The ReplicaSet controller, as a sans-IO state machine.
//!
//! k8s: pkg/controller/replicaset/replica_set.go and pkg/controller/controller_utils.go (v1.33);
//! the rules are in reference/k8s-semantics.md §1. A sync of one ReplicaSet runs in phases,
//! each waiting for the answers to the requests it made: claim (adopt orphans after an
//! uncached GET, release pods that no longer match), manage replicas (slow-start creates or
//! ranked deletes, bounded by expectations), then write status.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rand::RngCore;
use serde_json::{json, Value};

use super::cache::{Cache, Change};
use super::ownership::{adopted, claim_update, controller_ref, released};
use super::queue::WorkQueue;
use crate::api::registry::{self, ResourceInfo};
use crate::api::selector::from_label_selector;
use crate::apiserver::Part;
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::event_recorder::{event, reference, NORMAL, WARNING};
use crate::time::Time;

/// k8s: BurstReplicas — the most creates or deletes one sync issues.
pub const BURST_REPLICAS: usize = 500;
/// k8s: ExpectationsTimeout
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);
/// k8s: --concurrent-replicaset-syncs
pub const WORKERS: usize = 5;
/// k8s: PodDeletionCost annotation
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

const QUEUE_TIMER: u64 = 0;

/// What the controller manages: ReplicaSets, or ReplicationControllers through a conversion
/// (k8s: pkg/controller/replication runs the ReplicaSet controller over an adapter that turns
/// each ReplicationController into a ReplicaSet and back, conversion.go).
#[derive(Debug)]
pub struct Flavor {
    group: &'static str,
    plural: &'static str,
    api_version: &'static str,
    kind: &'static str,
    name: &'static str,
}

pub const REPLICA_SETS: Flavor = Flavor {
    group: "apps",
    plural: "replicasets",
    api_version: "apps/v1",
    kind: "ReplicaSet",
    name: "replicaset-controller",
};

pub const REPLICATION_CONTROLLERS: Flavor = Flavor {
    group: "",
    plural: "replicationcontrollers",
    api_version: "v1",
    kind: "ReplicationController",
    name: "replication-controller",
};

impl Flavor {
    fn resource(&self) -> &'static ResourceInfo {
        registry::by_plural(self.group, self.plural).expect("registered")
    }

    fn converts(&self) -> bool {
        self.kind != "ReplicaSet"
    }

    /// The object as the ReplicaSet the controller works on.
    fn to_replica_set(&self, mut obj: Value) -> Value {
        if self.converts() {
            obj["apiVersion"] = json!("apps/v1");
            obj["kind"] = json!("ReplicaSet");
            // k8s: an RC's selector is a label map (defaulted to the template's labels).
            let labels = match obj["spec"]["selector"].take() {
                Value::Object(m) if !m.is_empty() => Value::Object(m),
                _ => obj["spec"]["template"]["metadata"]["labels"].clone(),
            };
            obj["spec"]["selector"] = json!({ "matchLabels": labels });
        }
        obj
    }

    /// A ReplicaSet the controller wrote, back in this flavor's kind.
    fn to_own_kind(&self, mut obj: Value) -> Value {
        if self.converts() {
            obj["apiVersion"] = json!(self.api_version);
            obj["kind"] = json!(self.kind);
            let labels = obj["spec"]["selector"]["matchLabels"].take();
            obj["spec"]["selector"] = labels;
        }
        obj
    }

    fn convert_input(&self, input: Input) -> Input {
        if !self.converts() {
            return input;
        }
        match input {
            Input::Listed {
                resource,
                items,
                revision,
            } if resource == self.resource() => Input::Listed {
                resource,
                items: items.into_iter().map(|i| self.to_replica_set(i)).collect(),
                revision,
            },
            Input::Watched { resource, event } if resource == self.resource() => {
                let object = self.to_replica_set((*event.object).clone());
                Input::Watched {
                    resource,
                    event: crate::apiserver::ApiEvent::new(event.type_, object, event.revision),
                }
            }
            other => other,
        }
    }
}

fn pods() -> &'static ResourceInfo {
    registry::by_plural("", "pods").expect("registered")
}

fn ts_nanos(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i128 {
    t.0.as_nanosecond()
}

/// The controller reference of an object (the owner with `controller: true`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// The informer index of objects by their controller's uid ("" for orphans), so a sync looks
/// at its own objects and the orphans rather than at the whole namespace.
pub fn controller_index(meta: &ObjectMeta) -> String {
    match controller_of(meta) {
        // No controller has an empty uid; such an object is nobody's orphan either.
        Some(r) if r.uid.is_empty() => "(controller without uid)".into(),
        Some(r) => r.uid.clone(),
        None => String::new(),
    }
}

fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// k8s: FilterActivePods — not terminal and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

/// The Ready condition's (status, lastTransitionTime in ns).
fn ready(pod: &Pod) -> (bool, Option<i128>) {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| {
            (
                c.status == "True",
                c.last_transition_time.as_ref().map(ts_nanos),
            )
        })
        .unwrap_or((false, None))
}

/// k8s: available = ready for at least minReadySeconds.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now_ns: i128) -> bool {
    match ready(pod) {
        (true, Some(since)) => since + i128::from(min_ready_seconds) * 1_000_000_000 <= now_ns,
        (true, None) => min_ready_seconds == 0,
        _ => false,
    }
}

#[derive(Debug, Default)]
struct Expectations {
    add: i64,
    /// Pod keys whose deletion is expected (UID-tracking expectations).
    del: BTreeSet<String>,
    at: Time,
}

/// What a request was for, so its answer can be routed.
#[derive(Debug)]
enum Purpose {
    CanAdopt,
    Claim,
    Create,
    Delete { pod: String },
    Status,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the uncached GET that confirms the ReplicaSet may adopt.
    CheckingAdoption,
    Claiming,
    Creating,
    Deleting,
    WritingStatus,
}

#[derive(Debug)]
struct Sync {
    phase: Phase,
    outstanding: usize,
    /// Pods the claim phase adopted (their updated objects).
    adopted: Vec<Arc<Pod>>,
    /// Keys of pods released by the claim phase.
    released: BTreeSet<String>,
    /// Orphans waiting for the adoption check.
    orphans: Vec<Arc<Pod>>,
    to_release: Vec<Arc<Pod>>,
    /// Slow start: creates left after the current batch, and the current batch size.
    remaining: usize,
    batch: usize,
    batch_failed: bool,
    /// The first manage error: `FailedCreate` or `FailedDelete` and its message.
    failure: Option<(&'static str, String)>,
    /// Pods that count as this ReplicaSet's, for status (claimed at the start of the sync).
    owned: Vec<Arc<Pod>>,
}

pub struct ReplicaSetController {
    flavor: &'static Flavor,
    rs: Cache<ReplicaSet>,
    pods: Cache<Pod>,
    queue: WorkQueue,
    expectations: BTreeMap<String, Expectations>,
    syncs: BTreeMap<String, Sync>,
    requests: BTreeMap<u64, (String, Purpose)>,
    next_id: u64,
    armed: Option<Time>,
}

impl Default for ReplicaSetController {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplicaSetController {
    pub fn new() -> Self {
        Self::of(&REPLICA_SETS)
    }

    /// The replication manager: the same controller for ReplicationControllers.
    pub fn for_replication_controllers() -> Self {
        Self::of(&REPLICATION_CONTROLLERS)
    }

    fn of(flavor: &'static Flavor) -> Self {
        ReplicaSetController {
            flavor,
            rs: Cache::new(),
            // Indexed by controller uid ("" for orphans): a sync looks at its own pods and the
            // orphans, not at every pod of the namespace.
            pods: Cache::with_index(|p| controller_index(&p.metadata)),
            queue: WorkQueue::new(),
            expectations: BTreeMap::new(),
            syncs: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_id: 1,
            armed: None,
        }
    }

    fn request(&mut self, out: &mut Vec<Effect>, key: &str, purpose: Purpose, op: ApiOp) {
        let id = self.next_id;
        self.next_id += 1;
        self.requests.insert(id, (key.to_string(), purpose));
        out.push(Effect::Api { id, op });
    }

    // --- expectations (k8s: ControllerExpectations / UIDTrackingControllerExpectations) ---

    fn satisfied(&self, key: &str, now: Time) -> bool {
        match self.expectations.get(key) {
            None => true,
            Some(e) => (e.add <= 0 && e.del.is_empty()) || now.since(e.at) > EXPECTATIONS_TIMEOUT,
        }
    }

    fn creation_observed(&mut self, key: &str) {
        if let Some(e) = self.expectations.get_mut(key) {
            e.add -= 1;
        }
    }

    fn deletion_observed(&mut self, key: &str, pod: &str) {
        if let Some(e) = self.expectations.get_mut(key) {
            e.del.remove(pod);
        }
    }

    // --- event handlers (k8s: addPod / updatePod / deletePod / RS handlers) ---

    /// The ReplicaSet a controller reference points to, if it exists with that UID.
    fn resolve(&self, namespace: &str, r: &OwnerReference) -> Option<String> {
        if r.kind != self.flavor.kind {
            return None;
        }
        let key = format!("{namespace}/{}", r.name);
        let rs = self.rs.get(&key)?;
        (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(key)
    }

    /// Every ReplicaSet in the pod's namespace whose selector matches it (orphan routing).
    fn matching(&self, pod: &Pod) -> Vec<String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        self.rs
            .in_namespace(ns)
            .filter(|(_, rs)| {
                rs.spec
                    .as_ref()
                    .and_then(|s| from_label_selector(&s.selector).ok())
                    .is_some_and(|sel| !sel.is_empty() && sel.matches(&labels))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn on_pod(&mut self, change: Change<Pod>, now: Time) {
        let ns = |p: &Pod| p.metadata.namespace.clone().unwrap_or_default();
        match (&change.old, &change.new) {
            (None, Some(pod)) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    // Seen for the first time already being deleted: a deletion.
                    if let Some(key) =
                        controller_of(&pod.metadata).and_then(|r| self.resolve(&ns(pod), r))
                    {
                        self.deletion_observed(&key, &change.key);
                        self.queue.add(&key);
                    }
                    return;
                }
                match controller_of(&pod.metadata) {
                    Some(r) => {
                        if let Some(key) = self.resolve(&ns(pod), r) {
                            self.creation_observed(&key);
                            self.queue.add(&key);
                        }
                    }
                    None => {
                        for key in self.matching(pod) {
                            self.queue.add(&key);
                        }
                    }
                }
            }
            (Some(old), Some(new)) => {
                let labels_changed = old.metadata.labels != new.metadata.labels;
                if new.metadata.deletion_timestamp.is_some()
                    && old.metadata.deletion_timestamp.is_none()
                {
                    // k8s: a pod being deleted counts as deleted at once, so its replacement
                    // need not wait for the kubelet.
                    if let Some(key) =
                        controller_of(&new.metadata).and_then(|r| self.resolve(&ns(new), r))
                    {
                        self.deletion_observed(&key, &change.key);
                    }
                }
                let old_ref = controller_of(&old.metadata).cloned();
                let new_ref = controller_of(&new.metadata).cloned();
                if old_ref != new_ref {
                    if let Some(key) = old_ref.and_then(|r| self.resolve(&ns(old), &r)) {
                        self.queue.add(&key);
                    }
                }
                match new_ref.and_then(|r| self.resolve(&ns(new), &r)) {
                    Some(key) => {
                        self.queue.add(&key);
                        // k8s: requeue once the pod has been ready for minReadySeconds.
                        let min_ready = self
                            .rs
                            .get(&key)
                            .and_then(|rs| rs.spec.as_ref())
                            .and_then(|s| s.min_ready_seconds)
                            .unwrap_or(0);
                        if !ready(old).0 && ready(new).0 && min_ready > 0 {
                            self.queue.add_after(
                                &key,
                                Duration::from_secs(min_ready as u64 + 1),
                                now,
                            );
                        }
                    }
                    None if labels_changed || old_ref_gone(old, new) => {
                        for key in self.matching(new) {
                            self.queue.add(&key);
                        }
                    }
                    None => {}
                }
            }
            (Some(pod), None) => {
                if let Some(key) =
                    controller_of(&pod.metadata).and_then(|r| self.resolve(&ns(pod), r))
                {
                    self.deletion_observed(&key, &change.key);
                    self.queue.add(&key);
                }
            }
            (None, None) => {}
        }
    }

    fn on_rs(&mut self, change: Change<ReplicaSet>) {
        if change.new.is_none() {
            self.expectations.remove(&change.key);
        }
        self.queue.add(&change.key);
    }

    // --- the sync, phase by phase ---

    fn start(&mut self, key: String, now: Time, out: &mut Vec<Effect>) {
        let Some(rs) = self.rs.get_shared(&key) else {
            // Deleted: forget it.
            self.expectations.remove(&key);
            self.finish(&key, false, now, out);
            return;
        };
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let selector = rs
            .spec
            .as_ref()
            .and_then(|s| from_label_selector(&s.selector).ok());
        let deleting = rs.metadata.deletion_timestamp.is_some();
        // k8s: claimPods — keep matching owned pods, release non-matching, adopt matching orphans.
        let (mut owned, mut orphans, mut to_release) = (Vec::new(), Vec::new(), Vec::new());
        let no_labels = BTreeMap::new();
        let matches = |pod: &Pod| {
            let labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
            selector
                .as_ref()
                .is_some_and(|s| !s.is_empty() && s.matches(labels))
        };
        // Another controller's pods are not looked at.
        if !uid.is_empty() {
            for (_, pod) in self.pods.indexed_in_namespace(&uid, &ns) {
                if !is_active(pod) {
                    continue;
                }
                if matches(pod) {
                    owned.push(pod.clone());
                } else if !deleting {
                    to_release.push(pod.clone());
                }
            }
        }
        if !deleting {
            for (_, pod) in self.pods.indexed_in_namespace("", &ns) {
                if is_active(pod) && matches(pod) {
                    orphans.push(pod.clone());
                }
            }
        }
        let mut sync = Sync {
            phase: Phase::Claiming,
            outstanding: 0,
            adopted: Vec::new(),
            released: BTreeSet::new(),
            orphans,
            to_release,
            remaining: 0,
            batch: 0,
            batch_failed: false,
            failure: None,
            owned,
        };
        if !sync.orphans.is_empty() {
            // k8s: canAdopt — one uncached GET confirms the ReplicaSet is still this one.
            sync.phase = Phase::CheckingAdoption;
            sync.outstanding = 1;
            self.syncs.insert(key.clone(), sync);
            let op = ApiOp::Get {
                resource: self.flavor.resource(),
                namespace: Some(ns),
                name: rs.metadata.name.clone().unwrap_or_default(),
            };
            self.request(out, &key, Purpose::CanAdopt, op);
            return;
        }
        self.syncs.insert(key.clone(), sync);
        self.claim(&key, false, now, out);
    }

    /// Sends the adoption (if allowed) and release updates.
    fn claim(&mut self, key: &str, adopt: bool, now: Time, out: &mut Vec<Effect>) {
        let Some(rs) = self.rs.get_shared(key) else {
            self.finish(key, false, now, out);
            return;
        };
        let sync = self.syncs.get_mut(key).expect("sync in progress");
        sync.phase = Phase::Claiming;
        let orphans = if adopt {
            std::mem::take(&mut sync.orphans)
        } else {
            Vec::new()
        };
        let releases = std::mem::take(&mut sync.to_release);
        let mut ops = Vec::new();
        for pod in orphans {
            let owner = controller_ref(
                self.flavor.api_version,
                self.flavor.kind,
                &rs.metadata.name,
                &rs.metadata.uid,
            );
            ops.push(adopted(&*pod, owner));
        }
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        for pod in releases {
            sync.released.insert(key_of(&pod.metadata));
            ops.push(released(&*pod, &uid));
        }
        sync.outstanding = ops.len();
        if ops.is_empty() {
            self.manage(key, now, out);
            return;
        }
        for body in ops {
            self.request(out, key, Purpose::Claim, claim_update(pods(), body));
        }
    }

    /// k8s: manageReplicas.
    fn manage(&mut self, key: &str, now: Time, out: &mut Vec<Effect>) {
        let Some(rs) = self.rs.get_shared(key) else {
            self.finish(key, false, now, out);
            return;
        };
        let satisfied = self.satisfied(key, now);
        let sync = self.syncs.get_mut(key).expect("sync in progress");
        sync.owned.append(&mut sync.adopted);
        let want = rs
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0) as usize;
        let have = sync.owned.len();
        if !satisfied || rs.metadata.deletion_timestamp.is_some() || have == want {
            self.write_status(key, now, out);
            return;
        }
        if have < want {
            let n = (want - have).min(BURST_REPLICAS);
            self.expectations.insert(
                key.to_string(),
                Expectations {
                    add: n as i64,
                    del: BTreeSet::new(),
                    at: now,
                },
            );
            let sync = self.syncs.get_mut(key).expect("sync in progress");
            sync.phase = Phase::Creating;
            sync.remaining = n;
            sync.batch = 0;
            self.next_batch(key, now, out);
        } else {
            let n = (have - want).min(BURST_REPLICAS);
            let victims = self.pods_to_delete(&rs, &self.syncs[key].owned, n, now);
            let keys: BTreeSet<String> = victims.iter().map(|p| key_of(&p.metadata)).collect();
            self.expectations.insert(
                key.to_string(),
                Expectations {
                    add: 0,
                    del: keys,
                    at: now,
                },
            );
            let sync = self.syncs.get_mut(key).expect("sync in progress");
            sync.phase = Phase::Deleting;
            sync.outstanding = victims.len();
            for pod in victims {
                let pod_key = key_of(&pod.metadata);
                let op = ApiOp::Delete {
                    resource: pods(),
                    namespace: pod.metadata.namespace.clone(),
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    grace_period_seconds: None,
                    precondition_uid: None,
                    precondition_resource_version: None,
                    propagation_policy: None,
                };
                self.request(out, key, Purpose::Delete { pod: pod_key }, op);
            }
        }
    }

    /// k8s: slowStartBatch — batches of 1, 2, 4, ...; a failed batch skips the rest.
    fn next_batch(&mut self, key: &str, now: Time, out: &mut Vec<Effect>) {
        let sync = self.syncs.get_mut(key).expect("sync in progress");
        if sync.batch_failed || sync.remaining == 0 {
            let skipped = std::mem::take(&mut sync.remaining);
            for _ in 0..skipped {
                self.creation_observed(key);
            }
            self.write_status(key, now, out);
            return;
        }
        let size = if sync.batch == 0 {
            1
        } else {
            (sync.batch * 2).min(sync.remaining)
        };
        sync.batch = size;
        sync.remaining -= size;
        sync.outstanding = size;
        let Some(rs) = self.rs.get_shared(key) else {
            // The ReplicaSet went away between batches: stop here.
            self.finish(key, false, now, out);
            return;
        };
        for _ in 0..size {
            let op = ApiOp::Create {
                resource: pods(),
                namespace: rs.metadata.namespace.clone(),
                body: pod_from_template_of(&rs, self.flavor),
            };
            self.request(out, key, Purpose::Create, op);
        }
    }

    /// k8s: getPodsToDelete — the first `n` by ActivePodsWithRanks.
    fn pods_to_delete(
        &self,
        rs: &ReplicaSet,
        owned: &[Arc<Pod>],
        n: usize,
        now: Time,
    ) -> Vec<Arc<Pod>> {
        if n >= owned.len() {
            return owned.to_vec();
        }
        // Rank: active pods related to this ReplicaSet (same owning controller) on the same node.
        let owner_uid = controller_of(&rs.metadata).map(|r| r.uid.clone());
        let rs_uid = rs.metadata.uid.clone().unwrap_or_default();
        let related = |p: &Pod| {
            let r = controller_of(&p.metadata);
            match &owner_uid {
                None => r.is_some_and(|r| r.uid == rs_uid),
                Some(owner) => r.is_some_and(|r| {
                    r.kind == self.flavor.kind
                        && self
                            .rs
                            .get(&format!(
                                "{}/{}",
                                p.metadata.namespace.as_deref().unwrap_or(""),
                                r.name
                            ))
                            .and_then(|rs| controller_of(&rs.metadata))
                            .is_some_and(|o| &o.uid == owner)
                }),
            }
        };
        let mut on_node: BTreeMap<String, i64> = BTreeMap::new();
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        for (_, p) in self.pods.in_namespace(ns) {
            if is_active(p) && related(p) {
                if let Some(node) = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .filter(|n| !n.is_empty())
                {
                    *on_node.entry(node).or_default() += 1;
                }
            }
        }
        let now_ns = i128::from(now.as_nanos());
        let mut ranked: Vec<(i64, &Arc<Pod>)> = owned
            .iter()
            .map(|p| {
                let node = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
                (on_node.get(&node).copied().unwrap_or(0), p)
            })
            .collect();
        ranked.sort_by(|a, b| compare_for_deletion(a.1, a.0, b.1, b.0, now_ns));
        ranked.into_iter().take(n).map(|(_, p)| p.clone()).collect()
    }

    fn write_status(&mut self, key: &str, now: Time, out: &mut Vec<Effect>) {
        let Some(rs) = self.rs.get_shared(key) else {
            self.finish(key, false, now, out);
            return;
        };
        let sync = self.syncs.get_mut(key).expect("sync in progress");
        let status = compute_status(&rs, &sync.owned, sync.failure.as_ref(), now);
        let current =
            serde_json::to_value(rs.status.clone().unwrap_or_default()).expect("serializes");
        if status == current {
            let failed = sync.failure.is_some();
            self.finish(key, failed, now, out);
            return;
        }
        sync.phase = Phase::WritingStatus;
        sync.outstanding = 1;
        let mut body = serde_json::to_value(&*rs).expect("serializes");
        body["status"] = status;
        let body = self.flavor.to_own_kind(body);
        let op = ApiOp::Update {
            resource: self.flavor.resource(),
            namespace: rs.metadata.namespace.clone(),
            name: rs.metadata.name.clone().unwrap_or_default(),
            body,
            part: Part::Status,
        };
        self.request(out, key, Purpose::Status, op);
    }

    fn finish(&mut self, key: &str, failed: bool, now: Time, out: &mut Vec<Effect>) {
        self.syncs.remove(key);
        self.queue.done(key);
        if failed {
            self.queue.add_rate_limited(key, now);
        } else {
            self.queue.forget(key);
            // k8s: requeue after minReadySeconds while pods are ready but not yet available.
            if let Some(rs) = self.rs.get(key) {
                let spec = rs.spec.clone().unwrap_or_default();
                let min_ready = spec.min_ready_seconds.unwrap_or(0);
                let st = rs.status.clone().unwrap_or_default();
                let want = spec.replicas.unwrap_or(1);
                if min_ready > 0
                    && st.ready_replicas.unwrap_or(0) == want
                    && st.available_replicas.unwrap_or(0) != want
                {
                    self.queue
                        .add_after(key, Duration::from_secs(min_ready as u64), now);
                }
            }
        }
        let _ = out;
    }

    fn on_result(
        &mut self,
        id: u64,
        result: Result<Arc<Value>, crate::api::status::ApiError>,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let Some((key, purpose)) = self.requests.remove(&id) else {
            return;
        };
        if !self.syncs.contains_key(&key) {
            return;
        }
        match purpose {
            Purpose::CanAdopt => {
                let rs_uid = self.rs.get(&key).and_then(|r| r.metadata.uid.clone());
                let ok = match &result {
                    Ok(fresh) => {
                        fresh["metadata"]["uid"].as_str() == rs_uid.as_deref()
                            && fresh["metadata"]["deletionTimestamp"].is_null()
                    }
                    Err(_) => false,
                };
                self.claim(&key, ok, now, out);
            }
            Purpose::Claim => {
                let sync = self.syncs.get_mut(&key).expect("checked");
                if let Ok(updated) = &result {
                    if let Ok(pod) = <Pod as serde::Deserialize>::deserialize(&**updated) {
                        if !sync.released.contains(&key_of(&pod.metadata)) {
                            sync.adopted.push(Arc::new(pod));
                        }
                    }
                }
                // k8s: a pod that vanished or changed is simply not claimed this time.
                sync.owned
                    .retain(|p| !sync.released.contains(&key_of(&p.metadata)));
                sync.outstanding -= 1;
                if sync.outstanding == 0 {
                    self.manage(&key, now, out);
                }
            }
            Purpose::Create => {
                let (type_, reason, message) = match &result {
                    Ok(pod) => (
                        NORMAL,
                        "SuccessfulCreate",
                        format!(
                            "Created pod: {}",
                            pod["metadata"]["name"].as_str().unwrap_or("")
                        ),
                    ),
                    Err(e) => (
                        WARNING,
                        "FailedCreate",
                        format!("Error creating: {}", e.message),
                    ),
                };
                self.emit(&key, type_, reason, message, out);
                let sync = self.syncs.get_mut(&key).expect("checked");
                if let Err(e) = &result {
                    // k8s: creates refused because the namespace is terminating are not errors.
                    let terminating = e.code == 403 && e.message.contains("being terminated");
                    if !terminating {
                        sync.batch_failed = true;
                        sync.failure
                            .get_or_insert(("FailedCreate", e.message.clone()));
                    }
                    self.creation_observed(&key);
                }
                let sync = self.syncs.get_mut(&key).expect("checked");
                sync.outstanding -= 1;
                if sync.outstanding == 0 {
                    self.next_batch(&key, now, out);
                }
            }
            Purpose::Delete { pod } => {
                let name = pod.rsplit('/').next().unwrap_or("").to_string();
                match &result {
                    Ok(_) => self.emit(
                        &key,
                        NORMAL,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                        out,
                    ),
                    Err(e) if e.code != 404 => self.emit(
                        &key,
                        WARNING,
                        "FailedDelete",
                        format!("Error deleting: {}", e.message),
                        out,
                    ),
                    Err(_) => {}
                }
                let sync = self.syncs.get_mut(&key).expect("checked");
                match &result {
                    Ok(_) => {}
                    // k8s: NotFound on delete is not an error.
                    Err(e) if e.code == 404 => self.deletion_observed(&key, &pod),
                    Err(e) => {
                        sync.failure
                            .get_or_insert(("FailedDelete", e.message.clone()));
                        self.deletion_observed(&key, &pod);
                    }
                }
                let sync = self.syncs.get_mut(&key).expect("checked");
                sync.outstanding -= 1;
                if sync.outstanding == 0 {
                    self.write_status(&key, now, out);
                }
            }
            Purpose::Status => {
                let failed = result.is_err() || self.syncs[&key].failure.is_some();
                self.finish(&key, failed, now, out);
            }
        }
    }

    /// An event about the ReplicaSet (k8s: RealPodControl records one per pod create/delete).
    fn emit(
        &self,
        key: &str,
        type_: &'static str,
        reason: &'static str,
        message: String,
        out: &mut Vec<Effect>,
    ) {
        if let Some(rs) = self.rs.get(key) {
            let involved = reference(self.flavor.api_version, self.flavor.kind, &rs.metadata);
            out.push(event(involved, type_, reason, message));
        }
    }

    /// Starts syncs while workers are free, and keeps the queue's timer armed.
    fn pump(&mut self, now: Time, out: &mut Vec<Effect>) {
        // k8s: WaitForCacheSync — a ReplicaSet synced before its pods are listed would look
        // empty and be filled up a second time.
        if !(self.rs.synced() && self.pods.synced()) {
            return;
        }
        self.queue.advance(now);
        while self.syncs.len() < WORKERS {
            let Some(key) = self.queue.get() else { break };
            self.start(key, now, out);
        }
        let wake = self.queue.next_wakeup();
        crate::controllers::queue::arm_timer(&mut self.armed, wake, QUEUE_TIMER, out);
    }

    /// The controller's view of a ReplicaSet (for tests and traces).
    pub fn cached(&self, key: &str) -> Option<&ReplicaSet> {
        self.rs.get(key)
    }
}

fn old_ref_gone(old: &Pod, new: &Pod) -> bool {
    controller_of(&old.metadata).is_some() && controller_of(&new.metadata).is_none()
}

/// The pod a ReplicaSet creates: its template, owned by it, named `<rs>-<random>`.
pub fn pod_from_template(rs: &ReplicaSet) -> Value {
    pod_from_template_of(rs, &REPLICA_SETS)
}

fn pod_from_template_of(rs: &ReplicaSet, flavor: &Flavor) -> Value {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": format!("{}-", rs.metadata.name.as_deref().unwrap_or("")),
            "namespace": rs.metadata.namespace,
            "labels": meta.labels,
            "annotations": meta.annotations,
            "ownerReferences": [{
                "apiVersion": flavor.api_version,
                "kind": flavor.kind,
                "name": rs.metadata.name,
                "uid": rs.metadata.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": template.spec,
    })
}

fn log2_bucket(now_ns: i128, t: Option<i128>) -> i64 {
    // k8s: LogarithmicScaleDown compares floor(log2(now - t)) in nanoseconds; -1 when not past.
    match t.map(|t| now_ns - t) {
        Some(d) if d > 0 => 127 - (d as u128).leading_zeros() as i64,
        _ => -1,
    }
}

/// k8s: ActivePodsWithRanks.Less — `Less` means "delete first".
pub fn compare_for_deletion(a: &Pod, rank_a: i64, b: &Pod, rank_b: i64, now_ns: i128) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    // 1. unassigned first
    let (na, nb) = (node(a).is_empty(), node(b).is_empty());
    if na != nb {
        return if na {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running
    let phase = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    if phase(a) != phase(b) {
        return phase(a).cmp(&phase(b));
    }
    // 3. not ready first
    let (ra, rb) = (ready(a), ready(b));
    if ra.0 != rb.0 {
        return if !ra.0 {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 4. lower deletion cost first
    let cost = |p: &Pod| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DELETION_COST))
            .and_then(|c| c.parse::<i32>().ok())
            .unwrap_or(0)
    };
    if cost(a) != cost(b) {
        return cost(a).cmp(&cost(b));
    }
    // 5. higher rank (more related pods on the same node) first
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // 6. both ready: more recently ready first (log buckets; no time counts as most recent)
    if ra.0 && rb.0 {
        let (ba, bb) = (log2_bucket(now_ns, ra.1), log2_bucket(now_ns, rb.1));
        if ba != bb {
            return ba.cmp(&bb);
        }
    }
    // 7. more restarts first
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
            .unwrap_or(0)
    };
    if restarts(a) != restarts(b) {
        return restarts(b).cmp(&restarts(a));
    }
    // 8. newer first (log buckets), then by UID
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(ts_nanos);
    let (ca, cb) = (
        log2_bucket(now_ns, created(a)),
        log2_bucket(now_ns, created(b)),
    );
    if ca != cb {
        return ca.cmp(&cb);
    }
    a.metadata.uid.cmp(&b.metadata.uid)
}

/// k8s: calculateStatus.
fn compute_status(
    rs: &ReplicaSet,
    owned: &[Arc<Pod>],
    failure: Option<&(&'static str, String)>,
    now: Time,
) -> Value {
    let spec = rs.spec.clone().unwrap_or_default();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now_ns = i128::from(now.as_nanos());
    let fully_labeled = owned
        .iter()
        .filter(|p| {
            let l = p.metadata.labels.clone().unwrap_or_default();
            template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .count();
    let ready_n = owned.iter().filter(|p| ready(p).0).count();
    let available = owned
        .iter()
        .filter(|p| is_available(p, min_ready, now_ns))
        .count();
    let mut status = json!({
        "replicas": owned.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready_n,
        "availableReplicas": available,
        "observedGeneration": rs.metadata.generation.unwrap_or(0),
    });
    // k8s: the ReplicaFailure condition reports a failed manage, and is dropped once it works.
    let existing = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "ReplicaFailure");
    match (failure, existing) {
        (Some((reason, message)), Some(c))
            if c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str()) =>
        {
            status["conditions"] = json!([c]);
        }
        (Some((reason, message)), _) => {
            status["conditions"] = json!([{
                "type": "ReplicaFailure",
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": crate::apiserver::format_time(now),
            }]);
        }
        (None, _) => {}
    }
    // Match the typed form (absent counts as zero) so an unchanged status is not rewritten.
    serde_json::to_value(
        serde_json::from_value::<k8s_openapi::api::apps::v1::ReplicaSetStatus>(status)
            .expect("valid status"),
    )
    .expect("serializes")
}

impl Component for ReplicaSetController {
    fn name(&self) -> &str {
        self.flavor.name
    }

    fn user(&self) -> crate::auth::UserInfo {
        // The flavor's name is its controller's ServiceAccount (replicaset-controller,
        // replication-controller).
        crate::auth::UserInfo::service_account("kube-system", self.flavor.name)
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![
            WatchSpec::all(self.flavor.resource()),
            WatchSpec::all(pods()),
        ]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        let replica_sets = self.flavor.resource();
        match self.flavor.convert_input(input) {
            Input::Listed {
                resource,
                items,
                revision,
            } => {
                if resource == replica_sets {
                    for c in self.rs.replace(&items, revision).unwrap_or_default() {
                        self.on_rs(c);
                    }
                } else if resource == pods() {
                    for c in self.pods.replace(&items, revision).unwrap_or_default() {
                        self.on_pod(c, now);
                    }
                }
            }
            Input::Watched { resource, event } => {
                if resource == replica_sets {
                    if let Ok(c) = self.rs.apply(&event) {
                        self.on_rs(c);
                    }
                } else if resource == pods() {
                    if let Ok(c) = self.pods.apply(&event) {
                        self.on_pod(c, now);
                    }
                }
            }
            Input::Timer { .. } => self.armed = None,
            Input::ApiResult { id, result } => self.on_result(id, result, now, out),
            // No container runtime here.
            Input::RuntimeResult { .. } | Input::ContainerExited { .. } => {}
        }
        self.pump(now, out);
    }
}
