//! One sans-IO core as an actix actor. Its informers list and then watch the API (a watch that
//! ends is followed by a relist, as client-go's reflector does); its timers are actor timers;
//! its API requests and runtime operations run as futures of the actor whose results come back
//! as inputs. Requests about one object keep their order (a kubelet's status write before its
//! final delete); requests about different objects run side by side.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::LocalBoxFuture;
use futures::stream::LocalBoxStream;
use futures::StreamExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{wall_clock, ApiClient};
use crate::apiserver::ApiEvent;
use crate::component::{ApiOp, Component, Effect, Input, RuntimeOp, RuntimeResult, WatchSpec};

/// Requests of one component in flight at once.
const MAX_IN_FLIGHT: usize = 32;
/// A list that failed is tried again after this long.
const RELIST_BACKOFF: Duration = Duration::from_secs(1);

/// Carries out runtime operations for a component (a node agent's kubelet).
pub trait RuntimeHost {
    fn run(&self, op: RuntimeOp) -> LocalBoxFuture<'static, RuntimeResult>;
    /// Containers that exit on their own; taken once.
    fn exits(&self) -> Option<LocalBoxStream<'static, Input>>;
}

/// For components that run no containers.
pub struct NoRuntime;

impl RuntimeHost for NoRuntime {
    fn run(&self, _op: RuntimeOp) -> LocalBoxFuture<'static, RuntimeResult> {
        Box::pin(futures::future::ready(RuntimeResult::StartFailed {
            reason: "RunContainerError".into(),
            message: "this host has no container runtime".into(),
        }))
    }

    fn exits(&self) -> Option<LocalBoxStream<'static, Input>> {
        None
    }
}

pub struct ComponentActor {
    name: String,
    /// Who its requests are from (`Component::user`).
    user: Arc<crate::auth::UserInfo>,
    component: Box<dyn Component>,
    api: Rc<dyn ApiClient>,
    runtime: Rc<dyn RuntimeHost>,
    rng: ChaCha8Rng,
    specs: Vec<WatchSpec>,
    timers: BTreeMap<u64, SpawnHandle>,
    queued: VecDeque<(u64, ApiOp)>,
    /// Objects with a request in flight.
    busy: BTreeSet<String>,
}

impl ComponentActor {
    pub fn new(
        component: Box<dyn Component>,
        api: Rc<dyn ApiClient>,
        runtime: Rc<dyn RuntimeHost>,
        seed: u64,
    ) -> Self {
        // Every component's events are written as Event objects.
        let component = crate::event_recorder::recording(component);
        ComponentActor {
            name: component.name().to_string(),
            user: Arc::new(component.user()),
            specs: component.watches(),
            component,
            api,
            runtime,
            rng: ChaCha8Rng::seed_from_u64(seed),
            timers: BTreeMap::new(),
            queued: VecDeque::new(),
            busy: BTreeSet::new(),
        }
    }

