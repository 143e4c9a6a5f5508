//! The discrete-event loop: every delivery, timer, container exit, fault and check is an event
//! in one heap ordered by (virtual time, sequence). One seeded ChaCha8 RNG, drawn from only by
//! the loop and the components it steps, decides latencies and tie-breaks, so a seed replays a
//! run exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::FutureExt;
use gantry::api::registry::{self, ResourceInfo};
use gantry::apiserver::{ApiServer, ApiWatch, FieldSelector, ListOptions, RequestContext};
use gantry::component::{ApiOp, Component, Effect, Input, RuntimeOp, WatchSpec};
use gantry::controllers::nodelifecycle::NodeLifecycleController;
use gantry::controllers::podgc::PodGc;
use gantry::controllers::replicaset::ReplicaSetController;
use gantry::controllers::tainteviction::TaintEvictionController;
use gantry::kubelet::scripted::{Behavior, ScriptedRuntime};
use gantry::kubelet::{Kubelet, NodeConfig};
use gantry::scheduler::Scheduler;
use gantry::store::mem::MemStore;
use gantry::testkit::EPOCH;
use gantry::time::Time;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::scenario::{Check, Loaded, NodeSpec};
use crate::trace::Trace;

fn ready<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("MemStore futures are always ready")
}

/// How long a message between a component and the apiserver takes: 1 ms plus up to 4 ms.
fn latency(rng: &mut ChaCha8Rng) -> Duration {
    Duration::from_micros(1000 + rng.gen_range(0..4000))
}

/// What a partitioned component's request gets, and after how long.
const PARTITION_TIMEOUT: Duration = Duration::from_secs(10);

enum Event {
    Deliver(usize, Input),
    Api(usize, u64, ApiOp),
    Timer(usize, u64, u64),
    Exit(String, i32),
    Step(usize),
    /// Retry starting an informer.
    Informer(usize, WatchSpec),
    StoreBack,
    Check,
}

struct Slot {
    component: Box<dyn Component>,
    alive: bool,
    node: Option<String>,
}

/// The outcome of one expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub description: String,
    pub passed: bool,
    pub detail: String,
}

pub struct Report {
    pub trace: Trace,
    pub verdicts: Vec<Verdict>,
    pub notable: Vec<String>,
    pub events: u64,
}

pub struct Sim {
    loaded: Loaded,
    now: Time,
    rng: ChaCha8Rng,
    api: ApiServer<MemStore>,
    slots: Vec<Slot>,
    watches: Vec<(usize, &'static ResourceInfo, ApiWatch, Time)>,
    /// Per component, when its last request and last answer arrive: a component's link keeps
    /// order both ways, like the one connection a client holds.
    link_up: BTreeMap<usize, Time>,
    link_down: BTreeMap<usize, Time>,
    events: BTreeMap<(Time, u64), Event>,
    seq: u64,
    timers: BTreeMap<(usize, u64), u64>,
    runtime: ScriptedRuntime,
    owner: BTreeMap<String, usize>,
    partitioned: BTreeSet<String>,
    /// Deliveries held for partitioned components until `heal`.
    held: Vec<(usize, Input)>,
    trace: Trace,
    notable: Vec<String>,
    verdicts: Vec<Option<Verdict>>,
    processed: u64,
}

fn node_config(spec: &NodeSpec, i: usize) -> NodeConfig {
    let name = spec.name.clone().expect("expanded");
    let mut c = NodeConfig::new(&name);
    if let Some(v) = &spec.cpu {
        c.cpu = v.clone();
    }
    if let Some(v) = &spec.memory {
        c.memory = v.clone();
    }
    if let Some(v) = &spec.pods {
        c.pods = v.clone();
    }
    c.labels = spec.labels.clone();
    if let Some(z) = &spec.zone {
        c.labels
            .insert("topology.kubernetes.io/zone".into(), z.clone());
    }
    c.taints = spec.taints.clone();
    c.address = format!("10.0.{}.{}", i / 250, i % 250 + 1);
    c
}

impl Sim {
    pub fn new(loaded: Loaded, seed: u64) -> Sim {
        let mut runtime = ScriptedRuntime::default();
        for (image, s) in &loaded.scenario.runtime.images {
            runtime.behaviors.insert(
                image.clone(),
                Behavior {
                    exit_after: s.exit_after.map(|d| d.0),
                    exit_code: s.exit_code,
                    start_error: s
                        .start_error
                        .clone()
                        .map(|r| (r.clone(), format!("simulated {r} for image {image}"))),
                    ready_after: s.ready_after.map(|d| d.0).unwrap_or_default(),
                    liveness_fails_after: s.liveness_fails_after.map(|d| d.0),
                },
            );
        }
        let verdicts = vec![None; loaded.scenario.expectations.len()];
        Sim {
            loaded,
            now: EPOCH,
            rng: ChaCha8Rng::seed_from_u64(seed),
            api: ApiServer::new(MemStore::default()),
            slots: Vec::new(),
            watches: Vec::new(),
            link_up: BTreeMap::new(),
            link_down: BTreeMap::new(),
            events: BTreeMap::new(),
            seq: 0,
            timers: BTreeMap::new(),
            runtime,
            owner: BTreeMap::new(),
            partitioned: BTreeSet::new(),
            held: Vec::new(),
            trace: Trace::default(),
            notable: Vec::new(),
            verdicts,
            processed: 0,
        }
    }

