//! The node agent's HTTP endpoint (k8s: the kubelet server on :10250): container logs for the
//! apiserver's pods/log, commands run in containers for its pods/exec (over WebSocket, the
//! apiserver relaying the client's connection), and a health check. It listens on the node's address; like the
//! kubelet's read-only port it has no authentication (docs/decisions.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::node::PodIndex;
use super::websocket::{self, Incoming};
use crate::kubelet::runtime::{ContainerRuntime, ExecEvent, ExecRequest, LogOptions, TerminalSize};

struct Shared {
    runtime: Arc<dyn ContainerRuntime>,
    pods: PodIndex,
}

/// The uid of a pod this node runs.
fn pod_uid(shared: &Shared, namespace: &str, pod: &str) -> Option<String> {
    shared
        .pods
        .lock()
        .ok()
        .and_then(|p| p.get(&(namespace.to_string(), pod.to_string())).cloned())
}

/// The answer to a request about a pod this node does not run.
fn not_on_this_node(namespace: &str, pod: &str) -> HttpResponse {
    HttpResponse::NotFound().body(format!(
        "pod {namespace}/{pod} has no containers on this node"
    ))
}

async fn container_logs(
    path: web::Path<(String, String, String)>,
    query: web::Query<BTreeMap<String, String>>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (namespace, pod, container) = path.into_inner();
    let Some(uid) = pod_uid(&shared, &namespace, &pod) else {
        return not_on_this_node(&namespace, &pod);
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

/// `kubectl exec`'s options (k8s: PodExecOptions), from the query the apiserver passes on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Reads PodExecOptions from a query string (`command` repeats, one per argument).
pub fn exec_options(query: &str) -> Result<ExecOptions, String> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| format!("invalid query string: {e}"))?
        .into_inner();
    let flag = |k: &str| {
        pairs
            .iter()
            .any(|(key, v)| key == k && (v == "true" || v == "1"))
    };
    let opts = ExecOptions {
        command: pairs
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        stdin: flag("stdin"),
        stdout: flag("stdout"),
        stderr: flag("stderr"),
        tty: flag("tty"),
    };
    // k8s: pkg/apis/core/validation ValidatePodExecOptions and the kubelet's stream checks.
    if opts.command.is_empty() {
        return Err("you must specify at least one command for the container".into());
    }
    if !(opts.stdin || opts.stdout || opts.stderr) {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    if opts.tty && opts.stderr {
        return Err("tty and stderr cannot both be true".into());
    }
    Ok(opts)
}

/// The Status on the error channel that ends an exec (k8s: the kubelet's remotecommand server):
/// Success, NonZeroExitCode with the code as an ExitCode cause (kubectl exits with it), or an
/// InternalError when the command could not run.
pub fn exec_status(event: &ExecEvent) -> Value {
    match event {
        ExecEvent::Exited(0) => json!({"metadata": {}, "status": "Success"}),
        ExecEvent::Exited(code) => json!({
            "metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        ExecEvent::Failed(_) | ExecEvent::Stdout(_) | ExecEvent::Stderr(_) => {
            let e = match event {
                ExecEvent::Failed(e) => e.as_str(),
                _ => "the command's output ended without an exit",
            };
            let message = format!("error executing command in container: {e}");
            json!({
                "metadata": {}, "status": "Failure",
                "message": format!("Internal error occurred: {message}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": message}]},
                "code": 500,
            })
        }
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `/exec/{namespace}/{pod}/{container}`: upgrades to WebSocket, runs the command and streams
/// it (k8s: the kubelet's /exec handler and its remotecommand WebSocket server).
async fn exec(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (namespace, pod, container) = path.into_inner();
    let opts = match exec_options(req.query_string()) {
        Ok(o) => o,
        Err(e) => return HttpResponse::BadRequest().body(e),
    };
    let upgrade = header(&req, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let (Some(key), true) = (header(&req, "sec-websocket-key"), upgrade) else {
        return HttpResponse::BadRequest().body(
            "Upgrade request required: exec is served over WebSocket (v5.channel.k8s.io, \
             v4.channel.k8s.io), not SPDY",
        );
    };
    let offered = req
        .headers()
        .get_all("sec-websocket-protocol")
        .filter_map(|v| v.to_str().ok());
    let Some(protocol) = websocket::choose_protocol(offered) else {
        return HttpResponse::BadRequest().body(format!(
            "none of the requested WebSocket protocols is served; this server speaks {} and {}",
            websocket::PROTOCOL_V5,
            websocket::PROTOCOL_V4
        ));
    };
    let Some(uid) = pod_uid(&shared, &namespace, &pod) else {
        return not_on_this_node(&namespace, &pod);
    };
    let request = ExecRequest {
        pod_uid: uid,
        container,
        command: opts.command.clone(),
        stdin: opts.stdin,
        tty: opts.tty,
    };
    let session = match shared.runtime.exec_stream(request).await {
        Ok(s) => s,
        Err(e) => return HttpResponse::BadRequest().body(e),
    };
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(16);
    let (gone_tx, gone_rx) = oneshot::channel::<()>();
    actix_web::rt::spawn(from_client(
        payload,
        (session.stdin, session.resize),
        out_tx.downgrade(),
        gone_tx,
    ));
    actix_web::rt::spawn(to_client(session.events, opts, out_tx, gone_rx));
    let body = futures::stream::unfold(out_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|frame| (Ok::<_, actix_web::Error>(frame), rx))
    });
    HttpResponse::SwitchingProtocols()
        .upgrade("websocket")
        .insert_header(("sec-websocket-accept", websocket::accept_key(key)))
        .insert_header(("sec-websocket-protocol", protocol))
        .streaming(body)
}

/// The client's messages: stdin to the command (closed at v5's channel close), a terminal's
/// sizes to the runtime, pings answered; at the client's close or disconnect, `gone` tells the
/// sender to stop.
async fn from_client(
    mut payload: web::Payload,
    (mut stdin, resize): (
        Option<mpsc::Sender<Bytes>>,
        Option<mpsc::Sender<TerminalSize>>,
    ),
    out: mpsc::WeakSender<Bytes>,
    gone: oneshot::Sender<()>,
) {
    let mut decoder = websocket::Decoder::default();
    'read: while let Some(Ok(chunk)) = payload.next().await {
        decoder.push(&chunk);
        loop {
            let message = match decoder.message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("exec: {e}");
                    break 'read;
                }
            };
            match message {
                Incoming::Data {
                    channel: websocket::STDIN,
                    data,
                } => {
                    if let Some(tx) = &stdin {
                        if tx.send(Bytes::from(data)).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Incoming::Data {
                    channel: websocket::RESIZE,
                    data,
                } => {
                    let size = serde_json::from_slice::<TerminalSize>(&data);
                    if let (Some(tx), Ok(size)) = (&resize, size) {
                        let _ = tx.send(size).await;
                    }
                }
                Incoming::Data { .. } => {}
                Incoming::CloseChannel(websocket::STDIN) => stdin = None,
                Incoming::CloseChannel(_) => {}
                Incoming::Ping(data) => {
                    if let Some(tx) = out.upgrade() {
                        let _ = tx.send(Bytes::from(websocket::pong(&data))).await;
                    }
                }
                Incoming::Close => {
                    if let Some(tx) = out.upgrade() {
                        let _ = tx.send(Bytes::from(websocket::close(1000))).await;
                    }
                    break 'read;
                }
            }
        }
    }
    let _ = gone.send(());
}

