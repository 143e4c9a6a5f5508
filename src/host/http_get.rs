//! A small HTTP/1.1 GET client for what the hosts fetch from inside the machine: httpGet probes
//! (k8s: success is a status in [200, 400)) and the apiserver's proxy to a node agent's
//! containerLogs. Plain HTTP only; the body streams (Content-Length, chunked, or to close).

use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: BoxStream<'static, Result<Bytes, String>>,
}

impl Response {
    /// The whole body (up to `limit` bytes).
    pub async fn text(self, limit: usize) -> String {
        let mut out = Vec::new();
        let mut body = self.body;
        while let Some(Ok(chunk)) = body.next().await {
            out.extend_from_slice(&chunk);
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// `GET path` from `host:port`; `timeout` bounds connecting and the response head.
pub async fn get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<Response, String> {
    let head = async {
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut stream = TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("malformed HTTP response: {:?}", line.trim()))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Ok::<_, String>((status, headers, reader))
    };
    let (status, headers, reader) = tokio::time::timeout(timeout, head)
        .await
        .map_err(|_| format!("timeout after {}s", timeout.as_secs_f64()))??;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        chunked(reader)
    } else {
        let limit = header("content-length").and_then(|v| v.parse::<u64>().ok());
        to_end(reader, limit)
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn to_end(
    reader: BufReader<TcpStream>,
    limit: Option<u64>,
) -> BoxStream<'static, Result<Bytes, String>> {
    futures::stream::unfold(
        (reader, limit.unwrap_or(u64::MAX)),
        |(mut r, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; 16 * 1024];
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            match r.read(&mut buf[..want]).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), (r, left - n as u64)))
                }
                Err(e) => Some((Err(e.to_string()), (r, 0))),
            }
        },
    )
    .boxed()
}

fn chunked(reader: BufReader<TcpStream>) -> BoxStream<'static, Result<Bytes, String>> {
    futures::stream::unfold(Some(reader), |r| async move {
        let mut r = r?;
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let size = usize::from_str_radix(line.trim().split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return None;
        }
        let mut buf = vec![0u8; size + 2];
        if let Err(e) = r.read_exact(&mut buf).await {
            return Some((Err(e.to_string()), None));
        }
        buf.truncate(size);
        Some((Ok(Bytes::from(buf)), Some(r)))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(response: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(response.as_bytes()).await.unwrap();
        });
        port
    }

    #[tokio::test]
    async fn reads_each_body_framing() {
        let cases = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA", 200, "hello"),
            (
                "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                404,
                "abcde",
            ),
            ("HTTP/1.0 500 Oops\r\n\r\nto the end", 500, "to the end"),
        ];
        for (raw, status, body) in cases {
            let port = serve_once(raw).await;
            let r = get("127.0.0.1", port, "/", &[], Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(r.status, status);
            assert_eq!(r.text(1 << 20).await, body);
        }
    }

    #[tokio::test]
    async fn refused_connections_are_errors() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = get("127.0.0.1", port, "/", &[], Duration::from_secs(5))
            .await
            .err()
            .expect("refused");
        assert!(e.contains("dial tcp"), "{e}");
    }
}