    fn at(&mut self, t: Time, e: Event) {
        self.seq += 1;
        self.events.insert((t, self.seq), e);
    }

    fn rel(&self) -> Duration {
        self.now.since(EPOCH)
    }

    fn ctx(&mut self) -> RequestContext {
        RequestContext::from_rng(self.now, &mut self.rng)
    }

    fn add(&mut self, component: Box<dyn Component>, node: Option<String>) {
        let idx = self.slots.len();
        self.slots.push(Slot {
            component,
            alive: true,
            node,
        });
        for spec in self.slots[idx].component.watches() {
            self.start_informer(idx, spec);
        }
    }

    /// Lists and opens the watch of one informer; if the apiserver cannot serve it now, tries
    /// again a second later, as a reflector does.
    fn start_informer(&mut self, idx: usize, spec: WatchSpec) {
        if !self.slots[idx].alive {
            return;
        }
        let opts = ListOptions {
            field_selector: spec
                .field_selector
                .as_deref()
                .map(|f| {
                    FieldSelector::parse(spec.resource, f).expect("components use valid selectors")
                })
                .unwrap_or_default(),
            ..Default::default()
        };
        let listed =
            ready(self.api.list(spec.resource, None, &opts)).and_then(|(items, revision)| {
                ready(self.api.watch(spec.resource, None, revision, opts))
                    .map(|w| (items, revision, w))
            });
        let (items, revision, watch) = match listed {
            Ok(l) => l,
            Err(_) => {
                let t = self.now + Duration::from_secs(1);
                self.at(t, Event::Informer(idx, spec));
                return;
            }
        };
        // The list arrives first; the watch's events follow it in order.
        let t = self.now + latency(&mut self.rng);
        self.watches.push((idx, spec.resource, watch, t));
        self.at(
            t,
            Event::Deliver(
                idx,
                Input::Listed {
                    resource: spec.resource,
                    items,
                    revision,
                },
            ),
        );
    }

    fn execute(&mut self, op: &ApiOp) -> Result<Value, gantry::api::status::ApiError> {
        let ctx = self.ctx();
        let r = ready(self.api.execute(op, &ctx));
        self.collect_watch_events();
        r
    }

    /// Schedules delivery of every new watch event, each watch in order.
    fn collect_watch_events(&mut self) {
        for w in 0..self.watches.len() {
            while let Some(item) = self.watches[w].2.try_next() {
                let Ok(event) = item else { continue };
                let (idx, resource) = (self.watches[w].0, self.watches[w].1);
                let lat = latency(&mut self.rng);
                let t = (self.now + lat).max(self.watches[w].3);
                self.watches[w].3 = t;
                self.at(t, Event::Deliver(idx, Input::Watched { resource, event }));
            }
        }
    }

