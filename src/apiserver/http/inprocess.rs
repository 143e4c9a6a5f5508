//! The API as the cores inside `gantry server` reach it: lists from the apiserver core, watches
//! from the shared watch caches HTTP clients use, requests straight to the core — no HTTP in
//! between, the same semantics.

use std::rc::Rc;
use std::sync::Arc;

use actix::Actor;
use futures::future::LocalBoxFuture;
use futures::stream::LocalBoxStream;
use futures::{FutureExt, StreamExt};
use serde_json::Value;

use super::hub::From;
use super::State;
use crate::api::status::ApiError;
use crate::apiserver::cacher::Filter;
use crate::apiserver::{ApiEvent, FieldSelector, ListOptions};
use crate::component::{ApiOp, Component, WatchSpec};
use crate::host::component::{ComponentActor, NoRuntime, RuntimeHost};
use crate::host::ApiClient;
use crate::store::Revision;

pub struct InProcessApi(pub Arc<State>);

fn options(spec: &WatchSpec) -> Result<ListOptions, ApiError> {
    let field_selector = match &spec.field_selector {
        Some(s) => FieldSelector::parse(spec.resource, s)?,
        None => FieldSelector::default(),
    };
    Ok(ListOptions {
        field_selector,
        ..Default::default()
    })
}

impl ApiClient for InProcessApi {
    fn list(
        &self,
        spec: &WatchSpec,
    ) -> LocalBoxFuture<'static, Result<(Vec<Value>, Revision), ApiError>> {
        let state = self.0.clone();
        let spec = spec.clone();
        async move {
            let opts = options(&spec)?;
            state.api.list(spec.resource, None, &opts).await
        }
        .boxed_local()
    }

    fn watch(
        &self,
        spec: &WatchSpec,
        after: Revision,
    ) -> LocalBoxFuture<'static, Result<LocalBoxStream<'static, ApiEvent>, ApiError>> {
        let state = self.0.clone();
        let spec = spec.clone();
        async move {
            let filter = Filter {
                namespace: None,
                opts: options(&spec)?,
            };
            let events = state
                .hub
                .watch(&state.api, spec.resource, filter, From::After(after))
                .await?;
            Ok(events.boxed_local())
        }
        .boxed_local()
    }

    fn execute(&self, op: ApiOp) -> LocalBoxFuture<'static, Result<Arc<Value>, ApiError>> {
        let state = self.0.clone();
        async move { state.api.execute(op, &state.ctx()).await }.boxed_local()
    }

    fn execute_as(
        &self,
        op: ApiOp,
        user: Arc<crate::auth::UserInfo>,
    ) -> LocalBoxFuture<'static, Result<Arc<Value>, ApiError>> {
        let state = self.0.clone();
        async move { state.api.execute(op, &state.ctx().as_user(user)).await }.boxed_local()
    }
}

/// Starts `component` as an actor on the current arbiter, against this server's API.
pub fn spawn(state: Arc<State>, component: Box<dyn Component>) {
    spawn_with(state, component, Rc::new(NoRuntime));
}

/// The same, with a container runtime (the server's own node agent).
pub fn spawn_with(state: Arc<State>, component: Box<dyn Component>, runtime: Rc<dyn RuntimeHost>) {
    let seed = state.ctx().random;
    ComponentActor::new(component, Rc::new(InProcessApi(state)), runtime, seed).start();
}
