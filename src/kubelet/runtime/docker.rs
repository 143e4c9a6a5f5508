//! The Docker runtime: pods as containers of a local Docker daemon, through the Engine API
//! (k8s: the dockershim the kubelet had until 1.24, pkg/kubelet/dockershim).
//!
//! As in dockershim, every pod gets a sandbox: a pause container that holds the pod's network
//! (and IPC) namespace; the pod's containers join it (`network_mode: container:<sandbox>`), so
//! they share one IP on Docker's default bridge and reach each other on 127.0.0.1. Labels tie
//! containers to pods (`io.kubernetes.pod.uid`, `io.kubernetes.container.name`, ...) and to the
//! agent that made them (`io.gantry.node`), so an agent that restarts finds (adopts) what it
//! left running, and two agents on one machine never touch each other's containers.
//!
//! Exits come from the daemon's event stream (`die` events), stopped containers stay until
//! their pod is removed (the last two per container, so `kubectl logs --previous` works), and
//! logs are read back through the daemon's logs API.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerSummaryStateEnum,
    EventMessage, HostConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ImportImageOptions,
    InspectContainerOptions, KillContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StartContainerOptions, StopContainerOptions,
};
use bollard::{body_full, Docker};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use futures::FutureExt;
use k8s_openapi::api::core::v1::Container;
use tokio::sync::mpsc;

use super::{
    ContainerConfig, ContainerRuntime, ExecEvent, ExecOutcome, ExecRequest, ExecSession, Exit,
    LogOptions, Logs, PodRef, StartError, TerminalSize,
};
use crate::api::quantity;
use crate::component::RuntimeResult;

/// The pod's name (k8s: dockershim's labels, pkg/kubelet/types/labels.go).
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// The container's name in the pod spec (`POD` on sandboxes, as dockershim labelled them).
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// `podsandbox` or `container` (dockershim's `io.kubernetes.docker.type`).
pub const LABEL_TYPE: &str = "io.kubernetes.docker.type";
/// The agent (node) that made the container: an agent only sees and adopts its own.
pub const LABEL_NODE: &str = "io.gantry.node";
/// A container's attempt (0, 1, ...) among those of its pod and name, a sandbox's among its
/// pod's: orders them (Docker's listings give creation times to the second only).
pub const LABEL_ATTEMPT: &str = "io.gantry.attempt";

const TYPE_SANDBOX: &str = "podsandbox";
const TYPE_CONTAINER: &str = "container";

/// The sandbox image, built locally on first use (there may be no registry to pull from).
pub const PAUSE_IMAGE: &str = "gantry/pause:0.1";

/// Stopped containers kept per (pod, container name), for `kubectl logs --previous`.
const KEEP_EXITED: usize = 2;
/// Exec probes keep at most this much output (k8s: the probe's 10 KiB limit).
const MAX_EXEC_OUTPUT: usize = 10 * 1024;
/// The exit code reported when a container cannot be found any more (k8s: the kubelet
/// reports 137 with reason ContainerStatusUnknown then).
const UNKNOWN_EXIT_CODE: i32 = 137;

/// A `ContainerRuntime` on the local Docker daemon. Cheap to clone; every clone is the same
/// agent.
#[derive(Clone)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    node: String,
    /// One lock per pod uid, so a pod gets one sandbox even when its containers start at once.
    pod_locks: StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Whether the pause image is known to exist (checked, or imported, once).
    pause_ready: tokio::sync::Mutex<bool>,
    exits: StdMutex<Option<mpsc::UnboundedReceiver<Exit>>>,
    events_task: tokio::task::AbortHandle,
    /// The cluster DNS server's IP (kubelet --cluster-dns).
    cluster_dns: Option<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.events_task.abort();
    }
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl DockerRuntime {
    /// Connects to the local daemon (`DOCKER_HOST` or the default socket), negotiates the API
    /// version (the daemon may be older than the client's default) and starts watching for
    /// container exits. `node` names this agent: its containers carry it as a label, and it
    /// sees only containers that carry it.
    pub async fn connect(node: impl Into<String>) -> Result<DockerRuntime, String> {
        Self::connect_with(node, None).await
    }

    /// The same, handing pods that use the cluster DNS (`PodRef::cluster_dns`) a resolv.conf
    /// naming `cluster_dns` (an IP), with the cluster's search paths.
    pub async fn connect_with(
        node: impl Into<String>,
        cluster_dns: Option<String>,
    ) -> Result<DockerRuntime, String> {
        let node = node.into();
        if node.is_empty() {
            return Err("the Docker runtime needs a node name".into());
        }
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| format!("cannot connect to the Docker daemon: {e}"))?
            .negotiate_version()
            .await
            .map_err(|e| format!("cannot reach the Docker daemon: {e}"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        // Events from now on: the daemon replays what happened between this moment and the
        // subscription, so no exit falls in between.
        let since = unix_nanos(SystemTime::now());
        let task = tokio::spawn(watch_exits(docker.clone(), node.clone(), since, tx));
        Ok(DockerRuntime {
            inner: Arc::new(Inner {
                docker,
                node,
                pod_locks: StdMutex::new(HashMap::new()),
                pause_ready: tokio::sync::Mutex::new(false),
                exits: StdMutex::new(Some(rx)),
                events_task: task.abort_handle(),
                cluster_dns,
            }),
        })
    }

    /// The agent name its containers are labelled with.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The bollard client (for callers that need more of the daemon).
    pub fn docker(&self) -> &Docker {
        &self.inner.docker
    }
}

impl ContainerRuntime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn version(&self) -> BoxFuture<'static, String> {
        let inner = self.inner.clone();
        async move {
            match inner.docker.version().await {
                Ok(v) => format!("docker://{}", v.version.unwrap_or_default()),
                Err(e) => {
                    tracing::warn!("docker version: {e}");
                    "docker://unknown".into()
                }
            }
        }
        .boxed()
    }

    fn sandbox(&self, pod: PodRef) -> BoxFuture<'static, Result<String, StartError>> {
        let inner = self.inner.clone();
        async move { inner.ensure_sandbox(&pod).await.map(|(_, ip)| ip) }.boxed()
    }

    fn start(&self, config: ContainerConfig) -> BoxFuture<'static, RuntimeResult> {
        let inner = self.inner.clone();
        async move { inner.start(config).await }.boxed()
    }

    fn stop(&self, container_id: String, grace: Duration) -> BoxFuture<'static, i32> {
        let inner = self.inner.clone();
        async move { inner.stop(bare_id(&container_id), grace).await }.boxed()
    }

    fn exec(
        &self,
        container_id: String,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, ExecOutcome> {
        let inner = self.inner.clone();
        async move {
            let id = bare_id(&container_id).to_string();
            match tokio::time::timeout(timeout, inner.exec(&id, command)).await {
                Err(_) => ExecOutcome::TimedOut,
                Ok(Ok(outcome)) => outcome,
                Ok(Err(message)) => ExecOutcome::Failed(message),
            }
        }
        .boxed()
    }

    fn exec_stream(&self, req: ExecRequest) -> BoxFuture<'static, Result<ExecSession, String>> {
        let inner = self.inner.clone();
        async move { inner.exec_stream(req).await }.boxed()
    }

    fn remove_pod(&self, pod_uid: String) -> BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        async move { inner.remove_pod(&pod_uid).await }.boxed()
    }

    fn exits(&self) -> Option<BoxStream<'static, Exit>> {
        let rx = self
            .inner
            .exits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        Some(stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }).boxed())
    }

    fn logs(
        &self,
        pod_uid: String,
        container: String,
        options: LogOptions,
    ) -> BoxFuture<'static, Result<Logs, String>> {
        let inner = self.inner.clone();
        async move { inner.logs(&pod_uid, &container, options).await }.boxed()
    }

    fn pods(&self) -> BoxFuture<'static, Vec<String>> {
        let inner = self.inner.clone();
        async move {
            match inner.list(&[]).await {
                Ok(all) => all
                    .iter()
                    .filter_map(|c| label(c, LABEL_POD_UID))
                    .map(str::to_string)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                Err(e) => {
                    tracing::warn!("docker: listing containers: {e}");
                    Vec::new()
                }
            }
        }
        .boxed()
    }
}