    fn partitioned(&self, idx: usize) -> bool {
        self.slots[idx]
            .node
            .as_ref()
            .is_some_and(|n| self.partitioned.contains(n))
    }

    fn step_component(&mut self, idx: usize, input: Input) {
        if !self.slots[idx].alive {
            return;
        }
        if self.partitioned(idx) && matches!(input, Input::Watched { .. } | Input::Listed { .. }) {
            self.held.push((idx, input));
            return;
        }
        let mut out = Vec::new();
        let now = self.now;
        let rng: &mut dyn RngCore = &mut self.rng;
        self.slots[idx].component.step(now, input, rng, &mut out);
        let name = self.slots[idx].component.name().to_string();
        for effect in out {
            match effect {
                Effect::Api { id, op } => {
                    let t = (self.now + latency(&mut self.rng))
                        .max(self.link_up.get(&idx).copied().unwrap_or(Time::ZERO));
                    self.link_up.insert(idx, t);
                    self.at(t, Event::Api(idx, id, op));
                }
                Effect::Runtime { id, op } => {
                    let what = match &op {
                        RuntimeOp::Start {
                            namespace,
                            pod,
                            container,
                            ..
                        } => Some(format!("start {namespace}/{pod}/{}", container.name)),
                        RuntimeOp::Stop { container_id, .. } => {
                            Some(format!("stop {container_id}"))
                        }
                        RuntimeOp::Probe { .. } => None,
                    };
                    if let Some(w) = what {
                        self.trace.line(self.now, &name, "runtime", json!(w));
                    }
                    let outcome = self.runtime.run(&op, self.now);
                    if let gantry::component::RuntimeResult::Started { container_id } =
                        &outcome.result
                    {
                        self.owner.insert(container_id.clone(), idx);
                    }
                    if let Some((cid, at, code)) = outcome.exit {
                        self.at(at, Event::Exit(cid, code));
                    }
                    let t = self.now + Duration::from_millis(1);
                    self.at(
                        t,
                        Event::Deliver(
                            idx,
                            Input::RuntimeResult {
                                id,
                                result: outcome.result,
                            },
                        ),
                    );
                }
                Effect::Timer { id, at } => {
                    self.seq += 1;
                    let token = self.seq;
                    self.timers.insert((idx, id), token);
                    self.events
                        .insert((at.max(self.now), token), Event::Timer(idx, id, token));
                }
                Effect::Log { v, message } => {
                    if v <= 2 {
                        self.trace.line(self.now, &name, "log", json!(message));
                    }
                    if v == 0 {
                        self.notable
                            .push(format!("{:>9.3}s  {message}", self.rel().as_secs_f64()));
                    }
                }
            }
        }
    }

    fn note(&mut self, message: String) {
        self.trace
            .line(self.now, "scenario", "action", json!(message));
        self.notable
            .push(format!("{:>9.3}s  {message}", self.rel().as_secs_f64()));
    }

    fn kubelet_for(&self, node: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.alive && s.node.as_deref() == Some(node))
    }

