//! The discrete-event loop: every delivery, timer, container exit, fault and check is an event
//! in one heap ordered by (virtual time, sequence). One seeded ChaCha8 RNG, drawn from only by
//! the loop and the components it steps, decides latencies, losses and tie-breaks, so a seed
//! replays a run exactly.
//!
//! The apiserver is the core on MemStore with one watch cache ([`Cacher`]) per resource, as
//! Kubernetes' apiserver has: each store event is decoded once and fanned out to the
//! components' informers, and informers list from the cache. The caches also give the
//! expectations and the [`Invariants`] their view of the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use gantry::api::registry::{self, ResourceInfo};
use gantry::api::selector::Selector;
use gantry::api::status::ApiError;
use gantry::apiserver::cacher::{Applied, Cacher, Filter};
use gantry::apiserver::{ApiServer, FieldSelector, ListOptions, RequestContext};
use gantry::component::{ApiOp, Component, Effect, Input, RuntimeOp, WatchSpec};
use gantry::kubelet::scripted::{Behavior, PodScript, ScriptedRuntime};
use gantry::kubelet::{Kubelet, NodeConfig};
use gantry::store::mem::MemStore;
use gantry::store::{HistoryConfig, Revision, Store, Watch};
use gantry::testkit::EPOCH;
use gantry::time::Time;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::invariants::Invariants;
use crate::scenario::{Check, ContainerScript, Link, Loaded, NodeSpec};
use crate::trace::Trace;

fn ready<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("MemStore futures are always ready")
}

/// How long a client waits for an answer that never comes (a partition, a lost message).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a reflector waits before it watches again after its watch broke.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// Changes each watch cache keeps for watches that resume.
const CACHE_HISTORY: usize = 2000;

enum Event {
    Deliver(usize, Input),
    /// A request reaches the apiserver (`waited`: it has already waited on a slow store).
    Api {
        slot: usize,
        id: u64,
        op: ApiOp,
        waited: bool,
    },
    Timer(usize, u64, u64),
    Exit(String, i32),
    Step(usize),
    /// An informer (re)starts its watch, relisting if it must.
    Rewatch(usize),
    StoreBack,
    StoreFast,
    /// The next request of a `traffic` stream.
    Request(usize),
    ApiserverUp,
    Check,
}

/// The event queue: a min-heap of (time, sequence number, slot) over a slab of the events, so
/// that it pops events in (time, sequence) order, as a map keyed by them would iterate, and
/// moves only small entries while it keeps its order.
#[derive(Default)]
struct Queue {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(Time, u64, usize)>>,
    slab: Vec<Option<Event>>,
    free: Vec<usize>,
}

impl Queue {
    fn push(&mut self, at: Time, seq: u64, event: Event) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.slab[i] = Some(event);
                i
            }
            None => {
                self.slab.push(Some(event));
                self.slab.len() - 1
            }
        };
        self.heap.push(std::cmp::Reverse((at, seq, slot)));
    }

    /// The earliest event, if it is due by `end`.
    fn pop_until(&mut self, end: Time) -> Option<(Time, Event)> {
        let std::cmp::Reverse((at, _, _)) = self.heap.peek()?;
        if *at > end {
            return None;
        }
        let std::cmp::Reverse((at, _, slot)) = self.heap.pop().expect("peeked");
        self.free.push(slot);
        Some((at, self.slab[slot].take().expect("queued")))
    }
}

struct Slot {
    component: Box<dyn Component>,
    /// Who its requests are from (`Component::user`): they are authorized as it.
    user: Arc<gantry::auth::UserInfo>,
    alive: bool,
    node: Option<String>,
    /// A node's kube-proxy (only for nodes that send `traffic`), not its kubelet.
    proxy: bool,
}

/// The host side of one component's informer: what a reflector keeps.
struct Informer {
    slot: usize,
    resource: &'static ResourceInfo,
    filter: Filter,
    /// The revision to resume after (`None`: never listed).
    revision: Option<Revision>,
    watching: bool,
    /// When its last message arrives: a watch stream keeps order.
    last: Time,
}

/// The watch cache of one resource and the store watch that feeds it.
struct Feed {
    res: &'static ResourceInfo,
    cacher: Cacher,
    watch: Watch,
}

/// The feeds in a fixed order (by group, then plural: the order watch events are pumped in).
/// Looked up on every request, so by the registry entry's address rather than by name.
#[derive(Default)]
struct Feeds(Vec<Feed>);

impl Feeds {
    fn position(&self, res: &ResourceInfo) -> Option<usize> {
        self.0
            .iter()
            .position(|f| std::ptr::eq(f.res, res))
            .or_else(|| {
                self.0
                    .iter()
                    .position(|f| (f.res.group, f.res.plural) == (res.group, res.plural))
            })
    }

    fn get(&self, res: &ResourceInfo) -> Option<&Feed> {
        self.position(res).map(|i| &self.0[i])
    }

    fn get_mut(&mut self, res: &ResourceInfo) -> Option<&mut Feed> {
        self.position(res).map(|i| &mut self.0[i])
    }
}

/// The zone label the scenario's `zone:` sets and `zones:` expectations read.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Running and live counts for one `runningPods` selector, kept as pods change.
struct Tally {
    selector: Selector,
    /// Not terminating, Running and Ready.
    running: usize,
    /// Not terminating.
    live: usize,
    /// The running ones by node.
    per_node: BTreeMap<String, usize>,
}

