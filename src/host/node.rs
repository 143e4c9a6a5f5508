//! A node agent: the kubelet core as an actor, its runtime operations carried out by a
//! container runtime (process or docker), its probes run against the pod's IP, its kube-proxy
//! (proxy.rs) forwarding Service traffic, and a small
//! kubelet HTTP endpoint serving container logs to the apiserver's pods/log (k8s: the kubelet's
//! :10250 /containerLogs). `gantry server` runs one for its own machine; `gantry agent` runs one
//! that joins a server over HTTP.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use futures::future::LocalBoxFuture;
use futures::stream::LocalBoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::component::{ComponentActor, RuntimeHost};
use super::env::{container_env, PodContext};
use super::{http_get, volumes, ApiClient};
use crate::component::{Input, RuntimeOp, RuntimeResult, WatchSpec};
use crate::kubelet::runtime::{ContainerConfig, ContainerRuntime, ExecOutcome, PodRef, StartError};
use crate::kubelet::{Kubelet, NodeConfig};

/// How often the agent removes what is left of pods no longer bound to it (k8s: the kubelet's
/// housekeeping, every 2 s; the pods themselves are removed through the core at once).
const HOUSEKEEPING: Duration = Duration::from_secs(10);

/// Pods this agent has started containers for, by namespace/name (the logs endpoint's index).
pub type PodIndex = Arc<Mutex<BTreeMap<(String, String), String>>>;

/// What the node agent's runtime effects need.
pub struct NodeRuntime {
    runtime: Arc<dyn ContainerRuntime>,
    api: Rc<dyn ApiClient>,
    root: PathBuf,
    host_ip: String,
    allocatable: BTreeMap<String, String>,
    pods: PodIndex,
    /// Each running container's pod IP and ports, for probes.
    containers: Rc<std::cell::RefCell<BTreeMap<String, (String, Container)>>>,
}

fn pod_ref(pod: &Pod) -> PodRef {
    PodRef {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        cluster_dns: pod.spec.as_ref().is_some_and(|s| {
            crate::kubelet::runtime::cluster_first_dns(
                s.dns_policy.as_deref(),
                s.host_network.unwrap_or(false),
            )
        }),
    }
}

