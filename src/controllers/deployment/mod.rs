//! The Deployment controller, as a sans-IO state machine.
//!
//! k8s: pkg/controller/deployment (v1.33); the rules are in reference/k8s-semantics.md §2. A
//! sync of one Deployment runs in phases, each waiting for the answers to its requests: claim
//! its ReplicaSets (adopt matching orphans after an uncached GET, release those that stopped
//! matching), then carry out the plan `rollout::Plan` made from the cache (ReplicaSet creates,
//! scales, annotation updates and history deletes, side by side), then write the
//! Deployment's status.

pub mod rollout;
pub mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use rand::RngCore;
use serde_json::Value;

use super::cache::{Cache, Change};
use super::ownership::{adopted, claim_update, controller_ref, released};
use super::queue::WorkQueue;
use super::replicaset::{controller_index, controller_of};
use crate::api::registry::{self, ResourceInfo};
use crate::api::selector::from_label_selector;
use crate::apiserver::Part;
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::event_recorder::{event, reference};
use crate::time::Time;
use rollout::{Plan, Write};

/// k8s: --concurrent-deployment-syncs
pub const WORKERS: usize = 5;
const QUEUE_TIMER: u64 = 0;

fn deployments() -> &'static ResourceInfo {
    registry::by_plural("apps", "deployments").expect("registered")
}

fn replica_sets() -> &'static ResourceInfo {
    registry::by_plural("apps", "replicasets").expect("registered")
}

fn pods() -> &'static ResourceInfo {
    registry::by_plural("", "pods").expect("registered")
}

fn ns_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("")
}

#[derive(Debug)]
enum Purpose {
    CanAdopt,
    Claim,
    /// A ReplicaSet write; `created` names the ReplicaSet a create makes.
    Write {
        created: Option<String>,
    },
    Status,
}

#[derive(Debug)]
struct Sync {
    outstanding: usize,
    /// ReplicaSets this Deployment controls (claimed), as the plan starts from them.
    owned: Vec<ReplicaSet>,
    orphans: Vec<Arc<ReplicaSet>>,
    to_release: Vec<Arc<ReplicaSet>>,
    released: BTreeSet<String>,
    /// The Deployment to write back once the ReplicaSet writes are done (if it changed).
    status: Option<Deployment>,
    requeue_after: Option<Duration>,
    failed: bool,
    /// A create found another object under the new ReplicaSet's name (k8s: a hash collision).
    collision: bool,
}

pub struct DeploymentController {
    deployments: Cache<Deployment>,
    rs: Cache<ReplicaSet>,
    pods: Cache<Pod>,
    queue: WorkQueue,
    syncs: BTreeMap<String, Sync>,
    requests: BTreeMap<u64, (String, Purpose)>,
    next_id: u64,
    armed: Option<Time>,
}

impl Default for DeploymentController {
    fn default() -> Self {
        Self::new()
    }
}

