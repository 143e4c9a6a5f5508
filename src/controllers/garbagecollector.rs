//! The garbage collector, as a sans-IO state machine.
//!
//! k8s: pkg/controller/garbagecollector (v1.33); the rules are in reference/k8s-semantics.md §7.
//! Informers over the kinds that own or are owned here feed a dependency graph ([`graph`]);
//! graph changes queue nodes for two kinds of work:
//!
//! * **attemptToDelete** (a node): a live GET of the object and of each of its owners, then
//!   [`decide`]: keep it, drop its dangling references, or delete it (with the UID and
//!   resourceVersion it was judged at as preconditions). An owner being deleted in the
//!   foreground has its blocking dependents deleted, and loses its `foregroundDeletion`
//!   finalizer once none is left.
//! * **attemptToOrphan** (an owner with the `orphan` finalizer): its reference is taken out of
//!   every dependent, then the finalizer.
//!
//! Failures come back through the work queues' backoff.

pub mod graph;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rand::RngCore;
use serde_json::{json, Value};

use self::graph::{has_finalizer, owner_refs, resolve, Graph, Identity, OwnerRef, Work};
use super::queue::WorkQueue;
use crate::api::registry::{self, ResourceInfo};
use crate::api::status::ApiError;
use crate::apiserver::{ApiEvent, EventType, Part, FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

/// k8s: --concurrent-gc-syncs (attemptToDelete and attemptToOrphan workers each).
pub const WORKERS: usize = 20;
/// k8s: the absent owner cache's size (garbagecollector.go, NewReferenceCache(500)).
pub const ABSENT_CACHE: usize = 500;

/// The kinds the collector watches: those that own or are owned here (k8s discovers every
/// deletable kind; see docs/decisions.md).
pub const WATCHED: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "replicationcontrollers"),
    ("", "services"),
    ("apps", "replicasets"),
    ("apps", "deployments"),
    ("discovery.k8s.io", "endpointslices"),
];

const QUEUE_TIMER: u64 = 0;

/// What a live lookup of one owner says (k8s: classifyReferences).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists with the referenced UID and is not waiting for its dependents.
    Solid,
    /// Absent, or present with another UID.
    Dangling,
    /// Being deleted in the foreground (`foregroundDeletion`): waiting for its dependents.
    Waiting,
}

/// How to check one owner reference of an object (k8s: isDangling).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// GET the owner here.
    Get {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
    },
    /// A cluster-scoped object naming a namespaced owner: invalid, and it will not get better.
    /// k8s: namespacedOwnerOfClusterScopedObjectErr — the object is left alone.
    NamespacedOwnerOfClusterScoped,
    /// A kind gantry does not serve: nothing can be verified, the object is left alone.
    Unresolvable,
}

/// k8s: isDangling — a namespaced owner is looked for in the dependent's own namespace (so an
/// owner in another namespace is absent, §7.1); a cluster-scoped one without a namespace.
pub fn lookup(item_namespace: Option<&str>, r: &OwnerRef) -> Lookup {
    let Some(resource) = resolve(&r.api_version, &r.kind) else {
        return Lookup::Unresolvable;
    };
    match (resource.namespaced, item_namespace) {
        (true, None) => Lookup::NamespacedOwnerOfClusterScoped,
        (true, Some(ns)) => Lookup::Get {
            resource,
            namespace: Some(ns.to_string()),
        },
        (false, _) => Lookup::Get {
            resource,
            namespace: None,
        },
    }
}

/// k8s: isDangling and classifyReferences — `found` is the live owner (`None`: not found).
pub fn classify(r: &OwnerRef, found: Option<&Value>) -> OwnerState {
    match found {
        None => OwnerState::Dangling,
        Some(o) if o["metadata"]["uid"].as_str() != Some(r.uid.as_str()) => OwnerState::Dangling,
        Some(o)
            if !o["metadata"]["deletionTimestamp"].is_null()
                && has_finalizer(o, FOREGROUND_FINALIZER) =>
        {
            OwnerState::Waiting
        }
        Some(_) => OwnerState::Solid,
    }
}

