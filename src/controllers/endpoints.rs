//! The Endpoints controller: every Service with a selector gets an Endpoints object of its name
//! listing the pods it selects, ready ones in `addresses`, the others in `notReadyAddresses`,
//! with each pod's resolved ports; the Endpoints of a deleted Service are deleted. Services
//! without a selector are left alone (their Endpoints are the user's).
//! k8s: pkg/controller/endpoint/endpoints_controller.go (syncService, addEndpointSubset),
//! pkg/api/v1/endpoints/util.go (RepackSubsets); reference/k8s-semantics.md §6.1, §6.3.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
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

/// k8s: --concurrent-endpoint-syncs
pub const WORKERS: usize = 5;
/// The most addresses one Endpoints holds (k8s: maxCapacity).
pub const MAX_CAPACITY: usize = 1000;
/// k8s: v1.EndpointsOverCapacity, set to "truncated" when addresses were dropped.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

const QUEUE_TIMER: u64 = 0;

fn res(plural: &str) -> &'static ResourceInfo {
    registry::by_plural("", plural).expect("registered")
}

/// One address and its readiness, for one port (`None`: a headless Service without ports).
#[derive(Clone, Debug)]
pub struct Entry {
    pub address: Value,
    pub ready: bool,
    pub port: Option<Value>,
}

/// The entries of one pod for a Service, or none when the pod is not included.
/// k8s: syncService's loop over pods, addEndpointSubset (§6.3)
pub fn pod_entries(pod: &Pod, svc: &Service) -> Vec<Entry> {
    let tolerate_unready = util::publish_not_ready(svc);
    // k8s: the legacy controller drops terminating pods unless publishNotReadyAddresses.
    if !util::should_pod_be_in_endpoints(pod, tolerate_unready) {
        return Vec::new();
    }
    let Some(ip) = util::pod_ipv4(pod) else {
        return Vec::new();
    };
    let mut address = json!({"ip": ip, "targetRef": util::target_ref(pod)});
    if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        address["nodeName"] = json!(node);
    }
    if let Some(h) = util::hostname(pod, svc) {
        address["hostname"] = json!(h);
    }
    let ready = tolerate_unready || util::is_pod_ready(pod);
    let ports = util::service_ports(svc);
    if ports.is_empty() {
        // k8s: only a headless Service lists pods without ports.
        if util::is_headless(svc) {
            return vec![Entry {
                address,
                ready,
                port: None,
            }];
        }
        return Vec::new();
    }
    ports
        .iter()
        .filter_map(|sp| util::find_port(pod, sp).map(|n| util::endpoint_port(sp, n)))
        .map(|port| Entry {
            address: address.clone(),
            ready,
            port: Some(port),
        })
        .collect()
}

/// An address by (IP, pod uid); a port by (name, number, protocol).
type AddrKey = (String, String);
type PortKey = (String, i64, String);

fn addr_key(a: &Value) -> AddrKey {
    (
        a["ip"].as_str().unwrap_or("").to_string(),
        a["targetRef"]["uid"].as_str().unwrap_or("").to_string(),
    )
}

fn port_key(p: &Option<Value>) -> PortKey {
    match p {
        None => (String::new(), -1, String::new()),
        Some(p) => (
            p["name"].as_str().unwrap_or("").to_string(),
            p["port"].as_i64().unwrap_or(0),
            p["protocol"].as_str().unwrap_or("").to_string(),
        ),
    }
}

/// Groups addresses by the set of ports they serve: one subset per distinct (addresses, ready)
/// set with all its ports. An address not ready on any port counts as not ready on it.
/// k8s: RepackSubsets (upstream sorts addresses by IP and uid, ports and subsets by hashes of
/// their contents; here ports and subsets sort by their contents).
pub fn repack(entries: Vec<Entry>) -> Vec<Value> {
    let mut addrs: BTreeMap<AddrKey, Value> = BTreeMap::new();
    // Per port: the port, and its addresses with their readiness.
    let mut ports: BTreeMap<PortKey, (Option<Value>, BTreeMap<AddrKey, bool>)> = BTreeMap::new();
    for e in entries {
        let k = addr_key(&e.address);
        addrs.entry(k.clone()).or_insert(e.address);
        let (_, set) = ports
            .entry(port_key(&e.port))
            .or_insert_with(|| (e.port.clone(), BTreeMap::new()));
        // k8s: not ready always trumps ready.
        let was = set.entry(k).or_insert(e.ready);
        *was &= e.ready;
    }
    let mut groups: BTreeMap<Vec<(AddrKey, bool)>, Vec<Value>> = BTreeMap::new();
    for (_, (port, set)) in ports {
        let key: Vec<_> = set.into_iter().collect();
        let group = groups.entry(key).or_default();
        group.extend(port);
    }
    groups
        .into_iter()
        .map(|(set, ports)| {
            let pick = |ready: bool| -> Vec<Value> {
                set.iter()
                    .filter(|(_, r)| *r == ready)
                    .map(|(k, _)| addrs[k].clone())
                    .collect()
            };
            let mut subset = json!({});
            for (field, list) in [
                ("addresses", pick(true)),
                ("notReadyAddresses", pick(false)),
            ] {
                if !list.is_empty() {
                    subset[field] = json!(list);
                }
            }
            if !ports.is_empty() {
                subset["ports"] = json!(ports);
            }
            subset
        })
        .collect()
}

