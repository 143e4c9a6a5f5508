//! The kubelet's pod logic, as a sans-IO state machine: it registers its Node, renews its
//! Lease, and runs the pods bound to it through container-runtime effects: starts, restarts
//! under the restart policy and CrashLoopBackOff, probes, graceful termination, and the status
//! it reports. k8s: pkg/kubelet (reference §3.1, §4)

pub mod backoff;
pub mod envvars;
pub mod probe;
#[cfg(feature = "server")]
pub mod runtime;
pub mod scripted;
pub mod status;
pub mod token;

use crate::event_recorder::{event, reference, NORMAL, WARNING};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use rand::{Rng, RngCore};
use serde::Deserialize;
use serde_json::{json, Value};

use self::backoff::Backoff;
use self::probe::{Outcome, ProbeWorker};
use self::status::Seen;
use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::{format_time, Part};
use crate::component::{ApiOp, Component, Effect, Input, RuntimeOp, RuntimeResult, WatchSpec};
use crate::controllers::cache::{Cache, Change};
use crate::time::Time;

/// k8s: nodeLeaseDurationSeconds 40, renewed every 0.25 × 40 s
pub const LEASE_DURATION_SECONDS: i64 = 40;
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// k8s: nodeStatusReportFrequency 5 min (reported sooner on change)
pub const NODE_STATUS_REPORT: Duration = Duration::from_secs(300);
/// k8s: minimumGracePeriodInSeconds for kills
pub const MIN_KILL_GRACE: i64 = 2;

const LEASE_TIMER: u64 = 0;
const TICK_TIMER: u64 = 1;
const NODE_STATUS_TIMER: u64 = 2;
const STATUS_SYNC_TIMER: u64 = 3;
/// k8s: the status manager reconciles with the apiserver every syncPeriod (10 s).
pub const STATUS_SYNC: Duration = Duration::from_secs(10);

fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    registry::by_plural(group, plural).expect("registered")
}

/// What the node offers and how it presents itself.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    pub labels: BTreeMap<String, String>,
    /// Taints the node registers with (JSON taint objects).
    pub taints: Vec<Value>,
    pub address: String,
    /// Where the node agent serves container logs (k8s: the kubelet's port, 10250).
    pub kubelet_port: u16,
    pub info: NodeInfo,
    /// k8s: nodeLeaseDurationSeconds (40); the lease is renewed every quarter of it.
    pub lease_duration_seconds: i64,
}

/// The node's nodeInfo: what the machine and runtime are (the simulator's nodes are `gantry`).
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
    pub container_runtime_version: String,
    pub architecture: String,
}

impl NodeInfo {
    fn simulated(name: &str) -> Self {
        NodeInfo {
            machine_id: name.into(),
            system_uuid: name.into(),
            boot_id: name.into(),
            kernel_version: "gantry".into(),
            os_image: "gantry".into(),
            container_runtime_version: "gantry://0.1.0".into(),
            architecture: "amd64".into(),
        }
    }
}