impl NodeRuntime {
    fn start(
        &self,
        pod: Arc<Pod>,
        container: Container,
        service_env: Vec<(String, String)>,
    ) -> LocalBoxFuture<'static, RuntimeResult> {
        let runtime = self.runtime.clone();
        let api = self.api.clone();
        let root = self.root.clone();
        let host_ip = self.host_ip.clone();
        let allocatable = self.allocatable.clone();
        let containers = self.containers.clone();
        let r = pod_ref(&pod);
        if let Ok(mut index) = self.pods.lock() {
            index.insert((r.namespace.clone(), r.name.clone()), r.uid.clone());
        }
        async move {
            let prepared = async {
                let ip = runtime.sandbox(r.clone()).await?;
                let ctx = PodContext {
                    pod: &pod,
                    pod_ip: &ip,
                    host_ip: &host_ip,
                };
                let env = container_env(&api, &ctx, &container, &allocatable, &service_env).await?;
                let mounts = volumes::prepare(&api, &root, &pod, &container).await?;
                // k8s: $(VAR) in command and args expands from the container's env.
                let vars: BTreeMap<String, String> = env.iter().cloned().collect();
                let mut spec = container.clone();
                for list in [&mut spec.command, &mut spec.args].into_iter().flatten() {
                    for s in list.iter_mut() {
                        *s = super::env::expand(s, &vars);
                    }
                }
                Ok::<_, StartError>(ContainerConfig {
                    pod: r,
                    spec,
                    env,
                    mounts,
                })
            };
            match prepared.await {
                Err(e) => e.into_result(),
                Ok(config) => {
                    let result = runtime.start(config).await;
                    if let RuntimeResult::Started {
                        container_id,
                        pod_ip,
                    } = &result
                    {
                        containers.borrow_mut().insert(
                            container_id.clone(),
                            (pod_ip.clone().unwrap_or_default(), container),
                        );
                    }
                    result
                }
            }
        }
        .boxed_local()
    }

    fn probe(&self, container_id: String, probe: Probe) -> LocalBoxFuture<'static, RuntimeResult> {
        let runtime = self.runtime.clone();
        let target = self.containers.borrow().get(&container_id).cloned();
        async move {
            let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
            let failed = |message: String| RuntimeResult::ProbeFailed { message };
            let Some((ip, container)) = target else {
                return failed(format!(
                    "container {container_id} is not known to this agent"
                ));
            };
            if let Some(exec) = &probe.exec {
                let command = exec.command.clone().unwrap_or_default();
                return match runtime.exec(container_id, command, timeout).await {
                    ExecOutcome::Exited { code: 0, .. } => RuntimeResult::ProbeSucceeded,
                    ExecOutcome::Exited { code, output } => {
                        failed(format!("command exited with {code}: {}", output.trim()))
                    }
                    ExecOutcome::TimedOut => {
                        failed(format!("command timed out after {}s", timeout.as_secs()))
                    }
                    ExecOutcome::Failed(e) => failed(e),
                };
            }
            if let Some(h) = &probe.http_get {
                if h.scheme.as_deref().unwrap_or("HTTP") != "HTTP" {
                    return failed("httpGet probes over HTTPS are not supported yet".into());
                }
                let port = match resolve_port(&h.port, &container) {
                    Ok(p) => p,
                    Err(e) => return failed(e),
                };
                let host = h.host.clone().filter(|h| !h.is_empty()).unwrap_or(ip);
                let headers: Vec<(String, String)> = h
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|x| (x.name.clone(), x.value.clone()))
                    .collect();
                let path = h.path.clone().unwrap_or_else(|| "/".into());
                return match http_get::get(&host, port, &path, &headers, timeout).await {
                    // k8s: 200 <= status < 400 succeeds.
                    Ok(r) if (200..400).contains(&r.status) => RuntimeResult::ProbeSucceeded,
                    Ok(r) => failed(format!("HTTP probe failed with statuscode: {}", r.status)),
                    Err(e) => failed(format!("Get \"http://{host}:{port}{path}\": {e}")),
                };
            }
            if let Some(t) = &probe.tcp_socket {
                let port = match resolve_port(&t.port, &container) {
                    Ok(p) => p,
                    Err(e) => return failed(e),
                };
                let host = t.host.clone().filter(|h| !h.is_empty()).unwrap_or(ip);
                let addr = format!("{host}:{port}");
                return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr))
                    .await
                {
                    Ok(Ok(_)) => RuntimeResult::ProbeSucceeded,
                    Ok(Err(e)) => failed(format!("dial tcp {addr}: {e}")),
                    Err(_) => failed(format!("dial tcp {addr}: i/o timeout")),
                };
            }
            failed("only exec, httpGet and tcpSocket probes are supported".into())
        }
        .boxed_local()
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| {
                format!(
                    "couldn't find port {name:?} in container {:?}",
                    container.name
                )
            }),
    }
}

impl RuntimeHost for NodeRuntime {
    fn run(&self, op: RuntimeOp) -> LocalBoxFuture<'static, RuntimeResult> {
        match op {
            RuntimeOp::Start {
                pod,
                container,
                service_env,
            } => self.start(pod, *container, service_env),
            RuntimeOp::Stop {
                container_id,
                grace_seconds,
            } => {
                let stop = self.runtime.stop(
                    container_id,
                    Duration::from_secs(grace_seconds.max(0) as u64),
                );
                async move {
                    RuntimeResult::Stopped {
                        exit_code: stop.await,
                    }
                }
                .boxed_local()
            }
            RuntimeOp::Probe {
                container_id,
                probe,
                ..
            } => self.probe(container_id, *probe),
            RuntimeOp::RemovePod { pod_uid } => {
                let remove = self.runtime.remove_pod(pod_uid.clone());
                let dir = volumes::pod_dir(&self.root, &pod_uid);
                if let Ok(mut index) = self.pods.lock() {
                    index.retain(|_, uid| *uid != pod_uid);
                }
                async move {
                    remove.await;
                    let _ = std::fs::remove_dir_all(dir);
                    RuntimeResult::Stopped { exit_code: 0 }
                }
                .boxed_local()
            }
        }
    }

    fn exits(&self) -> Option<LocalBoxStream<'static, Input>> {
        let containers = self.containers.clone();
        let exits = self.runtime.exits()?;
        Some(
            exits
                .map(move |e| {
                    containers.borrow_mut().remove(&e.container_id);
                    Input::ContainerExited {
                        container_id: e.container_id,
                        exit_code: e.exit_code,
                    }
                })
                .boxed_local(),
        )
    }
}

