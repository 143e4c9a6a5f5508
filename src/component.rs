//! The contract between a core and its host (DESIGN.md, "Cores").
//!
//! A component is a state machine: the host feeds it inputs (a list or watch event from its
//! informers, a timer firing, the result of an API request it made) with the current time and
//! the run's RNG, and carries out the effects it returns (API requests, timers, log lines). A
//! component never reads a clock, sleeps, spawns, does I/O or iterates a hash map into its
//! output, so the simulator and the production hosts drive the very same code.

use rand::RngCore;
use serde_json::Value;

use crate::api::registry::ResourceInfo;
use crate::api::status::ApiError;
use crate::apiserver::{ApiEvent, Part};
use crate::store::Revision;
use crate::time::Time;

/// A resource a component keeps a cache of (all namespaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    pub resource: &'static ResourceInfo,
    /// A field selector the host applies (e.g. a kubelet's `spec.nodeName=<node>`).
    pub field_selector: Option<String>,
}

impl WatchSpec {
    /// Every object of `resource`.
    pub fn all(resource: &'static ResourceInfo) -> Self {
        WatchSpec {
            resource,
            field_selector: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ApiOp {
    Create {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
        body: Value,
    },
    Update {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
        name: String,
        body: Value,
        part: Part,
    },
    Delete {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
        name: String,
        grace_period_seconds: Option<i64>,
        precondition_uid: Option<String>,
        /// Delete only this version (k8s: Preconditions.ResourceVersion).
        precondition_resource_version: Option<String>,
        /// `Foreground`, `Background` or `Orphan` (k8s: DeleteOptions.propagationPolicy);
        /// `None` is the kind's default.
        propagation_policy: Option<&'static str>,
    },
    Get {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
        name: String,
    },
    Bind {
        namespace: String,
        name: String,
        node: String,
    },
    /// Deletes every object of `resource` in `namespace` (each as a default delete: pods
    /// gracefully); answers `{"remaining": n}`, the objects still there (terminating, or held
    /// by finalizers). k8s: deletecollection, as the namespace controller uses it.
    DeleteCollection {
        resource: &'static ResourceInfo,
        namespace: String,
    },
    /// `serviceaccounts/<name>/token`: a TokenRequest (the kubelet's projected tokens).
    CreateToken {
        namespace: String,
        name: String,
        body: Value,
    },
}

impl RuntimeOp {
    /// A short description for traces: `start default/web-x/c`.
    pub fn describe(&self) -> String {
        match self {
            RuntimeOp::Start { pod, container, .. } => format!(
                "start {}/{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or(""),
                pod.metadata.name.as_deref().unwrap_or(""),
                container.name
            ),
            RuntimeOp::Stop { container_id, .. } => format!("stop {container_id}"),
            RuntimeOp::Probe {
                kind, container_id, ..
            } => format!("probe {kind} {container_id}"),
            RuntimeOp::RemovePod { pod_uid } => format!("remove pod {pod_uid}"),
        }
    }
}

impl ApiOp {
    /// A short description for traces: `create pods default/web-x`. (Built by appending: every
    /// request the simulator serves is described.)
    pub fn describe(&self) -> String {
        let mut s = String::with_capacity(80);
        let verb = |s: &mut String, verb: &str, plural: &str| {
            s.push_str(verb);
            s.push(' ');
            s.push_str(plural);
        };
        let at = |s: &mut String, ns: &Option<String>, name: &str| {
            s.push(' ');
            if let Some(ns) = ns {
                s.push_str(ns);
                s.push('/');
            }
            s.push_str(name);
        };
        match self {
            ApiOp::Create {
                resource,
                namespace,
                body,
            } => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .or(body["metadata"]["generateName"].as_str())
                    .unwrap_or("");
                verb(&mut s, "create", resource.plural);
                at(&mut s, namespace, name);
            }
            ApiOp::Update {
                resource,
                namespace,
                name,
                part,
                ..
            } => {
                verb(&mut s, "update", resource.plural);
                if *part == Part::Status {
                    s.push_str("/status");
                }
                at(&mut s, namespace, name);
            }
            ApiOp::Delete {
                resource,
                namespace,
                name,
                ..
            } => {
                verb(&mut s, "delete", resource.plural);
                at(&mut s, namespace, name);
            }
            ApiOp::Get {
                resource,
                namespace,
                name,
                ..
            } => {
                verb(&mut s, "get", resource.plural);
                at(&mut s, namespace, name);
            }
            ApiOp::Bind {
                namespace,
                name,
                node,
            } => {
                verb(&mut s, "bind", "pods");
                at(&mut s, &Some(namespace.clone()), name);
                s.push_str(" to ");
                s.push_str(node);
            }
            ApiOp::DeleteCollection {
                resource,
                namespace,
            } => {
                verb(&mut s, "deletecollection", resource.plural);
                s.push_str(" in ");
                s.push_str(namespace);
            }
            ApiOp::CreateToken {
                namespace, name, ..
            } => {
                verb(&mut s, "create", "serviceaccounts/token");
                at(&mut s, &Some(namespace.clone()), name);
            }
        }
        s
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A (re)list of a watched resource: the cache is replaced.
    Listed {
        resource: &'static ResourceInfo,
        items: Vec<Value>,
        revision: Revision,
    },
    /// One watch event of a watched resource.
    Watched {
        resource: &'static ResourceInfo,
        event: ApiEvent,
    },
    /// A timer the component set.
    Timer { id: u64 },
    /// The answer to an API request the component made (the object as the apiserver has it,
    /// shared with its memory of what it wrote).
    ApiResult {
        id: u64,
        result: Result<std::sync::Arc<Value>, ApiError>,
    },
    /// The answer to a container-runtime operation the component asked for.
    RuntimeResult { id: u64, result: RuntimeResult },
    /// A container stopped on its own (the runtime's event, like the kubelet's PLEG).
    ContainerExited {
        container_id: String,
        exit_code: i32,
    },
}

/// A container-runtime operation (the real runtimes and the simulator's scripted one carry it
/// out).
#[derive(Clone, Debug, PartialEq)]
pub enum RuntimeOp {
    Start {
        /// The pod as the kubelet has it (shared): its identity and labels (the scripted
        /// runtime picks a behavior by them), and what the real runtimes resolve the downward
        /// API, volumes and env sources from.
        pod: std::sync::Arc<k8s_openapi::api::core::v1::Pod>,
        container: Box<k8s_openapi::api::core::v1::Container>,
        /// The Service environment variables, sorted by name (k8s: getServiceEnvVarMap): the
        /// container's own env and envFrom win over them.
        service_env: Vec<(String, String)>,
    },
    /// The pod is gone from the API (or finished terminating): kill whatever of it still runs
    /// and release what it held (its IP, its volumes). k8s: kubelet HandlePodRemoves, killPod
    RemovePod { pod_uid: String },
    /// SIGTERM, then SIGKILL after `grace_seconds`.
    Stop {
        container_id: String,
        grace_seconds: i64,
    },
    Probe {
        container_id: String,
        probe: Box<k8s_openapi::api::core::v1::Probe>,
        /// `liveness`, `readiness` or `startup`.
        kind: &'static str,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeResult {
    Started {
        container_id: String,
        /// The pod's IP, from its sandbox (k8s: the CNI result); `None` where the runtime
        /// gives pods no address of their own (the simulator's).
        pod_ip: Option<String>,
    },
    /// The container could not start: a waiting reason (`ErrImagePull`, `CreateContainerError`).
    StartFailed {
        reason: String,
        message: String,
    },
    Stopped {
        exit_code: i32,
    },
    ProbeSucceeded,
    ProbeFailed {
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Api {
        id: u64,
        op: ApiOp,
    },
    /// A container-runtime operation; its answer comes back as `Input::RuntimeResult`.
    Runtime {
        id: u64,
        op: RuntimeOp,
    },
    /// Fire `Input::Timer { id }` at `at` (a later timer with the same id replaces it).
    Timer {
        id: u64,
        at: Time,
    },
    /// A Kubernetes Event about `involved` (k8s: recorder.Eventf). The host's
    /// `event_recorder::Recording` writes it as an Event object; a host without one logs it.
    Event {
        involved: Box<k8s_openapi::api::core::v1::ObjectReference>,
        /// `Normal` or `Warning`.
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
    /// A line for the log (production) or the trace (simulation), at a glog-style verbosity.
    Log {
        v: u8,
        message: String,
    },
}

pub trait Component {
    /// A stable name for traces (`replicaset-controller`, `kubelet/node-1`).
    fn name(&self) -> &str;

    /// Who the component's requests are from: the identity upstream gives it (a controller's
    /// ServiceAccount in kube-system, `system:kube-scheduler`, `system:node:<name>`). Hosts
    /// put it in every request, which is authorized like any client's.
    fn user(&self) -> crate::auth::UserInfo;

    /// The resources the host lists and watches for this component.
    fn watches(&self) -> Vec<WatchSpec>;

    /// Handles one input at `now`, appending effects to `out`.
    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>);
}

/// A boxed component is a component (hosts hold them boxed; wrappers take any).
impl Component for Box<dyn Component> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn user(&self) -> crate::auth::UserInfo {
        (**self).user()
    }

    fn watches(&self) -> Vec<WatchSpec> {
        (**self).watches()
    }

    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        (**self).step(now, input, rng, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry;
    use serde_json::json;

    #[test]
    fn requests_are_described_for_traces() {
        let pods = registry::by_plural("", "pods").unwrap();
        let nodes = registry::by_plural("", "nodes").unwrap();
        let cases = [
            (
                ApiOp::Create {
                    resource: pods,
                    namespace: Some("ns".into()),
                    body: json!({"metadata": {"generateName": "web-"}}),
                },
                "create pods ns/web-",
            ),
            (
                ApiOp::Update {
                    resource: pods,
                    namespace: Some("ns".into()),
                    name: "p".into(),
                    body: json!({}),
                    part: Part::Status,
                },
                "update pods/status ns/p",
            ),
            (
                ApiOp::Delete {
                    resource: nodes,
                    namespace: None,
                    name: "n1".into(),
                    grace_period_seconds: None,
                    precondition_uid: None,
                    precondition_resource_version: None,
                    propagation_policy: None,
                },
                "delete nodes n1",
            ),
            (
                ApiOp::Get {
                    resource: nodes,
                    namespace: None,
                    name: "n1".into(),
                },
                "get nodes n1",
            ),
            (
                ApiOp::Bind {
                    namespace: "ns".into(),
                    name: "p".into(),
                    node: "n1".into(),
                },
                "bind pods ns/p to n1",
            ),
            (
                ApiOp::DeleteCollection {
                    resource: pods,
                    namespace: "ns".into(),
                },
                "deletecollection pods in ns",
            ),
            (
                ApiOp::CreateToken {
                    namespace: "ns".into(),
                    name: "default".into(),
                    body: json!({}),
                },
                "create serviceaccounts/token ns/default",
            ),
        ];
        for (op, want) in cases {
            assert_eq!(op.describe(), want);
        }
    }
}
