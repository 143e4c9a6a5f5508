//! The simulated container runtime: containers behave as a script says, chosen by the pod's
//! labels (and container name) or else by image. Deterministic and clock-free: the host asks it
//! what happens and when.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::selector::Selector;
use crate::component::{RuntimeOp, RuntimeResult};
use crate::time::Time;

/// How containers of one image behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behavior {
    /// The container exits on its own this long after it starts (never if `None`).
    pub exit_after: Option<Duration>,
    pub exit_code: i32,
    /// Starting fails with this waiting reason and message (e.g. `ErrImagePull`).
    pub start_error: Option<(String, String)>,
    /// Readiness probes fail until the container has run this long.
    pub ready_after: Duration,
    /// Liveness probes fail once the container has run this long.
    pub liveness_fails_after: Option<Duration>,
    /// Only the first this many runs of a container exit; later runs keep running.
    pub exit_count: Option<u32>,
}

/// A behavior for the containers of the pods a selector matches (a pod template's labels).
#[derive(Clone, Debug)]
pub struct PodScript {
    pub selector: Selector,
    /// Only this container of those pods (all if `None`).
    pub container: Option<String>,
    pub behavior: Behavior,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            exit_after: None,
            exit_code: 0,
            start_error: None,
            ready_after: Duration::ZERO,
            liveness_fails_after: None,
            exit_count: None,
        }
    }
}

#[derive(Debug)]
struct Container {
    behavior: Behavior,
    started_at: Time,
    /// `namespace/name` of its pod, and the pod's labels.
    pod: String,
    pod_labels: BTreeMap<String, String>,
}

/// What a runtime operation leads to: the answer now, and maybe a later exit.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub result: RuntimeResult,
    /// The container will exit at this time with this code (`ContainerExited`).
    pub exit: Option<(String, Time, i32)>,
}

#[derive(Debug, Default)]
pub struct ScriptedRuntime {
    /// By image.
    pub behaviors: BTreeMap<String, Behavior>,
    /// By pod labels, before the images; the first that matches wins.
    pub pod_scripts: Vec<PodScript>,
    containers: BTreeMap<String, Container>,
    /// How many times each container (pod uid, name) has started.
    starts: BTreeMap<(String, String), u32>,
    next: u64,
    /// Each node's index, which picks its pod CIDR (nodes not listed get the next free index
    /// when their first pod starts).
    pub node_index: BTreeMap<String, u32>,
    ipam: Ipam,
}

/// Pod addresses, like upstream's host-local IPAM over each node's podCIDR: node `i` has
/// 10.(128 + i / 256).(i % 256).0/24 (the cluster CIDR 10.128.0.0/9, clear of the node
/// addresses in 10.0.0.0/16 and of the service CIDR 10.96.0.0/12); a pod's containers share
/// its address, which is handed out from .2 to .254 after the last one given, and released when
/// the pod is removed.
#[derive(Debug, Default)]
struct Ipam {
    /// pod uid → (node index, host part)
    by_pod: BTreeMap<String, (u32, u8)>,
    /// node index → host parts in use
    used: BTreeMap<u32, std::collections::BTreeSet<u8>>,
    /// node index → the last host part handed out
    last: BTreeMap<u32, u8>,
}

/// Node indexes with a pod CIDR (32768 nodes).
const MAX_NODES: u32 = 128 * 256;

impl Ipam {
    fn address(node: u32, host: u8) -> String {
        format!("10.{}.{}.{host}", 128 + node / 256, node % 256)
    }

    /// The pod's address, given now if it has none; `None` when the node's range is full.
    fn allocate(&mut self, pod_uid: &str, node: u32) -> Option<String> {
        if let Some(&(n, h)) = self.by_pod.get(pod_uid) {
            return Some(Self::address(n, h));
        }
        if node >= MAX_NODES {
            return None;
        }
        let used = self.used.entry(node).or_default();
        let last = self.last.get(&node).copied().unwrap_or(1);
        let host = (last..=254)
            .skip(1)
            .chain(2..=last)
            .find(|h| !used.contains(h))?;
        used.insert(host);
        self.last.insert(node, host);
        self.by_pod.insert(pod_uid.to_string(), (node, host));
        Some(Self::address(node, host))
    }

    fn release(&mut self, pod_uid: &str) {
        if let Some((node, host)) = self.by_pod.remove(pod_uid) {
            if let Some(used) = self.used.get_mut(&node) {
                used.remove(&host);
            }
        }
    }
}

impl ScriptedRuntime {
    fn behavior(
        &self,
        labels: &BTreeMap<String, String>,
        container: &str,
        image: &str,
    ) -> Behavior {
        self.pod_scripts
            .iter()
            .find(|s| {
                s.selector.matches(labels) && s.container.as_deref().is_none_or(|c| c == container)
            })
            .map(|s| s.behavior.clone())
            .or_else(|| self.behaviors.get(image).cloned())
            .unwrap_or_default()
    }