fn list_len(v: &Value, field: &str) -> usize {
    v[field].as_array().map_or(0, Vec::len)
}

/// Keeps at most `MAX_CAPACITY` addresses: not-ready ones go first, then ready ones, each
/// subset keeping its share. Returns whether anything was dropped. k8s: truncateEndpoints
pub fn truncate(subsets: &mut [Value]) -> bool {
    let ready: usize = subsets.iter().map(|s| list_len(s, "addresses")).sum();
    let not_ready: usize = subsets
        .iter()
        .map(|s| list_len(s, "notReadyAddresses"))
        .sum();
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total, field) = if truncate_ready {
        (MAX_CAPACITY, ready, "addresses")
    } else {
        (MAX_CAPACITY - ready, not_ready, "notReadyAddresses")
    };
    let mut can_add = max;
    for s in subsets.iter_mut() {
        let n = list_len(s, field);
        // k8s: each subset's proportion, rounded up, within what is left.
        let keep = ((n * max).div_ceil(total)).min(n).min(can_add);
        can_add -= keep;
        if truncate_ready {
            s.as_object_mut()
                .expect("subset")
                .remove("notReadyAddresses");
        }
        if let Some(list) = s[field].as_array_mut() {
            list.truncate(keep);
        }
        if list_len(s, field) == 0 {
            s.as_object_mut().expect("subset").remove(field);
        }
    }
    true
}