/// What to do with an object whose owners have been looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Keep,
    /// Take these owners (UIDs) out of its ownerReferences.
    RemoveRefs(Vec<String>),
    /// Delete it with this propagation policy; `unblock` first makes its own references
    /// non-blocking (a dependent of it is waiting too: a possible cycle).
    Delete {
        policy: &'static str,
        unblock: bool,
    },
}

/// k8s: attemptToDeleteItem (§7.3). `owners` are the object's references with their state;
/// `has_dependents` and `dependent_waits` come from the graph; `finalizers` are the object's.
pub fn decide(
    owners: &[(&OwnerRef, OwnerState)],
    has_dependents: bool,
    dependent_waits: bool,
    finalizers: &[String],
) -> Decision {
    if owners.is_empty() {
        // k8s: objects without owners are never touched.
        return Decision::Keep;
    }
    let of = |s: OwnerState| owners.iter().filter(move |(_, st)| *st == s);
    if of(OwnerState::Solid).next().is_some() {
        // k8s: a live owner keeps it; dangling and waiting references go (a waiting one would
        // otherwise hold its owner forever).
        let drop: Vec<String> = owners
            .iter()
            .filter(|(_, s)| *s != OwnerState::Solid)
            .map(|(r, _)| r.uid.clone())
            .collect();
        return if drop.is_empty() {
            Decision::Keep
        } else {
            Decision::RemoveRefs(drop)
        };
    }
    if of(OwnerState::Waiting).next().is_some() && has_dependents {
        // k8s: an owner waits for it and it has dependents of its own: foreground, so they
        // go first.
        return Decision::Delete {
            policy: "Foreground",
            unblock: dependent_waits,
        };
    }
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    let policy = if has(ORPHAN_FINALIZER) {
        "Orphan"
    } else if has(FOREGROUND_FINALIZER) {
        "Foreground"
    } else {
        "Background"
    };
    Decision::Delete {
        policy,
        unblock: false,
    }
}

/// Owners known to be absent (k8s: absentOwnerCache), oldest forgotten first.
#[derive(Debug, Default)]
struct AbsentOwners {
    set: BTreeSet<String>,
    order: VecDeque<String>,
}