impl DeploymentController {
    pub fn new() -> Self {
        DeploymentController {
            deployments: Cache::new(),
            rs: Cache::with_index(|rs: &ReplicaSet| controller_index(&rs.metadata)),
            pods: Cache::with_index(|p: &Pod| controller_index(&p.metadata)),
            queue: WorkQueue::new(),
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

    // --- event routing (k8s: addReplicaSet / updateReplicaSet / deleteReplicaSet / deletePod) ---

    /// The Deployment a controller reference points to, if it exists with that uid.
    fn resolve(&self, namespace: &str, r: &OwnerReference) -> Option<String> {
        if r.kind != "Deployment" {
            return None;
        }
        let key = format!("{namespace}/{}", r.name);
        let d = self.deployments.get(&key)?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(key)
    }

    /// Deployments whose selector matches an orphan ReplicaSet (k8s: getDeploymentsForReplicaSet).
    fn matching(&self, rs: &ReplicaSet) -> Vec<String> {
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        self.deployments
            .in_namespace(ns_of(&rs.metadata))
            .filter(|(_, d)| {
                d.spec
                    .as_ref()
                    .and_then(|s| from_label_selector(&s.selector).ok())
                    .is_some_and(|sel| !sel.is_empty() && sel.matches(&labels))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn on_rs(&mut self, change: Change<ReplicaSet>) {
        let mut keys = BTreeSet::new();
        for rs in change.old.iter().chain(change.new.iter()) {
            match controller_of(&rs.metadata) {
                Some(r) => keys.extend(self.resolve(ns_of(&rs.metadata), r)),
                // k8s: an orphan is looked at by every Deployment that could adopt it.
                None if change.new.is_some() => keys.extend(self.matching(rs)),
                None => {}
            }
        }
        for k in keys {
            self.queue.add(&k);
        }
    }

    /// k8s: deletePod — a Recreate rollout waits for the old pods to go.
    fn on_pod(&mut self, change: Change<Pod>) {
        let gone = match (&change.old, &change.new) {
            (Some(_), None) => true,
            (Some(old), Some(new)) => {
                let terminal = |p: &Pod| {
                    matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Failed" | "Succeeded")
                    )
                };
                !terminal(old) && terminal(new)
            }
            _ => false,
        };
        let Some(pod) = change.old.as_ref().filter(|_| gone) else {
            return;
        };
        let ns = ns_of(&pod.metadata).to_string();
        let Some(r) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let Some(rs) = self.rs.get(&format!("{ns}/{}", r.name)) else {
            return;
        };
        if let Some(key) = controller_of(&rs.metadata).and_then(|o| self.resolve(&ns, o)) {
            let recreate = self
                .deployments
                .get(&key)
                .is_some_and(|d| util::strategy_type(d) == "Recreate");
            if recreate {
                self.queue.add(&key);
            }
        }
    }

    // --- the sync ---

    fn start(&mut self, key: String, now: Time, out: &mut Vec<Effect>) {
        let Some(d) = self.deployments.get_shared(&key) else {
            self.finish(&key, false, now);
            return;
        };
        let ns = ns_of(&d.metadata).to_string();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let selector = d
            .spec
            .as_ref()
            .and_then(|s| from_label_selector(&s.selector).ok());
        let deleting = d.metadata.deletion_timestamp.is_some();
        let no_labels = BTreeMap::new();
        let matches = |rs: &ReplicaSet| {
            let labels = rs.metadata.labels.as_ref().unwrap_or(&no_labels);
            selector
                .as_ref()
                .is_some_and(|s| !s.is_empty() && s.matches(labels))
        };
        // k8s: ClaimReplicaSets — keep matching owned ones, release the others, adopt orphans.
        let (mut owned, mut orphans, mut to_release) = (Vec::new(), Vec::new(), Vec::new());
        if !uid.is_empty() {
            for (_, rs) in self.rs.indexed_in_namespace(&uid, &ns) {
                if matches(rs) {
                    owned.push((**rs).clone());
                } else if !deleting {
                    to_release.push(rs.clone());
                }
            }
        }
        if !deleting {
            for (_, rs) in self.rs.indexed_in_namespace("", &ns) {
                if matches(rs) && rs.metadata.deletion_timestamp.is_none() {
                    orphans.push(rs.clone());
                }
            }
        }
        let sync = Sync {
            outstanding: 0,
            owned,
            orphans,
            to_release,
            released: BTreeSet::new(),
            status: None,
            requeue_after: None,
            failed: false,
            collision: false,
        };
        let check_adoption = !sync.orphans.is_empty();
        self.syncs.insert(key.clone(), sync);
        if check_adoption {
            // k8s: canAdopt — one uncached GET confirms the Deployment is still this one.
            self.syncs.get_mut(&key).expect("inserted").outstanding = 1;
            let op = ApiOp::Get {
                resource: deployments(),
                namespace: Some(ns),
                name: d.metadata.name.clone().unwrap_or_default(),
            };
            self.request(out, &key, Purpose::CanAdopt, op);
            return;
        }
        self.claim(&key, false, now, out);
    }

    fn claim(&mut self, key: &str, adopt: bool, now: Time, out: &mut Vec<Effect>) {
        let Some(d) = self.deployments.get_shared(key) else {
            self.finish(key, false, now);
            return;
        };
        let sync = self.syncs.get_mut(key).expect("sync in progress");
        let orphans = if adopt {
            std::mem::take(&mut sync.orphans)
        } else {
            Vec::new()
        };
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let mut bodies = Vec::new();
        for rs in orphans {
            let owner = controller_ref("apps/v1", "Deployment", &d.metadata.name, &d.metadata.uid);
            bodies.push(adopted(&*rs, owner));
        }
        for rs in std::mem::take(&mut sync.to_release) {
            sync.released
                .insert(rs.metadata.uid.clone().unwrap_or_default());
            bodies.push(released(&*rs, &uid));
        }
        sync.outstanding = bodies.len();
        if bodies.is_empty() {
            self.execute(key, now, out);
            return;
        }
        for body in bodies {
            self.request(out, key, Purpose::Claim, claim_update(replica_sets(), body));
        }
    }

    /// Plans the sync from the claimed ReplicaSets and sends its ReplicaSet writes.
    fn execute(&mut self, key: &str, now: Time, out: &mut Vec<Effect>) {
        let Some(d) = self.deployments.get_shared(key) else {
            self.finish(key, false, now);
            return;
        };
        let sync = self.syncs.get_mut(key).expect("sync in progress");
        let owned = std::mem::take(&mut sync.owned);
        let mut pods: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        let ns = ns_of(&d.metadata).to_string();
        for rs in &owned {
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            let of_rs: Vec<Arc<Pod>> = self
                .pods
                .indexed_in_namespace(&uid, &ns)
                .map(|(_, p)| p.clone())
                .collect();
            pods.insert(uid, of_rs);
        }
        let plan = Plan::sync(&d, owned, &pods, now);
        let involved = reference("apps/v1", "Deployment", &d.metadata);
        for (type_, reason, message) in &plan.events {
            out.push(event(involved.clone(), type_, reason, message.clone()));
        }
        let mut ops = Vec::new();
        for e in &plan.entries {
            let body = serde_json::to_value(&e.rs).expect("serializes");
            match e.write {
                Write::None => {}
                Write::Create => ops.push((
                    e.rs.metadata.name.clone(),
                    ApiOp::Create {
                        resource: replica_sets(),
                        namespace: Some(ns.clone()),
                        body,
                    },
                )),
                Write::Update => ops.push((
                    None,
                    ApiOp::Update {
                        resource: replica_sets(),
                        namespace: Some(ns.clone()),
                        name: e.rs.metadata.name.clone().unwrap_or_default(),
                        body,
                        part: Part::Main,
                    },
                )),
            }
        }
        for rs in &plan.deletes {
            ops.push((
                None,
                ApiOp::Delete {
                    resource: replica_sets(),
                    namespace: Some(ns.clone()),
                    name: rs.metadata.name.clone().unwrap_or_default(),
                    grace_period_seconds: None,
                    precondition_uid: rs.metadata.uid.clone(),
                    precondition_resource_version: None,
                    propagation_policy: None,
                },
            ));
        }
        let sync = self.syncs.get_mut(key).expect("sync in progress");
        sync.status = plan.write_status.then(|| plan.d.clone());
        sync.requeue_after = plan.requeue_after;
        sync.outstanding = ops.len();
        if ops.is_empty() {
            self.write_status(key, now, out);
            return;
        }
        for (created, op) in ops {
            self.request(out, key, Purpose::Write { created }, op);
        }
    }

    fn write_status(&mut self, key: &str, now: Time, out: &mut Vec<Effect>) {
        let sync = self.syncs.get_mut(key).expect("sync in progress");
        let body = if sync.collision {
            // k8s: a hash collision bumps collisionCount, and the next sync hashes anew.
            self.deployments.get(key).map(|d| {
                let mut d = d.clone();
                let st = d.status.get_or_insert_with(Default::default);
                st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                d
            })
        } else if sync.failed {
            None
        } else {
            sync.status.take()
        };
        let Some(d) = body else {
            let failed = sync.failed;
            self.finish(key, failed, now);
            return;
        };
        sync.outstanding = 1;
        let op = ApiOp::Update {
            resource: deployments(),
            namespace: d.metadata.namespace.clone(),
            name: d.metadata.name.clone().unwrap_or_default(),
            body: serde_json::to_value(&d).expect("serializes"),
            part: Part::Status,
        };
        self.request(out, key, Purpose::Status, op);
    }

    fn finish(&mut self, key: &str, failed: bool, now: Time) {
        let requeue = self.syncs.remove(key).and_then(|s| s.requeue_after);
        self.queue.done(key);
        if failed {
            self.queue.add_rate_limited(key, now);
            return;
        }
        self.queue.forget(key);
        match requeue {
            Some(d) if d.is_zero() => self.queue.add_rate_limited(key, now),
            Some(d) => self.queue.add_after(key, d, now),
            None => {}
        }
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
        let Some(sync) = self.syncs.get_mut(&key) else {
            return;
        };
        sync.outstanding -= 1;
        match purpose {
            Purpose::CanAdopt => {
                let uid = self
                    .deployments
                    .get(&key)
                    .and_then(|d| d.metadata.uid.clone());
                let ok = result.as_ref().is_ok_and(|fresh| {
                    fresh["metadata"]["uid"].as_str() == uid.as_deref()
                        && fresh["metadata"]["deletionTimestamp"].is_null()
                });
                self.claim(&key, ok, now, out);
            }
            Purpose::Claim => {
                if let Ok(Ok(rs)) = result
                    .as_ref()
                    .map(|v| serde_json::from_value::<ReplicaSet>((**v).clone()))
                {
                    let uid = rs.metadata.uid.clone().unwrap_or_default();
                    if !sync.released.contains(&uid) {
                        sync.owned.push(rs);
                    }
                }
                sync.owned.retain(|rs| {
                    !sync
                        .released
                        .contains(rs.metadata.uid.as_deref().unwrap_or(""))
                });
                if sync.outstanding == 0 {
                    self.execute(&key, now, out);
                }
            }
            Purpose::Write { created } => {
                let (failed, collision) = match (&result, created) {
                    (Ok(_), _) => (false, false),
                    // k8s: a history ReplicaSet already gone is not an error.
                    (Err(e), None) if e.code == 404 => (false, false),
                    // Ours, not yet in the cache (the next sync finds it), or another
                    // object's name: then a collision (k8s: getNewReplicaSet).
                    (Err(e), Some(name)) if e.code == 409 => {
                        (true, self.name_taken_by_other(&key, &name))
                    }
                    (Err(_), _) => (true, false),
                };
                let sync = self.syncs.get_mut(&key).expect("checked");
                sync.failed |= failed;
                sync.collision |= collision;
                if sync.outstanding == 0 {
                    self.write_status(&key, now, out);
                }
            }
            Purpose::Status => {
                let failed = result.is_err() || sync.failed;
                self.finish(&key, failed, now);
            }
        }
    }

    /// Whether the ReplicaSet a create found in the way belongs to someone else (or has
    /// another template), as far as the cache knows.
    fn name_taken_by_other(&self, key: &str, name: &str) -> bool {
        let Some(d) = self.deployments.get(key) else {
            return false;
        };
        let ns = ns_of(&d.metadata);
        match self.rs.get(&format!("{ns}/{name}")) {
            None => false,
            Some(rs) => {
                let ours = controller_of(&rs.metadata).map(|r| r.uid.as_str())
                    == d.metadata.uid.as_deref();
                let same = match (
                    rs.spec.as_ref().and_then(|s| s.template.as_ref()),
                    d.spec.as_ref().map(|s| &s.template),
                ) {
                    (Some(a), Some(b)) => util::equal_ignore_hash(a, b),
                    _ => false,
                };
                !(ours && same)
            }
        }
    }

    fn pump(&mut self, now: Time, out: &mut Vec<Effect>) {
        // k8s: WaitForCacheSync
        if !(self.deployments.synced() && self.rs.synced() && self.pods.synced()) {
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
}

impl Component for DeploymentController {
    fn name(&self) -> &str {
        "deployment-controller"
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::DEPLOYMENT,
        )
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![
            WatchSpec::all(deployments()),
            WatchSpec::all(replica_sets()),
            WatchSpec::all(pods()),
        ]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed {
                resource,
                items,
                revision,
            } => {
                if resource == deployments() {
                    for c in self
                        .deployments
                        .replace(&items, revision)
                        .unwrap_or_default()
                    {
                        self.queue.add(&c.key);
                    }
                } else if resource == replica_sets() {
                    for c in self.rs.replace(&items, revision).unwrap_or_default() {
                        self.on_rs(c);
                    }
                } else if resource == pods() {
                    for c in self.pods.replace(&items, revision).unwrap_or_default() {
                        self.on_pod(c);
                    }
                }
            }
            Input::Watched { resource, event } => {
                if resource == deployments() {
                    if let Ok(c) = self.deployments.apply(&event) {
                        self.queue.add(&c.key);
                    }
                } else if resource == replica_sets() {
                    if let Ok(c) = self.rs.apply(&event) {
                        self.on_rs(c);
                    }
                } else if resource == pods() {
                    if let Ok(c) = self.pods.apply(&event) {
                        self.on_pod(c);
                    }
                }
            }
            Input::Timer { .. } => self.armed = None,
            Input::ApiResult { id, result } => self.on_result(id, result, now, out),
            Input::RuntimeResult { .. } | Input::ContainerExited { .. } => {}
        }
        self.pump(now, out);
    }
}