/// The Endpoints a Service should have: its subsets, labels and annotations (`existing` is
/// the current object, whose other annotations are kept; `trigger` the last-change trigger
/// time, the annotation removed without one).
pub fn desired(
    svc: &Service,
    pods: &[&Pod],
    existing: Option<&Endpoints>,
    trigger: Option<&str>,
) -> Value {
    let entries: Vec<Entry> = pods.iter().flat_map(|p| pod_entries(p, svc)).collect();
    let mut subsets = repack(entries);
    let truncated = truncate(&mut subsets);
    // k8s: the Endpoints carry the Service's labels, plus the headless label when it is one.
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if util::is_headless(svc) {
        labels.insert(util::LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(util::LABEL_HEADLESS);
    }
    let mut annotations = existing
        .and_then(|e| e.metadata.annotations.clone())
        .unwrap_or_default();
    match trigger {
        Some(t) => annotations.insert(util::LAST_CHANGE_TRIGGER_TIME.into(), t.into()),
        None => annotations.remove(util::LAST_CHANGE_TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let mut meta = json!({"name": svc.metadata.name, "namespace": svc.metadata.namespace});
    if !labels.is_empty() {
        meta["labels"] = json!(labels);
    }
    if !annotations.is_empty() {
        meta["annotations"] = json!(annotations);
    }
    let mut ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta});
    // k8s: no subsets is no field (omitempty), as kubectl shows it.
    if !subsets.is_empty() {
        ep["subsets"] = json!(subsets);
    }
    ep
}

/// Sets `to[field]` to `from[field]`, or removes it where `from` has none.
fn copy_field(to: &mut Value, from: &Value, field: &str) {
    if let Some(obj) = to.as_object_mut() {
        match from.get(field) {
            Some(v) => obj.insert(field.to_string(), v.clone()),
            None => obj.remove(field),
        };
    }
}

/// Whether the current Endpoints already say what `want` says.
fn up_to_date(current: &Endpoints, want: &Value) -> bool {
    let Ok(want) = serde_json::from_value::<Endpoints>(want.clone()) else {
        return false;
    };
    // k8s: a new trigger time alone is no reason to write (syncService compares subsets,
    // labels and the over-capacity annotation).
    let norm = |e: &Endpoints| {
        let subsets = e.subsets.clone().unwrap_or_default();
        let labels = e.metadata.labels.clone().unwrap_or_default();
        let mut annotations = e.metadata.annotations.clone().unwrap_or_default();
        annotations.remove(util::LAST_CHANGE_TRIGGER_TIME);
        (subsets, labels, annotations)
    };
    norm(current) == norm(&want)
}

pub struct EndpointsController {
    services: Cache<Service>,
    pods: Cache<Pod>,
    endpoints: Cache<Endpoints>,
    triggers: util::TriggerTimes,
    queue: WorkQueue,
    /// Syncs in progress: requests outstanding, and whether one failed.
    syncs: BTreeMap<String, (usize, bool)>,
    requests: BTreeMap<u64, String>,
    next_id: u64,
    armed: Option<Time>,
}

impl Default for EndpointsController {
    fn default() -> Self {
        Self::new()
    }
}

impl EndpointsController {
    pub fn new() -> Self {
        EndpointsController {
            services: Cache::new(),
            pods: Cache::new(),
            endpoints: Cache::new(),
            triggers: util::TriggerTimes::default(),
            queue: WorkQueue::new(),
            syncs: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_id: 1,
            armed: None,
        }
    }

    fn on_pod(&mut self, c: Change<Pod>) {
        for key in util::services_for_change(c.old.as_deref(), c.new.as_deref(), &self.services) {
            self.queue.add(&key);
        }
    }

    fn request(&mut self, key: &str, op: ApiOp, out: &mut Vec<Effect>) {
        let id = self.next_id;
        self.next_id += 1;
        self.requests.insert(id, key.to_string());
        self.syncs.entry(key.to_string()).or_default().0 += 1;
        out.push(Effect::Api { id, op });
    }

    /// k8s: syncService
    fn sync(&mut self, key: String, now: Time, out: &mut Vec<Effect>) {
        let (ns, name) = key.split_once('/').unwrap_or(("", &key));
        let (ns, name) = (ns.to_string(), name.to_string());
        let existing = self.endpoints.get_shared(&key);
        let Some(svc) = self.services.get_shared(&key) else {
            self.triggers.forget(&key);
            // k8s: the Endpoints of a deleted Service go with it.
            if existing.is_some() {
                let op = ApiOp::Delete {
                    resource: res("endpoints"),
                    namespace: Some(ns),
                    name,
                    grace_period_seconds: None,
                    precondition_uid: None,
                    precondition_resource_version: None,
                    propagation_policy: None,
                };
                self.request(&key, op, out);
                return;
            }
            return self.finish(&key, false, now);
        };
        if util::selector(&svc).is_none() {
            return self.finish(&key, false, now);
        }
        let pods = util::selected_pods(&svc, &self.pods);
        let trigger = self.triggers.compute(&key, &svc, &pods);
        let want = desired(&svc, &pods, existing.as_deref(), trigger.as_deref());
        let op = match existing {
            Some(current) if up_to_date(&current, &want) => return self.finish(&key, false, now),
            Some(current) => {
                // An update of what the cache has: a stale copy answers 409 and is retried.
                let mut body = serde_json::to_value(&*current).expect("serializes");
                copy_field(&mut body["metadata"], &want["metadata"], "labels");
                copy_field(&mut body["metadata"], &want["metadata"], "annotations");
                copy_field(&mut body, &want, "subsets");
                ApiOp::Update {
                    resource: res("endpoints"),
                    namespace: Some(ns),
                    name,
                    body,
                    part: Part::Main,
                }
            }
            None => ApiOp::Create {
                resource: res("endpoints"),
                namespace: Some(ns),
                body: want,
            },
        };
        out.push(Effect::Log {
            v: 4,
            message: format!("endpoints-controller: {}", op.describe()),
        });
        self.request(&key, op, out);
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
        let Some(key) = self.requests.remove(&id) else {
            return;
        };
        let Some(sync) = self.syncs.get_mut(&key) else {
            return;
        };
        sync.0 -= 1;
        // k8s: NotFound on delete is success; conflicts and the rest are retried.
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
        if !(self.services.synced() && self.pods.synced() && self.endpoints.synced()) {
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

impl Component for EndpointsController {
    fn name(&self) -> &str {
        "endpoints-controller"
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::ENDPOINT,
        )
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![
            WatchSpec::all(res("services")),
            WatchSpec::all(res("pods")),
            WatchSpec::all(res("endpoints")),
        ]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        if let Some(changes) = self.services.feed(res("services"), &input) {
            for c in changes {
                self.queue.add(&c.key);
            }
        } else if let Some(changes) = self.pods.feed(res("pods"), &input) {
            for c in changes {
                self.on_pod(c);
            }
        } else {
            let first_list = !self.endpoints.synced();
            if let Some(changes) = self.endpoints.feed(res("endpoints"), &input) {
                for c in changes {
                    // k8s: checkLeftoverEndpoints — at start, Endpoints whose Service is gone
                    // are looked at (and deleted); later, deleted Endpoints of a Service are
                    // put back (onEndpointsDelete).
                    let deleted = c.new.is_none() && self.services.get(&c.key).is_some();
                    if first_list || deleted {
                        self.queue.add(&c.key);
                    }
                }
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

    fn svc(v: Value) -> Service {
        let mut base = json!({"metadata": {"name": "s", "namespace": "ns", "uid": "su"},
                              "spec": {"selector": {"app": "a"},
                                       "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}});
        crate::apiserver::patch::merge(&mut base, &v);
        serde_json::from_value(base).unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, v: Value) -> Pod {
        let mut base = json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"),
                                           "labels": {"app": "a"}},
                              "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
                                  {"name": "http", "containerPort": 8080}]}]},
                              "status": {"phase": "Running", "podIP": ip,
                                         "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}});
        crate::apiserver::patch::merge(&mut base, &v);
        serde_json::from_value(base).unwrap()
    }

    fn ips(subset: &Value, field: &str) -> Vec<String> {
        subset[field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a["ip"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn addresses_and_not_ready_addresses_section_6_3() {
        let terminating = json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}});
        // (case, service patch, pods, ready IPs, not-ready IPs)
        type Case = (
            &'static str,
            Value,
            Vec<Pod>,
            Vec<&'static str>,
            Vec<&'static str>,
        );
        let table: Vec<Case> = vec![
            (
                "ready and not ready",
                json!({}),
                vec![
                    pod("a", "10.0.0.2", true, json!({})),
                    pod("b", "10.0.0.3", false, json!({})),
                ],
                vec!["10.0.0.2"],
                vec!["10.0.0.3"],
            ),
            (
                "publishNotReadyAddresses puts not-ready pods in addresses",
                json!({"spec": {"publishNotReadyAddresses": true}}),
                vec![
                    pod("a", "10.0.0.2", true, json!({})),
                    pod("b", "10.0.0.3", false, json!({})),
                ],
                vec!["10.0.0.2", "10.0.0.3"],
                vec![],
            ),
            (
                "terminating pods are absent",
                json!({}),
                vec![pod("a", "10.0.0.2", true, terminating.clone())],
                vec![],
                vec![],
            ),
            (
                "unless publishNotReadyAddresses",
                json!({"spec": {"publishNotReadyAddresses": true}}),
                vec![pod("a", "10.0.0.2", true, terminating.clone())],
                vec!["10.0.0.2"],
                vec![],
            ),
            (
                "pods without an IP or finished are skipped",
                json!({}),
                vec![
                    pod("a", "10.0.0.2", true, json!({"status": {"podIP": null}})),
                    pod(
                        "b",
                        "10.0.0.3",
                        true,
                        json!({"status": {"phase": "Succeeded"}}),
                    ),
                ],
                vec![],
                vec![],
            ),
            (
                "a pod lacking the named port is skipped for it",
                json!({}),
                vec![
                    pod("a", "10.0.0.2", true, json!({})),
                    pod(
                        "b",
                        "10.0.0.3",
                        true,
                        json!({"spec": {"containers": [{"name": "c"}]}}),
                    ),
                ],
                vec!["10.0.0.2"],
                vec![],
            ),
            (
                "addresses sort by IP",
                json!({}),
                vec![
                    pod("a", "10.0.0.9", true, json!({})),
                    pod("b", "10.0.0.10", true, json!({})),
                    pod("c", "10.0.0.3", true, json!({})),
                ],
                vec!["10.0.0.10", "10.0.0.3", "10.0.0.9"],
                vec![],
            ),
        ];
        for (what, patch, pods, ready, not_ready) in table {
            let s = svc(patch);
            let refs: Vec<&Pod> = pods.iter().collect();
            let ep = desired(&s, &refs, None, None);
            let subsets = ep["subsets"].as_array().cloned().unwrap_or_default();
            let all = |f: &str| -> Vec<String> { subsets.iter().flat_map(|s| ips(s, f)).collect() };
            assert_eq!(all("addresses"), ready, "{what}");
            assert_eq!(all("notReadyAddresses"), not_ready, "{what}");
            for s in subsets {
                assert_eq!(
                    s["ports"],
                    json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn an_address_carries_its_pod_node_and_hostname() {
        let s = svc(json!({"metadata": {"labels": {"team": "x"}}, "spec": {"clusterIP": "None"}}));
        let p = pod(
            "a",
            "10.0.0.2",
            true,
            json!({"spec": {"hostname": "h", "subdomain": "s"}}),
        );
        let ep = desired(&s, &[&p], None, None);
        assert_eq!(
            ep["subsets"][0]["addresses"][0],
            json!({"ip": "10.0.0.2", "nodeName": "n1", "hostname": "h",
                   "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "u-a"}})
        );
        assert_eq!(
            ep["metadata"]["labels"],
            json!({"team": "x", "service.kubernetes.io/headless": ""})
        );
    }

    #[test]
    fn subsets_group_addresses_by_the_ports_they_serve() {
        let s = svc(json!({"spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "raw", "port": 90, "targetPort": 9090}]}}));
        let a = pod("a", "10.0.0.2", true, json!({}));
        let b = pod(
            "b",
            "10.0.0.3",
            true,
            json!({"spec": {"containers": [{"name": "c"}]}}),
        );
        let ep = desired(&s, &[&a, &b], None, None);
        let subsets = ep["subsets"].as_array().unwrap();
        assert_eq!(subsets.len(), 2, "{subsets:?}");
        let by_ips: BTreeMap<Vec<String>, Vec<String>> = subsets
            .iter()
            .map(|s| {
                (
                    ips(s, "addresses"),
                    s["ports"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["name"].as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect();
        // k8s: one subset per set of addresses serving a port: http has a, raw has a and b.
        assert_eq!(by_ips[&vec!["10.0.0.2".to_string()]], ["http"]);
        assert_eq!(
            by_ips[&vec!["10.0.0.2".to_string(), "10.0.0.3".to_string()]],
            ["raw"]
        );
        // A service without ports lists nothing unless it is headless.
        let no_ports = svc(json!({"spec": {"ports": null}}));
        assert_eq!(desired(&no_ports, &[&a], None, None).get("subsets"), None);
        let headless = svc(json!({"spec": {"ports": null, "clusterIP": "None"}}));
        assert_eq!(
            ips(
                &desired(&headless, &[&a], None, None)["subsets"][0],
                "addresses"
            ),
            ["10.0.0.2"]
        );
    }

    #[test]
    fn over_capacity_truncates_to_1000_and_says_so() {
        let s = svc(json!({}));
        let pods: Vec<Pod> = (0..1100)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.1.{}.{}", i / 200, i % 200),
                    i < 600,
                    json!({}),
                )
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let ep = desired(&s, &refs, None, None);
        let count = |f: &str| -> usize {
            ep["subsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| list_len(s, f))
                .sum()
        };
        assert_eq!((count("addresses"), count("notReadyAddresses")), (600, 400));
        assert_eq!(ep["metadata"]["annotations"][OVER_CAPACITY], "truncated");
        // Too many ready addresses: not-ready ones all go.
        let ready: Vec<Pod> = (0..1100)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.1.{}.{}", i / 200, i % 200),
                    i != 0,
                    json!({}),
                )
            })
            .collect();
        let refs: Vec<&Pod> = ready.iter().collect();
        let ep = desired(&s, &refs, None, None);
        let count = |f: &str| -> usize {
            ep["subsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| list_len(s, f))
                .sum()
        };
        assert_eq!((count("addresses"), count("notReadyAddresses")), (1000, 0));
        // Within capacity the annotation is removed.
        let current: Endpoints = serde_json::from_value(
            json!({"metadata": {"name": "s", "annotations": {OVER_CAPACITY: "truncated", "keep": "me"}}}),
        )
        .unwrap();
        let a = pod("a", "10.0.0.2", true, json!({}));
        let ep = desired(&s, &[&a], Some(&current), None);
        assert_eq!(ep["metadata"]["annotations"], json!({"keep": "me"}));
    }
}
