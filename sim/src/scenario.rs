//! Scenario files, v1 (docs/scenarios.md): the cluster, the workload, the container script,
//! the timeline of faults and actions, and the expectations. Parse errors name the line;
//! semantic errors name the key and the line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A duration written `500ms`, `90s`, `5m` or `1h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected a number and a unit, like 90s"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "invalid duration {s:?}: the unit must be ms, s, m or h"
            ))
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    pub name: Option<String>,
    pub seed: Option<u64>,
    pub duration: Dur,
    pub cluster: Cluster,
    #[serde(default)]
    pub workload: Vec<Workload>,
    #[serde(default)]
    pub runtime: RuntimeScript,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub timeline: Vec<Step>,
    #[serde(default)]
    pub expectations: Vec<Expectation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub nodes: Vec<NodeSpec>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    /// One node with this name, or `count` nodes named `<namePrefix><i>`.
    pub name: Option<String>,
    pub count: Option<u32>,
    pub name_prefix: Option<String>,
    pub zone: Option<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub pods: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// A Kubernetes manifest written inline...
    pub manifest: Option<Value>,
    /// ...or a YAML file of manifests, relative to the scenario.
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeScript {
    /// By pod labels (a pod template's), tried in order before the images.
    #[serde(default)]
    pub pods: Vec<ContainerScript>,
    #[serde(default)]
    pub images: BTreeMap<String, ContainerScript>,
}

/// How containers behave (default: run forever, always ready).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerScript {
    /// Under `pods`: a label selector for the pods this applies to.
    pub selector: Option<String>,
    /// Under `pods`: only this container of them.
    pub container: Option<String>,
    pub exit_after: Option<Dur>,
    /// Only the first this many runs exit; later ones keep running.
    pub exit_count: Option<u32>,
    #[serde(default)]
    pub exit_code: i32,
    pub ready_after: Option<Dur>,
    pub liveness_fails_after: Option<Dur>,
    /// `ErrImagePull` and the like: the container never starts.
    pub start_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    pub at: Dur,
    /// The node crashes: its kubelet and containers vanish.
    pub kill: Option<String>,
    /// A crashed node comes back with a fresh kubelet.
    pub restart: Option<String>,
    /// These nodes lose the control plane until `heal`.
    pub partition: Option<Vec<String>>,
    pub heal: Option<bool>,
    pub scale: Option<Scale>,
    pub apply: Option<Value>,
    /// The store refuses every request for this long.
    pub store_outage: Option<Dur>,
    /// Every request waits this much longer on the store, for a while.
    pub store_slow: Option<StoreSlow>,
    /// The apiserver restarts and is down this long: every watch breaks.
    pub restart_apiserver: Option<Dur>,
    /// New latency/drop for some links (or all) from now on.
    pub network: Option<LinkChange>,
    /// The containers of some pods crash.
    pub crash: Option<Crash>,
    /// A Deployment's container image changes (as `kubectl set image` does).
    pub set_image: Option<SetImage>,
    /// A Deployment goes back to an earlier revision's template (as `kubectl rollout undo`).
    pub rollout_undo: Option<RolloutUndo>,
    /// An object is deleted, with a propagation policy.
    pub delete: Option<Delete>,
    /// A namespace is deleted (as `kubectl delete namespace`): the namespace controller empties
    /// it, then it goes.
    pub delete_namespace: Option<String>,
    /// A stream of requests from a node to a Service, through that node's kube-proxy.
    pub traffic: Option<Traffic>,
}

/// `traffic: {service: web, from: node-1, every: 100ms, duration: 60s}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    pub service: String,
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// The Service port's name (absent: its single unnamed port).
    pub port: Option<String>,
    /// The node the requests leave from.
    pub from: String,
    pub every: Dur,
    pub duration: Dur,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetImage {
    pub deployment: String,
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// The container to change; every container if absent.
    pub container: Option<String>,
    pub image: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutUndo {
    pub deployment: String,
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// The revision to go back to; the previous one if absent.
    pub to_revision: Option<i64>,
}

/// `delete: {replicaset: web, propagationPolicy: Foreground}`: one object, named under its
/// kind's key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Delete {
    pub replicaset: Option<String>,
    pub replicationcontroller: Option<String>,
    pub deployment: Option<String>,
    pub service: Option<String>,
    pub pod: Option<String>,
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// `Background`, `Foreground` or `Orphan`; the kind's default if absent.
    pub propagation_policy: Option<String>,
}

