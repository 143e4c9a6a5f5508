//! The EndpointSlice controller: the pods a Service (with a selector) selects, as
//! EndpointSlices of at most 100 endpoints, labelled with the Service's name and this
//! controller, owned by the Service. Each endpoint carries its conditions (ready, serving,
//! terminating), node, zone, pod reference and hostname; slices group endpoints that serve
//! the same ports. Reconciling keeps endpoints in the slices they are in, fills slices with
//! room before creating new ones, updates in place and deletes the slices left empty (a
//! Service without endpoints keeps one empty placeholder slice).
//! k8s: pkg/controller/endpointslice (syncService), staging/src/k8s.io/endpointslice
//! (reconciler.go, utils.go podToEndpoint); reference/k8s-semantics.md §6.1–6.2.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{EndpointPort, EndpointSlice};
use rand::RngCore;
use serde_json::{json, Value};

use super::cache::{Cache, Change};
use super::endpointutil as util;
use super::queue::WorkQueue;
use crate::api::registry::{self, ResourceInfo};
use crate::api::status::ApiError;
use crate::apiserver::Part;
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

/// k8s: --max-endpoints-per-slice
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// k8s: --concurrent-service-endpoint-syncs
pub const WORKERS: usize = 5;

const QUEUE_TIMER: u64 = 0;

fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    registry::by_plural(group, plural).expect("registered")
}

fn slices_res() -> &'static ResourceInfo {
    res("discovery.k8s.io", "endpointslices")
}

/// The endpoint of a pod for a Service (§6.2). k8s: podToEndpoint
pub fn pod_endpoint(pod: &Pod, svc: &Service, zone: Option<&str>) -> Value {
    let serving = util::is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // k8s: never ready while terminating, unless publishNotReadyAddresses.
    let ready = util::publish_not_ready(svc) || (serving && !terminating);
    let mut ep = json!({
        "addresses": util::pod_ipv4(pod).into_iter().collect::<Vec<_>>(),
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": util::target_ref(pod),
    });
    if let Some(node) = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
    {
        ep["nodeName"] = json!(node);
    }
    if let Some(z) = zone.filter(|z| !z.is_empty()) {
        ep["zone"] = json!(z);
    }
    if let Some(h) = util::hostname(pod, svc) {
        ep["hostname"] = json!(h);
    }
    ep
}

fn canonical_ports(ports: &[EndpointPort]) -> Value {
    serde_json::to_value(ports).expect("serializes")
}

fn endpoint_key(ep: &Value) -> String {
    let r = &ep["targetRef"];
    format!(
        "{}/{}",
        r["namespace"].as_str().unwrap_or(""),
        r["name"].as_str().unwrap_or("")
    )
}

/// The labels a Service's slices carry: the Service's own (but for the two the controller
/// sets), the service name, the manager, and the headless label. k8s: setEndpointSliceLabels
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(util::LABEL_HEADLESS);
    if util::is_headless(svc) {
        labels.insert(util::LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(
        util::LABEL_SERVICE_NAME.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(util::LABEL_MANAGED_BY.into(), util::MANAGED_BY.into());
    labels
}

/// What a sync does: slices to create (bodies), to update (bodies) and to delete (names).
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub creates: Vec<Value>,
    pub updates: Vec<Value>,
    pub deletes: Vec<String>,
}

/// One slice as the plan wants it: its ports and endpoints by key.
struct Wanted {
    ports: Value,
    endpoints: BTreeMap<String, Value>,
}

fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && Some(&r.uid) == svc.metadata.uid.as_ref())
}

