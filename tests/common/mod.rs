//! Shared test fixtures. A test that needs etcd starts its own server here; when the `etcd`
//! binary is missing the test fails loudly (scripts/setup installs Debian's etcd-server).

#![allow(dead_code)]

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
