//! The real kube-proxy of a node agent: the proxy core (`crate::proxy`) as an actor that lists
//! and watches Services, EndpointSlices and its Node, and a TCP data plane that follows the
//! core's rule table. Each frontend (ClusterIP:port, node address:NodePort) gets a listener
//! task; each accepted connection asks the core for a backend and is copied both ways by a
//! task of its own, so established connections outlive endpoint changes and even their
//! listener. The copying runs on a multi-threaded runtime of its own (the data plane), the
//! accepting and picking on the agent's thread with the core. ClusterIPs are added to `lo` as /32 addresses (the agent needs CAP_NET_ADMIN;
//! without it a clear warning says the ClusterIPs are unreachable) and removed when their
//! Service goes and when the agent stops. docs/networking.md describes the model.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use actix::Actor;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::{TcpListener, TcpStream};

use super::component::{ComponentActor, NoRuntime};
use super::{wall_clock, ApiClient};
use crate::component::{Component, Effect, Input, WatchSpec};
use crate::proxy::{Backend, Frontend, Proxy, ProxyConfig, ServicePortKey};
use crate::time::Time;

/// Each direction's buffer: a 64 KiB read fills most of a loopback segment burst.
const COPY_BUFFER: usize = 64 * 1024;

/// The threads that copy proxied connections (as many as the machine has cores, shared by
/// every proxy in the process). They outlive a stopped agent, so established connections do
/// too (k8s: conntrack keeps flows through a kube-proxy restart).
fn data_plane() -> &'static tokio::runtime::Handle {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .thread_name("kube-proxy-data")
            .enable_io()
            .build()
            .expect("the kube-proxy data plane runtime")
    })
    .handle()
}

/// The ClusterIPs this proxy added to `lo` (shared with the agent, which removes them when it
/// stops).
#[derive(Clone, Debug, Default)]
pub struct ProxyAddresses(Arc<Mutex<BTreeSet<String>>>);

impl ProxyAddresses {
    /// Removes every address this proxy added.
    pub fn remove_all(&self) {
        let owned = match self.0.lock() {
            Ok(mut owned) => std::mem::take(&mut *owned),
            Err(_) => return,
        };
        for ip in owned {
            if let Err(e) = loopback_address("del", &ip) {
                tracing::warn!("kube-proxy: cannot remove ClusterIP {ip} from lo: {e}");
            }
        }
    }