/// Reconciles a Service's slices (k8s: reconciler.reconcile, simplified): `existing` are the
/// slices labelled as this controller's for the Service; `zone` gives a node's zone; the
/// slices written carry `trigger` as their last-change trigger time (or none).
pub fn plan(
    svc: &Service,
    pods: &[&Pod],
    zone: &dyn Fn(&str) -> Option<String>,
    existing: &[&EndpointSlice],
    max_per_slice: usize,
    trigger: Option<&str>,
) -> Plan {
    // The endpoints wanted, grouped by the ports they serve (k8s: endpointMeta by portMapKey).
    let mut groups: BTreeMap<String, (Value, BTreeMap<String, Value>)> = BTreeMap::new();
    for pod in pods {
        // k8s: the slice controller keeps terminating pods (§6.1, includeTerminating).
        if !util::should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let z = node.and_then(zone);
        // Built in the form the typed objects serialize to, so they compare with stored ones.
        let ep = pod_endpoint(pod, svc, z.as_deref());
        let ports = json!(util::pod_ports(pod, svc));
        let key = ports.to_string();
        groups
            .entry(key)
            .or_insert_with(|| (ports, BTreeMap::new()))
            .1
            .insert(endpoint_key(&ep), ep);
    }
    let total: usize = groups.values().map(|g| g.1.len()).sum();

    let mut plan = Plan::default();
    let mut sorted: Vec<&EndpointSlice> = existing.to_vec();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // Slices of another (older) Service of the name, or another address type, go.
    let (mine, foreign): (Vec<&EndpointSlice>, Vec<&EndpointSlice>) = sorted
        .into_iter()
        .partition(|s| owned_by(s, svc) && s.address_type == "IPv4");
    plan.deletes
        .extend(foreign.iter().filter_map(|s| s.metadata.name.clone()));

    // 1. Endpoints stay in the slice they are in (updated); slices whose ports are no longer
    //    wanted are spare.
    let mut kept: Vec<(&EndpointSlice, Wanted)> = Vec::new();
    let mut spare: Vec<&EndpointSlice> = Vec::new();
    for s in mine {
        let ports = canonical_ports(s.ports.as_deref().unwrap_or(&[]));
        let Some((_, wanted)) = groups.get_mut(&ports.to_string()) else {
            spare.push(s);
            continue;
        };
        let mut endpoints = BTreeMap::new();
        for ep in &s.endpoints {
            let key = ep
                .target_ref
                .as_ref()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r.namespace.as_deref().unwrap_or(""),
                        r.name.as_deref().unwrap_or("")
                    )
                })
                .unwrap_or_default();
            if let Some(v) = wanted.remove(&key) {
                endpoints.insert(key, v);
            }
        }
        if endpoints.is_empty() {
            spare.push(s);
        } else {
            kept.push((s, Wanted { ports, endpoints }));
        }
    }
    // 2. New endpoints fill the kept slices with room, then new slices (spare ones first).
    let mut new_slices: Vec<Wanted> = Vec::new();
    for (_, (ports, rest)) in groups {
        let mut rest = rest.into_iter();
        for (s, w) in kept.iter_mut() {
            let same = canonical_ports(s.ports.as_deref().unwrap_or(&[])) == ports;
            while same && w.endpoints.len() < max_per_slice {
                let Some((k, v)) = rest.next() else { break };
                w.endpoints.insert(k, v);
            }
        }
        let rest: Vec<(String, Value)> = rest.collect();
        for chunk in rest.chunks(max_per_slice.max(1)) {
            new_slices.push(Wanted {
                ports: ports.clone(),
                endpoints: chunk.iter().cloned().collect(),
            });
        }
    }
    // k8s: a Service without endpoints keeps one empty placeholder slice.
    if total == 0 {
        new_slices.push(Wanted {
            ports: json!([]),
            endpoints: BTreeMap::new(),
        });
    }
    let mut spare = spare.into_iter();
    for w in new_slices {
        match spare.next() {
            Some(s) => kept.push((s, w)),
            None => plan.creates.push(slice_body(svc, None, &w, trigger)),
        }
    }
    plan.deletes
        .extend(spare.filter_map(|s| s.metadata.name.clone()));
    // 3. Kept slices are written when they differ.
    let labels = slice_labels(svc);
    for (s, w) in kept {
        let same = s.metadata.labels.as_ref() == Some(&labels)
            && canonical_ports(s.ports.as_deref().unwrap_or(&[])) == w.ports
            && s.endpoints.len() == w.endpoints.len()
            && s.endpoints
                .iter()
                .zip(w.endpoints.values())
                .all(|(have, want)| serde_json::to_value(have).ok().as_ref() == Some(want));
        if !same {
            plan.updates.push(slice_body(svc, Some(s), &w, trigger));
        }
    }
    plan
}

