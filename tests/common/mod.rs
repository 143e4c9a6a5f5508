//! Shared test fixtures. A test that needs etcd starts its own server here; when the `etcd`
//! binary is missing the test fails loudly (scripts/setup installs Debian's etcd-server).

#![allow(dead_code)]

pub mod docker_image;
pub mod tls;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gantry::store::etcd::{EtcdConfig, EtcdStore};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .unwrap()
        .port()
}

/// A private etcd on loopback ports with its data in a temporary directory; killed on drop.
pub struct EtcdServer {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl EtcdServer {
    pub fn binary() -> PathBuf {
        std::env::var_os("GANTRY_ETCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("etcd"))
    }

    pub async fn start() -> EtcdServer {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(Self::binary())
            .args(["--name", "gantry-test"])
            .arg("--data-dir")
            .arg(dir.path().join("etcd"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("gantry-test={peer_url}")])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "\n\n*** this test needs etcd and could not start `{}`: {e}\n*** install it with \
                     scripts/setup (Debian's etcd-server) or set GANTRY_ETCD_BIN ***\n",
                    Self::binary().display()
                )
            });
        let server = EtcdServer {
            child,
            endpoint,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let config = EtcdConfig {
                connect_timeout: Duration::from_millis(500),
                ..EtcdConfig::default()
            };
            if EtcdStore::connect(&server.endpoint, config).await.is_ok() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "etcd at {} did not come up in 30 s",
                server.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn store(&self) -> EtcdStore {
        EtcdStore::connect(&self.endpoint, EtcdConfig::default())
            .await
            .expect("connect to the test etcd")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `gantry server` (the binary under test) on a free loopback port with its data in a
/// temporary directory; killed on drop.
pub struct GantryServer {
    child: Child,
    pub url: String,
    pub address: String,
    pub dir: tempfile::TempDir,
    keep_containers: bool,
}

impl GantryServer {
    pub fn start() -> GantryServer {
        Self::start_with(&[])
    }

    /// A server without a node of its own (the API and controllers only).
    pub fn start_with(extra: &[&str]) -> GantryServer {
        let mut args = vec!["--no-node"];
        args.extend_from_slice(extra);
        Self::launch(tempfile::tempdir().expect("temporary directory"), &args)
    }

    /// A server with its own node agent, named `node`, whose pods are real processes.
    pub fn start_with_node(node: &str, extra: &[&str]) -> GantryServer {
        let mut args = vec!["--node-name", node, "--kubelet-port", "0"];
        args.extend_from_slice(extra);
        Self::launch(tempfile::tempdir().expect("temporary directory"), &args)
    }

    /// A server on an existing data directory (a restart).
    pub fn start_in(dir: tempfile::TempDir) -> GantryServer {
        Self::launch(dir, &["--no-node"])
    }

    /// A server on an existing data directory with these arguments.
    pub fn start_in_with(dir: tempfile::TempDir, args: &[&str]) -> GantryServer {
        Self::launch(dir, args)
    }

    /// The same, with its node agent again (a restart of the whole machine's agent).
    pub fn start_in_with_node(dir: tempfile::TempDir, node: &str, extra: &[&str]) -> GantryServer {
        let mut args = vec!["--node-name", node, "--kubelet-port", "0"];
        args.extend_from_slice(extra);
        Self::launch(dir, &args)
    }

    /// A server on a given loopback port (a restart that clients reach at the same URL).
    pub fn start_at(dir: tempfile::TempDir, port: u16) -> GantryServer {
        Self::launch(
            dir,
            &["--no-node", "--listen", &format!("127.0.0.1:{port}")],
        )
    }

    /// Interrupts the server as Ctrl-C does; its exit status once it stopped (within `wait`).
    pub fn interrupt(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        interrupt(&mut self.child, wait)
    }

    /// Kills the server and hands over its data directory (for a restart); its node's
    /// containers keep running, as a kubelet's do.
    pub fn stop_keeping_data(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.keep_containers = true;
        std::mem::replace(
            &mut self.dir,
            tempfile::tempdir().expect("temporary directory"),
        )
    }

    fn launch(dir: tempfile::TempDir, extra: &[&str]) -> GantryServer {
        let _ = std::fs::remove_file(dir.path().join("kubeconfig"));
        let listen = match extra.iter().position(|a| *a == "--listen") {
            Some(i) => extra[i + 1].to_string(),
            None => "127.0.0.1:0".to_string(),
        };
        let extra: Vec<&str> = match extra.iter().position(|a| *a == "--listen") {
            Some(i) => [&extra[..i], &extra[i + 2..]].concat(),
            None => extra.to_vec(),
        };
        // Its log, kept across restarts, for a test that fails to show.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("server.log"))
            .expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["-v", "4", "server", "--listen", &listen, "--data-dir"])
            .arg(dir.path())
            .args(&extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start gantry server");
        let kubeconfig = dir.path().join("kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = loop {
            let text = std::fs::read_to_string(&kubeconfig).unwrap_or_default();
            if let Some(url) = text.lines().find_map(|l| l.trim().strip_prefix("server: ")) {
                break url.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "gantry server did not write its kubeconfig"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let address = url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_string();
        // The server speaks TLS unless it was started with --insecure-http.
        if let Some(config) = tls::from_kubeconfig(&std::fs::read_to_string(&kubeconfig).unwrap()) {
            tls::register(&address, config);
        }
        let server = GantryServer {
            child,
            url,
            address,
            dir,
            keep_containers: false,
        };
        while server.request("GET", "/healthz", &[], b"").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "gantry server did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// What the server logged (at -v=4), across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs the real `kubectl` against this server: (exit code, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .kubectl_command(args)
            .output()
            .unwrap_or_else(|e| panic!("kubectl must be on PATH for this test: {e}"));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `kubectl` that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.kubectl(args);
        assert_eq!(code, 0, "kubectl {args:?} failed: {err}{out}");
        out
    }

    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args);
        c
    }

    /// One raw HTTP/1.1 request: (status code, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        request_to(&self.address, method, path, headers, body)
    }

    /// A request whose answer is JSON.
    pub fn json(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let headers: Vec<(&str, &str)> = if content_type.is_empty() {
            Vec::new()
        } else {
            vec![("Content-Type", content_type)]
        };
        let (code, body) = self.request(method, path, &headers, body);
        let value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        (code, value)
    }
}

/// One raw HTTP/1.1 request to the server at `address`: (status code, body).
pub fn request_to(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    request_with(
        address,
        tls::registered(address),
        method,
        path,
        headers,
        body,
    )
}

/// One raw HTTP/1.1 request over `tls` (a client of one's own, or none for plain HTTP).
pub fn request_with(
    address: &str,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let Ok(mut s) = tls::connect_with(address, tls) else {
        return (0, Vec::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        address,
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body))
        .is_err()
    {
        return (0, Vec::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    (code, body)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = body.get(start + size + 2..).unwrap_or_default();
    }
}

impl Drop for GantryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_containers {
            kill_containers(self.dir.path());
        }
    }
}

/// SIGINT (Ctrl-C) to `child`; its exit status once it stopped (within `wait`).
fn interrupt(child: &mut Child, wait: Duration) -> Option<std::process::ExitStatus> {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The process groups of the containers node agents ran under `dir`, still running.
pub fn container_pids(dir: &std::path::Path) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(nodes) = std::fs::read_dir(dir.join("nodes")) else {
        return pids;
    };
    for node in nodes.flatten() {
        let Ok(containers) = std::fs::read_dir(node.path().join("process/containers")) else {
            continue;
        };
        for c in containers.flatten() {
            let running = !c.path().join("exit").exists();
            let pid = std::fs::read_to_string(c.path().join("pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            // SAFETY: signal 0 only checks that the process exists.
            if let Some(pid) = pid.filter(|p| running && unsafe { libc::kill(*p, 0) } == 0) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Kills what node agents left running under `dir` (tests end; agents leave containers running
/// by design).
pub fn kill_containers(dir: &std::path::Path) {
    for pid in container_pids(dir) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// A `gantry agent` joining `server` as node `name`; killed (with its containers) on drop.
pub struct GantryAgent {
    child: Child,
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl GantryAgent {
    pub fn start(server: &GantryServer, name: &str, extra: &[&str]) -> GantryAgent {
        let dir = tempfile::tempdir().expect("temporary directory");
        let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["agent", "--kubeconfig"])
            .arg(server.kubeconfig())
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--node-name", name, "--kubelet-port", "0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("agent.log")).expect("log file"),
            ))
            .spawn()
            .expect("start gantry agent");
        GantryAgent {
            child,
            name: name.into(),
            dir,
        }
    }

    /// Ctrl-C: the agent's exit status once it stopped (within `wait`).
    pub fn interrupt(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        interrupt(&mut self.child, wait)
    }

    /// `kill -9`: the agent dies at once; its containers stay (as a crashed kubelet's do).
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

impl Drop for GantryAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_containers(self.dir.path());
    }
}

/// Polls `check` until it gives a value or `timeout` passes (then panics with `what`).
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