impl Delete {
    /// (group, plural, name) of the object, if exactly one is named.
    pub fn target(&self) -> Option<(&'static str, &'static str, &str)> {
        let named: Vec<(&'static str, &'static str, &str)> = [
            ("apps", "replicasets", &self.replicaset),
            ("", "replicationcontrollers", &self.replicationcontroller),
            ("apps", "deployments", &self.deployment),
            ("", "services", &self.service),
            ("", "pods", &self.pod),
        ]
        .into_iter()
        .filter_map(|(g, p, n)| n.as_deref().map(|n| (g, p, n)))
        .collect();
        match named.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The policy as the apiserver takes it.
    pub fn policy(&self) -> Option<&'static str> {
        match self.propagation_policy.as_deref() {
            Some("Background") => Some("Background"),
            Some("Foreground") => Some("Foreground"),
            Some("Orphan") => Some("Orphan"),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSlow {
    pub duration: Dur,
    pub latency: Dur,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Crash {
    /// A label selector for the pods.
    pub pods: String,
    /// How many of the matching running pods (in name order); all if absent.
    pub count: Option<usize>,
    #[serde(default = "default_crash_code")]
    pub exit_code: i32,
}

fn default_crash_code() -> i32 {
    137
}

/// A message's one-way latency, drawn uniformly from [min, max].
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub min: Dur,
    pub max: Dur,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            min: Dur(Duration::from_millis(1)),
            max: Dur(Duration::from_millis(5)),
        }
    }
}

/// The settings of one link between a component and the apiserver.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    #[serde(default)]
    pub latency: Latency,
    /// The probability that a message is lost: a request or its answer times out, a watch
    /// breaks and is resumed.
    #[serde(default)]
    pub drop: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Every link, unless overridden (default 1-5 ms, nothing lost).
    #[serde(default)]
    pub latency: Latency,
    #[serde(default)]
    pub drop: f64,
    /// A node's kubelet link, by node name.
    #[serde(default)]
    pub nodes: BTreeMap<String, Link>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkChange {
    /// These nodes' kubelet links; every link if absent.
    pub nodes: Option<Vec<String>>,
    #[serde(default)]
    pub latency: Latency,
    #[serde(default)]
    pub drop: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub replicaset: Option<String>,
    pub deployment: Option<String>,
    #[serde(default = "default_ns")]
    pub namespace: String,
    pub replicas: i64,
}

fn default_ns() -> String {
    "default".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub eventually: Option<Check>,
    pub always: Option<Check>,
    pub never: Option<Check>,
}

/// A condition on the cluster, checked every simulated second.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Check {
    /// For `eventually`: the deadline. For `always`/`never`: the end of the window.
    pub by: Option<Dur>,
    /// For `always`/`never`: the start of the window.
    pub after: Option<Dur>,
    pub replicaset: Option<String>,
    /// A Deployment's status: replicas, updatedReplicas, readyReplicas, availableReplicas,
    /// the reason of its Progressing condition and how many of its ReplicaSets have replicas.
    pub deployment: Option<String>,
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// With `replicaset`: whether it exists (absent: it must, to check anything else).
    pub exists: Option<bool>,
    pub replicas: Option<i64>,
    pub updated_replicas: Option<i64>,
    pub progressing: Option<String>,
    pub active_replica_sets: Option<usize>,
    pub ready_replicas: Option<i64>,
    pub available_replicas: Option<i64>,
    pub node: Option<String>,
    /// The node's Ready condition: `True`, `False` or `Unknown`.
    pub ready: Option<String>,
    /// Pods matching this label selector that are Running and Ready.
    pub running_pods: Option<String>,
    pub count: Option<usize>,
    /// The most pods (not terminating) matching `runningPods`' selector at once.
    pub at_most: Option<usize>,
    /// The fewest pods matching `runningPods`' selector that are Running and Ready.
    pub at_least: Option<usize>,
    /// Pods matching this label selector that exist (terminating ones included); `count` is
    /// how many, `owner` narrows them.
    pub pods: Option<String>,
    /// With `pods`: `none` (no ownerReferences) or `gone` (not being deleted, with a
    /// controller reference to an object that no longer exists with that UID).
    pub owner: Option<String>,
    /// A Service whose endpoints are checked: its Endpoints' `addresses` and
    /// `notReadyAddresses`, and the ready endpoints of its EndpointSlices.
    pub endpoints: Option<String>,
    pub addresses: Option<usize>,
    pub not_ready_addresses: Option<usize>,
    pub ready_endpoints: Option<usize>,
    /// A namespace that no longer exists (the check holds once it is gone).
    pub namespace_gone: Option<String>,
    /// A Service's requests (from `traffic` steps) since `after`: how many failed, and how
    /// many distinct pods served them.
    pub traffic: Option<String>,
    pub failed_at_least: Option<usize>,
    pub failed_at_most: Option<usize>,
    pub served_by: Option<usize>,
    /// With `runningPods`: exactly this many of them on each node (unlisted nodes: none).
    pub nodes: Option<BTreeMap<String, usize>>,
    /// With `runningPods`: exactly this many in each zone (by the node's
    /// topology.kubernetes.io/zone label; unlisted zones: none).
    pub zones: Option<BTreeMap<String, usize>>,
}