fn slice_body(
    svc: &Service,
    existing: Option<&EndpointSlice>,
    w: &Wanted,
    trigger: Option<&str>,
) -> Value {
    let mut body = match existing {
        Some(s) => serde_json::to_value(s).expect("serializes"),
        None => json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": format!("{}-", svc.metadata.name.as_deref().unwrap_or("")),
                "namespace": svc.metadata.namespace,
                "ownerReferences": [{
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": svc.metadata.name,
                    "uid": svc.metadata.uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "addressType": "IPv4",
        }),
    };
    body["apiVersion"] = json!("discovery.k8s.io/v1");
    body["kind"] = json!("EndpointSlice");
    body["metadata"]["labels"] = json!(slice_labels(svc));
    // k8s: addTriggerTimeAnnotation — set, or removed without a new trigger time.
    let meta = body["metadata"].as_object_mut().expect("metadata");
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("annotations");
    match trigger {
        Some(t) => annotations.insert(util::LAST_CHANGE_TRIGGER_TIME.into(), json!(t)),
        None => annotations.remove(util::LAST_CHANGE_TRIGGER_TIME),
    };
    if annotations.is_empty() {
        meta.remove("annotations");
    }
    body["endpoints"] = json!(w.endpoints.values().collect::<Vec<_>>());
    match w.ports.as_array() {
        Some(p) if !p.is_empty() => body["ports"] = w.ports.clone(),
        _ => {
            if let Some(m) = body.as_object_mut() {
                m.remove("ports");
            }
        }
    }
    body
}

#[derive(Debug)]
enum Purpose {
    Write,
    Delete(String),
}

pub struct EndpointSliceController {
    services: Cache<Service>,
    pods: Cache<Pod>,
    nodes: Cache<Node>,
    triggers: util::TriggerTimes,
    /// Indexed by `namespace/service` for the slices this controller manages ("" for others).
    slices: Cache<EndpointSlice>,
    queue: WorkQueue,
    /// Syncs in progress: requests outstanding, and whether one failed.
    syncs: BTreeMap<String, (usize, bool)>,
    requests: BTreeMap<u64, (String, Purpose)>,
    /// Per Service, its slices this controller wrote and the cache has not shown yet: the
    /// resourceVersion written, or `None` for a deletion. A sync waits for them, so that it
    /// never works from a cache older than its own writes (k8s: endpointSliceTracker).
    written: BTreeMap<String, BTreeMap<String, Option<u64>>>,
    next_id: u64,
    armed: Option<Time>,
}

impl Default for EndpointSliceController {
    fn default() -> Self {
        Self::new()
    }
}

/// The `namespace/service` key of a slice this controller manages.
fn managed_service(s: &EndpointSlice) -> Option<String> {
    let labels = s.metadata.labels.as_ref()?;
    if labels.get(util::LABEL_MANAGED_BY).map(String::as_str) != Some(util::MANAGED_BY) {
        return None;
    }
    let svc = labels.get(util::LABEL_SERVICE_NAME)?;
    Some(format!(
        "{}/{svc}",
        s.metadata.namespace.as_deref().unwrap_or("")
    ))
}