    fn apply_step(&mut self, i: usize) {
        let step = &self.loaded.scenario.timeline[i];
        let (kill, restart, partition, heal, scale, apply, outage) = (
            step.kill.clone(),
            step.restart.clone(),
            step.partition.clone(),
            step.heal,
            step.scale
                .as_ref()
                .map(|s| (s.replicaset.clone(), s.namespace.clone(), s.replicas)),
            step.apply.clone(),
            step.store_outage,
        );
        if let Some(node) = kill {
            if let Some(idx) = self.kubelet_for(&node) {
                self.slots[idx].alive = false;
                let gone: Vec<String> = self
                    .owner
                    .iter()
                    .filter(|(_, o)| **o == idx)
                    .map(|(c, _)| c.clone())
                    .collect();
                for c in gone {
                    self.runtime.exited(&c);
                    self.owner.remove(&c);
                }
            }
            self.note(format!("kill node {node}"));
        }
        if let Some(node) = restart {
            if self.kubelet_for(&node).is_none() {
                let pos = self
                    .loaded
                    .nodes
                    .iter()
                    .position(|n| n.name.as_deref() == Some(node.as_str()))
                    .expect("validated");
                let config = node_config(&self.loaded.nodes[pos], pos);
                self.add(Box::new(Kubelet::new(config)), Some(node.clone()));
            }
            self.note(format!("restart node {node}"));
        }
        if let Some(nodes) = partition {
            self.partitioned.extend(nodes.iter().cloned());
            self.note(format!("partition {}", nodes.join(", ")));
        }
        if heal.is_some() {
            self.partitioned.clear();
            let held = std::mem::take(&mut self.held);
            for (idx, input) in held {
                let t = self.now + latency(&mut self.rng);
                self.at(t, Event::Deliver(idx, input));
            }
            self.note("heal partitions".into());
        }
        if let Some((rs, ns, replicas)) = scale {
            let res = registry::by_plural("apps", "replicasets").expect("registered");
            match ready(self.api.get(res, Some(&ns), &rs)) {
                Ok(mut obj) => {
                    obj["spec"]["replicas"] = json!(replicas);
                    let op = ApiOp::Update {
                        resource: res,
                        namespace: Some(ns.clone()),
                        name: rs.clone(),
                        body: obj,
                        part: gantry::apiserver::Part::Main,
                    };
                    let r = self.execute(&op);
                    self.note(format!(
                        "scale replicaset {ns}/{rs} to {replicas}: {}",
                        r.map(|_| "ok".to_string()).unwrap_or_else(|e| e.message)
                    ));
                }
                Err(e) => self.note(format!("scale replicaset {ns}/{rs}: {}", e.message)),
            }
        }
        if let Some(manifest) = apply {
            let r = self.create_manifest(manifest);
            self.note(format!("apply: {r}"));
        }
        if let Some(d) = outage {
            self.api.store().pause();
            self.at(self.now + d.0, Event::StoreBack);
            self.note(format!("store outage for {:?}", d.0));
        }
    }

    fn create_manifest(&mut self, m: Value) -> String {
        let kind = m["kind"].as_str().unwrap_or("").to_string();
        let api_version = m["apiVersion"].as_str().unwrap_or("").to_string();
        let Some(res) = registry::by_kind(&api_version, &kind) else {
            return format!("{api_version} {kind} is not a kind gantry serves");
        };
        let ns = m["metadata"]["namespace"]
            .as_str()
            .map(String::from)
            .or_else(|| res.namespaced.then(|| "default".to_string()));
        let op = ApiOp::Create {
            resource: res,
            namespace: ns,
            body: m,
        };
        let desc = op.describe();
        match self.execute(&op) {
            Ok(_) => desc,
            Err(e) => format!("{desc}: {}", e.message),
        }
    }

    fn list(&self, plural: &str, group: &str) -> Vec<Value> {
        let res = registry::by_plural(group, plural).expect("registered");
        ready(self.api.list(res, None, &ListOptions::default()))
            .map(|(items, _)| items)
            .unwrap_or_default()
    }