impl Tally {
    fn counts(pod: &Value) -> (usize, usize) {
        let live = pod["metadata"]["deletionTimestamp"].is_null();
        let running = live
            && pod["status"]["phase"] == "Running"
            && pod["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        (usize::from(running), usize::from(live))
    }

    fn matches(&self, pod: &Value) -> bool {
        let labels = pod["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        self.selector.matches(&labels)
    }

    fn change(&mut self, prev: Option<&Value>, new: Option<&Value>) {
        let node = |p: &Value| p["spec"]["nodeName"].as_str().unwrap_or("").to_string();
        if let Some(p) = prev.filter(|p| self.matches(p)) {
            let (r, l) = Self::counts(p);
            self.running -= r;
            self.live -= l;
            if r > 0 {
                let n = node(p);
                if let Some(c) = self.per_node.get_mut(&n) {
                    *c -= r;
                    if *c == 0 {
                        self.per_node.remove(&n);
                    }
                }
            }
        }
        if let Some(n) = new.filter(|n| self.matches(n)) {
            let (r, l) = Self::counts(n);
            self.running += r;
            self.live += l;
            if r > 0 {
                *self.per_node.entry(node(n)).or_default() += r;
            }
        }
    }
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
    /// Invariants broken (each fails the run).
    pub violations: Vec<String>,
    pub notable: Vec<String>,
    pub events: u64,
    /// Virtual time covered.
    pub simulated: Duration,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.verdicts.iter().all(|v| v.passed)
    }
}

pub struct Sim {
    loaded: Loaded,
    now: Time,
    rng: ChaCha8Rng,
    api: ApiServer<MemStore>,
    slots: Vec<Slot>,
    informers: Vec<Informer>,
    feeds: Feeds,
    /// Per component, when its last request and last answer arrive: a component's link keeps
    /// order both ways, like the one connection a client holds.
    link_up: BTreeMap<usize, Time>,
    link_down: BTreeMap<usize, Time>,
    default_link: Link,
    node_links: BTreeMap<String, Link>,
    events: Queue,
    seq: u64,
    timers: BTreeMap<(usize, u64), u64>,
    runtime: ScriptedRuntime,
    owner: BTreeMap<String, usize>,
    partitioned: BTreeSet<String>,
    /// Deliveries held for partitioned components until `heal`.
    held: Vec<(usize, Input)>,
    /// The store answers this much later until the given time.
    slow_store: Option<(Time, Duration)>,
    /// The apiserver is down until then.
    apiserver_down: Option<Time>,
    invariants: Invariants,
    tallies: BTreeMap<String, Tally>,
    /// The kube-proxy cores of the nodes that send traffic, by node.
    proxies: BTreeMap<String, std::rc::Rc<std::cell::RefCell<gantry::proxy::Proxy>>>,
    streams: Vec<crate::traffic::Stream>,
    traffic: crate::traffic::Log,
    trace: Trace,
    notable: Vec<String>,
    exit_after: bool,
    verdicts: Vec<Option<Verdict>>,
    processed: u64,
    /// The effects of the step being carried out (kept for its capacity).
    out: Vec<Effect>,
}

/// Where the simulated apiserver is reached (the default/kubernetes Service's endpoint).
pub const SIM_APISERVER_ADDRESS: &str = "10.0.255.254:6443";

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

fn behavior(s: &ContainerScript, what: &str) -> Behavior {
    Behavior {
        exit_after: s.exit_after.map(|d| d.0),
        exit_code: s.exit_code,
        start_error: s
            .start_error
            .clone()
            .map(|r| (r.clone(), format!("simulated {r} for {what}"))),
        ready_after: s.ready_after.map(|d| d.0).unwrap_or_default(),
        liveness_fails_after: s.liveness_fails_after.map(|d| d.0),
        exit_count: s.exit_count,
    }
}

fn resource(group: &str, plural: &str) -> &'static ResourceInfo {
    registry::by_plural(group, plural).expect("registered")
}