fn revision_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl EndpointSliceController {
    pub fn new() -> Self {
        EndpointSliceController {
            services: Cache::new(),
            pods: Cache::new(),
            nodes: Cache::new(),
            triggers: util::TriggerTimes::default(),
            slices: Cache::with_index(|s| managed_service(s).unwrap_or_default()),
            queue: WorkQueue::new(),
            syncs: BTreeMap::new(),
            requests: BTreeMap::new(),
            written: BTreeMap::new(),
            next_id: 1,
            armed: None,
        }
    }

    fn on_slice(&mut self, c: Change<EndpointSlice>) {
        let name = c.key.split_once('/').map_or(c.key.as_str(), |(_, n)| n);
        for s in c.old.iter().chain(c.new.iter()) {
            if let Some(key) = managed_service(s) {
                // A slice gone is no longer awaited at any version.
                if c.new.is_none() {
                    if let Some(w) = self.written.get_mut(&key) {
                        w.retain(|n, rv| !(n == name && rv.is_some()));
                    }
                }
                self.queue.add(&key);
            }
        }
    }

    fn request(&mut self, key: &str, purpose: Purpose, op: ApiOp, out: &mut Vec<Effect>) {
        let id = self.next_id;
        self.next_id += 1;
        out.push(Effect::Log {
            v: 4,
            message: format!("endpointslice-controller: {}", op.describe()),
        });
        self.requests.insert(id, (key.to_string(), purpose));
        self.syncs.entry(key.to_string()).or_default().0 += 1;
        out.push(Effect::Api { id, op });
    }

    /// Whether the cache still lacks writes this controller made for the Service.
    fn stale(&mut self, key: &str) -> bool {
        let ns = key.split_once('/').map_or("", |(ns, _)| ns);
        let Some(w) = self.written.get_mut(key) else {
            return false;
        };
        let slices = &self.slices;
        w.retain(|name, want| {
            let current = slices.get(&format!("{ns}/{name}"));
            match want {
                Some(rv) => current.is_none_or(|s| revision_of(&s.metadata) < *rv),
                None => current.is_some(),
            }
        });
        if w.is_empty() {
            self.written.remove(key);
            return false;
        }
        true
    }

    fn sync(&mut self, key: String, now: Time, out: &mut Vec<Effect>) {
        if self.stale(&key) {
            // k8s: the cache is out of date: try again after a backoff.
            return self.finish(&key, true, now);
        }
        let (ns, _) = key.split_once('/').unwrap_or(("", &key));
        let ns = ns.to_string();
        let existing: Vec<Arc<EndpointSlice>> =
            self.slices.indexed(&key).map(|(_, s)| s.clone()).collect();
        let Some(svc) = self.services.get_shared(&key) else {
            self.triggers.forget(&key);
            // The Service is gone: so are its slices (k8s leaves this to the garbage
            // collector, through their owner references).
            for s in existing {
                let name = s.metadata.name.clone().unwrap_or_default();
                let op = ApiOp::Delete {
                    resource: slices_res(),
                    namespace: Some(ns.clone()),
                    name: name.clone(),
                    grace_period_seconds: None,
                    precondition_uid: s.metadata.uid.clone(),
                    precondition_resource_version: None,
                    propagation_policy: None,
                };
                self.request(&key, Purpose::Delete(name), op, out);
            }
            if self.syncs.get(&key).is_none_or(|s| s.0 == 0) {
                self.finish(&key, false, now);
            }
            return;
        };
        // k8s: ExternalName Services and Services without a selector get no slices here.
        let external = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
        if external || util::selector(&svc).is_none() {
            return self.finish(&key, false, now);
        }
        let pods = util::selected_pods(&svc, &self.pods);
        let nodes = &self.nodes;
        let zone = |node: &str| -> Option<String> {
            nodes
                .get(node)?
                .metadata
                .labels
                .as_ref()?
                .get(util::LABEL_ZONE)
                .cloned()
        };
        let refs: Vec<&EndpointSlice> = existing.iter().map(|s| &**s).collect();
        let trigger = self.triggers.compute(&key, &svc, &pods);
        let plan = plan(
            &svc,
            &pods,
            &zone,
            &refs,
            MAX_ENDPOINTS_PER_SLICE,
            trigger.as_deref(),
        );
        for body in plan.creates {
            let op = ApiOp::Create {
                resource: slices_res(),
                namespace: Some(ns.clone()),
                body,
            };
            self.request(&key, Purpose::Write, op, out);
        }
        for body in plan.updates {
            let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
            let op = ApiOp::Update {
                resource: slices_res(),
                namespace: Some(ns.clone()),
                name,
                body,
                part: Part::Main,
            };
            self.request(&key, Purpose::Write, op, out);
        }
        for name in plan.deletes {
            let op = ApiOp::Delete {
                resource: slices_res(),
                namespace: Some(ns.clone()),
                name: name.clone(),
                grace_period_seconds: None,
                precondition_uid: None,
                precondition_resource_version: None,
                propagation_policy: None,
            };
            self.request(&key, Purpose::Delete(name), op, out);
        }
        if self.syncs.get(&key).is_none_or(|s| s.0 == 0) {
            self.finish(&key, false, now);
        }
    }

    fn finish(&mut self, key: &str, failed: bool, now: Time) {
        self.syncs.remove(key);
        self.queue.done(key);
        if failed {
            self.queue.add_rate_limited(key, now);
        } else {
            self.queue.forget(key);
        }
    }

    fn on_result(&mut self, id: u64, result: Result<Arc<Value>, ApiError>, now: Time) {
        let Some((key, purpose)) = self.requests.remove(&id) else {
            return;
        };
        let seen = match (&purpose, &result) {
            (Purpose::Write, Ok(obj)) => obj["metadata"]["name"]
                .as_str()
                .map(|n| (n.to_string(), Some(revision_of_value(obj)))),
            (Purpose::Delete(name), Ok(_)) => Some((name.clone(), None)),
            (Purpose::Delete(name), Err(e)) if e.code == 404 => Some((name.clone(), None)),
            _ => None,
        };
        if let Some((name, rv)) = seen {
            self.written
                .entry(key.clone())
                .or_default()
                .insert(name, rv);
        }
        let Some(sync) = self.syncs.get_mut(&key) else {
            return;
        };
        sync.0 -= 1;
        if let Err(e) = &result {
            sync.1 |= e.code != 404;
        }
        if sync.0 == 0 {
            let failed = sync.1;
            self.finish(&key, failed, now);
        }
    }

    fn pump(&mut self, now: Time, out: &mut Vec<Effect>) {
        // k8s: WaitForCacheSync
        let synced = self.services.synced()
            && self.pods.synced()
            && self.nodes.synced()
            && self.slices.synced();
        if !synced {
            return;
        }
        self.queue.advance(now);
        while self.syncs.len() < WORKERS {
            let Some(key) = self.queue.get() else { break };
            self.syncs.insert(key.clone(), (0, false));
            self.sync(key, now, out);
        }
        let wake = self.queue.next_wakeup();
        crate::controllers::queue::arm_timer(&mut self.armed, wake, QUEUE_TIMER, out);
    }
}