/// The command's output on its channels, then the Status on the error channel and a close.
async fn to_client(
    mut events: futures::stream::BoxStream<'static, ExecEvent>,
    opts: ExecOptions,
    out: mpsc::Sender<Bytes>,
    mut gone: oneshot::Receiver<()>,
) {
    loop {
        let event = tokio::select! {
            e = events.next() => e.unwrap_or(ExecEvent::Failed("the command's output ended without an exit".into())),
            // The client left: dropping the events stops the command.
            _ = &mut gone => return,
        };
        let frame = match &event {
            ExecEvent::Stdout(data) if opts.stdout => {
                websocket::channel_message(websocket::STDOUT, data)
            }
            ExecEvent::Stderr(data) if opts.stderr => {
                websocket::channel_message(websocket::STDERR, data)
            }
            ExecEvent::Stdout(_) | ExecEvent::Stderr(_) => continue,
            ExecEvent::Exited(_) | ExecEvent::Failed(_) => {
                let status = exec_status(&event).to_string();
                let _ = out
                    .send(Bytes::from(websocket::channel_message(
                        websocket::ERROR,
                        status.as_bytes(),
                    )))
                    .await;
                // k8s: the close ends the client's streams (EOF), the Status is then read.
                let _ = out.send(Bytes::from(websocket::close(1000))).await;
                return;
            }
        };
        if out.send(Bytes::from(frame)).await.is_err() {
            return;
        }
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
            .route("/exec/{namespace}/{pod}/{container}", web::route().to(exec))
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
    fn exec_options_are_read_and_checked() {
        let o = exec_options(
            "command=sh&command=-c&command=echo%20a%26b&stdin=true&stdout=true&stderr=true",
        )
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo a&b"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let cases = [
            ("stdout=true", "at least one command"),
            ("command=ls", "at least 1 of stdin, stdout, stderr"),
            (
                "command=ls&stdout=true&stderr=true&tty=true",
                "tty and stderr",
            ),
        ];
        for (query, want) in cases {
            let err = exec_options(query).unwrap_err();
            assert!(err.contains(want), "{query}: {err}");
        }
    }

    #[test]
    fn exec_statuses_are_the_kubelets() {
        assert_eq!(exec_status(&ExecEvent::Exited(0))["status"], "Success");
        let failed = exec_status(&ExecEvent::Exited(3));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        // k8s: client-go reads the code from the ExitCode cause (a StatusCause's `reason`).
        assert_eq!(
            failed["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        let internal = exec_status(&ExecEvent::Failed("no such file".into()));
        assert_eq!(internal["reason"], "InternalError");
        assert_eq!(internal["code"], 500);
        assert!(internal["message"]
            .as_str()
            .unwrap()
            .contains("no such file"));
    }

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