impl Sim {
    pub fn new(loaded: Loaded, seed: u64) -> Sim {
        let mut runtime = ScriptedRuntime::default();
        for (image, s) in &loaded.scenario.runtime.images {
            runtime
                .behaviors
                .insert(image.clone(), behavior(s, &format!("image {image}")));
        }
        for s in &loaded.scenario.runtime.pods {
            let sel = s.selector.clone().unwrap_or_default();
            runtime.pod_scripts.push(PodScript {
                selector: Selector::parse(&sel).expect("validated"),
                container: s.container.clone(),
                behavior: behavior(s, &format!("pods {sel}")),
            });
        }
        // Node i's pods get addresses from its pod CIDR (see ScriptedRuntime::node_index).
        runtime.node_index = loaded
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone().expect("expanded"), i as u32))
            .collect();
        let mut tallies = BTreeMap::new();
        for e in &loaded.scenario.expectations {
            for c in [&e.eventually, &e.always, &e.never].into_iter().flatten() {
                if let Some(sel) = &c.running_pods {
                    tallies.entry(sel.clone()).or_insert_with(|| Tally {
                        selector: Selector::parse(sel).unwrap_or_default(),
                        running: 0,
                        live: 0,
                        per_node: BTreeMap::new(),
                    });
                }
            }
        }
        let net = &loaded.scenario.network;
        let default_link = Link {
            latency: net.latency,
            drop: net.drop,
        };
        let node_links = net.nodes.clone();
        let verdicts = vec![None; loaded.scenario.expectations.len()];
        Sim {
            loaded,
            now: EPOCH,
            rng: ChaCha8Rng::seed_from_u64(seed),
            // Only the watch caches' store watches read the store's history, and they are
            // drained after every write: a short history keeps long runs small.
            api: ApiServer::new(MemStore::new(HistoryConfig {
                history_limit: 10_000,
                ..HistoryConfig::default()
            })),
            slots: Vec::new(),
            informers: Vec::new(),
            feeds: Feeds::default(),
            link_up: BTreeMap::new(),
            link_down: BTreeMap::new(),
            default_link,
            node_links,
            events: Queue::default(),
            seq: 0,
            timers: BTreeMap::new(),
            runtime,
            owner: BTreeMap::new(),
            partitioned: BTreeSet::new(),
            held: Vec::new(),
            slow_store: None,
            apiserver_down: None,
            invariants: Invariants::default(),
            tallies,
            proxies: BTreeMap::new(),
            streams: Vec::new(),
            traffic: crate::traffic::Log::default(),
            trace: Trace::default(),
            notable: Vec::new(),
            exit_after: false,
            verdicts,
            processed: 0,
            out: Vec::new(),
        }
    }

    /// Keep the trace's lines (the default) or only its hash, which saves memory in long runs.
    pub fn keep_trace(mut self, keep: bool) -> Self {
        self.trace.keep_lines = keep;
        self
    }

    /// For a process that exits after this run: the simulated cluster is not freed piece by
    /// piece at the end (some 3 % of the benchmark's run).
    pub fn exit_after(mut self) -> Self {
        self.exit_after = true;
        self
    }

    fn at(&mut self, t: Time, e: Event) {
        self.seq += 1;
        self.events.push(t, self.seq, e);
    }

    fn rel(&self) -> Duration {
        self.now.since(EPOCH)
    }

    fn ctx(&mut self) -> RequestContext {
        RequestContext::from_rng(self.now, &mut self.rng)
    }

    fn link(&self, slot: usize) -> Link {
        self.slots[slot]
            .node
            .as_ref()
            .and_then(|n| self.node_links.get(n))
            .copied()
            .unwrap_or(self.default_link)
    }

    /// A message's latency on `slot`'s link.
    fn delay(&mut self, slot: usize) -> Duration {
        let l = self.link(slot).latency;
        let (min, max) = (l.min.0.as_micros() as u64, l.max.0.as_micros() as u64);
        Duration::from_micros(min + self.rng.gen_range(0..(max - min).max(1)))
    }

    /// Whether a message on `slot`'s link is lost (draws from the RNG only if it can be).
    fn lost(&mut self, slot: usize) -> bool {
        let p = self.link(slot).drop;
        p > 0.0 && self.rng.gen_bool(p)
    }

    fn add(&mut self, component: Box<dyn Component>, node: Option<String>) {
        // Every component's events are written as Event objects, as in production.
        let component = gantry::event_recorder::recording(component);
        let slot = self.slots.len();
        self.slots.push(Slot {
            user: Arc::new(component.user()),
            component,
            alive: true,
            node,
            proxy: false,
        });
        for spec in self.slots[slot].component.watches() {
            self.add_informer(slot, spec);
        }
    }

    fn add_informer(&mut self, slot: usize, spec: WatchSpec) {
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
        let i = self.informers.len();
        self.informers.push(Informer {
            slot,
            resource: spec.resource,
            filter: Filter {
                namespace: None,
                opts,
            },
            revision: None,
            watching: false,
            last: Time::ZERO,
        });
        self.rewatch(i);
    }

    /// Sends `input` to an informer's component after its latency, in stream order.
    fn send(&mut self, i: usize, input: Input) {
        let slot = self.informers[i].slot;
        let t = (self.now + self.delay(slot)).max(self.informers[i].last);
        self.informers[i].last = t;
        self.at(t, Event::Deliver(slot, input));
    }

    /// Starts an informer's watch: resumes after its revision, or lists first (the first time,
    /// or when its revision is too old for the watch cache), as a reflector does.
    fn rewatch(&mut self, i: usize) {
        let slot = self.informers[i].slot;
        if !self.slots[slot].alive || self.informers[i].watching {
            return;
        }
        if self.apiserver_down.is_some() {
            self.at(self.now + REWATCH_DELAY, Event::Rewatch(i));
            return;
        }
        let res = self.informers[i].resource;
        let filter = self.informers[i].filter.clone();
        let Some(feed) = self.feeds.get_mut(res) else {
            self.at(self.now + REWATCH_DELAY, Event::Rewatch(i));
            return;
        };
        let resumed = self.informers[i]
            .revision
            .map(|r| feed.cacher.watch(i as u64, filter.clone(), r));
        let name = self.slots[slot].component.name().to_string();
        match &resumed {
            Some(Ok(_)) => self.trace.line(
                self.now,
                &name,
                "watch",
                json!(format!(
                    "resume {} after {}",
                    res.plural,
                    self.informers[i].revision.unwrap_or(0)
                )),
            ),
            Some(Err(e)) => self.trace.line(
                self.now,
                &name,
                "watch",
                json!(format!("relist {}: {}", res.plural, e.message)),
            ),
            None => {}
        }
        match resumed {
            Some(Ok(missed)) => {
                self.informers[i].watching = true;
                for event in missed {
                    self.informers[i].revision = Some(event.revision);
                    self.send(
                        i,
                        Input::Watched {
                            resource: res,
                            event,
                        },
                    );
                }
            }
            None | Some(Err(_)) => {
                let (items, revision) = feed.cacher.list(&filter);
                feed.cacher
                    .watch(i as u64, filter, revision)
                    .expect("a watch from the cache's own revision");
                self.informers[i].watching = true;
                self.informers[i].revision = Some(revision);
                self.send(
                    i,
                    Input::Listed {
                        resource: res,
                        items,
                        revision,
                    },
                );
            }
        }
    }

    /// An informer's watch broke; the reflector resumes after `revision` a moment later.
    fn break_watch(&mut self, i: usize, revision: Revision) {
        let res = self.informers[i].resource;
        if let Some(feed) = self.feeds.get_mut(res) {
            feed.cacher.unwatch(i as u64);
        }
        self.informers[i].watching = false;
        self.informers[i].revision = Some(revision);
        self.at(self.now + REWATCH_DELAY, Event::Rewatch(i));
    }

    /// Opens the watch cache of every resource (at boot; the store is up).
    fn open_feeds(&mut self) {
        for res in registry::RESOURCES {
            let (items, revision) = ready(self.api.list(res, None, &ListOptions::default()))
                .expect("the store is up at boot");
            let watch = ready(self.api.store().watch(&res.storage_prefix(), revision))
                .expect("the store is up at boot");
            self.feeds.0.push(Feed {
                res,
                cacher: Cacher::new(res, items, revision, CACHE_HISTORY),
                watch,
            });
        }
        self.feeds.0.sort_by_key(|f| (f.res.group, f.res.plural));
    }

    fn execute(&mut self, op: ApiOp) -> Result<Arc<Value>, ApiError> {
        let ctx = self.ctx();
        self.execute_in(op, ctx)
    }

    /// A component's request, as its user.
    fn execute_as(
        &mut self,
        op: ApiOp,
        user: Arc<gantry::auth::UserInfo>,
    ) -> Result<Arc<Value>, ApiError> {
        let ctx = self.ctx().as_user(user);
        self.execute_in(op, ctx)
    }

    fn execute_in(&mut self, op: ApiOp, ctx: RequestContext) -> Result<Arc<Value>, ApiError> {
        let r = ready(self.api.execute(op, &ctx));
        self.pump();
        r
    }

    /// Feeds every new store event to its watch cache, the invariants and the tallies, and
    /// sends each informer what passes its filter.
    fn pump(&mut self) {
        for f in 0..self.feeds.0.len() {
            let key = (self.feeds.0[f].res.group, self.feeds.0[f].res.plural);
            loop {
                let feed = &mut self.feeds.0[f];
                let Some(item) = feed.watch.try_next() else {
                    break;
                };
                let Ok(ev) = item else {
                    // The store ended the watch (it fell behind): a real watch cache relists.
                    // MemStore never does this to a watch that is drained after every write.
                    break;
                };
                let decoded = self.api.decoded(&ev.kv.key, ev.revision());
                let feed = &mut self.feeds.0[f];
                let applied = match feed.cacher.apply_decoded(&ev, decoded) {
                    Ok(a) => a,
                    Err(e) => {
                        self.invariants
                            .violations
                            .push(format!("a stored object cannot be decoded: {}", e.message));
                        continue;
                    }
                };
                self.observe(key, &applied);
                for (id, event) in applied.events {
                    let i = id as usize;
                    let slot = self.informers[i].slot;
                    if self.lost(slot) {
                        // The connection broke: everything before this event was sent.
                        self.break_watch(i, event.revision - 1);
                        continue;
                    }
                    self.informers[i].revision = Some(event.revision);
                    let resource = self.informers[i].resource;
                    self.send(i, Input::Watched { resource, event });
                }
            }
        }
    }

    fn observe(&mut self, key: (&str, &str), a: &Applied) {
        let at = self.rel().as_secs_f64();
        let what = || format!("at {at:.3}s");
        match key {
            ("", "pods") => {
                self.invariants
                    .pod(a.prev.as_deref(), a.new.as_deref(), what);
                for t in self.tallies.values_mut() {
                    t.change(a.prev.as_deref(), a.new.as_deref());
                }
            }
            ("", "nodes") => self.invariants.node(a.prev.as_deref(), a.new.as_deref()),
            _ => {}
        }
        if let Some(res) = registry::by_plural(key.0, key.1) {
            self.invariants
                .owned(res.kind, a.prev.as_deref(), a.new.as_deref(), what);
        }
    }

    /// The store's current revision (what a fresh list would be read at).
    fn store_revision(&self) -> Revision {
        self.feeds
            .0
            .iter()
            .map(|f| f.cacher.revision())
            .max()
            .unwrap_or(0)
    }

    fn cached(&self, res: &ResourceInfo, namespace: Option<&str>, name: &str) -> Option<&Value> {
        self.feeds
            .get(res)
            .and_then(|f| f.cacher.get(namespace, name))
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
        // One buffer serves every step; the component's name is copied only for what is traced.
        let mut out = std::mem::take(&mut self.out);
        let now = self.now;
        let rng: &mut dyn RngCore = &mut self.rng;
        self.slots[idx].component.step(now, input, rng, &mut out);
        let name = |sim: &Sim| sim.slots[idx].component.name().to_string();
        for effect in out.drain(..) {
            match effect {
                Effect::Api { id, op } => {
                    let t = (self.now + self.delay(idx))
                        .max(self.link_up.get(&idx).copied().unwrap_or(Time::ZERO));
                    self.link_up.insert(idx, t);
                    if self.lost(idx) {
                        let name = name(self);
                        self.drop_message(idx, id, &name, "request", &op.describe());
                    } else {
                        self.at(
                            t,
                            Event::Api {
                                slot: idx,
                                id,
                                op,
                                waited: false,
                            },
                        );
                    }
                }
                // The scripted runtime's containers are forgotten with their pods' scripts;
                // the pod's address is released.
                Effect::Runtime {
                    op: RuntimeOp::RemovePod { pod_uid },
                    ..
                } => self.runtime.remove_pod(&pod_uid),
                Effect::Runtime { id, op } => {
                    // Probes are left out of traces.
                    let what = match &op {
                        RuntimeOp::Start { .. } | RuntimeOp::Stop { .. } => Some(op.describe()),
                        RuntimeOp::Probe { .. } | RuntimeOp::RemovePod { .. } => None,
                    };
                    if let Some(w) = what {
                        let name = name(self);
                        self.trace.line(self.now, &name, "runtime", json!(w));
                    }
                    let outcome = self.runtime.run(&op, self.now);
                    if let gantry::component::RuntimeResult::Started { container_id, .. } =
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
                        .push(at.max(self.now), token, Event::Timer(idx, id, token));
                }
                // Recording wrapped the component: no event reaches here.
                Effect::Event { reason, .. } => {
                    let name = name(self);
                    self.trace
                        .line(self.now, &name, "log", json!(format!("event {reason}")));
                }
                Effect::Log { v, message } => {
                    if v <= 2 {
                        let name = name(self);
                        self.trace.line(self.now, &name, "log", json!(message));
                    }
                    if v == 0 {
                        self.notable
                            .push(format!("{:>9.3}s  {message}", self.rel().as_secs_f64()));
                    }
                }
            }
        }
        self.out = out;
    }

    /// A request or its answer (`what`) is lost: traced, and the client times out.
    fn drop_message(&mut self, slot: usize, id: u64, name: &str, what: &str, described: &str) {
        self.trace
            .line(self.now, name, "lost", json!(format!("{what} {described}")));
        self.time_out(slot, id, &format!("the {what} was lost"));
    }

    /// The component waits for an answer that does not come, and then gives up.
    fn time_out(&mut self, slot: usize, id: u64, why: &str) {
        let e = ApiError::timeout(format!("the request timed out ({why})"));
        self.at(
            self.now + REQUEST_TIMEOUT,
            Event::Deliver(slot, Input::ApiResult { id, result: Err(e) }),
        );
    }

    /// A request reaches the apiserver.
    fn serve(&mut self, slot: usize, id: u64, op: ApiOp, waited: bool) {
        if !self.slots[slot].alive {
            return;
        }
        if self.partitioned(slot) {
            self.time_out(slot, id, "network partition");
            return;
        }
        let name = self.slots[slot].component.name().to_string();
        if let Some((until, extra)) = self.slow_store {
            if self.apiserver_down.is_none() && !waited && self.now < until {
                self.at(
                    self.now + extra,
                    Event::Api {
                        slot,
                        id,
                        op,
                        waited: true,
                    },
                );
                return;
            }
        }
        let described = op.describe();
        let result = if self.apiserver_down.is_some() {
            Err(ApiError::unavailable(
                "connection refused: the apiserver is restarting",
            ))
        } else {
            let user = self.slots[slot].user.clone();
            self.execute_checked(op, &described, &name, user)
        };
        let code = result.as_ref().map_or_else(|e| e.code, |_| 200);
        self.trace.line(self.now, &name, "api", {
            let mut d = String::with_capacity(described.len() + 4);
            d.push_str(&described);
            d.push(' ');
            d.push_str(&code.to_string());
            Value::String(d)
        });
        if self.lost(slot) {
            self.drop_message(slot, id, &name, "answer", &described);
            return;
        }
        let t = (self.now + self.delay(slot))
            .max(self.link_down.get(&slot).copied().unwrap_or(Time::ZERO));
        self.link_down.insert(slot, t);
        self.at(t, Event::Deliver(slot, Input::ApiResult { id, result }));
    }

    /// Executes a component's request, checking that an update based on a resourceVersion only
    /// succeeds if that version is current.
    fn execute_checked(
        &mut self,
        op: ApiOp,
        described: &str,
        component: &str,
        user: Arc<gantry::auth::UserInfo>,
    ) -> Result<Arc<Value>, ApiError> {
        if let (
            "garbage-collector",
            ApiOp::Delete {
                resource,
                namespace,
                name,
                ..
            },
        ) = (component, &op)
        {
            // The object and its owners as they are now (the watch caches are the store's).
            let object = self.cached(resource, namespace.as_deref(), name).cloned();
            let r = self.execute_as(op, user);
            if let (Some(object), Ok(_)) = (object, &r) {
                let owners: Vec<(Value, Option<Value>)> = object["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let live = gantry::controllers::garbagecollector::graph::resolve(
                            r["apiVersion"].as_str().unwrap_or(""),
                            r["kind"].as_str().unwrap_or(""),
                        )
                        .and_then(|res| {
                            let ns = object["metadata"]["namespace"]
                                .as_str()
                                .filter(|_| res.namespaced);
                            self.cached(res, ns, r["name"].as_str().unwrap_or(""))
                                .cloned()
                        });
                        (r.clone(), live)
                    })
                    .collect();
                self.invariants.collected(described, &object, |r| {
                    owners
                        .iter()
                        .find(|(x, _)| x == r)
                        .and_then(|(_, live)| live.clone())
                });
            }
            return r;
        }
        let ApiOp::Update {
            resource,
            namespace,
            name,
            body,
            ..
        } = &op
        else {
            return self.execute_as(op, user);
        };
        let sent = body["metadata"]["resourceVersion"]
            .as_str()
            .map(String::from);
        let current = self
            .cached(resource, namespace.as_deref(), name)
            .and_then(|o| o["metadata"]["resourceVersion"].as_str())
            .map(String::from);
        let r = self.execute_as(op, user);
        self.invariants
            .update(described, sent.as_deref(), current.as_deref(), r.is_ok());
        r
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
            .position(|s| s.alive && !s.proxy && s.node.as_deref() == Some(node))
    }

    /// Starts `node`'s kube-proxy if a `traffic` step sends from it.
    fn add_proxy(&mut self, node: &str) {
        let sends = self
            .loaded
            .scenario
            .timeline
            .iter()
            .any(|s| s.traffic.as_ref().is_some_and(|t| t.from == node));
        if !sends {
            return;
        }
        let (shared, core) = crate::traffic::SharedProxy::new(node);
        self.proxies.insert(node.to_string(), core);
        let slot = self.slots.len();
        self.add(Box::new(shared), Some(node.to_string()));
        self.slots[slot].proxy = true;
    }

    /// One request of stream `i`: the sending node's kube-proxy picks a backend; the request
    /// succeeds if that pod's node is up and reachable.
    fn request(&mut self, i: usize) {
        let stream = self.streams[i].clone();
        if self.now > stream.until {
            return;
        }
        self.at(self.now + stream.every, Event::Request(i));
        let from_up = self.kubelet_for(&stream.from).is_some();
        let Some(core) = self.proxies.get(&stream.from).cloned().filter(|_| from_up) else {
            return;
        };
        let service = format!("{}/{}", stream.key.namespace, stream.key.name);
        let picked = core
            .borrow_mut()
            .pick(&stream.key, &stream.from, self.now, &mut self.rng);
        let (pod, ok, why) = match picked {
            None => (None, false, "refused: no endpoints".to_string()),
            Some(b) => {
                let found = self.feeds.get(resource("", "pods")).and_then(|f| {
                    f.cacher
                        .objects()
                        .filter(|p| p["status"]["podIP"] == b.ip.as_str())
                        .min_by_key(|p| !p["metadata"]["deletionTimestamp"].is_null())
                        .map(|p| {
                            (
                                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                            )
                        })
                });
                match found {
                    None => (None, false, format!("{b}: no pod there")),
                    Some((pod, node)) => {
                        let up = self.kubelet_for(&node).is_some();
                        let reachable = !self.partitioned.contains(&node);
                        let ok = up && reachable;
                        let why = match (up, reachable) {
                            (true, true) => format!("{b} ({pod} on {node})"),
                            (false, _) => format!("{b} ({pod} on {node}): node down, timed out"),
                            (true, false) => {
                                format!("{b} ({pod} on {node}): node cut off, timed out")
                            }
                        };
                        (Some(pod), ok, why)
                    }
                }
            }
        };
        let verdict = if ok { "ok" } else { "failed" };
        self.trace.line(
            self.now,
            &format!("traffic/{}", stream.from),
            "request",
            json!(format!("{service} → {why}: {verdict}")),
        );
        self.traffic.requests.push(crate::traffic::Request {
            at: self.now,
            service,
            pod,
            ok,
        });
    }

    /// A component stops: it gets nothing more and its watches end.
    fn stop_slot(&mut self, slot: usize) {
        self.slots[slot].alive = false;
        for i in 0..self.informers.len() {
            if self.informers[i].slot == slot {
                let res = self.informers[i].resource;
                if let Some(feed) = self.feeds.get_mut(res) {
                    feed.cacher.unwatch(i as u64);
                }
                self.informers[i].watching = false;
            }
        }
    }

    /// The node crashes: its kubelet (and kube-proxy), its watches and its containers vanish.
    fn kill(&mut self, node: &str) {
        let Some(slot) = self.kubelet_for(node) else {
            return;
        };
        self.stop_slot(slot);
        let proxy = self
            .slots
            .iter()
            .position(|s| s.alive && s.proxy && s.node.as_deref() == Some(node));
        if let Some(p) = proxy {
            self.stop_slot(p);
            self.proxies.remove(node);
        }
        // The node's pod sandboxes are gone: their addresses are free (its pods get new ones
        // when a restarted kubelet starts them again).
        self.runtime.node_down(node);
        let gone: Vec<String> = self
            .owner
            .iter()
            .filter(|(_, o)| **o == slot)
            .map(|(c, _)| c.clone())
            .collect();
        for c in gone {
            self.runtime.exited(&c);
            self.owner.remove(&c);
        }
    }

    /// The apiserver goes down for `down`: every watch breaks now; when it is back its watch
    /// caches start afresh, so informers that missed changes relist.
    fn restart_apiserver(&mut self, down: Duration) {
        let revision = self.store_revision();
        for feed in &mut self.feeds.0 {
            feed.cacher.restart(revision);
        }
        for i in 0..self.informers.len() {
            if self.informers[i].watching {
                let res = self.informers[i].resource;
                let current = self
                    .feeds
                    .get(res)
                    .expect("every resource has a feed")
                    .cacher
                    .revision();
                // A healthy watch has been sent everything up to the cache's revision.
                self.informers[i].revision = Some(current);
                self.informers[i].watching = false;
                let jitter = Duration::from_millis(self.rng.gen_range(0..1000));
                self.at(self.now + down + jitter, Event::Rewatch(i));
            }
        }
        self.apiserver_down = Some(self.now + down);
        self.at(self.now + down, Event::ApiserverUp);
    }

    fn crash_pods(&mut self, selector: &str, count: Option<usize>, code: i32) -> String {
        let sel = Selector::parse(selector).expect("validated");
        let by_pod = self.runtime.containers_of(&sel);
        let n = count.unwrap_or(by_pod.len()).min(by_pod.len());
        let mut crashed = Vec::new();
        for (pod, containers) in by_pod.into_iter().take(n) {
            for c in containers {
                self.at(self.now, Event::Exit(c, code));
            }
            crashed.push(pod);
        }
        if crashed.is_empty() {
            format!("crash pods {selector}: no running containers")
        } else {
            format!(
                "crash pods {selector} (exit {code}): {}",
                crashed.join(", ")
            )
        }
    }

    fn apply_step(&mut self, i: usize) {
        let step = &self.loaded.scenario.timeline[i];
        let (kill, restart, partition, heal, scale, apply, outage) = (
            step.kill.clone(),
            step.restart.clone(),
            step.partition.clone(),
            step.heal,
            step.scale.as_ref().map(|s| {
                let (plural, name) = match (&s.replicaset, &s.deployment) {
                    (Some(rs), _) => ("replicasets", rs.clone()),
                    (None, d) => ("deployments", d.clone().expect("validated")),
                };
                (plural, name, s.namespace.clone(), s.replicas)
            }),
            step.apply.clone(),
            step.store_outage,
        );
        let slow = step
            .store_slow
            .as_ref()
            .map(|s| (s.duration.0, s.latency.0));
        let apiserver = step.restart_apiserver.map(|d| d.0);
        let network = step.network.as_ref().map(|n| {
            (
                n.nodes.clone(),
                Link {
                    latency: n.latency,
                    drop: n.drop,
                },
            )
        });
        let crash = step
            .crash
            .as_ref()
            .map(|c| (c.pods.clone(), c.count, c.exit_code));
        let delete = step.delete.as_ref().and_then(|d| {
            let (group, plural, name) = d.target()?;
            Some((
                group,
                plural,
                name.to_string(),
                d.namespace.clone(),
                d.policy(),
            ))
        });
        if let Some(node) = kill {
            self.kill(&node);
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
                self.add_proxy(&node);
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
                let t = self.now + self.delay(idx);
                self.at(t, Event::Deliver(idx, input));
            }
            self.note("heal partitions".into());
        }
        if let Some((plural, name, ns, replicas)) = scale {
            let r = self.edit(plural, &ns, &name, |obj| {
                obj["spec"]["replicas"] = json!(replicas);
                Ok(())
            });
            let kind = plural.trim_end_matches('s');
            self.note(format!("scale {kind} {ns}/{name} to {replicas}: {r}"));
        }
        let set_image = self.loaded.scenario.timeline[i]
            .set_image
            .as_ref()
            .map(|s| {
                (
                    s.deployment.clone(),
                    s.namespace.clone(),
                    s.container.clone(),
                    s.image.clone(),
                )
            });
        if let Some((name, ns, container, image)) = set_image {
            let r = self.edit("deployments", &ns, &name, |obj| {
                let containers = obj["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .ok_or("the deployment has no containers")?;
                let mut found = false;
                for c in containers {
                    if container.as_deref().is_none_or(|n| c["name"] == n) {
                        c["image"] = json!(image);
                        found = true;
                    }
                }
                if !found {
                    return Err(format!("no container {container:?}"));
                }
                Ok(())
            });
            self.note(format!("set image deployment {ns}/{name} {image}: {r}"));
        }
        let undo = self.loaded.scenario.timeline[i]
            .rollout_undo
            .as_ref()
            .map(|u| (u.deployment.clone(), u.namespace.clone(), u.to_revision));
        if let Some((name, ns, to)) = undo {
            let rss: Vec<Value> = self
                .feeds
                .get(resource("apps", "replicasets"))
                .map(|f| f.cacher.objects().cloned().collect())
                .unwrap_or_default();
            let r = self.edit("deployments", &ns, &name, |obj| rollback(obj, &rss, to));
            self.note(format!("rollout undo deployment {ns}/{name}: {r}"));
        }
        if let Some(manifest) = apply {
            let r = if self.apiserver_down.is_some() {
                "the apiserver is down".to_string()
            } else {
                self.create_manifest(manifest)
            };
            self.note(format!("apply: {r}"));
        }
        if let Some(d) = outage {
            self.api.store().pause();
            self.at(self.now + d.0, Event::StoreBack);
            self.note(format!("store outage for {:?}", d.0));
        }
        if let Some((d, extra)) = slow {
            self.slow_store = Some((self.now + d, extra));
            self.at(self.now + d, Event::StoreFast);
            self.note(format!("store slow by {extra:?} for {d:?}"));
        }
        if let Some(d) = apiserver {
            self.restart_apiserver(d);
            self.note(format!("apiserver restarts, down for {d:?}"));
        }
        if let Some((nodes, link)) = network {
            match &nodes {
                Some(nodes) => {
                    for n in nodes {
                        self.node_links.insert(n.clone(), link);
                    }
                }
                None => {
                    self.default_link = link;
                    self.node_links.clear();
                }
            }
            self.note(format!(
                "network {}: latency {:?}-{:?}, drop {}",
                nodes
                    .map(|n| n.join(", "))
                    .unwrap_or_else(|| "everywhere".into()),
                link.latency.min.0,
                link.latency.max.0,
                link.drop
            ));
        }
        if let Some((pods, count, code)) = crash {
            let r = self.crash_pods(&pods, count, code);
            self.note(r);
        }
        let traffic =
            self.loaded.scenario.timeline[i]
                .traffic
                .as_ref()
                .map(|t| crate::traffic::Stream {
                    key: gantry::proxy::ServicePortKey {
                        namespace: t.namespace.clone(),
                        name: t.service.clone(),
                        port: t.port.clone().unwrap_or_default(),
                    },
                    from: t.from.clone(),
                    every: t.every.0,
                    until: self.now + t.duration.0,
                });
        if let Some(stream) = traffic {
            self.note(format!(
                "traffic to {} from {} every {:?} until {:?}",
                stream.key,
                stream.from,
                stream.every,
                stream.until.since(EPOCH)
            ));
            self.streams.push(stream);
            self.at(self.now, Event::Request(self.streams.len() - 1));
        }
        let doomed_ns = self.loaded.scenario.timeline[i].delete_namespace.clone();
        if let Some(ns) = doomed_ns {
            let op = ApiOp::Delete {
                resource: resource("", "namespaces"),
                namespace: None,
                name: ns.clone(),
                grace_period_seconds: None,
                precondition_uid: None,
                precondition_resource_version: None,
                propagation_policy: None,
            };
            let r = if self.apiserver_down.is_some() {
                "the apiserver is down".to_string()
            } else {
                self.execute(op)
                    .map(|_| "ok".to_string())
                    .unwrap_or_else(|e| e.message)
            };
            self.note(format!("delete namespace {ns}: {r}"));
        }
        if let Some((group, plural, name, ns, policy)) = delete {
            let op = ApiOp::Delete {
                resource: resource(group, plural),
                namespace: Some(ns),
                name,
                grace_period_seconds: None,
                precondition_uid: None,
                precondition_resource_version: None,
                propagation_policy: policy,
            };
            let desc = op.describe();
            let r = if self.apiserver_down.is_some() {
                "the apiserver is down".to_string()
            } else {
                match self.execute(op) {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.message,
                }
            };
            self.note(format!(
                "{desc} (propagation {}): {r}",
                policy.unwrap_or("default")
            ));
        }
    }

    /// Changes an object in the apps group as a user would (an update from the cache's copy).
    fn edit(
        &mut self,
        plural: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value) -> Result<(), String>,
    ) -> String {
        let res = resource("apps", plural);
        if self.apiserver_down.is_some() {
            return "the apiserver is down".into();
        }
        let Some(mut obj) = self.cached(res, Some(ns), name).cloned() else {
            return format!("{plural}.apps {name:?} not found");
        };
        if let Err(e) = f(&mut obj) {
            return e;
        }
        let op = ApiOp::Update {
            resource: res,
            namespace: Some(ns.to_string()),
            name: name.to_string(),
            body: obj,
            part: gantry::apiserver::Part::Main,
        };
        self.execute(op)
            .map(|_| "ok".to_string())
            .unwrap_or_else(|e| e.message)
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
        match self.execute(op) {
            Ok(_) => desc,
            Err(e) => format!("{desc}: {}", e.message),
        }
    }

    /// Whether `check`'s condition holds now (the watch caches' view, which is the store's).
    fn holds(&self, c: &Check) -> (bool, String) {
        if let Some(rs) = &c.replicaset {
            let found = self.cached(resource("apps", "replicasets"), Some(&c.namespace), rs);
            if c.exists == Some(false) {
                return match found {
                    None => (true, format!("replicaset {rs} does not exist")),
                    Some(o) => (
                        false,
                        format!(
                            "replicaset {rs} exists{}",
                            if o["metadata"]["deletionTimestamp"].is_null() {
                                ""
                            } else {
                                " (being deleted)"
                            }
                        ),
                    ),
                };
            }
            let Some(obj) = found else {
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
        if let Some(name) = &c.deployment {
            let Some(obj) = self.cached(resource("apps", "deployments"), Some(&c.namespace), name)
            else {
                return (false, format!("deployment {name} does not exist"));
            };
            let st = &obj["status"];
            let get = |f: &str| st[f].as_i64().unwrap_or(0);
            let mut ok = true;
            for (field, want) in [
                ("replicas", c.replicas),
                ("updatedReplicas", c.updated_replicas),
                ("readyReplicas", c.ready_replicas),
                ("availableReplicas", c.available_replicas),
            ] {
                if let Some(w) = want {
                    ok &= get(field) == w;
                }
            }
            let progressing = st["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Progressing")
                .and_then(|c| c["reason"].as_str())
                .unwrap_or("none");
            if let Some(want) = &c.progressing {
                ok &= progressing == want;
            }
            let uid = obj["metadata"]["uid"].clone();
            let active = self
                .feeds
                .get(resource("apps", "replicasets"))
                .map(|f| {
                    f.cacher
                        .objects()
                        .filter(|rs| {
                            rs["metadata"]["ownerReferences"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|r| r["uid"] == uid && r["controller"] == true)
                                && rs["spec"]["replicas"].as_i64().unwrap_or(0) > 0
                        })
                        .count()
                })
                .unwrap_or(0);
            if let Some(want) = c.active_replica_sets {
                ok &= active == want;
            }
            return (
                ok,
                format!(
                    "replicas={} updated={} ready={} available={} progressing={progressing} activeReplicaSets={active}",
                    get("replicas"),
                    get("updatedReplicas"),
                    get("readyReplicas"),
                    get("availableReplicas")
                ),
            );
        }
        if let Some(node) = &c.node {
            let status = self
                .cached(resource("", "nodes"), None, node)
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
            let t = &self.tallies[sel];
            let mut ok = c.count.is_none_or(|n| t.running == n);
            if let Some(max) = c.at_most {
                ok &= t.live <= max;
            }
            if let Some(min) = c.at_least {
                ok &= t.running >= min;
            }
            let mut detail = format!(
                "{} running and ready, {} not terminating",
                t.running, t.live
            );
            if let Some(want) = &c.nodes {
                // Exactly these counts per node; unlisted nodes have none.
                ok &= t.per_node.iter().all(|(n, c)| want.get(n) == Some(c))
                    && want
                        .iter()
                        .all(|(n, c)| *c == 0 || t.per_node.get(n) == Some(c));
                detail.push_str(&format!(", by node {:?}", t.per_node));
            }
            if let Some(want) = &c.zones {
                let mut zones: BTreeMap<String, usize> = BTreeMap::new();
                for (node, n) in &t.per_node {
                    let zone = self
                        .cached(resource("", "nodes"), None, node)
                        .and_then(|o| o["metadata"]["labels"][ZONE_LABEL].as_str())
                        .unwrap_or("")
                        .to_string();
                    *zones.entry(zone).or_default() += n;
                }
                ok &= zones.iter().all(|(z, c)| want.get(z) == Some(c))
                    && want.iter().all(|(z, c)| *c == 0 || zones.get(z) == Some(c));
                detail.push_str(&format!(", by zone {zones:?}"));
            }
            return (ok, detail);
        }
        if let Some(sel) = &c.pods {
            let n = self.count_pods(sel, c.owner.as_deref());
            let what = match c.owner.as_deref() {
                Some("none") => " without an owner",
                Some("gone") => " whose controller is gone",
                _ => "",
            };
            return (
                c.count.is_none_or(|want| n == want),
                format!("{n} pods{what}"),
            );
        }
        if let Some(svc) = &c.traffic {
            let after = EPOCH + c.after.map(|d| d.0).unwrap_or_default();
            let service = format!("{}/{svc}", c.namespace);
            let (failed, ok, pods) = self.traffic.since(&service, after);
            let holds = c.failed_at_least.is_none_or(|n| failed >= n)
                && c.failed_at_most.is_none_or(|n| failed <= n)
                && c.served_by.is_none_or(|n| pods == n);
            return (
                holds,
                format!("{service}: {failed} failed, {ok} served by {pods} pods"),
            );
        }
        if let Some(ns) = &c.namespace_gone {
            let phase = self
                .cached(resource("", "namespaces"), None, ns)
                .map(|n| n["status"]["phase"].as_str().unwrap_or("").to_string());
            return match phase {
                None => (true, format!("namespace {ns} is gone")),
                Some(p) => (false, format!("namespace {ns} is {p}")),
            };
        }
        if let Some(svc) = &c.endpoints {
            let ep = self.cached(resource("", "endpoints"), Some(&c.namespace), svc);
            let count = |field: &str| -> usize {
                ep.and_then(|e| e["subsets"].as_array())
                    .into_iter()
                    .flatten()
                    .map(|s| s[field].as_array().map_or(0, Vec::len))
                    .sum()
            };
            let (ready, not_ready) = (count("addresses"), count("notReadyAddresses"));
            let slices = self
                .feeds
                .get(resource("discovery.k8s.io", "endpointslices"))
                .map(|f| {
                    f.cacher
                        .objects()
                        .filter(|s| {
                            s["metadata"]["namespace"] == c.namespace.as_str()
                                && s["metadata"]["labels"]["kubernetes.io/service-name"]
                                    == svc.as_str()
                        })
                        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
                        .filter(|e| e["conditions"]["ready"] == true)
                        .count()
                })
                .unwrap_or(0);
            let ok = ep.is_some()
                && c.addresses.is_none_or(|n| n == ready)
                && c.not_ready_addresses.is_none_or(|n| n == not_ready)
                && c.ready_endpoints.is_none_or(|n| n == slices);
            return (
                ok,
                format!(
                    "endpoints {svc}: {} addresses={ready} notReadyAddresses={not_ready}, \
                     {slices} ready in slices",
                    if ep.is_some() { "exist" } else { "absent" }
                ),
            );
        }
        (false, "nothing to check".into())
    }

    /// The pods matching `selector` (terminating ones included), narrowed by `owner`: `none`
    /// (no ownerReferences), `gone` (not terminating, with a controller reference to no object
    /// with that UID).
    fn count_pods(&self, selector: &str, owner: Option<&str>) -> usize {
        let sel = Selector::parse(selector).unwrap_or_default();
        let Some(feed) = self.feeds.get(resource("", "pods")) else {
            return 0;
        };
        let opts = ListOptions {
            label_selector: sel,
            ..Default::default()
        };
        let (items, _) = feed.cacher.list(&Filter {
            namespace: None,
            opts,
        });
        items
            .iter()
            .filter(|p| {
                let refs = p["metadata"]["ownerReferences"].as_array();
                match owner {
                    Some("none") => refs.is_none_or(|r| r.is_empty()),
                    // Being deleted: the collector's part is done.
                    Some("gone") => {
                        p["metadata"]["deletionTimestamp"].is_null()
                            && refs
                                .into_iter()
                                .flatten()
                                .filter(|r| r["controller"] == true)
                                .any(|r| !self.owner_exists(p, r))
                    }
                    _ => true,
                }
            })
            .count()
    }

    /// Whether the object an owner reference of `dependent` names exists with its UID.
    fn owner_exists(&self, dependent: &Value, r: &Value) -> bool {
        let Some(res) = gantry::controllers::garbagecollector::graph::resolve(
            r["apiVersion"].as_str().unwrap_or(""),
            r["kind"].as_str().unwrap_or(""),
        ) else {
            return false;
        };
        let ns = dependent["metadata"]["namespace"]
            .as_str()
            .filter(|_| res.namespaced);
        self.cached(res, ns, r["name"].as_str().unwrap_or(""))
            .is_some_and(|o| o["metadata"]["uid"] == r["uid"])
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
        for _ in 0..gantry::apiserver::BOOT_OBJECTS {
            ctxs.push(self.ctx());
        }
        ready(self.api.bootstrap(|| {
            n += 1;
            ctxs[n - 1].clone()
        }))
        .expect("bootstrap");
        // The simulated apiserver's address, for the default/kubernetes Service.
        let ctxs: Vec<_> = (0..6).map(|_| self.ctx()).collect();
        let mut ctxs = ctxs.into_iter();
        ready(
            self.api
                .ensure_kubernetes_service(SIM_APISERVER_ADDRESS, || {
                    ctxs.next().expect("enough contexts")
                }),
        )
        .expect("the kubernetes Service");
        self.open_feeds();
        let nodes = self.loaded.nodes.clone();
        for (i, spec) in nodes.iter().enumerate() {
            self.add(
                Box::new(Kubelet::new(node_config(spec, i))),
                spec.name.clone(),
            );
        }
        for spec in &nodes {
            if let Some(name) = &spec.name {
                self.add_proxy(name);
            }
        }
        let grace = gantry::controllers::nodelifecycle::MONITOR_GRACE;
        for core in gantry::controllers::control_plane(grace) {
            self.add(core, None);
        }
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
        while let Some((at, event)) = self.events.pop_until(end) {
            self.now = at;
            self.processed += 1;
            match event {
                Event::Deliver(idx, input) => self.step_component(idx, input),
                Event::Api {
                    slot,
                    id,
                    op,
                    waited,
                } => self.serve(slot, id, op, waited),
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
                Event::Rewatch(i) => self.rewatch(i),
                Event::Request(i) => self.request(i),
                Event::StoreBack => {
                    self.api.store().resume();
                    self.note("store back".into());
                }
                Event::StoreFast => {
                    if self.slow_store.is_some_and(|(until, _)| until <= self.now) {
                        self.slow_store = None;
                        self.note("store latency back to normal".into());
                    }
                }
                Event::ApiserverUp => {
                    if self.apiserver_down.is_some_and(|until| until <= self.now) {
                        self.apiserver_down = None;
                        // The new watch caches start from a fresh list, now.
                        let revision = self.store_revision();
                        for feed in &mut self.feeds.0 {
                            feed.cacher.restart(revision);
                        }
                        self.note("apiserver up".into());
                    }
                }
                Event::Check => self.check(false),
            }
        }
        self.now = end;
        self.check(true);
        let verdicts = std::mem::take(&mut self.verdicts)
            .into_iter()
            .flatten()
            .collect();
        for v in &self.invariants.violations {
            self.trace.line(self.now, "invariant", "violated", json!(v));
        }
        let report = Report {
            trace: std::mem::take(&mut self.trace),
            verdicts,
            violations: std::mem::take(&mut self.invariants.violations),
            notable: std::mem::take(&mut self.notable),
            events: self.processed,
            simulated: self.loaded.scenario.duration.0,
        };
        if self.exit_after {
            // The process ends next; the OS takes the cluster's memory back at once.
            std::mem::forget(self);
        }
        report
    }
}

fn describe(c: &Check) -> String {
    let mut parts = Vec::new();
    if let Some(rs) = &c.replicaset {
        parts.push(format!("replicaset {}/{rs}", c.namespace));
    }
    if let Some(d) = &c.deployment {
        parts.push(format!("deployment {}/{d}", c.namespace));
    }
    if let Some(n) = &c.namespace_gone {
        parts.push(format!("namespaceGone {n}"));
    }
    if let Some(t) = &c.traffic {
        parts.push(format!("traffic {}/{t}", c.namespace));
    }
    for (k, v) in [
        ("failedAtLeast", c.failed_at_least),
        ("failedAtMost", c.failed_at_most),
        ("servedBy", c.served_by),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    }
    for (k, v) in [
        ("replicas", c.replicas),
        ("updatedReplicas", c.updated_replicas),
        ("readyReplicas", c.ready_replicas),
        ("availableReplicas", c.available_replicas),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    }
    if let Some(e) = c.exists {
        parts.push(format!("exists={e}"));
    }
    if let Some(n) = &c.node {
        parts.push(format!("node {n}"));
    }
    if let Some(s) = &c.pods {
        parts.push(if s.is_empty() {
            "pods (all)".to_string()
        } else {
            format!("pods {s}")
        });
    }
    if let Some(o) = &c.owner {
        parts.push(format!("owner={o}"));
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
    if let Some(n) = c.at_least {
        parts.push(format!("atLeast={n}"));
    }
    if let Some(r) = &c.progressing {
        parts.push(format!("progressing={r}"));
    }
    if let Some(n) = c.active_replica_sets {
        parts.push(format!("activeReplicaSets={n}"));
    }
    if let Some(m) = &c.nodes {
        parts.push(format!("nodes={m:?}"));
    }
    if let Some(m) = &c.zones {
        parts.push(format!("zones={m:?}"));
    }
    if let Some(a) = c.after {
        parts.push(format!("after {:?}", a.0));
    }
    if let Some(b) = c.by {
        parts.push(format!("by {:?}", b.0));
    }
    parts.join(" ")
}

/// `kubectl rollout undo` on a Deployment (its client-side rollback): the template of the
/// ReplicaSet at `to` (the previous revision if `None`), without its pod-template-hash, and
/// that ReplicaSet's annotations but for the deployment's own.
/// k8s: kubectl polymorphichelpers/rollback.go DeploymentRollbacker
fn rollback(d: &mut Value, rss: &[Value], to: Option<i64>) -> Result<(), String> {
    use gantry::controllers::deployment::util::{self, HASH_LABEL, REVISION};
    const SKIP: &[&str] = &[
        "kubectl.kubernetes.io/last-applied-configuration",
        util::REVISION,
        util::REVISION_HISTORY,
        util::DESIRED_REPLICAS,
        util::MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    ];
    if d["spec"]["paused"] == true {
        return Err("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again".into());
    }
    let uid = d["metadata"]["uid"].clone();
    let name = d["metadata"]["name"].as_str().unwrap_or("").to_string();
    let revision = |rs: &Value| {
        rs["metadata"]["annotations"][REVISION]
            .as_str()
            .and_then(|r| r.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let owned: Vec<&Value> = rss
        .iter()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["uid"] == uid && r["controller"] == true)
        })
        .collect();
    let to = match to {
        Some(t) => t,
        None => {
            let mut revs: Vec<i64> = owned.iter().map(|rs| revision(rs)).collect();
            revs.sort_unstable();
            revs.dedup();
            match revs.len() {
                n if n >= 2 => revs[n - 2],
                _ => return Err(format!("no rollout history found for deployment {name:?}")),
            }
        }
    };
    let Some(rs) = owned.iter().find(|rs| revision(rs) == to) else {
        return Err(format!("unable to find specified revision {to} in history"));
    };
    let mut template = rs["spec"]["template"].clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
    }
    if template == d["spec"]["template"] {
        return Err(format!(
            "skipped rollback (current template already matches revision {to})"
        ));
    }
    let mut annotations = serde_json::Map::new();
    for (k, v) in d["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if SKIP.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in rs["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !SKIP.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    d["spec"]["template"] = template;
    d["metadata"]["annotations"] = Value::Object(annotations);
    Ok(())
}
