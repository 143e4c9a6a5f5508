//! The node agent's HTTP endpoint (k8s: the kubelet server on :10250): container logs for the
//! apiserver's pods/log, and a health check. It listens on the node's address; like the
//! kubelet's read-only port it has no authentication (docs/decisions.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use futures::StreamExt;

use super::node::{log_options, PodIndex};
use crate::kubelet::runtime::ContainerRuntime;

struct Shared {
    runtime: Arc<dyn ContainerRuntime>,
    pods: PodIndex,
}

async fn container_logs(
    path: web::Path<(String, String, String)>,
    query: web::Query<BTreeMap<String, String>>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (namespace, pod, container) = path.into_inner();
    let uid = shared
        .pods
        .lock()
        .ok()
        .and_then(|p| p.get(&(namespace.clone(), pod.clone())).cloned());
    let Some(uid) = uid else {
        return HttpResponse::NotFound().body(format!(
            "pod {namespace}/{pod} has no containers on this node"
        ));
    };
    let opts = match log_options(&query) {
        Ok(o) => o,
        Err(e) => return HttpResponse::BadRequest().body(e),
    };
    match shared.runtime.logs(uid, container.clone(), opts).await {
        Ok(stream) => HttpResponse::Ok()
            .content_type("text/plain")
            .streaming(stream.map(Ok::<_, actix_web::Error>)),
        // k8s: the kubelet's wording names the container and pod.
        Err(e) => HttpResponse::BadRequest().body(e.replace("in pod", &format!("in pod {pod:?}"))),
    }
}

/// Starts the endpoint on `ip:port` (port 0: a free one) on the current actix system; returns
/// the port and a handle that stops it.
pub fn start(
    ip: &str,
    port: u16,
    runtime: Arc<dyn ContainerRuntime>,
    pods: PodIndex,
) -> Result<(u16, actix_web::dev::ServerHandle), String> {
    let shared = web::Data::new(Shared { runtime, pods });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .route(
                "/containerLogs/{namespace}/{pod}/{container}",
                web::get().to(container_logs),
            )
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().body("ok") }),
            )
    })
    .workers(1)
    .disable_signals()
    // Followed logs end at shutdown rather than holding it up.
    .shutdown_timeout(1)
    .bind((ip, port))
    .map_err(|e| format!("cannot listen on {ip}:{port} for the kubelet endpoint: {e}"))?;
    let port = server.addrs().first().map_or(port, |a| a.port());
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok((port, handle))
}
