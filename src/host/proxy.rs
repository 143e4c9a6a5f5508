//! The real kube-proxy of a node agent: the proxy core (`crate::proxy`) as an actor that lists
//! and watches Services, EndpointSlices and its Node, and a data plane that follows the core's
//! rule table, in one of two modes:
//! * **nftables** (the default where the agent may change the firewall: root or
//!   CAP_NET_ADMIN, and `nft` installed): the table `crate::proxy::nftables` plans is applied
//!   with `nft -f`, and the kernel translates every new connection to a backend; established
//!   connections live in conntrack and outlive endpoint changes and the agent itself;
//! * **userspace**: each frontend (ClusterIP:port, node address:NodePort) gets a listener task;
//!   each accepted connection asks the core for a backend and is copied both ways by a task of
//!   its own, so established connections outlive endpoint changes and even their listener. The
//!   copying runs on a multi-threaded runtime of its own (the data plane), the accepting and
//!   picking on the agent's thread with the core.
//!
//! In both modes ClusterIPs are added to `lo` as /32 addresses (without the privilege a clear
//! warning says the ClusterIPs are unreachable) and removed when their Service goes and when
//! the agent stops, which also removes the nftables table. docs/networking.md describes the
//! model.

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
use crate::proxy::nftables::NftTable;
use crate::proxy::{Backend, Frontend, Proxy, ProxyConfig, ServicePortKey};
use crate::time::Time;

/// Each direction's buffer: a 64 KiB read fills most of a loopback segment burst.
const COPY_BUFFER: usize = 64 * 1024;

/// The threads that copy proxied connections (as many as the machine has cores, shared by
/// every proxy in the process). They outlive a stopped agent, so established connections do
/// too (k8s: conntrack keeps flows through a kube-proxy restart).
fn copy_runtime() -> &'static tokio::runtime::Handle {
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

/// What this proxy put on the machine: the ClusterIPs it added to `lo` and its nftables table
/// (shared with the agent, which removes them when it stops).
#[derive(Clone, Debug, Default)]
pub struct ProxyAddresses {
    ips: Arc<Mutex<BTreeSet<String>>>,
    table: Arc<Mutex<Option<String>>>,
}

impl ProxyAddresses {
    /// Removes every address this proxy added, and its nftables table.
    pub fn remove_all(&self) {
        let owned = match self.ips.lock() {
            Ok(mut owned) => std::mem::take(&mut *owned),
            Err(_) => return,
        };
        for ip in owned {
            if let Err(e) = loopback_address("del", &ip) {
                tracing::warn!("kube-proxy: cannot remove ClusterIP {ip} from lo: {e}");
            }
        }
        let table = self.table.lock().ok().and_then(|mut t| t.take());
        if let Some(table) = table {
            match nft(&NftTable::new(&table).teardown()) {
                Ok(()) => tracing::info!("kube-proxy: removed nftables table {table}"),
                Err(e) => tracing::warn!("kube-proxy: cannot remove nftables table {table}: {e}"),
            }
            route_localnet::release();
        }
    }

    pub fn list(&self) -> Vec<String> {
        self.ips
            .lock()
            .map(|o| o.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The nftables table the proxy keeps its rules in (nftables mode).
    pub fn table(&self) -> Option<String> {
        self.table.lock().ok().and_then(|t| t.clone())
    }
}

/// How the proxy carries connections (k8s: kube-proxy --proxy-mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyMode {
    /// nftables where the agent can change the firewall, else userspace (with a warning).
    #[default]
    Auto,
    /// The kernel translates connections (DNAT); the agent only writes rules.
    Nftables,
    /// The agent accepts each connection and copies it to a backend.
    Userspace,
}

/// The data plane a proxy starts with: `ProxyMode` resolved on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataPlane {
    /// Rules in this nftables table.
    Nftables(String),
    Userspace,
}