/// Removes what the runtime still holds of pods that are no longer bound to this node (deleted
/// while the agent was down, or force-deleted).
async fn housekeeping(runtime: Arc<dyn ContainerRuntime>, api: Rc<dyn ApiClient>, node: String) {
    let pods = crate::api::registry::by_plural("", "pods").expect("registered");
    let spec = WatchSpec {
        resource: pods,
        field_selector: Some(format!("spec.nodeName={node}")),
    };
    loop {
        tokio::time::sleep(HOUSEKEEPING).await;
        // The runtime's pods first: a pod started after the list below was in the API then.
        let held = runtime.pods().await;
        let Ok((items, _)) = api.list(&spec).await else {
            continue;
        };
        let bound: std::collections::BTreeSet<&str> = items
            .iter()
            .filter_map(|p| p["metadata"]["uid"].as_str())
            .collect();
        for uid in held.iter().filter(|u| !bound.contains(u.as_str())) {
            tracing::info!(
                "kubelet/{node}: removing the containers of pod {uid}, no longer bound here"
            );
            runtime.remove_pod(uid.clone()).await;
        }
    }
}

/// What a node agent is started with.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub name: String,
    /// The agent's own state (runtime state, volumes, logs).
    pub dir: PathBuf,
    pub runtime: RuntimeKind,
    /// The address the node reports (InternalIP) and serves container logs on.
    pub node_ip: String,
    /// 0 picks a free port.
    pub kubelet_port: u16,
    /// The first two octets of the pods' addresses (process runtime): `127.N.x.y`.
    pub pod_range: [u8; 2],
    pub labels: BTreeMap<String, String>,
    /// k8s: nodeLeaseDurationSeconds.
    pub lease_duration_seconds: i64,
    /// The process runtime's shim: `gantry-shim`, or the `gantry` binary itself.
    pub shim: PathBuf,
    /// The cluster DNS server's IP handed to containers whose pod uses it (k8s: kubelet
    /// --cluster-dns), where the runtime can (Docker; the process runtime shares the host's
    /// resolv.conf).
    pub cluster_dns: Option<String>,
    /// How its kube-proxy carries connections.
    pub proxy_mode: super::proxy::ProxyMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    Process,
    Docker,
}

/// A running node agent (its kubelet and logs endpoint run until it is stopped).
pub struct NodeAgent {
    pub kubelet_port: u16,
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The ClusterIPs its kube-proxy added to `lo`, and its nftables table.
    pub proxy_addresses: super::proxy::ProxyAddresses,
    arbiter: actix::Arbiter,
    endpoint: actix_web::dev::ServerHandle,
}

impl NodeAgent {
    /// Stops the kubelet and its endpoint. Containers keep running, as they do when a kubelet
    /// stops; the next agent on this node's directory adopts them. The ClusterIPs its
    /// kube-proxy added are removed.
    pub async fn stop(self) {
        self.arbiter.stop();
        self.endpoint.stop(true).await;
        self.proxy_addresses.remove_all();
    }
}

