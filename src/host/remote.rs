//! The API over HTTP with kube-rs, for node agents that join a server from elsewhere
//! (`gantry agent`): lists and watches with the field selector of each informer, requests as
//! the REST verbs. An unreachable server is a 503 ServiceUnavailable to the core, which retries
//! as it does when the simulator drops its request.

use std::sync::Arc;

use futures::future::LocalBoxFuture;
use futures::stream::LocalBoxStream;
use futures::{AsyncBufReadExt, FutureExt, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use super::ApiClient;
use crate::api::registry::ResourceInfo;
use crate::api::status::ApiError;
use crate::apiserver::{ApiEvent, EventType};
use crate::component::{ApiOp, WatchSpec};
use crate::store::Revision;

pub struct RemoteApi {
    client: kube::Client,
}

impl RemoteApi {
    pub fn new(client: kube::Client) -> Self {
        RemoteApi { client }
    }

    /// A client from a kubeconfig file, optionally pointed at another server URL.
    pub async fn from_kubeconfig(
        path: &std::path::Path,
        server: Option<&str>,
    ) -> Result<kube::Client, String> {
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
        if let Some(url) = server {
            config.cluster_url = url.parse().map_err(|e| format!("--server {url:?}: {e}"))?;
        }
        // Watches stay open until the server ends them.
        config.read_timeout = None;
        kube::Client::try_from(config).map_err(|e| format!("cannot make an API client: {e}"))
    }
}

/// `/api/v1[/namespaces/<ns>]/<plural>[/<name>[/<sub>]]`, or `/apis/<group>/<version>/...`.
fn path(
    res: &ResourceInfo,
    namespace: Option<&str>,
    name: Option<&str>,
    sub: Option<&str>,
) -> String {
    let mut p = if res.group.is_empty() {
        format!("/api/{}", res.version)
    } else {
        format!("/apis/{}/{}", res.group, res.version)
    };
    if let Some(ns) = namespace.filter(|n| res.namespaced && !n.is_empty()) {
        p.push_str("/namespaces/");
        p.push_str(ns);
    }
    p.push('/');
    p.push_str(res.plural);
    for s in [name, sub].into_iter().flatten() {
        p.push('/');
        p.push_str(s);
    }
    p
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The fixed StatusReasons an error may carry (ApiError's reason is static).
fn reason(s: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Invalid",
        "Forbidden",
        "Unauthorized",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "UnsupportedMediaType",
        "RequestEntityTooLarge",
        "Gone",
        "Expired",
        "ServiceUnavailable",
        "InternalError",
        "Timeout",
        "ServerTimeout",
        "TooManyRequests",
    ];
    KNOWN
        .iter()
        .find(|k| **k == s)
        .copied()
        .unwrap_or("Unknown")
}

fn api_error(e: kube::Error) -> ApiError {
    match e {
        kube::Error::Api(status) => {
            let mut err = ApiError::unavailable(status.message.clone());
            err.code = status.code;
            err.reason = reason(&status.reason);
            err
        }
        other => ApiError::unavailable(format!("the API server is not reachable: {other}")),
    }
}

fn request(
    method: &str,
    uri: &str,
    body: Option<&Value>,
) -> Result<http::Request<Vec<u8>>, ApiError> {
    let mut b = http::Request::builder().method(method).uri(uri);
    if body.is_some() {
        b = b.header("Content-Type", "application/json");
    }
    b.body(body.map(|v| v.to_string().into_bytes()).unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("cannot build the request: {e}")))
}

fn revision_of(v: &Value) -> Revision {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn selector_query(spec: &WatchSpec) -> String {
    spec.field_selector
        .as_deref()
        .map(|s| format!("fieldSelector={}", encode(s)))
        .unwrap_or_default()
}

/// DELETE on the collection, then a list: `{"remaining": n}`, what is still there.
async fn delete_collection(
    client: &kube::Client,
    resource: &ResourceInfo,
    namespace: &str,
) -> Result<Arc<Value>, ApiError> {
    let uri = path(resource, Some(namespace), None, None);
    client
        .request_text(request("DELETE", &uri, None)?)
        .await
        .map_err(api_error)?;
    let text = client
        .request_text(request("GET", &uri, None)?)
        .await
        .map_err(api_error)?;
    let list: Value =
        serde_json::from_str(&text).map_err(|e| ApiError::internal(format!("list {uri}: {e}")))?;
    let remaining = list["items"].as_array().map_or(0, Vec::len);
    Ok(Arc::new(json!({ "remaining": remaining })))
}

impl ApiClient for RemoteApi {
    fn list(
        &self,
        spec: &WatchSpec,
    ) -> LocalBoxFuture<'static, Result<(Vec<Value>, Revision), ApiError>> {
        let client = self.client.clone();
        let res = spec.resource;
        let uri = format!("{}?{}", path(res, None, None, None), selector_query(spec));
        async move {
            let text = client
                .request_text(request("GET", &uri, None)?)
                .await
                .map_err(api_error)?;
            let mut list: Value = serde_json::from_str(&text)
                .map_err(|e| ApiError::internal(format!("list {uri}: {e}")))?;
            let revision = revision_of(&list);
            let items = match list["items"].take() {
                Value::Array(items) => items,
                _ => Vec::new(),
            };
            // List items come without kind and apiVersion; stored objects have them.
            let items = items
                .into_iter()
                .map(|mut o| {
                    o["kind"] = json!(res.kind);
                    o["apiVersion"] = json!(res.api_version());
                    o
                })
                .collect();
            Ok((items, revision))
        }
        .boxed_local()
    }

    fn watch(
        &self,
        spec: &WatchSpec,
        after: Revision,
    ) -> LocalBoxFuture<'static, Result<LocalBoxStream<'static, ApiEvent>, ApiError>> {
        let client = self.client.clone();
        let uri = format!(
            "{}?watch=true&allowWatchBookmarks=true&resourceVersion={after}&{}",
            path(spec.resource, None, None, None),
            selector_query(spec)
        );
        async move {
            let body = client
                .request_stream(request("GET", &uri, None)?)
                .await
                .map_err(api_error)?;
            let events = body
                .lines()
                .map_ok(|line| serde_json::from_str::<Value>(&line).ok())
                .take_while(|r| futures::future::ready(r.is_ok()))
                .filter_map(|r| futures::future::ready(r.ok().flatten()))
                // An ERROR event (410 Expired) ends the watch: the host relists.
                .take_while(|e| futures::future::ready(e["type"] != "ERROR"))
                .filter_map(|mut e| {
                    let type_ = match e["type"].as_str() {
                        Some("ADDED") => Some(EventType::Added),
                        Some("MODIFIED") => Some(EventType::Modified),
                        Some("DELETED") => Some(EventType::Deleted),
                        _ => None, // BOOKMARK
                    };
                    let object = e["object"].take();
                    let revision = revision_of(&object);
                    futures::future::ready(type_.map(|t| ApiEvent::new(t, object, revision)))
                });
            Ok(events.boxed_local())
        }
        .boxed_local()
    }

    fn execute(&self, op: ApiOp) -> LocalBoxFuture<'static, Result<Arc<Value>, ApiError>> {
        let client = self.client.clone();
        async move {
            let req = match &op {
                ApiOp::Create {
                    resource,
                    namespace,
                    body,
                } => request(
                    "POST",
                    &path(resource, namespace.as_deref(), None, None),
                    Some(body),
                )?,
                ApiOp::Update {
                    resource,
                    namespace,
                    name,
                    body,
                    part,
                } => {
                    let sub = (*part == crate::apiserver::Part::Status).then_some("status");
                    request(
                        "PUT",
                        &path(resource, namespace.as_deref(), Some(name), sub),
                        Some(body),
                    )?
                }
                ApiOp::Delete {
                    resource,
                    namespace,
                    name,
                    grace_period_seconds,
                    precondition_uid,
                    precondition_resource_version,
                    propagation_policy,
                } => {
                    let mut opts = json!({"apiVersion": "v1", "kind": "DeleteOptions"});
                    if let Some(g) = grace_period_seconds {
                        opts["gracePeriodSeconds"] = json!(g);
                    }
                    if let Some(uid) = precondition_uid {
                        opts["preconditions"]["uid"] = json!(uid);
                    }
                    if let Some(rv) = precondition_resource_version {
                        opts["preconditions"]["resourceVersion"] = json!(rv);
                    }
                    if let Some(p) = propagation_policy {
                        opts["propagationPolicy"] = json!(p);
                    }
                    request(
                        "DELETE",
                        &path(resource, namespace.as_deref(), Some(name), None),
                        Some(&opts),
                    )?
                }
                ApiOp::Get {
                    resource,
                    namespace,
                    name,
                } => request(
                    "GET",
                    &path(resource, namespace.as_deref(), Some(name), None),
                    None,
                )?,
                ApiOp::Bind {
                    namespace,
                    name,
                    node,
                } => {
                    let pods = crate::api::registry::by_plural("", "pods").expect("registered");
                    let binding = json!({"apiVersion": "v1", "kind": "Binding",
                        "metadata": {"name": name, "namespace": namespace},
                        "target": {"kind": "Node", "name": node}});
                    request(
                        "POST",
                        &path(pods, Some(namespace), Some(name), Some("binding")),
                        Some(&binding),
                    )?
                }
                ApiOp::DeleteCollection {
                    resource,
                    namespace,
                } => return delete_collection(&client, resource, namespace).await,
                ApiOp::CreateToken {
                    namespace,
                    name,
                    body,
                } => {
                    let sas =
                        crate::api::registry::by_plural("", "serviceaccounts").expect("registered");
                    request(
                        "POST",
                        &path(sas, Some(namespace), Some(name), Some("token")),
                        Some(body),
                    )?
                }
            };
            let text = client.request_text(req).await.map_err(api_error)?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| ApiError::internal(format!("{}: {e}", op.describe())))?;
            Ok(Arc::new(v))
        }
        .boxed_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::by_plural;

    #[test]
    fn paths_and_queries() {
        let pods = by_plural("", "pods").unwrap();
        let nodes = by_plural("", "nodes").unwrap();
        let leases = by_plural("coordination.k8s.io", "leases").unwrap();
        let cases = [
            (path(pods, None, None, None), "/api/v1/pods"),
            (
                path(pods, Some("a"), Some("p"), Some("status")),
                "/api/v1/namespaces/a/pods/p/status",
            ),
            (
                path(nodes, Some("ignored"), Some("n1"), None),
                "/api/v1/nodes/n1",
            ),
            (
                path(leases, Some("kube-node-lease"), Some("n1"), None),
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(encode("spec.nodeName=node-1"), "spec.nodeName%3Dnode-1");
        assert_eq!(reason("Conflict"), "Conflict");
        assert_eq!(reason("Whatever"), "Unknown");
    }
}