#[derive(Debug)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// A loaded, checked scenario: the workload manifests resolved.
#[derive(Debug)]
pub struct Loaded {
    pub scenario: Scenario,
    pub nodes: Vec<NodeSpec>,
    pub manifests: Vec<Value>,
}

/// The first line (1-based) holding `needle`, to point at a semantic error.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// The line of item `i` of the top-level list `section` (`timeline`, `expectations`).
fn item_line(text: &str, section: &str, i: usize) -> Option<usize> {
    let start = text
        .lines()
        .position(|l| l.trim_end() == format!("{section}:"))?;
    let mut indent = None;
    let mut seen = 0;
    for (n, l) in text.lines().enumerate().skip(start + 1) {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let depth = l.len() - trimmed.len();
        if depth == 0 && !trimmed.starts_with('-') {
            break;
        }
        if trimmed.starts_with("- ") || trimmed == "-" {
            let d = *indent.get_or_insert(depth);
            if d == depth {
                if seen == i {
                    return Some(n + 1);
                }
                seen += 1;
            }
        }
    }
    None
}

/// Checks a link's settings.
fn check_link(link: &Link, what: &str) -> Result<(), String> {
    if !(0.0..1.0).contains(&link.drop) {
        return Err(format!(
            "{what}.drop: must be a probability in [0, 1), not {}",
            link.drop
        ));
    }
    if link.latency.min > link.latency.max {
        return Err(format!("{what}.latency: min is more than max"));
    }
    Ok(())
}

