//! Production hosts: each sans-IO core runs as an actix actor (component.rs) that lists and
//! watches the API, carries out the core's effects asynchronously and feeds their results back
//! as inputs — the job the simulator does with virtual time. The API is reached in-process
//! inside `gantry server` (apiserver/http/inprocess.rs) or over HTTP with kube-rs for remote
//! node agents (remote.rs); a node agent's runtime effects go to a container runtime
//! (node.rs).

pub mod component;
pub mod dns;
pub mod env;
pub mod http_get;
pub mod kubelet_server;
pub mod machine;
pub mod node;
pub mod pki;
pub mod projected;
pub mod proxy;
pub mod remote;
pub mod sources;
pub mod volumes;
pub mod websocket;

use std::sync::Arc;

use futures::future::LocalBoxFuture;
use futures::stream::LocalBoxStream;
use serde_json::Value;

use crate::api::status::ApiError;
use crate::apiserver::ApiEvent;
use crate::component::{ApiOp, WatchSpec};
use crate::store::Revision;
use crate::time::Time;

/// How a host reaches the API.
pub trait ApiClient {
    /// Lists what `spec` asks for: the items and the version they are at.
    fn list(
        &self,
        spec: &WatchSpec,
    ) -> LocalBoxFuture<'static, Result<(Vec<Value>, Revision), ApiError>>;

    /// Watches `spec` from `after`; the stream ends when the watch does (the host relists).
    fn watch(
        &self,
        spec: &WatchSpec,
        after: Revision,
    ) -> LocalBoxFuture<'static, Result<LocalBoxStream<'static, ApiEvent>, ApiError>>;

    /// Carries out one request of a core.
    fn execute(&self, op: ApiOp) -> LocalBoxFuture<'static, Result<Arc<Value>, ApiError>>;

    /// The same as the component `user` (its `Component::user`). A client with credentials
    /// of its own (the remote one) acts as those; the in-process one as `user`.
    fn execute_as(
        &self,
        op: ApiOp,
        user: Arc<crate::auth::UserInfo>,
    ) -> LocalBoxFuture<'static, Result<Arc<Value>, ApiError>> {
        let _ = user;
        self.execute(op)
    }
}

/// The wall clock as the cores' time (nanoseconds since the Unix epoch).
pub fn wall_clock() -> Time {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| Time(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
        .unwrap_or(Time::ZERO)
}
