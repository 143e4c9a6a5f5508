//! pods/exec (k8s: pkg/registry/core/pod/rest/subresources.go ExecREST): the apiserver checks
//! the pod, the container and the options, then relays the client's upgraded connection to the
//! node agent's /exec endpoint byte for byte (k8s: the UpgradeAwareHandler's proxy to the
//! kubelet). The node agent speaks the WebSocket channel protocol (src/host/kubelet_server.rs);
//! SPDY is not served (docs/decisions.md).

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::logs::{container_of, kubelet_endpoint, node_of};
use crate::api::registry;
use crate::api::status::ApiError;
use crate::apiserver::ApiServer;
use crate::host::kubelet_server::exec_options;
use crate::store::backend::Backend;

/// The handshake headers passed on to the node (the accept key answers the client's key).
const PASSED_ON: &[&str] = &[
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
];
/// The node's answer passed back.
const PASSED_BACK: &[&str] = &["sec-websocket-accept", "sec-websocket-protocol"];

pub async fn serve(
    req: &HttpRequest,
    payload: web::Payload,
    api: &ApiServer<Backend>,
    namespace: Option<&str>,
    name: &str,
) -> Result<HttpResponse, ApiError> {
    let pods = registry::by_plural("", "pods").expect("registered");
    let pod = api.get(pods, namespace, name).await?;
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    let wanted = query
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str());
    let container = container_of(&pod, name, wanted)?;
    exec_options(req.query_string()).map_err(ApiError::bad_request)?;
    let node = node_of(&pod, name)?;
    // k8s: the phase kubectl checks too; a finished pod's containers are gone.
    if let Some(phase @ ("Succeeded" | "Failed")) = pod["status"]["phase"].as_str() {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let websocket = req
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !websocket {
        // kubectl before 1.30 (or with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false) asks for SPDY.
        return Err(ApiError::bad_request(
            "Upgrade request required: gantry serves pods/exec over WebSocket \
             (v5.channel.k8s.io, v4.channel.k8s.io), not SPDY",
        ));
    }
    let (address, port) = kubelet_endpoint(api, node).await?;
    let path = format!(
        "/exec/{}/{name}/{container}?{}",
        namespace.unwrap_or("default"),
        req.query_string()
    );
    let unreachable = |e: String| {
        ApiError::internal(format!(
            "error dialing backend: {e}: the node agent of {node} at {address}:{port} is not reachable"
        ))
    };
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    );
    for h in PASSED_ON {
        for v in req.headers().get_all(*h).filter_map(|v| v.to_str().ok()) {
            head.push_str(&format!("{h}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    let connect = async {
        let mut stream = TcpStream::connect((address.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let answer = read_head(&mut stream).await?;
        Ok::<_, String>((stream, answer))
    };
    let (stream, (status, headers, rest)) = tokio::time::timeout(Duration::from_secs(30), connect)
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(unreachable)?;
    if status != 101 {
        // The node's refusal (no such container running) as a BadRequest Status.
        let text = body(stream, &headers, rest).await;
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: {}",
            text.trim()
        )));
    }
    let (from_node, mut to_node) = stream.into_split();
    actix_web::rt::spawn(async move {
        let mut payload = payload;
        while let Some(Ok(chunk)) = payload.next().await {
            if to_node.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to_node.shutdown().await;
    });
    let first = futures::stream::iter((!rest.is_empty()).then(|| Ok(Bytes::from(rest))));
    let relayed = futures::stream::unfold(from_node, |mut from_node| async move {
        let mut buf = vec![0u8; 32 * 1024];
        match from_node.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, actix_web::Error>(Bytes::from(buf)), from_node))
            }
        }
    });
    let mut response = HttpResponse::SwitchingProtocols();
    response.upgrade("websocket");
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| PASSED_BACK.contains(&k.as_str()))
    {
        response.insert_header((k.as_str(), v.as_str()));
    }
    Ok(response.streaming(first.chain(relayed)))
}

type Head = (u16, Vec<(String, String)>, Vec<u8>);

/// The node's response head: status, headers (lowercase names), and what came after it.
async fn read_head(stream: &mut TcpStream) -> Result<Head, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Err("response head too large".into());
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "malformed HTTP response".to_string())?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, buf[end + 4..].to_vec()))
}

/// A refusal's body (Content-Length or to the close, at most 64 KiB).
async fn body(mut stream: TcpStream, headers: &[(String, String)], mut got: Vec<u8>) -> String {
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(64 * 1024)
        .min(64 * 1024);
    let mut chunk = [0u8; 4096];
    let read = async {
        while got.len() < length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    got.truncate(length);
    String::from_utf8_lossy(&got).into_owned()
}