async fn open_runtime(opts: &NodeOptions) -> Result<Arc<dyn ContainerRuntime>, String> {
    use crate::kubelet::runtime::process::{Cgroups, ProcessRuntime};
    Ok(match opts.runtime {
        RuntimeKind::Process => {
            let cgroups = Cgroups::detect(&opts.name);
            match &cgroups {
                Cgroups::None(why) => tracing::warn!(
                    "process runtime: container cpu/memory limits are not enforced: {why}"
                ),
                _ => tracing::info!("process runtime: limits enforced through {cgroups:?}"),
            }
            let rt = ProcessRuntime::open(
                &opts.dir.join("process"),
                opts.shim.clone(),
                opts.pod_range,
                cgroups,
            )
            .map_err(|e| format!("process runtime at {}: {e}", opts.dir.display()))?;
            Arc::new(rt)
        }
        RuntimeKind::Docker => {
            let rt = crate::kubelet::runtime::docker::DockerRuntime::connect_with(
                &opts.name,
                opts.cluster_dns.clone(),
            )
            .await
            .map_err(|e| format!("docker runtime: {e}"))?;
            Arc::new(rt)
        }
    })
}

/// Starts a node agent: its runtime, its logs endpoint and its kubelet on an arbiter of its
/// own. `api` makes the agent's API client on that arbiter's thread.
pub async fn start(
    opts: NodeOptions,
    api: impl FnOnce() -> Rc<dyn ApiClient> + Send + 'static,
    seed: u64,
) -> Result<NodeAgent, String> {
    std::fs::create_dir_all(&opts.dir)
        .map_err(|e| format!("cannot create {}: {e}", opts.dir.display()))?;
    let runtime = open_runtime(&opts).await?;
    let pods: PodIndex = Arc::default();
    let (kubelet_port, endpoint) = super::kubelet_server::start(
        &opts.node_ip,
        opts.kubelet_port,
        runtime.clone(),
        pods.clone(),
    )?;
    let machine = super::machine::Machine::detect(runtime.version().await);
    let mut config = NodeConfig::new(&opts.name);
    config.cpu = machine.cpu.clone();
    config.memory = machine.memory.clone();
    config.address = opts.node_ip.clone();
    config.kubelet_port = kubelet_port;
    config.info = machine.info.clone();
    config.labels = opts.labels.clone();
    config.lease_duration_seconds = opts.lease_duration_seconds;
    let allocatable: BTreeMap<String, String> = [
        ("cpu".to_string(), config.cpu.clone()),
        ("memory".to_string(), config.memory.clone()),
    ]
    .into();
    tracing::info!(
        "node {}: {} CPUs, {} memory, runtime {}, address {}, logs on port {kubelet_port}",
        opts.name,
        config.cpu,
        config.memory,
        machine.info.container_runtime_version,
        opts.node_ip
    );
    let arbiter = actix::Arbiter::new();
    let rt = runtime.clone();
    let proxy_addresses = super::proxy::ProxyAddresses::default();
    let data_plane = super::proxy::data_plane(opts.proxy_mode)?;
    let proxy_config = crate::proxy::ProxyConfig {
        node_name: Some(opts.name.clone()),
        node_ip: Some(opts.node_ip.clone()),
    };
    let owned = proxy_addresses.clone();
    let started = arbiter.spawn_fn(move || {
        let api = api();
        let node = NodeRuntime {
            runtime: rt.clone(),
            api: api.clone(),
            root: opts.dir.clone(),
            host_ip: opts.node_ip.clone(),
            allocatable,
            pods,
            containers: Rc::default(),
        };
        actix::spawn(housekeeping(rt, api.clone(), opts.name.clone()));
        // The node's kube-proxy shares the kubelet's thread and API client.
        super::proxy::start(
            proxy_config,
            api.clone(),
            seed ^ 0x6b75_6265,
            owned,
            data_plane,
        );
        let kubelet = Kubelet::new(config);
        ComponentActor::new(Box::new(kubelet), api, Rc::new(node), seed).start();
    });
    if !started {
        return Err("the node agent's arbiter is not running".into());
    }
    Ok(NodeAgent {
        kubelet_port,
        runtime,
        proxy_addresses,
        arbiter,
        endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_by_number_or_name() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 8080}],
        }))
        .unwrap();
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert!(resolve_port(&IntOrString::String("grpc".into()), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
    }
}