pub fn load(path: &Path) -> Result<Loaded, ScenarioError> {
    let err = |line, message: String| ScenarioError {
        file: path.to_path_buf(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(None, format!("cannot read: {e}")))?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Loaded, ScenarioError> {
    let err = |line, message: String| ScenarioError {
        file: path.to_path_buf(),
        line,
        message,
    };
    let scenario: Scenario = yaml_serde::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let message = e.to_string();
        // The location is reported separately; keep the message short.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        err(line, message)
    })?;
    // Expand the nodes.
    let mut nodes = Vec::new();
    for (i, n) in scenario.cluster.nodes.iter().enumerate() {
        match (&n.name, n.count) {
            (Some(_), None) => nodes.push(n.clone()),
            (None, Some(count)) => {
                let prefix = n.name_prefix.clone().unwrap_or_else(|| "node-".into());
                for k in 1..=count {
                    nodes.push(NodeSpec { name: Some(format!("{prefix}{k}")), count: None, ..n.clone() });
                }
            }
            _ => {
                return Err(err(
                    line_of(text, "nodes:"),
                    format!("cluster.nodes[{i}]: give either `name` or `count` (with an optional `namePrefix`)"),
                ))
            }
        }
    }
    let names: Vec<String> = nodes.iter().filter_map(|n| n.name.clone()).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(err(
                line_of(text, name),
                format!("cluster.nodes: node {name} is defined twice"),
            ));
        }
    }
    // The timeline names known nodes and does exactly one thing per step.
    for (i, step) in scenario.timeline.iter().enumerate() {
        let actions = [
            step.kill.is_some(),
            step.restart.is_some(),
            step.partition.is_some(),
            step.heal.is_some(),
            step.scale.is_some(),
            step.apply.is_some(),
            step.store_outage.is_some(),
            step.store_slow.is_some(),
            step.restart_apiserver.is_some(),
            step.network.is_some(),
            step.crash.is_some(),
            step.set_image.is_some(),
            step.rollout_undo.is_some(),
            step.delete.is_some(),
            step.delete_namespace.is_some(),
            step.traffic.is_some(),
        ];
        let line = item_line(text, "timeline", i);
        if actions.iter().filter(|a| **a).count() != 1 {
            return Err(err(
                line,
                format!("timeline[{i}]: each step needs exactly one of kill, restart, partition, heal, scale, apply, storeOutage, storeSlow, restartApiserver, network, crash, setImage, rolloutUndo, delete, deleteNamespace, traffic"),
            ));
        }
        if let Some(t) = &step.traffic {
            if !names.contains(&t.from) {
                return Err(err(
                    line,
                    format!(
                        "timeline[{i}].traffic.from: there is no node named {:?}",
                        t.from
                    ),
                ));
            }
            if t.every.0.is_zero() {
                return Err(err(
                    line,
                    format!("timeline[{i}].traffic.every: must be more than 0"),
                ));
            }
        }
        if let Some(sc) = &step.scale {
            if sc.replicaset.is_some() == sc.deployment.is_some() {
                return Err(err(
                    line,
                    format!("timeline[{i}].scale: give exactly one of replicaset, deployment"),
                ));
            }
        }
        if let Some(d) = &step.delete {
            if d.target().is_none() {
                return Err(err(
                    line,
                    format!("timeline[{i}].delete: name exactly one of replicaset, replicationcontroller, deployment, service, pod"),
                ));
            }
            if d.propagation_policy.is_some() && d.policy().is_none() {
                return Err(err(
                    line_of(text, "propagationPolicy").or(line),
                    format!(
                        "timeline[{i}].delete.propagationPolicy: {:?} is not one of Background, Foreground, Orphan",
                        d.propagation_policy.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(c) = &step.crash {
            if let Err(e) = gantry::api::selector::Selector::parse(&c.pods) {
                return Err(err(line, format!("timeline[{i}].crash.pods: {e}")));
            }
        }
        let mut mentioned: Vec<(&str, &String)> = Vec::new();
        if let Some(change) = &step.network {
            let link = Link {
                latency: change.latency,
                drop: change.drop,
            };
            check_link(&link, &format!("timeline[{i}].network")).map_err(|e| err(line, e))?;
            for n in change.nodes.iter().flatten() {
                mentioned.push(("network.nodes", n));
            }
        }
        if let Some(n) = &step.kill {
            mentioned.push(("kill", n));
        }
        if let Some(n) = &step.restart {
            mentioned.push(("restart", n));
        }
        for n in step.partition.iter().flatten() {
            mentioned.push(("partition", n));
        }
        for (key, n) in mentioned {
            if !names.contains(n) {
                return Err(err(
                    line_of(text, &format!("{key}: {n}")).or_else(|| line_of(text, n)),
                    format!(
                        "timeline[{i}].{key}: there is no node named {n:?} (nodes: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        if step.at.0 > scenario.duration.0 {
            return Err(err(
                line,
                format!(
                    "timeline[{i}].at: after the end of the scenario ({:?})",
                    scenario.duration.0
                ),
            ));
        }
    }
    for (i, e) in scenario.expectations.iter().enumerate() {
        let kinds = [
            e.eventually.is_some(),
            e.always.is_some(),
            e.never.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        let line = item_line(text, "expectations", i);
        if kinds != 1 {
            return Err(err(
                line,
                format!("expectations[{i}]: give exactly one of eventually, always, never"),
            ));
        }
        let check = e
            .eventually
            .as_ref()
            .or(e.always.as_ref())
            .or(e.never.as_ref())
            .expect("one");
        let subjects = [
            check.replicaset.is_some(),
            check.deployment.is_some(),
            check.node.is_some(),
            check.running_pods.is_some(),
            check.pods.is_some(),
            check.endpoints.is_some(),
            check.namespace_gone.is_some(),
            check.traffic.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if subjects != 1 {
            return Err(err(
                line,
                format!("expectations[{i}]: check exactly one of replicaset, deployment, node, runningPods, pods, endpoints, namespaceGone, traffic"),
            ));
        }
        if let Some(sel) = &check.pods {
            if let Err(e) = gantry::api::selector::Selector::parse(sel) {
                return Err(err(line, format!("expectations[{i}].pods: {e}")));
            }
            if check.count.is_none() {
                return Err(err(
                    line,
                    format!("expectations[{i}].pods: `count` is required"),
                ));
            }
        }
        if let Some(o) = &check.owner {
            if check.pods.is_none() || !["none", "gone"].contains(&o.as_str()) {
                return Err(err(
                    line_of(text, "owner:").or(line),
                    format!("expectations[{i}].owner: goes with `pods` and is `none` or `gone`, not {o:?}"),
                ));
            }
        }
        if check.exists.is_some() && check.replicaset.is_none() {
            return Err(err(
                line_of(text, "exists:").or(line),
                format!("expectations[{i}].exists: goes with `replicaset`"),
            ));
        }
        if e.eventually.is_some() && check.by.is_none() {
            return Err(err(
                line,
                format!("expectations[{i}].eventually: `by` (the deadline) is required"),
            ));
        }
        if (check.nodes.is_some() || check.zones.is_some()) && check.running_pods.is_none() {
            return Err(err(
                line,
                format!("expectations[{i}]: `nodes` and `zones` go with `runningPods`"),
            ));
        }
        for n in check.nodes.iter().flat_map(|m| m.keys()) {
            if !names.contains(n) {
                return Err(err(
                    line_of(text, &format!("{n}:")),
                    format!("expectations[{i}].nodes: there is no node named {n:?}"),
                ));
            }
        }
        if let Some(n) = &check.node {
            if !names.contains(n) {
                return Err(err(
                    line_of(text, &format!("node: {n}")),
                    format!("expectations[{i}].node: there is no node named {n:?}"),
                ));
            }
        }
    }
    // Container scripts and the network.
    for (i, p) in scenario.runtime.pods.iter().enumerate() {
        let line = item_line(text, "  pods", i).or_else(|| line_of(text, "pods:"));
        match &p.selector {
            None => {
                return Err(err(
                    line,
                    format!("runtime.pods[{i}]: `selector` (the pods' labels) is required"),
                ))
            }
            Some(sel) => {
                if let Err(e) = gantry::api::selector::Selector::parse(sel) {
                    return Err(err(line, format!("runtime.pods[{i}].selector: {e}")));
                }
            }
        }
    }
    for (image, s) in &scenario.runtime.images {
        if s.selector.is_some() || s.container.is_some() {
            return Err(err(
                line_of(text, image),
                format!(
                    "runtime.images.{image}: `selector` and `container` belong under runtime.pods"
                ),
            ));
        }
    }
    let net = &scenario.network;
    check_link(
        &Link {
            latency: net.latency,
            drop: net.drop,
        },
        "network",
    )
    .map_err(|e| err(line_of(text, "network:"), e))?;
    for (n, link) in &net.nodes {
        if !names.contains(n) {
            return Err(err(
                line_of(text, &format!("{n}:")),
                format!("network.nodes: there is no node named {n:?}"),
            ));
        }
        check_link(link, &format!("network.nodes.{n}"))
            .map_err(|e| err(line_of(text, &format!("{n}:")), e))?;
    }
    // Resolve the workload.
    let mut manifests = Vec::new();
    for (i, w) in scenario.workload.iter().enumerate() {
        match (&w.manifest, &w.path) {
            (Some(m), None) => manifests.push(m.clone()),
            (None, Some(p)) => {
                let file = path.parent().unwrap_or(Path::new(".")).join(p);
                let body = std::fs::read_to_string(&file).map_err(|e| {
                    err(
                        line_of(text, p),
                        format!("workload[{i}].path: cannot read {}: {e}", file.display()),
                    )
                })?;
                for doc in yaml_serde::Deserializer::from_str(&body) {
                    let v: Value = Value::deserialize(doc).map_err(|e| ScenarioError {
                        file: file.clone(),
                        line: e.location().map(|l| l.line()),
                        message: e.to_string(),
                    })?;
                    if !v.is_null() {
                        manifests.push(v);
                    }
                }
            }
            _ => {
                return Err(err(
                    None,
                    format!("workload[{i}]: give either `manifest` or `path`"),
                ))
            }
        }
    }
    Ok(Loaded {
        scenario,
        nodes,
        manifests,
    })
}