    /// Whether `check`'s condition holds now (the API's current state).
    fn holds(&self, c: &Check) -> (bool, String) {
        if let Some(rs) = &c.replicaset {
            let res = registry::by_plural("apps", "replicasets").expect("registered");
            let Ok(obj) = ready(self.api.get(res, Some(&c.namespace), rs)) else {
                return (false, format!("replicaset {rs} does not exist"));
            };
            let st = &obj["status"];
            let get = |f: &str| st[f].as_i64().unwrap_or(0);
            let mut ok = true;
            for (field, want) in [
                ("replicas", c.replicas),
                ("readyReplicas", c.ready_replicas),
                ("availableReplicas", c.available_replicas),
            ] {
                if let Some(w) = want {
                    ok &= get(field) == w;
                }
            }
            return (
                ok,
                format!(
                    "replicas={} ready={} available={}",
                    get("replicas"),
                    get("readyReplicas"),
                    get("availableReplicas")
                ),
            );
        }
        if let Some(node) = &c.node {
            let res = registry::by_plural("", "nodes").expect("registered");
            let status = ready(self.api.get(res, None, node))
                .ok()
                .and_then(|n| {
                    n["status"]["conditions"]
                        .as_array()?
                        .iter()
                        .find(|c| c["type"] == "Ready")
                        .map(|c| c["status"].as_str().unwrap_or("").to_string())
                })
                .unwrap_or_else(|| "absent".into());
            return (
                c.ready.as_deref().is_none_or(|w| w == status),
                format!("node {node} Ready={status}"),
            );
        }
        if let Some(sel) = &c.running_pods {
            let selector = gantry::api::selector::Selector::parse(sel).unwrap_or_default();
            let pods: Vec<Value> = self
                .list("pods", "")
                .into_iter()
                .filter(|p| {
                    let labels = p["metadata"]["labels"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                                .collect()
                        })
                        .unwrap_or_default();
                    selector.matches(&labels)
                })
                .collect();
            let live = pods
                .iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .count();
            let running = pods
                .iter()
                .filter(|p| {
                    p["metadata"]["deletionTimestamp"].is_null()
                        && p["status"]["phase"] == "Running"
                        && p["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                })
                .count();
            let mut ok = c.count.is_none_or(|n| running == n);
            if let Some(max) = c.at_most {
                ok &= live <= max;
            }
            return (
                ok,
                format!("{running} running and ready, {live} not terminating"),
            );
        }
        (false, "nothing to check".into())
    }

    fn check(&mut self, end: bool) {
        let t = self.rel();
        for i in 0..self.loaded.scenario.expectations.len() {
            if self.verdicts[i].is_some() {
                continue;
            }
            let e = &self.loaded.scenario.expectations[i];
            let (kind, c) = match (&e.eventually, &e.always, &e.never) {
                (Some(c), _, _) => ("eventually", c.clone()),
                (_, Some(c), _) => ("always", c.clone()),
                (_, _, Some(c)) => ("never", c.clone()),
                _ => unreachable!("validated"),
            };
            let desc = format!("{kind} {}", describe(&c));
            let after = c.after.map(|d| d.0).unwrap_or_default();
            let by = c.by.map(|d| d.0);
            let in_window = t >= after && by.is_none_or(|b| t <= b);
            let (holds, detail) = self.holds(&c);
            let verdict = match kind {
                "eventually" if holds && in_window => Some(true),
                "eventually" if by.is_some_and(|b| t >= b) || end => Some(false),
                "always" if in_window && !holds => Some(false),
                "never" if in_window && holds => Some(false),
                "always" | "never" if by.is_some_and(|b| t > b) || end => Some(true),
                _ => None,
            };
            if let Some(passed) = verdict {
                let detail = format!("at {:.3}s: {detail}", t.as_secs_f64());
                self.trace.line(
                    self.now,
                    "expectation",
                    if passed { "met" } else { "failed" },
                    json!(desc),
                );
                self.verdicts[i] = Some(Verdict {
                    description: desc,
                    passed,
                    detail,
                });
            }
        }
    }

    pub fn run(mut self) -> Report {
        let mut n = 0;
        let mut ctxs = Vec::new();
        for _ in 0..gantry::apiserver::BOOT_NAMESPACES.len() {
            ctxs.push(self.ctx());
        }
        ready(self.api.bootstrap(|| {
            n += 1;
            ctxs[n - 1].clone()
        }))
        .expect("bootstrap");
        let nodes = self.loaded.nodes.clone();
        for (i, spec) in nodes.iter().enumerate() {
            self.add(
                Box::new(Kubelet::new(node_config(spec, i))),
                spec.name.clone(),
            );
        }
        self.add(Box::new(Scheduler::new()), None);
        self.add(Box::new(ReplicaSetController::new()), None);
        self.add(Box::new(NodeLifecycleController::new()), None);
        self.add(Box::new(TaintEvictionController::new()), None);
        self.add(Box::new(PodGc::default()), None);
        for m in self.loaded.manifests.clone() {
            let r = self.create_manifest(m);
            self.note(r);
        }
        for i in 0..self.loaded.scenario.timeline.len() {
            let at = EPOCH + self.loaded.scenario.timeline[i].at.0;
            self.at(at, Event::Step(i));
        }
        let end = EPOCH + self.loaded.scenario.duration.0;
        let mut t = EPOCH;
        while t <= end {
            self.at(t, Event::Check);
            t = t + Duration::from_secs(1);
        }
        while let Some((&(at, seq), _)) = self.events.first_key_value() {
            if at > end {
                break;
            }
            let event = self.events.remove(&(at, seq)).expect("present");
            self.now = at;
            self.processed += 1;
            match event {
                Event::Deliver(idx, input) => self.step_component(idx, input),
                Event::Api(idx, id, op) => {
                    if !self.slots[idx].alive {
                        continue;
                    }
                    let name = self.slots[idx].component.name().to_string();
                    if self.partitioned(idx) {
                        let t = self.now + PARTITION_TIMEOUT;
                        let e = gantry::api::status::ApiError::timeout(
                            "the request timed out (network partition)",
                        );
                        self.at(
                            t,
                            Event::Deliver(idx, Input::ApiResult { id, result: Err(e) }),
                        );
                        continue;
                    }
                    let result = self.execute(&op);
                    let code = result.as_ref().map_or_else(|e| e.code, |_| 200);
                    self.trace.line(
                        self.now,
                        &name,
                        "api",
                        json!(format!("{} {code}", op.describe())),
                    );
                    let t = (self.now + latency(&mut self.rng))
                        .max(self.link_down.get(&idx).copied().unwrap_or(Time::ZERO));
                    self.link_down.insert(idx, t);
                    self.at(t, Event::Deliver(idx, Input::ApiResult { id, result }));
                }
                Event::Timer(idx, id, token) => {
                    if self.timers.get(&(idx, id)) == Some(&token) {
                        self.timers.remove(&(idx, id));
                        self.step_component(idx, Input::Timer { id });
                    }
                }
                Event::Exit(cid, code) => {
                    if self.runtime.exited(&cid) {
                        if let Some(idx) = self.owner.remove(&cid) {
                            let name = self.slots[idx].component.name().to_string();
                            self.trace.line(
                                self.now,
                                &name,
                                "runtime",
                                json!(format!("exit {cid} {code}")),
                            );
                            self.step_component(
                                idx,
                                Input::ContainerExited {
                                    container_id: cid,
                                    exit_code: code,
                                },
                            );
                        }
                    }
                }
                Event::Step(i) => self.apply_step(i),
                Event::Informer(idx, spec) => self.start_informer(idx, spec),
                Event::StoreBack => {
                    self.api.store().resume();
                    self.note("store back".into());
                }
                Event::Check => self.check(false),
            }
        }
        self.now = end;
        self.check(true);
        let verdicts = self.verdicts.into_iter().flatten().collect();
        Report {
            trace: self.trace,
            verdicts,
            notable: self.notable,
            events: self.processed,
        }
    }
}

fn describe(c: &Check) -> String {
    let mut parts = Vec::new();
    if let Some(rs) = &c.replicaset {
        parts.push(format!("replicaset {}/{rs}", c.namespace));
    }
    for (k, v) in [
        ("replicas", c.replicas),
        ("readyReplicas", c.ready_replicas),
        ("availableReplicas", c.available_replicas),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    }
    if let Some(n) = &c.node {
        parts.push(format!("node {n}"));
    }
    if let Some(r) = &c.ready {
        parts.push(format!("Ready={r}"));
    }
    if let Some(s) = &c.running_pods {
        parts.push(format!("runningPods {s}"));
    }
    if let Some(n) = c.count {
        parts.push(format!("count={n}"));
    }
    if let Some(n) = c.at_most {
        parts.push(format!("atMost={n}"));
    }
    if let Some(a) = c.after {
        parts.push(format!("after {:?}", a.0));
    }
    if let Some(b) = c.by {
        parts.push(format!("by {:?}", b.0));
    }
    parts.join(" ")
}