    pub fn run(&mut self, op: &RuntimeOp, now: Time) -> Outcome {
        match op {
            RuntimeOp::Start { pod, container, .. } => {
                let m = &pod.metadata;
                let empty = BTreeMap::new();
                let pod_labels = m.labels.as_ref().unwrap_or(&empty);
                let pod_uid = m.uid.clone().unwrap_or_default();
                let image = container.image.clone().unwrap_or_default();
                let b = self.behavior(pod_labels, &container.name, &image);
                if let Some((reason, message)) = b.start_error.clone() {
                    return Outcome {
                        result: RuntimeResult::StartFailed { reason, message },
                        exit: None,
                    };
                }
                self.next += 1;
                let id = format!("sim://{:012x}", self.next);
                let runs = self
                    .starts
                    .entry((pod_uid, container.name.clone()))
                    .or_default();
                *runs += 1;
                let exits = b.exit_count.is_none_or(|n| *runs <= n);
                let exit = b
                    .exit_after
                    .filter(|_| exits)
                    .map(|d| (id.clone(), now + d, b.exit_code));
                self.containers.insert(
                    id.clone(),
                    Container {
                        behavior: b,
                        started_at: now,
                        pod: format!(
                            "{}/{}",
                            m.namespace.as_deref().unwrap_or(""),
                            m.name.as_deref().unwrap_or("")
                        ),
                        pod_labels: pod_labels.clone(),
                    },
                );
                let node = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
                let next_index = self.node_index.len() as u32;
                let index = *self.node_index.entry(node).or_insert(next_index);
                let pod_ip = self.ipam.allocate(m.uid.as_deref().unwrap_or(""), index);
                Outcome {
                    result: RuntimeResult::Started {
                        container_id: id,
                        pod_ip,
                    },
                    exit,
                }
            }
            RuntimeOp::Stop { container_id, .. } => {
                // SIGTERM is honoured at once: exit code 143 (128 + 15).
                let existed = self.containers.remove(container_id).is_some();
                Outcome {
                    result: RuntimeResult::Stopped {
                        exit_code: if existed { 143 } else { 0 },
                    },
                    exit: None,
                }
            }
            // Its containers stay as scripted; its address is released (the hosts call
            // `remove_pod` and send no answer).
            RuntimeOp::RemovePod { pod_uid } => {
                self.remove_pod(pod_uid);
                Outcome {
                    result: RuntimeResult::Stopped { exit_code: 0 },
                    exit: None,
                }
            }
            RuntimeOp::Probe {
                container_id, kind, ..
            } => {
                let Some(c) = self.containers.get(container_id) else {
                    return Outcome {
                        result: RuntimeResult::ProbeFailed {
                            message: "container not running".into(),
                        },
                        exit: None,
                    };
                };
                let b = &c.behavior;
                let ran = now.since(c.started_at);
                let ok = match *kind {
                    "readiness" => ran >= b.ready_after,
                    _ => b.liveness_fails_after.is_none_or(|d| ran < d),
                };
                Outcome {
                    result: if ok {
                        RuntimeResult::ProbeSucceeded
                    } else {
                        RuntimeResult::ProbeFailed {
                            message: format!("{kind} probe failed"),
                        }
                    },
                    exit: None,
                }
            }
        }
    }

    /// The node crashed: the addresses of its pods are free again.
    pub fn node_down(&mut self, node: &str) {
        if let Some(&index) = self.node_index.get(node) {
            self.ipam.by_pod.retain(|_, (n, _)| *n != index);
            self.ipam.used.remove(&index);
        }
    }

    /// The pod is gone: its address is free again (k8s: the sandbox's CNI DEL).
    pub fn remove_pod(&mut self, pod_uid: &str) {
        self.ipam.release(pod_uid);
    }

    /// A container exited on its own: forget it (returns false if it was already gone).
    pub fn exited(&mut self, container_id: &str) -> bool {
        self.containers.remove(container_id).is_some()
    }

    /// Everything vanishes (the node crashed).
    pub fn crash(&mut self) {
        self.containers.clear();
    }

    pub fn running(&self) -> usize {
        self.containers.len()
    }

    /// The running containers of the pods `selector` matches, by pod (`namespace/name`), in
    /// pod order.
    pub fn containers_of(&self, selector: &Selector) -> BTreeMap<String, Vec<String>> {
        let mut by_pod: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, c) in &self.containers {
            if selector.matches(&c.pod_labels) {
                by_pod.entry(c.pod.clone()).or_default().push(id.clone());
            }
        }
        by_pod
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(pod: &str, labels: &[(&str, &str)], container: &str, image: &str) -> RuntimeOp {
        let c = k8s_openapi::api::core::v1::Container {
            name: container.into(),
            image: Some(image.into()),
            ..Default::default()
        };
        let mut p = k8s_openapi::api::core::v1::Pod::default();
        p.metadata.namespace = Some("default".into());
        p.metadata.name = Some(pod.into());
        p.metadata.uid = Some(format!("uid-{pod}"));
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        RuntimeOp::Start {
            pod: std::sync::Arc::new(p),
            container: Box::new(c),
            service_env: Vec::new(),
        }
    }

