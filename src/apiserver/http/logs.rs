//! pods/log (k8s: pkg/registry/core/pod/rest/log.go): the apiserver finds the pod's node and
//! streams the container's log from that node agent's /containerLogs endpoint.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::HttpResponse;
use futures::StreamExt;
use serde_json::Value;

use crate::api::registry;
use crate::api::status::ApiError;
use crate::apiserver::ApiServer;
use crate::host::http_get;
use crate::store::backend::Backend;

/// The options pods/log passes on to the node (the rest it checks itself).
const PASSED_ON: &[&str] = &[
    "follow",
    "previous",
    "timestamps",
    "tailLines",
    "sinceSeconds",
    "limitBytes",
];

/// The container a pods/log or pods/exec request names (k8s: the apiserver's wording), the only
/// one when it names none.
pub(super) fn container_of(
    pod: &Value,
    name: &str,
    wanted: Option<&str>,
) -> Result<String, ApiError> {
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    match wanted.filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].to_string()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// The node a pod is bound to.
pub(super) fn node_of<'a>(pod: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))
}

/// Where a node's agent serves its kubelet endpoint: its InternalIP and kubelet port.
pub(super) async fn kubelet_endpoint(
    api: &ApiServer<Backend>,
    node: &str,
) -> Result<(String, u16), ApiError> {
    let nodes = registry::by_plural("", "nodes").expect("registered");
    let node_obj = api.get(nodes, None, node).await?;
    let address = node_obj["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .ok_or_else(|| ApiError::bad_request(format!("node {node} has no InternalIP address")))?
        .to_string();
    let port = node_obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(10250);
    Ok((address, port))
}

pub async fn serve(
    api: &ApiServer<Backend>,
    namespace: Option<&str>,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<HttpResponse, ApiError> {
    let pods = registry::by_plural("", "pods").expect("registered");
    let pod = api.get(pods, namespace, name).await?;
    let container = container_of(&pod, name, query.get("container").map(String::as_str))?;
    let node = node_of(&pod, name)?;
    // k8s: a container that has not started has no log yet.
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()));
    let never_ran = status.is_none_or(|s| {
        s["state"]["waiting"].is_object() && s["lastState"]["terminated"].is_null()
    });
    if never_ran {
        let reason = status
            .and_then(|s| s["state"]["waiting"]["reason"].as_str())
            .unwrap_or("ContainerCreating");
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let (address, port) = kubelet_endpoint(api, node).await?;
    let mut path = format!(
        "/containerLogs/{}/{name}/{container}",
        namespace.unwrap_or("default")
    );
    let passed: Vec<String> = PASSED_ON
        .iter()
        .filter_map(|k| query.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    if !passed.is_empty() {
        path = format!("{path}?{}", passed.join("&"));
    }
    let unreachable = |e: String| {
        ApiError::internal(format!(
            "Get \"http://{address}:{port}{path}\": {e}: the node agent of {node} is not reachable"
        ))
    };
    let response = http_get::get(&address, port, &path, &[], Duration::from_secs(10))
        .await
        .map_err(&unreachable)?;
    if response.status != 200 {
        // The node's answer (a container not started, no previous run) as a BadRequest Status.
        return Err(ApiError::bad_request(response.text(64 * 1024).await));
    }
    Ok(HttpResponse::Ok().content_type("text/plain").streaming(
        response
            .body
            .map(|r| r.map_err(actix_web::error::ErrorBadGateway)),
    ))
}