    /// The first lists, all of them before any is fed (in the order the core gave), so that a
    /// core never works from a half-listed cluster (k8s: WaitForCacheSync); then the watches.
    fn open_all(&mut self, ctx: &mut Context<Self>) {
        let api = self.api.clone();
        let specs = self.specs.clone();
        let opened = async move {
            let mut all = Vec::new();
            for spec in &specs {
                let (items, revision) = api.list(spec).await?;
                let events = api.watch(spec, revision).await?;
                all.push((items, revision, events));
            }
            Ok::<_, crate::api::status::ApiError>(all)
        };
        ctx.spawn(
            opened
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(all) => {
                        for (i, (items, revision, events)) in all.into_iter().enumerate() {
                            act.listed(i, items, revision, events, ctx);
                        }
                    }
                    Err(e) => {
                        tracing::warn!("{}: cannot list: {}", act.name, e.message);
                        ctx.run_later(RELIST_BACKOFF, |act, ctx| act.open_all(ctx));
                    }
                }),
        );
    }

    /// Lists watch `i` again, then watches from the list's version.
    fn open(&mut self, i: usize, ctx: &mut Context<Self>) {
        let api = self.api.clone();
        let spec = self.specs[i].clone();
        let opened = async move {
            let (items, revision) = api.list(&spec).await?;
            let events = api.watch(&spec, revision).await?;
            Ok::<_, crate::api::status::ApiError>((items, revision, events))
        };
        ctx.spawn(
            opened
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok((items, revision, events)) => act.listed(i, items, revision, events, ctx),
                    Err(e) => {
                        tracing::warn!(
                            "{}: cannot list {}: {}",
                            act.name,
                            act.specs[i].resource.plural,
                            e.message
                        );
                        ctx.run_later(RELIST_BACKOFF, move |act, ctx| act.open(i, ctx));
                    }
                }),
        );
    }

    /// Feeds watch `i`'s list, then follows its watch (which ends in a `Watched(i, None)`).
    fn listed(
        &mut self,
        i: usize,
        items: Vec<serde_json::Value>,
        revision: crate::store::Revision,
        events: LocalBoxStream<'static, ApiEvent>,
        ctx: &mut Context<Self>,
    ) {
        let resource = self.specs[i].resource;
        self.feed(
            Input::Listed {
                resource,
                items,
                revision,
            },
            ctx,
        );
        let ended = futures::stream::once(async move { Watched(i, None) });
        ctx.add_stream(events.map(move |e| Watched(i, Some(e))).chain(ended));
    }

    /// Steps the core with one input and carries out what it asks for.
    fn feed(&mut self, input: Input, ctx: &mut Context<Self>) {
        let mut out = Vec::new();
        self.component
            .step(wall_clock(), input, &mut self.rng, &mut out);
        for effect in out {
            match effect {
                Effect::Api { id, op } => self.queued.push_back((id, op)),
                Effect::Timer { id, at } => {
                    if let Some(h) = self.timers.remove(&id) {
                        ctx.cancel_future(h);
                    }
                    let wait = Duration::from_nanos(at.0.saturating_sub(wall_clock().0));
                    let h = ctx.run_later(wait, move |act, ctx| {
                        act.timers.remove(&id);
                        act.feed(Input::Timer { id }, ctx);
                    });
                    self.timers.insert(id, h);
                }
                Effect::Runtime { id, op } => {
                    let done = self.runtime.run(op);
                    ctx.spawn(done.into_actor(self).map(move |result, act, ctx| {
                        act.feed(Input::RuntimeResult { id, result }, ctx)
                    }));
                }
                Effect::Event {
                    involved,
                    reason,
                    message,
                    ..
                } => tracing::info!(
                    "{}: event {reason} on {}: {message}",
                    self.name,
                    involved.name.as_deref().unwrap_or("")
                ),
                Effect::Log { v, message } => match v {
                    0..=2 => tracing::info!("{}: {message}", self.name),
                    3..=4 => tracing::debug!("{}: {message}", self.name),
                    _ => tracing::trace!("{}: {message}", self.name),
                },
            }
        }
        self.pump(ctx);
    }

    /// Starts the queued requests that may run now.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let mut i = 0;
        let mut blocked = BTreeSet::new();
        while i < self.queued.len() && self.busy.len() < MAX_IN_FLIGHT {
            let key = object_key(self.queued[i].0, &self.queued[i].1);
            if self.busy.contains(&key) || blocked.contains(&key) {
                // Keeps its place behind the request about the same object.
                blocked.insert(key);
                i += 1;
                continue;
            }
            let (id, op) = self.queued.remove(i).expect("index checked");
            self.busy.insert(key.clone());
            let done = self.api.execute_as(op, self.user.clone());
            ctx.spawn(done.into_actor(self).map(move |result, act, ctx| {
                act.busy.remove(&key);
                act.feed(Input::ApiResult { id, result }, ctx);
            }));
        }
    }
}

/// The object a request is about: requests about one object keep their order.
fn object_key(id: u64, op: &ApiOp) -> String {
    match op {
        ApiOp::Create {
            resource,
            namespace,
            body,
        } => match body["metadata"]["name"].as_str() {
            Some(name) => format!("{}/{namespace:?}/{name}", resource.plural),
            // generateName: a new object every time.
            None => format!("create#{id}"),
        },
        ApiOp::Update {
            resource,
            namespace,
            name,
            ..
        }
        | ApiOp::Delete {
            resource,
            namespace,
            name,
            ..
        }
        | ApiOp::Get {
            resource,
            namespace,
            name,
        } => format!("{}/{namespace:?}/{name}", resource.plural),
        ApiOp::Bind {
            namespace, name, ..
        } => format!("pods/Some({namespace:?})/{name}"),
        ApiOp::DeleteCollection {
            resource,
            namespace,
        } => format!("{}/Some({namespace:?})/*", resource.plural),
        ApiOp::CreateToken {
            namespace, name, ..
        } => format!("serviceaccounts/Some({namespace:?})/{name}/token"),
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Watched(usize, Option<ApiEvent>);

impl StreamHandler<Watched> for ComponentActor {
    fn handle(&mut self, Watched(i, event): Watched, ctx: &mut Context<Self>) {
        match event {
            Some(event) => {
                let resource = self.specs[i].resource;
                self.feed(Input::Watched { resource, event }, ctx);
            }
            // The watch ended (a slow consumer cut off, a restarted server): relist.
            None => self.open(i, ctx),
        }
    }

    // A watch ending must not stop the actor (actix's default does).
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

#[derive(Message)]
#[rtype(result = "()")]
struct Exited(Input);

impl StreamHandler<Exited> for ComponentActor {
    fn handle(&mut self, Exited(input): Exited, ctx: &mut Context<Self>) {
        self.feed(input, ctx);
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Actor for ComponentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::debug!("{}: started", self.name);
        if let Some(exits) = self.runtime.exits() {
            ctx.add_stream(exits.map(Exited));
        }
        self.open_all(ctx);
    }
}
