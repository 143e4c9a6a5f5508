//! Runs a sans-IO core inside `gantry server`, against the same API the HTTP clients use: its
//! informers list and then watch through the shared watch caches, its API requests go to the
//! apiserver core, its timers are real time. The simulator drives the very same cores; a
//! watch that ends (a slow consumer, a rebuilt cache) is followed by a relist, as client-go's
//! reflector does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{LocalBoxStream, SelectAll};
use futures::StreamExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::hub::From;
use super::State;
use crate::api::status::ApiError;
use crate::apiserver::cacher::Filter;
use crate::apiserver::{ApiEvent, FieldSelector, ListOptions};
use crate::component::{Component, Effect, Input, RuntimeResult, WatchSpec};
use crate::time::Time;

/// Starts `component` on the current actix runtime; it runs as long as the server.
pub fn spawn(state: Arc<State>, component: Box<dyn Component>) {
    actix_web::rt::spawn(run(state, component));
}

/// One watch's events, then `None` when it ends.
type Events = LocalBoxStream<'static, (usize, Option<ApiEvent>)>;

/// Lists what `spec` asks for and registers a watch from the list's version.
async fn open(state: &Arc<State>, spec: &WatchSpec, i: usize) -> Result<(Input, Events), ApiError> {
    let field_selector = match &spec.field_selector {
        Some(s) => FieldSelector::parse(spec.resource, s)?,
        None => FieldSelector::default(),
    };
    let opts = ListOptions {
        field_selector,
        ..Default::default()
    };
    let (items, revision) = state.api.list(spec.resource, None, &opts).await?;
    let filter = Filter {
        namespace: None,
        opts,
    };
    let events = state
        .hub
        .watch(&state.api, spec.resource, filter, From::After(revision))
        .await?;
    let listed = Input::Listed {
        resource: spec.resource,
        items,
        revision,
    };
    let stream = events
        .map(move |e| (i, Some(e)))
        .chain(futures::stream::once(async move { (i, None) }))
        .boxed_local();
    Ok((listed, stream))
}

async fn run(state: Arc<State>, mut component: Box<dyn Component>) {
    let name = component.name().to_string();
    let mut rng = ChaCha8Rng::seed_from_u64(state.ctx().random);
    let specs = component.watches();
    let mut inbox: VecDeque<Input> = VecDeque::new();
    let mut watches: SelectAll<Events> = SelectAll::new();
    let mut reopen: Vec<usize> = (0..specs.len()).collect();
    let mut timers: BTreeMap<u64, Time> = BTreeMap::new();
    loop {
        for i in std::mem::take(&mut reopen) {
            match open(&state, &specs[i], i).await {
                Ok((listed, events)) => {
                    inbox.push_back(listed);
                    watches.push(events);
                }
                Err(e) => {
                    tracing::warn!(
                        "{name}: cannot list {}: {}",
                        specs[i].resource.plural,
                        e.message
                    );
                    reopen.push(i);
                }
            }
        }
        while let Some(input) = inbox.pop_front() {
            let mut out = Vec::new();
            component.step(super::wall_clock(), input, &mut rng, &mut out);
            for effect in out {
                match effect {
                    Effect::Api { id, op } => {
                        let result = state.api.execute(op, &state.ctx()).await;
                        inbox.push_back(Input::ApiResult { id, result });
                    }
                    Effect::Timer { id, at } => {
                        timers.insert(id, at);
                    }
                    Effect::Log { v, message } => match v {
                        0..=2 => tracing::info!("{name}: {message}"),
                        3..=4 => tracing::debug!("{name}: {message}"),
                        _ => tracing::trace!("{name}: {message}"),
                    },
                    Effect::Runtime { id, .. } => inbox.push_back(Input::RuntimeResult {
                        id,
                        result: RuntimeResult::StartFailed {
                            reason: "RunContainerError".into(),
                            message: "this host has no container runtime".into(),
                        },
                    }),
                }
            }
        }
        let next = timers
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(id, at)| (*id, *at));
        // A failed list is tried again after a second.
        let wait = match next {
            _ if !reopen.is_empty() => Duration::from_secs(1),
            Some((_, at)) => Duration::from_nanos(at.0.saturating_sub(super::wall_clock().0)),
            None => Duration::from_secs(3600),
        };
        let sleep = actix_web::rt::time::sleep(wait);
        futures::pin_mut!(sleep);
        match futures::future::select(watches.next(), sleep).await {
            futures::future::Either::Left((Some((i, Some(event))), _)) => {
                inbox.push_back(Input::Watched {
                    resource: specs[i].resource,
                    event,
                });
            }
            futures::future::Either::Left((Some((i, None)), _)) => reopen.push(i),
            futures::future::Either::Left((None, _)) => {
                // No watch at all (every one is being reopened): wait for the retry.
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            }
            futures::future::Either::Right(_) => {
                if let Some((id, at)) = next {
                    if at <= super::wall_clock() {
                        timers.remove(&id);
                        inbox.push_back(Input::Timer { id });
                    }
                }
            }
        }
    }
}
