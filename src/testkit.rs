//! A zero-latency host for exercising cores against the real apiserver core on MemStore:
//! every API request is answered at once, and its answer and the watch events it caused are
//! queued for the components in order. Deterministic (one seeded ChaCha8 RNG, virtual time, ordered delivery); the
//! simulator adds latencies and faults on top of the same steps.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use futures::FutureExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::api::status::ApiError;
use crate::apiserver::{ApiServer, ApiWatch, FieldSelector, ListOptions, RequestContext};
use crate::component::{ApiOp, Component, Effect, Input};
use crate::kubelet::scripted::ScriptedRuntime;
use crate::store::mem::MemStore;
use crate::time::Time;

fn ready<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("MemStore futures are always ready")
}

/// 2025-01-01T00:00:00Z: where virtual time starts.
pub const EPOCH: Time = Time(1_735_689_600_000_000_000);

pub struct Driver {
    pub api: ApiServer<MemStore>,
    pub now: Time,
    pub rng: ChaCha8Rng,
    components: Vec<Box<dyn Component>>,
    watches: Vec<(usize, &'static crate::api::registry::ResourceInfo, ApiWatch)>,
    timers: BTreeMap<(Time, usize, u64), ()>,
    /// Every API request made, in order: (component, description, outcome code).
    pub log: Vec<(String, String, u16)>,
    /// Fault injection: the next this-many requests from components fail with 503 unserved.
    pub fail_component_requests: usize,
    /// Inputs waiting to be handed to their component, in order.
    inbox: VecDeque<(usize, Input)>,
    /// The simulated container runtime every kubelet here shares.
    pub runtime: ScriptedRuntime,
    /// Containers due to exit: (when, sequence) → (component, container id, exit code).
    exits: BTreeMap<(Time, u64), (usize, String, i32)>,
    seq: u64,
    /// Every runtime operation and container exit, with its time: "start default/web-x/c".
    pub runtime_log: Vec<(Time, String)>,
    stopped: std::collections::BTreeSet<usize>,
    /// Every `Effect::Event` of a component not wrapped in `event_recorder::Recording`.
    pub events: Vec<RecordedEvent>,
}

/// An event a component emitted (the testkit keeps them instead of writing Event objects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    pub component: String,
    /// `Kind/name`
    pub object: String,
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Driver {
    pub fn new(seed: u64) -> Self {
        let mut d = Driver {
            api: ApiServer::new(MemStore::default()),
            now: EPOCH,
            rng: ChaCha8Rng::seed_from_u64(seed),
            components: Vec::new(),
            watches: Vec::new(),
            timers: BTreeMap::new(),
            log: Vec::new(),
            fail_component_requests: 0,
            inbox: VecDeque::new(),
            runtime: ScriptedRuntime::default(),
            exits: BTreeMap::new(),
            seq: 0,
            runtime_log: Vec::new(),
            stopped: Default::default(),
            events: Vec::new(),
        };
        let mut ctxs = Vec::new();
        for _ in 0..crate::apiserver::BOOT_OBJECTS {
            ctxs.push(d.ctx());
        }
        let mut it = ctxs.into_iter();
        ready(d.api.bootstrap(|| it.next().expect("one per boot object"))).expect("bootstrap");
        d
    }

    /// A request context from the virtual clock and the seeded RNG.
    pub fn ctx(&mut self) -> RequestContext {
        RequestContext::from_rng(self.now, &mut self.rng)
    }

    /// Adds a component: its caches are listed now and its watches opened.
    pub fn add(&mut self, component: Box<dyn Component>) {
        let idx = self.components.len();
        self.components.push(component);
        for spec in self.components[idx].watches() {
            let opts = ListOptions {
                field_selector: match spec.field_selector.as_deref() {
                    Some(f) => {
                        FieldSelector::parse(spec.resource, f).expect("valid field selector")
                    }
                    None => FieldSelector::default(),
                },
                ..Default::default()
            };
            let (items, rev) = ready(self.api.list(spec.resource, None, &opts)).expect("list");
            let watch = ready(self.api.watch(spec.resource, None, rev, opts)).expect("watch");
            self.watches.push((idx, spec.resource, watch));
            self.inbox.push_back((
                idx,
                Input::Listed {
                    resource: spec.resource,
                    items,
                    revision: rev,
                },
            ));
        }
        self.run();
    }

    /// Runs one API operation as a client (not a component) would.
    pub fn client(&mut self, op: ApiOp) -> Result<Value, ApiError> {
        let described = op.describe();
        let result = self.execute(op);
        self.log.push((
            "client".into(),
            described,
            result.as_ref().map_or_else(|e| e.code, |_| 200),
        ));
        self.collect_events();
        self.run();
        result.map(std::sync::Arc::unwrap_or_clone)
    }

    fn execute(&mut self, op: ApiOp) -> Result<std::sync::Arc<Value>, ApiError> {
        let ctx = self.ctx();
        ready(self.api.execute(op, &ctx))
    }

    /// A component's request, as its user (`Component::user`).
    fn execute_as(
        &mut self,
        op: ApiOp,
        user: crate::auth::UserInfo,
    ) -> Result<std::sync::Arc<Value>, ApiError> {
        let ctx = self.ctx().as_user(std::sync::Arc::new(user));
        ready(self.api.execute(op, &ctx))
    }

    /// Hands queued inputs to their components, one at a time and in order, carrying out each
    /// step's effects before the next step (so a later effect always wins).
    fn run(&mut self) {
        let mut steps = 0u64;
        while let Some((idx, input)) = self.inbox.pop_front() {
            if self.stopped.contains(&idx) {
                continue;
            }
            steps += 1;
            assert!(
                steps < 20_000,
                "livelock: 20,000 steps at {} without time passing; last input for {}: {input:?}",
                self.now,
                self.components[idx].name()
            );
            let mut out = Vec::new();
            let now = self.now;
            self.components[idx].step(now, input, &mut self.rng, &mut out);
            for effect in out {
                match effect {
                    Effect::Api { id, op } => {
                        let described = op.describe();
                        let result = if self.fail_component_requests > 0 {
                            self.fail_component_requests -= 1;
                            Err(ApiError::unavailable(
                                "injected: the apiserver is unavailable",
                            ))
                        } else {
                            let user = self.components[idx].user();
                            self.execute_as(op, user)
                        };
                        let name = self.components[idx].name().to_string();
                        self.log.push((
                            name,
                            described,
                            result.as_ref().map_or_else(|e| e.code, |_| 200),
                        ));
                        self.collect_events();
                        self.inbox.push_back((idx, Input::ApiResult { id, result }));
                    }
                    Effect::Timer { id, at } => {
                        self.timers.retain(|&(_, c, i), _| !(c == idx && i == id));
                        self.timers.insert((at, idx, id), ());
                    }
                    Effect::Runtime {
                        op: crate::component::RuntimeOp::RemovePod { pod_uid },
                        ..
                    } => self.runtime.remove_pod(&pod_uid),
                    Effect::Runtime { id, op } => {
                        let what = op.describe();
                        self.runtime_log.push((self.now, what));
                        let outcome = self.runtime.run(&op, self.now);
                        if let Some((container_id, at, code)) = outcome.exit {
                            self.seq += 1;
                            self.exits.insert((at, self.seq), (idx, container_id, code));
                        }
                        self.inbox.push_back((
                            idx,
                            Input::RuntimeResult {
                                id,
                                result: outcome.result,
                            },
                        ));
                    }
                    Effect::Event {
                        involved,
                        type_,
                        reason,
                        message,
                    } => self.events.push(RecordedEvent {
                        component: self.components[idx].name().to_string(),
                        object: format!(
                            "{}/{}",
                            involved.kind.as_deref().unwrap_or(""),
                            involved.name.as_deref().unwrap_or("")
                        ),
                        type_,
                        reason,
                        message,
                    }),
                    Effect::Log { .. } => {}
                }
            }
        }
    }

    /// Queues every watch event that is ready, in order.
    fn collect_events(&mut self) {
        for w in 0..self.watches.len() {
            while let Some(ev) = self.watches[w].2.try_next() {
                let (idx, resource) = (self.watches[w].0, self.watches[w].1);
                if self.stopped.contains(&idx) {
                    continue;
                }
                let event = ev.expect("watch stays healthy in the test driver");
                self.inbox
                    .push_back((idx, Input::Watched { resource, event }));
            }
        }
    }

    /// Stops a component as a crash would: no more inputs, timers or container exits for it.
    pub fn stop(&mut self, name: &str) {
        let Some(idx) = self.components.iter().position(|c| c.name() == name) else {
            panic!("no component {name}");
        };
        self.stopped.insert(idx);
        self.timers.retain(|&(_, c, _), _| c != idx);
        self.exits.retain(|_, (c, _, _)| *c != idx);
        self.inbox.retain(|(c, _)| *c != idx);
    }

    /// The armed timers: (when, component index, timer id), in firing order.
    pub fn timers(&self) -> Vec<(Time, usize, u64)> {
        self.timers.keys().copied().collect()
    }

    /// Advances virtual time by `d`, firing due timers and container exits in time order.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        let mut fired = 0u64;
        loop {
            fired += 1;
            assert!(
                fired < 1_000_000,
                "livelock: a million timers fired before {end}; at {}: {:?}",
                self.now,
                self.timers.first_key_value()
            );
            let timer = self
                .timers
                .first_key_value()
                .map(|(&(at, idx, id), _)| (at, idx, id));
            let exit = self
                .exits
                .first_key_value()
                .map(|(&(at, seq), _)| (at, seq));
            let next_at = match (timer, exit) {
                (Some(t), Some(e)) => t.0.min(e.0),
                (Some(t), None) => t.0,
                (None, Some(e)) => e.0,
                (None, None) => break,
            };
            if next_at > end {
                break;
            }
            self.now = self.now.max(next_at);
            match (timer, exit) {
                (_, Some((at, seq))) if at == next_at => {
                    let (idx, container_id, exit_code) =
                        self.exits.remove(&(at, seq)).expect("present");
                    if self.runtime.exited(&container_id) {
                        self.runtime_log
                            .push((self.now, format!("exit {container_id} {exit_code}")));
                        self.inbox.push_back((
                            idx,
                            Input::ContainerExited {
                                container_id,
                                exit_code,
                            },
                        ));
                    }
                }
                (Some((at, idx, id)), _) => {
                    self.timers.remove(&(at, idx, id));
                    self.inbox.push_back((idx, Input::Timer { id }));
                }
                _ => unreachable!("next_at came from one of them"),
            }
            self.run();
        }
        self.now = end;
    }
}