impl Inner {
    /// This agent's containers (running or not) that carry all of `labels` (`key=value`).
    async fn list(&self, labels: &[String]) -> Result<Vec<ContainerSummary>, DockerError> {
        let mut wanted = vec![format!("{LABEL_NODE}={}", self.node)];
        wanted.extend(labels.iter().cloned());
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), wanted)])),
            ..Default::default()
        };
        self.docker.list_containers(Some(options)).await
    }

    /// The containers (not sandboxes) of one pod and name, newest first.
    async fn containers_of(
        &self,
        pod_uid: &str,
        name: &str,
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let mut found = self
            .list(&[
                format!("{LABEL_POD_UID}={pod_uid}"),
                format!("{LABEL_TYPE}={TYPE_CONTAINER}"),
                format!("{LABEL_CONTAINER_NAME}={name}"),
            ])
            .await?;
        newest_first(&mut found);
        Ok(found)
    }

    fn pod_lock(&self, uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.pod_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(uid.to_string())
            .or_default()
            .clone()
    }

    async fn remove(&self, id: &str) {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => tracing::warn!("docker: removing container {id}: {}", message(&e)),
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, DockerError> {
        self.docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
    }

    /// The pod's sandbox (made if it has none running): its id and IP.
    async fn ensure_sandbox(&self, pod: &PodRef) -> Result<(String, String), StartError> {
        let failed = |m: String| StartError::new("CreatePodSandboxError", m);
        let lock = self.pod_lock(&pod.uid);
        let _held = lock.lock().await;
        let mut sandboxes = self
            .list(&[
                format!("{LABEL_POD_UID}={}", pod.uid),
                format!("{LABEL_TYPE}={TYPE_SANDBOX}"),
            ])
            .await
            .map_err(|e| failed(format!("listing sandboxes: {}", message(&e))))?;
        newest_first(&mut sandboxes);
        let attempt = sandboxes.first().map_or(0, |s| attempt_of(s) + 1);
        for sandbox in &sandboxes {
            let Some(id) = sandbox.id.as_deref() else {
                continue;
            };
            if is_running(sandbox) {
                if let Ok(ip) = self.sandbox_ip(id).await {
                    return Ok((id.to_string(), ip));
                }
            }
            // Stopped (the daemon or host restarted, or someone killed it): a new one.
            self.remove(id).await;
        }
        self.ensure_pause_image().await.map_err(failed)?;

        let mut labels: HashMap<String, String> = pod.labels.clone().into_iter().collect();
        labels.extend(pod_labels(pod, &self.node));
        labels.insert(LABEL_TYPE.into(), TYPE_SANDBOX.into());
        labels.insert(LABEL_CONTAINER_NAME.into(), "POD".into());
        labels.insert(LABEL_ATTEMPT.into(), attempt.to_string());
        let body = ContainerCreateBody {
            image: Some(PAUSE_IMAGE.into()),
            entrypoint: Some(vec!["/pause".into()]),
            hostname: Some(hostname(&pod.name)),
            labels: Some(labels),
            host_config: Some(HostConfig {
                // The pod's containers join its IPC namespace too (as in Kubernetes).
                ipc_mode: Some("shareable".into()),
                ..sandbox_dns(pod, self.cluster_dns.as_deref())
            }),
            ..Default::default()
        };
        let name = container_name("POD", pod, attempt, &self.node);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| failed(format!("creating the sandbox: {}", message(&e))))?;
        let id = created.id;
        if let Err(e) = self
            .docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
        {
            self.remove(&id).await;
            return Err(failed(format!("starting the sandbox: {}", message(&e))));
        }
        match self.sandbox_ip(&id).await {
            Ok(ip) => {
                self.hairpin(&id).await;
                Ok((id, ip))
            }
            Err(m) => {
                self.remove(&id).await;
                Err(failed(m))
            }
        }
    }

    /// Turns on hairpin mode on the sandbox's bridge port, so a pod reaches itself through a
    /// Service: the host translates the connection back to the pod's own address, and
    /// Linux's bridge sends a frame out of the port it came in on only in that mode (k8s:
    /// kubelet --hairpin-mode=hairpin-veth). Without it (no access to the host's /sys, or a
    /// remote daemon) only that case fails, and a warning says so.
    async fn hairpin(&self, id: &str) {
        let pid = match self.inspect(id).await {
            Ok(info) => info.state.and_then(|s| s.pid).unwrap_or(0),
            Err(_) => 0,
        };
        if let Err(e) = set_hairpin(pid) {
            tracing::warn!("docker: sandbox {id}: cannot turn on hairpin mode ({e}); the pod cannot reach itself through a Service");
        }
    }

    /// The sandbox's address on the default bridge (NetworkSettings.IPAddress; newer API
    /// versions only have it per network).
    async fn sandbox_ip(&self, id: &str) -> Result<String, String> {
        let info = self
            .inspect(id)
            .await
            .map_err(|e| format!("inspecting the sandbox: {}", message(&e)))?;
        let networks = info
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        let ip = networks
            .get("bridge")
            .and_then(|n| n.ip_address.clone())
            .filter(|ip| !ip.is_empty())
            .or_else(|| {
                let mut names: Vec<&String> = networks.keys().collect();
                names.sort();
                names
                    .into_iter()
                    .find_map(|n| networks[n].ip_address.clone().filter(|ip| !ip.is_empty()))
            });
        ip.ok_or_else(|| {
            format!("the sandbox {id} has no IP address (is Docker's bridge network disabled?)")
        })
    }

    /// Loads the pause image (built from the bytes below) unless the daemon has it.
    async fn ensure_pause_image(&self) -> Result<(), String> {
        let mut ready = self.pause_ready.lock().await;
        if *ready {
            return Ok(());
        }
        if self.docker.inspect_image(PAUSE_IMAGE).await.is_ok() {
            *ready = true;
            return Ok(());
        }
        // The binary is x86_64 machine code: elsewhere it could not run.
        if let Ok(v) = self.docker.version().await {
            let arch = v.arch.unwrap_or_default();
            if !arch.is_empty() && arch != "amd64" {
                return Err(format!(
                    "the sandbox image {PAUSE_IMAGE} is built for x86_64 (amd64) only; this \
                     Docker daemon runs on {arch}"
                ));
            }
        }
        // `docker load` of a fixed archive: every agent loads the same image (same id), so
        // agents that start at once do not leave untagged copies behind.
        let mut progress = self.docker.import_image(
            ImportImageOptions::default(),
            body_full(Bytes::from(pause_image_archive())),
            None,
        );
        while let Some(step) = progress.next().await {
            if let Err(e) = step {
                return Err(format!("loading {PAUSE_IMAGE}: {}", message(&e)));
            }
        }
        if let Err(e) = self.docker.inspect_image(PAUSE_IMAGE).await {
            return Err(format!(
                "{PAUSE_IMAGE} missing after loading it: {}",
                message(&e)
            ));
        }
        *ready = true;
        Ok(())
    }

    /// Makes sure `image` is present: pulled when missing (k8s: IfNotPresent; `Always` is
    /// treated alike, so locally built images work without a registry), never pulled with
    /// `Never`.
    async fn ensure_image(&self, image: &str, policy: Option<&str>) -> Result<(), StartError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => {
                return Err(StartError::new(
                    "ErrImagePull",
                    format!("inspecting image {image:?}: {}", message(&e)),
                ))
            }
        }
        if policy == Some("Never") {
            return Err(StartError::new(
                "ErrImageNeverPull",
                format!("Container image {image:?} is not present with pull policy of Never"),
            ));
        }
        let options = CreateImageOptions {
            from_image: Some(image.into()),
            // A name alone would pull every tag of the repository.
            tag: (!has_tag_or_digest(image)).then(|| "latest".into()),
            ..Default::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            if let Err(e) = step {
                return Err(StartError::new("ErrImagePull", message(&e)));
            }
        }
        // The pull can "succeed" without the image (a platform mismatch): check.
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) => Err(StartError::new(
                "ErrImagePull",
                format!("image {image:?} missing after pulling: {}", message(&e)),
            )),
        }
    }

    async fn start(&self, config: ContainerConfig) -> RuntimeResult {
        let pod = &config.pod;
        let spec = &config.spec;
        let existing = match self.containers_of(&pod.uid, &spec.name).await {
            Ok(found) => found,
            Err(e) => {
                return StartError::new(
                    "CreateContainerError",
                    format!("listing containers: {}", message(&e)),
                )
                .into_result()
            }
        };
        // Adoption: still running from before an agent restart.
        if let Some(id) = existing
            .iter()
            .find(|c| is_running(c))
            .and_then(|c| c.id.clone())
        {
            return match self.ensure_sandbox(pod).await {
                Ok((_, ip)) => RuntimeResult::Started {
                    container_id: format!("docker://{id}"),
                    pod_ip: Some(ip),
                },
                Err(e) => e.into_result(),
            };
        }
        let (sandbox, ip) = match self.ensure_sandbox(pod).await {
            Ok(found) => found,
            Err(e) => return e.into_result(),
        };
        let image = spec.image.clone().unwrap_or_default();
        if image.trim().is_empty() {
            return StartError::new("InvalidImageName", "the container has no image").into_result();
        }
        if let Err(e) = self
            .ensure_image(&image, spec.image_pull_policy.as_deref())
            .await
        {
            return e.into_result();
        }
        self.prune(&existing).await;

        let attempt = existing.first().map_or(0, |c| attempt_of(c) + 1);
        let body = container_body(&config, &image, &sandbox, attempt, &self.node);
        let name = container_name(&spec.name, pod, attempt, &self.node);
        let created = match self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name),
                    ..Default::default()
                }),
                body,
            )
            .await
        {
            Ok(created) => created,
            Err(e) => return StartError::new("CreateContainerError", message(&e)).into_result(),
        };
        if let Err(e) = self
            .docker
            .start_container(&created.id, None::<StartContainerOptions>)
            .await
        {
            self.remove(&created.id).await;
            return StartError::new("RunContainerError", message(&e)).into_result();
        }
        RuntimeResult::Started {
            container_id: format!("docker://{}", created.id),
            pod_ip: Some(ip),
        }
    }

    /// Removes the stopped containers of one pod and name beyond the newest `KEEP_EXITED`
    /// (`found` newest first).
    async fn prune(&self, found: &[ContainerSummary]) {
        let stale = found
            .iter()
            .filter(|c| !is_running(c))
            .skip(KEEP_EXITED)
            .filter_map(|c| c.id.as_deref());
        for id in stale {
            self.remove(id).await;
        }
    }

    async fn stop(&self, id: &str, grace: Duration) -> i32 {
        let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let t = i32::try_from(seconds).unwrap_or(i32::MAX);
        // The daemon answers once the container stopped: allow for the grace period.
        let docker = self
            .docker
            .clone()
            .with_timeout(grace.saturating_add(Duration::from_secs(120)));
        let options = StopContainerOptions {
            t: Some(t),
            signal: None,
        };
        match docker.stop_container(id, Some(options)).await {
            Ok(()) => {}
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => return UNKNOWN_EXIT_CODE,
            Err(e) => {
                tracing::warn!("docker: stopping {id}: {}; killing it", message(&e));
                let kill = KillContainerOptions {
                    signal: "SIGKILL".into(),
                };
                if let Err(e) = self.docker.kill_container(id, Some(kill)).await {
                    tracing::warn!("docker: killing {id}: {}", message(&e));
                }
            }
        }
        let info = match self.inspect(id).await {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!("docker: inspecting {id}: {}", message(&e));
                return UNKNOWN_EXIT_CODE;
            }
        };
        let code = info
            .state
            .as_ref()
            .and_then(|s| s.exit_code)
            .map_or(UNKNOWN_EXIT_CODE, |c| c as i32);
        let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
        if let (Some(uid), Some(name)) =
            (labels.get(LABEL_POD_UID), labels.get(LABEL_CONTAINER_NAME))
        {
            if let Ok(found) = self.containers_of(uid, name).await {
                self.prune(&found).await;
            }
        }
        code
    }

    async fn exec(&self, id: &str, command: Vec<String>) -> Result<ExecOutcome, String> {
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(command),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, options)
            .await
            .map_err(|e| message(&e))?;
        let mut output = Vec::new();
        match self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| message(&e))?
        {
            StartExecResults::Attached {
                output: mut out, ..
            } => {
                while let Some(chunk) = out.next().await {
                    let chunk = chunk.map_err(|e| message(&e))?.into_bytes();
                    let room = MAX_EXEC_OUTPUT.saturating_sub(output.len());
                    output.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
            }
            StartExecResults::Detached => {}
        }
        // The output ends when the process does; its exit code may lag a moment behind.
        loop {
            let info = self
                .docker
                .inspect_exec(&created.id)
                .await
                .map_err(|e| message(&e))?;
            if info.running != Some(true) {
                return Ok(ExecOutcome::Exited {
                    code: info.exit_code.map_or(-1, |c| c as i32),
                    output: String::from_utf8_lossy(&output).into_owned(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kubectl exec`: a Docker exec with the streams attached (k8s: dockershim's ExecSync's
    /// streaming sibling).
    async fn exec_stream(self: Arc<Self>, req: ExecRequest) -> Result<ExecSession, String> {
        let found = self
            .containers_of(&req.pod_uid, &req.container)
            .await
            .map_err(|e| format!("listing containers: {}", message(&e)))?;
        let Some(id) = found
            .iter()
            .find(|c| is_running(c))
            .and_then(|c| c.id.clone())
        else {
            // k8s: the kubelet's wording.
            return Err(format!("container not found ({:?})", req.container));
        };
        let options = CreateExecOptions {
            attach_stdin: Some(req.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(!req.tty),
            tty: Some(req.tty),
            cmd: Some(req.command.clone()),
            ..Default::default()
        };
        let failed = |message: String| ExecSession {
            stdin: None,
            resize: None,
            events: stream::iter([ExecEvent::Failed(message)]).boxed(),
        };
        let created = match self.docker.create_exec(&id, options).await {
            Ok(created) => created,
            Err(e) => return Ok(failed(message(&e))),
        };
        let start = StartExecOptions {
            detach: false,
            tty: req.tty,
            output_capacity: None,
        };
        let (mut output, mut input) = match self.docker.start_exec(&created.id, Some(start)).await {
            Ok(StartExecResults::Attached { output, input }) => (output, input),
            Ok(StartExecResults::Detached) => return Ok(failed("exec detached".into())),
            Err(e) => return Ok(failed(message(&e))),
        };
        let stdin = req.stdin.then(|| {
            let (tx, mut rx) = mpsc::channel::<Bytes>(16);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                while let Some(data) = rx.recv().await {
                    if input.write_all(&data).await.is_err() {
                        return;
                    }
                }
                // Half-closed: the command reads EOF.
                let _ = input.shutdown().await;
            });
            tx
        });
        let resize = req.tty.then(|| {
            let (tx, mut rx) = mpsc::channel::<TerminalSize>(4);
            let (docker, exec) = (self.docker.clone(), created.id.clone());
            tokio::spawn(async move {
                while let Some(size) = rx.recv().await {
                    let options = ResizeExecOptions {
                        height: size.height,
                        width: size.width,
                    };
                    if let Err(e) = docker.resize_exec(&exec, options).await {
                        tracing::debug!("docker: resizing exec {exec}: {}", message(&e));
                    }
                }
            });
            tx
        });
        let (tx, rx) = mpsc::channel::<ExecEvent>(16);
        let docker = self.docker.clone();
        tokio::spawn(async move {
            while let Some(chunk) = output.next().await {
                let event = match chunk {
                    Ok(LogOutput::StdErr { message }) => ExecEvent::Stderr(message),
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        ExecEvent::Stdout(message)
                    }
                    Ok(LogOutput::StdIn { .. }) => continue,
                    Err(e) => {
                        let _ = tx.send(ExecEvent::Failed(message(&e))).await;
                        return;
                    }
                };
                if tx.send(event).await.is_err() {
                    // The client went away; Docker has no way to kill an exec.
                    return;
                }
            }
            // The output ends when the command does; its exit code may lag a moment behind.
            loop {
                match docker.inspect_exec(&created.id).await {
                    Ok(info) if info.running != Some(true) => {
                        let code = info.exit_code.map_or(-1, |c| c as i32);
                        let _ = tx.send(ExecEvent::Exited(code)).await;
                        return;
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(e) => {
                        let _ = tx.send(ExecEvent::Failed(message(&e))).await;
                        return;
                    }
                }
            }
        });
        let events = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        Ok(ExecSession {
            stdin,
            resize,
            events: events.boxed(),
        })
    }

    async fn logs(&self, pod_uid: &str, name: &str, options: LogOptions) -> Result<Logs, String> {
        let mut all = self
            .list(&[
                format!("{LABEL_POD_UID}={pod_uid}"),
                format!("{LABEL_TYPE}={TYPE_CONTAINER}"),
            ])
            .await
            .map_err(|e| format!("listing containers: {}", message(&e)))?;
        let pod = all
            .iter()
            .find_map(|c| label(c, LABEL_POD_NAME))
            .unwrap_or(pod_uid)
            .to_string();
        all.retain(|c| label(c, LABEL_CONTAINER_NAME) == Some(name));
        newest_first(&mut all);
        let index = usize::from(options.previous);
        let Some(id) = all.get(index).and_then(|c| c.id.clone()) else {
            return Err(if options.previous {
                format!("previous terminated container {name:?} in pod {pod:?} not found")
            } else {
                format!("container {name:?} in pod {pod:?} is not available")
            });
        };
        let since = options.since_seconds.filter(|s| *s > 0).map_or(0, |s| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs() as i64;
            i32::try_from(now - s).unwrap_or(0).max(1)
        });
        let query = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            since,
            until: 0,
            timestamps: options.timestamps,
            tail: options
                .tail_lines
                .map_or_else(|| "all".to_string(), |n| n.max(0).to_string()),
        };
        let text = self
            .docker
            .logs(&id, Some(query))
            .take_while(|chunk| {
                if let Err(e) = chunk {
                    tracing::debug!("docker: logs: {}", message(e));
                }
                futures::future::ready(chunk.is_ok())
            })
            .filter_map(|chunk| futures::future::ready(chunk.ok().map(|c| c.into_bytes())));
        Ok(match options.limit_bytes.filter(|n| *n > 0) {
            None => text.boxed(),
            Some(limit) => limit_bytes(text, limit as u64),
        })
    }

    async fn remove_pod(&self, pod_uid: &str) {
        let lock = self.pod_lock(pod_uid);
        {
            let _held = lock.lock().await;
            match self.list(&[format!("{LABEL_POD_UID}={pod_uid}")]).await {
                Ok(found) => {
                    // The containers first, then the sandbox whose namespaces they use.
                    let (sandboxes, containers): (Vec<_>, Vec<_>) = found
                        .iter()
                        .partition(|c| label(c, LABEL_TYPE) == Some(TYPE_SANDBOX));
                    for c in containers.into_iter().chain(sandboxes) {
                        if let Some(id) = c.id.as_deref() {
                            self.remove(id).await;
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    "docker: listing the containers of pod {pod_uid}: {}",
                    message(&e)
                ),
            }
        }
        self.pod_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(pod_uid);
    }
}

/// Turns the daemon's `die` events for this agent's containers into exits, reconnecting
/// (without losing or repeating events) when the stream breaks. Sandboxes are filtered out by
/// their type label.
async fn watch_exits(
    docker: Docker,
    node: String,
    mut since: u128,
    tx: mpsc::UnboundedSender<Exit>,
) {
    loop {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["die".to_string()]),
            (
                "label".to_string(),
                vec![
                    format!("{LABEL_NODE}={node}"),
                    format!("{LABEL_TYPE}={TYPE_CONTAINER}"),
                ],
            ),
        ]);
        let options = EventsOptions {
            since: Some(format!(
                "{}.{:09}",
                since / 1_000_000_000,
                since % 1_000_000_000
            )),
            until: None,
            filters: Some(filters),
        };
        let mut events = docker.events(Some(options));
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    if let Some(t) = event.time_nano.filter(|t| *t > 0) {
                        since = since.max(t as u128 + 1);
                    }
                    if let Some(exit) = exit_of(&event) {
                        if tx.send(exit).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("docker: the event stream broke: {}", message(&e));
                    break;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn exit_of(event: &EventMessage) -> Option<Exit> {
    if event.action.as_deref() != Some("die") {
        return None;
    }
    let actor = event.actor.as_ref()?;
    let attributes = actor.attributes.as_ref()?;
    if attributes.get(LABEL_TYPE).map(String::as_str) != Some(TYPE_CONTAINER) {
        return None;
    }
    let exit_code = attributes
        .get("exitCode")
        .and_then(|c| c.parse().ok())
        .unwrap_or(UNKNOWN_EXIT_CODE);
    Some(Exit {
        container_id: format!("docker://{}", actor.id.as_deref()?),
        exit_code,
    })
}

/// Hairpin mode on the host side of the veth whose other end is `eth0` of process `pid`'s
/// network namespace (its `iflink` is the peer's ifindex).
fn set_hairpin(pid: i64) -> Result<(), String> {
    if pid <= 0 {
        return Err("the sandbox has no process".into());
    }
    let iflink = std::fs::read_to_string(format!("/proc/{pid}/root/sys/class/net/eth0/iflink"))
        .map_err(|e| format!("reading the sandbox's eth0: {e}"))?;
    let iflink = iflink.trim();
    let dir = std::fs::read_dir("/sys/class/net").map_err(|e| format!("/sys/class/net: {e}"))?;
    for entry in dir.flatten() {
        let path = entry.path();
        let ifindex = std::fs::read_to_string(path.join("ifindex")).unwrap_or_default();
        if ifindex.trim() == iflink {
            return std::fs::write(path.join("brport/hairpin_mode"), "1")
                .map_err(|e| format!("{}: {e}", path.join("brport/hairpin_mode").display()));
        }
    }
    Err(format!("no host interface has index {iflink}"))
}

/// The labels of everything of a pod (sandbox and containers).
fn pod_labels(pod: &PodRef, node: &str) -> [(String, String); 4] {
    [
        (LABEL_POD_NAME.into(), pod.name.clone()),
        (LABEL_POD_NAMESPACE.into(), pod.namespace.clone()),
        (LABEL_POD_UID.into(), pod.uid.clone()),
        (LABEL_NODE.into(), node.to_string()),
    ]
}

/// The create request for a pod's container (k8s: command is the entrypoint, args the cmd).
fn container_body(
    config: &ContainerConfig,
    image: &str,
    sandbox: &str,
    attempt: u64,
    node: &str,
) -> ContainerCreateBody {
    let spec: &Container = &config.spec;
    let mut labels: HashMap<String, String> = config.pod.labels.clone().into_iter().collect();
    labels.extend(pod_labels(&config.pod, node));
    labels.insert(LABEL_TYPE.into(), TYPE_CONTAINER.into());
    labels.insert(LABEL_CONTAINER_NAME.into(), spec.name.clone());
    labels.insert(LABEL_ATTEMPT.into(), attempt.to_string());

    let binds: Vec<String> = config
        .mounts
        .iter()
        .map(|m| {
            let mut bind = format!("{}:{}", m.host_path.display(), m.container_path);
            if m.read_only {
                bind.push_str(":ro");
            }
            bind
        })
        .collect();
    let resources = spec.resources.as_ref();
    let limit = |name: &str| {
        resources
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(name))
            .and_then(|q| quantity::parse(&q.0))
            .filter(|m| *m > 0)
    };
    let request = |name: &str| {
        resources
            .and_then(|r| r.requests.as_ref())
            .and_then(|l| l.get(name))
            .and_then(|q| quantity::parse(&q.0))
            .filter(|m| *m > 0)
    };
    // Quantities are in thousandths: millibytes, millicores.
    let memory = limit("memory").map(|m| i64::try_from((m + 999) / 1000).unwrap_or(i64::MAX));
    let nano_cpus = limit("cpu").map(|m| i64::try_from(m * 1_000_000).unwrap_or(i64::MAX));
    // k8s: MilliCPUToShares, at least 2.
    let cpu_shares =
        request("cpu").map(|m| i64::try_from(m * 1024 / 1000).unwrap_or(i64::MAX).max(2));
    let security = spec.security_context.as_ref();
    let user = security.and_then(|s| s.run_as_user).map(|uid| {
        match security.and_then(|s| s.run_as_group) {
            Some(gid) => format!("{uid}:{gid}"),
            None => uid.to_string(),
        }
    });

    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: spec.command.clone().filter(|c| !c.is_empty()),
        cmd: spec.args.clone().filter(|a| !a.is_empty()),
        env: Some(config.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.working_dir.clone().filter(|w| !w.is_empty()),
        tty: spec.tty,
        user,
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{sandbox}")),
            ipc_mode: Some(format!("container:{sandbox}")),
            binds: (!binds.is_empty()).then_some(binds),
            memory,
            // No swap beyond the memory limit, as the kubelet sets it.
            memory_swap: memory,
            nano_cpus,
            cpu_shares,
            privileged: security.and_then(|s| s.privileged),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>` as dockershim named them, with this
/// agent's name appended so that two agents on one daemon never collide.
fn container_name(container: &str, pod: &PodRef, attempt: u64, node: &str) -> String {
    let name = format!(
        "k8s_{container}_{}_{}_{}_{attempt}_{node}",
        pod.name, pod.namespace, pod.uid
    );
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The sandbox's resolv.conf settings (its containers share its network namespace and so its
/// resolv.conf): the cluster DNS with the search paths of the pod's namespace, for a pod that
/// uses it; else Docker's default (the host's).
/// k8s: pkg/kubelet/network/dns (ClusterFirst: nameserver the cluster DNS, search
/// `<ns>.svc.<domain> svc.<domain> <domain>`, `options ndots:5`).
fn sandbox_dns(pod: &PodRef, cluster_dns: Option<&str>) -> HostConfig {
    let Some(ip) = cluster_dns.filter(|_| pod.cluster_dns) else {
        return HostConfig::default();
    };
    let domain = crate::dns::CLUSTER_DOMAIN;
    HostConfig {
        dns: Some(vec![ip.to_string()]),
        dns_search: Some(vec![
            format!("{}.svc.{domain}", pod.namespace),
            format!("svc.{domain}"),
            domain.to_string(),
        ]),
        dns_options: Some(vec!["ndots:5".into()]),
        ..Default::default()
    }
}

/// A hostname from the pod's name (a DNS label: at most 63 characters).
fn hostname(pod: &str) -> String {
    let host: String = pod.chars().take(63).collect();
    let host = host.trim_end_matches(['-', '.']);
    if host.is_empty() {
        "pod".into()
    } else {
        host.to_string()
    }
}

/// Whether an image reference names a tag or digest (`busybox` does not, `busybox:1`,
/// `localhost:5000/busybox:1` and `busybox@sha256:...` do; `localhost:5000/busybox` not).
fn has_tag_or_digest(image: &str) -> bool {
    image.contains('@')
        || image
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
}

fn bare_id(container_id: &str) -> &str {
    container_id
        .strip_prefix("docker://")
        .unwrap_or(container_id)
}

fn label<'a>(c: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    c.labels.as_ref()?.get(key).map(String::as_str)
}

fn attempt_of(c: &ContainerSummary) -> u64 {
    label(c, LABEL_ATTEMPT)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}

fn newest_first(found: &mut [ContainerSummary]) {
    found.sort_by_key(|c| std::cmp::Reverse((attempt_of(c), c.created.unwrap_or(0))));
}

fn is_running(c: &ContainerSummary) -> bool {
    matches!(
        c.state,
        Some(ContainerSummaryStateEnum::RUNNING) | Some(ContainerSummaryStateEnum::RESTARTING)
    )
}

/// The daemon's own message for an error where it gave one.
fn message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        DockerError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// Ends the stream after `limit` bytes (pods/log limitBytes).
fn limit_bytes(text: impl futures::Stream<Item = Bytes> + Send + 'static, limit: u64) -> Logs {
    text.scan(limit, |left, mut chunk| {
        if *left == 0 {
            return futures::future::ready(None);
        }
        if chunk.len() as u64 > *left {
            chunk.truncate(*left as usize);
        }
        *left -= chunk.len() as u64;
        futures::future::ready(Some(chunk))
    })
    .boxed()
}

/// The sandbox's process: a static x86_64 Linux ELF executable, 129 bytes, that does nothing
/// but wait for signals forever:
///
/// ```text
/// _start: mov eax, 34    ; b8 22 00 00 00   pause(2)
///         syscall        ; 0f 05
///         jmp _start     ; eb f7
/// ```
///
/// A 64-byte ELF header and one 56-byte PT_LOAD program header (the whole file at 0x400000,
/// read+execute) precede the code, which starts at 0x400078, the entry point.
///
/// It is x86_64-only: the instructions and the syscall number are x86_64's, and there is no
/// registry to pull a multi-architecture pause image from, nor a toolchain at run time to build
/// one; so the image is made here from these bytes. Another architecture needs its own bytes
/// (loading it is refused on daemons that do not run on amd64). Like upstream's pause it runs as PID
/// 1 of its PID namespace, where signals without a handler are ignored: the sandbox is removed
/// with force (SIGKILL).
#[rustfmt::skip]
const PAUSE_ELF: [u8; 129] = [
    // ELF header: magic, 64-bit, little-endian, version 1, System V ABI, padding
    0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x00,                                     // e_type: EXEC
    0x3e, 0x00,                                     // e_machine: x86-64
    0x01, 0x00, 0x00, 0x00,                         // e_version: 1
    0x78, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // e_entry: 0x400078
    0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // e_phoff: 64
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // e_shoff: none
    0x00, 0x00, 0x00, 0x00,                         // e_flags
    0x40, 0x00,                                     // e_ehsize: 64
    0x38, 0x00,                                     // e_phentsize: 56
    0x01, 0x00,                                     // e_phnum: 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             // e_shentsize, e_shnum, e_shstrndx
    // program header
    0x01, 0x00, 0x00, 0x00,                         // p_type: LOAD
    0x05, 0x00, 0x00, 0x00,                         // p_flags: R+X
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // p_offset: 0
    0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // p_vaddr: 0x400000
    0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // p_paddr: 0x400000
    0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // p_filesz: 129
    0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // p_memsz: 129
    0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // p_align: 0x1000
    // code, at 0x400078
    0xb8, 0x22, 0x00, 0x00, 0x00,                   // mov eax, 34 (pause)
    0x0f, 0x05,                                     // syscall
    0xeb, 0xf7,                                     // jmp 0x400078
];

/// The SHA-256 of `pause_layer()` (the image's diff id, which `docker load` verifies); a unit
/// test recomputes it.
const PAUSE_LAYER_DIGEST: &str =
    "sha256:d012e76fb0d3a21491246985d25c61c0cea63967a27a1c85f3ce22206fa593da";

/// The pause image's only layer: a tar holding `/pause`. Its bytes never vary (owner root,
/// mtime 0), so neither does its digest nor the image's id.
fn pause_layer() -> Vec<u8> {
    let mut tar = Vec::new();
    tar_append(&mut tar, "pause", 0o755, &PAUSE_ELF);
    tar_end(&mut tar)
}

/// The pause image as `docker save` writes one (the `/images/load` format): a manifest, the
/// image config and the layer.
fn pause_image_archive() -> Vec<u8> {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{{"Entrypoint":["/pause"]}},"rootfs":{{"type":"layers","diff_ids":["{PAUSE_LAYER_DIGEST}"]}}}}"#
    );
    let manifest = format!(
        r#"[{{"Config":"config.json","RepoTags":["{PAUSE_IMAGE}"],"Layers":["layer.tar"]}}]"#
    );
    let mut tar = Vec::new();
    tar_append(&mut tar, "manifest.json", 0o644, manifest.as_bytes());
    tar_append(&mut tar, "config.json", 0o644, config.as_bytes());
    tar_append(&mut tar, "layer.tar", 0o644, &pause_layer());
    tar_end(&mut tar)
}

/// Appends a regular file to a tar archive.
fn tar_append(tar: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
    tar.extend_from_slice(&tar_header(name, mode, data.len() as u64));
    tar.extend_from_slice(data);
    tar.resize(tar.len().next_multiple_of(512), 0);
}

/// Ends a tar archive: two zero blocks.
fn tar_end(tar: &mut Vec<u8>) -> Vec<u8> {
    tar.resize(tar.len() + 1024, 0);
    std::mem::take(tar)
}

/// A ustar header for a regular file owned by root.
fn tar_header(name: &str, mode: u32, size: u64) -> [u8; 512] {
    fn octal(field: &mut [u8], value: u64) {
        let width = field.len() - 1;
        let text = format!("{value:0width$o}");
        field[..width].copy_from_slice(text.as_bytes());
        field[width] = 0;
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0); // uid
    octal(&mut h[116..124], 0); // gid
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0); // mtime
    h[156] = b'0'; // a regular file
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        assert!(!has_tag_or_digest("busybox"));
        assert!(!has_tag_or_digest("localhost:5000/busybox"));
        assert!(has_tag_or_digest("busybox:1"));
        assert!(has_tag_or_digest("localhost:5000/gantry/busybox:1"));
        assert!(has_tag_or_digest("busybox@sha256:abcd"));
    }

    #[test]
    fn cluster_first_pods_get_the_cluster_dns() {
        let pod = |ns: &str, cluster_dns: bool| PodRef {
            namespace: ns.into(),
            name: "web".into(),
            uid: "u".into(),
            labels: Default::default(),
            cluster_dns,
        };
        let h = sandbox_dns(&pod("team", true), Some("10.96.0.10"));
        assert_eq!(h.dns, Some(vec!["10.96.0.10".to_string()]));
        assert_eq!(
            h.dns_search,
            Some(vec![
                "team.svc.cluster.local".to_string(),
                "svc.cluster.local".into(),
                "cluster.local".into()
            ])
        );
        assert_eq!(h.dns_options, Some(vec!["ndots:5".to_string()]));
        // dnsPolicy Default (or no cluster DNS configured): Docker's resolv.conf.
        assert_eq!(
            sandbox_dns(&pod("team", false), Some("10.96.0.10")).dns,
            None
        );
        assert_eq!(sandbox_dns(&pod("team", true), None).dns_search, None);
    }

    #[test]
    fn names() {
        let pod = PodRef {
            namespace: "default".into(),
            name: "web".into(),
            uid: "1234-abcd".into(),
            labels: Default::default(),
            cluster_dns: true,
        };
        assert_eq!(
            container_name("nginx", &pod, 2, "node a"),
            "k8s_nginx_web_default_1234-abcd_2_node-a"
        );
        assert_eq!(hostname(&"a".repeat(80)).len(), 63);
        assert_eq!(bare_id("docker://abc"), "abc");
        assert_eq!(bare_id("abc"), "abc");
    }

    fn untar(archive: &[u8], into: &std::path::Path) {
        let path = into.join("archive.tar");
        std::fs::write(&path, archive).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-xf")
            .arg(&path)
            .arg("-C")
            .arg(into)
            .output()
            .expect("run tar");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_pause_image_archive_unpacks() {
        let archive = pause_image_archive();
        assert_eq!(archive.len() % 512, 0);
        let dir = tempfile::tempdir().unwrap();
        untar(&archive, dir.path());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest[0]["RepoTags"][0], PAUSE_IMAGE);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], PAUSE_LAYER_DIGEST);
        let layer = std::fs::read(dir.path().join("layer.tar")).unwrap();
        assert_eq!(layer, pause_layer());
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        untar(&layer, &root);
        assert_eq!(std::fs::read(root.join("pause")).unwrap(), PAUSE_ELF);
    }

    /// `docker load` checks the layer against this digest: it must follow the bytes.
    #[test]
    fn the_pause_layer_digest_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.tar");
        std::fs::write(&path, pause_layer()).unwrap();
        let out = std::process::Command::new("sha256sum")
            .arg(&path)
            .output()
            .expect("run sha256sum");
        let text = String::from_utf8_lossy(&out.stdout);
        let digest = format!("sha256:{}", text.split_whitespace().next().unwrap_or(""));
        assert_eq!(PAUSE_LAYER_DIGEST, digest, "update PAUSE_LAYER_DIGEST");
    }

    /// The pause binary runs (and keeps running) on this machine's x86_64 Linux.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn the_pause_binary_pauses() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pause");
        std::fs::write(&path, PAUSE_ELF).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = std::process::Command::new(&path)
            .spawn()
            .expect("run pause");
        std::thread::sleep(Duration::from_millis(300));
        assert!(child.try_wait().unwrap().is_none(), "pause exited");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn bodies_map_kubernetes_fields() {
        let spec: Container = serde_json::from_value(serde_json::json!({
            "name": "app",
            "image": "busybox:1",
            "command": ["sh", "-c"],
            "args": ["echo hi"],
            "workingDir": "/tmp",
            "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "250m"}},
        }))
        .unwrap();
        let config = ContainerConfig {
            pod: PodRef {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u1".into(),
                labels: [("app".to_string(), "web".to_string())].into(),
                cluster_dns: true,
            },
            spec,
            env: vec![("A".into(), "1".into())],
            mounts: vec![super::super::Mount {
                volume: "data".into(),
                host_path: "/srv/data".into(),
                container_path: "/data".into(),
                read_only: true,
            }],
        };
        let body = container_body(&config, "busybox:1", "sb", 3, "n1");
        assert_eq!(body.entrypoint, Some(vec!["sh".into(), "-c".into()]));
        assert_eq!(body.cmd, Some(vec!["echo hi".into()]));
        assert_eq!(body.env, Some(vec!["A=1".into()]));
        assert_eq!(body.working_dir.as_deref(), Some("/tmp"));
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_POD_UID], "u1");
        assert_eq!(labels[LABEL_CONTAINER_NAME], "app");
        assert_eq!(labels[LABEL_NODE], "n1");
        assert_eq!(labels[LABEL_ATTEMPT], "3");
        assert_eq!(labels["app"], "web");
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("container:sb"));
        assert_eq!(host.binds, Some(vec!["/srv/data:/data:ro".into()]));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.cpu_shares, Some(256));
    }
}
