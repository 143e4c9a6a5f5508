//! A `gantry server` (the release binary, data in a temporary directory) for the bench
//! binaries, and one keep-alive HTTP/1.1 connection to it.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Server {
    pub child: Child,
    pub address: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `gantry server` with `extra` flags and waits for its kubeconfig.
pub fn start_server(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("temporary directory");
    let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["-v", "0", "server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gantry server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        let text = std::fs::read_to_string(dir.path().join("kubeconfig")).unwrap_or_default();
        if let Some(url) = text.lines().find_map(|l| l.trim().strip_prefix("server: ")) {
            break url.trim_start_matches("http://").to_string();
        }
        assert!(Instant::now() < deadline, "gantry server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    Server {
        child,
        address,
        dir,
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    pub stream: BufReader<TcpStream>,
    address: String,
}

impl Conn {
    pub async fn open(address: &str) -> Conn {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream: BufReader::new(stream),
            address: address.to_string(),
        }
    }

    /// Sends a request and reads the whole answer: (status, body).
    pub async fn call(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.send(method, path, body).await;
        let (code, headers) = self.head().await;
        let len = headers
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut out = vec![0; len];
        self.stream.read_exact(&mut out).await.expect("body");
        (code, out)
    }

    /// Sends a request without reading the answer (a watch reads it as it streams).
    pub async fn send(&mut self, method: &str, path: &str, body: &[u8]) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.address,
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await.expect("write");
        s.write_all(body).await.expect("write");
    }

    pub async fn head(&mut self) -> (u16, HashMap<String, String>) {
        let mut status = String::new();
        self.stream
            .read_line(&mut status)
            .await
            .expect("status line");
        let code = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).await.expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                return (code, headers);
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
}