/// Runs one `nft -f -` transaction (all or nothing).
pub(crate) fn nft(script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `nft`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Tables are `gantry-proxy-<pid>-<n>`: one per proxy, so agents on one machine (tests run
/// several servers at once) keep out of each other's rules.
const TABLE_PREFIX: &str = "gantry-proxy-";

/// Removes the tables of gantry processes that are gone (killed without their Ctrl-C): their
/// rules would still send ClusterIPs to backends that no longer exist.
fn remove_stale_tables() {
    let Ok(out) = std::process::Command::new("nft")
        .args(["list", "tables", "ip"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.trim().strip_prefix("table ip ") else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(TABLE_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            match nft(&NftTable::new(name).teardown()) {
                Ok(()) => {
                    tracing::info!("kube-proxy: removed {name}, left by a gantry that is gone")
                }
                Err(e) => tracing::debug!("kube-proxy: cannot remove stale {name}: {e}"),
            }
        }
    }
}

/// Resolves `mode` on this machine: nftables needs the `nft` tool and the privilege to use it,
/// checked by creating and deleting the table the proxy will use.
pub fn data_plane(mode: ProxyMode) -> Result<DataPlane, String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    if mode == ProxyMode::Userspace {
        return Ok(DataPlane::Userspace);
    }
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let table = format!("{TABLE_PREFIX}{}-{n}", std::process::id());
    let probe = NftTable::new(&table).teardown();
    match nft(&probe) {
        Ok(()) => {
            remove_stale_tables();
            route_localnet::acquire();
            Ok(DataPlane::Nftables(table))
        }
        Err(e) if mode == ProxyMode::Nftables => Err(format!(
            "--proxy-mode nftables: cannot use nftables ({e}); it needs the `nft` tool and root \
             or CAP_NET_ADMIN (or use --proxy-mode userspace)"
        )),
        Err(e) => {
            tracing::warn!(
                "kube-proxy: nftables is not usable here ({e}); Services are proxied in user \
                 space instead, at a cost in throughput and latency (docs/networking.md)"
            );
            Ok(DataPlane::Userspace)
        }
    }
}

/// `net.ipv4.conf.all.route_localnet`: Linux drops packets for 127.0.0.0/8 that arrive on
/// another interface unless it is set, and process pods have loopback addresses, so a Docker
/// pod or another machine reaching them through a ClusterIP or NodePort needs it (k8s:
/// kube-proxy sets it too, with the firewall rule our `filter-input` chain has). The value
/// found is put back when the last proxy of this process stops and no other gantry's table
/// is left.
mod route_localnet {
    use std::sync::Mutex;

    const PATH: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

    /// (proxies holding it, the value found before the first).
    static HELD: Mutex<(usize, Option<String>)> = Mutex::new((0, None));

    pub fn acquire() {
        let Ok(mut held) = HELD.lock() else { return };
        held.0 += 1;
        if held.0 > 1 {
            return;
        }
        let before = std::fs::read_to_string(PATH)
            .map(|v| v.trim().to_string())
            .ok();
        if before.as_deref() == Some("1") {
            held.1 = None;
            return;
        }
        match std::fs::write(PATH, "1") {
            Ok(()) => {
                tracing::info!("kube-proxy: set net.ipv4.conf.all.route_localnet=1 (loopback pod addresses behind Services)");
                held.1 = before;
            }
            Err(e) => tracing::warn!(
                "kube-proxy: cannot set net.ipv4.conf.all.route_localnet ({e}): Docker pods and \
                 other machines cannot reach process pods through Services"
            ),
        }
    }

    pub fn release() {
        let Ok(mut held) = HELD.lock() else { return };
        held.0 = held.0.saturating_sub(1);
        if held.0 > 0 {
            return;
        }
        let Some(before) = held.1.take() else { return };
        let others = std::process::Command::new("nft")
            .args(["list", "tables", "ip"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(super::TABLE_PREFIX))
            .unwrap_or(false);
        if others {
            // Another gantry on the machine still proxies: it needs the setting.
            return;
        }
        if std::fs::write(PATH, &before).is_ok() {
            tracing::info!("kube-proxy: put net.ipv4.conf.all.route_localnet back to {before}");
        }
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
    /// nftables mode: the table the core's rules are written to (no listeners then).
    nft: Option<RefCell<NftTable>>,
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
                .ips
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
        if let Some(table) = &self.nft {
            if !self.sync_nftables(table) {
                self.retry_later();
            }
            return;
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
        if !self.unbound.borrow().is_empty() {
            self.retry_later();
        }
    }

    /// Reconciles again in `BIND_RETRY` (once, however often it is asked for meanwhile).
    fn retry_later(self: &Rc<Self>) {
        if !self.retry_armed.replace(true) {
            let shared = self.clone();
            actix::spawn(async move {
                tokio::time::sleep(BIND_RETRY).await;
                shared.retry_armed.set(false);
                shared.reconcile_if(true);
            });
        }
    }

    /// Writes the core's rule table to the kernel; false when that failed (and was warned
    /// about). A failed incremental sync is retried at once from nothing, as upstream falls
    /// back to a full sync.
    fn sync_nftables(&self, table: &RefCell<NftTable>) -> bool {
        let core = self.core.borrow();
        let mut table = table.borrow_mut();
        let mut error = String::new();
        for _ in 0..2 {
            let plan = table.plan(core.rules(), core.frontends());
            match nft(&plan.script) {
                Ok(()) => {
                    tracing::debug!(
                        "kube-proxy: nftables table {} synced: {} service ports",
                        table.name(),
                        core.rules().len()
                    );
                    table.applied(plan.state);
                    return true;
                }
                Err(e) => {
                    tracing::debug!("kube-proxy: nft failed: {e}\n{}", plan.script);
                    table.failed();
                    error = e;
                }
            }
        }
        tracing::warn!(
            "kube-proxy: cannot write the nftables table {} ({error}); retrying every {}s",
            table.name(),
            BIND_RETRY.as_secs()
        );
        false
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
                if let Ok(mut o) = self.owned.ips.lock() {
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
                    copy_runtime().spawn(async move {
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

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::new("system:kube-proxy", &[crate::auth::user::ALL_AUTHENTICATED])
    }

    fn watches(&self) -> Vec<WatchSpec> {
        self.shared.core.borrow().watches()
    }

    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        self.shared.core.borrow_mut().step(now, input, rng, out);
        self.shared.reconcile();
    }
}

/// Starts a kube-proxy on the current actix arbiter (a node agent's), with `data_plane`'s
/// resolved mode. The addresses and the table it adds are removed by
/// `ProxyAddresses::remove_all`.
pub fn start(
    config: ProxyConfig,
    api: Rc<dyn ApiClient>,
    seed: u64,
    owned: ProxyAddresses,
    data_plane: DataPlane,
) {
    let core = Proxy::new(config);
    let name = core.name().to_string();
    let nft = match data_plane {
        DataPlane::Nftables(table) => {
            tracing::info!("kube-proxy: nftables mode, table {table}");
            if let Ok(mut t) = owned.table.lock() {
                *t = Some(table.clone());
            }
            Some(RefCell::new(NftTable::new(&table)))
        }
        DataPlane::Userspace => {
            tracing::info!("kube-proxy: userspace mode");
            None
        }
    };
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
        nft,
    });
    let hosted = Hosted { name, shared };
    ComponentActor::new(Box::new(hosted), api, Rc::new(NoRuntime), seed).start();
}