fn revision_of_value(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Component for EndpointSliceController {
    fn name(&self) -> &str {
        "endpointslice-controller"
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::ENDPOINTSLICE,
        )
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![
            WatchSpec::all(res("", "services")),
            WatchSpec::all(res("", "pods")),
            WatchSpec::all(res("", "nodes")),
            WatchSpec::all(slices_res()),
        ]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        if let Some(changes) = self.services.feed(res("", "services"), &input) {
            for c in changes {
                self.queue.add(&c.key);
            }
        } else if let Some(changes) = self.pods.feed(res("", "pods"), &input) {
            for c in changes {
                for key in
                    util::services_for_change(c.old.as_deref(), c.new.as_deref(), &self.services)
                {
                    self.queue.add(&key);
                }
            }
        } else if self.nodes.feed(res("", "nodes"), &input).is_some() {
            // Zones are read at sync time (k8s requeues on node changes only for topology
            // hints, which are not served).
        } else if let Some(changes) = self.slices.feed(slices_res(), &input) {
            for c in changes {
                self.on_slice(c);
            }
        }
        match input {
            Input::Timer { .. } => self.armed = None,
            Input::ApiResult { id, result } => self.on_result(id, result, now),
            _ => {}
        }
        self.pump(now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn svc(v: Value) -> Service {
        let mut base = json!({"metadata": {"name": "s", "namespace": "ns", "uid": "su",
                                           "labels": {"team": "x"}},
                              "spec": {"selector": {"app": "a"},
                                       "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}});
        crate::apiserver::patch::merge(&mut base, &v);
        serde_json::from_value(base).unwrap()
    }

    fn pod(name: &str, ready: bool, v: Value) -> Pod {
        let n: u32 = name.trim_start_matches('p').parse().unwrap_or(0);
        let mut base = json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"),
                                           "labels": {"app": "a"}},
                              "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
                                  {"name": "http", "containerPort": 8080}]}]},
                              "status": {"phase": "Running", "podIP": format!("10.1.{}.{}", n / 250, n % 250 + 1),
                                         "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}});
        crate::apiserver::patch::merge(&mut base, &v);
        serde_json::from_value(base).unwrap()
    }

    fn zone(node: &str) -> Option<String> {
        (node == "n1").then(|| "z1".to_string())
    }

    /// Applies a plan the way the apiserver would, naming created slices `s-<n>`.
    fn apply(slices: &mut Vec<EndpointSlice>, plan: Plan, next: &mut u32) {
        slices.retain(|s| !plan.deletes.contains(s.metadata.name.as_ref().unwrap()));
        for u in plan.updates {
            let u: EndpointSlice = serde_json::from_value(u).unwrap();
            let at = slices
                .iter()
                .position(|s| s.metadata.name == u.metadata.name)
                .unwrap();
            slices[at] = u;
        }
        for mut c in plan.creates {
            *next += 1;
            c["metadata"]["name"] = json!(format!("s-{next}"));
            slices.push(serde_json::from_value(c).unwrap());
        }
    }

    fn reconcile(
        svc: &Service,
        pods: &[Pod],
        slices: &mut Vec<EndpointSlice>,
        next: &mut u32,
    ) -> (usize, usize, usize) {
        let refs: Vec<&Pod> = pods.iter().collect();
        let existing: Vec<EndpointSlice> = slices.clone();
        let ex: Vec<&EndpointSlice> = existing.iter().collect();
        let p = plan(svc, &refs, &zone, &ex, 3, None);
        let counts = (p.creates.len(), p.updates.len(), p.deletes.len());
        apply(slices, p, next);
        counts
    }

    #[test]
    fn conditions_section_6_2() {
        let term = json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}});
        // (case, publishNotReadyAddresses, pod ready, terminating, ready, serving, terminating)
        let table = [
            ("ready", false, true, false, true, true, false),
            ("not ready", false, false, false, false, false, false),
            (
                "ready but terminating",
                false,
                true,
                true,
                false,
                true,
                true,
            ),
            (
                "not ready, terminating",
                false,
                false,
                true,
                false,
                false,
                true,
            ),
            (
                "publishNotReadyAddresses: not ready",
                true,
                false,
                false,
                true,
                false,
                false,
            ),
            (
                "publishNotReadyAddresses: terminating",
                true,
                true,
                true,
                true,
                true,
                true,
            ),
        ];
        for (what, publish, ready, terminating, w_ready, w_serving, w_term) in table {
            let s = svc(json!({"spec": {"publishNotReadyAddresses": publish}}));
            let p = pod(
                "p1",
                ready,
                if terminating { term.clone() } else { json!({}) },
            );
            let ep = pod_endpoint(&p, &s, Some("z1"));
            assert_eq!(
                ep["conditions"],
                json!({"ready": w_ready, "serving": w_serving, "terminating": w_term}),
                "{what}"
            );
        }
        let ep = pod_endpoint(&pod("p1", true, json!({})), &svc(json!({})), Some("z1"));
        assert_eq!(
            (
                ep["addresses"].clone(),
                ep["nodeName"].clone(),
                ep["zone"].clone(),
                ep["targetRef"]["name"].clone()
            ),
            (json!(["10.1.0.2"]), json!("n1"), json!("z1"), json!("p1"))
        );
    }

    #[test]
    fn a_new_service_gets_labelled_owned_slices_of_at_most_the_maximum() {
        let s = svc(json!({}));
        let pods: Vec<Pod> = (1..=7)
            .map(|i| pod(&format!("p{i}"), true, json!({})))
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&s, &refs, &zone, &[], 3, None);
        assert_eq!(
            (p.creates.len(), p.updates.len(), p.deletes.len()),
            (3, 0, 0)
        );
        let sizes: Vec<usize> = p
            .creates
            .iter()
            .map(|c| c["endpoints"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [3, 3, 1]);
        let c = &p.creates[0];
        assert_eq!(c["metadata"]["generateName"], "s-");
        assert_eq!(c["addressType"], "IPv4");
        assert_eq!(
            c["metadata"]["labels"],
            json!({"team": "x", "kubernetes.io/service-name": "s",
                   "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
        );
        assert_eq!(
            c["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Service", "name": "s", "uid": "su",
                    "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(
            c["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        // Terminating pods stay (not ready); finished pods and pods without an IP do not.
        let pods = [
            pod(
                "p1",
                true,
                json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
            ),
            pod("p2", true, json!({"status": {"phase": "Failed"}})),
            pod("p3", true, json!({"status": {"podIP": null}})),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&s, &refs, &zone, &[], 3, None);
        let eps = p.creates[0]["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0]["conditions"]["terminating"], true);
    }

    #[test]
    fn reconciling_updates_in_place_fills_slices_and_deletes_the_empty() {
        let s = svc(json!({}));
        let mut slices = Vec::new();
        let mut next = 0;
        let mut pods: Vec<Pod> = (1..=5)
            .map(|i| pod(&format!("p{i}"), true, json!({})))
            .collect();
        assert_eq!(reconcile(&s, &pods, &mut slices, &mut next), (2, 0, 0));
        // Nothing changed: nothing to do.
        assert_eq!(reconcile(&s, &pods, &mut slices, &mut next), (0, 0, 0));
        // A pod turns not ready: one slice updated in place.
        pods[0] = pod("p1", false, json!({}));
        assert_eq!(reconcile(&s, &pods, &mut slices, &mut next), (0, 1, 0));
        let ep = slices
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some("p1"))
            .unwrap();
        assert_eq!(ep.conditions.as_ref().unwrap().ready, Some(false));
        // A new pod fills the slice with room.
        pods.push(pod("p6", true, json!({})));
        assert_eq!(reconcile(&s, &pods, &mut slices, &mut next), (0, 1, 0));
        assert_eq!(
            slices.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(),
            [3, 3]
        );
        // Pods go: the emptied slice is deleted.
        pods.truncate(3);
        assert_eq!(reconcile(&s, &pods, &mut slices, &mut next), (0, 0, 1));
        assert_eq!(slices.len(), 1);
        // No pods at all: the last slice stays as an empty placeholder.
        assert_eq!(reconcile(&s, &[], &mut slices, &mut next), (0, 1, 0));
        assert_eq!(
            (
                slices.len(),
                slices[0].endpoints.len(),
                slices[0].ports.clone()
            ),
            (1, 0, None)
        );
        assert_eq!(reconcile(&s, &[], &mut slices, &mut next), (0, 0, 0));
        // A slice of an older Service of the name (another uid) is deleted.
        let other = svc(json!({"metadata": {"uid": "older"}}));
        assert_eq!(reconcile(&other, &[], &mut slices, &mut next), (1, 0, 1));
        // A service label change reaches the slices.
        let relabelled = svc(json!({"metadata": {"uid": "older", "labels": {"team": "y"}}}));
        assert_eq!(
            reconcile(&relabelled, &[], &mut slices, &mut next),
            (0, 1, 0)
        );
    }

    #[test]
    fn pods_serving_different_ports_get_different_slices() {
        let s = svc(json!({"spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "raw", "port": 90, "targetPort": 9090}]}}));
        let pods = [
            pod("p1", true, json!({})),
            pod("p2", true, json!({"spec": {"containers": [{"name": "c"}]}})),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&s, &refs, &zone, &[], 100, None);
        let mut ports: Vec<Vec<String>> = p
            .creates
            .iter()
            .map(|c| {
                c["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .collect();
        ports.sort();
        assert_eq!(ports, [vec!["http", "raw"], vec!["raw"]]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the pods do between syncs, a reconcile leaves every included pod in exactly
        /// one slice, no slice over the maximum, no empty slice unless it is the one placeholder,
        /// and a second reconcile with nothing changed writes nothing.
        #[test]
        fn reconciling_converges_from_any_history(
            steps in proptest::collection::vec(
                proptest::collection::vec((0u32..40, 0u8..4), 0..40), 1..6),
        ) {
            let s = svc(json!({"spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": "http"}]}}));
            let mut slices = Vec::new();
            let mut next = 0;
            for step in steps {
                // Each pod: 0 ready, 1 not ready, 2 terminating, 3 without the named port.
                let mut by_name = BTreeMap::new();
                for (n, kind) in step {
                    let patch = match kind {
                        2 => json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
                        3 => json!({"spec": {"containers": [{"name": "c"}]}}),
                        _ => json!({}),
                    };
                    by_name.insert(n, pod(&format!("p{n}"), kind != 1, patch));
                }
                let pods: Vec<Pod> = by_name.into_values().collect();
                reconcile(&s, &pods, &mut slices, &mut next);
                let mut seen = BTreeSet::new();
                for sl in &slices {
                    proptest::prop_assert!(sl.endpoints.len() <= 3);
                    for e in &sl.endpoints {
                        let name = e.target_ref.as_ref().unwrap().name.clone().unwrap();
                        proptest::prop_assert!(seen.insert(name));
                    }
                }
                let want: BTreeSet<String> =
                    pods.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
                proptest::prop_assert_eq!(&seen, &want);
                let empty = slices.iter().filter(|s| s.endpoints.is_empty()).count();
                proptest::prop_assert!(
                    empty == 0 || (empty == 1 && slices.len() == 1 && pods.is_empty()),
                    "{} empty of {}", empty, slices.len()
                );
                proptest::prop_assert_eq!(reconcile(&s, &pods, &mut slices, &mut next), (0, 0, 0));
            }
        }
    }
}
