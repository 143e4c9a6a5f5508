//! A `gantry server` (the release binary, data in a temporary directory) for the bench
//! binaries, and one keep-alive HTTP/1.1 connection to it: over TLS as the admin (the
//! kubeconfig's CA and client certificate), or plain for an `--insecure-http` server.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// The admin's TLS client for each server address started here.
fn clients() -> &'static Mutex<HashMap<String, Arc<rustls::ClientConfig>>> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<rustls::ClientConfig>>>> = OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

fn base64_decode(text: &str) -> Vec<u8> {
    gantry::auth::serviceaccount::jwt::b64std_decode(text.trim()).expect("base64 data")
}

/// The admin's TLS client from a kubeconfig's embedded data; `None` without a CA.
fn tls_client(kubeconfig: &str) -> Option<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let field = |key: &str| {
        kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
            .map(|v| base64_decode(v.trim()))
    };
    let (ca, cert, key) = (
        field("certificate-authority-data")?,
        field("client-certificate-data")?,
        field("client-key-data")?,
    );
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.ok()?).ok()?;
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(&key).ok()?)
        .ok()?;
    Some(Arc::new(config))
}

/// From now on the bench's connections to `server` act as user `bench`, known by a client
/// certificate of the cluster's client CA and bound to the ClusterRole `cluster-admin` by a
/// ClusterRoleBinding, so that every request is judged by RBAC (the admin is in
/// `system:masters`, which skips it, as upstream).
pub async fn act_as_rbac_user(server: &Server) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let binding = br#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding",
        "metadata":{"name":"bench-admin"},
        "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cluster-admin"},
        "subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"bench"}]}"#;
    let path = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
    let (code, body) = Conn::open(&server.address)
        .await
        .call("POST", path, binding)
        .await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let tls = server.dir.path().join("tls");
    let read = |f: &str| std::fs::read_to_string(tls.join(f)).expect(f);
    let client_ca = gantry::host::pki::CertKey {
        cert_pem: read("client-ca.crt"),
        key_pem: read("client-ca.key"),
    };
    let cert = gantry::host::pki::issue::leaf(
        &client_ca,
        "bench",
        None,
        &gantry::host::pki::Names::from_strings([]),
        gantry::host::pki::issue::Usage::Client,
        1,
        time::OffsetDateTime::now_utc(),
    )
    .expect("a client certificate for the bench user");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(read("server-ca.crt").as_bytes()) {
        roots.add(c.expect("CA")).expect("CA");
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate");
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            chain,
            PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key"),
        )
        .expect("client certificate");
    clients()
        .lock()
        .unwrap()
        .insert(server.address.clone(), Arc::new(config));
}

/// A connection's byte stream, TLS or plain.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

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
            let address = url
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .to_string();
            if let Some(tls) = tls_client(&text) {
                clients().lock().unwrap().insert(address.clone(), tls);
            }
            break address;
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
    pub stream: BufReader<Box<dyn Io>>,
    address: String,
}

impl Conn {
    pub async fn open(address: &str) -> Conn {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let tls = clients().lock().unwrap().get(address).cloned();
        let stream: Box<dyn Io> = match tls {
            Some(config) => {
                let host = address.rsplit_once(':').map(|(h, _)| h).unwrap_or(address);
                let name =
                    rustls::pki_types::ServerName::try_from(host.to_string()).expect("server name");
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, stream)
                    .await
                    .expect("TLS handshake");
                Box::new(tls)
            }
            None => Box::new(stream),
        };
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
        // One write (a TLS record) for the head and body.
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        s.write_all(&request).await.expect("write");
        s.flush().await.expect("flush");
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