    fn crash_after(secs: u64) -> Behavior {
        Behavior {
            exit_after: Some(Duration::from_secs(secs)),
            exit_code: 1,
            ..Default::default()
        }
    }

    #[test]
    fn pod_scripts_win_over_images_and_exit_counts_run_out() {
        let mut rt = ScriptedRuntime::default();
        rt.behaviors.insert("img".into(), crash_after(5));
        rt.pod_scripts.push(PodScript {
            selector: Selector::parse("app=web").unwrap(),
            container: Some("main".into()),
            behavior: Behavior {
                exit_count: Some(2),
                ..crash_after(1)
            },
        });
        let t0 = Time::ZERO;
        // (pod, labels, container, exits after)
        type Labels<'a> = &'a [(&'a str, &'a str)];
        let cases: [(&str, Labels, &str, Option<u64>); 6] = [
            ("w", &[("app", "web")], "main", Some(1)),
            ("w", &[("app", "web")], "main", Some(1)),
            ("w", &[("app", "web")], "main", None), // the third run keeps running
            ("w", &[("app", "web")], "sidecar", Some(5)), // by image: not the scripted container
            ("d", &[("app", "db")], "main", Some(5)),
            ("x", &[], "main", Some(5)),
        ];
        for (i, (pod, labels, container, want)) in cases.into_iter().enumerate() {
            let out = rt.run(&start(pod, labels, container, "img"), t0);
            let got = out.exit.map(|(_, at, _)| at.since(t0).as_secs());
            assert_eq!(got, want, "case {i}");
        }
        let web = rt.containers_of(&Selector::parse("app=web").unwrap());
        assert_eq!(web.keys().collect::<Vec<_>>(), ["default/w"]);
        assert_eq!(web["default/w"].len(), 4);
    }

    fn start_on(pod: &str, node: &str, container: &str) -> RuntimeOp {
        let RuntimeOp::Start { pod, container, .. } = start(pod, &[], container, "img") else {
            unreachable!()
        };
        let mut p = (*pod).clone();
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some(node.into()),
            ..Default::default()
        });
        RuntimeOp::Start {
            pod: std::sync::Arc::new(p),
            container,
            service_env: Vec::new(),
        }
    }

    fn ip(rt: &mut ScriptedRuntime, op: &RuntimeOp) -> Option<String> {
        match rt.run(op, Time::ZERO).result {
            RuntimeResult::Started { pod_ip, .. } => pod_ip,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pods_get_addresses_from_their_nodes_ranges() {
        let mut rt = ScriptedRuntime::default();
        rt.node_index.insert("n0".into(), 0);
        rt.node_index.insert("n300".into(), 300);
        let table = [
            ("a", "n0", "c", "10.128.0.2"),
            ("a", "n0", "d", "10.128.0.2"), // the pod's containers share its address
            ("b", "n0", "c", "10.128.0.3"),
            ("c", "n300", "c", "10.129.44.2"),
            ("d", "unlisted", "c", "10.128.2.2"), // the next free index
        ];
        for (pod, node, container, want) in table {
            assert_eq!(
                ip(&mut rt, &start_on(pod, node, container)).as_deref(),
                Some(want)
            );
        }
        // Released addresses are handed out again after the rest of the range.
        rt.run(
            &RuntimeOp::RemovePod {
                pod_uid: "uid-a".into(),
            },
            Time::ZERO,
        );
        assert_eq!(
            ip(&mut rt, &start_on("e", "n0", "c")).as_deref(),
            Some("10.128.0.4")
        );
        for i in 0..250 {
            assert!(
                ip(&mut rt, &start_on(&format!("f{i}"), "n0", "c")).is_some(),
                "{i}"
            );
        }
        // After .254 the freed .2 comes back; then the range (.2 to .254) is full.
        assert_eq!(
            ip(&mut rt, &start_on("f", "n0", "c")).as_deref(),
            Some("10.128.0.2")
        );
        assert_eq!(ip(&mut rt, &start_on("g", "n0", "c")), None);
        // The node crashes: its pods get new addresses when started again.
        rt.node_down("n0");
        assert_eq!(
            ip(&mut rt, &start_on("b", "n0", "c")).as_deref(),
            Some("10.128.0.3")
        );
        assert_eq!(
            ip(&mut rt, &start_on("c", "n300", "c")).as_deref(),
            Some("10.129.44.2")
        );
    }
}
