//! Container runtimes the node agent drives (k8s: the CRI): `process` runs each container as a
//! supervised host process, `docker` through the Docker Engine API. The kubelet core asks for
//! starts, stops and probes (`RuntimeOp`); the node host (src/host/node.rs) resolves what a
//! container needs from the API (env sources, volume contents) into a `ContainerConfig` and
//! hands it to a runtime here.

pub mod cri_log;
pub mod docker;
pub mod process;
pub mod shim;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Container;

use crate::component::RuntimeResult;

/// A pod as a runtime knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Whether the pod resolves names through the cluster DNS (k8s: dnsPolicy ClusterFirst
    /// off the host network, or ClusterFirstWithHostNet; `cluster_first_dns`).
    pub cluster_dns: bool,
}

/// k8s (pkg/kubelet/network/dns): ClusterFirst (the default) uses the cluster DNS unless the
/// pod is on the host network, where it falls back to Default; ClusterFirstWithHostNet uses it
/// there too; Default and None do not.
pub fn cluster_first_dns(dns_policy: Option<&str>, host_network: bool) -> bool {
    match dns_policy.unwrap_or("ClusterFirst") {
        "ClusterFirst" => !host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    }
}

#[cfg(test)]
mod dns_policy_tests {
    #[test]
    fn cluster_first_dns() {
        let cases = [
            (None, false, true),
            (Some("ClusterFirst"), false, true),
            (Some("ClusterFirst"), true, false),
            (Some("ClusterFirstWithHostNet"), true, true),
            (Some("Default"), false, false),
            (Some("None"), false, false),
        ];
        for (policy, host_network, want) in cases {
            assert_eq!(
                super::cluster_first_dns(policy, host_network),
                want,
                "{policy:?} hostNetwork={host_network}"
            );
        }
    }
}

/// A directory of the host made visible to a container at `container_path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub volume: String,
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

/// Everything a runtime needs to start one container, already resolved.
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    pub pod: PodRef,
    pub spec: Container,
    /// The container's environment in order (k8s: later entries win, `$(VAR)` expanded).
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
}

/// Why a container could not start: a waiting reason (`ErrImagePull`, `RunContainerError`,
/// `CreateContainerConfigError`) and a message for `kubectl describe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartError {
    pub reason: String,
    pub message: String,
}

impl StartError {
    pub fn new(reason: &str, message: impl Into<String>) -> Self {
        StartError {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn into_result(self) -> RuntimeResult {
        RuntimeResult::StartFailed {
            reason: self.reason,
            message: self.message,
        }
    }
}

/// pods/log options (k8s: PodLogOptions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub limit_bytes: Option<i64>,
}

/// A container that stopped on its own (or was stopped): its id and exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub container_id: String,
    pub exit_code: i32,
}

/// The result of running a command in a container (exec probes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecOutcome {
    Exited { code: i32, output: String },
    TimedOut,
    Failed(String),
}

pub type Logs = BoxStream<'static, Bytes>;

/// What `kubectl exec` asks a container to run (k8s: the CRI's ExecRequest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub pod_uid: String,
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    /// A terminal: output on stdout only (stderr joins it).
    pub tty: bool,
}

/// What a streaming exec reports, in order; the stream ends after `Exited` or `Failed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Bytes),
    Stderr(Bytes),
    Exited(i32),
    /// The command could not be run (not found, not executable).
    Failed(String),
}

/// A command running in a container for `kubectl exec`.
pub struct ExecSession {
    /// Its standard input when asked for; dropping the sender closes it (EOF).
    pub stdin: Option<tokio::sync::mpsc::Sender<Bytes>>,
    /// With a terminal: its new sizes as the client's changes (k8s: TerminalSize).
    pub resize: Option<tokio::sync::mpsc::Sender<TerminalSize>>,
    pub events: BoxStream<'static, ExecEvent>,
}

/// A terminal's size in characters (k8s: remotecommand.TerminalSize, `{"Width","Height"}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

pub trait ContainerRuntime: Send + Sync {
    /// `process` or `docker`.
    fn name(&self) -> &'static str;

    /// The node's nodeInfo.containerRuntimeVersion (`docker://20.10.24`).
    fn version(&self) -> BoxFuture<'static, String>;

    /// Makes the pod's sandbox if it has none yet and returns its IP.
    fn sandbox(&self, pod: PodRef) -> BoxFuture<'static, Result<String, StartError>>;

    /// Starts a container in the pod's sandbox: `Started` (with the sandbox's IP) or
    /// `StartFailed` with a Kubernetes waiting reason. A container of this pod and name that
    /// still runs from before an agent restart is adopted, not started twice.
    fn start(&self, config: ContainerConfig) -> BoxFuture<'static, RuntimeResult>;

    /// SIGTERM, then SIGKILL after `grace`; resolves with the exit code once it stopped.
    fn stop(&self, container_id: String, grace: Duration) -> BoxFuture<'static, i32>;

    /// Runs a command in the container's context (exec probes).
    fn exec(
        &self,
        container_id: String,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, ExecOutcome>;

    /// Runs a command in a running container with its streams attached (`kubectl exec`); an
    /// error (no such container running) is the kubelet's message. Dropping the session's
    /// events kills the command.
    fn exec_stream(&self, request: ExecRequest) -> BoxFuture<'static, Result<ExecSession, String>>;

    /// Kills what is left of the pod and releases its sandbox.
    fn remove_pod(&self, pod_uid: String) -> BoxFuture<'static, ()>;

    /// Containers that exit, on their own or stopped; taken once by the node host.
    fn exits(&self) -> Option<BoxStream<'static, Exit>>;

    /// A container's log (the current one, or the one before with `previous`).
    fn logs(
        &self,
        pod_uid: String,
        container: String,
        options: LogOptions,
    ) -> BoxFuture<'static, Result<Logs, String>>;

    /// The uids of the pods that have containers or a sandbox here (after an agent restart:
    /// what the last run left).
    fn pods(&self) -> BoxFuture<'static, Vec<String>>;
}
