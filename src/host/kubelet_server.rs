//! The node agent's HTTP endpoint (k8s: the kubelet server on :10250): container logs for the
//! apiserver's pods/log, and a health check. It listens on the node's address; like the
//! kubelet's read-only port it has no authentication (docs/decisions.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use futures::StreamExt;

use super::node::PodIndex;
use crate::kubelet::runtime::{ContainerRuntime, LogOptions};

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
        // The runtime's message names the container and pod, in the kubelet's wording.
        Err(e) => HttpResponse::BadRequest().body(e),
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

/// Reads the pods/log query parameters (k8s: PodLogOptions).
pub fn log_options(query: &BTreeMap<String, String>) -> Result<LogOptions, String> {
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true" || v == "1");
    let int = |k: &str| -> Result<Option<i64>, String> {
        query
            .get(k)
            .map(|v| v.parse::<i64>().map_err(|_| format!("invalid {k}: {v:?}")))
            .transpose()
    };
    let opts = LogOptions {
        follow: flag("follow"),
        previous: flag("previous"),
        timestamps: flag("timestamps"),
        tail_lines: int("tailLines")?,
        since_seconds: int("sinceSeconds")?,
        limit_bytes: int("limitBytes")?,
    };
    for (k, v) in [
        ("tailLines", opts.tail_lines),
        ("sinceSeconds", opts.since_seconds),
        ("limitBytes", opts.limit_bytes),
    ] {
        if v.is_some_and(|v| v < 0 || (v == 0 && k != "tailLines")) {
            return Err(format!("{k}: Invalid value: must be greater than 0"));
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_options_are_checked() {
        let q = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let o = log_options(&q(&[("follow", "true"), ("tailLines", "5")])).unwrap();
        assert!(o.follow && !o.previous);
        assert_eq!(o.tail_lines, Some(5));
        assert!(log_options(&q(&[("tailLines", "x")])).is_err());
        assert!(log_options(&q(&[("limitBytes", "0")])).is_err());
        assert!(log_options(&q(&[("sinceSeconds", "-1")])).is_err());
        assert_eq!(
            log_options(&q(&[("tailLines", "0")])).unwrap().tail_lines,
            Some(0)
        );
    }
}