    pub fn list(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|o| o.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// `ip -4 addr <add|del> <ip>/32 dev lo`.
pub(crate) fn loopback_address(verb: &str, ip: &str) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(["-4", "addr", verb, &format!("{ip}/32"), "dev", "lo"])
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Whether this machine already answers on `ip` (loopback, or one of its addresses: binding
/// a port there works).
pub(crate) fn is_local(ip: &str) -> bool {
    match ip.parse::<IpAddr>() {
        Ok(a) if a.is_loopback() => true,
        Ok(a) => std::net::TcpListener::bind((a, 0)).is_ok(),
        Err(_) => false,
    }
}

struct Shared {
    core: RefCell<Proxy>,
    rng: RefCell<ChaCha8Rng>,
    listeners: RefCell<BTreeMap<Frontend, tokio::task::JoinHandle<()>>>,
    /// The core version the listeners follow.
    synced: Cell<u64>,
    /// ClusterIPs present on this machine (added by us or found there).
    present: RefCell<BTreeSet<String>>,
    owned: ProxyAddresses,
    warned: Cell<bool>,
    /// Frontends that could not be bound (warned about once each), retried every
    /// `BIND_RETRY`.
    unbound: RefCell<BTreeSet<Frontend>>,
    retry_armed: Cell<bool>,
}

/// How often a frontend that could not be bound (its port taken, say by another agent on the
/// machine) is tried again.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

impl Shared {
    /// The backend for a connection from `client` that arrived at `frontend`.
    fn pick(
        &self,
        frontend: &Frontend,
        client: &str,
        now: Time,
    ) -> Option<(ServicePortKey, Backend)> {
        let mut rng = self.rng.borrow_mut();
        self.core
            .borrow_mut()
            .pick_at(frontend, client, now, &mut *rng)
    }

    /// Brings the listeners and the loopback addresses in line with the core's table.
    fn reconcile(self: &Rc<Self>) {
        self.reconcile_if(false)
    }

    fn reconcile_if(self: &Rc<Self>, retrying: bool) {
        let (frontends, cluster_ips) = {
            let core = self.core.borrow();
            if core.version() == self.synced.get() && !retrying {
                return;
            }
            self.synced.set(core.version());
            let cluster_ips: BTreeSet<String> = core
                .rules()
                .values()
                .map(|r| r.cluster_ip.clone())
                .collect();
            (core.frontends().clone(), cluster_ips)
        };
        // Listeners of frontends that went; their established connections carry on.
        self.listeners.borrow_mut().retain(|f, task| {
            let keep = frontends.contains_key(f);
            if !keep {
                task.abort();
                tracing::info!("kube-proxy: stopped listening on {f}");
            }
            keep
        });
        // ClusterIPs no Service has any more.
        let gone: Vec<String> = self
            .present
            .borrow()
            .iter()
            .filter(|ip| !cluster_ips.contains(*ip))
            .cloned()
            .collect();
        for ip in gone {
            self.present.borrow_mut().remove(&ip);
            let ours = self
                .owned
                .0
                .lock()
                .map(|mut o| o.remove(&ip))
                .unwrap_or(false);
            if ours {
                match loopback_address("del", &ip) {
                    Ok(()) => tracing::info!("kube-proxy: removed ClusterIP {ip} from lo"),
                    Err(e) => {
                        tracing::warn!("kube-proxy: cannot remove ClusterIP {ip} from lo: {e}")
                    }
                }
            }
        }
        for ip in &cluster_ips {
            if !self.present.borrow().contains(ip) {
                self.ensure_address(ip);
            }
        }
        for (f, key) in &frontends {
            if self.listeners.borrow().contains_key(f) {
                continue;
            }
            let Ok(ip) = f.ip.parse::<IpAddr>() else {
                continue;
            };
            let bound = std::net::TcpListener::bind(SocketAddr::new(ip, f.port)).and_then(|l| {
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            });
            match bound {
                Ok(listener) => {
                    tracing::info!("kube-proxy: {key} listening on {f}");
                    self.unbound.borrow_mut().remove(f);
                    let task = actix::spawn(accept_loop(self.clone(), f.clone(), listener));
                    self.listeners.borrow_mut().insert(f.clone(), task);
                }
                Err(e) => {
                    if self.unbound.borrow_mut().insert(f.clone()) {
                        tracing::warn!(
                            "kube-proxy: {key}: cannot listen on {f}: {e} (retrying every {}s)",
                            BIND_RETRY.as_secs()
                        );
                    } else {
                        tracing::debug!("kube-proxy: {key}: cannot listen on {f}: {e}");
                    }
                }
            }
        }
        self.unbound
            .borrow_mut()
            .retain(|f| frontends.contains_key(f));
        if !self.unbound.borrow().is_empty() && !self.retry_armed.replace(true) {
            let shared = self.clone();
            actix::spawn(async move {
                tokio::time::sleep(BIND_RETRY).await;
                shared.retry_armed.set(false);
                shared.reconcile_if(true);
            });
        }
    }

    /// Makes `ip` an address of this machine: a /32 on `lo`.
    fn ensure_address(&self, ip: &str) {
        if is_local(ip) {
            self.present.borrow_mut().insert(ip.to_string());
            return;
        }
        match loopback_address("add", ip) {
            Ok(()) => {
                tracing::info!("kube-proxy: added ClusterIP {ip}/32 to lo");
                if let Ok(mut o) = self.owned.0.lock() {
                    o.insert(ip.to_string());
                }
                self.present.borrow_mut().insert(ip.to_string());
            }
            // Another agent on this machine has it (or a previous run left it).
            Err(e) if e.contains("File exists") => {
                self.present.borrow_mut().insert(ip.to_string());
            }
            Err(e) => {
                if !self.warned.replace(true) {
                    tracing::warn!(
                        "kube-proxy: cannot add ClusterIP {ip} to lo ({e}); without the \
                         privilege to add addresses (root or CAP_NET_ADMIN) Services are \
                         reachable only on their NodePorts and ClusterIPs that already route \
                         here (docs/networking.md)"
                    );
                } else {
                    tracing::debug!("kube-proxy: cannot add ClusterIP {ip} to lo: {e}");
                }
            }
        }
    }
}

async fn accept_loop(shared: Rc<Shared>, frontend: Frontend, listener: TcpListener) {
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off a moment rather than spin.
                tracing::warn!("kube-proxy: accept on {frontend}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        match shared.pick(&frontend, &peer.ip().to_string(), wall_clock()) {
            Some((key, backend)) => match conn.into_std() {
                // The copying runs on the data plane's threads.
                Ok(conn) => {
                    data_plane().spawn(async move {
                        match TcpStream::from_std(conn) {
                            Ok(conn) => forward(conn, key, backend).await,
                            Err(e) => tracing::debug!("kube-proxy: {key}: {e}"),
                        }
                    });
                }
                Err(e) => tracing::debug!("kube-proxy: {key}: {e}"),
            },
            None => {
                // k8s: a Service without endpoints REJECTs: the client sees a refusal (a
                // reset here), not a hang.
                tracing::debug!("kube-proxy: {frontend} has no endpoints: refusing {peer}");
                let _ = conn.set_zero_linger();
            }
        }
    }
}

/// Copies one connection to `backend` and back until either side closes. k8s: a backend that
/// cannot be reached fails the connection; it is not retried elsewhere.
async fn forward(mut client: TcpStream, key: ServicePortKey, backend: Backend) {
    let _ = client.set_nodelay(true);
    match TcpStream::connect((backend.ip.as_str(), backend.port)).await {
        Ok(mut upstream) => {
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional_with_sizes(
                &mut client,
                &mut upstream,
                COPY_BUFFER,
                COPY_BUFFER,
            )
            .await;
        }
        Err(e) => {
            tracing::debug!("kube-proxy: {key}: cannot reach {backend}: {e}");
            let _ = client.set_zero_linger();
        }
    }
}

/// The core as a component whose every step is followed by a reconcile of the data plane.
struct Hosted {
    name: String,
    shared: Rc<Shared>,
}

impl Component for Hosted {
    fn name(&self) -> &str {
        &self.name
    }

    fn watches(&self) -> Vec<WatchSpec> {
        self.shared.core.borrow().watches()
    }

    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        self.shared.core.borrow_mut().step(now, input, rng, out);
        self.shared.reconcile();
    }
}

/// Starts a kube-proxy on the current actix arbiter (a node agent's). The addresses it adds
/// are removed by `ProxyAddresses::remove_all`.
pub fn start(config: ProxyConfig, api: Rc<dyn ApiClient>, seed: u64, owned: ProxyAddresses) {
    let core = Proxy::new(config);
    let name = core.name().to_string();
    let shared = Rc::new(Shared {
        core: RefCell::new(core),
        rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)),
        listeners: RefCell::default(),
        synced: Cell::new(0),
        present: RefCell::default(),
        owned,
        warned: Cell::new(false),
        unbound: RefCell::default(),
        retry_armed: Cell::new(false),
    });
    let hosted = Hosted { name, shared };
    ComponentActor::new(Box::new(hosted), api, Rc::new(NoRuntime), seed).start();
}
