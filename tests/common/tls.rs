//! TLS to a test server as its admin: the CA and the client certificate of the kubeconfig the
//! server wrote, registered per address so that `request_to` and `connect` speak TLS to it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

fn clients() -> &'static Mutex<HashMap<String, Arc<ClientConfig>>> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<ClientConfig>>>> = OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// A kubeconfig's `key: value` (the first one).
fn field<'a>(kubeconfig: &'a str, key: &str) -> Option<&'a str> {
    kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// Standard base64 (the kubeconfig's `*-data` fields).
pub fn base64_decode(text: &str) -> Vec<u8> {
    gantry::auth::serviceaccount::jwt::b64std_decode(text.trim()).expect("base64 data")
}

#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts `ca_pem` and presents `identity` (certificate and key PEM), if any.
pub fn client_config(ca_pem: &[u8], identity: Option<(&[u8], &[u8])>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(ca.expect("CA PEM")).expect("CA");
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert)
                    .map(|c| c.expect("certificate PEM"))
                    .collect(),
                PrivateKeyDer::from_pem_slice(key).expect("key PEM"),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// The admin's TLS client from a kubeconfig's embedded data; `None` for a plain-HTTP one.
pub fn from_kubeconfig(text: &str) -> Option<Arc<ClientConfig>> {
    let ca = base64_decode(field(text, "certificate-authority-data")?);
    let cert = field(text, "client-certificate-data").map(base64_decode);
    let key = field(text, "client-key-data").map(base64_decode);
    let identity = cert.as_deref().zip(key.as_deref());
    Some(client_config(&ca, identity))
}

/// Requests to `address` go over TLS with `config` from now on.
pub fn register(address: &str, config: Arc<ClientConfig>) {
    clients()
        .lock()
        .unwrap()
        .insert(address.to_string(), config);
}

pub fn registered(address: &str) -> Option<Arc<ClientConfig>> {
    clients().lock().unwrap().get(address).cloned()
}

/// A connection to a test server: TLS if its address was registered, else plain.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.tcp().set_read_timeout(t)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => match s.read(buf) {
                // The server closed without close_notify (it may, at the end of a watch).
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Connects to `address` with `config` (TLS, the handshake done) or plainly.
pub fn connect_with(address: &str, config: Option<Arc<ClientConfig>>) -> std::io::Result<Stream> {
    let tcp = TcpStream::connect(address)?;
    let Some(config) = config else {
        return Ok(Stream::Plain(tcp));
    };
    let host = address.rsplit_once(':').map(|(h, _)| h).unwrap_or(address);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    // The handshake now, so that a refused certificate fails the connect.
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(Stream::Tls(Box::new(stream)))
}

/// Connects to a test server as its admin (TLS when it serves TLS).
pub fn connect(address: &str) -> std::io::Result<Stream> {
    connect_with(address, registered(address))
}