impl AbsentOwners {
    fn key(namespace: Option<&str>, r: &OwnerRef) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            namespace.unwrap_or(""),
            r.group(),
            r.kind,
            r.name,
            r.uid
        )
    }

    fn has(&self, key: &str) -> bool {
        self.set.contains(key)
    }

    fn add(&mut self, key: String) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > ABSENT_CACHE {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum JobKey {
    Delete(String),
    Orphan(String),
}

#[derive(Debug)]
enum Purpose {
    /// The live object.
    GetItem,
    /// The live owner for reference `i`.
    GetOwner(usize),
    /// An update of the object (references dropped or unblocked, a finalizer removed).
    Update,
    Delete,
    /// After a delete refused on its resourceVersion: is it still the same object with the
    /// same owners?
    Reverify,
    /// Orphaning: a dependent's live object, then its update.
    GetDependent,
    UpdateDependent,
    /// Orphaning: the owner, then its update without the finalizer.
    GetOwnerToFinalize,
    Finalize,
}

/// What a delete job is waiting for.
#[derive(Debug)]
enum Step {
    Item,
    Owners,
    /// The update that unblocks references before a foreground delete.
    Unblocking,
    Acting,
    Reverifying,
}

#[derive(Debug)]
struct Job {
    step: Step,
    outstanding: usize,
    failed: bool,
    /// The live object (delete jobs) or owner (orphan jobs).
    latest: Option<Arc<Value>>,
    refs: Vec<OwnerRef>,
    states: Vec<Option<OwnerState>>,
    policy: &'static str,
}

impl Job {
    fn new(step: Step) -> Job {
        Job {
            step,
            outstanding: 0,
            failed: false,
            latest: None,
            refs: Vec::new(),
            states: Vec::new(),
            policy: "Background",
        }
    }
}

/// How a job ended.
enum Outcome {
    Done,
    Retry,
}

pub struct GarbageCollector {
    resources: Vec<&'static ResourceInfo>,
    synced: BTreeSet<&'static str>,
    graph: Graph,
    absent: AbsentOwners,
    deletes: WorkQueue,
    orphans: WorkQueue,
    jobs: BTreeMap<JobKey, Job>,
    requests: BTreeMap<u64, (JobKey, Purpose)>,
    next_id: u64,
    armed: Option<Time>,
}

impl Default for GarbageCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl GarbageCollector {
    pub fn new() -> Self {
        GarbageCollector {
            resources: WATCHED
                .iter()
                .map(|(g, p)| registry::by_plural(g, p).expect("registered"))
                .collect(),
            synced: BTreeSet::new(),
            graph: Graph::default(),
            absent: AbsentOwners::default(),
            deletes: WorkQueue::new(),
            orphans: WorkQueue::new(),
            jobs: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_id: 1,
            armed: None,
        }
    }

    /// The dependency graph (for tests).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    fn request(&mut self, out: &mut Vec<Effect>, key: &JobKey, purpose: Purpose, op: ApiOp) {
        let id = self.next_id;
        self.next_id += 1;
        self.requests.insert(id, (key.clone(), purpose));
        out.push(Effect::Api { id, op });
    }

    fn log(out: &mut Vec<Effect>, v: u8, message: String) {
        out.push(Effect::Log { v, message });
    }

    fn enqueue(&mut self, work: Work) {
        for uid in work.delete {
            self.deletes.add(&uid);
        }
        for uid in work.orphan {
            self.orphans.add(&uid);
        }
    }

    fn on_list(&mut self, resource: &'static ResourceInfo, items: &[Value]) {
        let mut work = Work::default();
        let listed: BTreeSet<&str> = items
            .iter()
            .filter_map(|i| i["metadata"]["uid"].as_str())
            .collect();
        for uid in self.graph.observed_of(resource) {
            if !listed.contains(uid.as_str()) {
                self.gone(&uid, &mut work);
            }
        }
        for item in items {
            self.graph.upsert(resource, item, &mut work);
        }
        self.synced.insert(resource.plural);
        self.enqueue(work);
    }

    fn on_event(&mut self, resource: &'static ResourceInfo, event: &ApiEvent) {
        let mut work = Work::default();
        match event.type_ {
            EventType::Added | EventType::Modified => {
                self.graph.upsert(resource, &event.object, &mut work)
            }
            EventType::Deleted => {
                if let Some(uid) = event.object["metadata"]["uid"].as_str() {
                    self.gone(uid, &mut work);
                }
            }
        }
        self.enqueue(work);
    }

    /// An object is gone: out of the graph, and remembered as absent if it owned anything
    /// (k8s: the graph builder's delete event handling), so its dependents need not look it up.
    fn gone(&mut self, uid: &str, work: &mut Work) {
        if let Some(node) = self.graph.remove(uid, work) {
            if !node.dependents.is_empty() {
                let r = OwnerRef {
                    api_version: node.identity.api_version.clone(),
                    kind: node.identity.kind.clone(),
                    name: node.identity.name.clone(),
                    uid: uid.to_string(),
                    controller: false,
                    block_owner_deletion: false,
                };
                self.absent
                    .add(AbsentOwners::key(node.identity.namespace.as_deref(), &r));
            }
        }
    }

    // --- attemptToDelete ---

    fn start_delete(&mut self, uid: String, out: &mut Vec<Effect>, now: Time) {
        let key = JobKey::Delete(uid.clone());
        let Some(node) = self.graph.get(&uid) else {
            self.finish(&key, Outcome::Done, now);
            return;
        };
        // k8s: being deleted is a one-way trip; its dependents are looked at once it is gone.
        if node.being_deleted && !node.deleting_dependents {
            self.finish(&key, Outcome::Done, now);
            return;
        }
        let identity = node.identity.clone();
        let Some(resource) = identity.resource() else {
            // An owner of a kind gantry does not serve: nothing to verify it with.
            Self::log(
                out,
                4,
                format!("{} is of a kind gantry does not serve", identity.describe()),
            );
            self.finish(&key, Outcome::Done, now);
            return;
        };
        self.jobs.insert(key.clone(), Job::new(Step::Item));
        let op = ApiOp::Get {
            resource,
            namespace: identity.namespace.clone(),
            name: identity.name.clone(),
        };
        self.request(out, &key, Purpose::GetItem, op);
    }

    /// The live object is in: verify the owners (or finish a foreground deletion).
    fn item_fetched(
        &mut self,
        key: &JobKey,
        uid: &str,
        result: Result<Arc<Value>, ApiError>,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let Some(node) = self.graph.get(uid) else {
            self.finish(key, Outcome::Done, now);
            return;
        };
        let identity = node.identity.clone();
        let latest = match result {
            Ok(v) if v["metadata"]["uid"].as_str() == Some(uid) => v,
            Ok(_) => return self.absent_item(key, uid, &identity, now, out),
            Err(e) if e.code == 404 => return self.absent_item(key, uid, &identity, now, out),
            Err(_) => return self.finish(key, Outcome::Retry, now),
        };
        if !node.observed {
            // It exists: wait for the informer to show it (k8s: requeue until observed). A
            // kind the collector does not watch never will; it has been verified.
            let watched = identity.resource().is_some_and(|r| {
                self.resources
                    .iter()
                    .any(|w| (w.group, w.plural) == (r.group, r.plural))
            });
            let outcome = if watched {
                Outcome::Retry
            } else {
                Outcome::Done
            };
            return self.finish(key, outcome, now);
        }
        if node.deleting_dependents {
            return self.deleting_dependents(key, uid, &identity, latest, now, out);
        }
        let refs = owner_refs(&latest);
        if refs.is_empty() {
            return self.finish(key, Outcome::Done, now);
        }
        let ns = identity.namespace.clone();
        let mut gets = Vec::new();
        let mut states = vec![None; refs.len()];
        for (i, r) in refs.iter().enumerate() {
            if self.absent.has(&AbsentOwners::key(ns.as_deref(), r))
                || self.absent.has(&AbsentOwners::key(None, r))
            {
                states[i] = Some(OwnerState::Dangling);
                continue;
            }
            match lookup(ns.as_deref(), r) {
                Lookup::Get {
                    resource,
                    namespace,
                } => gets.push((i, resource, namespace, r.name.clone())),
                Lookup::NamespacedOwnerOfClusterScoped => {
                    Self::log(
                        out,
                        2,
                        format!(
                            "{} is cluster-scoped and names a namespaced owner {} {}: left alone",
                            identity.describe(),
                            r.kind,
                            r.name
                        ),
                    );
                    return self.finish(key, Outcome::Done, now);
                }
                Lookup::Unresolvable => {
                    Self::log(
                        out,
                        2,
                        format!(
                            "{} names an owner of a kind gantry does not serve ({} {}): left alone",
                            identity.describe(),
                            r.api_version,
                            r.kind
                        ),
                    );
                    return self.finish(key, Outcome::Done, now);
                }
            }
        }
        let job = self.jobs.get_mut(key).expect("job in progress");
        job.step = Step::Owners;
        job.latest = Some(latest);
        job.refs = refs;
        job.states = states;
        job.outstanding = gets.len();
        if gets.is_empty() {
            return self.owners_checked(key, uid, now, out);
        }
        for (i, resource, namespace, name) in gets {
            let op = ApiOp::Get {
                resource,
                namespace,
                name,
            };
            self.request(out, key, Purpose::GetOwner(i), op);
        }
    }

    /// The object is gone (or is another object now): k8s enqueues a virtual delete event.
    fn absent_item(
        &mut self,
        key: &JobKey,
        uid: &str,
        identity: &Identity,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        Self::log(
            out,
            4,
            format!(
                "{} is absent: its dependents are looked at",
                identity.describe()
            ),
        );
        let mut work = Work::default();
        self.gone(uid, &mut work);
        self.enqueue(work);
        self.finish(key, Outcome::Done, now);
    }

    /// k8s: processDeletingDependentsItem — delete the blocking dependents; once none is
    /// left, remove the `foregroundDeletion` finalizer so the owner goes.
    fn deleting_dependents(
        &mut self,
        key: &JobKey,
        uid: &str,
        identity: &Identity,
        latest: Arc<Value>,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let blocking: Vec<(String, bool)> = self
            .graph
            .blocking_dependents(uid)
            .iter()
            .map(|d| (d.identity.uid.clone(), d.deleting_dependents))
            .collect();
        if blocking.is_empty() {
            Self::log(
                out,
                2,
                format!(
                    "{}: no blocking dependent left, removing the {FOREGROUND_FINALIZER} finalizer",
                    identity.describe()
                ),
            );
            return self.remove_finalizer(key, &latest, FOREGROUND_FINALIZER, now, out);
        }
        for (dep, waiting) in blocking {
            if !waiting {
                self.deletes.add(&dep);
            }
        }
        self.finish(key, Outcome::Done, now);
    }

    /// Updates `latest` without `finalizer` (on its resourceVersion).
    fn remove_finalizer(
        &mut self,
        key: &JobKey,
        latest: &Value,
        finalizer: &str,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        if !has_finalizer(latest, finalizer) {
            return self.finish(key, Outcome::Done, now);
        }
        let Some(op) = update_of(latest, |meta| {
            if let Some(f) = meta["finalizers"].as_array_mut() {
                f.retain(|f| f.as_str() != Some(finalizer));
            }
        }) else {
            return self.finish(key, Outcome::Done, now);
        };
        let purpose = match key {
            JobKey::Delete(_) => Purpose::Update,
            JobKey::Orphan(_) => Purpose::Finalize,
        };
        if let Some(job) = self.jobs.get_mut(key) {
            job.step = Step::Acting;
            job.outstanding = 1;
        }
        self.request(out, key, purpose, op);
    }

    fn owner_fetched(
        &mut self,
        key: &JobKey,
        uid: &str,
        i: usize,
        result: Result<Arc<Value>, ApiError>,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
        };
        job.outstanding -= 1;
        let r = job.refs[i].clone();
        match &result {
            Ok(owner) => job.states[i] = Some(classify(&r, Some(owner))),
            Err(e) if e.code == 404 => job.states[i] = Some(OwnerState::Dangling),
            Err(_) => job.failed = true,
        }
        if job.states[i] == Some(OwnerState::Dangling) {
            let ns = self
                .graph
                .get(uid)
                .and_then(|n| n.identity.namespace.clone())
                .filter(|_| resolve(&r.api_version, &r.kind).is_some_and(|x| x.namespaced));
            self.absent.add(AbsentOwners::key(ns.as_deref(), &r));
        }
        let job = self.jobs.get_mut(key).expect("present");
        if job.outstanding > 0 {
            return;
        }
        if job.failed {
            return self.finish(key, Outcome::Retry, now);
        }
        self.owners_checked(key, uid, now, out);
    }

    /// Every owner is classified: act on the decision.
    fn owners_checked(&mut self, key: &JobKey, uid: &str, now: Time, out: &mut Vec<Effect>) {
        let Some(node) = self.graph.get(uid) else {
            return self.finish(key, Outcome::Done, now);
        };
        let has_dependents = !node.dependents.is_empty();
        let identity = node.identity.clone();
        let dependent_waits = self.graph.a_dependent_deletes_dependents(uid);
        let job = self.jobs.get_mut(key).expect("job in progress");
        let latest = job.latest.clone().expect("fetched");
        let states: Vec<(&OwnerRef, OwnerState)> = job
            .refs
            .iter()
            .zip(&job.states)
            .map(|(r, s)| (r, s.expect("classified")))
            .collect();
        let finalizers: Vec<String> = latest["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(String::from))
            .collect();
        let decision = decide(&states, has_dependents, dependent_waits, &finalizers);
        let summary: Vec<String> = states
            .iter()
            .map(|(r, s)| format!("{} {} {s:?}", r.kind, r.name))
            .collect();
        match decision {
            Decision::Keep => {
                Self::log(
                    out,
                    4,
                    format!(
                        "{} keeps its owners ({})",
                        identity.describe(),
                        summary.join(", ")
                    ),
                );
                self.finish(key, Outcome::Done, now)
            }
            Decision::RemoveRefs(uids) => {
                Self::log(
                    out,
                    2,
                    format!(
                        "{} has a live owner; removing its references to absent or waiting owners ({})",
                        identity.describe(),
                        summary.join(", ")
                    ),
                );
                let Some(op) = update_of(&latest, |meta| {
                    if let Some(refs) = meta["ownerReferences"].as_array_mut() {
                        refs.retain(|r| {
                            !uids.iter().any(|u| r["uid"].as_str() == Some(u.as_str()))
                        });
                    }
                }) else {
                    return self.finish(key, Outcome::Done, now);
                };
                job.step = Step::Acting;
                job.outstanding = 1;
                self.request(out, key, Purpose::Update, op);
            }
            Decision::Delete { policy, unblock } => {
                Self::log(
                    out,
                    2,
                    format!(
                        "deleting {} ({}), propagation {policy}",
                        identity.describe(),
                        summary.join(", ")
                    ),
                );
                job.policy = policy;
                if unblock {
                    // k8s: unblockOwnerReferences — a dependent of it waits as well.
                    let Some(op) = update_of(&latest, |meta| {
                        for r in meta["ownerReferences"].as_array_mut().into_iter().flatten() {
                            r["blockOwnerDeletion"] = json!(false);
                        }
                    }) else {
                        return self.finish(key, Outcome::Done, now);
                    };
                    job.step = Step::Unblocking;
                    job.outstanding = 1;
                    self.request(out, key, Purpose::Update, op);
                    return;
                }
                let rv = latest["metadata"]["resourceVersion"]
                    .as_str()
                    .map(String::from);
                self.delete_item(key, &identity, rv, out);
            }
        }
    }

    fn delete_item(
        &mut self,
        key: &JobKey,
        identity: &Identity,
        resource_version: Option<String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(resource) = identity.resource() else {
            return;
        };
        let job = self.jobs.get_mut(key).expect("job in progress");
        job.step = Step::Acting;
        job.outstanding = 1;
        let op = ApiOp::Delete {
            resource,
            namespace: identity.namespace.clone(),
            name: identity.name.clone(),
            grace_period_seconds: None,
            precondition_uid: Some(identity.uid.clone()),
            precondition_resource_version: resource_version,
            propagation_policy: Some(job.policy),
        };
        self.request(out, key, Purpose::Delete, op);
    }

    fn delete_step(
        &mut self,
        key: &JobKey,
        uid: &str,
        purpose: Purpose,
        result: Result<Arc<Value>, ApiError>,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
        };
        let identity = self.graph.get(uid).map(|n| n.identity.clone());
        match (purpose, &job.step) {
            (Purpose::Update, Step::Unblocking) => match result {
                Ok(updated) => {
                    let rv = updated["metadata"]["resourceVersion"]
                        .as_str()
                        .map(String::from);
                    match identity {
                        Some(id) => self.delete_item(key, &id, rv, out),
                        None => self.finish(key, Outcome::Done, now),
                    }
                }
                Err(e) if e.code == 404 => self.finish(key, Outcome::Done, now),
                Err(_) => self.finish(key, Outcome::Retry, now),
            },
            (Purpose::Update, _) => match result {
                Ok(_) => self.finish(key, Outcome::Done, now),
                Err(e) if e.code == 404 => self.finish(key, Outcome::Done, now),
                Err(_) => self.finish(key, Outcome::Retry, now),
            },
            (Purpose::Delete, _) => match result {
                Ok(_) => self.finish(key, Outcome::Done, now),
                Err(e) if e.code == 404 => self.finish(key, Outcome::Done, now),
                Err(e) if e.code == 409 && identity.is_some() => {
                    // k8s: deleteObject — the object changed since it was judged; if its
                    // owners did not, delete it anyway, else judge it again.
                    let identity = identity.expect("checked");
                    let Some(resource) = identity.resource() else {
                        return self.finish(key, Outcome::Done, now);
                    };
                    job.step = Step::Reverifying;
                    job.outstanding = 1;
                    let op = ApiOp::Get {
                        resource,
                        namespace: identity.namespace.clone(),
                        name: identity.name.clone(),
                    };
                    self.request(out, key, Purpose::Reverify, op);
                }
                Err(_) => self.finish(key, Outcome::Retry, now),
            },
            (Purpose::Reverify, _) => {
                let before = job.latest.as_deref().map(owner_refs);
                match result {
                    Err(e) if e.code == 404 => self.finish(key, Outcome::Done, now),
                    Ok(live)
                        if live["metadata"]["uid"].as_str() == Some(uid)
                            && Some(owner_refs(&live)) == before =>
                    {
                        match identity {
                            Some(id) => self.delete_item(key, &id, None, out),
                            None => self.finish(key, Outcome::Done, now),
                        }
                    }
                    Ok(live) if live["metadata"]["uid"].as_str() != Some(uid) => {
                        self.finish(key, Outcome::Done, now)
                    }
                    _ => self.finish(key, Outcome::Retry, now),
                }
            }
            _ => {}
        }
    }

    // --- attemptToOrphan ---

    fn start_orphan(&mut self, uid: String, out: &mut Vec<Effect>, now: Time) {
        let key = JobKey::Orphan(uid.clone());
        let Some(node) = self.graph.get(&uid) else {
            self.finish(&key, Outcome::Done, now);
            return;
        };
        let dependents: Vec<(&'static ResourceInfo, Identity)> = node
            .dependents
            .iter()
            .filter_map(|d| self.graph.get(d))
            .filter_map(|d| Some((d.identity.resource()?, d.identity.clone())))
            .collect();
        Self::log(
            out,
            2,
            format!(
                "orphaning the {} dependents of {}",
                dependents.len(),
                node.identity.describe()
            ),
        );
        let mut job = Job::new(Step::Owners);
        job.outstanding = dependents.len();
        self.jobs.insert(key.clone(), job);
        if dependents.is_empty() {
            return self.orphaned(&key, &uid, out);
        }
        for (resource, d) in dependents {
            let op = ApiOp::Get {
                resource,
                namespace: d.namespace.clone(),
                name: d.name.clone(),
            };
            self.request(out, &key, Purpose::GetDependent, op);
        }
    }

    /// Every dependent is released (or failed): take the finalizer off the owner.
    fn orphaned(&mut self, key: &JobKey, uid: &str, out: &mut Vec<Effect>) {
        let Some(identity) = self.graph.get(uid).map(|n| n.identity.clone()) else {
            return;
        };
        let Some(resource) = identity.resource() else {
            return;
        };
        let op = ApiOp::Get {
            resource,
            namespace: identity.namespace.clone(),
            name: identity.name.clone(),
        };
        let job = self.jobs.get_mut(key).expect("job in progress");
        job.step = Step::Acting;
        job.outstanding = 1;
        self.request(out, key, Purpose::GetOwnerToFinalize, op);
    }

    fn orphan_step(
        &mut self,
        key: &JobKey,
        uid: &str,
        purpose: Purpose,
        result: Result<Arc<Value>, ApiError>,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let Some(job) = self.jobs.get_mut(key) else {
            return;
        };
        match purpose {
            Purpose::GetDependent => {
                let still_owned = match &result {
                    Ok(dep) => owner_refs(dep).iter().any(|r| r.uid == uid),
                    Err(e) if e.code == 404 => false,
                    Err(_) => {
                        job.failed = true;
                        false
                    }
                };
                let op = match (&result, still_owned) {
                    (Ok(dep), true) => update_of(dep, |meta| {
                        if let Some(refs) = meta["ownerReferences"].as_array_mut() {
                            refs.retain(|r| r["uid"].as_str() != Some(uid));
                        }
                    }),
                    _ => None,
                };
                match op {
                    Some(op) => self.request(out, key, Purpose::UpdateDependent, op),
                    None => self.orphan_progress(key, uid, now, out),
                }
            }
            Purpose::UpdateDependent => {
                if result.as_ref().is_err_and(|e| e.code != 404) {
                    job.failed = true;
                }
                self.orphan_progress(key, uid, now, out);
            }
            Purpose::GetOwnerToFinalize => match result {
                Ok(owner) if owner["metadata"]["uid"].as_str() == Some(uid) => {
                    self.remove_finalizer(key, &owner, ORPHAN_FINALIZER, now, out)
                }
                Ok(_) => self.finish(key, Outcome::Done, now),
                Err(e) if e.code == 404 => self.finish(key, Outcome::Done, now),
                Err(_) => self.finish(key, Outcome::Retry, now),
            },
            Purpose::Finalize => match result {
                Err(e) if e.code != 404 => self.finish(key, Outcome::Retry, now),
                _ => self.finish(key, Outcome::Done, now),
            },
            _ => {}
        }
    }

    /// One dependent is done with.
    fn orphan_progress(&mut self, key: &JobKey, uid: &str, now: Time, out: &mut Vec<Effect>) {
        let job = self.jobs.get_mut(key).expect("job in progress");
        job.outstanding -= 1;
        if job.outstanding > 0 {
            return;
        }
        if job.failed {
            return self.finish(key, Outcome::Retry, now);
        }
        self.orphaned(key, uid, out);
    }

    // --- plumbing ---

    fn finish(&mut self, key: &JobKey, outcome: Outcome, now: Time) {
        self.jobs.remove(key);
        let (queue, uid) = match key {
            JobKey::Delete(u) => (&mut self.deletes, u),
            JobKey::Orphan(u) => (&mut self.orphans, u),
        };
        queue.done(uid);
        match outcome {
            Outcome::Done => queue.forget(uid),
            Outcome::Retry => queue.add_rate_limited(uid, now),
        }
    }

    fn on_result(
        &mut self,
        id: u64,
        result: Result<Arc<Value>, ApiError>,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let Some((key, purpose)) = self.requests.remove(&id) else {
            return;
        };
        if !self.jobs.contains_key(&key) {
            return;
        }
        match (&key, purpose) {
            (JobKey::Delete(uid), Purpose::GetItem) => {
                let uid = uid.clone();
                self.item_fetched(&key, &uid, result, now, out)
            }
            (JobKey::Delete(uid), Purpose::GetOwner(i)) => {
                let uid = uid.clone();
                self.owner_fetched(&key, &uid, i, result, now, out)
            }
            (JobKey::Delete(uid), purpose) => {
                let uid = uid.clone();
                self.delete_step(&key, &uid, purpose, result, now, out)
            }
            (JobKey::Orphan(uid), purpose) => {
                let uid = uid.clone();
                self.orphan_step(&key, &uid, purpose, result, now, out)
            }
        }
    }

    fn synced(&self) -> bool {
        self.synced.len() == self.resources.len()
    }

    /// Starts jobs while workers are free, and keeps the queues' timer armed.
    fn pump(&mut self, now: Time, out: &mut Vec<Effect>) {
        // k8s: the collector waits for its graph to sync; orphaning from a half-built graph
        // would miss dependents.
        if !self.synced() {
            return;
        }
        self.deletes.advance(now);
        self.orphans.advance(now);
        let running = |jobs: &BTreeMap<JobKey, Job>, orphan: bool| {
            jobs.keys()
                .filter(|k| matches!(k, JobKey::Orphan(_)) == orphan)
                .count()
        };
        while running(&self.jobs, false) < WORKERS {
            let Some(uid) = self.deletes.get() else { break };
            self.start_delete(uid, out, now);
        }
        while running(&self.jobs, true) < WORKERS {
            let Some(uid) = self.orphans.get() else { break };
            self.start_orphan(uid, out, now);
        }
        let wake = match (self.deletes.next_wakeup(), self.orphans.next_wakeup()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if wake != self.armed {
            self.armed = wake;
            if let Some(at) = wake {
                out.push(Effect::Timer {
                    id: QUEUE_TIMER,
                    at,
                });
            }
        }
    }
}

/// An update of `obj` (its own resourceVersion: optimistic) with `change` applied to its
/// metadata; `None` if it changes nothing.
fn update_of(obj: &Value, change: impl FnOnce(&mut Value)) -> Option<ApiOp> {
    let mut body = obj.clone();
    change(&mut body["metadata"]);
    if body == *obj {
        return None;
    }
    let meta = &obj["metadata"];
    let namespace = meta["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(String::from);
    let name = meta["name"].as_str().unwrap_or("").to_string();
    let kind = obj["kind"].as_str().unwrap_or("");
    let resource = resolve(obj["apiVersion"].as_str().unwrap_or(""), kind)?;
    Some(ApiOp::Update {
        resource,
        namespace,
        name,
        body,
        part: Part::Main,
    })
}

impl Component for GarbageCollector {
    fn name(&self) -> &str {
        "garbage-collector"
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::GENERIC_GARBAGE_COLLECTOR,
        )
    }

    fn watches(&self) -> Vec<WatchSpec> {
        self.resources.iter().map(|r| WatchSpec::all(r)).collect()
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed {
                resource, items, ..
            } => self.on_list(resource, &items),
            Input::Watched { resource, event } => self.on_event(resource, &event),
            Input::Timer { .. } => self.armed = None,
            Input::ApiResult { id, result } => self.on_result(id, result, now, out),
            Input::RuntimeResult { .. } | Input::ContainerExited { .. } => {}
        }
        self.pump(now, out);
    }
}

#[cfg(test)]
mod tests;