impl NodeConfig {
    pub fn new(name: &str) -> Self {
        NodeConfig {
            name: name.into(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: "110".into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            address: "10.0.0.1".into(),
            kubelet_port: 10250,
            info: NodeInfo::simulated(name),
            lease_duration_seconds: LEASE_DURATION_SECONDS,
        }
    }
}

#[derive(Clone, Debug)]
struct Terminated {
    id: String,
    exit_code: i32,
    reason: String,
    /// Why a container could not start (reason StartError).
    message: Option<String>,
    started_at: Time,
    finished_at: Time,
}

#[derive(Clone, Debug)]
enum Run {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Starting,
    Running {
        id: String,
        started_at: Time,
    },
    Stopping {
        id: String,
        started_at: Time,
    },
    Terminated(Terminated),
}

#[derive(Clone, Debug)]
struct ContainerState {
    spec: Container,
    run: Run,
    restart_count: i32,
    last: Option<Terminated>,
    probes: Vec<ProbeWorker>,
    /// The startup probe succeeded (or there is none).
    started: bool,
    /// Killed by a failed liveness or startup probe (restart after the stop).
    killed: bool,
    /// When the last attempt to create it failed (ErrImagePull, CreateContainerConfigError):
    /// it waits with that reason and is tried again under the back-off.
    failed_start: Option<Time>,
}

#[derive(Debug)]
struct PodState {
    containers: Vec<ContainerState>,
    /// A terminal phase reached (sticky).
    terminal: Option<&'static str>,
    final_delete_sent: bool,
    status_sent: Option<Value>,
    /// The same status decoded, to compare with the informer's copy without decoding it again.
    status_sent_typed: Option<k8s_openapi::api::core::v1::PodStatus>,
    /// The informer's copy last found to agree with `status_sent`.
    verified: Option<Arc<Pod>>,
    /// The address the runtime gave the pod's sandbox.
    pod_ip: Option<String>,
}

#[derive(Debug)]
enum Purpose {
    Start { pod: String, c: usize },
    Stop { pod: String, c: usize },
    Probe { pod: String, c: usize, p: usize },
}

pub struct Kubelet {
    config: NodeConfig,
    name: String,
    pods: Cache<Pod>,
    states: BTreeMap<String, PodState>,
    /// Pods whose informer copy or sent status changed since the status manager last compared
    /// them; the others agree as they did then and need no second look.
    unverified: BTreeSet<String>,
    backoff: Backoff,
    runtime: BTreeMap<u64, Purpose>,
    api: BTreeMap<u64, &'static str>,
    /// Final (grace-0) deletes in flight: request id → pod key.
    final_deletes: BTreeMap<u64, String>,
    next_id: u64,
    registered: bool,
    lease: Option<Arc<Value>>,
    lease_failures: u32,
    started_at: Option<Time>,
    tick_armed: Option<Time>,
    /// A node status write is in flight (one at a time).
    status_report_pending: bool,
    /// The Services with a ClusterIP, for the env vars of containers that start (k8s: the
    /// kubelet's service informer).
    services: envvars::Services,
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl Kubelet {
    pub fn new(config: NodeConfig) -> Self {
        Kubelet {
            name: format!("kubelet/{}", config.name),
            config,
            pods: Cache::new(),
            states: BTreeMap::new(),
            unverified: BTreeSet::new(),
            backoff: Backoff::default(),
            runtime: BTreeMap::new(),
            api: BTreeMap::new(),
            final_deletes: BTreeMap::new(),
            next_id: 1,
            services: envvars::Services::default(),
            registered: false,
            lease: None,
            lease_failures: 0,
            started_at: None,
            tick_armed: None,
            status_report_pending: false,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn api(&mut self, out: &mut Vec<Effect>, purpose: &'static str, op: ApiOp) {
        let id = self.id();
        self.api.insert(id, purpose);
        out.push(Effect::Api { id, op });
    }

    fn runtime_op(&mut self, out: &mut Vec<Effect>, purpose: Purpose, op: RuntimeOp) {
        let id = self.id();
        self.runtime.insert(id, purpose);
        out.push(Effect::Runtime { id, op });
    }

    // --- node registration, lease, node status ---

    fn node_object(&self, now: Time) -> Value {
        let c = &self.config;
        let i = &c.info;
        let arch = &i.architecture;
        let mut labels = json!({
            "kubernetes.io/hostname": c.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch,
        });
        for (k, v) in &c.labels {
            labels[k] = json!(v);
        }
        let t = format_time(now);
        let cond = |type_: &str, status: &str, reason: &str, message: &str| {
            json!({"type": type_, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": t, "lastTransitionTime": t})
        };
        let resources = json!({"cpu": c.cpu, "memory": c.memory, "pods": c.pods});
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": c.name, "labels": labels},
            "spec": {"taints": if c.taints.is_empty() { Value::Null } else { json!(c.taints) }},
            "status": {
                "capacity": resources, "allocatable": resources,
                "conditions": [
                    cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "addresses": [{"type": "InternalIP", "address": c.address}, {"type": "Hostname", "address": c.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": c.kubelet_port}},
                "nodeInfo": {
                    "machineID": i.machine_id, "systemUUID": i.system_uuid, "bootID": i.boot_id,
                    "kernelVersion": i.kernel_version, "osImage": i.os_image,
                    "containerRuntimeVersion": i.container_runtime_version,
                    "kubeletVersion": "v1.33.0", "kubeProxyVersion": "v1.33.0",
                    "operatingSystem": "linux", "architecture": arch,
                },
            },
        })
    }

    fn lease_object(&self, now: Time) -> Value {
        let mut lease = self.lease.as_deref().cloned().unwrap_or_else(|| {
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": self.config.name, "namespace": "kube-node-lease"},
                   "spec": {"holderIdentity": self.config.name, "leaseDurationSeconds": self.config.lease_duration_seconds}})
        });
        lease["spec"]["renewTime"] = micro_time(now);
        lease
    }

    fn register(&mut self, now: Time, out: &mut Vec<Effect>) {
        self.registered = true;
        let body = self.node_object(now);
        self.api(
            out,
            "register",
            ApiOp::Create {
                resource: res("", "nodes"),
                namespace: None,
                body,
            },
        );
        self.renew_lease(now, out);
        out.push(Effect::Timer {
            id: NODE_STATUS_TIMER,
            at: now + NODE_STATUS_REPORT,
        });
        out.push(Effect::Timer {
            id: STATUS_SYNC_TIMER,
            at: now + STATUS_SYNC,
        });
    }

    /// k8s: status manager syncBatch — a pod whose status in the API is not what the kubelet
    /// last wrote (someone else changed it, or a write was lost) is written again.
    fn reconcile_statuses(&mut self) -> Vec<String> {
        let mut stale = Vec::new();
        for key in std::mem::take(&mut self.unverified) {
            let Some(state) = self.states.get_mut(&key) else {
                continue;
            };
            if state.status_sent.is_none() {
                continue;
            }
            let theirs = self.pods.get_shared(&key);
            if let (Some(v), Some(t)) = (&state.verified, &theirs) {
                if Arc::ptr_eq(v, t) {
                    continue;
                }
            }
            if state.status_sent_typed.as_ref() == theirs.as_ref().and_then(|p| p.status.as_ref()) {
                state.verified = theirs;
            } else {
                state.verified = None;
                state.status_sent = None;
                state.status_sent_typed = None;
                stale.push(key);
            }
        }
        stale
    }

    /// The Node as the API has it. A Ready condition that is not True (the node lifecycle
    /// controller marked it while this kubelet was cut off) is corrected at once.
    fn on_own_node(&mut self, node: &Value, now: Time, out: &mut Vec<Effect>) {
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| c["status"].as_str())
            .unwrap_or("");
        if ready != "True" && !self.status_report_pending {
            self.status_report_pending = true;
            self.report_node_status(now, out);
        }
    }

    fn renew_lease(&mut self, now: Time, out: &mut Vec<Effect>) {
        let body = self.lease_object(now);
        let op = match &self.lease {
            None => ApiOp::Create {
                resource: res("coordination.k8s.io", "leases"),
                namespace: Some("kube-node-lease".into()),
                body,
            },
            Some(_) => ApiOp::Update {
                resource: res("coordination.k8s.io", "leases"),
                namespace: Some("kube-node-lease".into()),
                name: self.config.name.clone(),
                body,
                part: Part::Main,
            },
        };
        self.api(out, "lease", op);
    }

    fn report_node_status(&mut self, now: Time, out: &mut Vec<Effect>) {
        let body = self.node_object(now);
        self.api(
            out,
            "node-status",
            ApiOp::Update {
                resource: res("", "nodes"),
                namespace: None,
                name: self.config.name.clone(),
                body,
                part: Part::Status,
            },
        );
        out.push(Effect::Timer {
            id: NODE_STATUS_TIMER,
            at: now + NODE_STATUS_REPORT,
        });
    }

    fn on_api_result(
        &mut self,
        id: u64,
        result: Result<Arc<Value>, crate::api::status::ApiError>,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        let Some(purpose) = self.api.remove(&id) else {
            return;
        };
        let final_delete = self.final_deletes.remove(&id);
        match (purpose, result) {
            ("final-delete", Err(e)) if e.code != 404 && e.code != 409 => {
                // k8s: the status manager tries again on its next sync (a lost request or a
                // refused one would otherwise leave the pod terminating forever).
                if let Some(state) = final_delete.and_then(|k| self.states.get_mut(&k)) {
                    state.final_delete_sent = false;
                }
            }
            ("register", Err(e)) if e.reason == "AlreadyExists" => {
                // A restarted kubelet: the node is there; refresh its status.
                self.report_node_status(now, out);
            }
            ("register", Err(_)) => self.registered = false, // retried on the next tick
            ("node-status", _) => self.status_report_pending = false,
            ("lease", Ok(lease)) => {
                self.lease = Some(lease);
                self.lease_failures = 0;
                // k8s: renewed every 0.25 × the lease's duration.
                let renew =
                    Duration::from_millis((self.config.lease_duration_seconds.max(1) as u64) * 250);
                out.push(Effect::Timer {
                    id: LEASE_TIMER,
                    at: now + renew,
                });
            }
            ("lease", Err(e)) => {
                if e.reason == "AlreadyExists" || e.code == 409 {
                    // Someone else's copy is newer: take it over on the next try.
                    self.lease = None;
                    let mut l = self.lease_object(now);
                    l["metadata"]["resourceVersion"] = Value::Null;
                    self.lease = Some(Arc::new(l));
                }
                // k8s: retry with backoff 200 ms doubling to 7 s
                self.lease_failures += 1;
                let wait = (Duration::from_millis(200) * 2u32.pow(self.lease_failures.min(6)))
                    .min(Duration::from_secs(7));
                out.push(Effect::Timer {
                    id: LEASE_TIMER,
                    at: now + wait,
                });
            }
            _ => {}
        }
    }

    // --- pods ---

    fn on_pod(&mut self, change: Change<Pod>, out: &mut Vec<Effect>) {
        match &change.new {
            Some(pod) => {
                let state = self
                    .states
                    .entry(change.key.clone())
                    .or_insert_with(|| PodState {
                        containers: pod
                            .spec
                            .as_ref()
                            .map(|s| s.containers.clone())
                            .unwrap_or_default()
                            .into_iter()
                            .map(|spec| ContainerState {
                                spec,
                                run: Run::Waiting {
                                    reason: "ContainerCreating".into(),
                                    message: None,
                                },
                                restart_count: 0,
                                last: None,
                                probes: Vec::new(),
                                started: false,
                                killed: false,
                                failed_start: None,
                            })
                            .collect(),
                        terminal: None,
                        final_delete_sent: false,
                        status_sent: None,
                        status_sent_typed: None,
                        verified: None,
                        pod_ip: None,
                    });
                // k8s: only images may change in a running pod's spec.
                if let Some(spec) = &pod.spec {
                    for (c, new) in state.containers.iter_mut().zip(&spec.containers) {
                        c.spec.image = new.image.clone();
                    }
                }
            }
            None => {
                // The pod is gone from the API: stop whatever still runs.
                if let Some(old) = &change.old {
                    self.backoff.forget(&uid(old));
                    let id = self.id();
                    out.push(Effect::Runtime {
                        id,
                        op: RuntimeOp::RemovePod { pod_uid: uid(old) },
                    });
                }
                self.states.remove(&change.key);
            }
        }
    }

    fn sync(&mut self, key: &str, now: Time, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        let Some(pod) = self.pods.get_shared(key) else {
            return;
        };
        let policy = restart_policy(&pod);
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let pod_uid = uid(&pod);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(state) = self.states.get_mut(key) else {
            return;
        };

        let mut ops: Vec<(Purpose, RuntimeOp)> = Vec::new();
        // (container, type, reason, message) of the events this sync records.
        let mut events: Vec<(Option<String>, &'static str, &'static str, String)> = Vec::new();
        if deleting {
            // k8s: SIGTERM every container, SIGKILL when the grace period runs out.
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .unwrap_or(30)
                .max(0);
            for (i, c) in state.containers.iter_mut().enumerate() {
                match &c.run {
                    Run::Running { id, started_at } => {
                        let id = id.clone();
                        c.run = Run::Stopping {
                            id: id.clone(),
                            started_at: *started_at,
                        };
                        events.push((
                            Some(c.spec.name.clone()),
                            NORMAL,
                            "Killing",
                            format!("Stopping container {}", c.spec.name),
                        ));
                        ops.push((
                            Purpose::Stop {
                                pod: key.into(),
                                c: i,
                            },
                            RuntimeOp::Stop {
                                container_id: id,
                                grace_seconds: grace,
                            },
                        ));
                    }
                    Run::Waiting { .. } => {
                        c.run = Run::Waiting {
                            reason: "ContainerCreating".into(),
                            message: None,
                        };
                    }
                    _ => {}
                }
            }
        } else if state.terminal.is_none() {
            for (i, c) in state.containers.iter_mut().enumerate() {
                let restart = match &c.run {
                    Run::Waiting { reason, .. } if c.failed_start.is_some() => {
                        let failed = c.failed_start.expect("checked");
                        let backoff_key = format!("{pod_uid}/{}", c.spec.name);
                        if self.backoff.in_backoff(&backoff_key, failed, now) {
                            // k8s: ErrImagePull turns into ImagePullBackOff while it waits.
                            if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
                                let image = c.spec.image.as_deref().unwrap_or("");
                                events.push((
                                    Some(c.spec.name.clone()),
                                    NORMAL,
                                    "BackOff",
                                    format!("Back-off pulling image \"{image}\""),
                                ));
                            }
                            if reason == "ErrImagePull" {
                                c.run = Run::Waiting {
                                    reason: "ImagePullBackOff".into(),
                                    message: Some(format!(
                                        "Back-off pulling image \"{}\"",
                                        c.spec.image.as_deref().unwrap_or("")
                                    )),
                                };
                            }
                            false
                        } else {
                            self.backoff.next(&backoff_key, now);
                            true
                        }
                    }
                    // k8s: getServiceEnvVarMap — no container starts before the Services
                    // were listed once (its env vars would be missing).
                    Run::Waiting { .. } if c.last.is_none() => self.services.synced,
                    Run::Waiting { .. } | Run::Terminated(_) => {
                        let t = match &c.run {
                            Run::Terminated(t) => t.clone(),
                            _ => c.last.clone().expect("checked"),
                        };
                        let allowed = match policy {
                            "Always" => true,
                            "OnFailure" => t.exit_code != 0,
                            _ => false,
                        };
                        let backoff_key = format!("{pod_uid}/{}", c.spec.name);
                        if !allowed {
                            false
                        } else if self.backoff.in_backoff(&backoff_key, t.finished_at, now) {
                            // k8s: "back-off 10s restarting failed container=c pod=p_ns(uid)"
                            let wait = self
                                .backoff
                                .until(&backoff_key, t.finished_at)
                                .map(|u| u.since(t.finished_at))
                                .unwrap_or_default();
                            c.last = Some(t);
                            events.push((
                                Some(c.spec.name.clone()),
                                WARNING,
                                "BackOff",
                                format!(
                                    "Back-off restarting failed container {} in pod {name}_{ns}({pod_uid})",
                                    c.spec.name
                                ),
                            ));
                            c.run = Run::Waiting {
                                reason: "CrashLoopBackOff".into(),
                                message: Some(format!(
                                    "back-off {}s restarting failed container={} pod={name}_{ns}({pod_uid})",
                                    wait.as_secs(),
                                    c.spec.name
                                )),
                            };
                            false
                        } else {
                            self.backoff.next(&backoff_key, now);
                            c.last = Some(t);
                            c.restart_count += 1;
                            true
                        }
                    }
                    _ => false,
                };
                if restart {
                    c.run = Run::Starting;
                    c.probes.clear();
                    c.started = false;
                    c.killed = false;
                    ops.push((
                        Purpose::Start {
                            pod: key.into(),
                            c: i,
                        },
                        RuntimeOp::Start {
                            pod: pod.clone(),
                            container: Box::new(c.spec.clone()),
                            // k8s: enableServiceLinks defaults to true.
                            service_env: self.services.env_for(
                                pod.metadata.namespace.as_deref().unwrap_or(""),
                                pod.spec
                                    .as_ref()
                                    .and_then(|s| s.enable_service_links)
                                    .unwrap_or(true),
                            ),
                        },
                    ));
                }
            }
            // Probes that are due.
            for (i, c) in state.containers.iter_mut().enumerate() {
                let Run::Running { id, .. } = &c.run else {
                    continue;
                };
                let id = id.clone();
                let started = c.started;
                for (p, w) in c.probes.iter_mut().enumerate() {
                    let runs = if w.kind == "startup" {
                        !started
                    } else {
                        started
                    };
                    if runs && !w.in_flight && w.next <= now {
                        w.in_flight = true;
                        ops.push((
                            Purpose::Probe {
                                pod: key.into(),
                                c: i,
                                p,
                            },
                            RuntimeOp::Probe {
                                container_id: id.clone(),
                                probe: Box::new(w.probe.clone()),
                                kind: w.kind,
                            },
                        ));
                    }
                }
            }
        }
        let _ = rng.gen::<u8>(); // keep one draw per sync so probe offsets stay seed-determined
        for (container, type_, reason, message) in events {
            out.push(pod_event(
                &pod,
                container.as_deref(),
                type_,
                reason,
                message,
            ));
        }
        for (purpose, op) in ops {
            self.runtime_op(out, purpose, op);
        }
        self.report(key, &pod, now, out);
    }

    /// Writes the pod's status when it changed; finishes a deleted pod whose containers stopped.
    fn report(&mut self, key: &str, pod: &Pod, now: Time, out: &mut Vec<Effect>) {
        let policy = restart_policy(pod);
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let Some(state) = self.states.get_mut(key) else {
            return;
        };
        let seen: Vec<Seen> = state
            .containers
            .iter()
            .map(|c| match &c.run {
                Run::Running { .. } | Run::Stopping { .. } => Seen::Running,
                Run::Terminated(t) => Seen::Stopped {
                    succeeded: t.exit_code == 0,
                },
                Run::Waiting { .. } | Run::Starting => match &c.last {
                    Some(t) => Seen::Stopped {
                        succeeded: t.exit_code == 0,
                    },
                    None => Seen::Waiting,
                },
            })
            .collect();
        let all_stopped = state.containers.iter().all(|c| {
            !matches!(
                c.run,
                Run::Running { .. } | Run::Stopping { .. } | Run::Starting
            )
        });
        let mut phase = match state.terminal {
            Some(p) => p,
            None => status::phase(&seen, policy, deleting && all_stopped),
        };
        if deleting && all_stopped && state.terminal.is_none() {
            // k8s (1.27+): a deleted pod reaches a terminal phase before it is removed.
            phase = if seen.iter().all(|s| *s == Seen::Stopped { succeeded: true })
                && !seen.is_empty()
            {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if phase == "Succeeded" || phase == "Failed" {
            state.terminal = Some(phase);
        }
        let ready = |c: &ContainerState| {
            matches!(c.run, Run::Running { .. })
                && c.started
                && c.probes
                    .iter()
                    .filter(|w| w.kind == "readiness")
                    .all(|w| w.result == Outcome::Success)
        };
        let all_ready =
            !state.containers.is_empty() && state.containers.iter().all(ready) && !deleting;
        // k8s: the status manager keeps its own last status; transition times come from it, not
        // from the informer's copy, which may lag behind the kubelet's own writes.
        let previous: Option<&k8s_openapi::api::core::v1::PodStatus> = match &state.status_sent {
            Some(_) => state.status_sent_typed.as_ref(),
            None => pod.status.as_ref(),
        };
        let old_conditions: &[k8s_openapi::api::core::v1::PodCondition] = previous
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        // The kubelet's last status as it wrote it: its times are reused as they are
        // (formatting a time is most of the cost of building a condition).
        let sent_conditions = state
            .status_sent
            .as_ref()
            .and_then(|s| s["conditions"].as_array());
        let condition = |type_: &str, ok: bool| {
            let status = if ok { "True" } else { "False" };
            let since = match sent_conditions {
                Some(sent) => sent
                    .iter()
                    .find(|c| c["type"] == type_ && c["status"] == status)
                    .map(|c| c["lastTransitionTime"].clone()),
                None => old_conditions
                    .iter()
                    .find(|c| c.type_ == type_ && c.status == status)
                    .and_then(|c| c.last_transition_time.as_ref())
                    .map(|t| serde_json::to_value(t).expect("time serializes")),
            }
            .unwrap_or_else(|| format_time(now));
            let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
            if !ok && (type_ == "Ready" || type_ == "ContainersReady") {
                let not_ready: Vec<&str> = state
                    .containers
                    .iter()
                    .filter(|c| !ready(c))
                    .map(|c| c.spec.name.as_str())
                    .collect();
                c["reason"] = json!(if phase == "Succeeded" || phase == "Failed" {
                    "PodCompleted"
                } else {
                    "ContainersNotReady"
                });
                if c["reason"] == "ContainersNotReady" {
                    c["message"] = json!(format!(
                        "containers with unready status: [{}]",
                        not_ready.join(" ")
                    ));
                }
            }
            c
        };
        let conditions = Value::Array(vec![
            condition("PodReadyToStartContainers", true),
            condition("Initialized", true),
            condition("Ready", all_ready),
            condition("ContainersReady", all_ready),
            condition("PodScheduled", true),
        ]);
        let statuses: Vec<Value> = state
            .containers
            .iter()
            .map(|c| container_status(c, ready(c)))
            .collect();
        let start_time = previous
            .and_then(|s| s.start_time.as_ref())
            .map(|t| serde_json::to_value(t).expect("serializes"))
            .unwrap_or_else(|| format_time(now));
        let qos = pod.status.as_ref().and_then(|s| s.qos_class.as_deref());
        let status = object(
            [
                ("phase", json!(phase)),
                ("conditions", conditions),
                ("hostIP", json!(self.config.address)),
                ("hostIPs", json!([{"ip": self.config.address}])),
                ("containerStatuses", Value::Array(statuses)),
                ("startTime", start_time),
            ]
            .into_iter()
            .chain(
                state
                    .pod_ip
                    .iter()
                    .flat_map(|ip| [("podIP", json!(ip)), ("podIPs", json!([{ "ip": ip }]))]),
            )
            .chain(qos.map(|q| ("qosClass", json!(q)))),
        );
        if state.status_sent.as_ref() != Some(&status) {
            state.status_sent_typed =
                k8s_openapi::api::core::v1::PodStatus::deserialize(&status).ok();
            state.verified = None;
            self.unverified.insert(key.to_string());
            // A status write carries only what identifies the pod (uid: a precondition, so a
            // pod recreated under the same name is not overwritten) and the status. The
            // kubelet owns the status: no resourceVersion, the write is unconditional.
            let metadata = json!({
                "name": pod.metadata.name,
                "namespace": pod.metadata.namespace,
                "uid": pod.metadata.uid,
            });
            let body = object([
                ("apiVersion", json!("v1")),
                ("kind", json!("Pod")),
                ("metadata", metadata),
                ("status", status.clone()),
            ]);
            state.status_sent = Some(status);
            self.api(
                out,
                "pod-status",
                ApiOp::Update {
                    resource: res("", "pods"),
                    namespace: pod.metadata.namespace.clone(),
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    body,
                    part: Part::Status,
                },
            );
        }
        let state = self.states.get_mut(key).expect("present");
        if deleting && all_stopped && !state.final_delete_sent {
            // k8s: the kubelet's grace-0 delete removes the pod from the API.
            state.final_delete_sent = true;
            let op = ApiOp::Delete {
                resource: res("", "pods"),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                grace_period_seconds: Some(0),
                precondition_uid: pod.metadata.uid.clone(),
                precondition_resource_version: None,
                propagation_policy: None,
            };
            self.api(out, "final-delete", op);
            self.final_deletes.insert(self.next_id, key.to_string());
        }
    }

    fn on_runtime(
        &mut self,
        id: u64,
        result: RuntimeResult,
        now: Time,
        rng: &mut dyn RngCore,
        out: &mut Vec<Effect>,
    ) {
        let Some(purpose) = self.runtime.remove(&id) else {
            return;
        };
        let key = match &purpose {
            Purpose::Start { pod, .. } | Purpose::Stop { pod, .. } | Purpose::Probe { pod, .. } => {
                pod.clone()
            }
        };
        let kubelet_started = self.started_at.unwrap_or(now);
        let Some(state) = self.states.get_mut(&key) else {
            return;
        };
        match (purpose, result) {
            (
                Purpose::Start { c, .. },
                RuntimeResult::Started {
                    container_id,
                    pod_ip,
                },
            ) => {
                if pod_ip.is_some() {
                    state.pod_ip = pod_ip;
                }
                let cs = &mut state.containers[c];
                if let Some(pod) = self.pods.get(&key) {
                    let name = cs.spec.name.as_str();
                    let image = cs.spec.image.as_deref().unwrap_or("");
                    for (reason, message) in [
                        (
                            "Pulled",
                            format!("Container image \"{image}\" already present on machine"),
                        ),
                        ("Created", format!("Created container: {name}")),
                        ("Started", format!("Started container {name}")),
                    ] {
                        out.push(pod_event(pod, Some(name), NORMAL, reason, message));
                    }
                }
                cs.failed_start = None;
                cs.run = Run::Running {
                    id: container_id,
                    started_at: now,
                };
                cs.started = cs.spec.startup_probe.is_none();
                for (kind, probe) in [
                    ("startup", &cs.spec.startup_probe),
                    ("liveness", &cs.spec.liveness_probe),
                    ("readiness", &cs.spec.readiness_probe),
                ] {
                    if let Some(p) = probe {
                        // k8s: right after the kubelet starts, the first probe waits a random
                        // fraction of the period.
                        let period =
                            Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
                        let offset = if now.since(kubelet_started) < period {
                            Duration::from_millis(rng.gen_range(0..period.as_millis() as u64))
                        } else {
                            Duration::ZERO
                        };
                        cs.probes
                            .push(ProbeWorker::new(kind, p.clone(), now, offset));
                    }
                }
            }
            (Purpose::Start { c, .. }, RuntimeResult::StartFailed { reason, message }) => {
                let cs = &mut state.containers[c];
                if let Some(pod) = self.pods.get(&key) {
                    let m = format!("Error: {message}");
                    out.push(pod_event(pod, Some(&cs.spec.name), WARNING, "Failed", m));
                }
                if reason == "RunContainerError" {
                    // k8s (containerd): the container was made but its process could not
                    // run: it exited with 128, reason StartError, and restarts under the
                    // crash back-off.
                    cs.run = Run::Terminated(Terminated {
                        id: String::new(),
                        exit_code: 128,
                        reason: "StartError".into(),
                        message: Some(message),
                        started_at: now,
                        finished_at: now,
                    });
                } else {
                    // Nothing ran (no image, a missing ConfigMap): it waits with the reason
                    // and is tried again under the back-off, without counting a restart.
                    cs.run = Run::Waiting {
                        reason,
                        message: Some(message),
                    };
                    cs.failed_start = Some(now);
                }
            }
            (Purpose::Stop { c, .. }, RuntimeResult::Stopped { exit_code }) => {
                exited(&mut state.containers[c], exit_code, now)
            }
            (Purpose::Probe { c, p, .. }, r) => {
                let cs = &mut state.containers[c];
                let Some(w) = cs.probes.get_mut(p) else {
                    return;
                };
                let changed = w.record(matches!(r, RuntimeResult::ProbeSucceeded), now);
                let (kind, result) = (w.kind, w.result);
                if let (RuntimeResult::ProbeFailed { message }, Some(pod)) =
                    (&r, self.pods.get(&key))
                {
                    // k8s: every failed probe is an Unhealthy event (prober.go).
                    let mut title = kind.to_string();
                    title[..1].make_ascii_uppercase();
                    let m = format!("{title} probe failed: {message}");
                    out.push(pod_event(pod, Some(&cs.spec.name), WARNING, "Unhealthy", m));
                }
                if changed || kind == "startup" {
                    match (kind, result) {
                        ("startup", Outcome::Success) => cs.started = true,
                        ("liveness", Outcome::Failure) | ("startup", Outcome::Failure) => {
                            // k8s: a failed liveness/startup probe kills the container.
                            if let Run::Running { id, started_at } = cs.run.clone() {
                                if let Some(pod) = self.pods.get(&key) {
                                    let m = format!(
                                        "Container {} failed {kind} probe, will be restarted",
                                        cs.spec.name
                                    );
                                    out.push(pod_event(
                                        pod,
                                        Some(&cs.spec.name),
                                        NORMAL,
                                        "Killing",
                                        m,
                                    ));
                                }
                                cs.killed = true;
                                cs.run = Run::Stopping {
                                    id: id.clone(),
                                    started_at,
                                };
                                let pod_grace = self
                                    .pods
                                    .get(&key)
                                    .and_then(|p| p.spec.as_ref())
                                    .and_then(|s| s.termination_grace_period_seconds)
                                    .unwrap_or(30);
                                let grace = w_grace(&cs.spec, kind)
                                    .unwrap_or(pod_grace)
                                    .max(MIN_KILL_GRACE);
                                let op = RuntimeOp::Stop {
                                    container_id: id,
                                    grace_seconds: grace,
                                };
                                self.runtime_op(
                                    out,
                                    Purpose::Stop {
                                        pod: key.clone(),
                                        c,
                                    },
                                    op,
                                );
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        self.sync(&key, now, rng, out);
    }

    fn on_exit(
        &mut self,
        container_id: &str,
        exit_code: i32,
        now: Time,
        rng: &mut dyn RngCore,
        out: &mut Vec<Effect>,
    ) {
        let mut hit = None;
        for (key, state) in &mut self.states {
            for c in &mut state.containers {
                let id = match &c.run {
                    Run::Running { id, .. } | Run::Stopping { id, .. } => id.clone(),
                    _ => continue,
                };
                if id == container_id {
                    exited(c, exit_code, now);
                    hit = Some(key.clone());
                }
            }
        }
        if let Some(key) = hit {
            self.sync(&key, now, rng, out);
        }
    }

    /// The earliest time something needs this kubelet: a backoff ending, a probe due.
    fn next_wake(&self) -> Option<Time> {
        let mut wake: Option<Time> = None;
        let mut consider = |t: Time| wake = Some(wake.map_or(t, |w| w.min(t)));
        for (key, state) in &self.states {
            for c in &state.containers {
                match &c.run {
                    Run::Waiting { .. } if c.failed_start.is_some() => {
                        let uid = self.pods.get(key).map(uid).unwrap_or_default();
                        let failed = c.failed_start.expect("checked");
                        if let Some(t) = self
                            .backoff
                            .until(&format!("{uid}/{}", c.spec.name), failed)
                        {
                            consider(t);
                        }
                    }
                    Run::Waiting { reason, .. } if reason == "CrashLoopBackOff" => {
                        let uid = self.pods.get(key).map(uid).unwrap_or_default();
                        if let Some(t) = c.last.as_ref().and_then(|l| {
                            self.backoff
                                .until(&format!("{uid}/{}", c.spec.name), l.finished_at)
                        }) {
                            consider(t);
                        }
                    }
                    Run::Running { .. } => {
                        for w in c.probes.iter().filter(|w| !w.in_flight) {
                            let runs = if w.kind == "startup" {
                                !c.started
                            } else {
                                c.started
                            };
                            if runs {
                                consider(w.next);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        wake
    }
}

fn w_grace(spec: &Container, kind: &str) -> Option<i64> {
    let p = match kind {
        "liveness" => spec.liveness_probe.as_ref(),
        _ => spec.startup_probe.as_ref(),
    };
    p.and_then(|p| p.termination_grace_period_seconds)
}

fn exited(c: &mut ContainerState, exit_code: i32, now: Time) {
    let (id, started_at) = match &c.run {
        Run::Running { id, started_at } | Run::Stopping { id, started_at } => {
            (id.clone(), *started_at)
        }
        _ => return,
    };
    let reason = if exit_code == 0 { "Completed" } else { "Error" };
    c.run = Run::Terminated(Terminated {
        id,
        exit_code,
        reason: reason.into(),
        message: None,
        started_at,
        finished_at: now,
    });
    c.probes.clear();
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v = json!({"exitCode": t.exit_code, "reason": t.reason, "startedAt": format_time(t.started_at),
           "finishedAt": format_time(t.finished_at), "containerID": t.id});
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    v
}

fn container_status(c: &ContainerState, ready: bool) -> Value {
    let state = match &c.run {
        Run::Waiting { reason, message } => {
            json!({"waiting": {"reason": reason, "message": message}})
        }
        Run::Starting => json!({"waiting": {"reason": "ContainerCreating"}}),
        Run::Running { started_at, .. } | Run::Stopping { started_at, .. } => {
            json!({"running": {"startedAt": format_time(*started_at)}})
        }
        Run::Terminated(t) => json!({"terminated": terminated_json(t)}),
    };
    let id = match &c.run {
        Run::Running { id, .. } | Run::Stopping { id, .. } => Some(id.clone()),
        Run::Terminated(t) => Some(t.id.clone()),
        _ => None,
    };
    let mut state = state;
    if let Some(w) = state["waiting"].as_object_mut() {
        w.retain(|_, v| !v.is_null());
    }
    let last_state = object(c.last.as_ref().map(|t| ("terminated", terminated_json(t))));
    let started = matches!(c.run, Run::Running { .. }) && c.started;
    let mut s = object([
        ("name", json!(c.spec.name)),
        ("image", json!(c.spec.image)),
        ("imageID", json!("")),
        ("ready", json!(ready)),
        ("restartCount", json!(c.restart_count)),
        ("started", json!(started)),
        ("state", state),
        ("lastState", last_state),
        ("containerID", json!(id)),
    ]);
    if let Some(o) = s.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    s
}

/// A JSON object from values moved in: `json!` would copy every interpolated Value.
fn object(entries: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Object(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// metav1.MicroTime: RFC 3339 with microseconds.
pub fn micro_time(t: Time) -> Value {
    let micros = (t.as_nanos() % 1_000_000_000) / 1000;
    // A lease renewal writes one: the seconds' string gets the digits appended in place.
    if let Some(mut s) = i64::try_from(t.as_nanos() / 1_000_000_000)
        .ok()
        .and_then(crate::apiserver::rfc3339_seconds)
    {
        s.pop();
        s.push('.');
        for i in (0..6).rev() {
            s.push(char::from(b'0' + (micros / 10u64.pow(i) % 10) as u8));
        }
        s.push('Z');
        return Value::String(s);
    }
    let secs = format_time(Time(t.as_nanos() - t.as_nanos() % 1_000_000_000));
    let base = secs
        .as_str()
        .unwrap_or("")
        .trim_end_matches('Z')
        .to_string();
    json!(format!(
        "{base}.{:06}Z",
        (t.as_nanos() % 1_000_000_000) / 1000
    ))
}

impl Component for Kubelet {
    fn name(&self) -> &str {
        &self.name
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::node(&self.config.name)
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![
            // k8s: the kubelet's service informer, for the Service env vars (listed first, so
            // that the pods already bound find it synced).
            WatchSpec::all(res("", "services")),
            WatchSpec {
                resource: res("", "pods"),
                field_selector: Some(format!("spec.nodeName={}", self.config.name)),
            },
            // Its own Node: to repost status when someone else marked it (k8s: the kubelet
            // compares with the apiserver's copy every nodeStatusUpdateFrequency).
            WatchSpec {
                resource: res("", "nodes"),
                field_selector: Some(format!("metadata.name={}", self.config.name)),
            },
        ]
    }

    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        self.started_at.get_or_insert(now);
        if !self.registered {
            self.register(now, out);
        }
        let mut touched: Vec<String> = Vec::new();
        // What can change a container (and so the next wake) besides a synced pod.
        let containers_may_change = match &input {
            Input::RuntimeResult { .. } | Input::ContainerExited { .. } => true,
            Input::Timer { id } => {
                ![LEASE_TIMER, NODE_STATUS_TIMER, STATUS_SYNC_TIMER].contains(id)
            }
            _ => false,
        };
        match input {
            Input::Listed {
                resource, items, ..
            } if resource == res("", "nodes") => {
                if let Some(node) = items.first() {
                    self.on_own_node(node, now, out);
                }
            }
            Input::Watched { resource, event } if resource == res("", "nodes") => {
                if event.type_ != crate::apiserver::EventType::Deleted {
                    self.on_own_node(&event.object, now, out);
                }
            }
            Input::Listed {
                resource, items, ..
            } if resource == res("", "services") => {
                let first = !self.services.synced;
                self.services.replace(&items);
                if first {
                    // Containers held back for the first list can start now.
                    touched = self.states.keys().cloned().collect();
                }
            }
            Input::Watched { resource, event } if resource == res("", "services") => {
                self.services.apply(event.type_, &event.object)
            }
            Input::Listed {
                items, revision, ..
            } => {
                for c in self.pods.replace(&items, revision).unwrap_or_default() {
                    self.unverified.insert(c.key.clone());
                    touched.push(c.key.clone());
                    self.on_pod(c, out);
                }
            }
            Input::Watched { event, .. } => {
                if let Ok(c) = self.pods.apply(&event) {
                    self.unverified.insert(c.key.clone());
                    if !only_status_changed(&c) {
                        touched.push(c.key.clone());
                        self.on_pod(c, out);
                    }
                }
            }
            Input::Timer { id: LEASE_TIMER } => self.renew_lease(now, out),
            Input::Timer {
                id: NODE_STATUS_TIMER,
            } => self.report_node_status(now, out),
            Input::Timer {
                id: STATUS_SYNC_TIMER,
            } => {
                touched = self.reconcile_statuses();
                out.push(Effect::Timer {
                    id: STATUS_SYNC_TIMER,
                    at: now + STATUS_SYNC,
                });
            }
            Input::Timer { .. } => {
                self.tick_armed = None;
                touched = self.states.keys().cloned().collect();
            }
            Input::ApiResult { id, result } => self.on_api_result(id, result, now, out),
            Input::RuntimeResult { id, result } => self.on_runtime(id, result, now, rng, out),
            Input::ContainerExited {
                container_id,
                exit_code,
            } => self.on_exit(&container_id, exit_code, now, rng, out),
        }
        if touched.is_empty() && !containers_may_change {
            return;
        }
        for key in touched {
            self.sync(&key, now, rng, out);
        }
        let wake = self.next_wake();
        if let Some(at) = wake.filter(|_| wake != self.tick_armed) {
            self.tick_armed = wake;
            out.push(Effect::Timer { id: TICK_TIMER, at });
        }
    }
}

/// k8s: the kubelet's pod config passes on updates that change a pod's spec, labels,
/// annotations or deletion, and only records the others (a status the kubelet wrote itself,
/// or one the node lifecycle controller changed: the status manager's periodic check,
/// `reconcile_statuses`, handles those). pkg/kubelet/config/config.go podsDifferSemantically.
fn only_status_changed(c: &Change<Pod>) -> bool {
    let (Some(old), Some(new)) = (&c.old, &c.new) else {
        return false;
    };
    let (a, b) = (&old.metadata, &new.metadata);
    a.uid == b.uid
        && a.labels == b.labels
        && a.annotations == b.annotations
        && a.deletion_timestamp == b.deletion_timestamp
        && a.deletion_grace_period_seconds == b.deletion_grace_period_seconds
        && old.spec == new.spec
}

/// k8s: restartPolicy defaults to Always.
/// An event about a pod, or one of its containers (k8s: the fieldPath `spec.containers{c}`).
fn pod_event(
    pod: &Pod,
    container: Option<&str>,
    type_: &'static str,
    reason: &'static str,
    message: String,
) -> Effect {
    let mut involved = reference("v1", "Pod", &pod.metadata);
    involved.field_path = container.map(|c| format!("spec.containers{{{c}}}"));
    event(involved, type_, reason, message)
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(f: impl FnOnce(&mut Value)) -> Option<Arc<Pod>> {
        let mut v = json!({"metadata": {"name": "p", "namespace": "default", "uid": "u1",
                                        "labels": {"app": "web"}},
                           "spec": {"containers": [{"name": "c", "image": "server"}]},
                           "status": {"phase": "Pending"}});
        f(&mut v);
        Some(Arc::new(serde_json::from_value(v).unwrap()))
    }

    type Case = (&'static str, Option<Arc<Pod>>, Option<Arc<Pod>>, bool);

    #[test]
    fn micro_times_have_six_digits_of_microseconds() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (1_000, "1970-01-01T00:00:00.000001Z"),
            (1_999_999_999, "1970-01-01T00:00:01.999999Z"),
            (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456Z"),
        ];
        for (nanos, want) in cases {
            assert_eq!(micro_time(Time(nanos)), json!(want), "{nanos}");
        }
    }

    #[test]
    fn containers_wait_for_the_first_service_list_and_get_their_env() {
        let starts = |out: &[Effect]| -> Vec<Vec<(String, String)>> {
            out.iter()
                .filter_map(|e| match e {
                    Effect::Runtime {
                        op: RuntimeOp::Start { service_env, .. },
                        ..
                    } => Some(service_env.clone()),
                    _ => None,
                })
                .collect()
        };
        let mut k = Kubelet::new(NodeConfig::new("n1"));
        let mut rng = rand::rngs::mock::StepRng::new(1, 1);
        let now = Time::ZERO + std::time::Duration::from_secs(1);
        let mut bound = json!({"metadata": {"name": "p", "namespace": "team", "uid": "u1"},
                               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "server"}]},
                               "status": {"phase": "Pending"}});
        bound["spec"]["enableServiceLinks"] = json!(true);
        let mut out = Vec::new();
        k.step(
            now,
            Input::Listed {
                resource: res("", "pods"),
                items: vec![bound],
                revision: 5,
            },
            &mut rng,
            &mut out,
        );
        assert!(
            starts(&out).is_empty(),
            "no start before the Services are listed"
        );
        let mut out = Vec::new();
        k.step(
            now,
            Input::Listed {
                resource: res("", "services"),
                items: vec![
                    json!({"metadata": {"namespace": "team", "name": "db"},
                           "spec": {"clusterIP": "10.96.0.7", "ports": [{"port": 5432, "protocol": "TCP"}]}}),
                    json!({"metadata": {"namespace": "other", "name": "x"},
                           "spec": {"clusterIP": "10.96.0.8", "ports": [{"port": 80}]}}),
                ],
                revision: 5,
            },
            &mut rng,
            &mut out,
        );
        let started = starts(&out);
        assert_eq!(started.len(), 1, "{out:?}");
        let env: BTreeMap<String, String> = started[0].iter().cloned().collect();
        assert_eq!(
            env.get("DB_SERVICE_HOST").map(String::as_str),
            Some("10.96.0.7")
        );
        assert_eq!(env.get("DB_SERVICE_PORT").map(String::as_str), Some("5432"));
        assert!(!env.contains_key("X_SERVICE_HOST"), "another namespace's");
    }

    #[test]
    fn only_changes_beyond_the_status_reach_the_pod_sync() {
        let same = pod(|_| {});
        let cases: Vec<Case> = vec![
            (
                "status",
                same.clone(),
                pod(|v| v["status"]["phase"] = json!("Running")),
                true,
            ),
            (
                "resourceVersion",
                same.clone(),
                pod(|v| v["metadata"]["resourceVersion"] = json!("9")),
                true,
            ),
            (
                "labels",
                same.clone(),
                pod(|v| v["metadata"]["labels"]["app"] = json!("db")),
                false,
            ),
            (
                "annotations",
                same.clone(),
                pod(|v| v["metadata"]["annotations"] = json!({"a": "b"})),
                false,
            ),
            (
                "image",
                same.clone(),
                pod(|v| v["spec"]["containers"][0]["image"] = json!("v2")),
                false,
            ),
            (
                "deletion",
                same.clone(),
                pod(|v| v["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z")),
                false,
            ),
            (
                "grace",
                same.clone(),
                pod(|v| v["metadata"]["deletionGracePeriodSeconds"] = json!(0)),
                false,
            ),
            (
                "recreated",
                same.clone(),
                pod(|v| v["metadata"]["uid"] = json!("u2")),
                false,
            ),
            ("added", None, same.clone(), false),
            ("deleted", same.clone(), None, false),
        ];
        for (what, old, new, want) in cases {
            let c = Change {
                key: "default/p".into(),
                old,
                new,
            };
            assert_eq!(only_status_changed(&c), want, "{what}");
        }
    }
}
